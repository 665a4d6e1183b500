//! A decoder written in Python, as a third party would write one:
//! `examples/python-oci` (`app.py`, made a component by componentize-py in
//! its `build.sh`), installed with `msb plugin install` and run in the same
//! sandbox as every plugin. It must load exactly what the built-in
//! `oci-layout` decoder loads, byte for byte.
//!
//! Cost: `build.sh` once per test binary (~10 s; a few more the first time,
//! when it installs componentize-py from PyPI), one compile of the ~19 MB
//! component (~10 s), then loads of a fraction of a second.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built component and the compile cache every command of these tests
/// uses: the cache is this test binary's own, as every build is a new
/// component (~36 MB compiled) that a shared cache would pile up.
struct Built {
    wasm: PathBuf,
    cache: PathBuf,
}

/// Builds the plugin with `examples/python-oci/build.sh`, once per test
/// binary, and compiles it into the cache (installing it into a throwaway
/// store) so that the tests running in parallel do not each compile it.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        require("python3");
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(tmp, "python-plugin");
        let dir = tmp.join(format!("python-plugin-{}", std::process::id()));
        let built = Built { wasm: dir.join("py-oci-layout.wasm"), cache: dir.join("cache") };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-oci/build.sh");
        run(Command::new("bash").arg(script).arg(&built.wasm));
        let msb = Msb::new();
        ok(&msb, &built, &["plugin", "install", built.wasm.to_str().unwrap()], &[]);
        built
    })
}

/// Removes `NAME-<pid>` dirs of test processes that have ended.
fn remove_stale(tmp: &Path, name: &str) {
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let pid = file_name.strip_prefix(name).and_then(|r| r.strip_prefix('-')).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `msb ARGS` with the plugin's compile cache and `env`, asserting
/// success; returns (stdout, stderr).
fn ok(msb: &Msb, built: &Built, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = msb.cmd(args).env("MSB_CACHE_DIR", &built.cache).envs(env.iter().copied()).output().expect("run msb");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "msb {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}", out.status);
    (stdout, stderr)
}

/// A store with the Python plugin installed.
fn store_with_plugin(built: &Built) -> Msb {
    let msb = Msb::new();
    let (stdout, _) = ok(&msb, built, &["plugin", "install", built.wasm.to_str().unwrap()], &[]);
    assert!(stdout.starts_with("Installed py-oci-layout 0.1.0"), "{stdout}");
    msb
}

/// Every file of a store's images (`oci/`, `layers/`, `records/`), with
/// its bytes.
fn contents(home: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let bytes = std::fs::read(&path).expect("read store file");
                files.insert(path.strip_prefix(root).expect("under root").to_path_buf(), bytes);
            }
        }
    }
    let mut files = BTreeMap::new();
    for dir in ["oci", "layers", "records"] {
        walk(home, &home.join(dir), &mut files);
    }
    files
}

/// `msb inspect --format json REF` with the store's path taken out.
fn inspect(msb: &Msb, reference: &str) -> String {
    let json = serde_json::to_string_pretty(&msb.inspect(reference)).expect("print JSON");
    json.replace(msb.home().to_str().unwrap(), "$MSB_HOME")
}

#[test]
fn loads_a_skopeo_oci_archive_as_the_built_in_decoder_does() {
    let built = built();
    let fx = oci_fixtures();
    let archive = fx.join("oci-archive.tar");
    let archive = archive.to_str().unwrap();

    let python = store_with_plugin(built);
    let (listed, _) = ok(&python, built, &["plugin", "ls"], &[]);
    assert!(listed.lines().any(|l| l.starts_with("py-oci-layout ")), "{listed}");
    // It claims the archive, below the built-in: never picked unless named.
    let (verdicts, _) = ok(&python, built, &["plugin", "detect", archive], &[]);
    let score =
        |name: &str| verdicts.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u8>().ok());
    assert_eq!((score("oci-layout"), score("py-oci-layout")), (Some(90), Some(10)), "{verdicts}");

    let (_, stderr) = ok(&python, built, &["load", "--plugin", "py-oci-layout", "-i", archive], &[]);
    assert_eq!(stderr.trim(), "✓ Loaded alpine:3.20");

    let rust = Msb::new();
    rust.ok(["load", "-q", "-i", archive]);
    let image = inspect(&python, "alpine:3.20");
    assert_eq!(image, inspect(&rust, "alpine:3.20"));
    let spec = format!("oci-archive:{archive}");
    let manifest = skopeo_json(&["--raw", &spec]);
    let image: serde_json::Value = serde_json::from_str(&image).unwrap();
    assert_eq!(image["config_digest"], manifest["config"]["digest"]);
    assert_eq!(image["layers"].as_array().map(Vec::len), Some(2), "{image}");
    assert_eq!(contents(python.home()), contents(rust.home()), "the stores differ");
}

#[test]
fn a_multi_platform_index_with_an_attestation_loads_as_the_built_in_decoder_does() {
    let built = built();
    let fx = oci_fixtures();
    let archive = fx.join("multi.tar");
    let archive = archive.to_str().unwrap();

    // Not installed: named by its path.
    let python = Msb::new();
    let wasm = built.wasm.to_str().unwrap();
    let (_, from_python) = ok(&python, built, &["load", "--plugin", wasm, "--all-platforms", "-i", archive], &[]);
    let rust = Msb::new();
    let (_, from_rust) = rust.ok(["load", "--all-platforms", "-i", archive]);
    assert_eq!(from_python, from_rust);
    assert!(from_python.contains("✓ Loaded multi:1"), "{from_python}");
    assert_eq!(contents(python.home()), contents(rust.home()), "the stores differ");
    let (all, _) = python.ok(["images", "--all"]);
    assert!(all.contains("linux/amd64") && all.contains("linux/arm64/v8"), "{all}");
}

#[test]
fn its_errors_name_the_entry_and_the_sandbox_limits_hold_for_it() {
    let built = built();
    let fx = oci_fixtures();
    let python = store_with_plugin(built);
    let cache = built.cache.to_str().unwrap();

    let docker = fx.join("docker-archive.tar");
    let error = python.refused(
        &["load", "--plugin", "py-oci-layout", "-i", docker.to_str().unwrap()],
        &[("MSB_CACHE_DIR", cache)],
        "index.json: not in the archive (decoder py-oci-layout)",
    );
    assert!(!error.contains("Traceback"), "{error}");

    // CPython needs ~14 MiB of linear memory here; the default is 256 MiB.
    // (A store where it is installed would skip it, unable to ask its name.)
    let archive = fx.join("oci-archive.tar");
    let other = Msb::new();
    other.ok(["load", "-q", "-i", fx.join("oci-dir").to_str().unwrap()]);
    other.refused(
        &["load", "--plugin", built.wasm.to_str().unwrap(), "-i", archive.to_str().unwrap()],
        &[("MSB_CACHE_DIR", cache), ("MSB_PLUGIN_MEMORY_MIB", "8")],
        &format!("plugin {} ran out of memory (limit 8 MiB)", built.wasm.display()),
    );
    ok(&python, built, &["load", "-q", "--plugin", "py-oci-layout", "-i", archive.to_str().unwrap()], &[]);
}
