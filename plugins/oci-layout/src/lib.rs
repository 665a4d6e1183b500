//! Decoder for OCI image layouts: `oci-layout`, `index.json` and `blobs/`,
//! as a tar (`skopeo copy … oci-archive:`) or a directory (`oci:`).
//!
//! The walk itself (nested indexes, refs from annotations, platforms,
//! attestations skipped) is the SDK's [`msb_plugin_sdk::layout`], shared
//! with the docker-save decoder.

use msb_plugin_sdk::{ArchiveRead, DecodeError, Decoder, Image, Info, export_decoder, info, layout};

/// The OCI image layout decoder.
pub struct OciLayout;

impl Decoder for OciLayout {
    fn info() -> Info {
        info!("oci-layout", "OCI image layout (oci-layout, index.json, blobs/)", ["oci-layout"])
    }

    fn detect(archive: &dyn ArchiveRead) -> u8 {
        match (archive.has_file("oci-layout"), archive.has_file("index.json")) {
            // docker 25+ writes both layouts; its own decoder knows it better.
            (true, true) if archive.has_file("manifest.json") => 80,
            (true, true) => 90,
            (false, true) if archive.entries().iter().any(|e| e.path.starts_with("blobs/")) => 40,
            _ => 0,
        }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        layout::images(archive)
    }
}

export_decoder!(OciLayout);

#[cfg(test)]
mod tests;
