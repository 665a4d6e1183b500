//! An archive in one file, read by offset: a tar indexed in one walk over
//! its headers, or any other file shown as a single entry (for decoders of
//! formats that are not tar).

use super::index::{Entry, EntryKind, Index, normalize};
use super::{Archive, InputError, MAX_READ, compression};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
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
            index.push(Entry { path, kind, size, link, offset: entry.raw_file_position() });
        }
        let len = file.metadata()?.len();
        if let Some(cut) = index.entries().iter().find(|e| e.offset.saturating_add(e.size) > len) {
            return Err(bad(&cut.path, "the archive is truncated: this entry ends past the end of the file"));
        }
        Ok(TarArchive { file: Arc::new(file), index, not_tar: None })
    }
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
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, entry.offset + offset)?;
        Ok(buf)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>, InputError> {
        let entry = self.index.resolve(path)?;
        let reader = SliceReader { file: self.file.clone(), pos: entry.offset, end: entry.offset + entry.size };
        Ok(Box::new(BufReader::with_capacity(1 << 18, reader)))
    }

    fn size(&self, path: &str) -> Result<u64, InputError> {
        Ok(self.index.resolve(path)?.size)
    }

    fn not_tar(&self) -> Option<&str> {
        self.not_tar
    }
}

/// Reads `[pos, end)` of a shared file with positioned reads, so several
/// layers can stream from one archive at once.
struct SliceReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "archive ends inside an entry"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
