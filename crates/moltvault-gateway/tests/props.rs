//! Property tests of the parsers of untrusted names and text: transcript file names, dotenv
//! files, service unit `Environment=` lines, and config edits.

#![allow(clippy::disallowed_methods)]

use moltvault_gateway::config::{self, Config, Edit};
use moltvault_gateway::{TranscriptKind, classify, parse_dotenv, parse_unit_environment};
use proptest::prelude::*;
use serde_json::json;

proptest! {
    #[test]
    fn classify_never_panics_and_keeps_the_session_id_a_prefix(name in "\\PC{0,80}") {
        if let Some((kind, sid, sealed_of)) = classify(&name) {
            prop_assert!(!sid.is_empty());
            prop_assert!(name.starts_with(&sid));
            prop_assert_eq!(kind == TranscriptKind::Sealed, name.ends_with(".age"));
            prop_assert_eq!(sealed_of.is_some(), kind == TranscriptKind::Sealed);
            prop_assert!(!name.starts_with('.'));
        }
    }

    #[test]
    fn classify_recognises_every_archive_shape(
        sid in "[0-9a-f]{8}-[0-9a-f]{4}",
        ts in "2026-[01][0-9]-[0-3][0-9]T[0-2][0-9]-[0-5][0-9]-[0-5][0-9]\\.[0-9]{3}Z",
        hash in "[0-9a-f]{32}",
    ) {
        let cases = [
            (format!("{sid}.jsonl"), TranscriptKind::Jsonl),
            (format!("{sid}.trajectory.jsonl"), TranscriptKind::Trajectory),
            (format!("{sid}.jsonl.deleted.{ts}"), TranscriptKind::Deleted),
            (format!("{sid}.jsonl.deleted.{ts}.{hash}.zst"), TranscriptKind::DeletedZst),
            (format!("{sid}.jsonl.reset.{ts}"), TranscriptKind::Reset),
            (format!("{sid}.jsonl.bak.{ts}"), TranscriptKind::Bak),
        ];
        for (name, kind) in cases {
            let (k, s, _) = classify(&name).unwrap();
            prop_assert_eq!(k, kind);
            prop_assert_eq!(&s, &sid);
            let (k, s, inner) = classify(&format!("{name}.age")).unwrap();
            prop_assert_eq!(k, TranscriptKind::Sealed);
            prop_assert_eq!(inner, Some(kind));
            prop_assert_eq!(&s, &sid);
        }
    }

    #[test]
    fn dotenv_round_trips(pairs in prop::collection::vec(("[A-Z_][A-Z0-9_]{0,20}", "[A-Za-z0-9_./:+-]{0,40}"), 0..10)) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n# comment\n\n")).collect();
        let parsed = parse_dotenv(&text);
        prop_assert_eq!(parsed, pairs.clone());
        let quoted: String = pairs.iter().map(|(k, v)| format!("export {k}=\"{v}\"\n")).collect();
        prop_assert_eq!(parse_dotenv(&quoted), pairs);
    }

    #[test]
    fn dotenv_never_panics(text in "\\PC{0,200}") {
        for (k, _) in parse_dotenv(&text) {
            prop_assert!(!k.contains('='));
        }
    }

    #[test]
    fn unit_environment_round_trips(pairs in prop::collection::vec(("[A-Z_][A-Z0-9_]{0,20}", "[A-Za-z0-9_./:+-]{0,40}"), 1..6)) {
        let line: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}={v}\"")).collect();
        let text = format!("[Service]\nEnvironment={}\nExecStart=/usr/bin/openclaw gateway\n", line.join(" "));
        prop_assert_eq!(parse_unit_environment(&text), pairs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn config_edit_set_then_get(path in prop::collection::vec("[a-z][a-zA-Z0-9_-]{0,8}", 1..5), v in "[ -~]{0,30}") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("openclaw.json");
        std::fs::write(&p, "// c\n{ gateway: { auth: { mode: 'token' } } }\n").unwrap();
        let dotted = path.join(".");
        match config::edit(&p, &[Edit::set(&dotted, json!(v))]) {
            Ok(out) => {
                prop_assert!(out.changed);
                let c = Config::load(&p).unwrap();
                prop_assert_eq!(c.get(&dotted), Some(&json!(v)));
                config::edit(&p, &[Edit::remove(&dotted)]).unwrap();
                let after = Config::load(&p).unwrap();
                prop_assert_eq!(after.get(&dotted), None);
            }
            // Only a path through the existing string `gateway.auth.mode` can be refused.
            Err(e) => prop_assert!(dotted.starts_with("gateway.auth.mode."), "{}", e),
        }
    }
}
