// moltvault-redact: redacts secrets from every message the gateway persists, with moltvault's
// Rust engine (in process through moltvault.node, else `moltvault serve --stdio`), from the
// synchronous persistence hooks:
//   tool_result_persist   (every line since clawdbot 2026.1.x; tool results only)
//   before_message_write  (openclaw 2026.2.17+; user, assistant and tool-result messages)
// No SDK import (the import alias differs between gateway lines) and no JS copy of the rules.
import { spawn } from "node:child_process";
import { BridgeError, openEngine } from "./bridge.js";

export const PLUGIN_ID = "moltvault-redact";
export const WITHHELD = "[moltvault: content withheld, the redaction engine was unavailable]";

const DEFAULTS = { mode: "all", failPolicy: "withhold", timeoutMs: 5000, sweep: true, bridge: "auto" };
// After an engine failure, requests fail fast (fail policy) for this long before a restart.
const RESTART_BACKOFF_MS = 30000;

/** Builds the engine arguments from the plugin config. */
export function serveArgs(cfg) {
  const args = ["serve", "--stdio", "--mode", cfg.mode];
  if (cfg.stateDir) args.unshift("--state-dir", cfg.stateDir);
  if (cfg.vaultDir) args.unshift("--vault-dir", cfg.vaultDir);
  if (cfg.rulesFile) args.push("--rules", cfg.rulesFile);
  return args;
}

/**
 * Builds the post-turn sweep's arguments: the same state dir, vault dir (so the same
 * fingerprint key and sweep marks), rules and mode as the engine.
 */
export function sweepArgs(cfg, ctx) {
  const args = ["serve", ...(cfg.stateDir ? ["--state-dir", cfg.stateDir] : []), "--sweep", "--settle-ms", "1500"];
  if (cfg.vaultDir) args.push("--vault-dir", cfg.vaultDir);
  if (ctx?.agentId) args.push("--agent", String(ctx.agentId));
  if (ctx?.sessionKey) args.push("--session-key", String(ctx.sessionKey));
  if (cfg.rulesFile) args.push("--rules", cfg.rulesFile);
  args.push("--mode", cfg.mode);
  return args;
}

/** Resolves the plugin config (gateway-validated against configSchema) with defaults. */
export function resolveConfig(pluginConfig, env = process.env) {
  const cfg = { ...DEFAULTS, ...(pluginConfig ?? {}) };
  if (cfg.mode !== "tools" && cfg.mode !== "all") cfg.mode = DEFAULTS.mode;
  if (cfg.failPolicy !== "withhold" && cfg.failPolicy !== "passthrough") cfg.failPolicy = DEFAULTS.failPolicy;
  if (!["auto", "addon", "stdio"].includes(cfg.bridge)) cfg.bridge = DEFAULTS.bridge;
  cfg.binary = cfg.binary || env.MOLTVAULT_BIN || "moltvault";
  return cfg;
}

/**
 * Replaces the text of a message with the withheld marker, keeping its structure (role, ids,
 * tool-call pairing) so the session stays consistent.
 */
export function withhold(message) {
  const out = { ...message };
  if (typeof out.content === "string") {
    out.content = WITHHELD;
  } else if (Array.isArray(out.content)) {
    let marked = false;
    out.content = out.content.flatMap((block) => {
      if (block && block.type === "toolCall") {
        const { partialArgs, ...rest } = block;
        return [{ ...rest, arguments: {} }];
      }
      if (marked) return [];
      marked = true;
      return [{ type: "text", text: WITHHELD }];
    });
  }
  if ("details" in out) out.details = { withheld: true };
  if ("errorMessage" in out) out.errorMessage = WITHHELD;
  return out;
}

/** The redactor the hooks call: engine lifecycle, fail policy and log-once live here. */
export class Redactor {
  constructor(cfg, logger, engineFactory = (c) => openEngine({ cfg: c, binary: c.binary, args: serveArgs(c), client: clientInfo(), transport: c.transport })) {
    this.cfg = cfg;
    this.logger = logger;
    this.engineFactory = engineFactory;
    this.engine = null;
    this.downUntil = 0;
    this.loggedFailure = false;
    this.clean = new WeakSet();
    this.nextSweep = 0;
    this.stats = { calls: 0, changed: 0, withheld: 0, passedThrough: 0 };
  }

  ensureEngine() {
    if (this.engine && this.engine.alive) return this.engine;
    if (performance.now() < this.downUntil) throw new BridgeError("moltvault serve is down (waiting before a restart)");
    this.engine?.stop();
    this.engine = null;
    try {
      this.engine = this.engineFactory(this.cfg);
      const hello = this.engine.info;
      const what = this.engine.transport === "addon" ? "moltvault.node" : "moltvault serve";
      if (this.loggedFailure) this.logger?.info?.(`${PLUGIN_ID}: ${what} is back (${hello.version})`);
      else this.logger?.info?.(`${PLUGIN_ID}: ${what} ${hello.version} ready (mode ${this.cfg.mode}, ${hello.rules} rules, ${hello.literals} gateway secrets, ${this.engine.transport} bridge)${this.engine.note ? `; ${this.engine.note}` : ""}`);
      return this.engine;
    } catch (err) {
      this.engine?.stop();
      this.engine = null;
      throw err;
    }
  }

  /** Returns the message to persist, or undefined when it is unchanged. */
  redactMessage(message) {
    if (!message || typeof message !== "object" || this.clean.has(message)) return undefined;
    this.stats.calls++;
    try {
      const engine = this.ensureEngine();
      const rep = engine.redact(message, this.cfg.timeoutMs);
      if (rep === undefined) {
        this.clean.add(message);
        return undefined;
      }
      this.stats.changed++;
      this.clean.add(rep.value);
      return rep.value;
    } catch (err) {
      return this.onFailure(message, err);
    }
  }

  onFailure(message, err) {
    this.downUntil = performance.now() + RESTART_BACKOFF_MS;
    this.engine?.stop();
    this.engine = null;
    if (!this.loggedFailure) {
      this.loggedFailure = true;
      const what = this.cfg.failPolicy === "withhold" ? "withholding message text until it is back" : "persisting messages UNREDACTED (failPolicy passthrough)";
      this.logger?.error?.(`${PLUGIN_ID}: redaction engine unavailable (${err instanceof BridgeError ? err.message : String(err?.message ?? err)}); ${what}. Check plugins.entries.${PLUGIN_ID}.config (binary, bridge) or run \`moltvault plugin status\`.`);
    }
    if (this.cfg.failPolicy === "passthrough") {
      this.stats.passedThrough++;
      return undefined;
    }
    this.stats.withheld++;
    const out = withhold(message);
    this.clean.add(out);
    return out;
  }

  /**
   * Starts a detached sweep of the session's side files (trajectory sidecar, CLI duplicate):
   * `moltvault serve --sweep`, which waits for the turn to settle. Fire and forget.
   */
  sweep(ctx) {
    if (!this.cfg.sweep) return;
    const now = performance.now();
    if (now < this.nextSweep) return;
    this.nextSweep = now + 2000;
    try {
      const child = spawn(this.cfg.binary, sweepArgs(this.cfg, ctx), { detached: true, stdio: "ignore", env: process.env });
      child.on("error", () => {});
      child.unref();
    } catch {
      // the engine failure is already reported by the hooks
    }
  }
}

// Who loaded the plugin, for `moltvault plugin status` (no argv: it may hold message text).
function clientInfo() {
  return { pid: process.pid, process: process.title, plugin: "0.1.0", hooks: ["tool_result_persist", "before_message_write"] };
}

function isFinalAssistant(message) {
  return message?.role === "assistant" && message.stopReason && message.stopReason !== "toolUse";
}

export default {
  id: PLUGIN_ID,
  name: "moltvault redact",
  description: "Redacts secrets from every message before the gateway persists it.",
  register(api) {
    const cfg = resolveConfig(api.pluginConfig);
    const redactor = new Redactor(cfg, api.logger);
    const hook = (event, ctx) => {
      const message = redactor.redactMessage(event?.message);
      if (isFinalAssistant(event?.message) || event?.message?.role === "toolResult") {
        redactor.sweep({ agentId: ctx?.agentId ?? event?.agentId, sessionKey: ctx?.sessionKey ?? event?.sessionKey });
      }
      return message === undefined ? undefined : { message };
    };
    api.on("tool_result_persist", hook);
    try {
      // openclaw >= 2026.2.17; clawdbot accepts the name silently and never calls it.
      api.on("before_message_write", hook);
    } catch (err) {
      api.logger?.warn?.(`${PLUGIN_ID}: before_message_write unavailable (${err?.message ?? err}); only tool results are redacted`);
    }
  },
};
