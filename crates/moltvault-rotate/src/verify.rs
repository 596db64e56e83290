//! Opt-in online verification: one read-only call per key, through one HTTP client whose base
//! URLs can be overridden (HTTPS only, except loopback), with no proxy from the environment and
//! no redirects. Only the outcome class, the HTTP status and a provider error code are kept:
//! never the URL (Telegram puts the token in it), headers or bodies.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::catalogue::Provider;
use crate::error::{Error, Result};

/// What a verification call says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The key works.
    Valid,
    /// The key authenticates but lacks permission for the probe endpoint.
    Restricted,
    /// The provider rate-limited the probe (the key is very likely valid).
    RateLimited,
    /// The key is wrong or revoked.
    Invalid,
    /// Could not tell (5xx, timeout, TLS error, unexpected answer).
    Unknown,
}

impl Outcome {
    /// The report spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Restricted => "restricted",
            Outcome::RateLimited => "rate-limited",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
        }
    }

    /// Whether the key should be accepted.
    pub fn accepts(self) -> bool {
        !matches!(self, Outcome::Invalid)
    }
}

/// The result of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The outcome class.
    pub outcome: Outcome,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// A provider error code (e.g. `invalid_api_key`), or a transport class (`timeout`).
    pub code: Option<String>,
}

/// The verification client.
#[derive(Debug)]
pub struct Verifier {
    agent: ureq::Agent,
    base_urls: BTreeMap<String, String>,
}

/// Whether a base URL may be used: `https://`, or `http://` to a loopback host.
pub fn base_url_allowed(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(h) = authority.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Verifier {
    /// A client with a per-request `timeout` and base-URL overrides (`provider id → URL`).
    ///
    /// # Errors
    /// [`Error::BaseUrl`] when an override is neither HTTPS nor loopback HTTP.
    pub fn new(timeout: Duration, overrides: BTreeMap<String, String>) -> Result<Self> {
        for (p, u) in &overrides {
            if !base_url_allowed(u) {
                return Err(Error::BaseUrl {
                    provider: p.clone(),
                });
            }
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(0)
            .try_proxy_from_env(false)
            .user_agent(concat!("moltvault/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Verifier {
            agent,
            base_urls: overrides,
        })
    }

    /// Whether the provider has an online check.
    pub fn supports(&self, provider: &Provider) -> bool {
        provider.verify.is_some()
    }

    /// Makes the provider's one read-only call with `secret` and classifies the answer.
    /// Providers without a verifier give `Unknown` with code `no-verifier`.
    pub fn verify(&self, provider: &Provider, secret: &SecretString) -> Verification {
        let Some(spec) = &provider.verify else {
            return Verification {
                outcome: Outcome::Unknown,
                status: None,
                code: Some("no-verifier".into()),
            };
        };
        let base = self
            .base_urls
            .get(&provider.id)
            .map(String::as_str)
            .unwrap_or(spec.base_url.as_str());
        if !base_url_allowed(base) {
            return Verification {
                outcome: Outcome::Unknown,
                status: None,
                code: Some("base-url-refused".into()),
            };
        }
        let token = secret.expose_secret();
        let url = format!(
            "{}{}",
            base.trim_end_matches('/'),
            spec.path.replace("{token}", token)
        );
        let mut req = self.agent.request(&spec.method, &url);
        if let (Some(h), Some(v)) = (&spec.header, &spec.value) {
            req = req.set(h, &v.replace("{token}", token));
        }
        for (h, v) in &spec.extra_headers {
            req = req.set(h, v);
        }
        let result = if spec.method == "POST" {
            req.set("Content-Type", "application/x-www-form-urlencoded")
                .send_string("")
        } else {
            req.call()
        };
        let (status, body) = match result {
            Ok(resp) => (resp.status(), read_body(resp)),
            Err(ureq::Error::Status(code, resp)) => (code, read_body(resp)),
            Err(ureq::Error::Transport(t)) => {
                let code = match t.kind() {
                    ureq::ErrorKind::Io => "timeout-or-io",
                    ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => "connection",
                    _ => "transport",
                };
                // The transport error's text names the URL; it is dropped here on purpose.
                return Verification {
                    outcome: Outcome::Unknown,
                    status: None,
                    code: Some(code.into()),
                };
            }
        };
        classify(spec, status, &body)
    }
}

fn read_body(resp: ureq::Response) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut buf);
    buf
}

/// Keeps a provider error code only if it looks like a code (so an echoed key cannot pass).
fn safe_code(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()
        && s.len() <= 48
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
    .then_some(s)
}

fn classify(spec: &crate::catalogue::VerifySpec, status: u16, body: &[u8]) -> Verification {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = safe_code(json.pointer("/error/code").filter(|c| c.is_string()))
        .or_else(|| safe_code(json.pointer("/error/details/0/reason")))
        .or_else(|| safe_code(json.pointer("/error/type")))
        .or_else(|| safe_code(json.pointer("/error/status")))
        .or_else(|| safe_code(json.get("error")))
        .or_else(|| safe_code(json.get("error_code")))
        .or_else(|| safe_code(json.get("code")));
    let outcome = match spec.style.as_str() {
        "slack" if status == 200 => match json.get("ok").and_then(Value::as_bool) {
            Some(true) => Outcome::Valid,
            Some(false) => match json.get("error").and_then(Value::as_str) {
                Some(
                    "invalid_auth" | "token_revoked" | "account_inactive" | "not_authed"
                    | "token_expired",
                ) => Outcome::Invalid,
                Some("ratelimited") => Outcome::RateLimited,
                _ => Outcome::Unknown,
            },
            None => Outcome::Unknown,
        },
        "telegram" if (200..300).contains(&status) => {
            if json.get("ok").and_then(Value::as_bool) == Some(true) {
                Outcome::Valid
            } else {
                Outcome::Unknown
            }
        }
        _ if (200..300).contains(&status) => {
            if json.is_null() {
                Outcome::Unknown
            } else {
                Outcome::Valid
            }
        }
        _ if status == 429 => Outcome::RateLimited,
        _ if spec.invalid.contains(&status) => Outcome::Invalid,
        _ if spec.restricted.contains(&status) => Outcome::Restricted,
        _ => Outcome::Unknown,
    };
    Verification {
        outcome,
        status: Some(status),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_base_urls_are_allowed() {
        assert!(base_url_allowed("https://api.example.com"));
        assert!(base_url_allowed("http://127.0.0.1:8080"));
        assert!(base_url_allowed("http://[::1]:8080/x"));
        assert!(base_url_allowed("http://localhost:1"));
        assert!(!base_url_allowed("http://example.com"));
        assert!(!base_url_allowed("http://127.0.0.1@evil.example"));
        assert!(!base_url_allowed("ftp://127.0.0.1"));
        assert!(
            Verifier::new(
                Duration::from_secs(1),
                [("openai".to_string(), "http://10.0.0.1".to_string())].into()
            )
            .is_err()
        );
    }

    #[test]
    fn codes_that_could_carry_a_key_are_dropped() {
        assert_eq!(
            safe_code(Some(&Value::String("invalid_api_key".into()))),
            Some("invalid_api_key".into())
        );
        assert_eq!(
            safe_code(Some(&Value::String(
                "Incorrect API key provided: sk-".into()
            ))),
            None
        );
    }
}
