//! Where compiled plugins come from: the built-in decoders from native code
//! embedded at build time (nothing compiled, nothing written), installed
//! ones from the compile cache shared by the user's stores, filled at
//! `msb plugin install`.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A user: their own home, cache and stores; the cache variables point
/// into their home, every other one is cleared.
struct User {
    root: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User { root: scratch() }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The compile cache as `MSB_CACHE_DIR` names it.
    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// `msb ARGS` in the store `store` of this user, with `env` on top.
    fn cmd(&self, store: &str, args: &[&str], env: &[(&str, &Path)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_msb"));
        cmd.args(args)
            .env("MSB_HOME", self.root.path().join(store))
            .env("HOME", self.home())
            .env("MSB_CACHE_DIR", self.cache())
            .env_remove("XDG_CACHE_HOME")
            .stdin(std::process::Stdio::null());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `msb ARGS`, asserting success and a quiet stderr; returns stdout.
    fn ok(&self, store: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
        let out = self.cmd(store, args, env).output().expect("run msb");
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "msb {args:?} failed:\n{stdout}{stderr}");
        assert!(!stderr.contains("warning") && !stderr.contains("error"), "msb {args:?}: {stderr}");
        stdout
    }

    /// Every `.cwasm` file under the user's directory.
    fn compiled(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|x| x == "cwasm") {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.root.path(), &mut found);
        found.sort();
        found
    }
}

fn hello_tar() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../example/hello.tar")
}

/// (inode, size) of a file: a rewrite (a new file renamed in) changes the inode.
fn identity(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.ino(), meta.len())
}

#[test]
fn a_fresh_store_uses_the_embedded_built_ins_and_writes_no_compiled_code() {
    let user = User::new();
    let hello = hello_tar();
    user.ok("store", &["load", "-q", "-i", hello.to_str().unwrap()], &[]);
    let listed = user.ok("store", &["plugin", "ls"], &[]);
    for name in ["oci-layout", "docker-save", "docker-v1", "containers-dir"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert_eq!(user.compiled(), Vec::<PathBuf>::new(), "built-ins were compiled and cached");
    assert!(!user.cache().exists(), "the cache directory is created only to write to it");
    assert!(!user.root.path().join("store/plugins/cache").exists(), "stores keep no compiled plugins");
}

#[test]
fn an_installed_plugin_is_compiled_at_install_and_reused_by_other_stores() {
    let user = User::new();
    let wasm = testing_wasm("streamer");
    let wasm = wasm.to_str().unwrap();

    let out = user.ok("a", &["plugin", "install", wasm], &[]);
    assert!(out.starts_with("Installed streamer"), "{out}");
    let compiled = user.compiled();
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    assert_eq!(compiled[0].parent(), Some(user.cache().as_path()), "compiled into the user's cache");
    let cached = identity(&compiled[0]);

    // Another store: installing, listing and loading read the same file.
    let hello = hello_tar();
    user.ok("b", &["plugin", "install", wasm], &[]);
    user.ok("b", &["plugin", "ls"], &[]);
    user.ok("b", &["load", "-q", "-i", hello.to_str().unwrap()], &[]);
    user.ok("a", &["plugin", "ls"], &[]);
    assert_eq!(user.compiled(), compiled);
    assert_eq!(identity(&compiled[0]), cached, "the cached code was rewritten, not reused");
}

#[test]
fn a_damaged_cache_file_is_compiled_again() {
    let user = User::new();
    let wasm = testing_wasm("streamer");
    user.ok("store", &["plugin", "install", wasm.to_str().unwrap()], &[]);
    let compiled = user.compiled();
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let good = std::fs::read(&compiled[0]).unwrap();

    // Garbage, then one flipped byte in the code (which wasmtime's own
    // checks would not see): each is noticed, compiled again and replaced.
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    for bad in [b"garbage".to_vec(), flipped] {
        std::fs::write(&compiled[0], &bad).unwrap();
        let damaged = identity(&compiled[0]);
        let listed = user.ok("store", &["plugin", "ls", "--format", "json"], &[]);
        assert!(listed.contains("\"streamer\""), "{listed}");
        assert_ne!(identity(&compiled[0]), damaged, "rewritten");
        assert_eq!(std::fs::read(&compiled[0]).unwrap().len(), good.len());
    }
}

#[test]
fn the_cache_is_found_by_xdg_or_home_and_an_unusable_one_is_skipped_silently() {
    let user = User::new();
    let wasm = testing_wasm("streamer");
    let wasm = wasm.to_str().unwrap();
    let clear = |cmd: &mut Command| {
        cmd.env_remove("MSB_CACHE_DIR");
    };

    // $XDG_CACHE_HOME/msb/plugins
    let xdg = user.root.path().join("xdg");
    let mut cmd = user.cmd("a", &["plugin", "install", wasm], &[("XDG_CACHE_HOME", &xdg)]);
    clear(&mut cmd);
    assert!(cmd.output().unwrap().status.success());
    assert_eq!(user.compiled().len(), 1);
    assert!(user.compiled()[0].starts_with(xdg.join("msb/plugins")), "{:?}", user.compiled());

    // $HOME/.cache/msb/plugins
    let mut cmd = user.cmd("b", &["plugin", "install", wasm], &[]);
    clear(&mut cmd);
    assert!(cmd.output().unwrap().status.success());
    let in_home: Vec<_> =
        user.compiled().into_iter().filter(|p| p.starts_with(user.home().join(".cache/msb/plugins"))).collect();
    assert_eq!(in_home.len(), 1, "{:?}", user.compiled());

    // A cache that cannot be created (its parent is a file): no cache, no word.
    let file = user.root.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let before = user.compiled();
    user.ok("c", &["plugin", "install", wasm], &[("MSB_CACHE_DIR", &file.join("cache"))]);
    user.ok("c", &["plugin", "ls"], &[("MSB_CACHE_DIR", &file.join("cache"))]);
    assert_eq!(user.compiled(), before);
}
