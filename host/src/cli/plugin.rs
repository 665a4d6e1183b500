//! `msb plugin …`.

use super::{Format, open_store, runtime};
use anyhow::{Context, Result};
use msb::input::{self, Source};
use msb::load::verdicts;
use msb::plugin::Registry;
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
    /// Show how sure each decoder is that it reads an archive.
    Detect {
        /// The archive (file, directory, or `-` for stdin).
        path: PathBuf,
    },
}

pub fn run(home: &Path, command: Command) -> Result<()> {
    let store = open_store(home)?;
    let runtime = runtime(&store)?;
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
        Command::Detect { path } => {
            let source = if path == Path::new("-") { Source::Stdin } else { Source::Path(path) };
            let input = input::open(&source, &store.tmp_dir(), &msb::progress::Silent).with_context(|| source.display_name())?;
            let mut verdicts = verdicts(&registry, &input.archive);
            verdicts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
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
