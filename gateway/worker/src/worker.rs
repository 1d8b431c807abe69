//! The batch loop of one worker.
//!
//! `poll`: receive up to [`BATCH`] frames; parse and hash them all and prefetch their flow
//! buckets; then prefetch the flow records those buckets point to; then — the loads of the whole
//! batch having overlapped instead of queueing — run each through the L4 engine and act on its
//! verdict — set the Ethernet addresses and queue for transmit, hand to the kernel, or drop with
//! a counted reason; transmit, hand over and recycle each group once per batch; and do a bounded
//! amount of flow expiry.

use std::sync::Arc;

use sluice_lb::engine::{Config as L4Config, L4, Prepared, Verdict};
use sluice_lb::service::ServiceTable;
use sluice_lb::{Addr, Counters, DropReason};
use sluice_wire::ethernet::{self, Mac};

use crate::nexthop::NextHops;
use crate::port::{Desc, Port};

/// Frames per batch.
pub const BATCH: usize = 64;

/// Frames a worker holds while the MAC address of their next hop is resolved (as the kernel's
/// ARP queue does), instead of dropping the first packet of every flow to a new neighbour.
pub const PARKED: usize = BATCH;

/// How long a parked frame waits for its next hop before it is dropped (ns).
pub const PARK_NS: u64 = 1_000_000_000;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The MAC address frames are sent from.
    pub mac: Mac,
    /// L4 engine settings.
    pub l4: L4Config,
}

/// Counters of the worker's own I/O (the L4 engine's are in [`Worker::l4_counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Batches with at least one frame.
    pub batches: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Frames handed to the kernel.
    pub kernel_frames: u64,
    /// ARP requests and neighbour solicitations for a VIP answered.
    pub neighbor_replies: u64,
    /// Frames held while their next hop was resolved.
    pub parked: u64,
}

/// One worker. See the module documentation.
pub struct Worker {
    l4: L4,
    next_hops: NextHops,
    mac: Mac,
    counters: WorkerCounters,
    rx: [Desc; BATCH],
    prepared: [Prepared; BATCH],
    tx: [Desc; BATCH],
    kernel: [Desc; BATCH],
    dropped: [Desc; BATCH],
    /// Frames waiting for a next hop: (frame, destination, deadline).
    parked: [(Desc, Addr, u64); PARKED],
    nparked: usize,
}

impl core::fmt::Debug for Worker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker").field("l4", &self.l4).field("counters", &self.counters).finish()
    }
}

impl Worker {
    /// A worker forwarding from `table`, resolving next hops with `next_hops`.
    pub fn new(config: &WorkerConfig, table: Arc<ServiceTable>, next_hops: NextHops) -> Worker {
        Worker {
            l4: L4::new(&config.l4, table),
            next_hops,
            mac: config.mac,
            counters: WorkerCounters::default(),
            rx: [Desc::default(); BATCH],
            prepared: [Prepared::default(); BATCH],
            tx: [Desc::default(); BATCH],
            kernel: [Desc::default(); BATCH],
            dropped: [Desc::default(); BATCH],
            parked: [(Desc::default(), Addr::default(), 0); PARKED],
            nparked: 0,
        }
    }

    /// Adopts a new table generation (between polls).
    pub fn set_table(&mut self, table: Arc<ServiceTable>) {
        self.l4.set_table(table);
    }

    /// Routes and neighbours, to update from the control path.
    pub fn next_hops_mut(&mut self) -> &mut NextHops {
        &mut self.next_hops
    }

    /// The L4 engine (read-only).
    pub fn l4(&self) -> &L4 {
        &self.l4
    }

    /// The L4 engine's counters, drops included.
    pub fn l4_counters(&self) -> &Counters {
        self.l4.counters()
    }

    /// The worker's I/O counters.
    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    /// Frames waiting for their next hop's MAC address.
    pub fn parked(&self) -> usize {
        self.nparked
    }

    /// Queues `self.tx[..n]` for transmission; what the ring does not take is counted and freed.
    #[inline]
    fn transmit(&mut self, port: &mut impl Port, n: usize) {
        if n > 0 {
            let sent = port.send(&self.tx[..n]);
            self.counters.tx_frames += sent as u64;
            self.l4.count_drops(DropReason::TxRingFull, n - sent);
            port.release(&self.tx[sent..n]);
        }
    }

    /// Sends the parked frames whose next hop is now known, drops those that waited too long.
    #[cold]
    fn flush_parked(&mut self, port: &mut impl Port, now_ns: u64) {
        let (mut ntx, mut nd, mut keep) = (0, 0, 0);
        for i in 0..self.nparked {
            let (d, dst, deadline) = self.parked[i];
            if let Some(mac) = self.next_hops.resolve(&dst) {
                let mut eth = ethernet::Frame::new_unchecked(port.frame(&d));
                eth.set_dst(mac);
                eth.set_src(self.mac);
                self.tx[ntx] = d;
                ntx += 1;
            } else if now_ns >= deadline {
                self.l4.count_drop(DropReason::NeighborUnresolved);
                self.dropped[nd] = d;
                nd += 1;
            } else {
                self.parked[keep] = self.parked[i];
                keep += 1;
            }
        }
        self.nparked = keep;
        self.transmit(port, ntx);
        if nd > 0 {
            port.release(&self.dropped[..nd]);
        }
    }

    /// Runs one batch: returns how many frames were received. `now_ns` is read once per batch.
    pub fn poll(&mut self, port: &mut impl Port, now_ns: u64) -> usize {
        if self.nparked > 0 {
            self.flush_parked(port, now_ns);
        }
        let n = port.recv(&mut self.rx);
        if n == 0 {
            self.l4.maintain(now_ns);
            return 0;
        }
        self.counters.batches += 1;
        self.counters.rx_frames += n as u64;
        for i in 0..n {
            let d = self.rx[i];
            self.counters.rx_bytes += u64::from(d.len);
            self.prepared[i] = self.l4.prepare(port.frame(&d));
        }
        for p in &mut self.prepared[..n] {
            self.l4.prefetch_flow(p);
        }
        let (mut ntx, mut nk, mut nd) = (0, 0, 0);
        for i in 0..n {
            let d = self.rx[i];
            let frame = port.frame(&d);
            match self.l4.finish(frame, &self.prepared[i], now_ns) {
                Verdict::Forward(next) => match self.next_hops.resolve(&next) {
                    Some(mac) => {
                        let mut eth = ethernet::Frame::new_unchecked(frame);
                        eth.set_dst(mac);
                        eth.set_src(self.mac);
                        self.tx[ntx] = d;
                        ntx += 1;
                    }
                    None if self.nparked < PARKED => {
                        self.parked[self.nparked] = (d, next, now_ns + PARK_NS);
                        self.nparked += 1;
                        self.counters.parked += 1;
                    }
                    None => {
                        self.l4.count_drop(DropReason::NeighborUnresolved);
                        self.dropped[nd] = d;
                        nd += 1;
                    }
                },
                Verdict::Bounce => {
                    let mut eth = ethernet::Frame::new_unchecked(frame);
                    eth.swap_macs();
                    eth.set_src(self.mac);
                    self.tx[ntx] = d;
                    ntx += 1;
                }
                Verdict::Pass => {
                    let answered = match self.prepared[i].parsed() {
                        Ok(parsed) => sluice_lb::neigh::answer(frame, parsed, self.l4.table(), self.mac),
                        Err(_) => None,
                    };
                    if let Some((asker, asker_mac)) = answered {
                        if asker.0 != [0; 16] {
                            // Who asks for a VIP is about to send to it: learn where the replies go.
                            self.next_hops.learn(asker, asker_mac);
                        }
                        self.counters.neighbor_replies += 1;
                        self.tx[ntx] = d;
                        ntx += 1;
                    } else {
                        self.kernel[nk] = d;
                        nk += 1;
                    }
                }
                Verdict::Drop(_) => {
                    self.dropped[nd] = d;
                    nd += 1;
                }
            }
        }
        self.transmit(port, ntx);
        if nk > 0 {
            let taken = port.to_kernel(&self.kernel[..nk]);
            self.counters.kernel_frames += taken as u64;
            self.l4.count_drops(DropReason::KernelPathFull, nk - taken);
            port.release(&self.kernel[taken..nk]);
        }
        if nd > 0 {
            port.release(&self.dropped[..nd]);
        }
        self.l4.maintain(now_ns);
        n
    }

    /// All counters in the order of [`sluice_lb::stats`], for the table file's stats region.
    pub fn export_stats(&self) -> [u64; sluice_lb::stats::LEN] {
        let w = &self.counters;
        let mut out = [0u64; sluice_lb::stats::LEN];
        sluice_lb::stats::export(
            [
                w.rx_frames,
                w.rx_bytes,
                w.tx_frames,
                w.kernel_frames,
                w.batches,
                w.neighbor_replies,
                w.parked,
                0,
                0,
                0,
                0,
                0,
            ],
            self.l4.counters(),
            &mut out,
        );
        out
    }

    /// Where the worker would send a packet for `dst` (diagnostics).
    pub fn next_hop(&self, dst: &Addr) -> Option<Addr> {
        self.next_hops.next_hop(dst)
    }
}
