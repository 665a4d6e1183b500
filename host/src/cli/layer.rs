//! `msb layer`: one layer tar to one EROFS image, outside any store.

use anyhow::{Context, Result, bail};
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
    /// `full`: file data copied into the image. `tar-index`: metadata only,
    /// reading file data from the input tar (a plain tar file), which the
    /// image then needs as its extra device: `mount -t erofs -o
    /// ro,device=/dev/loopN IMAGE DIR` with the tar on `/dev/loopN`, or
    /// `cat IMAGE TAR > ONE` for one self-contained image.
    #[arg(long, value_enum, default_value_t = LayerFormat::Full)]
    format: LayerFormat,
}

/// `--format` of `msb layer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerFormat {
    /// One self-contained image.
    Full,
    /// An index into the tar.
    TarIndex,
}

pub fn run(args: Args) -> Result<()> {
    let name = args.input.display().to_string();
    let reader: Box<dyn std::io::Read> = if name == "-" {
        if args.format == LayerFormat::TarIndex {
            bail!("stdin: a tar-index image reads file data from its tar, which must be a file (-i PATH)");
        }
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.input).with_context(|| name.clone())?)
    };
    let mut reader = BufReader::with_capacity(1 << 18, reader);
    let compression = sniff(reader.fill_buf().with_context(|| name.clone())?);
    let format = match (args.format, compression) {
        (LayerFormat::Full, _) => msb_erofs::Format::Full,
        (LayerFormat::TarIndex, None) => msb_erofs::Format::TarIndex,
        (LayerFormat::TarIndex, Some(c)) => bail!(
            "{name}: is {}-compressed; a tar-index image reads file data from a plain tar (decompress it first)",
            c.name()
        ),
    };
    let mut tar = decompress(reader, compression).with_context(|| name.clone())?;
    let mut out = std::fs::File::create(&args.output).with_context(|| args.output.display().to_string())?;
    let options = msb_erofs::Options { format, ..Default::default() };
    msb_erofs::write_layer(&mut tar, &mut out, &options).with_context(|| name.clone())?;
    Ok(())
}
