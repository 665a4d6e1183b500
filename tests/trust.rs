//! The trust boundary around plugins and input: plugin names that are safe
//! file names and unique, so the decoder that wins detection is the one that
//! decodes; and bounded work outside the sandbox (hashing, streams, reads at
//! any offset), each refusal naming its limit and the variable that sets it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `impostor` decoder made to call itself `name`, written to `dir/file`.
fn impostor(dir: &Path, file: &str, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(testing_wasm("impostor")).unwrap();
    let placeholder = format!("{:<64}", "impostor");
    let at = bytes.windows(64).position(|w| w == placeholder.as_bytes()).expect("the impostor's name placeholder");
    assert!(name.len() <= 64);
    bytes[at..at + 64].copy_from_slice(format!("{name:<64}").as_bytes());
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn plugin_names_must_be_safe_file_names() {
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let outside = msb.home().join("x.wasm");
    for name in ["../x", "Upper", "-dash", "a/b", "a.b"] {
        let plugin = impostor(dir.path(), "bad.wasm", name);
        let plugin = plugin.to_str().unwrap();
        let error = msb.refused(&["plugin", "install", plugin], &[], "which is not a plugin name");
        assert!(error.contains("bad.wasm") && error.contains(&format!("calls itself {name:?}")), "{error}");
        let archive = tar_starting_with(dir.path(), "impostor-wins");
        msb.refused(&["load", "--plugin", plugin, "-i", archive.to_str().unwrap()], &[], "is not a plugin name");
    }
    assert!(!outside.exists(), "nothing written outside the plugins directory");
}

#[test]
fn plugin_names_are_unique() {
    let dir = scratch();
    let msb = Msb::new();
    let oci = oci_fixtures().join("oci-archive.tar");
    let oci = oci.to_str().unwrap();

    // A built-in's name: refused at install and with --plugin.
    let fake = impostor(dir.path(), "fake.wasm", "oci-layout");
    let error = msb.fails(["plugin", "install", fake.to_str().unwrap()]);
    assert!(error.contains("a built-in decoder is already called oci-layout"), "{error}");
    let error = msb.fails(["load", "--plugin", fake.to_str().unwrap(), "-i", oci]);
    assert!(error.contains("calls itself oci-layout, the name of a built-in decoder"), "{error}");

    // Reinstalling a name replaces the installed plugin: one plugin, one
    // file (stored by its digest, plugins/sha256/<hex>.wasm).
    let (stdout, _) = msb.ok(["plugin", "install", impostor(dir.path(), "a.wasm", "mine").to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed mine 0.1.0");
    let (stdout, _) = msb.ok(["plugin", "install", impostor(dir.path(), "b.wasm", "mine").to_str().unwrap()]);
    assert_eq!(stdout.trim(), "Installed mine 0.1.0 (replacing 0.1.0)");
    let installed: Vec<_> = std::fs::read_dir(msb.home().join("plugins/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    assert_eq!(installed.len(), 1, "{installed:?}");

    // Files put in the plugins directory by hand: one that calls itself a
    // built-in's name would win detection (100) while the built-in decoded;
    // one whose name is not its file name could shadow another. Both are
    // skipped, with a warning; the built-in decodes what it detects.
    let plugins = msb.home().join("plugins");
    impostor(&plugins, "oci-layout.wasm", "oci-layout");
    impostor(&plugins, "other.wasm", "mine");
    let src = dir.path().join("src");
    run(Command::new("cp").arg("-a").arg(oci_fixtures().join("oci-dir")).arg(&src));
    std::fs::write(src.join("impostor-wins"), "").unwrap();
    let (stdout, stderr) = msb.ok(["plugin", "detect", src.to_str().unwrap()]);
    assert!(stderr.contains("oci-layout.wasm: calls itself oci-layout, the name of a built-in decoder"), "{stderr}");
    assert!(stderr.contains("other.wasm: calls itself mine, not other as its file name says"), "{stderr}");
    let names: Vec<&str> = stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names.iter().filter(|n| **n == "oci-layout").count(), 1, "{stdout}");
    assert_eq!(names.iter().filter(|n| **n == "mine").count(), 1, "{stdout}");
    // `mine` (installed, name checked) claims the archive at 100: it is the
    // plugin that decodes, not another of its name.
    let out = msb.cmd(["load", "-i", src.to_str().unwrap()]).output().unwrap();
    let (_, stderr) = texts(&out);
    assert!(stderr.contains("the impostor calling itself mine decoded this"), "{stderr}");
}

#[test]
fn work_outside_the_sandbox_is_bounded() {
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let plugin = testing_wasm("hostile");
    let plugin = plugin.to_str().unwrap();
    // (first entry, environment, expected error)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "rehash",
            &[("MSB_PLUGIN_HASH_MIB", "1")],
            "plugin hostile had the host hash more than its limit of 1 MiB (raise it with MSB_PLUGIN_HASH_MIB)",
        ),
        (
            "gush",
            &[("MSB_PLUGIN_STREAM_MIB", "3")],
            "plugin hostile streamed more than its limit of 3 MiB (raise it with MSB_PLUGIN_STREAM_MIB)",
        ),
        (
            "slurp",
            &[("MSB_PLUGIN_READ_MIB", "1")],
            "plugin hostile read more than its limit of 1 MiB (raise it with MSB_PLUGIN_READ_MIB) of the archive",
        ),
        ("far", &[], "far: far reads gave 0+0+0+0 bytes"),
    ];
    for (name, env, expect) in cases {
        let tar = tar_starting_with(dir.path(), name);
        let error = msb.refused(&["load", "--plugin", plugin, "-i", tar.to_str().unwrap()], env, expect);
        assert!(error.contains(&tar.display().to_string()), "names the input: {error}");
    }
    // The limits are numbers of MiB that fit.
    let tar = tar_starting_with(dir.path(), "honest");
    let tar = tar.to_str().unwrap();
    msb.refused(
        &["load", "-i", tar],
        &[("MSB_PLUGIN_STREAM_MIB", "lots")],
        "MSB_PLUGIN_STREAM_MIB=\"lots\" is not a number",
    );
    msb.refused(
        &["load", "-i", tar],
        &[("MSB_PLUGIN_HASH_MIB", &u64::MAX.to_string())],
        "MSB_PLUGIN_HASH_MIB is too large",
    );
}

#[test]
fn plugin_notes_are_one_line_each_few_and_silenced_by_quiet() {
    let dir = scratch();
    let msb = Msb::new();
    msb.ok(["images"]);
    let plugin = testing_wasm("hostile");
    let tar = tar_starting_with(dir.path(), "chatter");
    let args = ["load", "--plugin", plugin.to_str().unwrap(), "-i", tar.to_str().unwrap()];
    let out = msb.cmd(args).output().unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 8 + 1 + 1, "8 notes, one saying more were withheld, the error: {stderr}");
    for (n, line) in lines[..8].iter().enumerate() {
        assert!(line.starts_with(&format!("note: plugin hostile: chatter {n}  [31mred")), "{line}");
        assert!(line.chars().count() < 450 && line.ends_with('…'), "cut: {line}");
        assert!(!line.contains('\x1b'), "no control characters: {line}");
    }
    assert_eq!(lines[8], "note: plugin hostile: more notes withheld (MSB_LOG=debug shows them)");
    assert!(lines[9].starts_with("error: ") && lines[9].contains("hostile chattered"), "{stderr}");

    let mut quiet = args.to_vec();
    quiet.insert(1, "-q");
    let error = msb.fails(quiet);
    assert!(error.contains("hostile chattered"), "{error}");
}
