//! Naming on load: `-r SRC=DST`, `-t REF`, directories with several images,
//! an image of another platform, and an archive with no image at all.

mod common;

use common::*;

#[test]
fn renames_and_tags() {
    let fx = oci_fixtures();
    let archive = fx.join("oci-archive.tar");
    let archive = archive.to_str().unwrap();

    let msb = Msb::new();
    let (_, stderr) = msb.ok(["load", "-i", archive, "-r", "alpine:3.20=mirror.example/team/alpine:1"]);
    assert_eq!(stderr.trim(), "✓ Loaded mirror.example/team/alpine:1");
    msb.fails(["inspect", "alpine:3.20"]);

    let before = msb.snapshot();
    let error = msb.fails(["load", "-i", archive, "-r", "nothere:1=x:1"]);
    assert!(error.contains("-r nothere:1=x:1: the archive has no image named nothere:1"), "{error}");
    assert_eq!(msb.snapshot(), before);

    let (_, stderr) = msb.ok(["load", "-i", archive, "-t", "mine:1"]);
    assert_eq!(stderr.trim(), "✓ Loaded mine:1");
    assert_eq!(
        msb.inspect("mine:1")["manifest_digest"],
        msb.inspect("mirror.example/team/alpine:1")["manifest_digest"]
    );

    let error = msb.fails(["load", "-i", fx.join("layout").to_str().unwrap(), "-t", "one:1"]);
    assert!(error.contains("--tag one:1: the archive holds 3 images; --tag needs exactly one"), "{error}");

    // Bad usage exits with 2.
    let out = msb.cmd(["load", "-i", archive, "-r", "no-equals-sign"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("expected SRC=DST"));
}

#[test]
fn a_directory_with_several_images_loads_them_all() {
    // umoci names them by tags alone (base, arm, multi): no repository, so
    // no ref without -t, and a note for each.
    let fx = oci_fixtures();
    let layout = fx.join("layout");
    let msb = Msb::new();
    let (_, stderr) = msb.ok(["load", "-i", layout.to_str().unwrap()]);
    for tag in ["base", "arm", "multi"] {
        assert!(stderr.contains(&format!("only by the tag \"{tag}\"")), "{stderr}");
    }
    let (stdout, _) = msb.ok(["images", "--format", "json"]);
    let images: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(images.as_array().unwrap().iter().all(|i| i["ref"].is_null()), "{images}");

    // -t REPOSITORY keeps each tag, as containerd's --base-name does.
    let (_, stderr) = msb.ok(["load", "-i", layout.to_str().unwrap(), "-t", "example.com/team/app"]);
    for tag in ["base", "arm", "multi"] {
        assert!(stderr.contains(&format!("✓ Loaded example.com/team/app:{tag}")), "{stderr}");
    }
    // `arm` is an arm64 image on its own: loaded as it is, with a note.
    assert!(stderr.contains("note: the image is for linux/arm64; this machine is linux/amd64"), "{stderr}");
    assert_eq!(msb.inspect("example.com/team/app:arm")["platform"], "linux/arm64");
    assert_eq!(
        msb.inspect("example.com/team/app:multi")["config_digest"],
        msb.inspect("example.com/team/app:base")["config_digest"]
    );
}

#[test]
fn an_archive_without_images_loads_nothing_and_says_so() {
    let dir = scratch();
    let layout = dir.path().join("empty");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(layout.join("index.json"), r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    let msb = Msb::new();
    let (stdout, stderr) = msb.ok(["load", "-i", layout.to_str().unwrap(), "--format", "json"]);
    assert_eq!(stderr.trim(), "The archive holds no images; nothing was loaded.");
    assert_eq!(stdout.trim(), "[]");
}

#[test]
fn concurrent_loads_all_land() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["images"]);
    let sources = [fx.join("oci-archive.tar"), fx.join("plain"), fx.join("multi.tar"), fx.join("oci-dir")];
    let children: Vec<_> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let name = format!("parallel:{i}");
            msb.cmd(["load", "-q", "-i", source.to_str().unwrap(), "-t", &name]).spawn().unwrap()
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let (stdout, _) = msb.ok(["images", "--format", "json"]);
    let images: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut refs: Vec<&str> = images.as_array().unwrap().iter().filter_map(|i| i["ref"].as_str()).collect();
    refs.sort();
    assert_eq!(refs, (0..4).map(|i| format!("docker.io/library/parallel:{i}")).collect::<Vec<_>>());
    assert_eq!(std::fs::read_dir(msb.home().join("tmp")).unwrap().count(), 0, "no staging left behind");
}
