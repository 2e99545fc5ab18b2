#!/usr/bin/env bash
# Builds kubeconform (the manifest tests validate rendered objects with `kubeconform -strict`
# against schemas generated locally; tests/manifests) from its Go module, pinned in go.mod
# beside this script, cached outside the repository like promtool (hack/lib/gotool.sh), and
# fetches into the Go module cache the two modules the schemas are generated from
# (schema-sources.env), so that the tests never download.
# Measured cold (empty module and build caches, 2 shared cores): 57 s wall, 57 s CPU.
# Output: prints the kubeconform path on stdout (last line).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/gotool.sh
source "$here/../lib/gotool.sh"
version="$(sed -n 's#^require github.com/yannh/kubeconform \(v[^ ]*\)$#\1#p' "$here/go.mod")"
[ -n "$version" ] || { echo "cannot read the version from $here/go.mod" >&2; exit 1; }
# shellcheck source=../cluster/versions.env
source "$here/../cluster/versions.env"
# shellcheck source=schema-sources.env
source "$here/schema-sources.env"
(cd "$here" && go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION" \
  "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
gotool_build kubeconform "$version" "$here" github.com/yannh/kubeconform/cmd/kubeconform
