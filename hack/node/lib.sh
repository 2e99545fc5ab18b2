# Shared settings for hack/node/up.sh and down.sh (sourced, not executed).
# shellcheck shell=bash
#
# One node = one name. Everything it owns on the host is derived from that name, so two nodes
# (of two clusters, or a test's throwaway node) never share anything:
#   state dir   $cache/node/<name>/        configs, logs, kubelet and containerd roots
#   bridge      hrnode0 (headroom-node) or hrn<hash>; HEADROOM_NODE_BRIDGE overrides
#   subnet      10.244.0.0/24 (headroom-node) or 10.244.<hash>.0/24; HEADROOM_NODE_SUBNET overrides
#   cgroups     /headroom-node.<name> in every cgroup v1 hierarchy (kubelet's cgroupRoot)
node_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$node_dir/../.." && pwd)"
cluster_name="${HEADROOM_CLUSTER_NAME:-headroom}"
cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
if [ "$cluster_name" = headroom ]; then default_node=headroom-node; else default_node="headroom-node-$cluster_name"; fi
node_name="${HEADROOM_NODE_NAME:-$default_node}"
case "$node_name" in
*[!a-z0-9.-]* | "" | [.-]* | *[.-]) node_name_ok=false ;;
*) node_name_ok=true ;;
esac
if ! $node_name_ok || [ "${#node_name}" -gt 63 ]; then
  echo "[node] bad node name '$node_name' (up to 63 lowercase letters, digits, '-', '.')" >&2
  exit 2
fi
state="$cache_root/node/$node_name"
# One lock for every node of the machine (up/down are short; a lock file per node would be
# left behind by down.sh, which cannot remove a lock file safely).
lock_file="$cache_root/node/.lock"
name_hash="$(printf %s "$node_name" | cksum | cut -d' ' -f1)"
if [ "$node_name" = headroom-node ]; then
  bridge="${HEADROOM_NODE_BRIDGE:-hrnode0}"
  default_subnet="${HEADROOM_NODE_SUBNET:-10.244.0.0/24}"
else
  bridge="${HEADROOM_NODE_BRIDGE:-hrn$(printf %08x "$name_hash")}"
  default_subnet="${HEADROOM_NODE_SUBNET:-10.244.$((1 + name_hash % 250)).0/24}"
fi
subnet="$default_subnet"
# A running node keeps the subnet it started with (up.sh may have moved off a busy one).
if [ -f "$state/subnet" ]; then subnet="$(cat "$state/subnet")"; fi
use_subnet() { # a.b.c.0/24: sets subnet, prefix (a.b.c) and node_ip
  subnet="$1"
  prefix="${subnet%/*}"
  prefix="${prefix%.*}"
  # The host's address on the bridge: the node IP, and where pods reach services of the host.
  node_ip="$prefix.1"
}
use_subnet "$subnet"
subnet_in_use() { ip -o -4 addr show | grep -qF " inet ${1%.*}."; }
cgroup_name="headroom-node.$node_name"
# Pods land on the node only if they select this label (and tolerate the taint, up.sh).
node_label="headroom.dev/node=real"
# The sysctls the kubelet sets at start (container_manager_linux.go, setupKernelTunables)
# and the forwarding switches a CNI gateway would turn on: inside the node's mount namespace
# each of these /proc/sys files is covered by a plain file, so writes never reach the kernel.
guarded_sysctls=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/ipv4/ip_forward
  net/ipv6/conf/all/forwarding net/ipv6/conf/default/forwarding)

log() { echo "[node] $*" >&2; }

# containerd and ctr warn on every call that their cgroup v1 support ends (docs/node.md).
without_cgroup_v1_warning() { "$@" 2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2); }

take_lock() {
  mkdir -p "$cache_root/node"
  exec 9>"$lock_file"
  flock 9
}

# cgroup v1 hierarchies (one directory per mounted hierarchy), not the cgroup2 "unified" one.
cgroup_hierarchies() {
  local d
  for d in /sys/fs/cgroup/*/; do
    d="${d%/}"
    [ "$(stat -fc %T "$d" 2>/dev/null)" = cgroupfs ] && echo "$d"
  done
}

# Every process of the node: those in its cgroups (daemons, shims, containers), and any
# running from or pointed at its state dir (a shim that left its cgroup, say).
node_pids() {
  {
    local h
    for h in $(cgroup_hierarchies) /sys/fs/cgroup/unified; do
      [ -d "$h/$cgroup_name" ] || continue
      find "$h/$cgroup_name" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    pgrep -f -- "$state/" || true
  } | sort -un | grep -vx "$$" || true
}
