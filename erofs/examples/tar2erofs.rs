//! `cargo run -p msb-erofs --example tar2erofs -- [--index[=TAG]] LAYER.tar OUT.erofs`:
//! converts one layer tar (`-` for stdin), printing the summary; with
//! `--index`, into a tar index (its device slot tagged TAG) that mounts
//! with the tar as a device: `mount -t erofs -o loop,ro,device=/dev/loopN`.

use std::fs::File;
use std::io::Read;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = msb_erofs::Options::default();
    if let Some(flag) = args.first().filter(|a| *a == "--index" || a.starts_with("--index=")) {
        opts.format = msb_erofs::Format::TarIndex;
        opts.device_tag = flag.strip_prefix("--index=").map(str::to_string);
        args.remove(0);
    }
    let [input, output] = &args[..] else {
        eprintln!("usage: tar2erofs [--index[=TAG]] LAYER.tar|- OUT.erofs");
        std::process::exit(2);
    };
    let tar: Box<dyn Read> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match File::open(input) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => {
                eprintln!("error: {input}: {e}");
                std::process::exit(1);
            }
        }
    };
    let result = File::create_new(output)
        .map_err(msb_erofs::Error::from)
        .and_then(|mut out| msb_erofs::write_layer(tar, &mut out, &opts));
    match result {
        Ok(summary) => {
            for note in &summary.notes {
                eprintln!("note: {input}: {note}");
            }
            if summary.more_notes > 0 {
                eprintln!("note: {input}: {} more dropped", summary.more_notes);
            }
            println!(
                "{} entries, {} inodes, {} bytes of files, image of {} bytes",
                summary.entries, summary.inodes, summary.file_bytes, summary.bytes
            );
            if opts.format == msb_erofs::Format::TarIndex {
                println!("refers to {} blocks of 512 bytes of the tar", summary.device_blocks);
            }
        }
        Err(e) => {
            eprintln!("error: {input}: {e}");
            std::process::exit(1);
        }
    }
}
