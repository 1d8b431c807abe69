//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages: they share the first eight bytes.
//!
//! Echo messages carry an identifier and sequence number; error messages carry the
//! (truncated) packet that caused them after the eight-byte header, which [`Packet::data`] returns.

use crate::checksum;
use crate::{Error, Result, read_u16, read_u32, write_u16};

mod field {
    use crate::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const SEQ: Field = 6..8;
}

/// Length of the ICMP header (type, code, checksum and the four "rest of header" bytes).
pub const HEADER_LEN: usize = 8;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// ICMPv4 message types.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (code 4: fragmentation needed, MTU in bytes 6..8).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Code of destination unreachable: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

/// ICMPv6 message types.
pub mod v6 {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big (MTU in bytes 4..8).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// A view of an ICMPv4 or ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer (the whole message), checking it holds the header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ.start)
    }

    /// Next-hop MTU of an ICMPv4 "fragmentation needed" message.
    pub fn frag_needed_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ.start)
    }

    /// MTU of an ICMPv6 "packet too big" message.
    pub fn packet_too_big_mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Everything after the eight-byte header: echo data, or the packet an error is about.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum verifies (`pseudo_header` is 0 for ICMPv4).
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::finish(checksum::accumulate(pseudo_header, self.buffer.as_ref())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets type and code.
    pub fn set_type_code(&mut self, t: u8, c: u8) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = t;
        b[field::CODE] = c;
    }

    /// Sets echo identifier and sequence number.
    pub fn set_echo(&mut self, ident: u16, seq: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, ident);
        write_u16(self.buffer.as_mut(), field::SEQ.start, seq);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Recomputes the checksum over the whole message (`pseudo_header` is 0 for ICMPv4).
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::accumulate(pseudo_header, self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request, ident 0x1234, seq 1, "abcd": checksum 0x2104 (ICMPv4).
    const ECHO: [u8; 12] = [8, 0, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    #[test]
    fn parse_echo_v4() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), v4::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.data(), b"abcd");
        assert!(p.verify_checksum(0));
    }

    #[test]
    fn emit_echo_v6_with_pseudo_header() {
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut d = s;
        s[15] = 1;
        d[15] = 2;
        let mut buf = ECHO;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_type_code(v6::ECHO_REQUEST, 0);
        p.set_echo(0x1234, 1);
        p.fill_checksum(checksum::pseudo_header_v6(&s, &d, 58, 12));
        assert_eq!(p.checksum(), 0x4d48);
        assert!(p.verify_checksum(checksum::pseudo_header_v6(&s, &d, 58, 12)));
    }

    #[test]
    fn mtu_fields() {
        let frag = [3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        assert_eq!(Packet::new_checked(&frag[..]).unwrap().frag_needed_mtu(), 1500);
        let ptb = [2, 0, 0, 0, 0x00, 0x00, 0x05, 0x00];
        assert_eq!(Packet::new_checked(&ptb[..]).unwrap().packet_too_big_mtu(), 1280);
        assert_eq!(Packet::new_checked(&ptb[..7]).unwrap_err(), Error::Truncated);
    }
}
