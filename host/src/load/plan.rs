//! Checking what a decoder said against the bytes, and deciding what to
//! load: platforms, refs, verified configs and manifests, and the layers
//! with the digests and diff_ids they must have.
//!
//! This is the one validation every decoder's output goes through, built-in
//! or third-party: nothing it says is trusted.

use super::layer::Imported;
use super::source::{self, describe, read_small};
use super::{LoadError, LoadOptions};
use crate::digest::{Digest, HashingReader};
use crate::input::Archive;
use crate::oci;
use crate::plugin::Session;
use crate::plugin::bindings::msb::format::types::{Blob, Image, Source};
use crate::reference::Reference;
use crate::store::{IndexEntry, Platform, Staging};
use std::collections::BTreeMap;

/// The most a manifest, index or config may hold.
pub(crate) const MAX_JSON: u64 = 16 << 20;
/// The most images one archive may describe.
const MAX_IMAGES: usize = 10_000;
/// The most layers one image may have (docker stops at 127).
const MAX_LAYERS: usize = 1_000;
/// The most refs one image may carry.
const MAX_REFS: usize = 1_000;

/// What identifies a layer's bytes, so each is imported once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LayerKey {
    /// The declared digest.
    Digest(Digest),
    /// The archive entry, when no digest is declared.
    Entry(String),
    /// Bytes or a stream: imported where they occur.
    Unique(usize),
}

/// One layer to import, with what it must turn out to be.
pub(crate) struct LayerPlan {
    pub key: LayerKey,
    /// How messages name it.
    pub what: String,
    pub source: Source,
    /// The digest the blob must have, when declared.
    pub digest: Option<Digest>,
    /// Declared media type.
    pub media_type: Option<String>,
    /// The diff_id the config demands.
    pub diff_id: Digest,
    /// Media types to use where the archive declares none.
    pub flavor: oci::Flavor,
}

impl LayerPlan {
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.source, Source::Stream(_))
    }

    /// Checks the imported layer against what the archive declared.
    pub(crate) fn verify(&self, got: &Imported) -> Result<(), LoadError> {
        if let Some(digest) = &self.digest
            && *digest != got.digest
        {
            return Err(LoadError::invalid(
                &self.what,
                format!("content has digest {}, the archive says {digest}", got.digest),
            ));
        }
        if self.diff_id != got.diff_id {
            return Err(LoadError::invalid(
                &self.what,
                format!("uncompressed content has digest {}, the config says {}", got.diff_id, self.diff_id),
            ));
        }
        Ok(())
    }
}

/// One image to load.
pub(crate) struct ImagePlan {
    pub refs: Vec<Reference>,
    pub platform: Platform,
    /// Indexes it was reached through, outermost first.
    pub indexes: Vec<Blob>,
    /// Blobs of the indexes that are not images (attestations).
    pub attachments: Vec<Blob>,
    /// Verified manifest bytes and media type, if the archive has them.
    pub manifest: Option<(Vec<u8>, String)>,
    /// Verified config bytes and media type.
    pub config: (Vec<u8>, String),
    pub layers: Vec<LayerPlan>,
}

impl ImagePlan {
    /// Media types of a manifest built here.
    pub(crate) fn flavor(&self) -> oci::Flavor {
        oci::Flavor::of_config(&self.config.1)
    }

    /// A manifest for an archive that has none (docker save, v1): docker
    /// schema 2 for a docker config, OCI otherwise.
    pub(crate) fn synthesize_manifest(&self, layers: &[Imported]) -> Vec<u8> {
        let manifest = oci::Manifest {
            schema_version: 2,
            media_type: Some(self.flavor().manifest().to_string()),
            config: oci::Descriptor {
                media_type: self.config.1.clone(),
                digest: Digest::of(&self.config.0),
                size: self.config.0.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: layers
                .iter()
                .map(|l| oci::Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    platform: None,
                    annotations: BTreeMap::new(),
                })
                .collect(),
        };
        serde_json::to_vec(&manifest).expect("a manifest serializes")
    }
}

/// Validates `images`, selects platforms, reads and verifies configs and
/// manifests.
pub(crate) fn plan(
    archive: &dyn Archive,
    session: &mut Session,
    images: Vec<Image>,
    options: &LoadOptions,
) -> Result<Vec<ImagePlan>, LoadError> {
    if images.len() > MAX_IMAGES {
        return Err(LoadError::invalid(
            "the decoder",
            format!("describes {} images, more than {MAX_IMAGES}", images.len()),
        ));
    }
    if let Some(image) = images.iter().find(|i| i.layers.len() > MAX_LAYERS || i.refs.len() > MAX_REFS) {
        let what = describe(&image.config.source);
        return Err(LoadError::invalid(what, format!("more than {MAX_LAYERS} layers or {MAX_REFS} refs in one image")));
    }
    let selected = select_platforms(images, options)?;
    let mut unique = 0;
    let mut plans = selected
        .into_iter()
        .map(|image| plan_image(archive, session, image, &mut unique))
        .collect::<Result<Vec<_>, _>>()?;
    rename(&mut plans, options)?;
    Ok(plans)
}

/// Applies `-r SRC=DST` and `-t REF`.
fn rename(plans: &mut [ImagePlan], options: &LoadOptions) -> Result<(), LoadError> {
    for (from, to) in &options.renames {
        let mut found = false;
        for reference in plans.iter_mut().flat_map(|p| p.refs.iter_mut()).filter(|r| *r == from) {
            *reference = to.clone();
            found = true;
        }
        if !found {
            let names = format!("-r {}={}", from.familiar(), to.familiar());
            return Err(LoadError::invalid(names, format!("the archive has no image named {}", from.familiar())));
        }
    }
    if let Some(tag) = &options.tag {
        let images: std::collections::BTreeSet<String> = plans
            .iter()
            .map(|p| p.indexes.first().map_or_else(|| Digest::of(&p.config.0).to_string(), blob_identity))
            .collect();
        if images.len() != 1 {
            return Err(LoadError::invalid(
                format!("--tag {}", tag.familiar()),
                format!("the archive holds {} images; --tag needs exactly one (rename with -r SRC=DST)", images.len()),
            ));
        }
        for plan in plans.iter_mut() {
            plan.refs = vec![tag.clone()];
        }
    }
    for plan in plans.iter_mut() {
        let mut seen = std::collections::BTreeSet::new();
        plan.refs.retain(|r| seen.insert(r.clone()));
    }
    Ok(())
}

/// From each multi-platform index, the wanted platform (or all of them).
fn select_platforms(images: Vec<Image>, options: &LoadOptions) -> Result<Vec<Image>, LoadError> {
    let mut groups: Vec<(Option<String>, Vec<Image>)> = Vec::new();
    for image in images {
        let key = image.indexes.first().map(blob_identity);
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, group)) => group.push(image),
            None => groups.push((key, vec![image])),
        }
    }
    let want = options.platform.clone().unwrap_or_else(oci::host_platform);
    let mut selected = Vec::new();
    for (_, group) in groups {
        if options.all_platforms || group.len() == 1 {
            selected.extend(group);
            continue;
        }
        let platform_of = |i: &Image| i.platform.as_ref().map(to_platform);
        let exact = group.iter().position(|i| platform_of(i).as_ref() == Some(&want));
        let loose = || group.iter().position(|i| platform_of(i).is_some_and(|p| oci::platform_matches(&p, &want)));
        match exact.or_else(loose) {
            Some(i) => selected.push(group.into_iter().nth(i).expect("position is in range")),
            None => {
                let present = group.iter().filter_map(platform_of).map(|p| p.to_string()).collect();
                return Err(LoadError::Platform { wanted: want.to_string(), present });
            }
        }
    }
    Ok(selected)
}

fn blob_identity(blob: &Blob) -> String {
    blob.digest.clone().unwrap_or_else(|| describe(&blob.source))
}

fn to_platform(p: &crate::plugin::bindings::msb::format::types::Platform) -> Platform {
    Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().filter(|v| !v.is_empty()),
    }
}

/// Reads `blob` (at most [`MAX_JSON`]) and checks its declared digest.
fn read_verified(archive: &dyn Archive, session: &mut Session, blob: &Blob) -> Result<Vec<u8>, LoadError> {
    let bytes = read_small(archive, session, &blob.source, MAX_JSON)?;
    if let Some(declared) = &blob.digest {
        let declared: Digest =
            declared.parse().map_err(|e| LoadError::invalid(describe(&blob.source), format!("{e}")))?;
        let actual = Digest::of(&bytes);
        if actual != declared {
            return Err(LoadError::invalid(
                describe(&blob.source),
                format!("content has digest {actual}, the archive says {declared}"),
            ));
        }
    }
    Ok(bytes)
}

fn plan_image(
    archive: &dyn Archive,
    session: &mut Session,
    image: Image,
    unique: &mut usize,
) -> Result<ImagePlan, LoadError> {
    let refs = image
        .refs
        .iter()
        .map(|r| r.parse::<Reference>().map_err(|e| LoadError::invalid("image reference", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    let config_what = describe(&image.config.source);
    let config_bytes = read_verified(archive, session, &image.config)?;
    let config: oci::Config = serde_json::from_slice(&config_bytes)
        .map_err(|e| LoadError::invalid(&config_what, format!("not an image config: {e}")))?;
    let config_digest = Digest::of(&config_bytes);
    let config_media_type = image.config.media_type.clone().unwrap_or_else(|| oci::MEDIA_TYPE_CONFIG.to_string());
    let flavor = oci::Flavor::of_config(&config_media_type);

    let manifest = match &image.manifest {
        Some(blob) => {
            let what = describe(&blob.source);
            let bytes = read_verified(archive, session, blob)?;
            let manifest: oci::Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| LoadError::invalid(&what, format!("not an image manifest: {e}")))?;
            if manifest.config.digest != config_digest {
                return Err(LoadError::invalid(
                    &what,
                    format!("names config {}, the decoder gave {config_digest}", manifest.config.digest),
                ));
            }
            if manifest.layers.len() != image.layers.len() {
                return Err(LoadError::invalid(&what, "the decoder's layers do not match the manifest's"));
            }
            let media_type = blob
                .media_type
                .clone()
                .or(manifest.media_type.clone())
                .unwrap_or_else(|| oci::MEDIA_TYPE_MANIFEST.to_string());
            Some((bytes, media_type, manifest))
        }
        None => None,
    };

    if config.rootfs.diff_ids.len() != image.layers.len() {
        return Err(LoadError::invalid(
            &config_what,
            format!("lists {} diff_ids for {} layers", config.rootfs.diff_ids.len(), image.layers.len()),
        ));
    }
    let mut layers = Vec::new();
    for (i, (layer, diff_id)) in image.layers.into_iter().zip(&config.rootfs.diff_ids).enumerate() {
        let what = format!("layer {} ({})", i + 1, describe(&layer.blob.source));
        let declared = match &layer.blob.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| LoadError::invalid(&what, e.to_string()))?),
            None => None,
        };
        let (digest, media_type) = match &manifest {
            Some((_, _, m)) => {
                let d = &m.layers[i];
                if declared.as_ref().is_some_and(|x| *x != d.digest) {
                    return Err(LoadError::invalid(&what, "the decoder's digest differs from the manifest's"));
                }
                (Some(d.digest.clone()), Some(d.media_type.clone()))
            }
            None => (declared, layer.blob.media_type.clone()),
        };
        if let Some(d) = &layer.diff_id
            && *d != diff_id.to_string()
        {
            return Err(LoadError::invalid(&what, format!("the decoder says diff_id {d}, the config says {diff_id}")));
        }
        let key = match (&digest, &layer.blob.source) {
            (Some(d), _) => LayerKey::Digest(d.clone()),
            (None, Source::Entry(path)) => LayerKey::Entry(path.clone()),
            (None, _) => {
                *unique += 1;
                LayerKey::Unique(*unique)
            }
        };
        layers.push(LayerPlan {
            key,
            what,
            source: layer.blob.source,
            digest,
            media_type,
            diff_id: diff_id.clone(),
            flavor,
        });
    }

    let platform = image.platform.as_ref().map(to_platform).unwrap_or_else(|| config.platform());
    Ok(ImagePlan {
        refs,
        platform,
        indexes: image.indexes,
        attachments: image.attachments,
        manifest: manifest.map(|(bytes, media_type, _)| (bytes, media_type)),
        config: (config_bytes, config_media_type),
        layers,
    })
}

/// With `--all-platforms`: stages every index blob and attachment, and names
/// the outermost index of each group with the group's refs.
pub(crate) fn stage_indexes(
    staging: &Staging,
    archive: &dyn Archive,
    session: &mut Session,
    plans: &[ImagePlan],
) -> Result<Vec<IndexEntry>, LoadError> {
    let mut entries = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for plan in plans.iter().filter(|p| !p.indexes.is_empty()) {
        for blob in &plan.indexes {
            if done.insert(blob_identity(blob)) {
                let bytes = read_verified(archive, session, blob)?;
                let digest = staging.add_blob(&bytes)?;
                if std::ptr::eq(blob, &plan.indexes[0]) {
                    let media_type = blob.media_type.clone().unwrap_or_else(|| oci::MEDIA_TYPE_INDEX.to_string());
                    entries.extend(super::index_entries(&plan.refs, &media_type, &digest, bytes.len() as u64, None));
                }
            }
        }
        for blob in &plan.attachments {
            if done.insert(blob_identity(blob)) {
                stage_attachment(staging, archive, blob)?;
            }
        }
    }
    Ok(entries)
}

/// Copies an attachment into the store as it is, verifying its declared
/// digest on the way (never held in memory: it may be large).
fn stage_attachment(staging: &Staging, archive: &dyn Archive, blob: &Blob) -> Result<(), LoadError> {
    let what = describe(&blob.source);
    let declared: Digest = match &blob.digest {
        Some(d) => d.parse().map_err(|e| LoadError::invalid(&what, format!("{e}")))?,
        None => return Err(LoadError::invalid(&what, "an attachment needs a declared digest")),
    };
    let path = staging.store().blob_path(&declared);
    if path.is_file() {
        staging.require(path);
        return Ok(());
    }
    if matches!(blob.source, Source::Stream(_)) {
        return Err(LoadError::invalid(&what, "an attachment cannot be a stream"));
    }
    let io_err = |error| LoadError::Io { what: what.clone(), error };
    let mut file = staging.temp_file()?;
    let mut reader = HashingReader::new(source::open(archive, None, &blob.source)?);
    std::io::copy(&mut reader, file.as_file_mut()).map_err(io_err)?;
    let (actual, _) = reader.finish().map_err(io_err)?;
    if actual != declared {
        return Err(LoadError::invalid(&what, format!("content has digest {actual}, the archive says {declared}")));
    }
    staging.add_blob_file(file, &declared)?;
    Ok(())
}
