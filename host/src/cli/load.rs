//! `msb load`.

use super::{Format, open_store, runtime};
use anyhow::{Context, Result, bail};
use msb::input::Source;
use msb::load::{LoadOptions, LoadedImage, load};
use msb::oci;
use msb::reference::Reference;
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// `msb load` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Archive to load: a file, a directory, or `-` for stdin (the default
    /// when stdin is not a terminal).
    #[arg(short, long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Use this decoder (a name from `msb plugin ls`, or a .wasm file)
    /// instead of detecting one.
    #[arg(long, value_name = "NAME|PATH")]
    plugin: Option<String>,
    /// From a multi-platform index, load this platform (os/arch[/variant])
    /// instead of the host's.
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Load every platform of a multi-platform index.
    #[arg(long)]
    all_platforms: bool,
    /// Rename an image on the way in (repeatable): `-r centos:7=hello`.
    #[arg(short = 'r', long = "rename", value_name = "SRC=DST", value_parser = parse_rename)]
    renames: Vec<(Reference, Reference)>,
    /// Name the archive's only image REF instead of the names it carries. A
    /// repository alone also names each image the archive names by a tag
    /// only (an OCI layout's `latest`), with that tag.
    #[arg(short, long, value_name = "REF", value_parser = parse_tag)]
    tag: Option<(Reference, bool)>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// `json` prints the loaded images to stdout.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(home: &Path, args: Args) -> Result<()> {
    let source = match &args.input {
        Some(path) if path == Path::new("-") => Source::Stdin,
        Some(path) => Source::Path(path.clone()),
        None if !std::io::stdin().is_terminal() => Source::Stdin,
        None => bail!("no archive given: use -i PATH, or pipe one to stdin"),
    };
    let platform = match &args.platform {
        Some(p) => {
            Some(oci::parse_platform(p).with_context(|| format!("--platform {p:?}: expected os/arch[/variant]"))?)
        }
        None => None,
    };
    let store = open_store(home)?;
    let runtime = runtime()?;
    runtime.show_notes(!args.quiet);
    let options = LoadOptions {
        source: source.clone(),
        plugin: args.plugin,
        platform,
        all_platforms: args.all_platforms,
        renames: args.renames,
        tag_is_repository: args.tag.as_ref().is_some_and(|(_, repository)| *repository),
        tag: args.tag.map(|(reference, _)| reference),
        max_layer_bytes: max_layer_bytes()?,
    };
    let progress = super::progress::for_terminal(args.quiet);
    let loaded = load(&store, &runtime, &options, progress.as_ref()).with_context(|| source.display_name())?;

    if args.format == Format::Json {
        let images: Vec<_> = loaded.iter().map(|image| image_json(&store, image)).collect();
        println!("{}", serde_json::to_string_pretty(&images)?);
    }
    if !args.quiet {
        if loaded.is_empty() {
            eprintln!("The archive holds no images; nothing was loaded.");
        }
        let host = oci::host_platform();
        for image in &loaded {
            if !oci::platform_matches(&image.platform, &host) && !args.all_platforms && args.platform.is_none() {
                eprintln!("note: the image is for {}; this machine is {host}", image.platform);
            }
            if image.refs.is_empty() {
                eprintln!("✓ Loaded {}", image.config_digest);
            }
            for reference in &image.refs {
                eprintln!("✓ Loaded {}", reference.familiar());
            }
        }
    }
    Ok(())
}

/// `-t REF`, and whether it names a repository alone.
fn parse_tag(s: &str) -> Result<(Reference, bool), String> {
    Ok((s.parse().map_err(|e| format!("{e}"))?, !Reference::names_version(s)))
}

pub fn parse_rename(s: &str) -> Result<(Reference, Reference), String> {
    let (from, to) = s.split_once('=').ok_or("expected SRC=DST")?;
    Ok((from.parse().map_err(|e| format!("{e}"))?, to.parse().map_err(|e| format!("{e}"))?))
}

pub(super) fn image_json(store: &msb::store::Store, image: &LoadedImage) -> serde_json::Value {
    json!({
        "ref": image.refs.first().map(|r| r.to_string()),
        "refs": image.refs.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "manifest_digest": image.manifest_digest,
        "config_digest": image.config_digest,
        "platform": image.platform.to_string(),
        "layers": image.layers.iter().map(|l| json!({
            "digest": l.digest,
            "media_type": l.media_type,
            "size": l.size,
            "diff_id": l.diff_id,
            "erofs": store.layer_path(&l.diff_id),
        })).collect::<Vec<_>>(),
    })
}

/// The per-layer limit on uncompressed bytes: `MSB_LAYER_MAX_GIB`, or the default.
pub(super) fn max_layer_bytes() -> Result<u64> {
    let Ok(value) = std::env::var(msb::load::LAYER_LIMIT_VAR) else { return Ok(msb::load::DEFAULT_MAX_LAYER_BYTES) };
    let gib: u64 =
        value.parse().with_context(|| format!("{}={value:?} is not a number", msb::load::LAYER_LIMIT_VAR))?;
    gib.checked_mul(1 << 30).with_context(|| format!("{}={value:?} is too large", msb::load::LAYER_LIMIT_VAR))
}
