//! Bounded reads of the image: every read is checked against its size
//! first, so nothing is allocated from a size the image declares.

use std::io::{self, Read, Seek, SeekFrom};

/// What went wrong at one place of the image, before it is named.
pub enum Fault {
    Io(io::Error),
    /// The image is not valid EROFS.
    Bad(String),
    /// Valid perhaps, but not read here.
    Unsupported(String),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Fault {
        Fault::Io(e)
    }
}

/// `Err(Fault::Bad(..))`.
pub fn bad<T>(what: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::Bad(what.into()))
}

/// The image and its size.
pub struct Image<'a, R> {
    r: &'a mut R,
    pub size: u64,
    /// Bytes read so far, and the most that may be.
    read: u64,
    budget: u64,
}

/// A valid image is read about once (every inode, xattr body, directory
/// block and chunk map once); inodes and directories made to overlap could
/// make the walk read the same bytes again and again. The walk stops past
/// this many times the image's size (plus [`BUDGET_EXTRA`]).
const BUDGET_FACTOR: u64 = 4;
const BUDGET_EXTRA: u64 = 16 << 20;

impl<'a, R: Read + Seek> Image<'a, R> {
    pub fn new(r: &'a mut R) -> io::Result<Image<'a, R>> {
        let size = r.seek(SeekFrom::End(0))?;
        let budget = size.saturating_mul(BUDGET_FACTOR).saturating_add(BUDGET_EXTRA);
        Ok(Image { r, size, read: 0, budget })
    }

    /// `len` bytes at `at`, or a [`Fault::Bad`] naming `what` when they are
    /// not all inside the image.
    pub fn read(&mut self, at: u64, len: u64, what: &str) -> Result<Vec<u8>, Fault> {
        match at.checked_add(len) {
            Some(end) if end <= self.size => {}
            _ => return bad(format!("{what} at byte {at} ({len} bytes) is past the end of the image")),
        }
        self.read += len;
        if self.read > self.budget {
            return bad(format!(
                "more than {} bytes read from an image of {} (inodes or directories overlap)",
                self.budget, self.size
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.r.seek(SeekFrom::Start(at))?;
        self.r.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// Little-endian fields of a byte slice whose length was checked.
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_by_the_image() {
        let mut bytes = io::Cursor::new(vec![0u8; 1 << 20]);
        let mut img = Image::new(&mut bytes).unwrap();
        assert!(matches!(img.read((1 << 20) - 4, 8, "x"), Err(Fault::Bad(_))), "past the end");
        assert!(matches!(img.read(u64::MAX, 8, "x"), Err(Fault::Bad(_))), "overflow");
        // The same bytes again and again: stopped past 4 times the image
        // and 16 MiB.
        let mut reads = 0;
        while img.read(0, 1 << 20, "x").is_ok() {
            reads += 1;
        }
        assert_eq!(reads, 4 + 16);
    }
}
