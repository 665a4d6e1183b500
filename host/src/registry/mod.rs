//! Registries: `msb pull`, `msb push` and `msb login` over the OCI
//! distribution API (the HTTP API every registry speaks).
//!
//! - [`client`]: one registry's HTTP client: scheme, TLS, Basic and Bearer
//!   challenges, retries with backoff, resumable blob downloads, monolithic
//!   and chunked uploads, cross-repository mounts.
//! - [`auth`]: credentials as users have them set up (`--authfile`,
//!   `$REGISTRY_AUTH_FILE`, docker's `config.json` and its credential
//!   helpers); `msb login` / `msb logout`.
//! - [`pull`]: a registry image into the store through the load pipeline.
//! - [`push`]: a stored image, or an archive's images, to a registry.
//! - [`locations`]: which repositories of which registries hold a blob, for
//!   cross-repository mounts.

pub mod auth;
pub mod client;
mod error;
pub mod locations;
mod names;
pub mod pull;
pub mod push;

pub use client::Client;
pub use error::RegistryError;
pub use names::Repository;
use std::path::PathBuf;

/// How to reach registries: credentials and TLS, as the user set them.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `--authfile`: a containers `auth.json` or docker `config.json` read
    /// before `$REGISTRY_AUTH_FILE` and docker's config.
    pub authfile: Option<PathBuf>,
    /// `--cert-dir`: a directory with a private CA's `ca.crt` (any `*.crt`),
    /// and optionally a client certificate (`*.cert` with its `*.key`).
    pub cert_dir: Option<PathBuf>,
    /// `--tls-verify`: `Some(false)` allows plain HTTP and untrusted
    /// certificates; `None` allows plain HTTP for localhost only.
    pub tls_verify: Option<bool>,
}
