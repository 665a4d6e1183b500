//! `msb layer`: one layer tar to one EROFS image, outside any store.

use anyhow::{Context, Result};
use msb::input::{decompress, sniff};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// `msb layer` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The layer tar (gzip/zstd/xz/bzip2 or plain), or `-` for stdin.
    #[arg(short, long, value_name = "PATH", default_value = "-")]
    input: PathBuf,
    /// Where to write the EROFS image.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let name = args.input.display().to_string();
    let reader: Box<dyn std::io::Read> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.input).with_context(|| name.clone())?)
    };
    let mut reader = BufReader::with_capacity(1 << 18, reader);
    let compression = sniff(reader.fill_buf().with_context(|| name.clone())?);
    let mut tar = decompress(reader, compression).with_context(|| name.clone())?;
    let mut out = std::fs::File::create(&args.output).with_context(|| args.output.display().to_string())?;
    msb_erofs::write_layer(&mut tar, &mut out, &msb_erofs::Options::default()).with_context(|| name.clone())?;
    Ok(())
}
