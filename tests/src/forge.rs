//! A forged ARP request, and what then arrives at the forger: the namespace test of the
//! gateway's neighbour handling (through `sluice-probe arp-forge`) and `benches/run faults` both
//! run it inside a forger's namespace.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SocketType, sockopt};
use sluice_wire::ethernet::{self, Frame, ethertype};

/// The frames addressed to the forger's MAC while it listened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// IPv4 and IPv6 frames: traffic the forgery diverted to the forger.
    pub ip_frames: u64,
    /// ARP frames (answers to its request).
    pub arp_frames: u64,
    /// Anything else.
    pub other_frames: u64,
    /// The forged requests sent.
    pub requests_sent: u64,
}

/// On `iface`: opens an AF_PACKET socket, broadcasts three ARP requests 100 ms apart — who has
/// `target`? tell `sender` at this interface's MAC — calls `sent`, then counts the frames
/// addressed to this MAC until `stop` is raised or `seconds` pass.
pub fn forge_arp(
    iface: &str,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    seconds: f64,
    stop: &AtomicBool,
    sent: impl FnOnce(),
) -> Result<Received, String> {
    let own = sluice_xsk::link::mac(iface).map_err(|e| format!("{iface}: {e}"))?;
    let rx = rustix::net::socket(AddressFamily::PACKET, SocketType::RAW, Some(rustix::net::eth::ALL))
        .map_err(|e| format!("AF_PACKET socket: {e}"))?;
    sockopt::set_socket_timeout(&rx, sockopt::Timeout::Recv, Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let ifindex = sluice_xsk::socket::if_index(iface).map_err(|e| e.to_string())?;
    let tx = sluice_xsk::link::RawSender::open(ifindex).map_err(|e| format!("raw sender on {iface}: {e}"))?;
    let mut frame = [0u8; 60];
    let mut eth = Frame::new_unchecked(&mut frame[..]);
    eth.set_dst([0xff; 6]);
    eth.set_src(own);
    eth.set_ethertype(ethertype::ARP);
    sluice_wire::arp::Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]).emit(
        sluice_wire::arp::OP_REQUEST,
        own,
        sender.octets(),
        [0; 6],
        target.octets(),
    );
    let mut got = Received::default();
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        tx.send(&frame).map_err(|e| format!("sending the forged ARP request: {e}"))?;
        got.requests_sent += 1;
    }
    sent();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = match rustix::net::recv(&rx, &mut buf[..], RecvFlags::empty()) {
            Ok((n, _)) => n,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        let Ok(f) = Frame::new_checked(&buf[..n]) else { continue };
        if f.dst() != own {
            continue;
        }
        match f.ethertype() {
            ethertype::IPV4 | ethertype::IPV6 => got.ip_frames += 1,
            ethertype::ARP => got.arp_frames += 1,
            _ => got.other_frames += 1,
        }
    }
    Ok(got)
}
