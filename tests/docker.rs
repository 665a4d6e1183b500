//! `msb load` of docker archives: `skopeo copy … docker-archive:`, docker
//! 25+ (an OCI layout and a `manifest.json` in one tar), classic `docker
//! save` (`<id>/layer.tar`, symlinked duplicates, untagged images) and
//! legacy v1 (`repositories` only). The same image in every form must give
//! the same layers.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The archives of `tests/fixtures/make-docker.sh`.
fn fixtures() -> PathBuf {
    common::fixtures("make-docker.sh")
}

/// Digests the fixture script recorded (`expected.json`).
fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("read expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn archive(name: &str) -> String {
    fixtures().join(name).to_str().expect("UTF-8 path").to_string()
}

/// `msb load -i NAME`; returns the `✓ Loaded` lines.
fn load(msb: &Msb, name: &str) -> String {
    let (_, stderr) = msb.ok(["load", "-i", &archive(name)]);
    stderr.trim().to_string()
}

fn strings(values: &Value) -> Vec<String> {
    values.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_string()).collect()
}

/// (diff_id, EROFS path) of each layer of an `inspect`.
fn layers(image: &Value) -> Vec<(String, String)> {
    let layers = image["layers"].as_array().expect("layers");
    layers
        .iter()
        .map(|l| (l["diff_id"].as_str().unwrap().to_string(), l["erofs"].as_str().unwrap().to_string()))
        .collect()
}

fn diff_ids(image: &Value) -> Vec<String> {
    layers(image).into_iter().map(|(d, _)| d).collect()
}

/// The config blob of `image` in the store (an OCI layout).
fn stored_config(msb: &Msb, image: &Value) -> Value {
    let digest = image["config_digest"].as_str().expect("config_digest");
    let path = msb.home().join("oci/blobs/sha256").join(&digest[7..]);
    serde_json::from_slice(&std::fs::read(path).expect("config blob in the store")).expect("config is JSON")
}

#[test]
fn loads_a_skopeo_docker_archive() {
    let msb = Msb::new();
    assert_eq!(load(&msb, "docker-archive.tar"), "✓ Loaded alpine:3.20");
    let spec = format!("docker-archive:{}", archive("docker-archive.tar"));
    let manifest = skopeo_json(&["--raw", &spec]);
    let config = skopeo_json(&["--config", &spec]);
    let image = msb.inspect("alpine:3.20");
    // The image ID docker shows is the config digest.
    assert_eq!(image["config_digest"], manifest["config"]["digest"]);
    assert_eq!(image["config_digest"], expected()["config"]);
    assert_eq!(diff_ids(&image), strings(&config["rootfs"]["diff_ids"]));
    assert_eq!(image["platform"], "linux/amd64");
    let id = image["config_digest"].as_str().unwrap();
    assert_eq!(msb.inspect(id)["manifest_digest"], image["manifest_digest"]);

    let (stdout, _) = msb.ok(["plugin", "detect", &archive("docker-archive.tar")]);
    assert!(stdout.lines().next().is_some_and(|l| l.starts_with("docker-save") && l.ends_with("100")), "{stdout}");
}

#[test]
fn every_tag_is_loaded() {
    let msb = Msb::new();
    assert_eq!(load(&msb, "two-tags.tar"), "✓ Loaded alpine:3.20\n✓ Loaded mine:2");
    assert_eq!(msb.inspect("mine:2")["config_digest"], msb.inspect("alpine:3.20")["config_digest"]);
}

#[test]
fn docker25_keeps_the_oci_manifest() {
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "detect", &archive("docker25.tar")]);
    let first: Vec<&str> = stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(first, ["docker-save", "95"], "{stdout}");
    assert_eq!(load(&msb, "docker25.tar"), "✓ Loaded alpine:3.20\n✓ Loaded mine:2");
    let expected = expected();
    for name in ["alpine:3.20", "mine:2"] {
        let image = msb.inspect(name);
        assert_eq!(image["manifest_digest"], expected["docker25_manifest"], "{name}");
        assert_eq!(image["config_digest"], expected["config"], "{name}");
        assert_eq!(diff_ids(&image), strings(&expected["diff_ids"]));
    }
}

#[test]
fn classic_docker_save_with_an_untagged_image_and_a_symlinked_layer() {
    let msb = Msb::new();
    let expected = expected();
    let untagged = expected["classic_untagged"].as_str().unwrap();
    assert_eq!(load(&msb, "classic.tar"), format!("✓ Loaded alpine:3.20\n✓ Loaded {untagged}"));
    let tagged = msb.inspect("alpine:3.20");
    assert_eq!(tagged["config_digest"], expected["config"]);
    let other = msb.inspect(untagged);
    assert_eq!(other["config_digest"], untagged);
    assert_eq!(stored_config(&msb, &other)["config"]["Cmd"], serde_json::json!(["/bin/true"]));
    // The symlinked copy is the same layer.
    assert_eq!(layers(&other), layers(&tagged));
    assert_eq!(diff_ids(&other), strings(&expected["diff_ids"]));
}

#[test]
fn a_missing_layer_is_named_and_changes_nothing() {
    let msb = Msb::new();
    load(&msb, "docker-archive.tar");
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", &archive("broken.tar")]);
    assert!(error.contains(r#"broken.tar: manifest.json: layer "abc/layer.tar" is not in the archive"#), "{error}");
    assert_eq!(msb.snapshot(), before);
}

#[test]
fn v1_archive_gets_a_stable_synthesized_config() {
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "detect", &archive("v1.tar")]);
    assert!(stdout.lines().next().is_some_and(|l| l.starts_with("docker-v1") && l.ends_with("100")), "{stdout}");
    assert_eq!(load(&msb, "v1.tar"), "✓ Loaded alpine:3.20\n✓ Loaded alpine:latest");
    let image = msb.inspect("alpine:3.20");
    assert_eq!(msb.inspect("alpine:latest")["manifest_digest"], image["manifest_digest"]);
    assert_eq!(diff_ids(&image), strings(&expected()["diff_ids"]));
    assert_eq!(image["platform"], "linux/amd64");

    let config = stored_config(&msb, &image);
    assert_eq!(strings(&config["rootfs"]["diff_ids"]), diff_ids(&image));
    assert_eq!(config["rootfs"]["type"], "layers");
    let history = config["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["created_by"], "/bin/sh -c #(nop) layer 1");
    assert_eq!(history[1]["author"], "make-docker.sh");
    assert_eq!(config["config"]["Env"], serde_json::json!(["GREETING=hi"]));
    assert!(config.get("id").is_none() && config.get("parent").is_none());

    let again = Msb::new();
    load(&again, "v1.tar");
    let second = again.inspect("alpine:3.20");
    assert_eq!(second["config_digest"], image["config_digest"], "the synthesized config is stable");
    assert_eq!(second["manifest_digest"], image["manifest_digest"]);
}

#[test]
fn every_form_gives_the_same_layers() {
    let msb = Msb::new();
    let mut seen = Vec::new();
    for name in ["oci/oci-archive.tar", "docker-archive.tar", "docker25.tar", "classic.tar", "v1.tar"] {
        msb.ok(["load", "-q", "-i", &archive(name)]);
        seen.push((name, layers(&msb.inspect("alpine:3.20"))));
    }
    let (first, want) = &seen[0];
    assert_eq!(want.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(), strings(&expected()["diff_ids"]));
    for (name, got) in &seen[1..] {
        assert_eq!(got, want, "{name} differs from {first}");
    }
}

#[test]
fn docker_layers_become_erofs_images_of_their_tars() {
    let msb = Msb::new();
    load(&msb, "classic.tar");
    let image = msb.inspect("alpine:3.20");
    for (i, layer) in image["layers"].as_array().expect("layers").iter().enumerate() {
        check_layer_against_tar(layer, &fixtures().join(format!("oci/layers/{i}.tar.gz")));
    }
}

#[test]
fn images_without_archive_manifests_save_stably_and_round_trip() {
    // v1 and classic docker archives have no manifest: msb writes one once,
    // and every save carries it unchanged.
    let msb = Msb::new();
    load(&msb, "v1.tar");
    msb.ok(["load", "-q", "-i", &archive("classic.tar"), "-r", "alpine:3.20=classic:1"]);
    let dir = scratch();
    let (first, second) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    for out in [&first, &second] {
        msb.ok(["save", "-o", out.to_str().unwrap(), "alpine:3.20", "classic:1"]);
    }
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    let other = Msb::new();
    other.ok(["load", "-q", "-i", first.to_str().unwrap()]);
    for name in ["alpine:3.20", "classic:1"] {
        let (before, after) = (msb.inspect(name), other.inspect(name));
        assert_eq!(after["manifest_digest"], before["manifest_digest"], "{name}");
        assert_eq!(after["config_digest"], before["config_digest"], "{name}");
        assert_eq!(diff_ids(&after), diff_ids(&before), "{name}");
    }
}

#[test]
fn an_extracted_docker_save_directory_loads() {
    let dir = scratch();
    run(Command::new("tar").arg("-xf").arg(archive("classic.tar")).arg("-C").arg(dir.path()));
    let msb = Msb::new();
    let (_, stderr) = msb.ok(["load", "-i", dir.path().to_str().unwrap()]);
    assert!(stderr.starts_with("✓ Loaded alpine:3.20"), "{stderr}");
    assert_eq!(msb.inspect("alpine:3.20")["config_digest"], expected()["config"]);
}

/// `msb load ARGS`; returns (success, stderr).
fn try_load(msb: &Msb, args: &[&str]) -> (bool, String) {
    let out = msb.cmd(args).output().expect("run msb");
    (out.status.success(), texts(&out).1)
}

#[test]
fn docker25_whose_index_is_null_absent_or_empty_loads_from_manifest_json() {
    let expected = expected();
    for name in ["docker25-null-index.tar", "docker25-no-index.tar", "docker25-empty-index.tar"] {
        let msb = Msb::new();
        assert_eq!(load(&msb, name), "✓ Loaded alpine:3.20\n✓ Loaded mine:2", "{name}: no note either");
        let image = msb.inspect("mine:2");
        assert_eq!(image["config_digest"], expected["config"], "{name}");
        assert_eq!(diff_ids(&image), strings(&expected["diff_ids"]), "{name}");
        assert_eq!(msb.inspect("alpine:3.20")["manifest_digest"], image["manifest_digest"], "{name}");
    }
}

#[test]
fn docker25_whose_index_disagrees_loads_what_manifest_json_says_with_a_note() {
    let expected = expected();
    let msb = Msb::new();
    let (ok, stderr) = try_load(&msb, &["load", "-i", &archive("docker25-disagreeing-index.tar")]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let notes: Vec<&&str> = lines.iter().filter(|l| l.starts_with("note: plugin docker-save: ")).collect();
    assert!(
        notes.iter().any(|l| l.contains("index.json disagrees with manifest.json")
            && l.contains(expected["config"].as_str().unwrap())),
        "{stderr}"
    );
    assert!(notes.iter().any(|l| l.contains("which manifest.json does not; skipping it")), "{stderr}");
    assert!(lines.ends_with(&["✓ Loaded alpine:3.20", "✓ Loaded mine:2"]), "{stderr}");
    for name in ["alpine:3.20", "mine:2"] {
        let image = msb.inspect(name);
        assert_eq!(image["config_digest"], expected["config"], "{name}: manifest.json's image");
        assert_ne!(image["manifest_digest"], expected["disagreeing_index_manifest"], "{name}");
    }
    // -q: no note, nothing at all.
    let quiet = Msb::new();
    let (ok, stderr) = try_load(&quiet, &["load", "-q", "-i", &archive("docker25-disagreeing-index.tar")]);
    assert!(ok && stderr.is_empty(), "{stderr}");
}

#[test]
fn a_config_named_by_a_wrong_digest_loads_under_the_digest_of_its_bytes() {
    let msb = Msb::new();
    assert_eq!(load(&msb, "wrong-config-name.tar"), "✓ Loaded alpine:3.20");
    let image = msb.inspect("alpine:3.20");
    assert_eq!(image["config_digest"], expected()["config"], "the image ID is the digest of the bytes");
    assert_eq!(diff_ids(&image), strings(&expected()["diff_ids"]));
    // skopeo agrees on the ID.
    let spec = format!("docker-archive:{}", archive("wrong-config-name.tar"));
    assert_eq!(skopeo_json(&["--raw", &spec])["config"]["digest"], image["config_digest"]);
}

#[test]
fn a_layer_blob_whose_bytes_are_not_its_name_is_refused() {
    let msb = Msb::new();
    msb.ok(["images"]);
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", &archive("docker25-damaged-layer.tar")]);
    let layer = expected()["damaged_layer"].as_str().unwrap().to_string();
    assert!(error.contains("docker25-damaged-layer.tar") && error.contains(&layer), "{error}");
    assert_eq!(msb.snapshot(), before);
}

#[test]
fn a_path_held_twice_must_hold_the_same_bytes() {
    let msb = Msb::new();
    msb.ok(["images"]);
    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", &archive("docker25-two-indexes.tar")]);
    assert!(
        error.contains(
            "docker25-two-indexes.tar: index.json: the archive holds this path twice, with different content"
        ),
        "{error}"
    );
    assert_eq!(msb.snapshot(), before);
    // The same file appended twice is the same archive.
    assert_eq!(load(&msb, "docker25-appended-twice.tar"), "✓ Loaded alpine:3.20\n✓ Loaded mine:2");
    assert_eq!(msb.inspect("mine:2")["manifest_digest"], expected()["docker25_manifest"]);
}

#[test]
fn an_index_layer_keeps_its_blob_while_any_image_uses_the_layer() {
    // classic.tar's layers are plain tars: tar-index images reading from
    // their blobs. The same image from the gzip OCI archive reuses those
    // EROFS images; removing the docker image must leave the plain blobs.
    let msb = Msb::new();
    load(&msb, "classic.tar");
    let docker = msb.inspect("alpine:3.20");
    for layer in docker["layers"].as_array().expect("layers") {
        let (_, devices) = layer_files(layer);
        assert_eq!(devices.len(), 1, "a plain layer is a tar index: {layer}");
    }
    msb.ok(["load", "-q", "-t", "gzipped:1", "-i", &archive("oci/oci-archive.tar")]);
    let gzipped = msb.inspect("gzipped:1");
    assert_eq!(gzipped["layers"][0]["erofs"], docker["layers"][0]["erofs"], "one EROFS image per diff_id");
    msb.ok(["rmi", "alpine:3.20"]);
    msb.ok(["gc"]);
    for layer in gzipped["layers"].as_array().expect("layers") {
        let (erofs, devices) = layer_files(layer);
        assert!(erofs.is_file() && devices.iter().all(|d| d.is_file()), "gc kept {layer}");
    }
    msb.ok(["check"]);
    let dir = scratch();
    let target = dir.path().join("root");
    std::fs::create_dir(&target).unwrap();
    msb.ok(["mount", "gzipped:1", target.to_str().unwrap()]);
    let listed = std::fs::read_dir(&target).map(|d| d.count());
    msb.ok(["umount", target.to_str().unwrap()]);
    assert!(listed.is_ok_and(|n| n > 0), "the mount shows the image's files");
    // Once no image uses them, gc removes the gzip blobs too.
    msb.ok(["rmi", "gzipped:1"]);
    msb.ok(["gc"]);
    for layer in gzipped["layers"].as_array().expect("layers") {
        assert!(!blob_path(&msb, &layer["digest"]).exists(), "gc removed {layer}");
    }
    msb.ok(["check"]);
}

fn blob_path(msb: &Msb, digest: &Value) -> PathBuf {
    msb.home().join("oci/blobs/sha256").join(&digest.as_str().expect("a digest")[7..])
}

#[test]
fn a_warm_reload_reads_no_layer_bytes() {
    // The store has a verified layer for every diff_id of the config: the
    // archive's layer files are not read again (here they are damaged, at
    // the same size, after the first load, and the reload does not notice),
    // as docker does.
    let msb = Msb::new();
    let dir = scratch();
    let copy = dir.path().join("classic.tar");
    std::fs::copy(archive("classic.tar"), &copy).unwrap();
    msb.ok(["load", "-q", "-i", copy.to_str().unwrap()]);
    let first = msb.inspect("alpine:3.20");
    let mut bytes = std::fs::read(&copy).unwrap();
    let mut damaged = 0;
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut offsets = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().ends_with("layer.tar") && entry.size() > 1024 {
            offsets.push(entry.raw_file_position() + 600);
        }
    }
    for at in offsets {
        bytes[at as usize] ^= 0xff;
        damaged += 1;
    }
    assert!(damaged >= 2, "classic.tar has layer files");
    std::fs::write(&copy, &bytes).unwrap();
    msb.ok(["load", "-q", "-i", copy.to_str().unwrap()]);
    assert_eq!(msb.inspect("alpine:3.20"), first);
    msb.ok(["check"]);
    // A fresh store reads them, and refuses the damage.
    let error = Msb::new().fails(["load", "-q", "-i", copy.to_str().unwrap()]);
    assert!(error.contains("classic.tar"), "{error}");
}
