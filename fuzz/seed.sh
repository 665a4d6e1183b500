#!/usr/bin/env bash
# Builds the seed corpora into fuzz/corpus/<target>/ (nothing is committed):
#   - the test fixtures (tests/fixtures/make-docker.sh, which runs make-oci.sh:
#     umoci and skopeo archives, python-made docker 25+, classic and v1 saves),
#     and the OCI and dir: directories as tars;
#   - tiny archives of every format (python tarfile, like the plugin tests'
#     in-memory fixtures): seeds that are quick to run and mutate;
#   - layer tars: the fixtures' layers, and one of every entry kind the EROFS
#     writer handles (whiteouts, opaque dirs, hardlinks, long names, PAX
#     xattrs, devices, a FIFO, GNU and PAX sparse files from GNU tar);
#   - compressed copies (gzip, zstd, xz, bzip2) for the input front.
# Needs skopeo, umoci, python3, GNU tar, gzip, zstd, xz, bzip2; fails naming
# the one that is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for tool in skopeo umoci python3 tar gzip zstd xz bzip2; do
  command -v "$tool" >/dev/null || { echo "seed.sh: $tool is missing" >&2; exit 1; }
done
corpus=$here/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash "$here/../tests/fixtures/make-docker.sh" "$work/fx" >/dev/null
skopeo copy -q oci:"$work/fx/oci/layout":base dir:"$work/fx/dir"

python3 - "$work" <<'PY'
import hashlib, io, json, os, sys, tarfile

work = sys.argv[1]
fx = f"{work}/fx"
images, layers = f"{work}/images", f"{work}/layers"
os.makedirs(images); os.makedirs(layers)

def sha(b):
    return hashlib.sha256(b).hexdigest()

def dumps(v):
    return json.dumps(v, separators=(",", ":")).encode()

def write_tar(path, files, fmt=tarfile.PAX_FORMAT):
    """files: (name, bytes | None for a directory | ("sym"|"hard", target))."""
    with tarfile.open(path, "w", format=fmt) as t:
        for name, data in files:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            if data is None:
                i.type, i.mode = tarfile.DIRTYPE, 0o755
                t.addfile(i)
            elif isinstance(data, tuple):
                i.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                i.linkname = data[1]
                t.addfile(i)
            else:
                i.size = len(data)
                t.addfile(i, io.BytesIO(data))
        end = t.offset
    # Only the two zero blocks, not tarfile's padding to 10 KiB: small seeds mutate faster.
    os.truncate(path, end + 1024)

def tar_dir(src, path):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(os.listdir(src)):
            t.add(os.path.join(src, entry), arcname=entry)

# The fixtures.
for name in ["oci/oci-archive.tar", "oci/multi.tar", "docker-archive.tar", "docker25.tar", "classic.tar", "broken.tar", "v1.tar"]:
    os.link(f"{fx}/{name}", f"{images}/fixture-{os.path.basename(name)}")
tar_dir(f"{fx}/oci/oci-dir", f"{images}/fixture-oci-dir.tar")
tar_dir(f"{fx}/oci/plain", f"{images}/fixture-plain.tar")
tar_dir(f"{fx}/dir", f"{images}/fixture-dir.tar")
for name in sorted(os.listdir(f"{fx}/oci/layers")):
    import gzip
    open(f"{layers}/fixture-{name[:-3]}", "wb").write(gzip.decompress(open(f"{fx}/oci/layers/{name}", "rb").read()))

# Tiny archives of every format: one image, one small layer.
write_tar(f"{work}/layer.tar", [("hello", b"hi\n")])
layer = open(f"{work}/layer.tar", "rb").read()
diff_id = "sha256:" + sha(layer)
config = dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
oci_manifest = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": len(layer)}]})
docker_manifest = dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": diff_id, "size": len(layer)}]})
index = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(oci_manifest), "size": len(oci_manifest),
     "annotations": {"org.opencontainers.image.ref.name": "tiny:1", "io.containerd.image.name": "docker.io/library/tiny:1"},
     "platform": {"architecture": "amd64", "os": "linux"}}]})
blobs = [("blobs/sha256/" + sha(b), b) for b in (layer, config, oci_manifest)]
layout = [("oci-layout", dumps({"imageLayoutVersion": "1.0.0"})), ("index.json", index)]
write_tar(f"{images}/tiny-oci.tar", [("blobs", None), ("blobs/sha256", None)] + blobs + layout)
write_tar(f"{images}/tiny-docker25.tar", blobs + layout + [
    ("manifest.json", dumps([{"Config": "blobs/sha256/" + sha(config), "RepoTags": ["tiny:1"], "Layers": ["blobs/sha256/" + sha(layer)]}])),
    ("repositories", dumps({"tiny": {"1": sha(layer)}}))])
layer_id = sha(b"layer " + layer.hex().encode())
write_tar(f"{images}/tiny-classic.tar", [
    (layer_id, None), (f"{layer_id}/VERSION", b"1.0"), (f"{layer_id}/json", dumps({"id": layer_id, "os": "linux"})),
    (f"{layer_id}/layer.tar", layer), ("l2/layer.tar", ("sym", f"../{layer_id}/layer.tar")),
    (sha(config) + ".json", config),
    ("manifest.json", dumps([{"Config": sha(config) + ".json", "RepoTags": ["tiny:1"], "Layers": [f"{layer_id}/layer.tar"]},
                             {"Config": sha(config) + ".json", "RepoTags": None, "Layers": ["l2/layer.tar"]}])),
    ("repositories", dumps({"tiny": {"1": layer_id}}))])
parent = sha(b"parent")
write_tar(f"{images}/tiny-v1.tar", [
    ("repositories", dumps({"tiny": {"1": layer_id, "latest": layer_id}})),
    (parent, None), (f"{parent}/json", dumps({"id": parent, "created": "2023-11-14T22:13:20Z"})), (f"{parent}/layer.tar", layer),
    (layer_id, None), (f"{layer_id}/VERSION", b"1.0"),
    (f"{layer_id}/json", dumps({"id": layer_id, "parent": parent, "os": "linux", "container_config": {"Cmd": ["/bin/sh"]}})),
    (f"{layer_id}/layer.tar", ("hard", f"{parent}/layer.tar"))], fmt=tarfile.GNU_FORMAT)
write_tar(f"{images}/tiny-dir.tar", [("version", b"Directory Transport Version: 1.1\n"), ("manifest.json", docker_manifest),
    (sha(config), config), (sha(layer), layer)], fmt=tarfile.USTAR_FORMAT)
open(f"{layers}/tiny.tar", "wb").write(layer)

# A layer of every kind of entry the EROFS writer handles.
def info(name, kind=tarfile.REGTYPE, **kw):
    i = tarfile.TarInfo(name); i.type = kind; i.mtime = 1700000000; i.mode = 0o644
    for k, v in kw.items():
        setattr(i, k, v)
    return i
with tarfile.open(f"{layers}/kinds.tar", "w", format=tarfile.PAX_FORMAT) as t:
    t.addfile(info("etc", tarfile.DIRTYPE, mode=0o755))
    t.addfile(info("etc/passwd", size=5), io.BytesIO(b"root\n"))
    t.addfile(info("etc/passwd-", tarfile.LNKTYPE, linkname="etc/passwd"))
    t.addfile(info("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"))
    t.addfile(info(".wh.gone", tarfile.REGTYPE))
    t.addfile(info("opt", tarfile.DIRTYPE, mode=0o755))
    t.addfile(info("opt/.wh..wh..opq"))
    t.addfile(info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3))
    t.addfile(info("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0))
    t.addfile(info("run/fifo", tarfile.FIFOTYPE))
    t.addfile(info("tmp", tarfile.DIRTYPE, mode=0o1777))
    t.addfile(info("usr/bin/ping", size=2, mode=0o4755, uid=1000, gid=1000,
                   pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                                "SCHILY.xattr.user.note": "hello"}), io.BytesIO(b"\x7fE"))
    t.addfile(info("d/" + "long-name-" * 15, size=4), io.BytesIO(b"long"))
    t.addfile(info("l/" + "long-link-" * 15, tarfile.SYMTYPE, linkname="target/" + "x" * 120))
with tarfile.open(f"{layers}/gnu.tar", "w", format=tarfile.GNU_FORMAT) as t:
    t.addfile(info("d/" + "gnu-long-name-" * 10, size=1), io.BytesIO(b"g"))
    t.addfile(info("a/.wh.b"))
PY

# GNU tar's sparse formats (old GNU headers, and PAX 1.0).
mkdir -p "$work/sparse"
printf 'head' > "$work/sparse/holes"
truncate -s 1M "$work/sparse/holes"
printf 'tail' >> "$work/sparse/holes"
tar --sparse --format=gnu -cf "$work/layers/sparse-gnu.tar" -C "$work/sparse" holes
tar --sparse --format=pax --sparse-version=1.0 -cf "$work/layers/sparse-pax.tar" -C "$work/sparse" holes

# Compressed copies, for the input front and the runtime.
mkdir -p "$work/compressed"
gzip -c "$work/images/tiny-oci.tar" > "$work/compressed/tiny-oci.tar.gz"
zstd -q -c "$work/images/tiny-docker25.tar" > "$work/compressed/tiny-docker25.tar.zst"
xz -c "$work/images/tiny-v1.tar" > "$work/compressed/tiny-v1.tar.xz"
bzip2 -c "$work/images/tiny-dir.tar" > "$work/compressed/tiny-dir.tar.bz2"
gzip -c "$work/fx/docker25.tar" > "$work/compressed/fixture-docker25.tar.gz"

seed() { # target, files...
  local target=$1; shift
  mkdir -p "$corpus/$target"
  cp "$@" "$corpus/$target/"
}
for target in oci_layout docker_save docker_v1 containers_dir; do
  seed "$target" "$work"/images/*
done
seed runtime "$work"/images/* "$work"/compressed/*
seed input "$work"/images/* "$work"/compressed/* "$work"/layers/*
seed erofs_writer "$work"/layers/*
du -sh "$corpus"/* | sed 's|'"$corpus"'/|seeds: |'
