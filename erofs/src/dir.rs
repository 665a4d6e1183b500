//! Directory data: `erofs_dirent`s (nid, name offset, file type) at the
//! start of each block, names after them; entries sorted by name and never
//! split across blocks.

use crate::layout::DIRENT_SIZE;
use crate::tree::NodeId;

/// A directory's entries packed into blocks: each block holds its dirents
/// followed by their names; entries never span blocks.
pub struct DirLayout<'a> {
    /// Names borrowed from the tree.
    entries: Vec<(&'a [u8], NodeId)>,
    /// (first entry, entry count, used bytes) per block.
    blocks: Vec<(usize, usize, u64)>,
    /// The block size.
    block_size: u64,
}

impl<'a> DirLayout<'a> {
    /// Packs `entries` (already sorted, `.` and `..` included) into blocks
    /// of `block_size` bytes (at least 512: a dirent and a 255-byte name fit).
    pub fn new(entries: Vec<(&'a [u8], NodeId)>, block_size: u64) -> DirLayout<'a> {
        let mut blocks = Vec::new();
        let (mut first, mut count, mut used) = (0, 0, 0u64);
        for (i, (name, _)) in entries.iter().enumerate() {
            let need = DIRENT_SIZE + name.len() as u64;
            if count > 0 && used + need > block_size {
                blocks.push((first, count, used));
                (first, count, used) = (i, 0, 0);
            }
            count += 1;
            used += need;
        }
        blocks.push((first, count, used));
        DirLayout { entries, blocks, block_size }
    }

    /// Bytes of directory data: full blocks, then the used part of the last.
    pub fn size(&self) -> u64 {
        (self.blocks.len() as u64 - 1) * self.block_size + self.blocks.last().map_or(0, |b| b.2)
    }

    /// The directory's data (`size()` bytes), given each child's nid and file type.
    pub fn to_bytes(&self, nid: &dyn Fn(NodeId) -> u64, file_type: &dyn Fn(NodeId) -> u8) -> Vec<u8> {
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
                out.resize(start + self.block_size as usize, 0);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_split_into_blocks() {
        let names: Vec<Vec<u8>> = (0..1000).map(|i| format!("file-{i:05}").into_bytes()).collect();
        for block_size in [512, 4096] {
            let dir = DirLayout::new(names.iter().map(|n| (&n[..], 0)).collect(), block_size);
            assert!(dir.blocks.len() > 1);
            assert!(dir.blocks.iter().all(|b| b.2 <= block_size));
            assert_eq!(dir.blocks.iter().map(|b| b.1).sum::<usize>(), 1000);
            let bytes = dir.to_bytes(&|_| 1, &|_| 1);
            assert_eq!(bytes.len() as u64, dir.size());
            assert_eq!(dir.size().div_ceil(block_size), dir.blocks.len() as u64);
        }
    }
}
