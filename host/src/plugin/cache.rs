//! The compile cache: plugins compiled to native code once (at `msb plugin
//! install`, or the first time a `--plugin PATH` is used) and shared by all
//! of the user's stores. The built-in decoders never need it: their native
//! code is embedded in the binary.
//!
//! Where: [`user_dir`]. A file is `<component>-<engine>.cwasm`: the first
//! 128 bits of the component's SHA-256 and 64 bits of a SHA-256 of wasmtime's
//! compatibility hash (its version and every engine setting), so another msb
//! build, settings or CPU gets its own file. Its bytes are wasmtime's
//! serialized component followed by the SHA-256 of those bytes. Files are
//! written to a temporary name in the directory and renamed, so a reader
//! sees a whole file or none. The directory is created when first written;
//! when it cannot be, there is no cache and nothing is said.
//!
//! Trust: loading a cached file runs its native code unchecked (wasmtime's
//! `deserialize` checks only the format, its version and the engine
//! settings). The directory is the user's own: whoever can write there can
//! already run code as the user (their shell start-up files sit next to
//! it). The trailing SHA-256 catches damage (a torn or flipped file), not
//! an attacker; a file that fails any check is compiled again and replaced.

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The variable naming the compile cache directory.
pub const CACHE_DIR_VAR: &str = "MSB_CACHE_DIR";

/// Largest cache file read: far above any decoder's native code.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The user's compile cache: `$MSB_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/msb/plugins`, else `$HOME/.cache/msb/plugins`; None
/// when none of them is set (empty counts as unset; a relative
/// `XDG_CACHE_HOME` is ignored, as the XDG spec says).
pub fn user_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(CACHE_DIR_VAR) {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("msb").join("plugins"));
    }
    var("HOME").map(|home| home.join(".cache").join("msb").join("plugins"))
}

/// A compile cache directory, for one engine.
pub(crate) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    /// The cache in `dir` for components compiled by `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Cache {
        let mut hasher = HashToSha256(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Cache { dir, engine_key }
    }

    /// The cache file of the component `wasm`.
    pub(crate) fn path(&self, wasm: &[u8]) -> PathBuf {
        let digest = Digest::of(wasm);
        self.dir.join(format!("{}-{}.cwasm", &digest.hex()[..32], self.engine_key))
    }

    /// The compiled component in `path`, if it is there and passes every
    /// check; None otherwise (the caller compiles and [`Cache::put`]s).
    pub(crate) fn get(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let file = std::fs::File::open(path).ok()?;
        if file.metadata().ok()?.len() > MAX_FILE_BYTES {
            return None;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut bytes).ok()?;
        let split = bytes.len().checked_sub(32)?;
        let (native, sum) = bytes.split_at(split);
        if Sha256::digest(native).as_slice() != sum {
            return None;
        }
        // SAFETY: wasmtime checks the format, its own version and the engine
        // settings; the bytes are whole and as written by `put` (the
        // checksum), in the user's own directory (see the module doc).
        unsafe { Component::deserialize(engine, native) }.ok()
    }

    /// Stores `component` in `path`, atomically. The cache is an
    /// optimization: the caller ignores a failure.
    pub(crate) fn put(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let native = component.serialize()?;
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&native)?;
        tmp.write_all(&Sha256::digest(&native))?;
        tmp.persist(path)?;
        Ok(())
    }
}

/// A [`std::hash::Hasher`] feeding SHA-256, so a key stays the same across
/// Rust versions (the standard hasher may change).
struct HashToSha256(Sha256);

impl std::hash::Hasher for HashToSha256 {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 state is read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component, in binary form: no imports, no exports.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn component(engine: &Engine) -> Component {
        Component::new(engine, EMPTY).expect("compile an empty component")
    }

    #[test]
    fn a_cached_component_is_read_back_and_a_damaged_one_is_not() {
        let engine = Engine::new(&crate::plugin::engine_config::engine_config()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("plugins"), &engine);
        let path = cache.path(EMPTY);
        assert!(cache.get(&engine, &path).is_none(), "empty");
        cache.put(&path, &component(&engine)).unwrap();
        assert!(cache.get(&engine, &path).is_some(), "written and read back");

        let good = std::fs::read(&path).unwrap();
        for at in [0, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert!(cache.get(&engine, &path).is_none(), "flipped byte {at} not noticed");
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(cache.get(&engine, &path).is_none(), "torn file");
        std::fs::write(&path, b"").unwrap();
        assert!(cache.get(&engine, &path).is_none(), "empty file");
    }

    #[test]
    fn keys_name_the_component_and_the_engine() {
        let engine = Engine::new(&crate::plugin::engine_config::engine_config()).unwrap();
        let cache = Cache::new(PathBuf::from("/c"), &engine);
        let name = cache.path(b"abc").file_name().unwrap().to_string_lossy().into_owned();
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert!(name.starts_with("ba7816bf8f01cfea414140de5dae2223-"), "{name}");
        assert_eq!(name.len(), 32 + 1 + 16 + ".cwasm".len(), "{name}");
        let other = Engine::new(wasmtime::Config::new().epoch_interruption(false)).unwrap();
        assert_ne!(Cache::new(PathBuf::from("/c"), &other).path(b"abc"), cache.path(b"abc"));
    }
}
