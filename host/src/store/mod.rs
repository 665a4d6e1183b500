//! The image store at `$MSB_HOME` (see `docs/STORE.md`, the contract):
//!
//! ```text
//! msb-store.json          format version
//! lock                    flock: held while a change is committed
//! oci/                    an OCI image layout: oci-layout, index.json, blobs/sha256/
//! layers/<diff_id>.erofs  one EROFS image per layer
//! records/sha256/<hex>.json what was verified about a layer blob (its diff_id)
//! plugins/                installed decoders; plugins/cache/ compiled ones
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
pub const FORMAT_VERSION: u32 = 2;

/// Older formats this build upgrades in place: version 1 lacks `records/`,
/// so its layers are verified again the first time a load reuses them.
const UPGRADES_FROM: &[u64] = &[1];

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
}

impl Store {
    /// Opens the store at `root`, creating it if needed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let mut store = Store { root: root.to_path_buf(), tmp: PathBuf::new() };
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

    fn check_version(&self) -> Result<(), StoreError> {
        let path = self.root.join("msb-store.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { path: path.clone(), reason: e.to_string() })?;
                let version = v.get("version").and_then(|v| v.as_u64());
                if version.is_some_and(|v| UPGRADES_FROM.contains(&v)) {
                    return self.write_version();
                }
                if version != Some(FORMAT_VERSION as u64) {
                    return Err(StoreError::Corrupt {
                        path,
                        reason: format!("store format version {version:?}; this msb reads version {FORMAT_VERSION}"),
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.write_version(),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn write_version(&self) -> Result<(), StoreError> {
        let path = self.root.join("msb-store.json");
        write_atomic(&self.tmp_dir(), &path, format!("{{\"version\":{FORMAT_VERSION}}}\n").as_bytes())
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

    /// Compiled plugins.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugins_dir().join("cache")
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Where the EROFS image of the layer with `diff_id` lives.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(format!("{}.erofs", diff_id.hex()))
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
