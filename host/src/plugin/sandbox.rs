//! The sandbox a plugin runs in: a fresh wasmtime store per session with
//! WASI stripped of every capability, a memory limiter, an epoch deadline
//! per call, and the `archive` resource as the plugin's only input.

use super::bindings::msb::format::types::{self, DecodeError, Entry, EntryKind, Image, Info};
use super::bindings::{Decoder, DecoderImports, DecoderPre};
use super::runtime::{PluginError, Runtime, ticks};
use crate::input::{self, Archive};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// How much of a plugin's stderr (panic messages) is kept.
const STDERR_CAPACITY: usize = 16 << 10;

/// The host's side of the `archive` resource (the archive itself lives in
/// [`HostState`]).
pub struct ArchiveHandle;

/// Everything the host keeps for one plugin session.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    archive: Option<Arc<dyn Archive>>,
    entries: Vec<Entry>,
    read_left: u64,
    read_limit: u64,
    read_refused: Option<String>,
    stderr: MemoryOutputPipe,
    plugin: String,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl DecoderImports for HostState {
    fn log(&mut self, message: String) {
        if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
            eprintln!("debug: plugin {}: {message}", self.plugin);
        }
    }
}

impl types::Host for HostState {}

impl types::HostArchive for HostState {
    fn entries(&mut self, _: Resource<ArchiveHandle>) -> Vec<Entry> {
        self.entries.clone()
    }

    fn read(&mut self, _: Resource<ArchiveHandle>, path: String, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let Some(archive) = &self.archive else { return Err("no archive".into()) };
        let len = (len as u64).min(input::MAX_READ as u64).min(self.read_left.saturating_add(1)) as usize;
        let bytes = archive.read_at(&path, offset, len).map_err(|e| e.to_string())?;
        if bytes.len() as u64 > self.read_left {
            let message = format!("read more than its limit of {} bytes of the archive", self.read_limit);
            self.read_refused = Some(message.clone());
            return Err(message);
        }
        self.read_left -= bytes.len() as u64;
        Ok(bytes)
    }

    fn digest(&mut self, _: Resource<ArchiveHandle>, path: String, uncompressed: bool) -> Result<String, String> {
        let Some(archive) = &self.archive else { return Err("no archive".into()) };
        input::digest_entry(archive.as_ref(), &path, uncompressed).map(|d| d.to_string()).map_err(|e| e.to_string())
    }

    fn drop(&mut self, handle: Resource<ArchiveHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// Caps linear memory and remembers whether the cap was hit.
struct MemoryLimiter {
    max: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::format_err!("memory limit of {} bytes reached", self.max));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Time stands still in the sandbox.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// One instantiated plugin and its store: a sequence of calls on one archive.
pub struct Session {
    store: Store<HostState>,
    decoder: Decoder,
    archive: Resource<ArchiveHandle>,
    time: Duration,
    memory: usize,
    name: String,
}

impl Session {
    pub(crate) fn new(
        runtime: &Runtime,
        pre: &DecoderPre<HostState>,
        name: &str,
        archive: Option<Arc<dyn Archive>>,
    ) -> Result<Session, PluginError> {
        let limits = runtime.limits();
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![4, 2]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![4, 2]))
            .insecure_random_seed(42)
            .max_random_size(4096)
            .build();
        let entries = archive.as_ref().map(|a| a.entries().iter().map(to_wit_entry).collect()).unwrap_or_default();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max: limits.memory, hit: false },
            archive,
            entries,
            read_left: limits.read_bytes,
            read_limit: limits.read_bytes,
            read_refused: None,
            stderr,
            plugin: name.to_string(),
        };
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(ticks(limits.time));
        store.epoch_deadline_trap();
        let started = pre.instantiate(&mut store);
        let memory_hit = store.data().limiter.hit;
        let call_err = |what: String| PluginError::Call { name: name.to_string(), what };
        let decoder = started.map_err(|e| match memory_hit {
            true => call_err(out_of_memory(limits.memory)),
            false => call_err(format!("failed to start: {e:#}")),
        })?;
        let archive = store.data_mut().table.push(ArchiveHandle).map_err(|e| call_err(e.to_string()))?;
        Ok(Session { store, decoder, archive, time: limits.time, memory: limits.memory, name: name.to_string() })
    }

    /// `info()`.
    pub fn info(&mut self) -> Result<Info, PluginError> {
        self.arm();
        let result = self.decoder.call_info(&mut self.store);
        self.check(result)
    }

    /// `detect(archive)`, clamped to 0..=100.
    pub fn detect(&mut self) -> Result<u8, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        let result = self.decoder.call_detect(&mut self.store, archive);
        Ok(self.check(result)?.min(100))
    }

    /// `decode(archive)`.
    pub fn decode(&mut self) -> Result<Result<Vec<Image>, DecodeError>, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        let result = self.decoder.call_decode(&mut self.store, archive);
        self.check(result)
    }

    /// `read-stream(id, max)`.
    pub fn read_stream(&mut self, id: u32, max: u32) -> Result<Result<Vec<u8>, DecodeError>, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        let result = self.decoder.call_read_stream(&mut self.store, archive, id, max);
        self.check(result)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn borrow_archive(&self) -> Resource<ArchiveHandle> {
        Resource::new_borrow(self.archive.rep())
    }

    /// Gives the next call the whole time budget.
    fn arm(&mut self) {
        self.store.set_epoch_deadline(ticks(self.time));
    }

    /// Turns a trap into a one-line account of what happened.
    fn check<T>(&mut self, result: wasmtime::Result<T>) -> Result<T, PluginError> {
        let state = self.store.data();
        let error = match result {
            // A refused read is the plugin's fault even if it handled it.
            Ok(_) if state.read_refused.is_some() => None,
            Ok(value) => return Ok(value),
            Err(error) => Some(error),
        };
        let what = if state.limiter.hit {
            out_of_memory(self.memory)
        } else if error.as_ref().and_then(|e| e.downcast_ref::<Trap>()) == Some(&Trap::Interrupt) {
            format!("ran out of time (limit {} s)", self.time.as_secs_f64())
        } else if let Some(refused) = &state.read_refused {
            refused.clone()
        } else {
            let stderr = state.stderr.contents();
            let stderr = String::from_utf8_lossy(&stderr);
            match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(line) => format!("crashed: {}", line.trim()),
                None => format!("crashed: {}", error.map_or_else(String::new, |e| e.root_cause().to_string())),
            }
        };
        Err(PluginError::Call { name: self.name.clone(), what })
    }
}

fn out_of_memory(limit: usize) -> String {
    format!("ran out of memory (limit {} MiB)", limit >> 20)
}

fn to_wit_entry(entry: &input::Entry) -> Entry {
    Entry {
        path: entry.path.clone(),
        kind: match entry.kind {
            input::EntryKind::File => EntryKind::File,
            input::EntryKind::Directory => EntryKind::Directory,
            input::EntryKind::Symlink => EntryKind::Symlink,
            input::EntryKind::Hardlink => EntryKind::Hardlink,
            input::EntryKind::Other => EntryKind::Other,
        },
        size: entry.size,
        link: entry.link.clone(),
    }
}
