// Worker side of the synchronous bridge: owns the `moltvault serve --stdio` child process.
//
// The gateway's persistence hooks are synchronous, so the main thread cannot await a pipe. It
// posts one request line on a MessagePort and blocks in Atomics.wait; this worker (its own event
// loop) writes the line to the child's stdin, reads the child's reply line from stdout, posts it
// back on the port and bumps the shared counter, which wakes the main thread. The main thread then
// takes the reply with receiveMessageOnPort.
import { spawn } from "node:child_process";
import { workerData } from "node:worker_threads";

const { port, sab, binary, args } = workerData;
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
  child = spawn(binary, args, { stdio: ["pipe", "pipe", "pipe"], env: process.env });
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

  // Replies are single JSON lines; one chunk may hold part of a line or several lines.
  let buf = [];
  child.stdout.on("data", (chunk) => {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      buf.push(chunk.subarray(start, nl));
      const line = buf.length === 1 ? buf[0].toString("utf8") : Buffer.concat(buf).toString("utf8");
      buf = [];
      pending.shift();
      port.postMessage({ line });
      wake();
      start = nl + 1;
    }
    if (start < chunk.length) buf.push(chunk.subarray(start));
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
    child.stdin.write(msg.line);
  });
} else {
  port.on("message", () => {
    port.postMessage({ dead });
    wake();
  });
}
