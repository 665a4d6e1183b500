//! The host's input front on arbitrary files: compression sniffing and
//! spooling, tar indexing (PAX and GNU long names, links, damage), then
//! every entry read back through the `Archive` trait at edge and
//! arbitrary offsets and lengths. Asserts that opening never panics, that
//! sizes, `read_at` and `open` agree with each other, that no read returns
//! more than asked or than `MAX_READ`, and that errors say something.
#![no_main]

use msb::input::{self, Archive, EntryKind, MAX_READ};
use msb::progress::Silent;
use std::io::Read;
use std::sync::OnceLock;

/// The most decompressed bytes an input may have: beyond it (a
/// decompression bomb in a few KB) spooling is skipped, it only costs time.
const MAX_SPOOL: u64 = 64 << 20;
/// Entries read back per input.
const MAX_ENTRIES: usize = 64;

fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("msb-fuzz-input-").tempdir().expect("temp dir"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((bytes, _)) = msb_fuzz::archive_file(data) else { return };
    let head = &bytes[..bytes.len().min(512)];
    if let Some(compression) = input::sniff(head) {
        let Ok(reader) = input::decompress(&bytes[..], Some(compression)) else { return };
        let mut sink = std::io::sink();
        match std::io::copy(&mut reader.take(MAX_SPOOL + 1), &mut sink) {
            Ok(n) if n <= MAX_SPOOL => {}
            _ => return,
        }
    }
    let dir = scratch().path();
    let file = tempfile::NamedTempFile::new_in(dir).expect("input file");
    std::fs::write(file.path(), &bytes).expect("write input");
    let source = input::Source::Path(file.path().to_path_buf());
    let opened = match input::open(&source, dir, &Silent) {
        Ok(opened) => opened,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says what is wrong");
            return;
        }
    };
    let archive = opened.archive;
    if archive.not_tar().is_some() {
        assert_eq!(archive.entries().len(), 1, "a file that is not a tar is one entry");
    }
    let mut rng =
        Rng(msb_fuzz::sha256_hex(data).bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| (h ^ b as u64).rotate_left(7)));
    for entry in archive.entries().iter().take(MAX_ENTRIES) {
        read_back(&*archive, &entry.path, entry.kind, entry.size, &mut rng);
    }
});

/// Reads `path` every way the trait allows and checks the answers agree.
fn read_back(archive: &dyn Archive, path: &str, kind: EntryKind, declared: u64, rng: &mut Rng) {
    let size = match archive.size(path) {
        Ok(size) => size,
        Err(e) => {
            assert!(kind != EntryKind::File, "{path}: a file has a size: {e}");
            assert!(archive.read_at(path, 0, 1).is_err(), "{path}: no size but readable");
            return;
        }
    };
    if kind == EntryKind::File {
        assert_eq!(size, declared, "{path}: size() is the entry's size");
    }
    // The whole content through open(), at most a bit more than size.
    let mut content = Vec::new();
    let reader = archive.open(path).unwrap_or_else(|e| panic!("{path}: size() answers but open() fails: {e}"));
    reader.take(size.saturating_add(1).min(MAX_SPOOL)).read_to_end(&mut content).expect("read content");
    if size <= MAX_SPOOL {
        assert_eq!(content.len() as u64, size, "{path}: open() gives size() bytes");
    }
    let edges = [(0, 0), (0, MAX_READ), (0, MAX_READ + 1), (size, 1), (size.saturating_add(1), 10), (u64::MAX, 10)];
    let random = (0..4).map(|_| (rng.below(size.saturating_add(16)), rng.below(2 * size + 16) as usize));
    for (offset, len) in edges.into_iter().chain(random).chain([(u64::MAX - 1, usize::MAX)]) {
        let got =
            archive.read_at(path, offset, len).unwrap_or_else(|e| panic!("{path}: read_at({offset}, {len}): {e}"));
        let want = size.saturating_sub(offset).min(len.min(MAX_READ) as u64);
        assert_eq!(got.len() as u64, want, "{path}: read_at({offset}, {len}) of {size} bytes");
        if let Ok(start) = usize::try_from(offset)
            && start.saturating_add(got.len()) <= content.len()
        {
            assert_eq!(got[..], content[start..start + got.len()], "{path}: read_at({offset}) and open() differ");
        }
    }
}

/// xorshift64, seeded from the input: reproducible offsets.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}
