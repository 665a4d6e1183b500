//! Progress on a terminal: one bar per phase (bytes, throughput, ETA) and
//! one per transfer (a layer downloading or uploading), as docker shows.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use msb::progress::{Phase, Progress, Silent};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

/// Bars on stderr.
pub struct Bars {
    multi: MultiProgress,
    bar: Mutex<Option<ProgressBar>>,
    transfers: Mutex<HashMap<String, ProgressBar>>,
}

/// Notes and finished transfers on stderr, no bars (stderr is not a terminal).
pub struct Notes;

impl Progress for Notes {
    fn transfer_end(&self, id: &str, status: &str) {
        eprintln!("{id}: {status}");
    }

    fn note(&self, message: &str) {
        eprintln!("note: {message}");
    }
}

/// Bars when stderr is a terminal; notes unless `quiet`, which shows nothing.
pub fn for_terminal(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        Box::new(Bars { multi, bar: Mutex::new(None), transfers: Mutex::default() })
    } else {
        Box::new(Notes)
    }
}

fn styled(bar: ProgressBar, template: &str) -> ProgressBar {
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

impl Progress for Bars {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let bar = match total {
            Some(total) => styled(
                ProgressBar::new(total),
                "{msg:>16} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ),
            None => styled(ProgressBar::new_spinner(), "{msg:>16} {spinner} {bytes} {bytes_per_sec}"),
        };
        let bar = self.multi.add(bar);
        bar.set_message(phase.label());
        if let Some(old) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn transfer_start(&self, id: &str, total: Option<u64>) {
        let bar = match total {
            Some(total) => styled(ProgressBar::new(total), "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes}"),
            None => styled(ProgressBar::new_spinner(), "{prefix}: {msg} {spinner} {bytes}"),
        };
        let bar = self.multi.add(bar);
        bar.set_prefix(id.to_string());
        bar.set_message("Transferring");
        self.transfers.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), bar);
    }

    fn transfer_advance(&self, id: &str, bytes: u64) {
        if let Some(bar) = self.transfers.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            bar.inc(bytes);
        }
    }

    fn transfer_end(&self, id: &str, status: &str) {
        match self.transfers.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            Some(bar) => {
                bar.set_style(styled(ProgressBar::hidden(), "{prefix}: {msg}").style());
                bar.finish_with_message(status.to_string());
            }
            None => {
                let _ = self.multi.println(format!("{id}: {status}"));
            }
        }
    }

    fn note(&self, message: &str) {
        self.multi.suspend(|| Notes.note(message));
    }
}
