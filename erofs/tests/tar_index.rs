//! Tar-index images (`Format::TarIndex`): 512-byte blocks, metadata only,
//! regular files' data read from the layer tar as the image's one extra
//! device. Each image is checked by `fsck.erofs --device=TAR` (and its
//! extraction compared with the tar), by `msb_erofs::check_with_devices`,
//! mounted with the tar on a loop device (`device=`) and as the image and
//! the tar concatenated (containerd's layout), each compared entry by entry
//! with the tar; two index layers under overlayfs show whiteouts applied.
//! Needs erofs-utils 1.6+ (`tests/tools/erofs-utils.sh` builds 1.8.6; 1.5
//! cannot read 512-byte blocks), root and the erofs module.

use msb_erofs::{CheckError, Device, Format, Options, Summary, write_layer};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

mod common;
use common::{long_names_tree, run, scratch};

const TAG: &str = "sha256-test-layer";

/// erofs-utils new enough for 512-byte blocks, checked once.
fn erofs_utils() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let version = run(Command::new("fsck.erofs").arg("--version"));
        let numbers: Vec<u32> = version
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or("0")
            .split(['.', '-'])
            .map_while(|n| n.parse().ok())
            .collect();
        assert!(
            numbers.as_slice() >= &[1, 6][..],
            "fsck.erofs {version:?} cannot read 512-byte blocks: put erofs-utils 1.8.6 first in PATH \
             (PATH=\"$(tests/tools/erofs-utils.sh):$PATH\")"
        );
    });
}

/// A tempdir of tars made by one of the fixture scripts, once per binary.
fn fixtures(script: &str) -> PathBuf {
    let dir = scratch().keep();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(script);
    run(Command::new("python3").arg(script).arg(&dir));
    dir
}

fn layers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fixtures("make_layers.py"))
}

fn hostile() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fixtures("make_hostile.py"))
}

fn convert(tar: &Path, image: &Path, format: Format) -> Result<Summary, msb_erofs::Error> {
    let opts = Options { format, device_tag: Some(TAG.into()), ..Default::default() };
    write_layer(File::open(tar).unwrap(), &mut File::create(image).unwrap(), &opts)
}

fn index(tar: &Path, image: &Path) -> Summary {
    convert(tar, image, Format::TarIndex).unwrap_or_else(|e| panic!("{}: {e}", tar.display()))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The device table names the tar, `fsck.erofs --device` and
/// `check_with_devices` accept the image, `check` wants the device.
fn verify(tar: &Path, image: &Path, summary: &Summary) {
    erofs_utils();
    let bytes = len(image);
    assert_eq!(summary.bytes, bytes);
    assert_eq!(bytes % 512, 0, "{}: whole blocks, so the tar can follow", image.display());
    assert!(summary.device_blocks * 512 <= len(tar), "{}", tar.display());
    let devices = msb_erofs::devices(&mut File::open(image).unwrap()).unwrap();
    let want = Device { tag: TAG.into(), blocks: summary.device_blocks, mapped_blkaddr: bytes / 512, block_size: 512 };
    assert_eq!(devices, [want], "{}", tar.display());
    run(Command::new("fsck.erofs").arg(format!("--device={}", tar.display())).arg(image));
    let checked = msb_erofs::check_with_devices(&mut File::open(image).unwrap(), &[len(tar)]);
    checked.unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let error = msb_erofs::check(&mut File::open(image).unwrap()).unwrap_err();
    assert!(matches!(error, CheckError::Devices(_)), "{error}");
    assert_eq!(error.to_string(), "devices: the image needs 1 extra device, 0 given");
}

/// A read-only mount, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], target: &Path) -> Mount {
        let out = Command::new("mount").args(args).arg(target).stderr(Stdio::piped()).output().unwrap();
        assert!(
            out.status.success(),
            "mount {args:?} (needs root and the erofs module): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A read-only loop device on a file, detached on drop.
struct Loop(String);

impl Loop {
    fn new(file: &Path) -> Loop {
        let out = run(Command::new("losetup").args(["-r", "-f", "--show"]).arg(file));
        Loop(out.trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// `tests/tools/compare_tree.py`: a kernel mount against the tar, xattrs
/// included.
fn compare(tar: &Path, tree: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/compare_tree.py");
    run(Command::new("python3").arg(script).arg(tar).arg(tree).env("XATTRS", "1"));
}

/// Converts `tar` into a tar index and compares what each reader sees
/// with the tar: a kernel mount with the tar as a device, a kernel mount
/// of the image and tar in one file; and an `fsck.erofs --extract` with
/// the same extraction of the full image (erofs-utils 1.8.6 extracts
/// neither a sparse file's trailing hole nor mtimes past 2^32 s: compared
/// with the tar, its own limits would show).
fn roundtrip(tar: &Path) -> Summary {
    roundtrip_with(tar, true)
}

/// [`roundtrip`]; the mounts are also compared with a mount of the full
/// image, and with the tar by `compare_tree.py` when `with_tar` (which
/// does not model a whiteout and an entry at one path in one layer).
fn roundtrip_with(tar: &Path, with_tar: bool) -> Summary {
    let dir = scratch();
    let image = dir.path().join("layer.erofs");
    let summary = index(tar, &image);
    verify(tar, &image, &summary);

    let full = dir.path().join("full.erofs");
    convert(tar, &full, Format::Full).unwrap();
    let (extracted, extracted_full) = (dir.path().join("extracted"), dir.path().join("extracted-full"));
    let device = format!("--device={}", tar.display());
    run(Command::new("fsck.erofs").arg(&device).arg(format!("--extract={}", extracted.display())).arg(&image));
    run(Command::new("fsck.erofs").arg(format!("--extract={}", extracted_full.display())).arg(&full));
    same_listing(&extracted, &extracted_full, &format!("{}: fsck.erofs --extract", tar.display()));

    let (mounted, mounted_full) = (dir.path().join("mounted"), dir.path().join("mounted-full"));
    std::fs::create_dir(&mounted).unwrap();
    std::fs::create_dir(&mounted_full).unwrap();
    let full_mount = Mount::new(&["-t", "erofs", "-o", "loop,ro", full.to_str().unwrap()], &mounted_full);
    let tar_loop = Loop::new(tar);
    let options = format!("loop,ro,device={}", tar_loop.0);
    let mount = Mount::new(&["-t", "erofs", "-o", &options, image.to_str().unwrap()], &mounted);
    if with_tar {
        compare(tar, &mounted);
    }
    same_listing(&mounted, &mounted_full, &format!("{}: mounted with device=", tar.display()));
    drop(mount);
    drop(tar_loop);

    let single = dir.path().join("single.erofs");
    let mut joined = std::fs::read(&image).unwrap();
    joined.extend(std::fs::read(tar).unwrap());
    std::fs::write(&single, joined).unwrap();
    let mount = Mount::new(&["-t", "erofs", "-o", "loop,ro", single.to_str().unwrap()], &mounted);
    if with_tar {
        compare(tar, &mounted);
    }
    same_listing(&mounted, &mounted_full, &format!("{}: image and tar in one file", tar.display()));
    drop(mount);
    drop(full_mount);
    summary
}

/// The tars of `make_layers.py` that convert (the others are refusals).
fn good_layers() -> Vec<PathBuf> {
    let mut tars: Vec<PathBuf> = std::fs::read_dir(layers())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tar") && !name.starts_with("bad-") && name != "dotdot.tar"
        })
        .collect();
    tars.sort();
    assert!(tars.len() >= 10, "{tars:?}");
    tars
}

#[test]
fn fixture_layers_read_through_the_tar() {
    for tar in good_layers() {
        let name = tar.file_name().unwrap().to_string_lossy().into_owned();
        let summary = roundtrip_with(&tar, !name.starts_with("same-wh-"));
        eprintln!("{}: {} bytes of index, {} tar blocks", tar.display(), summary.bytes, summary.device_blocks);
    }
}

#[test]
fn an_empty_layer() {
    let dir = scratch();
    let tar = dir.path().join("empty.tar");
    std::fs::write(&tar, [0u8; 10240]).unwrap();
    let summary = roundtrip(&tar);
    assert_eq!(summary.device_blocks, 1, "read up to the first zero block");
}

#[test]
fn gnu_tar_long_names_hardlinks_and_sparse_files() {
    let dir = scratch();
    let src = dir.path().join("src");
    long_names_tree(&src);
    // Sparse: 10 MiB with a little data, stored in the image's own blocks.
    let sparse = File::create(src.join("sparse.img")).unwrap();
    sparse.set_len((10 << 20) + 1234).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data", 5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[7u8; 5000], 6 << 20).unwrap();
    drop(sparse);
    for (label, args) in [
        ("gnu", &["--format=gnu", "-S"][..]),
        ("posix", &["--format=posix"][..]),
        ("pax-sparse", &["--format=posix", "--sparse-version=1.0", "-S"][..]),
    ] {
        let tar = dir.path().join(format!("{label}.tar"));
        run(Command::new("tar").args(args).arg("-cf").arg(&tar).arg("-C").arg(&src).arg("."));
        let summary = roundtrip(&tar);
        let sparse_in_image = args.contains(&"-S");
        assert_eq!(summary.bytes > 8 << 10, sparse_in_image, "{label}: {} bytes", summary.bytes);
    }
}

#[test]
fn refusals_are_those_of_full_mode() {
    let dir = scratch();
    let mut tars: Vec<PathBuf> = std::fs::read_dir(layers())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-"))
        .collect();
    tars.push(layers().join("dotdot.tar"));
    // Cut short inside a file's data.
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &std::fs::read(layers().join("lower.tar")).unwrap()[..1700]).unwrap();
    tars.push(cut);
    for tar in tars {
        let full = convert(&tar, &dir.path().join("full.erofs"), Format::Full).unwrap_err().to_string();
        let index = convert(&tar, &dir.path().join("index.erofs"), Format::TarIndex).unwrap_err().to_string();
        assert_eq!(index, full, "{}", tar.display());
    }
}

/// Every path under a directory with its type, mode, owner, size (not of
/// directories: their blocks differ by block size), mtime, content
/// digest, link target, device numbers, link count and xattrs, one line
/// each, sorted.
const LISTING: &str = r#"
import hashlib, os, stat, sys
root = sys.argv[1]
paths = [root]
for dirpath, dirs, files in os.walk(root):
    paths += [os.path.join(dirpath, n) for n in dirs + files]
out = []
for p in paths:
        st = os.lstat(p)
        is_dir = stat.S_ISDIR(st.st_mode)
        line = [os.path.relpath(p, root), oct(st.st_mode), st.st_uid, st.st_gid, "" if is_dir else st.st_size,
                st.st_mtime_ns, st.st_nlink, os.major(st.st_rdev), os.minor(st.st_rdev)]
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            line.append(h.hexdigest())
        if stat.S_ISLNK(st.st_mode):
            line.append(os.readlink(p))
        for x in sorted(os.listxattr(p, follow_symlinks=False)):
            line.append(x + "=" + os.getxattr(p, x, follow_symlinks=False).hex())
        out.append(" ".join(map(str, line)))
print(chr(10).join(sorted(out)))
"#;

fn listing(root: &Path) -> String {
    run(Command::new("python3").args(["-c", LISTING]).arg(root))
}

/// Asserts two listings are equal, showing the first lines that differ.
fn same_listing(got: &Path, want: &Path, what: &str) {
    let (got, want) = (listing(got), listing(want));
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("  {a}\n  expected {b}"))
            .collect();
        panic!("{what}: {} lines, expected {}:\n{}", got.lines().count(), want.lines().count(), diff.join("\n"));
    }
}

#[test]
fn hostile_tars_give_the_same_result_in_both_formats() {
    // Each image the full format makes, the index makes too, with the same
    // notes; mounted, the two show the same tree.
    let dir = scratch();
    let mut names: Vec<PathBuf> = std::fs::read_dir(hostile()).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let (full_at, index_at) = (dir.path().join("full"), dir.path().join("index"));
    std::fs::create_dir(&full_at).unwrap();
    std::fs::create_dir(&index_at).unwrap();
    let mut images = 0;
    for tar in names {
        let full_image = dir.path().join("full.erofs");
        let image = dir.path().join("index.erofs");
        match (convert(&tar, &full_image, Format::Full), convert(&tar, &image, Format::TarIndex)) {
            (Err(full), Err(index)) => assert_eq!(index.to_string(), full.to_string(), "{}", tar.display()),
            (Ok(full), Ok(index)) => {
                assert_eq!(index.notes, full.notes, "{}", tar.display());
                assert_eq!((index.inodes, index.file_bytes), (full.inodes, full.file_bytes), "{}", tar.display());
                verify(&tar, &image, &index);
                let full_mount = Mount::new(&["-t", "erofs", "-o", "loop,ro", full_image.to_str().unwrap()], &full_at);
                let device = Loop::new(&tar);
                let options = format!("loop,ro,device={}", device.0);
                let index_mount = Mount::new(&["-t", "erofs", "-o", &options, image.to_str().unwrap()], &index_at);
                same_listing(&index_at, &full_at, &tar.display().to_string());
                drop((index_mount, full_mount));
                drop(device);
                images += 1;
            }
            (full, index) => panic!("{}: full {full:?}, index {index:?}", tar.display()),
        }
    }
    assert!(images >= 20, "{images}");
}

#[test]
fn whiteouts_apply_over_index_layers_in_overlayfs() {
    let dir = scratch();
    let mut lowers = Vec::new();
    let mut held = Vec::new();
    for (i, name) in ["lower.tar", "upper.tar"].iter().enumerate() {
        let tar = layers().join(name);
        let image = dir.path().join(format!("{i}.erofs"));
        let summary = index(&tar, &image);
        verify(&tar, &image, &summary);
        let target = dir.path().join(format!("{i}"));
        std::fs::create_dir(&target).unwrap();
        let device = Loop::new(&tar);
        let options = format!("loop,ro,device={}", device.0);
        let mount = Mount::new(&["-t", "erofs", "-o", &options, image.to_str().unwrap()], &target);
        lowers.push(target.display().to_string());
        held.push((mount, device));
    }
    let merged = dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    lowers.reverse();
    let overlay = Mount::new(&["-t", "overlay", "overlay", "-o", &format!("lowerdir={}", lowers.join(":"))], &merged);
    let read = |p: &str| std::fs::read_to_string(merged.join(p)).ok();
    assert_eq!(read("a/keep").as_deref(), Some("keep"));
    assert_eq!(read("a/gone"), None, "the whiteout hides the lower file");
    assert_eq!(read("opq/new").as_deref(), Some("new"));
    assert_eq!(read("opq/old"), None, "the opaque directory hides lower children");
    assert_eq!(read("same").as_deref(), Some("upper"));
    drop(overlay);
    // Mounts before their loop devices.
    for (mount, device) in held.into_iter().rev() {
        drop(mount);
        drop(device);
    }
}

#[test]
fn the_device_table_and_its_checks() {
    let dir = scratch();
    let tar = layers().join("everything.tar");
    let image = dir.path().join("layer.erofs");
    let summary = index(&tar, &image);
    let open = || File::open(&image).unwrap();
    // The tar cut short: its blocks are missing.
    let short = summary.device_blocks * 512 - 1;
    let error = msb_erofs::check_with_devices(&mut open(), &[short]).unwrap_err().to_string();
    let want = format!(
        "devices: device 1 (tag \"{TAG}\") must hold {} blocks of 512 bytes ({} bytes), but has {short} bytes",
        summary.device_blocks,
        short + 1
    );
    assert_eq!(error, want);
    let error = msb_erofs::check_with_devices(&mut open(), &[len(&tar), 1]).unwrap_err().to_string();
    assert_eq!(error, "devices: the image needs 1 extra device, 2 given");

    // Tags: 64 bytes at most, read back as written; none in a full image.
    let write = |format, tag: &str| {
        let opts = Options { format, device_tag: Some(tag.into()), ..Default::default() };
        let out = dir.path().join("tagged.erofs");
        write_layer(File::open(&tar).unwrap(), &mut File::create(&out).unwrap(), &opts).map(|_| out)
    };
    let tag = "f".repeat(64);
    let tagged = write(Format::TarIndex, &tag).unwrap();
    assert_eq!(msb_erofs::devices(&mut File::open(&tagged).unwrap()).unwrap()[0].tag, tag);
    let error = write(Format::TarIndex, &"f".repeat(65)).unwrap_err();
    assert!(error.to_string().starts_with("invalid options: device tag of 65 bytes (at most 64)"), "{error}");
    let full = write(Format::Full, &"f".repeat(65)).unwrap();
    assert_eq!(msb_erofs::devices(&mut File::open(&full).unwrap()).unwrap(), []);
    let plain = dir.path().join("plain.erofs");
    let summary = write_layer(File::open(&tar).unwrap(), &mut File::create(&plain).unwrap(), &Options::default());
    assert_eq!(summary.unwrap().device_blocks, 0);
    assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&plain).unwrap(), "a full image ignores the tag");
}

/// Our index against `mkfs.erofs --tar=i` of the same tar, printed (not
/// asserted); `check_with_devices` reads mkfs.erofs's index too.
#[test]
fn size_against_mkfs_erofs_tar_index() {
    erofs_utils();
    let dir = scratch();
    let mut lines = Vec::new();
    let (mut ours_total, mut theirs_total) = (0, 0);
    for tar in good_layers() {
        let ours = dir.path().join("ours.erofs");
        index(&tar, &ours);
        let theirs = dir.path().join("theirs.erofs");
        // --aufs: whiteouts as overlayfs's, as containerd runs it.
        let mkfs = Command::new("mkfs.erofs").args(["--tar=i", "--aufs", "--quiet"]).arg(&theirs).arg(&tar).output();
        let mkfs = mkfs.expect("mkfs.erofs");
        if !mkfs.status.success() {
            let why = String::from_utf8_lossy(&mkfs.stderr).trim().to_string();
            lines.push(format!("{:>20}: mkfs.erofs --tar=i --aufs fails: {why}", tar.file_name().unwrap().display()));
            continue;
        }
        let checked = msb_erofs::check_with_devices(&mut File::open(&theirs).unwrap(), &[len(&tar)]);
        let theirs_summary = checked.unwrap_or_else(|e| panic!("mkfs.erofs --tar=i of {}: {e}", tar.display()));
        let ours_summary = msb_erofs::check_with_devices(&mut File::open(&ours).unwrap(), &[len(&tar)]).unwrap();
        let (a, b) = (len(&ours), len(&theirs));
        ours_total += a;
        theirs_total += b;
        lines.push(format!(
            "{:>20}: msb {a:>8} bytes ({} inodes), mkfs.erofs --tar=i --aufs {b:>8} ({} inodes)",
            tar.file_name().unwrap().display(),
            ours_summary.inodes,
            theirs_summary.inodes
        ));
    }
    lines.push(format!("{:>20}: msb {ours_total:>8} bytes, mkfs.erofs --tar=i --aufs {theirs_total:>8}", "total"));
    eprintln!("tar index sizes:\n{}", lines.join("\n"));
}
