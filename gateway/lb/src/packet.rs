//! Parse a frame into what the L4 stage needs: offsets, addresses, ports, flags.
//!
//! Every length is checked through the `sluice_wire` views' `new_checked` before it is used;
//! after [`parse`] succeeds, the offsets in [`Meta`] are valid for the frame they came from, so
//! the rewrite code can index without re-checking. Malformed input maps to a [`DropReason`].
//!
//! Hot path: yes.

use sluice_model::addr::{Addr, Family};
use sluice_model::drop::DropReason;
use sluice_wire::ethernet::{self, ethertype};
use sluice_wire::{Error, arp, icmp, ip_proto, ipv4, ipv6, tcp, udp};

/// What the L4 stage knows about an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// Offset of the transport header in the frame.
    pub l4: usize,
    /// Length of the transport header and payload (the IP payload after extension headers).
    pub l4_len: usize,
    /// Address family.
    pub family: Family,
    /// Transport protocol number.
    pub proto: u8,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// TCP flags (0 otherwise).
    pub tcp_flags: u8,

    /// TTL or hop limit.
    pub ttl: u8,
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// An IP packet.
    Ip(Meta),
    /// An Ethernet/IPv4 ARP packet at this offset.
    Arp(usize),
}

fn v4_err(e: Error) -> DropReason {
    match e {
        Error::Truncated => DropReason::TruncatedIpv4,
        Error::BadVersion => DropReason::BadIpVersion,
        Error::BadHeaderLen => DropReason::BadIpv4HeaderLen,
        _ => DropReason::BadIpv4Length,
    }
}

fn v6_err(e: Error) -> DropReason {
    match e {
        Error::BadVersion => DropReason::BadIpVersion,
        Error::ExtensionChain => DropReason::Ipv6ExtensionChain,
        _ => DropReason::BadIpv6Length,
    }
}

/// Parses a frame. See the module documentation.
#[inline]
pub fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::TruncatedEthernet)?;
    let l3 = eth.l3().map_err(|_| DropReason::BadVlan)?;
    let rest = &frame[l3.offset..];
    let (family, proto, src, dst, l4, l4_end, ttl) = match l3.ethertype {
        ethertype::IPV4 => {
            let ip = ipv4::Packet::new_checked(rest).map_err(v4_err)?;
            if ip.is_fragment() {
                return Err(DropReason::Ipv4Fragment);
            }
            let hl = ip.header_len();
            let (s, d) = (ip.src(), ip.dst());
            (Family::V4, ip.protocol(), Addr::from_v4(s), Addr::from_v4(d), hl, ip.total_len(), ip.ttl())
        }
        ethertype::IPV6 => {
            if rest.len() < ipv6::HEADER_LEN {
                return Err(DropReason::TruncatedIpv6);
            }
            let ip = ipv6::Packet::new_checked(rest).map_err(v6_err)?;
            let ul = ip.upper_layer().map_err(v6_err)?;
            if ul.fragment {
                return Err(DropReason::Ipv6Fragment);
            }
            (
                Family::V6,
                ul.protocol,
                Addr::from_v6(ip.src()),
                Addr::from_v6(ip.dst()),
                ul.offset,
                ip.total_len(),
                ip.hop_limit(),
            )
        }
        ethertype::ARP => {
            arp::Packet::new_checked(rest).map_err(|_| DropReason::MalformedArp)?;
            return Ok(Parsed::Arp(l3.offset));
        }
        _ => return Err(DropReason::UnknownEthertype),
    };
    let seg = &rest[l4..l4_end];
    let mut m = Meta {
        l3: l3.offset,
        l4: l3.offset + l4,
        l4_len: seg.len(),
        family,
        proto,
        src,
        dst,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl,
    };
    match proto {
        ip_proto::TCP => {
            let t = tcp::Packet::new_checked(seg).map_err(|e| match e {
                Error::Truncated => DropReason::TruncatedTcp,
                _ => DropReason::BadTcpHeaderLen,
            })?;
            m.sport = t.src_port();
            m.dport = t.dst_port();
            m.tcp_flags = t.flags();
        }
        ip_proto::UDP => {
            let u = udp::Packet::new_checked(seg).map_err(|e| match e {
                Error::Truncated => DropReason::TruncatedUdp,
                _ => DropReason::BadUdpLength,
            })?;
            m.sport = u.src_port();
            m.dport = u.dst_port();
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            icmp::Packet::new_checked(seg).map_err(|_| DropReason::TruncatedIcmp)?;
        }
        _ => {}
    }
    Ok(Parsed::Ip(m))
}

/// What connection tracking reads of a TCP segment beyond its ports and flags. Read from the
/// frame when tracking needs it ([`Meta::tcp_segment`]), not carried in [`Meta`]: every frame's
/// `Meta` is moved between the passes of a batch, and UDP has no use for these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSegment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with the ACK flag).
    pub ack: u32,
    /// Window field, unscaled.
    pub window: u16,
    /// Sequence space the segment occupies: payload bytes, plus one each for SYN and FIN.
    pub len: u32,
    /// Flags.
    pub flags: u8,
}

impl Meta {
    /// The TCP header length of the segment this describes in `frame` (TCP only; [`parse`]
    /// checked it lies within the segment).
    #[inline(always)]
    fn tcp_header_len(&self, frame: &[u8]) -> usize {
        usize::from(frame.get(self.l4 + 12).copied().unwrap_or(0x50) >> 4) * 4
    }

    /// Sequence number, window and length of the TCP segment this describes in `frame`.
    #[inline]
    pub fn tcp_segment(&self, frame: &[u8]) -> TcpSegment {
        let Ok(t) = tcp::Packet::new_checked(frame.get(self.l4..self.l4 + self.l4_len).unwrap_or(&[])) else {
            return TcpSegment { flags: self.tcp_flags, ..TcpSegment::default() };
        };
        let f = self.tcp_flags;
        TcpSegment {
            seq: t.seq(),
            ack: t.ack(),
            window: t.window(),
            len: (self.l4_len - t.header_len()) as u32
                + u32::from(f & tcp::flags::SYN != 0)
                + u32::from(f & tcp::flags::FIN != 0),
            flags: f,
        }
    }

    /// The TCP options of the segment this describes in `frame` (TCP only).
    #[inline]
    pub fn tcp_options(&self, frame: &[u8]) -> tcp::Options {
        let hl = self.tcp_header_len(frame);
        match frame.get(self.l4 + tcp::MIN_HEADER_LEN..self.l4 + hl) {
            Some(opts) if hl > tcp::MIN_HEADER_LEN => tcp::parse_options(opts),
            _ => tcp::Options::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp4() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 2], [198, 19, 0, 10], 64)
            .udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"q").unwrap();
        v
    }

    #[test]
    fn parses_udp4() {
        let f = udp4();
        let Ok(Parsed::Ip(m)) = parse(&f) else { panic!() };
        assert_eq!((m.l3, m.l4, m.l4_len), (14, 34, 9));
        assert_eq!((m.family, m.proto, m.sport, m.dport, m.ttl), (Family::V4, 17, 5353, 53, 64));
        assert_eq!(m.src, Addr::from_v4([198, 18, 0, 2]));
    }

    #[test]
    fn every_truncation_is_a_named_drop() {
        let f = udp4();
        for n in 0..f.len() {
            let r = parse(&f[..n]);
            assert!(r.is_err(), "prefix {n} parsed");
        }
        assert_eq!(parse(&f[..13]), Err(DropReason::TruncatedEthernet));
        assert_eq!(parse(&f[..20]), Err(DropReason::TruncatedIpv4));
        assert_eq!(parse(&f[..40]), Err(DropReason::BadIpv4Length));
    }
}
