//! Several gateway nodes behind a BIRD router doing ECMP (issue 17, item 4, BGP mode): the
//! connections spread over the nodes, and a node killed with SIGKILL, a node added and a node
//! drained each leave every new connection answered and every established download — FullNAT
//! and DNAT — whole. The topology is `sluice_sandbox::nodes` (its module documentation: the
//! router, BFD at 100 ms × 3, the L4 multipath hash, keepalived's VRRP addresses on the back
//! side, flow sync when the binaries have it). The cluster is dual-stack: the same spread and
//! the same kill are tried over IPv6 as well ([`V6`]: the IPv6 VIPs from the IPv6 client
//! addresses, over the IPv6 BGP sessions, with the IPv6 VRRP addresses moving on the back side);
//! adding and draining a node are tried over IPv4 alone, the family changing nothing there that
//! the kill does not already cross.
//!
//! **What the kills see**: the FullNAT Service's backends listen on a port of their own (8081;
//! the DNAT one's 8080), so a FullNAT reply to a dead peer's SNAT address reaches a live node's
//! workers only through `--peer-snat-address` (the XDP program steers DNAT replies by backend
//! address *and* port). Without the flag, FullNAT downloads through the killed node break (tried,
//! both families: 2 of 4 and 1 of 4); so they do without the flow sync's records. A run in which
//! no FullNAT download went through node 1 (about one in sixteen: four downloads, two nodes)
//! cannot see either; the flows per node are printed.
//!
//! **What shows the flow sync** (kill, drain; when the binaries have it): DNAT downloads keep
//! their backend without it (both nodes' Maglev tables are equal), so the tests read node 2's
//! `flows_from_peers` — flows it took from node 1's records — before the change and assert it
//! rose after. Node 1 must carry a download for that: while it carries none (one run in 256:
//! eight downloads, two nodes), another round of downloads is opened, three rounds at most.
//!
//! Each test prints what it measured (`ecmp: …` lines): the route's withdrawal at the router
//! after a kill (BFD), the moves of the VRRP addresses, the time until new connections succeed
//! again, and how the connections were spread. Needs root, `bird2` and `keepalived`
//! (tests/packages.sh). Every wait is bounded; every failure prints the nodes' logs.

use std::sync::Mutex;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use sluice_sandbox::nodes::{
    self, BACKENDS_ROUTER, BACKENDS_ROUTER6, Cluster, DNAT_VIP, DNAT_VIP6, FULLNAT_VIP, FULLNAT_VIP6,
    MANIFEST, download_in, get_in, node_snat, node_snat6,
};
use sluice_sandbox::require_root;

/// The body of `/big`: 2 MiB, at 256 KiB/s (about 8 s).
const BIG: usize = 2 << 20;
/// Client addresses (curl binds each in turn).
const CLIENTS: usize = 4;
/// Downloads open through each VIP while a node changes.
const DOWNLOADS: usize = 4;
/// New connections tried after each change (half to each VIP).
const NEW_CONNECTIONS: usize = 40;
/// The most rounds of [`DOWNLOADS`] opened until one goes through node 1 (kill, drain).
const MAX_ROUNDS: usize = 3;
/// The gateway counter of flows a node took from its peers' flow-sync records
/// (`Counter::FlowsFromPeers`).
const FLOWS_FROM_PEERS: &str = "flows_from_peers";

/// One family's paths through the cluster: its two VIPs, its client addresses and the back
/// side's VRRP addresses that must move when a node dies.
#[derive(Debug, Clone, Copy)]
struct Paths {
    /// `IPv4`, `IPv6`: for the messages.
    name: &'static str,
    /// The FullNAT VIP (`web`).
    fullnat: &'static str,
    /// The DNAT VIP (`web-local`, `externalTrafficPolicy: Local`).
    dnat: &'static str,
    /// The backends' router (a VRRP address).
    backends_router: &'static str,
    /// Node k's FullNAT source address (a VRRP address).
    snat: fn(usize) -> String,
    /// The cluster's client addresses of the family.
    clients: fn(&Cluster) -> Vec<String>,
}

/// The IPv4 paths.
const V4: Paths = Paths {
    name: "IPv4",
    fullnat: FULLNAT_VIP,
    dnat: DNAT_VIP,
    backends_router: BACKENDS_ROUTER,
    snat: node_snat,
    clients: Cluster::client_addrs,
};

/// The IPv6 paths.
const V6: Paths = Paths {
    name: "IPv6",
    fullnat: FULLNAT_VIP6,
    dnat: DNAT_VIP6,
    backends_router: BACKENDS_ROUTER6,
    snat: node_snat6,
    clients: Cluster::client_addrs6,
};

impl Paths {
    /// Both VIPs.
    fn vips(&self) -> [&'static str; 2] {
        [self.fullnat, self.dnat]
    }

    /// `path` on the FullNAT VIP.
    fn fullnat_url(&self, path: &str) -> String {
        url(self.fullnat, path)
    }

    /// `path` on the DNAT VIP.
    fn dnat_url(&self, path: &str) -> String {
        url(self.dnat, path)
    }
}

/// `http://VIP/PATH`, an IPv6 VIP in brackets (curl runs with `-g`, so they stay literal).
fn url(vip: &str, path: &str) -> String {
    if vip.contains(':') { format!("http://[{vip}]{path}") } else { format!("http://{vip}{path}") }
}

/// One cluster at a time: each runs two or three gateways, BIRDs and keepalived, and the
/// timings they measure (BFD at 100 ms, VRRP adverts at 100 ms) mean little on starved cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A cluster of `n` nodes planned for `capacity`, with the router routing both VIPs of `paths`
/// over every node, and the lock it holds; None without root.
fn up(
    test: &str,
    n: usize,
    capacity: usize,
    paths: Paths,
) -> Option<(std::sync::MutexGuard<'static, ()>, Cluster)> {
    if !require_root(test) {
        return None;
    }
    // A test that panicked poisoned the lock; the next one runs all the same.
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for tool in ["bird", "keepalived"] {
        if std::process::Command::new(tool).arg("--version").output().is_err() {
            panic!("{tool} is not installed: tests/packages.sh installs it");
        }
    }
    let mut c = Cluster::new(&nodes::backends(), MANIFEST, capacity, CLIENTS).expect("cluster");
    let t0 = Instant::now();
    for _ in 0..n {
        c.add_node().unwrap_or_else(|e| panic!("{test}: a node: {e}"));
    }
    let all: Vec<usize> = (1..=n).collect();
    c.wait_next_hops(&paths.vips(), &all, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{test}: {e}\n{}", c.logs()));
    eprintln!(
        "ecmp: {test}: {n} node(s) up and their {} VIPs announced in {} ms (flow sync: {:?})",
        paths.name,
        (t0.elapsed()).as_millis(),
        c.sync_flags()
    );
    Some((guard, c))
}

/// Each node's `new_flows` (0 for a node killed or drained: no gateway publishes there).
fn new_flows(c: &Cluster) -> Vec<u64> {
    (1..=c.nodes())
        .map(|k| if c.state(k) == nodes::NodeState::Up { c.counter(k, "new_flows") } else { 0 })
        .collect()
}

/// Each node's new flows since `before`, once they add up to `at_least` (workers publish their
/// counters when they like: waited for, 3 s at most; then as last read).
fn new_flows_since(c: &Cluster, before: &[u64], at_least: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let d: Vec<u64> = new_flows(c)
            .iter()
            .zip(before.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        if d.iter().sum::<u64>() >= at_least || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Node `k`'s counter `name` once it is above `before`, waited for up to `limit`; then as
/// last read.
fn counter_above(c: &Cluster, k: usize, name: &str, before: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let now = c.counter(k, name);
        if now > before || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` new connections at once (bounded: one thread each, 3 s each), alternating the VIPs of
/// `paths` and its client addresses: the failures.
fn new_connections(c: &Cluster, n: usize, paths: Paths) -> Vec<String> {
    let ns = c.ns("cl");
    let srcs = (paths.clients)(c);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (ns, src) = (&ns, &srcs[i % srcs.len()]);
                let url = if i % 2 == 0 { paths.fullnat_url("/") } else { paths.dnat_url("/") };
                s.spawn(move || get_in(ns, src, &url, 3000, 3000))
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().expect("connection thread").err()).collect()
    })
}

/// [`DOWNLOADS`] downloads of `/big` through each VIP of `paths`, from the client addresses
/// `srcs` in turn.
fn downloads<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    ns: &'s str,
    srcs: &'s [String],
    paths: Paths,
) -> Vec<ScopedJoinHandle<'s, (String, Result<usize, String>)>> {
    (0..2 * DOWNLOADS)
        .map(|i| {
            let url = if i % 2 == 0 { paths.fullnat_url("/big") } else { paths.dnat_url("/big") };
            let src = &srcs[i % srcs.len()];
            s.spawn(move || (format!("{src} → {url}"), download_in(ns, src, &url)))
        })
        .collect()
}

/// Probes from 3 threads, each a new connection every 20 ms (100 ms to connect: a lost SYN
/// fails it), alternating the VIPs of `paths`, for `for_`: (start since `t0`, ok) of each.
fn probe(ns: &str, srcs: &[String], t0: Instant, for_: Duration, paths: Paths) -> Vec<(Duration, bool)> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|t| {
                s.spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..1000 {
                        let at = t0.elapsed();
                        if at > for_ {
                            break;
                        }
                        let url = if (i + t) % 2 == 0 { paths.fullnat_url("/") } else { paths.dnat_url("/") };
                        let ok = get_in(ns, &srcs[(i + t) % srcs.len()], &url, 100, 500).is_ok();
                        seen.push((at, ok));
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    seen
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().expect("probe thread")).collect()
    })
}

/// Of the probes started after `killed_at`: how many failed, how many there were, and the
/// failover time — from the kill to the start of the first probe that succeeded after the last
/// one that failed (zero when none failed).
fn failover(probes: &[(Duration, bool)], killed_at: Duration) -> (usize, usize, Duration) {
    let mut after: Vec<(Duration, bool)> =
        probes.iter().copied().filter(|(at, _)| *at >= killed_at).collect();
    after.sort();
    let failed = after.iter().filter(|(_, ok)| !ok).count();
    let back = match after.iter().rposition(|(_, ok)| !ok) {
        None => Duration::ZERO,
        Some(i) => after.get(i + 1).map_or(Duration::MAX, |(at, _)| *at - killed_at),
    };
    (failed, after.len(), back)
}

/// What a change to the cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Kill,
    Add,
    Drain,
}

/// Opens downloads through both VIPs of `paths`, makes `change` in their middle, then checks
/// that new connections all succeed, and that every download completes whole.
fn survives(test: &str, change: Change, paths: Paths) {
    let capacity = if change == Change::Add { 3 } else { 2 };
    let Some((_one, mut c)) = up(test, 2, capacity, paths) else { return };
    let (ns, srcs) = (c.ns("cl"), (paths.clients)(&c));
    assert!(!srcs.is_empty(), "{test}: the cluster has no {} client address", paths.name);
    // Both paths answer (from one client address at least) before anything else is tried.
    for url in [paths.fullnat_url("/"), paths.dnat_url("/")] {
        let r: Vec<Result<String, String>> = srcs.iter().map(|src| c.get(src, &url, 2000)).collect();
        assert!(r.iter().any(Result::is_ok), "{test}: {url}: {r:?}\n{}", c.logs());
    }
    // A kill or a drain moves node 1's flows to node 2: with flow sync, node 2 must take them
    // from node 1's records (its `flows_from_peers` rises), not open them anew.
    let sync = c.sync_flags().gateway && change != Change::Add;
    let before = new_flows(&c);
    let (results, failures) = std::thread::scope(|s| {
        let mut d = downloads(s, &ns, &srcs, paths);
        // Mid-transfer: connected, a few hundred KiB in.
        std::thread::sleep(Duration::from_millis(1500));
        let mut through = new_flows_since(&c, &before, d.len() as u64);
        // The flow sync shows only in flows node 1 opened and node 2 takes over: while node 1
        // carries none of the downloads (one run in 256), another round (bounded).
        while sync && through[0] == 0 && d.len() < MAX_ROUNDS * 2 * DOWNLOADS {
            eprintln!("ecmp: {test}: no download through node 1 ({through:?}): another round");
            d.extend(downloads(s, &ns, &srcs, paths));
            std::thread::sleep(Duration::from_millis(1500));
            through = new_flows_since(&c, &before, d.len() as u64);
        }
        eprintln!("ecmp: {test}: the downloads' flows per node: {through:?}");
        // Node 2's flows taken from node 1's records (flow sync), before the change.
        if sync {
            assert!(through[0] > 0, "{test}: no download through node 1: {through:?}\n{}", c.logs());
        }
        let from_peers = sync.then(|| c.counter(2, FLOWS_FROM_PEERS));
        match change {
            Change::Kill => {
                let prober = {
                    let (ns, srcs) = (&ns, &srcs);
                    let t0 = Instant::now();
                    (s.spawn(move || probe(ns, srcs, t0, Duration::from_secs(4), paths)), t0)
                };
                std::thread::sleep(Duration::from_millis(500));
                let t0 = c.kill(1).expect("kill node 1");
                let killed_at = t0 - prober.1;
                // Each move timed from the kill, all watched at once.
                let c = &c;
                let (bfd, snat, router) = std::thread::scope(|w| {
                    let since = |r: Result<Duration, String>| r.map(|_| t0.elapsed());
                    let bfd =
                        w.spawn(move || since(c.wait_next_hops(&paths.vips(), &[2], Duration::from_secs(5))));
                    let snat =
                        w.spawn(move || since(c.wait_address(2, &(paths.snat)(1), Duration::from_secs(5))));
                    let router = w.spawn(move || {
                        since(c.wait_address(2, paths.backends_router, Duration::from_secs(5)))
                    });
                    [bfd, snat, router].map(|h| {
                        h.join().expect("watcher").unwrap_or_else(|e| panic!("{test}: after the kill: {e}"))
                    })
                })
                .into();
                let probes = prober.0.join().expect("prober");
                let (failed, tried, failover) = failover(&probes, killed_at);
                eprintln!(
                    "ecmp: {test}: after the kill: the router routes around node 1 in {} ms (BFD), node 2 \
                     holds node 1's SNAT address in {} ms and the backends' router in {} ms (VRRP); probes after \
                     the kill: {} of {} failed; new connections succeed again {} ms after it (failover)",
                    bfd.as_millis(),
                    snat.as_millis(),
                    router.as_millis(),
                    failed,
                    tried,
                    failover.as_millis(),
                );
            }
            Change::Add => {
                let t0 = Instant::now();
                let k = c.add_node().unwrap_or_else(|e| panic!("{test}: node 3: {e}\n{}", c.logs()));
                let took = c
                    .wait_next_hops(&paths.vips(), &[1, 2, 3], Duration::from_secs(20))
                    .unwrap_or_else(|e| panic!("{test}: {e}\n{}", c.logs()));
                eprintln!(
                    "ecmp: {test}: node {k} serving {} ms after it was started; the router routes over it {} ms later",
                    (t0.elapsed() - took).as_millis(),
                    took.as_millis()
                );
            }
            Change::Drain => {
                let d = c.drain(1).expect("drain node 1");
                c.wait_next_hops(&paths.vips(), &[2], Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("{test}: node 1 drained, still routed to: {e}\n{}", c.logs()));
                c.wait_address(2, &(paths.snat)(1), Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
                eprintln!(
                    "ecmp: {test}: node 1 drained: withdrawn at the router {} ms after its drain file \
                     appeared; its gateway exited {} ms after SIGTERM; {} ms in all",
                    d.withdrawn.as_millis(),
                    d.gateway_exit.as_millis(),
                    d.total.as_millis()
                );
            }
        }
        if let Some(before) = from_peers {
            // Node 1's downloads reach node 2 now: it takes them from node 1's records (its
            // workers publish their counters when they like: waited for, bounded).
            let taken = counter_above(&c, 2, FLOWS_FROM_PEERS, before, Duration::from_secs(5));
            eprintln!("ecmp: {test}: node 2 took {} flow(s) from node 1's records", taken - before);
            assert!(
                taken > before,
                "{test}: node 2's {FLOWS_FROM_PEERS} did not rise across the change ({before}): the flow \
                 sync carried none of node 1's {} download flow(s)\n{}",
                through[0],
                c.logs()
            );
        }
        let mid = new_flows(&c);
        let failures = new_connections(&c, NEW_CONNECTIONS, paths);
        let spread = new_flows_since(&c, &mid, NEW_CONNECTIONS as u64);
        eprintln!("ecmp: {test}: {NEW_CONNECTIONS} new connections after the change, per node: {spread:?}");
        if change == Change::Add {
            assert!(spread[2] > 0, "{test}: no new connection went through node 3: {spread:?}\n{}", c.logs());
        }
        (d.into_iter().map(|h| h.join().expect("download thread")).collect::<Vec<_>>(), failures)
    });
    let broken: Vec<&(String, Result<usize, String>)> =
        results.iter().filter(|(_, r)| r.as_ref().ok() != Some(&BIG)).collect();
    let count = |v: &[&str], vip: &str| v.iter().filter(|w| w.contains(vip)).count();
    let failed: Vec<&str> = failures.iter().map(String::as_str).collect();
    let cut: Vec<&str> = broken.iter().map(|(what, _)| what.as_str()).collect();
    eprintln!(
        "ecmp: {test}: {} new connections failed: FullNAT {}, DNAT {} (of {} each); downloads broken: FullNAT {}, \
         DNAT {} (of {} each)",
        paths.name,
        count(&failed, paths.fullnat),
        count(&failed, paths.dnat),
        NEW_CONNECTIONS / 2,
        count(&cut, paths.fullnat),
        count(&cut, paths.dnat),
        results.len() / 2,
    );
    let logs = c.logs();
    assert!(failures.is_empty(), "{test}: new connections failed after the change: {failures:#?}\n{logs}");
    assert!(
        broken.is_empty(),
        "{test}: {} of {} downloads broken: {broken:#?}\n{logs}",
        broken.len(),
        results.len()
    );
}

/// [`NEW_CONNECTIONS`] connections through the VIPs of `paths` all answered, and spread over
/// both nodes.
fn spreads(test: &str, paths: Paths) {
    let Some((_one, c)) = up(test, 2, 2, paths) else { return };
    let before = new_flows(&c);
    let failures = new_connections(&c, NEW_CONNECTIONS, paths);
    let spread = new_flows_since(&c, &before, NEW_CONNECTIONS as u64);
    eprintln!("ecmp: {test}: {NEW_CONNECTIONS} {} connections, per node: {spread:?}", paths.name);
    assert!(failures.is_empty(), "failed: {failures:#?}\n{}", c.logs());
    // 40 connections hashed over two next hops: each gets at least a fifth unless the hash
    // ignores the ports (P(≤ 8 of 40) < 1e-4 for a fair coin).
    for (k, n) in spread.iter().enumerate() {
        assert!(
            *n >= (NEW_CONNECTIONS / 5) as u64,
            "node {} took {n} of {NEW_CONNECTIONS}: {spread:?}",
            k + 1
        );
    }
    assert!(spread.iter().sum::<u64>() >= NEW_CONNECTIONS as u64, "{spread:?}");
}

#[test]
fn connections_spread_over_both_nodes() {
    spreads("ecmp_spread", V4);
}

/// The same over IPv6: the router's IPv6 multipath route, hashed on the L4 tuple
/// (`net.ipv6.fib_multipath_hash_policy=1`), spreads one client's IPv6 connections too.
#[test]
fn ipv6_connections_spread_over_both_nodes() {
    spreads("ecmp_spread_v6", V6);
}

/// A DNAT connection through a node that does not hold the backends' router: the backend's
/// SYN-ACK crosses the node that does, which must already know the flow (flow sync) or carry it
/// otherwise. Lost, it is sent again after 1 s: the connection opens, but a second late. Every
/// connection must open without that.
#[test]
fn dnat_connections_through_any_node_open_at_once() {
    let Some((_one, c)) = up("ecmp_dnat_at_once", 2, 2, V4) else { return };
    let srcs = c.client_addrs();
    let before = new_flows(&c);
    let mut slow = Vec::new();
    for i in 0..NEW_CONNECTIONS / 2 {
        let t = Instant::now();
        let r = c.get(&srcs[i % srcs.len()], &V4.dnat_url("/"), 3000);
        let took = t.elapsed();
        if r.is_err() || took > Duration::from_millis(900) {
            slow.push(format!("{} ms: {r:?}", took.as_millis()));
        }
    }
    let spread = new_flows_since(&c, &before, (NEW_CONNECTIONS / 2) as u64);
    eprintln!(
        "ecmp: dnat_at_once: {} connections, per node {spread:?}; {} slower than 900 ms or failed",
        NEW_CONNECTIONS / 2,
        slow.len()
    );
    assert!(spread[1] > 0, "no DNAT connection went through node 2: {spread:?}");
    assert!(
        slow.is_empty(),
        "DNAT connections that needed the backend's SYN-ACK sent again (node 1 holds the backends' router, \
         node 2 forwarded the SYN): {slow:#?}\n{}",
        c.logs()
    );
}

#[test]
fn a_node_killed_loses_no_connection() {
    survives("ecmp_kill", Change::Kill, V4);
}

/// The same over IPv6: the router's IPv6 route withdrawn by BFD on the IPv6 session, node 1's
/// IPv6 SNAT address and the IPv6 backends' router moved to node 2 by their own VRRP instances
/// (an unsolicited neighbour advertisement for the backends), and node 2 carrying node 1's IPv6
/// flows from the flow sync (which itself runs over IPv4).
#[test]
fn a_node_killed_loses_no_ipv6_connection() {
    survives("ecmp_kill_v6", Change::Kill, V6);
}

#[test]
fn a_node_added_loses_no_connection() {
    survives("ecmp_add", Change::Add, V4);
}

#[test]
fn a_node_drained_loses_no_connection() {
    survives("ecmp_drain", Change::Drain, V4);
}
