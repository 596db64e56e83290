//! Key-path rules: secrets recognised by *where* they sit in a JSON document rather than by
//! their shape (WhatsApp/Baileys `creds.json` key material, Claude Code's OAuth tokens).
//!
//! A rule lists dotted paths (`noiseKey.private`); a string value matches when the object keys
//! leading to it end with the path's keys. A value that Node's `Buffer` serialised as
//! `{"type":"Buffer","data":"<base64>"}` matches through its `data` string. Three places use
//! this: JSON values walked as a tree, JSONL records (the strings of the record), and JSON
//! documents found inside text (a tool that printed `creds.json`, at any escape level).

use serde::Deserialize;

use crate::gate::Candidates;
use crate::json::{self, Seg, StrVal};
use crate::rules::Rule;
use crate::text;

/// What a key-path rule accepts as a secret value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PathValue {
    /// Any string of at least 8 bytes that is not a reference or placeholder.
    #[default]
    String,
    /// Binary data as base64 (standard or URL-safe) of at least 16 characters, as a plain
    /// string or as a serialised `Buffer`'s `data`.
    Binary,
    /// Binary data only as a serialised `Buffer`'s `data` (for bare key names such as
    /// `private`, which are too common to trust on a plain string).
    Buffer,
}

/// How many `{` starts are tried per text when looking for embedded JSON documents.
const MAX_DOC_TRIES: usize = 8;

/// Parses the dotted paths of a rule: non-empty keys, no empty segment.
pub(crate) fn parse_paths(paths: &[String]) -> std::result::Result<Vec<Vec<String>>, String> {
    paths
        .iter()
        .map(|p| {
            let segs: Vec<String> = p.split('.').map(str::to_string).collect();
            if segs.iter().any(String::is_empty) {
                Err(format!("path {p:?} has an empty key"))
            } else {
                Ok(segs)
            }
        })
        .collect()
}

/// Whether a string value is acceptable as a secret of this kind (`via_buffer`: it is the
/// `data` of a serialised `Buffer`).
pub(crate) fn value_ok(kind: PathValue, v: &[u8], via_buffer: bool) -> bool {
    if text::placeholder_ranges(v) == [(0, v.len())] {
        return false;
    }
    let base64 = || {
        v.len() >= 16
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    };
    match kind {
        PathValue::String => v.len() >= 8 && !text::is_placeholder(v),
        PathValue::Binary => base64(),
        PathValue::Buffer => via_buffer && base64(),
    }
}

/// Whether the keys of a path (last first; `None` for an array index) end with `want` (where
/// a `*` segment stands for any one key).
/// When `via_buffer` is set the value is the `data` of a `{"type":"Buffer","data":…}` object
/// and that last `data` key is skipped first.
fn suffix_matches<'a>(
    rev: impl Iterator<Item = Option<&'a [u8]>>,
    want: &[String],
    via_buffer: bool,
) -> bool {
    let mut rev = rev.skip(usize::from(via_buffer));
    want.iter()
        .rev()
        .all(|seg| matches!(rev.next(), Some(Some(k)) if seg == "*" || k == seg.as_bytes()))
}

/// The first key-path rule matching a string value at a path, given as its keys last first
/// (`None` for array indices). `buffer` says the value's object is a serialised `Buffer`.
///
/// A rule applies only where one of its keywords is present, so that the raw-byte gate stays
/// a safe prefilter: in `doc` (the text of the JSON document holding the value) when given,
/// otherwise in a key of the path or, for a `Buffer`'s data, in that `"Buffer"` itself.
pub(crate) fn path_rule<'a, I>(
    rules: &[Rule],
    rev_keys: I,
    buffer: bool,
    value: &[u8],
    doc: Option<&[u8]>,
) -> Option<usize>
where
    I: Iterator<Item = Option<&'a [u8]>> + Clone,
{
    let via_buffer = buffer && rev_keys.clone().next() == Some(Some(&b"data"[..]));
    rules.iter().enumerate().find_map(|(i, r)| {
        let hit = !r.paths.is_empty()
            && r.paths
                .iter()
                .any(|p| suffix_matches(rev_keys.clone(), p, via_buffer))
            && value_ok(r.path_value, value, via_buffer)
            && r.keywords.iter().any(|k| {
                let k = k.as_bytes();
                match doc {
                    Some(d) => memchr::memmem::find(d, k).is_some(),
                    None => {
                        (via_buffer && memchr::memmem::find(b"Buffer", k).is_some())
                            || rev_keys
                                .clone()
                                .flatten()
                                .any(|key| memchr::memmem::find(key, k).is_some())
                    }
                }
            });
        hit.then_some(i)
    })
}

/// Whether a JSON object is a serialised Node `Buffer` (`"type": "Buffer"`).
pub(crate) fn is_buffer(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    matches!(map.get("type"), Some(serde_json::Value::String(t)) if t == "Buffer")
}

/// Whether any key-path rule is a candidate of this record.
pub(crate) fn wanted(rules: &[Rule], cand: &Candidates) -> bool {
    rules
        .iter()
        .enumerate()
        .any(|(i, r)| !r.paths.is_empty() && cand.wants(i))
}

/// A key-path hit in a tokenized document: the string's content range and the rule.
#[derive(Debug, Clone)]
pub(crate) struct DocHit {
    /// Start of the string's content (inside the quotes) in the document.
    pub start: usize,
    /// End of the string's content.
    pub end: usize,
    /// The matching rule.
    pub rule: usize,
    /// The decoded value (for the fingerprint).
    pub value: Vec<u8>,
}

/// Decoded bytes of a raw (escaped) JSON string content.
fn decoded(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if raw.contains(&b'\\') {
        std::borrow::Cow::Owned(text::unescape(raw).0)
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// Key-path hits among the strings of one tokenized JSON document `doc`; `whole_doc` says the
/// rules' keywords may be anywhere in `doc` (an embedded document) rather than on the path (a
/// record, whose gate saw every byte of it).
pub(crate) fn doc_hits(
    rules: &[Rule],
    doc: &[u8],
    strs: &[StrVal],
    whole_doc: bool,
) -> Vec<DocHit> {
    if !rules.iter().any(|r| !r.paths.is_empty()) {
        return Vec::new();
    }
    // Objects holding `"type": "Buffer"`, named by the raw position of their `type` key.
    let buffers: Vec<&[Seg]> = strs
        .iter()
        .filter(|s| {
            &doc[s.start..s.end] == b"Buffer"
                && matches!(s.path.last(), Some(Seg::Key(a, b)) if &doc[*a..*b] == b"type")
        })
        .map(|s| &s.path[..s.path.len() - 1])
        .collect();
    // Only strings whose last key ends a path (or is a Buffer's `data`) can match.
    let lasts: Vec<&[u8]> = rules
        .iter()
        .flat_map(|r| r.paths.iter().filter_map(|p| p.last()))
        .map(|k| k.as_bytes())
        .chain([&b"data"[..]])
        .collect();
    // For paths ending in `*`, the key before it.
    let parents: Vec<&[u8]> = rules
        .iter()
        .flat_map(|r| r.paths.iter())
        .filter(|p| p.len() >= 2 && p[p.len() - 1] == "*")
        .map(|p| p[p.len() - 2].as_bytes())
        .collect();
    let raw_key = |seg: Option<&Seg>| match seg {
        Some(Seg::Key(a, b)) => Some(&doc[*a..*b]),
        _ => None,
    };
    let mut out = Vec::new();
    for s in strs {
        let Some(last) = raw_key(s.path.last()) else {
            continue;
        };
        let parent = s
            .path
            .len()
            .checked_sub(2)
            .and_then(|i| raw_key(s.path.get(i)));
        let escaped = last.contains(&b'\\') || parent.is_some_and(|p| p.contains(&b'\\'));
        if !escaped && !lasts.contains(&last) && !parent.is_some_and(|p| parents.contains(&p)) {
            continue;
        }
        let keys: Vec<Option<std::borrow::Cow<'_, [u8]>>> = s
            .path
            .iter()
            .map(|seg| match seg {
                Seg::Key(a, b) => Some(decoded(&doc[*a..*b])),
                Seg::Index(_) => None,
            })
            .collect();
        let parent = &s.path[..s.path.len().saturating_sub(1)];
        let buffer = buffers.contains(&parent);
        let value = decoded(&doc[s.start..s.end]);
        let rev = keys.iter().rev().map(|k| k.as_deref());
        if let Some(rule) = path_rule(rules, rev, buffer, &value, whole_doc.then_some(doc)) {
            out.push(DocHit {
                start: s.start,
                end: s.end,
                rule,
                value: value.into_owned(),
            });
        }
    }
    out
}

/// The end (exclusive) of the JSON object or array starting at `hay[start]`, by bracket
/// counting outside strings; `None` when it does not close.
fn balanced_end(hay: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut i = start;
    while i < hay.len() {
        let b = hay[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Receives a key-path secret found in a text: `(start, end, rule, decoded value)`.
pub(crate) type HitFn<'a> = dyn FnMut(usize, usize, usize, &[u8]) + 'a;

/// Finds JSON documents embedded in `hay` (a tool's output, a file's text) and calls
/// `hit(start, end, rule, value)` for each key-path secret in them, with `start..end` the
/// secret's range in `hay`. JSON stored in their strings is searched too, `depth` levels down.
pub(crate) fn text_hits(rules: &[Rule], hay: &[u8], depth: u8, hit: &mut HitFn<'_>) {
    // A document needs an object with a quoted key, and one of the rules' keywords: it starts
    // before the last keyword of the text.
    if memchr::memchr(b'"', hay).is_none() {
        return;
    }
    let Some(last_keyword) = rules
        .iter()
        .filter(|r| !r.paths.is_empty())
        .flat_map(|r| &r.keywords)
        .filter_map(|k| memchr::memmem::rfind(hay, k.as_bytes()))
        .max()
    else {
        return;
    };
    // Bracket scans stop once they have read the text twice (unclosed objects in code).
    let mut budget = 2 * hay.len();
    let mut from = 0;
    let mut tries = 0;
    while tries < MAX_DOC_TRIES {
        let Some(rel) = hay
            .get(from..last_keyword)
            .and_then(|h| memchr::memchr(b'{', h))
        else {
            return;
        };
        let start = from + rel;
        // An object with a key (or an empty one): `{`, blanks, then `"` or `}`.
        let next = hay[start + 1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .copied();
        if !matches!(next, Some(b'"' | b'}')) {
            from = start + 1;
            continue;
        }
        tries += 1;
        let closed = balanced_end(hay, start);
        let scanned = closed.unwrap_or(hay.len()) - start;
        if scanned > budget {
            return;
        }
        budget -= scanned;
        let Some(end) = closed else {
            from = start + 1;
            continue;
        };
        let doc = &hay[start..end];
        // Only documents holding a key-path rule's keyword are parsed.
        let keyword = rules.iter().any(|r| {
            !r.paths.is_empty()
                && r.keywords
                    .iter()
                    .any(|k| memchr::memmem::find(doc, k.as_bytes()).is_some())
        });
        if !keyword {
            from = end;
            continue;
        }
        let Some(strs) = json::strings(doc) else {
            from = start + 1;
            continue;
        };
        let hits = doc_hits(rules, doc, &strs, true);
        for h in &hits {
            hit(start + h.start, start + h.end, h.rule, &h.value);
        }
        if depth < text::MAX_DEPTH {
            // JSON kept as a string inside this document (escaped once more).
            for s in &strs {
                let raw = &doc[s.start..s.end];
                if !raw.contains(&b'\\') || hits.iter().any(|h| h.start == s.start) {
                    continue;
                }
                let (d, starts) = text::unescape(raw);
                text_hits(rules, &d, depth + 1, &mut |a, b, rule, v| {
                    hit(
                        start + s.start + starts[a],
                        start + s.start + starts[b],
                        rule,
                        v,
                    );
                });
            }
        }
        from = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        crate::RuleSet::builtin().rules().to_vec()
    }

    fn ids(hay: &str) -> Vec<(String, String)> {
        let rules = rules();
        let mut out = Vec::new();
        text_hits(&rules, hay.as_bytes(), 0, &mut |s, e, r, _| {
            out.push((rules[r].id.clone(), hay[s..e].to_string()));
        });
        out
    }

    #[test]
    fn suffix_and_buffer_matching() {
        let want = vec!["noiseKey".to_string(), "private".to_string()];
        let keys = |k: &[&'static str]| {
            k.iter()
                .rev()
                .map(|s| Some(s.as_bytes()))
                .collect::<Vec<Option<&[u8]>>>()
        };
        assert!(suffix_matches(
            keys(&["a", "noiseKey", "private"]).into_iter(),
            &want,
            false
        ));
        assert!(suffix_matches(
            keys(&["noiseKey", "private", "data"]).into_iter(),
            &want,
            true
        ));
        assert!(!suffix_matches(
            keys(&["noiseKey", "private", "data"]).into_iter(),
            &want,
            false
        ));
        assert!(!suffix_matches(
            keys(&["noiseKey", "public"]).into_iter(),
            &want,
            false
        ));
        assert!(!suffix_matches(
            keys(&["private"]).into_iter(),
            &want,
            false
        ));
        assert!(!suffix_matches(
            vec![None, Some(&b"private"[..])].into_iter(),
            &want,
            false
        ));
        let any = vec!["messageKeys".to_string(), "*".to_string()];
        assert!(suffix_matches(
            keys(&["c", "messageKeys", "7"]).into_iter(),
            &any,
            false
        ));
        assert!(!suffix_matches(
            keys(&["messageKeys"]).into_iter(),
            &any,
            false
        ));
    }

    #[test]
    fn embedded_documents_are_found_after_other_text() {
        let b = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";
        let hay = format!(
            "$ cat creds.json\n{{\"noiseKey\":{{\"private\":{{\"type\":\"Buffer\",\"data\":\"{b}\"}},\"public\":{{\"type\":\"Buffer\",\"data\":\"{b}\"}}}},\"registrationId\":77}}\nok {{ not json"
        );
        let got = ids(&hay);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, b);
        // Escaped once more inside a document's string.
        let doc =
            format!("{{\"advSecretKey\":\"{b}\",\"me\":{{\"type\":\"Buffer\",\"data\":\"{b}\"}}}}");
        let inner = serde_json::to_string(&doc).unwrap();
        let hay = format!("{{\"stdout\":{inner}}}");
        let got = ids(&hay);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, b);
        // Without any of the rule's keywords in the document, nothing (the gate's promise).
        let got = ids(&format!("{{\"routingInfo\":\"{b}\"}}"));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn unclosed_objects_in_code_cost_at_most_two_reads() {
        // A megabyte of `{"` that never closes, then a keyword: the bracket scans stop after
        // reading the text about twice, and nothing is found.
        let mut hay = "{\"a\": [".repeat(150_000);
        hay.push_str(" Buffer.from(x) ");
        let rules = rules();
        let mut n = 0;
        text_hits(&rules, hay.as_bytes(), 0, &mut |_, _, _, _| n += 1);
        assert_eq!(n, 0);
        // Documents after the last keyword are not parsed: none can match.
        let b = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";
        let doc = format!("{{\"advSecretKey\":\"{b}\"}}");
        assert_eq!(ids(&format!("{doc} {doc}")).len(), 2);
    }

    #[test]
    fn values_must_have_the_expected_shape() {
        assert!(value_ok(
            PathValue::Binary,
            b"QUJDREVGR0hJSktMTU5PUA==",
            false
        ));
        assert!(!value_ok(PathValue::Binary, b"short", true));
        assert!(!value_ok(
            PathValue::Binary,
            b"[REDACTED:whatsapp-key:0a1b2c3d]",
            true
        ));
        assert!(value_ok(
            PathValue::Buffer,
            b"QUJDREVGR0hJSktMTU5PUA==",
            true
        ));
        assert!(!value_ok(
            PathValue::Buffer,
            b"QUJDREVGR0hJSktMTU5PUA==",
            false
        ));
        assert!(value_ok(PathValue::String, b"sk-ant-oat01-abcdefgh", false));
        assert!(!value_ok(PathValue::String, b"${TOKEN}", false));
        assert!(!value_ok(
            PathValue::String,
            b"[REDACTED:claude-oauth-token:0a1b2c3d]",
            false
        ));
    }
}
