//! A decoder whose layer has to be transformed on the way out: the archive
//! holds `stream.json` (`{"ref", "config", "layer", "key", "fail_at"?}`) and
//! the layer XOR-ed with `key`. The layer is a `Source::Stream` the host
//! pulls through `read_stream`, which undoes the XOR; with `fail_at`, the
//! stream fails once that many bytes have gone out.

use msb_plugin_sdk::oci::MEDIA_TYPE_OCI_CONFIG;
use msb_plugin_sdk::{
    ArchiveRead, Blob, DecodeError, Decoder, Image, Info, Layer, Source, entry_blob, export_decoder, info, read_json,
};
use serde::Deserialize;
use std::sync::Mutex;

#[derive(Deserialize, Clone)]
struct Spec {
    r#ref: String,
    config: String,
    layer: String,
    key: u8,
    #[serde(default)]
    fail_at: Option<u64>,
}

/// The stream being served: what to read and how far it got. The host
/// calls `read_stream` in the sandbox `decode` ran in.
static STREAM: Mutex<Option<(Spec, u64)>> = Mutex::new(None);

struct Streamer;

impl Decoder for Streamer {
    fn info() -> Info {
        info!("streamer", "serves an XOR-ed layer through read-stream (tests only)", ["none"])
    }

    fn detect(_: &dyn ArchiveRead) -> u8 {
        0
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        let spec: Spec = read_json(archive, "stream.json")?;
        let image = Image {
            refs: vec![spec.r#ref.clone()],
            platform: None,
            indexes: vec![],
            manifest: None,
            config: entry_blob(MEDIA_TYPE_OCI_CONFIG, None, &spec.config),
            layers: vec![Layer {
                blob: Blob { media_type: None, digest: None, source: Source::Stream(0) },
                diff_id: None,
            }],
            attachments: vec![],
        };
        *STREAM.lock().unwrap_or_else(|p| p.into_inner()) = Some((spec, 0));
        Ok(vec![image])
    }

    fn read_stream(archive: &dyn ArchiveRead, id: u32, max: u32) -> Result<Vec<u8>, DecodeError> {
        let mut stream = STREAM.lock().unwrap_or_else(|p| p.into_inner());
        let Some((spec, pos)) = stream.as_mut().filter(|_| id == 0) else {
            return Err(DecodeError::unsupported(None, format!("no stream {id}")));
        };
        if spec.fail_at.is_some_and(|at| *pos >= at) {
            return Err(DecodeError::malformed(&spec.layer, format!("stream broken on purpose at byte {pos}")));
        }
        let mut bytes = archive.read(&spec.layer, *pos, max).map_err(|e| DecodeError::host(&spec.layer, e))?;
        bytes.iter_mut().for_each(|b| *b ^= spec.key);
        *pos += bytes.len() as u64;
        Ok(bytes)
    }
}

export_decoder!(Streamer);
