#!/usr/bin/env bash
# Starts (or reuses, when already healthy) the local control plane "headroom":
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the kwok
# controller, run as plain processes by `kwokctl --runtime binary` from the
# binaries that build.sh compiled. Three kwok fake nodes (label type=kwok) let
# ordinary pods be scheduled and reach Running without a kubelet.
#
# Writes the admin kubeconfig to .local/kubeconfig (HEADROOM_KUBECONFIG_OUT
# overrides) and prints its path as the last line of stdout.
#
# Leases: a caller that sets HEADROOM_CLUSTER_LEASE=<pid> (the test suite) is
# recorded as a user of the cluster; if that call had to create the cluster it
# is marked test-owned, and `down.sh --release <pid>` stops it once the last
# lease holder is gone. A plain `make cluster` clears the mark: the developer
# owns the cluster from then on and tests never stop it.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

node_count="${HEADROOM_KWOK_NODES:-3}"
kwok_node_selector="type=kwok" # the label every node in nodes_manifest carries
bin="$("$cluster_dir/build.sh" | tail -n1)"
export PATH="$bin:$PATH"

take_lock

kubectl_ours() { "$bin/kubectl" --kubeconfig "$meta_dir/kubeconfig" "$@"; }

# kwokctl resolves every binary it may need from its configuration; anything not
# given a local path defaults to an https:// release URL. Point all of them at
# local paths (the optional add-ons at a path that does not exist) so nothing is
# ever fetched and a stray use fails instead of downloading.
write_kwokctl_config() {
  local absent="$bin/not-built"
  cat >"$meta_dir/kwokctl.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  # Loopback only: etcd listens without TLS or auth.
  bindAddress: 127.0.0.1
  kubeBinaryPrefix: $bin
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kubectlBinary: $bin/kubectl
  etcdBinaryPrefix: $bin
  etcdBinary: $bin/etcd
  etcdBinaryTar: $absent/etcd.tar.gz
  etcdctlBinary: $absent/etcdctl
  etcdutlBinary: $absent/etcdutl
  kectlBinary: $absent/kectl
  kwokBinaryPrefix: $bin
  kwokControllerBinary: $bin/kwok
  prometheusBinaryPrefix: $absent
  prometheusBinary: $absent/prometheus
  prometheusBinaryTar: $absent/prometheus.tar.gz
  jaegerBinaryPrefix: $absent
  jaegerBinary: $absent/jaeger
  jaegerBinaryTar: $absent/jaeger.tar.gz
  metricsServerBinaryPrefix: $absent
  metricsServerBinary: $absent/metrics-server
  kindBinaryPrefix: $absent
  kindBinary: $absent/kind
# kwok must leave alone the real nodes of hack/node (which run their pods for real):
# it manages only the nodes labelled type=kwok, not every node.
componentsPatches:
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-label-selector, value: "$kwok_node_selector"}
# A real kubelet (hack/node) registers a bridge address as its InternalIP and no resolvable
# hostname: kubectl logs/exec must dial the address. (A new argument: no override, which
# would silently drop it.)
# Admission as production clusters have it besides the defaults: the kubelet limited to its
# own Node and pods, and ownerReferences guarded (OpenShift enables that one): the
# operator's RBAC must hold under both.
- name: kube-apiserver
  extraArgs:
  - {key: kubelet-preferred-address-types, value: "InternalIP"}
  - {key: enable-admission-plugins, value: "NodeRestriction,OwnerReferencesPermissionEnforcement"}
YAML
}

nodes_manifest() {
  local i
  for ((i = 0; i < node_count; i++)); do
    cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/agent: ""
status:
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
YAML
  done
}

# Healthy = built from the current binaries, every component process alive,
# apiserver ready, nodes Ready, and the default ServiceAccount present (pods are
# rejected until the controller manager has created it).
healthy() {
  [ -f "$meta_dir/bin" ] && [ "$(cat "$meta_dir/bin")" = "$bin" ] || return 1
  [ -f "$meta_dir/kubeconfig" ] || return 1
  local c pid
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    pid="$(cat "$state_dir/pids/$c.pid" 2>/dev/null)" || return 1
    # The pid must still be this component, not a recycled pid.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$state_dir/bin/$c " || return 1
  done
  # A cluster from before the production admission plugins would pass tests it should not.
  tr '\0' ' ' <"/proc/$(cat "$state_dir/pids/kube-apiserver.pid")/cmdline" 2>/dev/null |
    grep -q -- "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement" || return 1
  # A cluster from before kwok was limited to its own nodes would fight a real node.
  tr '\0' ' ' <"/proc/$(cat "$state_dir/pids/kwok-controller.pid")/cmdline" 2>/dev/null |
    grep -q -- "--manage-nodes-with-label-selector=$kwok_node_selector " || return 1
  [ "$(kubectl_ours get --raw /readyz 2>/dev/null)" = ok ] || return 1
  local ready
  ready="$(kubectl_ours get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    2>/dev/null | grep -c True)" || return 1
  [ "$ready" -ge "$node_count" ] || return 1
  kubectl_ours -n default get serviceaccount default >/dev/null 2>&1
}

wait_healthy() {
  local deadline=$((SECONDS + $1))
  until healthy; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.5
  done
}

publish_kubeconfig() {
  mkdir -p "$(dirname "$kubeconfig_out")"
  cp "$meta_dir/kubeconfig" "$kubeconfig_out.tmp.$$"
  chmod 600 "$kubeconfig_out.tmp.$$"
  mv -f "$kubeconfig_out.tmp.$$" "$kubeconfig_out"
}

record_lease() {
  if [ -n "${HEADROOM_CLUSTER_LEASE:-}" ]; then
    mkdir -p "$meta_dir/leases"
    : >"$meta_dir/leases/$HEADROOM_CLUSTER_LEASE"
    if [ "$1" = created ]; then : >"$meta_dir/test-owned"; fi
  else
    rm -f "$meta_dir/test-owned"
  fi
}

if healthy; then
  log "reusing running cluster $cluster_name"
  publish_kubeconfig
  record_lease reused
  echo "$kubeconfig_out"
  exit 0
fi

# Anything left over (stopped, half-started, built from other binaries) is
# thrown away: a fresh cluster takes seconds and carries no stale state.
if [ -d "$state_dir" ] || [ -n "$(cluster_pids)" ]; then
  log "removing stale cluster $cluster_name"
  "$cluster_dir/down.sh" --locked >&2
fi
rm -rf "$meta_dir/leases" "$meta_dir/test-owned" "$meta_dir/kubeconfig" "$meta_dir/bin"

log "creating cluster $cluster_name from $bin"
write_kwokctl_config
start=$SECONDS
# --kubeconfig "": do not touch ~/.kube/config; we export our own copy below.
kwokctl --name "$cluster_name" -c "$meta_dir/kwokctl.yaml" create cluster \
  --runtime binary \
  --kubeconfig "" \
  --kube-apiserver-binary "$bin/kube-apiserver" \
  --kube-controller-manager-binary "$bin/kube-controller-manager" \
  --kube-scheduler-binary "$bin/kube-scheduler" \
  --etcd-binary "$bin/etcd" \
  --kwok-controller-binary "$bin/kwok" \
  --quiet-pull \
  --timeout 5m 9>&- >&2 # 9>&-: the daemons must not inherit (and so hold) our lock
kwokctl --name "$cluster_name" get kubeconfig >"$meta_dir/kubeconfig"
chmod 600 "$meta_dir/kubeconfig"
echo "$bin" >"$meta_dir/bin"

until [ "$(kubectl_ours get --raw /readyz 2>/dev/null)" = ok ]; do
  if ((SECONDS - start > 120)); then log "apiserver not ready after 120s"; exit 1; fi
  sleep 0.5
done
nodes_manifest | kubectl_ours apply -f - >&2
if ! wait_healthy 120; then
  log "cluster did not become healthy within 120s; components:"
  tail -n 5 "$state_dir"/logs/*.log >&2 || true
  exit 1
fi
log "cluster $cluster_name ready in $((SECONDS - start))s"
publish_kubeconfig
record_lease created
echo "$kubeconfig_out"
