//! `msb load` of containers/image `dir:` directories (the `containers-dir`
//! decoder): `skopeo copy … dir:` with gzip and uncompressed layers, as a
//! directory and as a tar of it, `podman save --format docker-dir`, and
//! the refusals (an index from `skopeo copy --all`, a missing blob).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn strings(values: &Value) -> Vec<String> {
    values.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_string()).collect()
}

fn diff_ids(image: &Value) -> Vec<String> {
    image["layers"].as_array().expect("layers").iter().map(|l| l["diff_id"].as_str().unwrap().to_string()).collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `skopeo copy [ARGS] oci:<fixtures>/layout:IMAGE dir:DIR`.
fn skopeo_dir(image: &str, dir: &Path, args: &[&str]) {
    let source = format!("oci:{}:{image}", oci_fixtures().join("layout").display());
    run(Command::new("skopeo").args(["copy", "-q"]).args(args).arg(source).arg(format!("dir:{}", dir.display())));
}

/// `tar -C DIR -cf TAR .`
fn tar_of(dir: &Path, tar: &Path) {
    run(Command::new("tar").arg("-C").arg(dir).arg("-cf").arg(tar).arg("."));
}

/// Checks `image` (as `msb inspect` shows it) against the `dir:` directory
/// `dir`: manifest and config digests, diff_ids, layer digests, EROFS trees.
fn check_against_dir(image: &Value, dir: &Path) {
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).expect("read manifest.json");
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest.json is JSON");
    let config = skopeo_json(&["--config", &format!("dir:{}", dir.display())]);
    assert_eq!(image["manifest_digest"], format!("sha256:{:x}", Sha256::digest(&manifest_bytes)).as_str());
    assert_eq!(image["config_digest"], manifest["config"]["digest"]);
    assert_eq!(image["platform"], "linux/amd64");
    assert_eq!(diff_ids(image), strings(&config["rootfs"]["diff_ids"]));
    let layers = image["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), manifest["layers"].as_array().expect("layers").len());
    for (layer, declared) in layers.iter().zip(manifest["layers"].as_array().unwrap()) {
        assert_eq!(layer["digest"], declared["digest"]);
        let blob = dir.join(&declared["digest"].as_str().unwrap()[7..]);
        check_layer_against_tar(layer, &blob);
    }
}

#[test]
fn skopeo_dir_loads_as_a_directory_and_as_a_tar() {
    let scratch = scratch();
    for (name, args) in [("gzip", &[][..]), ("plain", &["--dest-decompress"][..])] {
        let dir = scratch.path().join(name);
        skopeo_dir("base", &dir, args);

        let msb = Msb::new();
        let (stdout, _) = msb.ok(["plugin", "detect", path(&dir)]);
        let first = stdout.lines().next().unwrap_or_default();
        assert!(first.starts_with("containers-dir") && first.ends_with(" 100"), "{name}: {stdout}");

        let (_, stderr) = msb.ok(["load", "-i", path(&dir), "-t", "mine:1"]);
        assert_eq!(stderr.trim(), "✓ Loaded mine:1", "{name}");
        let image = msb.inspect("mine:1");
        check_against_dir(&image, &dir);

        let tar = scratch.path().join(format!("{name}.tar"));
        tar_of(&dir, &tar);
        let other = Msb::new();
        let (_, stderr) = other.ok(["load", "-i", path(&tar), "-t", "mine:1"]);
        assert_eq!(stderr.trim(), "✓ Loaded mine:1", "{name}.tar");
        let from_tar = other.inspect("mine:1");
        assert_eq!(from_tar["manifest_digest"], image["manifest_digest"], "{name}.tar");
        assert_eq!(diff_ids(&from_tar), diff_ids(&image), "{name}.tar");
    }
}

#[test]
fn without_a_tag_the_image_is_named_by_its_config_digest() {
    let scratch = scratch();
    let dir = scratch.path().join("x");
    skopeo_dir("base", &dir, &[]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    let msb = Msb::new();
    let (_, stderr) = msb.ok(["load", "-i", path(&dir)]);
    assert_eq!(stderr.trim(), format!("✓ Loaded {config}"));
    check_against_dir(&msb.inspect(config), &dir);
}

#[test]
fn an_index_and_a_missing_blob_are_refused() {
    let scratch = scratch();
    let all = scratch.path().join("all");
    skopeo_dir("multi", &all, &["--all"]);
    let msb = Msb::new();
    let error = msb.fails(["load", "-i", path(&all), "-t", "mine:1"]);
    assert!(error.contains("manifest.json") && error.contains("skopeo copy --all"), "{error}");

    let dir = scratch.path().join("x");
    skopeo_dir("base", &dir, &[]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let hex = &manifest["layers"][1]["digest"].as_str().unwrap()[7..];
    std::fs::remove_file(dir.join(hex)).unwrap();
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", path(&dir), "-t", "mine:1"]);
    assert!(error.contains(hex) && error.contains("not in the directory"), "{error}");
    assert_eq!(msb.snapshot(), before, "a failed load changes nothing");
}

/// podman with a throwaway store under `dir`.
fn podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root").arg(dir.join("root")).arg("--runroot").arg(dir.join("run"));
    cmd.args(["--storage-driver", "vfs", "--events-backend", "none"]);
    cmd
}

#[test]
fn podman_docker_dir_loads() {
    let scratch = scratch();
    let out = scratch.path().join("docker-dir");
    let load = podman(scratch.path()).args(["load", "-q", "-i"]).arg(oci_fixtures().join("oci-archive.tar")).output();
    let saved = load.is_ok_and(|o| o.status.success())
        && podman(scratch.path())
            .args(["save", "-q", "--format", "docker-dir", "-o"])
            .arg(&out)
            .arg("localhost/alpine:3.20")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(saved, "podman could not load and save a docker-dir here (the README's test command installs podman)");
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "detect", path(&out)]);
    assert!(stdout.starts_with("containers-dir"), "{stdout}");
    let (_, stderr) = msb.ok(["load", "-i", path(&out), "-t", "mine:1"]);
    assert_eq!(stderr.trim(), "✓ Loaded mine:1");
    let image = msb.inspect("mine:1");
    check_against_dir(&image, &out);
    // The same image as the OCI archive podman loaded (podman's layers are
    // uncompressed, whatever their media type says).
    let reference = Msb::new();
    reference.ok(["load", "-q", "-i", path(&oci_fixtures().join("oci-archive.tar"))]);
    let original = reference.inspect("alpine:3.20");
    assert_eq!(diff_ids(&image), diff_ids(&original));
    assert_eq!(image["config_digest"], original["config_digest"]);
}
