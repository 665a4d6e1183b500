//! Progress of long phases (spooling the input, importing layers) and notes
//! for the user, for the CLI to show; the library only reports.

use std::io::{self, Read};

/// A long phase of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Copying stdin or a compressed archive into the store's `tmp/`.
    Spooling,
    /// Reading layers: hashing, decompressing, writing EROFS.
    Importing,
}

impl Phase {
    /// How the phase is shown.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Spooling => "spooling",
            Phase::Importing => "importing layers",
        }
    }
}

/// Receives progress reports; every method may be called from any thread.
pub trait Progress: Sync {
    /// A phase starts; `total` bytes if known.
    fn start(&self, _phase: Phase, _total: Option<u64>) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// The phase ended.
    fn finish(&self) {}
    /// A transfer (one blob downloading or uploading) starts; `id` names it
    /// (a short digest, as docker shows), `total` bytes if known.
    fn transfer_start(&self, _id: &str, _total: Option<u64>) {}
    /// `bytes` more of transfer `id` moved.
    fn transfer_advance(&self, _id: &str, _bytes: u64) {}
    /// Transfer `id` ended, or was found unnecessary: `status` says how
    /// (`Pull complete`, `Layer already exists`, `Mounted from …`).
    fn transfer_end(&self, _id: &str, _status: &str) {}
    /// Something the user should know that is not an error (a name dropped,
    /// an entry skipped); the CLI prints it as `note: MESSAGE` unless quiet.
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// A reader that reports every byte read through it.
pub struct Counting<'p, R> {
    inner: R,
    progress: &'p dyn Progress,
}

impl<'p, R: Read> Counting<'p, R> {
    /// Wraps `inner`.
    pub fn new(inner: R, progress: &'p dyn Progress) -> Self {
        Counting { inner, progress }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
