//! An archive decoded and checked, without a store: what `msb push -i`
//! sends. The same decoders, plan and per-layer verification as a load;
//! no EROFS image is written and nothing is committed.

use super::layer::{self, Imported};
use super::plan::{self, ImagePlan};
use super::source::describe;
use super::{LoadError, LoadOptions, detect};
use crate::digest::Digest;
use crate::input::{self, Archive};
use crate::oci;
use crate::plugin::model::{Blob, Source};
use crate::plugin::{Registry, Runtime, Session};
use crate::progress::Progress;
use crate::reference::Reference;
use crate::store::Store;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Reads a blob's bytes from an offset (the uploader may ask several times).
pub type OpenBlob = Box<dyn Fn(u64) -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// A blob of a verified image, ready to be read again.
pub struct VerifiedBlob {
    /// Its digest (checked).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its bytes from an offset.
    pub open: OpenBlob,
}

/// A manifest or index: digest, media type, bytes.
pub type Document = (Digest, String, Vec<u8>);

/// One image (or an index with its platforms) of an archive, verified.
pub struct Verified {
    /// Configs and layers (and attachments' blobs), each once.
    pub blobs: Vec<VerifiedBlob>,
    /// Manifests an index lists, to send before it.
    pub children: Vec<Document>,
    /// The manifest, or the index.
    pub top: Document,
    /// Spool files of streamed layers, removed when this is dropped.
    _spools: Vec<tempfile::TempPath>,
}

/// A decoded archive.
pub struct Decoded {
    archive: Arc<dyn Archive>,
    session: Mutex<Session>,
    plans: Vec<ImagePlan>,
    options: LoadOptions,
    _input: input::Input,
}

/// Opens, detects and decodes the archive `options` names, and checks what
/// the decoder said (platforms, configs, manifests), as `msb load` does.
pub fn decode_archive(
    store: &Store,
    runtime: &Arc<Runtime>,
    options: &LoadOptions,
    progress: &dyn Progress,
) -> Result<Decoded, LoadError> {
    let registry = Registry::load(runtime, &store.plugins_dir())?;
    let input = input::open(&options.source, &store.tmp_dir(), progress)?;
    let archive = input.archive.clone();
    let mut session = detect::choose(runtime, &registry, &archive, options.plugin.as_deref())?;
    let images = session.decode()?.map_err(|error| LoadError::Decode { plugin: session.name().to_string(), error })?;
    let plans = plan::plan(&*archive, Some(&mut session), images, options, progress)?;
    Ok(Decoded { archive, session: Mutex::new(session), plans, options: options.clone(), _input: input })
}

impl Decoded {
    /// The images to push, as groups of plans: one platform's image, or
    /// (with `--all-platforms`) every platform of one index.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let key = plan.indexes.first().filter(|_| self.options.all_platforms).map(plan::blob_identity);
            match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
                Some((_, group)) => group.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// The name the archive gives a group, if any.
    pub fn reference(&self, group: &[usize]) -> Option<Reference> {
        group.first().and_then(|&i| self.plans[i].refs.first().cloned())
    }

    /// How messages name a group: its first image's ID.
    pub fn describe(&self, group: &[usize]) -> String {
        group.first().map_or_else(String::new, |&i| Digest::of(&self.plans[i].config).to_string())
    }

    /// Reads every layer of `group` once, checking digests and diff_ids,
    /// and returns its blobs and manifests, ready to send. Streamed layers
    /// are spooled into `tmp`.
    pub fn verify(&self, group: &[usize], tmp: &Path) -> Result<Verified, LoadError> {
        let mut blobs: Vec<VerifiedBlob> = Vec::new();
        let mut spools = Vec::new();
        let mut manifests = Vec::new();
        for plan in group.iter().map(|&i| &self.plans[i]) {
            let mut layers: Vec<Imported> = Vec::new();
            for layer in &plan.layers {
                let mut spool = match layer.source {
                    Source::Stream(_) => Some(
                        tempfile::NamedTempFile::new_in(tmp)
                            .map_err(|error| LoadError::Io { what: tmp.display().to_string(), error })?,
                    ),
                    _ => None,
                };
                let imported = {
                    let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
                    let mut sink = io::sink();
                    let copy: &mut dyn io::Write = match spool.as_mut() {
                        Some(file) => file.as_file_mut(),
                        None => &mut sink,
                    };
                    layer::verify_only(&*self.archive, Some(&mut session), layer, self.options.max_layer_bytes, copy)?
                };
                let open = match spool {
                    Some(file) => {
                        let path = file.into_temp_path();
                        let opened = path.to_path_buf();
                        spools.push(path);
                        from_file(opened)
                    }
                    None => self.opener(&layer.source, imported.size),
                };
                push_unique(
                    &mut blobs,
                    VerifiedBlob {
                        digest: imported.digest.clone(),
                        size: imported.size,
                        media_type: imported.media_type.clone(),
                        open,
                    },
                );
                layers.push(imported);
            }
            let (manifest, media_type) = match &plan.manifest {
                Some((bytes, media_type)) => (bytes.clone(), media_type.clone()),
                None => (plan.synthesize_manifest(&layers), oci::MEDIA_TYPE_MANIFEST.to_string()),
            };
            let config_type = match oci::Document::parse(&manifest, Some(&media_type)) {
                Ok(oci::Document::Manifest(m, _)) => m.config.media_type,
                _ => oci::MEDIA_TYPE_CONFIG.to_string(),
            };
            let config = Arc::new(plan.config.clone());
            push_unique(
                &mut blobs,
                VerifiedBlob {
                    digest: Digest::of(&config),
                    size: config.len() as u64,
                    media_type: config_type,
                    open: from_bytes(config),
                },
            );
            manifests.push((Digest::of(&manifest), media_type, manifest));
        }
        let first = &self.plans[group[0]];
        let indexed = self.options.all_platforms && !first.indexes.is_empty();
        if !indexed {
            let top = manifests.pop().ok_or_else(|| LoadError::invalid("the archive", "holds no image"))?;
            return Ok(Verified { blobs, children: Vec::new(), top, _spools: spools });
        }
        if first.indexes.len() > 1 {
            return Err(LoadError::invalid(
                describe(&first.indexes[1].source),
                "an index inside an index cannot be pushed",
            ));
        }
        let mut children = manifests;
        for blob in &first.attachments {
            let media_type = blob.media_type.clone().unwrap_or_default();
            let digest: Digest = blob
                .digest
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|e| LoadError::invalid(describe(&blob.source), format!("{e}")))?;
            if oci::is_manifest(&media_type) {
                let bytes = self.read_verified(blob)?;
                children.push((digest, media_type, bytes));
            } else {
                let size = match &blob.source {
                    Source::Entry(path) => self.archive.size(path)?,
                    Source::Bytes(bytes) => bytes.len() as u64,
                    Source::Input | Source::Stream(_) => {
                        return Err(LoadError::invalid(
                            describe(&blob.source),
                            "an attachment must be an archive entry or bytes",
                        ));
                    }
                };
                push_unique(
                    &mut blobs,
                    VerifiedBlob { digest, size, media_type, open: self.opener(&blob.source, size) },
                );
            }
        }
        let index = &first.indexes[0];
        let bytes = self.read_verified(index)?;
        let media_type = match oci::Document::parse(&bytes, index.media_type.as_deref()) {
            Ok(oci::Document::Index(_, media_type)) => media_type,
            _ => return Err(LoadError::invalid(describe(&index.source), "is not an image index")),
        };
        Ok(Verified { blobs, children, top: (Digest::of(&bytes), media_type, bytes), _spools: spools })
    }

    /// A small blob, its declared digest checked.
    fn read_verified(&self, blob: &Blob) -> Result<Vec<u8>, LoadError> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        plan::read_verified(&*self.archive, Some(&mut session), blob)
    }

    /// Reads `source` (an entry or bytes) of `size` bytes again from any offset.
    fn opener(&self, source: &Source, size: u64) -> OpenBlob {
        match source {
            Source::Entry(path) => {
                let (archive, path) = (self.archive.clone(), path.clone());
                Box::new(move |offset| {
                    Ok(Box::new(EntryReader { archive: archive.clone(), path: path.clone(), offset, end: size })
                        as Box<dyn Read + Send>)
                })
            }
            Source::Bytes(bytes) => from_bytes(Arc::new(bytes.clone())),
            Source::Input => match self.archive.input_range() {
                Some(range) => Box::new(move |offset| Ok(Box::new(range.reader(offset)) as Box<dyn Read + Send>)),
                None => Box::new(|_| Err(io::Error::other("a directory has no bytes of its own"))),
            },
            Source::Stream(_) => Box::new(|_| Err(io::Error::other("a stream cannot be read again"))),
        }
    }
}

fn push_unique(blobs: &mut Vec<VerifiedBlob>, blob: VerifiedBlob) {
    if !blobs.iter().any(|b| b.digest == blob.digest) {
        blobs.push(blob);
    }
}

fn from_bytes(bytes: Arc<Vec<u8>>) -> OpenBlob {
    Box::new(move |offset| {
        let mut cursor = io::Cursor::new(bytes.as_ref().clone());
        cursor.set_position(offset);
        Ok(Box::new(cursor) as Box<dyn Read + Send>)
    })
}

/// The file at `path`, read again from any offset.
pub(crate) fn from_file(path: std::path::PathBuf) -> OpenBlob {
    Box::new(move |offset| {
        let mut file = std::fs::File::open(&path)?;
        file.seek(io::SeekFrom::Start(offset))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 18, file)) as Box<dyn Read + Send>)
    })
}

/// An archive entry read by offset (owning its archive, as an upload body must).
struct EntryReader {
    archive: Arc<dyn Archive>,
    path: String,
    offset: u64,
    end: u64,
}

impl Read for EntryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end.saturating_sub(self.offset)).min(buf.len() as u64).min(1 << 20) as usize;
        if want == 0 {
            return Ok(0);
        }
        let bytes = self.archive.read_at(&self.path, self.offset, want).map_err(io::Error::other)?;
        if bytes.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{}: ends early", self.path)));
        }
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}
