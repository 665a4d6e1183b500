//! `msb check`: proving the store holds only what was verified, and
//! `--repair`: removing what cannot be trusted and the refs that need it.
//!
//! One pass over the files (every blob hashed, every EROFS image walked,
//! every layer record parsed), then one walk per ref over its descriptor
//! graph: each descriptor's blob exists with the size stated; manifests and
//! indexes are what their bytes say; configs are image configs whose
//! diff_ids each have `layers/<diff_id>.erofs`; each layer blob's media type
//! matches its bytes and its record names the config's diff_id.

use super::index::{self, IndexEntry};
use super::view::MAX_JSON;
use super::{Store, StoreError, io_err};
use crate::digest::{Digest, HashingReader};
use crate::oci::{self, Descriptor, Document};
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most `index.json` may hold.
const MAX_INDEX: u64 = 64 << 20;
/// How deep indexes may nest.
const MAX_DEPTH: usize = 8;

/// One thing wrong in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

/// What [`Store::check`] found and [`Store::repair`] removed.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Every problem, sorted, one per file and fault.
    pub problems: Vec<Problem>,
    /// Refs (and unnamed images) checked.
    pub refs: usize,
    /// Blobs hashed.
    pub blobs: usize,
    /// EROFS images walked.
    pub layers: usize,
    /// Layer records read.
    pub records: usize,
    /// Files removed by a repair.
    pub removed_files: Vec<PathBuf>,
    /// Index entries removed by a repair: `ref <ref>`, `image <digest>`
    /// (unnamed), `index.json entry #n` (did not parse), or every ref.
    pub removed_refs: Vec<String>,
    /// Records a repair wrote after verifying a layer blob that had none
    /// (a store upgraded from format version 1).
    pub recorded: Vec<PathBuf>,
}

/// A scan's verdict, before any repair.
#[derive(Default)]
struct Scan {
    report: CheckReport,
    problems: BTreeSet<Problem>,
    /// Files that cannot be trusted.
    doomed: BTreeSet<PathBuf>,
    /// Index entries that stay, and those that go (as they are named).
    keep: Vec<IndexEntry>,
    drop: Vec<String>,
    /// Whether `index.json` must be rewritten.
    rewrite_index: bool,
    /// Layer blobs without a record: (blob, the diff_id a config pairs it with).
    unrecorded: BTreeSet<(Digest, Digest)>,
}

impl Scan {
    fn problem(&mut self, path: &Path, what: impl Into<String>) {
        self.problems.insert(Problem { path: path.to_path_buf(), what: what.into() });
    }

    fn bad_file(&mut self, path: &Path, what: impl Into<String>) {
        self.problem(path, what);
        self.doomed.insert(path.to_path_buf());
    }
}

/// What the file pass learnt: which blobs and layers are sound.
#[derive(Default)]
struct Files {
    /// Blob → (size, sound).
    blobs: BTreeMap<Digest, (u64, bool)>,
    /// diff_id → sound.
    layers: BTreeMap<Digest, bool>,
    /// Blob → its record, for records that parse.
    records: BTreeMap<Digest, super::LayerRecord>,
}

impl Store {
    /// Checks the whole store. Runs without the lock; problems it finds are
    /// confirmed by a second run under the lock (a concurrent `rmi` or `gc`
    /// is no fault).
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let scan = self.scan()?;
        if scan.problems.is_empty() {
            return Ok(finish(scan));
        }
        let _lock = self.lock()?;
        Ok(finish(self.scan()?))
    }

    /// Checks the store under the lock and removes what cannot be trusted:
    /// refs whose graph has a problem first, then the damaged files. A layer
    /// blob that lacks its record is verified again (its uncompressed
    /// digest) and recorded if it has the diff_id its config demands.
    pub fn repair(&self) -> Result<CheckReport, StoreError> {
        let _lock = self.lock()?;
        let mut scan = self.scan()?;
        let _critical = super::critical();
        if !scan.unrecorded.is_empty() {
            let mut recorded = Vec::new();
            for (blob, diff_id) in &scan.unrecorded {
                if let Some(record) = self.verify_layer_blob(blob, diff_id) {
                    let path = self.record_path(blob);
                    super::write_atomic(&self.tmp_dir(), &path, &record.to_bytes())?;
                    recorded.push(path);
                }
            }
            // What is still wrong once the records are back.
            let found = scan.problems;
            scan = self.scan()?;
            scan.problems.extend(found);
            scan.report.recorded = recorded;
        }
        if scan.rewrite_index {
            index::write(self, &scan.keep)?;
            scan.report.removed_refs = std::mem::take(&mut scan.drop);
        }
        for path in std::mem::take(&mut scan.doomed) {
            match std::fs::remove_file(&path) {
                Ok(()) => scan.report.removed_files.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(finish(scan))
    }

    /// The record of layer blob `blob` if its uncompressed content has
    /// digest `diff_id`.
    fn verify_layer_blob(&self, blob: &Digest, diff_id: &Digest) -> Option<super::LayerRecord> {
        use std::io::BufRead;
        let file = File::open(self.blob_path(blob)).ok()?;
        let size = file.metadata().ok()?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let compression = crate::input::sniff(reader.fill_buf().ok()?);
        let tar = crate::input::decompress(reader, compression).ok()?;
        let (actual, _) = HashingReader::new(tar).finish().ok()?;
        (actual == *diff_id).then(|| super::LayerRecord { diff_id: actual, size })
    }

    fn scan(&self) -> Result<Scan, StoreError> {
        let mut scan = Scan::default();
        let files = self.scan_files(&mut scan)?;
        let entries = self.scan_index(&mut scan)?;
        scan.report.refs = entries.len();
        for entry in entries {
            let name = entry_name(&entry);
            let mut walk = Walk { store: self, files: &files, scan: &mut scan, sound: true };
            walk.descriptor(&entry.descriptor(), &format!("{name} (index.json)"), 0, false);
            if walk.sound {
                scan.keep.push(entry);
            } else {
                scan.drop.push(match &entry.reference {
                    Some(r) => format!("ref {r}"),
                    None => format!("image {}", entry.digest),
                });
                scan.rewrite_index = true;
            }
        }
        Ok(scan)
    }

    /// Hashes every blob, walks every EROFS image, parses every record.
    fn scan_files(&self, scan: &mut Scan) -> Result<Files, StoreError> {
        let mut files = Files::default();
        for (name, path) in list(&self.blobs_dir())? {
            let Some(digest) = digest_named(&name, "") else {
                scan.bad_file(&path, "not a blob name (64 lowercase hex digits)");
                continue;
            };
            scan.report.blobs += 1;
            match hash_file(&path) {
                Ok((actual, size)) if actual == digest => {
                    files.blobs.insert(digest, (size, true));
                }
                Ok((actual, size)) => {
                    scan.bad_file(&path, format!("content has digest {actual}"));
                    files.blobs.insert(digest, (size, false));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    scan.bad_file(&path, format!("cannot be read: {e}"));
                    files.blobs.insert(digest, (0, false));
                }
            }
        }
        for (name, path) in list(&self.layers_dir())? {
            let Some(diff_id) = digest_named(&name, ".erofs") else {
                scan.bad_file(&path, "not a layer name (<64 lowercase hex digits>.erofs)");
                continue;
            };
            scan.report.layers += 1;
            match check_erofs(self, &diff_id, &files.blobs) {
                Ok(()) => {
                    files.layers.insert(diff_id, true);
                }
                Err(reason) => {
                    scan.bad_file(&path, format!("not a sound EROFS image: {reason}"));
                    files.layers.insert(diff_id, false);
                }
            }
        }
        for (name, path) in list(&self.records_dir())? {
            let Some(blob) = digest_named(&name, ".json") else {
                scan.bad_file(&path, "not a record name (<64 lowercase hex digits>.json)");
                continue;
            };
            scan.report.records += 1;
            match self.read_record(&blob) {
                Ok(Some(record)) => {
                    if let Some((size, _)) = files.blobs.get(&blob).filter(|(size, _)| *size != record.size) {
                        scan.bad_file(&path, format!("says the blob has {} bytes; it has {size}", record.size));
                    } else {
                        files.records.insert(blob, record);
                    }
                }
                Ok(None) => {}
                Err(e) => scan.bad_file(&path, reason_of(e)),
            }
        }
        Ok(files)
    }

    /// The entries of `index.json`; one that does not parse is a problem
    /// (and is dropped by a repair), as is an index that does not parse.
    fn scan_index(&self, scan: &mut Scan) -> Result<Vec<IndexEntry>, StoreError> {
        let path = self.index_path();
        let bytes = read_capped(&path, MAX_INDEX).map_err(io_err(&path))?;
        let Some(bytes) = bytes else {
            scan.problem(&path, format!("larger than {MAX_INDEX} bytes; no ref can be trusted"));
            scan.rewrite_index = true;
            scan.drop.push("every ref (index.json is unreadable)".into());
            return Ok(Vec::new());
        };
        let manifests = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut file)) => match file.remove("manifests") {
                Some(serde_json::Value::Array(manifests)) => manifests,
                _ => {
                    scan.problem(&path, "has no manifests list; no ref can be trusted");
                    Vec::new()
                }
            },
            Ok(_) => {
                scan.problem(&path, "is not a JSON object; no ref can be trusted");
                Vec::new()
            }
            Err(e) => {
                scan.problem(&path, format!("is not JSON ({e}); no ref can be trusted"));
                Vec::new()
            }
        };
        if scan.problems.iter().any(|p| p.path == path) {
            scan.rewrite_index = true;
            scan.drop.push("every ref (index.json is unreadable)".into());
        }
        let mut entries = Vec::new();
        for (n, value) in manifests.into_iter().enumerate() {
            match index_entry(value) {
                Ok(entry) => entries.push(entry),
                Err(reason) => {
                    scan.problem(&path, format!("entry #{}: {reason}", n + 1));
                    scan.rewrite_index = true;
                    scan.drop.push(format!("index.json entry #{}", n + 1));
                }
            }
        }
        Ok(entries)
    }
}

/// One ref's walk over its descriptor graph; `sound` turns false at the
/// first problem.
struct Walk<'a> {
    store: &'a Store,
    files: &'a Files,
    scan: &'a mut Scan,
    sound: bool,
}

impl Walk<'_> {
    fn fail(&mut self, path: &Path, what: String) {
        self.sound = false;
        self.scan.problem(path, what);
    }

    /// Whether the blob `d` names is in the store, sound, and of the size
    /// `d` states; `whose` names the referrer in messages.
    fn blob(&mut self, d: &Descriptor, whose: &str) -> bool {
        let path = self.store.blob_path(&d.digest);
        match self.files.blobs.get(&d.digest) {
            None => self.fail(&path, format!("missing; {whose} needs it")),
            Some((_, false)) => self.sound = false,
            Some((size, true)) if *size != d.size => {
                self.fail(&path, format!("has {size} bytes; {whose} says {}", d.size));
            }
            Some(_) => return true,
        }
        false
    }

    fn read(&mut self, d: &Descriptor) -> Option<Vec<u8>> {
        match self.store.read_blob(&d.digest, MAX_JSON) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.fail(&self.store.blob_path(&d.digest), reason_of(e));
                None
            }
        }
    }

    /// A manifest or index descriptor; `attachment`: a manifest an index
    /// lists as an attestation (its blobs are checked, no layers expected).
    fn descriptor(&mut self, d: &Descriptor, whose: &str, depth: usize, attachment: bool) {
        let path = self.store.blob_path(&d.digest);
        if depth > MAX_DEPTH {
            return self.fail(&path, format!("indexes nest deeper than {MAX_DEPTH}"));
        }
        if !self.blob(d, whose) {
            return;
        }
        let Some(bytes) = self.read(d) else { return };
        match Document::parse(&bytes, Some(d.media_type.as_str())) {
            Err(reason) => self.fail(&path, reason),
            Ok(Document::Index(index, _)) => {
                let what = format!("index {}", d.digest);
                for child in &index.manifests {
                    // Platforms that were not loaded are not in the store.
                    if self.files.blobs.contains_key(&child.digest) {
                        self.descriptor(child, &what, depth + 1, is_attachment(child));
                    }
                }
            }
            Ok(Document::Manifest(manifest, _)) => self.manifest(&manifest, &d.digest, attachment),
        }
    }

    fn manifest(&mut self, manifest: &oci::Manifest, digest: &Digest, attachment: bool) {
        let whose = format!("manifest {digest}");
        let config_ok = self.blob(&manifest.config, &whose);
        let mut layers_ok = true;
        for layer in &manifest.layers {
            layers_ok &= self.blob(layer, &whose);
        }
        if attachment || !config_ok {
            return;
        }
        let config_path = self.store.blob_path(&manifest.config.digest);
        if !oci::is_config(&manifest.config.media_type) {
            return self.fail(
                &config_path,
                format!("{whose} gives it the unknown config media type {:?}", manifest.config.media_type),
            );
        }
        let Some(bytes) = self.read(&manifest.config) else { return };
        let config: oci::Config = match serde_json::from_slice(&bytes) {
            Ok(config) => config,
            Err(e) => return self.fail(&config_path, format!("not an image config: {e}")),
        };
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            let (n, m) = (config.rootfs.diff_ids.len(), manifest.layers.len());
            return self.fail(&config_path, format!("lists {n} diff_ids; {whose} has {m} layers"));
        }
        for diff_id in &config.rootfs.diff_ids {
            match self.files.layers.get(diff_id) {
                None => self.fail(
                    &self.store.layer_path(diff_id),
                    format!("missing; config {} needs it", manifest.config.digest),
                ),
                Some(false) => self.sound = false,
                Some(true) => {}
            }
        }
        if !layers_ok {
            return;
        }
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            self.layer_blob(layer, diff_id, &whose);
        }
    }

    /// A layer blob: its media type is a layer's; its record names `diff_id`.
    fn layer_blob(&mut self, layer: &Descriptor, diff_id: &Digest, whose: &str) {
        let path = self.store.blob_path(&layer.digest);
        // Compression is sniffed on load (real tools mislabel it), so only
        // the media type's being a layer's is held against the blob.
        if oci::layer_compression(&layer.media_type).is_none() {
            return self.fail(&path, format!("{whose} gives it the unknown layer media type {:?}", layer.media_type));
        }
        let record_path = self.store.record_path(&layer.digest);
        match self.files.records.get(&layer.digest) {
            Some(record) if record.diff_id == *diff_id => {}
            Some(record) => {
                self.scan.doomed.insert(record_path.clone());
                self.fail(
                    &record_path,
                    format!("says diff_id {}; {whose} pairs the blob with {diff_id}", record.diff_id),
                );
            }
            None if record_path.exists() => self.sound = false,
            None => {
                self.scan.unrecorded.insert((layer.digest.clone(), diff_id.clone()));
                self.fail(&record_path, format!("missing: nothing says the blob's diff_id is {diff_id}"));
            }
        }
    }
}

/// Whether an index lists `d` as an attestation or other non-image.
fn is_attachment(d: &Descriptor) -> bool {
    d.platform.as_ref().is_some_and(|p| p.os == "unknown") || d.annotations.contains_key("vnd.docker.reference.type")
}

fn finish(mut scan: Scan) -> CheckReport {
    scan.report.problems = scan.problems.into_iter().collect();
    scan.report
}

/// How problems and removals name an index entry.
fn entry_name(entry: &IndexEntry) -> String {
    match &entry.reference {
        Some(r) => r.to_string(),
        None => entry.digest.to_string(),
    }
}

/// An `index.json` descriptor as an entry.
fn index_entry(value: serde_json::Value) -> Result<IndexEntry, String> {
    let d: Descriptor = serde_json::from_value(value).map_err(|e| format!("not a descriptor: {e}"))?;
    let reference = match d.annotations.get(oci::ANNOTATION_REF_NAME) {
        Some(name) => Some(name.parse::<Reference>().map_err(|e| format!("ref {name:?}: {e}"))?),
        None => None,
    };
    Ok(IndexEntry { reference, media_type: d.media_type, digest: d.digest, size: d.size, platform: d.platform })
}

/// The digest a store file name `<hex><suffix>` stands for.
fn digest_named(name: &str, suffix: &str) -> Option<Digest> {
    name.strip_suffix(suffix).filter(|hex| Digest::is_hex(hex)).and_then(|hex| format!("sha256:{hex}").parse().ok())
}

/// (file name, path) of every entry in `dir`, sorted.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        files.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    files.sort();
    Ok(files)
}

fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    HashingReader::new(std::io::BufReader::with_capacity(1 << 20, File::open(path)?)).finish()
}

/// The file, or `None` if it holds more than `max` bytes.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// A store error's message without the path (problems name it already).
fn reason_of(error: StoreError) -> String {
    match error {
        StoreError::Io { error, .. } => error.to_string(),
        StoreError::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Walks the EROFS image of layer `diff_id` (superblock, inodes, xattrs,
/// directories, data layout: what `fsck.erofs` checks), with the blob an
/// index image reads from, which must be among the sound `blobs`.
fn check_erofs(store: &Store, diff_id: &Digest, blobs: &BTreeMap<Digest, (u64, bool)>) -> Result<(), String> {
    let mut sizes = Vec::new();
    for _ in store.layer_devices(diff_id).map_err(reason_of)? {
        match blobs.get(diff_id) {
            Some((size, true)) => sizes.push(*size),
            Some((_, false)) => return Err(format!("reads from blob {diff_id}, which is corrupt")),
            None => return Err(format!("reads from blob {diff_id}, which is missing")),
        }
    }
    let path = store.layer_path(diff_id);
    let mut file = std::io::BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    msb_erofs::check_with_devices(&mut file, &sizes).map(drop).map_err(|e| e.to_string())
}
