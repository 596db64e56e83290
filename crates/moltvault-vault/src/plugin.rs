//! Unlock methods backed by age plugins (`age-plugin-NAME` binaries on `PATH`): the vault
//! identity is encrypted to the plugin recipient the user gives.

use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::keys::{Identity, read_wrapped, write_wrapped};

/// Plugin callbacks: moltvault has no channel for plugin questions yet (PIN, touch), so a
/// plugin that needs one fails with its own message.
#[derive(Clone, Copy)]
struct Quiet;

impl age::Callbacks for Quiet {
    fn display_message(&self, _message: &str) {}
    fn confirm(&self, _m: &str, _y: &str, _n: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, _description: &str) -> Option<age::secrecy::SecretString> {
        None
    }
}

fn parse_recipient(recipient: &str) -> Result<age::plugin::Recipient> {
    age::plugin::Recipient::from_str(recipient).map_err(|_| Error::BadRecipient {
        kind: "age plugin",
        value: recipient.to_string(),
    })
}

/// Encrypts the identity to a plugin recipient at `path`.
pub(crate) fn wrap(recipient: &str, identity: &Identity, path: &Path) -> Result<()> {
    let r = parse_recipient(recipient)?;
    let name = r.plugin().to_string();
    let plugin =
        age::plugin::RecipientPluginV1::new(&name, &[r], &[], Quiet).map_err(|e| match e {
            age::EncryptError::MissingPlugin { binary_name } => Error::PluginMissing {
                binary: binary_name,
            },
            other => Error::Plugin {
                plugin: name.clone(),
                detail: other.to_string(),
            },
        })?;
    write_wrapped(path, identity, &[&plugin as &dyn age::Recipient]).map_err(|e| match e {
        Error::Encrypt { source, .. } => Error::Plugin {
            plugin: name,
            detail: source.to_string(),
        },
        other => other,
    })
}

/// Decrypts the identity at `path` through the plugin.
pub(crate) fn unwrap(recipient: &str, identity: Option<&str>, path: &Path) -> Result<Identity> {
    let r = parse_recipient(recipient)?;
    let name = r.plugin().to_string();
    let ident = match identity {
        Some(s) => age::plugin::Identity::from_str(s).map_err(|_| Error::BadRecipient {
            kind: "age plugin identity",
            value: "(the configured plugin identity)".into(),
        })?,
        None => age::plugin::Identity::default_for_plugin(&name),
    };
    let plugin =
        age::plugin::IdentityPluginV1::new(&name, &[ident], Quiet).map_err(|e| match e {
            age::DecryptError::MissingPlugin { binary_name } => Error::PluginMissing {
                binary: binary_name,
            },
            other => Error::Plugin {
                plugin: name.clone(),
                detail: other.to_string(),
            },
        })?;
    read_wrapped(path, &[&plugin as &dyn age::Identity])
}
