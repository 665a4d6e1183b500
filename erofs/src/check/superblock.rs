//! The superblock (`struct erofs_super_block` at byte 1024): magic,
//! checksum, block size, feature flags, and where the metadata is.

use super::image::{Fault, Image, bad, u16_at, u32_at};
use std::io::{Read, Seek};

const SUPER_OFFSET: u64 = 1024;
/// Bytes of the superblock read (the fixed part).
const SUPER_SIZE: u64 = 128;
const MAGIC: u32 = 0xE0F5_E1E2;
/// `EROFS_FEATURE_COMPAT_SB_CHKSUM`.
const COMPAT_SB_CHKSUM: u32 = 0x1;
/// `EROFS_FEATURE_INCOMPAT_ZERO_PADDING` (meaningful for compressed data
/// only; mkfs.erofs sets it on every image) and `CHUNKED_FILE`.
const INCOMPAT_ZERO_PADDING: u32 = 0x1;
pub const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
const INCOMPAT_KNOWN: u32 = INCOMPAT_ZERO_PADDING | INCOMPAT_CHUNKED_FILE;

/// What the rest of the check needs.
pub struct SuperBlock {
    pub blkszbits: u8,
    pub root_nid: u64,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    pub xattr_blkaddr: u32,
    pub feature_incompat: u32,
}

impl SuperBlock {
    pub fn block_size(&self) -> u64 {
        1 << self.blkszbits
    }

    /// Bytes the superblock says the image has.
    pub fn end(&self) -> u64 {
        u64::from(self.blocks) << self.blkszbits
    }

    /// Checks that `count` blocks from `blkaddr` hold data: inside the
    /// image, past the superblock.
    pub fn data_blocks(&self, blkaddr: u64, count: u64, what: &str) -> Result<(), Fault> {
        if count == 0 {
            return Ok(());
        }
        if (blkaddr << self.blkszbits) < SUPER_OFFSET + SUPER_SIZE {
            return bad(format!("{what} at block {blkaddr}, over the superblock"));
        }
        match blkaddr.checked_add(count) {
            Some(end) if end <= u64::from(self.blocks) => Ok(()),
            _ => bad(format!("{what}: blocks {blkaddr}..+{count} past the image's {} blocks", self.blocks)),
        }
    }
}

pub fn read<R: Read + Seek>(img: &mut Image<'_, R>) -> Result<SuperBlock, Fault> {
    if img.size < SUPER_OFFSET + SUPER_SIZE {
        return bad(format!("the image is {} bytes, too short for a superblock", img.size));
    }
    let b = img.read(SUPER_OFFSET, SUPER_SIZE, "the superblock")?;
    let magic = u32_at(&b, 0);
    if magic != MAGIC {
        return bad(format!("magic {magic:#010x} is not EROFS's {MAGIC:#010x}"));
    }
    let blkszbits = b[12];
    if !(9..=16).contains(&blkszbits) {
        return bad(format!("block size 2^{blkszbits} (EROFS has 512 bytes to 64 KiB)"));
    }
    let compat = u32_at(&b, 8);
    if compat & COMPAT_SB_CHKSUM != 0 {
        let len = (1u64 << blkszbits).max(SUPER_OFFSET + SUPER_SIZE) - SUPER_OFFSET;
        let mut block = img.read(SUPER_OFFSET, len, "the superblock's checksummed bytes")?;
        let expected = u32_at(&block, 4);
        block[4..8].fill(0);
        let crc = crc32c(!0, &block);
        if crc != expected {
            return bad(format!("checksum {expected:#010x}, but the superblock's is {crc:#010x}"));
        }
    }
    let incompat = u32_at(&b, 80);
    if incompat & !INCOMPAT_KNOWN != 0 {
        return Err(Fault::Unsupported(format!(
            "feature_incompat {:#x} (compression, devices, xattr prefixes, 48-bit, ...; read here: {INCOMPAT_KNOWN:#x})",
            incompat & !INCOMPAT_KNOWN
        )));
    }
    if b[13] != 0 {
        return Err(Fault::Unsupported(format!("superblock extension slots ({})", b[13])));
    }
    if u16_at(&b, 86) != 0 {
        return Err(Fault::Unsupported("extra devices".into()));
    }
    if b[90] != 0 {
        return Err(Fault::Unsupported(format!("directory blocks of 2^{} file system blocks", b[90])));
    }
    let sb = SuperBlock {
        blkszbits,
        root_nid: u64::from(u16_at(&b, 14)),
        blocks: u32_at(&b, 36),
        meta_blkaddr: u32_at(&b, 40),
        xattr_blkaddr: u32_at(&b, 44),
        feature_incompat: incompat,
    };
    if sb.end() > img.size {
        return bad(format!("{} blocks, but the image has only {} bytes", sb.blocks, img.size));
    }
    if sb.meta_blkaddr >= sb.blocks {
        return bad(format!("metadata area at block {}, past the image's {} blocks", sb.meta_blkaddr, sb.blocks));
    }
    if sb.xattr_blkaddr >= sb.blocks {
        return bad(format!("shared xattr area at block {}, past the image's {} blocks", sb.xattr_blkaddr, sb.blocks));
    }
    Ok(sb)
}

/// CRC-32C (Castagnoli), without the final inversion, as the kernel's
/// `crc32c()` that EROFS uses.
pub fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        // The standard check value, with the final inversion applied.
        assert_eq!(!super::crc32c(!0, b"123456789"), 0xE306_9283);
    }
}
