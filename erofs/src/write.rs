//! The writer: streams tar entries into the tree and the data area, then
//! lays out directories and the metadata area and writes them.
//!
//! Memory: the tree (per node a [`Node`] of 64 bytes, per name a
//! directory entry of about 50 bytes, names over 22 bytes and xattrs on
//! the heap) and, while finishing, 16 bytes per node and 40 per
//! directory, and one directory's entries at a time. Tails and block maps
//! wait in a temporary file; the metadata area is written as a stream.

use crate::dir::DirLayout;
use crate::entry::{self, What};
use crate::layout::{
    self, BLOCK_MAP_ENTRY_SIZE, CHUNK_FORMAT_INDEXES, CHUNK_INDEX_SIZE, COMPACT_INODE_SIZE, DEVICE_SLOT_SIZE,
    DEVICE_TAG_MAX, DataLayout, DeviceSlot, FEATURE_INCOMPAT_CHUNKED_FILE, FEATURE_INCOMPAT_DEVICE_TABLE,
    FULL_BLOCK_BITS, INODE_SIZE, Inode, NULL_ADDR, SLOT, SUPER_OFFSET, SUPER_SIZE, SuperBlock, TAR_BLOCK_BITS,
};
use crate::sparse::{self, Tap};
use crate::tree::{self, Children, Data, Kind, Meta, Node, NodeId, ROOT, Tree, TreeError};
use crate::xattr::{Shared, Xattrs};
use crate::{Error, Format, MAX_DEPTH, MAX_NOTES, Note, Options, Summary};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

pub(crate) fn write<R: Read>(tar: R, out: &mut File, opts: &Options) -> Result<Summary, Error> {
    write_with(tar, out, opts, true)
}

/// [`write`], with the shared xattr area used or not (`share_xattrs`).
pub(crate) fn write_with<R: Read>(
    tar: R,
    out: &mut File,
    opts: &Options,
    share_xattrs: bool,
) -> Result<Summary, Error> {
    let tag = match (opts.format, &opts.device_tag) {
        (Format::TarIndex, Some(tag)) if tag.len() > DEVICE_TAG_MAX => {
            return Err(Error::Options(format!(
                "device tag of {} bytes (at most {DEVICE_TAG_MAX}): {tag:?}",
                tag.len()
            )));
        }
        (Format::TarIndex, Some(tag)) => Some(tag.as_bytes().to_vec()),
        (Format::TarIndex, None) => Some(Vec::new()),
        (Format::Full, _) => None,
    };
    let bits = if tag.is_some() { TAR_BLOCK_BITS } else { FULL_BLOCK_BITS };
    let bs = 1u64 << bits;
    // The superblock and the device table, then the data area.
    let devices = u64::from(tag.is_some());
    let reserved = (SUPER_OFFSET + SUPER_SIZE + devices * DEVICE_SLOT_SIZE).div_ceil(bs);
    let tails = match &opts.tmp_dir {
        Some(dir) => tempfile::tempfile_in(dir)?,
        None => tempfile::tempfile()?,
    };
    let mut writer = Writer {
        bits,
        bs,
        device_tag: tag,
        reserved,
        tree: Tree::new(),
        data: BufWriter::with_capacity(1 << 20, &*out),
        next_block: reserved,
        tails: BufWriter::with_capacity(1 << 16, tails),
        tails_len: 0,
        entries: 0,
        file_bytes: 0,
        sparse_files: 0,
        indexed_files: 0,
        sparse_data: 0,
        sparse_waste: 0,
        notes: Vec::new(),
        more_notes: 0,
    };
    writer.data.get_mut().seek(SeekFrom::Start(reserved * bs))?;
    let consumed = writer.read_tar(tar)?;
    writer.finish(out, share_xattrs, consumed)
}

struct Writer<'a> {
    /// log2 of the block size, and the block size.
    bits: u8,
    bs: u64,
    /// [`Format::TarIndex`]: the device slot's tag (the tar is the one
    /// extra device); `None` for a full image.
    device_tag: Option<Vec<u8>>,
    /// Blocks before the data area (the superblock, the device table).
    reserved: u64,
    tree: Tree,
    data: BufWriter<&'a File>,
    /// Next free block of the data area.
    next_block: u64,
    /// What goes after inodes in the metadata area, kept in a temporary
    /// file until it is written: inline tails and sparse files' block maps.
    tails: BufWriter<File>,
    tails_len: u64,
    /// Tar entries applied.
    entries: u64,
    /// Regular file content streamed.
    file_bytes: u64,
    /// Chunk-based (sparse) files stored; their block maps (a block
    /// address per chunk) wait in the tails file.
    sparse_files: u64,
    /// Regular files whose data is in the tar (a tar index).
    indexed_files: u64,
    /// Data of the sparse files so far, and what they took beyond it.
    sparse_data: u64,
    sparse_waste: u64,
    /// What was dropped (the first [`MAX_NOTES`]), and how much more.
    notes: Vec<Note>,
    more_notes: u64,
}

/// Largest file stored: 2^44 bytes (16 TiB).
pub const MAX_FILE_SIZE: u64 = 1 << 44;
/// Most chunks of a chunk-based file (a block map of at most 4 MiB).
pub const MAX_CHUNKS: u64 = 1 << 20;
/// The sparse files of a layer may take at most this many bytes beyond
/// their data, plus [`MAX_SPARSE_WASTE_FACTOR`] times their data, in block
/// maps and zero-filled blocks of the chunks that hold data: what a hostile
/// tar of tiny segments spread over huge files can make the writer write.
pub const MAX_SPARSE_WASTE: u64 = 1 << 30;
/// See [`MAX_SPARSE_WASTE`].
pub const MAX_SPARSE_WASTE_FACTOR: u64 = 4;

/// The chunk size (as `bits`: chunks of `2^(blkszbits + bits)` bytes) for
/// a file of `size` bytes with data in `segments`, in blocks of `bs` bytes:
/// of those with at most [`MAX_CHUNKS`] chunks, the one storing the fewest
/// bytes (block map plus the blocks of every chunk that holds data), the
/// smallest on a tie. Returns `(bits, stored bytes)`.
pub fn chunk_bits(size: u64, segments: &[(u64, u64)], bs: u64) -> (u8, u64) {
    let mut best: Option<(u8, u64)> = None;
    for bits in 0u8..=31 {
        let chunk = bs << bits;
        let chunks = size.div_ceil(chunk);
        if chunks > MAX_CHUNKS {
            continue;
        }
        let mut stored = chunks * BLOCK_MAP_ENTRY_SIZE;
        let mut last: Option<u64> = None;
        for &(offset, len) in segments {
            let (first, end) = (offset / chunk, (offset + len - 1) / chunk);
            for c in first.max(last.map_or(0, |l| l + 1))..=end {
                let chunk_len = chunk.min(size - c * chunk);
                stored += chunk_len.next_multiple_of(bs);
            }
            last = Some(last.map_or(end, |l| l.max(end)));
        }
        if best.is_none_or(|(_, b)| stored < b) {
            best = Some((bits, stored));
        }
        if chunks <= 1 {
            break;
        }
    }
    best.expect("a file of at most 2^44 bytes has a chunk size with at most 2^20 chunks")
}

/// The error for a tree refusal about the entry at `path`.
fn tree_error(path: &[u8], e: TreeError) -> Error {
    match e {
        TreeError::DotDot | TreeError::NameTooLong | TreeError::Nul => entry::invalid_path(path, e),
        TreeError::Xattr(e) => entry::xattr_error(path, e),
        TreeError::NotADirectory
        | TreeError::BadHardlink(_)
        | TreeError::HardlinkToWhiteout(_)
        | TreeError::RootNotDir => entry::malformed(path, e),
        TreeError::TooMany => Error::TooLarge,
    }
}

/// Reading and applying one entry fails with an error naming it; a short
/// read inside its data is reported as truncation.
fn truncated(path: &[u8], e: Error) -> Error {
    match e {
        Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            entry::malformed(path, format!("truncated: {io}"))
        }
        Error::Io(io) if io.kind() == io::ErrorKind::InvalidData => entry::malformed(path, io),
        other => other,
    }
}

impl Writer<'_> {
    /// Applies every entry of `tar`; returns how many of its bytes were
    /// read (to its end-of-archive block).
    fn read_tar<R: Read>(&mut self, tar: R) -> Result<u64, Error> {
        let (tap, handle) = Tap::new(tar);
        let mut archive = tar::Archive::new(tap);
        let mut last: Option<Vec<u8>> = None;
        let mut entries = archive.entries()?;
        loop {
            // Keep the headers read, for old GNU sparse extension blocks.
            handle.arm(true);
            let entry = entries.next();
            handle.arm(false);
            let Some(entry) = entry else { break };
            let mut entry = entry.map_err(|e| match &last {
                Some(path) => entry::malformed(path, format!("the tar is damaged after this entry: {e}")),
                // The tar crate reports a header it cannot parse as `Other`;
                // anything else is the reader's own failure (decompression, I/O).
                None if e.kind() == std::io::ErrorKind::Other => {
                    entry::malformed(b"tar header #1", "not a tar archive: the first header is invalid")
                }
                None => Error::Io(e),
            })?;
            let path = entry::path_of(&mut entry);
            let parsed = entry::parse(&mut entry, path.clone())?;
            self.add(&mut entry, parsed, &handle).map_err(|e| truncated(&path, e))?;
            self.entries += 1;
            last = Some(path);
        }
        Ok(handle.position())
    }

    /// Applies one entry to the tree, streaming its data.
    fn add<R: Read>(
        &mut self,
        content: &mut tar::Entry<'_, Tap<R>>,
        entry: entry::Entry,
        tap: &Tap<R>,
    ) -> Result<(), Error> {
        let path = &entry.path[..];
        let parts = Tree::components(path).map_err(|e| tree_error(path, e))?;
        if parts.len() > MAX_DEPTH {
            return Err(entry::invalid_path(path, format!("path deeper than {MAX_DEPTH} directories")));
        }
        let tree_err = |e: TreeError| tree_error(path, e);
        let meta = entry.meta;
        let lossy = || String::from_utf8_lossy(path).into_owned();
        for name in &entry.dropped_xattrs {
            self.note(Note::OverlayXattr { path: lossy(), name: name.clone() });
        }
        // containerd ignores every entry that resolves to the root; a
        // directory there gives the root its metadata.
        if parts.is_empty() && !matches!(entry.what, What::Dir | What::Skip) {
            self.note(Note::RootEntry { path: lossy() });
            return Ok(());
        }

        // Whiteouts (containerd: `.wh..wh.*` other than the opaque marker
        // are aufs metadata, skipped).
        if let Some(name) = parts.last() {
            if *name == b".wh..wh..opq" {
                let dir = self.tree.dir(&parts[..parts.len() - 1]).map_err(tree_err)?;
                self.tree.nodes[dir]
                    .xattrs
                    .set("trusted.overlay.opaque", b"y")
                    .map_err(|e| entry::xattr_error(path, e))?;
                return Ok(());
            }
            if name.starts_with(b".wh..wh.") {
                return Ok(());
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                if hidden.is_empty() {
                    return Err(entry::invalid_path(path, "whiteout without a name"));
                }
                // containerd refuses these too ("invalid whiteout name").
                if hidden == b"." || hidden == b".." {
                    return Err(entry::invalid_path(path, "whiteout of . or .. (its own directory or the parent)"));
                }
                let mut target = parts.clone();
                let last = target.len() - 1;
                target[last] = hidden;
                let node = Node {
                    meta: Meta { mode: tree::S_IFCHR, ..meta },
                    xattrs: Xattrs::default(),
                    kind: Kind::Whiteout,
                };
                self.tree.insert(&target, node).map_err(tree_err)?;
                return Ok(());
            }
        }

        let node = |mode: u32, kind: Kind| Node {
            meta: Meta { mode: mode | meta.mode, ..meta },
            xattrs: entry.xattrs.clone(),
            kind,
        };
        let size_cap = |size: u64| {
            if size > MAX_FILE_SIZE {
                return Err(entry::unsupported(path, format!("file of {size} bytes (at most 2^44, 16 TiB)")));
            }
            Ok(())
        };
        let new = match entry.what {
            What::Skip => return Ok(()),
            What::File if self.device_tag.is_some() => {
                let size = content.size();
                size_cap(size)?;
                node(tree::S_IFREG, Kind::Data(self.refer(content, size, path)?))
            }
            What::File => {
                let size = content.size();
                size_cap(size)?;
                node(tree::S_IFREG, Kind::Data(self.stream(content, size, &entry.xattrs)?))
            }
            What::SparseFile { real_size } => {
                size_cap(real_size)?;
                let map = sparse::read_pax_map(content, real_size).map_err(|e| match e.kind() {
                    io::ErrorKind::Unsupported => entry::unsupported(path, e),
                    _ => e.into(),
                })?;
                node(tree::S_IFREG, Kind::Data(self.stream_sparse(content, real_size, &map, path)?))
            }
            What::GnuSparse { real_size } => {
                size_cap(real_size)?;
                let header: &[u8; 512] = content.header().as_bytes();
                let ext = tap.since(content.raw_file_position()).ok_or_else(|| {
                    entry::unsupported(path, "old GNU sparse file with too many segments (over 16 MiB of map)")
                })?;
                let map = sparse::gnu_map(header, &ext, real_size)?;
                // Read the segments from the stream, not through the tar
                // crate, which would expand the holes.
                let mut direct = tap.direct();
                node(tree::S_IFREG, Kind::Data(self.stream_sparse(&mut direct, real_size, &map, path)?))
            }
            What::Dir => node(tree::S_IFDIR, Kind::Dir(Default::default())),
            What::Symlink(target) => {
                node(tree::S_IFLNK, Kind::Data(self.stream(&mut &target[..], target.len() as u64, &entry.xattrs)?))
            }
            What::Hardlink(target) => {
                return self.tree.hardlink(&parts, &target).map_err(tree_err);
            }
            What::Device { is_block, major, minor } => {
                let mode = if is_block { tree::S_IFBLK } else { tree::S_IFCHR };
                node(mode, Kind::Special { rdev: layout::encode_dev(major, minor) })
            }
            What::Fifo => node(tree::S_IFIFO, Kind::Special { rdev: 0 }),
        };
        if let Kind::Data(d) = &new.kind
            && new.meta.mode & tree::S_IFMT == tree::S_IFREG
        {
            self.file_bytes += d.size;
        }
        self.tree.insert(&parts, new).map_err(tree_err)?;
        Ok(())
    }

    /// Copies `size` bytes of content: full blocks into the data area, the
    /// tail into the tails file when it can live inline after the inode,
    /// else into a last data block.
    fn stream(&mut self, content: &mut impl Read, size: u64, xattrs: &Xattrs) -> Result<Data, Error> {
        let bs = self.bs;
        let tail = size % bs;
        let full = size - tail;
        let inline = tail > 0 && INODE_SIZE + xattrs.body_size() + tail <= bs;
        let blkaddr = if size == 0 { 0 } else { self.block_addr(self.next_block)? };
        let in_blocks = if inline { full } else { size };
        let copied = io::copy(&mut content.take(in_blocks), &mut self.data)?;
        if copied != in_blocks {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content ends early").into());
        }
        let mut data = Data { size, layout: DataLayout::FlatPlain, blkaddr, in_tar: false, tail_offset: 0 };
        if inline {
            data.layout = DataLayout::FlatInline;
            data.tail_offset = self.tails_len;
            let got = io::copy(&mut content.take(tail), &mut self.tails)?;
            self.tails_len += got;
            if got != tail {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content ends early").into());
            }
        }
        let blocks = in_blocks.div_ceil(bs);
        let pad = blocks * bs - in_blocks;
        io::copy(&mut io::repeat(0).take(pad), &mut self.data)?;
        self.next_block += blocks;
        Ok(data)
    }

    /// A tar index's regular file: its `size` bytes stay in the tar, where
    /// the inode points (a tar pads each file's data to 512 bytes). The data
    /// is read past, to know it is there, not copied.
    ///
    /// As `mkfs.erofs --tar=i` does: chunk-based, chunk indexes naming
    /// device 1 (the tar) and blocks of the tar, the fewest chunks (one up
    /// to 1 TiB). The kernel reads them from the device given with
    /// `device=`, or, with none given, from the image's own file at
    /// `mapped_blkaddr` on (the image and the tar concatenated). A
    /// flat-plain inode at `mapped_blkaddr + block` would do for the
    /// kernel, but erofs-utils up to 1.8.x read such an address from the
    /// image itself (`erofs_map_dev` does not switch device).
    fn refer<R: Read>(&mut self, content: &mut tar::Entry<'_, R>, size: u64, path: &[u8]) -> Result<Data, Error> {
        let at = content.raw_file_position();
        if !at.is_multiple_of(self.bs) {
            return Err(entry::malformed(
                path,
                format!(
                    "data at byte {at} of the tar, not on a {}-byte block (the tar must start at its byte 0)",
                    self.bs
                ),
            ));
        }
        if io::copy(&mut content.take(size), &mut io::sink())? != size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content ends early").into());
        }
        if size == 0 {
            return Ok(Data { size, layout: DataLayout::FlatPlain, blkaddr: 0, in_tar: false, tail_offset: 0 });
        }
        // Every chunk's block below 2^32.
        self.block_addr((at + size).div_ceil(self.bs))?;
        let bits = (0u8..31).find(|&b| self.bs << b >= size).unwrap_or(31);
        self.indexed_files += 1;
        let format = CHUNK_FORMAT_INDEXES | u32::from(bits);
        Ok(Data { size, layout: DataLayout::ChunkBased, blkaddr: format, in_tar: true, tail_offset: at / self.bs })
    }

    /// Stores a sparse file of `size` bytes whose data `segments` (from
    /// [`sparse::validate`]) follow back to back in `content`: chunk-based,
    /// each chunk holding data written whole (zeros around the data), the
    /// others holes.
    fn stream_sparse(
        &mut self,
        content: &mut impl Read,
        size: u64,
        segments: &[(u64, u64)],
        path: &[u8],
    ) -> Result<Data, Error> {
        if size == 0 {
            return Ok(Data { size, layout: DataLayout::FlatPlain, blkaddr: 0, in_tar: false, tail_offset: 0 });
        }
        let bs = self.bs;
        let (bits, stored) = chunk_bits(size, segments, bs);
        let data: u64 = segments.iter().map(|s| s.1).sum();
        self.sparse_data += data;
        self.sparse_waste += stored.saturating_sub(data);
        let allowed = self.sparse_data.saturating_mul(MAX_SPARSE_WASTE_FACTOR).saturating_add(MAX_SPARSE_WASTE);
        if self.sparse_waste > allowed {
            return Err(entry::unsupported(
                path,
                format!(
                    "sparse file whose data is too scattered: {data} bytes of data would take {stored} bytes \
                     (chunks of {} bytes; at most 1 GiB plus 4 times their data for all sparse files of a layer)",
                    bs << bits
                ),
            ));
        }
        let chunk = bs << bits;
        let mut map = vec![NULL_ADDR; size.div_ceil(chunk) as usize];
        // The chunk being written and how far into it.
        let mut current: Option<(u64, u64)> = None;
        let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "sparse data ends early");
        for &(mut offset, mut len) in segments {
            while len > 0 {
                let c = offset / chunk;
                if current.is_none_or(|(cur, _)| cur != c) {
                    if let Some((cur, written)) = current {
                        self.end_chunk(cur, written, chunk, size)?;
                    }
                    map[c as usize] = self.block_addr(self.next_block)?;
                    current = Some((c, 0));
                }
                let (_, written) = current.as_mut().expect("a chunk is open");
                let within = offset - c * chunk;
                io::copy(&mut io::repeat(0).take(within - *written), &mut self.data)?;
                let n = len.min(chunk - within);
                if io::copy(&mut content.take(n), &mut self.data)? != n {
                    return Err(short().into());
                }
                *written = within + n;
                offset += n;
                len -= n;
            }
        }
        if let Some((cur, written)) = current {
            self.end_chunk(cur, written, chunk, size)?;
        }
        self.block_addr(self.next_block)?;
        let at = self.tails_len;
        for addr in &map {
            self.tails.write_all(&addr.to_le_bytes())?;
        }
        self.tails_len += map.len() as u64 * BLOCK_MAP_ENTRY_SIZE;
        self.sparse_files += 1;
        Ok(Data { size, layout: DataLayout::ChunkBased, blkaddr: u32::from(bits), in_tar: false, tail_offset: at })
    }

    /// Pads chunk `c` (`written` bytes into it) to its last block.
    fn end_chunk(&mut self, c: u64, written: u64, chunk: u64, size: u64) -> Result<(), Error> {
        let blocks = chunk.min(size - c * chunk).div_ceil(self.bs);
        io::copy(&mut io::repeat(0).take(blocks * self.bs - written), &mut self.data)?;
        self.next_block += blocks;
        Ok(())
    }

    /// Records `note`, or counts it past [`MAX_NOTES`].
    fn note(&mut self, note: Note) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        } else {
            self.more_notes += 1;
        }
    }

    fn block_addr(&self, block: u64) -> Result<u32, Error> {
        u32::try_from(block).map_err(|_| Error::TooLarge)
    }

    /// Lays out and writes directories, the metadata area and the
    /// superblock (and device table: `consumed` bytes of the tar).
    ///
    /// Memory beyond the tree: per node its place in the order, link
    /// count and metadata offset; per directory a [`DirPlan`]; the entries
    /// of one directory at a time (laid out once for its size, again when
    /// written). Other inodes' plans are made again when needed. The
    /// metadata area is written as a stream in inode order (offsets only
    /// grow along `order`), each tail or block map copied from the tails
    /// file when its inode is written.
    fn finish(mut self, out: &File, share_xattrs: bool, consumed: u64) -> Result<Summary, Error> {
        let bs = self.bs;
        self.data.flush()?;
        self.tails.flush()?;
        let tails = self.tails.into_inner().map_err(|e| e.into_error())?;
        let tree = self.tree;
        let (notes, more_notes) = (self.notes, self.more_notes);
        // Inode numbers are 32-bit, so node ids are kept as `u32` below.
        if u32::try_from(tree.nodes.len()).is_err() {
            return Err(Error::TooLarge);
        }

        // Reachable inodes in depth-first order (root first), the names
        // reaching each node (0: unreachable), and the directories in that
        // order, with their parents.
        let mut order: Vec<u32> = Vec::with_capacity(tree.nodes.len());
        let mut links = vec![0u32; tree.nodes.len()];
        let mut dirs: Vec<DirPlan> = Vec::new();
        let mut stack = vec![(ROOT, ROOT)];
        links[ROOT] = 1;
        while let Some((id, parent)) = stack.pop() {
            order.push(id as u32);
            if let Kind::Dir(children) = &tree.nodes[id].kind {
                dirs.push(DirPlan { parent, nlink: 0, plan: Plan::NONE });
                for child in children.ids().rev() {
                    links[child] = links[child].saturating_add(1);
                    if links[child] == 1 {
                        stack.push((child, id));
                    }
                }
            }
        }
        drop(stack);
        let dir_nodes = || {
            order.iter().filter_map(|&id| match &tree.nodes[id as usize].kind {
                Kind::Dir(children) => Some((id as usize, children)),
                _ => None,
            })
        };

        // The most common time becomes the build time, which every compact
        // inode shares.
        let build_time = most_common(order.iter().map(|&id| {
            let meta = &tree.nodes[id as usize].meta;
            (meta.mtime, meta.mtime_nsec)
        }));

        // Xattrs several inodes carry go to the shared area. Inodes only
        // get smaller for it, so the inline tails chosen while streaming
        // (with every xattr inline) still fit.
        let shared = if share_xattrs {
            Shared::new(order.iter().map(|&id| &tree.nodes[id as usize].xattrs))
        } else {
            Shared::default()
        };

        // Directory blocks go after the streamed data. A directory's link
        // count: 2 and its subdirectories.
        let mut next_block = self.next_block;
        for ((id, children), dir) in dir_nodes().zip(&mut dirs) {
            let subdirs = children.ids().filter(|&c| matches!(tree.nodes[c].kind, Kind::Dir(_))).count();
            dir.nlink = u32::try_from(subdirs).unwrap_or(u32::MAX).saturating_add(2);
            let size = dir_layout(children, id, dir.parent, bs).size();
            let tail = size % bs;
            let inline = tail > 0 && INODE_SIZE + shared.body_size(&tree.nodes[id].xattrs) + tail <= bs;
            let in_blocks = if inline { size - tail } else { size };
            let blocks = in_blocks.div_ceil(bs);
            let blkaddr = if blocks > 0 { u32::try_from(next_block).map_err(|_| Error::TooLarge)? } else { 0 };
            next_block += blocks;
            let layout = if inline { DataLayout::FlatInline } else { DataLayout::FlatPlain };
            dir.plan = Plan { layout, size, i_u: blkaddr, inline: if inline { tail } else { 0 } };
        }
        // The shared xattr area: whole blocks between the directory blocks
        // and the metadata area.
        let xattr_blkaddr = if shared.len() > 0 { next_block } else { 0 };
        next_block += (shared.bytes().len() as u64).div_ceil(bs);
        let meta_blkaddr = next_block;

        // Each inode in `order`, with its plan and (for a directory) its
        // `DirPlan`.
        let inodes = || {
            let (nodes, shared, links) = (&tree.nodes, &shared, &links);
            let mut dir_plans = dirs.iter();
            order.iter().enumerate().map(move |(pos, &id)| {
                let id = id as usize;
                let node = &nodes[id];
                let (plan, nlink, dir) = match &node.kind {
                    Kind::Dir(_) => {
                        let dir = dir_plans.next().expect("a plan for every directory");
                        (dir.plan, dir.nlink, Some(dir))
                    }
                    kind => (data_plan(kind, &node.xattrs, shared, bs), links[id], None),
                };
                let inode = Inode {
                    layout: plan.layout,
                    xattr_icount: shared.icount(&node.xattrs),
                    mode: node.meta.mode,
                    size: plan.size,
                    i_u: plan.i_u,
                    ino: pos as u32 + 1,
                    uid: node.meta.uid,
                    gid: node.meta.gid,
                    mtime: node.meta.mtime,
                    mtime_nsec: node.meta.mtime_nsec,
                    nlink,
                };
                (id, inode, plan, dir)
            })
        };
        let inode_size = |inode: &Inode| if inode.fits_compact(build_time) { COMPACT_INODE_SIZE } else { INODE_SIZE };

        // The metadata area: each inode at a 32-byte slot; an inode with
        // inline data never crosses a block boundary.
        // Slot 0 stays empty: nid 0 would be inode number 0, which readdir
        // users (ls, glibc) take for a deleted entry.
        let mut offsets = vec![0u64; tree.nodes.len()];
        let mut cursor = SLOT;
        for (id, inode, plan, _) in inodes() {
            let len = inode_size(&inode) + shared.body_size(&tree.nodes[id].xattrs) + plan.inline;
            if len <= bs && cursor % bs + len > bs {
                cursor = cursor.next_multiple_of(bs);
            }
            offsets[id] = cursor;
            cursor = (cursor + len).next_multiple_of(SLOT);
        }
        let nid = |id: NodeId| offsets[id] / SLOT;
        if nid(ROOT) > u16::MAX as u64 {
            return Err(Error::TooLarge);
        }
        let meta_blocks = cursor.div_ceil(bs);
        let total_blocks = u32::try_from(meta_blkaddr + meta_blocks).map_err(|_| Error::TooLarge)?;
        // A tar index: the tar's blocks follow the image's in its block
        // addresses (`mapped_blkaddr`), as in the image and the tar
        // concatenated.
        let device_blocks = if self.device_tag.is_some() { consumed.div_ceil(bs) } else { 0 };
        if u64::from(total_blocks) + device_blocks > u64::from(u32::MAX) {
            return Err(Error::TooLarge);
        }

        // Write the metadata area in order, and each directory's blocks
        // (its tail goes inline).
        let mut file = out;
        file.seek(SeekFrom::Start(meta_blkaddr * bs))?;
        let mut meta = BufWriter::with_capacity(1 << 16, out);
        // Bytes of the metadata area written.
        let mut at = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        for (id, inode, plan, dir) in inodes() {
            let node = &tree.nodes[id];
            write_zeros(&mut meta, offsets[id] - at)?;
            if inode.fits_compact(build_time) {
                meta.write_all(&inode.to_compact())?;
            } else {
                meta.write_all(&inode.to_extended())?;
            }
            let xattrs = shared.body(&node.xattrs);
            meta.write_all(&xattrs)?;
            at = offsets[id] + inode_size(&inode) + xattrs.len() as u64 + plan.inline;
            match (&node.kind, dir) {
                (Kind::Dir(children), Some(dir)) => {
                    let dir = dir_layout(children, id, dir.parent, bs);
                    let mut bytes = dir.to_bytes(&nid, &|child| layout::file_type(tree.nodes[child].meta.mode));
                    let in_blocks = (plan.size - plan.inline) as usize;
                    meta.write_all(&bytes[in_blocks..])?;
                    if in_blocks > 0 {
                        bytes.truncate(in_blocks);
                        bytes.resize(in_blocks.next_multiple_of(bs as usize), 0);
                        out.write_all_at(&bytes, plan.i_u as u64 * bs)?;
                    }
                }
                (Kind::Data(_), _) if plan.inline == 0 => {}
                (Kind::Data(d), _) if d.in_tar => {
                    let chunk_blocks = 1u64 << (d.blkaddr & 0x1f);
                    let count = chunks(d, bs);
                    write_zeros(&mut meta, plan.inline - count * CHUNK_INDEX_SIZE)?;
                    for k in 0..count {
                        // Below 2^32, checked while streaming.
                        let blkaddr = (d.tail_offset + k * chunk_blocks) as u32;
                        meta.write_all(&layout::chunk_index(1, blkaddr))?;
                    }
                }
                // A tail, or a block map.
                (Kind::Data(d), _) => {
                    let (mut from, mut left) = (d.tail_offset, plan.inline);
                    while left > 0 {
                        let piece = &mut buf[..left.min(COPY_BUFFER as u64) as usize];
                        tails.read_exact_at(piece, from)?;
                        meta.write_all(piece)?;
                        from += piece.len() as u64;
                        left -= piece.len() as u64;
                    }
                }
                (Kind::Dir(_) | Kind::Special { .. } | Kind::Whiteout, _) => {}
            }
        }
        write_zeros(&mut meta, meta_blocks * bs - at)?;
        meta.flush()?;
        drop(meta);
        if shared.len() > 0 {
            let mut area = shared.bytes().to_vec();
            area.resize(area.len().next_multiple_of(bs as usize), 0);
            out.write_all_at(&area, xattr_blkaddr * bs)?;
        }

        // The first blocks: the superblock, then the device table.
        let mut head = vec![0u8; (self.reserved * bs) as usize];
        let chunked = self.sparse_files > 0 || self.indexed_files > 0;
        let mut feature_incompat = if chunked { FEATURE_INCOMPAT_CHUNKED_FILE } else { 0 };
        let devt_at = SUPER_OFFSET + SUPER_SIZE;
        if let Some(tag) = &self.device_tag {
            feature_incompat |= FEATURE_INCOMPAT_DEVICE_TABLE;
            let slot = DeviceSlot { tag, blocks: device_blocks as u32, mapped_blkaddr: total_blocks };
            head[devt_at as usize..(devt_at + DEVICE_SLOT_SIZE) as usize].copy_from_slice(&slot.to_bytes());
        }
        let sb = SuperBlock {
            blkszbits: self.bits,
            root_nid: nid(ROOT) as u16,
            build_time: build_time.0,
            build_time_nsec: build_time.1,
            inos: order.len() as u64,
            blocks: total_blocks,
            meta_blkaddr: meta_blkaddr as u32,
            xattr_blkaddr: u32::try_from(xattr_blkaddr).map_err(|_| Error::TooLarge)?,
            feature_incompat,
            extra_devices: u16::from(self.device_tag.is_some()),
            devt_slotoff: if self.device_tag.is_some() { (devt_at / DEVICE_SLOT_SIZE) as u16 } else { 0 },
        };
        head[SUPER_OFFSET as usize..(SUPER_OFFSET + SUPER_SIZE) as usize].copy_from_slice(&sb.to_bytes());
        out.write_all_at(&head, 0)?;
        let bytes = total_blocks as u64 * bs;
        out.set_len(bytes)?;
        Ok(Summary {
            inodes: order.len() as u64,
            bytes,
            entries: self.entries,
            file_bytes: self.file_bytes,
            notes,
            more_notes,
            device_blocks,
        })
    }
}

/// The entries of directory `id` (child of `parent`): `.`, `..` and its
/// children, sorted by name, laid out in blocks of `bs` bytes.
fn dir_layout(children: &Children, id: NodeId, parent: NodeId, bs: u64) -> DirLayout<'_> {
    let children = children.iter();
    let mut entries: Vec<(&[u8], NodeId)> = Vec::with_capacity(children.len() + 2);
    entries.push((b".", id));
    entries.push((b"..", parent));
    entries.extend(children);
    entries.sort_by(|a, b| a.0.cmp(b.0));
    DirLayout::new(entries, bs)
}

/// Bytes of tails and block maps copied at a time into the metadata area.
const COPY_BUFFER: usize = 64 << 10;

/// Writes `n` zero bytes.
fn write_zeros(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// How the data of a node that is not a directory is laid out.
fn data_plan(kind: &Kind, xattrs: &Xattrs, shared: &Shared, bs: u64) -> Plan {
    match kind {
        Kind::Data(d) => Plan {
            layout: d.layout,
            size: d.size,
            i_u: d.blkaddr,
            inline: match d.layout {
                DataLayout::FlatInline => d.size % bs,
                // 8-byte aligned after the inode (32 or 64 bytes) and
                // its xattrs (a multiple of 4 bytes).
                DataLayout::ChunkBased if d.in_tar => {
                    shared.body_size(xattrs) % CHUNK_INDEX_SIZE + chunks(d, bs) * CHUNK_INDEX_SIZE
                }
                DataLayout::ChunkBased => chunks(d, bs) * BLOCK_MAP_ENTRY_SIZE,
                DataLayout::FlatPlain => 0,
            },
        },
        Kind::Special { rdev } => Plan { i_u: *rdev, ..Plan::NONE },
        Kind::Dir(_) | Kind::Whiteout => Plan::NONE,
    }
}

/// A directory, in the order of the inodes.
struct DirPlan {
    parent: NodeId,
    nlink: u32,
    plan: Plan,
}

/// How an inode's data is laid out.
#[derive(Clone, Copy)]
struct Plan {
    layout: DataLayout,
    size: u64,
    /// Block address, chunk format, or rdev.
    i_u: u32,
    /// Bytes stored after the inode and its xattrs: the inline tail, or
    /// the block map of a chunk-based file.
    inline: u64,
}

impl Plan {
    /// No data.
    const NONE: Plan = Plan { layout: DataLayout::FlatPlain, size: 0, i_u: 0, inline: 0 };
}

/// How many chunks a chunk-based file has (chunk indexes of a tar index's
/// file, or entries of a sparse file's block map).
fn chunks(d: &Data, bs: u64) -> u64 {
    d.size.div_ceil(bs << (d.blkaddr & 0x1f))
}

/// The most frequent value (the smallest among equals), or the default.
fn most_common<T: Ord + Copy + Default>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    values.sort_unstable();
    let mut best: Option<(T, usize)> = None;
    for run in values.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, count)| run.len() > count) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(v, _)| v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 files sharing a capability and an ACL, each with a unique
    /// xattr too; 20 opaque directories.
    fn layer() -> Vec<u8> {
        let cap: &[u8] = &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm) in [(1u16, 6u16), (4, 4), (0x20, 4), (2, 7), (0x10, 7)] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&(if tag == 2 { 1000u32 } else { u32::MAX }).to_le_bytes());
        }
        let header = |size: u64, mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            h
        };
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..300 {
            let unique = format!("{i}");
            b.append_pax_extensions([
                ("SCHILY.xattr.security.capability", cap),
                ("SCHILY.xattr.system.posix_acl_access", &acl[..]),
                ("SCHILY.xattr.user.n", unique.as_bytes()),
            ])
            .unwrap();
            b.append_data(&mut header(3, 0o755), format!("bin/f{i}"), &b"abc"[..]).unwrap();
        }
        for i in 0..20 {
            b.append_data(&mut header(0, 0o644), format!("d{i}/.wh..wh..opq"), &b""[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn image(share: bool) -> Vec<u8> {
        let mut out = tempfile::tempfile().unwrap();
        write_with(&layer()[..], &mut out, &Options::default(), share).unwrap();
        let mut bytes = Vec::new();
        out.seek(SeekFrom::Start(0)).unwrap();
        out.read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn sb_u32(image: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(image[1024 + at..1024 + at + 4].try_into().unwrap())
    }

    #[test]
    fn most_common_takes_the_smallest_of_a_tie() {
        assert_eq!(most_common([3, 1, 3, 1, 2].into_iter()), 1);
        assert_eq!(most_common([5, 4, 5].into_iter()), 5);
        assert_eq!(most_common(std::iter::empty::<(u64, u32)>()), (0, 0));
    }

    #[test]
    fn chunk_sizes_follow_the_data() {
        // Small file: 4 KiB chunks, only the blocks with data.
        assert_eq!(chunk_bits(10 << 20, &[(0, 1), (5 << 20, 4)], 4096), (0, 2560 * 4 + 2 * 4096));
        // 1 TiB: at most 2^20 chunks, the cheapest of map plus data.
        let (bits, stored) = chunk_bits(1 << 40, &[(0, 1), ((1 << 40) - 1, 1)], 4096);
        assert!((1 << 40) >> (12 + bits) <= MAX_CHUNKS);
        assert_eq!(stored, ((1 << 40) >> (12 + bits)) * 4 + 2 * (4096 << bits));
        assert!(stored < 8 << 20, "{stored}");
        // A segment across two 4 KiB chunks: one 8 KiB chunk is cheaper
        // (a map of 2 entries, not 3).
        assert_eq!(chunk_bits(3 * 4096, &[(4000, 200)], 4096), (1, 2 * 4 + 8192));
        assert_eq!(chunk_bits(3 * 4096, &[(4000, 200), (4300, 10)], 4096), (1, 2 * 4 + 8192));
        // 512-byte blocks (a tar index): the same file in 512-byte chunks
        // stores 2 blocks of data and a map of 24 entries.
        assert_eq!(chunk_bits(3 * 4096, &[(4000, 200)], 512), (0, 24 * 4 + 2 * 512));
        assert!(chunk_bits(1 << 44, &[(0, 1)], 512).0 >= 15, "at most 2^20 chunks of 2^(9 + bits) bytes");
    }

    #[test]
    fn shared_xattrs_make_a_smaller_image() {
        let (shared, inline) = (image(true), image(false));
        assert_eq!(sb_u32(&inline, 44), 0, "no shared area without sharing");
        let xattr_blkaddr = sb_u32(&shared, 44);
        let meta_blkaddr = sb_u32(&shared, 40);
        assert!(xattr_blkaddr > 0 && xattr_blkaddr + 1 == meta_blkaddr, "{xattr_blkaddr} {meta_blkaddr}");
        let area = &shared[xattr_blkaddr as usize * 4096..][..4096];
        // Sorted by index: the ACL (2), the opaque marker (4), the capability (6).
        assert_eq!(&area[..4], &[0, 2, 44, 0]);
        assert!(shared.len() + 4 * 4096 < inline.len(), "{} vs {}", shared.len(), inline.len());
        assert_eq!(shared, image(true), "deterministic");
    }
}
