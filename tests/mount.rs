//! `msb mount` and `msb umount`: a three-layer image (whiteout, opaque dir,
//! owners, modes, links, xattrs) mounted with the kernel's EROFS and
//! overlayfs shows the merged tree a runtime would unpack; `umount` leaves
//! no mount, loop device or directory behind; failures undo themselves.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The archive and expected tree of `tests/fixtures/make-layers.py`.
fn layers_fixture() -> (tempfile::TempDir, PathBuf) {
    require("python3");
    let dir = scratch();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/make-layers.py");
    run(Command::new("python3").arg(script).arg(dir.path()));
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Mount points (field 5 of `/proc/self/mountinfo`) under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// File system type of the mount at `dir`, if it is one.
fn fs_type(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let dir = dir.canonicalize().ok()?;
    info.lines().rfind(|l| l.split(' ').nth(4) == dir.to_str()).and_then(|l| {
        let after = l.split(" - ").nth(1)?;
        after.split(' ').next().map(str::to_string)
    })
}

/// Loop devices whose backing file is under `dir`.
fn loops_backed_by(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").expect("read /sys/block").flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(file) = std::fs::read_to_string(&backing) {
            let file = file.trim().trim_end_matches(" (deleted)");
            if Path::new(file).starts_with(&dir) {
                found.push(format!("{}: {file}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Runs `msb umount DIR` on drop if DIR is still mounted, so that a
/// failing test leaves no mount behind.
struct Unmounter<'a>(&'a Msb, PathBuf);

impl Drop for Unmounter<'_> {
    fn drop(&mut self) {
        if fs_type(&self.1).is_some() {
            let _ = self.0.cmd([Path::new("umount"), &self.1]).status();
        }
    }
}

/// Asserts `umount` left nothing: no mount under the target or the store,
/// no loop device on the store's layers, no dir under `mounts/`.
fn assert_clean(msb: &Msb, target: &Path) {
    assert_eq!(mounts_under(target), Vec::<String>::new(), "still mounted at the target");
    assert_eq!(mounts_under(msb.home()), Vec::<String>::new(), "layer mounts left in the store");
    // Autoclear frees a loop device as its mount goes; give the kernel a moment.
    for _ in 0..50 {
        if loops_backed_by(msb.home()).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(loops_backed_by(msb.home()), Vec::<String>::new(), "loop devices left attached");
    let mounts = msb.home().join("mounts");
    let left: Vec<_> = std::fs::read_dir(&mounts).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left in {}: {left:?}", mounts.display());
}

#[test]
fn mounts_the_merged_tree_and_unmounts_cleanly() {
    let (_fx, fx) = layers_fixture();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("layers.tar").to_str().unwrap()]);
    let image = msb.inspect("layers:1");
    assert_eq!(image["layers"].as_array().unwrap().len(), 3);

    let dir = scratch();
    let target = dir.path().join("root");
    std::fs::create_dir(&target).unwrap();
    let _guard = Unmounter(&msb, target.clone());
    let (_, stderr) = msb.ok(["mount", "layers:1", target.to_str().unwrap()]);
    assert!(stderr.contains("✓ Mounted layers:1 (linux/amd64, 3 layers)"), "{stderr}");
    assert_eq!(fs_type(&target).as_deref(), Some("overlay"));
    let layer_mounts: Vec<String> = mounts_under(&msb.home().join("mounts"))
        .into_iter()
        .filter(|m| fs_type(Path::new(m)).as_deref() == Some("erofs"))
        .collect();
    assert_eq!(layer_mounts.len(), 3, "one EROFS mount per layer: {layer_mounts:?}");
    // Uncompressed layers are tar indexes: each reads from its blob.
    for layer in image["layers"].as_array().unwrap() {
        let (_, devices) = layer_files(layer);
        assert_eq!(devices, [msb.home().join("oci/blobs/sha256").join(&layer["digest"].as_str().unwrap()[7..])]);
    }
    assert_eq!(loops_backed_by(msb.home()).len(), 6, "one loop device per layer image, one per blob");

    // The tree, entry by entry (types, modes, owners, contents, link
    // targets, hardlinks, mtimes, xattrs), against the expected merge.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/compare_tree.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(fx.join("flat.tar"))
        .arg(&target)
        .env("XATTRS", "1")
        .output()
        .expect("run compare_tree.py");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "the mount differs from the merged layers:\n{stdout}{stderr}");

    // Whiteouts and the opaque dir hide the lower layers' files.
    assert!(!target.join("etc/remove-me").exists(), "a whiteout hides the file");
    for gone in ["opt/data/a", "opt/data/b", "opt/data/sub"] {
        assert!(std::fs::symlink_metadata(target.join(gone)).is_err(), "{gone}: hidden by the opaque dir");
    }
    assert_eq!(std::fs::read_to_string(target.join("opt/data/c")).unwrap(), "c, after the opaque marker\n");
    assert_eq!(std::fs::read_to_string(target.join("usr/link")).unwrap(), "keep me\n");
    // Read-only.
    let error = std::fs::write(target.join("etc/new-file"), b"x").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(30), "EROFS (read-only file system): {error}");

    // umoci, unpacking the same layout, sees the same files.
    require("umoci");
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:layers:1", fx.join("layout").display()))
        .arg(&bundle));
    let listing = |root: &Path| {
        run(Command::new("find").arg(root).args(["-mindepth", "1", "-printf", "%P %y %m %U:%G %l\\n"]))
            .lines()
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(listing(&target), listing(&bundle.join("rootfs")), "the mount and umoci's unpack differ");

    // A second mount on the same dir is refused; the first stays.
    let error = msb.fails(["mount", "layers:1", target.to_str().unwrap()]);
    assert!(error.contains("already an msb mount"), "{error}");
    assert_eq!(fs_type(&target).as_deref(), Some("overlay"));

    let (_, stderr) = msb.ok(["umount", target.to_str().unwrap()]);
    assert!(stderr.contains("✓ Unmounted"), "{stderr}");
    assert_clean(&msb, &target);
    assert!(target.is_dir(), "the target dir itself stays");
}

#[test]
fn full_and_tar_index_layers_show_the_same_tree() {
    let (_fx, fx) = layers_fixture();
    let dir = scratch();
    let mut trees = Vec::new();
    for format in ["tar-index", "full"] {
        let msb = Msb::new();
        msb.ok(["config", "layer-format", format]);
        assert_eq!(msb.ok(["config", "layer-format"]).0.trim(), format);
        msb.ok(["load", "-q", "-i", fx.join("layers.tar").to_str().unwrap()]);
        let image = msb.inspect("layers:1");
        let mut layer_bytes = 0;
        for layer in image["layers"].as_array().unwrap() {
            let (erofs, devices) = layer_files(layer);
            assert_eq!(devices.len(), usize::from(format == "tar-index"), "{format}: {layer}");
            layer_bytes += std::fs::metadata(&erofs).unwrap().len();
        }
        let blobs: u64 = image["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum();
        if format == "tar-index" {
            assert!(layer_bytes * 2 < blobs, "index images hold metadata only: {layer_bytes} vs {blobs} bytes");
        }
        let target = dir.path().join(format);
        std::fs::create_dir(&target).unwrap();
        let _guard = Unmounter(&msb, target.clone());
        msb.ok(["mount", "layers:1", target.to_str().unwrap()]);
        let listing = run(Command::new("find").arg(&target).args(["-mindepth", "1", "-printf", "%P %y %m %U:%G %l\\n"]));
        let contents = run(Command::new("sh").arg("-c").arg(format!(
            "cd {} && find . -type f -print0 | sort -z | xargs -0 sha256sum",
            target.display()
        )));
        trees.push((listing, contents));
        msb.ok(["umount", target.to_str().unwrap()]);
        msb.ok(["check"]);
    }
    assert_eq!(trees[0], trees[1], "tar-index and full layers mount the same tree");
    let error = Msb::new().fails(["config", "layer-format", "zip"]);
    assert!(error.contains("zip") && error.contains("tar-index or full"), "{error}");
}

#[test]
fn mounts_one_layer_images_and_a_chosen_platform() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "--all-platforms", "-i", fx.join("multi.tar").to_str().unwrap()]);
    let dir = scratch();
    let target = dir.path().join("arm");
    std::fs::create_dir(&target).unwrap();
    let _guard = Unmounter(&msb, target.clone());
    // The arm64 image has one layer: an overlay of it over an empty dir.
    let (_, stderr) = msb.ok(["mount", "--platform", "linux/arm64", "multi:1", target.to_str().unwrap()]);
    assert!(stderr.contains("linux/arm64/v8, 1 layers"), "{stderr}");
    assert_eq!(fs_type(&target).as_deref(), Some("overlay"));
    assert_eq!(std::fs::read_to_string(target.join("ARCH")).unwrap(), "arm\n");
    msb.ok(["umount", "-q", target.to_str().unwrap()]);
    assert_clean(&msb, &target);

    // Without --platform: the host's (amd64) image of the index.
    msb.ok(["mount", "-q", "multi:1", target.to_str().unwrap()]);
    assert!(target.join("opt/app/version").is_file(), "the amd64 image's second layer");
    assert!(!target.join("usr/share/doc/one-byte").exists(), "whited out by its second layer");
    msb.ok(["umount", "-q", target.to_str().unwrap()]);
    assert_clean(&msb, &target);

    let error = msb.fails(["mount", "--platform", "linux/s390x", "multi:1", target.to_str().unwrap()]);
    assert!(error.contains("linux/s390x") && error.contains("linux/arm64/v8"), "{error}");
    assert_clean(&msb, &target);
}

#[test]
fn a_failure_midway_unmounts_what_it_mounted() {
    let (_fx, fx) = layers_fixture();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("layers.tar").to_str().unwrap()]);
    let image = msb.inspect("layers:1");
    // The top layer's EROFS image is damaged: the first two mount, the third fails.
    let top = PathBuf::from(image["layers"][2]["erofs"].as_str().unwrap());
    std::fs::write(&top, vec![0xAAu8; 8192]).unwrap();
    let dir = scratch();
    let target = dir.path().join("root");
    std::fs::create_dir(&target).unwrap();
    let error = msb.fails(["mount", "layers:1", target.to_str().unwrap()]);
    assert!(error.contains("erofs") && error.contains(top.to_str().unwrap()), "{error}");
    assert_clean(&msb, &target);

    // A layer missing from the store is named before anything is mounted.
    std::fs::remove_file(&top).unwrap();
    let error = msb.fails(["mount", "layers:1", target.to_str().unwrap()]);
    assert!(error.contains("is missing from the store"), "{error}");
    assert_clean(&msb, &target);
}

#[test]
fn errors_name_what_is_wrong() {
    let msb = Msb::new();
    let dir = scratch();
    let error = msb.fails(["mount", "missing:1", dir.path().to_str().unwrap()]);
    assert!(error.contains("no such image: missing:1"), "{error}");

    let error = msb.fails(["umount", dir.path().to_str().unwrap()]);
    assert!(error.contains("not mounted by msb"), "{error}");
    let error = msb.fails(["umount", dir.path().join("nope").to_str().unwrap()]);
    assert!(error.contains("nope") && error.contains("No such file"), "{error}");

    // Without privilege: one line naming what is missing, nothing left behind.
    require("setpriv");
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example/hello.tar");
    msb.ok(["load", "-q", "-i", fx.to_str().unwrap()]);
    let target = dir.path().join("unprivileged");
    std::fs::create_dir(&target).unwrap();
    run(Command::new("chmod").args(["-R", "a+rwX"]).arg(msb.home()).arg(dir.path()));
    let cmd = msb.cmd(["mount", "hello", target.to_str().unwrap()]);
    let args: Vec<_> =
        std::iter::once(cmd.get_program().to_owned()).chain(cmd.get_args().map(|a| a.to_owned())).collect();
    let envs: Vec<_> = cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(&args)
        .envs(envs)
        .output()
        .expect("run setpriv");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("permission denied: mounting needs root"), "{stderr}");
    assert_clean(&msb, &target);

    // A mount msb did not make stays mounted.
    let tmpfs = dir.path().join("tmpfs");
    std::fs::create_dir(&tmpfs).unwrap();
    run(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&tmpfs));
    let error = msb.fails(["umount", tmpfs.to_str().unwrap()]);
    assert!(error.contains("not mounted by msb"), "{error}");
    assert_eq!(fs_type(&tmpfs).as_deref(), Some("tmpfs"));
    run(Command::new("umount").arg(&tmpfs));
}
