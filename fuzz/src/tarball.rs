//! Tar bytes from the models, written header by header with no checks (a
//! name with `..`, a size that lies, a type byte nobody knows: all written
//! as given), and the reverse for raw inputs: a tar's files for a
//! `MemArchive`.

use crate::image::{File, FileKind};
use crate::layer::{Layer, LayerEntry, LayerKind};
use std::io::Read;

const BLOCK: usize = 512;

/// An image archive's files as a tar.
pub fn archive(files: &[File]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        let (kind, link, data): (u8, &[u8], &[u8]) = match &file.kind {
            FileKind::File => (b'0', b"", &file.content),
            FileKind::Dir => (b'5', b"", b""),
            FileKind::Symlink(target) => (b'2', target.as_bytes(), b""),
            FileKind::Hardlink(target) => (b'1', target.as_bytes(), b""),
        };
        let mut header = tar::Header::new_ustar();
        header.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_size(data.len() as u64);
        entry(&mut out, header, file.path.as_bytes(), link, &[], data);
    }
    out.extend_from_slice(&[0; 2 * BLOCK]);
    out
}

/// A layer model as tar bytes, damage applied.
pub fn layer(layer: &Layer) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &layer.entries {
        layer_entry(&mut out, e);
    }
    if layer.end_marker {
        out.extend_from_slice(&[0; 2 * BLOCK]);
    }
    if let Some(cut) = layer.truncate {
        out.truncate(cut as usize % (out.len() + 1));
    }
    if !out.is_empty() {
        let len = out.len();
        for (at, mask) in &layer.flips {
            out[*at as usize % len] ^= mask;
        }
    }
    out
}

fn layer_entry(out: &mut Vec<u8>, e: &LayerEntry) {
    let name = e.name.render();
    let mut header = if e.gnu || matches!(e.kind, LayerKind::Sparse { .. }) {
        tar::Header::new_gnu()
    } else {
        tar::Header::new_ustar()
    };
    header.set_mode(e.mode);
    header.set_uid(e.uid as u64);
    header.set_gid(e.gid as u64);
    header.set_mtime(e.mtime as u64);
    let mut pax: Vec<(String, Vec<u8>)> = e.pax.iter().map(|(k, v)| (k.render(), v.render())).collect();
    let mut link = Vec::new();
    let mut data = Vec::new();
    let mut name = name;
    let kind = match &e.kind {
        LayerKind::File => {
            data = e.data.clone();
            b'0'
        }
        LayerKind::Dir => b'5',
        LayerKind::Symlink(target) => {
            link = target.render();
            b'2'
        }
        LayerKind::Hardlink(target) => {
            link = target.render();
            b'1'
        }
        LayerKind::Char(major, minor) | LayerKind::Block(major, minor) => {
            let _ = header.set_device_major(*major);
            let _ = header.set_device_minor(*minor);
            if matches!(e.kind, LayerKind::Char(..)) { b'3' } else { b'4' }
        }
        LayerKind::Fifo => b'6',
        LayerKind::Sparse { segments, real_size } => {
            data = segment_bytes(segments, &e.data);
            gnu_sparse(&mut header, segments, *real_size);
            b'S'
        }
        LayerKind::PaxSparse { segments, real_size } => {
            let mut map = format!("{}\n", segments.len());
            for (offset, len) in segments {
                map.push_str(&format!("{offset}\n{len}\n"));
            }
            data = map.into_bytes();
            data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
            data.extend(segment_bytes(segments, &e.data));
            pax.push(("GNU.sparse.major".into(), b"1".to_vec()));
            pax.push(("GNU.sparse.minor".into(), b"0".to_vec()));
            pax.push(("GNU.sparse.name".into(), name.clone()));
            pax.push(("GNU.sparse.realsize".into(), real_size.to_string().into_bytes()));
            let mut fake = b"GNUSparseFile.0/".to_vec();
            fake.extend_from_slice(&name);
            name = fake;
            b'0'
        }
        LayerKind::Other(t) => {
            data = e.data.clone();
            *t
        }
    };
    if !pax.is_empty() {
        pax_header(out, &pax);
    }
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_size(data.len() as u64);
    // Old GNU sparse extension blocks go between the header and the data.
    let extensions = match &e.kind {
        LayerKind::Sparse { segments, .. } if segments.len() > 4 => sparse_extensions(&segments[4..]),
        _ => Vec::new(),
    };
    entry(out, header, &name, &link, &extensions, &data);
}

/// Writes one entry: GNU long-name/long-link entries when the name or link
/// does not fit, then the header, `blocks` (sparse extensions) and the
/// padded data.
fn entry(out: &mut Vec<u8>, header: tar::Header, name: &[u8], link: &[u8], blocks: &[u8], data: &[u8]) {
    if name.len() > 100 {
        long_entry(out, b'L', name);
    }
    if link.len() > 100 {
        long_entry(out, b'K', link);
    }
    let header = finish(header, name, link);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(blocks);
    padded(out, data);
}

/// Name, link and checksum into `header` (names truncated to 100 bytes).
fn finish(mut header: tar::Header, name: &[u8], link: &[u8]) -> tar::Header {
    let old = header.as_old_mut();
    let n = name.len().min(100);
    old.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    old.linkname[..l].copy_from_slice(&link[..l]);
    header.set_cksum();
    header
}

/// A GNU `././@LongLink` entry of type `kind` (`L` name, `K` link).
fn long_entry(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::new(kind));
    let mut data = value.to_vec();
    data.push(0);
    header.set_size(data.len() as u64);
    let header = finish(header, b"././@LongLink", b"");
    out.extend_from_slice(header.as_bytes());
    padded(out, &data);
}

/// A PAX extended header (`x`) holding `records`.
fn pax_header(out: &mut Vec<u8>, records: &[(String, Vec<u8>)]) {
    let mut data = Vec::new();
    for (key, value) in records {
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len = base + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    let header = finish(header, b"PaxHeaders.0/x", b"");
    out.extend_from_slice(header.as_bytes());
    padded(out, &data);
}

fn padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
}

/// The bytes of `segments` back to back, cycled from `data`.
fn segment_bytes(segments: &[(u64, u16)], data: &[u8]) -> Vec<u8> {
    let total: usize = segments.iter().map(|(_, len)| *len as usize).sum();
    if data.is_empty() { vec![0x5a; total] } else { data.iter().copied().cycle().take(total).collect() }
}

/// An octal field, or base-256 when it does not fit.
fn number(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    if text.len() < field.len() {
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
    }
}

/// The first four segments and the real size into a GNU header.
fn gnu_sparse(header: &mut tar::Header, segments: &[(u64, u16)], real_size: u64) {
    let Some(gnu) = header.as_gnu_mut() else { return };
    for (slot, (offset, len)) in gnu.sparse.iter_mut().zip(segments) {
        number(&mut slot.offset, *offset);
        number(&mut slot.numbytes, *len as u64);
    }
    gnu.isextended[0] = u8::from(segments.len() > 4);
    number(&mut gnu.realsize, real_size);
}

/// Old GNU sparse extension blocks: 21 segments each.
fn sparse_extensions(segments: &[(u64, u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<_> = segments.chunks(21).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut block = [0u8; BLOCK];
        for (j, (offset, len)) in chunk.iter().enumerate() {
            number(&mut block[j * 24..j * 24 + 12], *offset);
            number(&mut block[j * 24 + 12..j * 24 + 24], *len as u64);
        }
        block[504] = u8::from(i + 1 < chunks.len());
        out.extend_from_slice(&block);
    }
    out
}

/// The files of a raw tar, as far as it parses; paths as the host names
/// them (`.` and `..` resolved, no leading `/`), entries that climb out
/// dropped.
pub fn files(data: &[u8]) -> Vec<File> {
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else { return files };
    for entry in entries {
        let Ok(mut entry) = entry else { break };
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = msb_plugin_sdk::clean_path(&raw) else { continue };
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => FileKind::Dir,
            tar::EntryType::Symlink => FileKind::Symlink(link),
            tar::EntryType::Link => FileKind::Hardlink(link),
            _ => FileKind::File,
        };
        let mut content = Vec::new();
        if kind == FileKind::File && entry.read_to_end(&mut content).is_err() {
            break;
        }
        files.push(File { path, kind, content });
    }
    files
}

