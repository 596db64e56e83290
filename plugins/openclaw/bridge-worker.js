// Worker side of the synchronous bridge: owns the `moltvault serve --stdio` child process.
//
// The gateway's persistence hooks are synchronous, so the main thread cannot await a pipe. It
// posts one request frame (header line and payload) on a MessagePort and blocks in Atomics.wait;
// this worker (its own event loop) writes the frame to the child's stdin, collects the reply
// frame from stdout (a header line, then `len` payload bytes: bridge.js), posts it back on the
// port and bumps the shared counter, which wakes the main thread. The main thread then takes the
// reply with receiveMessageOnPort.
import { spawn } from "node:child_process";
import { workerData } from "node:worker_threads";

const { port, sab, binary, args, env } = workerData;
const signal = new Int32Array(sab);

function wake() {
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

// A reply the child never gave (it died or could not start): every pending request gets it.
let dead = null;
const pending = [];

function fail(reason) {
  if (dead) return;
  dead = reason;
  port.postMessage({ dead: reason });
  wake();
}

let child;
try {
  child = spawn(binary, args, { stdio: ["pipe", "pipe", "pipe"], env });
} catch (err) {
  fail(`cannot start ${binary}: ${err?.message ?? err}`);
}

if (child) {
  child.on("error", (err) => fail(`cannot start ${binary}: ${err?.message ?? err}`));
  child.on("exit", (code, sig) => fail(`moltvault serve exited (${sig ?? `code ${code}`})`));
  child.stdin.on("error", (err) => fail(`moltvault serve stdin: ${err?.message ?? err}`));
  // The engine's stderr carries error reports only (never secrets); keep the last lines for the log.
  let errTail = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    errTail = (errTail + d).slice(-2000);
    port.postMessage({ stderr: errTail });
  });

  // A reply is a header line, then `len` bytes; one chunk may hold parts of several replies.
  let head = [];
  let header = null;
  let payload = null;
  let got = 0;
  const deliver = () => {
    pending.shift();
    // The payload has its own ArrayBuffer (allocUnsafeSlow): hand it over instead of cloning.
    port.postMessage({ head: header, payload }, payload ? [payload.buffer] : []);
    wake();
    header = payload = null;
    got = 0;
  };
  child.stdout.on("data", (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (header === null) {
        const nl = chunk.indexOf(10, at);
        if (nl === -1) {
          head.push(chunk.subarray(at));
          return;
        }
        head.push(chunk.subarray(at, nl));
        header = Buffer.concat(head).toString("utf8");
        head = [];
        at = nl + 1;
        let len = 0;
        try {
          len = JSON.parse(header).len ?? 0;
        } catch {}
        if (!Number.isSafeInteger(len) || len <= 0) {
          deliver();
          continue;
        }
        payload = Buffer.allocUnsafeSlow(len);
      } else {
        const n = Math.min(payload.length - got, chunk.length - at);
        chunk.copy(payload, got, at, at + n);
        got += n;
        at += n;
        if (got === payload.length) deliver();
      }
    }
  });

  port.on("message", (msg) => {
    if (msg && msg.close) {
      child.stdin.end();
      return;
    }
    if (dead) {
      port.postMessage({ dead });
      wake();
      return;
    }
    pending.push(1);
    child.stdin.write(msg.head);
    if (msg.payload) child.stdin.write(msg.payload);
  });
} else {
  port.on("message", () => {
    port.postMessage({ dead });
    wake();
  });
}
