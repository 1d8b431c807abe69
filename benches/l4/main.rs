//! `benches/run l4`: Sluice's L4 forwarding against the plain AF_XDP forwarding loop (the ceiling
//! on this path) and against the kernel doing kube-proxy's job with nftables, in one run, with the
//! same generator and frames.
//!
//! Topology: two namespaces joined by one veth pair. `gen` (g0) holds the generator, the
//! backends' addresses and the sink; `dut` (d0) is the device under test, one-armed: frames come
//! in on d0 and leave on d0. The generator is `sluice-pktgen` on core 0: its AF_XDP engine for
//! every comparison (the kernel peer takes its frames), and its live-frames engine (BPF_PROG_RUN,
//! several times faster, but the kernel stack of a veth peer does not take its frames) for the
//! ceiling and Sluice once more, so that the generator is not what limits them; the sink is an
//! XDP program on g0 that counts and drops what the DUT forwarded. The DUT's own thread (the forwarder, Sluice's worker) runs on
//! core 1; veth runs the receive softirq on the sender's core (AF_XDP-NOTES pitfall 5), so the
//! DUT's receive path and the kernel peer's whole forwarding path share core 0 with the
//! generator (`SLUICE_BENCH_THREADED_NAPI=1` moves d0's NAPI to a thread on core 1 instead).
//!
//! Subcommands (the orchestrator runs the others inside the namespaces):
//!   run [--seconds S] [--repeat N] [--quick]   the whole benchmark (root); --quick: the
//!                                     ceiling and Sluice only
//!   generate …                        one measurement from the generator namespace
//!   forward --iface IF --core C       the plain AF_XDP MAC-swapping forwarder (the ceiling)
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_benches::{flag, median, range, text_flag};
use sluice_pktgen::livegen::{Generator, Mode};
use sluice_port::{Desc, Port};
use sluice_sandbox::{bin, mac_in, must, run, veth};
use sluice_xsk::{Kind, SteerKey, SteerValue, Steering, XskSocket};

const VIP: [u8; 4] = [198, 19, 255, 10];
const UDP_PORT: u16 = 9000;
const TCP_PORT: u16 = 80;
const FLOWS: u32 = 1024;

/// Set by SIGINT/SIGTERM: the run stops at the next measurement and cleans up.
static INTERRUPTED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("generate") => generate(&args[1..]),
        Some("forward") => forward(&args[1..]),
        _ => {
            Err("usage: sluice-bench-l4 run [--seconds S] [--repeat N] [--quick] | generate … | forward …"
                .into())
        }
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-l4: {e}");
        std::process::exit(1);
    }
}

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

/// A 64-byte IPv4 frame: UDP to VIP:9000, or a TCP SYN to VIP:80 (padded to 64).
/// One measurement, inside the generator namespace: the sink counts on `--iface` while
/// `sluice-pktgen` sends (a warm-up of 20,000 frames first, for neighbour caches and flow
/// tables); prints `offered forwarded seconds`.
fn generate(args: &[String]) -> Result<(), String> {
    let iface = text_flag(args, "--iface").ok_or("--iface")?;
    let dst = text_flag(args, "--dst-mac").ok_or("--dst-mac")?;
    let syn = text_flag(args, "--mode").as_deref() == Some("syn");
    let engine = text_flag(args, "--engine").unwrap_or_else(|| "afxdp".into());
    let seconds: f64 = flag(args, "--seconds", 3.0);
    let core: usize = flag(args, "--core", 0);
    let mut g = Generator::load().map_err(|e| e.to_string())?;
    g.configure(Mode::Syn, if syn { TCP_PORT } else { UDP_PORT }).map_err(|e| e.to_string())?;
    g.attach_sink(&iface).map_err(|e| e.to_string())?;
    let pg = bin("sluice-pktgen").to_string_lossy().into_owned();
    let vip = std::net::Ipv4Addr::from(VIP).to_string();
    let (core_s, secs) = (core.to_string(), seconds.to_string());
    let mut cmd: Vec<&str> = vec![
        &pg,
        "send",
        "--iface",
        &iface,
        "--dst-mac",
        &dst,
        "--dst-ip",
        &vip,
        "--size",
        "60",
        "--cores",
        &core_s,
        "--engine",
        &engine,
        "--json",
    ];
    let flows = FLOWS.to_string();
    if syn {
        // Every frame a new 5-tuple: 65,536 source addresses × 64,000 ports (the live engine
        // varies the address and port itself).
        let ips = if engine == "live" { "1" } else { "65536" };
        cmd.extend([
            "--proto",
            "syn",
            "--src-ip",
            "198.19.0.0",
            "--src-ips",
            ips,
            "--sport",
            "1024",
            "--sports",
            "64000",
        ]);
        cmd.extend(["--dport", "80"]);
    } else {
        cmd.extend(["--src-ip", "198.18.0.2", "--sport", "10000", "--sports", &flows, "--dport", "9000"]);
    }
    let send = |extra: &[&str]| -> Result<serde_json::Value, String> {
        let mut c = cmd.clone();
        c.extend(extra);
        let out = run(&c).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("sluice-pktgen: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("sluice-pktgen's JSON: {e}"))
    };
    send(&["--count", "20000"])?;
    std::thread::sleep(Duration::from_millis(300));
    let sink0 = g.sunk();
    let r = send(&["--duration", &secs])?;
    std::thread::sleep(Duration::from_millis(200)); // the last frames in flight
    let took = r["seconds"].as_f64().unwrap_or(seconds);
    println!("{} {} {took}", r["sent"].as_u64().unwrap_or(0), g.sunk() - sink0);
    Ok(())
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

// ------------------------------------------------------------------------------------------
// The orchestrator

struct Bench {
    id: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    seconds: f64,
    d0_mac: String,
    g0_mac: String,
}

impl Bench {
    fn ns(&self, r: &str) -> String {
        format!("{}-{r}", self.id)
    }

    fn exec(&self, r: &str, args: &[&str]) -> Result<std::process::Output, String> {
        let ns = self.ns(r);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full).map_err(|e| e.to_string())
    }

    fn must(&self, r: &str, args: &[&str]) -> Result<(), String> {
        let ns = self.ns(r);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        must(&full).map_err(|e| e.to_string())
    }

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

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn stop(&mut self, i: usize) {
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
        // Static neighbours: no ARP under load.
        for a in ["198.18.0.2", "198.18.1.1", "198.18.1.2", "198.18.1.3", "198.18.1.4"] {
            self.must(
                "dut",
                &[
                    "ip",
                    "neigh",
                    "replace",
                    a,
                    "lladdr",
                    &self.g0_mac.clone(),
                    "dev",
                    "d0",
                    "nud",
                    "permanent",
                ],
            )?;
        }
        self.must(
            "gen",
            &[
                "ip",
                "neigh",
                "replace",
                "198.18.0.1",
                "lladdr",
                &self.d0_mac.clone(),
                "dev",
                "g0",
                "nud",
                "permanent",
            ],
        )?;
        // d0's NAPI: threaded, on core 1 with the system under test. GRO gives a veth NAPI.
        self.must("dut", &["ethtool", "-K", "d0", "gro", "on"])?;
        if std::env::var_os("SLUICE_BENCH_THREADED_NAPI").is_some() {
            let _ = self.exec("dut", &["sh", "-c", "echo 1 > /sys/class/net/d0/threaded"]);
            self.pin_napi();
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
                let _ = run(&["taskset", "-pc", "1", pid]);
            }
        }
    }

    /// One measurement: (offered Mpps, forwarded Mpps).
    fn measure(&self, syn: bool, engine: &str) -> Result<(f64, f64), String> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        self.pin_napi();
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let me = me.to_string_lossy();
        let secs = self.seconds.to_string();
        let args: [&str; 14] = [
            &me,
            "generate",
            "--iface",
            "g0",
            "--dst-mac",
            &self.d0_mac,
            "--mode",
            if syn { "syn" } else { "udp" },
            "--seconds",
            &secs,
            "--core",
            "0",
            "--engine",
            engine,
        ];
        let out = self.exec("gen", &args)?;
        if !out.status.success() {
            return Err(format!(
                "generator ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() != 3 {
            return Err(format!("generator said {s:?}"));
        }
        Ok((v[0] / v[2] / 1e6, v[1] / v[2] / 1e6))
    }

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
                    .args(["stat", "-C", "1", "-e", e, "-o"])
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

    /// Short HTTP connections per second through the DUT (wrk, `Connection: close`).
    fn cps(&self) -> Result<f64, String> {
        self.must("gen", &["ethtool", "-K", "g0", "gro", "on"])?; // NAPI for frames the DUT sends
        let secs = format!("{}s", self.seconds.max(2.0) as u64);
        if std::env::var_os("SLUICE_BENCH_DEBUG").is_some() {
            let o = self.exec("gen", &["curl", "-sS", "-m", "3", "-v", "http://198.19.255.10/"])?;
            eprintln!("curl: {} {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        }
        let out = self.exec(
            "gen",
            &[
                "taskset",
                "-c",
                "0",
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
                "http://198.19.255.10/",
            ],
        )?;
        let s = String::from_utf8_lossy(&out.stdout);
        let rps = s
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok());
        rps.ok_or_else(|| format!("wrk said: {s}"))
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
        let _ = std::fs::remove_file(format!("/dev/shm/sluice-{}", self.id));
    }
}

#[derive(Default)]
struct Series {
    offered: Vec<f64>,
    forwarded: Vec<f64>,
}

impl Series {
    fn push(&mut self, (offered, forwarded): (f64, f64)) {
        self.offered.push(offered);
        self.forwarded.push(forwarded);
    }
}

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

/// kube-proxy's nftables rules (`shared/peers/kube-proxy-nftables.nft`), the parts this path
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

fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP, nftables)".into());
    }
    let seconds: f64 = flag(args, "--seconds", 3.0);
    let repeat: usize = flag::<usize>(args, "--repeat", 3).max(1);
    let quick = args.iter().any(|a| a == "--quick");
    // Namespaces and tables left by a run that was killed.
    if let Ok(out) = run(&["ip", "netns", "list"]) {
        for name in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()) {
            let pid = name
                .strip_prefix("slb")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = run(&["ip", "netns", "del", name]);
                let _ = std::fs::remove_file(format!(
                    "/dev/shm/sluice-{}",
                    name.rsplit_once('-').map_or(name, |x| x.0)
                ));
            }
        }
    }
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&INTERRUPTED)).map_err(|e| e.to_string())?;
    }
    let id = format!("slb{}", std::process::id());
    let mut b = Bench {
        dir: tempfile::Builder::new().prefix(&format!("{id}-")).tempdir().map_err(|e| e.to_string())?,
        id,
        children: Vec::new(),
        seconds,
        d0_mac: String::new(),
        g0_mac: String::new(),
    };
    b.setup()?;
    eprintln!(
        "topology up: gen (g0 {}) ↔ dut (d0 {}); generator on core 0, DUT on core 1",
        b.g0_mac, b.d0_mac
    );

    // nginx for the connection-rate runs, on the four backend addresses.
    let ngx = b.dir.path().join("nginx");
    std::fs::create_dir_all(ngx.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::write(
        ngx.join("nginx.conf"),
        sluice_sandbox::nginx_conf(
            &ngx,
            "server { listen 80 reuseport; location / { return 200 \"ok\\n\"; } }",
        ),
    )
    .map_err(|e| e.to_string())?;
    let conf = ngx.join("nginx.conf").to_string_lossy().into_owned();
    b.spawn("gen", "nginx.log", &["taskset", "-c", "0", "nginx", "-c", &conf])?;

    // Control on a manifest, for every run of Sluice.
    let manifests: PathBuf = b.dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
    std::fs::write(manifests.join("bench.yaml"), MANIFEST).map_err(|e| e.to_string())?;
    let table = format!("/dev/shm/sluice-{}", b.id);
    let control = bin("sluice-control").to_string_lossy().into_owned();
    let m = manifests.to_string_lossy().into_owned();
    let ctl = b.spawn(
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
    b.wait_ready(ctl, "control.log", "generation 1", "control")?;

    // (a) the ceiling and (b) Sluice, alternating repeat by repeat: each ratio compares two runs
    // a few seconds apart, so a drift of the machine over the run (this VM has them) moves
    // both sides of it, not one.
    let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
    let g0 = b.g0_mac.clone();
    let gw = bin("sluice-gateway").to_string_lossy().into_owned();
    let (mut ceiling, mut ceiling_live, mut sluice, mut sluice_live) =
        (Series::default(), Series::default(), Series::default(), Series::default());
    let mut gwi = 0;
    for r in 0..repeat {
        eprintln!("repeat {}/{repeat}: (a) plain AF_XDP forwarder, (b) Sluice FullNAT …", r + 1);
        let fwd = b.spawn(
            "dut",
            "forward.log",
            &[&me, "forward", "--iface", "d0", "--core", "1", "--peer-mac", &g0],
        )?;
        b.wait_ready(fwd, "forward.log", "forwarding", "the forwarder")?;
        ceiling.push(b.measure(false, "afxdp")?);
        ceiling_live.push(b.profiled(r, "ceiling", |b| b.measure(false, "live"))?);
        b.stop(fwd);
        gwi = b.spawn("dut", "gateway.log", &[&gw, "--iface", "d0", "--table", &table, "--cores", "1"])?;
        b.wait_ready(gwi, "gateway.log", "XDP steering:", "the gateway")?;
        sluice.push(b.measure(false, "afxdp")?);
        sluice_live.push(b.profiled(r, "sluice", |b| b.measure(false, "live"))?);
        if r + 1 < repeat {
            b.stop(gwi);
        }
    }
    let pairs: Vec<f64> = ceiling_live
        .forwarded
        .iter()
        .zip(&sluice_live.forwarded)
        .map(|(c, s)| if *c > 0.0 { s / c } else { 0.0 })
        .collect();
    if quick {
        b.debug_gateway();
        print_quick(repeat, seconds, &ceiling, &sluice, [&ceiling_live, &sluice_live], &pairs);
        return Ok(());
    }
    let sluice_cps = b.cps().unwrap_or(0.0);
    b.must("gen", &["ethtool", "-K", "g0", "gro", "off"])?;
    eprintln!("(b) Sluice, every frame a new flow …");
    let sluice_new = b.series(true, repeat, "afxdp")?;
    b.debug_gateway();
    b.stop(gwi);
    b.stop(ctl);
    b.must("gen", &["ethtool", "-K", "g0", "gro", "off"])?;

    // (c) the kernel: nftables DNAT + masquerade with conntrack.
    b.must("dut", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let rules = b.dir.path().join("kube-proxy.nft");
    std::fs::write(&rules, nft_rules()).map_err(|e| e.to_string())?;
    b.must("dut", &["nft", "-f", &rules.to_string_lossy()])?;

    eprintln!("(c) nftables …");
    let nft = b.series(false, repeat, "afxdp")?;
    if std::env::var_os("SLUICE_BENCH_DEBUG").is_some() {
        for cmd in [
            vec!["ethtool", "-S", "d0"],
            vec!["nstat", "-az"],
            vec!["sysctl", "net.netfilter.nf_conntrack_count"],
        ] {
            let o = b.exec("dut", &cmd)?;
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
    let nft_cps = b.cps().unwrap_or(0.0);
    b.must("gen", &["ethtool", "-K", "g0", "gro", "off"])?;
    eprintln!("(c) nftables, every frame a new flow …");
    let nft_new = b.series(true, repeat, "afxdp")?;
    let ct_max = b
        .exec("dut", &["sysctl", "-n", "net.netfilter.nf_conntrack_max"])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let (c, s, n) = (median(&ceiling.forwarded), median(&sluice.forwarded), median(&nft.forwarded));
    let (cl, sl) = (median(&ceiling_live.forwarded), median(&sluice_live.forwarded));
    let (sn, nn) = (median(&sluice_new.forwarded), median(&nft_new.forwarded));
    println!(
        "\nL4 forwarding, 64-byte frames, one-armed veth, DUT on core 1 (median of {repeat} × {seconds} s; min–max)"
    );
    header();
    println!("generator: sluice-pktgen, AF_XDP engine (what the kernel peer takes too)");
    row("(a) plain AF_XDP MAC-swap loop (ceiling)", &ceiling);
    row(&format!("(b) Sluice FullNAT, UDP, {FLOWS} flows"), &sluice);
    row(&format!("(c) nftables DNAT+masquerade, UDP, {FLOWS} flows"), &nft);
    row("(b) Sluice, every frame a new TCP SYN", &sluice_new);
    row(&format!("(c) nftables, every frame a new TCP SYN (ct max {ct_max})"), &nft_new);
    live_rows(&ceiling_live, &sluice_live, &pairs);
    println!(
        "\nMpps. vs_ceiling {:.2} (live-frames generator, median of the {repeat} paired ratios; {:.2} as a ratio of medians, {:.2} with the AF_XDP generator), vs_nft {:.2}, newflow_ratio {:.2}",
        median(&pairs),
        ratio(sl, cl),
        ratio(s, c),
        ratio(s, n),
        ratio(sn, nn)
    );
    println!(
        "Short HTTP connections/s to nginx (wrk -c 32, Connection: close; client, server and generator share core 0): Sluice {sluice_cps:.0}, nftables {nft_cps:.0}"
    );
    footer();
    let mut result = ceiling_figures(&ceiling, &sluice, [&ceiling_live, &sluice_live], &pairs);
    result.extend(
        serde_json::json!({
            "nft_mpps": round3(n),
            "vs_nft": round3(ratio(s, n)),
            "sluice_newflow_mpps": round3(sn),
            "nft_newflow_mpps": round3(nn),
            "newflow_ratio": round3(ratio(sn, nn)),
            "sluice_cps": sluice_cps.round(),
            "nft_cps": nft_cps.round(),
            "offered_mpps": round3(median(&ceiling_live.offered)),
            "offered_afxdp_gen_mpps": round3(median(&ceiling.offered)),
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    println!("RESULT {}", serde_json::Value::Object(result));
    Ok(())
}

/// The figures of (a) and (b): the live generator's medians, the paired ratios' median and
/// range, the AF_XDP generator's medians.
fn ceiling_figures(
    ceiling: &Series,
    sluice: &Series,
    live: [&Series; 2],
    pairs: &[f64],
) -> serde_json::Map<String, serde_json::Value> {
    let json = serde_json::json!({
        "ceiling_mpps": round3(median(&live[0].forwarded)),
        "sluice_mpps": round3(median(&live[1].forwarded)),
        "vs_ceiling": round3(median(pairs)),
        "vs_ceiling_min": round3(pairs.iter().copied().fold(f64::INFINITY, f64::min)),
        "vs_ceiling_max": round3(pairs.iter().copied().fold(0.0, f64::max)),
        "ceiling_afxdp_gen_mpps": round3(median(&ceiling.forwarded)),
        "sluice_afxdp_gen_mpps": round3(median(&sluice.forwarded)),
    });
    json.as_object().cloned().unwrap_or_default()
}

/// `--quick`: the ceiling and Sluice only.
fn print_quick(
    repeat: usize,
    seconds: f64,
    ceiling: &Series,
    sluice: &Series,
    live: [&Series; 2],
    pairs: &[f64],
) {
    println!("\nL4 forwarding, ceiling and Sluice only (--quick; median of {repeat} × {seconds} s; min–max)");
    header();
    println!("generator: sluice-pktgen, AF_XDP engine");
    row("(a) plain AF_XDP MAC-swap loop (ceiling)", ceiling);
    row(&format!("(b) Sluice FullNAT, UDP, {FLOWS} flows"), sluice);
    live_rows(live[0], live[1], pairs);
    let (cl, sl) = (median(&live[0].forwarded), median(&live[1].forwarded));
    println!(
        "\nMpps. vs_ceiling {:.2} (median of the paired ratios; {:.2} as a ratio of medians)",
        median(pairs),
        ratio(sl, cl)
    );
    footer();
    println!("RESULT {}", serde_json::Value::Object(ceiling_figures(ceiling, sluice, live, pairs)));
}

fn header() {
    println!("{:<44} {:>10} {:>16} {:>10} {:>16}", "", "offered", "", "forwarded", "");
}

fn row(name: &str, s: &Series) {
    println!(
        "{name:<44} {:>10.3} {:>16} {:>10.3} {:>16}",
        median(&s.offered),
        range(&s.offered),
        median(&s.forwarded),
        range(&s.forwarded)
    );
}

/// The live-frames generator's rows, and each repeat's pair: ceiling, Sluice, their ratio.
fn live_rows(ceiling: &Series, sluice: &Series, pairs: &[f64]) {
    println!(
        "generator: sluice-pktgen, live-frames engine (offers more than the ceiling; the kernel stack of a veth peer does not take its frames)"
    );
    row("(a) plain AF_XDP MAC-swap loop (ceiling)", ceiling);
    row(&format!("(b) Sluice FullNAT, UDP, {FLOWS} flows"), sluice);
    let each: Vec<String> = ceiling
        .forwarded
        .iter()
        .zip(&sluice.forwarded)
        .zip(pairs)
        .map(|((c, s), p)| format!("{s:.3}/{c:.3} = {p:.2}"))
        .collect();
    println!("Sluice / ceiling, repeat by repeat (run back to back): {}", each.join(", "));
}

fn footer() {
    println!("Generators on core 0, which also runs the DUT's receive softirq (veth);");
    println!(
        "forwarded = counted by an XDP sink on the generator's interface. Where offered ≈ forwarded, the figure is the generator's."
    );
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
