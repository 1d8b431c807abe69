//! sluice-pktgen through real namespaces: the generator against the reflector (exact counts,
//! no loss at a modest rate, pacing, IMIX), and the kernel of a peer namespace checking every
//! checksum of what it generates (needs root; see the crate docs).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_sandbox::{bin, mac_in, must, require_root, run, veth};

static N: AtomicU32 = AtomicU32::new(0);

/// One test at a time: "no loss" needs the machine's two cores, not a share of them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// For test `test` (skipped without root): the turn to run, and a pair with `queues` queues.
fn pair(test: &str, queues: u32) -> Option<(std::sync::MutexGuard<'static, ()>, Pair)> {
    if !require_root(test) {
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Some((turn, Pair::with_queues(queues)))
}

/// Two namespaces joined by a veth pair: `a` (g0, 198.18.0.2, 2001:db8::2) and `b` (r0,
/// 198.18.0.1, 2001:db8::1). Removed on drop, with the processes started in them.
struct Pair {
    a: String,
    b: String,
    kids: Vec<Child>,
    /// The logs of the processes started (removed with the pair).
    logs: Vec<tempfile::NamedTempFile>,
}

impl Pair {
    /// With `queues` queues on both ends of the veth.
    fn with_queues(queues: u32) -> Pair {
        // Named like the sandbox's, so that a crashed run's leftovers are removed by the next.
        let id = format!("sl{}x{}", std::process::id(), 900 + N.fetch_add(1, Ordering::Relaxed));
        let p = Pair { a: format!("{id}-pga"), b: format!("{id}-pgb"), kids: Vec::new(), logs: Vec::new() };
        for ns in [&p.a, &p.b] {
            must(&["ip", "netns", "add", ns]).unwrap();
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]).unwrap();
        }
        veth((&p.a, "g0"), (&p.b, "r0"), queues).unwrap();
        for (ns, dev, v4, v6) in
            [(&p.a, "g0", "198.18.0.2/24", "2001:db8::2/64"), (&p.b, "r0", "198.18.0.1/24", "2001:db8::1/64")]
        {
            must(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]).unwrap();
            must(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]).unwrap();
            must(&["ip", "-n", ns, "link", "set", dev, "up"]).unwrap();
            // Pitfall 3 of docs/af-xdp.md: a veth receiving from an AF_XDP / XDP sender needs NAPI.
            must(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "gro", "on"]).unwrap();
        }
        p
    }

    /// Starts a reflector in `b`, and waits (10 s at most) until it says it is attached.
    fn reflector(&mut self) {
        let pg = bin("sluice-pktgen");
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.b])
            .arg(&pg)
            .args(["reflect", "--iface", "r0", "--core", "1", "--duration", "60"])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("reflector");
        self.kids.push(child);
        let said = || std::fs::read_to_string(log.path()).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !said().contains("reflecting on") {
            assert!(Instant::now() < deadline, "the reflector did not start: {}", said());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.logs.push(log);
    }

    /// Runs `sluice-pktgen send` in `a` towards `b` with `args`; the JSON summary.
    fn send(&self, args: &[&str]) -> Value {
        let pg = bin("sluice-pktgen");
        let mac = mac_in(&self.b, "r0");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.a]).arg(&pg).args([
            "send",
            "--iface",
            "g0",
            "--dst-mac",
            &mac,
            "--json",
        ]);
        cmd.args(args);
        let out = cmd.output().expect("pktgen");
        assert!(out.status.success(), "pktgen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// How far a kernel SNMP counter of namespace `ns` has moved past `before`, once it has
    /// moved by `want` or has stood still for 3 s (the receiver's softirq may still be counting
    /// what the sender has already sent).
    fn moved(&self, ns: &str, name: &str, before: u64, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let d = self.counter(ns, name) - before;
            if d >= want || Instant::now() > deadline {
                return d;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A kernel SNMP counter of namespace `ns` (nstat's name).
    fn counter(&self, ns: &str, name: &str) -> u64 {
        let o = run(&["ip", "netns", "exec", ns, "nstat", "-az", name]).unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next()?.parse().ok()).flatten()
            })
            .unwrap_or(0)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for k in &mut self.kids {
            // SIGTERM first: an nginx master killed outright leaves its workers running.
            if let Some(pid) = rustix::process::Pid::from_raw(k.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while k.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = k.kill();
            let _ = k.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

#[test]
fn the_generator_and_the_reflector_agree_on_every_frame() {
    let Some((_turn, mut p)) = pair("the_generator_and_the_reflector_agree_on_every_frame", 1) else {
        return;
    };
    p.reflector();
    for (src, dst) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
        let r = p.send(&[
            "--src-ip", src, "--dst-ip", dst, "--count", "20000", "--rate", "20k", "--rx", "--cores", "0",
        ]);
        assert_eq!(r["sent"], 20_000, "{r}");
        assert_eq!(r["received"], 20_000, "{r}");
        assert_eq!((r["lost"].as_u64(), r["duplicates"].as_u64()), (Some(0), Some(0)), "{r}");
        let p99 = r["latency_ns"]["p99"].as_u64().unwrap();
        assert!(p99 > 0 && p99 < 1_000_000_000, "{r}");
        // Paced, not bursted: the achieved rate is the asked one.
        assert!(r["rate_error_pct"].as_f64().unwrap().abs() < 2.0, "{r}");
        // The once-a-second figures carry the latency measured so far.
        let receiving: Vec<&Value> =
            r["per_second"].as_array().unwrap().iter().filter(|s| s["rx_pps"].as_f64() > Some(0.0)).collect();
        assert!(!receiving.is_empty() && receiving.iter().all(|s| s["p99_ns"].as_u64() > Some(0)), "{r}");
    }
}

#[test]
fn imix_goes_out_in_its_proportions_and_comes_back_whole() {
    let Some((_turn, mut p)) = pair("imix_goes_out_in_its_proportions_and_comes_back_whole", 1) else {
        return;
    };
    p.reflector();
    let r = p.send(&[
        "--src-ip",
        "198.18.0.2",
        "--dst-ip",
        "198.18.0.1",
        "--count",
        "12000",
        "--rate",
        "30k",
        "--size",
        "imix",
        "--rx",
    ]);
    let sizes: Vec<(u64, u64)> = r["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["size"].as_u64().unwrap(), s["frames"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, vec![(60, 7000), (590, 4000), (1514, 1000)], "{r}");
    assert_eq!((r["received"].as_u64(), r["lost"].as_u64()), (Some(12_000), Some(0)), "{r}");
}

#[test]
fn the_kernel_of_the_receiver_finds_every_checksum_valid() {
    let Some((_turn, p)) = pair("the_kernel_of_the_receiver_finds_every_checksum_valid", 1) else { return };
    // No listener: the kernel checks each datagram's checksum, then counts it as for no port.
    let flows = ["--src-ips", "1", "--sports", "500", "--dport", "9", "--count", "5000", "--rate", "20k"];
    let before = (p.counter(&p.b, "UdpNoPorts"), p.counter(&p.b, "UdpInCsumErrors"));
    let mut args = vec!["--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1", "--size", "imix"];
    args.extend(flows);
    assert_eq!(p.send(&args)["sent"], 5000);
    let v6_before = (p.counter(&p.b, "Udp6NoPorts"), p.counter(&p.b, "Udp6InCsumErrors"));
    let mut args = vec!["--src-ip", "2001:db8::2", "--dst-ip", "2001:db8::1", "--size", "300"];
    args.extend(flows);
    assert_eq!(p.send(&args)["sent"], 5000);
    let syn_before = (p.counter(&p.b, "TcpInSegs"), p.counter(&p.b, "TcpInCsumErrors"));
    let mut args = vec!["--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1", "--proto", "syn", "--dport", "7"];
    args.extend(&flows[..4]);
    args.extend(["--count", "3000", "--rate", "20k"]);
    assert_eq!(p.send(&args)["sent"], 3000);
    assert_eq!(p.moved(&p.b, "UdpNoPorts", before.0, 5000), 5000, "every IPv4 datagram reached UDP");
    assert_eq!(p.moved(&p.b, "Udp6NoPorts", v6_before.0, 5000), 5000, "every IPv6 datagram reached UDP");
    assert!(p.moved(&p.b, "TcpInSegs", syn_before.0, 3000) >= 3000, "every SYN reached TCP");
    assert_eq!(p.counter(&p.b, "UdpInCsumErrors") - before.1, 0);
    assert_eq!(p.counter(&p.b, "Udp6InCsumErrors") - v6_before.1, 0);
    assert_eq!(p.counter(&p.b, "TcpInCsumErrors") - syn_before.1, 0);
    // The live engine's SYNs over a range of sources (40 addresses × 50 ports): the kernel
    // patches address and port in every frame, and every checksum must still hold.
    let live_before = (p.counter(&p.b, "TcpInSegs"), p.counter(&p.b, "TcpInCsumErrors"));
    let r = p.send(&[
        "--src-ip",
        "198.18.0.2",
        "--dst-ip",
        "198.18.0.1",
        "--proto",
        "syn",
        "--dport",
        "7",
        "--src-ips",
        "40",
        "--sports",
        "50",
        "--engine",
        "live",
        "--count",
        "2000",
        "--rate",
        "20k",
    ]);
    let sent = r["sent"].as_u64().unwrap();
    assert!(sent >= 2000, "{r}");
    assert!(p.moved(&p.b, "TcpInSegs", live_before.0, sent * 99 / 100) >= sent * 99 / 100, "{r}");
    assert_eq!(p.counter(&p.b, "TcpInCsumErrors") - live_before.1, 0, "the live engine's fixes are right");
}

#[test]
fn tcp_handshakes_complete_on_a_real_server() {
    let Some((_turn, mut p)) = pair("tcp_handshakes_complete_on_a_real_server", 1) else { return };
    // nginx in `b`, listening on port 80.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        sluice_sandbox::nginx_conf(dir.path(), "server { listen 80; listen [::]:80; return 200; }"),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &p.b, "nginx", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    p.kids.push(child);
    let t = std::time::Instant::now();
    while !String::from_utf8_lossy(&run(&["ip", "netns", "exec", &p.b, "ss", "-ltn"]).unwrap().stdout)
        .contains(":80 ")
    {
        assert!(t.elapsed() < Duration::from_secs(10), "nginx does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (src, dst) in [("198.18.0.2", "198.18.0.1"), ("2001:db8::2", "2001:db8::1")] {
        let (opens, resets) = (p.counter(&p.b, "TcpPassiveOpens"), p.counter(&p.b, "TcpEstabResets"));
        let r = p.send(&[
            "--src-ip", src, "--dst-ip", dst, "--proto", "tcp", "--dport", "80", "--sports", "3000",
            "--count", "3000", "--rate", "3k",
        ]);
        // Every SYN answered, every answer acknowledged: the server saw 3,000 connections
        // established, and each reset while established.
        assert_eq!(
            (r["sent"].as_u64(), r["received"].as_u64(), r["lost"].as_u64()),
            (Some(3000), Some(3000), Some(0)),
            "{r}"
        );
        assert!(r["latency_ns"]["p50"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(p.moved(&p.b, "TcpPassiveOpens", opens, 3000), 3000);
        assert_eq!(p.moved(&p.b, "TcpEstabResets", resets, 3000), 3000, "every handshake completed");
    }
}

#[test]
fn two_cores_share_the_work_and_the_count() {
    let Some((_turn, p)) = pair("two_cores_share_the_work_and_the_count", 2) else { return };
    let before = p.counter(&p.b, "UdpNoPorts");
    // AF_XDP: a thread per core, thread i on queue i; an odd count split between them.
    let on_both = ["--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1", "--cores", "0,1"];
    let r = p.send(&[&on_both[..], &["--count", "10001", "--rate", "20k"]].concat());
    assert_eq!(r["sent"], 10_001, "{r}");
    // The live engine on both cores, for a duration.
    let r = p.send(&[&on_both[..], &["--duration", "1", "--engine", "live"]].concat());
    let live = r["sent"].as_u64().unwrap();
    assert!(live > 10_000, "{r}");
    assert!(r["seconds"].as_f64().unwrap() < 1.5, "the duration is kept: {r}");
    let arrived = p.moved(&p.b, "UdpNoPorts", before, 10_001 + live * 99 / 100);
    // The paced AF_XDP frames all; the live engine's full-speed bursts nearly all.
    assert!(
        arrived >= 10_001 + live * 99 / 100 && arrived <= 10_001 + live,
        "{arrived} of {}",
        10_001 + live
    );
}

#[test]
fn a_link_going_down_stops_the_sender_with_what_it_sent() {
    let Some((_turn, p)) = pair("a_link_going_down_stops_the_sender_with_what_it_sent", 1) else { return };
    let a = p.a.clone();
    let down = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        must(&["ip", "-n", &a, "link", "set", "g0", "down"]).unwrap();
    });
    let mac = mac_in(&p.b, "r0");
    let out = run(&[
        "ip",
        "netns",
        "exec",
        &p.a,
        &bin("sluice-pktgen").to_string_lossy(),
        "send",
        "--iface",
        "g0",
        "--dst-mac",
        &mac,
        "--src-ip",
        "198.18.0.2",
        "--dst-ip",
        "198.18.0.1",
        "--count",
        "100000000",
        "--rate",
        "50k",
        "--json",
    ])
    .unwrap();
    down.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("completed no transmission for 5 s"), "{err}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("a summary still");
    let sent = r["sent"].as_u64().unwrap();
    assert!(sent > 10_000 && sent < 1_000_000, "{r}");
}

#[test]
fn mistakes_get_clear_errors() {
    let Some((_turn, p)) = pair("mistakes_get_clear_errors", 1) else { return };
    let pg = bin("sluice-pktgen");
    let pg = pg.to_string_lossy();
    let base = ["send", "--dst-mac", "02:00:00:00:00:01", "--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1"];
    let err = |pre: &[&str], args: &[&str]| {
        let mut all: Vec<&str> = pre.to_vec();
        all.push(&pg);
        all.extend(base);
        all.extend(args);
        let out = run(&all).unwrap();
        assert!(!out.status.success(), "{all:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(&[], &["--iface", "nosuch0"]).contains("no network interface named \"nosuch0\""));
    let ns = ["ip", "netns", "exec", p.a.as_str()];
    assert!(err(&ns, &["--iface", "g0", "--rate", "0"]).contains("must be above zero"));
    assert!(err(&ns, &["--iface", "g0", "--rate", "900M"]).contains("more than any engine"));
    assert!(err(&ns, &["--iface", "g0", "--rate", "fast"]).contains("expected max, 250k"));
    assert!(err(&ns, &["--iface", "g0", "--size", "40"]).contains("frame size 40"));
    assert!(err(&ns, &["--iface", "g0", "--engine", "live", "--rx"]).contains("no receive side"));
    assert!(err(&ns, &["--iface", "g0", "--engine", "live", "--src-ips", "2"]).contains("source port only"));
    let past = ["--iface", "g0", "--engine", "live", "--proto", "syn", "--src-ips", "70000"];
    assert!(err(&ns, &past).contains("cross a /16"));
    assert!(err(&ns, &["--iface", "g0", "--dst-mac", "zz"]).contains("--dst-mac"));
    let nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
    assert!(err(&nobody, &["--iface", "lo"]).contains("needs root"));
}
