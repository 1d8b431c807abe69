//! Ethernet II frames, with 802.1Q and 802.1ad (QinQ) VLAN tags.

use crate::{Error, Result, read_u16, write_u16};

/// A MAC address.
pub type Mac = [u8; 6];

/// EtherType values Sluice reads.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
}

mod field {
    use crate::Field;
    pub(super) const DST: Field = 0..6;
    pub(super) const SRC: Field = 6..12;
    pub(super) const ETHERTYPE: Field = 12..14;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// How many stacked VLAN tags [`Frame::l3`] walks (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

/// Where the network layer starts, after any VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3Start {
    /// EtherType of the network-layer payload.
    pub ethertype: u16,
    /// Byte offset of the network-layer header in the frame.
    pub offset: usize,
    /// VLAN id of the innermost tag, if the frame was tagged.
    pub vlan: Option<u16>,
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer, checking that it holds at least the untagged header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        m
    }

    /// Source MAC.
    pub fn src(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        m
    }

    /// The outer EtherType (a VLAN TPID if the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Walks up to [`MAX_VLAN_TAGS`] VLAN tags and says where the network layer starts.
    ///
    /// Fails with [`Error::Truncated`] if a tag is cut short and [`Error::Unsupported`] if more
    /// tags are stacked than we walk.
    pub fn l3(&self) -> Result<L3Start> {
        let b = self.buffer.as_ref();
        let mut ethertype = self.ethertype();
        let mut offset = HEADER_LEN;
        let mut vlan = None;
        for _ in 0..=MAX_VLAN_TAGS {
            if ethertype != ethertype::VLAN && ethertype != ethertype::QINQ {
                return Ok(L3Start { ethertype, offset, vlan });
            }
            if b.len() < offset + VLAN_TAG_LEN {
                return Err(Error::Truncated);
            }
            vlan = Some(read_u16(b, offset) & 0x0fff);
            ethertype = read_u16(b, offset + 2);
            offset += VLAN_TAG_LEN;
        }
        Err(Error::Unsupported)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the outer EtherType.
    pub fn set_ethertype(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, v);
    }

    /// Swaps source and destination MACs (what a reply or a hairpin does first).
    pub fn swap_macs(&mut self) {
        let b = self.buffer.as_mut();
        let (dst, rest) = b.split_at_mut(6);
        dst.swap_with_slice(&mut rest[..6]);
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Writes an untagged header from `src` to `dst` carrying `ethertype`.
    pub fn emit(&mut self, dst: Mac, src: Mac, ethertype: u16) {
        self.set_dst(dst);
        self.set_src(src);
        self.set_ethertype(ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 14] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x08, 0x00, // IPv4
    ];

    #[test]
    fn parse_untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.l3(), Ok(L3Start { ethertype: ethertype::IPV4, offset: 14, vlan: None }));
    }

    #[test]
    fn parse_dot1q_and_qinq() {
        let dot1q = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x64, 0x86, 0xdd];
        let f = Frame::new_checked(&dot1q[..]).unwrap();
        assert_eq!(f.l3(), Ok(L3Start { ethertype: ethertype::IPV6, offset: 18, vlan: Some(100) }));
        let qinq =
            [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x06];
        let f = Frame::new_checked(&qinq[..]).unwrap();
        assert_eq!(f.l3(), Ok(L3Start { ethertype: ethertype::ARP, offset: 22, vlan: Some(20) }));
    }

    #[test]
    fn refuse_short_and_overstacked() {
        assert_eq!(Frame::new_checked(&UNTAGGED[..13]).unwrap_err(), Error::Truncated);
        let cut = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20];
        assert_eq!(Frame::new_checked(&cut[..]).unwrap().l3(), Err(Error::Truncated));
        let mut triple = [0u8; 30];
        triple[12..14].copy_from_slice(&[0x81, 0]);
        triple[16..18].copy_from_slice(&[0x81, 0]);
        triple[20..22].copy_from_slice(&[0x81, 0]);
        assert_eq!(Frame::new_checked(&triple[..]).unwrap().l3(), Err(Error::Unsupported));
    }

    #[test]
    fn emit_and_swap() {
        let mut buf = UNTAGGED;
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.swap_macs();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 2]);
        f.set_src([0xaa; 6]);
        f.set_ethertype(ethertype::IPV6);
        assert_eq!(buf, [2, 0, 0, 0, 0, 2, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x86, 0xdd]);
    }
}
