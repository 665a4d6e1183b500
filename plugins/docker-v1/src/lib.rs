//! Decoder for legacy v1 image archives (`docker save` before docker 1.10):
//! a `repositories` file (`{"repo": {"tag": "<top layer id>"}}`) and one
//! `<layer id>/` directory per layer holding `VERSION`, `json` and
//! `layer.tar`, with no `manifest.json` and no image config.
//!
//! Each tag's image is its top layer and the chain of `parent`s below it.
//! The config is synthesized the way docker's own legacy loader does: the
//! top layer's `json` without its v1-only fields (`id`, `parent`, `Size`,
//! …), plus `rootfs.diff_ids` (hashed by the host) and one `history` entry
//! per layer. It is serialized with sorted keys, so the same archive always
//! gives the same config digest.

use msb_plugin_sdk::oci::MEDIA_TYPE_DOCKER_CONFIG;
use msb_plugin_sdk::{
    ArchiveRead, Blob, DecodeError, Decoder, Image, Info, Layer, Source, export_decoder, info, read_json,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The file naming the images.
const REPOSITORIES: &str = "repositories";

/// The longest parent chain accepted (docker never allowed more than 127).
pub const MAX_LAYERS: usize = 512;

/// Fields of a v1 layer `json` that are not part of an image config.
const V1_ONLY: [&str; 6] = ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"];

/// The legacy v1 archive decoder.
pub struct DockerV1;

impl Decoder for DockerV1 {
    fn info() -> Info {
        info!("docker-v1", "legacy v1 image archives (repositories and <id>/json, no manifest.json)", ["docker-v1"])
    }

    fn detect(archive: &dyn ArchiveRead) -> u8 {
        let layer_json = |path: &str| path.split_once('/').is_some_and(|(id, rest)| rest == "json" && valid_id(id));
        let has_layer = archive.entries().iter().any(|e| layer_json(&e.path));
        if archive.has_file(REPOSITORIES) && has_layer && !archive.has_file("manifest.json") { 100 } else { 0 }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        let repositories: BTreeMap<String, BTreeMap<String, String>> = read_json(archive, REPOSITORIES)?;
        // Tags naming the same top layer are one image.
        let mut tops: Vec<(String, Vec<String>)> = Vec::new();
        for (repo, tags) in &repositories {
            for (tag, id) in tags {
                let name = format!("{repo}:{tag}");
                if !valid_id(id) {
                    return Err(DecodeError::malformed(REPOSITORIES, format!("{name} names invalid layer id {id:?}")));
                }
                match tops.iter_mut().find(|(top, _)| top == id) {
                    Some((_, refs)) => refs.push(name),
                    None => tops.push((id.clone(), vec![name])),
                }
            }
        }
        if tops.is_empty() {
            return Err(DecodeError::malformed(REPOSITORIES, "names no images"));
        }
        let mut layers = Layers::default();
        tops.into_iter().map(|(top, refs)| image(archive, &mut layers, &top, refs)).collect()
    }
}

export_decoder!(DockerV1);

/// Whether `id` can name a layer directory.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\', '\0'])
}

/// Layers read so far, by id: their `json` and diff_id.
#[derive(Default)]
struct Layers {
    json: BTreeMap<String, Map<String, Value>>,
    diff_ids: BTreeMap<String, String>,
}

impl Layers {
    /// The `json` of layer `id`; `referrer` says who named it, for errors.
    fn json(
        &mut self,
        archive: &dyn ArchiveRead,
        id: &str,
        referrer: &str,
    ) -> Result<&Map<String, Value>, DecodeError> {
        if !self.json.contains_key(id) {
            let path = format!("{id}/json");
            if !archive.has_file(&path) {
                return Err(DecodeError::missing(&path, format!("layer {id}, {referrer}, is not in the archive")));
            }
            let json: Map<String, Value> = read_json(archive, &path)?;
            self.json.insert(id.to_string(), json);
        }
        self.json.get(id).ok_or_else(|| DecodeError::missing(id, "layer vanished"))
    }

    /// The diff_id of layer `id`: the host hashes its uncompressed `layer.tar`.
    fn diff_id(&mut self, archive: &dyn ArchiveRead, id: &str) -> Result<String, DecodeError> {
        if let Some(diff_id) = self.diff_ids.get(id) {
            return Ok(diff_id.clone());
        }
        let path = format!("{id}/layer.tar");
        if !archive.has_file(&path) {
            return Err(DecodeError::missing(&path, format!("layer {id} has no layer.tar")));
        }
        let diff_id = archive.digest(&path, true).map_err(|e| DecodeError::host(&path, e))?;
        self.diff_ids.insert(id.to_string(), diff_id.clone());
        Ok(diff_id)
    }

    /// The ids from the base layer up to `top`, following `parent`s.
    fn chain(&mut self, archive: &dyn ArchiveRead, top: &str, name: &str) -> Result<Vec<String>, DecodeError> {
        let mut chain: Vec<String> = Vec::new();
        let mut next = Some(top.to_string());
        let mut referrer = format!("the top layer of {name} in {REPOSITORIES}");
        while let Some(id) = next {
            if chain.contains(&id) {
                return Err(DecodeError::malformed(
                    &format!("{}/json", chain.last().map_or(id.as_str(), String::as_str)),
                    format!("the parent chain of {name} loops back to layer {id}"),
                ));
            }
            if chain.len() >= MAX_LAYERS {
                return Err(DecodeError::unsupported(
                    Some(REPOSITORIES),
                    format!("{name} has more than {MAX_LAYERS} layers"),
                ));
            }
            next = match self.json(archive, &id, &referrer)?.get("parent") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.is_empty() => None,
                Some(Value::String(p)) if valid_id(p) => Some(p.clone()),
                Some(other) => {
                    return Err(DecodeError::malformed(&format!("{id}/json"), format!("invalid parent {other}")));
                }
            };
            referrer = format!("the parent of layer {id}");
            chain.push(id);
        }
        chain.reverse();
        Ok(chain)
    }
}

/// One `history` entry of the synthesized config, as docker writes it.
#[derive(Serialize)]
struct History {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    created_by: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    author: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    comment: String,
}

impl History {
    fn of(json: &Map<String, Value>) -> History {
        let text = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let cmd = json.get("container_config").and_then(|c| c.get("Cmd"));
        let created_by = match cmd {
            Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
            Some(Value::String(cmd)) => cmd.clone(),
            _ => String::new(),
        };
        History { created: json.get("created").cloned(), created_by, author: text("author"), comment: text("comment") }
    }
}

/// The image whose top layer is `top`, named `refs`.
fn image(archive: &dyn ArchiveRead, layers: &mut Layers, top: &str, refs: Vec<String>) -> Result<Image, DecodeError> {
    let chain = layers.chain(archive, top, &refs.join(", "))?;
    let mut history = Vec::new();
    let mut diff_ids = Vec::new();
    let mut image_layers = Vec::new();
    for id in &chain {
        history.push(History::of(layers.json(archive, id, "in the chain")?));
        let diff_id = layers.diff_id(archive, id)?;
        let blob = Blob { media_type: None, digest: None, source: Source::Entry(format!("{id}/layer.tar")) };
        image_layers.push(Layer { blob, diff_id: Some(diff_id.clone()) });
        diff_ids.push(Value::String(diff_id));
    }
    let top_json = layers.json(archive, top, "in the chain")?;
    let config = synthesize(top_json, history, diff_ids)?;
    let config =
        Blob { media_type: Some(MEDIA_TYPE_DOCKER_CONFIG.to_string()), digest: None, source: Source::Bytes(config) };
    Ok(Image {
        refs,
        platform: None,
        indexes: vec![],
        manifest: None,
        config,
        layers: image_layers,
        attachments: vec![],
    })
}

/// The image config of a top layer's `json`, as compact JSON with sorted keys.
fn synthesize(top: &Map<String, Value>, history: Vec<History>, diff_ids: Vec<Value>) -> Result<Vec<u8>, DecodeError> {
    let mut config: BTreeMap<String, Value> =
        top.iter().filter(|(k, _)| !V1_ONLY.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    // v1 predates multi-platform images: linux/amd64 is what it meant.
    for (key, default) in [("os", "linux"), ("architecture", "amd64")] {
        if config.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            config.insert(key.to_string(), Value::String(default.to_string()));
        }
    }
    let history = serde_json::to_value(history).map_err(|e| DecodeError::malformed(REPOSITORIES, e.to_string()))?;
    config.insert("history".to_string(), history);
    let mut rootfs = Map::new();
    rootfs.insert("type".to_string(), Value::String("layers".to_string()));
    rootfs.insert("diff_ids".to_string(), Value::Array(diff_ids));
    config.insert("rootfs".to_string(), Value::Object(rootfs));
    serde_json::to_vec(&config).map_err(|e| DecodeError::malformed(REPOSITORIES, e.to_string()))
}

#[cfg(test)]
mod tests;
