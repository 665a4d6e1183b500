//! Helpers shared by the integration tests of `msb-erofs`.
// Each test binary uses some of them.
#![allow(dead_code)]

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
