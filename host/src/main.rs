//! `msb`: see `msb --help`. Exit codes: 0 success, 1 failure, 2 bad usage.

mod cli;

use std::process::ExitCode;

/// Longest error line printed; the rest is cut.
const MAX_ERROR: usize = 1000;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
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
