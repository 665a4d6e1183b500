//! The OCI documents the host reads and writes, their media types, and
//! platform matching.

use crate::digest::Digest;
use crate::input::Compression;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list.
pub const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema 2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Uncompressed docker layer.
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Gzip docker layer.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Gzip docker layer that registries may not serve (Windows base layers).
pub const MEDIA_TYPE_DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip OCI layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd OCI layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Xz OCI layer: not in the OCI spec, but honest about the bytes (docker
/// loads xz layers from `docker save` archives).
pub const MEDIA_TYPE_LAYER_XZ: &str = "application/vnd.oci.image.layer.v1.tar+xz";
/// Bzip2 OCI layer, for the same reason.
pub const MEDIA_TYPE_LAYER_BZIP2: &str = "application/vnd.oci.image.layer.v1.tar+bzip2";

/// The OCI media type of a layer with this (sniffed) compression: what msb
/// writes into the manifests it synthesizes.
pub fn layer_media_type(compression: Option<Compression>) -> &'static str {
    match compression {
        None => MEDIA_TYPE_LAYER,
        Some(Compression::Gzip) => MEDIA_TYPE_LAYER_GZIP,
        Some(Compression::Zstd) => MEDIA_TYPE_LAYER_ZSTD,
        Some(Compression::Xz) => MEDIA_TYPE_LAYER_XZ,
        Some(Compression::Bzip2) => MEDIA_TYPE_LAYER_BZIP2,
    }
}

/// The compression a layer media type declares, or `None` for a media type
/// that is no layer msb knows (the caller refuses it, naming it).
pub fn layer_compression(media_type: &str) -> Option<Option<Compression>> {
    let oci = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.tar")
        .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.tar"));
    if let Some(suffix) = oci {
        return match suffix {
            "" => Some(None),
            "+gzip" => Some(Some(Compression::Gzip)),
            "+zstd" => Some(Some(Compression::Zstd)),
            "+xz" => Some(Some(Compression::Xz)),
            "+bzip2" => Some(Some(Compression::Bzip2)),
            _ => None,
        };
    }
    match media_type {
        MEDIA_TYPE_DOCKER_LAYER => Some(None),
        MEDIA_TYPE_DOCKER_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_FOREIGN => Some(Some(Compression::Gzip)),
        _ => None,
    }
}

/// Whether `media_type` is an image config msb knows.
pub fn is_config(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_CONFIG || media_type == MEDIA_TYPE_DOCKER_CONFIG
}

/// Whether `media_type` is an image manifest msb knows.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

/// What a manifest-or-index document is, decided by parsing its bytes.
#[derive(Debug, Clone)]
pub enum Document {
    /// An image manifest, with its media type.
    Manifest(Manifest, String),
    /// An image index or manifest list, with its media type.
    Index(Index, String),
}

impl Document {
    /// Parses `bytes` as an image manifest or index. Its kind comes from its
    /// shape (`config` and `layers`, or `manifests`); its media type from its
    /// `mediaType` field, else from `declared`, else the OCI one. A media
    /// type of the other kind, an unknown one, or a `declared` type that
    /// contradicts the document's own is refused.
    pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Document, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Shape {
            schema_version: Option<u32>,
            media_type: Option<String>,
            config: Option<serde::de::IgnoredAny>,
            manifests: Option<serde::de::IgnoredAny>,
        }
        let shape: Shape = serde_json::from_slice(bytes).map_err(|e| format!("not an image manifest or index: {e}"))?;
        if shape.schema_version != Some(2) {
            return Err(format!("schemaVersion {:?}, expected 2", shape.schema_version));
        }
        let indexes = match (shape.config.is_some(), shape.manifests.is_some()) {
            (true, false) => false,
            (false, true) => true,
            _ => return Err("neither an image manifest (config, layers) nor an index (manifests)".into()),
        };
        let (kind, known): (&str, fn(&str) -> bool) =
            if indexes { ("an image index", is_index) } else { ("an image manifest", is_manifest) };
        for media_type in shape.media_type.iter().map(String::as_str).chain(declared) {
            if !known(media_type) {
                return Err(format!("is {kind}, but labelled with media type {media_type:?}"));
            }
        }
        if let (Some(own), Some(declared)) = (&shape.media_type, declared)
            && own != declared
        {
            return Err(format!("has media type {own}, its descriptor says {declared}"));
        }
        let media_type = shape.media_type.or(declared.map(str::to_string));
        let json_err = |e: serde_json::Error| format!("not {kind}: {e}");
        Ok(if indexes {
            let media_type = media_type.unwrap_or_else(|| MEDIA_TYPE_INDEX.to_string());
            Document::Index(serde_json::from_slice(bytes).map_err(json_err)?, media_type)
        } else {
            let media_type = media_type.unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string());
            Document::Manifest(serde_json::from_slice(bytes).map_err(json_err)?, media_type)
        })
    }

    /// Its media type, as verified.
    pub fn media_type(&self) -> &str {
        match self {
            Document::Manifest(_, m) | Document::Index(_, m) => m,
        }
    }
}

/// Annotation naming an image in an OCI layout index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and docker 25+ put on index entries: the full ref.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Whether `media_type` is an image index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST
}

/// A platform, as in an OCI index or config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `linux`
    pub os: String,
    /// e.g. `amd64`
    pub architecture: String,
    /// e.g. `v8`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size.
    pub size: u64,
    /// Platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// Its entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// 2.
    pub schema_version: u32,
    /// Media type, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// The fields of an image config msb needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers' diff_ids.
    pub rootfs: RootFs,
}

/// `rootfs` of a config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    /// Digests of the uncompressed layer tars, base first.
    pub diff_ids: Vec<Digest>,
}

impl Config {
    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

/// The platform of this machine, in OCI terms.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    };
    Platform { os: std::env::consts::OS.into(), architecture: architecture.into(), variant: variant.map(Into::into) }
}

/// Parses `os/arch[/variant]`.
pub fn parse_platform(s: &str) -> Option<Platform> {
    let mut parts = s.split('/');
    let (os, architecture) = (parts.next()?, parts.next()?);
    let variant = parts.next().map(str::to_string);
    if os.is_empty() || architecture.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(Platform { os: os.into(), architecture: architecture.into(), variant })
}

/// Whether `have` satisfies `want`: same os and architecture, and the same
/// variant when both name one (`arm64` and `arm64/v8` are the same).
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && match (&have.variant, &want.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// The entry of `manifests` for `want`, preferring an exact variant match.
pub fn choose_platform<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let with = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p == want);
    let loose = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| platform_matches(p, want));
    manifests.iter().find(with).or_else(|| manifests.iter().find(loose))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_what_their_bytes_say() {
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(Document::parse(manifest, None).unwrap().media_type(), MEDIA_TYPE_MANIFEST);
        assert_eq!(
            Document::parse(manifest, Some(MEDIA_TYPE_DOCKER_MANIFEST)).unwrap().media_type(),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        assert!(matches!(Document::parse(index, None), Ok(Document::Index(..))));
        // A manifest labelled as an index, and the other way round, are refused.
        let err = Document::parse(manifest, Some(MEDIA_TYPE_INDEX)).unwrap_err();
        assert!(err.contains("is an image manifest, but labelled"), "{err}");
        assert!(Document::parse(index, Some(MEDIA_TYPE_MANIFEST)).is_err());
        assert!(Document::parse(index, Some(MEDIA_TYPE_DOCKER_LIST)).unwrap_err().contains("its descriptor says"));
        assert!(Document::parse(manifest, Some("application/vnd.example.unknown.v1")).is_err());
        assert!(Document::parse(br#"{"schemaVersion":1,"config":{},"layers":[]}"#, None).is_err());
        assert!(Document::parse(br#"{"schemaVersion":2}"#, None).is_err());
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(layer_compression(MEDIA_TYPE_LAYER_GZIP), Some(Some(Compression::Gzip)));
        assert_eq!(layer_compression(MEDIA_TYPE_DOCKER_LAYER), Some(None));
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
            Some(Some(Compression::Zstd))
        );
        assert_eq!(layer_compression("application/vnd.example.unknown.v1"), None);
        assert_eq!(layer_compression("application/vnd.oci.image.layer.v1.tar+lz4"), None);
        for c in
            [None, Some(Compression::Gzip), Some(Compression::Zstd), Some(Compression::Xz), Some(Compression::Bzip2)]
        {
            assert_eq!(layer_compression(layer_media_type(c)), Some(c));
        }
    }

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(platform_matches(&parse_platform("linux/arm64").unwrap(), &p));
        assert!(!platform_matches(&parse_platform("linux/arm/v6").unwrap(), &parse_platform("linux/arm/v7").unwrap()));
        assert!(parse_platform("linux").is_none());
    }
}
