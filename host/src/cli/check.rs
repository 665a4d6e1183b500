//! `msb check [--repair]`.

use super::Format;
use anyhow::{Result, bail};
use msb::store::{CheckReport, Store};
use serde_json::json;

/// `msb check` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Remove what cannot be trusted and the refs that depend on it.
    #[arg(long)]
    repair: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Prints one line per problem (and, with `--repair`, per removal); fails
/// (exit 1) when there was any problem, repaired or not.
pub fn run(store: &Store, args: Args) -> Result<()> {
    let report = if args.repair { store.repair()? } else { store.check()? };
    match args.format {
        Format::Json => println!("{}", report_json(&report, args.repair)),
        Format::Text => {
            for problem in &report.problems {
                println!("{problem}");
            }
            for name in &report.removed_refs {
                println!("removed {name}");
            }
            for path in &report.removed_files {
                println!("removed {}", path.display());
            }
            for path in &report.recorded {
                println!("recorded {} (blob verified again)", path.display());
            }
            if report.problems.is_empty() {
                println!(
                    "ok: {} refs, {} blobs, {} layers, {} records",
                    report.refs, report.blobs, report.layers, report.records
                );
            }
        }
    }
    match report.problems.len() {
        0 => Ok(()),
        n if args.repair => bail!(
            "{n} problem(s) found; removed {} refs and {} files",
            report.removed_refs.len(),
            report.removed_files.len()
        ),
        n => bail!("{n} problem(s) found; `msb check --repair` removes what cannot be trusted"),
    }
}

fn report_json(report: &CheckReport, repair: bool) -> serde_json::Value {
    let problems: Vec<_> = report.problems.iter().map(|p| json!({"path": p.path, "problem": p.what})).collect();
    let mut value = json!({
        "ok": report.problems.is_empty(),
        "problems": problems,
        "checked": {"refs": report.refs, "blobs": report.blobs, "layers": report.layers, "records": report.records},
    });
    if repair {
        value["removed"] = json!({"refs": report.removed_refs, "files": report.removed_files});
        value["recorded"] = json!(report.recorded);
    }
    value
}
