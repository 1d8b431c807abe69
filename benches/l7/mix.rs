//! `benches/run l7 --l4-mix` (issue 13, item 1): L4 forwarding and the L7 stage on the same
//! worker. The same sandbox and gateway as the proxy comparison (one worker on core 1, one
//! queue, the Ingress on 198.18.100.80), serving besides the Ingress the UDP ClusterIP `echo`
//! (198.19.0.9:9) whose one endpoint, web-1's namespace, runs `sluice-pktgen reflect` on its
//! interface: every measurement frame goes client → gateway (DNAT, SNAT) → reflector → gateway
//! (reverse translation) → client, and comes back to the generator's socket, which measures
//! loss and the round trip's latency.
//!
//! The generator, `sluice-pktgen send --rx` (AF_XDP, copy mode), runs in a client namespace of
//! its own (`pg`, 198.18.0.110): its receive program hands its socket every TCP SYN-ACK as well,
//! which in the client namespace would take wrk's. It offers a fixed rate (`--l4-rate`, below
//! what the worker forwards, so latency measures waiting, not a queue that only grows), 256
//! flows of 64-byte frames.
//!
//! Per repeat: (a) the L4 load alone; (b) the same L4 load while `wrk -t1 -c64` (HTTPS
//! keep-alive, TLS 1.3) loads the Ingress — wrk starts first, the generator 2 s later, and wrk
//! runs 4 s longer than it, so the L4 window is inside wrk's; (c) the wrk load alone (the L7
//! req/s it gets without L4 beside it); (d), the control: the same L4 load while `wrk -t1 -c64`
//! (plain HTTP keep-alive) loads web-2's nginx from inside web-2's namespace — core 0 as busy
//! as in (b), the gateway's core untouched by it — so that what (b) adds over (d) is the
//! gateway's doing, and what (d) adds over (a) is the crowded load core's. The generator, the
//! reflector, wrk and the backends all run on core 0 (two cores on this VM), which the table
//! says.
//!
//! Not hot path; no unsafe.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sluice_benches::{median, wrk};
use sluice_sandbox::bin;

use super::{Bench, CONNS, LOAD_CORE, Mode, PROXY_CORE, Proxy, interrupted, round, spread};

/// The generator's namespace role and address (on the clients' /24).
const PG_ROLE: &str = "pg";
/// The generator's source address.
const PG_ADDR: &str = "198.18.0.110";
/// The L4 Service (`echo` in the manifest): ClusterIP and port.
const ECHO_VIP: &str = "198.19.0.9";
/// The L4 Service's port.
const ECHO_PORT: u16 = 9;
/// The reflector's namespace role: web-1's, the Service's one endpoint.
const REFLECTOR_ROLE: &str = "b0";
/// Flows the generator spreads its frames over (source ports).
const FLOWS: u16 = 256;
/// wrk starts this long before the generator (its 64 connections are up and loaded).
const WRK_LEAD: Duration = Duration::from_secs(2);
/// The control run's wrk: web-2's namespace and its nginx, not through the gateway.
const BESIDE_ROLE: &str = "b1";
/// web-2's nginx, as seen from its own namespace.
const BESIDE_URL: &str = "http://198.18.1.2:8080/";

/// What wrk loads while the generator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WrkTarget {
    /// The Ingress, HTTPS keep-alive, from the client namespace: through the gateway's worker.
    Ingress,
    /// web-2's nginx from its own namespace: core 0 as busy, the gateway left alone.
    Beside,
}

/// The `--l4-mix` run's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MixPlan {
    /// Seconds per measurement.
    pub seconds: u64,
    /// Repeats of (a), (b), (c).
    pub repeat: usize,
    /// The generator's offered rate, packets per second.
    pub rate: u64,
}

/// One generator run as it reported it.
#[derive(Debug, Clone, Default)]
struct L4Sample {
    sent: u64,
    received: u64,
    lost: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
}

impl L4Sample {
    /// Frames that came back per second of the generator's run.
    fn pps(&self) -> f64 {
        if self.seconds > 0.0 { self.received as f64 / self.seconds } else { 0.0 }
    }
}

/// One repeat's three measurements.
#[derive(Debug, Clone, Default)]
struct Repeat {
    alone: L4Sample,
    with_l7: L4Sample,
    /// (d): the L4 load beside wrk on core 0 that does not go through the gateway.
    beside: L4Sample,
    /// wrk's req/s in (d).
    beside_rps: f64,
    /// wrk's req/s (non-2xx not counted) while the L4 load ran, and its p99 in ms.
    l7_rps_with_l4: f64,
    l7_p99_ms_with_l4: f64,
    /// wrk's req/s and p99 without the L4 load.
    l7_rps_alone: f64,
    l7_p99_ms_alone: f64,
    /// wrk's errors over (b) and (c).
    l7_errors: u64,
}

/// The whole `--l4-mix` run: the generator's namespace and the reflector, then the repeats; the
/// table and RESULT.
pub(crate) fn run(b: &mut Bench, plan: MixPlan) -> Result<(), String> {
    b.sb.add_client(PG_ROLE, PG_ADDR).map_err(|e| format!("the generator's namespace: {e}"))?;
    let pg = bin("sluice-pktgen").to_string_lossy().into_owned();
    let core = LOAD_CORE.to_string();
    b.sb.spawn(REFLECTOR_ROLE, "reflector", &[&pg, "reflect", "--iface", "e0", "--core", &core])
        .map_err(|e| format!("reflector: {e}"))?;
    wait_l4(b)?;
    eprintln!(
        "L4 Service {ECHO_VIP}:{ECHO_PORT} answers through the gateway; {} pps offered, {} s per run",
        plan.rate, plan.seconds
    );
    let mut repeats = Vec::new();
    for r in 0..plan.repeat {
        if interrupted() {
            return Err("interrupted".into());
        }
        eprintln!("repeat {}/{}: L4 alone …", r + 1, plan.repeat);
        let alone = l4(b, plan.rate, plan.seconds as f64, "pktgen-alone")?;
        eprintln!("repeat {}/{}: L4 with wrk on the Ingress …", r + 1, plan.repeat);
        let (with_l7, w) = with_wrk(b, plan, WrkTarget::Ingress)?;
        eprintln!("repeat {}/{}: L4 with wrk beside, not through the gateway …", r + 1, plan.repeat);
        let (beside, wb) = with_wrk(b, plan, WrkTarget::Beside)?;
        eprintln!("repeat {}/{}: wrk alone …", r + 1, plan.repeat);
        let l7 = b.measure(Proxy::Sluice, Mode::Https, plan.seconds)?;
        repeats.push(Repeat {
            alone,
            with_l7,
            beside,
            beside_rps: wb.requests.saturating_sub(wb.non_2xx) as f64 / wb.seconds.max(1e-9),
            l7_rps_with_l4: w.requests.saturating_sub(w.non_2xx) as f64 / w.seconds.max(1e-9),
            l7_p99_ms_with_l4: w.p99_ms.unwrap_or(0.0),
            l7_rps_alone: l7.rps(),
            l7_p99_ms_alone: l7.p99_ms,
            l7_errors: w.connect_errors + w.other_errors + w.non_2xx + l7.errors + l7.non_2xx,
        });
    }
    print(plan, &repeats);
    println!("RESULT {}", Value::Object(result(plan, &repeats)));
    Ok(())
}

/// The generator's arguments for `rate` pps over `seconds` (or `count` frames).
fn pktgen_args(b: &Bench, rate: u64, seconds: f64, count: Option<u64>) -> Vec<String> {
    let mut a: Vec<String> = [
        bin("sluice-pktgen").to_string_lossy().as_ref(),
        "send",
        "--iface",
        "c0",
        "--dst-mac",
        &b.sb.gateway_mac(),
        "--src-ip",
        PG_ADDR,
        "--src-ips",
        "1",
        "--sports",
        &FLOWS.to_string(),
        "--dst-ip",
        ECHO_VIP,
        "--dport",
        &ECHO_PORT.to_string(),
        "--size",
        "64",
        "--rate",
        &rate.to_string(),
        "--duration",
        &seconds.to_string(),
        "--cores",
        &LOAD_CORE.to_string(),
        "--rx",
        "--json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Some(n) = count {
        a.extend(["--count".to_owned(), n.to_string()]);
    }
    a
}

/// Runs the generator in its namespace and reads its JSON.
fn l4_run(b: &mut Bench, args: &[String], name: &str, limit: Duration) -> Result<L4Sample, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = b.client_in(PG_ROLE, name, &args, limit)?;
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or(format!("sluice-pktgen said nothing usable:\n{text}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let us = |k: &str| v["latency_ns"][k].as_f64().unwrap_or(0.0) / 1e3;
    Ok(L4Sample {
        sent: n("sent"),
        received: n("received"),
        lost: n("lost"),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        p50_us: us("p50"),
        p99_us: us("p99"),
        p999_us: us("p99.9"),
    })
}

/// One paced generator run of `seconds`.
fn l4(b: &mut Bench, rate: u64, seconds: f64, name: &str) -> Result<L4Sample, String> {
    let args = pktgen_args(b, rate, seconds, None);
    let limit = Duration::from_secs_f64(seconds + 30.0);
    l4_run(b, &args, name, limit)
}

/// Waits (30 s at most) until frames sent to the L4 Service come back: control has published
/// the Service, the gateway has resolved the reflector's and the generator's neighbours.
fn wait_l4(b: &mut Bench) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let args = pktgen_args(b, 10_000, 1.0, Some(1_000));
        let r = l4_run(b, &args, "pktgen-probe", Duration::from_secs(20));
        match r {
            Ok(s) if s.received > 0 => return Ok(()),
            r if Instant::now() > deadline || interrupted() => {
                return Err(format!(
                    "no frame came back from {ECHO_VIP}:{ECHO_PORT}: {r:?}\nthe reflector's log:\n{}\nthe gateway's log:\n{}",
                    b.sb.log("reflector"),
                    b.sb.log("gateway")
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// (b) and (d): wrk on `target`, the generator inside its run.
fn with_wrk(b: &mut Bench, plan: MixPlan, target: WrkTarget) -> Result<(L4Sample, wrk::Report), String> {
    let wrk_s = plan.seconds + WRK_LEAD.as_secs() + 2;
    let log = b.dir.join("wrk-mix.out");
    let f = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let (role, url) = match target {
        WrkTarget::Ingress => ("cl", format!("https://{}/", Proxy::Sluice.host())),
        WrkTarget::Beside => (BESIDE_ROLE, BESIDE_URL.to_owned()),
    };
    let (c, d) = (CONNS.to_string(), format!("{wrk_s}s"));
    let child = Command::new("ip")
        .args(["netns", "exec", &b.sb.ns(role), "taskset", "-c", &LOAD_CORE.to_string()])
        .args(["wrk", "-t1", "-c", &c, "-d", &d, "--timeout", "5s", "--latency", &url])
        .stdin(Stdio::null())
        .stdout(f.try_clone().map_err(|e| e.to_string())?)
        .stderr(f)
        .spawn()
        .map_err(|e| format!("wrk: {e}"))?;
    b.kids.0.push(child);
    let i = b.kids.0.len() - 1;
    std::thread::sleep(WRK_LEAD);
    let name = match target {
        WrkTarget::Ingress => "pktgen-with-l7",
        WrkTarget::Beside => "pktgen-beside",
    };
    let l4 = l4(b, plan.rate, plan.seconds as f64, name);
    // The generator's run is over (or failed): wait for wrk, bounded, in either case.
    let deadline = Instant::now() + Duration::from_secs(wrk_s + 30);
    let mut c = b.kids.0.remove(i);
    loop {
        if let Ok(Some(_)) = c.try_wait() {
            break;
        }
        if Instant::now() > deadline || interrupted() {
            let _ = c.kill();
            let _ = c.wait();
            return Err(format!("wrk did not finish within {:?}", Duration::from_secs(wrk_s + 30)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let l4 = l4?;
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let w = wrk::Report::parse(&text).ok_or(format!("wrk said nothing usable:\n{text}"))?;
    Ok((l4, w))
}

/// The figures of every repeat.
fn values(rs: &[Repeat], f: impl Fn(&Repeat) -> f64) -> Vec<f64> {
    rs.iter().map(f).collect()
}

fn print(plan: MixPlan, rs: &[Repeat]) {
    let MixPlan { seconds, repeat, rate } = plan;
    println!(
        "\nL4 and L7 on one worker: sluice-gateway, one worker on core {PROXY_CORE}, serving the UDP ClusterIP {ECHO_VIP}:{ECHO_PORT} (a reflector behind it) and the Ingress;"
    );
    println!(
        "sluice-pktgen --rx at {rate} pps offered ({FLOWS} flows, 64-byte frames, round trip through the gateway twice), wrk -t1 -c64 HTTPS keep-alive;"
    );
    println!(
        "generator, reflector, wrk and backends on core {LOAD_CORE}; {seconds} s per run, {repeat} repeat(s), median (min–max)\n"
    );
    println!(
        "{:<22} {:>26} {:>16} {:>22} {:>22} {:>22} {:>24} {:>20}",
        "", "L4 pps back", "L4 lost", "L4 p50 µs", "L4 p99 µs", "L4 p99.9 µs", "L7 req/s", "L7 p99 ms"
    );
    let lost = |f: fn(&Repeat) -> &L4Sample| -> String {
        let (l, s) = rs.iter().map(f).fold((0, 0), |(l, s), x| (l + x.lost, s + x.sent));
        format!("{l} of {s}")
    };
    println!(
        "{:<22} {:>26} {:>16} {:>22} {:>22} {:>22} {:>24} {:>20}",
        "L4 alone",
        spread(&values(rs, |r| r.alone.pps()), 0),
        lost(|r| &r.alone),
        spread(&values(rs, |r| r.alone.p50_us), 1),
        spread(&values(rs, |r| r.alone.p99_us), 1),
        spread(&values(rs, |r| r.alone.p999_us), 1),
        "–",
        "–"
    );
    println!(
        "{:<22} {:>26} {:>16} {:>22} {:>22} {:>22} {:>24} {:>20}",
        "L4 + wrk on Ingress",
        spread(&values(rs, |r| r.with_l7.pps()), 0),
        lost(|r| &r.with_l7),
        spread(&values(rs, |r| r.with_l7.p50_us), 1),
        spread(&values(rs, |r| r.with_l7.p99_us), 1),
        spread(&values(rs, |r| r.with_l7.p999_us), 1),
        spread(&values(rs, |r| r.l7_rps_with_l4), 0),
        spread(&values(rs, |r| r.l7_p99_ms_with_l4), 2)
    );
    println!(
        "{:<22} {:>26} {:>16} {:>22} {:>22} {:>22} {:>24} {:>20}",
        "L4 + wrk beside (d)",
        spread(&values(rs, |r| r.beside.pps()), 0),
        lost(|r| &r.beside),
        spread(&values(rs, |r| r.beside.p50_us), 1),
        spread(&values(rs, |r| r.beside.p99_us), 1),
        spread(&values(rs, |r| r.beside.p999_us), 1),
        spread(&values(rs, |r| r.beside_rps), 0),
        "–"
    );
    println!(
        "{:<22} {:>26} {:>16} {:>22} {:>22} {:>22} {:>24} {:>20}",
        "wrk on Ingress alone",
        "–",
        "–",
        "–",
        "–",
        "–",
        spread(&values(rs, |r| r.l7_rps_alone), 0),
        spread(&values(rs, |r| r.l7_p99_ms_alone), 2)
    );
    let errors: u64 = rs.iter().map(|r| r.l7_errors).sum();
    println!("\nwrk errors and non-2xx over every run: {errors}");
    println!(
        "L4 latency: the generator's transmit to its receive of the reflected frame (AF_XDP copy mode both ways, the gateway twice)."
    );
    println!(
        "(d): wrk -c{CONNS} plain HTTP on web-2's nginx from its own namespace, on core {LOAD_CORE}: the load core as busy, the gateway not involved (its req/s in the L7 column)."
    );
}

fn result(plan: MixPlan, rs: &[Repeat]) -> Map<String, Value> {
    let med = |f: fn(&Repeat) -> f64| median(&values(rs, f));
    let mut m = Map::new();
    m.insert("l4_offered_pps".into(), json!(plan.rate));
    m.insert("l4_pps_alone".into(), json!(round(med(|r| r.alone.pps()), 0)));
    m.insert("l4_p50_us_alone".into(), json!(round(med(|r| r.alone.p50_us), 1)));
    m.insert("l4_p99_us_alone".into(), json!(round(med(|r| r.alone.p99_us), 1)));
    m.insert("l4_lost_alone".into(), json!(rs.iter().map(|r| r.alone.lost).sum::<u64>()));
    m.insert("l4_pps_with_l7".into(), json!(round(med(|r| r.with_l7.pps()), 0)));
    m.insert("l4_p50_us_with_l7".into(), json!(round(med(|r| r.with_l7.p50_us), 1)));
    m.insert("l4_p99_us_with_l7".into(), json!(round(med(|r| r.with_l7.p99_us), 1)));
    m.insert("l4_lost_with_l7".into(), json!(rs.iter().map(|r| r.with_l7.lost).sum::<u64>()));
    m.insert("l4_p50_us_beside".into(), json!(round(med(|r| r.beside.p50_us), 1)));
    m.insert("l4_p99_us_beside".into(), json!(round(med(|r| r.beside.p99_us), 1)));
    m.insert("l4_lost_beside".into(), json!(rs.iter().map(|r| r.beside.lost).sum::<u64>()));
    m.insert("l7_rps_with_l4".into(), json!(round(med(|r| r.l7_rps_with_l4), 0)));
    m.insert("l7_p99_ms_with_l4".into(), json!(round(med(|r| r.l7_p99_ms_with_l4), 3)));
    m.insert("l7_rps_alone".into(), json!(round(med(|r| r.l7_rps_alone), 0)));
    m.insert("l7_p99_ms_alone".into(), json!(round(med(|r| r.l7_p99_ms_alone), 3)));
    m.insert("seconds".into(), json!(plan.seconds));
    m.insert("repeat".into(), json!(plan.repeat));
    m
}
