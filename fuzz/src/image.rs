//! A structured image archive: entries whose names and JSON are biased
//! toward what the decoders look for (`index.json`, `oci-layout`,
//! `manifest.json`, `repositories`, `blobs/sha256/<hex>`, `<id>/json`,
//! `version`…), so the fuzzer gets past "not this format" quickly.
//!
//! Digests meet: an entry's JSON may name another entry by [`Ref`], which
//! renders as that entry's real `sha256` (or its size), and a name like
//! `blobs/sha256/<hex>` may be the real digest of an entry, so a manifest
//! naming a blob, the blob's file name and its bytes agree often enough
//! for the host's verification to pass and the load to go all the way.

use crate::layer::Layer;
use arbitrary::Arbitrary;

/// A whole archive, plus which decoder the runtime target forces.
#[derive(Arbitrary, Debug)]
pub struct Archive {
    /// The entries, in archive order.
    pub entries: Vec<Entry>,
    /// For the runtime target: 0–2 detect, then each built-in, then the
    /// hostile test decoder.
    pub plugin: u8,
}

/// One entry of the model.
#[derive(Arbitrary, Debug)]
pub struct Entry {
    /// Its path.
    pub name: Name,
    /// What it is.
    pub kind: Kind,
}

/// Entry kinds.
#[derive(Arbitrary, Debug)]
pub enum Kind {
    /// A regular file.
    File(Content),
    /// A directory.
    Dir,
    /// A symlink to another name.
    Symlink(Name),
    /// A hardlink to another name.
    Hardlink(Name),
}

/// Another entry of the archive (the low 7 bits, modulo the entry count)
/// or, with the high bit set, one of a few fixed digests.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Ref(pub u8);

/// Entry names.
#[derive(Arbitrary, Debug)]
pub enum Name {
    /// One of [`NAMES`].
    Known(u8),
    /// `blobs/sha256/<hex>`.
    Blob(Ref),
    /// `<hex>/layer.tar` (docker save classic, v1).
    LayerTar(Ref),
    /// `<hex>/json` (v1 layer config).
    V1Json(Ref),
    /// `<hex>/VERSION`.
    V1Version(Ref),
    /// `<hex>.json` (docker save config).
    ConfigJson(Ref),
    /// `<hex>` (containers-dir blob).
    Hex(Ref),
    /// Anything.
    Raw(String),
}

/// Names decoders look for, plus names the hostile test decoder acts on
/// and a few that try to leave the archive.
pub const NAMES: &[&str] = &[
    "index.json",
    "oci-layout",
    "manifest.json",
    "repositories",
    "version",
    "blobs",
    "blobs/sha256",
    "./index.json",
    "./manifest.json",
    "/oci-layout",
    "spin",
    "hog",
    "panic",
    "slurp",
    "lie",
    "escape",
    "flood",
    "../escape",
    "a/../../b",
    "layer.tar",
];

/// File contents.
#[derive(Arbitrary, Debug)]
pub enum Content {
    /// Bytes.
    Raw(Vec<u8>),
    /// Arbitrary JSON with biased keys and strings.
    Json(Json),
    /// `{"imageLayoutVersion":"1.0.0"}` or another version.
    OciLayout(Option<Str>),
    /// An OCI index.
    Index {
        /// `mediaType`, if any.
        media_type: Option<Str>,
        /// `manifests`.
        manifests: Vec<Descriptor>,
    },
    /// An OCI or docker v2 manifest.
    Manifest {
        /// `mediaType`, if any.
        media_type: Option<Str>,
        /// `config`.
        config: Descriptor,
        /// `layers`.
        layers: Vec<Descriptor>,
    },
    /// An image config.
    Config {
        /// `rootfs.diff_ids`.
        diff_ids: Vec<Ref>,
        /// `os`, `architecture`.
        platform: Option<(Str, Str)>,
        /// More fields.
        extra: Vec<(Key, Json)>,
    },
    /// A docker save `manifest.json`.
    DockerManifest(Vec<DockerItem>),
    /// A v1 `repositories` file: name → tag → layer id.
    Repositories(Vec<(Str, Vec<(Str, Ref)>)>),
    /// A v1 `<id>/json`.
    V1Json {
        /// `id`.
        id: Ref,
        /// `parent`.
        parent: Option<Ref>,
        /// More fields.
        extra: Vec<(Key, Json)>,
    },
    /// A containers-dir `version` file.
    DirVersion(Option<String>),
    /// A layer tar.
    Layer(Layer),
}

/// A descriptor (`mediaType`, `digest`, `size`, …).
#[derive(Arbitrary, Debug)]
pub struct Descriptor {
    /// `mediaType`.
    pub media_type: Option<Str>,
    /// `digest`: another entry's, or a fixed one.
    pub target: Ref,
    /// `size`: the target's size, or any number.
    pub size: Option<Num>,
    /// `annotations` with a ref name.
    pub ref_name: Option<(bool, Str)>,
    /// `platform`.
    pub platform: Option<(Str, Str, Option<Str>)>,
    /// More fields.
    pub extra: Vec<(Key, Json)>,
}

/// An entry of docker save's `manifest.json`.
#[derive(Arbitrary, Debug)]
pub struct DockerItem {
    /// `Config`: a path.
    pub config: Str,
    /// `RepoTags` (`None`: null).
    pub tags: Option<Vec<Str>>,
    /// `Layers`: paths.
    pub layers: Vec<Str>,
    /// More fields (`LayerSources`, `Parent`).
    pub extra: Vec<(Key, Json)>,
}

/// A JSON number.
#[derive(Arbitrary, Debug)]
pub enum Num {
    /// The size of an entry.
    SizeOf(Ref),
    /// Any integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// JSON object keys.
#[derive(Arbitrary, Debug)]
pub enum Key {
    /// One of [`KEYS`].
    Known(u8),
    /// Anything.
    Raw(String),
}

/// Keys the decoders and the host read.
pub const KEYS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "manifests",
    "digest",
    "size",
    "annotations",
    "org.opencontainers.image.ref.name",
    "io.containerd.image.name",
    "platform",
    "architecture",
    "os",
    "variant",
    "config",
    "layers",
    "rootfs",
    "type",
    "diff_ids",
    "Config",
    "RepoTags",
    "Layers",
    "LayerSources",
    "Parent",
    "id",
    "parent",
    "imageLayoutVersion",
    "urls",
    "artifactType",
    "subject",
    "vnd.docker.reference.type",
    "vnd.docker.reference.digest",
    "os.version",
    "history",
    "created",
    "container_config",
    "Cmd",
    "throwaway",
];

/// JSON strings.
#[derive(Arbitrary, Debug)]
pub enum Str {
    /// One of [`STRINGS`].
    Known(u8),
    /// `sha256:<hex>` of an entry.
    Digest(Ref),
    /// The path of an entry.
    Path(Ref),
    /// The bare hex of an entry's digest (v1 ids).
    Hex(Ref),
    /// Anything.
    Raw(String),
}

/// Strings decoders compare against.
pub const STRINGS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.in-toto+json",
    "attestation-manifest",
    "alpine:3.20",
    "docker.io/library/alpine:latest",
    "localhost/x:1",
    "Upper:Case",
    "a:b:c",
    "",
    "linux",
    "amd64",
    "arm64",
    "v8",
    "unknown",
    "windows",
    "1.0.0",
    "2.0.0",
    "layers",
    "sha256:",
    "sha512:00",
    "../../etc/passwd",
    "/etc/passwd",
    "layer.tar",
    "Directory Transport Version: 1.1\n",
];

/// JSON values.
#[derive(Arbitrary, Debug)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(Num),
    /// A string.
    Str(Str),
    /// An array.
    Array(Vec<Json>),
    /// An object.
    Object(Vec<(Key, Json)>),
}

/// A rendered entry.
#[derive(Debug, Clone)]
pub struct File {
    /// Its path.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Content of a regular file.
    pub content: Vec<u8>,
}

/// Rendered entry kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symlink to the target.
    Symlink(String),
    /// Hardlink to the target.
    Hardlink(String),
}

/// How deep rendered JSON nests before it turns into `null`.
const MAX_DEPTH: usize = 6;

impl Archive {
    /// The entries as files: contents first (last entry first, so that
    /// JSON can name the real digest of later entries), names last.
    pub fn render(&self) -> Vec<File> {
        let n = self.entries.len();
        let names = self.entries.iter().map(|e| &e.name).collect();
        let mut ctx = Ctx { digests: vec![None; n], sizes: vec![None; n], names };
        let mut contents = vec![Vec::new(); n];
        for i in (0..n).rev() {
            if let Kind::File(content) = &self.entries[i].kind {
                let bytes = ctx.content(content);
                ctx.digests[i] = Some(crate::sha256_hex(&bytes));
                ctx.sizes[i] = Some(bytes.len() as u64);
                contents[i] = bytes;
            }
        }
        self.entries
            .iter()
            .zip(contents)
            .enumerate()
            .map(|(i, (entry, content))| File {
                path: ctx.path(i),
                kind: match &entry.kind {
                    Kind::File(_) => FileKind::File,
                    Kind::Dir => FileKind::Dir,
                    Kind::Symlink(target) => FileKind::Symlink(ctx.name(target, 0)),
                    Kind::Hardlink(target) => FileKind::Hardlink(ctx.name(target, 0)),
                },
                content,
            })
            .collect()
    }
}

/// What is known while rendering: digests and sizes of the entries
/// rendered so far, and every entry's name.
struct Ctx<'a> {
    digests: Vec<Option<String>>,
    sizes: Vec<Option<u64>>,
    names: Vec<&'a Name>,
}

impl Ctx<'_> {
    fn index(&self, r: Ref) -> Option<usize> {
        (r.0 < 0x80 && !self.digests.is_empty()).then(|| r.0 as usize % self.digests.len())
    }

    fn hex(&self, r: Ref) -> String {
        self.hex_from(r, 0)
    }

    /// The digest `r` names, if it is an entry at `from` or later whose
    /// content is rendered; otherwise a fixed one.
    fn hex_from(&self, r: Ref, from: usize) -> String {
        match self.index(r).filter(|&i| i >= from).and_then(|i| self.digests[i].clone()) {
            Some(hex) => hex,
            None => crate::sha256_hex(&[r.0 & 7]),
        }
    }

    /// The path of entry `i`. Its digests come from entries at `i` or later
    /// only, so that JSON rendered before them (earlier entries) names the
    /// same path as the final one.
    fn path(&self, i: usize) -> String {
        self.name(self.names[i], i)
    }

    fn size(&self, r: Ref) -> u64 {
        self.index(r).and_then(|i| self.sizes[i]).unwrap_or(r.0 as u64)
    }

    fn name(&self, name: &Name, from: usize) -> String {
        let hex = |r: &Ref| self.hex_from(*r, from);
        match name {
            Name::Known(k) => NAMES[*k as usize % NAMES.len()].to_string(),
            Name::Blob(r) => format!("blobs/sha256/{}", hex(r)),
            Name::LayerTar(r) => format!("{}/layer.tar", hex(r)),
            Name::V1Json(r) => format!("{}/json", hex(r)),
            Name::V1Version(r) => format!("{}/VERSION", hex(r)),
            Name::ConfigJson(r) => format!("{}.json", hex(r)),
            Name::Hex(r) => hex(r),
            Name::Raw(s) => s.clone(),
        }
    }

    fn str(&self, s: &Str) -> String {
        match s {
            Str::Known(k) => STRINGS[*k as usize % STRINGS.len()].to_string(),
            Str::Digest(r) => format!("sha256:{}", self.hex(*r)),
            Str::Path(r) => self.index(*r).map(|i| self.path(i)).unwrap_or_default(),
            Str::Hex(r) => self.hex(*r),
            Str::Raw(s) => s.clone(),
        }
    }

    fn key(&self, key: &Key) -> String {
        match key {
            Key::Known(k) => KEYS[*k as usize % KEYS.len()].to_string(),
            Key::Raw(s) => s.clone(),
        }
    }

    fn num(&self, num: &Num) -> String {
        match num {
            Num::SizeOf(r) => self.size(*r).to_string(),
            Num::Int(i) => i.to_string(),
            Num::Float(f) if f.is_finite() => format!("{f:?}"),
            Num::Float(_) => "1e400".to_string(),
        }
    }

    fn json(&self, json: &Json, depth: usize, out: &mut String) {
        if depth > MAX_DEPTH {
            out.push_str("null");
            return;
        }
        match json {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(&self.num(n)),
            Json::Str(s) => quote(&self.str(s), out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.json(item, depth + 1, out);
                }
                out.push(']');
            }
            Json::Object(fields) => self.object(fields.iter().map(|(k, v)| (self.key(k), Field::Json(v))), depth, out),
        }
    }

    fn object<'a>(&self, fields: impl Iterator<Item = (String, Field<'a>)>, depth: usize, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in fields.enumerate() {
            if i > 0 {
                out.push(',');
            }
            quote(&key, out);
            out.push(':');
            match value {
                Field::Json(json) => self.json(json, depth + 1, out),
                Field::Text(text) => out.push_str(&text),
            }
        }
        out.push('}');
    }

    fn quoted(&self, s: &Str) -> String {
        let mut out = String::new();
        quote(&self.str(s), &mut out);
        out
    }

    fn descriptor(&self, d: &Descriptor, out: &mut String) {
        let mut fields: Vec<(String, Field)> = Vec::new();
        if let Some(m) = &d.media_type {
            fields.push(("mediaType".into(), Field::Text(self.quoted(m))));
        }
        fields.push(("digest".into(), Field::Text(format!("\"sha256:{}\"", self.hex(d.target)))));
        let size = match &d.size {
            Some(n) => self.num(n),
            None => self.size(d.target).to_string(),
        };
        fields.push(("size".into(), Field::Text(size)));
        if let Some((containerd, name)) = &d.ref_name {
            let key = if *containerd { "io.containerd.image.name" } else { "org.opencontainers.image.ref.name" };
            let mut text = String::from("{");
            quote(key, &mut text);
            text.push(':');
            text.push_str(&self.quoted(name));
            text.push('}');
            fields.push(("annotations".into(), Field::Text(text)));
        }
        if let Some((os, arch, variant)) = &d.platform {
            let mut text = format!("{{\"os\":{},\"architecture\":{}", self.quoted(os), self.quoted(arch));
            if let Some(v) = variant {
                text.push_str(&format!(",\"variant\":{}", self.quoted(v)));
            }
            text.push('}');
            fields.push(("platform".into(), Field::Text(text)));
        }
        fields.extend(d.extra.iter().map(|(k, v)| (self.key(k), Field::Json(v))));
        self.object(fields.into_iter(), 1, out);
    }

    fn content(&self, content: &Content) -> Vec<u8> {
        let mut out = String::new();
        match content {
            Content::Raw(bytes) => return bytes.clone(),
            Content::Layer(layer) => return crate::tarball::layer(layer),
            Content::Json(json) => self.json(json, 0, &mut out),
            Content::OciLayout(version) => {
                let version = version.as_ref().map_or_else(|| "\"1.0.0\"".to_string(), |v| self.quoted(v));
                out = format!("{{\"imageLayoutVersion\":{version}}}");
            }
            Content::Index { media_type, manifests } => {
                out.push_str("{\"schemaVersion\":2,");
                if let Some(m) = media_type {
                    out.push_str(&format!("\"mediaType\":{},", self.quoted(m)));
                }
                out.push_str("\"manifests\":[");
                for (i, d) in manifests.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.descriptor(d, &mut out);
                }
                out.push_str("]}");
            }
            Content::Manifest { media_type, config, layers } => {
                out.push_str("{\"schemaVersion\":2,");
                if let Some(m) = media_type {
                    out.push_str(&format!("\"mediaType\":{},", self.quoted(m)));
                }
                out.push_str("\"config\":");
                self.descriptor(config, &mut out);
                out.push_str(",\"layers\":[");
                for (i, d) in layers.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.descriptor(d, &mut out);
                }
                out.push_str("]}");
            }
            Content::Config { diff_ids, platform, extra } => {
                let ids: Vec<String> = diff_ids.iter().map(|r| format!("\"sha256:{}\"", self.hex(*r))).collect();
                let (os, arch) = match platform {
                    Some((os, arch)) => (self.quoted(os), self.quoted(arch)),
                    None => ("\"linux\"".to_string(), "\"amd64\"".to_string()),
                };
                let mut fields: Vec<(String, Field)> = vec![
                    ("architecture".into(), Field::Text(arch)),
                    ("os".into(), Field::Text(os)),
                    ("rootfs".into(), Field::Text(format!("{{\"type\":\"layers\",\"diff_ids\":[{}]}}", ids.join(",")))),
                ];
                fields.extend(extra.iter().map(|(k, v)| (self.key(k), Field::Json(v))));
                self.object(fields.into_iter(), 0, &mut out);
            }
            Content::DockerManifest(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let tags = match &item.tags {
                        None => "null".to_string(),
                        Some(tags) => {
                            format!("[{}]", tags.iter().map(|t| self.quoted(t)).collect::<Vec<_>>().join(","))
                        }
                    };
                    let layers = item.layers.iter().map(|l| self.quoted(l)).collect::<Vec<_>>().join(",");
                    let mut fields: Vec<(String, Field)> = vec![
                        ("Config".into(), Field::Text(self.quoted(&item.config))),
                        ("RepoTags".into(), Field::Text(tags)),
                        ("Layers".into(), Field::Text(format!("[{layers}]"))),
                    ];
                    fields.extend(item.extra.iter().map(|(k, v)| (self.key(k), Field::Json(v))));
                    self.object(fields.into_iter(), 1, &mut out);
                }
                out.push(']');
            }
            Content::Repositories(repos) => {
                let fields = repos.iter().map(|(name, tags)| {
                    let mut text = String::from("{");
                    for (i, (tag, id)) in tags.iter().enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        text.push_str(&format!("{}:\"{}\"", self.quoted(tag), self.hex(*id)));
                    }
                    text.push('}');
                    (self.str(name), Field::Text(text))
                });
                self.object(fields, 0, &mut out);
            }
            Content::V1Json { id, parent, extra } => {
                let mut fields: Vec<(String, Field)> =
                    vec![("id".into(), Field::Text(format!("\"{}\"", self.hex(*id))))];
                if let Some(p) = parent {
                    fields.push(("parent".into(), Field::Text(format!("\"{}\"", self.hex(*p)))));
                }
                fields.extend(extra.iter().map(|(k, v)| (self.key(k), Field::Json(v))));
                self.object(fields.into_iter(), 0, &mut out);
            }
            Content::DirVersion(text) => {
                out = text.clone().unwrap_or_else(|| "Directory Transport Version: 1.1\n".to_string());
            }
        }
        out.into_bytes()
    }
}

/// A value of a rendered object: JSON still to render, or rendered text.
enum Field<'a> {
    Json(&'a Json),
    Text(String),
}

/// Appends `s` as a JSON string.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
