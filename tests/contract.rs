//! Contract versions live side by side: a decoder built against
//! `msb:format@0.1.0` keeps loading whatever msb becomes. The decoder is
//! `tests/fixtures/contract-0.1.0.wasm`, a committed component that its
//! crate (`tests/fixtures/contract-0.1.0/`, `wit-bindgen` straight from
//! `wit/v0.1.0`) and `build.sh` rebuild byte for byte. A component built for
//! a major version msb does not implement is refused, both versions named.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The committed 0.1.0 decoder.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/contract-0.1.0.wasm")
}

/// The skopeo oci-archive of `make-oci.sh` (ref alpine:3.20).
fn oci_archive() -> String {
    oci_fixtures().join("oci-archive.tar").to_str().expect("UTF-8 path").to_string()
}

/// What a load must agree on, whoever decoded it: refs, digests, platform
/// and layers (without the paths into the store).
fn identity(image: &Value) -> Value {
    let layers = image["layers"].as_array().expect("inspect lists layers");
    json!({
        "ref": image["ref"],
        "manifest_digest": image["manifest_digest"],
        "config_digest": image["config_digest"],
        "platform": image["platform"],
        "layers": layers.iter().map(|l| json!({
            "digest": l["digest"],
            "diff_id": l["diff_id"],
            "media_type": l["media_type"],
        })).collect::<Vec<_>>(),
    })
}

/// `alpine:3.20` as the built-in oci-layout decoder loads it.
fn built_in_load() -> Value {
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "detect", &oci_archive()]);
    let first: Vec<&str> = stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first, ["oci-layout", "90"], "{stdout}");
    msb.ok(["load", "-q", "-i", &oci_archive()]);
    identity(&msb.inspect("alpine:3.20"))
}

/// Variables of the `cargo test` running this, which would leak into the
/// fixture's own build (registry, network and home settings are kept).
fn is_outer_cargo_var(key: &str) -> bool {
    const KEEP: &[&str] = &["CARGO_HOME", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_"];
    (key.starts_with("CARGO") && !KEEP.iter().any(|k| key.starts_with(k)))
        || matches!(key, "RUSTC" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTFLAGS" | "RUSTUP_TOOLCHAIN")
}

#[test]
fn the_committed_component_is_what_build_sh_builds() {
    require("cargo");
    let dir = scratch();
    let rebuilt = dir.path().join("contract-0.1.0.wasm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/contract-0.1.0/build.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&rebuilt);
    for (key, _) in std::env::vars_os() {
        if is_outer_cargo_var(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
    // Its own target dir, kept between runs: no wait on this build's lock.
    cmd.env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract-0.1.0"));
    run(&mut cmd);
    let committed = std::fs::read(fixture()).expect("read the committed fixture");
    let rebuilt = std::fs::read(&rebuilt).expect("read the rebuilt fixture");
    assert!(
        committed == rebuilt,
        "tests/fixtures/contract-0.1.0.wasm ({} bytes) is not what its build.sh builds ({} bytes); \
         if the crate changed on purpose, run the script and commit the result",
        committed.len(),
        rebuilt.len()
    );
    assert!(committed.len() < 150_000, "the fixture grew to {} bytes", committed.len());
}

#[test]
fn an_installed_0_1_0_decoder_loads_what_the_built_in_loads() {
    let expected = built_in_load();
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "install", fixture().to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed compat-oci-v0-1 0.1.0");
    let (stdout, _) = msb.ok(["plugin", "ls"]);
    assert!(stdout.contains("compat-oci-v0-1"), "{stdout}");

    // It takes part in detection, and the built-in still wins.
    let (stdout, _) = msb.ok(["plugin", "detect", &oci_archive()]);
    let scores: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(scores.first().map(Vec::as_slice), Some(&["oci-layout", "90"][..]), "{stdout}");
    assert!(scores.iter().any(|s| s.as_slice() == ["compat-oci-v0-1", "5"]), "{stdout}");

    let (_, stderr) = msb.ok(["load", "--plugin", "compat-oci-v0-1", "-i", &oci_archive()]);
    assert_eq!(stderr.trim(), "✓ Loaded alpine:3.20");
    assert_eq!(identity(&msb.inspect("alpine:3.20")), expected);
    msb.ok(["check"]);
}

#[test]
fn a_0_1_0_decoder_loads_by_path_without_installing() {
    let expected = built_in_load();
    let msb = Msb::new();
    msb.ok(["load", "-q", "--plugin", fixture().to_str().unwrap(), "-i", &oci_archive()]);
    assert_eq!(identity(&msb.inspect("alpine:3.20")), expected);
    let (stdout, _) = msb.ok(["plugin", "ls"]);
    assert!(!stdout.contains("compat-oci-v0-1"), "loading by path installed it: {stdout}");
}

#[test]
fn a_component_for_an_unknown_major_is_refused_naming_both_versions() {
    let bytes = std::fs::read(fixture()).expect("read the committed fixture");
    let (from, to) = (b"@0.1.0", b"@9.0.0");
    assert!(bytes.windows(22).any(|w| w == b"msb:format/types@0.1.0"), "the fixture imports msb:format@0.1.0");
    let mut patched = bytes.clone();
    let mut at = 0;
    while let Some(found) = patched[at..].windows(from.len()).position(|w| w == from) {
        patched[at + found..at + found + to.len()].copy_from_slice(to);
        at += found + to.len();
    }
    let dir = scratch();
    let future = dir.path().join("future.wasm");
    std::fs::write(&future, &patched).expect("write the patched component");
    let future = future.to_str().unwrap();

    let msb = Msb::new();
    msb.ok(["images"]); // the store exists: refusing must leave it as it is
    for args in [&["plugin", "install", future][..], &["load", "--plugin", future, "-i", &oci_archive()]] {
        let error = msb.refused(args, &[], "9.0.0");
        assert!(error.contains("0.1.0"), "msb {args:?} does not name the version it implements: {error}");
    }
    assert!(!msb.home().join("plugins/compat-oci-v0-1.wasm").exists(), "installed anyway");
}
