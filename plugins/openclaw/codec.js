// Encoding of a message for `moltvault serve` protocol 2 (`op: "patch"`), and application of the
// patch it answers with. See docs/plugin.md, "Protocol".
//
// Why not JSON.stringify the message: V8 escapes strings at about 400 MB/s, so a 1 MB tool
// result (its text twice: `content` and `details.aggregated`) costs 5 ms to stringify, more than
// the engine. Long strings are instead written to a reused Buffer as raw UTF-8 (a copy for
// one-byte strings) and referenced from a small JSON skeleton; a string that occurs twice is
// sent once. The reply is a patch: the JSON pointer and new text of every string the engine
// changed, so a clean message (the common case) comes back as a 40-byte header. The in-process
// addon gives each new text as a recipe instead (`splice`): slices of the string the plugin
// already holds around the placeholders, so a megabyte result is not created twice.

/** The key of the skeleton's string references: `{"$mv": <index into the strings>}`. */
export const REF_KEY = "$mv";
/** Strings of at least this many UTF-16 units travel as raw bytes; shorter ones stay inline. */
export const BIG = 256;
// Deeper than this is a cycle or an abuse; JSON.stringify would overflow too.
const MAX_DEPTH = 512;
// Room before the payload for the header line, so a request is one write.
const HEADROOM = 1024;

/** A reusable request encoder (one per engine connection). */
export class Encoder {
  constructor() {
    this.buf = Buffer.allocUnsafe(1 << 16);
  }

  /**
   * Encodes `message` as one protocol-2 `patch` request.
   * @returns {{head: object, buf: Buffer, start: number, end: number}} the header (without
   *   `id`), and the payload as `buf[start..end)`; `start` leaves HEADROOM bytes free before it.
   */
  encode(message) {
    const st = { bigs: [], refs: true, collide: false };
    let skeleton = conv(message, st, 0);
    if (st.collide) {
      // The message itself has an object keyed "$mv": references would be ambiguous, so send
      // every string inline (rare; correct, only slower).
      st.bigs = [];
      st.refs = false;
      skeleton = conv(message, st, 0);
    }
    const sk = JSON.stringify(skeleton);
    if (sk === undefined) throw new TypeError("the message is not JSON");
    let at = HEADROOM;
    this.reserve(at + sk.length * 3);
    const skLen = this.buf.write(sk, at);
    at += skLen;
    const lens = [];
    for (const s of st.bigs) {
      this.reserve(at + s.length * 3);
      const n = this.buf.write(s, at);
      lens.push(n);
      at += n;
    }
    return { head: { op: "patch", len: at - HEADROOM, skeleton: skLen, strings: lens }, buf: this.buf, start: HEADROOM, end: at };
  }

  reserve(n) {
    if (n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.buf.length);
    this.buf = next;
  }

  /** Drops an oversized buffer after a huge message, so one 50 MB result is not kept forever. */
  shrink() {
    if (this.buf.length > 1 << 24) this.buf = Buffer.allocUnsafe(1 << 16);
  }
}

// Returns `v` itself when nothing under it needs changing, else a copy in which every long
// string is a reference `{"$mv": i}` (into st.bigs) and every string with an unpaired surrogate
// is made well-formed (the engine speaks UTF-8). Mirrors JSON.stringify: own enumerable keys,
// objects with toJSON (e.g. Date) passed through for stringify to convert.
function conv(v, st, depth) {
  if (typeof v === "string") {
    if (st.refs && v.length >= BIG) {
      let i = 0;
      // Dedupe against the few long strings seen so far: `===` is a pointer compare for the
      // same string object, a length compare for most others.
      for (; i < st.bigs.length && i < 16; i++) if (st.bigs[i] === v) break;
      if (i === st.bigs.length || i === 16) {
        i = st.bigs.length;
        // No isWellFormed here: Buffer#write already turns unpaired surrogates into U+FFFD.
        st.bigs.push(v);
      }
      return { [REF_KEY]: i };
    }
    return v.isWellFormed() ? v : v.toWellFormed();
  }
  if (v === null || typeof v !== "object") return v;
  if (depth > MAX_DEPTH) throw new RangeError("the message is nested too deeply");
  if (typeof v.toJSON === "function") return v;
  if (Array.isArray(v)) {
    let out = v;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      const y = conv(x, st, depth + 1);
      if (y !== x) {
        if (out === v) out = v.slice();
        out[i] = y;
      }
    }
    return out;
  }
  let out = v;
  for (const k of Object.keys(v)) {
    if (k === REF_KEY) st.collide = true;
    const x = v[k];
    const y = conv(x, st, depth + 1);
    if (y !== x) {
      if (out === v) out = { ...v };
      out[k] = y;
    }
  }
  return out;
}

/**
 * Reads the patch of a `changed` reply: `[pointer, byteLength]` pairs whose new texts follow the
 * header back to back in `buf` from `off`.
 * @returns {Array<[string, string]>}
 */
export function decodePatch(patch, buf, off, len) {
  if (!Array.isArray(patch)) throw new TypeError("the reply has no patch");
  const out = [];
  let at = off;
  for (const e of patch) {
    if (!Array.isArray(e) || typeof e[0] !== "string" || !Number.isInteger(e[1]) || e[1] < 0) throw new TypeError("a patch entry is malformed");
    if (at + e[1] > off + len) throw new TypeError("the patch is longer than its payload");
    out.push([e[0], buf.toString("utf8", at, at + e[1])]);
    at += e[1];
  }
  if (at !== off + len) throw new TypeError("the patch is shorter than its payload");
  return out;
}

/** A splice recipe's "no text" index (the addon's `NO_TEXT`). */
export const NO_TEXT = 0xffffffff;

/**
 * Builds a new text from `old` and a recipe of the addon (crates/moltvault-node, `PatchReply`):
 * `[oldLength, keepStart, keepEnd, text, …]`, triples that keep `old.slice(keepStart, keepEnd)`
 * (UTF-16 code units) and append `texts[text]`. The slices and `+` make V8 views of `old`, so a
 * megabyte string with one secret costs two slices and a placeholder, not a new megabyte string.
 * An unpaired surrogate in `old` is kept as the U+FFFD it was sent as, as in the stdio bridge's
 * whole new text. Throws on a recipe that does not fit `old` (the caller withholds).
 */
export function splice(old, recipe, texts) {
  if (!Array.isArray(recipe) || recipe.length % 3 !== 1 || recipe[0] !== old.length) throw new TypeError("a splice does not fit its string");
  const base = old.isWellFormed() ? old : old.toWellFormed();
  let out = "";
  let prev = 0;
  for (let k = 1; k < recipe.length; k += 3) {
    const a = recipe[k];
    const b = recipe[k + 1];
    const t = recipe[k + 2];
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < prev || b < a || b > base.length) throw new TypeError("a splice is malformed");
    if (b > a) out += base.slice(a, b);
    if (t !== NO_TEXT) {
      const s = texts[t];
      if (typeof s !== "string") throw new TypeError("a splice names no text");
      out += s;
    }
    prev = b;
  }
  return out;
}

/**
 * Returns a copy of `root` with the strings at the given RFC 6901 pointers replaced: by the
 * entry's text, or by what the entry's function returns for the string it replaces. Only the
 * objects and arrays on the way to a replaced string are copied (shallowly); `root` itself is
 * never modified (the gateway may still use it, e.g. for what the model sees).
 */
export function applyPatch(root, entries) {
  const copies = new Map();
  const copy = (o) => {
    let c = copies.get(o);
    if (c === undefined) {
      c = Array.isArray(o) ? o.slice() : { ...o };
      copies.set(o, c);
      copies.set(c, c);
    }
    return c;
  };
  let out = root;
  for (const [ptr, text] of entries) {
    if (typeof ptr !== "string") throw new TypeError("a patch pointer is malformed");
    if (ptr === "") {
      if (typeof out !== "string") throw new TypeError("a patch pointer does not name a string");
      out = typeof text === "function" ? text(out) : text;
      continue;
    }
    if (ptr[0] !== "/") throw new TypeError("a patch pointer is malformed");
    const segs = ptr.slice(1).split("/");
    if (out === null || typeof out !== "object") throw new TypeError("a patch pointer does not match the message");
    out = copy(out);
    let parent = out;
    for (let i = 0; i < segs.length; i++) {
      const k = member(parent, segs[i]);
      const child = parent[k];
      if (i === segs.length - 1) {
        if (typeof child !== "string") throw new TypeError("a patch pointer does not name a string");
        parent[k] = typeof text === "function" ? text(child) : text;
      } else {
        if (child === null || typeof child !== "object" || typeof child.toJSON === "function") {
          throw new TypeError("a patch pointer does not match the message");
        }
        parent = parent[k] = copy(child);
      }
    }
  }
  return out;
}

function member(parent, seg) {
  const k = seg.indexOf("~") === -1 ? seg : seg.replace(/~1/g, "/").replace(/~0/g, "~");
  if (Array.isArray(parent)) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length || String(i) !== k) throw new TypeError("a patch pointer does not match the message");
    return i;
  }
  if (!Object.hasOwn(parent, k)) throw new TypeError("a patch pointer does not match the message");
  return k;
}
