//! What the host verifies whatever a decoder says, and what the store
//! holds afterwards: descriptor sizes, media types decided by parsing,
//! layers reused only on the store's own record, OCI manifests for archives
//! that have none, platforms, and names that are only a tag.
//!
//! Archives are skopeo's and umoci's, edited the way a hostile or careless
//! tool would edit them (JSON rewritten, digests recomputed, so that only the
//! one thing under test is wrong).

mod common;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A copy of skopeo's `oci:` directory of the two-layer test image (gzip
/// layers, ref alpine:3.20).
fn oci_dir(into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).expect("mkdir");
    let dir = into.join("layout");
    run(Command::new("cp").arg("-a").arg(oci_fixtures().join("oci-dir")).arg(&dir));
    dir
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON")).expect("JSON")
}

/// Writes `value` as a blob of the layout; returns (digest, size).
fn write_blob(dir: &Path, value: &Value) -> (String, u64) {
    let bytes = serde_json::to_vec(value).expect("serialize");
    let digest = sha256(&bytes);
    std::fs::write(blob(dir, &digest), &bytes).expect("write blob");
    (digest, bytes.len() as u64)
}

/// Rewrites the layout's only image: `edit` changes its index.json entry,
/// manifest and config; the config and manifest are stored again under
/// their new digests, and every descriptor pointing at them follows, unless
/// `edit` set a digest or size itself.
fn edit(dir: &Path, edit: impl FnOnce(&mut Value, &mut Value, &mut Value)) {
    let mut index = read_json(&dir.join("index.json"));
    let mut manifest = read_json(&blob(dir, index["manifests"][0]["digest"].as_str().unwrap()));
    let mut config = read_json(&blob(dir, manifest["config"]["digest"].as_str().unwrap()));
    let (old_config, old_manifest) = (manifest["config"].clone(), index["manifests"][0].clone());
    edit(&mut index["manifests"][0], &mut manifest, &mut config);
    let (digest, size) = write_blob(dir, &config);
    if manifest["config"]["digest"] == old_config["digest"] {
        manifest["config"]["digest"] = json!(digest);
    }
    if manifest["config"]["size"] == old_config["size"] {
        manifest["config"]["size"] = json!(size);
    }
    let (digest, size) = write_blob(dir, &manifest);
    if index["manifests"][0]["digest"] == old_manifest["digest"] {
        index["manifests"][0]["digest"] = json!(digest);
    }
    if index["manifests"][0]["size"] == old_manifest["size"] {
        index["manifests"][0]["size"] = json!(size);
    }
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).expect("write index.json");
}

/// A store that exists (so that a snapshot before a load has its files).
fn store() -> Msb {
    let msb = Msb::new();
    msb.ok(["images"]);
    msb
}

#[test]
fn descriptor_sizes_are_checked() {
    let tmp = scratch();
    let msb = store();
    let dir = oci_dir(tmp.path());
    edit(&dir, |_, manifest, _| {
        let size = manifest["layers"][1]["size"].as_u64().unwrap();
        manifest["layers"][1]["size"] = json!(size + 1);
    });
    msb.refused(&["load", "-i", dir.to_str().unwrap()], &[], "its descriptor says");

    let dir = oci_dir(&tmp.path().join("config"));
    edit(&dir, |_, manifest, config| {
        config["author"] = json!("someone");
        manifest["config"]["size"] = json!(3);
    });
    msb.refused(&["load", "-i", dir.to_str().unwrap()], &[], "the manifest says 3");
}

#[test]
fn unknown_media_types_are_refused_by_name() {
    let tmp = scratch();
    let msb = store();
    let unknown = "application/vnd.example.unknown.v1";
    let dir = oci_dir(tmp.path());
    edit(&dir, |_, manifest, _| manifest["layers"][0]["mediaType"] = json!(unknown));
    msb.refused(&["load", "-i", dir.to_str().unwrap()], &[], &format!("media type {unknown} is not a layer msb knows"));

    let dir = oci_dir(&tmp.path().join("config"));
    edit(&dir, |_, manifest, _| manifest["config"]["mediaType"] = json!(unknown));
    msb.refused(&["load", "-i", dir.to_str().unwrap()], &[], &format!("media type {unknown} is not an image config"));

    // The compression a media type states is not held against the blob:
    // skopeo labels uncompressed layers tar+gzip (its `plain` fixture), and
    // containerd and docker sniff too.
    let dir = oci_dir(&tmp.path().join("plain"));
    edit(&dir, |_, manifest, _| manifest["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar"));
    msb.ok(["load", "-i", dir.to_str().unwrap()]);
}

#[test]
fn a_manifest_labelled_as_an_index_is_refused() {
    let tmp = scratch();
    let msb = store();
    let dir = oci_dir(tmp.path());
    edit(&dir, |entry, _, _| entry["mediaType"] = json!("application/vnd.oci.image.index.v1+json"));
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", dir.to_str().unwrap()]);
    // The decoder walks it as an index and finds no image, or the host
    // finds a manifest where an index was declared: never a stored label
    // that gc would walk the wrong way.
    assert!(error.contains("index"), "{error}");
    assert_eq!(msb.snapshot(), before);

    // The store's labels are what the bytes are.
    let good = oci_dir(&tmp.path().join("good"));
    msb.ok(["load", "-i", good.to_str().unwrap()]);
    let index = read_json(&msb.home().join("oci/index.json"));
    assert_eq!(index["manifests"][0]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
}

#[test]
fn a_stored_layer_is_reused_only_for_the_diff_id_recorded_with_its_blob() {
    let tmp = scratch();
    let msb = store();
    let good = oci_dir(tmp.path());
    msb.ok(["load", "-i", good.to_str().unwrap()]);
    let image = msb.inspect("alpine:3.20");
    let layers = image["layers"].as_array().unwrap();
    for layer in layers {
        let record =
            msb.home().join("records/sha256").join(format!("{}.json", &layer["digest"].as_str().unwrap()[7..]));
        assert_eq!(read_json(&record)["diff_id"], layer["diff_id"], "{}", record.display());
    }

    // Both blobs and both EROFS images are in the store; this archive pairs
    // the first blob with the second layer's diff_id.
    let dir = oci_dir(&tmp.path().join("paired"));
    let second = layers[1]["diff_id"].clone();
    edit(&dir, |_, _, config| config["rootfs"]["diff_ids"][0] = second);
    msb.refused(&["load", "-i", dir.to_str().unwrap()], &[], "the config says");

    // A store without the record verifies the layer again, and records it.
    let record =
        msb.home().join("records/sha256").join(format!("{}.json", &layers[0]["digest"].as_str().unwrap()[7..]));
    std::fs::remove_file(&record).unwrap();
    msb.ok(["load", "-i", good.to_str().unwrap()]);
    assert!(record.is_file());
}

#[test]
fn version_1_and_2_stores_are_upgraded() {
    let msb = store();
    msb.ok(["images"]);
    std::fs::write(msb.home().join("msb-store.json"), "{\"version\":1}\n").unwrap();
    std::fs::remove_dir_all(msb.home().join("records")).unwrap();
    let tmp = scratch();
    msb.ok(["load", "-i", oci_dir(tmp.path()).to_str().unwrap()]);
    assert_eq!(read_json(&msb.home().join("msb-store.json"))["version"], 3);
    // Version 2 has full images only, which version 3 reads as they are.
    std::fs::write(msb.home().join("msb-store.json"), "{\"version\":2}\n").unwrap();
    msb.ok(["check"]);
    let settings = read_json(&msb.home().join("msb-store.json"));
    assert_eq!((&settings["version"], &settings["layer_format"]), (&3.into(), &"tar-index".into()));
    std::fs::write(msb.home().join("msb-store.json"), "{\"version\":99}\n").unwrap();
    let error = msb.fails(["images"]);
    assert!(error.contains("version 99") && error.contains("version 3"), "{error}");
}

/// Archives without a manifest (classic docker save, v1) get an OCI one, so
/// containers/image's `oci:` transport, which ignores docker media types in
/// a layout, reads every stored image.
#[test]
fn every_stored_image_is_readable_by_skopeo_and_umoci() {
    let docker = fixtures("make-docker.sh");
    let msb = store();
    let again = Msb::new();
    for archive in ["classic.tar", "v1.tar", "docker-archive.tar"] {
        let path = docker.join(archive);
        msb.ok(["load", "-i", path.to_str().unwrap()]);
        again.ok(["load", "-i", path.to_str().unwrap()]);
    }
    let layout = msb.home().join("oci");
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    assert!(entries.len() >= 3, "{index}");
    let copies = scratch();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{entry}");
        let manifest = read_json(&blob(&layout, entry["digest"].as_str().unwrap()));
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar", "{manifest}");
        }
        let Some(name) = entry["annotations"]["org.opencontainers.image.ref.name"].as_str() else { continue };
        let spec = format!("oci:{}:{name}", layout.display());
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", &spec]));
        assert_eq!(sha256(raw.as_bytes()), entry["digest"].as_str().unwrap(), "{name}");
        // A copy reads and verifies every blob through the manifest.
        let copy = format!("oci:{}:x", copies.path().join(i.to_string()).display());
        run(Command::new("skopeo").args(["copy", "-q", &spec, &copy]));
    }
    // Deterministic: another store made the same manifests.
    assert_eq!(read_json(&again.home().join("oci/index.json")), index);
    require("umoci");
    let tags = run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout));
    assert!(tags.lines().any(|l| l == "docker.io/library/alpine:3.20"), "{tags}");
}

#[test]
fn an_explicit_platform_must_match_even_a_single_image() {
    let msb = store();
    let archive = oci_fixtures().join("oci-archive.tar");
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", archive.to_str().unwrap(), "--platform", "linux/arm64"]);
    assert!(error.contains("no image for platform linux/arm64") && error.contains("linux/amd64"), "{error}");
    assert_eq!(msb.snapshot(), before);
    let (_, stderr) = msb.ok(["load", "-i", archive.to_str().unwrap(), "--platform", "linux/amd64"]);
    assert_eq!(stderr.trim(), "✓ Loaded alpine:3.20");
}

/// umoci, buildkit and `skopeo copy … oci:DIR:TAG` name an image in
/// `org.opencontainers.image.ref.name` by a tag alone.
#[test]
fn a_name_that_is_only_a_tag_names_no_repository() {
    let tmp = scratch();
    let dir = tmp.path().join("tagged");
    let source = format!("oci:{}:base", oci_fixtures().join("layout").display());
    run(Command::new("skopeo").args(["copy", "-q", &source, &format!("oci:{}:latest", dir.display())]));
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "latest");

    let msb = store();
    let (_, stderr) = msb.ok(["load", "-i", dir.to_str().unwrap()]);
    let (stdout, _) = msb.ok(["images", "--format", "json"]);
    let images: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    assert_eq!(images[0]["ref"], Value::Null, "{images}");
    let id = images[0]["config_digest"].as_str().unwrap().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("note: ")
            && lines[0].contains("only by the tag \"latest\"")
            && lines[0].contains("-t NAME"),
        "{stderr}"
    );
    assert_eq!(lines[1], format!("✓ Loaded {id}"));
    assert!(msb.fails(["inspect", "latest"]).contains("no such image"));

    let (_, stderr) = msb.ok(["load", "-i", dir.to_str().unwrap(), "-t", "mybase:1"]);
    assert_eq!(stderr.trim(), "✓ Loaded mybase:1");
    assert_eq!(msb.inspect("mybase:1")["config_digest"], id.as_str());
    let (_, stderr) = msb.ok(["load", "-q", "-i", dir.to_str().unwrap()]);
    assert_eq!(stderr, "", "-q prints no note");
}

#[test]
fn a_layer_larger_than_allowed_uncompressed_is_refused_naming_the_limit() {
    let tmp = scratch();
    let msb = store();
    let dir = oci_dir(tmp.path());
    let args = ["load", "-i", dir.to_str().unwrap()];
    let error = msb.refused(&args, &[("MSB_LAYER_MAX_GIB", "0")], "limit for one layer (MSB_LAYER_MAX_GIB)");
    assert!(error.contains(": layer "), "names the layer: {error}");
    msb.refused(&args, &[("MSB_LAYER_MAX_GIB", "lots")], "MSB_LAYER_MAX_GIB=\"lots\" is not a number");
}
