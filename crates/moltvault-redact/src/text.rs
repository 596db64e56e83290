//! Matching on text: JSON-string unescaping with an offset map, per-rule matching with
//! validators, and the recursion into escaped text (JSON inside JSON strings).

use crate::rules::{Rule, Validate};

/// How many escape levels below a string value are decoded and searched.
pub(crate) const MAX_DEPTH: u8 = 3;

/// A secret span in some text, before merging.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    /// Index into the rule list, or `rules.len() + i` for literal secret `i`.
    pub rule: usize,
    /// The first 4 bytes of the keyed fingerprint.
    pub fp: [u8; 4],
}

/// Decodes JSON string escapes in `esc`, returning the decoded bytes and, for every decoded
/// byte offset (plus the end), the offset in `esc` it starts at. Unknown escapes are kept.
pub(crate) fn unescape(esc: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(esc.len());
    let mut starts = Vec::with_capacity(esc.len() + 1);
    let mut i = 0;
    while i < esc.len() {
        // The run of plain bytes up to the next backslash, at once.
        let run = memchr::memchr(b'\\', &esc[i..]).unwrap_or(esc.len() - i);
        out.extend_from_slice(&esc[i..i + run]);
        starts.extend(i..i + run);
        i += run;
        if i >= esc.len() {
            break;
        }
        let b = esc[i];
        if i + 1 >= esc.len() {
            out.push(b);
            starts.push(i);
            i += 1;
            continue;
        }
        let simple = match esc[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            starts.push(i);
            i += 2;
            continue;
        }
        if esc[i + 1] == b'u'
            && let Some(cp) = hex4(esc, i + 2)
        {
            let mut len = 6;
            let mut ch = None;
            if (0xD800..0xDC00).contains(&cp) {
                if esc.get(i + 6) == Some(&b'\\')
                    && esc.get(i + 7) == Some(&b'u')
                    && let Some(lo) = hex4(esc, i + 8)
                    && (0xDC00..0xE000).contains(&lo)
                {
                    ch = char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
                    len = 12;
                }
            } else {
                ch = char::from_u32(cp);
            }
            let ch = ch.unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            for &x in ch.encode_utf8(&mut buf).as_bytes() {
                out.push(x);
                starts.push(i);
            }
            i += len;
            continue;
        }
        // An unknown or broken escape: keep the backslash as text.
        out.push(b);
        starts.push(i);
        i += 1;
    }
    starts.push(esc.len());
    (out, starts)
}

fn hex4(s: &[u8], at: usize) -> Option<u32> {
    let h = s.get(at..at + 4)?;
    let mut v = 0u32;
    for &c in h {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether a value is a reference, template or placeholder rather than a secret.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    let first = v.first().copied().unwrap_or(b' ');
    if matches!(first, b'$' | b'%' | b'<' | b'{' | b'(' | b'*' | b'[') {
        return true;
    }
    /// Words that mark a placeholder wherever they stand, in any ASCII case, searched in one
    /// pass (a validator runs on every candidate match).
    static WORDS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                &b"process.env"[..],
                b"os.environ",
                b"getenv",
                b"xxxx",
                b"example",
                b"your_",
                b"your-",
                b"yourkey",
                b"changeme",
                b"placeholder",
                b"redacted",
                b"dummy",
                b"secretref",
                b"****",
                b"....",
                b"${",
                b"{{",
            ])
            .expect("a small literal set")
    });
    if WORDS.is_match(v) || v.contains(&b'(') {
        return true;
    }
    [
        &b"true"[..],
        b"false",
        b"null",
        b"none",
        b"undefined",
        b"nil",
        b"password",
        b"secret",
    ]
    .iter()
    .any(|w| v.eq_ignore_ascii_case(w))
}

/// Whether a value has the shape of a hash, UUID or integrity string (not a credential).
pub(crate) fn is_hash_shape(v: &[u8]) -> bool {
    let hex = |s: &[u8]| s.iter().all(|b| b.is_ascii_hexdigit());
    if (v.len() == 40 || v.len() == 64 || v.len() == 128 || v.len() == 32) && hex(v) {
        return true;
    }
    if v.len() == 36 {
        let dashes = [8, 13, 18, 23];
        if dashes.iter().all(|&i| v[i] == b'-')
            && v.iter()
                .enumerate()
                .all(|(i, b)| dashes.contains(&i) || b.is_ascii_hexdigit())
        {
            return true;
        }
    }
    [&b"sha512-"[..], b"sha384-", b"sha256-", b"sha1-"]
        .iter()
        .any(|p| v.starts_with(p))
}

/// The credential validator: placeholders, hash shapes and randomness.
pub(crate) fn credential_ok(name: &[u8], v: &[u8]) -> bool {
    if v.is_empty() || is_placeholder(v) {
        return false;
    }
    let lname = name.to_ascii_lowercase();
    // Names that describe a credential rather than hold one (`tokenizer`, `token_type`,
    // `secret_name`, `credentials_file`, `token_count`, `TOKEN_TTL`).
    const NOT_A_VALUE: &[&[u8]] = &[
        b"izer", b"type", b"count", b"ttl", b"name", b"file", b"path", b"length", b"_len",
    ];
    if NOT_A_VALUE.iter().any(|s| lname.ends_with(s)) {
        return false;
    }
    let strong_name = [&b"pass"[..], b"pwd", b"secret", b"private"]
        .iter()
        .any(|w| contains_ci(&lname, w));
    if strong_name && lname.windows(4).any(|w| w == b"pass") {
        // Passwords may be short, but a bare lowercase identifier is a variable in code.
        let identifier = v.iter().all(|b| b.is_ascii_lowercase() || *b == b'_');
        return !identifier && (v.len() >= 6 || !v.iter().all(|b| b.is_ascii_digit()));
    }
    if v.len() < 8 || v.iter().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if v.starts_with(b"/") || v.starts_with(b"./") || v.starts_with(b"~/") {
        return false;
    }
    if !strong_name && is_hash_shape(v) {
        return false;
    }
    let digit = v.iter().any(|b| b.is_ascii_digit());
    let alpha = v.iter().any(|b| b.is_ascii_alphabetic());
    let e = entropy(v);
    if digit && alpha {
        e >= 2.8
    } else {
        v.len() >= 24 && e >= 4.0 && !v.contains(&b'.')
    }
}

/// Runs one regex rule over `hay`, calling `hit(start, end)` for every validated secret.
pub(crate) fn rule_spans(rule: &Rule, hay: &[u8], mut hit: impl FnMut(usize, usize)) {
    let Some(re) = &rule.regex else { return };
    let mut locs = re.capture_locations();
    let mut at = 0;
    while at <= hay.len() {
        let Some(m) = re.captures_read_at(&mut locs, hay, at) else {
            break;
        };
        let (ms, me) = (m.start(), m.end());
        at = if me > ms { me } else { me + 1 };
        if let Some((s, e)) = validated(rule, hay, &locs, ms, me) {
            hit(s, e);
        }
    }
}

/// Like [`rule_spans`], but only for the matches that start at most `back` bytes before one
/// of `hits` (ascending keyword offsets) and not after it: the same matches as
/// [`rule_spans`] when every match holds a hit within `back` bytes of its start. Each search
/// starts where the previous one may not have looked, and a search that found nothing near
/// its hit remembers where the next match starts, so the regex reads each byte at most once
/// (whole-string cost in the worst case, a few windows in the usual one).
pub(crate) fn rule_spans_near(
    rule: &Rule,
    hay: &[u8],
    hits: &[usize],
    back: usize,
    mut hit: impl FnMut(usize, usize),
) {
    let Some(re) = &rule.regex else { return };
    let mut locs = re.capture_locations();
    // Matches starting before `at` are done.
    let mut at = 0;
    // `(from, q)`: the leftmost match at or after `from` starts at `q`.
    let mut known: Option<(usize, usize)> = None;
    for &h in hits {
        let mut lo = h.saturating_sub(back).max(at);
        while lo <= h && lo <= hay.len() {
            if let Some((from, q)) = known
                && from <= lo
                && q > h
            {
                break;
            }
            // No match at or after `lo`: none after any later hit either.
            let Some(m) = re.captures_read_at(&mut locs, hay, lo) else {
                return;
            };
            let (ms, me) = (m.start(), m.end());
            if ms > h {
                known = Some((lo, ms));
                break;
            }
            at = if me > ms { me } else { me + 1 };
            lo = at;
            if let Some((s, e)) = validated(rule, hay, &locs, ms, me) {
                hit(s, e);
            }
        }
    }
}

/// The secret of one regex match `ms..me` (capture locations in `locs`) when it passes the
/// rule's checks.
fn validated(
    rule: &Rule,
    hay: &[u8],
    locs: &regex::bytes::CaptureLocations,
    ms: usize,
    me: usize,
) -> Option<(usize, usize)> {
    let (s, e) = match rule.secret_group.and_then(|g| locs.get(g)) {
        Some(x) => x,
        None if rule.secret_group.is_some() => return None,
        None => (ms, me),
    };
    let v = &hay[s..e];
    if v.is_empty() || contains_ci(v, b"EXAMPLE") {
        return None;
    }
    if let Some(min) = rule.entropy
        && entropy(v) < min
    {
        return None;
    }
    match rule.validate {
        Validate::None => {}
        Validate::Placeholder => {
            if is_placeholder(v) {
                return None;
            }
        }
        Validate::Credential => {
            let name = rule
                .name_group
                .and_then(|g| locs.get(g))
                .map(|(a, b)| &hay[a..b])
                .unwrap_or(rule.id.as_bytes());
            if !credential_ok(name, v) {
                return None;
            }
        }
        Validate::GithubCrc32 => {
            if !crate::validate::github_crc32(v) {
                return None;
            }
        }
        Validate::Base64Pem => {
            if !crate::validate::base64_pem_private_key(v) {
                return None;
            }
        }
    }
    Some((s, e))
}

/// Whether a rule finds a secret in `text` (used for the example checks), searching escaped
/// levels too; key rules take a JSON object as their example.
pub(crate) fn rule_finds(rule: &Rule, text: &[u8]) -> bool {
    if let Some(key) = &rule.key {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) else {
            return false;
        };
        return value_has_key_hit(rule, key, &v);
    }
    let mut found = false;
    level_search(text, 0, &mut |hay| {
        rule_spans(rule, hay, |_, _| found = true);
    });
    found
}

fn value_has_key_hit(rule: &Rule, key: &regex::bytes::Regex, v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, x)| match x {
            serde_json::Value::String(s) => {
                key.is_match(k.as_bytes()) && key_value_ok(rule, k.as_bytes(), s.as_bytes())
            }
            other => value_has_key_hit(rule, key, other),
        }),
        serde_json::Value::Array(a) => a.iter().any(|x| value_has_key_hit(rule, key, x)),
        _ => false,
    }
}

/// Whether the value of a credential-named JSON key is a secret.
pub(crate) fn key_value_ok(rule: &Rule, name: &[u8], v: &[u8]) -> bool {
    if placeholder_ranges(v) == [(0, v.len())] {
        return false;
    }
    if let Some(min) = rule.entropy
        && entropy(v) < min
    {
        return false;
    }
    credential_ok(name, v)
}

fn level_search(text: &[u8], depth: u8, f: &mut dyn FnMut(&[u8])) {
    f(text);
    if depth < MAX_DEPTH && memchr::memchr(b'\\', text).is_some() {
        let (d, _) = unescape(text);
        level_search(&d, depth + 1, f);
    }
}

/// Keyword hits (offset, gate pattern id) in some text, ascending; `None` when unknown (every
/// rule then runs over the whole text).
pub(crate) type Hits<'a> = Option<&'a [(usize, u32)]>;

/// The finder of one level: text, its keyword hits, spans out.
pub(crate) type Finder<'a> = dyn Fn(&[u8], Hits<'_>, &mut Vec<Span>) + 'a;

/// Finds spans in `text` and in its escaped levels below `depth`, mapped back to `text`;
/// `hits` are the keyword hits in `text`, carried to each decoded level.
pub(crate) fn spans_levels(
    text: &[u8],
    depth: u8,
    hits: Hits<'_>,
    find: &Finder<'_>,
    out: &mut Vec<Span>,
) {
    find(text, hits, out);
    if depth < MAX_DEPTH && memchr::memchr(b'\\', text).is_some() {
        let (d, starts) = unescape(text);
        let inner_hits = hits.map(|h| map_hits(h, &starts));
        let mut inner = Vec::new();
        spans_levels(&d, depth + 1, inner_hits.as_deref(), find, &mut inner);
        for s in inner {
            out.push(Span {
                start: starts[s.start],
                end: starts[s.end],
                rule: s.rule,
                fp: s.fp,
            });
        }
    }
}

/// Maps keyword hits in escaped text to its decoded text (`starts` from [`unescape`]).
/// Keywords hold no byte an escape produces, so a hit maps to the decoded byte starting at its
/// offset; a hit inside an escape (the `n` of `\n`) is no keyword in the decoded text and is
/// dropped.
pub(crate) fn map_hits(hits: &[(usize, u32)], starts: &[usize]) -> Vec<(usize, u32)> {
    hits.iter()
        .filter_map(|&(p, id)| {
            let i = starts.partition_point(|&s| s < p);
            (i + 1 < starts.len() && starts[i] == p).then_some((i, id))
        })
        .collect()
}

/// Decodes JSON string escapes like [`unescape`], into `out`, without the offset map.
pub(crate) fn unescape_into(esc: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(esc.len());
    let mut i = 0;
    while i < esc.len() {
        let Some(rel) = memchr::memchr(b'\\', &esc[i..]) else {
            out.extend_from_slice(&esc[i..]);
            return;
        };
        out.extend_from_slice(&esc[i..i + rel]);
        i += rel;
        let Some(&e) = esc.get(i + 1) else {
            out.push(b'\\');
            return;
        };
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        if e == b'u'
            && let Some(cp) = hex4(esc, i + 2)
        {
            let mut len = 6;
            let mut ch = None;
            if (0xD800..0xDC00).contains(&cp) {
                if esc.get(i + 6) == Some(&b'\\')
                    && esc.get(i + 7) == Some(&b'u')
                    && let Some(lo) = hex4(esc, i + 8)
                    && (0xDC00..0xE000).contains(&lo)
                {
                    ch = char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
                    len = 12;
                }
            } else {
                ch = char::from_u32(cp);
            }
            let ch = ch.unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            i += len;
            continue;
        }
        out.push(b'\\');
        i += 1;
    }
}

/// Sorts and merges overlapping spans (the earliest, then longest, wins the label).
pub(crate) fn merge(spans: &mut Vec<Span>) {
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans.drain(..) {
        if let Some(last) = out.last_mut()
            && s.start < last.end
        {
            last.end = last.end.max(s.end);
            continue;
        }
        out.push(s);
    }
    *spans = out;
}

/// Byte ranges of placeholders already present in `text`: exactly
/// `[REDACTED:<id>:<8 hex>]` with an id of `[a-z0-9-]{1,64}`, so a stray `[REDACTED:` cannot
/// shield a real secret that follows it.
pub(crate) fn placeholder_ranges(text: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let pre = crate::PLACEHOLDER_PREFIX.as_bytes();
    for s in memchr::memmem::find_iter(text, pre) {
        let mut i = s + pre.len();
        let id_start = i;
        while i < text.len()
            && i - id_start < 64
            && (text[i].is_ascii_lowercase() || text[i].is_ascii_digit() || text[i] == b'-')
        {
            i += 1;
        }
        if i == id_start || text.get(i) != Some(&b':') {
            continue;
        }
        let h = i + 1;
        let ok = text.get(h..h + 8).is_some_and(|x| {
            x.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        }) && text.get(h + 8) == Some(&b']');
        if ok {
            v.push((s, h + 9));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_maps_offsets() {
        let esc = br#"a\nb\u0041\ud83d\ude00c\\"#;
        let (d, starts) = unescape(esc);
        assert_eq!(d, "a\nbA\u{1F600}c\\".as_bytes());
        assert_eq!(starts.len(), d.len() + 1);
        assert_eq!(starts[1], 1); // \n
        assert_eq!(starts[3], 4); // \u0041
        assert_eq!(starts[4], 10); // surrogate pair start
        assert_eq!(starts[8], 22); // c
        assert_eq!(*starts.last().unwrap(), esc.len());
    }

    proptest::proptest! {
        /// The decoded bytes equal [`unescape_into`]'s (a separate loop), and the map gives
        /// each decoded byte the offset of the escape or plain byte it comes from.
        #[test]
        fn unescape_agrees_with_unescape_into_and_maps_each_byte(
            esc in proptest::collection::vec(
                proptest::sample::select(b"ab\\\"nut0Dd8e".to_vec()),
                0..80,
            )
        ) {
            let (d, starts) = unescape(&esc);
            let mut into = Vec::new();
            unescape_into(&esc, &mut into);
            proptest::prop_assert_eq!(&d, &into);
            proptest::prop_assert_eq!(starts.len(), d.len() + 1);
            proptest::prop_assert_eq!(starts.last(), Some(&esc.len()));
            proptest::prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
            for (k, &at) in starts[..d.len()].iter().enumerate() {
                // A decoded byte is its own source byte, or comes from an escape.
                proptest::prop_assert!(esc[at] == d[k] || esc[at] == b'\\');
            }
        }
    }

    #[test]
    fn placeholder_words_in_any_case() {
        for v in [
            "YOUR_API_KEY",
            "your-token-here",
            "Example123",
            "sk-EXAMPLE-key",
            "changeMe42",
            "abc****def",
            "PROCESS.ENV.X",
            "${X}",
            "a{{b}}",
            "xXxXkey",
            "Redacted",
            "None",
            "NULL",
            "Password",
            "f(x)",
        ] {
            assert!(is_placeholder(v.as_bytes()), "{v}");
        }
        for v in [
            "Zq8x2Lm4Vt7Rk9Pw3Hs6",
            "hunter22",
            "nonexistent",
            "secrets",
            "yours",
        ] {
            assert!(!is_placeholder(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn only_exact_placeholders_are_shielded() {
        assert_eq!(
            placeholder_ranges(b"x [REDACTED:github-pat:0a1b2c3d] y"),
            vec![(2, 32)]
        );
        assert!(placeholder_ranges(b"[REDACTED: ghp_x ]").is_empty());
        assert!(placeholder_ranges(b"[REDACTED:a:0a1b2c3]").is_empty());
        assert!(placeholder_ranges(b"[REDACTED:A:0a1b2c3d]").is_empty());
    }

    #[test]
    fn credential_validator() {
        assert!(credential_ok(b"SECRET_TOKEN", b"sk-test-1234567890abcdef"));
        assert!(credential_ok(b"password", b"hunter22"));
        assert!(!credential_ok(b"api_key", b"${API_KEY}"));
        assert!(!credential_ok(b"api_key", b"$API_KEY"));
        assert!(!credential_ok(b"apiKey", b"process.env.OPENAI_KEY"));
        assert!(!credential_ok(b"token", b"<YOUR_TOKEN>"));
        assert!(!credential_ok(b"token", b"xxxxxxxxxxxxxxxx"));
        assert!(!credential_ok(
            b"token",
            b"0b9c2f3e-8a1d-4e5f-9a6b-7c8d9e0f1a2b"
        ));
        assert!(!credential_ok(
            b"token",
            b"da39a3ee5e6b4b0d3255bfef95601890afd80709"
        ));
        assert!(!credential_ok(b"integrity_token", b"sha512-abcDEF123+/="));
        assert!(!credential_ok(b"totalTokens", b"123456"));
        assert!(!credential_ok(b"sessionKey", b"agent:main:main"));
        assert!(!credential_ok(b"tokenizer", b"cl100k_base"));
        assert!(!credential_ok(b"SECRET_FILE", b"db-secret-v2"));
    }
}
