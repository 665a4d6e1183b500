//! A reader that verifies an EROFS image the way `fsck.erofs` does: the
//! superblock, every inode reachable from the root, their xattrs, directory
//! blocks and data layout. For `msb check` and the fuzz targets.
//!
//! ```no_run
//! let mut image = std::fs::File::open("layer.erofs")?;
//! let summary = msb_erofs::check(&mut image)?;
//! println!("{} inodes", summary.inodes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It reads what this crate's writer makes and what `mkfs.erofs` makes
//! without compression, in blocks of 512 bytes to 64 KiB: compact and
//! extended inodes, flat-plain, flat-inline and chunk-based data (block
//! maps or chunk indexes, holes), shared and inline xattrs, directories
//! over many blocks, and a device table: regular files' data on extra
//! devices (a tar index, `mkfs.erofs --tar=i`), through block addresses
//! mapped past the image's (`mapped_blkaddr`) or chunk indexes naming the
//! device. The devices' content is not read: [`check_with_devices`] is
//! given their sizes and checks every address against them. Anything else
//! (compression, long xattr prefixes, 48-bit layouts, directories or
//! symlinks on a device) is refused as unsupported. Work and memory follow
//! the image's size: every inode is read once, every directory block once,
//! nothing is allocated from a size the image declares before it is
//! checked against the image.

mod dir;
mod image;
mod inode;
mod superblock;

use image::{Fault, Image};
use inode::{Inode, Type};
use std::collections::HashMap;
use std::io::{self, Read, Seek};
pub use superblock::Device;

/// What [`check`] found in a valid image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Inodes reachable from the root (each counted once).
    pub inodes: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Devices, FIFOs and sockets (whiteouts included).
    pub specials: u64,
    /// Bytes of regular file content (apparent sizes, hardlinks once).
    pub bytes_of_data: u64,
    /// Extended attributes, shared ones counted per inode.
    pub xattrs: u64,
    /// Blocks of the image (the superblock's count).
    pub blocks: u64,
}

/// Why an image is not a valid EROFS image (or not one this checker reads).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading the image failed.
    #[error("reading the image: {0}")]
    Io(#[from] io::Error),
    /// The superblock is wrong.
    #[error("superblock: {0}")]
    Superblock(String),
    /// An inode, its xattrs, data or directory entries are wrong.
    #[error("inode {nid} ({path}): {what}")]
    Inode {
        /// The inode's number (its offset in the metadata area / 32).
        nid: u64,
        /// A path that reaches it (`/` for the root).
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A feature or layout this checker does not read (compression, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The extra devices given do not match the image's device table (how
    /// many, or one smaller than the blocks the image refers to).
    #[error("devices: {0}")]
    Devices(String),
}

fn superblock<R: Read + Seek>(img: &mut Image<'_, R>) -> Result<superblock::SuperBlock, CheckError> {
    superblock::read(img).map_err(|f| match f {
        Fault::Io(e) => CheckError::Io(e),
        Fault::Bad(what) => CheckError::Superblock(what),
        Fault::Unsupported(what) => CheckError::Unsupported(what),
    })
}

/// The extra devices an image's data refers to (its device table), in
/// order: none for a full image, the layer tar for a tar index. Reads and
/// checks the superblock only.
pub fn devices<R: Read + Seek>(image: &mut R) -> Result<Vec<Device>, CheckError> {
    let mut img = Image::new(image)?;
    Ok(superblock(&mut img)?.devices)
}

/// Walks superblock, inodes, xattrs, directories and data layout of an EROFS image, checking what
/// fsck.erofs checks; returns what it found or the first problem. An
/// image that refers to extra devices (a tar index) is refused: see
/// [`check_with_devices`].
pub fn check<R: Read + Seek>(image: &mut R) -> Result<CheckSummary, CheckError> {
    check_with_devices(image, &[])
}

/// [`check`] for an image with extra devices of `device_sizes` bytes, one
/// per slot of its device table (for a tar index: the tar's size). Every
/// block address must be inside the image or inside one device's blocks,
/// and each device must hold the blocks the table gives it.
pub fn check_with_devices<R: Read + Seek>(image: &mut R, device_sizes: &[u64]) -> Result<CheckSummary, CheckError> {
    let mut img = Image::new(image)?;
    let sb = superblock(&mut img)?;
    if sb.devices.len() != device_sizes.len() {
        let n = sb.devices.len();
        return Err(CheckError::Devices(format!(
            "the image needs {n} extra device{}, {} given",
            if n == 1 { "" } else { "s" },
            device_sizes.len()
        )));
    }
    for (i, (device, &size)) in sb.devices.iter().zip(device_sizes).enumerate() {
        let needed = device.blocks.saturating_mul(device.block_size);
        if needed > size {
            return Err(CheckError::Devices(format!(
                "device {} (tag {:?}) must hold {} blocks of {} bytes ({needed} bytes), but has {size} bytes",
                i + 1,
                device.tag,
                device.blocks,
                device.block_size
            )));
        }
    }
    Walk { img, sb, seen: HashMap::new(), dirs: Vec::new(), summary: CheckSummary::default() }.run()
}

/// Longest path an error shows (longer ones lose their start).
const MAX_PATH_SHOWN: usize = 1024;

/// What the walk knows of an inode it reached.
struct Seen {
    /// `i_nlink`, and the links found so far (directories: subdirectories).
    nlink: u32,
    links: u32,
    is_dir: bool,
    /// `EROFS_FT_*` of its mode.
    file_type: u8,
    /// Where it was first found: (index in `dirs` of its directory, name).
    at: (usize, Vec<u8>),
}

struct Walk<'a, R> {
    img: Image<'a, R>,
    sb: superblock::SuperBlock,
    seen: HashMap<u64, Seen>,
    /// Every directory reached: (its nid, parent's index, name).
    dirs: Vec<(u64, usize, Vec<u8>)>,
    summary: CheckSummary,
}

impl<R: Read + Seek> Walk<'_, R> {
    /// The path of directory `index`, and of `name` in it if given (its
    /// last [`MAX_PATH_SHOWN`] bytes or so, for a hostile image's depth).
    fn path(&self, index: usize, name: Option<&[u8]>) -> String {
        let mut parts: Vec<&[u8]> = name.into_iter().collect();
        let mut len = parts.first().map_or(0, |p| p.len());
        let mut i = index;
        while i != 0 && len <= MAX_PATH_SHOWN {
            parts.push(&self.dirs[i].2);
            len += self.dirs[i].2.len() + 1;
            i = self.dirs[i].1;
        }
        let mut path = if i != 0 { "…".to_string() } else { String::new() };
        for part in parts.iter().rev() {
            path.push('/');
            path.push_str(&String::from_utf8_lossy(part));
        }
        if path.is_empty() { "/".to_string() } else { path }
    }

    fn fail(&self, nid: u64, at: (usize, Option<&[u8]>), fault: Fault) -> CheckError {
        let path = self.path(at.0, at.1);
        match fault {
            Fault::Io(e) => CheckError::Io(e),
            Fault::Bad(what) => CheckError::Inode { nid, path, what },
            Fault::Unsupported(what) => CheckError::Unsupported(format!("inode {nid} ({path}): {what}")),
        }
    }

    /// Reads and checks the inode `nid` found at `at`, counting it.
    fn visit(&mut self, nid: u64, at: (usize, Option<&[u8]>)) -> Result<Inode, CheckError> {
        let inode = inode::read(&mut self.img, &self.sb, nid).map_err(|f| self.fail(nid, at, f))?;
        self.summary.inodes += 1;
        self.summary.xattrs += inode.xattrs;
        match inode.kind {
            Type::Dir => self.summary.dirs += 1,
            Type::File => {
                self.summary.files += 1;
                self.summary.bytes_of_data += inode.size;
            }
            Type::Symlink => self.summary.symlinks += 1,
            Type::Special => self.summary.specials += 1,
        }
        Ok(inode)
    }

    fn run(mut self) -> Result<CheckSummary, CheckError> {
        let root_nid = self.sb.root_nid;
        let root = self.visit(root_nid, (0, None))?;
        if root.kind != Type::Dir {
            return Err(self.fail(root_nid, (0, None), Fault::Bad("the root is not a directory".into())));
        }
        self.dirs.push((root_nid, 0, Vec::new()));
        let root_seen = Seen { nlink: root.nlink, links: 0, is_dir: true, file_type: 2, at: (0, Vec::new()) };
        self.seen.insert(root_nid, root_seen);
        // Directories to read: (index in `dirs`, inode).
        let mut stack = vec![(0usize, root)];
        while let Some((index, inode)) = stack.pop() {
            let (nid, parent) = (self.dirs[index].0, self.dirs[self.dirs[index].1].0);
            let entries = dir::read(&mut self.img, &self.sb, &inode, nid, parent)
                .map_err(|f| self.fail(nid, (index, None), f))?;
            for entry in entries {
                if entry.name == b"." || entry.name == b".." {
                    continue;
                }
                let at = (index, Some(&entry.name[..]));
                if let Some(seen) = self.seen.get_mut(&entry.nid) {
                    if seen.is_dir {
                        let what = "a directory reached twice (a hardlinked directory or a cycle)";
                        return Err(self.fail(entry.nid, at, Fault::Bad(what.into())));
                    }
                    seen.links += 1;
                    if entry.file_type != seen.file_type {
                        let what = format!(
                            "file type {} in the directory entry, {} in the inode",
                            entry.file_type, seen.file_type
                        );
                        return Err(self.fail(entry.nid, at, Fault::Bad(what)));
                    }
                    continue;
                }
                let child = self.visit(entry.nid, at)?;
                let file_type = crate::layout::file_type(child.mode);
                if file_type != entry.file_type {
                    let what =
                        format!("file type {} in the directory entry, {file_type} in the inode", entry.file_type);
                    return Err(self.fail(entry.nid, at, Fault::Bad(what)));
                }
                let is_dir = child.kind == Type::Dir;
                let links = if is_dir { 0 } else { 1 };
                self.seen.insert(
                    entry.nid,
                    Seen { nlink: child.nlink, links, is_dir, file_type, at: (index, entry.name.clone()) },
                );
                if is_dir {
                    if let Some(me) = self.seen.get_mut(&nid) {
                        me.links += 1;
                    }
                    self.dirs.push((entry.nid, index, entry.name));
                    stack.push((self.dirs.len() - 1, child));
                }
            }
        }
        // Link counts: a directory has 2 + its subdirectories, anything else
        // one per name.
        let mut wrong: Option<(u64, &Seen, u32)> = None;
        for (&nid, seen) in &self.seen {
            let want = if seen.is_dir { seen.links + 2 } else { seen.links };
            if seen.nlink != want && wrong.is_none_or(|(n, _, _)| nid < n) {
                wrong = Some((nid, seen, want));
            }
        }
        if let Some((nid, seen, want)) = wrong {
            let what = format!("link count {}, but {} found", seen.nlink, want);
            let at = if seen.is_dir {
                let index = self.dirs.iter().position(|d| d.0 == nid).unwrap_or(0);
                (index, None)
            } else {
                (seen.at.0, Some(&seen.at.1[..]))
            };
            return Err(self.fail(nid, at, Fault::Bad(what)));
        }
        self.summary.blocks = u64::from(self.sb.blocks);
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_short_image_is_refused() {
        let error = check(&mut io::Cursor::new(vec![0u8; 100])).unwrap_err();
        assert!(error.to_string().starts_with("superblock: "), "{error}");
    }
}
