//! Stage A: the raw-byte gate deciding which records (and which rules) need a closer look.
//!
//! Keywords are searched in three packed (Teddy) passes, each with at most 64 literals, each
//! ordered so that literals with different fingerprints land in different Teddy buckets:
//!
//! - *rare* literals (vendor prefixes such as `ghp_`, `AKIA`, `PRIVATE KEY`), ≥ 4 bytes, at
//!   most 32 for the built-in rules (slim Teddy, 32 bytes per step);
//! - *contextual* keywords (`oken`, `assword`, `ecret`…, searched whole: Teddy matches their
//!   first 4 bytes, verification the rest); a hit counts only when an assignment-shaped value
//!   follows, and the fused scan drops candidates with no `=` or `:` within reach before
//!   verifying them;
//! - *short* (3-byte) anchors (`sk-`, `xox`, `:AA`, `://`…) and the escape markers,
//!   anchors first screened by a byte check of their surroundings (a word boundary, a digit,
//!   an `@` ahead) and then confirmed by their rules' regexes on a window around the hit.
//!
//! Where the CPU has AVX2, the three passes run as one fused scan ([`crate::teddy`]) that
//! reports the same hits without restarting a search at each one.
//!
//! An escape detector (`\u00XX` of printable ASCII, `:\/\/`) sends the record to every rule,
//! since an escape could hide a keyword.

use aho_corasick::packed::{Config, MatchKind as PackedKind, Searcher};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;

use crate::rules::Rule;
use crate::teddy::{Fused, MAX_SETS};

/// How a short anchor's surroundings are screened before its rules' regexes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quick {
    /// No screen: always run the regexes.
    None,
    /// The anchor starts a word (in the text, or right after an escape such as `\n`).
    WordStart,
    /// A digit precedes the anchor (Telegram's `<bot id>:AA…`).
    DigitBefore,
    /// An `@` follows within the userinfo (`scheme://user:pass@host`).
    AtAhead,
}

#[derive(Debug, Clone)]
enum Pat {
    /// A keyword of these rules; contextual ones count only before an assignment, after at
    /// most `run` more name bytes.
    Keyword {
        rules: Vec<usize>,
        context: bool,
        run: usize,
        /// Index into [`Gate::pat_rules`].
        id: u32,
    },
    /// `\u00`: counts for printable ASCII.
    Unicode,
    /// An escaped `://` (`:\/\/`, or `:\\\/` one level deeper): URLs may hide behind it.
    Slash,
    /// A short anchor confirmed by the regexes of its rules.
    Short {
        rules: Vec<usize>,
        quick: Quick,
        /// Index into [`Gate::pat_rules`].
        id: u32,
    },
}

/// One literal search over a record.
#[derive(Debug, Clone)]
enum Finder {
    Packed(Searcher),
    Ac(AhoCorasick),
}

/// A literal of a pass and what its hits mean.
type Entry = (Vec<u8>, Pat);

#[derive(Debug, Clone)]
struct Pass {
    finder: Finder,
    pats: Vec<Pat>,
    literals: Vec<Vec<u8>>,
}

impl Pass {
    /// Builds a pass; literals whose first bytes share low nibbles are grouped (Teddy keeps
    /// such a group in one bucket), and the groups are ordered so that each Teddy bucket
    /// holds similar prefixes (see [`bucket_order`]).
    fn new(mut entries: Vec<(Vec<u8>, Pat)>) -> Option<Pass> {
        if entries.is_empty() {
            return None;
        }
        let n = entries
            .iter()
            .map(|(k, _)| k.len())
            .min()
            .unwrap_or(1)
            .min(4);
        let lonybs = |k: &[u8]| -> Vec<u8> { k[..n].iter().map(|b| b & 0xF).collect() };
        // Literals sharing low nibbles share a Teddy bucket whatever their order.
        let mut classes: Vec<(Vec<u8>, Vec<Entry>)> = Vec::new();
        for e in entries.drain(..) {
            let l = lonybs(&e.0);
            match classes.iter_mut().find(|(k, _)| *k == l) {
                Some((_, v)) => v.push(e),
                None => classes.push((l, vec![e])),
            }
        }
        let order = {
            let firsts: Vec<Vec<&[u8]>> = classes
                .iter()
                .map(|(_, v)| v.iter().map(|(k, _)| &k[..n]).collect())
                .collect();
            bucket_order(&firsts)
        };
        let mut leaders = Vec::new();
        let mut rest = Vec::new();
        let mut classes: Vec<Option<Vec<Entry>>> =
            classes.into_iter().map(|(_, v)| Some(v)).collect();
        for c in order {
            let mut v = classes[c].take().unwrap_or_default().into_iter();
            leaders.extend(v.next());
            rest.extend(v);
        }
        leaders.extend(rest);
        let (lits, pats): (Vec<Vec<u8>>, Vec<Pat>) = leaders.into_iter().unzip();
        let packed = Config::new()
            .match_kind(PackedKind::LeftmostFirst)
            .builder()
            .extend(&lits)
            .build();
        let finder = match packed {
            Some(s) => Finder::Packed(s),
            // No Teddy on this CPU, or too many literals: a general automaton.
            None => Finder::Ac(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&lits)
                    .ok()?,
            ),
        };
        Some(Pass {
            finder,
            pats,
            literals: lits,
        })
    }

    /// How far after the first 4 bytes of a hit the `=` or `:` that [`assignment_follows`]
    /// needs can lie, when every hit of this pass is judged by it (all its patterns are
    /// contextual keywords) and no two occurrences of its literals can overlap (so that
    /// skipping one changes no other hit); `None` otherwise, or when that is farther than
    /// the fused scan looks.
    fn assignment_reach(&self) -> Option<usize> {
        let mut reach = 0;
        for (lit, pat) in self.literals.iter().zip(&self.pats) {
            let Pat::Keyword {
                context: true, run, ..
            } = pat
            else {
                return None;
            };
            // The operator lies at most NAME_RUN + run + QUOTE_RUN bytes after the hit.
            reach = reach.max(lit.len() + NAME_RUN + run + QUOTE_RUN + 1 - 4);
        }
        let lits = &self.literals;
        let apart = lits.iter().enumerate().all(|(i, a)| {
            (1..a.len()).all(|k| !a.ends_with(&a[..k]))
                && lits[i + 1..].iter().all(|b| !overlap(a, b))
        });
        (apart && reach <= crate::teddy::MAX_REACH).then_some(reach)
    }

    /// Calls `f(pattern, start, end)` for each hit, leftmost first, non-overlapping.
    #[inline]
    fn each(&self, hay: &[u8], mut f: impl FnMut(&Pat, usize, usize)) {
        match &self.finder {
            Finder::Packed(s) => {
                for m in s.find_iter(hay) {
                    f(&self.pats[m.pattern().as_usize()], m.start(), m.end());
                }
            }
            Finder::Ac(ac) => {
                for m in ac.find_iter(hay) {
                    f(&self.pats[m.pattern().as_usize()], m.start(), m.end());
                }
            }
        }
    }
}

/// Teddy's buckets (slim: 8).
const BUCKETS: usize = 8;

/// How often each printable ASCII byte (from ` `) occurs in transcripts, per 10,000 bytes
/// (the reference session samples plus code-heavy tool output); other bytes count 1.
const BYTE_SHARE: [u16; 95] = [
    606, 1, 414, 7, 1, 1, 1, 3, 11, 11, 10, 14, 140, 171, 59, 165, //
    186, 235, 225, 158, 164, 179, 165, 150, 166, 139, 179, 11, 14, 78, 18, 4, //
    1, 28, 21, 29, 27, 37, 21, 20, 17, 39, 14, 20, 25, 21, 30, 36, //
    22, 14, 46, 32, 55, 24, 15, 21, 15, 20, 36, 7, 112, 7, 1, 28, //
    12, 455, 148, 276, 277, 644, 181, 76, 120, 317, 22, 75, 208, 210, 348, 370, //
    189, 36, 275, 340, 427, 150, 76, 62, 44, 58, 21, 28, 2, 24, 1,
];

#[cfg(test)]
/// The estimated share of text positions a Teddy bucket holding these literal prefixes
/// flags as candidates: per prefix byte, the bucket accepts every byte whose low and high
/// nibbles each occur at that place in one of its literals.
fn bucket_cost(prefixes: &[&[u8]]) -> f64 {
    let n = prefixes.iter().map(|p| p.len()).min().unwrap_or(0);
    let masks: Vec<Masks> = prefixes.iter().map(|p| masks(&p[..n])).collect();
    masks_cost(&masks, n)
}

/// Per prefix byte (at most 4): the low and high nibbles a Teddy bucket accepts there.
type Masks = [(u16, u16); 4];

/// The nibble masks of one literal prefix.
fn masks(prefix: &[u8]) -> Masks {
    let mut m = [(0, 0); 4];
    for (j, &b) in prefix.iter().take(4).enumerate() {
        m[j] = (1 << (b & 0xF), 1 << (b >> 4));
    }
    m
}

/// The estimated candidate share of a bucket holding literals with these masks, over their
/// first `n` bytes (see `bucket_cost`).
fn masks_cost(members: &[Masks], n: usize) -> f64 {
    if members.is_empty() {
        return 0.0;
    }
    (0..n.min(4))
        .map(|j| {
            let (lo, hi) = members
                .iter()
                .fold((0u16, 0u16), |(l, h), m| (l | m[j].0, h | m[j].1));
            let mut share = 0u32;
            let mut hs = hi;
            while hs != 0 {
                let h = hs.trailing_zeros() as usize;
                hs &= hs - 1;
                let mut ls = lo;
                while ls != 0 {
                    let l = ls.trailing_zeros() as usize;
                    ls &= ls - 1;
                    let i = (h << 4 | l).wrapping_sub(0x20);
                    share += u32::from(BYTE_SHARE.get(i).copied().unwrap_or(1));
                }
            }
            f64::from(share) / 10_000.0
        })
        .product()
}

/// The order in which to give Teddy its literal classes (each class: the prefixes of
/// literals sharing low nibbles, which Teddy keeps in one bucket). Teddy puts the k-th new
/// class into bucket `7 - k % 8`; classes are grouped so that each bucket holds similar
/// prefixes, which keeps its nibble masks tight and its false candidates (each verified
/// against every literal of the bucket) rare.
fn bucket_order(classes: &[Vec<&[u8]>]) -> Vec<usize> {
    let k = classes.len();
    if k <= BUCKETS {
        return (0..k).collect();
    }
    let slot_bucket = |i: usize| BUCKETS - 1 - i % BUCKETS;
    let mut cap = [0usize; BUCKETS];
    for i in 0..k {
        cap[slot_bucket(i)] += 1;
    }
    let n = classes.iter().flatten().map(|p| p.len()).min().unwrap_or(0);
    // Per class, the union of its literals' masks (they share low nibbles, not high ones).
    let class_masks: Vec<Masks> = classes
        .iter()
        .map(|c| {
            let mut u = [(0u16, 0u16); 4];
            for p in c {
                for (j, (l, h)) in masks(p).into_iter().enumerate() {
                    u[j].0 |= l;
                    u[j].1 |= h;
                }
            }
            u
        })
        .collect();
    let cost_of = |members: &[usize]| -> f64 {
        let mut m = [[(0u16, 0u16); 4]; 1];
        for &c in members {
            for j in 0..4 {
                m[0][j].0 |= class_masks[c][j].0;
                m[0][j].1 |= class_masks[c][j].1;
            }
        }
        if members.is_empty() {
            0.0
        } else {
            masks_cost(&m, n)
        }
    };
    // Greedy placement, then pairwise swaps while they lower the total.
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); BUCKETS];
    for c in 0..k {
        let best = (0..BUCKETS)
            .filter(|&b| buckets[b].len() < cap[b])
            .min_by(|&a, &b| {
                let da = cost_of(&[buckets[a].as_slice(), &[c]].concat()) - cost_of(&buckets[a]);
                let db = cost_of(&[buckets[b].as_slice(), &[c]].concat()) - cost_of(&buckets[b]);
                da.total_cmp(&db)
            })
            .unwrap_or(0);
        buckets[best].push(c);
    }
    for _ in 0..8 {
        let mut improved = false;
        for a in 0..BUCKETS {
            for b in a + 1..BUCKETS {
                for i in 0..buckets[a].len() {
                    for j in 0..buckets[b].len() {
                        let before = cost_of(&buckets[a]) + cost_of(&buckets[b]);
                        let (x, y) = (buckets[a][i], buckets[b][j]);
                        buckets[a][i] = y;
                        buckets[b][j] = x;
                        if cost_of(&buckets[a]) + cost_of(&buckets[b]) < before - 1e-12 {
                            improved = true;
                        } else {
                            buckets[a][i] = x;
                            buckets[b][j] = y;
                        }
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
    let mut next = [0usize; BUCKETS];
    (0..k)
        .map(|i| {
            let b = slot_bucket(i);
            next[b] += 1;
            buckets[b][next[b] - 1]
        })
        .collect()
}

/// The prefilter built from a rule set and literal secrets.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    passes: Vec<Pass>,
    always: Vec<usize>,
    /// Per rule: its matches contain one of its keywords (see [`keyword_inside`]).
    local: Vec<bool>,
    n_rules: usize,
    /// Per rule: how far before a keyword hit its matches can start, when every match is
    /// known to hold a keyword hit within that distance of its start (see [`reach_back`]);
    /// such rules run their regexes only around the hits.
    back: Vec<Option<usize>>,
    /// Per keyword pattern id: the rules it gates.
    pat_rules: Vec<Vec<usize>>,
    pub(crate) literals: Option<AhoCorasick>,
    /// All passes in one scan, where the CPU has AVX2 and there are at most
    /// [`MAX_SETS`] passes (see [`crate::teddy`]).
    fused: Option<Fused>,
    /// The first pass holding a short anchor: hits of the passes before it are judged as
    /// the fused scan finds them, the others after it, pass by pass.
    first_short: usize,
    /// Finds an exec result's repeated output (see [`Repeat`]); `None` when a literal holds a
    /// `"` (a hit could then cross a string's quotes, and the copy's hits could differ).
    repeat: Option<RepeatFinder>,
}

/// The raw key that starts the second copy of an exec tool's output in an OpenClaw record.
const COPY_KEY: &[u8] = br#""aggregated":""#;
/// The raw key that starts the first copy (`content[].text`).
const ORIG_KEY: &[u8] = br#""text":""#;
/// Shorter repeats are scanned twice: finding them would cost more than it saves.
const MIN_REPEAT: usize = 256;
/// How far after the end of the `"text"` string the `"aggregated"` key may start.
const REACH: usize = 512;

/// The searchers for [`COPY_KEY`] and [`ORIG_KEY`].
#[derive(Debug, Clone)]
struct RepeatFinder {
    copy: memmem::Finder<'static>,
    orig: memmem::Finder<'static>,
}

/// A string value that repeats an earlier one byte for byte: OpenClaw stores an exec tool's
/// output twice, in `content[].text` and in `details.aggregated`, so on a typical transcript
/// about 40% of the bytes are such second copies. Both ranges hold the raw (escaped) bytes
/// between the quotes; `orig + len <= copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Repeat {
    orig: usize,
    copy: usize,
    len: usize,
}

/// Ranks bytes by [`BYTE_SHARE`], so that `memmem` prefilters on the bytes rare in
/// transcripts (`x`, `q`), not on those rare in prose but everywhere in JSON (`"`, `:`).
struct TranscriptRank;

impl memchr::arch::all::packedpair::HeuristicFrequencyRank for TranscriptRank {
    fn rank(&self, byte: u8) -> u8 {
        let share = BYTE_SHARE
            .get(usize::from(byte.wrapping_sub(0x20)))
            .copied();
        // 644 (`e`) is the largest share.
        (share.unwrap_or(1) / 3).min(255) as u8
    }
}

impl RepeatFinder {
    fn new() -> RepeatFinder {
        let finder = |needle| {
            memmem::FinderBuilder::new()
                .build_forward_with_ranker(TranscriptRank, needle)
                .into_owned()
        };
        RepeatFinder {
            copy: finder(COPY_KEY),
            orig: finder(ORIG_KEY),
        }
    }

    /// The first `"text"` string of a record (of at least [`MIN_REPEAT`] bytes) that
    /// `"aggregated"` repeats exactly, its key within [`REACH`] bytes after the text's end
    /// (where OpenClaw writes it: `"}],"details":{…,"aggregated":"`). Costs a `memchr` over
    /// each `"text"` string and a `memmem` between them.
    fn find(&self, hay: &[u8]) -> Option<Repeat> {
        if hay.len() < 2 * MIN_REPEAT {
            return None;
        }
        let mut from = 0;
        for _ in 0..8 {
            let orig = from + self.orig.find(&hay[from..])? + ORIG_KEY.len();
            let end = string_end(hay, orig)?;
            from = end + 1;
            let len = end - orig;
            if len < MIN_REPEAT {
                continue;
            }
            let near = &hay[from..(from + REACH).min(hay.len())];
            let Some(k) = self.copy.find(near) else {
                continue;
            };
            let copy = from + k + COPY_KEY.len();
            if hay.get(copy..copy + len) == Some(&hay[orig..end])
                && hay.get(copy + len) == Some(&b'"')
            {
                return Some(Repeat { orig, copy, len });
            }
        }
        None
    }
}

/// The offset of the quote that closes the JSON string whose first byte is at `at`.
fn string_end(hay: &[u8], at: usize) -> Option<usize> {
    memchr::memchr_iter(b'"', hay.get(at..)?)
        .map(|q| at + q)
        .find(|&q| hay[..q].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0)
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
    /// The keyword hits with their pattern ids (for [`Gate::hit_rules`]), ascending by offset.
    pub khits: Vec<(usize, u32)>,
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

/// The most literals of a slim Teddy pass.
const SLIM: usize = 32;

/// Whether two literals can overlap in a text (one inside the other, or an end of one
/// starting the other).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    memmem::find(a, b).is_some()
        || memmem::find(b, a).is_some()
        || (1..n).any(|k| a.ends_with(&b[..k]) || b.ends_with(&a[..k]))
}

/// Escape markers searched with the rare literals. `\/` matters only where it hides the
/// `://` of a URL rule (no other keyword holds a `/`); a 2-byte `\/` literal would weaken
/// Teddy's fingerprints for every record.
const ESCAPES: &[(&str, bool)] = &[("\\u00", true), (":\\/\\/", false), (":\\\\\\/", false)];

/// The screen of a short anchor of built-in rules (whose regexes were checked against it:
/// each match starts at a word boundary, follows a digit, or holds an `@` after the anchor).
fn quick_for(anchor: &str, owners: &[usize], rules: &[Rule]) -> Quick {
    if !owners
        .iter()
        .all(|&r| rules[r].file.starts_with("builtin:"))
    {
        return Quick::None;
    }
    match anchor {
        "sk-" | "hf_" | "SG." | "AQ." | "xox" => Quick::WordStart,
        ":AA" => Quick::DigitBefore,
        "://" => Quick::AtAhead,
        _ => Quick::None,
    }
}

impl Gate {
    pub fn new(rules: &[Rule], literal_forms: &[Vec<u8>]) -> Gate {
        // keyword → (rules, all owners contextual, longest cut-off tail)
        let mut rare: Vec<(String, Vec<usize>, bool, usize)> = Vec::new();
        let mut ctx: Vec<(String, Vec<usize>, bool, usize)> = Vec::new();
        let mut short: Vec<(String, Vec<usize>)> = Vec::new();
        let mut always = Vec::new();
        let add = |list: &mut Vec<(String, Vec<usize>, bool, usize)>,
                   k: &str,
                   i: usize,
                   context: bool,
                   tail: usize| {
            match list.iter_mut().find(|(kw, ..)| kw == k) {
                Some((_, v, c, t)) => {
                    if !v.contains(&i) {
                        v.push(i);
                    }
                    *c &= context;
                    *t = (*t).max(tail);
                }
                None => list.push((k.to_string(), vec![i], context, tail)),
            }
        };
        for (i, r) in rules.iter().enumerate() {
            if r.keywords.is_empty() {
                always.push(i);
            }
            for k in &r.keywords {
                if k.len() < 4 {
                    match short.iter_mut().find(|(kw, _)| kw == k) {
                        Some((_, v)) => v.push(i),
                        None => short.push((k.clone(), vec![i])),
                    }
                } else if r.context {
                    add(&mut ctx, k, i, true, 0);
                } else {
                    add(&mut rare, k, i, false, 0);
                }
            }
        }
        // A keyword some non-contextual rule also uses is searched as a rare literal, whole.
        ctx.retain(|(k, v, ..)| {
            if let Some(hit) = rare.iter_mut().find(|(kw, ..)| kw == k) {
                hit.1.extend(v.iter().copied());
                false
            } else {
                true
            }
        });
        let keyword = |(k, rules, context, run): (String, Vec<usize>, bool, usize)| {
            (
                k.into_bytes(),
                Pat::Keyword {
                    rules,
                    context,
                    run,
                    id: 0,
                },
            )
        };
        let rare = rare.into_iter().map(keyword).collect();
        let ctx = ctx.into_iter().map(keyword).collect();
        let mut short: Vec<(Vec<u8>, Pat)> = short
            .into_iter()
            .map(|(k, owners)| {
                let quick = quick_for(&k, &owners, rules);
                (
                    k.into_bytes(),
                    Pat::Short {
                        rules: owners,
                        quick,
                        id: 0,
                    },
                )
            })
            .collect();
        // The escape markers ride with the short anchors (whose fingerprints are 3 bytes
        // anyway), which keeps the rare pass within slim Teddy's 32 literals.
        for (e, unicode) in ESCAPES {
            let p = if *unicode { Pat::Unicode } else { Pat::Slash };
            short.push((e.as_bytes().to_vec(), p));
        }
        // Slim Teddy (32 bytes a step) takes at most 32 literals, fat Teddy (16 a step) 64:
        // rare literals beyond 32 ride with the short anchors, or else with the contextual
        // keywords, while those have room (longest first; never next to a literal they could
        // overlap, which could hide a hit of it in a leftmost-first pass).
        let mut rare: Vec<(Vec<u8>, Pat)> = rare;
        let mut ctx: Vec<(Vec<u8>, Pat)> = ctx;
        let others = [&mut short, &mut ctx];
        while rare.len() > SLIM {
            let mut order: Vec<usize> = (0..rare.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(rare[i].0.len()));
            let moved = order.into_iter().find_map(|i| {
                let to = others.iter().position(|o| {
                    o.len() < SLIM && o.iter().all(|(k, _)| !overlap(k, &rare[i].0))
                })?;
                Some((i, to))
            });
            let Some((i, to)) = moved else { break };
            let e = rare.remove(i);
            others[to].push(e);
        }
        let mut passes = Vec::new();
        for entries in [rare, ctx, short] {
            // Teddy takes at most 64 literals: split larger sets.
            let mut entries: Vec<(Vec<u8>, Pat)> = entries;
            while !entries.is_empty() {
                let tail = entries.split_off(entries.len().min(64));
                passes.extend(Pass::new(entries));
                entries = tail;
            }
        }
        // Number the keyword patterns, so that hits can name their rules.
        let mut pat_rules = Vec::new();
        for pass in &mut passes {
            for pat in &mut pass.pats {
                if let Pat::Keyword { rules, id, .. } | Pat::Short { rules, id, .. } = pat {
                    *id = pat_rules.len() as u32;
                    pat_rules.push(rules.clone());
                }
            }
        }
        // A hit never crosses a quote when no literal holds one: each string's hits then
        // depend on its bytes alone, and a repeated string's hits can be copied.
        let quote_free = passes
            .iter()
            .all(|p| p.literals.iter().all(|l| !l.contains(&b'"')));
        let fused = if passes.len() <= MAX_SETS {
            let sets: Vec<Vec<Vec<u8>>> = passes.iter().map(|p| p.literals.clone()).collect();
            Fused::new(&sets).map(|mut f| {
                for (i, pass) in passes.iter().enumerate() {
                    if let Some(reach) = pass.assignment_reach() {
                        f.screen_assignments(i, reach);
                    }
                }
                f
            })
        } else {
            None
        };
        let first_short = passes
            .iter()
            .position(|p| p.pats.iter().any(|pat| matches!(pat, Pat::Short { .. })))
            .unwrap_or(passes.len());
        let local: Vec<bool> = rules.iter().map(keyword_inside).collect();
        let back = rules
            .iter()
            .zip(&local)
            .map(|(r, &l)| if l { reach_back(r) } else { None })
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
            passes,
            always,
            local,
            n_rules: rules.len(),
            back,
            pat_rules,
            literals,
            fused,
            first_short,
            repeat: quote_free.then(RepeatFinder::new),
        }
    }

    /// Examines one JSONL record (or transcript row); `c.any` says whether it needs stage B.
    /// A repeated exec output in it is read once (see [`Repeat`]).
    pub fn check_record(&self, rules: &[Rule], hay: &[u8], c: &mut Candidates) {
        let repeat = self.repeat.as_ref().and_then(|f| f.find(hay));
        self.examine(rules, hay, repeat, c);
    }

    /// Examines one text or string value; `c.any` says whether it needs stage B.
    pub fn check(&self, rules: &[Rule], hay: &[u8], c: &mut Candidates) {
        self.examine(rules, hay, None, c);
    }

    fn examine(&self, rules: &[Rule], hay: &[u8], repeat: Option<Repeat>, c: &mut Candidates) {
        c.rules.clear();
        c.rules.resize(self.n_rules, false);
        c.all = false;
        c.literal = false;
        c.any = false;
        c.hits.clear();
        c.khits.clear();
        c.spread = false;
        for &i in &self.always {
            c.rules[i] = true;
            c.any = true;
            c.spread = true;
        }
        match repeat {
            // The copy is skipped: the hits inside it are those of the first copy, moved.
            // Nothing else is lost: the copy's quotes stop every hit at its edges, and
            // the flags (escapes, confirmed rules) are the record's, set by the first copy.
            Some(Repeat { orig, copy, len }) => {
                let (h0, k0) = (c.hits.len(), c.khits.len());
                self.scan(rules, hay, 0, copy, c);
                let inside = |p: usize| (orig..orig + len).contains(&p);
                for i in h0..c.hits.len() {
                    let p = c.hits[i];
                    if inside(p) {
                        c.hits.push(p - orig + copy);
                    }
                }
                for i in k0..c.khits.len() {
                    let (p, id) = c.khits[i];
                    if inside(p) {
                        c.khits.push((p - orig + copy, id));
                    }
                }
                self.scan(rules, hay, copy + len, hay.len(), c);
            }
            None => self.scan(rules, hay, 0, hay.len(), c),
        }
        if let Some(lit) = &self.literals
            && lit.is_match(hay)
        {
            c.literal = true;
            c.any = true;
            c.spread = true;
        }
        c.hits.sort_unstable();
        c.khits.sort_unstable();
    }

    /// Runs the keyword passes over `hay[lo..hi]` (whose edges no hit crosses), judging each
    /// hit in the whole record.
    fn scan(&self, rules: &[Rule], hay: &[u8], lo: usize, hi: usize, c: &mut Candidates) {
        let mut hit = |pat: &Pat, start: usize, end: usize| {
            let (start, end) = (start + lo, end + lo);
            match pat {
                Pat::Unicode => {
                    // `\u00XX` counts only for printable ASCII (2x..7x).
                    if matches!(hay.get(end), Some(b'2'..=b'7')) {
                        c.all = true;
                        c.any = true;
                        c.spread = true;
                    }
                }
                Pat::Slash => {
                    c.all = true;
                    c.any = true;
                    c.spread = true;
                }
                Pat::Keyword {
                    rules,
                    context,
                    run,
                    id,
                } => {
                    if *context && !assignment_follows(hay, end, NAME_RUN + run) {
                        return;
                    }
                    for &r in rules {
                        c.rules[r] = true;
                        c.spread |= !self.local[r];
                    }
                    c.hits.push(start);
                    c.khits.push((start, *id));
                    c.any = true;
                }
                Pat::Short {
                    rules: owners,
                    quick,
                    id,
                } => {
                    if owners.iter().all(|&r| c.rules[r]) {
                        // Every owner is already a candidate: the hit only marks its string.
                        c.hits.push(start);
                        c.khits.push((start, *id));
                        return;
                    }
                    if !screen(*quick, hay, start, end) {
                        return;
                    }
                    if confirm(rules, owners, hay, start, c, &self.local) {
                        c.any = true;
                    }
                    // A hit marks its string once any owner is a candidate (a superset:
                    // cheaper than confirming every position).
                    if owners.iter().any(|&r| c.rules[r]) {
                        c.hits.push(start);
                        c.khits.push((start, *id));
                    }
                }
            }
        };
        let Some(fused) = &self.fused else {
            for pass in &self.passes {
                pass.each(&hay[lo..hi], &mut hit);
            }
            return;
        };
        // One scan for all passes. A short anchor's screen reads the candidates that the
        // keyword hits before it set, so hits are judged in the separate passes' order:
        // those of the passes before the first with short anchors at once (their hits only
        // set flags and push offsets, sorted later, so their order does not matter), the
        // others after the scan, pass by pass.
        let mut later: Vec<(usize, usize, usize, usize)> = Vec::new();
        fused.each(&hay[lo..hi], |pass, i, start, end| {
            if pass < self.first_short {
                hit(&self.passes[pass].pats[i], start, end);
            } else {
                later.push((pass, i, start, end));
            }
        });
        // Stable: each pass's hits stay in order.
        later.sort_by_key(|h| h.0);
        for (pass, i, start, end) in later {
            hit(&self.passes[pass].pats[i], start, end);
        }
    }

    /// Makes the gate run its passes separately, as where the CPU lacks AVX2 (for tests).
    #[cfg(test)]
    pub(crate) fn without_fused(&mut self) {
        self.fused = None;
    }

    /// The literals of each pass, in pattern order (for the fused scan's tests).
    #[cfg(test)]
    pub(crate) fn literal_sets(&self) -> Vec<Vec<Vec<u8>>> {
        self.passes.iter().map(|p| p.literals.clone()).collect()
    }

    /// Makes the gate scan repeated exec output like any other bytes (for tests).
    #[cfg(test)]
    pub(crate) fn scan_repeats(&mut self) {
        self.repeat = None;
    }

    /// The rules a keyword hit (from [`Candidates::khits`]) gates.
    pub fn hit_rules(&self, id: u32) -> &[usize] {
        &self.pat_rules[id as usize]
    }

    /// How far before a keyword hit a match of `rule` can start, when its regex may run
    /// only around its hits (`None`: it runs over whole strings).
    pub fn back(&self, rule: usize) -> Option<usize> {
        self.back.get(rule).copied().flatten()
    }
}

/// The byte screen of a short anchor at `start..end` (a superset of what its rules match, in
/// the raw text and in every decoded level of it).
fn screen(quick: Quick, hay: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match quick {
        Quick::None => true,
        Quick::WordStart => {
            // `sk-or-v1-` (OpenRouter) needs no boundary.
            if hay[start..].starts_with(b"sk-or-") {
                return true;
            }
            match start.checked_sub(1).map(|i| hay[i]) {
                None => true,
                Some(b) if !word(b) => true,
                // A word byte may end an escape that decodes to a non-word character: a
                // letter right after a backslash (`\n`, `\t`; `\\n` one level deeper), or
                // the last digit of `\uXXXX` (at any level: `\\u…`).
                Some(_) => {
                    (start >= 2 && hay[start - 2] == b'\\')
                        || memchr::memmem::find(&hay[start.saturating_sub(7)..start - 1], b"\\u")
                            .is_some()
                }
            }
        }
        Quick::DigitBefore => start > 0 && hay[start - 1].is_ascii_digit(),
        Quick::AtAhead => {
            // `[^\s/:@"'<>]{0,128}:[^\s/@"'<>]{1,256}@`: an `@` before any byte that ends
            // the userinfo (raw escapes keep a `\`, which stops nothing: a superset).
            let stop = (end + 128 + 1 + 256 + 1).min(hay.len());
            for &b in &hay[end..stop] {
                match b {
                    b'@' => return true,
                    b'/' | b'"' | b'\'' | b'<' | b'>' | b' ' | b'\t' | b'\n' | b'\r' | 0x0B
                    | 0x0C => return false,
                    _ => {}
                }
            }
            false
        }
    }
}

/// Runs the regexes of a short anchor's owners on a window around the hit at `pos`; marks
/// the owners found and returns whether any was. The raw window comes first; the decoded
/// levels (escapes such as `\n` or `\"` right before a token defeat word boundaries and
/// quotes; tokens themselves hold no escapable byte, and `\u00XX` spreads the gate) are
/// tried only when a backslash stands within 24 bytes before the anchor.
fn confirm(
    rules: &[Rule],
    owners: &[usize],
    hay: &[u8],
    pos: usize,
    c: &mut Candidates,
    local: &[bool],
) -> bool {
    let lo = pos.saturating_sub(160);
    let hi = (pos + 1024).min(hay.len());
    let escaped_before = memchr::memchr(b'\\', &hay[pos.saturating_sub(24)..pos]).is_some();
    let mut level: &[u8] = &hay[lo..hi];
    // Decoded levels alternate between two buffers.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut hit = false;
    for depth in 0..=crate::text::MAX_DEPTH {
        for &r in owners {
            if c.rules[r] {
                continue;
            }
            if rules[r].regex.as_ref().is_some_and(|re| re.is_match(level)) {
                c.rules[r] = true;
                c.spread |= !local[r];
                hit = true;
            }
        }
        if !escaped_before
            || depth == crate::text::MAX_DEPTH
            || memchr::memchr(b'\\', level).is_none()
        {
            break;
        }
        crate::text::unescape_into(level, &mut a);
        std::mem::swap(&mut a, &mut b);
        level = &b;
    }
    hit
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

/// How far before a keyword hit a match of `rule` can start, so that its regex may run only
/// from there: the longest text the regex can match before its first unbounded piece, when
/// every match of every example holds a keyword ending within that bounded head (judged on
/// the examples, as [`keyword_inside`] is). `None` means whole strings: key rules, keywords a
/// JSON escape could hide (`/`, control bytes), heads over 4 KiB, regexes whose head does not
/// hold a keyword in every example match.
fn reach_back(rule: &Rule) -> Option<usize> {
    let re = rule.regex.as_ref()?;
    if rule.examples.is_empty()
        || rule
            .keywords
            .iter()
            .any(|k| k.bytes().any(|b| !(b' '..=b'~').contains(&b) || b == b'/'))
    {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(re.as_str())
        .ok()?;
    let head = bounded_head(&hir).0;
    if head > 4096 {
        return None;
    }
    let ok = rule.examples.iter().all(|ex| {
        let ex = ex.as_bytes();
        re.find_iter(ex).all(|m| {
            let h = &ex[m.start()..(m.start() + head).min(m.end())];
            rule.keywords
                .iter()
                .any(|k| memmem::find(h, k.as_bytes()).is_some())
        })
    });
    ok.then_some(head)
}

/// The longest text a regex can match before its first unbounded piece, and whether the whole
/// regex is bounded.
fn bounded_head(h: &regex_syntax::hir::Hir) -> (usize, bool) {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Capture(c) => bounded_head(&c.sub),
        HirKind::Concat(items) => {
            let mut n = 0usize;
            for it in items {
                let (l, whole) = bounded_head(it);
                n = n.saturating_add(l);
                if !whole {
                    return (n, false);
                }
            }
            (n, true)
        }
        _ => match h.properties().maximum_len() {
            Some(m) => (m, true),
            None => (0, false),
        },
    }
}

/// The bytes of a name (`[A-Za-z0-9_.-]`), which the assignment check skips after a keyword.
const NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
        b += 1;
    }
    t
};

/// The name bytes an assignment check skips after a contextual keyword, beyond its `run`.
const NAME_RUN: usize = 32;
/// The quotes, backslashes and spaces it skips before the operator.
const QUOTE_RUN: usize = 8;

/// Whether an assignment-shaped, non-numeric value follows a contextual keyword ending at `at`:
/// `[\w.-]{0,run}` then quotes/backslashes/spaces, `=` or `:`, then a value.
fn assignment_follows(hay: &[u8], mut at: usize, run: usize) -> bool {
    let n = hay.len();
    let stop = (at + run).min(n);
    at += hay[at.min(stop)..stop]
        .iter()
        .position(|&b| !NAME_BYTE[usize::from(b)])
        .unwrap_or(stop.saturating_sub(at));
    let stop = (at + QUOTE_RUN).min(n);
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
        assert!(assignment_follows(b"TOKEN=sk-test", 5, 32));
        assert!(assignment_follows(br#"Token":"abc12345"#, 5, 32));
        assert!(assignment_follows(br#"Token\": \"abc12345"#, 5, 32));
        assert!(!assignment_follows(br#"Tokens":110,"#, 5, 32));
        assert!(!assignment_follows(br#"Token":null"#, 5, 32));
        assert!(!assignment_follows(b"token is here", 5, 32));
        assert!(assignment_follows(br#"token":"123abc"#, 5, 32));
        assert!(!assignment_follows(b"password_hint = stream(this)", 8, 32));
        assert!(!assignment_follows(b"token = value;", 5, 32));
        assert!(assignment_follows(b"token = value42;", 5, 32));
        assert!(!assignment_follows(b"token=<YOUR_TOKEN>", 5, 32));
        assert!(!assignment_follows(b"password: ********", 8, 32));
        assert!(!assignment_follows(
            br#"apiKey": process.env.ANTHROPIC_API_KEY"#,
            6,
            32
        ));
        assert!(!assignment_follows(b"api_key=${OPENAI_API_KEY}", 7, 32));
        assert!(!assignment_follows(b"SECRET=$(cat /run/secret)", 6, 32));
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
        assert_eq!(
            wide,
            [
                "discord-bot-token",
                "twilio-api-key",
                "whatsapp-key",
                "whatsapp-prekey",
                "whatsapp-pairing-code",
                "claude-oauth-token",
                "whatsapp-session"
            ]
        );
    }
}

#[cfg(test)]
mod screens {
    use super::*;

    fn gate() -> (Gate, crate::RuleSet) {
        let set = crate::RuleSet::builtin();
        (Gate::new(set.rules(), &[]), set)
    }

    fn passes(hay: &[u8]) -> bool {
        let (g, set) = gate();
        let mut c = Candidates::default();
        g.check(set.rules(), hay, &mut c);
        c.any
    }

    #[test]
    fn short_anchors_are_screened_by_their_surroundings() {
        let tail = "0123456789abcdef0123456789";
        // `sk-` inside a word (`task-…`) is not a key; after `=`, a quote or an escape it is.
        assert!(!passes(format!("task-{tail}").as_bytes()));
        assert!(passes(format!("K=sk-{tail}").as_bytes()));
        assert!(passes(format!(r#"{{"t":"out\nsk-{tail}"}}"#).as_bytes()));
        // A word byte before the anchor counts as a boundary only when it ends an escape:
        // `\n`, `\\n` one level deeper, `\u000a` (not printable: no spread) at any level.
        assert!(!passes(format!(r#"{{"t":"out\ntask-{tail}"}}"#).as_bytes()));
        assert!(passes(
            format!(r#"{{"t":"{{\"o\":\"a\\nsk-{tail}\"}}"}}"#).as_bytes()
        ));
        assert!(passes(
            format!(r#"{{"t":"out\u000ask-{tail}"}}"#).as_bytes()
        ));
        assert!(passes(
            format!(r#"{{"t":"{{\"o\":\"\\u000ask-{tail}\"}}"}}"#).as_bytes()
        ));
        // `:AA` needs the bot id's digits before it.
        assert!(!passes(b"at 10:AAxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        // `://` needs userinfo: an `@` before the host's first `/`.
        assert!(!passes(b"see https://example.com/path?q=1"));
        assert!(passes(
            b"git clone https://bob:hunter22@git.example.org/r.git"
        ));
    }

    #[test]
    fn escaped_scheme_separator_spreads_the_gate() {
        let (g, set) = gate();
        let mut c = Candidates::default();
        g.check(
            set.rules(),
            br#"{"u":"https:\/\/bob:hunter22@h.example"}"#,
            &mut c,
        );
        assert!(c.any && c.all);
    }

    /// Credential words are searched whole, so their lists spell out each form the
    /// assignment rules' names take: lower, camel and upper case, with `_`, `-` or nothing
    /// between the words.
    #[test]
    fn every_spelling_of_a_credential_name_passes() {
        for name in [
            "password",
            "PASSWORD",
            "passwd",
            "secret",
            "SECRET",
            "token",
            "TOKEN",
            "apikey",
            "apiKey",
            "APIKEY",
            "api_key",
            "API_KEY",
            "api-key",
            "accesskey",
            "accessKey",
            "ACCESSKEY",
            "access_key",
            "ACCESS_KEY",
            "access-key",
            "ACCESS-KEY",
            "privatekey",
            "privateKey",
            "PRIVATEKEY",
            "private_key",
            "PRIVATE_KEY",
            "private-key",
            "PRIVATE-KEY",
            "credentials",
            "CREDENTIALS",
            "client_secret",
            "MY_SERVICE_TOKEN",
        ] {
            let line = format!("{name}=Zq8x2Lm4Vt7Rk9Pw3Hs6");
            assert!(passes(line.as_bytes()), "{name}");
            let json = format!(r#"{{"{name}": "Zq8x2Lm4Vt7Rk9Pw3Hs6"}}"#);
            assert!(passes(json.as_bytes()), "{name} in JSON");
        }
    }

    #[test]
    fn keywords_keep_the_assignment_check() {
        // `apiKey` is searched as `piKey`; the check skips the rest of a longer name.
        assert!(passes(br#"{"apiKey": "Zq8x2Lm4Vt7Rk9Pw3Hs6"}"#));
        assert!(!passes(br#"{"apiKey": process.env.X}"#));
        assert!(!passes(b"let token_count = parse(x);"));
    }
}

#[cfg(test)]
mod windows {
    use super::*;

    #[test]
    fn contextual_and_vendor_rules_run_around_their_hits() {
        let set = crate::RuleSet::builtin();
        let g = Gate::new(set.rules(), &[]);
        let back = |id: &str| {
            let i = set.rules().iter().position(|r| r.id == id).unwrap();
            g.back(i)
        };
        // The keyword starts the match, or follows a bounded name.
        assert_eq!(back("generic-assignment"), Some(34));
        assert_eq!(back("github-pat"), Some(40));
        assert_eq!(back("generic-sk-key"), Some(4));
        assert_eq!(back("private-key"), Some(72));
        for id in [
            "authorization-header",
            "bearer-token",
            "slack-bot-token",
            "mistral-api-key",
        ] {
            assert!(back(id).is_some(), "{id}");
        }
        // Keywords outside the match, after an unbounded piece (`.eyJ` of a JWT), or
        // holding a `/` run over whole strings.
        for id in ["discord-bot-token", "twilio-api-key", "jwt", "url-password"] {
            assert_eq!(back(id), None, "{id}");
        }
    }

    #[test]
    fn bucket_order_groups_similar_prefixes() {
        // Teddy puts the k-th new class into bucket 7 - k % 8.
        let bucket_of =
            |order: &[usize], class: usize| 7 - order.iter().position(|&c| c == class).unwrap() % 8;
        let words: Vec<&[u8]> = vec![
            b"ghp_", b"AKIA", b"gho_", b"xai-", b"ghu_", b"npm_", b"ghs_", b"AIza", b"ghr_",
            b"glpa", b"pypi", b"pplx", b"ya29", b"gsk_", b"LS0t", b"PRIV", b"AGE-", b"clau",
        ];
        let classes: Vec<Vec<&[u8]>> = words.iter().map(|w| vec![*w]).collect();
        let order = bucket_order(&classes);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..words.len()).collect::<Vec<_>>());
        // The estimated candidate share is lower than with Teddy's own round robin.
        let total = |order: &[usize]| -> f64 {
            (0..8)
                .map(|b| {
                    let p: Vec<&[u8]> = (0..words.len())
                        .filter(|&c| bucket_of(order, c) == b)
                        .map(|c| words[c])
                        .collect();
                    bucket_cost(&p)
                })
                .sum()
        };
        let naive: Vec<usize> = (0..words.len()).collect();
        assert!(
            total(&order) < total(&naive) * 0.5,
            "{} {}",
            total(&order),
            total(&naive)
        );
        // GitHub's prefixes share a bucket with at most one other of them apart.
        let gh = [0, 2, 4, 6, 8].map(|c| bucket_of(&order, c));
        let most = gh
            .iter()
            .map(|b| gh.iter().filter(|x| *x == b).count())
            .max();
        assert!(most >= Some(2), "{gh:?}");
    }

    #[test]
    fn builtin_passes_fit_slim_teddy() {
        let set = crate::RuleSet::builtin();
        let g = Gate::new(set.rules(), &[]);
        assert_eq!(g.passes.len(), 3);
        for p in &g.passes {
            assert!(p.pats.len() <= SLIM, "{}", p.pats.len());
        }
        // The contextual keywords' pass alone is screened for assignments, far enough for
        // its longest keyword (`uthorization`: 12 + 32 + 8 + 1 - 4 bytes).
        let reach: Vec<Option<usize>> = g.passes.iter().map(Pass::assignment_reach).collect();
        assert_eq!(reach, [None, Some(49), None]);
        assert!(overlap(b"xx:A", b":AA") && overlap(b"foo_sk-bar", b"sk-"));
        assert!(!overlap(b"claudeAiOauth", b"sk-") && !overlap(b"ghp_", b"gho_"));
    }

    #[test]
    fn bounded_heads() {
        let head = |re: &str| {
            let hir = regex_syntax::ParserBuilder::new()
                .utf8(false)
                .build()
                .parse(re)
                .unwrap();
            bounded_head(&hir)
        };
        assert_eq!(head("abc"), (3, true));
        assert_eq!(head(r"(?P<n>ab|abcd)x{0,3}[ \t]*y"), (7, false));
        assert_eq!(head(r"(?-u:\b)(?P<s>ghp_[a-z]{36})"), (40, true));
        assert_eq!(head(r"a+b"), (0, false));
    }
}

#[cfg(test)]
mod repeats {
    use super::*;
    use moltvault_testutils::secrets::{FakeRng, contextual_secrets, decoys, provider_secrets};
    use proptest::prelude::*;

    /// An exec tool result as OpenClaw writes it: the output in `content[].text` and again in
    /// `details.aggregated`.
    fn exec_record(text: &str, aggregated: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": "message",
            "id": "9f288733",
            "message": {
                "role": "toolResult",
                "toolName": "exec",
                "content": [{"type": "text", "text": text}],
                "details": {"status": "completed", "exitCode": 0, "aggregated": aggregated, "cwd": "/w"},
            }
        }))
        .unwrap()
    }

    /// The gate and redactor with repeat skipping, and the same scanning repeats (built once:
    /// building them dominates a case in debug builds).
    struct Fixture {
        set: crate::RuleSet,
        skip: Gate,
        scan: Gate,
        redact_skip: crate::Redactor,
        redact_scan: crate::Redactor,
    }

    static FIXTURE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(|| {
        let set = crate::RuleSet::builtin();
        let skip = Gate::new(set.rules(), &[b"literal-secret-value".to_vec()]);
        assert!(skip.repeat.is_some(), "no built-in literal holds a quote");
        let mut scan = skip.clone();
        scan.scan_repeats();
        let r = || {
            crate::Redactor::new(
                &set,
                crate::RedactorOptions::new(
                    crate::Mode::All,
                    crate::FingerprintKey::from_bytes([9; 32]),
                ),
            )
            .unwrap()
        };
        Fixture {
            redact_skip: r(),
            redact_scan: r().scanning_repeats(),
            set,
            skip,
            scan,
        }
    });

    fn redact(r: &crate::Redactor, rec: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        r.redact_jsonl(rec, &mut out, &mut crate::CountSink::default())
            .unwrap();
        out
    }

    fn candidates(g: &Gate, set: &crate::RuleSet, hay: &[u8]) -> Candidates {
        let mut c = Candidates::default();
        g.check_record(set.rules(), hay, &mut c);
        c
    }

    /// The same rules and flags, and no hit the whole scan does not have. (The whole scan
    /// may hold more: an anchor whose rule became a candidate earlier in the record marks its
    /// string unconfirmed, and in the copy that happens more often; those extra hits match
    /// nothing, or the first copy would have confirmed them too.)
    fn same(a: &Candidates, b: &Candidates) -> bool {
        (&a.rules, a.all, a.literal, a.any, a.spread)
            == (&b.rules, b.all, b.literal, b.any, b.spread)
            && a.khits.iter().all(|h| b.khits.contains(h))
            && a.hits.iter().all(|h| b.hits.contains(h))
    }

    #[test]
    fn finds_the_second_copy_of_an_exec_output() {
        let out = "line with \"quotes\" and a \\ backslash\n".repeat(20);
        let rec = exec_record(&out, &out);
        let f = RepeatFinder::new();
        let r = f.find(&rec).expect("a repeat");
        assert_eq!(rec[r.orig..r.orig + r.len], rec[r.copy..r.copy + r.len]);
        assert_eq!(rec[r.copy - COPY_KEY.len()..r.copy], *COPY_KEY);
        assert_eq!(rec[r.copy + r.len], b'"');
        assert_eq!(rec[r.orig - ORIG_KEY.len()..r.orig], *ORIG_KEY);
        // Not a repeat: a differing copy, a copy that only starts like the text, a short one.
        let mut other = out.clone();
        other.replace_range(300..301, "X");
        assert_eq!(f.find(&exec_record(&out, &other)), None);
        assert_eq!(f.find(&exec_record(&out, &out[..out.len() - 1])), None);
        assert_eq!(f.find(&exec_record(&out[..100], &out[..100])), None);
    }

    #[test]
    fn a_secret_in_both_copies_marks_both() {
        let Fixture {
            set,
            skip: g,
            scan: whole,
            ..
        } = &*FIXTURE;
        let tail = "0123456789abcdef0123456789";
        let out = format!(
            "{}GITHUB_TOKEN=ghp_{tail}ab\n{}",
            "x ".repeat(300),
            "y ".repeat(300)
        );
        let rec = exec_record(&out, &out);
        let (a, b) = (candidates(g, set, &rec), candidates(whole, set, &rec));
        assert!(a.any && same(&a, &b), "{a:?}\n{b:?}");
        let r = g.repeat.as_ref().unwrap().find(&rec).unwrap();
        assert!(
            a.hits
                .iter()
                .any(|&h| (r.copy..r.copy + r.len).contains(&h))
        );
        // Both copies are redacted (the second from the first's remembered spans).
        let red = String::from_utf8(redact(&FIXTURE.redact_skip, &rec)).unwrap();
        assert!(!red.contains(tail), "{red}");
        assert_eq!(red.matches("[REDACTED:").count(), 2, "{red}");
    }

    /// Pieces of exec output: secrets of every kind, decoys, escapes, quotes, keywords.
    fn piece() -> impl Strategy<Value = String> {
        (any::<u64>(), 0usize..8).prop_map(|(seed, kind)| {
            let mut r = FakeRng::new(seed);
            match kind {
                0 => {
                    let s = provider_secrets(&mut r);
                    s[r.below(s.len())].text.clone()
                }
                1 => {
                    let s = contextual_secrets(&mut r);
                    s[r.below(s.len())].text.clone()
                }
                2 => {
                    let d = decoys(&mut r);
                    d[r.below(d.len())].clone()
                }
                3 => [
                    "\"",
                    "\\",
                    "\\\"",
                    "\n",
                    "\t",
                    "=",
                    ": ",
                    "\u{7}",
                    "é",
                    "https://u:p@h/",
                ][r.below(10)]
                .to_string(),
                4 => [
                    "token", "password", "secret", "apiKey", "sk-", "xox", ":AA", "AKIA",
                ][r.below(8)]
                .to_string(),
                _ => {
                    let n = 1 + r.below(40);
                    r.alnum(n) + " "
                }
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Skipping the repeated copy changes nothing in the redacted record, wherever
        /// secrets, escapes and keywords sit (at the copy's edges too).
        #[test]
        fn skipping_the_copy_changes_no_output(
            pieces in prop::collection::vec(piece(), 1..60),
            pad in 0usize..400,
            differ in any::<bool>(),
        ) {
            let f = &*FIXTURE;
            let out = format!("{}{}", "z".repeat(pad), pieces.concat());
            let agg = if differ { format!("{out}.") } else { out.clone() };
            let rec = exec_record(&out, &agg);
            let (a, b) = (candidates(&f.skip, &f.set, &rec), candidates(&f.scan, &f.set, &rec));
            prop_assert!(same(&a, &b), "{:?}\n{:?}", a, b);
            let (r, w) = (redact(&f.redact_skip, &rec), redact(&f.redact_scan, &rec));
            prop_assert_eq!(String::from_utf8_lossy(&r), String::from_utf8_lossy(&w));
        }
    }
}
