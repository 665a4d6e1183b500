//! Decoder for the containers/image `dir:` transport, as `skopeo copy …
//! dir:PATH` and `podman save --format docker-dir` write it (a directory,
//! or a tar of one):
//!
//! ```text
//! version         Directory Transport Version: 1.1   (1.0 from older writers)
//! manifest.json   the image manifest itself (docker schema 2 or OCI)
//! <hex>           the config and each layer, named by the hex of their sha256
//! signature-N     signatures, ignored
//! ```
//!
//! One image, kept byte for byte: the manifest is `manifest.json` (the host
//! hashes it), the config and layers are the `<hex>` files with the digests
//! the manifest declares (the host verifies them). The format carries no
//! name: the image is loaded by its config digest, or named with
//! `msb load -t NAME`. Writers from before the `version` file named blobs
//! `<hex>.tar`; those names are accepted too (with `--plugin`).
//!
//! Not supported: a multi-platform `dir:` (`skopeo copy --all`), whose
//! `manifest.json` is an index with the instances' manifests in
//! `<hex>.manifest.json`; it is detected, so that loading it says why.

use msb_plugin_sdk::oci::{self, Descriptor, MEDIA_TYPE_OCI_MANIFEST};
use msb_plugin_sdk::{
    ArchiveRead, Blob, DecodeError, Decoder, Digest, Image, Info, Layer, Source, export_decoder, info, read_json,
};
use serde_json::Value;

/// The file naming the layout version.
const VERSION: &str = "version";
/// The image manifest.
const MANIFEST: &str = "manifest.json";
/// What `version` starts with.
const VERSION_PREFIX: &str = "Directory Transport Version";
/// The most `version` may hold (it is one short line).
const MAX_VERSION_SIZE: u64 = 4096;

/// The containers/image `dir:` decoder.
pub struct ContainersDir;

impl Decoder for ContainersDir {
    fn info() -> Info {
        info!(
            "containers-dir",
            "containers/image dir: directories (skopeo copy … dir:, podman save --format docker-dir)",
            ["containers-dir"]
        )
    }

    /// 100 for a `version` file of this transport next to a schema 2
    /// manifest (or index) in `manifest.json`; 0 otherwise.
    fn detect(archive: &dyn ArchiveRead) -> u8 {
        if !archive.has_file(VERSION) || !archive.has_file(MANIFEST) {
            return 0;
        }
        let versioned =
            archive.read_all(VERSION, MAX_VERSION_SIZE).is_ok_and(|v| v.starts_with(VERSION_PREFIX.as_bytes()));
        if !versioned {
            return 0;
        }
        match read_json::<Value>(archive, MANIFEST) {
            Ok(Value::Object(m))
                if m.get("schemaVersion").and_then(Value::as_u64) == Some(2)
                    && (m.contains_key("config") || m.contains_key("manifests")) =>
            {
                100
            }
            _ => 0,
        }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        check_version(archive)?;
        let value: Value = read_json(archive, MANIFEST)?;
        let media_type = value.get("mediaType").and_then(Value::as_str);
        if media_type.is_some_and(oci::is_index) || value.get("manifests").is_some() {
            return Err(DecodeError::unsupported(
                Some(MANIFEST),
                "is a multi-platform image index (skopeo copy --all); copy one platform to dir:, \
                 or use an oci: / oci-archive: destination",
            ));
        }
        match value.get("schemaVersion").and_then(Value::as_u64) {
            Some(2) => {}
            Some(1) => return Err(DecodeError::unsupported(Some(MANIFEST), "is a docker schema 1 manifest")),
            _ => return Err(DecodeError::malformed(MANIFEST, "has no schemaVersion 2")),
        }
        if let Some(media_type) = media_type.filter(|m| !oci::is_manifest(m)) {
            return Err(DecodeError::unsupported(
                Some(MANIFEST),
                format!("has media type {media_type}, not an image manifest"),
            ));
        }
        let manifest: oci::Manifest = serde_json::from_value(value)
            .map_err(|e| DecodeError::malformed(MANIFEST, format!("not an image manifest: {e}")))?;

        let config = blob(archive, "config", &manifest.config)?;
        let layers = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, d)| Ok(Layer { blob: blob(archive, &format!("layer {}", i + 1), d)?, diff_id: None }))
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let manifest = Blob {
            media_type: Some(manifest.media_type.unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.to_string())),
            digest: None,
            source: Source::Entry(MANIFEST.to_string()),
        };
        Ok(vec![Image {
            refs: vec![],
            platform: None,
            indexes: vec![],
            manifest: Some(manifest),
            config,
            layers,
            attachments: vec![],
        }])
    }
}

export_decoder!(ContainersDir);

/// Refuses a `version` of another major version than 1; a missing or
/// unrecognized `version` file (e.g. with `--plugin`) is only logged.
fn check_version(archive: &dyn ArchiveRead) -> Result<(), DecodeError> {
    let Ok(bytes) = archive.read_all(VERSION, MAX_VERSION_SIZE) else {
        msb_plugin_sdk::log("no readable version file; reading the directory as version 1.1");
        return Ok(());
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(version) = text.strip_prefix(VERSION_PREFIX).and_then(|v| v.strip_prefix(':')).map(str::trim) else {
        msb_plugin_sdk::log(&format!(
            "unrecognized version file {:?}; reading the directory as version 1.1",
            text.trim()
        ));
        return Ok(());
    };
    if version.split('.').next() != Some("1") {
        return Err(DecodeError::unsupported(
            Some(VERSION),
            format!("directory transport version {version}; this decoder reads 1.x"),
        ));
    }
    Ok(())
}

/// The blob `descriptor` of `manifest.json` names: the file `<hex>` (or
/// `<hex>.tar`), with the declared digest and media type.
fn blob(archive: &dyn ArchiveRead, what: &str, descriptor: &Descriptor) -> Result<Blob, DecodeError> {
    let declared = &descriptor.digest;
    let digest = Digest::parse(declared).ok_or_else(|| {
        if declared.starts_with("sha256:") || !declared.contains(':') {
            DecodeError::malformed(MANIFEST, format!("{what} has an invalid digest {declared:?}"))
        } else {
            DecodeError::unsupported(Some(MANIFEST), format!("{what} has digest {declared}; only sha256 is supported"))
        }
    })?;
    let hex = digest.hex();
    let path = [hex.to_string(), format!("{hex}.tar")]
        .iter()
        .find_map(|p| archive.resolve(p))
        .map(|e| e.path.clone())
        .ok_or_else(|| {
            DecodeError::missing(hex, format!("{what} {digest} of manifest.json is not in the directory"))
        })?;
    Ok(Blob {
        media_type: Some(descriptor.media_type.clone()),
        digest: Some(digest.to_string()),
        source: Source::Entry(path),
    })
}

#[cfg(test)]
mod tests;
