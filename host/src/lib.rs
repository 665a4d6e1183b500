//! `msb` loads container image archives into a store of EROFS layer images,
//! and saves them back out. The byte path of a load, module by module:
//!
//! - [`input`]: open a file, directory or stdin; strip compression; index
//!   the tar entries.
//! - [`plugin`]: the sandboxed WebAssembly decoders that say what the
//!   archive holds.
//! - [`load`]: detect, decode, verify, import layers, commit.
//! - [`store`]: the on-disk store (`docs/STORE.md`), refs and garbage collection.
//! - [`save`]: images back out as OCI / docker archives.
//! - [`registry`]: `pull`, `push` and `login` over the distribution API.
//!
//! The command line (`src/cli/`) is part of the binary only.
//!
//! The EROFS writer is its own crate, `msb-erofs`.

pub mod digest;
pub mod input;
pub mod load;
pub mod mount;
pub mod oci;
pub mod plugin;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod save;
pub mod store;
