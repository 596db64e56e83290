// The plugin against the real engine: `MOLTVAULT_BIN=target/debug/moltvault node --test plugins/openclaw/test/`.
// Run by tests/cli/plugin.rs (which passes the freshly built binary and a temp gateway state dir).
import assert from "node:assert/strict";
import { test } from "node:test";
import plugin, { PLUGIN_ID, Redactor, WITHHELD, resolveConfig, withhold } from "../index.js";

const BIN = process.env.MOLTVAULT_BIN;
const STATE = process.env.MOLTVAULT_TEST_STATE_DIR;
const TOKEN = process.env.MOLTVAULT_TEST_GATEWAY_TOKEN;
// A provider-format token assembled from fragments (no literal secret in the repo).
const GH = "gh" + "p_" + "Zq8RfT2mWk9LxV4nBc7YhJ3sPd6Ga1Ue5Ko0";

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
