//! The entry table of an archive, and link resolution inside it.

use super::InputError;
use std::collections::HashMap;

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// Anything else (device, FIFO).
    Other,
}

/// One archive entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Normalized path: `/`-separated, no leading `./` or `/`, no trailing `/`.
    pub path: String,
    /// Its kind.
    pub kind: EntryKind,
    /// Size of its content (0 for anything but files).
    pub size: u64,
    /// Link target, for links.
    pub link: Option<String>,
    /// Where its content starts (the tar data offset; unused for directories).
    pub(crate) offset: u64,
}

/// Entries plus a path lookup; a later entry for a path shadows an earlier one.
#[derive(Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

/// How many links a lookup follows before giving up.
const MAX_LINK_HOPS: usize = 40;

impl Index {
    pub(crate) fn push(&mut self, entry: Entry) {
        self.by_path.insert(entry.path.clone(), self.entries.len());
        self.entries.push(entry);
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last entry at exactly `path` (links not followed).
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.by_path.get(path).map(|&i| &self.entries[i])
    }

    /// The regular file `path` names, following symlinks (relative to the
    /// link's directory) and hardlinks, never leaving the archive.
    pub(crate) fn resolve(&self, path: &str) -> Result<&Entry, InputError> {
        let mut current = normalize(path).ok_or_else(|| InputError::BadEntry {
            entry: path.to_string(),
            reason: "points outside the archive".to_string(),
        })?;
        for _ in 0..MAX_LINK_HOPS {
            let entry = self
                .by_path
                .get(&current)
                .map(|&i| &self.entries[i])
                .ok_or_else(|| InputError::NoEntry(current.clone()))?;
            let bad = |reason: &str| InputError::BadEntry { entry: entry.path.clone(), reason: reason.to_string() };
            current = match (entry.kind, &entry.link) {
                (EntryKind::File, _) => return Ok(entry),
                (EntryKind::Symlink, Some(target)) => {
                    let base = if target.starts_with('/') { "" } else { parent(&entry.path) };
                    normalize(&format!("{base}/{target}")).ok_or_else(|| bad("symlink points outside the archive"))?
                }
                (EntryKind::Hardlink, Some(target)) => {
                    normalize(target).ok_or_else(|| bad("hardlink points outside the archive"))?
                }
                _ => return Err(bad("is not a regular file")),
            };
        }
        Err(InputError::BadEntry { entry: path.to_string(), reason: "too many levels of links".to_string() })
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `path` with `.`/`..` resolved lexically and leading/trailing `/` removed;
/// `None` if `..` climbs above the root.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, link: Option<&str>) -> Entry {
        Entry { path: path.into(), kind, size: 0, link: link.map(Into::into), offset: 0 }
    }

    #[test]
    fn follows_links_inside_only() {
        let mut index = Index::default();
        index.push(entry("a/layer.tar", EntryKind::File, None));
        index.push(entry("b/layer.tar", EntryKind::Symlink, Some("../a/layer.tar")));
        index.push(entry("c", EntryKind::Hardlink, Some("./b/layer.tar")));
        index.push(entry("evil", EntryKind::Symlink, Some("../../etc/passwd")));
        index.push(entry("loop", EntryKind::Symlink, Some("loop")));
        assert_eq!(index.resolve("c").unwrap().path, "a/layer.tar");
        assert_eq!(index.resolve("./b/layer.tar").unwrap().path, "a/layer.tar");
        assert!(matches!(index.resolve("evil"), Err(InputError::BadEntry { .. })));
        assert!(matches!(index.resolve("loop"), Err(InputError::BadEntry { .. })));
        assert!(matches!(index.resolve("nope"), Err(InputError::NoEntry(_))));
        assert_eq!(normalize("./x/../y/"), Some("y".into()));
        assert_eq!(normalize("../y"), None);
    }
}
