#!/usr/bin/env bash
# Builds the py-oci-layout decoder (app.py) into the component OUT.wasm:
#   examples/python-oci/build.sh OUT.wasm
# componentize-py (pinned below) is installed from PyPI with `pip install
# --target` into ~/.cache/msb/tools the first time; later builds reuse it.
# Needs python3 with pip, and PyPI for the first build.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 OUT.wasm" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "$1")

version=0.25.1
tools=${XDG_CACHE_HOME:-$HOME/.cache}/msb/tools
lib=$tools/componentize-py-$version
componentize_py() {
  PYTHONPATH=$lib python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "$@"
}
if ! componentize_py --version >/dev/null 2>&1; then
  python3 -m pip --version >/dev/null 2>&1 || { echo "build.sh: python3 with pip is needed to install componentize-py" >&2; exit 1; }
  mkdir -p "$tools"
  tmp=$(mktemp -d "$lib.XXXXXX")
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$tmp" \
    "componentize-py==$version" || { rm -rf "$tmp"; echo "build.sh: could not install componentize-py $version from PyPI" >&2; exit 1; }
  rm -rf "$lib" && mv "$tmp" "$lib"
fi

# app.py alone is the component's Python path (componentize-py generates the
# bindings itself), so nothing else gets in and nothing is written here.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
mkdir -p "$(dirname "$out")"
cd "$work"
componentize_py -d "$here/../../wit/v0.1.0" -w decoder componentize -p "$work" app -o "$work/out.wasm"
mv "$work/out.wasm" "$out.$$" && mv "$out.$$" "$out"  # in place at once, even if two builds race
