//! Network-namespace sandboxes: a real network on one machine, for the namespace tests, the
//! demo and the end-to-end benchmarks.
//!
//! ```text
//!   client ns (c0)            gateway ns (gw0: AF_XDP + XDP)         backend ns b1, b2, … (e0)
//!   198.18.0.100/24            198.18.0.1/24    (node address)         198.18.1.N/24
//!   2001:db8::100/64           198.18.1.254/24  (FullNAT source,       2001:db8:1::N/64
//!        │                     2001:db8::1/64    backends' router)     default via the gateway
//!        │                     2001:db8:1::fe/64                            │
//!        └──────────────── switch ns: one bridge, one port per host ───────┘
//! ```
//! One-armed: clients and backends reach the gateway through the same interface. The client is
//! on another subnet than the backends, so DNAT replies go back through the gateway. LoadBalancer
//! VIPs (198.18.100.0/24, 2001:db8:100::/64) are on-link for the client, which ARPs for them —
//! the gateway answers. ClusterIPs (198.19.0.0/16) are routed to the gateway's node address.
//!
//! Every address is from 198.18.0.0/15 or 2001:db8::/32. Names carry the process id and a
//! counter, so parallel tests do not collide; [`Sandbox`]'s `Drop` stops every process it
//! started and deletes every namespace, also when a test panics, and a new sandbox removes
//! namespaces left by sandboxes whose process is gone (a run killed with SIGKILL).
#![forbid(unsafe_code)]

pub mod forge;
pub mod nodes;
pub mod tls;

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The gateway's node address (NodePorts answer here).
pub const GW_V4: &str = "198.18.0.1";
/// The gateway's IPv6 node address.
pub const GW_V6: &str = "2001:db8::1";
/// The FullNAT source address, on the backends' subnet (and the backends' router).
pub const SNAT_V4: &str = "198.18.1.254";
/// The IPv6 FullNAT source address and router.
pub const SNAT_V6: &str = "2001:db8:1::fe";
/// The client's address.
pub const CLIENT_V4: &str = "198.18.0.100";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "2001:db8::100";
/// The node name control is told (Pods with this `spec.nodeName` are local).
pub const NODE_NAME: &str = "sluice-gw";

pub(crate) static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The XDP_PASS program for the gateway's peers (`bpf/pass.c`).
pub(crate) static PASS_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pass.o"));

/// The XDP_DROP program for generators' interfaces (`bpf/drop.c`).
static DROP_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/drop.o"));
/// The flood benchmark's sink for replies to forged sources (`bpf/sink.c`).
static SINK_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sink.o"));

/// What the namespace suite asks of the gateway's XDP fast path: `SLUICE_FAST_PATH=on` or
/// `off` names it (`--fast-path on|off`); unset, the gateway's default (`auto`: on, the
/// sandbox's veth running AF_XDP in copy mode).
pub fn fast_path_from_env() -> Option<&'static str> {
    match std::env::var("SLUICE_FAST_PATH").as_deref() {
        Ok("on") => Some("on"),
        Ok("off") => Some("off"),
        _ => None,
    }
}

/// Whether this process may build sandboxes. Without root: prints a loud skip notice and returns
/// false — or panics when `SLUICE_REQUIRE_ROOT=1` (CI), so a skipped suite cannot pass there.
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("SLUICE_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs root (network namespaces, XDP) and SLUICE_REQUIRE_ROOT=1 forbids skipping");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: needs root (network namespaces, XDP); run as root to test the data plane !!!!!!!!\n"
    );
    false
}

/// Where the workspace's binaries are: `SLUICE_BIN_DIR`, else beside (or above) this executable.
pub fn bin(name: &str) -> PathBuf {
    if let Some(d) = std::env::var_os("SLUICE_BIN_DIR") {
        return PathBuf::from(d).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for _ in 0..2 {
        let p = dir.join(name);
        if p.exists() {
            return p;
        }
        if !dir.pop() {
            break;
        }
    }
    PathBuf::from(name)
}

/// The repository root (for `deploy/examples`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// An example manifest directory of `deploy/examples`.
pub fn example(name: &str) -> PathBuf {
    repo_root().join("deploy/examples").join(name)
}

/// A backend host: a namespace with real servers answering with its name.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Name (also what its servers answer), e.g. `petclinic-1`.
    pub name: String,
    /// IPv4 address on the backends' /24.
    pub v4: String,
    /// IPv6 address on the backends' /64, if any.
    pub v6: Option<String>,
    /// TCP ports nginx listens on (HTTP: `/` answers the name, `/big` a slow 2 MiB body).
    pub tcp: Vec<u16>,
    /// UDP ports the echo server answers on (`NAME:payload`).
    pub udp: Vec<u16>,
}

impl Backend {
    /// A backend with nginx on `tcp` ports and nothing else.
    pub fn http(name: &str, v4: &str, tcp: &[u16]) -> Backend {
        Backend { name: name.into(), v4: v4.into(), v6: None, tcp: tcp.to_vec(), udp: vec![] }
    }
}

/// A process a sandbox started, stopped when it drops.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
}

/// Runs a command in namespace `ns`.
pub(crate) fn exec_in(ns: &str, args: &[&str]) -> io::Result<Output> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Starts a long-running process in namespace `ns`, its output in `dir/NAME.log`.
pub(crate) fn spawn_logged(dir: &Path, ns: &str, name: &str, args: &[&str]) -> io::Result<Proc> {
    let log = fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(Proc { name: name.into(), child })
}

/// A sandbox. See the crate documentation.
pub struct Sandbox {
    id: String,
    topology: Topology,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    backends: Vec<Backend>,
    table: PathBuf,
    manifests: PathBuf,
    metrics: Option<String>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("id", &self.id).field("namespaces", &self.namespaces).finish()
    }
}

/// A veth pair from `a.1` in namespace `a.0` to `b.1` in `b.0`, with `queues` receive and
/// transmit queues on each end (0 or 1: the default single queue).
pub fn veth(a: (&str, &str), b: (&str, &str), queues: u32) -> io::Result<()> {
    let q = queues.max(1).to_string();
    must(&[
        "ip",
        "link",
        "add",
        a.1,
        "netns",
        a.0,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b.1,
        "netns",
        b.0,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ])
}

/// The MAC address of interface `ifname` in namespace `ns` (empty if there is none).
pub fn mac_in(ns: &str, ifname: &str) -> String {
    run(&["ip", "netns", "exec", ns, "cat", &format!("/sys/class/net/{ifname}/address")])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The generation a table file holds (from `sluice-control status`), None when it cannot be
/// read.
pub fn generation_of(table: &Path) -> Option<u64> {
    let out = run(&[&bin("sluice-control").to_string_lossy(), "status", "--table", &table.to_string_lossy()])
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines().next()?.strip_prefix("generation ")?.split(':').next()?.trim().parse().ok()
}

/// Runs a command; returns its output or says what failed.
pub fn run(args: &[&str]) -> io::Result<Output> {
    let out = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output()?;
    Ok(out)
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) -> io::Result<()> {
    let out = run(args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces of sandboxes whose process has died.
pub(crate) fn remove_stale() {
    let Ok(out) = run(&["ip", "netns", "list"]) else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("sl") else { continue };
        let Some((pid, _)) = rest.split_once('x') else { continue };
        if let Ok(pid) = pid.parse::<i32>()
            && !pid_alive(pid)
        {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// How the gateway is plugged in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Topology {
    /// Receive and transmit queues of the gateway's veth (0 or 1: one).
    pub queues: u32,
    /// Two-armed: the gateway faces the clients on `gw0` (switch `br0`) and the backends on
    /// `gw1` (switch `br1`); one-armed: everything on `gw0`.
    pub two_armed: bool,
    /// The MTU of every link (0: the default, 1500).
    pub mtu: u32,
}

impl Sandbox {
    /// Builds the one-armed, single-queue topology with these backends.
    pub fn new(backends: &[Backend]) -> io::Result<Sandbox> {
        Sandbox::with_topology(backends, Topology::default())
    }

    /// Builds a topology with these backends.
    pub fn with_topology(backends: &[Backend], topology: Topology) -> io::Result<Sandbox> {
        remove_stale();
        let id = format!("sl{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new().prefix(&format!("{id}-")).tempdir()?;
        let manifests = dir.path().join("manifests");
        fs::create_dir(&manifests)?;
        let mut sb = Sandbox {
            table: PathBuf::from(format!("/dev/shm/sluice-{id}")),
            id,
            topology,
            dir,
            namespaces: Vec::new(),
            procs: Vec::new(),
            backends: backends.to_vec(),
            manifests,
            metrics: None,
        };
        sb.build()?;
        Ok(sb)
    }

    /// The sandbox's own directory (logs, configurations; removed with it): where a test or the
    /// demo keeps files it makes at run time, such as certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The namespace of a role: `sw`, `gw`, `cl` or a backend's index `b0`, `b1`, …
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.id)
    }

    /// Adds another client host on the clients' switch: namespace `role` (removed with the
    /// sandbox) with interface `c0` holding `v4`/24 (an unused address of 198.18.0.0/24), and the
    /// client's IPv4 routes (LoadBalancer VIPs on-link, ClusterIPs via the gateway). For tests and
    /// benches that need many client addresses (wrk, curl cannot choose a source address) or a
    /// host of their own on the clients' segment. Returns the namespace's name.
    pub fn add_client(&mut self, role: &str, v4: &str) -> io::Result<String> {
        let ns = self.plug(role, "c0")?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{v4}/24"), "dev", "c0"])?;
        client_routes(&ns)?;
        Ok(ns)
    }

    /// Adds a namespace of the sandbox (removed with it) for a role of the test's own, with
    /// only loopback up: the test wires it.
    pub fn add_namespace(&mut self, role: &str) -> io::Result<String> {
        self.add_ns(role)
    }

    fn add_ns(&mut self, role: &str) -> io::Result<String> {
        let ns = self.ns(role);
        must(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Drops every frame arriving at `iface` in `role`'s namespace with an XDP program, before
    /// its kernel sees it: for a generator whose core must not be spent on what comes back (the
    /// SYN-ACKs to a SYN flood's forged sources). Sending through the interface is unchanged.
    pub fn drop_ingress(&self, role: &str, iface: &str) -> io::Result<()> {
        let obj = self.dir.path().join("drop.o");
        if !obj.exists() {
            fs::write(&obj, DROP_PROGRAM)?;
        }
        let obj = obj.to_string_lossy().into_owned();
        must(&["ip", "-n", &self.ns(role), "link", "set", "dev", iface, "xdpdrv", "obj", &obj, "sec", "xdp"])
    }

    /// Replaces the XDP_PASS program on the gateway's switch port with `bpf/sink.c`, which drops
    /// frames to 198.18.128.0/19 (a SYN flood's forged sources) and passes the rest: the replies
    /// to a flood then leave the gateway's core as they would leave a NIC, instead of being
    /// bridged to the flooder on it (veth runs its peer's receive path on the sender's core).
    pub fn sink_flood_replies(&self) -> io::Result<()> {
        let obj = self.dir.path().join("sink.o");
        if !obj.exists() {
            fs::write(&obj, SINK_PROGRAM)?;
        }
        let obj = obj.to_string_lossy().into_owned();
        let sw = self.ns("sw");
        must(&["ip", "-force", "-n", &sw, "link", "set", "dev", "s-gw", "xdpdrv", "obj", &obj, "sec", "xdp"])
    }

    /// Attaches the XDP_PASS program to `role`'s switch port: a host that transmits with XDP_TX
    /// (a live-frames generator) needs it there, or its frames never leave the peer's ring.
    pub fn pass_on_switch_port(&self, role: &str) -> io::Result<()> {
        let obj = self.dir.path().join("pass.o");
        if !obj.exists() {
            fs::write(&obj, PASS_PROGRAM)?;
        }
        let obj = obj.to_string_lossy().into_owned();
        let port = format!("s-{role}");
        must(&["ip", "-n", &self.ns("sw"), "link", "set", "dev", &port, "xdpdrv", "obj", &obj, "sec", "xdp"])
    }

    fn plug(&mut self, role: &str, ifname: &str) -> io::Result<String> {
        let ns = self.add_ns(role)?;
        let bridge = if self.topology.two_armed && role.starts_with('b') { "br1" } else { "br0" };
        self.wire(&ns, role, ifname, bridge, &format!("s-{role}"))?;
        Ok(ns)
    }

    /// A veth from `ifname` in `ns` to a port of switch `bridge`, up, set as the hosts' are.
    fn wire(&mut self, ns: &str, role: &str, ifname: &str, bridge: &str, port: &str) -> io::Result<()> {
        let sw = self.ns("sw");
        // With several queues, on both ends: the switch's end spreads flows over its transmit
        // queues (the skb hash), which are the gateway's receive queues — RSS, as a multi-queue
        // NIC does it.
        let queues = if role == "gw" { self.topology.queues } else { 1 };
        veth((ns, ifname), (&sw, port), queues)?;
        must(&["ip", "-n", &sw, "link", "set", port, "master", bridge, "up"])?;
        // Pitfall 3 of docs/af-xdp.md: the peer of a veth that transmits from XDP / AF_XDP needs
        // NAPI, or frames vanish: GRO on the gateway's switch port. Nowhere else: a GRO port
        // facing a host would merge its segments into super-frames, which the bridge forwards to
        // the gateway whole, past what an XDP program without multi-buffer support is given.
        // And an XDP program there: NAPI through GRO takes what the gateway transmits, but
        // frames its XDP program sends with XDP_TX (SYN cookies) are only taken by a peer with an
        // XDP program — with GRO alone they fill the ring and the link stops (pitfall 3).
        if role == "gw" {
            must(&["ip", "netns", "exec", &sw, "ethtool", "-K", port, "gro", "on"])?;
            let obj = self.dir.path().join("pass.o");
            if !obj.exists() {
                fs::write(&obj, PASS_PROGRAM)?;
            }
            let obj = obj.to_string_lossy().into_owned();
            must(&["ip", "-n", &sw, "link", "set", "dev", port, "xdpdrv", "obj", &obj, "sec", "xdp"])?;
        }
        let ns = ns.to_owned();
        if self.topology.mtu > 0 {
            let mtu = self.topology.mtu.to_string();
            must(&["ip", "-n", &sw, "link", "set", port, "mtu", &mtu])?;
            must(&["ip", "-n", &ns, "link", "set", ifname, "mtu", &mtu])?;
        }
        must(&["ip", "-n", &ns, "link", "set", ifname, "up"])?;
        // Pitfall 1: frames from local sockets carry partial checksums on veth; the hosts send
        // full ones, as a real NIC would put on the wire.
        must(&["ip", "netns", "exec", &ns, "ethtool", "-K", ifname, "tx", "off"])?;
        for knob in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
            must(&["ip", "netns", "exec", &ns, "sysctl", "-qw", knob])?;
        }
        Ok(())
    }

    fn build(&mut self) -> io::Result<()> {
        let sw = self.add_ns("sw")?;
        for br in ["br0", "br1"] {
            must(&["ip", "-n", &sw, "link", "add", br, "type", "bridge"])?;
            must(&["ip", "-n", &sw, "link", "set", br, "up"])?;
        }
        let gw = self.plug("gw", "gw0")?;
        // Two-armed, the backends' network is on its own interface.
        let inside = if self.topology.two_armed {
            self.wire(&gw, "gw", "gw1", "br1", "s-gw1")?;
            "gw1"
        } else {
            "gw0"
        };
        address_gateway(&gw, inside)?;
        let cl = self.plug("cl", "c0")?;
        must(&["ip", "-n", &cl, "addr", "add", "198.18.0.100/24", "dev", "c0"])?;
        must(&["ip", "-n", &cl, "addr", "add", "2001:db8::100/64", "dev", "c0", "nodad"])?;
        must(&["ip", "-n", &cl, "route", "add", "2001:db8:100::/64", "dev", "c0"])?;
        must(&["ip", "-n", &cl, "route", "add", "2001:db8:19::/48", "via", GW_V6])?;
        client_routes(&cl)?;
        for i in 0..self.backends.len() {
            let b = self.backends[i].clone();
            let ns = self.plug(&format!("b{i}"), "e0")?;
            must(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", b.v4), "dev", "e0"])?;
            must(&["ip", "-n", &ns, "route", "add", "default", "via", SNAT_V4])?;
            if let Some(v6) = &b.v6 {
                must(&["ip", "-n", &ns, "addr", "add", &format!("{v6}/64"), "dev", "e0", "nodad"])?;
                must(&["ip", "-n", &ns, "route", "add", "default", "via", SNAT_V6])?;
            }
            self.start_servers(i)?;
        }
        Ok(())
    }

    /// Deletes the gateway's client-facing interface `gw0` (with its switch port: a veth pair
    /// goes as one) and creates it again, wired and addressed as before — an interface deleted
    /// and re-created under the gateway. Its index changes.
    pub fn replug_gateway(&mut self) -> io::Result<()> {
        let gw = self.ns("gw");
        must(&["ip", "-n", &gw, "link", "del", "gw0"])?;
        self.wire(&gw, "gw", "gw0", "br0", "s-gw")?;
        if self.topology.two_armed {
            must(&["ip", "-n", &gw, "addr", "add", "198.18.0.1/24", "dev", "gw0"])?;
            must(&["ip", "-n", &gw, "addr", "add", "2001:db8::1/64", "dev", "gw0", "nodad"])
        } else {
            address_gateway(&gw, "gw0")
        }
    }

    fn start_servers(&mut self, i: usize) -> io::Result<()> {
        let b = self.backends[i].clone();
        if !b.tcp.is_empty() {
            self.start_nginx(&format!("b{i}"), &b.name, &b.tcp)?;
        }
        if !b.udp.is_empty() {
            let echo = bin("sluice-udp-echo");
            let mut args = vec![echo.to_string_lossy().into_owned(), "--name".into(), b.name.clone()];
            for p in &b.udp {
                args.push("--port".into());
                args.push(p.to_string());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.spawn(&format!("b{i}"), &format!("udp-echo-{}", b.name), &args)?;
        }
        // Wait until the servers listen (a loaded machine may take a while to start them: the
        // first request of a test must not race them).
        let deadline = Instant::now() + Duration::from_secs(10);
        let echo = bin("sluice-udp-echo").to_string_lossy().into_owned();
        for p in &b.udp {
            let target = format!("{}:{p}", b.v4);
            while self
                .exec(&format!("b{i}"), &[&echo, "--send", &target, "ready?"])
                .map_or(true, |o| !o.status.success())
            {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "the UDP echo of {} does not answer on {p}",
                        b.name
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for p in &b.tcp {
            let probe = format!("http://{}:{p}/", b.v4);
            while self
                .exec(&format!("b{i}"), &["curl", "-s", "-m", "1", &probe])
                .map_or(true, |o| !o.status.success())
            {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!("nginx of {} does not answer on {p}", b.name)));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Starts nginx in a role's namespace on `ports` (IPv4 and IPv6): `/` answers `name`, `/ip`
    /// the client address it sees, `/big` a 2 MiB body at 256 KiB/s; every answer carries an
    /// `X-Backend: name` header, `X-Request-Uri` (the request's target as it arrived), and the
    /// request's own `X-Echo` field when it has one (a field the gateway set upstream, seen).
    pub fn start_nginx(&mut self, role: &str, name: &str, ports: &[u16]) -> io::Result<()> {
        let path = write_nginx(&self.dir.path().join(format!("nginx-{name}")), name, ports)?;
        self.spawn(role, &format!("nginx-{name}"), &["nginx", "-c", &path.to_string_lossy()])?;
        Ok(())
    }

    /// Runs a command in a role's namespace.
    pub fn exec(&self, role: &str, args: &[&str]) -> io::Result<Output> {
        exec_in(&self.ns(role), args)
    }

    /// Starts a long-running process in a role's namespace; its output goes to a log file of the
    /// sandbox. It is stopped when the sandbox drops.
    pub fn spawn(&mut self, role: &str, name: &str, args: &[&str]) -> io::Result<u32> {
        let p = spawn_logged(self.dir.path(), &self.ns(role), name, args)?;
        let pid = p.child.id();
        self.procs.push(p);
        Ok(pid)
    }

    /// The process id of a process started with [`Sandbox::spawn`] (`ip netns exec` runs the
    /// command in its own process).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.iter().find(|p| p.name == name).map(|p| p.child.id())
    }

    /// The log of a process started with [`Sandbox::spawn`].
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops a process by name with `sig` and waits for it (SIGKILL after 5 s).
    pub fn stop(&mut self, name: &str, sig: rustix::process::Signal) -> Option<std::process::ExitStatus> {
        let i = self.procs.iter().position(|p| p.name == name)?;
        let mut p = self.procs.remove(i);
        Some(stop_child(&mut p.child, sig))
    }

    /// The manifest directory control reads.
    pub fn manifests(&self) -> &Path {
        &self.manifests
    }

    /// The table file.
    pub fn table(&self) -> &Path {
        &self.table
    }

    /// Replaces the manifest directory's content with the files of `examples` (each a directory
    /// or file), and `extra` files given as (name, YAML). Control notices through inotify.
    pub fn set_manifests(&self, examples: &[PathBuf], extra: &[(&str, &str)]) -> io::Result<()> {
        // Write new files under temporary names first, then rename, so control never sees a
        // half-written file.
        let staging = self.dir.path().join("staging");
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging)?;
        for e in examples {
            let files: Vec<PathBuf> = if e.is_dir() {
                fs::read_dir(e)?.filter_map(Result::ok).map(|d| d.path()).collect()
            } else {
                vec![e.clone()]
            };
            for f in files {
                if let Some(n) = f.file_name() {
                    let prefix = e.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    fs::copy(&f, staging.join(format!("{prefix}-{}", n.to_string_lossy())))?;
                }
            }
        }
        for (name, text) in extra {
            fs::write(staging.join(name), text)?;
        }
        for old in fs::read_dir(&self.manifests)? {
            let old = old?.path();
            if !staging.join(old.file_name().unwrap_or_default()).exists() {
                fs::remove_file(&old)?;
            }
        }
        for new in fs::read_dir(&staging)? {
            let new = new?.path();
            fs::rename(&new, self.manifests.join(new.file_name().unwrap_or_default()))?;
        }
        Ok(())
    }

    /// Starts control on the manifest directory (fill it first with [`Sandbox::set_manifests`])
    /// and waits for its first publication.
    pub fn start_control(&mut self) -> io::Result<()> {
        self.start_control_with(&[])
    }

    /// [`Sandbox::start_control`] with more arguments for `sluice-control run`.
    pub fn start_control_with(&mut self, extra: &[&str]) -> io::Result<()> {
        let control = bin("sluice-control");
        let (m, t) =
            (self.manifests.to_string_lossy().into_owned(), self.table.to_string_lossy().into_owned());
        let c = control.to_string_lossy().into_owned();
        let args = [
            c.as_str(),
            "run",
            "--manifests",
            &m,
            "--table",
            &t,
            "--node-address",
            GW_V4,
            "--node-address",
            GW_V6,
            "--snat-address",
            SNAT_V4,
            "--snat-address",
            SNAT_V6,
            "--node-name",
            NODE_NAME,
            "--metrics-address",
            "127.0.0.1:0",
            "--interval-ms",
            "200",
        ];
        // Control runs in the host namespace: it needs no network but loopback for metrics.
        let log = fs::File::create(self.dir.path().join("control.log"))?;
        let child = Command::new(args[0])
            .args(&args[1..])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.procs.push(Proc { name: "control".into(), child });
        self.wait_generation(1)?;
        // A log line (after the time, level and target): `metrics: http://127.0.0.1:PORT/metrics`.
        // Waited for (10 s at most): a control started again finds the table file at a
        // generation already, and `wait_generation` returns before it has said anything.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log("control");
            self.metrics = log
                .lines()
                .find_map(|l| l.split_once("metrics: http://"))
                .map(|(_, a)| format!("http://{a}"));
            if self.metrics.is_some() || Instant::now() > deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The generation the table file holds ([`generation_of`]).
    pub fn generation(&self) -> Option<u64> {
        generation_of(&self.table)
    }

    /// Waits until the table reaches generation `g`.
    pub fn wait_generation(&self, g: u64) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.generation().is_none_or(|now| now < g) {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "table did not reach generation {g} (control log:\n{})",
                    self.log("control")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `sluice-control status` output.
    pub fn status(&self) -> String {
        run(&[&bin("sluice-control").to_string_lossy(), "status", "--table", &self.table.to_string_lossy()])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Control's metrics page. Panics (with control's log) when control announced no metrics
    /// address or the page cannot be fetched: an empty page would read as counters at zero.
    pub fn metrics(&self) -> String {
        let Some(url) = &self.metrics else {
            panic!("control's log names no metrics address:\n{}", self.log("control"))
        };
        let out =
            run(&["curl", "-sS", "--fail", "-m", "2", url]).unwrap_or_else(|e| panic!("curl {url}: {e}"));
        assert!(
            out.status.success(),
            "curl {url}: {}\ncontrol's log:\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log("control")
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A counter of the gateway summed over workers, from control's metrics. Panics, with the
    /// page, when the page has no such counter (a misspelt name, or no worker published yet).
    pub fn gateway_counter(&self, name: &str) -> u64 {
        self.gateway_counters([name])[0]
    }

    /// Gateway counters summed over workers, all from one scrape of control's metrics; panics,
    /// with the page, when one is absent. One scrape is one moment for each worker, not one
    /// moment for the gateway: each worker publishes its counters when it likes (see
    /// [`Sandbox::wait_counters_agree`]).
    pub fn gateway_counters<const N: usize>(&self, names: [&str; N]) -> [u64; N] {
        let (page, values) = self.scrape(names);
        let mut missing = names.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| *n);
        if let Some(name) = missing.next() {
            panic!("no gateway counter {name:?} on control's metrics page:\n{page}");
        }
        values.map(|v| v.unwrap_or_default())
    }

    /// One scrape: the page, and each counter summed over workers, or None where the page has
    /// no sample of it.
    fn scrape<const N: usize>(&self, names: [&str; N]) -> (String, [Option<u64>; N]) {
        let page = self.metrics();
        let values = names.map(|name| {
            let prefix = format!("sluice_gateway_{name}_total");
            let samples: Vec<u64> = page
                .lines()
                .filter(|l| l.starts_with(&prefix) && l[prefix.len()..].starts_with(['{', ' ']))
                .map(sample)
                .collect();
            (!samples.is_empty()).then(|| samples.iter().sum())
        });
        (page, values)
    }

    /// Waits (up to 3 s) until two gateway counters agree, and returns them as last read. Two
    /// counters that two workers publish (one hands a frame over, the other takes it in) are two
    /// moments: read once, they may differ by what one worker counted after its last publication.
    pub fn wait_counters_agree(&self, a: &str, b: &str) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let (_, [Some(x), Some(y)]) = self.scrape([a, b])
                && x == y
            {
                return (x, y);
            }
            if Instant::now() > deadline {
                let [x, y] = self.gateway_counters([a, b]);
                return (x, y);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A gauge of the gateway (`flows`, `flow_capacity`) summed over workers, from control's
    /// metrics. Panics, with the page, when the page has no such gauge.
    pub fn gateway_gauge(&self, name: &str) -> u64 {
        let prefix = format!("sluice_gateway_{name}");
        let page = self.metrics();
        let samples: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with(&prefix) && l[prefix.len()..].starts_with(['{', ' ']))
            .map(sample)
            .collect();
        assert!(!samples.is_empty(), "no gauge {name:?} on control's metrics page:\n{page}");
        samples.iter().sum()
    }

    /// The gateway's drops for one reason (`no_flow_for_segment`…), summed over workers. Panics,
    /// with the page, when the page has no such reason.
    pub fn gateway_drops(&self, reason: &str) -> u64 {
        let label = format!("reason=\"{reason}\"}}");
        let page = self.metrics();
        let samples: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with("sluice_gateway_drops_total{") && l.contains(&label))
            .map(sample)
            .collect();
        assert!(!samples.is_empty(), "no drop reason {reason:?} on control's metrics page:\n{page}");
        samples.iter().sum()
    }

    /// Waits (up to 3 s) until a gateway counter reaches `at_least` (workers publish their
    /// counters when idle and every 100 ms when busy); returns its last value. Panics, with the
    /// page, if the counter is still absent at the end.
    pub fn wait_counter(&self, name: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let (_, [Some(v)]) = self.scrape([name])
                && v >= at_least
            {
                return v;
            }
            if Instant::now() > deadline {
                return self.gateway_counter(name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the gateway on `gw0` in the gateway namespace, pinned to the last core, and waits
    /// until its XDP program is attached and it runs the current table. With
    /// `SLUICE_FAST_PATH=on` or `off` in the environment, the gateway runs with `--fast-path on`
    /// or `off` (unless `extra` says otherwise; unset, with its default, on here): the namespace
    /// suite is run once each way.
    pub fn start_gateway(&mut self, extra: &[&str]) -> io::Result<u32> {
        let g = bin("sluice-gateway").to_string_lossy().into_owned();
        let t = self.table.to_string_lossy().into_owned();
        let mut args = vec![g.as_str(), "--iface", "gw0", "--table", &t, "--flows", "65536"];
        if self.topology.two_armed {
            args.extend(["--backend-iface", "gw1"]);
        }
        if let Some(f) = fast_path_from_env().filter(|_| !extra.contains(&"--fast-path")) {
            args.extend(["--fast-path", f]);
        }
        // This sandbox's own flow journals, removed with it.
        let journal = format!("{t}-flows");
        if !extra.contains(&"--flow-journal") {
            args.extend(["--flow-journal", &journal]);
        }
        args.extend_from_slice(extra);
        let pid = self.spawn("gw", "gateway", &args)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        // The line of a successful sync of the XDP map (a failed one says "XDP steering: <why>"),
        // then the program's attachment, which follows it.
        let ready = |log: &str| log.contains("key(s) set") && log.contains("XDP program attached");
        while !ready(&self.log("gateway")) {
            if Instant::now() > deadline
                || self
                    .procs
                    .iter_mut()
                    .any(|p| p.name == "gateway" && matches!(p.child.try_wait(), Ok(Some(_))))
            {
                return Err(io::Error::other(format!("gateway did not start:\n{}", self.log("gateway"))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pid)
    }

    /// The id of the XDP program attached to `iface` in the gateway's namespace, as `ip link`
    /// shows it (`prog/xdp id N`).
    pub fn xdp_program_id(&self, iface: &str) -> Option<u32> {
        let out = self.exec("gw", &["ip", "link", "show", iface]).ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace().skip_while(|w| !w.starts_with("prog/xdp"));
        words.find(|w| *w == "id").and_then(|_| words.next()).and_then(|id| id.parse().ok())
    }

    /// Waits (10 s at most) until a worker has opened the L7 listeners of each of `addrs`: its
    /// own lines `L7: listening on ADDR:80` and `ADDR:443 (TLS)` — not the gateway's summary,
    /// which names the listeners before the workers open them.
    pub fn wait_l7_listeners(&self, addrs: &[&str]) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        // `ADDR:80` and not `ADDR:8080`: what follows the port is not a digit.
        let said = |log: &str, line: &str| {
            log.match_indices(line)
                .any(|(i, _)| !log[i + line.len()..].starts_with(|c: char| c.is_ascii_digit()))
        };
        let open = |log: &str| {
            addrs.iter().all(|a| {
                said(log, &format!("L7: listening on {a}:80"))
                    && said(log, &format!("L7: listening on {a}:443 (TLS)"))
            })
        };
        while !open(&self.log("gateway")) {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "no L7 listeners on {addrs:?}:\n{}",
                    self.log("gateway")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether an XDP program is attached to the gateway's interface.
    pub fn xdp_attached(&self) -> bool {
        self.exec("gw", &["ip", "link", "show", "gw0"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("xdp"))
            .unwrap_or(false)
    }

    /// One HTTP GET from the client: the body, or curl's complaint.
    pub fn get(&self, url: &str) -> Result<String, String> {
        self.get_from("cl", url, &[])
    }

    /// One HTTP GET from a role's namespace with extra curl arguments.
    pub fn get_from(&self, role: &str, url: &str, extra: &[&str]) -> Result<String, String> {
        let mut args = vec!["curl", "-sS", "-g", "-m", "5", "--fail"];
        args.extend_from_slice(extra);
        args.push(url);
        let out = self.exec(role, &args).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// One UDP request from the client to `addr:port`: the reply, or why none came.
    pub fn udp(&self, addr: &str, port: u16, payload: &str) -> Result<String, String> {
        let echo = bin("sluice-udp-echo").to_string_lossy().into_owned();
        let target = if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") };
        let out = self.exec("cl", &[&echo, "--send", &target, payload]).map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// The MAC address of the gateway's interface (panics if it cannot be read: an empty one
    /// would equal another empty one).
    pub fn gateway_mac(&self) -> String {
        let mac = mac_in(&self.ns("gw"), "gw0");
        assert!(!mac.is_empty(), "no MAC address for gw0 in {}", self.ns("gw"));
        mac
    }

    /// The MAC the client's neighbour table has for `ip`; panics, with the entry, if it has none.
    pub fn client_neighbor(&self, ip: &str) -> String {
        let out = self
            .exec("cl", &["ip", "neigh", "show", ip])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| panic!("ip neigh show {ip}: {e}"));
        let mac = out.split_whitespace().skip_while(|w| *w != "lladdr").nth(1);
        mac.unwrap_or_else(|| panic!("the client has no MAC for {ip}: {out:?}")).to_owned()
    }

    /// The backends.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// An address of the client's namespace as an `IpAddr` (for display).
    pub fn client_addr(v6: bool) -> IpAddr {
        if v6 {
            CLIENT_V6.parse().unwrap_or(IpAddr::from([0u8; 16]))
        } else {
            CLIENT_V4.parse().unwrap_or(IpAddr::from([0u8; 4]))
        }
    }
}

/// The value of one sample line of a metrics page (`name{labels} value`).
pub(crate) fn sample(line: &str) -> u64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable sample: {line}"))
}

/// A client's IPv4 routes on its interface `c0`: the LoadBalancer VIPs on-link (the gateway
/// answers their ARP), the ClusterIPs via the gateway's node address.
fn client_routes(ns: &str) -> io::Result<()> {
    must(&["ip", "-n", ns, "route", "add", "198.18.100.0/24", "dev", "c0"])?;
    must(&["ip", "-n", ns, "route", "add", "198.19.0.0/16", "via", GW_V4])
}

/// The gateway's addresses: the node's on `gw0`, the SNAT addresses on `inside` (the backends'
/// interface: `gw0` too, one-armed).
fn address_gateway(gw: &str, inside: &str) -> io::Result<()> {
    must(&["ip", "-n", gw, "addr", "add", "198.18.0.1/24", "dev", "gw0"])?;
    must(&["ip", "-n", gw, "addr", "add", "198.18.1.254/24", "dev", inside])?;
    must(&["ip", "-n", gw, "addr", "add", "2001:db8::1/64", "dev", "gw0", "nodad"])?;
    must(&["ip", "-n", gw, "addr", "add", "2001:db8:1::fe/64", "dev", inside, "nodad"])
}

/// Writes the files of [`Sandbox::start_nginx`]'s nginx under `d` (its configuration, `/big`,
/// its temporary directory) and returns the configuration's path.
pub(crate) fn write_nginx(d: &Path, name: &str, ports: &[u16]) -> io::Result<PathBuf> {
    fs::create_dir_all(d.join("tmp"))?;
    fs::write(d.join("big"), vec![b'x'; 2 << 20])?;
    let listens: String =
        ports.iter().map(|p| format!("listen {p} reuseport; listen [::]:{p} reuseport; ")).collect();
    let d_s = d.display();
    let server = format!(
        "server {{ {listens}\n\
         \x20 add_header X-Backend {name} always;\n\
         \x20 add_header X-Request-Uri $request_uri always;\n\
         \x20 add_header X-Echo $http_x_echo always;\n\
         \x20 location = /big {{ alias {d_s}/big; default_type application/octet-stream; limit_rate 256k; }}\n\
         \x20 location = /ip {{ default_type text/plain; return 200 \"$remote_addr\\n\"; }}\n\
         \x20 location / {{ default_type text/plain; return 200 \"{name}\\n\"; }}\n\
         }}"
    );
    let path = d.join("nginx.conf");
    fs::write(&path, nginx_conf(d, &server))?;
    Ok(path)
}

/// An nginx configuration that runs in the foreground as root with every file under `dir` and
/// the given `server { … }` block.
pub fn nginx_conf(dir: &Path, server: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off; master_process on; worker_processes 1; user root; pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off; keepalive_timeout 30s;\n\
         \x20 client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
         \x20 uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         \x20 {server}\n}}\n"
    )
}

pub(crate) fn stop_child(child: &mut Child, sig: rustix::process::Signal) -> std::process::ExitStatus {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().unwrap_or_else(|_| std::process::ExitStatus::default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Gateway and control first, then the servers.
        self.procs.sort_by_key(|p| match p.name.as_str() {
            "gateway" => 0,
            "control" => 1,
            _ => 2,
        });
        for p in &mut self.procs {
            stop_child(&mut p.child, rustix::process::Signal::TERM);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = fs::remove_file(&self.table);
        // The flow journals of its gateways (`TABLE-flows-IFACE-QUEUE`, see start_gateway).
        if let (Some(dir), Some(name)) =
            (self.table.parent(), self.table.file_name().and_then(|n| n.to_str()))
        {
            let stem = format!("{name}-flows-");
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_str().is_some_and(|n| n.starts_with(&stem)) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if std::env::var_os("SLUICE_KEEP_LOGS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("sandbox logs kept in {}", self.dir.path().display());
        }
    }
}
