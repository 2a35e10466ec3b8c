//! A set of offsets `0..=last` (up to 2^128 of them) whose memory grows with how
//! fragmented the set is, not with its range.
//!
//! Offsets are grouped in chunks of 4096. A chunk with nothing set is not stored; a
//! chunk with everything set is not stored either, but covered by a run in
//! `full_runs`; only chunks that are partly set hold a 512-byte bitmap. Handing out
//! addresses lowest-first therefore keeps one partial chunk and one run, whatever the
//! number of addresses, and finding the lowest free offset skips a run of full chunks
//! in one step.

use std::collections::BTreeMap;

const CHUNK_SHIFT: u32 = 12;
const CHUNK_BITS: u128 = 1 << CHUNK_SHIFT;
const WORDS: usize = (CHUNK_BITS / 64) as usize;

/// One partly set chunk: 64 words of bits, plus a summary bit per full word.
#[derive(Clone, PartialEq, Eq)]
struct Chunk {
    words: [u64; WORDS],
    /// Bit `i` is set when `words[i]` is all ones.
    full_words: u64,
    count: u32,
}

impl Chunk {
    fn empty() -> Box<Chunk> {
        Box::new(Chunk {
            words: [0; WORDS],
            full_words: 0,
            count: 0,
        })
    }

    /// A chunk with its first `cap` bits set (a full chunk being taken apart).
    fn filled(cap: u32) -> Box<Chunk> {
        let mut c = Chunk::empty();
        for bit in 0..cap {
            c.set(bit);
        }
        c
    }

    fn get(&self, bit: u32) -> bool {
        self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    /// Set `bit`; false if it was set already.
    fn set(&mut self, bit: u32) -> bool {
        let w = (bit / 64) as usize;
        let mask = 1u64 << (bit % 64);
        if self.words[w] & mask != 0 {
            return false;
        }
        self.words[w] |= mask;
        if self.words[w] == u64::MAX {
            self.full_words |= 1 << w;
        }
        self.count += 1;
        true
    }

    /// Clear `bit`; false if it was clear already.
    fn clear(&mut self, bit: u32) -> bool {
        let w = (bit / 64) as usize;
        let mask = 1u64 << (bit % 64);
        if self.words[w] & mask == 0 {
            return false;
        }
        self.words[w] &= !mask;
        self.full_words &= !(1 << w);
        self.count -= 1;
        true
    }

    /// The lowest clear bit in `lo..=hi`.
    fn first_clear(&self, lo: u32, hi: u32) -> Option<u32> {
        let (wlo, whi) = (lo / 64, hi / 64);
        let span = if whi - wlo == 63 {
            u64::MAX
        } else {
            ((1u64 << (whi - wlo + 1)) - 1) << wlo
        };
        let mut candidates = !self.full_words & span;
        while candidates != 0 {
            let w = candidates.trailing_zeros();
            candidates &= candidates - 1;
            let mut free = !self.words[w as usize];
            if w == wlo {
                free &= u64::MAX << (lo % 64);
            }
            if w == whi && hi % 64 != 63 {
                free &= (1u64 << (hi % 64 + 1)) - 1;
            }
            if free != 0 {
                return Some(w * 64 + free.trailing_zeros());
            }
        }
        None
    }
}

/// The set. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OffsetSet {
    last: u128,
    len: u128,
    chunks: BTreeMap<u128, Box<Chunk>>,
    /// Maximal runs of full chunks: first chunk index to last chunk index.
    full_runs: BTreeMap<u128, u128>,
}

impl std::fmt::Debug for OffsetSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetSet")
            .field("last", &self.last)
            .field("len", &self.len)
            .field("partial_chunks", &self.chunks.len())
            .field("full_runs", &self.full_runs)
            .finish()
    }
}

fn split(offset: u128) -> (u128, u32) {
    (offset >> CHUNK_SHIFT, (offset & (CHUNK_BITS - 1)) as u32)
}

impl OffsetSet {
    /// An empty set over `0..=last`.
    pub(crate) fn new(last: u128) -> OffsetSet {
        OffsetSet {
            last,
            len: 0,
            chunks: BTreeMap::new(),
            full_runs: BTreeMap::new(),
        }
    }

    /// How many offsets are set.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// Bytes held on the heap, roughly: for reports and benchmarks.
    pub(crate) fn heap_bytes(&self) -> usize {
        // A B-tree entry costs about its key and value plus a share of its node.
        self.chunks.len() * (std::mem::size_of::<Chunk>() + 32)
            + self.full_runs.len() * (2 * std::mem::size_of::<u128>() + 16)
    }

    /// Number of valid offsets in chunk `ci` (the last chunk may be short).
    fn capacity(&self, ci: u128) -> u32 {
        let (last_ci, last_bit) = split(self.last);
        if ci == last_ci {
            last_bit + 1
        } else {
            CHUNK_BITS as u32
        }
    }

    /// The run of full chunks holding chunk `ci`, if any.
    fn run_of(&self, ci: u128) -> Option<(u128, u128)> {
        self.full_runs
            .range(..=ci)
            .next_back()
            .filter(|(_, &end)| end >= ci)
            .map(|(&start, &end)| (start, end))
    }

    pub(crate) fn contains(&self, offset: u128) -> bool {
        let (ci, bit) = split(offset);
        match self.chunks.get(&ci) {
            Some(chunk) => chunk.get(bit),
            None => offset <= self.last && self.run_of(ci).is_some(),
        }
    }

    /// Add `offset`; false if it was there already. `offset` must be `<= last`.
    pub(crate) fn insert(&mut self, offset: u128) -> bool {
        debug_assert!(offset <= self.last);
        let (ci, bit) = split(offset);
        if !self.chunks.contains_key(&ci) && self.run_of(ci).is_some() {
            return false;
        }
        let cap = self.capacity(ci);
        let chunk = self.chunks.entry(ci).or_insert_with(Chunk::empty);
        if !chunk.set(bit) {
            return false;
        }
        self.len += 1;
        if chunk.count == cap {
            self.chunks.remove(&ci);
            self.mark_full(ci);
        }
        true
    }

    /// Remove `offset`; false if it was not there.
    pub(crate) fn remove(&mut self, offset: u128) -> bool {
        if offset > self.last {
            return false;
        }
        let (ci, bit) = split(offset);
        if let Some((start, end)) = self.run_of(ci) {
            self.full_runs.remove(&start);
            if start < ci {
                self.full_runs.insert(start, ci - 1);
            }
            if end > ci {
                self.full_runs.insert(ci + 1, end);
            }
            self.chunks.insert(ci, Chunk::filled(self.capacity(ci)));
        }
        let Some(chunk) = self.chunks.get_mut(&ci) else {
            return false;
        };
        if !chunk.clear(bit) {
            return false;
        }
        if chunk.count == 0 {
            self.chunks.remove(&ci);
        }
        self.len -= 1;
        true
    }

    /// Record chunk `ci` as full, merging it with neighbouring runs.
    fn mark_full(&mut self, ci: u128) {
        let mut start = ci;
        let mut end = ci;
        if let Some(left) = ci.checked_sub(1).and_then(|l| self.run_of(l)) {
            self.full_runs.remove(&left.0);
            start = left.0;
        }
        if let Some(right_end) = ci.checked_add(1).and_then(|r| self.full_runs.remove(&r)) {
            end = right_end;
        }
        self.full_runs.insert(start, end);
    }

    /// The lowest offset in `from..=to` that is not in the set.
    pub(crate) fn first_free(&self, from: u128, to: u128) -> Option<u128> {
        let to = to.min(self.last);
        let mut pos = from;
        while pos <= to {
            let (ci, bit) = split(pos);
            if let Some((_, end)) = self.run_of(ci) {
                pos = end.checked_add(1)?.checked_mul(CHUNK_BITS)?;
                continue;
            }
            let chunk_start = ci << CHUNK_SHIFT;
            let hi = (to - chunk_start).min(CHUNK_BITS - 1) as u32;
            match self.chunks.get(&ci) {
                None => return Some(pos),
                Some(chunk) => {
                    if let Some(free) = chunk.first_clear(bit, hi) {
                        return Some(chunk_start + u128::from(free));
                    }
                }
            }
            pos = ci.checked_add(1)?.checked_mul(CHUNK_BITS)?;
        }
        None
    }

    /// The set as maximal runs `(first, last)`, in order.
    pub(crate) fn runs(&self) -> Vec<(u128, u128)> {
        let mut out: Vec<(u128, u128)> = Vec::new();
        let mut push = |a: u128, b: u128| match out.last_mut() {
            Some(prev) if prev.1.checked_add(1) == Some(a) => prev.1 = b,
            _ => out.push((a, b)),
        };
        let mut runs = self.full_runs.iter().peekable();
        let mut chunks = self.chunks.iter().peekable();
        loop {
            let take_run = match (runs.peek(), chunks.peek()) {
                (Some((rs, _)), Some((ci, _))) => rs < ci,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_run {
                if let Some((&s, &e)) = runs.next() {
                    let last = (e << CHUNK_SHIFT) + u128::from(self.capacity(e) - 1);
                    push(s << CHUNK_SHIFT, last);
                }
            } else if let Some((&ci, chunk)) = chunks.next() {
                let base = ci << CHUNK_SHIFT;
                let mut bit = 0;
                while bit < CHUNK_BITS as u32 {
                    if chunk.get(bit) {
                        let first = bit;
                        while bit < CHUNK_BITS as u32 && chunk.get(bit) {
                            bit += 1;
                        }
                        push(base + u128::from(first), base + u128::from(bit - 1));
                    } else {
                        bit += 1;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Check every query against a plain set.
    fn agree(set: &OffsetSet, model: &BTreeSet<u128>, last: u128) {
        assert_eq!(set.len(), model.len() as u128);
        for off in 0..=last.min(20_000) {
            assert_eq!(set.contains(off), model.contains(&off), "offset {off}");
        }
        let expected = (0..=last).find(|o| !model.contains(o));
        assert_eq!(set.first_free(0, last), expected);
    }

    #[test]
    fn fills_a_small_range_and_reports_exhaustion() {
        let mut set = OffsetSet::new(9);
        for i in 0..10 {
            assert_eq!(set.first_free(0, 9), Some(i));
            assert!(set.insert(i));
        }
        assert_eq!(set.first_free(0, 9), None);
        assert!(set.chunks.is_empty(), "a full chunk keeps no bitmap");
        assert!(set.remove(4));
        assert_eq!(set.first_free(0, 9), Some(4));
        assert!(!set.remove(4));
    }

    #[test]
    fn full_chunks_merge_into_runs_and_split_again() {
        let last = 5 * CHUNK_BITS - 1;
        let mut set = OffsetSet::new(last);
        let mut model = BTreeSet::new();
        for off in 0..=last {
            set.insert(off);
            model.insert(off);
        }
        assert_eq!(set.full_runs.len(), 1);
        assert!(set.chunks.is_empty());
        assert_eq!(set.runs(), vec![(0, last)]);
        for off in [CHUNK_BITS * 2 + 7, 0, last] {
            set.remove(off);
            model.remove(&off);
            agree(&set, &model, last);
        }
        assert_eq!(set.first_free(1, last), Some(CHUNK_BITS * 2 + 7));
        assert_eq!(set.runs().len(), 2);
    }

    #[test]
    fn huge_ranges_cost_nothing_until_used() {
        let mut set = OffsetSet::new(u128::MAX);
        assert_eq!(
            set.first_free(u128::MAX - 1, u128::MAX),
            Some(u128::MAX - 1)
        );
        assert!(set.insert(u128::MAX));
        assert!(set.contains(u128::MAX));
        assert_eq!(set.first_free(u128::MAX, u128::MAX), None);
        assert_eq!(set.runs(), vec![(u128::MAX, u128::MAX)]);
        assert!(set.heap_bytes() < 1024);
    }

    #[test]
    fn first_free_honours_both_bounds() {
        let mut set = OffsetSet::new(10_000);
        for off in 100..=200 {
            set.insert(off);
        }
        assert_eq!(set.first_free(100, 200), None);
        assert_eq!(set.first_free(150, 10_000), Some(201));
        assert_eq!(set.first_free(99, 99), Some(99));
        assert_eq!(set.first_free(300, 299), None);
    }
}
