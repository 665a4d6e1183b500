//! `oci/index.json`: one descriptor per ref (and one per unnamed image),
//! the ref in `org.opencontainers.image.ref.name` and
//! `io.containerd.image.name`.

use super::{Store, StoreError, io_err, write_atomic};
use crate::digest::Digest;
use crate::oci::{self, Descriptor, Platform};
use crate::reference::Reference;
use serde::{Deserialize, Serialize};

/// The most `index.json` may hold.
const MAX_INDEX: u64 = 64 << 20;

/// One image the store knows: a manifest or index, with its ref if named.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The ref, or `None` for an image known only by ID.
    pub reference: Option<Reference>,
    /// Media type of the manifest or index.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its platform, for a manifest.
    pub platform: Option<Platform>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Descriptor>,
}

pub(super) fn read(store: &Store) -> Result<Vec<IndexEntry>, StoreError> {
    let path = store.index_path();
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    if bytes.len() as u64 > MAX_INDEX {
        return Err(StoreError::Corrupt { path, reason: "larger than 64 MiB".into() });
    }
    let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
    let file: IndexFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    file.manifests
        .into_iter()
        .map(|d| {
            let reference = match d.annotations.get(oci::ANNOTATION_REF_NAME) {
                Some(name) => Some(name.parse::<Reference>().map_err(|e| corrupt(e.to_string()))?),
                None => None,
            };
            Ok(IndexEntry { reference, media_type: d.media_type, digest: d.digest, size: d.size, platform: d.platform })
        })
        .collect()
}

impl IndexEntry {
    /// Its `index.json` descriptor: the full ref in both annotations.
    pub fn descriptor(&self) -> Descriptor {
        let names = self.reference.iter().flat_map(|r| {
            [
                (oci::ANNOTATION_REF_NAME.to_string(), r.to_string()),
                (oci::ANNOTATION_CONTAINERD_NAME.to_string(), r.to_string()),
            ]
        });
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: self.platform.clone(),
            annotations: names.collect(),
        }
    }
}

pub(super) fn write(store: &Store, entries: &[IndexEntry]) -> Result<(), StoreError> {
    let manifests = entries.iter().map(IndexEntry::descriptor).collect();
    let file = IndexFile { schema_version: 2, media_type: oci::MEDIA_TYPE_INDEX.into(), manifests };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| StoreError::Corrupt { path: store.index_path(), reason: e.to_string() })?;
    bytes.push(b'\n');
    write_atomic(&store.tmp_dir(), &store.index_path(), &bytes)
}

/// `entries` with `new` added: a ref that moves leaves its old image
/// unnamed (like docker's dangling images) unless another ref keeps it; an
/// unnamed entry is dropped once the same image has a ref.
pub(super) fn merge(mut entries: Vec<IndexEntry>, new: Vec<IndexEntry>) -> Vec<IndexEntry> {
    for entry in new {
        if let Some(reference) = &entry.reference {
            if let Some(old) = entries.iter_mut().find(|e| e.reference.as_ref() == Some(reference)) {
                if old.digest == entry.digest {
                    *old = entry;
                    continue;
                }
                old.reference = None;
            }
        } else if entries.iter().any(|e| e.digest == entry.digest) {
            continue;
        }
        entries.push(entry);
    }
    // Unnamed duplicates of named or other unnamed entries go.
    let mut seen = std::collections::HashSet::new();
    let named: std::collections::HashSet<Digest> =
        entries.iter().filter(|e| e.reference.is_some()).map(|e| e.digest.clone()).collect();
    entries.retain(|e| e.reference.is_some() || (!named.contains(&e.digest) && seen.insert(e.digest.clone())));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(r: Option<&str>, d: &[u8]) -> IndexEntry {
        IndexEntry {
            reference: r.map(|r| r.parse().unwrap()),
            media_type: "m".into(),
            digest: Digest::of(d),
            size: 1,
            platform: None,
        }
    }

    #[test]
    fn moving_a_ref_leaves_the_old_image_unnamed() {
        let merged = merge(vec![entry(Some("a"), b"1")], vec![entry(Some("a"), b"2")]);
        assert_eq!(merged, vec![entry(None, b"1"), entry(Some("a"), b"2")]);
        let merged = merge(merged, vec![entry(Some("b"), b"1")]);
        assert_eq!(merged, vec![entry(Some("a"), b"2"), entry(Some("b"), b"1")]);
        let merged = merge(merged, vec![entry(None, b"2")]);
        assert_eq!(merged.len(), 2);
    }
}
