//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Full computation is for building packets and for verifying; the data plane rewrites
//! addresses and ports with [`Delta`], which touches only the changed words and never reads the
//! payload.

/// Adds `data` to a running one's-complement sum as big-endian 16-bit words.
///
/// An odd trailing byte is padded with zero on the right (RFC 1071 §4.1). The accumulator is
/// 64-bit, so sums of anything shorter than 2^48 bytes cannot overflow before [`fold`].
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds a 64-bit accumulator to a 16-bit one's-complement sum (carries wrapped around).
#[inline(always)]
pub fn fold(acc: u64) -> u16 {
    // Four branch-free steps fold any u64: 64 → 33 → 18 → 17 → 16 bits.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value for a sum: the complement of the folded sum.
#[inline(always)]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `data` alone (e.g. an IPv4 header with its checksum field zeroed).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The IPv4 pseudo-header sum (RFC 793 §3.1, RFC 768): source, destination, protocol, length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> u64 {
    let acc = accumulate(0, &src);
    let acc = accumulate(acc, &dst);
    acc + u64::from(protocol) + u64::from(len)
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1): source, destination, upper-layer length, next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u64 {
    let acc = accumulate(0, src);
    let acc = accumulate(acc, dst);
    acc + u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header)
}

/// An accumulated set of 16-bit word replacements, applied to any number of checksums.
///
/// RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')`. A rewrite of addresses and ports changes the
/// IPv4 header checksum and the TCP/UDP checksum (through the pseudo-header) by the same address
/// delta, so the delta is computed once and applied to each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const ZERO: Delta = Delta(0);

    /// Records that the 16-bit word `old` becomes `new`.
    #[inline(always)]
    pub fn replace16(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    /// Records that the 32-bit value `old` becomes `new` (two words).
    #[inline(always)]
    pub fn replace32(&mut self, old: u32, new: u32) {
        // !old as u32 summed as two 16-bit halves equals the sum of the complemented words.
        let o = !old;
        self.0 += u64::from(o >> 16) + u64::from(o & 0xffff) + u64::from(new >> 16) + u64::from(new & 0xffff);
    }

    /// Records that the bytes `old` become `new`; both must have the same even length.
    #[inline]
    pub fn replace_bytes(&mut self, old: &[u8], new: &[u8]) {
        debug_assert_eq!(old.len(), new.len());
        debug_assert_eq!(old.len() % 2, 0);
        let mut acc = self.0;
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            acc += u64::from(!u16::from_be_bytes([o[0], o[1]])) + u64::from(u16::from_be_bytes([n[0], n[1]]));
        }
        self.0 = acc;
    }

    /// Combines two deltas.
    #[inline(always)]
    #[must_use]
    pub fn plus(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }

    /// Applies the delta to a checksum field value.
    #[inline(always)]
    #[must_use]
    pub fn apply(self, check: u16) -> u16 {
        !fold(u64::from(!check) + self.0)
    }

    /// The delta folded to 16 bits, for a consumer that applies it as `!fold(!check + folded)`
    /// (the XDP fast path): the same result as [`Delta::apply`] for every checksum, because
    /// folding keeps the value modulo 0xffff and a non-zero sum non-zero.
    #[inline]
    #[must_use]
    pub fn folded(self) -> u16 {
        fold(self.0)
    }

    /// Applies the delta to a UDP checksum, keeping RFC 768's special values: `0` (over IPv4)
    /// means "no checksum" and stays 0; a computed 0 is sent as `0xffff`.
    #[inline(always)]
    #[must_use]
    pub fn apply_udp(self, check: u16) -> u16 {
        if check == 0 {
            return 0;
        }
        match self.apply(check) {
            0 => 0xffff,
            c => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The classic example header (RFC 1071 style walk-through, also used widely in textbooks):
    // 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7
    const IPV4_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
        0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn a_folded_delta_applies_as_the_whole_one() {
        // `!fold(!check + folded)` is how the XDP program applies a delta (`csum_apply` in
        // steer.c, with one fold: the sum is at most 0x1fffe).
        let apply_folded = |check: u16, folded: u16| {
            let s = u32::from(!check) + u32::from(folded);
            !(((s & 0xffff) + (s >> 16)) as u16)
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..100_000u32 {
            x = x.rotate_left(11).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let mut d = Delta::ZERO;
            for k in 0..(i % 9) {
                d.replace16((x >> (k * 7)) as u16, (x >> (k * 5 + 3)) as u16);
            }
            // the edges: no change, and every checksum value's neighbours of 0 and 0xffff
            let check = match i % 4 {
                0 => 0,
                1 => 0xffff,
                _ => (x >> 40) as u16,
            };
            assert_eq!(apply_folded(check, d.folded()), d.apply(check), "{check:#x} {d:?}");
            assert_eq!(apply_folded(check, Delta::ZERO.folded()), Delta::ZERO.apply(check));
        }
    }

    #[test]
    fn full_checksum_matches_known_header() {
        let mut h = IPV4_HDR;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
        // A correct header sums to 0xffff, i.e. checksums to zero.
        assert_eq!(checksum(&IPV4_HDR), 0);
    }

    #[test]
    fn fold_handles_every_magnitude() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(u64::MAX), 0xffff);
        // The loop definition, for a spread of values.
        let slow = |mut a: u64| {
            while a > 0xffff {
                a = (a & 0xffff) + (a >> 16);
            }
            a as u16
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x = x.rotate_left(7).wrapping_mul(0x2545_f491_4f6c_dd1d);
            assert_eq!(fold(x), slow(x), "{x:#x}");
            assert_eq!(fold(x >> 20), slow(x >> 20));
        }
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(accumulate(0, &[0x01]), 0x0100);
        assert_eq!(accumulate(0, &[0x01, 0x02, 0x03]), 0x0102 + 0x0300);
    }

    #[test]
    fn incremental_equals_full_after_address_rewrite() {
        let mut h = IPV4_HDR;
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let new = u32::from_be_bytes([198, 18, 0, 1]);
        let mut d = Delta::ZERO;
        d.replace32(old, new);
        h[12..16].copy_from_slice(&new.to_be_bytes());
        let c = d.apply(0xb861);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&h), 0, "incrementally updated header must verify");
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), c);
    }

    #[test]
    fn replace_bytes_equals_replace32() {
        let mut a = Delta::ZERO;
        a.replace32(0x0a000001, 0xc6120001);
        let mut b = Delta::ZERO;
        b.replace_bytes(&[10, 0, 0, 1], &[198, 18, 0, 1]);
        assert_eq!(a.apply(0x1234), b.apply(0x1234));
    }

    #[test]
    fn rfc1624_negative_zero_case() {
        // RFC 1624 §3 example: a header whose sum goes to 0xffff/0x0000 must not produce -0
        // (0xffff) in the checksum field with eqn. 3; result must verify.
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&20u16.to_be_bytes());
        let c0 = checksum(&h);
        h[10..12].copy_from_slice(&c0.to_be_bytes());
        let mut d = Delta::ZERO;
        d.replace16(0x0000, 0x0000);
        assert_eq!(d.apply(c0), c0);
        let mut d = Delta::ZERO;
        d.replace16(u16::from_be_bytes([h[8], h[9]]), 0xffff);
        h[8] = 0xff;
        h[9] = 0xff;
        let c1 = d.apply(c0);
        h[10..12].copy_from_slice(&c1.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn udp_zero_checksum_is_preserved_and_zero_result_becomes_ffff() {
        let mut d = Delta::ZERO;
        d.replace16(1, 2);
        assert_eq!(d.apply_udp(0), 0);
        // A delta and a checksum whose plain result is 0: apply(c) == 0 iff !c + delta folds to
        // 0xffff. Delta 0→1 is 0xffff + 1 = 0x1_0000; with c = 1, !c = 0xfffe, and
        // 0xfffe + 0x1_0000 = 0x1_fffe folds to 0xffff: apply gives 0, which UDP must send as
        // 0xffff (RFC 768: a computed 0 is transmitted as all ones).
        let mut d = Delta::ZERO;
        d.replace16(0x0000, 0x0001);
        assert_eq!(d.apply(0x0001), 0);
        assert_eq!(d.apply_udp(0x0001), 0xffff);
        let mut d = Delta::ZERO;
        d.replace16(0x1234, 0x1234);
        // An identity replacement of a checksum 0xffff stays a valid non-zero field.
        assert_eq!(d.apply_udp(0xffff), 0xffff);
    }

    #[test]
    fn pseudo_header_v6_length_is_split() {
        let a = [0u8; 16];
        assert_eq!(pseudo_header_v6(&a, &a, 6, 0x0001_0002), 1 + 2 + 6);
    }
}
