#!/usr/bin/env bash
# E2E: `moltvault rotate` against the REAL gateway (openclaw 2026.9.6 from npm).
#
# A private HOME whose config holds a gateway token and a hooks token. The real gateway is
# started and must accept both (gateway token on `POST /tools/invoke`, hooks token on
# `POST /hooks/wake`); it is stopped, `moltvault rotate` rotates the two items (with the real
# `openclaw` CLI on PATH for the paired-devices step), and the gateway is started again: now
# the OLD tokens must get 401 and the NEW ones (read back from the rewritten config) must pass.
# The incident report and the journal must not hold either value.
#
# Needs what plugin.sh needs (lib.sh). Knobs: MOLTVAULT_E2E_ROTATE_LINE (default
# openclaw@2026.9.6), MOLTVAULT_E2E_KEEP=1, MOLTVAULT_E2E_BIN=<path>.
set -euo pipefail
LINE=${MOLTVAULT_E2E_ROTATE_LINE:-openclaw@2026.9.6}
E2E_WORK_PREFIX=moltvault-e2e-rotate
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_build_moltvault
e2e_install_node
pkg=${LINE%@*}
ver=${LINE#*@}
app=$(install_gateway "$pkg" "$ver") || fail "cannot install $LINE (see $CACHE/$pkg-$ver.tmp/install.log)"
cli="$app/node_modules/.bin/$pkg"

W="$WORK/$pkg-$ver"
mkdir -p "$W/home" "$W/logs"
state="$W/home/.openclaw"
cfg="$state/openclaw.json"
tmpd="$CACHE/tmp/$pkg-$ver"
mkdir -p "$tmpd" "$state"
chmod 700 "$state"
gw_port=$(free_port)
ENVV=(env "HOME=$W/home" "TMPDIR=$tmpd" "OPENCLAW_SKIP_CHANNELS=1" "NO_COLOR=1"
  "OPENCLAW_DISABLE_UPDATE_CHECK=1" "PATH=$(dirname "$cli"):$PATH" "MOLTVAULT_DIR=$W/home/.moltvault")

# Tokens made here, at runtime (never in the repository).
python3 - "$cfg" "$gw_port" "$W/logs/gateway-file.log" <<'PY'
import json, secrets, sys
cfg, port, logf = sys.argv[1:]
c = {
    "gateway": {"mode": "local", "port": int(port), "bind": "loopback",
                "auth": {"mode": "token", "token": secrets.token_hex(24)}},
    "hooks": {"enabled": True, "token": secrets.token_hex(24)},
    "logging": {"file": logf},
}
json.dump(c, open(cfg, "w"), indent=2)
PY
chmod 600 "$cfg"
old_gw=$(json_get "$cfg" gateway.auth.token)
old_hooks=$(json_get "$cfg" hooks.token)

start_gateway() {
  "${ENVV[@]}" setsid timeout 300 "$cli" gateway run --port "$gw_port" --bind loopback >>"$W/logs/gateway.log" 2>&1 &
  GW_PID=$!
  BG_PIDS+=("$GW_PID")
  local _
  for _ in $(seq 240); do
    # Ready once the HTTP server answers (any status).
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gw_port/" || true)" != 000 ]; then
      sleep 1
      return 0
    fi
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.5
  done
  tail -30 "$W/logs/gateway.log"
  fail "the gateway did not start"
}
stop_gateway() {
  kill -TERM -- "-$GW_PID" 2>/dev/null || true
  local _
  for _ in $(seq 60); do kill -0 "$GW_PID" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL -- "-$GW_PID" 2>/dev/null || true
}
# status <path> <bearer token> <json body>: the HTTP status the gateway answers.
status() {
  curl -s -o "$W/logs/last-body.txt" -w '%{http_code}' -X POST -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' --data "$3" "http://127.0.0.1:$gw_port$1"
}
TOOLS_BODY='{"tool":"session_status","args":{}}'
WAKE_BODY='{"text":"e2e rotate check","mode":"next-heartbeat"}'
expect_accepted() { # <what> <path> <token> <body>
  local s
  s=$(status "$2" "$3" "$4")
  case "$s" in
    401 | 403 | 429 | 000) cat "$W/logs/last-body.txt" >&2; fail "$1: the gateway answered $s, wanted the token accepted" ;;
  esac
  log "$1: accepted (HTTP $s)"
}
expect_rejected() { # <what> <path> <token> <body>
  local s
  s=$(status "$2" "$3" "$4")
  [ "$s" = 401 ] || { cat "$W/logs/last-body.txt" >&2; fail "$1: the gateway answered $s, wanted 401"; }
  log "$1: rejected (HTTP 401)"
}

log "$LINE: gateway on :$gw_port with the original tokens"
start_gateway
expect_accepted "old gateway token before rotation" /tools/invoke "$old_gw" "$TOOLS_BODY"
expect_accepted "old hooks token before rotation" /hooks/wake "$old_hooks" "$WAKE_BODY"
# Not vacuous: a wrong token is refused by this very gateway.
expect_rejected "a made-up gateway token" /tools/invoke "$(python3 -c 'import secrets; print(secrets.token_hex(24))')" "$TOOLS_BODY"
stop_gateway

log "moltvault init + rotate"
printf 'e2e rotate passphrase\n' >"$W/pass.txt"
"${ENVV[@]}" "$MV" init --passphrase-file "$W/pass.txt" --recovery-file "$W/recovery.txt" >"$W/logs/init.log" 2>&1 ||
  { cat "$W/logs/init.log"; fail "moltvault init failed"; }
"${ENVV[@]}" "$MV" rotate --list --json >"$W/logs/list.json" 2>"$W/logs/list.err" ||
  { cat "$W/logs/list.err"; fail "moltvault rotate --list failed"; }
mapfile -t items < <(python3 - "$W/logs/list.json" <<'PY'
import json, sys
for it in json.load(open(sys.argv[1]))["secrets"]:
    if it["provider"] in ("gateway-token", "hooks-token"):
        print(it["id"])
PY
)
[ "${#items[@]}" -ge 2 ] || { cat "$W/logs/list.json"; fail "rotate --list did not offer the gateway and hooks tokens"; }
log "rotating: ${items[*]}"
"${ENVV[@]}" "$MV" rotate --sweep report --passphrase-file "$W/pass.txt" "${items[@]}" \
  >"$W/logs/rotate.log" 2>&1 </dev/null || { cat "$W/logs/rotate.log"; fail "moltvault rotate failed"; }

new_gw=$(json_get "$cfg" gateway.auth.token)
new_hooks=$(json_get "$cfg" hooks.token)
[ "$new_gw" != "$old_gw" ] || fail "the gateway token was not changed in the config"
[ "$new_hooks" != "$old_hooks" ] || fail "the hooks token was not changed in the config"
[ "$new_gw" != "$new_hooks" ] || fail "the new gateway and hooks tokens are equal"

log "$LINE: gateway restarted with the rotated config"
start_gateway
expect_rejected "old gateway token after rotation" /tools/invoke "$old_gw" "$TOOLS_BODY"
expect_accepted "new gateway token after rotation" /tools/invoke "$new_gw" "$TOOLS_BODY"
expect_rejected "old hooks token after rotation" /hooks/wake "$old_hooks" "$WAKE_BODY"
expect_accepted "new hooks token after rotation" /hooks/wake "$new_hooks" "$WAKE_BODY"
stop_gateway

# Nothing moltvault wrote or printed holds a token value, old or new.
"${ENVV[@]}" "$MV" rotate report --markdown >"$W/logs/report.md" 2>"$W/logs/report.err" ||
  { cat "$W/logs/report.err"; fail "moltvault rotate report failed"; }
for v in "$old_gw" "$old_hooks" "$new_gw" "$new_hooks"; do
  if grep -rqF -- "$v" "$W/logs/rotate.log" "$W/logs/report.md" "$W/logs/list.json" "$W/home/.moltvault"; then
    fail "a token value leaked into moltvault's output, report or journal"
  fi
done
log "$LINE: rotate PASS"
