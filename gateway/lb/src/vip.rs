//! Owning VIPs on the wire: answering ARP requests and IPv6 neighbour solicitations for a
//! service's virtual address with the gateway's MAC, and building the gratuitous ARP and
//! unsolicited neighbour advertisement sent when a VIP appears.
//!
//! A VIP in L2 mode that another node announces ([`ServiceTable::answers_for`], the table's
//! [`sluice_model::service::L2Role::Standby`]) is not answered for: on a segment with several
//! gateways, exactly one answers for each VIP (docs/l2.md).
//!
//! The reply is written in place over the request (same length), so the worker transmits it
//! from the buffer it arrived in. Only frames the L4 stage passed reach here, never the hot path.

use sluice_model::Addr;
use sluice_model::service::ServiceTable;
use sluice_wire::ethernet::{self, Mac, ethertype};
use sluice_wire::{arp, checksum, icmp, ip_proto, ipv6, ndp};

use crate::packet::{Meta, Parsed};

/// If `frame` is an ARP request or a neighbour solicitation for one of `table`'s VIPs, rewrites
/// it in place into the reply from `mac` (Ethernet addresses included) and returns the asker's
/// address and MAC (unknown address: the unspecified address of duplicate address detection).
pub fn answer(frame: &mut [u8], parsed: &Parsed, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    match parsed {
        Parsed::Arp(off) => answer_arp(frame, *off, table, mac),
        Parsed::Ip(m) if m.proto == ip_proto::ICMPV6 => answer_ns(frame, m, table, mac),
        Parsed::Ip(_) => None,
    }
}

fn answer_arp(frame: &mut [u8], off: usize, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    let request = arp::Packet::new_checked(frame.get(off..off + arp::PACKET_LEN)?).ok()?;
    let (vip, asker, asker_mac) = (request.target_ip(), request.sender_ip(), request.sender_mac());
    if request.operation() != arp::OP_REQUEST || !table.answers_for(&Addr::from_v4(vip)) {
        return None;
    }
    let mut reply = arp::Packet::new_unchecked(&mut frame[off..off + arp::PACKET_LEN]);
    reply.set_operation(arp::OP_REPLY);
    reply.set_sender(mac, vip);
    reply.set_target(asker_mac, asker);
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst(asker_mac);
    eth.set_src(mac);
    Some((Addr::from_v4(asker), asker_mac))
}

fn answer_ns(frame: &mut [u8], m: &Meta, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    if m.ttl != ndp::HOP_LIMIT {
        return None;
    }
    let body = frame.get(m.l4..m.l4 + m.l4_len)?;
    let solicit = ndp::Message::new_checked(body).ok()?;
    let target = solicit.target();
    if solicit.msg_type() != icmp::v6::NEIGHBOR_SOLICIT || !table.answers_for(&Addr(target)) {
        return None;
    }
    // Reply to the soliciting host's link-layer address: from its option, else the Ethernet
    // source. Its option's room carries our address back; without one the advertisement
    // carries none, which is valid (the solicitor has our MAC from the Ethernet header).
    let source_ll =
        solicit.options().find(|&(_, k, len)| k == ndp::option::SOURCE_LL && len == ndp::option::LL_LEN);
    let their_mac = solicit
        .link_layer(ndp::option::SOURCE_LL)
        .unwrap_or_else(|| ethernet::Frame::new_unchecked(&*frame).src());
    // A solicitation from the unspecified address (duplicate address detection) is answered to
    // all nodes, not solicited; otherwise to the solicitor (RFC 4861 §7.2.4).
    let src = m.src;
    let unspecified = src.0 == [0; 16];
    let dst = if unspecified { ndp::ALL_NODES } else { src.0 };
    let mut ip = ipv6::Packet::new_unchecked(&mut frame[m.l3..m.l3 + ipv6::HEADER_LEN]);
    ip.set_hop_limit(ndp::HOP_LIMIT);
    ip.set_src(target);
    ip.set_dst(dst);
    let mut advert = ndp::Message::new_unchecked(&mut frame[m.l4..m.l4 + m.l4_len]);
    advert.set_msg_type(icmp::v6::NEIGHBOR_ADVERT);
    let solicited = if unspecified { 0 } else { ndp::flags::SOLICITED };
    advert.set_flags(solicited | ndp::flags::OVERRIDE);
    if let Some((at, _, _)) = source_ll {
        advert.set_link_layer(at, ndp::option::TARGET_LL, mac);
    }
    advert.fill_checksum(checksum::pseudo_header_v6(&target, &dst, ip_proto::ICMPV6, m.l4_len as u32));
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst(if unspecified { ndp::ALL_NODES_MAC } else { their_mac });
    eth.set_src(mac);
    Some((src, their_mac))
}

/// Length of a gratuitous ARP frame.
pub const GRATUITOUS_ARP_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

/// A gratuitous ARP (a request for `vip` from `vip`, broadcast) announcing that `mac` owns it.
pub fn gratuitous_arp(vip: [u8; 4], mac: Mac) -> [u8; GRATUITOUS_ARP_LEN] {
    let mut f = [0u8; GRATUITOUS_ARP_LEN];
    ethernet::Frame::new_unchecked(&mut f[..]).emit([0xff; 6], mac, ethertype::ARP);
    arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).emit(arp::OP_REQUEST, mac, vip, [0; 6], vip);
    f
}

/// Length of an unsolicited neighbour advertisement frame (with its target link-layer option).
pub const UNSOLICITED_NA_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndp::HEADER_LEN + ndp::option::LL_LEN;

/// An unsolicited neighbour advertisement for `vip` from `mac` to all nodes (RFC 4861 §7.2.6).
pub fn unsolicited_na(vip: [u8; 16], mac: Mac) -> [u8; UNSOLICITED_NA_LEN] {
    const BODY: usize = ndp::HEADER_LEN + ndp::option::LL_LEN;
    let mut f = [0u8; UNSOLICITED_NA_LEN];
    ethernet::Frame::new_unchecked(&mut f[..]).emit(ndp::ALL_NODES_MAC, mac, ethertype::IPV6);
    let l3 = ethernet::HEADER_LEN;
    ipv6::Packet::new_unchecked(&mut f[l3..]).emit(&ipv6::Repr {
        src: vip,
        dst: ndp::ALL_NODES,
        next_header: ip_proto::ICMPV6,
        payload_len: BODY as u16,
        hop_limit: ndp::HOP_LIMIT,
    });
    let mut advert = ndp::Message::new_unchecked(&mut f[l3 + ipv6::HEADER_LEN..]);
    advert.emit_advertisement(vip, ndp::flags::OVERRIDE, mac);
    advert.fill_checksum(checksum::pseudo_header_v6(&vip, &ndp::ALL_NODES, ip_proto::ICMPV6, BODY as u32));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::SlicedPacket;

    #[test]
    fn a_gratuitous_arp_is_a_broadcast_request_for_the_vip_from_the_vip() {
        let f = gratuitous_arp([198, 19, 0, 10], [2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[..14], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        let a = arp::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(a.operation(), arp::OP_REQUEST);
        assert_eq!((a.sender_mac(), a.sender_ip()), ([2, 0, 0, 0, 0, 1], [198, 19, 0, 10]));
        assert_eq!((a.target_mac(), a.target_ip()), ([0; 6], [198, 19, 0, 10]));
    }

    #[test]
    fn an_unsolicited_advertisement_reads_back_with_a_valid_checksum() {
        let mut vip = [0u8; 16];
        vip[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        vip[15] = 0x10;
        let f = unsolicited_na(vip, [2, 0, 0, 0, 0, 1]);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else { panic!("IPv6: {p:?}") };
        assert_eq!((ip.header().hop_limit(), ip.header().destination()), (255, ndp::ALL_NODES));
        let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("ICMPv6") };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), (icmp::v6::NEIGHBOR_ADVERT, 0));
        assert_eq!(f[58], ndp::flags::OVERRIDE, "override, not solicited");
        let ph = checksum::pseudo_header_v6(&vip, &ndp::ALL_NODES, ip_proto::ICMPV6, 32);
        assert_eq!(checksum::finish(checksum::accumulate(ph, &f[54..])), 0);
        let m = ndp::Message::new_checked(&f[54..]).unwrap();
        assert_eq!((m.target(), m.link_layer(ndp::option::TARGET_LL)), (vip, Some([2, 0, 0, 0, 0, 1])));
    }
}
