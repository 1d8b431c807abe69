//! Every counter a gateway worker keeps, written once: [`Counter`] (what happened),
//! [`DropReason`] (why a frame was dropped) and [`Gauge`] (levels: flows in the table) are each
//! generated from one list, and a worker's [`Counters`] is an array indexed by them. The worker's I/O, its L4 engine and the gateway
//! binary (the kernel's AF_XDP statistics) each add to the counters that are theirs; the sum is
//! what the worker publishes to the table file's stats region, in the order of the lists, and
//! what control names in its metrics. Add at the end of a list: the order is the published
//! layout, and its [`fingerprint`] tells a reader of another version that it cannot read it.
//!
//! Hot path: adding to a counter is one increment at a constant index.

use core::ops::{Index, IndexMut};

use crate::drop::DropReason;

named! {
    /// What a worker counts (besides drops, which are [`DropReason`]s).
    pub enum Counter {
        // The worker's own I/O.
        /// Frames received.
        RxFrames => "rx_frames",
        /// Bytes received.
        RxBytes => "rx_bytes",
        /// Frames transmitted.
        TxFrames => "tx_frames",
        /// Frames handed to the kernel.
        KernelFrames => "kernel_frames",
        /// Batches with at least one frame.
        Batches => "batches",
        /// ARP requests and neighbour solicitations for a VIP answered.
        NeighborReplies => "neighbor_replies",
        /// Frames held while their next hop was resolved.
        Parked => "parked",
        /// Frames the kernel dropped before the AF_XDP socket's receive ring (XDP_STATISTICS).
        XskRxDropped => "xsk_rx_dropped",
        /// Frames the kernel dropped because the receive ring was full (XDP_STATISTICS).
        XskRxRingFull => "xsk_rx_ring_full",
        /// Times the kernel found the fill ring empty (XDP_STATISTICS).
        XskFillRingEmpty => "xsk_fill_ring_empty",
        /// Invalid descriptors on the receive and transmit rings (XDP_STATISTICS).
        XskInvalidDescs => "xsk_invalid_descs",
        /// Wake-up system calls made to the kernel for the AF_XDP rings.
        XskWakeups => "xsk_wakeups",
        /// Frames handed to the worker that owns their flow.
        HandedOff => "handed_off",
        /// Frames other workers handed to this one.
        HandedIn => "handed_in",
        /// Frames copied to leave through another port than the one they arrived on.
        PortCopies => "port_copies",
        /// Polls that took nothing from a receive ring because a transmit ring was full.
        TxWaits => "tx_waits",
        // The L4 engine.
        /// Frames rewritten and forwarded.
        Forwarded => "forwarded",
        /// Replies generated (ICMP echo).
        Bounced => "bounced",
        /// Frames passed to the kernel.
        Passed => "passed",
        /// Flows created.
        NewFlows => "new_flows",
        /// TCP flows adopted mid-stream (consistent scheduler, DNAT).
        AdoptedFlows => "adopted_flows",
        /// New flows sent to the backend a client was pinned to.
        AffinityHits => "affinity_hits",
        /// Flows moved to a new generation's backend ids.
        FlowsRevalidated => "flows_revalidated",
        /// TCP flows kept on a backend that left its service.
        FlowsOrphaned => "flows_orphaned",
        /// ICMP echo requests answered.
        IcmpEchoReplies => "icmp_echo_replies",
        /// ICMP errors translated for a tracked flow.
        IcmpErrorsTranslated => "icmp_errors_translated",
        /// Table generations adopted.
        TableChanges => "table_changes",
        /// FullNAT tuples taken back from flows that never saw a reply, for a new flow.
        SnatReclaimed => "snat_reclaimed",
        /// FullNAT tuples of closed flows taken early: the backend holds them no more or takes the SYN (RFC 6191).
        SnatReused => "snat_reused",
        /// New flows that took their SNAT port on another address of the pool than their hash chose.
        SnatPoolFallbacks => "snat_pool_fallbacks",
        /// Client ACKs whose SYN cookie checked: connections opened to a backend by the gateway's own SYN.
        SynCookiesAccepted => "syn_cookies_accepted",
        /// Client segments held until the backend answered a proxied connection's SYN.
        SynProxyDeferred => "syn_proxy_deferred",
        /// TCP segments the gateway wrote in frames of its own: RSTs clearing a backend's half-open connection on a FullNAT tuple taken back, SYNs of proxied connections whose client segment carried data.
        ExtrasSent => "extras_sent",
        /// Such segments not sent (no free frame, no next hop yet, or no room in the batch).
        ExtrasUnsent => "extras_unsent",
        // The L7 stage (the worker's proxy on kernel sockets).
        /// Client connections accepted on the L7 listeners.
        L7ConnectionsAccepted => "l7_connections_accepted",
        /// Client connections closed at once: no token left in the worker's range.
        L7ConnectionsRefused => "l7_connections_refused",
        /// HTTP requests whose head was accepted.
        L7Requests => "l7_requests",
        /// Requests that ended with the connection closed and no status sent.
        L7ResponsesNone => "l7_responses_none",
        /// Informational final responses (101 for upgrades).
        L7Responses1xx => "l7_responses_1xx",
        /// Responses 200–299.
        L7Responses2xx => "l7_responses_2xx",
        /// Responses 300–399.
        L7Responses3xx => "l7_responses_3xx",
        /// Responses 400–499.
        L7Responses4xx => "l7_responses_4xx",
        /// Responses 500–599.
        L7Responses5xx => "l7_responses_5xx",
        /// Responses Sluice made itself (404 no route, 503 no endpoint, 502, 504, limits).
        L7LocalResponses => "l7_local_responses",
        /// Request heads refused (malformed, smuggling, over a limit).
        L7RejectedHeads => "l7_rejected_heads",
        /// Requests moved to another endpoint after a failure.
        L7Retries => "l7_retries",
        /// Upstream connections opened.
        L7UpstreamConnects => "l7_upstream_connects",
        /// Requests sent on a pooled keep-alive upstream connection.
        L7UpstreamReuses => "l7_upstream_reuses",
        /// TLS handshakes completed.
        L7TlsHandshakes => "l7_tls_handshakes",
        /// Of those, resumed with a session ticket.
        L7TlsResumed => "l7_tls_resumed",
        /// TLS handshakes or records that failed.
        L7TlsErrors => "l7_tls_errors",
        /// Requests refused by a route's limit-rps, limit-rpm or limit-connections (503).
        L7Limited => "l7_limited",
        /// Requests refused by a route's basic authentication (401).
        L7AuthDenied => "l7_auth_denied",
        /// Client connections that spoke HTTP/2 (ALPN `h2`, or the preface on a plain listener).
        L7H2Connections => "l7_h2_connections",
        /// HTTP/2 streams opened by clients (each a request).
        L7H2Streams => "l7_h2_streams",
        /// HTTP/2 streams refused: over SETTINGS_MAX_CONCURRENT_STREAMS.
        L7H2StreamsRefused => "l7_h2_streams_refused",
        /// HTTP/2 streams reset by Sluice because of the client (malformed, flow control, closed).
        L7H2StreamErrors => "l7_h2_stream_errors",
        /// HTTP/2 header lists over the limit (HPACK bombs): answered 431 and reset.
        L7H2HeaderListsTooLarge => "l7_h2_header_lists_too_large",
        /// HTTP/2 streams reset by the client (RST_STREAM).
        L7H2PeerResets => "l7_h2_peer_resets",
        /// HTTP/2 streams reset by Sluice because their exchange failed (upstream gone mid-response).
        L7H2StreamsFailed => "l7_h2_streams_failed",
        /// Graceful HTTP/2 GOAWAYs sent: gateway shutdown, a route of streams in flight removed, idle.
        L7H2GoAways => "l7_h2_goaways",
        /// HTTP/2 connections closed for rapid reset (CVE-2023-44487, MadeYouReset).
        L7H2RapidResets => "l7_h2_rapid_resets",
        /// HTTP/2 connections closed for a CONTINUATION flood.
        L7H2ContinuationFloods => "l7_h2_continuation_floods",
        /// HTTP/2 connections closed for a header block over the size limit.
        L7H2HeaderBlocksTooLarge => "l7_h2_header_blocks_too_large",
        /// HTTP/2 connections closed for a SETTINGS flood.
        L7H2SettingsFloods => "l7_h2_settings_floods",
        /// HTTP/2 connections closed for a PING flood.
        L7H2PingFloods => "l7_h2_ping_floods",
        /// HTTP/2 connections closed because answers piled up unread (a client that does not read).
        L7H2AnswerBacklogs => "l7_h2_answer_backlogs",
        /// HTTP/2 connections closed for a flood of frames that carry nothing.
        L7H2EmptyFrameFloods => "l7_h2_empty_frame_floods",
        /// HTTP/2 connections closed for a header block that cannot be decoded (HPACK).
        L7H2CompressionErrors => "l7_h2_compression_errors",
        /// HTTP/2 connections closed for another protocol or flow-control error.
        L7H2ProtocolErrors => "l7_h2_protocol_errors",
        /// TLS handshakes with upstreams completed (`backend-protocol` HTTPS and GRPCS).
        L7UpstreamTlsHandshakes => "l7_upstream_tls_handshakes",
        /// Of those, resumed with a session the upstream gave on an earlier connection.
        L7UpstreamTlsResumed => "l7_upstream_tls_resumed",
        /// TLS to upstreams that failed: handshakes (a failed connect: retried, else 502) and records afterwards.
        L7UpstreamTlsErrors => "l7_upstream_tls_errors",
        // The L4 engine and the kernel's fast path (at the end: the layout is published).
        /// Established flows offered to the kernel's fast path.
        FastOffered => "fast_offered",
        /// Offered flows the worker could not install (map full, next hop unknown).
        FastRefused => "fast_refused",
        /// Flows taken back from the fast path (handed-back SYN/FIN/RST, table change, deadline, gone).
        FastWithdrawn => "fast_withdrawn",
        /// Client connections ended for slowness: a request head or body that did not come in time (408; a close when nothing came, or a TLS handshake that did not finish), a response left unread.
        L7ClientTimeouts => "l7_client_timeouts",
        /// Request bodies refused: chunked framing that breaks the rules (400) or a chunked body over the size limit (413); the connection is closed.
        L7RejectedBodies => "l7_rejected_bodies",
        /// Flows carried over from the previous gateway's journal at start (a restart that keeps every connection).
        FlowsCarriedOver => "flows_carried_over",
        /// Journal records of the previous gateway not carried over: torn or damaged (a failed check), or in a SYN-cookie handshake.
        FlowsNotCarriedOver => "flows_not_carried_over",
        /// Flows ended because their backend's address stopped answering (a TCP connection with a RST to its client).
        FlowsEndedBackendUnreachable => "flows_ended_backend_unreachable",
        /// Offloaded flows past their deadline that the kernel's last-seen time showed live: kept in the kernel.
        FastKept => "fast_kept",
        /// Frames the kernel's fast path forwarded for this worker's flows (read back at deadlines and removals).
        FastFrames => "fast_frames",
        /// Their bytes, whole frames.
        FastBytes => "fast_bytes",
        /// Flows another gateway opened, taken from what its flow sync told this one (ECMP moved them here, or their reply crossed this node).
        FlowsFromPeers => "flows_from_peers",
        /// Flow records sent to the flow-sync peers (each record counted once per peer).
        SyncRecordsSent => "sync_records_sent",
        /// Flow records received from the flow-sync peers.
        SyncRecordsReceived => "sync_records_received",
        /// Flow-sync datagrams or records refused: from an unknown address, a failed MAC, off the clock, replayed, malformed or damaged.
        SyncRejected => "sync_rejected",
        /// Flow records not queued for the peers because a worker's sync queue was full (the next refresh sends them).
        SyncOutboxFull => "sync_outbox_full",
        /// Peers' flow records refused because the store of peers' flows was full (--sync-flows).
        SyncStoreFull => "sync_store_full",
        /// Frames held for a flow-sync peer's record: a reply that crossed this node before the record of its flow (dropped as no_flow_for_segment if none comes in 100 ms).
        HeldForPeers => "held_for_peers",
    }
}

named! {
    /// What a worker reports as a level, not a count (a Prometheus gauge).
    pub enum Gauge {
        /// Flows in the worker's flow table.
        Flows => "flows",
        /// How many flows the worker's flow table holds at most.
        FlowCapacity => "flow_capacity",
        /// L7 client connections open.
        L7Clients => "l7_client_connections",
        /// L7 upstream connections open (in use and idle).
        L7Upstreams => "l7_upstream_connections",
        /// Of those, idle in the keep-alive pool.
        L7Pooled => "l7_pooled_connections",
        /// Flows the peers' flow sync told of, held for when ECMP moves them here.
        SyncPeerFlows => "sync_peer_flows",
        /// 1 while a starting gateway waits for its peers' flows (control announces nothing meanwhile).
        SyncWaiting => "flow_sync_waiting",
    }
}

/// How many values a worker publishes: its counters, its drops, its gauges, then
/// [`fingerprint`].
pub const LEN: usize = Counter::COUNT + DropReason::COUNT + Gauge::COUNT + 1;

/// A worker's counters: one per [`Counter`] and one per [`DropReason`]; and its gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    counts: [u64; Counter::COUNT],
    drops: [u64; DropReason::COUNT],
    gauges: [u64; Gauge::COUNT],
}

impl Default for Counters {
    fn default() -> Counters {
        Counters { counts: [0; Counter::COUNT], drops: [0; DropReason::COUNT], gauges: [0; Gauge::COUNT] }
    }
}

impl Index<Gauge> for Counters {
    type Output = u64;
    fn index(&self, g: Gauge) -> &u64 {
        &self.gauges[g as usize]
    }
}

impl IndexMut<Gauge> for Counters {
    fn index_mut(&mut self, g: Gauge) -> &mut u64 {
        &mut self.gauges[g as usize]
    }
}

impl Index<Counter> for Counters {
    type Output = u64;
    #[inline(always)]
    fn index(&self, c: Counter) -> &u64 {
        &self.counts[c as usize]
    }
}

impl IndexMut<Counter> for Counters {
    #[inline(always)]
    fn index_mut(&mut self, c: Counter) -> &mut u64 {
        &mut self.counts[c as usize]
    }
}

impl Counters {
    /// Counts `n` frames dropped for `r`.
    #[inline(always)]
    pub fn add_drops(&mut self, r: DropReason, n: u64) {
        self.drops[r as usize] += n;
    }

    /// The frames dropped for `r`.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// The frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another part's counters (and gauges) to these (a worker's I/O and its engine's).
    pub fn merge(&mut self, other: &Counters) {
        let mine = self.counts.iter_mut().chain(&mut self.drops).chain(&mut self.gauges);
        for (a, b) in mine.zip(other.counts.iter().chain(&other.drops).chain(&other.gauges)) {
            *a += b;
        }
    }

    /// The values a worker publishes, in [`schema`] order, then the [`fingerprint`].
    pub fn export(&self) -> [u64; LEN] {
        let mut out = [0u64; LEN];
        for (o, v) in out.iter_mut().zip(self.counts.iter().chain(&self.drops).chain(&self.gauges)) {
            *o = *v;
        }
        out[LEN - 1] = fingerprint();
        out
    }
}

/// A fingerprint of the published layout: FNV-1a over the counter names in order, then the
/// drop reasons', then the gauges'. A reader built with another layout (another version of control) can tell
/// instead of mislabelling every counter; never 0, which means "never published".
pub fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b.iter().chain(b"\0") {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for c in Counter::ALL {
        eat(c.name().as_bytes());
    }
    for r in DropReason::ALL {
        eat(r.name().as_bytes());
    }
    for g in Gauge::ALL {
        eat(b"gauge:");
        eat(g.name().as_bytes());
    }
    h | 1
}

/// What the published value at an index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// A counter.
    Count(Counter),
    /// Drops for one reason.
    Drop(DropReason),
    /// A level.
    Gauge(Gauge),
}

/// The published values, in order (the [`fingerprint`] follows them).
pub fn schema() -> impl Iterator<Item = Stat> {
    let counts = Counter::ALL.iter().map(|c| Stat::Count(*c));
    let drops = DropReason::ALL.iter().map(|r| Stat::Drop(*r));
    counts.chain(drops).chain(Gauge::ALL.iter().map(|g| Stat::Gauge(*g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.extend(DropReason::ALL.iter().map(|r| r.name()));
        names.extend(Gauge::ALL.iter().map(|g| g.name()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(
            Counter::TxWaits.help(),
            "Polls that took nothing from a receive ring because a transmit ring was full."
        );
    }

    #[test]
    fn export_follows_the_schema_and_merge_adds() {
        let mut io = Counters::default();
        io[Counter::RxFrames] = 1;
        io[Counter::XskWakeups] = 12;
        io.add_drops(DropReason::TxRingFull, 2);
        let mut l4 = Counters::default();
        l4[Counter::Forwarded] = 7;
        l4.add_drops(DropReason::NoBackend, 3);
        l4.add_drops(DropReason::TxRingFull, 1);
        l4[Gauge::Flows] = 5;
        io.merge(&l4);
        let out = io.export();
        let at = |s: Stat| schema().position(|x| x == s).unwrap();
        assert_eq!(schema().count(), LEN - 1);
        assert_eq!(out[at(Stat::Count(Counter::RxFrames))], 1);
        assert_eq!(out[at(Stat::Count(Counter::XskWakeups))], 12);
        assert_eq!(out[at(Stat::Count(Counter::Forwarded))], 7);
        assert_eq!(out[at(Stat::Drop(DropReason::NoBackend))], 3);
        assert_eq!(out[at(Stat::Drop(DropReason::TxRingFull))], 3);
        assert_eq!(out[at(Stat::Gauge(Gauge::Flows))], 5);
        assert_eq!(io.dropped_total(), 6);
        assert_eq!(out[LEN - 1], fingerprint());
        assert_ne!(fingerprint(), 0);
    }

    #[test]
    fn the_published_layout_is_the_one_control_reads_today() {
        // Renaming or reordering a counter changes what every reader shows: make it a
        // decision, not an accident (and add new counters at the end).
        let names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(&names[..4], ["rx_frames", "rx_bytes", "tx_frames", "kernel_frames"]);
        // Issue 15 (read-back) added fast_kept, fast_frames and fast_bytes; issue 16 the
        // carried-over and backend-unreachable flows; issue 17 the flows taken from peers and the flow sync; at
        // the end.
        assert_eq!(fingerprint(), 0x51fa_02b7_f55a_7797, "{:#x}", fingerprint());
    }
}
