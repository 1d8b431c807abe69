//! The worker's side of the XDP fast path: which flows may be forwarded by the kernel, and the
//! map entry of one flow direction — the same rewrite the L4 engine applies to that direction
//! ([`sluice_lb::nat::fixed_rewrite`]), the MAC addresses the worker would write, and the port
//! it would send from. `bpf/steer.c` applies the entry; `gateway/worker/tests/fastpath.rs`
//! holds the program's output to the worker's, byte for byte.
//!
//! **Installing.** The engine marks a flow offloaded and queues an offer when it becomes
//! [`Flow::offloadable`]; it queues a withdrawal when such a flow goes away or comes back
//! ([`sluice_lb::engine::FastEvent`]). After each batch the worker turns them into
//! [`FastCommand`]s on a bounded queue ([`FastQueue`]) that an installer thread applies to the
//! map with system calls the worker never makes; the order of the queue is the order of the
//! events, so a tuple's removal always precedes its reinstallation. A full queue refuses an
//! offer (the flow stays on the AF_XDP path and is offered again) and turns a removal into
//! [`FastCommand::Clear`], as soon as there is room: an entry the engine no longer stands
//! behind never stays.
//!
//! **Reading back.** At an offloaded flow's deadline the engine asks for the kernel's view
//! ([`FastCommand::Ask`]); the installer reads both entries' counters and last-seen time and
//! answers on a second bounded queue, the other way ([`FastReports`]: the installer the one
//! producer, the worker the one consumer), with a [`FastReport`] the worker hands to its
//! engine after a batch ([`sluice_lb::engine::L4::fast_read_back`]): a live flow stays in the
//! kernel, an idle one is withdrawn. Every entry the installer removes is read first, so the
//! frames and bytes the kernel forwarded reach the worker's counters too (`fast_frames`,
//! `fast_bytes`). No lock on either side: a lock-free queue each way.
//!
//! Not hot path: entries are built after a batch, off the per-packet path.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use sluice_lb::flow::{Dir, Flow, FlowKey};
use sluice_lb::nat;
use sluice_wire::ethernet::Mac;
use sluice_xsk::fastpath::{FAST_TX, FastEntry, FastKey};

/// Whether the kernel may forward this flow's packets ([`Flow::offloadable`]; the engine also
/// requires the current generation).
pub fn offloadable(f: &Flow) -> bool {
    f.offloadable()
}

/// What the worker asks of the installer, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastCommand {
    /// Install (or replace) one direction's entry in the map of the program on port `.0`: the
    /// port the direction's frames arrive on (each interface's program has its own map).
    Install(u8, FastKey, FastEntry),
    /// Remove one direction's entry, from every port's map (absent is fine: a `Clear` may
    /// have taken it; the program only marks an entry closing, see `FAST_CLOSING`).
    Remove(FastKey),
    /// Remove every entry from every map.
    Clear,
    /// Read back the entries of the flow with these forward and reverse keys (it reached its
    /// deadline) and answer with [`FastReport::Seen`].
    Ask(FlowKey, FlowKey),
}

/// The queue from a worker to its installer: one producer (the worker), one consumer.
pub type FastQueue = Arc<ArrayQueue<FastCommand>>;

/// What the installer read back from the kernel's map, for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastReport {
    /// The answer to [`FastCommand::Ask`]: the later last-seen time of the flow's two entries
    /// (CLOCK_MONOTONIC, ns; 0 when neither forwarded a frame or they are gone), and the frames
    /// and bytes they forwarded since the installer last read them.
    Seen {
        /// The flow's forward key, as asked.
        fwd: FlowKey,
        /// Its reverse key, as asked.
        rev: FlowKey,
        /// The later `last_seen_ns` of the two entries.
        last_seen_ns: u64,
        /// Frames forwarded since the last read.
        frames: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// Frames and bytes forwarded by entries the installer removed (or replaced), since it last
    /// read them.
    Counts {
        /// Frames.
        frames: u64,
        /// Bytes.
        bytes: u64,
    },
}

/// The queue from the installer back to a worker: one producer (the installer), one consumer.
pub type FastReports = Arc<ArrayQueue<FastReport>>;

/// How many [`FastReport`]s a worker takes after one poll: a bound on the work between batches.
pub const REPORTS_PER_POLL: usize = 256;

/// The map key of a flow key.
pub fn key(k: &FlowKey) -> FastKey {
    FastKey::new(k.src.0, k.sport, k.dst.0, k.dport, k.proto)
}

/// Where frames of one flow direction leave: the next hop's MAC, the port (and its MAC) the
/// worker would send from, and the port the direction's frames arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    /// The next hop's MAC address.
    pub dmac: Mac,
    /// The sending port's MAC address.
    pub smac: Mac,
    /// The sending port.
    pub out: u8,
    /// The port the direction's frames arrive on: when it is `out`, the program answers with
    /// `XDP_TX`; otherwise it redirects to `fast_tx[out]`.
    pub arrival: u8,
}

/// The key and entry of `f`'s direction `dir` (the packets [`Dir::Forward`]: client →
/// service, as they arrive), as [`sluice_lb::engine`] rewrites them.
pub fn entry(f: &Flow, dir: Dir, egress: &Egress) -> (FastKey, FastEntry) {
    let (from, to) = match dir {
        Dir::Forward => (f.fwd, (f.rev.dst, f.rev.dport, f.rev.src, f.rev.sport)),
        Dir::Reverse => (f.rev, (f.fwd.dst, f.fwd.dport, f.fwd.src, f.fwd.sport)),
    };
    let fx = nat::fixed_rewrite(from.src.family(), (from.src, from.sport, from.dst, from.dport), to);
    let key = key(&from);
    let e = FastEntry {
        src: fx.src.0,
        dst: fx.dst.0,
        sport_be: fx.sport.to_be(),
        dport_be: fx.dport.to_be(),
        ip_delta_be: fx.ip_delta.to_be(),
        l4_delta_be: fx.l4_delta.to_be(),
        dmac: egress.dmac,
        smac: egress.smac,
        flags: if egress.out == egress.arrival { FAST_TX } else { 0 },
        tx_port: u32::from(egress.out),
        ..FastEntry::default()
    };
    (key, e)
}
