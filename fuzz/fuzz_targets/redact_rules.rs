//! Fuzzes the user rule-file parser: any input is either rejected with an error that names
//! the file, or gives a rule set whose redactor runs on a sample without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moltvault_redact::{CountSink, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::with_user_file(std::path::Path::new("fuzz.toml"), text) {
        Err(e) => assert!(e.to_string().contains("fuzz.toml")),
        Ok(set) => {
            let r = Redactor::new(
                &set,
                RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([0; 32])),
            )
            .unwrap();
            let sample = format!("{{\"t\":{}}}\n", serde_json::Value::String(text.into()));
            let mut out = Vec::new();
            r.redact_jsonl(sample.as_bytes(), &mut out, &mut CountSink::default())
                .unwrap();
            let _ = r.redact_text(text);
        }
    }
});
