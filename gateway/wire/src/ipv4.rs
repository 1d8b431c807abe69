//! IPv4 headers (RFC 791), options and fragment fields included.

use crate::checksum;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    use crate::Field;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC: Field = 12..16;
    pub(super) const DST: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Byte offset of the checksum field in the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Byte offset of the source address in the header.
pub const SRC_OFFSET: usize = field::SRC.start;
/// Byte offset of the destination address in the header.
pub const DST_OFFSET: usize = field::DST.start;
/// Byte offset of the TTL field in the header.
pub const TTL_OFFSET: usize = field::TTL;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking version, header length and total length.
    ///
    /// After this succeeds, `header_len() <= total_len() <= buffer.len()` and every accessor is
    /// in bounds. The buffer may be longer than `total_len()` (Ethernet padding); [`Self::payload`]
    /// stops at `total_len()`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(Error::BadHeaderLen);
        }
        let total = usize::from(read_u16(b, field::LENGTH.start));
        if total < hl || total > b.len() {
            return Err(Error::BadLength);
        }
        Ok(Packet { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length in bytes, header included.
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x4000 != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff) * 8
    }

    /// Whether this is a fragment (first, middle or last) rather than a whole datagram.
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x3fff != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// Options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Payload, from the end of the header to `total_len()`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The pseudo-header sum for the payload's TCP/UDP checksum.
    pub fn pseudo_header(&self) -> u64 {
        let len = (self.total_len() - self.header_len()) as u16;
        checksum::pseudo_header_v4(self.src(), self.dst(), self.protocol(), len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Sets the flags and fragment offset (`offset_bytes` is rounded down to 8-byte units).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset_bytes: usize) {
        let v = (u16::from(dont_frag) << 14)
            | (u16::from(more_frags) << 13)
            | ((offset_bytes / 8) as u16 & 0x1fff);
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = p;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, c);
    }

    /// Sets the source address (checksum not touched).
    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Sets the destination address (checksum not touched).
    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// Mutable payload, from the end of the header to `total_len()`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// An IPv4 header without options, to write with [`Packet::emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// The payload's protocol (`crate::ip_proto`).
    pub protocol: u8,
    /// Bytes after the header.
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a 20-byte header saying `r`, its checksum included (the buffer holds at least
    /// [`MIN_HEADER_LEN`] bytes).
    pub fn emit(&mut self, r: &Repr) {
        self.set_version_and_header_len(MIN_HEADER_LEN);
        self.buffer.as_mut()[field::DSCP_ECN] = 0;
        self.set_total_len(MIN_HEADER_LEN as u16 + r.payload_len);
        self.set_ident(r.ident);
        self.set_frag(r.dont_frag, false, 0);
        self.set_ttl(r.ttl);
        self.set_protocol(r.protocol);
        self.set_src(r.src);
        self.set_dst(r.dst);
        self.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 20-byte header (UDP, 192.168.0.1 → 192.168.0.199, total 0x73) + 4 option bytes case below.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
        0xa8, 0x00, 0xc7,
    ];

    fn with_payload(hdr: &[u8]) -> [u8; 0x73] {
        let mut b = [0u8; 0x73];
        b[..hdr.len()].copy_from_slice(hdr);
        b
    }

    #[test]
    fn parse_fields() {
        let buf = with_payload(&HDR);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(p.src(), [192, 168, 0, 1]);
        assert_eq!(p.dst(), [192, 168, 0, 199]);
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.verify_checksum());
    }

    #[test]
    fn options_and_fragment_fields() {
        // IHL 6 with a 4-byte option (NOP NOP NOP EOL); MF set, offset 185 × 8 bytes.
        let mut h = [0u8; 24];
        h[..20].copy_from_slice(&HDR);
        h[0] = 0x46;
        h[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        h[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut buf = with_payload(&h);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert_eq!(p.payload().len(), 0x73 - 24);
    }

    #[test]
    fn refuse_malformed() {
        let buf = with_payload(&HDR);
        assert_eq!(Packet::new_checked(&buf[..19]).unwrap_err(), Error::Truncated);
        let mut v6 = buf;
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::BadVersion);
        let mut ihl4 = buf;
        ihl4[0] = 0x44;
        assert_eq!(Packet::new_checked(&ihl4[..]).unwrap_err(), Error::BadHeaderLen);
        let mut ihl15 = buf;
        ihl15[0] = 0x4f;
        assert_eq!(Packet::new_checked(&ihl15[..40]).unwrap_err(), Error::BadHeaderLen);
        // total length larger than the buffer: a length that lies
        assert_eq!(Packet::new_checked(&buf[..100]).unwrap_err(), Error::BadLength);
        let mut short_total = buf;
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&short_total[..]).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn padding_beyond_total_len_is_not_payload() {
        let mut buf = [0u8; 0x80];
        buf[..20].copy_from_slice(&HDR);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn emit_round_trip() {
        let mut buf = [0u8; 0x73];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version_and_header_len(20);
        p.set_total_len(0x73);
        p.set_frag(true, false, 0);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src([192, 168, 0, 1]);
        p.set_dst([192, 168, 0, 199]);
        p.fill_checksum();
        assert_eq!(&buf[..20], &HDR);
    }
}
