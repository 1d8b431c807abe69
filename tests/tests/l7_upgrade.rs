//! Upgrades of the L7 stage without a refused connection (issue 16, item 2): a new gateway
//! takes the L7 listening sockets over from the running one through the handover socket, the
//! old one drains and exits.
//!
//! - `wrk` keep-alive loops and new-connection-per-request loops (`Connection: close`) over
//!   HTTP and HTTPS, and `curl` over HTTP/2, across an upgrade: no failed request, no refused connection, the old
//!   gateway exits by itself once drained and the new one serves.
//! - The old gateway exits at its drain deadline with a connection still open (a request head
//!   that never ends).
//! - No gateway at the handover socket, or one that answers with something that is not a
//!   listener: a plain start that serves.
//!
//! Needs root; see the crate docs. They check behaviour, never speed.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_sandbox::tls::{certificate, tls_secret};
use sluice_sandbox::{Backend, Sandbox, Topology, bin, example, fast_path_from_env, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// The gateway's command line, as `Sandbox::start_gateway` makes it, with `extra`.
fn gateway_args(sb: &Sandbox, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        bin("sluice-gateway").to_string_lossy().into_owned(),
        "--iface".into(),
        "gw0".into(),
        "--table".into(),
        sb.table().to_string_lossy().into_owned(),
        "--flows".into(),
        "65536".into(),
        // The sandbox's own flow journals (removed with it), as start_gateway gives them.
        "--flow-journal".into(),
        format!("{}-flows", sb.table().display()),
    ];
    if let Some(f) = fast_path_from_env() {
        args.extend(["--fast-path".into(), f.into()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The sandbox with the Ingress example (HTTP and HTTPS on [`L7`]) and a first gateway whose
/// handover socket is `handover` and drain time `drain_s`; `None` when skipped.
fn up(test: &str, dir: &Path, handover: &Path, drain_s: u64) -> Option<Sandbox> {
    up_with(test, dir, handover, drain_s, 1)
}

/// [`up`] on a gateway interface of `queues` queues, the first gateway with a worker each.
fn up_with(test: &str, dir: &Path, handover: &Path, drain_s: u64, queues: u32) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let topology = Topology { queues, ..Topology::default() };
    let mut sb = Sandbox::with_topology(&backends(), topology).expect("sandbox");
    let (cert, key) = certificate(dir, "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    sb.set_manifests(&[example("ingress")], &[("tls-secret.yaml", &secret)]).expect("manifests");
    sb.start_control().expect("control");
    let drain = drain_s.to_string();
    let h = handover.to_string_lossy().into_owned();
    let q = queues.max(1).to_string();
    sb.start_gateway(&[
        "--l7-address",
        L7,
        "--handover-socket",
        &h,
        "--drain-seconds",
        &drain,
        "--queues",
        &q,
    ])
    .expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    Some(sb)
}

/// Starts the next gateway (process `gateway-new`) on the same handover socket.
fn start_next(sb: &mut Sandbox, handover: &Path, extra: &[&str]) {
    start_named(sb, "gateway-new", handover, extra);
}

/// Starts a next gateway as process `name`.
fn start_named(sb: &mut Sandbox, name: &str, handover: &Path, extra: &[&str]) {
    let h = handover.to_string_lossy().into_owned();
    let mut more = vec!["--l7-address", L7, "--handover-socket", &h];
    more.extend_from_slice(extra);
    let args = gateway_args(sb, &more);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.spawn("gw", name, &args).expect("the next gateway");
}

/// Waits (`within`) until `name`'s log contains `text`.
fn wait_log(sb: &Sandbox, name: &str, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !sb.log(name).contains(text) {
        assert!(
            Instant::now() < deadline,
            "{name} did not say {text:?}:\n{}\n--- gateway:\n{}",
            sb.log(name),
            sb.log("gateway")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has exited (a zombie waiting for its parent, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Waits (`within`) until the first gateway has exited by itself; returns how long it took.
fn wait_exit(sb: &Sandbox, within: Duration) -> Duration {
    wait_exit_of(sb, "gateway", within)
}

/// Waits (`within`) until gateway process `name` has exited by itself.
fn wait_exit_of(sb: &Sandbox, name: &str, within: Duration) -> Duration {
    let pid = sb.pid(name).expect("the old gateway");
    let start = Instant::now();
    while !exited(pid) {
        assert!(start.elapsed() < within, "the old gateway did not exit:\n{}", sb.log(name));
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// What one `wrk` run reports.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    /// Socket errors: connect, read, write, timeout.
    errors: [u64; 4],
    non_2xx: u64,
    text: String,
}

impl Wrk {
    fn parse(text: &str) -> Wrk {
        let mut w = Wrk { text: text.to_owned(), ..Wrk::default() };
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("Socket errors:") {
                for (i, part) in rest.split(',').enumerate().take(4) {
                    w.errors[i] =
                        part.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
                }
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                w.non_2xx = rest.trim().parse().unwrap_or(u64::MAX);
            } else if line.contains("requests in") {
                w.requests = line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        }
        w
    }

    fn failed(&self) -> u64 {
        self.errors.iter().sum::<u64>() + self.non_2xx
    }
}

/// HTTP/2 over TLS (ALPN h2) for `secs`: curl, 100 requests multiplexed 4 at a time on one
/// connection per run, runs back to back; reported as wrk's figures (requests answered 200;
/// the others, and curl's errors, as read errors). curl retries on a new connection what a
/// GOAWAY excludes, as a client should.
fn h2_loop(ns: &str, secs: u64) -> Wrk {
    let script = format!(
        "end=$(( $(date +%s) + {secs} )); while [ $(date +%s) -lt $end ]; do \
         curl -sS --no-progress-meter -Z --parallel-max 4 --http2 -k --resolve foo.bar.com:443:{L7} \
         -m 10 -w 'code=%{{http_code}}\\n' 'https://foo.bar.com/?[1-100]' 2>&1; done"
    );
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", &script])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = text.matches("code=200").count() as u64;
    let others = text.matches("code=").count() as u64 - ok + text.matches("curl: (").count() as u64;
    Wrk { requests: ok, errors: [0, others, 0, 0], non_2xx: 0, text }
}

/// The wrk loops: (name, arguments after `wrk`).
fn loops(secs: u64) -> Vec<(&'static str, Vec<String>)> {
    let d = format!("{secs}s");
    let base = |close: bool, scheme: &str| {
        let mut a: Vec<String> = ["-t1", "-c4", "-d", &d, "--timeout", "10s", "-H", "Host: foo.bar.com"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if close {
            a.extend(["-H".into(), "Connection: close".into()]);
        }
        a.push(format!("{scheme}://{L7}/"));
        a
    };
    vec![
        ("http keep-alive", base(false, "http")),
        ("https keep-alive", base(false, "https")),
        ("http new connections", base(true, "http")),
        ("https new connections", base(true, "https")),
    ]
}

#[test]
fn an_upgrade_under_wrk_load_fails_no_request_and_refuses_no_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handover = dir.path().join("handover.sock");
    let Some(mut sb) = up("an_upgrade_under_wrk_load", dir.path(), &handover, 20) else { return };
    let ns = sb.ns("cl");
    let results = std::thread::scope(|s| {
        let runs: Vec<_> = loops(10)
            .into_iter()
            .map(|(name, args)| {
                let ns = ns.clone();
                s.spawn(move || {
                    let out = std::process::Command::new("ip")
                        .args(["netns", "exec", &ns, "wrk"])
                        .args(&args)
                        .output()
                        .expect("wrk");
                    (name, Wrk::parse(&String::from_utf8_lossy(&out.stdout)))
                })
            })
            .collect();
        let h2 = s.spawn(|| h2_loop(&ns, 10));
        std::thread::sleep(Duration::from_secs(3));
        start_next(&mut sb, &handover, &[]);
        wait_log(&sb, "gateway-new", "the old gateway is draining", Duration::from_secs(20));
        let took = wait_exit(&sb, Duration::from_secs(25));
        eprintln!("the old gateway exited {} ms after the new one served", took.as_millis());
        let mut all = runs.into_iter().map(|r| r.join().expect("wrk thread")).collect::<Vec<_>>();
        all.push(("https HTTP/2", h2.join().expect("curl thread")));
        all
    });
    let old = sb.log("gateway");
    let status = sb.stop("gateway", rustix::process::Signal::TERM).expect("the old gateway");
    assert!(status.success(), "the old gateway exits cleanly: {status:?}\n{old}");
    assert!(old.contains("L7: drained"), "it drained rather than hit its deadline:\n{old}");
    let new = sb.log("gateway-new");
    assert!(new.contains("handover: took over"), "{new}");
    assert!(new.contains("L7: listening on 198.18.100.80:443 (TLS)"), "{new}");
    for (name, w) in &results {
        eprintln!("{name}: {} requests, errors {:?}, non-2xx {}", w.requests, w.errors, w.non_2xx);
        assert!(w.requests >= 50, "{name}: too few requests to say anything:\n{}", w.text);
        assert_eq!(
            w.failed(),
            0,
            "{name}: failed requests or refused connections:\n{}\n--- old:\n{old}",
            w.text
        );
    }
    // The new gateway answered requests of every kind: it serves after the old one left.
    for _ in 0..3 {
        let http = sb.get_from("cl", &format!("http://{L7}/"), &["-H", "Host: foo.bar.com"]);
        assert_eq!(http.as_deref().map(str::trim), Ok("petclinic-web-1"));
        let https =
            sb.get_from("cl", "https://foo.bar.com/", &["-k", "--resolve", &format!("foo.bar.com:443:{L7}")]);
        assert_eq!(https.as_deref().map(str::trim), Ok("petclinic-web-1"));
    }
    assert!(sb.log("gateway-new").contains("access w0"), "the new gateway logged requests");
    // The L7 address stays on the interface (the new gateway owns it now).
    let addrs = sb.exec("gw", &["ip", "-o", "addr", "show", "dev", "gw0"]).expect("ip addr");
    assert!(String::from_utf8_lossy(&addrs.stdout).contains(L7));
}

#[test]
fn the_old_gateway_exits_at_its_drain_deadline_with_a_connection_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handover = dir.path().join("handover.sock");
    let Some(mut sb) = up("the_old_gateway_exits_at_its_drain_deadline", dir.path(), &handover, 2) else {
        return;
    };
    // A request head that never ends: the old gateway holds the connection (60 s head timeout).
    let script = format!(
        "(printf 'GET / HTTP/1.1\\r\\nHost: foo.bar.com\\r\\n'; sleep 40) | curl -sS -m 45 telnet://{L7}:80"
    );
    sb.spawn("cl", "slow-head", &["sh", "-c", &script]).expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.gateway_gauge("l7_client_connections") < 1 {
        assert!(Instant::now() < deadline, "the slow connection never reached the gateway");
        std::thread::sleep(Duration::from_millis(50));
    }
    start_next(&mut sb, &handover, &[]);
    wait_log(&sb, "gateway-new", "the old gateway is draining", Duration::from_secs(20));
    let took = wait_exit(&sb, Duration::from_secs(15));
    let old = sb.log("gateway");
    assert!(old.contains("drain deadline reached; closing 1 connection(s)"), "{old}");
    // Not before its deadline (2 s), nor long after it.
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(8), "{took:?}\n{old}");
    let status = sb.stop("gateway", rustix::process::Signal::TERM).expect("the old gateway");
    assert!(status.success(), "{status:?}\n{old}");
    let http = sb.get_from("cl", &format!("http://{L7}/"), &["-H", "Host: foo.bar.com"]);
    assert_eq!(http.as_deref().map(str::trim), Ok("petclinic-web-1"));
}

/// A fake old gateway at `path`: answers one hello with an offer of one "listener" that is a
/// UDP socket. Returns when it has answered (or after 20 s).
fn hostile_old(path: &Path) -> std::thread::JoinHandle<()> {
    use rustix::net::{
        self as rnet, AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketType,
    };
    let listener =
        rnet::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, rnet::SocketFlags::CLOEXEC, None)
            .expect("socket");
    rnet::bind(&listener, &rnet::SocketAddrUnix::new(path).expect("path")).expect("bind");
    rnet::listen(&listener, 1).expect("listen");
    std::thread::spawn(move || {
        let Ok(conn) = rnet::accept(&listener) else { return };
        let mut buf = [0u8; 256];
        let _ = rnet::recv(&conn, &mut buf, rnet::RecvFlags::empty());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let _ = rnet::send(&conn, b"SLUICE-HANDOVER/1 offer listeners=1 addresses=\n", SendFlags::empty());
        let text = format!("batch 1\n{L7}:80 http 0\n");
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [udp.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let _ =
            rnet::sendmsg(&conn, &[std::io::IoSlice::new(text.as_bytes())], &mut control, SendFlags::empty());
        // Held until the gateway has read it.
        let _ = rnet::recv(&conn, &mut buf, rnet::RecvFlags::empty());
    })
}

#[test]
fn a_bad_or_absent_handover_socket_leads_to_a_plain_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nobody at the path.
    let absent = dir.path().join("nobody.sock");
    let Some(mut sb) = up("a_bad_or_absent_handover_socket", dir.path(), &absent, 5) else { return };
    let log = sb.log("gateway");
    assert!(log.contains("no gateway answers at"), "{log}");
    assert!(log.contains("listening on") && absent.exists(), "it listens for the next gateway:\n{log}");
    let http = sb.get_from("cl", &format!("http://{L7}/"), &["-H", "Host: foo.bar.com"]);
    assert_eq!(http.as_deref().map(str::trim), Ok("petclinic-web-1"));
    sb.stop("gateway", rustix::process::Signal::TERM).expect("gateway");
    assert!(!absent.exists(), "its socket file is removed at a stop");

    // A hostile "old gateway": its listener is a UDP socket. Refused, and a plain start.
    let fake = dir.path().join("fake.sock");
    let server = hostile_old(&fake);
    let f = fake.to_string_lossy().into_owned();
    sb.start_gateway(&["--l7-address", L7, "--handover-socket", &f]).expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    server.join().expect("fake server");
    let log = sb.log("gateway");
    assert!(log.contains("handover from the gateway at") && log.contains("not a stream socket"), "{log}");
    assert!(log.contains("starting afresh"), "{log}");
    let http = sb.get_from("cl", &format!("http://{L7}/"), &["-H", "Host: foo.bar.com"]);
    assert_eq!(http.as_deref().map(str::trim), Ok("petclinic-web-1"));
}

/// The listening sockets on `addr:port` in the gateway's namespace (each slot is one).
fn listening_sockets(sb: &Sandbox, port: u16) -> usize {
    let out = sb.exec("gw", &["ss", "-Hltn", "src", &format!("{L7}:{port}")]).expect("ss");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

/// Waits (10 s) until `n` workers of gateway process `name` say they listen on `L7:80`.
fn wait_listening_workers(sb: &Sandbox, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = sb.log(name);
        let lines = log.lines().filter(|l| l.contains(&format!("L7: listening on {L7}:80 "))).count();
        if lines >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{lines} of {n} workers listen:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` requests, each on a new connection, each within 3 s: the failures.
fn new_connections(sb: &Sandbox, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| {
            let r = sb.get_from("cl", &format!("http://{L7}/"), &["-m", "3", "-H", "Host: foo.bar.com"]);
            match r.as_deref().map(str::trim) {
                Ok("petclinic-web-1") => None,
                other => Some(format!("{other:?}")),
            }
        })
        .collect()
}

#[test]
fn a_next_gateway_with_fewer_or_more_workers_serves_every_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handover = dir.path().join("handover.sock");
    let Some(mut sb) = up_with("a_next_gateway_with_fewer_or_more_workers", dir.path(), &handover, 10, 2)
    else {
        return;
    };
    assert_eq!(listening_sockets(&sb, 80), 2, "a slot per worker");
    wait_listening_workers(&sb, "gateway", 2);
    let ns = sb.ns("cl");
    let run_wrk = |ns: &str| {
        let (_, args) = loops(8).into_iter().next().expect("a loop");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "wrk"])
            .args(&args)
            .output()
            .expect("wrk");
        Wrk::parse(&String::from_utf8_lossy(&out.stdout))
    };
    // Two workers to one: the one worker accepts on both slots (closing one would reset what
    // waits in its queue).
    let w = std::thread::scope(|s| {
        let w = s.spawn(|| run_wrk(&ns));
        std::thread::sleep(Duration::from_secs(2));
        start_next(&mut sb, &handover, &["--queues", "1"]);
        wait_log(&sb, "gateway-new", "the old gateway is draining", Duration::from_secs(20));
        wait_exit(&sb, Duration::from_secs(15));
        w.join().expect("wrk")
    });
    assert!(w.requests >= 50 && w.failed() == 0, "2 → 1 workers:\n{}", w.text);
    assert_eq!(listening_sockets(&sb, 80), 2, "both slots kept");
    assert_eq!(listening_sockets(&sb, 443), 2, "both slots kept");
    let failed = new_connections(&sb, 40);
    assert!(failed.is_empty(), "a slot is not accepted on: {failed:?}\n{}", sb.log("gateway-new"));

    // One worker (two slots) to two: each worker serves a slot.
    start_named(&mut sb, "gateway-third", &handover, &["--queues", "2"]);
    wait_log(&sb, "gateway-third", "the old gateway is draining", Duration::from_secs(20));
    wait_exit_of(&sb, "gateway-new", Duration::from_secs(15));
    assert_eq!(listening_sockets(&sb, 80), 2);
    let failed = new_connections(&sb, 40);
    assert!(failed.is_empty(), "{failed:?}\n{}", sb.log("gateway-third"));
    wait_listening_workers(&sb, "gateway-third", 2);
}

/// A gateway started before control's first table opens its L7 listeners with that table's
/// routes and not before: a client is refused until then, never answered 404 for a host the
/// table routes.
#[test]
fn listeners_open_with_the_first_table() {
    if !require_root("listeners_open_with_the_first_table") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sb = Sandbox::with_topology(&backends(), Topology::default()).expect("sandbox");
    let (cert, key) = certificate(dir.path(), "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    sb.set_manifests(&[example("ingress")], &[("tls-secret.yaml", &secret)]).expect("manifests");
    // The table file with no generation in it, as control leaves it between creating it and
    // publishing; control opens it again later and publishes into it.
    drop(sluice_table::Publisher::create(sb.table(), sluice_table::Geometry::default()).expect("table file"));
    let h = dir.path().join("handover.sock").to_string_lossy().into_owned();
    let args = gateway_args(&sb, &["--l7-address", L7, "--handover-socket", &h]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.spawn("gw", "gateway", &args).expect("gateway");
    // The gateway puts its L7 address on the interface as its main loop starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = sb.exec("gw", &["ip", "-o", "addr", "show", "dev", "gw0"]).expect("ip addr");
        if String::from_utf8_lossy(&out.stdout).contains(&format!("{L7}/")) {
            break;
        }
        assert!(Instant::now() < deadline, "no {L7} on gw0:\n{}", sb.log("gateway"));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Time for workers to take listeners, if they were (wrongly) handed any without routes.
    std::thread::sleep(Duration::from_millis(500));
    let status = |sb: &Sandbox| {
        let url = format!("http://{L7}/");
        let out = sb
            .exec(
                "cl",
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-m",
                    "3",
                    "-H",
                    "Host: foo.bar.com",
                    &url,
                ],
            )
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let log = sb.log("gateway");
    assert!(!log.contains("L7: listening on"), "listeners before any table:\n{log}");
    assert_eq!(status(&sb), "000", "refused before the table:\n{log}");

    sb.start_control().expect("control");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    let log = sb.log("gateway");
    let (table, listening) = (log.find("table generation"), log.find("L7: listening on"));
    assert!(table.is_some() && table < listening, "listeners before the table:\n{log}");
    let http = sb.get_from("cl", &format!("http://{L7}/"), &["-H", "Host: foo.bar.com"]);
    assert_eq!(http.as_deref().map(str::trim), Ok("petclinic-web-1"));
}
