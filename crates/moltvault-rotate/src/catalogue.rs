//! The provider catalogue (`data/providers.toml`): where each kind of secret lives, how a new
//! one is obtained, how it is validated offline and verified online.

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The built-in catalogue, compiled into the binary.
pub const BUILTIN: &str = include_str!("../data/providers.toml");

/// Where a provider sits in the rotation order (rotation.md §5.2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Gateway auth (token, password) and paired devices: first.
    Gateway,
    /// Hooks and webhook secrets.
    Hooks,
    /// Channel tokens (Telegram, Discord, Slack).
    Channel,
    /// Model-provider keys.
    Model,
    /// Anything else.
    Other,
}

/// How the new value of a secret comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// moltvault generates it (CSPRNG).
    Generated,
    /// The user gets it from a provider console and pastes it.
    Pasted,
    /// Nothing to paste: the user acts (revoke devices, relink WhatsApp).
    Manual,
}

/// Offline validation rules of one provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// Minimum length (hard).
    #[serde(default)]
    pub min_len: Option<usize>,
    /// Maximum length (hard).
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Allowed characters, as the body of a regex character class (hard).
    #[serde(default)]
    pub charset: Option<String>,
    /// Required prefix (hard).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Prefixes of other kinds that are refused here (hard).
    #[serde(default)]
    pub reject_prefixes: Vec<String>,
    /// The current full shape; matching another provider's shape instead is a hard failure.
    #[serde(default)]
    pub shape: Option<String>,
    /// Further accepted shapes.
    #[serde(default)]
    pub shapes_ok: Vec<String>,
}

/// The one read-only online check of a provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Production base URL (overridable).
    pub base_url: String,
    /// HTTP method.
    pub method: String,
    /// Path; `{token}` is replaced by the secret (Telegram only; never logged).
    pub path: String,
    /// Auth header name, if the secret goes in a header.
    #[serde(default)]
    pub header: Option<String>,
    /// Auth header value; `{token}` is replaced by the secret.
    #[serde(default)]
    pub value: Option<String>,
    /// Further fixed headers.
    #[serde(default)]
    pub extra_headers: Vec<(String, String)>,
    /// How the answer is read: `status`, `slack` (200 + `ok`) or `telegram` (`ok` + status).
    pub style: String,
    /// Statuses meaning "invalid".
    #[serde(default)]
    pub invalid: Vec<u16>,
    /// Statuses meaning "valid but restricted".
    #[serde(default)]
    pub restricted: Vec<u16>,
}

/// One kind of secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Rotation order class.
    pub class: Class,
    /// Where the new value comes from.
    pub origin: Origin,
    /// JSON pointers in the gateway config (`*` matches one key).
    #[serde(default)]
    pub pointers: Vec<String>,
    /// Environment variable names.
    #[serde(default)]
    pub env: Vec<String>,
    /// auth-profiles.json `provider` values.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Console where the user revokes and re-issues.
    #[serde(default)]
    pub console_url: Option<String>,
    /// Steps to follow in the console.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Whether getting the new value revokes the old one.
    #[serde(default)]
    pub revoke_is_reissue: bool,
    /// What must still be updated elsewhere.
    #[serde(default)]
    pub after: Vec<String>,
    /// Offline validation.
    #[serde(default)]
    pub validate: ValidateSpec,
    /// Online verification.
    #[serde(default)]
    pub verify: Option<VerifySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    provider: Vec<Provider>,
}

/// A provider with its regexes compiled.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) charset: Option<Regex>,
    pub(crate) shapes: Vec<Regex>,
}

/// The parsed catalogue.
#[derive(Debug)]
pub struct Catalogue {
    /// Format version of the data.
    pub version: u32,
    providers: Vec<Provider>,
    compiled: Vec<Compiled>,
}

impl Catalogue {
    /// Parses the built-in catalogue.
    ///
    /// # Errors
    /// Fails only if the built-in data is broken (a test guards it).
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN)
    }

    /// Parses a catalogue from TOML text.
    ///
    /// # Errors
    /// Fails on invalid TOML, duplicate ids or invalid regexes.
    pub fn parse(text: &str) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| Error::Catalogue(e.to_string()))?;
        let mut compiled = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in &file.provider {
            if !seen.insert(p.id.clone()) {
                return Err(Error::Catalogue(format!("duplicate provider id {}", p.id)));
            }
            let re = |s: &str| {
                Regex::new(s).map_err(|e| Error::Catalogue(format!("provider {}: {e}", p.id)))
            };
            let charset = match &p.validate.charset {
                Some(c) => Some(re(&format!("^[{c}]*$"))?),
                None => None,
            };
            let mut shapes = Vec::new();
            for s in p.validate.shape.iter().chain(&p.validate.shapes_ok) {
                shapes.push(re(s)?);
            }
            if let Some(v) = &p.verify
                && !matches!(v.style.as_str(), "status" | "slack" | "telegram")
            {
                return Err(Error::Catalogue(format!(
                    "provider {}: unknown verify style {}",
                    p.id, v.style
                )));
            }
            compiled.push(Compiled { charset, shapes });
        }
        Ok(Catalogue {
            version: file.version,
            providers: file.provider,
            compiled,
        })
    }

    /// All providers, in file order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    pub(crate) fn compiled(&self, id: &str) -> Option<(&Provider, &Compiled)> {
        let i = self.providers.iter().position(|p| p.id == id)?;
        Some((&self.providers[i], &self.compiled[i]))
    }

    pub(crate) fn all_compiled(&self) -> impl Iterator<Item = (&Provider, &Compiled)> {
        self.providers.iter().zip(&self.compiled)
    }

    /// The provider a config JSON pointer belongs to (the most specific match wins: patterns
    /// without `*` before patterns with one).
    pub fn for_pointer(&self, pointer: &str) -> Option<&Provider> {
        let mut best: Option<(&Provider, usize)> = None;
        for p in &self.providers {
            for pat in &p.pointers {
                if pointer_matches(pat, pointer) {
                    let wild = pat.matches('*').count();
                    if best.is_none_or(|(_, w)| wild < w) {
                        best = Some((p, wild));
                    }
                }
            }
        }
        best.map(|(p, _)| p)
    }

    /// The provider an environment variable name belongs to.
    pub fn for_env(&self, name: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.env.iter().any(|e| e == name))
    }

    /// The provider of an auth profile, by its `provider` field and the value's shape.
    pub fn for_profile(&self, provider: &str, value: &str) -> Option<&Provider> {
        if value.starts_with("sk-ant-oat01-") {
            return self.get("anthropic-oauth");
        }
        self.providers
            .iter()
            .find(|p| p.profiles.iter().any(|e| e == provider))
            .or_else(|| self.get("generic"))
    }
}

/// Whether a pointer pattern (`*` = one segment) matches a pointer.
pub fn pointer_matches(pattern: &str, pointer: &str) -> bool {
    let a: Vec<&str> = pattern.split('/').collect();
    let b: Vec<&str> = pointer.split('/').collect();
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| *x == "*" || x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_parses_and_maps_pointers_and_env() {
        let c = Catalogue::builtin().unwrap();
        assert_eq!(c.version, 1);
        let id = |p: Option<&Provider>| p.map(|p| p.id.clone());
        assert_eq!(
            id(c.for_pointer("/gateway/auth/token")).as_deref(),
            Some("gateway-token")
        );
        assert_eq!(
            id(c.for_pointer("/channels/telegram/accounts/ops/botToken")).as_deref(),
            Some("telegram")
        );
        assert_eq!(
            id(c.for_pointer("/models/providers/anthropic/apiKey")).as_deref(),
            Some("anthropic")
        );
        assert_eq!(
            id(c.for_pointer("/models/providers/custom-1/apiKey")).as_deref(),
            Some("generic")
        );
        assert!(c.for_pointer("/gateway/port").is_none());
        assert_eq!(
            id(c.for_env("OPENCLAW_GATEWAY_TOKEN")).as_deref(),
            Some("gateway-token")
        );
        assert_eq!(id(c.for_env("OPENAI_API_KEY")).as_deref(), Some("openai"));
        for p in c.providers() {
            if p.origin == Origin::Pasted && p.id != "generic" && p.id != "anthropic-oauth" {
                assert!(
                    p.console_url
                        .as_deref()
                        .is_some_and(|u| u.starts_with("https://")),
                    "{} lacks a console URL",
                    p.id
                );
                assert!(!p.steps.is_empty(), "{} lacks steps", p.id);
            }
            if let Some(v) = &p.verify {
                assert!(v.base_url.starts_with("https://"), "{}", p.id);
            }
        }
    }

    #[test]
    fn duplicate_ids_and_bad_regexes_are_refused() {
        let dup = "version = 1\n[[provider]]\nid='a'\nname='a'\nclass='model'\norigin='pasted'\n[[provider]]\nid='a'\nname='a'\nclass='model'\norigin='pasted'\n";
        assert!(Catalogue::parse(dup).is_err());
        let bad = "version = 1\n[[provider]]\nid='a'\nname='a'\nclass='model'\norigin='pasted'\n[provider.validate]\nshape='('\n";
        assert!(Catalogue::parse(bad).is_err());
    }
}
