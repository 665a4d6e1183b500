#!/usr/bin/env python3
"""Compare an extracted layer tree with the layer tar it came from.

usage: compare_tree.py LAYER_TAR EXTRACTED_DIR

The tar is read the way a container runtime applies a layer to an empty
directory: later entries replace earlier ones, `.wh.NAME` becomes a whiteout
(a character device 0/0 named NAME) and `.wh..wh..opq` marks its directory
opaque (xattr trusted.overlay.opaque=y, checked when the file system keeps it).
Every path is compared for type, permissions, owner, content, link target and
device numbers; hardlinks must share an inode. Prints the differences; exits 1
if there are any.
"""
import hashlib
import os
import stat
import sys
import tarfile

def norm(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)

def expected(tar_path):
    want = {}  # path -> dict
    links = []  # (path, target)
    with tarfile.open(tar_path, "r:*") as tar:
        for m in tar:
            path = norm(m.name)
            base = os.path.basename(path)
            parent = os.path.dirname(path)
            if base == ".wh..wh..opq":
                want.setdefault(parent, {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0}).setdefault("xattrs", {})["trusted.overlay.opaque"] = b"y"
                continue
            if base.startswith(".wh..wh."):
                continue  # aufs metadata, skipped as containerd does
            if base.startswith(".wh."):
                target = (parent + "/" if parent else "") + base[4:]
                if not base[4:].startswith(".wh."):
                    want[target] = {"type": "chr", "rdev": (0, 0), "mode": 0, "uid": m.uid, "gid": m.gid}
                continue
            if path == "":
                continue
            e = {"mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
            if "mtime" in m.pax_headers and "." in m.pax_headers["mtime"]:
                secs, frac = m.pax_headers["mtime"].split(".")
                e["mtime_ns"] = int(secs) * 10**9 + int((frac + "000000000")[:9])
            xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v
                      for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            if xattrs:
                e["xattrs"] = xattrs
            if m.isdir():
                e["type"] = "dir"
                old = want.get(path)
                if old and old.get("type") == "dir":
                    merged = dict(old.get("xattrs", {}))
                    merged.update(e.get("xattrs", {}))
                    if merged:
                        e["xattrs"] = merged
            elif m.issym():
                e["type"] = "sym"; e["target"] = m.linkname
            elif m.islnk():
                src = want[norm(m.linkname)]
                e = dict(src); links.append((path, norm(m.linkname)))
            elif m.ischr() or m.isblk():
                e["type"] = "chr" if m.ischr() else "blk"
                e["rdev"] = (int(m.pax_headers.get("SCHILY.devmajor", m.devmajor)),
                             int(m.pax_headers.get("SCHILY.devminor", m.devminor)))
            elif m.isfifo():
                e["type"] = "fifo"
            else:
                e["type"] = "file"
                e["sha"] = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                e["size"] = m.size
            if e["type"] != "dir":
                for below in [p for p in want if p.startswith(path + "/")]:
                    del want[below]
            want[path] = e
            for d in parent.split("/") if parent else []:
                pass
    return want, links

def actual(root, path):
    full = os.path.join(root, path)
    st = os.lstat(full)
    e = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "ino": st.st_ino,
         "mtime": int(st.st_mtime), "mtime_ns": st.st_mtime_ns}
    if XATTRS:
        try:
            names = os.listxattr(full, follow_symlinks=False)
        except OSError:
            names = []
        e["xattrs"] = {n: os.getxattr(full, n, follow_symlinks=False) for n in names}
    if stat.S_ISDIR(st.st_mode):
        e["type"] = "dir"
    elif stat.S_ISLNK(st.st_mode):
        e["type"] = "sym"; e["target"] = os.readlink(full)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        e["type"] = "chr" if stat.S_ISCHR(st.st_mode) else "blk"
        e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    elif stat.S_ISFIFO(st.st_mode):
        e["type"] = "fifo"
    else:
        e["type"] = "file"; e["size"] = st.st_size
        with open(full, "rb") as f:
            e["sha"] = hashlib.sha256(f.read()).hexdigest()
    return e

# Extended attributes are compared on a kernel mount (XATTRS=1 in the
# environment); an fsck.erofs extraction does not restore them all.
XATTRS = os.environ.get("XATTRS") == "1"

def main():
    tar_path, root = sys.argv[1], sys.argv[2]
    want, links = expected(tar_path)
    problems = []
    for path, w in sorted(want.items()):
        try:
            a = actual(root, path)
        except FileNotFoundError:
            problems.append(f"{path}: missing"); continue
        keys = ["type", "target", "rdev", "sha", "size"]
        if w.get("type") not in ("sym",):
            keys += ["mtime", "mtime_ns"]
        if XATTRS and w.get("type") != "chr":
            w.setdefault("xattrs", {})
            keys.append("xattrs")
        for key in keys:
            if key in w and w.get(key) != a.get(key):
                problems.append(f"{path}: {key} {a.get(key)!r}, tar says {w.get(key)!r}")
        for key in ("mode", "uid", "gid"):
            if key in w and w[key] != a[key] and w["type"] != "sym":
                problems.append(f"{path}: {key} {a[key]:o}, tar says {w[key]:o}")

    # (device, inode) -> paths in the tree: an overlay of several layers
    # gives each layer its own device, and inode numbers repeat across them.
    names = {}
    for path in want:
        try:
            st = os.lstat(os.path.join(root, path))
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            names.setdefault((st.st_dev, st.st_ino), []).append(path)
    for path, target in links:
        a, b = os.lstat(os.path.join(root, path)), os.lstat(os.path.join(root, target))
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            problems.append(f"{path}: not a hardlink of {target}")
        elif a.st_nlink != len(names.get((a.st_dev, a.st_ino), [])):
            problems.append(f"{path}: nlink {a.st_nlink}, {len(names[(a.st_dev, a.st_ino)])} names in the tree")
    present = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            present.add(os.path.relpath(os.path.join(dirpath, n), root))
    implied = {os.path.dirname(p) for p in want}
    for p in sorted(present - set(want)):
        if p not in implied and not any(w.startswith(p + "/") for w in want):
            problems.append(f"{p}: extracted but not in the tar")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)

main()
