//! Why a load failed. The CLI prefixes the input's name.

use crate::input::InputError;
use crate::plugin::PluginError;
use crate::plugin::model::DecodeError;
use crate::store::StoreError;

/// Why a load failed; every variant names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Opening or indexing the input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A plugin could not be loaded or crashed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decoder reported a problem with the archive.
    #[error("{}{} (decoder {plugin})", error.entry.as_ref().map(|e| format!("{e}: ")).unwrap_or_default(), error.message)]
    Decode {
        /// The decoder.
        plugin: String,
        /// What it said.
        error: DecodeError,
    },
    /// No decoder recognizes the archive.
    #[error("not a recognized image archive ({looks_like}); tried {}", tried.join(", "))]
    NoDecoder {
        /// What the input looks like.
        looks_like: String,
        /// Decoders asked.
        tried: Vec<String>,
    },
    /// Several decoders claim the archive equally.
    #[error("decoders {} all claim this archive with confidence {score}; pick one with --plugin", names.join(", "))]
    AmbiguousDecoder {
        /// The tied decoders.
        names: Vec<String>,
        /// Their confidence.
        score: u8,
    },
    /// `--plugin NAME` names no installed decoder.
    #[error("no decoder named {name:?}; available: {}", available.join(", "))]
    UnknownPlugin {
        /// What was asked for.
        name: String,
        /// What exists.
        available: Vec<String>,
    },
    /// The requested platform is not in the archive.
    #[error("no image for platform {wanted} in the archive; it has {}", present.join(", "))]
    Platform {
        /// Wanted platform.
        wanted: String,
        /// Platforms present.
        present: Vec<String>,
    },
    /// Content that fails verification or contradicts itself.
    #[error("{what}: {reason}")]
    Invalid {
        /// The entry, blob or layer.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer tar could not be converted.
    #[error("{what}: {error}")]
    Layer {
        /// The layer.
        what: String,
        /// The writer's error.
        error: msb_erofs::Error,
    },
    /// Reading or writing failed.
    #[error("{what}: {error}")]
    Io {
        /// What was read or written.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}

impl LoadError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> LoadError {
        LoadError::Invalid { what: what.into(), reason: reason.into() }
    }
}
