//! `benches/run faults` (issue 12, "An edge that holds under attack"): a connection storm, a SYN
//! flood and a forged ARP request against Sluice, and the storm and the flood against the kernel
//! doing kube-proxy's job with nftables, in the same run and the same sandbox.
//!
//! Topology: the namespace sandbox of `sluice_sandbox` (a switch; the gateway `gw` on core 1;
//! one nginx backend `b0` at 198.18.1.1:8080; the client `cl`) and, on the clients' switch:
//! - `s1`…`sN` ([`STORM_CLIENTS`]): the storm's clients, 198.18.0.101…, one address each (wrk
//!   cannot choose a source address, so many client addresses are many namespaces);
//! - `f1`, `f2`: the flooders, 198.18.0.51 and .52, whose SYNs come from 198.18.128.0/20 and
//!   198.18.144.0/20 (the gateway namespace routes those prefixes back to them, so the backend's
//!   SYN-ACKs go back through the gateway to the flooders' segment, where an XDP program drops
//!   them on arrival);
//! - `fg`: the forger, 198.18.0.66, with a MAC of its own.
//!
//! The Services (control's manifest, [`MANIFEST`]): a NodePort (node 198.18.0.1:31080) and a
//! LoadBalancer VIP (198.18.100.10:80), both on the one backend. Sluice runs FullNAT with one
//! SNAT address (198.18.1.254, ports 10000–29999): 20,000 tuples towards the backend.
//!
//! The scenarios:
//! 1. **Storm**: every client runs `wrk -t1 -c4 -H 'Connection: close'` to the NodePort in
//!    consecutive 10 s invocations (slices), all clients at once; a slice's connections per
//!    second are the requests all clients completed ÷ 10 s (each request is one connection).
//!    Sluice first, then the kernel (below), the same slices.
//! 2. **Flood**: two `sluice-pktgen send --proto syn` at full rate from `f1` (to the NodePort) and
//!    `f2` (to the VIP), each 4,096 source addresses × 128 source ports: 1,048,576 source
//!    (address, port) pairs in all — not a million distinct addresses, which 198.18.0.0/15
//!    (131,072) cannot hold. Meanwhile `cl` makes [`LEGIT_RATE`] connections per second (an HTTP
//!    GET each, 2 s to answer), alternating NodePort and VIP, from 2 s before the flood to
//!    `--after-seconds` after it; each is counted by when it started: during or after. The
//!    gateway's VmRSS is sampled every second: before, max, after. The flooders use the
//!    live-frames engine by default (`--flood-engine live`): its frames reach the gateway's veth
//!    with the headroom XDP needs, so veth hands them to XDP in place as a NIC's driver would
//!    (frames written into an AF_XDP socket, `--flood-engine afxdp`, arrive without it and are
//!    copied first). Replies to the forged sources are dropped at the gateway's switch port
//!    (`bpf/sink.c`), as they would leave a NIC (`--no-sink`: bridged to the flooders instead,
//!    which veth does on the gateway's core).
//! 3. **Forged ARP** (Sluice only: the kernel is not asked to own a VIP): after connections to
//!    the VIP (the backend's neighbour known), `fg` broadcasts "who-has VIP tell 198.18.1.1"
//!    with its own MAC as the sender's, three times; `cl` then makes 100 connections to the VIP;
//!    an AF_PACKET socket in `fg` counts the IP frames addressed to its MAC (the backend's traffic,
//!    diverted). ARP frames to it (the gateway's answer to the request) are counted apart.
//!
//! 4. **Faults under traffic** (issue 16, Sluice only), before the storm: `cl` makes
//!    [`FAULT_RATE`] connections per second to the NodePort and the VIP while control is killed
//!    with SIGKILL (at 3 s) and started again (at 5 s): `control_kill_failed` is the connections
//!    that failed. Then the gateway's interface goes down for half a second and up, with `cl`
//!    connecting every 10 ms: `link_recovery_ms` is the time from the link coming up to the
//!    start of the first connection that succeeded after it. Then the gateway is restarted twice
//!    — stopped with SIGTERM, then with SIGKILL, and started again at once — while
//!    [`RESTART_DOWNLOADS`] 2 MiB downloads at 256 KiB/s are open through the FullNAT NodePort
//!    and as many through a DNAT VIP (`externalTrafficPolicy: Local`), and `cl` pings the VIP
//!    every [`PROBE_INTERVAL_MS`] ms: `restart_established_lost` is the downloads that did not
//!    complete whole (over both restarts), `restart_gap_ms` the longest run of unanswered pings
//!    (times the interval: an upper bound on the time the service traffic stopped).
//!
//! 5. **L7 upgrade and hostile clients** (issue 16, Sluice only), after scenario 4: the
//!    gateway also serves Ingresses on [`L7`] (`plain.example` in clear, `foo.bar.com` over TLS,
//!    both on the one backend; `/read` of plain.example on an upstream that reads whole bodies,
//!    `tests/hostile/upstream.py`). Well-behaved clients ([`Bench::l7_clients`]: `wrk` keep-alive
//!    and `Connection: close` over HTTP and HTTPS, `curl` over HTTP/2) loop while the gateway is
//!    upgraded twice (a new process takes the listeners over through the handover socket, the
//!    old one drains and exits): `l7_upgrade_failed` is their failed requests and refused
//!    connections. Then the same clients loop, in 10 s slices, while `tests/hostile/hostile.py`
//!    runs every hostile case of `tests/tests/l7_hostile.rs` (slowloris heads and bodies,
//!    oversized heads, smuggling framings, HTTP/2 rapid reset and CONTINUATION floods, TLS
//!    garbage): `l7_hostile_other_clients_failed` is their failed requests.
//!
//! The kernel's side: the gateway stopped, `gw` forwards (`ip_forward`) with kube-proxy's
//! nftables rules ([`nft_rules`]: DNAT of the NodePort and the VIP to the backend, masquerade,
//! conntrack); the VIP is a local address of `gw` (on `lo`) so that the kernel answers its ARP,
//! as MetalLB's speaker would. RPS on `gw0` puts the kernel's forwarding on core 1, where
//! Sluice's worker ran, and so does gw0's NAPI thread, which ran Sluice's XDP program there;
//! wrk, nginx, the flooders and the legitimate clients run on core 0 on both sides.
//!
//! Subcommands (the orchestrator runs the others inside the namespaces):
//!   run [--storm-seconds 300] [--flood-seconds 60] [--after-seconds 60] [--quick] [--no-sink]
//!       [--flood-engine afxdp|live] [--no-latency-qos] [--faults-only]
//!   clients --targets A:P,… --rate R (--seconds S | --count N) --timeout-ms T
//!   forge --iface IF --sender-ip IP --target-ip IP --seconds S
#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sluice_benches::{flag, text_flag, wrk};
use sluice_sandbox::{Backend, GW_V4, Sandbox, bin, must, repo_root, run};

/// The NodePort (on the gateway's node address).
const NODE_PORT: u16 = 31080;
/// The LoadBalancer VIP and its port.
const VIP: &str = "198.18.100.10";
/// The VIP's port.
const VIP_PORT: u16 = 80;
/// A LoadBalancer VIP with `externalTrafficPolicy: Local`: DNAT (the backend runs on the
/// gateway's node), where the others are FullNAT.
const DNAT_VIP: &str = "198.18.100.13";
/// Downloads open through each of FullNAT and DNAT while the gateway restarts.
const RESTART_DOWNLOADS: usize = 4;
/// The interval of the probe that times a restart's gap (pings to the VIP, answered by the
/// gateway's worker): the gap's resolution.
const PROBE_INTERVAL_MS: u64 = 10;
/// The one backend and its port.
const BACKEND: &str = "198.18.1.1";
/// nginx's port on the backend.
const BACKEND_PORT: u16 = 8080;
/// Storm clients (namespaces, one address each) and wrk connections per client: 8 × 4 = 32.
const STORM_CLIENTS: usize = 8;
/// wrk connections per storm client.
const STORM_CONNS: usize = 4;
/// Seconds per storm slice.
const SLICE_S: u64 = 10;
/// The flooders: role, own address, first source address, target address and port, name.
const FLOODERS: [(&str, &str, &str, &str, u16, &str); 2] = [
    ("f1", "198.18.0.51", "198.18.128.0", GW_V4, NODE_PORT, "NodePort"),
    ("f2", "198.18.0.52", "198.18.144.0", VIP, VIP_PORT, "VIP"),
];
/// Source addresses per flooder (a /20) and source ports per address.
const FLOOD_IPS: u32 = 4096;
/// Source ports per flood source address.
const FLOOD_PORTS: u32 = 128;
/// The legitimate clients' connections per second during the flood.
const LEGIT_RATE: f64 = 25.0;
/// Their time to answer (connect, request, whole response).
const LEGIT_TIMEOUT_MS: u64 = 2000;
/// Connections per second while a fault happens (the faults of scenario 4).
const FAULT_RATE: f64 = 50.0;
/// The address Ingresses are served on (scenario 5).
const L7: &str = "198.18.100.80";
/// The port of the upstream that reads whole bodies (`tests/hostile/upstream.py`) on the
/// backend: what a slow body holds up.
const READER_PORT: u16 = 9000;
/// The gateway's client head and body timeouts (s): short enough that the slow hostile clients
/// are answered within their case (hostile.py bounds each to 10 s), long enough that a
/// well-behaved client whose TLS handshake waits for a busy load core is not cut off (2 s
/// did that to one HTTPS connection in a few hundred on a loaded machine: a silent close,
/// which wrk counts as a read error).
const CLIENT_TIMEOUT_S: &str = "8";
/// Seconds of well-behaved L7 load per run of [`Bench::l7_clients`].
const L7_SLICE_S: u64 = 10;
/// The forger's role and address.
const FORGER: (&str, &str) = ("fg", "198.18.0.66");
/// The core of the gateway's worker and, on the kernel's side, of its forwarding (RPS).
const DUT_CORE: usize = 1;
/// The core of everything else the bench starts.
const LOAD_CORE: usize = 0;

/// Set by SIGINT/SIGTERM: the run stops within a second and cleans up.
static INTERRUPTED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Dispatches the subcommands (module doc).
fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("clients") => clients(&args[1..]),
        Some("forge") => forge(&args[1..]),
        _ => Err("usage: sluice-bench-faults run [--storm-seconds S] [--flood-seconds S] [--after-seconds S] [--quick] [--no-sink] [--flood-engine afxdp|live] [--no-latency-qos] [--faults-only] | clients … | forge …".into()),
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-faults: {e}");
        std::process::exit(1);
    }
}

/// Milliseconds since the epoch: the one clock the orchestrator and the clients share.
/// Pins every thread whose name starts with `prefix` (a NAPI thread is named after its
/// interface and NAPI id; the bench runs alone, so no other sandbox's interface shares the name)
/// to `core`; fails when there is none.
fn pin_threads(prefix: &str, core: usize) -> Result<(), String> {
    let out = run(&["ps", "-eo", "pid,comm"]).map_err(|e| e.to_string())?;
    let mut pinned = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split_whitespace();
        let (Some(pid), Some(comm)) = (it.next(), it.next()) else { continue };
        if comm.starts_with(prefix) {
            run(&["taskset", "-pc", &core.to_string(), pid]).map_err(|e| e.to_string())?;
            pinned += 1;
        }
    }
    if pinned == 0 {
        return Err(format!("no {prefix}* thread after `threaded` was switched on"));
    }
    Ok(())
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether the run was interrupted.
fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------------------------------
// `clients`: legitimate connections at a steady rate

/// Opens connections at `--rate` per second (each on its own thread, so a slow one does not
/// delay the next) to the `--targets` in turn, for `--seconds` or `--count` connections; each
/// sends a GET and must read a whole `200` answer within `--timeout-ms`. Prints one line per
/// connection: `START_MS OK LATENCY_MS TARGET WHY` (`OK` 1 or 0, `WHY` `-` or the failure).
fn clients(args: &[String]) -> Result<(), String> {
    let targets: Vec<SocketAddr> = text_flag(args, "--targets")
        .ok_or("--targets")?
        .split(',')
        .map(|t| t.parse().map_err(|e| format!("--targets {t}: {e}")))
        .collect::<Result<_, _>>()?;
    let rate: f64 = flag(args, "--rate", LEGIT_RATE);
    let seconds: f64 = flag(args, "--seconds", 0.0);
    let count: u64 = flag(args, "--count", (seconds * rate).ceil() as u64);
    let timeout = Duration::from_millis(flag(args, "--timeout-ms", LEGIT_TIMEOUT_MS));
    if targets.is_empty() || rate.is_nan() || rate <= 0.0 || count == 0 || count > 1_000_000 {
        return Err("clients: --targets, a positive --rate and --seconds or --count (≤ 1,000,000)".into());
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..count {
        let at = t0 + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (target, tx) = (targets[i as usize % targets.len()], tx.clone());
        handles.push(std::thread::spawn(move || {
            let (start, t) = (epoch_ms(), Instant::now());
            let r = one_get(target, timeout);
            let ms = t.elapsed().as_millis();
            let line = match r {
                Ok(()) => format!("{start} 1 {ms} {target} -"),
                Err(why) => format!("{start} 0 {ms} {target} {why}"),
            };
            let _ = tx.send(line);
        }));
        // Finished threads are joined as we go: at most rate × timeout of them live.
        handles.retain(|h| !h.is_finished());
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    for line in rx {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

/// One connection: GET `/`, the whole answer read, `200` expected, all within `timeout`.
fn one_get(target: SocketAddr, timeout: Duration) -> Result<(), &'static str> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
    let mut s = TcpStream::connect_timeout(&target, timeout).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => "connect-timeout",
        std::io::ErrorKind::ConnectionRefused => "connect-refused",
        std::io::ErrorKind::ConnectionReset => "connect-reset",
        _ => "connect-error",
    })?;
    s.set_write_timeout(left()).map_err(|_| "timeout")?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").map_err(|_| "write-error")?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left().ok_or("read-timeout")?)).map_err(|_| "read-timeout")?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err("read-timeout");
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err("read-reset"),
            Err(_) => return Err("read-error"),
        }
    }
    if answer.starts_with(b"HTTP/1.1 200") { Ok(()) } else { Err("bad-answer") }
}

/// One connection as `clients` printed it.
struct Attempt {
    start_ms: u64,
    ok: bool,
    why: String,
}

/// The lines `clients` printed.
fn attempts(log: &str) -> Vec<Attempt> {
    log.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [start, ok, _ms, _target, why] = f[..] else { return None };
            Some(Attempt { start_ms: start.parse().ok()?, ok: ok == "1", why: why.to_owned() })
        })
        .collect()
}

/// Connections and successes among `a`, and the failures by reason.
#[derive(Debug, Default, Clone)]
struct Tally {
    tried: u64,
    ok: u64,
    why: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn of<'a>(a: impl Iterator<Item = &'a Attempt>) -> Tally {
        let mut t = Tally::default();
        for x in a {
            t.tried += 1;
            if x.ok {
                t.ok += 1;
            } else {
                *t.why.entry(x.why.clone()).or_insert(0) += 1;
            }
        }
        t
    }

    /// Success in percent (`None` with no connection).
    fn pct(&self) -> Option<f64> {
        (self.tried > 0).then(|| 100.0 * self.ok as f64 / self.tried as f64)
    }

    fn text(&self) -> String {
        let why: Vec<String> = self.why.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let pct = self.pct().map_or("-".into(), |p| format!("{p:.2} %"));
        let why = if why.is_empty() { String::new() } else { format!(" (failed: {})", why.join(", ")) };
        format!("{}/{} = {pct}{why}", self.ok, self.tried)
    }
}

// ------------------------------------------------------------------------------------------
// `forge`: the forged ARP request, and what then arrives at the forger's MAC

/// Inside the forger's namespace: opens an AF_PACKET socket (every frame of every interface),
/// broadcasts three ARP requests 200 ms apart — who has `--target-ip`? tell `--sender-ip` at this
/// interface's MAC — prints `forged`, then counts the frames addressed to this MAC until SIGTERM
/// or `--seconds`, and prints them as JSON: `ip_frames` (IPv4 and IPv6: traffic diverted here),
/// `arp_frames`, `other_frames`, `requests_sent`.
fn forge(args: &[String]) -> Result<(), String> {
    let iface = text_flag(args, "--iface").ok_or("--iface")?;
    let sender: Ipv4Addr =
        text_flag(args, "--sender-ip").ok_or("--sender-ip")?.parse().map_err(|_| "--sender-ip")?;
    let target: Ipv4Addr =
        text_flag(args, "--target-ip").ok_or("--target-ip")?.parse().map_err(|_| "--target-ip")?;
    let seconds: f64 = flag(args, "--seconds", 30.0);
    let stop = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let got = sluice_sandbox::forge::forge_arp(&iface, sender, target, seconds, &stop, || {
        println!("forged");
        let _ = std::io::stdout().flush();
    })?;
    println!(
        "{}",
        json!({"ip_frames": got.ip_frames, "arp_frames": got.arp_frames, "other_frames": got.other_frames, "requests_sent": got.requests_sent})
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The orchestrator

/// The run's durations.
#[derive(Debug, Clone, Copy)]
struct Plan {
    storm_s: u64,
    flood_s: u64,
    after_s: u64,
    /// Replies to the flood's forged sources leave at the gateway's switch port, as from a NIC
    /// (`Sandbox::sink_flood_replies`); `--no-sink`: bridged to the flooders, on the DUT core.
    sink: bool,
    /// The flooders' engine (`--flood-engine`): `live`, the default (the kernel replays frames
    /// through XDP: they reach the gateway with the headroom XDP needs, as frames from a NIC
    /// would, and are not copied; the generator's fastest), or `afxdp` (frames written from user
    /// space reach the gateway's veth as skbs without that headroom, and veth copies each
    /// before XDP sees it: the rig before 2026-12-05).
    flood_engine: &'static str,
    /// Hold `/dev/cpu_dma_latency` at 0 for the run (`--no-latency-qos`: leave it): the
    /// low-latency host setting a packet gateway runs with (tuned's `network-latency` profile
    /// does the same). Without it this VM's idle cores halt, and waking the gateway's NAPI
    /// thread from a halt takes long enough, at 0.7 Mpps, for gw0's 256-frame ring to overflow
    /// while the core is half idle (`perf record -C 1` during a flood: 47 % in
    /// `pv_native_safe_halt`). Both sides of the run, Sluice and the kernel, run with it.
    latency_qos: bool,
}

/// Asks the kernel to keep every core out of idle states with any wake-up latency (PM QoS,
/// `/dev/cpu_dma_latency` = 0) for as long as the returned file is open.
fn hold_cpu_latency() -> Result<std::fs::File, String> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/cpu_dma_latency")
        .map_err(|e| format!("/dev/cpu_dma_latency: {e} (or --no-latency-qos)"))?;
    f.write_all(&0i32.to_ne_bytes()).map_err(|e| format!("/dev/cpu_dma_latency: {e}"))?;
    Ok(f)
}

/// The whole benchmark: the sandbox, Sluice's storm, flood and forged ARP, the kernel's storm and
/// flood, the table and RESULT.
fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP, nftables)".into());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = Plan {
        storm_s: flag(args, "--storm-seconds", if quick { 60 } else { 300 }).max(SLICE_S),
        flood_s: flag(args, "--flood-seconds", if quick { 20 } else { 60 }).max(1),
        after_s: flag(args, "--after-seconds", if quick { 20 } else { 60 }).max(1),
        sink: !args.iter().any(|a| a == "--no-sink"),
        flood_engine: match text_flag(args, "--flood-engine").as_deref() {
            None | Some("live") => "live",
            Some("afxdp") => "afxdp",
            Some(other) => return Err(format!("--flood-engine {other:?}: afxdp or live")),
        },
        latency_qos: !args.iter().any(|a| a == "--no-latency-qos"),
    };
    // Held until the run ends: closing the file lifts the request.
    let _qos = if plan.latency_qos { Some(hold_cpu_latency()?) } else { None };
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&INTERRUPTED)).map_err(|e| e.to_string())?;
    }
    let mut b = Bench::new()?;
    if plan.sink {
        b.sb.sink_flood_replies().map_err(|e| format!("the flood replies' sink: {e}"))?;
    }
    if plan.flood_engine == "live" {
        // The live engine transmits with XDP_TX: a veth's peer takes such frames only with an
        // XDP program of its own (docs/af-xdp.md, pitfall 3).
        for (role, ..) in FLOODERS {
            b.sb.pass_on_switch_port(role)
                .map_err(|e| format!("{role}: XDP_PASS on its switch port: {e}"))?;
        }
    }
    eprintln!("sandbox up; Sluice: control and the gateway (worker on core {DUT_CORE}) …");
    b.start_sluice()?;
    let faults = b.faults()?;
    if args.iter().any(|a| a == "--faults-only") {
        let mut m = Map::new();
        faults.result(&mut m);
        println!("RESULT {}", Value::Object(m));
        return Ok(());
    }
    let storm = b.storm("Sluice", plan.storm_s, true)?;
    let flood = b.flood("Sluice", plan, true)?;
    let arp = b.forged_arp()?;
    eprintln!("the kernel: gateway stopped, kube-proxy's nftables rules in gw …");
    b.start_kernel()?;
    let nft_storm = b.storm("nftables", plan.storm_s, false)?;
    let nft_flood = b.flood("nftables", plan, false)?;
    let report = Report { plan, storm, nft_storm, flood, nft_flood, arp, faults };
    report.print();
    println!("RESULT {}", Value::Object(report.result()));
    Ok(())
}

/// Child processes the bench started itself (not through the sandbox), killed on drop.
#[derive(Default)]
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The sandbox and what runs in it. Field order is drop order: the bench's own children go
/// first, then the sandbox stops its processes and deletes every namespace.
struct Bench {
    kids: Kids,
    sb: Sandbox,
    gw_mac: String,
    /// The certificate of foo.bar.com's TLS Secret, which the hostile TLS clients trust.
    ca: std::path::PathBuf,
}

/// Control's manifest: a NodePort and a LoadBalancer VIP, both on the one backend.
const MANIFEST: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: edge
  namespace: sluice-system
spec:
  addresses:
    - 198.18.100.10-198.18.100.19
---
apiVersion: v1
kind: Service
metadata:
  name: storm
spec:
  type: NodePort
  selector:
    app: web
  ports:
    - name: http
      port: 8080
      targetPort: 8080
      nodePort: 31080
---
apiVersion: v1
kind: Service
metadata:
  name: edge
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.100.10
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: edge-local
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.100.13
  externalTrafficPolicy: Local
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels:
    app: web
spec:
  nodeName: sluice-gw
  containers:
    - name: app
      image: registry.example/app:1
      ports:
        - name: http
          containerPort: 8080
status:
  phase: Running
  podIP: 198.18.1.1
  conditions:
    - type: Ready
      status: "True"
"#;

/// The Ingresses of scenario 5, on the one backend (`storm`'s port 8080), and the upstream
/// that reads whole bodies (the Pod's port 9000).
const L7_MANIFEST: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: sluice
spec:
  controller: sluice.io/ingress
---
apiVersion: v1
kind: Service
metadata:
  name: reader
spec:
  selector:
    app: web
  ports:
    - port: 9000
      targetPort: 9000
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: plain
spec:
  ingressClassName: sluice
  rules:
    - host: plain.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: storm, port: {number: 8080}}}}
          - {path: /read, pathType: Prefix, backend: {service: {name: reader, port: {number: 9000}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: tls
spec:
  ingressClassName: sluice
  tls:
    - hosts: [foo.bar.com]
      secretName: tls-secret
  rules:
    - host: foo.bar.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: storm, port: {number: 8080}}}}
"#;

/// kube-proxy's nftables rules (as its nftables mode writes them) for the two Services, the
/// parts this path exercises: the VIP dispatched by address, protocol and port, the NodePort by
/// `fib daddr type local` and port, the endpoint chosen with `numgen random` (one endpoint),
/// DNAT, and masquerade of everything marked (Cluster traffic policy).
fn nft_rules() -> String {
    format!(
        "table ip kube-proxy {{\n\
         \x20 map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; elements = {{ {VIP} . tcp . {VIP_PORT} : goto external-edge }} }}\n\
         \x20 map service-nodeports {{ type inet_proto . inet_service : verdict; elements = {{ tcp . {NODE_PORT} : goto external-storm }} }}\n\
         \x20 chain nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}\n\
         \x20 chain nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; jump masquerading; }}\n\
         \x20 chain masquerading {{ meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000; masquerade fully-random; }}\n\
         \x20 chain mark-for-masquerade {{ meta mark set meta mark | 0x4000; }}\n\
         \x20 chain services {{ ip daddr . meta l4proto . th dport vmap @service-ips; fib daddr type local meta l4proto . th dport vmap @service-nodeports; }}\n\
         \x20 chain external-storm {{ jump mark-for-masquerade; goto svc-storm; }}\n\
         \x20 chain external-edge {{ jump mark-for-masquerade; goto svc-edge; }}\n\
         \x20 chain svc-storm {{ numgen random mod 1 vmap {{ 0 : goto ep-web-1 }}; }}\n\
         \x20 chain svc-edge {{ numgen random mod 1 vmap {{ 0 : goto ep-web-1 }}; }}\n\
         \x20 chain ep-web-1 {{ ip saddr {BACKEND} jump mark-for-masquerade; meta l4proto tcp dnat to {BACKEND}:{BACKEND_PORT}; }}\n\
         }}\n"
    )
}

/// The gateway's counters the tables report (counters, then drops by reason).
const COUNTERS: [&str; 9] = [
    "rx_frames",
    "new_flows",
    "snat_reclaimed",
    "snat_reused",
    "snat_pool_fallbacks",
    "neighbor_replies",
    "forwarded",
    "xsk_rx_ring_full",
    "xsk_rx_dropped",
];
/// The TCP counters of the clients' kernels the notes report (`nstat`): connections opened,
/// SYNs sent again, connections refused or reset while opening, RSTs sent (a client in SYN-SENT
/// answers a TIME_WAIT's ACK with one).
const CLIENT_TCP: [&str; 4] = ["TcpActiveOpens", "TcpExtTCPSynRetrans", "TcpAttemptFails", "TcpOutRsts"];
/// The backend kernel's: connections accepted, SYNs a TIME_WAIT refused by its PAWS check (it
/// answers them with an ACK of the old connection), SYN cookies sent, SYNs dropped at the
/// listener, segments sent again.
const BACKEND_TCP: [&str; 5] =
    ["TcpPassiveOpens", "TcpExtPAWSTimewait", "TcpExtSyncookiesSent", "TcpExtListenDrops", "TcpRetransSegs"];
/// A reading of the gateway's counters ([`COUNTERS`], then its drops by reason, every reason
/// control's metrics name) and its flows gauge.
#[derive(Debug, Clone, Default)]
struct Counts {
    values: Vec<(String, u64)>,
    flows: u64,
}

impl Counts {
    fn get(&self, name: &str) -> u64 {
        self.values.iter().find(|(n, _)| *n == name).map_or(0, |x| x.1)
    }

    /// What changed since `before` (the gauge as it is now).
    fn since(&self, before: &Counts) -> Counts {
        Counts {
            values: self.values.iter().map(|(n, v)| (n.clone(), v.saturating_sub(before.get(n)))).collect(),
            flows: self.flows,
        }
    }

    fn text(&self) -> String {
        let mut parts: Vec<String> =
            self.values.iter().filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n} {v}")).collect();
        parts.push(format!("flows (gauge) {}", self.flows));
        parts.join(", ")
    }
}

/// One storm slice: what every client's wrk said, summed.
#[derive(Debug, Clone, Default)]
struct Slice {
    requests: u64,
    /// wrk's own duration, the longest of the clients'.
    seconds: f64,
    connect_errors: u64,
    other_errors: u64,
    non_2xx: u64,
    /// Sluice: its counters over the slice; the kernel: `conntrack -C` at its end.
    note: String,
    /// Sluice's `snat_exhausted` drops over the slice (0 on the kernel's side).
    exhausted: u64,
}

impl Slice {
    fn cps(&self) -> f64 {
        self.requests as f64 / SLICE_S as f64
    }
}

/// A storm: its slices, and what the clients' and the backend's kernels counted over it.
#[derive(Debug, Clone, Default)]
struct Storm {
    slices: Vec<Slice>,
    tcp: String,
}

/// A flood's figures.
#[derive(Debug, Clone, Default)]
struct Flood {
    /// Frames each flooder sent, and its seconds.
    sent: Vec<(u64, f64)>,
    before: Tally,
    during: Tally,
    after: Tally,
    /// Gateway VmRSS in kB (Sluice): before, the max during and after, at the end.
    rss_kb: Option<(u64, u64, u64)>,
    /// Sluice's counters over the flood and the time after; the most flows seen.
    counts: Option<(Counts, u64)>,
    /// The kernel: the most conntrack entries seen, and nf_conntrack_max.
    conntrack: Option<(u64, u64)>,
    /// The legitimate client's and the backend's kernels' TCP counters, and the backlog drops.
    tcp: String,
}

impl Flood {
    fn pps(&self) -> f64 {
        self.sent.iter().map(|&(n, s)| if s > 0.0 { n as f64 / s } else { 0.0 }).sum()
    }
}

/// The forged ARP's figures.
#[derive(Debug, Clone, Default)]
struct Arp {
    ip_frames: u64,
    arp_frames: u64,
    requests_sent: u64,
    connections: Tally,
    /// The kernel's neighbour entry for the backend in gw, before and after.
    kernel_neigh: (String, String),
    neighbor_replies: u64,
}

impl Bench {
    /// The sandbox: one backend, the storm clients, the flooders and the forger; RPS on gw0 to
    /// the DUT core; routes for the flood's sources; nginx on the load core.
    fn new() -> Result<Bench, String> {
        let backends = [Backend::http("web-1", BACKEND, &[BACKEND_PORT])];
        let sb = Sandbox::new(&backends).map_err(|e| format!("sandbox: {e}"))?;
        let mut b = Bench { kids: Kids::default(), sb, gw_mac: String::new(), ca: std::path::PathBuf::new() };
        for i in 1..=STORM_CLIENTS {
            b.sb.add_client(&format!("s{i}"), &format!("198.18.0.{}", 100 + i)).map_err(|e| e.to_string())?;
        }
        for (role, addr, src, ..) in FLOODERS {
            b.sb.add_client(role, addr).map_err(|e| e.to_string())?;
            b.gw(&["ip", "route", "add", &format!("{src}/20"), "via", addr])?;
            // The flood's SYN-ACKs come back to the flooders (to Sluice's cookies and the
            // kernel's alike): dropped at the door, they cost the load core no kernel stack.
            b.sb.drop_ingress(role, "c0").map_err(|e| format!("{role}: XDP_DROP on c0: {e}"))?;
        }
        b.sb.add_client(FORGER.0, FORGER.1).map_err(|e| e.to_string())?;
        let mask = format!("{:x}", 1u64 << DUT_CORE);
        b.gw(&["sh", "-c", &format!("echo {mask} > /sys/class/net/gw0/queues/rx-0/rps_cpus")])?;
        b.gw_mac = b.sb.gateway_mac();
        b.pin_nginx()?;
        let dir = b.sb.dir().to_path_buf();
        let (cert, key) = sluice_sandbox::tls::certificate(&dir, "foo.bar.com", "foo.bar.com")
            .map_err(|e| format!("certificate: {e}"))?;
        let secret = sluice_sandbox::tls::tls_secret("tls-secret", &cert, &key).map_err(|e| e.to_string())?;
        b.ca = dir.join("foo.bar.com.crt");
        let reader = repo_root().join("tests/hostile/upstream.py").to_string_lossy().into_owned();
        b.sb.spawn("b0", "reader", &["/usr/bin/python3", &reader, BACKEND, &READER_PORT.to_string()])
            .map_err(|e| format!("the reading upstream: {e}"))?;
        b.sb.set_manifests(
            &[],
            &[("faults.yaml", MANIFEST), ("l7.yaml", L7_MANIFEST), ("tls-secret.yaml", &secret)],
        )
        .map_err(|e| e.to_string())?;
        Ok(b)
    }

    /// Runs a command in the gateway namespace that must succeed.
    fn gw(&self, args: &[&str]) -> Result<(), String> {
        let out = self.sb.exec("gw", args).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("gw: {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Pins the backend's nginx (master and workers) to the load core.
    fn pin_nginx(&self) -> Result<(), String> {
        let master = self.sb.pid("nginx-web-1").ok_or("nginx of web-1 is not running")?;
        let children =
            std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        for pid in std::iter::once(master.to_string()).chain(children.split_whitespace().map(str::to_owned)) {
            let _ = run(&["taskset", "-pc", &LOAD_CORE.to_string(), &pid]);
        }
        Ok(())
    }

    /// Control, the gateway (its worker on the DUT core, the default flow table), and one
    /// successful connection to each Service.
    fn start_sluice(&mut self) -> Result<(), String> {
        self.sb.start_control().map_err(|e| format!("control: {e}"))?;
        self.spawn_gateway()?;
        self.napi_on_dut_core()?;
        self.wait_serving(true)
    }

    /// Starts the gateway and waits until its program is attached.
    fn spawn_gateway(&mut self) -> Result<(), String> {
        let args = self.gateway_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sb.spawn("gw", "gateway", &args).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.sb.log("gateway").contains("XDP program attached") {
            let pid = self.sb.pid("gateway").unwrap_or(0);
            if Instant::now() > deadline || !alive(pid) {
                return Err(format!("the gateway did not start; its log:\n{}", self.sb.log("gateway")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// The gateway's command line: its worker on the DUT core, the default flow table, the
    /// Ingresses on [`L7`] (no access log; 2 s client timeouts, so that slow hostile clients
    /// are answered within their case's time), a handover socket of the run's own.
    fn gateway_args(&self) -> Vec<String> {
        let handover = self.sb.dir().join("handover.sock");
        [
            bin("sluice-gateway").to_string_lossy().as_ref(),
            "--iface",
            "gw0",
            "--table",
            self.sb.table().to_string_lossy().as_ref(),
            "--cores",
            &DUT_CORE.to_string(),
            "--l7-address",
            L7,
            "--no-access-log",
            "--client-header-timeout",
            CLIENT_TIMEOUT_S,
            "--client-body-timeout",
            CLIENT_TIMEOUT_S,
            "--handover-socket",
            handover.to_string_lossy().as_ref(),
            // The sandbox's own flow journals (removed with it).
            "--flow-journal",
            &format!("{}-flows", self.sb.table().display()),
            // The AF_XDP path its recorded results measured (the fast path is on by default on
            // veth since issue 15; benches/run l4 measures it).
            "--fast-path",
            "off",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Frames the switch's end of the gateway's veth transmitted to gw0, and those it dropped
    /// because gw0's receive ring was full (the gateway's receive path could not keep up).
    fn veth_into_gw(&self) -> (u64, u64) {
        let read = |f: &str| {
            self.sb
                .exec("sw", &["cat", &format!("/sys/class/net/s-gw/statistics/{f}")])
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .unwrap_or(0)
        };
        (read("tx_packets"), read("tx_dropped"))
    }

    /// Moves gw0's receive path — the XDP program (SYN cookies included) and the copy into the
    /// UMEM — onto the DUT core: threaded NAPI, its thread pinned there. Without it, veth runs
    /// them on the sender's core (docs/af-xdp.md, pitfall 5), where the flooders, the clients and
    /// nginx are, and the gateway's work would be charged to them. Threaded NAPI can be switched
    /// on only while an XDP program is attached, and stays on: the kernel's side keeps it (and
    /// its RPS to the same core).
    ///
    /// The switch's end of that veth (`s-gw`) is the wire: what the gateway transmits — the
    /// cookies' SYN-ACKs to the flood's sources above all — is received there and bridged on to
    /// the flooders. Its NAPI thread goes to the load core, as a NIC's transmit ring hands the
    /// frames to the wire and not to the gateway's core.
    fn napi_on_dut_core(&self) -> Result<(), String> {
        self.gw(&["sh", "-c", "echo 1 > /sys/class/net/gw0/threaded"])?;
        let sw = self
            .sb
            .exec("sw", &["sh", "-c", "echo 1 > /sys/class/net/s-gw/threaded"])
            .map_err(|e| e.to_string())?;
        if !sw.status.success() {
            return Err(format!("s-gw threaded NAPI: {}", String::from_utf8_lossy(&sw.stderr).trim()));
        }
        pin_threads("napi/gw0-", DUT_CORE)?;
        pin_threads("napi/s-gw-", LOAD_CORE)
    }

    /// Waits (20 s at most) until a GET from the client succeeds through each Service (and,
    /// with `l7`, through the plain Ingress).
    fn wait_serving(&self, l7: bool) -> Result<(), String> {
        let mut urls =
            vec![(format!("http://{GW_V4}:{NODE_PORT}/"), ""), (format!("http://{VIP}:{VIP_PORT}/"), "")];
        if l7 {
            urls.push((format!("http://{L7}/"), "Host: plain.example"));
        }
        for (url, host) in urls {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut args = vec!["-m", "2"];
            if !host.is_empty() {
                args.extend(["-H", host]);
            }
            while let Err(e) = self.sb.get_from("cl", &url, &args) {
                if Instant::now() > deadline {
                    return Err(format!(
                        "{url} does not answer: {e}\ngateway log:\n{}",
                        self.sb.log("gateway")
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// The kernel's side: the gateway stopped, forwarding on, the VIP local, kube-proxy's rules,
    /// empty conntrack and neighbour tables; serving checked.
    fn start_kernel(&mut self) -> Result<(), String> {
        self.sb.stop("gateway", rustix::process::Signal::TERM);
        // A stopped gateway leaves its program holding the service traffic: off with it.
        let g = bin("sluice-gateway").to_string_lossy().into_owned();
        let journal = format!("{}-flows", self.sb.table().display());
        self.gw(&[&g, "--iface", "gw0", "--flow-journal", &journal, "--release"])?;
        self.gw(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        self.gw(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        let rules = std::env::temp_dir().join(format!("sluice-faults-{}.nft", std::process::id()));
        std::fs::write(&rules, nft_rules()).map_err(|e| e.to_string())?;
        let loaded = self.gw(&["nft", "-f", &rules.to_string_lossy()]);
        let _ = std::fs::remove_file(&rules);
        loaded?;
        self.gw(&["conntrack", "-F"])
            .or_else(|e| if e.contains("0 flow entries") { Ok(()) } else { Err(e) })?;
        self.gw(&["ip", "neigh", "flush", "all"])?;
        let _ = self.sb.exec("cl", &["ip", "neigh", "flush", "all"]);
        self.wait_serving(false)
    }

    /// A reading of the gateway's counters.
    fn counts(&self) -> Counts {
        let page = self.sb.metrics();
        let sum = |prefix: &str| -> u64 {
            page.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        let mut values: Vec<(String, u64)> =
            COUNTERS.iter().map(|n| (n.to_string(), sum(&format!("sluice_gateway_{n}_total{{")))).collect();
        let mut drops = std::collections::BTreeMap::<String, u64>::new();
        for l in page.lines().filter(|l| l.starts_with("sluice_gateway_drops_total{")) {
            let reason = l.split("reason=\"").nth(1).and_then(|r| r.split('"').next());
            if let (Some(r), Some(v)) = (reason, l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok())) {
                *drops.entry(format!("drop {r}")).or_insert(0) += v;
            }
        }
        values.extend(drops);
        Counts { values, flows: sum("sluice_gateway_flows{") }
    }

    /// `names` of `nstat`, summed over the namespaces of `roles`.
    fn nstat(&self, roles: &[String], names: &[&'static str]) -> Vec<(&'static str, u64)> {
        let mut sums: Vec<(&'static str, u64)> = names.iter().map(|&n| (n, 0)).collect();
        for r in roles {
            let Ok(o) = self.sb.exec(r, &["nstat", "-asz"]) else { continue };
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let mut it = line.split_whitespace();
                let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) else {
                    continue;
                };
                if let Some(x) = sums.iter_mut().find(|(n, _)| *n == k) {
                    x.1 += v;
                }
            }
        }
        sums
    }

    /// The clients' ([`CLIENT_TCP`], summed over `roles`) and the backend's ([`BACKEND_TCP`])
    /// TCP counters now.
    fn tcp_stats(&self, roles: &[String]) -> Vec<(&'static str, u64)> {
        let mut v = self.nstat(roles, &CLIENT_TCP);
        v.extend(self.nstat(&["b0".to_owned()], &BACKEND_TCP));
        v
    }

    /// `conntrack -C` in gw.
    fn conntrack_count(&self) -> u64 {
        self.sb
            .exec("gw", &["conntrack", "-C"])
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(0)
    }

    /// Starts a process in a role's namespace, pinned to the load core, its output into `log`
    /// under the sandbox's temporary directory; owned by [`Kids`].
    fn spawn(&mut self, role: &str, log: &std::path::Path, args: &[&str]) -> Result<usize, String> {
        let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sb.ns(role), "taskset", "-c", &LOAD_CORE.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        self.kids.0.push(child);
        Ok(self.kids.0.len() - 1)
    }

    /// Whether kid `i` has exited.
    fn exited(&mut self, i: usize) -> bool {
        self.kids.0[i].try_wait().ok().flatten().is_some()
    }

    /// Waits for kid `i` to exit, `limit` at most (then SIGKILL); false if it was killed.
    fn wait_kid(&mut self, i: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.exited(i) {
            if Instant::now() > deadline {
                let _ = self.kids.0[i].kill();
                let _ = self.kids.0[i].wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Sends SIGTERM to kid `i` and waits for it (5 s, then SIGKILL).
    fn term_kid(&mut self, i: usize) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.kids.0[i].id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.wait_kid(i, Duration::from_secs(5));
    }

    /// A log file of the run (in the temporary directory; removed when the run ends).
    fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.sb.manifests().parent().unwrap_or(std::path::Path::new("/tmp")).join(name)
    }

    // --- 1. The storm -----------------------------------------------------------------------

    /// `seconds / 10` slices; in each every storm client runs `wrk -t1 -c4 -d10s` with
    /// `Connection: close` to the NodePort, all at once.
    fn storm(&mut self, side: &str, seconds: u64, sluice: bool) -> Result<Storm, String> {
        let slices = seconds.div_ceil(SLICE_S);
        eprintln!(
            "{side}: storm, {STORM_CLIENTS} clients × wrk -c{STORM_CONNS}, Connection: close, {slices} slices of {SLICE_S} s …"
        );
        let url = format!("http://{GW_V4}:{NODE_PORT}/");
        let (d, c) = (format!("{SLICE_S}s"), STORM_CONNS.to_string());
        let core = LOAD_CORE.to_string();
        let mut out = Vec::new();
        let roles: Vec<String> = (1..=STORM_CLIENTS).map(|i| format!("s{i}")).collect();
        let tcp0 = self.tcp_stats(&roles);
        for s in 0..slices {
            if interrupted() {
                return Err("interrupted".into());
            }
            let before = sluice.then(|| self.counts());
            let mut wrks = Vec::new();
            for i in 1..=STORM_CLIENTS {
                let ns = self.sb.ns(&format!("s{i}"));
                let child = Command::new("ip")
                    .args(["netns", "exec", &ns, "taskset", "-c", &core, "wrk", "-t1", "-c", &c, "-d", &d])
                    .args(["--timeout", "2s", "-H", "Connection: close", &url])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("wrk: {e}"))?;
                wrks.push(child);
            }
            let mut slice = Slice::default();
            for w in wrks {
                let o = w.wait_with_output().map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&o.stdout);
                let Some(r) = wrk::Report::parse(&text) else {
                    return Err(format!(
                        "wrk said nothing usable:\n{text}{}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                };
                slice.requests += r.requests;
                slice.seconds = slice.seconds.max(r.seconds);
                slice.connect_errors += r.connect_errors;
                slice.other_errors += r.other_errors;
                slice.non_2xx += r.non_2xx;
            }
            slice.note = match before {
                Some(b) => {
                    let d = self.counts().since(&b);
                    slice.exhausted = d.get("drop snat_exhausted");
                    d.text()
                }
                None => format!("conntrack {}", self.conntrack_count()),
            };
            eprintln!(
                "  {side} slice {:>2} ({:>3}–{:>3} s): {:>7.0} conn/s; connect errors {}, other {}, non-2xx {}; {}",
                s + 1,
                s * SLICE_S,
                (s + 1) * SLICE_S,
                slice.cps(),
                slice.connect_errors,
                slice.other_errors,
                slice.non_2xx,
                slice.note
            );
            out.push(slice);
        }
        let tcp = tcp_delta(&tcp0, &self.tcp_stats(&roles));
        eprintln!("  {side}: {tcp}");
        Ok(Storm { slices: out, tcp })
    }

    // --- 2. The flood -----------------------------------------------------------------------

    /// The legitimate clients from 2 s before the flood to `after_s` after it; the two flooders
    /// at full rate for `flood_s`; every second the gateway's RSS and flows (Sluice) or
    /// conntrack's size (the kernel).
    fn flood(&mut self, side: &str, plan: Plan, sluice: bool) -> Result<Flood, String> {
        eprintln!(
            "{side}: SYN flood, {} sources at full rate for {} s against the NodePort and the VIP, {LEGIT_RATE} legitimate connections/s, then {} s after …",
            FLOODERS.len() as u64 * u64::from(FLOOD_IPS * FLOOD_PORTS),
            plan.flood_s,
            plan.after_s
        );
        let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let pg = bin("sluice-pktgen").to_string_lossy().into_owned();
        let gw_pid = self.sb.pid("gateway").filter(|_| sluice);
        let rss = |pid: Option<u32>| pid.and_then(vm_rss_kb);
        let counts0 = sluice.then(|| self.counts());
        let roles = ["cl".to_owned()];
        let (tcp0, softnet0) = (self.tcp_stats(&roles), softnet_drops());
        let veth0 = self.veth_into_gw();
        let rss0 = rss(gw_pid);
        let lead_s = 2;
        let total_s = lead_s + plan.flood_s + plan.after_s;
        let targets = format!("{GW_V4}:{NODE_PORT},{VIP}:{VIP_PORT}");
        let clients_log = self.log_path(&format!("clients-{side}.log"));
        let cl = self.spawn(
            "cl",
            &clients_log,
            &[
                &me,
                "clients",
                "--targets",
                &targets,
                "--rate",
                &LEGIT_RATE.to_string(),
                "--seconds",
                &total_s.to_string(),
                "--timeout-ms",
                &LEGIT_TIMEOUT_MS.to_string(),
            ],
        )?;
        let t_clients = epoch_ms();
        std::thread::sleep(Duration::from_secs(lead_s));
        let (ips, ports, dur) = (FLOOD_IPS.to_string(), FLOOD_PORTS.to_string(), plan.flood_s.to_string());
        let mut gens = Vec::new();
        let mac = self.gw_mac.clone();
        let flood_start = epoch_ms();
        for (role, _, src, dst, dport, _) in FLOODERS {
            let log = self.log_path(&format!("pktgen-{side}-{role}.log"));
            let dport = dport.to_string();
            let args = [
                pg.as_str(),
                "send",
                "--iface",
                "c0",
                "--dst-mac",
                &mac,
                "--src-ip",
                src,
                "--src-ips",
                &ips,
                "--sport",
                "1024",
                "--sports",
                &ports,
                "--dst-ip",
                dst,
                "--dport",
                &dport,
                "--proto",
                "syn",
                "--rate",
                "max",
                "--duration",
                &dur,
                "--cores",
                "0",
                "--engine",
                plan.flood_engine,
                "--json",
            ];
            let i = self.spawn(role, &log, &args)?;
            gens.push((i, log));
        }
        let (mut rss_max, mut flows_max, mut ct_max) = (rss0.unwrap_or(0), 0u64, 0u64);
        let mut sample = |b: &Bench| {
            if let Some(kb) = rss(gw_pid) {
                rss_max = rss_max.max(kb);
            }
            if sluice {
                flows_max = flows_max.max(b.sb.gateway_gauge("flows"));
            } else {
                ct_max = ct_max.max(b.conntrack_count());
            }
        };
        let deadline = Instant::now() + Duration::from_secs(plan.flood_s + 30);
        while !gens.iter().all(|(i, _)| self.kids.0[*i].try_wait().ok().flatten().is_some()) {
            if interrupted() || Instant::now() > deadline {
                for (i, _) in &gens {
                    self.term_kid(*i);
                }
                if interrupted() {
                    return Err("interrupted".into());
                }
            }
            sample(self);
            std::thread::sleep(Duration::from_secs(1));
        }
        let flood_end = epoch_ms();
        let mut sent = Vec::new();
        for (_, log) in &gens {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let v: Value =
                text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).ok_or_else(|| {
                    format!("sluice-pktgen did not report; its log ({}):\n{text}", log.display())
                })?;
            sent.push((v["sent"].as_u64().unwrap_or(0), v["seconds"].as_f64().unwrap_or(0.0)));
        }
        eprintln!(
            "  flood over after {:.1} s; the {} s after it …",
            (flood_end - flood_start) as f64 / 1e3,
            plan.after_s
        );
        let deadline = Instant::now() + Duration::from_secs(plan.after_s + 30);
        while !self.exited(cl) {
            if interrupted() {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                self.term_kid(cl);
                break;
            }
            sample(self);
            std::thread::sleep(Duration::from_secs(1));
        }
        let rss_end = rss(gw_pid);
        let log = std::fs::read_to_string(&clients_log).unwrap_or_default();
        let a = attempts(&log);
        if a.is_empty() {
            return Err(format!("the legitimate clients reported nothing; their log:\n{log}"));
        }
        let after_end = flood_end + plan.after_s * 1000;
        let f = Flood {
            sent,
            before: Tally::of(a.iter().filter(|x| x.start_ms >= t_clients && x.start_ms < flood_start)),
            during: Tally::of(a.iter().filter(|x| x.start_ms >= flood_start && x.start_ms <= flood_end)),
            after: Tally::of(a.iter().filter(|x| x.start_ms > flood_end && x.start_ms <= after_end)),
            rss_kb: rss0.zip(rss_end).map(|(b, e)| (b, rss_max.max(e), e)),
            counts: counts0.map(|c0| (self.counts().since(&c0), flows_max)),
            tcp: {
                let veth = self.veth_into_gw();
                let (sent, dropped) = (veth.0.saturating_sub(veth0.0), veth.1.saturating_sub(veth0.1));
                format!(
                    "{}; the kernels' backlog drops (softnet_stat, every namespace) {}; frames the switch handed \
                     to gw0 {sent}, dropped for a full ring {dropped} ({:.2} %)",
                    tcp_delta(&tcp0, &self.tcp_stats(&roles)),
                    softnet_drops().saturating_sub(softnet0),
                    100.0 * dropped as f64 / (sent + dropped).max(1) as f64
                )
            },
            conntrack: (!sluice).then(|| {
                let max = self
                    .sb
                    .exec("gw", &["sysctl", "-n", "net.netfilter.nf_conntrack_max"])
                    .ok()
                    .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                    .unwrap_or(0);
                (ct_max, max)
            }),
        };
        eprintln!(
            "  {side}: offered {:.0} SYN/s; legitimate: during {}, after {}",
            f.pps(),
            f.during.text(),
            f.after.text()
        );
        Ok(f)
    }

    // --- 3. The forged ARP ------------------------------------------------------------------

    /// Connections to the VIP (the backend's neighbour known), the forger's three requests, 100
    /// connections to the VIP, and what reached the forger.
    /// Scenario 4: control killed and started again, then the link down and up, under
    /// connections.
    fn faults(&mut self) -> Result<Faults, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let targets = format!("{GW_V4}:{NODE_PORT},{VIP}:{VIP_PORT}");
        let rate = FAULT_RATE.to_string();
        eprintln!("Sluice: control killed with SIGKILL and started again under {FAULT_RATE} connections/s …");
        let log = self.log_path("clients-control-kill.log");
        let args = [
            &me[..],
            "clients",
            "--targets",
            &targets,
            "--rate",
            &rate,
            "--seconds",
            "10",
            "--timeout-ms",
            "2000",
        ];
        let cl = self.spawn("cl", &log, &args)?;
        std::thread::sleep(Duration::from_secs(3));
        self.sb.stop("control", rustix::process::Signal::KILL).ok_or("control was not running")?;
        std::thread::sleep(Duration::from_secs(2));
        self.sb.start_control().map_err(|e| format!("control again: {e}"))?;
        self.wait_kid(cl, Duration::from_secs(30));
        let control_kill = Tally::of(attempts(&std::fs::read_to_string(&log).unwrap_or_default()).iter());
        eprintln!("  connections: {}", control_kill.text());
        eprintln!("Sluice: the gateway's link down for 0.5 s and up, connections every 10 ms …");
        let log = self.log_path("clients-link.log");
        let args = [
            &me[..],
            "clients",
            "--targets",
            &targets,
            "--rate",
            "100",
            "--seconds",
            "6",
            "--timeout-ms",
            "1000",
        ];
        let cl = self.spawn("cl", &log, &args)?;
        std::thread::sleep(Duration::from_secs(1));
        let gw = self.sb.ns("gw");
        must(&["ip", "-n", &gw, "link", "set", "gw0", "down"]).map_err(|e| format!("link down: {e}"))?;
        std::thread::sleep(Duration::from_millis(500));
        must(&["ip", "-n", &gw, "link", "set", "gw0", "up"]).map_err(|e| format!("link up: {e}"))?;
        let up_ms = epoch_ms();
        self.wait_kid(cl, Duration::from_secs(30));
        let a = attempts(&std::fs::read_to_string(&log).unwrap_or_default());
        let link_recovery_ms =
            a.iter().filter(|x| x.ok && x.start_ms >= up_ms).map(|x| x.start_ms - up_ms).min();
        let after_up =
            Tally::of(a.iter().filter(|x| link_recovery_ms.is_some_and(|r| x.start_ms >= up_ms + r)));
        eprintln!(
            "  recovered {} ms after the link came up; connections from then: {}",
            link_recovery_ms.map_or("never".into(), |r| r.to_string()),
            after_up.text()
        );
        self.wait_serving(true)?;
        let restarts = [rustix::process::Signal::TERM, rustix::process::Signal::KILL]
            .into_iter()
            .map(|sig| self.restart(sig))
            .collect::<Result<Vec<_>, _>>()?;
        let (upgrade, drained_ms) = self.l7_upgrade()?;
        let hostile = self.l7_hostile()?;
        Ok(Faults { control_kill, link_recovery_ms, after_up, restarts, upgrade, drained_ms, hostile })
    }

    /// The gateway stopped with `sig` and started again under open downloads and a ping probe.
    fn restart(&mut self, sig: rustix::process::Signal) -> Result<Restart, String> {
        let how = if sig == rustix::process::Signal::KILL { "SIGKILL" } else { "SIGTERM" };
        eprintln!(
            "Sluice: the gateway restarted ({how}) under {RESTART_DOWNLOADS} FullNAT and {RESTART_DOWNLOADS} DNAT \
             downloads, pinging the VIP every {PROBE_INTERVAL_MS} ms …"
        );
        let log = self.log_path(&format!("ping-{how}.log"));
        let interval = format!("{}", PROBE_INTERVAL_MS as f64 / 1000.0);
        let ping = self.spawn("cl", &log, &["ping", "-n", "-i", &interval, "-W", "1", "-c", "600", VIP])?;
        let cl = self.sb.ns("cl");
        let urls = [format!("http://{GW_V4}:{NODE_PORT}/big"), format!("http://{DNAT_VIP}/big")];
        let downloads: Vec<_> = urls
            .iter()
            .flat_map(|u| std::iter::repeat_n(u.clone(), RESTART_DOWNLOADS))
            .map(|url| {
                let cl = cl.clone();
                std::thread::spawn(move || {
                    let out = Command::new("ip")
                        .args(["netns", "exec", &cl, "curl", "-sS", "-m", "40", "-o", "/dev/null"])
                        .args(["-w", "%{size_download}", &url])
                        .output();
                    let whole = out.as_ref().is_ok_and(|o| {
                        o.status.success()
                            && String::from_utf8_lossy(&o.stdout).trim() == (2u64 << 20).to_string()
                    });
                    (url, whole)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let t0 = Instant::now();
        self.sb.stop("gateway", sig).ok_or("the gateway was not running")?;
        self.spawn_gateway()?;
        let back_ms = t0.elapsed().as_millis() as u64;
        let mut lost = Vec::new();
        for d in downloads {
            let (url, whole) = d.join().map_err(|_| "a download thread panicked")?;
            if !whole {
                lost.push(url);
            }
        }
        self.wait_kid(ping, Duration::from_secs(20));
        let gap_ms = longest_gap(&std::fs::read_to_string(&log).unwrap_or_default()) * PROBE_INTERVAL_MS;
        let carried = self.sb.log("gateway").contains("carrying over");
        eprintln!(
            "  back {back_ms} ms after the stop; longest gap in the pings {gap_ms} ms; downloads lost {} of {} {:?}; \
             flows carried over: {carried}",
            lost.len(),
            2 * RESTART_DOWNLOADS,
            lost
        );
        self.wait_serving(true)?;
        Ok(Restart { how, gap_ms, back_ms, lost: lost.len(), downloads: 2 * RESTART_DOWNLOADS })
    }

    // --- 5. The L7 stage: upgrades, hostile clients -------------------------------------------

    /// Starts the well-behaved L7 clients for `seconds` in `cl`: `wrk -t1 -c4` keep-alive and
    /// `Connection: close` over HTTP (plain.example) and HTTPS (foo.bar.com), and `curl` over
    /// HTTP/2 (foo.bar.com, 4 streams at a time). Returns (kid, kind, log) of each.
    fn l7_clients(
        &mut self,
        seconds: u64,
        tag: &str,
    ) -> Result<Vec<(usize, &'static str, std::path::PathBuf)>, String> {
        let d = format!("{seconds}s");
        let mut started = Vec::new();
        for (name, scheme, host, close) in [
            ("http keep-alive", "http", "plain.example", false),
            ("https keep-alive", "https", "foo.bar.com", false),
            ("http new connections", "http", "plain.example", true),
            ("https new connections", "https", "foo.bar.com", true),
        ] {
            let log = self.log_path(&format!("l7-{tag}-{}.log", name.replace(' ', "-")));
            let host = format!("Host: {host}");
            let url = format!("{scheme}://{L7}/");
            let mut args = vec!["wrk", "-t1", "-c4", "-d", &d, "--timeout", "10s", "-H", &host];
            if close {
                args.extend(["-H", "Connection: close"]);
            }
            args.push(&url);
            let kid = self.spawn("cl", &log, &args)?;
            started.push((kid, name, log));
        }
        // HTTP/2 (ALPN h2, foo.bar.com): curl, 200 requests multiplexed 4 at a time on one
        // connection per run, runs back to back for `seconds`. Not h2load: it counts as failed
        // the requests it declines to send once it has seen a GOAWAY
        // (`process_request_failure`), which every graceful shutdown sends; curl sends them on
        // a new connection, as a client should. Not h2c: Debian's curl 7.88 fails every
        // request after the first on a reused prior-knowledge connection (curl issue 10634).
        let log = self.log_path(&format!("l7-{tag}-h2.log"));
        let ca = self.ca.to_string_lossy().into_owned();
        let script = format!(
            "end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do \
             curl -sS --no-progress-meter -Z --parallel-max 4 --http2 --cacert {ca} \
             --resolve foo.bar.com:443:{L7} -m 10 -w 'code=%{{http_code}}\\n' \
             'https://foo.bar.com/?[1-200]'; done"
        );
        let kid = self.spawn("cl", &log, &["sh", "-c", &script])?;
        started.push((kid, "h2", log));
        Ok(started)
    }

    /// Waits for the clients of [`Bench::l7_clients`] and adds up what they report.
    fn l7_collect(&mut self, clients: Vec<(usize, &'static str, std::path::PathBuf)>, into: &mut L7Load) {
        for (kid, name, log) in clients {
            self.wait_kid(kid, Duration::from_secs(L7_SLICE_S * 4 + 30));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            into.add(name, &text);
        }
    }

    /// Starts gateway process `to` (the same command line) and waits until it has taken the
    /// listeners over from `from` and `from` has drained and exited; returns how long `from`
    /// took to exit once `to` served (ms).
    fn upgrade(&mut self, from: &str, to: &str) -> Result<u64, String> {
        let args = self.gateway_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sb.spawn("gw", to, &args).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.sb.log(to).contains("the old gateway is draining") {
            if Instant::now() > deadline {
                return Err(format!("{to} did not take over; its log:\n{}", self.sb.log(to)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let served = Instant::now();
        let pid = self.sb.pid(from).unwrap_or(0);
        while alive(pid) {
            if served.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{from} did not exit after the handover; its log:\n{}",
                    self.sb.log(from)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let ms = served.elapsed().as_millis() as u64;
        let log = self.sb.log(from);
        let status = self.sb.stop(from, rustix::process::Signal::TERM);
        if !status.is_some_and(|s| s.success()) {
            return Err(format!("{from} exited with {status:?}; its log:\n{log}"));
        }
        Ok(ms)
    }

    /// The well-behaved L7 clients across two upgrades (`gateway` → `gateway-next` →
    /// `gateway`, so the later scenarios find the gateway under its name).
    fn l7_upgrade(&mut self) -> Result<(L7Load, Vec<u64>), String> {
        eprintln!(
            "Sluice: L7 clients (wrk HTTP/HTTPS keep-alive and new connections, curl HTTP/2) across two upgrades …"
        );
        let clients = self.l7_clients(15, "upgrade")?;
        std::thread::sleep(Duration::from_secs(3));
        let mut drained = vec![self.upgrade("gateway", "gateway-next")?];
        std::thread::sleep(Duration::from_secs(2));
        drained.push(self.upgrade("gateway-next", "gateway")?);
        let mut load = L7Load::default();
        self.l7_collect(clients, &mut load);
        eprintln!("  old gateways exited {drained:?} ms after the new one served; clients: {}", load.text());
        self.napi_on_dut_core()?;
        self.wait_serving(true)?;
        Ok((load, drained))
    }

    /// The well-behaved L7 clients, in slices of [`L7_SLICE_S`], while every hostile case of
    /// `tests/hostile/hostile.py` runs (bounded: 400 s).
    fn l7_hostile(&mut self) -> Result<L7Load, String> {
        eprintln!(
            "Sluice: L7 clients while hostile.py runs every hostile case of tests/tests/l7_hostile.rs …"
        );
        let script = repo_root().join("tests/hostile/hostile.py").to_string_lossy().into_owned();
        let log = self.log_path("hostile.log");
        let ca = self.ca.to_string_lossy().into_owned();
        let timeouts = self.sb.gateway_counter("l7_client_timeouts");
        let hostile =
            self.spawn("cl", &log, &["timeout", "400", "/usr/bin/python3", &script, L7, &ca, "all"])?;
        let mut load = L7Load::default();
        let start = Instant::now();
        while !self.exited(hostile) && start.elapsed() < Duration::from_secs(420) && !interrupted() {
            let clients = self.l7_clients(L7_SLICE_S, "hostile")?;
            self.l7_collect(clients, &mut load);
        }
        self.wait_kid(hostile, Duration::from_secs(30));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let cases = text.lines().filter(|l| l.contains(' ')).count();
        if !text.lines().any(|l| l == "done") {
            return Err(format!("hostile.py did not finish; its log:\n{text}"));
        }
        eprintln!(
            "  {cases} hostile case(s) in {:.0} s; the other clients: {}",
            start.elapsed().as_secs_f64(),
            load.text()
        );
        // The hostile cases' slow clients make 4 (slow_head, silent, slow_body,
        // slow_tls_handshake); more would be well-behaved clients cut off.
        let timeouts = self.sb.gateway_counter("l7_client_timeouts").saturating_sub(timeouts);
        eprintln!("  client timeouts the gateway counted meanwhile: {timeouts} (the hostile cases make 4)");
        Ok(load)
    }

    fn forged_arp(&mut self) -> Result<Arp, String> {
        eprintln!(
            "Sluice: forged ARP (who-has {VIP} tell {BACKEND}, from the forger's MAC), then 100 connections …"
        );
        let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let vip = format!("{VIP}:{VIP_PORT}");
        for _ in 0..5 {
            let _ = self.sb.get_from("cl", &format!("http://{vip}/"), &["-m", "2"]);
        }
        let neigh = |b: &Bench| {
            b.sb.exec("gw", &["ip", "neigh", "show", BACKEND])
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let neigh_before = neigh(self);
        let replies0 = self.sb.gateway_counter("neighbor_replies");
        let forge_log = self.log_path("forge.log");
        let fg = self.spawn(
            FORGER.0,
            &forge_log,
            &[&me, "forge", "--iface", "c0", "--sender-ip", BACKEND, "--target-ip", VIP, "--seconds", "60"],
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&forge_log).unwrap_or_default().contains("forged") {
            if self.exited(fg) || Instant::now() > deadline {
                return Err(format!(
                    "the forger did not start; its log:\n{}",
                    std::fs::read_to_string(&forge_log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let clients_log = self.log_path("clients-arp.log");
        let cl = self.spawn(
            "cl",
            &clients_log,
            &[&me, "clients", "--targets", &vip, "--rate", "50", "--count", "100", "--timeout-ms", "2000"],
        )?;
        self.wait_kid(cl, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(500));
        self.term_kid(fg);
        let text = std::fs::read_to_string(&forge_log).unwrap_or_default();
        let v: Value = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("the forger did not report; its log:\n{text}"))?;
        let connections =
            Tally::of(attempts(&std::fs::read_to_string(&clients_log).unwrap_or_default()).iter());
        let arp = Arp {
            ip_frames: v["ip_frames"].as_u64().unwrap_or(0),
            arp_frames: v["arp_frames"].as_u64().unwrap_or(0),
            requests_sent: v["requests_sent"].as_u64().unwrap_or(0),
            connections,
            kernel_neigh: (neigh_before, neigh(self)),
            neighbor_replies: self.sb.gateway_counter("neighbor_replies").saturating_sub(replies0),
        };
        eprintln!(
            "  IP frames at the forger's MAC: {}; ARP frames: {}; connections {}",
            arp.ip_frames,
            arp.arp_frames,
            arp.connections.text()
        );
        Ok(arp)
    }
}

/// Scenario 4's and 5's figures.
struct Faults {
    /// The connections made while control was killed and started again.
    control_kill: Tally,
    /// From the link coming up to the first connection that succeeded after it (`None`: none).
    link_recovery_ms: Option<u64>,
    /// The connections from that one on.
    after_up: Tally,
    /// The gateway restarted with SIGTERM, then SIGKILL.
    restarts: Vec<Restart>,
    /// The well-behaved L7 clients across the two upgrades.
    upgrade: L7Load,
    /// For each upgrade, how long the old gateway took to drain and exit (ms).
    drained_ms: Vec<u64>,
    /// The well-behaved L7 clients while the hostile ones ran.
    hostile: L7Load,
}

/// One restart of the gateway under traffic.
struct Restart {
    /// The signal that stopped it.
    how: &'static str,
    /// The longest run of unanswered pings, in ms.
    gap_ms: u64,
    /// From the stop to the new gateway's program attached.
    back_ms: u64,
    /// Downloads that did not complete whole, of `downloads`.
    lost: usize,
    downloads: usize,
}

/// The longest run of pings with no answer in `ping -n` output (`icmp_seq=N` of each answer),
/// counted in intervals from the last answer before it to the first after (1 when none was
/// missed).
fn longest_gap(log: &str) -> u64 {
    let mut seqs: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// What well-behaved L7 clients reported: requests done and failed, per kind of client.
#[derive(Debug, Default)]
struct L7Load {
    /// (kind, requests, failed), summed over runs.
    kinds: Vec<(&'static str, u64, u64)>,
    /// Runs whose output could not be read (each counts as a failure).
    unreadable: u64,
}

impl L7Load {
    /// Adds one client's output: wrk's (`N requests in`, socket errors — connect errors are
    /// refused connections —, non-2xx/3xx responses) or the HTTP/2 loop's ([`curl_counts`]).
    fn add(&mut self, kind: &'static str, text: &str) {
        let parsed = if kind == "h2" { curl_counts(text) } else { wrk_counts(text) };
        let Some((done, failed)) = parsed else {
            self.unreadable += 1;
            eprintln!("  {kind}: no report:\n{text}");
            return;
        };
        if failed > 0 {
            // What failed, as the client says it: wrk's socket errors and non-2xx line, curl's
            // error messages and codes other than 200.
            let mut said: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("Socket errors") || l.starts_with("Non-2xx"))
                .map(str::to_owned)
                .collect();
            for (i, _) in text.match_indices("curl: (").chain(text.match_indices("code=")).take(2000) {
                let end = text[i..].find('\n').map_or(text.len(), |e| i + e);
                let what = &text[i..end];
                if what != "code=200" && !said.iter().any(|s| s == what) && said.len() < 12 {
                    said.push(what.to_owned());
                }
            }
            eprintln!("  {kind}: {failed} failed: {}", said.join("; "));
        }
        match self.kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += done;
                k.2 += failed;
            }
            None => self.kinds.push((kind, done, failed)),
        }
    }

    fn requests(&self) -> u64 {
        self.kinds.iter().map(|k| k.1).sum()
    }

    fn failed(&self) -> u64 {
        self.kinds.iter().map(|k| k.2).sum::<u64>() + self.unreadable
    }

    fn text(&self) -> String {
        let per: Vec<String> = self.kinds.iter().map(|(k, d, f)| format!("{k} {d} ({f} failed)")).collect();
        format!("{} requests, {} failed — {}", self.requests(), self.failed(), per.join(", "))
    }
}

/// wrk's report: (requests, failed: socket errors and responses over 399).
fn wrk_counts(text: &str) -> Option<(u64, u64)> {
    let r = wrk::Report::parse(text)?;
    Some((r.requests, r.connect_errors + r.other_errors + r.non_2xx))
}

/// The HTTP/2 loop's report: (requests answered 200, the others: curl's `code=` marks that are
/// not 200 — `000` for a request that got no answer — and its error messages). Counted as
/// marks, not lines: the parallel transfers' bodies and curl's messages share the log.
fn curl_counts(text: &str) -> Option<(u64, u64)> {
    let marks = text.matches("code=").count() as u64;
    if marks == 0 {
        return None;
    }
    let ok = text.matches("code=200").count() as u64;
    let errors = text.matches("curl: (").count() as u64;
    Some((ok, marks - ok + errors))
}

impl Faults {
    /// Its RESULT keys.
    fn result(&self, m: &mut Map<String, Value>) {
        m.insert("control_kill_failed".into(), json!(self.control_kill.tried - self.control_kill.ok));
        m.insert("control_kill_connections".into(), json!(self.control_kill.tried));
        m.insert("link_recovery_ms".into(), json!(self.link_recovery_ms));
        m.insert("link_failed_after_recovery".into(), json!(self.after_up.tried - self.after_up.ok));
        m.insert(
            "restart_established_lost".into(),
            json!(self.restarts.iter().map(|r| r.lost).sum::<usize>()),
        );
        m.insert(
            "restart_established".into(),
            json!(self.restarts.iter().map(|r| r.downloads).sum::<usize>()),
        );
        m.insert("restart_gap_ms".into(), json!(self.restarts.iter().map(|r| r.gap_ms).max()));
        for r in &self.restarts {
            m.insert(format!("restart_{}_back_ms", r.how.to_lowercase()), json!(r.back_ms));
        }
        m.insert("l7_upgrade_failed".into(), json!(self.upgrade.failed()));
        m.insert("l7_upgrade_requests".into(), json!(self.upgrade.requests()));
        m.insert("l7_upgrade_drained_ms".into(), json!(self.drained_ms));
        m.insert("l7_hostile_other_clients_failed".into(), json!(self.hostile.failed()));
        m.insert("l7_hostile_other_clients_requests".into(), json!(self.hostile.requests()));
    }
}

/// `now − before` of two [`Bench::tcp_stats`] readings, as text: clients' first, then the backend's.
fn tcp_delta(before: &[(&'static str, u64)], now: &[(&'static str, u64)]) -> String {
    let d: Vec<String> =
        now.iter().zip(before).map(|((n, v), (_, b))| format!("{n} {}", v.saturating_sub(*b))).collect();
    let (c, b) = d.split_at(CLIENT_TCP.len().min(d.len()));
    format!("clients' kernels: {}; backend's kernel: {}", c.join(", "), b.join(", "))
}

/// Packets the kernel dropped at the per-CPU backlog (`/proc/net/softnet_stat`, second column),
/// summed over the CPUs: the whole machine's, every namespace's.
fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// Whether process `pid` exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

/// VmRSS of `pid` in kB.
fn vm_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

// ------------------------------------------------------------------------------------------
// The table and RESULT

/// Everything measured.
struct Report {
    plan: Plan,
    storm: Storm,
    nft_storm: Storm,
    flood: Flood,
    nft_flood: Flood,
    arp: Arp,
    faults: Faults,
}

/// The mean connections per second of `slices`.
fn mean_cps(slices: &[Slice]) -> f64 {
    if slices.is_empty() { 0.0 } else { slices.iter().map(Slice::cps).sum::<f64>() / slices.len() as f64 }
}

/// The first 30 s, the last 30 s and the lowest slice.
fn storm_figures(s: &[Slice]) -> (f64, f64, f64) {
    let n = (30 / SLICE_S) as usize;
    let first = mean_cps(&s[..n.min(s.len())]);
    let last = mean_cps(&s[s.len().saturating_sub(n)..]);
    let min = s.iter().map(Slice::cps).fold(f64::INFINITY, f64::min);
    (first, last, if min.is_finite() { min } else { 0.0 })
}

/// One decimal, for RESULT.
fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Report {
    fn print(&self) {
        println!(
            "\nStorm: {STORM_CLIENTS} client addresses × wrk -t1 -c{STORM_CONNS} -H 'Connection: close' to the NodePort, one nginx backend; connections/s per {SLICE_S} s slice"
        );
        println!(
            "{:<11} {:>9} {:>9} {:>7}  {:>14} {:>14}  Sluice's counters over the slice / the kernel's conntrack entries",
            "slice", "Sluice", "nftables", "ratio", "Sluice errors", "nft errors"
        );
        for (i, s) in self.storm.slices.iter().enumerate() {
            let k = self.nft_storm.slices.get(i);
            let kcps = k.map_or(0.0, Slice::cps);
            let errs = |s: &Slice| format!("{}c/{}o", s.connect_errors, s.other_errors);
            println!(
                "{:<11} {:>9.0} {:>9.0} {:>7.2}  {:>14} {:>14}  {} / {}",
                format!("{:>3}–{:>3} s", i as u64 * SLICE_S, (i as u64 + 1) * SLICE_S),
                s.cps().round(),
                kcps.round(),
                if kcps > 0.0 { s.cps() / kcps } else { 0.0 },
                errs(s),
                k.map_or("-".into(), errs),
                s.note,
                k.map_or("-", |k| k.note.as_str())
            );
        }
        let (f, l, m) = storm_figures(&self.storm.slices);
        let (nf, nl, nm) = storm_figures(&self.nft_storm.slices);
        println!(
            "Sluice:   first 30 s {f:.0}/s, last 30 s {l:.0}/s (last ÷ first {:.2}), lowest slice {m:.0}/s",
            if f > 0.0 { l / f } else { 0.0 }
        );
        println!("nftables: first 30 s {nf:.0}/s, last 30 s {nl:.0}/s, lowest slice {nm:.0}/s");
        println!("errors: c = wrk's connect errors, o = read/write/timeout errors");
        println!("Sluice's storm, {}", self.storm.tcp);
        println!("the kernel's storm, {}", self.nft_storm.tcp);
        println!(
            "\nSYN flood: 2 × sluice-pktgen (--engine {}, core 0, full rate), {} source addresses × {} ports each, one at the NodePort, one at the VIP, {} s; legitimate GETs {LEGIT_RATE}/s from cl alternating both, {} ms to answer",
            self.plan.flood_engine, FLOOD_IPS, FLOOD_PORTS, self.plan.flood_s, LEGIT_TIMEOUT_MS
        );
        println!(
            "idle cores: {}",
            if self.plan.latency_qos {
                "kept out of halt (/dev/cpu_dma_latency held at 0 for the run)"
            } else {
                "free to halt (--no-latency-qos)"
            }
        );
        println!(
            "replies to the forged sources: {}",
            if self.plan.sink {
                "dropped at the gateway's switch port (bpf/sink.c), as a NIC's wire would take them"
            } else {
                "bridged to the flooders (--no-sink), on the DUT core"
            }
        );
        for (name, fl) in [("Sluice", &self.flood), ("nftables", &self.nft_flood)] {
            println!(
                "{name}: offered {:.0} SYN/s ({} frames)",
                fl.pps(),
                fl.sent.iter().map(|x| x.0).sum::<u64>()
            );
            println!("  legitimate before: {}", fl.before.text());
            println!("  legitimate during: {}", fl.during.text());
            println!("  legitimate {} s after: {}", self.plan.after_s, fl.after.text());
            if let Some((b, m, e)) = fl.rss_kb {
                println!(
                    "  gateway VmRSS: before {:.1} MB, max {:.1} MB, after {:.1} MB (growth {:.1} MB)",
                    b as f64 / 1024.0,
                    m as f64 / 1024.0,
                    e as f64 / 1024.0,
                    (m.saturating_sub(b)) as f64 / 1024.0
                );
            }
            if let Some((c, flows_max)) = &fl.counts {
                println!(
                    "  gateway counters over flood and after: {}; most flows seen {flows_max}",
                    c.text()
                );
            }
            if let Some((ct, max)) = fl.conntrack {
                println!("  conntrack: most entries seen {ct} (nf_conntrack_max {max})");
            }
            println!("  over the flood and after: {}", fl.tcp);
        }
        let f = &self.faults;
        println!(
            "\nFaults under traffic (Sluice): control killed and started again: {}",
            f.control_kill.text()
        );
        println!(
            "  link down 0.5 s and up: recovered after {} ms; connections from then: {}",
            f.link_recovery_ms.map_or("never".into(), |r| r.to_string()),
            f.after_up.text()
        );
        for r in &f.restarts {
            println!(
                "  gateway restarted ({}): back after {} ms, longest gap in the pings {} ms, downloads lost {} of {}",
                r.how, r.back_ms, r.gap_ms, r.lost, r.downloads
            );
        }
        println!("  L7 clients across two upgrades: {}", f.upgrade.text());
        println!("  L7 clients while hostile clients ran: {}", f.hostile.text());
        let a = &self.arp;
        println!(
            "\nForged ARP: {} × who-has {VIP} tell {BACKEND} from the forger's MAC; then GETs to the VIP: {}",
            a.requests_sent,
            a.connections.text()
        );
        println!(
            "  frames to the forger's MAC: IP {} (diverted traffic), ARP {} (answers to its request); the gateway's neighbor_replies +{}",
            a.ip_frames, a.arp_frames, a.neighbor_replies
        );
        println!(
            "  gw kernel's neighbour entry for {BACKEND}: before \"{}\", after \"{}\"",
            a.kernel_neigh.0, a.kernel_neigh.1
        );
    }

    fn result(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let (f, l, mn) = storm_figures(&self.storm.slices);
        let (nf, nl, nmn) = storm_figures(&self.nft_storm.slices);
        let pct = |t: &Tally| json!(t.pct().map(|p| (p * 100.0).round() / 100.0));
        m.insert("synflood_legit_success_pct".into(), pct(&self.flood.during));
        m.insert("flood_replies_sunk".into(), json!(self.plan.sink));
        m.insert("flood_engine".into(), json!(self.plan.flood_engine));
        m.insert("latency_qos".into(), json!(self.plan.latency_qos));
        m.insert("synflood_after_success_pct".into(), pct(&self.flood.after));
        m.insert(
            "synflood_rss_growth_mb".into(),
            json!(self.flood.rss_kb.map(|(b, mx, _)| round1(mx.saturating_sub(b) as f64 / 1024.0))),
        );
        m.insert("synflood_pps".into(), json!(self.flood.pps().round()));
        m.insert(
            "synflood_sources".into(),
            json!(FLOODERS.len() as u64 * u64::from(FLOOD_IPS * FLOOD_PORTS)),
        );
        m.insert("synflood_seconds".into(), json!(self.plan.flood_s));
        if let Some((c, flows_max)) = &self.flood.counts {
            for n in ["snat_reclaimed", "new_flows"] {
                m.insert(format!("synflood_{n}"), json!(c.get(n)));
            }
            m.insert("synflood_snat_exhausted".into(), json!(c.get("drop snat_exhausted")));
            m.insert("synflood_flows_max".into(), json!(flows_max));
        }
        m.insert("nft_synflood_legit_success_pct".into(), pct(&self.nft_flood.during));
        m.insert("nft_synflood_after_success_pct".into(), pct(&self.nft_flood.after));
        m.insert("nft_synflood_pps".into(), json!(self.nft_flood.pps().round()));
        m.insert("storm_seconds".into(), json!(self.storm.slices.len() as u64 * SLICE_S));
        m.insert("storm_cps_first_30s".into(), json!(f.round()));
        m.insert("storm_cps_last_30s".into(), json!(l.round()));
        m.insert("storm_cps_min_slice".into(), json!(mn.round()));
        m.insert(
            "storm_snat_exhausted".into(),
            json!(self.storm.slices.iter().map(|s| s.exhausted).sum::<u64>()),
        );
        m.insert("nft_storm_cps_first_30s".into(), json!(nf.round()));
        m.insert("nft_storm_cps_last_30s".into(), json!(nl.round()));
        m.insert("nft_storm_cps_min_slice".into(), json!(nmn.round()));
        m.insert("arp_forged_frames".into(), json!(self.arp.ip_frames));
        m.insert("arp_connections_ok_pct".into(), pct(&self.arp.connections));
        self.faults.result(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_attempts_by_outcome() {
        let a =
            attempts("1000 1 3 198.18.0.1:31080 -\n1001 0 2000 198.18.100.10:80 connect-timeout\nnoise\n");
        assert_eq!(a.len(), 2);
        let t = Tally::of(a.iter());
        assert_eq!((t.tried, t.ok), (2, 1));
        assert_eq!(t.why.get("connect-timeout"), Some(&1));
        assert_eq!(t.pct(), Some(50.0));
    }

    #[test]
    fn storm_figures_take_the_first_and_last_three_slices() {
        let s: Vec<Slice> =
            [10, 20, 30, 40, 5, 60].iter().map(|&r| Slice { requests: r * 10, ..Slice::default() }).collect();
        let (first, last, min) = storm_figures(&s);
        assert_eq!((first, last, min), (20.0, 35.0, 5.0));
    }
}
