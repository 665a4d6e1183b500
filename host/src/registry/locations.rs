//! The blob-location cache: which repositories of which registries a blob
//! was pulled from or pushed to, so that a push to another repository of
//! the same registry can mount it (`mount=…&from=…`: the registry needs
//! `from`) instead of uploading it, as docker's and skopeo's blob-info
//! caches do.
//!
//! One small file per blob, `blob-locations/sha256/<hex>`: one
//! `registry/repository` per line, most recent first, at most
//! [`MAX_LOCATIONS`]. A cache: entries may be stale (the registry is asked),
//! a write lost to a concurrent one costs an upload, nothing else.

use super::Repository;
use crate::digest::Digest;
use crate::store::Store;
use std::io::Read;
use std::path::PathBuf;

/// The most locations kept per blob.
pub const MAX_LOCATIONS: usize = 8;
/// The most a location file may hold.
const MAX_FILE: u64 = 64 << 10;

/// The cache of one store.
pub struct Locations<'s> {
    store: &'s Store,
}

impl<'s> Locations<'s> {
    /// The cache kept in `store`.
    pub fn new(store: &'s Store) -> Locations<'s> {
        Locations { store }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.store.root().join("blob-locations").join("sha256").join(digest.hex())
    }

    /// Where `digest` was seen, most recent first.
    pub fn get(&self, digest: &Digest) -> Vec<Repository> {
        let mut text = String::new();
        let read = std::fs::File::open(self.path(digest)).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        text.lines()
            .filter_map(|line| line.split_once('/'))
            .map(|(registry, path)| Repository { registry: registry.into(), path: path.into() })
            .take(MAX_LOCATIONS)
            .collect()
    }

    /// The repositories of `registry` that have had `digest`.
    pub fn in_registry(&self, digest: &Digest, registry: &str) -> Vec<String> {
        self.get(digest).into_iter().filter(|r| r.registry == registry).map(|r| r.path).collect()
    }

    /// Notes that `repository` has `digest`. Failing to write a cache entry
    /// is not an error of the push or pull that learned it.
    pub fn add(&self, digest: &Digest, repository: &Repository) {
        let mut all = self.get(digest);
        if all.first() == Some(repository) {
            return;
        }
        all.retain(|r| r != repository);
        all.insert(0, repository.clone());
        all.truncate(MAX_LOCATIONS);
        let text: String = all.iter().map(|r| format!("{r}\n")).collect();
        let path = self.path(digest);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::store::write_atomic(&self.store.tmp_dir(), &path, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Locations::new(&store);
        let digest = Digest::of(b"blob");
        assert!(cache.get(&digest).is_empty());
        let repo = |r: &str, p: &str| Repository { registry: r.into(), path: p.into() };
        for i in 0..10 {
            cache.add(&digest, &repo("r:5000", &format!("p{i}")));
        }
        cache.add(&digest, &repo("other.io", "a/b"));
        let got = cache.get(&digest);
        assert_eq!(got.len(), MAX_LOCATIONS);
        assert_eq!(got[0], repo("other.io", "a/b"));
        assert_eq!(cache.in_registry(&digest, "r:5000")[0], "p9");
    }
}
