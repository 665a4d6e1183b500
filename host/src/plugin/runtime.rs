//! The wasmtime engine shared by every plugin, and loading a component into
//! a ready-to-instantiate [`Plugin`]: a built-in from its embedded native
//! code, any other through the compile cache ([`super::cache`]).

use super::cache::Cache;
use super::contract::{self, Pre};
use super::model::Info;
use super::engine_config::engine_config;
use super::sandbox::{HostState, Session};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// How often the epoch ticks; time limits are counted in these.
const TICK: Duration = Duration::from_millis(10);

/// Resource limits for each plugin call, and for the work a plugin makes
/// the host do outside the sandbox (where no time limit reaches).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most linear memory a plugin may hold ([`MEMORY_LIMIT_VAR`]).
    pub memory: usize,
    /// Longest one call may run ([`TIME_LIMIT_VAR`]).
    pub time: Duration,
    /// Most archive bytes a plugin may read in one session ([`READ_LIMIT_VAR`]).
    pub read_bytes: u64,
    /// Most bytes the host may hash for a plugin's `digest` calls in one
    /// session, counted after decompression ([`HASH_LIMIT_VAR`]).
    pub hash_bytes: u64,
    /// Most bytes a plugin may hand out through its streams in one session
    /// ([`STREAM_LIMIT_VAR`]).
    pub stream_bytes: u64,
}

/// The variable that sets [`Limits::memory`], in MiB.
pub const MEMORY_LIMIT_VAR: &str = "MSB_PLUGIN_MEMORY_MIB";
/// The variable that sets [`Limits::time`], in seconds.
pub const TIME_LIMIT_VAR: &str = "MSB_PLUGIN_TIME_SECS";
/// The variable that sets [`Limits::read_bytes`], in MiB.
pub const READ_LIMIT_VAR: &str = "MSB_PLUGIN_READ_MIB";
/// The variable that sets [`Limits::hash_bytes`], in MiB.
pub const HASH_LIMIT_VAR: &str = "MSB_PLUGIN_HASH_MIB";
/// The variable that sets [`Limits::stream_bytes`], in MiB.
pub const STREAM_LIMIT_VAR: &str = "MSB_PLUGIN_STREAM_MIB";

impl Default for Limits {
    /// 256 MiB of memory, 30 s per call, 1 GiB read; 256 GiB hashed and
    /// 256 GiB streamed (hashing and streaming are what a decoder does to
    /// layers, which can be large: docker-v1 hashes every layer once).
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            time: Duration::from_secs(30),
            read_bytes: 1 << 30,
            hash_bytes: 256 << 30,
            stream_bytes: 256 << 30,
        }
    }
}

/// The longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` may name a plugin: `[a-z0-9][a-z0-9-]*`, at most
/// [`MAX_NAME_LEN`] characters. Names become file names
/// (`plugins/<name>.wasm`) and `--plugin` arguments.
pub fn is_valid_name(name: &str) -> bool {
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    name.len() <= MAX_NAME_LEN && name.as_bytes().first().is_some_and(ok) && name.bytes().all(|b| ok(&b) || b == b'-')
}

/// What went wrong with a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component could not be compiled or linked.
    #[error("plugin {name}: {message}")]
    Load {
        /// The plugin's name or path.
        name: String,
        /// What failed.
        message: String,
    },
    /// The plugin was built for an incompatible contract version.
    #[error("plugin {name} was built for msb:format@{found}; this msb implements msb:format@{}", contract::versions_text())]
    Version {
        /// The plugin's name or path.
        name: String,
        /// The version it imports.
        found: String,
    },
    /// A call trapped, ran out of time or memory, or read too much.
    #[error("plugin {name} {what}")]
    Call {
        /// The plugin's name.
        name: String,
        /// What happened, e.g. `ran out of time (30 s)`.
        what: String,
    },
}

/// The engine and linker every plugin shares.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<Cache>,
    limits: Limits,
    notes: AtomicBool,
}

impl Runtime {
    /// A runtime whose compiled components are cached in `cache_dir`
    /// ([`super::cache`]; usually [`super::cache::user_dir`]), or not cached.
    pub fn new(cache_dir: Option<PathBuf>, limits: Limits) -> anyhow::Result<Arc<Runtime>> {
        let engine = Engine::new(&engine_config())?;
        start_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        contract::add_to_linker(&mut linker)?;
        let cache = cache_dir.map(|dir| Cache::new(dir, &engine));
        Ok(Arc::new(Runtime { engine, linker, cache, limits, notes: AtomicBool::new(true) }))
    }

    /// Whether a decoder's notes (`log` lines starting with `note: `, sent
    /// while decoding) are printed on stderr; on by default, off for `-q`.
    pub fn show_notes(&self, show: bool) {
        self.notes.store(show, Ordering::Relaxed);
    }

    pub(crate) fn notes_shown(&self) -> bool {
        self.notes.load(Ordering::Relaxed)
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) the component `bytes` and checks
    /// its contract version. `origin` names it in errors. A plugin whose
    /// `name` is not given is asked for it (instantiated) now; otherwise its
    /// `info()` waits until someone wants it.
    pub fn load(self: &Arc<Self>, origin: &str, bytes: &[u8], name: Option<&str>) -> Result<Plugin, PluginError> {
        let version = check_version(origin, bytes)?;
        let component = self.compile(bytes).map_err(|e| load_error(origin, e))?;
        self.link(origin, component, version, name)
    }

    /// The built-in decoder `name` from its native code `precompiled`, made
    /// by `build.rs` with the same engine settings. When wasmtime refuses
    /// that code (this CPU lacks a feature the build machine had) or there
    /// is none (a cross build), the component `wasm` is compiled instead,
    /// through the cache; `MSB_LOG=debug` says so.
    pub(crate) fn load_builtin(
        self: &Arc<Self>,
        name: &str,
        wasm: &[u8],
        precompiled: Option<&[u8]>,
    ) -> Result<Plugin, PluginError> {
        let version = check_version(name, wasm)?;
        // SAFETY: the bytes are `Engine::precompile_component` output
        // embedded in this binary at build time, never read from outside;
        // wasmtime checks they match this engine's version, settings and CPU.
        let native = precompiled.map(|bytes| unsafe { Component::deserialize(&self.engine, bytes) });
        let component = match native {
            Some(Ok(component)) => component,
            Some(Err(e)) => {
                debug(|| format!("built-in decoder {name}: its precompiled code does not fit here ({e:#}); compiling"));
                self.compile(wasm).map_err(|e| load_error(name, e))?
            }
            None => self.compile(wasm).map_err(|e| load_error(name, e))?,
        };
        self.link(name, component, version, Some(name))
    }

    /// `component`, linked, as a [`Plugin`] (see [`Runtime::load`]).
    fn link(
        self: &Arc<Self>,
        origin: &str,
        component: Component,
        version: (u64, u64),
        name: Option<&str>,
    ) -> Result<Plugin, PluginError> {
        let load_err = |e| load_error(origin, e);
        let pre = self.linker.instantiate_pre(&component).map_err(load_err)?;
        let pre = Pre::new(version, pre).map_err(load_err)?;
        let mut plugin = Plugin {
            runtime: self.clone(),
            pre,
            name: name.unwrap_or(origin).to_string(),
            info: OnceLock::new(),
            origin: origin.to_string(),
        };
        if name.is_none() {
            plugin.name = plugin.info()?.name.clone();
        }
        if !is_valid_name(&plugin.name) {
            return Err(PluginError::Load {
                name: origin.to_string(),
                message: format!(
                    "calls itself {:?}, which is not a plugin name (lowercase letters, digits and '-', \
                     starting with a letter or digit, at most {MAX_NAME_LEN} characters)",
                    plugin.name.chars().take(MAX_NAME_LEN + 1).collect::<String>()
                ),
            });
        }
        Ok(plugin)
    }

    /// The component `bytes`, from the cache or compiled (and cached).
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(cache) = &self.cache else { return Component::new(&self.engine, bytes) };
        let path = cache.path(bytes);
        if let Some(component) = cache.get(&self.engine, &path) {
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes)?;
        // The cache is an optimization: failing to write it is not an error.
        if let Err(e) = cache.put(&path, &component) {
            debug(|| format!("not caching compiled plugin in {}: {e:#}", path.display()));
        }
        Ok(component)
    }
}

fn load_error(origin: &str, e: wasmtime::Error) -> PluginError {
    PluginError::Load { name: origin.to_string(), message: format!("{e:#}") }
}

/// Prints `line()` on stderr as a `debug:` line when `MSB_LOG=debug`.
pub(crate) fn debug(line: impl FnOnce() -> String) {
    if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
        eprintln!("debug: {}", line());
    }
}

/// The contract version (one of [`contract::VERSIONS`]) a component was
/// built for, read from its import names; refuses any other version before
/// time is spent compiling it.
fn check_version(origin: &str, bytes: &[u8]) -> Result<(u64, u64), PluginError> {
    let found = contract_version(bytes).ok_or_else(|| PluginError::Load {
        name: origin.to_string(),
        message: "is not an msb decoder component (it imports no msb:format interface)".to_string(),
    })?;
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut it = v.split(['.', '-', '+']).map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    parse(&found)
        .and_then(contract::supported)
        .ok_or_else(|| PluginError::Version { name: origin.to_string(), found })
}

/// The version in the component's `msb:format/…@X` import names.
fn contract_version(bytes: &[u8]) -> Option<String> {
    let needle = b"msb:format/";
    let at = bytes.windows(needle.len()).position(|w| w == needle)?;
    let rest = &bytes[at..bytes.len().min(at + 128)];
    let at_sign = rest.iter().position(|&b| b == b'@')?;
    let version: Vec<u8> = rest[at_sign + 1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
        .copied()
        .collect();
    String::from_utf8(version).ok().filter(|v| !v.is_empty())
}

/// A thread that ticks the engine's epoch, driving every time limit; it
/// ends when the engine is dropped.
fn start_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    });
}

/// Epoch ticks in `time`.
pub(crate) fn ticks(time: Duration) -> u64 {
    (time.as_millis() / TICK.as_millis()).max(1) as u64
}

/// A compiled, linked decoder, ready to run.
pub struct Plugin {
    runtime: Arc<Runtime>,
    pre: Pre,
    name: String,
    info: OnceLock<Info>,
    origin: String,
}

impl Plugin {
    /// Its name (`--plugin NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the plugin says of itself (asked once, in a sandbox).
    pub fn info(&self) -> Result<&Info, PluginError> {
        if let Some(info) = self.info.get() {
            return Ok(info);
        }
        let info = self.session(None)?.info()?;
        Ok(self.info.get_or_init(|| info))
    }

    /// The contract version it was built for (`0.1.0`, `0.2.0`).
    pub fn contract(&self) -> &'static str {
        self.pre.version()
    }

    /// Where it came from: `built-in` or a file path.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn set_origin(&mut self, origin: &str) {
        self.origin = origin.to_string();
    }

    /// A fresh sandbox for a sequence of calls on `archive`.
    pub fn session(&self, archive: Option<Arc<dyn crate::input::Archive>>) -> Result<Session, PluginError> {
        Session::new(&self.runtime, &self.pre, &self.name, archive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_safe_file_names() {
        for good in ["docker-save", "oci-layout", "v1", "0x", "a", &"a".repeat(MAX_NAME_LEN)] {
            assert!(is_valid_name(good), "{good}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "../x", "x/y", "-x", "Docker", "a b", "a.wasm", "a_b", "é", ".", "..", &long] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn contract_versions_are_read_from_import_names() {
        assert_eq!(contract_version(b"..msb:format/types@0.1.0\0..").as_deref(), Some("0.1.0"));
        assert_eq!(check_version("p", b"msb:format/types@0.1.3").ok(), Some((0, 1)));
        assert_eq!(check_version("p", b"msb:format/types@0.2.0").ok(), Some((0, 2)));
        for unknown in [&b"msb:format/types@0.3.0"[..], b"msb:format/types@1.0.0", b"msb:format/types@9.0.0"] {
            let error = check_version("p", unknown).unwrap_err();
            assert!(matches!(error, PluginError::Version { .. }));
            assert!(error.to_string().ends_with("this msb implements msb:format@0.1.0 and 0.2.0"), "{error}");
        }
        assert!(matches!(check_version("p", b"no imports"), Err(PluginError::Load { .. })));
    }
}
