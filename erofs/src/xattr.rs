//! Extended attributes: the inode body (`erofs_xattr_ibody_header`, the ids
//! of the inode's shared xattrs, then its own `erofs_xattr_entry`s, each
//! 4-byte aligned) and the shared xattr area ([`Shared`]).

use crate::layout::XATTR_HEADER_SIZE;
use std::collections::BTreeMap;

/// Largest value an EROFS entry holds (`e_value_size` is 16 bits).
const MAX_VALUE: usize = u16::MAX as usize;
/// Most bytes of xattrs one inode may carry here.
const MAX_TOTAL: usize = 256 << 10;

/// Why an xattr cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum XattrError {
    /// A namespace EROFS has no index for.
    #[error("xattr {0:?}: unsupported namespace (EROFS stores user., trusted., security. and POSIX ACLs)")]
    Namespace(String),
    /// Too long a name or value.
    #[error("xattr {0:?}: name or value too long")]
    TooLong(String),
}

/// `(name index, name suffix)` for a full xattr name.
fn split(name: &str) -> Option<(u8, &str)> {
    match name {
        "system.posix_acl_access" => Some((2, "")),
        "system.posix_acl_default" => Some((3, "")),
        _ => [("user.", 1), ("trusted.", 4), ("security.", 6)]
            .into_iter()
            .find_map(|(prefix, index)| name.strip_prefix(prefix).filter(|s| !s.is_empty()).map(|s| (index, s))),
    }
}

/// One xattr: (name index, name suffix, value).
type Entry = (u8, Vec<u8>, Vec<u8>);

/// Bytes of `entry` on disk (`erofs_xattr_entry`, name, value, aligned).
fn entry_size(entry: &Entry) -> u64 {
    align4(4 + entry.1.len() + entry.2.len()) as u64
}

/// Appends the on-disk form of `entry` to `b`.
fn push_entry(b: &mut Vec<u8>, (index, name, value): &Entry) {
    b.push(name.len() as u8);
    b.push(*index);
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(name);
    b.extend_from_slice(value);
    b.resize(b.len().next_multiple_of(4), 0);
}

/// The xattrs of one inode, kept sorted (so output is deterministic).
/// Most inodes have none: then this is one null pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xattrs {
    /// Never an empty list. Boxed: one pointer in every node of the tree.
    #[allow(clippy::box_collection, reason = "8 bytes per inode instead of 24, most inodes have no xattrs")]
    entries: Option<Box<Vec<Entry>>>,
}

impl Xattrs {
    fn from_list(list: Vec<Entry>) -> Xattrs {
        Xattrs { entries: if list.is_empty() { None } else { Some(Box::new(list)) } }
    }

    /// The entries, sorted.
    fn list(&self) -> &[Entry] {
        self.entries.as_deref().map_or(&[], |list| &list[..])
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<(), XattrError> {
        let (index, suffix) = split(name).ok_or_else(|| XattrError::Namespace(name.to_string()))?;
        if suffix.len() > 255 || value.len() > MAX_VALUE {
            return Err(XattrError::TooLong(name.to_string()));
        }
        let key = (index, suffix.as_bytes().to_vec());
        let list = self.entries.get_or_insert_default();
        list.retain(|(i, n, _)| (*i, n) != (key.0, &key.1));
        list.push((key.0, key.1, value.to_vec()));
        list.sort();
        if self.body_size() > MAX_TOTAL as u64 {
            return Err(XattrError::TooLong(name.to_string()));
        }
        Ok(())
    }

    /// Takes every xattr of `other`, replacing those of the same name.
    pub fn merge(&mut self, other: Xattrs) -> Result<(), XattrError> {
        let mut merged = self.list().to_vec();
        for (index, name, value) in other.entries.map(|list| *list).unwrap_or_default() {
            merged.retain(|(i, n, _)| (*i, n) != (index, &name));
            merged.push((index, name, value));
        }
        merged.sort();
        let merged = Xattrs::from_list(merged);
        if merged.body_size() > MAX_TOTAL as u64 {
            return Err(XattrError::TooLong("(all xattrs of the directory)".to_string()));
        }
        *self = merged;
        Ok(())
    }

    /// Bytes after the inode with every xattr inline: header and entries
    /// (0 without xattrs). The most the body takes whatever is shared, so
    /// decisions made on it while streaming stay valid.
    pub fn body_size(&self) -> u64 {
        Shared::default().body_size(self)
    }

    /// `i_xattr_icount` for [`Self::body_size`].
    #[cfg(test)]
    pub fn icount(&self) -> u16 {
        Shared::default().icount(self)
    }

    /// The on-disk body with every xattr inline.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        Shared::default().body(self)
    }
}

/// Most shared xattrs one inode can name (`h_shared_count` is 8 bits).
const MAX_SHARED_PER_INODE: usize = u8::MAX as usize;

/// The shared xattr area (at the superblock's `xattr_blkaddr`): each
/// (name, value) pair that several inodes carry is stored once, as an
/// `erofs_xattr_entry`, and inodes list it by id, its byte offset in the
/// area divided by 4. Entries are sorted by (index, name, value), so the
/// same layer gives the same area.
#[derive(Debug, Default)]
pub struct Shared {
    ids: BTreeMap<Entry, u32>,
    bytes: Vec<u8>,
}

impl Shared {
    /// Shares every xattr that `inodes` (each inode once) carry often
    /// enough that storing it once and a 4-byte id per inode takes fewer
    /// bytes than keeping it in every inode.
    pub fn new<'a>(inodes: impl Iterator<Item = &'a Xattrs>) -> Shared {
        let mut counts: BTreeMap<&Entry, u64> = BTreeMap::new();
        for xattrs in inodes {
            for entry in xattrs.list() {
                *counts.entry(entry).or_default() += 1;
            }
        }
        let mut shared = Shared::default();
        for (entry, count) in counts {
            let size = entry_size(entry);
            if count < 2 || count * size <= size + 4 * count {
                continue;
            }
            let Ok(id) = u32::try_from(shared.bytes.len() / 4) else { break };
            shared.ids.insert(entry.clone(), id);
            push_entry(&mut shared.bytes, entry);
        }
        shared
    }

    /// The area's bytes (empty when nothing is shared).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many xattrs are shared.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The shared ids of `xattrs` and the entries kept inline.
    fn split<'a>(&self, xattrs: &'a Xattrs) -> (Vec<u32>, Vec<&'a Entry>) {
        let mut ids = Vec::new();
        let mut inline = Vec::new();
        for entry in xattrs.list() {
            match self.ids.get(entry) {
                Some(&id) if ids.len() < MAX_SHARED_PER_INODE => ids.push(id),
                _ => inline.push(entry),
            }
        }
        (ids, inline)
    }

    /// Bytes after the inode: header, shared ids, inline entries (0
    /// without xattrs). Never more than [`Xattrs::body_size`].
    pub fn body_size(&self, xattrs: &Xattrs) -> u64 {
        if xattrs.list().is_empty() {
            return 0;
        }
        let (ids, inline) = self.split(xattrs);
        XATTR_HEADER_SIZE + 4 * ids.len() as u64 + inline.into_iter().map(entry_size).sum::<u64>()
    }

    /// `i_xattr_icount` for [`Self::body_size`].
    pub fn icount(&self, xattrs: &Xattrs) -> u16 {
        match self.body_size(xattrs) {
            0 => 0,
            size => ((size - XATTR_HEADER_SIZE) / 4 + 1) as u16,
        }
    }

    /// The on-disk body of `xattrs`.
    pub fn body(&self, xattrs: &Xattrs) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.body_size(xattrs) as usize);
        if xattrs.list().is_empty() {
            return b;
        }
        let (ids, inline) = self.split(xattrs);
        // h_name_filter (unused without the filter feature), h_shared_count,
        // reserved.
        b.extend_from_slice(&[0u8; XATTR_HEADER_SIZE as usize]);
        b[4] = ids.len() as u8;
        for id in ids {
            b.extend_from_slice(&id.to_le_bytes());
        }
        for entry in inline {
            push_entry(&mut b, entry);
        }
        b
    }
}

fn align4(n: usize) -> usize {
    n.next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_entries_aligned() {
        let mut x = Xattrs::default();
        x.set("user.a", b"xyz").unwrap();
        x.set("security.capability", &[1, 0, 0, 2]).unwrap();
        x.set("system.posix_acl_access", &[2, 0, 0, 0]).unwrap();
        assert!(x.set("system.other", b"").is_err());
        let bytes = x.to_bytes();
        assert_eq!(bytes.len() as u64, x.body_size());
        assert_eq!(x.body_size(), 12 + 8 + 8 + 20);
        assert_eq!(x.icount() as u64, (x.body_size() - 12) / 4 + 1);
        // Sorted by index: user (1), acl (2), security (6).
        assert_eq!(&bytes[12..16], &[1, 1, 3, 0]);
    }

    #[test]
    fn common_xattrs_are_shared_by_id() {
        let cap = [1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut inodes = Vec::new();
        for i in 0..3 {
            let mut x = Xattrs::default();
            x.set("security.capability", &cap).unwrap();
            x.set("trusted.overlay.opaque", b"y").unwrap();
            x.set("user.unique", format!("{i}").as_bytes()).unwrap();
            inodes.push(x);
        }
        // Twice only: 8 bytes inline twice is no more than once plus 2 ids.
        let mut twice = Xattrs::default();
        twice.set("user.z", b"1").unwrap();
        inodes.push(twice.clone());
        inodes.push(twice.clone());
        let shared = Shared::new(inodes.iter());
        assert_eq!(shared.len(), 2, "{shared:?}");
        // Sorted: trusted (4) before security (6).
        let opaque_size = 4 + align4(14 + 1);
        assert_eq!(&shared.bytes()[..4], &[14, 4, 1, 0]);
        assert_eq!(&shared.bytes()[4..11], b"overlay");
        assert_eq!(&shared.bytes()[opaque_size..opaque_size + 4], &[10, 6, 20, 0]);
        assert_eq!(shared.bytes().len(), opaque_size + align4(4 + 10 + 20));

        let body = shared.body(&inodes[1]);
        assert_eq!(body.len() as u64, shared.body_size(&inodes[1]));
        assert!(shared.body_size(&inodes[1]) < inodes[1].body_size());
        assert_eq!(body[4], 2, "h_shared_count");
        // The ids (offset / 4) in the area's order, then the inline entry.
        assert_eq!(&body[12..16], &0u32.to_le_bytes());
        assert_eq!(&body[16..20], &(opaque_size as u32 / 4).to_le_bytes());
        assert_eq!(&body[20..24], &[6, 1, 1, 0]);
        assert_eq!(&body[24..31], b"unique1");
        assert_eq!(shared.icount(&inodes[1]) as usize, (body.len() - 12) / 4 + 1);
        assert_eq!(shared.body(&twice), twice.to_bytes(), "unshared stays inline");
        assert_eq!(Shared::default().body(&inodes[0]), inodes[0].to_bytes());
    }
}
