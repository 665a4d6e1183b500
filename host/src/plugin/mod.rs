//! The plugin runtime: decoders are WebAssembly components run by wasmtime
//! in a sandbox (no files, network, clock or randomness; bounded memory,
//! time and reads).
//!
//! - [`runtime`]: the engine, loading components, contract version checks.
//! - [`model`]: what a decoder says, in the host's terms.
//! - [`contract`]: the contract versions, side by side, each with its adapter into [`model`].
//! - [`cache`]: the compile cache shared by the user's stores.
//! - [`sandbox`]: the per-call store and what the host gives a plugin.
//! - [`registry`]: which plugins exist (built in, installed, from a path).
//! - [`installed`]: the store's `plugins/`: installed components, disabled names.
//! - [`verdict`]: every decoder's detection answer, and which one wins.

pub mod cache;
pub mod contract;
/// The engine settings, shared with `build.rs`, which precompiles the
/// built-in decoders with them.
mod engine_config;
pub mod installed;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod sandbox;
pub mod verdict;

pub use cache::CACHE_DIR_VAR;
pub use registry::{Origin, Registered, Registry};
pub use runtime::{
    HASH_LIMIT_VAR, Limits, MEMORY_LIMIT_VAR, Plugin, PluginError, READ_LIMIT_VAR, Runtime, STREAM_LIMIT_VAR,
    TIME_LIMIT_VAR, is_valid_name,
};
pub use sandbox::Session;
pub use verdict::{Choice, Verdict, Verdicts};
