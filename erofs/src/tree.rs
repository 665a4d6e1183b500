//! The file tree a layer tar describes, built entry by entry with the
//! semantics of applying a layer: later entries replace earlier ones,
//! whiteouts and opaque markers become their overlayfs form, missing parents
//! appear as root-owned 0755 directories.

use crate::layout::DataLayout;
use crate::xattr::Xattrs;
use std::collections::BTreeMap;

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// The root directory.
pub const ROOT: NodeId = 0;

/// `S_IFDIR` etc.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Owner, mode and time of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
}

impl Meta {
    /// What containerd gives a directory the tar does not mention.
    pub const IMPLIED_DIR: Meta = Meta { mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: 0, mtime_nsec: 0 };
}

/// Where a file's (or symlink's) bytes went while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data {
    pub size: u64,
    pub layout: DataLayout,
    /// First data block (full blocks, or every block for plain layout).
    pub blkaddr: u32,
    /// For inline layout: offset of the tail in the tails file.
    pub tail_offset: u64,
}

/// What a node is.
#[derive(Debug, Clone)]
pub enum Kind {
    Dir(BTreeMap<Vec<u8>, NodeId>),
    /// Regular file or symlink content.
    Data(Data),
    /// Character or block device (`rdev` encoded), FIFO, socket.
    Special { rdev: u32 },
}

/// One inode.
#[derive(Debug, Clone)]
pub struct Node {
    pub meta: Meta,
    pub xattrs: Xattrs,
    pub kind: Kind,
}

/// Why an entry cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("path climbs out of the layer with ..")]
    DotDot,
    #[error("a parent of this path is not a directory")]
    NotADirectory,
    #[error("hardlink target {0:?} does not exist (or is a directory)")]
    BadHardlink(String),
}

/// The tree.
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree { nodes: vec![Node { meta: Meta::IMPLIED_DIR, xattrs: Xattrs::default(), kind: Kind::Dir(BTreeMap::new()) }] }
    }

    /// `path` split into components; `..` is refused, `.` and empty parts dropped.
    pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, TreeError> {
        let mut parts = Vec::new();
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(TreeError::DotDot),
                p => parts.push(p),
            }
        }
        Ok(parts)
    }

    fn children(&mut self, dir: NodeId) -> Result<&mut BTreeMap<Vec<u8>, NodeId>, TreeError> {
        match &mut self.nodes[dir].kind {
            Kind::Dir(children) => Ok(children),
            _ => Err(TreeError::NotADirectory),
        }
    }

    /// The directory at `parts`, created (implied) where missing.
    pub fn dir(&mut self, parts: &[&[u8]]) -> Result<NodeId, TreeError> {
        let mut dir = ROOT;
        for part in parts {
            let next = self.children(dir)?.get(*part).copied();
            dir = match next {
                Some(id) if matches!(self.nodes[id].kind, Kind::Dir(_)) => id,
                Some(_) => return Err(TreeError::NotADirectory),
                None => {
                    let id = self.push(Node { meta: Meta::IMPLIED_DIR, xattrs: Xattrs::default(), kind: Kind::Dir(BTreeMap::new()) });
                    self.children(dir)?.insert(part.to_vec(), id);
                    id
                }
            };
        }
        Ok(dir)
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Puts `node` at `parts` (the root if empty). A directory over a
    /// directory keeps the children and takes the new metadata; anything
    /// else replaces what was there.
    pub fn insert(&mut self, parts: &[&[u8]], node: Node) -> Result<NodeId, TreeError> {
        let Some((name, parents)) = parts.split_last() else {
            if matches!(node.kind, Kind::Dir(_)) {
                self.nodes[ROOT].meta = node.meta;
                self.nodes[ROOT].xattrs = node.xattrs;
            }
            return Ok(ROOT);
        };
        let dir = self.dir(parents)?;
        if let Some(&old) = self.children(dir)?.get(*name) {
            if let (Kind::Dir(_), Kind::Dir(_)) = (&self.nodes[old].kind, &node.kind) {
                self.nodes[old].meta = node.meta;
                self.nodes[old].xattrs = node.xattrs;
                return Ok(old);
            }
        }
        let id = self.push(node);
        self.children(dir)?.insert(name.to_vec(), id);
        Ok(id)
    }

    /// Links the existing non-directory at `target` under `parts` too.
    pub fn hardlink(&mut self, parts: &[&[u8]], target: &[u8]) -> Result<(), TreeError> {
        let bad = || TreeError::BadHardlink(String::from_utf8_lossy(target).into_owned());
        let target_parts = Self::components(target)?;
        let (tname, tparents) = target_parts.split_last().ok_or_else(bad)?;
        let mut dir = ROOT;
        for part in tparents {
            dir = *self.children(dir).map_err(|_| bad())?.get(*part).ok_or_else(bad)?;
        }
        let id = *self.children(dir).map_err(|_| bad())?.get(*tname).ok_or_else(bad)?;
        if matches!(self.nodes[id].kind, Kind::Dir(_)) {
            return Err(bad());
        }
        let (name, parents) = parts.split_last().ok_or_else(bad)?;
        let dir = self.dir(parents)?;
        self.children(dir)?.insert(name.to_vec(), id);
        Ok(())
    }
}
