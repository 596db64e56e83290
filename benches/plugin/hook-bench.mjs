// Hook overhead of the moltvault-redact gateway plugin, per message, inside Node.
//
//   cargo build --release                 # the binary and the addon (libmoltvault_node.so)
//   node benches/plugin/hook-bench.mjs [path/to/moltvault [path/to/addon]]    # quick (< 1 min)
//   BENCH_FULL=1 node benches/plugin/hook-bench.mjs ...          # more iterations
//
// For 1 KB, 16 KB and 1 MB tool-result messages (realistic shell output, no secret, and the same
// with one secret) it times, in the same run: a no-op hook (the baseline), and for each bridge
// (the in-process addon "addon"; `moltvault serve --stdio` over named pipes "fifo" and through a
// worker thread "worker") the bridge alone (addon: one call into it; stdio: a `ping` round trip)
// and the real hook (`redactMessage`: encode, call or round trip, engine, patch). Prints p50/p99
// in microseconds, and a JSON line for tooling. The addon defaults to
// target/release/libmoltvault_node.so (or $MOLTVAULT_ADDON); without one its columns are left out.
//
// Before/after in one run: BENCH_BASELINE_PLUGIN=<dir of an older plugins/openclaw> and
// BENCH_BASELINE_BIN=<the moltvault of that version> add a "baseline fifo hook" column, and
// BENCH_BASELINE_ADDON=<the addon of that version> a "baseline addon hook" column, e.g.
//   mkdir -p /tmp/old && git archive <rev> plugins/openclaw | tar -x -C /tmp/old
//   BENCH_BASELINE_PLUGIN=/tmp/old/plugins/openclaw BENCH_BASELINE_BIN=/tmp/old-moltvault \
//     BENCH_BASELINE_ADDON=/tmp/old-libmoltvault_node.so node benches/plugin/hook-bench.mjs
// A baseline column and its current counterpart are timed interleaved (one call each, in
// alternating order), so load changes during the run hit both alike; "ratio" is current/baseline
// at p50. BENCH_BRIDGES=addon,fifo limits the bridges (default: addon,fifo,worker).
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";
import { Redactor, resolveConfig } from "../../plugins/openclaw/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const binary = process.argv[2] ?? process.env.MOLTVAULT_BIN ?? path.join(root, "target/release/moltvault");
const addon = process.argv[3] ?? process.env.MOLTVAULT_ADDON ?? path.join(path.dirname(binary), "libmoltvault_node.so");
const full = !!process.env.BENCH_FULL;

// Realistic tool output: shell-ish lines (paths, numbers, words), deterministic.
function shellText(bytes, seed) {
  const words = ["build", "ok", "src/main.rs", "warning:", "compiling", "serde_json", "v1.0.133", "Finished", "target/debug", "PASS", "test", "127.0.0.1:8080", "GET", "/v1/models", "200", "ms", "drwxr-xr-x", "root", "node_modules", "README.md"];
  let x = seed >>> 0;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) % words.length;
  const parts = [];
  let n = 0;
  while (n < bytes) {
    const line = `${words[rnd()]} ${words[rnd()]} ${words[rnd()]} ${x % 100000} ${words[rnd()]}\n`;
    parts.push(line);
    n += line.length;
  }
  return parts.join("").slice(0, bytes);
}

function message(bytes, secret, seed) {
  let text = shellText(bytes, seed);
  if (secret) {
    const tok = "gh" + "p_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
    const at = Math.floor(text.length / 2);
    text = text.slice(0, at) + ` GITHUB_TOKEN=${tok} ` + text.slice(at);
  }
  return {
    role: "toolResult",
    toolCallId: "call_bench",
    toolName: "exec",
    content: [{ type: "text", text }],
    details: { status: "completed", exitCode: 0, durationMs: 12, aggregated: text, cwd: "/home/user/ws" },
    isError: false,
    timestamp: 1795630124788,
  };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function time(fn, iters, warm) {
  for (let i = 0; i < warm; i++) fn(i);
  const out = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    fn(i);
    out[i] = (performance.now() - t) * 1000;
  }
  out.sort();
  return { p50: pct(out, 50), p99: pct(out, 99), n: iters };
}

function redactorFor(transport) {
  const bridge = transport === "addon" ? { bridge: "addon", addon } : { bridge: "stdio", transport };
  const cfg = resolveConfig({ binary, mode: "all", sweep: false, timeoutMs: 30000, ...bridge });
  const r = new Redactor(cfg, { info() {}, error: (m) => console.error(m), warn() {} });
  r.ensureEngine();
  if (r.engine.transport !== transport) throw new Error(`wanted the ${transport} transport, got ${r.engine.transport}`);
  return r;
}
const bridges = (process.env.BENCH_BRIDGES ?? "addon,fifo,worker").split(",");
const redactors = {};
if (bridges.includes("addon")) {
  if (fs.existsSync(addon)) redactors.addon = redactorFor("addon");
  else console.error(`no addon at ${addon}: its columns are left out (cargo build --release)`);
}
for (const t of ["fifo", "worker"]) if (bridges.includes(t)) redactors[t] = redactorFor(t);
// Baselines: name -> [redactor of the older version, the current bridge it is compared with].
const baselines = {};
if (process.env.BENCH_BASELINE_PLUGIN) {
  const old = await import(pathToFileURL(path.join(path.resolve(process.env.BENCH_BASELINE_PLUGIN), "index.js")).href);
  const oldBin = process.env.BENCH_BASELINE_BIN ?? binary;
  const make = (extra) => {
    const r = new old.Redactor(old.resolveConfig({ binary: oldBin, mode: "all", sweep: false, timeoutMs: 30000, ...extra }), { info() {}, error: (m) => console.error(m), warn() {} });
    r.ensureEngine();
    return r;
  };
  if (redactors.fifo) baselines.fifo = [make({ bridge: "stdio", transport: "fifo" }), "fifo"];
  if (redactors.addon && process.env.BENCH_BASELINE_ADDON) {
    baselines.addon = [make({ bridge: "addon", addon: path.resolve(process.env.BENCH_BASELINE_ADDON) }), "addon"];
    if (baselines.addon[0].engine.transport !== "addon") throw new Error("the baseline addon did not load");
  }
}

// Times `a` and `b` interleaved (one call each per round, the order alternating).
function timePair(a, b, iters, warm) {
  for (let i = 0; i < warm; i++) {
    a(i);
    b(i);
  }
  const ta = new Float64Array(iters);
  const tb = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    for (const first of i % 2 ? [false, true] : [true, false]) {
      const t = performance.now();
      (first ? a : b)(i);
      (first ? ta : tb)[i] = (performance.now() - t) * 1000;
    }
  }
  ta.sort();
  tb.sort();
  const st = (x) => ({ p50: pct(x, 50), p99: pct(x, 99), n: iters });
  return [st(ta), st(tb)];
}

const sizes = [
  ["1 KB", 1 << 10, full ? 20000 : 3000],
  ["16 KB", 16 << 10, full ? 10000 : 2000],
  ["1 MB", 1 << 20, full ? 300 : 60],
];
const results = [];
const f = (r) => `${r.p50.toFixed(1).padStart(8)} / ${r.p99.toFixed(1).padStart(8)}`;
console.log(`moltvault-redact hook overhead per message (µs, p50 / p99), engine ${binary}${redactors.addon ? `, addon ${addon}` : ""}`);
const cols = Object.keys(redactors).flatMap((n) => [`${n}_ping`, `${n}_hook`]);
const bcols = Object.keys(baselines).flatMap((n) => [`${n}_hook_vs`, `baseline_${n}_hook`]);
console.log(`size   variant     ${["no-op hook", ...cols.map((c) => c.replace("_", " ")), ...bcols.map((c) => c.replaceAll("_", " "))].map((c) => c.padEnd(22)).join("")}${bcols.length ? "ratio p50" : ""}`);
for (const [label, bytes, iters] of sizes) {
  for (const secret of [false, true]) {
    // Distinct objects per call: the hook skips objects it has already seen (its WeakSet).
    const pool = Array.from({ length: 8 }, (_, i) => message(bytes, secret, i + 1));
    const fresh = (i) => ({ ...pool[i % pool.length] });
    let sink = 0;
    const noop = time((i) => {
      const m = fresh(i);
      sink += m.role.length;
    }, iters, Math.min(200, iters));
    const row = { size: label, variant: secret ? "one secret" : "clean", noop };
    for (const [name, r] of Object.entries(redactors)) {
      row[`${name}_ping`] = time(() => r.engine.call({ op: "ping" }, 30000), iters, Math.min(200, iters));
      let changed = 0;
      row[`${name}_hook`] = time((i) => {
        if (r.redactMessage(fresh(i)) !== undefined) changed++;
      }, iters, Math.min(50, iters));
      if (secret && changed === 0) throw new Error("the engine redacted nothing in the secret variant");
      if (!secret && changed !== 0) throw new Error("the engine changed a message without a secret");
    }
    const ratios = [];
    for (const [name, [old, cur]] of Object.entries(baselines)) {
      let changedOld = 0;
      let changedNew = 0;
      [row[`${name}_hook_vs`], row[`baseline_${name}_hook`]] = timePair(
        (i) => {
          if (redactors[cur].redactMessage(fresh(i)) !== undefined) changedNew++;
        },
        (i) => {
          if (old.redactMessage(fresh(i)) !== undefined) changedOld++;
        },
        iters,
        Math.min(50, iters),
      );
      if (secret !== changedOld > 0 || secret !== changedNew > 0) throw new Error("the baseline disagrees about the secret");
      ratios.push(`${name} ${(row[`${name}_hook_vs`].p50 / row[`baseline_${name}_hook`].p50).toFixed(2)}`);
    }
    console.log(`${label.padEnd(6)} ${row.variant.padEnd(11)} ${[noop, ...cols.map((c) => row[c]), ...bcols.map((c) => row[c])].map((r) => `${f(r)}   `).join("")}${ratios.join(", ")}`);
    results.push(row);
    void sink;
  }
}
for (const r of Object.values(redactors)) r.engine.stop();
for (const [old] of Object.values(baselines)) old.engine?.stop();
console.log(JSON.stringify({ bench: "plugin-hook", binary, addon: redactors.addon ? addon : null, loadavg: (await import("node:os")).loadavg(), results }));
