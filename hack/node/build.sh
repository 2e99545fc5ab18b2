#!/usr/bin/env bash
# Builds what a real node of the local cluster runs (hack/node/up.sh), from pinned versions
# (hack/node/versions.env, and hack/cluster/versions.env for the kubelet):
#   kubelet                   k8s.io/kubernetes/cmd/kubelet, same module and ldflags as the
#                             control plane (module: hack/node/kubelet, made by gen-module.sh)
#   containerd, containerd-shim-runc-v2, ctr
#                             containerd v2, static (CGO_ENABLED=0, no btrfs/devmapper/zfs)
#   bridge, host-local, loopback
#                             CNI plugins (github.com/containernetworking/plugins)
#   pause.tar                 the sandbox image: hack/node/pause, static, as an OCI archive
#   busybox.tar               a busybox image for node tests (Debian's busybox-static, unpacked
#                             from its .deb, never installed)
#   runc                      Debian's package, installed with apt-get when missing
#
# Every part is cached outside the repository (like hack/cluster/build.sh), keyed by version
# and by the hash of its inputs, so a second run is a no-op.
# Output: prints the node's bin directory on stdout (last line); node.env inside it names the
# images and runc.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/versions.env
source "$here/../cluster/versions.env"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
cache="$cache_root/node-bin"
log() { echo "[node-build] $*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

# The kubelet module must be the control plane's version: a stale module is a mistake to
# fix (gen-module.sh), not something to build.
grep -qxF "require k8s.io/kubernetes $KUBERNETES_VERSION" "$here/kubelet/go.mod" || {
  log "hack/node/kubelet/go.mod is not at k8s.io/kubernetes $KUBERNETES_VERSION: run hack/node/gen-module.sh"
  exit 1
}

runc_bin() { command -v runc 2>/dev/null || { [ -x /usr/sbin/runc ] && echo /usr/sbin/runc; }; }
busybox_version() {
  apt-cache policy "$BUSYBOX_PACKAGE" 2>/dev/null | sed -n 's/^ *Candidate: *\(.*\)$/\1/p' | head -n1
}
busybox_ver="$(busybox_version)"
if [ -z "$busybox_ver" ] || [ "$busybox_ver" = "(none)" ]; then
  # A fresh machine may come without package lists.
  log "apt knows no $BUSYBOX_PACKAGE yet: apt-get update"
  apt-get update -qq >&2
  busybox_ver="$(busybox_version)"
fi
if [ -z "$busybox_ver" ] || [ "$busybox_ver" = "(none)" ]; then
  log "apt has no $BUSYBOX_PACKAGE in its sources"
  exit 1
fi
busybox_tag="$(echo "${busybox_ver#*:}" | tr -c 'A-Za-z0-9_.\n-' '-')"

kubelet_dir="$cache/kubelet-${KUBERNETES_VERSION}_$(hash_of "$here/kubelet/go.mod" "$here/kubelet/go.sum")"
containerd_dir="$cache/containerd-$CONTAINERD_VERSION"
cni_dir="$cache/cni-plugins-$CNI_PLUGINS_VERSION"
pause_dir="$cache/pause-${PAUSE_TAG}_$(hash_of "$here"/pause/* "$here/oci_image.py")"
busybox_dir="$cache/busybox-${busybox_tag}_$( (cat "$here/oci_image.py"; sed -n '/^build_busybox()/,/^}/p' "$0") |
  sha256sum | cut -c1-12)"
pause_image="headroom.dev/pause:$PAUSE_TAG"
busybox_image="headroom.dev/busybox:$busybox_tag"
final="$cache/node-$(echo "$kubelet_dir $containerd_dir $cni_dir $pause_dir $busybox_dir" | sha256sum | cut -c1-12)"

complete() { [ -f "$final/.complete" ] && [ -n "$(runc_bin)" ]; }
if complete; then echo "$final"; exit 0; fi

mkdir -p "$cache"
exec 8>"$cache/build.lock"
flock 8
if complete; then echo "$final"; exit 0; fi

# Builds into DIR.partial and renames it DIR when the step succeeded; skipped if DIR exists.
step() {
  local dir="$1" what="$2" start=$SECONDS
  shift 2
  [ -d "$dir" ] && return 0
  log "building $what"
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  "$@" "$dir.partial"
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  log "built $what in $((SECONDS - start))s"
}

build_kubelet() {
  local out="$1" minor="${KUBERNETES_VERSION#v}"
  minor="${minor#*.}" minor="${minor%%.*}"
  # The same version ldflags as the control plane's binaries (hack/cluster/build.sh).
  local pkg=k8s.io/component-base/version
  local ld="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  ld="$ld -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$here/kubelet" && CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false" \
    go build -ldflags "$ld" -o "$out/kubelet" k8s.io/kubernetes/cmd/kubelet)
}

# `go install module@version` (no replace directives in these releases): the release's own
# go.mod and go.sum decide every dependency, checked against the Go checksum database.
go_install() {
  local out="$1" tags="$2" ld="$3"
  shift 3
  (cd "$out" && GOBIN="$out" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
    go install -tags "$tags" -ldflags "$ld" "$@")
}

build_containerd() {
  local m=github.com/containerd/containerd/v2
  go_install "$1" "no_btrfs no_devmapper no_zfs" \
    "-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" \
    "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "$m/cmd/ctr@$CONTAINERD_VERSION"
}

build_cni() {
  local m=github.com/containernetworking/plugins
  go_install "$1" "" "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "$m/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
    "$m/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
    "$m/plugins/ipam/host-local@$CNI_PLUGINS_VERSION"
}

build_pause() {
  local out="$1"
  mkdir -p "$out/rootfs"
  (cd "$here/pause" && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
    go build -ldflags "-s -w" -o "$out/rootfs/pause" .)
  python3 "$here/oci_image.py" --rootfs "$out/rootfs" --name "$pause_image" \
    --entrypoint '["/pause"]' --out "$out/pause.tar" >/dev/null
  rm -rf "$out/rootfs"
}

build_busybox() {
  local out="$1" deb applet
  mkdir -p "$out/deb" "$out/rootfs/bin" "$out/rootfs/etc" "$out/rootfs/tmp"
  (cd "$out/deb" && apt-get download -qq -o APT::Sandbox::User=root "$BUSYBOX_PACKAGE=$busybox_ver" >&2)
  deb="$(ls "$out"/deb/*.deb)"
  dpkg-deb -x "$deb" "$out/deb/x"
  cp "$out/deb/x/bin/busybox" "$out/rootfs/bin/busybox"
  for applet in $("$out/rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$out/rootfs/bin/$applet"
  done
  chmod 1777 "$out/rootfs/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$out/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/rootfs/etc/group"
  python3 "$here/oci_image.py" --rootfs "$out/rootfs" --name "$busybox_image" \
    --cmd '["/bin/sh"]' --env PATH=/bin --out "$out/busybox.tar" >/dev/null
  rm -rf "$out/deb" "$out/rootfs"
}

if [ -z "$(runc_bin)" ]; then
  log "installing Debian's $RUNC_PACKAGE (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$RUNC_PACKAGE" >&2
fi

step "$pause_dir" "pause image ($pause_image)" build_pause
step "$busybox_dir" "busybox image ($busybox_image)" build_busybox
step "$cni_dir" "CNI plugins $CNI_PLUGINS_VERSION" build_cni
step "$containerd_dir" "containerd $CONTAINERD_VERSION" build_containerd
step "$kubelet_dir" "kubelet $KUBERNETES_VERSION" build_kubelet

rm -rf "$final.partial" && mkdir -p "$final.partial/bin" "$final.partial/cni" "$final.partial/images"
cp -l "$kubelet_dir/kubelet" "$containerd_dir"/{containerd,containerd-shim-runc-v2,ctr} "$final.partial/bin/"
cp -l "$cni_dir"/{bridge,host-local,loopback} "$final.partial/cni/"
cp -l "$pause_dir/pause.tar" "$busybox_dir/busybox.tar" "$final.partial/images/"
cat >"$final.partial/node.env" <<ENV
KUBERNETES_VERSION=$KUBERNETES_VERSION
CONTAINERD_VERSION=$CONTAINERD_VERSION
CNI_PLUGINS_VERSION=$CNI_PLUGINS_VERSION
PAUSE_IMAGE=$pause_image
BUSYBOX_IMAGE=$busybox_image
RUNC=$(runc_bin)
ENV
: >"$final.partial/.complete"
rm -rf "$final" && mv "$final.partial" "$final"
echo "$final"
