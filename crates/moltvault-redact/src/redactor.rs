//! Stage B and the streaming JSONL redactor.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;

use crate::gate::{Candidates, Gate};
use crate::json::{self, Seg};
use crate::rules::Rule;
use crate::text::{self, Span};
use crate::{Error, Finding, FindingSink, Mode, RedactorOptions, Result, RuleSet};

/// The read block of the JSONL redactor.
const BLOCK: usize = 1 << 20;

/// Last keys whose string values are never rewritten: they hold the transcript's structure.
const STRUCTURAL: &[&str] = &[
    "id",
    "parentId",
    "toolCallId",
    "timestamp",
    "ts",
    "signature",
    "thinkingSignature",
    "textSignature",
    "type",
    "role",
    "customType",
    "stopReason",
    "api",
    "provider",
    "model",
    "modelId",
    "modelApi",
    "sessionId",
    "traceId",
    "runId",
    "toolName",
    "responseId",
    "traceSchema",
    "sessionKey",
];

/// Keys under which everything is tool data (`tools` mode).
const TOOL_KEYS: &[&str] = &[
    "arguments",
    "details",
    "partialResult",
    "partialArgs",
    "toolResult",
    "tool_calls",
    "input",
    "output",
];

/// Counters of one redaction or scan run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Records (lines) read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records the gate sent to stage B.
    pub gated: u64,
    /// Records that were not valid JSON and were redacted as raw text.
    pub raw_fallback: u64,
    /// Records rewritten.
    pub changed: u64,
    /// Secrets found.
    pub findings: u64,
}

/// The result of redacting one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The redacted text.
    pub text: String,
    /// What was found (line 1, empty pointer).
    pub findings: Vec<Finding>,
}

/// The redaction engine: cheap to share between threads (`Sync`).
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    allow_fingerprints: HashSet<String>,
    allow_regexes: Vec<regex::bytes::Regex>,
    gate: Gate,
    mac: Hmac<Sha256>,
    mode: Mode,
    literal_ids: Vec<String>,
    /// Per literal automaton pattern: the literal it belongs to.
    literal_of_pattern: Vec<usize>,
    literal_fps: Vec<[u8; 4]>,
}

fn sanitize_id(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.chars().take(64).collect();
    if s.is_empty() { "literal".into() } else { s }
}

fn url_encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 3);
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The bytes of `v` as they appear inside a JSON string.
fn json_escape(v: &[u8]) -> Vec<u8> {
    let s = serde_json::to_string(&String::from_utf8_lossy(v)).unwrap_or_default();
    let b = s.as_bytes();
    b[1.min(b.len())..b.len().saturating_sub(1).max(1.min(b.len()))].to_vec()
}

impl Redactor {
    /// Builds a redactor over a rule set.
    ///
    /// # Errors
    /// Fails with [`Error::Rule`] when a literal secret is shorter than 4 bytes (it would match
    /// ordinary text).
    pub fn new(rules: &RuleSet, opts: RedactorOptions) -> Result<Redactor> {
        // HMAC accepts keys of any length.
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(opts.key.bytes()).expect("hmac takes any key");
        let mut me = Redactor {
            rules: rules.rules.clone(),
            allow_fingerprints: rules.allow_fingerprints.clone(),
            allow_regexes: rules.allow_regexes.clone(),
            gate: Gate::new(&[], &[]),
            mac,
            mode: opts.mode,
            literal_ids: Vec::new(),
            literal_of_pattern: Vec::new(),
            literal_fps: Vec::new(),
        };
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for (i, lit) in opts.literals.iter().enumerate() {
            let v = lit.value.expose_secret().as_bytes();
            if v.len() < 4 {
                return Err(Error::Rule {
                    file: "gateway configuration".into(),
                    rule: lit.id.clone(),
                    line: 0,
                    message: "a literal secret must be at least 4 bytes long".into(),
                });
            }
            me.literal_ids.push(sanitize_id(&lit.id));
            me.literal_fps.push(me.fp4(v));
            let json1 = json_escape(v);
            let json2 = json_escape(&json1);
            for f in [v.to_vec(), json1, json2, url_encode(v)] {
                if !forms.contains(&f) {
                    forms.push(f);
                    me.literal_of_pattern.push(i);
                }
            }
        }
        me.gate = Gate::new(&me.rules, &forms);
        Ok(me)
    }

    /// The mode this redactor runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn fp4(&self, secret: &[u8]) -> [u8; 4] {
        let mut m = self.mac.clone();
        m.update(secret);
        let out = m.finalize().into_bytes();
        [out[0], out[1], out[2], out[3]]
    }

    /// The 8-hex-digit keyed fingerprint of a secret, as written in placeholders.
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        hex::encode(self.fp4(secret))
    }

    fn rule_id(&self, idx: usize) -> &str {
        if idx < self.rules.len() {
            &self.rules[idx].id
        } else {
            &self.literal_ids[idx - self.rules.len()]
        }
    }

    fn allowed(&self, fp: &[u8; 4], v: &[u8]) -> bool {
        (!self.allow_fingerprints.is_empty() && self.allow_fingerprints.contains(&hex::encode(fp)))
            || self.allow_regexes.iter().any(|r| r.is_match(v))
    }

    /// Stage B on one piece of (decoded) text: every candidate regex rule and the literals.
    fn find(&self, hay: &[u8], cand: &Candidates, out: &mut Vec<Span>) {
        let ph = text::placeholder_ranges(hay);
        let overlaps = |s: usize, e: usize| ph.iter().any(|&(a, b)| s < b && a < e);
        // Literal secrets first: on equal spans the first pushed wins the label.
        if cand.literal
            && let Some(ac) = &self.gate.literals
        {
            for m in ac.find_iter(hay) {
                if overlaps(m.start(), m.end()) {
                    continue;
                }
                let lit = self.literal_of_pattern[m.pattern().as_usize()];
                out.push(Span {
                    start: m.start(),
                    end: m.end(),
                    rule: self.rules.len() + lit,
                    fp: self.literal_fps[lit],
                });
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.regex.is_none() || !cand.wants(i) {
                continue;
            }
            text::rule_spans(r, hay, |s, e| {
                if overlaps(s, e) {
                    return;
                }
                let fp = self.fp4(&hay[s..e]);
                if self.allowed(&fp, &hay[s..e]) {
                    return;
                }
                out.push(Span {
                    start: s,
                    end: e,
                    rule: i,
                    fp,
                });
            });
        }
    }

    /// Spans in a piece of text and in its escaped levels.
    fn text_spans(&self, text: &[u8], depth: u8, cand: &Candidates) -> Vec<Span> {
        let mut spans = Vec::new();
        text::spans_levels(text, depth, &|h, o| self.find(h, cand, o), &mut spans);
        text::merge(&mut spans);
        spans
    }

    /// Spans in the raw (escaped) content of a JSON string token.
    fn token_spans(&self, raw: &[u8], cand: &Candidates) -> Vec<Span> {
        if memchr::memchr(b'\\', raw).is_none() {
            return self.text_spans(raw, 1, cand);
        }
        let (v, starts) = text::unescape(raw);
        let mut spans = self.text_spans(&v, 1, cand);
        for s in &mut spans {
            s.start = starts[s.start];
            s.end = starts[s.end];
        }
        spans
    }

    /// Whether a credential-named key's string value is a secret; returns the span rule.
    fn key_rule(&self, key: &[u8], value: &[u8], cand: &Candidates) -> Option<(usize, [u8; 4])> {
        for (i, r) in self.rules.iter().enumerate() {
            let Some(kre) = &r.key else { continue };
            if !cand.wants(i) || !kre.is_match(key) {
                continue;
            }
            if text::key_value_ok(r, key, value) {
                let fp = self.fp4(value);
                if self.allowed(&fp, value) {
                    return None;
                }
                return Some((i, fp));
            }
        }
        None
    }

    fn placeholder(&self, span: &Span) -> String {
        format!(
            "{}{}:{}]",
            crate::PLACEHOLDER_PREFIX,
            self.rule_id(span.rule),
            hex::encode(span.fp)
        )
    }

    fn emit(&self, sink: &mut dyn FindingSink, span: &Span, line: u64, pointer: &str) {
        sink.finding(Finding {
            rule_id: self.rule_id(span.rule).to_string(),
            line,
            pointer: pointer.to_string(),
            fingerprint: hex::encode(span.fp),
        });
    }

    fn scope(&self, path: &[PathKey<'_>], in_tool: bool) -> bool {
        if let Some(PathKey::Key(k)) = path.last()
            && STRUCTURAL.iter().any(|s| s.as_bytes() == k.as_ref())
        {
            return false;
        }
        match self.mode {
            Mode::All => true,
            Mode::Tools => {
                in_tool
                    || path.iter().any(|p| match p {
                        PathKey::Key(k) => TOOL_KEYS.iter().any(|t| t.as_bytes() == k.as_ref()),
                        PathKey::Index(_) => false,
                    })
            }
        }
    }

    /// Redacts one record (without its newline); `None` when it is unchanged.
    fn record(
        &self,
        body: &[u8],
        line: u64,
        cand: &mut Candidates,
        sink: &mut dyn FindingSink,
        stats: &mut Stats,
    ) -> Option<Vec<u8>> {
        self.gate.check(&self.rules, body, cand);
        if !cand.any {
            return None;
        }
        stats.gated += 1;
        let mut edits: Vec<(Span, String)> = Vec::new();
        match json::strings(body) {
            Some(strs) => {
                let keys: Vec<Vec<PathKey<'_>>> = strs
                    .iter()
                    .map(|s| s.path.iter().map(|p| PathKey::from_seg(body, *p)).collect())
                    .collect();
                // Objects whose `role` marks a tool message (their content is tool output).
                let tool_objects: Vec<&[PathKey<'_>]> = strs
                    .iter()
                    .zip(&keys)
                    .filter(|(s, k)| {
                        matches!(k.last(), Some(PathKey::Key(r)) if r.as_ref() == b"role")
                            && matches!(&body[s.start..s.end], b"toolResult" | b"tool")
                    })
                    .map(|(_, k)| &k[..k.len() - 1])
                    .collect();
                for (s, path) in strs.iter().zip(&keys) {
                    let in_tool = tool_objects.iter().any(|p| path.starts_with(p));
                    if !self.scope(path, in_tool) {
                        continue;
                    }
                    // Keywords cannot hide behind JSON escapes (they hold no escapable byte;
                    // `\u00XX` and `\/` spread the gate to every string), so a string with
                    // no hit in its key or value cannot hold a local rule's match.
                    let lo = match s.path.last() {
                        Some(Seg::Key(ks, _)) => (*ks).min(s.start),
                        _ => s.start,
                    };
                    if !cand.hit_in(lo, s.end) {
                        continue;
                    }
                    let raw = &body[s.start..s.end];
                    let mut spans = self.token_spans(raw, cand);
                    if let Some(PathKey::Key(k)) = path.last() {
                        let value = if raw.contains(&b'\\') {
                            Cow::Owned(text::unescape(raw).0)
                        } else {
                            Cow::Borrowed(raw)
                        };
                        if let Some((rule, fp)) = self.key_rule(k, &value, cand) {
                            spans.push(Span {
                                start: 0,
                                end: raw.len(),
                                rule,
                                fp,
                            });
                            text::merge(&mut spans);
                        }
                    }
                    if spans.is_empty() {
                        continue;
                    }
                    let pointer = pointer(path);
                    for mut sp in spans {
                        self.emit(sink, &sp, line, &pointer);
                        let ph = self.placeholder(&sp);
                        sp.start += s.start;
                        sp.end += s.start;
                        edits.push((sp, ph));
                    }
                }
            }
            None => {
                stats.raw_fallback += 1;
                for sp in self.text_spans(body, 0, cand) {
                    self.emit(sink, &sp, line, "");
                    let ph = self.placeholder(&sp);
                    edits.push((sp, ph));
                }
            }
        }
        if edits.is_empty() {
            return None;
        }
        stats.findings += edits.len() as u64;
        edits.sort_by_key(|(s, _)| s.start);
        let mut out = Vec::with_capacity(body.len());
        let mut at = 0;
        for (s, ph) in &edits {
            out.extend_from_slice(&body[at..s.start]);
            out.extend_from_slice(ph.as_bytes());
            at = s.end;
        }
        out.extend_from_slice(&body[at..]);
        Some(out)
    }

    /// Redacts a JSONL stream record by record, copying unchanged records byte for byte.
    ///
    /// The output has as many lines as the input (a last line without `\n` stays without);
    /// invalid JSON records are redacted as raw text; invalid UTF-8 is kept as it is. Input is
    /// read in 1 MiB blocks and runs of unchanged records are written in one call; a record
    /// longer than the block grows it (a record is always held whole in memory).
    ///
    /// # Errors
    /// Fails with [`Error::Io`] when reading or writing fails.
    pub fn redact_jsonl<R: Read, W: Write>(
        &self,
        mut reader: R,
        mut writer: W,
        sink: &mut dyn FindingSink,
    ) -> Result<Stats> {
        let mut buf = vec![0u8; BLOCK];
        let mut filled = 0;
        // Bytes at the front of `buf` already known to hold no newline.
        let mut searched = 0;
        let mut stats = Stats::default();
        let mut cand = Candidates::default();
        loop {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = match reader.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            let eof = n == 0;
            filled += n;
            let mut start = 0;
            let mut copied = 0;
            while start < filled {
                let from = start + searched;
                let end = match memchr::memchr(b'\n', &buf[from..filled]) {
                    Some(i) => from + i,
                    None if eof => filled,
                    None => {
                        searched = filled - start;
                        break;
                    }
                };
                searched = 0;
                let has_nl = end < filled;
                let next = if has_nl { end + 1 } else { end };
                stats.lines += 1;
                stats.bytes += (next - start) as u64;
                if let Some(new) =
                    self.record(&buf[start..end], stats.lines, &mut cand, sink, &mut stats)
                {
                    stats.changed += 1;
                    writer.write_all(&buf[copied..start]).map_err(Error::Io)?;
                    writer.write_all(&new).map_err(Error::Io)?;
                    if has_nl {
                        writer.write_all(b"\n").map_err(Error::Io)?;
                    }
                    copied = next;
                }
                start = next;
            }
            writer.write_all(&buf[copied..start]).map_err(Error::Io)?;
            if eof {
                break;
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
        writer.flush().map_err(Error::Io)?;
        Ok(stats)
    }

    /// Scans a JSONL stream and reports findings without writing anything.
    ///
    /// # Errors
    /// Fails with [`Error::Io`] when reading fails.
    pub fn scan_jsonl<R: Read>(&self, reader: R, sink: &mut dyn FindingSink) -> Result<Stats> {
        self.redact_jsonl(reader, std::io::sink(), sink)
    }

    /// Redacts one transcript entry (or any JSON value) in place; returns the number of secrets.
    pub fn redact_value(&self, value: &mut Value, sink: &mut dyn FindingSink) -> usize {
        let mut path = Vec::new();
        let mut cand = Candidates::default();
        self.walk_value(value, &mut path, false, &mut cand, sink)
    }

    fn walk_value<'v>(
        &self,
        v: &'v mut Value,
        path: &mut Vec<PathKey<'v>>,
        in_tool: bool,
        cand: &mut Candidates,
        sink: &mut dyn FindingSink,
    ) -> usize {
        match v {
            Value::Object(map) => {
                let in_tool = in_tool
                    || matches!(map.get("role"), Some(Value::String(r)) if r == "toolResult" || r == "tool");
                let mut n = 0;
                for (k, x) in map.iter_mut() {
                    path.push(PathKey::Key(Cow::Borrowed(k.as_bytes())));
                    n += self.walk_value(x, path, in_tool, cand, sink);
                    path.pop();
                }
                n
            }
            Value::Array(a) => {
                let mut n = 0;
                for (i, x) in a.iter_mut().enumerate() {
                    path.push(PathKey::Index(i));
                    n += self.walk_value(x, path, in_tool, cand, sink);
                    path.pop();
                }
                n
            }
            Value::String(s) => {
                if !self.scope(path, in_tool) {
                    return 0;
                }
                let key: Option<&[u8]> = match path.last() {
                    Some(PathKey::Key(k)) => Some(k.as_ref()),
                    _ => None,
                };
                // Gate the value where it is, then `"key":"` with the value's first bytes
                // (enough for a keyword in the key and the assignment check after it).
                self.gate.check(&self.rules, s.as_bytes(), cand);
                if let Some(k) = key {
                    let head = &s.as_bytes()[..s.len().min(KEY_PROBE_VALUE)];
                    let mut probe = Vec::with_capacity(k.len() + head.len() + 4);
                    probe.push(b'"');
                    probe.extend_from_slice(k);
                    probe.extend_from_slice(b"\":\"");
                    probe.extend_from_slice(head);
                    self.gate.check_more(&self.rules, &probe, cand);
                }
                if !cand.any {
                    return 0;
                }
                let key_hit = key.and_then(|k| self.key_rule(k, s.as_bytes(), cand));
                let mut spans = self.text_spans(s.as_bytes(), 1, cand);
                if let Some((rule, fp)) = key_hit {
                    spans.push(Span {
                        start: 0,
                        end: s.len(),
                        rule,
                        fp,
                    });
                    text::merge(&mut spans);
                }
                if spans.is_empty() {
                    return 0;
                }
                let ptr = pointer(path);
                for sp in &spans {
                    self.emit(sink, sp, 1, &ptr);
                }
                *s = self.splice(s, &spans);
                spans.len()
            }
            _ => 0,
        }
    }

    /// `text` with each span replaced by its placeholder (spans sorted, disjoint).
    fn splice(&self, text: &str, spans: &[Span]) -> String {
        let mut out = String::with_capacity(text.len() + 32 * spans.len());
        let mut at = 0;
        for sp in spans {
            push_piece(&mut out, text, at, sp.start);
            out.push_str(&self.placeholder(sp));
            at = sp.end;
        }
        push_piece(&mut out, text, at, text.len());
        out
    }

    /// Whether a record (a JSON document or a plain text, as raw bytes) passes the raw-byte gate:
    /// `false` means neither [`Redactor::redact_value`] on the parsed record nor
    /// [`Redactor::redact_text`] on the text can find anything in it, so callers may skip parsing
    /// it. The same gate [`Redactor::redact_jsonl`] applies to each line.
    pub fn may_match(&self, record: &[u8]) -> bool {
        let mut cand = Candidates::default();
        self.gate.check(&self.rules, record, &mut cand);
        cand.any
    }

    /// Redacts secrets in a plain text (also finding them under JSON escapes).
    pub fn redact_text(&self, input: &str) -> Redacted {
        let mut cand = Candidates::default();
        self.gate.check(&self.rules, input.as_bytes(), &mut cand);
        let mut findings = Vec::new();
        if !cand.any {
            return Redacted {
                text: input.to_string(),
                findings,
            };
        }
        let spans = self.text_spans(input.as_bytes(), 0, &cand);
        for sp in &spans {
            self.emit(&mut findings, sp, 1, "");
        }
        let out = self.splice(input, &spans);
        Redacted {
            text: out,
            findings,
        }
    }
}

/// Appends `text[a..b]`: as it is when both ends are character boundaries (the usual case),
/// lossily when a span split a character.
fn push_piece(out: &mut String, text: &str, a: usize, b: usize) {
    match text.get(a..b) {
        Some(t) => out.push_str(t),
        None => out.push_str(&String::from_utf8_lossy(&text.as_bytes()[a..b])),
    }
}

/// How many bytes of a value follow its key in the gate's `"key":"value` probe.
const KEY_PROBE_VALUE: usize = 96;

/// A decoded path step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKey<'a> {
    Key(Cow<'a, [u8]>),
    Index(usize),
}

impl<'a> PathKey<'a> {
    fn from_seg(body: &'a [u8], seg: Seg) -> Self {
        match seg {
            Seg::Index(i) => PathKey::Index(i),
            Seg::Key(s, e) => {
                let raw = &body[s..e];
                if raw.contains(&b'\\') {
                    PathKey::Key(Cow::Owned(text::unescape(raw).0))
                } else {
                    PathKey::Key(Cow::Borrowed(raw))
                }
            }
        }
    }
}

/// The RFC 6901 pointer of a path.
fn pointer(path: &[PathKey<'_>]) -> String {
    let mut s = String::new();
    for p in path {
        s.push('/');
        match p {
            PathKey::Index(i) => s.push_str(&i.to_string()),
            PathKey::Key(k) => {
                for c in String::from_utf8_lossy(k).chars() {
                    match c {
                        '~' => s.push_str("~0"),
                        '/' => s.push_str("~1"),
                        c => s.push(c),
                    }
                }
            }
        }
    }
    s
}
