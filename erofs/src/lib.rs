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
//!
//! Two formats ([`Format`]): a full image (4 KiB blocks, file data copied
//! in), or a tar index (512-byte blocks, metadata only: each regular file's
//! data is referenced in the layer tar itself, which the kernel reads as an
//! extra device, as `mkfs.erofs --tar=i` and containerd's EROFS snapshotter
//! do):
//!
//! ```no_run
//! let tar = std::fs::File::open("layer.tar")?;
//! let mut out = std::fs::File::create("layer.erofs")?;
//! let opts = msb_erofs::Options { format: msb_erofs::Format::TarIndex, ..Default::default() };
//! let summary = msb_erofs::write_layer(tar, &mut out, &opts)?;
//! // mount -t erofs -o ro,device=/dev/loopN layer.erofs DIR  (loopN: layer.tar)
//! println!("{} bytes of metadata for {} blocks of tar", summary.bytes, summary.device_blocks);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`check`] verifies an EROFS image (this writer's, or `mkfs.erofs`'s
//! without compression) the way `fsck.erofs` does; [`check_with_devices`]
//! one that refers to extra devices (a tar index), and [`devices`] lists
//! them.

mod check;
mod dir;
mod entry;
mod layout;
mod sparse;
mod tree;
mod write;
mod xattr;

pub use check::{CheckError, CheckSummary, Device, check, check_with_devices, devices};
pub use xattr::XattrError;

use std::io::{self, Read};

/// How file data is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// 4 KiB blocks, every file's data copied into the image.
    #[default]
    Full,
    /// 512-byte blocks, metadata only: regular files point into the layer
    /// tar, the image's one extra device (`mkfs.erofs --tar=i`). The tar
    /// read by [`write_layer`] must start at its byte 0: the offsets are
    /// the tar's. Sparse files are the exception, stored in the image.
    TarIndex,
}

/// Options for [`write_layer`]. The default is what msb uses.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the temporary tails file goes (default: the system's temp dir).
    pub tmp_dir: Option<std::path::PathBuf>,
    /// Full image or tar index.
    pub format: Format,
    /// [`Format::TarIndex`]: the device slot's tag (at most 64 bytes, such
    /// as the blob's hex digest; default empty). The kernel reads it only
    /// when a mount names no device; ignored for [`Format::Full`].
    pub device_tag: Option<String>,
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
    /// What was dropped from the tar rather than refused, the first
    /// [`MAX_NOTES`] of it (`note: LAYER: {note}` lines for the user).
    pub notes: Vec<Note>,
    /// How many more notes there were.
    pub more_notes: u64,
    /// [`Format::TarIndex`]: 512-byte blocks of the tar the image refers to
    /// (the tar's bytes the writer read, to its end-of-archive block,
    /// rounded up); 0 for [`Format::Full`].
    pub device_blocks: u64,
}

/// Deepest path accepted, in components: what `fsck.erofs` and other tools
/// that recurse per directory can take (`fsck.erofs` 1.5 crashes near 650
/// levels with an 8 MiB stack).
pub const MAX_DEPTH: usize = 512;

/// Most notes a [`Summary`] keeps.
pub const MAX_NOTES: usize = 20;

/// Something of the tar that the image leaves out, as docker and containerd
/// would (or, for overlay xattrs, should), rather than refusing the layer.
/// Displays as `PATH: dropped …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// An overlayfs-private xattr (`trusted.overlay.*`, `user.overlay.*`):
    /// it would forge an overlay marker (opaque, redirect, metacopy,
    /// origin, ...) in the sandbox's overlay.
    OverlayXattr {
        /// The entry's path in the tar.
        path: String,
        /// The xattr's name.
        name: String,
    },
    /// A non-directory entry whose path is the layer's root (`.`, `./`, an
    /// empty name): containerd ignores every entry that resolves to the root.
    RootEntry {
        /// The entry's path in the tar.
        path: String,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::OverlayXattr { path, name } => {
                write!(f, "{path}: dropped xattr {name:?} (overlayfs-private, it would forge an overlay marker)")
            }
            Note::RootEntry { path } => write!(f, "{path}: dropped a non-directory entry at the root of the layer"),
        }
    }
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
    /// than 255 bytes, a NUL byte, an empty whiteout name, a whiteout of `.`
    /// or `..`, a path deeper than [`MAX_DEPTH`] directories.
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
    /// The image would need more than 2^32 blocks (16 TiB; 2 TiB of image
    /// and tar together for a tar index).
    #[error("the layer is too large for an EROFS image")]
    TooLarge,
    /// [`Options`] that cannot be written (a device tag over 64 bytes).
    #[error("invalid options: {0}")]
    Options(String),
}

impl Error {
    /// The tar entry at fault, if the error is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Entry { path, .. } | Error::InvalidPath { path, .. } | Error::Unsupported { path, .. } => Some(path),
            Error::Io(_) | Error::TooLarge | Error::Options(_) => None,
        }
    }
}

/// Reads the layer tar from `tar` in one pass and writes the EROFS image to
/// `out` (a fresh, empty file).
pub fn write_layer<R: Read>(tar: R, out: &mut std::fs::File, opts: &Options) -> Result<Summary, Error> {
    write::write(tar, out, opts)
}
