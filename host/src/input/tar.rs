//! An archive in one file, read by offset: a tar indexed in one walk over
//! its headers, or any other file shown as a single entry (for decoders of
//! formats that are not tar).
//!
//! A path the tar holds twice must hold the same thing twice (tar appends of
//! the same file): with different content, tools that take the first copy
//! (go-containerregistry's tarball reader) and tools that take the last
//! (extracting, as docker does) would load different images, so the archive
//! is refused.

use super::index::{Entry, EntryKind, Index, normalize};
use super::{Archive, InputError, MAX_READ, compression};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The most entries an archive may have.
const MAX_ENTRIES: usize = 1_000_000;

/// An uncompressed tar file with its entry table, or a single file.
pub(crate) struct TarArchive {
    file: Arc<File>,
    index: Index,
    /// For a file that is not a tar: what it looks like.
    not_tar: Option<&'static str>,
}

impl TarArchive {
    /// Indexes `file` (positioned anywhere; read from its start). A file that
    /// is not a tar becomes one entry called `name`.
    pub(crate) fn open(mut file: File, name: &str) -> Result<TarArchive, InputError> {
        file.seek(SeekFrom::Start(0))?;
        let mut head = [0u8; 512];
        let n = file.read_at(&mut head, 0)?;
        if n == 512 && head.iter().all(|&b| b == 0) {
            // Only the end-of-archive marker: a valid, empty tar.
            return Ok(TarArchive { file: Arc::new(file), index: Index::default(), not_tar: None });
        }
        if !is_tar_header(&head[..n]) {
            let mut index = Index::default();
            let size = file.metadata()?.len();
            index.push(Entry { path: name.to_string(), kind: EntryKind::File, size, link: None, offset: 0 });
            let not_tar = Some(compression::describe(&head[..n]));
            return Ok(TarArchive { file: Arc::new(file), index, not_tar });
        }
        let mut index = Index::default();
        let len = file.metadata()?.len();
        let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, &file));
        let entries = archive.entries_with_seek().map_err(|e| bad("tar header #0", e))?;
        for (n, entry) in entries.enumerate() {
            let at = || format!("tar header #{n}");
            let entry = entry.map_err(|e| bad(&at(), e))?;
            if n >= MAX_ENTRIES {
                return Err(bad(&at(), format!("more than {MAX_ENTRIES} entries")));
            }
            let raw_path = entry.path_bytes();
            let raw_path = String::from_utf8_lossy(&raw_path).into_owned();
            let path = normalize(&raw_path).ok_or_else(|| bad(&raw_path, "path climbs out of the archive with .."))?;
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Directory,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::Hardlink,
                tar::EntryType::GNUSparse => return Err(bad(&raw_path, "sparse files are not supported")),
                _ => EntryKind::Other,
            };
            let link = match entry.link_name_bytes() {
                Some(l) if matches!(kind, EntryKind::Symlink | EntryKind::Hardlink) => {
                    Some(String::from_utf8_lossy(&l).into_owned())
                }
                _ => None,
            };
            let size = if kind == EntryKind::File { entry.size() } else { 0 };
            let entry = Entry { path, kind, size, link, offset: entry.raw_file_position() };
            if entry.offset.checked_add(entry.size).is_none_or(|end| end > len) {
                return Err(bad(&entry.path, "the archive is truncated: this entry ends past the end of the file"));
            }
            if let Some(earlier) = index.get(&entry.path)
                && !same_entry(&file, earlier, &entry)?
            {
                return Err(bad(&entry.path, "the archive holds this path twice, with different content"));
            }
            index.push(entry);
        }
        Ok(TarArchive { file: Arc::new(file), index, not_tar: None })
    }
}

/// Whether two entries of `file` at one path are the same: kind, link
/// target and, for files, every byte (directories may differ in metadata).
fn same_entry(file: &File, a: &Entry, b: &Entry) -> Result<bool, InputError> {
    if a.kind != b.kind || a.link != b.link || a.size != b.size {
        return Ok(false);
    }
    if a.kind != EntryKind::File {
        return Ok(true);
    }
    const CHUNK: u64 = 1 << 16;
    let (mut x, mut y) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
    let mut done = 0;
    while done < a.size {
        let n = (a.size - done).min(CHUNK) as usize;
        file.read_exact_at(&mut x[..n], a.offset + done)?;
        file.read_exact_at(&mut y[..n], b.offset + done)?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

fn bad(entry: &str, reason: impl ToString) -> InputError {
    InputError::BadEntry { entry: entry.to_string(), reason: reason.to_string() }
}

/// Whether `head` is a tar header: its checksum adds up.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 =
        head[..512].iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    stored == Some(sum)
}

impl Archive for TarArchive {
    fn entries(&self) -> &[Entry] {
        self.index.entries()
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, InputError> {
        let entry = self.index.resolve(path)?;
        let len = len.min(MAX_READ) as u64;
        let len = entry.size.saturating_sub(offset).min(len) as usize;
        if len == 0 {
            return Ok(Vec::new());
        }
        // `offset < size` here, and `entry.offset + size` fits (checked when indexing).
        let at = entry.offset.checked_add(offset).ok_or_else(|| bad(path, "read offset out of range"))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>, InputError> {
        let entry = self.index.resolve(path)?;
        let range = super::FileRange { file: self.file.clone(), offset: entry.offset, len: entry.size };
        Ok(Box::new(BufReader::with_capacity(1 << 18, range.reader(0))))
    }

    fn size(&self, path: &str) -> Result<u64, InputError> {
        Ok(self.index.resolve(path)?.size)
    }

    fn not_tar(&self) -> Option<&str> {
        self.not_tar
    }

    fn file_range(&self, path: &str) -> Option<super::FileRange> {
        let entry = self.index.resolve(path).ok()?;
        Some(super::FileRange { file: self.file.clone(), offset: entry.offset, len: entry.size })
    }

    fn input_range(&self) -> Option<super::FileRange> {
        let len = self.file.metadata().ok()?.len();
        Some(super::FileRange { file: self.file.clone(), offset: 0, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar of `(path, content)` files, in order, as a temporary file.
    fn tar_of(files: &[(&str, &[u8])]) -> File {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // `append_data` would refuse `..` and normalize `./`: write the raw name.
            header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&builder.into_inner().unwrap()).unwrap();
        file
    }

    #[test]
    fn a_path_held_twice_with_different_content_is_refused() {
        let file = tar_of(&[("index.json", b"{\"a\":1}"), ("x", b"x"), ("./index.json", b"{\"a\":2}")]);
        let err = TarArchive::open(file, "t").err().expect("refused");
        assert!(
            matches!(&err, InputError::BadEntry { entry, reason } if entry == "index.json" && reason.contains("twice")),
            "{err}"
        );
        // Same length, one byte apart, past the first chunk.
        let (a, mut b) = (vec![1u8; 100_000], vec![1u8; 100_000]);
        b[99_999] = 2;
        assert!(TarArchive::open(tar_of(&[("l", &a), ("l", &b)]), "t").is_err());
    }

    #[test]
    fn identical_duplicates_pass() {
        let big = vec![9u8; 200_000];
        let file = tar_of(&[("a", b"same"), ("l", &big), ("./a", b"same"), ("l", &big)]);
        let archive = TarArchive::open(file, "t").unwrap();
        assert_eq!(archive.read_at("a", 0, 10).unwrap(), b"same");
        assert_eq!(archive.size("l").unwrap(), 200_000);
    }

    #[test]
    fn reads_at_any_offset_stay_in_the_entry() {
        let archive = TarArchive::open(tar_of(&[("a", b"hello"), ("b", b"world")]), "t").unwrap();
        assert_eq!(archive.read_at("a", 1, 3).unwrap(), b"ell");
        assert_eq!(archive.read_at("a", 3, 100).unwrap(), b"lo");
        for offset in [5, 6, u64::MAX - 1, u64::MAX] {
            assert!(archive.read_at("a", offset, 100).unwrap().is_empty(), "{offset}");
        }
        assert!(archive.read_at("a", 0, usize::MAX).unwrap().len() == 5);
    }
}
