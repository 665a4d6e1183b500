//! Hostile layer tars (`fixtures/make_hostile.py`): names and markers that
//! would make an invalid image or forge overlay state. Each gives either a
//! one-line error naming the entry, or an image `fsck.erofs` and
//! `msb_erofs::check` accept, with what was dropped reported as notes.

use msb_erofs::{Options, write_layer};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;
use common::{run, scratch};

/// The tars of `fixtures/make_hostile.py`, made once per test binary.
fn tars() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = scratch();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_hostile.py");
        run(Command::new("python3").arg(script).arg(dir.path()));
        let path = dir.path().to_path_buf();
        (dir, path)
    })
    .1
}

/// What a case must give.
enum Expect {
    /// An error naming the entry, its message containing this.
    Refused(&'static str, &'static str),
    /// An image, with notes containing these (in order).
    Image(&'static [&'static str]),
}
use Expect::{Image, Refused};

const CASES: &[(&str, Expect)] = &[
    ("wh-dot", Refused("d/.wh..", "whiteout of . or ..")),
    ("wh-dotdot", Refused(".wh...", "whiteout of . or ..")),
    ("wh-dot-at-root", Refused("./.wh..", "whiteout of . or ..")),
    ("wh-dotdot-deep", Refused("a/b/.wh...", "whiteout of . or ..")),
    ("dot-slash-dotdot", Refused("./..", "path climbs out of the layer with ..")),
    ("dotdot", Refused("..", "path climbs out of the layer with ..")),
    ("dotdot-dir", Refused("../", "path climbs out of the layer with ..")),
    ("dotdot-inside", Refused("a/../../b", "path climbs out of the layer with ..")),
    ("hardlink-dotdot", Refused("h", "path climbs out of the layer with ..")),
    ("dot-components", Image(&[])),
    ("root-file", Image(&[".: dropped a non-directory entry at the root of the layer"])),
    ("root-file-slash", Image(&[])),
    ("root-hardlink", Image(&[".: dropped a non-directory entry at the root"])),
    ("root-symlink", Image(&["./: dropped a non-directory entry at the root"])),
    (
        "overlay-xattrs",
        Image(&[
            "file: dropped xattr \"trusted.overlay.",
            "file: dropped xattr \"trusted.overlay.",
            "dir/: dropped xattr \"",
            "dir/: dropped xattr \"",
            "dir/: dropped xattr \"",
        ]),
    ),
    ("overlay-xattr-and-opq", Image(&["dir/: dropped xattr \"trusted.overlay.opaque\" (overlayfs-private"])),
    ("opq-at-root", Image(&[])),
    ("opq-at-dot-root", Image(&[])),
    ("hardlink-to-whiteout", Refused("h", "hardlink target \"x\" is a whiteout")),
    ("hardlink-to-whiteout-name", Refused("h", "hardlink target \".wh.x\" does not exist")),
    ("device-whiteout", Image(&[])),
    ("whiteout-of-every-type", Image(&[])),
    ("whiteout-then-children", Image(&[])),
    ("whiteout-over-own-file", Image(&[])),
    ("aufs-names", Image(&[])),
    ("empty-whiteout", Refused("a/.wh.", "whiteout without a name")),
    ("long-whiteout", Image(&[])),
    ("too-long-whiteout", Refused(".wh.nnn", "a path component is longer than 255 bytes")),
    ("pax-path-slashes", Image(&[])),
    ("pax-path-dotdot", Refused("p/../../q", "path climbs out")),
    ("pax-empty-path", Image(&[": dropped a non-directory entry at the root"])),
    ("deep-ok", Image(&[])),
    ("too-deep", Refused("d/d/d", "path deeper than 512 directories")),
    ("file-then-child", Refused("a/b", "a parent of this path is not a directory")),
    ("symlink-as-parent", Refused("s/passwd", "a parent of this path is not a directory")),
    ("many-subdirs", Image(&[])),
    ("many-links", Image(&[])),
];

/// Converts `name`.tar into `dir`, returning the image or the error.
fn convert(name: &str, dir: &Path) -> Result<(PathBuf, msb_erofs::Summary), msb_erofs::Error> {
    let image = dir.join(format!("{name}.erofs"));
    let tar = File::open(tars().join(format!("{name}.tar"))).unwrap();
    write_layer(tar, &mut File::create(&image).unwrap(), &Options::default()).map(|s| (image, s))
}

/// Every image passes `fsck.erofs` (and msb's own checker); every refusal
/// is one line naming the entry.
fn verify(image: &Path) {
    run(Command::new("fsck.erofs").arg(image));
    let mut file = File::open(image).unwrap();
    msb_erofs::check(&mut file).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
}

#[test]
fn hostile_tars_are_refused_or_give_valid_images() {
    let dir = scratch();
    let listed: std::collections::BTreeSet<String> = std::fs::read_dir(tars())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".tar").to_string())
        .collect();
    let tested: std::collections::BTreeSet<String> = CASES.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(listed, tested, "every tar of make_hostile.py has a case");
    for (name, expect) in CASES {
        match (convert(name, dir.path()), expect) {
            (Err(error), Refused(path, what)) => {
                let message = error.to_string();
                assert!(!message.contains('\n'), "{name}: {message}");
                let named = error.path().unwrap_or_else(|| panic!("{name}: {message} names no entry"));
                assert!(named.starts_with(path), "{name}: names {named:?}, not {path:?}");
                assert!(message.starts_with(&format!("{named}: ")), "{name}: {message}");
                assert!(message.contains(what), "{name}: {message}");
            }
            (Ok((image, summary)), Image(notes)) => {
                verify(&image);
                let got: Vec<String> = summary.notes.iter().map(|n| n.to_string()).collect();
                assert_eq!(got.len(), notes.len(), "{name}: {got:?}");
                for (got, want) in got.iter().zip(notes.iter()) {
                    assert!(got.starts_with(want), "{name}: {got:?} is not {want:?}");
                }
                std::fs::remove_file(&image).unwrap();
            }
            (Err(error), Image(_)) => panic!("{name}: refused: {error}"),
            (Ok(_), Refused(..)) => panic!("{name}: converted, but must be refused"),
        }
    }
}

/// The xattrs of `path` under `root` (a mount), as `name=value` lines.
fn xattrs(root: &Path, path: &str) -> Vec<String> {
    let script = "import os,sys\nfor n in sorted(os.listxattr(sys.argv[1], follow_symlinks=False)):\n    \
                  print(n + '=' + os.getxattr(sys.argv[1], n, follow_symlinks=False).decode())";
    let out = run(Command::new("python3").args(["-c", script]).arg(root.join(path)));
    out.lines().map(str::to_string).collect()
}

#[test]
fn overlay_xattrs_are_dropped_and_our_marker_kept() {
    let dir = scratch();
    let mount = dir.path().join("mnt");
    std::fs::create_dir(&mount).unwrap();
    for (name, path, want) in [
        ("overlay-xattrs", "file", &["user.keep=kept"][..]),
        ("overlay-xattrs", "dir", &[][..]),
        ("overlay-xattr-and-opq", "dir", &["trusted.overlay.opaque=y"][..]),
        ("opq-at-root", "", &["trusted.overlay.opaque=y"][..]),
    ] {
        let (image, _) = convert(name, dir.path()).unwrap();
        let ok = Command::new("mount").args(["-t", "erofs", "-o", "loop,ro"]).arg(&image).arg(&mount).status();
        assert!(ok.is_ok_and(|s| s.success()), "mount -t erofs -o loop (needs root and the erofs module)");
        let got = xattrs(&mount, path);
        let _ = Command::new("umount").arg(&mount).status();
        assert_eq!(got, want, "{name}: {path}");
    }
}

#[test]
fn notes_are_capped() {
    // 30 entries with two overlay xattrs each: 20 notes kept, 40 counted.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..30 {
        b.append_pax_extensions([
            ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..]),
            ("SCHILY.xattr.user.overlay.origin", &b"o"[..]),
        ])
        .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("f{i}"), &b""[..]).unwrap();
    }
    let mut out = tempfile::tempfile().unwrap();
    let summary = write_layer(&b.into_inner().unwrap()[..], &mut out, &Options::default()).unwrap();
    assert_eq!(summary.notes.len(), msb_erofs::MAX_NOTES);
    assert_eq!(summary.more_notes, 40);
    assert_eq!(
        summary.notes[0].to_string(),
        "f0: dropped xattr \"trusted.overlay.redirect\" (overlayfs-private, it would forge an overlay marker)"
    );
}
