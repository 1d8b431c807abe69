//! The L4 engine: one per worker. A frame goes in, is rewritten in place, and a [`Verdict`] comes
//! out.
//!
//! Per packet: parse ([`crate::packet`]), find the flow by its key (either direction), or — for a
//! packet to a service with no flow yet — pick a backend (affinity, then the service's
//! scheduler), choose the NAT tuple (an SNAT port for FullNAT), insert the flow and rewrite
//! ([`crate::nat`]). ICMP echo to a service address is answered; ICMP errors quoting a tracked
//! flow are translated to the other side. Anything that is not ours is passed to the kernel.
//!
//! **Table changes.** [`L4::set_table`] swaps the table at a batch boundary. A flow created under
//! an older generation is re-validated on its next packet: its backend is looked up by address
//! and port in the service that now owns its frontend. If it is still there (ready, terminating or
//! not ready: it *exists*) the flow keeps it; that is how established connections survive endpoint
//! changes and Maglev rebuilds. If the backend has left the service, the flow becomes an
//! *orphan*: a TCP flow still goes to the same backend until it closes or expires — the endpoint
//! may well still be serving (a blue/green switch of the Service's selector removes the old pods'
//! endpoints while the pods finish their requests), and that is what kube-proxy does too, its
//! conntrack entries outliving the endpoint; a UDP flow starts over with a new backend, as
//! kube-proxy's conntrack cleanup does for UDP, and late datagrams from the old backend are
//! dropped (`backend_gone`).
//!
//! **Mid-stream TCP.** A non-SYN segment with no flow is adopted only when the service's
//! scheduler is consistent (Maglev, sh, dh) *and* the NAT mode is DNAT: then the backend chosen
//! is the one the flow had (on this node or another), and the backend sees the same 4-tuple.
//! Under FullNAT the SNAT port could not be the same, so such segments are dropped and counted.
//!
//! **SYN cookies.** With a cookie key ([`Config::syn_cookie_key`]), an ACK to a frontend with no
//! flow whose acknowledgement is a valid cookie (the XDP program answered the client's SYN) opens
//! the connection to a backend through [`crate::synproxy`]; the flow is proxied (its backend's
//! sequence numbers shifted) for its whole life.
//!
//! Time is passed in (`now_ns`, read once per batch by the caller; CLOCK_MONOTONIC in
//! production, the XDP program's clock, which a cookie's time slot is read from). Hot path: yes. No
//! allocation, no I/O, no locks; [`L4::set_table`] allocates the new scheduler state and is
//! called off the per-packet path.
//!
//! Known limits: IP fragments are dropped (counted), not reassembled; a service with no eligible
//! endpoint drops new flows (counted) where kube-proxy would reject them with ICMP/RST.

use std::sync::Arc;

use crate::affinity::{AffinityTable, SnatPorts};
use crate::flow::{Dir, Flow, FlowId, FlowKey, FlowState, FlowTable, Hint, ReadBack, Swept, Timeouts};
use crate::nat::{self, IcmpTranslation};
use crate::packet::{self, Meta, Parsed, TcpSegment};
use crate::peers::PeerFlows;
use crate::sched::{PickInput, SchedState};
use crate::synproxy;
use sluice_model::addr::Addr;
use sluice_model::counters::{Counter, Counters};
use sluice_model::drop::DropReason;
use sluice_model::hash;
use sluice_model::ports::{self, PortRange};
use sluice_model::service::{BackendId, Generation, NatMode, Protocol, ServiceId, ServiceTable};
use sluice_model::syncookie::{self, Handshake};
use sluice_wire::ip_proto;
use sluice_wire::tcp::flags;

/// What to do with a frame after [`L4::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten; transmit it towards this next-hop address (the caller resolves the MAC).
    Forward(Addr),
    /// Rewritten as a reply; send it back the way it came (swap the Ethernet addresses).
    Bounce,
    /// Not ours: hand it to the kernel unchanged.
    Pass,
    /// Drop it, for this reason.
    Drop(DropReason),
    /// Hold it and run it again later, for as long as [`Hold::hold_ns`] says, then drop it as
    /// [`Hold::drop_reason`] says.
    Defer(Hold),
}

/// Why a frame is held ([`Verdict::Defer`]), which says for how long and what its drop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A client's segment of a proxied flow whose backend has not answered the gateway's SYN
    /// yet.
    Backend,
    /// A steered frame no flow claims, here or at a flow-sync peer, that may be ahead of its
    /// flow's record ([`PEER_WAIT_NS`]).
    Peer,
}

impl Hold {
    /// How long the caller holds the frame at most (ns).
    pub fn hold_ns(self) -> u64 {
        match self {
            Hold::Backend => DEFER_NS,
            Hold::Peer => PEER_WAIT_NS,
        }
    }

    /// What the frame counts as when it is dropped after that.
    pub fn drop_reason(self) -> DropReason {
        match self {
            Hold::Backend => DropReason::SynProxyPending,
            Hold::Peer => DropReason::NoFlowForSegment,
        }
    }

    /// What the frame counts as when it is taken to be held.
    pub fn counter(self) -> Counter {
        match self {
            Hold::Backend => Counter::SynProxyDeferred,
            Hold::Peer => Counter::HeldForPeers,
        }
    }
}

/// How long a caller holds a [`Verdict::Defer`]red frame before it drops it: long enough for
/// several of the gateway's SYN retries ([`PROXY_SYN_RETRY_NS`]) — a dropped request costs the
/// client a retransmission timeout that doubles each time.
pub const DEFER_NS: u64 = 3_000_000_000;

/// How long a caller holds a frame the engine deferred for a flow-sync peer's record
/// ([`Hold::Peer`]): a reply that crossed this node before the record of its flow, sent by
/// the node that opened it (a DNAT backend's SYN-ACK reaching the backends' router node, which
/// is not the node the client's SYN crossed). The sync sends a new flow's record within a few
/// ms (20 ms from an idle gateway); past this the frame is dropped, and the sender's
/// retransmission finds the flow.
pub const PEER_WAIT_NS: u64 = 100_000_000;

/// A proxied flow's SYN to its backend is sent again by a client segment — a new one, or one held
/// and run again — this long after the last (a backend is a LAN away: waiting the second a
/// client's stack waits would cost the client its own retransmissions).
pub const PROXY_SYN_RETRY_NS: u64 = 250_000_000;

/// Engine settings, fixed at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Flow-table capacity (flows, both directions indexed).
    pub flow_capacity: usize,
    /// Affinity-table capacity (client, service) entries.
    pub affinity_capacity: usize,
    /// This worker's SNAT source ports (its share of the gateway's range: shares of different
    /// workers do not overlap, so a reply's port names the worker that owns its flow).
    pub snat_ports: PortRange,
    /// Flow timeouts.
    pub timeouts: Timeouts,
    /// Seed for table placement (random per worker in production).
    pub seed: u64,
    /// Flow-table slots examined for expiry per [`L4::maintain`] call.
    pub sweep_budget: usize,
    /// The SYN cookie key the XDP program makes cookies with (`None`: cookies are not checked,
    /// and an ACK without a flow is handled as before).
    pub syn_cookie_key: Option<[u64; 2]>,
    /// Whether established flows are offered to the kernel's fast path ([`L4::take_fast_event`]).
    pub fast_path: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            flow_capacity: 1 << 20,
            affinity_capacity: 1 << 16,
            snat_ports: ports::SNAT_DEFAULT,
            timeouts: Timeouts::default(),
            seed: 0x51_u64,
            sweep_budget: 16,
            syn_cookie_key: None,
            fast_path: false,
        }
    }
}

/// How many SNAT candidates a new flow tries before giving up.
pub const SNAT_ATTEMPTS: usize = 32;

/// How many SNAT addresses of a service's pool a new flow tries before giving up.
pub const SNAT_POOL_TRIES: usize = 8;

/// After this many taken candidates, a new flow takes the tuple of the first one that never saw
/// a reply instead of searching on (bounds a SYN flood's cost per packet).
pub const SNAT_EARLY_DROP_AFTER: usize = 2;

/// A frame parsed and hashed, ready for [`L4::finish`]. Preparing a whole batch first lets the
/// flow-table loads of different frames overlap.
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    parsed: Result<Parsed, DropReason>,
    hash: u64,
    /// The service, when [`L4::prefetch_flow`] looked it up (`Some(None)`: there is none).
    service: Option<Option<ServiceId>>,
    /// [`FlowKey::stable_hash`] of the key, when computed (0: not yet).
    tuple_hash: u64,
    /// The index entry [`L4::prefetch_flow`] found, to try first.
    hint: Option<Hint>,
}

impl Prepared {
    fn new(parsed: Result<Parsed, DropReason>, hash: u64) -> Prepared {
        Prepared { parsed, hash, service: None, tuple_hash: 0, hint: None }
    }

    /// What the frame parsed as (or why it did not).
    pub fn parsed(&self) -> &Result<Parsed, DropReason> {
        &self.parsed
    }
}

impl Default for Prepared {
    fn default() -> Prepared {
        Prepared::new(Err(DropReason::TruncatedEthernet), 0)
    }
}

/// The L4 engine of one worker.
pub struct L4 {
    table: Arc<ServiceTable>,
    flows: FlowTable,
    affinity: AffinityTable,
    sched: SchedState,
    snat: SnatPorts,
    timeouts: Timeouts,
    sweep_budget: usize,
    counters: Counters,
    cookie_key: Option<[u64; 2]>,
    fast: FastEvents,
    /// Flow-table slots left to examine in the pass a table change started (fast path only).
    rescan: usize,
    /// The new length of the frame the last [`L4::finish`] rewrote into a segment of another
    /// length (a proxied flow's handshake), until taken.
    resized: Option<usize>,
    /// Segments to send, in order, before the frame the last [`L4::finish`] processed, until
    /// taken: at most a RST clearing a reclaimed tuple and the proxied SYN that follows it.
    extras: Extras,
    /// Backends whose address stopped answering ([`L4::backend_unreachable`]): their flows are
    /// being ended, in a pass over the flow table.
    unreachable: Unreachable,
    /// The flows other gateways forward ([`crate::peers`]), looked at when the flow table
    /// misses.
    peers: Option<Arc<PeerFlows>>,
}

/// The pass over the flow table that ends the flows of backends that stopped answering.
#[derive(Debug, Default)]
struct Unreachable {
    /// The backends (addresses), at most [`UNREACHABLE_MAX`] at once.
    addrs: [Option<Addr>; UNREACHABLE_MAX],
    /// The next slot to examine, and how many are left, of the pass that marks the flows.
    at: usize,
    left: usize,
    /// The pass that probes the marked connections' clients: from when, and how many slots
    /// are left (0: none due).
    probe_at: u64,
    probe_left: usize,
}

/// How long after marking its connections the clients are probed: the fast path's entries of
/// the marked flows are removed meanwhile (the installer runs every 10 ms), so that the
/// clients' answers reach the worker.
const PROBE_AFTER_NS: u64 = 50_000_000;
/// How long a marked connection waits for its client to answer a probe before it is forgotten.
const DOOMED_GRACE_NS: u64 = 10_000_000_000;

/// Backends whose flows one pass ends at once; more wait for the next pass.
pub const UNREACHABLE_MAX: usize = 8;

impl core::fmt::Debug for L4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("L4")
            .field("generation", &self.table.generation())
            .field("flows", &self.flows)
            .finish()
    }
}

/// Forgets a flow that goes away: its connection count, and its fast-path entries.
#[inline]
fn release(sched: &mut SchedState, fast: &mut FastEvents, generation: Generation, f: &Flow) {
    if f.counted && f.generation == generation {
        sched.closed(f.backend);
    }
    if f.is_offloaded() {
        fast.push(FastEvent::Withdraw(f.fwd, f.rev));
    }
}

/// What the engine asks of the kernel's fast path (the caller installs and removes entries,
/// off the per-packet path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastEvent {
    /// The flow became established: install its two directions (if it is still
    /// [`Flow::is_offloaded`] when the caller gets to it: it may have gone since).
    Offer(FlowId),
    /// Remove the entries of the flow with these forward and reverse keys: it went away, came
    /// back (a SYN, FIN or RST, a table change, an idle deadline), or changed.
    Withdraw(FlowKey, FlowKey),
    /// The offloaded flow with these keys reached its deadline: read back its entries' counts
    /// and last-seen time, and answer with [`L4::fast_read_back`] (without an answer within
    /// [`crate::flow::READBACK_WAIT_NS`], the flow is withdrawn).
    Ask(FlowKey, FlowKey),
    /// Events were lost (the queue was full): remove every entry, and take every flow back
    /// ([`L4::fast_forget_all`]); each is offered again on its next packet.
    Clear,
}

/// Fast-path events waiting for the caller: a fixed ring, emptied each batch. When it is full,
/// an offer is refused (the flow stays here) and a withdrawal turns into [`FastEvent::Clear`]:
/// an entry the engine no longer stands behind must never stay.
#[derive(Debug)]
struct FastEvents {
    on: bool,
    ring: [FastEvent; FAST_EVENTS],
    head: usize,
    len: usize,
    lost: bool,
}

/// How many fast-path events the engine holds between two [`L4::take_fast_event`] drains.
pub const FAST_EVENTS: usize = 1024;

/// Flow-table slots [`L4::maintain`] examines per call while a table change's pass over the
/// offloaded flows lasts (each may queue a withdrawal: half the event ring, so that a batch's
/// own events still fit).
pub const RESCAN_BUDGET: usize = FAST_EVENTS / 2;

impl FastEvents {
    fn new(on: bool) -> FastEvents {
        FastEvents { on, ring: [FastEvent::Clear; FAST_EVENTS], head: 0, len: 0, lost: false }
    }

    /// Queues `e`; false when full.
    fn push(&mut self, e: FastEvent) -> bool {
        if self.len == FAST_EVENTS {
            if matches!(e, FastEvent::Withdraw(..)) {
                self.lost = true;
            }
            return false;
        }
        self.ring[(self.head + self.len) % FAST_EVENTS] = e;
        self.len += 1;
        true
    }

    fn take(&mut self) -> Option<FastEvent> {
        if self.len == 0 {
            return self.lost.then(|| {
                self.lost = false;
                FastEvent::Clear
            });
        }
        let e = self.ring[self.head];
        self.head = (self.head + 1) % FAST_EVENTS;
        self.len -= 1;
        Some(e)
    }
}

/// The segments [`L4::finish`] asks its caller to send ahead of the frame it processed: a small
/// queue, in order (a reclaimed tuple's RST, then the proxied SYN on it).
#[derive(Debug, Default)]
struct Extras {
    queue: [Option<synproxy::Segment>; 2],
}

impl Extras {
    /// Queues `s`; false when full.
    fn push(&mut self, s: synproxy::Segment) -> bool {
        match self.queue.iter_mut().find(|e| e.is_none()) {
            Some(slot) => {
                *slot = Some(s);
                true
            }
            None => false,
        }
    }

    /// The first queued segment, if any.
    #[inline(always)]
    fn take(&mut self) -> Option<synproxy::Segment> {
        let first = self.queue[0].take()?;
        self.queue[0] = self.queue[1].take();
        Some(first)
    }
}

/// Whether the ACK `m` describes answers a SYN cookie (see [`sluice_model::syncookie`]): the MSS
/// the cookie carries, if so.
#[inline]
fn cookie(key: [u64; 2], seg: &TcpSegment, m: &Meta, now_ns: u64) -> Option<u16> {
    let h = Handshake {
        client: m.src.0,
        frontend: m.dst.0,
        cport: m.sport,
        fport: m.dport,
        isn: seg.seq.wrapping_sub(1),
    };
    let class = syncookie::check(key, &h, seg.ack.wrapping_sub(1), syncookie::slot(now_ns))?;
    Some(syncookie::MSS_CLASSES[usize::from(class)])
}

/// The identity hash of a backend (address and port), for its SNAT cursor.
#[inline(always)]
fn backend_hash(addr: &Addr, port: u16) -> u64 {
    let w = |i: usize| {
        u64::from_le_bytes([
            addr.0[i],
            addr.0[i + 1],
            addr.0[i + 2],
            addr.0[i + 3],
            addr.0[i + 4],
            addr.0[i + 5],
            addr.0[i + 6],
            addr.0[i + 7],
        ])
    };
    hash::words(0x736e_6174, &[w(0), w(8), u64::from(port)])
}

/// Whether a reverse key is free for a new flow; an expired flow holding it is removed.
#[inline]
fn tuple_free(
    flows: &mut FlowTable,
    sched: &mut SchedState,
    fast: &mut FastEvents,
    generation: Generation,
    rev: &FlowKey,
    hr: u64,
    now_ns: u64,
) -> bool {
    match flows.lookup(rev, hr) {
        None => true,
        Some((id, _)) if flows.flow(id).is_expired(now_ns) => {
            let gone = flows.remove(id);
            release(sched, fast, generation, &gone);
            true
        }
        Some(_) => false,
    }
}

/// The engine's parts a FullNAT tuple search uses (the table stays borrowed meanwhile).
struct SnatSearch<'a> {
    flows: &'a mut FlowTable,
    sched: &'a mut SchedState,
    ports: &'a mut SnatPorts,
    fast: &'a mut FastEvents,
    counters: &'a mut Counters,
    generation: Generation,
    /// Where the RST that clears the backend's side of a half-open TCP flow's tuple, taken
    /// back, goes.
    extras: &'a mut Extras,
}

impl SnatSearch<'_> {
    /// A free FullNAT reverse tuple towards backend `addr:port`, searched on SNAT address
    /// `pool[first]`, then on the pool's other addresses in turn (at most [`SNAT_POOL_TRIES`]).
    /// `isn` is the new flow's SYN (sequence number, timestamp), when it is one.
    ///
    /// Ports come from the backend's cursor, which walks the worker's whole range before it
    /// repeats: the port handed out is the one used least recently. Per candidate (one lookup):
    /// free; held by an expired flow (removed now); held by a closed flow the backend no
    /// longer holds or would accept this SYN on ([`Flow::reusable_by`], RFC 6191: reused
    /// now); held by a half-open flow (kept as a fallback: under a flood every candidate is,
    /// and the first one found is taken from it, as conntrack's early drop does); or taken.
    #[expect(clippy::too_many_arguments, reason = "the hot path passes what it already computed")]
    fn tuple(
        &mut self,
        pool: &[Addr],
        first: usize,
        addr: Addr,
        port: u16,
        proto: u8,
        isn: Option<(u32, Option<u32>)>,
        now_ns: u64,
    ) -> Option<(FlowKey, u64)> {
        let generation = self.generation;
        let bhash = backend_hash(&addr, port);
        let mut unassured = None;
        for k in 0..pool.len().min(SNAT_POOL_TRIES) {
            let i = (first + k) % pool.len();
            let snat = pool[i];
            for attempt in 0..SNAT_ATTEMPTS {
                let sport = self.ports.next(bhash);
                let rev = FlowKey::new(addr, port, snat, sport, proto);
                let hr = self.flows.hash(&rev);
                let Some((id, _)) = self.flows.lookup(&rev, hr) else {
                    if k > 0 {
                        self.counters[Counter::SnatPoolFallbacks] += 1;
                    }
                    return Some((rev, hr));
                };
                let f = self.flows.flow(id);
                let reuse = if f.is_expired(now_ns) {
                    false
                } else if let Some((seq, ts)) = isn
                    && f.reusable_by(seq, ts)
                {
                    true
                } else {
                    if unassured.is_none() && f.is_unassured() {
                        unassured = Some((id, rev, hr));
                    }
                    if attempt + 1 >= SNAT_EARLY_DROP_AFTER && unassured.is_some() {
                        break; // under a flood, stop searching: every lookup is a cache miss
                    }
                    continue;
                };
                let gone = self.flows.remove(id);
                release(self.sched, self.fast, generation, &gone);
                if reuse {
                    self.counters[Counter::SnatReused] += 1;
                }
                if k > 0 {
                    self.counters[Counter::SnatPoolFallbacks] += 1;
                }
                return Some((rev, hr));
            }
            // Every candidate is taken (a SYN flood holds the backend's ports half-open): as
            // conntrack's early drop, a flow that never completed its handshake gives its tuple
            // to the new one, so a flood cannot lock real clients out.
            if let Some((id, rev, hr)) = unassured {
                let gone = self.flows.remove(id);
                release(self.sched, self.fast, generation, &gone);
                self.counters[Counter::SnatReclaimed] += 1;
                // The backend may hold the old SYN half-open on this very tuple (a request
                // socket, retransmitting its SYN-ACK for a minute): the new flow's SYN would meet
                // it and be answered with the old connection's ACK, or not at all. A RST at the
                // old connection's next sequence number clears it first, as the client would.
                if gone.fwd.proto == sluice_wire::ip_proto::TCP && gone.seq[0].known {
                    self.extras.push(synproxy::Segment::reset(
                        (gone.rev.dst, gone.rev.dport),
                        (gone.rev.src, gone.rev.sport),
                        gone.seq[0].end,
                    ));
                }
                return Some((rev, hr));
            }
        }
        None
    }
}

impl L4 {
    /// An engine forwarding from `table`.
    pub fn new(config: &Config, table: Arc<ServiceTable>) -> L4 {
        L4 {
            sched: SchedState::for_table(&table),
            table,
            flows: FlowTable::new(config.flow_capacity, config.seed),
            affinity: AffinityTable::new(config.affinity_capacity, config.seed ^ 0xaff1),
            snat: SnatPorts::new(config.snat_ports),
            timeouts: config.timeouts,
            sweep_budget: config.sweep_budget,
            counters: Counters::default(),
            cookie_key: config.syn_cookie_key,
            fast: FastEvents::new(config.fast_path),
            rescan: 0,
            resized: None,
            extras: Extras::default(),
            unreachable: Unreachable::default(),
            peers: None,
        }
    }

    /// Carries flows other gateways opened ([`crate::peers`]): a packet no flow here claims
    /// is looked for in `peers` (not a TCP SYN: that opens a flow of its own) and, found,
    /// taken into this worker's flow table. With peers, a steered frame that no flow claims,
    /// here or there, and that opens none is held for its flow's record, then dropped and
    /// counted — never passed to a kernel that would reset it.
    pub fn set_peers(&mut self, peers: Arc<PeerFlows>) {
        self.peers = Some(peers);
    }

    /// Adopts a new table generation. Call between batches.
    pub fn set_table(&mut self, table: Arc<ServiceTable>) {
        self.sched = SchedState::for_table(&table);
        self.table = table;
        self.counters[Counter::TableChanges] += 1;
        if self.fast.on {
            // Offloaded flows are not seen here, so nothing revalidates them lazily: one pass
            // of the sweep, at RESCAN_BUDGET slots a poll, takes them back (their next packet
            // is revalidated as any other's) — within capacity / RESCAN_BUDGET polls.
            self.rescan = self.flows.capacity();
        }
    }

    /// Records every flow in `mem` from now on, for a gateway started after this one
    /// ([`crate::journal`]). Call before [`Self::carry_over`], with memory of
    /// [`crate::journal::bytes_for`]`(flow capacity)` bytes.
    pub fn set_journal(&mut self, mem: crate::journal::Memory) -> Result<(), crate::journal::JournalError> {
        self.flows.set_journal(mem)
    }

    /// Sends a copy of each flow record from now on to `outbox`: the flow-sync sender's queue
    /// ([`crate::flow::Outbox`]).
    pub fn set_outbox(&mut self, outbox: crate::flow::Outbox) {
        self.flows.set_outbox(outbox);
    }

    /// Stops journaling and lets go of the journal (see [`FlowTable::close_journal`]); call once
    /// no frame is processed any more.
    pub fn close_journal(&mut self) {
        self.flows.close_journal();
    }

    /// Takes over flows a previous gateway recorded ([`crate::journal::recover`]): inserts each
    /// one `mine` accepts (the flows of this worker's share), counting them, and counts
    /// `not_carried` records the caller could not use. Each keeps its keys, state and SYN-cookie
    /// shift; its service and backend are found again by address on its first packet
    /// (`on_flow`: a TCP flow whose backend is gone is kept as an orphan, as after a table
    /// change). A flow whose keys are already here is not inserted twice. Returns how many
    /// were inserted. Control path: at start, before the first frame.
    pub fn carry_over(
        &mut self,
        flows: &[crate::flow::Flow],
        not_carried: usize,
        now_ns: u64,
        mut mine: impl FnMut(&crate::flow::Flow) -> bool,
    ) -> usize {
        let mut n = 0;
        let (sched, fast) = (&mut self.sched, &mut self.fast);
        let generation = self.table.generation();
        for f in flows.iter().filter(|f| mine(f)) {
            if self.flows.insert(*f, now_ns, &mut |gone| release(sched, fast, generation, gone)).is_ok() {
                n += 1;
            }
        }
        // FullNAT flows hold ports of this worker's range towards their backends: the cursors
        // resume after them rather than walk into them.
        let mut held = Vec::new();
        self.flows.for_each(|_, f| held.push((backend_hash(&f.rev.src, f.rev.sport), f.rev.dport)));
        self.snat.resume(held);
        self.counters[Counter::FlowsCarriedOver] += n as u64;
        self.counters[Counter::FlowsNotCarriedOver] += not_carried as u64;
        n
    }

    /// The flow-sync peers' store's version ([`PeerFlows::version`]; 0 without peers): frames
    /// held for a peer's record ([`Hold::Peer`]) are worth running again only once it moved.
    pub fn peer_version(&self) -> u64 {
        self.peers.as_ref().map_or(0, |p| p.version())
    }

    /// Whether the engine has work of its own for the next polls, frames or not (a pass over
    /// the flow table after a table change, with the fast path): the caller should not sleep.
    pub fn busy(&self) -> bool {
        self.rescan > 0 || self.unreachable.left > 0 || self.unreachable.probe_left > 0
    }

    /// The table in use.
    pub fn table(&self) -> &Arc<ServiceTable> {
        &self.table
    }

    /// The flow table (read-only: status and tests).
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// The scheduler state (read-only: status and tests).
    pub fn sched(&self) -> &SchedState {
        &self.sched
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a drop decided outside the engine (e.g. by the worker's transmit path).
    pub fn count_drop(&mut self, r: DropReason) {
        self.count_drops(r, 1);
    }

    /// Counts `n` frames dropped for `r` (a ring that took only part of a batch).
    pub fn count_drops(&mut self, r: DropReason, n: usize) {
        self.counters.add_drops(r, n as u64);
    }

    /// Backend address `addr` stopped answering (its neighbour entry failed: the daemon keeps
    /// the entries of on-link backends probed): every flow to it is ended, so that a client
    /// does not wait for data that will never come. A UDP flow, or a closed connection, is
    /// forgotten. An open connection is marked (and taken back from the fast path) in a pass
    /// over the flow table, [`RESCAN_BUDGET`] slots a poll ([`L4::maintain`]); 50 ms later a
    /// second pass sends each marked connection's client an ACK it cannot accept, to which its
    /// stack answers with an ACK carrying the exact sequence number it expects — the offloaded
    /// flow's positions moved on in the kernel, unseen, and a RST must hit that number exactly
    /// (RFC 5961) — and the worker answers that ACK with a RST there ([`Self::end_doomed`]). A
    /// marked flow whose client does not answer is forgotten after 10 s. Returns false when
    /// [`UNREACHABLE_MAX`] backends are being ended already (ask again later).
    pub fn backend_unreachable(&mut self, addr: Addr) -> bool {
        let u = &mut self.unreachable;
        if !u.addrs.contains(&Some(addr)) {
            let Some(slot) = u.addrs.iter_mut().find(|a| a.is_none()) else { return false };
            *slot = Some(addr);
        }
        u.left = self.flows.capacity();
        true
    }

    /// One step of the marking pass of [`Self::backend_unreachable`].
    fn mark_unreachable(&mut self, now_ns: u64) {
        let generation = self.table.generation();
        let mut budget = RESCAN_BUDGET;
        while self.unreachable.left > 0 && budget > 0 {
            let i = self.unreachable.at;
            let Some(slot) = self.flows.slot(i) else {
                self.unreachable.at = 0; // past the end: on from the start
                continue;
            };
            self.unreachable.at = i + 1;
            self.unreachable.left -= 1;
            budget -= 1;
            let Some((id, f)) = slot else { continue };
            if !self.unreachable.addrs.contains(&Some(f.rev.src)) || f.is_doomed() {
                continue;
            }
            if f.fwd.proto == ip_proto::TCP && !f.is_closed() {
                let f = self.flows.flow_mut(id);
                f.set_doomed();
                f.expires_ns = now_ns + DOOMED_GRACE_NS;
                if f.is_offloaded() {
                    f.set_offloaded(false);
                    self.fast.push(FastEvent::Withdraw(f.fwd, f.rev));
                    self.counters[Counter::FastWithdrawn] += 1;
                }
                self.flows.journal_update(id);
                self.unreachable.probe_at = now_ns + PROBE_AFTER_NS;
            } else {
                let gone = self.flows.remove(id);
                release(&mut self.sched, &mut self.fast, generation, &gone);
                self.counters[Counter::FlowsEndedBackendUnreachable] += 1;
            }
        }
        if self.unreachable.left == 0 {
            self.unreachable.addrs = [None; UNREACHABLE_MAX];
            if self.unreachable.probe_at > 0 {
                self.unreachable.probe_left = self.flows.capacity();
            }
        }
    }

    /// One step of the probing pass: an ACK each marked connection's client cannot accept (an
    /// old sequence number), two a poll.
    fn probe_doomed(&mut self, now_ns: u64) {
        if now_ns < self.unreachable.probe_at {
            return;
        }
        let mut budget = RESCAN_BUDGET;
        while self.unreachable.probe_left > 0 && budget > 0 {
            let i = self.unreachable.at;
            let Some(slot) = self.flows.slot(i) else {
                self.unreachable.at = 0;
                continue;
            };
            if let Some((_, f)) = slot
                && f.is_doomed()
            {
                let shift = if f.is_proxied() { f.delta } else { 0 };
                let probe = synproxy::Segment {
                    src: (f.fwd.dst, f.fwd.dport),
                    dst: (f.fwd.src, f.fwd.sport),
                    // Behind what the client has: unacceptable, so answered with its position.
                    seq: f.seq[1].end.wrapping_add(shift).wrapping_sub(1 << 30),
                    ack: f.seq[0].end,
                    flags: flags::ACK,
                    window: 0,
                    mss: None,
                };
                if !self.extras.push(probe) {
                    return; // two a poll: on at the next one
                }
            }
            self.unreachable.at = i + 1;
            self.unreachable.probe_left -= 1;
            budget -= 1;
        }
        if self.unreachable.probe_left == 0 {
            self.unreachable.probe_at = 0;
        }
    }

    /// A segment of a flow whose backend stopped answering: from the client, answered with a
    /// RST at exactly the sequence number it acknowledges (its own view), and the flow ends;
    /// anything else dropped.
    #[cold]
    fn end_doomed(&mut self, frame: &mut [u8], m: &Meta, id: FlowId, dir: Dir) -> Verdict {
        let client_ack = dir == Dir::Forward
            && m.proto == ip_proto::TCP
            && m.tcp_flags & flags::ACK != 0
            && m.tcp_flags & flags::RST == 0;
        if !client_ack {
            return Verdict::Drop(DropReason::BackendGone);
        }
        let seg = m.tcp_segment(frame);
        let gone = self.flows.remove(id);
        release(&mut self.sched, &mut self.fast, self.table.generation(), &gone);
        self.counters[Counter::FlowsEndedBackendUnreachable] += 1;
        let rst =
            synproxy::Segment::reset((gone.fwd.dst, gone.fwd.dport), (gone.fwd.src, gone.fwd.sport), seg.ack);
        self.resized = Some(synproxy::emit(frame, m, &rst));
        Verdict::Forward(gone.fwd.src)
    }

    /// Housekeeping once per batch: expires a bounded number of flows, and goes on with the
    /// pass that ends the flows of backends that stopped answering (its RSTs are then waiting
    /// in [`Self::take_extra`]).
    pub fn maintain(&mut self, now_ns: u64) {
        if self.unreachable.left > 0 {
            self.mark_unreachable(now_ns);
        } else if self.unreachable.probe_left > 0 {
            self.probe_doomed(now_ns);
        }
        let budget = if self.rescan > 0 { self.sweep_budget.max(RESCAN_BUDGET) } else { self.sweep_budget };
        self.rescan = self.rescan.saturating_sub(budget);
        let (sched, fast, generation) = (&mut self.sched, &mut self.fast, self.table.generation());
        let mut withdrawn = 0;
        self.flows.sweep(now_ns, budget, generation, &mut |f, how| match how {
            Swept::Expired => release(sched, fast, generation, f),
            Swept::Withdrawn => {
                withdrawn += 1;
                fast.push(FastEvent::Withdraw(f.fwd, f.rev));
            }
            // Refused when the ring is full: unanswered, the flow is withdrawn after the wait.
            Swept::Asked => drop(fast.push(FastEvent::Ask(f.fwd, f.rev))),
        });
        self.counters[Counter::FastWithdrawn] += withdrawn;
    }

    /// The next thing the engine asks of the kernel's fast path, in order; call until `None`
    /// after each batch (the queue holds [`FAST_EVENTS`]).
    #[inline]
    pub fn take_fast_event(&mut self) -> Option<FastEvent> {
        self.fast.take()
    }

    /// The answer to a [`FastEvent::Ask`]: the later last-seen time of the entries of the flow
    /// keyed `fwd` and `rev` (0: neither forwarded a frame, or they are gone). A flow still
    /// offloaded is kept in the kernel with its deadline moved on, or, idle, withdrawn
    /// ([`Flow::read_back`] decides). A flow gone, or another flow on the tuple since, is left
    /// alone. Off the per-packet path: one lookup, after a batch.
    pub fn fast_read_back(&mut self, fwd: &FlowKey, rev: &FlowKey, kernel_last_seen_ns: u64, now_ns: u64) {
        let Some((id, Dir::Forward)) = self.flows.lookup(fwd, self.flows.hash(fwd)) else { return };
        let f = self.flows.flow_mut(id);
        if f.rev != *rev {
            return;
        }
        match f.read_back(kernel_last_seen_ns, now_ns, &self.timeouts) {
            ReadBack::Live => self.counters[Counter::FastKept] += 1,
            ReadBack::Idle => {
                let (fwd, rev) = (f.fwd, f.rev);
                self.fast.push(FastEvent::Withdraw(fwd, rev));
                self.counters[Counter::FastWithdrawn] += 1;
            }
            ReadBack::NotOffloaded => {}
        }
    }

    /// Frames and bytes the kernel's fast path forwarded for this engine's flows, read back
    /// from their entries: added to its counters.
    pub fn fast_forwarded(&mut self, frames: u64, bytes: u64) {
        self.counters[Counter::FastFrames] += frames;
        self.counters[Counter::FastBytes] += bytes;
    }

    /// Every fast-path entry is being removed at once (a [`FastEvent::Clear`], new next hops):
    /// every flow is the engine's again, and will be offered again on its next packet. Walks
    /// the whole flow table: not for the per-packet path.
    pub fn fast_forget_all(&mut self) {
        let n = self.flows.forget_offloaded();
        self.counters[Counter::FastWithdrawn] += n as u64;
    }

    /// The caller could not install an offered flow (the map is full, the next hop unknown):
    /// it stays with the engine, which will offer it again on a later packet.
    pub fn fast_refused(&mut self, id: FlowId) {
        self.flows.flow_mut(id).set_offloaded(false);
        self.counters[Counter::FastRefused] += 1;
    }

    /// Processes one frame in place.
    #[inline]
    pub fn process(&mut self, frame: &mut [u8], now_ns: u64) -> Verdict {
        let p = self.prepare(frame);
        self.finish(frame, &p, now_ns)
    }

    /// First half of [`Self::process`]: parse, hash, and touch the flow bucket.
    #[inline]
    pub fn prepare(&self, frame: &[u8]) -> Prepared {
        let parsed = packet::parse(frame);
        if let Ok(Parsed::Ip(m)) = &parsed
            && (m.proto == ip_proto::TCP || m.proto == ip_proto::UDP)
        {
            let key = FlowKey::new(m.src, m.sport, m.dst, m.dport, m.proto);
            let hash = self.flows.hash(&key);
            self.flows.prefetch(hash);
            return Prepared::new(parsed, hash);
        }
        Prepared::new(parsed, 0)
    }

    /// Between [`Self::prepare`] and [`Self::finish`]: prefetches the flow record the frame's
    /// bucket points to (the bucket itself was prefetched by `prepare`). When there is none — a
    /// new flow, most likely — and the service picks by Maglev, it predicts the new flow's
    /// reverse tuple (backend, SNAT address and the port the SNAT cursor would hand out) and
    /// prefetches that bucket instead, which `finish` will check. A wrong guess costs nothing.
    #[inline]
    pub fn prefetch_flow(&self, p: &mut Prepared) {
        if p.hash == 0 {
            return;
        }
        p.hint = self.flows.prefetch_flow(p.hash);
        if p.hint.is_some() {
            return;
        }
        let Ok(Parsed::Ip(m)) = &p.parsed else { return };
        // The key is rebuilt from the parsed fields rather than carried: a smaller `Prepared`
        // is cheaper to move than a key is to rebuild.
        let key = FlowKey::new(m.src, m.sport, m.dst, m.dport, m.proto);
        let Some(proto) = Protocol::from_number(key.proto) else { return };
        let found = self.table.lookup(&key.dst, key.dport, proto);
        p.service = Some(found);
        let Some(id) = found else { return };
        let svc = self.table.service(id);
        if svc.scheduler != sluice_model::service::Scheduler::Maglev || svc.affinity.is_some() {
            return;
        }
        let tuple_hash = key.stable_hash();
        p.tuple_hash = tuple_hash;
        let Some(o) = svc.maglev.lookup(tuple_hash) else { return };
        let b = self.table.backend(svc.backend_id(o));
        let rev = match svc.nat {
            NatMode::FullNat => {
                let snat = svc.snat[hash::reduce(tuple_hash, svc.snat.len() as u32) as usize];
                FlowKey::new(b.addr, b.port, snat, self.snat.peek(backend_hash(&b.addr, b.port)), key.proto)
            }
            NatMode::Dnat => FlowKey::new(b.addr, b.port, key.src, key.sport, key.proto),
        };
        self.flows.prefetch(self.flows.hash(&rev));
    }

    /// The length of the frame the last [`Self::finish`] rewrote into a segment of another
    /// length, once: the caller sends that many bytes.
    #[inline(always)]
    pub fn take_resized(&mut self) -> Option<usize> {
        self.resized.take()
    }

    /// The next segment the last [`Self::finish`] asks to be sent, in a fresh frame, *before*
    /// the frame it processed (see [`synproxy::Segment`]), in order, once. A caller that cannot
    /// send one loses nothing but time: the backend's half-open connection answers the new SYN
    /// itself, or the held segment sends the proxied SYN again.
    #[inline(always)]
    pub fn take_extra(&mut self) -> Option<synproxy::Segment> {
        self.extras.take()
    }

    /// Second half of [`Self::process`], for a frame [`Self::prepare`]d unchanged. `frame` may
    /// run on past the frame into free room of its buffer: a segment the engine writes in its
    /// place (a proxied handshake) may use it, and says its length in [`Self::take_resized`].
    #[inline]
    pub fn finish(&mut self, frame: &mut [u8], p: &Prepared, now_ns: u64) -> Verdict {
        let v = match p.parsed {
            Err(r) => Verdict::Drop(r),
            Ok(Parsed::Arp(_)) => Verdict::Pass,
            Ok(Parsed::Ip(m)) => match m.proto {
                ip_proto::TCP | ip_proto::UDP => self.transport(frame, &m, p, now_ns),
                ip_proto::ICMP | ip_proto::ICMPV6 => self.icmp(frame, &m),
                _ if self.table.is_vip(&m.dst) => Verdict::Drop(DropReason::UnsupportedProtocol),
                _ => Verdict::Pass,
            },
        };
        match v {
            Verdict::Forward(_) => self.counters[Counter::Forwarded] += 1,
            Verdict::Bounce => self.counters[Counter::Bounced] += 1,
            Verdict::Pass => self.counters[Counter::Passed] += 1,
            Verdict::Drop(r) => self.counters.add_drops(r, 1),
            Verdict::Defer(_) => {} // counted by the caller, which holds the frame once
        }
        v
    }

    #[inline]
    fn transport(&mut self, frame: &mut [u8], m: &Meta, p: &Prepared, now_ns: u64) -> Verdict {
        let key = &FlowKey::new(m.src, m.sport, m.dst, m.dport, m.proto);
        let h = p.hash;
        if let Some((id, dir)) = self.flows.lookup_hinted(key, h, p.hint) {
            let f = self.flows.flow(id);
            let reopened = dir == Dir::Forward && f.is_closed() && self.reopened(frame, m, now_ns);
            if !f.is_expired(now_ns) && !reopened {
                return self.on_flow(frame, m, key, h, id, dir, now_ns);
            }
            // Expired, or a closed tuple the client opened again through the XDP program's
            // SYN cookie: the old flow goes, and the segment opens a new one.
            let gone = self.flows.remove(id);
            release(&mut self.sched, &mut self.fast, self.table.generation(), &gone);
        }
        let syn = m.proto == ip_proto::TCP && m.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN;
        if !syn && let Some(v) = self.peer_flow(frame, m, key, h, now_ns) {
            return v;
        }
        let service = match p.service {
            Some(found) => found,
            None => {
                let Some(proto) = Protocol::from_number(m.proto) else { return Verdict::Pass };
                self.table.lookup(&m.dst, m.dport, proto)
            }
        };
        match service {
            Some(svc) => self.new_flow(frame, m, key, h, svc, p.tuple_hash, now_ns),
            // With flow-sync peers: a frame the XDP program steered here (a DNAT backend's
            // reply, a reply to a SNAT address) that no flow claims, here or at a peer, may be
            // ahead of its flow's record: held briefly, then dropped — never passed to a kernel
            // that would forward it untranslated or answer it with a RST.
            None if self.peers.is_some() => Verdict::Defer(Hold::Peer),
            None => Verdict::Pass,
        }
    }

    /// A packet (not a TCP SYN) no flow of this worker claims: taken on as the flow a peer
    /// opened, if its flow sync told of one (`None` otherwise, and without peers).
    fn peer_flow(
        &mut self,
        frame: &mut [u8],
        m: &Meta,
        key: &FlowKey,
        h: u64,
        now_ns: u64,
    ) -> Option<Verdict> {
        let f = self.peers.as_ref()?.find(key, now_ns, &self.timeouts)?;
        let (sched, fast, generation) = (&mut self.sched, &mut self.fast, self.table.generation());
        let id = self.flows.insert(f, now_ns, &mut |gone| release(sched, fast, generation, gone)).ok()?;
        self.counters[Counter::FlowsFromPeers] += 1;
        let dir = if f.fwd == *key { Dir::Forward } else { Dir::Reverse };
        Some(self.on_flow(frame, m, key, h, id, dir, now_ns))
    }

    /// Whether a client segment on a closed flow is the ACK of a SYN cookie: the client reused
    /// its port (it closed second, so it kept no TIME_WAIT), the XDP program answered its new
    /// SYN with a cookie, and the worker never saw that SYN. Forwarded on the old flow, the ACK
    /// would reach the backend on the old SNAT tuple, where its TIME_WAIT answers with the old
    /// connection's numbers and the client hangs (seen under a SYN flood, 2026-12-05).
    #[cold]
    fn reopened(&self, frame: &[u8], m: &Meta, now_ns: u64) -> bool {
        let Some(key) = self.cookie_key else { return false };
        m.proto == ip_proto::TCP
            && m.tcp_flags & (flags::SYN | flags::RST | flags::FIN | flags::ACK) == flags::ACK
            && cookie(key, &m.tcp_segment(frame), m, now_ns).is_some()
    }

    /// A packet of a known flow.
    #[inline]
    #[expect(clippy::too_many_arguments, reason = "the hot path passes what it already computed")]
    fn on_flow(
        &mut self,
        frame: &mut [u8],
        m: &Meta,
        key: &FlowKey,
        h: u64,
        id: FlowId,
        dir: Dir,
        now_ns: u64,
    ) -> Verdict {
        let generation = self.table.generation();
        if self.flows.flow(id).generation != generation {
            let f = *self.flows.flow(id);
            let proto = Protocol::from_number(f.fwd.proto);
            let svc = proto.and_then(|p| self.table.lookup(&f.fwd.dst, f.fwd.dport, p));
            let backend =
                svc.and_then(|s| self.table.backend_by_addr(s, &f.rev.src, f.rev.sport).map(|b| (s, b)));
            match backend {
                Some((s, b)) => {
                    let fl = self.flows.flow_mut(id);
                    fl.service = s;
                    fl.backend = b;
                    fl.generation = generation;
                    fl.counted = !fl.is_closed();
                    if fl.counted {
                        self.sched.opened(b);
                    }
                    self.counters[Counter::FlowsRevalidated] += 1;
                }
                None if m.proto == ip_proto::TCP => {
                    let fl = self.flows.flow_mut(id);
                    fl.service = ServiceId::NONE;
                    fl.backend = BackendId::NONE;
                    fl.generation = generation;
                    fl.counted = false;
                    self.counters[Counter::FlowsOrphaned] += 1;
                }
                None => {
                    let gone = self.flows.remove(id);
                    release(&mut self.sched, &mut self.fast, generation, &gone);
                    // A UDP datagram from the client starts over with a new backend.
                    return match (dir, svc) {
                        (Dir::Forward, Some(s)) => self.new_flow(frame, m, key, h, s, 0, now_ns),
                        _ => Verdict::Drop(DropReason::BackendGone),
                    };
                }
            }
        }
        if m.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        if self.flows.flow(id).is_doomed() {
            return self.end_doomed(frame, m, id, dir);
        }
        let t = &self.timeouts;
        let f = self.flows.flow_mut(id);
        let kept = f.journal_state();
        if m.proto == ip_proto::TCP && f.is_proxied() {
            if f.state == FlowState::SynProxy {
                return self.proxy_handshake(frame, m, id, dir, now_ns);
            }
            if dir == Dir::Forward {
                // The client acknowledges in its view of the backend's sequence space.
                synproxy::shift(frame, m, 0, f.delta.wrapping_neg());
            }
        }
        if f.is_offloaded()
            && m.proto == ip_proto::TCP
            && m.tcp_flags & (flags::SYN | flags::FIN | flags::RST) != 0
        {
            // The fast path handed it back. The flow's segments since it was offered went
            // through the kernel unseen: the tracker picks both directions up again from this
            // one (as conntrack's liberal pickup does), and the flow is the engine's again.
            f.seq[0].known = false;
            f.seq[1].known = false;
            f.set_offloaded(false);
            self.fast.push(FastEvent::Withdraw(f.fwd, f.rev));
            self.counters[Counter::FastWithdrawn] += 1;
        }
        if m.proto == ip_proto::TCP {
            let opts = (m.tcp_flags & flags::SYN != 0 || f.wants_options()).then(|| m.tcp_options(frame));
            if !f.track(dir, &m.tcp_segment(frame), opts) && m.tcp_flags & (flags::RST | flags::FIN) != 0 {
                return Verdict::Drop(DropReason::TcpOutOfWindow);
            }
            let was_closed = f.is_closed();
            f.on_tcp(dir, m.tcp_flags, now_ns, t);
            let closed = f.is_closed();
            if f.counted && closed {
                f.counted = false;
                self.sched.closed(f.backend);
            } else if !f.counted
                && !f.is_closed()
                && f.generation == generation
                && f.backend != BackendId::NONE
            {
                // A closed tuple reopened by a new SYN counts again.
                f.counted = true;
                self.sched.opened(f.backend);
            }
            if closed && !was_closed {
                self.flows.note_debris(id);
            }
        } else {
            f.on_udp(dir, now_ns, t);
        }
        if self.flows.flow(id).journal_state() != kept {
            self.flows.journal_update(id);
        }
        let f = self.flows.flow_mut(id);
        if self.fast.on {
            let ok = f.offloadable() && f.generation == generation;
            if f.is_offloaded() && !ok {
                f.set_offloaded(false);
                self.fast.push(FastEvent::Withdraw(f.fwd, f.rev));
                self.counters[Counter::FastWithdrawn] += 1;
            } else if !f.is_offloaded() && ok && self.fast.push(FastEvent::Offer(id)) {
                f.set_offloaded(true);
                self.counters[Counter::FastOffered] += 1;
            }
        }
        let f = self.flows.flow(id);
        if dir == Dir::Reverse && f.is_proxied() && m.proto == ip_proto::TCP {
            synproxy::shift(frame, m, f.delta, 0);
        }
        let (src, sport, dst, dport) = match dir {
            Dir::Forward => (f.rev.dst, f.rev.dport, f.rev.src, f.rev.sport),
            Dir::Reverse => (f.fwd.dst, f.fwd.dport, f.fwd.src, f.fwd.sport),
        };
        nat::rewrite(frame, m, &src, sport, &dst, dport);
        Verdict::Forward(dst)
    }

    /// A segment of a proxied flow whose backend has not answered the gateway's SYN yet. See
    /// [`crate::synproxy`] for the exchange.
    #[cold]
    fn proxy_handshake(&mut self, frame: &mut [u8], m: &Meta, id: FlowId, dir: Dir, now_ns: u64) -> Verdict {
        let seg = m.tcp_segment(frame);
        let t = self.timeouts;
        let f = self.flows.flow_mut(id);
        // The sequence number after the client's ISN (its SYN), kept in `delta` until the backend
        // answers: what the backend acknowledges and expects next, whatever data the client has
        // sent since (held, not yet delivered).
        let client_next = f.delta;
        let cookie = f.seq[0].last_ack.wrapping_sub(1);
        let rev = f.rev;
        let to_backend = |seq, ack, flags, window, mss| synproxy::Segment {
            src: (rev.dst, rev.dport),
            dst: (rev.src, rev.sport),
            seq,
            ack,
            flags,
            window,
            mss,
        };
        let (out, next) = match dir {
            Dir::Forward if m.tcp_flags & flags::RST != 0 => {
                // The client gives up: tell the backend, which holds our SYN.
                f.on_tcp(dir, m.tcp_flags, now_ns, &t);
                (to_backend(client_next, 0, flags::RST, 0, None), f.rev.src)
            }
            Dir::Forward => {
                if now_ns.saturating_sub(f.last_seen_ns) < PROXY_SYN_RETRY_NS {
                    return if seg.len > 0 {
                        Verdict::Defer(Hold::Backend)
                    } else {
                        Verdict::Drop(DropReason::SynProxyPending)
                    };
                }
                // The backend has not answered for a while: the SYN again — in a frame of its own
                // when this segment carries data, which waits on.
                f.last_seen_ns = now_ns;
                let mss = syncookie::MSS_CLASSES[(cookie & 3) as usize];
                let window = f.seq[0].max_win.min(0xffff) as u16;
                let syn = to_backend(client_next.wrapping_sub(1), 0, flags::SYN, window, Some(mss));
                return self.proxied_syn(frame, m, syn, seg.len > 0);
            }
            Dir::Reverse
                if m.tcp_flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN | flags::ACK =>
            {
                if seg.ack != client_next {
                    return Verdict::Drop(DropReason::TcpOutOfWindow);
                }
                let opts = m.tcp_options(frame);
                f.track(dir, &seg, Some(opts));
                f.delta = cookie.wrapping_sub(seg.seq);
                f.on_tcp(dir, m.tcp_flags, now_ns, &t);
                let window = f.seq[0].max_win.min(0xffff) as u16;
                (to_backend(client_next, seg.seq.wrapping_add(1), flags::ACK, window, None), f.rev.src)
            }
            Dir::Reverse if m.tcp_flags & flags::RST != 0 => {
                // Refused: the client, established with the gateway, is reset in its own space.
                f.on_tcp(dir, m.tcp_flags, now_ns, &t);
                let s = synproxy::Segment {
                    src: (f.fwd.dst, f.fwd.dport),
                    dst: (f.fwd.src, f.fwd.sport),
                    seq: cookie.wrapping_add(1),
                    ack: 0,
                    flags: flags::RST,
                    window: 0,
                    mss: None,
                };
                (s, f.fwd.src)
            }
            Dir::Reverse if m.tcp_flags & (flags::SYN | flags::ACK) == flags::ACK => {
                // The backend still holds an old connection on the tuple and answered our SYN
                // with its ACK: reset it, as the client's stack would (RFC 9293 §3.10.7.3), and
                // let the next client segment send the SYN again.
                f.last_seen_ns = 0;
                (to_backend(seg.ack, 0, flags::RST, 0, None), f.rev.src)
            }
            Dir::Reverse => return Verdict::Drop(DropReason::SynProxyPending),
        };
        let closed = f.is_closed();
        if closed && f.counted {
            f.counted = false;
            self.sched.closed(f.backend);
        }
        if closed {
            self.flows.note_debris(id);
        }
        self.flows.journal_update(id);
        self.resized = Some(synproxy::emit(frame, m, &out));
        Verdict::Forward(next)
    }

    /// Sends a proxied connection's SYN to its backend: in place of the client segment that
    /// caused it, or — when that segment carries data, which must wait for the backend — in a
    /// frame of its own while the segment is held.
    fn proxied_syn(&mut self, frame: &mut [u8], m: &Meta, syn: synproxy::Segment, data: bool) -> Verdict {
        if data && self.extras.push(syn) {
            return Verdict::Defer(Hold::Backend);
        }
        self.resized = Some(synproxy::emit(frame, m, &syn));
        Verdict::Forward(syn.dst.0)
    }

    /// The first packet of a flow to service `svc_id` (`tuple_hash` if already computed, else 0).
    #[expect(clippy::too_many_arguments, reason = "the hot path passes what it already computed")]
    fn new_flow(
        &mut self,
        frame: &mut [u8],
        m: &Meta,
        key: &FlowKey,
        h: u64,
        svc_id: ServiceId,
        tuple_hash: u64,
        now_ns: u64,
    ) -> Verdict {
        let table = &*self.table;
        let svc = table.service(svc_id);
        let seg = (m.proto == ip_proto::TCP).then(|| m.tcp_segment(frame));
        let mut cookie_mss = None;
        let state = if let Some(s) = &seg {
            let f = m.tcp_flags;
            if f & flags::SYN != 0 && f & (flags::ACK | flags::RST) == 0 {
                FlowState::SynSent
            } else if f & (flags::SYN | flags::RST | flags::FIN | flags::ACK) == flags::ACK
                && let Some(key) = self.cookie_key
                && let Some(mss) = cookie(key, s, m, now_ns)
            {
                cookie_mss = Some(mss);
                FlowState::SynProxy
            } else if f & flags::RST == 0 && svc.scheduler.is_consistent() && svc.nat == NatMode::Dnat {
                self.counters[Counter::AdoptedFlows] += 1;
                FlowState::Established
            } else {
                return Verdict::Drop(DropReason::NoFlowForSegment);
            }
        } else {
            FlowState::UdpUnreplied
        };
        if m.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let tuple_hash = if tuple_hash != 0 { tuple_hash } else { key.stable_hash() };
        let mut offset = None;
        if let Some(aff) = svc.affinity {
            if let Some((a, p)) = self.affinity.get(svc.name_hash, &m.src, now_ns)
                && let Some(b) = table.backend_by_addr(svc_id, &a, p)
                && table.backend(b).eligible
            {
                offset = Some((b.0 - svc.backends.start) as u16);
                self.counters[Counter::AffinityHits] += 1;
            }
            if offset.is_none() {
                // First choice by client address: the same on every worker and node.
                offset = svc.maglev.lookup(hash::stable(&m.src.0));
            }
            if let Some(o) = offset {
                let b = table.backend(svc.backend_id(o));
                let expires = now_ns + u64::from(aff.timeout_s()) * 1_000_000_000;
                self.affinity.put(svc.name_hash, &m.src, &b.addr, b.port, expires);
            }
        } else {
            offset = self.sched.pick(svc, table, &PickInput { tuple_hash, client: &m.src, dst: &m.dst });
        }
        let Some(offset) = offset else { return Verdict::Drop(DropReason::NoBackend) };
        let bid: BackendId = svc.backend_id(offset);
        let b = table.backend(bid);
        let syn = seg.is_some() && state == FlowState::SynSent;
        let opts = if syn { m.tcp_options(frame) } else { sluice_wire::tcp::Options::default() };
        let (rev, hr) = match svc.nat {
            NatMode::FullNat => {
                let first = hash::reduce(tuple_hash, svc.snat.len() as u32) as usize;
                let isn = match (seg, cookie_mss) {
                    (Some(s), None) if syn => Some((s.seq, opts.tsval)),
                    // The proxied SYN the backend will see: the client's ISN, no timestamp.
                    (Some(s), Some(_)) => Some((s.seq.wrapping_sub(1), None)),
                    _ => None,
                };
                let mut search = SnatSearch {
                    flows: &mut self.flows,
                    sched: &mut self.sched,
                    ports: &mut self.snat,
                    fast: &mut self.fast,
                    counters: &mut self.counters,
                    generation: table.generation(),
                    extras: &mut self.extras,
                };
                match search.tuple(&svc.snat, first, b.addr, b.port, m.proto, isn, now_ns) {
                    Some(x) => x,
                    None => return Verdict::Drop(DropReason::SnatExhausted),
                }
            }
            NatMode::Dnat => {
                let rev = FlowKey::new(b.addr, b.port, m.src, m.sport, m.proto);
                let hr = self.flows.hash(&rev);
                if !tuple_free(
                    &mut self.flows,
                    &mut self.sched,
                    &mut self.fast,
                    table.generation(),
                    &rev,
                    hr,
                    now_ns,
                ) {
                    return Verdict::Drop(DropReason::NatTupleConflict);
                }
                (rev, hr)
            }
        };
        let generation = table.generation();
        let mut flow = Flow::new(*key, rev, svc_id, bid, generation, state, now_ns, &self.timeouts);
        flow.counted = true;
        if let Some(seg) = &seg {
            flow.track(Dir::Forward, seg, Some(opts));
        }
        if let (Some(_), Some(seg)) = (cookie_mss, &seg) {
            flow.set_proxied();
            flow.delta = seg.seq; // the client's ISN + 1, until the backend answers
        }
        let (sched, fast) = (&mut self.sched, &mut self.fast);
        self.flows.insert_hashed(flow, h, hr, now_ns, &mut |f| release(sched, fast, generation, f));
        self.sched.opened(bid);
        self.counters[Counter::NewFlows] += 1;
        if let (Some(mss), Some(seg)) = (cookie_mss, seg) {
            // The client's ACK becomes the gateway's SYN to the backend, with the client's ISN
            // and window and the MSS the cookie carried.
            self.counters[Counter::SynCookiesAccepted] += 1;
            let syn = synproxy::Segment {
                src: (rev.dst, rev.dport),
                dst: (rev.src, rev.sport),
                seq: seg.seq.wrapping_sub(1),
                ack: 0,
                flags: flags::SYN,
                window: seg.window,
                mss: Some(mss),
            };
            return self.proxied_syn(frame, m, syn, seg.len > 0);
        }
        nat::rewrite(frame, m, &rev.dst, rev.dport, &rev.src, rev.sport);
        Verdict::Forward(rev.src)
    }

    /// ICMP: echo to a service address, errors about tracked flows.
    fn icmp(&mut self, frame: &mut [u8], m: &Meta) -> Verdict {
        let own = (m.family == sluice_model::addr::Family::V4) == (m.proto == ip_proto::ICMP);
        if !own {
            return if self.table.is_vip(&m.dst) {
                Verdict::Drop(DropReason::UnsupportedProtocol)
            } else {
                Verdict::Pass
            };
        }
        if nat::is_echo_request(frame, m) {
            if self.table.is_vip(&m.dst) {
                nat::echo_reply(frame, m);
                self.counters[Counter::IcmpEchoReplies] += 1;
                return Verdict::Bounce;
            }
            return Verdict::Pass;
        }
        if !nat::is_icmp_error(frame, m) {
            return Verdict::Pass;
        }
        let Some(q) = nat::quote(frame, m) else {
            return if self.table.is_vip(&m.dst) {
                Verdict::Drop(DropReason::IcmpErrorMalformed)
            } else {
                Verdict::Pass
            };
        };
        // The quoted packet left through us; its reverse is one of the keys we index.
        let k = FlowKey::new(q.dst, q.dport, q.src, q.sport, q.proto);
        let Some((id, dir)) = self.flows.lookup(&k, self.flows.hash(&k)) else {
            return if self.table.is_vip(&m.dst) {
                Verdict::Drop(DropReason::IcmpErrorNoFlow)
            } else {
                Verdict::Pass
            };
        };
        if m.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let f = self.flows.flow(id);
        let t = match dir {
            // It quotes what we sent to the backend: tell the client, about its own packet.
            Dir::Reverse => IcmpTranslation {
                src: if m.src == f.rev.src { f.fwd.dst } else { m.src },
                dst: f.fwd.src,
                q_src: (f.fwd.src, f.fwd.sport),
                q_dst: (f.fwd.dst, f.fwd.dport),
                q_seq_shift: 0,
            },
            // It quotes what we sent to the client: tell the backend, about its own packet.
            Dir::Forward => IcmpTranslation {
                src: if m.src == f.fwd.src { f.rev.dst } else { m.src },
                dst: f.rev.src,
                q_src: (f.rev.src, f.rev.sport),
                q_dst: (f.rev.dst, f.rev.dport),
                q_seq_shift: if f.is_proxied() { f.delta.wrapping_neg() } else { 0 },
            },
        };
        nat::translate_icmp_error(frame, m, &q, &t);
        self.counters[Counter::IcmpErrorsTranslated] += 1;
        Verdict::Forward(t.dst)
    }
}
