//! An msb decoder for a plain root file system tarball (`docker export`,
//! debootstrap, a build system's rootfs): the tarball itself is the image's
//! one layer, and the config is made here. It names no image: load it with
//! `msb load -i rootfs.tar.gz -t NAME:TAG`.

use msb_plugin_sdk::*;

/// Top-level files of the image archives other decoders read.
const IMAGE_ARCHIVE_FILES: [&str; 4] = ["manifest.json", "index.json", "oci-layout", "repositories"];
/// The `PATH` of a fresh root file system, as `docker import` sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct RootfsTar;

impl Decoder for RootfsTar {
    fn info() -> Info {
        info!("rootfs-tar", "a root file system tarball (docker export, debootstrap) as one layer", ["rootfs-tar"])
    }

    /// A modest 20 for `bin/` or `usr/` beside `etc/`: any image archive's own decoder scores higher.
    fn detect(archive: &dyn ArchiveRead) -> u8 {
        let top = |dir: &str| archive.entries().iter().any(|e| e.path.split('/').next() == Some(dir));
        let image_archive = IMAGE_ARCHIVE_FILES.iter().any(|f| archive.find(f).is_some());
        if (top("bin") || top("usr")) && top("etc") && !image_archive { 20 } else { 0 }
    }

    fn decode(archive: &dyn ArchiveRead) -> Result<Vec<Image>, DecodeError> {
        let diff_id =
            archive.input_digest().map_err(|e| DecodeError::unsupported(None, format!("not a tarball: {e}")))?;
        let platform = platform(archive)?;
        let mut config = serde_json::json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": { "Env": [DEFAULT_PATH] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "msb load: a root file system tarball (rootfs-tar)" }],
        });
        if let Some(variant) = &platform.variant {
            config["variant"] = variant.as_str().into();
        }
        let config = Blob::new(oci::MEDIA_TYPE_OCI_CONFIG, Source::Bytes(config.to_string().into_bytes()));
        let layer = Layer { blob: Blob::new(oci::MEDIA_TYPE_OCI_LAYER, Source::Input), diff_id: Some(diff_id) };
        let image = Image { platform: Some(platform), ..Image::new(config, vec![layer]) };
        Ok(vec![image])
    }
}

/// The platform `/bin/sh` (often a link to busybox or dash) was built for.
fn platform(archive: &dyn ArchiveRead) -> Result<Platform, DecodeError> {
    let sh = ["bin/sh", "usr/bin/sh"].into_iter().find_map(|path| archive.resolve(path));
    let sh = sh.ok_or_else(|| DecodeError::missing("bin/sh", "no shell to tell the platform by"))?;
    let header = archive.read(&sh.path, 0, ELF_HEADER_LEN).map_err(|e| DecodeError::host(&sh.path, e))?;
    elf_platform(&header)
        .ok_or_else(|| DecodeError::unsupported(Some(&sh.path), "not an ELF executable msb can name the platform of"))
}

export_decoder!(RootfsTar);

#[cfg(test)]
mod tests;
