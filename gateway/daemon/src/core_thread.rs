//! The thread that runs one worker on its pinned core: it owns one queue's AF_XDP socket on each of the
//! gateway's interfaces (one, or two when two-armed), a table reader, an L4 engine and its
//! counters; with several workers, its mailbox for frames the others hand over.
//!
//! Loop: take new next hops if the main thread left some (one atomic load), adopt a new table
//! generation if the main thread left one (one atomic load: the main thread reads, checks and
//! decodes each generation once for every worker, so adopting is a pointer swap and a worker
//! never stops forwarding to decode), run one batch. While frames arrive it
//! spins; after a run of empty polls it publishes its counters, reports destinations it could
//! not resolve, and sleeps in `poll` on its socket — an idle gateway costs no CPU.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use sluice_lb::engine::Config as L4Config;
use sluice_model::Addr;
use sluice_model::counters::{self, Counter};
use sluice_model::service::ServiceTable;
use sluice_table::Reader;
use sluice_worker::handoff::Sharding;
use sluice_worker::nexthop::NextHops;
use sluice_worker::{Worker, WorkerConfig};
use sluice_xsk::XskSocket;
use sluice_xsk::socket::wait_readable;

/// Empty polls in a row before the worker sleeps.
const SPIN_POLLS: u32 = 256;
/// Longest sleep, so a stop request or a new table is noticed without traffic (ms).
const SLEEP_MS: i32 = 50;
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
    pub(crate) link: Arc<Link>,
}

/// Runs a worker until `stop`.
pub(crate) fn run(s: Setup) {
    let Setup { queue, core, mut sockets, table, macs, sharding, l4, stop, link } = s;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("sluice-gateway: worker {queue}: could not pin to core {core}; running unpinned");
    }
    // Only for the counters: tables come decoded from the main thread.
    let reader = match Reader::open_stats_only(&table) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-gateway: worker {queue}: {e}");
            return;
        }
    };
    let mac = macs[0];
    let mut worker = Worker::new(&WorkerConfig { mac, l4 }, Arc::new(ServiceTable::empty()), NextHops::new())
        .with_port_macs(&macs);
    let mailboxes = sharding.as_ref().map(|s| Arc::clone(&s.mailboxes));
    if let Some(s) = sharding {
        worker = worker.with_sharding(s);
    }
    let me = queue as usize;
    let epoch = Instant::now();
    let mut idle = 0u32;
    let mut last_stats = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(h) = link.next_hops.pop() {
            *worker.next_hops_mut() = h;
        }
        if let Some(t) = link.tables.pop() {
            worker.set_table(t);
        }
        let now = epoch.elapsed().as_nanos() as u64;
        let n = worker.poll_ports(&mut sockets, now);
        if n > 0 {
            idle = 0;
            if now - last_stats < STATS_EVERY_NS {
                continue;
            }
        } else {
            idle += 1;
            if idle < SPIN_POLLS {
                continue;
            }
        }
        // Off the hot path: counters, pending resolutions, and maybe a sleep.
        last_stats = now;
        reader.publish_stats(&export(&worker, &sockets));
        for a in worker.next_hops_mut().pending() {
            let _ = link.pending.push(a);
        }
        if n == 0 {
            idle = 0;
            // Sleep on the sockets and, with other workers, on the mailbox's doorbell — unless
            // a parcel came in meanwhile.
            if mailboxes.as_ref().is_none_or(|m| m.going_to_sleep(me)) {
                let mut fds: Vec<_> = sockets.iter().map(|s| s.fd()).collect();
                fds.extend(mailboxes.as_ref().and_then(|m| m.doorbell(me)));
                // Frames held for a next hop are retried soon.
                wait_readable(&fds, if worker.parked() > 0 { 1 } else { SLEEP_MS });
            }
            if let Some(m) = &mailboxes {
                m.awake(me);
            }
        }
    }
    reader.publish_stats(&export(&worker, &sockets));
}

/// The worker's counters with its sockets' (the kernel's AF_XDP statistics and the wake-ups).
fn export(worker: &Worker, sockets: &[XskSocket]) -> [u64; counters::LEN] {
    let mut c = worker.counters();
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
