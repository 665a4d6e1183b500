//! Directory blocks: `erofs_dirent`s (nid, name offset, file type) then
//! names, entries sorted by name across the whole directory, `.` and `..`
//! present and pointing where they must.

use super::image::{Fault, Image, bad, u16_at, u64_at};
use super::inode::Inode;
use super::superblock::SuperBlock;
use std::io::{Read, Seek};

const DIRENT_SIZE: usize = 12;
const MAX_NAME: usize = 255;

/// One directory entry.
pub struct Entry {
    pub name: Vec<u8>,
    pub nid: u64,
    pub file_type: u8,
}

/// Reads and checks the entries of directory `nid` (`dir`), whose parent is
/// `parent` (itself for the root).
pub fn read<R: Read + Seek>(
    img: &mut Image<'_, R>,
    sb: &SuperBlock,
    dir: &Inode,
    nid: u64,
    parent: u64,
) -> Result<Vec<Entry>, Fault> {
    let bs = sb.block_size();
    let mut entries: Vec<Entry> = Vec::new();
    let mut offset = 0;
    while offset < dir.size {
        let block = offset / bs;
        let Some((at, len)) = dir.locate(sb, img, offset)? else {
            return bad(format!("directory block {block} is a hole"));
        };
        let data = img.read(at, len, &format!("directory block {block}"))?;
        let fail = |what: String| bad::<()>(format!("directory block {block}: {what}"));
        if data.len() < DIRENT_SIZE {
            fail(format!("{} bytes, too few for an entry", data.len()))?;
        }
        let first = usize::from(u16_at(&data, 8));
        if first < DIRENT_SIZE || first % DIRENT_SIZE != 0 || first > data.len() {
            fail(format!("the first name offset {first} is not a whole number of entries in the block"))?;
        }
        let count = first / DIRENT_SIZE;
        for i in 0..count {
            let d = &data[i * DIRENT_SIZE..];
            let nameoff = usize::from(u16_at(d, 8));
            let end = if i + 1 < count {
                usize::from(u16_at(&data[(i + 1) * DIRENT_SIZE..], 8))
            } else {
                // The last name runs to the end of the block's data or a NUL.
                let rest = data.get(nameoff..).unwrap_or(&[]);
                nameoff + rest.iter().position(|&b| b == 0).unwrap_or(rest.len())
            };
            if nameoff < first || end > data.len() || end <= nameoff {
                fail(format!("entry {i}: name at {nameoff}..{end} is outside the block's names"))?;
            }
            let name = &data[nameoff..end];
            let shown = String::from_utf8_lossy(name);
            if name.len() > MAX_NAME {
                fail(format!("name {shown:?} is longer than {MAX_NAME} bytes"))?;
            }
            if name.contains(&0) || name.contains(&b'/') {
                fail(format!("name {shown:?} holds a NUL or a /"))?;
            }
            if let Some(last) = entries.last()
                && last.name.as_slice() >= name
            {
                let last = String::from_utf8_lossy(&last.name);
                fail(format!("entry {shown:?} after {last:?}: names out of order or repeated"))?;
            }
            let entry = Entry { name: name.to_vec(), nid: u64_at(d, 0), file_type: d[10] };
            let want = match name {
                b"." => Some(nid),
                b".." => Some(parent),
                _ => None,
            };
            if let Some(want) = want
                && (entry.nid != want || entry.file_type != 2)
            {
                fail(format!("{shown:?} is nid {} (type {}), not directory {want}", entry.nid, entry.file_type))?;
            }
            entries.push(entry);
        }
        offset += len;
    }
    for name in [&b"."[..], b".."] {
        if !entries.iter().any(|e| e.name == name) {
            return bad(format!("no {:?} entry", String::from_utf8_lossy(name)));
        }
    }
    Ok(entries)
}
