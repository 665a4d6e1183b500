//! Picking the decoder: `--plugin NAME|PATH` (enabled or not), or the
//! highest `detect` confidence among the enabled decoders. Disabled ones
//! are asked only to explain a refusal (or by `msb plugin detect`).

use super::LoadError;
use crate::input::{Archive, EntryKind};
use crate::plugin::verdict::only_disabled;
use crate::plugin::{Choice, Registered, Registry, Runtime, Session, Verdict, Verdicts};
use std::path::Path;
use std::sync::Arc;

/// A session of the chosen decoder, on `archive`.
pub(crate) fn choose(
    runtime: &Arc<Runtime>,
    registry: &Registry,
    archive: &Arc<dyn Archive>,
    wanted: Option<&str>,
) -> Result<Session, LoadError> {
    if let Some(wanted) = wanted {
        if let Some(decoder) = registry.get(wanted) {
            return Ok(decoder.plugin().session(Some(archive.clone()))?);
        }
        if wanted.ends_with(".wasm") || wanted.contains('/') {
            let plugin = registry.load_path(runtime, Path::new(wanted))?;
            return Ok(plugin.session(Some(archive.clone()))?);
        }
        let available = registry.decoders().iter().map(|d| d.name().to_string()).collect();
        return Err(LoadError::UnknownPlugin { name: wanted.to_string(), available });
    }
    let (enabled, disabled): (Vec<&Registered>, Vec<&Registered>) =
        registry.decoders().iter().partition(|d| d.enabled());
    let mut verdicts = Verdicts::new(ask(enabled, archive), looks_like(archive.as_ref()));
    if !matches!(verdicts.choice(), Choice::Winner(_) | Choice::Tie(_)) {
        verdicts.extend(ask(disabled, archive));
    }
    match verdicts.choice() {
        // The plugin that won decodes, in a fresh sandbox (not the one that detected).
        Choice::Winner(v) => Ok(v.decoder.plugin().session(Some(archive.clone()))?),
        Choice::Tie(tied) => Err(LoadError::AmbiguousDecoder {
            names: tied.iter().map(|v| v.decoder.name().to_string()).collect(),
            score: tied.first().map_or(0, |v| v.score),
        }),
        Choice::OnlyDisabled(claimed) => {
            Err(LoadError::NoDecoder { looks_like: only_disabled(&claimed), tried: tried(&verdicts) })
        }
        Choice::Nothing => {
            Err(LoadError::NoDecoder { looks_like: verdicts.looks_like().to_string(), tried: tried(&verdicts) })
        }
    }
}

/// The decoders asked, disabled ones marked.
fn tried(verdicts: &Verdicts) -> Vec<String> {
    let mut names: Vec<&Registered> = verdicts.all().iter().map(|v| v.decoder).collect();
    names.sort_by(|a, b| (!a.enabled(), a.name()).cmp(&(!b.enabled(), b.name())));
    names.iter().map(|d| if d.enabled() { d.name().to_string() } else { format!("{} (disabled)", d.name()) }).collect()
}

/// Every decoder's confidence that it reads `archive`, enabled or not,
/// each asked in its own sandbox; and what `msb load` would do.
pub fn verdicts<'a>(registry: &'a Registry, archive: &Arc<dyn Archive>) -> Verdicts<'a> {
    Verdicts::new(ask(registry.decoders().iter().collect(), archive), looks_like(archive.as_ref()))
}

/// The answers of `decoders`. A decoder that fails to answer scores 0.
fn ask<'a>(decoders: Vec<&'a Registered>, archive: &Arc<dyn Archive>) -> Vec<Verdict<'a>> {
    decoders
        .into_iter()
        .map(|decoder| {
            let session = decoder.plugin().session(Some(archive.clone()));
            let score = session.and_then(|mut s| s.detect()).unwrap_or_else(|e| {
                if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
                    eprintln!("debug: {e}");
                }
                0
            });
            Verdict { decoder, score }
        })
        .collect()
}

/// A short description of an archive no decoder claims.
fn looks_like(archive: &dyn Archive) -> String {
    if let Some(what) = archive.not_tar() {
        return what.to_string();
    }
    let entries = archive.entries();
    if entries.is_empty() {
        return "an empty archive".to_string();
    }
    let has = |p: &str| entries.iter().any(|e| e.path == p || e.path.starts_with(&format!("{p}/")));
    if has("etc") || has("usr") || has("bin") {
        return format!("a root file system tar of {} entries, not an image archive", entries.len());
    }
    let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    format!("a tar of {} entries, {files} files, in no known image layout", entries.len())
}
