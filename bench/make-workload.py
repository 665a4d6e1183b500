#!/usr/bin/env python3
"""Builds the benchmark workload from this machine's /usr, without a
registry: real files (binaries, libraries, sources, man pages) in three
layers, written four ways into OUT:

  docker-save.tar      classic `docker save`: <id>/{VERSION,json,layer.tar},
                       <config>.json, manifest.json, repositories; plain layers
  oci-gzip.tar         an OCI image layout in a tar, layers tar+gzip (pigz -6 -n)
  oci-zstd.tar         the same, layers tar+zstd (zstd -3)
  docker-save.tar.zst  docker-save.tar wrapped in zstd, for `msb load` on stdin
  layers/N.tar, N.tar.gz, N.tar.zst   the layer blobs, for the floors
  workload.json        what was built: sizes, counts, digests, refs

Selection: every regular file and symlink under /usr/{bin,include,lib,
libexec,sbin,share} (files over --max-file-mb are left out, so the mix has
the many small files real images have), taken in the order of
sha256(path) until --mb MiB of file data, then sorted by path and cut
into three layers of similar size by path ranges. Each layer holds its
files' parent directories. Metadata is normalized (uid/gid 0, no owner
names, one mtime, sorted entries, PAX format): two runs on the same /usr
with the same pigz and zstd give the same bytes. Files that cannot be read
and special files are skipped; a file hardlinked to
another file of the same layer stays a hardlink.

usage: make-workload.py [--mb 1000] [--max-file-mb 4] --out OUT
"""
import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile

MTIME = 1700000000
CREATED = "2023-11-14T22:13:20Z"
ROOTS = ["bin", "include", "lib", "libexec", "sbin", "share"]
COPY_BUF = 1 << 20
DOCKER_REF = "bench:docker-save"
OCI_REFS = {"gzip": "bench:oci-gzip", "zstd": "bench:oci-zstd"}
MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def fail(msg):
    print(f"make-workload: {msg}", file=sys.stderr)
    sys.exit(1)


def key(path):
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest()


def candidates(usr, max_file):
    """(key, path in the tar, lstat) of every regular file and symlink."""
    out = []
    for root in ROOTS:
        top = os.path.join(usr, root)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                full = os.path.join(dirpath, name)
                rel = "usr/" + os.path.relpath(full, usr)
                try:
                    rel.encode("utf-8")
                    st = os.lstat(full)
                except (OSError, UnicodeEncodeError):
                    continue
                if stat.S_ISREG(st.st_mode):
                    if st.st_size > max_file or not os.access(full, os.R_OK):
                        continue
                elif not stat.S_ISLNK(st.st_mode):
                    continue
                out.append((key(rel), rel, full, st))
    return out


def select(cands, target):
    """Entries in sha256(path) order until `target` bytes of file data."""
    cands.sort(key=lambda c: c[0])
    chosen, total = [], 0
    for c in cands:
        if total >= target:
            break
        chosen.append(c)
        if stat.S_ISREG(c[3].st_mode):
            total += c[3].st_size
    if total < target:
        fail(f"/usr holds only {total >> 20} MiB of eligible files, fewer than the {target >> 20} MiB asked for")
    chosen.sort(key=lambda c: c[1])
    return chosen


def split(chosen, parts=3):
    """Cuts the path-sorted entries into `parts` ranges of similar file bytes."""
    total = sum(c[3].st_size for c in chosen if stat.S_ISREG(c[3].st_mode))
    layers, cur, acc = [], [], 0
    for c in chosen:
        cur.append(c)
        if stat.S_ISREG(c[3].st_mode):
            acc += c[3].st_size
        if len(layers) < parts - 1 and acc >= total * (len(layers) + 1) / parts:
            layers.append(cur)
            cur = []
    layers.append(cur)
    return layers


def norm(info, mode):
    info.mode = mode & 0o7777
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = MTIME
    return info


def write_layer(entries, usr, path):
    """One layer tar: parent dirs first, then each entry, all in path order."""
    seen_dirs, links = set(), {}
    files = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUF) as tar:
        for _, rel, full, st in entries:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d in seen_dirs:
                    continue
                seen_dirs.add(d)
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                src = os.path.join(usr, os.path.relpath(d, "usr")) if d != "usr" else usr
                tar.addfile(norm(info, os.stat(src).st_mode))
            info = tarfile.TarInfo(rel)
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                tar.addfile(norm(info, 0o777))
                continue
            ino = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and ino in links:
                info.type = tarfile.LNKTYPE
                info.linkname = links[ino]
                tar.addfile(norm(info, st.st_mode))
                continue
            links[ino] = rel
            info.size = st.st_size
            with open(full, "rb") as f:
                tar.addfile(norm(info, st.st_mode), f)
                if f.read(1):
                    fail(f"{full} grew while it was read")
            files += 1
    return files, len(seen_dirs)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def compress(cmd, src, dst):
    with open(src, "rb") as i, open(dst, "wb") as o:
        subprocess.run(cmd, stdin=i, stdout=o, check=True)


def add_bytes(tar, name, data):
    info = norm(tarfile.TarInfo(name), 0o644)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_file(tar, name, path):
    info = norm(tarfile.TarInfo(name), 0o644)
    info.size = os.path.getsize(path)
    with open(path, "rb") as f:
        tar.addfile(info, f)


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    tar.addfile(norm(info, 0o755))


def dumps(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(m, m)


def config(diff_ids):
    return dumps({
        "architecture": arch(),
        "os": "linux",
        "created": CREATED,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/usr/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        "history": [{"created": CREATED, "created_by": f"bench/make-workload.py layer {i + 1}"} for i in range(len(diff_ids))],
    })


def docker_save(out, layer_tars, diff_ids, cfg):
    """Classic `docker save` (before docker 25): v1 layer dirs and manifest.json."""
    cfg_id = hashlib.sha256(cfg).hexdigest()
    ids, parent = [], ""
    for d in diff_ids:
        ids.append(hashlib.sha256(f"{parent}\n{d}".encode()).hexdigest())
        parent = ids[-1]
    manifest = dumps([{"Config": cfg_id + ".json", "RepoTags": [DOCKER_REF], "Layers": [i + "/layer.tar" for i in ids]}])
    repo, tag = DOCKER_REF.split(":")
    members = {}
    for n, (i, t) in enumerate(zip(ids, layer_tars)):
        v1 = {"id": i, "created": CREATED, "os": "linux", "container_config": {}}
        if n:
            v1["parent"] = ids[n - 1]
        members[i] = ("dir", None)
        members[i + "/VERSION"] = ("bytes", b"1.0")
        members[i + "/json"] = ("bytes", dumps(v1))
        members[i + "/layer.tar"] = ("file", t)
    members[cfg_id + ".json"] = ("bytes", cfg)
    members["manifest.json"] = ("bytes", manifest)
    members["repositories"] = ("bytes", dumps({repo: {tag: ids[-1]}}))
    write_outer(out, members)
    return cfg_id


def oci(out, blobs, cfg, media, ref):
    """An OCI image layout in a tar; `blobs` are (path, digest) of the layers."""
    cfg_digest = hashlib.sha256(cfg).hexdigest()
    manifest = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cfg_digest, "size": len(cfg)},
        "layers": [{"mediaType": media, "digest": "sha256:" + d, "size": os.path.getsize(p)} for p, d in blobs],
    })
    man_digest = hashlib.sha256(manifest).hexdigest()
    index = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + man_digest,
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }],
    })
    members = {"blobs": ("dir", None), "blobs/sha256": ("dir", None)}
    members["blobs/sha256/" + cfg_digest] = ("bytes", cfg)
    members["blobs/sha256/" + man_digest] = ("bytes", manifest)
    for p, d in blobs:
        members["blobs/sha256/" + d] = ("file", p)
    members["index.json"] = ("bytes", index)
    members["oci-layout"] = ("bytes", dumps({"imageLayoutVersion": "1.0.0"}))
    write_outer(out, members)
    return man_digest


def write_outer(out, members):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUF) as tar:
        for name in sorted(members):
            kind, val = members[name]
            if kind == "dir":
                add_dir(tar, name)
            elif kind == "bytes":
                add_bytes(tar, name, val)
            else:
                add_file(tar, name, val)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=1000, help="MiB of file data (default 1000)")
    ap.add_argument("--max-file-mb", type=int, default=4, help="leave out files larger than this (default 4)")
    ap.add_argument("--usr", default="/usr", help=argparse.SUPPRESS)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    for tool in ("pigz", "zstd"):
        if not shutil.which(tool):
            fail(f"{tool} is not installed (apt-get install {tool})")
    os.makedirs(os.path.join(a.out, "layers"), exist_ok=True)

    chosen = select(candidates(a.usr, a.max_file_mb << 20), a.mb << 20)
    layer_tars, diff_ids, info = [], [], []
    for n, entries in enumerate(split(chosen)):
        path = os.path.join(a.out, "layers", f"{n + 1}.tar")
        files, dirs = write_layer(entries, a.usr, path)
        layer_tars.append(path)
        diff_ids.append(sha256_file(path))
        info.append({"first": entries[0][1], "last": entries[-1][1], "files": files, "dirs": dirs,
                     "symlinks": sum(1 for e in entries if stat.S_ISLNK(e[3].st_mode)),
                     "tar_bytes": os.path.getsize(path), "diff_id": "sha256:" + diff_ids[-1]})
        print(f"layer {n + 1}: {files} files, {os.path.getsize(path) >> 20} MiB", file=sys.stderr)
    cfg = config(diff_ids)

    docker_save(os.path.join(a.out, "docker-save.tar"), layer_tars, diff_ids, cfg)
    compress(["zstd", "-q", "-3", "-T0", "-c"], os.path.join(a.out, "docker-save.tar"), os.path.join(a.out, "docker-save.tar.zst"))
    tools = {"gzip": (["pigz", "-6", "-n", "-c"], "gz"), "zstd": (["zstd", "-q", "-3", "-T0", "-c"], "zst")}
    for kind, (cmd, ext) in tools.items():
        blobs = []
        for t, i in zip(layer_tars, info):
            blob = f"{t}.{ext}"
            compress(cmd, t, blob)
            d = sha256_file(blob)
            blobs.append((blob, d))
            i[f"{kind}_bytes"] = os.path.getsize(blob)
        oci(os.path.join(a.out, f"oci-{kind}.tar"), blobs, cfg, MEDIA[kind], OCI_REFS[kind])

    archives = {n: os.path.getsize(os.path.join(a.out, n)) for n in
                ("docker-save.tar", "oci-gzip.tar", "oci-zstd.tar", "docker-save.tar.zst")}
    summary = {
        "mb": a.mb, "max_file_mb": a.max_file_mb,
        "files": sum(i["files"] for i in info), "symlinks": sum(i["symlinks"] for i in info),
        "file_bytes": sum(c[3].st_size for c in chosen if stat.S_ISREG(c[3].st_mode)),
        "config_digest": "sha256:" + hashlib.sha256(cfg).hexdigest(),
        "refs": {"docker-save.tar": DOCKER_REF, "oci-gzip.tar": OCI_REFS["gzip"], "oci-zstd.tar": OCI_REFS["zstd"],
                 "docker-save.tar.zst": DOCKER_REF},
        "archives": archives, "layers": info,
    }
    with open(os.path.join(a.out, "workload.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
