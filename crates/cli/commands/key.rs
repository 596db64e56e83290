//! `moltvault key add|remove|list|export-recovery`, and the passphrase/unlock plumbing every
//! vault command shares.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use moltvault_vault::fsio::{self, WriteOptions};
use moltvault_vault::{Identity, KeyringStore, MethodKind, Unlocker, Vault};
use secrecy::{ExposeSecret, SecretString};

use crate::commands::Ctx;
use crate::report::{Status, user_error};
use crate::{env, ui};

/// Manages the vault's unlock methods. Adding or removing one rewrites one small key file;
/// sealed data is never re-encrypted.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// Lists the unlock methods.
    List(ListArgs),
    /// Adds an unlock method (unlocks the vault first).
    Add(AddArgs),
    /// Removes an unlock method (the last one cannot be removed).
    Remove(RemoveArgs),
    /// Writes the recovery key (the vault identity, an age identity file) again.
    ExportRecovery(ExportArgs),
}

/// Lists the unlock methods.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AddKind {
    /// Another passphrase (age scrypt; opens with stock `age -d`).
    Passphrase,
    /// A cache in the OS keyring (`--store`).
    Keyring,
    /// An age plugin recipient (`--recipient age1NAME1…`), e.g. a YubiKey.
    Plugin,
}

/// Adds an unlock method.
#[derive(Debug, clap::Args)]
struct AddArgs {
    /// What kind of unlock method to add.
    #[arg(value_enum)]
    kind: AddKind,
    /// Its name (default: the kind, or the plugin name).
    #[arg(long, value_name = "ID")]
    name: Option<String>,
    /// For `passphrase`: read the new passphrase from this file instead of prompting twice.
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    /// For `keyring`: the credential store (`keyutils` on Linux). Chosen explicitly: there is
    /// no silent fallback.
    #[arg(long, value_name = "STORE", default_value = "keyutils")]
    store: String,
    /// For `plugin`: the plugin recipient, as printed by the plugin (`age1yubikey1…`).
    #[arg(long, value_name = "RECIPIENT")]
    recipient: Option<String>,
    /// For `plugin`: a file holding the plugin identity (`AGE-PLUGIN-…`), if it needs one.
    #[arg(long, value_name = "FILE")]
    plugin_identity: Option<PathBuf>,
    #[command(flatten)]
    unlock: UnlockArgs,
}

/// Removes an unlock method.
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The method's name (see `moltvault key list`).
    id: String,
}

/// Exports the recovery key.
#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Write it to this new file (0600) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    unlock: UnlockArgs,
}

/// How to unlock the vault; shared by every command that reads sealed data.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UnlockArgs {
    /// Read the vault passphrase from this file (its first line) instead of prompting.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Unlock with the recovery key file that `init` saved (an age identity file).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Unlock only with this method (see `moltvault key list`).
    #[arg(long, value_name = "ID")]
    pub unlock_with: Option<String>,
}

pub fn run(ctx: &Ctx, args: KeyArgs) -> anyhow::Result<Status> {
    match args.command {
        KeyCommand::List(a) => list(ctx, a),
        KeyCommand::Add(a) => add(ctx, a),
        KeyCommand::Remove(a) => remove(ctx, a),
        KeyCommand::ExportRecovery(a) => export(ctx, a),
    }
}

fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<Status> {
    let vault = Vault::open(&ctx.vault_dir)?;
    if args.json {
        let methods: Vec<_> = vault
            .methods()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "kind": m.kind_label(),
                    "detail": method_detail(&m.kind),
                    "added": m.added,
                    "key_file": vault.key_file(&m.id),
                })
            })
            .collect();
        let out = serde_json::json!({
            "recipient": vault.recipient().to_string(),
            "methods": methods,
        });
        ui::data(&serde_json::to_string_pretty(&out)?);
        return Ok(Status::Ok);
    }
    ui::data(&format!("recipient  {}", vault.recipient()));
    for m in vault.methods() {
        ui::data(&format!(
            "{:<16} {:<10} {:<28} added {}",
            m.id,
            m.kind_label(),
            method_detail(&m.kind),
            m.added
        ));
    }
    Ok(Status::Ok)
}

/// A short public description of a method.
pub fn method_detail(kind: &MethodKind) -> String {
    match kind {
        MethodKind::Passphrase => "age scrypt".into(),
        MethodKind::Keyring { store } => format!("store {}", store.label()),
        MethodKind::Plugin { recipient, .. } => {
            let short: String = recipient.chars().take(24).collect();
            format!("{short}…")
        }
    }
}

fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<Status> {
    let mut vault = Vault::open(&ctx.vault_dir)?;
    // Gather everything the user must type before the (slow) unlock.
    let new_pass = match args.kind {
        AddKind::Passphrase => Some(new_passphrase(args.new_passphrase_file.as_deref(), false)?),
        _ => None,
    };
    let store = match args.kind {
        AddKind::Keyring => Some(KeyringStore::from_name(&args.store).ok_or_else(|| {
            user_error(
                format!("unknown keyring store {}", args.store),
                "Use --store keyutils (Linux); other stores are not supported yet.",
            )
        })?),
        _ => None,
    };
    let plugin_identity = match &args.plugin_identity {
        Some(p) => Some(read_plugin_identity(p)?),
        None => None,
    };
    let identity = unlock(&vault, &args.unlock)?;
    let id = match args.kind {
        AddKind::Passphrase => {
            let id = args.name.unwrap_or_else(|| next_free(&vault, "passphrase"));
            vault.add_passphrase(
                &identity,
                &id,
                new_pass.as_ref().expect("asked above"),
                work_factor(),
            )?;
            id
        }
        AddKind::Keyring => {
            let store = store.expect("parsed above");
            let id = args.name.unwrap_or_else(|| next_free(&vault, "keyring"));
            vault.add_keyring(&identity, &id, store)?;
            id
        }
        AddKind::Plugin => {
            let recipient = args.recipient.ok_or_else(|| {
                user_error(
                    "`key add plugin` needs --recipient",
                    "Pass the recipient your plugin printed, e.g. --recipient age1yubikey1….",
                )
            })?;
            let default = recipient
                .strip_prefix("age1")
                .and_then(|r| r.rsplit_once('1'))
                .map(|(name, _)| name.to_string())
                .unwrap_or_else(|| "plugin".into());
            let id = args.name.unwrap_or_else(|| next_free(&vault, &default));
            vault.add_plugin(&identity, &id, &recipient, plugin_identity.as_deref())?;
            id
        }
    };
    ui::note(&format!(
        "added unlock method {id} ({})",
        vault.key_file(&id).display()
    ));
    Ok(Status::Ok)
}

fn next_free(vault: &Vault, base: &str) -> String {
    let base: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .take(28)
        .collect();
    let base = if base.is_empty() {
        "method".into()
    } else {
        base
    };
    if !vault.methods().iter().any(|m| m.id == base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !vault.methods().iter().any(|m| &m.id == c))
        .expect("some name is free")
}

fn read_plugin_identity(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-PLUGIN-"))
        .map(str::to_string)
        .ok_or_else(|| {
            user_error(
                format!("{} holds no AGE-PLUGIN- identity", path.display()),
                "Pass the identity file your plugin wrote (e.g. age-plugin-yubikey --identity).",
            )
        })
}

fn remove(ctx: &Ctx, args: RemoveArgs) -> anyhow::Result<Status> {
    let mut vault = Vault::open(&ctx.vault_dir)?;
    vault.remove_method(&args.id)?;
    ui::note(&format!("removed unlock method {}", args.id));
    Ok(Status::Ok)
}

fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<Status> {
    let vault = Vault::open(&ctx.vault_dir)?;
    let identity = unlock(&vault, &args.unlock)?;
    write_recovery(&identity.to_identity_file(), args.output.as_deref())?;
    Ok(Status::Ok)
}

/// Writes a recovery key to a new 0600 file, or to stdout.
pub fn write_recovery(text: &SecretString, output: Option<&Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            fsio::write_atomic(
                path,
                text.expose_secret().as_bytes(),
                WriteOptions::secret_new(),
            )?;
            ui::note(&format!(
                "recovery key written to {} (0600); keep a copy offline: it opens every sealed file and backup with `age -d -i {}`",
                path.display(),
                path.display()
            ));
        }
        None => {
            use std::io::Write;
            let mut out = ui::stdout();
            out.write_all(text.expose_secret().as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// The scrypt work factor for new passphrase key files (weakened only by the test-only env
/// var).
pub fn work_factor() -> u8 {
    if env::var(env::MOLTVAULT_TESTONLY_WEAKEN_KDF).is_some() {
        10
    } else {
        moltvault_vault::keys::DEFAULT_WORK_FACTOR
    }
}

/// Asks for a new passphrase: from a file, else (when `allow_env`) `MOLTVAULT_PASSPHRASE`, else
/// twice on a TTY. `key add` passes `allow_env = false`: there the variable is the *current*
/// passphrase.
pub fn new_passphrase(file: Option<&Path>, allow_env: bool) -> anyhow::Result<SecretString> {
    let env_pass = if allow_env {
        env::var(env::MOLTVAULT_PASSPHRASE)
    } else {
        None
    };
    let pass = if let Some(f) = file {
        read_passphrase_file(f)?
    } else if let Some(v) = env_pass {
        SecretString::from(v.into_string().map_err(|_| {
            user_error(
                "MOLTVAULT_PASSPHRASE is not valid UTF-8",
                "Set it to a UTF-8 passphrase.",
            )
        })?)
    } else {
        let a = ui::prompt_hidden("new vault passphrase: ")?;
        let b = ui::prompt_hidden("repeat it: ")?;
        if a.expose_secret() != b.expose_secret() {
            return Err(user_error(
                "the two passphrases differ",
                "Run the command again and type the same passphrase twice.",
            ));
        }
        a
    };
    if pass.expose_secret().is_empty() {
        return Err(user_error(
            "the passphrase is empty",
            "Choose a non-empty passphrase (a few random words are best).",
        ));
    }
    Ok(pass)
}

/// Reads a passphrase from the first line of a file.
pub fn read_passphrase_file(path: &Path) -> anyhow::Result<SecretString> {
    let mut f = moltvault_vault::seal::open_regular(path)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    f.read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    Ok(SecretString::from(line.to_string()))
}

/// The CLI's [`Unlocker`]: `--identity`, `--passphrase-file`, `MOLTVAULT_PASSPHRASE`, then a
/// hidden prompt on a TTY.
struct CliUnlocker<'a> {
    args: &'a UnlockArgs,
    file_pass: Option<SecretString>,
}

impl Unlocker for CliUnlocker<'_> {
    fn passphrase(&self, prompt: &str) -> Option<SecretString> {
        if let Some(p) = &self.file_pass {
            return Some(p.clone());
        }
        if let Some(v) = env::var(env::MOLTVAULT_PASSPHRASE) {
            return v.into_string().ok().map(SecretString::from);
        }
        if std::io::stdin().is_terminal() {
            return ui::prompt_hidden(prompt).ok();
        }
        None
    }

    fn identity_file(&self) -> Option<&Path> {
        self.args.identity.as_deref()
    }

    fn only_method(&self) -> Option<&str> {
        self.args.unlock_with.as_deref()
    }
}

/// Unlocks the vault once for a command.
pub fn unlock(vault: &Vault, args: &UnlockArgs) -> anyhow::Result<Identity> {
    let file_pass = match &args.passphrase_file {
        Some(f) => Some(read_passphrase_file(f)?),
        None => None,
    };
    let u = CliUnlocker { args, file_pass };
    Ok(vault.unlock(&u)?)
}
