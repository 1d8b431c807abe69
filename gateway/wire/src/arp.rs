//! ARP over Ethernet for IPv4 (RFC 826). Other hardware/protocol pairs are refused.

use crate::{Error, Result, read_u16, write_u16};

mod field {
    use crate::Field;
    pub(super) const HTYPE: Field = 0..2;
    pub(super) const PTYPE: Field = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Field = 6..8;
    pub(super) const SHA: Field = 8..14;
    pub(super) const SPA: Field = 14..18;
    pub(super) const THA: Field = 18..24;
    pub(super) const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking its length and that it is Ethernet (1) / IPv4 (0x0800) ARP.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if read_u16(b, field::HTYPE.start) != 1
            || read_u16(b, field::PTYPE.start) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(Packet { buffer })
    }

    /// Operation ([`OP_REQUEST`] or [`OP_REPLY`]).
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER.start)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        m
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SPA]);
        a
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        m
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::TPA]);
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        write_u16(self.buffer.as_mut(), field::OPER.start, op);
    }

    /// Sets the sender's hardware and protocol addresses.
    pub fn set_sender(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&mac);
        b[field::SPA].copy_from_slice(&ip);
    }

    /// Sets the target's hardware and protocol addresses.
    pub fn set_target(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        let b = self.buffer.as_mut();
        b[field::THA].copy_from_slice(&mac);
        b[field::TPA].copy_from_slice(&ip);
    }

    /// Writes a complete Ethernet/IPv4 ARP packet.
    pub fn emit(&mut self, op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) {
        let b = self.buffer.as_mut();
        write_u16(b, field::HTYPE.start, 1);
        write_u16(b, field::PTYPE.start, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        self.set_operation(op);
        self.set_sender(sha, spa);
        self.set_target(tha, tpa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 198.18.0.1? Tell 198.18.0.2 (from 02:00:00:00:00:02).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0, 0, 0, 0, 0x02, 198, 18, 0, 2, 0, 0, 0, 0, 0,
        0, 198, 18, 0, 1,
    ];

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(p.sender_ip(), [198, 18, 0, 2]);
        assert_eq!(p.target_mac(), [0; 6]);
        assert_eq!(p.target_ip(), [198, 18, 0, 1]);
    }

    #[test]
    fn emit_round_trips() {
        let mut buf = [0u8; 28];
        Packet::new_unchecked(&mut buf[..]).emit(
            OP_REQUEST,
            [2, 0, 0, 0, 0, 2],
            [198, 18, 0, 2],
            [0; 6],
            [198, 18, 0, 1],
        );
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn refuse_short_and_foreign() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]).unwrap_err(), Error::Truncated);
        let mut other = REQUEST;
        other[1] = 6; // IEEE 802 hardware
        assert_eq!(Packet::new_checked(&other[..]).unwrap_err(), Error::Unsupported);
    }
}
