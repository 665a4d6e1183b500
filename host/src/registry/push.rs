//! `msb push`: images to a registry, byte for byte: from the store (an
//! image, or an index with the manifests the store has), or straight from
//! an archive through the decoders, without loading it.
//!
//! Each blob is asked for first (`HEAD`): one the repository has is
//! skipped, one another repository of the registry has (the blob-location
//! cache says which) is mounted, the rest are uploaded, a few at a time.
//! Manifests go last, children before their index, exactly as stored, so
//! the registry's digests are the store's.

use super::client::{Client, OpenAt, Upload};
use super::locations::Locations;
use super::{RegistryError, RegistryOptions, Repository};
use crate::digest::Digest;
use crate::input;
use crate::load::{self, LoadOptions, VerifiedBlob};
use crate::oci::{self, Document};
use crate::plugin::Runtime;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::store::Store;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Blobs uploaded at once (docker's default).
pub const PARALLEL_UPLOADS: usize = 3;
/// The most a manifest or index may hold.
const MAX_JSON: u64 = 16 << 20;

/// One blob pushed.
#[derive(Debug, Clone)]
pub struct PushedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// How it got there.
    pub how: Upload,
    /// A layer pushed as an uncompressed tar.
    pub uncompressed: bool,
}

/// One image (manifest or index) pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where it went.
    pub reference: Reference,
    /// The digest of the manifest or index the registry now has.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Layer and config blobs, of every platform.
    pub blobs: Vec<PushedBlob>,
}

/// A manifest or index to push after its blobs or children, exactly these bytes.
struct Manifest {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
}

/// What one push sends, in order: blobs, then manifests, then the top one.
#[derive(Default)]
struct Plan {
    blobs: Vec<VerifiedBlob>,
    /// Platform manifests of an index, pushed by digest.
    children: Vec<Manifest>,
}

/// Pushes the stored image `name` (ref or ID) to `dest`. A ref naming an
/// index pushes the index with every manifest of it the store has.
pub fn push_stored(
    store: &Store,
    name: &str,
    dest: &Reference,
    options: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<Pushed, RegistryError> {
    let view = store.resolve(name)?;
    let by_ref = name.parse::<Reference>().ok().is_some_and(|r| view.entry.reference.as_ref() == Some(&r));
    let top = if by_ref { view.entry.digest.clone() } else { view.manifest_digest.clone() };
    let mut plan = Plan::default();
    let top = stored_document(store, &top, &mut plan, 0)?;
    send(store, dest, plan, top, options, progress)
}

/// Adds the blobs and child manifests of stored document `digest` to
/// `plan`; returns the document.
fn stored_document(store: &Store, digest: &Digest, plan: &mut Plan, depth: usize) -> Result<Manifest, RegistryError> {
    let bytes = store.read_blob(digest, MAX_JSON)?;
    let what = format!("stored {digest}");
    match Document::parse(&bytes, None).map_err(|e| RegistryError::invalid(&what, e))? {
        Document::Index(index, media_type) => {
            if depth > 0 {
                return Err(RegistryError::invalid(what, "an index inside an index is not supported"));
            }
            for child in &index.manifests {
                if !store.blob_path(&child.digest).is_file() {
                    return Err(RegistryError::invalid(
                        what,
                        format!("lists {} ({}), which the store does not have", child.digest, describe_platform(child)),
                    ));
                }
                let document = stored_document(store, &child.digest, plan, depth + 1)?;
                plan.children.push(document);
            }
            Ok(Manifest { digest: digest.clone(), media_type, bytes })
        }
        Document::Manifest(manifest, media_type) => {
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                let path = store.blob_path(&d.digest);
                let size = path
                    .metadata()
                    .map_err(|e| RegistryError::invalid(format!("stored {}", d.digest), e.to_string()))?
                    .len();
                plan.blobs.push(VerifiedBlob {
                    digest: d.digest.clone(),
                    size,
                    media_type: d.media_type.clone(),
                    open: load::from_file(path),
                });
            }
            Ok(Manifest { digest: digest.clone(), media_type, bytes })
        }
    }
}

fn describe_platform(d: &oci::Descriptor) -> String {
    d.platform.as_ref().map_or_else(|| d.media_type.clone(), |p| p.to_string())
}

/// Where `push -i` sends an archive's images.
#[derive(Debug, Clone)]
pub enum Destination {
    /// The archive's only image, to this ref.
    Image(Reference),
    /// Every image, to `registry/prefix/<its repository path>:<tag>`
    /// (mindthegap's `--to-registry`).
    Registry {
        /// `host[:port]`.
        registry: String,
        /// Path prepended to each repository, possibly empty.
        prefix: String,
    },
}

/// What `push -i` reads and how.
#[derive(Debug, Clone)]
pub struct ArchivePush {
    /// The archive.
    pub source: input::Source,
    /// A decoder name or `.wasm` path; `None` detects.
    pub plugin: Option<String>,
    /// From a multi-platform index, this platform instead of the host's.
    pub platform: Option<oci::Platform>,
    /// Every platform of an index (pushed with the index).
    pub all_platforms: bool,
    /// Where to.
    pub destination: Destination,
    /// The most bytes one layer may have uncompressed.
    pub max_layer_bytes: u64,
}

/// Pushes the images of an archive, read through the decoders and
/// verified (every digest and diff_id) but not loaded: only the store's
/// `tmp/` (for layers a decoder streams) and the blob-location cache are
/// written.
pub fn push_archive(
    store: &Store,
    runtime: &Arc<Runtime>,
    request: &ArchivePush,
    options: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<Vec<Pushed>, RegistryError> {
    let load_options = LoadOptions {
        source: request.source.clone(),
        plugin: request.plugin.clone(),
        platform: request.platform.clone(),
        all_platforms: request.all_platforms,
        renames: Vec::new(),
        tag: None,
        tag_is_repository: false,
        max_layer_bytes: request.max_layer_bytes,
    };
    let decoded = load::decode_archive(store, runtime, &load_options, progress)?;
    let groups = decoded.groups();
    if let Destination::Image(dest) = &request.destination
        && groups.len() != 1
    {
        return Err(RegistryError::invalid(
            request.source.display_name(),
            format!(
                "holds {} images; push one with --platform, or all with --to-registry HOST (to {})",
                groups.len(),
                dest.familiar()
            ),
        ));
    }
    let mut pushed = Vec::new();
    for group in groups {
        let dest = match &request.destination {
            Destination::Image(dest) => dest.clone(),
            Destination::Registry { registry, prefix } => {
                let Some(name) = decoded.reference(&group) else {
                    progress.note(&format!("{}: the archive gives it no name; skipped", decoded.describe(&group)));
                    continue;
                };
                let repository = Repository::of(&name);
                let path = if prefix.is_empty() { repository.path } else { format!("{prefix}/{}", repository.path) };
                let version =
                    name.tag().map_or_else(|| format!("@{}", name.digest().unwrap_or_default()), |t| format!(":{t}"));
                format!("{registry}/{path}{version}").parse().map_err(|e: crate::reference::InvalidReference| {
                    RegistryError::invalid(name.familiar(), e.to_string())
                })?
            }
        };
        let verified = decoded.verify(&group, &store.tmp_dir())?;
        let mut plan = Plan::default();
        plan.blobs = verified.blobs;
        plan.children = verified
            .children
            .into_iter()
            .map(|(digest, media_type, bytes)| Manifest { digest, media_type, bytes })
            .collect();
        let (digest, media_type, bytes) = verified.top;
        pushed.push(send(store, &dest, plan, Manifest { digest, media_type, bytes }, options, progress)?);
    }
    Ok(pushed)
}

/// Sends `plan` and then `top` (tagged as `dest`) to `dest`'s repository.
fn send(
    store: &Store,
    dest: &Reference,
    plan: Plan,
    top: Manifest,
    options: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<Pushed, RegistryError> {
    let repository = Repository::of(dest);
    let client = Client::new(&repository.registry, options)?;
    let locations = Locations::new(store);
    let mut unique = Vec::new();
    for blob in plan.blobs {
        if !unique.iter().any(|b: &VerifiedBlob| b.digest == blob.digest) {
            unique.push(blob);
        }
    }
    let queue = Mutex::new(unique.iter());
    let results = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_UPLOADS.min(unique.len()) {
            scope.spawn(|| {
                loop {
                    if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    let Some(blob) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else { return };
                    match push_blob(&client, &repository, &locations, blob, progress) {
                        Ok(pushed) => results.lock().unwrap_or_else(|p| p.into_inner()).push(pushed),
                        Err(e) => {
                            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut blobs = results.into_inner().unwrap_or_else(|p| p.into_inner());
    blobs.sort_by_key(|b| unique.iter().position(|u| u.digest == b.digest));
    for child in &plan.children {
        client.put_manifest(&repository.path, &child.digest.to_string(), &child.bytes, &child.media_type)?;
    }
    let version = dest.tag().map_or_else(|| top.digest.to_string(), str::to_string);
    if let Some(pinned) = dest.digest().filter(|d| *d != top.digest.to_string()) {
        return Err(RegistryError::invalid(
            dest.familiar(),
            format!("the image's manifest is {}, not {pinned}", top.digest),
        ));
    }
    client.put_manifest(&repository.path, &version, &top.bytes, &top.media_type)?;
    Ok(Pushed {
        reference: dest.clone(),
        digest: top.digest,
        media_type: top.media_type,
        size: top.bytes.len() as u64,
        blobs,
    })
}

/// Makes one blob a blob of `repository`, and remembers it is there.
fn push_blob(
    client: &Client,
    repository: &Repository,
    locations: &Locations,
    blob: &VerifiedBlob,
    progress: &dyn Progress,
) -> Result<PushedBlob, RegistryError> {
    let id = blob.digest.hex()[..12].to_string();
    let mount_from = locations.in_registry(&blob.digest, &repository.registry);
    progress.transfer_start(&id, Some(blob.size));
    // The upload body is read by the HTTP client, which needs it owned:
    // it counts into a shared counter that a ticker reports.
    let sent = Arc::new(AtomicU64::new(0));
    let open: OpenAt<'_> = &|offset| {
        let inner = (blob.open)(offset)?;
        Ok(Box::new(CountInto { inner, sent: sent.clone() }) as Box<dyn Read + Send>)
    };
    let done = AtomicBool::new(false);
    let how = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut reported = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let now = sent.load(Ordering::Relaxed);
                progress.transfer_advance(&id, now.saturating_sub(reported));
                reported = reported.max(now);
            }
        });
        let how = client.push_blob(&repository.path, &blob.digest, blob.size, &mount_from, open);
        done.store(true, Ordering::Relaxed);
        how
    })?;
    let uncompressed = oci::layer_compression(&blob.media_type) == Some(None);
    let status = match &how {
        Upload::Exists => "Layer already exists".to_string(),
        Upload::Mounted(from) => format!("Mounted from {from}"),
        Upload::Uploaded if uncompressed => "Pushed (uncompressed)".to_string(),
        Upload::Uploaded => "Pushed".to_string(),
    };
    progress.transfer_end(&id, &status);
    locations.add(&blob.digest, repository);
    Ok(PushedBlob {
        digest: blob.digest.clone(),
        size: blob.size,
        media_type: blob.media_type.clone(),
        how,
        uncompressed,
    })
}

/// A reader that adds what it reads to a shared count.
struct CountInto {
    inner: Box<dyn Read + Send>,
    sent: Arc<AtomicU64>,
}

impl Read for CountInto {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
