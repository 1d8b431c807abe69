//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4), weighted.
//!
//! Each backend has a permutation of the `M` table slots derived from its identity (address and
//! port) alone: `offset = h1(id) mod M`, `skip = h2(id) mod (M − 1) + 1`, the j-th preference
//! `(offset + j·skip) mod M`. Backends take turns claiming their next preferred empty slot until
//! the table is full. `M` is prime, so every permutation visits every slot.
//!
//! **Weights** change only how often a backend gets a turn: turns are dealt by smooth weighted
//! round robin (each turn, every backend gains its weight; the richest takes the turn and pays the
//! total), so after `t` turns every backend has had its weighted share of `t` to within one turn.
//! With equal weights this is plain round robin, which is taken as a fast path (same output).
//!
//! **Determinism**: the table depends only on the set of (identity, weight) pairs and `M`: the
//! builder takes backends in canonical order (sorted by identity, which [`crate::service`]
//! guarantees), hashes are [`crate::hash::stable`], ties break by position. Two nodes given the
//! same backend set build the same table byte for byte.
//!
//! Not hot path (built by the table builder); [`MaglevTable::lookup`] is O(1) and is.

use crate::hash;

/// Sentinel for a slot not yet claimed during the build.
const EMPTY: u16 = u16::MAX;

/// The largest number of backends one table can hold (slot entries are `u16`; one value is the
/// build sentinel).
pub const MAX_BACKENDS: usize = EMPTY as usize;

/// The default table size (the paper's M, a prime).
pub const DEFAULT_SIZE: u32 = 65_537;

/// Primes offered for automatically sized tables, smallest first.
const SIZES: [u32; 12] =
    [251, 509, 1_021, 2_039, 4_093, 8_191, 16_381, 32_749, 65_537, 131_071, 262_139, 524_287];

/// The smallest offered prime at least 100 × `backends` (the paper's rule of thumb for a
/// disruption and imbalance under 1 %), capped at the largest offered size.
pub fn size_for(backends: usize) -> u32 {
    let want = (backends as u64).saturating_mul(100);
    SIZES.iter().copied().find(|&m| u64::from(m) >= want).unwrap_or(SIZES[SIZES.len() - 1])
}

/// Whether `m` is prime (trial division; only used to validate configured sizes).
pub fn is_prime(m: u32) -> bool {
    if m < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(m) {
        if m.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// One backend as the builder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Identity bytes: the backend's 16-byte address followed by its big-endian port.
    pub id: [u8; 18],
    /// Relative weight; 0 members take no slots.
    pub weight: u32,
    /// What the table stores for this member (its index in the service's backend list).
    pub index: u16,
}

/// Why a table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// `M` is not prime.
    SizeNotPrime(u32),
    /// More backends than slots, or than [`MAX_BACKENDS`].
    TooManyBackends(usize),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::SizeNotPrime(m) => write!(f, "Maglev table size {m} is not prime"),
            BuildError::TooManyBackends(n) => write!(f, "{n} backends do not fit a Maglev table"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A built lookup table: `M` slots, each naming a member by its `index`. Immutable and shared:
/// a table reused by the next generation is not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    entries: std::sync::Arc<[u16]>,
}

impl MaglevTable {
    /// Builds the table for `members` (canonical order, see the module doc) with `m` slots.
    ///
    /// Members of weight 0 take no slots; if every weight is 0 the table is empty and
    /// [`Self::lookup`] answers `None`.
    pub fn build(members: &[Member], m: u32) -> Result<MaglevTable, BuildError> {
        if !is_prime(m) {
            return Err(BuildError::SizeNotPrime(m));
        }
        let live: Vec<&Member> = members.iter().filter(|b| b.weight > 0).collect();
        if live.len() > MAX_BACKENDS || live.len() > m as usize {
            return Err(BuildError::TooManyBackends(live.len()));
        }
        if live.is_empty() {
            return Ok(MaglevTable { entries: std::sync::Arc::new([]) });
        }
        let n = live.len();
        let mut skip = Vec::with_capacity(n);
        let mut pos = Vec::with_capacity(n);
        for b in &live {
            pos.push(hash::reduce(hash::bytes(0x6d61_676c_6576_3031, &b.id), m));
            skip.push(hash::reduce(hash::bytes(0x6d61_676c_6576_3032, &b.id), m - 1) + 1);
        }
        let mut entries = vec![EMPTY; m as usize].into_boxed_slice();
        let mut turns = Turns::new(live.iter().map(|b| b.weight));
        for _ in 0..m {
            let i = turns.next();
            let mut c = pos[i];
            while entries[c as usize] != EMPTY {
                c += skip[i];
                if c >= m {
                    c -= m;
                }
            }
            entries[c as usize] = live[i].index;
            c += skip[i];
            if c >= m {
                c -= m;
            }
            pos[i] = c;
        }
        Ok(MaglevTable { entries: entries.into() })
    }

    /// A table from its slots, as decoded from a table image: accepted only if the size is 0 or
    /// prime and `valid` holds for every entry.
    pub fn from_entries(entries: Vec<u16>, valid: impl Fn(u16) -> bool) -> Option<MaglevTable> {
        let ok = (entries.is_empty() || u32::try_from(entries.len()).is_ok_and(is_prime))
            && entries.iter().all(|&e| valid(e));
        ok.then(|| MaglevTable { entries: entries.into() })
    }

    /// Table size `M` (0 for an empty table).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no slots (every member had weight 0).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The member index for a flow hash.
    #[inline(always)]
    pub fn lookup(&self, hash: u64) -> Option<u16> {
        if self.entries.is_empty() {
            return None;
        }
        Some(self.entries[hash::reduce(hash, self.entries.len() as u32) as usize])
    }

    /// The raw slots.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }
}

/// Deals turns by smooth weighted round robin (nginx's SWRR), plain round robin when all
/// weights are equal (which SWRR reduces to).
struct Turns {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
    equal: bool,
    next_rr: usize,
}

impl Turns {
    fn new(weights: impl Iterator<Item = u32>) -> Turns {
        let weights: Vec<i64> = weights.map(i64::from).collect();
        let total = weights.iter().sum();
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        Turns { current: vec![0; weights.len()], weights, total, equal, next_rr: 0 }
    }

    #[inline]
    fn next(&mut self) -> usize {
        if self.equal {
            let i = self.next_rr;
            self.next_rr = if i + 1 == self.weights.len() { 0 } else { i + 1 };
            return i;
        }
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(i: u16, weight: u32) -> Member {
        let mut id = [0u8; 18];
        id[10] = 0xff;
        id[11] = 0xff;
        id[12] = 198;
        id[13] = 18;
        id[14] = (i >> 8) as u8;
        id[15] = i as u8;
        id[16..18].copy_from_slice(&8080u16.to_be_bytes());
        Member { id, weight, index: i }
    }

    fn counts(t: &MaglevTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &e in t.entries() {
            c[e as usize] += 1;
        }
        c
    }

    #[test]
    fn sizes() {
        assert!(is_prime(65_537) && is_prime(251) && !is_prime(65_536) && !is_prime(1));
        assert!(SIZES.iter().all(|&m| is_prime(m)));
        assert_eq!(size_for(1), 251);
        assert_eq!(size_for(3), 509);
        assert_eq!(size_for(100), 16_381);
        assert_eq!(size_for(10_000), 524_287);
        assert_eq!(MaglevTable::build(&[member(0, 1)], 100), Err(BuildError::SizeNotPrime(100)));
    }

    #[test]
    fn every_slot_filled_and_lookup_in_range() {
        let ms: Vec<Member> = (0..7).map(|i| member(i, 1)).collect();
        let t = MaglevTable::build(&ms, 251).unwrap();
        assert_eq!(t.len(), 251);
        assert!(t.entries().iter().all(|&e| e < 7));
        for h in 0..1000u64 {
            assert!(t.lookup(hash::words(0, &[h])).unwrap() < 7);
        }
    }

    #[test]
    fn zero_weights() {
        let t = MaglevTable::build(&[member(0, 0), member(1, 0)], 251).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(42), None);
        let t = MaglevTable::build(&[member(0, 0), member(1, 3)], 251).unwrap();
        assert!(t.entries().iter().all(|&e| e == 1));
    }

    #[test]
    fn same_set_same_bytes() {
        let ms: Vec<Member> = (0..10).map(|i| member(i, 1 + u32::from(i % 3))).collect();
        let a = MaglevTable::build(&ms, DEFAULT_SIZE).unwrap();
        let b = MaglevTable::build(&ms, DEFAULT_SIZE).unwrap();
        assert_eq!(a, b);
        // Pinned fingerprint: a change here means nodes of different versions disagree.
        let fp = hash::stable(&a.entries().iter().flat_map(|e| e.to_le_bytes()).collect::<Vec<u8>>());
        assert_eq!(fp, PINNED_FINGERPRINT);
    }

    const PINNED_FINGERPRINT: u64 = 2_309_685_011_083_610_368;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Each backend owns within one slot of its weighted share M·w/W.
        #[test]
        fn balance_within_one_entry(weights in prop::collection::vec(1u32..=10, 1..60),
                                    m in prop::sample::select(vec![251u32, 1_021, 4_093, 65_537])) {
            prop_assume!(weights.len() <= m as usize);
            let ms: Vec<Member> = weights.iter().enumerate().map(|(i, &w)| member(i as u16, w)).collect();
            let t = MaglevTable::build(&ms, m).unwrap();
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            for (i, c) in counts(&t, ms.len()).into_iter().enumerate() {
                let share = f64::from(m) * f64::from(weights[i]) / total as f64;
                prop_assert!((c as f64 - share).abs() <= 1.0, "backend {i}: {c} slots, share {share:.2}");
            }
        }

        /// Removing one of N backends at M = 65537 moves at most 1 % of the slots that did not
        /// belong to it.
        #[test]
        fn disruption_under_one_percent(n in 2usize..=100, gone in any::<prop::sample::Index>()) {
            let ms: Vec<Member> = (0..n).map(|i| member(i as u16, 1)).collect();
            let before = MaglevTable::build(&ms, DEFAULT_SIZE).unwrap();
            let g = gone.index(n) as u16;
            let rest: Vec<Member> = ms.iter().copied().filter(|m| m.index != g).collect();
            let after = MaglevTable::build(&rest, DEFAULT_SIZE).unwrap();
            let (mut others, mut moved) = (0usize, 0usize);
            for (a, b) in before.entries().iter().zip(after.entries()) {
                if *a != g {
                    others += 1;
                    if a != b {
                        moved += 1;
                    }
                }
            }
            let frac = moved as f64 / others as f64;
            prop_assert!(frac <= 0.01, "n={n}: {moved}/{others} = {frac:.4} of other slots moved");
        }
    }
}
