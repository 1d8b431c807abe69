//! The kernel's routes and neighbours over rtnetlink, for the gateway's next-hop cache; a way
//! to make the kernel resolve a neighbour it does not know yet; and host addresses put on and
//! taken off an interface (the L7 stage's listening addresses).
//!
//! Only dumps and three request types, parsed from bytes with bounds checks: a full netlink
//! library would be more code than the three messages used here. Runs off the hot path.
//!
//! The parsers — [`messages`] (one datagram's messages), [`neighbor`] and [`route`] (one
//! message's payload) — are functions of bytes alone, apart from the socket, so that they are
//! unit-tested here and fuzzed (`fuzz/`, target `netlink`) without a kernel.

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
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_EXCL: u16 = 0x200;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const NLA_F_NESTED: u16 = 0x8000;
/// `XDP_FLAGS_REPLACE`: replace only the program `IFLA_XDP_EXPECTED_FD` names.
pub const XDP_FLAGS_REPLACE: u32 = 1 << 4;
/// `XDP_FLAGS_SKB_MODE`.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
/// No duplicate address detection (IPv6): the address is usable at once.
const IFA_F_NODAD: u32 = 0x02;
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

/// The messages of one datagram `buf` that answer request `seq`: calls `f` on each one's (type,
/// payload) and returns `Some` once the answer is complete — `Ok` at DONE or an ACK, the
/// kernel's error, or `InvalidData` for a message whose length does not fit — and `None` when
/// more datagrams are to come. Messages of other requests are skipped.
pub fn messages(mut buf: &[u8], seq: u32, mut f: impl FnMut(u16, &[u8])) -> Option<io::Result<()>> {
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let mseq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if len < NLMSG_HDR || len > buf.len() {
            return Some(Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message")));
        }
        let payload = &buf[NLMSG_HDR..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        if mseq != seq {
            continue;
        }
        match ty {
            NLMSG_DONE => return Some(Ok(())),
            NLMSG_ERROR => {
                let code = payload.get(..4).map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                // The kernel sends a negative errno; anything else (even i32::MIN, whose negation
                // overflows: found by fuzz/run netlink) is still an error, not a panic.
                return Some(if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(code.saturating_neg()))
                });
            }
            _ => f(ty, payload),
        }
    }
    None
}

/// The neighbour an `RTM_NEWNEIGH` payload (`ndmsg` and attributes) describes, if it has an
/// address, a link-layer address and a usable state.
pub fn neighbor(p: &[u8]) -> Option<Neighbor> {
    if p.len() < 12 {
        return None;
    }
    let ifindex = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as u32;
    let state = u16::from_ne_bytes([p[8], p[9]]);
    if state & NUD_USABLE == 0 {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    for (t, v) in attrs(&p[12..]) {
        match t {
            NDA_DST => ip = mapped(v),
            NDA_LLADDR if v.len() == 6 => mac = Some([v[0], v[1], v[2], v[3], v[4], v[5]]),
            _ => {}
        }
    }
    Some(Neighbor { ifindex, ip: ip?, mac: mac? })
}

/// The interface and address an `RTM_NEWADDR` payload (`ifaddrmsg` and attributes) describes:
/// the local address (`IFA_LOCAL`, else `IFA_ADDRESS`), IPv4-mapped for IPv4.
pub fn address(p: &[u8]) -> Option<(u32, [u8; 16])> {
    if p.len() < 8 {
        return None;
    }
    let ifindex = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
    let (mut local, mut address) = (None, None);
    for (t, v) in attrs(&p[8..]) {
        match t {
            IFA_LOCAL => local = mapped(v),
            IFA_ADDRESS => address = mapped(v),
            _ => {}
        }
    }
    Some((ifindex, local.or(address)?))
}

/// A neighbour entry's address and state (`NUD_*`), whatever the state: `(ifindex, ip, state)`.
pub fn neighbor_state(p: &[u8]) -> Option<(u32, [u8; 16], u16)> {
    if p.len() < 12 {
        return None;
    }
    let ifindex = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as u32;
    let state = u16::from_ne_bytes([p[8], p[9]]);
    let ip = attrs(&p[12..]).find(|&(t, _)| t == NDA_DST).and_then(|(_, v)| mapped(v))?;
    Some((ifindex, ip, state))
}

/// `NUD_STALE`: a neighbour not confirmed lately; the kernel probes it when asked to use it.
pub const NUD_STALE: u16 = 0x04;
/// `NUD_FAILED`: a neighbour that did not answer the kernel's probes.
pub const NUD_FAILED: u16 = 0x20;

/// The route an `RTM_NEWROUTE` payload (`rtmsg` and attributes) describes, if it is a unicast
/// route of the main table.
pub fn route(p: &[u8]) -> Option<Route> {
    if p.len() < 12 {
        return None;
    }
    let (family, len, table, rtype) = (p[0], p[1], p[4], p[7]);
    if rtype != RTN_UNICAST {
        return None;
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
    (table == RT_TABLE_MAIN).then_some(r)
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
            if let Some(done) = messages(&self.buf[..n as usize], seq, &mut f) {
                return done;
            }
        }
    }

    /// Every neighbour with a usable link-layer address.
    pub fn neighbors(&mut self) -> io::Result<Vec<Neighbor>> {
        let body = [0u8; 12]; // ndmsg, family AF_UNSPEC: both families
        let seq = self.request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &body)?;
        let mut out = Vec::new();
        self.replies(seq, |ty, p| {
            if ty == RTM_NEWNEIGH
                && let Some(n) = neighbor(p)
            {
                out.push(n);
            }
        })?;
        Ok(out)
    }

    /// Every neighbour entry's `(ifindex, ip, state)`, whatever its state.
    pub fn neighbor_states(&mut self) -> io::Result<Vec<(u32, [u8; 16], u16)>> {
        let body = [0u8; 12];
        let seq = self.request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &body)?;
        let mut out = Vec::new();
        self.replies(seq, |ty, p| {
            if ty == RTM_NEWNEIGH
                && let Some(n) = neighbor_state(p)
            {
                out.push(n);
            }
        })?;
        Ok(out)
    }

    /// The addresses on interface `ifindex`, both families (IPv4-mapped for IPv4).
    pub fn addresses(&mut self, ifindex: u32) -> io::Result<Vec<[u8; 16]>> {
        let body = [0u8; 8]; // ifaddrmsg, family AF_UNSPEC: both families
        let seq = self.request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &body)?;
        let mut out = Vec::new();
        self.replies(seq, |ty, p| {
            if ty == RTM_NEWADDR
                && let Some((i, a)) = address(p)
                && i == ifindex
            {
                out.push(a);
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
            if ty == RTM_NEWROUTE
                && let Some(r) = route(p)
            {
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

    /// Assigns `ip` (IPv4 mapped, or IPv6) to interface `ifindex` as a host address (/32, /128,
    /// without duplicate address detection), so the kernel's TCP accepts connections to it and
    /// answers ARP / neighbour solicitations for it. `Ok(false)` when it was there already.
    pub fn add_address(&mut self, ifindex: u32, ip: &[u8; 16]) -> io::Result<bool> {
        let body = ifaddr(ifindex, ip);
        let seq = self.request(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)?;
        match self.replies(seq, |_, _| {}) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes `ip` off interface `ifindex` (what [`Netlink::add_address`] put there). `Ok(false)`
    /// when it was not there.
    pub fn del_address(&mut self, ifindex: u32, ip: &[u8; 16]) -> io::Result<bool> {
        let body = ifaddr(ifindex, ip);
        let seq = self.request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, &body)?;
        match self.replies(seq, |_, _| {}) {
            Ok(()) => Ok(true),
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                    || e.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The XDP program attached to an interface without a bpf_link: its id and how
/// (`IFLA_XDP_ATTACHED`: 1 driver, 2 generic, 3 hardware, 4 several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpAttached {
    /// The program's id.
    pub prog_id: u32,
    /// `XDP_ATTACHED_*`.
    pub mode: u8,
}

/// The XDP program an `RTM_NEWLINK` payload (ifinfomsg and attributes) says is attached.
pub fn xdp_attached(p: &[u8]) -> Option<XdpAttached> {
    let (_, xdp) = attrs(p.get(16..)?).find(|&(ty, _)| ty == IFLA_XDP)?;
    let (mut mode, mut prog_id) = (0u8, 0u32);
    for (ty, v) in attrs(xdp) {
        match (ty, v.len()) {
            (IFLA_XDP_ATTACHED, 1..) => mode = v[0],
            (IFLA_XDP_PROG_ID, 4..) => prog_id = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
            _ => {}
        }
    }
    (mode != 0 && prog_id != 0).then_some(XdpAttached { prog_id, mode })
}

fn ifinfo(ifindex: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16]; // family AF_UNSPEC, type, flags and change 0
    b[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    b
}

fn nl_attr(out: &mut Vec<u8>, ty: u16, v: &[u8]) {
    out.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(v);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// An `RTM_SETLINK` body that attaches program `fd` (-1: detaches) with `flags`, replacing only
/// `expected` when given.
fn set_xdp_body(ifindex: u32, fd: i32, flags: u32, expected: Option<i32>) -> Vec<u8> {
    let mut inner = Vec::new();
    nl_attr(&mut inner, IFLA_XDP_FD, &fd.to_ne_bytes());
    let flags = flags | if expected.is_some() { XDP_FLAGS_REPLACE } else { 0 };
    nl_attr(&mut inner, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    if let Some(e) = expected {
        nl_attr(&mut inner, IFLA_XDP_EXPECTED_FD, &e.to_ne_bytes());
    }
    let mut body = ifinfo(ifindex);
    nl_attr(&mut body, IFLA_XDP | NLA_F_NESTED, &inner);
    body
}

impl Netlink {
    /// The XDP program attached to `ifindex` (by netlink or a bpf_link), if any.
    pub fn xdp_program(&mut self, ifindex: u32) -> io::Result<Option<XdpAttached>> {
        // With an ACK asked for, the answer ends as every other request's does.
        let seq = self.request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifinfo(ifindex))?;
        let mut found = None;
        self.replies(seq, |ty, p| {
            if ty == RTM_NEWLINK {
                found = xdp_attached(p);
            }
        })?;
        Ok(found)
    }

    /// Attaches XDP program `fd` to `ifindex` through netlink, so that it stays attached when
    /// this process ends (a bpf_link would not), with `flags` (`XDP_FLAGS_*_MODE`). With
    /// `expected`, atomically replaces that program and nothing else (`XDP_FLAGS_REPLACE`): a
    /// frame meets either the old program or the new one. `fd` -1 detaches.
    pub fn set_xdp(&mut self, ifindex: u32, fd: i32, flags: u32, expected: Option<i32>) -> io::Result<()> {
        let body = set_xdp_body(ifindex, fd, flags, expected);
        let seq = self.request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, &body)?;
        self.replies(seq, |_, _| {})
    }
}

/// An `ifaddrmsg` for a host address `ip` on `ifindex`, with its IFA_LOCAL, IFA_ADDRESS and
/// IFA_FLAGS attributes.
fn ifaddr(ifindex: u32, ip: &[u8; 16]) -> Vec<u8> {
    let v4 = ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let a: &[u8] = if v4 { &ip[12..] } else { &ip[..] };
    let mut body = Vec::with_capacity(64);
    body.push(if v4 { libc::AF_INET as u8 } else { libc::AF_INET6 as u8 });
    body.push(if v4 { 32 } else { 128 });
    body.push(0); // flags (IFA_FLAGS carries them)
    body.push(0); // scope: universe
    body.extend_from_slice(&ifindex.to_ne_bytes());
    for ty in [IFA_LOCAL, IFA_ADDRESS] {
        body.extend_from_slice(&((4 + a.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&ty.to_ne_bytes());
        body.extend_from_slice(a);
    }
    body.extend_from_slice(&8u16.to_ne_bytes());
    body.extend_from_slice(&IFA_FLAGS.to_ne_bytes());
    body.extend_from_slice(&IFA_F_NODAD.to_ne_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_message_gives_its_interface_and_local_address() {
        // ifaddrmsg: AF_INET, /24, flags, scope, ifindex 7; then IFA_ADDRESS (a peer's, on a
        // point-to-point link) and IFA_LOCAL, which is the one that is ours.
        let mut p = vec![2, 24, 0, 0];
        p.extend_from_slice(&7u32.to_ne_bytes());
        nl_attr(&mut p, IFA_ADDRESS, &[198, 18, 0, 9]);
        nl_attr(&mut p, IFA_LOCAL, &[198, 18, 0, 1]);
        let (i, a) = address(&p).expect("parsed");
        assert_eq!((i, &a[10..]), (7, &[0xff, 0xff, 198, 18, 0, 1][..]));
        assert_eq!(address(&p[..7]), None, "shorter than its header");
    }

    #[test]
    fn the_loopback_interfaces_addresses_are_read() {
        let mut nl = Netlink::open().expect("netlink");
        let lo = nl.addresses(1).expect("RTM_GETADDR dump");
        let mut v4 = [0u8; 16];
        v4[10..].copy_from_slice(&[0xff, 0xff, 127, 0, 0, 1]);
        assert!(lo.contains(&v4), "127.0.0.1 on lo: {lo:?}");
    }

    #[test]
    fn the_attached_xdp_program_is_read_from_a_nested_attribute() {
        let mut xdp = Vec::new();
        nl_attr(&mut xdp, IFLA_XDP_ATTACHED, &[2]);
        nl_attr(&mut xdp, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        let mut p = ifinfo(3);
        nl_attr(&mut p, 3, b"gw0\0"); // IFLA_IFNAME, before it
        nl_attr(&mut p, IFLA_XDP | NLA_F_NESTED, &xdp);
        assert_eq!(xdp_attached(&p), Some(XdpAttached { prog_id: 42, mode: 2 }));
        // None attached: the kernel says so with XDP_ATTACHED_NONE and no id.
        let mut none = Vec::new();
        nl_attr(&mut none, IFLA_XDP_ATTACHED, &[0]);
        let mut p = ifinfo(3);
        nl_attr(&mut p, IFLA_XDP | NLA_F_NESTED, &none);
        assert_eq!(xdp_attached(&p), None);
        assert_eq!(xdp_attached(&[0; 8]), None, "shorter than an ifinfomsg");
    }

    #[test]
    fn a_replace_request_names_the_expected_program() {
        let b = set_xdp_body(3, 7, XDP_FLAGS_DRV_MODE, Some(9));
        assert_eq!(&b[4..8], &3i32.to_ne_bytes());
        let (ty, xdp) = attrs(&b[16..]).next().unwrap();
        assert_eq!(ty, IFLA_XDP);
        let inner: Vec<(u16, Vec<u8>)> = attrs(xdp).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(
            inner,
            [
                (IFLA_XDP_FD, 7i32.to_ne_bytes().to_vec()),
                (IFLA_XDP_FLAGS, (XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE).to_ne_bytes().to_vec()),
                (IFLA_XDP_EXPECTED_FD, 9i32.to_ne_bytes().to_vec()),
            ]
        );
        // A first attach replaces nothing: no REPLACE flag, no expected descriptor.
        let b = set_xdp_body(3, 7, XDP_FLAGS_SKB_MODE, None);
        let (_, xdp) = attrs(&b[16..]).next().unwrap();
        assert_eq!(attrs(xdp).count(), 2);
    }

    #[test]
    fn a_host_address_request_is_an_ifaddrmsg_with_aligned_attributes() {
        let mut v4 = [0u8; 16];
        v4[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 7]);
        let b = ifaddr(3, &v4);
        assert_eq!(&b[..8], &[libc::AF_INET as u8, 32, 0, 0, 3, 0, 0, 0]);
        // IFA_LOCAL and IFA_ADDRESS (8 bytes each), IFA_FLAGS (8 bytes): no padding needed.
        assert_eq!(b.len(), 8 + 8 + 8 + 8);
        assert_eq!(&b[8..16], &[8, 0, IFA_LOCAL as u8, 0, 198, 18, 0, 7]);
        assert_eq!(&b[16..20], &[8, 0, IFA_ADDRESS as u8, 0]);
        assert_eq!(&b[24..], &[8, 0, IFA_FLAGS as u8, 0, IFA_F_NODAD as u8, 0, 0, 0]);
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let b = ifaddr(3, &v6);
        assert_eq!(&b[..2], &[libc::AF_INET6 as u8, 128]);
        assert_eq!(b.len(), 8 + 20 + 20 + 8);
        assert_eq!(&b[8..12], &[20, 0, IFA_LOCAL as u8, 0]);
        assert_eq!(&b[12..28], &v6);
    }

    /// A netlink message: header (length, type, flags 0, `seq`, pid 0), then `payload`, padded.
    fn msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    /// An `ndmsg` for `ifindex` in state REACHABLE, with these attributes.
    fn ndmsg(ifindex: i32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![libc::AF_INET as u8, 0, 0, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&0x02u16.to_ne_bytes());
        p.extend_from_slice(&[0, 0]);
        attrs.iter().for_each(|a| p.extend_from_slice(a));
        p
    }

    /// An `rtmsg` of `family`, prefix length `len`, main table, unicast, with these attributes.
    fn rtmsg(family: u8, len: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![family, len, 0, 0, RT_TABLE_MAIN as u8, 0, 0, RTN_UNICAST, 0, 0, 0, 0];
        attrs.iter().for_each(|a| p.extend_from_slice(a));
        p
    }

    const MAPPED_ROUTER: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 254];

    /// Found by `fuzz/run netlink`: an NLMSG_ERROR whose code is i32::MIN overflowed its negation.
    #[test]
    fn an_error_code_of_i32_min_is_an_error_not_a_panic() {
        let m = msg(NLMSG_ERROR, 7, &i32::MIN.to_ne_bytes());
        assert!(matches!(messages(&m, 7, |_, _| {}), Some(Err(_))));
        let m = msg(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
        let e = messages(&m, 7, |_, _| {}).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn parses_a_neighbour() {
        let mac = [2, 0, 0, 0, 0, 0xfe];
        let p = ndmsg(3, &[attr(NDA_DST, &[198, 18, 0, 254]), attr(NDA_LLADDR, &mac)]);
        assert_eq!(neighbor(&p), Some(Neighbor { ifindex: 3, ip: MAPPED_ROUTER, mac }));
        // Without a link-layer address, or in state FAILED (0x20), it is not usable.
        assert_eq!(neighbor(&ndmsg(3, &[attr(NDA_DST, &[198, 18, 0, 254])])), None);
        let mut failed = p.clone();
        failed[8..10].copy_from_slice(&0x20u16.to_ne_bytes());
        assert_eq!(neighbor(&failed), None);
        assert_eq!(neighbor(&p[..11]), None);
    }

    #[test]
    fn parses_a_route() {
        let p = rtmsg(
            libc::AF_INET as u8,
            0,
            &[attr(RTA_GATEWAY, &[198, 18, 0, 254]), attr(RTA_OIF, &7u32.to_ne_bytes())],
        );
        let mut default_v4 = [0u8; 16];
        default_v4[10..12].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(
            route(&p),
            Some(Route { dst: default_v4, len: 0, v4: true, via: Some(MAPPED_ROUTER), ifindex: 7 })
        );
        let six = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let p = rtmsg(libc::AF_INET6 as u8, 32, &[attr(RTA_DST, &six), attr(RTA_OIF, &7u32.to_ne_bytes())]);
        assert_eq!(route(&p), Some(Route { dst: six, len: 32, v4: false, via: None, ifindex: 7 }));
        // Another table (RTA_TABLE overrides the header's) is not ours.
        let p = rtmsg(libc::AF_INET as u8, 24, &[attr(RTA_TABLE, &255u32.to_ne_bytes())]);
        assert_eq!(route(&p), None);
    }

    #[test]
    fn a_datagram_is_read_to_its_end() {
        let nd = ndmsg(3, &[attr(NDA_DST, &[198, 18, 0, 254]), attr(NDA_LLADDR, &[2, 0, 0, 0, 0, 0xfe])]);
        let mut dgram = msg(RTM_NEWNEIGH, 9, &nd);
        dgram.extend(msg(RTM_NEWNEIGH, 8, &nd)); // another request's: skipped
        let mut seen = Vec::new();
        assert!(messages(&dgram, 9, |ty, p| seen.push((ty, p.len()))).is_none(), "more to come");
        assert_eq!(seen, [(RTM_NEWNEIGH, nd.len())]);
        dgram.extend(msg(NLMSG_DONE, 9, &[0; 4]));
        assert!(matches!(messages(&dgram, 9, |_, _| {}), Some(Ok(()))));
        // An error message carries the negative errno.
        let err = msg(NLMSG_ERROR, 9, &(-libc::EPERM).to_ne_bytes());
        let e = messages(&err, 9, |_, _| {}).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        // A length beyond the datagram is refused, not followed.
        let mut cut = msg(RTM_NEWNEIGH, 9, &nd);
        cut.truncate(20);
        let e = messages(&cut, 9, |_, _| {}).unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
