#!/usr/bin/env bash
# A gateway turn's wall time with and without the moltvault-redact plugin, in the REAL gateway.
#
# One openclaw gateway (cached by tests/e2e/lib.sh, like the e2e), a fake OpenAI-compatible model
# (tests/e2e/fake_openai.py, timed by timed_fake.py) whose agent runs `exec` printing
# $TURN_BENCH_OUTPUT_BYTES of shell-like text, then repeated turns through the running gateway
# (`openclaw agent`, a fresh session each), in alternating blocks: plugin off, on, off, on. Each
# block restarts the gateway with the plugin entry disabled or enabled. Two times per turn:
#   client: wall time of the `openclaw agent` command (includes the CLI's own start-up);
#   gateway: from the turn's first model request to its last model answer, as the fake model sees
#            it (tool run, the persistence hooks of the tool call and tool result, the transcript
#            writes; no CLI start-up).
# Prints medians and quartiles per mode and the on/off difference.
#
#   cargo build --release --bin moltvault
#   MOLTVAULT_E2E_BIN=target/release/moltvault bash benches/plugin/turn-bench.sh
# Knobs: TURN_BENCH_N (turns per mode, default 8), TURN_BENCH_BLOCKS (blocks per mode, default 2),
# TURN_BENCH_BRIDGE (addon, the default, or stdio or auto: `plugin install --bridge`; the load
# record must show it in every "on" block), TURN_BENCH_SWEEP=0 (`plugin install --no-sweep`: no
# post-turn sweep process, to tell its cost from the hooks'), TURN_BENCH_GATEWAY (default
# openclaw@2026.7.35), TURN_BENCH_OUTPUT_BYTES (default 65536), TURN_BENCH_LINK=<plugin dir>
# (load the plugin from a checkout, `plugin install --link`, instead of the binary's embedded
# copy), and lib.sh's MOLTVAULT_E2E_*.
set -euo pipefail
N=${TURN_BENCH_N:-8}
BLOCKS=${TURN_BENCH_BLOCKS:-2}
BRIDGE=${TURN_BENCH_BRIDGE:-addon}
SPEC=${TURN_BENCH_GATEWAY:-openclaw@2026.7.35}
BYTES=${TURN_BENCH_OUTPUT_BYTES:-65536}
export E2E_WORK_PREFIX=moltvault-turn-bench
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../../tests/e2e/lib.sh"
BENCH=$ROOT/benches/plugin

e2e_build_moltvault
e2e_install_node
pkg=${SPEC%@*}
ver=${SPEC#*@}
[ "$pkg" = openclaw ] || fail "only openclaw lines are supported here"
app=$(install_gateway "$pkg" "$ver") || fail "cannot install $SPEC"
cli="$app/node_modules/.bin/$pkg"
H="$WORK/home"
state="$H/.openclaw"
cfg="$state/openclaw.json"
mkdir -p "$H" "$WORK/logs"
tmpd="$CACHE/tmp/$pkg-$ver"
mkdir -p "$tmpd"
ENVV=(env "HOME=$H" "TMPDIR=$tmpd" "OPENCLAW_SKIP_CHANNELS=1" "NO_COLOR=1" "OPENCLAW_DISABLE_UPDATE_CHECK=1" "PATH=$PATH")
fake_port=$(free_port)
gw_port=$(free_port)

# The tool output: deterministic shell-like lines, no secret.
python3 - "$WORK/output.txt" "$BYTES" <<'PY'
import sys
words = ["build", "ok", "src/main.rs", "warning:", "Finished", "target/debug", "PASS", "GET", "/v1/models", "200"]
out, n, x = [], 0, 1
while n < int(sys.argv[2]):
    x = (x * 1103515245 + 12345) % 2**32
    line = f"{words[x % 10]} {words[(x >> 8) % 10]} {x % 99991}\n"
    out.append(line); n += len(line)
open(sys.argv[1], "w").write("".join(out)[: int(sys.argv[2])])
PY
echo "cat $WORK/output.txt" >"$WORK/command.txt"
FAKE_PORT=$fake_port FAKE_LOG="$WORK/logs/fake-requests.jsonl" FAKE_COMMAND_FILE="$WORK/command.txt" FAKE_TIMES="$WORK/times.jsonl" \
  setsid python3 "$BENCH/timed_fake.py" >"$WORK/logs/fake.log" 2>&1 &
BG_PIDS+=($!)
wait_port "$fake_port" || fail "the fake model did not start"
: >"$WORK/times.jsonl"

log "onboarding $SPEC"
CUSTOM_API_KEY=fake-local-key-0000 timeout 300 "${ENVV[@]}" "$cli" onboard --non-interactive --accept-risk \
  --skip-health --no-install-daemon --skip-skills --skip-ui --skip-hooks --skip-channels --skip-search \
  --auth-choice custom-api-key --custom-base-url "http://127.0.0.1:$fake_port/v1" --custom-model-id fake-model \
  --custom-compatibility openai --custom-text-input --secret-input-mode plaintext >"$WORK/logs/onboard.log" 2>&1 ||
  { tail -20 "$WORK/logs/onboard.log"; fail "onboard failed"; }
link=()
if [ -n "${TURN_BENCH_LINK:-}" ]; then link=(--link "$TURN_BENCH_LINK"); fi
if [ "${TURN_BENCH_SWEEP:-1}" = 0 ]; then link+=(--no-sweep); fi
"${ENVV[@]}" "$MV" plugin install --bridge "$BRIDGE" "${link[@]}" >"$WORK/logs/plugin-install.log" 2>&1 ||
  { cat "$WORK/logs/plugin-install.log"; fail "moltvault plugin install failed"; }

# set_plugin <true|false>: the plugin entry's `enabled`, and our port and log file.
set_plugin() {
  python3 - "$cfg" "$1" "$gw_port" "$WORK/logs/gateway-file.log" <<'PY'
import json, sys
p, on, port, logf = sys.argv[1:]
c = json.load(open(p))
c["plugins"]["entries"]["moltvault-redact"]["enabled"] = on == "true"
c.setdefault("gateway", {})["port"] = int(port)
c.setdefault("logging", {})["file"] = logf
json.dump(c, open(p, "w"), indent=2)
PY
}

gw_pid=
start_gateway() {
  "${ENVV[@]}" setsid timeout 1800 "$cli" gateway run --port "$gw_port" --bind loopback >>"$WORK/logs/gateway.log" 2>&1 &
  gw_pid=$!
  BG_PIDS+=("$gw_pid")
  wait_port "$gw_port" "$gw_pid" || { tail -30 "$WORK/logs/gateway.log"; fail "the gateway did not start"; }
  sleep 2
}
stop_gateway() {
  kill -TERM -- "-$gw_pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.25; done
}

# run_block <off|on> <turns>: appends "mode client_s gateway_s" lines to $WORK/results.
run_block() {
  local mode=$1 turns=$2 i before t0 t1 span
  set_plugin "$([ "$mode" = on ] && echo true || echo false)"
  touch "$WORK/block-start"
  start_gateway
  # One untimed turn: the first turn after a start loads lazily compiled code.
  "${ENVV[@]}" "$cli" agent --agent main --session-key "agent:main:warm-$mode-$RANDOM" --message "warm up" --json >/dev/null 2>>"$WORK/logs/turns.err" || true
  for i in $(seq "$turns"); do
    before=$(wc -l <"$WORK/times.jsonl")
    t0=$(date +%s.%N)
    "${ENVV[@]}" "$cli" agent --agent main --session-key "agent:main:bench-$mode-$i-$RANDOM" --message "bench turn $i" --json \
      >"$WORK/logs/turn.json" 2>>"$WORK/logs/turns.err" || fail "a $mode turn failed (see $WORK/logs)"
    t1=$(date +%s.%N)
    grep -q "Done" "$WORK/logs/turn.json" || fail "a $mode turn has no final reply"
    span=$(tail -n +"$((before + 1))" "$WORK/times.jsonl" | python3 -c 'import json,sys
r=[json.loads(l) for l in sys.stdin if "chat/completions" in l]
print("%.4f" % (max(x["end"] for x in r) - min(x["start"] for x in r)) if len(r) >= 2 else "nan")')
    echo "$mode $(python3 -c "print(f'{$t1-$t0:.4f}')") $span" >>"$WORK/results"
  done
  stop_gateway
  # The plugin's hello rewrites its load record: it must have loaded in "on" blocks only.
  local rec="$state/moltvault/plugin-loaded.json"
  if [ "$mode" = on ]; then
    [ "$rec" -nt "$WORK/block-start" ] || fail "the plugin did not load in an 'on' block"
    local used
    used=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("bridge"))' "$rec")
    [ "$BRIDGE" = auto ] || [ "$used" = "$BRIDGE" ] || fail "the plugin used the $used bridge, not $BRIDGE"
    log "block: the plugin loaded through the $used bridge"
  elif [ -e "$rec" ] && [ "$rec" -nt "$WORK/block-start" ]; then
    fail "the plugin loaded in an 'off' block"
  fi
}

per=$(( (N + BLOCKS - 1) / BLOCKS ))
for _ in $(seq "$BLOCKS"); do
  for mode in off on; do
    log "block: plugin $mode ($per turns)"
    run_block "$mode" "$per"
  done
done
cat "$WORK/results" >&2
python3 - "$WORK/results" "$SPEC" "$BYTES" "$BRIDGE" "${TURN_BENCH_SWEEP:-1}" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def q(xs):
    xs = sorted(xs); n = len(xs)
    return statistics.median(xs), xs[n // 4], xs[(3 * n) // 4]
out = {"bench": "plugin-turn", "gateway": sys.argv[2], "tool_output_bytes": int(sys.argv[3]), "bridge": sys.argv[4], "sweep": sys.argv[5] != "0"}
for col, name in ((1, "client"), (2, "gateway")):
    for mode in ("off", "on"):
        xs = [float(r[col]) for r in rows if r[0] == mode and r[col] != "nan"]
        m, lo, hi = q(xs)
        out[f"{name}_{mode}"] = {"median_s": round(m, 4), "q1_s": round(lo, 4), "q3_s": round(hi, 4), "n": len(xs)}
        print(f"{name:8} plugin {mode:3}: median {m*1000:8.1f} ms  (quartiles {lo*1000:.1f} .. {hi*1000:.1f}, n={len(xs)})")
    d = out[f"{name}_on"]["median_s"] - out[f"{name}_off"]["median_s"]
    print(f"{name:8} on - off: {d*1000:+.1f} ms ({d / out[f'{name}_off']['median_s'] * 100:+.1f} %)")
print(json.dumps(out))
PY
