//! The image store at `$MSB_HOME` (see `docs/STORE.md`, the contract):
//!
//! ```text
//! msb-store.json          format version, settings
//! lock                    flock: held while a change is committed
//! oci/                    an OCI image layout: oci-layout, index.json, blobs/sha256/
//! layers/<diff_id>.erofs  one EROFS image per layer: full, or an index into blob <diff_id>
//! records/sha256/<hex>.json what was verified about a layer blob (its diff_id)
//! plugins/                installed decoders
//! tmp/                    one dir per live process (flock-tied): staging, spools
//! ```

mod check;
mod gc;
mod index;
mod record;
mod stage;
mod tmp;
mod view;

pub use crate::oci::Platform;
pub use check::{CheckReport, Problem};
pub use gc::{Closure, GcReport};
pub use index::IndexEntry;
pub use record::LayerRecord;
pub use stage::Staging;
pub use tmp::{critical, exit_on_signal, release_process_tmp};
pub use view::{ImageView, LayerView};

use crate::digest::Digest;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The store format this build writes and reads.
pub const FORMAT_VERSION: u32 = 3;

/// Older formats this build upgrades in place: version 1 lacks `records/`,
/// so its layers are verified again the first time a load reuses them;
/// versions 1 and 2 have full EROFS images only, which version 3 reads as
/// they are.
const UPGRADES_FROM: &[u64] = &[1, 2];

/// How the EROFS image of an uncompressed layer is stored (the store
/// setting `layer_format`; compressed layers always get full images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerFormat {
    /// Metadata only, reading file data from the layer blob itself, which
    /// is then stored once (`mount -o device=BLOB`).
    #[default]
    TarIndex,
    /// File data copied into the image: one self-contained file.
    Full,
}

impl LayerFormat {
    /// Its name in `msb-store.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LayerFormat::TarIndex => "tar-index",
            LayerFormat::Full => "full",
        }
    }

    /// The format called `name`.
    pub fn from_name(name: &str) -> Option<LayerFormat> {
        [LayerFormat::TarIndex, LayerFormat::Full].into_iter().find(|f| f.name() == name)
    }

    fn erofs(self) -> msb_erofs::Format {
        match self {
            LayerFormat::TarIndex => msb_erofs::Format::TarIndex,
            LayerFormat::Full => msb_erofs::Format::Full,
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system trouble, with the path concerned.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A store file is not what this build understands.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No image matches.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The change would remove more than asked.
    #[error("{0}")]
    InUse(String),
    /// More than one image matches an ID prefix.
    #[error("{0} matches more than one image; give more digits")]
    Ambiguous(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_path_buf(), error }
}

/// An open store.
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    layer_format: LayerFormat,
}

impl Store {
    /// Opens the store at `root`, creating it if needed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let mut store = Store { root: root.to_path_buf(), tmp: PathBuf::new(), layer_format: LayerFormat::default() };
        for dir in [store.blobs_dir(), store.layers_dir(), store.records_dir(), store.tmp_root(), store.plugins_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        store.tmp = tmp::process_dir(&store.tmp_root())?;
        tmp::remove_dead(&store.tmp_root())?;
        store.check_version()?;
        let layout = store.oci_dir().join("oci-layout");
        if !layout.exists() {
            write_atomic(&store.tmp_dir(), &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.index_path().exists() {
            index::write(&store, &[])?;
        }
        Ok(store)
    }

    /// Reads `msb-store.json`: the format version (upgrading an older one)
    /// and the settings.
    fn check_version(&mut self) -> Result<(), StoreError> {
        let path = self.root.join("msb-store.json");
        let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
        match fs::read(&path) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if let Some(name) = v.get("layer_format") {
                    self.layer_format = name
                        .as_str()
                        .and_then(LayerFormat::from_name)
                        .ok_or_else(|| corrupt(format!("unknown layer_format {name}")))?;
                }
                let version = v.get("version").and_then(|v| v.as_u64());
                if version.is_some_and(|v| UPGRADES_FROM.contains(&v)) {
                    return self.write_settings();
                }
                if version != Some(FORMAT_VERSION as u64) {
                    let found = v.get("version").map_or_else(|| "missing".to_string(), |v| v.to_string());
                    return Err(corrupt(format!(
                        "store format version {found}; this msb reads version {FORMAT_VERSION} \
                         (and upgrades versions {UPGRADES_FROM:?})"
                    )));
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.write_settings(),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn write_settings(&self) -> Result<(), StoreError> {
        let path = self.root.join("msb-store.json");
        let json = serde_json::json!({ "version": FORMAT_VERSION, "layer_format": self.layer_format.name() });
        write_atomic(&self.tmp_dir(), &path, format!("{json}\n").as_bytes())
    }

    /// How the EROFS images of uncompressed layers loaded from now on are
    /// stored (those already stored stay as they are).
    pub fn layer_format(&self) -> msb_erofs::Format {
        self.layer_format.erofs()
    }

    /// The `layer_format` setting.
    pub fn layer_format_setting(&self) -> LayerFormat {
        self.layer_format
    }

    /// Changes the `layer_format` setting.
    pub fn set_layer_format(&mut self, format: LayerFormat) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.layer_format = format;
        self.write_settings()
    }

    /// `$MSB_HOME`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout.
    pub fn oci_dir(&self) -> PathBuf {
        self.root.join("oci")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.oci_dir().join("blobs").join("sha256")
    }

    fn index_path(&self) -> PathBuf {
        self.oci_dir().join("index.json")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn records_dir(&self) -> PathBuf {
        self.root.join("records").join("sha256")
    }

    /// This process's scratch directory in `tmp/`, removed when the process
    /// ends (see `tmp.rs`); same file system as everything else, so renames
    /// out of it are atomic.
    pub fn tmp_dir(&self) -> PathBuf {
        self.tmp.clone()
    }

    /// `tmp/`: every process's scratch directory.
    fn tmp_root(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Installed plugins.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Where the EROFS image of the layer with `diff_id` lives.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(format!("{}.erofs", diff_id.hex()))
    }

    /// The files the EROFS image of layer `diff_id` reads data from besides
    /// itself, in the order `mount -o device=` takes them: none for a full
    /// image, the uncompressed blob for an index image (the blob named by
    /// its device tag, which is the layer's diff_id).
    pub fn layer_devices(&self, diff_id: &Digest) -> Result<Vec<PathBuf>, StoreError> {
        let path = self.layer_path(diff_id);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        let devices = msb_erofs::devices(&mut file)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        devices
            .iter()
            .map(|device| match device.tag == diff_id.hex() {
                true => Ok(self.blob_path(diff_id)),
                false => Err(StoreError::Corrupt {
                    path: path.clone(),
                    reason: format!("reads from device {:?}, not the layer's own blob {diff_id}", device.tag),
                }),
            })
            .collect()
    }

    /// The blob `digest`, refusing more than `max` bytes, verified.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut bytes = Vec::new();
        file.take(max + 1).read_to_end(&mut bytes).map_err(io_err(&path))?;
        if bytes.len() as u64 > max {
            return Err(StoreError::Corrupt { path, reason: format!("larger than {max} bytes") });
        }
        if Digest::of(&bytes) != *digest {
            return Err(StoreError::Corrupt { path, reason: "content does not match its digest".into() });
        }
        Ok(bytes)
    }

    /// Every entry of `oci/index.json`.
    pub fn entries(&self) -> Result<Vec<IndexEntry>, StoreError> {
        index::read(self)
    }

    /// The image `name` means: a ref (short or full), `sha256:<config
    /// digest>`, or a unique prefix of a config digest's hex (like docker
    /// image IDs), on any platform of an index. See
    /// [`Store::resolve_platform`] to pick a platform.
    pub fn resolve(&self, name: &str) -> Result<ImageView, StoreError> {
        self.resolve_platform(name, None)
    }

    /// Takes the store lock; released when the guard drops.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.root.join("lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// A staging area for a change that [`Staging::commit`] makes visible.
    pub fn stage(&self) -> Result<Staging<'_>, StoreError> {
        Staging::new(self)
    }
}

/// The held store lock.
pub struct StoreLock {
    _file: File,
}

/// Writes `bytes` to `path` via a synced temp file in `tmp` and a rename.
pub(crate) fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(io_err(tmp))?;
    file.write_all(bytes).and_then(|_| file.as_file().sync_data()).map_err(io_err(path))?;
    file.persist(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), error: e.error })?;
    Ok(())
}
