//! The redactor end to end on JSONL, values and text.

use moltvault_redact::{FingerprintKey, LiteralSecret, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_testutils::secrets::{FakeRng, contextual_secrets, decoys, pem, provider_secrets};
use secrecy::SecretString;
use serde_json::{Value, json};

mod common;

use common::{redactor, run, tool_result};

fn user_msg(text: &str) -> String {
    json!({"type":"message","id":"517c0541","parentId":null,"message":{"role":"user","content":[{"type":"text","text":text}]}}).to_string()
}

#[test]
fn every_provider_and_contextual_secret_is_redacted_in_a_tool_result() {
    let r = redactor(Mode::Tools);
    let mut rng = FakeRng::new(42);
    let mut all = provider_secrets(&mut rng);
    all.extend(contextual_secrets(&mut rng));
    for s in all {
        let line = tool_result(&format!("output:\n{}\nend", s.text));
        let (out, f) = run(&r, line.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(&s.secret), "{} survived: {out}", s.rule);
        assert!(
            f.iter()
                .any(|f| f.rule_id == s.rule || f.rule_id.starts_with("generic-")),
            "{}: {f:?}",
            s.rule
        );
        let v: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["id"], "4a59b811");
        assert_eq!(v["message"]["toolCallId"], "call_29034630");
        for f in &f {
            assert!(!format!("{f:?}").contains(&s.secret));
        }
    }
}

/// Regression: 3-byte anchors (`hf_`, `SG.`, `AQ.`, `sk-`) after a `\n` inside JSON-encoded
/// tool output were missed because the gate's confirmation ran on escaped bytes.
#[test]
fn short_anchor_tokens_in_double_encoded_output_are_found() {
    let r = redactor(Mode::Tools);
    let mut rng = FakeRng::new(8);
    for s in provider_secrets(&mut rng) {
        let inner = json!({"stdout": format!("line one\n{}\nline three", s.text)}).to_string();
        let twice = json!({"wrapped": inner}).to_string();
        for text in [inner, twice] {
            let (out, _) = run(&r, tool_result(&text).as_bytes());
            let out = String::from_utf8(out).unwrap();
            let probe = s.secret.lines().nth(1).unwrap_or(&s.secret);
            assert!(!out.contains(probe), "{} survived: {out}", s.rule);
        }
    }
}

#[test]
fn decoys_are_left_alone() {
    let r = redactor(Mode::All);
    let mut rng = FakeRng::new(7);
    for _ in 0..20 {
        for d in decoys(&mut rng) {
            let line = tool_result(&d);
            let (out, f) = run(&r, line.as_bytes());
            assert!(f.is_empty(), "{d}: {f:?}");
            assert_eq!(out, line.as_bytes());
        }
    }
}

#[test]
fn planted_sample_tokens_are_found_in_the_real_samples() {
    // Real files written by the real gateways (vendored from the reference samples).
    let base = &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homes");
    let r = redactor(Mode::All);
    for rel in [
        "clawdbot-2026.1.24/agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl",
        "openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl",
    ] {
        let data = std::fs::read(base.join(rel)).unwrap();
        let (out, f) = run(&r, &data);
        assert!(!f.is_empty(), "{rel}");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("sk-test-1234567890abcdef"), "{rel}");
        assert_eq!(
            text.lines().count(),
            String::from_utf8_lossy(&data).lines().count()
        );
        for (a, b) in text.lines().zip(String::from_utf8_lossy(&data).lines()) {
            let (va, vb): (Value, Value) = (
                serde_json::from_str(a).unwrap(),
                serde_json::from_str(b).unwrap(),
            );
            assert_eq!(va.get("id"), vb.get("id"));
            assert_eq!(va.get("parentId"), vb.get("parentId"));
        }
        // Idempotent on real data.
        let (again, f2) = run(&r, &out);
        assert_eq!(again, out);
        assert!(f2.is_empty());
    }
}

#[test]
fn tools_mode_skips_user_text_all_mode_does_not() {
    let secret = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let line = user_msg(&format!("my token is {secret}"));
    let (out, f) = run(&redactor(Mode::Tools), line.as_bytes());
    assert_eq!(out, line.as_bytes());
    assert!(f.is_empty());
    let (out, f) = run(&redactor(Mode::All), line.as_bytes());
    assert!(!String::from_utf8(out).unwrap().contains(&secret));
    assert_eq!(f[0].pointer, "/message/content/0/text");
    assert_eq!(f[0].line, 1);
}

#[test]
fn tool_call_arguments_are_in_scope() {
    let secret = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let line = json!({"type":"message","id":"113d0369","message":{"role":"assistant","content":[
        {"type":"toolCall","id":"call_1","name":"exec","arguments":{"command":format!("gh auth login --with-token {secret}")}}]}}).to_string();
    let (out, f) = run(&redactor(Mode::Tools), line.as_bytes());
    assert!(!String::from_utf8(out).unwrap().contains(&secret));
    assert_eq!(f[0].pointer, "/message/content/0/arguments/command");
}

#[test]
fn structural_fields_are_never_rewritten() {
    // An id that happens to have a token shape stays.
    let tok = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let line = json!({"type":"message","id":tok,"parentId":tok,"message":{"role":"toolResult","toolCallId":tok,
        "content":[{"type":"text","text":"ok"}]}}).to_string();
    let (out, f) = run(&redactor(Mode::All), line.as_bytes());
    assert_eq!(out, line.as_bytes());
    assert!(f.is_empty());
}

#[test]
fn only_the_secret_bytes_change() {
    let mut rng = FakeRng::new(5);
    let s = provider_secrets(&mut rng).remove(0);
    // ensure_ascii-style escapes elsewhere in the line must be kept byte for byte.
    let line = format!(
        r#"{{"type":"message","id":"x1","message":{{"role":"toolResult","content":[{{"type":"text","text":"caf\u00e9 \"q\" \/ KEY={}\n"}}]}},"n":1.50e3}}"#,
        s.secret
    );
    let (out, f) = run(&redactor(Mode::Tools), line.as_bytes());
    assert_eq!(f.len(), 1);
    let expected = line.replace(
        &s.secret,
        &format!("[REDACTED:{}:{}]", f[0].rule_id, f[0].fingerprint),
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn secrets_hidden_by_escapes_are_found() {
    let r = redactor(Mode::All);
    let body = format!(
        "{}{}AA",
        "ant-api03-",
        "x".repeat(0) + &"Ab1-".repeat(23) + "Z"
    );
    // `sk-` written as `\u0073k-`.
    let line = format!(r#"{{"t":"key \u0073k-{body} end"}}"#);
    let (out, f) = run(&r, line.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(f.len(), 1, "{out}");
    assert_eq!(f[0].rule_id, "anthropic-api-key");
    assert!(!out.contains(&body[10..]), "{out}");
    serde_json::from_str::<Value>(&out).unwrap();
}

#[test]
fn whole_pem_block_is_redacted_at_every_escape_depth() {
    let r = redactor(Mode::All);
    let key = pem(&mut FakeRng::new(3), "RSA");
    let body_line = key.lines().nth(2).unwrap().to_string();
    // Depth 1: a string with real newlines. Depth 2: JSON inside the string. Depth 3: again.
    let d1 = json!({"t": key}).to_string();
    let inner = json!({"stdout": key}).to_string();
    let d2 = json!({"t": inner}).to_string();
    let d3 = json!({"t": json!({"wrapped": inner}).to_string()}).to_string();
    for line in [d1, d2, d3] {
        let (out, f) = run(&r, line.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert_eq!(f.len(), 1, "{out}");
        assert!(!out.contains(&body_line), "{out}");
        assert!(!out.contains("END RSA"), "whole block: {out}");
        serde_json::from_str::<Value>(&out).unwrap();
    }
}

#[test]
fn invalid_json_falls_back_to_raw_text() {
    let r = redactor(Mode::Tools);
    let tok = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let line = format!("{{\"broken\": \"{tok}\"\n");
    let (out, f) = run(&r, line.as_bytes());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].pointer, "");
    assert!(!String::from_utf8(out).unwrap().contains(&tok));
    // Invalid UTF-8 around a secret: the bytes stay, the secret goes.
    let mut bad = b"\xff\xfe token ".to_vec();
    bad.extend_from_slice(tok.as_bytes());
    bad.extend_from_slice(b" \xc3\n");
    let (out, f) = run(&r, &bad);
    assert_eq!(f.len(), 1);
    assert!(out.starts_with(b"\xff\xfe token [REDACTED:github-pat:"));
    assert!(out.ends_with(b"] \xc3\n"));
}

#[test]
fn framing_edge_cases() {
    let r = redactor(Mode::All);
    assert_eq!(run(&r, b"").0, b"");
    assert_eq!(run(&r, b"\n\n\n").0, b"\n\n\n");
    let tok = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    // CRLF kept, last line without newline kept without.
    let input = format!("{{\"a\":\"{tok}\"}}\r\n{{\"b\":\"{tok}\"}}");
    let (out, f) = run(&r, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].line, 2);
    assert!(out.contains("\"}\r\n{"));
    assert!(out.ends_with("]\"}"));
    // 60k blank lines, long space runs.
    let blank = "\n".repeat(60_000) + &" ".repeat(100_000);
    let t = std::time::Instant::now();
    assert_eq!(run(&r, blank.as_bytes()).0, blank.as_bytes());
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn big_single_line_is_handled() {
    // A 20 MB single-line record with one secret at the end (100 MB behaves the same; the
    // record is held in memory once, plus its output).
    let r = redactor(Mode::All);
    let tok = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let text = "lorem ipsum ".repeat(20 << 20 >> 4) + &tok;
    let line = json!({"t": text}).to_string() + "\n";
    let (out, f) = run(&r, line.as_bytes());
    assert_eq!(f.len(), 1);
    assert_eq!(
        out.len(),
        line.len() - tok.len() + "[REDACTED:github-pat:00000000]".len()
    );
}

/// A reader that returns its data in the given chunk sizes.
struct Chunked<'a> {
    data: &'a [u8],
    cuts: Vec<usize>,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() {
            return Ok(0);
        }
        let n = self
            .cuts
            .pop()
            .unwrap_or(self.data.len())
            .min(self.data.len())
            .min(buf.len())
            .max(1);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn same_result_at_every_read_split_point() {
    let r = redactor(Mode::All);
    let mut rng = FakeRng::new(11);
    let secrets = provider_secrets(&mut rng);
    let input = format!(
        "{}\n{}\n{}\r\nnot json {}\n{}",
        tool_result(&secrets[0].text),
        user_msg(&secrets[3].text),
        tool_result(&pem(&mut rng, "EC")),
        secrets[9].text,
        tool_result(&secrets[12].text)
    );
    let (whole, wf) = run(&r, input.as_bytes());
    // The same bytes redacted in memory, without a read buffer.
    let (mut out, mut f) = (Vec::new(), Vec::new());
    let stats = r
        .redact_jsonl_bytes(input.as_bytes(), &mut out, &mut f)
        .unwrap();
    assert_eq!((&out, &f), (&whole, &wf));
    assert_eq!(stats.lines, 5);
    for k in 0..=input.len() {
        let mut out = Vec::new();
        let mut f = Vec::new();
        let reader = Chunked {
            data: input.as_bytes(),
            cuts: vec![input.len() - k, k],
        };
        r.redact_jsonl(reader, &mut out, &mut f).unwrap();
        assert_eq!(out, whole, "split at {k}");
        assert_eq!(f, wf);
    }
    // One byte at a time.
    let mut out = Vec::new();
    r.redact_jsonl(
        Chunked {
            data: input.as_bytes(),
            cuts: vec![1; input.len()],
        },
        &mut out,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(out, whole);
}

#[test]
fn same_secret_same_tag_and_literals_in_every_form() {
    let gw = "Gw-t0k:en/with+odd&chars\"x".to_string();
    let mut opts = RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([1; 32]));
    opts.literals.push(LiteralSecret::new(
        "gateway-token",
        SecretString::from(gw.clone()),
    ));
    let r = Redactor::new(&RuleSet::builtin(), opts).unwrap();
    let url = gw
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect::<String>();
    let input = format!(
        "{}\n{}\n{}\n",
        json!({"t": format!("raw {gw} end")}),
        json!({"t": format!("url ?token={url}")}),
        json!({"t": json!({"inner": gw}).to_string()}),
    );
    let (out, f) = run(&r, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(f.len(), 3, "{out}");
    assert!(f.iter().all(|f| f.rule_id == "gateway-token"));
    assert!(f.iter().all(|x| x.fingerprint == f[0].fingerprint));
    assert_eq!(f[0].fingerprint, r.fingerprint(gw.as_bytes()));
    assert!(!out.contains("odd&chars"), "{out}");
    assert!(!out.contains("odd%26chars"), "{out}");
    for l in out.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
}

#[test]
fn value_and_text_apis() {
    let r = redactor(Mode::Tools);
    let tok = format!(
        "{}{}",
        ["gh", "p_"].concat(),
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o50smkjE"
    );
    let mut v: Value = serde_json::from_str(&tool_result(&format!("t={tok}"))).unwrap();
    let mut f = Vec::new();
    assert_eq!(r.redact_value(&mut v, &mut f), 2);
    assert!(!v.to_string().contains(&tok));
    assert_eq!(f[0].pointer, "/message/content/0/text");
    assert_eq!(f[1].pointer, "/message/details/aggregated");
    let mut cfg = json!({"channels":{"telegram":{"botToken": format!("x{}9", FakeRng::new(4).alnum(30))}}, "details": {}});
    let mut r2 = redactor(Mode::All);
    assert_eq!(r2.redact_value(&mut cfg, &mut Vec::new()), 1);
    assert!(
        cfg["channels"]["telegram"]["botToken"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:generic-credential-field:")
    );
    r2 = redactor(Mode::All);
    let red = r2.redact_text(&format!("export GITHUB_TOKEN={tok}\nok"));
    assert!(!red.text.contains(&tok));
    assert!(red.text.ends_with("\nok"));
    assert_eq!(red.findings.len(), 1);
    assert_eq!(r2.redact_text(&red.text).text, red.text);
}

#[test]
fn user_rules_and_allowlist() {
    let text = r#"
[[rules]]
id = "acme-key"
description = "ACME internal key"
regex = '''(?P<secret>acme_[a-z0-9]{20})'''
keywords = ["acme_"]
examples = ["acme_{{hex:20}}"]
negative_examples = ["acme_short"]

[allowlist]
regexes = ['^sk-test-']
"#;
    let set = RuleSet::with_user_file(std::path::Path::new("rules.toml"), text).unwrap();
    let r = Redactor::new(
        &set,
        RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([2; 32])),
    )
    .unwrap();
    let red = r.redact_text("k=acme_0123456789abcdef0123 SECRET_TOKEN=sk-test-1234567890abcdef");
    assert_eq!(red.findings.len(), 1, "{:?}", red.findings);
    assert_eq!(red.findings[0].rule_id, "acme-key");
    // Allowlisting by fingerprint.
    let fp = r.fingerprint(b"acme_0123456789abcdef0123");
    let text2 = format!("{text}fingerprints = [\"{fp}\"]\n");
    let set = RuleSet::with_user_file(std::path::Path::new("rules.toml"), &text2).unwrap();
    let r = Redactor::new(
        &set,
        RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([2; 32])),
    )
    .unwrap();
    assert!(
        r.redact_text("k=acme_0123456789abcdef0123")
            .findings
            .is_empty()
    );
}

#[test]
fn redactor_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Redactor>();
}

/// A reader that hands out at most `max` bytes per call, like a pipe.
struct Trickle<'a> {
    data: &'a [u8],
    max: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.max.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The block reader grows its 1 MiB block for longer records and keeps them whole, whatever
/// the read sizes; a last line without a newline stays without.
#[test]
fn records_longer_than_the_read_block_survive_trickled_reads() {
    let r = redactor(Mode::Tools);
    let mut rng = FakeRng::new(11);
    let secret = format!("{}{}", ["gh", "p_"].concat(), rng.github_body());
    let mut big = String::new();
    while big.len() < 2_500_000 {
        big.push_str(&format!("{} {}\n", rng.uuid(), rng.hex(40)));
    }
    big.insert_str(1_300_000, &format!(" token {secret} "));
    let mut input = tool_result(&big).into_bytes();
    input.push(b'\n');
    input.extend_from_slice(tool_result("short one").as_bytes());
    input.push(b'\n');
    input.extend_from_slice(tool_result(&format!("last {secret}")).as_bytes());
    let (whole, f) = run(&r, &input);
    // Each tool result holds its text twice (content and details.aggregated).
    assert_eq!(f.len(), 4, "{f:?}");
    let mut out = Vec::new();
    let stats = r
        .redact_jsonl(
            Trickle {
                data: &input,
                max: 65_537,
            },
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
    assert_eq!(out, whole);
    assert_eq!(stats.lines, 3);
    assert_eq!(stats.bytes, input.len() as u64);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains(&secret));
    assert!(!text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}
