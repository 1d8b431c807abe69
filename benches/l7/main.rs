//! `benches/run l7` (issue 13, item 10): Sluice's L7 stage against nginx configured as
//! ingress-nginx configures it and against HAProxy, as HTTP/1.1 reverse proxies, in the same
//! run, on the same machine, with the same clients and the same backends.
//!
//! Topology: the namespace sandbox of `sluice_sandbox` — the client `cl` (198.18.0.100), the
//! gateway namespace `gw` and two nginx backends `b0`, `b1` (198.18.1.1 and .2, port 8080,
//! answering `web-1\n` / `web-2\n`: a 6-byte body). In the gateway namespace, each proxy on an
//! address of its own on gw0, ports 80 and 443, all three proxying to both backends:
//! - **Sluice**: `sluice-gateway --cores 1 --queues 1 --l7-address 198.18.100.80 --no-access-log`,
//!   AF_XDP on gw0,
//!   serving an Ingress (`sluice.bench.example`, Service `web` with the two backends as Pods)
//!   whose TLS Secret holds an ECDSA P-256 certificate made at run time; control on a manifest.
//! - **nginx** on 198.18.100.81, `worker_processes 1`, with ingress-nginx's defaults
//!   ([`nginx_conf`]): upstream keepalive 320, TLS 1.3 only, the same certificate.
//! - **HAProxy** 2.6 on 198.18.100.82, `nbthread 1` ([`haproxy_conf`]): server connections kept
//!   for reuse (its default `http-reuse safe`), TLS 1.3 only, the same certificate.
//!
//! The peers' addresses are not L4 Services, so Sluice's XDP program passes their frames to the
//! kernel: every proxy's packets take the same path (gw0 with its XDP program, the kernel's TCP).
//! The gateway keeps running while the peers are measured (its worker sleeps in its reactor when
//! it has nothing to do); each proxy runs pinned to core 1; wrk, the handshake client and the
//! backends run on core 0. The client resolves `{sluice,nginx,haproxy}.bench.example` through a
//! hosts file of its namespace (`/etc/netns/NS/hosts`, which `ip netns exec` mounts), so TLS
//! clients send the Ingress host as SNI.
//!
//! Modes, each proxy back to back per mode, `--repeat` times:
//! 1. HTTP keep-alive: `wrk -t1 -c64 --latency http://HOST/`.
//! 2. HTTPS keep-alive: the same over TLS 1.3.
//! 3. HTTPS, a new TLS 1.3 connection per request: `sluice-bench-l7 handshakes` — 64 threads,
//!    each connecting, doing a full handshake (rustls client, resumption disabled, X25519 only),
//!    one GET with `Connection: close`, and closing. Not wrk: wrk keeps its `SSL` object across
//!    reconnections (`SSL_clear`), so with servers that issue tickets (rustls, HAProxy, nginx's
//!    session cache) it resumes (see benches/README.md). The client counts full and resumed
//!    handshakes, so the table shows there were no resumptions.
//! 4. HTTP/2 over TLS 1.3 (ALPN `h2`): `h2load -t1 -c32 -m10 -D S https://HOST/` — 32
//!    connections, 10 streams in flight on each; the upstreams stay HTTP/1.1 for all three
//!    (nginx: `listen ssl http2`, ingress-nginx's default, on a port of its own without the
//!    1,000-request limit per connection that h2load cannot recover from; HAProxy: `alpn
//!    h2,http/1.1`).
//!
//! CPU: `utime + stime` from `/proc/PID/stat` of each proxy's processes (the gateway process with
//! all its threads; nginx's master and worker; HAProxy's one process), read just before the
//! client starts and after it exits. Softirq work the kernel does while a proxy's thread is in a
//! system call is charged to it; the receive side of the veths runs on the sender's core.
//!
//! Idle connections: `sluice-bench-l7 idle` opens `--idle-conns` TLS keep-alive connections to a
//! proxy (one GET each, then left open); the growth of the proxy's private dirty memory
//! (`/proc/PID/smaps_rollup`, summed over its processes) divided by the connections the gateway
//! namespace's kernel holds established on the proxy's port 443.
//!
//! `run --l4-mix` measures instead L4 forwarding beside the L7 stage on the same worker
//! (issue 13, item 1): see [`mix`].
//!
//! Subcommands (the orchestrator runs the others inside the client namespace):
//!   run [--seconds 10] [--repeat 3] [--idle-conns 4000] [--quick] [--l4-mix [--l4-rate 20000]]
//!   handshakes --addr IP:PORT --sni NAME --conns 64 --seconds S
//!   idle --addr IP:PORT --sni NAME --count N --hold-seconds S
#![forbid(unsafe_code)]

mod mix;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::{Map, Value, json};
use sluice_benches::{CpuTimes, flag, median, text_flag, wrk};
use sluice_l7::upstream_tls::AnyServerCertificate;
use sluice_sandbox::tls::{certificate, tls_secret};
use sluice_sandbox::{Backend, Sandbox, bin, run};

/// The core every proxy runs on.
const PROXY_CORE: usize = 1;
/// The core of the clients and the backends.
const LOAD_CORE: usize = 0;
/// wrk's and the handshake client's connections.
const CONNS: usize = 64;
/// The backends: name (and body), address. nginx listens on [`BACKEND_PORT`].
const BACKENDS: [(&str, &str); 2] = [("web-1", "198.18.1.1"), ("web-2", "198.18.1.2")];
/// The backends' port.
const BACKEND_PORT: u16 = 8080;
/// The domain the certificate covers (`DNS:*.bench.example`).
const DOMAIN: &str = "bench.example";
/// A connection's time to connect, shake hands and be answered, in the bench's own clients.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Set by SIGINT/SIGTERM: the run stops after the measurement under way and cleans up.
static INTERRUPTED: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// A proxy measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    Sluice,
    Nginx,
    Haproxy,
}

impl Proxy {
    const ALL: [Proxy; 3] = [Proxy::Sluice, Proxy::Nginx, Proxy::Haproxy];

    fn name(self) -> &'static str {
        match self {
            Proxy::Sluice => "Sluice",
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "HAProxy",
        }
    }

    /// Its address in the gateway namespace.
    fn addr(self) -> &'static str {
        match self {
            Proxy::Sluice => "198.18.100.80",
            Proxy::Nginx => "198.18.100.81",
            Proxy::Haproxy => "198.18.100.82",
        }
    }

    /// The host clients ask for (and send as SNI).
    fn host(self) -> String {
        let label = match self {
            Proxy::Sluice => "sluice",
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
        };
        format!("{label}.{DOMAIN}")
    }

    /// The key of its figures in RESULT (`""` for Sluice's own).
    fn key(self) -> &'static str {
        match self {
            Proxy::Sluice => "",
            Proxy::Nginx => "nginx_",
            Proxy::Haproxy => "haproxy_",
        }
    }
}

/// What a mode measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    Https,
    Handshake,
    H2,
}

/// HTTP/2 mode: h2load's connections and streams in flight on each.
const H2_CONNS: usize = 32;
const H2_STREAMS: usize = 10;
/// nginx's HTTP/2 run goes to this port (see [`nginx_conf`]); the others' to 443.
const H2_NGINX_PORT: u16 = 8443;

impl Mode {
    const ALL: [Mode; 4] = [Mode::Http, Mode::Https, Mode::Handshake, Mode::H2];

    fn title(self) -> &'static str {
        match self {
            Mode::Http => "HTTP keep-alive (wrk -t1 -c64)",
            Mode::Https => "HTTPS keep-alive, TLS 1.3 (wrk -t1 -c64)",
            Mode::Handshake => {
                "HTTPS, a new TLS 1.3 connection per request, no resumption (sluice-bench-l7 handshakes, 64 threads)"
            }
            Mode::H2 => {
                "HTTP/2 over TLS 1.3 by ALPN (h2load -t1 -c32 -m10; p50 column: h2load's mean, no p99)"
            }
        }
    }

    /// The stem of its RESULT keys.
    fn stem(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Https => "https",
            Mode::Handshake => "handshakes",
            Mode::H2 => "h2",
        }
    }
}

/// Dispatches the subcommands (module doc).
fn main() {
    sluice_log::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("handshakes") => handshakes(&args[1..]),
        Some("idle") => idle(&args[1..]),
        _ => Err("usage: sluice-bench-l7 run [--seconds S] [--repeat N] [--idle-conns N] [--quick] [--l4-mix [--l4-rate PPS]] | handshakes … | idle …".into()),
    };
    if let Err(e) = r {
        eprintln!("sluice-bench-l7: {e}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------------------------------------
// The TLS client of `handshakes` and `idle`

/// The clients' TLS configuration: TLS 1.3 only, X25519 only (what OpenSSL 3.0 — nginx's,
/// HAProxy's, wrk's — chooses; rustls would otherwise offer and get the costlier X25519MLKEM768
/// from Sluice alone), no ALPN (as wrk), and no resumption: every handshake is a full one.
fn client_config() -> Result<Arc<ClientConfig>, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("client TLS configuration: {e}"))?
        .dangerous()
        // Any certificate (as wrk does: `SSL_VERIFY_NONE`), its handshake signature checked, so
        // the client does the work a real one does.
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new(
            provider.signature_verification_algorithms,
        )))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// How a connection's handshake went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Full,
    HelloRetry,
    Resumed,
}

/// A TLS connection to `addr` for `sni`, its handshake done.
fn tls_connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    sni: &ServerName<'static>,
) -> Result<(StreamOwned<ClientConnection, TcpStream>, Handshake), String> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::clone(config), sni.clone()).map_err(|e| e.to_string())?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| format!("handshake: {e}"))?;
    }
    let kind = match s.conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => Handshake::HelloRetry,
        _ => Handshake::Full,
    };
    Ok((s, kind))
}

/// Sends a GET for `/` and reads one whole response (its head and its Content-Length body);
/// true if it was a 200.
fn get<S: std::io::Read + std::io::Write>(s: &mut S, host: &str, close: bool) -> Result<bool, String> {
    let connection = if close { "close" } else { "keep-alive" };
    write!(s, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n")
        .and_then(|()| s.flush())
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("a response without Content-Length")?;
            if got.len() >= end + 4 + len {
                return Ok(head.starts_with("http/1.1 200"));
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return Err("closed before the whole response".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The `--addr` and `--sni` of the clients' subcommands.
fn target(args: &[String]) -> Result<(SocketAddr, ServerName<'static>, String), String> {
    let addr: SocketAddr =
        text_flag(args, "--addr").ok_or("--addr")?.parse().map_err(|e| format!("--addr: {e}"))?;
    let host = text_flag(args, "--sni").ok_or("--sni")?;
    let sni = ServerName::try_from(host.clone()).map_err(|e| format!("--sni: {e}"))?;
    Ok((addr, sni, host))
}

/// `handshakes`: `--conns` threads, each in a loop until `--seconds` have passed: connect, full
/// TLS 1.3 handshake, GET with `Connection: close`, the whole answer read, close (the client
/// closes first, with a close_notify, as wrk does). Prints one JSON line: requests answered 200,
/// errors, the seconds, p50 and p99 of connect-to-answer in ms, and the handshakes by kind.
fn handshakes(args: &[String]) -> Result<(), String> {
    let (addr, sni, host) = target(args)?;
    let conns: usize = flag(args, "--conns", CONNS).clamp(1, 1024);
    let seconds: f64 = flag(args, "--seconds", 10.0f64).clamp(0.1, 3600.0);
    let config = client_config()?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (config, sni, host) = (Arc::clone(&config), sni.clone(), host.clone());
            std::thread::spawn(move || {
                let mut t = Tally::default();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let r = tls_connect(&config, addr, &sni).and_then(|(mut s, kind)| {
                        let ok = get(&mut s, &host, true)?;
                        s.conn.send_close_notify();
                        let _ = s.conn.complete_io(&mut s.sock);
                        Ok((ok, kind))
                    });
                    match r {
                        Ok((true, kind)) => {
                            t.latencies_us.push(start.elapsed().as_micros() as u32);
                            match kind {
                                Handshake::Full => t.full += 1,
                                Handshake::HelloRetry => t.hello_retry += 1,
                                Handshake::Resumed => t.resumed += 1,
                            }
                        }
                        Ok((false, _)) => t.non_200 += 1,
                        Err(e) => {
                            t.errors += 1;
                            t.last_error = e;
                        }
                    }
                }
                t
            })
        })
        .collect();
    let mut all = Tally::default();
    for th in threads {
        let t = th.join().map_err(|_| "a client thread panicked")?;
        all.latencies_us.extend(t.latencies_us);
        all.full += t.full;
        all.hello_retry += t.hello_retry;
        all.resumed += t.resumed;
        all.non_200 += t.non_200;
        all.errors += t.errors;
        if !t.last_error.is_empty() {
            all.last_error = t.last_error;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &all.latencies_us;
        if v.is_empty() { 0.0 } else { f64::from(v[((v.len() - 1) as f64 * p).round() as usize]) / 1e3 }
    };
    println!(
        "{}",
        json!({
            "requests": all.latencies_us.len(), "seconds": secs, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "full": all.full, "hello_retry": all.hello_retry, "resumed": all.resumed,
            "non_200": all.non_200, "errors": all.errors, "last_error": all.last_error,
        })
    );
    Ok(())
}

/// One handshake client thread's count.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    full: u64,
    hello_retry: u64,
    resumed: u64,
    non_200: u64,
    errors: u64,
    last_error: String,
}

/// `idle`: opens `--count` TLS connections one after the other, one GET on each (keep-alive),
/// keeps them open, prints `open N` (N: those that got their 200), and holds them until
/// `--hold-seconds` have passed or it is killed.
fn idle(args: &[String]) -> Result<(), String> {
    let (addr, sni, host) = target(args)?;
    let count: usize = flag(args, "--count", 4000usize).clamp(1, 8_000);
    let hold = Duration::from_secs(flag(args, "--hold-seconds", 120u64).min(3600));
    let config = client_config()?;
    let mut open = Vec::with_capacity(count);
    let mut failed = 0u64;
    let mut last_error = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while open.len() + (failed as usize) < count && Instant::now() < deadline {
        match tls_connect(&config, addr, &sni)
            .and_then(|(mut s, _)| get(&mut s, &host, false).map(|ok| (s, ok)))
        {
            Ok((s, true)) => open.push(s),
            Ok((_, false)) => failed += 1,
            Err(e) => {
                failed += 1;
                last_error = e;
            }
        }
    }
    println!("open {} failed {failed} {last_error}", open.len());
    let _ = std::io::stdout().flush();
    std::thread::sleep(hold);
    drop(open);
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The orchestrator

/// Whether the run was interrupted.
fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// The run's settings.
#[derive(Debug, Clone)]
struct Plan {
    seconds: u64,
    repeat: usize,
    /// 0: the idle-connection measurement is skipped.
    idle_conns: usize,
    /// The modes to run (`--modes http,h2`; all by default), for profiling one of them.
    modes: Vec<Mode>,
}

/// The whole benchmark: the sandbox and the three proxies, every mode for each proxy back to
/// back, `--repeat` times, then the idle connections; the table and RESULT.
fn orchestrate(args: &[String]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (namespaces, XDP)".into());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = Plan {
        seconds: flag(args, "--seconds", if quick { 3 } else { 10 }).clamp(1, 600),
        repeat: flag(args, "--repeat", if quick { 1 } else { 3 }).clamp(1, 20),
        idle_conns: match flag(args, "--idle-conns", if quick { 1000 } else { 4000 }) {
            0 => 0,
            n => n.clamp(10, 8_000),
        },
        modes: match text_flag(args, "--modes") {
            None => Mode::ALL.to_vec(),
            Some(list) => {
                list.split(',')
                    .map(|m| {
                        Mode::ALL.into_iter().find(|x| x.stem() == m).ok_or_else(|| {
                            format!("--modes: {m:?} is not one of http, https, handshakes, h2")
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        },
    };
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&INTERRUPTED)).map_err(|e| e.to_string())?;
    }
    let mut b = Bench::new()?;
    eprintln!("sandbox up; Sluice, nginx and HAProxy serving on core {PROXY_CORE}");
    if args.iter().any(|a| a == "--l4-mix") {
        let rate = flag(args, "--l4-rate", 20_000u64).clamp(1_000, 10_000_000);
        return mix::run(&mut b, mix::MixPlan { seconds: plan.seconds, repeat: plan.repeat, rate });
    }
    let mut samples: Vec<(usize, Mode, Proxy, Sample)> = Vec::new();
    for r in 0..plan.repeat {
        for &mode in &plan.modes {
            for proxy in Proxy::ALL {
                if interrupted() {
                    return Err("interrupted".into());
                }
                eprintln!("repeat {}/{}: {} — {} …", r + 1, plan.repeat, mode.stem(), proxy.name());
                let s = b.measure(proxy, mode, plan.seconds)?;
                samples.push((r, mode, proxy, s));
            }
        }
    }
    let mut idle = Vec::new();
    for proxy in Proxy::ALL {
        if plan.idle_conns == 0 {
            break;
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        eprintln!("{}: {} idle TLS keep-alive connections …", proxy.name(), plan.idle_conns);
        idle.push((proxy, b.idle(proxy, plan.idle_conns)?));
    }
    let report = Report { plan, samples, idle };
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

/// The client namespace's hosts file (`/etc/netns/NS/hosts`), removed on drop.
struct HostsFile(PathBuf);

impl HostsFile {
    fn write(ns: &str) -> Result<HostsFile, String> {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let guard = HostsFile(dir);
        let mut text = String::from("127.0.0.1 localhost\n");
        for p in Proxy::ALL {
            text += &format!("{} {}\n", p.addr(), p.host());
        }
        std::fs::write(guard.0.join("hosts"), text)
            .map_err(|e| format!("{}/hosts: {e}", guard.0.display()))?;
        Ok(guard)
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sandbox and what runs in it. Field order is drop order: the bench's own children go
/// first, then the sandbox stops its processes (the gateway, control, the peers, the backends)
/// and deletes every namespace, then the hosts file goes.
struct Bench {
    kids: Kids,
    sb: Sandbox,
    _hosts: HostsFile,
    /// The sandbox's temporary directory: certificate, peers' configurations, logs.
    dir: PathBuf,
}

/// Control's manifests: the Service `web` on the two backends, the IngressClass, the Ingress
/// with its TLS Secret (`bench-tls`, written at run time).
const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 8080
      targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels:
    app: web
    # The `--l4-mix` run's UDP Service `echo` (a reflector in web-1's namespace answers it).
    l4: echo
spec:
  containers:
    - name: app
      image: registry.example/web:1
      ports:
        - containerPort: 8080
status:
  phase: Running
  podIP: 198.18.1.1
  conditions:
    - type: Ready
      status: "True"
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  labels:
    app: web
spec:
  containers:
    - name: app
      image: registry.example/web:1
      ports:
        - containerPort: 8080
status:
  phase: Running
  podIP: 198.18.1.2
  conditions:
    - type: Ready
      status: "True"
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  clusterIP: 198.19.0.9
  selector:
    l4: echo
  ports:
    - name: echo
      protocol: UDP
      port: 9
      targetPort: 9
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: sluice
spec:
  controller: sluice.io/ingress
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  annotations:
    # Plain HTTP is measured too: no redirect to HTTPS (nginx and HAProxy here have none).
    nginx.ingress.kubernetes.io/ssl-redirect: "false"
spec:
  ingressClassName: sluice
  tls:
    - hosts: [sluice.bench.example]
      secretName: bench-tls
  rules:
    - host: sluice.bench.example
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: web
                port:
                  number: 8080
"#;

/// ingress-nginx's configuration of nginx for one Ingress, cut to what this bench exercises:
/// its defaults for keep-alive (75 s, 1,000 requests), upstream keepalive (320 connections,
/// 10,000 requests, 60 s), proxy buffers (4k), timeouts, the forwarded headers it sets, TLS
/// (here TLS 1.3 only; session cache 10m, no tickets; 4k TLS records), HTTP/2 on the TLS port
/// (ingress-nginx's `use-http2: true`). Left out: the Lua balancer (plain round robin is
/// cheaper), access logs (off for every proxy).
fn nginx_conf(dir: &Path, cert: &Path, key: &Path) -> String {
    let (d, addr, host) = (dir.display(), Proxy::Nginx.addr(), Proxy::Nginx.host());
    let servers: String = BACKENDS.iter().map(|(_, a)| format!("server {a}:{BACKEND_PORT}; ")).collect();
    format!(
        "daemon off; master_process on; worker_processes 1; user root; pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 75s; keepalive_requests 1000;
  ssl_protocols TLSv1.3;
  ssl_session_cache shared:SSL:10m; ssl_session_timeout 10m; ssl_session_tickets off;
  ssl_buffer_size 4k;
  upstream web {{ {servers}keepalive 320; keepalive_requests 10000; keepalive_timeout 60s; }}
  server {{
    listen {addr}:80 backlog=4096; listen {addr}:443 ssl http2 backlog=4096;
    server_name {host};
    ssl_certificate {cert}; ssl_certificate_key {key};
    location / {{
      proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_connect_timeout 5s; proxy_send_timeout 60s; proxy_read_timeout 60s;
      proxy_buffering on; proxy_buffer_size 4k; proxy_buffers 4 4k;
      proxy_next_upstream error timeout;
      proxy_pass http://web;
    }}
  }}
  # The HTTP/2 run's port: nginx ends an HTTP/2 connection after keepalive_requests (1,000,
  # ingress-nginx's default) and h2load does not reconnect, so its connections would die one
  # by one; Sluice and HAProxy set no such limit. The same server otherwise.
  server {{
    listen {addr}:{H2_NGINX_PORT} ssl http2 backlog=4096;
    server_name {host};
    keepalive_requests 100000000;
    ssl_certificate {cert}; ssl_certificate_key {key};
    location / {{
      proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_connect_timeout 5s; proxy_send_timeout 60s; proxy_read_timeout 60s;
      proxy_buffering on; proxy_buffer_size 4k; proxy_buffers 4 4k;
      proxy_next_upstream error timeout;
      proxy_pass http://web;
    }}
  }}
}}
",
        cert = cert.display(),
        key = key.display()
    )
}

/// HAProxy 2.6 with one thread: its defaults (server connections kept and reused, `http-reuse
/// safe`), timeouts like the others, TLS 1.3 only with ALPN `h2,http/1.1`, the forwarded
/// headers.
fn haproxy_conf(pem: &Path) -> String {
    let addr = Proxy::Haproxy.addr();
    let servers: String =
        BACKENDS.iter().map(|(n, a)| format!("  server {n} {a}:{BACKEND_PORT}\n")).collect();
    format!(
        "global
  nbthread 1
  maxconn 9000
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  timeout http-keep-alive 75s
  option forwardfor
  http-reuse safe
frontend fe
  bind {addr}:80
  bind {addr}:443 ssl crt {pem} alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
  http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
  default_backend web
backend web
  balance roundrobin
{servers}",
        pem = pem.display()
    )
}

/// What h2load printed.
#[derive(Debug, Clone, Default, PartialEq)]
struct H2load {
    seconds: f64,
    ok_2xx: u64,
    non_2xx: u64,
    errors: u64,
    mean_ms: f64,
}

impl H2load {
    /// Reads `finished in 10.00s, …`, `requests: … N failed, N errored, N timeout`,
    /// `status codes: N 2xx, N 3xx, N 4xx, N 5xx` and `time for request: min max mean …`.
    fn parse(text: &str) -> Option<H2load> {
        let mut r = H2load::default();
        let num = |w: &str| w.trim_end_matches([',', 's']).parse::<f64>().ok();
        let ms = |w: &str| {
            let (v, unit) = w.find(|c: char| c.is_ascii_alphabetic()).map(|i| w.split_at(i))?;
            let v: f64 = v.parse().ok()?;
            Some(match unit {
                "us" => v / 1e3,
                "ms" => v,
                "s" => v * 1e3,
                _ => return None,
            })
        };
        let mut seen = 0;
        for line in text.lines().map(str::trim) {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let Some(rest) = line.strip_prefix("finished in ") {
                r.seconds = num(rest.split_whitespace().next()?)?;
                seen |= 1;
            } else if line.starts_with("requests:") {
                let count = |name: &str| {
                    w.windows(2)
                        .find(|p| p[1].trim_end_matches(',') == name)
                        .and_then(|p| p[0].parse::<u64>().ok())
                };
                r.errors = count("failed")? + count("errored")? + count("timeout").unwrap_or(0);
                seen |= 2;
            } else if line.starts_with("status codes:") {
                let count = |class: &str| {
                    w.windows(2)
                        .find(|p| p[1].trim_end_matches(',') == class)
                        .and_then(|p| p[0].parse::<u64>().ok())
                };
                r.ok_2xx = count("2xx")?;
                r.non_2xx = count("3xx")? + count("4xx")? + count("5xx")?;
                seen |= 4;
            } else if line.starts_with("time for request:") {
                r.mean_ms = ms(w.get(5)?)?;
                seen |= 8;
            }
        }
        (seen == 15).then_some(r)
    }

    fn sample(&self) -> Sample {
        Sample {
            requests: self.ok_2xx,
            seconds: self.seconds,
            p50_ms: self.mean_ms,
            errors: self.errors,
            non_2xx: self.non_2xx,
            ..Sample::default()
        }
    }
}

/// One measurement of one proxy in one mode.
#[derive(Debug, Clone, Default)]
struct Sample {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The proxy's processes' CPU time over the run.
    cpu_s: f64,
    /// Core 1's busy time over the run (everything on it).
    core1_busy_s: f64,
    /// The wall time between the CPU readings (the client's start-up and exit included).
    window_s: f64,
    errors: u64,
    non_2xx: u64,
    /// Handshake mode: full handshakes and resumptions the client saw.
    full: u64,
    resumed: u64,
}

impl Sample {
    fn rps(&self) -> f64 {
        if self.seconds > 0.0 { self.requests as f64 / self.seconds } else { 0.0 }
    }

    fn per_cpu_s(&self) -> f64 {
        if self.cpu_s > 0.0 { self.requests as f64 / self.cpu_s } else { 0.0 }
    }
}

/// Idle connections held on one proxy.
#[derive(Debug, Clone, Default)]
struct IdleSample {
    opened: u64,
    established: u64,
    dirty_before_kib: u64,
    dirty_after_kib: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
}

impl IdleSample {
    fn dirty_kib_per_conn(&self) -> f64 {
        self.dirty_after_kib.saturating_sub(self.dirty_before_kib) as f64 / self.established.max(1) as f64
    }

    fn rss_kib_per_conn(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.established.max(1) as f64
    }
}

/// `utime + stime` of a process (all its threads), in ticks of USER_HZ.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at field 3 (state); utime and
    // stime are fields 14 and 15 (proc(5)).
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A process and its descendants.
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 64 {
        let p = out[i];
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>());
        for t in tasks.unwrap_or_default() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    out
}

/// A field of `/proc/PID/smaps_rollup` in KiB, summed over `pids`.
fn smaps_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse::<u64>().ok()
            })
        })
        .sum()
}

impl Bench {
    /// The sandbox, the certificate, the hosts file, control and the gateway, both peers; each
    /// proxy answered once over HTTP and HTTPS.
    fn new() -> Result<Bench, String> {
        let backends: Vec<Backend> =
            BACKENDS.iter().map(|(n, a)| Backend::http(n, a, &[BACKEND_PORT])).collect();
        let sb = Sandbox::new(&backends).map_err(|e| format!("sandbox: {e}"))?;
        let hosts = HostsFile::write(&sb.ns("cl"))?;
        let dir = sb.dir().to_path_buf();
        let mut b = Bench { kids: Kids::default(), sb, _hosts: hosts, dir };
        b.pin_backends();
        // A self-signed ECDSA P-256 certificate for DOMAIN and *.DOMAIN, made now.
        let (cert_pem, key_pem) = certificate(&b.dir, DOMAIN, "bench").map_err(|e| e.to_string())?;
        let (cert, key) = (b.dir.join("bench.crt"), b.dir.join("bench.key"));
        let pem_text = format!("{cert_pem}{key_pem}");
        let secret = tls_secret("bench-tls", &cert_pem, &key_pem).map_err(|e| e.to_string())?;
        b.sb.set_manifests(&[], &[("bench.yaml", MANIFEST), ("bench-tls.yaml", &secret)])
            .map_err(|e| e.to_string())?;
        b.sb.start_control().map_err(|e| format!("control: {e}"))?;
        b.start_gateway()?;
        for p in [Proxy::Nginx, Proxy::Haproxy] {
            b.gw(&["ip", "addr", "add", &format!("{}/32", p.addr()), "dev", "gw0"])?;
        }
        let nginx_dir = b.dir.join("peer-nginx");
        std::fs::create_dir_all(nginx_dir.join("tmp")).map_err(|e| e.to_string())?;
        let conf = nginx_dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&nginx_dir, &cert, &key)).map_err(|e| e.to_string())?;
        let core = PROXY_CORE.to_string();
        b.sb.spawn("gw", "peer-nginx", &["taskset", "-c", &core, "nginx", "-c", &conf.to_string_lossy()])
            .map_err(|e| format!("nginx: {e}"))?;
        let pem = b.dir.join("bench.pem");
        std::fs::write(&pem, pem_text).map_err(|e| e.to_string())?;
        let conf = b.dir.join("haproxy.cfg");
        std::fs::write(&conf, haproxy_conf(&pem)).map_err(|e| e.to_string())?;
        b.sb.spawn(
            "gw",
            "peer-haproxy",
            &["taskset", "-c", &core, "haproxy", "-db", "-f", &conf.to_string_lossy()],
        )
        .map_err(|e| format!("haproxy: {e}"))?;
        for p in Proxy::ALL {
            b.wait_serving(p)?;
        }
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

    /// Pins the backends' nginx (masters and workers) to the load core.
    fn pin_backends(&self) {
        for (name, _) in BACKENDS {
            let Some(master) = self.sb.pid(&format!("nginx-{name}")) else { continue };
            for pid in family(master) {
                let _ = run(&["taskset", "-pc", &LOAD_CORE.to_string(), &pid.to_string()]);
            }
        }
    }

    /// The gateway: one worker on the proxy core, one queue, the L7 address; waits until it
    /// listens on ports 80 and 443, then pins its every thread to the proxy core.
    fn start_gateway(&mut self) -> Result<(), String> {
        let g = bin("sluice-gateway").to_string_lossy().into_owned();
        let t = self.sb.table().to_string_lossy().into_owned();
        let core = PROXY_CORE.to_string();
        let addr = Proxy::Sluice.addr();
        self.sb
            .spawn(
                "gw",
                "gateway",
                &[
                    &g,
                    "--iface",
                    "gw0",
                    "--table",
                    &t,
                    "--cores",
                    &core,
                    "--queues",
                    "1",
                    "--l7-address",
                    addr,
                    // Access logs are off for all three proxies (Sluice's default writes a line
                    // to standard output per request).
                    "--no-access-log",
                    // --l4-mix measures L4 frames through the worker beside the L7 stage, as its
                    // recorded results did (the fast path is on by default on veth since issue 15).
                    "--fast-path",
                    "off",
                ],
            )
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let want = [format!("listening on {addr}:80"), format!("listening on {addr}:443 (TLS)")];
        while !want.iter().all(|w| self.sb.log("gateway").contains(w.as_str())) {
            let alive = self.sb.pid("gateway").is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if Instant::now() > deadline || !alive {
                return Err(format!(
                    "the gateway did not start serving; its log:\n{}",
                    self.sb.log("gateway")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The worker is pinned by --cores; its other threads join it. (Not `taskset` around the
        // gateway: it counts the cores it may use, and would find core 1 only.)
        let pid = self.sb.pid("gateway").ok_or("the gateway is not running")?.to_string();
        let out = run(&["taskset", "-a", "-pc", &core, &pid]).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("taskset the gateway: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(())
    }

    /// The log of a process the sandbox started.
    fn log_of(&self, p: Proxy) -> String {
        match p {
            Proxy::Sluice => self.sb.log("gateway"),
            Proxy::Nginx => {
                self.sb.log("peer-nginx")
                    + &std::fs::read_to_string(self.dir.join("peer-nginx/error.log")).unwrap_or_default()
            }
            Proxy::Haproxy => self.sb.log("peer-haproxy"),
        }
    }

    /// Waits (20 s at most) until the client gets a backend's answer through `p`, over HTTP and
    /// over HTTPS.
    fn wait_serving(&self, p: Proxy) -> Result<(), String> {
        for scheme in ["http", "https"] {
            let url = format!("{scheme}://{}/", p.host());
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match self.sb.get_from("cl", &url, &["-k", "-m", "2"]) {
                    Ok(body) if body.starts_with("web-") => break,
                    r if Instant::now() > deadline => {
                        return Err(format!(
                            "{} does not answer {url}: {r:?}\nits log:\n{}",
                            p.name(),
                            self.log_of(p)
                        ));
                    }
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Ok(())
    }

    /// The proxy's processes now.
    fn pids(&self, p: Proxy) -> Result<Vec<u32>, String> {
        let name = match p {
            Proxy::Sluice => "gateway",
            Proxy::Nginx => "peer-nginx",
            Proxy::Haproxy => "peer-haproxy",
        };
        let pid = self.sb.pid(name).ok_or(format!("{} is not running", p.name()))?;
        Ok(family(pid))
    }

    /// The proxy's processes' CPU ticks.
    fn ticks(&self, p: Proxy) -> Result<u64, String> {
        self.pids(p)?
            .into_iter()
            .map(|pid| {
                cpu_ticks(pid).ok_or(format!("{}: process {pid} is gone\n{}", p.name(), self.log_of(p)))
            })
            .sum()
    }

    /// Runs a client in the client namespace on the load core and returns what it printed;
    /// killed after `limit` (or on interruption).
    fn client(&mut self, name: &str, args: &[&str], limit: Duration) -> Result<String, String> {
        self.client_in("cl", name, args, limit)
    }

    /// [`Bench::client`] in the namespace of sandbox role `role`.
    fn client_in(
        &mut self,
        role: &str,
        name: &str,
        args: &[&str],
        limit: Duration,
    ) -> Result<String, String> {
        let log = self.dir.join(format!("{name}.out"));
        let f = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sb.ns(role), "taskset", "-c", &LOAD_CORE.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        self.kids.0.push(child);
        let i = self.kids.0.len() - 1;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = self.kids.0[i].try_wait() {
                break;
            }
            if Instant::now() > deadline || interrupted() {
                let _ = self.kids.0[i].kill();
                let _ = self.kids.0[i].wait();
                return Err(format!("{name} did not finish within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut c = self.kids.0.remove(i);
        let _ = c.wait();
        std::fs::read_to_string(&log).map_err(|e| e.to_string())
    }

    /// One run of `mode` against `p` for `seconds`, with the proxy's CPU time around it.
    fn measure(&mut self, p: Proxy, mode: Mode, seconds: u64) -> Result<Sample, String> {
        let limit = Duration::from_secs(seconds + 30);
        let (t0, c0, w0) = (self.ticks(p)?, CpuTimes::read().map_err(|e| e.to_string())?, Instant::now());
        let mut s = match mode {
            Mode::Http | Mode::Https => {
                let scheme = if mode == Mode::Http { "http" } else { "https" };
                let url = format!("{scheme}://{}/", p.host());
                let (c, d) = (CONNS.to_string(), format!("{seconds}s"));
                let args = ["wrk", "-t1", "-c", &c, "-d", &d, "--timeout", "5s", "--latency", &url];
                let text = self.client("wrk", &args, limit)?;
                let r = wrk::Report::parse(&text).ok_or(format!("wrk said nothing usable:\n{text}"))?;
                Sample {
                    requests: r.requests.saturating_sub(r.non_2xx),
                    seconds: r.seconds,
                    p50_ms: r.p50_ms.unwrap_or(0.0),
                    p99_ms: r.p99_ms.unwrap_or(0.0),
                    errors: r.connect_errors + r.other_errors,
                    non_2xx: r.non_2xx,
                    ..Sample::default()
                }
            }
            Mode::H2 => {
                let url = match p {
                    Proxy::Nginx => format!("https://{}:{H2_NGINX_PORT}/", p.host()),
                    _ => format!("https://{}/", p.host()),
                };
                let (c, m, d) = (H2_CONNS.to_string(), H2_STREAMS.to_string(), seconds.to_string());
                let args = ["h2load", "-t1", "-c", &c, "-m", &m, "-D", &d, &url];
                let text = self.client("h2load", &args, limit)?;
                H2load::parse(&text).ok_or(format!("h2load said nothing usable:\n{text}"))?.sample()
            }
            Mode::Handshake => {
                let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
                let addr = format!("{}:443", p.addr());
                let (c, d, host) = (CONNS.to_string(), seconds.to_string(), p.host());
                let args = [
                    me.as_str(),
                    "handshakes",
                    "--addr",
                    &addr,
                    "--sni",
                    &host,
                    "--conns",
                    &c,
                    "--seconds",
                    &d,
                ];
                let text = self.client("handshakes", &args, limit)?;
                let v: Value = text
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str(l).ok())
                    .ok_or(format!("the handshake client said nothing usable:\n{text}"))?;
                let n = |k: &str| v[k].as_u64().unwrap_or(0);
                let x = |k: &str| v[k].as_f64().unwrap_or(0.0);
                if n("errors") > 0 {
                    eprintln!("  {} errors, the last: {}", n("errors"), v["last_error"]);
                }
                Sample {
                    requests: n("requests"),
                    seconds: x("seconds"),
                    p50_ms: x("p50_ms"),
                    p99_ms: x("p99_ms"),
                    errors: n("errors"),
                    non_2xx: n("non_200"),
                    full: n("full") + n("hello_retry"),
                    resumed: n("resumed"),
                    ..Sample::default()
                }
            }
        };
        let (t1, c1) = (self.ticks(p)?, CpuTimes::read().map_err(|e| e.to_string())?);
        s.cpu_s = t1.saturating_sub(t0) as f64 / 100.0;
        s.core1_busy_s = c1.since(&c0, PROXY_CORE).busy_s;
        s.window_s = w0.elapsed().as_secs_f64();
        Ok(s)
    }

    /// Connections established in the gateway namespace on `p`'s port 443.
    fn established(&self, p: Proxy) -> u64 {
        let local = format!("{}:443", p.addr());
        self.sb
            .exec("gw", &["ss", "-Htn", "state", "established", "src", &local])
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count() as u64)
            .unwrap_or(0)
    }

    /// `count` idle TLS keep-alive connections held open on `p`: its private dirty memory and
    /// RSS before and while they are open.
    fn idle(&mut self, p: Proxy, count: usize) -> Result<IdleSample, String> {
        std::thread::sleep(Duration::from_secs(1));
        let pids = self.pids(p)?;
        let mut s = IdleSample {
            dirty_before_kib: smaps_kib(&pids, "Private_Dirty"),
            rss_before_kib: smaps_kib(&pids, "Rss"),
            ..IdleSample::default()
        };
        let me = std::env::current_exe().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let log = self.dir.join("idle.out");
        let f = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let (addr, host, n) = (format!("{}:443", p.addr()), p.host(), count.to_string());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sb.ns("cl"), "taskset", "-c", &LOAD_CORE.to_string()])
            .args([
                me.as_str(),
                "idle",
                "--addr",
                &addr,
                "--sni",
                &host,
                "--count",
                &n,
                "--hold-seconds",
                "300",
            ])
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .spawn()
            .map_err(|e| format!("idle client: {e}"))?;
        self.kids.0.push(child);
        let i = self.kids.0.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(180);
        let line = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.starts_with("open ")) {
                break l.to_owned();
            }
            let exited = matches!(self.kids.0[i].try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline || interrupted() {
                let _ = self.kids.0[i].kill();
                let _ = self.kids.0[i].wait();
                return Err(format!("the idle client did not open its connections:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        s.opened = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if !line.contains("failed 0") {
            eprintln!("  idle client: {line}");
        }
        // Let the proxy finish with the last ones (timers, pools) before reading.
        std::thread::sleep(Duration::from_secs(1));
        s.established = self.established(p);
        let pids = self.pids(p)?;
        s.dirty_after_kib = smaps_kib(&pids, "Private_Dirty");
        s.rss_after_kib = smaps_kib(&pids, "Rss");
        let mut c = self.kids.0.remove(i);
        let _ = c.kill();
        let _ = c.wait();
        // The proxy sees the connections close.
        std::thread::sleep(Duration::from_secs(2));
        Ok(s)
    }
}

// ------------------------------------------------------------------------------------------
// The table and RESULT

/// Everything measured.
struct Report {
    plan: Plan,
    /// (repeat, mode, proxy, sample).
    samples: Vec<(usize, Mode, Proxy, Sample)>,
    idle: Vec<(Proxy, IdleSample)>,
}

/// `median (min–max)` with `digits` decimals.
fn spread(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 {
        format!("{:.digits$}", median(v))
    } else {
        format!("{:.digits$} ({lo:.digits$}–{hi:.digits$})", median(v))
    }
}

/// Rounded to `digits` decimals, for RESULT.
fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

impl Report {
    /// The samples of one mode and proxy, in repeat order.
    fn of(&self, mode: Mode, p: Proxy) -> Vec<&Sample> {
        self.samples.iter().filter(|(_, m, q, _)| *m == mode && *q == p).map(|(.., s)| s).collect()
    }

    /// A figure of one mode and proxy over the repeats.
    fn values(&self, mode: Mode, p: Proxy, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.of(mode, p).into_iter().map(f).collect()
    }

    /// Sluice ÷ `peer` per CPU-second in `mode`: the median of the per-repeat ratios (each pair
    /// ran back to back, so a drift of the machine moves both sides of a ratio).
    fn vs(&self, mode: Mode, peer: Proxy) -> f64 {
        let ours = self.values(mode, Proxy::Sluice, Sample::per_cpu_s);
        let theirs = self.values(mode, peer, Sample::per_cpu_s);
        let r: Vec<f64> = ours.iter().zip(&theirs).filter(|(_, t)| **t > 0.0).map(|(o, t)| o / t).collect();
        median(&r)
    }

    fn print(&self) {
        let Plan { seconds, repeat, idle_conns, ref modes } = self.plan;
        println!(
            "\nL7: Sluice vs nginx (ingress-nginx's settings) vs HAProxy 2.6, each on core {PROXY_CORE} with one worker;"
        );
        println!(
            "clients and the two nginx backends (6-byte body) on core {LOAD_CORE}; {seconds} s per run, {repeat} repeat(s), median (min–max)"
        );
        for &mode in modes {
            println!("\n{}", mode.title());
            println!(
                "{:<8} {:>24} {:>22} {:>22} {:>18} {:>26} {:>10} {:>8}",
                "proxy",
                "req/s",
                "p50 ms",
                "p99 ms",
                "proxy CPU-s",
                "req per proxy CPU-s",
                "core 1",
                "errors"
            );
            for p in Proxy::ALL {
                let ss = self.of(mode, p);
                if ss.is_empty() {
                    continue;
                }
                let busy: f64 =
                    ss.iter().map(|s| s.core1_busy_s / s.window_s.max(1e-9)).sum::<f64>() / ss.len() as f64;
                let errors: u64 = ss.iter().map(|s| s.errors + s.non_2xx).sum();
                println!(
                    "{:<8} {:>24} {:>22} {:>22} {:>18} {:>26} {:>9.0}% {:>8}",
                    p.name(),
                    spread(&self.values(mode, p, Sample::rps), 0),
                    spread(&self.values(mode, p, |s| s.p50_ms), 2),
                    spread(&self.values(mode, p, |s| s.p99_ms), 2),
                    spread(&self.values(mode, p, |s| s.cpu_s), 2),
                    spread(&self.values(mode, p, Sample::per_cpu_s), 0),
                    busy * 100.0,
                    errors
                );
            }
            if mode == Mode::Handshake {
                let (full, resumed): (u64, u64) = Proxy::ALL
                    .iter()
                    .flat_map(|p| self.of(mode, *p))
                    .fold((0, 0), |(f, r), s| (f + s.full, r + s.resumed));
                println!("handshakes the client saw: {full} full, {resumed} resumed");
            }
            println!(
                "Sluice per proxy CPU-s: {:.2}× nginx, {:.2}× HAProxy",
                self.vs(mode, Proxy::Nginx),
                self.vs(mode, Proxy::Haproxy)
            );
        }
        println!(
            "\nIdle TLS keep-alive connections ({idle_conns} asked, one GET each): growth of the proxy's private dirty memory (RSS) per connection"
        );
        println!(
            "{:<8} {:>8} {:>12} {:>22} {:>22} {:>12} {:>12}",
            "proxy", "opened", "established", "Private_Dirty KiB", "RSS KiB", "KiB/conn", "RSS KiB/conn"
        );
        for (p, s) in &self.idle {
            println!(
                "{:<8} {:>8} {:>12} {:>22} {:>22} {:>12.1} {:>12.1}",
                p.name(),
                s.opened,
                s.established,
                format!("{} → {}", s.dirty_before_kib, s.dirty_after_kib),
                format!("{} → {}", s.rss_before_kib, s.rss_after_kib),
                s.dirty_kib_per_conn(),
                s.rss_kib_per_conn()
            );
        }
        println!(
            "\nCPU: utime+stime of the proxy's processes (/proc/PID/stat) over the client's run; core 1: its busy share (everything on it)."
        );
    }

    fn result(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for &mode in &self.plan.modes {
            for p in Proxy::ALL {
                let (k, stem) = (p.key(), mode.stem());
                let med = |f: fn(&Sample) -> f64| median(&self.values(mode, p, f));
                m.insert(format!("{k}{stem}_rps"), json!(round(med(Sample::rps), 0)));
                m.insert(format!("{k}{stem}_per_cpu_s"), json!(round(med(Sample::per_cpu_s), 0)));
                m.insert(format!("{k}{stem}_p50_ms"), json!(round(med(|s| s.p50_ms), 3)));
                m.insert(format!("{k}{stem}_p99_ms"), json!(round(med(|s| s.p99_ms), 3)));
            }
            m.insert(format!("{}_vs_nginx", mode.stem()), json!(round(self.vs(mode, Proxy::Nginx), 3)));
            m.insert(format!("{}_vs_haproxy", mode.stem()), json!(round(self.vs(mode, Proxy::Haproxy), 3)));
        }
        // The headline latency: HTTPS keep-alive.
        for p in Proxy::ALL {
            m.insert(
                format!("{}p99_ms", p.key()),
                json!(round(median(&self.values(Mode::Https, p, |s| s.p99_ms)), 3)),
            );
        }
        let resumed: u64 =
            Proxy::ALL.iter().flat_map(|p| self.of(Mode::Handshake, *p)).map(|s| s.resumed).sum();
        m.insert("handshakes_resumed".into(), json!(resumed));
        for (p, s) in &self.idle {
            m.insert(format!("{}idle_conn_kib", p.key()), json!(round(s.dirty_kib_per_conn(), 1)));
            m.insert(format!("{}idle_conn_rss_kib", p.key()), json!(round(s.rss_kib_per_conn(), 1)));
            m.insert(format!("{}idle_conns", p.key()), json!(s.established));
        }
        m.insert("seconds".into(), json!(self.plan.seconds));
        m.insert("repeat".into(), json!(self.plan.repeat));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        // Our own process: utime + stime exist and do not go backwards.
        let me = std::process::id();
        let a = cpu_ticks(me).expect("own stat");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_ticks(me).expect("own stat") >= a);
        assert!(family(me).contains(&me));
    }

    #[test]
    fn h2load_reports_are_read() {
        let text = "finished in 10.00s, 53211.30 req/s, 5.48MB/s
requests: 532113 total, 532113 started, 532113 done, 532110 succeeded, 3 failed, 0 errored, 0 timeout
status codes: 532100 2xx, 0 3xx, 10 4xx, 0 5xx
traffic: 54.80MB (57461236) total, 1.52MB (1596339) headers (space savings 94.21%), 3.04MB (3192678) data
                     min         max         mean         sd        +/- sd
time for request:      415us     40.94ms      5.88ms      2.40ms    80.00%
";
        let r = H2load::parse(text).unwrap();
        assert_eq!(r, H2load { seconds: 10.0, ok_2xx: 532_100, non_2xx: 10, errors: 3, mean_ms: 5.88 });
        assert_eq!(H2load::parse("finished in 1.00s, 1 req/s"), None);
    }

    #[test]
    fn ratios_are_medians_of_pairs() {
        let s = |requests: u64, cpu_s: f64| Sample { requests, seconds: 1.0, cpu_s, ..Sample::default() };
        let r = Report {
            plan: Plan { seconds: 1, repeat: 3, idle_conns: 10, modes: Mode::ALL.to_vec() },
            samples: vec![
                (0, Mode::Https, Proxy::Sluice, s(300, 1.0)),
                (0, Mode::Https, Proxy::Nginx, s(100, 1.0)),
                (1, Mode::Https, Proxy::Sluice, s(200, 1.0)),
                (1, Mode::Https, Proxy::Nginx, s(100, 1.0)),
                (2, Mode::Https, Proxy::Sluice, s(100, 0.5)),
                (2, Mode::Https, Proxy::Nginx, s(400, 1.0)),
            ],
            idle: vec![],
        };
        // Pairs: 3.0, 2.0, 0.5 → 2.0.
        assert_eq!(r.vs(Mode::Https, Proxy::Nginx), 2.0);
        assert_eq!(r.vs(Mode::Https, Proxy::Haproxy), 0.0);
    }
}
