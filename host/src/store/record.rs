//! `records/sha256/<blob hex>.json`: what the host verified about a layer
//! blob when it imported it, so a later load can trust the pairing of that
//! blob with its diff_id without reading the blob again.
//!
//! A record is written only by an import that hashed the blob and its
//! uncompressed tar itself; it is staged and committed with the blob.

use super::{Store, StoreError, io_err};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// The most a record file may hold.
const MAX_RECORD: u64 = 4096;

/// What the store verified about one layer blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the uncompressed tar: the layer's EROFS image is
    /// `layers/<diff_id hex>.erofs`.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
}

impl LayerRecord {
    /// The record's file content.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("a record serializes");
        bytes.push(b'\n');
        bytes
    }
}

impl Store {
    /// Where the record of layer blob `digest` lives.
    pub fn record_path(&self, digest: &Digest) -> std::path::PathBuf {
        self.records_dir().join(format!("{}.json", digest.hex()))
    }

    /// The record of layer blob `digest`, if the store has one.
    pub fn read_record(&self, digest: &Digest) -> Result<Option<LayerRecord>, StoreError> {
        use std::io::Read;
        let path = self.record_path(digest);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_RECORD + 1).read_to_end(&mut bytes).map_err(io_err(&path))?;
        if bytes.len() as u64 > MAX_RECORD {
            return Err(StoreError::Corrupt { path, reason: format!("larger than {MAX_RECORD} bytes") });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt { path, reason: format!("not a layer record: {e}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = Digest::of(b"blob");
        assert_eq!(store.read_record(&blob).unwrap(), None);
        let record = LayerRecord { diff_id: Digest::of(b"tar"), size: 4 };
        std::fs::write(store.record_path(&blob), record.to_bytes()).unwrap();
        assert_eq!(store.read_record(&blob).unwrap(), Some(record));
        std::fs::write(store.record_path(&blob), b"{\"diff_id\":\"sha256:zz\"}").unwrap();
        assert!(matches!(store.read_record(&blob), Err(StoreError::Corrupt { .. })));
    }
}
