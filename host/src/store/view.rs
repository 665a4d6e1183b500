//! Reading an image back out of the store: manifest, config, layers; and
//! finding an image by ref or ID, on any platform of an index.

use super::index::IndexEntry;
use super::{Store, StoreError};
use crate::digest::Digest;
use crate::oci;
use crate::oci::Platform;
use crate::reference::Reference;
use std::path::PathBuf;

/// The most a manifest, index or config may hold.
pub const MAX_JSON: u64 = 16 << 20;

/// How deep indexes may nest in one another.
const MAX_DEPTH: usize = 8;

/// One image in the store, as `images` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct ImageView {
    /// The index entry it was reached from.
    pub entry: IndexEntry,
    /// The manifest (one platform's, for an index).
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

/// A platform's manifest reached from an index entry.
struct PlatformManifest {
    digest: Digest,
    platform: Option<Platform>,
}

impl ImageView {
    /// Reads the image `entry` names; for an index, the host platform's
    /// manifest (or the first the store has).
    pub fn load(store: &Store, entry: &IndexEntry) -> Result<ImageView, StoreError> {
        let manifests = platform_manifests(store, entry)?;
        let chosen = choose(&manifests, &oci::host_platform())
            .or_else(|| manifests.first())
            .ok_or_else(|| corrupt(store, &entry.digest, "index lists no manifest the store has"))?;
        read_image(store, entry, chosen, &manifests)
    }

    /// Reads `entry`'s image for platform `want`: one manifest of an index,
    /// or a manifest entry whose platform matches.
    pub fn load_platform(store: &Store, entry: &IndexEntry, want: &Platform) -> Result<ImageView, StoreError> {
        let manifests = platform_manifests(store, entry)?;
        match choose(&manifests, want) {
            Some(chosen) => read_image(store, entry, chosen, &manifests),
            // A lone manifest without a platform: its config says.
            None if manifests.len() == 1 && manifests[0].platform.is_none() => {
                let view = read_image(store, entry, &manifests[0], &manifests)?;
                if oci::platform_matches(&view.platform, want) {
                    Ok(view)
                } else {
                    Err(no_platform(entry, want, &[view.platform]))
                }
            }
            None => {
                let have: Vec<Platform> = manifests.iter().filter_map(|m| m.platform.clone()).collect();
                Err(no_platform(entry, want, &have))
            }
        }
    }

    /// Every platform's image of `entry`: one for a manifest, one per
    /// platform the store has for an index.
    pub fn load_all(store: &Store, entry: &IndexEntry) -> Result<Vec<ImageView>, StoreError> {
        let manifests = platform_manifests(store, entry)?;
        manifests.iter().map(|m| read_image(store, entry, m, &manifests)).collect()
    }

    /// The digest of the index this image was reached through, when its
    /// entry is an index rather than the manifest itself.
    pub fn index_digest(&self) -> Option<&Digest> {
        oci::is_index(&self.entry.media_type).then_some(&self.entry.digest)
    }

    /// Total size of the layer blobs.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

impl Store {
    /// The image `name` means, on platform `platform` if given: a ref
    /// (short or full; for an index, its host or given platform's image),
    /// `sha256:<config digest>`, or a unique prefix of a config digest's hex
    /// (like docker image IDs). An ID is looked for on every platform of
    /// every entry, so each image of an index is reachable by its own ID.
    pub fn resolve_platform(&self, name: &str, platform: Option<&Platform>) -> Result<ImageView, StoreError> {
        let entries = self.entries()?;
        if let Ok(reference) = name.parse::<Reference>() {
            let full = reference.to_string();
            if let Some(entry) = entries.iter().find(|e| e.reference.as_ref().is_some_and(|r| r.to_string() == full)) {
                return match platform {
                    Some(p) => ImageView::load_platform(self, entry, p),
                    None => ImageView::load(self, entry),
                };
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name).to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NoSuchImage(name.to_string()));
        }
        let mut found: Option<ImageView> = None;
        for entry in &entries {
            for view in ImageView::load_all(self, entry)? {
                if !view.config_digest.hex().starts_with(&prefix)
                    || platform.is_some_and(|p| !oci::platform_matches(&view.platform, p))
                {
                    continue;
                }
                match &found {
                    Some(f) if f.config_digest != view.config_digest => {
                        return Err(StoreError::Ambiguous(name.to_string()));
                    }
                    Some(_) => {}
                    None => found = Some(view),
                }
            }
        }
        found.ok_or_else(|| match platform {
            Some(p) => StoreError::NoSuchImage(format!("{name} for platform {p}")),
            None => StoreError::NoSuchImage(name.to_string()),
        })
    }
}

fn corrupt(store: &Store, digest: &Digest, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { path: store.blob_path(digest), reason: reason.into() }
}

fn no_platform(entry: &IndexEntry, want: &Platform, have: &[Platform]) -> StoreError {
    let name = entry.reference.as_ref().map_or_else(|| entry.digest.to_string(), |r| r.familiar());
    let have: Vec<String> = have.iter().map(|p| p.to_string()).collect();
    StoreError::NoSuchImage(format!("{name} for platform {want} (the store has {})", have.join(", ")))
}

/// The entry of `manifests` for `want`, preferring an exact variant match.
fn choose<'a>(manifests: &'a [PlatformManifest], want: &Platform) -> Option<&'a PlatformManifest> {
    let exact = manifests.iter().find(|m| m.platform.as_ref() == Some(want));
    exact.or_else(|| manifests.iter().find(|m| m.platform.as_ref().is_some_and(|p| oci::platform_matches(p, want))))
}

/// The image manifests `entry` leads to that the store has: the entry
/// itself for a manifest; for an index (nested ones too), each platform's,
/// in index order, without attestations (`unknown/unknown`).
fn platform_manifests(store: &Store, entry: &IndexEntry) -> Result<Vec<PlatformManifest>, StoreError> {
    let mut out = Vec::new();
    let mut pending = vec![(entry.digest.clone(), entry.media_type.clone(), entry.platform.clone(), 0)];
    while let Some((digest, media_type, platform, depth)) = pending.pop() {
        if !oci::is_index(&media_type) {
            out.push(PlatformManifest { digest, platform });
            continue;
        }
        if depth >= MAX_DEPTH {
            return Err(corrupt(store, &digest, format!("indexes nest more than {MAX_DEPTH} deep")));
        }
        let index: oci::Index = serde_json::from_slice(&store.read_blob(&digest, MAX_JSON)?)
            .map_err(|e| corrupt(store, &digest, e.to_string()))?;
        // Reversed, so that popping keeps index order.
        for d in index.manifests.into_iter().rev() {
            let image = d.platform.as_ref().is_none_or(|p| p.os != "unknown");
            if image && store.blob_path(&d.digest).exists() {
                pending.push((d.digest, d.media_type, d.platform, depth + 1));
            }
        }
    }
    Ok(out)
}

/// The image of manifest `chosen`, reached from `entry` (whose manifests
/// are `all`).
fn read_image(
    store: &Store,
    entry: &IndexEntry,
    chosen: &PlatformManifest,
    all: &[PlatformManifest],
) -> Result<ImageView, StoreError> {
    let digest = &chosen.digest;
    let manifest: oci::Manifest = serde_json::from_slice(&store.read_blob(digest, MAX_JSON)?)
        .map_err(|e| corrupt(store, digest, e.to_string()))?;
    let config_digest = manifest.config.digest.clone();
    let config: oci::Config = serde_json::from_slice(&store.read_blob(&config_digest, MAX_JSON)?)
        .map_err(|e| corrupt(store, &config_digest, e.to_string()))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(corrupt(store, digest, "manifest and config disagree on the number of layers"));
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
    let platform = chosen.platform.clone().unwrap_or_else(|| config.platform());
    let mut platforms: Vec<Platform> = all.iter().filter_map(|m| m.platform.clone()).collect();
    if platforms.is_empty() {
        platforms.push(platform.clone());
    }
    Ok(ImageView { entry: entry.clone(), manifest_digest: digest.clone(), config_digest, platform, platforms, layers })
}
