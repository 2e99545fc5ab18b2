#!/usr/bin/env bash
# Builds the operator and agent images from images/*/Dockerfile without a Docker daemon:
#   1. the base: Debian trixie from debootstrap --variant=minbase plus hack/images/base-packages,
#      committed as localhost/headroom-base:<key> (cached, keyed by versions.env and the list);
#   2. buildah (Debian's package, installed if missing) builds each Dockerfile with
#      --build-arg BASE_IMAGE=<that base>, host networking (for apt, npm and pip) and chroot
#      isolation (no runtime, no cgroups), reusing its layer cache;
#   3. each image is exported as an OCI archive named docker.io/library/<name> (what the CRI
#      calls "headroom-agent:dev"), re-exported only when the image changed.
#   --import   then import the archives into the running node (hack/node/import.sh), if any
#
# Everything lives in the cache (~/.cache/headroom/images): buildah's storage, the base's
# rootfs tarball, the archives. The whole script runs in a private mount namespace, so the
# mounts debootstrap and buildah make vanish with it, even if it is killed.
# Output: the archive paths, one a line (last lines of stdout).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
cache="$cache_root/images"
log() { echo "[images $(date +%T)] $*" >&2; }

do_import=false
for arg in "$@"; do
  case "$arg" in
  --import) do_import=true ;;
  *) log "unknown argument $arg"; exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, buildah)"; exit 1; }
if [ -z "${HEADROOM_IMAGES_PRIVATE_NS:-}" ]; then
  missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    log "installing Debian's ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
  fi
  mkdir -p "$cache"
  # One build at a time per machine; the lock is held outside the namespace.
  exec 8>"$cache/build.lock"
  flock 8
  HEADROOM_IMAGES_PRIVATE_NS=1 unshare --mount --propagation private "$0" "$@" 8>&-
  if $do_import; then
    mapfile -t archives < <(ls "$cache"/out/*.tar)
    "$repo_root/hack/node/import.sh" --if-running "${archives[@]}" >&2
  fi
  exit 0
fi

# --- inside the private mount namespace -----------------------------------------------------
total_start=$SECONDS
base_key="$( (cat "$here/versions.env" "$here/base-packages"; sed -n '/^build_base()/,/^}/p' "$0") |
  sha256sum | cut -c1-12)"
base_image="localhost/headroom-base:$BASE_SUITE-$base_key"
base_tar="$cache/base/headroom-base-$BASE_SUITE-$base_key.tar"
storage="$cache/storage"
out="$cache/out"
mkdir -p "$cache/base" "$storage" "$out"
# containers/storage keeps mount state in its run root; a fresh one per run (as /run after a
# reboot) matches this namespace, whose mounts all end with the run.
runroot="$(mktemp -d "$cache/run.XXXXXX")"
export TMPDIR="$cache/tmp"
mkdir -p "$TMPDIR"
trap 'rm -rf "$runroot" "$TMPDIR"' EXIT
bh() { buildah --root "$storage" --runroot "$runroot" --storage-driver overlay "$@"; }

build_base() {
  local rootfs="$cache/base/rootfs.partial" packages
  packages="$(grep -v '^#' "$here/base-packages" | paste -sd, -)"
  rm -rf "$rootfs"
  log "debootstrap $BASE_SUITE (minbase + $packages) from $BASE_MIRROR"
  debootstrap --variant=minbase --include="$packages" "$BASE_SUITE" "$rootfs" "$BASE_MIRROR" \
    >"$cache/base/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/base/debootstrap.log" >&2
    return 1
  }
  # What an image does not need: package caches and lists (the agent's build stage runs
  # apt-get update itself), documentation but the copyright files, man pages, translations,
  # logs, and the host's files debootstrap copied in (the runtime provides them).
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/info "$rootfs"/usr/share/locale/* \
    "$rootfs"/tmp/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname "$rootfs"/etc/hosts
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "${rootfs:?}"/dev/* "${rootfs:?}"/proc/* "${rootfs:?}"/sys/* "${rootfs:?}"/run/*
  tar --numeric-owner -C "$rootfs" -cf "$base_tar.partial" .
  mv "$base_tar.partial" "$base_tar"
  rm -rf "$rootfs"
}

start=$SECONDS
if ! bh inspect --type image "$base_image" >/dev/null 2>&1; then
  [ -f "$base_tar" ] || build_base
  log "committing $base_image from $(basename "$base_tar") ($(du -h "$base_tar" | cut -f1))"
  container="$(bh from --pull=never scratch)"
  bh add "$container" "$base_tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash "$container"
  bh commit --rm --quiet "$container" "$base_image" >/dev/null
  log "base ready in $((SECONDS - start))s"
else
  log "base $base_image cached"
fi

# The host's CA bundle, bound over the image's for the RUN steps only (never committed): a
# machine whose HTTPS goes through an intercepting proxy trusts that proxy's CA there, and
# apt, npm and pip inside the build must too.
host_cas="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"

build() { # log file, buildah build arguments...
  local log_file="$1"
  shift
  bh build --quiet --layers --pull=never --isolation chroot --network host \
    --volume "$host_cas:/etc/ssl/certs/ca-certificates.crt:ro" --ignorefile "$here/dockerignore" \
    --build-arg "BASE_IMAGE=$base_image" "$@" "$repo_root" >>"$log_file" 2>&1 || {
    tail -n 30 "$log_file" >&2
    return 1
  }
}

build_image() { # dockerfile, local name, archive name, build stages to keep cached
  local dockerfile="$1" name="$2" file="$3" start=$SECONDS id stage
  shift 3
  log "building $name from $dockerfile"
  : >"$cache/$file.build.log"
  # Each build stage tagged, so that pruning the untagged leftovers of earlier builds keeps
  # the layer cache of this one (npm ci, pip install).
  for stage in "$@"; do
    build "$cache/$file.build.log" -f "$repo_root/$dockerfile" --target "$stage" \
      -t "localhost/headroom-build-cache:$file-$stage"
  done
  build "$cache/$file.build.log" -f "$repo_root/$dockerfile" -t "localhost/$name"
  log "built $name in $((SECONDS - start))s"
  id="$(bh inspect --type image --format '{{.FromImageID}}' "localhost/$name")"
  if [ -f "$out/$file.tar" ] && [ "$(cat "$out/$file.id" 2>/dev/null)" = "$id" ]; then
    log "$file.tar is current"
    return 0
  fi
  start=$SECONDS
  rm -f "$out/$file.tar" "$out/$file.id"
  # Uncompressed layers: the archive never leaves this machine, and gzip would cost more
  # time (here and again at import) than the disk it saves.
  bh push --quiet --disable-compression "localhost/$name" \
    "oci-archive:$out/$file.tar.partial:docker.io/library/$name" >/dev/null
  mv "$out/$file.tar.partial" "$out/$file.tar"
  echo "$id" >"$out/$file.id"
  log "exported $file.tar ($(du -h "$out/$file.tar" | cut -f1)) in $((SECONDS - start))s"
}

build_image images/operator/Dockerfile "$OPERATOR_IMAGE" headroom python-build
build_image images/agent/Dockerfile "$AGENT_IMAGE" headroom-agent claude-code python-build
# What earlier builds left untagged (the layers of older commits): storage stays near its
# first size (about 2.6 GB) instead of growing with every change.
bh rmi --prune >/dev/null 2>&1 || true
log "images ready in $((SECONDS - total_start))s"
echo "$out/headroom.tar"
echo "$out/headroom-agent.tar"
