//! `cargo run -p msb-erofs --example tar2erofs -- LAYER.tar OUT.erofs`:
//! converts one layer tar (`-` for stdin), printing the summary.

use std::fs::File;
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = &args[..] else {
        eprintln!("usage: tar2erofs LAYER.tar|- OUT.erofs");
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
        .and_then(|mut out| msb_erofs::write_layer(tar, &mut out, &msb_erofs::Options::default()));
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
        }
        Err(e) => {
            eprintln!("error: {input}: {e}");
            std::process::exit(1);
        }
    }
}
