//! Session-4 rules end to end: GitHub checksums, base64-encoded PEM keys, and key-path rules
//! (WhatsApp/Baileys credential files, Claude Code's OAuth file) as an agent's tool prints them.

use std::io::Read;

use moltvault_redact::{Finding, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_testutils::secrets::FakeRng;
use serde_json::{Value, json};

mod common;

use common::{redactor, tool_result};

fn run(r: &Redactor, input: &[u8]) -> (String, Vec<Finding>) {
    let (out, f) = common::run(r, input);
    (String::from_utf8(out).unwrap(), f)
}

/// A 32-byte key as Baileys' `BufferJSON.replacer` writes it.
fn buffer(rng: &mut FakeRng) -> Value {
    json!({"type": "Buffer", "data": format!("{}=", rng.b64(43))})
}

/// The private and public values of a generated `creds.json`.
struct Creds {
    doc: Value,
    private: Vec<String>,
    public: Vec<String>,
}

/// A `creds.json` as Baileys' `useMultiFileAuthState` stores it after pairing.
fn creds(rng: &mut FakeRng) -> Creds {
    let mut private = Vec::new();
    let mut public = Vec::new();
    let mut pair = |rng: &mut FakeRng| {
        let (p, q) = (buffer(rng), buffer(rng));
        private.push(p["data"].as_str().unwrap().to_string());
        public.push(q["data"].as_str().unwrap().to_string());
        json!({"private": p, "public": q})
    };
    let noise = pair(rng);
    let ephemeral = pair(rng);
    let identity = pair(rng);
    let prekey = pair(rng);
    let signature = buffer(rng);
    let adv = format!("{}=", rng.b64(43));
    let routing = buffer(rng);
    let acc_key = buffer(rng);
    let dev_sig = buffer(rng);
    let details = buffer(rng);
    let identifier_key = buffer(rng);
    for b in [&signature, &routing, &acc_key, &dev_sig] {
        private.push(b["data"].as_str().unwrap().to_string());
    }
    private.push(adv.clone());
    for b in [&details, &identifier_key] {
        public.push(b["data"].as_str().unwrap().to_string());
    }
    let doc = json!({
        "noiseKey": noise,
        "pairingEphemeralKeyPair": ephemeral,
        "signedIdentityKey": identity,
        "signedPreKey": {"keyPair": prekey, "signature": signature, "keyId": 1},
        "registrationId": 16143,
        "advSecretKey": adv,
        "processedHistoryMessages": [],
        "nextPreKeyId": 31,
        "firstUnuploadedPreKeyId": 31,
        "accountSyncCounter": 0,
        "accountSettings": {"unarchiveChats": false},
        "registered": false,
        "routingInfo": routing,
        "me": {"id": "15550001111:12@s.whatsapp.net", "name": "Molt"},
        "account": {"details": details, "accountSignatureKey": acc_key,
            "accountSignature": buffer(rng), "deviceSignature": dev_sig},
        "signalIdentities": [{"identifier": {"name": "15550001111:12@s.whatsapp.net", "deviceId": 0},
            "identifierKey": identifier_key}],
        "platform": "android",
        "lastAccountSyncTimestamp": 1795630000
    });
    Creds {
        doc,
        private,
        public,
    }
}

/// The JSON document printed after the first line of a tool's text.
fn printed_doc(text: &str) -> Value {
    let body = text.split_once('\n').map_or(text, |(_, b)| b);
    serde_json::from_str(body).unwrap()
}

#[test]
fn cat_creds_json_loses_every_private_field_and_keeps_the_public_ones() {
    let mut rng = FakeRng::new(2026);
    let c = creds(&mut rng);
    let printed = format!(
        "$ cat ~/.openclaw/credentials/whatsapp/default/creds.json\n{}",
        serde_json::to_string_pretty(&c.doc).unwrap()
    );
    let line = format!("{}\n", tool_result(&printed));
    for mode in [Mode::Tools, Mode::All] {
        let r = redactor(mode);
        assert!(r.may_match(line.as_bytes()));
        let (out, f) = run(&r, line.as_bytes());
        for secret in &c.private {
            assert!(
                !out.contains(secret.as_str()),
                "{mode:?}: a private value survived"
            );
        }
        for public in &c.public {
            // Twice: content and details.aggregated.
            assert_eq!(
                out.matches(public.as_str()).count(),
                2,
                "{mode:?}: {public}"
            );
        }
        assert_eq!(out.lines().count(), 1);
        let v: Value = serde_json::from_str(out.trim_end()).unwrap();
        let text = v["message"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text, v["message"]["details"]["aggregated"]);
        // The printed document is still JSON, with placeholders where the secrets were.
        let doc = printed_doc(text);
        assert_eq!(doc["registrationId"], 16143);
        assert_eq!(doc["me"], c.doc["me"]);
        assert_eq!(doc["noiseKey"]["public"], c.doc["noiseKey"]["public"]);
        for ptr in [
            "/noiseKey/private/data",
            "/pairingEphemeralKeyPair/private/data",
            "/signedIdentityKey/private/data",
            "/signedPreKey/keyPair/private/data",
            "/signedPreKey/signature/data",
            "/advSecretKey",
            "/routingInfo/data",
            "/account/accountSignatureKey/data",
            "/account/deviceSignature/data",
        ] {
            let got = doc.pointer(ptr).and_then(Value::as_str).unwrap();
            assert!(got.starts_with("[REDACTED:whatsapp-key:"), "{ptr}: {got}");
        }
        assert_eq!(doc["noiseKey"]["private"]["type"], "Buffer");
        assert_eq!(f.len(), 2 * c.private.len(), "{f:?}");
        assert!(f.iter().all(|f| f.rule_id == "whatsapp-key"), "{f:?}");
        assert_eq!(f[0].pointer, "/message/content/0/text");
        // Idempotent.
        let (again, f2) = run(&r, out.as_bytes());
        assert_eq!(again, out);
        assert!(f2.is_empty(), "{f2:?}");
    }
}

#[test]
fn the_value_api_redacts_the_same_record_the_same_way() {
    let mut rng = FakeRng::new(7);
    let c = creds(&mut rng);
    let printed = format!(
        "$ cat creds.json\n{}",
        serde_json::to_string_pretty(&c.doc).unwrap()
    );
    let line = tool_result(&printed);
    let r = redactor(Mode::Tools);
    let (out, f) = run(&r, line.as_bytes());
    let mut v: Value = serde_json::from_str(&line).unwrap();
    let mut fv: Vec<Finding> = Vec::new();
    let n = r.redact_value(&mut v, &mut fv);
    assert_eq!(n, f.len());
    assert_eq!(v, serde_json::from_str::<Value>(&out).unwrap());
    assert_eq!(fv, f);
    // Idempotent on values too.
    let before = v.clone();
    assert_eq!(r.redact_value(&mut v, &mut Vec::new()), 0);
    assert_eq!(v, before);
}

#[test]
fn creds_escaped_twice_and_creds_as_structure_are_redacted() {
    let mut rng = FakeRng::new(99);
    let c = creds(&mut rng);
    let r = redactor(Mode::Tools);
    // A tool that returns JSON whose `stdout` string holds the file: escaped twice in the line.
    let nested = json!({"stdout": serde_json::to_string_pretty(&c.doc).unwrap(), "code": 0});
    let line = tool_result(&nested.to_string());
    assert!(line.contains("\\\\\\\"noiseKey"));
    let (out, f) = run(&r, line.as_bytes());
    for secret in &c.private {
        assert!(!out.contains(secret.as_str()));
    }
    for public in &c.public {
        assert!(out.contains(public.as_str()));
    }
    assert_eq!(f.len(), 2 * c.private.len(), "{f:?}");
    let (again, _) = run(&r, out.as_bytes());
    assert_eq!(again, out);

    // The parsed file kept as structure under `details` (a read tool's JSON result).
    let rec = json!({"type": "message", "id": "b1", "message": {"role": "toolResult",
        "toolCallId": "c1", "toolName": "read", "content": [{"type": "text", "text": "ok"}],
        "details": {"json": c.doc}}});
    let line = rec.to_string();
    let (out, f) = run(&r, line.as_bytes());
    let mut v = rec.clone();
    let mut fv: Vec<Finding> = Vec::new();
    r.redact_value(&mut v, &mut fv);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), v);
    assert_eq!(f, fv);
    let d = &v["message"]["details"]["json"];
    for ptr in [
        "/noiseKey/private/data",
        "/signedPreKey/keyPair/private/data",
        "/advSecretKey",
        "/account/deviceSignature/data",
        "/signedPreKey/signature/data",
    ] {
        let got = d.pointer(ptr).and_then(Value::as_str).unwrap();
        assert!(got.starts_with("[REDACTED:whatsapp-key:"), "{ptr}: {got}");
    }
    assert_eq!(d["noiseKey"]["public"], c.doc["noiseKey"]["public"]);
    assert_eq!(d["registrationId"], 16143);
    assert_eq!(
        f.iter()
            .find(|f| f.pointer.ends_with("/noiseKey/private/data"))
            .map(|f| f.pointer.as_str()),
        Some("/message/details/json/noiseKey/private/data")
    );
}

#[test]
fn pre_key_and_app_state_files_and_lone_values() {
    let mut rng = FakeRng::new(5);
    let r = redactor(Mode::Tools);
    let (p, q) = (buffer(&mut rng), buffer(&mut rng));
    let pre_key = json!({"private": p, "public": q});
    let k = buffer(&mut rng);
    let app_state = json!({"keyData": k, "fingerprint": {"rawId": 12, "currentIndex": 3,
        "deviceIndexes": [0, 1]}, "timestamp": "1795630000000"});
    for (doc, secret, kept) in [
        (&pre_key, &p["data"], Some(&q["data"])),
        (&app_state, &k["data"], None),
    ] {
        let line = tool_result(&format!(
            "$ cat pre-key-7.json\n{}",
            serde_json::to_string_pretty(doc).unwrap()
        ));
        let (out, f) = run(&r, line.as_bytes());
        assert!(!out.contains(secret.as_str().unwrap()), "{out}");
        if let Some(kept) = kept {
            assert!(out.contains(kept.as_str().unwrap()));
        }
        assert!(f.iter().all(|f| f.rule_id == "whatsapp-prekey"), "{f:?}");
        assert_eq!(f.len(), 2);
    }
    // A bare `private` string (not a Buffer) is not trusted.
    let plain = tool_result(&json!({"private": format!("{}=", rng.b64(43))}).to_string());
    assert!(run(&r, plain.as_bytes()).1.is_empty());
    // `advSecretKey` is a keyword of its own: found alone, the same way by both APIs.
    let lone = tool_result(&json!({"advSecretKey": format!("{}=", rng.b64(43))}).to_string());
    let (out, f) = run(&r, lone.as_bytes());
    assert_eq!(f.len(), 2, "{f:?}");
    let mut v: Value = serde_json::from_str(&lone).unwrap();
    assert_eq!(r.redact_value(&mut v, &mut Vec::new()), 2);
    assert_eq!(v, serde_json::from_str::<Value>(&out).unwrap());
    // Without any keyword of the rule in the document (no Buffer, no advSecretKey), a bare
    // `routingInfo` string is not trusted.
    let bare = tool_result(&json!({"routingInfo": format!("{}=", rng.b64(43))}).to_string());
    assert!(run(&r, bare.as_bytes()).1.is_empty());
}

#[test]
fn claude_credentials_file_tokens_are_redacted_whatever_their_shape() {
    let mut rng = FakeRng::new(3);
    let r = redactor(Mode::Tools);
    let access = format!("{}{}", ["sk-ant-", "oat01-"].concat(), rng.alnum(95));
    // A refresh token of a shape no other rule knows.
    let refresh = format!("rt{}", rng.alnum(60));
    let doc = json!({"claudeAiOauth": {"accessToken": access, "refreshToken": refresh,
        "expiresAt": 1795630385062u64, "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max"}});
    let line = tool_result(&format!(
        "$ cat ~/.claude/.credentials.json\n{}",
        serde_json::to_string_pretty(&doc).unwrap()
    ));
    let (out, f) = run(&r, line.as_bytes());
    assert!(!out.contains(&access) && !out.contains(&refresh));
    assert!(out.contains("user:inference") && out.contains("1795630385062"));
    assert!(f.iter().any(|f| f.rule_id == "claude-oauth-token"), "{f:?}");
    assert_eq!(f.len(), 4, "{f:?}");
    let (again, _) = run(&r, out.as_bytes());
    assert_eq!(again, out);
}

/// The 36-character body of a classic GitHub token with its CRC32 checksum.
fn github_body(random: &str) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut crc = crc32(random.as_bytes());
    let mut sum = [b'0'; 6];
    for s in sum.iter_mut().rev() {
        *s = B62[(crc % 62) as usize];
        crc /= 62;
    }
    format!("{random}{}", std::str::from_utf8(&sum).unwrap())
}

/// CRC-32 (IEEE), bit by bit: an independent check of the crate's table-driven one.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn github_tokens_need_a_valid_checksum() {
    let r = redactor(Mode::All);
    let mut rng = FakeRng::new(1);
    let random = rng.alnum(30);
    let good = github_body(&random);
    // The same body with its last checksum character changed.
    let mut bad = good.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'x' { 'y' } else { 'x' });
    for prefix in [
        ["gh", "p_"],
        ["gh", "o_"],
        ["gh", "s_"],
        ["gh", "u_"],
        ["gh", "r_"],
    ] {
        let p = prefix.concat();
        let t = r.redact_text(&format!("token {p}{good} ok"));
        assert_eq!(t.findings.len(), 1, "{p}");
        assert!(
            t.findings[0].rule_id.starts_with("github-"),
            "{:?}",
            t.findings
        );
        // A lookalike with a wrong checksum is not a GitHub token…
        let t = r.redact_text(&format!("fixture {p}{bad} ok"));
        assert!(t.findings.is_empty(), "{p}: {:?}", t.findings);
        // …but an assignment to a credential name still hides it.
        let t = r.redact_text(&format!("export GITHUB_TOKEN={p}{bad}"));
        assert_eq!(t.findings.len(), 1);
        assert_eq!(t.findings[0].rule_id, "generic-assignment");
    }
    // The testutils generator makes valid ones.
    let body = FakeRng::new(9).github_body();
    assert_eq!(body, github_body(&body[..30]));
}

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_encoded_pem_keys_are_redacted_whole() {
    let r = redactor(Mode::Tools);
    let mut rng = FakeRng::new(17);
    let pem = moltvault_testutils::secrets::pem(&mut rng, "RSA");
    let one_line = b64(pem.as_bytes());
    assert!(one_line.starts_with("LS0tLS1CRUdJTi"));
    let wrapped: Vec<String> = one_line
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let wrapped = wrapped.join("\n");
    for printed in [
        format!("$ base64 id_rsa\n{wrapped}\ndone"),
        format!("KEY_B64={one_line}\nnext"),
        format!("apiVersion: v1\nkind: Secret\ndata:\n  tls.key: {one_line}\n"),
    ] {
        let line = tool_result(&printed);
        let (out, f) = run(&r, line.as_bytes());
        // No piece of the run survives (every 24-character window checked).
        for w in one_line.as_bytes().windows(24).step_by(8) {
            assert!(!out.contains(std::str::from_utf8(w).unwrap()), "{out}");
        }
        assert!(f.iter().all(|f| f.rule_id == "private-key-base64"), "{f:?}");
        assert_eq!(f.len(), 2);
        let v: Value = serde_json::from_str(&out).unwrap();
        let text = v["message"]["content"][0]["text"].as_str().unwrap();
        // Every line that is not part of the run is kept.
        for l in printed.lines() {
            if !one_line.contains(l) && !l.contains(&one_line[..20]) {
                assert!(text.contains(l), "{l:?} lost: {text}");
            }
        }
        let (again, _) = run(&r, out.as_bytes());
        assert_eq!(again, out);
    }
    // A base64 public key or certificate stays.
    let public = b64(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        rng.b64(200)
    )
    .as_bytes());
    let (out, f) = run(&r, tool_result(&public).as_bytes());
    assert!(f.is_empty() && out.contains(&public), "{f:?}");
}

/// Yields the input in two reads split at `at`.
struct Split<'a> {
    data: &'a [u8],
    at: usize,
    pos: usize,
}

impl Read for Split<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = if self.pos < self.at {
            self.at
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn creds_record_gives_the_same_output_at_every_split_point() {
    let mut rng = FakeRng::new(31);
    let c = creds(&mut rng);
    let mut input = b"{\"type\":\"session\",\"id\":\"s\"}\n".to_vec();
    input.extend_from_slice(tool_result(&c.doc.to_string()).as_bytes());
    input.push(b'\n');
    let r = redactor(Mode::Tools);
    let (whole, _) = run(&r, &input);
    assert!(!whole.contains(c.private[0].as_str()));
    for at in 0..=input.len() {
        let mut out = Vec::new();
        r.redact_jsonl(
            Split {
                data: &input,
                at,
                pos: 0,
            },
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out, whole.as_bytes(), "split at {at}");
    }
}

#[test]
fn user_rule_files_can_declare_key_path_rules() {
    let text = r#"
[[rules]]
id = "vendor-session"
description = "a vendor's session secret, by key path"
paths = ["vendor.session.secret"]
value = "string"
keywords = ["vendor"]
examples = ['{"vendor":{"session":{"secret":"Zm9vYmFyYmF6cXV4"}}}']
negative_examples = ['{"vendor":{"session":{"id":"Zm9vYmFyYmF6cXV4"}}}']
"#;
    let set = RuleSet::with_user_file(std::path::Path::new("rules.toml"), text).unwrap();
    let r = Redactor::new(
        &set,
        RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([1; 32])),
    )
    .unwrap();
    let mut v = json!({"vendor": {"session": {"secret": "Q2xhcmEtMjAyNi1ub3Y", "id": "x1"}}});
    assert_eq!(r.redact_value(&mut v, &mut Vec::new()), 1);
    assert!(
        v["vendor"]["session"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:vendor-session:")
    );
    // A rule with both a regex and paths, or an empty path key, is refused with its line.
    let bad = "[[rules]]\nid = \"two\"\ndescription = \"x\"\nregex = 'abc'\npaths = [\"a.b\"]\nkeywords = [\"abcd\"]\n";
    let err = RuleSet::with_user_file(std::path::Path::new("r.toml"), bad).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let bad = "[[rules]]\nid = \"empty\"\ndescription = \"x\"\npaths = [\"a..b\"]\nkeywords = [\"abcd\"]\n";
    let err = RuleSet::with_user_file(std::path::Path::new("r.toml"), bad).unwrap_err();
    assert!(err.to_string().contains("empty key"), "{err}");
}

#[test]
fn signal_session_files_lose_their_ratchet_keys() {
    let mut rng = FakeRng::new(12);
    let mut b = || format!("{}=", rng.b64(43));
    let (priv_key, root, chain, msg) = (b(), b(), b(), b());
    let (pub_key, base) = (format!("B{}", b()), format!("B{}", b()));
    let doc = json!({"_sessions": {base.clone(): {"registrationId": 4242,
        "currentRatchet": {"ephemeralKeyPair": {"pubKey": pub_key, "privKey": priv_key},
            "lastRemoteEphemeralKey": base, "previousCounter": 0, "rootKey": root},
        "indexInfo": {"baseKey": base, "baseKeyType": 2, "closed": -1, "used": 1795630000,
            "created": 1795630000, "remoteIdentityKey": base},
        "chains": {base.clone(): {"chainKey": {"counter": 3, "key": chain}, "chainType": 2,
            "messageKeys": {"2": msg}}}}}, "version": "v1"});
    let r = redactor(Mode::Tools);
    let line = tool_result(&format!(
        "$ cat session-15550001111.0.json\n{}",
        serde_json::to_string_pretty(&doc).unwrap()
    ));
    let (out, f) = run(&r, line.as_bytes());
    for secret in [&priv_key, &root, &chain, &msg] {
        assert!(!out.contains(secret.as_str()));
    }
    assert!(out.contains(&pub_key) && out.contains("4242"));
    assert_eq!(f.len(), 8, "{f:?}");
    assert!(f.iter().all(|f| f.rule_id == "whatsapp-session"), "{f:?}");
    let mut v: Value = serde_json::from_str(&line).unwrap();
    r.redact_value(&mut v, &mut Vec::new());
    assert_eq!(v, serde_json::from_str::<Value>(&out).unwrap());
}
