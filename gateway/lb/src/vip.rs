//! Owning VIPs on the wire: answering ARP requests and IPv6 neighbour solicitations for a
//! service's virtual address with the gateway's MAC, and building the gratuitous ARP and
//! unsolicited neighbour advertisement sent when a VIP appears.
//!
//! The reply is written in place over the request (same length), so the worker transmits it
//! from the buffer it arrived in. Only frames the L4 stage passed reach here, never the hot path.

use sluice_wire::checksum;
use sluice_wire::ethernet::Mac;

use crate::packet::{Meta, Parsed};
use sluice_model::Addr;
use sluice_model::service::ServiceTable;

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const ND_SOLICIT: u8 = 135;
const ND_ADVERT: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// ICMPv6 neighbour discovery must arrive with hop limit 255 (RFC 4861 §7.1.1).
const ND_HOP_LIMIT: u8 = 255;

/// If `frame` is an ARP request or a neighbour solicitation for one of `table`'s VIPs, rewrites
/// it in place into the reply from `mac` (Ethernet addresses included) and returns the asker's
/// address and MAC (unknown address: the unspecified address of duplicate address detection).
pub fn answer(frame: &mut [u8], parsed: &Parsed, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    match parsed {
        Parsed::Arp(off) => answer_arp(frame, *off, table, mac),
        Parsed::Ip(m) if m.proto == sluice_wire::ip_proto::ICMPV6 => answer_ns(frame, m, table, mac),
        Parsed::Ip(_) => None,
    }
}

fn answer_arp(frame: &mut [u8], off: usize, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    let a = frame.get_mut(off..off + 28)?;
    if a[0..2] != [0, 1] || a[2..4] != [8, 0] || a[4] != 6 || a[5] != 4 {
        return None;
    }
    if u16::from_be_bytes([a[6], a[7]]) != ARP_REQUEST {
        return None;
    }
    let tpa: [u8; 4] = [a[24], a[25], a[26], a[27]];
    if !table.is_vip(&Addr::from_v4(tpa)) {
        return None;
    }
    let (sha, spa) = (<[u8; 6]>::try_from(&a[8..14]).unwrap_or_default(), [a[14], a[15], a[16], a[17]]);
    a[6..8].copy_from_slice(&ARP_REPLY.to_be_bytes());
    a[8..14].copy_from_slice(&mac);
    a[14..18].copy_from_slice(&tpa);
    a[18..24].copy_from_slice(&sha);
    a[24..28].copy_from_slice(&spa);
    frame[0..6].copy_from_slice(&sha);
    frame[6..12].copy_from_slice(&mac);
    Some((Addr::from_v4(spa), sha))
}

fn answer_ns(frame: &mut [u8], m: &Meta, table: &ServiceTable, mac: Mac) -> Option<(Addr, Mac)> {
    // type(1) code(1) checksum(2) reserved(4) target(16) [options]
    let (l4, len) = (m.l4, m.l4_len);
    if len < 24
        || frame.len() < l4 + len
        || frame[l4] != ND_SOLICIT
        || frame[l4 + 1] != 0
        || m.ttl != ND_HOP_LIMIT
    {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&frame[l4 + 8..l4 + 24]);
    if !table.is_vip(&Addr(target)) {
        return None;
    }
    // Reply to the soliciting host's link-layer address, from its option or the Ethernet source.
    let mut their_mac = [0u8; 6];
    their_mac.copy_from_slice(&frame[6..12]);
    let mut opt = l4 + 24;
    let end = l4 + len;
    while opt + 8 <= end {
        let olen = usize::from(frame[opt + 1]) * 8;
        if olen == 0 || opt + olen > end {
            return None; // RFC 4861 §7.1.1: an option of length 0 invalidates the message
        }
        if frame[opt] == OPT_SOURCE_LL && olen == 8 {
            their_mac.copy_from_slice(&frame[opt + 2..opt + 8]);
            // Reuse this option's room for our target link-layer address. Without one the
            // advertisement carries none, which is valid: the solicitor has our MAC from the
            // Ethernet header.
            frame[opt] = OPT_TARGET_LL;
            frame[opt + 2..opt + 8].copy_from_slice(&mac);
        }
        opt += olen;
    }
    let src = m.src;
    // A solicitation from the unspecified address (duplicate address detection) is answered to
    // all nodes; otherwise to the solicitor.
    let unspecified = src.0 == [0; 16];
    let dst: [u8; 16] = if unspecified { [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] } else { src.0 };
    let ip = m.l3;
    frame[ip + 7] = ND_HOP_LIMIT;
    frame[ip + 8..ip + 24].copy_from_slice(&target);
    frame[ip + 24..ip + 40].copy_from_slice(&dst);
    frame[l4] = ND_ADVERT;
    // Router 0, Solicited (unless to all nodes), Override.
    frame[l4 + 4] = if unspecified { 0x20 } else { 0x60 };
    frame[l4 + 5..l4 + 8].fill(0);
    frame[l4 + 2..l4 + 4].fill(0);
    let ph = checksum::pseudo_header_v6(&target, &dst, sluice_wire::ip_proto::ICMPV6, len as u32);
    let sum = checksum::finish(checksum::accumulate(ph, &frame[l4..end]));
    frame[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
    if unspecified {
        frame[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    } else {
        frame[0..6].copy_from_slice(&their_mac);
    }
    frame[6..12].copy_from_slice(&mac);
    Some((src, their_mac))
}

/// A gratuitous ARP (a request for `vip` from `vip`, broadcast) announcing that `mac` owns it.
pub fn gratuitous_arp(vip: [u8; 4], mac: Mac) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    let a = &mut f[14..];
    a[0..2].copy_from_slice(&[0, 1]);
    a[2..4].copy_from_slice(&[8, 0]);
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    a[8..14].copy_from_slice(&mac);
    a[14..18].copy_from_slice(&vip);
    a[24..28].copy_from_slice(&vip);
    f
}

/// An unsolicited neighbour advertisement for `vip` from `mac` to all nodes (RFC 4861 §7.2.6).
pub fn unsolicited_na(vip: [u8; 16], mac: Mac) -> [u8; 86] {
    let mut f = [0u8; 86];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let all_nodes = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let ip = 14;
    f[ip] = 0x60;
    f[ip + 4..ip + 6].copy_from_slice(&32u16.to_be_bytes());
    f[ip + 6] = sluice_wire::ip_proto::ICMPV6;
    f[ip + 7] = ND_HOP_LIMIT;
    f[ip + 8..ip + 24].copy_from_slice(&vip);
    f[ip + 24..ip + 40].copy_from_slice(&all_nodes);
    let l4 = ip + 40;
    f[l4] = ND_ADVERT;
    f[l4 + 4] = 0x20; // Override
    f[l4 + 8..l4 + 24].copy_from_slice(&vip);
    f[l4 + 24] = OPT_TARGET_LL;
    f[l4 + 25] = 1;
    f[l4 + 26..l4 + 32].copy_from_slice(&mac);
    let ph = checksum::pseudo_header_v6(&vip, &all_nodes, sluice_wire::ip_proto::ICMPV6, 32);
    let sum = checksum::finish(checksum::accumulate(ph, &f[l4..l4 + 32]));
    f[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
    f
}
