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
    let stored = msb.home().join(format!("plugins/sha256/{}.wasm", sha256_hex(&plugin)));
    assert!(stored.is_file());
    let (stdout, _) = msb.ok(["plugin", "ls", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let hostile = list.as_array().unwrap().iter().find(|p| p["name"] == "hostile").expect("listed");
    assert_eq!(hostile["origin"], "installed", "{hostile}");
    assert_eq!(hostile["path"], stored.to_str().unwrap(), "{hostile}");
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
    assert!(!stored.exists());

    // Built against an incompatible contract: refused before compiling,
    // both versions named.
    // (The import names `msb:format/types@0.<minor>.0`: the minor becomes 9.)
    let mut patched = std::fs::read(&plugin).unwrap();
    let from = b"msb:format/types@0.";
    let at = patched.windows(from.len()).position(|w| w == from).expect("the import names the contract");
    patched[at + from.len()] = b'9';
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
    assert!(detect_table(&stdout).iter().all(|row| row[1] == "0"), "{stdout}");
    assert_eq!(
        detect_explanation(&stdout),
        ["msb load would refuse it: not a recognized image archive (a text file)"],
        "{stdout}"
    );
}

/// The SHA-256 of a file, by `sha256sum`.
fn sha256_hex(path: &Path) -> String {
    require("sha256sum");
    let out = run(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().expect("sha256sum prints the digest").to_string()
}

/// The decoder lines of `msb plugin detect` (those before its blank line),
/// split into words: `[name, score]`, or `[name, score, "disabled"]`.
fn detect_table(stdout: &str) -> Vec<Vec<String>> {
    stdout.lines().take_while(|l| !l.is_empty()).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// The explanation lines of `msb plugin detect` (after its blank line).
fn detect_explanation(stdout: &str) -> Vec<&str> {
    stdout.lines().skip_while(|l| !l.is_empty()).skip(1).collect()
}

/// The `impostor` test decoder made to call itself `name`, its 64-byte
/// name field padded with `pad` (another pad: other bytes, the same name),
/// written to `dir/file`. It claims an archive holding `impostor-wins`
/// (confidence 100) and fails to decode it, saying its name.
fn impostor_named(dir: &Path, file: &str, name: &str, pad: char) -> PathBuf {
    let mut bytes = std::fs::read(testing_wasm("impostor")).unwrap();
    let placeholder = format!("{:<64}", "impostor");
    let at = bytes.windows(64).position(|w| w == placeholder.as_bytes()).expect("the impostor's name placeholder");
    let field: String = name.chars().chain(std::iter::repeat(pad)).take(64).collect();
    bytes[at..at + 64].copy_from_slice(field.as_bytes());
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `plugins/sha256/*.wasm` of a store, by name.
fn stored_components(msb: &Msb) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(msb.home().join("plugins/sha256"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The `*.wasm` files directly in a store's `plugins/` (an older msb's layout).
fn top_level_wasm(msb: &Msb) -> Vec<String> {
    std::fs::read_dir(msb.home().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect()
}

/// `plugins/plugins.json` of a store.
fn plugin_state(msb: &Msb) -> serde_json::Value {
    let bytes = std::fs::read(msb.home().join("plugins/plugins.json")).expect("plugins.json");
    serde_json::from_slice(&bytes).expect("plugins.json is JSON")
}

/// `msb plugin ls --format json`, by name.
fn listed(msb: &Msb) -> std::collections::BTreeMap<String, serde_json::Value> {
    let (stdout, _) = msb.ok(["plugin", "ls", "--format", "json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    list.into_iter().map(|p| (p["name"].as_str().unwrap().to_string(), p)).collect()
}

fn hello_tar() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../example/hello.tar")
}

#[test]
fn plugin_ls_shows_versions_contracts_origins_digests_and_states() {
    let msb = Msb::new();
    let streamer = testing_wasm("streamer");
    msb.ok(["plugin", "install", streamer.to_str().unwrap()]);
    let hex = sha256_hex(&streamer);

    let list = listed(&msb);
    for (name, p) in &list {
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        for key in ["name", "version", "contract", "formats", "description", "origin", "digest", "enabled"] {
            assert!(keys.contains(&key), "{name} lacks {key}: {p}");
        }
        let contract = p["contract"].as_str().unwrap();
        assert!(["msb:format@0.1.0", "msb:format@0.2.0"].contains(&contract), "{p}");
        let digest = p["digest"].as_str().unwrap();
        assert!(digest.len() == 71 && digest.starts_with("sha256:"), "{p}");
        assert_eq!(p["enabled"], true, "{p}");
    }
    let oci = &list["oci-layout"];
    assert_eq!((oci["origin"].as_str(), oci["path"].as_str()), (Some("built-in"), None), "{oci}");
    let s = &list["streamer"];
    assert_eq!(s["origin"], "installed");
    assert_eq!(s["digest"], format!("sha256:{hex}"), "the digest of the .wasm file");
    assert_eq!(s["version"], "0.1.0");

    let (stdout, _) = msb.ok(["plugin", "ls"]);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "VERSION", "CONTRACT", "ORIGIN", "DIGEST", "ENABLED", "FORMATS", "DESCRIPTION"]);
    let row = rows.iter().find(|r| r[0] == "streamer").expect("streamer listed");
    let contract = |name: &str| list[name]["contract"].as_str().unwrap().trim_start_matches("msb:format@").to_string();
    let streamer_contract = contract("streamer");
    assert_eq!(row[..7], ["streamer", "0.1.0", &streamer_contract, "installed", &hex[..12], "yes", "none"], "{stdout}");
    let row = rows.iter().find(|r| r[0] == "oci-layout").expect("oci-layout listed");
    assert_eq!(row[1..4], ["0.1.0", &contract("oci-layout"), "built-in"], "{stdout}");
    assert_eq!(row[4], &list["oci-layout"]["digest"].as_str().unwrap()[7..19], "{stdout}");

    // Disabled: shown as such, still listed.
    let (stdout, _) = msb.ok(["plugin", "disable", "streamer"]);
    assert_eq!(stdout.trim(), "Disabled streamer");
    assert_eq!(listed(&msb)["streamer"]["enabled"], false);
    let (stdout, _) = msb.ok(["plugin", "ls"]);
    let row: Vec<&str> = stdout.lines().find(|l| l.starts_with("streamer ")).unwrap().split_whitespace().collect();
    assert_eq!(row[5], "no", "{stdout}");
}

#[test]
fn a_disabled_decoder_takes_no_part_in_detection() {
    let msb = Msb::new();
    let hello = hello_tar();
    let hello = hello.to_str().unwrap();

    // hello.tar is a docker save (95) holding an OCI layout (80): with
    // docker-save disabled, oci-layout wins.
    let (stdout, _) = msb.ok(["plugin", "disable", "docker-save"]);
    assert_eq!(stdout.trim(), "Disabled docker-save");
    let (stdout, _) = msb.ok(["plugin", "disable", "docker-save"]);
    assert_eq!(stdout.trim(), "docker-save is already disabled");
    assert_eq!(plugin_state(&msb)["disabled"], serde_json::json!(["docker-save"]));
    let (stdout, _) = msb.ok(["plugin", "detect", hello]);
    let table = detect_table(&stdout);
    assert_eq!(table[0], ["docker-save", "95", "disabled"], "{stdout}");
    assert_eq!(table[1], ["oci-layout", "80"], "{stdout}");
    assert_eq!(
        detect_explanation(&stdout),
        [
            "msb load would use oci-layout: the highest confidence of the enabled decoders, 80; disabled: docker-save (95)"
        ]
    );
    let (_, stderr) = msb.ok(["load", "-i", hello]);
    assert_eq!(stderr.trim(), "✓ Loaded hello:latest");

    // The only decoder that claims an archive is disabled: load refuses it,
    // naming that decoder and how to use it; --plugin still does.
    let oci = oci_fixtures().join("oci-archive.tar");
    let oci = oci.to_str().unwrap();
    msb.ok(["plugin", "disable", "oci-layout"]);
    let error = msb.refused(
        &["load", "-i", oci],
        &[],
        "not a recognized image archive (only oci-layout claims it, with confidence 90, and it is disabled: \
         msb plugin enable oci-layout, or --plugin oci-layout); tried ",
    );
    assert!(error.contains("oci-layout (disabled)"), "{error}");
    let (stdout, _) = msb.ok(["plugin", "detect", oci]);
    assert_eq!(detect_table(&stdout)[0], ["oci-layout", "90", "disabled"], "{stdout}");
    assert!(detect_explanation(&stdout)[0].starts_with("msb load would refuse it: only oci-layout claims it"));
    let (_, stderr) = msb.ok(["load", "-q", "--plugin", "oci-layout", "-i", oci]);
    assert_eq!(stderr, "");

    // Enabled again: detection as before.
    let (stdout, _) = msb.ok(["plugin", "enable", "oci-layout"]);
    assert_eq!(stdout.trim(), "Enabled oci-layout");
    let (stdout, _) = msb.ok(["plugin", "enable", "oci-layout"]);
    assert_eq!(stdout.trim(), "oci-layout is already enabled");
    msb.ok(["load", "-q", "-i", oci]);
    msb.ok(["plugin", "enable", "docker-save"]);
    assert_eq!(plugin_state(&msb)["disabled"], serde_json::json!([]));
    let (stdout, _) = msb.ok(["plugin", "detect", hello]);
    assert_eq!(detect_explanation(&stdout), ["msb load would use docker-save: the highest confidence, 95"]);

    // Names that are no decoder's; built-ins are disabled, not removed.
    let error = msb.fails(["plugin", "disable", "nosuch"]);
    assert!(error.contains("no decoder named \"nosuch\"; available: ") && error.contains("oci-layout"), "{error}");
    let error = msb.fails(["plugin", "rm", "docker-save"]);
    assert!(error.contains("built in and cannot be removed (msb plugin disable docker-save"), "{error}");
}

#[test]
fn installed_plugins_are_stored_by_content_and_replaced_by_name() {
    let dir = scratch();
    let msb = Msb::new();
    let streamer = testing_wasm("streamer");
    let streamer_hex = sha256_hex(&streamer);

    // The same bytes twice: one file, named by its digest.
    msb.ok(["plugin", "install", streamer.to_str().unwrap()]);
    let (stdout, _) = msb.ok(["plugin", "install", streamer.to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed streamer 0.1.0 (replacing 0.1.0)");
    assert_eq!(stored_components(&msb), [format!("{streamer_hex}.wasm")]);
    assert_eq!(top_level_wasm(&msb), Vec::<String>::new());
    assert_eq!(plugin_state(&msb)["installed"]["streamer"], format!("sha256:{streamer_hex}"));

    // An upgrade: other bytes under the same name replace the old ones.
    let old = impostor_named(dir.path(), "old.wasm", "mine", ' ');
    let new = impostor_named(dir.path(), "new.wasm", "mine", '\t');
    let (old_hex, new_hex) = (sha256_hex(&old), sha256_hex(&new));
    assert_ne!(old_hex, new_hex);
    assert_eq!(msb.ok(["plugin", "install", old.to_str().unwrap()]).0.trim(), "Installed mine 0.1.0");
    msb.ok(["plugin", "disable", "mine"]);
    let (stdout, _) = msb.ok(["plugin", "install", new.to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed mine 0.1.0 (replacing 0.1.0); it is disabled: msb plugin enable mine");
    let mut expected = vec![format!("{streamer_hex}.wasm"), format!("{new_hex}.wasm")];
    expected.sort();
    assert_eq!(stored_components(&msb), expected, "the old component goes");
    assert_eq!(listed(&msb)["mine"]["digest"], format!("sha256:{new_hex}"));
    msb.ok(["plugin", "enable", "mine"]);

    // The replacement is what detects and decodes.
    let archive = tar_starting_with(dir.path(), "impostor-wins");
    let archive = archive.to_str().unwrap();
    let (stdout, _) = msb.ok(["plugin", "detect", archive]);
    assert_eq!(detect_table(&stdout)[0], ["mine", "100"], "{stdout}");
    let error = msb.fails(["load", "-i", archive]);
    assert!(error.contains("the impostor calling itself mine decoded this"), "{error}");

    // rm: the name, and the file once nothing names it.
    assert_eq!(msb.ok(["plugin", "rm", "mine"]).0.trim(), "Removed mine");
    assert_eq!(stored_components(&msb), [format!("{streamer_hex}.wasm")]);
    msb.ok(["plugin", "rm", "streamer"]);
    assert_eq!(stored_components(&msb), Vec::<String>::new());
    assert_eq!(plugin_state(&msb)["installed"], serde_json::json!({}));
    let error = msb.fails(["plugin", "rm", "streamer"]);
    assert!(error.contains("no installed decoder named \"streamer\""), "{error}");
}

#[test]
fn a_store_with_the_older_plugins_layout_keeps_working() {
    // An older msb installed `plugins/<name>.wasm`: read as installed, and
    // moved into plugins/sha256/ by the first plugin command that changes
    // something.
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let plugins = msb.home().join("plugins");
    let mine = impostor_named(&plugins, "mine.wasm", "mine", ' ');
    let mine_hex = sha256_hex(&mine);
    std::fs::copy(testing_wasm("streamer"), plugins.join("streamer.wasm")).unwrap();
    let streamer_hex = sha256_hex(&plugins.join("streamer.wasm"));

    let list = listed(&msb);
    assert_eq!(list["mine"]["origin"], "installed");
    assert_eq!(list["mine"]["path"], mine.to_str().unwrap());
    assert_eq!(list["streamer"]["digest"], format!("sha256:{streamer_hex}"));
    let archive = tar_starting_with(dir.path(), "impostor-wins");
    let archive = archive.to_str().unwrap();
    let (stdout, _) = msb.ok(["plugin", "detect", archive]);
    assert_eq!(detect_explanation(&stdout), ["msb load would use mine: the highest confidence, 100"]);

    msb.ok(["plugin", "disable", "mine"]);
    assert_eq!(top_level_wasm(&msb), Vec::<String>::new(), "moved");
    let mut expected = vec![format!("{mine_hex}.wasm"), format!("{streamer_hex}.wasm")];
    expected.sort();
    assert_eq!(stored_components(&msb), expected);
    let state = plugin_state(&msb);
    assert_eq!(state["installed"]["mine"], format!("sha256:{mine_hex}"));
    assert_eq!(state["installed"]["streamer"], format!("sha256:{streamer_hex}"));
    assert_eq!(state["disabled"], serde_json::json!(["mine"]));

    msb.refused(&["load", "-i", archive], &[], "only mine claims it, with confidence 100, and it is disabled");
    msb.ok(["plugin", "enable", "mine"]);
    let error = msb.fails(["load", "-i", archive]);
    assert!(error.contains("the impostor calling itself mine decoded this"), "{error}");
    assert_eq!(listed(&msb).len(), 4 + 2, "the built-ins and both installed");
}

#[test]
fn plugin_detect_explains_the_choice() {
    let dir = scratch();
    let msb = Msb::new();
    let hello = hello_tar();

    let (stdout, _) = msb.ok(["plugin", "detect", hello.to_str().unwrap()]);
    let table = detect_table(&stdout);
    assert_eq!(table[..2], [["docker-save", "95"], ["oci-layout", "80"]], "highest first: {stdout}");
    assert!(table[2..].iter().all(|row| row[1] == "0" && row.len() == 2), "{stdout}");
    assert_eq!(detect_explanation(&stdout), ["msb load would use docker-save: the highest confidence, 95"]);

    // The outer compression, stripped before the decoders look.
    let gz = dir.path().join("hello.tar.gz");
    let file = std::fs::File::create(&gz).unwrap();
    assert!(Command::new("gzip").arg("-c").arg(&hello).stdout(file).status().unwrap().success());
    let (stdout, _) = msb.ok(["plugin", "detect", gz.to_str().unwrap()]);
    assert_eq!(detect_table(&stdout)[0], ["docker-save", "95"]);
    assert_eq!(
        detect_explanation(&stdout),
        [
            "outer compression: gzip (the decoders saw what it holds)",
            "msb load would use docker-save: the highest confidence, 95"
        ]
    );
    let (stdout, _) = msb.ok(["plugin", "detect", "--format", "json", gz.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["compression"], "gzip");
    assert_eq!(json["pick"], "docker-save");
    assert_eq!(json["decoders"][0], serde_json::json!({"name": "docker-save", "score": 95, "enabled": true}));

    // A tie: load asks for --plugin.
    msb.ok(["plugin", "install", impostor_named(dir.path(), "a.wasm", "mine", ' ').to_str().unwrap()]);
    msb.ok(["plugin", "install", impostor_named(dir.path(), "b.wasm", "yours", ' ').to_str().unwrap()]);
    let archive = tar_starting_with(dir.path(), "impostor-wins");
    let archive = archive.to_str().unwrap();
    let (stdout, _) = msb.ok(["plugin", "detect", archive]);
    assert_eq!(detect_table(&stdout)[..2], [["mine", "100"], ["yours", "100"]], "{stdout}");
    assert_eq!(
        detect_explanation(&stdout),
        ["msb load would refuse it: mine and yours tie at 100: ambiguous, msb load asks for --plugin NAME"]
    );
    let (stdout, _) = msb.ok(["plugin", "detect", "--format", "json", archive]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["pick"], serde_json::Value::Null);
    msb.refused(&["load", "-i", archive], &[], "decoders mine, yours all claim this archive with confidence 100");

    // Nothing claims it: what it looks like, as load says.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "x\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&rootfs).arg("etc"));
    let (stdout, _) = msb.ok(["plugin", "detect", tar.to_str().unwrap()]);
    let what = "not a recognized image archive (a root file system tar of 2 entries, not an image archive)";
    assert_eq!(detect_explanation(&stdout), [format!("msb load would refuse it: {what}")]);
    msb.refused(&["load", "-i", tar.to_str().unwrap()], &[], what);
}
