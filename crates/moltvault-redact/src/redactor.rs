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

/// The read block of the JSONL redactor: small enough that the block stays in L2 cache while
/// the gate reads it back (1 MiB blocks measured a few % slower in the engine bench).
const BLOCK: usize = 1 << 17;

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

/// The state of one streaming run.
struct Run<'s> {
    stats: Stats,
    cand: Candidates,
    sink: &'s mut dyn FindingSink,
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
    /// With the keyword `hits` of this text, a rule whose matches start near a hit of its own
    /// keywords (see `Gate::back`) runs its regex only there.
    fn find(&self, hay: &[u8], cand: &Candidates, hits: text::Hits<'_>, out: &mut Vec<Span>) {
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
        // Key-path rules on JSON documents printed in this text (h2: see `keypath`).
        if crate::keypath::wanted(&self.rules, cand) {
            crate::keypath::text_hits(&self.rules, hay, 0, &mut |s, e, rule, v| {
                let fp = self.fp4(v);
                if !overlaps(s, e) && !self.allowed(&fp, v) {
                    out.push(Span {
                        start: s,
                        end: e,
                        rule,
                        fp,
                    });
                }
            });
        }
        let mut near: Vec<usize> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.regex.is_none() || !cand.wants(i) {
                continue;
            }
            let push = |s: usize, e: usize| {
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
            };
            match (hits, self.gate.back(i)) {
                // An escape may hide a keyword (`cand.all`): whole text.
                (Some(h), Some(back)) if !cand.all => {
                    near.clear();
                    near.extend(
                        h.iter()
                            .filter(|(_, id)| self.gate.hit_rules(*id).contains(&i))
                            .map(|&(p, _)| p),
                    );
                    if !near.is_empty() {
                        text::rule_spans_near(r, hay, &near, back, push);
                    }
                }
                _ => text::rule_spans(r, hay, push),
            }
        }
    }

    /// Spans in a piece of text and in its escaped levels (`hits`: the keyword hits in `text`).
    fn text_spans(
        &self,
        text: &[u8],
        depth: u8,
        cand: &Candidates,
        hits: text::Hits<'_>,
    ) -> Vec<Span> {
        let mut spans = Vec::new();
        text::spans_levels(
            text,
            depth,
            hits,
            &|h, k, o| self.find(h, cand, k, o),
            &mut spans,
        );
        text::merge(&mut spans);
        spans
    }

    /// Spans in the raw (escaped) content of a JSON string token (`hits`: the keyword hits in
    /// `raw`).
    fn token_spans(&self, raw: &[u8], cand: &Candidates, hits: text::Hits<'_>) -> Vec<Span> {
        if memchr::memchr(b'\\', raw).is_none() {
            return self.text_spans(raw, 1, cand, hits);
        }
        let (v, starts) = text::unescape(raw);
        let inner = hits.map(|h| text::map_hits(h, &starts));
        let mut spans = self.text_spans(&v, 1, cand, inner.as_deref());
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
        self.gate.check_record(&self.rules, body, cand);
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
                let mut local_hits: Vec<(usize, u32)> = Vec::new();
                // The token spans of the last long string, for its repeat (an exec tool's
                // output is stored twice).
                let mut memo: Option<SpanMemo> = None;
                // Key-path rules on the record's own structure (h2: see `keypath`).
                let path_hits = match crate::keypath::wanted(&self.rules, cand) {
                    true => crate::keypath::doc_hits(&self.rules, body, &strs, false),
                    false => Vec::new(),
                };
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
                    // The keyword hits inside this string, relative to it.
                    let a = cand.khits.partition_point(|&(p, _)| p < s.start);
                    let b = cand.khits.partition_point(|&(p, _)| p < s.end);
                    local_hits.clear();
                    local_hits.extend(cand.khits[a..b].iter().map(|&(p, id)| (p - s.start, id)));
                    let mut spans = match &memo {
                        Some(m) if body[m.range.clone()] == *raw && m.hits == local_hits => {
                            m.spans.clone()
                        }
                        _ => {
                            let spans = self.token_spans(raw, cand, Some(&local_hits));
                            if raw.len() >= REPEAT_MIN {
                                memo = Some(SpanMemo {
                                    range: s.start..s.end,
                                    hits: local_hits.clone(),
                                    spans: spans.clone(),
                                });
                            }
                            spans
                        }
                    };
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
                    if let Some(h) = path_hits.iter().find(|h| h.start == s.start) {
                        let fp = self.fp4(&h.value);
                        if !self.allowed(&fp, &h.value) {
                            let (start, end, rule) = (0, raw.len(), h.rule);
                            spans.push(Span {
                                start,
                                end,
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
                for sp in self.text_spans(body, 0, cand, Some(&cand.khits)) {
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
    /// read in 128 KiB blocks and runs of unchanged records are written in one call; a record
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
        let mut run = Run {
            stats: Stats::default(),
            cand: Candidates::default(),
            sink,
        };
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
            let used = self.records(&buf[..filled], searched, eof, &mut writer, &mut run)?;
            if eof {
                break;
            }
            searched = filled - used;
            buf.copy_within(used..filled, 0);
            filled -= used;
        }
        writer.flush().map_err(Error::Io)?;
        Ok(run.stats)
    }

    /// Redacts JSONL held in memory exactly as [`Redactor::redact_jsonl`] redacts the same
    /// bytes read from a stream, without copying them into a buffer first: unchanged records
    /// are written from `data` in runs of about 128 KiB, each right after the gate read it.
    ///
    /// # Errors
    /// Fails with [`Error::Io`] when writing fails.
    pub fn redact_jsonl_bytes<W: Write>(
        &self,
        data: &[u8],
        mut writer: W,
        sink: &mut dyn FindingSink,
    ) -> Result<Stats> {
        let mut run = Run {
            stats: Stats::default(),
            cand: Candidates::default(),
            sink,
        };
        self.records(data, 0, true, &mut writer, &mut run)?;
        writer.flush().map_err(Error::Io)?;
        Ok(run.stats)
    }

    /// Redacts the whole records of `buf` (and its unterminated tail when `eof`), writing
    /// each run of unchanged records once it reaches [`BLOCK`] bytes or ends at a changed
    /// record; returns the bytes consumed. The first `searched` bytes are known to hold no
    /// newline. Without `eof`, what is left holds no newline.
    fn records<W: Write>(
        &self,
        buf: &[u8],
        mut searched: usize,
        eof: bool,
        writer: &mut W,
        run: &mut Run<'_>,
    ) -> Result<usize> {
        let mut start = 0;
        let mut copied = 0;
        while start < buf.len() {
            let from = start + searched;
            searched = 0;
            let end = match memchr::memchr(b'\n', &buf[from..]) {
                Some(i) => from + i,
                None if eof => buf.len(),
                None => break,
            };
            let has_nl = end < buf.len();
            let next = if has_nl { end + 1 } else { end };
            let stats = &mut run.stats;
            stats.lines += 1;
            stats.bytes += (next - start) as u64;
            let line = stats.lines;
            if let Some(new) = self.record(&buf[start..end], line, &mut run.cand, run.sink, stats) {
                stats.changed += 1;
                writer.write_all(&buf[copied..start]).map_err(Error::Io)?;
                writer.write_all(&new).map_err(Error::Io)?;
                if has_nl {
                    writer.write_all(b"\n").map_err(Error::Io)?;
                }
                copied = next;
            } else if next - copied >= BLOCK {
                writer.write_all(&buf[copied..next]).map_err(Error::Io)?;
                copied = next;
            }
            start = next;
        }
        writer.write_all(&buf[copied..start]).map_err(Error::Io)?;
        Ok(start)
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
        // Matching reads the value (so identical long strings can be compared in place, without
        // copies); the edits are applied afterwards.
        let mut edits: Vec<(usize, Vec<Span>)> = Vec::new();
        {
            let mut path = Vec::new();
            let mut st = ValueState::default();
            self.walk_value(value, &mut path, false, &mut st, &mut edits, sink);
        }
        let n = edits.iter().map(|(_, s)| s.len()).sum();
        if !edits.is_empty() {
            let mut next = 0;
            self.apply_edits(value, &edits, &mut next);
        }
        n
    }

    /// Finds the spans of every string of a value (in document order, keyed by the string's
    /// address) and reports the findings.
    fn walk_value<'v>(
        &self,
        v: &'v Value,
        path: &mut Vec<PathKey<'v>>,
        in_tool: bool,
        st: &mut ValueState<'v>,
        edits: &mut Vec<(usize, Vec<Span>)>,
        sink: &mut dyn FindingSink,
    ) {
        match v {
            Value::Object(map) => {
                let in_tool = in_tool
                    || matches!(map.get("role"), Some(Value::String(r)) if r == "toolResult" || r == "tool");
                let buffer = crate::keypath::is_buffer(map);
                for (k, x) in map.iter() {
                    path.push(PathKey::Key(Cow::Borrowed(k.as_bytes())));
                    if !self.path_value(x, path, in_tool, buffer, edits, sink) {
                        self.walk_value(x, path, in_tool, st, edits, sink);
                    }
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(PathKey::Index(i));
                    self.walk_value(x, path, in_tool, st, edits, sink);
                    path.pop();
                }
            }
            Value::String(s) => {
                if !self.scope(path, in_tool) {
                    return;
                }
                let key: Option<&[u8]> = match path.last() {
                    Some(PathKey::Key(k)) => Some(k.as_ref()),
                    _ => None,
                };
                let spans = self.value_spans(s, key, st);
                if spans.is_empty() {
                    return;
                }
                let ptr = pointer(path);
                for sp in &spans {
                    self.emit(sink, sp, 1, &ptr);
                }
                edits.push((addr(s), spans));
            }
            _ => {}
        }
    }

    /// Replaces the spans found by [`Redactor::walk_value`] (`edits` in document order).
    fn apply_edits(&self, v: &mut Value, edits: &[(usize, Vec<Span>)], next: &mut usize) {
        match v {
            Value::Object(map) => {
                for x in map.values_mut() {
                    if *next == edits.len() {
                        return;
                    }
                    self.apply_edits(x, edits, next);
                }
            }
            Value::Array(a) => {
                for x in a.iter_mut() {
                    if *next == edits.len() {
                        return;
                    }
                    self.apply_edits(x, edits, next);
                }
            }
            Value::String(s) => {
                if let Some((at, spans)) = edits.get(*next)
                    && *at == addr(s)
                {
                    *s = self.splice(s, spans);
                    *next += 1;
                }
            }
            _ => {}
        }
    }

    /// The spans of one string value under `key`. Stage A and B on the value alone run once
    /// per distinct long text of the call (a tool result holds its text twice); then the
    /// `"key":"` probe (a keyword in the key, with the value's first bytes for the assignment
    /// check) may add rules, which then run on this text, and the key rule applies.
    fn value_spans<'v>(
        &self,
        s: &'v str,
        key: Option<&[u8]>,
        st: &mut ValueState<'v>,
    ) -> Vec<Span> {
        let big = s.len() >= MEMO_MIN;
        let mut at = if big {
            st.memo
                .iter()
                .position(|m| m.text.len() == s.len() && (std::ptr::eq(m.text, s) || m.text == s))
        } else {
            None
        };
        if at.is_none() {
            self.gate.check(&self.rules, s.as_bytes(), &mut st.cand);
            let spans = if st.cand.any {
                self.text_spans(s.as_bytes(), 1, &st.cand, Some(&st.cand.khits))
            } else {
                Vec::new()
            };
            if big && st.memo.len() < MEMO_MAX {
                st.memo.push(ValueMemo {
                    text: s,
                    cand: st.cand.clone(),
                    spans,
                });
                at = Some(st.memo.len() - 1);
            } else {
                st.spans = spans;
            }
        }
        let mut probe_any = false;
        if let Some(k) = key {
            let head = &s.as_bytes()[..s.len().min(KEY_PROBE_VALUE)];
            st.probe_buf.clear();
            st.probe_buf.push(b'"');
            st.probe_buf.extend_from_slice(k);
            st.probe_buf.extend_from_slice(b"\":\"");
            st.probe_buf.extend_from_slice(head);
            self.gate.check(&self.rules, &st.probe_buf, &mut st.probe);
            probe_any = st.probe.any;
        }
        let (vcand, vspans) = match at {
            Some(i) => (&st.memo[i].cand, &st.memo[i].spans),
            None => (&st.cand, &st.spans),
        };
        if !vcand.any && !probe_any {
            return Vec::new();
        }
        let p = &st.probe;
        let extra = probe_any
            && ((p.all && !vcand.all)
                || (p.literal && !vcand.literal)
                || p.rules.iter().zip(&vcand.rules).any(|(a, b)| *a && !*b));
        let (mut spans, merged) = if extra {
            let mut m = vcand.clone();
            for (a, b) in m.rules.iter_mut().zip(&p.rules) {
                *a |= *b;
            }
            m.all |= p.all;
            m.literal |= p.literal;
            m.any = true;
            let spans = self.text_spans(s.as_bytes(), 1, &m, Some(&vcand.khits));
            (spans, Cow::Owned(m))
        } else {
            (vspans.clone(), Cow::Borrowed(vcand))
        };
        if let Some(k) = key
            && let Some((rule, fp)) = self.key_rule(k, s.as_bytes(), &merged)
        {
            spans.push(Span {
                start: 0,
                end: s.len(),
                rule,
                fp,
            });
            text::merge(&mut spans);
        }
        spans
    }

    /// Key-path rules on a string of a tree (h2: see `keypath`; `buffer`: its object is a
    /// serialised `Buffer`): the whole string is replaced and `Some(1)` returned on a hit.
    fn path_value(
        &self,
        x: &Value,
        path: &[PathKey<'_>],
        in_tool: bool,
        buffer: bool,
        edits: &mut Vec<(usize, Vec<Span>)>,
        sink: &mut dyn FindingSink,
    ) -> bool {
        let Value::String(s) = x else { return false };
        let rev = path.iter().rev().map(|p| match p {
            PathKey::Key(k) => Some(k.as_ref()),
            PathKey::Index(_) => None,
        });
        let Some(rule) = crate::keypath::path_rule(&self.rules, rev, buffer, s.as_bytes(), None)
        else {
            return false;
        };
        let fp = self.fp4(s.as_bytes());
        if !self.scope(path, in_tool) || self.allowed(&fp, s.as_bytes()) {
            return false;
        }
        let (start, end) = (0, s.len());
        let sp = Span {
            start,
            end,
            rule,
            fp,
        };
        self.emit(sink, &sp, 1, &pointer(path));
        edits.push((addr(s), vec![sp]));
        true
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

    /// This redactor with a gate that scans repeated exec output twice (the reference for
    /// the gate's repeat skipping).
    #[cfg(test)]
    pub(crate) fn scanning_repeats(mut self) -> Redactor {
        self.gate.scan_repeats();
        self
    }

    /// Whether a record (a JSON document or a plain text, as raw bytes) passes the raw-byte gate:
    /// `false` means neither [`Redactor::redact_value`] on the parsed record nor
    /// [`Redactor::redact_text`] on the text can find anything in it, so callers may skip parsing
    /// it. The same gate [`Redactor::redact_jsonl`] applies to each line.
    pub fn may_match(&self, record: &[u8]) -> bool {
        let mut cand = Candidates::default();
        self.gate.check_record(&self.rules, record, &mut cand);
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
        let spans = self.text_spans(input.as_bytes(), 0, &cand, Some(&cand.khits));
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

/// Strings at least this long are matched once per [`Redactor::redact_value`] call however
/// often they occur in the value.
const MEMO_MIN: usize = 1024;

/// The shortest string of a JSONL record whose spans are kept for a repeat of it (comparing
/// costs a `memcmp`; a record's strings are in one buffer).
const REPEAT_MIN: usize = 256;

/// The token spans found in a long string of a record, with its range and keyword hits.
struct SpanMemo {
    range: std::ops::Range<usize>,
    hits: Vec<(usize, u32)>,
    spans: Vec<Span>,
}

/// How many distinct long strings one [`Redactor::redact_value`] call remembers.
const MEMO_MAX: usize = 16;

/// The gate's and stage B's outcome for one long string value, on the value alone.
#[derive(Debug)]
struct ValueMemo<'v> {
    text: &'v str,
    cand: Candidates,
    spans: Vec<Span>,
}

/// Scratch state of one [`Redactor::redact_value`] call.
#[derive(Debug, Default)]
struct ValueState<'v> {
    cand: Candidates,
    probe: Candidates,
    probe_buf: Vec<u8>,
    /// The spans of the last string not remembered in `memo`.
    spans: Vec<Span>,
    memo: Vec<ValueMemo<'v>>,
}

/// The address of a string of a value: names it between reading and editing the value.
#[allow(clippy::ptr_arg)] // The `String`'s own address (its slot in the value), not its buffer's.
fn addr(s: &String) -> usize {
    s as *const String as usize
}

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

#[cfg(test)]
mod windows {
    use super::*;
    use crate::{FingerprintKey, RedactorOptions};
    use moltvault_testutils::secrets::{FakeRng, contextual_secrets, decoys, provider_secrets};
    use serde_json::json;

    fn redactor() -> Redactor {
        let opts = RedactorOptions::new(Mode::All, FingerprintKey::from_bytes([9; 32]));
        Redactor::new(&RuleSet::builtin(), opts).unwrap()
    }

    /// Stage B with the gate's keyword hits and with none (every candidate rule over the
    /// whole text), as `(start, end, rule)`.
    type Found = Vec<(usize, usize, usize)>;

    fn both(r: &Redactor, text: &str) -> (Found, Found) {
        let mut cand = Candidates::default();
        r.gate.check(&r.rules, text.as_bytes(), &mut cand);
        if !cand.any {
            return (Vec::new(), Vec::new());
        }
        let key = |v: Vec<Span>| v.iter().map(|s| (s.start, s.end, s.rule)).collect();
        let near = r.text_spans(text.as_bytes(), 0, &cand, Some(&cand.khits));
        let whole = r.text_spans(text.as_bytes(), 0, &cand, None);
        (key(near), key(whole))
    }

    #[test]
    fn windows_find_what_whole_texts_find() {
        let r = redactor();
        let mut rng = FakeRng::new(11);
        let filler = "token_count: 12, the tokenizer and a password hint; export PATH=/usr/bin\n";
        let mut texts: Vec<String> = Vec::new();
        let mut pieces: Vec<String> = Vec::new();
        for s in provider_secrets(&mut rng)
            .into_iter()
            .chain(contextual_secrets(&mut rng))
        {
            pieces.push(s.text);
        }
        pieces.extend(decoys(&mut rng));
        for rule in r.rules.iter() {
            pieces.extend(rule.examples.iter().cloned());
            pieces.extend(rule.negative_examples.iter().cloned());
        }
        for p in &pieces {
            let escaped = serde_json::to_string(p).unwrap();
            texts.push(p.clone());
            texts.push(format!("{0}{p}{0}{p}", filler.repeat(30)));
            texts.push(format!(
                "out: {escaped} and {}",
                serde_json::to_string(&escaped).unwrap()
            ));
        }
        // Everything in one text, as shell output.
        texts.push(pieces.join("\n"));
        texts.push(serde_json::to_string(&pieces.join("\n")).unwrap());
        let mut found = 0;
        for t in &texts {
            let (near, whole) = both(&r, t);
            assert_eq!(near, whole, "{t}");
            found += near.len();
        }
        assert!(found > pieces.len(), "{found}");
    }

    #[test]
    fn a_keyword_far_from_a_secret_in_a_megabyte_finds_exactly_the_secrets() {
        let r = redactor();
        let mut rng = FakeRng::new(5);
        let pass = format!("Zq{}9", rng.alnum(22));
        let sk = format!(
            "sk-ant-api03-{}AA",
            rng.chars(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                93
            )
        );
        let line =
            "drwxr-xr-x  2 root root  4096 Nov 26 05:14 tokens/ (see the password manager)\n";
        let mut text = String::from("GITHUB_TOKEN and API_TOKEN are read from the environment\n");
        while text.len() < 500_000 {
            text.push_str(line);
        }
        let a = text.len() + "export API_TOKEN=".len();
        text.push_str(&format!("export API_TOKEN={pass}\n"));
        while text.len() < 1_000_000 {
            text.push_str(line);
        }
        let b = text.len() + "key: ".len();
        text.push_str(&format!("key: {sk}\nend token\n"));
        let (near, whole) = both(&r, &text);
        assert_eq!(near, whole);
        let rule = |id: &str| r.rules.iter().position(|x| x.id == id).unwrap();
        assert_eq!(
            near,
            [
                (a, a + pass.len(), rule("generic-assignment")),
                (b, b + sk.len(), rule("anthropic-api-key")),
            ]
        );
        // Through the value API, in both copies of a tool result.
        let mut v = json!({"role": "toolResult", "content": [{"type": "text", "text": text}],
            "details": {"aggregated": text}});
        let mut findings: Vec<crate::Finding> = Vec::new();
        assert_eq!(r.redact_value(&mut v, &mut findings), 4);
        let out = v.to_string();
        assert!(!out.contains(&pass) && !out.contains(&sk));
        let ptrs: Vec<&str> = findings.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(
            ptrs,
            [
                "/content/0/text",
                "/content/0/text",
                "/details/aggregated",
                "/details/aggregated"
            ]
        );
        assert_eq!(v["content"][0]["text"], v["details"]["aggregated"]);
    }

    #[test]
    fn repeated_long_texts_match_once_but_keys_still_count() {
        let r = redactor();
        let mut rng = FakeRng::new(8);
        // A long random value: a secret under a credential key, nothing under `text`.
        let text = format!("Xy{}7", rng.alnum(1500));
        // The same text under a credential key is a secret as a whole; under `text` it is not.
        let mut v = json!({"a": {"text": text}, "b": {"apiKey": text}, "c": [text]});
        let mut findings: Vec<crate::Finding> = Vec::new();
        r.redact_value(&mut v, &mut findings);
        let ptrs: Vec<&str> = findings.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(ptrs, ["/b/apiKey"]);
        assert_eq!(v["a"]["text"], text.as_str());
        assert!(
            v["b"]["apiKey"]
                .as_str()
                .unwrap()
                .starts_with("[REDACTED:generic-credential-field:")
        );
        // Same result as redacting each string in its own call.
        for (ptr, key) in [("/a", "text"), ("/b", "apiKey")] {
            let mut one = json!({ key: text });
            let mut f: Vec<crate::Finding> = Vec::new();
            r.redact_value(&mut one, &mut f);
            assert_eq!(one[key], *v.pointer(&format!("{ptr}/{key}")).unwrap());
        }
    }
}
