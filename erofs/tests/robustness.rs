//! Damaged and hostile tars give errors, never panics; unit-level checks of
//! what the writer produces without needing a mount.

use msb_erofs::{Error, Options, write_layer};
use std::io::Cursor;

/// A small layer with one of most things, built with the `tar` crate.
fn sample() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("d/", tar::EntryType::Directory, b"", None);
    add("d/small", tar::EntryType::Regular, b"hello", None);
    add("d/big", tar::EntryType::Regular, &vec![3u8; 9000], None);
    add("d/sym", tar::EntryType::Symlink, b"", Some("small"));
    add("d/hard", tar::EntryType::Link, b"", Some("d/small"));
    add("d/.wh.gone", tar::EntryType::Regular, b"", None);
    add("e/.wh..wh..opq", tar::EntryType::Regular, b"", None);
    b.into_inner().unwrap()
}

/// Converts `bytes`; every image made passes msb's own checker.
fn convert(bytes: &[u8]) -> Result<msb_erofs::Summary, Error> {
    let mut out = tempfile::tempfile().unwrap();
    let summary = write_layer(Cursor::new(bytes), &mut out, &Options::default())?;
    let checked = msb_erofs::check(&mut out).unwrap_or_else(|e| panic!("the written image fails check: {e}"));
    assert_eq!(checked.inodes, summary.inodes);
    Ok(summary)
}

#[test]
fn written_images_pass_fsck_and_check_alike() {
    // Damaged tars that still convert: fsck.erofs accepts the image, and
    // so does `check` (a cheap property test of the checker against fsck).
    let tar = sample();
    let mut state = 0xD1B5_4A32_D192_ED03u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = tempfile::Builder::new().prefix("erofs-prop-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let image = dir.path().join("layer.erofs");
    let damaged_tar = dir.path().join("layer.tar");
    let mut converted = 0;
    for round in 0..400 {
        let mut damaged = tar.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() % damaged.len() as u64) as usize;
            damaged[i] = next() as u8;
        }
        // Every fourth round a tar index, checked with the tar as its device.
        let index = round % 4 == 3;
        let format = if index { msb_erofs::Format::TarIndex } else { msb_erofs::Format::Full };
        let opts = Options { format, ..Default::default() };
        let mut out = std::fs::File::create(&image).unwrap();
        if write_layer(Cursor::new(&damaged), &mut out, &opts).is_err() {
            continue;
        }
        converted += 1;
        std::fs::write(&damaged_tar, &damaged).unwrap();
        let mut fsck = std::process::Command::new("fsck.erofs");
        if index {
            fsck.arg(format!("--device={}", damaged_tar.display()));
        }
        let fsck = fsck.arg(&image).output().expect("fsck.erofs");
        let devices: &[u64] = if index { &[damaged.len() as u64] } else { &[] };
        let checked = msb_erofs::check_with_devices(&mut std::fs::File::open(&image).unwrap(), devices);
        assert!(fsck.status.success(), "fsck.erofs refuses a written image: {}", String::from_utf8_lossy(&fsck.stderr));
        assert!(checked.is_ok(), "fsck.erofs accepts, check refuses: {checked:?}");
    }
    assert!(converted > 25, "{converted} damaged tars converted");
}

#[test]
fn the_sample_converts() {
    let summary = convert(&sample()).unwrap();
    // root, d, small (+hard), big, sym, gone, e
    assert_eq!(summary.inodes, 7);
    assert_eq!(summary.entries, 7);
    assert_eq!(summary.file_bytes, 5 + 9000);
    assert_eq!(summary.bytes % 4096, 0);
}

#[test]
fn an_empty_tar_is_an_empty_root() {
    let summary = convert(&[0u8; 1024]).unwrap();
    assert_eq!(summary.inodes, 1);
    let summary = convert(&[]).unwrap();
    assert_eq!(summary.inodes, 1);
}

#[test]
fn truncation_anywhere_is_an_error_or_a_shorter_layer() {
    let tar = sample();
    for cut in (0..tar.len()).step_by(97) {
        let _ = convert(&tar[..cut]);
    }
    // Inside a file's data: named.
    let at = tar.windows(5).position(|w| w == b"hello").unwrap() + 2;
    let error = convert(&tar[..at]).unwrap_err().to_string();
    assert!(error.starts_with("d/small: truncated"), "{error}");
}

#[test]
fn random_damage_never_panics() {
    let tar = sample();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..400 {
        let mut damaged = tar.clone();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() % damaged.len() as u64) as usize;
            damaged[i] = next() as u8;
        }
        let _ = convert(&damaged);
    }
}

#[test]
fn damaged_headers_with_valid_checksums_never_panic() {
    let tar = sample();
    let headers: Vec<usize> = tar::Archive::new(Cursor::new(&tar))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().raw_header_position() as usize)
        .collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut damaged = tar.clone();
        let at = headers[(next() % headers.len() as u64) as usize];
        for _ in 0..(next() % 4 + 1) {
            let mut i = (next() % 512) as usize;
            if (148..156).contains(&i) {
                i = 156;
            }
            let byte = match next() % 4 {
                0 => 0,
                1 => b'0' + (next() % 10) as u8,
                2 => b'7',
                _ => next() as u8,
            };
            damaged[at + i] = byte;
        }
        let header = tar::Header::from_byte_slice(&damaged[at..at + 512]).clone();
        let mut header = header;
        header.set_cksum();
        damaged[at..at + 512].copy_from_slice(header.as_bytes());
        let _ = convert(&damaged);
    }
}

#[test]
fn a_huge_declared_size_is_not_allocated() {
    // A header claiming a 1 TiB file followed by 4 KiB: streamed, then
    // reported as truncated, without allocating the declared size.
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[1u8; 4096]);
    let error = convert(&tar).unwrap_err().to_string();
    assert!(error.starts_with("huge: truncated"), "{error}");
}

/// A PAX 1.0 sparse entry `name` of `size` bytes with data `segments`
/// (each segment's bytes are `a`), then a small file `after`.
fn pax_sparse(name: &str, size: u64, segments: &[(u64, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let size_text = size.to_string();
    b.append_pax_extensions([
        ("GNU.sparse.major", &b"1"[..]),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", name.as_bytes()),
        ("GNU.sparse.realsize", size_text.as_bytes()),
    ])
    .unwrap();
    let mut data = format!("{}\n", segments.len());
    for (offset, len) in segments {
        data += &format!("{offset}\n{len}\n");
    }
    let mut data = data.into_bytes();
    data.resize(data.len().next_multiple_of(512), 0);
    for &(_, len) in segments {
        data.extend(std::iter::repeat_n(b'a', len as usize));
    }
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "GNUSparseFile.0/x", &data[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "after", &b"after"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_huge_sparse_file_is_stored_sparse() {
    // 1 TiB declared, a few bytes of data: a small image, at once.
    let t = std::time::Instant::now();
    let tar = pax_sparse("big", 1 << 40, &[(0, 3), (1 << 39, 5), ((1 << 40) - 1, 1)]);
    let summary = convert(&tar).unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(summary.file_bytes, (1 << 40) + 5);
    assert!(summary.bytes < 16 << 20, "{}", summary.bytes);
}

#[test]
fn sparse_files_over_16_tib_are_refused() {
    let error = convert(&pax_sparse("huge", (1 << 44) + 1, &[(0, 1)])).unwrap_err();
    assert!(matches!(error, Error::Unsupported { .. }));
    assert_eq!(error.to_string(), "huge: file of 17592186044417 bytes (at most 2^44, 16 TiB)");
    // 16 TiB itself is fine.
    convert(&pax_sparse("edge", 1 << 44, &[(0, 1), ((1 << 44) - 1, 1)])).unwrap();
}

#[test]
fn scattered_sparse_data_is_refused_not_written() {
    // 20000 one-byte segments 800 MiB apart over 16 TiB: every chunk holds
    // data, so stored sparse it would still be 16 TiB of zeros. Refused
    // quickly, naming the file.
    let t = std::time::Instant::now();
    let segments: Vec<(u64, u64)> = (0..20000u64).map(|i| (i * (800 << 20), 1)).collect();
    let error = convert(&pax_sparse("scattered", 1 << 44, &segments)).unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(error, Error::Unsupported { .. }));
    let error = error.to_string();
    assert!(error.starts_with("scattered: sparse file whose data is too scattered"), "{error}");
}
