//! `msb pull`: a registry image into the store, through the same checks and
//! layer import as `msb load`.
//!
//! The registry is walked here (index, the wanted platforms' manifests),
//! and its repository is shown to the load pipeline as an [`Archive`] whose
//! files are `blobs/sha256/<hex>`: manifests and configs are fetched whole
//! (small, capped), layers stream from the network into the importer, which
//! hashes, decompresses and writes the EROFS image in one pass, a few
//! layers at a time. A layer whose blob the store has is not downloaded.

use super::client::{BlobReader, Client};
use super::locations::Locations;
use super::{RegistryError, RegistryOptions, Repository};
use crate::digest::Digest;
use crate::input::{Archive, Entry, InputError};
use crate::load::{self, LoadError, LoadOptions, LoadedImage};
use crate::oci::{self, Descriptor, Document, Platform};
use crate::plugin::model::{self as wit, Blob, Image, Layer, Source};
use crate::progress::Progress;
use crate::reference::Reference;
use crate::store::Store;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// Layers downloaded at once (docker's default).
pub const PARALLEL_DOWNLOADS: usize = 3;
/// The most a manifest, index or config may hold.
const MAX_JSON: u64 = 16 << 20;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `REF` (a tag or `@sha256:` digest).
    pub reference: Reference,
    /// From an index, this platform instead of the host's.
    pub platform: Option<Platform>,
    /// Every platform of an index; the ref then names the index.
    pub all_platforms: bool,
    /// Credentials and TLS.
    pub registry: RegistryOptions,
    /// The most bytes one layer may have uncompressed.
    pub max_layer_bytes: u64,
}

/// Pulls `options.reference` into `store`; returns the images as a load
/// would (one per platform pulled).
pub fn pull(store: &Store, options: &PullOptions, progress: &dyn Progress) -> Result<Vec<LoadedImage>, RegistryError> {
    let repository = Repository::of(&options.reference);
    let client = Client::new(&repository.registry, &options.registry)?;
    let archive = RegistryArchive::new(&client, &repository.path, progress);
    let images = walk(&client, &repository, &archive, options)?;
    let load_options = LoadOptions {
        // Not read by `load_images`: the archive is the registry.
        source: crate::input::Source::Path(options.reference.to_string().into()),
        plugin: None,
        platform: options.platform.clone(),
        all_platforms: options.all_platforms,
        renames: Vec::new(),
        tag: None,
        tag_is_repository: false,
        max_layer_bytes: options.max_layer_bytes,
    };
    let loaded = load::load_images(store, &archive, None, images, &load_options, PARALLEL_DOWNLOADS, progress)?;
    let locations = Locations::new(store);
    for image in &loaded {
        for digest in image.layers.iter().map(|l| &l.digest).chain([&image.config_digest]) {
            locations.add(digest, &repository);
        }
    }
    Ok(loaded)
}

/// The images `options.reference` names: its manifest, or from its index
/// the wanted platform's (every platform's, and the attestations, with
/// `--all-platforms`). Registers every blob they name with `archive`.
fn walk(
    client: &Client,
    repository: &Repository,
    archive: &RegistryArchive,
    options: &PullOptions,
) -> Result<Vec<Image>, RegistryError> {
    let reference = &options.reference;
    let version = reference.digest().or(reference.tag()).unwrap_or("latest");
    let top = client.get_manifest(&repository.path, version, MAX_JSON)?;
    let what = reference.familiar();
    let refs = vec![reference.to_string()];
    let top_blob = archive.add_small(&top.media_type, &top.digest, top.bytes.clone());
    let index =
        match Document::parse(&top.bytes, Some(&top.media_type)).map_err(|e| RegistryError::invalid(&what, e))? {
            Document::Manifest(manifest, _) => {
                return Ok(vec![image(archive, &what, &manifest, top_blob, None, Vec::new(), &refs)?]);
            }
            Document::Index(index, _) => index,
        };
    let (attestations, children): (Vec<&Descriptor>, Vec<&Descriptor>) =
        index.manifests.iter().filter(|d| oci::is_manifest(&d.media_type)).partition(|d| is_attestation(d));
    let chosen: Vec<&Descriptor> = if options.all_platforms {
        children
    } else {
        let want = options.platform.clone().unwrap_or_else(oci::host_platform);
        let owned: Vec<Descriptor> = children.iter().map(|d| (*d).clone()).collect();
        match oci::choose_platform(&owned, &want) {
            Some(found) => children.into_iter().filter(|d| d.digest == found.digest).take(1).collect(),
            None => {
                let present = owned.iter().filter_map(|d| d.platform.as_ref()).map(|p| p.to_string()).collect();
                return Err(LoadError::Platform { wanted: want.to_string(), present }.into());
            }
        }
    };
    let mut attachments = Vec::new();
    if options.all_platforms {
        for descriptor in attestations {
            let (blob, manifest) = fetch_manifest(client, repository, archive, descriptor, &what)?;
            attachments.push(blob);
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                attachments.push(archive.add_blob(&d.media_type, &d.digest, d.size));
            }
        }
    }
    let mut images = Vec::new();
    for descriptor in chosen {
        let (blob, manifest) = fetch_manifest(client, repository, archive, descriptor, &what)?;
        let platform = descriptor.platform.as_ref().map(|p| wit::Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
        });
        let mut image = image(archive, &what, &manifest, blob, platform, vec![top_blob.clone()], &refs)?;
        image.attachments = attachments.clone();
        images.push(image);
    }
    Ok(images)
}

/// Fetches the manifest an index `descriptor` names (its size and digest
/// checked) and registers it with `archive`.
fn fetch_manifest(
    client: &Client,
    repository: &Repository,
    archive: &RegistryArchive,
    descriptor: &Descriptor,
    what: &str,
) -> Result<(Blob, oci::Manifest), RegistryError> {
    let fetched = client.get_manifest(&repository.path, &descriptor.digest.to_string(), MAX_JSON)?;
    if fetched.bytes.len() as u64 != descriptor.size {
        return Err(RegistryError::invalid(
            what,
            format!(
                "manifest {} is {} bytes, the index says {}",
                descriptor.digest,
                fetched.bytes.len(),
                descriptor.size
            ),
        ));
    }
    let manifest = match Document::parse(&fetched.bytes, Some(&descriptor.media_type)) {
        Ok(Document::Manifest(manifest, _)) => manifest,
        Ok(Document::Index(..)) => {
            return Err(RegistryError::invalid(what, "an index inside an index is not supported"));
        }
        Err(e) => return Err(RegistryError::invalid(format!("{what}: manifest {}", descriptor.digest), e)),
    };
    Ok((archive.add_small(&descriptor.media_type, &descriptor.digest, fetched.bytes), manifest))
}

/// The image `manifest` describes, its blobs registered with `archive`.
fn image(
    archive: &RegistryArchive,
    what: &str,
    manifest: &oci::Manifest,
    manifest_blob: Blob,
    platform: Option<wit::Platform>,
    indexes: Vec<Blob>,
    refs: &[String],
) -> Result<Image, RegistryError> {
    if manifest.layers.is_empty() && !oci::is_config(&manifest.config.media_type) {
        return Err(RegistryError::invalid(
            what,
            format!("not a container image (config {})", manifest.config.media_type),
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .map(|d| Layer { blob: archive.add_blob(&d.media_type, &d.digest, d.size), diff_id: None })
        .collect();
    Ok(Image {
        refs: refs.to_vec(),
        platform,
        indexes,
        manifest: Some(manifest_blob),
        config: archive.add_blob(&manifest.config.media_type, &manifest.config.digest, manifest.config.size),
        layers,
        attachments: Vec::new(),
    })
}

/// Buildx attestation manifests ride in indexes as `unknown/unknown`.
fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor.annotations.get("vnd.docker.reference.type").is_some_and(|t| t == "attestation-manifest")
        || descriptor.platform.as_ref().is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// One repository of a registry, seen as an archive of `blobs/sha256/<hex>`.
struct RegistryArchive<'c> {
    client: &'c Client,
    repo: String,
    progress: &'c dyn Progress,
    /// Blobs fetched whole (manifests, configs), by path.
    small: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// Declared sizes, by path.
    sizes: Mutex<HashMap<String, u64>>,
}

impl<'c> RegistryArchive<'c> {
    fn new(client: &'c Client, repo: &str, progress: &'c dyn Progress) -> Self {
        RegistryArchive { client, repo: repo.into(), progress, small: Mutex::default(), sizes: Mutex::default() }
    }

    /// Names blob `digest` of `size` bytes; returns its blob for the pipeline.
    fn add_blob(&self, media_type: &str, digest: &Digest, size: u64) -> Blob {
        let path = blob_path(digest);
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).insert(path.clone(), size);
        Blob { media_type: Some(media_type.into()), digest: Some(digest.to_string()), source: Source::Entry(path) }
    }

    /// Adds a blob fetched already.
    fn add_small(&self, media_type: &str, digest: &Digest, bytes: Vec<u8>) -> Blob {
        let blob = self.add_blob(media_type, digest, bytes.len() as u64);
        self.small.lock().unwrap_or_else(|p| p.into_inner()).insert(blob_path(digest), Arc::new(bytes));
        blob
    }

    fn digest_of(path: &str) -> Result<Digest, InputError> {
        let hex = path.strip_prefix("blobs/sha256/").ok_or_else(|| InputError::NoEntry(path.into()))?;
        format!("sha256:{hex}").parse().map_err(|_| InputError::NoEntry(path.into()))
    }

    /// A small blob, fetched whole once (at most [`MAX_JSON`] bytes).
    fn small(&self, path: &str) -> Result<Arc<Vec<u8>>, InputError> {
        if let Some(bytes) = self.small.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(bytes.clone());
        }
        let digest = Self::digest_of(path)?;
        let mut bytes = Vec::new();
        self.client.get_blob(&self.repo, &digest, self.size(path).ok()).take(MAX_JSON + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(InputError::TooLarge { entry: path.into(), limit: MAX_JSON });
        }
        let bytes = Arc::new(bytes);
        self.small.lock().unwrap_or_else(|p| p.into_inner()).insert(path.into(), bytes.clone());
        Ok(bytes)
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

impl Archive for RegistryArchive<'_> {
    fn entries(&self) -> &[Entry] {
        &[]
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, InputError> {
        let bytes = self.small(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(len.min(crate::input::MAX_READ)).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>, InputError> {
        if let Some(bytes) = self.small.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(Box::new(io::Cursor::new(bytes.as_ref().clone())));
        }
        let digest = Self::digest_of(path)?;
        let size = self.size(path).ok();
        let id = digest.hex()[..12].to_string();
        self.progress.transfer_start(&id, size);
        let inner = self.client.get_blob(&self.repo, &digest, size);
        Ok(Box::new(Transfer { inner, id, progress: self.progress, ended: false }))
    }

    fn size(&self, path: &str) -> Result<u64, InputError> {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
            .ok_or_else(|| InputError::NoEntry(path.into()))
    }
}

/// A layer download, reported to the progress as one transfer.
struct Transfer<'c> {
    inner: BlobReader<'c>,
    id: String,
    progress: &'c dyn Progress,
    ended: bool,
}

impl Read for Transfer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.ended {
            self.ended = true;
            self.progress.transfer_end(&self.id, "Pull complete");
        }
        self.progress.transfer_advance(&self.id, n as u64);
        Ok(n)
    }
}
