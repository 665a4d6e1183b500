//! Importing one layer in one pass over its bytes: hash the blob (and keep
//! a copy), undo its compression (sniffed, not trusted), hash the tar, and
//! write the EROFS image.

use super::LoadError;
use super::plan::LayerPlan;
use super::source;
use crate::digest::{Digest, HashingReader, TeeReader};
use crate::input::{Archive, Compression, decompress, sniff};
use crate::oci;
use crate::plugin::Session;
use crate::plugin::bindings::msb::format::types::Source;
use crate::progress::{Counting, Progress};
use crate::store::{LayerRecord, Staging, Store};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

/// A layer as it ended up in the store.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Digest of the blob.
    pub digest: Digest,
    /// Media type (declared, or from the sniffed compression).
    pub media_type: String,
    /// Compression of the blob, sniffed from its bytes.
    pub compression: Option<Compression>,
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

/// Imports `layer`, or finds it already in the store. `max_bytes` caps
/// its uncompressed size.
pub(crate) fn import(
    staging: &Staging,
    archive: &dyn Archive,
    session: Option<&mut Session>,
    layer: &LayerPlan,
    max_bytes: u64,
    progress: &dyn Progress,
) -> Result<Imported, LoadError> {
    let store = staging.store();
    let source_size = size_hint(archive, layer);
    if let Some(imported) = stored(store, layer, source_size) {
        staging.require(store.blob_path(&imported.digest));
        staging.require(store.record_path(&imported.digest));
        staging.require(store.layer_path(&imported.diff_id));
        progress.advance(source_size.unwrap_or(0));
        return Ok(imported);
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
    let options = msb_erofs::Options { tmp_dir: Some(staging.dir().to_path_buf()), ..Default::default() };

    let blob = HashingReader::new(TeeReader::new(reader, BufWriter::with_capacity(1 << 20, blob_file.as_file())));
    let mut blob = BufReader::with_capacity(1 << 18, blob);
    let compression = sniff(blob.fill_buf().map_err(io_err)?);
    let cap = Cap { left: max_bytes, exceeded: false };
    let converted = convert(&mut blob, compression, cap, erofs_file.as_mut().map(|f| f.as_file_mut()), &options);
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
    let (diff_id, summary) = converted.map_err(|error| match error {
        Convert::TooLarge => LoadError::invalid(
            &layer.what,
            format!("uncompressed content exceeds the {max_bytes}-byte limit for one layer ({LAYER_LIMIT_VAR})"),
        ),
        Convert::Read(e) => source_failed().unwrap_or_else(|| io_err(e)),
        Convert::Layer(error) => source_failed().unwrap_or(LoadError::Layer { what: layer.what.clone(), error }),
    })?;
    drained.map_err(io_err)?;
    tee.into_writer().flush().map_err(io_err)?;
    if let Some(summary) = summary {
        for note in &summary.notes {
            progress.note(&format!("{}: {note}", layer.what));
        }
        if summary.more_notes > 0 {
            progress.note(&format!("{}: {} more entries dropped like these", layer.what, summary.more_notes));
        }
    }

    let media_type = layer.media_type.clone().unwrap_or_else(|| oci::layer_media_type(compression).to_string());
    let imported = Imported { digest, media_type, compression, size, diff_id };
    layer.verify(&imported)?;
    staging.add_blob_file(blob_file, &imported.digest)?;
    let record = LayerRecord { diff_id: imported.diff_id.clone(), size: imported.size };
    staging.add_record(&imported.digest, &record)?;
    match erofs_file {
        Some(file) => staging.add_layer_file(file, &imported.diff_id)?,
        None => staging.require(store.layer_path(&imported.diff_id)),
    }
    Ok(imported)
}

/// The environment variable that sets [`LoadOptions::max_layer_bytes`](super::LoadOptions), in GiB.
pub const LAYER_LIMIT_VAR: &str = "MSB_LAYER_MAX_GIB";

/// `layer` as the store has it already, if the store recorded, when it
/// verified the blob, that this blob has the diff_id the config demands
/// (and its EROFS image is there): then none of its bytes need reading.
///
/// A layer that declares no digest (docker save's `<id>/layer.tar`) of
/// `source_size` bytes is taken for the uncompressed blob the store has of
/// its diff_id when that blob has that size: as docker does, a layer the
/// store has by diff_id is not read again. (Were the archive's bytes other
/// ones of that size, the image would still get the verified layer its
/// config names.)
fn stored(store: &Store, layer: &LayerPlan, source_size: Option<u64>) -> Option<Imported> {
    let digest = layer.digest.as_ref().unwrap_or(&layer.diff_id);
    let record = store.read_record(digest).ok()??;
    let blob = store.blob_path(digest);
    let size = blob.metadata().ok()?.len();
    if record.diff_id != layer.diff_id || record.size != size || !store.layer_path(&record.diff_id).is_file() {
        return None;
    }
    if layer.digest.is_none() && source_size != Some(size) {
        return None;
    }
    let mut head = [0u8; 8];
    let n = std::fs::File::open(&blob).and_then(|mut f| f.read(&mut head)).ok()?;
    let compression = sniff(&head[..n]);
    let media_type = layer.media_type.clone().unwrap_or_else(|| oci::layer_media_type(compression).to_string());
    let imported = Imported { digest: digest.clone(), media_type, compression, size, diff_id: record.diff_id };
    // What the archive declares (size, media type) is still checked.
    layer.verify(&imported).ok()?;
    Some(imported)
}

/// Why [`convert`] failed.
enum Convert {
    /// The uncompressed layer is larger than allowed.
    TooLarge,
    Read(io::Error),
    Layer(msb_erofs::Error),
}

/// Undoes `compression` (reading at most what `cap` allows), writes the
/// EROFS image of the tar to `out` (unless `out` is `None`: the store has it
/// already), and returns the tar's digest (the diff_id) and what the writer
/// said about the image.
fn convert(
    blob: &mut impl Read,
    compression: Option<Compression>,
    cap: Cap,
    out: Option<&mut std::fs::File>,
    options: &msb_erofs::Options,
) -> Result<(Digest, Option<msb_erofs::Summary>), Convert> {
    let mut tar = HashingReader::new(Capped { inner: decompress(blob, compression).map_err(Convert::Read)?, cap });
    let mut result = match out {
        Some(out) => msb_erofs::write_layer(&mut tar, out, options).map(Some).map_err(Convert::Layer),
        None => Ok(None),
    };
    if result.is_ok()
        && let Err(e) = io::copy(&mut tar, &mut io::sink())
    {
        result = Err(Convert::Read(e));
    }
    let (diff_id, _, capped) = tar.into_parts();
    if capped.cap.exceeded {
        return Err(Convert::TooLarge);
    }
    result.map(|summary| (diff_id, summary))
}

/// How many more uncompressed bytes a layer may have.
struct Cap {
    left: u64,
    exceeded: bool,
}

/// A reader that fails once more than its cap was read.
struct Capped<R> {
    inner: R,
    cap: Cap,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.cap.left.checked_sub(n as u64) {
            Some(left) => self.cap.left = left,
            None => {
                self.cap.exceeded = true;
                return Err(io::Error::other("layer exceeds its size limit"));
            }
        }
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(1000);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, "f", &[7u8; 1000][..]).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_uncompressed_size_is_capped() {
        let tar = tar();
        let cap = |left| Cap { left, exceeded: false };
        let options = msb_erofs::Options::default();
        let (digest, _) = convert(&mut &tar[..], None, cap(tar.len() as u64), None, &options).ok().unwrap();
        assert_eq!(digest, Digest::of(&tar));
        let mut out = tempfile::tempfile().unwrap();
        let result = convert(&mut &tar[..], None, cap(1024), Some(&mut out), &options);
        assert!(matches!(result, Err(Convert::TooLarge)));
        assert!(matches!(convert(&mut &tar[..], None, cap(1024), None, &options), Err(Convert::TooLarge)));
    }

    fn plan(digest: &Digest, diff_id: &Digest) -> LayerPlan {
        LayerPlan {
            key: super::super::plan::LayerKey::Unique(1),
            what: "layer 1".into(),
            source: Source::Bytes(vec![]),
            digest: Some(digest.clone()),
            size: None,
            media_type: None,
            diff_id: diff_id.clone(),
        }
    }

    #[test]
    fn a_stored_layer_is_reused_only_on_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = tar();
        let (blob, diff_id) = (Digest::of(&tar), Digest::of(&tar));
        let other = Digest::of(b"another layer");
        std::fs::write(store.blob_path(&blob), &tar).unwrap();
        std::fs::write(store.layer_path(&diff_id), b"erofs").unwrap();
        std::fs::write(store.layer_path(&other), b"erofs").unwrap();
        assert!(stored(&store, &plan(&blob, &diff_id), None).is_none(), "no record: read again");
        let record = LayerRecord { diff_id: diff_id.clone(), size: tar.len() as u64 };
        std::fs::write(store.record_path(&blob), record.to_bytes()).unwrap();
        let reused = stored(&store, &plan(&blob, &diff_id), None).expect("reused on its record");
        assert_eq!(
            (reused.size, reused.compression, reused.media_type.as_str()),
            (record.size, None, oci::MEDIA_TYPE_LAYER)
        );
        assert!(stored(&store, &plan(&blob, &other), None).is_none(), "another diff_id than recorded");
        let mut sized = plan(&blob, &diff_id);
        sized.size = Some(1);
        assert!(stored(&store, &sized, None).is_none(), "a declared size that differs");
        // docker save's layer.tar declares no digest: the uncompressed blob
        // of its diff_id, of its size, is it.
        let mut undeclared = plan(&blob, &diff_id);
        undeclared.digest = None;
        assert!(stored(&store, &undeclared, Some(tar.len() as u64)).is_some());
        assert!(stored(&store, &undeclared, Some(3)).is_none(), "another size");
        assert!(stored(&store, &undeclared, None).is_none(), "a stream");
        std::fs::write(store.blob_path(&blob), b"short").unwrap();
        assert!(stored(&store, &plan(&blob, &diff_id), None).is_none(), "a blob of another size than recorded");
    }
}
