//! Decoder for OCI image layouts: `oci-layout`, `index.json` and `blobs/`,
//! as a tar (`skopeo copy … oci-archive:`) or a directory (`oci:`).
//!
//! Walks `index.json` and nested indexes down to every image manifest. Refs
//! come from `io.containerd.image.name` (a full ref) or, failing that,
//! `org.opencontainers.image.ref.name`; the platform from the index entry.
//! Attestation manifests (platform `unknown/unknown`) are not images and are
//! skipped.

use msb_plugin_sdk::oci::{self, Descriptor, Index, LayoutFile, Manifest};
use msb_plugin_sdk::{
    entry_blob, export_decoder, info, read_json, ArchiveRead, Blob, DecodeError, Decoder, Digest, Image, Info,
    Layer,
};

/// How deep indexes may nest before the archive is refused.
const MAX_INDEX_DEPTH: usize = 8;

/// The OCI image layout decoder.
pub struct OciLayout;

impl Decoder for OciLayout {
    fn info() -> Info {
        info!("oci-layout", "OCI image layout (oci-layout, index.json, blobs/)", ["oci-layout"])
    }

    fn detect(archive: &dyn ArchiveRead) -> u8 {
        match (archive.has_file("oci-layout"), archive.has_file("index.json")) {
            // docker 25+ writes both layouts; its own decoder knows it better.
            (true, true) if archive.has_file("manifest.json") => 80,
            (true, true) => 90,
            (false, true) if archive.entries().iter().any(|e| e.path.starts_with("blobs/")) => 40,
            _ => 0,
        }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        if archive.has_file("oci-layout") {
            let layout: LayoutFile = read_json(archive, "oci-layout")?;
            if !layout.image_layout_version.starts_with("1.") {
                return Err(DecodeError::unsupported(
                    Some("oci-layout"),
                    format!("image layout version {} (this decoder reads 1.x)", layout.image_layout_version),
                ));
            }
        }
        let index: Index = read_json(archive, "index.json")?;
        let mut images = Vec::new();
        for descriptor in &index.manifests {
            let refs = refs_of(descriptor);
            walk(archive, descriptor, "index.json", &refs, &mut Vec::new(), &mut images)?;
        }
        Ok(images)
    }
}

export_decoder!(OciLayout);

/// The refs an `index.json` entry names.
fn refs_of(descriptor: &Descriptor) -> Vec<String> {
    let annotation = |key| descriptor.annotations.get(key).filter(|v| !v.is_empty()).cloned();
    annotation(oci::ANNOTATION_CONTAINERD_NAME)
        .or_else(|| annotation(oci::ANNOTATION_REF_NAME))
        .into_iter()
        .collect()
}

/// Follows `descriptor` (found in `parent`) down to image manifests.
fn walk(
    archive: &dyn ArchiveRead,
    descriptor: &Descriptor,
    parent: &str,
    refs: &[String],
    indexes: &mut Vec<Blob>,
    images: &mut Vec<Image>,
) -> Result<(), DecodeError> {
    let digest = parse_digest(&descriptor.digest, parent)?;
    let path = digest.blob_path();
    let media_type = descriptor.media_type.as_str();
    if oci::is_index(media_type) {
        if indexes.len() >= MAX_INDEX_DEPTH {
            return Err(DecodeError::unsupported(Some(&path), format!("indexes nest deeper than {MAX_INDEX_DEPTH}")));
        }
        let index: Index = read_json(archive, &require(archive, &path, parent)?)?;
        indexes.push(entry_blob(media_type, Some(&digest), &path));
        for child in index.manifests.iter().filter(|d| !is_attestation(d)) {
            walk(archive, child, &path, refs, indexes, images)?;
        }
        indexes.pop();
    } else if oci::is_manifest(media_type) {
        let manifest: Manifest = read_json(archive, &require(archive, &path, parent)?)?;
        images.push(image(archive, &manifest, descriptor, &path, refs, indexes)?);
    } else {
        msb_plugin_sdk::log(&format!("{parent}: skipping {} of media type {media_type}", descriptor.digest));
    }
    Ok(())
}

/// The image described by `manifest`, stored at `path`.
fn image(
    archive: &dyn ArchiveRead,
    manifest: &Manifest,
    descriptor: &Descriptor,
    path: &str,
    refs: &[String],
    indexes: &[Blob],
) -> Result<Image, DecodeError> {
    let blob = |d: &Descriptor| -> Result<Blob, DecodeError> {
        let digest = parse_digest(&d.digest, path)?;
        let blob_path = require(archive, &digest.blob_path(), path)?;
        Ok(entry_blob(&d.media_type, Some(&digest), &blob_path))
    };
    let layers = manifest
        .layers
        .iter()
        .map(|d| Ok(Layer { blob: blob(d)?, diff_id: None }))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let digest = parse_digest(&descriptor.digest, path)?;
    Ok(Image {
        refs: refs.to_vec(),
        platform: descriptor.platform.clone().map(Into::into),
        indexes: indexes.to_vec(),
        manifest: Some(entry_blob(&descriptor.media_type, Some(&digest), path)),
        config: blob(&manifest.config)?,
        layers,
    })
}

fn parse_digest(digest: &str, parent: &str) -> Result<Digest, DecodeError> {
    Digest::parse(digest).ok_or_else(|| DecodeError::malformed(parent, format!("invalid or unsupported digest {digest:?}")))
}

/// `path`, if the archive has it; else an error naming who referred to it.
fn require(archive: &dyn ArchiveRead, path: &str, parent: &str) -> Result<String, DecodeError> {
    if archive.has_file(path) {
        Ok(path.to_string())
    } else {
        Err(DecodeError::missing(path, format!("blob referenced by {parent} is not in the archive")))
    }
}

/// Buildx attestation manifests ride in indexes as `unknown/unknown`.
fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor.annotations.get("vnd.docker.reference.type").is_some_and(|t| t == "attestation-manifest")
        || descriptor.platform.as_ref().is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

#[cfg(test)]
mod tests;
