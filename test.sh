#!/usr/bin/env bash
# Runs every test: installs what they need (Debian packages for skopeo,
# umoci, erofs-utils, python3 and pip, podman, containerd, docker-registry, apache2-utils,
# openssl, curl; the wasm32-wasip2 target), then one release build shared
# by the unit and end-to-end tests, then the decoders' own tests.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v fsck.erofs >/dev/null || missing+=(erofs-utils)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)  # examples/python-oci/build.sh installs componentize-py
command -v podman >/dev/null || missing+=(podman)
command -v containerd >/dev/null || missing+=(containerd)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi
PATH="$(tests/tools/erofs-utils.sh):$PATH"; export PATH  # erofs-utils 1.8.6 (512-byte blocks); a failed build stops here
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --locked --manifest-path plugins/Cargo.toml --target-dir target/plugins-native --workspace 2>&1 | tee -a "$log"
cargo test --release --locked --workspace 2>&1 | tee -a "$log"
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
MSB_FUZZ_TARGET_DIR=~/.cache/msb/fuzz-target fuzz/run.sh 15  # every fuzz target, 15 s each (FUZZING.md)
