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
use crate::plugin::model::{Blob, Image, Source};
use crate::progress::Progress;
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
    /// The size the blob must have, when a manifest declares it.
    pub size: Option<u64>,
    /// Declared media type: one [`oci::layer_compression`] knows (its
    /// compression is not held against the blob's: that is sniffed).
    pub media_type: Option<String>,
    /// The diff_id the config demands.
    pub diff_id: Digest,
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
        if let Some(size) = self.size
            && size != got.size
        {
            return Err(LoadError::invalid(
                &self.what,
                format!("blob is {} bytes, its descriptor says {size}", got.size),
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
    /// Verified config bytes.
    pub config: Vec<u8>,
    pub layers: Vec<LayerPlan>,
    /// Names the archive gives the image that are only a tag (`latest` in
    /// an OCI layout written by umoci or buildkit): no repository, so no ref.
    pub bare_tags: Vec<String>,
}

impl ImagePlan {
    /// An OCI manifest for an image the archive has none of (classic docker
    /// save, v1), as docker 25 writes into its own saves: OCI media types
    /// (the layers' from their sniffed compression), the same config bytes.
    /// Deterministic: the same image always gets the same manifest.
    pub(crate) fn synthesize_manifest(&self, layers: &[Imported]) -> Vec<u8> {
        let manifest = oci::Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_MANIFEST.to_string()),
            config: oci::Descriptor {
                media_type: oci::MEDIA_TYPE_CONFIG.to_string(),
                digest: Digest::of(&self.config),
                size: self.config.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: layers
                .iter()
                .map(|l| oci::Descriptor {
                    media_type: oci::layer_media_type(l.compression).to_string(),
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
    mut session: Option<&mut Session>,
    images: Vec<Image>,
    options: &LoadOptions,
    progress: &dyn Progress,
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
        .map(|image| plan_image(archive, session.as_deref_mut(), image, &mut unique))
        .collect::<Result<Vec<_>, _>>()?;
    // An explicit --platform must match what is loaded, even a single image.
    if let Some(want) = options.platform.as_ref().filter(|_| !options.all_platforms)
        && plans.iter().any(|p| !oci::platform_matches(&p.platform, want))
    {
        let present = plans.iter().map(|p| p.platform.to_string()).collect();
        return Err(LoadError::Platform { wanted: want.to_string(), present });
    }
    rename(&mut plans, options)?;
    if options.tag.is_none() {
        for plan in plans.iter().filter(|p| p.refs.is_empty() && !p.bare_tags.is_empty()) {
            progress.note(&format!(
                "the archive names image {} only by the tag {:?}, which has no repository: it is loaded without a \
                 name; name it with -t NAME[:TAG] (-t NAME keeps the tag)",
                Digest::of(&plan.config),
                plan.bare_tags.join(", ")
            ));
        }
    }
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
    if let Some(tag) = &options.tag
        && options.tag_is_repository
        && plans.iter().all(|p| !p.bare_tags.is_empty())
    {
        for plan in plans.iter_mut() {
            let refs = plan.bare_tags.iter().map(|t| tag.with_tag(t));
            plan.refs = refs
                .collect::<Result<_, _>>()
                .map_err(|e| LoadError::invalid(format!("--tag {}", tag.familiar()), e.to_string()))?;
        }
    } else if let Some(tag) = &options.tag {
        let images: std::collections::BTreeSet<String> = plans
            .iter()
            .map(|p| p.indexes.first().map_or_else(|| Digest::of(&p.config).to_string(), blob_identity))
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

/// What identifies a blob across an archive: its declared digest, else its source.
pub(crate) fn blob_identity(blob: &Blob) -> String {
    blob.digest.clone().unwrap_or_else(|| describe(&blob.source))
}

fn to_platform(p: &crate::plugin::model::Platform) -> Platform {
    Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().filter(|v| !v.is_empty()),
    }
}

/// Reads `blob` (at most [`MAX_JSON`]) and checks its declared digest.
pub(crate) fn read_verified(
    archive: &dyn Archive,
    session: Option<&mut Session>,
    blob: &Blob,
) -> Result<Vec<u8>, LoadError> {
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

/// Reads `image`'s config and manifest (digests checked), then checks it.
fn plan_image(
    archive: &dyn Archive,
    mut session: Option<&mut Session>,
    image: Image,
    unique: &mut usize,
) -> Result<ImagePlan, LoadError> {
    let config = read_verified(archive, session.as_deref_mut(), &image.config)?;
    let manifest = image.manifest.as_ref().map(|blob| read_verified(archive, session, blob)).transpose()?;
    check_image(image, config, manifest, unique)
}

/// Checks what a decoder said of one image against its config and manifest
/// bytes: media types, the manifest's config and layers, diff_ids, refs.
fn check_image(
    image: Image,
    config_bytes: Vec<u8>,
    manifest_bytes: Option<Vec<u8>>,
    unique: &mut usize,
) -> Result<ImagePlan, LoadError> {
    let (bare_tags, refs): (Vec<&String>, Vec<&String>) = image.refs.iter().partition(|r| is_bare_tag(r));
    let refs = refs
        .into_iter()
        .map(|r| r.parse::<Reference>().map_err(|e| LoadError::invalid("image reference", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;

    let config_what = describe(&image.config.source);
    if let Some(media_type) = image.config.media_type.as_deref().filter(|m| !oci::is_config(m)) {
        return Err(LoadError::invalid(&config_what, format!("media type {media_type} is not an image config")));
    }
    let config: oci::Config = serde_json::from_slice(&config_bytes)
        .map_err(|e| LoadError::invalid(&config_what, format!("not an image config: {e}")))?;
    let config_digest = Digest::of(&config_bytes);

    let manifest = match (&image.manifest, manifest_bytes) {
        (Some(blob), Some(bytes)) => {
            let what = describe(&blob.source);
            let (manifest, media_type) = match oci::Document::parse(&bytes, blob.media_type.as_deref()) {
                Ok(oci::Document::Manifest(manifest, media_type)) => (manifest, media_type),
                Ok(oci::Document::Index(..)) => {
                    return Err(LoadError::invalid(&what, "is an image index, where the decoder gave a manifest"));
                }
                Err(reason) => return Err(LoadError::invalid(&what, reason)),
            };
            let config_descriptor = &manifest.config;
            if config_descriptor.digest != config_digest {
                return Err(LoadError::invalid(
                    &what,
                    format!("names config {}, the decoder gave {config_digest}", config_descriptor.digest),
                ));
            }
            if config_descriptor.size != config_bytes.len() as u64 {
                return Err(LoadError::invalid(
                    &config_what,
                    format!("is {} bytes, the manifest says {}", config_bytes.len(), config_descriptor.size),
                ));
            }
            if !oci::is_config(&config_descriptor.media_type) {
                return Err(LoadError::invalid(
                    &what,
                    format!("config media type {} is not an image config", config_descriptor.media_type),
                ));
            }
            if manifest.layers.len() != image.layers.len() {
                return Err(LoadError::invalid(&what, "the decoder's layers do not match the manifest's"));
            }
            Some((bytes, media_type, manifest))
        }
        _ => None,
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
        let (digest, size, media_type) = match &manifest {
            Some((_, _, m)) => {
                let d = &m.layers[i];
                if declared.as_ref().is_some_and(|x| *x != d.digest) {
                    return Err(LoadError::invalid(&what, "the decoder's digest differs from the manifest's"));
                }
                (Some(d.digest.clone()), Some(d.size), Some(d.media_type.clone()))
            }
            None => (declared, None, layer.blob.media_type.clone()),
        };
        if let Some(media_type) = media_type.as_deref().filter(|m| oci::layer_compression(m).is_none()) {
            return Err(LoadError::invalid(&what, format!("media type {media_type} is not a layer msb knows")));
        }
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
            size,
            media_type,
            diff_id: diff_id.clone(),
        });
    }

    let platform = image.platform.as_ref().map(to_platform).unwrap_or_else(|| config.platform());
    Ok(ImagePlan {
        refs,
        platform,
        indexes: image.indexes,
        attachments: image.attachments,
        manifest: manifest.map(|(bytes, media_type, _)| (bytes, media_type)),
        config: config_bytes,
        layers,
        bare_tags: bare_tags.into_iter().cloned().collect(),
    })
}

/// Whether a name a decoder gave is a tag alone (`latest`, `1.0`): what an
/// OCI layout's `org.opencontainers.image.ref.name` holds when umoci,
/// buildkit or `skopeo … oci:DIR:TAG` wrote it. Any ref has a `/` or a `:`.
fn is_bare_tag(name: &str) -> bool {
    !name.contains(['/', ':', '@'])
}

/// What one load staged, by digest: size, and for images whether it is an
/// index (`None` for attachments), to check the descriptors pointing at it.
pub(crate) type Staged = BTreeMap<Digest, (u64, Option<bool>)>;

/// With `--all-platforms`: stages every index blob and attachment, and names
/// the outermost index of each group with the group's refs. Every index is
/// parsed (its media type is what its bytes are), and each of its
/// descriptors that points at something this load staged must state that
/// blob's size and kind.
pub(crate) fn stage_indexes(
    staging: &Staging,
    archive: &dyn Archive,
    mut session: Option<&mut Session>,
    plans: &[ImagePlan],
    staged: &mut Staged,
) -> Result<Vec<IndexEntry>, LoadError> {
    let mut entries = Vec::new();
    let mut documents = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for plan in plans.iter().filter(|p| !p.indexes.is_empty()) {
        for blob in &plan.indexes {
            if done.insert(blob_identity(blob)) {
                let what = describe(&blob.source);
                let bytes = read_verified(archive, session.as_deref_mut(), blob)?;
                let (index, media_type) = match oci::Document::parse(&bytes, blob.media_type.as_deref()) {
                    Ok(oci::Document::Index(index, media_type)) => (index, media_type),
                    Ok(oci::Document::Manifest(..)) => {
                        return Err(LoadError::invalid(&what, "is an image manifest, where the decoder gave an index"));
                    }
                    Err(reason) => return Err(LoadError::invalid(&what, reason)),
                };
                let digest = staging.add_blob(&bytes)?;
                staged.insert(digest.clone(), (bytes.len() as u64, Some(true)));
                if std::ptr::eq(blob, &plan.indexes[0]) {
                    entries.extend(super::index_entries(&plan.refs, &media_type, &digest, bytes.len() as u64, None));
                }
                documents.push((what, index));
            }
        }
        for blob in &plan.attachments {
            if done.insert(blob_identity(blob)) {
                let (digest, size) = stage_attachment(staging, archive, blob)?;
                staged.insert(digest, (size, None));
            }
        }
    }
    for (what, index) in &documents {
        for child in &index.manifests {
            let Some(&(size, kind)) = staged.get(&child.digest) else { continue };
            if child.size != size {
                return Err(LoadError::invalid(
                    what,
                    format!("lists {} with size {}, it is {size} bytes", child.digest, child.size),
                ));
            }
            if let Some(is_index) = kind
                && oci::is_index(&child.media_type) != is_index
            {
                let is = if is_index { "an image index" } else { "an image manifest" };
                return Err(LoadError::invalid(
                    what,
                    format!("labels {} {}, it is {is}", child.digest, child.media_type),
                ));
            }
        }
    }
    Ok(entries)
}

/// Copies an attachment into the store as it is, verifying its declared
/// digest on the way (never held in memory: it may be large); returns its
/// digest and size.
fn stage_attachment(staging: &Staging, archive: &dyn Archive, blob: &Blob) -> Result<(Digest, u64), LoadError> {
    let what = describe(&blob.source);
    let declared: Digest = match &blob.digest {
        Some(d) => d.parse().map_err(|e| LoadError::invalid(&what, format!("{e}")))?,
        None => return Err(LoadError::invalid(&what, "an attachment needs a declared digest")),
    };
    let path = staging.store().blob_path(&declared);
    if let Ok(meta) = path.metadata()
        && meta.is_file()
    {
        staging.require(path);
        return Ok((declared, meta.len()));
    }
    if matches!(blob.source, Source::Stream(_)) {
        return Err(LoadError::invalid(&what, "an attachment cannot be a stream"));
    }
    let io_err = |error| LoadError::Io { what: what.clone(), error };
    let mut file = staging.temp_file()?;
    let mut reader = HashingReader::new(source::open(archive, None, &blob.source)?);
    std::io::copy(&mut reader, file.as_file_mut()).map_err(io_err)?;
    let (actual, size) = reader.finish().map_err(io_err)?;
    if actual != declared {
        return Err(LoadError::invalid(&what, format!("content has digest {actual}, the archive says {declared}")));
    }
    staging.add_blob_file(file, &declared)?;
    Ok((declared, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Compression;
    use crate::plugin::model::Platform as WitPlatform;

    fn layer_plan(media_type: Option<&str>, size: Option<u64>) -> LayerPlan {
        LayerPlan {
            key: LayerKey::Unique(1),
            what: "layer 1".into(),
            source: Source::Bytes(vec![]),
            digest: Some(Digest::of(b"blob")),
            size,
            media_type: media_type.map(str::to_string),
            diff_id: Digest::of(b"tar"),
        }
    }

    fn imported(compression: Option<Compression>) -> Imported {
        Imported {
            digest: Digest::of(b"blob"),
            media_type: oci::layer_media_type(compression).into(),
            compression,
            size: 4,
            diff_id: Digest::of(b"tar"),
        }
    }

    fn error(result: Result<(), LoadError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn a_layer_is_checked_against_every_declaration() {
        let gzip = Some(oci::MEDIA_TYPE_LAYER_GZIP);
        layer_plan(gzip, Some(4)).verify(&imported(Some(Compression::Gzip))).unwrap();
        layer_plan(None, None).verify(&imported(Some(Compression::Xz))).unwrap();
        let mut other = imported(Some(Compression::Gzip));
        other.digest = Digest::of(b"other");
        assert!(error(layer_plan(gzip, None).verify(&other)).contains("the archive says"));
        let mut other = imported(Some(Compression::Gzip));
        other.diff_id = Digest::of(b"other");
        assert!(error(layer_plan(gzip, None).verify(&other)).contains("the config says"));
        assert!(
            error(layer_plan(gzip, Some(5)).verify(&imported(Some(Compression::Gzip))))
                .contains("blob is 4 bytes, its descriptor says 5")
        );
        // Compression is sniffed, as containerd and docker do: skopeo labels
        // the uncompressed layers it writes with
        // --dest-oci-accept-uncompressed-layers tar+gzip, and they load.
        layer_plan(gzip, None).verify(&imported(None)).unwrap();
    }

    fn image(index: Option<&str>, platform: Option<(&str, &str)>) -> Image {
        let blob = |digest: Option<&str>| Blob {
            media_type: None,
            digest: digest.map(str::to_string),
            source: Source::Bytes(vec![]),
        };
        Image {
            refs: vec![],
            platform: platform.map(|(os, architecture)| WitPlatform {
                os: os.into(),
                architecture: architecture.into(),
                variant: None,
            }),
            indexes: index.map(|d| blob(Some(d))).into_iter().collect(),
            manifest: None,
            config: blob(None),
            layers: vec![],
            attachments: vec![],
        }
    }

    fn options(platform: Option<&str>, all: bool) -> LoadOptions {
        LoadOptions {
            source: crate::input::Source::Stdin,
            plugin: None,
            platform: platform.and_then(oci::parse_platform),
            all_platforms: all,
            renames: vec![],
            tag: None,
            tag_is_repository: false,
            max_layer_bytes: super::super::DEFAULT_MAX_LAYER_BYTES,
        }
    }

    #[test]
    fn platforms_are_chosen_per_index() {
        let images = || {
            vec![
                image(Some("i"), Some(("linux", "amd64"))),
                image(Some("i"), Some(("linux", "arm64"))),
                image(None, None),
            ]
        };
        let chosen = select_platforms(images(), &options(Some("linux/arm64"), false)).unwrap();
        assert_eq!(chosen.len(), 2, "one of the index, and the plain image");
        assert_eq!(chosen[0].platform.as_ref().unwrap().architecture, "arm64");
        assert_eq!(select_platforms(images(), &options(None, true)).unwrap().len(), 3);
        let Err(LoadError::Platform { wanted, present }) =
            select_platforms(images(), &options(Some("linux/s390x"), false))
        else {
            panic!("a platform the index lacks is refused")
        };
        assert_eq!((wanted.as_str(), present), ("linux/s390x", vec!["linux/amd64".to_string(), "linux/arm64".into()]));
    }

    const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}"#;
    const LAYER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn manifest(config_digest: &str, config_size: usize, config_type: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{config_type}","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"{layer_type}","digest":"{LAYER}","size":7}}]}}"#,
            oci::MEDIA_TYPE_MANIFEST
        )
    }

    fn good_manifest() -> String {
        manifest(
            &Digest::of(CONFIG.as_bytes()).to_string(),
            CONFIG.len(),
            oci::MEDIA_TYPE_CONFIG,
            oci::MEDIA_TYPE_LAYER_GZIP,
        )
    }

    /// An image as a decoder would describe it, with one layer.
    fn described(config_type: Option<&str>, layer_digest: Option<&str>, diff_id: Option<&str>) -> Image {
        let blob = |media_type: Option<&str>, digest: Option<&str>| Blob {
            media_type: media_type.map(str::to_string),
            digest: digest.map(str::to_string),
            source: Source::Entry("entry".into()),
        };
        Image {
            refs: vec!["alpine:3.20".into(), "latest".into()],
            platform: None,
            indexes: vec![],
            manifest: Some(blob(None, None)),
            config: blob(config_type, None),
            layers: vec![crate::plugin::model::Layer {
                blob: blob(None, layer_digest),
                diff_id: diff_id.map(str::to_string),
            }],
            attachments: vec![],
        }
    }

    fn check(image: Image, config: &str, manifest: Option<String>) -> Result<ImagePlan, String> {
        check_image(image, config.as_bytes().to_vec(), manifest.map(String::into_bytes), &mut 0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_consistent_image_is_planned() {
        let plan = check(described(None, Some(LAYER), None), CONFIG, Some(good_manifest())).unwrap();
        assert_eq!(plan.refs, vec!["alpine:3.20".parse::<Reference>().unwrap()]);
        assert_eq!(plan.bare_tags, ["latest"]);
        assert_eq!(plan.platform.to_string(), "linux/amd64");
        assert_eq!(plan.manifest.unwrap().1, oci::MEDIA_TYPE_MANIFEST);
        let layer = &plan.layers[0];
        assert_eq!((layer.size, layer.media_type.as_deref()), (Some(7), Some(oci::MEDIA_TYPE_LAYER_GZIP)));
        assert_eq!(layer.key, LayerKey::Digest(LAYER.parse().unwrap()));
    }

    #[test]
    fn every_contradiction_of_an_image_is_refused() {
        let digest = Digest::of(CONFIG.as_bytes()).to_string();
        let unknown = "application/vnd.example.unknown.v1";
        let other = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#, oci::MEDIA_TYPE_INDEX);
        let cases: Vec<(Image, &str, Option<String>, &str)> = vec![
            (described(Some(unknown), None, None), CONFIG, Some(good_manifest()), "is not an image config"),
            (described(None, None, None), "[]", None, "not an image config"),
            (described(None, None, None), CONFIG, Some("{".into()), "not an image manifest or index"),
            (described(None, None, None), CONFIG, Some(index), "is an image index, where the decoder gave a manifest"),
            (
                described(None, None, None),
                CONFIG,
                Some(manifest(other, CONFIG.len(), oci::MEDIA_TYPE_CONFIG, oci::MEDIA_TYPE_LAYER)),
                "names config",
            ),
            (
                described(None, None, None),
                CONFIG,
                Some(manifest(&digest, 5, oci::MEDIA_TYPE_CONFIG, oci::MEDIA_TYPE_LAYER)),
                "the manifest says 5",
            ),
            (
                described(None, None, None),
                CONFIG,
                Some(manifest(&digest, CONFIG.len(), unknown, oci::MEDIA_TYPE_LAYER)),
                "config media type application/vnd.example.unknown.v1 is not an image config",
            ),
            (
                described(None, None, None),
                CONFIG,
                Some(manifest(&digest, CONFIG.len(), oci::MEDIA_TYPE_CONFIG, unknown)),
                "is not a layer msb knows",
            ),
            (described(None, Some(other), None), CONFIG, Some(good_manifest()), "digest differs from the manifest's"),
            (described(None, Some("sha256:zz"), None), CONFIG, Some(good_manifest()), "invalid digest"),
            (described(None, None, Some(other)), CONFIG, Some(good_manifest()), "the decoder says diff_id"),
            (
                described(None, None, None),
                r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#,
                None,
                "lists 0 diff_ids for 1 layers",
            ),
        ];
        for (image, config, manifest, expected) in cases {
            let error = check(image, config, manifest).err().unwrap_or_else(|| panic!("{expected}: accepted"));
            assert!(error.contains(expected), "expected {expected:?} in {error:?}");
        }
        let mut two = described(None, None, None);
        two.layers.push(two.layers[0].clone());
        assert!(check(two, CONFIG, Some(good_manifest())).err().unwrap().contains("do not match the manifest's"));
        let mut bad_ref = described(None, None, None);
        bad_ref.refs = vec!["not a/ref:1".into()];
        assert!(check(bad_ref, CONFIG, None).err().unwrap().contains("invalid image reference"));
    }

    #[test]
    fn bare_tags_are_no_refs() {
        for tag in ["latest", "1.0", "v2_x"] {
            assert!(is_bare_tag(tag), "{tag}");
        }
        for reference in ["alpine:3.20", "user/app", "localhost:5000/x", "x@sha256:00"] {
            assert!(!is_bare_tag(reference), "{reference}");
        }
    }
}
