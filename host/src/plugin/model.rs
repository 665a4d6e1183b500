//! What a decoder says, in the host's own terms: the load pipeline works on
//! these types, whatever contract version the decoder was built for. Each
//! version's adapter ([`super::contract`]) turns a plugin's answers into
//! them, so a new contract version changes an adapter, not `load/`.

/// What a decoder says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its name (`--plugin NAME`): a safe file name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// The formats it reads, e.g. `oci-layout`.
    pub formats: Vec<String>,
    /// One line for `msb plugin ls`.
    pub description: String,
}

/// Where the bytes of a blob are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The whole content of this archive entry.
    Entry(String),
    /// Bytes the decoder made (e.g. a config it synthesized).
    Bytes(Vec<u8>),
    /// A stream the host pulls from the decoder.
    Stream(u32),
    /// The archive itself, as the host read it (contract 0.2.0).
    Input,
}

/// A content-addressed blob: a manifest, a config or a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Media type, if the decoder states one.
    pub media_type: Option<String>,
    /// `sha256:<hex>` as the archive declares it (always verified).
    pub digest: Option<String>,
    /// Where its bytes are.
    pub source: Source,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its blob.
    pub blob: Blob,
    /// Its uncompressed digest, if the archive states one (the config's
    /// diff_id is what counts).
    pub diff_id: Option<String>,
}

/// `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `arm64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

/// One image a decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The names the archive gives it.
    pub refs: Vec<String>,
    /// Its platform, from an index.
    pub platform: Option<Platform>,
    /// Indexes it was reached through, outermost first.
    pub indexes: Vec<Blob>,
    /// Its manifest, if the archive has one.
    pub manifest: Option<Blob>,
    /// Its config.
    pub config: Blob,
    /// Its layers, base first.
    pub layers: Vec<Layer>,
    /// Blobs that travel with it (attestations).
    pub attachments: Vec<Blob>,
}

/// What kind of problem a decoder reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The archive is not in this decoder's format.
    NotThisFormat,
    /// Something the format needs is missing.
    Missing,
    /// Something is malformed.
    Malformed,
    /// A feature of the format this decoder does not support.
    Unsupported,
    /// The host refused a request.
    Host,
}

/// A problem a decoder reports with the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Its kind.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
    /// The entry it is about, if any.
    pub entry: Option<String>,
}
