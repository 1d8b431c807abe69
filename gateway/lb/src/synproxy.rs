//! The worker's half of SYN cookies: the XDP program answered a client's SYN with a cookie
//! (`sluice_model::syncookie`); when the client's ACK arrives, the engine checks the cookie and
//! opens the connection to the backend itself, as a SYN proxy does (DPVS's synproxy, Linux's
//! `SYNPROXY` target).
//!
//! The exchange, each frame rewritten in place from the one that caused it:
//!
//! ```text
//! client            gateway (XDP)        gateway (worker)            backend
//!   SYN  ──────────▶  SYN-ACK(cookie)
//!   ◀──────────────┘
//!   ACK(cookie+1) ─────────────────────▶ check, new flow (SynProxy)
//!                                        SYN(client's ISN, MSS) ───▶
//!   data ──────────────────────────────▶ held (Verdict::Defer(Hold::Backend))
//!                                        ◀────────────────── SYN-ACK(b)
//!                                        ACK ──────────────────────▶   (from the SYN-ACK)
//!                                        held data, ack shifted ───▶
//! ```
//!
//! From then on the backend's sequence numbers are shifted by `delta = cookie − b` towards the
//! client, and the client's acknowledgements back ([`shift`]). The backend refusing (RST) is
//! told to the client as a RST in the client's sequence space; a bare ACK from the backend (an
//! old connection's state on the tuple) is answered with a RST, as the client's own stack would,
//! and the next client segment sends the SYN again.
//!
//! What a cookie connection lacks: window scaling, SACK and timestamps (the cookie cannot carry
//! them), so the XDP program only answers SYNs beyond the budget with cookies.
//!
//! Hot path: the check runs once per cookie ACK; [`shift`] once per segment of a proxied flow.

use crate::packet::Meta;
use sluice_model::addr::{Addr, Family};
use sluice_wire::bytes::{read_u16 as rd16, read_u32 as rd32, write_u16 as wr16, write_u32 as wr32};
use sluice_wire::checksum::{self, Delta};
use sluice_wire::{ip_proto, ipv4, ipv6, tcp};

/// A TCP segment the gateway writes itself: in place of the frame it has ([`emit`]), or in a
/// fresh frame ([`emit_frame`]) that the engine asks its caller to send ahead of the frame it
/// just processed ([`crate::engine::L4::take_extra`]):
/// - a RST: the backend still holds a half-open connection on a FullNAT tuple the engine has
///   just given to a new flow (a flood's SYN, taken back); without it, the new flow's SYN would
///   meet that connection;
/// - a proxied connection's SYN, when the client segment that caused it carries data: the data
///   is held (`Verdict::Defer(Hold::Backend)`) instead of being overwritten by the SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source address and port.
    pub src: (Addr, u16),
    /// Destination address and port.
    pub dst: (Addr, u16),
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (0 without ACK).
    pub ack: u32,
    /// Flags.
    pub flags: u8,
    /// Window field.
    pub window: u16,
    /// An MSS option (in place: written when the buffer has room for it).
    pub mss: Option<u16>,
}

impl Segment {
    /// A RST at `seq`.
    pub fn reset(src: (Addr, u16), dst: (Addr, u16), seq: u32) -> Segment {
        Segment { src, dst, seq, ack: 0, flags: tcp::flags::RST, window: 0, mss: None }
    }
}

/// The hop limit of segments the gateway writes.
pub const TTL: u8 = 64;

/// Writes the TCP header of `s`, `t.len()` bytes (20, or 24 with the MSS option), and its
/// checksum over pseudo-header sum `pseudo`.
fn write_tcp(t: &mut [u8], s: &Segment, pseudo: u64) {
    let hl = t.len();
    t.fill(0);
    wr16(t, 0, s.src.1);
    wr16(t, 2, s.dst.1);
    wr32(t, 4, s.seq);
    wr32(t, 8, s.ack);
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = s.flags;
    wr16(t, 14, s.window);
    if hl == tcp::MIN_HEADER_LEN + 4 {
        let mss = s.mss.unwrap_or(0);
        t[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    }
    let c = checksum::finish(checksum::accumulate(pseudo, t));
    wr16(t, tcp::CHECKSUM_OFFSET, c);
}

/// Writes `s` over the frame `m` describes, in `buf` (the frame and the room after it): the
/// Ethernet header and IP header (with its options or extension headers) are kept, addresses,
/// lengths and checksums rewritten, the TCP header replaced, any payload dropped. Returns the
/// new frame length.
pub fn emit(buf: &mut [u8], m: &Meta, s: &Segment) -> usize {
    let (l3, l4) = (m.l3, m.l4);
    let hl = if s.mss.is_some() && buf.len() >= l4 + tcp::MIN_HEADER_LEN + 4 { 24 } else { 20 };
    let ip_hl = l4 - l3;
    let pseudo = match m.family {
        Family::V4 => {
            let (src, dst) = (s.src.0.v4(), s.dst.0.v4());
            buf[l3 + ipv4::SRC_OFFSET..l3 + ipv4::SRC_OFFSET + 4].copy_from_slice(&src);
            buf[l3 + ipv4::DST_OFFSET..l3 + ipv4::DST_OFFSET + 4].copy_from_slice(&dst);
            wr16(buf, l3 + 2, (ip_hl + hl) as u16);
            buf[l3 + ipv4::TTL_OFFSET] = TTL;
            wr16(buf, l3 + ipv4::CHECKSUM_OFFSET, 0);
            let c = checksum::checksum(&buf[l3..l4]);
            wr16(buf, l3 + ipv4::CHECKSUM_OFFSET, c);
            checksum::pseudo_header_v4(src, dst, ip_proto::TCP, hl as u16)
        }
        Family::V6 => {
            buf[l3 + ipv6::SRC_OFFSET..l3 + ipv6::SRC_OFFSET + 16].copy_from_slice(&s.src.0.0);
            buf[l3 + ipv6::DST_OFFSET..l3 + ipv6::DST_OFFSET + 16].copy_from_slice(&s.dst.0.0);
            wr16(buf, l3 + 4, (ip_hl - ipv6::HEADER_LEN + hl) as u16);
            buf[l3 + ipv6::HOP_LIMIT_OFFSET] = TTL;
            checksum::pseudo_header_v6(&s.src.0.0, &s.dst.0.0, ip_proto::TCP, hl as u32)
        }
    };
    write_tcp(&mut buf[l4..l4 + hl], s, pseudo);
    l4 + hl
}

/// Writes `s` as a whole frame into `buf` (at least [`FRAME_MAX`] bytes) from MAC `src` to MAC
/// `dst`; returns its length.
pub fn emit_frame(buf: &mut [u8], s: &Segment, dst: [u8; 6], src: [u8; 6]) -> usize {
    use sluice_wire::ethernet::{self, ethertype};
    let v4 = s.dst.0.family() == Family::V4;
    let hl = if s.mss.is_some() { tcp::MIN_HEADER_LEN + 4 } else { tcp::MIN_HEADER_LEN };
    ethernet::Frame::new_unchecked(&mut *buf).emit(
        dst,
        src,
        if v4 { ethertype::IPV4 } else { ethertype::IPV6 },
    );
    let l3 = ethernet::HEADER_LEN;
    let (l4, pseudo) = if v4 {
        let repr = ipv4::Repr {
            src: s.src.0.v4(),
            dst: s.dst.0.v4(),
            protocol: ip_proto::TCP,
            payload_len: hl as u16,
            ttl: TTL,
            ident: 0,
            dont_frag: true,
        };
        ipv4::Packet::new_unchecked(&mut buf[l3..]).emit(&repr);
        (l3 + ipv4::MIN_HEADER_LEN, checksum::pseudo_header_v4(repr.src, repr.dst, ip_proto::TCP, hl as u16))
    } else {
        let repr = ipv6::Repr {
            src: s.src.0.0,
            dst: s.dst.0.0,
            next_header: ip_proto::TCP,
            payload_len: hl as u16,
            hop_limit: TTL,
        };
        ipv6::Packet::new_unchecked(&mut buf[l3..]).emit(&repr);
        (l3 + ipv6::HEADER_LEN, checksum::pseudo_header_v6(&repr.src, &repr.dst, ip_proto::TCP, hl as u32))
    };
    write_tcp(&mut buf[l4..l4 + hl], s, pseudo);
    l4 + hl
}

/// The longest frame [`emit_frame`] writes (IPv6, an MSS option).
pub const FRAME_MAX: usize = 14 + 40 + 24;

/// Shifts a proxied flow's TCP segment in place: the sequence number by `seq` and the
/// acknowledgement number (when the ACK flag is set) by `ack`, with the checksum updated.
#[inline]
pub fn shift(frame: &mut [u8], m: &Meta, seq: u32, ack: u32) {
    let mut d = Delta::ZERO;
    if seq != 0 {
        let old = rd32(frame, m.l4 + 4);
        let new = old.wrapping_add(seq);
        d.replace32(old, new);
        wr32(frame, m.l4 + 4, new);
    }
    if ack != 0 && m.tcp_flags & tcp::flags::ACK != 0 {
        let old = rd32(frame, m.l4 + 8);
        let new = old.wrapping_add(ack);
        d.replace32(old, new);
        wr32(frame, m.l4 + 8, new);
    }
    let at = m.l4 + tcp::CHECKSUM_OFFSET;
    let c = rd16(frame, at);
    wr16(frame, at, d.apply(c));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Parsed, parse};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn ack_frame(v6: bool, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            b.ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                60,
            )
        } else {
            b.ipv4([198, 18, 0, 2], [198, 18, 100, 10], 60)
        };
        let b = b.tcp(40_000, 80, 1000, 500).ack(77);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn meta(f: &[u8]) -> Meta {
        let Ok(Parsed::Ip(m)) = parse(f) else { panic!() };
        m
    }

    #[test]
    fn an_emitted_segment_is_well_formed_in_both_families_with_or_without_room() {
        for v6 in [false, true] {
            for (payload, room) in [(&b""[..], 4usize), (&b"GET / HTTP/1.1\r\n\r\n"[..], 0), (&b""[..], 0)] {
                let f = ack_frame(v6, payload);
                let m = meta(&f);
                let mut buf = f.clone();
                buf.resize(f.len() + room, 0);
                let (a, b) = if v6 {
                    (
                        Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe]),
                        Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                    )
                } else {
                    (Addr::from_v4([198, 18, 1, 254]), Addr::from_v4([198, 18, 1, 1]))
                };
                let s = Segment {
                    src: (a, 10_000),
                    dst: (b, 8080),
                    seq: 999,
                    ack: 0,
                    flags: tcp::flags::SYN,
                    window: 500,
                    mss: Some(1460),
                };
                let n = emit(&mut buf, &m, &s);
                let with_mss = payload.len() + room >= 4;
                assert_eq!(
                    n,
                    m.l4 + if with_mss { 24 } else { 20 },
                    "v6={v6} payload={} room={room}",
                    payload.len()
                );
                let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
                let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
                assert!(t.syn() && !t.ack());
                assert_eq!(
                    (t.source_port(), t.destination_port(), t.sequence_number(), t.window_size()),
                    (10_000, 8080, 999, 500)
                );
                assert!(t.payload().is_empty());
                let sum = match p.net.unwrap() {
                    etherparse::NetSlice::Ipv4(ip) => {
                        let h = ip.header();
                        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                        assert_eq!(usize::from(h.total_len()), n - 14);
                        t.to_header().calc_checksum_ipv4_raw(h.source(), h.destination(), &[]).unwrap()
                    }
                    etherparse::NetSlice::Ipv6(ip) => {
                        assert_eq!(usize::from(ip.header().payload_length()), n - 54);
                        t.to_header()
                            .calc_checksum_ipv6_raw(ip.header().source(), ip.header().destination(), &[])
                            .unwrap()
                    }
                };
                assert_eq!(sum, t.checksum());
                let opts: Vec<_> = t.options_iterator().collect::<Result<_, _>>().unwrap();
                assert_eq!(opts.len(), usize::from(with_mss));
            }
        }
    }

    #[test]
    fn an_extra_frame_is_well_formed_in_both_families() {
        for (src, dst) in [
            (Addr::from_v4([198, 18, 1, 254]), Addr::from_v4([198, 18, 1, 1])),
            (
                Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe]),
                Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ),
        ] {
            let mut buf = [0xaau8; FRAME_MAX];
            let r = Segment::reset((src, 10_001), (dst, 8080), 0xdead_beef);
            let n = emit_frame(&mut buf, &r, [2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1]);
            let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
            assert!(t.rst() && !t.syn() && !t.ack() && !t.fin());
            assert_eq!(
                (t.source_port(), t.destination_port(), t.sequence_number()),
                (10_001, 8080, 0xdead_beef)
            );
            let sum = match p.net.unwrap() {
                etherparse::NetSlice::Ipv4(ip) => {
                    let h = ip.header();
                    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                    assert_eq!((h.source(), h.destination()), (src.v4(), dst.v4()));
                    t.to_header().calc_checksum_ipv4_raw(h.source(), h.destination(), &[]).unwrap()
                }
                etherparse::NetSlice::Ipv6(ip) => {
                    assert_eq!(ip.header().destination(), dst.0);
                    t.to_header()
                        .calc_checksum_ipv6_raw(ip.header().source(), ip.header().destination(), &[])
                        .unwrap()
                }
            };
            assert_eq!(sum, t.checksum());
            assert_eq!(&buf[..6], &[2, 0, 0, 0, 0, 9]);
        }
    }

    #[test]
    fn a_shift_keeps_the_checksum_valid() {
        let f = ack_frame(false, b"data");
        let m = meta(&f);
        let mut g = f.clone();
        shift(&mut g, &m, 0x8000_0001, 0xffff_fff0);
        let p = SlicedPacket::from_ethernet(&g).unwrap();
        let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
        assert_eq!(t.sequence_number(), 1000u32.wrapping_add(0x8000_0001));
        assert_eq!(t.acknowledgment_number(), 77u32.wrapping_add(0xffff_fff0));
        let sum = t.to_header().calc_checksum_ipv4_raw([198, 18, 0, 2], [198, 18, 100, 10], b"data").unwrap();
        assert_eq!(sum, t.checksum());
    }
}
