//! Command-line interface: parsing and wiring; the work lives in the
//! library modules.

mod check;
mod images;
mod layer;
mod load;
mod mount;
mod plugin;
mod progress;
mod registry;
mod store;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use msb::plugin::{Limits, Runtime};
use msb::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Load container image archives into a store of EROFS layers.
#[derive(Parser)]
#[command(name = "msb", version, about, propagate_version = true)]
struct Cli {
    /// The store directory.
    #[arg(long, global = true, env = "MSB_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load images from an archive (file, directory, or stdin).
    Load(load::Args),
    /// List images.
    Images(images::ListArgs),
    /// Show one image: digests, platform, layers and their EROFS files.
    Inspect(images::InspectArgs),
    /// Manage and try decoder plugins.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Pull an image from a registry into the store.
    Pull(registry::PullArgs),
    /// Push a stored image, or an archive's images, to a registry.
    Push(registry::PushArgs),
    /// Keep credentials for a registry (in docker's config or its helper).
    Login(registry::LoginArgs),
    /// Remove the credentials kept for a registry.
    Logout(registry::LogoutArgs),
    /// Write images to an archive (OCI, docker, or both in one tar).
    Save(store::SaveArgs),
    /// Give an image another ref.
    Tag(store::TagArgs),
    /// Remove refs (and what only they used).
    Rmi(store::RmiArgs),
    /// Delete blobs and EROFS layers no image uses.
    Gc(store::GcArgs),
    /// Verify every blob, EROFS layer, record and ref; --repair removes what fails.
    Check(check::Args),
    /// Convert one layer tar (file or stdin) to an EROFS image.
    Layer(layer::Args),
    /// Show or change a store setting.
    Config(store::ConfigArgs),
    /// Mount an image read-only (EROFS layers under an overlay) on a directory.
    Mount(mount::MountArgs),
    /// Undo `msb mount`: unmount the overlay and its layers.
    Umount(mount::UmountArgs),
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// For scripts.
    Json,
}

/// Parses arguments and runs the command. Usage errors exit with 2 here.
pub fn run() -> Result<()> {
    let cli = Cli::try_parse().unwrap_or_else(|e| e.exit());
    let home = cli.home.map_or_else(default_home, Ok)?;
    match cli.command {
        Command::Load(args) => load::run(&home, args),
        Command::Images(args) => images::list(&open_store(&home)?, args),
        Command::Inspect(args) => images::inspect(&open_store(&home)?, args),
        Command::Plugin(command) => plugin::run(&home, command),
        Command::Pull(args) => registry::pull_cmd(&home, args),
        Command::Push(args) => registry::push_cmd(&home, args),
        Command::Login(args) => registry::login(args),
        Command::Logout(args) => registry::logout(args),
        Command::Save(args) => store::save_cmd(&open_store(&home)?, args),
        Command::Tag(args) => store::tag(&open_store(&home)?, args),
        Command::Rmi(args) => store::rmi(&open_store(&home)?, args),
        Command::Gc(args) => store::gc(&open_store(&home)?, args),
        Command::Check(args) => check::run(&open_store(&home)?, args),
        Command::Layer(args) => layer::run(args),
        Command::Config(args) => store::config(&mut open_store(&home)?, args),
        Command::Mount(args) => mount::mount(&open_store(&home)?, args),
        Command::Umount(args) => mount::umount(&open_store(&home)?, args),
    }
}

fn default_home() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("neither --home, MSB_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".msb"))
}

fn open_store(home: &std::path::Path) -> Result<Store> {
    Store::open(home).with_context(|| format!("store {}", home.display()))
}

/// The plugin runtime, with limits from `MSB_PLUGIN_MEMORY_MIB`,
/// `MSB_PLUGIN_TIME_SECS`, `MSB_PLUGIN_READ_MIB`, `MSB_PLUGIN_HASH_MIB`,
/// `MSB_PLUGIN_STREAM_MIB`, and the user's compile cache, shared by their
/// stores ([`msb::plugin::cache::user_dir`]: `MSB_CACHE_DIR`, ...).
fn runtime() -> Result<Arc<Runtime>> {
    use msb::plugin::{HASH_LIMIT_VAR, MEMORY_LIMIT_VAR, READ_LIMIT_VAR, STREAM_LIMIT_VAR, TIME_LIMIT_VAR};
    let mut limits = Limits::default();
    let env = |name: &str| -> Result<Option<u64>> {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().with_context(|| format!("{name}={v:?} is not a number")))
            .transpose()
    };
    let mib = |name: &str| -> Result<Option<u64>> {
        env(name)?.map(|mib| mib.checked_mul(1 << 20).with_context(|| format!("{name} is too large"))).transpose()
    };
    if let Some(bytes) = mib(MEMORY_LIMIT_VAR)? {
        limits.memory = usize::try_from(bytes).with_context(|| format!("{MEMORY_LIMIT_VAR} is too large"))?;
    }
    if let Some(secs) = env(TIME_LIMIT_VAR)? {
        limits.time = Duration::from_secs(secs);
    }
    if let Some(bytes) = mib(READ_LIMIT_VAR)? {
        limits.read_bytes = bytes;
    }
    if let Some(bytes) = mib(HASH_LIMIT_VAR)? {
        limits.hash_bytes = bytes;
    }
    if let Some(bytes) = mib(STREAM_LIMIT_VAR)? {
        limits.stream_bytes = bytes;
    }
    Runtime::new(msb::plugin::cache::user_dir(), limits).context("starting the plugin runtime")
}
