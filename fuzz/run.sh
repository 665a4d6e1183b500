#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one
# process each (one core), from the seed corpus (made by seed.sh if missing).
# Prints one line per target: runs and execs/s, or the crashing input's path.
# Exit 0: no crash (or no nightly toolchain: skipped); 1: a crash or a failed
# build. See FUZZING.md.
#
# Environment: MSB_FUZZ_TARGET_DIR (default fuzz/target; a directory outside
# the clone keeps the build warm across fresh clones),
# MSB_FUZZ_SANITIZER (default none; address for ASan builds),
# MSB_FUZZ_TARGETS (default: all), MSB_FUZZ_FSCK=1 (erofs_writer also runs
# fsck.erofs on every image).
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain; skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
[ -d corpus ] || ./seed.sh >&2

# Release with debug assertions and overflow checks; no sanitizer by default
# (FUZZING.md: an ASan build of wasmtime costs minutes more, and the code
# under test is safe Rust).
target_dir=${MSB_FUZZ_TARGET_DIR:-$here/target}
flags=(-O -a --sanitizer "${MSB_FUZZ_SANITIZER:-none}" --codegen-units 16)
start=$(date +%s)
# A target directory shared by several checkouts (MSB_FUZZ_TARGET_DIR) holds
# this repository's crates built from each of them, and rustc then finds two
# candidates for one crate. Rebuild ours from this checkout (about a minute);
# the dependencies, nearly all of the build, stay warm.
if [ -n "${MSB_FUZZ_TARGET_DIR:-}" ]; then
  cargo +nightly clean -q --manifest-path Cargo.toml --target-dir "$target_dir" --release \
    --target x86_64-unknown-linux-gnu -p msb-fuzz -p msb -p msb-erofs -p msb-plugin-sdk \
    -p oci-layout -p docker-save -p docker-v1 -p containers-dir
fi
if ! cargo +nightly fuzz build "${flags[@]}" --target-dir "$target_dir" >build.log 2>&1; then
  tail -n 30 build.log >&2
  echo "fuzz: build failed (fuzz/build.log)"
  exit 1
fi
echo "fuzz: built in $(($(date +%s) - start)) s"

# The binaries are run directly: `cargo fuzz run` would check the build
# again before each target.
bin=$target_dir/x86_64-unknown-linux-gnu/release
targets=${MSB_FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
for target in $targets; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log=$logs/$target.log
  if "$bin/$target" -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 "corpus/$target" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    echo "fuzz: $target: ${runs:-?} runs, ${speed:-?} execs/s, coverage ${cov:-?}"
  else
    failed=1
    crash=$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1)
    grep -m 3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed "s/^/fuzz: $target: /" || true
    echo "fuzz: $target: CRASH, input in fuzz/${crash:-artifacts/$target/}"
    echo "fuzz: $target: reproduce: cargo +nightly fuzz run ${flags[*]} $target fuzz/${crash:-artifacts/$target/...}"
  fi
done
exit $failed
