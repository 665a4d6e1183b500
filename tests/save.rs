//! `msb save`, `tag`, `rmi`, `gc`: archives other tools read, byte-for-byte
//! round trips, and a store with no orphans.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn layers_of(image: &Value) -> Vec<(String, String)> {
    image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap().to_string(), l["diff_id"].as_str().unwrap().to_string()))
        .collect()
}

fn same_image(a: &Value, b: &Value) {
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
    assert_eq!(a["config_digest"], b["config_digest"]);
    assert_eq!(layers_of(a), layers_of(b));
}

#[test]
fn save_round_trips_through_skopeo_and_back() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    msb.ok(["load", "-q", "-i", fx.join("plain").to_str().unwrap()]);
    let alpine = msb.inspect("alpine:3.20");
    let plain = msb.inspect("plain:1");

    let dir = scratch();
    let out = dir.path().join("both.tar");
    msb.ok(["save", "-o", out.to_str().unwrap(), "-r", "plain:1=example.com/team/plain:2", "alpine:3.20", "plain:1"]);
    let again = dir.path().join("again.tar");
    msb.ok(["save", "-o", again.to_str().unwrap(), "-r", "plain:1=example.com/team/plain:2", "alpine:3.20", "plain:1"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap(), "save is deterministic");

    // skopeo reads it image by image, as docker-archive and as oci-archive.
    for (name, image) in [("alpine:3.20", &alpine), ("example.com/team/plain:2", &plain)] {
        let config = skopeo_json(&["--config", &format!("docker-archive:{}:{name}", out.display())]);
        let diff_ids: Vec<String> =
            config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().into()).collect();
        assert_eq!(diff_ids, layers_of(image).into_iter().map(|(_, d)| d).collect::<Vec<_>>());
    }
    let oci_name = format!("oci-archive:{}:docker.io/library/alpine:3.20", out.display());
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &oci_name]));
    let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()));
    assert_eq!(alpine["manifest_digest"], digest.as_str(), "skopeo reads the manifest msb was given");
    let raw: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["config"]["digest"], alpine["config_digest"]);

    // msb → msb: the same digests.
    let other = Msb::new();
    let (_, stderr) = other.ok(["load", "-i", out.to_str().unwrap()]);
    assert!(
        stderr.contains("✓ Loaded alpine:3.20") && stderr.contains("✓ Loaded example.com/team/plain:2"),
        "{stderr}"
    );
    same_image(&other.inspect("alpine:3.20"), &alpine);
    same_image(&other.inspect("example.com/team/plain:2"), &plain);

    // msb → skopeo → msb: skopeo copies the saved OCI image into a docker
    // archive, which loads with the same config and diff_ids.
    let copied = dir.path().join("copied.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &oci_name,
        &format!("docker-archive:{}:copied:1", copied.display()),
    ]));
    let third = Msb::new();
    third.ok(["load", "-q", "-i", copied.to_str().unwrap()]);
    let image = third.inspect("copied:1");
    assert_eq!(image["config_digest"], alpine["config_digest"]);
}

#[test]
fn every_format_saves_to_a_file_or_stdout() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let alpine = msb.inspect("alpine:3.20");
    let dir = scratch();
    for format in ["oci", "docker", "combined"] {
        let out = dir.path().join(format!("{format}.tar"));
        let file = std::fs::File::create(&out).unwrap();
        let status = msb.cmd(["save", "--format", format, "alpine:3.20"]).stdout(file).status().unwrap();
        assert!(status.success(), "{format}");
        let list = run(Command::new("tar").arg("-tf").arg(&out));
        assert_eq!(list.lines().any(|l| l == "index.json"), format != "docker", "{format}: {list}");
        assert_eq!(list.lines().any(|l| l == "manifest.json"), format != "oci", "{format}: {list}");
        let other = Msb::new();
        other.ok(["load", "-q", "-i", out.to_str().unwrap()]);
        let loaded = other.inspect("alpine:3.20");
        assert_eq!(loaded["config_digest"], alpine["config_digest"], "{format}");
        assert_eq!(layers_of(&loaded), layers_of(&alpine), "{format}");
        if format != "docker" {
            assert_eq!(loaded["manifest_digest"], alpine["manifest_digest"], "{format}: the OCI manifest travels");
        }
    }
    // An OCI save unpacks to a layout umoci reads.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar").arg("-xf").arg(dir.path().join("oci.tar")).arg("-C").arg(&layout));
    require("umoci");
    let tags = run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout));
    assert_eq!(tags.trim(), "docker.io/library/alpine:3.20");
}

#[test]
fn tag_rmi_and_gc_leave_no_orphans() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    msb.ok(["load", "-q", "-i", fx.join("multi.tar").to_str().unwrap(), "--platform", "linux/arm64"]);
    msb.ok(["tag", "alpine:3.20", "mine:1"]);
    same_image(&msb.inspect("mine:1"), &msb.inspect("alpine:3.20"));

    let count = |dir: &str| std::fs::read_dir(msb.home().join(dir)).unwrap().count();
    let (blobs, layers) = (count("oci/blobs/sha256"), count("layers"));
    msb.ok(["rmi", "alpine:3.20"]);
    assert_eq!((count("oci/blobs/sha256"), count("layers")), (blobs, layers), "mine:1 still uses everything");
    msb.ok(["rmi", "multi:1"]);
    assert!(count("layers") < layers, "the arm64 layer went");
    let error = msb.fails(["inspect", "multi:1"]);
    assert!(error.contains("no such image"), "{error}");
    msb.ok(["rmi", "mine:1"]);
    assert_eq!((count("oci/blobs/sha256"), count("layers")), (0, 0), "nothing is left");
    let (stdout, _) = msb.ok(["images", "--format", "json"]);
    assert_eq!(stdout.trim(), "[]");
    // What killed commands left in tmp/ goes at once, however fresh: a
    // process directory whose flock nobody holds, and anything else no lock
    // covers (a live command's directory stays: see tests/store.rs).
    let (dead, loose) = (msb.home().join("tmp/proc-1-dead"), msb.home().join("tmp/stage-crashed"));
    std::fs::create_dir_all(dead.join("stage-x")).unwrap();
    std::fs::write(msb.home().join("tmp/proc-1-dead.lock"), b"").unwrap();
    std::fs::create_dir_all(loose.join("blobs")).unwrap();
    msb.ok(["gc"]);
    assert_eq!(std::fs::read_dir(msb.home().join("tmp")).unwrap().count(), 0, "tmp/ after gc");
    assert!(Path::new(&msb.home().join("oci/index.json")).is_file());
}
