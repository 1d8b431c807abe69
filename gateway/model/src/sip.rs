//! SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): the keyed
//! hash of the SYN cookies and of the L7 stage's keyed values (limit and auth-cache slots,
//! affinity tokens), one implementation for both. No allocation, no `unsafe`.

/// A 128-bit secret key for SipHash-2-4. Draw it once per gateway (from the OS's random
/// source) and give the same to every worker; give the same to every replica where a value
/// must agree between gateways (the affinity cookie's tokens).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for SipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: never printed.
        f.write_str("SipKey(..)")
    }
}

impl SipKey {
    /// A key from 16 secret bytes.
    pub const fn new(bytes: [u8; 16]) -> SipKey {
        let mut k0 = [0; 8];
        let mut k1 = [0; 8];
        let mut i = 0;
        while i < 8 {
            k0[i] = bytes[i];
            k1[i] = bytes[8 + i];
            i += 1;
        }
        SipKey { k0: u64::from_le_bytes(k0), k1: u64::from_le_bytes(k1) }
    }

    /// A second key, independent of this one for any practical purpose (the first key's
    /// SipHash of a label): where 128 bits of tag are wanted, two 64-bit SipHashes under two
    /// keys.
    pub fn derive(&self, label: &[u8]) -> SipKey {
        let mut a = Sip::new(self);
        a.write(b"sluice derive a ");
        a.write(label);
        let mut b = Sip::new(self);
        b.write(b"sluice derive b ");
        b.write(label);
        SipKey { k0: a.finish(), k1: b.finish() }
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012), streaming:
/// fields are written one after another without being copied together.
#[derive(Debug, Clone)]
pub struct Sip {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    len: u64,
}

impl Sip {
    /// A hasher under `key`.
    pub fn new(key: &SipKey) -> Sip {
        Sip {
            v: [
                key.k0 ^ 0x736f_6d65_7073_6575,
                key.k1 ^ 0x646f_7261_6e64_6f6d,
                key.k0 ^ 0x6c79_6765_6e65_7261,
                key.k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline]
    fn block(&mut self, m: u64) {
        self.v[3] ^= m;
        Sip::round(&mut self.v);
        Sip::round(&mut self.v);
        self.v[0] ^= m;
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        while self.ntail > 0 && !rest.is_empty() {
            self.tail |= u64::from(rest[0]) << (8 * self.ntail);
            self.ntail += 1;
            rest = &rest[1..];
            if self.ntail == 8 {
                let m = self.tail;
                self.block(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
        let mut chunks = rest.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            self.block(u64::from_le_bytes(w));
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.ntail += chunks.remainder().len();
    }

    /// Adds a field whose end must not run into the next one's beginning: its length first.
    pub fn write_field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    /// The 64-bit hash.
    pub fn finish(&self) -> u64 {
        let mut v = self.v;
        let m = self.tail | (self.len << 56);
        v[3] ^= m;
        Sip::round(&mut v);
        Sip::round(&mut v);
        v[0] ^= m;
        v[2] ^= 0xff;
        for _ in 0..4 {
            Sip::round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper_key() -> SipKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipKey::new(k)
    }

    #[test]
    fn siphash_matches_the_papers_vectors() {
        // SipHash paper, appendix A: key 00..0f, message 00..0e.
        let msg: Vec<u8> = (0..15).collect();
        let mut h = Sip::new(&paper_key());
        h.write(&msg);
        assert_eq!(h.finish(), 0xa129_ca61_49be_45e5);
        // The reference implementation's vectors.h, first entry: the empty message.
        assert_eq!(Sip::new(&paper_key()).finish(), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    #[expect(deprecated, reason = "std's SipHasher is SipHash-2-4: an oracle for ours")]
    fn siphash_agrees_with_std_whatever_the_split() {
        use std::hash::Hasher;
        let key = paper_key();
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            let mut oracle = std::hash::SipHasher::new_with_keys(key.k0, key.k1);
            oracle.write(&data[..len]);
            let want = oracle.finish();
            for split in 0..=len {
                let mut h = Sip::new(&key);
                h.write(&data[..split]);
                h.write(&data[split..len]);
                assert_eq!(h.finish(), want, "len {len} split {split}");
            }
        }
    }
}
