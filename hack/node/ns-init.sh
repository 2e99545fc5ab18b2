#!/usr/bin/env bash
# PID "1" of a node: hack/node/up.sh runs it as `unshare -m --propagation private ns-init.sh
# STATE`, in the node's cgroups. Inside this private mount namespace it hides from containerd
# and the kubelet whatever they would change on the host, then runs both and waits:
#   - overlays on /etc, /opt, /run, /var/lib and /var/log (the host's files as the lower
#     layer, STATE/overlay/* as the upper), so the paths they write without asking (the
#     kubelet's /var/log/containers and /var/lib/kubelet/device-plugins, CNI's
#     /var/lib/cni, containerd's /run/containerd/...) land in STATE;
#   - a plain file over each /proc/sys entry the kubelet sets at start (vm.overcommit_memory,
#     kernel.panic, ...) and over the forwarding switches, so its writes never reach the kernel;
#   - a stub over every iptables/nft binary and first on PATH, so the kubelet finds no
#     iptables and adds no chains.
# Every mount here vanishes with the namespace, i.e. when the last process of the node ends.
# If containerd or the kubelet exits, the other is stopped too and this script exits.
set -euo pipefail
state="$1"
# shellcheck source=/dev/null
source "$state/node.env" # written by up.sh: BIN, CNI_BIN, RUNC, PAUSE_TAR, GUARDED_SYSCTLS
log() { echo "[ns-init $(date +%T)] $*"; }

for dir in /etc /opt /run /var/lib /var/log; do
  layer="$state/overlay/${dir//\//_}"
  mkdir -p "$layer/upper" "$layer/work"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$layer/upper,workdir=$layer/work" "$dir"
done

mkdir -p "$state/sysctl"
for key in $GUARDED_SYSCTLS; do
  [ -e "/proc/sys/$key" ] || continue
  cover="$state/sysctl/${key//\//.}"
  cat "/proc/sys/$key" >"$cover"
  mount --bind "$cover" "/proc/sys/$key"
done

stub="$state/path/no-netfilter"
for tool in iptables iptables-save iptables-restore iptables-legacy iptables-nft ip6tables \
  ip6tables-save ip6tables-restore ip6tables-legacy ip6tables-nft ebtables arptables nft; do
  ln -sf no-netfilter "$state/path/$tool"
done
for found in /usr/sbin/*tables* /sbin/*tables* /usr/sbin/nft /usr/bin/*tables* /usr/bin/nft; do
  [ -f "$found" ] || continue
  mount --bind "$stub" "$(readlink -f "$found")" 2>/dev/null || true
done
export PATH="$state/path:$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log "starting containerd"
"$BIN/containerd" --config "$state/containerd.toml" >>"$state/logs/containerd.log" 2>&1 &
containerd_pid=$!
echo "$containerd_pid" >"$state/containerd.pid"
for _ in $(seq 1 300); do
  "$BIN/ctr" --address "$state/containerd.sock" version >/dev/null 2>&1 && break
  kill -0 "$containerd_pid" 2>/dev/null || { log "containerd exited; see containerd.log"; exit 1; }
  sleep 0.1
done
"$BIN/ctr" --address "$state/containerd.sock" -n k8s.io images import "$PAUSE_TAR" >/dev/null 2>&1

log "starting kubelet"
"$BIN/kubelet" "${KUBELET_ARGS[@]}" >>"$state/logs/kubelet.log" 2>&1 &
kubelet_pid=$!
echo "$kubelet_pid" >"$state/kubelet.pid"

stop() {
  trap - TERM INT
  log "stopping"
  kill -TERM "$kubelet_pid" "$containerd_pid" 2>/dev/null || true
  wait
  exit 0
}
trap stop TERM INT
set +e
wait -n "$kubelet_pid" "$containerd_pid"
rc=$?
log "a daemon exited ($rc); stopping the other"
stop
