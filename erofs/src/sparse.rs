//! GNU tar's PAX sparse format 1.0 (`GNU.sparse.major=1`, `minor=0`): the
//! entry's data begins with a map in decimal text — the number of data
//! segments, then an offset and a length per segment, one number a line —
//! padded to 512 bytes, followed by the segments' bytes back to back.
//! [`Sparse`] turns that into the file's full content, holes as zeros.
//!
//! (GNU tar's old sparse entries, type `S`, are expanded by the `tar` crate
//! itself.)

use std::io::{self, Read};

/// Longest decimal number the map may hold (u64::MAX has 20 digits).
const MAX_DIGITS: usize = 20;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid sparse map: {what}"))
}

/// Reads the full content of a PAX 1.0 sparse entry.
pub struct Sparse<R> {
    inner: R,
    /// `(offset, length)` of each data segment, ascending.
    map: Vec<(u64, u64)>,
    /// Segment being read or next to come.
    next: usize,
    /// Position in the full content.
    pos: u64,
    real_size: u64,
}

impl<R: Read> Sparse<R> {
    /// Reads the map from the start of `inner` (the entry's data); the
    /// content is `real_size` bytes (`GNU.sparse.realsize`).
    pub fn new(mut inner: R, real_size: u64) -> io::Result<Sparse<R>> {
        let mut block = [0u8; 512];
        let mut numbers: Vec<u64> = Vec::new();
        let mut wanted: Option<u64> = None;
        let mut digits = String::new();
        'blocks: loop {
            inner.read_exact(&mut block).map_err(|_| invalid("the map ends early"))?;
            for &b in &block {
                match b {
                    b'0'..=b'9' if digits.len() < MAX_DIGITS => digits.push(b as char),
                    b'\n' if !digits.is_empty() => {
                        let n = digits.parse::<u64>().map_err(|_| invalid("number out of range"))?;
                        digits.clear();
                        match wanted {
                            None => wanted = Some(n.checked_mul(2).ok_or_else(|| invalid("too many segments"))?),
                            Some(_) => numbers.push(n),
                        }
                        if wanted == Some(numbers.len() as u64) {
                            break 'blocks;
                        }
                    }
                    _ => return Err(invalid("not a decimal number")),
                }
            }
        }
        let map: Vec<(u64, u64)> = numbers.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        let mut end = 0u64;
        for &(offset, len) in &map {
            if offset < end {
                return Err(invalid("segments overlap or are out of order"));
            }
            end = offset.checked_add(len).ok_or_else(|| invalid("segment past 2^64"))?;
            if end > real_size {
                return Err(invalid("segment past the file's size"));
            }
        }
        Ok(Sparse { inner, map, next: 0, pos: 0, real_size })
    }
}

impl<R: Read> Read for Sparse<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.real_size {
            return Ok(0);
        }
        // Skip segments fully read.
        while let Some(&(offset, len)) = self.map.get(self.next) {
            if self.pos < offset + len {
                break;
            }
            self.next += 1;
        }
        let (hole_end, segment_end) = match self.map.get(self.next) {
            Some(&(offset, len)) => (offset, offset + len),
            None => (self.real_size, self.real_size),
        };
        let room = buf.len() as u64;
        let n = if self.pos < hole_end {
            let n = room.min(hole_end - self.pos) as usize;
            buf[..n].fill(0);
            n
        } else {
            let want = room.min(segment_end - self.pos) as usize;
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "sparse data ends early"));
            }
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(map: &str, data: &[u8]) -> Vec<u8> {
        let mut v = map.as_bytes().to_vec();
        v.resize(v.len().next_multiple_of(512), 0);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn expands_holes() {
        let bytes = entry("2\n2\n3\n8\n1\n", b"abcZ");
        let mut out = Vec::new();
        Sparse::new(&bytes[..], 12).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"\0\0abc\0\0\0Z\0\0\0");
    }

    #[test]
    fn no_segments_is_all_hole() {
        let bytes = entry("0\n", b"");
        let mut out = Vec::new();
        Sparse::new(&bytes[..], 5).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, [0; 5]);
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(Sparse::new(&entry("1\n5\n3\n", b"abc")[..], 4).is_err(), "past the end");
        assert!(Sparse::new(&entry("2\n4\n1\n0\n1\n", b"ab")[..], 9).is_err(), "out of order");
        assert!(Sparse::new(&entry("1\nx\n", b"")[..], 9).is_err());
        assert!(Sparse::new(&b"3\n"[..], 9).is_err(), "short map");
        let truncated = entry("1\n0\n10\n", b"abc");
        let mut out = Vec::new();
        assert!(Sparse::new(&truncated[..], 10).unwrap().read_to_end(&mut out).is_err());
    }
}
