//! Inputs: files, directories, stdin (with and without `-i -`), and whole
//! archives wrapped in gzip, zstd, xz or bzip2, detected by magic bytes.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn compressed_archives_and_stdin_load_the_same_image() {
    let fx = oci_fixtures();
    let archive = fx.join("oci-archive.tar");
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", archive.to_str().unwrap()]);
    let expected = msb.inspect("alpine:3.20");

    let dir = scratch();
    for (tool, args) in [("gzip", "-c"), ("zstd", "-qc"), ("xz", "-c"), ("bzip2", "-c")] {
        require(tool);
        // A misleading name: detection goes by content.
        let wrapped = dir.path().join(format!("image-{tool}.tar"));
        let file = std::fs::File::create(&wrapped).unwrap();
        let status = Command::new(tool).arg(args).arg(&archive).stdout(file).status().unwrap();
        assert!(status.success());
        for via_stdin in [false, true] {
            let other = Msb::new();
            let out = if via_stdin {
                let mut cmd = other.cmd(["load", "--format", "json"]);
                cmd.stdin(std::fs::File::open(&wrapped).unwrap()).stdout(Stdio::piped()).output().unwrap()
            } else {
                other.cmd(["load", "--format", "json", "-i", wrapped.to_str().unwrap()]).output().unwrap()
            };
            let (stdout, stderr) = texts(&out);
            assert!(out.status.success(), "{tool} stdin={via_stdin}: {stderr}");
            assert!(stderr.contains("✓ Loaded alpine:3.20"), "{stderr}");
            let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(json[0]["config_digest"], expected["config_digest"], "{tool}");
            assert_eq!(json[0]["manifest_digest"], expected["manifest_digest"], "{tool}");
            assert_eq!(json[0]["ref"], "docker.io/library/alpine:3.20");
            let tmp = std::fs::read_dir(other.home().join("tmp")).unwrap().count();
            assert_eq!(tmp, 0, "the spool file is gone");
        }
    }

    // `-i -` reads stdin explicitly.
    let other = Msb::new();
    let out = other.cmd(["load", "-i", "-"]).stdin(std::fs::File::open(&archive).unwrap()).output().unwrap();
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(other.inspect("alpine:3.20")["manifest_digest"], expected["manifest_digest"]);
}

#[test]
fn a_truncated_archive_is_one_clear_error() {
    let fx = oci_fixtures();
    let bytes = std::fs::read(fx.join("oci-archive.tar")).unwrap();
    let dir = scratch();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msb = Msb::new();
    let error = msb.fails(["load", "-i", cut.to_str().unwrap()]);
    assert!(error.contains("cut.tar") && error.contains("the archive is truncated"), "{error}");
    let (stdout, _) = msb.ok(["images", "--format", "json"]);
    assert_eq!(stdout.trim(), "[]");
}

#[test]
fn msb_layer_converts_one_layer_from_a_file_or_stdin_full_or_as_a_tar_index() {
    let fx = oci_fixtures();
    let gzipped = fx.join("layers/0.tar.gz");
    let dir = scratch();
    let (from_file, from_stdin) = (dir.path().join("file.erofs"), dir.path().join("stdin.erofs"));
    let msb = Msb::new();
    msb.ok(["layer", "-i", gzipped.to_str().unwrap(), "-o", from_file.to_str().unwrap()]);
    let out = msb
        .cmd(["layer", "-o", from_stdin.to_str().unwrap()])
        .stdin(std::fs::File::open(&gzipped).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(std::fs::read(&from_file).unwrap(), std::fs::read(&from_stdin).unwrap());
    check_erofs_against_tar(&from_file, &[], &gzipped);

    // A tar-index image reads file data from the plain tar it was made of.
    let plain = dir.path().join("layer.tar");
    let tar_bytes = decompress_gzip(&std::fs::read(&gzipped).unwrap());
    std::fs::write(&plain, &tar_bytes).unwrap();
    let index = dir.path().join("index.erofs");
    msb.ok(["layer", "--format", "tar-index", "-i", plain.to_str().unwrap(), "-o", index.to_str().unwrap()]);
    assert!(std::fs::metadata(&index).unwrap().len() < tar_bytes.len() as u64 / 2, "metadata only");
    check_erofs_against_tar(&index, &[plain.clone()], &gzipped);
    let error = msb.fails(["layer", "--format", "tar-index", "-i", gzipped.to_str().unwrap(), "-o", "x.erofs"]);
    assert!(error.contains("0.tar.gz") && error.contains("gzip-compressed"), "{error}");

    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, b"not a tar at all, just text that goes on for a while ...".repeat(20)).unwrap();
    let error = msb.fails(["layer", "-i", bad.to_str().unwrap(), "-o", dir.path().join("bad.erofs").to_str().unwrap()]);
    assert!(error.contains("bad.tar"), "{error}");
}

#[test]
fn save_refuses_to_write_to_a_terminal() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("oci-archive.tar").to_str().unwrap()]);
    require("script");
    // `script` gives msb a pseudo-terminal as stdout.
    let cmd = format!("{} save alpine:3.20", env!("CARGO_BIN_EXE_msb"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("MSB_HOME", msb.home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("refusing to write an archive to a terminal"), "{text}");
}

#[test]
fn a_terminal_gets_progress_bars_and_quiet_gets_nothing() {
    let fx = oci_fixtures();
    let dir = scratch();
    let wrapped = dir.path().join("image.tar.gz");
    let file = std::fs::File::create(&wrapped).unwrap();
    assert!(Command::new("gzip").arg("-c").arg(fx.join("oci-archive.tar")).stdout(file).status().unwrap().success());
    require("script");
    for (quiet, expect) in [("", true), ("-q", false)] {
        let msb = Msb::new();
        let cmd = format!("{} load {quiet} -i {}", env!("CARGO_BIN_EXE_msb"), wrapped.display());
        // `script` runs msb on a pseudo-terminal and copies what it draws.
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("MSB_HOME", msb.home())
            .env("MSB_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{screen}");
        for phase in ["spooling", "importing layers", "✓ Loaded alpine:3.20"] {
            assert_eq!(screen.contains(phase), expect, "{quiet:?} {phase:?}: {screen}");
        }
    }
}

/// The bytes of a gzip stream, uncompressed.
fn decompress_gzip(gz: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut tar).expect("a gzip stream");
    tar
}
