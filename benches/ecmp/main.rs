//! `benches/run ecmp` (issue 17, item 5): gateway nodes under a steady load of short
//! connections and long downloads, while a node is killed, one is added and one is drained —
//! first in BGP mode (behind a BIRD router doing ECMP), then in L2 mode (on the clients'
//! segment, one node answering ARP per VIP). `--modes bgp,l2` (the default) picks the modes.
//!
//! Topology: `sluice_sandbox::nodes` (BGP: the router with BFD at 100 ms × 3 and an L4 multipath
//! hash; L2: no router, the clients on the nodes' front switch, the controls' election of
//! docs/l2.md; both: keepalived's VRRP addresses on the back side, flow sync between the gateways
//! when they have it), planned for three nodes, started with two. Services: `nodes::MANIFEST`, a
//! FullNAT VIP and a DNAT VIP (`externalTrafficPolicy: Local`) over four nginx backends, Maglev
//! (in L2 mode the Pods are spread over the nodes' names, `nodes::l2_manifest`). In L2 mode node
//! 1 is started first and takes both VIPs, then node 2, which takes nothing (holders are sticky):
//! the node killed is the active one, and the VIPs move to node 2, stay there when node 3 is
//! added, and move to node 3 when node 2 is drained.
//!
//! The run (`--rate R` connections per second, 50 by default, each a `GET /` that must be
//! answered whole within 2 s, alternating the two VIPs, made by `sluice-bench-faults clients`
//! in the client namespace for the whole run):
//! 1. steady, 2 nodes: [`STEADY_S`] s; the flow-sync figures are taken here;
//! 2. node 1 killed (its links down, then SIGKILL to its gateway, control, BIRD and
//!    keepalived), with [`DOWNLOADS`] downloads of 2 MiB at 256 KiB/s open through each VIP;
//! 3. node 3 added, the same downloads open;
//! 4. node 2 drained (its drain file created, control withdraws its VIPs — L2: hands them over
//!    — and once the router routes nothing over it — L2: its table holds no VIP active — its
//!    keepalived and then its gateway are stopped with SIGTERM), the same.
//!
//! Figures (the last line, `RESULT {json}`):
//! - `failover_ms`: from the kill to the start of the first connection that succeeded after the
//!   last connection that failed or took longer than [`SLOW_MS`] (a lost SYN is sent again
//!   after 1 s: such a connection succeeded only because the outage ended in time);
//! - `established_lost`: downloads that did not complete whole, over the three changes;
//! - `failed_new_connections`: the load's connections that failed, over the whole run;
//! - `sync_flows_per_s`: flow records the gateways sent to their peers per second in the steady
//!   phase (`sync_records_sent`, each record counted once per peer), summed over the nodes;
//! - `sync_cpu_pct`: the CPU time of the gateways' flow-sync threads (`sluice-sync`) over the
//!   steady phase, in percent of one core, summed over the nodes.
//!
//! Both sync figures are null, with a note, when the gateway has no flow sync. These keys are
//! BGP mode's; L2 mode's run adds `l2_failover_ms`, `l2_established_lost`,
//! `l2_failed_new_connections`, `l2_slow_new_connections` and `l2_new_connections` (a mode not
//! run has none of its keys).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sluice_benches::flag;
use sluice_sandbox::nodes::{self, Cluster, DNAT_VIP, FULLNAT_VIP, MANIFEST, Mode, download_in};
use sluice_sandbox::{bin, run};

/// Seconds of the steady phase.
const STEADY_S: u64 = 6;
/// Downloads open through each VIP during each change.
const DOWNLOADS: usize = 4;
/// Seconds from the downloads' start to the change (mid-transfer).
const LEAD_S: u64 = 2;
/// A connection slower than this needed a SYN sent again: counted as a failure for failover.
const SLOW_MS: u64 = 900;
/// Client addresses.
const CLIENTS: usize = 4;

fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        _ => Err("usage: sluice-bench-ecmp run [--rate R] [--modes bgp,l2]".into()),
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-ecmp: {e}");
        std::process::exit(1);
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One connection of the load, as `sluice-bench-faults clients` prints it.
struct Attempt {
    start_ms: u64,
    ok: bool,
    latency_ms: u64,
    target: String,
    why: String,
}

fn attempts(log: &str) -> Vec<Attempt> {
    log.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [start, ok, ms, target, why] = f[..] else { return None };
            Some(Attempt {
                start_ms: start.parse().ok()?,
                ok: ok == "1",
                latency_ms: ms.parse().ok()?,
                target: target.to_owned(),
                why: why.to_owned(),
            })
        })
        .collect()
}

/// The CPU time (clock ticks) of `pid`'s threads named `comm`.
fn thread_ticks(pid: u32, comm: &str) -> Option<u64> {
    let mut total = None;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let p = t.path();
        if std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == comm) {
            let stat = std::fs::read_to_string(p.join("stat")).ok()?;
            // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (u, s): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
            *total.get_or_insert(0) += u + s;
        }
    }
    total
}

/// The clock ticks per second of /proc's times (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    run(&["getconf", "CLK_TCK"])
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A change's figures.
#[derive(Debug, Default)]
struct Change {
    what: &'static str,
    downloads: usize,
    lost: Vec<String>,
    /// Each node's new flows over the change's downloads and after.
    spread: Vec<u64>,
    note: String,
}

/// One mode's run: its figures.
struct ModeRun {
    mode: Mode,
    changes: Vec<Change>,
    attempts: Vec<Attempt>,
    /// Each phase's name and start (ms since the epoch, the load's clock).
    phases: Vec<(&'static str, u64)>,
    failover_ms: Option<u64>,
    failed: usize,
    slow: usize,
    established_lost: usize,
    /// Records per second, CPU percent, and a note.
    sync_figures: (Option<f64>, Option<f64>, String),
    sync: bool,
}

fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP, BIRD, keepalived)".into());
    }
    let rate: f64 = flag(args, "--rate", 50.0);
    if !(1.0..=500.0).contains(&rate) {
        return Err(format!("--rate {rate}: 1 to 500 connections per second"));
    }
    let modes_text = sluice_benches::text_flag(args, "--modes").unwrap_or_else(|| "bgp,l2".into());
    let mut modes = Vec::new();
    for m in modes_text.split(',').map(str::trim) {
        let mode = match m {
            "bgp" => Mode::Bgp,
            "l2" => Mode::L2,
            _ => return Err(format!("--modes {modes_text}: {m:?} is not a mode (bgp, l2)")),
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    if modes.is_empty() {
        return Err("--modes: name bgp, l2 or both".into());
    }
    let mut runs = Vec::new();
    for &mode in &modes {
        let r = run_mode(mode, rate)?;
        print_run(&r, rate);
        runs.push(r);
    }
    let mut m = Map::new();
    for r in &runs {
        match r.mode {
            Mode::Bgp => {
                m.insert("failover_ms".into(), json!(r.failover_ms));
                m.insert("established_lost".into(), json!(r.established_lost));
                m.insert("failed_new_connections".into(), json!(r.failed));
                m.insert("new_connections".into(), json!(r.attempts.len()));
                m.insert("slow_new_connections".into(), json!(r.slow));
                m.insert(
                    "sync_flows_per_s".into(),
                    json!(r.sync_figures.0.map(|v| (v * 10.0).round() / 10.0)),
                );
                m.insert("sync_cpu_pct".into(), json!(r.sync_figures.1.map(|v| (v * 100.0).round() / 100.0)));
                if !r.sync {
                    m.insert("note".into(), json!("the gateway has no flow sync: sync figures null"));
                }
            }
            Mode::L2 => {
                m.insert("l2_failover_ms".into(), json!(r.failover_ms));
                m.insert("l2_established_lost".into(), json!(r.established_lost));
                m.insert("l2_failed_new_connections".into(), json!(r.failed));
                m.insert("l2_new_connections".into(), json!(r.attempts.len()));
                m.insert("l2_slow_new_connections".into(), json!(r.slow));
            }
        }
    }
    println!("RESULT {}", Value::Object(m));
    Ok(())
}

/// Node 1 (and, in L2 mode, alone until it holds both VIPs), then node 2: both serving.
fn start_two(c: &mut Cluster, vips: &[&str]) -> Result<(), String> {
    match c.mode() {
        Mode::Bgp => {
            for _ in 0..2 {
                c.add_node().map_err(|e| format!("a node: {e}"))?;
            }
            c.wait_next_hops(vips, &[1, 2], Duration::from_secs(20))?;
        }
        Mode::L2 => {
            c.add_node().map_err(|e| format!("node 1: {e}"))?;
            c.wait_active(vips, 1, Duration::from_secs(20))?;
            c.add_node().map_err(|e| format!("node 2: {e}"))?;
            // Node 2's election settles (1 s of serving) and takes nothing.
            std::thread::sleep(Duration::from_millis(1500));
            c.wait_active(vips, 1, Duration::from_secs(1))?;
        }
    }
    Ok(())
}

/// One change under the load: kill node 1, add node 3 or drain node 2; its note.
fn change(c: &mut Cluster, what: &str, vips: &[&str]) -> Result<String, String> {
    let l2 = c.mode() == Mode::L2;
    Ok(match what {
        "kill node 1" => {
            let t0 = c.kill(1).map_err(|e| format!("kill: {e}"))?;
            if l2 {
                c.wait_active(vips, 2, Duration::from_secs(5))?;
                format!("node 2's table active for both VIPs after {} ms", t0.elapsed().as_millis())
            } else {
                c.wait_next_hops(vips, &[2], Duration::from_secs(5))?;
                format!("routed around at the router after {} ms", t0.elapsed().as_millis())
            }
        }
        "add node 3" => {
            let t0 = Instant::now();
            c.add_node().map_err(|e| format!("node 3: {e}"))?;
            if l2 {
                let started = t0.elapsed();
                // Its election settles; holders are sticky, so nothing moves.
                std::thread::sleep(Duration::from_millis(1500));
                c.wait_active(vips, 2, Duration::from_secs(1))?;
                format!("started in {} ms; the VIPs stay on node 2", started.as_millis())
            } else {
                c.wait_next_hops(vips, &[2, 3], Duration::from_secs(20))?;
                format!("started and routed to in {} ms", t0.elapsed().as_millis())
            }
        }
        _ => {
            let d = c.drain(2).map_err(|e| format!("drain: {e}"))?;
            if l2 {
                c.wait_active(vips, 3, Duration::from_secs(5))?;
                format!(
                    "handed to node 3 after {} ms (drain file), the gateway exited {} ms after SIGTERM",
                    d.withdrawn.as_millis(),
                    d.gateway_exit.as_millis()
                )
            } else {
                c.wait_next_hops(vips, &[3], Duration::from_secs(5))?;
                format!(
                    "withdrawn at the router after {} ms (drain file), the gateway exited {} ms after SIGTERM",
                    d.withdrawn.as_millis(),
                    d.gateway_exit.as_millis()
                )
            }
        }
    })
}

fn run_mode(mode: Mode, rate: f64) -> Result<ModeRun, String> {
    let mut c = Cluster::with_mode(mode, &nodes::backends(), MANIFEST, 3, CLIENTS)
        .map_err(|e| format!("cluster ({} mode): {e}", mode.name()))?;
    eprintln!("{} mode: sandbox up; nodes 1 and 2 …", mode.name());
    let vips = [FULLNAT_VIP, DNAT_VIP];
    start_two(&mut c, &vips)?;
    let sync = c.sync_flags().gateway;
    // The load, for the whole run: steady, three changes with their downloads, and 4 s after.
    let total_s = STEADY_S + 3 * (LEAD_S + 12) + 4;
    let faults = bin("sluice-bench-faults").to_string_lossy().into_owned();
    let targets = format!("{FULLNAT_VIP}:80,{DNAT_VIP}:80");
    let (rate_s, secs) = (rate.to_string(), total_s.to_string());
    let ns = c.ns("cl");
    let load_args = [
        "ip",
        "netns",
        "exec",
        &ns,
        &faults,
        "clients",
        "--targets",
        &targets,
        "--rate",
        &rate_s,
        "--seconds",
        &secs,
        "--timeout-ms",
        "2000",
    ];
    let mut changes = Vec::new();
    // Each phase's name and start (ms since the epoch, the load's clock).
    let mut phases: Vec<(&'static str, u64)> = Vec::new();
    let mut sync_figures = (None, None, String::new());
    let load = std::thread::scope(|s| -> Result<String, String> {
        let load = s.spawn(|| run(&load_args).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()));
        // 1. Steady: the flow-sync figures.
        phases.push(("steady", epoch_ms()));
        let t = Instant::now();
        let sent0: Vec<Option<u64>> = (1..=2).map(|k| c.try_counter(k, "sync_records_sent")).collect();
        let pids: Vec<u32> = (1..=2).filter_map(|k| c.pid(k, "gateway")).collect();
        let cpu0: Vec<Option<u64>> = pids.iter().map(|&p| thread_ticks(p, "sluice-sync")).collect();
        std::thread::sleep(Duration::from_secs(STEADY_S));
        let secs = t.elapsed().as_secs_f64();
        let sent1: Vec<Option<u64>> = (1..=2).map(|k| c.try_counter(k, "sync_records_sent")).collect();
        let cpu1: Vec<Option<u64>> = pids.iter().map(|&p| thread_ticks(p, "sluice-sync")).collect();
        let sum = |a: &[Option<u64>], b: &[Option<u64>]| -> Option<u64> {
            a.iter().zip(b).map(|(x, y)| Some(y.as_ref()?.saturating_sub(*x.as_ref()?))).sum()
        };
        sync_figures = match (sync, sum(&sent0, &sent1), sum(&cpu0, &cpu1)) {
            (true, Some(n), Some(ticks)) => (
                Some(n as f64 / secs),
                Some(100.0 * ticks as f64 / clock_ticks() / secs),
                format!("{n} records in {secs:.1} s; sync threads {ticks} ticks"),
            ),
            (true, n, ticks) => {
                (n.map(|n| n as f64 / secs), None, format!("counters {n:?}, sync threads {ticks:?}"))
            }
            (false, ..) => (None, None, "the gateway has no flow sync (--sync-listen)".into()),
        };
        // 2–4. The changes, each under downloads.
        for what in ["kill node 1", "add node 3", "drain node 2"] {
            let before: Vec<u64> = (1..=c.nodes())
                .map(|k| if c.state(k) == nodes::NodeState::Up { c.counter(k, "new_flows") } else { 0 })
                .collect();
            let srcs = c.client_addrs();
            let (ns, srcs) = (&ns, &srcs);
            let downloads: Vec<_> = (0..2 * DOWNLOADS)
                .map(|i| {
                    let url = format!("http://{}/big", vips[i % 2]);
                    let src = srcs[i % srcs.len()].clone();
                    s.spawn(move || (format!("{src} → {url}"), download_in(ns, &src, &url)))
                })
                .collect();
            std::thread::sleep(Duration::from_secs(LEAD_S));
            phases.push((what, epoch_ms()));
            let note = change(&mut c, what, &vips)?;
            let results: Vec<(String, Result<usize, String>)> = downloads
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| ("?".into(), Err("panicked".into()))))
                .collect();
            let lost: Vec<String> = results
                .iter()
                .filter(|(_, r)| r.as_ref().ok() != Some(&(2 << 20)))
                .map(|(w, r)| format!("{w}: {r:?}"))
                .collect();
            let spread = (1..=c.nodes())
                .map(|k| {
                    let now = if c.state(k) == nodes::NodeState::Up { c.counter(k, "new_flows") } else { 0 };
                    now.saturating_sub(before.get(k - 1).copied().unwrap_or(0))
                })
                .collect();
            eprintln!("{} {what}: {note}; downloads lost {} of {}", mode.name(), lost.len(), results.len());
            changes.push(Change { what, downloads: results.len(), lost, spread, note });
        }
        load.join().map_err(|_| "the load panicked".to_string())?.map_err(|e| format!("the load: {e}"))
    })?;
    drop(c);
    let attempts = attempts(&load);
    if attempts.is_empty() {
        return Err(format!("the load printed nothing:\n{load}"));
    }
    let failed = attempts.iter().filter(|a| !a.ok).count();
    // Failover: among the connections started after the kill and before the next change, the
    // first good one after the last bad one.
    let kill_ms = phases.iter().find(|(w, _)| *w == "kill node 1").map_or(0, |p| p.1);
    let next_ms = phases.iter().find(|(w, _)| *w == "add node 3").map_or(u64::MAX, |p| p.1);
    let mut after: Vec<&Attempt> =
        attempts.iter().filter(|a| a.start_ms >= kill_ms && a.start_ms < next_ms).collect();
    after.sort_by_key(|a| a.start_ms);
    let bad = |a: &Attempt| !a.ok || a.latency_ms > SLOW_MS;
    let failover_ms = match after.iter().rposition(|a| bad(a)) {
        None => Some(0),
        Some(i) => after.get(i + 1).map(|a| a.start_ms - kill_ms),
    };
    let established_lost: usize = changes.iter().map(|c| c.lost.len()).sum();
    // Slow but answered, outside the failover: a SYN or SYN-ACK sent again (a DNAT reply that
    // crossed a node before its flow's record, say).
    let slow = attempts
        .iter()
        .filter(|a| a.ok && a.latency_ms > SLOW_MS && failover_ms.is_none_or(|f| a.start_ms > kill_ms + f))
        .count();
    Ok(ModeRun {
        mode,
        changes,
        attempts,
        phases,
        failover_ms,
        failed,
        slow,
        established_lost,
        sync_figures,
        sync,
    })
}

/// A mode's readable table.
fn print_run(r: &ModeRun, rate: f64) {
    let phase_of = |ms: u64| r.phases.iter().rev().find(|(_, at)| *at <= ms).map_or("before", |(w, _)| *w);
    // The failures by phase (the last one begun when the connection started), VIP and reason.
    let mut why: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for a in r.attempts.iter().filter(|a| !a.ok) {
        *why.entry((phase_of(a.start_ms), a.target.as_str(), a.why.as_str())).or_insert(0) += 1;
    }
    let how = match r.mode {
        Mode::Bgp => "BGP mode (ECMP at a BIRD router)",
        Mode::L2 => "L2 mode (one node answers ARP per VIP)",
    };
    println!("\n== benches/run ecmp, {how}: 2 nodes, then node 1 killed, node 3 added, node 2 drained");
    println!("{:<14} {:>10} {:>6}  {:<18} note", "change", "downloads", "lost", "new flows per node");
    for ch in &r.changes {
        println!(
            "{:<14} {:>10} {:>6}  {:<18} {}",
            ch.what,
            ch.downloads,
            ch.lost.len(),
            format!("{:?}", ch.spread),
            ch.note
        );
        for l in &ch.lost {
            println!("    lost: {l}");
        }
    }
    println!(
        "load: {} connections at {rate}/s, {} failed, {} slower than {SLOW_MS} ms outside the \
         failover; failover {} ms (after the kill: first good connection after the last failed or slow one)",
        r.attempts.len(),
        r.failed,
        r.slow,
        r.failover_ms.map_or("-".into(), |v| v.to_string())
    );
    for ((phase, target, reason), n) in &why {
        println!("    failed: {n} × {reason} to {target} during \"{phase}\"");
    }
    let mut slow_by: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for a in r.attempts.iter().filter(|a| a.ok && a.latency_ms > SLOW_MS) {
        *slow_by.entry((phase_of(a.start_ms), a.target.as_str())).or_insert(0) += 1;
    }
    for ((phase, target), n) in &slow_by {
        println!("    slower than {SLOW_MS} ms: {n} to {target} during \"{phase}\"");
    }
    println!("flow sync: {}", r.sync_figures.2);
}
