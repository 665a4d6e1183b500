//! Helpers shared by the integration tests of `msb-erofs`.
// Each test binary uses some of them.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `cmd`, failing the test with its output unless it succeeds;
/// returns its stdout and stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A fresh directory under cargo's target tmp dir, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("erofs-test-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a scratch dir")
}

/// Fills `src` with what needs GNU or PAX long-name records in a tar: a
/// path of over 400 bytes, a 300-byte symlink target, and a hardlink on
/// that long path to `plain` (70,000 bytes).
pub fn long_names_tree(src: &Path) {
    let deep = src.join("a".repeat(200)).join("b".repeat(200));
    std::fs::create_dir_all(&deep).expect("create the deep dirs");
    std::fs::write(deep.join("c".repeat(250)), b"deep").expect("write the deep file");
    std::os::unix::fs::symlink("x".repeat(300), src.join("long-link")).expect("make the long symlink");
    std::fs::write(src.join("plain"), vec![9u8; 70_000]).expect("write plain");
    std::fs::hard_link(src.join("plain"), deep.join("hard")).expect("make the hardlink");
}
