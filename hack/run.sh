#!/usr/bin/env bash
# `make run`: the local cluster (or the one KUBECONFIG names), the CRDs, the sample
# accounts and sessions in namespace headroom-demo, and the operator in the foreground.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ns="${HEADROOM_DEMO_NAMESPACE:-headroom-demo}"

if [ -n "${KUBECONFIG:-}" ]; then
  echo "[run] using the cluster from KUBECONFIG" >&2
  kubectl_bin="$(command -v kubectl || echo "$(hack/cluster/build.sh | tail -n1)/kubectl")"
else
  export KUBECONFIG="$(hack/cluster/up.sh | tail -n1)"
  kubectl_bin="$(hack/cluster/build.sh | tail -n1)/kubectl"
fi
kubectl() { "$kubectl_bin" "$@"; }

echo "[run] installing CRDs from crds/" >&2
kubectl apply --server-side --force-conflicts -f crds/
kubectl wait --for=condition=Established --timeout=60s -f crds/
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
echo "[run] applying manifests/samples to namespace $ns" >&2
kubectl apply -k manifests/samples -n "$ns"

echo "[run] starting the operator on namespace $ns (Ctrl-C stops it)" >&2
exec "$root/.venv/bin/headroom" operator --namespace "$ns"
