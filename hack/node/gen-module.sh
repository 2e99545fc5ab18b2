#!/usr/bin/env bash
# Regenerates hack/node/kubelet/go.mod and go.sum: a consumer module of k8s.io/kubernetes at
# the control plane's version (hack/cluster/versions.env), so the kubelet is built from the
# very module the API server comes from. Run it after changing KUBERNETES_VERSION, then commit
# the two files. Like hack/cluster/gen-modules.sh, each staging module k8s.io/X the release
# redirects to a local path gets a replace pinned to the release (v0.MINOR.PATCH).
#
# A module of its own (not one more package in hack/cluster/kubernetes): the control plane's
# build key hashes that module's go.sum, and the kubelet's extra lines would rebuild it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/versions.env
source "$here/../cluster/versions.env"
export GOFLAGS=-mod=mod
dir="$here/kubelet"

k8s_mod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
staging="v0.${KUBERNETES_VERSION#v1.}"
mkdir -p "$dir"
{
  echo "module headroom.dev/hack/node/kubelet"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1.0/')"
  echo
  grep -m1 '^godebug ' "$k8s_mod" || true
  echo
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  echo
  echo "replace ("
  grep -v FORBIDDEN_DEPENDENCY "$k8s_mod" |
    sed -n 's#^[[:space:]]\{1,\}\([^[:space:]]*\) => \.\{1,2\}/.*$#\t\1 => \1 '"$staging"'#p'
  echo ")"
} >"$dir/go.mod"
cat >"$dir/tools.go" <<'GO'
//go:build tools

// Package tools pins the kubelet that hack/node/build.sh compiles.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
cd "$dir"
go mod tidy
used="$(go list -m -f '{{.Path}}' all)"
for mod in $(go mod edit -print | sed -n 's/^[[:space:]]*\([^[:space:]]*\) => .*/\1/p'); do
  grep -qxF "$mod" <<<"$used" || go mod edit -dropreplace="$mod"
done
echo "kubelet module written to $dir" >&2
