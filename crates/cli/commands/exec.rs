//! `moltvault exec -- CMD…`: runs a command with the vault's secrets in its environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use moltvault_vault::Vault;
use moltvault_vault::secrets_store::SecretsStore;
use secrecy::ExposeSecret;

use crate::commands::Ctx;
use crate::commands::key::{UnlockArgs, unlock};
use crate::report::{Status, user_error};

/// Runs a command with the stored secrets in its environment: every secret whose id is an
/// environment variable name (`OPENAI_API_KEY`) is exported under that name. For gateways older
/// than 2026.2.26, whose config refers to secrets as `${VAR}`:
/// `moltvault exec -- openclaw gateway`. The command replaces moltvault (no shell is involved);
/// its exit status is the command's.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Export only this id (repeatable).
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Whether an id can be an environment variable name.
fn env_name(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub fn run(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<Status> {
    let store = SecretsStore::open(&ctx.vault_dir)?;
    for id in &args.only {
        if store.get(id).is_none() || !env_name(id) {
            return Err(user_error(
                format!("`{id}` is not a stored secret with an environment-variable id"),
                "See `moltvault secrets list`; ids like OPENAI_API_KEY are exported.",
            ));
        }
    }
    let ids: Vec<&str> = store
        .list()
        .iter()
        .map(|m| m.id.as_str())
        .filter(|id| env_name(id) && (args.only.is_empty() || args.only.iter().any(|o| o == id)))
        .collect();
    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    if !ids.is_empty() {
        let vault = Vault::open(&ctx.vault_dir)?;
        let identity = unlock(&vault, &args.unlock)?;
        for id in ids {
            if let Some(v) = store.reveal(id, &identity)? {
                cmd.env(id, v.expose_secret());
            }
        }
    }
    let err = cmd.exec();
    Err(user_error(
        format!("cannot run {}: {err}", args.command[0].to_string_lossy()),
        "Check the command name and that it is on PATH.",
    ))
}
