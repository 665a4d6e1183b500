//! Interop with podman: its saves (every format) load in msb, and msb's
//! saves (every format) load in podman, with the same image IDs and layers.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// podman with a throwaway store under `dir`.
fn podman(dir: &Path) -> Command {
    require("podman");
    let mut cmd = Command::new("podman");
    cmd.arg("--root").arg(dir.join("root")).arg("--runroot").arg(dir.join("run"));
    cmd.args(["--storage-driver", "vfs", "--events-backend", "none"]);
    cmd
}

/// (image ID, names, diff_ids) of `name` in podman's store.
fn podman_image(dir: &Path, name: &str) -> (String, Vec<String>, Vec<String>) {
    let out = run(podman(dir).args(["image", "inspect", name]));
    let info: Value = serde_json::from_str(&out).unwrap();
    let strings = |v: &Value| {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    (info[0]["Id"].as_str().unwrap().to_string(), strings(&info[0]["RepoTags"]), strings(&info[0]["RootFS"]["Layers"]))
}

fn diff_ids(image: &Value) -> Vec<String> {
    image["layers"].as_array().unwrap().iter().map(|l| l["diff_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn podman_saves_load_in_msb() {
    let fx = oci_fixtures();
    let dir = scratch();
    run(podman(dir.path()).arg("load").arg("-q").arg("-i").arg(fx.join("oci-archive.tar")));
    let (id, _, layers) = podman_image(dir.path(), "localhost/alpine:3.20");
    for format in ["docker-archive", "oci-archive", "oci-dir"] {
        let out = dir.path().join(format);
        run(podman(dir.path()).args(["save", "-q", "--format", format, "-o"]).arg(&out).arg("localhost/alpine:3.20"));
        let msb = Msb::new();
        let (_, stderr) = msb.ok(["load", "-i", out.to_str().unwrap()]);
        assert_eq!(stderr.trim(), "✓ Loaded localhost/alpine:3.20", "{format}");
        let image = msb.inspect("localhost/alpine:3.20");
        assert_eq!(image["config_digest"], format!("sha256:{id}"), "{format}: the image ID podman shows");
        assert_eq!(diff_ids(&image), layers, "{format}");
    }
}

#[test]
fn msb_saves_load_in_podman() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    let image = msb.inspect("alpine:3.20");
    let scratch_dir = scratch();
    for format in ["combined", "oci", "docker"] {
        let archive = scratch_dir.path().join(format!("{format}.tar"));
        msb.ok(["save", "--format", format, "-o", archive.to_str().unwrap(), "alpine:3.20"]);
        let dir = scratch();
        let out = run(podman(dir.path()).arg("load").arg("-i").arg(&archive));
        assert!(out.contains("alpine:3.20"), "{format}: {out}");
        let (id, names, layers) = podman_image(dir.path(), "docker.io/library/alpine:3.20");
        assert_eq!(format!("sha256:{id}"), image["config_digest"].as_str().unwrap(), "{format}");
        assert!(names.iter().any(|n| n == "docker.io/library/alpine:3.20"), "{format}: {names:?}");
        assert_eq!(layers, diff_ids(&image), "{format}");
    }
}
