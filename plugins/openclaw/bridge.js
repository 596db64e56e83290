// Main-thread side of the synchronous bridge to `moltvault serve --stdio`.
//
// Protocol 2 (docs/plugin.md, "Protocol"): every frame is a JSON header line, followed by
// `len` raw bytes when the header has a `len`; replies come in request order.
//   -> {"id":1,"op":"hello","protocol":2,"client":{…}}   <- {"id":1,"ok":true,"protocol":2,…}
//   -> {"id":2,"op":"patch","len":N,"skeleton":S,"strings":[l1,…]}\n<N bytes>
//                                                        <- {"id":2,"ok":true,"changed":false}
//                                                           {"id":2,"ok":true,"changed":true,"findings":[…],"patch":[[ptr,l],…],"len":M}\n<M bytes>
//   -> {"id":3,"op":"ping"}                              <- {"id":3,"ok":true}
//   any failure                                          <- {"id":n,"ok":false,"error":"…"}
// The payload encoding and the patch are in codec.js.
//
// Two bridges, chosen by measurement (docs/plugin.md, benches/plugin/hook-bench.mjs):
//   "addon"  (preferred): moltvault.node, a Node-API addon built from crates/moltvault-node and
//            copied next to this file by `moltvault plugin install`. The engine runs in the
//            gateway's own thread: no process, no pipe, no wake-up. Same codec, same engine
//            (moltvault_gateway::engine), same new texts as the stdio bridge, given as recipes
//            (codec.js `splice`) that keep slices of the strings the plugin already holds.
//   stdio    (fallback) `moltvault serve --stdio`, on one of two transports:
//   "fifo"   (default on Linux/macOS): the child's stdin/stdout are two named pipes in a private
//            0700 temp dir; the hook writes and reads them with blocking fs.writeSync/readSync on
//            the gateway's own thread: no thread hop, ~5x less overhead. A watchdog thread kills a
//            child that overruns its timeout, which turns the blocked read into EOF.
//   "worker" (fallback when mkfifo is unavailable): a worker thread owns an ordinary piped child;
//            the hook posts the request and sleeps in Atomics.wait until the worker answers.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";
import { Encoder, applyPatch, decodePatch, splice } from "./codec.js";

export const PROTOCOL = 2;
// Replies are read into one buffer that grows to the largest reply seen.
const READ_CHUNK = 1 << 16;

/** An error of the bridge itself (engine down, timeout, protocol); never carries message text. */
export class BridgeError extends Error {}

/** The addon's file name in the plugin directory. */
export const ADDON_FILE = "moltvault.node";

/** Where the plugin looks for the addon: `cfg.addon`, else `moltvault.node` beside this file. */
export function addonPath(cfg) {
  return cfg.addon || fileURLToPath(new URL(`./${ADDON_FILE}`, import.meta.url));
}

/**
 * Loads the addon (`createRequire` for a `.node` file; `process.dlopen` for another name, e.g.
 * a build's `libmoltvault_node.so`). Throws a BridgeError saying why it cannot be used.
 */
export function loadAddon(file) {
  if (!fs.existsSync(file)) throw new BridgeError(`no addon at ${file}`);
  let mod;
  try {
    if (file.endsWith(".node")) {
      mod = createRequire(import.meta.url)(file);
    } else {
      const m = { exports: {} };
      process.dlopen(m, file);
      mod = m.exports;
    }
  } catch (err) {
    throw new BridgeError(`cannot load the addon ${file} (${err?.message ?? err})`);
  }
  if (typeof mod?.Engine !== "function" || typeof mod.protocol !== "function" || typeof mod.version !== "function") {
    throw new BridgeError(`${file} is not moltvault's addon`);
  }
  if (typeof mod.Engine.prototype.patchEdits !== "function") {
    throw new BridgeError(`the addon ${file} (${mod.version()}) is older than the plugin: install matching versions`);
  }
  if (mod.protocol() !== PROTOCOL) {
    throw new BridgeError(`the addon speaks protocol ${mod.protocol()}, the plugin ${PROTOCOL}: install matching versions`);
  }
  return mod;
}

/**
 * Opens the engine the config asks for. `bridge: "addon"` uses the addon or fails (fail
 * policy); `"stdio"` uses `moltvault serve --stdio`; `"auto"` (the default) uses the addon when
 * it loads, speaks this plugin's protocol and reports the version of the installed moltvault
 * binary (its hello), else the stdio bridge. The engine's `note` says why an auto choice fell
 * back.
 */
export function openEngine(opts) {
  const { cfg } = opts;
  let note = null;
  if (cfg.bridge !== "stdio") {
    try {
      const e = new AddonEngine({ ...opts, strictVersion: cfg.bridge === "auto" });
      e.start();
      return e;
    } catch (err) {
      if (cfg.bridge === "addon") throw err instanceof BridgeError ? err : new BridgeError(String(err?.message ?? err));
      note = `addon not used: ${err?.message ?? err}`;
    }
  }
  const e = startEngine({ ...opts, client: { ...opts.client, bridge: "stdio" } });
  e.note = note;
  return e;
}

/**
 * The engine in this process: moltvault.node (crates/moltvault-node). Same request encoding
 * and patch as the stdio bridge; the addon reads the encoded payload in place.
 */
export class AddonEngine {
  /**
   * @param {{cfg: object, args: string[], binary?: string, client?: object, strictVersion?: boolean}} opts
   */
  constructor(opts) {
    this.cfg = opts.cfg;
    this.binary = opts.binary ?? opts.cfg.binary;
    this.args = opts.args;
    this.startTimeoutMs = opts.startTimeoutMs ?? 15000;
    this.client = opts.client;
    this.strictVersion = opts.strictVersion ?? false;
    this.transport = "addon";
    this.mod = null;
    this.engine = null;
    this.info = null;
    this.note = null;
    this.encoder = new Encoder();
  }

  /**
   * Loads the addon, asks `moltvault serve --stdio` once for the engine's inputs (hello, then
   * `inputs`: the vault dir and the gateway's literal secrets, which the addon must not read
   * itself: the gateway's databases are open in this process under another SQLite), and builds
   * the engine. Refuses an addon whose protocol, version or rule count differs from the binary's.
   */
  start() {
    const cfg = this.cfg;
    const file = addonPath(cfg);
    const mod = loadAddon(file);
    const req = [
      JSON.stringify({ id: 1, op: "hello", protocol: PROTOCOL, client: { ...this.client, bridge: "addon" } }),
      JSON.stringify({ id: 2, op: "inputs" }),
      "",
    ].join("\n");
    let out;
    try {
      out = execFileSync(this.binary, this.args, { input: req, env: engineEnv(), timeout: this.startTimeoutMs, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 24 });
    } catch (err) {
      const tail = String(err?.stderr ?? "").trim().split("\n").slice(-3).join(" | ");
      throw new BridgeError(`cannot run ${this.binary} for the addon's inputs (${err?.code ?? err?.status ?? err?.message ?? err})${tail ? `: ${tail}` : ""}`);
    }
    const lines = out.toString("utf8").split("\n");
    const hello = parseHeader(lines[0] ?? "");
    const inputs = parseHeader(lines[1] ?? "");
    checkReply(hello, 1);
    checkReply(inputs, 2);
    if (hello.protocol !== PROTOCOL) {
      throw new BridgeError(`moltvault serve speaks protocol ${hello.protocol}, the plugin ${PROTOCOL}: install matching versions`);
    }
    if (this.strictVersion && mod.version() !== hello.version) {
      throw new BridgeError(`the addon is version ${mod.version()}, the installed moltvault ${hello.version}`);
    }
    try {
      this.engine = new mod.Engine({ vaultDir: inputs.vaultDir, mode: cfg.mode, rulesFile: cfg.rulesFile || undefined, literals: inputs.literals ?? [] });
      this.info = { ...hello, ...JSON.parse(this.engine.info()) };
    } catch (err) {
      this.engine = null;
      throw new BridgeError(`the addon engine does not start (${err?.message ?? err})`);
    }
    if (this.info.rules !== hello.rules || this.info.literals !== hello.literals) {
      this.engine = null;
      throw new BridgeError(`the addon's engine (${this.info.rules} rules, ${this.info.literals} literals) differs from moltvault serve's (${hello.rules}, ${hello.literals})`);
    }
    this.mod = mod;
    this.file = file;
    return this.info;
  }

  stop() {
    this.engine = null;
  }

  get alive() {
    return this.engine !== null;
  }

  /** Header-only requests: `ping` is one call into the addon (the bench's "bridge alone"). */
  call(req) {
    if (!this.engine) throw new BridgeError("the addon engine is stopped");
    if (req.op === "ping") return { ok: this.mod.protocol() === PROTOCOL };
    if (req.op === "hello") return this.info;
    throw new BridgeError(`the addon has no op ${req.op}`);
  }

  /**
   * Redacts one message: `undefined` when it is clean, else `{value, findings}`. Runs on the
   * caller's thread, so `timeoutMs` cannot interrupt it (the engine is linear in the message).
   */
  redact(message) {
    if (!this.engine) throw new BridgeError("the addon engine is stopped");
    const enc = this.encoder.encode(message);
    let rep;
    try {
      rep = this.engine.patchEdits(enc.buf.subarray(enc.start, enc.end), enc.head.skeleton, enc.head.strings);
    } catch (err) {
      throw new BridgeError(`moltvault.node: ${err?.message ?? err}`);
    } finally {
      this.encoder.shrink();
    }
    if (rep === null || rep === undefined) return undefined;
    let value;
    let header;
    try {
      header = JSON.parse(rep.head);
      // Entry i's new text is rep.recipes[rep.index[i]] applied to the string it replaces
      // (codec.js `splice`); entries with the same string and result share a recipe.
      if (!Array.isArray(header.patch) || !Array.isArray(rep.index) || header.patch.length !== rep.index.length) {
        throw new TypeError("the patch and its recipes differ in length");
      }
      value = applyPatch(
        message,
        header.patch.map((e, i) => {
          const recipe = rep.recipes[rep.index[i]];
          if (!Array.isArray(recipe)) throw new TypeError("a patch entry names no recipe");
          return [e?.[0], (old) => splice(old, recipe, rep.texts)];
        }),
      );
    } catch (err) {
      throw new BridgeError(`the addon sent a patch the plugin cannot apply (${err?.message ?? err})`);
    }
    return { value, findings: header.findings ?? [] };
  }
}

/** Starts the stdio engine with the best transport available (fifo, else worker). */
export function startEngine(opts) {
  if (opts.transport !== "worker" && process.platform !== "win32") {
    const e = new FifoEngine(opts);
    try {
      e.start();
      return e;
    } catch (err) {
      e.stop();
      if (err instanceof BridgeError || opts.transport === "fifo") throw err;
      // mkfifo missing or refused: fall back to the worker transport.
    }
  }
  const w = new SyncEngine(opts);
  w.start();
  return w;
}

/** A long-lived `moltvault serve --stdio` child on two named pipes, called synchronously. */
export class FifoEngine {
  constructor(opts) {
    this.binary = opts.binary;
    this.args = opts.args;
    this.startTimeoutMs = opts.startTimeoutMs ?? 15000;
    this.client = opts.client;
    this.transport = "fifo";
    this.dir = null;
    this.child = null;
    this.dead = null;
    this.nextId = 1;
    this.info = null;
    this.buf = Buffer.allocUnsafe(1 << 16);
    this.encoder = new Encoder();
  }

  start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "moltvault-plugin-"));
    const req = path.join(this.dir, "req");
    const resp = path.join(this.dir, "resp");
    execFileSync("mkfifo", ["-m", "600", req, resp], { stdio: "ignore" });
    // O_RDWR opens of a FIFO never block; the child inherits them as stdin/stdout.
    const reqRW = fs.openSync(req, fs.constants.O_RDWR);
    const respRW = fs.openSync(resp, fs.constants.O_RDWR);
    const errFd = fs.openSync(path.join(this.dir, "stderr"), "w", 0o600);
    try {
      this.child = spawn(this.binary, this.args, { stdio: [reqRW, respRW, errFd], env: engineEnv() });
      this.child.on("error", (err) => {
        this.dead = `cannot start ${this.binary}: ${err?.message ?? err}`;
      });
      this.child.unref();
      if (!this.child.pid) throw new BridgeError(`cannot start ${this.binary}`);
      // Keep only one end each, so a dead child means EOF on read and EPIPE on write.
      this.w = fs.openSync(req, fs.constants.O_WRONLY);
      this.r = fs.openSync(resp, fs.constants.O_RDONLY);
    } finally {
      fs.closeSync(reqRW);
      fs.closeSync(respRW);
      fs.closeSync(errFd);
    }
    // The watchdog: a deadline slot the hook sets around each call; past it, the child dies.
    this.deadline = new Float64Array(new SharedArrayBuffer(8));
    this.watchdog = new Worker(
      `const { workerData: { deadline, pid } } = require("node:worker_threads");
       setInterval(() => {
         const d = deadline[0];
         if (d > 0 && Date.now() > d) { deadline[0] = -1; try { process.kill(pid, "SIGKILL"); } catch {} }
       }, 25);`,
      { eval: true, workerData: { deadline: this.deadline, pid: this.child.pid }, stdout: false, stderr: false },
    );
    this.watchdog.unref();
    // Remove the pipes' directory when the gateway exits.
    this.onExit = () => this.stop();
    process.once("exit", this.onExit);
    const hello = this.call({ op: "hello", protocol: PROTOCOL, client: this.client }, this.startTimeoutMs);
    if (hello.protocol !== PROTOCOL) {
      throw new BridgeError(`moltvault serve speaks protocol ${hello.protocol}, the plugin ${PROTOCOL}: install matching versions`);
    }
    this.info = hello;
    return hello;
  }

  stop() {
    if (this.onExit) process.removeListener("exit", this.onExit);
    this.onExit = null;
    for (const fd of [this.w, this.r]) {
      if (fd !== undefined) {
        try {
          fs.closeSync(fd);
        } catch {}
      }
    }
    this.w = this.r = undefined;
    // Only a child that really started: kill() on a failed spawn signals our own process group.
    if (this.child?.pid && this.child.exitCode === null) {
      try {
        process.kill(this.child.pid, "SIGTERM");
      } catch {}
    }
    this.watchdog?.terminate();
    this.watchdog = null;
    if (this.dir) {
      // Unlink by name: a recursive rm may open the FIFOs, which blocks without a writer.
      for (const f of ["req", "resp", "stderr"]) {
        try {
          fs.unlinkSync(path.join(this.dir, f));
        } catch {}
      }
      try {
        fs.rmdirSync(this.dir);
      } catch {}
    }
    this.dir = null;
    this.child = null;
  }

  get alive() {
    return this.child !== null && this.dead === null;
  }

  /** Sends a header-only request (hello, ping) and returns the reply header. */
  call(req, timeoutMs) {
    return this.exchange(req, null, timeoutMs).header;
  }

  /** Redacts one message: `undefined` when it is clean, else `{value, findings}`. */
  redact(message, timeoutMs) {
    return redactWith(this, message, timeoutMs);
  }

  /**
   * One request/reply: the header `req` (an `id` is added) and an optional payload
   * `{buf, start, end}` with HEADROOM free bytes before `start`; returns the reply header and
   * its payload as `buf[off, off + header.len)`.
   */
  exchange(req, body, timeoutMs) {
    if (!this.child || this.w === undefined) throw new BridgeError("moltvault serve is not running");
    if (this.dead) throw new BridgeError(this.dead);
    const id = this.nextId++;
    this.deadline[0] = Date.now() + timeoutMs;
    let reply;
    try {
      writeFrame(this.w, id, req, body);
      reply = this.readFrame();
    } catch (err) {
      const timedOut = this.deadline[0] === -1;
      this.dead = timedOut
        ? `moltvault serve did not answer within ${timeoutMs} ms`
        : `moltvault serve is gone (${err?.code ?? err?.message ?? err})`;
      this.dead = this.withStderr(this.dead);
      this.stop();
      throw new BridgeError(this.dead);
    } finally {
      if (this.deadline[0] !== -1) this.deadline[0] = 0;
    }
    checkReply(reply.header, id);
    return reply;
  }

  // Reads one reply frame: the header line, then exactly `len` payload bytes into the same
  // buffer, grown once to the frame's size (no chunk list, no concatenation).
  readFrame() {
    let buf = this.buf;
    let end = 0;
    let nl = -1;
    while (nl === -1) {
      if (end === buf.length) buf = this.buf = grow(buf, end, buf.length * 2);
      const n = fs.readSync(this.r, buf, end, Math.min(buf.length - end, READ_CHUNK), null);
      if (n === 0) throw new Error("EOF");
      const at = buf.subarray(end, end + n).indexOf(10);
      if (at !== -1) nl = end + at;
      end += n;
    }
    const header = parseHeader(buf.toString("utf8", 0, nl));
    const need = nl + 1 + payloadLen(header);
    if (end > need) throw new BridgeError("moltvault serve sent more than one reply");
    if (need > buf.length) buf = this.buf = grow(buf, end, need);
    while (end < need) {
      const n = fs.readSync(this.r, buf, end, need - end, null);
      if (n === 0) throw new Error("EOF");
      end += n;
    }
    if (buf.length > 1 << 24 && need < 1 << 16) this.buf = Buffer.allocUnsafe(1 << 16);
    return { header, buf, off: nl + 1 };
  }

  withStderr(msg) {
    try {
      const tail = fs.readFileSync(path.join(this.dir, "stderr"), "utf8").trim().split("\n").slice(-3).join(" | ");
      return tail ? `${msg}: ${tail}` : msg;
    } catch {
      return msg;
    }
  }
}

/** A long-lived `moltvault serve --stdio` child owned by a worker thread, called synchronously. */
export class SyncEngine {
  /**
   * @param {{binary: string, args: string[], startTimeoutMs?: number, client?: object}} opts
   */
  constructor(opts) {
    this.binary = opts.binary;
    this.args = opts.args;
    this.startTimeoutMs = opts.startTimeoutMs ?? 15000;
    this.worker = null;
    this.nextId = 1;
    this.dead = null;
    this.stderr = "";
    this.info = null;
    this.client = opts.client;
    this.transport = "worker";
    this.encoder = new Encoder();
  }

  /** Starts the worker and the child, and checks the protocol version with a hello. */
  start() {
    this.sab = new SharedArrayBuffer(4);
    this.signal = new Int32Array(this.sab);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.dead = null;
    this.worker = new Worker(new URL("./bridge-worker.js", import.meta.url), {
      workerData: { port: port2, sab: this.sab, binary: this.binary, args: this.args, env: engineEnv() },
      transferList: [port2],
      stdout: false,
      stderr: false,
    });
    // Neither the worker nor its port may keep the gateway (or a one-shot CLI run) alive.
    this.worker.unref();
    this.port.unref();
    this.worker.on("error", (err) => {
      this.dead = `bridge worker failed: ${err?.message ?? err}`;
    });
    const hello = this.call({ op: "hello", protocol: PROTOCOL, client: this.client }, this.startTimeoutMs);
    if (hello.protocol !== PROTOCOL) {
      this.stop();
      throw new BridgeError(`moltvault serve speaks protocol ${hello.protocol}, the plugin ${PROTOCOL}: install matching versions`);
    }
    this.info = hello;
    return hello;
  }

  /** Stops the child (stdin EOF) and the worker. */
  stop() {
    if (!this.worker) return;
    try {
      this.port.postMessage({ close: true });
    } catch {}
    const w = this.worker;
    this.worker = null;
    setTimeout(() => w.terminate(), 200).unref();
  }

  get alive() {
    return this.worker !== null && this.dead === null;
  }

  /** Sends a header-only request (hello, ping) and returns the reply header. */
  call(req, timeoutMs) {
    return this.exchange(req, null, timeoutMs).header;
  }

  /** Redacts one message: `undefined` when it is clean, else `{value, findings}`. */
  redact(message, timeoutMs) {
    return redactWith(this, message, timeoutMs);
  }

  /** One request/reply through the worker; same contract as FifoEngine#exchange. */
  exchange(req, body, timeoutMs) {
    if (!this.worker) throw new BridgeError("moltvault serve is not running");
    if (this.dead) throw new BridgeError(this.dead);
    const id = this.nextId++;
    const head = JSON.stringify({ id, ...req }) + "\n";
    let seen = Atomics.load(this.signal, 0);
    // The encoder reuses its buffer: copy the payload out, and hand the copy over (no clone).
    const payload = body ? new Uint8Array(body.buf.subarray(body.start, body.end)) : null;
    this.port.postMessage({ head, payload }, payload ? [payload.buffer] : []);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        const msg = m.message;
        if (msg.stderr !== undefined) {
          this.stderr = msg.stderr;
          continue;
        }
        if (msg.dead !== undefined) {
          this.dead = msg.dead;
          throw new BridgeError(this.describeDeath());
        }
        const header = parseHeader(msg.head);
        // A late reply to an earlier, timed-out request.
        if (typeof header.id === "number" && header.id < id) continue;
        checkReply(header, id);
        const payload = msg.payload ? Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength) : Buffer.alloc(0);
        if (payload.length !== payloadLen(header)) throw new BridgeError("moltvault serve sent a truncated reply");
        return { header, buf: payload, off: 0 };
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        // The child is stuck or too slow: replies are ordered, so the stream is unusable now.
        this.dead = `moltvault serve did not answer within ${timeoutMs} ms`;
        this.stop();
        throw new BridgeError(this.dead);
      }
      Atomics.wait(this.signal, 0, seen, left);
      seen = Atomics.load(this.signal, 0);
    }
  }

  describeDeath() {
    const tail = this.stderr.trim().split("\n").slice(-3).join(" | ");
    return tail ? `${this.dead}: ${tail}` : this.dead;
  }
}

/**
 * The engine's environment: the gateway's, plus glibc malloc settings that keep freed memory
 * for reuse. By default glibc maps every allocation over 128 KiB fresh and returns freed heap
 * tops to the kernel, so each megabyte-sized message paid ~2 ms of page faults in the engine
 * (measured, docs/plugin.md). Up to 16 MiB now comes from the heap, and up to 32 MiB of free
 * heap is kept. Other C libraries ignore these variables; values the user set win.
 */
export function engineEnv(env = process.env) {
  return { MALLOC_MMAP_THRESHOLD_: String(16 << 20), MALLOC_TRIM_THRESHOLD_: String(32 << 20), ...env };
}

// Encodes, exchanges and applies the patch: shared by both transports.
function redactWith(engine, message, timeoutMs) {
  const enc = engine.encoder.encode(message);
  const { header, buf, off } = engine.exchange(enc.head, enc, timeoutMs);
  engine.encoder.shrink();
  if (header.changed !== true) return undefined;
  let value;
  try {
    value = applyPatch(message, decodePatch(header.patch, buf, off, payloadLen(header)));
  } catch (err) {
    throw new BridgeError(`moltvault serve sent a patch the plugin cannot apply (${err?.message ?? err})`);
  }
  return { value, findings: header.findings ?? [] };
}

// Writes one request frame with as few writes as possible: the header goes into the free room
// before the payload when it fits, so a request is a single write(2).
function writeFrame(fd, id, req, body) {
  const head = JSON.stringify({ id, ...req }) + "\n";
  if (!body) {
    writeAll(fd, Buffer.from(head));
    return;
  }
  const n = Buffer.byteLength(head);
  if (n <= body.start) {
    body.buf.write(head, body.start - n);
    writeAll(fd, body.buf.subarray(body.start - n, body.end));
  } else {
    writeAll(fd, Buffer.from(head));
    writeAll(fd, body.buf.subarray(body.start, body.end));
  }
}

function writeAll(fd, buf) {
  let at = 0;
  while (at < buf.length) at += fs.writeSync(fd, buf, at, buf.length - at);
}

function grow(buf, used, size) {
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, used);
  return next;
}

function parseHeader(line) {
  try {
    const h = JSON.parse(line);
    if (h !== null && typeof h === "object") return h;
  } catch {}
  throw new BridgeError("moltvault serve sent a header that is not a JSON object");
}

function payloadLen(header) {
  const n = header.len ?? 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new BridgeError("moltvault serve sent a bad payload length");
  return n;
}

function checkReply(header, id) {
  if (header.id !== id) throw new BridgeError(`moltvault serve answered request ${header.id}, expected ${id}`);
  if (!header.ok) throw new BridgeError(`moltvault serve: ${header.error ?? "unknown error"}`);
}
