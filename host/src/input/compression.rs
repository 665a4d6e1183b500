//! Outer and layer compression, recognized by magic bytes, never by name.

use std::io::{self, BufReader, Read};

/// A compression format msb can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `1f 8b`
    Gzip,
    /// `28 b5 2f fd`
    Zstd,
    /// `fd 37 7a 58 5a 00`
    Xz,
    /// `BZh`
    Bzip2,
}

impl Compression {
    /// Lowercase name, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// The compression `head` starts with, if any.
pub fn sniff(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Compression::Xz)
    } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        Some(Compression::Bzip2)
    } else {
        None
    }
}

/// `reader` with `compression` undone (multi-member gzip and concatenated
/// zstd frames included).
pub fn decompress<'a>(reader: impl Read + 'a, compression: Option<Compression>) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        None => Box::new(reader),
        Some(Compression::Gzip) => {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, reader)))
        }
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Some(Compression::Xz) => Box::new(xz2::read::XzDecoder::new_multi_decoder(reader)),
        Some(Compression::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
    })
}

/// A short guess of what a non-archive file is, for error messages.
pub fn describe(head: &[u8]) -> &'static str {
    if head.is_empty() {
        "an empty file"
    } else if head.starts_with(b"PK\x03\x04") {
        "a zip archive"
    } else if head.starts_with(b"\x7fELF") {
        "an ELF binary"
    } else if head.starts_with(b"\0asm") {
        "a WebAssembly module"
    } else if head.iter().take(512).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "a text file"
    } else {
        "an unknown binary file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips() {
        let data = b"hello tar".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&data[..], 1).unwrap();
        for (bytes, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            assert_eq!(sniff(&bytes), Some(kind));
            let mut out = Vec::new();
            decompress(&bytes[..], Some(kind)).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
        assert_eq!(sniff(b"ustar"), None);
        assert_eq!(describe(b""), "an empty file");
    }
}
