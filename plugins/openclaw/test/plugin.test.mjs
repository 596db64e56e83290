// The plugin against the real engine: `MOLTVAULT_BIN=target/debug/moltvault node --test plugins/openclaw/test/`.
// Run by tests/cli/plugin.rs (which passes the freshly built binary and a temp gateway state dir)
// and by tests/e2e/plugin.sh. MOLTVAULT_TEST_ADDON (a build's libmoltvault_node.so) adds the
// addon bridge to every bridge test; without it the addon tests are skipped.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

globalThis.__nodeTest = test;
import plugin, { PLUGIN_ID, Redactor, WITHHELD, resolveConfig, serveArgs, sweepArgs, withhold } from "../index.js";
import { AddonEngine, loadAddon, startEngine } from "../bridge.js";
import { BIG, Encoder, NO_TEXT, REF_KEY, applyPatch, decodePatch, splice } from "../codec.js";

const BIN = process.env.MOLTVAULT_BIN;
const STATE = process.env.MOLTVAULT_TEST_STATE_DIR;
const TOKEN = process.env.MOLTVAULT_TEST_GATEWAY_TOKEN;
const ADDON = process.env.MOLTVAULT_TEST_ADDON;
const VAULT = process.env.MOLTVAULT_DIR;
const needsAddon = { skip: ADDON ? false : "MOLTVAULT_TEST_ADDON is not set" };
// A provider-format token assembled from fragments (no literal secret in the repo).
const GH = "gh" + "p_" + "Zq8RfT2mWk9LxV4nBc7YhJ3sPd6Ga10mqmPb";

function fakeApi(pluginConfig) {
  const hooks = {};
  const logs = [];
  const api = {
    pluginConfig,
    logger: {
      info: (m) => logs.push(["info", m]),
      warn: (m) => logs.push(["warn", m]),
      error: (m) => logs.push(["error", m]),
    },
    on: (name, fn) => {
      hooks[name] = fn;
    },
  };
  return { api, hooks, logs };
}

const toolResult = (text) => ({
  role: "toolResult",
  toolCallId: "call_1",
  toolName: "exec",
  content: [{ type: "text", text }],
  details: { status: "completed", exitCode: 0, aggregated: text },
  isError: false,
});

test("registers both persistence hooks", () => {
  const { api, hooks } = fakeApi({ binary: BIN, stateDir: STATE, sweep: false });
  plugin.register(api);
  assert.equal(typeof hooks.tool_result_persist, "function");
  assert.equal(typeof hooks.before_message_write, "function");
});

test("redacts a tool result, the toolCall arguments and the gateway's own token with the Rust engine", () => {
  const { api, hooks, logs } = fakeApi({ binary: BIN, stateDir: STATE, sweep: false });
  plugin.register(api);
  const out = hooks.tool_result_persist({ message: toolResult(`GITHUB_TOKEN=${GH}\n${TOKEN}\nok`) }, {});
  const text = JSON.stringify(out.message);
  assert.ok(!text.includes(GH) && !text.includes(TOKEN), text);
  assert.match(out.message.content[0].text, /\[REDACTED:[a-z0-9-]+:[0-9a-f]{8}\]/);
  assert.equal(out.message.toolCallId, "call_1");
  const call = {
    role: "assistant",
    content: [{ type: "toolCall", id: "call_1", name: "exec", arguments: { command: `echo ${GH}` }, partialArgs: JSON.stringify({ command: `echo ${GH}` }) }],
    stopReason: "toolUse",
  };
  const out2 = hooks.before_message_write({ message: call }, {});
  assert.ok(!JSON.stringify(out2.message).includes(GH));
  assert.equal(out2.message.content[0].id, "call_1");
  assert.ok(logs.some(([lvl, m]) => lvl === "info" && m.includes("ready")), JSON.stringify(logs));
});

test("returns nothing for a clean message (no rewrite)", () => {
  const { api, hooks } = fakeApi({ binary: BIN, stateDir: STATE, sweep: false });
  plugin.register(api);
  assert.equal(hooks.before_message_write({ message: { role: "user", content: "hello there" } }, {}), undefined);
});

test("withholds when the engine is unavailable, and logs once", () => {
  const { api, hooks, logs } = fakeApi({ binary: "/nonexistent/moltvault", sweep: false });
  plugin.register(api);
  const a = hooks.tool_result_persist({ message: toolResult(`k=${GH}`) }, {});
  const b = hooks.before_message_write({ message: { role: "user", content: `my key ${GH}` } }, {});
  assert.equal(a.message.content[0].text, WITHHELD);
  assert.deepEqual(a.message.details, { withheld: true });
  assert.equal(a.message.toolCallId, "call_1");
  assert.equal(b.message.content, WITHHELD);
  const errors = logs.filter(([lvl]) => lvl === "error");
  assert.equal(errors.length, 1, JSON.stringify(logs));
  assert.ok(!errors[0][1].includes(GH));
});

test("passthrough keeps the message when the engine is unavailable", () => {
  const { api, hooks, logs } = fakeApi({ binary: "/nonexistent/moltvault", failPolicy: "passthrough", sweep: false });
  plugin.register(api);
  assert.equal(hooks.tool_result_persist({ message: toolResult("x") }, {}), undefined);
  assert.equal(logs.filter(([lvl]) => lvl === "error").length, 1);
});

test("an engine killed mid-session triggers the fail policy, not a hang", () => {
  const logs = [];
  const r = new Redactor(resolveConfig({ binary: BIN, stateDir: STATE, sweep: false, timeoutMs: 2000 }), { info() {}, error: (m) => logs.push(m) });
  assert.equal(r.redactMessage({ role: "user", content: "warm up" }), undefined);
  process.kill(r.engine.info.pid, "SIGKILL");
  const t = performance.now();
  const out = r.redactMessage(toolResult(`k=${GH}`));
  assert.equal(out.content[0].text, WITHHELD);
  assert.ok(performance.now() - t < 2500, "the hook waited past its timeout");
  // Within the restart back-off, further messages are withheld at once and not logged again.
  assert.equal(r.redactMessage(toolResult(`k2=${GH}`)).content[0].text, WITHHELD);
  assert.equal(logs.length, 1, JSON.stringify(logs));
  assert.ok(!logs[0].includes(GH));
});

test("withhold keeps the tool-call pairing and drops argument text", () => {
  const m = withhold({
    role: "assistant",
    content: [{ type: "text", text: "a" }, { type: "toolCall", id: "c9", name: "exec", arguments: { command: "x" }, partialArgs: "{}" }],
  });
  assert.deepEqual(m.content, [{ type: "text", text: WITHHELD }, { type: "toolCall", id: "c9", name: "exec", arguments: {} }]);
});

test("the plugin id matches the manifests", async () => {
  const fs = await import("node:fs");
  for (const f of ["openclaw.plugin.json", "clawdbot.plugin.json", "moltbot.plugin.json"]) {
    const m = JSON.parse(fs.readFileSync(new URL(`../${f}`, import.meta.url)));
    assert.equal(m.id, PLUGIN_ID);
    assert.equal(m.activation.onStartup, true);
  }
  const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url)));
  assert.equal(pkg.name, PLUGIN_ID);
  assert.deepEqual(pkg.openclaw.extensions, ["./index.js"]);
  assert.deepEqual(pkg.clawdbot.extensions, ["./index.js"]);
});

// ---- protocol 2: the encoder, the patch, and both transports against the real engine ----

const PLACEHOLDER = /\[REDACTED:[a-z0-9-]+:[0-9a-f]{8}\]/;
const engines = {};
function addonConfig(extra = {}) {
  return resolveConfig({ binary: BIN, stateDir: STATE, vaultDir: VAULT, addon: ADDON, bridge: "addon", sweep: false, ...extra });
}
function addonEngine(cfg, client = {}, strictVersion = false) {
  return new AddonEngine({ cfg, args: serveArgs(cfg), client, strictVersion });
}
function engine(transport) {
  if (transport === "addon") {
    if (!engines.addon) {
      engines.addon = addonEngine(addonConfig(), { pid: process.pid, process: "test" });
      engines.addon.start();
    }
    return engines.addon;
  }
  engines[transport] ??= startEngine({
    binary: BIN,
    args: ["--state-dir", STATE, "serve", "--stdio", "--mode", "all"],
    client: { pid: process.pid, process: "test" },
    transport,
  });
  return engines[transport];
}
test.after(() => {
  for (const e of Object.values(engines)) e.stop();
});

// Deterministic filler text of `n` characters, shell-output-like, without secrets.
function filler(n, seed = 1) {
  const words = ["build", "ok", "src/main.rs", "warning:", "Finished", "target/debug", "PASS", "GET", "/v1/models", "200"];
  let x = seed;
  let out = "";
  while (out.length < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    out += `${words[x % words.length]} ${x % 9973}\n`;
  }
  return out.slice(0, n);
}

test("the encoder sends long strings once, as raw bytes, and short ones inline", () => {
  const long = filler(BIG * 4);
  const msg = { role: "toolResult", content: [{ type: "text", text: long }], details: { aggregated: long, cwd: "/w" }, n: 1, ok: true, none: null };
  const enc = new Encoder().encode(msg);
  assert.equal(enc.head.op, "patch");
  assert.deepEqual(enc.head.strings, [Buffer.byteLength(long)], "one copy of the duplicated string");
  assert.equal(enc.head.len, enc.end - enc.start);
  const skeleton = JSON.parse(enc.buf.toString("utf8", enc.start, enc.start + enc.head.skeleton));
  assert.deepEqual(skeleton.content[0].text, { [REF_KEY]: 0 });
  assert.deepEqual(skeleton.details, { aggregated: { [REF_KEY]: 0 }, cwd: "/w" });
  assert.equal(enc.buf.toString("utf8", enc.start + enc.head.skeleton, enc.end), long);
  // The message itself is untouched.
  assert.equal(msg.content[0].text, long);
});

test("a message with its own \"$mv\" key is sent with every string inline", () => {
  const long = filler(BIG * 2);
  const msg = { role: "assistant", content: [{ type: "toolCall", id: "c", arguments: { [REF_KEY]: 0, text: long } }] };
  const enc = new Encoder().encode(msg);
  assert.deepEqual(enc.head.strings, []);
  assert.deepEqual(JSON.parse(enc.buf.toString("utf8", enc.start, enc.end)), msg);
});

test("applyPatch copies only the path to each replaced string and never touches the input", () => {
  const shared = { keep: "x" };
  const msg = { a: [{ t: "one" }, { t: "two" }], "we/ird~key": { s: "three" }, shared };
  const before = JSON.stringify(msg);
  const out = applyPatch(msg, [["/a/1/t", "TWO"], ["/we~1ird~0key/s", "THREE"]]);
  assert.equal(JSON.stringify(msg), before);
  assert.deepEqual(out, { a: [{ t: "one" }, { t: "TWO" }], "we/ird~key": { s: "THREE" }, shared });
  assert.equal(out.a[0], msg.a[0], "unchanged branches are shared");
  assert.equal(out.shared, shared);
  assert.throws(() => applyPatch(msg, [["/a/7/t", "x"]]), /does not match/);
  assert.throws(() => applyPatch(msg, [["/a/0", "x"]]), /does not name a string/);
  assert.throws(() => applyPatch(msg, [["/shared/missing", "x"]]), /does not match/);
});

test("splice builds the new text from slices of the old one and refuses a recipe that does not fit", () => {
  const old = "héllo 😀 SECRET tail";
  const at = old.indexOf("SECRET");
  const recipe = [old.length, 0, at, 0, at + 6, old.length, NO_TEXT];
  assert.equal(splice(old, recipe, ["[REDACTED:x:1]"]), "héllo 😀 [REDACTED:x:1] tail");
  assert.equal(splice(old, [old.length, 0, 0, 0], ["whole"]), "whole");
  // An unpaired surrogate is kept as the U+FFFD it was sent as (what the stdio bridge answers).
  assert.equal(splice("a\ud800b S", [5, 0, 3, 0], ["[R]"]), "a\ufffdb[R]");
  for (const bad of [
    [old.length + 1, 0, 1, NO_TEXT], // another string's length
    [old.length, 0, 1], // not triples
    [old.length, 3, 2, NO_TEXT], // a backwards run
    [old.length, 0, 5, NO_TEXT, 4, 6, NO_TEXT], // overlapping runs
    [old.length, 0, old.length + 1, NO_TEXT], // past the end
    [old.length, 0, 1, 7], // no such text
    [old.length, 0.5, 1, NO_TEXT],
    "not a recipe",
  ]) {
    assert.throws(() => splice(old, bad, ["x"]), TypeError, JSON.stringify(bad));
  }
  // applyPatch takes a function of the replaced string.
  assert.deepEqual(applyPatch({ a: ["xy"] }, [["/a/0", (s) => s + "!"]]), { a: ["xy!"] });
  assert.throws(() => applyPatch({ a: 1 }, [[7, "x"]]), /malformed/);
});

test("decodePatch rejects a payload that does not add up", () => {
  const buf = Buffer.from("abcdef");
  assert.deepEqual(decodePatch([["/a", 2], ["/b", 4]], buf, 0, 6), [["/a", "ab"], ["/b", "cdef"]]);
  assert.throws(() => decodePatch([["/a", 2]], buf, 0, 6), /shorter/);
  assert.throws(() => decodePatch([["/a", 7]], buf, 0, 6), /longer/);
  assert.throws(() => decodePatch([["/a", -1]], buf, 0, 6), /malformed/);
});

for (const transport of ["fifo", "worker", "addon"]) {
  const test = (name, fn) => globalThis.__nodeTest(name, transport === "addon" ? needsAddon : {}, fn);
  test(`${transport}: a clean message costs no rewrite, short or long`, () => {
    const e = engine(transport);
    assert.equal(e.transport, transport);
    assert.equal(e.info.protocol, 2);
    assert.equal(e.redact({ role: "user", content: "hello there" }, 5000), undefined);
    const long = filler(100_000);
    assert.equal(e.redact({ role: "toolResult", content: [{ type: "text", text: long }], details: { aggregated: long } }, 5000), undefined);
  });

  test(`${transport}: a changed message comes back patched, in nested arrays, with unicode and escapes`, () => {
    const e = engine(transport);
    const long = filler(5000) + `\nexport GH=${GH} ✓ naïve 日本語 🚀 "quoted" \\ back\\slash\ttab\n` + filler(3000, 7);
    const msg = {
      role: "assistant",
      content: [
        { type: "text", text: `short: ${GH}` },
        { type: "toolCall", id: "call_9", name: "exec", arguments: { argv: [["sh", "-c", `echo ${GH}`], ["ok"]], env: { "A/B~C": `é${GH}é` } } },
        { type: "text", text: long },
      ],
      usage: { input: 1 },
      stopReason: "toolUse",
    };
    const snapshot = JSON.stringify(msg);
    const rep = e.redact(msg, 5000);
    assert.ok(rep, "changed");
    assert.equal(JSON.stringify(msg), snapshot, "the gateway's object is not modified");
    const out = rep.value;
    assert.ok(!JSON.stringify(out).includes(GH));
    assert.match(out.content[0].text, /^short: \[REDACTED:github-pat:[0-9a-f]{8}\]$/);
    assert.match(out.content[1].arguments.argv[0][2], /^echo \[REDACTED:github-pat:/);
    assert.deepEqual(out.content[1].arguments.argv[1], ["ok"]);
    assert.match(out.content[1].arguments.env["A/B~C"], /^é\[REDACTED:github-pat:[0-9a-f]{8}\]é$/);
    assert.equal(out.content[1].id, "call_9");
    // Everything around the secret is kept exactly, multi-byte characters and escapes included.
    assert.equal(out.content[2].text.replace(PLACEHOLDER, GH), long);
    assert.equal(out.usage, msg.usage, "untouched members are shared");
    const pointers = rep.findings.map((f) => f.pointer).sort();
    assert.deepEqual(pointers, ["/content/0/text", "/content/1/arguments/argv/0/2", "/content/1/arguments/env/A~1B~0C", "/content/2/text"]);
    assert.ok(!JSON.stringify(rep.findings).includes(GH));
  });

  test(`${transport}: a 1 MB tool result with a secret in each copy`, () => {
    const e = engine(transport);
    const text = filler(512 * 1024) + ` GITHUB_TOKEN=${GH} ` + filler(512 * 1024, 3);
    const msg = { role: "toolResult", toolCallId: "call_1", toolName: "exec", content: [{ type: "text", text }], details: { aggregated: text, exitCode: 0 }, isError: false };
    const rep = e.redact(msg, 20000);
    assert.ok(rep);
    assert.equal(rep.value.content[0].text, rep.value.details.aggregated);
    assert.ok(!rep.value.content[0].text.includes(GH));
    assert.equal(rep.value.content[0].text.replace(PLACEHOLDER, GH), text);
    assert.equal(rep.value.toolCallId, "call_1");
    assert.equal(rep.findings.length, 2);
    // And the clean variant of the same size.
    assert.equal(e.redact({ ...msg, content: [{ type: "text", text: filler(1 << 20) }], details: { aggregated: filler(1 << 20, 5) } }, 20000), undefined);
  });

  test(`${transport}: unpaired surrogates do not break the request`, () => {
    const e = engine(transport);
    const lone = "a\ud800b";
    assert.equal(e.redact({ role: "user", content: lone }, 5000), undefined);
    const rep = e.redact({ role: "user", content: [{ type: "text", text: `${lone} ${GH}` }, { type: "text", text: lone.repeat(BIG) + ` ${GH}` }] }, 5000);
    assert.ok(rep);
    assert.match(rep.value.content[0].text, /^a\ufffdb \[REDACTED:github-pat:/);
    assert.ok(!rep.value.content[1].text.includes(GH));
  });
}

test("a serve that crashes mid-request: the fail policy at once, not a hang, then a restart", async () => {
  const { spawn } = await import("node:child_process");
  const logs = [];
  const r = new Redactor(resolveConfig({ binary: BIN, stateDir: STATE, sweep: false, timeoutMs: 8000 }), { info: (m) => logs.push(["info", m]), error: (m) => logs.push(["error", m]) });
  assert.equal(r.redactMessage({ role: "user", content: "warm up" }), undefined);
  const pid = r.engine.info.pid;
  // Freeze the engine so the next request is surely in flight, and have another process kill
  // it 300 ms later (this thread is blocked in the hook meanwhile).
  process.kill(pid, "SIGSTOP");
  spawn("sh", ["-c", `sleep 0.3; kill -9 ${pid}`], { stdio: "ignore" });
  const t = performance.now();
  const text = filler(1 << 20) + GH;
  const out = r.redactMessage({ role: "toolResult", toolCallId: "c", content: [{ type: "text", text }], details: { aggregated: text } });
  const took = performance.now() - t;
  assert.equal(out.content[0].text, WITHHELD);
  assert.deepEqual(out.details, { withheld: true });
  assert.equal(out.toolCallId, "c");
  assert.ok(took >= 250 && took < 4000, `answered after the crash, before the timeout (${took} ms)`);
  assert.equal(logs.filter(([l]) => l === "error").length, 1);
  assert.ok(!JSON.stringify(logs).includes(GH));
  // After the back-off the engine is started again.
  r.downUntil = 0;
  const back = r.redactMessage({ role: "user", content: `again ${GH}` });
  assert.match(back.content, PLACEHOLDER);
  assert.ok(logs.some(([l, m]) => l === "info" && m.includes("is back")), JSON.stringify(logs));
  r.engine.stop();
});

test("a frozen serve is killed at timeoutMs", () => {
  const r = new Redactor(resolveConfig({ binary: BIN, stateDir: STATE, sweep: false, timeoutMs: 500 }), { info() {}, error() {} });
  assert.equal(r.redactMessage({ role: "user", content: "warm up" }), undefined);
  process.kill(r.engine.info.pid, "SIGSTOP");
  const t = performance.now();
  assert.equal(r.redactMessage({ role: "user", content: `k ${GH}` }).content, WITHHELD);
  const took = performance.now() - t;
  assert.ok(took >= 450 && took < 2000, `${took} ms`);
});

test("the post-turn sweep uses the plugin's vault dir (its key and its marks), not the default one", async () => {
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mv-sweep-"));
  const state = path.join(dir, "state");
  fs.cpSync(STATE, state, { recursive: true });
  const vault = path.join(dir, "vault");
  const other = path.join(dir, "default-vault");
  const cfg = resolveConfig({ binary: BIN, stateDir: state, vaultDir: vault });
  const args = sweepArgs(cfg, { agentId: "main", sessionKey: "agent:main:main" });
  assert.deepEqual(args.slice(0, 4), ["serve", "--state-dir", state, "--sweep"]);
  assert.deepEqual(args.slice(args.indexOf("--vault-dir"), args.indexOf("--vault-dir") + 2), ["--vault-dir", vault]);
  execFileSync(BIN, args.map((a) => (a === "1500" ? "50" : a)), { env: { ...process.env, MOLTVAULT_DIR: other } });
  const marks = fs.readdirSync(path.join(vault, "sweep"));
  assert.ok(marks.length > 0, "the sweep left its marks in the plugin's vault dir");
  for (const m of marks) assert.equal(fs.statSync(path.join(vault, "sweep", m)).mode & 0o777, 0o600);
  assert.equal(fs.existsSync(other), false, "nothing went to the default vault dir");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("an engine that speaks another protocol is refused (fail policy)", async () => {
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mv-proto-"));
  const fake = path.join(dir, "old-moltvault");
  // A protocol-1 engine: answers every hello with protocol 1.
  fs.writeFileSync(fake, `#!/bin/sh\nwhile IFS= read -r line; do echo '{"id":1,"ok":true,"protocol":1,"version":"0.0.1"}'; done\n`, { mode: 0o755 });
  const logs = [];
  const r = new Redactor(resolveConfig({ binary: fake, sweep: false }), { info() {}, error: (m) => logs.push(m) });
  assert.equal(r.redactMessage({ role: "user", content: `k ${GH}` }).content, WITHHELD);
  assert.match(logs[0], /protocol 1, the plugin 2/);
  fs.rmSync(dir, { recursive: true });
});

// ---- the addon bridge (moltvault.node, crates/moltvault-node) ----

test("addon and stdio bridges redact identically (one engine, one key)", needsAddon, () => {
  const long = filler(70_000) + ` apiKey: "${GH}" ` + filler(70_000, 9);
  const uni = filler(3000) + "é日本😀" + filler(3000, 4);
  const msgs = [
    toolResult(`GITHUB_TOKEN=${GH}\n${TOKEN}\nok`),
    // Long strings come back as splices: non-ASCII around and between secrets, secrets at the
    // ends, several secrets in a row, unpaired surrogates, a secret only in one copy.
    toolResult(`😀 ${GH} ${uni} token=${TOKEN}${GH} ${uni} ${GH}`),
    toolResult(`${GH}\n${filler(2000)}\n${GH}`),
    toolResult(`lone \ud800 here ${filler(1000)} GITHUB_TOKEN=${GH} \udc00 ${filler(500)}`),
    { role: "toolResult", toolCallId: "c3", content: [{ type: "text", text: `${filler(4000)} ${GH}` }], details: { aggregated: filler(4000) } },
    { role: "toolResult", toolCallId: "c4", content: [{ type: "text", text: `${uni} ${GH}` }], details: { aggregated: `${uni} ${TOKEN}` } },
    { role: "assistant", content: [{ type: "toolCall", id: "c1", name: "exec", arguments: { apiKey: GH, cmd: "ls" } }], stopReason: "toolUse" },
    { role: "user", content: `token ${TOKEN} and ${GH}` },
    { role: "toolResult", toolCallId: "c2", content: [{ type: "text", text: long }], details: { aggregated: long } },
    { role: "user", content: "nothing to see" },
  ];
  for (const m of msgs) {
    const a = engine("addon").redact(m, 5000);
    const f = engine("fifo").redact(m, 5000);
    assert.deepEqual(a?.value, f?.value);
    assert.deepEqual(a?.findings, f?.findings);
  }
  assert.ok(!JSON.stringify(engine("addon").redact(msgs[0], 5000).value).includes(TOKEN), "the gateway's own token is a literal rule");
});

test("addon: mode tools leaves user text alone, exactly like serve --mode tools", needsAddon, () => {
  const e = addonEngine(addonConfig({ mode: "tools" }));
  e.start();
  assert.equal(e.info.mode, "tools");
  assert.equal(e.redact({ role: "user", content: `my key ${GH}` }), undefined);
  assert.ok(e.redact(toolResult(`k=${GH}`)));
});

test("auto uses the addon when it loads, else the stdio bridge (and says why)", needsAddon, () => {
  for (const [addon, want] of [[ADDON, "addon"], ["/nonexistent/moltvault.node", "fifo"]]) {
    const { api, hooks, logs } = fakeApi({ binary: BIN, stateDir: STATE, addon, sweep: false });
    plugin.register(api);
    const out = hooks.tool_result_persist({ message: toolResult(`GITHUB_TOKEN=${GH}\n${TOKEN}`) }, {});
    assert.ok(!JSON.stringify(out.message).includes(GH) && !JSON.stringify(out.message).includes(TOKEN));
    const ready = logs.find(([lvl, m]) => lvl === "info" && m.includes("ready"));
    assert.ok(ready && ready[1].includes(`${want} bridge`), JSON.stringify(logs));
    if (want === "fifo") assert.match(ready[1], /addon not used: no addon at \/nonexistent/);
  }
});

test("the addon is refused when the binary reports another version or another engine", needsAddon, async () => {
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mv-addon-"));
  // A moltvault whose hello differs from the addon: first another version, then another rule set.
  const real = JSON.parse(execFileSync(BIN, ["--state-dir", STATE, "serve", "--stdio"], { input: '{"id":1,"op":"hello","protocol":2}\n' }).toString());
  const fake = (name, hello) => {
    const f = path.join(dir, name);
    const inputs = JSON.stringify({ id: 2, ok: true, vaultDir: VAULT, literals: [] });
    fs.writeFileSync(f, `#!/bin/sh\nread l\necho '${JSON.stringify({ ...real, ...hello })}'\nread l\necho '${inputs}'\ncat >/dev/null\n`, { mode: 0o755 });
    return f;
  };
  const other = fake("other-version", { version: "0.0.0-other", literals: 0 });
  assert.throws(() => addonEngine(addonConfig({ binary: other }), {}, true).start(), /the addon is version .*, the installed moltvault 0\.0\.0-other/);
  const rules = fake("other-rules", { rules: 1, literals: 0 });
  assert.throws(() => addonEngine(addonConfig({ binary: rules }), {}, true).start(), /differs from moltvault serve's \(1, 0\)/);
  // Through the plugin with bridge auto: the stdio bridge is used instead.
  const { api, hooks, logs } = fakeApi({ binary: other, stateDir: STATE, addon: ADDON, sweep: false, timeoutMs: 1000 });
  plugin.register(api);
  hooks.before_message_write({ message: { role: "user", content: "hi" } }, {});
  assert.ok(logs.some(([, m]) => /ready .*fifo bridge.*addon not used: the addon is version/.test(m)), JSON.stringify(logs));
  fs.rmSync(dir, { recursive: true });
});

test("the addon records the gateway process that loaded it, with its bridge", needsAddon, async () => {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const e = addonEngine(addonConfig(), { pid: process.pid, process: "addon-test", plugin: "0.1.0" });
  e.start();
  const rec = JSON.parse(fs.readFileSync(path.join(STATE, "moltvault", "plugin-loaded.json"), "utf8"));
  assert.equal(rec.pid, process.pid);
  assert.equal(rec.process, "addon-test");
  assert.equal(rec.bridge, "addon");
  assert.equal(fs.statSync(path.join(STATE, "moltvault", "plugin-loaded.json")).mode & 0o777, 0o600);
});

test("bridge addon without a usable addon withholds and logs once", () => {
  const { api, hooks, logs } = fakeApi({ binary: BIN, stateDir: STATE, vaultDir: VAULT, addon: "/nonexistent/moltvault.node", bridge: "addon", sweep: false });
  plugin.register(api);
  assert.equal(hooks.tool_result_persist({ message: toolResult(`k=${GH}`) }, {}).message.content[0].text, WITHHELD);
  assert.equal(hooks.before_message_write({ message: { role: "user", content: GH } }, {}).message.content, WITHHELD);
  const errors = logs.filter(([lvl]) => lvl === "error");
  assert.equal(errors.length, 1, JSON.stringify(logs));
  assert.match(errors[0][1], /no addon at \/nonexistent/);
});

test("a Rust panic in the addon is an exception: the fail policy applies and the process lives on", needsAddon, () => {
  const mod = loadAddon(ADDON);
  assert.throws(() => mod.panicForTest(), /panicked/);
  const logs = [];
  const r = new Redactor(addonConfig(), { info() {}, error: (m) => logs.push(m) });
  assert.equal(r.redactMessage({ role: "user", content: "warm up" }), undefined);
  assert.equal(r.engine.transport, "addon");
  // The engine's next call panics inside Rust.
  r.engine.engine.patchEdits = () => mod.panicForTest();
  const out = r.redactMessage(toolResult(`k=${GH}`));
  assert.equal(out.content[0].text, WITHHELD);
  assert.equal(out.toolCallId, "call_1");
  assert.equal(logs.length, 1);
  assert.match(logs[0], /panicked/);
  assert.ok(!logs[0].includes(GH));
  // After the back-off a fresh engine is opened.
  r.downUntil = 0;
  assert.match(r.redactMessage({ role: "user", content: `again ${GH}` }).content, PLACEHOLDER);
});

test("a malformed addon reply is never persisted: the message is withheld", needsAddon, () => {
  const text = filler(3000) + ` GITHUB_TOKEN=${GH} ` + filler(3000, 2);
  const logs = [];
  const r = new Redactor(addonConfig(), { info() {}, error: (m) => logs.push(m) });
  assert.match(r.redactMessage(toolResult(text)).content[0].text, PLACEHOLDER);
  const real = r.engine.engine;
  const good = real.patchEdits(...(() => {
    const enc = r.engine.encoder.encode(toolResult(text));
    return [Buffer.from(enc.buf.subarray(enc.start, enc.end)), enc.head.skeleton, enc.head.strings];
  })());
  assert.equal(good.recipes.length, 1, "content and details.aggregated share one recipe");
  assert.equal(good.index.length, 2);
  const n = text.length;
  const broken = [
    { ...good, index: [0] },
    { ...good, index: [0, 5] },
    { ...good, recipes: [[n + 1, 0, n, NO_TEXT]] },
    { ...good, recipes: [[n, 0, n, 9]] },
    { ...good, recipes: [[n, 10, 5, NO_TEXT]] },
    { ...good, recipes: [[n, 0, n + 3, NO_TEXT]] },
    { ...good, recipes: ["x"] },
    { ...good, head: "{" },
    { ...good, head: JSON.stringify({ ...JSON.parse(good.head), patch: [["/content/0", 1], ["/details/aggregated", 1]] }) },
  ];
  for (const bad of broken) {
    logs.length = 0;
    r.downUntil = 0;
    r.loggedFailure = false;
    r.ensureEngine();
    r.engine.engine.patchEdits = () => bad;
    const out = r.redactMessage(toolResult(text));
    assert.equal(out.content[0].text, WITHHELD, JSON.stringify(bad).slice(0, 200));
    assert.equal(out.details.withheld, true);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /cannot apply/);
    assert.ok(!logs[0].includes(GH));
  }
});

test("the addon refuses an unknown mode and a missing rules file with an error naming it", needsAddon, () => {
  const mod = loadAddon(ADDON);
  assert.throws(() => new mod.Engine({ vaultDir: VAULT, mode: "most", literals: [] }), /unknown mode "most"/);
  assert.throws(() => new mod.Engine({ vaultDir: VAULT, mode: "all", rulesFile: "/nonexistent/rules.toml", literals: [] }), /\/nonexistent\/rules\.toml/);
});
