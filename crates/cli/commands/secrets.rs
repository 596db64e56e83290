//! `moltvault secrets`: the vault's secret store and the gateway's `exec` secrets provider.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use moltvault_redact::{FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_vault::Vault;
use moltvault_vault::secrets_store::{self, MAX_VALUE_BYTES, NewSecret, SecretsStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::commands::Ctx;
use crate::commands::key::{UnlockArgs, unlock};
use crate::report::{Status, user_error};
use crate::{env, ui};

/// Stores secrets in the vault (one age file each, encrypted to the vault recipient) and serves
/// them to the gateway as its `exec` secrets provider (OpenClaw ≥ 2026.2.26).
#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    List(ListArgs),
    Set(SetArgs),
    Get(GetArgs),
    Rm(RmArgs),
    Provide(ProvideArgs),
    InstallProvider(InstallProviderArgs),
    Import(ImportArgs),
}

/// Lists the stored secrets: id, provider, origin, fingerprint, creation time (never a value).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Stores a secret under ID. The value is read from a hidden prompt, or from stdin when stdin
/// is not a terminal (one trailing newline removed); never from the command line.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The id the gateway asks for (exec SecretRef id grammar, e.g. `providers/openai/apiKey`).
    pub id: String,
    /// What the secret is for (shown by `list`).
    #[arg(long, default_value = "manual")]
    pub provider: String,
}

/// Shows a secret's metadata; with --reveal, unlocks the vault and prints the value on stdout.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The secret's id.
    pub id: String,
    /// Print the value itself (on stdout).
    #[arg(long)]
    pub reveal: bool,
    #[command(flatten)]
    pub unlock: UnlockArgs,
}

/// Removes a secret from the store.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The secret's id.
    pub id: String,
}

/// The gateway's exec secrets provider: reads `{"protocolVersion":1,"provider":…,"ids":[…]}`
/// on stdin and answers `{"protocolVersion":1,"values":{…},"errors":{…}}` on stdout. Unlocks
/// without a prompt: a recovery identity in the systemd credential `moltvault-identity`
/// (`$CREDENTIALS_DIRECTORY`), a keyring unlock method, or MOLTVAULT_PASSPHRASE; when none
/// works, every stored id gets a `LOCKED` error.
#[derive(Debug, clap::Args)]
pub struct ProvideArgs {}

/// Writes the `secrets.providers.<name>` entry for `moltvault secrets provide` into the gateway
/// config (absolute, non-symlink command path, as the gateway requires).
#[derive(Debug, clap::Args)]
pub struct InstallProviderArgs {
    /// The provider alias SecretRefs name.
    #[arg(long, default_value = "moltvault")]
    pub name: String,
    /// The moltvault binary the gateway runs (default: this one, symlinks resolved).
    #[arg(long, value_name = "PATH")]
    pub command: Option<PathBuf>,
}

/// Moves the config's inline secrets into the store and rewrites the config to refer to them:
/// SecretRefs to moltvault's exec provider on gateways ≥ 2026.2.26 (`${VAR}` references, for
/// `moltvault exec`, on older ones and for keys that accept no SecretRef), in one atomic edit
/// that keeps the previous file as `<config>.moltvault-bak`. Secret variables of the gateway's
/// `.env` files are stored under their name and their lines removed (the file is kept, scrubbed,
/// as `.env.moltvault-bak`); `${VAR}` references to them become SecretRefs where the gateway
/// accepts one, otherwise `moltvault exec` supplies them. API-key and token auth profiles get
/// sibling `keyRef`/`tokenRef` SecretRefs (OAuth profiles are left alone: the gateway refuses
/// refs there). The imported values are then scrubbed from every config backup and
/// `models.json`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Show what would be imported and rewritten; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The provider alias the SecretRefs name.
    #[arg(long, default_value = "moltvault")]
    pub name: String,
}

/// The systemd credential name `provide` reads the vault identity from.
pub const CREDENTIAL_NAME: &str = "moltvault-identity";

pub fn run(ctx: &Ctx, args: SecretsArgs) -> anyhow::Result<Status> {
    match args.command {
        SecretsCommand::List(a) => list(ctx, a),
        SecretsCommand::Set(a) => set(ctx, a),
        SecretsCommand::Get(a) => get(ctx, a),
        SecretsCommand::Rm(a) => rm(ctx, a),
        SecretsCommand::Provide(_) => provide(ctx),
        SecretsCommand::InstallProvider(a) => install_provider(ctx, a),
        SecretsCommand::Import(a) => import(ctx, a),
    }
}

fn open_vault(ctx: &Ctx) -> anyhow::Result<Vault> {
    Ok(Vault::open(&ctx.vault_dir)?)
}

fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<Status> {
    let store = SecretsStore::open(&ctx.vault_dir)?;
    let mut out = ui::stdout();
    if args.json {
        serde_json::to_writer_pretty(&mut out, store.list())?;
        writeln!(out)?;
    } else if store.list().is_empty() {
        ui::note("no secrets stored");
    } else {
        writeln!(
            out,
            "{:<40} {:<12} {:<40} {:<8} CREATED",
            "ID", "PROVIDER", "ORIGIN", "FP8"
        )?;
        for m in store.list() {
            writeln!(
                out,
                "{:<40} {:<12} {:<40} {:<8} {}",
                m.id, m.provider, m.origin, m.fp8, m.created
            )?;
        }
    }
    out.flush()?;
    Ok(Status::Ok)
}

fn check_id(id: &str) -> anyhow::Result<()> {
    if secrets_store::valid_id(id) {
        Ok(())
    } else {
        Err(user_error(
            format!("`{id}` is not a valid secret id"),
            "Use letters, digits and . _ : / # - (starting with a letter or digit, at most 256 characters, no `.` or `..` segment).",
        ))
    }
}

/// The install key of the placeholders' fingerprints (the vault's `install.key`, created on
/// first use), shared with `moltvault redact` so the same secret gets the same tag.
pub fn fingerprint_key(ctx: &Ctx) -> anyhow::Result<FingerprintKey> {
    let key = moltvault_vault::install_key::load_or_create(&ctx.vault_dir)?;
    Ok(FingerprintKey::from_bytes(*key.expose()))
}

/// Computes keyed fingerprints (fp8), the same tags redaction placeholders carry.
fn fingerprinter(ctx: &Ctx) -> anyhow::Result<Redactor> {
    Ok(Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(Mode::All, fingerprint_key(ctx)?),
    )?)
}

fn fp8(fingerprinter: &Redactor, value: &SecretString) -> String {
    fingerprinter.fingerprint(value.expose_secret().as_bytes())
}

fn read_value(id: &str) -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let v = ui::prompt_hidden(&format!("value for {id}: "))?;
        if v.expose_secret().is_empty() {
            return Err(user_error("empty value", "Type the secret at the prompt."));
        }
        return Ok(v);
    }
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_VALUE_BYTES as u64 + 2)
        .read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.is_empty() || buf.len() > MAX_VALUE_BYTES {
        return Err(user_error(
            "the value on stdin is empty or over 64 KiB",
            "Pipe exactly the secret, e.g. `printf %s \"$TOKEN\" | moltvault secrets set ID`.",
        ));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| {
        user_error(
            "the value on stdin is not UTF-8",
            "Secrets are stored as text.",
        )
    })?;
    Ok(SecretString::from(text.to_string()))
}

fn set(ctx: &Ctx, args: SetArgs) -> anyhow::Result<Status> {
    check_id(&args.id)?;
    let vault = open_vault(ctx)?;
    let value = read_value(&args.id)?;
    let fp8 = fp8(&fingerprinter(ctx)?, &value);
    let mut store = SecretsStore::open(&ctx.vault_dir)?;
    store.set(
        &args.id,
        &value,
        vault.recipient(),
        NewSecret {
            provider: args.provider,
            origin: "manual".into(),
            fp8: fp8.clone(),
        },
    )?;
    ui::note(&format!("stored {} (fp {fp8})", args.id));
    Ok(Status::Ok)
}

fn not_stored(id: &str) -> anyhow::Error {
    user_error(
        format!("no secret `{id}` in the store"),
        "See `moltvault secrets list` for the stored ids.",
    )
}

fn get(ctx: &Ctx, args: GetArgs) -> anyhow::Result<Status> {
    let store = SecretsStore::open(&ctx.vault_dir)?;
    let meta = store.get(&args.id).ok_or_else(|| not_stored(&args.id))?;
    let mut out = ui::stdout();
    if !args.reveal {
        serde_json::to_writer_pretty(&mut out, meta)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(Status::Ok);
    }
    let vault = open_vault(ctx)?;
    let identity = unlock(&vault, &args.unlock)?;
    let value = store
        .reveal(&args.id, &identity)?
        .ok_or_else(|| not_stored(&args.id))?;
    out.write_all(value.expose_secret().as_bytes())?;
    writeln!(out)?;
    out.flush()?;
    Ok(Status::Ok)
}

fn rm(ctx: &Ctx, args: RmArgs) -> anyhow::Result<Status> {
    let mut store = SecretsStore::open(&ctx.vault_dir)?;
    if !store.remove(&args.id)? {
        return Err(not_stored(&args.id));
    }
    ui::note(&format!("removed {}", args.id));
    Ok(Status::Ok)
}

/// How `provide` unlocks: the systemd credential if present, then keyring methods, then
/// MOLTVAULT_PASSPHRASE; never a prompt (stdin carries the request).
fn provider_unlock(ctx: &Ctx) -> Result<moltvault_vault::Identity, String> {
    let vault = Vault::open(&ctx.vault_dir).map_err(|e| e.to_string())?;
    let credential = env::var(env::CREDENTIALS_DIRECTORY)
        .map(|d| PathBuf::from(d).join(CREDENTIAL_NAME))
        .filter(|p| p.is_file());
    let args = UnlockArgs {
        identity: credential,
        ..UnlockArgs::default()
    };
    unlock(&vault, &args).map_err(|e| {
        format!(
            "{e}; give the provider the systemd credential `{CREDENTIAL_NAME}` (LoadCredential=), a keyring unlock method, or MOLTVAULT_PASSPHRASE"
        )
    })
}

fn provide(ctx: &Ctx) -> anyhow::Result<Status> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(secrets_store::MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    let mut out = ui::stdout();
    let request = match secrets_store::parse_request(&buf) {
        Ok(r) => r,
        Err(e) => {
            out.write_all(&e.to_json())?;
            out.flush()?;
            return Err(user_error(
                format!("secrets provider: {e}"),
                "The gateway sends {\"protocolVersion\":1,\"provider\":…,\"ids\":[…]} on stdin; check its secrets.providers entry.",
            ));
        }
    };
    let store = SecretsStore::open(&ctx.vault_dir)?;
    let response = secrets_store::answer(&store, &request, || provider_unlock(ctx));
    out.write_all(&response.to_json())?;
    out.flush()?;
    Ok(Status::Ok)
}

/// Checks what the gateway checks of an exec provider command: absolute, not a symlink, a
/// regular file owned by the user and not writable by group or others.
fn check_command(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let uid = rustix::process::geteuid().as_raw();
    let problem = if !path.is_absolute() {
        Some("is not an absolute path")
    } else if meta.file_type().is_symlink() {
        Some("is a symlink")
    } else if !meta.is_file() {
        Some("is not a regular file")
    } else if meta.mode() & 0o022 != 0 {
        Some("is writable by group or others")
    } else if meta.uid() != uid && meta.uid() != 0 {
        Some("is owned by another user")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(user_error(
            format!("the provider command {} {p}", path.display()),
            "The gateway runs exec providers only from an absolute, non-symlink path you own that nobody else can write: pass --command with such a copy of moltvault.",
        )),
    }
}

/// Whether the gateway resolves SecretRefs (2026.2.26 and later).
fn has_secret_refs(gw: &moltvault_gateway::Gateway) -> bool {
    gw.version
        .as_deref()
        .and_then(moltvault_gateway::parse_version)
        .is_some_and(|v| v >= (2026, 2, 26))
}

/// The `secrets.providers.<name>` entry that runs `moltvault secrets provide`.
fn provider_entry(ctx: &Ctx, command: Option<PathBuf>) -> anyhow::Result<serde_json::Value> {
    let command = match command {
        Some(p) => p,
        None => std::fs::canonicalize(std::env::current_exe()?)?,
    };
    check_command(&command)?;
    let vault_dir = std::path::absolute(&ctx.vault_dir)?;
    Ok(json!({
        "source": "exec",
        "command": command,
        "args": ["--vault-dir", vault_dir, "secrets", "provide"],
        "passEnv": [env::HOME, env::CREDENTIALS_DIRECTORY],
        "jsonOnly": true,
        "timeoutMs": 5000,
    }))
}

fn install_provider(ctx: &Ctx, args: InstallProviderArgs) -> anyhow::Result<Status> {
    let gw = ctx.gateway()?;
    if !has_secret_refs(&gw) {
        return Err(user_error(
            format!(
                "the gateway ({}) has no exec secrets providers",
                gw.version.as_deref().unwrap_or("unknown version")
            ),
            "SecretRefs arrived in 2026.2.26: upgrade the gateway, or run it under `moltvault exec -- <gateway command>` with `${VAR}` references.",
        ));
    }
    let config = gw.config_path.clone().ok_or_else(|| {
        user_error(
            format!(
                "the gateway in {} has no config file",
                gw.state_dir.display()
            ),
            "Run the gateway's onboarding first.",
        )
    })?;
    let entry = provider_entry(ctx, args.command)?;
    let outcome = moltvault_gateway::config::edit(
        &config,
        &[moltvault_gateway::config::Edit::set(
            &format!("secrets.providers.{}", args.name),
            entry,
        )],
    )?;
    if outcome.changed {
        ui::note(&format!(
            "wrote secrets.providers.{} to {} (previous copy: {})",
            args.name,
            config.display(),
            outcome
                .backup
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    } else {
        ui::note(&format!(
            "secrets.providers.{} is already installed",
            args.name
        ));
    }
    Ok(Status::Ok)
}

/// One config secret to import and what replaces it.
struct Move {
    /// The config key (`models.providers.openai.apiKey`).
    key: String,
    /// The pointer segments in the main config file.
    path: Vec<String>,
    /// The store id.
    id: String,
    /// What replaces the value in the config.
    replacement: serde_json::Value,
    value: SecretString,
    provider: String,
}

/// `${VAR}` name for a config key: `gateway.auth.token` → `MOLTVAULT_GATEWAY_AUTH_TOKEN`, and
/// an `env` block entry keeps its own name.
fn env_var_for(key: &str) -> String {
    if let Some(name) = key
        .strip_prefix("env.vars.")
        .or_else(|| key.strip_prefix("env."))
    {
        return name.to_string();
    }
    let mut out = String::from("MOLTVAULT_");
    let mut last_us = true;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && !last_us {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
            last_us = false;
        } else if !last_us {
            out.push('_');
            last_us = true;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Splits an RFC 6901 pointer into unescaped segments.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// A `${VAR}` reference in the main config that becomes an exec SecretRef (id `VAR`) because
/// `VAR` is in the store (or is being imported from a `.env` file).
struct RefMove {
    key: String,
    path: Vec<String>,
    var: String,
}

/// A `.env` variable to store and remove from its file.
struct EnvMove {
    var: String,
    value: SecretString,
    file: PathBuf,
}

/// An auth-profile credential to store and replace by a sibling `keyRef`/`tokenRef`.
struct AuthMove {
    id: String,
    location: moltvault_gateway::Location,
    value: SecretString,
    provider: String,
}

/// The SecretRef to moltvault's exec provider for `id`.
fn exec_ref(name: &str, id: &str) -> serde_json::Value {
    json!({"source": "exec", "provider": name, "id": id})
}

/// The marker the gateway itself writes into `models.json` for SecretRef-managed keys
/// (`NON_ENV_SECRETREF_MARKER` in its source).
const MODELS_JSON_REF_MARKER: &str = "secretref-managed";

fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<Status> {
    use moltvault_gateway::relocate;
    use moltvault_gateway::{Location, SecretKind, SecretRef};
    let gw = ctx.gateway()?;
    let config = gw.config_path.clone().ok_or_else(|| {
        user_error(
            format!(
                "the gateway in {} has no config file",
                gw.state_dir.display()
            ),
            "Nothing to import.",
        )
    })?;
    let refs = has_secret_refs(&gw);
    let secrets = gw.configured_secrets()?;
    let env_files = gw.env_files();
    let existing = SecretsStore::open(&ctx.vault_dir)?;
    let mut moves: Vec<Move> = Vec::new();
    let mut env_moves: Vec<EnvMove> = Vec::new();
    let mut auth_moves: Vec<AuthMove> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for s in &secrets {
        let (Some(value), true) = (&s.value, s.active) else {
            continue;
        };
        for loc in &s.locations {
            match loc {
                Location::Json { file, pointer } if file == &config => {
                    let capable = refs && moltvault_gateway::audit::ref_capable(&s.id);
                    let (id, replacement) = if capable && secrets_store::valid_id(&s.id) {
                        (s.id.clone(), exec_ref(&args.name, &s.id))
                    } else {
                        let var = env_var_for(&s.id);
                        (var.clone(), json!(format!("${{{var}}}")))
                    };
                    let provider = match &s.kind {
                        SecretKind::ProviderKey { provider } => provider.clone(),
                        SecretKind::ChannelToken { channel } => channel.clone(),
                        SecretKind::GatewayToken | SecretKind::GatewayPassword => "gateway".into(),
                        SecretKind::HooksToken => "hooks".into(),
                        _ => "config".into(),
                    };
                    moves.push(Move {
                        key: s.id.clone(),
                        path: pointer_segments(pointer),
                        id,
                        replacement,
                        value: value.clone(),
                        provider,
                    });
                }
                Location::Env { file, key } if env_files.contains(file) => {
                    if !secrets_store::valid_id(key) {
                        continue;
                    }
                    match env_moves.iter().find(|m| &m.var == key) {
                        Some(m) if m.value.expose_secret() != value.expose_secret() => skipped
                            .push(format!(
                                "{key} in {} (another value of {key} is imported from {})",
                                file.display(),
                                m.file.display()
                            )),
                        _ => env_moves.push(EnvMove {
                            var: key.clone(),
                            value: value.clone(),
                            file: file.clone(),
                        }),
                    }
                }
                Location::Json { file, pointer } | Location::Sqlite { file, pointer, .. }
                    if matches!(s.kind, SecretKind::AuthProfile { .. }) =>
                {
                    let Some(slot) = relocate::auth_profile_slot(pointer) else {
                        continue;
                    };
                    if !refs {
                        skipped.push(format!(
                            "auth profile {} in {} (SecretRefs need gateway 2026.2.26 or later)",
                            slot.profile,
                            file.display()
                        ));
                        continue;
                    }
                    let agent = relocate::agent_of(file).unwrap_or_else(|| "shared".into());
                    let id = format!("auth-profiles/{agent}/{}/{}", slot.profile, slot.field);
                    if !secrets_store::valid_id(&id) {
                        skipped.push(format!(
                            "auth profile {} (its id is not a valid exec SecretRef id)",
                            slot.profile
                        ));
                        continue;
                    }
                    let provider = match &s.kind {
                        SecretKind::AuthProfile { provider } => provider.clone(),
                        _ => "auth-profile".into(),
                    };
                    auth_moves.push(AuthMove {
                        id,
                        location: loc.clone(),
                        value: value.clone(),
                        provider,
                    });
                }
                _ => {}
            }
        }
    }
    // `${VAR}` references the config makes to imported or stored variables become SecretRefs.
    let mut ref_moves: Vec<RefMove> = Vec::new();
    if refs {
        for s in &secrets {
            let Some(SecretRef::EnvVar(var)) = &s.reference else {
                continue;
            };
            let known = env_moves.iter().any(|m| &m.var == var) || existing.get(var).is_some();
            if !known
                || !secrets_store::valid_id(var)
                || !moltvault_gateway::audit::ref_capable(&s.id)
            {
                continue;
            }
            for loc in &s.locations {
                if let Location::Json { file, pointer } = loc
                    && file == &config
                {
                    ref_moves.push(RefMove {
                        key: s.id.clone(),
                        path: pointer_segments(pointer),
                        var: var.clone(),
                    });
                }
            }
        }
    }

    let mut out = ui::stdout();
    for s in &skipped {
        ui::warn(&format!("not imported: {s}"));
    }
    if moves.is_empty() && env_moves.is_empty() && auth_moves.is_empty() && ref_moves.is_empty() {
        writeln!(out, "no inline secrets to import")?;
        out.flush()?;
        return Ok(Status::Ok);
    }
    let verb = |now: &str, later: &str| {
        if args.dry_run {
            format!("would {later} ")
        } else {
            format!("{now} ")
        }
    };
    for m in &moves {
        let how = if m.replacement.is_object() {
            format!("SecretRef exec:{}:{}", args.name, m.id)
        } else {
            m.replacement.as_str().unwrap_or_default().to_string()
        };
        writeln!(out, "{}{} -> {how}", verb("moved", "move"), m.key)?;
    }
    for m in &ref_moves {
        writeln!(
            out,
            "{}{} (${{{}}}) -> SecretRef exec:{}:{}",
            verb("rewrote", "rewrite"),
            m.key,
            m.var,
            args.name,
            m.var
        )?;
    }
    for m in &env_moves {
        writeln!(
            out,
            "{}{} from {} (line removed)",
            verb("moved", "move"),
            m.var,
            m.file.display()
        )?;
    }
    for m in &auth_moves {
        writeln!(
            out,
            "{}auth profile credential in {} -> SecretRef exec:{}:{}",
            verb("moved", "move"),
            m.location.file().display(),
            args.name,
            m.id
        )?;
    }
    if args.dry_run {
        out.flush()?;
        return Ok(Status::Ok);
    }

    // 1. Values into the store (a crash after this leaves every gateway file as it was).
    let vault = open_vault(ctx)?;
    let fingerprinter = fingerprinter(ctx)?;
    let mut store = existing;
    let mut put = |id: &str, value: &SecretString, provider: String, origin: String| {
        store.set(
            id,
            value,
            vault.recipient(),
            NewSecret {
                provider,
                origin,
                fp8: fp8(&fingerprinter, value),
            },
        )
    };
    for m in &moves {
        put(
            &m.id,
            &m.value,
            m.provider.clone(),
            format!("config:{}", m.key),
        )?;
    }
    for m in &env_moves {
        put(
            &m.var,
            &m.value,
            "env".into(),
            format!("env-file:{}", m.file.display()),
        )?;
    }
    for m in &auth_moves {
        put(
            &m.id,
            &m.value,
            m.provider.clone(),
            format!("auth-profile:{}", m.location.file().display()),
        )?;
    }
    // 2. One atomic config edit (the previous file is kept as `<config>.moltvault-bak`).
    let mut edits: Vec<moltvault_gateway::config::Edit> = moves
        .iter()
        .map(|m| moltvault_gateway::config::Edit::Set(m.path.clone(), m.replacement.clone()))
        .chain(ref_moves.iter().map(|m| {
            moltvault_gateway::config::Edit::Set(m.path.clone(), exec_ref(&args.name, &m.var))
        }))
        .collect();
    let uses_provider = moves.iter().any(|m| m.replacement.is_object())
        || !ref_moves.is_empty()
        || !auth_moves.is_empty();
    if uses_provider {
        edits.push(moltvault_gateway::config::Edit::set(
            &format!("secrets.providers.{}", args.name),
            provider_entry(ctx, None)?,
        ));
    }
    if !edits.is_empty() {
        moltvault_gateway::config::edit(&config, &edits)?;
    }
    // 3. Auth profiles: the plaintext field becomes a sibling SecretRef.
    for m in &auth_moves {
        relocate::set_auth_profile_ref(&m.location, &exec_ref(&args.name, &m.id))?;
    }
    // 4. `.env` lines removed (the previous file kept, scrubbed, as `.env.moltvault-bak`).
    let mut env_backups = Vec::new();
    for file in &env_files {
        let vars: Vec<&str> = env_moves
            .iter()
            .filter(|m| &m.file == file)
            .map(|m| m.var.as_str())
            .collect();
        if vars.is_empty() {
            continue;
        }
        let note = |var: &str| {
            let fp = env_moves
                .iter()
                .find(|m| m.var == var)
                .map(|m| fp8(&fingerprinter, &m.value))
                .unwrap_or_default();
            format!("{var}=… moved to the moltvault vault (secret id {var}, fp {fp})")
        };
        if let Some(r) = relocate::remove_env_vars(file, &vars, &note)? {
            env_backups.push(r.backup);
        }
    }
    // 5. Scrub every imported value from the config backups (including the copy just kept) and
    //    from models.json, where the gateway keeps a resolved copy of provider keys.
    let mut pairs: Vec<(&SecretString, serde_json::Value)> = moves
        .iter()
        .map(|m| (&m.value, m.replacement.clone()))
        .collect();
    pairs.extend(
        env_moves
            .iter()
            .map(|m| (&m.value, json!(format!("${{{}}}", m.var)))),
    );
    pairs.extend(
        auth_moves
            .iter()
            .map(|m| (&m.value, exec_ref(&args.name, &m.id))),
    );
    // Superseded values (found only in config backups: an old key is still a key) become a
    // redaction placeholder there; they are not imported.
    let superseded: Vec<(&SecretString, serde_json::Value)> = secrets
        .iter()
        .filter(|s| !s.active)
        .filter_map(|s| s.value.as_ref())
        .filter(|v| {
            !pairs
                .iter()
                .any(|(p, _)| p.expose_secret() == v.expose_secret())
        })
        .map(|v| {
            (
                v,
                json!(format!("[REDACTED:superseded:{}]", fp8(&fingerprinter, v))),
            )
        })
        .collect();
    let backup_pairs: Vec<(&SecretString, serde_json::Value)> =
        pairs.iter().cloned().chain(superseded).collect();
    let mut scrubbed = 0;
    for bak in gw.config_backups() {
        if scrub_json_file(&bak, &backup_pairs)? {
            scrubbed += 1;
            writeln!(out, "scrubbed {}", bak.display())?;
        }
    }
    if refs {
        let markers: Vec<(&SecretString, serde_json::Value)> = pairs
            .iter()
            .map(|(v, _)| (*v, json!(MODELS_JSON_REF_MARKER)))
            .collect();
        for agent in gw.agents() {
            let models = gw.agent_dir(&agent).join("models.json");
            if models.is_file() && scrub_json_file(&models, &markers)? {
                scrubbed += 1;
                writeln!(out, "scrubbed {}", models.display())?;
            }
        }
    }
    writeln!(
        out,
        "imported {} secret(s); {scrubbed} file(s) scrubbed",
        moves.len() + env_moves.len() + auth_moves.len()
    )?;
    out.flush()?;
    // Who must now supply environment variables: `${VAR}` the config still uses, and `.env`
    // variables no SecretRef names (the gateway may read them implicitly, e.g. OPENAI_API_KEY).
    let mut need_exec: Vec<String> = moves
        .iter()
        .filter(|m| !m.replacement.is_object())
        .map(|m| m.id.clone())
        .collect();
    need_exec.extend(
        env_moves
            .iter()
            .filter(|e| !ref_moves.iter().any(|r| r.var == e.var))
            .map(|e| e.var.clone()),
    );
    need_exec.sort();
    need_exec.dedup();
    if !need_exec.is_empty() {
        ui::note(&format!(
            "the gateway now needs these variables from the vault: {}; start it under `moltvault exec -- <gateway command>`",
            need_exec.join(", ")
        ));
    }
    Ok(Status::Ok)
}

/// Replaces, in one JSON file (a config backup, `models.json`), every string equal to an
/// imported value by its replacement; returns whether the file changed. Written atomically,
/// keeping its mode. A file that does not parse is left alone with a warning.
fn scrub_json_file(
    path: &Path,
    pairs: &[(&SecretString, serde_json::Value)],
) -> anyhow::Result<bool> {
    fn walk(v: &mut serde_json::Value, pairs: &[(&SecretString, serde_json::Value)]) -> bool {
        match v {
            serde_json::Value::String(s) => {
                if let Some((_, r)) = pairs.iter().find(|(p, _)| p.expose_secret() == s.as_str()) {
                    *v = r.clone();
                    return true;
                }
                false
            }
            serde_json::Value::Object(map) => {
                let mut changed = false;
                for child in map.values_mut() {
                    changed |= walk(child, pairs);
                }
                changed
            }
            serde_json::Value::Array(a) => {
                let mut changed = false;
                for child in a {
                    changed |= walk(child, pairs);
                }
                changed
            }
            _ => false,
        }
    }
    let mut f = moltvault_vault::seal::open_regular(path)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    f.read_to_string(&mut text)?;
    let Ok(mut doc) = moltvault_gateway::config::parse_json5(path, &text) else {
        ui::warn(&format!(
            "{} does not parse; it was not scrubbed (delete it if you do not need it)",
            path.display()
        ));
        return Ok(false);
    };
    if !walk(&mut doc, pairs) {
        return Ok(false);
    }
    let mut bytes = serde_json::to_vec_pretty(&doc)?;
    bytes.push(b'\n');
    let opts = moltvault_vault::fsio::WriteOptions::like_existing(path)?;
    moltvault_vault::fsio::write_atomic(path, &bytes, opts)?;
    Ok(true)
}
