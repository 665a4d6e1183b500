//! The plugin contract's versions, side by side (`wit/v*/format.wit`): one
//! adapter per version turns a decoder's answers into the host's own
//! [`model`](super::model). A decoder built for any version listed in
//! [`VERSIONS`] runs; others are refused by [`super::runtime`].
//!
//! Adding a version: its WIT under `wit/`, a module here (`bindgen!` and
//! the `From` conversions, most of them from [`adapter!`]), and one arm in
//! each `match` below.

pub mod v0_1;
pub mod v0_2;

use super::model;
use super::sandbox::{ArchiveHandle, HostState};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker, Resource};

/// The contract versions this host runs, oldest first.
pub const VERSIONS: &[(u64, u64)] = &[(0, 1), (0, 2)];

/// `0.1.0 and 0.2.0`: how messages name [`VERSIONS`].
pub fn versions_text() -> String {
    let all: Vec<String> = VERSIONS.iter().map(|(major, minor)| format!("{major}.{minor}.0")).collect();
    match all.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Whether a decoder built for `version` (`major.minor.patch`) runs here:
/// the same 0.x minor (0.x minors are incompatible with each other), or
/// from 1.0 on the same major with a minor no newer than ours.
pub fn supported(version: (u64, u64, u64)) -> Option<(u64, u64)> {
    let (major, minor, _) = version;
    VERSIONS.iter().copied().find(|&(m, n)| if major == 0 { m == 0 && n == minor } else { m == major && minor <= n })
}

/// Every version's imports (`log`, the `archive` resource) on one linker.
/// The versions' `log` functions share a name and a meaning: the later
/// definition shadows the earlier one.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    v0_1::Decoder::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::Decoder::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A linked decoder of one contract version, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1::DecoderPre<HostState>),
    V0_2(v0_2::DecoderPre<HostState>),
}

/// An instantiated decoder.
pub(crate) enum Instance {
    V0_1(v0_1::Decoder),
    V0_2(v0_2::Decoder),
}

impl Pre {
    /// `pre` as a decoder of contract `version` (one of [`VERSIONS`]).
    pub(crate) fn new(version: (u64, u64), pre: InstancePre<HostState>) -> wasmtime::Result<Pre> {
        match version {
            (0, 1) => Ok(Pre::V0_1(v0_1::DecoderPre::new(pre)?)),
            (0, 2) => Ok(Pre::V0_2(v0_2::DecoderPre::new(pre)?)),
            (major, minor) => Err(wasmtime::format_err!("no adapter for msb:format@{major}.{minor}")),
        }
    }

    /// The contract version, `major.minor.0`.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) => "0.2.0",
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate(store)?),
        })
    }
}

/// A call's result, converted into the host's model.
type Answer<T> = wasmtime::Result<Result<T, model::DecodeError>>;

impl Instance {
    pub(crate) fn info(&self, store: &mut Store<HostState>) -> wasmtime::Result<model::Info> {
        Ok(match self {
            Instance::V0_1(d) => d.call_info(store)?.into(),
            Instance::V0_2(d) => d.call_info(store)?.into(),
        })
    }

    pub(crate) fn detect(
        &self,
        store: &mut Store<HostState>,
        archive: Resource<ArchiveHandle>,
    ) -> wasmtime::Result<u8> {
        match self {
            Instance::V0_1(d) => d.call_detect(store, archive),
            Instance::V0_2(d) => d.call_detect(store, archive),
        }
    }

    pub(crate) fn decode(
        &self,
        store: &mut Store<HostState>,
        archive: Resource<ArchiveHandle>,
    ) -> Answer<Vec<model::Image>> {
        fn images<T: Into<model::Image>>(images: Vec<T>) -> Vec<model::Image> {
            images.into_iter().map(Into::into).collect()
        }
        Ok(match self {
            Instance::V0_1(d) => d.call_decode(store, archive)?.map(images).map_err(Into::into),
            Instance::V0_2(d) => d.call_decode(store, archive)?.map(images).map_err(Into::into),
        })
    }

    pub(crate) fn read_stream(
        &self,
        store: &mut Store<HostState>,
        archive: Resource<ArchiveHandle>,
        id: u32,
        max: u32,
    ) -> Answer<Vec<u8>> {
        Ok(match self {
            Instance::V0_1(d) => d.call_read_stream(store, archive, id, max)?.map_err(Into::into),
            Instance::V0_2(d) => d.call_read_stream(store, archive, id, max)?.map_err(Into::into),
        })
    }
}

/// What every version's adapter is made of: the bindings of the WIT at
/// `$path`, the host's side of its imports (delegating to [`HostState`]),
/// and the conversions into [`model`]. A version adds its own `archive`
/// methods (`archive: { fn … }`) and `source` variants (`source: { … => … }`).
macro_rules! adapter {
    ($path:literal, archive: { $($archive:item)* }, source: { $($source:tt)* }) => {
        wasmtime::component::bindgen!({
            world: "decoder",
            path: $path,
            with: { "msb:format/types.archive": crate::plugin::sandbox::ArchiveHandle },
        });

        use crate::plugin::model;
        use crate::plugin::sandbox::{ArchiveHandle, HostState};
        use self::msb::format::types as wit;
        use wasmtime::component::Resource;

        impl DecoderImports for HostState {
            fn log(&mut self, message: String) {
                HostState::log(self, message)
            }
        }

        impl wit::Host for HostState {}

        impl wit::HostArchive for HostState {
            fn entries(&mut self, _: Resource<ArchiveHandle>) -> Vec<wit::Entry> {
                HostState::entries(self).iter().map(entry).collect()
            }

            fn read(&mut self, _: Resource<ArchiveHandle>, path: String, offset: u64, len: u32) -> Result<Vec<u8>, String> {
                self.read_archive(&path, offset, len)
            }

            fn digest(&mut self, _: Resource<ArchiveHandle>, path: String, uncompressed: bool) -> Result<String, String> {
                self.digest_entry(&path, uncompressed)
            }

            $($archive)*

            fn drop(&mut self, handle: Resource<ArchiveHandle>) -> wasmtime::Result<()> {
                self.drop_archive(handle)
            }
        }

        /// An entry of the archive as this version shows it.
        fn entry(entry: &crate::input::Entry) -> wit::Entry {
            use crate::input::EntryKind as Kind;
            wit::Entry {
                path: entry.path.clone(),
                kind: match entry.kind {
                    Kind::File => wit::EntryKind::File,
                    Kind::Directory => wit::EntryKind::Directory,
                    Kind::Symlink => wit::EntryKind::Symlink,
                    Kind::Hardlink => wit::EntryKind::Hardlink,
                    Kind::Other => wit::EntryKind::Other,
                },
                size: entry.size,
                link: entry.link.clone(),
            }
        }

        impl From<wit::Source> for model::Source {
            fn from(s: wit::Source) -> Self {
                match s {
                    wit::Source::Entry(path) => model::Source::Entry(path),
                    wit::Source::Bytes(bytes) => model::Source::Bytes(bytes),
                    wit::Source::Stream(id) => model::Source::Stream(id),
                    $($source)*
                }
            }
        }

        impl From<wit::Info> for model::Info {
            fn from(i: wit::Info) -> Self {
                model::Info { name: i.name, version: i.version, formats: i.formats, description: i.description }
            }
        }

        impl From<wit::Blob> for model::Blob {
            fn from(b: wit::Blob) -> Self {
                model::Blob { media_type: b.media_type, digest: b.digest, source: b.source.into() }
            }
        }

        impl From<wit::Layer> for model::Layer {
            fn from(l: wit::Layer) -> Self {
                model::Layer { blob: l.blob.into(), diff_id: l.diff_id }
            }
        }

        impl From<wit::Platform> for model::Platform {
            fn from(p: wit::Platform) -> Self {
                model::Platform { os: p.os, architecture: p.architecture, variant: p.variant }
            }
        }

        impl From<wit::Image> for model::Image {
            fn from(i: wit::Image) -> Self {
                let blobs = |blobs: Vec<wit::Blob>| blobs.into_iter().map(Into::into).collect();
                model::Image {
                    refs: i.refs,
                    platform: i.platform.map(Into::into),
                    indexes: blobs(i.indexes),
                    manifest: i.manifest.map(Into::into),
                    config: i.config.into(),
                    layers: i.layers.into_iter().map(Into::into).collect(),
                    attachments: blobs(i.attachments),
                }
            }
        }

        impl From<wit::DecodeError> for model::DecodeError {
            fn from(e: wit::DecodeError) -> Self {
                let kind = match e.kind {
                    wit::ErrorKind::NotThisFormat => model::ErrorKind::NotThisFormat,
                    wit::ErrorKind::Missing => model::ErrorKind::Missing,
                    wit::ErrorKind::Malformed => model::ErrorKind::Malformed,
                    wit::ErrorKind::Unsupported => model::ErrorKind::Unsupported,
                    wit::ErrorKind::Host => model::ErrorKind::Host,
                };
                model::DecodeError { kind, message: e.message, entry: e.entry }
            }
        }
    };
}
pub(crate) use adapter;
