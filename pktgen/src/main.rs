//! `sluice-pktgen`: send measured traffic through a path and say what came back.
//!
//! ```text
//! sluice-pktgen send --iface g0 --dst-mac 02:.. --src-ip 198.18.0.2 --dst-ip 198.18.0.1 \
//!     [--proto udp|syn|tcp] [--size min|64|imix] [--rate max|1M|250k|500Mbit] [--duration 5 | --count N] \
//!     [--engine afxdp|live] [--cores 1] [--rx] [--json] [--plot out.svg]
//! sluice-pktgen reflect --iface r0 [--core 1] [--duration 10]
//! ```
//!
//! Engines: `afxdp` writes each frame from user space into an AF_XDP socket (copy or zero-copy)
//! and can receive what comes back on the same socket (`--rx`: loss, reordering, duplicates,
//! latency); `live` has the kernel replay the template through an XDP program with
//! `BPF_PROG_RUN` in live-frames mode (IPv4, no receive side) — several times faster per core.
//! `reflect` sends every measurement frame it receives back where it came from (addresses and
//! ports swapped: the checksums stay valid), for a generator in another namespace or host.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use sluice_pktgen::frame::{Frames, IMIX, Proto, Traffic, ack_syn_ack, measurement, reset_of_ack};
use sluice_pktgen::livegen::{Generator, Mode};
use sluice_pktgen::measure::Receiver;
use sluice_pktgen::report::{self, Second, Summary};
use sluice_port::{Desc, Port};
use sluice_xsk::{BindMode, XskSocket};

#[derive(Parser, Debug)]
#[command(name = "sluice-pktgen", version, about = "Sluice's packet generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send traffic (and receive what comes back, with --rx).
    Send(Send),
    /// Send every measurement frame received back to its sender.
    Reflect(Reflect),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Engine {
    /// Frames written from user space into an AF_XDP socket.
    Afxdp,
    /// The kernel replays the template (BPF_PROG_RUN live frames; IPv4 only).
    Live,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ProtoArg {
    /// UDP with sequence numbers and transmit times.
    Udp,
    /// TCP SYNs (a flood).
    Syn,
    /// TCP handshakes against a responder (each SYN-ACK acknowledged, then reset); implies --rx.
    Tcp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BindArg {
    Auto,
    Copy,
    ZeroCopy,
}

#[derive(clap::Args, Debug)]
struct Send {
    /// Interface to send from.
    #[arg(long)]
    iface: String,
    /// Destination MAC address (the next hop's).
    #[arg(long)]
    dst_mac: String,
    /// First source address.
    #[arg(long)]
    src_ip: IpAddr,
    /// Source addresses, consecutive from --src-ip.
    #[arg(long, default_value_t = 1)]
    src_ips: u32,
    /// Destination address.
    #[arg(long)]
    dst_ip: IpAddr,
    /// First source port.
    #[arg(long, default_value_t = 10000)]
    sport: u16,
    /// Source ports, consecutive from --sport (flows = --src-ips × --sports).
    #[arg(long, default_value_t = 1024)]
    sports: u16,
    /// Destination port.
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = ProtoArg::Udp)]
    proto: ProtoArg,
    /// Frame size without FCS (up to 4000), `min` (the smallest the traffic fits: 60 bytes for
    /// IPv4, 80 for IPv6 UDP), or `imix` (7:4:1 of 64, 594, 1518 bytes with FCS).
    #[arg(long, default_value = "min")]
    size: String,
    /// `max`, packets per second (`250k`, `1M`), or bits per second on the wire (`500Mbit`).
    #[arg(long, default_value = "max")]
    rate: String,
    /// Seconds to send for (unless --count comes first).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Frames to send (over all cores).
    #[arg(long)]
    count: Option<u64>,
    /// Engine.
    #[arg(long, value_enum, default_value_t = Engine::Afxdp)]
    engine: Engine,
    /// Cores to send from, one thread each (AF_XDP: thread i sends on queue i).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    cores: Vec<usize>,
    /// Receive the frames that come back (a reflector, or a loop) on the same socket.
    #[arg(long)]
    rx: bool,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Draw throughput over time and the latency distribution into this SVG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
struct Reflect {
    /// Interface to reflect on.
    #[arg(long)]
    iface: String,
    /// Queue.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Core to run on.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Seconds to run (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
}

fn main() -> ExitCode {
    sluice_log::init("info");
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Send(s) => send(s),
        Command::Reflect(r) => reflect(r),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            sluice_log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    v.try_into().map_err(|_| format!("--dst-mac {s:?}: expected six hex bytes, e.g. 02:00:00:00:00:01"))
}

/// Packets per second for `rate`, given the average wire bits of a frame; `None` for `max`.
fn parse_rate(rate: &str, avg_wire_bits: f64) -> Result<Option<f64>, String> {
    let r = rate.trim().to_ascii_lowercase();
    if r == "max" {
        return Ok(None);
    }
    let (num, bits) = match r.strip_suffix("bit").or_else(|| r.strip_suffix("bps")) {
        Some(n) => (n, true),
        None => (r.strip_suffix("pps").unwrap_or(&r), false),
    };
    let (digits, mult) = match num.chars().last() {
        Some('k') => (&num[..num.len() - 1], 1e3),
        Some('m') => (&num[..num.len() - 1], 1e6),
        Some('g') => (&num[..num.len() - 1], 1e9),
        _ => (num, 1.0),
    };
    let v: f64 =
        digits.trim().parse().map_err(|_| format!("--rate {rate:?}: expected max, 250k, 1M or 500Mbit"))?;
    let pps = if bits { v * mult / avg_wire_bits } else { v * mult };
    if !(pps.is_finite() && pps > 0.0) {
        return Err(format!("--rate {rate:?}: must be above zero"));
    }
    if pps > 200e6 {
        return Err(format!(
            "--rate {rate:?}: {pps:.0} pps is more than any engine here can approach (200 Mpps)"
        ));
    }
    Ok(Some(pps))
}

/// CPUs online (the machine's, not this process's affinity: a `taskset` does not hide cores).
fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| s.trim().split(',').filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok()).max())
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |m| m + 1)
}

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// How long transmissions may make no progress before a sender gives up (a path that stopped
/// completing them — a veth peer without NAPI, a link down — would otherwise spin forever).
const STALL: Duration = Duration::from_secs(5);

/// Counters the sending threads share with the reporting one.
#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    received: AtomicU64,
    /// p99 latency so far (ns), refreshed by the receiving side four times a second.
    p99_ns: AtomicU64,
    /// Set by SIGINT / SIGTERM: stop sending, still report.
    stop: Arc<AtomicBool>,
}

/// What one sending thread measured.
struct Outcome {
    /// Seconds from the first frame to the last.
    seconds: f64,
    sent: u64,
    bytes: u64,
    sizes: Vec<u64>,
    rx: Option<Receiver>,
}

/// What `send` was asked for, checked.
struct Plan {
    traffic: Traffic,
    frames: Arc<Frames>,
    /// Packets per second in all, or as fast as possible.
    rate: Option<f64>,
    /// Bits on the wire per frame, on average over the size mix.
    avg_bits: f64,
    /// Whether the frames that come back are received.
    rx: bool,
    ifindex: u32,
}

fn send(a: Send) -> Result<(), String> {
    let plan = plan(&a)?;
    let shared = Arc::new(Shared::default());
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Stops sending; the summary still prints.
        signal_hook::flag::register(sig, Arc::clone(&shared.stop)).map_err(|e| e.to_string())?;
    }
    let start = Instant::now();
    let handles = spawn_senders(&a, &plan, &shared)?;
    let seconds = watch(&handles, &shared, start, plan.avg_bits, plan.rx);
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.join().map_err(|_| "a sending thread panicked".to_string())??);
    }
    let total = Total::of(outcomes, plan.traffic.sizes.len());
    let summary = Summary {
        engine: if a.engine == Engine::Live { "live (BPF_PROG_RUN)" } else { "afxdp" },
        sent: total.sent,
        bytes: total.bytes,
        seconds: total.seconds,
        target_pps: plan.rate,
        rx: total.rx.as_ref(),
        sizes: plan.traffic.sizes.iter().map(|&(s, _)| s).zip(total.by_size).collect(),
    };
    if let Some(path) = &a.plot {
        std::fs::write(path, report::svg(&seconds, total.rx.as_ref()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if a.json {
        println!("{}", summary.json(&seconds));
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

/// Checks the request and builds the frames.
fn plan(a: &Send) -> Result<Plan, String> {
    if !rustix::process::geteuid().is_root() {
        return Err(
            "needs root (AF_XDP sockets and XDP programs need CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)".into(),
        );
    }
    let ifindex = sluice_xsk::socket::if_index(&a.iface).map_err(|e| e.to_string())?;
    let traffic = traffic(a)?;
    let frames = Arc::new(Frames::new(&traffic)?);
    let total_w: u32 = traffic.sizes.iter().map(|&(_, w)| w).sum();
    let avg_bits: f64 =
        traffic.sizes.iter().map(|&(s, w)| report::wire_bits(s) as f64 * f64::from(w)).sum::<f64>()
            / f64::from(total_w.max(1));
    let rate = parse_rate(&a.rate, avg_bits)?;
    if a.cores.is_empty() {
        return Err("--cores: name at least one core".into());
    }
    let ncpu = online_cpus();
    if let Some(c) = a.cores.iter().find(|&&c| c >= ncpu) {
        return Err(format!("--cores: core {c} does not exist (this machine has {ncpu})"));
    }
    if (a.duration.is_nan() || a.duration <= 0.0) && a.count.is_none() {
        return Err("--duration must be above zero (or give --count)".into());
    }
    if a.engine == Engine::Live {
        check_live(a, &traffic)?;
    }
    Ok(Plan { traffic, frames, rate, avg_bits, rx: a.rx || a.proto == ProtoArg::Tcp, ifindex })
}

/// The traffic `--proto`, the addresses, ports and `--size` describe.
fn traffic(a: &Send) -> Result<Traffic, String> {
    let src_mac = sluice_xsk::link::mac(&a.iface).map_err(|e| format!("{}: {e}", a.iface))?;
    let mut traffic = Traffic {
        proto: match a.proto {
            ProtoArg::Udp => Proto::Udp,
            ProtoArg::Syn => Proto::Syn,
            ProtoArg::Tcp => Proto::Tcp,
        },
        src_mac,
        dst_mac: parse_mac(&a.dst_mac)?,
        src_ip: a.src_ip,
        src_ips: a.src_ips,
        dst_ip: a.dst_ip,
        sport: a.sport,
        sports: a.sports,
        dport: a.dport,
        sizes: Vec::new(),
    };
    traffic.sizes = if a.size.eq_ignore_ascii_case("imix") {
        IMIX.iter().map(|&(s, w)| (s - 4, w)).collect()
    } else if a.size.eq_ignore_ascii_case("min") {
        vec![(traffic.min_size(), 1)]
    } else {
        vec![(a.size.parse().map_err(|_| format!("--size {:?}: a number of bytes, min or imix", a.size))?, 1)]
    };
    Ok(traffic)
}

/// What the live-frames engine cannot do.
fn check_live(a: &Send, traffic: &Traffic) -> Result<(), String> {
    if a.proto == ProtoArg::Tcp {
        return Err("--engine live cannot answer SYN-ACKs; use --engine afxdp for --proto tcp".into());
    }
    if !a.dst_ip.is_ipv4() {
        return Err("--engine live sends IPv4 only; use --engine afxdp for IPv6".into());
    }
    if a.rx {
        return Err("--engine live has no receive side; use --engine afxdp with --rx".into());
    }
    if traffic.sizes.len() > 1 {
        return Err("--engine live replays one template: a fixed --size, not imix".into());
    }
    if a.src_ips > 1 && a.proto != ProtoArg::Syn {
        return Err("--engine live varies the source port only: --src-ips 1 (or --proto syn)".into());
    }
    if let std::net::IpAddr::V4(v4) = a.src_ip {
        let lo = u32::from(v4) & 0xffff;
        if a.proto == ProtoArg::Syn && (a.src_ips > 0xffff || lo + a.src_ips > 0x1_0000) {
            return Err(format!(
                "--engine live varies the source address's low 16 bits only: {} + {} addresses cross a /16",
                a.src_ip, a.src_ips
            ));
        }
    }
    Ok(())
}

/// One sending thread per core, each with an equal share of the rate and the count (the last
/// takes what the others' shares leave).
fn spawn_senders(
    a: &Send,
    plan: &Plan,
    shared: &Arc<Shared>,
) -> Result<Vec<std::thread::JoinHandle<Result<Outcome, String>>>, String> {
    let threads = a.cores.len();
    let per_rate = plan.rate.map(|r| r / threads as f64);
    let per_count = a.count.map(|c| c.div_ceil(threads as u64));
    let deadline = Duration::from_secs_f64(if a.count.is_some() { 3600.0 } else { a.duration });
    let mut handles = Vec::new();
    for (i, &core) in a.cores.iter().enumerate() {
        let (frames, shared, iface) = (Arc::clone(&plan.frames), Arc::clone(shared), a.iface.clone());
        let limits = Limits {
            rate: per_rate,
            count: per_count.map(|c| c.min(a.count.unwrap_or(0).saturating_sub(c * i as u64))),
            deadline,
        };
        let (engine, bind, rx, ifindex) = (a.engine, a.bind, plan.rx, plan.ifindex);
        let (proto, sport, sports) = (plan.traffic.proto, a.sport, a.sports);
        // The live engine's SYN sources: the low 16 bits of the first address, and how many
        // (check_live bounded them to one /16).
        let src = match a.src_ip {
            // One address asked for: the old sequence over the whole /16 and every port.
            std::net::IpAddr::V4(_) if a.src_ips <= 1 => (0, 0),
            std::net::IpAddr::V4(v4) => ((u32::from(v4) & 0xffff) as u16, a.src_ips.min(0xffff) as u16),
            std::net::IpAddr::V6(_) => (0, 0),
        };
        let body = move || -> Result<Outcome, String> {
            core_affinity::set_for_current(core_affinity::CoreId { id: core });
            match engine {
                Engine::Afxdp => Afxdp::open(&iface, i as u32, bind, &frames, rx, &shared)?.run(limits),
                Engine::Live => live(&iface, ifindex, &frames, (proto, sport, sports), src, limits, &shared),
            }
        };
        handles.push(
            std::thread::Builder::new().name(format!("pktgen-{i}")).spawn(body).map_err(|e| e.to_string())?,
        );
    }
    Ok(handles)
}

/// While the senders run: a live line once a second on a terminal; returns every second's figures.
fn watch(
    handles: &[std::thread::JoinHandle<Result<Outcome, String>>],
    shared: &Shared,
    start: Instant,
    avg_bits: f64,
    rx: bool,
) -> Vec<Second> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut seconds: Vec<Second> = Vec::new();
    let (mut last_sent, mut last_rx, mut last_t) = (0u64, 0u64, 0.0f64);
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let t = start.elapsed().as_secs_f64();
        if t - last_t < 1.0 {
            continue;
        }
        let (s, r) = (shared.sent.load(Relaxed), shared.received.load(Relaxed));
        let dt = t - last_t;
        let sec = Second {
            at: t,
            tx_pps: (s - last_sent) as f64 / dt,
            tx_bps: (s - last_sent) as f64 * avg_bits / dt,
            rx_pps: (r - last_rx) as f64 / dt,
            p99_ns: shared.p99_ns.load(Relaxed),
        };
        if tty {
            eprint!("\r{}   ", report::live(&sec, s, rx.then(|| s.saturating_sub(r))));
        }
        seconds.push(sec);
        (last_sent, last_rx, last_t) = (s, r, t);
    }
    if tty {
        eprintln!();
    }
    seconds
}

/// The sending threads' outcomes, added up.
struct Total {
    sent: u64,
    bytes: u64,
    /// The longest any thread sent for.
    seconds: f64,
    by_size: Vec<u64>,
    rx: Option<Receiver>,
}

impl Total {
    fn of(outcomes: Vec<Outcome>, sizes: usize) -> Total {
        let mut t = Total { sent: 0, bytes: 0, seconds: 0.0, by_size: vec![0; sizes], rx: None };
        for o in outcomes {
            t.sent += o.sent;
            t.bytes += o.bytes;
            t.seconds = t.seconds.max(o.seconds);
            for (acc, n) in t.by_size.iter_mut().zip(&o.sizes) {
                *acc += n;
            }
            if let Some(r) = o.rx {
                t.rx = Some(match t.rx.take() {
                    None => r,
                    Some(mut acc) => {
                        acc.received += r.received;
                        acc.reordered += r.reordered;
                        acc.duplicates += r.duplicates;
                        let _ = acc.latency.add(&r.latency);
                        acc
                    }
                });
            }
        }
        t
    }
}

/// One sender's limits: its share of the rate and the count, and when to stop.
#[derive(Debug, Clone, Copy)]
struct Limits {
    rate: Option<f64>,
    count: Option<u64>,
    deadline: Duration,
}

/// Frames allowed now by the pacing: `rate` from `start`, minus what was sent.
#[inline]
fn allowed(rate: Option<f64>, start: Instant, sent: u64, batch: usize) -> usize {
    match rate {
        None => batch,
        Some(r) => {
            let due = (start.elapsed().as_secs_f64() * r) as u64;
            due.saturating_sub(sent).min(batch as u64) as usize
        }
    }
}

/// One AF_XDP sender: its socket (and receive program), what it has sent, and its receive side.
struct Afxdp<'a> {
    sock: XskSocket,
    /// The receive program stays attached as long as it lives.
    _generator: Option<Generator>,
    frames: &'a Frames,
    shared: &'a Shared,
    queue: u32,
    iface: &'a str,
    receiver: Option<Receiver>,
    /// TCP handshakes: when each SYN left (by sequence number), for the SYN → SYN-ACK latency.
    syn_times: Vec<u64>,
    /// When the shared p99 is refreshed next (ns).
    p99_at: u64,
}

impl<'a> Afxdp<'a> {
    /// Binds queue `queue` of `iface` (and attaches the receive program when `rx`).
    fn open(
        iface: &'a str,
        queue: u32,
        bind: BindArg,
        frames: &'a Frames,
        rx: bool,
        shared: &'a Shared,
    ) -> Result<Afxdp<'a>, String> {
        let big = (0..64).any(|n| frames.size_of(n) > 2048);
        let config = sluice_xsk::Config {
            frame_size: if big { 4096 } else { 2048 },
            bind: match bind {
                BindArg::Auto => BindMode::Auto,
                BindArg::Copy => BindMode::Copy,
                BindArg::ZeroCopy => BindMode::ZeroCopy,
            },
            ..sluice_xsk::Config::default()
        };
        let sock =
            XskSocket::bind(iface, queue, &config).map_err(|e| format!("queue {queue} of {iface}: {e}"))?;
        let mut generator = None;
        if rx {
            let mut g = Generator::load().map_err(|e| format!("loading the receive program: {e}"))?;
            g.attach_rx(iface, queue, &sock.fd())
                .map_err(|e| format!("attaching the receive program to {iface}: {e}"))?;
            generator = Some(g);
        }
        let tcp = frames.proto() == Proto::Tcp;
        Ok(Afxdp {
            sock,
            _generator: generator,
            frames,
            shared,
            queue,
            iface,
            receiver: rx.then(Receiver::new),
            syn_times: if tcp { vec![0u64; 1 << 16] } else { Vec::new() },
            p99_at: 0,
        })
    }

    /// Sends within `limits`, receiving between batches; then waits a little for the last
    /// frames' way back.
    fn run(mut self, limits: Limits) -> Result<Outcome, String> {
        let limit = limits.count.unwrap_or(u64::MAX);
        // Frames sent per size, in the traffic's order of sizes.
        let mut sizes = vec![0u64; self.frames.sizes()];
        let (mut sent, mut bytes) = (0u64, 0u64);
        let start = Instant::now();
        let mut progress = Instant::now();
        while sent < limit && start.elapsed() < limits.deadline && !self.shared.stop.load(Relaxed) {
            if progress.elapsed() > STALL {
                sluice_log::warn!(
                    "queue {} of {}: the kernel completed no transmission for {} s; stopping after {sent} frames",
                    self.queue,
                    self.iface,
                    STALL.as_secs()
                );
                break;
            }
            let want = allowed(limits.rate, start, sent, BATCH).min((limit - sent) as usize);
            if want == 0 {
                progress = Instant::now(); // waiting for the pacing, not for the kernel
                self.receive(sent);
                pace(limits.rate, start, sent);
                continue;
            }
            let (n, n_bytes) = self.send_batch(want, sent, &mut sizes);
            if n > 0 {
                progress = Instant::now();
            }
            sent += n;
            bytes += n_bytes;
            self.shared.sent.fetch_add(n, Relaxed);
            self.receive(sent);
        }
        let seconds = start.elapsed().as_secs_f64();
        let drain = Instant::now();
        while self.receiver.is_some() && drain.elapsed() < Duration::from_millis(300) {
            self.receive(sent);
        }
        Ok(Outcome { seconds, sent, bytes, sizes, rx: self.receiver.take() })
    }

    /// Writes and sends up to `want` frames, numbered from `sent`; returns how many left and
    /// their bytes (counted per size in `sizes`).
    fn send_batch(&mut self, want: usize, sent: u64, sizes: &mut [u64]) -> (u64, u64) {
        let mut batch = [Desc::default(); BATCH];
        let k = self.sock.alloc_tx(&mut batch[..want]);
        if k == 0 {
            self.sock.kick_tx();
            return (0, 0);
        }
        let t = now_ns();
        for (j, d) in batch[..k].iter_mut().enumerate() {
            let n = sent + j as u64;
            let tpl = self.frames.template(n);
            d.len = tpl.len() as u32;
            let f = self.sock.frame(d);
            f.copy_from_slice(tpl);
            self.frames.patch(f, n, t);
            if !self.syn_times.is_empty() {
                let len = self.syn_times.len() as u64;
                self.syn_times[(n % len) as usize] = t;
            }
        }
        let s = self.sock.send(&batch[..k]);
        self.sock.release(&batch[s..k]);
        let mut bytes = 0;
        for (j, d) in batch[..s].iter().enumerate() {
            sizes[self.frames.size_index(sent + j as u64)] += 1;
            bytes += u64::from(d.len);
        }
        (s as u64, bytes)
    }

    /// Takes what came back: measurement frames recorded; SYN-ACKs answered with the ACK that
    /// completes the handshake and the reset that closes it, the handshake's time recorded.
    fn receive(&mut self, sent: u64) {
        let Some(r) = self.receiver.as_mut() else { return };
        let mut rx = [Desc::default(); BATCH];
        let n = self.sock.recv(&mut rx);
        if n == 0 {
            return;
        }
        let t = now_ns();
        let mut replies = [Desc::default(); 2 * BATCH];
        let mut nr = 0;
        for &d in &rx[..n] {
            let f = self.sock.frame(&d);
            if let Some((seq, tx)) = measurement(f) {
                r.record(seq, tx, t);
            } else if !self.syn_times.is_empty()
                && let Some((seq, len)) = ack_syn_ack(f)
            {
                // The frame number: the SYN's sequence number, in the 2^32 window ending at the
                // frames sent so far.
                let mut k = (sent & !0xffff_ffff) | u64::from(seq);
                if k > sent {
                    k = k.wrapping_sub(1 << 32);
                }
                r.record(k, self.syn_times[(k % self.syn_times.len() as u64) as usize], t);
                let mut ack = d;
                ack.len = len as u32;
                replies[nr] = ack;
                nr += 1;
                if let Some(rst) = reset_after(&mut self.sock, &ack) {
                    replies[nr] = rst;
                    nr += 1;
                }
                continue;
            }
            self.sock.release(&[d]);
        }
        if nr > 0 {
            let s = self.sock.send(&replies[..nr]);
            self.sock.release(&replies[s..nr]);
        }
        self.shared.received.fetch_add(n as u64, Relaxed);
        if t >= self.p99_at {
            self.shared.p99_ns.store(r.percentile(99.0), Relaxed);
            self.p99_at = t + 250_000_000;
        }
    }
}

/// A frame of its own holding the reset that closes the connection `ack` completes.
fn reset_after(sock: &mut XskSocket, ack: &Desc) -> Option<Desc> {
    let mut fresh = [Desc::default()];
    if sock.alloc_tx(&mut fresh) != 1 {
        return None;
    }
    let len = ack.len as usize;
    let mut rst = fresh[0];
    rst.len = ack.len;
    let mut bytes = [0u8; 128];
    bytes[..len].copy_from_slice(sock.frame(ack));
    let out = sock.frame(&rst);
    out.copy_from_slice(&bytes[..len]);
    reset_of_ack(out);
    Some(rst)
}

/// Far from the next frame a paced sender is due to send: sleep most of the way (the rest is
/// spun).
fn pace(rate: Option<f64>, start: Instant, sent: u64) {
    if let Some(r) = rate {
        let next = (sent + 1) as f64 / r;
        let gap = next - start.elapsed().as_secs_f64();
        if gap > 200e-6 {
            std::thread::sleep(Duration::from_secs_f64(gap - 100e-6));
        }
    }
}

/// Frames per batch.
const BATCH: usize = 64;

/// The live-frames engine: the kernel replays the template in runs (see below). `flows` is the
/// protocol and the source ports it walks.
fn live(
    iface: &str,
    ifindex: u32,
    frames: &Frames,
    (proto, sport, sports): (Proto, u16, u16),
    (ip_lo, ips): (u16, u16),
    limits: Limits,
    shared: &Shared,
) -> Result<Outcome, String> {
    let Limits { rate, count, deadline } = limits;
    let mut g = Generator::load().map_err(|e| format!("loading the generator program: {e}"))?;
    let mode = match proto {
        Proto::Udp => Mode::Udp { flows: u32::from(sports), port_base: sport },
        Proto::Syn | Proto::Tcp => Mode::Syn { port_base: sport, ports: u32::from(sports), ip_lo, ips },
    };
    g.configure(mode, 0).map_err(|e| e.to_string())?;
    let mut template = frames.template(0).to_vec();
    frames.patch(&mut template, 0, 0);
    if proto == Proto::Udp {
        g.set_template(&template).map_err(|e| e.to_string())?;
    }
    let limit = count.unwrap_or(u64::MAX);
    let start = Instant::now();
    let base = g.generated();
    let mut sent = 0u64;
    // Each BPF_PROG_RUN call costs some 20 ms of set-up on this kernel (measured: 496 frames
    // took 18 ms, 65,536 took 24–31 ms), so frames go in large runs: as fast as possible, runs
    // sized to the time left (at most 2^20 frames); paced, runs of 50 ms of the target rate,
    // started when they are due — the rate is kept on average, in bursts (the AF_XDP engine
    // paces frame by frame).
    // The first run is small, to learn the rate on this path; the next ones fill the time left.
    let mut est = 0.0_f64;
    while sent < limit && start.elapsed() < deadline && !shared.stop.load(Relaxed) {
        let left = (deadline.as_secs_f64() - start.elapsed().as_secs_f64()).max(0.0);
        let chunk = match rate {
            None => ((left * est) as u64).clamp(65_536, 1 << 20),
            Some(r) => {
                let run = ((r * 0.05) as u64).max(1);
                let due = (start.elapsed().as_secs_f64() * r) as u64;
                if due < sent + run {
                    let wait = ((sent + run) as f64 / r - start.elapsed().as_secs_f64()).min(left);
                    if wait > 0.0 {
                        std::thread::sleep(Duration::from_secs_f64(wait));
                    }
                }
                let due =
                    ((start.elapsed().as_secs_f64() * r) as u64).min((deadline.as_secs_f64() * r) as u64);
                due.saturating_sub(sent).min(1 << 20)
            }
        }
        .min(limit - sent) as u32;
        if chunk == 0 {
            continue;
        }
        let t = Instant::now();
        g.run(ifindex, &template, chunk).map_err(|e| format!("BPF_PROG_RUN on {iface}: {e}"))?;
        est = f64::from(chunk) / t.elapsed().as_secs_f64().max(1e-6);
        sent = g.generated() - base;
        shared.sent.store(sent, Relaxed);
    }
    let len = template.len() as u64;
    Ok(Outcome {
        seconds: start.elapsed().as_secs_f64(),
        sent,
        bytes: sent * len,
        sizes: vec![sent],
        rx: None,
    })
}

fn reflect(a: Reflect) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (AF_XDP sockets and XDP programs)".into());
    }
    core_affinity::set_for_current(core_affinity::CoreId { id: a.core });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let config = sluice_xsk::Config { frame_size: 4096, ..sluice_xsk::Config::default() };
    let mut sock = XskSocket::bind(&a.iface, a.queue, &config)
        .map_err(|e| format!("queue {} of {}: {e}", a.queue, a.iface))?;
    let mut g = Generator::load().map_err(|e| format!("loading the receive program: {e}"))?;
    g.attach_rx(&a.iface, a.queue, &sock.fd()).map_err(|e| format!("attaching to {}: {e}", a.iface))?;
    sluice_log::info!("reflecting on {} queue {}", a.iface, a.queue);
    let start = Instant::now();
    let mut batch = [Desc::default(); 64];
    let mut reflected = 0u64;
    while !stop.load(Relaxed) && (a.duration <= 0.0 || start.elapsed().as_secs_f64() < a.duration) {
        let n = sock.recv(&mut batch);
        if n == 0 {
            sluice_xsk::socket::wait_readable(&[sock.fd()], 50);
            continue;
        }
        for d in &batch[..n] {
            swap(sock.frame(d));
        }
        let s = sock.send(&batch[..n]);
        sock.release(&batch[s..n]);
        reflected += s as u64;
    }
    println!("reflected {reflected}");
    Ok(())
}

/// Turns a frame around: Ethernet, IP addresses and ports swapped (sums of the same words: every
/// checksum stays valid).
fn swap(f: &mut [u8]) {
    if f.len() < 14 {
        return;
    }
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    let (src, len, l4) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f.len() >= 34 => (26, 4, 14 + usize::from(f[14] & 0x0f) * 4),
        0x86dd if f.len() >= 54 => (22, 16, 54),
        _ => return,
    };
    for i in 0..len {
        f.swap(src + i, src + len + i);
    }
    if f.len() >= l4 + 4 {
        f.swap(l4, l4 + 2);
        f.swap(l4 + 1, l4 + 3);
    }
}
