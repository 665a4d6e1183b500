//! On-disk structures of EROFS (little-endian), as in the kernel's
//! `fs/erofs/erofs_fs.h`. Only what an uncompressed image needs.

/// log2 of the block size of full images (4 KiB).
pub const FULL_BLOCK_BITS: u8 = 12;
/// log2 of the block size of tar-index images (512 bytes, a tar's block).
pub const TAR_BLOCK_BITS: u8 = 9;
/// Where the superblock starts.
pub const SUPER_OFFSET: u64 = 1024;
/// Size of the superblock's fixed part.
pub const SUPER_SIZE: u64 = 128;
/// Size of an `erofs_deviceslot`; `devt_slotoff` counts in these.
pub const DEVICE_SLOT_SIZE: u64 = 128;
/// Longest device tag (`erofs_deviceslot.tag`).
pub const DEVICE_TAG_MAX: usize = 64;
/// `EROFS_SUPER_MAGIC_V1`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// Inodes are addressed in 32-byte slots.
pub const SLOT: u64 = 32;
/// Size of an extended inode (the most an inode takes).
pub const INODE_SIZE: u64 = 64;
/// Size of a compact inode.
pub const COMPACT_INODE_SIZE: u64 = 32;
/// Size of a directory entry.
pub const DIRENT_SIZE: u64 = 12;
/// Size of the in-inode xattr header.
pub const XATTR_HEADER_SIZE: u64 = 12;

/// Data layouts (`i_format` bits 1..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    /// All data in consecutive blocks.
    FlatPlain = 0,
    /// Full blocks consecutive, the tail right after the inode.
    FlatInline = 2,
    /// `EROFS_INODE_CHUNK_BASED`: the file in chunks of
    /// `2^(blkszbits + bits)` bytes; after the inode and its xattrs, a
    /// block map (one `__le32` block address per chunk, [`NULL_ADDR`] for a
    /// hole; sparse files), or chunk indexes ([`CHUNK_FORMAT_INDEXES`],
    /// 8-byte aligned: a tar index's files, on device 1). `i_u` holds the
    /// chunk format (`bits`, and the indexes flag).
    ChunkBased = 4,
}

/// `EROFS_CHUNK_FORMAT_INDEXES`: the chunks of a chunk-based inode are
/// `erofs_inode_chunk_index`es.
pub const CHUNK_FORMAT_INDEXES: u32 = 0x20;
/// Size of an `erofs_inode_chunk_index`.
pub const CHUNK_INDEX_SIZE: u64 = 8;

/// An `erofs_inode_chunk_index`: `blkaddr` of device `device` (1 for the
/// first extra device; its own block addresses).
pub fn chunk_index(device: u16, blkaddr: u32) -> [u8; CHUNK_INDEX_SIZE as usize] {
    let mut b = [0u8; CHUNK_INDEX_SIZE as usize];
    // 0..2: startblk_hi (48-bit layouts), 0.
    b[2..4].copy_from_slice(&device.to_le_bytes());
    b[4..8].copy_from_slice(&blkaddr.to_le_bytes());
    b
}

/// `EROFS_NULL_ADDR`: a chunk that is a hole.
pub const NULL_ADDR: u32 = u32::MAX;
/// `EROFS_BLOCK_MAP_ENTRY_SIZE`.
pub const BLOCK_MAP_ENTRY_SIZE: u64 = 4;
/// `EROFS_FEATURE_INCOMPAT_CHUNKED_FILE`.
pub const FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// `EROFS_FEATURE_INCOMPAT_DEVICE_TABLE`.
pub const FEATURE_INCOMPAT_DEVICE_TABLE: u32 = 0x8;

/// `EROFS_FT_*` directory entry types.
pub fn file_type(mode: u32) -> u8 {
    match mode & 0o170000 {
        0o100000 => 1,
        0o040000 => 2,
        0o020000 => 3,
        0o060000 => 4,
        0o010000 => 5,
        0o140000 => 6,
        0o120000 => 7,
        _ => 0,
    }
}

/// The superblock's fields that vary.
pub struct SuperBlock {
    /// log2 of the block size.
    pub blkszbits: u8,
    pub root_nid: u16,
    /// The time of every compact inode.
    pub build_time: u64,
    pub build_time_nsec: u32,
    pub inos: u64,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    /// The shared xattr area (0 when there is none).
    pub xattr_blkaddr: u32,
    /// `feature_incompat` ([`FEATURE_INCOMPAT_CHUNKED_FILE`],
    /// [`FEATURE_INCOMPAT_DEVICE_TABLE`] or 0).
    pub feature_incompat: u32,
    /// Devices besides the image, and where their table starts (in
    /// [`DEVICE_SLOT_SIZE`] units from byte 0).
    pub extra_devices: u16,
    pub devt_slotoff: u16,
}

impl SuperBlock {
    /// The 128 bytes at [`SUPER_OFFSET`].
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        // checksum (4..8) and feature_compat (8..12): none.
        b[12] = self.blkszbits;
        b[14..16].copy_from_slice(&self.root_nid.to_le_bytes());
        b[16..24].copy_from_slice(&self.inos.to_le_bytes());
        b[24..32].copy_from_slice(&self.build_time.to_le_bytes());
        b[32..36].copy_from_slice(&self.build_time_nsec.to_le_bytes());
        b[36..40].copy_from_slice(&self.blocks.to_le_bytes());
        b[40..44].copy_from_slice(&self.meta_blkaddr.to_le_bytes());
        b[44..48].copy_from_slice(&self.xattr_blkaddr.to_le_bytes());
        // uuid, volume_name: zero.
        b[80..84].copy_from_slice(&self.feature_incompat.to_le_bytes());
        b[86..88].copy_from_slice(&self.extra_devices.to_le_bytes());
        b[88..90].copy_from_slice(&self.devt_slotoff.to_le_bytes());
        b
    }
}

/// An `erofs_deviceslot`: a device holding blocks the image refers to,
/// mapped into the image's block addresses from `mapped_blkaddr`.
pub struct DeviceSlot<'a> {
    /// At most [`DEVICE_TAG_MAX`] bytes (zero-padded).
    pub tag: &'a [u8],
    pub blocks: u32,
    pub mapped_blkaddr: u32,
}

impl DeviceSlot<'_> {
    /// The 128 bytes of the slot.
    pub fn to_bytes(&self) -> [u8; DEVICE_SLOT_SIZE as usize] {
        let mut b = [0u8; DEVICE_SLOT_SIZE as usize];
        b[..self.tag.len()].copy_from_slice(self.tag);
        b[64..68].copy_from_slice(&self.blocks.to_le_bytes());
        b[68..72].copy_from_slice(&self.mapped_blkaddr.to_le_bytes());
        b
    }
}

/// An inode, written compact (32 bytes) when it can be.
pub struct Inode {
    pub layout: DataLayout,
    pub xattr_icount: u16,
    pub mode: u32,
    pub size: u64,
    /// `raw_blkaddr` for data, or the encoded `rdev` for devices.
    pub i_u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    pub nlink: u32,
}

impl Inode {
    /// Whether the 32-byte form holds this inode, given the superblock's
    /// build time (the only time a compact inode can have).
    pub fn fits_compact(&self, build_time: (u64, u32)) -> bool {
        self.uid <= u16::MAX as u32
            && self.gid <= u16::MAX as u32
            && self.nlink <= u16::MAX as u32
            && self.size <= u32::MAX as u64
            && (self.mtime, self.mtime_nsec) == build_time
    }

    /// The 32 bytes of `erofs_inode_compact`.
    pub fn to_compact(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        let format: u16 = (self.layout as u16) << 1;
        b[0..2].copy_from_slice(&format.to_le_bytes());
        b[2..4].copy_from_slice(&self.xattr_icount.to_le_bytes());
        b[4..6].copy_from_slice(&(self.mode as u16).to_le_bytes());
        b[6..8].copy_from_slice(&(self.nlink as u16).to_le_bytes());
        b[8..12].copy_from_slice(&(self.size as u32).to_le_bytes());
        // 12..16: reserved (an mtime offset from the build time in newer
        // kernels): 0 = the build time either way.
        b[16..20].copy_from_slice(&self.i_u.to_le_bytes());
        b[20..24].copy_from_slice(&self.ino.to_le_bytes());
        b[24..26].copy_from_slice(&(self.uid as u16).to_le_bytes());
        b[26..28].copy_from_slice(&(self.gid as u16).to_le_bytes());
        b
    }

    /// The 64 bytes of `erofs_inode_extended`.
    pub fn to_extended(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        let format: u16 = 1 | ((self.layout as u16) << 1);
        b[0..2].copy_from_slice(&format.to_le_bytes());
        b[2..4].copy_from_slice(&self.xattr_icount.to_le_bytes());
        b[4..6].copy_from_slice(&(self.mode as u16).to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..20].copy_from_slice(&self.i_u.to_le_bytes());
        b[20..24].copy_from_slice(&self.ino.to_le_bytes());
        b[24..28].copy_from_slice(&self.uid.to_le_bytes());
        b[28..32].copy_from_slice(&self.gid.to_le_bytes());
        b[32..40].copy_from_slice(&self.mtime.to_le_bytes());
        b[40..44].copy_from_slice(&self.mtime_nsec.to_le_bytes());
        b[44..48].copy_from_slice(&self.nlink.to_le_bytes());
        b
    }
}

/// The kernel's `new_encode_dev`.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_inode_holds_what_compact_cannot() {
        let inode = Inode {
            layout: DataLayout::FlatInline,
            xattr_icount: 3,
            mode: 0o104755,
            size: 5 << 30,
            i_u: 7,
            ino: 9,
            uid: u32::MAX - 1,
            gid: 70000,
            mtime: 1 << 33,
            mtime_nsec: 5,
            nlink: 70000,
        };
        assert!(!inode.fits_compact((1 << 33, 5)), "uid, size and nlink need the extended form");
        let b = inode.to_extended();
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 0b101);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 5 << 30);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), u32::MAX - 1);
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 1 << 33);
        assert_eq!(u32::from_le_bytes(b[44..48].try_into().unwrap()), 70000);
        let small = Inode { uid: 0, gid: 0, size: 10, nlink: 1, ..inode };
        assert!(small.fits_compact((1 << 33, 5)));
        assert!(!small.fits_compact((1 << 33, 6)), "another time needs the extended form");
        let over_4g = Inode { size: u32::MAX as u64 + 1, ..small };
        assert!(!over_4g.fits_compact((1 << 33, 5)), "a size above 4 GiB needs the extended form");
        let c = small.to_compact();
        assert_eq!(u16::from_le_bytes([c[0], c[1]]), 0b100);
        assert_eq!(u32::from_le_bytes(c[8..12].try_into().unwrap()), 10);
        assert_eq!(encode_dev(8, 1), 0x801);
        assert_eq!(encode_dev(1, 0x1234), 0x34 | (1 << 8) | (0x1200 << 12));
    }
}
