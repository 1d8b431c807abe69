//! The multi-node sandbox in L2 mode (issue 17, items 3 and 4): `sluice_sandbox::nodes::Cluster`
//! without a router, the clients on the nodes' front switch, the controls electing one node per
//! VIP (docs/l2.md), keepalived and flow sync on the back side as in BGP mode. The active node
//! killed with SIGKILL (its links down first) under FullNAT and DNAT downloads: the other node
//! takes both VIPs, no download is lost, and new connections succeed.
//!
//! Prints what it measured (`ecmp-l2: …` lines). Needs root and `keepalived`
//! (tests/packages.sh). Every wait is bounded; every failure prints the nodes' logs.

use std::time::{Duration, Instant};

use sluice_sandbox::nodes::{self, Cluster, DNAT_VIP, FULLNAT_VIP, MANIFEST, download_in, get_in};
use sluice_sandbox::require_root;

/// The body of `/big`: 2 MiB, at 256 KiB/s (about 8 s).
const BIG: usize = 2 << 20;
/// Client addresses (curl binds each in turn).
const CLIENTS: usize = 2;
/// Downloads open through each VIP when the node is killed.
const DOWNLOADS: usize = 2;
/// New connections tried after the takeover (half to each VIP).
const NEW_CONNECTIONS: usize = 20;
/// Issue 17: an L2 takeover within 3 s.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(3);

#[test]
fn the_active_node_killed_loses_no_download_and_the_other_serves_new_connections() {
    if !require_root("ecmp l2: the active node killed") {
        return;
    }
    if std::process::Command::new("keepalived").arg("--version").output().is_err() {
        panic!("keepalived is not installed: tests/packages.sh installs it");
    }
    let vips = [FULLNAT_VIP, DNAT_VIP];
    let mut c = Cluster::new_l2(&nodes::backends(), MANIFEST, 2, CLIENTS).expect("cluster");
    // Node 1 alone until it holds both VIPs, then node 2, which takes nothing (holders are
    // sticky): node 1 is the active node.
    c.add_node().unwrap_or_else(|e| panic!("node 1: {e}"));
    c.wait_active(&vips, 1, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    c.add_node().unwrap_or_else(|e| panic!("node 2: {e}\n{}", c.logs()));
    std::thread::sleep(Duration::from_millis(1500));
    c.wait_active(&vips, 1, Duration::from_secs(1)).unwrap_or_else(|e| panic!("node 2 took a VIP: {e}"));
    let (ns, srcs) = (c.ns("cl"), c.client_addrs());
    for vip in vips {
        get_in(&ns, &srcs[0], &format!("http://{vip}/"), 3000, 3000)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    }
    let (results, took) = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2 * DOWNLOADS)
            .map(|i| {
                let url = format!("http://{}/big", vips[i % 2]);
                let (ns, src) = (&ns, &srcs[i % srcs.len()]);
                s.spawn(move || (format!("{src} → {url}"), download_in(ns, src, &url)))
            })
            .collect();
        // Mid-transfer, and synced to node 2.
        std::thread::sleep(Duration::from_secs(2));
        let t0 = c.kill(1).expect("kill");
        let took = c.wait_active(&vips, 2, Duration::from_secs(5)).map(|_| t0.elapsed());
        let results: Vec<(String, Result<usize, String>)> =
            hs.into_iter().map(|h| h.join().expect("download thread")).collect();
        (results, took)
    });
    let took = took.unwrap_or_else(|e| panic!("no takeover: {e}"));
    eprintln!("ecmp-l2: node 2's table active for both VIPs {} ms after node 1 was killed", took.as_millis());
    assert!(took < TAKEOVER_LIMIT, "the takeover took {took:?}\n{}", c.logs());
    let lost: Vec<&(String, Result<usize, String>)> =
        results.iter().filter(|(_, r)| r.as_ref().ok() != Some(&BIG)).collect();
    assert!(lost.is_empty(), "downloads lost across the takeover: {lost:?}\n{}", c.logs());
    // New connections: every one answered, through node 2.
    let before = c.counter(2, "new_flows");
    let failed: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..NEW_CONNECTIONS)
            .map(|i| {
                let (ns, src) = (&ns, &srcs[i % srcs.len()]);
                let url = format!("http://{}/", vips[i % 2]);
                s.spawn(move || get_in(ns, src, &url, 3000, 3000))
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().expect("connection thread").err()).collect()
    });
    assert!(failed.is_empty(), "new connections failed after the takeover: {failed:?}\n{}", c.logs());
    // Workers publish their counters when they like: waited for, bounded.
    let deadline = Instant::now() + Duration::from_secs(3);
    while c.counter(2, "new_flows") < before + NEW_CONNECTIONS as u64 {
        assert!(Instant::now() < deadline, "node 2 did not carry the new connections\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "ecmp-l2: {} downloads whole, {NEW_CONNECTIONS} new connections answered by node 2",
        results.len()
    );
}
