//! `benches/run l4`: Sluice's L4 forwarding against the plain AF_XDP forwarding loop (the ceiling
//! on this path) and against the kernel doing kube-proxy's job with nftables — as kube-proxy
//! writes it, and with a flowtable as an operator who tuned the kernel would add — in one run,
//! with the same generator and frames, each side's forwarding on the same core, and the CPU time
//! each core consumed.
//!
//! The same run measures the XDP fast path for established flows (docs/fast-path.md): (e) an
//! XDP program that only swaps MACs and returns `XDP_TX` on d0 (`gateway/xsk/bpf/macswap.c`),
//! the ceiling of any XDP balancer on this path, and (f) Sluice with `--fast-path on`, whose
//! 1,024 UDP flows are established before it is measured — each answered once by an echo socket
//! on its backend address ([`establish`]), which is what makes a UDP flow offloadable — and
//! whose gateway's log at stop says how many frames its XDP program forwarded itself; then
//! (f) once more with every frame a new flow.
//!
//! Topology: two namespaces joined by one veth pair. `gen` (g0) holds the generator, the
//! backends' addresses (nginx for the connection-rate runs) and the sink, an XDP program on g0
//! that counts and drops what the DUT forwarded; `dut` (d0) is the device under test,
//! one-armed: frames come in on d0 and leave on d0.
//!
//! Where the work runs. veth runs a receive in the softirq of the core that transmitted the
//! frame (docs/af-xdp.md, pitfall 5), so:
//! - core 0 ([`GEN_CORE`]): the generator, `sluice-pktgen` (its AF_XDP engine for every
//!   comparison, since the kernel peers take its frames; its live-frames engine, BPF_PROG_RUN,
//!   several times faster but not taken by a veth peer's kernel stack, for the ceiling and Sluice
//!   once more), and d0's receive softirq: for the AF_XDP DUTs the XDP program and the copy into
//!   the UMEM; for the kernel peers veth's NAPI and GRO, after which RPS on d0 (its `rps_cpus`
//!   hold core 1 only) hands each packet to core 1's backlog. nginx and wrk, for the
//!   connection-rate runs, are pinned here too.
//! - core 1 ([`DUT_CORE`]): the forwarding. For the AF_XDP DUTs their thread (the plain loop,
//!   Sluice's worker) with the copy-mode transmit inside its `sendto`; for the kernel peers the
//!   NET_RX softirq working through core 1's backlog: netfilter (the flowtable's ingress hook),
//!   conntrack, routing and the transmit. Every DUT's transmit to g0 runs the sink's receive on
//!   core 1 as well.
//!
//! `SLUICE_BENCH_NO_RPS=1` leaves d0 without RPS: the kernel peers' whole path then runs on core 0
//! with the generator, as this benchmark measured before. `SLUICE_BENCH_THREADED_NAPI=1` moves
//! d0's NAPI to a kernel thread on core 1 (stalls on the VM these ran on: benches/README).
//!
//! Every measurement reads `/proc/stat` before and after: the CPU time each core consumed, from
//! which each row gives Mpps per CPU-second of core 1 and of both cores. These are whole cores:
//! anything else running there counts too, so they mean something on a quiet machine only.
//!
//! Known limits: the flowtable peer needs a kernel with nftables flowtables
//! (`CONFIG_NF_FLOW_TABLE`); where the kernel refuses one, its rows say so and its RESULT figures
//! are `null`. The AF_XDP DUTs poll while frames arrive, so their core 1 is busy whatever the
//! rate; the kernel's softirq takes only what the frames need.
//!
//! Subcommands (the orchestrator runs the others inside the namespaces):
//!   run [--seconds S] [--repeat N] [--quick]   the whole benchmark (root); --quick: the
//!                                     ceiling and Sluice only
//!   generate …                        one measurement from the generator namespace
//!   forward --iface IF --core C       the plain AF_XDP MAC-swapping forwarder (the ceiling)
//!   xdp-forward --iface IF            the XDP MAC-swap program (the XDP ceiling)
//!   establish                         (f)'s flows answered once, from the generator namespace
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sluice_benches::{CoreTime, CpuTimes, flag, median, range, text_flag};
use sluice_pktgen::livegen::{Generator, Mode};
use sluice_port::{Desc, Port};
use sluice_sandbox::{bin, mac_in, must, run, veth};
use sluice_xsk::{Kind, SteerKey, SteerValue, Steering, XskSocket};

/// The Service's ClusterIP (the manifest's and the kernel peers' rules say it too).
const VIP: [u8; 4] = [198, 19, 255, 10];
/// Its UDP port: the frame-rate runs' established flows.
const UDP_PORT: u16 = 9000;
/// Its TCP port: the new-flow runs' SYNs and the connection-rate runs.
const TCP_PORT: u16 = 80;
/// Established UDP flows (source ports) the generator cycles through.
const FLOWS: u32 = 1024;
/// The core of the generator, nginx and wrk.
const GEN_CORE: usize = 0;
/// The core every DUT forwards on: the AF_XDP DUTs' thread, the kernel peers' softirq (RPS).
const DUT_CORE: usize = 1;
/// Where the kernel takes d0's RPS cores from (inside the DUT namespace).
const D0_RPS_CPUS: &str = "/sys/class/net/d0/queues/rx-0/rps_cpus";

/// Set by SIGINT/SIGTERM: the run stops at the next measurement and cleans up.
static INTERRUPTED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Dispatches the subcommands (module doc).
fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("generate") => generate(&args[1..]),
        Some("forward") => forward(&args[1..]),
        Some("xdp-forward") => xdp_forward(&args[1..]),
        Some("establish") => establish(),
        _ => Err("usage: sluice-bench-l4 run [--seconds S] [--repeat N] [--quick] | generate … | forward … \
                  | xdp-forward … | establish"
            .into()),
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-l4: {e}");
        std::process::exit(1);
    }
}

/// `aa:bb:cc:dd:ee:ff` as six bytes.
fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s}"));
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s}"))?;
    }
    Ok(m)
}

/// One measurement, inside the generator namespace: the sink counts on `--iface` while
/// `sluice-pktgen` sends (a warm-up of 20,000 frames first, for neighbour caches and flow
/// tables). Prints one JSON line: frames `sent` and `sunk` (counted from the generator's start
/// to 200 ms after it stops, for the frames still in flight), the generator's own `seconds`, and
/// over `window_s` — from the generator's start to its exit, its start-up included — each core's
/// `busy_s` and `softirq_s` from `/proc/stat`. The CPU time the DUT spends on the few thousand
/// frames in flight at the end is outside the window; it is the same for every DUT.
fn generate(args: &[String]) -> Result<(), String> {
    let iface = text_flag(args, "--iface").ok_or("--iface")?;
    let syn = text_flag(args, "--mode").as_deref() == Some("syn");
    let seconds: f64 = flag(args, "--seconds", 3.0);
    let mut g = Generator::load().map_err(|e| e.to_string())?;
    g.configure(
        Mode::Syn { port_base: 0, ports: 0, ip_lo: 0, ips: 0 },
        if syn { TCP_PORT } else { UDP_PORT },
    )
    .map_err(|e| e.to_string())?;
    g.attach_sink(&iface).map_err(|e| e.to_string())?;
    let cmd = pktgen_command(args, &iface, syn)?;
    let send = |extra: &[&str]| -> Result<Value, String> {
        let mut c: Vec<&str> = cmd.iter().map(String::as_str).collect();
        c.extend(extra);
        let out = run(&c).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("sluice-pktgen: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("sluice-pktgen's JSON: {e}"))
    };
    send(&["--count", "20000"])?;
    std::thread::sleep(Duration::from_millis(300));
    let (cpu0, sink0, t0) = (CpuTimes::read().map_err(|e| e.to_string())?, g.sunk(), Instant::now());
    let r = send(&["--duration", &seconds.to_string()])?;
    let (cpu1, window_s) = (CpuTimes::read().map_err(|e| e.to_string())?, t0.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_millis(200)); // the last frames in flight
    let sink1 = g.sunk();
    let core = |c| cpu1.since(&cpu0, c);
    println!(
        "{}",
        json!({
            "sent": r["sent"].as_u64().unwrap_or(0),
            "sunk": sink1 - sink0,
            "seconds": r["seconds"].as_f64().unwrap_or(seconds),
            "window_s": window_s,
            "busy_s": [core(GEN_CORE).busy_s, core(DUT_CORE).busy_s],
            "softirq_s": [core(GEN_CORE).softirq_s, core(DUT_CORE).softirq_s],
        })
    );
    Ok(())
}

/// `sluice-pktgen send` for one measurement: 64-byte frames (60 without the FCS) to the VIP,
/// UDP over [`FLOWS`] flows, or with `syn` a TCP SYN from a new 5-tuple every frame.
fn pktgen_command(args: &[String], iface: &str, syn: bool) -> Result<Vec<String>, String> {
    let dst = text_flag(args, "--dst-mac").ok_or("--dst-mac")?;
    let engine = text_flag(args, "--engine").unwrap_or_else(|| "afxdp".into());
    let core: usize = flag(args, "--core", GEN_CORE);
    let pg = bin("sluice-pktgen").to_string_lossy().into_owned();
    let (vip, core, flows) = (Ipv4Addr::from(VIP).to_string(), core.to_string(), FLOWS.to_string());
    let mut cmd: Vec<&str> = vec![
        &pg,
        "send",
        "--iface",
        iface,
        "--dst-mac",
        &dst,
        "--dst-ip",
        &vip,
        "--size",
        "60",
        "--cores",
        &core,
        "--engine",
        &engine,
        "--json",
    ];
    if syn {
        // Every frame a new 5-tuple: 65,536 source addresses × 64,000 ports (the live engine
        // varies the address and port itself).
        let ips = if engine == "live" { "1" } else { "65536" };
        cmd.extend(["--proto", "syn", "--src-ip", "198.19.0.0", "--src-ips", ips]);
        cmd.extend(["--sport", "1024", "--sports", "64000", "--dport", "80"]);
    } else {
        cmd.extend(["--src-ip", "198.18.0.2", "--sport", "10000", "--sports", &flows, "--dport", "9000"]);
    }
    Ok(cmd.into_iter().map(str::to_owned).collect())
}
/// The ceiling: receive on `--iface`, swap the Ethernet addresses, transmit; nothing else.
fn forward(args: &[String]) -> Result<(), String> {
    let iface = text_flag(args, "--iface").ok_or("--iface")?;
    let core: usize = flag(args, "--core", 1);
    let peer = parse_mac(&text_flag(args, "--peer-mac").ok_or("--peer-mac")?)?;
    let stop = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let mut steering = Steering::attach(&iface, sluice_xsk::AttachMode::Driver).map_err(|e| e.to_string())?;
    let mut vip = [0u8; 16];
    vip[10] = 0xff;
    vip[11] = 0xff;
    vip[12..].copy_from_slice(&VIP);
    let mut keys = HashMap::new();
    keys.insert(SteerKey::new(Kind::Dst, vip, UDP_PORT, 17), SteerValue::default());
    keys.insert(SteerKey::new(Kind::Dst, vip, TCP_PORT, 6), SteerValue::default());
    steering.sync(&keys).map_err(|e| e.to_string())?;
    let mut sock = XskSocket::bind(&iface, 0, &sluice_xsk::Config::default()).map_err(|e| e.to_string())?;
    steering.register(0, &sock.fd()).map_err(|e| e.to_string())?;
    let own = sluice_xsk::link::mac(&iface).map_err(|e| e.to_string())?;
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
    println!("forwarding");
    let _ = std::io::stdout().flush();
    let mut rx = [Desc::default(); 64];
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // The same discipline as Sluice's worker: receive no more than the TX ring takes.
        let room = sock.tx_room(rx.len());
        let n = sock.recv(&mut rx[..room.min(64)]);
        if n == 0 {
            idle += 1;
            if idle > 256 {
                idle = 0;
                sluice_xsk::socket::wait_readable(&[sock.fd()], 50);
            }
            continue;
        }
        idle = 0;
        for d in &rx[..n] {
            let f = sock.frame(d);
            if f.len() >= 12 {
                f[0..6].copy_from_slice(&peer);
                f[6..12].copy_from_slice(&own);
            }
        }
        let sent = sock.send(&rx[..n]);
        sock.release(&rx[sent..n]);
    }
    Ok(())
}

/// The XDP ceiling: the MAC-swap `XDP_TX` program (`gateway/xsk/bpf/macswap.c`) on `--iface`
/// in driver mode, until SIGINT/SIGTERM.
fn xdp_forward(args: &[String]) -> Result<(), String> {
    let iface = text_flag(args, "--iface").ok_or("--iface")?;
    let stop = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let _prog = sluice_xsk::macswap::MacSwap::attach(&iface).map_err(|e| e.to_string())?;
    println!("forwarding");
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Makes each of the frame-rate runs' [`FLOWS`] UDP flows established before Sluice's fast-path
/// runs, inside the generator namespace (no sink attached): a kernel socket on each flow's
/// client tuple (198.18.0.2, ports 10000…) sends one datagram to the VIP, and an echo socket on
/// each backend address answers it, through the gateway's FullNAT, so that the gateway sees the
/// backend answer — what makes a UDP flow offloadable. Retries the unanswered every 100 ms, for
/// 5 s at most. Prints one JSON line: `answered` of `flows`.
fn establish() -> Result<(), String> {
    use std::net::{SocketAddrV4, UdpSocket};
    let bind = |a: SocketAddrV4| -> Result<UdpSocket, String> {
        let s = UdpSocket::bind(a).map_err(|e| format!("binding {a}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let echo: Vec<UdpSocket> = (1..=4)
        .map(|i| bind(SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, i), UDP_PORT)))
        .collect::<Result<_, _>>()?;
    let clients: Vec<UdpSocket> = (0..FLOWS)
        .map(|i| bind(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 10_000 + i as u16)))
        .collect::<Result<_, _>>()?;
    let vip = SocketAddrV4::new(Ipv4Addr::from(VIP), UDP_PORT);
    let mut answered = vec![false; clients.len()];
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last_send: Option<Instant> = None;
    while answered.iter().any(|a| !a) && Instant::now() < deadline {
        if last_send.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            for (c, _) in clients.iter().zip(&answered).filter(|(_, a)| !**a) {
                let _ = c.send_to(b"sluice-bench", vip);
            }
            last_send = Some(Instant::now());
        }
        let mut idle = true;
        for e in &echo {
            while let Ok((n, from)) = e.recv_from(&mut buf) {
                let _ = e.send_to(&buf[..n], from);
                idle = false;
            }
        }
        for (c, a) in clients.iter().zip(answered.iter_mut()) {
            while c.recv_from(&mut buf).is_ok() {
                *a = true;
                idle = false;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let n = answered.iter().filter(|a| **a).count();
    println!("{}", json!({ "answered": n, "flows": FLOWS }));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The orchestrator

/// The whole benchmark, step by step: the topology, control, the ceilings and Sluice with and
/// without the fast path alternating, Sluice's other runs (with and without the fast path), each
/// kernel peer, then the table and RESULT.
fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP, nftables)".into());
    }
    let seconds: f64 = flag(args, "--seconds", 3.0);
    let repeat: usize = flag::<usize>(args, "--repeat", 3).max(1);
    let quick = args.iter().any(|a| a == "--quick");
    remove_stale();
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&INTERRUPTED)).map_err(|e| e.to_string())?;
    }
    let mut b = Bench::new(seconds, Placement::from_env())?;
    b.setup()?;
    eprintln!(
        "topology up: gen (g0 {}) ↔ dut (d0 {}); generator on core {GEN_CORE}, DUT on core {DUT_CORE}",
        b.g0_mac, b.d0_mac
    );
    b.start_nginx()?;
    let control = b.start_control()?;
    let (ab, gateway) = b.ceiling_and_sluice(repeat)?;
    let full = if quick {
        b.debug_gateway();
        None
    } else {
        let sluice = b.sluice_more(repeat)?;
        b.stop(gateway);
        let (offload_new_flows, offload_new_note) = b.offload_new_flows(repeat)?;
        b.stop(control);
        let nft = b.kernel_peer(KernelPeer::Nft, repeat)?;
        let flowtable = b.kernel_peer(KernelPeer::Flowtable, repeat)?;
        Some(Full { sluice, offload_new_flows, offload_new_note, kernels: [nft, flowtable] })
    };
    let report = Report { repeat, seconds, placement: b.placement, ab, full };
    report.print_table();
    println!("RESULT {}", Value::Object(report.result()));
    Ok(())
}

/// Deletes the namespaces and table files of runs that were killed (`slbPID-…` whose PID is gone).
fn remove_stale() {
    let Ok(out) = run(&["ip", "netns", "list"]) else { return };
    for name in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()) {
        let pid =
            name.strip_prefix("slb").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = run(&["ip", "netns", "del", name]);
            let _ = std::fs::remove_file(format!(
                "/dev/shm/sluice-{}",
                name.rsplit_once('-').map_or(name, |x| x.0)
            ));
        }
    }
}

/// Where d0's receive path runs (module doc); chosen by environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// RPS on d0 to core 1: the kernel peers forward on the DUT's core (the default).
    Rps,
    /// No RPS (`SLUICE_BENCH_NO_RPS`): the kernel peers forward in d0's receive softirq on the
    /// generator's core, as this benchmark did before.
    SenderCore,
    /// d0's NAPI in a kernel thread pinned to core 1 (`SLUICE_BENCH_THREADED_NAPI`).
    ThreadedNapi,
}

impl Placement {
    /// `SLUICE_BENCH_THREADED_NAPI` wins over `SLUICE_BENCH_NO_RPS`; RPS otherwise.
    fn from_env() -> Placement {
        if std::env::var_os("SLUICE_BENCH_THREADED_NAPI").is_some() {
            Placement::ThreadedNapi
        } else if std::env::var_os("SLUICE_BENCH_NO_RPS").is_some() {
            Placement::SenderCore
        } else {
            Placement::Rps
        }
    }

    /// What the table says about where each side's work ran.
    fn describe(self) -> &'static [&'static str] {
        match self {
            Placement::Rps => &[
                "where the work ran (veth runs a receive in the softirq of the core that sent the frame):",
                "  core 0  the generator, and d0's receive softirq: for (a)(b) the XDP program and the copy into the",
                "          UMEM; for (c)(d) veth's NAPI and GRO, then RPS (d0's rps_cpus = core 1) hands each packet on",
                "  core 1  the forwarding: (a)(b) the DUT's thread, with the copy-mode transmit inside its sendto;",
                "          (c)(d) NET_RX softirq on core 1's backlog: netfilter, conntrack, routing, transmit;",
                "          in every row also the sink's receive on g0, which the DUT's transmit runs",
            ],
            Placement::SenderCore => &[
                "where the work ran (veth runs a receive in the softirq of the core that sent the frame):",
                "  core 0  the generator, and d0's receive softirq (no RPS: SLUICE_BENCH_NO_RPS): for (a)(b) the XDP",
                "          program and the copy into the UMEM; for (c)(d) the kernel's whole forwarding path and the",
                "          sink's receive",
                "  core 1  (a)(b) the DUT's thread, with the copy-mode transmit inside its sendto and the sink's",
                "          receive; (c)(d) nothing of theirs",
            ],
            Placement::ThreadedNapi => &[
                "where the work ran (SLUICE_BENCH_THREADED_NAPI; it stalls on this kind of VM: benches/README):",
                "  core 0  the generator",
                "  core 1  d0's NAPI in a kernel thread: every DUT's receive; (a)(b) the DUT's thread; (c)(d) the",
                "          kernel's whole forwarding path; in every row the sink's receive",
            ],
        }
    }
}

/// The benchmark's namespaces, processes and files. Dropping it stops the processes and
/// deletes the namespaces and the table file, also after an error or an interruption.
struct Bench {
    id: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// Which children are gateways: stopping one also takes off the XDP program it leaves
    /// holding the service traffic (docs/restarts.md), which the next DUT needs gone.
    gateways: Vec<usize>,
    seconds: f64,
    placement: Placement,
    d0_mac: String,
    g0_mac: String,
}

impl Bench {
    /// Nothing set up yet: an id (`slbPID`) and a scratch directory for logs and configuration.
    fn new(seconds: f64, placement: Placement) -> Result<Bench, String> {
        let id = format!("slb{}", std::process::id());
        Ok(Bench {
            dir: tempfile::Builder::new().prefix(&format!("{id}-")).tempdir().map_err(|e| e.to_string())?,
            id,
            children: Vec::new(),
            gateways: Vec::new(),
            seconds,
            placement,
            d0_mac: String::new(),
            g0_mac: String::new(),
        })
    }

    /// The namespace of role `r` (`gen` or `dut`).
    fn ns(&self, r: &str) -> String {
        format!("{}-{r}", self.id)
    }

    /// The shared-memory table control publishes and the gateway reads.
    fn table(&self) -> String {
        format!("/dev/shm/sluice-{}", self.id)
    }

    /// Runs a command in role `r`'s namespace and returns its output.
    fn exec(&self, r: &str, args: &[&str]) -> Result<std::process::Output, String> {
        let ns = self.ns(r);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full).map_err(|e| e.to_string())
    }

    /// Runs a command in role `r`'s namespace that must succeed.
    fn must(&self, r: &str, args: &[&str]) -> Result<(), String> {
        let ns = self.ns(r);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        must(&full).map_err(|e| e.to_string())
    }

    /// Starts a process in role `r`'s namespace, its output into `log`; returns its child index.
    fn spawn(&mut self, r: &str, log: &str, args: &[&str]) -> Result<usize, String> {
        let f = std::fs::File::create(self.dir.path().join(log)).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(r)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| e.to_string())?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    /// Waits (20 s at most) until child `i`'s log (`log`) says `ready`; if it exits or the
    /// time runs out, the error carries what it logged.
    fn wait_ready(&mut self, i: usize, log: &str, ready: &str, what: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log(log).contains(ready) {
            let exited = self.children[i].try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let how = exited.map_or("is not ready after 20 s".to_owned(), |s| format!("exited ({s})"));
                return Err(format!("{what} did not start: it {how}; its log ({log}):\n{}", self.log(log)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// What a child wrote into its log so far.
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Stops child `i`: SIGTERM, SIGKILL after 5 s; a gateway's program released after it.
    fn stop(&mut self, i: usize) {
        self.stop_child(i);
        if self.gateways.contains(&i) {
            let gw = bin("sluice-gateway").to_string_lossy().into_owned();
            let _ = self.exec("dut", &[&gw, "--iface", "d0", "--release"]);
        }
    }

    fn stop_child(&mut self, i: usize) {
        let c = &mut self.children[i];
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // --- Set-up ---------------------------------------------------------------------------

    /// The two namespaces and the veth pair between them, addresses, the route to the VIPs,
    /// static neighbours, and d0's receive placed ([`Bench::place_receive`]).
    fn setup(&mut self) -> Result<(), String> {
        let (gen_ns, dut) = (self.ns("gen"), self.ns("dut"));
        must(&["ip", "netns", "add", &gen_ns]).map_err(|e| e.to_string())?;
        must(&["ip", "netns", "add", &dut]).map_err(|e| e.to_string())?;
        veth((&gen_ns, "g0"), (&dut, "d0"), 1).map_err(|e| e.to_string())?;
        for (r, ifc) in [("gen", "g0"), ("dut", "d0")] {
            self.must(r, &["ip", "link", "set", "lo", "up"])?;
            self.must(r, &["ip", "link", "set", ifc, "up"])?;
            self.must(r, &["ethtool", "-K", ifc, "tx", "off"])?;
        }
        self.must("gen", &["ip", "addr", "add", "198.18.0.2/24", "dev", "g0"])?;
        for i in 1..=4 {
            self.must("gen", &["ip", "addr", "add", &format!("198.18.1.{i}/24"), "dev", "g0"])?;
        }
        self.must("gen", &["ip", "route", "add", "198.19.0.0/16", "via", "198.18.0.1"])?;
        self.must("dut", &["ip", "addr", "add", "198.18.0.1/24", "dev", "d0"])?;
        self.must("dut", &["ip", "addr", "add", "198.18.1.254/24", "dev", "d0"])?;
        self.d0_mac = mac_in(&dut, "d0");
        self.g0_mac = mac_in(&gen_ns, "g0");
        self.static_neighbours()?;
        self.place_receive()
    }

    /// Static neighbours on both sides: no ARP under load.
    fn static_neighbours(&self) -> Result<(), String> {
        let permanent = |r: &str, addr: &str, mac: &str, dev: &str| {
            self.must(r, &["ip", "neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent"])
        };
        for a in ["198.18.0.2", "198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4"] {
            permanent("dut", a, &self.g0_mac, "d0")?;
        }
        // The SNAT address, which the backends' answers go to when (f)'s flows are established.
        permanent("gen", "198.18.1.254", &self.d0_mac, "g0")?;
        permanent("gen", "198.18.0.1", &self.d0_mac, "g0")
    }

    /// Places d0's receive path as [`Placement`] says. GRO gives the veth a NAPI, which RPS and
    /// threaded NAPI work from (the AF_XDP DUTs' XDP program gives it one as well). RPS is read
    /// back: the benchmark does not run with the kernel's forwarding somewhere else than it says.
    fn place_receive(&self) -> Result<(), String> {
        self.must("dut", &["ethtool", "-K", "d0", "gro", "on"])?;
        match self.placement {
            Placement::Rps => {
                let mask = format!("{:x}", 1u64 << DUT_CORE);
                self.must("dut", &["sh", "-c", &format!("echo {mask} > {D0_RPS_CPUS}")])?;
                let o = self.exec("dut", &["cat", D0_RPS_CPUS])?;
                let now = String::from_utf8_lossy(&o.stdout).trim().replace(',', "");
                if u64::from_str_radix(&now, 16).ok() != Some(1 << DUT_CORE) {
                    return Err(format!("d0's {D0_RPS_CPUS} reads {now:?} after writing {mask}"));
                }
            }
            Placement::ThreadedNapi => {
                let _ = self.exec("dut", &["sh", "-c", "echo 1 > /sys/class/net/d0/threaded"]);
                self.pin_napi();
            }
            Placement::SenderCore => {}
        }
        Ok(())
    }

    /// Pins d0's NAPI threads (`napi/d0-N`) to core 1.
    fn pin_napi(&self) {
        let Ok(out) = run(&["ps", "-eo", "pid,comm"]) else { return };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut it = line.split_whitespace();
            let (Some(pid), Some(comm)) = (it.next(), it.next()) else { continue };
            if comm.starts_with("napi/d0-") {
                let _ = run(&["taskset", "-pc", &DUT_CORE.to_string(), pid]);
            }
        }
    }

    /// nginx on the four backend addresses, for the connection-rate runs (on core 0).
    fn start_nginx(&mut self) -> Result<(), String> {
        let ngx = self.dir.path().join("nginx");
        std::fs::create_dir_all(ngx.join("tmp")).map_err(|e| e.to_string())?;
        let conf = sluice_sandbox::nginx_conf(
            &ngx,
            "server { listen 80 reuseport; location / { return 200 \"ok\\n\"; } }",
        );
        std::fs::write(ngx.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let conf = ngx.join("nginx.conf").to_string_lossy().into_owned();
        self.spawn("gen", "nginx.log", &["taskset", "-c", &GEN_CORE.to_string(), "nginx", "-c", &conf])?;
        Ok(())
    }

    /// Control on a manifest, publishing the table every run of Sluice reads; returns its child.
    fn start_control(&mut self) -> Result<usize, String> {
        let manifests: PathBuf = self.dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
        std::fs::write(manifests.join("bench.yaml"), MANIFEST).map_err(|e| e.to_string())?;
        let (control, m) =
            (bin("sluice-control").to_string_lossy().into_owned(), manifests.to_string_lossy().into_owned());
        let table = self.table();
        let ctl = self.spawn(
            "dut",
            "control.log",
            &[
                &control,
                "run",
                "--manifests",
                &m,
                "--table",
                &table,
                "--node-address",
                "198.18.0.1",
                "--snat-address",
                "198.18.1.254",
                "--metrics-address",
                "127.0.0.1:0",
            ],
        )?;
        self.wait_ready(ctl, "control.log", "generation 1", "control")?;
        Ok(ctl)
    }

    // --- The DUTs ---------------------------------------------------------------------------

    /// (a) the ceiling, (e) the XDP ceiling, (f) Sluice with the fast path and (b) without,
    /// alternating repeat by repeat — forwarder up, measured with both generators, down; the
    /// MAC-swap program attached, measured, detached; gateway with the fast path up, its flows
    /// established, measured, down; gateway without up, measured, down — so that each pair
    /// compares runs a few seconds apart and a drift of the machine over the run (this VM has
    /// them) moves both sides of a ratio, not one. The last gateway (without the fast path)
    /// stays up for Sluice's other runs; its child is returned.
    fn ceiling_and_sluice(&mut self, repeat: usize) -> Result<(AfXdpRuns, usize), String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let (g0, core) = (self.g0_mac.clone(), DUT_CORE.to_string());
        let mut runs = AfXdpRuns::default();
        let mut gateway = 0;
        for r in 0..repeat {
            eprintln!(
                "repeat {}/{repeat}: (a) plain AF_XDP forwarder, (e) XDP MAC-swap, (f) Sluice with the fast path, \
                 (b) Sluice …",
                r + 1
            );
            let fwd = self.spawn(
                "dut",
                "forward.log",
                &[&me, "forward", "--iface", "d0", "--core", &core, "--peer-mac", &g0],
            )?;
            self.wait_ready(fwd, "forward.log", "forwarding", "the forwarder")?;
            runs.ceiling.push(self.measure(false, "afxdp")?);
            runs.ceiling_live.push(self.profiled(r, "ceiling", |b| b.measure(false, "live"))?);
            self.stop(fwd);
            let xdp = self.spawn("dut", "xdp-forward.log", &[&me, "xdp-forward", "--iface", "d0"])?;
            self.wait_ready(xdp, "xdp-forward.log", "forwarding", "the XDP MAC-swap program")?;
            runs.xdp.push(self.measure(false, "afxdp")?);
            runs.xdp_live.push(self.profiled(r, "xdp_ceiling", |b| b.measure(false, "live"))?);
            self.stop(xdp);
            let log = format!("gateway-fast-{r}.log");
            let fast = self.start_gateway(&log, true)?;
            let answered = self.establish()?;
            runs.offload.push(self.measure(false, "afxdp")?);
            runs.offload_live.push(self.profiled(r, "offload", |b| b.measure(false, "live"))?);
            self.stop(fast);
            runs.notes.push(format!(
                "(f) repeat {}: {answered} of {FLOWS} flows answered before; {}",
                r + 1,
                gateway_counts(&self.log(&log))
            ));
            gateway = self.start_gateway("gateway.log", false)?;
            runs.sluice.push(self.measure(false, "afxdp")?);
            runs.sluice_live.push(self.profiled(r, "sluice", |b| b.measure(false, "live"))?);
            if r + 1 < repeat {
                self.stop(gateway);
            }
        }
        Ok((runs, gateway))
    }

    /// Starts `sluice-gateway` on d0 (worker on core 1), with or without `--fast-path on`, its
    /// log into `log`; returns its child once its steering is up. SYN cookies off: past 20,000
    /// SYNs a second (the default budget) the XDP program would answer every SYN of the
    /// new-flow runs with a cookie and the worker would see none of them — that path is
    /// `benches/run faults`'s; here every SYN is a new flow through the worker, as it is
    /// through the kernel peers' conntrack.
    fn start_gateway(&mut self, log: &str, fast: bool) -> Result<usize, String> {
        let gw = bin("sluice-gateway").to_string_lossy().into_owned();
        let (table, core) = (self.table(), DUT_CORE.to_string());
        let mut args =
            vec![gw.as_str(), "--iface", "d0", "--table", &table, "--cores", &core, "--syn-cookies", "off"];
        args.extend(["--fast-path", if fast { "on" } else { "off" }]);
        let g = self.spawn("dut", log, &args)?;
        self.gateways.push(g);
        self.wait_ready(g, log, "XDP program attached", "the gateway")?;
        Ok(g)
    }

    /// Establishes the [`FLOWS`] UDP flows through the gateway ([`establish`]) and gives the
    /// installer (every 10 ms) time to put them in the kernel; returns how many were answered.
    fn establish(&self) -> Result<u64, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = self.exec("gen", &[&me.to_string_lossy(), "establish"])?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "establishing the flows ({}): {}{said}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value = serde_json::from_str(said.lines().last().unwrap_or_default())
            .map_err(|e| format!("establish said {said:?}: {e}"))?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(v["answered"].as_u64().unwrap_or(0))
    }

    /// Sluice's other runs, through the gateway the alternation left up: short connections, then
    /// every frame a new flow.
    fn sluice_more(&self, repeat: usize) -> Result<Rest, String> {
        let cps = self.cps();
        eprintln!("(b) Sluice, every frame a new flow …");
        let new_flows = self.series(true, repeat, "afxdp")?;
        self.debug_gateway();
        Ok(Rest { new_flows, cps })
    }

    /// (f) Sluice with the fast path, every frame a new flow (a gateway of its own, started
    /// after (b)'s is stopped); the series and what the gateway's log said of it.
    fn offload_new_flows(&mut self, repeat: usize) -> Result<(Series, String), String> {
        eprintln!("(f) Sluice with the fast path, every frame a new flow …");
        let g = self.start_gateway("gateway-fast-newflow.log", true)?;
        let s = self.series(true, repeat, "afxdp");
        self.stop(g);
        Ok((s?, gateway_counts(&self.log("gateway-fast-newflow.log"))))
    }

    /// One kernel peer, in a clean DUT namespace (no rules and no conntrack entries of the other
    /// peer): its rules loaded, then established UDP flows, short connections and new flows.
    /// The flowtable peer comes back as not measured (its `runs` an `Err` saying why) where the
    /// kernel refuses a flowtable.
    fn kernel_peer(&self, peer: KernelPeer, repeat: usize) -> Result<Kernel, String> {
        self.must("dut", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        self.must("dut", &["nft", "flush", "ruleset"])?;
        if peer == KernelPeer::Flowtable
            && let Err(why) = self.probe_flowtable()
        {
            eprintln!("{}: not measured: {why}", peer.name());
            return Ok(Kernel { peer, runs: Err(why) });
        }
        let rules = self.dir.path().join(format!("{}.nft", peer.stem()));
        std::fs::write(&rules, peer.rules()).map_err(|e| e.to_string())?;
        self.must("dut", &["nft", "-f", &rules.to_string_lossy()])?;
        self.must("dut", &["conntrack", "-F"])?;
        eprintln!("{} …", peer.name());
        let udp = self.series(false, repeat, "afxdp")?;
        let mut notes = Vec::new();
        if peer == KernelPeer::Flowtable {
            notes.push(self.fast_path(&udp));
        }
        self.debug_kernel();
        let cps = self.cps();
        eprintln!("{}, every frame a new flow …", peer.name());
        // Each repeat from an empty conntrack table: the one before filled it (at 0.1 Mpps of new
        // flows, 262,144 entries last under 3 s), and a full table drops every new flow.
        let mut new_flows = Series::default();
        for _ in 0..repeat {
            self.must("dut", &["conntrack", "-F"])?;
            new_flows.push(self.measure(true, "afxdp")?);
        }
        let ct_max = self
            .exec("dut", &["sysctl", "-n", "net.netfilter.nf_conntrack_max"])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        notes.push(format!("{}: nf_conntrack_max {ct_max}", peer.short()));
        Ok(Kernel { peer, runs: Ok(KernelRuns { udp, rest: Rest { new_flows, cps }, notes }) })
    }

    /// Whether the kernel takes an nftables flowtable on d0 (the probe's table is deleted again);
    /// if not, why.
    fn probe_flowtable(&self) -> Result<(), String> {
        let probe = self.dir.path().join("probe.nft");
        // nft wants a newline (or a semicolon) after the flowtable's block.
        let text =
            "table inet sluice_probe {\n  flowtable ft { hook ingress priority 0; devices = { d0 }; }\n}\n";
        std::fs::write(&probe, text).map_err(|e| e.to_string())?;
        let out = self.exec("dut", &["nft", "-f", &probe.to_string_lossy()])?;
        if out.status.success() {
            return self.must("dut", &["nft", "delete", "table", "inet", "sluice_probe"]);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let said = err.lines().find_map(|l| l.split_once("Error: ").map(|x| x.1)).unwrap_or(err.trim());
        // A kernel built without flowtables answers ENOENT, which says little; its config says why.
        let config =
            run(&["sh", "-c", "zcat /proc/config.gz | grep -qx '# CONFIG_NF_FLOW_TABLE is not set'"])
                .is_ok_and(|o| o.status.success());
        let why = if config { "; /proc/config.gz: CONFIG_NF_FLOW_TABLE is not set" } else { "" };
        Err(format!("the kernel refused an nftables flowtable on d0 (nft: {said}{why})"))
    }

    /// Whether (d)'s flows took the flowtable's fast path: the packets its forward chain (the
    /// slow path: a flowtable hit skips it) counted over the UDP runs, warm-ups included,
    /// against the frames the sink counted in the measured windows alone; and how many of
    /// conntrack's entries are marked `[OFFLOAD]`.
    fn fast_path(&self, udp: &Series) -> String {
        let stdout = |args: &[&str]| {
            self.exec("dut", args)
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let chain = stdout(&["nft", "list", "chain", "inet", "filter", "forward"]);
        let slow = chain.split("counter packets ").nth(1).and_then(|r| r.split_whitespace().next());
        let ct = stdout(&["conntrack", "-L"]);
        let offloaded = ct.lines().filter(|l| l.contains("[OFFLOAD]")).count();
        format!(
            "(d) fast path: its forward chain (the slow path) saw {} packets over the UDP runs, warm-ups \
             included, while the sink counted {:.0} in the measured windows alone; conntrack: {offloaded} of \
             {} entries [OFFLOAD]",
            slow.unwrap_or("?"),
            udp.frames(),
            ct.lines().count()
        )
    }

    /// One measurement from the generator namespace (see [`generate`]).
    fn measure(&self, syn: bool, engine: &str) -> Result<Sample, String> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if self.placement == Placement::ThreadedNapi {
            self.pin_napi();
        }
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let me = me.to_string_lossy();
        let (secs, core) = (self.seconds.to_string(), GEN_CORE.to_string());
        let mode = if syn { "syn" } else { "udp" };
        let args: [&str; 14] = [
            &me,
            "generate",
            "--iface",
            "g0",
            "--dst-mac",
            &self.d0_mac,
            "--mode",
            mode,
            "--seconds",
            &secs,
            "--core",
            &core,
            "--engine",
            engine,
        ];
        let out = self.exec("gen", &args)?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "generator ({}): {}{said}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value = serde_json::from_str(said.lines().last().unwrap_or_default())
            .map_err(|e| format!("generator said {said:?}: {e}"))?;
        Sample::from_json(&v).ok_or_else(|| format!("generator said {said:?}"))
    }

    /// `repeat` measurements of one row, back to back.
    fn series(&self, syn: bool, repeat: usize, engine: &str) -> Result<Series, String> {
        let mut s = Series::default();
        for _ in 0..repeat {
            s.push(self.measure(syn, engine)?);
        }
        Ok(s)
    }

    /// Runs `f`, under `perf record -a -g` into `$SLUICE_BENCH_PROFILE/NAME.data` when that
    /// variable names a directory and this is the first repeat (`perf report -i` it afterwards);
    /// with `SLUICE_BENCH_PROFILE_EVENTS` set, under `perf stat -C 1 -e` those into `NAME.stat`.
    fn profiled<T>(&self, repeat: usize, name: &str, f: impl FnOnce(&Self) -> T) -> T {
        let dir = std::env::var_os("SLUICE_BENCH_PROFILE").filter(|_| repeat == 0);
        let perf = dir.and_then(|d| {
            // `SLUICE_BENCH_PROFILE_EVENTS=a,b`: count those events (`perf stat`) instead.
            let events = std::env::var("SLUICE_BENCH_PROFILE_EVENTS").ok();
            let mut cmd = Command::new("perf");
            match &events {
                Some(e) => cmd
                    .args(["stat", "-C", &DUT_CORE.to_string(), "-e", e, "-o"])
                    .arg(PathBuf::from(&d).join(format!("{name}.stat"))),
                None => cmd
                    .args(["record", "-q", "-a", "-g", "-e", "cpu-clock", "-o"])
                    .arg(PathBuf::from(&d).join(format!("{name}.data"))),
            };
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()
        });
        let r = f(self);
        if let Some(mut p) = perf {
            if let Some(pid) = rustix::process::Pid::from_raw(p.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let _ = p.wait();
        }
        r
    }

    /// With `SLUICE_BENCH_DEBUG` set: the gateway's non-zero counters, from control's metrics.
    fn debug_gateway(&self) {
        if std::env::var_os("SLUICE_BENCH_DEBUG").is_none() {
            return;
        }
        let url = self
            .log("control.log")
            .lines()
            .find_map(|l| l.split_once("metrics: http://").map(|(_, a)| format!("http://{a}")))
            .unwrap_or_default();
        // Control serves its metrics on the DUT namespace's loopback.
        let m = self
            .exec("dut", &["curl", "-s", &url])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        eprintln!(
            "{}",
            m.lines()
                .filter(|l| l.starts_with("sluice_gateway") && !l.ends_with(" 0"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// With `SLUICE_BENCH_DEBUG` set: d0's counters, the DUT's non-zero SNMP counters and the
    /// number of conntrack entries.
    fn debug_kernel(&self) {
        if std::env::var_os("SLUICE_BENCH_DEBUG").is_none() {
            return;
        }
        for cmd in [
            vec!["ethtool", "-S", "d0"],
            vec!["nstat", "-az"],
            vec!["sysctl", "net.netfilter.nf_conntrack_count"],
        ] {
            let Ok(o) = self.exec("dut", &cmd) else { continue };
            eprintln!(
                "{}",
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.contains(" 0 ") || cmd[0] != "nstat")
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }

    /// Short HTTP connections per second through the DUT (wrk, `Connection: close`), with each
    /// core's busy share over the run. g0's GRO is on for it (a NAPI for the frames the DUT
    /// sends) and off again after, as the frame-rate runs have it.
    fn cps(&self) -> Result<Cps, String> {
        self.must("gen", &["ethtool", "-K", "g0", "gro", "on"])?;
        let r = self.wrk();
        self.must("gen", &["ethtool", "-K", "g0", "gro", "off"])?;
        r
    }

    /// One wrk run (`--seconds`, at least 2 s) with `/proc/stat` read around it.
    fn wrk(&self) -> Result<Cps, String> {
        let url = format!("http://{}/", Ipv4Addr::from(VIP));
        let secs = format!("{}s", self.seconds.max(2.0) as u64);
        if std::env::var_os("SLUICE_BENCH_DEBUG").is_some() {
            let o = self.exec("gen", &["curl", "-sS", "-m", "3", "-v", &url])?;
            eprintln!("curl: {} {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        }
        let core = GEN_CORE.to_string();
        let (cpu0, t0) = (CpuTimes::read().map_err(|e| e.to_string())?, Instant::now());
        let out = self.exec(
            "gen",
            &[
                "taskset",
                "-c",
                &core,
                "wrk",
                "-t",
                "1",
                "-c",
                "32",
                "-d",
                &secs,
                "--timeout",
                "1s",
                "-H",
                "Connection: close",
                &url,
            ],
        )?;
        let (cpu1, window_s) = (CpuTimes::read().map_err(|e| e.to_string())?, t0.elapsed().as_secs_f64());
        let s = String::from_utf8_lossy(&out.stdout);
        let per_s = s
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("wrk said: {s}{}", String::from_utf8_lossy(&out.stderr)))?;
        let busy = |c| ratio(cpu1.since(&cpu0, c).busy_s, window_s);
        Ok(Cps { per_s, busy: [busy(GEN_CORE), busy(DUT_CORE)] })
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.stop(i);
        }
        for r in ["gen", "dut"] {
            let _ = run(&["ip", "netns", "del", &self.ns(r)]);
        }
        let _ = std::fs::remove_file(self.table());
    }
}

// ------------------------------------------------------------------------------------------
// What was measured

/// One measurement ([`generate`]): rates over the generator's run, and what each core consumed
/// over it.
struct Sample {
    offered_mpps: f64,
    forwarded_mpps: f64,
    /// Frames the sink counted (the generator's run and the frames in flight at its end).
    forwarded_frames: f64,
    window_s: f64,
    /// Core 0's and core 1's CPU time in the window.
    cpu: [CoreTime; 2],
}

impl Sample {
    /// From the generator's JSON line ([`generate`]).
    fn from_json(v: &Value) -> Option<Sample> {
        let f = |k: &str| v[k].as_f64();
        let core = |i: usize| {
            Some(CoreTime { busy_s: v["busy_s"][i].as_f64()?, softirq_s: v["softirq_s"][i].as_f64()? })
        };
        let (sent, sunk, seconds) = (f("sent")?, f("sunk")?, f("seconds")?);
        Some(Sample {
            offered_mpps: ratio(sent, seconds) / 1e6,
            forwarded_mpps: ratio(sunk, seconds) / 1e6,
            forwarded_frames: sunk,
            window_s: f("window_s")?,
            cpu: [core(0)?, core(1)?],
        })
    }

    /// Millions of frames forwarded per CPU-second consumed on core 1.
    fn per_core1_s(&self) -> f64 {
        ratio(self.forwarded_frames / 1e6, self.cpu[1].busy_s)
    }

    /// Millions of frames forwarded per CPU-second consumed on both cores.
    fn per_cpu_s(&self) -> f64 {
        ratio(self.forwarded_frames / 1e6, self.cpu[0].busy_s + self.cpu[1].busy_s)
    }

    /// The share of the window core `core` was busy, and the share it was in softirq.
    fn busy(&self, core: usize) -> (f64, f64) {
        (ratio(self.cpu[core].busy_s, self.window_s), ratio(self.cpu[core].softirq_s, self.window_s))
    }
}

/// The repeats of one row.
#[derive(Default)]
struct Series(Vec<Sample>);

impl Series {
    /// Adds a repeat.
    fn push(&mut self, s: Sample) {
        self.0.push(s);
    }

    /// One figure of every repeat.
    fn values(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.0.iter().map(f).collect()
    }

    /// The median of one figure over the repeats.
    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.values(f))
    }

    /// The median forwarded rate, Mpps.
    fn forwarded(&self) -> f64 {
        self.median(|s| s.forwarded_mpps)
    }

    /// Frames the sink counted over all the repeats' windows.
    fn frames(&self) -> f64 {
        self.0.iter().map(|s| s.forwarded_frames).sum()
    }
}

/// Short connections per second, and the share of the run each core (0, 1) was busy.
struct Cps {
    per_s: f64,
    busy: [f64; 2],
}

/// (a) and (b) with both generators: the AF_XDP engine (every DUT takes its frames) and the
/// live-frames engine (the pairs vs_ceiling is taken from).
#[derive(Default)]
struct AfXdpRuns {
    ceiling: Series,
    sluice: Series,
    ceiling_live: Series,
    sluice_live: Series,
    /// (e) the XDP MAC-swap program.
    xdp: Series,
    xdp_live: Series,
    /// (f) Sluice with the fast path.
    offload: Series,
    offload_live: Series,
    /// (f)'s flows and what its gateway's log said, repeat by repeat.
    notes: Vec<String>,
}

impl AfXdpRuns {
    /// Sluice / ceiling, repeat by repeat, with the live-frames generator.
    fn pairs(&self) -> Vec<f64> {
        self.ceiling_live
            .0
            .iter()
            .zip(&self.sluice_live.0)
            .map(|(c, s)| ratio(s.forwarded_mpps, c.forwarded_mpps))
            .collect()
    }

    /// (f) ÷ (b), repeat by repeat, with the live-frames generator (run back to back).
    fn offload_pairs(&self) -> Vec<f64> {
        paired(&self.offload_live, &self.sluice_live)
    }

    /// (f) ÷ (e), repeat by repeat, with the live-frames generator.
    fn xdp_pairs(&self) -> Vec<f64> {
        paired(&self.offload_live, &self.xdp_live)
    }
}

/// `a ÷ b`, repeat by repeat.
fn paired(a: &Series, b: &Series) -> Vec<f64> {
    a.0.iter().zip(&b.0).map(|(a, b)| ratio(a.forwarded_mpps, b.forwarded_mpps)).collect()
}

/// What a gateway's log said at its stop: frames its XDP program redirected to the workers and,
/// with the fast path, forwarded in the kernel (the proof that the flows were offloaded).
fn gateway_counts(log: &str) -> String {
    let said = |what: &str, after: &str| {
        log.lines()
            .find_map(|l| {
                l.split_once(after).map(|(_, r)| r.split_whitespace().next().unwrap_or("?").to_owned())
            })
            .map_or(format!("{what} ? (not in the log)"), |n| format!("{what} {n}"))
    };
    format!(
        "the gateway logged at stop: {}, {}, {}",
        said("forwarded in the kernel", "XDP fast path: forwarded "),
        said("redirected to the worker", "XDP redirected "),
        said("SYNs answered with a cookie", " to the kernel, answered ")
    )
}

/// A DUT's runs after established UDP flows: every frame a new flow, and short connections
/// (`Err`: wrk failed, and what it said).
struct Rest {
    new_flows: Series,
    cps: Result<Cps, String>,
}

/// The kernel doing kube-proxy's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelPeer {
    /// (c) kube-proxy's nftables rules, with conntrack.
    Nft,
    /// (d) the same with a flowtable.
    Flowtable,
}

impl KernelPeer {
    /// The RESULT keys' stem.
    fn stem(self) -> &'static str {
        match self {
            KernelPeer::Nft => "nft",
            KernelPeer::Flowtable => "nft_flowtable",
        }
    }

    /// Its name in the table and the progress lines.
    fn name(self) -> &'static str {
        match self {
            KernelPeer::Nft => "(c) nftables DNAT+masquerade",
            KernelPeer::Flowtable => "(d) nftables + flowtable",
        }
    }

    /// Its short name, for the new-flow row and the lines under the table.
    fn short(self) -> &'static str {
        match self {
            KernelPeer::Nft => "(c) nftables",
            KernelPeer::Flowtable => "(d) nft + flowtable",
        }
    }

    /// The ruleset loaded into the DUT namespace.
    fn rules(self) -> String {
        match self {
            KernelPeer::Nft => nft_rules(),
            KernelPeer::Flowtable => flowtable_rules(),
        }
    }
}

/// One kernel peer's runs (`Err`: not measured, and why).
struct Kernel {
    peer: KernelPeer,
    runs: Result<KernelRuns, String>,
}

/// A kernel peer's runs: established UDP flows, then the rest.
struct KernelRuns {
    udp: Series,
    rest: Rest,
    /// What the table prints under it (conntrack's size; the flowtable's fast path).
    notes: Vec<String>,
}

/// What `--quick` leaves out.
struct Full {
    sluice: Rest,
    /// (f): every frame a new flow, with the fast path on.
    offload_new_flows: Series,
    /// What (f)'s gateway logged at its stop.
    offload_new_note: String,
    kernels: [Kernel; 2],
}

// ------------------------------------------------------------------------------------------
// The table and RESULT

/// Everything measured, for the table and RESULT.
struct Report {
    repeat: usize,
    seconds: f64,
    placement: Placement,
    ab: AfXdpRuns,
    /// `None` with `--quick`.
    full: Option<Full>,
}

/// The table's name of (a)'s rows.
const CEILING_ROW: &str = "(a) plain AF_XDP MAC-swap loop (ceiling)";
/// The table's name of (b)'s established-flow rows.
const SLUICE_ROW: &str = "(b) Sluice FullNAT, UDP, 1024 flows";
/// The table's name of (e)'s rows.
const XDP_ROW: &str = "(e) XDP MAC-swap + XDP_TX (XDP ceiling)";
/// The table's name of (f)'s established-flow rows.
const OFFLOAD_ROW: &str = "(f) Sluice + fast path, UDP, 1024 flows";

impl Report {
    /// The table: where the work ran, the rows, the ratios and notes, what the columns are.
    fn print_table(&self) {
        let scope = if self.full.is_some() { "" } else { "; the ceilings and Sluice only (--quick)" };
        println!(
            "\nL4 forwarding, 64-byte frames, one-armed veth{scope} (median of {} × {} s; min–max of forwarded)",
            self.repeat, self.seconds
        );
        for l in self.placement.describe() {
            println!("{l}");
        }
        println!(
            "  (e)(f)  the XDP program on d0 runs in d0's receive softirq, on core 0 with the generator, and so does its"
        );
        println!(
            "          XDP_TX and the sink's receive; core 1 holds only (f)'s worker, idle for offloaded flows"
        );
        header();
        println!("generator: sluice-pktgen, AF_XDP engine (every DUT takes its frames)");
        row(CEILING_ROW, &self.ab.ceiling);
        row(XDP_ROW, &self.ab.xdp);
        row(OFFLOAD_ROW, &self.ab.offload);
        row(SLUICE_ROW, &self.ab.sluice);
        if let Some(full) = &self.full {
            for k in &full.kernels {
                k.row(&format!("{}, UDP, {FLOWS} flows", k.peer.name()), |r| &r.udp);
            }
            row("(b) Sluice, every frame a new TCP SYN", &full.sluice.new_flows);
            row("(f) Sluice + fast path, every frame a new SYN", &full.offload_new_flows);
            for k in &full.kernels {
                k.row(&format!("{}, every frame a new TCP SYN", k.peer.short()), |r| &r.rest.new_flows);
            }
        }
        println!(
            "generator: sluice-pktgen, live-frames engine (offers more than the ceiling; a veth peer's kernel stack does not take its frames)"
        );
        row(CEILING_ROW, &self.ab.ceiling_live);
        row(XDP_ROW, &self.ab.xdp_live);
        row(OFFLOAD_ROW, &self.ab.offload_live);
        row(SLUICE_ROW, &self.ab.sluice_live);
        let each = |a: &Series, b: &Series, p: Vec<f64>| -> String {
            (a.0.iter().zip(&b.0).zip(p))
                .map(|((a, b), p)| format!("{:.3}/{:.3} = {p:.2}", a.forwarded_mpps, b.forwarded_mpps))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ab = &self.ab;
        println!("repeat by repeat (run back to back):");
        println!(
            "  (b) Sluice / (a) ceiling:            {}",
            each(&ab.sluice_live, &ab.ceiling_live, ab.pairs())
        );
        println!(
            "  (f) fast path / (b) Sluice:          {}",
            each(&ab.offload_live, &ab.sluice_live, ab.offload_pairs())
        );
        println!(
            "  (f) fast path / (e) XDP ceiling:     {}",
            each(&ab.offload_live, &ab.xdp_live, ab.xdp_pairs())
        );
        for n in &ab.notes {
            println!("{n}");
        }
        if let Some(full) = &self.full {
            println!("(f) every frame a new flow: {}", full.offload_new_note);
        }
        self.print_summary();
        footer();
    }

    /// The ratios, the connection rates and the kernel peers' notes.
    fn print_summary(&self) {
        let ab = &self.ab;
        let vs_ceiling = format!(
            "vs_ceiling {:.2} (live-frames generator, median of the {} paired ratios; {:.2} as a ratio of medians, {:.2} with the AF_XDP generator)",
            median(&ab.pairs()),
            self.repeat,
            ratio(ab.sluice_live.forwarded(), ab.ceiling_live.forwarded()),
            ratio(ab.sluice.forwarded(), ab.ceiling.forwarded())
        );
        let offload = format!(
            "offload_vs_afxdp {:.2}, vs_xdp_ceiling {:.2} (median of the paired ratios)",
            median(&ab.offload_pairs()),
            median(&ab.xdp_pairs())
        );
        let Some(full) = &self.full else {
            println!("\nMpps. {vs_ceiling}, {offload}");
            return;
        };
        let measured: Vec<(KernelPeer, &KernelRuns)> =
            full.kernels.iter().filter_map(|k| k.runs.as_ref().ok().map(|r| (k.peer, r))).collect();
        let (s, sn) = (&ab.sluice, &full.sluice.new_flows);
        let mut ratios = vec![vs_ceiling, offload];
        for (peer, r) in &measured {
            ratios.push(format!("vs_{} {:.2}", peer.stem(), ratio(s.forwarded(), r.udp.forwarded())));
        }
        ratios.push(format!(
            "offload_newflow ÷ sluice_newflow {:.2}",
            ratio(full.offload_new_flows.forwarded(), sn.forwarded())
        ));
        if let Some((_, r)) = measured.iter().find(|(p, _)| *p == KernelPeer::Nft) {
            ratios.push(format!("newflow_ratio {:.2}", ratio(sn.forwarded(), r.rest.new_flows.forwarded())));
        }
        println!("\nMpps. {}", ratios.join(", "));
        for (peer, r) in &measured {
            let per = |a: &Series, b: &Series, f: fn(&Sample) -> f64| ratio(a.median(f), b.median(f));
            println!(
                "Sluice ÷ {} per CPU-second consumed: UDP flows {:.2} on core 1, {:.2} on both cores; new flows {:.2} on core 1, {:.2} on both",
                peer.short(),
                per(s, &r.udp, Sample::per_core1_s),
                per(s, &r.udp, Sample::per_cpu_s),
                per(sn, &r.rest.new_flows, Sample::per_core1_s),
                per(sn, &r.rest.new_flows, Sample::per_cpu_s)
            );
        }
        let mut cps = vec![format!("Sluice {}", cps_text(&full.sluice.cps))];
        for k in &full.kernels {
            let text = k.runs.as_ref().map_or("not measured".to_owned(), |r| cps_text(&r.rest.cps));
            cps.push(format!("{} {text}", k.peer.short()));
        }
        println!(
            "Short HTTP connections/s to nginx (wrk -t 1 -c 32, Connection: close; wrk and nginx on core 0): {}",
            cps.join(", ")
        );
        for k in &full.kernels {
            match &k.runs {
                Ok(r) => r.notes.iter().for_each(|n| println!("{n}")),
                Err(why) => println!("{} not measured: {why}", k.peer.short()),
            }
        }
    }

    /// RESULT's figures (benches/README lists them).
    fn result(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let ab = &self.ab;
        figures(&mut m, "ceiling", Some(&ab.ceiling_live));
        figures(&mut m, "sluice", Some(&ab.sluice_live));
        figures(&mut m, "ceiling_afxdp_gen", Some(&ab.ceiling));
        figures(&mut m, "sluice_afxdp_gen", Some(&ab.sluice));
        let pairs = ab.pairs();
        m.insert("vs_ceiling".into(), json!(round3(median(&pairs))));
        m.insert("vs_ceiling_min".into(), json!(round3(pairs.iter().copied().fold(f64::INFINITY, f64::min))));
        m.insert("vs_ceiling_max".into(), json!(round3(pairs.iter().copied().fold(0.0, f64::max))));
        figures(&mut m, "xdp_ceiling", Some(&ab.xdp_live));
        figures(&mut m, "offload", Some(&ab.offload_live));
        figures(&mut m, "xdp_ceiling_afxdp_gen", Some(&ab.xdp));
        figures(&mut m, "offload_afxdp_gen", Some(&ab.offload));
        for (key, p) in [("offload_vs_afxdp", ab.offload_pairs()), ("vs_xdp_ceiling", ab.xdp_pairs())] {
            m.insert(key.into(), json!(round3(median(&p))));
            m.insert(format!("{key}_min"), json!(round3(p.iter().copied().fold(f64::INFINITY, f64::min))));
            m.insert(format!("{key}_max"), json!(round3(p.iter().copied().fold(0.0, f64::max))));
        }
        let Some(full) = &self.full else { return m };
        figures(&mut m, "sluice_newflow", Some(&full.sluice.new_flows));
        figures(&mut m, "offload_newflow", Some(&full.offload_new_flows));
        m.insert("sluice_cps".into(), json!(cps_rate(&full.sluice.cps)));
        for k in &full.kernels {
            let (stem, runs) = (k.peer.stem(), k.runs.as_ref().ok());
            figures(&mut m, stem, runs.map(|r| &r.udp));
            figures(&mut m, &format!("{stem}_newflow"), runs.map(|r| &r.rest.new_flows));
            let vs = runs.map(|r| round3(ratio(ab.sluice.forwarded(), r.udp.forwarded())));
            m.insert(format!("vs_{stem}"), json!(vs));
            m.insert(format!("{stem}_cps"), json!(runs.map(|r| cps_rate(&r.rest.cps))));
            if let Err(why) = &k.runs {
                m.insert(format!("{stem}_unavailable"), json!(why));
            }
        }
        let nft = full.kernels.iter().find(|k| k.peer == KernelPeer::Nft).and_then(|k| k.runs.as_ref().ok());
        let newflow_ratio =
            nft.map(|r| round3(ratio(full.sluice.new_flows.forwarded(), r.rest.new_flows.forwarded())));
        m.insert("newflow_ratio".into(), json!(newflow_ratio));
        m.insert("offered_mpps".into(), json!(round3(ab.ceiling_live.median(|s| s.offered_mpps))));
        m.insert("offered_afxdp_gen_mpps".into(), json!(round3(ab.ceiling.median(|s| s.offered_mpps))));
        m
    }
}

impl Kernel {
    /// The row of `series` of this peer, or why it was not measured.
    fn row(&self, name: &str, series: impl Fn(&KernelRuns) -> &Series) {
        match &self.runs {
            Ok(r) => row(name, series(r)),
            Err(_) => println!("{name:<46} not measured (why: below)"),
        }
    }
}

/// A row's figures in RESULT: `STEM_mpps` (forwarded), `STEM_mpps_per_core1_s` and
/// `STEM_mpps_per_cpu_s`, medians of the repeats; `null` for a row not measured.
fn figures(m: &mut Map<String, Value>, stem: &str, s: Option<&Series>) {
    let fig = |f: fn(&Sample) -> f64| json!(s.map(|s| round3(s.median(f))));
    m.insert(format!("{stem}_mpps"), fig(|x| x.forwarded_mpps));
    m.insert(format!("{stem}_mpps_per_core1_s"), fig(Sample::per_core1_s));
    m.insert(format!("{stem}_mpps_per_cpu_s"), fig(Sample::per_cpu_s));
}

/// Connections per second for RESULT: 0 where wrk failed (as before; the table says why).
fn cps_rate(c: &Result<Cps, String>) -> f64 {
    c.as_ref().map_or(0.0, |c| c.per_s.round())
}

/// A connection rate for the table, with each core's busy share, or why wrk failed.
fn cps_text(c: &Result<Cps, String>) -> String {
    match c {
        Ok(c) => format!(
            "{:.0} (busy: core 0 {:.0} %, core 1 {:.0} %)",
            c.per_s,
            100.0 * c.busy[0],
            100.0 * c.busy[1]
        ),
        Err(e) => format!("failed ({})", e.trim()),
    }
}

/// The column heads.
fn header() {
    println!(
        "{:<46} {:>8} {:>9} {:>13} {:>23} {:>17}",
        "", "", "", "", "CPU busy (softirq)", "Mpps per CPU-s"
    );
    println!(
        "{:<46} {:>8} {:>9} {:>13} {:>11} {:>11} {:>8} {:>8}",
        "Mpps", "offered", "forwarded", "min–max", "core 0", "core 1", "core 1", "both"
    );
}

/// One row: medians of the repeats (and the min–max of forwarded).
fn row(name: &str, s: &Series) {
    let busy = |core: usize| {
        let (b, si) = (s.median(|x| x.busy(core).0), s.median(|x| x.busy(core).1));
        format!("{:.0}% ({:.0}%)", 100.0 * b, 100.0 * si)
    };
    println!(
        "{name:<46} {:>8.3} {:>9.3} {:>13} {:>11} {:>11} {:>8.3} {:>8.3}",
        s.median(|x| x.offered_mpps),
        s.forwarded(),
        range(&s.values(|x| x.forwarded_mpps)),
        busy(0),
        busy(1),
        s.median(Sample::per_core1_s),
        s.median(Sample::per_cpu_s)
    );
}

/// What the columns are.
fn footer() {
    println!(
        "offered, forwarded: Mpps over the generator's run; forwarded = counted by the XDP sink on g0 (where offered ≈ forwarded, the figure is the generator's)."
    );
    println!(
        "CPU busy: the share of the generator's run (its start-up included) each core was not idle (/proc/stat: user, nice, system, irq, softirq), in brackets its softirq part; whole cores: anything else on them counts."
    );
    println!(
        "Mpps per CPU-s: frames the sink counted (millions) ÷ the CPU-seconds consumed during the generator's run on core 1, where every DUT forwards, or on both cores (core 0 runs the generator flat out in every row)."
    );
}

/// `a / b`, 0 where `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Three decimals, for RESULT.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Sluice's Service: the VIP with a UDP and a TCP port, four endpoints on the gen side.
const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: bench
spec:
  clusterIP: 198.19.255.10
  ports:
    - name: udp
      protocol: UDP
      port: 9000
      targetPort: 9000
    - name: http
      port: 80
      targetPort: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  labels:
    kubernetes.io/service-name: bench
addressType: IPv4
ports:
  - name: udp
    protocol: UDP
    port: 9000
  - name: http
    protocol: TCP
    port: 80
endpoints:
  - addresses: ["198.18.1.1"]
  - addresses: ["198.18.1.2"]
  - addresses: ["198.18.1.3"]
  - addresses: ["198.18.1.4"]
"#;

/// kube-proxy's nftables rules (as its nftables mode writes them), the parts this path
/// exercises, with this topology's endpoints: a verdict map dispatching on address, protocol
/// and port, `numgen random` over the endpoints, DNAT, and masquerade (Cluster policy).
fn nft_rules() -> String {
    let eps = |port: u16, proto: &str| {
        (1..=4)
            .map(|i| {
                format!(
                    "  chain ep-{proto}-{i} {{ ip saddr 198.18.1.{i} jump mark-for-masquerade; meta l4proto {proto} dnat to 198.18.1.{i}:{port}; }}\n"
                )
            })
            .collect::<String>()
    };
    format!(
        "table ip kube-proxy {{\n\
         \x20 map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; elements = {{ 198.19.255.10 . udp . 9000 : goto svc-udp, 198.19.255.10 . tcp . 80 : goto svc-tcp }} }}\n\
         \x20 chain nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}\n\
         \x20 chain nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; jump masquerading; }}\n\
         \x20 chain masquerading {{ meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000; masquerade fully-random; }}\n\
         \x20 chain mark-for-masquerade {{ meta mark set meta mark | 0x4000; }}\n\
         \x20 chain services {{ ip daddr . meta l4proto . th dport vmap @service-ips; }}\n\
         \x20 chain svc-udp {{ jump mark-for-masquerade; numgen random mod 4 vmap {{ 0 : goto ep-udp-1, 1 : goto ep-udp-2, 2 : goto ep-udp-3, 3 : goto ep-udp-4 }}; }}\n\
         \x20 chain svc-tcp {{ jump mark-for-masquerade; numgen random mod 4 vmap {{ 0 : goto ep-tcp-1, 1 : goto ep-tcp-2, 2 : goto ep-tcp-3, 3 : goto ep-tcp-4 }}; }}\n\
         {}{}}}\n",
        eps(9000, "udp"),
        eps(80, "tcp")
    )
}

/// (d): kube-proxy's rules and a flowtable, as an operator who tuned the kernel adds it. The
/// forward chain adds each TCP and UDP connection to the flowtable once conntrack has confirmed
/// it (UDP from its second packet, TCP once established); after that its packets are forwarded
/// from d0's ingress hook — NAT from the conntrack entry, the route cached in the flow — without
/// prerouting, forward or postrouting. One-armed: frames enter and leave on d0, the flowtable's
/// only device. The counter counts the packets that still take the slow path.
fn flowtable_rules() -> String {
    format!(
        "{}table inet filter {{\n\
         \x20 flowtable ft {{ hook ingress priority 0; devices = {{ d0 }}; }}\n\
         \x20 chain forward {{ type filter hook forward priority 0; policy accept; meta l4proto {{ tcp, udp }} counter flow add @ft; }}\n\
         }}\n",
        nft_rules()
    )
}
