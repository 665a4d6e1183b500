//! A whole `msb load` of an arbitrary archive: the host's input, the REAL
//! decoder components (the built-ins embedded in the msb library, or the
//! hostile test decoder) in their wasmtime sandbox under low limits, the
//! plan/verify step, layer import and commit, into a scratch store. Finds
//! host↔guest boundary bugs: bad offsets, huge or nonsensical outputs,
//! traps. Asserts no panic, and that a failed load says something and
//! leaves the store as it was.
//!
//! The archive is raw bytes (seeds: real archives, compressed or not; the
//! last byte picks the decoder) or a structured archive written as a tar.
//!
//! `MSB_FUZZ_PLUGIN=path/to/decoder.wasm` fuzzes that decoder instead: every
//! run loads with `--plugin` it (PLUGINS.md, "Fuzzing a decoder").
#![no_main]

use msb::load::{LoadOptions, load};
use msb::plugin::{Limits, Runtime};
use msb::progress::Silent;
use msb::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Built once per process: the runtime (engine, linker, compile cache)
/// and a scratch directory for the store and the input.
struct Env {
    runtime: Arc<Runtime>,
    scratch: tempfile::TempDir,
    hostile: Option<PathBuf>,
    /// `MSB_FUZZ_PLUGIN`: the one decoder every run uses.
    only: Option<PathBuf>,
}

/// The built-in decoders, by name, for `--plugin NAME`.
const BUILT_IN: [&str; 4] = ["oci-layout", "docker-save", "docker-v1", "containers-dir"];

/// Which scratch store the next run loads into.
static STORE: AtomicUsize = AtomicUsize::new(0);

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let scratch = tempfile::Builder::new().prefix("msb-fuzz-runtime-").tempdir().expect("temp dir");
        // Low limits: a spinning or hoarding decoder costs little per run.
        let limits =
            Limits { memory: 64 << 20, time: Duration::from_millis(200), read_bytes: 16 << 20, ..Limits::default() };
        // Compiled components are cached across runs (keyed by digest and engine).
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plugin-cache");
        let runtime = Runtime::new(Some(cache), limits).expect("runtime");
        // Built by host/build.rs along with the built-ins.
        let hostile =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/wasm32-wasip2/release/hostile.wasm");
        let hostile = hostile.is_file().then_some(hostile);
        let only = std::env::var_os("MSB_FUZZ_PLUGIN").map(PathBuf::from);
        Env { runtime, scratch, hostile, only }
    })
}

libfuzzer_sys::fuzz_target!(
    // Compiling the decoders (once per cache) is start-up, not a run: done
    // here, outside libFuzzer's per-input timeout.
    init: {
        let env = env();
        let none = env.scratch.path().join("no-installed-plugins");
        msb::plugin::Registry::load(&env.runtime, &none).expect("the built-in decoders compile");
        for plugin in env.hostile.iter().chain(&env.only) {
            msb::plugin::registry::load_file(&env.runtime, plugin).expect("the decoder compiles");
        }
    },
    |data: &[u8]| {
    let Some((bytes, choice)) = msb_fuzz::archive_file(data) else { return };
    let env = env();
    let input = env.scratch.path().join("input.tar");
    std::fs::write(&input, &bytes).expect("write input");
    let plugin = match choice & 0x7f {
        _ if env.only.is_some() => env.only.as_ref().map(|p| p.display().to_string()),
        c @ 3..=6 => Some(BUILT_IN[(c - 3) as usize].to_string()),
        7 => env.hostile.as_ref().map(|p| p.display().to_string()),
        _ => None,
    };
    // A store the host has seen stays known to it (its per-process tmp
    // dir): after a successful load the next run uses a new one.
    let root = env.scratch.path().join(format!("store-{}", STORE.load(Ordering::Relaxed)));
    let store = Store::open(&root).expect("open the scratch store");
    let before = snapshot(&root);
    let options = LoadOptions {
        source: msb::input::Source::Path(input),
        plugin,
        platform: None,
        all_platforms: choice & 0x80 != 0,
        renames: Vec::new(),
        tag: None,
        tag_is_repository: false,
        // A few KB of compressed input may declare gigabytes.
        max_layer_bytes: 64 << 20,
    };
    match load(&store, &env.runtime, &options, &Silent) {
        // Start the next run from an empty store.
        Ok(_) => {
            STORE.fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_dir_all(&root);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "an error says what is wrong: {e:?}");
            assert_eq!(snapshot(&root), before, "a failed load changed the store: {message}");
        }
    }
});

/// Every file under `root` with its size.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read store dir").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                files.insert(entry.path(), meta.len());
            }
        }
    }
    files
}
