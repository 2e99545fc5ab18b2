# Shared settings for up.sh / down.sh (sourced, not executed).
# shellcheck shell=bash
cluster_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$cluster_dir/../.." && pwd)"
cluster_name="${HEADROOM_CLUSTER_NAME:-headroom}"
cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
# kwokctl keeps its cluster state (pki, etcd data, pid files, logs) here: outside
# the repository, and shared by every clone on the machine, so all callers reuse
# one cluster instead of each starting their own.
export KWOK_WORKDIR="${HEADROOM_KWOK_WORKDIR:-$cache_root/kwok}"
state_dir="$KWOK_WORKDIR/clusters/$cluster_name"
# Files of ours that live beside (not inside) kwokctl's cluster dir, so that
# `kwokctl delete cluster` cannot remove them under our feet.
meta_dir="$KWOK_WORKDIR/headroom-meta/$cluster_name"
lock_file="$KWOK_WORKDIR/$cluster_name.up-down.lock"
# One file per cluster name, so stopping a private cluster (tests/faults, benchmarks) never
# removes the kubeconfig of the shared one.
if [ "$cluster_name" = headroom ]; then default_kubeconfig="$repo_root/.local/kubeconfig"
else default_kubeconfig="$repo_root/.local/kubeconfig-$cluster_name"; fi
kubeconfig_out="${HEADROOM_KUBECONFIG_OUT:-$default_kubeconfig}"

log() { echo "[cluster] $*" >&2; }

# Serialise every up/down on this machine: flock on a file descriptor that the
# caller's shell keeps open until it exits.
take_lock() {
  mkdir -p "$KWOK_WORKDIR" "$meta_dir"
  exec 9>"$lock_file"
  flock 9
}

# Processes of this cluster: every component runs from a path inside state_dir.
cluster_pids() { pgrep -f -- "$state_dir/" || true; }
