//! Maps command results to exit codes and renders errors as `error:` / `caused by:` / `hint:`.

use std::process::ExitCode;

/// What a successful command reports to the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found something (`scan`, `audit`, `--check`).
    Findings,
}

/// An error raised by the CLI itself, with a hint for the user.
#[derive(Debug)]
pub struct UserError {
    /// What went wrong.
    pub message: String,
    /// What to do about it, as a full sentence.
    pub hint: Option<String>,
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Builds a [`UserError`] wrapped in `anyhow`.
pub fn user_error(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError {
        message: message.into(),
        hint: Some(hint.into()),
    }
    .into()
}

/// Turns a command result into the process exit code, printing the error if any.
pub fn exit(result: anyhow::Result<Status>) -> ExitCode {
    match result {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Findings) => ExitCode::from(1),
        Err(err) => {
            crate::ui::error(&render(&err));
            ExitCode::from(2)
        }
    }
}

/// Renders an error chain and its hint.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}");
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\ncaused by: {cause}"));
    }
    if let Some(hint) = hint_for(err) {
        out.push_str(&format!("\nhint: {hint}"));
    }
    out
}

/// Finds the hint for the first error in the chain that has one.
fn hint_for(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            if let Some(h) = &u.hint {
                return Some(h.clone());
            }
        }
        if let Some(h) = library_hint(cause) {
            return Some(h);
        }
    }
    None
}

/// Hints for typed library errors, kept in this one place.
fn library_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    use moltvault_vault::fsio::FsError;
    if let Some(e) = cause.downcast_ref::<FsError>() {
        return match e {
            FsError::Exists(_) => Some(
                "Remove or move the existing file, or pass --force where the command offers it."
                    .into(),
            ),
            FsError::Symlink(_) => Some(
                "Replace the symlink with the real file, or point moltvault at the real path."
                    .into(),
            ),
            FsError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some("Run moltvault as the user who owns the gateway's state directory.".into())
            }
            FsError::Io { source, .. } if source.raw_os_error() == Some(28) => Some(
                "The disk is full: free some space and run the command again; nothing was changed."
                    .into(),
            ),
            FsError::Io { .. } => None,
        };
    }
    None
}
