//! The README's first command loads `example/hello.tar`: the committed
//! archive is exactly what `example/make.py` builds, it loads, and it
//! mounts with its whiteout applied.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../example")
}

#[test]
fn the_committed_archive_is_what_the_script_builds() {
    require("python3");
    let dir = scratch();
    let rebuilt = dir.path().join("hello.tar");
    run(Command::new("python3").arg(example().join("make.py")).arg(&rebuilt));
    let committed = std::fs::read(example().join("hello.tar")).expect("example/hello.tar is committed");
    let rebuilt = std::fs::read(&rebuilt).unwrap();
    assert!(committed == rebuilt, "example/hello.tar differs from what example/make.py builds: run example/make.py");
    assert!(committed.len() < 64 << 10, "a tiny archive: {} bytes", committed.len());
}

#[test]
fn the_example_loads_and_mounts() {
    let msb = Msb::new();
    let archive = example().join("hello.tar");
    let (_, stderr) = msb.ok(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(stderr.trim(), "✓ Loaded hello:latest");
    let image = msb.inspect("hello");
    assert_eq!(image["platform"], "linux/amd64");
    assert_eq!(image["layers"].as_array().unwrap().len(), 2);

    let dir = scratch();
    let (stdout, _) = msb.ok(["mount", "-q", "hello", dir.path().to_str().unwrap()]);
    assert_eq!(stdout, "");
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p));
    let (hello, greeting, new) = (read("etc/hello.txt"), read("etc/greeting"), read("usr/share/hello/new.txt"));
    let old = dir.path().join("usr/share/hello/old.txt").exists();
    let mode = std::fs::metadata(dir.path().join("bin/hello"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    msb.ok(["umount", "-q", dir.path().to_str().unwrap()]);
    assert_eq!(hello.unwrap(), "hello from msb\n", "layer 2 replaces layer 1's file");
    assert_eq!(greeting.unwrap(), "hello from msb\n", "a symlink to it");
    assert_eq!(new.unwrap(), "added by layer 2\n");
    assert!(!old, "the whiteout hides layer 1's old.txt");
    assert_eq!(mode.unwrap() & 0o7777, 0o755);

    let dir = scratch();
    let saved = dir.path().join("saved.tar");
    msb.ok(["save", "-o", saved.to_str().unwrap(), "hello"]);
    let again = Msb::new();
    again.ok(["load", "-q", "-i", saved.to_str().unwrap()]);
    assert_eq!(again.inspect("hello")["config_digest"], image["config_digest"]);
}
