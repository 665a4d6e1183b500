//! A directory (an extracted archive, an OCI layout) seen as an archive.

use super::index::{Entry, EntryKind, Index};
use super::{Archive, InputError, MAX_READ};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The most entries a directory may have.
const MAX_ENTRIES: usize = 1_000_000;

/// A directory tree with its entry table; links resolve inside it only.
pub(crate) struct DirArchive {
    root: PathBuf,
    index: Index,
}

impl DirArchive {
    /// Walks `root` (sorted, so the table is stable).
    pub(crate) fn open(root: &Path) -> Result<DirArchive, InputError> {
        let mut index = Index::default();
        walk(root, "", &mut index)?;
        Ok(DirArchive { root: root.to_path_buf(), index })
    }

    fn file(&self, path: &str) -> Result<(File, u64), InputError> {
        let entry = self.index.resolve(path)?;
        let file = File::open(self.root.join(&entry.path))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(InputError::BadEntry {
                entry: entry.path.clone(),
                reason: "is no longer a regular file".into(),
            });
        }
        Ok((file, meta.len()))
    }
}

fn walk(dir: &Path, prefix: &str, index: &mut Index) -> Result<(), InputError> {
    let mut children: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let name = child.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta = fs::symlink_metadata(child.path())?;
        let (kind, size, link) = if meta.is_symlink() {
            (EntryKind::Symlink, 0, Some(fs::read_link(child.path())?.to_string_lossy().into_owned()))
        } else if meta.is_dir() {
            (EntryKind::Directory, 0, None)
        } else if meta.is_file() {
            (EntryKind::File, meta.len(), None)
        } else {
            (EntryKind::Other, 0, None)
        };
        if index.entries().len() >= MAX_ENTRIES {
            return Err(InputError::BadEntry { entry: path, reason: format!("more than {MAX_ENTRIES} entries") });
        }
        index.push(Entry { path: path.clone(), kind, size, link, offset: 0 });
        if kind == EntryKind::Directory {
            walk(&child.path(), &path, index)?;
        }
    }
    Ok(())
}

impl Archive for DirArchive {
    fn entries(&self) -> &[Entry] {
        self.index.entries()
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, InputError> {
        let (file, size) = self.file(path)?;
        let len = size.saturating_sub(offset).min(len.min(MAX_READ) as u64) as usize;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>, InputError> {
        Ok(Box::new(BufReader::with_capacity(1 << 18, self.file(path)?.0)))
    }

    fn size(&self, path: &str) -> Result<u64, InputError> {
        Ok(self.file(path)?.1)
    }

    fn file_range(&self, path: &str) -> Option<super::FileRange> {
        let (file, len) = self.file(path).ok()?;
        Some(super::FileRange { file: std::sync::Arc::new(file), offset: 0, len })
    }
}
