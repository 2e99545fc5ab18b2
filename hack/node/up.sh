#!/usr/bin/env bash
# Starts (or reuses, when healthy) a real node of the local cluster: containerd v2 and the
# kubelet, from the cached builds of hack/node/build.sh, as plain processes of this machine.
# The cluster is the one KUBECONFIG names, else the local cluster HEADROOM_CLUSTER_NAME
# (default "headroom"), started with hack/cluster/up.sh if needed.
#
# The node (name: headroom-node, or HEADROOM_NODE_NAME; see lib.sh for everything derived
# from it) is labelled headroom.dev/node=real and tainted headroom.dev/real-node=true:NoSchedule,
# so only pods that select and tolerate it land there. Its IP is the host's address on a
# bridge of its own (10.244.0.1 on hrnode0 by default), which the pods' veths join; no route,
# NAT or forwarding leads anywhere else. Pods reach the host at that address.
#
# What the kubelet would change on the host (sysctls, iptables chains, files under /var and
# /run) is kept inside a private mount namespace: see ns-init.sh. hack/node/down.sh removes
# everything this script created.
#
#   HEADROOM_NODE_IMAGES   OCI archives to import into the node's containerd (space separated),
#                          besides the pause and busybox images; hack/images/build.sh's output
#   up.sh --check          exit 0 if the node is running and Ready, 1 otherwise; no changes
#
# Prints the node name as the last line of stdout.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || { log "needs root (containerd, cgroups, a bridge)"; exit 1; }
bin="$("$node_dir/build.sh" | tail -n1)"
# shellcheck source=/dev/null
source "$bin/node.env" # PAUSE_IMAGE, BUSYBOX_IMAGE, RUNC
cluster_bin="$("$repo_root/hack/cluster/build.sh" | tail -n1)"
kubectl_bin="$cluster_bin/kubectl"

# The cluster: KUBECONFIG, or the named local cluster (started if needed, but for --check).
if [ -n "${KUBECONFIG:-}" ]; then
  kubeconfig="${KUBECONFIG%%:*}"
elif [ "${1:-}" = --check ]; then
  if [ "$cluster_name" = headroom ]; then kubeconfig="$repo_root/.local/kubeconfig"
  else kubeconfig="$repo_root/.local/kubeconfig-$cluster_name"; fi
  [ -f "$kubeconfig" ] || exit 1
else
  kubeconfig="$("$repo_root/hack/cluster/up.sh" | tail -n1)"
fi
kubeconfig="$(realpath "$kubeconfig")"
kubectl() { "$kubectl_bin" --kubeconfig "$kubeconfig" "$@"; }

healthy() {
  [ -f "$state/ns-init.pid" ] && [ -f "$state/kubeconfig.source" ] || return 1
  [ "$(cat "$state/kubeconfig.source")" = "$kubeconfig" ] || return 1
  [ "$(cat "$state/bin" 2>/dev/null)" = "$bin" ] || return 1
  local f pid
  for f in ns-init containerd kubelet; do
    pid="$(cat "$state/$f.pid" 2>/dev/null)" || return 1
    grep -q -- "$state" "/proc/$pid/cmdline" 2>/dev/null || return 1
  done
  [ "$(kubectl get node "$node_name" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

if [ "${1:-}" = --check ]; then healthy && exit 0 || exit 1; fi

take_lock

# Skips an archive whose image the node has already (same manifest digest).
import_images() { if (($#)); then "$node_dir/import.sh" "$@"; fi; }

if healthy; then
  log "reusing running node $node_name"
  # shellcheck disable=SC2086
  import_images ${HEADROOM_NODE_IMAGES:-}
  echo "$node_name"
  exit 0
fi
if [ -e "$state" ] || [ -n "$(node_pids)" ] || ip link show "$bridge" >/dev/null 2>&1; then
  log "removing stale node $node_name"
  "$node_dir/down.sh" --locked --keep-node-object >&2
fi

started=$SECONDS
# Nothing else may use the subnet: the host would route it elsewhere. A derived subnet moves
# on to the next free 10.244.N.0/24; a given one (or the default node's) must be free.
use_subnet "$default_subnet"
if subnet_in_use "$prefix.0" && [ -z "${HEADROOM_NODE_SUBNET:-}" ] && [ "$node_name" != headroom-node ]; then
  for ((i = 1; i < 250; i++)); do
    n=$(((${prefix##*.} - 1 + i) % 250 + 1))
    subnet_in_use "10.244.$n.0" || { use_subnet "10.244.$n.0/24"; break; }
  done
fi
if subnet_in_use "$prefix.0"; then
  log "subnet $subnet is in use on this machine; set HEADROOM_NODE_SUBNET"
  ip -o -4 addr show | grep -F " inet $prefix." >&2
  exit 1
fi
log "creating node $node_name ($node_ip on $bridge) in cluster $kubeconfig"

mkdir -p "$state"/{logs,path,cni/net.d,cni/networks,kubelet/pki,containerd/root,containerd/state,pod-logs,opt}
echo "$bin" >"$state/bin"
echo "$kubeconfig" >"$state/kubeconfig.source"
echo "$subnet" >"$state/subnet"

# The bridge and the host's address on it. No forwarding, no NAT: traffic from pods ends at
# the host or at another pod of this node.
ip link add "$bridge" type bridge
ip addr add "$node_ip/${subnet#*/}" dev "$bridge"
ip link set "$bridge" up

# The kubelet's credentials: a client certificate system:node:<name> (group system:nodes,
# so the Node authorizer limits it to its own pods' objects), signed with the local
# cluster's CA when this is one of our clusters; otherwise the given kubeconfig itself.
local_pki="${HEADROOM_KWOK_WORKDIR:-$cache_root/kwok}/clusters/$cluster_name/pki"
local_kubeconfig="${HEADROOM_KWOK_WORKDIR:-$cache_root/kwok}/headroom-meta/$cluster_name/kubeconfig"
server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
if [ -f "$local_pki/ca.key" ] && [ -f "$local_kubeconfig" ] &&
  [ "$("$kubectl_bin" --kubeconfig "$local_kubeconfig" config view --minify \
    -o jsonpath='{.clusters[0].cluster.server}')" = "$server" ]; then
  pki="$state/kubelet/pki"
  # kubectl logs/exec dial the node's InternalIP only with this API server flag (set by
  # hack/cluster/up.sh since the real node exists; an older running cluster lacks it).
  apiserver_pid="${HEADROOM_KWOK_WORKDIR:-$cache_root/kwok}/clusters/$cluster_name/pids/kube-apiserver.pid"
  apiserver_args="$(tr '\0' ' ' <"/proc/$(cat "$apiserver_pid" 2>/dev/null)/cmdline" 2>/dev/null || true)"
  if [[ "$apiserver_args" != *--kubelet-preferred-address-types=InternalIP* ]]; then
    log "warning: cluster $cluster_name's kube-apiserver predates --kubelet-preferred-address-types=InternalIP:"
    log "  kubectl logs/exec on $node_name fail until the cluster restarts (make cluster-down)"
  fi
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/client.key" -out "$pki/client.csr" \
    -subj "/O=system:nodes/CN=system:node:$node_name" 2>/dev/null
  openssl x509 -req -in "$pki/client.csr" -CA "$local_pki/ca.crt" -CAkey "$local_pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 30 -out "$pki/client.crt" \
    -extfile <(printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') \
    2>/dev/null
  cat >"$state/kubelet/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster: {server: "$server", certificate-authority: "$local_pki/ca.crt"}
users:
- name: kubelet
  user: {client-certificate: "$pki/client.crt", client-key: "$pki/client.key"}
contexts:
- name: kubelet
  context: {cluster: cluster, user: kubelet}
current-context: kubelet
YAML
else
  kubectl config view --minify --flatten >"$state/kubelet/kubeconfig"
fi
chmod 600 "$state/kubelet/kubeconfig"

cat >"$state/path/no-netfilter" <<'SH'
#!/bin/sh
echo "${0##*/}: not available on the headroom node (hack/node keeps the host's firewall as it is)" >&2
exit 1
SH
chmod 755 "$state/path/no-netfilter"

cat >"$state/cni/net.d/10-headroom.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "headroom-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet", "rangeStart": "$prefix.10"}]],
        "dataDir": "$state/cni/networks"
      }
    }
  ]
}
JSON

cat >"$state/containerd.toml" <<TOML
version = 3
root = "$state/containerd/root"
state = "$state/containerd/state"
imports = []
oom_score = 0
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.differ.v1.erofs",
  "io.containerd.mount-handler.v1.erofs"]

[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.sock.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "$state/opt"
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = "$state/opt/image-verifier/bin"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # This VM lacks CAP_SYS_RESOURCE: runc could not lower a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  cdi_spec_dirs = []
  enable_criu = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$bin/cni"]
    conf_dir = "$state/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$state/containerd/runc"
        SystemdCgroup = false
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML

cat >"$state/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Listen on the bridge address only. The API server (kubectl logs/exec) dials it without a
# client certificate (the local cluster's kube-apiserver has none for kubelets), so the
# kubelet's API is open to whoever reaches that address: this machine and the node's pods.
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $node_ip
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {}
authorization: {mode: AlwaysAllow}
# This machine has cgroup v1 and no systemd: cgroupfs, under a root of the node's own.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_name
cgroupsPerQOS: true
failSwapOn: false
containerRuntimeEndpoint: unix://$state/containerd.sock
imageServiceEndpoint: unix://$state/containerd.sock
podLogsDir: $state/pod-logs
# Without CAP_SYS_RESOURCE the kubelet cannot lower its own oom_score_adj either.
oomScoreAdj: 0
protectKernelDefaults: false
registerNode: true
registerWithTaints:
- {key: headroom.dev/real-node, value: "true", effect: NoSchedule}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# Images come from ctr import, not a registry: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
shutdownGracePeriod: 0s
maxPods: 32
nodeStatusUpdateFrequency: 10s
YAML

kubelet_args=(
  --config="$state/kubelet/config.yaml"
  --kubeconfig="$state/kubelet/kubeconfig"
  --root-dir="$state/kubelet/root"
  --cert-dir="$state/kubelet/pki"
  --hostname-override="$node_name"
  --node-ip="$node_ip"
  --node-labels="$node_label"
  --v="${HEADROOM_NODE_KUBELET_V:-1}"
)
{
  echo "BIN=$(printf %q "$bin/bin")"
  echo "RUNC=$(printf %q "$RUNC")"
  echo "PAUSE_TAR=$(printf %q "$bin/images/pause.tar")"
  echo "GUARDED_SYSCTLS=$(printf %q "${guarded_sysctls[*]}")"
  printf 'KUBELET_ARGS=('
  printf '%q ' "${kubelet_args[@]}"
  printf ')\n'
} >"$state/node.env"

# The node's cgroups: the kubelet's cgroupRoot in every hierarchy, and "daemons" (containerd,
# the kubelet, the shims) in pids and freezer, where down.sh finds, freezes and kills them.
for h in $(cgroup_hierarchies); do
  mkdir -p "$h/$cgroup_name"
  if [ -f "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" >"$h/$cgroup_name/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h/$cgroup_name/cpuset.mems"
  fi
done
daemon_cgroups=()
for c in pids freezer; do
  [ -d "/sys/fs/cgroup/$c/$cgroup_name" ] || continue
  mkdir -p "/sys/fs/cgroup/$c/$cgroup_name/daemons"
  daemon_cgroups+=("/sys/fs/cgroup/$c/$cgroup_name/daemons/cgroup.procs")
done

# Detached (setsid, no terminal, not holding our lock), in the node's cgroups, in a private
# mount namespace.
# shellcheck disable=SC2016
setsid bash -c 'for f in "${@:3}"; do echo $$ >"$f"; done
  exec unshare --mount --propagation private "$1" "$2"' \
  ns-init "$node_dir/ns-init.sh" "$state" "${daemon_cgroups[@]}" \
  </dev/null >>"$state/logs/ns-init.log" 2>&1 9>&- &
echo $! >"$state/ns-init.pid"

# Wait for containerd, import the images, wait for the node to be Ready.
deadline=$((SECONDS + 180))
until [ -f "$state/kubelet.pid" ]; do
  if ! kill -0 "$(cat "$state/ns-init.pid")" 2>/dev/null || ((SECONDS > deadline)); then
    log "the node did not start; ns-init.log and containerd.log:"
    tail -n 20 "$state/logs/ns-init.log" "$state/logs/containerd.log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
# shellcheck disable=SC2086
import_images "$bin/images/busybox.tar" ${HEADROOM_NODE_IMAGES:-}
until healthy; do
  if ((SECONDS > deadline)); then
    log "node $node_name not Ready after 180s; kubelet.log:"
    tail -n 30 "$state/logs/kubelet.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
log "node $node_name Ready in $((SECONDS - started))s (node IP $node_ip, bridge $bridge, state $state)"
echo "$node_name"
