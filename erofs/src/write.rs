//! The writer: streams tar entries into the tree and the data area, then
//! lays out directories and the metadata area and writes them.

use crate::layout::{self, BLOCK_SIZE, COMPACT_INODE_SIZE, DIRENT_SIZE, DataLayout, INODE_SIZE, Inode, SLOT, SUPER_OFFSET, SuperBlock};
use crate::tree::{self, Data, Kind, Meta, Node, NodeId, ROOT, Tree};
use crate::xattr::Xattrs;
use crate::{Error, Options, Summary};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// Longest symlink target (PATH_MAX - 1).
const MAX_SYMLINK: u64 = 4095;

pub(crate) fn write<R: Read>(tar: R, out: &mut File, opts: &Options) -> Result<Summary, Error> {
    let tails = match &opts.tmp_dir {
        Some(dir) => tempfile::tempfile_in(dir)?,
        None => tempfile::tempfile()?,
    };
    let mut writer = Writer {
        tree: Tree::new(),
        data: BufWriter::with_capacity(1 << 20, &*out),
        next_block: 1,
        tails: BufWriter::with_capacity(1 << 16, tails),
        tails_len: 0,
    };
    writer.data.get_mut().seek(SeekFrom::Start(BLOCK_SIZE))?;
    writer.read_tar(tar)?;
    writer.finish(out)
}

struct Writer<'a> {
    tree: Tree,
    data: BufWriter<&'a File>,
    /// Next free block of the data area.
    next_block: u64,
    tails: BufWriter<File>,
    tails_len: u64,
}

fn entry_err(path: &[u8], reason: impl ToString) -> Error {
    Error::Entry { path: String::from_utf8_lossy(path).into_owned(), reason: reason.to_string() }
}

impl Writer<'_> {
    fn read_tar<R: Read>(&mut self, tar: R) -> Result<(), Error> {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path_bytes().into_owned();
            self.add(&mut entry, &path).map_err(|e| match e {
                Error::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => Error::Io(io),
                Error::Io(io) => entry_err(&path, format!("truncated: {io}")),
                other => other,
            })?;
        }
        Ok(())
    }

    fn add<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<(), Error> {
        let header = entry.header();
        let kind = header.entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let bad = |reason: &str| entry_err(path, reason);
        let mut meta = Meta {
            mode: header.mode().map_err(|e| entry_err(path, e))? & 0o7777,
            uid: u32::try_from(header.uid().map_err(|e| entry_err(path, e))?).map_err(|_| bad("uid above 2^32-1"))?,
            gid: u32::try_from(header.gid().map_err(|e| entry_err(path, e))?).map_err(|_| bad("gid above 2^32-1"))?,
            mtime: header.mtime().map_err(|e| entry_err(path, e))?,
            mtime_nsec: 0,
        };
        let (major, minor) = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        let mut xattrs = Xattrs::default();
        if let Some(pax) = entry.pax_extensions().map_err(|e| entry_err(path, e))? {
            for ext in pax {
                let ext = ext.map_err(|e| entry_err(path, e))?;
                let key = ext.key().map_err(|_| bad("PAX key is not UTF-8"))?;
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.set(name, ext.value_bytes()).map_err(|e| entry_err(path, e))?;
                } else if key.starts_with("GNU.sparse.") {
                    return Err(bad("sparse files are not supported"));
                } else if let (Some(field), Ok(value)) = (["uid", "gid"].iter().find(|k| **k == key), ext.value()) {
                    let id = value.parse::<u32>().map_err(|_| bad("PAX uid/gid is not a 32-bit number"))?;
                    if *field == "uid" { meta.uid = id } else { meta.gid = id }
                } else if key == "mtime" {
                    let value = ext.value().map_err(|_| bad("PAX mtime is not UTF-8"))?;
                    (meta.mtime, meta.mtime_nsec) = parse_mtime(value).ok_or_else(|| bad("invalid PAX mtime"))?;
                }
            }
        }
        let parts = Tree::components(path).map_err(|e| entry_err(path, e))?;
        let tree_err = |e: tree::TreeError| entry_err(path, e);

        // Whiteouts.
        if let Some(name) = parts.last() {
            if *name == b".wh..wh..opq" {
                let dir = self.tree.dir(&parts[..parts.len() - 1]).map_err(tree_err)?;
                self.tree.nodes[dir].xattrs.set("trusted.overlay.opaque", b"y").map_err(|e| entry_err(path, e))?;
                return Ok(());
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut target = parts.clone();
                *target.last_mut().expect("non-empty") = hidden;
                let node = Node {
                    meta: Meta { mode: tree::S_IFCHR, ..meta },
                    xattrs: Xattrs::default(),
                    kind: Kind::Special { rdev: 0 },
                };
                self.tree.insert(&target, node).map_err(tree_err)?;
                return Ok(());
            }
        }

        let node = |mode: u32, kind: Kind| Node { meta: Meta { mode: mode | meta.mode, ..meta }, xattrs: xattrs.clone(), kind };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let data = self.stream(entry, size, &xattrs)?;
                self.tree.insert(&parts, node(tree::S_IFREG, Kind::Data(data))).map_err(tree_err)?;
            }
            tar::EntryType::Directory => {
                self.tree.insert(&parts, node(tree::S_IFDIR, Kind::Dir(Default::default()))).map_err(tree_err)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| bad("symlink without a target"))?.into_owned();
                if target.is_empty() || target.len() as u64 > MAX_SYMLINK {
                    return Err(bad("symlink target is empty or longer than 4095 bytes"));
                }
                let data = self.stream(&mut &target[..], target.len() as u64, &xattrs)?;
                self.tree.insert(&parts, node(tree::S_IFLNK, Kind::Data(data))).map_err(tree_err)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| bad("hardlink without a target"))?.into_owned();
                if parts.is_empty() {
                    return Err(bad("hardlink at the root"));
                }
                self.tree.hardlink(&parts, &target).map_err(tree_err)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let mode = match kind {
                    tar::EntryType::Char => tree::S_IFCHR,
                    tar::EntryType::Block => 0o060000,
                    _ => 0o010000,
                };
                let rdev = if kind == tar::EntryType::Fifo { 0 } else { layout::encode_dev(major, minor) };
                self.tree.insert(&parts, node(mode, Kind::Special { rdev })).map_err(tree_err)?;
            }
            tar::EntryType::GNUSparse => return Err(bad("sparse files are not supported")),
            other => return Err(entry_err(path, format!("unsupported tar entry type {:?}", other.as_byte() as char))),
        }
        Ok(())
    }

    /// Copies `size` bytes of content: full blocks into the data area, the
    /// tail into the tails file when it can live inline after the inode,
    /// else into a last data block.
    fn stream(&mut self, content: &mut impl Read, size: u64, xattrs: &Xattrs) -> Result<Data, Error> {
        let tail = size % BLOCK_SIZE;
        let full = size - tail;
        let inline = tail > 0 && INODE_SIZE + xattrs.body_size() + tail <= BLOCK_SIZE;
        let blkaddr = if size == 0 { 0 } else { self.block_addr(self.next_block)? };
        let in_blocks = if inline { full } else { size };
        let copied = io::copy(&mut content.take(in_blocks), &mut self.data)?;
        let mut data = Data { size, layout: DataLayout::FlatPlain, blkaddr, tail_offset: 0 };
        if inline {
            data.layout = DataLayout::FlatInline;
            data.tail_offset = self.tails_len;
            let got = io::copy(&mut content.take(tail), &mut self.tails)?;
            self.tails_len += got;
            if got != tail {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content ends early").into());
            }
        }
        if copied != in_blocks {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content ends early").into());
        }
        let blocks = in_blocks.div_ceil(BLOCK_SIZE);
        let pad = blocks * BLOCK_SIZE - in_blocks;
        io::copy(&mut io::repeat(0).take(pad), &mut self.data)?;
        self.next_block += blocks;
        Ok(data)
    }

    fn block_addr(&self, block: u64) -> Result<u32, Error> {
        u32::try_from(block).map_err(|_| Error::TooLarge)
    }

    /// Lays out and writes directories, the metadata area and the superblock.
    fn finish(mut self, out: &File) -> Result<Summary, Error> {
        self.data.flush()?;
        self.tails.flush()?;
        let tails = self.tails.into_inner().map_err(|e| e.into_error())?;
        let tree = self.tree;

        // Reachable inodes in depth-first order (root first), and link counts.
        let mut order: Vec<NodeId> = Vec::new();
        let mut seen: HashMap<NodeId, u32> = HashMap::new();
        let mut parent_of: HashMap<NodeId, NodeId> = HashMap::new();
        let mut stack = vec![ROOT];
        seen.insert(ROOT, 1);
        while let Some(id) = stack.pop() {
            order.push(id);
            if let Kind::Dir(children) = &tree.nodes[id].kind {
                for &child in children.values().rev() {
                    let links = seen.entry(child).or_insert(0);
                    *links += 1;
                    if *links == 1 {
                        parent_of.insert(child, id);
                        stack.push(child);
                    }
                }
            }
        }

        // Directory contents (names only; nids come later) and their sizes.
        let mut dirs: HashMap<NodeId, DirLayout> = HashMap::new();
        for &id in &order {
            if let Kind::Dir(children) = &tree.nodes[id].kind {
                let mut entries: Vec<(&[u8], NodeId)> = vec![(b".", id), (b"..", *parent_of.get(&id).unwrap_or(&ROOT))];
                entries.extend(children.iter().map(|(name, &child)| (name.as_slice(), child)));
                entries.sort_by(|a, b| a.0.cmp(b.0));
                dirs.insert(id, DirLayout::new(entries.into_iter().map(|(n, c)| (n.to_vec(), c)).collect()));
            }
        }

        // Directory blocks go after the streamed data.
        let mut next_block = self.next_block;
        let mut plans: HashMap<NodeId, Plan> = HashMap::new();
        for &id in &order {
            let node = &tree.nodes[id];
            let plan = match &node.kind {
                Kind::Dir(_) => {
                    let dir = &dirs[&id];
                    let size = dir.size();
                    let tail = size % BLOCK_SIZE;
                    let inline = tail > 0 && INODE_SIZE + node.xattrs.body_size() + tail <= BLOCK_SIZE;
                    let in_blocks = if inline { size - tail } else { size };
                    let blocks = in_blocks.div_ceil(BLOCK_SIZE);
                    let blkaddr = if blocks > 0 { u32::try_from(next_block).map_err(|_| Error::TooLarge)? } else { 0 };
                    next_block += blocks;
                    let layout = if inline { DataLayout::FlatInline } else { DataLayout::FlatPlain };
                    Plan { layout, size, i_u: blkaddr, inline: if inline { tail } else { 0 } }
                }
                Kind::Data(d) => Plan {
                    layout: d.layout,
                    size: d.size,
                    i_u: d.blkaddr,
                    inline: if d.layout == DataLayout::FlatInline { d.size % BLOCK_SIZE } else { 0 },
                },
                Kind::Special { rdev } => Plan { layout: DataLayout::FlatPlain, size: 0, i_u: *rdev, inline: 0 },
            };
            plans.insert(id, plan);
        }
        let meta_blkaddr = next_block;

        // The inodes. The most common time becomes the build time, which
        // every compact inode shares.
        let build_time = most_common(order.iter().map(|&id| (tree.nodes[id].meta.mtime, tree.nodes[id].meta.mtime_nsec)));
        let inodes: HashMap<NodeId, Inode> = order
            .iter()
            .enumerate()
            .map(|(ino, &id)| {
                let node = &tree.nodes[id];
                let plan = &plans[&id];
                let nlink = match &node.kind {
                    Kind::Dir(children) => {
                        2 + children.values().filter(|c| matches!(tree.nodes[**c].kind, Kind::Dir(_))).count() as u32
                    }
                    _ => seen[&id],
                };
                let inode = Inode {
                    layout: plan.layout,
                    xattr_icount: node.xattrs.icount(),
                    mode: node.meta.mode,
                    size: plan.size,
                    i_u: plan.i_u,
                    ino: ino as u32 + 1,
                    uid: node.meta.uid,
                    gid: node.meta.gid,
                    mtime: node.meta.mtime,
                    mtime_nsec: node.meta.mtime_nsec,
                    nlink,
                };
                (id, inode)
            })
            .collect();
        let inode_size = |id: NodeId| if inodes[&id].fits_compact(build_time) { COMPACT_INODE_SIZE } else { INODE_SIZE };

        // The metadata area: each inode at a 32-byte slot; an inode with
        // inline data never crosses a block boundary.
        // Slot 0 stays empty: nid 0 would be inode number 0, which readdir
        // users (ls, glibc) take for a deleted entry.
        let mut offsets: HashMap<NodeId, u64> = HashMap::new();
        let mut cursor = SLOT;
        for &id in &order {
            let len = inode_size(id) + tree.nodes[id].xattrs.body_size() + plans[&id].inline;
            if len <= BLOCK_SIZE && cursor % BLOCK_SIZE + len > BLOCK_SIZE {
                cursor = cursor.next_multiple_of(BLOCK_SIZE);
            }
            offsets.insert(id, cursor);
            cursor = (cursor + len).next_multiple_of(SLOT);
        }
        let nid = |id: NodeId| offsets[&id] / SLOT;
        if nid(ROOT) > u16::MAX as u64 {
            return Err(Error::TooLarge);
        }
        let meta_blocks = cursor.div_ceil(BLOCK_SIZE);
        let total_blocks = u32::try_from(meta_blkaddr + meta_blocks).map_err(|_| Error::TooLarge)?;

        // Write directory blocks, keeping each directory's inline tail.
        let mut dir_tails: HashMap<NodeId, Vec<u8>> = HashMap::new();
        for &id in &order {
            if let Some(dir) = dirs.get(&id) {
                let plan = &plans[&id];
                let bytes = dir.to_bytes(&tree.nodes, &|child| nid(child), &|child| layout::file_type(tree.nodes[child].meta.mode));
                let in_blocks = (plan.size - plan.inline) as usize;
                if in_blocks > 0 {
                    let mut block_bytes = bytes[..in_blocks].to_vec();
                    block_bytes.resize(in_blocks.next_multiple_of(BLOCK_SIZE as usize), 0);
                    out.write_all_at(&block_bytes, plan.i_u as u64 * BLOCK_SIZE)?;
                }
                dir_tails.insert(id, bytes[in_blocks..].to_vec());
            }
        }

        // Write the metadata area.
        let mut meta = vec![0u8; (meta_blocks * BLOCK_SIZE) as usize];
        for &id in &order {
            let node = &tree.nodes[id];
            let plan = &plans[&id];
            let inode = &inodes[&id];
            let at = offsets[&id] as usize;
            let at = if inode.fits_compact(build_time) {
                meta[at..at + COMPACT_INODE_SIZE as usize].copy_from_slice(&inode.to_compact());
                at + COMPACT_INODE_SIZE as usize
            } else {
                meta[at..at + INODE_SIZE as usize].copy_from_slice(&inode.to_extended());
                at + INODE_SIZE as usize
            };
            let xattrs = node.xattrs.to_bytes();
            meta[at..at + xattrs.len()].copy_from_slice(&xattrs);
            let at = at + xattrs.len();
            if plan.inline > 0 {
                let inline = &mut meta[at..at + plan.inline as usize];
                match &node.kind {
                    Kind::Dir(_) => inline.copy_from_slice(&dir_tails[&id]),
                    Kind::Data(d) => tails.read_exact_at(inline, d.tail_offset)?,
                    Kind::Special { .. } => {}
                }
            }
        }
        out.write_all_at(&meta, meta_blkaddr * BLOCK_SIZE)?;

        // Block 0: the superblock.
        let mut block0 = vec![0u8; BLOCK_SIZE as usize];
        let sb = SuperBlock {
            root_nid: nid(ROOT) as u16,
            build_time: build_time.0,
            build_time_nsec: build_time.1,
            inos: order.len() as u64,
            blocks: total_blocks,
            meta_blkaddr: meta_blkaddr as u32,
        };
        block0[SUPER_OFFSET as usize..SUPER_OFFSET as usize + 128].copy_from_slice(&sb.to_bytes());
        out.write_all_at(&block0, 0)?;
        let bytes = total_blocks as u64 * BLOCK_SIZE;
        out.set_len(bytes)?;
        Ok(Summary { inodes: order.len() as u64, bytes })
    }
}

/// How an inode's data is laid out.
struct Plan {
    layout: DataLayout,
    size: u64,
    /// Block address, or rdev.
    i_u: u32,
    /// Bytes stored inline after the inode.
    inline: u64,
}

/// A directory's entries packed into blocks: each block holds its dirents
/// followed by their names; entries never span blocks.
struct DirLayout {
    entries: Vec<(Vec<u8>, NodeId)>,
    /// (first entry, entry count, used bytes) per block.
    blocks: Vec<(usize, usize, u64)>,
}

impl DirLayout {
    fn new(entries: Vec<(Vec<u8>, NodeId)>) -> DirLayout {
        let mut blocks = Vec::new();
        let (mut first, mut count, mut used) = (0, 0, 0u64);
        for (i, (name, _)) in entries.iter().enumerate() {
            let need = DIRENT_SIZE + name.len() as u64;
            if count > 0 && used + need > BLOCK_SIZE {
                blocks.push((first, count, used));
                (first, count, used) = (i, 0, 0);
            }
            count += 1;
            used += need;
        }
        blocks.push((first, count, used));
        DirLayout { entries, blocks }
    }

    /// Bytes of directory data: full blocks, then the used part of the last.
    fn size(&self) -> u64 {
        (self.blocks.len() as u64 - 1) * BLOCK_SIZE + self.blocks.last().map_or(0, |b| b.2)
    }

    fn to_bytes(&self, _nodes: &[Node], nid: &dyn Fn(NodeId) -> u64, file_type: &dyn Fn(NodeId) -> u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size() as usize);
        for (b, &(first, count, used)) in self.blocks.iter().enumerate() {
            let start = out.len();
            let entries = &self.entries[first..first + count];
            let mut nameoff = DIRENT_SIZE as usize * count;
            for (name, child) in entries {
                out.extend_from_slice(&nid(*child).to_le_bytes());
                out.extend_from_slice(&(nameoff as u16).to_le_bytes());
                out.push(file_type(*child));
                out.push(0);
                nameoff += name.len();
            }
            for (name, _) in entries {
                out.extend_from_slice(name);
            }
            debug_assert_eq!((out.len() - start) as u64, used);
            if b + 1 < self.blocks.len() {
                out.resize(start + BLOCK_SIZE as usize, 0);
            }
        }
        out
    }
}

/// The most frequent value (the smallest among equals), or the default.
fn most_common<T: Ord + Copy + Default>(values: impl Iterator<Item = T>) -> T {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(v, _)| *v).unwrap_or_default()
}

/// `seconds[.fraction]` → (seconds, nanoseconds); negative times clamp to 0.
fn parse_mtime(value: &str) -> Option<(u64, u32)> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if secs.starts_with('-') {
        return Some((0, 0));
    }
    let secs = secs.parse::<u64>().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsec = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse::<u32>().ok()? };
    Some((secs, nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes() {
        assert_eq!(parse_mtime("1700000000.5"), Some((1700000000, 500_000_000)));
        assert_eq!(parse_mtime("12"), Some((12, 0)));
        assert_eq!(parse_mtime("x"), None);
    }

    #[test]
    fn directories_split_into_blocks() {
        let entries: Vec<(Vec<u8>, NodeId)> = (0..1000).map(|i| (format!("file-{i:05}").into_bytes(), 0)).collect();
        let dir = DirLayout::new(entries);
        assert!(dir.blocks.len() > 1);
        assert!(dir.blocks.iter().all(|b| b.2 <= BLOCK_SIZE));
        assert_eq!(dir.blocks.iter().map(|b| b.1).sum::<usize>(), 1000);
    }
}
