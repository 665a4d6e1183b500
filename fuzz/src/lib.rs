//! Shared input models of msb's fuzz targets (`fuzz_targets/`).
//!
//! Every target takes libFuzzer's bytes one of two ways:
//! - **raw**: bytes that already look like an archive (a tar header, or the
//!   magic of gzip, zstd, xz or bzip2) are used as they are, so the seed
//!   corpus (real archives made by skopeo, umoci, docker, python's tarfile;
//!   `fuzz/seed.sh`) is meaningful and mutations of it too;
//! - **structured**: anything else is read with [`arbitrary`] as a model:
//!   image archives ([`image`]) as entries whose names and JSON are biased
//!   toward what the decoders look for, layer tars ([`layer`]) as headers
//!   with whiteouts, links, long names, PAX records and sparse maps.
//!
//! [`tarball`] writes either model as tar bytes, header by header (no
//! validation: it writes what it is given). [`decoder`] runs one decoder
//! natively on an in-memory archive.

pub mod decoder;
pub mod image;
pub mod layer;
pub mod tarball;

/// Whether `data` is used raw: it starts with a tar header (`ustar` magic)
/// or with a compression magic.
pub fn is_raw(data: &[u8]) -> bool {
    is_tar(data) || is_compressed(data)
}

/// Whether `data` starts with a tar header (POSIX or GNU magic).
pub fn is_tar(data: &[u8]) -> bool {
    data.len() >= 512 && &data[257..262] == b"ustar"
}

/// Whether `data` starts with the magic of gzip, zstd, xz or bzip2.
pub fn is_compressed(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
        || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || data.starts_with(b"BZh")
}

/// `sha256` of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an archive file for targets that go through the host's
/// input (`input`, `runtime`), and the model's plugin choice: raw bytes as
/// they are (the choice is their last byte), or a structured archive as a
/// tar. `None` when the bytes are too few for a model.
pub fn archive_file(data: &[u8]) -> Option<(Vec<u8>, u8)> {
    use arbitrary::{Arbitrary, Unstructured};
    if is_raw(data) {
        return Some((data.to_vec(), data.last().copied().unwrap_or(0)));
    }
    let model = image::Archive::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    Some((tarball::archive(&model.render()), model.plugin))
}
