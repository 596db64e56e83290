//! A fused slim Teddy: several literal sets searched in one pass over a record.
//!
//! The gate searches three literal sets (rare literals, contextual keywords, short anchors).
//! Run as three `aho_corasick::packed` searches, each block of the record is loaded and split
//! into nibbles three times, and every hit (frequent for the decoy-rich keywords) leaves Teddy's
//! loop and restarts a search. Here each 32-byte block is read once for all sets (four
//! overlapping unaligned loads, one per fingerprint byte, instead of Teddy's shifts across
//! lanes), the slim Teddy bucket masks of every set are computed from the same nibbles, two
//! blocks share one branch, and candidates are verified in place, reporting
//! `(set, pattern, start, end)` without restarting anything.
//!
//! Each set keeps the semantics of a leftmost-first packed search of its own: hits within a
//! set are non-overlapping, leftmost first, and at one position the earliest pattern wins.
//! Buckets are assigned as `aho_corasick::packed` assigns them (patterns sharing the low
//! nibbles of their fingerprint share a bucket; the k-th new group goes to bucket `7 - k % 8`),
//! so the gate's bucket layout (`gate::bucket_order`) carries over. Patterns that can match
//! at one position share their fingerprint, hence a bucket, whose patterns are tried in
//! priority order.
//!
//! Only x86_64 with AVX2 (detected at run time) gets a [`Fused`]; elsewhere the gate keeps its
//! separate searches.
// SIMD loads and stores take raw pointers; each `unsafe` block below says why it is sound.
#![allow(unsafe_code)]

/// Slim Teddy's buckets.
const BUCKETS: usize = 8;

/// The most literal sets one scan fuses.
pub(crate) const MAX_SETS: usize = 3;

/// The longest fingerprint (bytes of each literal checked by the masks).
const FP: usize = 4;

/// The farthest an assignment screen looks (see [`Fused::screen_assignments`]).
pub(crate) const MAX_REACH: usize = 64;

/// A pattern of a bucket, with its first (up to 4) bytes as a little-endian word.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    len: u32,
    word: u32,
    /// The bits of `word` the pattern fills (all when it is 4 bytes or longer).
    mask: u32,
}

/// The first (up to) 4 bytes of `b` as a little-endian word, zero-padded.
#[inline]
fn word(b: &[u8]) -> u32 {
    match b.first_chunk::<4>() {
        Some(w) => u32::from_le_bytes(*w),
        None => {
            let mut w = [0u8; 4];
            w[..b.len()].copy_from_slice(b);
            u32::from_le_bytes(w)
        }
    }
}

/// One literal set: its literals, their buckets and the nibble masks of the buckets.
#[derive(Debug, Clone)]
struct Set {
    lits: Vec<Vec<u8>>,
    /// Per bucket: its patterns in priority order.
    buckets: [Vec<Entry>; BUCKETS],
    /// Per fingerprint byte `j`: the buckets accepting each low nibble there (bit `b` =
    /// bucket `b`); all ones beyond the fingerprint.
    lo: [[u8; 16]; FP],
    /// The same for high nibbles.
    hi: [[u8; 16]; FP],
    /// See [`Fused::screen_assignments`]: hits are reported only where `=` or `:` lies
    /// within this many bytes after the fingerprint.
    screen: Option<usize>,
}

impl Set {
    fn new(lits: &[Vec<u8>]) -> Option<Set> {
        let n = lits.iter().map(Vec::len).min()?.min(FP);
        if n == 0 {
            return None;
        }
        let mut buckets: [Vec<Entry>; BUCKETS] = Default::default();
        let mut groups: Vec<(Vec<u8>, usize)> = Vec::new();
        for (id, lit) in lits.iter().enumerate() {
            let lonybs: Vec<u8> = lit[..n].iter().map(|b| b & 0xF).collect();
            let bucket = match groups.iter().find(|(k, _)| *k == lonybs) {
                Some(&(_, b)) => b,
                None => {
                    let b = BUCKETS - 1 - id % BUCKETS;
                    groups.push((lonybs, b));
                    b
                }
            };
            let short = lit.len().min(4);
            buckets[bucket].push(Entry {
                id: u32::try_from(id).ok()?,
                len: u32::try_from(lit.len()).ok()?,
                word: word(&lit[..short]),
                mask: u32::MAX >> (8 * (4 - short)),
            });
        }
        let mut lo = [[0xFF; 16]; FP];
        let mut hi = [[0xFF; 16]; FP];
        for j in 0..n {
            lo[j] = [0; 16];
            hi[j] = [0; 16];
        }
        for (b, ids) in buckets.iter().enumerate() {
            for e in ids {
                for (j, &byte) in lits[e.id as usize][..n].iter().enumerate() {
                    lo[j][usize::from(byte & 0xF)] |= 1 << b;
                    hi[j][usize::from(byte >> 4)] |= 1 << b;
                }
            }
        }
        Some(Set {
            lits: lits.to_vec(),
            buckets,
            lo,
            hi,
            screen: None,
        })
    }

    /// Whether the screen (if any) lets a candidate at `start` through: an `=` or `:` in
    /// `hay[start + FP..start + FP + reach]` (cut at the end of `hay`).
    #[inline]
    fn screened_in(&self, hay: &[u8], start: usize) -> bool {
        let Some(reach) = self.screen else {
            return true;
        };
        let lo = (start + FP).min(hay.len());
        let hi = (start + FP + reach).min(hay.len());
        memchr::memchr2(b'=', b':', &hay[lo..hi]).is_some()
    }

    /// The first pattern (by priority) of the buckets in `bits` matching at `start`.
    #[inline]
    fn verify(&self, hay: &[u8], start: usize, mut bits: u8) -> Option<(usize, usize)> {
        let rest = &hay[start..];
        let w = word(rest);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // Patterns matching at one position share a bucket: the first match is the one.
            for e in &self.buckets[b] {
                let len = e.len as usize;
                if w & e.mask == e.word
                    && rest.len() >= len
                    && (len <= 4 || rest[4..len] == self.lits[e.id as usize][4..])
                {
                    return Some((e.id as usize, start + len));
                }
            }
        }
        None
    }
}

/// Up to [`MAX_SETS`] literal sets searched together (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Fused {
    sets: Vec<Set>,
}

impl Fused {
    /// Builds the scanner, or `None` when this CPU lacks AVX2, there are no sets or more
    /// than [`MAX_SETS`], or a set is empty or holds an empty literal.
    pub fn new(sets: &[Vec<Vec<u8>>]) -> Option<Fused> {
        if !avx2() || sets.is_empty() || sets.len() > MAX_SETS {
            return None;
        }
        let sets = sets
            .iter()
            .map(|s| Set::new(s))
            .collect::<Option<Vec<_>>>()?;
        Some(Fused { sets })
    }

    /// Makes set `set` report only hits followed by an assignment: an `=` or `:` within
    /// `reach` (at most [`MAX_REACH`]) bytes after the first 4 bytes of the hit. The scan
    /// skips other candidates before verifying them, so such a hit no longer hides a later
    /// overlapping one of its set: the caller asks for this only for sets whose literals
    /// cannot overlap, and whose hits it would reject without such an assignment anyway.
    pub fn screen_assignments(&mut self, set: usize, reach: usize) {
        if let Some(s) = self.sets.get_mut(set)
            && (1..=MAX_REACH).contains(&reach)
        {
            s.screen = Some(reach);
        }
    }

    /// Calls `f(set, pattern, start, end)` for every hit: per set, leftmost first and
    /// non-overlapping, as a leftmost-first search of that set alone would report them.
    /// Hits of one set come in ascending order; hits of different sets interleave.
    #[inline]
    pub fn each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a `Fused` exists only where `avx2()` held when it was built.
            unsafe { x86::each(self, hay, &mut f) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            scalar(self, hay, &mut f)
        }
    }
}

/// Whether this CPU runs the AVX2 loop.
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The same search, one position at a time (a reference for the tests, and the body of
/// [`Fused::each`] where no AVX2 loop exists, which `Fused::new` never lets happen).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn scalar(fused: &Fused, hay: &[u8], f: &mut impl FnMut(usize, usize, usize, usize)) {
    let mut next = [0usize; MAX_SETS];
    for start in 0..hay.len() {
        for (s, set) in fused.sets.iter().enumerate() {
            if start < next[s] || !set.screened_in(hay, start) {
                continue;
            }
            if let Some((id, end)) = set.verify(hay, start, 0xFF) {
                f(s, id, start, end);
                next[s] = end;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256i, _mm_loadu_si128, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16, _mm256_storeu_si256,
        _mm256_testz_si256,
    };

    use super::{FP, Fused, Set};

    /// Bytes each block reads: 32 positions plus the rest of the last fingerprint.
    const SPAN: usize = 32 + FP - 1;

    /// One set's nibble tables, broadcast to both lanes.
    #[derive(Clone, Copy)]
    struct Masks {
        lo: [__m256i; FP],
        hi: [__m256i; FP],
        /// Whether the fingerprint is 4 bytes (shorter ones skip the last table pair).
        four: bool,
    }

    #[target_feature(enable = "avx2")]
    fn table(t: &[u8; 16]) -> __m256i {
        // SAFETY: `t` holds the 16 bytes an unaligned 128-bit load reads.
        let v = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
        _mm256_broadcastsi128_si256(v)
    }

    #[target_feature(enable = "avx2")]
    fn masks(set: &Set) -> Masks {
        Masks {
            lo: std::array::from_fn(|j| table(&set.lo[j])),
            hi: std::array::from_fn(|j| table(&set.hi[j])),
            four: set.lo[FP - 1] != [0xFF; 16] || set.hi[FP - 1] != [0xFF; 16],
        }
    }

    /// The candidate buckets of every set for the 32 positions starting at `w[0]` (byte `i`
    /// of set `s`'s vector: the buckets of `s` whose fingerprint matches at position `i`).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn candidates<const N: usize>(m: &[Masks; N], w: &[u8; SPAN]) -> [__m256i; N] {
        let nib = _mm256_set1_epi8(0x0F);
        let v: [__m256i; FP] = std::array::from_fn(|j| {
            assert!(j < FP);
            // SAFETY: `j + 32 <= SPAN`, so the 32 bytes read lie within `w`.
            unsafe { _mm256_loadu_si256(w.as_ptr().add(j).cast()) }
        });
        let lo: [__m256i; FP] = std::array::from_fn(|j| _mm256_and_si256(v[j], nib));
        let hi: [__m256i; FP] =
            std::array::from_fn(|j| _mm256_and_si256(_mm256_srli_epi16::<4>(v[j]), nib));
        std::array::from_fn(|s| {
            let m = &m[s];
            let mut c = _mm256_and_si256(
                _mm256_shuffle_epi8(m.lo[0], lo[0]),
                _mm256_shuffle_epi8(m.hi[0], hi[0]),
            );
            for j in 1..FP - 1 {
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(m.lo[j], lo[j]));
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(m.hi[j], hi[j]));
            }
            if m.four {
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(m.lo[FP - 1], lo[FP - 1]));
                c = _mm256_and_si256(c, _mm256_shuffle_epi8(m.hi[FP - 1], hi[FP - 1]));
            }
            c
        })
    }

    /// Whether any set has a candidate.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn any<const N: usize>(c: &[__m256i; N]) -> bool {
        let mut a = _mm256_setzero_si256();
        for x in c {
            a = _mm256_or_si256(a, *x);
        }
        _mm256_testz_si256(a, a) == 0
    }

    /// Verifies the candidates of the block of positions `at..at + 32` (those below
    /// `hay.len()`), reporting hits past each set's previous hit.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    fn verify<const N: usize, F: FnMut(usize, usize, usize, usize)>(
        sets: &[&Set; N],
        next: &mut [usize; N],
        c: &[__m256i; N],
        hay: &[u8],
        at: usize,
        ops: &mut Ops,
        f: &mut F,
    ) {
        let left = hay.len() - at;
        let live = if left >= 32 {
            u32::MAX
        } else {
            (1u32 << left) - 1
        };
        let zero = _mm256_setzero_si256();
        for s in 0..N {
            // Bit i: position `at + i` has a candidate bucket.
            let mut bits = !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(c[s], zero)) as u32) & live;
            let skip = next[s].saturating_sub(at);
            if skip >= 32 {
                continue;
            }
            bits &= u32::MAX << skip;
            if bits == 0 {
                continue;
            }
            if let Some(reach) = sets[s].screen {
                bits = screen(sets[s], hay, at, reach, bits, ops);
                if bits == 0 {
                    continue;
                }
            }
            let mut buckets = [0u8; 32];
            // SAFETY: `buckets` holds the 32 bytes an unaligned 256-bit store writes.
            unsafe { _mm256_storeu_si256(buckets.as_mut_ptr().cast(), c[s]) };
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let start = at + i;
                if start < next[s] {
                    continue;
                }
                if let Some((id, stop)) = sets[s].verify(hay, start, buckets[i]) {
                    f(s, id, start, stop);
                    next[s] = stop;
                }
            }
        }
    }

    /// How many bytes from a block's start [`operators`] reads: two blocks, the fingerprint
    /// and the longest reach.
    const OPS_SPAN: usize = 160;

    /// The `=` and `:` among the [`OPS_SPAN`] bytes from `at`, as bits `0..160` of `(lo, hi)`.
    /// `at + OPS_SPAN <= hay.len()`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn operators(hay: &[u8], at: usize) -> (u128, u128) {
        assert!(at + OPS_SPAN <= hay.len());
        let (eq, colon) = (_mm256_set1_epi8(b'=' as i8), _mm256_set1_epi8(b':' as i8));
        let mut w = [0u128; 2];
        for k in 0..OPS_SPAN / 32 {
            // SAFETY: `at + OPS_SPAN <= hay.len()`: the 32 bytes at `at + 32 * k` lie in `hay`.
            let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(at + 32 * k).cast()) };
            let hit = _mm256_or_si256(_mm256_cmpeq_epi8(v, eq), _mm256_cmpeq_epi8(v, colon));
            w[k / 4] |= u128::from(_mm256_movemask_epi8(hit) as u32) << (32 * (k % 4));
        }
        (w[0], w[1])
    }

    /// Whether the operator bits `ops` hold one within the screen window of a candidate at
    /// `at + i` (`i < 64`): bits `i + FP..i + FP + reach`, `1 <= reach <= MAX_REACH`.
    #[inline]
    fn operator_within((lo, hi): (u128, u128), i: usize, reach: usize) -> bool {
        // `FP <= p <= 67`, so both shifts stay below 128, and `p + reach <= 131 < 160`.
        let p = i + FP;
        let w = (lo >> p) | (hi << (128 - p));
        w as u64 & (u64::MAX >> (64 - reach)) != 0
    }

    /// The operator bitmap of the [`OPS_SPAN`] bytes from a block (or block pair) start,
    /// computed at most once for it, by whichever of the skip test and the verification
    /// needs it first.
    struct Ops {
        at: usize,
        bits: Option<(u128, u128)>,
    }

    impl Ops {
        fn new(at: usize) -> Ops {
            Ops { at, bits: None }
        }

        /// Whether an `=` or `:` lies within `reach` bytes after the fingerprint of a
        /// candidate at `pos` (`self.at <= pos < self.at + 64`) of `set`.
        #[target_feature(enable = "avx2")]
        #[inline]
        fn near(&mut self, set: &Set, hay: &[u8], pos: usize, reach: usize) -> bool {
            if self.at + OPS_SPAN > hay.len() {
                return set.screened_in(hay, pos);
            }
            let (at, bits) = (self.at, &mut self.bits);
            let ops = *bits.get_or_insert_with(|| operators(hay, at));
            operator_within(ops, pos - at, reach)
        }
    }

    /// The candidates among `bits` (positions `at + i`) that the set's assignment screen
    /// lets through: those with an `=` or `:` within `reach` bytes after their fingerprint.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn screen(set: &Set, hay: &[u8], at: usize, reach: usize, mut bits: u32, ops: &mut Ops) -> u32 {
        let mut kept = 0;
        while bits != 0 {
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            if ops.near(set, hay, at + i as usize, reach) {
                kept |= 1 << i;
            }
        }
        kept
    }

    /// Whether every candidate of the two blocks at `ops.at` is one the assignment screen
    /// drops (so verifying them would report nothing): no set without a screen has a
    /// candidate, and no candidate of a screened set has an `=` or `:` within its reach.
    /// Answers `false` where it cannot tell cheaply (fewer than [`OPS_SPAN`] bytes left).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn all_screened_out<const N: usize>(
        sets: &[&Set; N],
        both: &[__m256i; N],
        ca: &[__m256i; N],
        cb: &[__m256i; N],
        hay: &[u8],
        ops: &mut Ops,
    ) -> bool {
        if ops.at + OPS_SPAN > hay.len() {
            return false;
        }
        let zero = _mm256_setzero_si256();
        for s in 0..N {
            let Some(reach) = sets[s].screen else {
                if _mm256_testz_si256(both[s], both[s]) == 0 {
                    return false;
                }
                continue;
            };
            let bits = |c: __m256i| !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(c, zero)) as u32);
            let mut cand = u64::from(bits(ca[s])) | (u64::from(bits(cb[s])) << 32);
            while cand != 0 {
                let i = cand.trailing_zeros() as usize;
                cand &= cand - 1;
                if ops.near(sets[s], hay, ops.at + i, reach) {
                    return false;
                }
            }
        }
        true
    }

    /// The AVX2 body of [`Fused::each`].
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn each<F: FnMut(usize, usize, usize, usize)>(
        fused: &Fused,
        hay: &[u8],
        f: &mut F,
    ) {
        match fused.sets.as_slice() {
            [a] => scan::<1, F>([a], hay, f),
            [a, b] => scan::<2, F>([a, b], hay, f),
            [a, b, c] => scan::<3, F>([a, b, c], hay, f),
            _ => unreachable!("Fused::new takes 1 to MAX_SETS sets"),
        }
    }

    #[target_feature(enable = "avx2")]
    fn scan<const N: usize, F: FnMut(usize, usize, usize, usize)>(
        sets: [&Set; N],
        hay: &[u8],
        f: &mut F,
    ) {
        let m: [Masks; N] = std::array::from_fn(|s| masks(sets[s]));
        let mut next = [0usize; N];
        let len = hay.len();
        let mut at = 0;
        // Two blocks a step, one branch for both.
        while at + 32 + SPAN <= len {
            let w: &[u8; 32 + SPAN] = hay[at..at + 32 + SPAN].try_into().expect("2 blocks");
            let (a, b) = (w.first_chunk::<SPAN>(), w.last_chunk::<SPAN>());
            let (Some(a), Some(b)) = (a, b) else {
                unreachable!("SPAN < 32 + SPAN")
            };
            let (ca, cb) = (candidates(&m, a), candidates(&m, b));
            let both: [__m256i; N] = std::array::from_fn(|s| _mm256_or_si256(ca[s], cb[s]));
            if any(&both) {
                // One operator bitmap for the pair, shared by the skip test and both blocks.
                let mut ops = Ops::new(at);
                if !all_screened_out(&sets, &both, &ca, &cb, hay, &mut ops) {
                    if any(&ca) {
                        verify(&sets, &mut next, &ca, hay, at, &mut ops, f);
                    }
                    if any(&cb) {
                        verify(&sets, &mut next, &cb, hay, at + 32, &mut ops, f);
                    }
                }
            }
            at += 64;
        }
        while at + SPAN <= len {
            let w: &[u8; SPAN] = hay[at..at + SPAN].try_into().expect("SPAN bytes");
            let c = candidates(&m, w);
            if any(&c) {
                verify(&sets, &mut next, &c, hay, at, &mut Ops::new(at), f);
            }
            at += 32;
        }
        // The tail (fewer than SPAN bytes): the same blocks over a zero-padded copy; the
        // padding only adds candidates, which verification against `hay` rejects.
        if at < len {
            let mut pad = [0u8; 32 + SPAN];
            pad[..len - at].copy_from_slice(&hay[at..]);
            let mut k = 0;
            while at + k < len {
                let w: &[u8; SPAN] = pad[k..k + SPAN].try_into().expect("SPAN bytes");
                let c = candidates(&m, w);
                if any(&c) {
                    verify(&sets, &mut next, &c, hay, at + k, &mut Ops::new(at + k), f);
                }
                k += 32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::packed::{Config, MatchKind};
    use proptest::prelude::*;

    type Hits = Vec<Vec<(usize, usize, usize)>>;

    /// The separate searches the fused scan must equal: per set, the gate's packed
    /// leftmost-first search, or its automaton fallback where packed searches refuse a set.
    enum Search {
        Packed(aho_corasick::packed::Searcher),
        Ac(aho_corasick::AhoCorasick),
    }

    struct Oracle {
        searches: Vec<Search>,
        fused: Option<Fused>,
    }

    impl Oracle {
        fn new(sets: &[Vec<Vec<u8>>]) -> Oracle {
            let searches = sets
                .iter()
                .map(|lits| {
                    match Config::new()
                        .match_kind(MatchKind::LeftmostFirst)
                        .builder()
                        .extend(lits)
                        .build()
                    {
                        Some(s) => Search::Packed(s),
                        None => Search::Ac(
                            aho_corasick::AhoCorasick::builder()
                                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                                .build(lits)
                                .expect("automaton"),
                        ),
                    }
                })
                .collect();
            Oracle {
                searches,
                fused: Fused::new(sets),
            }
        }

        /// Every set's hits as the separate searches report them, per set in order.
        fn reference(&self, hay: &[u8]) -> Hits {
            self.searches
                .iter()
                .map(|s| match s {
                    Search::Packed(s) => s
                        .find_iter(hay)
                        .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                        .collect(),
                    Search::Ac(s) => s
                        .find_iter(hay)
                        .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                        .collect(),
                })
                .collect()
        }

        /// The fused scan's and the scalar reference's hits, and the separate searches'.
        fn compare(&self, hay: &[u8]) -> Option<(Hits, Hits, Hits)> {
            let f = self.fused.as_ref()?;
            let mut fused = vec![Vec::new(); f.sets.len()];
            f.each(hay, |s, id, a, b| fused[s].push((id, a, b)));
            let mut slow = vec![Vec::new(); f.sets.len()];
            scalar(f, hay, &mut |s, id, a, b| slow[s].push((id, a, b)));
            Some((fused, slow, self.reference(hay)))
        }

        fn check(&self, hay: &[u8]) {
            if let Some((fused, slow, want)) = self.compare(hay) {
                assert_eq!(fused, want, "{:?}", String::from_utf8_lossy(hay));
                assert_eq!(slow, want);
            }
        }
    }

    /// The gate's three literal sets for the built-in rules.
    fn gate_sets() -> &'static [Vec<Vec<u8>>] {
        static SETS: std::sync::OnceLock<Vec<Vec<Vec<u8>>>> = std::sync::OnceLock::new();
        SETS.get_or_init(|| {
            let set = crate::RuleSet::builtin();
            crate::gate::Gate::new(set.rules(), &[]).literal_sets()
        })
    }

    fn gate_oracle() -> &'static Oracle {
        static ORACLE: std::sync::OnceLock<Oracle> = std::sync::OnceLock::new();
        ORACLE.get_or_init(|| Oracle::new(gate_sets()))
    }

    #[test]
    fn gate_literals_split_across_blocks() {
        let sets = gate_sets();
        assert_eq!(sets.len(), 3);
        let oracle = gate_oracle();
        assert!(oracle.fused.is_some() || !avx2());
        for lits in sets {
            for lit in lits {
                for pre in 0..40 {
                    for post in [0, 1, 3, 7, 40] {
                        let mut hay = vec![b'x'; pre];
                        hay.extend_from_slice(lit);
                        hay.extend_from_slice(&b"=\"abcd1234xyz\"".repeat(4)[..post]);
                        oracle.check(&hay);
                        // The same after 32 to 70 bytes of another literal's fragments.
                        let mut h2 = b"tokenauth_passw".repeat(5)[..pre + 30].to_vec();
                        h2.extend_from_slice(&hay);
                        oracle.check(&h2);
                    }
                }
            }
        }
    }

    #[test]
    fn overlapping_and_prioritised_patterns() {
        let sets = vec![
            vec![b"abcd".to_vec(), b"abcdef".to_vec(), b"bcde".to_vec()],
            vec![b"abcdef".to_vec(), b"abcd".to_vec(), b"cdef".to_vec()],
            vec![b"ab".to_vec(), b"ba".to_vec(), b"a".to_vec()],
        ];
        let oracle = Oracle::new(&sets);
        for hay in [
            &b"abcdefabcdef"[..],
            b"ababababa",
            b"",
            b"a",
            b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxabcdefgh",
        ] {
            oracle.check(hay);
        }
    }

    #[test]
    fn no_fused_scan_for_unsupported_sets() {
        assert!(Fused::new(&[]).is_none());
        assert!(Fused::new(&[vec![]]).is_none());
        assert!(Fused::new(&[vec![b"".to_vec()]]).is_none());
        assert!(Fused::new(&vec![vec![b"ab".to_vec()]; MAX_SETS + 1]).is_none());
    }

    /// Haystack pieces: the gate's literals, fragments of them, assignment punctuation,
    /// random bytes.
    fn piece(lits: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let n = lits.len();
        let lits2 = lits.clone();
        prop_oneof![
            3 => (0..n).prop_map(move |i| lits[i].clone()),
            2 => (0..n, 0usize..8, 0usize..8).prop_map(move |(i, a, b)| {
                let l = &lits2[i];
                let a = a.min(l.len());
                let b = b.clamp(a, l.len());
                l[a..b].to_vec()
            }),
            2 => prop::sample::select(vec![
                &b"\""[..], b"\\", b"=", b":", b" ", b"\\\"", b"\\u00", b"\n", b"_", b"-"
            ])
            .prop_map(<[u8]>::to_vec),
            2 => prop::collection::vec(any::<u8>(), 0..6),
            1 => prop::collection::vec(b'a'..=b'z', 0..40),
        ]
    }

    fn hay_of(lits: Vec<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(piece(lits), 0..max).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn equals_the_packed_searches(hay in hay_of(gate_sets().concat(), 80)) {
            if let Some((fused, slow, want)) = gate_oracle().compare(&hay) {
                prop_assert_eq!(&fused, &want);
                prop_assert_eq!(&slow, &want);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn equals_the_packed_searches_on_long_records(
            hay in hay_of(gate_sets().concat(), 900)
        ) {
            if let Some((fused, _, want)) = gate_oracle().compare(&hay) {
                prop_assert_eq!(fused, want);
            }
        }

        #[test]
        fn equals_the_packed_searches_on_random_sets(
            sets in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(b'a'..=b'h', 1..7), 1..40),
                1..=MAX_SETS,
            ),
            seed in prop::collection::vec(0usize..1000, 0..60),
        ) {
            // Haystacks from the sets' own literals and fragments, over a small alphabet.
            let all = sets.concat();
            let mut hay = Vec::new();
            for x in seed {
                let l = &all[x % all.len()];
                hay.extend_from_slice(&l[..l.len() - (x / 100) % l.len().min(3)]);
                if x % 7 == 0 {
                    hay.push(b'a' + (x % 9) as u8);
                }
            }
            if let Some((fused, slow, want)) = Oracle::new(&sets).compare(&hay) {
                prop_assert_eq!(&fused, &want);
                prop_assert_eq!(&slow, &want);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// With the assignment screen on the contextual keywords' set (whose literals cannot
        /// overlap), the scan reports exactly the hits of the unscreened searches that have
        /// an `=` or `:` within the reach after their first 4 bytes, in the 128-byte blocks
        /// and in the tail alike.
        #[test]
        fn the_assignment_screen_drops_exactly_the_hits_without_an_operator(
            hay in hay_of(gate_sets()[1].clone(), 120),
            reach in prop_oneof![Just(49usize), 1usize..=MAX_REACH],
        ) {
            let oracle = gate_oracle();
            let Some(mut f) = oracle.fused.clone() else { return Ok(()) };
            f.screen_assignments(1, reach);
            let mut fused = vec![Vec::new(); f.sets.len()];
            f.each(&hay, |s, id, a, b| fused[s].push((id, a, b)));
            let mut slow = vec![Vec::new(); f.sets.len()];
            scalar(&f, &hay, &mut |s, id, a, b| slow[s].push((id, a, b)));
            let mut want = oracle.reference(&hay);
            want[1].retain(|&(_, a, _)| {
                let w = &hay[(a + FP).min(hay.len())..(a + FP + reach).min(hay.len())];
                w.contains(&b'=') || w.contains(&b':')
            });
            prop_assert_eq!(&fused, &want);
            prop_assert_eq!(&slow, &want);
        }
    }

    /// Assignment shapes and surroundings that the gate's hit judgments look at.
    const CONTEXT: &[&[u8]] = &[
        b"=\"Zq8x2Lm4Vt7Rk9Pw3Hs6\"",
        b"\": \"abc12345\"",
        b": 123abc",
        b"=$(cat x)",
        b"_count = parse(x);",
        b"0123456789",
        b"://bob:hunter22@h.example/",
        b"-or-v1-0123456789abcdef0123456789abcdef",
        // Split so that scanners of this repository do not flag a bot-token shape.
        concat!("1234567890", ":AA", "abcdefghijklmnopqrstuvwxyz0123456").as_bytes(),
        b"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
        b"\\n",
        b"\\u0041",
        b"mixkey",
        b"sk-",
    ];

    /// A user rule gated by a short anchor and a rare literal: whether its `sk-` hits mark
    /// their strings depends on the `mixkey` hits being judged first, as separate passes
    /// judge them.
    const MIXED: &str = r#"
[[rules]]
id = "mixed-user-key"
description = "a key with a short and a long keyword"
regex = '''(?P<secret>sk-[a-z0-9]{20})'''
keywords = ["sk-", "mixkey"]
examples = ["sk-{{hex:20}}"]
negative_examples = ["sk-short"]
"#;

    fn record() -> impl Strategy<Value = Vec<u8>> {
        let ctx = prop::sample::select(CONTEXT.to_vec()).prop_map(<[u8]>::to_vec);
        prop::collection::vec(
            prop_oneof![3 => piece(gate_sets().concat()), 2 => ctx],
            0..120,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The gate decides the same with the fused scan as with separate passes: hits are
        /// judged in the same order (short anchors after the keyword passes), and the hits
        /// the assignment screen skips are those the assignment check would reject.
        #[test]
        fn gate_candidates_do_not_change(hay in record()) {
            use std::sync::OnceLock;
            static GATES: OnceLock<(crate::RuleSet, crate::gate::Gate, crate::gate::Gate)> =
                OnceLock::new();
            let (set, fused, apart) = GATES.get_or_init(|| {
                let set = crate::RuleSet::with_user_file(std::path::Path::new("u.toml"), MIXED)
                    .expect("user rules");
                let fused = crate::gate::Gate::new(set.rules(), &[]);
                assert!(fused.literal_sets().len() == 3);
                let mut apart = fused.clone();
                apart.without_fused();
                (set, fused, apart)
            });
            let (mut a, mut b) = (Default::default(), Default::default());
            fused.check(set.rules(), &hay, &mut a);
            apart.check(set.rules(), &hay, &mut b);
            let view = |c: &crate::gate::Candidates| {
                (c.rules.clone(), c.all, c.literal, c.any, c.hits.clone(), c.spread, c.khits.clone())
            };
            prop_assert_eq!(view(&a), view(&b));
        }
    }

    /// Times each packed pass alone, all three, and the fused scan over a JSONL corpus (as
    /// dumped by `engine dump`): `MV_CORPUS=c16.jsonl cargo test --release -p
    /// moltvault-redact --lib teddy::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run in release by hand"]
    #[allow(clippy::print_stdout)]
    fn measure() {
        use std::time::Instant;
        let Some(path) = std::env::var_os("MV_CORPUS") else {
            return;
        };
        let data = std::fs::read(path).unwrap();
        let recs: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let sets = gate_sets();
        let packed: Vec<_> = sets
            .iter()
            .map(|l| {
                Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .builder()
                    .extend(l)
                    .build()
                    .unwrap()
            })
            .collect();
        let fused = Fused::new(sets).unwrap();
        let time = |name: &str, f: &dyn Fn(&[u8]) -> usize| {
            let mut best = f64::MAX;
            let mut n = 0;
            for _ in 0..7 {
                let t = Instant::now();
                n = recs.iter().map(|r| f(r)).sum::<usize>();
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{name}: {:.2} ms, {:.2} GB/s, {n} hits",
                best * 1e3,
                data.len() as f64 / best / 1e9
            );
        };
        for (i, p) in packed.iter().enumerate() {
            time(&format!("packed pass {i}"), &|r| p.find_iter(r).count());
        }
        time("packed all three", &|r| {
            packed.iter().map(|p| p.find_iter(r).count()).sum()
        });
        // Candidate positions per set, and blocks with any candidate.
        let (mut cand, mut blocks, mut busy) = (vec![0usize; sets.len()], 0usize, 0usize);
        for r in &recs {
            for (k, _) in r.iter().enumerate().step_by(32) {
                blocks += 1;
                let mut hit = false;
                for (s, set) in fused.sets.iter().enumerate() {
                    for i in k..(k + 32).min(r.len()) {
                        let mut b = 0xFFu8;
                        for j in 0..FP {
                            let x = r.get(i + j).copied().unwrap_or(0);
                            b &= set.lo[j][usize::from(x & 0xF)] & set.hi[j][usize::from(x >> 4)];
                        }
                        if b != 0 {
                            cand[s] += 1;
                            hit = true;
                        }
                    }
                }
                busy += usize::from(hit);
            }
        }
        println!("candidates per set {cand:?}, blocks {blocks}, with a candidate {busy}");
        time("fused", &|r| {
            let mut n = 0;
            fused.each(r, |_, _, _, _| n += 1);
            n
        });
    }
}
