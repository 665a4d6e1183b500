//! Refs and garbage: `tag`, `remove`, and collecting blobs and EROFS files
//! that no ref reaches (see "GC roots" in docs/STORE.md).

use super::index::{self, IndexEntry};
use super::view::MAX_JSON;
use super::{Store, StoreError, io_err};
use crate::digest::Digest;
use crate::oci;
use crate::reference::Reference;
use std::collections::BTreeSet;

/// Everything one image (manifest or index) needs in the store.
#[derive(Debug, Default)]
pub struct Closure {
    /// Manifests, indexes, configs and layer blobs.
    pub blobs: BTreeSet<Digest>,
    /// Layers, by diff_id.
    pub diff_ids: BTreeSet<Digest>,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcReport {
    /// Blobs removed.
    pub blobs: usize,
    /// EROFS files removed.
    pub layers: usize,
    /// Layer records removed with their blobs.
    pub records: usize,
    /// Bytes freed (tmp/ included).
    pub bytes: u64,
}

impl Store {
    /// The blobs and layers `entry` reaches. Manifests an index lists but
    /// the store lacks (platforms not loaded) are skipped.
    pub fn closure(&self, entry: &IndexEntry) -> Result<Closure, StoreError> {
        let mut closure = Closure::default();
        self.walk(&entry.digest, &mut closure, 0)?;
        Ok(closure)
    }

    /// Walks what `digest` reaches. Whether it is an index or a manifest is
    /// decided by parsing it, never by a descriptor's label.
    fn walk(&self, digest: &Digest, closure: &mut Closure, depth: usize) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { path: self.blob_path(digest), reason };
        if depth > 8 || !closure.blobs.insert(digest.clone()) {
            return Ok(());
        }
        let bytes = self.read_blob(digest, MAX_JSON)?;
        let manifest = match oci::Document::parse(&bytes, None).map_err(corrupt)? {
            oci::Document::Index(index, _) => {
                for child in index.manifests.iter().filter(|d| self.blob_path(&d.digest).exists()) {
                    self.walk(&child.digest, closure, depth + 1)?;
                }
                return Ok(());
            }
            oci::Document::Manifest(manifest, _) => manifest,
        };
        closure.blobs.insert(manifest.config.digest.clone());
        closure.blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        // An attestation's config is no image config: it has no EROFS layers.
        let config = self.read_blob(&manifest.config.digest, MAX_JSON)?;
        if let Ok(config) = serde_json::from_slice::<oci::Config>(&config) {
            closure.diff_ids.extend(config.rootfs.diff_ids);
        }
        Ok(())
    }

    /// Names the image `name` resolves to also `new`. Returns the entry.
    pub fn tag(&self, name: &str, new: &Reference) -> Result<IndexEntry, StoreError> {
        let _lock = self.lock()?;
        let _critical = super::critical();
        let source = self.resolve(name)?.entry;
        let entry = IndexEntry { reference: Some(new.clone()), ..source };
        index::write(self, &index::merge(index::read(self)?, vec![entry.clone()]))?;
        Ok(entry)
    }

    /// Removes `name`: a ref removes that ref; an image ID (or unique
    /// prefix) removes the image with all its refs, which needs `force`
    /// when it has more than one. Returns the entries removed.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<IndexEntry>, StoreError> {
        let _lock = self.lock()?;
        let _critical = super::critical();
        let target = self.resolve(name)?;
        let entries = index::read(self)?;
        let by_ref = name.parse::<Reference>().ok().filter(|r| target.entry.reference.as_ref() == Some(r));
        let doomed = |e: &IndexEntry| match &by_ref {
            Some(r) => e.reference.as_ref() == Some(r),
            None => e.digest == target.entry.digest,
        };
        let removed: Vec<IndexEntry> = entries.iter().filter(|e| doomed(e)).cloned().collect();
        if by_ref.is_none() && removed.len() > 1 && !force {
            let refs: Vec<String> = removed.iter().filter_map(|e| e.reference.as_ref()).map(|r| r.familiar()).collect();
            return Err(StoreError::InUse(format!(
                "image {name} has several refs ({}); remove them one by one or use --force",
                refs.join(", ")
            )));
        }
        index::write(self, &entries.into_iter().filter(|e| !doomed(e)).collect::<Vec<_>>())?;
        Ok(removed)
    }

    /// Deletes every blob and EROFS file no ref reaches, the records of
    /// blobs that are gone, and whatever in `tmp/` no live process holds.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _lock = self.lock()?;
        let mut live = Closure::default();
        for entry in index::read(self)? {
            let closure = self.closure(&entry)?;
            live.blobs.extend(closure.blobs);
            live.diff_ids.extend(closure.diff_ids);
        }
        // An index image reads from its layer's uncompressed blob, which
        // stays while the layer does (whichever blob the images use).
        for diff_id in &live.diff_ids {
            if self.layer_devices(diff_id).is_ok_and(|devices| !devices.is_empty()) {
                live.blobs.insert(diff_id.clone());
            }
        }
        let mut report = GcReport::default();
        let blobs = self.blobs_dir();
        for (name, path) in list(&blobs)? {
            if !format!("sha256:{name}").parse::<Digest>().is_ok_and(|d| live.blobs.contains(&d)) {
                report.bytes += remove(&path)?;
                report.blobs += 1;
            }
        }
        // Records are no roots: one whose blob is gone goes too.
        let records = self.records_dir();
        for (name, path) in list(&records)? {
            let blob = name.strip_suffix(".json").and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
            if !blob.is_some_and(|d| self.blob_path(&d).exists()) {
                report.bytes += remove(&path)?;
                report.records += 1;
            }
        }
        report.bytes += super::tmp::remove_dead(&self.tmp_root())?;
        let layers = self.layers_dir();
        for (name, path) in list(&layers)? {
            let diff_id = name.strip_suffix(".erofs").and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
            if !diff_id.is_some_and(|d| live.diff_ids.contains(&d)) {
                report.bytes += remove(&path)?;
                report.layers += 1;
            }
        }
        Ok(report)
    }
}

/// (file name, path) of every file in `dir`.
fn list(dir: &std::path::Path) -> Result<Vec<(String, std::path::PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        files.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    Ok(files)
}

fn remove(path: &std::path::Path) -> Result<u64, StoreError> {
    let size = path.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::remove_file(path).map_err(io_err(path))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored image whose `index.json` entry labels its manifest an index:
    /// gc must still keep what the manifest reaches (it walks by parsing).
    #[test]
    fn the_closure_follows_what_the_bytes_are_not_their_label() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let put = |bytes: &[u8]| {
            let digest = Digest::of(bytes);
            std::fs::write(store.blob_path(&digest), bytes).unwrap();
            digest
        };
        let layer = put(b"layer");
        let diff_id = Digest::of(b"tar");
        std::fs::write(store.layer_path(&diff_id), b"erofs").unwrap();
        let config = put(format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#).as_bytes());
        let manifest = put(format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{config}","size":1}},
                    "layers":[{{"mediaType":"{}","digest":"{layer}","size":5}}]}}"#,
            oci::MEDIA_TYPE_CONFIG,
            oci::MEDIA_TYPE_LAYER
        )
        .as_bytes());
        let entry = IndexEntry {
            reference: Some("x:1".parse().unwrap()),
            media_type: oci::MEDIA_TYPE_INDEX.into(),
            digest: manifest.clone(),
            size: 1,
            platform: None,
        };
        index::write(&store, &[entry.clone()]).unwrap();
        let closure = store.closure(&entry).unwrap();
        assert_eq!(closure.blobs, [manifest, config, layer].into_iter().collect());
        assert_eq!(closure.diff_ids, [diff_id].into_iter().collect());
    }
}
