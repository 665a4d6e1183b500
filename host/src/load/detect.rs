//! Picking the decoder: `--plugin NAME|PATH`, or the highest `detect`
//! confidence among every installed decoder.

use super::LoadError;
use crate::input::{Archive, EntryKind};
use crate::plugin::{Plugin, Registry, Runtime, Session};
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
        if let Some(plugin) = registry.get(wanted) {
            return Ok(plugin.session(Some(archive.clone()))?);
        }
        if wanted.ends_with(".wasm") || wanted.contains('/') {
            let plugin = registry.load_path(runtime, Path::new(wanted))?;
            return Ok(plugin.session(Some(archive.clone()))?);
        }
        let available = registry.plugins().iter().map(|p| p.name().to_string()).collect();
        return Err(LoadError::UnknownPlugin { name: wanted.to_string(), available });
    }
    let verdicts = verdicts(registry, archive);
    let best = verdicts.iter().map(|(_, score)| *score).max().unwrap_or(0);
    if best == 0 {
        return Err(LoadError::NoDecoder {
            looks_like: looks_like(archive.as_ref()),
            tried: verdicts.into_iter().map(|(plugin, _)| plugin.name().to_string()).collect(),
        });
    }
    let winners: Vec<&Plugin> =
        verdicts.into_iter().filter(|(_, score)| *score == best).map(|(plugin, _)| plugin).collect();
    match winners.as_slice() {
        // The plugin that won decodes, in a fresh sandbox (not the one that detected).
        [plugin] => Ok(plugin.session(Some(archive.clone()))?),
        _ => Err(LoadError::AmbiguousDecoder {
            names: winners.iter().map(|p| p.name().to_string()).collect(),
            score: best,
        }),
    }
}

/// Every decoder's confidence that it reads `archive`, each asked in its
/// own sandbox. A decoder that fails to answer scores 0.
pub fn verdicts<'a>(registry: &'a Registry, archive: &Arc<dyn Archive>) -> Vec<(&'a Plugin, u8)> {
    registry
        .plugins()
        .iter()
        .map(|plugin| {
            let score = plugin.session(Some(archive.clone())).and_then(|mut s| s.detect()).unwrap_or_else(|e| {
                if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
                    eprintln!("debug: {e}");
                }
                0
            });
            (plugin, score)
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
