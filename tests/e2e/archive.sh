#!/usr/bin/env bash
# E2E: `moltvault archive` against the REAL gateway (openclaw 2026.9.6 from npm, SQLite store).
#
# A private HOME, a fake OpenAI-compatible model on 127.0.0.1, the real gateway on loopback.
# Three sessions get real agent turns through the gateway: two scratch keys (each with its own
# marker text in the tool output and the final answer) and the agent's main session. Then
# `moltvault archive --idle 0s`, with the real `openclaw` CLI on PATH, must:
#   - export each scratch session to `agents/main/sessions/<sid>.jsonl.age`, which
#     `moltvault cat <sid>` prints (the turn's marker text) and stock `age -d` opens with the
#     recovery identity `moltvault init` saved;
#   - remove both scratch sessions through `openclaw sessions delete`: the gateway's own
#     `openclaw sessions --json` no longer lists them, and their events are gone from the DB;
#   - seal the `.jsonl.deleted.*.zst` archives the gateway left (no plaintext archive remains);
#   - leave the main session untouched (still listed, same events);
# and the gateway must still answer a new turn afterwards.
#
# Needs cargo, python3, npm, age (.ci/install-deps); see lib.sh for the knobs.
set -euo pipefail
E2E_WORK_PREFIX=moltvault-e2e-archive
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
SPEC=openclaw@2026.9.6
PKG=${SPEC%@*}
VER=${SPEC#*@}
command -v age >/dev/null || fail "the age CLI is not installed (.ci/install-deps)"

e2e_build_moltvault
e2e_install_node
APP=$(install_gateway "$PKG" "$VER") || fail "cannot install $SPEC (see $CACHE/$PKG-$VER.tmp/install.log)"
CLI="$APP/node_modules/.bin/$PKG"

W=$WORK/run
mkdir -p "$W/home" "$W/logs"
TMPD="$CACHE/tmp/$PKG-$VER"
mkdir -p "$TMPD"
STATE="$W/home/.openclaw"
CFG="$STATE/openclaw.json"
DB="$STATE/agents/main/agent/openclaw-agent.sqlite"
SESS="$STATE/agents/main/sessions"
FAKE_PORT=$(free_port)
GW_PORT=$(free_port)
ENVV=(env "HOME=$W/home" "TMPDIR=$TMPD" "OPENCLAW_SKIP_CHANNELS=1" "NO_COLOR=1"
  "OPENCLAW_DISABLE_UPDATE_CHECK=1" "PATH=$(dirname "$CLI"):$PATH" "MOLTVAULT_DIR=$W/home/.moltvault")

log "fake model on :$FAKE_PORT, gateway on :$GW_PORT"
echo "echo e2e-archive-warmup" >"$W/command.txt"
FAKE_PORT=$FAKE_PORT FAKE_LOG="$W/logs/fake-requests.jsonl" FAKE_COMMAND_FILE="$W/command.txt" \
  setsid python3 "$HERE/fake_openai.py" >"$W/logs/fake.log" 2>&1 &
BG_PIDS+=($!)
wait_port "$FAKE_PORT" || fail "the fake model did not start"

log "onboard"
CUSTOM_API_KEY=sk-fake-local-key-0000 timeout 300 "${ENVV[@]}" "$CLI" onboard --non-interactive --accept-risk \
  --skip-health --no-install-daemon --skip-skills --skip-ui --skip-hooks --skip-channels --skip-search \
  --auth-choice custom-api-key --custom-base-url "http://127.0.0.1:$FAKE_PORT/v1" --custom-model-id fake-model \
  --custom-compatibility openai --custom-text-input --secret-input-mode plaintext >"$W/logs/onboard.log" 2>&1 ||
  { tail -20 "$W/logs/onboard.log"; fail "onboard failed"; }
python3 - "$CFG" "$W/logs/gateway-file.log" "$GW_PORT" <<'PY' || fail "unexpected onboard config"
import json, sys
p, logf, port = sys.argv[1:]
c = json.load(open(p))
c.setdefault("logging", {})["file"] = logf
c.setdefault("gateway", {})["port"] = int(port)
json.dump(c, open(p, "w"), indent=2)
PY

log "moltvault init"
printf 'e2e archive passphrase %s\n' "$RANDOM$RANDOM" >"$W/passphrase"
"${ENVV[@]}" MOLTVAULT_TESTONLY_WEAKEN_KDF=1 "$MV" init --passphrase-file "$W/passphrase" \
  --recovery-file "$W/recovery.txt" >"$W/logs/init.log" 2>&1 || { cat "$W/logs/init.log"; fail "moltvault init failed"; }

start_gateway() {
  "${ENVV[@]}" setsid timeout 600 "$CLI" gateway run --port "$GW_PORT" --bind loopback >"$W/logs/gateway.log" 2>&1 &
  GW_PID=$!
  BG_PIDS+=("$GW_PID")
  wait_port "$GW_PORT" "$GW_PID" || { tail -30 "$W/logs/gateway.log"; fail "the gateway did not start"; }
  sleep 1
}
# turn <session key> <marker>: one real agent turn through the gateway; the tool echoes <marker>.
turn() {
  echo "echo $2" >"$W/command.txt"
  timeout 300 "${ENVV[@]}" "$CLI" agent --agent main --session-key "$1" --message "e2e archive turn for $2" --json \
    >"$W/logs/turn-$2.json" 2>"$W/logs/turn-$2.err" ||
    { tail -30 "$W/logs/turn-$2.err"; tail -30 "$W/logs/gateway.log"; fail "the turn on $1 failed"; }
  grep -q "Done" "$W/logs/turn-$2.json" || { head -c 2000 "$W/logs/turn-$2.json"; fail "the reply on $1 lacks the model's final text"; }
  grep -q "$2" "$W/logs/turn-$2.json" || { head -c 2000 "$W/logs/turn-$2.json"; fail "the reply on $1 does not quote $2"; }
}
list_sessions() { # <out file>: the gateway's own view of its sessions
  timeout 120 "${ENVV[@]}" "$CLI" sessions --agent main --limit all --json >"$1" 2>"$1.err" ||
    { tail -20 "$1.err"; fail "openclaw sessions --json failed"; }
}
# sid_of <key>: the current session id of a key, from the agent database.
sid_of() {
  python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
r = db.execute("SELECT current_session_id FROM session_nodes WHERE session_key = ?", (sys.argv[2],)).fetchone()
print(r[0] if r and r[0] else "")
PY
}
events_of() { # <sid>: transcript events of a session in the agent database
  python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*) FROM transcript_events WHERE session_id = ?", (sys.argv[2],)).fetchone()[0])
PY
}

start_gateway
M1="E2E_ARCHIVE_MARK_$(python3 -c 'import secrets; print(secrets.token_hex(6))')_one"
M2="E2E_ARCHIVE_MARK_$(python3 -c 'import secrets; print(secrets.token_hex(6))')_two"
M0="E2E_ARCHIVE_MARK_$(python3 -c 'import secrets; print(secrets.token_hex(6))')_main"
K1=agent:main:e2e-archive-one
K2=agent:main:e2e-archive-two
K0=agent:main:main
log "turns: $K1, $K2, $K0"
turn "$K1" "$M1"
turn "$K2" "$M2"
turn "$K0" "$M0"
S1=$(sid_of "$K1")
S2=$(sid_of "$K2")
S0=$(sid_of "$K0")
[ -n "$S1" ] && [ -n "$S2" ] && [ -n "$S0" ] || fail "no session ids in the agent database ($S1/$S2/$S0)"
[ "$S1" != "$S2" ] && [ "$S1" != "$S0" ] && [ "$S2" != "$S0" ] || fail "the three keys share a session id"
E0=$(events_of "$S0")
[ "$(events_of "$S1")" -gt 0 ] && [ "$(events_of "$S2")" -gt 0 ] && [ "$E0" -gt 0 ] || fail "a session has no events"
list_sessions "$W/logs/sessions-before.json"
python3 - "$W/logs/sessions-before.json" "$K1" "$K2" "$K0" <<'PY' || fail "the gateway does not list the three sessions before archiving"
import json, sys
keys = {s["key"] for s in json.load(open(sys.argv[1]))["sessions"]}
missing = [k for k in sys.argv[2:] if k not in keys]
assert not missing, (missing, keys)
PY
log "sessions: $S1 ($K1), $S2 ($K2), $S0 ($K0, $E0 events)"

# audit_idle <out>: the agent database's `vault.idle_unsealed` finding with --idle-days 0
# (exit 1 just means findings at or above high exist: the e2e home has some by design).
audit_idle() {
  "${ENVV[@]}" "$MV" audit --json --idle-days 0 --log-dir "$W/logs/none" >"$1" 2>"$1.err" || [ $? = 1 ] ||
    { cat "$1.err"; fail "moltvault audit failed"; }
}
audit_idle "$W/logs/audit-before.json"
python3 - "$W/logs/audit-before.json" <<'PY' || fail "audit does not report the idle SQLite sessions"
import json, sys
f = [f for f in json.load(open(sys.argv[1]))["findings"]
     if f["check"] == "vault.idle_unsealed" and f["path"].endswith("openclaw-agent.sqlite")]
assert len(f) == 1, f
assert f[0]["detail"].startswith("3 session(s)") and "2 removable" in f[0]["detail"], f[0]["detail"]
assert "moltvault archive --idle 0d" in f[0]["hint"] and "fix" not in f[0], f[0]
PY

log "moltvault archive --idle 0s"
"${ENVV[@]}" "$MV" archive --idle 0s >"$W/logs/archive.out" 2>"$W/logs/archive.err" ||
  { cat "$W/logs/archive.out" "$W/logs/archive.err"; tail -20 "$W/logs/gateway.log"; fail "moltvault archive failed"; }
sed 's/^/    /' "$W/logs/archive.out" >&2
for s in "$S1" "$S2"; do
  grep -q "^exported  $s (.*verified)" "$W/logs/archive.out" || fail "session $s was not exported"
  [ -f "$SESS/$s.jsonl.age" ] || fail "no sealed export $SESS/$s.jsonl.age"
  [ "$(stat -c %a "$SESS/$s.jsonl.age")" = 600 ] || fail "$s.jsonl.age is not 0600"
  [ ! -e "$SESS/$s.jsonl" ] || fail "a plaintext $s.jsonl was left beside the export"
done
grep -q "^removed   $K1 through" "$W/logs/archive.out" || fail "$K1 was not removed through the gateway"
grep -q "^removed   $K2 through" "$W/logs/archive.out" || fail "$K2 was not removed through the gateway"
grep -q "^kept      $S0 in the database: .*main session" "$W/logs/archive.out" || fail "the main session was not kept"

# The exports hold the turns: moltvault cat, and stock age with the recovery identity.
"${ENVV[@]}" "$MV" cat "$S1" --passphrase-file "$W/passphrase" >"$W/logs/cat-one.jsonl" 2>"$W/logs/cat-one.err" ||
  { cat "$W/logs/cat-one.err"; fail "moltvault cat $S1 failed"; }
grep -q "$M1" "$W/logs/cat-one.jsonl" || fail "moltvault cat $S1 does not show the turn's text"
head -1 "$W/logs/cat-one.jsonl" | grep -q '"type":"session"' || fail "the export does not start with the session header"
age -d -i "$W/recovery.txt" -o "$W/logs/age-two.jsonl" "$SESS/$S2.jsonl.age" || fail "age -d cannot open $S2.jsonl.age"
grep -q "$M2" "$W/logs/age-two.jsonl" || fail "age -d of $S2.jsonl.age does not show the turn's text"
python3 - "$W/logs/age-two.jsonl" <<'PY' || fail "the export is not one JSON entry per line"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines and all(json.loads(l)["type"] for l in lines), "bad line"
PY
! grep -q "$M1" "$W/logs/age-two.jsonl" || fail "session two's export holds session one's text"

# The gateway's own view: the archived keys are gone, main is untouched.
list_sessions "$W/logs/sessions-after.json"
python3 - "$W/logs/sessions-after.json" "$K1" "$K2" "$K0" "$S0" <<'PY' || fail "the gateway still lists an archived session, or lost main"
import json, sys
rows = json.load(open(sys.argv[1]))["sessions"]
keys = {s["key"] for s in rows}
k1, k2, k0, s0 = sys.argv[2:]
assert k1 not in keys and k2 not in keys, keys
assert k0 in keys, keys
main = next(s for s in rows if s["key"] == k0)
assert main.get("sessionId", s0) == s0, main
PY
[ "$(events_of "$S1")" = 0 ] && [ "$(events_of "$S2")" = 0 ] || fail "the archived sessions' events are still in the database"
[ "$(events_of "$S0")" = "$E0" ] || fail "the main session's events changed ($E0 -> $(events_of "$S0"))"
[ "$(sid_of "$K0")" = "$S0" ] || fail "the main session's current id changed"
# The deleted-session archives the gateway wrote were sealed: no plaintext archive remains.
for s in "$S1" "$S2"; do
  if ls "$SESS" | grep -q "^$s\.jsonl\.deleted\..*\.zst$"; then fail "a plaintext deleted-session archive of $s remains"; fi
done
if grep -rqF -e "$M1" -e "$M2" "$SESS"; then fail "a marker is in plaintext under sessions/"; fi

# Nothing left for `archive` to do in the database: the main session is exported and kept.
audit_idle "$W/logs/audit-after.json"
python3 - "$W/logs/audit-after.json" <<'PY' || fail "audit still reports idle SQLite sessions after archiving"
import json, sys
f = [f for f in json.load(open(sys.argv[1]))["findings"]
     if f["check"] == "vault.idle_unsealed" and f["path"].endswith("openclaw-agent.sqlite")]
assert not f, f
PY

# The gateway still works.
log "a new turn after archiving"
turn agent:main:e2e-archive-after "E2E_ARCHIVE_MARK_after"
[ "$(events_of "$S0")" = "$E0" ] || fail "the main session changed after the new turn"
# Stop the gateway and wait for it, so it is not still writing into the work dir when the
# cleanup removes it.
kill -TERM -- "-$GW_PID" 2>/dev/null || true
for _ in $(seq 40); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.25; done
log "PASS ($(( $(date +%s) - T0 )) s)"
