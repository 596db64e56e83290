//! `moltvault init`: creates the vault identity and hands out the recovery key.

use std::io::IsTerminal;
use std::path::PathBuf;

use moltvault_vault::{InitOptions, Vault};

use crate::commands::Ctx;
use crate::commands::key::{new_passphrase, work_factor, write_recovery};
use crate::report::{Status, user_error};
use crate::ui;

/// Creates the vault: one age X25519 identity, its public recipient in `<vault dir>/config.toml`
/// and the identity wrapped under a passphrase in `<vault dir>/keys/passphrase.age`.
///
/// The recovery key (the identity itself) is printed once to stdout, or written to
/// `--recovery-file` (0600). Save it offline: it opens every sealed file and backup with stock
/// `age -d -i <file>`, and nothing else can if the passphrase is lost. The passphrase comes from
/// a hidden prompt (asked twice), `--passphrase-file` or `MOLTVAULT_PASSPHRASE`; never argv.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Write the recovery key to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    recovery_file: Option<PathBuf>,
    /// Read the passphrase from this file (its first line) instead of prompting.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: InitArgs) -> anyhow::Result<Status> {
    if let Some(f) = &args.recovery_file
        && std::fs::symlink_metadata(f).is_ok()
    {
        return Err(user_error(
            format!("{} already exists", f.display()),
            "Choose a new file for the recovery key; moltvault never overwrites one.",
        ));
    }
    if ctx
        .vault_dir
        .join(moltvault_vault::keys::CONFIG_FILE)
        .exists()
    {
        return Err(moltvault_vault::Error::AlreadyInitialized {
            dir: ctx.vault_dir.clone(),
        }
        .into());
    }
    let pass = new_passphrase(args.passphrase_file.as_deref(), true)?;
    let mut opts = InitOptions::new(pass);
    opts.work_factor = work_factor();
    let (vault, recovery) = Vault::init(&ctx.vault_dir, opts)?;
    let text = secrecy::SecretString::from(format!(
        "# moltvault recovery key for vault {}\n# Keep it offline. It decrypts everything: age -d -i <this file> <file>.age\n{}",
        vault.dir().display(),
        recovery.expose()
    ));
    ui::note(&format!(
        "created vault {} (recipient {})",
        vault.dir().display(),
        vault.recipient()
    ));
    match &args.recovery_file {
        Some(f) => write_recovery(&text, Some(f))?,
        None => {
            ui::warn("the recovery key follows on stdout; it is shown only this once");
            write_recovery(&text, None)?;
        }
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        loop {
            ui::note("Type \"saved\" once the recovery key is stored somewhere safe:");
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line)? == 0 {
                ui::warn(
                    "no confirmation; keep the recovery key safe, or run `moltvault key export-recovery`",
                );
                break;
            }
            if line.trim() == "saved" {
                break;
            }
        }
    }
    Ok(Status::Ok)
}
