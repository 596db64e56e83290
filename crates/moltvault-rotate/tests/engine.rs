//! The rotation state machine through the library API, with a scripted prompter and a fake
//! host: interruption and resume, revocation waiting for the user, a location changed behind
//! the run's back, abort.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use moltvault_rotate::{
    Catalogue, Env, FingerprintKey, Host, InventoryOptions, Mode, PlanItem, Prompter, Provider,
    RotateOptions, RunOutcome, Sealer, State, SweepMode,
};
use secrecy::{ExposeSecret, SecretString};

struct Script {
    values: HashMap<String, String>,
    revoked: bool,
    /// Report an interruption once this many checkpoints have passed.
    stop_after: Option<usize>,
    seen: usize,
    log: Vec<String>,
}

impl Prompter for Script {
    fn say(&mut self, msg: &str) {
        self.log.push(msg.to_string());
    }
    fn warn(&mut self, msg: &str) {
        self.log.push(format!("warning: {msg}"));
    }
    fn new_value(
        &mut self,
        item: &PlanItem,
        _: &Provider,
        rejected: Option<&str>,
    ) -> moltvault_rotate::Result<Option<SecretString>> {
        if let Some(r) = rejected {
            return Err(moltvault_rotate::Error::Invalid {
                item: item.id.clone(),
                why: r.into(),
            });
        }
        Ok(self
            .values
            .get(&item.id)
            .map(|v| SecretString::from(v.clone())))
    }
    fn confirm_revoked(&mut self, _: &PlanItem, _: &Provider) -> bool {
        self.revoked
    }
    fn confirm_redact(&mut self, _: usize) -> bool {
        true
    }
    fn checkpoint(&mut self, _: &str) {
        self.seen += 1;
    }
    fn interrupted(&self) -> bool {
        self.stop_after.is_some_and(|n| self.seen >= n)
    }
}

struct FakeHost;

impl Host for FakeHost {
    fn gateway_running(&self, _: u16) -> bool {
        false
    }
    fn daemon_reload(&self) -> Result<String, String> {
        Ok("reloaded".into())
    }
    fn revoke_devices(&self) -> Result<String, String> {
        Err("no openclaw".into())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    key: FingerprintKey,
    sealer: Sealer,
    catalogue: Catalogue,
}

const OLD_KEY: &str = concat!(
    "sk-or",
    "-v1-",
    "1111111111111111111111111111111111111111111111111111111111111111"
);
const NEW_KEY: &str = concat!(
    "sk-or",
    "-v1-",
    "2222222222222222222222222222222222222222222222222222222222222222"
);
const OLD_GW: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join(".openclaw");
        fs::create_dir_all(sd.join("agents/main/sessions")).unwrap();
        fs::write(
            sd.join("openclaw.json"),
            format!(
                "{{\n  \"gateway\": {{ \"port\": 9, \"auth\": {{ \"token\": \"{OLD_GW}\" }} }},\n  \"models\": {{ \"providers\": {{ \"openrouter\": {{ \"apiKey\": \"{OLD_KEY}\" }} }} }}\n}}\n"
            ),
        )
        .unwrap();
        fs::write(
            sd.join("agents/main/sessions/a.jsonl"),
            format!("{{\"text\":\"key {OLD_KEY} and {OLD_GW}\"}}\n"),
        )
        .unwrap();
        let id = age::x25519::Identity::generate();
        Fixture {
            dir,
            key: FingerprintKey::from_bytes([9; 32]),
            sealer: Sealer::new(Box::new(id.to_public()), Some(Box::new(id))),
            catalogue: Catalogue::builtin().unwrap(),
        }
    }

    fn opts(&self) -> RotateOptions {
        RotateOptions {
            rotation_dir: self.dir.path().join(".moltvault/rotation"),
            inventory: InventoryOptions {
                state_dir: self.dir.path().join(".openclaw"),
                home: self.dir.path().into(),
                ..Default::default()
            },
            mode: Mode::Incident,
            items: vec![],
            allow_running: false,
            verifier: None,
            sweep: SweepMode::Redact,
        }
    }

    fn script(&self, revoked: bool, stop_after: Option<usize>) -> Script {
        Script {
            values: HashMap::from([(
                "models.providers.openrouter.apiKey".to_string(),
                format!("  '{NEW_KEY}'\n"),
            )]),
            revoked,
            stop_after,
            seen: 0,
            log: vec![],
        }
    }

    fn run(&self, script: &mut Script, resume: bool) -> moltvault_rotate::Result<RunOutcome> {
        let mut env = Env {
            catalogue: &self.catalogue,
            key: &self.key,
            sealer: &self.sealer,
            prompter: script,
            host: &FakeHost,
        };
        if resume {
            moltvault_rotate::resume(&self.opts(), &mut env)
        } else {
            moltvault_rotate::start(&self.opts(), &mut env)
        }
    }

    fn config(&self) -> String {
        fs::read_to_string(self.dir.path().join(".openclaw/openclaw.json")).unwrap()
    }

    fn transcript(&self) -> PathBuf {
        self.dir
            .path()
            .join(".openclaw/agents/main/sessions/a.jsonl")
    }
}

#[test]
fn interrupted_run_resumes_to_done_and_sweeps() {
    let f = Fixture::new();
    let mut s = f.script(true, Some(3));
    let out = f.run(&mut s, false).unwrap();
    assert!(matches!(out, RunOutcome::Interrupted { .. }), "{out:?}");
    // A new run is refused while this one is unfinished.
    let mut s2 = f.script(true, None);
    assert!(matches!(
        f.run(&mut s2, false),
        Err(moltvault_rotate::Error::Unfinished { .. })
    ));
    let out = f.run(&mut s2, true).unwrap();
    assert!(matches!(out, RunOutcome::Done { .. }), "{out:?}");
    let cfg = f.config();
    assert!(cfg.contains(NEW_KEY) && !cfg.contains(OLD_KEY) && !cfg.contains(OLD_GW));
    let t = fs::read_to_string(f.transcript()).unwrap();
    assert!(!t.contains(OLD_KEY) && !t.contains(OLD_GW), "{t}");
    assert!(t.contains("[REDACTED:rotated-openrouter:"), "{t}");
    let st = moltvault_rotate::status(&f.opts().rotation_dir).unwrap();
    assert_eq!(st.finished.as_deref(), Some("done"));
    assert!(st.items.iter().all(|i| i.2 == State::Done));
    // Devices: nothing paired, so the step is skipped, not waiting.
    assert!(
        st.tasks
            .iter()
            .any(|t| t.0 == "revoke-devices" && t.1 == "skipped")
    );
    // The quotes and whitespace of the paste were cleaned, and said so.
    assert!(
        s2.log
            .iter()
            .any(|l| l.contains("stripped surrounding quotes"))
    );
}

#[test]
fn unconfirmed_revocation_waits_for_the_user() {
    let f = Fixture::new();
    let mut s = f.script(false, None);
    let out = f.run(&mut s, false).unwrap();
    match out {
        RunOutcome::NeedsUser { items, .. } => {
            assert_eq!(items, ["models.providers.openrouter.apiKey"])
        }
        o => panic!("{o:?}"),
    }
    let st = moltvault_rotate::status(&f.opts().rotation_dir).unwrap();
    let item = st.items.iter().find(|i| i.1 == "openrouter").unwrap();
    assert_eq!(item.2, State::NeedsUser);
    assert!(
        item.3
            .as_deref()
            .unwrap()
            .contains("openrouter.ai/settings/keys")
    );
    // The new key is in place already; only the attestation is missing.
    assert!(f.config().contains(NEW_KEY));
    let mut s = f.script(true, None);
    assert!(matches!(
        f.run(&mut s, true).unwrap(),
        RunOutcome::Done { .. }
    ));
}

#[test]
fn a_location_changed_behind_the_run_is_a_conflict() {
    let f = Fixture::new();
    // Stop right after the plan and the contain step.
    let mut s = f.script(true, Some(2));
    assert!(matches!(
        f.run(&mut s, false).unwrap(),
        RunOutcome::Interrupted { .. }
    ));
    let p = f.dir.path().join(".openclaw/openclaw.json");
    let other: &str = concat!(
        "sk-or",
        "-v1-",
        "3333333333333333333333333333333333333333333333333333333333333333"
    );
    fs::write(&p, f.config().replace(OLD_KEY, other)).unwrap();
    let mut s = f.script(true, None);
    match f.run(&mut s, true).unwrap() {
        RunOutcome::NeedsUser { items, .. } => {
            assert_eq!(items, ["models.providers.openrouter.apiKey"])
        }
        o => panic!("{o:?}"),
    }
    assert!(
        f.config().contains(other),
        "the foreign value is left alone"
    );
    assert!(
        s.log
            .iter()
            .any(|l| l.contains("holds neither the old nor the new value"))
    );
}

#[test]
fn abort_wipes_staging_and_refuses_half_applied_items() {
    let f = Fixture::new();
    // Stop after the gateway token is staged and applied (plan, contain, staged, applied x1,
    // APPLIED).
    let mut s = f.script(true, Some(5));
    assert!(matches!(
        f.run(&mut s, false).unwrap(),
        RunOutcome::Interrupted { .. }
    ));
    let rd = f.opts().rotation_dir;
    let run = moltvault_rotate::abort(&rd, &f.key).unwrap();
    let staging = moltvault_rotate::run_dir(&rd, &run).join("staging");
    assert_eq!(fs::read_dir(staging).unwrap().count(), 0);
    assert!(moltvault_rotate::active_run(&rd).unwrap().is_none());
    assert!(matches!(
        moltvault_rotate::abort(&rd, &f.key),
        Err(moltvault_rotate::Error::NoRun(_))
    ));

    // Half-applied: the gateway token also lives in .env; stop after the first of its two
    // writes (plan, contain, staged, NEW_STAGED, write 0, its record).
    let f = Fixture::new();
    fs::write(
        f.dir.path().join(".openclaw/.env"),
        format!("OPENCLAW_GATEWAY_TOKEN={OLD_GW}\n"),
    )
    .unwrap();
    let mut s = f.script(true, Some(6));
    assert!(matches!(
        f.run(&mut s, false).unwrap(),
        RunOutcome::Interrupted { .. }
    ));
    assert!(!f.config().contains(OLD_GW));
    let rd = f.opts().rotation_dir;
    assert!(matches!(
        moltvault_rotate::abort(&rd, &f.key),
        Err(moltvault_rotate::Error::Conflict { .. })
    ));
    let mut s = f.script(true, None);
    assert!(matches!(
        f.run(&mut s, true).unwrap(),
        RunOutcome::Done { .. }
    ));
    let env = fs::read_to_string(f.dir.path().join(".openclaw/.env")).unwrap();
    assert!(!env.contains(OLD_GW));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let f = Fixture::new();
    let inv = moltvault_rotate::discover(&f.opts().inventory, &f.catalogue, &f.key).unwrap();
    let dbg = format!("{inv:?} {:?} {:?}", f.key, f.sealer);
    assert!(!dbg.contains(OLD_KEY) && !dbg.contains(OLD_GW), "{dbg}");
    let norm = moltvault_rotate::validate::normalise(NEW_KEY).unwrap();
    assert!(!format!("{norm:?}").contains(NEW_KEY));
    assert_eq!(norm.value.expose_secret(), NEW_KEY);
    let old = moltvault_rotate::sweep::OldValue {
        item: "x".into(),
        provider: "openrouter".into(),
        fp: f.key.fingerprint(OLD_KEY.as_bytes()),
        value: Some(SecretString::from(OLD_KEY)),
    };
    assert!(!format!("{old:?}").contains(OLD_KEY));
}
