//! The only module that writes to the terminal: data on stdout, everything else on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

/// Prints an error report on stderr, its `error:` / `hint:` labels in colour on a terminal
/// unless `NO_COLOR` is set.
pub fn error(msg: &str) {
    if color() {
        let painted: Vec<String> = msg
            .lines()
            .map(|l| {
                if let Some(rest) = l.strip_prefix("error:") {
                    format!("\x1b[1;31merror:\x1b[0m{rest}")
                } else if let Some(rest) = l.strip_prefix("hint:") {
                    format!("\x1b[1;36mhint:\x1b[0m{rest}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        eprintln!("{}", painted.join("\n"));
    } else {
        eprintln!("{msg}");
    }
}

/// Prints a status line on stderr (not data).
pub fn note(msg: &str) {
    eprintln!("{msg}");
}

/// Prints a warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// A locked, buffered stdout for data output.
pub fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::new(std::io::stdout().lock())
}

/// Prints one line of data on stdout.
pub fn data(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Whether stderr is a terminal (progress bars and colour only then).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether colour may be used on stderr.
pub fn color() -> bool {
    stderr_is_tty() && crate::env::var(crate::env::NO_COLOR).is_none()
}

/// A progress bar over `total` units on a TTY, hidden otherwise.
pub fn progress(total: u64, what: &str, bytes: bool) -> indicatif::ProgressBar {
    if !stderr_is_tty() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let tmpl = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{msg} [{bar:30}] {pos}/{len} eta {eta}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(tmpl) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Reads a secret from a hidden prompt on the terminal.
///
/// # Errors
/// Fails when there is no terminal to prompt on.
pub fn prompt_hidden(prompt: &str) -> anyhow::Result<secrecy::SecretString> {
    if !std::io::stdin().is_terminal() {
        return Err(crate::report::user_error(
            "no terminal to prompt for a secret on",
            "Pass the secret with --passphrase-file, or through the MOLTVAULT_PASSPHRASE environment variable for automation.",
        ));
    }
    let s = rpassword::prompt_password(prompt)?;
    Ok(secrecy::SecretString::from(s))
}
