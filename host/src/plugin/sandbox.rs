//! The sandbox a plugin runs in: a fresh wasmtime store per session with
//! WASI stripped of every capability, a memory limiter, an epoch deadline
//! per call, and the `archive` resource as the plugin's only input.

use super::contract::{Instance, Pre};
use super::model::{DecodeError, Image, Info};
use super::runtime::{HASH_LIMIT_VAR, PluginError, READ_LIMIT_VAR, Runtime, STREAM_LIMIT_VAR, ticks};
use crate::input::{self, Archive};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// How much of a plugin's stderr (panic messages) is kept.
const STDERR_CAPACITY: usize = 16 << 10;

/// A `log` line that starts with this is a note for the user.
pub const NOTE_PREFIX: &str = "note: ";
/// The most notes one session prints; later ones are dropped.
const MAX_NOTES: usize = 8;
/// The most characters of one note (or debug line) that are printed.
const MAX_LINE: usize = 400;

/// The host's side of the `archive` resource (the archive itself lives in
/// [`HostState`]).
pub struct ArchiveHandle;

/// Everything the host keeps for one plugin session.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    archive: Option<Arc<dyn Archive>>,
    read: Budget,
    hashed: Budget,
    /// Why the plugin was cut off (a budget ran out), even if it handled the error.
    refused: Option<String>,
    stderr: MemoryOutputPipe,
    plugin: String,
    /// Whether notes are printed now: only while decoding, and not with `-q`.
    notes_on: bool,
    notes: usize,
}

/// Bytes of some kind of work a session may still do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget { left: limit, limit }
    }

    /// Takes `n` bytes, or refuses (and takes nothing) if fewer are left.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), u64> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(self.limit),
        }
    }

    pub(crate) fn left(&self) -> u64 {
        self.left
    }
}

/// `limit` bytes as people read it (MiB when whole, as the variables set it).
fn amount(limit: u64) -> String {
    if limit >= 1 << 20 && limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    }
}

/// What a plugin is told, and the user shown, when a budget runs out.
pub(crate) fn over_budget(what: &str, limit: u64, var: &str) -> String {
    format!("{what} more than its limit of {} (raise it with {var})", amount(limit))
}

/// `message` as one printable line of at most [`MAX_LINE`] characters.
fn one_line(message: &str) -> String {
    let mut line: String =
        message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_LINE).collect::<String>();
    if message.chars().count() > MAX_LINE {
        line.push('…');
    }
    line.trim().to_string()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The host's side of every contract version's imports; each version's
/// adapter ([`super::contract`]) delegates here.
impl HostState {
    /// The archive's entry table (empty without an archive).
    pub(crate) fn entries(&self) -> &[input::Entry] {
        self.archive.as_ref().map_or(&[], |a| a.entries())
    }

    /// A debug line, or, while decoding, a note for the user: plugins say
    /// what they had to choose (e.g. which of two disagreeing descriptions
    /// was loaded). Plugin text is untrusted: one line, cut, and at most
    /// [`MAX_NOTES`] notes.
    pub(crate) fn log(&mut self, message: String) {
        match message.strip_prefix(NOTE_PREFIX) {
            Some(note) if self.notes_on => {
                self.notes += 1;
                if self.notes <= MAX_NOTES {
                    eprintln!("note: plugin {}: {}", self.plugin, one_line(note));
                } else if self.notes == MAX_NOTES + 1 {
                    eprintln!("note: plugin {}: more notes withheld (MSB_LOG=debug shows them)", self.plugin);
                }
            }
            _ => {}
        }
        if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
            eprintln!("debug: plugin {}: {}", self.plugin, one_line(&message));
        }
    }

    /// Remembers that the plugin went over a budget; returns what it is told.
    fn refuse(&mut self, message: String) -> String {
        self.refused.get_or_insert(message.clone());
        message
    }

    /// `archive.read`: charged to the read budget.
    pub(crate) fn read_archive(&mut self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let Some(archive) = &self.archive else { return Err("no archive".into()) };
        let len = (len as u64).min(input::MAX_READ as u64).min(self.read.left().saturating_add(1)) as usize;
        let bytes = archive.read_at(path, offset, len).map_err(|e| e.to_string())?;
        if let Err(limit) = self.read.charge(bytes.len() as u64) {
            return Err(self.refuse(over_budget("read", limit, READ_LIMIT_VAR) + " of the archive"));
        }
        Ok(bytes)
    }

    /// `archive.digest`: charged to the hash budget.
    pub(crate) fn digest_entry(&mut self, path: &str, uncompressed: bool) -> Result<String, String> {
        let Some(archive) = &self.archive else { return Err("no archive".into()) };
        let hashed = input::digest_entry(archive.as_ref(), path, uncompressed, self.hashed.left());
        self.charge_hash(hashed)
    }

    /// `archive.input-digest` (0.2.0): charged to the hash budget.
    pub(crate) fn digest_input(&mut self) -> Result<String, String> {
        let Some(archive) = &self.archive else { return Err("no archive".into()) };
        let hashed = input::digest_input(archive.as_ref(), self.hashed.left());
        self.charge_hash(hashed)
    }

    fn charge_hash(&mut self, hashed: Result<(crate::digest::Digest, u64), input::InputError>) -> Result<String, String> {
        match hashed {
            Ok((digest, hashed)) => match self.hashed.charge(hashed) {
                Ok(()) => Ok(digest.to_string()),
                Err(limit) => Err(self.refuse(over_budget("had the host hash", limit, HASH_LIMIT_VAR))),
            },
            Err(input::InputError::TooLarge { .. }) => {
                let limit = self.hashed.limit;
                Err(self.refuse(over_budget("had the host hash", limit, HASH_LIMIT_VAR)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The plugin dropped its archive handle.
    pub(crate) fn drop_archive(&mut self, handle: Resource<ArchiveHandle>) -> wasmtime::Result<()> {
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
    decoder: Instance,
    archive: Resource<ArchiveHandle>,
    time: Duration,
    memory: usize,
    name: String,
    streamed: Budget,
    notes: bool,
}

impl Session {
    pub(crate) fn new(
        runtime: &Runtime,
        pre: &Pre,
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
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max: limits.memory, hit: false },
            archive,
            read: Budget::new(limits.read_bytes),
            hashed: Budget::new(limits.hash_bytes),
            refused: None,
            stderr,
            plugin: name.to_string(),
            notes_on: false,
            notes: 0,
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
        Ok(Session {
            store,
            decoder,
            archive,
            time: limits.time,
            memory: limits.memory,
            name: name.to_string(),
            streamed: Budget::new(limits.stream_bytes),
            notes: runtime.notes_shown(),
        })
    }

    /// `info()`.
    pub fn info(&mut self) -> Result<Info, PluginError> {
        self.arm();
        let result = self.decoder.info(&mut self.store);
        self.check(result)
    }

    /// `detect(archive)`, clamped to 0..=100.
    pub fn detect(&mut self) -> Result<u8, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        let result = self.decoder.detect(&mut self.store, archive);
        Ok(self.check(result)?.min(100))
    }

    /// `decode(archive)`. Its notes are printed (unless the runtime hides them).
    pub fn decode(&mut self) -> Result<Result<Vec<Image>, DecodeError>, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        self.store.data_mut().notes_on = self.notes;
        let result = self.decoder.decode(&mut self.store, archive);
        self.store.data_mut().notes_on = false;
        self.check(result)
    }

    /// `read-stream(id, max)`; the bytes count against the session's
    /// stream budget.
    pub fn read_stream(&mut self, id: u32, max: u32) -> Result<Result<Vec<u8>, DecodeError>, PluginError> {
        self.arm();
        let archive = self.borrow_archive();
        let result = self.decoder.read_stream(&mut self.store, archive, id, max);
        let result = self.check(result)?;
        if let Ok(chunk) = &result
            && let Err(limit) = self.streamed.charge(chunk.len() as u64)
        {
            let what = over_budget("streamed", limit, STREAM_LIMIT_VAR);
            return Err(PluginError::Call { name: self.name.clone(), what });
        }
        Ok(result)
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
            Ok(_) if state.refused.is_some() => None,
            Ok(value) => return Ok(value),
            Err(error) => Some(error),
        };
        let what = if state.limiter.hit {
            out_of_memory(self.memory)
        } else if error.as_ref().and_then(|e| e.downcast_ref::<Trap>()) == Some(&Trap::Interrupt) {
            format!("ran out of time (limit {} s)", self.time.as_secs_f64())
        } else if let Some(refused) = &state.refused {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refuse_what_would_go_over_and_keep_the_rest() {
        let mut budget = Budget::new(10);
        assert_eq!(budget.charge(4), Ok(()));
        assert_eq!(budget.charge(7), Err(10), "refused, names the limit");
        assert_eq!(budget.left(), 6, "a refusal takes nothing");
        assert_eq!(budget.charge(6), Ok(()));
        assert_eq!(budget.charge(1), Err(10));
        assert_eq!(Budget::new(u64::MAX).charge(u64::MAX), Ok(()));
    }

    #[test]
    fn refusals_name_the_limit_and_its_variable() {
        assert_eq!(
            over_budget("read", 1 << 20, READ_LIMIT_VAR),
            "read more than its limit of 1 MiB (raise it with MSB_PLUGIN_READ_MIB)"
        );
        assert!(over_budget("streamed", 1000, STREAM_LIMIT_VAR).contains("1000 bytes"));
        assert!(over_budget("had the host hash", 3 << 30, HASH_LIMIT_VAR).contains("3072 MiB"));
    }

    #[test]
    fn plugin_text_is_one_short_line() {
        assert_eq!(one_line("two\nlines\x1b[31m red"), "two lines [31m red");
        let long = one_line(&"é".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_LINE + 1);
        assert!(long.ends_with('…'));
    }
}
