//! `moltvault scan` end to end: the real gateway samples, a temporary gateway found through
//! --state-dir, --json, exit codes.
#![allow(clippy::disallowed_methods)]

use std::fs;

use crate::redact::{Home, gh_token, regex_escape, transcript};

#[test]
fn finds_the_planted_tokens_in_the_real_samples() {
    // Real files written by the real gateways (vendored from the reference samples).
    let samples = &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/homes");
    let h = Home::new();
    let out = h.cmd().arg("scan").arg(samples).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&samples.display().to_string()), "[SAMPLES]");
    let _g = s.bind_to_scope();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout), @r"
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl:6: generic-sk-key /message/content/0/arguments/command ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl:7: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl:7: generic-sk-key /message/details/aggregated ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/0411108d-0e9f-44e4-af76-64d56e3df898.jsonl:8: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/cb-plugin-1.jsonl:6: generic-sk-key /message/content/0/arguments/command ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/cb-plugin-1.jsonl:7: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/cb-plugin-1.jsonl:7: generic-sk-key /message/details/aggregated ed0d04c8
    [SAMPLES]/clawdbot-2026.1.24/agents/main/sessions/cb-plugin-1.jsonl:8: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl:6: generic-sk-key /message/content/0/arguments/command ed0d04c8
    [SAMPLES]/openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl:6: generic-sk-key /message/content/0/partialArgs ed0d04c8
    [SAMPLES]/openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl:7: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl:8: generic-sk-key /message/content/0/text ed0d04c8
    [SAMPLES]/openclaw-2026.7.35/agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl:10: generic-sk-key /message/content/0/text ed0d04c8
    ");
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    rule            findings  files
    generic-sk-key        13      3
    13 findings in 3 of 10 files
    ");
}

#[test]
fn scans_the_detected_gateway_as_json() {
    let h = Home::new();
    let state = h.path().join("state");
    let sessions = state.join("agents/main/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(state.join("openclaw.json"), "{}").unwrap();
    fs::write(sessions.join("s1.jsonl"), transcript(&gh_token())).unwrap();
    fs::write(
        sessions.join("s2.jsonl.reset.2026-11-25T18-00-00.000Z"),
        transcript("nothing here"),
    )
    .unwrap();
    fs::write(
        sessions.join("s3.jsonl.deleted.2026-11-25T18-16-56.790Z.e8ca0931.zst"),
        zstd::encode_all(transcript(&gh_token()).as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let out = h
        .cmd()
        .args(["scan", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _g = h.settings().bind_to_scope();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout), @r#"
    {"file":"[TMP]/state/agents/main/sessions/s1.jsonl","line":2,"rule":"github-pat","pointer":"/message/content/0/text","fingerprint":"db6eb671"}
    {"file":"[TMP]/state/agents/main/sessions/s1.jsonl","line":3,"rule":"github-pat","pointer":"/message/content/0/text","fingerprint":"db6eb671"}
    {"file":"[TMP]/state/agents/main/sessions/s3.jsonl.deleted.2026-11-25T18-16-56.790Z.e8ca0931.zst","line":2,"rule":"github-pat","pointer":"/message/content/0/text","fingerprint":"db6eb671"}
    {"file":"[TMP]/state/agents/main/sessions/s3.jsonl.deleted.2026-11-25T18-16-56.790Z.e8ca0931.zst","line":3,"rule":"github-pat","pointer":"/message/content/0/text","fingerprint":"db6eb671"}
    "#);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    rule        findings  files
    github-pat         4      2
    4 findings in 2 of 3 files
    ");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&gh_token()));
}

#[test]
fn clean_files_exit_zero() {
    let h = Home::new();
    fs::write(h.path().join("a.jsonl"), transcript("nothing secret")).unwrap();
    let out = h.cmd().args(["scan", "a.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @"0 findings in 0 of 1 file");
}

/// OpenClaw ≥ 2026.8 keeps transcripts in SQLite: a scan of the detected gateway reads every
/// text column of the agent database (plain and zstd events, trajectory rows, the full-text
/// copy) read-only, and names the column and the value's position.
#[test]
fn scans_the_agent_database_of_a_sqlite_gateway() {
    use moltvault_testutils::homes::{SampleLine, TestHome};
    let t = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let db = t.path("agents/main/agent/openclaw-agent.sqlite");
    crate::audit::plant_in_agent_db(&db);
    let before = fs::read(&db).unwrap();
    let h = Home::new();
    let out = h
        .cmd()
        .args(["scan", "--json", "--state-dir"])
        .arg(t.state_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let files: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = v["file"].as_str().unwrap();
            format!(
                "{}:{}",
                &f[f.find('#').unwrap()..],
                v["rule"].as_str().unwrap()
            )
        })
        .collect();
    for col in [
        "#transcript_events.event_json",
        "#trajectory_runtime_events.event_json",
        "#session_transcript_fts.text",
    ] {
        assert!(
            files.iter().any(|f| f.starts_with(col)),
            "{col} not in {files:?}"
        );
    }
    // The plain and the zstd event are both found.
    let events = files
        .iter()
        .filter(|f| f.starts_with("#transcript_events"))
        .count();
    assert!(events >= 2, "{files:?}");
    assert!(stderr.contains("agent database"), "{stderr}");
    assert_eq!(fs::read(&db).unwrap(), before, "scan wrote to the database");
}
