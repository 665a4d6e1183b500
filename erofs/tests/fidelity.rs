//! The writer against layer tars built by python's tarfile and GNU tar,
//! checked three ways: `fsck.erofs`, the mounted (or extracted) tree
//! compared entry by entry with the tar, and an overlayfs of two layers.

use msb_erofs::{Options, write_layer};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("erofs-test-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// The tars of `fixtures/make_layers.py`, made once per test binary.
fn layers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("erofs-layers-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_layers.py");
        run(Command::new("python3").arg(script).arg(&dir));
        dir
    })
}

fn convert(tar: &Path, out: &Path) -> Result<msb_erofs::Summary, msb_erofs::Error> {
    write_layer(File::open(tar).unwrap(), &mut File::create(out).unwrap(), &Options::default())
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
fn a_directory_of_ten_thousand_entries() {
    check(&layers().join("bigdir.tar"));
}

#[test]
fn gnu_tar_layers_with_long_names() {
    let dir = scratch();
    let src = dir.path().join("src");
    let deep = src.join("a".repeat(200)).join("b".repeat(200));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("c".repeat(250)), b"deep").unwrap();
    std::os::unix::fs::symlink("x".repeat(300), src.join("long-link")).unwrap();
    std::fs::write(src.join("plain"), vec![9u8; 70_000]).unwrap();
    std::fs::hard_link(src.join("plain"), deep.join("hard")).unwrap();
    for format in ["gnu", "posix"] {
        let tar = dir.path().join(format!("{format}.tar"));
        run(Command::new("tar").arg(format!("--format={format}")).arg("-cf").arg(&tar).arg("-C").arg(&src).arg("."));
        check(&tar);
    }
}

#[test]
fn whiteouts_and_opaque_dirs_work_in_overlayfs() {
    let dir = scratch();
    let mut mounts = Vec::new();
    let mut lowers = Vec::new();
    for name in ["lower", "upper"] {
        let image = dir.path().join(format!("{name}.erofs"));
        convert(&layers().join(format!("{name}.tar")), &image).unwrap();
        let target = dir.path().join(name);
        std::fs::create_dir(&target).unwrap();
        match Mount::new(&["-t", "erofs", "-o", "loop,ro", image.to_str().unwrap()], &target) {
            Some(m) => mounts.push(m),
            None => return eprintln!("note: mounting EROFS is not permitted here; overlayfs check skipped"),
        }
        lowers.push(target);
    }
    let merged = dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let lowerdir = format!("lowerdir={}:{}", lowers[1].display(), lowers[0].display());
    let Some(overlay) = Mount::new(&["-t", "overlay", "overlay", "-o", &lowerdir], &merged) else {
        return eprintln!("note: overlayfs is not permitted here; overlay check skipped");
    };
    let read = |p: &str| std::fs::read_to_string(merged.join(p)).ok();
    assert_eq!(read("a/keep").as_deref(), Some("keep"));
    assert_eq!(read("a/gone"), None, "the whiteout hides the lower file");
    assert!(!merged.join("a/gone").exists());
    assert_eq!(read("opq/new").as_deref(), Some("new"));
    assert_eq!(read("opq/old"), None, "the opaque directory hides lower children");
    assert_eq!(read("same").as_deref(), Some("upper"));
    let mut names: Vec<_> = std::fs::read_dir(merged.join("opq")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["new"]);
    drop(overlay);
}

#[test]
fn refusals_are_clear() {
    let error = convert(&layers().join("dotdot.tar"), &scratch().path().join("x.erofs")).unwrap_err().to_string();
    assert_eq!(error, "../evil: path climbs out of the layer with ..");

    // GNU tar's sparse format.
    let dir = scratch();
    let sparse = dir.path().join("sparse.img");
    let file = File::create(&sparse).unwrap();
    file.set_len(10 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"data", 5 << 20).unwrap();
    let tar = dir.path().join("sparse.tar");
    run(Command::new("tar").args(["--format=gnu", "-S", "-cf"]).arg(&tar).arg("-C").arg(dir.path()).arg("sparse.img"));
    let error = convert(&tar, &dir.path().join("s.erofs")).unwrap_err().to_string();
    assert!(error.contains("sparse.img") && error.contains("sparse files are not supported"), "{error}");

    // A tar cut short inside a file.
    let bytes = std::fs::read(layers().join("lower.tar")).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..700]).unwrap();
    let error = convert(&cut, &dir.path().join("c.erofs")).unwrap_err().to_string();
    assert!(error.contains("a/keep") || error.contains("truncated") || error.contains("unexpected"), "{error}");
}

#[test]
fn output_is_deterministic() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a.erofs"), dir.path().join("b.erofs"));
    convert(&layers().join("everything.tar"), &a).unwrap();
    convert(&layers().join("everything.tar"), &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}
