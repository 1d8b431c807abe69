//! `benches/run pktgen`: sluice-pktgen's two engines against trafgen (netsniff-ng), sending the
//! same 64-byte UDP frames (1,024 flows) from one pinned core over one veth pair, counted at the
//! receiver by an XDP program that counts and drops them; then the pacing error at half the
//! maximum rate — of the AF_XDP engine, which paces frame by frame (`rate_error_pct`), and of the
//! live-frames engine, which keeps a rate only on average (`live_rate_error_pct`).
//!
//! Topology: namespaces `gen` (g0) and `sink` (s0). Every sender runs on core 1; the receiver's
//! softirq runs on the sender's core (veth, docs/af-xdp.md, pitfall 5), as it would for any sender.
//!
//! Subcommands: `run [--seconds S] [--repeat N]` (root); `sink --iface IF --port P --file F`
//! (inside the sink namespace: counts, writing the running total to F every 20 ms).
#![forbid(unsafe_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_benches::{flag, median, range};
use sluice_pktgen::frame::{Frames, Proto, Traffic};
use sluice_sandbox::{bin, mac_in, must, run, veth};

const PORT: u16 = 9;
const FLOWS: u16 = 1024;

fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("sink") => sink(&args[1..]),
        Some("--list") | None => Ok(()),
        _ => Err("usage: sluice-bench-pktgen run [--seconds S] [--repeat N] | sink …".into()),
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-pktgen: {e}");
        std::process::exit(1);
    }
}

fn sink(args: &[String]) -> Result<(), String> {
    let iface: String = flag(args, "--iface", String::new());
    let file: String = flag(args, "--file", String::new());
    let mut g = sluice_pktgen::livegen::Generator::load().map_err(|e| e.to_string())?;
    g.configure(
        sluice_pktgen::livegen::Mode::Syn { port_base: 0, ports: 0, ip_lo: 0, ips: 0 },
        flag(args, "--port", PORT),
    )
    .map_err(|e| e.to_string())?;
    g.attach_sink(&iface).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))
        .map_err(|e| e.to_string())?;
    let tmp = format!("{file}.tmp");
    while !stop.load(Ordering::Relaxed) {
        // Written aside and renamed into place: a reader never sees half a number.
        if std::fs::write(&tmp, g.sunk().to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

struct Bench {
    id: String,
    dir: tempfile::TempDir,
    sink: Option<Child>,
    s0_mac: String,
}

impl Bench {
    fn ns(&self, r: &str) -> String {
        format!("{}-{r}", self.id)
    }

    fn in_ns(&self, r: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["ip", "netns", "exec"].iter().map(|s| s.to_string()).collect();
        v.push(self.ns(r));
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn must(&self, r: &str, args: &[&str]) -> Result<(), String> {
        let v = self.in_ns(r, args);
        must(&v.iter().map(String::as_str).collect::<Vec<_>>()).map_err(|e| e.to_string())
    }

    fn counted(&self) -> u64 {
        std::fs::read_to_string(self.dir.path().join("sunk"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Runs `args` in the generator namespace for about `seconds`; the frames the sink counted,
    /// in Mpps over the run.
    fn measure(&self, args: &[String], seconds: f64) -> Result<f64, String> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        std::thread::sleep(Duration::from_millis(100));
        let before = self.counted();
        let t = Instant::now();
        let v = self.in_ns("gen", &args);
        let out =
            Command::new(&v[0]).args(&v[1..]).stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        let took = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(150)); // the last frames in flight, and the count's file
        let n = self.counted() - before;
        // trafgen ends on timeout's SIGINT: its status says nothing.
        if !out.status.success() && !args.contains(&"timeout") {
            return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        // Tools with a start-up (program load, socket bind) send for `seconds` of `took`.
        Ok(n as f64 / seconds.min(took) / 1e6)
    }
}

impl Bench {
    /// Runs a paced sender in the generator namespace and returns the rate (Mpps) the sink
    /// counted over a wall-clock window inside the run: from 200 ms after the first frames
    /// arrive to 200 ms before the sender's end — what the pacing achieves, not what the sender
    /// says it sent (the count file is rewritten every 2 ms).
    fn measure_paced(&self, args: &[String], seconds: f64) -> Result<f64, String> {
        let v = self.in_ns("gen", &args.iter().map(String::as_str).collect::<Vec<_>>());
        // The last sender's socket goes away after its process (as in `measure`).
        std::thread::sleep(Duration::from_millis(200));
        let before = self.counted();
        let mut child = Command::new(&v[0])
            .args(&v[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        while self.counted() == before {
            if t.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return Err(format!("{args:?}: nothing arrived"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(200));
        let (c0, t0) = (self.counted(), Instant::now());
        std::thread::sleep(Duration::from_secs_f64((seconds - 0.4).max(0.2)));
        let (c1, t1) = (self.counted(), Instant::now());
        let _ = child.wait();
        Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64() / 1e6)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut c) = self.sink.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for r in ["gen", "sink"] {
            let _ = run(&["ip", "netns", "del", &self.ns(r)]);
        }
    }
}

/// trafgen's configuration for the frame pktgen sends (its first flow), the low byte of the
/// source port counting through 256 values and the UDP checksum recomputed, as pktgen does.
fn trafgen_conf(frame: &[u8]) -> String {
    let mut parts: Vec<String> = frame.iter().map(|b| format!("0x{b:02x}")).collect();
    parts[35] = "dinc(0, 255, 1)".into();
    parts[40] = "csumudp(14, 34)".into();
    parts.remove(41);
    format!("{{\n  {}\n}}\n", parts.join(", "))
}

fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP)".into());
    }
    let seconds: f64 = flag(args, "--seconds", 3.0);
    let repeat: usize = flag(args, "--repeat", 3);
    let id = format!("slp{}", std::process::id());
    let mut b = Bench {
        dir: tempfile::Builder::new().prefix(&format!("{id}-")).tempdir().map_err(|e| e.to_string())?,
        id,
        sink: None,
        s0_mac: String::new(),
    };
    for r in ["gen", "sink"] {
        must(&["ip", "netns", "add", &b.ns(r)]).map_err(|e| e.to_string())?;
    }
    veth((&b.ns("gen"), "g0"), (&b.ns("sink"), "s0"), 1).map_err(|e| e.to_string())?;
    for (r, i, a) in [("gen", "g0", "198.18.0.2/24"), ("sink", "s0", "198.18.0.1/24")] {
        b.must(r, &["ip", "addr", "add", a, "dev", i])?;
        b.must(r, &["ip", "link", "set", i, "up"])?;
    }
    b.s0_mac = mac_in(&b.ns("sink"), "s0");
    let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
    let file = b.dir.path().join("sunk").to_string_lossy().into_owned();
    let v = b.in_ns("sink", &[&me, "sink", "--iface", "s0", "--port", &PORT.to_string(), "--file", &file]);
    let log = b.dir.path().join("sink.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let sink = b.sink.insert(
        Command::new(&v[0])
            .args(&v[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let t = Instant::now();
    while !b.dir.path().join("sunk").exists() {
        let exited = sink.try_wait().ok().flatten();
        if exited.is_some() || t.elapsed() > Duration::from_secs(10) {
            let how = exited.map_or("is not ready after 10 s".to_owned(), |s| format!("exited ({s})"));
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("the sink did not start: it {how}; its log:\n{said}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let pg = bin("sluice-pktgen").to_string_lossy().into_owned();
    let secs = seconds.to_string();
    let sports = FLOWS.to_string();
    let base = |engine: &'static str, rate: String| -> Vec<String> {
        [
            &pg,
            "send",
            "--iface",
            "g0",
            "--dst-mac",
            &b.s0_mac,
            "--src-ip",
            "198.18.0.2",
            "--dst-ip",
            "198.18.0.1",
            "--dport",
            "9",
            "--sports",
            &sports,
            "--size",
            "60",
            "--cores",
            "1",
            "--engine",
            engine,
            "--rate",
            &rate,
            "--duration",
            &secs,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // trafgen: the same frame.
    let traffic = Traffic {
        proto: Proto::Udp,
        src_mac: [0; 6],
        dst_mac: [0; 6],
        src_ip: "198.18.0.2".parse().map_err(|_| "address")?,
        src_ips: 1,
        dst_ip: "198.18.0.1".parse().map_err(|_| "address")?,
        sport: 10000,
        sports: FLOWS,
        dport: PORT,
        sizes: vec![(60, 1)],
    };
    let mut frame = Frames::new(&traffic)?.template(0).to_vec();
    let mac = |s: &str| -> Vec<u8> { s.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect() };
    frame[0..6].copy_from_slice(&mac(&b.s0_mac));
    frame[6..12].copy_from_slice(&mac(&mac_in(&b.ns("gen"), "g0")));
    let conf = b.dir.path().join("trafgen.cfg");
    std::fs::write(&conf, trafgen_conf(&frame)).map_err(|e| e.to_string())?;
    let conf = conf.to_string_lossy().into_owned();
    let tsecs = format!("{}", seconds.ceil() as u64);
    let trafgen: Vec<String> = [
        "timeout", "-s", "INT", &tsecs, "taskset", "-c", "1", "trafgen", "--dev", "g0", "--conf", &conf,
        "--cpus", "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let series = |name: &str, cmd: &[String]| -> Result<Vec<f64>, String> {
        eprintln!("{name} …");
        (0..repeat).map(|_| b.measure(cmd, seconds)).collect()
    };
    let afxdp = series("pktgen, AF_XDP engine", &base("afxdp", "max".into()))?;
    let live = series("pktgen, live-frames engine", &base("live", "max".into()))?;
    let tg = series("trafgen", &trafgen)?;
    let (a, l, t) = (median(&afxdp), median(&live), median(&tg));
    let (faster, fname) = if l >= a { (l, "live") } else { (a, "afxdp") };
    // Pacing at half the maximum, counted at the receiver against the target: the AF_XDP engine
    // (it paces frame by frame), and the faster engine when that is another.
    let error = |engine: &'static str, max: f64| -> Result<f64, String> {
        let half = max / 2.0;
        eprintln!("pktgen, {engine} engine paced at {half:.3} Mpps …");
        let cmd = base(engine, format!("{}", (half * 1e6).round()));
        let runs =
            (0..repeat).map(|_| b.measure_paced(&cmd, seconds)).collect::<Result<Vec<f64>, String>>()?;
        Ok(median(&runs.iter().map(|got| (got - half) / half * 100.0).collect::<Vec<_>>()))
    };
    let afxdp_err = error("afxdp", a)?;
    let err = if fname == "afxdp" { afxdp_err } else { error(fname, faster)? };

    println!(
        "\n64-byte UDP frames (60 without FCS), {FLOWS} flows, one sender on core 1, counted at the receiver by XDP (median of {repeat} × {seconds} s)"
    );
    println!("{:<40} {:>10} {:>18}", "", "Mpps", "min–max");
    println!("{:<40} {:>10.3} {:>18}", "sluice-pktgen, live-frames engine", l, range(&live));
    println!("{:<40} {:>10.3} {:>18}", "sluice-pktgen, AF_XDP engine", a, range(&afxdp));
    println!("{:<40} {:>10.3} {:>18}", "trafgen (netsniff-ng)", t, range(&tg));
    println!(
        "\nratio (faster engine / trafgen) {:.2}; AF_XDP engine / trafgen {:.2}",
        faster / t.max(1e-6),
        a / t.max(1e-6)
    );
    println!(
        "pacing at half the maximum, counted at the receiver: AF_XDP engine {afxdp_err:+.3} % (target {:.3} Mpps, frame by frame);",
        a / 2.0
    );
    println!(
        "  {fname} engine {err:+.3} % (target {:.3} Mpps, on average: runs of 50 ms at full speed, which the receiver may not absorb)",
        faster / 2.0
    );
    println!(
        "RESULT {}",
        serde_json::json!({
            "pktgen_mpps": (faster * 1e3).round() / 1e3,
            "pktgen_live_mpps": (l * 1e3).round() / 1e3,
            "pktgen_afxdp_mpps": (a * 1e3).round() / 1e3,
            "trafgen_mpps": (t * 1e3).round() / 1e3,
            "ratio": (faster / t.max(1e-6) * 100.0).round() / 100.0,
            // The pacing engine's: AF_XDP paces frame by frame; the live engine keeps a rate only
            // on average, in bursts at full speed (each BPF_PROG_RUN call costs ~20 ms of set-up).
            "rate_error_pct": (afxdp_err * 1000.0).round() / 1000.0,
            "live_rate_error_pct": (err * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
