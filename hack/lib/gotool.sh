# Sourced by hack/helm/build.sh and hack/kubeconform/build.sh: builds one program of a Go
# module pinned by the go.mod/go.sum beside the calling script, into a cache outside the
# repository keyed by version and by the hash of go.mod, go.sum and the build flags, so a
# second run is a no-op. One build at a time per tool and machine: a second caller waits on
# the lock, then finds the result. Prints the program's path on stdout (last line).
#
#   gotool_build NAME VERSION MODULE_DIR PACKAGE [LDFLAGS]
gotool_build() {
  local name="$1" version="$2" here="$3" package="$4" ldflags="${5:-}"
  local cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
  local key dir
  key="$( (cat "$here/go.mod" "$here/go.sum"; echo "$ldflags") | sha256sum | cut -c1-12)"
  dir="$cache_root/$name/${version}_${key}"
  if [ -x "$dir/$name" ]; then echo "$dir/$name"; return 0; fi

  mkdir -p "$cache_root/$name"
  exec 8>"$cache_root/$name/build.lock"
  flock 8
  if [ -x "$dir/$name" ]; then echo "$dir/$name"; return 0; fi

  echo "[build] building $name $version ($package)" >&2
  local started=$SECONDS
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false" \
    go build -ldflags "-s -w $ldflags" -o "$dir.partial/$name" "$package")
  echo "[build] $name built in $((SECONDS - started))s" >&2
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  echo "$dir/$name"
}
