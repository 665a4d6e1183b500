//! Picking the decoder: `--plugin NAME|PATH`, or the highest `detect`
//! confidence among every installed decoder.

use super::LoadError;
use crate::input::{Archive, EntryKind};
use crate::plugin::{Registry, Runtime, Session, registry};
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
            let plugin = registry::load_file(runtime, Path::new(wanted))?;
            return Ok(plugin.session(Some(archive.clone()))?);
        }
        let available = registry.plugins().iter().map(|p| p.name().to_string()).collect();
        return Err(LoadError::UnknownPlugin { name: wanted.to_string(), available });
    }
    let verdicts = verdicts(registry, archive);
    let best = verdicts.iter().map(|(_, score, _)| *score).max().unwrap_or(0);
    if best == 0 {
        return Err(LoadError::NoDecoder {
            looks_like: looks_like(archive.as_ref()),
            tried: verdicts.iter().map(|(name, _, _)| name.clone()).collect(),
        });
    }
    let mut winners: Vec<_> = verdicts.into_iter().filter(|(_, score, _)| *score == best).collect();
    if winners.len() > 1 {
        return Err(LoadError::AmbiguousDecoder { names: winners.into_iter().map(|(n, _, _)| n).collect(), score: best });
    }
    let (_, _, session) = winners.pop().expect("one winner");
    Ok(session.expect("a scoring decoder has a session"))
}

/// Every decoder's confidence, with its session (kept for the winner). A
/// decoder that fails to answer scores 0.
pub fn verdicts(registry: &Registry, archive: &Arc<dyn Archive>) -> Vec<(String, u8, Option<Session>)> {
    registry
        .plugins()
        .iter()
        .map(|plugin| {
            let name = plugin.name().to_string();
            let answer = plugin.session(Some(archive.clone())).and_then(|mut s| Ok((s.detect()?, s)));
            match answer {
                Ok((score, session)) => (name, score, Some(session)),
                Err(e) => {
                    if std::env::var_os("MSB_LOG").is_some_and(|v| v == "debug") {
                        eprintln!("debug: {e}");
                    }
                    (name, 0, None)
                }
            }
        })
        .collect()
}

/// A short description of an archive no decoder claims.
fn looks_like(archive: &dyn Archive) -> String {
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
