//! Every platform of an index loaded with `--all-platforms` is reachable:
//! by its own image ID, with `inspect --platform`, and listed by
//! `images --all`; checked against skopeo's view of the stored index.

mod common;

use common::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("msb prints JSON")
}

#[test]
fn each_platform_of_an_index_is_reachable() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "--all-platforms", "-i", fx.join("multi.tar").to_str().unwrap()]);

    // What skopeo reads from the store: the index and each platform's config.
    let layout = format!("oci:{}:docker.io/library/multi:1", msb.home().join("oci").display());
    let index = skopeo_json(&["--raw", &layout]);
    let mut want = Vec::new(); // (platform, manifest digest, config digest)
    for m in index["manifests"].as_array().unwrap() {
        let p = &m["platform"];
        if p["os"] == "unknown" {
            continue;
        }
        let mut platform = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
        if let Some(v) = p["variant"].as_str() {
            platform = format!("{platform}/{v}");
        }
        let manifest_path = msb.home().join("oci/blobs/sha256").join(&m["digest"].as_str().unwrap()[7..]);
        let manifest = json(&std::fs::read_to_string(manifest_path).unwrap());
        want.push((platform, m["digest"].clone(), manifest["config"]["digest"].clone()));
    }
    assert_eq!(want.len(), 2, "two platforms: {index}");
    assert_ne!(want[0].2, want[1].2);

    // `images` keeps one row per ref; `images --all` one per platform.
    let rows = json(&msb.ok(["images", "--format", "json"]).0);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["platform"], "linux/amd64");
    let index_digest = rows[0]["index_digest"].clone();
    assert!(index_digest.as_str().is_some_and(|d| d.starts_with("sha256:")), "{rows}");
    let all = json(&msb.ok(["images", "--all", "--format", "json"]).0);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for (row, (platform, manifest, config)) in all.iter().zip(&want) {
        assert_eq!(row["ref"], "docker.io/library/multi:1");
        assert_eq!(row["platform"], platform.as_str());
        assert_eq!(&row["manifest_digest"], manifest);
        assert_eq!(&row["config_digest"], config);
        assert_eq!(row["index_digest"], index_digest);
    }
    let (text, _) = msb.ok(["images", "--all"]);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("multi:1 ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("linux/amd64") && lines[1].contains("linux/arm64/v8"), "{text}");

    for (platform, manifest, config) in &want {
        let id = config.as_str().unwrap();
        // By full image ID and by a short prefix, like docker.
        for name in [id.to_string(), id[7..19].to_string()] {
            let image = msb.inspect(&name);
            assert_eq!(image["platform"], platform.as_str(), "{name}");
            assert_eq!(&image["manifest_digest"], manifest);
            assert_eq!(image["ref"], "docker.io/library/multi:1");
            assert_eq!(image["index_digest"], index_digest);
            assert_eq!(image["platforms"], serde_json::json!(["linux/amd64", "linux/arm64/v8"]));
        }
        // By ref and platform.
        let image = json(&msb.ok(["inspect", "--format", "json", "--platform", platform, "multi:1"]).0);
        assert_eq!(&image["config_digest"], config);
        let (text, _) = msb.ok(["inspect", "--platform", platform, "multi:1"]);
        assert!(text.contains(&format!("Platform:  {platform}")), "{text}");
    }
    // `linux/arm64` finds `linux/arm64/v8`; an ID and a platform must agree.
    let arm = json(&msb.ok(["inspect", "--format", "json", "--platform", "linux/arm64", "multi:1"]).0);
    assert_eq!(arm["config_digest"], want[1].2);
    let error = msb.fails(["inspect", "--platform", "linux/amd64", want[1].2.as_str().unwrap()]);
    assert!(error.contains("no such image") && error.contains("linux/amd64"), "{error}");
    let error = msb.fails(["inspect", "--platform", "linux/s390x", "multi:1"]);
    assert!(
        error.contains("multi:1 for platform linux/s390x") && error.contains("linux/amd64, linux/arm64/v8"),
        "{error}"
    );
    let error = msb.fails(["inspect", "--platform", "linux", "multi:1"]);
    assert!(error.contains("expected os/arch[/variant]"), "{error}");
}

#[test]
fn a_single_platform_image_answers_for_its_own_platform_only() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let image = json(&msb.ok(["inspect", "--format", "json", "--platform", "linux/amd64", "alpine:3.20"]).0);
    assert_eq!(image["platform"], "linux/amd64");
    assert_eq!(image["index_digest"], Value::Null);
    let error = msb.fails(["inspect", "--platform", "linux/arm64", "alpine:3.20"]);
    assert!(error.contains("alpine:3.20 for platform linux/arm64 (the store has linux/amd64)"), "{error}");
    let rows = json(&msb.ok(["images", "--all", "--format", "json"]).0);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
}
