//! The file tree a layer tar describes, built entry by entry with the
//! semantics of applying a layer: later entries replace earlier ones,
//! whiteouts and opaque markers become their overlayfs form, missing parents
//! appear as root-owned 0755 directories.
//!
//! A whiteout hides only what lower layers have (OCI image spec,
//! "Whiteouts"): an entry of the same layer at the whited-out path stays,
//! whichever comes first. A directory becomes opaque instead (it hides
//! everything below it, keeps its own children); anything else simply stays
//! (in overlayfs a non-directory already hides the lower entry).

use crate::layout::DataLayout;
use crate::xattr::Xattrs;

use std::borrow::Borrow;
use std::collections::BTreeMap;

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// Longest name EROFS (and Linux) allows.
pub const MAX_NAME: usize = 255;

/// The root directory.
pub const ROOT: NodeId = 0;

/// `S_IFDIR` etc.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;
/// The type bits of a mode.
pub const S_IFMT: u32 = 0o170000;

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
    /// First data block (full blocks, or every block for plain layout);
    /// for chunk-based layout, the chunk format (`i_u`).
    pub blkaddr: u32,
    /// Whether the data is in the tar (a tar index's extra device), from
    /// its block `tail_offset`, in chunk indexes naming the device.
    pub in_tar: bool,
    /// For inline layout: offset of the tail in the tails file; for
    /// chunk-based layout: offset of the block map in the tails file, or
    /// the first block of the data in the tar (`in_tar`).
    pub tail_offset: u64,
}

/// A name in a directory: up to [`Name::INLINE`] bytes kept in place
/// (most names; a heap allocation would take 32 bytes or more), longer
/// ones on the heap. Compares as its bytes.
#[derive(Debug, Clone)]
pub struct Name(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; Name::INLINE] },
    Heap(Box<[u8]>),
}

impl Name {
    /// Longest name kept in place (the whole name is 24 bytes).
    pub const INLINE: usize = 22;

    /// `name` (a path component: at most [`MAX_NAME`] bytes).
    pub fn new(name: &[u8]) -> Name {
        if name.len() <= Self::INLINE {
            let mut bytes = [0u8; Self::INLINE];
            bytes[..name.len()].copy_from_slice(name);
            Name(Repr::Inline { len: name.len() as u8, bytes })
        } else {
            Name(Repr::Heap(name.into()))
        }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// A directory's entries by name (sorted bytewise), node ids kept as
/// `u32` ([`Tree`] holds at most 2^32 nodes).
#[derive(Debug, Clone, Default)]
pub struct Children(BTreeMap<Name, u32>);

impl Children {
    /// The node named `name`.
    pub fn get(&self, name: &[u8]) -> Option<NodeId> {
        self.0.get(name).map(|&id| id as NodeId)
    }

    /// Names `id` `name`, replacing what had that name.
    fn insert(&mut self, name: &[u8], id: NodeId) {
        // `Tree::push` keeps ids below 2^32.
        self.0.insert(Name::new(name), id as u32);
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], NodeId)> + ExactSizeIterator {
        self.0.iter().map(|(name, &id)| (name.as_bytes(), id as NodeId))
    }

    /// The node ids, in the order of the names.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = NodeId> {
        self.0.values().map(|&id| id as NodeId)
    }
}

/// What a node is.
#[derive(Debug, Clone)]
pub enum Kind {
    Dir(Children),
    /// Regular file or symlink content.
    Data(Data),
    /// Character or block device (`rdev` encoded), FIFO, socket.
    Special {
        rdev: u32,
    },
    /// An overlayfs whiteout (character device 0/0): hides the lower
    /// layers' entry of this name.
    Whiteout,
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
    #[error("a path component is longer than 255 bytes")]
    NameTooLong,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the root of the layer can only be a directory")]
    RootNotDir,
    #[error(transparent)]
    Xattr(#[from] crate::xattr::XattrError),
    #[error("a parent of this path is not a directory")]
    NotADirectory,
    #[error("hardlink target {0:?} does not exist (or is a directory)")]
    BadHardlink(String),
    #[error("hardlink target {0:?} is a whiteout")]
    HardlinkToWhiteout(String),
    #[error("more than 2^32 entries in the layer")]
    TooMany,
}

/// The xattr that makes a directory opaque in overlayfs.
pub const OPAQUE: &str = "trusted.overlay.opaque";

/// The tree.
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            nodes: vec![Node {
                meta: Meta::IMPLIED_DIR,
                xattrs: Xattrs::default(),
                kind: Kind::Dir(Children::default()),
            }],
        }
    }

    /// `path` split into components; `..` is refused, `.` and empty parts dropped.
    pub fn components(path: &[u8]) -> Result<Vec<&[u8]>, TreeError> {
        let mut parts = Vec::new();
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(TreeError::DotDot),
                p if p.len() > MAX_NAME => return Err(TreeError::NameTooLong),
                p if p.contains(&0) => return Err(TreeError::Nul),
                p => parts.push(p),
            }
        }
        Ok(parts)
    }

    fn children(&mut self, dir: NodeId) -> Result<&mut Children, TreeError> {
        match &mut self.nodes[dir].kind {
            Kind::Dir(children) => Ok(children),
            _ => Err(TreeError::NotADirectory),
        }
    }

    /// The directory at `parts`, created (implied) where missing.
    pub fn dir(&mut self, parts: &[&[u8]]) -> Result<NodeId, TreeError> {
        let mut dir = ROOT;
        for part in parts {
            let next = self.children(dir)?.get(part);
            dir = match next {
                Some(id) if matches!(self.nodes[id].kind, Kind::Dir(_)) => id,
                Some(id) if !matches!(self.nodes[id].kind, Kind::Whiteout) => return Err(TreeError::NotADirectory),
                // Missing, or whited out in this layer: an implied
                // directory, opaque over a whiteout (it hides what the lower
                // layers have there, as the whiteout did).
                whiteout => {
                    let mut xattrs = Xattrs::default();
                    if whiteout.is_some() {
                        xattrs.set(OPAQUE, b"y")?;
                    }
                    let id =
                        self.push(Node { meta: Meta::IMPLIED_DIR, xattrs, kind: Kind::Dir(Children::default()) })?;
                    self.children(dir)?.insert(part, id);
                    id
                }
            };
        }
        Ok(dir)
    }

    fn push(&mut self, node: Node) -> Result<NodeId, TreeError> {
        if u32::try_from(self.nodes.len()).is_err() {
            return Err(TreeError::TooMany);
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Whether `node` is a directory.
    #[cfg(test)]
    pub fn is_dir(&self, node: NodeId) -> bool {
        matches!(self.nodes[node].kind, Kind::Dir(_))
    }

    /// Whether `node` is a whiteout.
    #[cfg(test)]
    pub fn is_whiteout(&self, node: NodeId) -> bool {
        matches!(self.nodes[node].kind, Kind::Whiteout)
    }

    /// Puts `node` at `parts` (the root if empty). A directory over a
    /// directory keeps the children and the xattrs the new entry does not
    /// set (such as an opaque marker seen earlier) and takes the new
    /// metadata. A whiteout and an entry of this layer at the same path, in
    /// either order, leave the entry, a directory made opaque. Anything else
    /// replaces what was there.
    pub fn insert(&mut self, parts: &[&[u8]], mut node: Node) -> Result<NodeId, TreeError> {
        let Some((name, parents)) = parts.split_last() else {
            if !matches!(node.kind, Kind::Dir(_)) {
                return Err(TreeError::RootNotDir);
            }
            self.update_dir(ROOT, node)?;
            return Ok(ROOT);
        };
        let dir = self.dir(parents)?;
        let new_is_dir = matches!(node.kind, Kind::Dir(_));
        let new_is_whiteout = matches!(node.kind, Kind::Whiteout);
        if let Some(old) = self.children(dir)?.get(name) {
            match (&self.nodes[old].kind, new_is_dir, new_is_whiteout) {
                (Kind::Dir(_), true, _) => {
                    self.update_dir(old, node)?;
                    return Ok(old);
                }
                (Kind::Dir(_), _, true) => {
                    self.nodes[old].xattrs.set(OPAQUE, b"y")?;
                    return Ok(old);
                }
                (Kind::Whiteout, true, _) => node.xattrs.set(OPAQUE, b"y")?,
                (Kind::Whiteout, _, _) => {}
                (_, _, true) => return Ok(old),
                _ => {}
            }
        }
        let id = self.push(node)?;
        self.children(dir)?.insert(name, id);
        Ok(id)
    }

    fn update_dir(&mut self, dir: NodeId, node: Node) -> Result<(), TreeError> {
        let old = &mut self.nodes[dir];
        old.xattrs.merge(node.xattrs)?;
        old.meta = node.meta;
        Ok(())
    }

    /// Links the existing non-directory at `target` under `parts` too.
    pub fn hardlink(&mut self, parts: &[&[u8]], target: &[u8]) -> Result<(), TreeError> {
        let bad = || TreeError::BadHardlink(String::from_utf8_lossy(target).into_owned());
        let target_parts = Self::components(target)?;
        let (tname, tparents) = target_parts.split_last().ok_or_else(bad)?;
        let mut dir = ROOT;
        for part in tparents {
            dir = self.children(dir).map_err(|_| bad())?.get(part).ok_or_else(bad)?;
        }
        let id = self.children(dir).map_err(|_| bad())?.get(tname).ok_or_else(bad)?;
        match self.nodes[id].kind {
            Kind::Dir(_) => return Err(bad()),
            Kind::Whiteout => return Err(TreeError::HardlinkToWhiteout(String::from_utf8_lossy(target).into_owned())),
            _ => {}
        }
        let (name, parents) = parts.split_last().ok_or_else(bad)?;
        let dir = self.dir(parents)?;
        self.children(dir)?.insert(name, id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mode: u32) -> Node {
        Node {
            meta: Meta { mode: S_IFDIR | mode, ..Meta::IMPLIED_DIR },
            xattrs: Xattrs::default(),
            kind: Kind::Dir(Children::default()),
        }
    }

    fn file() -> Node {
        Node {
            meta: Meta { mode: S_IFREG | 0o644, ..Meta::IMPLIED_DIR },
            xattrs: Xattrs::default(),
            kind: Kind::Special { rdev: 0 },
        }
    }

    #[test]
    fn names_compare_as_bytes_and_nodes_stay_small() {
        let inline = Name::new(&[b'y'; Name::INLINE]);
        let heap = Name::new(&[b'y'; Name::INLINE + 1]);
        assert_eq!(inline.as_bytes(), &[b'y'; Name::INLINE][..]);
        assert_eq!(heap.as_bytes(), &[b'y'; Name::INLINE + 1][..]);
        assert!(Name::new(b"") < Name::new(b"a") && Name::new(b"a") < Name::new(b"ab"));
        assert!(inline < heap && Name::new(b"z") > heap);
        assert_eq!(Name::new(b"abc"), Name::new(b"abc"));
        let mut children = Children::default();
        children.insert(b"b", 2);
        children.insert(&[b'a'; 255], 1);
        children.insert(b"b", 3);
        assert_eq!(children.get(b"b"), Some(3));
        assert_eq!(children.iter().map(|(_, id)| id).collect::<Vec<_>>(), [1, 3]);
        // What a layer's tree costs per file (see write.rs).
        assert_eq!(size_of::<Name>(), 24);
        assert!(size_of::<Node>() <= 64, "{}", size_of::<Node>());
    }

    #[test]
    fn components_are_normalized_and_checked() {
        assert_eq!(Tree::components(b"./a//b/./c/").unwrap(), [&b"a"[..], b"b", b"c"]);
        assert_eq!(Tree::components(b"/").unwrap(), Vec::<&[u8]>::new());
        assert!(matches!(Tree::components(b"a/../b"), Err(TreeError::DotDot)));
        assert!(matches!(Tree::components(&[b'x'; 256]), Err(TreeError::NameTooLong)));
        assert!(Tree::components(&[b'x'; 255]).is_ok());
        assert!(matches!(Tree::components(b"a\0b"), Err(TreeError::Nul)));
    }

    #[test]
    fn a_directory_over_a_directory_keeps_children_and_marker() {
        let mut tree = Tree::new();
        let d = tree.dir(&[b"d"]).unwrap();
        tree.nodes[d].xattrs.set("trusted.overlay.opaque", b"y").unwrap();
        tree.insert(&[b"d", b"child"], file()).unwrap();
        let mut new = dir(0o700);
        new.xattrs.set("user.a", b"1").unwrap();
        assert_eq!(tree.insert(&[b"d"], new).unwrap(), d);
        assert_eq!(tree.nodes[d].meta.mode, S_IFDIR | 0o700);
        assert_eq!(tree.nodes[d].xattrs.icount(), {
            let mut x = Xattrs::default();
            x.set("trusted.overlay.opaque", b"y").unwrap();
            x.set("user.a", b"1").unwrap();
            x.icount()
        });
        let Kind::Dir(children) = &tree.nodes[d].kind else { panic!() };
        assert!(children.get(b"child").is_some());
    }

    #[test]
    fn replacement_and_refusals() {
        let mut tree = Tree::new();
        tree.insert(&[b"a", b"b"], file()).unwrap();
        let a = tree.insert(&[b"a"], file()).unwrap();
        assert!(!tree.is_dir(a), "a file replaces a directory and its children");
        assert!(matches!(tree.insert(&[b"a", b"c"], file()), Err(TreeError::NotADirectory)));
        assert!(matches!(tree.insert(&[], file()), Err(TreeError::RootNotDir)));
        assert!(matches!(tree.hardlink(&[b"h"], b"missing"), Err(TreeError::BadHardlink(_))));
        assert!(matches!(tree.hardlink(&[b"h"], b"./"), Err(TreeError::BadHardlink(_))));
        tree.hardlink(&[b"x", b"h"], b"./a").unwrap();
        let x = tree.dir(&[b"x"]).unwrap();
        let Kind::Dir(children) = &tree.nodes[x].kind else { panic!() };
        assert_eq!(children.get(b"h"), Some(a));
        assert_eq!(tree.nodes[x].meta, Meta::IMPLIED_DIR);
    }

    fn whiteout() -> Node {
        Node { meta: Meta { mode: S_IFCHR, ..Meta::IMPLIED_DIR }, xattrs: Xattrs::default(), kind: Kind::Whiteout }
    }

    fn opaque(tree: &Tree, id: NodeId) -> bool {
        let mut marker = tree.nodes[id].xattrs.clone();
        marker.set(OPAQUE, b"y").unwrap();
        tree.nodes[id].xattrs == marker
    }

    #[test]
    fn a_whiteout_hides_only_lower_layers() {
        // Whiteout first: the directory replaces it, opaque.
        let mut tree = Tree::new();
        tree.insert(&[b"d"], whiteout()).unwrap();
        let d = tree.insert(&[b"d"], dir(0o750)).unwrap();
        assert!(tree.is_dir(d) && opaque(&tree, d));
        // Whiteout last: the directory stays, with its children, opaque.
        let mut tree = Tree::new();
        tree.insert(&[b"d", b"new"], file()).unwrap();
        let d = tree.dir(&[b"d"]).unwrap();
        assert_eq!(tree.insert(&[b"d"], whiteout()).unwrap(), d);
        assert!(opaque(&tree, d));
        let Kind::Dir(children) = &tree.nodes[d].kind else { panic!() };
        assert!(children.get(b"new").is_some());
        // A whited-out name used as a parent: an implied opaque directory.
        let mut tree = Tree::new();
        tree.insert(&[b"e"], whiteout()).unwrap();
        tree.insert(&[b"e", b"new"], file()).unwrap();
        let e = tree.dir(&[b"e"]).unwrap();
        assert!(opaque(&tree, e));
        // A file, in either order, stays, without a marker.
        let mut tree = Tree::new();
        let f = tree.insert(&[b"f"], file()).unwrap();
        assert_eq!(tree.insert(&[b"f"], whiteout()).unwrap(), f);
        assert!(!tree.is_whiteout(f));
        tree.insert(&[b"g"], whiteout()).unwrap();
        let g = tree.insert(&[b"g"], file()).unwrap();
        assert!(!tree.is_whiteout(g) && tree.nodes[g].xattrs == Xattrs::default());
        // A hardlink to a whiteout is refused.
        assert!(matches!(tree.hardlink(&[b"h"], b"d"), Err(TreeError::BadHardlink(_))));
        let mut tree = Tree::new();
        tree.insert(&[b"w"], whiteout()).unwrap();
        assert!(matches!(tree.hardlink(&[b"h"], b"w"), Err(TreeError::HardlinkToWhiteout(_))));
    }
}
