//! `msb_erofs::check` against images the writer makes, images damaged by
//! hand (each refused, naming what is wrong, never a panic), and images
//! `mkfs.erofs` makes (read, or refused as unsupported).

use msb_erofs::{CheckError, Format, Options, check, check_with_devices, write_layer};
use std::io::Cursor;
use std::process::Command;

mod common;
use common::run;

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// A root holding `ab` (a file), `dir/` (with `inner`, and `many/` of 300
/// files over several blocks), `hard` (a hardlink to `ab`), a symlink, a
/// whiteout and xattrs.
fn tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::Regular, 5), "ab", &b"hello"[..]).unwrap();
    b.append_data(&mut header(tar::EntryType::Directory, 0), "dir/", &b""[..]).unwrap();
    b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])]).unwrap();
    b.append_data(&mut header(tar::EntryType::Regular, 9000), "dir/inner", &[7u8; 9000][..]).unwrap();
    for i in 0..300 {
        b.append_data(&mut header(tar::EntryType::Regular, 1), format!("dir/many/file-{i:04}"), &b"x"[..]).unwrap();
    }
    let mut link = header(tar::EntryType::Link, 0);
    link.set_link_name("ab").unwrap();
    b.append_data(&mut link, "hard", &b""[..]).unwrap();
    let mut sym = header(tar::EntryType::Symlink, 0);
    sym.set_link_name("dir/inner").unwrap();
    b.append_data(&mut sym, "sym", &b""[..]).unwrap();
    b.append_data(&mut header(tar::EntryType::Regular, 0), ".wh.gone", &b""[..]).unwrap();
    b.into_inner().unwrap()
}

fn image() -> Vec<u8> {
    let mut out = tempfile::tempfile().unwrap();
    write_layer(&tar()[..], &mut out, &Options::default()).unwrap();
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    out.seek(std::io::SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut bytes).unwrap();
    bytes
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Byte offset of the root's inline directory data, and the root inode's.
fn root_dirents(image: &[u8]) -> (usize, usize) {
    let meta = (u32_at(image, 1024 + 40) as usize) << image[1024 + 12];
    let root = meta + u16::from_le_bytes([image[1024 + 14], image[1024 + 15]]) as usize * 32;
    let format = u16::from_le_bytes([image[root], image[root + 1]]);
    assert_eq!((format >> 1) & 7, 2, "the root's entries are inline");
    let icount = u16::from_le_bytes([image[root + 2], image[root + 3]]) as usize;
    let xattrs = if icount == 0 { 0 } else { 12 + 4 * (icount - 1) };
    (root + if format & 1 == 1 { 64 } else { 32 } + xattrs, root)
}

fn checked(image: &[u8]) -> Result<msb_erofs::CheckSummary, CheckError> {
    check(&mut Cursor::new(image))
}

#[test]
fn the_writers_image_passes() {
    let image = image();
    let summary = checked(&image).unwrap();
    // root, ab (+hard), dir, inner, many, 300 files, sym, gone
    assert_eq!(summary.inodes, 307, "{summary:?}");
    assert_eq!((summary.dirs, summary.files, summary.symlinks, summary.specials), (3, 302, 1, 1));
    assert_eq!(summary.bytes_of_data, 5 + 9000 + 300);
    assert_eq!(summary.xattrs, 1);
}

fn refused(image: &[u8], want: &str) {
    let error = checked(image).expect_err(want).to_string();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(want), "wanted {want:?}: {error}");
}

#[test]
fn damaged_images_are_refused_naming_what_is_wrong() {
    let good = image();
    let (dirents, _) = root_dirents(&good);
    // Root entries: ".", "..", ".wh.gone"? No: "ab", "dir", "gone", "hard", "sym".
    let name_at = |image: &[u8], i: usize| {
        u16::from_le_bytes([image[dirents + 12 * i + 8], image[dirents + 12 * i + 9]]) as usize + dirents
    };

    let mut bad = good.clone();
    bad[1024] ^= 1;
    refused(&bad, "superblock: magic");

    refused(&good[..good.len() / 2], "superblock: ");
    refused(&good[..1100], "too short for a superblock");

    let mut bad = good.clone();
    bad[1024 + 14..1024 + 16].copy_from_slice(&0xfff0u16.to_le_bytes());
    refused(&bad, "inode 65520 (/): nid 65520 is past the image");

    // "ab" renamed "..": a second "..".
    let mut bad = good.clone();
    let at = name_at(&bad, 2);
    bad[at..at + 2].copy_from_slice(b"..");
    refused(&bad, "entry \"..\" after \"..\": names out of order or repeated");

    // "ab" renamed "zz": out of order.
    let mut bad = good.clone();
    let at = name_at(&bad, 2);
    bad[at..at + 2].copy_from_slice(b"zz");
    refused(&bad, "entry \"dir\" after \"zz\"");

    // "ab" pointing far away.
    let mut bad = good.clone();
    bad[dirents + 24..dirents + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
    refused(&bad, "(/ab): nid 1099511627776 is past the image");

    // "dir" pointing at the root: a cycle.
    let mut bad = good.clone();
    let root_nid = bad[dirents..dirents + 8].to_vec();
    bad[dirents + 36..dirents + 44].copy_from_slice(&root_nid);
    refused(&bad, "(/dir): a directory reached twice");

    // "ab" typed as a directory.
    let mut bad = good.clone();
    bad[dirents + 24 + 10] = 2;
    refused(&bad, "(/ab): file type 2 in the directory entry, 1 in the inode");

    // A superblock checksum that does not match.
    let mut bad = good.clone();
    bad[1024 + 8] |= 1;
    refused(&bad, "superblock: checksum");

    // An unknown incompatible feature.
    let mut bad = good.clone();
    bad[1024 + 80] |= 0x2;
    refused(&bad, "unsupported: feature_incompat 0x2");

    // Link count of "ab" (also "hard") set to 1.
    let mut bad = good.clone();
    let meta = u32_at(&bad, 1024 + 40) as u64 * 4096;
    let ab_nid = u64::from_le_bytes(bad[dirents + 24..dirents + 32].try_into().unwrap());
    let ab = (meta + ab_nid * 32) as usize;
    assert_eq!(bad[ab] & 1, 0, "compact");
    bad[ab + 6..ab + 8].copy_from_slice(&1u16.to_le_bytes());
    refused(&bad, "(/ab): link count 1, but 2 found");
}

/// An image with a chunk-based (sparse) file: 64 MiB with data at both ends.
fn sparse_image() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let size = (64u64 << 20).to_string();
    b.append_pax_extensions([
        ("GNU.sparse.major", &b"1"[..]),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"sparse"),
        ("GNU.sparse.realsize", size.as_bytes()),
    ])
    .unwrap();
    let mut data = format!("2\n0\n5000\n{}\n10\n", (64 << 20) - 10).into_bytes();
    data.resize(512, 0);
    data.extend(std::iter::repeat_n(b's', 5010));
    b.append_data(&mut header(tar::EntryType::Regular, data.len() as u64), "GNUSparseFile.0/sparse", &data[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    let mut out = tempfile::tempfile().unwrap();
    write_layer(&tar[..], &mut out, &Options::default()).unwrap();
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    out.seek(std::io::SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_chunk_based_file_passes_and_its_map_is_checked() {
    let good = sparse_image();
    let summary = checked(&good).unwrap();
    assert_eq!((summary.files, summary.bytes_of_data), (1, 64 << 20));
    // Point the first chunk past the image.
    let meta = u32_at(&good, 1024 + 40) as usize * 4096;
    let (dirents, _) = root_dirents(&good);
    let nid = u64::from_le_bytes(good[dirents + 24..dirents + 32].try_into().unwrap()) as usize;
    let inode = meta + nid * 32;
    assert_eq!((good[inode] >> 1) & 7, 4, "chunk-based");
    let map = (inode + if good[inode] & 1 == 1 { 64 } else { 32 }).next_multiple_of(4);
    let mut bad = good.clone();
    assert_eq!(u32_at(&bad, map), 1, "the first chunk is the first data block");
    bad[map..map + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    refused(&bad, "(/sparse): chunk 0: blocks 16777215..");
}

/// A tar index of [`tar`] (512-byte blocks, the tar as device 1), and the
/// tar's size.
fn index_image() -> (Vec<u8>, u64) {
    let tar = tar();
    let mut out = tempfile::tempfile().unwrap();
    let opts = Options { format: Format::TarIndex, device_tag: Some("t".into()), ..Default::default() };
    write_layer(&tar[..], &mut out, &opts).unwrap();
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    out.seek(std::io::SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut bytes).unwrap();
    (bytes, tar.len() as u64)
}

#[test]
fn a_tar_index_passes_with_its_device_and_its_addresses_are_checked() {
    let (good, tar) = index_image();
    let summary = check_with_devices(&mut Cursor::new(&good), &[tar]).unwrap();
    assert_eq!((summary.files, summary.bytes_of_data), (302, 5 + 9000 + 300));
    let error = checked(&good).unwrap_err().to_string();
    assert_eq!(error, "devices: the image needs 1 extra device, 0 given");
    let devices = msb_erofs::devices(&mut Cursor::new(&good)).unwrap();
    assert_eq!((devices[0].mapped_blkaddr, devices[0].block_size), (good.len() as u64 / 512, 512));

    // The device's blocks reaching past the tar; a chunk past the device;
    // the device mapped over the image.
    let error = check_with_devices(&mut Cursor::new(&good), &[tar - 513]).unwrap_err().to_string();
    assert!(error.starts_with("devices: device 1 (tag \"t\") must hold"), "{error}");
    let slot = 1152;
    let mut bad = good.clone();
    bad[slot + 64..slot + 68].copy_from_slice(&1u32.to_le_bytes());
    let error = check_with_devices(&mut Cursor::new(&bad), &[tar]).unwrap_err().to_string();
    assert!(error.contains("past its 1 blocks"), "{error}");
    let mut bad = good.clone();
    bad[slot + 68..slot + 72].copy_from_slice(&3u32.to_le_bytes());
    let error = check_with_devices(&mut Cursor::new(&bad), &[tar]).unwrap_err().to_string();
    assert!(error.starts_with("superblock: "), "{error}");

    // "ab" made flat-plain at a flat address: inside the device's mapped
    // range it is read from the tar; past it, refused.
    let (dirents, _) = root_dirents(&good);
    let meta = (u32_at(&good, 1024 + 40) as usize) << 9;
    let ab = meta + u64::from_le_bytes(good[dirents + 24..dirents + 32].try_into().unwrap()) as usize * 32;
    assert_eq!(good[ab] & 1, 0, "compact");
    assert_eq!((good[ab] >> 1) & 7, 4, "chunk-based");
    let mapped = good.len() as u32 / 512;
    let device_blocks = u32_at(&good, slot + 64);
    let flat = |blkaddr: u32| {
        let mut image = good.clone();
        image[ab..ab + 2].copy_from_slice(&0u16.to_le_bytes());
        image[ab + 16..ab + 20].copy_from_slice(&blkaddr.to_le_bytes());
        image
    };
    check_with_devices(&mut Cursor::new(flat(mapped + 1)), &[tar]).unwrap();
    let error = check_with_devices(&mut Cursor::new(flat(mapped + device_blocks)), &[tar]).unwrap_err();
    assert!(error.to_string().contains("(/ab): data: blocks"), "{error}");
    // "dir" pointing into the device: not read there.
    let dir = meta + u64::from_le_bytes(good[dirents + 36..dirents + 44].try_into().unwrap()) as usize * 32;
    let mut bad = good.clone();
    bad[dir..dir + 2].copy_from_slice(&0u16.to_le_bytes());
    bad[dir + 16..dir + 20].copy_from_slice(&(mapped + 1).to_le_bytes());
    let error = check_with_devices(&mut Cursor::new(&bad), &[tar]).unwrap_err();
    assert!(error.to_string().contains("on extra device 1 (only regular files' data is read there)"), "{error}");
}

#[test]
fn random_damage_never_panics() {
    for good in [image(), sparse_image()] {
        random_damage(good, &[]);
    }
    let (index, tar) = index_image();
    random_damage(index, &[tar]);
}

fn random_damage(good: Vec<u8>, devices: &[u64]) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let meta = (u32_at(&good, 1024 + 40) as usize) << good[1024 + 12];
    let (mut refused, mut passed) = (0, 0);
    for round in 0..3000 {
        let mut bad = good.clone();
        // Mostly the superblock and the metadata area, where damage matters.
        for _ in 0..(next() % 6 + 1) {
            let i = match round % 3 {
                0 => 1024 + (next() % 128) as usize,
                1 => meta + (next() % (good.len() - meta) as u64) as usize,
                _ => (next() % good.len() as u64) as usize,
            };
            bad[i] = next() as u8;
        }
        if next() % 10 == 0 {
            bad.truncate((next() % good.len() as u64) as usize);
        }
        match check_with_devices(&mut Cursor::new(&bad), devices) {
            Ok(_) => passed += 1,
            Err(e) => {
                assert!(!e.to_string().contains('\n'), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 1000, "{refused} refused, {passed} passed");
}

/// `mkfs.erofs` images of a small tree, uncompressed: read, or refused as
/// unsupported, never a panic or another error.
#[test]
fn mkfs_erofs_images_pass_or_are_unsupported() {
    let dir = tempfile::Builder::new().prefix("erofs-check-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("small"), b"small").unwrap();
    std::fs::write(src.join("sub/big"), vec![5u8; 70_000]).unwrap();
    std::fs::write(src.join("sub/deeper/tail"), vec![6u8; 4096 * 3 + 100]).unwrap();
    std::fs::hard_link(src.join("small"), src.join("sub/hard")).unwrap();
    std::os::unix::fs::symlink("../small", src.join("sub/link")).unwrap();
    for i in 0..400 {
        std::fs::write(src.join(format!("sub/f{i:03}-{}", "n".repeat(i % 40))), b"").unwrap();
    }
    run(Command::new("mkfifo").arg(src.join("fifo")));
    let set = "import os,sys; os.setxattr(sys.argv[1], 'user.note', b'hello')";
    run(Command::new("python3").args(["-c", set]).arg(src.join("small")));
    let mut results = Vec::new();
    for (label, args) in [
        ("default", &[][..]),
        ("noinline", &["-Enoinline_data"][..]),
        ("chunked", &["--chunksize=8192"][..]),
        ("no-xattrs", &["-x", "-1"][..]),
    ] {
        let image = dir.path().join(format!("{label}.erofs"));
        run(Command::new("mkfs.erofs").args(args).arg(&image).arg(&src));
        let summary = check(&mut std::fs::File::open(&image).unwrap());
        match &summary {
            Ok(s) => assert!(s.files == 403 && s.dirs == 3 && s.symlinks == 1, "{label}: {s:?}"),
            Err(CheckError::Unsupported(_)) => {}
            Err(e) => panic!("{label}: {e}"),
        }
        results.push(format!("{label}: {summary:?}"));
    }
    eprintln!("{}", results.join("\n"));
    assert!(results[0].contains("Ok"), "a plain mkfs.erofs image is read: {results:?}");
    // 512-byte blocks with a superblock checksum (over 512 bytes from byte
    // 1024, as the kernel computes it), and an index of a tar
    // (`--tar=i`: chunk indexes naming the tar as device 1).
    let image = dir.path().join("512.erofs");
    run(Command::new("mkfs.erofs").arg("-b512").arg(&image).arg(&src));
    let summary = check(&mut std::fs::File::open(&image).unwrap()).unwrap();
    assert!(summary.files == 403 && summary.dirs == 3, "{summary:?}");
    let tar = dir.path().join("src.tar");
    run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&src).arg("."));
    let image = dir.path().join("index.erofs");
    run(Command::new("mkfs.erofs").args(["--tar=i", "--quiet"]).arg(&image).arg(&tar));
    let tar_size = std::fs::metadata(&tar).unwrap().len();
    let summary = check_with_devices(&mut std::fs::File::open(&image).unwrap(), &[tar_size]).unwrap();
    assert!(summary.files == 403 && summary.dirs == 3, "{summary:?}");
    let error = check(&mut std::fs::File::open(&image).unwrap()).unwrap_err();
    assert!(matches!(error, CheckError::Devices(_)), "{error}");
    // Compressed: refused as unsupported, by name.
    let image = dir.path().join("lz4.erofs");
    std::fs::write(src.join("compressible"), "abc\n".repeat(50_000)).unwrap();
    run(Command::new("mkfs.erofs").arg("-zlz4").arg(&image).arg(&src));
    let error = check(&mut std::fs::File::open(&image).unwrap()).unwrap_err();
    assert!(matches!(error, CheckError::Unsupported(_)), "{error}");
    assert!(error.to_string().starts_with("unsupported: "), "{error}");
}
