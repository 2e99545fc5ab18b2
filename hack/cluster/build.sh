#!/usr/bin/env bash
# Builds the embedded control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, kwokctl) from Go modules.
#
# Binaries are cached outside the repository, keyed by version and by the hash of
# the go.mod/go.sum that produced them, so a second build is a no-op.
# Output: prints the bin directory on stdout (last line).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
key="$(cat "$here/versions.env" "$here"/*/go.mod "$here"/*/go.sum | sha256sum | cut -c1-12)"
bin="$cache_root/cluster-bin/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${key}"
programs=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)

have_all() { for p in "${programs[@]}"; do [ -x "$bin/$p" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

# One build at a time per machine: a second caller waits, then finds the result.
mkdir -p "$cache_root/cluster-bin"
exec 8>"$cache_root/cluster-bin/build.lock"
flock 8
if have_all; then echo "$bin"; exit 0; fi

mkdir -p "$bin.partial"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false"

log() { echo "[build] $*" >&2; }

build_k8s() {
  local minor="${KUBERNETES_VERSION#v}"; minor="${minor#*.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  local ld="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  ld="$ld -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for p in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$bin.partial/$p" ] && continue
    log "building $p $KUBERNETES_VERSION"
    (cd "$here/kubernetes" && go build -ldflags "$ld" -o "$bin.partial/$p" "k8s.io/kubernetes/cmd/$p")
  done
}

build_etcd() {
  [ -x "$bin.partial/etcd" ] && return
  log "building etcd $ETCD_VERSION"
  (cd "$here/etcd" && go build -ldflags "-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  ld="$ld -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION"
  for p in kwok kwokctl; do
    [ -x "$bin.partial/$p" ] && continue
    log "building $p $KWOK_VERSION"
    (cd "$here/kwok" && go build -ldflags "$ld" -o "$bin.partial/$p" "sigs.k8s.io/kwok/cmd/$p")
  done
}

build_etcd
build_kwok
build_k8s
rm -rf "$bin" && mv "$bin.partial" "$bin"
echo "$bin"
