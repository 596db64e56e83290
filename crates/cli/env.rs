//! Every environment variable moltvault reads, in one registry (libraries read none).

/// Overrides the moltvault home (keys, config, fingerprint key); default `~/.moltvault`.
pub const MOLTVAULT_DIR: &str = "MOLTVAULT_DIR";
/// The gateway plugin's Node addon that `moltvault plugin install` copies (like `--addon`);
/// default `libmoltvault_node.so` (or `moltvault.node`) next to the moltvault binary.
pub const MOLTVAULT_ADDON: &str = "MOLTVAULT_ADDON";
/// The gateway state dir, for OpenClaw (beats the legacy names, loses to `--state-dir`).
pub const OPENCLAW_STATE_DIR: &str = "OPENCLAW_STATE_DIR";
/// The gateway config path, for OpenClaw.
pub const OPENCLAW_CONFIG_PATH: &str = "OPENCLAW_CONFIG_PATH";
/// Replaces `$HOME` for OpenClaw's defaults.
pub const OPENCLAW_HOME: &str = "OPENCLAW_HOME";
/// Selects the OpenClaw profile dir `~/.openclaw-<profile>`.
pub const OPENCLAW_PROFILE: &str = "OPENCLAW_PROFILE";
/// The Moltbot state dir.
pub const MOLTBOT_STATE_DIR: &str = "MOLTBOT_STATE_DIR";
/// The Clawdbot state dir.
pub const CLAWDBOT_STATE_DIR: &str = "CLAWDBOT_STATE_DIR";
/// The Clawdbot config path.
pub const CLAWDBOT_CONFIG_PATH: &str = "CLAWDBOT_CONFIG_PATH";
/// A vault passphrase for automation (never on argv).
pub const MOLTVAULT_PASSPHRASE: &str = "MOLTVAULT_PASSPHRASE";
/// Test suites only: makes new passphrase key files use scrypt work factor 2^10 instead of
/// 2^18 (like borg's BORG_TESTONLY_WEAKEN_KDF). Never set it on a real vault.
pub const MOLTVAULT_TESTONLY_WEAKEN_KDF: &str = "MOLTVAULT_TESTONLY_WEAKEN_KDF";
/// S3-compatible endpoint for `s3://` backup targets (e.g. `http://127.0.0.1:9000`).
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// S3 access key id for `s3://` backup targets.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// S3 secret access key for `s3://` backup targets.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// S3 session token for `s3://` backup targets (temporary credentials).
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// S3 region for `s3://` backup targets.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_REGION: &str = "AWS_REGION";
/// S3 region fallback for `s3://` backup targets.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Crash tests only (debug builds): `moltvault rotate` aborts the process right after the
/// durable step `after:<step>` (`journal:<seq>`, `write:<item>:<i>`, `staged:<item>`);
/// `moltvault seal` aborts right before the batch step `before:<step>` (`sync`, `link`,
/// `sync-dir`, `remove-plain`).
pub const MOLTVAULT_FAILPOINT: &str = "MOLTVAULT_FAILPOINT";
/// `moltvault rotate --verify-online` base-URL overrides, `provider=URL[,provider=URL…]`
/// (HTTPS, or HTTP on loopback only); `--verify-base-url` beats it.
pub const MOLTVAULT_VERIFY_BASE_URL: &str = "MOLTVAULT_VERIFY_BASE_URL";
/// Where `moltvault rotate` looks for the `openclaw` and `systemctl` commands.
pub const PATH: &str = "PATH";
/// Set by systemd for a service with credentials (`LoadCredential=`): where `secrets provide`
/// finds the vault identity (credential `moltvault-identity`).
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
/// The system temp dir (where OpenClaw 2026.9 keeps `openclaw-state-locks-<uid>/`, like Node's
/// `os.tmpdir()`); default `/tmp`.
pub const TMPDIR: &str = "TMPDIR";
/// Disables colour when set (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// The user's home directory.
pub const HOME: &str = "HOME";

/// Reads an environment variable, treating an empty value as unset.
pub fn var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}
