//! Helpers shared by the redactor's integration tests.

use moltvault_redact::{Finding, FingerprintKey, Mode, Redactor, RedactorOptions, RuleSet};
use serde_json::json;

/// The built-in rules with a fixed fingerprint key.
pub fn redactor(mode: Mode) -> Redactor {
    Redactor::new(
        &RuleSet::builtin(),
        RedactorOptions::new(mode, FingerprintKey::from_bytes([9; 32])),
    )
    .unwrap()
}

/// Redacts a JSONL input; returns the output and the findings.
pub fn run(r: &Redactor, input: &[u8]) -> (Vec<u8>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut f = Vec::new();
    r.redact_jsonl(input, &mut out, &mut f).unwrap();
    (out, f)
}

/// A `toolResult` record of the real entry schema, holding `text` twice (content and details).
pub fn tool_result(text: &str) -> String {
    json!({
        "type": "message", "id": "4a59b811", "parentId": "113d0369",
        "timestamp": "2026-11-25T18:13:05.063Z",
        "message": {"role": "toolResult", "toolCallId": "call_29034630", "toolName": "exec",
            "content": [{"type": "text", "text": text}],
            "details": {"status": "completed", "exitCode": 0, "aggregated": text},
            "isError": false, "timestamp": 1795630385062u64}
    })
    .to_string()
}
