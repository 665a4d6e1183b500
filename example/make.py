#!/usr/bin/env python3
"""Builds example/hello.tar, the README's first archive, byte for byte.

usage: example/make.py [OUT]   (default: hello.tar next to this script)

A docker-25-style archive (what `docker save` writes since 25.0: an OCI
layout and docker's manifest.json in one tar) of one tiny image,
`hello:latest`, for linux/amd64, with two uncompressed layers:

  layer 1: /etc/hello.txt, /etc/greeting -> hello.txt (symlink),
           /bin/hello (0755), /usr/share/hello/old.txt
  layer 2: /etc/hello.txt replaced, /usr/share/hello/old.txt deleted
           (a whiteout, .wh.old.txt), /usr/share/hello/new.txt

Everything is fixed (mtimes, owners, entry order, JSON key order), so the
output is the same on every machine; tests/example.rs checks that the
committed archive equals a fresh build.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000  # 2023-11-14, any fixed time


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = target
    info.size = len(data)
    return info, data


def directory(name):
    return entry(name, tarfile.DIRTYPE, mode=0o755)


def tar_bytes(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def layers():
    one = [
        directory("bin/"),
        entry("bin/hello", data=b"#!/bin/sh\ncat /etc/hello.txt\n", mode=0o755),
        directory("etc/"),
        entry("etc/greeting", tarfile.SYMTYPE, mode=0o777, target="hello.txt"),
        entry("etc/hello.txt", data=b"hello from layer 1\n"),
        directory("usr/"),
        directory("usr/share/"),
        directory("usr/share/hello/"),
        entry("usr/share/hello/old.txt", data=b"deleted by layer 2\n"),
    ]
    two = [
        directory("etc/"),
        entry("etc/hello.txt", data=b"hello from msb\n"),
        directory("usr/"),
        directory("usr/share/"),
        directory("usr/share/hello/"),
        entry("usr/share/hello/.wh.old.txt", data=b"", mode=0o644),
        entry("usr/share/hello/new.txt", data=b"added by layer 2\n"),
    ]
    return [tar_bytes(one), tar_bytes(two)]


def dumps(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def archive():
    blobs = {}  # digest -> bytes, in insertion order

    def put(data):
        blobs[digest(data)] = data
        return digest(data)

    layer_blobs = layers()
    diff_ids = [put(layer) for layer in layer_blobs]
    config = dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/hello"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "example/make.py: layer 1"},
                    {"created": "2023-11-14T22:13:20Z", "created_by": "example/make.py: layer 2"}],
    })
    config_digest = put(config)
    manifest = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(b)}
                   for d, b in zip(diff_ids, layer_blobs)],
    })
    manifest_digest = put(manifest)
    index = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
            "size": len(manifest),
            "annotations": {"io.containerd.image.name": "docker.io/library/hello:latest",
                            "org.opencontainers.image.ref.name": "latest"},
        }],
    })
    docker_manifest = dumps([{
        "Config": "blobs/sha256/" + config_digest.split(":")[1],
        "RepoTags": ["hello:latest"],
        "Layers": ["blobs/sha256/" + d.split(":")[1] for d in diff_ids],
    }])
    files = [directory("blobs/"), directory("blobs/sha256/")]
    files += [entry("blobs/sha256/" + d.split(":")[1], data=b) for d, b in sorted(blobs.items())]
    files += [
        entry("index.json", data=index),
        entry("manifest.json", data=docker_manifest),
        entry("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    return tar_bytes(files)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "hello.tar")
    data = archive()
    with open(out, "wb") as f:
        f.write(data)


main()
