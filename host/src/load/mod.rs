//! One `msb load`: the byte path from input to committed store.
//!
//! 1. [`crate::input`] opens and indexes the archive;
//! 2. [`detect`] picks the decoder;
//! 3. the decoder describes the images (in its sandbox);
//! 4. [`plan`] checks what it said, picks platforms, reads and verifies
//!    manifests and configs;
//! 5. [`layer`] imports each new layer in one pass (hash, decompress, hash,
//!    EROFS), in parallel;
//! 6. the staged files and refs are committed ([`crate::store::Staging`]).

mod decoded;
mod detect;
mod error;
mod layer;
mod pipe;
mod plan;
mod source;

pub use crate::digest::Digest;
use crate::input::{self, Archive};
use crate::plugin::model::Image;
use crate::plugin::{Registry, Runtime, Session};
use crate::progress::{Phase, Progress};
use crate::reference::Reference;
use crate::store::{IndexEntry, Platform, Staging, Store};
pub(crate) use decoded::from_file;
pub use decoded::{Decoded, OpenBlob, Verified, VerifiedBlob, decode_archive};
pub use detect::verdicts;
pub use error::LoadError;
pub use layer::{Imported, LAYER_LIMIT_VAR};
use plan::{ImagePlan, LayerKey};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What to load and how.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The archive.
    pub source: input::Source,
    /// A decoder name or `.wasm` path; `None` detects.
    pub plugin: Option<String>,
    /// The platform to pick from a multi-platform index; `None` is the host's.
    pub platform: Option<Platform>,
    /// Load every platform of a multi-platform index; refs then name the index.
    pub all_platforms: bool,
    /// `-r SRC=DST`: rename images on the way in.
    pub renames: Vec<(Reference, Reference)>,
    /// `-t REF`: the name of the archive's only image, instead of its own.
    /// A repository alone (`tag_is_repository`) names every image that the
    /// archive names by a tag only, with that tag (containerd's
    /// `--base-name`).
    pub tag: Option<Reference>,
    /// `-t` gave a repository without tag or digest.
    pub tag_is_repository: bool,
    /// The most bytes one layer may have uncompressed ([`DEFAULT_MAX_LAYER_BYTES`]).
    pub max_layer_bytes: u64,
}

/// Default of [`LoadOptions::max_layer_bytes`]: 64 GiB, far above any real
/// layer, far below what a small compressed bomb could make the writer write.
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 30;

/// One image that was loaded.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Its refs (empty: known by ID only).
    pub refs: Vec<Reference>,
    /// Digest of its manifest.
    pub manifest_digest: Digest,
    /// Digest of its config (the image ID).
    pub config_digest: Digest,
    /// Its platform.
    pub platform: Platform,
    /// Its layers, base first.
    pub layers: Vec<Imported>,
}

/// Loads the archive `options` names into `store`, reporting the long
/// phases to `progress`.
pub fn load(
    store: &Store,
    runtime: &Arc<Runtime>,
    options: &LoadOptions,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>, LoadError> {
    let registry = Registry::load(runtime, &store.plugins_dir())?;
    let input = input::open(&options.source, &store.tmp_dir(), progress)?;
    let archive: Arc<dyn Archive> = input.archive;
    let mut session = detect::choose(runtime, &registry, &archive, options.plugin.as_deref())?;
    let images = session.decode()?.map_err(|error| LoadError::Decode { plugin: session.name().to_string(), error })?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    load_images(store, &*archive, Some(&mut session), images, options, workers, progress)
}

/// Loads `images` (what a decoder described, or what a registry holds:
/// [`crate::registry::pull`]) from `archive`: checks them, imports their
/// layers, `workers` at a time, and commits. Streams need the decoder's
/// `session`.
pub(crate) fn load_images(
    store: &Store,
    archive: &dyn Archive,
    mut session: Option<&mut Session>,
    images: Vec<Image>,
    options: &LoadOptions,
    workers: usize,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>, LoadError> {
    let plans = plan::plan(archive, session.as_deref_mut(), images, options, progress)?;

    let staging = store.stage()?;
    let settings = layer::Settings { max_bytes: options.max_layer_bytes, format: store.layer_format() };
    let imported = import_layers(&staging, archive, session.as_deref_mut(), &plans, settings, workers, progress)?;
    let mut loaded = Vec::new();
    let mut entries = Vec::new();
    let mut staged = plan::Staged::new();
    for plan in &plans {
        let (image, (media_type, size)) = stage_image(&staging, plan, &imported)?;
        staged.insert(image.manifest_digest.clone(), (size, Some(false)));
        if !options.all_platforms || plan.indexes.is_empty() {
            let platform = Some(image.platform.clone());
            entries.extend(index_entries(&image.refs, &media_type, &image.manifest_digest, size, platform));
        }
        loaded.push(image);
    }
    if options.all_platforms {
        entries.extend(plan::stage_indexes(&staging, archive, session, &plans, &mut staged)?);
    }
    staging.commit(entries)?;
    Ok(loaded)
}

/// Imports every distinct layer of `plans` that the store lacks.
fn import_layers(
    staging: &Staging,
    archive: &dyn Archive,
    mut session: Option<&mut Session>,
    plans: &[ImagePlan],
    settings: layer::Settings,
    workers: usize,
    progress: &dyn Progress,
) -> Result<BTreeMap<LayerKey, Imported>, LoadError> {
    let mut jobs = BTreeMap::new();
    for layer in plans.iter().flat_map(|p| &p.layers) {
        jobs.entry(layer.key.clone()).or_insert(layer);
    }
    let total = jobs.values().map(|l| layer::size_hint(archive, l)).sum::<Option<u64>>();
    progress.start(Phase::Importing, total);
    let (streams, parallel): (Vec<_>, Vec<_>) = jobs.into_values().partition(|l| l.is_stream());
    let workers = workers.clamp(1, parallel.len().max(1));
    let queue = std::sync::Mutex::new(parallel.into_iter());
    let results = std::sync::Mutex::new(BTreeMap::new());
    let first_error = std::sync::Mutex::new(None);
    let record = |key: LayerKey, result: Result<Imported, LoadError>| match result {
        Ok(imported) => {
            results.lock().unwrap_or_else(|p| p.into_inner()).insert(key, imported);
        }
        Err(e) => {
            first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if first_error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    let Some(layer) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else { return };
                    record(layer.key.clone(), layer::import(staging, archive, None, layer, settings, progress));
                }
            });
        }
        for layer in streams {
            record(
                layer.key.clone(),
                layer::import(staging, archive, session.as_deref_mut(), layer, settings, progress),
            );
        }
    });
    progress.finish();
    if let Some(error) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Stages an image's config and manifest (built here when the archive has
/// none) once its layers are in; returns the image and its manifest's media
/// type and size.
fn stage_image(
    staging: &Staging,
    plan: &ImagePlan,
    imported: &BTreeMap<LayerKey, Imported>,
) -> Result<(LoadedImage, (String, u64)), LoadError> {
    let layers: Vec<Imported> = plan
        .layers
        .iter()
        .map(|l| imported.get(&l.key).cloned().ok_or_else(|| LoadError::invalid(&l.what, "was not imported")))
        .collect::<Result<_, _>>()?;
    for (layer, got) in plan.layers.iter().zip(&layers) {
        layer.verify(got)?;
    }
    let config_digest = staging.add_blob(&plan.config)?;
    let (manifest, media_type) = match &plan.manifest {
        Some((bytes, media_type)) => (bytes.clone(), media_type.clone()),
        None => (plan.synthesize_manifest(&layers), crate::oci::MEDIA_TYPE_MANIFEST.to_string()),
    };
    let manifest_digest = staging.add_blob(&manifest)?;
    let image = LoadedImage {
        refs: plan.refs.clone(),
        manifest_digest,
        config_digest,
        platform: plan.platform.clone(),
        layers,
    };
    Ok((image, (media_type, manifest.len() as u64)))
}

/// The `index.json` entries naming `digest`: one per ref, or one unnamed.
fn index_entries(
    refs: &[Reference],
    media_type: &str,
    digest: &Digest,
    size: u64,
    platform: Option<Platform>,
) -> Vec<IndexEntry> {
    let entry = |reference: Option<&Reference>| IndexEntry {
        reference: reference.cloned(),
        media_type: media_type.to_string(),
        digest: digest.clone(),
        size,
        platform: platform.clone(),
    };
    if refs.is_empty() { vec![entry(None)] } else { refs.iter().map(|r| entry(Some(r))).collect() }
}
