//! Discovery, transcripts, sessions, credential inventory and config edits against temp homes
//! built from the real gateway samples.

#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use moltvault_gateway::config::{self, Config, Edit};
use moltvault_gateway::{
    DiscoverOptions, Error, GatewayEnv, Line, Location, Origin, SecretKind, SecretRef, StoreKind,
    TranscriptKind, discover,
};
use moltvault_testutils::homes::{SampleLine, TestHome};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn opts(h: &TestHome) -> DiscoverOptions {
    DiscoverOptions::new(h.home())
}

fn canon(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap()
}

#[test]
fn discovers_each_line_in_its_default_dir() {
    for (line, want_line, want_store) in [
        (
            SampleLine::Clawdbot2026_1_24,
            Line::Clawdbot,
            StoreKind::Jsonl,
        ),
        (
            SampleLine::OpenClaw2026_7_35,
            Line::OpenClaw,
            StoreKind::Jsonl,
        ),
        (
            SampleLine::OpenClaw2026_9_6,
            Line::OpenClaw,
            StoreKind::Sqlite,
        ),
    ] {
        let h = TestHome::new(line);
        let gw = discover(&opts(&h)).unwrap();
        assert_eq!(gw.state_dir, canon(h.state_dir()), "{line:?}");
        assert_eq!(gw.origin, Origin::Default);
        assert_eq!(gw.line, want_line, "{line:?}");
        assert_eq!(gw.store, want_store, "{line:?}");
        assert_eq!(gw.version.as_deref(), Some(line.version()));
        assert_eq!(
            gw.config_path,
            Some(canon(h.state_dir()).join(line.config_name()))
        );
        assert_eq!(gw.agents(), vec!["main".to_owned()]);
    }
}

#[test]
fn sqlite_store_is_detected_from_the_database_without_a_version() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let mut cfg = h.config();
    cfg["meta"]
        .as_object_mut()
        .unwrap()
        .remove("lastTouchedVersion");
    h.write("openclaw.json", serde_json::to_vec(&cfg).unwrap(), 0o600);
    let gw = discover(&opts(&h)).unwrap();
    assert_eq!(gw.store, StoreKind::Sqlite);
    // The agent database records the app version.
    assert_eq!(gw.version.as_deref(), Some("2026.9.6"));
    // 2026.7.35 has an agent database too, but only for auth profiles: still JSONL.
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    assert_eq!(discover(&opts(&h)).unwrap().store, StoreKind::Jsonl);
}

#[test]
fn state_dir_flag_beats_env_which_beats_defaults() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let other = TestHome::new(SampleLine::Clawdbot2026_1_24);
    let third = TestHome::new(SampleLine::OpenClaw2026_9_6);

    // env beats the default ~/.openclaw
    let mut o = opts(&h);
    o.env.openclaw_state_dir = Some(other.state_dir().to_path_buf());
    let gw = discover(&o).unwrap();
    assert_eq!(gw.state_dir, canon(other.state_dir()));
    assert_eq!(gw.origin, Origin::Env("OPENCLAW_STATE_DIR"));
    assert_eq!(gw.line, Line::Clawdbot);

    // --state-dir beats env
    o.state_dir = Some(third.state_dir().to_path_buf());
    let gw = discover(&o).unwrap();
    assert_eq!(gw.state_dir, canon(third.state_dir()));
    assert_eq!(gw.origin, Origin::Flag);

    // OPENCLAW_STATE_DIR beats the legacy names
    let mut o = opts(&h);
    o.env.clawdbot_state_dir = Some(other.state_dir().to_path_buf());
    o.env.openclaw_state_dir = Some(third.state_dir().to_path_buf());
    assert_eq!(discover(&o).unwrap().state_dir, canon(third.state_dir()));

    // a legacy variable alone is honoured
    let mut o = opts(&h);
    o.env.clawdbot_state_dir = Some(other.state_dir().to_path_buf());
    let gw = discover(&o).unwrap();
    assert_eq!(gw.origin, Origin::Env("CLAWDBOT_STATE_DIR"));

    // OPENCLAW_HOME replaces the home for the defaults
    let mut o = DiscoverOptions::new("/nonexistent-home");
    o.env.openclaw_home = Some(h.home().to_path_buf());
    assert_eq!(discover(&o).unwrap().state_dir, canon(h.state_dir()));

    // explicit config path wins over the files in the state dir
    let mut o = opts(&h);
    let alt = h.write("alt/openclaw.json", "{gateway:{auth:{token:'x'}}}", 0o600);
    o.env.openclaw_config_path = Some(alt.clone());
    assert_eq!(discover(&o).unwrap().config_path, Some(alt));
}

#[test]
fn explicit_missing_dirs_are_errors_naming_their_origin() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let mut o = opts(&h);
    o.env = GatewayEnv {
        openclaw_state_dir: Some(h.root().join("nope")),
        ..GatewayEnv::default()
    };
    let err = discover(&o).unwrap_err();
    assert!(matches!(err, Error::StateDirMissing { .. }));
    assert!(err.to_string().contains("OPENCLAW_STATE_DIR"), "{err}");

    let mut o = opts(&h);
    o.state_dir = Some(h.root().join("nope"));
    assert!(
        discover(&o)
            .unwrap_err()
            .to_string()
            .contains("--state-dir")
    );

    let mut o = opts(&h);
    o.env.openclaw_profile = Some("work".into());
    let err = discover(&o).unwrap_err();
    assert!(err.to_string().contains(".openclaw-work"), "{err}");

    let mut o = opts(&h);
    o.config_path = Some(h.root().join("missing.json"));
    assert!(matches!(
        discover(&o).unwrap_err(),
        Error::ConfigMissing { .. }
    ));
}

#[test]
fn nothing_found_lists_every_place_looked_at() {
    let h = TestHome::empty();
    let err = discover(&opts(&h)).unwrap_err();
    let Error::NotFound { looked } = &err else {
        panic!("{err:?}")
    };
    let names: Vec<_> = looked
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, [".openclaw", ".clawdbot", ".moltbot", ".moldbot"]);
    let msg = err.to_string();
    assert!(msg.starts_with("no gateway state directory found"), "{msg}");
    assert!(msg.contains(&h.home().join(".clawdbot").display().to_string()));
}

#[test]
fn migrated_legacy_dir_symlink_is_followed_and_reported() {
    let mut h = TestHome::new(SampleLine::Clawdbot2026_1_24);
    let legacy = h.migrate_to(".openclaw");
    // Default probing finds ~/.openclaw; the config inside keeps its clawdbot name.
    let gw = discover(&opts(&h)).unwrap();
    assert_eq!(gw.state_dir, canon(h.state_dir()));
    assert!(gw.config_path.unwrap().ends_with("clawdbot.json"));
    // Pointing at the legacy path resolves the symlink and says so.
    let mut o = opts(&h);
    o.state_dir = Some(legacy.clone());
    let gw = discover(&o).unwrap();
    assert_eq!(gw.state_dir, canon(h.state_dir()));
    assert_eq!(gw.via_symlink, Some(legacy));
    assert_eq!(gw.line, Line::Clawdbot);
}

#[test]
fn line_follows_config_name_when_no_version_is_recorded() {
    let h = TestHome::empty();
    fs::create_dir_all(h.home().join(".moltbot/agents/main/sessions")).unwrap();
    fs::write(h.home().join(".moltbot/moltbot.json"), "{}").unwrap();
    let gw = discover(&opts(&h)).unwrap();
    assert_eq!(gw.line, Line::Moltbot);
    assert_eq!(gw.version, None);
}

#[test]
fn transcript_files_are_classified() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let sessions = h.path("agents/main/sessions");
    fs::copy(
        sessions.join("9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl"),
        sessions.join("9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl.reset.2026-11-25T18-20-00.000Z"),
    )
    .unwrap();
    h.write(
        "agents/main/sessions/old.jsonl.bak.1795629000000",
        "{}\n",
        0o644,
    );
    h.write(
        "agents/main/sessions/gone.jsonl.deleted.2026-11-25T18-00-00.000Z",
        "{}\n",
        0o644,
    );
    h.write("agents/main/sessions/sealed1.jsonl.age", "age", 0o600);
    h.write("agents/main/sessions/cold/abc123.jsonl.zst", "", 0o600);
    h.write("agents/main/sessions/x.jsonl.lock", "{}", 0o644);
    std::os::unix::fs::symlink("/etc/hostname", sessions.join("link.jsonl")).unwrap();
    let gw = discover(&opts(&h)).unwrap();
    let files = gw.transcript_files().unwrap();
    let count = |k: TranscriptKind| files.iter().filter(|f| f.kind == k).count();
    assert_eq!(count(TranscriptKind::Jsonl), 5, "symlink skipped");
    assert_eq!(count(TranscriptKind::Trajectory), 1);
    assert_eq!(count(TranscriptKind::Reset), 1);
    assert_eq!(count(TranscriptKind::Bak), 1);
    assert_eq!(count(TranscriptKind::Deleted), 1);
    assert_eq!(count(TranscriptKind::Cold), 1);
    let sealed: Vec<_> = files
        .iter()
        .filter(|f| f.kind == TranscriptKind::Sealed)
        .collect();
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].session_id, "sealed1");
    assert_eq!(sealed[0].sealed_of, Some(TranscriptKind::Jsonl));
    assert!(matches!(sealed[0].open(), Err(Error::Sealed { .. })));
    let traj = files
        .iter()
        .find(|f| f.kind == TranscriptKind::Trajectory)
        .unwrap();
    assert_eq!(traj.session_id, "2d048393-6d30-4ed3-8093-352886778a8f");
    assert!(files.iter().all(|f| f.agent == "main"));
}

#[test]
fn relocated_trajectory_sidecars_are_found_through_their_pointer() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let sid = "e2c99222-a852-41df-9afc-7a944fceddab";
    let moved = h.root().join(format!("traj/{sid}.trajectory.jsonl"));
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    fs::write(&moved, "{}\n").unwrap();
    h.write(
        &format!("agents/main/sessions/{sid}.trajectory-path.json"),
        json!({"traceSchema": "openclaw-trajectory-pointer", "schemaVersion": 1, "sessionId": sid,
               "runtimeFile": moved})
        .to_string(),
        0o600,
    );
    // A pointer to a file with another name is ignored.
    h.write(
        "agents/main/sessions/5ae532ee-dfd0-4559-a05b-420f95c02e92.trajectory-path.json",
        json!({"runtimeFile": "/etc/passwd"}).to_string(),
        0o600,
    );
    let gw = discover(&opts(&h)).unwrap();
    let trajs: Vec<_> = gw
        .transcript_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == TranscriptKind::Trajectory)
        .collect();
    assert_eq!(trajs.len(), 2);
    assert!(trajs.iter().any(|f| f.path == moved && f.session_id == sid));
    let s = gw.sessions().unwrap();
    let s = s.iter().find(|s| s.id == sid).unwrap();
    assert_eq!(s.paths.len(), 2, "the moved sidecar belongs to its session");
}

#[test]
fn deleted_zst_archive_opens_as_jsonl() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let gw = discover(&opts(&h)).unwrap();
    let files = gw.transcript_files().unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.kind, TranscriptKind::DeletedZst);
    assert_eq!(f.session_id, "1d8ef48d-539f-40a0-91e2-4b048993d214");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f.open().unwrap(), &mut text).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["type"], "session");
    assert_eq!(header["version"], 4);
    assert_eq!(header["id"], f.session_id.as_str());
    assert!(text.lines().count() > 5);
}

#[test]
fn sessions_are_classified_current_idle_and_locked() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let live = h.path("agents/main/sessions/e52e27a7-c658-471f-90a8-811dd2effa5a.jsonl");
    h.add_lock(&live, std::process::id());
    let stale_target = h.path("agents/main/sessions/5ae532ee-dfd0-4559-a05b-420f95c02e92.jsonl");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    h.add_lock(&stale_target, dead_pid);
    let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
    let idle = h.path("agents/main/sessions/9ab6be67-3620-4259-9e0f-eb11b5840f8e.jsonl");
    h.set_mtime(&idle, old);

    let gw = discover(&opts(&h)).unwrap();
    let sessions = gw.sessions().unwrap();
    assert_eq!(sessions.len(), 5);
    let get = |id: &str| sessions.iter().find(|s| s.id.starts_with(id)).unwrap();
    // In sessions.json: current. 9ab6be67 comes from another run: not current.
    for id in ["e52e27a7", "5ae532ee", "2d048393", "e2c99222"] {
        assert!(get(id).current, "{id}");
    }
    assert!(!get("9ab6be67").current);
    assert_eq!(get("e52e27a7").keys, vec!["agent:main:main".to_owned()]);
    assert!(get("e52e27a7").locked, "our own pid is alive");
    assert!(!get("5ae532ee").locked, "a dead pid's lock is stale");
    assert_eq!(
        moltvault_gateway::lock_state(&stale_target),
        moltvault_gateway::LockState::Stale { pid: dead_pid }
    );
    let now = SystemTime::now();
    assert!(get("9ab6be67").idle_for(Duration::from_secs(86_400), now));
    assert!(!get("2d048393").idle_for(Duration::from_secs(86_400), now));
    // The trajectory sidecar belongs to its session.
    assert_eq!(get("2d048393").paths.len(), 2);
    assert!(get("2d048393").paths[0].extension().unwrap() == "jsonl");
}

#[test]
fn clawdbot_current_session_comes_from_sessions_json() {
    let h = TestHome::new(SampleLine::Clawdbot2026_1_24);
    let gw = discover(&opts(&h)).unwrap();
    let sessions = gw.sessions().unwrap();
    let cur: Vec<_> = sessions
        .iter()
        .filter(|s| s.current)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(cur, ["cb-plugin-1"]);
    assert_eq!(sessions.len(), 2);
    // A new current session after a reset: the old one is no longer current.
    h.add_session("main", "newsid", &[]);
    h.set_current("main", "agent:main:main", "newsid");
    let sessions = gw.sessions().unwrap();
    let cur: Vec<_> = sessions
        .iter()
        .filter(|s| s.current)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(cur, ["newsid"]);
}

#[test]
fn sqlite_sessions_come_from_session_rows() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let gw = discover(&opts(&h)).unwrap();
    let sessions = gw.sessions().unwrap();
    let s = sessions
        .iter()
        .find(|s| s.id == "0800f919-15e3-4b0e-a722-ad7259e4e455")
        .unwrap();
    assert!(s.current);
    assert_eq!(s.store, StoreKind::Sqlite);
    assert_eq!(s.keys, vec!["agent:main:main".to_owned()]);
    assert!(s.paths[0].ends_with("openclaw-agent.sqlite"));
    assert!(s.modified.is_some());
    assert!(sessions.iter().all(|s| s.current));
}

fn secret<'a>(
    list: &'a [moltvault_gateway::ConfiguredSecret],
    id: &str,
) -> &'a moltvault_gateway::ConfiguredSecret {
    list.iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no secret {id}"))
}

fn value_of(s: &moltvault_gateway::ConfiguredSecret) -> String {
    s.value.as_ref().unwrap().expose_secret().to_owned()
}

#[test]
fn configured_secrets_of_clawdbot() {
    let h = TestHome::new(SampleLine::Clawdbot2026_1_24);
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let cfg = h.config();
    let tok = secret(&list, "gateway.auth.token");
    assert_eq!(tok.kind, SecretKind::GatewayToken);
    assert_eq!(
        value_of(tok),
        cfg["gateway"]["auth"]["token"].as_str().unwrap()
    );
    let key = secret(&list, "models.providers.fake.apiKey");
    assert_eq!(
        key.kind,
        SecretKind::ProviderKey {
            provider: "fake".into()
        }
    );
    assert_eq!(
        value_of(key),
        cfg["models"]["providers"]["fake"]["apiKey"]
            .as_str()
            .unwrap()
    );
    // The same value in models.json is another location of the same secret.
    let files: Vec<_> = key
        .locations
        .iter()
        .map(|l| l.file().to_path_buf())
        .collect();
    assert!(files.iter().any(|f| f.ends_with("clawdbot.json")));
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("agents/main/agent/models.json"))
    );
    assert!(key.locations.contains(&Location::Json {
        file: canon(&h.path("agents/main/agent/models.json")),
        pointer: "/providers/fake/apiKey".into()
    }));
    let env = secret(&list, "env:OPENAI_API_KEY");
    let dotenv = fs::read_to_string(h.path(".env")).unwrap();
    assert_eq!(
        value_of(env),
        dotenv.trim().strip_prefix("OPENAI_API_KEY=").unwrap()
    );
    let ap = secret(&list, "auth-profile:anthropic:manual");
    let profiles: Value = serde_json::from_str(
        &fs::read_to_string(h.path("agents/main/agent/auth-profiles.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        value_of(ap),
        profiles["profiles"]["anthropic:manual"]["token"]
            .as_str()
            .unwrap()
    );
    assert!(list.iter().all(|s| s.active));
    // Numbers like maxTokens are not secrets.
    assert!(!list.iter().any(|s| s.id.ends_with("maxTokens")));
}

#[test]
fn configured_secrets_of_openclaw_7_35_include_backups_and_the_auth_store() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let key = secret(&list, "models.providers.custom-127-0-0-1-18555.apiKey");
    let names: Vec<String> = key
        .locations
        .iter()
        .map(|l| l.file().file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["openclaw.json", "openclaw.json.last-good", "models.json"]
    );
    let ap = secret(&list, "auth-profile:openai:api-key");
    assert!(matches!(
        &ap.locations[0],
        Location::Sqlite { table, row_key, pointer, .. }
            if table == "auth_profile_store" && row_key == "primary"
            && pointer == "/profiles/openai:api-key/key"
    ));
    let conn =
        rusqlite::Connection::open(h.path("agents/main/agent/openclaw-agent.sqlite")).unwrap();
    let store: String = conn
        .query_row("SELECT store_json FROM auth_profile_store", [], |r| {
            r.get(0)
        })
        .unwrap();
    let store: Value = serde_json::from_str(&store).unwrap();
    assert_eq!(
        value_of(ap),
        store["profiles"]["openai:api-key"]["key"].as_str().unwrap()
    );
}

#[test]
fn configured_secrets_of_openclaw_9_6() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let ids: Vec<_> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "gateway.auth.token",
            "models.providers.custom-127-0-0-1-18555.apiKey"
        ]
    );
    assert_eq!(
        value_of(&list[0]),
        h.config()["gateway"]["auth"]["token"].as_str().unwrap()
    );
}

#[test]
fn planted_secrets_refs_and_old_backups() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let old = h.add_config_backup(".bak.1");
    let tg = format!(
        "{}:{}",
        "123456789", "AAF-fake-telegram-token-body-000000000"
    );
    h.set_config("/channels/telegram/botToken", json!(tg));
    h.set_config(
        "/channels/slack/accounts/work/signingSecret",
        json!("fake-signing-secret-1"),
    );
    h.set_config("/hooks/token", json!("fake-hooks-token-0123456789"));
    h.set_config("/gateway/remote/token", json!("${REMOTE_GATEWAY_TOKEN}"));
    h.set_config(
        "/models/providers/ref/apiKey",
        json!({"source": "exec", "provider": "vault", "id": "providers/ref/apiKey"}),
    );
    h.set_config(
        "/gateway/auth/token",
        json!("new-gateway-token-after-rotation"),
    );
    h.write(
        "agents/main/sessions/../../../tg.token",
        "file-token-value\n",
        0o600,
    );
    h.set_config("/channels/telegram/accounts/b/tokenFile", json!("tg.token"));
    h.add_env("OPENCLAW_GATEWAY_PASSWORD", "fake-password-from-env");
    h.add_env("OPENCLAW_GATEWAY_URL", "ws://127.0.0.1:18789");
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();

    let tgs = secret(&list, "channels.telegram.botToken");
    assert_eq!(
        tgs.kind,
        SecretKind::ChannelToken {
            channel: "telegram".into()
        }
    );
    assert_eq!(value_of(tgs), tg);
    assert_eq!(
        value_of(secret(&list, "channels.slack.accounts.work.signingSecret")),
        "fake-signing-secret-1"
    );
    assert_eq!(secret(&list, "hooks.token").kind, SecretKind::HooksToken);
    let remote = secret(&list, "gateway.remote.token");
    assert!(remote.value.is_none());
    assert_eq!(
        remote.reference,
        Some(SecretRef::EnvVar("REMOTE_GATEWAY_TOKEN".into()))
    );
    let r = secret(&list, "models.providers.ref.apiKey");
    assert!(r.value.is_none());
    assert!(
        matches!(&r.reference, Some(SecretRef::Ref { source, provider, .. }) if source == "exec" && provider == "vault")
    );
    let file_tok = secret(&list, "channels.telegram.accounts.b.tokenFile");
    assert_eq!(value_of(file_tok), "file-token-value");
    assert!(matches!(file_tok.locations[0], Location::File { .. }));
    assert_eq!(
        secret(&list, "env:OPENCLAW_GATEWAY_PASSWORD").kind,
        SecretKind::GatewayPassword
    );
    assert!(!list.iter().any(|s| s.id == "env:OPENCLAW_GATEWAY_URL"));

    // The rotated-away token survives only in the backup: an inactive entry with the same id.
    let toks: Vec<_> = list
        .iter()
        .filter(|s| s.id == "gateway.auth.token")
        .collect();
    assert_eq!(toks.len(), 2);
    let live = toks.iter().find(|s| s.active).unwrap();
    let stale = toks.iter().find(|s| !s.active).unwrap();
    assert_eq!(value_of(live), "new-gateway-token-after-rotation");
    assert_eq!(stale.locations[0].file(), canon(&old));
}

#[test]
fn every_planted_secret_is_inventoried_on_every_line() {
    for line in SampleLine::ALL {
        let h = TestHome::new(line);
        let planted = h.plant_secrets(7);
        let gw = discover(&opts(&h)).unwrap();
        let list = gw.configured_secrets().unwrap();
        for p in &planted {
            let s = secret(&list, p.id);
            assert_eq!(value_of(s), p.value, "{line:?} {}", p.id);
            assert!(s.active);
        }
        let dbg = format!("{list:?}");
        assert!(planted.iter().all(|p| !dbg.contains(&p.value)));
    }
}

#[test]
fn token_files_resolve_home_and_refuse_symlinks() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    fs::write(h.home().join("tg.token"), "home-token-value\n").unwrap();
    std::os::unix::fs::symlink(h.home().join("tg.token"), h.path("linked.token")).unwrap();
    h.set_config("/channels/telegram/tokenFile", json!("~/tg.token"));
    h.set_config(
        "/channels/telegram/accounts/l/tokenFile",
        json!("linked.token"),
    );
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    assert_eq!(
        value_of(secret(&list, "channels.telegram.tokenFile")),
        "home-token-value"
    );
    assert!(
        !list
            .iter()
            .any(|s| s.id == "channels.telegram.accounts.l.tokenFile"),
        "symlinked token files are not read (the gateway rejects them too)"
    );
}

#[test]
fn secret_debug_output_never_shows_values() {
    let h = TestHome::new(SampleLine::Clawdbot2026_1_24);
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let dbg = format!("{list:?}");
    for s in &list {
        let v = value_of(s);
        assert!(!dbg.contains(&v), "Debug of {} shows its value", s.id);
    }
    assert!(dbg.contains("REDACTED"));
}

#[test]
fn includes_are_resolved_and_their_secrets_located() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    h.write(
        "secrets.json5",
        "// channel secrets\n{ telegram: { botToken: 'inc-token-111' } }\n",
        0o600,
    );
    let mut cfg = h.config();
    cfg["channels"] = json!({"$include": "./secrets.json5", "discord": {"token": "dc-token-222"}});
    h.write("openclaw.json", serde_json::to_vec(&cfg).unwrap(), 0o600);
    let c = Config::load(&h.config_path()).unwrap();
    assert_eq!(c.includes(), vec![h.path("./secrets.json5").as_path()]);
    assert_eq!(
        c.get("channels.telegram.botToken"),
        Some(&json!("inc-token-111"))
    );
    assert_eq!(
        c.get("channels.discord.token"),
        Some(&json!("dc-token-222"))
    );
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let t = secret(&list, "channels.telegram.botToken");
    assert_eq!(value_of(t), "inc-token-111");
    assert_eq!(
        t.locations[0],
        Location::Json {
            file: h.path("./secrets.json5"),
            pointer: "/telegram/botToken".into()
        }
    );
    assert!(gw.credential_files().contains(&h.path("./secrets.json5")));
}

#[test]
fn include_loops_are_errors() {
    let h = TestHome::empty();
    let a = h.root().join("a.json5");
    fs::write(&a, "{ $include: './b.json5' }").unwrap();
    fs::write(h.root().join("b.json5"), "{ $include: './a.json5' }").unwrap();
    assert!(matches!(
        Config::load(&a).unwrap_err(),
        Error::IncludeDepth { .. }
    ));
}

#[test]
fn parse_errors_name_the_position_but_never_the_content() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    h.write(
        "openclaw.json",
        "{\n  gateway: { auth: { token: 'sk-leaky-secret-value' ,,, } }\n}\n",
        0o600,
    );
    // Discovery still works (backups and audits need it most when the config is broken)...
    let gw = discover(&opts(&h)).unwrap();
    assert_eq!(gw.version, None);
    // ...and reading the config reports where the problem is, without quoting the line.
    let err = gw.configured_secrets().unwrap_err();
    assert!(matches!(gw.config(), Err(Error::Parse { .. })));
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(!msg.contains("sk-leaky"), "{msg}");
}

#[test]
fn credential_files_lists_what_exists() {
    let h = TestHome::new(SampleLine::Clawdbot2026_1_24);
    h.add_config_backup(".bak");
    h.write("credentials/whatsapp/default/creds.json", "{}", 0o600);
    h.write(
        "devices/paired.json",
        r#"{"dev1":{"tokens":{"operator":{"token":"devtok-abcdef0123"}}}}"#,
        0o600,
    );
    h.write(
        "identity/device.json",
        r#"{"privateKeyPem":"-----BEGIN PRIVATE KEY-----\nfake\n-----END PRIVATE KEY-----\n"}"#,
        0o600,
    );
    let gw = discover(&opts(&h)).unwrap();
    let files = gw.credential_files();
    let rel: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(&gw.state_dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for want in [
        "clawdbot.json",
        "clawdbot.json.bak",
        ".env",
        "agents/main/agent/models.json",
        "agents/main/agent/auth-profiles.json",
        "credentials/whatsapp/default/creds.json",
        "devices/paired.json",
        "identity/device.json",
    ] {
        assert!(rel.iter().any(|r| r == want), "missing {want} in {rel:?}");
    }
    let list = gw.configured_secrets().unwrap();
    let dev = list
        .iter()
        .find(|s| s.kind == SecretKind::DeviceToken)
        .unwrap();
    assert_eq!(value_of(dev), "devtok-abcdef0123");
    assert_eq!(dev.id, "device:/dev1/tokens/operator/token");
    assert!(list.iter().any(|s| s.kind == SecretKind::DeviceKey));
}

#[test]
fn service_unit_environment_is_a_location() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let unit = h
        .home()
        .join(".config/systemd/user/openclaw-gateway.service");
    fs::create_dir_all(unit.parent().unwrap()).unwrap();
    let tok = h.config()["gateway"]["auth"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::write(
        &unit,
        format!("[Service]\nEnvironment=\"OPENCLAW_GATEWAY_TOKEN={tok}\" \"HOME=/h\"\n"),
    )
    .unwrap();
    let gw = discover(&opts(&h)).unwrap();
    let list = gw.configured_secrets().unwrap();
    let s = secret(&list, "env:OPENCLAW_GATEWAY_TOKEN");
    assert_eq!(s.kind, SecretKind::GatewayToken);
    assert_eq!(value_of(s), tok);
    assert!(gw.credential_files().contains(&unit));
}

#[test]
fn config_edit_sets_and_removes_atomically_keeping_a_backup_and_the_mode() {
    let h = TestHome::new(SampleLine::OpenClaw2026_7_35);
    let path = h.config_path();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::read(&path).unwrap();
    let out = config::edit(
        &path,
        &[
            Edit::set("plugins.load.paths", json!(["/opt/moltvault/plugin"])),
            Edit::set("plugins.entries.moltvault-redact.enabled", json!(true)),
            Edit::remove("wizard"),
            Edit::remove("does.not.exist"),
        ],
    )
    .unwrap();
    assert!(out.changed);
    let backup = out.backup.unwrap();
    assert_eq!(fs::read(&backup).unwrap(), before);
    assert_eq!(
        fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.get("plugins.load.paths"),
        Some(&json!(["/opt/moltvault/plugin"]))
    );
    assert_eq!(c.get("wizard"), None);
    assert_eq!(
        c.get("gateway.auth.mode"),
        Some(&json!("token")),
        "others kept"
    );
    // Key order is preserved: `agents` still comes first.
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.trim_start().starts_with("{\n  \"agents\""));
    // Idempotent: the same edit again changes nothing and writes nothing.
    let again = config::edit(
        &path,
        &[Edit::set(
            "plugins.load.paths",
            json!(["/opt/moltvault/plugin"]),
        )],
    )
    .unwrap();
    assert!(!again.changed);
    // No temp files left.
    let leftovers: Vec<_> = fs::read_dir(h.state_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("mvtmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn config_edit_of_json5_drops_comments_and_refuses_bad_paths() {
    let h = TestHome::empty();
    let p = h.root().join("openclaw.json");
    fs::write(
        &p,
        "// my notes\n{ gateway: { port: 18789, }, list: [1, 2] }\n",
    )
    .unwrap();
    config::edit(&p, &[Edit::set("gateway.bind", json!("loopback"))]).unwrap();
    let text = fs::read_to_string(&p).unwrap();
    assert!(!text.contains("my notes"));
    assert!(
        fs::read_to_string(h.root().join("openclaw.json.moltvault-bak"))
            .unwrap()
            .contains("my notes")
    );
    let err = config::edit(&p, &[Edit::set("gateway.port.x", json!(1))]).unwrap_err();
    assert!(matches!(err, Error::ConfigPath { .. }), "{err}");
    let err = config::edit(&p, &[Edit::set("list.5", json!(1))]).unwrap_err();
    assert!(matches!(err, Error::ConfigPath { .. }), "{err}");
    config::edit(&p, &[Edit::set("list.2", json!(3))]).unwrap();
    assert_eq!(
        Config::load(&p).unwrap().get("list"),
        Some(&json!([1, 2, 3]))
    );
    // A key defined only by an include cannot be removed from the main file.
    fs::write(h.root().join("inc.json5"), "{ hooks: { token: 'x' } }").unwrap();
    fs::write(&p, "{ $include: './inc.json5' }").unwrap();
    let err = config::edit(&p, &[Edit::remove("hooks.token")]).unwrap_err();
    assert!(err.to_string().contains("included file"), "{err}");
    // Symlinked configs are not written through.
    let link = h.root().join("link.json");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(config::edit(&link, &[Edit::set("a", json!(1))]).is_err());
}

#[test]
fn running_gateway_processes_and_held_database_locks_are_seen() {
    let h = TestHome::new(SampleLine::OpenClaw2026_9_6);
    let gw = discover(&opts(&h)).unwrap();
    // A process titled like the gateway's, serving this home's default state dir.
    let mut child = std::process::Command::new("bash")
        .args(["-c", "exec -a openclaw-gateway sleep 30"])
        .env_remove("OPENCLAW_STATE_DIR")
        .env("HOME", h.home())
        .spawn()
        .unwrap();
    // Another gateway (different state dir) is not ours.
    let mut other = std::process::Command::new("bash")
        .args(["-c", "exec -a openclaw-gateway sleep 30"])
        .env("OPENCLAW_STATE_DIR", h.root())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ev = gw.running_evidence();
    assert!(
        ev.processes
            .iter()
            .any(|(pid, name)| *pid == child.id() && name == "openclaw-gateway")
    );
    assert!(!ev.processes.iter().any(|(pid, _)| *pid == other.id()));
    assert!(gw.is_running());
    child.kill().unwrap();
    child.wait().unwrap();
    other.kill().unwrap();
    other.wait().unwrap();

    // An open WAL connection (as the gateway keeps) holds a lock on the -shm file.
    let ev = gw.running_evidence();
    assert!(ev.held_locks.is_empty(), "{:?}", ev.held_locks);
    let db = h.path("agents/main/agent/openclaw-agent.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let _: i64 = conn
        .query_row("SELECT count(*) FROM transcript_events", [], |r| r.get(0))
        .unwrap();
    let ev = gw.running_evidence();
    assert!(
        ev.held_locks
            .iter()
            .any(|p| p.to_string_lossy().ends_with("openclaw-agent.sqlite-shm")),
        "{:?}",
        ev.held_locks
    );
    drop(conn);
}
