//! What can go wrong talking to a registry, each in one line naming the
//! registry (or the image) and the cause.

use crate::load::LoadError;
use crate::store::StoreError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials, or asked for some and there were none.
    #[error("{registry}: unauthorized: {detail}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What it said, and where credentials come from.
        detail: String,
    },
    /// The registry has no such image or blob.
    #[error("{what}: not found")]
    NotFound {
        /// What was asked for (`registry/repository:tag`).
        what: String,
    },
    /// The TLS handshake failed (an unknown CA, a name mismatch).
    #[error("{registry}: TLS failure: {cause}")]
    Tls {
        /// The registry.
        registry: String,
        /// The TLS library's reason.
        cause: String,
    },
    /// The registry could not be reached, or dropped the connection.
    #[error("{registry}: {cause}")]
    Connection {
        /// The registry.
        registry: String,
        /// Connection refused, reset, timed out...
        cause: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: HTTP {status}{detail}")]
    Status {
        /// What was asked for (`registry/repository...`).
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own error message (`: CODE: message`), if any.
        detail: String,
    },
    /// What the registry sent is not what was asked for, or not usable.
    #[error("{what}: {reason}")]
    Invalid {
        /// The image, manifest or blob.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Credentials could not be read or saved.
    #[error("{source_name}: {reason}")]
    Credentials {
        /// The file or helper.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Loading into the store (pull) or reading an archive (push -i).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// An [`RegistryError::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RegistryError {
        RegistryError::Invalid { what: what.into(), reason: reason.into() }
    }
}
