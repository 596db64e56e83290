//! `moltvault plugin install|status|uninstall`: the gateway plugin that redacts every message
//! before the gateway persists it (plugins/openclaw, embedded in this binary).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use moltvault_gateway::Gateway;
use moltvault_gateway::config::{self as gwconfig, Edit};
use moltvault_vault::fsio;
use serde_json::{Value, json};

use crate::commands::Ctx;
use crate::report::Status;
use crate::ui;

/// The plugin id: manifest `id`, package.json `name` and the `plugins.entries` key.
pub const PLUGIN_ID: &str = "moltvault-redact";

/// The addon's name in the plugin directory (plugins/openclaw/bridge.js loads it from there).
pub const ADDON_FILE: &str = "moltvault.node";

/// The names a build leaves the addon under, next to the moltvault binary: cargo's cdylib name
/// (`cargo build` puts it beside the binary in `target/<profile>/`), or the installed name.
const ADDON_BUILD_NAMES: &[&str] = &[
    "libmoltvault_node.so",
    "libmoltvault_node.dylib",
    ADDON_FILE,
];

/// The plugin's files, embedded so a copy install needs no source tree.
pub const PLUGIN_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../../plugins/openclaw/package.json"),
    ),
    (
        "openclaw.plugin.json",
        include_str!("../../../plugins/openclaw/openclaw.plugin.json"),
    ),
    (
        "clawdbot.plugin.json",
        include_str!("../../../plugins/openclaw/clawdbot.plugin.json"),
    ),
    (
        "moltbot.plugin.json",
        include_str!("../../../plugins/openclaw/moltbot.plugin.json"),
    ),
    (
        "index.js",
        include_str!("../../../plugins/openclaw/index.js"),
    ),
    (
        "bridge.js",
        include_str!("../../../plugins/openclaw/bridge.js"),
    ),
    (
        "bridge-worker.js",
        include_str!("../../../plugins/openclaw/bridge-worker.js"),
    ),
    (
        "codec.js",
        include_str!("../../../plugins/openclaw/codec.js"),
    ),
];

/// Installs, checks or removes the transparent-redaction plugin of the detected gateway.
///
/// The plugin hooks the gateway's synchronous persistence hooks (`tool_result_persist`, and
/// `before_message_write` on openclaw 2026.2.17+) and redacts every message with this binary's
/// engine before it reaches the transcript: in the gateway process through the Node addon
/// (`moltvault.node`) when one is installed, else through `moltvault serve --stdio`. See
/// docs/plugin.md.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The plugin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    Install(InstallArgs),
    Status(StatusArgs),
    Uninstall(UninstallArgs),
}

/// Installs the plugin into the gateway: copies the embedded files into
/// `<state dir>/extensions/moltvault-redact/` (or links `--link DIR`), plus the Node addon as
/// `moltvault.node` when one is found (`--addon`, `$MOLTVAULT_ADDON`, or
/// `libmoltvault_node.so` next to the moltvault binary), then enables it in the gateway config
/// (`plugins.load.paths`, `plugins.entries.moltvault-redact`), keeping a backup of the config.
/// Without an addon the plugin uses `moltvault serve --stdio`. Restart the gateway afterwards.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Load the plugin from this directory (a source checkout) instead of copying it.
    #[arg(long, value_name = "DIR")]
    pub link: Option<PathBuf>,
    /// What to redact: `tools` (tool results and tool-call arguments) or `all` (every string).
    #[arg(long, value_parser = ["tools", "all"], default_value = "all")]
    pub mode: String,
    /// What to persist when the engine is unavailable: `withhold` (a marker) or `passthrough`.
    #[arg(long, value_parser = ["withhold", "passthrough"], default_value = "withhold")]
    pub fail_policy: String,
    /// An extra rules file for the engine.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The moltvault binary the plugin runs (default: this one).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Do not sweep the session's side files (trajectory sidecars) after each turn.
    #[arg(long)]
    pub no_sweep: bool,
    /// The Node addon to install (default: `$MOLTVAULT_ADDON`, else `libmoltvault_node.so` next
    /// to the moltvault binary, if there is one).
    #[arg(long, value_name = "PATH")]
    pub addon: Option<PathBuf>,
    /// How the plugin reaches the engine: `auto` (the addon when it loads and matches this
    /// moltvault's version, else `serve --stdio`), `addon` or `stdio`.
    #[arg(long, value_parser = ["auto", "addon", "stdio"], default_value = "auto")]
    pub bridge: String,
}

/// Says whether the plugin is installed and current, whether its engine starts, and when a
/// gateway process last loaded it.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Prints the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Removes the plugin from the gateway config and deletes the copied files.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {}

pub fn run(ctx: &Ctx, args: PluginArgs) -> anyhow::Result<Status> {
    match args.command {
        PluginCommand::Install(a) => install(ctx, a),
        PluginCommand::Status(a) => status(ctx, a),
        PluginCommand::Uninstall(a) => uninstall(ctx, a),
    }
}

/// Where a copy install puts the plugin.
fn copy_dir(gw: &Gateway) -> PathBuf {
    gw.state_dir.join("extensions").join(PLUGIN_ID)
}

fn config_path(gw: &Gateway) -> anyhow::Result<PathBuf> {
    gw.config_path.clone().ok_or_else(|| {
        crate::report::user_error(
            format!(
                "the gateway in {} has no config file",
                gw.state_dir.display()
            ),
            format!(
                "Run `{} onboard` (or `{} setup`) first, then install the plugin.",
                gw.line.name(),
                gw.line.name()
            ),
        )
    })
}

fn install(ctx: &Ctx, args: InstallArgs) -> anyhow::Result<Status> {
    let gw = ctx.gateway()?;
    let cfg_path = config_path(&gw)?;
    let binary = match &args.binary {
        Some(b) => {
            std::fs::canonicalize(b).with_context(|| format!("cannot find {}", b.display()))?
        }
        None => std::env::current_exe().context("cannot locate the moltvault binary")?,
    };
    let addon = find_addon(args.addon.clone(), &binary)?;
    if addon.is_none() && args.bridge == "addon" {
        return Err(crate::report::user_error(
            format!("--bridge addon, but no addon next to {}", binary.display()),
            "Build it with `cargo build -p moltvault-node` (or `cargo build`), or pass --addon PATH.",
        ));
    }
    let dir = match &args.link {
        Some(d) => {
            let d =
                std::fs::canonicalize(d).with_context(|| format!("cannot open {}", d.display()))?;
            if !d.join("openclaw.plugin.json").is_file() {
                return Err(crate::report::user_error(
                    format!("{} holds no openclaw.plugin.json", d.display()),
                    "Point --link at the plugins/openclaw directory of a moltvault checkout.",
                ));
            }
            d
        }
        None => {
            let d = copy_dir(&gw);
            write_plugin_files(&d, addon.as_deref())?;
            d
        }
    };
    let vault_dir = std::path::absolute(&ctx.vault_dir)
        .with_context(|| format!("cannot resolve {}", ctx.vault_dir.display()))?;
    let mut plugin_cfg = json!({
        "mode": args.mode,
        "failPolicy": args.fail_policy,
        "binary": binary.to_string_lossy(),
        "stateDir": gw.state_dir.to_string_lossy(),
        "vaultDir": vault_dir.to_string_lossy(),
        "sweep": !args.no_sweep,
        "bridge": args.bridge,
    });
    if let (Some(a), Some(_)) = (&addon, &args.link) {
        // A linked checkout is not ours to write into: the plugin loads the build's addon.
        plugin_cfg["addon"] = a.to_string_lossy().into();
    }
    if let Some(r) = &args.rules {
        let r = std::fs::canonicalize(r).with_context(|| format!("cannot find {}", r.display()))?;
        plugin_cfg["rulesFile"] = r.to_string_lossy().into();
    }
    // The engine must start before the gateway depends on it.
    let hello = engine_hello(&binary, &gw.state_dir, args.rules.as_deref())
        .context("the redaction engine does not start; nothing was installed")?;
    if let Some(v) = hello.get("version").and_then(Value::as_str) {
        plugin_cfg["engineVersion"] = v.into();
    }

    let merged = gwconfig::Config::load(&cfg_path)?.merged;
    let mut edits = vec![
        Edit::set(&format!("plugins.entries.{PLUGIN_ID}.enabled"), true.into()),
        Edit::set(&format!("plugins.entries.{PLUGIN_ID}.config"), plugin_cfg),
    ];
    let dir_s = dir.to_string_lossy().into_owned();
    let mut paths = string_list(gwconfig::get_path(&merged, &["plugins", "load", "paths"]));
    if !paths.contains(&dir_s) {
        paths.push(dir_s.clone());
        edits.push(Edit::set("plugins.load.paths", json!(paths)));
    }
    if let Some(allow) = gwconfig::get_path(&merged, &["plugins", "allow"]) {
        let mut allow = string_list(Some(allow));
        if !allow.is_empty() && !allow.iter().any(|a| a == PLUGIN_ID) {
            allow.push(PLUGIN_ID.to_owned());
            edits.push(Edit::set("plugins.allow", json!(allow)));
        }
    }
    let out = gwconfig::edit(&cfg_path, &edits)?;
    ui::note(&format!(
        "installed {PLUGIN_ID} into the {} gateway at {}",
        gw.line.name(),
        gw.state_dir.display()
    ));
    ui::note(&format!("  plugin files: {}", dir.display()));
    ui::note(&format!(
        "  engine: {} ({} rules, {} gateway secrets, mode {})",
        binary.display(),
        hello.get("rules").and_then(Value::as_u64).unwrap_or(0),
        hello.get("literals").and_then(Value::as_u64).unwrap_or(0),
        args.mode
    ));
    ui::note(&match (&addon, args.bridge.as_str()) {
        (_, "stdio") => "  bridge: stdio (moltvault serve --stdio; --bridge stdio)".to_owned(),
        (Some(a), _) => format!(
            "  bridge: addon ({ADDON_FILE} from {}, in the gateway process)",
            a.display()
        ),
        (None, _) => format!(
            "  bridge: stdio (moltvault serve --stdio; no addon next to {})",
            binary.display()
        ),
    });
    if let Some(b) = out.backup {
        ui::note(&format!(
            "  config: {} (previous copy: {})",
            cfg_path.display(),
            b.display()
        ));
    }
    ui::note(
        "Restart the gateway to load it; `moltvault plugin status` then shows the gateway process that loaded it.",
    );
    Ok(Status::Ok)
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The addon to install: `explicit` (`--addon`, which must exist), else `$MOLTVAULT_ADDON`, else
/// a build of it next to the moltvault binary; `None` when there is none.
fn find_addon(explicit: Option<PathBuf>, binary: &Path) -> anyhow::Result<Option<PathBuf>> {
    let explicit =
        explicit.or_else(|| crate::env::var(crate::env::MOLTVAULT_ADDON).map(PathBuf::from));
    if let Some(a) = explicit {
        let a = std::fs::canonicalize(&a)
            .with_context(|| format!("cannot find the addon {}", a.display()))?;
        return Ok(Some(a));
    }
    let Some(bin_dir) = binary.parent() else {
        return Ok(None);
    };
    Ok(ADDON_BUILD_NAMES
        .iter()
        .map(|n| bin_dir.join(n))
        .find(|p| p.is_file()))
}

/// Writes the embedded plugin files into `dir` (0700 dir, 0644 files: the gateway reads them),
/// and the addon as `moltvault.node` (an older one is removed when there is none now).
fn write_plugin_files(dir: &Path, addon: Option<&Path>) -> anyhow::Result<()> {
    if dir.exists() && !dir.join("openclaw.plugin.json").is_file() {
        return Err(crate::report::user_error(
            format!("{} exists and is not a moltvault plugin", dir.display()),
            "Move that directory away, or install with --link.",
        ));
    }
    fsio::create_secret_dir_all(dir)?;
    for (name, text) in PLUGIN_FILES {
        let opts = fsio::WriteOptions {
            mode: 0o644,
            replace: fsio::Replace::Allow,
            keep_owner: false,
        };
        fsio::write_atomic(dir.join(name), text.as_bytes(), opts)?;
    }
    let target = dir.join(ADDON_FILE);
    match addon {
        Some(a) => {
            let bytes = std::fs::read(a)
                .with_context(|| format!("cannot read the addon {}", a.display()))?;
            let opts = fsio::WriteOptions {
                mode: 0o644,
                replace: fsio::Replace::Allow,
                keep_owner: false,
            };
            fsio::write_atomic(&target, &bytes, opts)?;
        }
        None if target.exists() => fsio::remove_durably(&target)?,
        None => {}
    }
    Ok(())
}

/// Starts `binary serve --stdio` and returns its hello reply.
fn engine_hello(binary: &Path, state_dir: &Path, rules: Option<&Path>) -> anyhow::Result<Value> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(binary);
    cmd.arg("--state-dir")
        .arg(state_dir)
        .args(["serve", "--stdio"]);
    if let Some(r) = rules {
        cmd.arg("--rules").arg(r);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(b"{\"id\":1,\"op\":\"hello\"}\n")?;
    drop(stdin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let out = child.wait_with_output()?;
    if line.trim().is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("moltvault serve answered nothing: {}", err.trim());
    }
    let v: Value =
        serde_json::from_str(&line).context("moltvault serve answered a non-JSON line")?;
    if v.get("ok") != Some(&Value::Bool(true)) {
        anyhow::bail!(
            "moltvault serve failed: {}",
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
        );
    }
    Ok(v)
}

/// Everything `status` reports.
#[derive(Debug, serde::Serialize)]
struct PluginStatus {
    gateway: String,
    state_dir: PathBuf,
    config: Option<PathBuf>,
    enabled: bool,
    plugin_dir: Option<PathBuf>,
    files_current: Option<bool>,
    engine: Option<Value>,
    engine_error: Option<String>,
    /// The bridge the gateway would use: `addon` or `stdio`.
    bridge: &'static str,
    /// Why (e.g. "no addon installed").
    bridge_note: String,
    last_load: Option<Value>,
}

fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<Status> {
    let gw = ctx.gateway()?;
    let merged = match &gw.config_path {
        Some(p) => Some(gwconfig::Config::load(p)?.merged),
        None => None,
    };
    let get = |path: &[&str]| merged.as_ref().and_then(|m| gwconfig::get_path(m, path));
    let entry_cfg = get(&["plugins", "entries", PLUGIN_ID, "config"]).cloned();
    let enabled = get(&["plugins", "entries", PLUGIN_ID, "enabled"]) == Some(&Value::Bool(true))
        && get(&["plugins", "enabled"]) != Some(&Value::Bool(false));
    let plugin_dir = string_list(get(&["plugins", "load", "paths"]))
        .into_iter()
        .map(PathBuf::from)
        .find(|d| manifest_id(d).as_deref() == Some(PLUGIN_ID))
        .or_else(|| Some(copy_dir(&gw)).filter(|d| d.is_dir()));
    let files_current = plugin_dir.as_ref().map(|d| {
        PLUGIN_FILES
            .iter()
            .all(|(name, text)| std::fs::read_to_string(d.join(name)).is_ok_and(|t| t == *text))
    });
    let binary = entry_cfg
        .as_ref()
        .and_then(|c| c.get("binary"))
        .and_then(Value::as_str)
        .map(PathBuf::from);
    let rules = entry_cfg
        .as_ref()
        .and_then(|c| c.get("rulesFile"))
        .and_then(Value::as_str)
        .map(PathBuf::from);
    let (engine, engine_error) = match &binary {
        Some(b) => match engine_hello(b, &gw.state_dir, rules.as_deref()) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        },
        None => (None, None),
    };
    let (bridge, bridge_note) =
        bridge_choice(entry_cfg.as_ref(), plugin_dir.as_deref(), engine.as_ref());
    let last_load = plugin_dir
        .as_ref()
        .and_then(|_| std::fs::read_to_string(load_record_path(&gw)).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|mut v| {
            let alive = v.get("pid").and_then(Value::as_i64).is_some_and(pid_alive);
            v["alive"] = alive.into();
            v
        });
    let st = PluginStatus {
        gateway: gw.line.name().to_owned(),
        state_dir: gw.state_dir.clone(),
        config: gw.config_path.clone(),
        enabled,
        plugin_dir,
        files_current,
        engine,
        engine_error,
        bridge,
        bridge_note,
        last_load,
    };
    if args.json {
        ui::data(&serde_json::to_string_pretty(&st)?);
    } else {
        render_status(&st);
    }
    let healthy = st.enabled
        && st.files_current == Some(true)
        && st.engine.is_some()
        && !st.bridge_note.starts_with("UNAVAILABLE");
    Ok(if healthy {
        Status::Ok
    } else {
        Status::Findings
    })
}

/// The bridge the plugin would pick with this config (plugins/openclaw/bridge.js, `openEngine`):
/// the addon when it is installed, configured and (for `auto`) of the engine's version.
fn bridge_choice(
    cfg: Option<&Value>,
    plugin_dir: Option<&Path>,
    engine: Option<&Value>,
) -> (&'static str, String) {
    let get = |k: &str| cfg.and_then(|c| c.get(k)).and_then(Value::as_str);
    let wanted = get("bridge").unwrap_or("auto");
    if wanted == "stdio" {
        return ("stdio", "moltvault serve --stdio, as configured".into());
    }
    let addon = get("addon")
        .map(PathBuf::from)
        .or_else(|| plugin_dir.map(|d| d.join(ADDON_FILE)));
    let why_not = match &addon {
        None => Some("no plugin directory".to_owned()),
        Some(a) if !a.is_file() => Some(format!("no addon at {}", a.display())),
        Some(_) if get("stateDir").is_none() || get("vaultDir").is_none() => {
            Some("the config has no stateDir/vaultDir: run `moltvault plugin install`".into())
        }
        Some(_)
            if wanted == "auto"
                && get("engineVersion")
                    != engine
                        .and_then(|e| e.get("version"))
                        .and_then(Value::as_str) =>
        {
            Some(
                "the addon's version differs from the engine's: run `moltvault plugin install`"
                    .into(),
            )
        }
        Some(_) => None,
    };
    match (why_not, addon) {
        (None, Some(a)) => ("addon", format!("{} in the gateway process", a.display())),
        (Some(why), _) if wanted == "addon" => (
            "addon",
            format!("UNAVAILABLE ({why}): the plugin applies its fail policy"),
        ),
        (Some(why), _) => ("stdio", format!("moltvault serve --stdio; {why}")),
        (None, None) => ("stdio", "moltvault serve --stdio".into()),
    }
}

fn render_status(st: &PluginStatus) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    ui::data(&format!(
        "gateway:        {} ({})",
        st.gateway,
        st.state_dir.display()
    ));
    ui::data(&format!("enabled:        {}", yes(st.enabled)));
    match (&st.plugin_dir, st.files_current) {
        (Some(d), Some(cur)) => ui::data(&format!(
            "plugin files:   {} ({})",
            d.display(),
            if cur {
                "current"
            } else {
                "differ from this moltvault version: run `moltvault plugin install`"
            }
        )),
        _ => ui::data("plugin files:   not installed"),
    }
    match (&st.engine, &st.engine_error) {
        (Some(h), _) => ui::data(&format!(
            "engine:         starts (moltvault {}, {} rules, {} gateway secrets)",
            h.get("version").and_then(Value::as_str).unwrap_or("?"),
            h.get("rules").and_then(Value::as_u64).unwrap_or(0),
            h.get("literals").and_then(Value::as_u64).unwrap_or(0)
        )),
        (None, Some(e)) => ui::data(&format!("engine:         FAILS: {e}")),
        (None, None) => ui::data("engine:         not configured"),
    }
    ui::data(&format!(
        "bridge:         {} ({})",
        st.bridge, st.bridge_note
    ));
    match &st.last_load {
        Some(v) => ui::data(&format!(
            "last loaded:    by pid {} at {} ({}; {}; {} bridge)",
            v.get("pid").and_then(Value::as_i64).unwrap_or(0),
            v.get("at").and_then(Value::as_str).unwrap_or("?"),
            v.get("process").and_then(Value::as_str).unwrap_or("?"),
            if v.get("alive") == Some(&Value::Bool(true)) {
                "running"
            } else {
                "exited"
            },
            v.get("bridge").and_then(Value::as_str).unwrap_or("stdio")
        )),
        None => ui::data("last loaded:    never (restart the gateway after installing)"),
    }
}

/// Where the engine records the last gateway process that loaded the plugin.
pub fn load_record_path(gw: &Gateway) -> PathBuf {
    moltvault_gateway::engine::load_record_path(&gw.state_dir)
}

fn manifest_id(dir: &Path) -> Option<String> {
    let t = std::fs::read_to_string(dir.join("openclaw.plugin.json")).ok()?;
    let v: Value = serde_json::from_str(&t).ok()?;
    v.get("id").and_then(Value::as_str).map(str::to_owned)
}

fn pid_alive(pid: i64) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

fn uninstall(ctx: &Ctx, _args: UninstallArgs) -> anyhow::Result<Status> {
    let gw = ctx.gateway()?;
    let mut removed = Vec::new();
    if let Some(cfg_path) = &gw.config_path {
        let merged = gwconfig::Config::load(cfg_path)?.merged;
        let mut edits = vec![Edit::remove(&format!("plugins.entries.{PLUGIN_ID}"))];
        let paths = string_list(gwconfig::get_path(&merged, &["plugins", "load", "paths"]));
        let keep: Vec<&String> = paths
            .iter()
            .filter(|p| manifest_id(Path::new(p)).as_deref() != Some(PLUGIN_ID))
            .collect();
        if keep.len() != paths.len() {
            edits.push(Edit::set("plugins.load.paths", json!(keep)));
        }
        let allow = string_list(gwconfig::get_path(&merged, &["plugins", "allow"]));
        if allow.iter().any(|a| a == PLUGIN_ID) {
            let rest: Vec<&String> = allow.iter().filter(|a| *a != PLUGIN_ID).collect();
            edits.push(Edit::set("plugins.allow", json!(rest)));
        }
        if gwconfig::edit(cfg_path, &edits)?.changed {
            removed.push(format!("the plugin entries of {}", cfg_path.display()));
        }
    }
    let dir = copy_dir(&gw);
    if manifest_id(&dir).as_deref() == Some(PLUGIN_ID) {
        for name in PLUGIN_FILES.iter().map(|(n, _)| *n).chain([ADDON_FILE]) {
            let p = dir.join(name);
            if p.exists() {
                fsio::remove_durably(&p)?;
            }
        }
        std::fs::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        removed.push(dir.display().to_string());
    }
    let rec = load_record_path(&gw);
    if rec.exists() {
        fsio::remove_durably(&rec)?;
    }
    if removed.is_empty() {
        ui::note(&format!(
            "{PLUGIN_ID} was not installed in {}",
            gw.state_dir.display()
        ));
    } else {
        for r in removed {
            ui::note(&format!("removed {r}"));
        }
        ui::note("Restart the gateway to unload the plugin.");
    }
    Ok(Status::Ok)
}
