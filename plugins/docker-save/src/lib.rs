//! Decoder for `docker save` archives: a `manifest.json` listing each
//! image's config and layers, as docker 1.10 to 28 (and `skopeo copy …
//! docker-archive:`, `podman save`) write them.
//!
//! - **Classic** (docker < 25): `<id>.json` configs and `<id>/layer.tar`
//!   layers; a layer saved twice is a symlink to the first copy. There is no
//!   manifest: the host synthesizes one from the config and the layers.
//! - **Docker 25+**: the same tar is also an OCI image layout (`oci-layout`,
//!   `index.json`, `blobs/sha256/`). Its index is preferred, which keeps the
//!   manifest digests, once checked to agree with `manifest.json`; the refs
//!   are `RepoTags` plus the index's full refs.
//!
//! Refs are `RepoTags` (none for an image saved by ID, which is then loaded
//! by its config digest); the legacy `repositories` file only names images
//! `manifest.json` gives no tag, matched by top layer id.

use msb_plugin_sdk::oci::MEDIA_TYPE_DOCKER_CONFIG;
use msb_plugin_sdk::{
    ArchiveRead, Blob, DecodeError, Decoder, Digest, ErrorKind, Image, Info, Layer, Source, clean_path, export_decoder,
    info, layout, read_json,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The archive's table of contents.
const MANIFEST: &str = "manifest.json";
/// The legacy `{"repo": {"tag": "<top layer id>"}}` file.
const REPOSITORIES: &str = "repositories";

/// The `docker save` decoder.
pub struct DockerSave;

/// One image of `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    /// Path of the config (`<id>.json` or `blobs/sha256/<hex>`).
    pub config: String,
    /// `repo:tag` names; `null` for an image saved by ID.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, base first.
    pub layers: Vec<String>,
}

/// The part of an image config this decoder needs.
#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl Decoder for DockerSave {
    fn info() -> Info {
        info!("docker-save", "docker save archives (manifest.json), docker 1.10 to 28", ["docker-save"])
    }

    fn detect(archive: &dyn ArchiveRead) -> u8 {
        if !archive.has_file(MANIFEST) {
            return 0;
        }
        match read_json::<Vec<ManifestEntry>>(archive, MANIFEST) {
            Ok(entries) if !entries.is_empty() => {
                // docker 25+: also an OCI layout, which oci-layout detects at 80.
                if archive.has_file("index.json") { 95 } else { 100 }
            }
            _ => 0,
        }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        let entries: Vec<ManifestEntry> = read_json(archive, MANIFEST)?;
        if entries.is_empty() {
            return Err(DecodeError::malformed(MANIFEST, "lists no images"));
        }
        let refs = refs(archive, &entries);
        if archive.has_file("index.json") {
            match layout::images(archive) {
                Ok(images) => return reconcile(archive, &entries, &refs, images),
                // e.g. a multi-platform index saved with one platform's blobs:
                // manifest.json alone describes what is there.
                Err(e) if e.kind == ErrorKind::Missing => {
                    msb_plugin_sdk::log(&format!("index.json is incomplete ({e}); reading manifest.json alone"))
                }
                Err(e) => return Err(e),
            }
        }
        entries.iter().zip(refs).map(|(entry, refs)| classic_image(archive, entry, refs)).collect()
    }
}

export_decoder!(DockerSave);

/// Each entry's refs: its `RepoTags`, or for an entry without any, the
/// `repositories` names of its top layer that no entry tags.
fn refs(archive: &dyn ArchiveRead, entries: &[ManifestEntry]) -> Vec<Vec<String>> {
    let tags = |e: &ManifestEntry| -> Vec<String> {
        let tags = e.repo_tags.iter().flatten();
        tags.filter(|t| !t.is_empty() && t.as_str() != "<none>:<none>").cloned().collect()
    };
    let mut refs: Vec<Vec<String>> = entries.iter().map(tags).collect();
    if refs.iter().all(|r| !r.is_empty()) || !archive.has_file(REPOSITORIES) {
        return refs;
    }
    let repositories: BTreeMap<String, BTreeMap<String, String>> = match read_json(archive, REPOSITORIES) {
        Ok(r) => r,
        Err(e) => {
            msb_plugin_sdk::log(&format!("ignoring {REPOSITORIES}: {e}"));
            return refs;
        }
    };
    let tagged: Vec<String> = refs.iter().flatten().cloned().collect();
    for (entry, refs) in entries.iter().zip(refs.iter_mut()).filter(|(_, r)| r.is_empty()) {
        let Some(top) = entry.layers.last().map(|l| layer_id(l)) else { continue };
        for (repo, tags) in &repositories {
            for (tag, id) in tags {
                let name = format!("{repo}:{tag}");
                if *id == top && !tagged.contains(&name) {
                    refs.push(name);
                }
            }
        }
    }
    refs
}

/// The v1 id a layer path names: `<id>` of `<id>/layer.tar`, `<hex>` of
/// `blobs/sha256/<hex>`.
fn layer_id(path: &str) -> &str {
    let path = path.strip_suffix("/layer.tar").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// The digest a path's name declares: `blobs/sha256/<hex>` or `<hex>.json`.
fn named_digest(path: &str) -> Option<Digest> {
    let path = clean_path(path)?;
    let hex = match path.strip_prefix("blobs/sha256/") {
        Some(hex) => hex,
        None => path.strip_suffix(".json").filter(|hex| !hex.contains('/'))?,
    };
    Digest::parse(&format!("sha256:{hex}"))
}

/// The archive path of the file `path` (from `manifest.json`) names,
/// links followed, so a layer saved twice is read once.
fn locate(archive: &dyn ArchiveRead, what: &str, path: &str) -> Result<String, DecodeError> {
    archive
        .resolve(path)
        .map(|e| e.path.clone())
        .ok_or_else(|| DecodeError::missing(MANIFEST, format!("{what} {path:?} is not in the archive")))
}

/// An image as `manifest.json` alone describes it.
fn classic_image(archive: &dyn ArchiveRead, entry: &ManifestEntry, refs: Vec<String>) -> Result<Image, DecodeError> {
    let config_path = locate(archive, "config", &entry.config)?;
    let config: Config = read_json(archive, &config_path)?;
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != entry.layers.len() {
        return Err(DecodeError::malformed(
            &config_path,
            format!("lists {} diff_ids for the {} layers manifest.json gives it", diff_ids.len(), entry.layers.len()),
        ));
    }
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(path, diff_id)| {
            let blob = Blob {
                media_type: None,
                digest: named_digest(path).map(|d| d.to_string()),
                source: Source::Entry(locate(archive, "layer", path)?),
            };
            Ok(Layer { blob, diff_id: Some(diff_id) })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let config = Blob {
        media_type: Some(MEDIA_TYPE_DOCKER_CONFIG.to_string()),
        digest: named_digest(&entry.config).map(|d| d.to_string()),
        source: Source::Entry(config_path),
    };
    Ok(Image { refs, platform: None, indexes: vec![], manifest: None, config, layers, attachments: vec![] })
}

/// `sha256:…` of a file `manifest.json` names: from its name when it is
/// content-addressed, else hashed by the host.
fn digest_of(archive: &dyn ArchiveRead, what: &str, path: &str) -> Result<String, DecodeError> {
    if let Some(digest) = named_digest(path) {
        return Ok(digest.to_string());
    }
    let path = locate(archive, what, path)?;
    archive.digest(&path, false).map_err(|e| DecodeError::host(&path, e))
}

/// Docker 25+: the images of the OCI index, checked against
/// `manifest.json` (each of its images must be in the index with the same
/// config and layers), with the refs of both. Images listed under several
/// refs are merged; index images `manifest.json` does not list (other
/// platforms) are kept as they are.
fn reconcile(
    archive: &dyn ArchiveRead,
    entries: &[ManifestEntry],
    refs: &[Vec<String>],
    images: Vec<Image>,
) -> Result<Vec<Image>, DecodeError> {
    let mut merged: Vec<Image> = Vec::new();
    for image in images {
        let key = |i: &Image| {
            (
                i.manifest.as_ref().map(|m| m.digest.clone()),
                i.indexes.iter().map(|b| b.digest.clone()).collect::<Vec<_>>(),
            )
        };
        let same = |m: &&mut Image| key(m) == key(&image);
        match merged.iter_mut().find(same) {
            Some(m) => m.refs.extend(image.refs),
            None => merged.push(image),
        }
    }
    let mut tagged = vec![false; merged.len()];
    for (entry, refs) in entries.iter().zip(refs) {
        let config = digest_of(archive, "config", &entry.config)?;
        let layers =
            entry.layers.iter().map(|l| digest_of(archive, "layer", l)).collect::<Result<Vec<_>, DecodeError>>()?;
        let mut found = false;
        for (image, tagged) in merged.iter_mut().zip(tagged.iter_mut()) {
            if image.config.digest.as_deref() != Some(config.as_str()) {
                continue;
            }
            let theirs: Vec<Option<&str>> = image.layers.iter().map(|l| l.blob.digest.as_deref()).collect();
            if theirs != layers.iter().map(|l| Some(l.as_str())).collect::<Vec<_>>() {
                let manifest = image.manifest.as_ref().and_then(|m| m.digest.clone()).unwrap_or_default();
                return Err(DecodeError::malformed(
                    MANIFEST,
                    format!("image {config} has other layers than manifest {manifest} of index.json says"),
                ));
            }
            found = true;
            if !refs.is_empty() {
                *tagged = true;
                let index_refs = std::mem::replace(&mut image.refs, refs.clone());
                image.refs.extend(index_refs);
            }
        }
        if !found {
            return Err(DecodeError::malformed(MANIFEST, format!("image {config} is not in index.json")));
        }
    }
    // A bare tag in `org.opencontainers.image.ref.name` is no ref of its own:
    // `RepoTags` says which repository it belongs to.
    for (image, tagged) in merged.iter_mut().zip(tagged) {
        if tagged {
            image.refs.retain(|r| r.contains(['/', ':', '@']));
        }
        let mut seen = Vec::new();
        image.refs.retain(|r| {
            let new = !seen.contains(r);
            seen.push(r.clone());
            new
        });
    }
    Ok(merged)
}

#[cfg(test)]
mod tests;
