//! Rules as data: the built-in TOML files under `data/rules/` and the user's `rules.toml`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::keypath::{self, PathValue};
use crate::{Error, Result};

/// The built-in rule files, embedded at build time, in matching order.
const BUILTIN: &[(&str, &str)] = &[
    ("ai.toml", include_str!("../data/rules/ai.toml")),
    ("chat.toml", include_str!("../data/rules/chat.toml")),
    ("code.toml", include_str!("../data/rules/code.toml")),
    ("cloud.toml", include_str!("../data/rules/cloud.toml")),
    ("keys.toml", include_str!("../data/rules/keys.toml")),
    ("keypaths.toml", include_str!("../data/rules/keypaths.toml")),
    ("generic.toml", include_str!("../data/rules/generic.toml")),
];

/// How a rule's matches are checked after the regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Validate {
    /// The regex shape is enough.
    #[default]
    None,
    /// A value assigned to a credential-looking name: placeholder, randomness and
    /// hash/UUID-shape checks apply.
    Credential,
    /// Only references and placeholders (`$X`, `<token>`) are rejected.
    Placeholder,
    /// A GitHub `gh?_` token whose last 6 base62 characters are the CRC32 of the 30 before.
    #[serde(rename = "github-crc32")]
    GithubCrc32,
    /// A base64 run that decodes to a PEM/OpenSSH/PGP private key block.
    #[serde(rename = "base64-pem")]
    Base64Pem,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    allowlist: Option<RawAllow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    fingerprints: Vec<String>,
    #[serde(default)]
    regexes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: toml::Spanned<String>,
    description: String,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    value: PathValue,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    context: bool,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    validate: Validate,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The stable id written in placeholders and findings (`[a-z0-9-]`).
    pub id: String,
    /// What the rule finds.
    pub description: String,
    /// Prefilter literals: a record is examined for this rule only when one occurs.
    pub keywords: Vec<String>,
    /// Inputs the rule must find (templates expanded).
    pub examples: Vec<String>,
    /// Inputs the rule must not find (templates expanded).
    pub negative_examples: Vec<String>,
    /// The file the rule came from (`builtin:ai.toml` for built-in rules).
    pub file: String,
    /// The 1-based line of the rule's `id` in its file.
    pub line: usize,
    pub(crate) regex: Option<Regex>,
    pub(crate) key: Option<Regex>,
    /// Key-path rules: the key suffixes (`["noiseKey", "private"]`) whose values are secrets.
    pub(crate) paths: Vec<Vec<String>>,
    /// Key-path rules: the shape a matching value must have.
    pub(crate) path_value: PathValue,
    pub(crate) secret_group: Option<usize>,
    pub(crate) name_group: Option<usize>,
    pub(crate) context: bool,
    pub(crate) entropy: Option<f64>,
    pub(crate) validate: Validate,
}

/// An ordered set of rules plus the user's allowlist.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) allow_fingerprints: HashSet<String>,
    pub(crate) allow_regexes: Vec<Regex>,
}

impl RuleSet {
    /// The built-in rules (validated by this crate's tests).
    pub fn builtin() -> RuleSet {
        static CELL: OnceLock<RuleSet> = OnceLock::new();
        CELL.get_or_init(|| {
            let mut set = RuleSet {
                rules: Vec::new(),
                allow_fingerprints: HashSet::new(),
                allow_regexes: Vec::new(),
            };
            for (name, text) in BUILTIN {
                // The built-in files are checked by tests; a failure here is a build defect.
                #[allow(clippy::expect_used)]
                set.add_file(&format!("builtin:{name}"), text)
                    .expect("built-in rules are valid");
            }
            set
        })
        .clone()
    }

    /// The built-in rules plus the rules and allowlist of a user rule file.
    ///
    /// # Errors
    /// Returns [`Error::RuleFile`] or [`Error::Rule`] naming the file, the rule id and its line
    /// when the file is not valid TOML, a regex does not compile, an id is reused, or a rule
    /// misses one of its own examples.
    pub fn with_user_file(path: &Path, text: &str) -> Result<RuleSet> {
        let mut set = RuleSet::builtin();
        set.add_file(&path.display().to_string(), text)?;
        Ok(set)
    }

    /// The rules in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn add_file(&mut self, file: &str, text: &str) -> Result<()> {
        let raw: RawFile = toml::from_str(text).map_err(|e| Error::RuleFile {
            file: file.to_string(),
            message: match e.span() {
                Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
                None => e.message().to_string(),
            },
        })?;
        let start = self.rules.len();
        for r in raw.rules {
            let line = line_of(text, r.id.span().start);
            let id = r.id.into_inner();
            let err = |message: String| Error::Rule {
                file: file.to_string(),
                rule: id.clone(),
                line,
                message,
            };
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(err("ids are 1 to 64 characters of a-z, 0-9 and '-'".into()));
            }
            if self.rules.iter().any(|x| x.id == id) {
                return Err(err("this id is already used by another rule".into()));
            }
            let kinds = [r.regex.is_some(), r.key.is_some(), !r.paths.is_empty()];
            if kinds.iter().filter(|&&k| k).count() != 1 {
                return Err(err(
                    "a rule has exactly one of `regex`, `key` or `paths`".into()
                ));
            }
            let paths = keypath::parse_paths(&r.paths).map_err(err)?;
            for k in &r.keywords {
                if k.len() < 3 || k.bytes().any(|b| b == b'"' || b == b'\\' || b >= 0x80) {
                    return Err(err(format!(
                        "keyword {k:?} must be at least 3 ASCII bytes without quotes or backslashes"
                    )));
                }
            }
            let regex = match &r.regex {
                Some(re) => Some(
                    regex::bytes::RegexBuilder::new(re)
                        .size_limit(32 << 20)
                        .build()
                        .map_err(|e| err(format!("bad regex: {}", one_line(&e.to_string()))))?,
                ),
                None => None,
            };
            let key = match &r.key {
                Some(re) => Some(
                    Regex::new(re)
                        .map_err(|e| err(format!("bad key regex: {}", one_line(&e.to_string()))))?,
                ),
                None => None,
            };
            let group = |name: &str| {
                regex.as_ref().and_then(|re| {
                    re.capture_names()
                        .enumerate()
                        .find(|(_, n)| *n == Some(name))
                        .map(|(i, _)| i)
                })
            };
            let rule = Rule {
                secret_group: group("secret"),
                name_group: group("name"),
                id: id.clone(),
                description: r.description,
                keywords: r.keywords,
                examples: r.examples.iter().map(|e| expand_template(e)).collect(),
                negative_examples: r
                    .negative_examples
                    .iter()
                    .map(|e| expand_template(e))
                    .collect(),
                file: file.to_string(),
                line,
                regex,
                key,
                paths,
                path_value: r.value,
                context: r.context,
                entropy: r.entropy,
                validate: r.validate,
            };
            self.rules.push(rule);
        }
        if let Some(a) = raw.allowlist {
            for fp in a.fingerprints {
                let fp = fp.to_ascii_lowercase();
                if fp.len() != 8 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::RuleFile {
                        file: file.to_string(),
                        message: format!("allowlist fingerprint {fp:?} is not 8 hex digits"),
                    });
                }
                self.allow_fingerprints.insert(fp);
            }
            for re in a.regexes {
                let r = Regex::new(&re).map_err(|e| Error::RuleFile {
                    file: file.to_string(),
                    message: format!("bad allowlist regex: {}", one_line(&e.to_string())),
                })?;
                self.allow_regexes.push(r);
            }
        }
        // Every new rule must find its examples and miss its negative examples.
        for idx in start..self.rules.len() {
            check_examples(&self.rules[idx]).map_err(|message| Error::Rule {
                file: file.to_string(),
                rule: self.rules[idx].id.clone(),
                line: self.rules[idx].line,
                message,
            })?;
        }
        Ok(())
    }
}

/// The last line of a multi-line regex error, without its `error: ` prefix.
fn one_line(msg: &str) -> String {
    let last = msg.lines().last().unwrap_or(msg).trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Whether a rule finds a secret in an example: key-path rules search the JSON documents in
/// it, other rules go through [`crate::text::rule_finds`].
fn finds(rule: &Rule, ex: &[u8]) -> bool {
    if rule.paths.is_empty() {
        return crate::text::rule_finds(rule, ex);
    }
    let mut found = false;
    keypath::text_hits(std::slice::from_ref(rule), ex, 0, &mut |_, _, _, _| {
        found = true
    });
    found
}

/// Checks one rule against its own examples.
fn check_examples(rule: &Rule) -> std::result::Result<(), String> {
    for ex in &rule.examples {
        if !finds(rule, ex.as_bytes()) {
            return Err(format!("does not find its example {:?}", short(ex)));
        }
    }
    for ex in &rule.negative_examples {
        if finds(rule, ex.as_bytes()) {
            return Err(format!("finds its negative example {:?}", short(ex)));
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Expands `{{class:len}}` templates in rule examples with deterministic pseudo-random
/// characters, so the rule files hold no literal token a push-protection scanner would flag.
///
/// Classes: `alnum`, `hex`, `digits`, `upper`, `lower`, `urlsafe`, `b64`, `base32`, `bech32`;
/// `ghsum:N` is `N` alphanumeric characters followed by their 6-character GitHub checksum
/// (base62 CRC32), the body of a valid `ghp_`/`gho_`/`ghs_`/`ghu_`/`ghr_` token when `N` is 30;
/// `pemb64:N` is the base64 of an OpenSSH private key block with an `N`-character body
/// (`pemb64w:N` wrapped at 76 columns).
pub fn expand_template(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ s.len() as u64;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..j];
        let (class, count) = inner.split_once(':').unwrap_or((inner, ""));
        let checksum = class == "ghsum";
        let pem = class.strip_prefix("pemb64");
        let chars = if checksum {
            class_chars("alnum")
        } else if pem.is_some() {
            class_chars("b64")
        } else {
            class_chars(class)
        };
        let parsed = chars.and_then(|c| Some((c, count.parse::<usize>().ok()?)));
        match parsed {
            Some((chars, n)) => {
                let from = out.len();
                for _ in 0..n {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    out.push(chars[(seed % chars.len() as u64) as usize] as char);
                }
                if checksum {
                    let sum = crate::validate::github_checksum(&out.as_bytes()[from..]);
                    out.extend(sum.iter().map(|&b| b as char));
                }
                if let Some(wrap) = pem {
                    let body = out.split_off(from);
                    out.push_str(&pem_base64(&body, wrap == "w"));
                }
            }
            None => out.push_str(&rest[i..i + 4 + j]),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

/// The base64 of an OpenSSH private key block with `body` as its body, on one line or wrapped
/// at 76 columns like `base64` prints it.
fn pem_base64(body: &str, wrapped: bool) -> String {
    use base64::Engine as _;
    let pem =
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    if !wrapped {
        return b64;
    }
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("\n")
}

fn class_chars(class: &str) -> Option<&'static [u8]> {
    Some(match class {
        "alnum" => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "hex" => b"0123456789abcdef",
        "digits" => b"0123456789",
        "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "lower" => b"abcdefghijklmnopqrstuvwxyz",
        "urlsafe" => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
        "b64" => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
        "base32" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "bech32" => b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_deterministically() {
        let a = expand_template("x-{{hex:8}}-{{digits:3}}");
        assert_eq!(a, expand_template("x-{{hex:8}}-{{digits:3}}"));
        assert_eq!(a.len(), 2 + 8 + 1 + 3);
        assert!(a[2..10].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(expand_template("${VAR} {{ x }}"), "${VAR} {{ x }}");
        let t = expand_template("ghp_{{ghsum:30}}");
        assert_eq!(t.len(), 4 + 36);
        assert!(crate::validate::github_crc32(t.as_bytes()), "{t}");
    }

    #[test]
    fn every_builtin_rule_checks_its_examples() {
        let set = RuleSet::builtin();
        assert!(set.rules.len() >= 40, "{}", set.rules.len());
        for r in &set.rules {
            assert!(!r.examples.is_empty(), "{} has no examples", r.id);
            assert!(
                !r.negative_examples.is_empty(),
                "{} has no negative examples",
                r.id
            );
            assert!(!r.keywords.is_empty(), "{} has no keywords", r.id);
            check_examples(r).unwrap_or_else(|e| panic!("{}: {e}", r.id));
        }
    }

    #[test]
    fn bad_user_rule_names_file_rule_and_line() {
        let text = "[[rules]]\nid = \"ok-rule\"\ndescription = \"x\"\nregex = 'abc[0-9]{4}'\nkeywords = [\"abc\"]\nexamples = [\"abc1234\"]\n\n[[rules]]\nid = \"broken\"\ndescription = \"y\"\nregex = 'abc('\nkeywords = [\"abc\"]\n";
        let err = RuleSet::with_user_file(Path::new("/x/rules.toml"), text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/x/rules.toml"), "{msg}");
        assert!(msg.contains("`broken`"), "{msg}");
        assert!(msg.contains("line 9"), "{msg}");
        let err = RuleSet::with_user_file(Path::new("r.toml"), "[[rules]]\nid = 3\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let text = "[[rules]]\nid = \"miss\"\ndescription = \"y\"\nregex = 'abc[0-9]{4}'\nkeywords = [\"abc\"]\nexamples = [\"abcd\"]\n";
        let err = RuleSet::with_user_file(Path::new("r.toml"), text).unwrap_err();
        assert!(
            err.to_string().contains("does not find its example"),
            "{err}"
        );
    }
}
