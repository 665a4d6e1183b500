//! Shared helpers of the end-to-end tests: run the real `msb` binary
//! against a throwaway store, build fixtures with real tools once per test
//! binary, and check EROFS images with erofs-utils.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

pub mod registry;

/// A scratch directory under the target dir, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("msb-test-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("create scratch dir")
}

/// Panics with an install hint when a tool the tests rely on is missing.
pub fn require(tool: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is not installed; run the README's test command, which installs it");
}

/// The `msb` binary with a store of its own.
pub struct Msb {
    home: tempfile::TempDir,
}

impl Msb {
    pub fn new() -> Msb {
        Msb { home: scratch() }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `msb ARGS` with `MSB_HOME` set and the shared plugin compile cache.
    pub fn cmd<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_msb"));
        cmd.args(args)
            .env("MSB_HOME", self.home.path())
            .env("MSB_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `msb ARGS`, asserting success; returns (stdout, stderr).
    pub fn ok<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> (String, String) {
        let out = self.cmd(args).output().expect("run msb");
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "msb failed ({}):\nstdout: {stdout}\nstderr: {stderr}", out.status);
        (stdout, stderr)
    }

    /// Runs `msb ARGS`, asserting it fails with exit code 1 and a single
    /// `error:` line; returns that line.
    pub fn fails<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> String {
        let out = self.cmd(args).output().expect("run msb");
        let (stdout, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected failure, got {}:\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        lines[0].to_string()
    }

    /// Runs `msb ARGS` with `env`, asserting exit 1, one `error:` line
    /// containing `expect`, and a store unchanged; returns the line.
    pub fn refused(&self, args: &[&str], env: &[(&str, &str)], expect: &str) -> String {
        let before = self.snapshot();
        let out = self.cmd(args).envs(env.iter().copied()).output().expect("run msb");
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(expect), "wanted {expect:?} in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(self.snapshot(), before, "the store changed");
        stderr
    }

    /// `msb inspect --format json REF`.
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        let (stdout, _) = self.ok(["inspect", "--format", "json", reference]);
        serde_json::from_str(&stdout).expect("inspect prints JSON")
    }

    /// Every file under the store, with its size: a snapshot to compare.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, u64> {
        let mut files = BTreeMap::new();
        walk(self.home.path(), self.home.path(), &mut files);
        files
    }
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, u64>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            walk(root, &path, files);
        } else {
            files.insert(rel, meta.len());
        }
    }
}

pub fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A test-only decoder built with the others (`plugins/testing/NAME`).
pub fn testing_wasm(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/plugins/wasm32-wasip2/release/{name}.wasm"));
    assert!(path.is_file(), "{} is built by host/build.rs", path.display());
    path
}

/// A tar whose first (only) entry is the 100 kB file `name`: the hostile
/// test decoder reads its instruction from it.
pub fn tar_starting_with(dir: &Path, name: &str) -> PathBuf {
    let src = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join(name), vec![7u8; 100_000]).expect("write");
    let tar = dir.join(format!("{name}.tar"));
    run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&src).arg(name));
    tar
}

/// Runs a command, asserting success; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// The directory `tests/fixtures/SCRIPT` fills with archives made by real
/// tools, built once per test binary.
pub fn fixtures(script: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    built
        .entry(script.to_string())
        .or_insert_with(|| {
            for tool in ["umoci", "skopeo", "python3"] {
                require(tool);
            }
            let name = script.trim_end_matches(".sh");
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            remove_stale(tmp, name);
            let dir = tmp.join(format!("{name}-{}", std::process::id()));
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(script);
            run(Command::new("bash").arg(path).arg(&dir));
            dir
        })
        .clone()
}

/// Removes `NAME-<pid>` fixture dirs of test processes that have ended.
fn remove_stale(tmp: &Path, name: &str) {
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let pid =
            file_name.strip_prefix(name).and_then(|rest| rest.strip_prefix('-')).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The OCI archives of `tests/fixtures/make-oci.sh`.
pub fn oci_fixtures() -> PathBuf {
    fixtures("make-oci.sh")
}

/// `skopeo inspect --raw` / `--config` output of an image, as JSON.
pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    require("skopeo");
    let out = run(Command::new("skopeo").arg("inspect").args(args));
    serde_json::from_str(&out).expect("skopeo prints JSON")
}

/// The `erofs` image and `devices` (the blobs it reads from) of a layer of
/// `msb inspect --format json`.
pub fn layer_files(layer: &serde_json::Value) -> (PathBuf, Vec<PathBuf>) {
    let image = PathBuf::from(layer["erofs"].as_str().expect("a layer has an erofs path"));
    let devices = layer["devices"].as_array().expect("a layer lists its devices");
    (image, devices.iter().map(|d| PathBuf::from(d.as_str().expect("device paths are strings"))).collect())
}

/// Checks a stored layer (an entry of `msb inspect --format json`'s
/// `layers`) with `fsck.erofs`, then compares its tree (a kernel mount) with
/// the layer tar `tar` (compressed or not) entry by entry.
pub fn check_layer_against_tar(layer: &serde_json::Value, tar: &Path) {
    let (image, devices) = layer_files(layer);
    check_erofs_against_tar(&image, &devices, tar);
}

/// Checks the EROFS image `image` (reading from `devices`) with
/// `fsck.erofs`, then compares its tree (a kernel mount) with the layer
/// tar `layer` (compressed or not) entry by entry.
pub fn check_erofs_against_tar(image: &Path, devices: &[PathBuf], layer: &Path) {
    require("fsck.erofs");
    let device_args = devices.iter().map(|d| format!("--device={}", d.display()));
    run(Command::new("fsck.erofs").args(device_args).arg(image));
    let dir = scratch();
    let mount = Mount::erofs_with(image, devices, dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/compare_tree.py");
    let out = Command::new("python3").arg(script).arg(layer).arg(dir.path()).output().expect("run compare_tree.py");
    drop(mount);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{} differs from {}:\n{stdout}{stderr}", image.display(), layer.display());
}

/// A read-only mount, unmounted on drop.
pub struct Mount {
    target: PathBuf,
}

impl Mount {
    /// `mount -t erofs -o loop,ro IMAGE TARGET`; fails the test, naming what
    /// is missing, where that is not permitted.
    pub fn erofs(image: &Path, target: &Path) -> Mount {
        Mount::erofs_with(image, &[], target)
    }

    /// [`Mount::erofs`] of an image that reads from `devices` (a tar-index
    /// layer and its blob), each attached to a read-only loop device.
    pub fn erofs_with(image: &Path, devices: &[PathBuf], target: &Path) -> Mount {
        let loops: Vec<String> = devices
            .iter()
            .map(|device| {
                let out = Command::new("losetup").args(["--find", "--show", "--read-only"]).arg(device).output();
                let out = out.unwrap_or_else(|e| panic!("run losetup: {e}"));
                assert!(out.status.success(), "losetup {}: {}", device.display(), String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect();
        let options = std::iter::once("loop,ro".to_string()).chain(loops.iter().map(|l| format!("device={l}")));
        let options = options.collect::<Vec<_>>().join(",");
        let mount =
            Mount::run(Command::new("mount").args(["-t", "erofs", "-o", &options]).arg(image).arg(target), target);
        for l in &loops {
            // Detached (autoclear) once the mount lets go of it.
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
        mount
    }

    /// An overlay of `lower` dirs (top first), read-only.
    pub fn overlay(lower: &[&Path], target: &Path) -> Mount {
        let dirs: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let options = format!("ro,lowerdir={}", dirs.join(":"));
        Mount::run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(target), target)
    }

    fn run(cmd: &mut Command, target: &Path) -> Mount {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: the tests need root and the kernel's erofs, loop and overlay support: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Mount { target: target.to_path_buf() }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
    }
}
