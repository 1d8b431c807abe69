//! Zero-copy views over packet bytes, and Internet checksums.
//!
//! This crate owns the wire formats Sluice reads, rewrites and writes: Ethernet (with 802.1Q /
//! 802.1ad tags), ARP, IPv4, IPv6 (with its extension-header chain), TCP, UDP, ICMPv4 and ICMPv6,
//! IPv6 neighbour discovery, and the one's-complement checksum in its full and incremental
//! (RFC 1624) forms. Every packet Sluice writes — a rewrite, an ARP or neighbour answer, an
//! announcement, a generator's template — is written through these views.
//!
//! The pattern is smoltcp's `wire`: a view wraps any `T: AsRef<[u8]>`, mutability comes from the
//! buffer type, and `new_checked` validates every length the accessors rely on, so that after it
//! succeeds no accessor can index out of bounds. Untrusted bytes always go through `new_checked`;
//! `new_unchecked` is for bytes the caller already validated (or is building).
//!
//! Hot path: yes. No allocation, no I/O, no `unsafe`.
//!
//! Known limits: ARP views cover Ethernet/IPv4 ARP only; IPv6 jumbograms (RFC 2675) are not
//! supported (a zero payload length is taken literally).
#![forbid(unsafe_code)]
#![no_std]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;

/// A byte range of a header field.
pub type Field = core::ops::Range<usize>;

/// Why a buffer was refused by a `new_checked` or a header walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says it must be).
    Truncated,
    /// The version field is not the one this view reads.
    BadVersion,
    /// A header-length field is below the minimum or beyond the buffer.
    BadHeaderLen,
    /// A total/payload length field disagrees with the buffer.
    BadLength,
    /// The header describes a format this view does not read (e.g. non-Ethernet ARP).
    Unsupported,
    /// An IPv6 extension-header chain is longer than we are willing to walk.
    ExtensionChain,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer too short for the header",
            Error::BadVersion => "wrong IP version",
            Error::BadHeaderLen => "header length field out of range",
            Error::BadLength => "length field disagrees with the buffer",
            Error::Unsupported => "unsupported header format",
            Error::ExtensionChain => "IPv6 extension-header chain too long",
        })
    }
}

impl core::error::Error for Error {}

/// Result of parsing, with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers") used by Sluice.
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 Routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options.
    pub const IPV6_OPTS: u8 = 60;
}

/// Big-endian field access on byte slices, for code that already validated the offsets (the
/// views above, and rewrites that work from a parsed packet's offsets). Each function checks its
/// bounds once and loads or stores the whole field at once.
pub mod bytes {
    /// `N` bytes at `at`, with one bounds check and one load (indexing byte by byte costs one
    /// check and one load per byte).
    #[inline(always)]
    pub fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[at..at + N]);
        a
    }

    /// The big-endian `u16` at `at`.
    #[inline(always)]
    pub fn read_u16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(array(b, at))
    }

    /// The big-endian `u32` at `at`.
    #[inline(always)]
    pub fn read_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(array(b, at))
    }

    /// Stores `v` big-endian at `at`.
    #[inline(always)]
    pub fn write_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Stores `v` big-endian at `at`.
    #[inline(always)]
    pub fn write_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

pub(crate) use bytes::{read_u16, read_u32, write_u16, write_u32};
