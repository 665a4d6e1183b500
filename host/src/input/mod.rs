//! Archive input: open a file, directory or stdin, strip an outer
//! compression, and index the entries the decoders will see.
//!
//! A seekable uncompressed tar is used in place. Stdin and compressed files
//! are spooled once, decompressed, into the store's `tmp/`.

mod compression;
mod dir;
mod index;
mod tar;

pub use compression::{Compression, decompress, sniff};
pub use index::{Entry, EntryKind};

use crate::progress::{Counting, Phase, Progress};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The most bytes one `read_at` returns.
pub const MAX_READ: usize = 16 << 20;

/// Errors reading an input archive.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading or spooling failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The tar is damaged or uses something unsupported.
    #[error("{entry}: {reason}")]
    BadEntry {
        /// Path of the entry (or `tar header #n`).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// No entry at this path.
    #[error("{0}: not in the archive")]
    NoEntry(String),
    /// An entry holds more bytes than a limit allows.
    #[error("{entry}: more than the limit of {limit} bytes")]
    TooLarge {
        /// Path of the entry.
        entry: String,
        /// The limit.
        limit: u64,
    },
}

/// An indexed archive: its entry table and reads by path.
pub trait Archive: Send + Sync {
    /// Every entry, in archive order.
    fn entries(&self) -> &[Entry];
    /// Up to `len` (at most [`MAX_READ`]) bytes of the file at `path` from
    /// `offset`, links followed.
    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, InputError>;
    /// The whole file at `path` as a stream, links followed.
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>, InputError>;
    /// Size of the file at `path`, links followed.
    fn size(&self, path: &str) -> Result<u64, InputError>;
    /// For an input that is neither a tar nor a directory (shown to the
    /// decoders as one entry named after it): what it looks like.
    fn not_tar(&self) -> Option<&str> {
        None
    }
    /// Where the bytes of the file at `path` lie in a file of the host, so
    /// that they can be copied in the kernel (`copy_file_range`, a reflink
    /// where the file system has them); `None` when they don't lie in one
    /// piece of one file.
    fn file_range(&self, _path: &str) -> Option<FileRange> {
        None
    }
    /// The archive itself as it was read (a tar after any outer compression
    /// was stripped; any other single file): `source::input` of contract
    /// 0.2.0. `None` for a directory, which has no bytes of its own.
    fn input_range(&self) -> Option<FileRange> {
        None
    }
}

/// A byte range of an open file: `len` bytes from `offset`.
pub struct FileRange {
    /// The file.
    pub file: std::sync::Arc<File>,
    /// Where the range starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

impl FileRange {
    /// Copies the range into `out` at offset `at` in the kernel
    /// (`copy_file_range`: a reflink where the file system has them, a copy
    /// that never enters this process elsewhere). `Ok(false)`: the kernel
    /// cannot copy between these files (another file system, an old kernel);
    /// nothing was written.
    pub fn copy_to(&self, out: &File, at: u64) -> io::Result<bool> {
        let (mut from, mut to) = (self.offset, at);
        while to - at < self.len {
            let want = usize::try_from(self.len - (to - at)).unwrap_or(usize::MAX).min(1 << 30);
            match rustix::fs::copy_file_range(&*self.file, Some(&mut from), out, Some(&mut to), want) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ends early")),
                Ok(_) => {}
                Err(e) if to == at && is_unsupported(e) => return Ok(false),
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

impl FileRange {
    /// A reader over the range from `skip` bytes in (positioned reads: any
    /// number of readers may share the file).
    pub fn reader(&self, skip: u64) -> RangeReader {
        RangeReader { file: self.file.clone(), pos: self.offset.saturating_add(skip.min(self.len)), end: self.offset + self.len }
    }
}

/// Reads `[pos, end)` of a shared file with positioned reads, so several
/// layers can stream from one archive at once.
pub struct RangeReader {
    file: std::sync::Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
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

/// Errors by which `copy_file_range` says it cannot copy these files.
fn is_unsupported(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::XDEV, Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP, Errno::BADF, Errno::PERM].contains(&e)
}

/// An opened input: the archive and, if one was made, its spool file.
pub struct Input {
    /// The indexed archive.
    pub archive: std::sync::Arc<dyn Archive>,
    /// The outer compression that was stripped.
    pub compression: Option<Compression>,
    _spool: Option<tempfile::TempPath>,
}

/// Where the archive comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file or directory.
    Path(PathBuf),
}

impl Source {
    /// How error messages name this input.
    pub fn display_name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_string(),
            Source::Path(p) => p.display().to_string(),
        }
    }
}

/// Opens `source`, spooling into `tmp_dir` when it must.
pub fn open(source: &Source, tmp_dir: &Path, progress: &dyn Progress) -> Result<Input, InputError> {
    match source {
        Source::Path(path) if path.is_dir() => {
            Ok(Input { archive: std::sync::Arc::new(dir::DirArchive::open(path)?), compression: None, _spool: None })
        }
        Source::Path(path) => {
            let mut file = File::open(path)?;
            let mut head = [0u8; 512];
            let n = read_full(&mut file, &mut head)?;
            match sniff(&head[..n]) {
                None => Ok(Input {
                    archive: std::sync::Arc::new(tar::TarArchive::open(File::open(path)?, &entry_name(source))?),
                    compression: None,
                    _spool: None,
                }),
                Some(c) => {
                    let file = File::open(path)?;
                    progress.start(Phase::Spooling, Some(file.metadata()?.len()));
                    spool(Counting::new(file, progress), Some(c), &entry_name(source), tmp_dir, progress)
                }
            }
        }
        Source::Stdin => {
            let mut stdin = io::stdin().lock();
            let mut head = [0u8; 512];
            let n = read_full(&mut stdin, &mut head)?;
            let compression = sniff(&head[..n]);
            progress.start(Phase::Spooling, None);
            let reader = Counting::new(io::Cursor::new(head[..n].to_vec()).chain(stdin), progress);
            spool(reader, compression, &entry_name(source), tmp_dir, progress)
        }
    }
}

/// Copies `reader` (decompressing it) into a file in `tmp_dir` and indexes it.
fn spool(
    reader: impl Read,
    compression: Option<Compression>,
    name: &str,
    tmp_dir: &Path,
    progress: &dyn Progress,
) -> Result<Input, InputError> {
    let mut spool = tempfile::Builder::new().prefix("spool-").tempfile_in(tmp_dir)?;
    io::copy(&mut decompress(reader, compression)?, spool.as_file_mut())?;
    progress.finish();
    let (file, path) = spool.into_parts();
    Ok(Input { archive: std::sync::Arc::new(tar::TarArchive::open(file, name)?), compression, _spool: Some(path) })
}

/// The entry name of an input that is not a tar: its file name (without a
/// compression suffix), or `stdin`.
fn entry_name(source: &Source) -> String {
    match source {
        Source::Stdin => "stdin".to_string(),
        Source::Path(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
            [".gz", ".zst", ".xz", ".bz2"].iter().find_map(|x| name.strip_suffix(x)).unwrap_or(&name).to_string()
        }
    }
}

/// The sha256 of the file at `path` and how many bytes were hashed; with
/// `uncompressed`, of its content after undoing gzip or zstd (sniffed).
/// Refuses ([`InputError::TooLarge`]) a file, or content, of more than `max`
/// bytes before hashing past it.
pub fn digest_entry(
    archive: &dyn Archive,
    path: &str,
    uncompressed: bool,
    max: u64,
) -> Result<(crate::digest::Digest, u64), InputError> {
    use std::io::BufRead;
    let too_large = || InputError::TooLarge { entry: path.to_string(), limit: max };
    if archive.size(path)? > max {
        return Err(too_large());
    }
    let mut reader = io::BufReader::with_capacity(1 << 16, archive.open(path)?);
    let compression = if uncompressed { sniff(reader.fill_buf()?) } else { None };
    let content = decompress(reader, compression)?.take(max.saturating_add(1));
    let (digest, size) = crate::digest::HashingReader::new(content).finish()?;
    if size > max {
        return Err(too_large());
    }
    Ok((digest, size))
}

/// The sha256 of the archive itself ([`Archive::input_range`]), refusing
/// more than `max` bytes; returns it and the bytes hashed.
pub fn digest_input(archive: &dyn Archive, max: u64) -> Result<(crate::digest::Digest, u64), InputError> {
    const WHAT: &str = "the archive itself";
    let range = archive.input_range().ok_or_else(|| InputError::BadEntry {
        entry: WHAT.into(),
        reason: "a directory has no bytes of its own".into(),
    })?;
    if range.len > max {
        return Err(InputError::TooLarge { entry: WHAT.into(), limit: max });
    }
    Ok(crate::digest::HashingReader::new(io::BufReader::with_capacity(1 << 18, range.reader(0))).finish()?)
}

/// Fills `buf` as far as the stream allows; returns how much was read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), vec![b'x'; 1000]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        io::Write::write_all(&mut gz, &vec![0u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("bomb.gz"), gz.finish().unwrap()).unwrap();
        let archive = dir::DirArchive::open(dir.path()).unwrap();

        let (digest, hashed) = digest_entry(&archive, "plain", false, 1000).unwrap();
        assert_eq!((digest, hashed), (crate::digest::Digest::of(&[b'x'; 1000]), 1000));
        // The file alone is over the cap: refused before hashing.
        let err = digest_entry(&archive, "plain", false, 999).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { ref entry, limit: 999 } if entry == "plain"), "{err}");
        // Small compressed, large uncompressed: refused at the cap.
        assert_eq!(digest_entry(&archive, "bomb.gz", true, 100_000).unwrap().1, 100_000);
        let err = digest_entry(&archive, "bomb.gz", true, 99_999).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { limit: 99_999, .. }), "{err}");
        assert!(digest_entry(&archive, "bomb.gz", false, 99_999).is_ok(), "compressed it is small");
    }
}
