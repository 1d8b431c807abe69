//! `sluice-gateway`: Sluice's data plane.
//!
//! Attaches the XDP steering program to an interface (or two: two-armed, one facing the clients
//! and one the backends), binds one AF_XDP socket per queue and interface, and runs one worker
//! per queue on its pinned core, each run to completion: receive a batch, run it through the L4
//! pipeline, transmit the batch (`core_thread`). With several queues, a frame RSS puts on the
//! queue of a worker that does not hold its flow is handed to the one that does
//! (`sluice_worker::handoff`). Idle workers sleep in their reactor (`sluice_worker::reactor`) and
//! publish their counters to the table file's stats region.
//!
//! The main thread (`supervise`) does everything off the hot path: it reads each new table
//! generation from the shared-memory file, decodes it once and hands it to the workers (they
//! adopt it between two batches), watches the file itself (truncated or replaced under us: the
//! last good table stays, and a valid file at the path is adopted), keeps the XDP map in step with it (`steering`), reads routes
//! and neighbours from the kernel (`kernel`) and resolves the ones the workers need, announces
//! new VIPs with gratuitous ARP / unsolicited advertisements, and stops everything cleanly on
//! SIGINT or SIGTERM.
//!
//! A restart keeps every connection (`restart`): each worker's flows are journaled in shared
//! memory that outlives the process, and the XDP program, attached through netlink, outlives it
//! too — between two gateways it drops service frames instead of handing them to the kernel,
//! and the next gateway carries every flow over and replaces the program atomically. SIGKILL is
//! the same as a stop here. `--release` takes the program off for good.
//!
//! Upgrades (`handover`): a new gateway takes the L7 listening sockets over from the running one
//! through a Unix socket, so no connection is refused; the old one stops its L4 part as a stop
//! does, drains its L7 connections and exits (docs/upgrades.md).
#![forbid(unsafe_code)]

mod core_thread;
mod dns;
mod handover;
mod kernel;
mod l7;
mod l7_addrs;
mod restart;
mod steering;
mod supervise;
mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crossbeam_queue::ArrayQueue;
use sluice_lb::engine::Config as L4Config;
use sluice_log::{error, info};
use sluice_model::ports::{self, PortRange};
use sluice_table::{OpenError, Reader};
use sluice_worker::handoff::{Mailboxes, Sharding};
use sluice_xsk::link;
use sluice_xsk::socket::if_index;
use sluice_xsk::steer::SynCookies;
use sluice_xsk::{AttachMode, BindMode, FastPath, Steering, XskSocket};

/// Parcels per worker for frames handed over between workers.
const PARCELS: usize = 1024;

#[derive(Parser, Debug)]
#[command(name = "sluice-gateway", version, about = "Sluice's AF_XDP data plane")]
struct Cli {
    /// The interface to serve: the only one (one-armed: clients and backends both reach the
    /// gateway through it), or the client-facing one with `--backend-iface`.
    #[arg(long)]
    iface: String,
    /// Two-armed: the interface facing the backends. Each worker serves the same queue of both
    /// interfaces; a frame leaves through the interface of its route.
    #[arg(long)]
    backend_iface: Option<String>,
    /// How many queues to serve, from queue 0, one worker each (default: all of them; with two
    /// interfaces, as many as both have).
    #[arg(long)]
    queues: Option<u32>,
    /// Cores to pin workers to, one worker per queue, in order (e.g. `1` or `0,1`). Default:
    /// the last cores of the machine.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// The shared-memory table file control publishes.
    #[arg(long, default_value = sluice_table::DEFAULT_PATH)]
    table: PathBuf,
    /// How to attach the XDP program.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    bind: BindArg,
    /// Frames per socket's UMEM.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(4096..=1 << 20))]
    frames: u32,
    /// Back the UMEM with hugepages.
    #[arg(long)]
    hugepages: bool,
    /// Flow-table capacity per worker.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..=1 << 26))]
    flows: u64,
    /// Source ports for FullNAT (`LO-HI`), split between workers: clear of the NodePort range
    /// and of the kernel's ephemeral range (net.ipv4.ip_local_port_range), which the gateway checks.
    #[arg(long, default_value_t = ports::SNAT_DEFAULT)]
    snat_ports: PortRange,
    /// The longest an idle worker sleeps (ms) before it looks again without being woken: how
    /// soon a stop request is noticed with no traffic. Frames, hand-overs and (later) L7 sockets
    /// wake it at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    max_sleep_ms: u64,
    /// Seconds to wait for control to create the table file (absent, or not finished yet).
    #[arg(long, default_value_t = 30)]
    wait_table: u64,
    /// SYN cookies: `auto` answers the SYNs beyond --syn-budget with a cookie in the XDP
    /// program (a flood never reaches the workers); `always` answers every SYN so; `off` none.
    /// A connection opened through a cookie has no window scaling, SACK or timestamps.
    #[arg(long, value_enum, default_value_t = SynCookiesArg::Auto)]
    syn_cookies: SynCookiesArg,
    /// The XDP fast path for established flows: `on` installs each established flow in the XDP
    /// program, which then rewrites and forwards its packets in the kernel (the workers keep
    /// every decision: new flows, SYN, FIN, RST, ICMP); `off` loads nothing of it; `auto` is
    /// `on` where the AF_XDP sockets run in copy mode (a driver without zero-copy: veth,
    /// virtio-net, most cloud NICs) and `off` where they run zero-copy. The log says which.
    #[arg(long, value_enum, default_value_t = FastPathArg::Auto)]
    fast_path: FastPathArg,
    /// SYNs to frontends per second per CPU that reach the workers (`--syn-cookies auto`; a
    /// tenth of it may come in a burst). Once more arrive, the XDP program answers every SYN with
    /// a cookie until the rate has stayed within the budget for 2 s.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    syn_budget: u64,
    /// An address to serve Ingresses on (ports --http-port and --https-port), besides the one
    /// control gives the IngressClass from a LoadBalancer pool. Repeatable. The gateway puts it
    /// on --iface as a host address (and takes it off when it stops).
    #[arg(long = "l7-address")]
    l7_addresses: Vec<std::net::IpAddr>,
    /// The port Ingresses are served on over plain HTTP, on --l7-address.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// The port Ingresses are served on over HTTPS, on --l7-address.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// The certificate chain (PEM) served to TLS clients whose server name no Ingress has a
    /// certificate for (default: a self-signed one made at start). With --default-key.
    #[arg(long, requires = "default_key")]
    default_cert: Option<PathBuf>,
    /// The default certificate's private key (PEM). With --default-cert.
    #[arg(long, requires = "default_cert")]
    default_key: Option<PathBuf>,
    /// The DNS server ExternalName Services are resolved with (`ADDR` or `ADDR:PORT`; default:
    /// the first nameserver of /etc/resolv.conf).
    #[arg(long, value_parser = parse_dns_server)]
    dns_server: Option<std::net::SocketAddr>,
    /// No access log (by default one line per L7 request on standard output).
    #[arg(long)]
    no_access_log: bool,
    /// The largest request body the L7 proxy forwards (ingress-nginx's `proxy-body-size`):
    /// bytes, or with a `k`, `m` or `g` suffix (powers of 1024); `0`: no limit. A larger
    /// Content-Length gets 413 before anything is forwarded. Default: the proxy's, 1m.
    #[arg(long, value_parser = parse_body_size)]
    proxy_body_size: Option<BodySize>,
    /// How the L7 proxy chooses a Service's endpoint for each request (ingress-nginx's
    /// `load-balance`): in turn, or `ewma`, the better of two random endpoints by a decaying
    /// average of their response times (slow endpoints get fewer requests).
    #[arg(long, value_enum, default_value_t = BalanceArg::RoundRobin)]
    l7_balance: BalanceArg,
    /// Seconds a client has to send a whole request head (ingress-nginx's
    /// `client-header-timeout`): then 408 and a close (a close alone when nothing came; over
    /// TLS the handshake counts too). Default: the proxy's, 60.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    client_header_timeout: Option<u64>,
    /// Seconds a request body may wait for the client's next byte (ingress-nginx's
    /// `client-body-timeout`): then 408 (a close once the response has begun). Default: the
    /// proxy's, 60.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    client_body_timeout: Option<u64>,
    /// Where each worker journals its flows so that the next gateway on these interfaces carries
    /// every connection over: files `PREFIX-IFACE-QUEUE` (default prefix
    /// `/dev/shm/sluice-flows-netN`, N the network namespace's inode: in shared memory, they
    /// outlive the process but not a reboot); `off`: no journal, and a restart loses the FullNAT
    /// flows (DNAT ones are picked up again by the consistent scheduler).
    #[arg(long)]
    flow_journal: Option<String>,
    /// Take the XDP program a stopped gateway left on the interfaces off them and remove its
    /// flow journals, then exit: the interfaces' traffic is the kernel's again. (A stopped
    /// gateway leaves its program attached, dropping service traffic, for the next one.)
    #[arg(long)]
    release: bool,
    /// The handover socket (upgrades): a new gateway asks the one listening here for its L7
    /// listening sockets (and its L7 addresses, and to stop its L4 part), so no connection is
    /// refused while it starts; then it listens here itself for the next. Default:
    /// /run/sluice/gateway-IFACE-netINODE.sock (the interface and the network namespace).
    /// Nobody listening: a plain start. See docs/upgrades.md.
    #[arg(long)]
    handover_socket: Option<PathBuf>,
    /// Seconds an old gateway, once a new one serves its listeners, lets its open L7
    /// connections finish (HTTP/1.1: `Connection: close` on the next response; HTTP/2:
    /// GOAWAY) before it exits anyway, closing what is left (idle keep-alive connections
    /// among them).
    #[arg(long, default_value_t = handover::DEFAULT_DRAIN_SECONDS, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    drain_seconds: u64,
    /// Flow sync (several gateway nodes behind ECMP or L2 failover; docs/several-nodes.md):
    /// the UDP address this gateway receives its peers' flow records on. With --sync-peer
    /// and --sync-key.
    #[arg(long, requires_all = ["sync_peers", "sync_key"])]
    sync_listen: Option<SocketAddr>,
    /// A peer gateway's --sync-listen address (repeat for each peer): new and ended flows go
    /// to each, batched, so that any node carries any flow ECMP moves to it.
    #[arg(long = "sync-peer", requires = "sync_listen")]
    sync_peers: Vec<SocketAddr>,
    /// A file of at least 32 random bytes, the same on every node, that authenticates the
    /// flow-sync datagrams (HMAC-SHA256). Mode 0600.
    #[arg(long, requires = "sync_listen")]
    sync_key: Option<PathBuf>,
    /// Flows of the peers held at most (default: --flows for each peer).
    #[arg(long, requires = "sync_listen", value_parser = clap::value_parser!(u32).range(1..))]
    sync_flows: Option<u32>,
    /// A peer's FullNAT source address (repeat): once it moves to this node (the peer died;
    /// VRRP or the like moves it), replies to it are steered to the workers, which carry the
    /// peer's flows on it.
    #[arg(long = "peer-snat-address", requires = "sync_listen")]
    peer_snat: Vec<std::net::IpAddr>,
    /// Parse the command line (required flags, values, conflicts), then exit 0 without doing
    /// anything: how the tests check the systemd unit's command line. Hidden: not for users.
    #[arg(long, hide = true)]
    check_args: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BalanceArg {
    /// In turn (ingress-nginx's `round_robin`).
    #[value(name = "round_robin", alias = "round-robin")]
    RoundRobin,
    /// Peak-of-two by a decaying average of response times (ingress-nginx's `ewma`).
    Ewma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FastPathArg {
    /// On where the AF_XDP sockets run in copy mode (veth, virtio-net, most cloud NICs: every
    /// frame a worker forwards is copied twice), off where they run zero-copy.
    Auto,
    /// Established flows are forwarded by the XDP program.
    On,
    /// Every service frame goes through the workers.
    Off,
}

/// Commands a worker may leave for the main thread between two of its passes (10 ms), and
/// read-backs the main thread may leave for a worker.
const FAST_QUEUE: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SynCookiesArg {
    /// Beyond --syn-budget.
    Auto,
    /// For every SYN.
    Always,
    /// Never.
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum XdpModeArg {
    /// Native, falling back to generic.
    Auto,
    /// Native (driver) only.
    Native,
    /// Generic (skb) only.
    Skb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BindArg {
    /// Zero-copy where the driver has it.
    Auto,
    /// Copy mode.
    Copy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// Refuses a SNAT range that shares ports with NodePorts or with the kernel's ephemeral range
/// (`ephemeral`, as the machine has it): replies to either would be taken for FullNAT replies and
/// steered to a worker.
/// The L7 proxy's settings: its defaults, with what the command line changes.
/// `ADDR` (port 53) or `ADDR:PORT`, IPv6 in brackets with a port.
fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?} is not an address, or address:port"))
}

fn l7_config(cli: &Cli) -> sluice_l7::proxy::Config {
    let mut c = sluice_l7::proxy::Config::DEFAULT;
    if let Some(b) = cli.proxy_body_size {
        c.max_body_bytes = b.0;
    }
    c.balance = match cli.l7_balance {
        BalanceArg::RoundRobin => sluice_l7::proxy::Balance::RoundRobin,
        BalanceArg::Ewma => sluice_l7::proxy::Balance::Ewma,
    };
    const SECOND_NS: u64 = 1_000_000_000;
    if let Some(s) = cli.client_header_timeout {
        c.client_head_timeout_ns = s * SECOND_NS;
    }
    if let Some(s) = cli.client_body_timeout {
        c.client_body_timeout_ns = s * SECOND_NS;
    }
    c
}

/// A `--proxy-body-size`: the limit in bytes, `None` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BodySize(Option<u64>);

/// Parses a size as ingress-nginx spells `proxy-body-size`: `0` (no limit), `N`, `Nk`, `Nm`,
/// `Ng` (either case; powers of 1024).
fn parse_body_size(s: &str) -> Result<BodySize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, ' '),
    };
    let shift = match unit {
        ' ' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use k, m or g, or none for bytes)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: not a size (e.g. 1m, 512k, 0 for no limit)"))?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?}: too large"))?;
    Ok(BodySize((bytes > 0).then_some(bytes)))
}

fn check_snat_ports(snat: PortRange, ephemeral: PortRange, workers: u32) -> Result<(), String> {
    if snat.overlaps(ports::NODE_PORTS) {
        return Err(format!(
            "--snat-ports {snat} overlaps the NodePort range {}: pick ports below it (default {})",
            ports::NODE_PORTS,
            ports::SNAT_DEFAULT
        ));
    }
    if snat.overlaps(ephemeral) {
        return Err(format!(
            "--snat-ports {snat} overlaps the kernel's ephemeral ports {ephemeral} (net.ipv4.ip_local_port_range): \
             replies to the host's own connections would be taken for FullNAT replies; pick ports outside it"
        ));
    }
    if snat.len() / workers.max(1) < 64 {
        return Err(format!("--snat-ports {snat}: too few ports for {workers} workers (64 each at least)"));
    }
    Ok(())
}

/// The kernel's ephemeral port range, as this network namespace has it.
fn ephemeral_ports() -> PortRange {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ports::EPHEMERAL_DEFAULT)
}

fn main() -> ExitCode {
    sluice_log::init("info");
    let cli = Cli::parse();
    if cli.check_args {
        return ExitCode::SUCCESS;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What the gateway serves: its interfaces (port order: the client-facing one first) and what
/// they allow.
#[derive(Debug)]
pub(crate) struct Interfaces {
    pub(crate) names: Vec<String>,
    pub(crate) ifindexes: Vec<u32>,
    pub(crate) macs: Vec<[u8; 6]>,
    /// Receive queues every interface has.
    queues: u32,
    /// UMEM frame size: the smallest that holds every interface's MTU.
    pub(crate) frame_size: u32,
}

impl Interfaces {
    /// Reads each interface's index, MAC, queues and MTU.
    fn inspect(cli: &Cli) -> Result<Interfaces, String> {
        let names: Vec<String> =
            std::iter::once(cli.iface.clone()).chain(cli.backend_iface.clone()).collect();
        if names.len() == 2 && names[0] == names[1] {
            return Err(format!(
                "--backend-iface {}: the same interface as --iface (leave it out for one-armed)",
                names[1]
            ));
        }
        let mut ifs =
            Interfaces { names, ifindexes: Vec::new(), macs: Vec::new(), queues: u32::MAX, frame_size: 0 };
        for i in &ifs.names {
            ifs.ifindexes.push(if_index(i).map_err(|e| e.to_string())?);
            ifs.macs.push(link::mac(i).map_err(|e| format!("reading the MAC address of {i}: {e}"))?);
            ifs.queues = ifs.queues.min(link::rx_queues(i).map_err(|e| format!("queues of {i}: {e}"))?);
            let mtu = link::mtu(i).map_err(|e| format!("reading the MTU of {i}: {e}"))?;
            let size = sluice_xsk::socket::frame_size_for_mtu(mtu).ok_or_else(|| {
                let max = sluice_xsk::socket::MAX_MTU;
                format!(
                    "{i} has MTU {mtu}: every frame must fit one 4096-byte AF_XDP frame (no multi-buffer), \
                     so the MTU can be at most {max}; lower it (ip link set {i} mtu {max})"
                )
            })?;
            ifs.frame_size = ifs.frame_size.max(size);
        }
        Ok(ifs)
    }
}

/// How many workers, and the core of each.
fn plan_workers(cli: &Cli, ifs: &Interfaces) -> Result<Vec<usize>, String> {
    let queues = cli.queues.unwrap_or(ifs.queues);
    if queues == 0 || queues > ifs.queues {
        return Err(format!(
            "--queues {queues}: {} has {} receive queue(s)",
            ifs.names.join(" / "),
            ifs.queues
        ));
    }
    let ncpu = online_cpus();
    let cores: Vec<usize> = if cli.cores.is_empty() {
        (0..queues as usize).map(|q| (ncpu - 1 - q % ncpu) % ncpu).collect()
    } else {
        cli.cores.clone()
    };
    if cores.len() != queues as usize {
        return Err(format!(
            "--cores names {} core(s) for {queues} queue(s): give one per queue",
            cores.len()
        ));
    }
    if let Some(c) = cores.iter().find(|&&c| c >= ncpu) {
        return Err(format!("--cores: core {c} does not exist (this machine has {ncpu})"));
    }
    Ok(cores)
}

/// The machine's CPUs (the highest online one, plus one): not the process's affinity, which
/// `taskset` may have narrowed — a worker pinned with `--cores` sets its own.
fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| highest_cpu(&s))
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |h| h + 1)
}

/// The highest CPU of a kernel CPU list (`0-3,6,8-9`).
fn highest_cpu(list: &str) -> Option<usize> {
    list.trim().split(',').filter_map(|r| r.rsplit('-').next()?.trim().parse().ok()).max()
}

fn run(mut cli: Cli) -> Result<(), String> {
    let journal_prefix = match cli.flow_journal.as_deref() {
        Some("off") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(restart::default_prefix()),
    };
    if cli.release {
        let names: Vec<String> =
            std::iter::once(cli.iface.clone()).chain(cli.backend_iface.clone()).collect();
        return restart::release(&names, journal_prefix.as_deref());
    }
    let ifs = Interfaces::inspect(&cli)?;
    let cores = plan_workers(&cli, &ifs)?;
    let queues = cores.len() as u32;
    // Split the SNAT ports between workers: a FullNAT reply belongs to the worker whose share
    // holds its port.
    check_snat_ports(cli.snat_ports, ephemeral_ports(), queues)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut reader = open_table(&cli.table, Duration::from_secs(cli.wait_table))?;
    let handover_path = cli.handover_socket.clone().unwrap_or_else(|| handover::default_path(&cli.iface));
    // First: an upgrade's old gateway lets go of its L7 listeners, its AF_XDP sockets and its
    // flow journals before anything here reads or binds them.
    let taken = handover::take_over_logged(&handover_path);
    let leaving = Arc::new(handover::Leaving::default());
    // Loaded here, attached by the supervisor once its maps hold the first table and its
    // sockets are registered: it replaces a previous gateway's program only when ready.
    // `auto` loads the program with the fast path; the sockets' mode decides below. Loaded
    // before any state file is written: a gateway that cannot load it leaves nothing behind.
    let mut steering = load_steering(&ifs, cli.fast_path != FastPathArg::Off)?;
    // The previous gateway's key where it left one: cookies it answered still check here.
    let (cookie_key, _cookie_file) = match (&journal_prefix, random_key()?) {
        (Some(p), fresh) => restart::cookie_key(p, &cli.iface, fresh),
        (None, fresh) => (fresh, None),
    };
    for s in &mut steering {
        s.set_syn_cookies(&syn_cookies(&cli, cookie_key)).map_err(|e| e.to_string())?;
    }
    let carried = match &journal_prefix {
        Some(p) => {
            Arc::new(restart::read_previous(p, &cli.iface, queues as usize, &L4Config::default().timeouts)?)
        }
        None => Arc::new(restart::Carried::default()),
    };
    let sockets = bind_sockets(&cli, &ifs, &mut steering, queues)?;
    let copy = sockets.iter().flatten().all(|s| s.mode() == sluice_xsk::Mode::Copy);
    let (fast, why) = match cli.fast_path {
        FastPathArg::On => (true, "--fast-path on"),
        FastPathArg::Off => (false, "--fast-path off"),
        FastPathArg::Auto if copy => {
            (true, "--fast-path auto: the AF_XDP sockets run in copy mode; --fast-path off to turn it off")
        }
        FastPathArg::Auto => {
            (false, "--fast-path auto: the AF_XDP sockets run zero-copy; --fast-path on to use it anyway")
        }
    };
    if cli.fast_path == FastPathArg::Auto && !fast {
        // Zero-copy: the program built without the fast path replaces the one with it (nothing
        // of the fast path is attached), and the sockets are registered with it.
        drop(steering);
        cli.fast_path = FastPathArg::Off;
        steering = load_steering(&ifs, false)?;
        for s in &mut steering {
            s.set_syn_cookies(&syn_cookies(&cli, cookie_key)).map_err(|e| e.to_string())?;
        }
        for (q, per_queue) in sockets.iter().enumerate() {
            for (st, sock) in steering.iter_mut().zip(per_queue) {
                st.register(q as u32, &sock.fd()).map_err(|e| e.to_string())?;
                st.hold(q as u32).map_err(|e| e.to_string())?;
            }
        }
    }
    cli.fast_path = if fast { FastPathArg::On } else { FastPathArg::Off };
    info!("XDP fast path for established flows: {} ({why})", if fast { "on" } else { "off" });
    log_start(&ifs, &sockets, &cores);
    let key = (cli.syn_cookies != SynCookiesArg::Off).then_some(cookie_key);
    let sync = sync_setup(&cli, journal_prefix.as_deref(), queues as usize, !carried.flows.is_empty())?;
    let journals = journal_prefix.as_ref().map(|p| (p.as_path(), carried));
    let workers =
        start_workers(&cli, &ifs, sockets, &cores, (&stop, &leaving), key, (journals, sync.as_ref()));
    let (mut handles, links) = workers?;
    if let Some(s) = sync {
        handles.push(sync::spawn(
            s.config,
            s.outboxes,
            s.writer,
            Arc::clone(&s.link.stats),
            Arc::clone(&stop),
        )?);
    }
    let mut main = supervise::Supervisor::new(&cli, &ifs, &links)?;
    main.attach_when_ready(attach_mode(&cli), cli.syn_cookies != SynCookiesArg::Off);
    let mut handover = main.handover(handover_path, taken, Duration::from_secs(cli.drain_seconds));
    let result = main.run(&mut reader, &mut steering, &stop, &handles, &mut handover);
    if result.is_ok() && handover.release_asked() {
        main.forget_l7_addresses();
        handover.leave(&mut steering, &leaving, &stop, &handles);
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let (redirected, passed, cookies) =
        steering.iter().map(Steering::counts).fold((0, 0, 0), |(a, b, c), (d, e, f)| (a + d, b + e, c + f));
    info!(
        "stopped (XDP redirected {redirected} frame(s), passed {passed} to the kernel, answered {cookies} SYN(s) with a cookie)"
    );
    if steering.iter().any(Steering::fast_path) {
        let (fwd, back, no_port) = steering
            .iter()
            .map(Steering::fast_counts)
            .fold((0, 0, 0), |(a, b, c), f| (a + f.forwarded, b + f.handed_back, c + f.no_port));
        info!(
            "XDP fast path: forwarded {fwd} frame(s) in the kernel, handed {back} of installed flows back, dropped {no_port} for want of an egress port"
        );
    }
    info!(
        "the XDP program stays on {} and holds the service traffic for the next gateway, which carries every flow \
         over (`sluice-gateway --iface {} --release` takes it off)",
        ifs.names.join(" and "),
        cli.iface
    );
    drop(steering);
    result
}

/// The flow sync, before the workers start: their queues, the store they read, its writer.
struct SyncSetup {
    config: sync::SyncConfig,
    outboxes: Vec<sync::Outbox>,
    writer: sluice_lb::peers::PeerWriter,
    link: core_thread::SyncLink,
}

fn sync_setup(
    cli: &Cli,
    journal: Option<&std::path::Path>,
    queues: usize,
    restarted: bool,
) -> Result<Option<SyncSetup>, String> {
    let Some(listen) = cli.sync_listen else { return Ok(None) };
    let key = sync::read_key(cli.sync_key.as_deref().ok_or("--sync-listen needs --sync-key")?)?;
    if cli.sync_peers.is_empty() {
        return Err("--sync-listen needs at least one --sync-peer".into());
    }
    if let Some(p) = cli.sync_peers.iter().find(|p| **p == listen) {
        return Err(format!("--sync-peer {p}: this gateway's own --sync-listen"));
    }
    let Some(prefix) = journal else {
        return Err(
            "--sync-listen needs the flow journal (its bulk transfers read it): drop --flow-journal off"
                .into(),
        );
    };
    let capacity = cli.sync_flows.map_or(cli.flows as usize * cli.sync_peers.len(), |n| n as usize);
    let (store, writer) = sluice_lb::peers::PeerFlows::new(capacity);
    let outboxes: Vec<sync::Outbox> = (0..queues).map(|_| Arc::new(ArrayQueue::new(sync::OUTBOX))).collect();
    let stats = Arc::new(sync::SyncStats::default());
    // A gateway started afresh holds its node back until its peers' flows are in. One that
    // carries the flows of the gateway it replaces (a restart, an upgrade) was serving them a
    // moment ago: it catches up in the background rather than have its node withdrawn for
    // as long as a silent peer takes to time out.
    stats.waiting.store(!restarted, Ordering::Relaxed);
    if restarted {
        info!(
            "flow sync: the previous gateway's flows carried over; catching up with the peers in the background"
        );
    }
    Ok(Some(SyncSetup {
        config: sync::SyncConfig {
            listen,
            peers: cli.sync_peers.clone(),
            key,
            journals: (0..queues).map(|q| restart::journal_path(prefix, &cli.iface, q)).collect(),
        },
        outboxes,
        writer,
        link: core_thread::SyncLink { store, stats, outbox: None },
    }))
}

/// How the command line asks the program to be attached.
fn attach_mode(cli: &Cli) -> AttachMode {
    match cli.xdp_mode {
        XdpModeArg::Auto => AttachMode::Auto,
        XdpModeArg::Native => AttachMode::Driver,
        XdpModeArg::Skb => AttachMode::Skb,
    }
}

/// Advice, once at start, when SYN cookies leave by XDP_TX on a veth: from here the peer's
/// programs cannot be seen (it is in another namespace, as in the test sandbox, which attaches
/// one).
pub(crate) fn peer_hint(name: &str) {
    if has_peer(name) {
        info!(
            "{name} has a peer (a veth?): SYN cookies leave by XDP_TX, which a veth hands to its peer only when \
             the peer runs an XDP program of its own — make sure one (XDP_PASS will do) is attached there, or \
             run --xdp-mode skb or --syn-cookies off, or a flood will stop the link (docs/af-xdp.md, pitfall 3)"
        );
    }
}

/// Opens the table control publishes, waiting `wait` for control to create it.
fn open_table(path: &std::path::Path, wait: Duration) -> Result<Reader, String> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match Reader::open(path) {
            Ok(r) => return Ok(r),
            // Not there yet, or control is creating it (a symbolic link there is not "not yet":
            // it is refused at once).
            Err(e)
                if Instant::now() < deadline
                    && (path.symlink_metadata().is_err() || matches!(e, OpenError::Unfinished { .. })) =>
            {
                if !said {
                    info!("waiting for control to create {} ({e})", path.display());
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("table {}: {e}", path.display())),
        }
    }
}

/// A SYN cookie key: 128 random bits, new at every start.
fn random_key() -> Result<[u64; 2], String> {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e} (the SYN cookie key is read from it)"))?;
    let (lo, hi) = b.split_at(8);
    Ok([
        u64::from_le_bytes(lo.try_into().unwrap_or_default()),
        u64::from_le_bytes(hi.try_into().unwrap_or_default()),
    ])
}

/// Whether an interface is one end of a pair (veth and its kin: its `iflink` names another
/// interface than itself).
fn has_peer(iface: &str) -> bool {
    let read = |f: &str| std::fs::read_to_string(format!("/sys/class/net/{iface}/{f}")).unwrap_or_default();
    let (index, link) = (read("ifindex"), read("iflink"));
    !index.trim().is_empty() && !link.trim().is_empty() && index.trim() != link.trim()
}

/// The XDP program's cookie settings for the command line.
fn syn_cookies(cli: &Cli, key: [u64; 2]) -> SynCookies {
    match cli.syn_cookies {
        // A burst of a tenth of a second's budget.
        SynCookiesArg::Auto => SynCookies::budget(key, cli.syn_budget, cli.syn_budget.div_ceil(10)),
        SynCookiesArg::Always => SynCookies::always(key),
        SynCookiesArg::Off => SynCookies::off(key),
    }
}

/// The steering program for every interface, loaded, with the fast path or without (the
/// supervisor attaches it).
fn load_steering(ifs: &Interfaces, fast: bool) -> Result<Vec<Steering>, String> {
    let fast = if fast { FastPath::On } else { FastPath::Off };
    let mut all: Vec<Steering> = ifs
        .names
        .iter()
        .map(|_| Steering::load_with(fast).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    for (s, mac) in all.iter_mut().zip(&ifs.macs) {
        s.set_own_mac(*mac).map_err(|e| e.to_string())?;
    }
    if fast == FastPath::On {
        // Two-armed: every program may redirect to either interface, by port index.
        for s in &mut all {
            for (port, &ifindex) in ifs.ifindexes.iter().enumerate() {
                s.set_fast_port(port as u32, ifindex).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(all)
}

/// Per queue, one AF_XDP socket per interface (port order), each registered with its
/// interface's steering program.
fn bind_sockets(
    cli: &Cli,
    ifs: &Interfaces,
    steering: &mut [Steering],
    queues: u32,
) -> Result<Vec<Vec<XskSocket>>, String> {
    let config = sluice_xsk::Config {
        frames: cli.frames,
        bind: match cli.bind {
            BindArg::Auto => BindMode::Auto,
            BindArg::Copy => BindMode::Copy,
            BindArg::ZeroCopy => BindMode::ZeroCopy,
        },
        hugepages: cli.hugepages,
        frame_size: ifs.frame_size,
        ..sluice_xsk::Config::default()
    };
    let mut sockets = Vec::new();
    for q in 0..queues {
        let mut per_queue = Vec::new();
        for (i, iface) in ifs.names.iter().enumerate() {
            let s = XskSocket::bind(iface, q, &config).map_err(|e| format!("queue {q} of {iface}: {e}"))?;
            steering[i].register(q, &s.fd()).map_err(|e| e.to_string())?;
            steering[i].hold(q).map_err(|e| e.to_string())?;
            per_queue.push(s);
        }
        sockets.push(per_queue);
    }
    Ok(sockets)
}

/// One line saying what the gateway runs on.
fn log_start(ifs: &Interfaces, sockets: &[Vec<XskSocket>], cores: &[usize]) {
    let described: Vec<String> =
        ifs.names.iter().zip(&ifs.macs).map(|(i, m)| format!("{i} ({})", fmt_mac(*m))).collect();
    let first = &sockets[0][0];
    info!(
        "{}{}, {} queue(s), AF_XDP {} mode, {}-byte frames{} (up to {} frames per transmit wake-up), workers on cores {:?}",
        described.join(" facing clients, "),
        if ifs.names.len() == 2 { " facing backends" } else { "" },
        sockets.len(),
        first.mode(),
        ifs.frame_size,
        if first.hugepages() { " on hugepages" } else { "" },
        first.tx_budget(),
        cores
    );
}

/// The worker threads, and the links the main thread feeds them through.
type Workers = (Vec<JoinHandle<()>>, Vec<Arc<core_thread::Link>>);

/// Starts one worker thread per queue, each with its share of the SNAT ports.
fn start_workers(
    cli: &Cli,
    ifs: &Interfaces,
    sockets: Vec<Vec<XskSocket>>,
    cores: &[usize],
    (stop, leaving): (&Arc<AtomicBool>, &Arc<handover::Leaving>),
    syn_cookie_key: Option<[u64; 2]>,
    (journals, sync): (Option<(&std::path::Path, Arc<restart::Carried>)>, Option<&SyncSetup>),
) -> Result<Workers, String> {
    let queues = sockets.len();
    let mailboxes = (queues > 1).then(|| Mailboxes::new(queues, PARCELS));
    let mut handles = Vec::new();
    let mut links = Vec::new();
    for (q, per_queue) in sockets.into_iter().enumerate() {
        let share = cli.snat_ports.share(queues, q).ok_or("fewer SNAT ports than workers")?;
        let l4 = L4Config {
            flow_capacity: cli.flows as usize,
            snat_ports: share,
            seed: u64::from(std::process::id()) << 8 | q as u64,
            syn_cookie_key,
            fast_path: cli.fast_path == FastPathArg::On,
            ..L4Config::default()
        };
        let link = Arc::new(core_thread::Link {
            next_hops: ArrayQueue::new(2),
            tables: ArrayQueue::new(1),
            pending: ArrayQueue::new(64),
            unanswering: ArrayQueue::new(sluice_lb::engine::UNREACHABLE_MAX),
            snat_exhausted: std::sync::atomic::AtomicU64::new(0),
            stats: ArrayQueue::new(1),
            l7: ArrayQueue::new(1),
            fast: (cli.fast_path == FastPathArg::On).then(|| Arc::new(ArrayQueue::new(FAST_QUEUE))),
            l7_taken: std::sync::atomic::AtomicU64::new(0),
            fast_reports: (cli.fast_path == FastPathArg::On).then(|| Arc::new(ArrayQueue::new(FAST_QUEUE))),
        });
        links.push(Arc::clone(&link));
        let setup = core_thread::Setup {
            queue: q as u32,
            core: cores[q],
            sockets: per_queue,
            table: cli.table.clone(),
            macs: ifs.macs.clone(),
            sharding: mailboxes.as_ref().map(|m| Sharding {
                me: q,
                mailboxes: Arc::clone(m),
                snat_ports: cli.snat_ports,
            }),
            l4,
            stop: Arc::clone(stop),
            leaving: Arc::clone(leaving),
            link,
            max_sleep: Duration::from_millis(cli.max_sleep_ms),
            access_log: !cli.no_access_log,
            l7_config: l7_config(cli),
            journal: journals.as_ref().map(|(prefix, carried)| restart::JournalSetup {
                path: restart::journal_path(prefix, &cli.iface, q),
                carried: Arc::clone(carried),
            }),
            sync: sync.map(|s| core_thread::SyncLink {
                outbox: Some(Arc::clone(&s.outboxes[q])),
                ..s.link.clone()
            }),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("sluice-w{q}"))
                .spawn(move || core_thread::run(setup))
                .map_err(|e| format!("starting worker {q}: {e}"))?,
        );
    }
    Ok((handles, links))
}

pub(crate) fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::{BodySize, Cli, highest_cpu, l7_config, parse_body_size};
    use clap::Parser as _;
    use sluice_l7::proxy::Balance;

    #[test]
    fn the_l7_flags_reach_the_proxys_settings() {
        let cli = |extra: &[&str]| {
            let mut args = vec!["sluice-gateway", "--iface", "eth1"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|c| l7_config(&c))
        };
        let c = cli(&[]).unwrap();
        assert_eq!((c.balance, c.max_body_bytes), (Balance::RoundRobin, Some(1 << 20)));
        let c = cli(&["--l7-balance", "ewma", "--proxy-body-size", "0"]).unwrap();
        assert_eq!((c.balance, c.max_body_bytes), (Balance::Ewma, None));
        assert_eq!(cli(&["--l7-balance", "round_robin"]).unwrap().balance, Balance::RoundRobin);
        assert_eq!(cli(&["--l7-balance", "round-robin"]).unwrap().balance, Balance::RoundRobin);
        assert!(cli(&["--l7-balance", "least_conn"]).is_err());
        let c = cli(&["--client-header-timeout", "2", "--client-body-timeout", "3"]).unwrap();
        assert_eq!((c.client_head_timeout_ns, c.client_body_timeout_ns), (2_000_000_000, 3_000_000_000));
        let d = sluice_l7::proxy::Config::DEFAULT;
        let c = cli(&[]).unwrap();
        assert_eq!(
            (c.client_head_timeout_ns, c.client_body_timeout_ns),
            (d.client_head_timeout_ns, d.client_body_timeout_ns)
        );
        assert!(cli(&["--client-header-timeout", "0"]).is_err());
    }

    #[test]
    fn the_highest_cpu_is_read_from_a_kernel_cpu_list() {
        assert_eq!(highest_cpu("0-1\n"), Some(1));
        assert_eq!(highest_cpu("0"), Some(0));
        assert_eq!(highest_cpu("0-3,6,8-9"), Some(9));
        assert_eq!(highest_cpu(""), None);
        assert_eq!(highest_cpu("x"), None);
    }

    #[test]
    fn body_sizes_are_read_as_ingress_nginx_spells_them() {
        for (text, bytes) in [
            ("0", None),
            ("0m", None),
            ("1", Some(1)),
            ("1m", Some(1 << 20)),
            ("1M", Some(1 << 20)),
            ("512k", Some(512 << 10)),
            ("2g", Some(2 << 30)),
        ] {
            assert_eq!(parse_body_size(text), Ok(BodySize(bytes)), "{text}");
        }
        for bad in ["", "m", "1t", "-1", "1.5m", "99999999999g"] {
            assert!(parse_body_size(bad).is_err(), "{bad}");
        }
    }
}
