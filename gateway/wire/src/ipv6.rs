//! IPv6 headers (RFC 8200) and a bounded walk of the extension-header chain.

use crate::checksum;
use crate::ip_proto;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    use crate::Field;
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const PAYLOAD_LEN: Field = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: Field = 8..24;
    pub(super) const DST: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Byte offset of the source address.
pub const SRC_OFFSET: usize = field::SRC.start;
/// Byte offset of the destination address.
pub const DST_OFFSET: usize = field::DST.start;
/// Byte offset of the hop limit.
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// The most extension headers [`Packet::upper_layer`] walks before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Where the upper-layer header starts, after any extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Protocol number of the upper layer (or of ESP / No Next Header, where the walk stops).
    pub protocol: u8,
    /// Byte offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// Whether a Fragment header was present.
    pub fragment: bool,
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking the version and that the payload length fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(read_u16(b, field::PAYLOAD_LEN.start)) > b.len() {
            return Err(Error::BadLength);
        }
        Ok(Packet { buffer })
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN.start))
    }

    /// Total length: fixed header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | u32::from(read_u16(b, 2))
    }

    /// The Next Header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// Walks the extension-header chain to the upper layer.
    ///
    /// Hop-by-Hop, Routing, Destination Options, Fragment and AH headers are skipped by their own
    /// length fields, each checked against the payload length; the walk stops at the first other
    /// protocol (including ESP and No Next Header, which cannot be looked past). At most
    /// [`MAX_EXTENSION_HEADERS`] are walked, so a hostile chain costs bounded work.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let b = self.buffer.as_ref();
        let end = self.total_len();
        let mut protocol = self.next_header();
        let mut offset = HEADER_LEN;
        let mut fragment = false;
        for _ in 0..=MAX_EXTENSION_HEADERS {
            let len = match protocol {
                ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => {
                    if offset + 2 > end {
                        return Err(Error::Truncated);
                    }
                    (usize::from(b[offset + 1]) + 1) * 8
                }
                ip_proto::IPV6_FRAG => {
                    fragment = true;
                    8
                }
                ip_proto::AH => {
                    if offset + 2 > end {
                        return Err(Error::Truncated);
                    }
                    (usize::from(b[offset + 1]) + 2) * 4
                }
                _ => return Ok(UpperLayer { protocol, offset, fragment }),
            };
            if offset + len > end {
                return Err(Error::Truncated);
            }
            protocol = b[offset];
            offset += len;
        }
        Err(Error::ExtensionChain)
    }

    /// The pseudo-header sum for an upper-layer checksum over `upper_len` bytes.
    pub fn pseudo_header(&self, next_header: u8, upper_len: usize) -> u64 {
        checksum::pseudo_header_v6(&self.src(), &self.dst(), next_header, upper_len as u32)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let v = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0x000f_ffff);
        self.buffer.as_mut()[0..4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, len);
    }

    /// Sets the Next Header field.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address.
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Sets the destination address.
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }
}

/// An IPv6 header (no extension headers), to write with [`Packet::emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// The payload's protocol (`crate::ip_proto`).
    pub next_header: u8,
    /// Bytes after the header.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a header saying `r` (traffic class and flow label 0; the buffer holds at least
    /// [`HEADER_LEN`] bytes).
    pub fn emit(&mut self, r: &Repr) {
        self.set_version_tc_flow(0, 0);
        self.set_payload_len(r.payload_len);
        self.set_next_header(r.next_header);
        self.set_hop_limit(r.hop_limit);
        self.set_src(r.src);
        self.set_dst(r.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2001:db8::1 → 2001:db8::2, next header UDP, payload 8, hop limit 64, tc 0, flow 0x12345.
    const HDR: [u8; 40] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x08, 0x11, 0x40, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ];

    fn addr(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        a
    }

    #[test]
    fn parse_fixed_header() {
        let mut buf = [0u8; 48];
        buf[..40].copy_from_slice(&HDR);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src(), addr(1));
        assert_eq!(p.dst(), addr(2));
        assert_eq!(p.upper_layer(), Ok(UpperLayer { protocol: 17, offset: 40, fragment: false }));
    }

    #[test]
    fn emit_round_trip() {
        let mut buf = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version_tc_flow(0, 0x12345);
        p.set_payload_len(8);
        p.set_next_header(17);
        p.set_hop_limit(64);
        p.set_src(addr(1));
        p.set_dst(addr(2));
        assert_eq!(buf, HDR);
    }

    #[test]
    fn walks_extension_chain() {
        // HBH (8 bytes) → Destination Options (16 bytes) → Fragment (8) → TCP.
        let mut buf = [0u8; 40 + 8 + 16 + 8 + 20];
        buf[..40].copy_from_slice(&HDR);
        buf[4..6].copy_from_slice(&((8 + 16 + 8 + 20) as u16).to_be_bytes());
        buf[6] = ip_proto::HOPOPT;
        buf[40] = ip_proto::IPV6_OPTS;
        buf[41] = 0;
        buf[48] = ip_proto::IPV6_FRAG;
        buf[49] = 1;
        buf[64] = ip_proto::TCP;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.upper_layer(), Ok(UpperLayer { protocol: ip_proto::TCP, offset: 72, fragment: true }));
    }

    #[test]
    fn refuse_lying_lengths_and_long_chains() {
        let mut buf = [0u8; 48];
        buf[..40].copy_from_slice(&HDR);
        assert_eq!(Packet::new_checked(&buf[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&buf[..47]).unwrap_err(), Error::BadLength);
        let mut v4 = buf;
        v4[0] = 0x40;
        assert_eq!(Packet::new_checked(&v4[..]).unwrap_err(), Error::BadVersion);
        // HBH header claiming 2 × 8 bytes inside an 8-byte payload.
        let mut lie = buf;
        lie[6] = ip_proto::HOPOPT;
        lie[41] = 1;
        assert_eq!(Packet::new_checked(&lie[..]).unwrap().upper_layer(), Err(Error::Truncated));
        // Nine destination-options headers: more than we walk.
        let n = MAX_EXTENSION_HEADERS + 1;
        let mut long = [0u8; 40 + 8 * 9 + 8];
        long[..40].copy_from_slice(&HDR);
        long[4..6].copy_from_slice(&((8 * n + 8) as u16).to_be_bytes());
        long[6] = ip_proto::IPV6_OPTS;
        for i in 0..n {
            long[40 + 8 * i] = ip_proto::IPV6_OPTS;
        }
        assert_eq!(Packet::new_checked(&long[..]).unwrap().upper_layer(), Err(Error::ExtensionChain));
    }
}
