//! A structured layer tar: headers with whiteouts, hardlinks, long names,
//! PAX records (xattrs, sparse maps), GNU sparse entries and devices, plus
//! damage (truncation, flipped bytes) applied to the written bytes.
//! [`crate::tarball::layer`] writes it.

use arbitrary::Arbitrary;

/// A layer tar.
#[derive(Arbitrary, Debug)]
pub struct Layer {
    /// Entries, in order.
    pub entries: Vec<LayerEntry>,
    /// Write the two zero blocks that end an archive.
    pub end_marker: bool,
    /// Cut the written tar at this many bytes (modulo its length + 1).
    pub truncate: Option<u32>,
    /// Bytes to xor: (position modulo the length, mask).
    pub flips: Vec<(u32, u8)>,
}

/// One tar entry.
#[derive(Arbitrary, Debug)]
pub struct LayerEntry {
    /// Its path.
    pub name: LayerName,
    /// Its type and type-specific fields.
    pub kind: LayerKind,
    /// `mode` (permission and setuid/setgid/sticky bits, and more).
    pub mode: u32,
    /// `uid`.
    pub uid: u32,
    /// `gid`.
    pub gid: u32,
    /// `mtime`.
    pub mtime: u32,
    /// A PAX header before the entry.
    pub pax: Vec<(PaxKey, PaxValue)>,
    /// Write a GNU header (else ustar); names longer than 100 bytes get a
    /// GNU long-name entry either way.
    pub gnu: bool,
    /// File content (files, sparse data).
    pub data: Vec<u8>,
}

/// Entry paths.
#[derive(Arbitrary, Debug)]
pub enum LayerName {
    /// One of [`LAYER_NAMES`].
    Known(u8),
    /// Components from [`COMPONENTS`] joined by `/`.
    Parts(Vec<u8>),
    /// A name longer than a header holds: `len` times `c` under a directory.
    Long {
        /// Length of the last component (100 + this).
        len: u8,
        /// Directory from [`LAYER_NAMES`].
        dir: u8,
    },
    /// Anything.
    Raw(String),
}

/// Paths a layer has: plain, whiteouts, opaque markers, odd forms.
pub const LAYER_NAMES: &[&str] = &[
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "b",
    "./a",
    "./",
    ".",
    "/a",
    "a//b",
    ".wh.a",
    "a/.wh.b",
    "a/.wh..wh..opq",
    ".wh..wh..opq",
    ".wh..wh.plnk",
    "a/.wh.",
    "../a",
    "a/../../b",
    "etc/passwd",
    "usr/bin/ping",
];

/// Path components for [`LayerName::Parts`].
pub const COMPONENTS: &[&str] = &["a", "b", "c", ".", "..", ".wh.a", ".wh..wh..opq", "", "dir", "f"];

/// Entry types.
#[derive(Arbitrary, Debug)]
pub enum LayerKind {
    /// Regular file (`0`).
    File,
    /// Directory (`5`).
    Dir,
    /// Symlink (`2`).
    Symlink(LayerName),
    /// Hardlink (`1`).
    Hardlink(LayerName),
    /// Character device (`3`); 0/0 with a `.wh.` name is a whiteout.
    Char(u32, u32),
    /// Block device (`4`).
    Block(u32, u32),
    /// FIFO (`6`).
    Fifo,
    /// Old GNU sparse (`S`): segments (offset, length) and the real size.
    Sparse {
        /// Data segments; their bytes come from `data`.
        segments: Vec<(u64, u16)>,
        /// `realsize`.
        real_size: u64,
    },
    /// PAX sparse 1.0: the map in the data, `GNU.sparse.*` records.
    PaxSparse {
        /// Data segments.
        segments: Vec<(u64, u16)>,
        /// `GNU.sparse.realsize`.
        real_size: u64,
    },
    /// Any type byte.
    Other(u8),
}

/// PAX record keys.
#[derive(Arbitrary, Debug)]
pub enum PaxKey {
    /// One of [`PAX_KEYS`].
    Known(u8),
    /// Anything.
    Raw(String),
}

/// Keys tar readers and the EROFS writer act on.
pub const PAX_KEYS: &[&str] = &[
    "path",
    "linkpath",
    "size",
    "uid",
    "gid",
    "mtime",
    "atime",
    "uname",
    "gname",
    "SCHILY.xattr.user.a",
    "SCHILY.xattr.security.capability",
    "SCHILY.xattr.trusted.overlay.opaque",
    "SCHILY.xattr.security.selinux",
    "SCHILY.xattr.",
    "SCHILY.devmajor",
    "SCHILY.devminor",
    "LIBARCHIVE.xattr.user.b",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.name",
    "GNU.sparse.realsize",
    "GNU.sparse.size",
    "GNU.sparse.map",
    "GNU.sparse.offset",
    "GNU.sparse.numbytes",
    "GNU.sparse.numblocks",
    "hdrcharset",
];

/// PAX record values.
#[derive(Arbitrary, Debug)]
pub enum PaxValue {
    /// A decimal number.
    Number(u64),
    /// A short list of numbers, comma separated (sparse maps).
    Numbers(Vec<u32>),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl LayerName {
    /// The path bytes.
    pub fn render(&self) -> Vec<u8> {
        match self {
            LayerName::Known(k) => LAYER_NAMES[*k as usize % LAYER_NAMES.len()].as_bytes().to_vec(),
            LayerName::Parts(parts) => parts
                .iter()
                .map(|p| COMPONENTS[*p as usize % COMPONENTS.len()])
                .collect::<Vec<_>>()
                .join("/")
                .into_bytes(),
            LayerName::Long { len, dir } => {
                let dir = LAYER_NAMES[*dir as usize % LAYER_NAMES.len()];
                format!("{dir}/{}", "x".repeat(100 + *len as usize)).into_bytes()
            }
            LayerName::Raw(s) => s.as_bytes().to_vec(),
        }
    }
}

impl PaxKey {
    /// The key.
    pub fn render(&self) -> String {
        match self {
            PaxKey::Known(k) => PAX_KEYS[*k as usize % PAX_KEYS.len()].to_string(),
            PaxKey::Raw(s) => s.clone(),
        }
    }
}

impl PaxValue {
    /// The value bytes.
    pub fn render(&self) -> Vec<u8> {
        match self {
            PaxValue::Number(n) => n.to_string().into_bytes(),
            PaxValue::Numbers(ns) => ns.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",").into_bytes(),
            PaxValue::Bytes(b) => b.clone(),
        }
    }
}
