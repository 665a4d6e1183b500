//! Importing one layer in one pass over its bytes: copy the blob into the
//! store, hash it, undo its compression (sniffed, not trusted), hash the
//! tar, and write the EROFS image: for an uncompressed layer, by default, an
//! index into the blob itself (docs/STORE.md).

use super::LoadError;
use super::pipe;
use super::plan::LayerPlan;
use super::source;
use crate::digest::{Digest, HashingReader, TeeReader};
use crate::input::{Archive, Compression, decompress, sniff};
use crate::oci;
use crate::plugin::Session;
use crate::plugin::model::Source;
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
        Source::Input => archive.input_range().map(|r| r.len),
    }
}

/// How layers are imported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The most bytes one layer may have uncompressed.
    pub max_bytes: u64,
    /// The EROFS image of an uncompressed layer: full, or an index into
    /// the blob (compressed layers always get full images).
    pub format: msb_erofs::Format,
}

/// Imports `layer`, or finds it already in the store.
///
/// The blob is copied into the store first where the kernel can do it
/// (`copy_file_range` from the archive file), then read back from the copy:
/// what is verified is what is stored. Otherwise the copy is made while
/// reading. Two threads share the work, joined by a [`pipe`]: this one
/// reads, hashes the blob and decompresses; the other hashes the tar (for a
/// compressed layer: an uncompressed one's diff_id is its blob digest) and
/// writes the EROFS image.
pub(crate) fn import(
    staging: &Staging,
    archive: &dyn Archive,
    session: Option<&mut Session>,
    layer: &LayerPlan,
    settings: Settings,
    progress: &dyn Progress,
) -> Result<Imported, LoadError> {
    let store = staging.store();
    let source_size = size_hint(archive, layer);
    if let Some(imported) = stored(store, layer, source_size) {
        staging.require(store.blob_path(&imported.digest));
        staging.require(store.record_path(&imported.digest));
        require_layer(staging, &imported.diff_id);
        progress.advance(source_size.unwrap_or(0));
        return Ok(imported);
    }
    let io_err = |e: io::Error| source::unwrap_plugin_error(e, &layer.source);
    let blob_file = staging.temp_file()?;
    let copied = match &layer.source {
        Source::Entry(path) => match archive.file_range(path) {
            Some(range) => range.copy_to(blob_file.as_file(), 0).map_err(io_err)?,
            None => false,
        },
        Source::Input => match archive.input_range() {
            Some(range) => range.copy_to(blob_file.as_file(), 0).map_err(io_err)?,
            None => false,
        },
        _ => false,
    };
    let failure = Arc::new(Mutex::new(None));
    let (reader, copy): (Box<dyn Read + '_>, Box<dyn Write + '_>) = if copied {
        (Box::new(BufReader::with_capacity(1 << 18, blob_file.reopen().map_err(io_err)?)), Box::new(io::sink()))
    } else {
        let source = source::open(archive, session, &layer.source)?;
        let reader = FailureSlot { inner: source, slot: failure.clone() };
        (Box::new(reader), Box::new(BufWriter::with_capacity(1 << 20, blob_file.as_file())))
    };
    // A failure of the source (a plugin stream, a truncated archive) is
    // reported as itself, not as whatever the layer parser made of it.
    let source_failed = || failure.lock().unwrap_or_else(|p| p.into_inner()).take().map(io_err);
    let blob = HashingReader::new(TeeReader::new(Counting::new(reader, progress), copy));
    let mut blob = BufReader::with_capacity(1 << 18, blob);
    let compression = sniff(blob.fill_buf().map_err(io_err)?);
    // A layer whose EROFS image the store has (the same tar, compressed
    // another way) is only hashed: the diff_id check still covers it.
    let erofs_exists = store.layer_path(&layer.diff_id).is_file();
    let mut erofs_file = if erofs_exists { None } else { Some(staging.temp_file()?) };
    let format = if compression.is_none() { settings.format } else { msb_erofs::Format::Full };
    let options = msb_erofs::Options {
        tmp_dir: Some(staging.dir().to_path_buf()),
        format,
        // The blob an index image reads from: the uncompressed tar, whose
        // digest is the diff_id (checked below).
        device_tag: (format == msb_erofs::Format::TarIndex).then(|| layer.diff_id.hex().to_string()),
    };
    let cap = Cap { left: settings.max_bytes, exceeded: false };
    let hash_tar = compression.is_some();
    let (tx, rx) = pipe::pipe();
    let (fed, drained, converted) = std::thread::scope(|scope| {
        let out = erofs_file.as_mut().map(|f| f.as_file_mut());
        let worker = (hash_tar || out.is_some()).then(|| scope.spawn(|| convert(rx, hash_tar, cap, out, &options)));
        let fed = match &worker {
            Some(_) => decompress(&mut blob, compression).and_then(|mut tar| tx.fill(&mut tar)).map(drop),
            None => Ok(()),
        };
        drop(tx);
        // Read the blob to its end even after a failure: a blob whose digest
        // is wrong is reported as corrupt, whatever the parser made of it.
        let drained = io::copy(&mut blob, &mut io::sink());
        let converted = worker.map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        (fed, drained, converted)
    });
    let (digest, size, tee) = blob.into_inner().into_parts();
    if let Some(declared) = layer.digest.as_ref().filter(|d| **d != digest && drained.is_ok()) {
        return Err(LoadError::invalid(
            &layer.what,
            format!("content has digest {digest}, the archive says {declared}"),
        ));
    }
    let fail = |error| match error {
        Convert::TooLarge => LoadError::invalid(
            &layer.what,
            format!(
                "uncompressed content exceeds the {}-byte limit for one layer ({LAYER_LIMIT_VAR})",
                settings.max_bytes
            ),
        ),
        Convert::Read(e) => source_failed().unwrap_or_else(|| io_err(e)),
        Convert::Layer(error) => source_failed().unwrap_or(LoadError::Layer { what: layer.what.clone(), error }),
    };
    // The reading side's own failure comes first: the writing side saw
    // only a stand-in for it.
    fed.map_err(|e| fail(Convert::Read(e)))?;
    let (diff_id, summary) = match converted {
        Some(converted) => converted.map_err(fail)?,
        None => (None, None),
    };
    drained.map_err(io_err)?;
    tee.into_writer().flush().map_err(io_err)?;
    let diff_id = diff_id.unwrap_or_else(|| digest.clone());
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
        None => require_layer(staging, &imported.diff_id),
    }
    Ok(imported)
}

/// Reads `layer` once without storing anything: hashes the blob, undoes
/// its compression and hashes the tar (at most `max_bytes` of it), and
/// checks both against what the archive declares (`msb push -i`). What is
/// read is also copied to `copy` (a spool for a stream, which cannot be
/// read twice).
pub(crate) fn verify_only(
    archive: &dyn Archive,
    session: Option<&mut Session>,
    layer: &LayerPlan,
    max_bytes: u64,
    copy: &mut dyn Write,
) -> Result<Imported, LoadError> {
    let io_err = |e: io::Error| source::unwrap_plugin_error(e, &layer.source);
    let source = source::open(archive, session, &layer.source)?;
    let mut blob = BufReader::with_capacity(1 << 18, HashingReader::new(TeeReader::new(source, &mut *copy)));
    let compression = sniff(blob.fill_buf().map_err(io_err)?);
    let tar_digest = match compression {
        Some(_) => {
            let tar = Capped {
                inner: decompress(&mut blob, compression).map_err(io_err)?,
                cap: Cap { left: max_bytes, exceeded: false },
            };
            let mut tar = HashingReader::new(tar);
            let copied = io::copy(&mut tar, &mut io::sink());
            let (digest, _, capped) = tar.into_parts();
            if capped.cap.exceeded {
                return Err(LoadError::invalid(
                    &layer.what,
                    format!(
                        "uncompressed content exceeds the {max_bytes}-byte limit for one layer ({LAYER_LIMIT_VAR})"
                    ),
                ));
            }
            copied.map_err(io_err)?;
            Some(digest)
        }
        None => None,
    };
    io::copy(&mut blob, &mut io::sink()).map_err(io_err)?;
    let (digest, size, tee) = blob.into_inner().into_parts();
    tee.into_writer().flush().map_err(io_err)?;
    let diff_id = tar_digest.unwrap_or_else(|| digest.clone());
    let media_type = layer.media_type.clone().unwrap_or_else(|| oci::layer_media_type(compression).to_string());
    let imported = Imported { digest, media_type, compression, size, diff_id };
    layer.verify(&imported)?;
    Ok(imported)
}

/// Records that the change relies on the stored EROFS image of `diff_id`
/// and the blobs it reads from.
fn require_layer(staging: &Staging, diff_id: &Digest) {
    let store = staging.store();
    staging.require(store.layer_path(diff_id));
    for device in store.layer_devices(diff_id).unwrap_or_default() {
        staging.require(device);
    }
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
    if !store.layer_devices(&record.diff_id).ok()?.iter().all(|d| d.is_file()) {
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

/// The writing side of an import: hashes the tar if asked (`hash`),
/// writes its EROFS image to `out` (unless `None`: the store has it),
/// reads it to its end; returns its digest (if hashed) and what the writer
/// said about the image. At most what `cap` allows is read.
fn convert(
    tar: impl Read,
    hash: bool,
    cap: Cap,
    out: Option<&mut std::fs::File>,
    options: &msb_erofs::Options,
) -> Result<(Option<Digest>, Option<msb_erofs::Summary>), Convert> {
    let mut capped = Capped { inner: tar, cap };
    let (digest, result) = if hash {
        let mut hashing = HashingReader::new(&mut capped);
        let result = write_and_drain(&mut hashing, out, options);
        (Some(hashing.into_parts().0), result)
    } else {
        (None, write_and_drain(&mut capped, out, options))
    };
    if capped.cap.exceeded {
        return Err(Convert::TooLarge);
    }
    result.map(|summary| (digest, summary))
}

/// Writes the EROFS image of `tar` to `out`, if any, and reads `tar` to its end.
fn write_and_drain(
    tar: &mut impl Read,
    out: Option<&mut std::fs::File>,
    options: &msb_erofs::Options,
) -> Result<Option<msb_erofs::Summary>, Convert> {
    let summary = match out {
        Some(out) => Some(msb_erofs::write_layer(&mut *tar, out, options).map_err(Convert::Layer)?),
        None => None,
    };
    io::copy(tar, &mut io::sink()).map_err(Convert::Read)?;
    Ok(summary)
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
        let (digest, _) = convert(&tar[..], true, cap(tar.len() as u64), None, &options).ok().unwrap();
        assert_eq!(digest, Some(Digest::of(&tar)));
        let mut out = tempfile::tempfile().unwrap();
        let result = convert(&tar[..], true, cap(1024), Some(&mut out), &options);
        assert!(matches!(result, Err(Convert::TooLarge)));
        assert!(matches!(convert(&tar[..], false, cap(1024), None, &options), Err(Convert::TooLarge)));
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
        for layer in [&diff_id, &other] {
            let mut image = std::fs::File::create(store.layer_path(layer)).unwrap();
            msb_erofs::write_layer(&tar[..], &mut image, &msb_erofs::Options::default()).unwrap();
        }
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
