//! Offline validation of a new value: normalise the paste, then tiered checks from the
//! catalogue (hard failures refuse the value, warnings are reported and accepted).

use secrecy::{ExposeSecret, SecretString};

use crate::catalogue::Catalogue;

/// Known placeholders and documentation examples that are never a real secret.
const PLACEHOLDERS: &[&str] = &[
    "your-token",
    "your-api-key",
    "changeme",
    "change-me",
    "replace-with-long-random-token",
    "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
];

/// A pasted value after normalisation, with what was changed (no value in the notes).
#[derive(Debug)]
pub struct Normalised {
    /// The cleaned value.
    pub value: SecretString,
    /// What normalisation did ("stripped quotes", ...), for the user.
    pub notes: Vec<String>,
}

/// Cleans a pasted value: trims whitespace and line ends, strips matching quotes, an
/// accidental `Bearer `/`Bot ` prefix or `NAME=` prefix; refuses inner whitespace, control,
/// zero-width and non-ASCII characters.
///
/// # Errors
/// Returns why the value is refused (never the value).
pub fn normalise(raw: &str) -> Result<Normalised, String> {
    let mut notes = Vec::new();
    let mut s = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            s = s[1..s.len() - 1].trim();
            notes.push("stripped surrounding quotes".to_string());
        }
    }
    for p in ["Bearer ", "Bot "] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest.trim_start();
            notes.push(format!("stripped a leading \"{}\"", p.trim()));
        }
    }
    if let Some(eq) = s.find('=') {
        let name = &s[..eq];
        if !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            s = s[eq + 1..].trim();
            notes.push(format!("stripped a leading {name}="));
            for q in ['"', '\''] {
                if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
                    s = &s[1..s.len() - 1];
                }
            }
        }
    }
    if s.is_empty() {
        return Err("the value is empty".into());
    }
    if !s.is_ascii() {
        return Err("the value has non-ASCII or zero-width characters".into());
    }
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err("the value has control characters".into());
    }
    if s.chars().any(|c| c.is_ascii_whitespace()) {
        return Err("the value has whitespace inside".into());
    }
    Ok(Normalised {
        value: SecretString::from(s.to_string()),
        notes,
    })
}

/// What offline validation found for an accepted value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Names of the checks passed (e.g. `format.telegram`), for the report.
    pub passed: Vec<String>,
    /// Warnings (unknown shape, different bot id), for the user and the report.
    pub warnings: Vec<String>,
}

/// Validates `new` for `provider` against the catalogue, the `old` value of the same item and
/// the current values of `others` (other slots: a hook token must not equal the gateway token).
///
/// # Errors
/// Returns the failed check's description (never the value).
pub fn validate(
    catalogue: &Catalogue,
    provider: &str,
    new: &SecretString,
    old: Option<&SecretString>,
    others: &[&SecretString],
) -> Result<Checked, String> {
    let v = new.expose_secret();
    let (p, c) = catalogue
        .compiled(provider)
        .ok_or_else(|| format!("unknown provider {provider}"))?;
    let spec = &p.validate;
    let mut out = Checked::default();
    let lower = v.to_ascii_lowercase();
    if PLACEHOLDERS
        .iter()
        .any(|ph| lower == ph.to_ascii_lowercase())
        || lower.contains("xxxx")
        || lower.starts_with("replace-with")
        || v.ends_with("...")
    {
        return Err("the value is a placeholder, not a real secret".into());
    }
    if old.is_some_and(|o| o.expose_secret() == v) {
        return Err("the new value equals the old (compromised) value".into());
    }
    if others.iter().any(|o| o.expose_secret() == v) {
        return Err("the new value equals the value of another secret".into());
    }
    out.passed.push("not-old".into());
    if let Some(min) = spec.min_len
        && v.len() < min
    {
        return Err(format!(
            "too short for a {} (at least {min} characters)",
            p.name
        ));
    }
    if let Some(max) = spec.max_len
        && v.len() > max
    {
        return Err(format!(
            "too long for a {} (at most {max} characters)",
            p.name
        ));
    }
    out.passed.push("length".into());
    if let Some(cs) = &c.charset {
        if !cs.is_match(v) {
            return Err(format!("characters not allowed in a {}", p.name));
        }
        out.passed.push("charset".into());
    }
    for rp in &spec.reject_prefixes {
        if v.starts_with(rp.as_str()) {
            return Err(format!(
                "a value starting {rp:?} cannot be used as a {}",
                p.name
            ));
        }
    }
    if let Some(pre) = &spec.prefix {
        if !v.starts_with(pre.as_str()) {
            return Err(format!("a {} starts with {pre:?}", p.name));
        }
        out.passed.push("prefix".into());
    }
    let own = c.shapes.iter().any(|r| r.is_match(v));
    if own {
        out.passed.push(format!("format.{}", p.id));
    } else {
        let other = catalogue.all_compiled().find(|(op, oc)| {
            op.id != p.id
                && op.class != crate::Class::Gateway
                && oc.shapes.iter().any(|r| r.is_match(v))
        });
        match other {
            Some((op, _)) if !c.shapes.is_empty() => {
                return Err(format!("this looks like a {}, not a {}", op.name, p.name));
            }
            Some((op, _)) => out.warnings.push(format!(
                "this looks like a {}; check it is the right key",
                op.name
            )),
            None if !c.shapes.is_empty() => out.warnings.push(format!(
                "unknown {} format (accepted; providers change formats)",
                p.name
            )),
            None => {}
        }
    }
    if let Some(old) = old {
        match p.id.as_str() {
            "telegram" => {
                let id = |s: &str| s.split(':').next().map(str::to_string);
                if id(v) != id(old.expose_secret()) {
                    out.warnings.push(
                        "the bot id differs from the old token's: is this the same bot?".into(),
                    );
                } else {
                    out.passed.push("same-bot-id".into());
                }
            }
            "discord" => {
                let id = |s: &str| s.split('.').next().map(str::to_string);
                if id(v) != id(old.expose_secret()) {
                    out.warnings.push(
                        "the application id differs from the old token's: is this the same bot?"
                            .into(),
                    );
                } else {
                    out.passed.push("same-bot-id".into());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_string())
    }
    fn rep(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }
    /// Test tokens are assembled from fragments so the repository does not trip scanners.
    fn telegram(id: &str) -> String {
        format!("{id}:{}{}", "AAH", rep('q', 32))
    }
    fn anthropic() -> String {
        format!("{}{}{}{}", "sk-", "ant-api03-", rep('b', 93), "AA")
    }
    fn openrouter() -> String {
        format!("{}{}{}", "sk-", "or-v1-", rep('a', 64))
    }
    fn openai() -> String {
        format!("{}{}{}{}", "sk-", "proj-", rep('c', 74), "T3Blbk") + "FJ" + &rep('d', 74)
    }

    #[test]
    fn normalise_strips_quotes_prefixes_and_refuses_inner_space() {
        let n = normalise("  \"Bearer abc\"\r\n").unwrap();
        assert_eq!(n.value.expose_secret(), "abc");
        assert_eq!(n.notes.len(), 2);
        let n = normalise("OPENAI_API_KEY='abc'").unwrap();
        assert_eq!(n.value.expose_secret(), "abc");
        assert!(normalise("a b").is_err());
        assert!(normalise("ab\u{200b}c").is_err());
        assert!(normalise("   ").is_err());
    }

    #[test]
    fn valid_shapes_pass_and_wrong_provider_shapes_fail() {
        let c = Catalogue::builtin().unwrap();
        let ok = |p: &str, v: &str| validate(&c, p, &s(v), None, &[]);
        assert!(
            ok("telegram", &telegram("123456789"))
                .unwrap()
                .warnings
                .is_empty()
        );
        assert!(ok("anthropic", &anthropic()).unwrap().warnings.is_empty());
        assert!(ok("openrouter", &openrouter()).unwrap().warnings.is_empty());
        assert!(ok("openai", &openai()).unwrap().warnings.is_empty());
        // An OpenRouter key pasted into the OpenAI slot: refused by prefix.
        assert!(ok("openai", &openrouter()).is_err());
        // An Anthropic setup token in the API-key slot: refused.
        let oat = format!("{}{}{}", "sk-", "ant-oat01-", rep('e', 90));
        assert!(ok("anthropic", &oat).is_err());
        // A Telegram token in the Discord slot: too short / charset / shape.
        assert!(ok("discord", &telegram("123456789")).is_err());
        // Gemini's newer AQ. keys are accepted; an unknown Gemini-slot shape only warns.
        let aq = format!("AQ.{}", rep('f', 50));
        assert!(ok("gemini", &aq).unwrap().warnings.is_empty());
        let odd = rep('g', 40);
        assert_eq!(ok("gemini", &odd).unwrap().warnings.len(), 1);
        // A generic slot warns when the value looks like a known provider's key.
        assert_eq!(ok("generic", &anthropic()).unwrap().warnings.len(), 1);
        assert!(
            ok(
                "slack-bot",
                concat!("xoxe.xo", "xb-1234567890-1234567890-abc")
            )
            .is_err()
        );
    }

    #[test]
    fn old_value_reuse_and_placeholders_are_refused() {
        let c = Catalogue::builtin().unwrap();
        let t = s(&telegram("123456789"));
        assert!(validate(&c, "telegram", &t, Some(&t), &[]).is_err());
        let g = s(&rep('a', 64));
        assert!(validate(&c, "hooks-token", &g, None, &[&g]).is_err());
        assert!(
            validate(
                &c,
                "generic",
                &s("replace-with-long-random-token"),
                None,
                &[]
            )
            .is_err()
        );
        let other_bot = s(&telegram("987654321"));
        let w = validate(&c, "telegram", &other_bot, Some(&t), &[]).unwrap();
        assert_eq!(w.warnings.len(), 1);
        let err = validate(&c, "telegram", &s("short"), None, &[]).unwrap_err();
        assert!(!err.contains("short\""), "{err}");
    }
}
