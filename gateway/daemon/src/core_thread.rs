//! The thread that runs one worker on its pinned core: it owns one queue's AF_XDP socket on each of the
//! gateway's interfaces (one, or two when two-armed), a table reader, an L4 engine and its
//! counters; with several workers, its mailbox for frames the others hand over.
//!
//! Loop: take new next hops if the main thread left some (one atomic load), adopt a new table
//! generation if the main thread left one (one atomic load: the main thread reads, checks and
//! decodes each generation once for every worker, so adopting is a pointer swap and a worker
//! never stops forwarding to decode), run one batch. While frames arrive it spins; after a run
//! of empty polls it publishes its counters, reports destinations it could not resolve, and
//! sleeps in its reactor (`sluice_worker::reactor`: one epoll set holding its sockets, its
//! doorbell and the L7 stage's sockets) — an idle gateway costs no CPU.
//!
//! The L7 stage (`sluice_proxy`) lives on the same thread: from the first generation with L7
//! work, the worker owns a proxy with its own `SO_REUSEPORT` listeners, client and upstream
//! connections; between batches it serves their events every [`L7_POLL_NS`] (at once after an
//! empty batch), and asleep the reactor hands them over as they come.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use mio::Registry;
use sluice_lb::engine::Config as L4Config;
use sluice_log::{error, info, warn};
use sluice_model::Addr;
use sluice_model::counters::{self, Counter, Gauge};
use sluice_model::drop::DropReason;
use sluice_model::service::ServiceTable;
use sluice_proxy::{Proxy, ProxyConfig, ProxyStats};
use sluice_table::Reader;
use sluice_worker::handoff::{Mailboxes, Sharding};
use sluice_worker::nexthop::NextHops;
use sluice_worker::reactor::{Idle, L7_FIRST, Reactor};
use sluice_worker::{Worker, WorkerConfig};
use sluice_xsk::XskSocket;

use crate::handover::Leaving;
use crate::l7::L7Work;

/// How often a busy worker looks at its L7 sockets between batches (ns): one `epoll_wait`
/// with a zero timeout each time.
const L7_POLL_NS: u64 = 50_000;
/// How often the L7 stage's timers run (ns).
const L7_TICK_NS: u64 = 100_000_000;
/// How long a stopping worker lets HTTP/2 streams in flight finish after its GOAWAY.
const L7_DRAIN_NS: u64 = 2_000_000_000;
/// How long without a frame before a worker serving L7 stops spinning between events (ns).
const L4_QUIET_NS: u64 = 1_000_000;
/// Tokens the L7 stage's sockets may take (listeners, client and upstream connections).
const L7_TOKENS: usize = 1 << 20;

/// Empty polls in a row before the worker sleeps.
const SPIN_POLLS: u32 = 256;
/// How often a busy worker publishes counters (ns).
const STATS_EVERY_NS: u64 = 100_000_000;

/// What the main thread and a worker exchange, without locks.
#[derive(Debug)]
pub(crate) struct Link {
    /// Fresh next hops for the worker.
    pub(crate) next_hops: ArrayQueue<NextHops>,
    /// The newest table generation, decoded (capacity 1: a newer one replaces one not taken).
    pub(crate) tables: ArrayQueue<Arc<ServiceTable>>,
    /// Destinations the worker could not resolve.
    pub(crate) pending: ArrayQueue<Addr>,
    /// Backends whose address stopped answering: the worker ends their flows.
    pub(crate) unanswering: ArrayQueue<Addr>,
    /// New flows the worker dropped for want of a SNAT port, so far (for the main thread's
    /// log line; the counter itself is in the stats region).
    pub(crate) snat_exhausted: AtomicU64,
    /// A stats record in a new table file, when the main thread adopted one (the old file was
    /// truncated or replaced): the worker publishes its counters there from then on.
    pub(crate) stats: ArrayQueue<Reader>,
    /// The L7 stage's work for a new generation (capacity 1: a newer one replaces one not
    /// taken).
    pub(crate) l7: ArrayQueue<Arc<L7Work>>,
    /// With the fast path: what the worker asks of the XDP programs' flow maps, which the main
    /// thread applies (the worker makes no bpf calls).
    pub(crate) fast: Option<sluice_worker::fastpath::FastQueue>,
    /// The serial of the last L7 work the worker took (`L7Work::serial`): its listeners are
    /// served.
    pub(crate) l7_taken: AtomicU64,
    /// With the fast path: what the main thread read back from the maps, for the worker.
    pub(crate) fast_reports: Option<sluice_worker::fastpath::FastReports>,
}

/// A worker's part in the flow sync (`crate::sync`).
#[derive(Debug, Clone)]
pub(crate) struct SyncLink {
    /// The peers' flows, for the engine to look in when its own table misses.
    pub(crate) store: Arc<sluice_lb::peers::PeerFlows>,
    /// The sync's counters (worker 0 publishes them; every worker counts its full queue).
    pub(crate) stats: Arc<crate::sync::SyncStats>,
    /// This worker's queue of records for the peers.
    pub(crate) outbox: Option<crate::sync::Outbox>,
}

/// Everything a worker starts with.
pub(crate) struct Setup {
    pub(crate) queue: u32,
    pub(crate) core: usize,
    /// One socket per interface, in port order.
    pub(crate) sockets: Vec<XskSocket>,
    pub(crate) table: PathBuf,
    /// Each interface's MAC, in port order.
    pub(crate) macs: Vec<[u8; 6]>,
    pub(crate) sharding: Option<Sharding>,
    pub l4: L4Config,
    pub(crate) stop: Arc<AtomicBool>,
    /// An upgrade's steps (`crate::handover`).
    pub(crate) leaving: Arc<Leaving>,
    pub(crate) link: Arc<Link>,
    /// The longest an idle worker sleeps before it looks at its rings and links again.
    pub(crate) max_sleep: Duration,
    /// One access-log line per L7 request on standard output.
    pub(crate) access_log: bool,
    /// The L7 proxy's settings from the command line (`--proxy-body-size`, `--l7-balance`).
    pub(crate) l7_config: sluice_l7::proxy::Config,
    /// Where the worker journals its flows, and the flows a previous gateway left.
    pub(crate) journal: Option<crate::restart::JournalSetup>,
    /// Its part in the flow sync between gateway nodes.
    pub(crate) sync: Option<SyncLink>,
}

/// Runs a worker until `stop`.
pub(crate) fn run(s: Setup) {
    let Setup {
        queue,
        core,
        sockets,
        table,
        macs,
        sharding,
        l4,
        stop,
        leaving,
        link,
        max_sleep,
        access_log,
        l7_config,
        journal,
        sync,
    } = s;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        warn!(queue, core, "could not pin the worker to its core; running unpinned");
    }
    // Only for the counters: tables come decoded from the main thread.
    let reader = match Reader::open_stats_only(&table) {
        Ok(r) => r,
        Err(e) => {
            error!(queue, "worker cannot open the table's stats region: {e}");
            return;
        }
    };
    let mac = macs[0];
    let capacity = l4.flow_capacity;
    let mut worker = Worker::new(&WorkerConfig { mac, l4 }, Arc::new(ServiceTable::empty()), NextHops::new())
        .with_port_macs(&macs);
    let mailboxes = sharding.as_ref().map(|s| Arc::clone(&s.mailboxes));
    if let Some(j) = &journal {
        // A flow is this worker's when its client's frames are (as `Sharding::owner` shares
        // them out): a different worker count still finds each flow its owner.
        let mine = |f: &sluice_lb::flow::Flow| {
            sharding.as_ref().is_none_or(|s| s.owner(&f.fwd.src, &f.fwd.dst, f.fwd.dport, true) == s.me)
        };
        j.start(worker.l4_mut(), capacity, queue, mine);
    }
    if let Some(s) = &sync {
        worker.l4_mut().set_peers(Arc::clone(&s.store));
        if let Some(q) = s.outbox.clone() {
            let stats = Arc::clone(&s.stats);
            worker.l4_mut().set_outbox(Box::new(move |r| {
                if q.push(*r).is_err() {
                    stats.outbox_full.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    if let Some(s) = sharding {
        worker = worker.with_sharding(s);
    }
    if let Some(q) = &link.fast {
        worker = worker.with_fast_path(Arc::clone(q));
    }
    if let Some(q) = &link.fast_reports {
        worker = worker.with_fast_reports(Arc::clone(q));
    }
    let reactor = match reactor(&sockets, mailboxes.as_deref(), queue as usize) {
        Ok(r) => r,
        Err(e) => {
            error!(queue, "worker cannot set up its poll set: {e}");
            return;
        }
    };
    let mut core = Core {
        worker,
        sockets,
        reactor,
        mailboxes,
        me: queue as usize,
        reader,
        link,
        max_sleep,
        access_log,
        l7_config,
        l7: None,
        leaving,
        sync_stats: sync.as_ref().filter(|_| queue == 0).map(|s| Arc::clone(&s.stats)),
    };
    // Counters out at once: control counts this gateway as serving only once every worker has
    // published, none saying that the flow sync still waits for its peers (worker 0 says so
    // from its first publication on).
    core.report();
    core.run(&stop);
}

/// The reactor of worker `me`: its sockets and, with other workers, its doorbell.
fn reactor(sockets: &[XskSocket], mailboxes: Option<&Mailboxes>, me: usize) -> std::io::Result<Reactor> {
    let mut reactor = Reactor::new()?;
    for (i, s) in sockets.iter().enumerate() {
        reactor.register_port(i, s.fd())?;
    }
    if let Some(bell) = mailboxes.and_then(|m| m.doorbell(me)) {
        reactor.register_doorbell(bell)?;
    }
    Ok(reactor)
}

/// A worker and everything its thread drives it with.
struct Core {
    worker: Worker,
    sockets: Vec<XskSocket>,
    reactor: Reactor,
    mailboxes: Option<Arc<Mailboxes>>,
    me: usize,
    reader: Reader,
    link: Arc<Link>,
    max_sleep: Duration,
    access_log: bool,
    /// The L7 proxy's settings.
    l7_config: sluice_l7::proxy::Config,
    /// The L7 stage, from the first generation that has one.
    l7: Option<L7Stage>,
    /// An upgrade's steps.
    leaving: Arc<Leaving>,
    /// Worker 0 with a flow sync: its counters, published with the worker's.
    sync_stats: Option<Arc<crate::sync::SyncStats>>,
}

const _: () = assert!(
    sluice_table::protocol::ROUTE_ROWS == sluice_model::route_stats::ROWS
        && sluice_table::protocol::ROUTE_ROW_VALUES == sluice_model::route_stats::VALUES,
    "the route-stats region and the route rows disagree"
);

/// Access-log bytes a worker gathers before it writes them out (or every [`L7_TICK_NS`]).
const ACCESS_LOG_FLUSH_BYTES: usize = 32 * 1024;

/// A worker's L7 stage: its proxy (listeners, client and upstream connections, all in the
/// worker's reactor) and when it last looked at them.
struct L7Stage {
    proxy: Proxy,
    /// What it listens on: address and port, TLS or not.
    listening: BTreeSet<(SocketAddr, bool)>,
    last_poll: u64,
    last_tick: u64,
    /// Access-log lines not written yet: gathered per request, written out in one `write` when
    /// [`ACCESS_LOG_FLUSH_BYTES`] are there or at the next tick — not one system call per
    /// request on the worker's thread.
    log: Rc<RefCell<String>>,
}

/// The gateway's L7 secret key and limit table, made once (the key from the OS's random
/// source) and shared by every worker.
fn l7_shared() -> &'static sluice_l7::proxy::Shared {
    static SHARED: std::sync::OnceLock<sluice_l7::proxy::Shared> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        use std::io::Read as _;
        let mut bytes = [0u8; 16];
        if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
            // Without randomness the key is the process's hash seed: weaker, not absent.
            sluice_log::warn!("L7 key: /dev/urandom: {e}; using the process's hash seed");
            use std::hash::{BuildHasher, Hasher};
            for chunk in bytes.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u8(0);
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        sluice_l7::proxy::Shared::new(
            sluice_l7::policy::SipKey::new(bytes),
            sluice_l7::policy::limit::LimiterConfig::DEFAULT,
        )
    })
}

impl L7Stage {
    fn new(queue: usize, access_log: bool, core: sluice_l7::proxy::Config) -> L7Stage {
        let config = ProxyConfig { access_log, seed: 0, core, ..ProxyConfig::default() };
        let first = L7_FIRST.0;
        let mut proxy = Proxy::new(config, first..first + L7_TOKENS);
        // One key and one limit table for the whole gateway: a client's limit holds across the
        // workers it is spread over.
        proxy.set_shared(l7_shared().clone());
        let log = Rc::new(RefCell::new(String::with_capacity(ACCESS_LOG_FLUSH_BYTES + 1024)));
        let sink = Rc::clone(&log);
        proxy.set_access_log(Box::new(move |line: &str| {
            use std::fmt::Write as _;
            let mut buf = sink.borrow_mut();
            let _ = writeln!(buf, "access w{queue} {line}");
            if buf.len() >= ACCESS_LOG_FLUSH_BYTES {
                write_out(&mut buf);
            }
        }));
        L7Stage { proxy, listening: BTreeSet::new(), last_poll: 0, last_tick: 0, log }
    }

    /// Writes out the access-log lines gathered so far.
    fn flush_log(&self) {
        write_out(&mut self.log.borrow_mut());
    }

    /// Takes a new generation's work: routes and upstreams for new requests, certificates for
    /// new handshakes, listeners it did not have yet (its slots' sockets, duplicated: slot `i`
    /// is worker `i mod W`'s).
    fn adopt(&mut self, registry: &Registry, work: &L7Work, queue: usize) {
        self.proxy.set_generation(registry, Arc::clone(&work.table));
        self.proxy.set_tls(Arc::clone(&work.tls.config));
        let gone: Vec<(SocketAddr, bool)> = self
            .listening
            .iter()
            .filter(|l| !work.listeners.iter().any(|s| (s.addr, s.tls) == **l))
            .copied()
            .collect();
        for l in gone {
            self.proxy.unlisten(registry, l.0);
            self.listening.remove(&l);
            info!(queue, "L7: no longer listening on {}", l.0);
        }
        for set in &work.listeners {
            let (addr, tls) = (set.addr, set.tls);
            if self.listening.contains(&(addr, tls)) {
                continue;
            }
            let mut served = 0;
            for socket in set.sockets.iter().skip(queue).step_by(work.workers.max(1)) {
                let config = tls.then(|| Arc::clone(&work.tls.config));
                match socket.try_clone().and_then(|s| self.proxy.adopt_listener(registry, s, config)) {
                    Ok(_) => served += 1,
                    Err(e) => warn!(queue, "L7: cannot listen on {addr}: {e}"),
                }
            }
            if served > 0 {
                info!(queue, "L7: listening on {addr}{}", if tls { " (TLS)" } else { "" });
                self.listening.insert((addr, tls));
            }
        }
    }
}

impl Core {
    /// Polls while there are frames; off the hot path every [`STATS_EVERY_NS`] and after
    /// [`SPIN_POLLS`] empty polls, publishes counters and reports unresolved destinations;
    /// sleeps in the reactor when idle.
    fn run(&mut self, stop: &AtomicBool) {
        let mut idle = Idle::new(SPIN_POLLS);
        let mut last_stats = 0u64;
        let mut last_frames = 0u64;
        while !stop.load(Ordering::Relaxed) && !self.leaving.l4_off() {
            self.take_updates();
            // CLOCK_MONOTONIC: the XDP program's clock, which SYN cookies' time slots are read from.
            let now = sluice_sys::monotonic_ns();
            let frames = self.worker.poll_ports(&mut self.sockets, now);
            if frames > 0 {
                last_frames = now;
                // Frames flow: the ports leave the poll set if the last sleep left them there.
                self.reactor.frames_flowing();
            }
            // With the L7 stage serving and no frame for a while, spinning buys nothing: its
            // sockets wake the reactor, and so do frames once the ports are in the poll set.
            // Sleep at once — the reactor hands over what is ready without waiting — instead of
            // spinning through empty polls, each an `epoll_wait`.
            let quiet = self.l7.is_some() && frames == 0 && now.wrapping_sub(last_frames) >= L4_QUIET_NS;
            // A pass over the flow table after a table change (fast path) is work too.
            let mut n = frames + usize::from(self.worker.busy());
            if let Some(l7) = &mut self.l7 {
                n += serve_l7(l7, &mut self.reactor, now, !quiet && frames == 0, !quiet, self.me);
            }
            let sleepy = quiet || idle.after_poll(n);
            let stale = now.wrapping_sub(last_stats) >= STATS_EVERY_NS;
            // Counters go out every STATS_EVERY_NS, and before a sleep after spinning; a quiet
            // worker serving L7 sleeps between bursts of events, too often to publish each time.
            if stale || (sleepy && !quiet) {
                last_stats = now;
                self.report();
            }
            if sleepy {
                idle.reset();
                self.sleep();
            }
        }
        if stop.load(Ordering::Relaxed) {
            self.drain_l7();
            self.report();
        } else {
            self.report();
            self.hand_over(stop);
        }
    }

    /// An upgrade (`crate::handover`): the AF_XDP sockets closed (the next gateway binds the
    /// queues), the L7 stage goes on accepting and serving; once the next gateway serves the
    /// listeners, it drains — stops accepting, GOAWAY to HTTP/2 clients, `Connection: close`
    /// to HTTP/1.1 ones — until its last client connection is done or the drain deadline.
    /// Counters are no longer published: the next gateway's worker publishes to the same
    /// record.
    fn hand_over(&mut self, stop: &AtomicBool) {
        // A worker that started late may not have taken its listeners yet.
        self.take_updates();
        self.reactor.forget_ports();
        self.sockets.clear();
        // The flow journal holds every flow as of now: let go of it (its lock) for the next
        // gateway, which reads it before it binds the queues.
        self.worker.l4_mut().close_journal();
        self.leaving.released_one();
        let mut deadline = None;
        loop {
            let now = sluice_sys::monotonic_ns();
            if stop.load(Ordering::Relaxed) {
                if deadline.is_none() {
                    self.drain_l7();
                }
                break;
            }
            if deadline.is_none()
                && let Some(d) = self.leaving.drain_deadline_ns()
            {
                deadline = Some(d);
                if let Some(l7) = &mut self.l7 {
                    l7.proxy.drain(self.reactor.registry(), now);
                    info!(queue = self.me, "L7: draining {} connection(s)", l7.proxy.clients());
                }
            }
            if let Some(d) = deadline {
                let left = self.l7.as_ref().map_or(0, |l| l.proxy.clients());
                if left == 0 {
                    info!(queue = self.me, "L7: drained");
                    break;
                }
                if now >= d {
                    warn!(queue = self.me, "L7: drain deadline reached; closing {left} connection(s)");
                    break;
                }
            }
            let l7 = &mut self.l7;
            let woken = self.reactor.wait_with(Duration::from_millis(10), |registry, event| {
                if let Some(l7) = l7.as_mut() {
                    l7.proxy.handle(registry, event, sluice_sys::monotonic_ns());
                }
            });
            if let Err(e) = woken {
                warn!(queue = self.me, "worker's wait failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(l7) = &mut self.l7 {
                let now = sluice_sys::monotonic_ns();
                if now.wrapping_sub(l7.last_tick) >= L7_TICK_NS {
                    l7.last_tick = now;
                    l7.proxy.tick(self.reactor.registry(), now);
                }
                l7.proxy.flush(self.reactor.registry(), now);
            }
        }
        if let Some(l7) = &self.l7 {
            l7.flush_log();
        }
    }

    /// On stop: listeners closed, GOAWAY to every HTTP/2 client, and up to [`L7_DRAIN_NS`] for
    /// their streams in flight to finish (HTTP/1.1 clients are closed with the process).
    fn drain_l7(&mut self) {
        let Some(l7) = &mut self.l7 else { return };
        let start = sluice_sys::monotonic_ns();
        if l7.proxy.go_away(self.reactor.registry(), start) == 0 {
            return;
        }
        loop {
            let proxy = &mut l7.proxy;
            let waited = self.reactor.wait_with(Duration::from_millis(10), |registry, event| {
                proxy.handle(registry, event, sluice_sys::monotonic_ns());
            });
            let now = sluice_sys::monotonic_ns();
            l7.proxy.tick(self.reactor.registry(), now);
            l7.proxy.flush(self.reactor.registry(), now);
            if waited.is_err() || l7.proxy.h2_streams() == 0 || now.saturating_sub(start) >= L7_DRAIN_NS {
                return;
            }
        }
    }

    /// New next hops and a new table generation, when the main thread left them (one atomic
    /// load each when it did not).
    #[inline]
    fn take_updates(&mut self) {
        if let Some(h) = self.link.next_hops.pop() {
            self.worker.set_next_hops(h);
        }
        if let Some(t) = self.link.tables.pop() {
            self.worker.set_table(t);
        }
        if let Some(work) = self.link.l7.pop() {
            let (me, access_log, config) = (self.me, self.access_log, self.l7_config);
            let l7 = self.l7.get_or_insert_with(|| L7Stage::new(me, access_log, config));
            l7.adopt(self.reactor.registry(), &work, me);
            // Release: the main thread reads it (Acquire) before telling an old gateway this
            // one serves the listeners.
            self.link.l7_taken.store(work.serial, Ordering::Release);
        }
    }

    /// Counters to the table file; destinations it could not resolve to the main thread.
    fn report(&mut self) {
        if let Some(l7) = &self.l7 {
            l7.flush_log();
        }
        if let Some(r) = self.link.stats.pop() {
            // Off the hot path: dropping the old record unmaps the old file.
            self.reader = r;
            // A new file is a new control, which numbers the routes anew: counts per route
            // start over with it (the worker's other counters keep their names, and go on).
            if let Some(l7) = &mut self.l7 {
                l7.proxy.routes_mut().reset();
            }
        }
        self.reader.publish_stats(&export(
            &self.worker,
            &self.sockets,
            self.l7.as_ref().map(|l| l.proxy.stats()),
            self.sync_stats.as_deref(),
        ));
        if let Some(l7) = &mut self.l7 {
            let reader = &self.reader;
            l7.proxy
                .routes_mut()
                .drain_changed(|row, counts| reader.publish_route_row(usize::from(row), &counts.0));
        }
        let exhausted = self.worker.counters().dropped(DropReason::SnatExhausted);
        self.link.snat_exhausted.store(exhausted, Ordering::Relaxed);
        for a in self.worker.next_hops_mut().pending() {
            let _ = self.link.pending.push(a);
        }
        while let Some(a) = self.link.unanswering.pop() {
            if !self.worker.l4_mut().backend_unreachable(a) {
                // Already ending as many backends' flows as one pass can: the supervisor says
                // it again at its next look.
                break;
            }
        }
    }

    /// Sleeps in the reactor until a socket or the doorbell is ready — unless a parcel came in
    /// meanwhile. Frames held for a next hop are retried soon; a stop request or a new table is
    /// noticed within `max_sleep` without traffic.
    fn sleep(&mut self) {
        if self.mailboxes.as_ref().is_none_or(|m| m.going_to_sleep(self.me)) {
            let mut timeout =
                if self.worker.parked() > 0 { Duration::from_millis(1) } else { self.max_sleep };
            if self.l7.is_some() {
                timeout = timeout.min(Duration::from_nanos(L7_TICK_NS));
            }
            let l7 = &mut self.l7;
            // One clock read per wake-up, not per event: the events of one wake-up are handled
            // within microseconds of each other.
            let mut now = None;
            let woken = self.reactor.wait_with(timeout, |registry, event| {
                if let Some(l7) = l7.as_mut() {
                    let now = *now.get_or_insert_with(sluice_sys::monotonic_ns);
                    l7.proxy.handle(registry, event, now);
                }
            });
            if let Err(e) = woken {
                warn!(queue = self.me, "worker's wait failed: {e}");
                std::thread::sleep(timeout);
            }
            if let (Some(l7), Some(now)) = (l7.as_mut(), now) {
                l7.proxy.flush(self.reactor.registry(), now);
            }
        }
        if let Some(m) = &self.mailboxes {
            m.awake(self.me);
        }
    }
}

/// Writes `buf` to standard output in one go (whole lines: lines of several workers do not
/// interleave) and empties it.
fn write_out(buf: &mut String) {
    use std::io::Write as _;
    if !buf.is_empty() {
        let _ = std::io::stdout().lock().write_all(buf.as_bytes());
        buf.clear();
    }
}

/// Serves the L7 stage between batches: its ready sockets (when `poll`) every [`L7_POLL_NS`], or
/// at once when the batch was empty (`now_too`); its timers every [`L7_TICK_NS`]. Returns the
/// events it handled.
fn serve_l7(
    l7: &mut L7Stage,
    reactor: &mut Reactor,
    now: u64,
    now_too: bool,
    poll: bool,
    queue: usize,
) -> usize {
    let mut handled = 0;
    if poll && (now_too || now.wrapping_sub(l7.last_poll) >= L7_POLL_NS) {
        l7.last_poll = now;
        let proxy = &mut l7.proxy;
        match reactor.poll_l7(|registry, event| proxy.handle(registry, event, now)) {
            Ok(n) => handled = n,
            Err(e) => warn!(queue, "worker's L7 poll failed: {e}"),
        }
    }
    if now.wrapping_sub(l7.last_tick) >= L7_TICK_NS {
        l7.last_tick = now;
        l7.proxy.tick(reactor.registry(), now);
        l7.flush_log();
    }
    // The output the events and the timers held back (HTTP/2 clients': see `Proxy::flush`).
    l7.proxy.flush(reactor.registry(), now);
    handled
}

/// The worker's counters with its sockets' (the kernel's AF_XDP statistics and the wake-ups).
fn export(
    worker: &Worker,
    sockets: &[XskSocket],
    l7: Option<ProxyStats>,
    sync: Option<&crate::sync::SyncStats>,
) -> [u64; counters::LEN] {
    let mut c = worker.counters();
    if let Some(s) = sync {
        s.fill(&mut c);
    }
    if let Some(p) = l7 {
        c[Counter::L7ConnectionsAccepted] = p.accepted;
        c[Counter::L7ConnectionsRefused] = p.refused;
        c[Counter::L7Requests] = p.core.requests;
        let classes = [
            Counter::L7ResponsesNone,
            Counter::L7Responses1xx,
            Counter::L7Responses2xx,
            Counter::L7Responses3xx,
            Counter::L7Responses4xx,
            Counter::L7Responses5xx,
        ];
        for (counter, n) in classes.into_iter().zip(p.core.responses) {
            c[counter] = n;
        }
        c[Counter::L7LocalResponses] = p.core.local_responses;
        c[Counter::L7RejectedHeads] = p.core.rejected_heads;
        c[Counter::L7Retries] = p.core.retries;
        c[Counter::L7Limited] = p.core.limited;
        c[Counter::L7AuthDenied] = p.core.auth_denied;
        c[Counter::L7ClientTimeouts] = p.core.client_timeouts;
        c[Counter::L7RejectedBodies] = p.core.rejected_bodies;
        c[Counter::L7UpstreamConnects] = p.upstream_connects;
        c[Counter::L7UpstreamReuses] = p.upstream_reuses;
        c[Counter::L7TlsHandshakes] = p.tls_handshakes;
        c[Counter::L7TlsResumed] = p.tls_resumed;
        c[Counter::L7TlsErrors] = p.tls_errors;
        c[Counter::L7UpstreamTlsHandshakes] = p.upstream_tls_handshakes;
        c[Counter::L7UpstreamTlsResumed] = p.upstream_tls_resumed;
        c[Counter::L7UpstreamTlsErrors] = p.upstream_tls_errors;
        c[Gauge::L7Clients] = p.clients as u64;
        c[Gauge::L7Upstreams] = p.upstreams as u64;
        c[Gauge::L7Pooled] = p.pooled as u64;
        // The `l7_h2_*` counters: the proxy keeps one per counter name (zero for the others).
        for (counter, n) in p.h2.iter() {
            c[counter] += n;
        }
    }
    for socket in sockets {
        if let Ok(k) = socket.stats() {
            c[Counter::XskRxDropped] += k.rx_dropped;
            c[Counter::XskRxRingFull] += k.rx_ring_full;
            c[Counter::XskFillRingEmpty] += k.rx_fill_ring_empty;
            c[Counter::XskInvalidDescs] += k.rx_invalid_descs + k.tx_invalid_descs;
        }
        c[Counter::XskWakeups] += socket.wakeups();
    }
    c.export()
}
