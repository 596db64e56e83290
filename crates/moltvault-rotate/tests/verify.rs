//! Every provider verifier against a local HTTP server on 127.0.0.1: 200 / 401 / 403 / 429 /
//! 5xx / provider-specific invalid answers / a server that never answers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use moltvault_rotate::{Catalogue, Outcome, Verifier};
use secrecy::SecretString;

/// What the fake server saw.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// Serves one request with `status` and `body` (or never answers when `status` is 0).
fn serve_once(status: u16, body: &'static str) -> (String, mpsc::Receiver<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut b = vec![0; len];
        r.read_exact(&mut b).unwrap();
        tx.send(Seen {
            method,
            path,
            headers,
        })
        .unwrap();
        if status == 0 {
            std::thread::sleep(Duration::from_secs(5));
            return;
        }
        let mut s = s;
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    (url, rx)
}

fn rep(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

fn check(
    provider: &str,
    status: u16,
    body: &'static str,
) -> (moltvault_rotate::Verification, Seen) {
    let cat = Catalogue::builtin().unwrap();
    let p = cat.get(provider).unwrap();
    let (url, rx) = serve_once(status, body);
    let v = Verifier::new(
        Duration::from_millis(700),
        BTreeMap::from([(provider.to_string(), url)]),
    )
    .unwrap();
    let token = SecretString::from(format!("{}{}", "tok-", rep('z', 30)));
    let r = v.verify(p, &token);
    let seen = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    (r, seen)
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const OK_JSON: &str = r#"{"data":[],"ok":true,"models":[]}"#;

#[test]
fn status_style_providers_classify_every_answer() {
    for p in ["discord", "anthropic", "openai", "gemini", "openrouter"] {
        assert_eq!(check(p, 200, OK_JSON).0.outcome, Outcome::Valid, "{p}");
        assert_eq!(
            check(p, 401, r#"{"error":{"code":"invalid_api_key"}}"#)
                .0
                .outcome,
            Outcome::Invalid,
            "{p}"
        );
        assert_eq!(check(p, 403, "{}").0.outcome, Outcome::Restricted, "{p}");
        assert_eq!(check(p, 429, "{}").0.outcome, Outcome::RateLimited, "{p}");
        assert_eq!(check(p, 503, "oops").0.outcome, Outcome::Unknown, "{p}");
        let (r, _) = check(p, 0, "");
        assert_eq!(r.outcome, Outcome::Unknown, "{p} timeout");
        assert!(r.status.is_none());
    }
}

#[test]
fn provider_specific_answers() {
    // Gemini answers a bad key with 400 API_KEY_INVALID.
    let (r, s) = check(
        "gemini",
        400,
        r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#,
    );
    assert_eq!(r.outcome, Outcome::Invalid);
    assert_eq!(r.code.as_deref(), Some("API_KEY_INVALID"));
    assert!(header(&s, "x-goog-api-key").is_some_and(|v| v.starts_with("tok-")));
    // Slack always answers 200; the verdict is in the body.
    let (r, s) = check("slack-bot", 200, r#"{"ok":false,"error":"invalid_auth"}"#);
    assert_eq!(r.outcome, Outcome::Invalid);
    assert_eq!(r.code.as_deref(), Some("invalid_auth"));
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/api/auth.test")
    );
    assert!(header(&s, "authorization").is_some_and(|v| v.starts_with("Bearer tok-")));
    assert_eq!(
        check("slack-bot", 200, r#"{"ok":true,"team_id":"T1"}"#)
            .0
            .outcome,
        Outcome::Valid
    );
    assert_eq!(
        check("slack-app", 200, r#"{"ok":false,"error":"fatal_error"}"#)
            .0
            .outcome,
        Outcome::Unknown
    );
    assert_eq!(
        check("slack-bot", 429, "{}").0.outcome,
        Outcome::RateLimited
    );
    assert_eq!(check("slack-bot", 500, "{}").0.outcome, Outcome::Unknown);
    assert_eq!(check("slack-bot", 0, "").0.outcome, Outcome::Unknown);
    // Telegram: token in the path; 401 wrong, 404 malformed.
    let (r, s) = check("telegram", 200, r#"{"ok":true,"result":{"id":1}}"#);
    assert_eq!(r.outcome, Outcome::Valid);
    assert!(s.path.starts_with("/bottok-") && s.path.ends_with("/getMe"));
    for st in [401, 404] {
        assert_eq!(
            check("telegram", st, r#"{"ok":false,"error_code":401}"#)
                .0
                .outcome,
            Outcome::Invalid
        );
    }
    assert_eq!(check("telegram", 403, "{}").0.outcome, Outcome::Unknown);
    assert_eq!(check("telegram", 429, "{}").0.outcome, Outcome::RateLimited);
    assert_eq!(check("telegram", 502, "{}").0.outcome, Outcome::Unknown);
    assert_eq!(check("telegram", 0, "").0.outcome, Outcome::Unknown);
    // Auth headers per provider.
    let (_, s) = check("discord", 200, OK_JSON);
    assert!(header(&s, "authorization").is_some_and(|v| v.starts_with("Bot tok-")));
    assert_eq!(s.path, "/api/v10/users/@me");
    let (_, s) = check("anthropic", 200, OK_JSON);
    assert!(header(&s, "x-api-key").is_some_and(|v| v.starts_with("tok-")));
    assert_eq!(header(&s, "anthropic-version"), Some("2023-06-01"));
    let (_, s) = check("openrouter", 200, OK_JSON);
    assert_eq!(s.path, "/api/v1/key");
    // An error body echoing the key never becomes the recorded code.
    let (r, _) = check(
        "openai",
        401,
        r#"{"error":{"message":"Incorrect API key provided: tok-zzzz","code":"Incorrect API key provided: tok-zz"}}"#,
    );
    assert_eq!(r.outcome, Outcome::Invalid);
    assert!(r.code.is_none() || !r.code.unwrap().contains("tok-"));
}

#[test]
fn non_loopback_http_is_refused() {
    assert!(
        Verifier::new(
            Duration::from_secs(1),
            BTreeMap::from([("openai".to_string(), "http://192.0.2.1".to_string())]),
        )
        .is_err()
    );
}
