#!/usr/bin/env bash
# Stops a node started by hack/node/up.sh and removes everything it had on the host: its
# processes (kubelet, containerd, shims, containers; frozen, then killed), and with them its
# mount namespace and every mount in it; its cgroups, the bridge and any veth left on it,
# and its state dir. Also deletes its Node object from the cluster, when reachable.
# Then checks that nothing is left, and exits 1 if something is.
#
#   down.sh                      (make node-down)
#   down.sh --locked             internal: up.sh holds the lock
#   down.sh --keep-node-object   leave the Node object (up.sh, restarting a stale node)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

locked=false keep_node=false
for arg in "$@"; do
  case "$arg" in
  --locked) locked=true ;;
  --keep-node-object) keep_node=true ;;
  *) log "unknown argument $arg"; exit 2 ;;
  esac
done
$locked || take_lock

# The Node object (best effort: the cluster may be gone already). Its pods go with it
# (the pod garbage collector removes pods bound to a missing node).
if ! $keep_node && [ -f "$state/kubeconfig.source" ] && [ -f "$state/bin" ]; then
  # Any kubectl of the cluster build cache (building one to say goodbye is not worth it).
  kubectl_bin="$(ls -t "$cache_root"/cluster-bin/*/kubectl 2>/dev/null | head -n1 || true)"
  if [ -n "$kubectl_bin" ]; then
    "$kubectl_bin" --kubeconfig "$(cat "$state/kubeconfig.source")" --request-timeout=5s \
      delete node "$node_name" --ignore-not-found --wait=false >&2 2>/dev/null ||
      log "could not delete Node $node_name (cluster unreachable?)"
  fi
fi

freezer="/sys/fs/cgroup/freezer/$cgroup_name"
pids="$(node_pids)"
if [ -n "$pids" ]; then
  log "stopping $(echo "$pids" | wc -l) processes of node $node_name"
  # Frozen first, so nothing forks or restarts a container while the rest is killed.
  [ -f "$freezer/freezer.state" ] && echo FROZEN >"$freezer/freezer.state" 2>/dev/null || true
  for _ in $(seq 1 100); do
    pids="$(node_pids)"
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    [ -f "$freezer/freezer.state" ] && echo THAWED >"$freezer/freezer.state" 2>/dev/null || true
    sleep 0.1
  done
fi

# Cgroups, innermost first, in every hierarchy (the kubelet made kubepods/... under ours).
for h in $(cgroup_hierarchies) /sys/fs/cgroup/unified; do
  [ -d "$h/$cgroup_name" ] || continue
  for _ in $(seq 1 50); do
    find "$h/$cgroup_name" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$h/$cgroup_name" ] || break
    sleep 0.1
  done
done

# Pod veths end with their network namespaces (pinned only inside the node's mount
# namespace); whatever is still attached to the bridge goes with it.
if ip link show "$bridge" >/dev/null 2>&1; then
  for link in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$bridge"
fi

# The mounts lived in the node's namespace; none may be on the host (an old layout, or a
# bug): unmount them before removing the state dir, never remove through a mount.
if [ -d "$state" ]; then
  awk -v s="$state" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if awk -v s="$state" 'index($5, s) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "mounts under $state remain; not removing it"
  else
    rm -rf "$state"
  fi
fi

left=()
[ -z "$(node_pids)" ] || left+=("processes: $(node_pids | tr '\n' ' ')")
for h in $(cgroup_hierarchies) /sys/fs/cgroup/unified; do
  [ -d "$h/$cgroup_name" ] && left+=("cgroup $h/$cgroup_name")
done
ip link show "$bridge" >/dev/null 2>&1 && left+=("bridge $bridge")
[ -e "$state" ] && left+=("state dir $state")
if ((${#left[@]})); then
  log "node $node_name: left behind: ${left[*]}"
  exit 1
fi
log "node $node_name is down"
