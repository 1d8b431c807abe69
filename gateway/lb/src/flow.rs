//! The per-worker flow table: fixed capacity, both directions, connection-tracking state.
//!
//! **Layout.** Flows live in a slab of `capacity` records allocated at start; it never grows.
//! Each flow is indexed twice in a set-associative hash index — by its forward key (the packet
//! as the client sends it) and by its reverse key (the packet as the backend sends it back after
//! NAT) — so a packet from either side finds its flow with one bucket probe. The index has
//! at least twice as many entries as the slab can use, so buckets run at most half full on
//! average. A bucket is sixteen entries (a line of tags, a line of slab slots) in two adjacent
//! cache lines: at half load a set overflows rarely, and when it must evict it chooses among
//! sixteen. (Katran's per-CPU LRU maps and conntrack's hash play the same role.)
//!
//! **Placement** hashes the key with a per-worker random seed ([`sluice_model::hash::flow`]) so that
//! nobody outside can aim a flood at one bucket.
//!
//! **State and expiry** follow Linux conntrack's TCP tracker in spirit (SYN, SYN-ACK,
//! established, FIN each way, TIME_WAIT, RST) with its timeouts, except the established and
//! close-wait timeouts, which take kube-proxy's settings (`--conntrack-tcp-timeout-established`
//! 24 h, `--conntrack-tcp-timeout-close-wait` 1 h). UDP is "unreplied" until the backend answers.
//! Expiry is lazy (a lookup that finds an expired flow reports it; the caller removes it) plus an
//! incremental sweep with a bounded budget per call, so no call does unbounded work.
//!
//! **Eviction.** What matters least goes first: expired, then closed (RST / TIME_WAIT), then
//! half-open (a SYN whose handshake the client has not completed, answered or not; unreplied
//! UDP — what a flood leaves behind), then the longest idle. When the slab is full, a CLOCK hand
//! walking the slab in order finds the victim (sequential reads, prefetched by the hardware),
//! and the next victim is chosen ahead with its index lines prefetched, so a connection storm on
//! a full table costs no extra serial cache misses. Where the hand's window (at most
//! [`CLOCK_SWEEP_MAX`] slots) holds only open connections, the oldest debris is taken from a
//! ring the table keeps of flows that became half-open or closed ([`FlowTable::note_debris`]),
//! wherever it sits: no open connection is evicted while debris exists. When only the new
//! flow's bucket is full (with the slab full, an average of 8 entries per 16-entry bucket: a Poisson
//! estimate, not a measurement, puts about 0.4 % of buckets there), the
//! victim is the least valuable of its sixteen entries — under a flood, one of the flood's. A SYN
//! flood therefore cannot grow memory and displaces its own debris before live connections.
//!
//! **Sequence tracking.** Each direction's next sequence number, largest window (scaled as the
//! SYNs negotiated) and, while closing, last timestamp: enough to refuse a RST or FIN outside the
//! receiver's window ([`Flow::track`]) and to know when the backend would accept a new SYN on a
//! closed flow's tuple ([`Flow::reusable_by`], RFC 6191).
//!
//! Hot path: yes. No allocation after [`FlowTable::new`].

use sluice_model::addr::Addr;
use sluice_model::hash;
use sluice_model::service::{BackendId, Generation, ServiceId};
use sluice_wire::tcp::flags;

use crate::journal::{Journal, JournalError, Memory};

/// The 5-tuple of a packet as it appears on the wire (addresses of either family, 40 bytes).
#[derive(Debug, Clone, Copy, Eq, Default)]
#[repr(C, align(8))]
pub struct FlowKey {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port (or ICMP identifier).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    pad: [u8; 3],
}

impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.words().hash(state);
    }
}

impl PartialEq for FlowKey {
    /// Five word comparisons (the padding is always zero).
    #[inline(always)]
    fn eq(&self, other: &FlowKey) -> bool {
        let (a, b) = (self.words(), other.words());
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl FlowKey {
    /// A key.
    #[inline(always)]
    pub const fn new(src: Addr, sport: u16, dst: Addr, dport: u16, proto: u8) -> FlowKey {
        FlowKey { src, dst, sport, dport, proto, pad: [0; 3] }
    }

    /// The key of the packet travelling the other way.
    #[inline(always)]
    pub fn reversed(&self) -> FlowKey {
        FlowKey::new(self.dst, self.dport, self.src, self.sport, self.proto)
    }

    /// A hash of the 5-tuple that is the same on every machine (defined on little-endian
    /// words, fixed seed): what Maglev keys on, so every node picks the same backend.
    #[inline]
    pub fn stable_hash(&self) -> u64 {
        let s = &self.src.0;
        let d = &self.dst.0;
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]])
        };
        hash::words(
            0,
            &[
                w(s, 0),
                w(s, 8),
                w(d, 0),
                w(d, 8),
                u64::from(self.sport) | (u64::from(self.dport) << 16) | (u64::from(self.proto) << 32),
            ],
        )
    }

    #[inline(always)]
    fn words(&self) -> [u64; 5] {
        let s = &self.src.0;
        let d = &self.dst.0;
        let w = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]])
        };
        [
            w(s, 0),
            w(s, 8),
            w(d, 0),
            w(d, 8),
            u64::from(self.sport) | (u64::from(self.dport) << 16) | (u64::from(self.proto) << 32),
        ]
    }
}

/// Which key of a flow a packet matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → service (the key the flow was created from).
    Forward,
    /// Backend → client (the NATed return path).
    Reverse,
}

impl Dir {
    /// The other direction.
    #[inline(always)]
    pub fn other(self) -> Dir {
        match self {
            Dir::Forward => Dir::Reverse,
            Dir::Reverse => Dir::Forward,
        }
    }
}

/// Connection-tracking state of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FlowState {
    /// TCP: client SYN seen.
    SynSent,
    /// TCP: backend SYN-ACK seen.
    SynRecv,
    /// TCP, through a SYN cookie: the client completed its handshake with the gateway (the XDP
    /// program answered its SYN); the gateway's SYN to the backend is not answered yet. Not
    /// half-open: the client proved its address by answering the cookie, which a spoofed
    /// flood cannot.
    SynProxy,
    /// TCP: handshake completed (or a flow adopted mid-stream).
    Established,
    /// TCP: the client sent FIN.
    FinWait,
    /// TCP: the backend sent FIN.
    CloseWait,
    /// TCP: both sent FIN; waiting for the last ACK.
    LastAck,
    /// TCP: closed in an orderly way; kept so the tuple is not reused too soon.
    TimeWait,
    /// TCP: reset.
    Close,
    /// UDP: nothing came back yet.
    UdpUnreplied,
    /// UDP: the backend answered.
    UdpReplied,
}

impl FlowState {
    /// The state whose `as u8` is `b`.
    pub fn from_u8(b: u8) -> Option<FlowState> {
        use FlowState::*;
        [
            SynSent,
            SynRecv,
            SynProxy,
            Established,
            FinWait,
            CloseWait,
            LastAck,
            TimeWait,
            Close,
            UdpUnreplied,
            UdpReplied,
        ]
        .get(usize::from(b))
        .copied()
    }
}

/// How long a flow lives in each state, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `SynSent` (conntrack: 120 s).
    pub syn_sent_ns: u64,
    /// `SynRecv` (conntrack: 60 s).
    pub syn_recv_ns: u64,
    /// `Established` (kube-proxy: 24 h).
    pub established_ns: u64,
    /// `FinWait` (conntrack: 120 s).
    pub fin_wait_ns: u64,
    /// `CloseWait` (kube-proxy: 1 h).
    pub close_wait_ns: u64,
    /// `LastAck` (conntrack: 30 s).
    pub last_ack_ns: u64,
    /// `TimeWait` (61 s: Linux's TIME_WAIT is 60 s, so a backend's TIME_WAIT has always ended
    /// when the SNAT tuple is free again; conntrack keeps 120 s, which halves the new
    /// connections per second one SNAT address can carry to one backend. Within it, a tuple
    /// may still be reused as RFC 6191 allows: see [`Flow::reusable_by`]).
    pub time_wait_ns: u64,
    /// `Close` (conntrack: 10 s).
    pub close_ns: u64,
    /// `UdpUnreplied` (conntrack: 30 s).
    pub udp_unreplied_ns: u64,
    /// `UdpReplied` (conntrack's stream timeout: 120 s).
    pub udp_replied_ns: u64,
}

const S: u64 = 1_000_000_000;

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            syn_sent_ns: 120 * S,
            syn_recv_ns: 60 * S,
            established_ns: 86_400 * S,
            fin_wait_ns: 120 * S,
            close_wait_ns: 3_600 * S,
            last_ack_ns: 30 * S,
            time_wait_ns: 61 * S,
            close_ns: 10 * S,
            udp_unreplied_ns: 30 * S,
            udp_replied_ns: 120 * S,
        }
    }
}

impl Timeouts {
    /// The timeout of a state.
    #[inline(always)]
    pub fn of(&self, s: FlowState) -> u64 {
        match s {
            FlowState::SynSent => self.syn_sent_ns,
            FlowState::SynRecv => self.syn_recv_ns,
            FlowState::SynProxy => self.syn_sent_ns,
            FlowState::Established => self.established_ns,
            FlowState::FinWait => self.fin_wait_ns,
            FlowState::CloseWait => self.close_wait_ns,
            FlowState::LastAck => self.last_ack_ns,
            FlowState::TimeWait => self.time_wait_ns,
            FlowState::Close => self.close_ns,
            FlowState::UdpUnreplied => self.udp_unreplied_ns,
            FlowState::UdpReplied => self.udp_replied_ns,
        }
    }
}

const FIN_FWD: u8 = 1;
const FIN_REV: u8 = 2;
/// The backend's FIN acknowledged the client's: it closed passively (CLOSE_WAIT, LAST_ACK,
/// CLOSED) and holds no TIME_WAIT for the tuple. Without this bit a closed flow's backend may
/// hold TIME_WAIT: it closed first, or the two FINs crossed (both sides then hold TIME_WAIT).
const BACKEND_PASSIVE: u8 = 4;
/// Opened through a SYN cookie: the backend's sequence numbers are shifted by [`Flow::delta`]
/// on the way to the client (and the client's acknowledgements back). A new SYN on the tuple
/// clears it with the other bits.
const PROXIED: u8 = 8;
/// Its backend stopped answering (`L4::backend_unreachable`): the next segment from the client
/// is answered with a RST at the sequence number it acknowledges, and the flow ends.
const DOOMED: u8 = 16;

/// Whether serial number `a` comes after `b` (RFC 1982 arithmetic on 32 bits).
#[inline(always)]
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// What the tracker knows of one direction's sequence space: the sender's next sequence number,
/// the largest window it advertised (scaled), its window scale, its last timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTrack {
    /// The sequence number after the highest byte (SYN and FIN count one) the sender sent.
    pub end: u32,
    /// The largest window the sender advertised, scaled: how far past its acknowledgement the
    /// *other* side may send.
    pub max_win: u32,
    /// The last TSval the sender sent (valid when `has_ts`).
    pub tsval: u32,
    /// The acknowledgement number of the sender's last segment with ACK (valid when `has_ack`):
    /// a RST from the other side with exactly this sequence number answers it (RFC 9293
    /// §3.10.7.3: how a SYN-SENT client resets a TIME_WAIT's ACK of an old connection).
    pub last_ack: u32,
    /// The sender's window scale shift (from its SYN; 0 without the option).
    pub scale: u8,
    /// Whether `end` has been set from a segment.
    pub known: bool,
    /// Whether `tsval` is set.
    pub has_ts: bool,
    /// Whether `last_ack` is set.
    pub has_ack: bool,
}

/// The smallest window the in-window check allows (the largest unscaled window): a side that
/// advertised less, or whose window was never seen, is not held to less than this.
const MIN_WINDOW: u32 = 65_535;

/// One tracked flow: two cache lines, aligned, so a lookup touches exactly two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Flow {
    /// The key of client → service packets.
    pub fwd: FlowKey,
    /// The key of backend → client packets (after NAT, as they arrive at the gateway).
    pub rev: FlowKey,
    /// The service, in generation `generation`.
    pub service: ServiceId,
    /// The backend, in generation `generation`.
    pub backend: BackendId,
    /// The table generation `service` and `backend` refer to.
    pub generation: Generation,
    /// Tracking state.
    pub state: FlowState,
    /// Whether the flow is counted as an active connection of `backend` (by the scheduler
    /// state of generation `generation`).
    pub counted: bool,
    fins: u8,
    /// Whether the kernel's fast path forwards this flow (its entries are installed or asked
    /// for): its packets are not seen here, so it does not expire here until it is withdrawn
    /// (see [`Flow::is_expired`]); and whether its entries' last-seen time has been asked for.
    offload: Offload,
    /// When the flow expires unless another packet refreshes it.
    pub expires_ns: u64,
    /// When the last packet was seen.
    pub last_seen_ns: u64,
    fwd_bucket: u32,
    rev_bucket: u32,
    fwd_slot: u8,
    rev_slot: u8,
    /// Sequence tracking, client → service and backend → client.
    pub seq: [SeqTrack; 2],
    /// Incremented each time the slab slot is reused: tells a stale debris entry from the
    /// slot's current flow.
    stamp: u32,
    /// For a flow opened through a SYN cookie ([`Flow::is_proxied`]): the client's sequence
    /// space minus the backend's (the cookie minus the backend's initial sequence number). Until
    /// the backend answers (`SynProxy`), the client's initial sequence number plus one.
    pub delta: u32,
}

impl Flow {
    /// A new flow in `state`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a flow is born with all of these; a builder would only hide them"
    )]
    pub fn new(
        fwd: FlowKey,
        rev: FlowKey,
        service: ServiceId,
        backend: BackendId,
        generation: Generation,
        state: FlowState,
        now_ns: u64,
        timeouts: &Timeouts,
    ) -> Flow {
        Flow {
            fwd,
            rev,
            service,
            backend,
            generation,
            state,
            counted: false,
            fins: 0,
            offload: Offload::No,
            expires_ns: now_ns + timeouts.of(state),
            last_seen_ns: now_ns,
            fwd_bucket: 0,
            rev_bucket: 0,
            fwd_slot: 0,
            rev_slot: 0,
            seq: [SeqTrack::default(); 2],
            stamp: 0,
            delta: 0,
        }
    }

    /// A flow carried over from a previous gateway's journal ([`crate::journal`]): in no
    /// table generation, its timeout starting at `now_ns`, its sequence positions unknown but
    /// for a closed one's client side (`closing`: its last sequence end and timestamp).
    /// `None` when `fin_bits` holds a bit no flow has.
    #[expect(clippy::too_many_arguments, reason = "each is one field of the record")]
    pub(crate) fn carried_over(
        fwd: FlowKey,
        rev: FlowKey,
        state: FlowState,
        fin_bits: u8,
        delta: u32,
        closing: Option<(u32, Option<u32>)>,
        now_ns: u64,
        timeouts: &Timeouts,
    ) -> Option<Flow> {
        if fin_bits & !(FIN_FWD | FIN_REV | BACKEND_PASSIVE | PROXIED | DOOMED) != 0 {
            return None;
        }
        let mut f = Flow::new(
            fwd,
            rev,
            ServiceId::NONE,
            BackendId::NONE,
            crate::journal::ADOPTED,
            state,
            now_ns,
            timeouts,
        );
        f.fins = fin_bits;
        f.delta = delta;
        if let Some((end, ts)) = closing {
            f.seq[0] = SeqTrack {
                end,
                known: true,
                tsval: ts.unwrap_or(0),
                has_ts: ts.is_some(),
                ..SeqTrack::default()
            };
        }
        Some(f)
    }

    /// The FIN and SYN-cookie bits, as the journal keeps them.
    #[inline(always)]
    pub(crate) fn fin_bits(&self) -> u8 {
        self.fins
    }

    /// What the journal keeps of the flow's tracking (state and FIN bits): when it changes,
    /// the caller rewrites the flow's record ([`FlowTable::journal_update`]).
    #[inline(always)]
    pub fn journal_state(&self) -> u16 {
        u16::from(self.state as u8) | (u16::from(self.fins) << 8)
    }

    /// Whether the flow was opened through a SYN cookie (its backend's sequence numbers are
    /// shifted by [`Flow::delta`]).
    #[inline(always)]
    pub fn is_proxied(&self) -> bool {
        self.fins & PROXIED != 0
    }

    /// Whether the flow's backend stopped answering (see [`Flow::set_doomed`]).
    #[inline(always)]
    pub fn is_doomed(&self) -> bool {
        self.fins & DOOMED != 0
    }

    /// Marks the flow's backend as gone: the client's next segment gets a RST (the engine's).
    #[inline]
    pub fn set_doomed(&mut self) {
        self.fins |= DOOMED;
    }

    /// Marks the flow as opened through a SYN cookie.
    #[inline]
    pub fn set_proxied(&mut self) {
        self.fins |= PROXIED;
    }

    /// Whether the flow had expired at `now_ns`. An offloaded flow never has: its packets
    /// went through the kernel unseen, and its deadline means only that it is time to take it
    /// back ([`FlowTable::sweep`] does, and gives it [`OFFLOAD_GRACE_NS`] to show it is alive).
    #[inline(always)]
    pub fn is_expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_ns && self.offload == Offload::No
    }

    /// Where packets of direction `dir` go after NAT: the backend for [`Dir::Forward`], the
    /// client for [`Dir::Reverse`].
    #[inline(always)]
    pub fn to(&self, dir: Dir) -> Addr {
        match dir {
            Dir::Forward => self.rev.src,
            Dir::Reverse => self.fwd.src,
        }
    }

    /// Whether the kernel's fast path forwards this flow (see [`Flow::set_offloaded`]).
    #[inline(always)]
    pub fn is_offloaded(&self) -> bool {
        self.offload != Offload::No
    }

    /// Whether the kernel's counts and last-seen time of this offloaded flow's entries have
    /// been asked for ([`FlowTable::sweep`] at its deadline) and not yet read back.
    #[inline]
    pub fn is_asked(&self) -> bool {
        self.offload == Offload::Asked
    }

    /// Marks the flow as forwarded by the kernel's fast path (`true`, when its entries are
    /// asked for) or by this engine again (`false`, when their removal is asked for).
    #[inline]
    pub fn set_offloaded(&mut self, on: bool) {
        self.offload = if on { Offload::Yes } else { Offload::No };
    }

    /// Decides, from the last-seen time the kernel's fast path read back for this offloaded
    /// flow's entries (`kernel_last_seen_ns`, CLOCK_MONOTONIC as `now_ns`; 0 when neither
    /// entry forwarded a frame or they are gone), whether it lives on in the kernel. The flow
    /// was last seen at the later of that and its own `last_seen_ns`; it is live when its
    /// state's timeout has not run out since. Live: its deadline moves to that time plus the
    /// timeout and it stays offloaded. Idle: it is taken back (unmarked; the caller removes
    /// its entries) and given [`OFFLOAD_GRACE_NS`], as at a deadline without read-back. A
    /// flow no longer offloaded is left alone ([`ReadBack::NotOffloaded`]).
    pub fn read_back(&mut self, kernel_last_seen_ns: u64, now_ns: u64, t: &Timeouts) -> ReadBack {
        if !self.is_offloaded() {
            return ReadBack::NotOffloaded;
        }
        // A frame the kernel forwarded after `now_ns` was read: the flow is as live as can be.
        let last = self.last_seen_ns.max(kernel_last_seen_ns.min(now_ns));
        let deadline = last.saturating_add(t.of(self.state));
        if now_ns < deadline {
            self.last_seen_ns = last;
            self.expires_ns = deadline;
            self.offload = Offload::Yes;
            ReadBack::Live
        } else {
            self.offload = Offload::No;
            self.expires_ns = self.expires_ns.max(now_ns + OFFLOAD_GRACE_NS);
            ReadBack::Idle
        }
    }

    /// Whether the kernel's fast path may forward this flow's packets: an established TCP
    /// connection not opened through a SYN cookie (the program does not shift sequence
    /// numbers), or a UDP flow its backend has answered; with a backend (an orphan stays here,
    /// where it is decided when it ends). The caller checks the generation.
    #[inline]
    pub fn offloadable(&self) -> bool {
        let state = match self.state {
            FlowState::Established => !self.is_proxied(),
            FlowState::UdpReplied => true,
            _ => false,
        };
        state && self.backend != BackendId::NONE
    }

    /// Advances the TCP state machine for a segment with `tcp_flags` seen in `dir`.
    #[inline]
    pub fn on_tcp(&mut self, dir: Dir, tcp_flags: u8, now_ns: u64, t: &Timeouts) {
        use FlowState::*;
        let syn = tcp_flags & flags::SYN != 0;
        let ack = tcp_flags & flags::ACK != 0;
        let fin = tcp_flags & flags::FIN != 0;
        self.state = if tcp_flags & flags::RST != 0 {
            Close
        } else {
            match (self.state, dir) {
                // A new SYN on a closed tuple reopens it (conntrack does the same).
                (TimeWait | Close, Dir::Forward) if syn && !ack => {
                    self.fins = 0;
                    SynSent
                }
                (SynSent, Dir::Reverse) if syn && ack => SynRecv,
                // The backend answered the gateway's SYN; the client is already established.
                (SynProxy, Dir::Reverse) if syn && ack => Established,
                (SynProxy, _) => SynProxy,
                (SynRecv, Dir::Forward) if ack && !syn => Established,
                (s @ (SynSent | SynRecv), _) => s,
                (s, d) if fin => {
                    self.fins |= if d == Dir::Forward { FIN_FWD } else { FIN_REV };
                    match (s, self.fins & (FIN_FWD | FIN_REV)) {
                        (_, f) if f == FIN_FWD | FIN_REV => LastAck,
                        (_, FIN_FWD) => FinWait,
                        _ => CloseWait,
                    }
                }
                (LastAck, _) if ack => TimeWait,
                (s, _) => s,
            }
        };
        self.last_seen_ns = now_ns;
        self.expires_ns = now_ns + t.of(self.state);
    }

    /// Records a TCP segment from `dir` in the sequence tracker and says whether its sequence
    /// number lies in the window the receiver allows (always true for a direction not yet
    /// known — a flow adopted mid-stream — as conntrack's liberal pickup does). Call it before
    /// [`Self::on_tcp`]; a RST or FIN outside the window must not reach the state machine.
    ///
    /// `opts` are the segment's options, read by the caller only when they matter: on SYNs
    /// (window scale) and while the flow is closing (the timestamp RFC 6191 reuse compares).
    #[inline]
    pub fn track(
        &mut self,
        dir: Dir,
        m: &crate::packet::TcpSegment,
        opts: Option<sluice_wire::tcp::Options>,
    ) -> bool {
        let (me, other) = match dir {
            Dir::Forward => (0, 1),
            Dir::Reverse => (1, 0),
        };
        let syn = m.flags & flags::SYN != 0;
        let end = m.seq.wrapping_add(m.len);
        let rx = self.seq[other];
        let t = &mut self.seq[me];
        let answers_ack = m.flags & flags::RST != 0 && rx.has_ack && m.seq == rx.last_ack;
        let in_window = if syn || !t.known || answers_ack {
            true
        } else {
            // The receiver accepts [its acknowledgement, + its window); the sender may also
            // retransmit up to a window back. Centre on the sender's highest end.
            let w = rx.max_win.max(MIN_WINDOW);
            let lo = t.end.wrapping_sub(w).wrapping_sub(1);
            let hi = t.end.wrapping_add(w).wrapping_add(1);
            seq_after(m.seq, lo) && seq_after(hi, m.seq)
        };
        if syn {
            let o = opts.unwrap_or_default();
            t.scale = o.window_scale.unwrap_or(0);
            if dir == Dir::Reverse && o.window_scale.is_none() {
                // Scaling applies only when both SYNs carry the option (RFC 7323 §2.2).
                self.seq[other].scale = 0;
                self.seq[me].scale = 0;
            }
        }
        let t = &mut self.seq[me];
        if in_window {
            if !t.known || seq_after(end, t.end) {
                t.end = end;
            }
            t.known = true;
            // A SYN's window is never scaled.
            let win = if syn { u32::from(m.window) } else { u32::from(m.window) << t.scale };
            t.max_win = t.max_win.max(win);
            if let Some(ts) = opts.and_then(|o| o.tsval) {
                t.tsval = ts;
                t.has_ts = true;
            }
            if m.flags & flags::ACK != 0 {
                t.last_ack = m.ack;
                t.has_ack = true;
            }
            // The backend's FIN acknowledging the client's FIN: a passive close.
            if dir == Dir::Reverse
                && m.flags & (flags::FIN | flags::ACK) == flags::FIN | flags::ACK
                && self.fins & FIN_FWD != 0
                && !seq_after(self.seq[0].end, m.ack)
            {
                self.fins |= BACKEND_PASSIVE;
            }
        }
        in_window
    }

    /// Whether the tracker reads this flow's segments' options: on the way to closed, where
    /// the last timestamps decide whether the tuple may be reused early.
    #[inline(always)]
    pub fn wants_options(&self) -> bool {
        !matches!(self.state, FlowState::Established | FlowState::UdpReplied | FlowState::UdpUnreplied)
    }

    /// Whether a new connection whose SYN has sequence number `isn` and timestamp `tsval` may
    /// take this flow's reverse tuple now (the backend would accept the SYN on it), before the
    /// flow expires. Only closed flows qualify:
    /// - reset, or closed passively by the backend (its FIN acknowledged the client's): the
    ///   backend went through LAST_ACK to CLOSED and holds nothing;
    /// - otherwise (it closed first, or the FINs crossed) the backend holds TIME_WAIT, which accepts a new SYN
    ///   (RFC 6191, Linux `tcp_timewait_state_process`) when it is not rejected by PAWS (its
    ///   timestamp, if both have one, is not older than the last one seen) and its sequence
    ///   number is after the old connection's, or its timestamp newer.
    pub fn reusable_by(&self, isn: u32, tsval: Option<u32>) -> bool {
        match self.state {
            FlowState::Close => true,
            FlowState::TimeWait if self.fins & BACKEND_PASSIVE != 0 => true,
            FlowState::TimeWait => {
                let old = &self.seq[0];
                if !old.known {
                    return false;
                }
                let (paws_reject, ts_newer) = match (tsval, old.has_ts) {
                    (Some(new), true) => (seq_after(old.tsval, new), seq_after(new, old.tsval)),
                    _ => (false, false),
                };
                !paws_reject && (seq_after(isn, old.end) || ts_newer)
            }
            _ => false,
        }
    }

    /// Refreshes a UDP flow for a datagram seen in `dir`.
    #[inline]
    pub fn on_udp(&mut self, dir: Dir, now_ns: u64, t: &Timeouts) {
        if dir == Dir::Reverse {
            self.state = FlowState::UdpReplied;
        }
        self.last_seen_ns = now_ns;
        self.expires_ns = now_ns + t.of(self.state);
    }

    /// Whether the connection is over (it no longer counts as active).
    #[inline(always)]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, FlowState::TimeWait | FlowState::Close)
    }

    /// Whether the flow has never seen a reply (a SYN not answered, a UDP datagram not answered):
    /// what conntrack calls unassured, the first to give way under pressure.
    ///
    /// A TCP flow counts as half-open until the client's ACK completes the handshake: a SYN
    /// the backend answered (SYN-RECEIVED) is still half-open, or a flood whose SYNs a backend
    /// answers would hold the table and every SNAT port.
    #[inline]
    pub fn is_unassured(&self) -> bool {
        matches!(self.state, FlowState::SynSent | FlowState::SynRecv | FlowState::UdpUnreplied)
    }

    /// Eviction preference: lower goes first.
    #[inline]
    fn victim_class(&self, now_ns: u64) -> u8 {
        if self.is_expired(now_ns) {
            return 0;
        }
        match self.state {
            FlowState::Close | FlowState::TimeWait => 1,
            FlowState::SynSent | FlowState::SynRecv | FlowState::UdpUnreplied => 2,
            // The kernel forwards an offloaded flow's packets unseen: its `last_seen_ns` says
            // nothing of how idle it is, and evicting it frees its tuple while its entries live
            // on until the installer removes them. Last of all.
            _ if self.is_offloaded() => 4,
            _ => 3,
        }
    }
}

/// What [`FlowTable::sweep`] did to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// Removed: it expired.
    Expired,
    /// Taken back from the fast path (it stays).
    Withdrawn,
    /// An offloaded flow at its deadline: the kernel's last-seen time of its entries is to be
    /// read back ([`Flow::read_back`] decides); [`READBACK_WAIT_NS`] for the answer.
    Asked,
}

/// Where a flow stands with the kernel's fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Offload {
    /// Its packets come here.
    No,
    /// Its entries are installed or asked for: the kernel forwards its packets.
    Yes,
    /// Offloaded, past its deadline, the kernel's last-seen time asked for.
    Asked,
}

/// What [`Flow::read_back`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// The kernel forwarded a frame of it within its timeout: it stays offloaded, its
    /// deadline moved on.
    Live,
    /// Idle past its timeout: taken back (its entries are to be removed).
    Idle,
    /// It was not offloaded (taken back since it was asked about): nothing done.
    NotOffloaded,
}

/// How long a flow taken back from the fast path at its deadline lives on (when nothing
/// refreshes it): long enough for its entries to be removed and its next packet to arrive here.
pub const OFFLOAD_GRACE_NS: u64 = 10_000_000_000;

/// How long an offloaded flow at its deadline waits for the kernel's last-seen time of its
/// entries ([`Swept::Asked`]); without an answer by then, it is taken back as without
/// read-back (withdrawn, [`OFFLOAD_GRACE_NS`]). The installer answers within its 10 ms pass.
pub const READBACK_WAIT_NS: u64 = 1_000_000_000;

/// Index of a flow in the slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub u32);

/// An index entry seen by [`FlowTable::prefetch_flow`], to try first in
/// [`FlowTable::lookup_hinted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint(u32);

const WAYS: usize = 16;

/// The fewest live flows one slab eviction compares.
pub const CLOCK_SWEEP_MIN: usize = 4;
/// The most slab slots one slab eviction examines while it finds only open connections.
pub const CLOCK_SWEEP_MAX: usize = 256;

/// Sixteen index entries in two adjacent cache lines: one line of tags (upper hash bits, never
/// 0; 0 marks an empty entry), one of slots (`slab index << 1 | direction`). A probe compares all
/// sixteen tags at once ([`sluice_sys::match_u32x16`]: four vector compares and a mask) and
/// reads a slot only for a matching tag.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Bucket {
    tags: [u32; WAYS],
    slots: [u32; WAYS],
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket { tags: [0; WAYS], slots: [0; WAYS] }
    }
}

impl Bucket {
    /// A bit mask of the entries whose tag is `tag`.
    #[inline(always)]
    fn matching(&self, tag: u32) -> u32 {
        sluice_sys::match_u32x16(&self.tags, tag)
    }
}

/// Counters the table keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    /// Flows inserted.
    pub inserted: u64,
    /// Flows removed by expiry (sweep or lazy).
    pub expired: u64,
    /// Live flows evicted to make room.
    pub evicted: u64,
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The forward or reverse key is already present.
    Exists,
}

/// The flow table. See the module documentation.
pub struct FlowTable {
    buckets: Box<[Bucket]>,
    mask: u32,
    flows: Box<[Flow]>,
    live: Box<[bool]>,
    free: Vec<u32>,
    seed: u64,
    sweep_at: usize,
    clock_at: usize,
    next_victim: Option<(u32, u64)>,
    /// Flows that became debris (half-open or closed), oldest first: `slot << 32 | stamp`
    /// entries in a ring. An entry is only a hint — the flow may have moved on or its slot been
    /// reused since — and is checked when taken. See [`Self::note_debris`].
    debris: Box<[u64]>,
    debris_head: usize,
    debris_len: usize,
    len: usize,
    stats: FlowTableStats,
    /// Where live flows are recorded for a gateway started after this one.
    journal: Option<Journal>,
    /// Where each journal record also goes, for the flow-sync peers ([`crate::peers`]).
    outbox: Option<Outbox>,
}

/// Takes a copy of each record the flow table writes (a new flow, a change of its tracking
/// state) and of each flow's end ([`crate::journal::encode_closed`]): the flow-sync sender's
/// queue. Called on the hot path, once per flow event: it must neither block nor allocate.
pub type Outbox = Box<dyn FnMut(&[u8; crate::journal::RECORD]) + Send>;

impl core::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.flows.len())
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl FlowTable {
    /// A table for up to `capacity` flows (at least 1), placing keys with `seed`.
    ///
    /// Memory: about `capacity × (size_of::<Flow>() + 41)` bytes, all allocated here.
    pub fn new(capacity: usize, seed: u64) -> FlowTable {
        let capacity = capacity.clamp(1, (u32::MAX >> 1) as usize);
        // Two entries per flow, and twice that many slots: ≤ 50 % average occupancy.
        let nbuckets = (capacity * 2 * 2).div_ceil(WAYS).next_power_of_two().max(2);
        let empty = Flow::new(
            FlowKey::default(),
            FlowKey::default(),
            ServiceId(0),
            BackendId(0),
            Generation(0),
            FlowState::Close,
            0,
            &Timeouts::default(),
        );
        FlowTable {
            buckets: sluice_sys::huge_slice(nbuckets, Bucket::default()),
            mask: (nbuckets - 1) as u32,
            flows: sluice_sys::huge_slice(capacity, empty),
            live: vec![false; capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            seed,
            sweep_at: 0,
            clock_at: 0,
            next_victim: None,
            debris: vec![0; capacity].into_boxed_slice(),
            debris_head: 0,
            debris_len: 0,
            len: 0,
            stats: FlowTableStats::default(),
            journal: None,
            outbox: None,
        }
    }

    /// Maximum number of flows.
    pub fn capacity(&self) -> usize {
        self.flows.len()
    }

    /// Number of live flows (expired ones not yet removed included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counters.
    pub fn stats(&self) -> FlowTableStats {
        self.stats
    }

    /// The placement hash of a key.
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        hash::flow(self.seed, &key.words())
    }

    #[inline(always)]
    fn bucket_of(&self, h: u64) -> u32 {
        h as u32 & self.mask
    }

    #[inline(always)]
    fn tag_of(h: u64) -> u32 {
        (h >> 32) as u32 | 1
    }

    /// Prefetches the bucket a hash maps to. Call it for a whole batch first, then
    /// [`Self::prefetch_flow`] for the batch, then look up: the loads of the batch overlap
    /// instead of queueing.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        let b = &self.buckets[self.bucket_of(h) as usize];
        sluice_sys::prefetch(&b.tags);
        sluice_sys::prefetch(&b.slots);
    }

    /// Prefetches the flow record the bucket's first entry with a matching tag points to, and
    /// returns that entry as a [`Hint`] for [`Self::lookup_hinted`]; `None` when no entry matches
    /// (the key is almost surely absent).
    #[inline(always)]
    pub fn prefetch_flow(&self, h: u64) -> Option<Hint> {
        let b = &self.buckets[self.bucket_of(h) as usize];
        let m = b.matching(Self::tag_of(h));
        if m == 0 {
            return None;
        }
        let e = b.slots[m.trailing_zeros() as usize];
        let f = &self.flows[(e >> 1) as usize];
        sluice_sys::prefetch(f);
        sluice_sys::prefetch(&f.expires_ns);
        Some(Hint(e))
    }

    /// [`Self::lookup`], trying the entry [`Self::prefetch_flow`] found first. The hint may be
    /// stale (the table changed since); it is used only if that slot still holds a live flow
    /// with this very key, which is then the one.
    #[inline(always)]
    pub fn lookup_hinted(&self, key: &FlowKey, h: u64, hint: Option<Hint>) -> Option<(FlowId, Dir)> {
        if let Some(Hint(e)) = hint {
            let idx = (e >> 1) as usize;
            let dir = if e & 1 == 0 { Dir::Forward } else { Dir::Reverse };
            let f = &self.flows[idx];
            if self.live[idx] && *(if dir == Dir::Forward { &f.fwd } else { &f.rev }) == *key {
                return Some((FlowId(idx as u32), dir));
            }
        }
        self.lookup(key, h)
    }

    /// Finds the flow a key belongs to, and which of its keys matched. The flow may be expired:
    /// check [`Flow::is_expired`] and [`Self::remove`] it if so.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, h: u64) -> Option<(FlowId, Dir)> {
        let b = &self.buckets[self.bucket_of(h) as usize];
        let mut m = b.matching(Self::tag_of(h));
        while m != 0 {
            let e = b.slots[m.trailing_zeros() as usize];
            m &= m - 1;
            let idx = (e >> 1) as usize;
            let dir = if e & 1 == 0 { Dir::Forward } else { Dir::Reverse };
            let f = &self.flows[idx];
            let k = if dir == Dir::Forward { &f.fwd } else { &f.rev };
            if k == key {
                return Some((FlowId(idx as u32), dir));
            }
        }
        None
    }

    /// A flow by id.
    #[inline(always)]
    pub fn flow(&self, id: FlowId) -> &Flow {
        &self.flows[id.0 as usize]
    }

    /// A flow by id, mutably. Its keys must not be changed (they are indexed).
    #[inline(always)]
    pub fn flow_mut(&mut self, id: FlowId) -> &mut Flow {
        &mut self.flows[id.0 as usize]
    }

    /// Inserts a flow. Any flow evicted to make room is passed to `evicted` after it is gone.
    pub fn insert(
        &mut self,
        flow: Flow,
        now_ns: u64,
        evicted: &mut impl FnMut(&Flow),
    ) -> Result<FlowId, InsertError> {
        let hf = self.hash(&flow.fwd);
        let hr = self.hash(&flow.rev);
        if self.lookup(&flow.fwd, hf).is_some() || self.lookup(&flow.rev, hr).is_some() {
            return Err(InsertError::Exists);
        }
        Ok(self.insert_hashed(flow, hf, hr, now_ns, evicted))
    }

    /// Inserts a flow whose keys the caller has just looked up and found absent, with their
    /// hashes ([`Self::hash`]). Inserting a present key corrupts nothing but makes the older
    /// entry unreachable until it expires; [`Self::insert`] checks.
    pub fn insert_hashed(
        &mut self,
        flow: Flow,
        hf: u64,
        hr: u64,
        now_ns: u64,
        evicted: &mut impl FnMut(&Flow),
    ) -> FlowId {
        debug_assert!(self.lookup(&flow.fwd, hf).is_none() && self.lookup(&flow.rev, hr).is_none());
        let (bf, br) = (self.bucket_of(hf), self.bucket_of(hr));
        self.ensure_free(now_ns, evicted);
        let Some(idx) = self.free.pop() else {
            unreachable!("an eviction freed a slot");
        };
        let stamp = self.flows[idx as usize].stamp.wrapping_add(1);
        self.flows[idx as usize] = Flow { fwd_bucket: bf, rev_bucket: br, stamp, ..flow };
        self.live[idx as usize] = true;
        if self.flows[idx as usize].victim_class(now_ns) < 3 {
            self.note_debris(FlowId(idx));
        }
        self.len += 1;
        self.stats.inserted += 1;
        let fs = self.place(bf, Self::tag_of(hf), idx << 1, idx, now_ns, evicted);
        let rs = self.place(br, Self::tag_of(hr), (idx << 1) | 1, idx, now_ns, evicted);
        let f = &mut self.flows[idx as usize];
        f.fwd_slot = fs;
        f.rev_slot = rs;
        self.record(idx);
        self.choose_next_victim(now_ns);
        FlowId(idx)
    }

    /// Puts an index entry into bucket `b`, evicting from it if full; returns the entry's slot.
    fn place(
        &mut self,
        b: u32,
        tag: u32,
        slot_value: u32,
        protect: u32,
        now_ns: u64,
        evicted: &mut impl FnMut(&Flow),
    ) -> u8 {
        let free = self.buckets[b as usize].matching(0);
        if free != 0 {
            let slot = free.trailing_zeros() as usize;
            let bucket = &mut self.buckets[b as usize];
            bucket.tags[slot] = tag;
            bucket.slots[slot] = slot_value;
            return slot as u8;
        }
        let Some(victim) = self.victim_in(b, now_ns, protect) else {
            unreachable!("a full bucket holds at most two entries of the protected flow");
        };
        self.evict(victim, now_ns, evicted);
        let free = self.buckets[b as usize].matching(0);
        if free == 0 {
            unreachable!("evicting a flow of this bucket freed an entry");
        }
        let slot = free.trailing_zeros() as usize;
        let bucket = &mut self.buckets[b as usize];
        bucket.tags[slot] = tag;
        bucket.slots[slot] = slot_value;
        slot as u8
    }

    fn evict(&mut self, victim: u32, now_ns: u64, evicted: &mut impl FnMut(&Flow)) {
        if self.flows[victim as usize].is_expired(now_ns) {
            self.stats.expired += 1;
        } else {
            self.stats.evicted += 1;
        }
        let f = self.remove_inner(victim);
        evicted(&f);
    }

    /// The flow of bucket `b` that matters least, other than `protect`.
    fn victim_in(&self, b: u32, now_ns: u64, protect: u32) -> Option<u32> {
        let mut best: Option<(u8, u64, u32)> = None;
        let bucket = &self.buckets[b as usize];
        for (&t, &e) in bucket.tags.iter().zip(&bucket.slots) {
            if t == 0 {
                continue;
            }
            let idx = e >> 1;
            if idx == protect {
                continue;
            }
            let f = &self.flows[idx as usize];
            let score = (f.victim_class(now_ns), f.last_seen_ns, idx);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        best.map(|(_, _, i)| i)
    }

    /// The flow to evict when the slab is full, found by a CLOCK hand that walks the slab in
    /// order (sequential memory, which the hardware prefetches): the best of at least
    /// [`CLOCK_SWEEP_MIN`] live flows — expired before closed before half-open before open, then
    /// the longest idle — stopping at once on an expired one, and looking on (up to
    /// [`CLOCK_SWEEP_MAX`]) while it has found only open connections.
    fn clock_victim(&mut self, now_ns: u64) -> u32 {
        let n = self.flows.len();
        // (class, last seen, order of the visit, slot): among equals the hand's first wins, and
        // the hand resumes just after the victim, so equals leave in FIFO order and every slot
        // gets its turn.
        let mut best: Option<(u8, u64, usize, u32)> = None;
        let mut at = self.clock_at;
        let mut scanned = 0;
        while scanned < n.min(CLOCK_SWEEP_MAX) {
            let i = at;
            at = if i + 1 == n { 0 } else { i + 1 };
            scanned += 1;
            if !self.live[i] {
                continue;
            }
            let f = &self.flows[i];
            let score = (f.victim_class(now_ns), f.last_seen_ns, scanned, i as u32);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
            match best {
                Some((0, ..)) => break,
                Some((c, ..)) if c < 3 && scanned >= CLOCK_SWEEP_MIN => break,
                _ => {}
            }
        }
        match best {
            Some((3, ..)) if let Some(i) = self.take_debris(now_ns) => i,
            Some((.., i)) => {
                self.clock_at = if i as usize + 1 == n { 0 } else { i as usize + 1 };
                i
            }
            // Only called with a full slab, whose every slot is live.
            None => unreachable!("a full slab has live flows"),
        }
    }

    /// Remembers that a flow became debris — half-open (inserted by a SYN or an unanswered
    /// datagram) or closed — so that eviction finds it wherever it sits in the slab, not only
    /// within the CLOCK hand's window: while any debris is tracked, no open connection is
    /// evicted. The ring holds one entry per slab slot; when full, the oldest entry is dropped
    /// (the CLOCK hand still finds that flow when it passes it).
    #[inline]
    pub fn note_debris(&mut self, id: FlowId) {
        let n = self.debris.len();
        let entry = (u64::from(id.0) << 32) | u64::from(self.flows[id.0 as usize].stamp);
        if self.debris_len == n {
            self.debris_head = if self.debris_head + 1 == n { 0 } else { self.debris_head + 1 };
            self.debris_len -= 1;
        }
        let mut at = self.debris_head + self.debris_len;
        if at >= n {
            at -= n;
        }
        self.debris[at] = entry;
        self.debris_len += 1;
    }

    /// The oldest tracked flow that is still debris, taken off the ring; stale entries met on
    /// the way are dropped (each entry is taken once: amortised O(1) per insert).
    fn take_debris(&mut self, now_ns: u64) -> Option<u32> {
        let n = self.debris.len();
        while self.debris_len > 0 {
            let e = self.debris[self.debris_head];
            self.debris_head = if self.debris_head + 1 == n { 0 } else { self.debris_head + 1 };
            self.debris_len -= 1;
            let (idx, stamp) = ((e >> 32) as u32, e as u32);
            let f = &self.flows[idx as usize];
            if self.live[idx as usize] && f.stamp == stamp && f.victim_class(now_ns) < 3 {
                return Some(idx);
            }
        }
        None
    }

    /// How many debris entries the ring holds (some may be stale).
    pub fn debris_tracked(&self) -> usize {
        self.debris_len
    }

    /// Makes sure a slab slot is free, evicting the victim chosen ahead if it is still as
    /// good a choice (not touched since), else a fresh one.
    fn ensure_free(&mut self, now_ns: u64, evicted: &mut impl FnMut(&Flow)) {
        if !self.free.is_empty() {
            return;
        }
        let victim = match self.next_victim.take() {
            // Chosen ahead: still the one, unless a packet touched it or it was offloaded since.
            Some((i, seen))
                if self.live[i as usize]
                    && self.flows[i as usize].last_seen_ns == seen
                    && !self.flows[i as usize].is_offloaded() =>
            {
                i
            }
            _ => self.clock_victim(now_ns),
        };
        self.evict(victim, now_ns, evicted);
    }

    /// With the slab full, chooses the next insert's victim now and prefetches the index lines
    /// its removal will touch, so that those misses overlap other work.
    fn choose_next_victim(&mut self, now_ns: u64) {
        if !self.free.is_empty() {
            return;
        }
        let v = self.clock_victim(now_ns);
        let f = &self.flows[v as usize];
        for b in [f.fwd_bucket, f.rev_bucket] {
            let b = &self.buckets[b as usize];
            sluice_sys::prefetch(&b.tags);
            sluice_sys::prefetch(&b.slots);
        }
        self.next_victim = Some((v, f.last_seen_ns));
    }

    /// Removes a flow and returns it.
    pub fn remove(&mut self, id: FlowId) -> Flow {
        self.remove_inner(id.0)
    }

    fn remove_inner(&mut self, idx: u32) -> Flow {
        let f = self.flows[idx as usize];
        debug_assert!(self.live[idx as usize]);
        // Entries never move within their bucket, so the slots recorded at insert still hold them.
        for (b, slot, dir) in [(f.fwd_bucket, f.fwd_slot, 0u32), (f.rev_bucket, f.rev_slot, 1u32)] {
            let bucket = &mut self.buckets[b as usize];
            debug_assert_eq!(bucket.slots[usize::from(slot)], (idx << 1) | dir);
            bucket.tags[usize::from(slot)] = 0;
        }
        self.live[idx as usize] = false;
        if let Some(j) = &mut self.journal {
            j.clear(idx);
        }
        if let Some(o) = &mut self.outbox {
            o(&crate::journal::encode_closed(&f));
        }
        self.free.push(idx);
        self.len -= 1;
        f
    }

    /// Records every flow in `mem` from now on, for a gateway started after this one
    /// ([`crate::journal`]): the flows already here at once, then each insert, each
    /// [`Self::journal_update`] and each removal. `mem` needs
    /// [`crate::journal::bytes_for`]`(capacity)` bytes, all zeros (a new file).
    pub fn set_journal(&mut self, mem: Memory) -> Result<(), JournalError> {
        let mut j = Journal::new(mem, self.flows.len())?;
        for (i, f) in self.flows.iter().enumerate() {
            if self.live[i] {
                j.write(i as u32, f);
            }
        }
        self.journal = Some(j);
        Ok(())
    }

    /// Stops journaling and lets go of the journal's memory (a file: unmapped, its lock
    /// released), which holds every flow as of now: for the next gateway to read while this one
    /// still runs (an upgrade's hand-over), once this one's L4 has stopped.
    pub fn close_journal(&mut self) {
        self.journal = None;
    }

    /// The journal's bytes, if there is one (tests, diagnostics).
    pub fn journal(&mut self) -> Option<&[u8]> {
        self.journal.as_mut().map(|j| &*j.bytes())
    }

    /// Rewrites a flow's journal record after its tracking state changed
    /// ([`Flow::journal_state`]).
    #[inline]
    pub fn journal_update(&mut self, id: FlowId) {
        self.record(id.0);
    }

    /// Writes slot `idx`'s record to the journal and the outbox, where there are.
    #[inline]
    fn record(&mut self, idx: u32) {
        if self.journal.is_none() && self.outbox.is_none() {
            return;
        }
        let rec = crate::journal::encode(&self.flows[idx as usize]);
        if let Some(j) = &mut self.journal {
            j.put(idx, &rec);
        }
        if let Some(o) = &mut self.outbox {
            o(&rec);
        }
    }

    /// Sends a copy of every record from now on to `outbox` (flow sync). The flows already
    /// here are not sent: a peer learns them from the journal's bulk transfer.
    pub fn set_outbox(&mut self, outbox: Outbox) {
        self.outbox = Some(outbox);
    }

    /// Removes up to `budget` slab slots' worth of expired flows, resuming where the last call
    /// stopped; each removed flow is passed to `expired`. Returns how many were removed.
    ///
    /// An offloaded flow is never removed here. Past its deadline, the kernel's last-seen time
    /// of its entries is asked for: it is passed with [`Swept::Asked`] and given
    /// [`READBACK_WAIT_NS`] for the answer ([`Flow::read_back`]). One of a generation other than
    /// `generation`, or asked and unanswered past that wait, is taken back from the fast path:
    /// unmarked, passed with [`Swept::Withdrawn`], and given [`OFFLOAD_GRACE_NS`] more, in which
    /// a live flow's next packet reaches the engine and refreshes it.
    pub fn sweep(
        &mut self,
        now_ns: u64,
        budget: usize,
        generation: Generation,
        swept: &mut impl FnMut(&Flow, Swept),
    ) -> usize {
        let n = self.flows.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            let i = self.sweep_at;
            self.sweep_at = if i + 1 == n { 0 } else { i + 1 };
            if !self.live[i] {
                continue;
            }
            let f = &mut self.flows[i];
            let past = now_ns >= f.expires_ns;
            let withdraw = match f.offload {
                Offload::No => false,
                _ if f.generation != generation => true,
                Offload::Yes if past => {
                    f.offload = Offload::Asked;
                    f.expires_ns = now_ns + READBACK_WAIT_NS;
                    swept(f, Swept::Asked);
                    continue;
                }
                // Asked, and no answer in time: taken back as without read-back.
                Offload::Asked => past,
                Offload::Yes => false,
            };
            if withdraw {
                f.offload = Offload::No;
                f.expires_ns = f.expires_ns.max(now_ns + OFFLOAD_GRACE_NS);
                swept(f, Swept::Withdrawn);
                continue;
            }
            if self.flows[i].is_expired(now_ns) {
                let f = self.remove_inner(i as u32);
                self.stats.expired += 1;
                swept(&f, Swept::Expired);
                removed += 1;
            }
        }
        removed
    }

    /// Takes every flow back from the fast path (its entries are all being removed at once):
    /// unmarks them; returns how many were marked. Control path: it walks the whole slab.
    pub fn forget_offloaded(&mut self) -> usize {
        let mut n = 0;
        for (i, f) in self.flows.iter_mut().enumerate() {
            if self.live[i] && f.is_offloaded() {
                f.offload = Offload::No;
                n += 1;
            }
        }
        n
    }

    /// Slab slot `i`: `None` past the end, `Some(None)` when free, else its flow. For a pass
    /// over the slab one slot at a time (control work spread over polls).
    pub fn slot(&self, i: usize) -> Option<Option<(FlowId, &Flow)>> {
        let f = self.flows.get(i)?;
        Some(self.live[i].then_some((FlowId(i as u32), f)))
    }

    /// Calls `f` on every live flow (control path: status, rebuilding counters).
    pub fn for_each(&self, mut f: impl FnMut(FlowId, &Flow)) {
        for (i, fl) in self.flows.iter().enumerate() {
            if self.live[i] {
                f(FlowId(i as u32), fl);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const T: Timeouts = Timeouts {
        syn_sent_ns: 120,
        syn_recv_ns: 60,
        established_ns: 1_000,
        fin_wait_ns: 120,
        close_wait_ns: 500,
        last_ack_ns: 30,
        time_wait_ns: 120,
        close_ns: 10,
        udp_unreplied_ns: 30,
        udp_replied_ns: 120,
    };

    fn key(i: u32, proto: u8) -> FlowKey {
        let b = i.to_be_bytes();
        FlowKey::new(
            Addr::from_v4([198, 18, b[2], b[3]]),
            1024 + (i >> 16) as u16,
            Addr::from_v4([198, 19, 0, 1]),
            80,
            proto,
        )
    }

    fn rev_of(i: u32) -> FlowKey {
        let b = i.to_be_bytes();
        FlowKey::new(
            Addr::from_v4([198, 18, 1, 1]),
            8080,
            Addr::from_v4([198, 18, 0, 1]),
            10_000 + i as u16,
            6,
        )
        .with_hi(b[1])
    }

    impl FlowKey {
        fn with_hi(mut self, hi: u8) -> FlowKey {
            self.dst.0[13] = hi;
            self
        }
    }

    fn flow(i: u32, state: FlowState, now: u64) -> Flow {
        Flow::new(key(i, 6), rev_of(i), ServiceId(0), BackendId(0), Generation(1), state, now, &T)
    }

    #[test]
    fn both_directions_resolve() {
        let mut t = FlowTable::new(16, 42);
        let id = t.insert(flow(1, FlowState::SynSent, 0), 0, &mut |_| panic!("no eviction")).unwrap();
        let k = key(1, 6);
        assert_eq!(t.lookup(&k, t.hash(&k)), Some((id, Dir::Forward)));
        let r = rev_of(1);
        assert_eq!(t.lookup(&r, t.hash(&r)), Some((id, Dir::Reverse)));
        assert_eq!(t.insert(flow(1, FlowState::SynSent, 0), 0, &mut |_| {}), Err(InsertError::Exists));
        let gone = t.remove(id);
        assert_eq!(gone.fwd, k);
        assert_eq!(t.lookup(&k, t.hash(&k)), None);
        assert_eq!(t.lookup(&r, t.hash(&r)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn tcp_state_machine() {
        let mut f = flow(1, FlowState::SynSent, 0);
        assert_eq!(f.expires_ns, 120);
        f.on_tcp(Dir::Reverse, flags::SYN | flags::ACK, 1, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::SynRecv, 61));
        f.on_tcp(Dir::Forward, flags::ACK, 2, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::Established, 1_002));
        f.on_tcp(Dir::Reverse, flags::ACK | flags::PSH, 3, &T);
        assert_eq!(f.state, FlowState::Established);
        f.on_tcp(Dir::Reverse, flags::FIN | flags::ACK, 4, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::CloseWait, 504));
        f.on_tcp(Dir::Forward, flags::FIN | flags::ACK, 5, &T);
        assert_eq!(f.state, FlowState::LastAck);
        f.on_tcp(Dir::Reverse, flags::ACK, 6, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::TimeWait, 126));
        // A new SYN reopens a closed tuple.
        f.on_tcp(Dir::Forward, flags::SYN, 7, &T);
        assert_eq!(f.state, FlowState::SynSent);
        f.on_tcp(Dir::Forward, flags::RST, 8, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::Close, 18));
    }

    #[test]
    fn udp_replied_lives_longer() {
        let mut f = Flow::new(
            key(1, 17),
            rev_of(1),
            ServiceId(0),
            BackendId(0),
            Generation(1),
            FlowState::UdpUnreplied,
            0,
            &T,
        );
        f.on_udp(Dir::Forward, 5, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::UdpUnreplied, 35));
        f.on_udp(Dir::Reverse, 6, &T);
        assert_eq!((f.state, f.expires_ns), (FlowState::UdpReplied, 126));
    }

    /// The expiry of an offloaded flow by its kernel last-seen time, against the rule it must
    /// follow: live exactly when the later of the two last-seen times is within the state's
    /// timeout of now; a live flow's deadline is that time plus the timeout and it stays
    /// offloaded; an idle one is taken back and lives [`OFFLOAD_GRACE_NS`] more.
    #[test]
    fn a_read_back_keeps_exactly_the_flows_seen_within_their_timeout() {
        let t = T;
        proptest!(|(
            udp in any::<bool>(),
            own in 0u64..1_000,
            kernel in prop_oneof![Just(0u64), 0u64..2_500],
            now in 0u64..2_500,
            asked in any::<bool>(),
        )| {
            let state = if udp { FlowState::UdpReplied } else { FlowState::Established };
            let mut f = flow(1, state, own);
            let now = now.max(own);
            f.set_offloaded(true);
            if asked {
                f.offload = Offload::Asked;
            }
            let last = own.max(kernel.min(now));
            let live = now < last + t.of(state);
            let was = f.expires_ns;
            let got = f.read_back(kernel, now, &t);
            if live {
                prop_assert_eq!(got, ReadBack::Live);
                prop_assert!(f.is_offloaded() && !f.is_asked());
                prop_assert_eq!(f.expires_ns, last + t.of(state));
                prop_assert_eq!(f.last_seen_ns, last);
                prop_assert!(!f.is_expired(now));
            } else {
                prop_assert_eq!(got, ReadBack::Idle);
                prop_assert!(!f.is_offloaded());
                prop_assert_eq!(f.expires_ns, was.max(now + OFFLOAD_GRACE_NS));
            }
            // Asked again once taken back: nothing changes.
            if !live {
                let before = f;
                prop_assert_eq!(f.read_back(now, now, &t), ReadBack::NotOffloaded);
                prop_assert_eq!(f, before);
            }
        });
    }

    #[test]
    fn the_sweep_asks_at_the_deadline_and_withdraws_when_no_answer_comes() {
        let t = T;
        let mut table = FlowTable::new(16, 7);
        let id = table.insert(flow(1, FlowState::UdpReplied, 1), 1, &mut |_| panic!("room")).unwrap();
        table.flow_mut(id).set_offloaded(true);
        let deadline = table.flow(id).expires_ns;
        let g = table.flow(id).generation;
        let sweep = |table: &mut FlowTable, now| {
            let mut seen = Vec::new();
            table.sweep(now, 16, g, &mut |_, how| seen.push(how));
            seen
        };
        assert_eq!(sweep(&mut table, deadline - 1), vec![], "not yet");
        assert_eq!(sweep(&mut table, deadline), vec![Swept::Asked]);
        assert!(table.flow(id).is_asked() && table.flow(id).is_offloaded());
        assert_eq!(sweep(&mut table, deadline + READBACK_WAIT_NS - 1), vec![], "waiting for the answer");
        // The answer: the kernel forwarded a frame lately. Kept, its deadline moved on.
        let now = deadline + 80;
        let kernel = now - 50;
        assert_eq!(table.flow_mut(id).read_back(kernel, now, &t), ReadBack::Live);
        assert_eq!(table.flow(id).expires_ns, kernel + t.udp_replied_ns);
        assert_eq!(sweep(&mut table, kernel + t.udp_replied_ns - 1), vec![], "no longer past its deadline");
        // The next deadline: asked again, and no answer comes: withdrawn as without read-back.
        let next = table.flow(id).expires_ns;
        assert_eq!(sweep(&mut table, next), vec![Swept::Asked]);
        assert_eq!(sweep(&mut table, next + READBACK_WAIT_NS), vec![Swept::Withdrawn]);
        assert!(!table.flow(id).is_offloaded());
        assert_eq!(table.flow(id).expires_ns, next + READBACK_WAIT_NS + OFFLOAD_GRACE_NS);
        assert_eq!(sweep(&mut table, next + READBACK_WAIT_NS + OFFLOAD_GRACE_NS), vec![Swept::Expired]);
    }

    #[test]
    fn an_offloaded_flow_is_evicted_last_though_it_looks_the_most_idle() {
        let mut t = FlowTable::new(16, 7);
        let mut ids = Vec::new();
        for i in 0..t.capacity() as u32 {
            let now = u64::from(i) + 1;
            ids.push(t.insert(flow(i, FlowState::Established, now), now, &mut |_| panic!("room")).unwrap());
        }
        t.flow_mut(ids[0]).set_offloaded(true);
        let mut evicted = Vec::new();
        t.insert(flow(1000, FlowState::Established, 100), 100, &mut |f| evicted.push(f.fwd)).unwrap();
        assert_eq!(evicted, vec![key(1, 6)], "the longest idle of the flows the engine sees");
    }

    #[test]
    fn sweep_removes_only_expired() {
        let mut t = FlowTable::new(64, 1);
        for i in 0..10 {
            let st = if i % 2 == 0 { FlowState::Established } else { FlowState::SynSent };
            t.insert(flow(i, st, 0), 0, &mut |_| {}).unwrap();
        }
        let mut gone = 0;
        let n = t.sweep(500, 1_000, Generation(1), &mut |f, how| {
            assert_eq!((f.state, how), (FlowState::SynSent, Swept::Expired));
            gone += 1;
        });
        assert_eq!((n, gone, t.len()), (5, 5, 5));
        assert_eq!(t.stats().expired, 5);
    }

    #[test]
    fn eviction_finds_debris_far_from_the_clock_hand() {
        // A table many CLOCK windows large, full of open connections but for eight half-open
        // and closed flows far from the hand: each new flow takes one of those, never an
        // open connection, though the hand's window sees none of them.
        let cap = 16 * CLOCK_SWEEP_MAX;
        let mut t = FlowTable::new(cap, 11);
        let far = (10 * CLOCK_SWEEP_MAX) as u32..(10 * CLOCK_SWEEP_MAX) as u32 + 8;
        for i in 0..cap as u32 {
            let st = match i {
                i if far.contains(&i) && i % 2 == 0 => FlowState::SynRecv,
                i if far.contains(&i) => FlowState::SynSent,
                _ => FlowState::Established,
            };
            // A set overflowing while the slab fills evicts within its sixteen entries (the
            // debris among them first): count what is left.
            t.insert(flow(i, st, 0), 0, &mut |_| {}).unwrap();
        }
        let mut extra = 1 << 20;
        while t.len() < cap {
            t.insert(flow(extra, FlowState::Established, 0), 0, &mut |_| {}).unwrap();
            extra += 1;
        }
        let left = far
            .clone()
            .filter(|&i| {
                let k = key(i, 6);
                t.lookup(&k, t.hash(&k)).is_some()
            })
            .count();
        assert!(left >= 4, "only {left} of the eight are left");
        let mut gone = Vec::new();
        for i in 0..left as u32 {
            t.insert(flow(cap as u32 + i, FlowState::SynSent, 10), 10, &mut |f| gone.push(f.state)).unwrap();
        }
        assert_eq!(gone.len(), left);
        assert!(gone.iter().all(|s| matches!(s, FlowState::SynSent | FlowState::SynRecv)), "{gone:?}");
        // A connection that closes becomes debris too, wherever it sits.
        let k = key(7 * CLOCK_SWEEP_MAX as u32, 6);
        let (id, _) = t.lookup(&k, t.hash(&k)).unwrap();
        t.flow_mut(id).on_tcp(Dir::Forward, flags::RST, 20, &T);
        t.note_debris(id);
        // The new half-open flows came first (oldest debris first), then the closed one; no
        // open connection meanwhile.
        let mut gone = Vec::new();
        for i in 0..=left as u32 {
            t.insert(flow(cap as u32 + 100 + i, FlowState::SynSent, 20), 20, &mut |f| {
                gone.push((f.fwd, f.state))
            })
            .unwrap();
        }
        assert!(gone.iter().all(|(_, s)| *s != FlowState::Established), "{gone:?}");
        assert!(gone.iter().any(|(f, _)| *f == k), "the closed flow was evicted: {gone:?}");
    }

    #[test]
    fn full_table_evicts_dead_and_half_open_before_established() {
        // Larger than the CLOCK window, so the window alone cannot be what protects them.
        let cap = 4 * CLOCK_SWEEP_MAX;
        let mut t = FlowTable::new(cap, 7);
        for i in 0..cap as u32 {
            let st = if i < cap as u32 / 2 { FlowState::Established } else { FlowState::SynSent };
            // All at one instant, before the flood: nothing has expired when it comes.
            t.insert(flow(i, st, 0), 0, &mut |_| {}).unwrap();
        }
        assert_eq!(t.len(), cap);
        // A flood of new half-open flows must never displace the established ones.
        let mut evicted_established = 0;
        for i in cap as u32..cap as u32 * 20 {
            t.insert(flow(i, FlowState::SynSent, 100), 100, &mut |f| {
                if f.state == FlowState::Established {
                    evicted_established += 1;
                }
            })
            .unwrap();
            assert!(t.len() <= cap);
        }
        assert_eq!(evicted_established, 0);
        for i in 0..cap as u32 / 2 {
            let k = key(i, 6);
            assert!(t.lookup(&k, t.hash(&k)).is_some(), "established flow {i} survived the flood");
        }
    }

    /// Fills a table of `cap` half-open flows, then inserts as many again; returns how many of
    /// the evicted flows were from the first fill.
    fn refill(cap: usize, time: impl Fn(u32) -> u64) -> (usize, usize) {
        let mut t = FlowTable::new(cap, 5);
        for i in 0..cap as u32 {
            t.insert(flow(i, FlowState::SynSent, time(i)), time(i), &mut |_| panic!("room left")).unwrap();
        }
        let (mut old, mut all) = (0, 0);
        for i in cap as u32..2 * cap as u32 {
            t.insert(flow(i, FlowState::SynSent, time(i)), time(i), &mut |f: &Flow| {
                all += 1;
                // key(i) puts i's second byte in the source's third octet: 0 for the first fill.
                old += usize::from(f.fwd.src.v4()[2] == 0);
            })
            .unwrap();
        }
        (old, all)
    }

    #[test]
    fn a_full_table_evicts_its_oldest_flows() {
        // Each insert at a later time: a second table's worth evicts exactly the first.
        let (old, all) = refill(256, |i| 10 + u64::from(i));
        assert_eq!((old, all), (256, 256));
    }

    #[test]
    fn eviction_takes_the_longest_idle_wherever_it_sits() {
        // In `a_full_table_evicts_its_oldest_flows` slot order is age order, so the hand's
        // visiting order alone would pass it. Here ages are shuffled across the slots: the
        // longest idle open connection (last seen at 10) sits in slot 59, far from the hand at
        // slot 0, and must be the one to go. 64 ≤ CLOCK_SWEEP_MIN..=MAX window, so the hand sees
        // them all; all are open (no debris ring entry), none expired at 100.
        const N: u32 = 64;
        const _: () = assert!(N as usize <= CLOCK_SWEEP_MAX && N as usize >= CLOCK_SWEEP_MIN);
        let seen = |i: u32| 10 + u64::from((i + 5) * 37 % N);
        assert_eq!(seen(59), 10);
        let mut t = FlowTable::new(N as usize, 3);
        for i in 0..N {
            t.insert(flow(i, FlowState::Established, seen(i)), seen(i), &mut |_| panic!("room left"))
                .unwrap();
        }
        assert_eq!(t.debris_tracked(), 0);
        let mut gone = Vec::new();
        t.insert(flow(N, FlowState::Established, 100), 100, &mut |f: &Flow| gone.push(*f)).unwrap();
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert_eq!((gone[0].fwd, gone[0].last_seen_ns), (key(59, 6), 10));
    }

    #[test]
    fn equals_take_turns() {
        // Everything inserted at one instant: the CLOCK hand still gives every slot its turn
        // (FIFO among equals), so nearly all of the first fill goes before any of the second.
        // Were ties broken by slot index, a quarter of the slots would take every eviction.
        let (old, all) = refill(256, |_| 10);
        assert_eq!(all, 256);
        assert!(old >= 250, "{old} of 256 evictions hit the first fill");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Sweep(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..400).prop_map(Op::Insert),
            2 => (0u32..400).prop_map(Op::Remove),
            1 => (0u64..300).prop_map(Op::Sweep),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The table agrees with a HashMap that is told about every eviction and expiry: every
        /// key the oracle holds is found in both directions, every other key is not, and the
        /// length never exceeds the capacity.
        #[test]
        fn matches_hashmap_oracle(cap in 1usize..200, seed in any::<u64>(), ops in prop::collection::vec(op(), 1..400)) {
            let mut t = FlowTable::new(cap, seed);
            let mut oracle: HashMap<FlowKey, (FlowKey, u32)> = HashMap::new();
            let mut now = 0u64;
            for o in ops {
                now += 1;
                match o {
                    Op::Insert(i) => {
                        let st = if i % 3 == 0 { FlowState::SynSent } else { FlowState::Established };
                        let f = flow(i, st, now);
                        let mut gone = Vec::new();
                        let r = t.insert(f, now, &mut |g: &Flow| gone.push(g.fwd));
                        for g in gone { prop_assert!(oracle.remove(&g).is_some()); }
                        match r {
                            Ok(_) => { prop_assert!(oracle.insert(f.fwd, (f.rev, i)).is_none()); }
                            Err(InsertError::Exists) => { prop_assert!(oracle.contains_key(&f.fwd)); }
                        }
                    }
                    Op::Remove(i) => {
                        let k = key(i, 6);
                        if let Some((id, Dir::Forward)) = t.lookup(&k, t.hash(&k)) {
                            t.remove(id);
                            prop_assert!(oracle.remove(&k).is_some());
                        } else {
                            prop_assert!(!oracle.contains_key(&k));
                        }
                    }
                    Op::Sweep(at) => {
                        let mut gone = Vec::new();
                        t.sweep(at, 50, Generation(1), &mut |g: &Flow, _| gone.push(g.fwd));
                        for g in gone { prop_assert!(oracle.remove(&g).is_some()); }
                    }
                }
                prop_assert!(t.len() <= cap);
                prop_assert_eq!(t.len(), oracle.len());
            }
            for (fwd, (rev, _)) in &oracle {
                let (id, d) = t.lookup(fwd, t.hash(fwd)).expect("forward key present");
                prop_assert_eq!(d, Dir::Forward);
                prop_assert_eq!(t.lookup(rev, t.hash(rev)), Some((id, Dir::Reverse)));
            }
            for i in 0..400 {
                let k = key(i, 6);
                prop_assert_eq!(t.lookup(&k, t.hash(&k)).is_some(), oracle.contains_key(&k));
            }
        }
    }
}
