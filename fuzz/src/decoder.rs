//! One decoder run natively on an archive, as the host would run it in
//! its sandbox: `detect`, then `decode`, then every stream it returned.

use crate::image::{self, File, FileKind};
use arbitrary::{Arbitrary, Unstructured};
use msb_plugin_sdk::{Decoder, MemArchive, Source};

/// The most bytes read from one stream a decoder returns.
const MAX_STREAM: usize = 64 << 20;

/// The archive `data` describes: a raw tar's entries, or a structured
/// model's; `None` when the bytes are too few for a model.
pub fn archive(data: &[u8]) -> Option<MemArchive> {
    let files = if crate::is_tar(data) {
        crate::tarball::files(data)
    } else {
        image::Archive::arbitrary_take_rest(Unstructured::new(data)).ok()?.render()
    };
    Some(mem_archive(files))
}

/// `files` as a [`MemArchive`], named as the host names entries (entries
/// that climb out of the archive are dropped, as the host refuses them).
pub fn mem_archive(files: Vec<File>) -> MemArchive {
    let mut archive = MemArchive::default();
    for file in files {
        let Some(path) = msb_plugin_sdk::clean_path(&file.path) else { continue };
        match &file.kind {
            FileKind::File => archive.add(&path, &file.content),
            FileKind::Dir => archive.add_dir(&path),
            FileKind::Symlink(target) => archive.add_symlink(&path, target),
            // A hardlink names its target from the archive root.
            FileKind::Hardlink(target) => archive.add_symlink(&path, &format!("/{target}")),
        };
    }
    archive
}

/// Runs `D` on the archive `data` describes. Errors are fine; a panic is
/// a bug (in the sandbox it is a trap: `plugin … crashed`).
pub fn run<D: Decoder>(data: &[u8]) {
    let Some(archive) = archive(data) else { return };
    let _confidence = D::detect(&archive);
    let Ok(images) = D::decode(&archive) else { return };
    for image in &images {
        let blobs = image.indexes.iter().chain(&image.manifest).chain([&image.config]);
        for blob in blobs.chain(image.layers.iter().map(|l| &l.blob)).chain(&image.attachments) {
            if let Source::Stream(id) = blob.source {
                let mut read = 0;
                while let Ok(chunk) = D::read_stream(&archive, id, 1 << 20) {
                    assert!(chunk.len() <= 1 << 20, "stream {id}: {} bytes for a 1 MiB read", chunk.len());
                    read += chunk.len();
                    if chunk.is_empty() || read > MAX_STREAM {
                        break;
                    }
                }
            }
        }
    }
}
