//! The kernel's routes and neighbours over rtnetlink, for the gateway's next-hop cache; and a
//! way to make the kernel resolve a neighbour it does not know yet.
//!
//! Only dumps and one request type, parsed from bytes with bounds checks: a full netlink
//! library would be more code than the three messages used here. Runs off the hot path.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const NTF_USE: u8 = 0x01;
/// Neighbour states with a usable link-layer address.
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;

/// A neighbour: an IP address (16 bytes; IPv4 mapped) and its MAC on interface `ifindex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Interface index.
    pub ifindex: u32,
    /// IPv6 address or IPv4-mapped IPv6 address.
    pub ip: [u8; 16],
    /// Link-layer address.
    pub mac: [u8; 6],
}

/// A unicast route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (IPv4 mapped), all zero for a default route.
    pub dst: [u8; 16],
    /// Prefix length in the family's own bits.
    pub len: u8,
    /// Whether the route is IPv4.
    pub v4: bool,
    /// Gateway, if any.
    pub via: Option<[u8; 16]>,
    /// Output interface.
    pub ifindex: u32,
}

/// A NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn mapped(b: &[u8]) -> Option<[u8; 16]> {
    let mut a = [0u8; 16];
    match b.len() {
        4 => {
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(b);
        }
        16 => a.copy_from_slice(b),
        _ => return None,
    }
    Some(a)
}

/// The attributes after a fixed header, as (type, value) pairs; stops at the first malformed one.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, v))
    })
}

impl Netlink {
    /// Opens the socket.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: we just created `raw` and own it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Netlink { fd, seq: 1, buf: vec![0; 1 << 16] })
    }

    fn request(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDR + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a zeroed sockaddr_nl (the kernel as destination) and a live buffer of `len`.
        let r = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(self.seq) }
    }

    /// Reads replies to `seq` until DONE (dump) or an ACK/error, calling `f` on each message's
    /// (type, payload).
    fn replies(&mut self, seq: u32, mut f: impl FnMut(u16, &[u8])) -> io::Result<()> {
        loop {
            let (fd, buf) = (self.fd.as_raw_fd(), &mut self.buf);
            // SAFETY: receives into our live buffer of the length passed.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut b = &self.buf[..n as usize];
            while b.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < NLMSG_HDR || len > b.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
                }
                let payload = &b[NLMSG_HDR..len];
                b = &b[((len + 3) & !3).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code =
                            payload.get(..4).map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                        return if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-code)) };
                    }
                    _ => f(ty, payload),
                }
            }
        }
    }

    /// Every neighbour with a usable link-layer address.
    pub fn neighbors(&mut self) -> io::Result<Vec<Neighbor>> {
        let body = [0u8; 12]; // ndmsg, family AF_UNSPEC: both families
        let seq = self.request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &body)?;
        let mut out = Vec::new();
        self.replies(seq, |ty, p| {
            if ty != RTM_NEWNEIGH || p.len() < 12 {
                return;
            }
            let ifindex = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as u32;
            let state = u16::from_ne_bytes([p[8], p[9]]);
            if state & NUD_USABLE == 0 {
                return;
            }
            let (mut ip, mut mac) = (None, None);
            for (t, v) in attrs(&p[12..]) {
                match t {
                    NDA_DST => ip = mapped(v),
                    NDA_LLADDR if v.len() == 6 => mac = Some([v[0], v[1], v[2], v[3], v[4], v[5]]),
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                out.push(Neighbor { ifindex, ip, mac });
            }
        })?;
        Ok(out)
    }

    /// Unicast routes of the main table, both families.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let body = [0u8; 12]; // rtmsg, family AF_UNSPEC
        let seq = self.request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, &body)?;
        let mut out = Vec::new();
        self.replies(seq, |ty, p| {
            if ty != RTM_NEWROUTE || p.len() < 12 {
                return;
            }
            let (family, len, table, rtype) = (p[0], p[1], p[4], p[7]);
            if rtype != RTN_UNICAST {
                return;
            }
            let v4 = i32::from(family) == libc::AF_INET;
            let mut r = Route { dst: mapped(&[0; 4]).unwrap_or_default(), len, v4, via: None, ifindex: 0 };
            if !v4 {
                r.dst = [0; 16];
            }
            let mut table = u32::from(table);
            for (t, v) in attrs(&p[12..]) {
                match t {
                    RTA_DST => r.dst = mapped(v).unwrap_or(r.dst),
                    RTA_GATEWAY => r.via = mapped(v),
                    RTA_OIF if v.len() == 4 => r.ifindex = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                    RTA_TABLE if v.len() == 4 => table = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                    _ => {}
                }
            }
            if table == RT_TABLE_MAIN {
                out.push(r);
            }
        })?;
        Ok(out)
    }

    /// Asks the kernel to resolve `ip` on interface `ifindex` (an ARP request or neighbour
    /// solicitation goes out; the answer lands in the neighbour table, read by
    /// [`Netlink::neighbors`]).
    pub fn resolve(&mut self, ifindex: u32, ip: &[u8; 16]) -> io::Result<()> {
        let v4 = ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let mut body = Vec::with_capacity(32);
        body.push(if v4 { libc::AF_INET as u8 } else { libc::AF_INET6 as u8 });
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes()); // state NUD_NONE
        body.push(NTF_USE);
        body.push(0);
        let a: &[u8] = if v4 { &ip[12..] } else { &ip[..] };
        body.extend_from_slice(&((4 + a.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&NDA_DST.to_ne_bytes());
        body.extend_from_slice(a);
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let seq = self.request(RTM_NEWNEIGH, flags, &body)?;
        self.replies(seq, |_, _| {})
    }
}
