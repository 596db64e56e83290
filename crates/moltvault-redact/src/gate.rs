//! Stage A: the raw-byte gate deciding which records (and which rules) need a closer look.
//!
//! Long keywords (≥ 4 bytes) go into one Aho-Corasick searcher (Teddy when there are at most
//! 64 of them); 3-byte keywords are searched with `memmem` and confirmed by their rules'
//! regexes on a window around the hit; contextual keywords (`token`, `password`…) count only
//! when an assignment-shaped value follows. An escape detector (`\u00XX` of printable ASCII,
//! `\/`) sends the record to every rule, since escapes could hide a keyword.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;

use crate::rules::Rule;

#[derive(Debug, Clone)]
enum Pat {
    Keyword { rules: Vec<usize>, context: bool },
    Escape,
}

/// The prefilter built from a rule set and literal secrets.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    ac: AhoCorasick,
    pats: Vec<Pat>,
    short: Vec<(memmem::Finder<'static>, Vec<usize>)>,
    slash: memmem::Finder<'static>,
    always: Vec<usize>,
    /// Per rule: its matches contain one of its keywords (see [`keyword_inside`]).
    local: Vec<bool>,
    n_rules: usize,
    pub(crate) literals: Option<AhoCorasick>,
}

/// The outcome of the gate for one record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    pub rules: Vec<bool>,
    pub all: bool,
    pub literal: bool,
    pub any: bool,
    /// Raw offsets of the keyword hits of local rules, ascending.
    pub hits: Vec<usize>,
    /// Whether every string must be examined (escapes, literals, a rule whose keyword can
    /// sit outside its match), not only the strings holding a hit.
    pub spread: bool,
}

impl Candidates {
    pub fn wants(&self, rule: usize) -> bool {
        self.all || self.rules.get(rule).copied().unwrap_or(false)
    }

    /// Whether the raw range `lo..hi` of a record needs stage B.
    pub fn hit_in(&self, lo: usize, hi: usize) -> bool {
        if self.spread {
            return true;
        }
        let i = self.hits.partition_point(|&h| h < lo);
        i < self.hits.len() && self.hits[i] < hi
    }
}

/// Escape markers in the Teddy searcher (≥ 4 bytes; `\/` has its own memmem finder since a
/// 2-byte pattern would weaken Teddy's fingerprints for every record).
const ESCAPES: &[&str] = &["\\u00"];

impl Gate {
    pub fn new(rules: &[Rule], literal_forms: &[Vec<u8>]) -> Gate {
        let mut long: Vec<(String, Vec<usize>, bool)> = Vec::new();
        let mut short: Vec<(String, Vec<usize>)> = Vec::new();
        let mut always = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.keywords.is_empty() {
                always.push(i);
            }
            for k in &r.keywords {
                if k.len() >= 4 {
                    match long.iter_mut().find(|(kw, _, _)| kw == k) {
                        Some((_, v, ctx)) => {
                            v.push(i);
                            *ctx &= r.context;
                        }
                        None => long.push((k.clone(), vec![i], r.context)),
                    }
                } else {
                    match short.iter_mut().find(|(kw, _)| kw == k) {
                        Some((_, v)) => v.push(i),
                        None => short.push((k.clone(), vec![i])),
                    }
                }
            }
        }
        let mut pats: Vec<Pat> = Vec::new();
        let mut strings: Vec<String> = Vec::new();
        for (k, rules, context) in long {
            strings.push(k);
            pats.push(Pat::Keyword { rules, context });
        }
        for e in ESCAPES {
            strings.push((*e).to_string());
            pats.push(Pat::Escape);
        }
        // Building can only fail on absurd limits; the pattern set here is small.
        #[allow(clippy::expect_used)]
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&strings)
            .expect("gate automaton builds");
        let short = short
            .into_iter()
            .map(|(k, v)| (memmem::Finder::new(k.as_bytes()).into_owned(), v))
            .collect();
        let literals = if literal_forms.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(literal_forms)
                .ok()
        };
        Gate {
            ac,
            pats,
            short,
            slash: memmem::Finder::new(b"\\/").into_owned(),
            always,
            local: rules.iter().map(keyword_inside).collect(),
            n_rules: rules.len(),
            literals,
        }
    }

    /// Examines one record; `c.any` says whether it needs stage B.
    pub fn check(&self, rules: &[Rule], hay: &[u8], c: &mut Candidates) {
        c.rules.clear();
        c.rules.resize(self.n_rules, false);
        c.all = false;
        c.literal = false;
        c.any = false;
        c.hits.clear();
        c.spread = false;
        for &i in &self.always {
            c.rules[i] = true;
            c.any = true;
            c.spread = true;
        }
        for m in self.ac.find_iter(hay) {
            match &self.pats[m.pattern().as_usize()] {
                Pat::Escape => {
                    // `\u00XX` counts only for printable ASCII (2x..7x); `\/` always.
                    if matches!(hay.get(m.end()), Some(b'2'..=b'7')) {
                        c.all = true;
                        c.any = true;
                        c.spread = true;
                    }
                }
                Pat::Keyword { rules, context } => {
                    if *context && !assignment_follows(hay, m.end()) {
                        continue;
                    }
                    for &r in rules {
                        c.rules[r] = true;
                        c.spread |= !self.local[r];
                    }
                    c.hits.push(m.start());
                    c.any = true;
                }
            }
        }
        if !c.all && self.slash.find(hay).is_some() {
            c.all = true;
            c.any = true;
            c.spread = true;
        }
        for (finder, owners) in &self.short {
            for pos in finder.find_iter(hay) {
                let lo = pos.saturating_sub(160);
                let hi = (pos + 1024).min(hay.len());
                // Escapes (`\n` before a token) would defeat word boundaries: try the raw
                // window and each decoded level (JSON inside JSON), as stage B does.
                let mut level: std::borrow::Cow<'_, [u8]> =
                    std::borrow::Cow::Borrowed(&hay[lo..hi]);
                let mut hit = false;
                for depth in 0..=crate::text::MAX_DEPTH {
                    for &r in owners {
                        if c.rules[r] {
                            continue;
                        }
                        if rules[r]
                            .regex
                            .as_ref()
                            .is_some_and(|re| re.is_match(&level))
                        {
                            c.rules[r] = true;
                            c.spread |= !self.local[r];
                            hit = true;
                        }
                    }
                    if depth == crate::text::MAX_DEPTH || memchr::memchr(b'\\', &level).is_none() {
                        break;
                    }
                    level = std::borrow::Cow::Owned(crate::text::unescape(&level).0);
                }
                if hit {
                    c.any = true;
                }
                // A hit marks its string once any owner is a candidate (a superset: cheaper
                // than confirming every position).
                if owners.iter().any(|&r| c.rules[r]) {
                    c.hits.push(pos);
                }
                if owners.iter().all(|&r| c.rules[r]) {
                    // Every owner is confirmed: the later hits only mark their strings.
                    c.hits
                        .extend(finder.find_iter(&hay[pos + 1..]).map(|p| pos + 1 + p));
                    break;
                }
            }
        }
        if let Some(lit) = &self.literals
            && lit.is_match(hay)
        {
            c.literal = true;
            c.any = true;
            c.spread = true;
        }
        c.hits.sort_unstable();
    }
}

/// Whether every match of a rule contains one of its keywords, judged on its examples (each
/// regex match in each example must contain a keyword; a rule without examples, or whose
/// examples match only below an escape level, is not local). Key rules are local: their
/// keyword is in the key. A local rule needs stage B only on the strings holding a hit.
fn keyword_inside(rule: &Rule) -> bool {
    let Some(re) = &rule.regex else {
        return rule.key.is_some();
    };
    if rule.examples.is_empty() {
        return false;
    }
    rule.examples.iter().all(|ex| {
        let ex = ex.as_bytes();
        let mut any = false;
        let ok = re.find_iter(ex).all(|m| {
            any = true;
            rule.keywords
                .iter()
                .any(|k| memmem::find(m.as_bytes(), k.as_bytes()).is_some())
        });
        any && ok
    })
}

/// Whether an assignment-shaped, non-numeric value follows a contextual keyword ending at `at`:
/// `[\w.-]{0,32}` then quotes/backslashes/spaces, `=` or `:`, then a value.
fn assignment_follows(hay: &[u8], mut at: usize) -> bool {
    let n = hay.len();
    let stop = (at + 32).min(n);
    while at < stop && (hay[at].is_ascii_alphanumeric() || matches!(hay[at], b'_' | b'.' | b'-')) {
        at += 1;
    }
    let stop = (at + 8).min(n);
    while at < stop && matches!(hay[at], b'"' | b'\'' | b'\\' | b' ' | b'\t') {
        at += 1;
    }
    if at >= n || !matches!(hay[at], b'=' | b':') {
        return false;
    }
    at += 1;
    let stop = (at + 12).min(n);
    while at < stop
        && matches!(
            hay[at],
            b'"' | b'\'' | b'\\' | b' ' | b'\t' | b'=' | b'>' | b':'
        )
    {
        at += 1;
    }
    if at >= n {
        return false;
    }
    let b = hay[at];
    // Structure, and the first bytes of references and placeholders (`$VAR`, `${VAR}`,
    // `%VAR%`, `<YOUR_KEY>`, `********`, `(…)`) that every contextual rule's validator rejects.
    if matches!(
        b,
        b'{' | b'[' | b',' | b'}' | b']' | b'$' | b'%' | b'<' | b'(' | b'*'
    ) {
        return false;
    }
    // Environment lookups (`process.env.X`, `os.environ[…]`) are references too.
    if hay[at..].starts_with(b"process.env") || hay[at..].starts_with(b"os.environ") {
        return false;
    }
    if b.is_ascii_digit() {
        let mut j = at;
        while j < n && hay[j].is_ascii_digit() {
            j += 1;
        }
        return j < n && (hay[j].is_ascii_alphabetic() || matches!(hay[j], b'_' | b'-' | b':'));
    }
    // The value itself: at least 4 bytes, not a call (`f(`), not a bare lowercase identifier
    // (a variable in code); the regex validators apply the same checks.
    let mut j = at;
    let mut ident = true;
    while j < n
        && !matches!(
            hay[j],
            b' ' | b'\t'
                | b'"'
                | b'\''
                | b'\\'
                | b','
                | b';'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b'\n'
                | b'\r'
        )
    {
        ident &= hay[j].is_ascii_lowercase() || hay[j] == b'_';
        j += 1;
    }
    if j - at < 4 || (j < n && hay[j] == b'(') || (ident && j - at < 24) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_shape() {
        assert!(assignment_follows(b"TOKEN=sk-test", 5));
        assert!(assignment_follows(br#"Token":"abc12345"#, 5));
        assert!(assignment_follows(br#"Token\": \"abc12345"#, 5));
        assert!(!assignment_follows(br#"Tokens":110,"#, 5));
        assert!(!assignment_follows(br#"Token":null"#, 5));
        assert!(!assignment_follows(b"token is here", 5));
        assert!(assignment_follows(br#"token":"123abc"#, 5));
        assert!(!assignment_follows(b"password_hint = stream(this)", 8));
        assert!(!assignment_follows(b"token = value;", 5));
        assert!(assignment_follows(b"token = value42;", 5));
        assert!(!assignment_follows(b"token=<YOUR_TOKEN>", 5));
        assert!(!assignment_follows(b"password: ********", 8));
        assert!(!assignment_follows(
            br#"apiKey": process.env.ANTHROPIC_API_KEY"#,
            6
        ));
        assert!(!assignment_follows(b"api_key=${OPENAI_API_KEY}", 7));
        assert!(!assignment_follows(b"SECRET=$(cat /run/secret)", 6));
    }
}

#[cfg(test)]
mod locality {
    use super::*;

    #[test]
    fn only_rules_keyed_by_a_nearby_word_are_record_wide() {
        let set = crate::RuleSet::builtin();
        let wide: Vec<&str> = set
            .rules()
            .iter()
            .filter(|r| !keyword_inside(r))
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(wide, ["discord-bot-token", "twilio-api-key"]);
    }
}
