//! The L2 election in manifest mode: the nodes' control processes tell each other, over UDP
//! on the nodes' link, every [`Settings::interval`], which L2 VIPs each may announce and which
//! it holds; each decides alone, from the same facts, which VIPs it holds.
//!
//! Why not VRRP through keepalived (docs/l2.md says it at length): keepalived runs as root and
//! would need its own liveness check of the gateway, and a configuration kept in step with the
//! VIPs; VRRP elects one master per instance, not per VIP; and its state would come back to
//! control through notify scripts. Here control, which is unprivileged and knows both the VIPs
//! and whether its gateway serves, runs the election itself, with one rule MetalLB's users know
//! (its per-VIP order, [`super::rank`]) and the one VRRP has (a node silent for a few intervals
//! is dead).
//!
//! **The rule**, per VIP, among the nodes heard from within [`Settings::dead_after`] whose
//! gateway serves:
//! - a node that holds a VIP keeps it, unless another live node also claims it and ranks before
//!   it (two holders after a partition heals: the later-ranked yields at once);
//! - a VIP nobody holds is taken by the first-ranked candidate;
//! - a node takes nothing until it has run, and its gateway has served, for
//!   [`Settings::dead_after`]: by then it has heard every live node, and they have heard that
//!   its gateway serves, so it takes no VIP one of them holds, and none takes one it holds.
//!   Holders are sticky: a node that comes back does not take its VIPs back, so connections are
//!   not moved twice.
//! - a node whose gateway stops serving claims nothing, and says so: the others take over at
//!   their next decision instead of waiting for it to fall silent.
//!
//! As with VRRP (and MetalLB's memberlist), nodes that cannot hear each other each hold what
//! they would hold alone: a partition of the link can give a VIP two holders until it heals.
//!
//! **Authenticated**: each message carries an HMAC-SHA256 over all of it, with the key every node
//! is given (`--l2-key FILE`); one without a valid tag, from more than [`MAX_SKEW`] away in time,
//! or repeating a sequence number already heard from its sender is dropped (and counted). The
//! key is not the flow sync's: they protect different things.
//!
//! **Bounded**: a message is at most [`MAX_MESSAGE`] bytes, at most [`MAX_VIPS`] addresses;
//! at most [`MAX_PEERS`] nodes are tracked; at most 64 messages are read per tick.
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use sluice_model::Addr;
use tracing::{info, warn};

use super::rank;

/// The port the election listens on by default.
pub const DEFAULT_PORT: u16 = 7947;
/// The longest message: one UDP datagram, fragmented on the nodes' link if it must be.
pub const MAX_MESSAGE: usize = 65_000;
/// The most addresses one message carries (candidates and claims together).
pub const MAX_VIPS: usize = 3_900;
/// The most nodes tracked.
pub const MAX_PEERS: usize = 64;
/// How far a message's time may be from ours (the nodes' clocks are kept by NTP).
pub const MAX_SKEW: Duration = Duration::from_secs(5);
/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

const MAGIC: &[u8; 4] = b"SLL2";
const VERSION: u8 = 1;
const FLAG_SERVING: u8 = 1;
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = 32;

/// The election's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name: what the others know it by, and what it ranks by.
    pub node: String,
    /// Where to listen (this node's address on the link, and the port).
    pub listen: SocketAddr,
    /// The other nodes' addresses and ports.
    pub peers: Vec<SocketAddr>,
    /// The shared key (at least [`MIN_KEY_BYTES`]).
    pub key: Vec<u8>,
    /// How often each node says hello.
    pub interval: Duration,
    /// How long a node may be silent before it is dead (and how long a new node takes nothing).
    pub dead_after: Duration,
}

/// What one node says, every interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Its name.
    pub node: String,
    /// A random number of its process's start: its sequence numbers count from there.
    pub boot: u64,
    /// Its message count since `boot`.
    pub seq: u64,
    /// Its clock when it sent this, ms since the Unix epoch.
    pub time_ms: u64,
    /// Whether its gateway serves.
    pub serving: bool,
    /// The L2 VIPs it may announce.
    pub candidates: BTreeSet<IpAddr>,
    /// The L2 VIPs it holds.
    pub claims: BTreeSet<IpAddr>,
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Shorter than its parts, or not this protocol or version.
    Malformed,
    /// Its tag is not the key's.
    BadTag,
    /// Too far from our clock.
    Skewed,
    /// A sequence number already heard from its sender (a replay, or a duplicate).
    Replayed,
    /// From a node past [`MAX_PEERS`].
    TooManyPeers,
}

/// Encodes and signs a hello.
pub fn encode(h: &Hello, key: &hmac::Key) -> Vec<u8> {
    let name = &h.node.as_bytes()[..h.node.len().min(255)];
    let mut out =
        Vec::with_capacity(HEADER_LEN + 5 + name.len() + 16 * (h.candidates.len() + h.claims.len()));
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(if h.serving { FLAG_SERVING } else { 0 });
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&h.boot.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
    out.extend_from_slice(&h.time_ms.to_le_bytes());
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&(h.candidates.len() as u16).to_le_bytes());
    out.extend_from_slice(&(h.claims.len() as u16).to_le_bytes());
    for a in h.candidates.iter().chain(&h.claims) {
        out.extend_from_slice(&Addr::from(*a).0);
    }
    let tag = hmac::sign(key, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// Checks a message's tag and decodes it.
pub fn decode(bytes: &[u8], key: &hmac::Key) -> Result<Hello, Refused> {
    if bytes.len() < HEADER_LEN + 5 + TAG_LEN || bytes.len() > MAX_MESSAGE {
        return Err(Refused::Malformed);
    }
    let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    hmac::verify(key, body, tag).map_err(|_| Refused::BadTag)?;
    if &body[..4] != MAGIC || body[4] != VERSION {
        return Err(Refused::Malformed);
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or([0; 8]));
    let name_len = usize::from(body[HEADER_LEN]);
    let mut at = HEADER_LEN + 1;
    let node = body.get(at..at + name_len).ok_or(Refused::Malformed)?;
    let node = std::str::from_utf8(node).map_err(|_| Refused::Malformed)?.to_owned();
    at += name_len;
    let count = |at: usize| body.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let (n_cand, n_claim) = (count(at).ok_or(Refused::Malformed)?, count(at + 2).ok_or(Refused::Malformed)?);
    at += 4;
    if n_cand + n_claim > MAX_VIPS || body.len() != at + 16 * (n_cand + n_claim) {
        return Err(Refused::Malformed);
    }
    let addr = |i: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&body[at + 16 * i..at + 16 * i + 16]);
        Addr(a).ip()
    };
    Ok(Hello {
        node,
        boot: u64_at(8),
        seq: u64_at(16),
        time_ms: u64_at(24),
        serving: body[5] & FLAG_SERVING != 0,
        candidates: (0..n_cand).map(addr).collect(),
        claims: (n_cand..n_cand + n_claim).map(addr).collect(),
    })
}

/// What is known of another node.
#[derive(Debug, Clone)]
struct Peer {
    hello: Hello,
    heard: Instant,
}

/// The election's state on one node: pure, the time passed in (tested without sockets).
#[derive(Debug)]
pub struct Election {
    me: String,
    dead_after: Duration,
    peers: BTreeMap<String, Peer>,
    held: BTreeSet<IpAddr>,
    /// Since when the gateway has served without a break.
    serving_since: Option<Instant>,
    boot: u64,
    seq: u64,
}

impl Election {
    /// Node `me`, counting a node dead after `dead_after` of silence.
    pub fn new(me: &str, dead_after: Duration, boot: u64) -> Election {
        Election {
            me: me.into(),
            dead_after,
            peers: BTreeMap::new(),
            held: BTreeSet::new(),
            serving_since: None,
            boot,
            seq: 0,
        }
    }

    /// Takes another node's hello, received at `now` when our clock said `wall_ms`.
    pub fn hear(&mut self, hello: Hello, now: Instant, wall_ms: u64) -> Result<(), Refused> {
        if hello.node == self.me {
            // Our own, looped back (a peer list that names us): nothing to learn.
            return Ok(());
        }
        if hello.time_ms.abs_diff(wall_ms) > MAX_SKEW.as_millis() as u64 {
            return Err(Refused::Skewed);
        }
        match self.peers.get(&hello.node) {
            Some(p) if p.hello.boot == hello.boot && p.hello.seq >= hello.seq => {
                return Err(Refused::Replayed);
            }
            None if self.peers.len() >= MAX_PEERS => return Err(Refused::TooManyPeers),
            _ => {}
        }
        self.peers.insert(hello.node.clone(), Peer { hello, heard: now });
        Ok(())
    }

    /// Decides, at `now`, which of `candidates` this node holds (`serving`: whether its gateway
    /// serves); returns them.
    pub fn decide(
        &mut self,
        now: Instant,
        candidates: &BTreeSet<IpAddr>,
        serving: bool,
    ) -> &BTreeSet<IpAddr> {
        let dead_after = self.dead_after;
        // Forget nodes long dead (they come back as new).
        self.peers.retain(|_, p| now.saturating_duration_since(p.heard) < dead_after * 10);
        if !serving {
            self.serving_since = None;
            self.held.clear();
            return &self.held;
        }
        let since = *self.serving_since.get_or_insert(now);
        // Settled: serving long enough to have heard every live node, and to have been heard
        // serving (a node that has just started serves since then at the earliest).
        let settled = now.saturating_duration_since(since) >= dead_after;
        let alive: Vec<&Hello> = self
            .peers
            .values()
            .filter(|p| now.saturating_duration_since(p.heard) < dead_after && p.hello.serving)
            .map(|p| &p.hello)
            .collect();
        self.held.retain(|v| candidates.contains(v));
        for &v in candidates {
            let mine = (rank(&self.me, v), self.me.as_str());
            let before_me = |h: &&Hello| (rank(&h.node, v), h.node.as_str()) < mine;
            if self.held.contains(&v) {
                if alive.iter().filter(|h| h.claims.contains(&v)).any(&before_me) {
                    self.held.remove(&v);
                }
                continue;
            }
            let claimed = alive.iter().any(|h| h.claims.contains(&v));
            let better = alive.iter().filter(|h| h.candidates.contains(&v)).any(before_me);
            if settled && !claimed && !better {
                self.held.insert(v);
            }
        }
        &self.held
    }

    /// The hello to send now (what this node holds, as last decided). At most [`MAX_VIPS`]
    /// addresses: the claims first, then as many candidates as fit (the others are not
    /// contended for by the peers' view of this node; [`spawn`] logs it).
    pub fn hello(&mut self, candidates: &BTreeSet<IpAddr>, serving: bool, wall_ms: u64) -> Hello {
        self.seq += 1;
        let room = MAX_VIPS.saturating_sub(self.held.len());
        Hello {
            node: self.me.clone(),
            boot: self.boot,
            seq: self.seq,
            time_ms: wall_ms,
            serving,
            candidates: if serving {
                candidates.iter().take(room).copied().collect()
            } else {
                BTreeSet::new()
            },
            claims: self.held.iter().take(MAX_VIPS).copied().collect(),
        }
    }

    /// The nodes heard from within `dead_after`.
    pub fn alive(&self, now: Instant) -> Vec<&str> {
        self.peers
            .values()
            .filter(|p| now.saturating_duration_since(p.heard) < self.dead_after)
            .map(|p| p.hello.node.as_str())
            .collect()
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The election, shared between its thread and control's loop.
#[derive(Debug, Default)]
pub struct Shared {
    /// The VIPs this node may announce (control sets them after each publication).
    pub candidates: BTreeSet<IpAddr>,
    /// The VIPs this node holds (the election sets them).
    pub held: BTreeSet<IpAddr>,
}

/// Reads the key file: at least [`MIN_KEY_BYTES`] bytes (surrounding whitespace is not key).
pub fn read_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--l2-key {}: {e}", path.display()))?;
    let key = bytes.trim_ascii().to_vec();
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "--l2-key {}: {} bytes; at least {MIN_KEY_BYTES} (e.g. `head -c 32 /dev/urandom | base64`)",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

/// Runs the election on a thread of its own: says hello to every peer each interval, reads what
/// they say, decides every tick (a tenth of the interval), and calls `changed` when what this
/// node holds changed. `serving()` says whether the gateway serves.
pub fn spawn(
    settings: Settings,
    shared: Arc<Mutex<Shared>>,
    serving: impl Fn() -> bool + Send + 'static,
    changed: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let socket = UdpSocket::bind(settings.listen)?;
    let tick = (settings.interval / 10).max(Duration::from_millis(5));
    socket.set_read_timeout(Some(tick))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &settings.key);
    let boot = {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| std::io::Error::other("no random numbers"))?;
        u64::from_le_bytes(b)
    };
    std::thread::Builder::new().name("l2-election".into()).spawn(move || {
        let mut e = Election::new(&settings.node, settings.dead_after, boot);
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let mut last_hello: Option<Instant> = None;
        let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut last_refusal_log = Instant::now();
        let mut was_alive: Vec<String> = Vec::new();
        let mut was_up = false;
        let mut said_too_many = false;
        loop {
            // What the peers said since the last tick (64 at most: the next tick reads on).
            for _ in 0..64 {
                let n = match socket.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(_) => break,
                };
                let r = decode(&buf[..n], &key).and_then(|h| e.hear(h, Instant::now(), wall_ms()));
                if let Err(why) = r {
                    *refused.entry(refusal_name(why)).or_default() += 1;
                }
            }
            if !refused.is_empty() && last_refusal_log.elapsed() > Duration::from_secs(10) {
                warn!(
                    "L2 election: messages dropped: {refused:?} (a wrong --l2-key, a clock off, or a replay)"
                );
                refused.clear();
                last_refusal_log = Instant::now();
            }
            let up = serving();
            let candidates = shared.lock().unwrap_or_else(PoisonError::into_inner).candidates.clone();
            let now = Instant::now();
            let held = e.decide(now, &candidates, up).clone();
            let alive: Vec<String> = e.alive(now).into_iter().map(str::to_owned).collect();
            if alive != was_alive {
                info!("L2 election: nodes heard: {alive:?}");
                was_alive = alive;
            }
            let moved = {
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let moved = s.held != held;
                if moved {
                    let gained: Vec<_> = held.difference(&s.held).collect();
                    let lost: Vec<_> = s.held.difference(&held).collect();
                    info!("L2 election: now announcing {gained:?}, no longer {lost:?}");
                    s.held = held;
                }
                moved
            };
            if moved {
                changed();
            }
            // At once when what the others must know changed: what this node holds, or whether
            // its gateway serves.
            if last_hello.is_none_or(|t| t.elapsed() >= settings.interval) || moved || up != was_up {
                was_up = up;
                if candidates.len() + e.held.len() > MAX_VIPS && !said_too_many {
                    warn!(
                        "L2 election: {} candidate VIPs, more than a hello carries ({MAX_VIPS}): the peers \
                         do not see this node's candidacy for the rest",
                        candidates.len()
                    );
                    said_too_many = true;
                }
                let bytes = encode(&e.hello(&candidates, up, wall_ms()), &key);
                for p in &settings.peers {
                    // A peer that is down refuses (ICMP): nothing to do but try next time.
                    let _ = socket.send_to(&bytes, p);
                }
                last_hello = Some(Instant::now());
            }
        }
    })
}

fn refusal_name(r: Refused) -> &'static str {
    match r {
        Refused::Malformed => "malformed",
        Refused::BadTag => "bad tag",
        Refused::Skewed => "clock skew",
        Refused::Replayed => "replayed",
        Refused::TooManyPeers => "too many nodes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Duration = Duration::from_millis(1000);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|s| ip(s)).collect()
    }

    /// Two VIPs of which gw-a ranks first for one and gw-b for the other.
    fn split_vips() -> (IpAddr, IpAddr) {
        let vips: Vec<IpAddr> = (10..60u8).map(|i| IpAddr::from([198, 18, 100, i])).collect();
        let a = *vips.iter().find(|v| rank("gw-a", **v) < rank("gw-b", **v)).unwrap();
        let b = *vips.iter().find(|v| rank("gw-b", **v) < rank("gw-a", **v)).unwrap();
        (a, b)
    }

    #[test]
    fn a_message_round_trips_and_a_wrong_key_or_a_change_is_refused() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let h = Hello {
            node: "gw-a".into(),
            boot: 7,
            seq: 3,
            time_ms: 1_000,
            serving: true,
            candidates: set(&["198.18.100.10", "2001:db8:100::10"]),
            claims: set(&["198.18.100.10"]),
        };
        let bytes = encode(&h, &key);
        assert_eq!(decode(&bytes, &key), Ok(h));
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"fedcba9876543210");
        assert_eq!(decode(&bytes, &other), Err(Refused::BadTag));
        let mut flipped = bytes.clone();
        flipped[5] ^= FLAG_SERVING;
        assert_eq!(decode(&flipped, &key), Err(Refused::BadTag));
        assert_eq!(decode(&bytes[..40], &key), Err(Refused::Malformed));
    }

    #[test]
    fn replays_stale_clocks_and_our_own_hellos_teach_nothing() {
        let t0 = Instant::now();
        let mut e = Election::new("gw-a", DEAD, 1);
        let mut b = Election::new("gw-b", DEAD, 2);
        let hello = b.hello(&set(&["198.18.100.10"]), true, 50_000);
        assert_eq!(e.hear(hello.clone(), t0, 50_000), Ok(()));
        assert_eq!(e.hear(hello.clone(), t0, 50_000), Err(Refused::Replayed));
        let late = b.hello(&set(&[]), true, 40_000);
        assert_eq!(e.hear(late, t0, 50_000), Err(Refused::Skewed));
        // A new boot of gw-b counts from its own sequence again.
        let mut b2 = Election::new("gw-b", DEAD, 3);
        assert_eq!(e.hear(b2.hello(&set(&[]), true, 50_000), t0, 50_000), Ok(()));
        let mut me = Election::new("gw-a", DEAD, 9);
        assert_eq!(e.hear(me.hello(&set(&[]), true, 50_000), t0, 50_000), Ok(()));
        assert_eq!(e.alive(t0), ["gw-b"]);
    }

    /// Two nodes exchange hellos every 300 ms for `ms`; returns what each holds.
    fn run(
        a: &mut Election,
        b: &mut Election,
        t: &mut Instant,
        ms: u64,
        (cand_a, cand_b): (&BTreeSet<IpAddr>, &BTreeSet<IpAddr>),
        (up_a, up_b): (bool, bool),
        (talk_a, talk_b): (bool, bool),
    ) {
        for _ in 0..ms / 100 {
            *t += Duration::from_millis(100);
            a.decide(*t, cand_a, up_a);
            b.decide(*t, cand_b, up_b);
            if talk_a {
                let h = a.hello(cand_a, up_a, 10_000);
                b.hear(h, *t, 10_000).unwrap();
            }
            if talk_b {
                let h = b.hello(cand_b, up_b, 10_000);
                a.hear(h, *t, 10_000).unwrap();
            }
        }
    }

    #[test]
    fn each_vip_has_one_holder_which_keeps_it_and_another_takes_over_when_it_dies() {
        let (va, vb) = split_vips();
        let both: BTreeSet<IpAddr> = [va, vb].into();
        let t0 = Instant::now();
        let mut t = t0;
        let (mut a, mut b) = (Election::new("gw-a", DEAD, 1), Election::new("gw-b", DEAD, 2));
        // Starting: nothing taken while the other nodes may not have been heard yet.
        run(&mut a, &mut b, &mut t, 500, (&both, &both), (true, true), (true, true));
        assert!(a.held.is_empty() && b.held.is_empty(), "held before the hold-down");
        // Then each takes the VIP it ranks first for: one holder each.
        run(&mut a, &mut b, &mut t, 1000, (&both, &both), (true, true), (true, true));
        assert_eq!((a.held.clone(), b.held.clone()), ([va].into(), [vb].into()));
        // gw-a dies (silent): gw-b takes va once gw-a has been silent for dead_after, not before.
        run(&mut a, &mut b, &mut t, 800, (&both, &both), (true, true), (false, true));
        assert_eq!(b.held, [vb].into(), "taken over before gw-a was dead");
        run(&mut a, &mut b, &mut t, 300, (&both, &both), (true, true), (false, true));
        assert_eq!(b.held, both, "taken over");
        // gw-a comes back (a new process): it takes nothing back, the holder is sticky.
        let mut a = Election::new("gw-a", DEAD, 3);
        run(&mut a, &mut b, &mut t, 3000, (&both, &both), (true, true), (true, true));
        assert_eq!((a.held.len(), b.held.clone()), (0, both.clone()));
        // gw-b's gateway stops serving: it claims nothing and says so; gw-a takes both at once.
        run(&mut a, &mut b, &mut t, 300, (&both, &both), (true, false), (true, true));
        assert_eq!((a.held.clone(), b.held.len()), (both.clone(), 0));
    }

    #[test]
    fn a_gateway_that_starts_serving_late_takes_nothing_its_peer_took_meanwhile() {
        let (va, vb) = split_vips();
        let both: BTreeSet<IpAddr> = [va, vb].into();
        let t0 = Instant::now();
        let mut t = t0;
        let (mut a, mut b) = (Election::new("gw-a", DEAD, 1), Election::new("gw-b", DEAD, 2));
        // gw-b's gateway is not up yet, gw-a not settled yet.
        run(&mut a, &mut b, &mut t, 1000, (&both, &both), (true, false), (true, true));
        assert!(a.held.is_empty());
        // gw-b's gateway comes up at the very tick gw-a settles and takes both (vb too: gw-b,
        // which ranks first for it, did not serve). gw-b has not heard that claim yet, but it
        // has not served long enough to take anything: no moment with two holders.
        for _ in 0..30 {
            run(&mut a, &mut b, &mut t, 100, (&both, &both), (true, true), (true, true));
            assert!(b.held.is_empty(), "gw-b took {:?} from the holder", b.held);
        }
        assert_eq!(a.held, both);
    }

    #[test]
    fn two_holders_after_a_partition_heal_to_one() {
        let (va, _) = split_vips();
        let one: BTreeSet<IpAddr> = [va].into();
        let t0 = Instant::now();
        let mut t = t0;
        let (mut a, mut b) = (Election::new("gw-a", DEAD, 1), Election::new("gw-b", DEAD, 2));
        // Partitioned from the start: each holds va.
        run(&mut a, &mut b, &mut t, 1500, (&one, &one), (true, true), (false, false));
        assert_eq!((a.held.len(), b.held.len()), (1, 1));
        // Healed: the later-ranked (gw-b, for va) yields within a hello.
        run(&mut a, &mut b, &mut t, 400, (&one, &one), (true, true), (true, true));
        assert_eq!((a.held.clone(), b.held.len()), (one, 0));
    }

    #[test]
    fn only_candidates_hold_and_a_non_candidate_does_not_block_one() {
        let (va, _) = split_vips();
        let one: BTreeSet<IpAddr> = [va].into();
        let none = BTreeSet::new();
        let t0 = Instant::now();
        let mut t = t0;
        let (mut a, mut b) = (Election::new("gw-a", DEAD, 1), Election::new("gw-b", DEAD, 2));
        // gw-a ranks first for va but may not announce it (a node selector): gw-b holds it.
        run(&mut a, &mut b, &mut t, 1500, (&none, &one), (true, true), (true, true));
        assert_eq!((a.held.len(), b.held.clone()), (0, one));
    }
}
