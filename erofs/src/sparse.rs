//! Sparse tar entries, kept sparse: the map of data segments, read from
//! either of GNU tar's formats, and a tap on the tar stream that lets the
//! writer read a GNU old-format entry's data without the `tar` crate
//! expanding its holes.
//!
//! - PAX format 1.0 (`GNU.sparse.major=1`, `minor=0`): the entry's data
//!   begins with a map in decimal text — the number of data segments, then
//!   an offset and a length per segment, one number a line — padded to 512
//!   bytes, followed by the segments' bytes back to back ([`read_pax_map`]).
//! - Old GNU (type `S`): four segments in the header, more in extension
//!   blocks of 21 after it ([`gnu_map`]), then the segments' bytes back to
//!   back. The `tar` crate reads the extension blocks and would hand out the
//!   content with every hole as zeros (a 1 TiB hole is 1 TiB of zeros to
//!   read); [`Tap`] keeps the blocks it read and lets the data be read
//!   straight from the stream instead, then feeds the `tar` crate, which
//!   skips the entry's data by reading it, that many bytes without copying.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// Longest decimal number the map may hold (u64::MAX has 20 digits).
const MAX_DIGITS: usize = 20;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid sparse map: {what}"))
}

/// Checks that `map`'s segments are ascending, apart and inside `size`;
/// drops empty ones.
pub fn validate(map: Vec<(u64, u64)>, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut end = 0u64;
    let mut out = Vec::with_capacity(map.len());
    for (offset, len) in map {
        if offset < end {
            return Err(invalid("segments overlap or are out of order"));
        }
        let seg_end = offset.checked_add(len).ok_or_else(|| invalid("segment past 2^64"))?;
        if seg_end > size {
            return Err(invalid("segment past the file's size"));
        }
        if len > 0 {
            end = seg_end;
            out.push((offset, len));
        }
    }
    Ok(out)
}

/// Most segments a PAX 1.0 map may declare: as many as the extension blocks
/// of an old GNU entry can hold ([`MAX_EXT_BYTES`], 21 per 512 bytes), plus
/// the header's 4.
pub const MAX_SEGMENTS: u64 = (MAX_EXT_BYTES as u64 / 512) * 21 + 4;

/// Reads the map of a PAX 1.0 entry from the start of its data (`inner`);
/// the segments' bytes follow in `inner`. `real_size` is
/// `GNU.sparse.realsize`.
pub fn read_pax_map<R: Read>(inner: &mut R, real_size: u64) -> io::Result<Vec<(u64, u64)>> {
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
                        None if n > MAX_SEGMENTS => {
                            return Err(io::Error::new(
                                io::ErrorKind::Unsupported,
                                format!("PAX sparse file of {n} segments (at most {MAX_SEGMENTS})"),
                            ));
                        }
                        None => wanted = Some(n * 2),
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
    validate(numbers.chunks_exact(2).map(|c| (c[0], c[1])).collect(), real_size)
}

/// One `struct sparse` of a GNU header: 12 bytes of offset, 12 of length
/// (octal, or base-256 when the first byte has its top bit set).
fn gnu_number(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| invalid("number too large"))?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field.iter().copied().skip_while(|&b| b == b' ').take_while(|&b| b != 0 && b != b' ').collect();
    if text.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&text).map_err(|_| invalid("not an octal number"))?;
    u64::from_str_radix(text, 8).map_err(|_| invalid("not an octal number"))
}

fn gnu_segments(structs: &[u8], map: &mut Vec<(u64, u64)>) -> io::Result<()> {
    for s in structs.chunks_exact(24) {
        if s.iter().all(|&b| b == 0) {
            continue;
        }
        map.push((gnu_number(&s[..12])?, gnu_number(&s[12..])?));
    }
    Ok(())
}

/// The map of an old GNU sparse entry: the four segments of its `header`
/// (512 bytes), then those of the extension blocks `ext` (512 bytes each,
/// as read after the header). `size` is the file's real size.
pub fn gnu_map(header: &[u8; 512], ext: &[u8], size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut map = Vec::new();
    gnu_segments(&header[386..386 + 4 * 24], &mut map)?;
    let mut extended = header[482] == 1;
    for block in ext.chunks(512) {
        if !extended || block.len() != 512 {
            return Err(invalid("extension blocks do not match the header"));
        }
        gnu_segments(&block[..21 * 24], &mut map)?;
        extended = block[504] == 1;
    }
    if extended {
        return Err(invalid("extension blocks missing"));
    }
    validate(map, size)
}

/// Most bytes of extension blocks [`Tap`] keeps (21 segments per 512).
pub const MAX_EXT_BYTES: usize = 16 << 20;

struct TapState<R> {
    inner: R,
    /// Bytes handed to the `tar` crate (real and skipped).
    pos: u64,
    /// Whether reads are being kept (between entries).
    armed: bool,
    /// The bytes read since arming (at most about [`MAX_EXT_BYTES`]),
    /// starting at `log_start`.
    log: Vec<u8>,
    log_start: u64,
    /// Bytes read past the `tar` crate, which it is yet to skip.
    skipped: u64,
}

/// The reader the `tar` crate reads the layer through; see the module doc.
pub struct Tap<R>(Rc<RefCell<TapState<R>>>);

impl<R: Read> Tap<R> {
    /// A tap on `inner`, and a handle to it for the writer.
    pub fn new(inner: R) -> (Tap<R>, Tap<R>) {
        let state = TapState { inner, pos: 0, armed: false, log: Vec::new(), log_start: 0, skipped: 0 };
        let rc = Rc::new(RefCell::new(state));
        (Tap(rc.clone()), Tap(rc))
    }

    /// Starts keeping what the `tar` crate reads (call before it reads the
    /// next entry's headers).
    pub fn arm(&self, on: bool) {
        let mut s = self.0.borrow_mut();
        s.armed = on;
        if on {
            s.log.clear();
            s.log_start = s.pos;
        }
    }

    /// The bytes the `tar` crate read from stream position `from` up to now,
    /// if they were kept.
    pub fn since(&self, from: u64) -> Option<Vec<u8>> {
        let s = self.0.borrow();
        let at = usize::try_from(from.checked_sub(s.log_start)?).ok()?;
        s.log.get(at..).map(<[u8]>::to_vec)
    }

    /// Bytes of the stream read so far (by the `tar` crate or directly).
    pub fn position(&self) -> u64 {
        let s = self.0.borrow();
        s.pos + s.skipped
    }

    /// A reader of the stream at the `tar` crate's position, behind its
    /// back: what it reads, the `tar` crate skips later without reading.
    pub fn direct(&self) -> Direct<'_, R> {
        Direct(self)
    }
}

/// See [`Tap::direct`].
pub struct Direct<'a, R>(&'a Tap<R>);

impl<R: Read> Read for Direct<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.0.borrow_mut();
        let n = s.inner.read(buf)?;
        s.skipped += n as u64;
        Ok(n)
    }
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.borrow_mut();
        if s.skipped > 0 {
            // Bytes already read directly: the tar crate only skips them
            // (into a sink), so the buffer is left as it is.
            let n = (buf.len() as u64).min(s.skipped) as usize;
            s.skipped -= n as u64;
            s.pos += n as u64;
            s.log.clear();
            s.log_start = s.pos;
            return Ok(n);
        }
        let n = s.inner.read(buf)?;
        s.pos += n as u64;
        if s.armed {
            s.log.extend_from_slice(&buf[..n]);
            if s.log.len() > 2 * MAX_EXT_BYTES {
                let drop = s.log.len() - MAX_EXT_BYTES;
                s.log.drain(..drop);
                s.log_start += drop as u64;
            }
        }
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
    fn pax_maps() {
        let bytes = entry("3\n2\n3\n8\n1\n9\n0\n", b"abcZ");
        let mut r = &bytes[..];
        assert_eq!(read_pax_map(&mut r, 12).unwrap(), [(2, 3), (8, 1)], "empty segments dropped");
        assert_eq!(r, b"abcZ");
        assert_eq!(read_pax_map(&mut &entry("0\n", b"")[..], 5).unwrap(), []);
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(read_pax_map(&mut &entry("1\n5\n3\n", b"abc")[..], 4).is_err(), "past the end");
        assert!(read_pax_map(&mut &entry("2\n4\n1\n0\n1\n", b"ab")[..], 9).is_err(), "out of order");
        assert!(read_pax_map(&mut &entry("1\nx\n", b"")[..], 9).is_err());
        assert!(read_pax_map(&mut &b"3\n"[..], 9).is_err(), "short map");
        let many = read_pax_map(&mut &entry("99999999999\n", b"")[..], 9).unwrap_err();
        assert_eq!(many.kind(), io::ErrorKind::Unsupported, "{many}");
    }

    #[test]
    fn gnu_maps() {
        let mut header = [0u8; 512];
        header[386..398].copy_from_slice(b"00000001000\0");
        header[398..410].copy_from_slice(b"00000000010\0");
        header[482] = 1;
        let mut ext = [0u8; 512];
        ext[0..12].copy_from_slice(b"00000002000\0");
        ext[12] = 0x80;
        ext[23] = 5;
        assert_eq!(gnu_map(&header, &ext, 1 << 20).unwrap(), [(512, 8), (1024, 5)]);
        assert!(gnu_map(&header, &[], 1 << 20).is_err(), "extension missing");
        assert!(gnu_map(&header, &ext, 1000).is_err(), "past the size");
    }
}
