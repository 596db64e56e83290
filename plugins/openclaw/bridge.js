// Main-thread side of the synchronous bridge to `moltvault serve --stdio`.
//
// Protocol (one JSON object per line each way, replies in request order):
//   -> {"id":1,"op":"hello"}                    <- {"id":1,"ok":true,"protocol":1,"version":"…",…}
//   -> {"id":2,"op":"redact","raw":true}\n<message JSON>
//                                               <- {"id":2,"ok":true,"changed":false}
//                                                  {"id":2,"ok":true,"changed":true,"value":<redacted>,"findings":[…]}
//   -> {"id":3,"op":"sweep","sessionKey":"…","agentId":"…"}  <- {"id":3,"ok":true,…}
//   any failure                                 <- {"id":n,"ok":false,"error":"…"}
// See docs/plugin.md.
//
// Two transports, chosen by measurement (docs/plugin.md, benches/plugin/hook-bench.mjs):
//   "fifo"   (default on Linux/macOS): the child's stdin/stdout are two named pipes in a private
//            0700 temp dir; the hook writes and reads them with blocking fs.writeSync/readSync on
//            the gateway's own thread: no thread hop, ~5x less overhead. A watchdog thread kills a
//            child that overruns its timeout, which turns the blocked read into EOF.
//   "worker" (fallback when mkfifo is unavailable): a worker thread owns an ordinary piped child;
//            the hook posts the request and sleeps in Atomics.wait until the worker answers.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";

export const PROTOCOL = 1;

/** An error of the bridge itself (engine down, timeout, protocol); never carries message text. */
export class BridgeError extends Error {}

/** Starts the engine with the best transport available (fifo, else worker). */
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
      this.child = spawn(this.binary, this.args, { stdio: [reqRW, respRW, errFd], env: process.env });
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
    const hello = this.call({ op: "hello", client: this.client }, this.startTimeoutMs);
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

  call(req, timeoutMs, valueJson) {
    if (!this.child || this.w === undefined) throw new BridgeError("moltvault serve is not running");
    if (this.dead) throw new BridgeError(this.dead);
    const id = this.nextId++;
    const line = frame(id, req, valueJson);
    this.deadline[0] = Date.now() + timeoutMs;
    let text;
    try {
      fs.writeSync(this.w, line);
      text = this.readLine();
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
    const rep = parseReply(text, id);
    if (rep === null) throw new BridgeError("moltvault serve answered out of order");
    if (!rep.ok) throw new BridgeError(`moltvault serve: ${rep.error ?? "unknown error"}`);
    return rep;
  }

  readLine() {
    const chunks = [];
    for (;;) {
      const n = fs.readSync(this.r, this.buf, 0, this.buf.length, null);
      if (n === 0) throw new Error("EOF");
      if (this.buf[n - 1] === 10) {
        if (chunks.length === 0) return this.buf.toString("utf8", 0, n - 1);
        chunks.push(Buffer.from(this.buf.subarray(0, n - 1)));
        return Buffer.concat(chunks).toString("utf8");
      }
      chunks.push(Buffer.from(this.buf.subarray(0, n)));
    }
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
  }

  /** Starts the worker and the child, and checks the protocol version with a hello. */
  start() {
    this.sab = new SharedArrayBuffer(4);
    this.signal = new Int32Array(this.sab);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.dead = null;
    this.worker = new Worker(new URL("./bridge-worker.js", import.meta.url), {
      workerData: { port: port2, sab: this.sab, binary: this.binary, args: this.args },
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
    const hello = this.call({ op: "hello", client: this.client }, this.startTimeoutMs);
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

  /**
   * Sends one request and blocks until its reply (or the timeout).
   * @param {object} req without id
   * @param {number} timeoutMs
   * @param {string} [valueJson] a pre-serialised `value` member, spliced in to avoid a second stringify
   */
  call(req, timeoutMs, valueJson) {
    if (!this.worker) throw new BridgeError("moltvault serve is not running");
    if (this.dead) throw new BridgeError(this.dead);
    const id = this.nextId++;
    const line = frame(id, req, valueJson);
    let seen = Atomics.load(this.signal, 0);
    this.port.postMessage({ line });
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
        const rep = parseReply(msg.line, id);
        if (rep === null) continue; // a late reply to an earlier, timed-out request
        if (!rep.ok) throw new BridgeError(`moltvault serve: ${rep.error ?? "unknown error"}`);
        return rep;
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

// One request: a header line, and for `redact` the value on a line of its own (`raw: true`), so
// the engine's byte gate runs on it before anything is parsed.
function frame(id, req, valueJson) {
  if (valueJson === undefined) return JSON.stringify({ id, ...req }) + "\n";
  return JSON.stringify({ id, ...req, raw: true }) + "\n" + valueJson + "\n";
}

// Replies for `redact` whose value did not change are tiny; big values are parsed only when
// something was redacted.
function parseReply(line, id) {
  let rep;
  try {
    rep = JSON.parse(line);
  } catch {
    throw new BridgeError("moltvault serve sent a line that is not JSON");
  }
  if (rep.id !== id) {
    if (typeof rep.id === "number" && rep.id < id) return null;
    throw new BridgeError(`moltvault serve answered request ${rep.id}, expected ${id}`);
  }
  return rep;
}
