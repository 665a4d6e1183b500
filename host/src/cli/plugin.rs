//! `msb plugin …`.

use super::{Format, open_store, runtime};
use anyhow::{Context, Result, bail};
use msb::input::{self, Source};
use msb::load::verdicts;
use msb::plugin::installed;
use msb::plugin::registry;
use msb::plugin::verdict::only_disabled;
use msb::plugin::{Choice, Origin, Registered, Registry};
use msb::store::Store;
use serde_json::json;
use std::path::{Path, PathBuf};

/// `msb plugin` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the decoders: built in and installed, enabled or not.
    Ls {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Install a decoder from a `.wasm` component (checked first); one of
    /// the same name is replaced.
    Install {
        /// The component.
        path: PathBuf,
    },
    /// Remove an installed decoder.
    Rm {
        /// Its name, as `msb plugin ls` shows it.
        name: String,
    },
    /// Take a decoder out of detection (`--plugin NAME` still uses it).
    Disable {
        /// Its name, as `msb plugin ls` shows it.
        name: String,
    },
    /// Let a disabled decoder take part in detection again.
    Enable {
        /// Its name, as `msb plugin ls` shows it.
        name: String,
    },
    /// Show how sure each decoder is that it reads an archive, and which
    /// one `msb load` would use.
    Detect {
        /// The archive (file, directory, or `-` for stdin).
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(home: &Path, command: Command) -> Result<()> {
    let store = open_store(home)?;
    match command {
        Command::Ls { format } => list(&load_registry(&store)?, format),
        Command::Install { path } => install(&store, &path),
        Command::Rm { name } => remove(&store, &name),
        Command::Disable { name } => set_enabled(&store, &name, false),
        Command::Enable { name } => set_enabled(&store, &name, true),
        Command::Detect { path, format } => detect(&store, &load_registry(&store)?, path, format),
    }
}

fn load_registry(store: &Store) -> Result<Registry> {
    Ok(Registry::load(&runtime()?, &store.plugins_dir())?)
}

/// The first 12 hex digits of a digest, as docker shows image IDs.
fn short(digest: &msb::digest::Digest) -> &str {
    &digest.hex()[..12]
}

fn list(registry: &Registry, format: Format) -> Result<()> {
    let decoders = registry.decoders();
    match format {
        Format::Json => {
            let list = decoders
                .iter()
                .map(|d| -> Result<_> {
                    let i = d.plugin().info()?;
                    let path = match d.origin() {
                        Origin::BuiltIn => None,
                        Origin::Installed(path) => Some(path.display().to_string()),
                    };
                    Ok(json!({"name": i.name, "version": i.version, "contract": format!("msb:format@{}", d.contract()),
                              "formats": i.formats, "description": i.description, "origin": d.origin().label(),
                              "path": path, "digest": d.digest(), "enabled": d.enabled()}))
                })
                .collect::<Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Text => {
            let rows = decoders
                .iter()
                .map(|d| -> Result<[String; 8]> {
                    let i = d.plugin().info()?;
                    Ok([
                        i.name.clone(),
                        i.version.clone(),
                        d.contract().to_string(),
                        d.origin().label().to_string(),
                        short(d.digest()).to_string(),
                        if d.enabled() { "yes" } else { "no" }.to_string(),
                        i.formats.join(","),
                        i.description.clone(),
                    ])
                })
                .collect::<Result<Vec<_>>>()?;
            let header = ["NAME", "VERSION", "CONTRACT", "ORIGIN", "DIGEST", "ENABLED", "FORMATS", "DESCRIPTION"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count());
                }
            }
            for row in std::iter::once(header.map(String::from)).chain(rows) {
                let cells: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .enumerate()
                    .map(|(n, (cell, width))| if n + 1 == row.len() { cell.clone() } else { format!("{cell:<width$}") })
                    .collect();
                println!("{}", cells.join("  "));
            }
        }
    }
    Ok(())
}

fn install(store: &Store, path: &Path) -> Result<()> {
    // The name was checked when loading (a safe file name); the component
    // is stored by its digest and recorded under that name, so an installed
    // plugin of that name is replaced (an upgrade), never shadowed. Loading
    // compiled it into the user's compile cache (`msb::plugin::cache`),
    // where every store finds it: none compiles it again.
    let runtime = runtime()?;
    let registry = Registry::load(&runtime, &store.plugins_dir())?;
    let wasm = std::fs::read(path).with_context(|| path.display().to_string())?;
    let plugin = runtime.load(&path.display().to_string(), &wasm, None)?;
    let name = plugin.name();
    let replaced = match registry.get(name) {
        Some(d) if *d.origin() == Origin::BuiltIn => {
            bail!("{}: a built-in decoder is already called {name}", path.display())
        }
        Some(d) => Some(d.plugin().info()?.version.clone()),
        None => None,
    };
    let disabled = installed::change(store, |change| -> Result<bool> {
        change.install(name, &wasm)?;
        Ok(change.installed().is_disabled(name))
    })?;
    let version = &plugin.info()?.version;
    let mut line = format!("Installed {name} {version}");
    if let Some(old) = replaced {
        line.push_str(&format!(" (replacing {old})"));
    }
    if disabled {
        line.push_str(&format!("; it is disabled: msb plugin enable {name}"));
    }
    println!("{line}");
    Ok(())
}

fn remove(store: &Store, name: &str) -> Result<()> {
    let removed = installed::change(store, |change| -> Result<bool> { Ok(change.remove(name)) })?;
    if !removed {
        if registry::builtin_names().any(|n| n == name) {
            bail!("{name} is built in and cannot be removed (msb plugin disable {name} takes it out of detection)");
        }
        bail!("no installed decoder named {name:?}");
    }
    println!("Removed {name}");
    Ok(())
}

fn set_enabled(store: &Store, name: &str, enabled: bool) -> Result<()> {
    let changed = installed::change(store, |change| -> Result<bool> {
        let known = registry::builtin_names().any(|n| n == name) || change.installed().digest(name).is_some();
        // A name disabled earlier may be enabled whatever became of it.
        if !known && (!enabled || !change.installed().is_disabled(name)) {
            let mut names: Vec<String> = registry::builtin_names().map(str::to_string).collect();
            names.extend(change.installed().names().map(|(n, _)| n.to_string()));
            bail!("no decoder named {name:?}; available: {}", names.join(", "));
        }
        Ok(change.set_enabled(name, enabled))
    })?;
    let (done, state) = if enabled { ("Enabled", "enabled") } else { ("Disabled", "disabled") };
    match changed {
        true => println!("{done} {name}"),
        false => println!("{name} is already {state}"),
    }
    Ok(())
}

fn detect(store: &Store, registry: &Registry, path: PathBuf, format: Format) -> Result<()> {
    let source = if path == Path::new("-") { Source::Stdin } else { Source::Path(path) };
    let input =
        input::open(&source, &store.tmp_dir(), &msb::progress::Silent).with_context(|| source.display_name())?;
    let verdicts = verdicts(registry, &input.archive);
    let compression = input.compression.map(|c| c.name());
    let choice = verdicts.choice();
    let winner = match &choice {
        Choice::Winner(v) => Some(v.decoder.name()),
        _ => None,
    };
    let reason = match &choice {
        Choice::Winner(v) => {
            let above: Vec<String> = verdicts
                .all()
                .iter()
                .filter(|o| !o.decoder.enabled() && o.score >= v.score)
                .map(|o| format!("{} ({})", o.decoder.name(), o.score))
                .collect();
            match above.is_empty() {
                true => format!("the highest confidence, {}", v.score),
                false => format!(
                    "the highest confidence of the enabled decoders, {}; disabled: {}",
                    v.score,
                    above.join(", ")
                ),
            }
        }
        Choice::Tie(tied) => format!(
            "{} tie at {}: ambiguous, msb load asks for --plugin NAME",
            names(tied.iter().map(|v| v.decoder)),
            tied.first().map_or(0, |v| v.score)
        ),
        Choice::OnlyDisabled(claimed) => only_disabled(claimed),
        Choice::Nothing => format!("not a recognized image archive ({})", verdicts.looks_like()),
    };
    match format {
        Format::Json => {
            let scores: Vec<_> = verdicts
                .all()
                .iter()
                .map(|v| json!({"name": v.decoder.name(), "score": v.score, "enabled": v.decoder.enabled()}))
                .collect();
            let out = json!({"compression": compression, "decoders": scores, "pick": winner, "reason": reason});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            // One line per decoder (`NAME SCORE`, `disabled` after a
            // disabled one's), then a blank line and the explanation.
            for v in verdicts.all() {
                let disabled = if v.decoder.enabled() { "" } else { "  disabled" };
                println!("{:<16} {:>3}{disabled}", v.decoder.name(), v.score);
            }
            println!();
            if let Some(c) = compression {
                println!("outer compression: {c} (the decoders saw what it holds)");
            }
            match winner {
                Some(name) => println!("msb load would use {name}: {reason}"),
                None => println!("msb load would refuse it: {reason}"),
            }
        }
    }
    Ok(())
}

/// `a`, `a and b`, `a, b and c`.
fn names<'a>(decoders: impl Iterator<Item = &'a Registered>) -> String {
    let names: Vec<&str> = decoders.map(|d| d.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}
