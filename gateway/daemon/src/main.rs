//! `sluice-gateway`: Sluice's data plane.
//!
//! Attaches the XDP steering program to an interface (or two: two-armed, one facing the clients
//! and one the backends), binds one AF_XDP socket per queue and interface, and runs one worker
//! per queue on its pinned core, each run to completion: receive a batch, run it through the L4
//! pipeline, transmit the batch. With several queues, a frame RSS puts on the queue of a worker
//! that does not hold its flow is handed to the one that does (`sluice_worker::handoff`). Workers adopt new table generations from the shared-memory
//! file at batch boundaries, sleep in `poll` when there is no traffic, and publish their counters
//! to the file's stats region. The main thread does everything off the hot path: it keeps the
//! XDP map in step with the table, reads routes and neighbours from the kernel, resolves the
//! ones the workers need, announces new VIPs with gratuitous ARP / unsolicited advertisements,
//! and stops everything cleanly on SIGINT or SIGTERM (SIGKILL is safe too: the program is
//! attached through a bpf_link and vanishes with the process).
#![forbid(unsafe_code)]

mod core_thread;
mod kernel;
mod steering;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crossbeam_queue::ArrayQueue;
use sluice_lb::engine::Config as L4Config;
use sluice_model::ports::{self, PortRange};
use sluice_model::service::ServiceTable;
use sluice_model::{Addr, Family};
use sluice_table::{Reader, Refresh};
use sluice_worker::handoff::{Mailboxes, Sharding};
use sluice_xsk::link::{self, RawSender};
use sluice_xsk::socket::if_index;
use sluice_xsk::{AttachMode, BindMode, Steering, XskSocket};

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
    /// Seconds to wait for control to create the table file.
    #[arg(long, default_value_t = 30)]
    wait_table: u64,
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_table(path: &std::path::Path, wait: Duration) -> Result<Reader, String> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match Reader::open(path) {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() < deadline && !path.exists() => {
                if !said {
                    eprintln!("sluice-gateway: waiting for control to create {} ({e})", path.display());
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("table {}: {e}", path.display())),
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let snat_ports = cli.snat_ports;
    let ifaces: Vec<String> = std::iter::once(cli.iface.clone()).chain(cli.backend_iface.clone()).collect();
    if ifaces.len() == 2 && ifaces[0] == ifaces[1] {
        return Err(format!(
            "--backend-iface {}: the same interface as --iface (leave it out for one-armed)",
            ifaces[1]
        ));
    }
    let mut ifindexes = Vec::new();
    let mut macs = Vec::new();
    let mut available = u32::MAX;
    let mut frame_size = 0;
    for i in &ifaces {
        ifindexes.push(if_index(i).map_err(|e| e.to_string())?);
        macs.push(link::mac(i).map_err(|e| format!("reading the MAC address of {i}: {e}"))?);
        available = available.min(link::rx_queues(i).map_err(|e| format!("queues of {i}: {e}"))?);
        let mtu = link::mtu(i).map_err(|e| format!("reading the MTU of {i}: {e}"))?;
        let size = sluice_xsk::socket::frame_size_for_mtu(mtu).ok_or_else(|| {
            format!(
                "{i} has MTU {mtu}: every frame must fit one 4096-byte AF_XDP frame (no multi-buffer), \
                 so the MTU can be at most {}; lower it (ip link set {i} mtu {})",
                sluice_xsk::socket::MAX_MTU,
                sluice_xsk::socket::MAX_MTU
            )
        })?;
        frame_size = frame_size.max(size);
    }
    let queues = cli.queues.unwrap_or(available);
    if queues == 0 || queues > available {
        return Err(format!("--queues {queues}: {} has {available} receive queue(s)", ifaces.join(" / ")));
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
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

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal handler: {e}"))?;
    }

    let mut reader = open_table(&cli.table, Duration::from_secs(cli.wait_table))?;
    let attach = match cli.xdp_mode {
        XdpModeArg::Auto => AttachMode::Auto,
        XdpModeArg::Native => AttachMode::Driver,
        XdpModeArg::Skb => AttachMode::Skb,
    };
    let mut steering = Vec::new();
    for i in &ifaces {
        steering.push(Steering::attach(i, attach).map_err(|e| e.to_string())?);
    }
    let config = sluice_xsk::Config {
        frames: cli.frames,
        bind: match cli.bind {
            BindArg::Auto => BindMode::Auto,
            BindArg::Copy => BindMode::Copy,
            BindArg::ZeroCopy => BindMode::ZeroCopy,
        },
        hugepages: cli.hugepages,
        frame_size,
        ..sluice_xsk::Config::default()
    };
    // Per queue, one socket per interface (port order).
    let mut sockets: Vec<Vec<XskSocket>> = Vec::new();
    for q in 0..queues {
        let mut per_queue = Vec::new();
        for (i, iface) in ifaces.iter().enumerate() {
            let s = XskSocket::bind(iface, q, &config).map_err(|e| format!("queue {q} of {iface}: {e}"))?;
            steering[i].register(q, &s.fd()).map_err(|e| e.to_string())?;
            per_queue.push(s);
        }
        sockets.push(per_queue);
    }
    let described: Vec<String> = ifaces
        .iter()
        .zip(&macs)
        .zip(&steering)
        .map(|((i, m), st)| {
            format!("{i} ({}, XDP {} mode)", fmt_mac(*m), if st.native() { "native" } else { "generic" })
        })
        .collect();
    eprintln!(
        "sluice-gateway: {}{}, {} queue(s), AF_XDP {} mode, {frame_size}-byte frames{} (up to {} frames per transmit wake-up), workers on cores {:?}",
        described.join(" facing clients, "),
        if ifaces.len() == 2 { " facing backends" } else { "" },
        queues,
        sockets[0][0].mode(),
        if sockets[0][0].hugepages() { " on hugepages" } else { "" },
        sockets[0][0].tx_budget(),
        cores
    );

    // Split the SNAT ports between workers: a FullNAT reply belongs to the worker whose share
    // holds its port.
    check_snat_ports(snat_ports, ephemeral_ports(), queues)?;
    let mailboxes = (queues > 1).then(|| Mailboxes::new(queues as usize, PARCELS));
    let mut handles = Vec::new();
    let mut links = Vec::new();
    for (q, per_queue) in sockets.into_iter().enumerate() {
        let share = snat_ports.share(queues as usize, q).ok_or("fewer SNAT ports than workers")?;
        let l4 = L4Config {
            flow_capacity: cli.flows as usize,
            snat_ports: share,
            seed: u64::from(std::process::id()) << 8 | q as u64,
            ..L4Config::default()
        };
        let link = Arc::new(core_thread::Link {
            next_hops: ArrayQueue::new(2),
            tables: ArrayQueue::new(1),
            pending: ArrayQueue::new(64),
        });
        links.push(Arc::clone(&link));
        let w = core_thread::Setup {
            queue: q as u32,
            core: cores[q],
            sockets: per_queue,
            table: cli.table.clone(),
            macs: macs.clone(),
            sharding: mailboxes.as_ref().map(|m| Sharding { me: q, mailboxes: Arc::clone(m), snat_ports }),
            l4,
            stop: Arc::clone(&stop),
            link,
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("sluice-w{q}"))
                .spawn(move || core_thread::run(w))
                .map_err(|e| format!("starting worker {q}: {e}"))?,
        );
    }

    let result = supervise(
        &cli,
        &mut reader,
        &mut steering,
        &links,
        &ifaces,
        &ifindexes,
        macs[0],
        snat_ports,
        frame_size,
        &stop,
        &handles,
    );
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let (redirected, passed) =
        steering.iter().map(Steering::counts).fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    eprintln!(
        "sluice-gateway: stopped (XDP redirected {redirected} frame(s), passed {passed} to the kernel)"
    );
    drop(steering);
    result
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The main thread's loop: table → XDP map and announcements; kernel → next hops.
#[expect(clippy::too_many_arguments, reason = "the one call site passes what run() set up")]
fn supervise(
    cli: &Cli,
    reader: &mut Reader,
    steering: &mut [Steering],
    links: &[Arc<core_thread::Link>],
    ifaces: &[String],
    ifindexes: &[u32],
    mac: [u8; 6],
    snat_ports: PortRange,
    frame_size: u32,
    stop: &AtomicBool,
    handles: &[std::thread::JoinHandle<()>],
) -> Result<(), String> {
    // The MTUs last seen (0: not yet; every one fitted the frames at start).
    let mut mtus = vec![0u32; ifaces.len()];
    let mut last_mtu = Instant::now();
    let mut kernel = kernel::Kernel::open(ifindexes).map_err(|e| format!("netlink: {e}"))?;
    // VIPs are announced on the client-facing interface.
    let raw = RawSender::open(ifindexes[0]).map_err(|e| format!("packet socket on {}: {e}", cli.iface))?;
    let mut table = Arc::new(ServiceTable::empty());
    let mut adopted_once = false;
    let mut owned: BTreeSet<Addr> = BTreeSet::new();
    let mut hops = sluice_worker::nexthop::NextHops::new();
    let mut backends: BTreeSet<Addr> = BTreeSet::new();
    let mut last_kernel = Instant::now() - Duration::from_secs(1);
    let mut announce_again: Option<Instant> = None;
    let mut resolving_until: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if handles.iter().any(|h| h.is_finished()) {
            return Err("a worker stopped unexpectedly".into());
        }
        // 1. A new table: steer its traffic, announce its new VIPs, resolve its backends.
        // A generation to take: a new one, or the one the reader adopted when it opened.
        let take = match reader.refresh() {
            Refresh::Adopted(g) => Some(g),
            Refresh::Refused(g, why) => {
                eprintln!("sluice-gateway: table generation {g} refused: {why}; keeping the previous one");
                None
            }
            Refresh::Unchanged if !adopted_once => reader.generation(),
            Refresh::Unchanged => None,
        };
        let changed = match take.and_then(|g| reader.payload().map(|p| (g, sluice_model::image::decode(p)))) {
            Some((g, Ok(t))) => {
                table = Arc::new(t);
                // To the workers first, then the steering: a frame the new steering sends them
                // finds the new table (a worker takes it before its next batch).
                for l in links {
                    l.tables.force_push(Arc::clone(&table));
                }
                eprintln!("sluice-gateway: table generation {g}: {} service(s)", table.services().len());
                true
            }
            Some((g, Err(e))) => {
                eprintln!("sluice-gateway: table generation {g} refused: {e}; keeping the previous one");
                false
            }
            None => false,
        };
        if changed {
            adopted_once = true;
            let wanted = steering::plan(&table, snat_ports);
            for st in steering.iter_mut() {
                match st.sync(&wanted) {
                    Ok((added, removed)) if added + removed > 0 => {
                        eprintln!(
                            "sluice-gateway: XDP steering: {added} key(s) set, {removed} removed, {} in all",
                            wanted.len()
                        )
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("sluice-gateway: {e}"),
                }
            }
            let now_owned = steering::owned(&table);
            let fresh: Vec<Addr> = now_owned.difference(&owned).copied().collect();
            announce(&raw, mac, &fresh);
            if !fresh.is_empty() {
                announce_again = Some(Instant::now() + Duration::from_secs(1));
            }
            owned = now_owned;
            backends = steering::backend_addrs(&table);
            if kernel.resolve(&hops, &backends) > 0 {
                resolving_until = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        if announce_again.is_some_and(|t| Instant::now() >= t) {
            // A second announcement, as arping -U does, for hosts that missed the first.
            announce(&raw, mac, &owned.iter().copied().collect::<Vec<_>>());
            announce_again = None;
        }
        // 2. Destinations the workers could not resolve.
        let mut pending = BTreeSet::new();
        for l in links {
            while let Some(a) = l.pending.pop() {
                pending.insert(a);
            }
        }
        if !pending.is_empty() && kernel.resolve(&hops, &pending) > 0 {
            resolving_until = Some(Instant::now() + Duration::from_secs(1));
        }
        // 3. Routes and neighbours: every 100 ms, every 10 ms while resolutions we asked for may
        // be arriving (so the first packets of new backends find their MAC), at once when a
        // worker reported a miss.
        let asked = resolving_until.is_some_and(|t| Instant::now() < t);
        let every = if asked { Duration::from_millis(10) } else { Duration::from_millis(100) };
        if !pending.is_empty() || last_kernel.elapsed() >= every {
            last_kernel = Instant::now();
            match kernel.refresh() {
                Ok(Some(h)) => {
                    for l in links {
                        // Replace whatever the worker has not taken yet.
                        let _ = l.next_hops.force_push(h.clone());
                    }
                    hops = h;
                    if kernel.resolve(&hops, &backends) > 0 {
                        resolving_until = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
                Ok(None) => {}
                Err(e) => eprintln!("sluice-gateway: netlink: {e}"),
            }
        }
        // 4. An MTU raised past what the frames hold (checked every second): the kernel would
        // drop every larger frame, counted only as xsk_rx_dropped.
        if last_mtu.elapsed() >= Duration::from_secs(1) {
            last_mtu = Instant::now();
            for (iface, known) in ifaces.iter().zip(mtus.iter_mut()) {
                let Ok(now) = link::mtu(iface) else { continue };
                let fits = sluice_xsk::socket::max_mtu(frame_size);
                if now != *known && now > fits {
                    let max = sluice_xsk::socket::MAX_MTU;
                    eprintln!(
                        "sluice-gateway: {iface}'s MTU is now {now}, but its AF_XDP frames hold an MTU of {fits}: \
                         longer frames are dropped (xsk_rx_dropped); {}",
                        if now <= max {
                            "restart the gateway to take them".to_owned()
                        } else {
                            format!("the most a restart can take is {max} (no multi-buffer)")
                        }
                    );
                }
                *known = now;
            }
        }
        std::thread::sleep(Duration::from_millis(if asked { 2 } else { 10 }));
    }
    Ok(())
}

/// Gratuitous ARP / unsolicited neighbour advertisement for each address.
fn announce(raw: &RawSender, mac: [u8; 6], addrs: &[Addr]) {
    for a in addrs {
        let r = match a.family() {
            Family::V4 => raw.send(&sluice_lb::vip::gratuitous_arp(a.v4(), mac)),
            Family::V6 => raw.send(&sluice_lb::vip::unsolicited_na(a.v6(), mac)),
        };
        if let Err(e) = r {
            eprintln!("sluice-gateway: announcing {}: {e}", a.ip());
        }
    }
}
