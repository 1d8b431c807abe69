//! The main thread: everything off the hot path, in a loop every few milliseconds.
//!
//! 1. A new table generation: decoded once and handed to every worker (before the steering
//!    changes, so a frame the new steering sends them finds the new table); the XDP map brought
//!    to the table's steering plan; VIPs newly owned — new ones, and those whose L2 role became
//!    active here (docs/l2.md) — announced (gratuitous ARP, unsolicited neighbour
//!    advertisements, once more a second later); the table's backends resolved. A generation
//!    that does not decode is logged once and never decoded again; the last good table stays.
//! 1. The table file itself, every [`FILE_CHECK_EVERY`]: truncated, replaced or removed under us
//!    (`sluice_table::Reader::check_file`) is logged once per distinct problem, the last good
//!    table stays live, and the file at the path is opened again (with every check of
//!    `sluice_table::shm`) until one is valid; that one is adopted — its generations may start
//!    lower, which the log line says — and the workers move their counters to it.
//! 2. Destinations the workers could not resolve: asked of the kernel.
//! 3. Routes and neighbours: read from the kernel every 100 ms (every 10 ms while resolutions
//!    we asked for may be arriving, at once when a worker reported a miss) and handed to the
//!    workers when they changed.
//! 4. Each interface's MTU, every second: one raised past what the UMEM frames hold is
//!    reported (the kernel would drop every larger frame, counted only as `xsk_rx_dropped`).
//! 5. Each interface, every second: still the one the gateway attached to (its index). One
//!    deleted — or deleted and created again, a new interface under the old name — took the
//!    XDP program and the AF_XDP sockets with it: the gateway says so and exits with an error,
//!    for its supervisor (the systemd unit's `Restart=always`) to start it on the new one.
//! 6. SNAT exhaustion, every second: new flows dropped for want of a SNAT port are logged with
//!    what to do about it (the `snat_exhausted` counter says how many; the log says it began).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_log::{info, warn};
use sluice_model::l7::{Endpoint, L7Table};
use sluice_model::ports::PortRange;
use sluice_model::service::ServiceTable;
use sluice_model::{Addr, Family};
use sluice_table::{FileState, Reader, Refresh};
use sluice_worker::fastpath::FastReport;
use sluice_worker::nexthop::NextHops;
use sluice_xsk::fastpath::FastKey;
use sluice_xsk::link::{self, RawSender};
use sluice_xsk::steer::Takeover;
use sluice_xsk::{AttachMode, Steering};

use crate::core_thread::Link;
use crate::dns::{self, Resolver};
use crate::handover::{Handover, Taken};
use crate::l7::{L7Plan, L7Settings};
use crate::l7_addrs::L7Addresses;
use crate::{Cli, Interfaces, kernel, steering};

/// Read-backs kept for a worker whose queue is full, at most (past it, counts are merged).
const UNSENT_MAX: usize = 65_536;

/// What the installer knows of an entry it installed.
#[derive(Debug, Clone, Copy)]
struct Installed {
    /// The worker that asked for it.
    worker: usize,
    /// The port whose program's map holds it.
    port: u8,
    /// Its counters as last read (reported up to there).
    frames: u64,
    /// Its bytes as last read.
    bytes: u64,
}

/// How often the table file under the mapping is checked: a truncation or a replacement is
/// noticed within this (a fault in the meantime is contained, see `sluice_table::shm`).
const FILE_CHECK_EVERY: Duration = Duration::from_millis(250);

/// The main thread's state.
pub(crate) struct Supervisor<'a> {
    links: &'a [Arc<Link>],
    /// Fast-path map operations that failed (a full map, mostly).
    fast_failures: u64,
    /// Each fast-path key installed: which worker installed it (a worker's `Clear` removes its
    /// own) on which port, and its counters as last read.
    fast_owner: HashMap<FastKey, Installed>,
    /// Per worker: read-backs its queue had no room for yet, handed over first at each pass.
    fast_unsent: Vec<VecDeque<FastReport>>,
    names: &'a [String],
    /// The interfaces' indexes at start, in `names`' order.
    ifindexes: &'a [u32],
    frame_size: u32,
    snat_ports: PortRange,
    /// The flow-sync peers' FullNAT source addresses (`--peer-snat-address`).
    peer_snat: Vec<Addr>,
    mac: [u8; 6],
    kernel: kernel::Kernel,
    /// VIPs are announced on the client-facing interface.
    raw: RawSender,
    table: Arc<ServiceTable>,
    /// The generation last decoded, or refused, from the reader: never decoded twice.
    tried: Option<u64>,
    /// The table file, as `--table` names it.
    path: PathBuf,
    last_file_check: Instant,
    /// The last problem with the table file logged: each distinct one is logged once.
    file_problem: Option<String>,
    owned: BTreeSet<Addr>,
    backends: BTreeSet<Addr>,
    hops: NextHops,
    last_kernel: Instant,
    announce_again: Option<Instant>,
    resolving_until: Option<Instant>,
    /// The MTUs last seen (0: not yet; every one fitted the frames at start).
    mtus: Vec<u32>,
    last_mtu: Instant,
    snat: SnatWatch,
    /// The L7 stage's addresses on the client-facing interface.
    l7_addrs: L7Addresses,
    /// The L7 stage's TLS and listeners, prepared for the workers.
    l7: L7Plan,
    /// The L7 half of the current table.
    l7_table: Arc<L7Table>,
    /// ExternalName upstreams' names, resolved.
    resolver: Resolver,
    /// How to attach the steering programs, until they are (with whether SYN cookies are on).
    attach: Option<(AttachMode, bool)>,
    /// On-link backends whose neighbour entry failed (their address stopped answering), and when
    /// the kernel was last asked about them.
    unanswering: BTreeSet<Addr>,
    last_liveness: Instant,
}

/// Stale on-link backends the kernel is asked to probe per second, at most.
const LIVENESS_PROBES: usize = 256;

impl<'a> Supervisor<'a> {
    /// Opens netlink and the raw sender for the gateway's interfaces.
    pub(crate) fn new(
        cli: &Cli,
        ifs: &'a Interfaces,
        links: &'a [Arc<Link>],
    ) -> Result<Supervisor<'a>, String> {
        let kernel = kernel::Kernel::open(&ifs.ifindexes).map_err(|e| format!("netlink: {e}"))?;
        let raw =
            RawSender::open(ifs.ifindexes[0]).map_err(|e| format!("packet socket on {}: {e}", cli.iface))?;
        let l7_addrs =
            L7Addresses::open(&cli.iface, ifs.ifindexes[0]).map_err(|e| format!("netlink: {e}"))?;
        Ok(Supervisor {
            links,
            names: &ifs.names,
            ifindexes: &ifs.ifindexes,
            frame_size: ifs.frame_size,
            snat_ports: cli.snat_ports,
            peer_snat: cli.peer_snat.iter().map(|&a| Addr::from(a)).collect(),
            mac: ifs.macs[0],
            kernel,
            raw,
            table: Arc::new(ServiceTable::empty()),
            tried: None,
            path: cli.table.clone(),
            last_file_check: Instant::now(),
            file_problem: None,
            owned: BTreeSet::new(),
            backends: BTreeSet::new(),
            hops: NextHops::new(),
            last_kernel: Instant::now() - Duration::from_secs(1),
            announce_again: None,
            resolving_until: None,
            mtus: vec![0; ifs.names.len()],
            last_mtu: Instant::now(),
            snat: SnatWatch::new(Instant::now()),
            l7_addrs,
            l7: L7Plan::new(L7Settings {
                addresses: cli.l7_addresses.clone(),
                http_port: cli.http_port,
                https_port: cli.https_port,
                default_cert: cli.default_cert.clone().zip(cli.default_key.clone()),
                workers: links.len(),
            })?,
            l7_table: Arc::new(L7Table::default()),
            fast_failures: 0,
            fast_owner: HashMap::new(),
            attach: None,
            unanswering: BTreeSet::new(),
            last_liveness: Instant::now(),
            fast_unsent: vec![VecDeque::new(); links.len()],
            resolver: Resolver::new(
                cli.dns_server.or_else(dns::system_server).unwrap_or_else(|| ([127, 0, 0, 1], 53).into()),
            ),
        })
    }

    /// Attaches the steering programs in `mode` once the first table is in their maps
    /// ([`Self::run`]).
    pub(crate) fn attach_when_ready(&mut self, mode: AttachMode, syn_cookies: bool) {
        self.attach = Some((mode, syn_cookies));
    }

    /// Attaches each loaded steering program to its interface (`Steering::attach_kept`),
    /// replacing what a previous gateway left there: from here frames reach this gateway's
    /// sockets.
    fn attach(&mut self, steering: &mut [Steering]) -> Result<(), String> {
        let Some((mode, syn_cookies)) = self.attach.take() else { return Ok(()) };
        for (s, name) in steering.iter_mut().zip(self.names) {
            let how = s.attach_kept(name, mode).map_err(|e| e.to_string())?;
            let native = if s.native() { "native" } else { "generic" };
            match how {
                Takeover::Fresh => info!("XDP program attached to {name} ({native} mode)"),
                Takeover::Replaced { prog_id } => info!(
                    "XDP program attached to {name} ({native} mode), replacing the previous gateway's (program {prog_id})"
                ),
            }
            if s.native() && syn_cookies {
                crate::peer_hint(name);
            }
        }
        self.announce_own_addresses();
        Ok(())
    }

    /// Announces the client-facing interface's own addresses (gratuitous ARP, unsolicited
    /// neighbour advertisements), as the kernel's `arp_notify` would: the XDP program passes
    /// unicast frames to another MAC to the kernel, which drops them, so a neighbour still
    /// holding an old MAC for one of them (the interface was re-created, or another node had
    /// the address) would otherwise lose its traffic until its entry expires, tens of seconds.
    fn announce_own_addresses(&mut self) {
        let ifindex = self.ifindexes[0];
        let own = sluice_xsk::netlink::Netlink::open().and_then(|mut nl| nl.addresses(ifindex));
        match own {
            Ok(addrs) => {
                // Not the link-local IPv6 ones: their neighbours resolve them as they need.
                let addrs: Vec<Addr> = addrs
                    .into_iter()
                    .map(Addr)
                    .filter(|a| !matches!(a.ip(), std::net::IpAddr::V6(v) if v.is_unicast_link_local()))
                    .collect();
                announce(&self.raw, self.mac, &addrs);
            }
            Err(e) => warn!("the interface's addresses (netlink): {e}; not announced"),
        }
    }

    /// The gateway's end of the handover (`crate::handover`), with what it took over from an
    /// old gateway, if it did: its listeners and the L7 addresses it had put on the interface.
    pub(crate) fn handover(&mut self, path: PathBuf, taken: Option<Taken>, drain: Duration) -> Handover {
        let mut taken = taken;
        if let Some(t) = &mut taken {
            let (listeners, addresses) = t.split();
            self.l7.inherit(listeners);
            self.l7_addrs.adopt(&addresses);
            self.l7.offer_addresses(self.l7_addrs.added());
        }
        Handover::new(path, self.l7.offer(), taken, drain)
    }

    /// Whether the workers serve the L7 listeners of a table (an old gateway may stop
    /// accepting).
    fn l7_serving(&self) -> bool {
        let s = self.l7.serial();
        s > 0 && self.links.iter().all(|l| l.l7_taken.load(Ordering::Acquire) >= s)
    }

    /// Leaves the L7 addresses on the interface when this gateway stops: a new gateway took
    /// them over.
    pub(crate) fn forget_l7_addresses(&mut self) {
        self.l7_addrs.forget();
    }

    /// Runs until `stop`, until a worker stops on its own (an error), or until a new gateway
    /// asks this one to hand over (`handover`).
    pub(crate) fn run(
        &mut self,
        reader: &mut Reader,
        steering: &mut [Steering],
        stop: &AtomicBool,
        workers: &[JoinHandle<()>],
        handover: &mut Handover,
    ) -> Result<(), String> {
        // The L7 stage's listeners open with the first table (`take_table`), whether new or
        // taken over: opened before it, with no routes, they would answer every request 404
        // until it came — for as long as control takes to publish it. Until then a client is
        // refused.
        let fresh = self.sync_l7_addresses();
        announce(&self.raw, self.mac, &fresh);
        while !stop.load(Ordering::Relaxed) && !handover.release_asked() {
            if workers.iter().any(|h| h.is_finished()) {
                return Err("a worker stopped unexpectedly".into());
            }
            self.watch_table_file(reader);
            if self.take_table(reader) {
                self.steer_and_announce(steering);
            }
            self.attach(steering)?;
            self.announce_once_more();
            if self.resolver.poll(Instant::now()) {
                self.prepare_l7();
            }
            let missed = self.resolve_misses();
            self.refresh_next_hops(missed);
            if self.watch_mtus() {
                self.watch_interfaces()?;
            }
            self.watch_snat();
            self.watch_backends();
            self.install_fast(steering);
            handover.poll(|| self.l7_serving());
            let asked = self.resolving_until.is_some_and(|t| Instant::now() < t);
            std::thread::sleep(Duration::from_millis(if asked { 2 } else { 10 }));
        }
        Ok(())
    }

    /// The fast path's installer: applies what each worker asked of the XDP programs' flow
    /// maps, in the order it asked (a tuple's removal before its reinstallation). Here, on the
    /// main thread every 10 ms, so that workers make no bpf calls. A refused install (the map
    /// is full) leaves the flow on the AF_XDP path, which is correct, and is counted here.
    ///
    /// A worker's `Clear` removes that worker's entries only (the installer remembers which
    /// worker installed each key): the other workers' flows stay in the kernel.
    ///
    /// Read-back: an `Ask` (an offloaded flow at its deadline) is answered with both entries'
    /// later last-seen time and the frames and bytes they forwarded since last read; an entry
    /// removed or replaced is read first and its frames and bytes reported. One lookup per key,
    /// as many as the workers asked for (their queue bounds it); the answers go back on each
    /// worker's report queue, and what does not fit waits here for the next pass.
    fn install_fast(&mut self, steering: &mut [Steering]) {
        use sluice_worker::fastpath::{FastCommand, key};
        let remove = |steering: &mut [Steering], k: &FastKey| {
            steering.iter_mut().try_fold(false, |any, s| s.fast_remove(k).map(|r| any | r))
        };
        let links = self.links;
        for w in 0..links.len() {
            self.flush_reports(w);
        }
        for (w, link) in links.iter().enumerate() {
            let Some(q) = &link.fast else { continue };
            while let Some(c) = q.pop() {
                let r = match c {
                    FastCommand::Install(port, k, e) => {
                        // A replacement: what the old entry forwarded is counted first.
                        self.count_and_forget(steering, &k);
                        match steering.get_mut(usize::from(port)) {
                            Some(s) => s.fast_install(&k, &e).map(|()| {
                                self.fast_owner.insert(k, Installed { worker: w, port, frames: 0, bytes: 0 });
                                true
                            }),
                            None => Ok(false),
                        }
                    }
                    FastCommand::Remove(k) => {
                        self.count_and_forget(steering, &k);
                        remove(steering, &k)
                    }
                    FastCommand::Clear => {
                        let mine: Vec<FastKey> =
                            self.fast_owner.iter().filter(|&(_, o)| o.worker == w).map(|(k, _)| *k).collect();
                        mine.iter().try_fold(false, |_, k| {
                            self.count_and_forget(steering, k);
                            remove(steering, k)
                        })
                    }
                    FastCommand::Ask(fwd, rev) => {
                        let (mut last_seen_ns, mut frames, mut bytes) = (0, 0, 0);
                        for k in [key(&fwd), key(&rev)] {
                            if let Some((seen, f, b)) = self.read_entry(steering, &k) {
                                last_seen_ns = last_seen_ns.max(seen);
                                frames += f;
                                bytes += b;
                            }
                        }
                        self.report(w, FastReport::Seen { fwd, rev, last_seen_ns, frames, bytes });
                        Ok(true)
                    }
                };
                if let Err(e) = r {
                    self.fast_failures += 1;
                    if self.fast_failures.is_power_of_two() {
                        warn!(
                            "XDP fast path: {e} ({} failure(s) so far; the flows stay on the AF_XDP path)",
                            self.fast_failures
                        );
                    }
                }
            }
        }
    }

    /// Reads the installed entry `k` from its port's map: its last-seen time, and the frames
    /// and bytes it forwarded since the last read (which become the last read). `None` when it
    /// is not installed, or not in the map (the program never removes one: on a FIN or RST it
    /// marks it closing and leaves it, with its counters, for this read and the removal).
    fn read_entry(&mut self, steering: &[Steering], k: &FastKey) -> Option<(u64, u64, u64)> {
        let installed = self.fast_owner.get_mut(k)?;
        let e = steering.get(usize::from(installed.port))?.fast_entry(k).ok().flatten()?;
        let (frames, bytes) =
            (e.packets.saturating_sub(installed.frames), e.bytes.saturating_sub(installed.bytes));
        (installed.frames, installed.bytes) = (e.packets, e.bytes);
        Some((e.last_seen_ns, frames, bytes))
    }

    /// Before entry `k` is removed or replaced: what it forwarded since the last read is
    /// reported to the worker that installed it, and the key forgotten.
    fn count_and_forget(&mut self, steering: &[Steering], k: &FastKey) {
        let Some(worker) = self.fast_owner.get(k).map(|i| i.worker) else { return };
        if let Some((_, frames, bytes)) = self.read_entry(steering, k)
            && frames > 0
        {
            self.report(worker, FastReport::Counts { frames, bytes });
        }
        self.fast_owner.remove(k);
    }

    /// Hands `r` to worker `w`, after what waits for it; what its queue has no room for waits
    /// here, at most [`UNSENT_MAX`] reports: past that, a report's counts are added to the last
    /// one waiting (an answer so dropped leaves its flow to be withdrawn after the engine's
    /// wait, as without read-back).
    fn report(&mut self, w: usize, r: FastReport) {
        let Some(q) = self.links.get(w).and_then(|l| l.fast_reports.as_ref()) else { return };
        let waiting = &mut self.fast_unsent[w];
        if waiting.is_empty() {
            match q.push(r) {
                Ok(()) => return,
                Err(r) => return waiting.push_back(r),
            }
        }
        if waiting.len() < UNSENT_MAX {
            return waiting.push_back(r);
        }
        let (f, b) = match r {
            FastReport::Seen { frames, bytes, .. } | FastReport::Counts { frames, bytes } => (frames, bytes),
        };
        match waiting.back_mut() {
            Some(FastReport::Counts { frames, bytes }) => {
                *frames += f;
                *bytes += b;
            }
            _ => waiting.push_back(FastReport::Counts { frames: f, bytes: b }),
        }
    }

    /// Hands worker `w` what waits for it, as far as its queue has room.
    fn flush_reports(&mut self, w: usize) {
        let Some(q) = self.links.get(w).and_then(|l| l.fast_reports.as_ref()) else { return };
        let waiting = &mut self.fast_unsent[w];
        while let Some(r) = waiting.pop_front() {
            if let Err(r) = q.push(r) {
                waiting.push_front(r);
                break;
            }
        }
    }

    /// Takes a new generation (or the one the reader adopted when it opened): decoded, handed to
    /// the workers. Returns whether the table changed. Each generation is decoded once: one that
    /// fails is logged once and the last good table stays.
    fn take_table(&mut self, reader: &mut Reader) -> bool {
        if let Refresh::Refused(g, why) = reader.refresh() {
            // The reader reports a refusal once per generation it sees.
            warn!("table generation {g} refused: {why}; keeping the previous one");
            return false;
        }
        let Some(g) = reader.generation() else { return false };
        if self.tried == Some(g) {
            return false;
        }
        self.tried = Some(g);
        let Some(decoded) = reader.payload().map(sluice_model::image::decode) else { return false };
        if reader.payload().is_none() {
            warn!(
                "table file {} was truncated while generation {g} was decoded; keeping the previous table",
                self.path.display()
            );
            return false;
        }
        match decoded {
            Ok(t) => {
                self.table = Arc::new(t);
                self.l7_table = self.table.l7_shared();
                self.prepare_l7();
                // To the workers first, then the steering: a frame the new steering sends them
                // finds the new table (a worker takes it before its next batch).
                for l in self.links {
                    l.tables.force_push(Arc::clone(&self.table));
                }
                info!("table generation {g}: {} service(s)", self.table.services().len());
                true
            }
            Err(e) => {
                warn!("table generation {g} refused: {e}; keeping the previous one");
                false
            }
        }
    }

    /// Every [`FILE_CHECK_EVERY`]: whether the table file is still the one mapped, as long as
    /// it was. If not, the file now at the path is opened with every check, and adopted when it
    /// passes; until then the last good table stays live and each distinct problem is logged
    /// once.
    fn watch_table_file(&mut self, reader: &mut Reader) {
        if self.last_file_check.elapsed() < FILE_CHECK_EVERY {
            return;
        }
        self.last_file_check = Instant::now();
        let state = reader.check_file();
        if state == FileState::Intact {
            if self.file_problem.take().is_some() {
                info!("table file {} is readable again", self.path.display());
            }
            return;
        }
        let path = self.path.display();
        let opened = Reader::open(&self.path);
        match opened {
            // The same file, neither shrunk nor replaced (a path lookup that failed once): keep it.
            Ok(new) if !matches!(state, FileState::Shrunk { .. }) && new.file_id() == reader.file_id() => {}
            Ok(new) => {
                let was = reader.generation().map_or("none".to_owned(), |g| g.to_string());
                let now = new.generation().map_or("none".to_owned(), |g| g.to_string());
                info!(
                    "table file {path} was {state}: adopted the file now there (generation {now}; \
                     was {was} — a new file counts its generations afresh)"
                );
                *reader = new;
                self.tried = None;
                self.file_problem = None;
                for (q, l) in self.links.iter().enumerate() {
                    match Reader::open_stats_only(&self.path) {
                        Ok(r) => drop(l.stats.force_push(r)),
                        Err(e) => warn!(queue = q, "worker counters stay on the old table file: {e}"),
                    }
                }
            }
            Err(e) => {
                let problem = format!(
                    "table file {path} was {state}; the file there now is refused: {e}; \
                     keeping the last good table (generation {})",
                    self.table.generation().0
                );
                if self.file_problem.as_ref() != Some(&problem) {
                    warn!("{problem}");
                    self.file_problem = Some(problem);
                }
            }
        }
    }

    /// Brings the XDP map to the table's plan, announces the table's new VIPs, and asks the
    /// kernel to resolve its backends.
    fn steer_and_announce(&mut self, programs: &mut [Steering]) {
        let wanted =
            steering::plan(&self.table, self.snat_ports, &self.peer_snat, &steering::is_host_address);
        for st in programs.iter_mut() {
            match st.sync(&wanted) {
                Ok((added, removed)) if added + removed > 0 => {
                    info!("XDP steering: {added} key(s) set, {removed} removed, {} in all", wanted.len())
                }
                Ok(_) => {}
                Err(e) => warn!("XDP steering: {e}"),
            }
        }
        let now_owned = steering::owned(&self.table);
        let mut fresh: Vec<Addr> = now_owned.difference(&self.owned).copied().collect();
        fresh.extend(self.sync_l7_addresses());
        announce(&self.raw, self.mac, &fresh);
        if !fresh.is_empty() {
            self.announce_again = Some(Instant::now() + Duration::from_secs(1));
        }
        self.owned = now_owned;
        self.backends = steering::backend_addrs(&self.table);
        self.resolve(&self.backends.clone());
    }

    /// Puts the L7 stage's addresses on the interface (those given by flag and those of the
    /// table's listeners); returns the new ones.
    fn sync_l7_addresses(&mut self) -> Vec<Addr> {
        let wanted = self.l7.addresses(&self.l7_table);
        let fresh = self.l7_addrs.sync(&wanted);
        self.l7.offer_addresses(self.l7_addrs.added());
        fresh
    }

    /// Hands the workers the L7 stage's work for the current table, when it changed: the
    /// table with its ExternalName upstreams' endpoints as last resolved.
    fn prepare_l7(&mut self) {
        let names: BTreeSet<String> = self
            .l7_table
            .upstreams
            .iter()
            .filter_map(|u| u.external.as_ref().map(|x| x.host.clone()))
            .collect();
        self.resolver.want(&names);
        let table = if names.is_empty() {
            Arc::clone(&self.l7_table)
        } else {
            let mut t = (*self.l7_table).clone();
            for u in &mut t.upstreams {
                let Some(x) = &u.external else { continue };
                u.endpoints = self
                    .resolver
                    .addresses(&x.host)
                    .into_iter()
                    .map(|ip| Endpoint {
                        addr: SocketAddr::new(ip, x.port),
                        ready: true,
                        serving: true,
                        terminating: false,
                    })
                    .collect();
            }
            Arc::new(t)
        };
        if let Some(work) = self.l7.prepare(&table) {
            for l in self.links {
                l.l7.force_push(Arc::clone(&work));
            }
        }
    }

    /// A second announcement, as `arping -U` does, for hosts that missed the first.
    fn announce_once_more(&mut self) {
        if self.announce_again.is_some_and(|t| Instant::now() >= t) {
            announce(&self.raw, self.mac, &self.owned.iter().copied().collect::<Vec<_>>());
            self.announce_again = None;
        }
    }

    /// Asks the kernel to resolve `addrs` (it sends the ARP requests and solicitations); the
    /// next hops are then read often for a second.
    fn resolve(&mut self, addrs: &BTreeSet<Addr>) {
        if self.kernel.resolve(&self.hops, addrs) > 0 {
            self.resolving_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }

    /// Destinations the workers could not resolve: asked of the kernel. Returns whether there
    /// were any.
    fn resolve_misses(&mut self) -> bool {
        let mut pending = BTreeSet::new();
        for l in self.links {
            while let Some(a) = l.pending.pop() {
                pending.insert(a);
            }
        }
        if !pending.is_empty() {
            self.resolve(&pending);
        }
        !pending.is_empty()
    }

    /// Routes and neighbours: every 100 ms, every 10 ms while resolutions we asked for may be
    /// arriving (so the first packets of new backends find their MAC), at once after a miss.
    fn refresh_next_hops(&mut self, missed: bool) {
        let asked = self.resolving_until.is_some_and(|t| Instant::now() < t);
        let every = if asked { Duration::from_millis(10) } else { Duration::from_millis(100) };
        if !missed && self.last_kernel.elapsed() < every {
            return;
        }
        self.last_kernel = Instant::now();
        match self.kernel.refresh() {
            Ok(Some(h)) => {
                for l in self.links {
                    // Replace whatever the worker has not taken yet.
                    let _ = l.next_hops.force_push(h.clone());
                }
                self.hops = h;
                self.resolve(&self.backends.clone());
            }
            Ok(None) => {}
            Err(e) => warn!("netlink: {e}"),
        }
    }

    /// Every second: keeps the kernel probing the on-link backends (`Kernel::unanswering`), and
    /// tells the workers about each one whose address stopped answering — they end its flows,
    /// a TCP connection with a RST to its client, so that a client of a backend that vanished
    /// (its Pod's address gone, its node dead) fails within a bound instead of waiting for
    /// data for hours. Said once per failure: connections opened to it afterwards (the table
    /// lists it until its endpoint is removed) get no answer to their SYN and fail on their own.
    fn watch_backends(&mut self) {
        if self.last_liveness.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_liveness = Instant::now();
        let failed = self.kernel.unanswering(&self.hops, &self.backends, LIVENESS_PROBES);
        for a in failed.difference(&self.unanswering) {
            warn!("backend {a} does not answer (its neighbour entry failed): ending its connections");
            for l in self.links {
                let _ = l.unanswering.push(*a);
            }
        }
        for a in self.unanswering.difference(&failed) {
            info!("backend {a} answers again");
        }
        self.unanswering = failed;
    }

    /// New flows dropped for want of a SNAT port, every second: logged while they grow.
    fn watch_snat(&mut self) {
        let links = self.links;
        self.snat
            .look(Instant::now(), || links.iter().map(|l| l.snat_exhausted.load(Ordering::Relaxed)).sum());
    }

    /// Each interface still the one attached to: `Err` (the gateway exits) for one deleted, or
    /// deleted and created again under its name — its XDP program and AF_XDP sockets are gone.
    fn watch_interfaces(&self) -> Result<(), String> {
        for (name, &was) in self.names.iter().zip(self.ifindexes) {
            let why = match sluice_xsk::socket::if_index(name) {
                Ok(now) if now == was => continue,
                Ok(now) => format!("{name} was deleted and created again (index {was}, now {now})"),
                Err(_) => format!("{name} (index {was}) was deleted"),
            };
            return Err(format!(
                "{why}: the XDP program and the AF_XDP sockets went with it; exiting, to be started again on \
                 the interface (the systemd unit restarts the gateway)"
            ));
        }
        Ok(())
    }

    /// Each interface's MTU, every second: one raised past what the frames hold is reported.
    /// Whether it looked (once a second).
    fn watch_mtus(&mut self) -> bool {
        if self.last_mtu.elapsed() < Duration::from_secs(1) {
            return false;
        }
        self.last_mtu = Instant::now();
        let fits = sluice_xsk::socket::max_mtu(self.frame_size);
        for (iface, known) in self.names.iter().zip(self.mtus.iter_mut()) {
            let Ok(now) = link::mtu(iface) else { continue };
            if now != *known && now > fits {
                let max = sluice_xsk::socket::MAX_MTU;
                let fix = if now <= max {
                    "restart the gateway to take them".to_owned()
                } else {
                    format!("the most a restart can take is {max} (no multi-buffer)")
                };
                warn!(
                    "{iface}'s MTU is now {now}, but its AF_XDP frames hold an MTU of {fits}: \
                     longer frames are dropped (xsk_rx_dropped); {fix}"
                );
            }
            *known = now;
        }
        true
    }
}

/// SNAT exhaustion, looked at once a second: the new flows the workers dropped for want of a
/// SNAT port since the last look are logged, with what to do about it. The `snat_exhausted`
/// counter says how many in all; the log says when it happens.
#[derive(Debug)]
struct SnatWatch {
    /// The workers' `snat_exhausted` drops, summed, at the last look.
    seen: u64,
    last: Instant,
}

impl SnatWatch {
    /// How often to look: the log says it at most this often.
    const EVERY: Duration = Duration::from_secs(1);

    fn new(now: Instant) -> SnatWatch {
        SnatWatch { seen: 0, last: now }
    }

    /// At `now`: when a second has passed since the last look, reads the workers' drops summed
    /// (`total`), and logs those new since then. Returns how many it logged, if it did.
    fn look(&mut self, now: Instant, total: impl FnOnce() -> u64) -> Option<u64> {
        if now.saturating_duration_since(self.last) < Self::EVERY {
            return None;
        }
        self.last = now;
        let total = total();
        // A sum that went down (none does today) is a new start, not drops.
        let dropped = total.checked_sub(self.seen).filter(|&d| d > 0);
        self.seen = total;
        if let Some(dropped) = dropped {
            warn!(
                dropped,
                "SNAT exhausted: new flows dropped in the last second, every (SNAT address, port) \
                 towards their backend held by a live connection; add SNAT addresses \
                 (control --snat-address) or widen --snat-ports"
            );
        }
        dropped
    }
}

/// Gratuitous ARP / unsolicited neighbour advertisement for each address.
fn announce(raw: &RawSender, mac: [u8; 6], addrs: &[Addr]) {
    for a in addrs {
        let r = match a.family() {
            Family::V4 => raw.send(&sluice_lb::vip::gratuitous_arp(a.v4(), mac)),
            Family::V6 => raw.send(&sluice_lb::vip::unsolicited_na(a.v6(), mac)),
        };
        if let Err(e) = r {
            warn!("announcing {}: {e}", a.ip());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What the log would say, as the gateway's subscriber formats it (less time and colour).
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        /// The lines logged since the last call.
        fn take(&self) -> Vec<String> {
            let bytes = std::mem::take(&mut *self.0.lock().unwrap());
            String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
        }
    }

    #[test]
    fn snat_exhaustion_is_logged_once_a_second_while_the_drops_grow() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let start = Instant::now();
            let at = |ms| start + Duration::from_millis(ms);
            let mut w = SnatWatch::new(start);
            // Not a second yet: the counters are not even read.
            assert_eq!(w.look(at(999), || panic!("read before its second")), None);
            // No drops: nothing said.
            assert_eq!(w.look(at(1000), || 0), None);
            assert!(log.take().is_empty());
            // Ports ran out: 5 new flows dropped across the workers.
            assert_eq!(w.look(at(2000), || 5), Some(5));
            let lines = log.take();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].starts_with(" WARN "), "{lines:?}");
            assert!(lines[0].contains("SNAT exhausted: new flows dropped in the last second"), "{lines:?}");
            assert!(lines[0].contains("--snat-address") && lines[0].contains("--snat-ports"), "{lines:?}");
            assert!(lines[0].ends_with(" dropped=5"), "{lines:?}");
            // More within the same second: said at the next look, once, with the drops since.
            assert_eq!(w.look(at(2500), || 9), None);
            assert!(log.take().is_empty());
            assert_eq!(w.look(at(3000), || 12), Some(7));
            assert_eq!(log.take().len(), 1);
            // No new drops: quiet again.
            assert_eq!(w.look(at(4000), || 12), None);
            assert!(log.take().is_empty());
        });
    }
}
