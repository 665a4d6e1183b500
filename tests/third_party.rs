//! A decoder written outside msb's workspaces, as a third party would:
//! `examples/rootfs-tar`, a crate of its own on the SDK (by path), built
//! with its README's one-liner, installed with `msb plugin install`. It
//! loads plain root file system tarballs (plain, gzip, zstd) made here with
//! tar as one-layer images (`msb load -t`), which the kernel mounts with the
//! tarball's files.
//!
//! Its own unit tests (native, on `MemArchive`) run too.
//!
//! Cost: one release build of the example for wasm32-wasip2 per test
//! binary and one native test build (each about a minute cold, a second
//! warm, in `target/third-party`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ lives in the repository root").to_path_buf()
}

/// `cargo ARGS` at the repository's root, building into
/// `target/third-party`, with what the outer cargo set for this test (which
/// would leak into the build) removed.
fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(root());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_"];
        if key.starts_with("CARGO_") && !keep.iter().any(|k| key.starts_with(k)) {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("CARGO_TARGET_DIR", root().join("target/third-party"));
    cmd
}

/// Builds the example as its README says (`cargo build --release --target
/// wasm32-wasip2 --manifest-path examples/rootfs-tar/Cargo.toml`, with
/// `--locked` to hold it to its committed Cargo.lock), once per test binary;
/// returns the component.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cargo(&["build", "--release", "--locked", "--target", "wasm32-wasip2"])
            .args(["--manifest-path", "examples/rootfs-tar/Cargo.toml"])
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building examples/rootfs-tar failed (is the wasm32-wasip2 target installed?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = root().join("target/third-party/wasm32-wasip2/release/rootfs_tar.wasm");
        assert!(wasm.is_file(), "the build made no {}", wasm.display());
        wasm
    })
}

/// A store with the example installed.
fn store_with_plugin() -> Msb {
    let msb = Msb::new();
    let (stdout, _) = msb.ok([Path::new("plugin"), Path::new("install"), plugin()]);
    assert!(stdout.starts_with("Installed rootfs-tar 0.1.0"), "{stdout}");
    msb
}

/// A small root file system: the host's shell (`bin/dash`, an ELF the
/// decoder reads the platform from) behind a `bin/sh` symlink, a hardlink,
/// `etc` files, an empty dir and a sticky `tmp`. Returns the tree's dir.
fn rootfs(dir: &Path) -> PathBuf {
    let tree = dir.join("rootfs");
    for sub in ["bin", "etc/apt", "usr/bin", "usr/share/doc/base", "var/empty", "tmp"] {
        std::fs::create_dir_all(tree.join(sub)).expect("mkdir");
    }
    let shell = std::fs::canonicalize("/bin/sh").expect("this machine has a /bin/sh");
    std::fs::copy(&shell, tree.join("bin/dash")).expect("copy the host's shell");
    std::os::unix::fs::symlink("dash", tree.join("bin/sh")).expect("symlink");
    std::fs::hard_link(tree.join("bin/dash"), tree.join("usr/bin/dash")).expect("hardlink");
    std::fs::write(tree.join("etc/hostname"), "mybase\n").expect("write");
    std::fs::write(tree.join("etc/os-release"), "ID=mybase\nVERSION_ID=1\n").expect("write");
    std::fs::write(tree.join("etc/apt/sources.list"), "").expect("write");
    std::fs::write(tree.join("usr/share/doc/base/README"), "a root file system made by tests/third_party.rs\n")
        .expect("write");
    run(Command::new("chmod").arg("1777").arg(tree.join("tmp")));
    tree
}

/// `tar` of `tree` into `out` with `extra` options (compression), entries
/// named as `names` says (`.` gives `./etc/…`, as debootstrap tarballs
/// have; the top-level names give `etc/…`, as `docker export` writes).
fn tar(tree: &Path, out: &Path, extra: &[&str], names: &[&str]) {
    require("tar");
    let mut cmd = Command::new("tar");
    cmd.args(["--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner"])
        .args(extra)
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(tree)
        .args(names);
    run(&mut cmd);
}

/// The score `name` gets in `msb plugin detect` output.
fn score(verdicts: &str, name: &str) -> Option<u8> {
    verdicts.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `sha256:<hex>` of a file's bytes.
fn sha256(path: &Path) -> String {
    require("sha256sum");
    let out = run(Command::new("sha256sum").arg(path));
    format!("sha256:{}", out.split_whitespace().next().expect("sha256sum prints a digest"))
}

/// This machine's platform, as msb prints it.
fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64/v8",
        other => panic!("no expected platform for {other}: add it here"),
    }
}

/// The config of `image` (`msb inspect` JSON), from the store.
fn config(msb: &Msb, image: &serde_json::Value) -> serde_json::Value {
    let digest = image["config_digest"].as_str().expect("a config digest");
    let path = msb.home().join("oci/blobs/sha256").join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(&path).expect("read the config blob")).expect("the config is JSON")
}

/// Checks that the image loaded from the tarball whose plain tar is `plain`
/// is that tarball as one layer: platform, config, and the layer's tree
/// (`fsck.erofs`, a kernel mount compared with the tar entry by entry).
fn check_one_layer_image(msb: &Msb, reference: &str, plain: &Path) -> serde_json::Value {
    let image = msb.inspect(reference);
    assert_eq!(image["platform"], host_platform(), "{image}");
    let layers = image["layers"].as_array().expect("inspect lists layers");
    assert_eq!(layers.len(), 1, "{image}");
    let diff_id = sha256(plain);
    assert_eq!(layers[0]["diff_id"], diff_id.as_str(), "the layer is the tarball");
    assert_eq!(layers[0]["digest"], diff_id.as_str(), "stored uncompressed");

    let config = config(msb, &image);
    assert_eq!(config["rootfs"], serde_json::json!({ "type": "layers", "diff_ids": [diff_id] }));
    let platform = [&config["os"], &config["architecture"], &config["variant"]].map(|v| v.as_str().unwrap_or(""));
    assert_eq!(platform.join("/").trim_end_matches('/'), host_platform(), "{config}");
    let env = config["config"]["Env"].as_array().expect("Env");
    assert!(env.iter().any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=/usr/local/sbin:"))), "{config}");
    assert_eq!(config["history"].as_array().map(Vec::len), Some(1), "{config}");

    check_layer_against_tar(&layers[0], plain);
    image
}

#[test]
fn a_gzip_rootfs_tarball_loads_as_a_one_layer_image_that_mounts() {
    let dir = scratch();
    let tree = rootfs(dir.path());
    let archive = dir.path().join("rootfs.tar.gz");
    tar(&tree, &archive, &["--gzip"], &["."]);
    let plain = dir.path().join("rootfs.tar");
    tar(&tree, &plain, &[], &["."]);
    let archive = archive.to_str().unwrap();

    let msb = store_with_plugin();
    let (listed, _) = msb.ok(["plugin", "ls"]);
    assert!(listed.lines().any(|l| l.starts_with("rootfs-tar ")), "{listed}");
    // It claims the tarball, and only it (the built-ins see no image in it).
    let (verdicts, _) = msb.ok(["plugin", "detect", archive]);
    assert_eq!(score(&verdicts, "rootfs-tar"), Some(20), "{verdicts}");
    assert!(verdicts.contains("msb load would use rootfs-tar"), "{verdicts}");

    let (_, stderr) = msb.ok(["load", "-i", archive, "-t", "mybase:1"]);
    assert!(stderr.contains("✓ Loaded mybase:1"), "{stderr}");
    let image = check_one_layer_image(&msb, "mybase:1", &plain);
    let (listed, _) = msb.ok(["images"]);
    assert!(listed.contains("mybase"), "{listed}");

    // The image as a runtime sees it: `msb mount` (EROFS under a read-only overlay).
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    msb.ok([Path::new("mount"), Path::new("mybase:1"), &target]);
    let seen = (
        std::fs::read_to_string(target.join("etc/hostname")),
        std::fs::read_link(target.join("bin/sh")),
        std::fs::read(target.join("bin/dash")).ok() == std::fs::read("/bin/sh").ok(),
        std::fs::read_dir(target.join("var/empty")).map(|d| d.count()),
    );
    msb.ok([Path::new("umount"), &target]);
    let (hostname, sh, same_shell, empty) = seen;
    assert_eq!(hostname.expect("etc/hostname in the mount"), "mybase\n");
    assert_eq!(sh.expect("bin/sh in the mount"), Path::new("dash"));
    assert!(same_shell, "bin/dash is the host's shell");
    assert_eq!(empty.expect("var/empty in the mount"), 0);
    assert_eq!(image["ref"], "docker.io/library/mybase:1");
}

#[test]
fn plain_and_zstd_tarballs_load_the_same_image() {
    require("zstd");
    let dir = scratch();
    let tree = rootfs(dir.path());
    // `docker export` style: top-level names, no `./`.
    let names = ["bin", "etc", "tmp", "usr", "var"];
    let plain = dir.path().join("rootfs.tar");
    tar(&tree, &plain, &[], &names);
    let zst = dir.path().join("rootfs.tar.zst");
    tar(&tree, &zst, &["--zstd"], &names);

    let msb = store_with_plugin();
    msb.ok(["load", "-q", "-i", plain.to_str().unwrap(), "-t", "mybase:plain"]);
    let from_plain = check_one_layer_image(&msb, "mybase:plain", &plain);
    let (_, stderr) = msb.ok(["load", "-i", zst.to_str().unwrap(), "-t", "mybase:zst"]);
    assert!(stderr.contains("✓ Loaded mybase:zst"), "{stderr}");
    let from_zst = check_one_layer_image(&msb, "mybase:zst", &plain);
    // The same tar inside: the same config, layer and image.
    for key in ["config_digest", "manifest_digest"] {
        assert_eq!(from_plain[key], from_zst[key], "{key}");
    }

    // Without -t the image has no name but its ID.
    let other = store_with_plugin();
    let (_, stderr) = other.ok(["load", "-i", plain.to_str().unwrap()]);
    let id = from_plain["config_digest"].as_str().unwrap();
    assert!(stderr.contains(&format!("✓ Loaded {id}")), "{stderr}");
}

#[test]
fn an_image_archive_is_not_claimed() {
    // An OCI layout whose blobs happen to sit beside bin/ and etc/.
    let dir = scratch();
    let tree = rootfs(dir.path());
    std::fs::write(tree.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(tree.join("index.json"), r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    let archive = dir.path().join("layout.tar");
    tar(&tree, &archive, &[], &["."]);
    let msb = store_with_plugin();
    let (verdicts, _) = msb.ok(["plugin", "detect", archive.to_str().unwrap()]);
    assert_eq!(score(&verdicts, "rootfs-tar"), Some(0), "{verdicts}");
}

#[test]
fn the_examples_own_unit_tests_pass() {
    // What its README says: `cargo test --manifest-path examples/rootfs-tar/Cargo.toml`.
    let out =
        cargo(&["test", "--locked", "--manifest-path", "examples/rootfs-tar/Cargo.toml"]).output().expect("run cargo");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "the example's unit tests failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");
}
