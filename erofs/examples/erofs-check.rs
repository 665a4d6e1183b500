//! `cargo run -p msb-erofs --example erofs-check -- [--device=FILE]... IMAGE.erofs...`:
//! checks EROFS images with `msb_erofs::check` (or `check_with_devices`,
//! given the extra devices of a tar index: the layer tar), printing a
//! summary or the first problem of each; exits 1 if any image is refused.

use std::fs::File;

fn main() {
    let (devices, images): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| a.starts_with("--device="));
    if images.is_empty() {
        eprintln!("usage: erofs-check [--device=FILE]... IMAGE.erofs...");
        std::process::exit(2);
    }
    let mut sizes = Vec::new();
    for device in &devices {
        let path = &device["--device=".len()..];
        match std::fs::metadata(path) {
            Ok(m) => sizes.push(m.len()),
            Err(e) => {
                eprintln!("error: {path}: {e}");
                std::process::exit(2);
            }
        }
    }
    let mut failed = false;
    for image in &images {
        let result = File::open(image)
            .map_err(msb_erofs::CheckError::from)
            .and_then(|mut f| msb_erofs::check_with_devices(&mut f, &sizes));
        match result {
            Ok(s) => println!(
                "{image}: ok: {} inodes ({} directories, {} files, {} symlinks, {} special), {} bytes of data, {} xattrs",
                s.inodes, s.dirs, s.files, s.symlinks, s.specials, s.bytes_of_data, s.xattrs
            ),
            Err(e) => {
                eprintln!("error: {image}: {e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
