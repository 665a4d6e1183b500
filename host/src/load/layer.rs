//! Importing one layer in one pass over its bytes: hash the blob (and keep
//! a copy), undo its compression (sniffed, not trusted), hash the tar, and
//! write the EROFS image.

use super::LoadError;
use super::plan::LayerPlan;
use super::source;
use crate::digest::{Digest, HashingReader, TeeReader};
use crate::input::{Archive, Compression, decompress, sniff};
use crate::plugin::Session;
use crate::plugin::bindings::msb::format::types::Source;
use crate::progress::{Counting, Progress};
use crate::store::Staging;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

/// A layer as it ended up in the store.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Digest of the blob.
    pub digest: Digest,
    /// Media type (declared, or from the sniffed compression).
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// The bytes importing `layer` reads, if known up front.
pub(crate) fn size_hint(archive: &dyn Archive, layer: &LayerPlan) -> Option<u64> {
    match &layer.source {
        Source::Entry(path) => archive.size(path).ok(),
        Source::Bytes(bytes) => Some(bytes.len() as u64),
        Source::Stream(_) => None,
    }
}

/// Imports `layer`, or finds it already in the store.
pub(crate) fn import(
    staging: &Staging,
    archive: &dyn Archive,
    session: Option<&mut Session>,
    layer: &LayerPlan,
    progress: &dyn Progress,
) -> Result<Imported, LoadError> {
    let store = staging.store();
    if let Some(digest) = &layer.digest {
        let blob = store.blob_path(digest);
        let erofs = store.layer_path(&layer.diff_id);
        if let (Ok(meta), true) = (blob.metadata(), erofs.is_file()) {
            staging.require(blob);
            staging.require(erofs);
            let media_type = layer.media_type.clone().unwrap_or_else(|| layer.flavor.layer(None).to_string());
            progress.advance(size_hint(archive, layer).unwrap_or(0));
            return Ok(Imported {
                digest: digest.clone(),
                media_type,
                size: meta.len(),
                diff_id: layer.diff_id.clone(),
            });
        }
    }
    let io_err = |e: io::Error| source::unwrap_plugin_error(e, &layer.source);
    let failure = Arc::new(Mutex::new(None));
    let reader = FailureSlot { inner: source::open(archive, session, &layer.source)?, slot: failure.clone() };
    let reader = Counting::new(reader, progress);
    // A failure of the source (a plugin stream, a truncated archive) is
    // reported as itself, not as whatever the layer parser made of it.
    let source_failed = || failure.lock().unwrap_or_else(|p| p.into_inner()).take().map(io_err);
    let blob_file = staging.temp_file()?;
    // A layer whose EROFS image the store has (the same tar, compressed
    // another way) is only hashed: the diff_id check still covers it.
    let erofs_exists = store.layer_path(&layer.diff_id).is_file();
    let mut erofs_file = if erofs_exists { None } else { Some(staging.temp_file()?) };
    let options = msb_erofs::Options { tmp_dir: Some(staging.dir().to_path_buf()) };

    let blob = HashingReader::new(TeeReader::new(reader, BufWriter::with_capacity(1 << 20, blob_file.as_file())));
    let mut blob = BufReader::with_capacity(1 << 18, blob);
    let compression = sniff(blob.fill_buf().map_err(io_err)?);
    let converted = convert(&mut blob, compression, erofs_file.as_mut().map(|f| f.as_file_mut()), &options);
    // Read the blob to its end even after a failure: a blob whose digest is
    // wrong is reported as corrupt, whatever the parser made of it.
    let drained = io::copy(&mut blob, &mut io::sink());
    let (digest, size, tee) = blob.into_inner().into_parts();
    if let Some(declared) = layer.digest.as_ref().filter(|d| **d != digest && drained.is_ok()) {
        return Err(LoadError::invalid(
            &layer.what,
            format!("content has digest {digest}, the archive says {declared}"),
        ));
    }
    let diff_id = converted.map_err(|error| match error {
        Convert::Read(e) => source_failed().unwrap_or_else(|| io_err(e)),
        Convert::Layer(error) => source_failed().unwrap_or(LoadError::Layer { what: layer.what.clone(), error }),
    })?;
    drained.map_err(io_err)?;
    tee.into_writer().flush().map_err(io_err)?;

    let media_type = layer.media_type.clone().unwrap_or_else(|| layer.flavor.layer(compression).to_string());
    let imported = Imported { digest, media_type, size, diff_id };
    layer.verify(&imported)?;
    staging.add_blob_file(blob_file, &imported.digest)?;
    match erofs_file {
        Some(file) => staging.add_layer_file(file, &imported.diff_id)?,
        None => staging.require(store.layer_path(&imported.diff_id)),
    }
    Ok(imported)
}

/// Why [`convert`] failed.
enum Convert {
    Read(io::Error),
    Layer(msb_erofs::Error),
}

/// Undoes `compression`, writes the EROFS image of the tar to `out` (unless
/// `out` is `None`: the store has it already), and returns the tar's digest
/// (the diff_id).
fn convert(
    blob: &mut impl Read,
    compression: Option<Compression>,
    out: Option<&mut std::fs::File>,
    options: &msb_erofs::Options,
) -> Result<Digest, Convert> {
    let mut tar = HashingReader::new(decompress(blob, compression).map_err(Convert::Read)?);
    if let Some(out) = out {
        msb_erofs::write_layer(&mut tar, out, options).map_err(Convert::Layer)?;
    }
    let (diff_id, _) = tar.finish().map_err(Convert::Read)?;
    Ok(diff_id)
}

/// Keeps the first read error of the source for the importer, handing the
/// parser a stand-in.
struct FailureSlot<R> {
    inner: R,
    slot: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> Read for FailureSlot<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let stand_in = io::Error::new(e.kind(), e.to_string());
            self.slot.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            stand_in
        })
    }
}
