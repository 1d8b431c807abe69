//! Hash functions with fixed, documented definitions.
//!
//! Two uses, two requirements:
//! - **Backend choice** (Maglev permutations and lookups, `sh`/`dh`, affinity's first pick) must
//!   give the same answer on every gateway node, whatever its CPU or build, so that a flow that
//!   ECMP moves to another node lands on the same backend. [`stable`] is defined on explicit
//!   little-endian words with fixed constants, never on `std`'s randomly keyed hasher.
//! - **Flow-table placement** must not be predictable by an attacker who wants to fill one
//!   bucket; [`keyed`] mixes a per-worker random seed into the same function.
//!
//! The mixer is a multiply-fold in the style of wyhash (128-bit product, fold the halves),
//! which is fast and passes the usual avalanche tests; we do not need cryptographic strength.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a).wrapping_mul(u128::from(b));
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hashes a sequence of 64-bit words with a seed.
#[inline(always)]
pub fn words(seed: u64, w: &[u64]) -> u64 {
    let mut h = seed ^ P0;
    for &x in w {
        h = mum(h ^ x, P1);
    }
    mum(h ^ (w.len() as u64), P2)
}

/// Reads up to 8 bytes as a little-endian word (zero padded).
#[inline(always)]
fn le_word(b: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(buf)
}

/// Hashes bytes with a seed; defined on little-endian 8-byte words, so it is the same on every
/// machine.
#[inline]
pub fn bytes(seed: u64, b: &[u8]) -> u64 {
    let mut h = seed ^ P0 ^ (b.len() as u64).wrapping_mul(P2);
    for chunk in b.chunks(8) {
        h = mum(h ^ le_word(chunk), P1);
    }
    mum(h, P2)
}

/// The machine-independent hash used for every backend choice (seed fixed at 0).
#[inline]
pub fn stable(b: &[u8]) -> u64 {
    bytes(0, b)
}

/// A keyed hash for placement in per-worker tables.
#[inline(always)]
pub fn keyed(seed: u64, w: &[u64]) -> u64 {
    words(seed, w)
}

const P3: u64 = 0x589_9654_9ba7_98a7;
const P4: u64 = 0x1d8e_4e27_c47d_124f;

/// The keyed hash of a flow key's five words: three independent multiply-folds and one to
/// combine them, so the multiplications overlap instead of forming a chain of six.
#[inline(always)]
pub fn flow(seed: u64, w: &[u64; 5]) -> u64 {
    let a = mum(w[0] ^ seed ^ P0, w[1] ^ P1);
    let b = mum(w[2] ^ P2, w[3] ^ seed ^ P3);
    let c = mum(w[4] ^ P4, seed ^ P1);
    mum(a ^ b ^ P2, c ^ P0)
}

/// Maps a 64-bit hash uniformly onto `0..n` without a division (Lemire's multiply-shift).
#[inline(always)]
pub fn reduce(h: u64, n: u32) -> u32 {
    ((u64::from(h as u32 ^ (h >> 32) as u32) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values_are_pinned() {
        // These values are part of the cross-node contract: a change here moves flows between
        // backends on a rolling upgrade. Change them only with a note in the release.
        let a = stable(b"198.18.1.1:8080");
        let b = stable(b"198.18.1.1:8081");
        assert_ne!(a, b);
        assert_eq!(stable(&[1, 2, 3]), bytes(0, &[1, 2, 3]));
        assert_eq!([stable(b""), stable(b"sluice"), stable(&[0u8; 18])], PINNED);
    }

    // Computed once from the definition above; pinned so accidental changes fail loudly.
    const PINNED: [u64; 3] =
        [16_325_314_592_318_339_460, 17_687_502_743_508_451_748, 8_340_227_886_980_364_043];

    #[test]
    fn reduce_is_in_range_and_spreads() {
        let mut counts = [0u32; 7];
        for i in 0..70_000u64 {
            let r = reduce(words(1, &[i]), 7);
            counts[r as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn keyed_depends_on_seed() {
        assert_ne!(keyed(1, &[42]), keyed(2, &[42]));
    }
}
