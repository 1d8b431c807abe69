//! UDP headers (RFC 768).

use crate::checksum;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    use crate::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer (the IP payload), checking the length field: at least the header, at
    /// most the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(read_u16(b, field::LENGTH.start));
        if len < HEADER_LEN || len > b.len() {
            return Err(Error::BadLength);
        }
        Ok(Packet { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header and payload).
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    /// Whether the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    /// Checksum field (0 over IPv4 means "not computed").
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Payload bytes, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    /// Whether the checksum verifies with the given pseudo-header sum (a zero field passes).
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        self.checksum() == 0
            || checksum::finish(checksum::accumulate(pseudo_header, &self.buffer.as_ref()[..self.len()])) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum not touched).
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port (checksum not touched).
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Recomputes the checksum with the given pseudo-header sum (a computed 0 is sent as 0xffff).
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let len = self.len();
        let c = checksum::finish(checksum::accumulate(pseudo_header, &self.buffer.as_ref()[..len]));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a header from `src_port` to `dst_port` for a datagram of `len` bytes (header
    /// included), checksum 0 (fill it once the payload is in place: [`Packet::fill_checksum`]).
    pub fn emit(&mut self, src_port: u16, dst_port: u16, len: u16) {
        self.set_src_port(src_port);
        self.set_dst_port(dst_port);
        self.set_len(len);
        self.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 198.18.0.2:5353 → 198.18.0.1:9000 "ping", checksum 0x5ccc.
    const DGRAM: [u8; 12] = [0x14, 0xe9, 0x23, 0x28, 0x00, 0x0c, 0x5c, 0xcc, b'p', b'i', b'n', b'g'];

    #[test]
    fn parse() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 9000);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0x5ccc);
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(checksum::pseudo_header_v4([198, 18, 0, 2], [198, 18, 0, 1], 17, 12)));
    }

    #[test]
    fn emit_round_trip_v4_and_v6() {
        let mut buf = DGRAM;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum(checksum::pseudo_header_v4([198, 18, 0, 2], [198, 18, 0, 1], 17, 12));
        assert_eq!(buf, DGRAM);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut d = s;
        s[15] = 1;
        d[15] = 2;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum(checksum::pseudo_header_v6(&s, &d, 17, 12));
        assert_eq!(p.checksum(), 0x8d7f);
    }

    #[test]
    fn refuse_lying_length() {
        assert_eq!(Packet::new_checked(&DGRAM[..7]).unwrap_err(), Error::Truncated);
        let mut long = DGRAM;
        long[5] = 13;
        assert_eq!(Packet::new_checked(&long[..]).unwrap_err(), Error::BadLength);
        let mut short = DGRAM;
        short[5] = 7;
        assert_eq!(Packet::new_checked(&short[..]).unwrap_err(), Error::BadLength);
    }
}
