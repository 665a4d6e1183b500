"""py-oci-layout: an msb decoder for OCI image layouts, in Python.

The same walk as the built-in Rust `oci-layout` decoder (plugins/sdk/src/layout.rs),
short: `index.json` (nested indexes followed) -> manifests -> config and
layers, every blob pointed at as an archive entry (`blobs/sha256/<hex>`) with
the digest its parent declares; the host reads and verifies the bytes.
Refs come from `io.containerd.image.name`, else
`org.opencontainers.image.ref.name`; platforms from the index entries;
attestation manifests (`unknown/unknown`) travel as attachments.
"""

import json
import re
import traceback

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import (
    Blob, DecodeError, EntryKind, ErrorKind, Image, Info, Layer, Platform, Source_Entry,
)

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
MAX_JSON = 16 << 20  # the most a metadata entry may hold, as the Rust SDK
CHUNK = 1 << 20
MAX_DEPTH = 8  # how deep indexes may nest
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_NESTING = 128  # CPython's JSON parser recurses on the wasm stack: as serde_json
STRINGS = re.compile(rb'(?s)"[^"\\]*(?:\\.[^"\\]*)*"')
BRACKETS = re.compile(rb"[\[\]{}]")


class Fail(Exception):
    """A decode error on its way out: kind, message and the entry at fault."""

    def __init__(self, kind, entry, message):
        super().__init__(message)
        self.error = DecodeError(kind, message, entry)


class Layout:
    """The archive's files by path, and JSON read from them with a size cap."""

    def __init__(self, archive):
        self.archive = archive
        self.files = {e.path: e for e in archive.entries() if e.kind != EntryKind.DIRECTORY}

    def json(self, path, parent=None):
        entry = self.files.get(path)
        if entry is None:
            why = f"blob referenced by {parent} is not in the archive" if parent else "not in the archive"
            raise Fail(ErrorKind.MISSING, path, why)
        if entry.size > MAX_JSON:
            raise Fail(ErrorKind.MALFORMED, path, f"larger than the {MAX_JSON}-byte limit for metadata")
        data = bytearray()
        while len(data) <= MAX_JSON:  # sizes of links are 0: the loop caps what they read
            try:
                chunk = self.archive.read(path, len(data), CHUNK)
            except Err as e:
                raise Fail(ErrorKind.HOST, path, str(e.value))
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_JSON:
            raise Fail(ErrorKind.MALFORMED, path, f"larger than the {MAX_JSON}-byte limit for metadata")
        if too_deep(data):
            raise Fail(ErrorKind.MALFORMED, path, f"invalid JSON: nested deeper than {MAX_NESTING}")
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise Fail(ErrorKind.MALFORMED, path, f"invalid JSON: {e}")
        if not isinstance(doc, dict):
            raise Fail(ErrorKind.MALFORMED, path, "invalid JSON: not an object")
        return doc

    def blob(self, descriptor, parent, required=True):
        """The blob `descriptor` (found in `parent`) names, or None if it is
        absent and not `required`."""
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise Fail(ErrorKind.MALFORMED, parent, f"invalid or unsupported digest {digest!r}")
        path = "blobs/sha256/" + digest[len("sha256:"):]
        if path not in self.files:
            if not required:
                return None
            raise Fail(ErrorKind.MISSING, path, f"blob referenced by {parent} is not in the archive")
        media_type = descriptor.get("mediaType")
        return Blob(media_type if isinstance(media_type, str) else None, digest, Source_Entry(path))


def too_deep(data):
    """Whether arrays and objects in `data` nest deeper than MAX_NESTING."""
    depth = 0
    for bracket in BRACKETS.finditer(STRINGS.sub(b"", data)):
        depth += 1 if bracket.group() in b"[{" else -1
        if depth > MAX_NESTING:
            return True
    return False


def obj(value):
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def descriptors(doc, key, path):
    items = doc.get(key)
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise Fail(ErrorKind.MALFORMED, path, f"{key!r} is not a list of descriptors")
    return items


def refs_of(descriptor):
    annotations = obj(descriptor.get("annotations"))
    for key in REF_ANNOTATIONS:
        value = annotations.get(key)
        if isinstance(value, str) and value:
            return [value]
    return []


def platform_of(descriptor):
    p = obj(descriptor.get("platform"))
    if not isinstance(p.get("os"), str) or not isinstance(p.get("architecture"), str):
        return None
    variant = p.get("variant")
    return Platform(p["os"], p["architecture"], variant if isinstance(variant, str) else None)


def is_attestation(descriptor):
    p = obj(descriptor.get("platform"))
    kind = obj(descriptor.get("annotations")).get("vnd.docker.reference.type")
    return kind == "attestation-manifest" or (p.get("os"), p.get("architecture")) == ("unknown", "unknown")


def attestation(layout, descriptor, parent):
    """The blobs of an attestation manifest, or none if any is absent."""
    manifest = layout.blob(descriptor, parent, required=False)
    if manifest is None:
        return []
    doc = layout.json(manifest.source.value)
    blobs = [manifest]
    for d in [doc.get("config")] + descriptors(doc, "layers", manifest.source.value):
        blob = layout.blob(d, manifest.source.value, required=False)
        if blob is None:
            return []
        blobs.append(blob)
    return blobs


def walk(layout, descriptor, parent, refs, indexes, images):
    """Follows `descriptor` (found in `parent`) down to image manifests."""
    media_type = descriptor.get("mediaType")
    media_type = media_type if isinstance(media_type, str) else None
    if media_type in INDEX_TYPES:
        if len(indexes) >= MAX_DEPTH:
            raise Fail(ErrorKind.UNSUPPORTED, parent, f"indexes nest deeper than {MAX_DEPTH}")
        blob = layout.blob(descriptor, parent)
        path = blob.source.value
        doc = layout.json(path, parent)
        if "config" in doc:
            raise Fail(ErrorKind.MALFORMED, path, f"{parent} labels it {media_type}, it is no image index")
        first = len(images)
        attachments = []
        for child in descriptors(doc, "manifests", path):
            if is_attestation(child):
                attachments += attestation(layout, child, path)
            else:
                walk(layout, child, path, refs, indexes + [blob], images)
        for image in images[first:]:
            image.attachments += attachments
    elif media_type in MANIFEST_TYPES:
        manifest = layout.blob(descriptor, parent)
        path = manifest.source.value
        doc = layout.json(path, parent)
        layers = [Layer(layout.blob(d, path), None) for d in descriptors(doc, "layers", path)]
        config = layout.blob(doc.get("config"), path)
        images.append(Image(refs, platform_of(descriptor), indexes, manifest, config, layers, []))
    else:
        wit_world.log(f"{parent}: skipping {descriptor.get('digest')} of media type {media_type}")


class WitWorld(wit_world.WitWorld):
    def info(self):
        return Info("py-oci-layout", "0.1.0", ["oci-layout"],
                    "OCI image layout, in Python (componentize-py): an example plugin")

    def detect(self, archive):
        paths = {e.path for e in archive.entries()}
        # Below the built-in oci-layout (90): used only when asked for by name.
        return 10 if "oci-layout" in paths and "index.json" in paths else 0

    def decode(self, archive):
        try:
            layout = Layout(archive)
            if "oci-layout" in layout.files:
                version = layout.json("oci-layout").get("imageLayoutVersion")
                if not isinstance(version, str) or not version.startswith("1."):
                    raise Fail(ErrorKind.UNSUPPORTED, "oci-layout",
                               f"image layout version {version} (this decoder reads 1.x)")
            images = []
            for descriptor in descriptors(layout.json("index.json"), "manifests", "index.json"):
                walk(layout, descriptor, "index.json", refs_of(descriptor), [], images)
            return images
        except Fail as f:
            raise Err(f.error)
        except Exception as e:  # a shape of JSON this walk did not foresee
            wit_world.log(traceback.format_exc())
            raise Err(DecodeError(ErrorKind.MALFORMED, f"unexpected {type(e).__name__}: {e}", None))

    def read_stream(self, archive, id, max):
        raise Err(DecodeError(ErrorKind.UNSUPPORTED, f"this decoder has no stream {id}", None))
