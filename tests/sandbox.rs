//! Hostile input and hostile plugins: one clear error line, exit 1, no
//! panic, no hang, and the store exactly as it was.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test-only misbehaving decoder (plugins/testing/hostile).
fn hostile_wasm() -> PathBuf {
    testing_wasm("hostile")
}

#[test]
fn hostile_plugins_are_contained() {
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let plugin = hostile_wasm();
    let plugin = plugin.to_str().unwrap();
    // (first entry, environment, expected error)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("spin", &[("MSB_PLUGIN_TIME_SECS", "1")], "plugin hostile ran out of time (limit 1 s)"),
        ("hog", &[("MSB_PLUGIN_MEMORY_MIB", "64")], "plugin hostile ran out of memory (limit 64 MiB)"),
        ("panic", &[], "plugin hostile crashed"),
        ("slurp", &[("MSB_PLUGIN_READ_MIB", "1")], "plugin hostile read more than"),
        ("lie", &[], "content has digest"),
        ("escape", &[], "points outside the archive"),
        ("flood", &[], "describes 20000 images, more than 10000"),
        ("honest", &[], "hostile decodes nothing (decoder hostile)"),
    ];
    for (name, env, expect) in cases {
        let tar = tar_starting_with(dir.path(), name);
        let error = msb.refused(&["load", "--plugin", plugin, "-i", tar.to_str().unwrap()], env, expect);
        assert!(error.contains(&tar.display().to_string()), "names the input: {error}");
    }
}

#[test]
fn the_oci_decoder_runs_inside_the_sandbox() {
    // There is no native OCI decoder to fall back on: starve the plugin of
    // memory and the load fails in wasmtime's limiter.
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["images"]);
    let archive = fx.join("oci-archive.tar");
    msb.refused(
        &["load", "-i", archive.to_str().unwrap(), "--plugin", "oci-layout"],
        &[("MSB_PLUGIN_MEMORY_MIB", "1")],
        "plugin oci-layout ran out of memory",
    );
}

#[test]
fn corrupt_archives_leave_the_store_unchanged() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    msb.ok(["load", "-q", "-i", fx.join("plain").to_str().unwrap()]);

    // A layer whose bytes do not match its digest.
    let dir = scratch();
    let copy = dir.path().join("oci-dir");
    run(Command::new("cp").arg("-a").arg(fx.join("oci-dir")).arg(&copy));
    let manifest = skopeo_json(&["--raw", &format!("oci:{}", copy.display())]);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let blob = copy.join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let error = msb.refused(&["load", "-i", copy.to_str().unwrap()], &[], &layer);
    assert!(error.contains(&format!("the archive says sha256:{layer}")), "{error}");

    // A manifest that names a blob the archive lacks.
    std::fs::remove_file(&blob).unwrap();
    msb.refused(&["load", "-i", copy.to_str().unwrap()], &[], &format!("blobs/sha256/{layer}: blob referenced by"));
}

#[test]
fn things_that_are_not_image_archives() {
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    msb.refused(
        &["load", "-i", empty.to_str().unwrap()],
        &[],
        "not a recognized image archive (an empty file); tried ",
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text\n".repeat(100)).unwrap();
    msb.refused(&["load", "-i", text.to_str().unwrap()], &[], "(a text file)");

    let zip = dir.path().join("image.tar");
    run(Command::new("python3")
        .arg("-c")
        .arg("import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').writestr('a', 'b')")
        .arg(&zip));
    msb.refused(&["load", "-i", zip.to_str().unwrap()], &[], "(a zip archive); tried ");
    msb.refused(&["load", "-i", "/bin/true"], &[], "(an ELF binary); tried ");

    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "x\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&rootfs).arg("etc"));
    msb.refused(&["load", "-i", tar.to_str().unwrap()], &[], "root file system tar");
    let error = msb.refused(&["load", "-i", tar.to_str().unwrap()], &[], "not a recognized image archive");
    assert!(
        ["docker-save", "docker-v1", "oci-layout"].iter().all(|d| error.contains(d)),
        "names what was tried: {error}"
    );

    let missing = dir.path().join("nope.tar");
    msb.refused(&["load", "-i", missing.to_str().unwrap()], &[], "nope.tar");
    msb.refused(&["load", "-i", tar.to_str().unwrap(), "--plugin", "nosuch"], &[], "no decoder named \"nosuch\"");
}

#[test]
fn plugin_commands_show_the_built_in_decoders() {
    let fx = oci_fixtures();
    let msb = Msb::new();
    let (stdout, _) = msb.ok(["plugin", "ls", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let oci = list.as_array().unwrap().iter().find(|p| p["name"] == "oci-layout").expect("oci-layout is built in");
    assert_eq!(oci["origin"], "built-in");
    assert_eq!(oci["formats"][0], "oci-layout");
    let (stdout, _) = msb.ok(["plugin", "detect", fx.join("oci-archive.tar").to_str().unwrap()]);
    let first = stdout.lines().next().unwrap();
    assert_eq!(first.split_whitespace().collect::<Vec<_>>(), ["oci-layout", "90"], "{stdout}");
}

#[test]
fn third_party_plugins_install_and_uninstall() {
    let msb = Msb::new();
    let plugin = hostile_wasm();
    let (stdout, _) = msb.ok(["plugin", "install", plugin.to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed hostile 0.1.0");
    assert!(msb.home().join("plugins/hostile.wasm").is_file());
    let (stdout, _) = msb.ok(["plugin", "ls", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let hostile = list.as_array().unwrap().iter().find(|p| p["name"] == "hostile").expect("listed");
    assert!(hostile["origin"].as_str().unwrap().ends_with("plugins/hostile.wasm"), "{hostile}");
    // It takes part in detection (and says 0), and --plugin finds it by name.
    let dir = scratch();
    let tar = tar_starting_with(dir.path(), "panic");
    let (stdout, _) = msb.ok(["plugin", "detect", tar.to_str().unwrap()]);
    assert!(stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["hostile", "0"]), "{stdout}");
    let error = msb.fails(["load", "--plugin", "hostile", "-i", tar.to_str().unwrap()]);
    assert!(error.contains("plugin hostile crashed"), "{error}");

    let error = msb.fails(["plugin", "rm", "oci-layout"]);
    assert!(error.contains("built in"), "{error}");
    let (stdout, _) = msb.ok(["plugin", "rm", "hostile"]);
    assert_eq!(stdout.trim(), "Removed hostile");
    assert!(!msb.home().join("plugins/hostile.wasm").exists());

    // Built against an incompatible contract: refused before compiling,
    // both versions named.
    let bytes = std::fs::read(&plugin).unwrap();
    let (from, to) = (b"msb:format/types@0.1.0", b"msb:format/types@0.9.0");
    let mut patched = bytes.clone();
    let at = bytes.windows(from.len()).position(|w| w == from).expect("the import names the contract");
    patched[at..at + to.len()].copy_from_slice(to);
    let future = dir.path().join("future.wasm");
    std::fs::write(&future, patched).unwrap();
    let error = msb.fails(["plugin", "install", future.to_str().unwrap()]);
    assert!(error.contains("was built for msb:format@0.9.0; this msb implements msb:format@0.1.0"), "{error}");

    // Not a component at all.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let error = msb.fails(["plugin", "install", junk.to_str().unwrap()]);
    assert!(error.contains("junk.wasm") && error.contains("not an msb decoder component"), "{error}");
}

/// An archive for the `streamer` decoder: a layer tar XOR-ed with a key,
/// its config, and `stream.json`; returns (archive, layer tar).
fn streamed_archive(dir: &Path, fail_at: Option<u64>) -> (PathBuf, PathBuf) {
    let script = r#"
import hashlib, io, json, sys, tarfile
out, fail_at = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name, data in [("etc/streamed", b"through read-stream\n"), ("big", bytes(range(256)) * 2000)]:
        info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 1700000000
        t.addfile(info, io.BytesIO(data))
layer = layer.getvalue()
open(out + ".layer.tar", "wb").write(layer)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
spec = {"ref": "streamed:1", "config": "config.json", "layer": "layer.xor", "key": 90}
if fail_at != "none":
    spec["fail_at"] = int(fail_at)
with tarfile.open(out, "w") as t:
    for name, data in [("stream.json", json.dumps(spec).encode()), ("config.json", config),
                       ("layer.xor", bytes(b ^ 90 for b in layer))]:
        info = tarfile.TarInfo(name); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
"#;
    let archive = dir.join(format!("streamed-{}.tar", fail_at.map_or("ok".to_string(), |n| n.to_string())));
    let fail = fail_at.map_or("none".to_string(), |n| n.to_string());
    run(Command::new("python3").arg("-c").arg(script).arg(&archive).arg(fail));
    let layer = PathBuf::from(format!("{}.layer.tar", archive.display()));
    (archive, layer)
}

#[test]
fn layers_can_stream_out_of_a_plugin() {
    let dir = scratch();
    let plugin = testing_wasm("streamer");
    let msb = Msb::new();
    let (archive, layer) = streamed_archive(dir.path(), None);
    let (_, stderr) = msb.ok(["load", "--plugin", plugin.to_str().unwrap(), "-i", archive.to_str().unwrap()]);
    assert_eq!(stderr.trim(), "✓ Loaded streamed:1");
    let image = msb.inspect("streamed:1");
    let layer_json = &image["layers"][0];
    assert_eq!(layer_json["digest"], layer_json["diff_id"], "the host hashed the plain tar the stream gave");
    assert_eq!(layer_json["media_type"], "application/vnd.oci.image.layer.v1.tar");
    check_layer_against_tar(layer_json, &layer);

    // A stream that breaks halfway: one line naming the decoder, nothing stored.
    let (broken, _) = streamed_archive(dir.path(), Some(100_000));
    msb.refused(
        &["load", "--plugin", plugin.to_str().unwrap(), "-i", broken.to_str().unwrap()],
        &[],
        "layer.xor: stream broken on purpose at byte",
    );
}

#[test]
fn damaged_archives_never_panic_or_change_the_store() {
    // Every fixture format, with bytes flipped at pseudo-random places
    // (headers, JSON, layer data): msb either loads it or says one line.
    let fx = oci_fixtures();
    let docker = fixtures("make-docker.sh");
    let sources =
        [fx.join("oci-archive.tar"), fx.join("multi.tar"), docker.join("docker25.tar"), docker.join("v1.tar")];
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (n, source) in sources.iter().cycle().take(200).enumerate() {
        let mut bytes = std::fs::read(source).unwrap();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        let damaged = dir.path().join(format!("damaged-{n}.tar"));
        std::fs::write(&damaged, &bytes).unwrap();
        let before = msb.snapshot();
        let out = msb.cmd(["load", "-q", "-i", damaged.to_str().unwrap()]).output().unwrap();
        let (_, stderr) = texts(&out);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", source.display());
        match out.status.code() {
            Some(0) => {}
            Some(1) => {
                assert_eq!(stderr.lines().count(), 1, "{stderr}");
                assert_eq!(msb.snapshot(), before, "a failed load changed the store: {stderr}");
            }
            other => panic!("{}: exit {other:?}: {stderr}", source.display()),
        }
    }
}

#[test]
fn a_file_that_is_not_a_tar_reaches_decoders_as_one_entry() {
    // For formats that are not tar (a zip, a squashfs…), the decoders see the
    // input as one entry named after the file; the hostile decoder acts on
    // that name.
    let dir = scratch();
    let raw = dir.path().join("panic");
    std::fs::write(&raw, b"not a tar, just bytes").unwrap();
    let plugin = hostile_wasm();
    let msb = Msb::new();
    msb.ok(["images"]);
    msb.refused(
        &["load", "--plugin", plugin.to_str().unwrap(), "-i", raw.to_str().unwrap()],
        &[],
        "plugin hostile crashed",
    );
    let gz = dir.path().join("panic.gz");
    let file = std::fs::File::create(&gz).unwrap();
    assert!(Command::new("gzip").arg("-c").arg(&raw).stdout(file).status().unwrap().success());
    msb.refused(
        &["load", "--plugin", plugin.to_str().unwrap(), "-i", gz.to_str().unwrap()],
        &[],
        "plugin hostile crashed",
    );
    // Without a decoder for it: what it looks like, and what was tried.
    let (stdout, _) = msb.ok(["plugin", "detect", raw.to_str().unwrap()]);
    assert!(stdout.lines().all(|l| l.ends_with(" 0")), "{stdout}");
}
