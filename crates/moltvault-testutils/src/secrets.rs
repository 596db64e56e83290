//! Fake secrets in every format the redaction rules know.
//!
//! Prefixes are assembled from fragments at run time and bodies are pseudo-random from a seed,
//! so this repository holds no literal token that a push-protection scanner would flag, while
//! every value is format-valid for the rule that should find it.

/// A small deterministic PRNG (xorshift64*), so corpora and tests are reproducible.
#[derive(Debug, Clone)]
pub struct FakeRng(u64);

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const URLSAFE: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const DIGITS: &[u8] = b"0123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const B64: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BECH32: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

impl FakeRng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        FakeRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `n` characters drawn from `alphabet`.
    pub fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    /// `n` alphanumeric characters.
    pub fn alnum(&mut self, n: usize) -> String {
        self.chars(ALNUM, n)
    }

    /// The 36-character body of a GitHub `gh?_` token: 30 random alphanumerics and their
    /// checksum (base62 CRC32, left-padded to 6), so the redactor's checksum validator accepts it.
    pub fn github_body(&mut self) -> String {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let random = self.alnum(30);
        let mut crc = crc32fast::hash(random.as_bytes());
        let mut sum = [b'0'; 6];
        for slot in sum.iter_mut().rev() {
            *slot = BASE62[(crc % 62) as usize];
            crc /= 62;
        }
        format!("{random}{}", String::from_utf8_lossy(&sum))
    }

    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        self.chars(HEX, n)
    }

    /// `n` base64 characters.
    pub fn b64(&mut self, n: usize) -> String {
        self.chars(B64, n)
    }

    /// A random UUID-shaped string (a decoy, not a secret).
    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
}

fn p(parts: &[&str]) -> String {
    parts.concat()
}

/// A fake secret with the id of the rule that must find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSecret {
    /// The rule id expected to find it.
    pub rule: &'static str,
    /// The text to plant (may include context such as `KEY=`).
    pub text: String,
    /// The secret part of `text` that must not survive redaction.
    pub secret: String,
}

fn bare(rule: &'static str, secret: String) -> FakeSecret {
    FakeSecret {
        rule,
        text: secret.clone(),
        secret,
    }
}

fn ctx(rule: &'static str, before: &str, secret: String, after: &str) -> FakeSecret {
    FakeSecret {
        rule,
        text: format!("{before}{secret}{after}"),
        secret,
    }
}

/// Provider-format secrets (recognised by their shape alone), one per format.
pub fn provider_secrets(r: &mut FakeRng) -> Vec<FakeSecret> {
    vec![
        bare(
            "anthropic-api-key",
            format!(
                "{}{}AA",
                p(&["sk", "-ant-", "api03-"]),
                r.chars(URLSAFE, 93)
            ),
        ),
        bare(
            "anthropic-admin-key",
            format!(
                "{}{}AA",
                p(&["sk", "-ant-", "admin01-"]),
                r.chars(URLSAFE, 93)
            ),
        ),
        bare(
            "anthropic-oauth-access-token",
            format!(
                "{}{}AA",
                p(&["sk", "-ant-", "oat01-"]),
                r.chars(URLSAFE, 93)
            ),
        ),
        bare(
            "anthropic-oauth-refresh-token",
            format!(
                "{}{}AA",
                p(&["sk", "-ant-", "ort01-"]),
                r.chars(URLSAFE, 93)
            ),
        ),
        bare(
            "openai-project-key",
            format!(
                "{}{}{}{}",
                p(&["sk", "-proj-"]),
                r.chars(URLSAFE, 74),
                p(&["T3Blbk", "FJ"]),
                r.chars(URLSAFE, 74)
            ),
        ),
        bare(
            "openai-project-key",
            format!("{}{}", p(&["sk", "-svcacct-"]), r.chars(URLSAFE, 120)),
        ),
        bare(
            "openai-legacy-key",
            format!(
                "{}{}{}{}",
                p(&["s", "k-"]),
                r.alnum(20),
                p(&["T3Blbk", "FJ"]),
                r.alnum(20)
            ),
        ),
        bare(
            "google-api-key",
            format!("{}{}", p(&["AI", "za"]), r.chars(URLSAFE, 35)),
        ),
        bare(
            "google-aq-key",
            format!("{}{}", p(&["AQ", ".Ab"]), r.chars(URLSAFE, 60)),
        ),
        bare(
            "openrouter-api-key",
            format!("{}{}", p(&["sk", "-or-v1-"]), r.hex(64)),
        ),
        bare(
            "groq-api-key",
            format!("{}{}", p(&["gs", "k_"]), r.alnum(52)),
        ),
        bare(
            "xai-api-key",
            format!("{}{}", p(&["xa", "i-"]), r.alnum(80)),
        ),
        bare(
            "perplexity-api-key",
            format!("{}{}", p(&["pp", "lx-"]), r.alnum(48)),
        ),
        bare(
            "huggingface-token",
            format!("{}{}", p(&["h", "f_"]), r.alnum(34)),
        ),
        bare(
            "telegram-bot-token",
            format!(
                "{}{}{}",
                r.chars(DIGITS, 10).replacen('0', "7", 1),
                p(&[":", "AA"]),
                r.chars(URLSAFE, 33)
            ),
        ),
        bare(
            "slack-bot-token",
            format!(
                "{}{}-{}-{}",
                p(&["xo", "xb-"]),
                r.chars(DIGITS, 12),
                r.chars(DIGITS, 13),
                r.alnum(24)
            ),
        ),
        bare(
            "slack-user-token",
            format!(
                "{}{}-{}-{}-{}",
                p(&["xo", "xp-"]),
                r.chars(DIGITS, 12),
                r.chars(DIGITS, 12),
                r.chars(DIGITS, 13),
                r.hex(32)
            ),
        ),
        bare(
            "slack-app-token",
            format!(
                "{}A{}-{}-{}",
                p(&["xa", "pp-1-"]),
                r.chars(UPPER, 10),
                r.chars(DIGITS, 13),
                r.hex(64)
            ),
        ),
        bare(
            "slack-webhook-url",
            format!(
                "https://{}T{}/B{}/{}",
                p(&["hooks.", "slack.com/services/"]),
                r.chars(UPPER, 8),
                r.chars(UPPER, 8),
                r.alnum(24)
            ),
        ),
        bare(
            "github-pat",
            format!("{}{}", p(&["gh", "p_"]), r.github_body()),
        ),
        bare(
            "github-oauth-token",
            format!("{}{}", p(&["gh", "o_"]), r.github_body()),
        ),
        bare(
            "github-app-token",
            format!("{}{}", p(&["gh", "s_"]), r.github_body()),
        ),
        bare(
            "github-refresh-token",
            format!("{}{}", p(&["gh", "r_"]), r.alnum(76)),
        ),
        bare(
            "github-fine-grained-pat",
            format!("{}{}_{}", p(&["github", "_pat_"]), r.alnum(22), r.alnum(59)),
        ),
        bare(
            "gitlab-pat",
            format!("{}{}", p(&["gl", "pat-"]), r.alnum(20)),
        ),
        bare(
            "aws-access-key-id",
            format!("{}{}", p(&["AK", "IA"]), r.chars(BASE32, 16)),
        ),
        bare(
            "stripe-key",
            format!("{}{}", p(&["sk", "_live_"]), r.alnum(24)),
        ),
        bare(
            "sendgrid-api-key",
            format!(
                "{}{}.{}",
                p(&["S", "G."]),
                r.chars(URLSAFE, 22),
                r.chars(URLSAFE, 43)
            ),
        ),
        bare("npm-token", format!("{}{}", p(&["np", "m_"]), r.alnum(36))),
        bare(
            "pypi-token",
            format!(
                "{}{}",
                p(&["py", "pi-AgEIcHlwaS5vcmc"]),
                r.chars(URLSAFE, 70)
            ),
        ),
        bare(
            "jwt",
            format!(
                "{}{}.{}{}.{}",
                p(&["ey", "J"]),
                r.chars(URLSAFE, 30),
                p(&["ey", "J"]),
                r.chars(URLSAFE, 60),
                r.chars(URLSAFE, 43)
            ),
        ),
        bare(
            "age-secret-key",
            format!("{}{}", p(&["AGE-SECRET", "-KEY-1"]), r.chars(BECH32, 58)),
        ),
        bare("private-key", pem(r, "OPENSSH")),
        bare("private-key", pem(r, "RSA")),
    ]
}

/// A PEM private key block with real newlines.
pub fn pem(r: &mut FakeRng, kind: &str) -> String {
    let mut s = format!("-----BEGIN {kind} {}-----\n", p(&["PRIVATE", " KEY"]));
    for _ in 0..6 {
        s.push_str(&r.b64(64));
        s.push('\n');
    }
    s.push_str(&format!("-----END {kind} {}-----", p(&["PRIVATE", " KEY"])));
    s
}

/// Secrets recognised only by their context (a credential-like name, a URL, a header).
pub fn contextual_secrets(r: &mut FakeRng) -> Vec<FakeSecret> {
    let pw = format!("{}-{}", r.alnum(8), r.alnum(6));
    vec![
        ctx("generic-assignment", "export DB_PASSWORD=", pw.clone(), ""),
        ctx(
            "generic-assignment",
            "SECRET_TOKEN=",
            format!("{}{}", p(&["s", "k-test-"]), r.hex(16)),
            "",
        ),
        ctx("generic-assignment", "\"apiKey\": \"", r.alnum(32), "\""),
        ctx("generic-assignment", "client_secret = '", r.alnum(40), "'"),
        ctx(
            "connection-string-password",
            "DATABASE_URL=postgres://app:",
            r.alnum(18),
            "@db.internal:5432/app",
        ),
        ctx(
            "url-password",
            "git clone https://deploy:",
            r.alnum(20),
            "@git.example.org/r.git",
        ),
        ctx(
            "authorization-header",
            "curl -H 'Authorization: Bearer ",
            r.alnum(40),
            "' https://api.example.com/v1",
        ),
        ctx(
            "aws-secret-access-key",
            "aws_secret_access_key = ",
            r.b64(40),
            "\n",
        ),
        ctx("mistral-api-key", "MISTRAL_API_KEY=", r.alnum(32), ""),
        ctx(
            "discord-bot-token",
            "DISCORD_BOT_TOKEN=",
            format!("M{}.{}.{}", r.alnum(25), r.alnum(6), r.alnum(27)),
            "",
        ),
        ctx(
            "slack-signing-secret",
            "SLACK_SIGNING_SECRET=",
            r.hex(32),
            "",
        ),
        ctx("twilio-api-key", "TWILIO_API_KEY=SK", r.hex(32), ""),
    ]
}

/// Strings that look secret-ish but are not: hashes, UUIDs, integrity strings, references.
pub fn decoys(r: &mut FakeRng) -> Vec<String> {
    vec![
        r.uuid(),
        r.hex(40),
        r.hex(64),
        format!("sha512-{}==", r.b64(86)),
        format!("commit {} (HEAD -> main)", r.hex(40)),
        "api_key=${OPENAI_API_KEY}".into(),
        "\"apiKey\": process.env.ANTHROPIC_API_KEY".into(),
        "token=<YOUR_TOKEN>".into(),
        format!("\"totalTokens\":{}", r.below(100_000)),
        format!("data:image/png;base64,{}", r.b64(120)),
        format!("\"thinkingSignature\":\"{}\"", r.b64(200)),
        "password: ********".into(),
        format!("session_id={}", r.uuid()),
        format!("task-{}", r.hex(32)),
        format!("integrity sha256-{}", r.b64(44)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_format_valid() {
        let a = provider_secrets(&mut FakeRng::new(1));
        let b = provider_secrets(&mut FakeRng::new(1));
        assert_eq!(a, b);
        for s in &a {
            assert!(s.text.contains(&s.secret));
            assert!(s.secret.len() >= 16, "{}", s.rule);
        }
        assert!(!contextual_secrets(&mut FakeRng::new(2)).is_empty());
        assert!(!decoys(&mut FakeRng::new(3)).is_empty());
    }
}
