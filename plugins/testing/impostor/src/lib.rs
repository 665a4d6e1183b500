//! A decoder for tests of plugin names: its name is [`NAME`], 64 bytes
//! padded with spaces, which tests overwrite in the built component to make
//! it call itself anything (`../x`, `oci-layout`). It claims every archive
//! that holds an entry `impostor-wins` (confidence 100) and decodes nothing,
//! saying its name.

use msb_plugin_sdk::{ArchiveRead, DecodeError, Decoder, Image, Info, export_decoder};

/// The name, padded to 64 bytes: the bytes tests patch.
const NAME: &str = "impostor                                                        ";

struct Impostor;

fn name() -> String {
    std::hint::black_box(NAME).trim_end().to_string()
}

impl Decoder for Impostor {
    fn info() -> Info {
        Info {
            name: name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            formats: vec!["none".to_string()],
            description: "takes any name (tests only)".to_string(),
        }
    }

    fn detect(archive: &dyn ArchiveRead) -> u8 {
        if archive.has_file("impostor-wins") { 100 } else { 0 }
    }

    fn decode(_: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        Err(DecodeError::not_this_format(format!("the impostor calling itself {} decoded this", name())))
    }
}

export_decoder!(Impostor);
