//! Read access to the archive: the [`ArchiveRead`] trait, its host-backed
//! implementation, and [`MemArchive`] for native unit tests.

use crate::bindings::msb::format::types::Archive;
use crate::{DecodeError, Entry, EntryKind};
use serde::de::DeserializeOwned;

/// The most a metadata entry (JSON) may hold: 16 MiB.
pub const MAX_METADATA_SIZE: u64 = 16 << 20;

/// Chunk size of [`ArchiveRead::read_all`].
const CHUNK: u32 = 1 << 20;

/// An archive as a decoder sees it: an entry table and reads by path.
pub trait ArchiveRead {
    /// Every entry, in archive order.
    fn entries(&self) -> &[Entry];

    /// Up to `len` bytes of the file at `path` from `offset`; links inside the
    /// archive are followed.
    fn read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String>;

    /// `sha256:<hex>` of the file at `path`, hashed by the host; with
    /// `uncompressed`, of its content after undoing gzip or zstd.
    fn digest(&self, path: &str, uncompressed: bool) -> Result<String, String>;

    /// The entry at `path` (a leading `./` or `/` is ignored).
    fn find(&self, path: &str) -> Option<&Entry> {
        let path = normalize(path);
        self.entries().iter().find(|e| e.path == path)
    }

    /// Whether a file (or a link to one) exists at `path`.
    fn has_file(&self, path: &str) -> bool {
        self.find(path).is_some_and(|e| e.kind != EntryKind::Directory)
    }

    /// The whole content of `path`, refusing more than `max` bytes.
    fn read_all(&self, path: &str, max: u64) -> Result<Vec<u8>, DecodeError> {
        let path = normalize(path);
        let entry = self.find(path).ok_or_else(|| DecodeError::missing(path, "not in the archive"))?;
        if entry.kind == EntryKind::Directory {
            return Err(DecodeError::malformed(path, "is a directory, expected a file"));
        }
        if entry.size > max {
            return Err(too_big(path, max));
        }
        let mut out = Vec::with_capacity(entry.size as usize);
        loop {
            let chunk = self
                .read(path, out.len() as u64, CHUNK)
                .map_err(|e| DecodeError::host(path, e))?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max {
                return Err(too_big(path, max));
            }
        }
    }

    /// Parses `path` as JSON (at most [`MAX_METADATA_SIZE`] bytes).
    fn read_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, DecodeError>
    where
        Self: Sized,
    {
        read_json(self, path)
    }
}

/// [`ArchiveRead::read_json`] for trait objects.
pub fn read_json<T: DeserializeOwned>(archive: &dyn ArchiveRead, path: &str) -> Result<T, DecodeError> {
    let bytes = archive.read_all(path, MAX_METADATA_SIZE)?;
    serde_json::from_slice(&bytes).map_err(|e| DecodeError::malformed(normalize(path), format!("invalid JSON: {e}")))
}

fn too_big(path: &str, max: u64) -> DecodeError {
    DecodeError::malformed(path, format!("larger than the {max}-byte limit for metadata"))
}

fn normalize(path: &str) -> &str {
    let mut path = path;
    loop {
        let next = path.trim_start_matches('/').trim_start_matches("./");
        if next == path {
            return path;
        }
        path = next;
    }
}

/// The archive the host hands to the plugin, with its entry table fetched once.
pub(crate) struct HostArchive<'a> {
    archive: &'a Archive,
    entries: Vec<Entry>,
}

impl<'a> HostArchive<'a> {
    pub(crate) fn new(archive: &'a Archive) -> Self {
        HostArchive { archive, entries: archive.entries() }
    }
}

impl ArchiveRead for HostArchive<'_> {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        self.archive.read(path, offset, len)
    }

    fn digest(&self, path: &str, uncompressed: bool) -> Result<String, String> {
        self.archive.digest(path, uncompressed)
    }
}

/// An in-memory archive of regular files, for unit tests of decoder logic.
#[derive(Default)]
pub struct MemArchive {
    entries: Vec<Entry>,
    contents: Vec<Vec<u8>>,
}

impl MemArchive {
    /// An archive holding `files` (path, content), in that order.
    pub fn new<P: AsRef<str>, C: AsRef<[u8]>>(files: impl IntoIterator<Item = (P, C)>) -> Self {
        let mut archive = MemArchive::default();
        for (path, content) in files {
            archive.add(path.as_ref(), content.as_ref());
        }
        archive
    }

    /// Adds a regular file.
    pub fn add(&mut self, path: &str, content: &[u8]) -> &mut Self {
        self.entries.push(Entry { path: path.to_string(), kind: EntryKind::File, size: content.len() as u64, link: None });
        self.contents.push(content.to_vec());
        self
    }
}

impl ArchiveRead for MemArchive {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let i = self.entries.iter().position(|e| e.path == path).ok_or_else(|| format!("{path}: no such entry"))?;
        let content = &self.contents[i];
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
        let end = start.saturating_add(len as usize).min(content.len());
        Ok(content[start..end].to_vec())
    }

    /// Hashes the stored bytes; `uncompressed` is not supported here (the
    /// test archive holds what it holds).
    fn digest(&self, path: &str, uncompressed: bool) -> Result<String, String> {
        if uncompressed {
            return Err("MemArchive cannot decompress; store the plain bytes".into());
        }
        let i = self.entries.iter().position(|e| e.path == path).ok_or_else(|| format!("{path}: no such entry"))?;
        use sha2::Digest as _;
        Ok(format!("sha256:{:x}", sha2::Sha256::digest(&self.contents[i])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_all_and_limits() {
        let archive = MemArchive::new([("./a/b.json", b"{\"x\":1}".as_slice())]);
        assert!(archive.find("a/b.json").is_none(), "entries are matched as stored");
        let archive = MemArchive::new([("a/b.json", b"{\"x\":1}".as_slice())]);
        assert_eq!(archive.read_all("./a/b.json", 100).unwrap(), b"{\"x\":1}");
        let err = archive.read_all("a/b.json", 3).unwrap_err();
        assert!(err.message.contains("limit"), "{err}");
        let err = archive.read_all("nope", 3).unwrap_err();
        assert_eq!(err.entry.as_deref(), Some("nope"));
        let v: serde_json::Value = archive.read_json("a/b.json").unwrap();
        assert_eq!(v["x"], 1);
    }
}
