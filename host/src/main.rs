//! `msb`: see `msb --help`. Exit codes: 0 success, 1 failure, 2 bad usage,
//! 130 and 143 interrupted by SIGINT and SIGTERM (nothing left in `tmp/`).

mod cli;

use std::process::ExitCode;

/// Longest error line printed; the rest is cut.
const MAX_ERROR: usize = 1000;

fn main() -> ExitCode {
    if let Err(error) = exit_on_signals() {
        eprintln!("error: cannot handle SIGINT and SIGTERM: {error}");
        return ExitCode::FAILURE;
    }
    let result = cli::run();
    // This process's tmp/ directory goes; if a signal arrived meanwhile,
    // this waits for its handler to exit with 130 or 143 instead.
    msb::store::release_process_tmp();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM are handled on a thread of their own: it waits for a
/// commit in progress, removes this process's staging and spool files, and
/// exits with 128 + the signal (130, 143).
fn exit_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            msb::store::exit_on_signal(signal);
        }
    })?;
    Ok(())
}

/// Errors are one line, whatever bytes an archive put into them: control
/// characters become spaces, runs of spaces one, and a very long message is cut.
fn one_line(message: &str) -> String {
    let mut line = String::with_capacity(message.len().min(MAX_ERROR));
    for c in message.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if c == ' ' && line.ends_with(' ') {
            continue;
        }
        if line.len() >= MAX_ERROR {
            line.push('…');
            break;
        }
        line.push(c);
    }
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_one_line() {
        assert_eq!(super::one_line("a:\n  b\r\n\0c"), "a: b c");
        assert!(super::one_line(&"x".repeat(5000)).chars().count() <= super::MAX_ERROR + 1);
    }
}
