#!/usr/bin/env bash
# Installs checkov (PyPI) into a virtualenv of its own in the cache, keyed by the hash of
# requirements.txt beside this script and the Python version, like the Go tools: a second run
# is a no-op. Its own environment because its pins conflict with the dev tools' (see
# requirements.txt).
# Output: prints the checkov path on stdout (last line).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
cache_root="${HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headroom}"
key="$( (cat "$here/requirements.txt"; "$python" --version) | sha256sum | cut -c1-12)"
version="$(sed -n 's/^checkov==\(.*\)$/\1/p' "$here/requirements.txt")"
dir="$cache_root/checkov/${version}_${key}"
# The stamp is written last: a venv without it is an interrupted install.
if [ -f "$dir/.installed" ]; then echo "$dir/bin/checkov"; exit 0; fi

mkdir -p "$cache_root/checkov"
exec 8>"$cache_root/checkov/install.lock"
flock 8
if [ -f "$dir/.installed" ]; then echo "$dir/bin/checkov"; exit 0; fi

echo "[install] checkov $version into $dir" >&2
# A virtualenv's scripts name its own path, so it is built where it stays.
rm -rf "$dir"
"$python" -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$dir/bin/checkov" --version >&2
touch "$dir/.installed"
echo "$dir/bin/checkov"
