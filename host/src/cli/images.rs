//! `msb images` and `msb inspect`.

use super::Format;
use anyhow::{Context, Result};
use msb::oci;
use msb::store::{ImageView, Store};
use serde_json::json;

/// `msb images` arguments.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// One row per platform of a multi-platform index (each under the
    /// index's ref), instead of the host platform's only.
    #[arg(short, long)]
    all: bool,
}

/// `msb inspect` arguments.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Of a multi-platform index, show this platform's image
    /// (os/arch[/variant]) instead of the host's.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// A ref (`alpine`, `docker.io/library/alpine:latest`), an image ID
    /// (`sha256:<config digest>`) or a unique prefix of one.
    reference: String,
}

pub fn list(store: &Store, args: ListArgs) -> Result<()> {
    let mut images = Vec::new();
    for entry in store.entries()? {
        if args.all {
            images.extend(ImageView::load_all(store, &entry)?);
        } else {
            images.push(ImageView::load(store, &entry)?);
        }
    }
    match args.format {
        Format::Json => {
            let list: Vec<_> = images
                .iter()
                .map(|i| {
                    json!({
                        "ref": i.entry.reference.as_ref().map(|r| r.to_string()),
                        "manifest_digest": i.manifest_digest,
                        "config_digest": i.config_digest,
                        "platform": i.platform.to_string(),
                        "size": i.size(),
                        "index_digest": i.index_digest(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Text => {
            println!("{:<40} {:<12} {:<16} {:>10}", "REFERENCE", "IMAGE ID", "PLATFORM", "SIZE");
            for i in &images {
                let name = i.entry.reference.as_ref().map_or("<none>".to_string(), |r| r.familiar());
                println!(
                    "{:<40} {:<12} {:<16} {:>10}",
                    name,
                    &i.config_digest.hex()[..12],
                    i.platform.to_string(),
                    human(i.size())
                );
            }
        }
    }
    Ok(())
}

pub fn inspect(store: &Store, args: InspectArgs) -> Result<()> {
    let platform = args.platform.as_deref().map(parse_platform).transpose()?;
    let image = store.resolve_platform(&args.reference, platform.as_ref())?;
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let devices = image
        .layers
        .iter()
        .map(|l| Ok(store.layer_devices(&l.diff_id)?.iter().map(|d| absolute(d)).collect()))
        .collect::<Result<Vec<Vec<_>>>>()?;
    let value = json!({
        "ref": image.entry.reference.as_ref().map(|r| r.to_string()),
        "index_digest": image.index_digest(),
        "manifest_digest": image.manifest_digest,
        "config_digest": image.config_digest,
        "platform": image.platform.to_string(),
        "platforms": image.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "size": image.size(),
        "layers": image.layers.iter().zip(&devices).map(|(l, devices)| json!({
            "digest": l.digest,
            "media_type": l.media_type,
            "size": l.size,
            "diff_id": l.diff_id,
            "erofs": absolute(&l.erofs),
            "devices": devices,
        })).collect::<Vec<_>>(),
    });
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Format::Text => {
            let name = image.entry.reference.as_ref().map_or("<none>".to_string(), |r| r.to_string());
            println!(
                "Reference: {name}\nManifest:  {}\nConfig:    {}\nPlatform:  {}",
                image.manifest_digest, image.config_digest, image.platform
            );
            if image.platforms.len() > 1 {
                let all: Vec<String> = image.platforms.iter().map(|p| p.to_string()).collect();
                println!("Platforms: {}", all.join(", "));
            }
            println!("Layers:");
            for (l, devices) in image.layers.iter().zip(&devices) {
                println!("  {} {:>10}  {}", l.diff_id, human(l.size), absolute(&l.erofs).display());
                for device in devices {
                    println!("  {:71} {:>10}  + device {}", "", "", device.display());
                }
            }
        }
    }
    Ok(())
}

/// `os/arch[/variant]`, from a `--platform` argument.
pub fn parse_platform(p: &str) -> Result<oci::Platform> {
    oci::parse_platform(p).with_context(|| format!("--platform {p:?}: expected os/arch[/variant]"))
}

/// `12.3 MB`, like docker.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
