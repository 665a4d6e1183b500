//! The EROFS writer (`msb_erofs::write_layer`) on arbitrary layer tars: a
//! raw tar (seeds) or a structured one (whiteouts, hardlinks, long names,
//! PAX records, GNU and PAX sparse files, devices, damage). It must never
//! panic, an error must say something, and an image it writes must be as
//! long as it says and pass `msb_erofs::check`.
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
    let mut image = tempfile::NamedTempFile::new_in(dir).expect("image file");
    let options = msb_erofs::Options { tmp_dir: Some(dir.to_path_buf()), ..Default::default() };
    match msb_erofs::write_layer(&tar[..], image.as_file_mut(), &options) {
        Ok(summary) => {
            let len = image.as_file().metadata().expect("stat image").len();
            assert_eq!(summary.bytes, len, "the summary's size is the image's");
            image.as_file_mut().rewind().expect("rewind the image");
            if let Err(e) = msb_erofs::check(image.as_file_mut()) {
                panic!("the writer made an image its checker refuses: {e}");
            }
            if std::env::var_os("MSB_FUZZ_FSCK").is_some() {
                fsck(image.path());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error says what is wrong"),
    }
});

/// `fsck.erofs` must accept the image.
fn fsck(path: &std::path::Path) {
    let out = std::process::Command::new("fsck.erofs").arg(path).output().expect("run fsck.erofs");
    assert!(
        out.status.success(),
        "fsck.erofs rejects the image: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
