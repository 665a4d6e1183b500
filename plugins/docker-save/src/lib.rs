//! Decoder for `docker save` archives: a `manifest.json` listing each
//! image's config and layers, as docker 1.10 to 28 (and `skopeo copy …
//! docker-archive:`, `podman save`) write them.
//!
//! - **Classic** (docker < 25): `<id>.json` configs and `<id>/layer.tar`
//!   layers; a layer saved twice is a symlink to the first copy. There is no
//!   manifest: the host synthesizes one from the config and the layers.
//! - **Docker 25+**: the same tar is also an OCI image layout (`oci-layout`,
//!   `index.json`, `blobs/sha256/`). `manifest.json` stays the authority, as
//!   for docker (`image/tarexport/load.go`) and go-containerregistry
//!   (`pkg/v1/tarball`): an image is taken from the index (keeping its
//!   manifest digest) only where the index has it with the same config and
//!   layers; the refs are then `RepoTags` plus the index's full refs. An
//!   index that is absent, empty, `null` or unreadable is ignored; one that
//!   disagrees is overruled, with a note.
//!
//! A config's file name is a path, not a claim: `<hex>.json` whose bytes
//! hash to something else loads, its image ID the digest of its bytes.
//! Digests in OCI blob paths (`blobs/sha256/<hex>`) stay claims the host
//! verifies.
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
/// The OCI index of a docker 25+ archive.
const INDEX: &str = "index.json";
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
                if archive.has_file(INDEX) { 95 } else { 100 }
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
        let index = match archive.has_file(INDEX) {
            true => oci_images(archive)?,
            false => None,
        };
        match index {
            Some(index) => reconcile(archive, &entries, &refs, index),
            None => entries.iter().zip(refs).map(|(entry, refs)| classic_image(archive, entry, refs)).collect(),
        }
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

/// The digest an OCI blob path (`blobs/sha256/<hex>`) declares: a claim the
/// host verifies. A `<hex>.json` config name is no claim: docker and crane
/// load such a config whatever its bytes hash to, and so does this decoder.
fn blob_digest(path: &str) -> Option<Digest> {
    let path = clean_path(path)?;
    Digest::parse(&format!("sha256:{}", path.strip_prefix("blobs/sha256/")?))
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
                digest: blob_digest(path).map(|d| d.to_string()),
                source: Source::Entry(locate(archive, "layer", path)?),
            };
            Ok(Layer { blob, diff_id: Some(diff_id) })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let config = Blob {
        media_type: Some(MEDIA_TYPE_DOCKER_CONFIG.to_string()),
        digest: blob_digest(&entry.config).map(|d| d.to_string()),
        source: Source::Entry(config_path),
    };
    Ok(Image { refs, platform: None, indexes: vec![], manifest: None, config, layers, attachments: vec![] })
}

/// `sha256:…` of a file `manifest.json` names: from its OCI blob path, else
/// hashed by the host.
fn digest_of(archive: &dyn ArchiveRead, what: &str, path: &str) -> Result<String, DecodeError> {
    if let Some(digest) = blob_digest(path) {
        return Ok(digest.to_string());
    }
    let path = locate(archive, what, path)?;
    archive.digest(&path, false).map_err(|e| DecodeError::host(&path, e))
}

/// The images of the archive's OCI layout, or `None` when `index.json` is
/// unusable (not an index, or naming blobs the archive lacks: e.g. a
/// multi-platform index saved with one platform's blobs): `manifest.json`
/// alone then describes what is there. A refused read stays an error.
fn oci_images(archive: &dyn ArchiveRead) -> Result<Option<Vec<Image>>, DecodeError> {
    match layout::images(archive) {
        Ok(images) => Ok(Some(images)),
        Err(e) if e.kind == ErrorKind::Host => Err(e),
        Err(e) => {
            msb_plugin_sdk::log(&format!("{INDEX} is unusable ({e}); reading {MANIFEST} alone"));
            Ok(None)
        }
    }
}

/// Index images listed under several refs, merged into one.
fn merge(images: Vec<Image>) -> Vec<Image> {
    let key = |i: &Image| {
        (i.manifest.as_ref().map(|m| m.digest.clone()), i.indexes.iter().map(|b| b.digest.clone()).collect::<Vec<_>>())
    };
    let mut merged: Vec<Image> = Vec::new();
    for image in images {
        match merged.iter_mut().find(|m| key(m) == key(&image)) {
            Some(m) => m.refs.extend(image.refs),
            None => merged.push(image),
        }
    }
    merged
}

/// Docker 25+: `manifest.json` is the authority, as for docker and
/// go-containerregistry. Each of its images is taken from the OCI index
/// where the index has it with the same config and layers (which keeps the
/// archive's manifest and the index's refs), else built from
/// `manifest.json` alone, with a note. Index images `manifest.json` does not
/// list are kept only when they are other platforms of one it lists
/// (reached through the same index); others are dropped, with a note.
fn reconcile(
    archive: &dyn ArchiveRead,
    entries: &[ManifestEntry],
    refs: &[Vec<String>],
    images: Vec<Image>,
) -> Result<Vec<Image>, DecodeError> {
    let mut merged = merge(images);
    let mut listed = vec![false; merged.len()];
    let mut tagged = vec![false; merged.len()];
    let mut own = Vec::new();
    for (entry, refs) in entries.iter().zip(refs) {
        let config = digest_of(archive, "config", &entry.config)?;
        let layers =
            entry.layers.iter().map(|l| digest_of(archive, "layer", l)).collect::<Result<Vec<_>, DecodeError>>()?;
        let layers: Vec<Option<&str>> = layers.iter().map(|l| Some(l.as_str())).collect();
        let mut found = false;
        for (i, image) in merged.iter_mut().enumerate() {
            let theirs: Vec<Option<&str>> = image.layers.iter().map(|l| l.blob.digest.as_deref()).collect();
            if image.config.digest.as_deref() != Some(config.as_str()) || theirs != layers {
                continue;
            }
            found = true;
            listed[i] = true;
            if !refs.is_empty() {
                tagged[i] = true;
                let index_refs = std::mem::replace(&mut image.refs, refs.clone());
                image.refs.extend(index_refs);
            }
        }
        if !found {
            if !merged.is_empty() {
                msb_plugin_sdk::note(&format!(
                    "{INDEX} disagrees with {MANIFEST} on image {config}; loading it as {MANIFEST} describes it"
                ));
            }
            own.push(classic_image(archive, entry, refs.clone())?);
        }
    }
    // Other platforms: index images that share an index with a listed one.
    let reached = |image: &Image| image.indexes.first().and_then(|b| b.digest.clone());
    let listed_indexes: Vec<String> =
        merged.iter().zip(&listed).filter(|(_, l)| **l).filter_map(|(image, _)| reached(image)).collect();
    let mut kept = Vec::new();
    for ((mut image, listed), tagged) in merged.into_iter().zip(listed).zip(tagged) {
        if !listed && !reached(&image).is_some_and(|d| listed_indexes.contains(&d)) {
            let manifest = image.manifest.as_ref().and_then(|m| m.digest.clone()).unwrap_or_default();
            msb_plugin_sdk::note(&format!("{INDEX} lists image {manifest}, which {MANIFEST} does not; skipping it"));
            continue;
        }
        // A bare tag in `org.opencontainers.image.ref.name` is no ref of its
        // own: `RepoTags` says which repository it belongs to.
        if tagged {
            image.refs.retain(|r| r.contains(['/', ':', '@']));
        }
        let mut seen = Vec::new();
        image.refs.retain(|r| {
            let new = !seen.contains(r);
            seen.push(r.clone());
            new
        });
        kept.push(image);
    }
    kept.extend(own);
    Ok(kept)
}

#[cfg(test)]
mod tests;
