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

    /// `sha256:<hex>` of the archive itself as [`Source::Input`] gives it
    /// (the tar after any outer gzip, zstd, xz or bzip2 was stripped), hashed
    /// by the host: the diff_id of an archive that is one layer. An error for
    /// a directory.
    ///
    /// [`Source::Input`]: crate::Source::Input
    fn input_digest(&self) -> Result<String, String>;

    /// The entry at `path` (a leading `./` or `/` is ignored).
    fn find(&self, path: &str) -> Option<&Entry> {
        let path = normalize(path);
        self.entries().iter().find(|e| e.path == path)
    }

    /// Whether a file (or a link to one) exists at `path`.
    fn has_file(&self, path: &str) -> bool {
        self.find(path).is_some_and(|e| e.kind != EntryKind::Directory)
    }

    /// The regular file `path` names, following symlinks (relative to the
    /// link's directory) and hardlinks as the host does, never leaving the
    /// archive; `None` if there is none (missing, dangling, a loop, not a file).
    fn resolve(&self, path: &str) -> Option<&Entry> {
        let mut current = clean_path(path)?;
        for _ in 0..MAX_LINK_HOPS {
            let entries = self.entries();
            let entry = entries
                .iter()
                .find(|e| e.path == current)
                .or_else(|| entries.iter().find(|e| clean_path(&e.path).as_deref() == Some(current.as_str())))?;
            current = match (entry.kind, &entry.link) {
                (EntryKind::File, _) => return Some(entry),
                (EntryKind::Symlink, Some(target)) => {
                    let base = if target.starts_with('/') {
                        ""
                    } else {
                        entry.path.rsplit_once('/').map_or("", |(dir, _)| dir)
                    };
                    clean_path(&format!("{base}/{target}"))?
                }
                (EntryKind::Hardlink, Some(target)) => clean_path(target)?,
                _ => return None,
            };
        }
        None
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
            let chunk = self.read(path, out.len() as u64, CHUNK).map_err(|e| DecodeError::host(path, e))?;
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

/// How many links [`ArchiveRead::resolve`] follows before giving up.
const MAX_LINK_HOPS: usize = 40;

/// `path` with `.` and `..` resolved lexically and leading, trailing and
/// repeated `/` removed, as the host names entries; `None` if `..` climbs
/// above the archive root.
pub fn clean_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
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

/// The archive the host hands to the plugin; its entry table is fetched on
/// first use.
pub(crate) struct HostArchive<'a> {
    archive: &'a Archive,
    entries: std::cell::OnceCell<Vec<Entry>>,
}

impl<'a> HostArchive<'a> {
    pub(crate) fn new(archive: &'a Archive) -> Self {
        HostArchive { archive, entries: std::cell::OnceCell::new() }
    }
}

impl ArchiveRead for HostArchive<'_> {
    fn entries(&self) -> &[Entry] {
        self.entries.get_or_init(|| self.archive.entries())
    }

    fn read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        self.archive.read(path, offset, len)
    }

    fn digest(&self, path: &str, uncompressed: bool) -> Result<String, String> {
        self.archive.digest(path, uncompressed)
    }

    fn input_digest(&self) -> Result<String, String> {
        self.archive.input_digest()
    }
}

/// An in-memory archive of regular files, for unit tests of decoder logic.
#[derive(Default)]
pub struct MemArchive {
    entries: Vec<Entry>,
    contents: Vec<Vec<u8>>,
    input: Option<Vec<u8>>,
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
        self.entries.push(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            size: content.len() as u64,
            link: None,
        });
        self.contents.push(content.to_vec());
        self
    }

    /// Adds a symlink to `target` (relative to the link's directory, or to
    /// the archive root when it starts with `/`).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entries.push(Entry {
            path: path.to_string(),
            kind: EntryKind::Symlink,
            size: 0,
            link: Some(target.to_string()),
        });
        self.contents.push(Vec::new());
        self
    }

    /// Adds a directory.
    pub fn add_dir(&mut self, path: &str) -> &mut Self {
        self.entries.push(Entry { path: path.to_string(), kind: EntryKind::Directory, size: 0, link: None });
        self.contents.push(Vec::new());
        self
    }

    /// Sets the bytes [`ArchiveRead::input_digest`] hashes (the archive
    /// itself, e.g. the tar these entries came from); without them it is an
    /// error, as for a directory.
    pub fn set_input(&mut self, bytes: &[u8]) -> &mut Self {
        self.input = Some(bytes.to_vec());
        self
    }

    /// Removes every entry at `path`.
    pub fn remove(&mut self, path: &str) -> &mut Self {
        while let Some(i) = self.entries.iter().position(|e| e.path == path) {
            self.entries.remove(i);
            self.contents.remove(i);
        }
        self
    }

    /// The content of the file `path` names, links followed.
    fn content(&self, path: &str) -> Result<&[u8], String> {
        let entry = self.resolve(path).ok_or_else(|| format!("{path}: no such file"))?;
        let i =
            self.entries.iter().position(|e| std::ptr::eq(e, entry)).ok_or_else(|| format!("{path}: no such file"))?;
        Ok(&self.contents[i])
    }
}

impl ArchiveRead for MemArchive {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let content = self.content(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
        let end = start.saturating_add(len as usize).min(content.len());
        Ok(content[start..end].to_vec())
    }

    /// Hashes the stored bytes. `uncompressed` is supported for plain
    /// content only (gzip or zstd content is refused: store the plain bytes).
    fn digest(&self, path: &str, uncompressed: bool) -> Result<String, String> {
        let content = self.content(path)?;
        if uncompressed && (content.starts_with(&[0x1f, 0x8b]) || content.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])) {
            return Err("MemArchive cannot decompress; store the plain bytes".into());
        }
        Ok(sha256(content))
    }

    fn input_digest(&self) -> Result<String, String> {
        self.input.as_deref().map(sha256).ok_or_else(|| "this MemArchive has no input bytes (set_input)".to_string())
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
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

    #[test]
    fn links_are_followed_inside_the_archive() {
        let mut archive = MemArchive::new([("a/layer.tar", "data")]);
        archive.add_symlink("b/layer.tar", "../a/layer.tar");
        archive.add_symlink("c/layer.tar", "/b/layer.tar");
        archive.add_symlink("loop", "loop");
        archive.add_symlink("out", "../../x");
        archive.add_dir("d");
        assert_eq!(archive.resolve("./c/layer.tar").unwrap().path, "a/layer.tar");
        assert_eq!(archive.read_all("c/layer.tar", 10).unwrap(), b"data");
        assert_eq!(archive.digest("b/layer.tar", true).unwrap(), archive.digest("a/layer.tar", false).unwrap());
        for bad in ["loop", "out", "d", "nope"] {
            assert!(archive.resolve(bad).is_none(), "{bad}");
        }
        assert_eq!(clean_path("./a//b/../c/"), Some("a/c".to_string()));
        assert_eq!(clean_path("a/../.."), None);
    }

    #[test]
    fn input_digest_hashes_the_input() {
        let mut archive = MemArchive::new([("etc/hostname", "box\n")]);
        assert!(archive.input_digest().is_err(), "no input set");
        archive.set_input(b"abc");
        assert_eq!(
            archive.input_digest().unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
