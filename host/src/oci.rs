//! The OCI documents the host reads and writes, their media types, and
//! platform matching.

use crate::digest::Digest;
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
/// OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip OCI layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd OCI layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The media types of a manifest an archive lacks: docker schema 2 for a
/// docker config, OCI otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `application/vnd.oci.*`
    Oci,
    /// `application/vnd.docker.*`
    Docker,
}

impl Flavor {
    /// The flavor matching a config's media type.
    pub fn of_config(media_type: &str) -> Flavor {
        if media_type == MEDIA_TYPE_DOCKER_CONFIG { Flavor::Docker } else { Flavor::Oci }
    }

    /// Manifest media type.
    pub fn manifest(self) -> &'static str {
        match self {
            Flavor::Oci => MEDIA_TYPE_MANIFEST,
            Flavor::Docker => MEDIA_TYPE_DOCKER_MANIFEST,
        }
    }

    /// Layer media type for a layer with this (sniffed) compression.
    pub fn layer(self, compression: Option<crate::input::Compression>) -> &'static str {
        use crate::input::Compression;
        match (self, compression) {
            (Flavor::Docker, Some(Compression::Gzip)) => MEDIA_TYPE_DOCKER_LAYER_GZIP,
            (Flavor::Docker, None) => MEDIA_TYPE_DOCKER_LAYER,
            (_, Some(Compression::Gzip)) => MEDIA_TYPE_LAYER_GZIP,
            (_, Some(Compression::Zstd)) => MEDIA_TYPE_LAYER_ZSTD,
            _ => MEDIA_TYPE_LAYER,
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
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(platform_matches(&parse_platform("linux/arm64").unwrap(), &p));
        assert!(!platform_matches(&parse_platform("linux/arm/v6").unwrap(), &parse_platform("linux/arm/v7").unwrap()));
        assert!(parse_platform("linux").is_none());
    }
}
