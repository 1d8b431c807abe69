//! Facts about a network interface (its MAC address, MTU, how many receive queues it has) and a raw
//! packet socket for the few frames the gateway originates off the hot path (gratuitous ARP and
//! unsolicited neighbour advertisements when a VIP appears).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The interface's MAC address, from sysfs.
pub fn mac(iface: &str) -> io::Result<[u8; 6]> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        let p = parts.next().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short MAC"))?;
        *b = u8::from_str_radix(p, 16).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    Ok(mac)
}

/// The interface's MTU, from sysfs.
pub fn mtu(iface: &str) -> io::Result<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// How many receive queues the interface has (`/sys/class/net/IF/queues/rx-*`).
pub fn rx_queues(iface: &str) -> io::Result<u32> {
    let n = std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n.max(1) as u32)
}

/// A raw AF_PACKET socket that sends whole Ethernet frames out of one interface.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSender {
    /// Opens a sender on interface `ifindex`.
    pub fn open(ifindex: u32) -> io::Result<RawSender> {
        // SAFETY: plain system call; checked. Protocol 0: the socket receives nothing.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: we just created `raw` and own it.
        Ok(RawSender { fd: unsafe { OwnedFd::from_raw_fd(raw) }, ifindex })
    }

    /// Sends one frame (destination MAC first).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame shorter than an Ethernet header"));
        }
        // SAFETY: a zeroed sockaddr_ll filled with plain values; `frame` is live for the call.
        let r = unsafe {
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_ifindex = self.ifindex as i32;
            sa.sll_halen = 6;
            sa.sll_addr[..6].copy_from_slice(&frame[..6]);
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}
