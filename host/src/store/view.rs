//! Reading an image back out of the store: manifest, config, layers.

use super::index::IndexEntry;
use super::{Store, StoreError};
use crate::digest::Digest;
use crate::oci;
use crate::oci::Platform;
use std::path::PathBuf;

/// The most a manifest, index or config may hold.
pub const MAX_JSON: u64 = 16 << 20;

/// One image in the store, as `images` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct ImageView {
    /// The index entry it was reached from.
    pub entry: IndexEntry,
    /// The manifest (the chosen platform's, for an index).
    pub manifest_digest: Digest,
    /// The config; its digest is the image ID.
    pub config_digest: Digest,
    /// `os/arch[/variant]`, from the index descriptor or else the config.
    pub platform: Platform,
    /// Every platform the store has of this image (several for an index).
    pub platforms: Vec<Platform>,
    /// Layers, base first.
    pub layers: Vec<LayerView>,
}

/// One layer of an [`ImageView`].
#[derive(Debug, Clone)]
pub struct LayerView {
    /// Digest of the blob as loaded.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The EROFS image.
    pub erofs: PathBuf,
}

impl ImageView {
    /// Reads the image `entry` names; for an index, the host platform's
    /// manifest (or the first).
    pub fn load(store: &Store, entry: &IndexEntry) -> Result<ImageView, StoreError> {
        let corrupt = |d: &Digest, reason: String| StoreError::Corrupt { path: store.blob_path(d), reason };
        let mut digest = entry.digest.clone();
        let mut media_type = entry.media_type.clone();
        let mut platform = entry.platform.clone();
        let mut platforms = Vec::new();
        for _ in 0..8 {
            if !oci::is_index(&media_type) {
                break;
            }
            let index: oci::Index = serde_json::from_slice(&store.read_blob(&digest, MAX_JSON)?)
                .map_err(|e| corrupt(&digest, e.to_string()))?;
            // Images only: attestations ride in indexes as `unknown/unknown`.
            let images: Vec<oci::Descriptor> =
                index.manifests.into_iter().filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown")).collect();
            let present = || images.iter().filter(|d| store.blob_path(&d.digest).exists());
            if platforms.is_empty() {
                platforms = present().filter_map(|d| d.platform.clone()).collect();
            }
            let chosen = oci::choose_platform(&images, &oci::host_platform())
                .or_else(|| present().next())
                .ok_or_else(|| corrupt(&digest, "index lists no manifest".into()))?;
            digest = chosen.digest.clone();
            media_type = chosen.media_type.clone();
            platform = chosen.platform.clone();
        }
        let manifest: oci::Manifest = serde_json::from_slice(&store.read_blob(&digest, MAX_JSON)?)
            .map_err(|e| corrupt(&digest, e.to_string()))?;
        let config_digest = manifest.config.digest.clone();
        let config: oci::Config = serde_json::from_slice(&store.read_blob(&config_digest, MAX_JSON)?)
            .map_err(|e| corrupt(&config_digest, e.to_string()))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(corrupt(&digest, "manifest and config disagree on the number of layers".into()));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(layer, diff_id)| LayerView {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
                diff_id: diff_id.clone(),
                erofs: store.layer_path(diff_id),
            })
            .collect();
        // The index's word on the platform is the more precise (variants).
        let platform = platform.unwrap_or_else(|| config.platform());
        if platforms.is_empty() {
            platforms.push(platform.clone());
        }
        Ok(ImageView { entry: entry.clone(), manifest_digest: digest, config_digest, platform, platforms, layers })
    }

    /// Total size of the layer blobs.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}
