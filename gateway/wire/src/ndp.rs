//! IPv6 neighbour discovery (RFC 4861 §4.3, §4.4): neighbour solicitations and advertisements —
//! the only discovery messages Sluice speaks — and their link-layer address options. A
//! [`Message`] is the ICMPv6 message, from its type field on.

use crate::{Error, Result, checksum, icmp};

mod field {
    use crate::Field;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Field = 2..4;
    pub(super) const FLAGS: usize = 4;
    pub(super) const RESERVED: Field = 5..8;
    pub(super) const TARGET: Field = 8..24;
}

/// Length of a solicitation or advertisement without options.
pub const HEADER_LEN: usize = 24;

/// The hop limit every neighbour discovery message is sent and must arrive with (RFC 4861
/// §7.1.1: a message with another was forwarded by a router and is not from the link).
pub const HOP_LIMIT: u8 = 255;

/// The all-nodes multicast address `ff02::1`.
pub const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Its Ethernet address (RFC 2464 §7: `33:33` and the address's last 32 bits).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// An advertisement's flags.
pub mod flags {
    /// The sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// The advertisement answers a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// It overrides a cached link-layer address.
    pub const OVERRIDE: u8 = 0x20;
}

/// Option types.
pub mod option {
    /// Source link-layer address.
    pub const SOURCE_LL: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LL: u8 = 2;
    /// Length of a link-layer address option for Ethernet (type, length, six bytes).
    pub const LL_LEN: usize = 8;
}

/// A view of a neighbour solicitation or advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Message { buffer }
    }

    /// Wraps a buffer holding exactly one message, checking that it is a solicitation or an
    /// advertisement with code 0, and that every option lies inside it with a non-zero length
    /// (RFC 4861 §7.1.1: an option of length 0 invalidates the message).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let t = b[field::TYPE];
        if (t != icmp::v6::NEIGHBOR_SOLICIT && t != icmp::v6::NEIGHBOR_ADVERT) || b[field::CODE] != 0 {
            return Err(Error::Unsupported);
        }
        let mut at = HEADER_LEN;
        while at < b.len() {
            let len = b.get(at + 1).map_or(0, |l| usize::from(*l) * 8);
            if len == 0 || at + len > b.len() {
                return Err(Error::BadLength);
            }
            at += len;
        }
        Ok(Message { buffer })
    }

    /// The message type (`icmp::v6::NEIGHBOR_SOLICIT` or `NEIGHBOR_ADVERT`).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The target address.
    pub fn target(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        a
    }

    /// An advertisement's [`flags`].
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Each option: (offset in the message, type, length in bytes). In bounds after
    /// [`Self::new_checked`].
    pub fn options(&self) -> impl Iterator<Item = (usize, u8, usize)> + '_ {
        let b = self.buffer.as_ref();
        let mut at = HEADER_LEN;
        core::iter::from_fn(move || {
            let len = usize::from(*b.get(at + 1)?) * 8;
            if len == 0 || at + len > b.len() {
                return None;
            }
            let item = (at, b[at], len);
            at += len;
            Some(item)
        })
    }

    /// The link-layer address an Ethernet-sized option of `kind` carries, if there is one.
    pub fn link_layer(&self, kind: u8) -> Option<[u8; 6]> {
        let (at, _, _) = self.options().find(|&(_, k, len)| k == kind && len == option::LL_LEN)?;
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[at + 2..at + 8]);
        Some(mac)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Sets the type (code 0).
    pub fn set_msg_type(&mut self, t: u8) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = t;
        b[field::CODE] = 0;
    }

    /// Sets an advertisement's flags (the reserved bits after them cleared).
    pub fn set_flags(&mut self, f: u8) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = f;
        b[field::RESERVED].fill(0);
    }

    /// Sets the target address.
    pub fn set_target(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a);
    }

    /// Rewrites the Ethernet-sized option at `at` (an offset [`Message::options`] gave) as a
    /// link-layer address option of `kind` carrying `mac`.
    pub fn set_link_layer(&mut self, at: usize, kind: u8, mac: [u8; 6]) {
        let b = self.buffer.as_mut();
        b[at] = kind;
        b[at + 1] = (option::LL_LEN / 8) as u8;
        b[at + 2..at + 8].copy_from_slice(&mac);
    }

    /// Writes an advertisement for `target` with `flags`, and a target link-layer address
    /// option when the buffer has room for one (`HEADER_LEN + option::LL_LEN` bytes).
    pub fn emit_advertisement(&mut self, target: [u8; 16], flags: u8, mac: [u8; 6]) {
        self.set_msg_type(icmp::v6::NEIGHBOR_ADVERT);
        self.set_flags(flags);
        self.set_target(target);
        if self.buffer.as_ref().len() >= HEADER_LEN + option::LL_LEN {
            self.set_link_layer(HEADER_LEN, option::TARGET_LL, mac);
        }
    }

    /// Recomputes the ICMPv6 checksum with the given pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        let b = self.buffer.as_mut();
        b[field::CHECKSUM].fill(0);
        let c = checksum::finish(checksum::accumulate(pseudo_header, b));
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Solicitation for 2001:db8::1 with a source link-layer option 02:00:00:00:00:02
    // (checksum not filled: these tests do not need it).
    const SOLICIT: [u8; 32] = [
        135, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        1, 1, 2, 0, 0, 0, 0, 2,
    ];

    #[test]
    fn parse_a_solicitation_and_its_option() {
        let m = Message::new_checked(&SOLICIT[..]).unwrap();
        assert_eq!(m.msg_type(), icmp::v6::NEIGHBOR_SOLICIT);
        assert_eq!(m.target()[15], 1);
        let mut options = m.options();
        assert_eq!((options.next(), options.next()), (Some((24, option::SOURCE_LL, 8)), None));
        assert_eq!(m.link_layer(option::SOURCE_LL), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(m.link_layer(option::TARGET_LL), None);
    }

    #[test]
    fn refuse_what_is_not_a_well_formed_message() {
        assert_eq!(Message::new_checked(&SOLICIT[..23]).unwrap_err(), Error::Truncated);
        let mut zero = SOLICIT;
        zero[25] = 0; // an option of length 0
        assert_eq!(Message::new_checked(&zero[..]).unwrap_err(), Error::BadLength);
        let mut long = SOLICIT;
        long[25] = 2; // 16 bytes, 8 there
        assert_eq!(Message::new_checked(&long[..]).unwrap_err(), Error::BadLength);
        let mut echo = SOLICIT;
        echo[0] = 128;
        assert_eq!(Message::new_checked(&echo[..]).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn emit_an_advertisement_and_check_its_sum() {
        let mut b = [0u8; 32];
        let target = Message::new_checked(&SOLICIT[..]).unwrap().target();
        let mut m = Message::new_unchecked(&mut b[..]);
        m.emit_advertisement(target, flags::OVERRIDE, [2, 0, 0, 0, 0, 9]);
        let ph = checksum::pseudo_header_v6(&target, &ALL_NODES, crate::ip_proto::ICMPV6, 32);
        m.fill_checksum(ph);
        let m = Message::new_checked(&b[..]).unwrap();
        assert_eq!(
            (m.msg_type(), m.flags(), m.target()),
            (icmp::v6::NEIGHBOR_ADVERT, flags::OVERRIDE, target)
        );
        assert_eq!(m.link_layer(option::TARGET_LL), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(checksum::finish(checksum::accumulate(ph, &b)), 0, "the checksum verifies");
    }
}
