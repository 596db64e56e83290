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
        if let Some(u) = cause.downcast_ref::<UserError>()
            && let Some(h) = &u.hint
        {
            return Some(h.clone());
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
    if let Some(e) = cause.downcast_ref::<moltvault_redact::Error>() {
        return match e {
            moltvault_redact::Error::RuleFile { .. } | moltvault_redact::Error::Rule { .. } => Some(
                "Fix that rule in the file named above (the format is in docs/redaction.md), or pass another file with --rules."
                    .into(),
            ),
            moltvault_redact::Error::Io(_) => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<moltvault_vault::Error>() {
        if let moltvault_vault::Error::Fs(fs) = e {
            return library_hint(fs);
        }
        return vault_hint(e);
    }
    if let Some(e) = cause.downcast_ref::<moltvault_vault::backup::BackupError>() {
        return backup_hint(e);
    }
    if let Some(e) = cause.downcast_ref::<moltvault_rotate::Error>() {
        if let moltvault_rotate::Error::Fs(fs) = e {
            return library_hint(fs);
        }
        return rotate_hint(e);
    }
    if let Some(e) = cause.downcast_ref::<moltvault_gateway::Error>() {
        if let moltvault_gateway::Error::Write(fs) = e {
            return library_hint(fs);
        }
        return gateway_hint(e);
    }
    if let Some(e) = cause.downcast_ref::<moltvault_gateway::sweep::SweepError>() {
        use moltvault_gateway::sweep::SweepError;
        return match e {
            SweepError::Gateway(g) => library_hint(g),
            SweepError::Locked { .. } => Some(
                "A gateway turn kept the transcript locked for the whole wait: the next turn's sweep (or `moltvault redact`) covers it."
                    .into(),
            ),
            _ => None,
        };
    }
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

/// Hints for the vault's errors (keys, sealed files, locked credentials).
fn vault_hint(e: &moltvault_vault::Error) -> Option<String> {
    use moltvault_vault::{DecryptFailure as D, Error as V};
    let h = match e {
        V::NotInitialized { .. } => {
            "Run `moltvault init` first, or point --vault-dir / MOLTVAULT_DIR at your vault."
        }
        V::AlreadyInitialized { .. } => {
            "Use the existing vault (`moltvault key list`), or pass another --vault-dir."
        }
        V::Config { .. } => {
            "Restore config.toml from a backup; its recipient line is also in your recovery key file as `# public key:`."
        }
        V::WrongPassphrase { .. } => {
            "Check the passphrase (and --passphrase-file / MOLTVAULT_PASSPHRASE), or unlock with the recovery key: --identity <file>."
        }
        V::PassphraseNeeded => {
            "Run on a terminal to be prompted, or pass --passphrase-file FILE, or set MOLTVAULT_PASSPHRASE for automation."
        }
        V::EmptyPassphrase => "Choose a non-empty passphrase.",
        V::Locked { .. } => {
            "Unlock with a passphrase (--passphrase-file / MOLTVAULT_PASSPHRASE) or the recovery key (--identity <file>); `moltvault key list` shows the methods."
        }
        V::MissingKeyFile { .. } => {
            "The key file was removed: unlock with another method or the recovery key (--identity <file>), then `moltvault key remove` the broken method and add it again."
        }
        V::WrongIdentity { .. } => {
            "That identity belongs to another vault: pass the recovery key `moltvault init` gave for this one."
        }
        V::BadIdentityFile { .. } => {
            "Pass the recovery key file (it holds a line starting with AGE-SECRET-KEY-1)."
        }
        V::KeyringUnavailable { .. } => {
            "This host has no usable keyring session (common on servers and containers): unlock with a passphrase instead, or start a keyring session (e.g. `keyctl session -`) and try again. moltvault never falls back silently."
        }
        V::KeyringEmpty { .. } => {
            "The keyring cache is gone (keyutils forgets at reboot): unlock with your passphrase, then `moltvault key remove keyring` and `moltvault key add keyring` to refill it."
        }
        V::PluginMissing { .. } => {
            "Install the age plugin so that its binary is on PATH (e.g. age-plugin-yubikey), or unlock with another method."
        }
        V::BadRecipient { .. } => "Pass the recipient exactly as the plugin printed it.",
        V::Plugin { .. } => {
            "Check the plugin's own instructions (device plugged in, PIN), then retry."
        }
        V::MethodExists { .. } => "Pick another --name, or remove the old method first.",
        V::UnknownMethod { .. } => "`moltvault key list` shows the method names.",
        V::LastMethod { .. } => {
            "Add another unlock method first (`moltvault key add passphrase`), then remove this one."
        }
        V::Decrypt { kind, .. } => match kind {
            D::NotForUs => {
                "It was encrypted to another key: use the vault it belongs to, or its recovery key (--identity <file>). Nothing was changed."
            }
            D::Truncated | D::Damaged | D::BadMac => {
                "The file is damaged or was tampered with; restore it from a backup. Nothing was changed and no partial plaintext was kept."
            }
            D::BadHeader => {
                "It is not an age file (or its header is damaged); restore it from a backup. Nothing was changed."
            }
            D::ExcessiveWork => {
                "The file demands an unusually high passphrase work factor; it was not made by moltvault."
            }
            D::MissingPlugin => "Install the age plugin it needs, or use another unlock method.",
            _ => "Check that the file is readable and the disk healthy; nothing was changed.",
        },
        V::VerifyMismatch { .. } => {
            "The sealed copy did not verify and was removed; the plaintext is untouched. Check the disk and memory, then retry."
        }
        V::NotRegularFile { symlink: true, .. } => {
            "moltvault does not follow symlinks: seal the real file (its target), or remove the link."
        }
        V::NotRegularFile { .. } => "Name a regular transcript file.",
        V::LockHeld { .. } => {
            "The gateway is writing this session: wait until it moves on, or stop the gateway; moltvault never seals a locked file."
        }
        V::RecentlyWritten { .. } => "Wait a minute after the last write and try again.",
        V::Conflict { .. } => {
            "Both copies exist: `moltvault unseal` it (identical copies are merged); if they differ, compare `moltvault cat` with the plain file and move one aside."
        }
        V::Manifest { .. } => {
            "Fix or remove the lock manifest; the sealed `.age` files beside the credentials open with `moltvault unseal` or `age -d -i <recovery key>`."
        }
        V::Io { source, .. } if source.raw_os_error() == Some(28) => {
            "The disk is full: free some space and run the command again; nothing was changed."
        }
        V::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "Check the path: the file does not exist (or was moved)."
        }
        V::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "Run moltvault as the user who owns the file."
        }
        V::Encrypt { .. } => "Check free space and permissions, then retry; nothing was changed.",
        _ => return None,
    };
    Some(h.into())
}

/// Hints for backup, verify, restore and prune errors.
fn backup_hint(e: &moltvault_vault::backup::BackupError) -> Option<String> {
    use moltvault_vault::backup::BackupError as B;
    let h = match e {
        B::Fs(fs) => return library_hint(fs),
        B::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "Run moltvault as the user who owns the gateway's state directory."
        }
        B::Io { source, .. } if source.raw_os_error() == Some(28) => {
            "The disk is full: free some space and run the command again; nothing was changed."
        }
        B::Io { .. } | B::Glob { .. } => return None,
        B::Sqlite { .. } => {
            "The database could not be read consistently; make sure no process holds it locked for long, or stop the gateway, and run the backup again."
        }
        B::Changed { .. } => {
            "A file was rewritten while it was being backed up; run the backup again (stopping the gateway gives a fully consistent backup). No backup file was left behind."
        }
        B::Encrypt(_) => "Check the vault's recipient with `moltvault key list`.",
        B::Decrypt { .. } => {
            "This backup was not encrypted to this vault, or its header is damaged: unlock the vault it was made with, or pass its recovery key with --identity FILE. Nothing was changed."
        }
        B::Corrupt { .. } | B::HashMismatch { .. } => {
            "The backup file is damaged or incomplete, so nothing was restored or changed. Use another backup (`moltvault backups list`) and check the disk or bucket it is stored on."
        }
        B::Unsafe { .. } | B::Manifest { .. } => {
            "This archive holds entries moltvault refuses to write (it was not made by moltvault, or was tampered with); nothing was written outside a staging directory that has been deleted."
        }
        B::BadName(_) => "Backups are named moltvault-<host>-<YYYYMMDDTHHMMSSZ>.tar.zst.age.",
        B::Exists(_) => "Backups are write-once: wait a second and run the backup again.",
        B::Busy(_) => {
            "Wait for the other restore to finish. If its process is gone, its lock is gone too: run the command again."
        }
        B::NotFound(_) => {
            "List the backups with `moltvault backups list` (add --from DEST for another location)."
        }
        B::NothingVerified { .. } => {
            "Prune deleted nothing because no kept backup verified; run `moltvault backups verify --all` to see why, and make a fresh backup."
        }
        B::Remote { .. } => {
            "Check AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, and that the bucket exists and is reachable."
        }
    };
    Some(h.into())
}

/// Hints for `moltvault rotate` errors.
fn rotate_hint(e: &moltvault_rotate::Error) -> Option<String> {
    use moltvault_rotate::Error as E;
    Some(match e {
        E::GatewayRunning { .. } => "Stop the gateway first (`openclaw gateway stop` or `systemctl --user stop openclaw-gateway`) so nothing reads or leaks the new secrets mid-rotation, or pass --allow-running (or --mode scheduled) if you accept that risk.".into(),
        E::Unfinished { .. } => "Continue it with `moltvault rotate resume`, or give it up with `moltvault rotate abort`; `moltvault rotate status` shows where it stopped.".into(),
        E::Locked { .. } => "Another `moltvault rotate` is running; wait for it to finish. If its process is gone, the lock is released automatically: run the command again.".into(),
        E::NoRun(_) => "There is nothing to resume: start one with `moltvault rotate --all` (see `moltvault rotate --list`).".into(),
        E::Journal { .. } => "The journal was edited or damaged; do not trust this run. Check each secret with `moltvault rotate --list` and start a new rotation after `moltvault rotate abort`.".into(),
        E::Invalid { .. } => "Check that you pasted the new value for the right provider (see `moltvault rotate --list`), fix the answers file or paste it again, then `moltvault rotate resume`.".into(),
        E::NoAnswer(_) => "Add the item to the --answers file (item id = file with the new value, or { skip = true }), or run without --answers to be prompted.".into(),
        E::UnknownItem(_) => "Use an item id printed by `moltvault rotate --list`.".into(),
        E::Conflict { .. } => "Someone else changed that file during the rotation: put back the old or the new value there (see `moltvault rotate status`), then `moltvault rotate resume`.".into(),
        E::Stage { .. } => "The staged value could not be read back: unlock with the vault passphrase (--passphrase-file or MOLTVAULT_PASSPHRASE) or the recovery key (--identity).".into(),
        E::BaseUrl { .. } => "Use an https:// base URL, or http:// only to 127.0.0.1 / localhost for a local test server.".into(),
        E::VaultLocked { .. } => "That secret lives in the moltvault secrets store: unlock the vault with --passphrase-file FILE, --identity RECOVERY_KEY or MOLTVAULT_PASSPHRASE, then run the command again.".into(),
        _ => return None,
    })
}

/// Hints for the gateway crate's errors (discovery, config, session stores).
fn gateway_hint(e: &moltvault_gateway::Error) -> Option<String> {
    use moltvault_gateway::Error as G;
    let h = match e {
        G::NotFound { .. } => {
            "Point moltvault at the gateway with --state-dir DIR (or set OPENCLAW_STATE_DIR); `openclaw status` shows where yours lives."
        }
        G::StateDirMissing { .. } => {
            "Fix or unset that setting: moltvault never guesses another directory when one is named."
        }
        G::ConfigMissing { .. } => "Fix or unset the config path named above.",
        G::Parse { .. } => {
            "Fix the syntax at that position (`openclaw doctor` can help), or restore the file from its .bak copy; nothing was changed."
        }
        G::IncludeDepth { .. } => {
            "Remove the include loop or flatten the $include chain (at most 10 levels)."
        }
        G::ConfigPath { .. } => {
            "Edit the config by hand, or the included file it names; nothing was changed."
        }
        G::Changed { .. } => {
            "Something else (the gateway?) wrote the config meanwhile: run the command again."
        }
        G::Sealed { .. } => "Read it with `moltvault cat`, or `moltvault unseal` it first.",
        G::Sqlite { .. } => {
            "The gateway may hold the database busy: retry, or stop the gateway first; nothing was changed (the transaction rolled back)."
        }
        G::BadRow { .. } => {
            "The database holds a row that does not decode; back it up and run `openclaw doctor`, then retry."
        }
        G::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            "Run moltvault as the user who owns the gateway's state directory."
        }
        G::Io { .. } | G::Write(_) => return None,
    };
    Some(h.to_owned())
}
