//! Walking an OCI image layout (`oci-layout`, `index.json`, `blobs/`) down
//! to its images: shared by every decoder whose archives hold one
//! (`skopeo … oci-archive:`, `docker save` since docker 25).
//!
//! Refs come from `io.containerd.image.name` (a full ref) or, failing that,
//! `org.opencontainers.image.ref.name` of the `index.json` entry; platforms
//! from index entries. Attestation manifests (platform `unknown/unknown`)
//! are not images: they travel as attachments of the index's images.

use crate::oci::{self, Descriptor, Index, LayoutFile, Manifest};
use crate::{ArchiveRead, Blob, DecodeError, Digest, Image, Layer, entry_blob, read_json};

/// How deep indexes may nest before the archive is refused.
pub const MAX_INDEX_DEPTH: usize = 8;

/// Every image the layout at the archive root names, in `index.json` order
/// (an image listed twice, e.g. under two refs, comes twice). Checks the
/// `oci-layout` version when the file is present.
pub fn images(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
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

/// The refs an `index.json` entry names: its `io.containerd.image.name`,
/// else its `org.opencontainers.image.ref.name` (which may be a bare tag).
pub fn refs_of(descriptor: &Descriptor) -> Vec<String> {
    let annotation = |key| descriptor.annotations.get(key).filter(|v| !v.is_empty()).cloned();
    annotation(oci::ANNOTATION_CONTAINERD_NAME).or_else(|| annotation(oci::ANNOTATION_REF_NAME)).into_iter().collect()
}

/// Which keys a document has: what it is, whatever it is labelled.
#[derive(serde::Deserialize)]
struct Shape {
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
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
        let blob_path = require(archive, &path, parent)?;
        // A manifest labelled as an index would be an index of nothing.
        let shape: Shape = read_json(archive, &blob_path)?;
        if shape.manifests.is_none() || shape.config.is_some() {
            return Err(DecodeError::malformed(
                &path,
                format!("{parent} labels it {media_type}, it is no image index"),
            ));
        }
        let index: Index = read_json(archive, &blob_path)?;
        indexes.push(entry_blob(media_type, Some(&digest), &path));
        let first = images.len();
        let mut attachments = Vec::new();
        for child in &index.manifests {
            if is_attestation(child) {
                attachments.extend(attestation(archive, child, &path)?);
            } else {
                walk(archive, child, &path, refs, indexes, images)?;
            }
        }
        for image in &mut images[first..] {
            image.attachments.extend(attachments.iter().cloned());
        }
        indexes.pop();
    } else if oci::is_manifest(media_type) {
        let manifest: Manifest = read_json(archive, &require(archive, &path, parent)?)?;
        images.push(image(archive, &manifest, descriptor, &path, refs, indexes)?);
    } else {
        crate::log(&format!("{parent}: skipping {} of media type {media_type}", descriptor.digest));
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
        attachments: vec![],
    })
}

/// The blobs of an attestation manifest (itself, its config, its layers),
/// or none if the archive lacks any of them.
fn attestation(archive: &dyn ArchiveRead, descriptor: &Descriptor, parent: &str) -> Result<Vec<Blob>, DecodeError> {
    let digest = parse_digest(&descriptor.digest, parent)?;
    let path = digest.blob_path();
    if !archive.has_file(&path) {
        return Ok(vec![]);
    }
    let manifest: Manifest = read_json(archive, &path)?;
    let mut blobs = vec![entry_blob(&descriptor.media_type, Some(&digest), &path)];
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let digest = parse_digest(&d.digest, &path)?;
        if !archive.has_file(&digest.blob_path()) {
            return Ok(vec![]);
        }
        blobs.push(entry_blob(&d.media_type, Some(&digest), &digest.blob_path()));
    }
    Ok(blobs)
}

fn parse_digest(digest: &str, parent: &str) -> Result<Digest, DecodeError> {
    Digest::parse(digest)
        .ok_or_else(|| DecodeError::malformed(parent, format!("invalid or unsupported digest {digest:?}")))
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
