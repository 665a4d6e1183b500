//! The writer against layer tars built by python's tarfile and GNU tar,
//! checked three ways: `fsck.erofs`, the mounted (or extracted) tree
//! compared entry by entry with the tar, and an overlayfs of two layers.

use msb_erofs::{Options, write_layer};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

mod common;
use common::{long_names_tree, run, scratch};

/// The tars of `fixtures/make_layers.py`, made once per test binary.
fn layers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Layers of earlier runs whose process is gone.
        for old in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = old.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("erofs-layers-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        let dir = tmp.join(format!("erofs-layers-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_layers.py");
        run(Command::new("python3").arg(script).arg(&dir));
        dir
    })
}

fn convert(tar: &Path, out: &Path) -> Result<msb_erofs::Summary, msb_erofs::Error> {
    write_layer(File::open(tar).unwrap(), &mut File::create(out).unwrap(), &Options::default())
}

/// msb's own checker accepts `image`.
fn self_check(image: &Path) {
    let summary = msb_erofs::check(&mut File::open(image).unwrap());
    summary.unwrap_or_else(|e| panic!("{}: {e}", image.display()));
}

/// A read-only mount, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], target: &Path) -> Option<Mount> {
        let ok = Command::new("mount").args(args).arg(target).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        ok.then(|| Mount(target.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// fsck, then compare the tree with the tar (mounted if the kernel lets
/// us, with xattrs; else extracted by fsck.erofs, without).
fn check(tar: &Path) {
    let dir = scratch();
    let image = dir.path().join("layer.erofs");
    convert(tar, &image).unwrap_or_else(|e| panic!("{}: {e}", tar.display()));
    run(Command::new("fsck.erofs").arg(&image));
    self_check(&image);
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let image_arg = image.to_str().unwrap();
    let mount = Mount::new(&["-t", "erofs", "-o", "loop,ro", image_arg], &tree);
    if mount.is_none() {
        eprintln!("note: mounting EROFS is not permitted here; comparing an fsck.erofs extraction (no xattrs)");
        std::fs::remove_dir(&tree).unwrap();
        run(Command::new("fsck.erofs").arg(format!("--extract={}", tree.display())).arg(&image));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/compare_tree.py");
    run(Command::new("python3").arg(script).arg(tar).arg(&tree).env("XATTRS", if mount.is_some() { "1" } else { "0" }));
}

#[test]
fn every_entry_type_and_attribute_survives() {
    check(&layers().join("everything.tar"));
}

#[test]
fn inline_tails_at_every_offset() {
    check(&layers().join("mix.tar"));
}

#[test]
fn gnu_format_numbers_and_long_names() {
    check(&layers().join("gnu-numbers.tar"));
}

#[test]
fn an_empty_layer_is_an_empty_root() {
    let dir = scratch();
    let tar = dir.path().join("empty.tar");
    std::fs::write(&tar, [0u8; 10240]).unwrap();
    check(&tar);
}

#[test]
fn a_directory_of_ten_thousand_entries() {
    check(&layers().join("bigdir.tar"));
}

#[test]
fn gnu_tar_layers_with_long_names() {
    let dir = scratch();
    let src = dir.path().join("src");
    long_names_tree(&src);
    for format in ["gnu", "posix"] {
        let tar = dir.path().join(format!("{format}.tar"));
        run(Command::new("tar").arg(format!("--format={format}")).arg("-cf").arg(&tar).arg("-C").arg(&src).arg("."));
        check(&tar);
    }
}

/// `layers` (lowest first) converted, mounted, and stacked with overlayfs;
/// `then` sees the merged directory. Fails when a mount is not permitted.
fn overlay(layers: &[&str], then: impl FnOnce(&Path)) {
    let dir = scratch();
    let mut mounts = Vec::new();
    let mut lowers = Vec::new();
    for (i, name) in layers.iter().enumerate() {
        let image = dir.path().join(format!("{i}.erofs"));
        convert(&self::layers().join(name), &image).unwrap_or_else(|e| panic!("{name}: {e}"));
        run(Command::new("fsck.erofs").arg(&image));
        self_check(&image);
        let target = dir.path().join(format!("{i}"));
        std::fs::create_dir(&target).unwrap();
        let mount = Mount::new(&["-t", "erofs", "-o", "loop,ro", image.to_str().unwrap()], &target);
        mounts.push(mount.expect("mount -t erofs -o loop (needs root and the erofs module)"));
        lowers.push(target.display().to_string());
    }
    let merged = dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    lowers.reverse();
    let lowerdir = format!("lowerdir={}", lowers.join(":"));
    let overlay = Mount::new(&["-t", "overlay", "overlay", "-o", &lowerdir], &merged);
    let overlay = overlay.expect("mount -t overlay (needs root and overlayfs)");
    then(&merged);
    drop(overlay);
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn whiteouts_and_opaque_dirs_work_in_overlayfs() {
    overlay(&["lower.tar", "upper.tar"], |merged| {
        let read = |p: &str| std::fs::read_to_string(merged.join(p)).ok();
        assert_eq!(read("a/keep").as_deref(), Some("keep"));
        assert_eq!(read("a/gone"), None, "the whiteout hides the lower file");
        assert!(!merged.join("a/gone").exists());
        assert_eq!(read("opq/new").as_deref(), Some("new"));
        assert_eq!(read("opq/old"), None, "the opaque directory hides lower children");
        assert_eq!(read("same").as_deref(), Some("upper"));
        assert_eq!(names(&merged.join("opq")), ["new"]);
    });
}

#[test]
fn a_whiteout_and_a_re_creation_in_the_same_layer() {
    // Whichever comes first, the layer's own entries stay: the directory
    // hides everything below it, the files replace the lower entries.
    for upper in ["same-wh-first.tar", "same-wh-last.tar"] {
        overlay(&["same-lower.tar", upper], |merged| {
            let read = |p: &str| std::fs::read_to_string(merged.join(p)).ok();
            assert_eq!(names(&merged.join("d")), ["new"], "{upper}");
            assert_eq!(read("d/new").as_deref(), Some("new"), "{upper}");
            assert!(!merged.join("d/sub").exists(), "{upper}");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(merged.join("d")).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o750, "{upper}: the directory's own metadata");
            assert_eq!(names(&merged.join("e")), ["new"], "{upper}: implied directory over a whiteout");
            assert_eq!(read("f").as_deref(), Some("upper"), "{upper}");
            assert_eq!(read("g").as_deref(), Some("file over a directory"), "{upper}");
            assert_eq!(names(merged), ["d", "e", "f", "g"], "{upper}");
        });
    }
}

#[test]
fn an_opaque_root_is_kept_and_overlayfs_ignores_it() {
    // As under docker's overlay2 and containerd's overlayfs snapshotter:
    // the marker is on the layer's root, which overlayfs does not hide
    // lower layers for.
    overlay(&["same-lower.tar", "root-opaque.tar"], |merged| {
        assert_eq!(names(merged), ["d", "e", "f", "g", "upperfile"]);
    });
}

#[test]
fn refusals_are_clear() {
    let error = convert(&layers().join("dotdot.tar"), &scratch().path().join("x.erofs")).unwrap_err().to_string();
    assert_eq!(error, "../evil: path climbs out of the layer with ..");

    for (name, expected) in [
        ("long-component", "a path component is longer than 255 bytes"),
        ("empty-whiteout", "d/.wh.: whiteout without a name"),
        ("xattr-namespace", "f: xattr \"system.nfs4_acl\": unsupported namespace"),
        ("big-major", "c: device 4096:0"),
        ("dangling-hardlink", "h: hardlink target \"nowhere\" does not exist"),
        ("file-as-parent", "f/g: a parent of this path is not a directory"),
    ] {
        let error = convert(&layers().join(format!("bad-{name}.tar")), &scratch().path().join("x.erofs")).unwrap_err();
        assert!(error.path().is_some(), "{name}: {error} names no entry");
        let error = error.to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }

    // GNU's PAX sparse format 0.x.
    let dir = scratch();
    let sparse = sparse_file(dir.path());
    let tar = dir.path().join("sparse0.tar");
    run(Command::new("tar")
        .args(["--format=posix", "--sparse-version=0.1", "-S", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg(sparse));
    let error = convert(&tar, &dir.path().join("s.erofs")).unwrap_err().to_string();
    assert!(error.contains("sparse.img") && error.contains("sparse file in GNU PAX format 0.x"), "{error}");

    // A tar cut short inside a file.
    let bytes = std::fs::read(layers().join("lower.tar")).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..700]).unwrap();
    let error = convert(&cut, &dir.path().join("c.erofs")).unwrap_err().to_string();
    assert!(error.contains("a/keep") || error.contains("truncated") || error.contains("unexpected"), "{error}");
}

/// A file of 10 MiB and a partial block, with 4 bytes of data at 5 MiB,
/// 5000 at 6 MiB, and a hole at the end.
fn sparse_file(dir: &Path) -> &'static str {
    let file = File::create(dir.join("sparse.img")).unwrap();
    file.set_len((10 << 20) + 1234).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"data", 5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 5000], 6 << 20).unwrap();
    "sparse.img"
}

#[test]
fn gnu_tar_sparse_files_are_expanded() {
    let dir = scratch();
    let name = sparse_file(dir.path());
    for (label, args) in [("gnu", &["--format=gnu"][..]), ("pax-1.0", &["--format=posix", "--sparse-version=1.0"][..])]
    {
        let tar = dir.path().join(format!("{label}.tar"));
        run(Command::new("tar").args(args).args(["-S", "-cf"]).arg(&tar).arg("-C").arg(dir.path()).arg(name));
        check(&tar);
    }
}

#[test]
fn output_is_deterministic() {
    for layer in ["everything.tar", "shared-xattrs.tar"] {
        let dir = scratch();
        let (a, b) = (dir.path().join("a.erofs"), dir.path().join("b.erofs"));
        convert(&layers().join(layer), &a).unwrap();
        convert(&layers().join(layer), &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{layer}");
    }
}

#[test]
fn shared_xattrs_are_stored_once() {
    let tar = layers().join("shared-xattrs.tar");
    check(&tar);
    // dump.erofs sees the shared area, and an inode listing shared ids: the
    // capability and the ACL are 4 bytes each, only `user.id` is inline.
    let dir = scratch();
    let image = dir.path().join("layer.erofs");
    convert(&tar, &image).unwrap();
    let sb = run(Command::new("dump.erofs").arg("-s").arg(&image));
    let start = sb
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem shared xattr metadata start block:"))
        .map(|v| v.trim().to_string());
    assert!(start.as_deref().is_some_and(|b| b != "0"), "{sb}");
    let inode = run(Command::new("dump.erofs").arg("--path=/bin/tool-01").arg(&image));
    assert!(inode.contains("Xattr size: 32"), "12-byte header, 2 shared ids, user.id=file-1 inline:\n{inode}");
}

/// Makes a sparse file of `size` bytes with `marks` written into it, tars
/// it with GNU tar (`args`), converts it, and checks it: converted fast
/// into an image of at most `max_image` bytes, `fsck.erofs`, then mounted:
/// the size, the marks, and zeros in `holes` (4 KiB read at each).
fn sparse_roundtrip(size: u64, marks: &[(u64, &[u8])], holes: &[u64], max_image: u64) {
    use std::os::unix::fs::FileExt;
    let dir = scratch();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let file = File::create(src.join("big")).unwrap();
    file.set_len(size).unwrap();
    for &(at, bytes) in marks {
        file.write_all_at(bytes, at).unwrap();
    }
    drop(file);
    // A file after the sparse one, read back too.
    std::fs::write(src.join("after"), b"after the sparse file").unwrap();
    let mut images = Vec::new();
    for (label, args) in [("gnu", &["--format=gnu"][..]), ("pax-1.0", &["--format=posix", "--sparse-version=1.0"][..])]
    {
        let tar = dir.path().join(format!("{label}.tar"));
        run(Command::new("tar").args(args).args(["-S", "-cf"]).arg(&tar).arg("-C").arg(&src).args(["big", "after"]));
        let image = dir.path().join(format!("{label}.erofs"));
        let t = std::time::Instant::now();
        let summary = convert(&tar, &image).unwrap_or_else(|e| panic!("{label}: {e}"));
        let took = t.elapsed();
        eprintln!("sparse {size} bytes ({label}): converted in {took:?} into {} bytes", summary.bytes);
        assert!(took < std::time::Duration::from_secs(5), "{label}: {took:?}");
        assert_eq!(summary.file_bytes, size + 21, "the sparse file's apparent size, and `after`");
        assert!(summary.bytes <= max_image, "{label}: image of {} bytes", summary.bytes);
        run(Command::new("fsck.erofs").arg(&image));
        self_check(&image);
        let again = dir.path().join(format!("{label}-again.erofs"));
        convert(&tar, &again).unwrap();
        assert_eq!(std::fs::read(&image).unwrap(), std::fs::read(&again).unwrap(), "{label}: deterministic");
        images.push(image);
    }
    for image in &images {
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let Some(mount) = Mount::new(&["-t", "erofs", "-o", "loop,ro", image.to_str().unwrap()], &tree) else {
            return eprintln!("note: mounting EROFS is not permitted here; the sparse file was only checked by fsck");
        };
        assert_eq!(std::fs::read(tree.join("after")).unwrap(), b"after the sparse file");
        let big = File::open(tree.join("big")).unwrap();
        assert_eq!(big.metadata().unwrap().len(), size);
        for &(at, bytes) in marks {
            let mut got = vec![0u8; bytes.len() + 2];
            let start = at.saturating_sub(1);
            let n = big.read_at(&mut got, start).unwrap();
            let mut want = vec![0u8; got.len()];
            want[(at - start) as usize..][..bytes.len()].copy_from_slice(bytes);
            want.truncate((size - start) as usize);
            assert_eq!(&got[..n], &want[..], "{}: at {at}", image.display());
        }
        for &at in holes {
            let mut hole = vec![1u8; 4096];
            let n = big.read_at(&mut hole, at).unwrap();
            assert!(n > 0 && hole[..n].iter().all(|&b| b == 0), "{}: hole at {at}", image.display());
        }
        drop(big);
        drop(mount);
    }
}

#[test]
fn a_sparse_file_over_4_gib() {
    // 4300 MiB and a partial block, a few bytes here and there, including
    // across and past 4 GiB.
    let size: u64 = (4300 << 20) + 1234;
    sparse_roundtrip(
        size,
        &[
            (0, b"start"),
            ((1 << 20) + 17, b"one MiB"),
            ((2 << 30) - 3, b"2 GiB"),
            ((4 << 30) - 4, b"across 4 GiB"),
            ((4 << 30) + 123_456_789, b"past 4 GiB"),
            (size - 4, b"end!"),
        ],
        &[3 << 30, 5000, size - 5000],
        8 << 20,
    );
}

#[test]
fn a_1_tib_sparse_file_is_stored_sparse() {
    // Chunks of 1 MiB here (2^20 of them): data across chunk boundaries,
    // at a chunk's start and end, and a last block that is not whole.
    let size: u64 = (1 << 40) - 1000;
    let mib = 1u64 << 20;
    sparse_roundtrip(
        size,
        &[
            (0, b"start"),
            (7 * mib - 3, b"across a chunk"),
            (9 * mib, b"chunk start"),
            (10 * mib - 3, b"end"),
            (300 << 30, &[0x5a; 10_000]),
            (size - 4, b"end!"),
        ],
        &[mib, 8 * mib, 10 * mib, 500 << 30, size - 5000],
        16 << 20,
    );
}

#[test]
fn sparse_files_at_block_and_chunk_edges() {
    // Small enough for 4 KiB chunks: data ending exactly at a block,
    // starting exactly at one, a tail of 1234 bytes.
    // Also 60 more segments, so old GNU headers need 3 extension blocks.
    let size: u64 = (10 << 20) + 1234;
    let tail = [3u8; 1234];
    let mut marks: Vec<(u64, &[u8])> =
        vec![(4096 - 5, b"block"), (8192, b"next"), ((5 << 20) - 1, b"x"), (size - 1234, &tail)];
    marks.extend((0..60).map(|i| ((6 << 20) + i * 65536, &b"many"[..])));
    sparse_roundtrip(size, &marks, &[4096 * 5, 1 << 20, size - 6000], 1 << 20);
}
