//! Support for Sluice's benchmarks: a frame source that feeds a worker the same way a NIC queue
//! would (a fixed pool of frame buffers, refilled from a template per batch), the standard
//! topology of the micro benchmarks, and the CPU time each core consumed over a measurement
//! (`/proc/stat`), for the end-to-end benchmarks' normalisations.
//!
//! Benchmarks never assert speed; they measure and print. See `benches/README.md`.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use sluice_lb::engine::Config as L4Config;
use sluice_model::Addr;
use sluice_model::service::*;
use sluice_port::{Desc, Port};
use sluice_worker::nexthop::{NextHops, Route};
use sluice_worker::{BATCH, Worker, WorkerConfig};

/// The gateway's MAC in the benchmark topology.
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The client-side router's MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
/// The gateway (node and SNAT) address.
pub const NODE: [u8; 4] = [198, 18, 0, 1];
/// The VIP benchmarked.
pub const VIP: [u8; 4] = [198, 19, 0, 10];
/// Its port.
pub const VIP_PORT: u16 = 9000;

/// A client flow: source address and port (the destination is always `VIP:VIP_PORT`).
#[derive(Debug, Clone, Copy)]
pub struct FlowTuple {
    /// Source address.
    pub src: [u8; 4],
    /// Source port.
    pub sport: u16,
}

/// `n` distinct client flows from 198.18.0.0/15 (skipping the gateway's /24).
pub fn client_flows(n: usize, seed: u64) -> Vec<FlowTuple> {
    let mut s = seed | 1;
    let mut next = move || {
        // xorshift64*: a fixed, dependency-free generator for reproducible workloads.
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = next();
        let host = (r as u32) & 0x0001_ffff;
        if host >> 8 == 0 {
            continue;
        }
        let src = Ipv4Addr::from(0xc612_0000 | host).octets();
        let sport = 1024 + ((r >> 32) as u16 % 60_000);
        if seen.insert((src, sport)) {
            out.push(FlowTuple { src, sport });
        }
    }
    out
}

/// A UDP frame client → VIP of `len` bytes (60 is a minimum 64-byte Ethernet frame less its FCS).
pub fn udp_template(len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len.saturating_sub(14 + 20 + 8)];
    let mut v = Vec::with_capacity(len);
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
        .ipv4([198, 18, 7, 7], VIP, 64)
        .udp(40_000, VIP_PORT)
        .write(&mut v, &payload)
        .expect("template builds");
    v
}

/// What a [`BenchPort`] writes into each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Frames of the given flows, in a random order (established-flow forwarding).
    Flows,
    /// Every frame a new flow (connection storm): source address and port from a counter.
    NewFlows,
}

/// A frame source and sink for benchmarks: `BATCH` buffers, each refilled per receive from a
/// template with the flow's source address and port patched in (checksums are not fixed: the
/// data plane does not verify them and updates them incrementally). Transmitted frames are counted.
#[derive(Debug)]
pub struct BenchPort {
    bufs: Vec<u8>,
    frame_len: usize,
    template: Vec<u8>,
    flows: Vec<FlowTuple>,
    order: Vec<u32>,
    at: usize,
    workload: Workload,
    counter: u64,
    /// Frames handed to `send`.
    pub sent: u64,
    /// Frames handed to the kernel or released.
    pub not_sent: u64,
}

const SLOT: usize = 2048;

impl BenchPort {
    /// A port replaying `flows` in a random order (four times their number of indices, drawn from
    /// `seed`), with frames like `template`.
    pub fn new(template: Vec<u8>, flows: Vec<FlowTuple>, workload: Workload, seed: u64) -> BenchPort {
        let n = flows.len().max(1) as u64;
        let order_len = (flows.len() * 4).clamp(BATCH, 1 << 22);
        let mut s = seed | 1;
        let order = (0..order_len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % n) as u32
            })
            .collect();
        BenchPort {
            bufs: vec![0; SLOT * BATCH],
            frame_len: template.len(),
            template,
            flows,
            order,
            at: 0,
            workload,
            counter: 0,
            sent: 0,
            not_sent: 0,
        }
    }

    /// Replays the flows in their listed order instead of a random one.
    pub fn set_sequential(&mut self) {
        self.order = (0..self.flows.len() as u32).collect();
        self.at = 0;
    }

    #[inline(always)]
    fn fill(&mut self, slot: usize) {
        let b = &mut self.bufs[slot * SLOT..slot * SLOT + self.frame_len];
        b.copy_from_slice(&self.template);
        let (src, sport) = match self.workload {
            Workload::Flows => {
                let f = self.flows[self.order[self.at] as usize];
                self.at = if self.at + 1 == self.order.len() { 0 } else { self.at + 1 };
                (f.src, f.sport)
            }
            Workload::NewFlows => {
                self.counter += 1;
                let c = self.counter;
                let host = 0x100 + (c as u32 % 0x1_ff00);
                (Ipv4Addr::from(0xc612_0000 | host).octets(), 1024 + ((c / 0x1_ff00) % 60_000) as u16)
            }
        };
        b[26..30].copy_from_slice(&src);
        b[34..36].copy_from_slice(&sport.to_be_bytes());
    }
}

impl Port for BenchPort {
    fn recv(&mut self, out: &mut [Desc]) -> usize {
        let n = out.len().min(BATCH);
        for (i, d) in out.iter_mut().enumerate().take(n) {
            self.fill(i);
            *d = Desc { addr: (i * SLOT) as u64, len: self.frame_len as u32 };
        }
        n
    }

    fn frame(&mut self, d: &Desc) -> &mut [u8] {
        let a = d.addr as usize;
        &mut self.bufs[a..a + d.len as usize]
    }

    fn send(&mut self, frames: &[Desc]) -> usize {
        self.sent += frames.len() as u64;
        frames.len()
    }

    fn to_kernel(&mut self, frames: &[Desc]) -> usize {
        self.not_sent += frames.len() as u64;
        frames.len()
    }

    fn release(&mut self, frames: &[Desc]) {
        self.not_sent += frames.len() as u64;
    }
}

/// The floor of touching a frame at all: receive the same batch from the same port, swap the
/// MAC addresses of each frame, transmit. What a plain forwarder does.
pub fn macswap_poll(port: &mut BenchPort, descs: &mut [Desc; BATCH]) -> usize {
    let n = port.recv(descs);
    for d in &descs[..n] {
        let f = port.frame(d);
        let mut eth = sluice_wire::ethernet::Frame::new_unchecked(f);
        eth.swap_macs();
    }
    port.send(&descs[..n]);
    n
}

/// Backend `i` (0-based) of the benchmark service: 198.18.1.(i+1):9000, on-link.
pub fn backend(i: usize) -> [u8; 4] {
    [198, 18, 1 + (i / 250) as u8, (i % 250) as u8 + 1]
}

/// The benchmark's table: one UDP service `VIP:VIP_PORT` → `n_backends` backends, FullNAT.
pub fn table(n_backends: usize) -> Arc<ServiceTable> {
    let spec = TableSpec {
        generation: Generation(1),
        services: vec![ServiceSpec {
            name: "bench/udp:9000".into(),
            frontends: vec![ServiceKey {
                frontend: Frontend::Address(Addr::from_v4(VIP)),
                port: VIP_PORT,
                protocol: Protocol::Udp,
            }],
            backends: (0..n_backends)
                .map(|i| BackendSpec {
                    addr: Addr::from_v4(backend(i)),
                    port: 9000,
                    weight: 1,
                    conditions: Conditions::READY,
                })
                .collect(),
            scheduler: Scheduler::Maglev,
            affinity: None,
            nat: NatMode::FullNat,
            snat: vec![Addr::from_v4(NODE)],
        }],
        node_addrs: vec![Addr::from_v4(NODE)],
        maglev_size: MaglevSize::Fixed(sluice_model::maglev::DEFAULT_SIZE),
        l7: Default::default(),
    };
    Arc::new(ServiceTable::build(&spec).expect("bench table builds"))
}

/// A worker over the benchmark table, with every backend's MAC known.
pub fn worker(n_backends: usize, flow_capacity: usize) -> Worker {
    let mut hops = NextHops::new();
    hops.add_route(Route { prefix: Addr::from_v4([198, 18, 0, 0]), len: 15, via: None });
    for i in 0..n_backends {
        let b = backend(i);
        hops.set_neighbor(Addr::from_v4(b), [0x02, 0, 0, b[1], b[2], b[3]]);
    }
    let cfg = WorkerConfig {
        mac: GW_MAC,
        l4: L4Config {
            flow_capacity,
            snat_ports: sluice_model::PortRange::new(1024, 65_535).expect("a range"),
            ..L4Config::default()
        },
    };
    Worker::new(&cfg, table(n_backends), hops)
}

/// Runs `polls` batches through a worker.
pub fn run(worker: &mut Worker, port: &mut BenchPort, polls: usize, now_ns: u64) -> usize {
    (0..polls).map(|_| worker.poll(port, now_ns)).sum()
}

/// The value after `name` in a benchmark binary's arguments, parsed; `default` without one.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    text_flag(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The text after `name` in a benchmark binary's arguments.
pub fn text_flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The median of repeated measurements (0 with none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() { 0.0 } else { s[s.len() / 2] }
}

/// `min–max` of repeated measurements, three decimals.
pub fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.3}–{hi:.3}")
}

/// `/proc/stat`'s unit, USER_HZ: fixed by the kernel's ABI at 100 on x86-64 and arm64 (what
/// `sysconf(_SC_CLK_TCK)` returns there), whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// One core's CPU time, in seconds: since boot, or over an interval ([`CpuTimes::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CoreTime {
    /// Not idle: user, nice, system, irq and softirq time — `/proc/stat`'s total less idle and
    /// iowait. Steal (time the hypervisor gave to another guest) is not in it: this core did
    /// not run then.
    pub busy_s: f64,
    /// The part of `busy_s` spent in softirq (packet receive, transmit completion, timers).
    /// Without `CONFIG_IRQ_TIME_ACCOUNTING` the kernel samples it at each tick, as it does the rest.
    pub softirq_s: f64,
}

/// Every core's CPU time since boot, as `/proc/stat` counts it (whole cores: every process
/// and interrupt on them, not only what a benchmark started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTimes {
    cores: Vec<CoreTime>,
}

impl CpuTimes {
    /// Reads `/proc/stat` now.
    pub fn read() -> std::io::Result<CpuTimes> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/stat")?))
    }

    /// Parses `/proc/stat`'s per-core lines (`cpuN user nice system idle iowait irq softirq
    /// steal guest guest_nice`, in USER_HZ); the all-cores `cpu` line and other lines are skipped.
    /// Guest time is not added: the kernel already counts it inside user and nice.
    pub fn parse(text: &str) -> CpuTimes {
        let mut cores = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(n) =
                fields.next().and_then(|c| c.strip_prefix("cpu")).and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let t: Vec<f64> =
                fields.take(7).map_while(|v| v.parse::<u64>().ok()).map(|v| v as f64 / USER_HZ).collect();
            let [user, nice, system, _idle, _iowait, irq, softirq] = t[..] else { continue };
            if cores.len() <= n {
                cores.resize(n + 1, CoreTime::default());
            }
            cores[n] = CoreTime { busy_s: user + nice + system + irq + softirq, softirq_s: softirq };
        }
        CpuTimes { cores }
    }

    /// What core `core` consumed between `earlier` and this reading (zero for a core either
    /// reading lacks).
    pub fn since(&self, earlier: &CpuTimes, core: usize) -> CoreTime {
        match (self.cores.get(core), earlier.cores.get(core)) {
            (Some(now), Some(then)) => {
                CoreTime { busy_s: now.busy_s - then.busy_s, softirq_s: now.softirq_s - then.softirq_s }
            }
            _ => CoreTime::default(),
        }
    }
}

/// What `wrk --latency` prints, read back: its summary lines and its latency distribution.
pub mod wrk {
    /// One wrk run, as it reported it.
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Report {
        /// Requests completed (`N requests in T`).
        pub requests: u64,
        /// wrk's own duration, in seconds.
        pub seconds: f64,
        /// `Socket errors:`: connect errors.
        pub connect_errors: u64,
        /// `Socket errors:`: read, write and timeout errors.
        pub other_errors: u64,
        /// `Non-2xx or 3xx responses:`.
        pub non_2xx: u64,
        /// The latency distribution's 50 % line, in ms (`--latency` only).
        pub p50_ms: Option<f64>,
        /// Its 99 % line, in ms.
        pub p99_ms: Option<f64>,
    }

    impl Report {
        /// Reads wrk's output; `None` without its `N requests in T` line.
        pub fn parse(text: &str) -> Option<Report> {
            let (requests, seconds) = requests(text)?;
            let (connect_errors, other_errors) = errors(text);
            Some(Report {
                requests,
                seconds,
                connect_errors,
                other_errors,
                non_2xx: field(text, "Non-2xx or 3xx responses:"),
                p50_ms: percentile_ms(text, "50%"),
                p99_ms: percentile_ms(text, "99%"),
            })
        }

        /// Requests per second over wrk's own duration.
        pub fn rps(&self) -> f64 {
            if self.seconds > 0.0 { self.requests as f64 / self.seconds } else { 0.0 }
        }
    }

    /// A duration as wrk prints it (`812.00us`, `1.23ms`, `2.00s`, `1.00m`), in ms.
    pub fn duration_ms(v: &str) -> Option<f64> {
        let split = v.find(|c: char| c.is_ascii_alphabetic())?;
        let (n, unit) = v.split_at(split);
        let n: f64 = n.parse().ok()?;
        Some(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            "h" => n * 3_600e3,
            _ => return None,
        })
    }

    /// `N requests in 10.00s`: the requests and the seconds.
    pub fn requests(text: &str) -> Option<(u64, f64)> {
        let line = text.lines().find(|l| l.contains(" requests in "))?;
        let mut it = line.split_whitespace();
        let n = it.next()?.parse().ok()?;
        let secs = duration_ms(it.nth(2)?.trim_end_matches(','))? / 1e3;
        Some((n, secs))
    }

    /// `Socket errors: connect C, read R, write W, timeout T`: connect, and the rest.
    pub fn errors(text: &str) -> (u64, u64) {
        let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("Socket errors:")) else {
            return (0, 0);
        };
        let (mut connect, mut other) = (0, 0);
        for part in line.split(',') {
            let mut it = part.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) else {
                continue;
            };
            if k == "connect" { connect += v } else { other += v }
        }
        (connect, other)
    }

    /// A number after `label` on one of wrk's lines (0 without it).
    pub fn field(text: &str, label: &str) -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A line of `--latency`'s distribution (`     99%    5.67ms`), in ms.
    pub fn percentile_ms(text: &str, label: &str) -> Option<f64> {
        let after = text.split("Latency Distribution").nth(1)?;
        after.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == label).then_some(())?;
            duration_ms(it.next()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  140352 0 30766 1332039 1892 0 1154 1203 0 0
cpu0 68515 0 14688 668635 518 0 506 614 0 0
cpu1 71837 5 16078 663403 1373 2 647 588 0 0
intr 123 0 0
softirq 1 2 3
";

    #[test]
    fn parses_each_core_and_skips_the_total() {
        let t = CpuTimes::parse(STAT);
        assert_eq!(t.cores.len(), 2);
        // user + nice + system + irq + softirq; idle, iowait and steal left out.
        assert!((t.cores[0].busy_s - (68515.0 + 14688.0 + 506.0) / 100.0).abs() < 1e-9);
        assert!((t.cores[1].busy_s - (71837.0 + 5.0 + 16078.0 + 2.0 + 647.0) / 100.0).abs() < 1e-9);
        assert!((t.cores[1].softirq_s - 6.47).abs() < 1e-9);
    }

    #[test]
    fn since_is_the_difference_per_core() {
        let before = CpuTimes::parse(STAT);
        let after = CpuTimes::parse(
            &STAT.replace("cpu1 71837 5 16078 663403 1373 2 647", "cpu1 71937 5 16078 663403 1373 2 747"),
        );
        let d = after.since(&before, 1);
        assert!((d.busy_s - 2.0).abs() < 1e-9, "{d:?}");
        assert!((d.softirq_s - 1.0).abs() < 1e-9, "{d:?}");
        assert_eq!(after.since(&before, 0), CoreTime::default());
        assert_eq!(after.since(&before, 7), CoreTime::default());
    }

    const WRK: &str = "Running 3s test @ https://sluice.bench.example/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  300.00us  15.00ms   80.00%
    Req/Sec    30.50k     1.00k   32.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.50ms
     90%    2.00ms
     99%    1.20s
  91873 requests in 3.01s, 13.96MB read
  Socket errors: connect 3, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30522.59
Transfer/sec:      4.64MB
";

    #[test]
    fn reads_wrk() {
        let r = wrk::Report::parse(WRK).expect("a report");
        assert_eq!((r.requests, r.seconds), (91873, 3.01));
        assert_eq!((r.connect_errors, r.other_errors, r.non_2xx), (3, 3, 4));
        assert_eq!(r.p50_ms, Some(0.812));
        assert_eq!(r.p99_ms, Some(1200.0));
        assert_eq!(wrk::duration_ms("1.00m"), Some(60_000.0));
        assert_eq!(wrk::Report::parse("no run"), None);
        // Without --latency: no percentiles, the rest read.
        let plain = WRK.replace("Latency Distribution", "");
        assert_eq!(wrk::Report::parse(&plain).map(|r| r.p99_ms), Some(None));
    }

    #[test]
    fn a_short_line_is_skipped() {
        assert_eq!(CpuTimes::parse("cpu0 1 2 3\n").cores.len(), 0);
    }
}
