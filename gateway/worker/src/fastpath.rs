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
    /// Remove one direction's entry, from every port's map (absent is fine: the program
    /// removes a direction's entry itself when it hands back a FIN or RST).
    Remove(FastKey),
    /// Remove every entry from every map.
    Clear,
}

/// The queue from a worker to its installer: one producer (the worker), one consumer.
pub type FastQueue = Arc<ArrayQueue<FastCommand>>;

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
