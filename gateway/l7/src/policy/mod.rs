//! The enforcement primitives of ingress-nginx's annotations ([`sluice_model::policy`]), as
//! the proxy calls them per request: pure functions and small state machines, time passed in,
//! output written into the caller's buffers.
//!
//! - [`auth`]: HTTP Basic authentication (RFC 7617) against an htpasswd Secret's bcrypt,
//!   MD5-crypt and `{SHA}` hashes, with a per-worker verification cache and a budget of slow
//!   hash work, and the `WWW-Authenticate` challenge.
//! - [`limit`]: `limit-rps`, `limit-rpm` and `limit-connections` per client address, in one
//!   table of atomic slots that every worker of the gateway shares.
//! - [`canary`]: canary or main backend by header, header pattern, cookie and weight.
//! - [`nginx_paths`]: ingress-nginx's path dialect (regex hosts, plain prefixes, the 301 to a
//!   trailing slash), path normalisation and `rewrite-target`.
//! - [`cors`]: the CORS response fields and the preflight answer.
//! - [`cookie`]: RFC 6265 `Cookie` parsing, and session affinity's `Set-Cookie` with an
//!   endpoint token that does not reveal the endpoint.
//!
//! # When things are made
//! Per generation (not hot path, allocates): [`auth::BasicAuthCheck::new`],
//! [`limit::LimitRule::new`], [`canary::CanaryRule::new`], [`nginx_paths::HostPaths::new`],
//! [`cookie::EndpointTokens::new`]. Per worker (allocates once): [`auth::AuthCache::new`], and
//! per generation and worker the regex caches ([`canary::CanaryRule::new_cache`],
//! [`nginx_paths::HostPaths::new_cache`]). Per gateway, shared by every worker:
//! [`limit::Limiter`]. Per request: everything else, and none of it allocates.
//!
//! # Keys
//! Hashes an outsider could aim at — the limiter's slots, the auth cache's tags, the affinity
//! cookie's endpoint tokens — are keyed with a [`SipKey`], a secret the gateway draws once at
//! start (this crate has no source of randomness of its own). SipHash-2-4 is implemented here
//! (below) so that its output never changes with a Rust release: a cookie token must mean the
//! same endpoint tomorrow and on the next gateway.
//!
//! No `unsafe`, no locks, no clocks.

pub mod auth;
pub mod canary;
pub mod cookie;
pub mod cors;
pub mod limit;
pub mod nginx_paths;

use std::net::IpAddr;

pub use sluice_model::sip::{Sip, SipKey};

/// The configuration of every regex the gateway runs per request: only the engines whose
/// scratch space is all allocated when a cache is made — the one-pass DFA where the regex is
/// one-pass, else the PikeVM — so that no request allocates. The lazy DFA grows its cache as a
/// haystack reaches states not seen before, the bounded backtracker sizes its visited set to
/// the haystack, and a full DFA allocated on its first captures too. The engines left still
/// finish their set-up on their first search, so each cache is made with one search done
/// (measured: `tests/policy_no_alloc.rs`). The PikeVM is the slower engine, a few hundred
/// nanoseconds for a path of a few dozen bytes: paths and header values are short.
pub(crate) fn regex_config() -> regex_automata::meta::Config {
    regex_automata::meta::Regex::config().hybrid(false).backtrack(false).dfa(false)
}

/// An address as one spelling: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack
/// socket reports for an IPv4 client) is its IPv4 address, so one client has one key.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Writes an address's bytes into a hasher, with its family.
pub(crate) fn hash_ip(h: &mut Sip, ip: IpAddr) {
    match canonical_ip(ip) {
        IpAddr::V4(a) => {
            h.write(&[4]);
            h.write(&a.octets());
        }
        IpAddr::V6(a) => {
            h.write(&[6]);
            h.write(&a.octets());
        }
    }
}

/// Compares two byte strings in time that depends on their lengths only, not on where they
/// first differ (the lengths of hashes are public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box: keep the compiler from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// The caller's buffer cannot hold what was to be written into it; nothing useful was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSmall;

impl std::fmt::Display for TooSmall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the output buffer is too small")
    }
}

impl std::error::Error for TooSmall {}

/// Appends to a caller's fixed buffer, refusing to overflow it.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, len: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), TooSmall> {
        let end = self.len.checked_add(bytes.len()).filter(|&e| e <= self.buf.len()).ok_or(TooSmall)?;
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub(crate) fn put_u64(&mut self, mut n: u64) -> Result<(), TooSmall> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    /// One header field line, `name: value` and CRLF.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), TooSmall> {
        self.put(name)?;
        self.put(b": ")?;
        self.put(value)?;
        self.put(b"\r\n")
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality_is_equality() {
        let cases: [(&[u8], &[u8], bool); 5] = [
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"x", b"", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(ct_eq(a, b), want, "{a:?} {b:?}");
        }
    }

    #[test]
    fn writer_refuses_to_overflow() {
        let mut buf = [0u8; 8];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put(b"abc"), Ok(()));
        assert_eq!(w.put_u64(12345), Ok(()));
        assert_eq!(w.put(b"x"), Err(TooSmall));
        assert_eq!(w.len(), 8);
        assert_eq!(&buf, b"abc12345");
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put_u64(0), Ok(()));
        assert_eq!(w.put_u64(u64::MAX), Err(TooSmall));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4() {
        let key = SipKey::new(*b"0123456789abcdef");
        let h = |ip: &str| {
            let mut s = Sip::new(&key);
            hash_ip(&mut s, ip.parse().unwrap());
            s.finish()
        };
        assert_eq!(h("::ffff:192.0.2.1"), h("192.0.2.1"));
        assert_ne!(h("192.0.2.1"), h("192.0.2.2"));
        assert_ne!(h("2001:db8::1"), h("192.0.2.1"));
    }
}
