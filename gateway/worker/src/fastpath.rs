//! The worker's side of the XDP fast path: which flows may be forwarded by the kernel, and the
//! map entry of one flow direction — the same rewrite the L4 engine applies to that direction
//! ([`sluice_lb::nat::fixed_rewrite`]), the MAC addresses the worker would write, and the port
//! it would send from. `bpf/steer.c` applies the entry; `gateway/worker/tests/fastpath.rs`
//! holds the program's output to the worker's, byte for byte.
//!
//! Not hot path: entries are built when a flow is installed, off the per-packet path.

use sluice_lb::flow::{Dir, Flow, FlowState};
use sluice_lb::nat;
use sluice_model::service::BackendId;
use sluice_wire::ethernet::Mac;
use sluice_xsk::fastpath::{FAST_TX, FastEntry, FastKey};

/// Whether the kernel may forward this flow's packets: an established TCP connection not
/// opened through a SYN cookie (a proxied flow's sequence numbers are shifted, which the
/// program does not do), or a UDP flow the backend has answered; with a backend in the current
/// table (an orphan's packets stay in user space, which decides when it ends).
pub fn offloadable(f: &Flow) -> bool {
    let state = match f.state {
        FlowState::Established => !f.is_proxied(),
        FlowState::UdpReplied => true,
        _ => false,
    };
    state && f.backend != BackendId::NONE
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
    let key = FastKey::new(from.src.0, from.sport, from.dst.0, from.dport, from.proto);
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
