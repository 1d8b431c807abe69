//! Frames: one template per size, patched per packet.
//!
//! A measurement payload (UDP) starts with [`MAGIC`], then the sequence number and the transmit
//! time (ns, `CLOCK_MONOTONIC`, shared by every namespace of a host), both big-endian; the rest
//! is zero. The 18 bytes fit the smallest IPv4 frame (60 bytes without FCS). The XDP receive program hands frames carrying the magic to pktgen's socket.

use std::net::IpAddr;

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

fn sum16(words: &[u8]) -> u32 {
    words.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// RFC 1624: a checksum after replacing 16-bit words `old` by `new` (equal lengths, even).
#[inline]
pub fn csum_update(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = u32::from(!sum);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        s += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(s)
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
        let mut sum = u16::from_be_bytes([f[l.csum], f[l.csum + 1]]);
        if host != 0 {
            let old: [u8; 4] = f[l.src_lo..l.src_lo + 4].try_into().unwrap_or_default();
            let new = (u32::from_be_bytes(old).wrapping_add(host)).to_be_bytes();
            f[l.src_lo..l.src_lo + 4].copy_from_slice(&new);
            sum = csum_update(sum, &old, &new);
            if l.v4 {
                let c = u16::from_be_bytes([f[l.ip + 10], f[l.ip + 11]]);
                f[l.ip + 10..l.ip + 12].copy_from_slice(&csum_update(c, &old, &new).to_be_bytes());
            }
        }
        let old_port = [f[l.l4], f[l.l4 + 1]];
        f[l.l4..l.l4 + 2].copy_from_slice(&port.to_be_bytes());
        sum = csum_update(sum, &old_port, &port.to_be_bytes());
        if tr.proto == Proto::Tcp {
            let old: [u8; 4] = f[l.l4 + 4..l.l4 + 8].try_into().unwrap_or_default();
            let new = (n as u32).to_be_bytes();
            f[l.l4 + 4..l.l4 + 8].copy_from_slice(&new);
            sum = csum_update(sum, &old, &new);
        }
        if tr.proto == Proto::Udp {
            let at = l.l4 + 8 + MAGIC.len();
            let mut new = [0u8; 16];
            new[..8].copy_from_slice(&n.to_be_bytes());
            new[8..].copy_from_slice(&tx_ns.to_be_bytes());
            let old: [u8; 16] = f[at..at + 16].try_into().unwrap_or_default();
            f[at..at + 16].copy_from_slice(&new);
            sum = csum_update(sum, &old, &new);
            if sum == 0 {
                sum = 0xffff; // UDP: a computed zero is sent as all ones
            }
        }
        f[l.csum..l.csum + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// A template: headers with checksums over the base values (first address, first port,
/// sequence 0, time 0).
fn build(tr: &Traffic, size: usize) -> Template {
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&tr.dst_mac);
    f[6..12].copy_from_slice(&tr.src_mac);
    let ip = 14;
    let (v4, l4, src, dst) = match (tr.src_ip, tr.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (true, ip + 20, s.octets().to_vec(), d.octets().to_vec()),
        (IpAddr::V6(s), IpAddr::V6(d)) => (false, ip + 40, s.octets().to_vec(), d.octets().to_vec()),
        _ => unreachable!("families checked by Frames::new"),
    };
    let next = match tr.proto {
        Proto::Udp => 17u8,
        Proto::Syn | Proto::Tcp => 6u8,
    };
    let l4_len = match tr.proto {
        Proto::Udp => size - l4,
        Proto::Syn | Proto::Tcp => 20,
    };
    if v4 {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ip] = 0x45;
        f[ip + 2..ip + 4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[ip + 6] = 0x40; // don't fragment
        f[ip + 8] = 64;
        f[ip + 9] = next;
        f[ip + 12..ip + 16].copy_from_slice(&src);
        f[ip + 16..ip + 20].copy_from_slice(&dst);
        let c = !fold(sum16(&f[ip..ip + 20]));
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[ip] = 0x60;
        f[ip + 4..ip + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        f[ip + 6] = next;
        f[ip + 7] = 64;
        f[ip + 8..ip + 24].copy_from_slice(&src);
        f[ip + 24..ip + 40].copy_from_slice(&dst);
    }
    let csum = match tr.proto {
        Proto::Udp => {
            f[l4..l4 + 2].copy_from_slice(&tr.sport.to_be_bytes());
            f[l4 + 2..l4 + 4].copy_from_slice(&tr.dport.to_be_bytes());
            f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[l4 + 8..l4 + 10].copy_from_slice(&MAGIC);
            l4 + 6
        }
        Proto::Syn | Proto::Tcp => {
            f[l4..l4 + 2].copy_from_slice(&tr.sport.to_be_bytes());
            f[l4 + 2..l4 + 4].copy_from_slice(&tr.dport.to_be_bytes());
            f[l4 + 4..l4 + 8].copy_from_slice(&1u32.to_be_bytes());
            f[l4 + 12] = 5 << 4;
            f[l4 + 13] = 0x02;
            f[l4 + 14..l4 + 16].copy_from_slice(&64240u16.to_be_bytes());
            l4 + 16
        }
    };
    // Pseudo-header + L4 segment.
    let mut pseudo = Vec::with_capacity(40 + l4_len);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    if v4 {
        pseudo.extend_from_slice(&[0, next]);
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&(l4_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, next]);
    }
    pseudo.extend_from_slice(&f[l4..l4 + l4_len]);
    let mut c = !fold(sum16(&pseudo));
    if c == 0 && tr.proto == Proto::Udp {
        c = 0xffff;
    }
    f[csum..csum + 2].copy_from_slice(&c.to_be_bytes());
    let src_lo = if v4 { ip + 12 } else { ip + 8 + 12 };
    Template { bytes: f, layout: Layout { ip, l4, csum, src_lo, v4 } }
}

/// Where a frame's TCP header is, if it is an untagged IPv4 (no options) or IPv6 (no extension
/// headers) TCP segment: (IP offset, TCP offset, IPv4?).
fn tcp_at(f: &[u8]) -> Option<(usize, usize, bool)> {
    match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        0x0800 if *f.get(14)? == 0x45 && *f.get(23)? == 6 && f.len() >= 14 + 20 + 20 => Some((14, 34, true)),
        0x86dd if *f.get(20)? == 6 && f.len() >= 14 + 40 + 20 => Some((14, 54, false)),
        _ => None,
    }
}

/// The TCP checksum of the 20-byte segment at `l4`, computed whole.
fn tcp_checksum(f: &[u8], ip: usize, l4: usize, v4: bool) -> u16 {
    let mut s = if v4 { sum16(&f[ip + 12..ip + 20]) } else { sum16(&f[ip + 8..ip + 40]) };
    s += 6 + 20;
    s += sum16(&f[l4..l4 + 16]) + sum16(&f[l4 + 18..l4 + 20]);
    !fold(s)
}

/// Turns a SYN-ACK that answers one of our SYNs into the ACK that completes the handshake, in
/// place (addresses and ports swapped, options dropped, checksums computed): returns the
/// sequence number our SYN carried and the ACK's length. `None` for any other frame.
pub fn ack_syn_ack(f: &mut [u8]) -> Option<(u32, usize)> {
    let (ip, l4, v4) = tcp_at(f)?;
    if f[l4 + 13] & 0x3f != 0x12 {
        return None; // not exactly SYN + ACK
    }
    let their_seq = u32::from_be_bytes(f[l4 + 4..l4 + 8].try_into().ok()?);
    let their_ack = u32::from_be_bytes(f[l4 + 8..l4 + 12].try_into().ok()?);
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    let (src, len) = if v4 { (ip + 12, 4) } else { (ip + 8, 16) };
    for i in 0..len {
        f.swap(src + i, src + len + i);
    }
    f.swap(l4, l4 + 2);
    f.swap(l4 + 1, l4 + 3);
    f[l4 + 4..l4 + 8].copy_from_slice(&their_ack.to_be_bytes());
    f[l4 + 8..l4 + 12].copy_from_slice(&their_seq.wrapping_add(1).to_be_bytes());
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = 0x10; // ACK
    f[l4 + 18..l4 + 20].fill(0);
    if v4 {
        f[ip + 2..ip + 4].copy_from_slice(&40u16.to_be_bytes());
        f[ip + 8] = 64;
        f[ip + 10..ip + 12].fill(0);
        let c = !fold(sum16(&f[ip..ip + 20]));
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        f[ip + 4..ip + 6].copy_from_slice(&20u16.to_be_bytes());
        f[ip + 7] = 64;
    }
    let c = tcp_checksum(f, ip, l4, v4);
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    Some((their_ack.wrapping_sub(1), l4 + 20))
}

/// Makes `ack` (from [`ack_syn_ack`]) the reset that closes the connection: RST + ACK, same
/// sequence numbers.
pub fn reset_of_ack(ack: &mut [u8]) {
    let Some((ip, l4, v4)) = tcp_at(ack) else { return };
    ack[l4 + 13] = 0x14;
    let c = tcp_checksum(ack, ip, l4, v4);
    ack[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// What a measurement frame carries: (sequence, transmit time), if it is one.
pub fn measurement(f: &[u8]) -> Option<(u64, u64)> {
    let l4 = match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        0x0800 if f.get(14)? & 0x0f == 5 && *f.get(23)? == 17 => 14 + 20,
        0x86dd if *f.get(20)? == 17 => 14 + 40,
        _ => return None,
    };
    let p = f.get(l4 + 8..l4 + 8 + MEASURE_LEN)?;
    if p[..2] != MAGIC {
        return None;
    }
    Some((u64::from_be_bytes(p[2..10].try_into().ok()?), u64::from_be_bytes(p[10..18].try_into().ok()?)))
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
