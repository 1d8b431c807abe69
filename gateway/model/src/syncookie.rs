//! SYN cookies: the sequence number Sluice's XDP program answers a SYN with when the worker's SYN
//! budget is spent, and the check the worker makes on the client's ACK before it opens the
//! connection to a backend. One definition for both sides: `gateway/xsk/bpf/steer.c`
//! implements [`cookie`] in C, and a test runs the loaded program over a SYN and checks its
//! answer with [`check`] here (`gateway/xsk/tests`).
//!
//! **The cookie.** For a SYN from `client:cport` to `frontend:fport` with initial sequence
//! number `isn`, in time slot `t` ([`slot`]: CLOCK_MONOTONIC in units of 2³⁶ ns, about 68.7 s),
//! offering an MSS whose class is `m` ([`MSS_CLASSES`]):
//!
//! ```text
//! h      = SipHash-2-4(key, [client as two LE u64, frontend as two LE u64,
//!                            cport | fport << 16 | isn << 32,  t | m << 32])
//! cookie = (h as u32 & !3) | m
//! ```
//!
//! The client's ACK carries `isn + 1` and `cookie + 1`; [`check`] recomputes the hash for the
//! current slot and the one before (a cookie lives 68.7 to 137 s) and returns the MSS class.
//! Thirty bits of keyed hash: a forged ACK succeeds with probability 2⁻²⁹. The key is random per
//! gateway start.
//!
//! What a cookie cannot carry: window scaling, SACK and timestamps. A connection opened through a
//! cookie has none of them (as Linux's own cookies without timestamps); the budget
//! (`--syn-budget`) keeps cookies for floods.

/// The MSS values a cookie can carry (index = class). A SYN's MSS is rounded down to one of them;
/// a SYN without the option gets class 0 (RFC 9293's default for IPv4, below IPv6's minimum,
/// so safe for both).
pub const MSS_CLASSES: [u16; 4] = [536, 1220, 1440, 1460];

/// The time slot of a CLOCK_MONOTONIC reading: `ns >> SLOT_SHIFT`.
pub const SLOT_SHIFT: u32 = 36;

/// The time slot a cookie made at `monotonic_ns` is made in.
#[inline]
pub fn slot(monotonic_ns: u64) -> u32 {
    (monotonic_ns >> SLOT_SHIFT) as u32
}

/// The class of the MSS a SYN offers (`None`: no option).
#[inline]
pub fn mss_class(mss: Option<u16>) -> u8 {
    let Some(mss) = mss else { return 0 };
    MSS_CLASSES.iter().rposition(|&c| c <= mss).unwrap_or(0) as u8
}

/// What a cookie is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Client address (16 bytes, IPv4-mapped for IPv4).
    pub client: [u8; 16],
    /// The frontend address the SYN was sent to.
    pub frontend: [u8; 16],
    /// Client port.
    pub cport: u16,
    /// Frontend port.
    pub fport: u16,
    /// The client's initial sequence number.
    pub isn: u32,
}

/// SipHash-2-4 of a message of whole 64-bit words (little-endian words, as the reference
/// implementation reads bytes), with key `(k0, k1)`.
pub fn siphash24(k0: u64, k1: u64, words: &[u64]) -> u64 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&k0.to_le_bytes());
    key[8..].copy_from_slice(&k1.to_le_bytes());
    let mut h = crate::sip::Sip::new(&crate::sip::SipKey::new(key));
    for w in words {
        h.write(&w.to_le_bytes());
    }
    h.finish()
}

fn le(b: &[u8; 16], i: usize) -> u64 {
    u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]])
}

/// The cookie for handshake `h` in time slot `t` with MSS class `class` (0–3).
pub fn cookie(key: [u64; 2], h: &Handshake, t: u32, class: u8) -> u32 {
    let class = u32::from(class & 3);
    let words = [
        le(&h.client, 0),
        le(&h.client, 8),
        le(&h.frontend, 0),
        le(&h.frontend, 8),
        u64::from(h.cport) | (u64::from(h.fport) << 16) | (u64::from(h.isn) << 32),
        u64::from(t) | (u64::from(class) << 32),
    ];
    (siphash24(key[0], key[1], &words) as u32 & !3) | class
}

/// Whether `cookie` (the client's acknowledgement number minus one) answers handshake `h` (its
/// sequence number minus one as `isn`) in slot `now` or the one before; the MSS class if so.
pub fn check(key: [u64; 2], h: &Handshake, cookie_value: u32, now: u32) -> Option<u8> {
    let class = (cookie_value & 3) as u8;
    [now, now.wrapping_sub(1)].into_iter().any(|t| cookie(key, h, t, class) == cookie_value).then_some(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference implementation's vectors (SipHash paper, appendix A: key 00..0f, message
    /// 00..(n-1)) for the lengths that are whole words.
    #[test]
    fn siphash_matches_the_reference_vectors() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        let w0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(siphash24(k0, k1, &[w0]), 0x93f5_f579_9a93_2462);
        let w1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash24(k0, k1, &[w0, w1]), 0x3f2a_cc7f_57c2_9bdb);
    }

    fn hs() -> Handshake {
        let mut client = [0u8; 16];
        client[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 2]);
        let mut frontend = [0u8; 16];
        frontend[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 100, 10]);
        Handshake { client, frontend, cport: 40_000, fport: 80, isn: 0x1234_5678 }
    }

    #[test]
    fn a_cookie_checks_in_its_slot_and_the_next_only() {
        let key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        let h = hs();
        let c = cookie(key, &h, 100, 3);
        assert_eq!(c & 3, 3);
        assert_eq!(check(key, &h, c, 100), Some(3));
        assert_eq!(check(key, &h, c, 101), Some(3));
        assert_eq!(check(key, &h, c, 102), None, "too old");
        assert_eq!(check(key, &h, c, 99), None, "from the future");
    }

    #[test]
    fn anything_changed_fails_the_check() {
        let key = [1, 2];
        let h = hs();
        let c = cookie(key, &h, 7, 2);
        assert_eq!(check([1, 3], &h, c, 7), None, "another key");
        assert_eq!(check(key, &Handshake { isn: h.isn + 1, ..h }, c, 7), None);
        assert_eq!(check(key, &Handshake { cport: h.cport + 1, ..h }, c, 7), None);
        assert_eq!(check(key, &Handshake { fport: 81, ..h }, c, 7), None);
        let mut other = h;
        other.client[15] ^= 1;
        assert_eq!(check(key, &other, c, 7), None);
        assert_eq!(check(key, &h, c ^ 1, 7), None, "another MSS class");
        assert_eq!(check(key, &h, c ^ 0x100, 7), None);
    }

    #[test]
    fn mss_rounds_down_to_a_class() {
        assert_eq!(mss_class(None), 0);
        assert_eq!(mss_class(Some(100)), 0);
        assert_eq!(mss_class(Some(1460)), 3);
        assert_eq!(mss_class(Some(9000)), 3);
        assert_eq!(mss_class(Some(1440)), 2);
        assert_eq!(mss_class(Some(1439)), 1);
        assert_eq!(mss_class(Some(1220)), 1);
    }
}
