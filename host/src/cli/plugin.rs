//! `msb plugin …`.

use super::{Format, open_store, runtime};
use anyhow::{Context, Result, bail};
use msb::input::{self, Source};
use msb::load::verdicts;
use msb::plugin::{Registry, registry};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `msb plugin` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the decoders: built in and installed.
    Ls {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Install a decoder from a `.wasm` component (checked first).
    Install {
        /// The component.
        path: PathBuf,
    },
    /// Remove an installed decoder.
    Rm {
        /// Its name, as `msb plugin ls` shows it.
        name: String,
    },
    /// Show how sure each decoder is that it reads an archive.
    Detect {
        /// The archive (file, directory, or `-` for stdin).
        path: PathBuf,
    },
}

pub fn run(home: &Path, command: Command) -> Result<()> {
    let store = open_store(home)?;
    let runtime = runtime()?;
    let registry = Registry::load(&runtime, &store.plugins_dir())?;
    match command {
        Command::Ls { format } => {
            let plugins = registry.plugins();
            match format {
                Format::Json => {
                    let list = plugins
                        .iter()
                        .map(|p| -> Result<_> {
                            let i = p.info()?;
                            Ok(json!({"name": i.name, "version": i.version, "formats": i.formats,
                                      "description": i.description, "origin": p.origin()}))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    println!("{:<16} {:<10} {:<12} DESCRIPTION", "NAME", "VERSION", "ORIGIN");
                    for p in plugins {
                        let i = p.info()?;
                        println!("{:<16} {:<10} {:<12} {}", i.name, i.version, p.origin(), i.description);
                    }
                }
            }
        }
        Command::Install { path } => {
            // The name was checked when loading (a safe file name); the file
            // is `plugins/<name>.wasm`, so an installed plugin of that name
            // is replaced (an upgrade), never shadowed. Loading compiled it
            // into the user's compile cache (`msb::plugin::cache`), where
            // every store finds it: none compiles it again.
            let plugin = registry::load_file(&runtime, &path)?;
            let name = plugin.name();
            let replaced = match registry.get(name) {
                Some(p) if p.origin() == registry::BUILT_IN => {
                    bail!("{}: a built-in decoder is already called {name}", path.display())
                }
                Some(p) => Some(p.info()?.version.clone()),
                None => None,
            };
            let target = store.plugins_dir().join(format!("{name}.wasm"));
            std::fs::create_dir_all(store.plugins_dir()).with_context(|| store.plugins_dir().display().to_string())?;
            let mut tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())?;
            std::io::copy(&mut std::fs::File::open(&path).with_context(|| path.display().to_string())?, &mut tmp)?;
            tmp.persist(&target).with_context(|| target.display().to_string())?;
            match replaced {
                Some(old) => println!("Installed {name} {} (replacing {old})", plugin.info()?.version),
                None => println!("Installed {name} {}", plugin.info()?.version),
            }
        }
        Command::Rm { name } => {
            let plugin = registry.get(&name).with_context(|| format!("no decoder named {name:?}"))?;
            if plugin.origin() == registry::BUILT_IN {
                bail!("{name} is built in and cannot be removed");
            }
            std::fs::remove_file(plugin.origin()).with_context(|| plugin.origin().to_string())?;
            println!("Removed {name}");
        }
        Command::Detect { path } => {
            let source = if path == Path::new("-") { Source::Stdin } else { Source::Path(path) };
            let input = input::open(&source, &store.tmp_dir(), &msb::progress::Silent)
                .with_context(|| source.display_name())?;
            let mut verdicts: Vec<(&str, u8)> =
                verdicts(&registry, &input.archive).into_iter().map(|(p, score)| (p.name(), score)).collect();
            verdicts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            if let Some(c) = input.compression {
                println!("(outer compression: {})", c.name());
            }
            for (name, score) in verdicts {
                println!("{name:<16} {score:>3}");
            }
        }
    }
    Ok(())
}
