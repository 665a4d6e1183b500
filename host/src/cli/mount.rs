//! `msb mount` and `msb umount`.

use super::images::parse_platform;
use anyhow::{Context, Result};
use msb::store::Store;
use std::path::PathBuf;

/// `msb mount` arguments.
#[derive(clap::Args)]
pub struct MountArgs {
    /// Of a multi-platform index, mount this platform's image
    /// (os/arch[/variant]) instead of the host's.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// A ref, an image ID (`sha256:<config digest>`) or a unique prefix of one.
    reference: String,
    /// An existing directory to mount the image on.
    dir: PathBuf,
}

/// `msb umount` arguments.
#[derive(clap::Args)]
pub struct UmountArgs {
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// A directory `msb mount` mounted an image on.
    dir: PathBuf,
}

pub fn mount(store: &Store, args: MountArgs) -> Result<()> {
    let platform = args.platform.as_deref().map(parse_platform).transpose()?;
    let image = store.resolve_platform(&args.reference, platform.as_ref())?;
    let mounted = msb::mount::mount(store, &image, &args.reference, &args.dir)
        .with_context(|| format!("mount {} on {}", args.reference, args.dir.display()))?;
    if !args.quiet {
        let name = image.entry.reference.as_ref().map_or_else(|| image.config_digest.to_string(), |r| r.familiar());
        eprintln!(
            "✓ Mounted {name} ({}, {} layers) read-only on {}",
            image.platform,
            image.layers.len(),
            mounted.target.display()
        );
    }
    Ok(())
}

pub fn umount(store: &Store, args: UmountArgs) -> Result<()> {
    // Its errors name the directory.
    let target = msb::mount::unmount(store, &args.dir)?;
    if !args.quiet {
        eprintln!("✓ Unmounted {}", target.display());
    }
    Ok(())
}
