//! A decoder that misbehaves on purpose, to test the sandbox. The archive's
//! first entry name says how: `spin` loops forever, `hog` allocates without
//! end, `panic` panics, `slurp` reads the archive over and over, `lie` gives
//! a config whose declared digest is wrong, `escape` points the config
//! outside the archive, `flood` describes more images than anyone needs,
//! `rehash` has the host hash the archive over and over, `gush` streams a
//! layer without end, `far` reads at the largest offsets, `chatter` sends
//! more notes than anyone reads (with control characters).
//! Anything else: an honest "not this format".

use msb_plugin_sdk::oci::MEDIA_TYPE_OCI_CONFIG;
use msb_plugin_sdk::{
    ArchiveRead, Blob, DecodeError, Decoder, Image, Info, Layer, Source, entry_blob, export_decoder, info,
};

struct Hostile;

impl Decoder for Hostile {
    fn info() -> Info {
        info!("hostile", "misbehaves on purpose (tests only)", ["none"])
    }

    fn detect(_: &dyn ArchiveRead) -> u8 {
        0
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        let first = archive.entries().first().map(|e| e.path.clone()).unwrap_or_default();
        match first.as_str() {
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile decoder panics on purpose"),
            "slurp" => loop {
                archive.read(&first, 0, u32::MAX).map_err(|e| DecodeError::host(&first, e))?;
            },
            "lie" => Ok(vec![image(Blob {
                media_type: None,
                digest: Some(format!("sha256:{}", "0".repeat(64))),
                source: Source::Bytes(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec()),
            })]),
            "escape" => Ok(vec![image(entry_blob(MEDIA_TYPE_OCI_CONFIG, None, "../../../../etc/passwd"))]),
            "flood" => Ok((0..20_000).map(|_| image(entry_blob(MEDIA_TYPE_OCI_CONFIG, None, "flood"))).collect()),
            "rehash" => loop {
                archive.digest(&first, true).map_err(|e| DecodeError::host(&first, e))?;
            },
            "gush" => {
                let diff_id = format!("sha256:{}", "0".repeat(64));
                let config = format!(
                    r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
                );
                let mut image =
                    image(Blob { media_type: None, digest: None, source: Source::Bytes(config.into_bytes()) });
                let blob = Blob { media_type: None, digest: None, source: Source::Stream(0) };
                image.layers.push(Layer { blob, diff_id: Some(diff_id) });
                Ok(vec![image])
            }
            "far" => {
                let mut got = Vec::new();
                for offset in [u64::MAX, u64::MAX - 1, u64::MAX - 511, 1 << 63] {
                    let n = archive.read(&first, offset, u32::MAX).map_err(|e| DecodeError::host(&first, e))?.len();
                    got.push(n.to_string());
                }
                Err(DecodeError::malformed(&first, format!("far reads gave {} bytes", got.join("+"))))
            }
            "chatter" => {
                for n in 0..50 {
                    msb_plugin_sdk::note(&format!("chatter {n}\n\x1b[31mred{}", "x".repeat(1000)));
                }
                Err(DecodeError::not_this_format("hostile chattered"))
            }
            _ => Err(DecodeError::not_this_format("hostile decodes nothing")),
        }
    }

    /// `gush`'s layer: zeros without end.
    fn read_stream(_: &dyn ArchiveRead, _id: u32, max: u32) -> Result<Vec<u8>, DecodeError> {
        Ok(vec![0u8; max as usize])
    }
}

fn image(config: Blob) -> Image {
    Image {
        refs: vec!["hostile:latest".into()],
        platform: None,
        indexes: vec![],
        manifest: None,
        config,
        layers: vec![],
        attachments: vec![],
    }
}

export_decoder!(Hostile);
