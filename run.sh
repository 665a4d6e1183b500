#!/usr/bin/env bash
# Builds msb (release) and runs it with the given arguments, e.g.
#   ./run.sh load -i image.tar
# Installs the wasm32-wasip2 target the decoder plugins are built for.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
(
  cd "$root"
  rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2
  # Progress on stderr (the first build takes a few minutes); stdout stays msb's.
  cargo build --release --locked -p msb >&2
)
exec "$root/target/release/msb" "$@"
