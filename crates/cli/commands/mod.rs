//! One module per verb: each turns its `XArgs` into library options, calls the library and
//! renders the result.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::env;
use crate::report::Status;

mod archive;
mod audit;
mod backup;
mod backups;
mod cat;
mod exec;
mod grep;
mod init;
mod key;
mod lock;
mod plugin;
mod redact;
mod restore;
mod rotate;
mod scan;
mod seal;
mod secrets;
mod serve;
mod status;

/// Redacts, encrypts, backs up and rotates the secrets of an OpenClaw / Moltbot / Clawdbot gateway.
#[derive(Debug, Parser)]
#[command(
    name = "moltvault",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The gateway state directory (beats OPENCLAW_STATE_DIR and the default directories).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// moltvault's own directory (keys, config); default `$MOLTVAULT_DIR` or `~/.moltvault`.
    #[arg(long, global = true, value_name = "DIR")]
    pub vault_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Redact(redact::RedactArgs),
    Scan(scan::ScanArgs),
    Init(init::InitArgs),
    Key(key::KeyArgs),
    Seal(seal::SealArgs),
    Unseal(seal::UnsealArgs),
    Cat(cat::CatArgs),
    Grep(grep::GrepArgs),
    Lock(lock::LockArgs),
    Unlock(lock::UnlockArgs),
    Status(status::StatusArgs),
    Backup(backup::BackupArgs),
    Backups(backups::BackupsArgs),
    Restore(restore::RestoreArgs),
    Plugin(plugin::PluginArgs),
    Serve(serve::ServeArgs),
    Audit(audit::AuditArgs),
    Archive(archive::ArchiveArgs),
    Secrets(secrets::SecretsArgs),
    Exec(exec::ExecArgs),
    Rotate(rotate::RotateArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let ctx = Ctx::new(cli.global);
    match cli.command {
        Command::Redact(a) => redact::run(&ctx, a),
        Command::Scan(a) => scan::run(&ctx, a),
        Command::Init(a) => init::run(&ctx, a),
        Command::Key(a) => key::run(&ctx, a),
        Command::Seal(a) => seal::run_seal(&ctx, a),
        Command::Unseal(a) => seal::run_unseal(&ctx, a),
        Command::Cat(a) => cat::run(&ctx, a),
        Command::Grep(a) => grep::run(&ctx, a),
        Command::Lock(a) => lock::run_lock(&ctx, a),
        Command::Unlock(a) => lock::run_unlock(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Backup(a) => backup::run(&ctx, a),
        Command::Backups(a) => backups::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Plugin(a) => plugin::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::Archive(a) => archive::run(&ctx, a),
        Command::Secrets(a) => secrets::run(&ctx, a),
        Command::Exec(a) => exec::run(&ctx, a),
        Command::Rotate(a) => rotate::run(&ctx, a),
    }
}

/// What every command needs from the environment, read once here (libraries read no env vars).
#[derive(Debug)]
pub struct Ctx {
    /// `--state-dir`, if given.
    pub state_dir: Option<PathBuf>,
    /// moltvault's own directory.
    pub vault_dir: PathBuf,
    /// The user's home directory.
    pub home: PathBuf,
}

impl Ctx {
    /// Gateway discovery options: `--state-dir`, then the environment registry, then defaults.
    pub fn discover_options(&self) -> moltvault_gateway::discover::DiscoverOptions {
        let path = |k: &str| env::var(k).map(PathBuf::from);
        let mut o = moltvault_gateway::discover::DiscoverOptions::new(&self.home);
        o.state_dir = self.state_dir.clone();
        o.tmp_dir = path(env::TMPDIR);
        o.env = moltvault_gateway::discover::GatewayEnv {
            openclaw_state_dir: path(env::OPENCLAW_STATE_DIR),
            openclaw_config_path: path(env::OPENCLAW_CONFIG_PATH),
            openclaw_home: path(env::OPENCLAW_HOME),
            openclaw_profile: env::var(env::OPENCLAW_PROFILE).and_then(|v| v.into_string().ok()),
            moltbot_state_dir: path(env::MOLTBOT_STATE_DIR),
            clawdbot_state_dir: path(env::CLAWDBOT_STATE_DIR),
            clawdbot_config_path: path(env::CLAWDBOT_CONFIG_PATH),
        };
        o
    }

    /// Finds the gateway a command works on.
    pub fn gateway(&self) -> anyhow::Result<moltvault_gateway::Gateway> {
        Ok(moltvault_gateway::discover(&self.discover_options())?)
    }

    fn new(global: GlobalArgs) -> Self {
        let home = env::var(env::HOME)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let vault_dir = global
            .vault_dir
            .or_else(|| env::var(env::MOLTVAULT_DIR).map(PathBuf::from))
            .unwrap_or_else(|| home.join(".moltvault"));
        Ctx {
            state_dir: global.state_dir,
            vault_dir,
            home,
        }
    }
}
