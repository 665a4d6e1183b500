//! The superblock (`struct erofs_super_block` at byte 1024): magic,
//! checksum, block size, feature flags, where the metadata is, and the
//! device table (`struct erofs_deviceslot`s) of an image whose data is
//! partly on extra devices (a tar index).

use super::image::{Fault, Image, bad, u16_at, u32_at};
use std::io::{Read, Seek};

const SUPER_OFFSET: u64 = 1024;
/// Bytes of the superblock read (the fixed part).
const SUPER_SIZE: u64 = 128;
const MAGIC: u32 = 0xE0F5_E1E2;
/// `EROFS_FEATURE_COMPAT_SB_CHKSUM`.
const COMPAT_SB_CHKSUM: u32 = 0x1;
/// `EROFS_FEATURE_INCOMPAT_ZERO_PADDING` (meaningful for compressed data
/// only; mkfs.erofs sets it on every image), `CHUNKED_FILE` and
/// `DEVICE_TABLE`.
const INCOMPAT_ZERO_PADDING: u32 = 0x1;
pub const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
pub const INCOMPAT_DEVICE_TABLE: u32 = 0x8;
const INCOMPAT_KNOWN: u32 = INCOMPAT_ZERO_PADDING | INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE;
/// `sizeof(struct erofs_deviceslot)`; `devt_slotoff` counts in these.
const DEVICE_SLOT_SIZE: u64 = 128;

/// One extra device of an image (an `erofs_deviceslot`), as [`devices`]
/// lists them.
///
/// [`devices`]: crate::devices
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The slot's tag (up to its first NUL; msb writes the blob's digest).
    pub tag: String,
    /// Blocks of the device the image refers to (`blocks`).
    pub blocks: u64,
    /// Where the device's blocks begin among the image's block addresses
    /// (`mapped_blkaddr`; 0: reached only through chunk indexes naming the
    /// device).
    pub mapped_blkaddr: u64,
    /// The image's block size, the unit of both.
    pub block_size: u64,
}

/// What the rest of the check needs.
pub struct SuperBlock {
    pub blkszbits: u8,
    pub root_nid: u64,
    /// The superblock's `blocks` (mkfs.erofs counts the devices' blocks in
    /// it for a tar index, msb does not).
    pub blocks: u32,
    /// Blocks of the image itself: `blocks`, or with extra devices at most
    /// what the image holds.
    pub image_blocks: u64,
    /// The extra devices (the device table).
    pub devices: Vec<Device>,
    /// The block ranges of the mapped devices: (first block, end, device
    /// number from 1), sorted and apart, for a binary search (a hostile
    /// table may hold 65,535 devices).
    mapped: Vec<(u64, u64, usize)>,
    pub meta_blkaddr: u32,
    pub xattr_blkaddr: u32,
    pub feature_incompat: u32,
}

impl SuperBlock {
    pub fn block_size(&self) -> u64 {
        1 << self.blkszbits
    }

    /// Bytes of the image itself.
    pub fn end(&self) -> u64 {
        self.image_blocks << self.blkszbits
    }

    /// `device_id_mask` of a chunk index: as many low bits as number the
    /// devices (none without devices, as the kernel's).
    pub fn device_id_mask(&self) -> u16 {
        match self.devices.len() {
            0 => 0,
            n => ((n as u32 + 1).next_power_of_two() - 1) as u16,
        }
    }

    /// Checks that `count` blocks from `blkaddr` hold data: inside the
    /// image past the superblock, or (when `on_device`, for a regular
    /// file's data) inside one device's range of block addresses
    /// (`mapped_blkaddr`).
    pub fn data_blocks(&self, blkaddr: u64, count: u64, what: &str, on_device: bool) -> Result<(), Fault> {
        if count == 0 {
            return Ok(());
        }
        let Some(end) = blkaddr.checked_add(count) else {
            return bad(format!("{what}: blocks {blkaddr}..+{count} past 2^64"));
        };
        let at = self.mapped.partition_point(|r| r.0 <= blkaddr);
        if let Some(&(start, range_end, id)) = at.checked_sub(1).map(|i| &self.mapped[i])
            && blkaddr < range_end
        {
            if !on_device {
                return Err(Fault::Unsupported(format!(
                    "{what} at block {blkaddr}, on extra device {id} (only regular files' data is read there)"
                )));
            }
            if end > range_end {
                return bad(format!(
                    "{what}: blocks {blkaddr}..+{count} past the {} blocks of device {id} (mapped at block {start})",
                    range_end - start
                ));
            }
            return Ok(());
        }
        if (blkaddr << self.blkszbits) < SUPER_OFFSET + SUPER_SIZE {
            return bad(format!("{what} at block {blkaddr}, over the superblock"));
        }
        if end > self.image_blocks {
            return bad(format!("{what}: blocks {blkaddr}..+{count} past the image's {} blocks", self.image_blocks));
        }
        Ok(())
    }

    /// Checks that `count` blocks from `blkaddr` of device `id` (1 for the
    /// first extra device, as a chunk index names it) are inside it.
    pub fn device_blocks(&self, id: u16, blkaddr: u64, count: u64, what: &str) -> Result<(), Fault> {
        let Some(d) = self.devices.get(usize::from(id).wrapping_sub(1)) else {
            return bad(format!("{what} on device {id}, but the image has {} extra devices", self.devices.len()));
        };
        match blkaddr.checked_add(count) {
            Some(end) if end <= d.blocks => Ok(()),
            _ => bad(format!("{what}: blocks {blkaddr}..+{count} of device {id}, past its {} blocks", d.blocks)),
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
        // The kernel's and mkfs.erofs's length: the rest of the block, or
        // a whole block's worth from byte 1024 for blocks up to 1 KiB.
        let bs = 1u64 << blkszbits;
        let len = if bs > SUPER_OFFSET { bs - SUPER_OFFSET } else { bs };
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
    if b[90] != 0 {
        return Err(Fault::Unsupported(format!("directory blocks of 2^{} file system blocks", b[90])));
    }
    // Without the feature, the kernel and erofs-utils ignore the count.
    let extra_devices = if incompat & INCOMPAT_DEVICE_TABLE != 0 { u16_at(&b, 86) } else { 0 };
    let devices = read_devices(img, blkszbits, extra_devices, u16_at(&b, 88))?;
    let blocks = u32_at(&b, 36);
    let in_image = img.size >> blkszbits;
    // mkfs.erofs counts the devices' blocks in `blocks` (msb does not):
    // the image ends where the first mapped device begins, or at its size.
    let mut image_blocks = u64::from(blocks);
    if let Some(first) = devices.iter().map(|d| d.mapped_blkaddr).filter(|&a| a != 0).min() {
        image_blocks = image_blocks.min(first);
    }
    if !devices.is_empty()
        && image_blocks > in_image
        && u64::from(blocks) <= in_image + devices.iter().map(|d| d.blocks).sum::<u64>()
    {
        image_blocks = in_image;
    }
    if image_blocks > in_image {
        return bad(format!("{blocks} blocks, but the image has only {} bytes", img.size));
    }
    // Mapped devices take block addresses past the image's, apart.
    let mut mapped: Vec<(u64, u64, usize)> = (devices.iter().enumerate())
        .filter(|(_, d)| d.mapped_blkaddr != 0)
        .map(|(i, d)| (d.mapped_blkaddr, d.mapped_blkaddr + d.blocks, i + 1))
        .collect();
    mapped.sort();
    let mut last_end = image_blocks;
    for &(start, end, id) in &mapped {
        if start < last_end {
            return bad(format!(
                "device {id} mapped at blocks {start}..{end}, over the image's blocks or another device's (up to {last_end})"
            ));
        }
        last_end = end;
    }
    if last_end > 1 << 32 {
        return bad(format!("devices mapped past block 2^32 (up to {last_end})"));
    }
    let sb = SuperBlock {
        blkszbits,
        root_nid: u64::from(u16_at(&b, 14)),
        blocks,
        image_blocks,
        devices,
        mapped,
        meta_blkaddr: u32_at(&b, 40),
        xattr_blkaddr: u32_at(&b, 44),
        feature_incompat: incompat,
    };
    if u64::from(sb.meta_blkaddr) >= image_blocks {
        return bad(format!("metadata area at block {}, past the image's {image_blocks} blocks", sb.meta_blkaddr));
    }
    if u64::from(sb.xattr_blkaddr) >= image_blocks {
        return bad(format!("shared xattr area at block {}, past the image's {image_blocks} blocks", sb.xattr_blkaddr));
    }
    Ok(sb)
}

/// The `count` slots of the device table at `slotoff` * 128.
fn read_devices<R: Read + Seek>(
    img: &mut Image<'_, R>,
    blkszbits: u8,
    count: u16,
    slotoff: u16,
) -> Result<Vec<Device>, Fault> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let at = u64::from(slotoff) * DEVICE_SLOT_SIZE;
    if at < SUPER_OFFSET + SUPER_SIZE {
        return bad(format!("device table at byte {at}, over the superblock"));
    }
    // Checked against the image's size before it is allocated.
    let table = img.read(at, u64::from(count) * DEVICE_SLOT_SIZE, "the device table")?;
    let mut devices = Vec::with_capacity(usize::from(count));
    for (i, slot) in table.chunks_exact(DEVICE_SLOT_SIZE as usize).enumerate() {
        if slot[72..78].iter().any(|&b| b != 0) {
            return Err(Fault::Unsupported(format!("device {}: block counts or addresses past 2^32", i + 1)));
        }
        let tag = &slot[..64];
        let tag = &tag[..tag.iter().position(|&b| b == 0).unwrap_or(tag.len())];
        devices.push(Device {
            tag: String::from_utf8_lossy(tag).into_owned(),
            blocks: u64::from(u32_at(slot, 64)),
            mapped_blkaddr: u64::from(u32_at(slot, 68)),
            block_size: 1 << blkszbits,
        });
    }
    Ok(devices)
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
