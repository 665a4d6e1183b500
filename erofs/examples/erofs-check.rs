//! `cargo run -p msb-erofs --example erofs-check -- IMAGE.erofs...`: checks
//! EROFS images with `msb_erofs::check`, printing a summary or the first
//! problem of each; exits 1 if any image is refused.

use std::fs::File;

fn main() {
    let images: Vec<String> = std::env::args().skip(1).collect();
    if images.is_empty() {
        eprintln!("usage: erofs-check IMAGE.erofs...");
        std::process::exit(2);
    }
    let mut failed = false;
    for image in &images {
        let result = File::open(image).map_err(msb_erofs::CheckError::from).and_then(|mut f| msb_erofs::check(&mut f));
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
