//! One inode: its on-disk form (compact or extended), its xattrs (shared
//! and inline), and where its data is (flat-plain, flat-inline or
//! chunk-based), each checked against the image.

use super::image::{Fault, Image, bad, u16_at, u32_at, u64_at};
use super::superblock::{INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE, SuperBlock};
use std::io::{Read, Seek};

const SLOT: u64 = 32;
const FLAT_PLAIN: u16 = 0;
const FLAT_INLINE: u16 = 2;
const CHUNK_BASED: u16 = 4;
const NULL_ADDR: u32 = u32::MAX;
/// `EROFS_CHUNK_FORMAT_INDEXES` and the chunk-size bits of `i_u`.
const CHUNK_INDEXES: u32 = 0x20;
const CHUNK_BLKBITS_MASK: u32 = 0x1f;
/// Longest symlink target.
const MAX_SYMLINK: u64 = 4095;
/// Chunk map entries read at once.
const MAP_BATCH: u64 = 8192;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Dir,
    File,
    Symlink,
    Special,
}

/// Where an inode's data is.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Blocks from this address.
    Plain(u64),
    /// Blocks from this address, the last partial block at this byte offset.
    Inline(u64, u64),
    /// Chunks of 2^bits bytes, the map at this byte offset (8-byte indexes
    /// or 4-byte block addresses).
    Chunks { bits: u8, map: u64, indexes: bool },
}

/// A checked inode.
#[derive(Debug, Clone)]
pub struct Inode {
    pub mode: u32,
    pub kind: Type,
    pub size: u64,
    pub nlink: u32,
    /// Xattrs it carries (shared and inline).
    pub xattrs: u64,
    layout: Layout,
}

/// Reads and checks the inode `nid`.
pub fn read<R: Read + Seek>(img: &mut Image<'_, R>, sb: &SuperBlock, nid: u64) -> Result<Inode, Fault> {
    let bs = sb.block_size();
    let at = nid
        .checked_mul(SLOT)
        .and_then(|o| o.checked_add(u64::from(sb.meta_blkaddr) << sb.blkszbits))
        .filter(|&o| o.checked_add(SLOT).is_some_and(|end| end <= sb.end()))
        .map_or_else(|| bad(format!("nid {nid} is past the image")), Ok)?;
    let head = img.read(at, SLOT, "the inode")?;
    let format = u16_at(&head, 0);
    if format & !0xf != 0 {
        return bad(format!("unknown i_format bits {format:#x}"));
    }
    let extended = format & 1 != 0;
    let layout = (format >> 1) & 0x7;
    let isize = if extended { 64 } else { 32 };
    let b = if extended { img.read(at, 64, "the extended inode")? } else { head };
    let xattr_icount = u16_at(&b, 2);
    let mode = u32::from(u16_at(&b, 4));
    let (size, i_u, nlink) = if extended {
        (u64_at(&b, 8), u32_at(&b, 16), u32_at(&b, 44))
    } else {
        (u64::from(u32_at(&b, 8)), u32_at(&b, 16), u32::from(u16_at(&b, 6)))
    };
    let kind = match crate::layout::file_type(mode) {
        1 => Type::File,
        2 => Type::Dir,
        7 => Type::Symlink,
        3..=6 => Type::Special,
        _ => return bad(format!("mode {mode:o} is no file type")),
    };
    if nlink == 0 {
        return bad("link count 0");
    }
    let xattr_isize = if xattr_icount == 0 { 0 } else { 12 + 4 * (u64::from(xattr_icount) - 1) };
    let xattrs = read_xattrs(img, sb, at + isize, xattr_isize)?;
    let data_at = at + isize + xattr_isize;
    let layout = match layout {
        FLAT_PLAIN => Layout::Plain(u64::from(i_u)),
        FLAT_INLINE => Layout::Inline(u64::from(i_u), data_at),
        CHUNK_BASED => {
            // mkfs.erofs --tar=i (1.8) sets only the device table feature
            // (Linux 5.16+, after chunk-based files in 5.15); the kernel
            // checks neither.
            if sb.feature_incompat & (INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE) == 0 {
                return bad("a chunk-based inode, but the superblock lacks the chunked-file feature");
            }
            if i_u & !(CHUNK_INDEXES | CHUNK_BLKBITS_MASK) != 0 {
                return Err(Fault::Unsupported(format!("chunk format {i_u:#x}")));
            }
            let bits = sb.blkszbits + (i_u & CHUNK_BLKBITS_MASK) as u8;
            if bits > 47 {
                return bad(format!("chunks of 2^{bits} bytes"));
            }
            let indexes = i_u & CHUNK_INDEXES != 0;
            Layout::Chunks { bits, map: data_at.next_multiple_of(if indexes { 8 } else { 4 }), indexes }
        }
        1 | 3 => return Err(Fault::Unsupported("compressed data".into())),
        other => return bad(format!("unknown data layout {other}")),
    };
    let inode = Inode { mode, kind, size, nlink, xattrs, layout };
    match kind {
        Type::Special if size != 0 => return bad(format!("a device, FIFO or socket of {size} bytes")),
        Type::Special => return Ok(inode),
        Type::Symlink if size == 0 || size > MAX_SYMLINK => {
            return bad(format!("a symlink of {size} bytes (1 to {MAX_SYMLINK})"));
        }
        Type::Dir if size == 0 => return bad("an empty directory (no . and ..)"),
        _ => {}
    }
    // A regular file's data may be on an extra device (a tar index);
    // directories and symlinks are read from the image.
    let on_device = kind == Type::File;
    match layout {
        Layout::Plain(blkaddr) => sb.data_blocks(blkaddr, size.div_ceil(bs), "data", on_device)?,
        Layout::Inline(blkaddr, tail_at) => {
            let blocks = size.div_ceil(bs).saturating_sub(1);
            sb.data_blocks(blkaddr, blocks, "data", on_device)?;
            let tail = size - blocks * bs;
            if tail_at % bs + tail > bs {
                return bad(format!("inline data of {tail} bytes crosses a block boundary"));
            }
            if tail_at + tail > sb.end() {
                return bad("inline data past the end of the image");
            }
        }
        Layout::Chunks { bits, map, indexes } => {
            let chunk = 1u64 << bits;
            let count = size.div_ceil(chunk);
            let unit = if indexes { 8 } else { 4 };
            if count.checked_mul(unit).and_then(|n| n.checked_add(map)).is_none_or(|end| end > sb.end()) {
                return bad(format!("a map of {count} chunks past the end of the image"));
            }
            let mut first = 0;
            while first < count {
                let n = MAP_BATCH.min(count - first);
                let entries = img.read(map + first * unit, n * unit, "the chunk map")?;
                for (i, e) in entries.chunks_exact(unit as usize).enumerate() {
                    let c = first + i as u64;
                    let len = chunk.min(size - c * chunk);
                    let what = format!("chunk {c}");
                    match chunk_addr(e, indexes, sb)? {
                        None => {}
                        Some((0, addr)) => sb.data_blocks(addr, len.div_ceil(bs), &what, on_device)?,
                        Some((_, _)) if !on_device => {
                            return Err(Fault::Unsupported(format!(
                                "{what} on an extra device (only regular files' data is read there)"
                            )));
                        }
                        Some((device, addr)) => sb.device_blocks(device, addr, len.div_ceil(bs), &what)?,
                    }
                }
                first += n;
            }
        }
    }
    Ok(inode)
}

/// The device (0: the image's block addresses; else an extra device, by
/// a chunk index's `device_id` as the kernel masks it) and block address
/// of a chunk map entry, `None` for a hole.
fn chunk_addr(e: &[u8], indexes: bool, sb: &SuperBlock) -> Result<Option<(u16, u64)>, Fault> {
    let (device, addr) = if indexes {
        if u16_at(e, 0) != 0 {
            return Err(Fault::Unsupported("chunk addresses past 2^32 blocks (48-bit layout)".into()));
        }
        (u16_at(e, 2) & sb.device_id_mask(), u32_at(e, 4))
    } else {
        (0, u32_at(e, 0))
    };
    Ok((addr != NULL_ADDR).then_some((device, u64::from(addr))))
}

/// Checks the xattr body of `isize` bytes at `at`; returns how many
/// xattrs it holds.
fn read_xattrs<R: Read + Seek>(img: &mut Image<'_, R>, sb: &SuperBlock, at: u64, isize: u64) -> Result<u64, Fault> {
    if isize == 0 {
        return Ok(0);
    }
    let body = img.read(at, isize, "the xattrs")?;
    let shared = u64::from(body[4]);
    if 12 + 4 * shared > isize {
        return bad(format!("{shared} shared xattr ids do not fit in {isize} bytes of xattrs"));
    }
    for i in 0..shared as usize {
        let id = u64::from(u32_at(&body, 12 + 4 * i));
        if sb.xattr_blkaddr == 0 {
            return bad(format!("shared xattr id {id}, but the image has no shared xattr area"));
        }
        let entry_at = (u64::from(sb.xattr_blkaddr) << sb.blkszbits) + 4 * id;
        let head = img.read(entry_at, 4, &format!("shared xattr {id}"))?;
        let len = entry(&head)?;
        if entry_at + len > sb.end() {
            return bad(format!("shared xattr {id} is past the end of the image"));
        }
    }
    let mut pos = 12 + 4 * shared as usize;
    let mut count = shared;
    while pos < body.len() {
        if pos + 4 > body.len() {
            return bad("a partial xattr entry at the end of the xattrs");
        }
        let len = entry(&body[pos..pos + 4])? as usize;
        if pos + len > body.len() {
            return bad(format!("an xattr entry of {len} bytes past the inode's {isize} bytes of xattrs"));
        }
        pos += len;
        count += 1;
    }
    Ok(count)
}

/// Checks an `erofs_xattr_entry` header; returns the entry's size on disk.
fn entry(head: &[u8]) -> Result<u64, Fault> {
    let (name_len, index, value_len) = (u64::from(head[0]), head[1], u64::from(u16_at(head, 2)));
    match index {
        2 | 3 => {}
        1 | 4..=6 if name_len > 0 => {}
        1 | 4..=6 => return bad(format!("an xattr of name index {index} with an empty name")),
        i if i & 0x80 != 0 => return Err(Fault::Unsupported("long xattr name prefixes".into())),
        i => return bad(format!("unknown xattr name index {i}")),
    }
    Ok((4 + name_len + value_len).next_multiple_of(4))
}

impl Inode {
    /// Byte offset in the image of the data at `offset` (which is inside
    /// the inode's size), and how many bytes follow there in one piece (to
    /// the end of its block or the file); `None` in a hole.
    pub fn locate(
        &self,
        sb: &SuperBlock,
        img: &mut Image<'_, impl Read + Seek>,
        offset: u64,
    ) -> Result<Option<(u64, u64)>, Fault> {
        let bs = sb.block_size();
        let block = offset / bs;
        let within = offset % bs;
        let piece = (bs - within).min(self.size - offset);
        Ok(match self.layout {
            Layout::Plain(blkaddr) => Some(((blkaddr + block) * bs + within, piece)),
            Layout::Inline(blkaddr, tail_at) => {
                if block < self.size.div_ceil(bs) - 1 {
                    Some(((blkaddr + block) * bs + within, piece))
                } else {
                    Some((tail_at + within, piece))
                }
            }
            Layout::Chunks { bits, map, indexes } => {
                let c = offset >> bits;
                let unit = if indexes { 8 } else { 4 };
                let e = img.read(map + c * unit, unit, "the chunk map")?;
                // Only directories are read, whose chunks were checked to
                // be in the image (device 0).
                chunk_addr(&e, indexes, sb)?.map(|(_, addr)| ((addr << sb.blkszbits) + (offset - (c << bits)), piece))
            }
        })
    }
}
