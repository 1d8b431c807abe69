//! ExternalName Services, resolved: the main thread asks a DNS server (RFC 1035, over UDP) for
//! each name the L7 table's upstreams carry, A and AAAA, keeps what it answered until the
//! answer's TTL runs out, and asks again. The workers get the addresses as the upstream's
//! endpoints (a new L7 generation when they change), so no worker ever waits on DNS.
//!
//! - The server is `--dns-server`, else the first `nameserver` of `/etc/resolv.conf`.
//! - A name is asked again when the shortest TTL of its answer runs out (at least 1 s, at most
//!   an hour); an answer that does not come within 2 s, or an error, is asked again 5 s later
//!   and the addresses known so far stay (a resolver that is down does not empty an upstream).
//!   A name that does not exist (NXDOMAIN) or has no address has no endpoints: requests get 503.
//! - Answers are taken only from the server asked, with the ID and question asked; records are
//!   read within the message's bounds, names through compression pointers that must point
//!   backwards (so a hostile answer cannot loop).
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long an answer may take before the name is asked again later.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// When to ask again after a timeout or an error.
const RETRY: Duration = Duration::from_secs(5);
/// Bounds on how long an answer is kept.
const MIN_TTL_S: u32 = 1;
const MAX_TTL_S: u32 = 3600;

/// A record type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum QType {
    A = 1,
    Aaaa = 28,
}

/// Writes a query for `name` (a checked DNS name) into a new message.
pub(crate) fn query(id: u16, name: &str, qtype: QType) -> Vec<u8> {
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&(qtype as u16).to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    m
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The addresses of the type asked.
    pub(crate) addrs: Vec<IpAddr>,
    /// The shortest TTL among the records read (seconds); `None` without records.
    pub(crate) ttl_s: Option<u32>,
    /// NXDOMAIN.
    pub(crate) no_such_name: bool,
}

/// Why a message is not an answer to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Shorter than its header or a record says.
    Truncated,
    /// Not a response, or truncated (TC), or an error other than NXDOMAIN.
    NotAnAnswer,
    /// A name that is malformed or loops.
    Name,
}

/// Reads the name at `at`, returns where the record continues; the name itself is only
/// checked (answers are matched by ID and question, not by owner name).
fn skip_name(m: &[u8], mut at: usize) -> Result<usize, Bad> {
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(at).ok_or(Bad::Truncated)?;
        match len {
            0 => return Ok(end.unwrap_or(at + 1)),
            l if l & 0xc0 == 0xc0 => {
                let lo = *m.get(at + 1).ok_or(Bad::Truncated)?;
                let target = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                // RFC 1035 §4.1.4: a pointer to a prior occurrence; backwards only, and few.
                if target >= at || jumps > 16 {
                    return Err(Bad::Name);
                }
                jumps += 1;
                end.get_or_insert(at + 2);
                at = target;
            }
            l if l & 0xc0 != 0 => return Err(Bad::Name),
            l => at += 1 + usize::from(l),
        }
    }
}

fn u16_at(m: &[u8], at: usize) -> Result<u16, Bad> {
    m.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(Bad::Truncated)
}

/// Parses `m` as the answer to query `id` for `qtype`.
pub(crate) fn parse(m: &[u8], id: u16, qtype: QType) -> Result<Answer, Bad> {
    if m.len() < 12 || u16_at(m, 0)? != id {
        return Err(Bad::NotAnAnswer);
    }
    let flags = u16_at(m, 2)?;
    let (qr, tc, rcode) = (flags & 0x8000 != 0, flags & 0x0200 != 0, flags & 0x000f);
    if !qr || tc || (rcode != 0 && rcode != 3) {
        return Err(Bad::NotAnAnswer);
    }
    let (qd, an) = (u16_at(m, 4)?, u16_at(m, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(m, at)?;
        if u16_at(m, at)? != qtype as u16 {
            return Err(Bad::NotAnAnswer);
        }
        at += 4;
    }
    let mut out = Answer { addrs: Vec::new(), ttl_s: None, no_such_name: rcode == 3 };
    for _ in 0..an {
        at = skip_name(m, at)?;
        let (rtype, class) = (u16_at(m, at)?, u16_at(m, at + 2)?);
        let ttl = m.get(at + 4..at + 8).ok_or(Bad::Truncated)?;
        let ttl = u32::from_be_bytes([ttl[0], ttl[1], ttl[2], ttl[3]]) & 0x7fff_ffff;
        let rdlen = usize::from(u16_at(m, at + 8)?);
        let rdata = m.get(at + 10..at + 10 + rdlen).ok_or(Bad::Truncated)?;
        at += 10 + rdlen;
        if class != 1 {
            continue;
        }
        // CNAMEs on the way count for the TTL: the answer is as old as its oldest link.
        out.ttl_s = Some(out.ttl_s.map_or(ttl, |t| t.min(ttl)));
        match (rtype, rdata.len(), qtype) {
            (1, 4, QType::A) => {
                out.addrs.push(IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])))
            }
            (28, 16, QType::Aaaa) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                out.addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
    }
    out.addrs.sort();
    out.addrs.dedup();
    Ok(out)
}

/// The server `/etc/resolv.conf` names first.
pub(crate) fn system_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// One name's state.
#[derive(Debug, Default)]
struct Name {
    /// Addresses by type, as last answered.
    addrs: BTreeMap<u8, Vec<IpAddr>>,
    /// When to ask again.
    due: Option<Instant>,
    /// Queries in flight: (id, type, sent).
    pending: Vec<(u16, QType, Instant)>,
    /// The shortest TTL of this round's answers.
    round_ttl: Option<u32>,
    /// A query of this round failed: ask again after [`RETRY`].
    round_failed: bool,
}

/// The main thread's resolver.
#[derive(Debug)]
pub(crate) struct Resolver {
    server: SocketAddr,
    socket: Option<UdpSocket>,
    names: BTreeMap<String, Name>,
    next_id: u16,
}

impl Resolver {
    /// A resolver asking `server`.
    pub(crate) fn new(server: SocketAddr) -> Resolver {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| (d.subsec_nanos() ^ std::process::id()) as u16);
        Resolver { server, socket: None, names: BTreeMap::new(), next_id: seed }
    }

    /// The names to keep resolved (the others are forgotten).
    pub(crate) fn want(&mut self, names: &BTreeSet<String>) {
        self.names.retain(|n, _| names.contains(n));
        for n in names {
            self.names.entry(n.clone()).or_default();
        }
    }

    /// The addresses of `name` known now.
    pub(crate) fn addresses(&self, name: &str) -> Vec<IpAddr> {
        self.names.get(name).map(|n| n.addrs.values().flatten().copied().collect()).unwrap_or_default()
    }

    fn socket(&mut self) -> Option<&UdpSocket> {
        if self.socket.is_none() {
            let bind: SocketAddr = if self.server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
            match UdpSocket::bind(bind).and_then(|s| s.connect(self.server).map(|()| s)) {
                Ok(s) => {
                    let _ = s.set_nonblocking(true);
                    self.socket = Some(s);
                }
                Err(e) => {
                    sluice_log::warn!("DNS: cannot reach {}: {e}", self.server);
                    return None;
                }
            }
        }
        self.socket.as_ref()
    }

    /// Sends what is due, reads what came: whether any name's addresses changed.
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        if self.names.is_empty() {
            return false;
        }
        let mut changed = false;
        // Answers.
        let mut buf = [0u8; 1500];
        let mut answers = Vec::new();
        if let Some(s) = self.socket() {
            while let Ok(n) = s.recv(&mut buf) {
                answers.push(buf[..n].to_vec());
            }
        }
        for m in answers {
            let Some(id) = m.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
            let Some((name, entry)) =
                self.names.iter_mut().find(|(_, e)| e.pending.iter().any(|p| p.0 == id))
            else {
                continue;
            };
            let i = entry.pending.iter().position(|p| p.0 == id).unwrap_or(0);
            let (_, qtype, _) = entry.pending.remove(i);
            match parse(&m, id, qtype) {
                Ok(a) => {
                    let addrs = if a.no_such_name { Vec::new() } else { a.addrs };
                    let old = entry.addrs.insert(qtype as u8, addrs.clone());
                    if old.as_ref() != Some(&addrs) {
                        changed = true;
                        sluice_log::info!("DNS: {name} {qtype:?}: {addrs:?} (ttl {:?} s)", a.ttl_s);
                    }
                    let ttl = a.ttl_s.unwrap_or(MAX_TTL_S);
                    entry.round_ttl = Some(entry.round_ttl.map_or(ttl, |t| t.min(ttl)));
                }
                Err(e) => {
                    sluice_log::warn!("DNS: {name} {qtype:?}: {e:?}; asked again in {} s", RETRY.as_secs());
                    entry.round_failed = true;
                }
            }
            if entry.pending.is_empty() {
                // The round is over: ask again when its shortest TTL runs out, or soon after a
                // failure.
                let ttl = entry.round_ttl.take().unwrap_or(MAX_TTL_S).clamp(MIN_TTL_S, MAX_TTL_S);
                let wait = if std::mem::take(&mut entry.round_failed) {
                    RETRY
                } else {
                    Duration::from_secs(u64::from(ttl))
                };
                entry.due = Some(now + wait);
            }
        }
        // Timeouts, then queries due.
        let mut to_send = Vec::new();
        for (name, e) in &mut self.names {
            if e.pending.iter().any(|p| now.duration_since(p.2) >= ANSWER_TIMEOUT) {
                sluice_log::warn!(
                    "DNS: no answer for {name} from {}; asked again in {} s",
                    self.server,
                    RETRY.as_secs()
                );
                e.pending.clear();
                e.round_ttl = None;
                e.round_failed = false;
                e.due = Some(now + RETRY);
            }
            if e.pending.is_empty() && e.due.is_none_or(|d| d <= now) {
                for qtype in [QType::A, QType::Aaaa] {
                    self.next_id = self.next_id.wrapping_add(0x9e37);
                    e.pending.push((self.next_id, qtype, now));
                    to_send.push(query(self.next_id, name, qtype));
                }
                e.due = Some(now + ANSWER_TIMEOUT);
            }
        }
        if let Some(s) = self.socket() {
            for q in to_send {
                let _ = s.send(&q);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `query(id, "db.example.com", A)`: a CNAME (ttl 300) then an A (ttl 60).
    fn answer(id: u16) -> Vec<u8> {
        let mut m = query(id, "db.example.com", QType::A);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2; // ANCOUNT
        // db.example.com CNAME x.example.com (pointer to the question name at 12).
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44, 0, 4, 1, b'x', 0xc0, 15]);
        let x = m.len() - 4;
        // x.example.com A 198.18.5.5
        m.extend_from_slice(&[0xc0, x as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 5, 5]);
        m
    }

    #[test]
    fn an_answer_through_a_cname() {
        let a = parse(&answer(7), 7, QType::A).unwrap();
        assert_eq!(a.addrs, ["198.18.5.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.ttl_s, Some(60));
        assert!(!a.no_such_name);
        assert_eq!(parse(&answer(7), 8, QType::A), Err(Bad::NotAnAnswer), "another ID");
        assert_eq!(parse(&answer(7), 7, QType::Aaaa), Err(Bad::NotAnAnswer), "another question");
    }

    #[test]
    fn hostile_answers_are_errors_never_panics() {
        let m = answer(7);
        for n in 0..m.len() {
            let _ = parse(&m[..n], 7, QType::A);
        }
        for i in 12..m.len() {
            for v in [0x00, 0x3f, 0xc0, 0xff] {
                let mut b = m.clone();
                b[i] = v;
                let _ = parse(&b, 7, QType::A);
            }
        }
        // A pointer to itself loops: refused.
        let mut looped = query(7, "a", QType::A);
        looped[2] = 0x81;
        looped[7] = 1;
        let at = looped.len();
        looped.extend_from_slice(&[0xc0, at as u8, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&looped, 7, QType::A), Err(Bad::Name));
    }

    #[test]
    fn nxdomain_is_no_address() {
        let mut m = query(9, "gone.example.com", QType::Aaaa);
        m[2] = 0x81;
        m[3] = 0x83;
        let a = parse(&m, 9, QType::Aaaa).unwrap();
        assert!(a.no_such_name && a.addrs.is_empty());
    }

    #[test]
    fn a_resolver_asks_and_keeps_the_answer() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut r = Resolver::new(server.local_addr().unwrap());
        r.want(&BTreeSet::from(["db.example.com".to_owned()]));
        let t0 = Instant::now();
        assert!(!r.poll(t0));
        // Answer both questions: A with an address, AAAA with none.
        for _ in 0..2 {
            let mut q = [0u8; 512];
            let (n, from) = server.recv_from(&mut q).unwrap();
            let id = u16::from_be_bytes([q[0], q[1]]);
            let qtype = u16::from_be_bytes([q[n - 4], q[n - 3]]);
            let reply = if qtype == 1 {
                answer(id)
            } else {
                let mut m = q[..n].to_vec();
                m[2] = 0x81;
                m[3] = 0x80;
                m
            };
            server.send_to(&reply, from).unwrap();
        }
        let mut changed = false;
        for _ in 0..200 {
            changed |= r.poll(t0);
            if r.addresses("db.example.com").len() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(changed);
        assert_eq!(r.addresses("db.example.com"), ["198.18.5.5".parse::<IpAddr>().unwrap()]);
        // Nothing is asked again before the TTL (60 s) runs out.
        assert!(!r.poll(t0 + Duration::from_secs(30)));
        server.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert!(server.recv_from(&mut [0u8; 512]).is_err(), "asked again early");
    }
}
