//! What one tar entry says: its path, type, owner, mode, times, xattrs and
//! link target, read from the header and its PAX records. Nothing here
//! touches the tree or the image.

use crate::Error;
use crate::tree::Meta;
use crate::xattr::{XattrError, Xattrs};
use std::io::Read;

/// Longest symlink target (PATH_MAX - 1).
pub const MAX_SYMLINK: usize = 4095;

/// The kind of an entry, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Regular file; its content is the entry's data.
    File,
    /// Regular file in GNU's PAX sparse format 1.0: the data holds a map and
    /// the segments; the file is `real_size` bytes.
    SparseFile {
        real_size: u64,
    },
    /// Old GNU sparse file (type `S`): the map is in the header and the
    /// extension blocks after it, then the segments; the file is
    /// `real_size` bytes.
    GnuSparse {
        real_size: u64,
    },
    Dir,
    Symlink(Vec<u8>),
    /// Hardlink to an earlier entry's path.
    Hardlink(Vec<u8>),
    /// Character or block device (`is_block`), major, minor.
    Device {
        is_block: bool,
        major: u32,
        minor: u32,
    },
    Fifo,
    /// A PAX global header: nothing to apply.
    Skip,
}

/// One parsed entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path as the tar spells it (long names resolved).
    pub path: Vec<u8>,
    pub what: What,
    /// Mode holds permission bits only (no type).
    pub meta: Meta,
    pub xattrs: Xattrs,
    /// Overlayfs-private xattrs the entry carried, left out of `xattrs`.
    pub dropped_xattrs: Vec<String>,
}

/// Whether `name` is an xattr overlayfs keeps for itself (`trusted.overlay.*`,
/// or `user.overlay.*` under the `userxattr` mount option): opaque,
/// redirect, metacopy, origin, whiteout markers a layer must not forge.
pub fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// The path to report for `entry`: PAX sparse files carry theirs in
/// `GNU.sparse.name` (the header holds a made-up `GNUSparseFile.N/...`).
pub fn path_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<u8> {
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            if ext.key_bytes() == b"GNU.sparse.name" {
                return ext.value_bytes().to_vec();
            }
        }
    }
    entry.path_bytes().into_owned()
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// An [`Error::Entry`] for `path`.
pub fn malformed(path: &[u8], reason: impl ToString) -> Error {
    Error::Entry { path: lossy(path), reason: reason.to_string() }
}

/// An [`Error::Unsupported`] for `path`.
pub fn unsupported(path: &[u8], what: impl ToString) -> Error {
    Error::Unsupported { path: lossy(path), what: what.to_string() }
}

/// An [`Error::InvalidPath`] for `path`.
pub fn invalid_path(path: &[u8], reason: impl ToString) -> Error {
    Error::InvalidPath { path: lossy(path), reason: reason.to_string() }
}

/// The error for an xattr that cannot be stored.
pub fn xattr_error(path: &[u8], e: XattrError) -> Error {
    unsupported(path, e)
}

/// Reads everything but the data of `entry`, whose path is `path` (from
/// [`path_of`]).
pub fn parse<R: Read>(entry: &mut tar::Entry<'_, R>, path: Vec<u8>) -> Result<Entry, Error> {
    let bad = |reason: &str| malformed(&path, reason);
    let header = entry.header();
    let kind = header.entry_type();
    let id = |v: std::io::Result<u64>, what: &str| -> Result<u32, Error> {
        let v = v.map_err(|e| malformed(&path, format!("{what}: {e}")))?;
        u32::try_from(v).map_err(|_| malformed(&path, format!("{what} {v} is above 2^32-1")))
    };
    let mut meta = Meta {
        mode: header.mode().map_err(|e| malformed(&path, format!("mode: {e}")))? & 0o7777,
        uid: id(header.uid(), "uid")?,
        gid: id(header.gid(), "gid")?,
        mtime: header.mtime().map_err(|e| malformed(&path, format!("mtime: {e}")))?,
        mtime_nsec: 0,
    };
    let is_device = matches!(kind, tar::EntryType::Char | tar::EntryType::Block);
    let (mut major, mut minor) = if is_device {
        let major = header.device_major().map_err(|e| malformed(&path, format!("device major: {e}")))?;
        let minor = header.device_minor().map_err(|e| malformed(&path, format!("device minor: {e}")))?;
        (major.unwrap_or(0), minor.unwrap_or(0))
    } else {
        (0, 0)
    };
    let mut xattrs = Xattrs::default();
    let mut dropped_xattrs = Vec::new();
    let mut sparse = Sparse::default();
    if let Some(pax) = entry.pax_extensions().map_err(|e| malformed(&path, format!("PAX header: {e}")))? {
        for ext in pax {
            let ext = ext.map_err(|e| malformed(&path, format!("PAX header: {e}")))?;
            let Ok(key) = ext.key() else { continue };
            let text = || ext.value().map_err(|_| malformed(&path, format!("PAX {key} is not UTF-8")));
            let number = |what: &str| -> Result<u64, Error> {
                text()?.parse::<u64>().map_err(|_| malformed(&path, format!("PAX {what} is not a number")))
            };
            match key {
                "uid" => meta.uid = u32::try_from(number("uid")?).map_err(|_| bad("PAX uid is above 2^32-1"))?,
                "gid" => meta.gid = u32::try_from(number("gid")?).map_err(|_| bad("PAX gid is above 2^32-1"))?,
                "mtime" => {
                    (meta.mtime, meta.mtime_nsec) = parse_mtime(text()?).ok_or_else(|| bad("invalid PAX mtime"))?
                }
                "SCHILY.devmajor" => {
                    major = u32::try_from(number("devmajor")?).map_err(|_| bad("device major too large"))?
                }
                "SCHILY.devminor" => {
                    minor = u32::try_from(number("devminor")?).map_err(|_| bad("device minor too large"))?
                }
                "GNU.sparse.major" => sparse.major = Some(text()?.to_string()),
                "GNU.sparse.minor" => sparse.minor = Some(text()?.to_string()),
                "GNU.sparse.realsize" => sparse.real_size = Some(number("GNU.sparse.realsize")?),
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        if is_overlay_xattr(name) {
                            if !dropped_xattrs.iter().any(|n| n == name) {
                                dropped_xattrs.push(name.to_string());
                            }
                            continue;
                        }
                        xattrs.set(name, ext.value_bytes()).map_err(|e| xattr_error(&path, e))?;
                    } else if key.starts_with("GNU.sparse.") && key != "GNU.sparse.name" {
                        sparse.old_format = true;
                    }
                }
            }
        }
    }
    let link = |what: &str| -> Result<Vec<u8>, Error> {
        let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        if target.is_empty() {
            return Err(malformed(&path, format!("{what} without a target")));
        }
        Ok(target)
    };
    let what = match kind {
        tar::EntryType::XGlobalHeader => What::Skip,
        // Pre-POSIX tars mark directories by a trailing slash only.
        tar::EntryType::Regular if path.ends_with(b"/") => What::Dir,
        // (The tar crate has read its map; `size()` is the real size.)
        tar::EntryType::GNUSparse => What::GnuSparse { real_size: entry.size() },
        tar::EntryType::Regular | tar::EntryType::Continuous => match sparse.format() {
            Ok(None) => What::File,
            Ok(Some(())) => What::SparseFile {
                real_size: sparse.real_size.ok_or_else(|| bad("PAX sparse file without GNU.sparse.realsize"))?,
            },
            Err(what) => return Err(unsupported(&path, what)),
        },
        tar::EntryType::Directory => What::Dir,
        tar::EntryType::Symlink => {
            let target = link("symlink")?;
            if target.contains(&0) {
                return Err(unsupported(&path, "symlink target with a NUL byte"));
            }
            if target.len() > MAX_SYMLINK {
                return Err(unsupported(
                    &path,
                    format!("symlink target of {} bytes (at most {MAX_SYMLINK})", target.len()),
                ));
            }
            What::Symlink(target)
        }
        tar::EntryType::Link => What::Hardlink(link("hardlink")?),
        tar::EntryType::Char | tar::EntryType::Block => {
            if major > 0xfff || minor > 0xf_ffff {
                return Err(unsupported(
                    &path,
                    format!("device {major}:{minor} (Linux allows 12-bit majors, 20-bit minors)"),
                ));
            }
            What::Device { is_block: kind == tar::EntryType::Block, major, minor }
        }
        tar::EntryType::Fifo => What::Fifo,
        other => return Err(unsupported(&path, format!("tar entry type {:?}", other.as_byte() as char))),
    };
    Ok(Entry { path, what, meta, xattrs, dropped_xattrs })
}

/// The `GNU.sparse.*` records of an entry.
#[derive(Default)]
struct Sparse {
    major: Option<String>,
    minor: Option<String>,
    real_size: Option<u64>,
    /// Records of formats 0.0 and 0.1 (`GNU.sparse.offset`, `.map`, ...).
    old_format: bool,
}

impl Sparse {
    /// `Some` for format 1.0, `None` for a plain file, an error otherwise.
    fn format(&self) -> Result<Option<()>, String> {
        match (self.major.as_deref(), self.minor.as_deref()) {
            (Some("1"), Some("0")) => Ok(Some(())),
            (None, None) if !self.old_format => Ok(None),
            (None, None) => Err("sparse file in GNU PAX format 0.x (use GNU tar's default 1.0)".to_string()),
            (major, minor) => {
                Err(format!("sparse file in GNU PAX format {}.{}", major.unwrap_or("?"), minor.unwrap_or("?")))
            }
        }
    }
}

/// `seconds[.fraction]` → (seconds, nanoseconds); times before 1970 clamp to 0.
pub fn parse_mtime(value: &str) -> Option<(u64, u32)> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(negative) = secs.strip_prefix('-') {
        return negative.bytes().all(|b| b.is_ascii_digit()).then_some((0, 0));
    }
    let secs = secs.parse::<u64>().ok()?;
    let mut nsec = 0u32;
    for i in 0..9 {
        nsec = nsec * 10 + frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
    }
    Some((secs, nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes() {
        assert_eq!(parse_mtime("1700000000.5"), Some((1700000000, 500_000_000)));
        assert_eq!(parse_mtime("1700000000.123456789123"), Some((1700000000, 123_456_789)));
        assert_eq!(parse_mtime("12"), Some((12, 0)));
        assert_eq!(parse_mtime("-5.5"), Some((0, 0)));
        assert_eq!(parse_mtime("x"), None);
        assert_eq!(parse_mtime("1.x"), None);
        assert_eq!(parse_mtime(""), None);
    }

    #[test]
    fn sparse_formats() {
        let plain = Sparse::default();
        assert_eq!(plain.format(), Ok(None));
        let v1 = Sparse { major: Some("1".into()), minor: Some("0".into()), ..Sparse::default() };
        assert_eq!(v1.format(), Ok(Some(())));
        let v0 = Sparse { old_format: true, ..Sparse::default() };
        assert!(v0.format().is_err());
    }
}
