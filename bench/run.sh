#!/usr/bin/env bash
# Times msb against floors run in the same script on the same workload
# (bench/make-workload.py: real files from /usr in 3 layers), everything on
# tmpfs, and writes bench/RESULTS.md. See bench/README.md.
#
# usage: bench/run.sh [MB]          MiB of file data in the workload (default 1000)
# env:   MSB_MKFS_EROFS             an mkfs.erofs with --tar (erofs-utils 1.6+)
#        MSB_BENCH_RESULTS          where to write the results (default bench/RESULTS.md)
#        MSB_BENCH_KEEP=1           keep the run's stores in /dev/shm
#        MSB_BENCH_MSB=PATH         time this msb binary instead of building one
set -euo pipefail
mb=${1:-1000}
[[ $mb =~ ^[0-9]+$ ]] || { echo "bench/run.sh: MB must be a number of MiB, not '$mb'" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
results=${MSB_BENCH_RESULTS:-$root/bench/RESULTS.md}
export LC_ALL=C

for tool in python3 pigz zstd openssl awk; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench/run.sh: /usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }

if [ -n "${MSB_BENCH_MSB:-}" ]; then
    msb=$(realpath "$MSB_BENCH_MSB")
else
    (cd "$root" && cargo build --release --locked --quiet -p msb)
    msb=$root/target/release/msb
fi

# The workload, cached per size and generator version.
gen=$(sha256sum "$root/bench/make-workload.py" | cut -c1-12)
wl=/dev/shm/msb-bench-workload-$mb-$gen
if [ ! -e "$wl/done" ]; then
    rm -rf /dev/shm/msb-bench-workload-"$mb"-*
    echo "building the ${mb} MiB workload in $wl (cached for the next run)" >&2
    python3 "$root/bench/make-workload.py" --mb "$mb" --out "$wl"
    touch "$wl/done"
fi
wj() { python3 -c "import json,sys; d=json.load(open('$wl/workload.json')); print(eval(sys.argv[1]))" "$1"; }

work=$(mktemp -d /dev/shm/msb-bench-run.XXXXXX)
cleanup() { [ "${MSB_BENCH_KEEP:-}" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp MSB_CACHE_DIR=$work/plugin-cache
unset MSB_HOME

# ---- helpers ----------------------------------------------------------
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
size() { stat -c %s "$1"; }
sum_sizes() { local t=0 f; for f in "$@"; do t=$((t + $(size "$f"))); done; echo "$t"; }
dub() { du -sb "$1" | cut -f1; }

# msb under /usr/bin/time: peak RSS (KiB), user and system seconds into $work/rss.
# (appended: a job that runs msb more than once gets its peak and its total)
m() { /usr/bin/time -a -f "%M %U %S" -o "$work/rss" "$msb" "$@"; }

# best PREP CMD...: PREP (untimed), then CMD, three times. Sets T (best wall
# seconds), CPU (user+sys seconds of that run, for commands run through m)
# and RSS (peak KiB over the three runs, 0 without m). Returns 1, with the
# error in $work/err, when a run fails.
best() {
    local prep=$1 i s e ns r c best_ns=
    shift
    RSS=0 CPU=0
    for i in 1 2 3; do
        "$prep"
        rm -f "$work/rss"
        s=$(date +%s%N)
        "$@" >/dev/null 2>"$work/err" || { echo "bench/run.sh: $* failed: $(first_error)" >&2; return 1; }
        e=$(date +%s%N)
        ns=$((e - s))
        r=0 c=0
        [ -s "$work/rss" ] && read -r r c < <(awk '/^[0-9]/ { if ($1 > r) r = $1; c += $2 + $3 } END { printf "%d %.2f\n", r, c }' "$work/rss")
        [ "$r" -gt "$RSS" ] && RSS=$r
        if [ -z "$best_ns" ] || [ "$ns" -lt "$best_ns" ]; then best_ns=$ns CPU=$c; fi
    done
    T=$(calc "$best_ns / 1e9" 3)
}
nothing() { :; }
first_error() { grep -v '^\s*$' "$work/err" | tail -1 | cut -c1-160; }

# Rows of the jobs table, also printed as they come.
declare -A SEC MBS PEAK CPUS
jobs_md=()
peak_kib=0 peak_job=
md() { echo "${1//|/\\|}"; } # a markdown table cell
# STORE: the store's MB after a cold load, for the next record only.
STORE=
# record NAME BYTES [FLOOR_NAME [RATIO]]: the last best() as a row; its ratio
# against FLOOR_NAME's seconds, or RATIO (then FLOOR_NAME is free text).
record() {
    local name=$1 bytes=$2 floor=${3:-} ratio=${4:-} rss="" cpu=""
    SEC[$name]=$T
    MBS[$name]=$(calc "$bytes / 1e6 / $T" 0)
    if [ "$RSS" -gt 0 ]; then
        rss=$(calc "$RSS / 1024" 1) cpu=$CPU
        PEAK[$name]=$RSS CPUS[$name]=$CPU
        if [ "$RSS" -gt "$peak_kib" ]; then peak_kib=$RSS peak_job=$name; fi
    fi
    [ -n "$floor" ] && [ -z "$ratio" ] && ratio="$(calc "$T / ${SEC[$floor]}")×"
    printf '%-50s %7s s %6s MB/s %6s MiB %5s cpu-s  %s\n' "$name" "$T" "${MBS[$name]}" "${rss:--}" "${cpu:--}" "${ratio:+$ratio }$floor"
    jobs_md+=("| $(md "$name") | $T | ${MBS[$name]} | ${rss:-–} | ${cpu:-–} | ${STORE:-–} | ${ratio:-–} | $(md "${floor:-–}") |")
    STORE=
}
skipped() {
    printf '%-50s %s\n' "$1" "$2"
    jobs_md+=("| $(md "$1") | – | – | – | – | – | – | $(md "$2") |")
}

# Targets: NAME MEASURED LIMIT WHY-IF-MISSED (MEASURED empty: not measured, WHY says why).
targets_md=()
target() {
    local name=$1 got=$2 limit=$3 why=$4 verdict
    if [ -z "$got" ]; then
        verdict="not measured"
    elif awk "BEGIN { exit !($got <= $limit) }"; then
        verdict="met" why="–"
    else
        verdict="**missed**"
    fi
    targets_md+=("| $(md "$name") | ${got:-–} | ≤ $limit | $verdict | $(md "$why") |")
}

ds=$wl/docker-save.tar gz=$wl/oci-gzip.tar zs=$wl/oci-zstd.tar dz=$wl/docker-save.tar.zst
ds_b=$(size "$ds") gz_b=$(size "$gz") zs_b=$(size "$zs") dz_b=$(size "$dz")
gz_layers=("$wl"/layers/*.tar.gz) zs_layers=("$wl"/layers/*.tar.zst) tar_layers=("$wl"/layers/?.tar)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "workload: $(wj 'd["files"]') files, $(calc "$(wj 'd["file_bytes"]') / 1e9") GB of file data, 3 layers; docker-save.tar $(calc "$ds_b / 1e9") GB" >&2
m plugin detect "$ds" >/dev/null 2>&1 # compiles the decoders into the plugin cache, untimed
printf '%-50s %9s %11s %10s %11s  %s\n' job seconds MB/s "peak RSS" "cpu" "ratio"

# ---- docker-save, plain layers ------------------------------------------
home_ds=$work/home-docker-save
fresh_ds() { rm -rf "$home_ds"; }
sha_ds() { openssl dgst -sha256 "$ds"; }
best nothing sha_ds; record "floor: openssl dgst -sha256 docker-save.tar" "$ds_b"
best fresh_ds m --home "$home_ds" load -q -i "$ds"
STORE=$(calc "$(dub "$home_ds") / 1e6" 0)
record "msb load docker-save.tar, cold" "$ds_b" "floor: openssl dgst -sha256 docker-save.tar"
home_full=$work/home-full
fresh_full() { rm -rf "$home_full"; "$msb" --home "$home_full" config layer-format full >/dev/null; }
if fresh_full >/dev/null 2>&1; then
    best fresh_full m --home "$home_full" load -q -i "$ds"
    STORE=$(calc "$(dub "$home_full") / 1e6" 0)
    record "msb load docker-save.tar, cold, layer-format full" "$ds_b" "floor: openssl dgst -sha256 docker-save.tar"
    rm -rf "$home_full"
fi
best nothing m --home "$home_ds" load -q -i "$ds"
record "msb load docker-save.tar, warm" "$ds_b" "floor: openssl dgst -sha256 docker-save.tar"
store_b=$(dub "$home_ds") store_layers_b=$(dub "$home_ds/layers") store_oci_b=$(dub "$home_ds/oci")
erofs_files=("$home_ds"/layers/*.erofs)
erofs_b=$(sum_sizes "${erofs_files[@]}")

# ---- msb save -------------------------------------------------------------
saved=$work/saved.tar
no_saved() { rm -f "$saved"; }
best no_saved m --home "$home_ds" save -o "$saved" "$(wj 'd["refs"]["docker-save.tar"]')"
saved_b=$(size "$saved")
save_T=$T save_RSS=$RSS save_CPU=$CPU
no_copy() { rm -f "$work/cat.tar"; }
cat_saved() { cat "$saved" > "$work/cat.tar"; }
best no_copy cat_saved; record "floor: cat of the saved tar to a tmpfs file" "$saved_b"
T=$save_T RSS=$save_RSS CPU=$save_CPU
record "msb save (combined) to a tmpfs file" "$saved_b" "floor: cat of the saved tar to a tmpfs file"
rm -f "$saved" "$work/cat.tar"

# ---- OCI, gzip and zstd layers ----------------------------------------------
# oci_job KIND ARCHIVE BYTES DECOMPRESSOR LAYERS...
oci_job() {
    local kind=$1 archive=$2 bytes=$3 dec=$4
    shift 4
    local home=$work/home-oci-$kind name=oci-$kind.tar
    fresh_oci() { rm -rf "$home"; }
    sha_oci() { openssl dgst -sha256 "$archive"; }
    dec_floor() { local l; for l in "$@"; do $dec -dc "$l" | openssl dgst -sha256; done; }
    local floor="floor: $dec -dc | openssl dgst -sha256, per layer"
    best nothing sha_oci; record "floor: openssl dgst -sha256 $name" "$bytes"
    best nothing dec_floor "$@"; record "$floor" "$(sum_sizes "$@")"
    best fresh_oci m --home "$home" load -q -i "$archive"
    STORE=$(calc "$(dub "$home") / 1e6" 0)
    record "msb load $name, cold" "$bytes" "$floor"
    best nothing m --home "$home" load -q -i "$archive"
    record "msb load $name, warm" "$bytes" "floor: openssl dgst -sha256 $name"
    rm -rf "$home"
}
oci_job gzip "$gz" "$gz_b" pigz "${gz_layers[@]}"
oci_job zstd "$zs" "$zs_b" zstd "${zs_layers[@]}"

# ---- docker-save wrapped in zstd, on stdin -------------------------------------
home_in=$work/home-stdin
fresh_in() { rm -rf "$home_in"; }
unzstd_sha() { zstd -dc "$dz" | openssl dgst -sha256; }
stdin_load() { zstd -dc "$dz" | m --home "$home_in" load -q -i -; }
best nothing unzstd_sha; record "floor: zstd -dc docker-save.tar.zst | openssl" "$dz_b"
best fresh_in stdin_load
STORE=$(calc "$(dub "$home_in") / 1e6" 0)
record "zstd -dc docker-save.tar.zst | msb load, cold" "$dz_b" "floor: zstd -dc docker-save.tar.zst | openssl"
rm -rf "$home_in"

# ---- EROFS images of the same layer tars: msb layer and mkfs.erofs ----------------
no_img() { rm -f "$work"/img-*.erofs; }
# msb_layer FORMAT: `msb layer` of each plain layer tar.
msb_layer() { local l; for l in "${tar_layers[@]}"; do m layer --format "$1" -i "$l" -o "$work/img-$(basename "$l" .tar).erofs"; done; }
declare -A IMG_B
for f in full tar-index; do
    best no_img msb_layer $f
    IMG_B[$f]=$(sum_sizes "$work"/img-*.erofs)
    record "msb layer --format $f of each layer tar" "$(sum_sizes "${tar_layers[@]}")"
done
no_img
mkfs=${MSB_MKFS_EROFS:-}
if [ -z "$mkfs" ] && [ -f "$root/tests/tools/erofs-utils.sh" ]; then
    echo "tests/tools/erofs-utils.sh: building or finding mkfs.erofs (log: $work/erofs-utils.log)" >&2
    if bindir=$(bash "$root/tests/tools/erofs-utils.sh" 2>"$work/erofs-utils.log" | tail -1); then
        mkfs=$bindir/mkfs.erofs
    else
        echo "tests/tools/erofs-utils.sh failed: $(tail -1 "$work/erofs-utils.log"); trying mkfs.erofs on PATH" >&2
    fi
fi
mkfs=${mkfs:-mkfs.erofs}
declare -A MKFS_B
mkfs_why=
mkfs_help=$("$mkfs" --help 2>&1 || true)
mkfs_ver=$("$mkfs" --version 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*$' || dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null || true)
if ! command -v "$mkfs" >/dev/null; then
    mkfs_why="$mkfs is not installed"
elif [[ $mkfs_help != *--tar* ]]; then
    mkfs_why="$mkfs (erofs-utils ${mkfs_ver:-?}) has no --tar; set MSB_MKFS_EROFS to one that has (erofs-utils 1.6+)"
else
    # mkfs_all f|i: mkfs.erofs --tar=MODE of each plain layer tar.
    mkfs_all() { local l; for l in "${tar_layers[@]}"; do "$mkfs" --tar="$1" "$work/img-$(basename "$l" .tar).erofs" "$l"; done; }
    for mode in f i; do
        f=full; [ $mode = i ] && f=tar-index
        if best no_img mkfs_all $mode; then
            MKFS_B[$f]=$(sum_sizes "$work"/img-*.erofs)
            record "mkfs.erofs --tar=$mode of each layer tar ($mkfs_ver)" "$(sum_sizes "${tar_layers[@]}")" \
                "msb layer --format $f of each layer tar"  "$(calc "${SEC[msb layer --format $f of each layer tar]} / $T")× (msb / this); size $(calc "${IMG_B[$f]} / ${MKFS_B[$f]}" 3)×"
        else
            mkfs_why="$mkfs --tar=$mode failed: $(first_error)"
            break
        fi
    done
    no_img
fi
[ -n "$mkfs_why" ] && skipped "mkfs.erofs --tar=f and --tar=i of each layer tar" "not run: $mkfs_why"

# ---- skopeo and podman --------------------------------------------------------
if command -v skopeo >/dev/null; then
    no_sk() { rm -rf "$work/skopeo"; }
    for src in "docker-archive:$ds" "oci-archive:$gz"; do
        if best no_sk skopeo --insecure-policy copy -q "$src" "oci:$work/skopeo:bench"; then
            f=${src#*:} f=${f##*/}
            record "skopeo copy ${src%%:*}:$f oci:" "$(size "${src#*:}")" \
                "msb load $f, cold / this" "$(calc "${SEC[msb load $f, cold]} / $T")×"
        else
            skipped "skopeo copy ${src%%:*}: oci:" "did not run: $(first_error)"
        fi
    done
    rm -rf "$work/skopeo"
else
    skipped "skopeo copy" "not installed"
fi
if command -v podman >/dev/null; then
    pod=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay
        --cgroup-manager cgroupfs --events-backend file)
    no_pod() { rm -rf "$work/podman"; }
    for f in "$ds" "$gz"; do
        n=${f##*/}
        if best no_pod "${pod[@]}" load -q -i "$f"; then
            record "podman load $n (overlay storage on tmpfs)" "$(size "$f")" \
                "msb load $n, cold / this" "$(calc "${SEC[msb load $n, cold]} / $T")×"
        else
            skipped "podman load $n" "did not run: $(first_error)"
        fi
    done
    rm -rf "$work/podman"
else
    skipped "podman load" "not installed"
fi

# ---- registry ------------------------------------------------------------------
if "$msb" pull --help >/dev/null 2>&1; then
    skipped "msb pull / msb push" "not measured: msb has pull, but bench/run.sh starts no local registry yet"
else
    skipped "msb pull / msb push" "n/a (no registry support yet)"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- targets ---------------------------------------------------------------------
ratio() { calc "${SEC[$1]} / ${SEC[$2]}"; }
cpu_note() { echo "msb used ${CPUS[$1]} cpu-s in ${SEC[$1]} s (on $(nproc) cores)"; }
target "docker-save cold load / sha256 of the archive" "$(ratio "msb load docker-save.tar, cold" "floor: openssl dgst -sha256 docker-save.tar")" 1.5 \
    "$(cpu_note "msb load docker-save.tar, cold"); besides one sha256 of each byte it copies each layer into oci/ and writes its EROFS image ($(calc "$store_layers_b / 1e6" 0) MB in layers/)"
for k in gzip zstd; do
    lim=0.9; [ $k = zstd ] && lim=1.1
    dec=pigz; [ $k = zstd ] && dec=zstd
    target "oci-$k cold load / $dec -dc | sha256 of the layers" "$(ratio "msb load oci-$k.tar, cold" "floor: $dec -dc | openssl dgst -sha256, per layer")" $lim \
        "$(cpu_note "msb load oci-$k.tar, cold"); besides decompressing and hashing the tar it hashes the compressed blob, keeps it in oci/ and writes the EROFS image"
done
for f in docker-save oci-gzip oci-zstd; do
    target "$f warm reload / sha256 of the archive" "$(ratio "msb load $f.tar, warm" "floor: openssl dgst -sha256 $f.tar")" 0.05 \
        "a warm load still indexes the archive's tar headers and runs detect and decode in the sandbox; $(cpu_note "msb load $f.tar, warm")"
done
target "peak RSS of any msb command (MiB)" "$(calc "$peak_kib / 1024" 1)" 64 "the peak was in: $peak_job"
target "store bytes after the docker-save load / archive bytes" "$(calc "$store_b / $ds_b")" 1.1 \
    "oci/ holds $(calc "$store_oci_b / 1e6" 0) MB (the layer blobs) and layers/ $(calc "$store_layers_b / 1e6" 0) MB (EROFS images)"
if [ -n "${MKFS_B[full]:-}" ]; then
    target "full EROFS bytes: msb layer --format full / mkfs.erofs --tar=f" "$(calc "${IMG_B[full]} / ${MKFS_B[full]}" 3)" 1.0 \
        "msb's images: ${IMG_B[full]} bytes, mkfs.erofs's: ${MKFS_B[full]} bytes; the metadata area: inodes with inline tails in tar order, not best fit (README.md)"
else
    target "full EROFS bytes: msb layer --format full / mkfs.erofs --tar=f" "" 1.0 "mkfs.erofs not run: $mkfs_why"
fi
target "msb save / cat of the same bytes" "$(ratio "msb save (combined) to a tmpfs file" "floor: cat of the saved tar to a tmpfs file")" 1.3 \
    "$(cpu_note "msb save (combined) to a tmpfs file"); it reads every blob of the image and writes the tar (cat: one copy)"

# ---- RESULTS.md -------------------------------------------------------------------
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
{
    echo "# Benchmark results"
    echo
    echo "Written by \`bench/run.sh $mb\` (see [README.md](README.md)): best of 3 wall-clock runs, stores and"
    echo "archives on tmpfs, MB = 10⁶ bytes, MB/s = bytes the job reads / seconds, ratio = seconds / the named floor's"
    echo "seconds (lower is better). Peak RSS and cpu-s (user + system) are msb's."
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| cores (\`nproc\`) | $(nproc) |"
    echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
    echo "| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
    echo "| kernel | $(uname -r) |"
    echo "| msb | $rev$([ "$dirty" -gt 0 ] && echo " + $dirty uncommitted files in the work tree it was built from") |"
    echo "| tools | $(openssl version | cut -d' ' -f1-2), pigz $(pigz --version 2>&1 | cut -d' ' -f2), zstd $(zstd --version | grep -o 'v[0-9.]*'), skopeo $(skopeo --version 2>/dev/null | cut -d' ' -f3 || echo –), podman $(podman --version 2>/dev/null | cut -d' ' -f3 || echo –) |"
    echo "| load average (1, 5, 15 min) | before $load_before, after $load_after |"
    echo
    echo "## Workload"
    echo
    echo "$(wj 'd["files"]') regular files and $(wj 'd["symlinks"]') symlinks from this machine's /usr, $(calc "$(wj 'd["file_bytes"]') / 1e9") GB of file data"
    echo "(files over $(wj 'd["max_file_mb"]') MiB left out), in 3 layers of $(wj '", ".join("%d files (%.0f MB)" % (l["files"], l["tar_bytes"] / 1e6) for l in d["layers"])'):"
    echo
    echo "| archive | bytes |"
    echo "|---|---|"
    for a in docker-save.tar oci-gzip.tar oci-zstd.tar docker-save.tar.zst; do echo "| \`$a\` | $(size "$wl/$a") |"; done
    echo
    echo "## Jobs"
    echo
    echo "| job | seconds | MB/s | peak RSS (MiB) | cpu-s | store MB | ratio | against |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${jobs_md[@]}"
    echo
    echo "Store after the docker-save load: $store_b bytes in all ($(calc "$store_b / $ds_b")× the archive):"
    echo "\`layers/\` $store_layers_b (EROFS images, $erofs_b), \`oci/\` $store_oci_b."
    echo
    echo "## Targets (issue 12)"
    echo
    echo "| target | measured | limit | verdict | why, where missed |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${targets_md[@]}"
} > "$work/RESULTS.md"
cp "$work/RESULTS.md" "$results"
echo
sed -n '/^## Targets/,$p' "$results"
echo "wrote $results" >&2
