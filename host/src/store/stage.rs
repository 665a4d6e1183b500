//! Staging a change in this process's directory under `tmp/` and committing
//! it: files renamed into place first, `index.json` (the refs) last, under
//! the store lock. A change that is dropped uncommitted leaves no trace; one
//! whose process is killed leaves a directory the next command removes, and
//! one whose process gets SIGINT or SIGTERM is removed before it exits (see
//! `tmp.rs`).

use super::index::{self, IndexEntry};
use super::{Store, StoreError, io_err};
use crate::digest::Digest;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use tempfile::{NamedTempFile, TempDir, TempPath};

/// Files written for one change, not yet visible.
pub struct Staging<'s> {
    store: &'s Store,
    dir: TempDir,
    moves: Mutex<Vec<(TempPath, PathBuf)>>,
    required: Mutex<Vec<PathBuf>>,
}

impl<'s> Staging<'s> {
    pub(super) fn new(store: &'s Store) -> Result<Self, StoreError> {
        let tmp = store.tmp_dir();
        let dir = tempfile::Builder::new().prefix("stage-").tempdir_in(&tmp).map_err(io_err(&tmp))?;
        Ok(Staging { store, dir, moves: Mutex::new(Vec::new()), required: Mutex::new(Vec::new()) })
    }

    /// The store this change is for.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// The staging directory (removed with the staging).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new empty file in the staging area.
    pub fn temp_file(&self) -> Result<NamedTempFile, StoreError> {
        NamedTempFile::new_in(self.dir.path()).map_err(io_err(self.dir.path()))
    }

    /// Stages `file` (fully written) as the blob `digest`.
    pub fn add_blob_file(&self, file: NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        self.add(file, self.store.blob_path(digest))
    }

    /// Stages `bytes` as a blob; returns its digest.
    pub fn add_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let path = self.store.blob_path(&digest);
        if path.exists() {
            self.require(path);
        } else {
            let mut file = self.temp_file()?;
            file.write_all(bytes).map_err(io_err(file.path()))?;
            self.add_blob_file(file, &digest)?;
        }
        Ok(digest)
    }

    /// Stages the record of what this change verified about layer blob
    /// `blob` (see `records/` in docs/STORE.md).
    pub fn add_record(&self, blob: &Digest, record: &super::LayerRecord) -> Result<(), StoreError> {
        let mut file = self.temp_file()?;
        file.write_all(&record.to_bytes()).map_err(io_err(file.path()))?;
        self.add(file, self.store.record_path(blob))
    }

    /// Stages `file` (fully written) as the EROFS image of layer `diff_id`.
    pub fn add_layer_file(&self, file: NamedTempFile, diff_id: &Digest) -> Result<(), StoreError> {
        self.add(file, self.store.layer_path(diff_id))
    }

    /// Records that the change relies on `path`, already in the store; the
    /// commit fails if it is gone by then (a concurrent `gc`).
    pub fn require(&self, path: PathBuf) {
        self.required.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(path);
    }

    fn add(&self, file: NamedTempFile, target: PathBuf) -> Result<(), StoreError> {
        file.as_file().sync_data().map_err(io_err(file.path()))?;
        let mut moves = self.moves.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        moves.push((file.into_temp_path(), target));
        Ok(())
    }

    /// Makes the change visible: files renamed into place (content-addressed,
    /// so one already there is kept), then `entries` merged into the refs.
    pub fn commit(self, entries: Vec<IndexEntry>) -> Result<(), StoreError> {
        let _lock = self.store.lock()?;
        // A SIGINT or SIGTERM now waits until the refs are written.
        let _critical = super::critical();
        let required = self.required.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(gone) = required.iter().find(|p| !p.exists()) {
            return Err(StoreError::Corrupt {
                path: gone.clone(),
                reason: "removed while this load ran (gc?); load again".into(),
            });
        }
        let moves = self.moves.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (staged, target) in moves {
            if target.exists() {
                continue;
            }
            staged.persist(&target).map_err(|e| StoreError::Io { path: target.clone(), error: e.error })?;
        }
        let merged = index::merge(index::read(self.store)?, entries);
        index::write(self.store, &merged)
    }
}
