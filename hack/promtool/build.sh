#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker and rule unit-test runner) from its Go module,
# pinned in go.mod beside this script, and caches it outside the repository like the control
# plane (hack/cluster/build.sh): keyed by the hash of go.mod/go.sum, so a second run is a
# no-op. The alert tests (tests/manifests) run `promtool test rules` with it. Measured cold
# (empty module and build caches, 2 shared cores): 7 min wall, 4 min CPU.
#
# Why a consumer module and not `go install ...@version`: the release's go.mod has replace and
# exclude directives, which `go install` refuses. Why 3.15.0 and not 3.16.0: v0.316.0 pins a
# github.com/hashicorp/nomad/api pseudo-version that the Go proxy answers with
# "403 Forbidden: This module version is not available".
# Output: prints the promtool path on stdout (last line).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's#^require github.com/prometheus/prometheus \(v[^ ]*\)$#\1#p' "$here/go.mod")"
# Rule checks and rule unit tests need no service discovery: Prometheus's own build tag leaves
# out every SD plugin (cloud SDKs, Kubernetes client), which is most of the compile time.
tags=remove_all_sd

cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
key="$( (cat "$here/go.mod" "$here/go.sum"; echo "$tags") | sha256sum | cut -c1-12)"
dir="$cache_root/promtool/${version}_${key}"
if [ -x "$dir/promtool" ]; then echo "$dir/promtool"; exit 0; fi

# One build at a time per machine: a second caller waits, then finds the result.
mkdir -p "$cache_root/promtool"
exec 8>"$cache_root/promtool/build.lock"
flock 8
if [ -x "$dir/promtool" ]; then echo "$dir/promtool"; exit 0; fi

echo "[build] building promtool (prometheus module $version)" >&2
rm -rf "$dir.partial" && mkdir -p "$dir.partial"
(cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false" \
  go build -tags "$tags" -ldflags "-s -w" -o "$dir.partial/promtool" \
  github.com/prometheus/prometheus/cmd/promtool)
"$dir.partial/promtool" --version >&2
rm -rf "$dir" && mv "$dir.partial" "$dir"
echo "$dir/promtool"
