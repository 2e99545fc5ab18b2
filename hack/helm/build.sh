#!/usr/bin/env bash
# Builds helm (the chart tests run `helm lint`, `template`, `install`, `upgrade`, `uninstall`
# with it) from its Go module, pinned in go.mod beside this script, and caches it outside the
# repository like promtool (hack/lib/gotool.sh), keyed by version and the hash of go.mod/go.sum.
# Measured cold (empty module and build caches, 2 shared cores): 4.5 min wall, 4.8 min CPU.
#
# The version and the Kubernetes minor that `helm template` reports as .Capabilities are
# stamped the way helm's own Makefile does; without them `helm version` says "v3.x-unreleased"
# and the default capabilities are the ones compiled into the source.
# Output: prints the helm path on stdout (last line).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/gotool.sh
source "$here/../lib/gotool.sh"
version="$(sed -n 's#^require helm.sh/helm/v3 \(v[^ ]*\)$#\1#p' "$here/go.mod")"
k8s="$(sed -n 's#^\tk8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$here/go.mod")"
[ -n "$version" ] && [ -n "$k8s" ] || { echo "cannot read versions from $here/go.mod" >&2; exit 1; }
ld="-X helm.sh/helm/v3/internal/version.version=$version"
ld="$ld -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/chartutil pkg/lint/rules; do
  ld="$ld -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s"
done
gotool_build helm "$version" "$here" helm.sh/helm/v3/cmd/helm "$ld"
