//! A seeded generator of realistic transcripts in the real entry schema (see the samples in
//! the reference folder): user turns, assistant tool calls (exec / read / web_fetch), tool
//! results with source code, logs, base64, hashes, UUIDs, JSON-encoded tool output and
//! ensure_ascii escapes, environment dumps with credential-like names but no secret, the real
//! schema's extras (`details.aggregated` repeating the tool output, `__openclaw.runId`,
//! `idempotencyKey`, cache-ttl and model-snapshot custom entries), plus planted fake secrets
//! (about one per 2,000 lines) with labels.

use moltvault_testutils::secrets::{
    FakeRng, FakeSecret, contextual_secrets, decoys, provider_secrets,
};
use serde_json::json;

/// A planted secret: its class, the rule expected, and the secret text.
#[derive(Debug, Clone)]
pub struct Planted {
    pub provider: bool,
    pub secret: String,
    pub line: usize,
}

const WORDS: &[&str] = &[
    "fn",
    "let",
    "mut",
    "self",
    "return",
    "match",
    "impl",
    "struct",
    "pub",
    "use",
    "config",
    "value",
    "result",
    "error",
    "buffer",
    "session",
    "message",
    "handler",
    "request",
    "response",
    "token_count",
    "parse",
    "write",
    "read",
    "stream",
    "cache",
    "index",
    "offset",
    "len",
    "map",
    "the",
    "a",
    "of",
    "to",
    "in",
    "is",
    "for",
    "with",
    "on",
    "and",
    "that",
    "this",
    "from",
    "Token",
    "password_hint",
    "secret_manager",
    "api",
    "key",
    "tokenizer",
    "authorize",
    "auth",
];

fn code(r: &mut FakeRng, lines: usize) -> String {
    let mut s = String::new();
    for i in 0..lines {
        let indent = "    ".repeat(r.below(4));
        let n = 3 + r.below(9);
        let words: Vec<&str> = (0..n).map(|_| WORDS[r.below(WORDS.len())]).collect();
        match i % 7 {
            0 => s.push_str(&format!("{indent}// {}\n", words.join(" "))),
            1 => s.push_str(&format!(
                "{indent}let {} = {}({});\n",
                words[0],
                words[1],
                words[2..].join(", ")
            )),
            2 => s.push_str(&format!("{indent}if {} > {} {{\n", words[0], r.below(1000))),
            3 => s.push_str(&format!(
                "{indent}{}.{}(\"{}\")?;\n",
                words[0],
                words[1],
                words[2..].join(" ")
            )),
            _ => s.push_str(&format!("{indent}{}\n", words.join(" "))),
        }
    }
    s
}

fn log(r: &mut FakeRng, lines: usize) -> String {
    let mut s = String::new();
    for _ in 0..lines {
        let lvl = ["INFO", "DEBUG", "WARN", "ERROR"][r.below(4)];
        s.push_str(&format!(
            "2026-11-25T18:{:02}:{:02}.{:03}Z {lvl} req={} commit={} took={}ms path=/api/v1/items/{}\n",
            r.below(60),
            r.below(60),
            r.below(1000),
            r.uuid(),
            r.hex(40),
            r.below(900),
            r.below(99999)
        ));
    }
    s
}

fn tool_output(r: &mut FakeRng) -> String {
    let n = r.below(60);
    match r.below(10) {
        // Environment dumps and config snippets: credential-like names with values that are
        // references, numbers, paths or words (some reach stage B and must not be flagged).
        0 if r.below(3) == 0 => env_dump(r),
        0..=3 => code(r, 20 + n),
        4..=5 => log(r, 10 + n),
        6 => format!("data:image/png;base64,{}", r.b64(2000 + n * 60)),
        7 => {
            let mut s = String::new();
            for d in decoys(r) {
                s.push_str(&d);
                s.push('\n');
            }
            s
        }
        8 => json!({"status": 200, "headers": {"content-type": "application/json", "etag": r.hex(32)},
            "body": code(r, 15)}).to_string(),
        _ => format!("total {}\n-rw-r--r-- 1 user user {} Nov 25 18:00 README.md\n{}", r.below(999), r.below(99999), code(r, 10)),
    }
}

fn env_dump(r: &mut FakeRng) -> String {
    let lines = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin".to_string(),
        format!(
            "HOME=/home/user\nPWD=/home/user/clawd/{}",
            WORDS[r.below(WORDS.len())]
        ),
        "OPENAI_API_KEY=${OPENAI_API_KEY}".into(),
        format!("TOKEN_TTL={}", r.below(86400)),
        format!("max_tokens: {}", r.below(8192)),
        "GIT_ASKPASS=/usr/lib/git-core/git-gui--askpass".into(),
        "  \"tokenizer\": \"cl100k_base\",".into(),
        format!("password_min_length = {}", 8 + r.below(8)),
        "secret_name = \"prod/db\"".into(),
        "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}".into(),
        format!(
            "  \"token_type\": \"bearer\", \"expires_in\": {}",
            r.below(7200)
        ),
        "The access token expires after an hour; refresh it with the refresh token.".into(),
        format!("credentials_file = \"~/.config/gcloud/{}.json\"", r.hex(8)),
        "SLACK_BOT_TOKEN=xoxb-your-token-here".into(),
        format!("session_token_count={}", r.below(99)),
    ];
    let mut s = String::new();
    for _ in 0..6 + r.below(10) {
        s.push_str(&lines[r.below(lines.len())]);
        s.push('\n');
    }
    s
}

/// Builds one entry line; `plant` is placed in the tool output when given.
fn entry(r: &mut FakeRng, i: usize, parent: &str, plant: Option<&FakeSecret>) -> String {
    let id = r.hex(8);
    let ts = format!(
        "2026-11-25T18:{:02}:{:02}.{:03}Z",
        (i / 60) % 60,
        i % 60,
        r.below(1000)
    );
    let kind = if plant.is_some() { 2 } else { r.below(5) };
    let v = match kind {
        0 if r.below(3) == 0 => match r.below(2) {
            0 => {
                json!({"type":"custom","customType":"openclaw.cache-ttl","data":{"prunedToolResults":[],
                "ambiguousToolResultBaseKeys":[],"frozenToolResults":[{"key":format!("tool:call_{}:1795629963904", r.hex(8)),
                "sourceHash":r.b64(43)}]},"id":r.uuid(),"parentId":parent,"timestamp":ts})
            }
            _ => {
                json!({"type":"custom","customType":"model-snapshot","data":{"timestamp":1795629961166u64,
                "provider":"custom-127-0-0-1-18555","modelApi":"openai-completions","modelId":"fake-model"},
                "id":r.uuid(),"parentId":parent,"timestamp":ts})
            }
        },
        0 => json!({"type":"message","id":id,"parentId":parent,"timestamp":ts,
            "message":{"role":"user","content":[{"type":"text","text":format!("please {} the {}", WORDS[r.below(WORDS.len())], WORDS[r.below(WORDS.len())])}],"timestamp":1795630384998u64,
                "idempotencyKey":format!("{}:user", r.uuid()),"__openclaw":{"senderIsOwner":true}}}),
        1 => {
            let (name, args) = match r.below(3) {
                0 => (
                    "exec",
                    json!({"command": format!("cargo test -p {} -- --nocapture", WORDS[r.below(WORDS.len())])}),
                ),
                1 => (
                    "read",
                    json!({"path": format!("/home/user/clawd/src/{}.rs", WORDS[r.below(WORDS.len())])}),
                ),
                _ => (
                    "web_fetch",
                    json!({"url": format!("https://docs.example.org/{}/{}?q={}", WORDS[r.below(WORDS.len())], r.hex(8), r.below(99))}),
                ),
            };
            json!({"type":"message","id":id,"parentId":parent,"timestamp":ts,
                "message":{"role":"assistant","content":[
                    {"type":"thinking","thinking":code(r, 3),"thinkingSignature":r.b64(344)},
                    {"type":"toolCall","id":format!("call_{}", r.hex(8)),"name":name,"arguments":args}],
                "api":"openai-completions","provider":"fake","model":"fake-model",
                "usage":{"input":r.below(9000),"output":r.below(900),"cacheRead":0,"cacheWrite":0,"totalTokens":r.below(9999),
                    "cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},"stopReason":"toolUse","timestamp":1795630385001u64,
                "responseId":format!("chatcmpl-{}", r.hex(12)),"__openclaw":{"runId":r.uuid()}}})
        }
        _ => {
            let mut out = tool_output(r);
            if let Some(p) = plant {
                let at = r.below(out.len().max(1));
                let at = (0..=at)
                    .rev()
                    .find(|&k| out.is_char_boundary(k))
                    .unwrap_or(0);
                out.insert_str(at, &format!("\n{}\n", p.text));
            }
            // A quarter of tool outputs are themselves JSON-encoded.
            if r.below(4) == 0 {
                out = json!({"stdout": out, "exitCode": 0}).to_string();
            }
            json!({"type":"message","id":id,"parentId":parent,"timestamp":ts,
                "message":{"role":"toolResult","toolCallId":format!("call_{}", r.hex(8)),"toolName":"exec",
                    "content":[{"type":"text","text":out}],
                    "details":{"status":"completed","exitCode":0,"exitSignal":null,"exitReason":"exit","durationMs":r.below(900),
                        "aggregated":out,"noOutputTimedOut":false,"cwd":"/home/user/clawd"},
                    "isError":false,"timestamp":1795630385062u64,"__openclaw":{"runId":r.uuid()}}})
        }
    };
    let s = v.to_string();
    // 30% of records written ensure_ascii-style (non-ASCII as \u escapes), like other encoders.
    if r.below(10) < 3 {
        let mut e = String::with_capacity(s.len());
        for c in s.chars() {
            if c.is_ascii() {
                e.push(c);
            } else {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    e.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        e
    } else {
        s
    }
}

/// Generates about `bytes` of JSONL; with `plant`, one secret per ~`every` lines.
pub fn corpus(seed: u64, bytes: usize, plant: bool, every: usize) -> (Vec<u8>, Vec<Planted>) {
    let mut r = FakeRng::new(seed);
    let mut out = Vec::with_capacity(bytes + 65536);
    let mut planted = Vec::new();
    out.extend_from_slice(
        json!({"type":"session","version":3,"id":r.uuid(),"timestamp":"2026-11-25T18:00:00.000Z","cwd":"/home/user/clawd"})
            .to_string()
            .as_bytes(),
    );
    out.push(b'\n');
    let mut parent = r.hex(8);
    let mut i = 1;
    let mut pool: Vec<(bool, FakeSecret)> = Vec::new();
    while out.len() < bytes {
        i += 1;
        let p = if plant && r.below(every) == 0 {
            if pool.is_empty() {
                pool.extend(provider_secrets(&mut r).into_iter().map(|s| (true, s)));
                pool.extend(contextual_secrets(&mut r).into_iter().map(|s| (false, s)));
            }
            let k = r.below(pool.len());
            Some(pool.swap_remove(k))
        } else {
            None
        };
        let line = entry(&mut r, i, &parent, p.as_ref().map(|x| &x.1));
        if let Some((provider, s)) = p {
            planted.push(Planted {
                provider,
                secret: s.secret,
                line: i,
            });
        }
        parent = r.hex(8);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    (out, planted)
}
