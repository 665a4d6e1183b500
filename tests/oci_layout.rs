//! `msb load` of OCI image layouts made by umoci and skopeo: refs, digests,
//! platforms, EROFS contents, the store as an OCI layout, and failures that
//! leave the store untouched.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn digests(values: &Value) -> Vec<String> {
    values.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_string()).collect()
}

#[test]
fn loads_a_skopeo_oci_archive() {
    let fx = oci_fixtures();
    let archive = fx.join("oci-archive.tar");
    let msb = Msb::new();
    let (_, stderr) = msb.ok(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(stderr.trim(), "✓ Loaded alpine:3.20");

    let spec = format!("oci-archive:{}", archive.display());
    let manifest = skopeo_json(&["--raw", &spec]);
    let config = skopeo_json(&["--config", &spec]);
    let image = msb.inspect("alpine:3.20");
    assert_eq!(image["ref"], "docker.io/library/alpine:3.20");
    assert_eq!(image["config_digest"], manifest["config"]["digest"]);
    assert_eq!(image["platform"], "linux/amd64");
    let layers = image["layers"].as_array().unwrap();
    let diff_ids: Vec<_> = layers.iter().map(|l| l["diff_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(diff_ids, digests(&config["rootfs"]["diff_ids"]));
    for (i, layer) in layers.iter().enumerate() {
        assert_eq!(layer["digest"], manifest["layers"][i]["digest"]);
        assert_eq!(layer["media_type"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let erofs = Path::new(layer["erofs"].as_str().unwrap());
        assert!(erofs.is_absolute(), "{}", erofs.display());
        check_layer_against_tar(layer, &fx.join(format!("layers/{i}.tar.gz")));
    }

    // Every way of naming the image finds the same one.
    let id = image["config_digest"].as_str().unwrap();
    for name in ["alpine:3.20", "docker.io/library/alpine:3.20", id, &id[7..19]] {
        assert_eq!(msb.inspect(name)["manifest_digest"], image["manifest_digest"], "{name}");
    }
    let error = msb.fails(["inspect", "alpine:latest"]);
    assert!(error.contains("no such image: alpine:latest"), "{error}");
}

#[test]
fn a_directory_and_uncompressed_layers_give_the_same_image() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let from_tar = msb.inspect("alpine:3.20");

    let other = Msb::new();
    let (_, stderr) = other.ok(["load", "-i", fx.join("oci-dir").to_str().unwrap()]);
    assert_eq!(stderr.trim(), "✓ Loaded alpine:3.20");
    let from_dir = other.inspect("alpine:3.20");
    assert_eq!(from_dir["manifest_digest"], from_tar["manifest_digest"]);

    other.ok(["load", "-i", fx.join("plain").to_str().unwrap()]);
    let plain = other.inspect("plain:1");
    let compressed = from_dir["layers"].as_array().unwrap();
    // skopeo 1.9 writes these uncompressed layers labeled `tar+gzip`: the
    // manifest is kept as it is, and the bytes (sniffed) decide.
    for (layer, gzipped) in plain["layers"].as_array().unwrap().iter().zip(compressed) {
        assert_eq!(layer["digest"], layer["diff_id"], "an uncompressed layer's digest is its diff_id");
        assert_eq!(layer["diff_id"], gzipped["diff_id"]);
        assert_eq!(layer["erofs"], gzipped["erofs"], "one EROFS file per diff_id, shared");
    }
}

#[test]
fn multi_platform_index_loads_the_wanted_platform() {
    let fx = oci_fixtures();
    let archive = fx.join("multi.tar");
    let archive = archive.to_str().unwrap();
    let msb = Msb::new();
    msb.ok(["load", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let base = msb.inspect("alpine:3.20");

    msb.ok(["load", "-i", archive]);
    let host = msb.inspect("multi:1");
    assert_eq!(host["platform"], "linux/amd64");
    assert_eq!(host["config_digest"], base["config_digest"]);

    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", archive, "--platform", "linux/s390x"]);
    assert!(error.contains("no image for platform linux/s390x") && error.contains("linux/arm64/v8"), "{error}");
    assert_eq!(msb.snapshot(), before, "a failed load changes nothing");

    msb.ok(["load", "-i", archive, "--platform", "linux/arm64"]);
    let arm = msb.inspect("multi:1");
    assert_eq!(arm["platform"], "linux/arm64/v8");
    let dir = scratch();
    let mount = Mount::erofs(Path::new(arm["layers"][0]["erofs"].as_str().unwrap()), dir.path());
    let arch = std::fs::read_to_string(dir.path().join("ARCH")).unwrap();
    assert_eq!(arch, "arm\n");
    drop(mount);

    let all = Msb::new();
    all.ok(["load", "-i", archive, "--all-platforms"]);
    let (stdout, _) = all.ok(["images", "--format", "json"]);
    let images: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    let platforms = all.inspect("multi:1")["platforms"].clone();
    assert_eq!(platforms, serde_json::json!(["linux/amd64", "linux/arm64/v8"]));
    // The ref names the index; skopeo picks a platform from it.
    let layout = format!("oci:{}:docker.io/library/multi:1", all.home().join("oci").display());
    let raw = skopeo_json(&["--raw", &layout]);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 3, "two platforms and an attestation");
    // The stored index is complete: its attestation came along, so a copy
    // of every manifest succeeds, from the store and from a save.
    let dir = scratch();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", &layout])
        .arg(format!("oci:{}:all", dir.path().join("copy").display())));
    let saved = dir.path().join("saved.tar");
    all.ok(["save", "-o", saved.to_str().unwrap(), "multi:1"]);
    let from_save = format!("oci-archive:{}:docker.io/library/multi:1", saved.display());
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", &from_save])
        .arg(format!("oci:{}:all", dir.path().join("again").display())));
    all.ok(["rmi", "multi:1"]);
    assert_eq!(std::fs::read_dir(all.home().join("oci/blobs/sha256")).unwrap().count(), 0, "gc takes attachments too");
}

#[test]
fn the_store_is_an_oci_layout_other_tools_read() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let image = msb.inspect("alpine:3.20");
    let layout = format!("oci:{}:docker.io/library/alpine:3.20", msb.home().join("oci").display());
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &layout]));
    let digest = format!("sha256:{:x}", Sha256::digest(raw.as_bytes()));
    assert_eq!(image["manifest_digest"], digest.as_str());
    require("umoci");
    let tags = run(Command::new("umoci").args(["ls", "--layout"]).arg(msb.home().join("oci")));
    assert!(tags.lines().any(|l| l == "docker.io/library/alpine:3.20"), "{tags}");
}
