//! `msb save`: images out of the store as one tar that docker, podman,
//! skopeo, containerd and umoci load, with the blobs exactly as loaded.
//!
//! - `oci`: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).
//! - `docker`: `manifest.json` + `repositories` over the same `blobs/sha256/`
//!   paths (what `docker load` of any version reads).
//! - `combined` (default): both in one tar, as docker 25+ writes.
//!
//! Streaming: each blob is copied from the store into the tar once, never
//! held in memory.

use crate::oci;
use crate::reference::Reference;
use crate::store::{ImageView, IndexEntry, Store, StoreError};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};

/// The archive layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// OCI layout and docker `manifest.json` in one tar.
    #[default]
    Combined,
    /// OCI image layout only.
    Oci,
    /// docker `manifest.json` + `repositories` only.
    Docker,
}

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the archive.
    #[error("writing the archive: {0}")]
    Write(io::Error),
    /// A rename names no saved image.
    #[error("-r {from}={to}: no image named {from} is being saved")]
    Rename {
        /// What was to be renamed.
        from: String,
        /// To what.
        to: String,
    },
}

/// Writes the images `names` resolve to (refs, IDs) to `out` as one tar.
/// When `out` writes to the file `direct` (at its file position), blobs are
/// copied into it in the kernel (`copy_file_range`, reflinks where the file
/// system has them).
pub fn save(
    store: &Store,
    names: &[String],
    format: SaveFormat,
    renames: &[(Reference, Reference)],
    out: impl Write,
    direct: Option<&File>,
) -> Result<(), SaveError> {
    let images = select(store, names, renames)?;
    let mut tar = TarWriter::new(out, direct);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut written = BTreeSet::new();
    for (entry, _) in &images {
        for digest in &store.closure(entry)?.blobs {
            if written.insert(digest.clone()) {
                tar.file(&format!("blobs/sha256/{}", digest.hex()), &store.blob_path(digest))?;
            }
        }
    }
    if format != SaveFormat::Docker {
        tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        tar.bytes("index.json", &oci_index(&images))?;
    }
    if format != SaveFormat::Oci {
        let (manifest, repositories) = docker_manifest(&images);
        tar.bytes("manifest.json", &manifest)?;
        tar.bytes("repositories", &repositories)?;
    }
    tar.finish()
}

/// Resolves `names` to index entries (one per ref saved; an ID saves the
/// image without a ref, like docker) and applies `renames`.
fn select(
    store: &Store,
    names: &[String],
    renames: &[(Reference, Reference)],
) -> Result<Vec<(IndexEntry, ImageView)>, SaveError> {
    let mut images: Vec<(IndexEntry, ImageView)> = Vec::new();
    for name in names {
        let view = store.resolve(name)?;
        let named = name.parse::<Reference>().ok().filter(|r| view.entry.reference.as_ref() == Some(r));
        let entry = IndexEntry { reference: named, ..view.entry.clone() };
        if !images.iter().any(|(e, _)| *e == entry) {
            images.push((entry, view));
        }
    }
    for (from, to) in renames {
        let mut found = false;
        for (entry, _) in images.iter_mut().filter(|(e, _)| e.reference.as_ref() == Some(from)) {
            entry.reference = Some(to.clone());
            found = true;
        }
        if !found {
            return Err(SaveError::Rename { from: from.familiar(), to: to.familiar() });
        }
    }
    Ok(images)
}

/// `index.json`: one descriptor per image, as in the store.
fn oci_index(images: &[(IndexEntry, ImageView)]) -> Vec<u8> {
    let manifests: Vec<oci::Descriptor> = images.iter().map(|(entry, _)| entry.descriptor()).collect();
    let index = json!({"schemaVersion": 2, "mediaType": oci::MEDIA_TYPE_INDEX, "manifests": manifests});
    serde_json::to_vec(&index).expect("an index serializes")
}

/// `manifest.json` (one entry per image, tags grouped) and `repositories`.
fn docker_manifest(images: &[(IndexEntry, ImageView)]) -> (Vec<u8>, Vec<u8>) {
    let mut by_config: Vec<(&ImageView, Vec<String>)> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (entry, view) in images {
        let tags = match by_config.iter_mut().find(|(v, _)| v.manifest_digest == view.manifest_digest) {
            Some((_, tags)) => tags,
            None => {
                by_config.push((view, Vec::new()));
                &mut by_config.last_mut().expect("just pushed").1
            }
        };
        // Fully qualified: docker normalizes either form, and podman would
        // take a short `alpine:3.20` for `localhost/alpine:3.20`.
        if let Some(reference) = &entry.reference {
            tags.push(reference.to_string());
            if let (Some(tag), Some(top)) = (reference.tag(), view.layers.last()) {
                repositories
                    .entry(reference.name().to_string())
                    .or_default()
                    .insert(tag.to_string(), top.digest.hex().to_string());
            }
        }
    }
    let manifest: Vec<_> = by_config
        .iter()
        .map(|(view, tags)| {
            json!({
                "Config": format!("blobs/sha256/{}", view.config_digest.hex()),
                "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
                "Layers": view.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
            })
        })
        .collect();
    (
        serde_json::to_vec(&manifest).expect("manifest.json serializes"),
        serde_json::to_vec(&repositories).expect("repositories serializes"),
    )
}

/// A deterministic tar writer: root-owned entries, mtime 0.
struct TarWriter<'f, W: Write> {
    builder: tar::Builder<W>,
    /// The file the builder's writer writes to, if it is one.
    direct: Option<&'f File>,
}

impl<'f, W: Write> TarWriter<'f, W> {
    fn new(out: W, direct: Option<&'f File>) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        TarWriter { builder, direct }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn dir(&mut self, path: &str) -> Result<(), SaveError> {
        let mut header = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut header, path, io::empty()).map_err(SaveError::Write)
    }

    fn bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), SaveError> {
        let mut header = Self::header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        self.builder.append_data(&mut header, path, bytes).map_err(SaveError::Write)
    }

    fn file(&mut self, path: &str, source: &std::path::Path) -> Result<(), SaveError> {
        let store_err = |error| SaveError::Store(StoreError::Io { path: source.to_path_buf(), error });
        let file = File::open(source).map_err(store_err)?;
        let size = file.metadata().map_err(store_err)?.len();
        let mut header = Self::header(tar::EntryType::Regular, 0o644, size);
        let Some(direct) = self.direct else {
            return self
                .builder
                .append_data(&mut header, path, io::BufReader::with_capacity(1 << 20, file).take(size))
                .map_err(SaveError::Write);
        };
        // The header through the writer, the content by the kernel, then
        // the padding to the next 512-byte block.
        header.set_path(path).map_err(SaveError::Write)?;
        header.set_cksum();
        let out = self.builder.get_mut();
        out.write_all(header.as_bytes()).and_then(|()| out.flush()).map_err(SaveError::Write)?;
        let at = io::Seek::stream_position(&mut &*direct).map_err(SaveError::Write)?;
        let range = crate::input::FileRange { file: std::sync::Arc::new(file), offset: 0, len: size };
        if range.copy_to(direct, at).map_err(store_err)? {
            io::Seek::seek(&mut &*direct, io::SeekFrom::Start(at + size)).map_err(SaveError::Write)?;
        } else {
            io::copy(&mut io::BufReader::with_capacity(1 << 20, &*range.file).take(size), out)
                .map_err(SaveError::Write)?;
        }
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize]).map_err(SaveError::Write)
    }

    fn finish(self) -> Result<(), SaveError> {
        let mut out = self.builder.into_inner().map_err(SaveError::Write)?;
        out.flush().map_err(SaveError::Write)
    }
}
