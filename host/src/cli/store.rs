//! `msb save`, `msb tag`, `msb rmi`, `msb gc`, `msb config`.

use super::Format;
use anyhow::{Context, Result, bail};
use msb::reference::Reference;
use msb::save::{SaveFormat, save};
use msb::store::{LayerFormat, Store};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `msb save` arguments.
#[derive(clap::Args)]
pub struct SaveArgs {
    /// Where to write the tar; `-` or absent: stdout (never a terminal).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Archive layout: both OCI and docker (`combined`, as docker 25+ writes), or one.
    #[arg(long, value_enum, default_value_t = Layout::Combined)]
    format: Layout,
    /// Rename on the way out (repeatable): `-r alpine:3.20=mirror/alpine:3.20`.
    #[arg(short = 'r', long = "rename", value_name = "SRC=DST", value_parser = super::load::parse_rename)]
    renames: Vec<(Reference, Reference)>,
    /// Images: refs, IDs or ID prefixes.
    #[arg(required = true, value_name = "REF")]
    images: Vec<String>,
}

/// `--format` of `msb save`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// OCI layout + docker manifest.json in one tar.
    Combined,
    /// OCI image layout.
    Oci,
    /// docker manifest.json + repositories.
    Docker,
}

pub fn save_cmd(store: &Store, args: SaveArgs) -> Result<()> {
    let format = match args.format {
        Layout::Combined => SaveFormat::Combined,
        Layout::Oci => SaveFormat::Oci,
        Layout::Docker => SaveFormat::Docker,
    };
    match args.output.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            // Written beside the target and renamed: no half-written archive.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            // 0666 less the umask, as a file the shell creates would be.
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o666);
            let tmp = tempfile::Builder::new()
                .permissions(mode)
                .tempfile_in(dir)
                .with_context(|| path.display().to_string())?;
            let file = tmp.as_file();
            save(store, &args.images, format, &args.renames, std::io::BufWriter::new(file), Some(file))?;
            tmp.persist(&path).with_context(|| path.display().to_string())?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal; use -o PATH or redirect stdout");
            }
            let stdout = std::io::stdout().lock();
            save(store, &args.images, format, &args.renames, std::io::BufWriter::new(stdout), None)?;
        }
    }
    Ok(())
}

/// `msb tag` arguments.
#[derive(clap::Args)]
pub struct TagArgs {
    /// An existing image: ref, ID or ID prefix.
    source: String,
    /// The new ref.
    target: Reference,
}

pub fn tag(store: &Store, args: TagArgs) -> Result<()> {
    store.tag(&args.source, &args.target)?;
    Ok(())
}

/// `msb rmi` arguments.
#[derive(clap::Args)]
pub struct RmiArgs {
    /// Remove an image named by ID even if it has several refs.
    #[arg(short, long)]
    force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Refs, IDs or ID prefixes.
    #[arg(required = true, value_name = "REF")]
    images: Vec<String>,
}

pub fn rmi(store: &Store, args: RmiArgs) -> Result<()> {
    let mut removed = Vec::new();
    for name in &args.images {
        removed.extend(store.remove(name, args.force)?);
    }
    let report = store.gc()?;
    match args.format {
        Format::Json => {
            let refs: Vec<_> = removed.iter().map(|e| e.reference.as_ref().map(|r| r.to_string())).collect();
            println!("{}", json!({"removed": refs, "freed_bytes": report.bytes}));
        }
        Format::Text => {
            for entry in &removed {
                match &entry.reference {
                    Some(r) => println!("Untagged: {}", r.familiar()),
                    None => println!("Deleted: {}", entry.digest),
                }
            }
        }
    }
    Ok(())
}

/// `msb gc` arguments.
#[derive(clap::Args)]
pub struct GcArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn gc(store: &Store, args: GcArgs) -> Result<()> {
    let report = store.gc()?;
    match args.format {
        Format::Json => {
            println!("{}", json!({"blobs": report.blobs, "layers": report.layers, "freed_bytes": report.bytes}))
        }
        Format::Text => println!(
            "Removed {} blobs and {} layers, {}",
            report.blobs,
            report.layers,
            super::images::human(report.bytes)
        ),
    }
    Ok(())
}

/// `msb config` arguments.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// The setting. `layer-format`: how the EROFS images of uncompressed
    /// layers loaded from now on are stored: `tar-index` (the default:
    /// metadata only, reading file data from the layer blob, so the layer is
    /// stored once) or `full` (file data in the image: one self-contained
    /// file per layer, for consumers that need one).
    #[arg(value_name = "KEY", value_parser = ["layer-format"])]
    key: String,
    /// The new value; absent: print the current one.
    #[arg(value_name = "VALUE")]
    value: Option<String>,
}

pub fn config(store: &mut Store, args: ConfigArgs) -> Result<()> {
    match args.value {
        None => println!("{}", store.layer_format_setting().name()),
        Some(value) => {
            let Some(format) = LayerFormat::from_name(&value) else {
                bail!("layer-format: {value:?} is not tar-index or full");
            };
            store.set_layer_format(format)?;
        }
    }
    Ok(())
}
