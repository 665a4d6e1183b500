//! Interop with containerd's importer and exporter (`ctr images
//! import/export` against a containerd started for the test).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A containerd daemon with its own root, state and socket; killed on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        require("containerd");
        require("ctr");
        // A short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("ctd-").tempdir_in("/tmp").unwrap();
        let socket = dir.path().join("sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n",
                root = dir.path().display(),
                sock = socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start containerd");
        let daemon = Containerd { child, socket, _dir: dir };
        for _ in 0..100 {
            if daemon.ctr().arg("version").output().is_ok_and(|o| o.status.success()) {
                return daemon;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("containerd did not start within 10 s");
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket);
        cmd
    }

    /// `ctr images ls`: (ref, manifest digest) pairs.
    fn images(&self) -> Vec<(String, String)> {
        let out = run(self.ctr().args(["images", "ls"]));
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                Some((cols.first()?.to_string(), cols.get(2)?.to_string()))
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load_and_inspect(msb: &Msb, archive: &Path, name: &str) -> serde_json::Value {
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    msb.inspect(name)
}

#[test]
fn msb_and_containerd_exchange_images_both_ways() {
    let fx = oci_fixtures();
    let daemon = Containerd::start();
    let msb = Msb::new();
    let image = load_and_inspect(&msb, &fx.join("oci-archive.tar"), "alpine:3.20");
    let dir = scratch();

    // msb → containerd, each format.
    for format in ["combined", "oci", "docker"] {
        let name = format!("example.com/{format}:1");
        let renamed = dir.path().join(format!("{format}-renamed.tar"));
        msb.ok([
            "save",
            "--format",
            format,
            "-o",
            renamed.to_str().unwrap(),
            "-r",
            &format!("alpine:3.20={name}"),
            "alpine:3.20",
        ]);
        run(daemon.ctr().args(["images", "import"]).arg(&renamed));
        let images = daemon.images();
        let (_, digest) = images.iter().find(|(r, _)| *r == name).unwrap_or_else(|| panic!("{format}: {images:?}"));
        if format != "docker" {
            assert_eq!(digest, image["manifest_digest"].as_str().unwrap(), "{format}: the manifest travels as it is");
        }
    }

    // containerd → msb: ctr's export loads with the same digests.
    let exported = dir.path().join("exported.tar");
    run(daemon.ctr().args(["images", "export"]).arg(&exported).arg("example.com/combined:1"));
    let other = Msb::new();
    let back = load_and_inspect(&other, &exported, "example.com/combined:1");
    assert_eq!(back["manifest_digest"], image["manifest_digest"]);
    assert_eq!(back["config_digest"], image["config_digest"]);
    assert_eq!(back["layers"].as_array().unwrap().len(), image["layers"].as_array().unwrap().len());
}
