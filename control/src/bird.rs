//! BGP through BIRD: control keeps the node's BIRD announcing exactly the VIPs this node serves,
//! and only while its gateway runs.
//!
//! Sluice speaks no BGP itself. The operator's BIRD (Debian `bird2`) holds the sessions with the
//! routers (ASNs, neighbours, BFD, filters: theirs); its configuration includes a file Sluice
//! owns (`--bird-include`), in which control writes two static protocols, `sluice_vips` (IPv4)
//! and `sluice_vips6` (IPv6), one `blackhole` route per VIP: the LoadBalancer addresses of the
//! Services and the addresses Ingresses are served on. The operator's BGP protocols export
//! `where proto = "sluice_vips"` (deploy/bird/ has an example). After each change control asks
//! BIRD to read its configuration again through BIRD's own control socket (`--bird-socket`,
//! the `configure` command birdc sends): BIRD then announces what appeared and withdraws what
//! went.
//!
//! **Only while the gateway serves.** A VIP is announced only while a gateway process is
//! registered on the table file, alive, and has adopted a table: control looks every
//! [`LIVENESS_EVERY`]. A gateway gone for [`WITHDRAW_AFTER`] (a crash, a stop; not a restart,
//! which is shorter) has its routes withdrawn, plus BIRD's reconfiguration (measured in
//! tests/tests/bgp.rs). A node that dies whole,
//! control and BIRD with it, is the routers' to notice: BFD where they speak it, else the BGP
//! hold timer.
//!
//! **Typed values only.** The file is written from `IpAddr`s alone; nothing a Service or an
//! Ingress says (names, annotations) reaches it, so no object can inject configuration.
//! Written to a temporary file and renamed over the include: BIRD never reads half a file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::checked::{BfdProfile, BgpAdvertisement, BgpPeer, Community};

/// What the node's gateway is doing, as control sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// Running, on a table, with its flow-sync peers' flows in.
    Serving,
    /// Not running, not on a table yet, or still taking in its peers' flows: its VIPs go
    /// after [`WITHDRAW_AFTER`] (a restart is shorter).
    Gone,
    /// The operator drains the node (`--drain-file`): its VIPs go at once.
    Draining,
}

/// Whether a gateway worker's published values (`sluice_model::counters`' layout, its
/// fingerprint last) say that its gateway is still taking in its flow-sync peers' flows: a node
/// that is starting announces nothing until it can carry the flows ECMP will move to it
/// (docs/several-nodes.md). Values of another layout say nothing.
pub fn sync_waiting(values: &[u64]) -> bool {
    use sluice_model::counters::{Gauge, LEN, Stat, fingerprint, schema};
    if values.get(LEN - 1) != Some(&fingerprint()) {
        return false;
    }
    schema()
        .position(|s| s == Stat::Gauge(Gauge::SyncWaiting))
        .and_then(|i| values.get(i))
        .is_some_and(|&v| v != 0)
}

/// One reader record of the table file as control reads it: the process, the generation it
/// has taken (`u64::MAX` for a gateway worker's counters-only record, `sluice_table`'s
/// `Reader::open_stats_only`) and the values it publishes.
pub type Record = (u64, u64, Vec<u64>);

/// Whether a gateway serves, from the table's reader records and whether each process lives.
///
/// Per process: a live gateway serves once its main thread has taken a table, every one of its
/// workers has published its counters, and none says it is still taking in its flow-sync
/// peers' flows ([`sync_waiting`]).
/// Judged per process, so that a gateway starting beside another (an upgrade: the old one still
/// serves) neither counts before its workers run nor holds the node back while it catches up,
/// and a gateway whose main thread has opened the table but whose workers have not yet said
/// "waiting" is not taken for one that serves.
pub fn gateway_serving(records: &[Record], alive: impl Fn(u64) -> bool) -> bool {
    records.iter().filter(|&&(pid, seen, _)| seen > 0 && seen != u64::MAX && alive(pid)).any(|&(pid, ..)| {
        let mut workers = records.iter().filter(|&&(p, seen, _)| p == pid && seen == u64::MAX).peekable();
        workers.peek().is_some() && workers.all(|(_, _, v)| published(v) && !sync_waiting(v))
    })
}

/// Whether a reader record's values were ever published: the counters' fingerprint slot (the
/// last of the layout; the record may be longer) is never 0 once a worker has published.
fn published(values: &[u64]) -> bool {
    values.get(sluice_model::counters::LEN - 1).is_some_and(|&f| f != 0)
}

/// How often control checks the gateway and the VIPs against what BIRD was given.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(100);
/// How long the gateway may be gone before its routes are withdrawn: longer than a restart
/// (0.2–0.45 s measured: docs/restarts.md), during which the XDP program holds the traffic for
/// the next gateway, so that a restart does not move every flow to other nodes and back.
pub const WITHDRAW_AFTER: Duration = Duration::from_millis(600);
/// How long one exchange with BIRD's control socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// What the include says: the VIPs (each with the pool it came from, which advertisements
/// select on), and MetalLB's peers and advertisements that apply to this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The VIPs this node serves, and their pools.
    pub vips: BTreeMap<IpAddr, Option<String>>,
    /// BGP sessions to open (MetalLB's BGPPeer objects for this node).
    pub peers: Vec<BgpPeer>,
    /// What to announce on them (MetalLB's BGPAdvertisement objects for this node).
    pub advertisements: Vec<BgpAdvertisement>,
    /// The BFD timers the peers name (MetalLB's BFDProfile objects). A peer whose profile is
    /// not here is not opened ([`crate::checked::missing_bfd_profiles`] says why).
    pub bfd_profiles: Vec<BfdProfile>,
}

impl Plan {
    /// The plan with nothing to announce (the sessions stay).
    pub fn withdrawn(&self) -> Plan {
        Plan { vips: BTreeMap::new(), ..self.clone() }
    }
}

/// The include file for `vips` alone: [`render_plan`] without peers.
pub fn render(vips: &BTreeSet<IpAddr>) -> String {
    render_plan(&Plan { vips: vips.iter().map(|a| (*a, None)).collect(), ..Plan::default() })
}

/// The prefix of length `len` that covers `a`.
fn covering(a: IpAddr, len: u8) -> (IpAddr, u8) {
    match a {
        IpAddr::V4(v) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            (IpAddr::V4((u32::from(v) & mask).into()), len)
        }
        IpAddr::V6(v) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            (IpAddr::V6((u128::from(v) & mask).into()), len)
        }
    }
}

/// The include file for a plan: the two static protocols of every VIP (present even when empty,
/// so that the operator's filters that name them stay valid); and, with MetalLB peers, per peer
/// a BGP protocol and, in routing tables of its own, the prefixes the advertisements that name
/// it (or name no peer) announce — aggregated to their lengths, each route carrying its
/// communities and (iBGP) local preference. Objects are referred to by index, never by name:
/// only typed values (addresses, numbers, a checked password) are written.
pub fn render_plan(plan: &Plan) -> String {
    let vips: BTreeSet<IpAddr> = plan.vips.keys().copied().collect();
    let mut out = String::from(
        "# Written by sluice-control (--bird-include): the VIPs this node serves while its gateway runs.\n\
         # Do not edit: it is rewritten on every change. Export them with `where proto = \"sluice_vips\"`\n\
         # (IPv4) and `where proto = \"sluice_vips6\"` (IPv6).\n",
    );
    for (name, v4) in [("sluice_vips", true), ("sluice_vips6", false)] {
        let _ = writeln!(out, "protocol static {name} {{\n\t{};", if v4 { "ipv4" } else { "ipv6" });
        for a in vips.iter().filter(|a| a.is_ipv4() == v4) {
            let _ = writeln!(out, "\troute {a}/{} blackhole;", if v4 { 32 } else { 128 });
        }
        out.push_str("}\n");
    }
    // A peer is rendered with the BFD profile it names, and not at all when that is missing.
    let profile_of = |p: &BgpPeer| {
        p.bfd_profile
            .as_ref()
            .map(|name| plan.bfd_profiles.iter().find(|b| &b.name == name && b.namespace == p.namespace))
    };
    let peers: Vec<(&BgpPeer, Option<&BfdProfile>)> = plan
        .peers
        .iter()
        .filter_map(|p| match profile_of(p) {
            None => Some((p, None)),
            Some(Some(b)) => Some((p, Some(b))),
            Some(None) => None,
        })
        .collect();
    if peers.is_empty() {
        return out;
    }
    if peers.iter().any(|(_, b)| b.is_some()) {
        // The sessions' timers are set per BGP protocol (`bfd { … }`); this instance only runs
        // them.
        out.push_str("protocol bfd sluice_bfd {}\n");
    }
    for (i, (peer, bfd)) in peers.into_iter().enumerate() {
        let ibgp = peer.my_asn == peer.peer_asn;
        // What this peer is told: each prefix of each advertisement that names it (or no peer),
        // aggregated to the advertisement's lengths, with the union of their communities and
        // the highest local preference where several cover one prefix.
        let mut routes: BTreeMap<(IpAddr, u8), (BTreeSet<Community>, Option<u32>)> = BTreeMap::new();
        for adv in plan.advertisements.iter().filter(|a| a.peers.is_empty() || a.peers.contains(&peer.name)) {
            for (a, pool) in &plan.vips {
                if !adv.pools.is_empty() && !pool.as_ref().is_some_and(|p| adv.pools.contains(p)) {
                    continue;
                }
                let len = if a.is_ipv4() { adv.aggregation_v4 } else { adv.aggregation_v6 };
                let (communities, pref) = routes.entry(covering(*a, len)).or_default();
                communities.extend(adv.communities.iter().copied());
                if ibgp && let Some(lp) = adv.local_pref {
                    *pref = Some(pref.map_or(lp, |p| p.max(lp)));
                }
            }
        }
        // Each peer's routes in tables of its own: the same prefix may carry other attributes
        // for another peer, and a table exports only its best route for a prefix.
        for (family, v4) in [("ipv4", true), ("ipv6", false)] {
            let n = if v4 { 4 } else { 6 };
            let _ = writeln!(out, "{family} table sluice_peer{i}_{n};");
            let _ = writeln!(
                out,
                "protocol static sluice_peer{i}_routes{n} {{\n\t{family} {{ table sluice_peer{i}_{n}; }};"
            );
            for ((prefix, len), (communities, pref)) in routes.iter().filter(|((p, _), _)| p.is_ipv4() == v4)
            {
                let _ = write!(out, "\troute {prefix}/{len} blackhole {{");
                for c in communities {
                    match c {
                        Community::Standard(a, b) => {
                            let _ = write!(out, " bgp_community.add(({a},{b}));");
                        }
                        Community::Large(a, b, c) => {
                            let _ = write!(out, " bgp_large_community.add(({a},{b},{c}));");
                        }
                    }
                }
                if let Some(lp) = pref {
                    let _ = write!(out, " bgp_local_pref = {lp};");
                }
                out.push_str(" };\n");
            }
            out.push_str("}\n");
        }
        let _ = writeln!(out, "protocol bgp sluice_peer_{i} {{");
        match peer.source_address {
            Some(src) => {
                let _ = writeln!(out, "\tlocal {src} as {};", peer.my_asn);
            }
            None => {
                let _ = writeln!(out, "\tlocal as {};", peer.my_asn);
            }
        }
        let _ =
            writeln!(out, "\tneighbor {} port {} as {};", peer.peer_address, peer.peer_port, peer.peer_asn);
        if let Some(id) = peer.router_id {
            let _ = writeln!(out, "\trouter id {id};");
        }
        if let Some(h) = peer.hold_s {
            let _ = writeln!(out, "\thold time {h};");
        }
        if let Some(k) = peer.keepalive_s {
            let _ = writeln!(out, "\tkeepalive time {k};");
        }
        if let Some(c) = peer.connect_s {
            let _ = writeln!(out, "\tconnect retry time {};", c.max(1));
        }
        if peer.multihop {
            out.push_str("\tmultihop;\n");
        }
        if let Some(pw) = &peer.password {
            // Checked: printable ASCII without a quote or a backslash.
            let _ = writeln!(out, "\tpassword \"{pw}\";");
        }
        if let Some(b) = bfd {
            // BIRD 2's per-session BFD options; what the profile leaves unset is BIRD's default
            // (which is MetalLB's: 300 ms, 300 ms, 3).
            out.push_str("\tbfd {");
            if let Some(ms) = b.receive_ms {
                let _ = write!(out, " min rx interval {ms} ms;");
            }
            if let Some(ms) = b.transmit_ms {
                let _ = write!(out, " min tx interval {ms} ms;");
            }
            if let Some(m) = b.multiplier {
                let _ = write!(out, " multiplier {m};");
            }
            if b.passive {
                out.push_str(" passive on;");
            }
            out.push_str(" };\n");
        }
        if peer.graceful_restart {
            out.push_str("\tgraceful restart on;\n");
        }
        for (family, n) in [("ipv4", 4), ("ipv6", 6)] {
            let _ = writeln!(out, "\t{family} {{ table sluice_peer{i}_{n}; import none; export all; }};");
        }
        out.push_str("}\n");
    }
    out
}

/// Asks BIRD, through its control socket, to read its configuration again (birdc's
/// `configure`). The protocol: BIRD greets with a `0001` line; each reply line is a four-digit
/// code, `-` when more lines follow or a space on the last; codes from 8000 up are errors.
pub fn configure(socket: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("BIRD's control socket {}: {e}", socket.display());
    let stream = UnixStream::connect(socket).map_err(fail)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(fail)?;
    let mut lines = BufReader::new(stream.try_clone().map_err(fail)?);
    let reply = |lines: &mut BufReader<UnixStream>| -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            // A reply is a few short lines: more than 64 KiB is not BIRD.
            if lines.read_line(&mut line).map_err(fail)? == 0 || text.len() > 65_536 {
                return Err(format!("BIRD's control socket {} closed mid-reply", socket.display()));
            }
            let line = line.trim_end();
            let (code, rest) = (line.get(..4).and_then(|c| c.parse::<u16>().ok()), line.get(4..));
            match (code, rest) {
                (Some(code), Some(rest)) if rest.starts_with(' ') || rest.is_empty() => {
                    text.push_str(rest.trim());
                    return Ok((code, text));
                }
                (Some(_), Some(rest)) if rest.starts_with('-') => {
                    text.push_str(&rest[1..]);
                    text.push('\n');
                }
                // A continuation line without a code (" text").
                _ => {
                    text.push_str(line.trim());
                    text.push('\n');
                }
            }
        }
    };
    let (code, hello) = reply(&mut lines)?;
    if code != 1 {
        return Err(format!("BIRD's control socket {}: greeted with {code} {hello}", socket.display()));
    }
    (&stream).write_all(b"configure\n").map_err(fail)?;
    let (code, text) = reply(&mut lines)?;
    if code >= 8000 {
        return Err(format!("BIRD refused its configuration: {text}"));
    }
    Ok(text)
}

/// Keeps BIRD's include in step with what should be announced.
#[derive(Debug)]
pub struct Announcer {
    include: PathBuf,
    socket: PathBuf,
    /// What BIRD last accepted; `None` until it accepted something (or after a failure: then
    /// the next call tries again).
    applied: Option<Plan>,
    /// The last failure logged (each distinct one is logged once).
    failure: Option<String>,
}

impl Announcer {
    /// For the include file `include` and BIRD's control socket `socket`.
    pub fn new(include: PathBuf, socket: PathBuf) -> Announcer {
        Announcer { include, socket, applied: None, failure: None }
    }

    /// Announces exactly what `plan` says (no VIPs: withdraws them all), if that is not what
    /// BIRD has: rewrites the include and has BIRD reconfigure. Returns whether BIRD took a change.
    pub fn apply(&mut self, plan: &Plan) -> bool {
        if self.applied.as_ref() == Some(plan) {
            return false;
        }
        match self.write(plan).and_then(|()| configure(&self.socket)) {
            Ok(_) => {
                let (was, now) = (self.applied.as_ref().map_or(0, |p| p.vips.len()), plan.vips.len());
                info!("BIRD: announcing {now} VIP(s) (was {was}); {} MetalLB peer(s)", plan.peers.len());
                self.applied = Some(plan.clone());
                self.failure = None;
                true
            }
            Err(e) => {
                if self.failure.as_ref() != Some(&e) {
                    warn!("BIRD: {e}; trying again");
                    self.failure = Some(e);
                }
                self.applied = None;
                false
            }
        }
    }

    fn write(&self, plan: &Plan) -> Result<(), String> {
        let tmp = PathBuf::from(format!("{}.tmp", self.include.display()));
        let fail = |e: std::io::Error| format!("{}: {e}", self.include.display());
        std::fs::write(&tmp, render_plan(plan)).map_err(fail)?;
        std::fs::rename(&tmp, &self.include).map_err(fail)
    }
}

/// Whether process `pid` runs (exists, and is not a zombie waiting for its parent).
pub fn process_alive(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the state follows the last parenthesis (comm may hold any).
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// Runs the announcer on a thread of its own: every [`LIVENESS_EVERY`], announces `wanted`
/// while `gateway_up()` says a gateway serves, and nothing once it has said otherwise for
/// [`WITHDRAW_AFTER`] (the sessions stay). Before a gateway was ever seen, nothing.
pub fn spawn(
    mut announcer: Announcer,
    wanted: std::sync::Arc<std::sync::Mutex<Plan>>,
    gateway: impl Fn() -> Gateway + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("bird".into()).spawn(move || {
        let mut was = None;
        // When the gateway was last seen serving.
        let mut last_seen: Option<std::time::Instant> = None;
        loop {
            let now = gateway();
            match now {
                Gateway::Serving => last_seen = Some(std::time::Instant::now()),
                // Withdrawn at once: the operator asked, the gateway still serves what comes.
                Gateway::Draining => last_seen = None,
                Gateway::Gone => {}
            }
            let up = last_seen.is_some_and(|t| t.elapsed() < WITHDRAW_AFTER);
            let said = (up, now == Gateway::Draining);
            if was != Some(said) {
                info!(
                    "BIRD: {}",
                    match said {
                        (true, _) => "the gateway is up: announcing its VIPs",
                        (false, true) => "the node is draining: withdrawing every VIP",
                        (false, false) => "the gateway is not running: withdrawing every VIP",
                    }
                );
                was = Some(said);
            }
            let plan = wanted.lock().map(|w| w.clone()).unwrap_or_else(|p| p.into_inner().clone());
            announcer.apply(&if up { plan } else { plan.withdrawn() });
            std::thread::sleep(LIVENESS_EVERY);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::unix::net::UnixListener;

    fn vips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_gateway_waiting_for_its_peers_flows_is_not_serving_yet() {
        use sluice_model::counters::{Counters, Gauge};
        let mut c = Counters::default();
        assert!(!sync_waiting(&c.export()));
        c[Gauge::SyncWaiting] = 1;
        assert!(sync_waiting(&c.export()));
        let mut other = c.export();
        other[sluice_model::counters::LEN - 1] ^= 1;
        assert!(!sync_waiting(&other), "another layout says nothing");
        assert!(!sync_waiting(&[]));
    }

    #[test]
    fn a_gateway_serves_once_its_workers_run_and_none_waits() {
        use sluice_model::counters::{Counters, Gauge};
        let live = |_: u64| true;
        let serving = Counters::default().export();
        let mut w = Counters::default();
        w[Gauge::SyncWaiting] = 1;
        let waiting = w.export();
        // As the table holds them: longer than the counters' layout.
        let padded = |v: [u64; sluice_model::counters::LEN]| {
            let mut v = v.to_vec();
            v.resize(v.len() + 16, 0);
            v
        };
        let (serving, waiting) = (padded(serving), padded(waiting));
        let unpublished = vec![0; serving.len()];
        let main = |pid| (pid, 3, unpublished.clone());
        let worker = |pid, v: &Vec<u64>| (pid, u64::MAX, v.clone());
        assert!(!gateway_serving(&[main(7)], live), "its workers have not started");
        assert!(!gateway_serving(&[main(7), worker(7, &unpublished)], live), "nor published");
        assert!(gateway_serving(&[main(7), worker(7, &serving)], live));
        assert!(
            !gateway_serving(&[main(7), worker(7, &serving), worker(7, &unpublished)], live),
            "all workers"
        );
        assert!(!gateway_serving(&[main(7), worker(7, &serving), worker(7, &waiting)], live));
        assert!(
            !gateway_serving(&[(7, 0, unpublished.clone()), worker(7, &serving)], live),
            "no table taken"
        );
        assert!(!gateway_serving(&[main(7), worker(7, &serving)], |pid| pid != 7), "dead");
        // An upgrade: the old gateway serves while the new one catches up, and neither's
        // records speak for the other.
        let upgrade = [main(7), worker(7, &serving), main(8), worker(8, &waiting)];
        assert!(gateway_serving(&upgrade, live));
        assert!(!gateway_serving(&upgrade, |pid| pid != 7), "the old one gone, the new one waiting");
        assert!(!gateway_serving(&[main(7), worker(8, &serving)], live), "another process's workers");
    }

    #[test]
    fn a_process_is_alive_until_it_is_a_zombie() {
        assert!(process_alive(u64::from(std::process::id())));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = u64::from(child.id());
        // Exited, not yet waited for: a zombie.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_include_holds_one_blackhole_route_per_vip_in_two_static_protocols() {
        let text = render(&vips(&["198.18.100.10", "2001:db8:100::10", "198.18.100.11"]));
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "protocol static sluice_vips {",
                "\tipv4;",
                "\troute 198.18.100.10/32 blackhole;",
                "\troute 198.18.100.11/32 blackhole;",
                "}",
                "protocol static sluice_vips6 {",
                "\tipv6;",
                "\troute 2001:db8:100::10/128 blackhole;",
                "}",
            ]
        );
        // Nothing to announce: both protocols, empty.
        let empty = render(&BTreeSet::new());
        assert!(empty.contains("protocol static sluice_vips {\n\tipv4;\n}"), "{empty}");
        assert!(empty.contains("protocol static sluice_vips6 {\n\tipv6;\n}"), "{empty}");
    }

    #[test]
    fn metallb_peers_and_advertisements_become_sessions_and_filters_bird_accepts() {
        let peer = |name: &str, asn: u32, addr: &str| BgpPeer {
            namespace: "metallb-system".into(),
            name: name.into(),
            my_asn: 64512,
            peer_asn: asn,
            peer_address: addr.parse().unwrap(),
            source_address: None,
            peer_port: 179,
            hold_s: Some(9),
            keepalive_s: Some(3),
            connect_s: None,
            router_id: None,
            nodes: None,
            password: Some("s3cret".into()),
            bfd_profile: Some("fast".into()),
            graceful_restart: true,
            multihop: false,
        };
        let adv = |pools: &[&str], peers: &[&str], len: u8| BgpAdvertisement {
            namespace: "metallb-system".into(),
            name: "a".into(),
            aggregation_v4: len,
            aggregation_v6: 128,
            local_pref: Some(200),
            communities: vec![Community::Standard(64512, 100), Community::Large(64512, 1, 2)],
            pools: pools.iter().map(|p| p.to_string()).collect(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            nodes: None,
        };
        let plan = Plan {
            vips: [
                ("198.18.100.10", Some("edge")),
                ("198.18.100.11", Some("edge")),
                ("198.18.101.5", Some("other")),
                ("2001:db8:100::10", Some("edge")),
            ]
            .iter()
            .map(|(a, p)| (a.parse().unwrap(), p.map(str::to_owned)))
            .collect(),
            peers: vec![
                peer("ebgp", 64513, "192.0.2.1"),
                // iBGP is multihop in BIRD: its BFD needs the local address.
                BgpPeer {
                    source_address: Some("2001:db8::11".parse().unwrap()),
                    ..peer("ibgp", 64512, "2001:db8::1")
                },
            ],
            advertisements: vec![adv(&["edge"], &[], 24), adv(&[], &["ibgp"], 32)],
            bfd_profiles: vec![BfdProfile {
                namespace: "metallb-system".into(),
                name: "fast".into(),
                receive_ms: Some(100),
                transmit_ms: Some(150),
                multiplier: Some(4),
                passive: true,
            }],
        };
        // A peer naming a profile there is not: not rendered at all.
        let mut plan = plan;
        plan.peers.push(BgpPeer { bfd_profile: Some("missing".into()), ..peer("lost", 64514, "192.0.2.9") });
        let text = render_plan(&plan);
        assert!(!text.contains("192.0.2.9") && !text.contains("sluice_peer_2"), "{text}");
        // Each session's BFD with the profile's timers.
        assert_eq!(
            text.matches(
                "\tbfd { min rx interval 100 ms; min tx interval 150 ms; multiplier 4; passive on; };\n"
            )
            .count(),
            2,
            "{text}"
        );
        assert!(text.contains("protocol bfd sluice_bfd {}"), "{text}");
        // The eBGP peer: advertisement 0 only (1 names the iBGP peer): edge's addresses,
        // aggregated to /24; no local preference.
        let ebgp = &text[text.find("ipv4 table sluice_peer0_4").unwrap()
            ..text.find("ipv4 table sluice_peer1_4").unwrap()];
        assert!(
            ebgp.contains("\troute 198.18.100.0/24 blackhole { bgp_community.add((64512,100)); bgp_large_community.add((64512,1,2)); };"),
            "{ebgp}"
        );
        assert!(!ebgp.contains("198.18.101.5") && !ebgp.contains("local_pref"), "{ebgp}");
        assert!(ebgp.contains("\troute 2001:db8:100::10/128 blackhole {"), "{ebgp}");
        assert!(
            ebgp.contains("neighbor 192.0.2.1 port 179 as 64513;") && ebgp.contains("password \"s3cret\";")
        );
        // The iBGP peer: both advertisements, so every VIP (1 selects every pool), with the local
        // preference.
        let ibgp = &text[text.find("ipv4 table sluice_peer1_4").unwrap()..];
        assert!(
            ibgp.contains("route 198.18.101.5/32 blackhole {")
                && ibgp.contains("route 198.18.100.0/24 blackhole {"),
            "{ibgp}"
        );
        assert!(ibgp.contains("bgp_local_pref = 200;"), "{ibgp}");
        // And BIRD reads it (parse only), inside a minimal configuration.
        if std::process::Command::new("bird").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("SLUICE_REQUIRE_ROOT").is_none(),
                "bird2 is not installed: tests/packages.sh installs it"
            );
            eprintln!("SKIPPED: bird -p (bird2 is not installed)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (inc, conf) = (dir.path().join("sluice.conf"), dir.path().join("bird.conf"));
        std::fs::write(&inc, &text).unwrap();
        std::fs::write(
            &conf,
            format!("router id 192.0.2.11;\nprotocol device {{}}\ninclude \"{}\";\n", inc.display()),
        )
        .unwrap();
        let out = std::process::Command::new("bird").arg("-p").arg("-c").arg(&conf).output().unwrap();
        assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    }

    /// A BIRD control socket that greets, reads one command and answers `answer`.
    fn fake_bird(dir: &Path, answer: &'static str) -> (PathBuf, std::thread::JoinHandle<String>) {
        let path = dir.join(format!("bird-{}.ctl", answer.len()));
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = [0u8; 10];
            s.read_exact(&mut cmd).unwrap();
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&cmd).into_owned()
        });
        (path, t)
    }

    #[test]
    fn configure_speaks_birdcs_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, t) =
            fake_bird(dir.path(), "0002-Reading configuration from /etc/bird.conf\n0003 Reconfigured\n");
        let said = configure(&sock).unwrap();
        assert_eq!(t.join().unwrap(), "configure\n");
        assert!(said.contains("Reconfigured"), "{said}");
        let (sock, _t) = fake_bird(
            dir.path(),
            "0002-Reading configuration from /etc/bird.conf\n8002 /etc/sluice.conf:3:9 syntax error\n",
        );
        let e = configure(&sock).unwrap_err();
        assert!(e.contains("refused") && e.contains("syntax error"), "{e}");
        assert!(configure(&dir.path().join("none.ctl")).unwrap_err().contains("none.ctl"));
    }

    #[test]
    fn an_announcer_writes_and_reconfigures_only_on_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let include = dir.path().join("sluice.conf");
        let (sock, t) = fake_bird(dir.path(), "0003 Reconfigured\n");
        let mut a = Announcer::new(include.clone(), sock);
        let plan =
            |v: &[&str]| Plan { vips: vips(v).into_iter().map(|a| (a, None)).collect(), ..Plan::default() };
        assert!(a.apply(&plan(&["198.18.100.10"])));
        t.join().unwrap();
        assert!(std::fs::read_to_string(&include).unwrap().contains("route 198.18.100.10/32 blackhole;"));
        // The same plan again: no socket opened. With the socket gone, a try would fail and
        // forget what BIRD has.
        std::fs::remove_file(dir.path().join(format!("bird-{}.ctl", "0003 Reconfigured\n".len()))).unwrap();
        assert!(!a.apply(&plan(&["198.18.100.10"])));
        assert!(a.applied.is_some(), "BIRD was not asked again");
        // BIRD gone: not applied, and tried again next time.
        let mut b = Announcer::new(include, dir.path().join("gone.ctl"));
        assert!(!b.apply(&plan(&[])));
        assert!(b.applied.is_none());
    }
}
