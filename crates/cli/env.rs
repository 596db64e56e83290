//! Every environment variable moltvault reads, in one registry (libraries read none).

/// Overrides the moltvault home (keys, config, fingerprint key); default `~/.moltvault`.
pub const MOLTVAULT_DIR: &str = "MOLTVAULT_DIR";
/// The gateway state dir, for OpenClaw (beats the legacy names, loses to `--state-dir`).
pub const OPENCLAW_STATE_DIR: &str = "OPENCLAW_STATE_DIR";
/// The gateway config path, for OpenClaw.
pub const OPENCLAW_CONFIG_PATH: &str = "OPENCLAW_CONFIG_PATH";
/// Replaces `$HOME` for OpenClaw's defaults.
pub const OPENCLAW_HOME: &str = "OPENCLAW_HOME";
/// The Moltbot state dir.
pub const MOLTBOT_STATE_DIR: &str = "MOLTBOT_STATE_DIR";
/// The Clawdbot state dir.
pub const CLAWDBOT_STATE_DIR: &str = "CLAWDBOT_STATE_DIR";
/// The Clawdbot config path.
pub const CLAWDBOT_CONFIG_PATH: &str = "CLAWDBOT_CONFIG_PATH";
/// A vault passphrase for automation (never on argv).
pub const MOLTVAULT_PASSPHRASE: &str = "MOLTVAULT_PASSPHRASE";
/// Disables colour when set (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// The user's home directory.
pub const HOME: &str = "HOME";

/// Reads an environment variable, treating an empty value as unset.
pub fn var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}
