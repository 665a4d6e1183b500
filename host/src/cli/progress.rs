//! Progress bars on a terminal (bytes, throughput, ETA), one per phase.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use msb::progress::{Phase, Progress, Silent};
use std::io::IsTerminal;
use std::sync::Mutex;

/// Bars on stderr.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

/// Notes on stderr, no bars (stderr is not a terminal).
pub struct Notes;

impl Progress for Notes {
    fn note(&self, message: &str) {
        eprintln!("note: {message}");
    }
}

/// Bars when stderr is a terminal; notes unless `quiet`, which shows nothing.
pub fn for_terminal(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars { bar: Mutex::new(None) })
    } else {
        Box::new(Notes)
    }
}

impl Progress for Bars {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let (bar, template) = match total {
            Some(total) => {
                (ProgressBar::new(total), "{msg:>16} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            }
            None => (ProgressBar::new_spinner(), "{msg:>16} {spinner} {bytes} {bytes_per_sec}"),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_draw_target(ProgressDrawTarget::stderr());
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

    fn note(&self, message: &str) {
        match &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(bar) => bar.suspend(|| Notes.note(message)),
            None => Notes.note(message),
        }
    }
}
