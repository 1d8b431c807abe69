//! Frames: one template per size, patched per packet.
//!
//! A measurement payload (UDP) starts with [`MAGIC`], then the sequence number and the transmit
//! time (ns, `CLOCK_MONOTONIC`, shared by every namespace of a host), both big-endian; the rest
//! is zero. The 18 bytes fit the smallest IPv4 frame (60 bytes without FCS). The XDP receive program hands frames carrying the magic to pktgen's socket.

use std::net::IpAddr;

use sluice_wire::checksum::{self, Delta};
use sluice_wire::ethernet::{self, ethertype};
use sluice_wire::tcp::flags;
use sluice_wire::{bytes, ip_proto, ipv4, ipv6, tcp, udp};

/// The first two payload bytes of a measurement frame ("SG").
pub const MAGIC: [u8; 2] = *b"SG";

/// Bytes of the measurement header: magic, sequence, transmit time.
pub const MEASURE_LEN: usize = 2 + 8 + 8;

/// IMIX: the classic simple mix, 7 : 4 : 1 of 64, 594 and 1518-byte frames (with FCS, as
/// usually quoted; the frames written are 4 bytes shorter).
pub const IMIX: [(usize, u32); 3] = [(64, 7), (594, 4), (1518, 1)];

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP with a measurement payload.
    Udp,
    /// TCP SYN (a flood: no payload, no measurement).
    Syn,
    /// TCP handshakes against a responder: a SYN per frame, its sequence number the frame's
    /// number; each SYN-ACK that comes back is acknowledged (the handshake completes on the
    /// responder) and the connection reset. The receive side measures SYN → SYN-ACK.
    Tcp,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Protocol.
    pub proto: Proto,
    /// Ethernet source and destination.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source addresses: the first and how many (consecutive).
    pub src_ip: IpAddr,
    /// How many source addresses.
    pub src_ips: u32,
    /// Destination address (the same family as the source).
    pub dst_ip: IpAddr,
    /// Source ports: the first and how many.
    pub sport: u16,
    /// How many source ports.
    pub sports: u16,
    /// Destination port.
    pub dport: u16,
    /// Frame sizes (without FCS) and weights; one entry for a fixed size.
    pub sizes: Vec<(usize, u32)>,
}

impl Traffic {
    /// Flows: source addresses × source ports.
    pub fn flows(&self) -> u64 {
        u64::from(self.src_ips) * u64::from(self.sports)
    }

    /// The smallest frame this traffic can be: headers (and the measurement header for UDP).
    pub fn min_size(&self) -> usize {
        let l3 = if self.dst_ip.is_ipv4() { 20 } else { 40 };
        let l4 = match self.proto {
            Proto::Udp => 8 + MEASURE_LEN,
            Proto::Syn | Proto::Tcp => 20,
        };
        (14 + l3 + l4).max(60)
    }
}

/// Offsets of the fields a packet varies, in a template.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ip: usize,
    l4: usize,
    /// The L4 checksum field.
    csum: usize,
    /// Where the varying low 32 bits of the source address sit.
    src_lo: usize,
    v4: bool,
}

/// One frame size's template.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    layout: Layout,
}

/// The templates of a traffic, and the order in which sizes follow one another (IMIX: a fixed
/// pattern in the weights' proportions, interleaved, so that any window holds the mix).
#[derive(Debug, Clone)]
pub struct Frames {
    templates: Vec<Template>,
    pattern: Vec<u8>,
    traffic: Traffic,
}

impl Frames {
    /// Builds the templates. Fails on sizes too small or too large, mixed families, empty ranges.
    pub fn new(traffic: &Traffic) -> Result<Frames, String> {
        if traffic.src_ip.is_ipv4() != traffic.dst_ip.is_ipv4() {
            return Err("source and destination addresses are of different families".into());
        }
        if traffic.src_ips == 0 || traffic.sports == 0 {
            return Err("empty address or port range".into());
        }
        if u32::from(traffic.sport) + u32::from(traffic.sports) - 1 > 65535 {
            return Err(format!("source ports {}+{} pass 65535", traffic.sport, traffic.sports));
        }
        if traffic.sizes.is_empty() || traffic.sizes.iter().all(|&(_, w)| w == 0) {
            return Err("no frame size".into());
        }
        let mut templates = Vec::new();
        for &(size, _) in &traffic.sizes {
            if size < traffic.min_size() || size > 4000 {
                return Err(format!(
                    "frame size {size}: must be {}–4000 bytes for this traffic (without FCS)",
                    traffic.min_size()
                ));
            }
            templates.push(build(traffic, size));
        }
        let mut pattern = Vec::new();
        let total: u32 = traffic.sizes.iter().map(|&(_, w)| w).sum();
        // Spread each size evenly over the pattern (largest remainder first).
        let mut credit = vec![0i64; traffic.sizes.len()];
        for _ in 0..total {
            for (c, &(_, w)) in credit.iter_mut().zip(&traffic.sizes) {
                *c += i64::from(w);
            }
            let (i, _) =
                credit.iter().enumerate().max_by_key(|(i, c)| (**c, -(*i as i64))).unwrap_or((0, &0));
            credit[i] -= i64::from(total);
            pattern.push(i as u8);
        }
        Ok(Frames { templates, pattern, traffic: traffic.clone() })
    }

    /// The protocol.
    pub fn proto(&self) -> Proto {
        self.traffic.proto
    }

    /// Which of the traffic's sizes packet `n` has (an index into [`Traffic::sizes`]).
    #[inline]
    pub fn size_index(&self, n: u64) -> usize {
        usize::from(self.pattern[(n % self.pattern.len() as u64) as usize])
    }

    /// How many sizes the traffic has.
    pub fn sizes(&self) -> usize {
        self.templates.len()
    }

    /// The frame size of packet `n`.
    pub fn size_of(&self, n: u64) -> usize {
        self.templates[self.size_index(n)].bytes.len()
    }

    /// The template for packet `n` (to copy into a frame before [`Self::patch`]).
    pub fn template(&self, n: u64) -> &[u8] {
        &self.templates[self.size_index(n)].bytes
    }

    /// Writes packet `n`'s varying fields into `f` (a copy of [`Self::template`]`(n)`): the
    /// flow (source address and port from `n`), and for UDP the sequence `n` and `tx_ns`, with
    /// the checksums updated incrementally.
    #[inline]
    pub fn patch(&self, f: &mut [u8], n: u64, tx_ns: u64) {
        let l = self.templates[self.size_index(n)].layout;
        let tr = &self.traffic;
        let flow = n % self.traffic.flows();
        let port = tr.sport + (flow % u64::from(tr.sports)) as u16;
        let host = (flow / u64::from(tr.sports)) as u32;
        // One delta for the L4 checksum (the pseudo-header's source address included), one for
        // the IPv4 header's.
        let mut l4_delta = Delta::ZERO;
        if host != 0 {
            let old = bytes::read_u32(f, l.src_lo);
            let new = old.wrapping_add(host);
            bytes::write_u32(f, l.src_lo, new);
            l4_delta.replace32(old, new);
            if l.v4 {
                let mut ip_delta = Delta::ZERO;
                ip_delta.replace32(old, new);
                let at = l.ip + ipv4::CHECKSUM_OFFSET;
                bytes::write_u16(f, at, ip_delta.apply(bytes::read_u16(f, at)));
            }
        }
        // The source port: the first field of TCP and UDP headers alike.
        l4_delta.replace16(bytes::read_u16(f, l.l4), port);
        bytes::write_u16(f, l.l4, port);
        match tr.proto {
            Proto::Tcp => {
                let mut t = tcp::Packet::new_unchecked(&mut f[l.l4..]);
                l4_delta.replace32(t.seq(), n as u32);
                t.set_seq(n as u32);
            }
            Proto::Udp => {
                let at = l.l4 + udp::HEADER_LEN + MAGIC.len();
                let mut new = [0u8; 16];
                new[..8].copy_from_slice(&n.to_be_bytes());
                new[8..].copy_from_slice(&tx_ns.to_be_bytes());
                l4_delta.replace_bytes(&f[at..at + 16], &new);
                f[at..at + 16].copy_from_slice(&new);
            }
            Proto::Syn => {}
        }
        let sum = bytes::read_u16(f, l.csum);
        let sum = if tr.proto == Proto::Udp { l4_delta.apply_udp(sum) } else { l4_delta.apply(sum) };
        bytes::write_u16(f, l.csum, sum);
    }
}

/// A template: headers with checksums over the base values (first address, first port,
/// sequence 1, time 0).
fn build(tr: &Traffic, size: usize) -> Template {
    let mut f = vec![0u8; size];
    let ip = ethernet::HEADER_LEN;
    let (v4, l4) = match tr.dst_ip {
        IpAddr::V4(_) => (true, ip + ipv4::MIN_HEADER_LEN),
        IpAddr::V6(_) => (false, ip + ipv6::HEADER_LEN),
    };
    let (next, l4_len) = match tr.proto {
        Proto::Udp => (ip_proto::UDP, size - l4),
        Proto::Syn | Proto::Tcp => (ip_proto::TCP, tcp::MIN_HEADER_LEN),
    };
    let ethertype = if v4 { ethertype::IPV4 } else { ethertype::IPV6 };
    ethernet::Frame::new_unchecked(&mut f[..]).emit(tr.dst_mac, tr.src_mac, ethertype);
    let pseudo = match (tr.src_ip, tr.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = ipv4::Repr {
                src: s.octets(),
                dst: d.octets(),
                protocol: next,
                payload_len: l4_len as u16,
                ttl: 64,
                ident: 0,
                dont_frag: true,
            };
            ipv4::Packet::new_unchecked(&mut f[ip..]).emit(&repr);
            checksum::pseudo_header_v4(repr.src, repr.dst, next, l4_len as u16)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = ipv6::Repr {
                src: s.octets(),
                dst: d.octets(),
                next_header: next,
                payload_len: l4_len as u16,
                hop_limit: 64,
            };
            ipv6::Packet::new_unchecked(&mut f[ip..]).emit(&repr);
            checksum::pseudo_header_v6(&repr.src, &repr.dst, next, l4_len as u32)
        }
        _ => unreachable!("families checked by Frames::new"),
    };
    let segment = &mut f[l4..l4 + l4_len];
    let csum = match tr.proto {
        Proto::Udp => {
            segment[udp::HEADER_LEN..udp::HEADER_LEN + MAGIC.len()].copy_from_slice(&MAGIC);
            let mut u = udp::Packet::new_unchecked(segment);
            u.emit(tr.sport, tr.dport, l4_len as u16);
            u.fill_checksum(pseudo);
            l4 + udp::CHECKSUM_OFFSET
        }
        Proto::Syn | Proto::Tcp => {
            let mut t = tcp::Packet::new_unchecked(segment);
            let repr = tcp::Repr {
                src_port: tr.sport,
                dst_port: tr.dport,
                seq: 1,
                ack: 0,
                flags: flags::SYN,
                window: 64_240,
            };
            t.emit(&repr);
            t.fill_checksum(pseudo);
            l4 + tcp::CHECKSUM_OFFSET
        }
    };
    // The low 32 bits of the source address, where the flow's host number is added.
    let src_lo = if v4 { ip + ipv4::SRC_OFFSET } else { ip + ipv6::SRC_OFFSET + 12 };
    Template { bytes: f, layout: Layout { ip, l4, csum, src_lo, v4 } }
}

/// Where a frame's TCP segment is, if it is an untagged IPv4 (no options) or IPv6 (no
/// extension headers) TCP segment of at least a header: (IP offset, TCP offset, IPv4?).
fn tcp_at(f: &[u8]) -> Option<(usize, usize, bool)> {
    let ip = ethernet::HEADER_LEN;
    match ethernet::Frame::new_checked(f).ok()?.ethertype() {
        ethertype::IPV4 => {
            let p = ipv4::Packet::new_checked(f.get(ip..)?).ok()?;
            let l4 = ip + p.header_len();
            (p.header_len() == ipv4::MIN_HEADER_LEN
                && p.protocol() == ip_proto::TCP
                && f.len() >= l4 + tcp::MIN_HEADER_LEN)
                .then_some((ip, l4, true))
        }
        ethertype::IPV6 => {
            let p = ipv6::Packet::new_checked(f.get(ip..)?).ok()?;
            let l4 = ip + ipv6::HEADER_LEN;
            (p.next_header() == ip_proto::TCP && f.len() >= l4 + tcp::MIN_HEADER_LEN)
                .then_some((ip, l4, false))
        }
        _ => None,
    }
}

/// Fills the TCP checksum of the 20-byte segment at `l4`.
fn fill_tcp_checksum(f: &mut [u8], ip: usize, l4: usize, v4: bool) {
    let len = tcp::MIN_HEADER_LEN;
    let pseudo = if v4 {
        ipv4::Packet::new_unchecked(&f[ip..]).pseudo_header()
    } else {
        ipv6::Packet::new_unchecked(&f[ip..]).pseudo_header(ip_proto::TCP, len)
    };
    tcp::Packet::new_unchecked(&mut f[l4..l4 + len]).fill_checksum(pseudo);
}

/// Turns a SYN-ACK that answers one of our SYNs into the ACK that completes the handshake, in
/// place (addresses and ports swapped, options dropped, checksums computed): returns the
/// sequence number our SYN carried and the ACK's length. `None` for any other frame.
pub fn ack_syn_ack(f: &mut [u8]) -> Option<(u32, usize)> {
    let (ip, l4, v4) = tcp_at(f)?;
    let syn_ack = tcp::Packet::new_checked(&f[l4..]).ok()?;
    if syn_ack.flags() & 0x3f != flags::SYN | flags::ACK {
        return None; // not exactly SYN + ACK
    }
    let reply = tcp::Repr {
        src_port: syn_ack.dst_port(),
        dst_port: syn_ack.src_port(),
        seq: syn_ack.ack(),
        ack: syn_ack.seq().wrapping_add(1),
        flags: flags::ACK,
        window: 64_240,
    };
    ethernet::Frame::new_unchecked(&mut *f).swap_macs();
    if v4 {
        let p = ipv4::Packet::new_unchecked(&f[ip..]);
        let repr = ipv4::Repr {
            src: p.dst(),
            dst: p.src(),
            protocol: ip_proto::TCP,
            payload_len: tcp::MIN_HEADER_LEN as u16,
            ttl: 64,
            ident: 0,
            dont_frag: true,
        };
        ipv4::Packet::new_unchecked(&mut f[ip..]).emit(&repr);
    } else {
        let p = ipv6::Packet::new_unchecked(&f[ip..]);
        let repr = ipv6::Repr {
            src: p.dst(),
            dst: p.src(),
            next_header: ip_proto::TCP,
            payload_len: tcp::MIN_HEADER_LEN as u16,
            hop_limit: 64,
        };
        ipv6::Packet::new_unchecked(&mut f[ip..]).emit(&repr);
    }
    tcp::Packet::new_unchecked(&mut f[l4..]).emit(&reply);
    fill_tcp_checksum(f, ip, l4, v4);
    Some((reply.seq.wrapping_sub(1), l4 + tcp::MIN_HEADER_LEN))
}

/// Makes `ack` (from [`ack_syn_ack`]) the reset that closes the connection: RST + ACK, same
/// sequence numbers.
pub fn reset_of_ack(ack: &mut [u8]) {
    let Some((ip, l4, v4)) = tcp_at(ack) else { return };
    tcp::Packet::new_unchecked(&mut ack[l4..])
        .set_header_len_and_flags(tcp::MIN_HEADER_LEN, flags::RST | flags::ACK);
    fill_tcp_checksum(ack, ip, l4, v4);
}

/// What a measurement frame carries: (sequence, transmit time), if it is one.
pub fn measurement(f: &[u8]) -> Option<(u64, u64)> {
    let ip = ethernet::HEADER_LEN;
    let l4 = match ethernet::Frame::new_checked(f).ok()?.ethertype() {
        ethertype::IPV4 => {
            let p = ipv4::Packet::new_checked(f.get(ip..)?).ok()?;
            (p.header_len() == ipv4::MIN_HEADER_LEN && p.protocol() == ip_proto::UDP)
                .then_some(ip + ipv4::MIN_HEADER_LEN)?
        }
        ethertype::IPV6 => {
            let p = ipv6::Packet::new_checked(f.get(ip..)?).ok()?;
            (p.next_header() == ip_proto::UDP).then_some(ip + ipv6::HEADER_LEN)?
        }
        _ => return None,
    };
    let p = f.get(l4 + udp::HEADER_LEN..l4 + udp::HEADER_LEN + MEASURE_LEN)?;
    if p[..MAGIC.len()] != MAGIC {
        return None;
    }
    Some((u64::from_be_bytes(bytes::array(p, 2)), u64::from_be_bytes(bytes::array(p, 10))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(src: &str, dst: &str, proto: Proto, sizes: Vec<(usize, u32)>) -> Traffic {
        Traffic {
            proto,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: src.parse().unwrap(),
            src_ips: 300,
            dst_ip: dst.parse().unwrap(),
            sport: 1000,
            sports: 700,
            dport: 9,
            sizes,
        }
    }

    /// Every patched frame's checksums verify (etherparse recomputes them), and its flow and
    /// sequence are the ones asked for.
    fn check(tr: &Traffic) {
        let frames = Frames::new(tr).unwrap();
        for n in [0u64, 1, 2, 699, 700, 701, 12_345, 209_999, 210_000, u64::from(u32::MAX) + 7] {
            let mut f = frames.template(n).to_vec();
            frames.patch(&mut f, n, 0x1122_3344_5566_7788 ^ n);
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let (src, ok) = match p.net.unwrap() {
                etherparse::NetSlice::Ipv4(ip) => {
                    let h = ip.header().to_header();
                    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
                    (IpAddr::V4(ip.header().source_addr()), {
                        let payload = ip.payload().payload;
                        match p.transport.unwrap() {
                            etherparse::TransportSlice::Udp(u) => {
                                u.to_header().calc_checksum_ipv4(&h, &payload[8..]).unwrap() == u.checksum()
                            }
                            etherparse::TransportSlice::Tcp(t) => {
                                t.to_header().calc_checksum_ipv4(&h, &payload[20..]).unwrap() == t.checksum()
                            }
                            _ => false,
                        }
                    })
                }
                etherparse::NetSlice::Ipv6(ip) => {
                    let h = ip.header().to_header();
                    let payload = ip.payload().payload;
                    (
                        IpAddr::V6(ip.header().source_addr()),
                        match p.transport.unwrap() {
                            etherparse::TransportSlice::Udp(u) => {
                                u.to_header().calc_checksum_ipv6(&h, &payload[8..]).unwrap() == u.checksum()
                            }
                            etherparse::TransportSlice::Tcp(t) => {
                                t.to_header().calc_checksum_ipv6(&h, &payload[20..]).unwrap() == t.checksum()
                            }
                            _ => false,
                        },
                    )
                }
            };
            assert!(ok, "L4 checksum of frame {n}");
            let flow = n % tr.flows();
            let host = (flow / u64::from(tr.sports)) as u32;
            let want = match tr.src_ip {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) + host).into()),
                IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(host)).into()),
            };
            assert_eq!(src, want, "source of frame {n}");
            if tr.proto == Proto::Udp {
                assert_eq!(measurement(&f), Some((n, 0x1122_3344_5566_7788 ^ n)));
            }
        }
    }

    #[test]
    fn patched_frames_carry_valid_checksums_in_every_form() {
        for (s, d) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
            for proto in [Proto::Udp, Proto::Syn, Proto::Tcp] {
                let min = traffic(s, d, proto, vec![]).min_size();
                for size in [min, min + 1, 1514] {
                    check(&traffic(s, d, proto, vec![(size, 1)]));
                }
            }
        }
        check(&traffic(
            "198.18.0.2",
            "198.18.0.1",
            Proto::Udp,
            IMIX.iter().map(|&(s, w)| (s - 4, w)).collect(),
        ));
        // IPv6 with its measurement header does not fit IMIX's 60-byte frames: refused.
        let v6 = traffic(
            "2001:db8::2",
            "2001:db8::1",
            Proto::Udp,
            IMIX.iter().map(|&(s, w)| (s - 4, w)).collect(),
        );
        assert!(Frames::new(&v6).is_err());
    }

    /// A SYN-ACK to one of our SYNs becomes the ACK (and then the RST) a client would send,
    /// with valid checksums, for both families.
    #[test]
    fn syn_acks_are_answered_with_the_ack_and_the_reset() {
        for (s, d) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
            let tr = traffic(s, d, Proto::Tcp, vec![(80, 1)]);
            let frames = Frames::new(&tr).unwrap();
            let mut syn = frames.template(77).to_vec();
            frames.patch(&mut syn, 77, 0);
            // The responder's SYN-ACK, with options, as etherparse writes it.
            let p = etherparse::SlicedPacket::from_ethernet(&syn).unwrap();
            let etherparse::TransportSlice::Tcp(t) = p.transport.unwrap() else { panic!("TCP") };
            assert_eq!(t.sequence_number(), 77);
            let b = etherparse::PacketBuilder::ethernet2(tr.dst_mac, tr.src_mac);
            let b = match (tr.dst_ip, tr.src_ip) {
                (IpAddr::V4(a), IpAddr::V4(c)) => b.ipv4(a.octets(), c.octets(), 64),
                (IpAddr::V6(a), IpAddr::V6(c)) => b.ipv6(a.octets(), c.octets(), 64),
                _ => unreachable!(),
            };
            let mut synack = Vec::new();
            b.tcp(tr.dport, t.source_port(), 9000, 65000)
                .syn()
                .ack(78)
                .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
                .unwrap()
                .write(&mut synack, &[])
                .unwrap();
            let (seq, len) = ack_syn_ack(&mut synack).expect("a SYN-ACK");
            assert_eq!(seq, 77);
            synack.truncate(len);
            let check = |f: &[u8], rst: bool| {
                let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
                let etherparse::TransportSlice::Tcp(t) = p.transport.clone().unwrap() else { panic!("TCP") };
                assert_eq!((t.sequence_number(), t.acknowledgment_number()), (78, 9001));
                assert!(t.ack() && !t.syn() && t.rst() == rst);
                assert_eq!(t.source_port(), l4_port(&syn));
                let ok = match p.net.unwrap() {
                    etherparse::NetSlice::Ipv4(ip) => {
                        let h = ip.header().to_header();
                        assert_eq!(h.header_checksum, h.calc_header_checksum());
                        t.to_header().calc_checksum_ipv4(&h, &[]).unwrap() == t.checksum()
                    }
                    etherparse::NetSlice::Ipv6(ip) => {
                        t.to_header().calc_checksum_ipv6(&ip.header().to_header(), &[]).unwrap()
                            == t.checksum()
                    }
                };
                assert!(ok, "TCP checksum");
            };
            check(&synack, false);
            reset_of_ack(&mut synack);
            check(&synack, true);
            // Anything else is left alone.
            assert!(ack_syn_ack(&mut syn.clone()).is_none());
        }
    }

    fn l4_port(f: &[u8]) -> u16 {
        let at = if f[12] == 0x08 { 34 } else { 54 };
        u16::from_be_bytes([f[at], f[at + 1]])
    }

    #[test]
    fn imix_follows_its_proportions_in_every_window() {
        let tr =
            traffic("198.18.0.2", "198.18.0.1", Proto::Udp, IMIX.iter().map(|&(s, w)| (s - 4, w)).collect());
        let f = Frames::new(&tr).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for n in 0..12 {
            *counts.entry(f.size_of(n)).or_insert(0) += 1;
        }
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![(60, 7), (590, 4), (1514, 1)]);
    }

    #[test]
    fn impossible_traffic_is_refused_with_the_reason() {
        let mut tr = traffic("198.18.0.2", "2001:db8::1", Proto::Udp, vec![(64, 1)]);
        assert!(Frames::new(&tr).unwrap_err().contains("families"));
        tr.dst_ip = "198.18.0.1".parse().unwrap();
        tr.sizes = vec![(40, 1)];
        assert!(Frames::new(&tr).unwrap_err().contains("frame size 40"));
        tr.sizes = vec![(64, 1)];
        tr.sport = 65000;
        assert!(Frames::new(&tr).unwrap_err().contains("65535"));
    }
}
