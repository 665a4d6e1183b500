//! The EROFS writer (`msb_erofs::write_layer`) on arbitrary layer tars: a
//! raw tar (seeds) or a structured one (whiteouts, hardlinks, long names,
//! PAX records, GNU and PAX sparse files, devices, damage). It must never
//! panic, an error must say something, and an image it writes must be as
//! long as it says and pass `msb_erofs::check` (a tar index: with the tar
//! as its device). Both formats are written from every input.
//!
//! `MSB_FUZZ_FSCK=1` also runs `fsck.erofs` on every image written (slow;
//! for long runs).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use msb_fuzz::layer::Layer;
use std::io::Seek;
use std::sync::OnceLock;

/// Where the writer's temporary files and the images go, per process.
fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("msb-fuzz-erofs-").tempdir().expect("temp dir"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tar = if msb_fuzz::is_tar(data) {
        data.to_vec()
    } else {
        let Ok(layer) = Layer::arbitrary_take_rest(Unstructured::new(data)) else { return };
        msb_fuzz::tarball::layer(&layer)
    };
    let dir = scratch().path();
    for format in [msb_erofs::Format::Full, msb_erofs::Format::TarIndex] {
        let index = format == msb_erofs::Format::TarIndex;
        let mut image = tempfile::NamedTempFile::new_in(dir).expect("image file");
        let options = msb_erofs::Options {
            tmp_dir: Some(dir.to_path_buf()),
            format,
            device_tag: index.then(|| "layer".to_string()),
        };
        match msb_erofs::write_layer(&tar[..], image.as_file_mut(), &options) {
            Ok(summary) => {
                let len = image.as_file().metadata().expect("stat image").len();
                assert_eq!(summary.bytes, len, "the summary's size is the image's");
                image.as_file_mut().rewind().expect("rewind the image");
                let devices: &[u64] = if index { &[tar.len() as u64] } else { &[] };
                if let Err(e) = msb_erofs::check_with_devices(image.as_file_mut(), devices) {
                    panic!("the writer made an image its checker refuses ({format:?}): {e}");
                }
                if std::env::var_os("MSB_FUZZ_FSCK").is_some() {
                    let tar_file = index.then(|| {
                        let file = tempfile::NamedTempFile::new_in(dir).expect("tar file");
                        std::fs::write(file.path(), &tar).expect("write the tar");
                        file
                    });
                    fsck(image.path(), tar_file.as_ref().map(|f| f.path()));
                }
            }
            Err(e) => assert!(!e.to_string().is_empty(), "an error says what is wrong"),
        }
    }
});

/// `fsck.erofs` must accept the image (reading from `device`, if given).
fn fsck(path: &std::path::Path, device: Option<&std::path::Path>) {
    let mut cmd = std::process::Command::new("fsck.erofs");
    if let Some(device) = device {
        cmd.arg(format!("--device={}", device.display()));
    }
    let out = cmd.arg(path).output().expect("run fsck.erofs");
    assert!(
        out.status.success(),
        "fsck.erofs rejects the image: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
