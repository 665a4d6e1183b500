//! Write an `msb` archive decoder: implement [`Decoder`], call [`export_decoder!`].
//!
//! A decoder reads the small metadata entries of an archive through
//! [`ArchiveRead`] and describes the images inside; the host reads the layer
//! bytes itself, verifies every digest and writes the store. A whole decoder:
//!
//! ```
//! use msb_plugin_sdk::*;
//!
//! struct Mine;
//! impl Decoder for Mine {
//!     fn info() -> Info { info!("mine", "reads my format", ["mine"]) }
//!     fn detect(archive: &dyn ArchiveRead) -> u8 {
//!         if archive.has_file("MINE") { 100 } else { 0 }
//!     }
//!     fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
//!         let config = entry_blob(oci::MEDIA_TYPE_OCI_CONFIG, None, "config.json");
//!         let layer = Layer { blob: entry_blob(oci::MEDIA_TYPE_OCI_LAYER, None, "layer.tar"), diff_id: None };
//!         Ok(vec![Image { refs: vec!["mine:latest".into()], platform: None,
//!             indexes: vec![], manifest: None, config, layers: vec![layer], attachments: vec![] }])
//!     }
//! }
//! export_decoder!(Mine);
//! # fn main() {
//! # let archive = MemArchive::new([("MINE", "")]);
//! # assert_eq!(Mine::detect(&archive), 100);
//! # assert_eq!(Mine::decode(&archive).unwrap()[0].layers.len(), 1);
//! # }
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2` (`cargo build --release
//! --target wasm32-wasip2`) and hand the `.wasm` to `msb plugin install`.
//! `PLUGINS.md` in the msb repository says more; `examples/rootfs-tar` there
//! is a whole third-party decoder.
//!
//! Archives that hold an OCI image layout can hand it to [`layout::images`];
//! [`ArchiveRead::resolve`] follows links the way the host does. An archive
//! that is itself a layer (a root-filesystem tarball) is [`Source::Input`],
//! with [`ArchiveRead::input_digest`] as its diff_id and [`elf_platform`]
//! to tell its platform.
//!
//! Decoders run in a sandbox with no file system, network, clock or
//! randomness, under memory and time limits. Unit-test their logic natively
//! with [`MemArchive`].
//!
//! The SDK carries the contract it implements, `wit/format.wit`
//! (`msb:format@0.2.0`, [`CONTRACT_VERSION`]); a decoder built on it runs on
//! every msb that speaks that contract.

mod archive;
mod digest;
mod elf;
mod error;
pub mod layout;
pub mod oci;

pub use archive::{ArchiveRead, MAX_METADATA_SIZE, MemArchive, clean_path, read_json};
pub use digest::Digest;
pub use elf::{ELF_HEADER_LEN, elf_platform};

/// Generated bindings of the `msb:format` WIT contract. Use the re-exports
/// at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "decoder",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "msb_plugin_sdk::bindings",
    });
}

pub use bindings::msb::format::types::{
    Blob, DecodeError, Entry, EntryKind, ErrorKind, Image, Info, Layer, Platform, Source,
};

/// The version of the WIT contract this SDK implements.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// An archive decoder. Implement it on a unit struct and pass that struct to
/// [`export_decoder!`].
pub trait Decoder {
    /// Name, version, formats and a one-line description.
    fn info() -> Info;
    /// How sure this decoder is that it reads `archive`: 0 to 100.
    fn detect(archive: &dyn ArchiveRead) -> u8;
    /// Every image in `archive`.
    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError>;
    /// Next bytes (at most `max`) of a [`Source::Stream`] this decoder
    /// returned; empty at the end. Called in the same sandbox as `decode`,
    /// after it, so state kept in statics carries over. Decoders that return
    /// no streams keep the default.
    fn read_stream(_archive: &dyn ArchiveRead, id: u32, _max: u32) -> Result<Vec<u8>, DecodeError> {
        Err(DecodeError::unsupported(None, format!("this decoder has no stream {id}")))
    }
}

/// Sends a line to the host's debug log (`MSB_LOG=debug`).
/// Natively (unit tests) it goes to stderr.
pub fn log(message: &str) {
    #[cfg(target_family = "wasm")]
    bindings::log(message);
    #[cfg(not(target_family = "wasm"))]
    eprintln!("{message}");
}

/// The prefix that makes a [`log`] line a note for the user.
pub const NOTE_PREFIX: &str = "note: ";

/// Tells the user something they should know about a load that still
/// succeeds (e.g. two descriptions in the archive disagree and one was
/// chosen): the host prints `note: plugin <name>: <message>` on stderr
/// unless `-q`. One line; the host cuts long or numerous notes.
pub fn note(message: &str) {
    log(&format!("{NOTE_PREFIX}{message}"));
}

/// Builds an [`Info`] whose version is the calling crate's.
#[macro_export]
macro_rules! info {
    ($name:expr, $description:expr, $formats:expr) => {
        $crate::Info {
            name: ($name).to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            formats: ($formats).iter().map(|f: &&str| f.to_string()).collect(),
            description: ($description).to_string(),
        }
    };
}

/// A blob whose bytes are the archive entry at `path`.
pub fn entry_blob(media_type: &str, digest: Option<&Digest>, path: &str) -> Blob {
    Blob {
        media_type: Some(media_type.to_string()),
        digest: digest.map(Digest::to_string),
        source: Source::Entry(path.to_string()),
    }
}

impl Blob {
    /// A blob of `media_type` whose bytes are at `source`; the host computes
    /// its digest.
    pub fn new(media_type: &str, source: Source) -> Blob {
        Blob { media_type: Some(media_type.to_string()), digest: None, source }
    }
}

impl Image {
    /// An image of `config` and `layers` (base first) and nothing else said:
    /// no refs (the user names it with `msb load -t`), no platform (the
    /// config's), no index, and a manifest the host writes. Fill in the rest
    /// with struct update syntax: `Image { refs, ..Image::new(config, layers) }`.
    pub fn new(config: Blob, layers: Vec<Layer>) -> Image {
        Image { refs: vec![], platform: None, indexes: vec![], manifest: None, config, layers, attachments: vec![] }
    }
}

/// Exports a [`Decoder`] as the component's implementation of the contract.
#[macro_export]
macro_rules! export_decoder {
    ($decoder:ty) => {
        #[doc(hidden)]
        type __MsbDecoderAdapter = $crate::Adapter<$decoder>;
        $crate::bindings::export!(__MsbDecoderAdapter with_types_in $crate::bindings);
    };
}

/// Glue between a [`Decoder`] and the generated bindings.
#[doc(hidden)]
pub struct Adapter<T>(core::marker::PhantomData<T>);

impl<T: Decoder> bindings::Guest for Adapter<T> {
    fn info() -> Info {
        T::info()
    }

    fn detect(archive: &bindings::msb::format::types::Archive) -> u8 {
        T::detect(&archive::HostArchive::new(archive)).min(100)
    }

    fn decode(archive: &bindings::msb::format::types::Archive) -> Result<Vec<Image>, DecodeError> {
        T::decode(&archive::HostArchive::new(archive))
    }

    fn read_stream(archive: &bindings::msb::format::types::Archive, id: u32, max: u32) -> Result<Vec<u8>, DecodeError> {
        T::read_stream(&archive::HostArchive::new(archive), id, max)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `wit/format.wit` is a copy of the repository's contract, so the crate
    /// builds on its own; this keeps the two from drifting (outside the
    /// repository, where there is no original, there is nothing to compare).
    #[test]
    fn the_contract_copy_matches_the_repository() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let copy = std::fs::read_to_string(dir.join("wit/format.wit")).expect("read wit/format.wit");
        let path = dir.join(format!("../../wit/v{}/format.wit", super::CONTRACT_VERSION));
        if let Ok(original) = std::fs::read_to_string(&path) {
            assert!(copy == original, "plugins/sdk/wit/format.wit differs from {}: copy it over", path.display());
        }
        assert!(copy.contains(&format!("package msb:format@{};", super::CONTRACT_VERSION)), "CONTRACT_VERSION");
    }
}
