//! The batch loop of one worker.
//!
//! `poll`: receive up to [`BATCH`] frames, no more than the transmit rings can take
//! ([`Port::tx_room`]); read each one's first cache line; parse and hash them all and prefetch
//! their flow buckets; then prefetch the flow records those buckets point to; then — the loads of the whole
//! batch having overlapped instead of queueing — run each through the L4 engine and act on its
//! verdict — set the Ethernet addresses and queue for transmit, hand to the kernel, or drop with
//! a counted reason; transmit, hand over and recycle each group once per batch; and do a bounded
//! amount of flow expiry.
//!
//! A worker may serve several ports ([`Worker::poll_ports`]): one interface (one-armed), or a
//! client-facing and a backend-facing one (two-armed). A frame leaves through the port its next
//! hop's route names; when that is not the port it arrived on, it is copied into a frame of the
//! other port (AF_XDP sockets of two interfaces do not share frame memory). With several workers
//! ([`Worker::with_sharding`]), a frame another worker owns — a reply RSS put on the wrong queue
//! — is handed over first ([`crate::handoff`]).

use std::sync::Arc;

use sluice_lb::engine::{Config as L4Config, Hold, L4, Prepared, Verdict};
use sluice_model::counters::{self, Counter, Counters, Gauge};
use sluice_model::service::ServiceTable;
use sluice_model::{Addr, DropReason};
use sluice_port::{Desc, Port};
use sluice_wire::ethernet::{self, Mac};

use crate::fastpath::{FastCommand, FastQueue, FastReport, FastReports};
use crate::handoff::Sharding;
use crate::nexthop::NextHops;
use sluice_lb::engine::FastEvent;
use sluice_lb::flow::{Dir, Flow};
use sluice_xsk::fastpath::{FastEntry, FastKey};

/// The most ports one worker serves.
pub const MAX_PORTS: usize = 2;

/// Frames per batch.
pub const BATCH: usize = 64;

/// Frames a worker holds while the MAC address of their next hop is resolved (as the kernel's
/// ARP queue does), instead of dropping the first packet of every flow to a new neighbour.
pub const PARKED: usize = BATCH;

/// How long a parked frame waits for its next hop before it is dropped (ns).
pub const PARK_NS: u64 = 1_000_000_000;

/// Frames a worker holds for the L4 engine ([`Verdict::Defer`]: a client's segment of a
/// connection opened through a SYN cookie, before the backend answered), run again on every poll
/// until the engine takes them or [`sluice_lb::engine::DEFER_NS`] passes.
pub const DEFERRED: usize = BATCH;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The MAC address frames are sent from.
    pub mac: Mac,
    /// L4 engine settings.
    pub l4: L4Config,
}

/// One worker. See the module documentation.
pub struct Worker {
    l4: L4,
    next_hops: NextHops,
    /// Each port's MAC address.
    macs: [Mac; MAX_PORTS],
    /// The worker's own counters (its engine keeps its own: [`Worker::counters`] sums them).
    counters: Counters,
    sharding: Option<Sharding>,
    rx: [Desc; BATCH],
    prepared: [Prepared; BATCH],
    /// Per port: frames to transmit (a batch, and the segments the engine asked to send ahead of
    /// its frames: at most two each).
    tx: [[Desc; 3 * BATCH]; MAX_PORTS],
    ntx: [usize; MAX_PORTS],
    kernel: [Desc; BATCH],
    dropped: [Desc; BATCH],
    /// Frames waiting for a next hop: (frame, the port it is held in, destination, deadline).
    parked: [(Desc, u8, Addr, u64); PARKED],
    nparked: usize,
    /// Frames the engine deferred: (frame, the port it is held in, deadline, why).
    deferred: [(Desc, u8, u64, Hold); DEFERRED],
    ndeferred: usize,
    /// The peers' store's version when the deferred frames last ran ([`L4::peer_version`]).
    peer_version: u64,
    /// Frames handed in, copied into the ports' frames, by port.
    mail: [[Desc; BATCH]; MAX_PORTS],
    /// The installer's queue, with the fast path.
    fast: Option<FastQueue>,
    /// What the installer read back, with the fast path.
    fast_reports: Option<FastReports>,
    /// A removal did not fit in the queue: everything is to be removed once it does.
    fast_clear_pending: bool,
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
            macs: [config.mac; MAX_PORTS],
            counters: Counters::default(),
            sharding: None,
            rx: [Desc::default(); BATCH],
            prepared: [Prepared::default(); BATCH],
            tx: [[Desc::default(); 3 * BATCH]; MAX_PORTS],
            ntx: [0; MAX_PORTS],
            kernel: [Desc::default(); BATCH],
            dropped: [Desc::default(); BATCH],
            parked: [(Desc::default(), 0, Addr::default(), 0); PARKED],
            nparked: 0,
            deferred: [(Desc::default(), 0, 0, Hold::Backend); DEFERRED],
            ndeferred: 0,
            peer_version: 0,
            mail: [[Desc::default(); BATCH]; MAX_PORTS],
            fast: None,
            fast_reports: None,
            fast_clear_pending: false,
        }
    }

    /// Serves several ports, with these MAC addresses, in port order (at most [`MAX_PORTS`]).
    pub fn with_port_macs(mut self, macs: &[Mac]) -> Worker {
        for (m, mac) in self.macs.iter_mut().zip(macs) {
            *m = *mac;
        }
        self
    }

    /// Shares frames out with other workers (see [`crate::handoff`]).
    pub fn with_sharding(mut self, sharding: Sharding) -> Worker {
        self.sharding = Some(sharding);
        self
    }

    /// Adopts a new table generation (between polls).
    pub fn set_table(&mut self, table: Arc<ServiceTable>) {
        self.l4.set_table(table);
    }

    /// Routes and neighbours, to update from the control path.
    pub fn next_hops_mut(&mut self) -> &mut NextHops {
        &mut self.next_hops
    }

    /// The L4 engine, to set up before the first poll (its journal, flows carried over).
    pub fn l4_mut(&mut self) -> &mut L4 {
        &mut self.l4
    }

    /// The L4 engine (read-only).
    pub fn l4(&self) -> &L4 {
        &self.l4
    }

    /// Sends the engine's fast-path requests to `queue` ([`crate::fastpath`]): established
    /// flows are offered to the kernel's fast path. The engine must be configured with
    /// `fast_path`.
    pub fn with_fast_path(mut self, queue: FastQueue) -> Worker {
        self.fast = Some(queue);
        self
    }

    /// Takes what the installer read back from the kernel's map from `reports` (after each
    /// poll, [`crate::fastpath::REPORTS_PER_POLL`] at most): offloaded flows at their deadline
    /// kept or withdrawn by their kernel last-seen time, the kernel's frames and bytes counted.
    pub fn with_fast_reports(mut self, reports: FastReports) -> Worker {
        self.fast_reports = Some(reports);
        self
    }

    /// Hands what the installer read back to the engine (after a batch).
    fn take_fast_reports(&mut self, now_ns: u64) {
        let Some(reports) = &self.fast_reports else { return };
        for _ in 0..crate::fastpath::REPORTS_PER_POLL {
            let Some(r) = reports.pop() else { break };
            match r {
                FastReport::Seen { fwd, rev, last_seen_ns, frames, bytes } => {
                    self.l4.fast_forwarded(frames, bytes);
                    self.l4.fast_read_back(&fwd, &rev, last_seen_ns, now_ns);
                }
                FastReport::Counts { frames, bytes } => self.l4.fast_forwarded(frames, bytes),
            }
        }
    }

    /// The fast-path entry of `f`'s direction `dir`: the rewrite the engine applies, sent
    /// where this worker would send it. The direction's frames are taken to arrive on the port
    /// the other direction leaves from (routes are symmetric). `None` while a next hop's MAC
    /// address is unknown.
    pub fn fast_entry(&mut self, f: &Flow, dir: Dir) -> Option<(FastKey, FastEntry)> {
        self.fast_install(f, dir).map(|c| match c {
            FastCommand::Install(_, k, e) => (k, e),
            _ => unreachable!("fast_install makes installs"),
        })
    }

    /// The command that installs `f`'s direction `dir` ([`Self::fast_entry`]).
    fn fast_install(&mut self, f: &Flow, dir: Dir) -> Option<FastCommand> {
        let (dmac, out) = self.next_hops.resolve_on(&f.to(dir))?;
        let (_, arrival) = self.next_hops.resolve_on(&f.to(dir.other()))?;
        let smac = self.macs[usize::from(out)];
        let (k, e) = crate::fastpath::entry(f, dir, &crate::fastpath::Egress { dmac, smac, out, arrival });
        Some(FastCommand::Install(arrival, k, e))
    }

    /// Replaces the routes and neighbours. With the fast path, unless the new ones resolve
    /// every old destination the same way ([`NextHops::keeps`]: a new neighbour only), every
    /// entry goes (an entry carries its next hop's MAC address): the flows are offered again on
    /// their next packet.
    pub fn set_next_hops(&mut self, h: NextHops) {
        let keeps = h.keeps(&self.next_hops);
        self.next_hops = h;
        if self.fast.is_some() && !keeps {
            self.fast_reset();
        }
    }

    /// Takes every flow back from the fast path and asks for every entry to go.
    fn fast_reset(&mut self) {
        self.l4.fast_forget_all();
        let pushed = self.fast.as_ref().is_some_and(|q| q.push(FastCommand::Clear).is_ok());
        self.fast_clear_pending = !pushed;
    }

    /// Turns the engine's fast-path events into commands for the installer (after a batch).
    fn drain_fast(&mut self) {
        let Some(queue) = self.fast.clone() else {
            while self.l4.take_fast_event().is_some() {}
            return;
        };
        if self.fast_clear_pending && queue.push(FastCommand::Clear).is_ok() {
            self.fast_clear_pending = false;
        }
        let mut reset = false;
        while let Some(ev) = self.l4.take_fast_event() {
            let room = queue.capacity() - queue.len(); // one producer: only grows meanwhile
            match ev {
                FastEvent::Offer(id) => {
                    let f = *self.l4.flows().flow(id);
                    if !f.is_offloaded() {
                        continue; // withdrawn since, or another flow in its slot
                    }
                    let both = self.fast_install(&f, Dir::Forward).zip(self.fast_install(&f, Dir::Reverse));
                    match both {
                        Some((a, b)) if room >= 2 && !self.fast_clear_pending && !reset => {
                            let _ = queue.push(a);
                            let _ = queue.push(b);
                        }
                        _ => self.l4.fast_refused(id),
                    }
                }
                FastEvent::Withdraw(fwd, rev) if room >= 2 && !self.fast_clear_pending => {
                    let _ = queue.push(FastCommand::Remove(crate::fastpath::key(&fwd)));
                    let _ = queue.push(FastCommand::Remove(crate::fastpath::key(&rev)));
                }
                // No room: unanswered, the flow is withdrawn after the engine's wait. An ask
                // leaves the last two places to a withdrawal (which would otherwise become a
                // Clear). Behind a pending Clear it would be answered about entries being
                // removed: left out.
                FastEvent::Ask(fwd, rev) => {
                    if room >= 3 && !self.fast_clear_pending && !reset {
                        let _ = queue.push(FastCommand::Ask(fwd, rev));
                    }
                }
                // Lost, or no room to say it: everything goes, and every flow is ours again.
                FastEvent::Withdraw(..) | FastEvent::Clear => reset = true,
            }
        }
        if reset {
            self.fast_reset();
        }
    }

    /// Everything the worker has counted: its own I/O and drops, and its engine's.
    pub fn counters(&self) -> Counters {
        let mut all = self.counters.clone();
        all.merge(self.l4.counters());
        let flows = self.l4.flows();
        all[Gauge::Flows] = flows.len() as u64;
        all[Gauge::FlowCapacity] = flows.capacity() as u64;
        all
    }

    /// Whether the worker has work for its next polls even without frames (see
    /// [`sluice_lb::engine::L4::busy`]): it should poll on rather than sleep.
    pub fn busy(&self) -> bool {
        // A frame held for a flow-sync peer's record is retried at every poll for a few ms: the
        // worker does not sleep on it (a proxied segment, held for seconds, wakes it at its
        // backend's answer).
        self.l4.busy() || self.deferred[..self.ndeferred].iter().any(|e| e.3 == Hold::Peer)
    }

    /// Frames waiting for their next hop's MAC address.
    pub fn parked(&self) -> usize {
        self.nparked
    }

    /// Frames held for the engine ([`Verdict::Defer`]).
    pub fn deferred(&self) -> usize {
        self.ndeferred
    }

    /// Queues each port's transmit list; what a ring does not take is counted and freed.
    #[inline]
    fn transmit<P: Port>(&mut self, ports: &mut [P]) {
        for (p, port) in ports.iter_mut().enumerate().take(MAX_PORTS) {
            let n = std::mem::take(&mut self.ntx[p]);
            if n > 0 {
                let sent = port.send(&self.tx[p][..n]);
                self.counters[Counter::TxFrames] += sent as u64;
                self.counters.add_drops(DropReason::TxRingFull, (n - sent) as u64);
                port.release(&self.tx[p][sent..n]);
            }
        }
    }

    /// Sends frame `d`, held in port `from`, to `mac` through port `out`: in place when that is
    /// its own port, else copied into a frame of port `out` (a copy that finds no free frame is
    /// dropped and counted). Returns false when `d` is still the caller's to release.
    #[inline]
    fn forward<P: Port>(&mut self, ports: &mut [P], from: usize, d: Desc, mac: Mac, out: usize) -> bool {
        if out == from || out >= ports.len().min(MAX_PORTS) {
            let mut eth = ethernet::Frame::new_unchecked(ports[from].frame(&d));
            eth.set_dst(mac);
            eth.set_src(self.macs[from]);
            self.tx[from][self.ntx[from]] = d;
            self.ntx[from] += 1;
            return true;
        }
        let mut fresh = [Desc::default()];
        if ports[out].alloc(&mut fresh) == 0 {
            self.counters.add_drops(DropReason::NoFrame, 1);
            return false;
        }
        let mut copy = fresh[0];
        copy.len = d.len.min(copy.len);
        let (a, b) = pair(ports, from, out);
        let src = a.frame(&d);
        let dst = b.frame(&copy);
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        let mut eth = ethernet::Frame::new_unchecked(dst);
        eth.set_dst(mac);
        eth.set_src(self.macs[out]);
        self.tx[out][self.ntx[out]] = copy;
        self.ntx[out] += 1;
        self.counters[Counter::PortCopies] += 1;
        false
    }

    /// Queues a segment the engine asked for ([`L4::take_extra`]), in a fresh frame, ahead of the
    /// frames queued after it (the new SYN a RST clears the way for). Without a free frame, a
    /// known next hop or room in the transmit list it is not sent (counted as `extras_unsent`).
    #[cold]
    fn send_extra<P: Port>(&mut self, ports: &mut [P], e: &sluice_lb::synproxy::Segment) {
        let Some((mac, out)) = self.next_hops.resolve_on(&e.dst.0) else {
            self.counters[Counter::ExtrasUnsent] += 1;
            return;
        };
        let out = usize::from(out).min(ports.len().min(MAX_PORTS) - 1);
        let mut fresh = [Desc::default()];
        if self.ntx[out] >= self.tx[out].len() || ports[out].alloc(&mut fresh) == 0 {
            self.counters[Counter::ExtrasUnsent] += 1;
            return;
        }
        let mut d = fresh[0];
        let buf = ports[out].frame(&d);
        if buf.len() < sluice_lb::synproxy::FRAME_MAX {
            ports[out].release(&[d]);
            self.counters[Counter::ExtrasUnsent] += 1;
            return;
        }
        d.len = sluice_lb::synproxy::emit_frame(buf, e, mac, self.macs[out]) as u32;
        self.tx[out][self.ntx[out]] = d;
        self.ntx[out] += 1;
        self.counters[Counter::ExtrasSent] += 1;
    }

    /// Sends the parked frames whose next hop is now known, drops those that waited too long.
    #[cold]
    fn flush_parked<P: Port>(&mut self, ports: &mut [P], now_ns: u64) {
        let mut keep = 0;
        for i in 0..self.nparked {
            let (d, from, dst, deadline) = self.parked[i];
            let from = usize::from(from);
            if let Some((mac, out)) = self.next_hops.resolve_on(&dst) {
                if !self.forward(ports, from, d, mac, usize::from(out)) {
                    ports[from].release(&[d]);
                }
            } else if now_ns >= deadline {
                self.counters.add_drops(DropReason::NeighborUnresolved, 1);
                ports[from].release(&[d]);
            } else {
                self.parked[keep] = self.parked[i];
                keep += 1;
            }
        }
        self.nparked = keep;
        self.transmit(ports);
    }

    /// Runs the deferred frames through the engine again: forwards those it now takes, keeps
    /// those it defers again until their deadline, drops the rest.
    #[cold]
    fn retry_deferred<P: Port>(&mut self, ports: &mut [P], now_ns: u64) {
        // A frame held for a peer's record can only be taken once the sync thread has stored
        // a record since it was last run: until then it waits, to its deadline, untouched.
        let version = self.l4.peer_version();
        let peers_moved = version != self.peer_version;
        self.peer_version = version;
        let mut keep = 0;
        for i in 0..self.ndeferred {
            let (mut d, from, deadline, why) = self.deferred[i];
            if why == Hold::Peer && !peers_moved && now_ns < deadline {
                self.deferred[keep] = self.deferred[i];
                keep += 1;
                continue;
            }
            let p = usize::from(from);
            let prepared = self.l4.prepare(ports[p].frame(&d));
            let v = self.l4.finish(ports[p].frame_room(&d), &prepared, now_ns);
            if let Some(n) = self.l4.take_resized() {
                d.len = n as u32;
            }
            while let Some(e) = self.l4.take_extra() {
                self.send_extra(ports, &e);
            }
            match v {
                Verdict::Forward(next) => match self.next_hops.resolve_on(&next) {
                    Some((mac, out)) => {
                        if !self.forward(ports, p, d, mac, usize::from(out)) {
                            ports[p].release(&[d]);
                        }
                    }
                    None => {
                        self.counters.add_drops(DropReason::NeighborUnresolved, 1);
                        ports[p].release(&[d]);
                    }
                },
                Verdict::Defer(_) if now_ns < deadline => {
                    self.deferred[keep] = (d, from, deadline, why);
                    keep += 1;
                }
                Verdict::Defer(_) => {
                    self.counters.add_drops(why.drop_reason(), 1);
                    ports[p].release(&[d]);
                }
                Verdict::Bounce | Verdict::Pass | Verdict::Drop(_) => ports[p].release(&[d]),
            }
        }
        self.ndeferred = keep;
        self.transmit(ports);
    }

    /// Runs one batch on a single port: returns how many frames were received. `now_ns` is
    /// read once per batch.
    pub fn poll(&mut self, port: &mut impl Port, now_ns: u64) -> usize {
        self.poll_ports(std::slice::from_mut(port), now_ns)
    }

    /// Runs one batch on each port (and on the frames other workers handed over): returns how
    /// many frames were received. `now_ns` is read once per poll.
    pub fn poll_ports<P: Port>(&mut self, ports: &mut [P], now_ns: u64) -> usize {
        let nports = ports.len().min(MAX_PORTS);
        if nports == 0 {
            return 0;
        }
        if self.ndeferred > 0 {
            self.retry_deferred(ports, now_ns);
        }
        if self.nparked > 0 {
            self.flush_parked(ports, now_ns);
        }
        let mut total = 0;
        if self.sharding.is_some() {
            total += self.take_mail(ports, now_ns);
        }
        for p in 0..nports {
            // No more than every port can send: a frame processed and then dropped for a full
            // transmit ring is work for nothing (in the receive ring it costs nothing).
            let room = tx_room(ports);
            if room == 0 {
                self.counters[Counter::TxWaits] += 1;
                continue;
            }
            let n = ports[p].recv(&mut self.rx[..room]);
            if n > 0 {
                total += n;
                self.counters[Counter::RxFrames] += n as u64;
                self.run_batch(ports, p, n, now_ns, true);
            }
        }
        self.l4.maintain(now_ns);
        // What maintenance had to say (RSTs to the clients of a backend that stopped answering).
        let mut extras = false;
        while let Some(e) = self.l4.take_extra() {
            self.send_extra(ports, &e);
            extras = true;
        }
        if extras {
            self.transmit(ports);
        }
        self.take_fast_reports(now_ns);
        self.drain_fast();
        total
    }

    /// Frames other workers handed over: each copied into a frame of the port it arrived on
    /// and run like a frame received there (never handed on again).
    #[cold]
    fn take_mail<P: Port>(&mut self, ports: &mut [P], now_ns: u64) -> usize {
        // Taken out for the drain and put back (a move): cloning the `Arc` would write its count,
        // a cache line every worker shares, on every poll.
        let Some(sharding) = self.sharding.take() else { return 0 };
        let (me, boxes) = (sharding.me, &sharding.mailboxes);
        let nports = ports.len().min(MAX_PORTS);
        let mut counts = [0usize; MAX_PORTS];
        // As for received frames: no more than every port can send (the rest wait in the box).
        let room = tx_room(ports);
        let mut taken = 0;
        while taken < room {
            let Some(parcel) = boxes.receive(me) else { break };
            taken += 1;
            let p = usize::from(parcel.port).min(nports - 1);
            let mut fresh = [Desc::default()];
            if ports[p].alloc(&mut fresh) == 0 {
                self.counters.add_drops(DropReason::NoFrame, 1);
            } else {
                let mut d = fresh[0];
                let len = usize::from(parcel.len).min(d.len as usize);
                ports[p].frame(&d)[..len].copy_from_slice(&parcel.data[..len]);
                d.len = len as u32;
                self.mail[p][counts[p]] = d;
                counts[p] += 1;
            }
            boxes.recycle(me, parcel);
        }
        self.sharding = Some(sharding);
        for (p, &n) in counts.iter().enumerate().take(nports) {
            if n > 0 {
                self.rx[..n].copy_from_slice(&self.mail[p][..n]);
                self.counters[Counter::HandedIn] += n as u64;
                self.run_batch(ports, p, n, now_ns, false);
            }
        }
        taken
    }

    /// Runs `self.rx[..n]`, received on port `p`, through the pipeline.
    fn run_batch<P: Port>(
        &mut self,
        ports: &mut [P],
        p: usize,
        mut n: usize,
        now_ns: u64,
        may_hand_off: bool,
    ) {
        self.counters[Counter::Batches] += 1;
        // The frames were written by the kernel, often on another core: read every frame's
        // first line before parsing any, so that their cache misses overlap instead of stalling
        // each parse in turn. Loads, not prefetch hints: a burst of 64 hints overflows the
        // core's miss buffers and most are dropped (measured: the first read of each frame
        // stayed the worker's largest stall behind them); loads wait for a buffer instead.
        let mut first = 0u8;
        for i in 0..n {
            first ^= ports[p].frame(&self.rx[i]).get(12).copied().unwrap_or(0);
        }
        std::hint::black_box(first);
        for i in 0..n {
            let d = self.rx[i];
            self.counters[Counter::RxBytes] += u64::from(d.len);
            self.prepared[i] = self.l4.prepare(ports[p].frame(&d));
        }
        if may_hand_off && self.sharding.is_some() {
            n = self.hand_off(ports, p, n);
        }
        for prep in &mut self.prepared[..n] {
            self.l4.prefetch_flow(prep);
        }
        let (mut nk, mut nd) = (0, 0);
        for i in 0..n {
            let mut d = self.rx[i];
            let frame = ports[p].frame_room(&d);
            let verdict = self.l4.finish(frame, &self.prepared[i], now_ns);
            if let Some(len) = self.l4.take_resized() {
                d.len = len as u32;
            }
            while let Some(e) = self.l4.take_extra() {
                self.send_extra(ports, &e);
            }
            let frame = ports[p].frame(&d);
            match verdict {
                Verdict::Forward(next) => match self.next_hops.resolve_on(&next) {
                    Some((mac, out)) => {
                        if !self.forward(ports, p, d, mac, usize::from(out)) {
                            self.dropped[nd] = d;
                            nd += 1;
                        }
                    }
                    None if self.nparked < PARKED => {
                        self.parked[self.nparked] = (d, p as u8, next, now_ns + PARK_NS);
                        self.nparked += 1;
                        self.counters[Counter::Parked] += 1;
                    }
                    None => {
                        self.counters.add_drops(DropReason::NeighborUnresolved, 1);
                        self.dropped[nd] = d;
                        nd += 1;
                    }
                },
                Verdict::Bounce => {
                    let mut eth = ethernet::Frame::new_unchecked(frame);
                    eth.swap_macs();
                    eth.set_src(self.macs[p]);
                    self.tx[p][self.ntx[p]] = d;
                    self.ntx[p] += 1;
                }
                Verdict::Pass => {
                    let answered = match self.prepared[i].parsed() {
                        Ok(parsed) => sluice_lb::vip::answer(frame, parsed, self.l4.table(), self.macs[p]),
                        Err(_) => None,
                    };
                    if let Some((asker, asker_mac)) = answered {
                        if asker.0 != [0; 16] {
                            // Who asks for a VIP is about to send to it: learn where the replies go.
                            self.next_hops.learn_on(p as u8, asker, asker_mac);
                        }
                        self.counters[Counter::NeighborReplies] += 1;
                        self.tx[p][self.ntx[p]] = d;
                        self.ntx[p] += 1;
                    } else {
                        self.kernel[nk] = d;
                        nk += 1;
                    }
                }
                Verdict::Drop(_) => {
                    self.dropped[nd] = d;
                    nd += 1;
                }
                Verdict::Defer(why) if self.ndeferred < DEFERRED => {
                    self.deferred[self.ndeferred] = (d, p as u8, now_ns + why.hold_ns(), why);
                    self.ndeferred += 1;
                    self.counters[why.counter()] += 1;
                }
                Verdict::Defer(why) => {
                    self.counters.add_drops(why.drop_reason(), 1);
                    self.dropped[nd] = d;
                    nd += 1;
                }
            }
        }
        self.transmit(ports);
        if nk > 0 {
            let taken = ports[p].to_kernel(&self.kernel[..nk]);
            self.counters[Counter::KernelFrames] += taken as u64;
            self.counters.add_drops(DropReason::KernelPathFull, (nk - taken) as u64);
            ports[p].release(&self.kernel[taken..nk]);
        }
        if nd > 0 {
            ports[p].release(&self.dropped[..nd]);
        }
    }

    /// Hands the frames of `self.rx[..n]` (received on port `p`) that another worker owns to
    /// it, and keeps the rest, in order, at the front; returns how many were kept.
    fn hand_off<P: Port>(&mut self, ports: &mut [P], p: usize, n: usize) -> usize {
        let Some(sharding) = self.sharding.as_ref() else { return n };
        let table = self.l4.table();
        let mut kept = 0;
        let (mut nd, mut full) = (0, 0);
        let mut rung = 0u64;
        for i in 0..n {
            let owner = match self.prepared[i].parsed() {
                Ok(sluice_lb::packet::Parsed::Ip(m))
                    if m.proto == sluice_wire::ip_proto::TCP || m.proto == sluice_wire::ip_proto::UDP =>
                {
                    let proto = if m.proto == sluice_wire::ip_proto::TCP {
                        sluice_model::service::Protocol::Tcp
                    } else {
                        sluice_model::service::Protocol::Udp
                    };
                    let to_frontend = table.lookup(&m.dst, m.dport, proto).is_some();
                    sharding.owner(&m.src, &m.dst, m.dport, to_frontend)
                }
                _ => sharding.me,
            };
            if owner == sharding.me {
                self.rx[kept] = self.rx[i];
                self.prepared[kept] = self.prepared[i];
                kept += 1;
                continue;
            }
            let d = self.rx[i];
            if sharding.mailboxes.send(owner, p as u8, ports[p].frame(&d)) {
                self.counters[Counter::HandedOff] += 1;
                rung |= 1 << (owner % 64);
            } else {
                full += 1;
            }
            self.dropped[nd] = d;
            nd += 1;
        }
        while rung != 0 {
            sharding.mailboxes.ring(rung.trailing_zeros() as usize);
            rung &= rung - 1;
        }
        self.counters.add_drops(DropReason::HandoffFull, full as u64);
        if nd > 0 {
            ports[p].release(&self.dropped[..nd]);
        }
        kept
    }

    /// [`Worker::counters`] as the worker publishes them to the table file's stats region.
    pub fn export_stats(&self) -> [u64; counters::LEN] {
        self.counters().export()
    }

    /// Where the worker would send a packet for `dst` (diagnostics).
    pub fn next_hop(&self, dst: &Addr) -> Option<Addr> {
        self.next_hops.next_hop(dst)
    }
}

/// How many frames, up to a batch, every port can still transmit.
#[inline]
fn tx_room<P: Port>(ports: &mut [P]) -> usize {
    ports.iter_mut().take(MAX_PORTS).fold(BATCH, |room, port| room.min(port.tx_room(BATCH)))
}

/// Two distinct ports of a slice, mutably.
fn pair<P>(ports: &mut [P], a: usize, b: usize) -> (&mut P, &mut P) {
    if a < b {
        let (x, y) = ports.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = ports.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
