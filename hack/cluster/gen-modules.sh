#!/usr/bin/env bash
# Regenerates the consumer modules kubernetes/, etcd/ and kwok/ from versions.env
# (run it after changing a version there, then commit the go.mod/go.sum files).
#
# k8s.io/kubernetes and etcd's server module both require sibling modules at
# placeholder versions and redirect them with local-path replace directives, which
# do not apply to a consumer. So each sibling gets a replace pinned to the release:
# k8s.io/X => k8s.io/X v0.MINOR.PATCH, go.etcd.io/etcd/X => the same etcd version.
#
#   gen-modules.sh [OUT_DIR]   (default: this directory; another dir is handy for a diff)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
# shellcheck source=versions.env
source "$here/versions.env"
export GOFLAGS=-mod=mod

release_gomod() { # module@version -> path of its go.mod in the module cache
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

# The local-path replaces of a release's go.mod, re-pinned to version $2.
pinned_replaces() {
  grep -v FORBIDDEN_DEPENDENCY "$1" |
    sed -n 's#^[[:space:]]\{1,\}\([^[:space:]]*\) => \.\{1,2\}/.*$#\t\1 => \1 '"$2"'#p'
}

write_module() { # dir, required module, version, extra go.mod text, packages for tools.go
  local dir="$out/$1"
  mkdir -p "$dir"
  {
    echo "module headroom.dev/hack/cluster/$1"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1.0/')"
    echo
    echo "require $2 $3"
    if [ -n "$4" ]; then printf '\n%s\n' "$4"; fi
  } >"$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the programs that hack/cluster/build.sh compiles."
    echo "package tools"
    echo
    echo "import ("
    local pkg
    for pkg in $5; do echo "	_ \"$pkg\""; done
    echo ")"
  } >"$dir/tools.go"
  (
    cd "$dir"
    gofmt -w tools.go
    go mod tidy
    # Drop the replaces of sibling modules that nothing we build uses.
    local used mod
    used="$(go list -m -f '{{.Path}}' all)"
    for mod in $(go mod edit -print | sed -n 's/^[[:space:]]*\([^[:space:]]*\) => .*/\1/p'); do
      grep -qxF "$mod" <<<"$used" || go mod edit -dropreplace="$mod"
    done
  )
}

k8s_mod="$(release_gomod "k8s.io/kubernetes@$KUBERNETES_VERSION")"
staging_version="v0.${KUBERNETES_VERSION#v1.}"
k8s_extra="$(grep -m1 '^godebug ' "$k8s_mod" || true)"
k8s_extra="$k8s_extra${k8s_extra:+$'\n\n'}replace (
$(pinned_replaces "$k8s_mod" "$staging_version")
)"
write_module kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" "$k8s_extra" \
  "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
   k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"

etcd_mod="$(release_gomod "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
etcd_extra="replace (
$(pinned_replaces "$etcd_mod" "$ETCD_VERSION")
)"
write_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$etcd_extra" go.etcd.io/etcd/server/v3

write_module kwok sigs.k8s.io/kwok "$KWOK_VERSION" "" \
  "sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl"
echo "modules written to $out" >&2
