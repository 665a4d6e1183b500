//! Extended attributes stored in the inode body (`erofs_xattr_ibody_header`
//! followed by `erofs_xattr_entry`s, each 4-byte aligned).

use crate::layout::XATTR_HEADER_SIZE;

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

/// The xattrs of one inode, kept sorted (so output is deterministic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xattrs {
    entries: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

impl Xattrs {
    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<(), XattrError> {
        let (index, suffix) = split(name).ok_or_else(|| XattrError::Namespace(name.to_string()))?;
        if suffix.len() > 255 || value.len() > MAX_VALUE {
            return Err(XattrError::TooLong(name.to_string()));
        }
        let key = (index, suffix.as_bytes().to_vec());
        self.entries.retain(|(i, n, _)| (*i, n) != (key.0, &key.1));
        self.entries.push((key.0, key.1, value.to_vec()));
        self.entries.sort();
        if self.body_size() > MAX_TOTAL as u64 {
            return Err(XattrError::TooLong(name.to_string()));
        }
        Ok(())
    }

    /// Takes every xattr of `other`, replacing those of the same name.
    pub fn merge(&mut self, other: Xattrs) -> Result<(), XattrError> {
        let mut merged = self.clone();
        for (index, name, value) in other.entries {
            merged.entries.retain(|(i, n, _)| (*i, n) != (index, &name));
            merged.entries.push((index, name, value));
        }
        merged.entries.sort();
        if merged.body_size() > MAX_TOTAL as u64 {
            return Err(XattrError::TooLong("(all xattrs of the directory)".to_string()));
        }
        *self = merged;
        Ok(())
    }

    /// Bytes after the inode: header and entries (0 without xattrs).
    pub fn body_size(&self) -> u64 {
        if self.entries.is_empty() {
            return 0;
        }
        XATTR_HEADER_SIZE + self.entries.iter().map(|(_, n, v)| align4(4 + n.len() + v.len()) as u64).sum::<u64>()
    }

    /// `i_xattr_icount` for [`Self::body_size`].
    pub fn icount(&self) -> u16 {
        match self.body_size() {
            0 => 0,
            size => ((size - XATTR_HEADER_SIZE) / 4 + 1) as u16,
        }
    }

    /// The on-disk body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.body_size() as usize);
        if self.entries.is_empty() {
            return b;
        }
        b.extend_from_slice(&[0u8; XATTR_HEADER_SIZE as usize]);
        for (index, name, value) in &self.entries {
            b.push(name.len() as u8);
            b.push(*index);
            b.extend_from_slice(&(value.len() as u16).to_le_bytes());
            b.extend_from_slice(name);
            b.extend_from_slice(value);
            b.resize(b.len().next_multiple_of(4), 0);
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
}
