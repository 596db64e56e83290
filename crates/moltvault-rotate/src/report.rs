//! The incident report of a run, in Markdown and JSON, built from the journal alone: timeline,
//! old → new fingerprints, verification results, residue, and what the user must still do.
//! It holds fingerprints, paths and key names, never a value.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::catalogue::Catalogue;
use crate::engine::run_dir;
use crate::error::Result;
use crate::journal::{Event, Journal, State};

/// Builds the report of `run` as (JSON value, Markdown text).
///
/// # Errors
/// Fails when the journal cannot be read or does not verify.
pub fn build(rotation_dir: &Path, run: &str, catalogue: &Catalogue) -> Result<(Value, String)> {
    let j = Journal::open(&run_dir(rotation_dir, run).join("journal.jsonl"))?;
    let recs = j.records();
    let (mode, items) = j
        .plan()
        .map(|(m, i)| (m.to_string(), i.to_vec()))
        .unwrap_or_default();
    let (version, cat_version) = match &recs[0].event {
        Event::Plan {
            version, catalogue, ..
        } => (version.clone(), *catalogue),
        _ => (String::new(), 0),
    };
    let started = recs.first().map(|r| r.ts.clone()).unwrap_or_default();
    let ended = recs.last().map(|r| r.ts.clone()).unwrap_or_default();
    let mut todo: Vec<String> = Vec::new();
    let mut jitems = Vec::new();
    let devices = items
        .iter()
        .filter(|i| i.provider == "device-token")
        .count();
    for it in items.iter().filter(|i| i.provider != "device-token") {
        let p = catalogue.get(&it.provider);
        let (state, new_fp) = j.item_state(&it.id);
        let stale = it.locations.iter().all(|l| l.role == crate::Role::Backup);
        let mut transitions = Vec::new();
        let mut verification = Vec::new();
        let mut revocation = None;
        let mut last_note = None;
        for r in recs {
            match &r.event {
                Event::State {
                    item,
                    from,
                    to,
                    note,
                    ..
                } if item == &it.id => {
                    if *to == State::OldRevoked {
                        revocation.clone_from(note);
                    }
                    last_note.clone_from(note);
                    transitions.push(json!({"ts": r.ts, "from": from, "to": to, "note": note}));
                }
                Event::Verify {
                    item,
                    which,
                    outcome,
                    status,
                    code,
                } if item == &it.id => verification.push(json!({
                    "which": which, "outcome": outcome, "status": status, "code": code
                })),
                _ => {}
            }
        }
        if state == State::Done {
            if let Some(p) = p {
                for a in &p.after {
                    todo.push(format!("{}: {a}", it.id));
                }
            }
        } else if !stale {
            todo.push(format!(
                "{} is {}: {}",
                it.id,
                state.as_str(),
                last_note.clone().unwrap_or_default()
            ));
        }
        jitems.push(json!({
            "id": it.id,
            "provider": it.provider,
            "name": p.map(|p| p.name.clone()),
            "stale_backup_copy": stale,
            "state": if stale { "STALE" } else { state.as_str() },
            "old_fp": it.old_fp,
            "new_fp": new_fp,
            "locations": it.locations.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            "transitions": transitions,
            "verification": verification,
            "revocation": revocation,
            "console_url": p.and_then(|p| p.console_url.clone()).filter(|u| !u.is_empty()),
        }));
    }
    let mut tasks = Vec::new();
    let mut residue = Vec::new();
    for r in recs {
        match &r.event {
            Event::Task { name, status, note } => {
                if status == "needs-user" {
                    todo.push(format!("{name}: {note}"));
                }
                tasks.push(json!({"ts": r.ts, "name": name, "status": status, "note": note}));
            }
            Event::Residue {
                path,
                item,
                count,
                redacted,
            } => {
                if !*redacted {
                    todo.push(format!(
                        "{} still holds {count} copies of the old {item}: redact or delete it",
                        path.display()
                    ));
                }
                residue.push(
                    json!({"path": path, "item": item, "count": count, "redacted": redacted}),
                );
            }
            _ => {}
        }
    }
    if items
        .iter()
        .any(|i| i.locations.iter().any(|l| l.role == crate::Role::Vault))
    {
        todo.push(
            "Run `openclaw secrets reload` (or restart the gateway) so a running gateway reads the new values from the moltvault secrets store."
                .into(),
        );
    }
    todo.push(
        "Restart the gateway and check that clients using the old credentials are refused.".into(),
    );
    todo.push(
        "In 24 hours, check again: the old keys are still rejected and the providers' usage pages show no foreign use."
            .into(),
    );
    let outcome = j.finished().unwrap_or("unfinished").to_string();
    let report = json!({
        "format": "moltvault-rotation-report/1",
        "run": run,
        "mode": mode,
        "moltvault_version": version,
        "catalogue_version": cat_version,
        "started": started,
        "ended": ended,
        "outcome": outcome,
        "journal_head": j.head(),
        "items": jitems,
        "paired_device_tokens": devices,
        "tasks": tasks,
        "residue": residue,
        "todo": todo,
    });
    Ok((report.clone(), markdown(&report)))
}

fn markdown(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut m = String::new();
    let _ = writeln!(m, "# Rotation report {}\n", s(&r["run"]));
    let _ = writeln!(
        m,
        "- mode: {}\n- outcome: {}\n- started: {}\n- ended: {}\n- moltvault {} (catalogue v{})\n- journal chain head: `{}`\n",
        s(&r["mode"]),
        s(&r["outcome"]),
        s(&r["started"]),
        s(&r["ended"]),
        s(&r["moltvault_version"]),
        r["catalogue_version"],
        s(&r["journal_head"]),
    );
    let _ = writeln!(m, "## Secrets\n");
    let _ = writeln!(m, "| item | kind | state | old → new | revocation |");
    let _ = writeln!(m, "|---|---|---|---|---|");
    let empty = Vec::new();
    for it in r["items"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | `{}` → `{}` | {} |",
            s(&it["id"]),
            s(&it["name"]),
            s(&it["state"]),
            s(&it["old_fp"]),
            it["new_fp"].as_str().unwrap_or("-"),
            it["revocation"].as_str().unwrap_or("-"),
        );
    }
    for it in r["items"].as_array().unwrap_or(&empty) {
        let _ = writeln!(m, "\n### `{}`\n", s(&it["id"]));
        let _ = writeln!(m, "Stored in:");
        for l in it["locations"].as_array().unwrap_or(&empty) {
            let _ = writeln!(m, "- `{}`", s(l));
        }
        for v in it["verification"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                m,
                "- online check of the {} value: {} (HTTP {}, code {})",
                s(&v["which"]),
                s(&v["outcome"]),
                v["status"],
                v["code"].as_str().unwrap_or("-")
            );
        }
        let _ = writeln!(m, "\nTimeline:");
        for t in it["transitions"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                m,
                "- {} {} → {}{}",
                s(&t["ts"]),
                s(&t["from"]),
                s(&t["to"]),
                t["note"]
                    .as_str()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(m, "\n## Run steps\n");
    for t in r["tasks"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            m,
            "- {} {}: {} ({})",
            s(&t["ts"]),
            s(&t["name"]),
            s(&t["status"]),
            s(&t["note"])
        );
    }
    let _ = writeln!(m, "\n## Residue (old values found after rotation)\n");
    let res = r["residue"].as_array().unwrap_or(&empty);
    if res.is_empty() {
        let _ = writeln!(m, "None found.");
    }
    for x in res {
        let _ = writeln!(
            m,
            "- `{}`: {} copies of `{}`, {}",
            s(&x["path"]),
            x["count"],
            s(&x["item"]),
            if x["redacted"].as_bool() == Some(true) {
                "redacted"
            } else {
                "NOT redacted"
            }
        );
    }
    let _ = writeln!(m, "\n## What you must still do\n");
    for t in r["todo"].as_array().unwrap_or(&empty) {
        let _ = writeln!(m, "- [ ] {}", s(t));
    }
    m
}

/// Writes `report.md` and `report.json` into the run's directory (0600) and returns their
/// paths.
///
/// # Errors
/// Fails when the journal does not verify or a file cannot be written.
pub fn write(rotation_dir: &Path, run: &str, catalogue: &Catalogue) -> Result<(PathBuf, PathBuf)> {
    let (v, md) = build(rotation_dir, run, catalogue)?;
    let dir = run_dir(rotation_dir, run);
    let (pm, pj) = (dir.join("report.md"), dir.join("report.json"));
    let opts = moltvault_vault::fsio::WriteOptions::secret_replace();
    moltvault_vault::fsio::write_atomic(&pm, md.as_bytes(), opts)?;
    let mut js = serde_json::to_string_pretty(&v).expect("values serialise");
    js.push('\n');
    moltvault_vault::fsio::write_atomic(&pj, js.as_bytes(), opts)?;
    Ok((pm, pj))
}
