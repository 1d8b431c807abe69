//! In-place rewrites: NAT of TCP/UDP packets, ICMP echo replies, and the translation of ICMP
//! errors about a NATed flow. Checksums are updated incrementally (RFC 1624) from the changed
//! words only; the payload is never read — except for ICMP error messages, whose checksum covers
//! the quoted packet we rewrite, and which are small and rare, so it is recomputed over the
//! message.
//!
//! Every function here takes a [`Meta`] produced by [`crate::packet::parse`] for the same frame:
//! its offsets are valid, which is why the indexing below cannot go out of bounds.
//!
//! Hot path: yes.

use crate::packet::Meta;
use sluice_model::addr::{Addr, Family};
use sluice_wire::bytes::{read_u16 as rd16, read_u32 as rd32, write_u16 as wr16, write_u32 as wr32};
use sluice_wire::checksum::{self, Delta};
use sluice_wire::{icmp, ip_proto, ipv4, ipv6, tcp, udp};

/// Writes new source and destination addresses into the IP header at `ip`, returning the
/// checksum delta of the change (which is also the pseudo-header delta of the transport layer).
/// One fixed-size path per family: no loops, no `memcpy` calls.
#[inline(always)]
fn set_addrs(frame: &mut [u8], ip: usize, family: Family, src: &Addr, dst: &Addr) -> Delta {
    let mut d = Delta::ZERO;
    match family {
        Family::V4 => {
            let (so, dof) = (ip + ipv4::SRC_OFFSET, ip + ipv4::DST_OFFSET);
            let (ns, nd) = (u32::from_be_bytes(src.v4()), u32::from_be_bytes(dst.v4()));
            d.replace32(rd32(frame, so), ns);
            d.replace32(rd32(frame, dof), nd);
            wr32(frame, so, ns);
            wr32(frame, dof, nd);
        }
        Family::V6 => {
            let (so, dof) = (ip + ipv6::SRC_OFFSET, ip + ipv6::DST_OFFSET);
            for i in 0..4 {
                d.replace32(rd32(frame, so + 4 * i), rd32(&src.0, 4 * i));
                d.replace32(rd32(frame, dof + 4 * i), rd32(&dst.0, 4 * i));
            }
            frame[so..so + 16].copy_from_slice(&src.0);
            frame[dof..dof + 16].copy_from_slice(&dst.0);
        }
    }
    d
}

/// The transport checksum offset within its header, for TCP or UDP.
#[inline(always)]
fn l4_checksum_offset(proto: u8) -> usize {
    if proto == ip_proto::TCP { tcp::CHECKSUM_OFFSET } else { udp::CHECKSUM_OFFSET }
}

#[inline(always)]
fn apply_l4(frame: &mut [u8], at: usize, proto: u8, d: Delta) {
    let c = rd16(frame, at);
    let n = if proto == ip_proto::UDP { d.apply_udp(c) } else { d.apply(c) };
    wr16(frame, at, n);
}

/// Rewrites a TCP or UDP packet to `src:sport → dst:dport` and decrements its TTL / hop limit
/// (the caller has checked it is above 1). IP and transport checksums are updated incrementally.
#[inline]
pub fn rewrite(frame: &mut [u8], m: &Meta, src: &Addr, sport: u16, dst: &Addr, dport: u16) {
    let ip = m.l3;
    let mut l4d = set_addrs(frame, ip, m.family, src, dst);
    match m.family {
        Family::V4 => {
            let mut ipd = l4d;
            let tp = rd16(frame, ip + ipv4::TTL_OFFSET);
            ipd.replace16(tp, tp - 0x0100);
            wr16(frame, ip + ipv4::TTL_OFFSET, tp - 0x0100);
            let c = rd16(frame, ip + ipv4::CHECKSUM_OFFSET);
            wr16(frame, ip + ipv4::CHECKSUM_OFFSET, ipd.apply(c));
        }
        Family::V6 => frame[ip + ipv6::HOP_LIMIT_OFFSET] -= 1,
    }
    l4d.replace16(m.sport, sport);
    l4d.replace16(m.dport, dport);
    wr16(frame, m.l4, sport);
    wr16(frame, m.l4 + 2, dport);
    apply_l4(frame, m.l4 + l4_checksum_offset(m.proto), m.proto, l4d);
}

/// [`rewrite`] of every packet of one flow direction, as constants: the new addresses and ports,
/// and the checksum deltas folded once. The XDP fast path's entry carries this, and applies it
/// to the checksums as they lie in memory (`csum_apply` in `steer.c`); for any packet of that
/// direction with a TTL above 1, the result is [`rewrite`]'s, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedRewrite {
    /// New source address.
    pub src: Addr,
    /// New source port.
    pub sport: u16,
    /// New destination address.
    pub dst: Addr,
    /// New destination port.
    pub dport: u16,
    /// The IPv4 header checksum's delta: addresses and the TTL decrement (unused for IPv6).
    pub ip_delta: u16,
    /// The TCP/UDP checksum's delta: addresses (the pseudo-header) and ports.
    pub l4_delta: u16,
}

/// The rewrite of packets `from` (source, source port, destination, destination port, as they
/// arrive) into `to`, both of `family`.
pub fn fixed_rewrite(
    family: Family,
    from: (Addr, u16, Addr, u16),
    to: (Addr, u16, Addr, u16),
) -> FixedRewrite {
    let mut d = Delta::ZERO;
    match family {
        Family::V4 => {
            d.replace32(u32::from_be_bytes(from.0.v4()), u32::from_be_bytes(to.0.v4()));
            d.replace32(u32::from_be_bytes(from.2.v4()), u32::from_be_bytes(to.2.v4()));
        }
        Family::V6 => {
            d.replace_bytes(&from.0.0, &to.0.0);
            d.replace_bytes(&from.2.0, &to.2.0);
        }
    }
    // The TTL decrement, as [`rewrite`] records it: the word (TTL, protocol) loses 0x0100,
    // whatever the TTL, so the delta is the same for every packet.
    let mut ip = d;
    ip.replace16(0x0100, 0);
    d.replace16(from.1, to.1);
    d.replace16(from.3, to.3);
    FixedRewrite {
        src: to.0,
        sport: to.1,
        dst: to.2,
        dport: to.3,
        ip_delta: ip.folded(),
        l4_delta: d.folded(),
    }
}

/// The hop limit Sluice's own replies start with.
pub const REPLY_TTL: u8 = 64;

/// Whether the packet is an ICMP (v4) or ICMPv6 echo request.
#[inline]
pub fn is_echo_request(frame: &[u8], m: &Meta) -> bool {
    match m.family {
        Family::V4 => m.proto == ip_proto::ICMP && frame[m.l4] == icmp::v4::ECHO_REQUEST,
        Family::V6 => m.proto == ip_proto::ICMPV6 && frame[m.l4] == icmp::v6::ECHO_REQUEST,
    }
}

/// Turns an echo request (see [`is_echo_request`]) into its reply in place: addresses swapped,
/// type changed, TTL reset, checksums updated. Ethernet addresses are the caller's.
pub fn echo_reply(frame: &mut [u8], m: &Meta) {
    let ip = m.l3;
    set_addrs(frame, ip, m.family, &m.dst, &m.src); // a swap leaves every sum unchanged
    let rep = match m.family {
        Family::V4 => {
            let tp = rd16(frame, ip + ipv4::TTL_OFFSET);
            let ntp = (u16::from(REPLY_TTL) << 8) | (tp & 0xff);
            let mut d = Delta::ZERO;
            d.replace16(tp, ntp);
            wr16(frame, ip + ipv4::TTL_OFFSET, ntp);
            let c = rd16(frame, ip + ipv4::CHECKSUM_OFFSET);
            wr16(frame, ip + ipv4::CHECKSUM_OFFSET, d.apply(c));
            icmp::v4::ECHO_REPLY
        }
        Family::V6 => {
            frame[ip + ipv6::HOP_LIMIT_OFFSET] = REPLY_TTL;
            icmp::v6::ECHO_REPLY
        }
    };
    frame[m.l4] = rep;
    // Summed anew, not updated: an update cannot tell the two zeros of one's complement apart,
    // and a message of zeros only (an echo with identifier, sequence and data all 0) would get
    // 0x0000 where its checksum is 0xffff (found by fuzz/run frames). Echoes are small and rare.
    fill_icmp_checksum(frame, m, &m.dst, &m.src);
}

/// Sums the ICMP message `m` describes anew into its checksum field; `src` and `dst` are the
/// addresses it now travels between (ICMPv6 sums them in its pseudo-header).
fn fill_icmp_checksum(frame: &mut [u8], m: &Meta, src: &Addr, dst: &Addr) {
    let msg = m.l4..m.l4 + m.l4_len;
    wr16(frame, m.l4 + icmp::CHECKSUM_OFFSET, 0);
    let pseudo = match m.family {
        Family::V4 => 0,
        Family::V6 => checksum::pseudo_header_v6(&src.0, &dst.0, ip_proto::ICMPV6, m.l4_len as u32),
    };
    let c = checksum::finish(checksum::accumulate(pseudo, &frame[msg]));
    wr16(frame, m.l4 + icmp::CHECKSUM_OFFSET, c);
}

/// Whether the packet is an ICMP error that quotes another packet (destination unreachable,
/// fragmentation needed, time exceeded, parameter problem, packet too big).
#[inline]
pub fn is_icmp_error(frame: &[u8], m: &Meta) -> bool {
    let t = frame[m.l4];
    match m.family {
        Family::V4 => {
            m.proto == ip_proto::ICMP
                && matches!(
                    t,
                    icmp::v4::DEST_UNREACHABLE | icmp::v4::TIME_EXCEEDED | icmp::v4::PARAMETER_PROBLEM
                )
        }
        Family::V6 => {
            m.proto == ip_proto::ICMPV6
                && matches!(
                    t,
                    icmp::v6::DEST_UNREACHABLE
                        | icmp::v6::PACKET_TOO_BIG
                        | icmp::v6::TIME_EXCEEDED
                        | icmp::v6::PARAMETER_PROBLEM
                )
        }
    }
}

/// The packet an ICMP error quotes, as far as NAT needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Offset of the quoted IP header in the frame.
    pub ip: usize,
    /// Offset of the quoted transport header in the frame.
    pub l4: usize,
    /// End of the quoted bytes in the frame.
    pub end: usize,
    /// Quoted transport protocol (TCP or UDP).
    pub proto: u8,
    /// Quoted source address.
    pub src: Addr,
    /// Quoted destination address.
    pub dst: Addr,
    /// Quoted source port.
    pub sport: u16,
    /// Quoted destination port.
    pub dport: u16,
}

/// Reads the packet quoted by an ICMP error (see [`is_icmp_error`]). The quote is truncated by
/// design (RFC 792 keeps 8 bytes past the IP header; RFC 4443 as much as fits), so lengths in it
/// are not trusted: we need the whole quoted IP header, no IPv4 fragment offset, a TCP or UDP
/// header directly after it (IPv6 extension headers in quotes are not walked), and its ports.
pub fn quote(frame: &[u8], m: &Meta) -> Option<Quote> {
    let ip = m.l4 + icmp::HEADER_LEN;
    let end = m.l4 + m.l4_len;
    if ip >= end {
        return None;
    }
    let q = &frame[ip..end];
    let (hl, proto, src, dst) = match m.family {
        Family::V4 => {
            if q.len() < ipv4::MIN_HEADER_LEN || q[0] >> 4 != 4 {
                return None;
            }
            let hl = usize::from(q[0] & 0x0f) * 4;
            if hl < ipv4::MIN_HEADER_LEN || rd16(q, 6) & 0x1fff != 0 {
                return None;
            }
            let a = |o: usize| Addr::from_v4([q[o], q[o + 1], q[o + 2], q[o + 3]]);
            (hl, q[9], a(ipv4::SRC_OFFSET), a(ipv4::DST_OFFSET))
        }
        Family::V6 => {
            if q.len() < ipv6::HEADER_LEN || q[0] >> 4 != 6 {
                return None;
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&q[ipv6::SRC_OFFSET..ipv6::SRC_OFFSET + 16]);
            d.copy_from_slice(&q[ipv6::DST_OFFSET..ipv6::DST_OFFSET + 16]);
            (ipv6::HEADER_LEN, q[6], Addr::from_v6(s), Addr::from_v6(d))
        }
    };
    if !(proto == ip_proto::TCP || proto == ip_proto::UDP) || q.len() < hl + 8 {
        return None;
    }
    Some(Quote { ip, l4: ip + hl, end, proto, src, dst, sport: rd16(q, hl), dport: rd16(q, hl + 2) })
}

/// New addresses for an ICMP error and the packet it quotes.
#[derive(Debug, Clone, Copy)]
pub struct IcmpTranslation {
    /// Outer source.
    pub src: Addr,
    /// Outer destination.
    pub dst: Addr,
    /// Quoted source and port.
    pub q_src: (Addr, u16),
    /// Quoted destination and port.
    pub q_dst: (Addr, u16),
    /// Added to a quoted TCP segment's sequence number: a proxied flow's segment to the client
    /// is quoted to the backend in the backend's sequence space (its stack checks that the
    /// quoted sequence number is one it sent). 0 otherwise.
    pub q_seq_shift: u32,
}

/// Rewrites an ICMP error and its quote (from [`quote`]), updating the quoted IP and transport
/// checksums incrementally (the transport one only when the quote holds it), the outer header
/// incrementally with a TTL decrement, and the ICMP checksum over the message.
pub fn translate_icmp_error(frame: &mut [u8], m: &Meta, q: &Quote, t: &IcmpTranslation) {
    // The quoted packet.
    let mut qd = set_addrs(frame, q.ip, m.family, &t.q_src.0, &t.q_dst.0);
    if m.family == Family::V4 {
        let c = rd16(frame, q.ip + ipv4::CHECKSUM_OFFSET);
        wr16(frame, q.ip + ipv4::CHECKSUM_OFFSET, qd.apply(c));
    }
    qd.replace16(q.sport, t.q_src.1);
    qd.replace16(q.dport, t.q_dst.1);
    wr16(frame, q.l4, t.q_src.1);
    wr16(frame, q.l4 + 2, t.q_dst.1);
    if t.q_seq_shift != 0 && q.proto == ip_proto::TCP && q.l4 + 8 <= q.end {
        let old = rd32(frame, q.l4 + 4);
        let new = old.wrapping_add(t.q_seq_shift);
        qd.replace32(old, new);
        wr32(frame, q.l4 + 4, new);
    }
    let qc = q.l4 + l4_checksum_offset(q.proto);
    if qc + 2 <= q.end {
        apply_l4(frame, qc, q.proto, qd);
    }
    // The outer header.
    let od = set_addrs(frame, m.l3, m.family, &t.src, &t.dst);
    match m.family {
        Family::V4 => {
            let mut d = od;
            let tp = rd16(frame, m.l3 + ipv4::TTL_OFFSET);
            d.replace16(tp, tp - 0x0100);
            wr16(frame, m.l3 + ipv4::TTL_OFFSET, tp - 0x0100);
            let c = rd16(frame, m.l3 + ipv4::CHECKSUM_OFFSET);
            wr16(frame, m.l3 + ipv4::CHECKSUM_OFFSET, d.apply(c));
        }
        Family::V6 => frame[m.l3 + ipv6::HOP_LIMIT_OFFSET] -= 1,
    }
    // The ICMP checksum covers the rewritten quote.
    fill_icmp_checksum(frame, m, &t.src, &t.dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Parsed, parse};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn meta(f: &[u8]) -> Meta {
        match parse(f) {
            Ok(Parsed::Ip(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Checks every checksum of a TCP/UDP/ICMP frame by recomputing it with etherparse.
    fn assert_checksums(f: &[u8]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net.clone() else {
            if let Some(etherparse::NetSlice::Ipv6(ip)) = p.net {
                match p.transport.unwrap() {
                    TransportSlice::Udp(u) => {
                        assert_eq!(
                            u.checksum(),
                            u.to_header().calc_checksum_ipv6(&ip.header().to_header(), u.payload()).unwrap()
                        )
                    }
                    TransportSlice::Tcp(t) => assert_eq!(
                        t.checksum(),
                        t.to_header().calc_checksum_ipv6(&ip.header().to_header(), t.payload()).unwrap()
                    ),
                    _ => {}
                }
            }
            return;
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        match p.transport.unwrap() {
            TransportSlice::Udp(u) => {
                assert_eq!(u.checksum(), u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap())
            }
            TransportSlice::Tcp(t) => {
                assert_eq!(t.checksum(), t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap())
            }
            _ => {}
        }
    }

    #[test]
    fn rewrite_tcp_v4_and_udp_v6_keep_checksums_valid() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 0, 2], [198, 19, 0, 10], 64)
            .tcp(40000, 80, 7, 1000)
            .syn()
            .write(&mut f, b"hello")
            .unwrap();
        let m = meta(&f);
        rewrite(&mut f, &m, &Addr::from_v4([198, 18, 0, 1]), 20001, &Addr::from_v4([198, 18, 1, 2]), 8080);
        assert_checksums(&f);
        let m2 = meta(&f);
        assert_eq!(
            (m2.src, m2.sport, m2.dst, m2.dport, m2.ttl),
            (Addr::from_v4([198, 18, 0, 1]), 20001, Addr::from_v4([198, 18, 1, 2]), 8080, 63)
        );

        let mut g = Vec::new();
        let a = |l: u8| {
            let mut x = [0u8; 16];
            x[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
            x[15] = l;
            x
        };
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(a(2), a(10), 64)
            .udp(5000, 53)
            .write(&mut g, b"q")
            .unwrap();
        let m = meta(&g);
        rewrite(&mut g, &m, &Addr::from_v6(a(1)), 3000, &Addr::from_v6(a(20)), 5353);
        assert_checksums(&g);
        assert_eq!(meta(&g).ttl, 63);
    }

    /// What the XDP fast path does with a [`FixedRewrite`] (`fast_path` in `steer.c`), in Rust:
    /// the oracle the program is held to without root. The BPF_PROG_RUN tests
    /// (`gateway/worker/tests/fastpath.rs`) hold the program itself to the worker's output.
    fn apply_fixed(f: &mut [u8], m: &Meta, fx: &FixedRewrite) {
        let apply = |check: u16, delta: u16| {
            let s = u32::from(!check) + u32::from(delta);
            !(((s & 0xffff) + (s >> 16)) as u16)
        };
        let c = l4_checksum_offset(m.proto) + m.l4;
        let old = rd16(f, c);
        let new = match m.proto {
            ip_proto::TCP => apply(old, fx.l4_delta),
            _ if old == 0 => 0,
            _ => match apply(old, fx.l4_delta) {
                0 => 0xffff,
                x => x,
            },
        };
        wr16(f, c, new);
        wr16(f, m.l4, fx.sport);
        wr16(f, m.l4 + 2, fx.dport);
        match m.family {
            Family::V4 => {
                f[m.l3 + 12..m.l3 + 16].copy_from_slice(&fx.src.v4());
                f[m.l3 + 16..m.l3 + 20].copy_from_slice(&fx.dst.v4());
                f[m.l3 + 8] -= 1;
                let c = rd16(f, m.l3 + ipv4::CHECKSUM_OFFSET);
                wr16(f, m.l3 + ipv4::CHECKSUM_OFFSET, apply(c, fx.ip_delta));
            }
            Family::V6 => {
                f[m.l3 + 8..m.l3 + 24].copy_from_slice(&fx.src.0);
                f[m.l3 + 24..m.l3 + 40].copy_from_slice(&fx.dst.0);
                f[m.l3 + 7] -= 1;
            }
        }
    }

    #[test]
    fn a_fixed_rewrite_is_the_rewrite_byte_for_byte() {
        let mut x = 0x243f_6a88_85a3_08d3u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let r = next();
            let v6 = i % 2 == 1;
            let udp = i % 4 >= 2;
            let a = |r: u64| {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&r.to_le_bytes());
                b[8..].copy_from_slice(&r.rotate_left(29).to_be_bytes());
                if v6 { Addr::from_v6(b) } else { Addr::from_v4([b[0], b[1], b[2], b[3]]) }
            };
            let (src, dst, nsrc, ndst) = (a(next()), a(next()), a(next()), a(next()));
            let (sport, dport, nsport, ndport) =
                (r as u16, (r >> 16) as u16, (r >> 32) as u16, (r >> 48) as u16);
            let ttl = 2 + (next() % 254) as u8;
            let payload: Vec<u8> = (0..next() % 40).map(|_| next() as u8).collect();
            let b = PacketBuilder::ethernet2([2; 6], [4; 6]);
            let b = if v6 { b.ipv6(src.0, dst.0, ttl) } else { b.ipv4(src.v4(), dst.v4(), ttl) };
            let mut f = Vec::new();
            if udp {
                b.udp(sport, dport).write(&mut f, &payload).unwrap();
            } else {
                b.tcp(sport, dport, next() as u32, 1000).ack(next() as u32).write(&mut f, &payload).unwrap();
            }
            let m = meta(&f);
            if udp && i % 8 == 2 {
                wr16(&mut f, m.l4 + udp::CHECKSUM_OFFSET, 0); // "no checksum" stays so
            }
            let family = m.family;
            let fx = fixed_rewrite(family, (src, sport, dst, dport), (nsrc, nsport, ndst, ndport));
            let mut want = f.clone();
            rewrite(&mut want, &m, &nsrc, nsport, &ndst, ndport);
            let mut got = f.clone();
            apply_fixed(&mut got, &m, &fx);
            assert_eq!(got, want, "case {i}");
        }
    }

    /// Found by `fuzz/run frames`: an echo request of zeros only (identifier, sequence, no
    /// data) got the reply checksum 0x0000 from an incremental update; a message of zeros sums to
    /// zero, so its checksum is 0xffff.
    #[test]
    fn echo_reply_of_zeros_has_a_valid_checksum() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 254], [198, 19, 0, 50], 64)
            .icmpv4_echo_request(0, 0);
        let mut f = Vec::new();
        b.write(&mut f, b"").unwrap();
        let Ok(Parsed::Ip(m)) = parse(&f) else { panic!() };
        echo_reply(&mut f, &m);
        assert_eq!(checksum::checksum(&f[m.l4..m.l4 + m.l4_len]), 0, "the reply's ICMP checksum verifies");
        assert_eq!(&f[m.l4..m.l4 + 4], &[0, 0, 0xff, 0xff]);
    }

    #[test]
    fn echo_reply_v4() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 0, 2], [198, 19, 0, 10], 9)
            .icmpv4_echo_request(7, 1)
            .write(&mut f, b"ping")
            .unwrap();
        let m = meta(&f);
        assert!(is_echo_request(&f, &m));
        echo_reply(&mut f, &m);
        let mut want = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 19, 0, 10], [198, 18, 0, 2], 64)
            .icmpv4_echo_reply(7, 1)
            .write(&mut want, b"ping")
            .unwrap();
        assert_eq!(f, want);
    }

    #[test]
    fn quote_refuses_short_and_foreign() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 1, 2], [198, 18, 0, 1], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut f, &[0x45, 0, 0, 20])
            .unwrap();
        let m = meta(&f);
        assert!(is_icmp_error(&f, &m));
        assert_eq!(quote(&f, &m), None);
    }
}
