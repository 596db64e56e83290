//! Property tests: no panic, valid JSON stays valid, line count kept, idempotent, and no
//! planted secret survives, over generated transcripts with planted secrets and junk lines.

use moltvault_redact::{FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use moltvault_testutils::secrets::{FakeRng, provider_secrets};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Frag {
    Text(String),
    Secret(usize, u64),
}

#[derive(Debug, Clone)]
enum Line {
    Entry {
        frags: Vec<Frag>,
        nest: u8,
        role: bool,
    },
    Raw(Vec<Frag>),
    Junk(Vec<u8>),
}

fn frag() -> impl Strategy<Value = Frag> {
    prop_oneof![
        "[ -~\n\té\"\\\\]{0,40}".prop_map(Frag::Text),
        (0usize..40, any::<u64>()).prop_map(|(i, s)| Frag::Secret(i, s)),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (prop::collection::vec(frag(), 0..6), 0u8..3, any::<bool>())
            .prop_map(|(frags, nest, role)| Line::Entry { frags, nest, role }),
        1 => prop::collection::vec(frag(), 0..6).prop_map(Line::Raw),
        1 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..80)
            .prop_map(Line::Junk),
    ]
}

fn render(frags: &[Frag], planted: &mut Vec<String>) -> String {
    let mut s = String::new();
    for f in frags {
        match f {
            Frag::Text(t) => s.push_str(t),
            Frag::Secret(i, seed) => {
                let all = provider_secrets(&mut FakeRng::new(*seed));
                let sec = &all[i % all.len()];
                planted.push(sec.secret.clone());
                s.push(' ');
                s.push_str(&sec.text);
                s.push(' ');
            }
        }
    }
    s
}

fn build(lines: &[Line], crlf: bool, last_nl: bool) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::new();
    let mut planted = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match l {
            Line::Entry { frags, nest, role } => {
                let mut text = Value::String(render(frags, &mut planted));
                for _ in 0..*nest {
                    text = Value::String(json!({"stdout": text}).to_string());
                }
                let role = if *role { "toolResult" } else { "user" };
                let v = json!({"type":"message","id":format!("{i:08x}"),"parentId":null,
                    "message":{"role":role,"content":[{"type":"text","text":text}]}});
                out.extend_from_slice(v.to_string().as_bytes());
            }
            Line::Raw(frags) => {
                out.extend_from_slice(render(frags, &mut planted).replace('\n', " ").as_bytes())
            }
            Line::Junk(b) => out.extend_from_slice(b),
        }
        if i + 1 < lines.len() || last_nl {
            if crlf {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
    }
    (out, planted)
}

fn redact(r: &Redactor, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    r.redact_jsonl(input, &mut out, &mut Vec::new()).unwrap();
    out
}

fn lines_of(b: &[u8]) -> Vec<&[u8]> {
    b.split(|&x| x == b'\n').collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn invariants(lines in prop::collection::vec(line(), 0..8), crlf in any::<bool>(), last_nl in any::<bool>()) {
        let r = Redactor::new(&RuleSet::builtin(),
            RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([3; 32]))).unwrap();
        let (input, planted) = build(&lines, crlf, last_nl);
        let out = redact(&r, &input);
        let (li, lo) = (lines_of(&input), lines_of(&out));
        prop_assert_eq!(li.len(), lo.len());
        for (a, b) in li.iter().zip(&lo) {
            if serde_json::from_slice::<Value>(a).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(b).is_ok(),
                    "invalid JSON out: {}", String::from_utf8_lossy(b));
            }
        }
        for s in &planted {
            prop_assert!(memchr::memmem::find(&out, s.as_bytes()).is_none(), "survived: {}", s);
        }
        prop_assert_eq!(redact(&r, &out), out);
    }

    /// `may_match` is a safe prefilter for `redact_value`: a record it turns away is one the
    /// engine would not change (what `AgentDb::redact_prefiltered` relies on).
    #[test]
    fn may_match_never_turns_away_a_record_with_a_secret(lines in prop::collection::vec(line(), 1..8)) {
        let r = Redactor::new(&RuleSet::builtin(),
            RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([3; 32]))).unwrap();
        let (input, _) = build(&lines, false, true);
        for rec in lines_of(&input) {
            let Ok(mut v) = serde_json::from_slice::<Value>(rec) else { continue };
            let mut found = Vec::new();
            let changed = r.redact_value(&mut v, &mut found) > 0;
            prop_assert!(!changed || r.may_match(rec),
                "gate turned away: {}", String::from_utf8_lossy(rec));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_keep_lines(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let r = Redactor::new(&RuleSet::builtin(),
            RedactorOptions::new(Mode::Tools, FingerprintKey::from_bytes([3; 32]))).unwrap();
        let out = redact(&r, &data);
        prop_assert_eq!(lines_of(&out).len(), lines_of(&data).len());
        prop_assert_eq!(redact(&r, &out), out);
    }
}
