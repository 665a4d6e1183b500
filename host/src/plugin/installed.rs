//! The store's `plugins/` directory: installed decoders, stored by content,
//! and which decoders are disabled (see `docs/STORE.md`).
//!
//! ```text
//! plugins/plugins.json        {"installed": {"<name>": "sha256:<hex>"}, "disabled": ["<name>"]}
//! plugins/sha256/<hex>.wasm   an installed component, named by its SHA-256
//! plugins/<name>.wasm         an older msb's layout: still read; moved into
//!                             sha256/ by the next change ([`change`])
//! ```
//!
//! Readers ([`Installed::read`]) take no lock. Every change goes through
//! [`change`], under the store lock: components are written first, then
//! `plugins.json` (atomically, by rename), then files nothing names any more
//! are removed. A crash leaves at worst an unnamed component, which the next
//! change removes.

use super::runtime::is_valid_name;
use crate::digest::Digest;
use crate::store::{Store, StoreError, io_err, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The state file, in the plugins directory.
pub const STATE_FILE: &str = "plugins.json";

/// The most `plugins.json` may hold: far above any real list.
const MAX_STATE: u64 = 1 << 20;

/// What `plugins.json` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Each installed decoder's name and the digest of its component.
    #[serde(default)]
    installed: BTreeMap<String, Digest>,
    /// Decoders (built-in or installed) that take no part in detection.
    #[serde(default)]
    disabled: BTreeSet<String>,
}

/// The installed decoders and the disabled names, as read from a plugins
/// directory.
#[derive(Debug, Clone)]
pub struct Installed {
    dir: PathBuf,
    state: State,
}

impl Installed {
    /// Reads the plugins directory `dir`; a missing directory or state
    /// file means nothing is installed or disabled.
    pub fn read(dir: &Path) -> Result<Installed, StoreError> {
        let path = dir.join(STATE_FILE);
        let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Installed { dir: dir.to_path_buf(), state: State::default() });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE + 1).read_to_end(&mut bytes).map_err(io_err(&path))?;
        if bytes.len() as u64 > MAX_STATE {
            return Err(corrupt(format!("larger than {MAX_STATE} bytes")));
        }
        let state: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a plugin list: {e}")))?;
        if let Some(bad) = state.installed.keys().chain(&state.disabled).find(|n| !is_valid_name(n)) {
            return Err(corrupt(format!("{:?} is not a plugin name", bad.chars().take(80).collect::<String>())));
        }
        Ok(Installed { dir: dir.to_path_buf(), state })
    }

    /// Each installed decoder's name and component digest, by name.
    pub fn names(&self) -> impl Iterator<Item = (&str, &Digest)> {
        self.state.installed.iter().map(|(name, digest)| (name.as_str(), digest))
    }

    /// The digest of the component installed as `name`.
    pub fn digest(&self, name: &str) -> Option<&Digest> {
        self.state.installed.get(name)
    }

    /// Whether `name` is disabled.
    pub fn is_disabled(&self, name: &str) -> bool {
        self.state.disabled.contains(name)
    }

    /// Where the component `digest` is stored.
    pub fn component_path(&self, digest: &Digest) -> PathBuf {
        components_dir(&self.dir).join(format!("{}.wasm", digest.hex()))
    }

    /// The `<name>.wasm` files an older msb installed, by file name, with
    /// the name each stands for (its file stem), except names `plugins.json`
    /// records (the leftovers of an upgrade cut short).
    pub fn legacy_files(&self) -> Vec<(String, PathBuf)> {
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .map(|p| (p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), p))
            .filter(|(stem, _)| !self.state.installed.contains_key(stem))
            .collect();
        files.sort();
        files
    }
}

/// `plugins/sha256/`.
fn components_dir(dir: &Path) -> PathBuf {
    dir.join("sha256")
}

/// A change to the plugins directory, made by [`change`].
pub struct Change<'a> {
    store: &'a Store,
    installed: Installed,
}

impl Change<'_> {
    /// What the directory holds, with the changes made so far.
    pub fn installed(&self) -> &Installed {
        &self.installed
    }

    /// Stores the component `bytes` (once: by its digest) and records it as
    /// `name`; returns the digest it replaces, if any (an upgrade).
    pub fn install(&mut self, name: &str, bytes: &[u8]) -> Result<Option<Digest>, StoreError> {
        let digest = Digest::of(bytes);
        self.put_component(&digest, bytes)?;
        let old = self.installed.state.installed.insert(name.to_string(), digest.clone());
        Ok(old.filter(|old| *old != digest))
    }

    /// Forgets the installed decoder `name` (and that it was disabled);
    /// whether it was installed. Its component goes when nothing names it.
    pub fn remove(&mut self, name: &str) -> bool {
        let removed = self.installed.state.installed.remove(name).is_some();
        if removed {
            self.installed.state.disabled.remove(name);
        }
        removed
    }

    /// Enables or disables `name`; whether that changed anything.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> bool {
        match enabled {
            true => self.installed.state.disabled.remove(name),
            false => self.installed.state.disabled.insert(name.to_string()),
        }
    }

    /// Writes `plugins/sha256/<digest hex>.wasm` unless it is there.
    fn put_component(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.installed.component_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let dir = components_dir(&self.installed.dir);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        write_atomic(&self.store.tmp_dir(), &path, bytes)
    }
}

/// Changes the store's plugins directory with `f`, under the store lock:
/// first moves an older msb's `<name>.wasm` files into the content-addressed
/// layout, then applies `f`, writes `plugins.json`, and removes components
/// that no name records. When `f` fails, `plugins.json` stays as it was
/// (a component `f` stored stays unnamed until the next change removes it).
pub fn change<T, E: From<StoreError>>(store: &Store, f: impl FnOnce(&mut Change) -> Result<T, E>) -> Result<T, E> {
    let _lock = store.lock()?;
    let dir = store.plugins_dir();
    let mut change = Change { store, installed: Installed::read(&dir)? };
    let before = change.installed.state.clone();
    // The older layout: each valid `<name>.wasm` becomes a recorded
    // component (a file whose plugin calls itself otherwise is then skipped
    // with a warning when loaded, as before, and can be removed by name).
    let legacy: Vec<(String, PathBuf)> =
        change.installed.legacy_files().into_iter().filter(|(name, _)| is_valid_name(name)).collect();
    for (name, path) in &legacy {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        change.install(name, &bytes)?;
    }
    let value = f(&mut change)?;
    if change.installed.state != before {
        let state = &change.installed.state;
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: dir.join(STATE_FILE),
            reason: format!("cannot serialize: {e}"),
        })?;
        json.push(b'\n');
        write_atomic(&store.tmp_dir(), &dir.join(STATE_FILE), &json)?;
    }
    for (_, path) in &legacy {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    remove_unnamed(&change.installed)?;
    Ok(value)
}

/// Removes the components in `plugins/sha256/` that no name records.
fn remove_unnamed(installed: &Installed) -> Result<(), StoreError> {
    let dir = components_dir(&installed.dir);
    let named: BTreeSet<PathBuf> = installed.names().map(|(_, d)| installed.component_path(d)).collect();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        let is_component =
            path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".wasm")).is_some_and(Digest::is_hex);
        if is_component && !named.contains(&path) {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut found: Vec<String> = walkdir(dir).into_iter().collect();
        found.sort();
        found
    }

    fn walkdir(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                for inner in walkdir(&path) {
                    found.push(format!("{}/{inner}", entry.file_name().to_string_lossy()));
                }
            } else {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        found
    }

    #[test]
    fn components_are_stored_once_and_removed_when_unnamed() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = store.plugins_dir();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        change(&store, |c| -> Result<_, StoreError> {
            assert_eq!(c.install("one", b"a")?, None);
            assert_eq!(c.install("two", b"a")?, None);
            Ok(())
        })
        .unwrap();
        assert_eq!(files(&dir), ["plugins.json".to_string(), format!("sha256/{}.wasm", a.hex())]);

        // An upgrade of one name keeps the file the other still names.
        let old = change(&store, |c| c.install("one", b"b")).unwrap();
        assert_eq!(old, Some(a.clone()));
        let installed = Installed::read(&dir).unwrap();
        assert_eq!(installed.digest("one"), Some(&b));
        assert_eq!(installed.digest("two"), Some(&a));
        assert!(installed.component_path(&a).is_file() && installed.component_path(&b).is_file());

        assert!(change(&store, |c| Ok::<_, StoreError>(c.remove("two"))).unwrap());
        assert!(!installed.component_path(&a).exists(), "nothing names it");
        assert!(installed.component_path(&b).is_file());
        assert!(!change(&store, |c| Ok::<_, StoreError>(c.remove("two"))).unwrap());
    }

    #[test]
    fn disabled_names_are_kept_and_forgotten_with_the_plugin() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = store.plugins_dir();
        assert!(change(&store, |c| Ok::<_, StoreError>(c.set_enabled("oci-layout", false))).unwrap());
        assert!(!change(&store, |c| Ok::<_, StoreError>(c.set_enabled("oci-layout", false))).unwrap());
        change(&store, |c| c.install("mine", b"m")).unwrap();
        change(&store, |c| Ok::<_, StoreError>(c.set_enabled("mine", false))).unwrap();
        let installed = Installed::read(&dir).unwrap();
        assert!(installed.is_disabled("oci-layout") && installed.is_disabled("mine"));
        change(&store, |c| Ok::<_, StoreError>(c.remove("mine"))).unwrap();
        let installed = Installed::read(&dir).unwrap();
        assert!(installed.is_disabled("oci-layout") && !installed.is_disabled("mine"));
        assert!(change(&store, |c| Ok::<_, StoreError>(c.set_enabled("oci-layout", true))).unwrap());
        assert!(!Installed::read(&dir).unwrap().is_disabled("oci-layout"));
    }

    #[test]
    fn an_older_layout_is_read_and_moved_by_the_next_change() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = store.plugins_dir();
        std::fs::write(dir.join("old.wasm"), b"old").unwrap();
        std::fs::write(dir.join("Not-A-Name.wasm"), b"x").unwrap();
        let installed = Installed::read(&dir).unwrap();
        let legacy: Vec<String> = installed.legacy_files().into_iter().map(|(name, _)| name).collect();
        assert_eq!(legacy, ["Not-A-Name", "old"]);

        change(&store, |_| Ok::<_, StoreError>(())).unwrap();
        let installed = Installed::read(&dir).unwrap();
        assert_eq!(installed.digest("old"), Some(&Digest::of(b"old")));
        assert!(!dir.join("old.wasm").exists());
        // Not a name: left where it is (it is skipped with a warning when loaded).
        assert!(dir.join("Not-A-Name.wasm").is_file());
    }

    #[test]
    fn a_damaged_state_file_is_named() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = store.plugins_dir();
        let bad_name = format!(r#"{{"installed": {{"../x": "{}"}}}}"#, Digest::of(b"x"));
        for bad in [&b"{"[..], bad_name.as_bytes(), br#"{"disabled": ["A"]}"#] {
            std::fs::write(dir.join(STATE_FILE), bad).unwrap();
            let error = Installed::read(&dir).unwrap_err().to_string();
            assert!(error.contains("plugins.json"), "{error}");
        }
        // Nothing is written over it.
        assert!(change(&store, |c| Ok::<_, StoreError>(c.set_enabled("x", false))).is_err());
        assert_eq!(std::fs::read(dir.join(STATE_FILE)).unwrap(), br#"{"disabled": ["A"]}"#);
    }
}
