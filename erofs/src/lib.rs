//! EROFS writer: one OCI layer tar in, one EROFS image out.
//!
//! ```no_run
//! let tar = std::fs::File::open("layer.tar")?;
//! let mut out = std::fs::File::create("layer.erofs")?;
//! msb_erofs::write_layer(tar, &mut out, &msb_erofs::Options::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One pass over the tar: file data streams straight into data blocks;
//! only metadata (and small-file tails, in a temporary file) is kept until
//! the end, when directories, inodes and the superblock are written. See
//! `README.md` for what is guaranteed and what is refused.

mod dir;
mod entry;
mod layout;
mod sparse;
mod tree;
mod write;
mod xattr;

pub use xattr::XattrError;

use std::io::{self, Read};

/// Options for [`write_layer`]. The default is what msb uses.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the temporary tails file goes (default: the system's temp dir).
    pub tmp_dir: Option<std::path::PathBuf>,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Inodes in the image.
    pub inodes: u64,
    /// Size of the image in bytes.
    pub bytes: u64,
    /// Tar entries read (PAX and GNU name headers not counted).
    pub entries: u64,
    /// Bytes of regular file content in the layer (hardlinks counted once).
    pub file_bytes: u64,
}

/// Why a layer could not be converted. Every variant about one tar entry
/// names it; the message reads `PATH: what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the tar or writing the image failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A tar entry is malformed or contradicts the tree built so far
    /// (truncated data, a hardlink to nothing, a file used as a directory).
    #[error("{path}: {reason}")]
    Entry {
        /// The entry's path in the tar.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A path that cannot be a layer path: a `..` component, a name longer
    /// than 255 bytes, a NUL byte, an empty whiteout name.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The entry's path in the tar.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Something valid in a tar that this writer does not store: an unknown
    /// entry type, PAX sparse format 0.x, an xattr namespace EROFS has no
    /// prefix for, an oversized xattr.
    #[error("{path}: {what}")]
    Unsupported {
        /// The entry's path in the tar.
        path: String,
        /// What is not supported.
        what: String,
    },
    /// The image would need more than 2^32 blocks (16 TiB).
    #[error("the layer is too large for an EROFS image")]
    TooLarge,
}

impl Error {
    /// The tar entry at fault, if the error is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Entry { path, .. } | Error::InvalidPath { path, .. } | Error::Unsupported { path, .. } => Some(path),
            Error::Io(_) | Error::TooLarge => None,
        }
    }
}

/// Reads the layer tar from `tar` in one pass and writes the EROFS image to
/// `out` (a fresh, empty file).
pub fn write_layer<R: Read>(tar: R, out: &mut std::fs::File, opts: &Options) -> Result<Summary, Error> {
    write::write(tar, out, opts)
}
