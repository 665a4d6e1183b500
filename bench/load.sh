#!/usr/bin/env bash
# Benchmarks `msb load` and `msb save` against baselines run on the same
# archive, on tmpfs (/dev/shm), and prints ratios (msb time / baseline time)
# and msb's peak memory. Usage: bench/load.sh [SIZE_MB]   (default 512)
#
# Baselines:
#   openssl dgst -sha256   hashing the archive once (SHA-NI), a floor for "verify every byte"
#   gzip -dc               decompressing the layer once, a floor for import
#   skopeo copy            oci-archive → oci: directory, what a user would otherwise run
set -euo pipefail
size_mb=${1:-512}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /dev/shm/msb-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$root" && cargo build --release --quiet -p msb)
msb="$root/target/release/msb"

echo "building a ${size_mb} MiB image (half random, half text) in $work" >&2
cd "$work"
umoci init --layout layout >/dev/null
umoci new --image layout:bench
umoci unpack --image layout:bench bundle >/dev/null
mkdir -p bundle/rootfs/data
head -c $((size_mb / 2))M /dev/urandom > bundle/rootfs/data/random.bin
(yes "the quick brown fox jumps over the lazy dog $RANDOM" || true) | head -c $((size_mb / 2))M > bundle/rootfs/data/text.txt
for i in $(seq 1 2000); do echo "$i" > "bundle/rootfs/data/small-$i"; done
umoci repack --image layout:bench bundle >/dev/null
rm -rf bundle
skopeo copy -q oci:layout:bench oci-archive:image.tar:bench:1
layer=$(ls -S layout/blobs/sha256 | head -1)

# seconds (wall) of a command, best of 3
best() {
  local best=""
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    local t; t=$(echo "$end - $start" | bc -l)
    if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
  done
  echo "$best"
}
load() { rm -rf "$work/home"; MSB_HOME="$work/home" MSB_PLUGIN_CACHE="$work/cache" "$msb" load -q -i "$work/image.tar"; }
save() { MSB_HOME="$work/home" "$msb" save -o "$work/out.tar" bench:1; }
copy() { rm -rf "$work/skopeo"; skopeo copy -q "oci-archive:$work/image.tar" "oci:$work/skopeo:bench"; }

t_load=$(best load)
t_save=$(best save)
t_sha=$(best openssl dgst -sha256 image.tar)
t_gunzip=$(best sh -c "gzip -dc layout/blobs/sha256/$layer > /dev/null")
t_skopeo=$(best copy)
t_cp=$(best cp image.tar copy.tar)
rss=$( { /usr/bin/time -f %M "$msb" load -q -i image.tar --home "$work/home2" >/dev/null; } 2>&1 | tail -1)

printf '%-34s %8s\n' "archive (MiB)" "$(( $(stat -c %s image.tar) / 1048576 ))"
printf '%-34s %8.2f s\n' "msb load" "$t_load"
printf '%-34s %8.2f x\n' "  / openssl dgst -sha256" "$(echo "$t_load / $t_sha" | bc -l)"
printf '%-34s %8.2f x\n' "  / gzip -dc of the layer" "$(echo "$t_load / $t_gunzip" | bc -l)"
printf '%-34s %8.2f x\n' "  / skopeo copy to oci:" "$(echo "$t_load / $t_skopeo" | bc -l)"
printf '%-34s %8.2f s\n' "msb save" "$t_save"
printf '%-34s %8.2f x\n' "  / cp of the archive" "$(echo "$t_save / $t_cp" | bc -l)"
printf '%-34s %8d MiB\n' "msb load peak RSS" "$((rss / 1024))"
