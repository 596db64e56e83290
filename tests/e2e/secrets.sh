#!/usr/bin/env bash
# E2E: the vault as the REAL gateway's secrets provider (openclaw 2026.9.6 from npm).
#
# A private HOME; a fake OpenAI-compatible model on 127.0.0.1 that logs each request's
# Authorization and X-Moltvault-E2e-Token headers. The gateway home holds three secrets:
#   - the model key inline in the config (`onboard --secret-input-mode plaintext`),
#   - a token in the state dir's `.env` that the config uses as `${VAR}` in a provider header,
#   - an API-key auth profile for the same provider (`models auth paste-api-key`; 2026.9 keeps
#     it in the shared store, `state/openclaw.sqlite` `config_machine_state`).
# Then:
#   1. `moltvault secrets import` + `install-provider`: no secret is left in plaintext anywhere
#      under the state dir (files byte-wise incl. config backups, `.env` and its backup; SQLite
#      rows; zstd archives); the config holds exec SecretRefs (apiKey, the header), the auth
#      profile a `keyRef` instead of `key`, the `.env` line is gone, files and backups are 0600;
#   2. the gateway starts with the vault identity as the systemd-style credential
#      `moltvault-identity` ($CREDENTIALS_DIRECTORY) and completes a turn: every model request
#      carried exactly the imported key (`Authorization: Bearer …`) and the `.env` value;
#   3. the provider rebound to the auth profile: a second gateway run's requests carry exactly
#      the profile's key, resolved through its `keyRef`;
#   4. a locked vault (no credential): `moltvault secrets provide` answers LOCKED per id, the
#      gateway refuses to start ("required secrets are unavailable") and calls no model;
#   5. no secret value in any log or output of moltvault or the gateway, nor in the state dir.
#
# Needs what plugin.sh needs (cargo, python3, npm); see lib.sh for the knobs.
set -euo pipefail
E2E_WORK_PREFIX=moltvault-e2e-secrets
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
SPEC=openclaw@2026.9.6
PKG=${SPEC%@*}
VER=${SPEC#*@}

e2e_build_moltvault
e2e_install_node
APP=$(install_gateway "$PKG" "$VER") || fail "cannot install $SPEC (see $CACHE/$PKG-$VER.tmp/install.log)"
CLI="$APP/node_modules/.bin/$PKG"

W=$WORK/run
mkdir -p "$W/home" "$W/logs" "$W/creds"
chmod 700 "$W/creds"
TMPD="$CACHE/tmp/$PKG-$VER"
mkdir -p "$TMPD"
STATE="$W/home/.openclaw"
CFG="$STATE/openclaw.json"
FAKE_PORT=$(free_port)
GW_PORT=$(free_port)
ENVV=(env "HOME=$W/home" "TMPDIR=$TMPD" "OPENCLAW_SKIP_CHANNELS=1" "NO_COLOR=1"
  "OPENCLAW_DISABLE_UPDATE_CHECK=1" "PATH=$PATH")

# The secrets, assembled at runtime (the repository holds no token-shaped literal).
KEY=$(python3 -c 'import secrets,string; a=string.ascii_letters+string.digits; print("sk-"+"proj-"+"".join(secrets.choice(a) for _ in range(48)))')
EXTRA=$(python3 -c 'import secrets; print("e2e-"+"extra-"+secrets.token_hex(20))')
AP_KEY=$(python3 -c 'import secrets,string; a=string.ascii_letters+string.digits; print("sk-"+"proj-"+"".join(secrets.choice(a) for _ in range(48)))')
printf '%s\n' "{\"model_key\": \"$KEY\", \"env_extra\": \"$EXTRA\", \"auth_profile_key\": \"$AP_KEY\"}" >"$W/secrets.json"

# --- 1. a gateway home with the key inline -----------------------------------------------------
log "fake model on :$FAKE_PORT, gateway on :$GW_PORT"
echo "echo e2e-secrets-tool-ran" >"$W/command.txt" # the one tool call the fake model makes
FAKE_PORT=$FAKE_PORT FAKE_LOG="$W/logs/fake-requests.jsonl" FAKE_COMMAND_FILE="$W/command.txt" \
  setsid python3 "$HERE/fake_openai.py" >"$W/logs/fake.log" 2>&1 &
BG_PIDS+=($!)
wait_port "$FAKE_PORT" || fail "the fake model did not start"

log "onboard (key inline)"
CUSTOM_API_KEY=$KEY timeout 300 "${ENVV[@]}" "$CLI" onboard --non-interactive --accept-risk \
  --skip-health --no-install-daemon --skip-skills --skip-ui --skip-hooks --skip-channels --skip-search \
  --auth-choice custom-api-key --custom-base-url "http://127.0.0.1:$FAKE_PORT/v1" --custom-model-id fake-model \
  --custom-compatibility openai --custom-text-input --secret-input-mode plaintext >"$W/logs/onboard.log" 2>&1 ||
  { tail -20 "$W/logs/onboard.log"; fail "onboard failed"; }
[ -f "$CFG" ] || fail "no config at $CFG"
# Our port, logs outside the state dir, and the provider header that reads the .env secret.
PROVIDER=$(python3 - "$CFG" "$W/logs/gateway-file.log" "$GW_PORT" "$KEY" <<'PY'
import json, sys
p, logf, port, key = sys.argv[1:]
c = json.load(open(p))
c.setdefault("logging", {})["file"] = logf
c.setdefault("gateway", {})["port"] = int(port)
ids = [i for i, v in c["models"]["providers"].items() if v.get("apiKey") == key]
assert len(ids) == 1, f"onboard did not write the key inline: {list(c['models']['providers'])}"
c["models"]["providers"][ids[0]].setdefault("headers", {})["X-Moltvault-E2e-Token"] = "${MOLTVAULT_E2E_TOKEN}"
json.dump(c, open(p, "w"), indent=2)
print(ids[0])
PY
) || fail "unexpected onboard config"
printf '# written by the e2e\nMOLTVAULT_E2E_TOKEN=%s\nOPENCLAW_E2E_HARMLESS=1\n' "$EXTRA" >"$STATE/.env"
chmod 600 "$STATE/.env"
# An API-key auth profile for the same provider (2026.9 keeps it in state/openclaw.sqlite).
log "auth profile (models auth paste-api-key)"
printf '%s\n' "$AP_KEY" | timeout 300 "${ENVV[@]}" "$CLI" models auth paste-api-key --provider "$PROVIDER" \
  >"$W/logs/paste-api-key.log" 2>&1 || { tail -20 "$W/logs/paste-api-key.log"; fail "paste-api-key failed"; }
# paste-api-key rebinds the provider to the profile (`apiKey: "<provider>:manual"`, a profile id,
# not a key); put the inline key back, as a config that was written by hand would have it.
python3 - "$CFG" "$PROVIDER" "$KEY" <<'PY' || fail "unexpected config after paste-api-key"
import json, sys
p, pid, key = sys.argv[1:]
c = json.load(open(p))
prov = c["models"]["providers"][pid]
assert prov["apiKey"] == pid + ":manual", "paste-api-key did not bind the profile"
prov["apiKey"] = key
json.dump(c, open(p, "w"), indent=2)
PY
grep -qF "$KEY" "$CFG" || fail "not vacuous: the key should be in plaintext before the import"
python3 - "$STATE/state/openclaw.sqlite" "$AP_KEY" <<'PY' || fail "not vacuous: the auth profile key should be in the shared store"
import sqlite3, sys
v = sqlite3.connect(sys.argv[1]).execute("SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.store'").fetchone()
assert v and sys.argv[2] in v[0]
PY
log "provider $PROVIDER holds the key inline"

# --- 2. the vault and the import ---------------------------------------------------------------
printf 'e2e passphrase %s\n' "$RANDOM$RANDOM" >"$W/passphrase"
# MOLTVAULT_TESTONLY_WEAKEN_KDF: a cheap scrypt for `init`; the recovery key is the credential.
"${ENVV[@]}" MOLTVAULT_TESTONLY_WEAKEN_KDF=1 "$MV" init --passphrase-file "$W/passphrase" \
  --recovery-file "$W/creds/moltvault-identity" >"$W/logs/init.log" 2>&1 ||
  { cat "$W/logs/init.log"; fail "moltvault init failed"; }
log "moltvault secrets import"
"${ENVV[@]}" "$MV" secrets import >"$W/logs/import.log" 2>&1 || { cat "$W/logs/import.log"; fail "secrets import failed"; }
cat "$W/logs/import.log" >&2
"${ENVV[@]}" "$MV" secrets install-provider >"$W/logs/install-provider.log" 2>&1 ||
  { cat "$W/logs/install-provider.log"; fail "secrets install-provider failed"; }

# No plaintext anywhere in the state dir: files byte-wise, SQLite rows, zstd archives.
scan=$(python3 "$HERE/scan_state.py" "$STATE" "$W/secrets.json") || { echo "$scan"; fail "plaintext secrets left after the import"; }
echo "$scan" | tail -1 >&2
python3 - "$CFG" "$PROVIDER" "$STATE/.env" <<'PY' || fail "the config or .env is not what the import should write"
import json, sys
c = json.load(open(sys.argv[1])); pid = sys.argv[2]
prov = c["models"]["providers"][pid]
ref = {"source": "exec", "provider": "moltvault", "id": f"models.providers.{pid}.apiKey"}
assert prov["apiKey"] == ref, prov["apiKey"]
h = prov["headers"]["X-Moltvault-E2e-Token"]
assert h == {"source": "exec", "provider": "moltvault", "id": "MOLTVAULT_E2E_TOKEN"}, h
p = c["secrets"]["providers"]["moltvault"]
assert p["source"] == "exec" and p["command"].startswith("/") and p["args"][-2:] == ["secrets", "provide"], p
env = open(sys.argv[3]).read()
assert "MOLTVAULT_E2E_TOKEN=" not in env and "OPENCLAW_E2E_HARMLESS=1" in env, env
PY
python3 - "$STATE/state/openclaw.sqlite" "$PROVIDER" <<'PY' || fail "the auth profile was not rewritten to a keyRef"
import json, sqlite3, sys
v = json.loads(sqlite3.connect(sys.argv[1]).execute("SELECT value_json FROM config_machine_state WHERE state_key = 'authProfiles.store'").fetchone()[0])
p = v["profiles"][sys.argv[2] + ":manual"]
assert "key" not in p, "plaintext key left"
assert p["keyRef"] == {"source": "exec", "provider": "moltvault", "id": f"auth-profiles/shared/{sys.argv[2]}:manual/key"}, p["keyRef"]
PY
for f in "$CFG" "$STATE/.env"; do
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600 after the import"
done
for b in "$CFG.moltvault-bak" "$STATE/.env.moltvault-bak"; do
  [ -f "$b" ] || fail "no backup $b"
  [ "$(stat -c %a "$b")" = 600 ] || fail "$b is not 0600"
done

# --- 3. the gateway resolves the key through `moltvault secrets provide` ------------------------
# start_gateway <log> [extra env…]: starts `gateway run`, sets GW_PID; returns 1 when it exits.
start_gateway() {
  local logf=$1
  shift
  "${ENVV[@]}" "$@" setsid timeout 600 "$CLI" gateway run --port "$GW_PORT" --bind loopback >"$logf" 2>&1 &
  GW_PID=$!
  BG_PIDS+=("$GW_PID")
  wait_port "$GW_PORT" "$GW_PID"
}
stop_gateway() {
  kill -TERM -- "-$GW_PID" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.25; done
}

log "starting the gateway (vault unlocked through \$CREDENTIALS_DIRECTORY)"
start_gateway "$W/logs/gateway.log" "CREDENTIALS_DIRECTORY=$W/creds" ||
  { tail -30 "$W/logs/gateway.log"; fail "the gateway did not start with the vault as its secrets provider"; }
sleep 2
log "turn through the gateway"
timeout 300 "${ENVV[@]}" "CREDENTIALS_DIRECTORY=$W/creds" "$CLI" agent --agent main --session-key agent:main:e2e-secrets --message "e2e secrets turn" --json \
  >"$W/logs/turn.json" 2>"$W/logs/turn.err" || { tail -30 "$W/logs/turn.err"; tail -30 "$W/logs/gateway.log"; fail "the turn failed"; }
grep -q "Done" "$W/logs/turn.json" || { head -c 2000 "$W/logs/turn.json"; fail "the reply lacks the model's final text"; }
stop_gateway
python3 - "$W/logs/fake-requests.jsonl" "$KEY" "$EXTRA" <<'PY' || fail "the fake provider did not receive the vault's values"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
chat = [r for r in reqs if r["path"].rstrip("/").endswith("/chat/completions")]
assert chat, "no chat request"
for r in chat:
    assert r["authorization"] == "Bearer " + sys.argv[2], "wrong or missing Authorization header"
    assert r.get("extra") == sys.argv[3], "wrong or missing X-Moltvault-E2e-Token header"
print(f"{len(chat)} chat request(s) carried the imported apiKey and the .env header value", file=sys.stderr)
PY

# The auth profile's keyRef: bind the provider to the profile again (as paste-api-key did), so
# the gateway must resolve `auth-profiles/shared/<profile>/key` through the provider.
log "turn with the provider bound to the auth profile (keyRef)"
python3 - "$CFG" "$PROVIDER" <<'PY' || fail "cannot rebind the provider"
import json, sys
p, pid = sys.argv[1:]
c = json.load(open(p))
c["models"]["providers"][pid]["apiKey"] = pid + ":manual"
json.dump(c, open(p, "w"), indent=2)
PY
n_before=$(wc -l <"$W/logs/fake-requests.jsonl")
start_gateway "$W/logs/gateway-profile.log" "CREDENTIALS_DIRECTORY=$W/creds" ||
  { tail -30 "$W/logs/gateway-profile.log"; fail "the gateway did not start with the profile binding"; }
sleep 2
timeout 300 "${ENVV[@]}" "CREDENTIALS_DIRECTORY=$W/creds" "$CLI" agent --agent main --session-key agent:main:e2e-profile --message "e2e profile turn" --json \
  >"$W/logs/turn-profile.json" 2>"$W/logs/turn-profile.err" || { tail -30 "$W/logs/turn-profile.err"; tail -30 "$W/logs/gateway-profile.log"; fail "the profile turn failed"; }
grep -q "Done" "$W/logs/turn-profile.json" || { head -c 2000 "$W/logs/turn-profile.json"; fail "the profile turn's reply lacks the model's final text"; }
stop_gateway
python3 - "$W/logs/fake-requests.jsonl" "$n_before" "$AP_KEY" <<'PY' || fail "the fake provider did not receive the auth profile's key"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
chat = [r for r in reqs if r["path"].rstrip("/").endswith("/chat/completions")]
assert chat, "no chat request"
assert all(r["authorization"] == "Bearer " + sys.argv[3] for r in chat), "not the auth profile's key"
print(f"{len(chat)} chat request(s) carried the auth profile's key (keyRef)", file=sys.stderr)
PY

# The gateway wrote nothing back in plaintext (models.json markers, config rewrites, SQLite).
scan=$(python3 "$HERE/scan_state.py" "$STATE" "$W/secrets.json") || { echo "$scan"; fail "plaintext secrets in the state dir after the gateway ran"; }

# --- 4. a locked vault -------------------------------------------------------------------------
# Without the credential nothing can unlock the vault: `provide` answers LOCKED per id, and the
# gateway (which forwards no provider message: only NOT_FOUND / AMBIGUOUS_DUPLICATE_KEY codes
# pass its SAFE_EXEC_ERROR_CODES filter) must refuse to start rather than run without its keys.
log "locked vault: the provider's answer"
printf '{"protocolVersion":1,"provider":"moltvault","ids":["models.providers.%s.apiKey","MOLTVAULT_E2E_TOKEN"]}' "$PROVIDER" |
  "${ENVV[@]}" "$MV" secrets provide >"$W/logs/provide-locked.json" 2>"$W/logs/provide-locked.err" ||
  fail "provide failed as a process while locked (it must answer per id)"
python3 - "$W/logs/provide-locked.json" <<'PY' || fail "provide did not answer LOCKED for every id"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["protocolVersion"] == 1 and r["values"] == {}, r["values"].keys()
assert len(r["errors"]) == 2 and all(e["code"] == "LOCKED" for e in r["errors"].values()), r["errors"]
print("    provide: " + next(iter(r["errors"].values()))["message"][:200], file=sys.stderr)
PY
log "locked vault: starting the gateway without the credential"
n_before=$(wc -l <"$W/logs/fake-requests.jsonl")
"${ENVV[@]}" setsid timeout 300 "$CLI" gateway run --port "$GW_PORT" --bind loopback >"$W/logs/gateway-locked.log" 2>&1 &
GW_PID=$!
BG_PIDS+=("$GW_PID")
outcome=
for _ in $(seq 240); do
  if grep -q "Gateway failed to start" "$W/logs/gateway-locked.log"; then outcome=refused; break; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null; then outcome=listening; break; fi
  kill -0 "$GW_PID" 2>/dev/null || { outcome=exited; break; }
  sleep 0.5
done
# (It then runs an automatic "triage" for ~20 s; not needed here.)
stop_gateway
[ "$outcome" = refused ] || { tail -30 "$W/logs/gateway-locked.log"; fail "locked vault: the gateway did not refuse to start ($outcome)"; }
grep -q "required secrets are unavailable" "$W/logs/gateway-locked.log" ||
  { tail -30 "$W/logs/gateway-locked.log"; fail "locked vault: the gateway's error does not say secrets are unavailable"; }
grep -q "SECRETS_DEGRADED.*secret provider failed" "$W/logs/gateway-locked.log" ||
  { tail -30 "$W/logs/gateway-locked.log"; fail "locked vault: the gateway does not blame the secret provider"; }
log "locked vault: the gateway refused to start:"
grep -E "SECRETS_DEGRADED|Gateway failed to start" "$W/logs/gateway-locked.log" | cut -c1-220 | sed 's/^/    /' >&2
[ "$(wc -l <"$W/logs/fake-requests.jsonl")" = "$n_before" ] || fail "the model was called while the vault was locked"

# No secret value in anything moltvault or the gateway printed or logged, nor in the state dir.
for f in "$W"/logs/*; do
  case $f in */fake-requests.jsonl) continue ;; esac # the fake provider's own record of what it received
  if grep -qF -e "$KEY" -e "$EXTRA" -e "$AP_KEY" "$f"; then fail "a secret value appears in $(basename "$f")"; fi
done
scan=$(python3 "$HERE/scan_state.py" "$STATE" "$W/secrets.json") || { echo "$scan"; fail "plaintext secrets in the state dir at the end"; }
log "PASS"
