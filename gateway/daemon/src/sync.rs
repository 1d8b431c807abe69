//! Flow sync between gateway nodes: what lets any node carry any flow when ECMP moves it (a node
//! killed, drained or added), the way IPVS's sync daemon and DPVS's session sync do it.
//!
//! **What travels.** The flow journal's records (`sluice_lb::journal`: both keys, the state, the
//! SYN-cookie shift, a check), which the workers already write once per new flow and per state
//! change — never per packet. Each worker's flow table hands a copy of each record, and of each
//! flow's end, to a bounded queue (`Outbox`: full, the record is dropped and counted as
//! `sync_outbox_full`; the flow is still sent by the next refresh). This thread drains the
//! queues every [`BUSY_WAIT`] ([`IDLE_WAIT`] after an idle second), packs up to
//! [`PER_DATAGRAM`] records per UDP datagram and sends what it took to every peer
//! (`--sync-peer`) at once: the wake interval is the batching, and a flow's record leaves
//! within it — the window in which a node's death loses a flow it just opened. What it receives it checks and puts into the store the workers look in when their
//! own table misses (`sluice_lb::peers`).
//!
//! **Catching up.** A gateway that starts says hello to each peer; a peer answers with every
//! flow its journals hold, then "done". Until each peer has answered, or [`CATCH_UP`] has
//! passed (a peer that is down answers nothing), the gateway reports itself as waiting
//! (the `flow_sync_waiting` gauge), and control does not announce the node's VIPs: a node
//! added takes no flow it cannot carry. Every [`REFRESH`] each gateway sends its whole journal
//! again: a flow whose records were lost (UDP, a full queue) is known again, and a long-lived
//! flow's copy on the peers never expires while it lives.
//!
//! **Trust.** Each datagram carries an HMAC-SHA256 over all of it with the key all nodes share
//! (`--sync-key`), the sender's epoch (its start time, [`new_epoch`]), a sequence number and its
//! wall-clock time. A datagram is taken only from a configured peer's address, with a valid MAC,
//! within [`MAX_SKEW_MS`] of this node's clock, and not seen before (a 64-wide window per
//! epoch). Epochs only move forward: a datagram of an epoch older than the peer's current one is
//! a replay of a run that ended, and refused (see [`Peer::fresh`] for a clock set back).
//! Records that pass are still decoded field by field. Everything refused is counted
//! (`sync_rejected`). Bounded everywhere: the queues, the store, the datagrams.
//!
//! **Limits.** The store holds `--sync-flows` flows; beyond that records are refused (`sync_store_full`).
//! Session affinity is not synced: a moved client's next new connection may pick again (its
//! established ones keep their backend).
//!
//! Not the hot path: its own thread, on no worker's core.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use crossbeam_queue::ArrayQueue;
use sluice_lb::flow::Timeouts;
use sluice_lb::journal::{self, RECORD};
use sluice_lb::peers::{Applied, PeerWriter};
use sluice_log::{info, warn};
use sluice_model::counters::{Counter, Counters, Gauge};

/// Records per datagram: 32 + 10 × 128 + 32 = 1344 bytes, within any path's MTU.
pub(crate) const PER_DATAGRAM: usize = 10;
const HEAD: usize = 32;
const MAC: usize = 32;
const MAGIC: [u8; 4] = *b"SLSY";
const VERSION: u8 = 1;
const KIND_FLOWS: u8 = 1;
const KIND_HELLO: u8 = 2;
const KIND_DONE: u8 = 3;
/// How long the thread waits for a datagram while there is work: the records' batching delay.
const BUSY_WAIT: Duration = Duration::from_millis(1);
/// How long it waits once idle for a second.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// How long a starting gateway waits for its peers' flows before serving anyway.
pub(crate) const CATCH_UP: Duration = Duration::from_secs(2);
/// How often the whole journal goes to every peer again.
pub(crate) const REFRESH: Duration = Duration::from_secs(30);
/// How far a datagram's time may be from this node's.
const MAX_SKEW_MS: u64 = 30_000;
/// How long a peer's epoch must be silent before an earlier one is taken ([`Peer::fresh`]).
const EPOCH_SILENCE: Duration = Duration::from_millis(2 * MAX_SKEW_MS);
/// Records each worker's queue holds.
pub(crate) const OUTBOX: usize = 16_384;
/// The shortest key.
pub(crate) const MIN_KEY: usize = 32;

/// A worker's queue of records for the peers.
pub(crate) type Outbox = Arc<ArrayQueue<[u8; RECORD]>>;

/// The sync's counters, published with worker 0's.
#[derive(Debug, Default)]
pub(crate) struct SyncStats {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) outbox_full: AtomicU64,
    pub(crate) store_full: AtomicU64,
    pub(crate) held: AtomicU64,
    /// Until the peers' flows are in (or [`CATCH_UP`] passed).
    pub(crate) waiting: AtomicBool,
}

impl SyncStats {
    /// Writes the sync's counters and gauges into a worker's.
    pub(crate) fn fill(&self, c: &mut Counters) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        c[Counter::SyncRecordsSent] = get(&self.sent);
        c[Counter::SyncRecordsReceived] = get(&self.received);
        c[Counter::SyncRejected] = get(&self.rejected);
        c[Counter::SyncOutboxFull] = get(&self.outbox_full);
        c[Counter::SyncStoreFull] = get(&self.store_full);
        c[Gauge::SyncPeerFlows] = get(&self.held);
        c[Gauge::SyncWaiting] = u64::from(self.waiting.load(Ordering::Relaxed));
    }
}

/// What the sync runs with.
pub(crate) struct SyncConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) key: Vec<u8>,
    /// This gateway's journals, for the bulk transfers (none: `--flow-journal off`).
    pub(crate) journals: Vec<PathBuf>,
}

/// Reads a key file: at least [`MIN_KEY`] bytes.
pub(crate) fn read_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("--sync-key {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        warn!("--sync-key {}: readable by others than its owner (chmod 600 it)", path.display());
    }
    let key = std::fs::read(path).map_err(|e| format!("--sync-key {}: {e}", path.display()))?;
    if key.len() < MIN_KEY {
        return Err(format!(
            "--sync-key {}: {} bytes; at least {MIN_KEY} random bytes are needed \
             (head -c 32 /dev/urandom > KEY, the same file on every node)",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

/// An epoch for a gateway starting at `start_ms` (wall clock): the start time above 20 random
/// bits, so that a restarted gateway's epoch is greater than its last run's (to the
/// millisecond), and two started in the same millisecond still differ.
fn new_epoch(start_ms: u64, random: u64) -> u64 {
    (start_ms << 20) | (random & 0xf_ffff)
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Builds datagrams: a header, records, the MAC.
struct Packer {
    key: hmac::Key,
    epoch: u64,
    seq: u64,
    buf: Vec<u8>,
    count: usize,
}

impl Packer {
    fn new(key: &[u8], epoch: u64) -> Packer {
        Packer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            epoch,
            seq: 0,
            buf: Vec::with_capacity(HEAD + PER_DATAGRAM * RECORD + MAC),
            count: 0,
        }
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.buf.resize(HEAD, 0);
        self.count = 0;
    }

    /// Seals the datagram of `kind` with what was pushed.
    fn seal(&mut self, kind: u8) -> &[u8] {
        if self.buf.len() < HEAD {
            self.begin();
        }
        self.seq += 1;
        let h = &mut self.buf[..HEAD];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = kind;
        h[6..8].copy_from_slice(&(self.count as u16).to_le_bytes());
        h[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&wall_ms().to_le_bytes());
        let tag = hmac::sign(&self.key, &self.buf);
        self.buf.extend_from_slice(tag.as_ref());
        &self.buf
    }
}

/// A datagram that passed its checks.
#[derive(Debug, PartialEq, Eq)]
struct Opened<'a> {
    kind: u8,
    epoch: u64,
    seq: u64,
    records: &'a [u8],
}

/// Why a datagram was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Malformed,
    Mac,
    Clock,
}

/// Checks a datagram's shape, MAC and time.
fn open<'a>(key: &hmac::Key, d: &'a [u8], now_ms: u64) -> Result<Opened<'a>, Refused> {
    if d.len() < HEAD + MAC || d[..4] != MAGIC || d[4] != VERSION {
        return Err(Refused::Malformed);
    }
    let count = usize::from(u16::from_le_bytes([d[6], d[7]]));
    if count > PER_DATAGRAM || d.len() != HEAD + count * RECORD + MAC {
        return Err(Refused::Malformed);
    }
    let (body, tag) = d.split_at(d.len() - MAC);
    hmac::verify(key, body, tag).map_err(|_| Refused::Mac)?;
    let word = |i: usize| {
        u64::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3], d[i + 4], d[i + 5], d[i + 6], d[i + 7]])
    };
    if word(24).abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(Refused::Clock);
    }
    let kind = d[5];
    if !matches!(kind, KIND_FLOWS | KIND_HELLO | KIND_DONE) || (kind != KIND_FLOWS && count != 0) {
        return Err(Refused::Malformed);
    }
    Ok(Opened { kind, epoch: word(8), seq: word(16), records: &body[HEAD..] })
}

/// A peer as this node sees it.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    /// Its epoch, the highest sequence number seen and the 64 below it (bit i: seq − i seen).
    epoch: u64,
    top: u64,
    window: u64,
    /// When a datagram of its current epoch was last taken.
    heard: Option<Instant>,
    /// It has sent its flows since this gateway started.
    caught_up: bool,
    /// When this gateway last sent it every flow (a hello asks for them).
    last_bulk: Option<Instant>,
}

impl Peer {
    /// A configured peer, not heard from yet.
    fn new(addr: SocketAddr) -> Peer {
        Peer { addr, epoch: 0, top: 0, window: 0, heard: None, caught_up: false, last_bulk: None }
    }

    /// Whether `(epoch, seq)` is new; marks it seen.
    ///
    /// A later epoch is the peer restarted. An earlier one is refused while the current epoch
    /// is alive: it is a run that ended, replayed (it passed the clock check, so it is at most
    /// [`MAX_SKEW_MS`] old; without this rule, datagrams of two epochs replayed in turn would
    /// each reset the other's window and pass again). An earlier epoch is taken only after the
    /// current one has been silent for twice the clock window — longer than any datagram of a
    /// run that ended before it stays acceptable — which is the peer restarted with its clock
    /// set back.
    fn fresh(&mut self, epoch: u64, seq: u64, now: Instant) -> bool {
        if epoch < self.epoch && self.heard.is_some_and(|t| now.saturating_duration_since(t) < EPOCH_SILENCE)
        {
            return false;
        }
        if epoch != self.epoch {
            // The peer restarted: what it was sent before, it no longer has.
            self.last_bulk = None;
            self.epoch = epoch;
            self.top = seq;
            self.window = 1;
            self.heard = Some(now);
            return true;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.window = if shift >= 64 { 1 } else { (self.window << shift) | 1 };
            self.top = seq;
            self.heard = Some(now);
            true
        } else {
            let back = self.top - seq;
            if back >= 64 || self.window & (1 << back) != 0 {
                return false;
            }
            self.window |= 1 << back;
            self.heard = Some(now);
            true
        }
    }
}

/// Seals the records pushed as one datagram of flows and sends it to `to`: how many were sent.
fn send_flows(packer: &mut Packer, socket: &UdpSocket, to: SocketAddr) -> u64 {
    let n = packer.count as u64;
    let d = packer.seal(KIND_FLOWS);
    if socket.send_to(d, to).is_ok() { n } else { 0 }
}

/// Starts the sync thread. `outboxes`: each worker's queue; `writer`: the store the workers
/// read.
pub(crate) fn spawn(
    cfg: SyncConfig,
    outboxes: Vec<Outbox>,
    writer: PeerWriter,
    stats: Arc<SyncStats>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let socket = UdpSocket::bind(cfg.listen).map_err(|e| format!("--sync-listen {}: {e}", cfg.listen))?;
    socket.set_read_timeout(Some(BUSY_WAIT)).map_err(|e| format!("--sync-listen {}: {e}", cfg.listen))?;
    let mut random = [0u8; 8];
    getrandom(&mut random)?;
    let mut sync = Sync {
        packer: Packer::new(&cfg.key, new_epoch(wall_ms(), u64::from_le_bytes(random))),
        key: hmac::Key::new(hmac::HMAC_SHA256, &cfg.key),
        peers: cfg.peers.iter().map(|&addr| Peer::new(addr)).collect(),
        socket,
        outboxes,
        writer,
        stats,
        journals: cfg.journals,
        timeouts: Timeouts::default(),
        pending: Vec::with_capacity(PER_DATAGRAM),
    };
    info!(
        "flow sync: listening on {}, peers {}",
        cfg.listen,
        cfg.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    std::thread::Builder::new()
        .name("sluice-sync".into())
        .spawn(move || sync.run(&stop))
        .map_err(|e| format!("the flow-sync thread: {e}"))
}

fn getrandom(buf: &mut [u8]) -> Result<(), String> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| format!("/dev/urandom: {e}"))
}

struct Sync {
    packer: Packer,
    key: hmac::Key,
    peers: Vec<Peer>,
    socket: UdpSocket,
    outboxes: Vec<Outbox>,
    writer: PeerWriter,
    stats: Arc<SyncStats>,
    journals: Vec<PathBuf>,
    timeouts: Timeouts,
    pending: Vec<[u8; RECORD]>,
}

impl Sync {
    fn run(&mut self, stop: &AtomicBool) {
        let start = Instant::now();
        self.broadcast_control(KIND_HELLO);
        let mut last_hello = Instant::now();
        let mut last_refresh = Instant::now();
        let mut last_sweep = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut quiet = Duration::ZERO;
        let mut slow = false;
        while !stop.load(Ordering::Relaxed) {
            // Receive until the socket is empty (or its timeout passes with nothing).
            let mut busy = false;
            for _ in 0..256 {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        busy = true;
                        self.take(&buf[..n], from);
                    }
                    Err(_) => break,
                }
            }
            busy |= self.drain();
            // An idle gateway costs (almost) no CPU: after a second with nothing to do, the
            // thread looks every IDLE_WAIT instead of every BUSY_WAIT; a new flow then reaches
            // the peers within IDLE_WAIT.
            quiet = if busy { Duration::ZERO } else { quiet + self.wait(slow) };
            let want_slow = quiet >= Duration::from_secs(1);
            if want_slow != slow && self.socket.set_read_timeout(Some(self.wait(want_slow))).is_ok() {
                slow = want_slow;
            }
            if self.stats.waiting.load(Ordering::Relaxed) {
                if self.peers.iter().all(|p| p.caught_up) || start.elapsed() >= CATCH_UP {
                    self.stats.waiting.store(false, Ordering::Relaxed);
                    let silent: Vec<String> =
                        self.peers.iter().filter(|p| !p.caught_up).map(|p| p.addr.to_string()).collect();
                    info!(
                        "flow sync: ready ({} flow(s) from peers{})",
                        self.writer.len(),
                        if silent.is_empty() {
                            String::new()
                        } else {
                            format!("; silent: {}", silent.join(", "))
                        }
                    );
                } else if last_hello.elapsed() >= Duration::from_millis(500) {
                    // A hello or a "done" lost, or a peer still starting: ask those again.
                    for i in 0..self.peers.len() {
                        if !self.peers[i].caught_up {
                            self.control_to(i, KIND_HELLO);
                        }
                    }
                    last_hello = Instant::now();
                }
            }
            if last_refresh.elapsed() >= REFRESH {
                last_refresh = Instant::now();
                for i in 0..self.peers.len() {
                    self.bulk(i, false);
                }
            }
            if last_sweep.elapsed() >= Duration::from_millis(100) {
                last_sweep = Instant::now();
                let budget = (self.writer_capacity() / 100).max(1024);
                self.writer.sweep(sluice_sys::monotonic_ns(), budget);
                self.stats.held.store(self.writer.len() as u64, Ordering::Relaxed);
            }
        }
        let _ = self.drain();
        self.flush();
    }

    fn writer_capacity(&self) -> usize {
        self.writer.capacity()
    }

    /// How long a receive waits: short while flows come and go, longer when idle.
    fn wait(&self, slow: bool) -> Duration {
        if slow { IDLE_WAIT } else { BUSY_WAIT }
    }

    /// Moves the workers' records into datagrams and sends them: each full one at once, the
    /// last, partial one at the end of the pass. Whether there was anything.
    fn drain(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.outboxes.len() {
            while let Some(r) = self.outboxes[i].pop() {
                any = true;
                self.pending.push(r);
                if self.pending.len() == PER_DATAGRAM {
                    self.flush();
                }
            }
        }
        self.flush();
        any
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.packer.begin();
        for r in &self.pending {
            self.packer.buf.extend_from_slice(r);
        }
        self.packer.count = self.pending.len();
        let n = self.pending.len() as u64;
        self.pending.clear();
        let d = self.packer.seal(KIND_FLOWS);
        for p in &self.peers {
            if self.socket.send_to(d, p.addr).is_ok() {
                self.stats.sent.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn broadcast_control(&mut self, kind: u8) {
        for i in 0..self.peers.len() {
            self.control_to(i, kind);
        }
    }

    fn control_to(&mut self, i: usize, kind: u8) {
        self.packer.begin();
        let d = self.packer.seal(kind);
        let _ = self.socket.send_to(d, self.peers[i].addr);
    }

    /// Sends every flow this gateway's journals hold to peer `i`, then, when `done`, says so.
    fn bulk(&mut self, i: usize, done: bool) {
        let to = self.peers[i].addr;
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 256 * RECORD];
        for path in &self.journals {
            let Ok(Some(file)) = sluice_table::state::read_only(path) else { continue };
            let mut head = [0u8; journal::HEADER];
            if file.read_at(&mut head, 0).ok() != Some(journal::HEADER) {
                continue;
            }
            let Ok(capacity) = journal::header(&head) else { continue };
            let mut off = journal::HEADER as u64;
            let end = (journal::HEADER + capacity * RECORD) as u64;
            while off < end {
                let want = chunk.len().min((end - off) as usize);
                let Ok(got) = file.read_at(&mut chunk[..want], off) else { break };
                if got == 0 {
                    break;
                }
                off += got as u64;
                self.packer.begin();
                for rec in chunk[..got - got % RECORD].chunks_exact(RECORD) {
                    if !journal::is_live(rec) {
                        continue;
                    }
                    self.packer.buf.extend_from_slice(rec);
                    self.packer.count += 1;
                    if self.packer.count == PER_DATAGRAM {
                        sent += send_flows(&mut self.packer, &self.socket, to);
                        self.packer.begin();
                    }
                }
                if self.packer.count > 0 {
                    sent += send_flows(&mut self.packer, &self.socket, to);
                }
            }
        }
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        if done {
            self.packer.begin();
            let d = self.packer.seal(KIND_DONE);
            let _ = self.socket.send_to(d, to);
            info!("flow sync: sent {sent} flow(s) to {to}, which asked");
        }
    }

    /// One datagram from the network.
    fn take(&mut self, d: &[u8], from: SocketAddr) {
        let reject = |s: &SyncStats| {
            s.rejected.fetch_add(1, Ordering::Relaxed);
        };
        // From a configured peer's address (any port: a peer's sending socket is its
        // listening one, but NAT or a restart may change nothing here).
        let Some(i) = self.peers.iter().position(|p| same_ip(p.addr.ip(), from.ip())) else {
            return reject(&self.stats);
        };
        let opened = match open(&self.key, d, wall_ms()) {
            Ok(o) => o,
            Err(_) => return reject(&self.stats),
        };
        if !self.peers[i].fresh(opened.epoch, opened.seq, Instant::now()) {
            return reject(&self.stats);
        }
        match opened.kind {
            // Every flow at most once a second to one peer, however often it asks (a lost
            // "done" makes it ask again): what was sent is not sent twice; what was lost, the
            // refresh sends.
            KIND_HELLO if self.peers[i].last_bulk.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) => {
                self.control_to(i, KIND_DONE);
            }
            KIND_HELLO => {
                self.peers[i].last_bulk = Some(Instant::now());
                self.bulk(i, true);
            }
            KIND_DONE => {
                if !self.peers[i].caught_up {
                    self.peers[i].caught_up = true;
                    info!("flow sync: {} sent its flows ({} held)", self.peers[i].addr, self.writer.len());
                }
            }
            _ => {
                let now = sluice_sys::monotonic_ns();
                let mut rec = [0u8; RECORD];
                for r in opened.records.chunks_exact(RECORD) {
                    rec.copy_from_slice(r);
                    match self.writer.apply(&rec, now, &self.timeouts) {
                        Applied::Full => {
                            self.stats.store_full.fetch_add(1, Ordering::Relaxed);
                        }
                        Applied::Damaged => reject(&self.stats),
                        _ => {}
                    }
                    self.stats.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Whether two addresses are one (an IPv4 peer may show as IPv4-mapped IPv6).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sealed(kind: u8, records: &[[u8; RECORD]]) -> Vec<u8> {
        let mut p = Packer::new(KEY, 7);
        p.begin();
        for r in records {
            p.buf.extend_from_slice(r);
            p.count += 1;
        }
        p.seal(kind).to_vec()
    }

    #[test]
    fn a_sealed_datagram_opens_and_any_change_is_refused() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, KEY);
        let d = sealed(KIND_FLOWS, &[[1u8; RECORD], [2u8; RECORD]]);
        let o = open(&key, &d, wall_ms()).expect("opens");
        assert_eq!((o.kind, o.epoch, o.seq, o.records.len()), (KIND_FLOWS, 7, 1, 2 * RECORD));
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x10;
            assert!(open(&key, &bad, wall_ms()).is_err(), "byte {i} changed and still opened");
        }
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another key of thirty-two bytes!");
        assert_eq!(open(&other, &d, wall_ms()), Err(Refused::Mac));
        assert_eq!(open(&key, &d, wall_ms() + MAX_SKEW_MS + 5_000), Err(Refused::Clock));
        assert_eq!(open(&key, &d[..d.len() - 1], wall_ms()), Err(Refused::Malformed));
        assert_eq!(open(&key, &[], wall_ms()), Err(Refused::Malformed));
    }

    fn peer() -> Peer {
        Peer::new("198.18.0.2:7400".parse().unwrap())
    }

    #[test]
    fn a_datagram_is_taken_once() {
        let (mut p, now) = (peer(), Instant::now());
        assert!(p.fresh(5, 1, now));
        assert!(!p.fresh(5, 1, now), "replayed");
        assert!(p.fresh(5, 3, now));
        assert!(p.fresh(5, 2, now), "late, not seen");
        assert!(!p.fresh(5, 2, now));
        assert!(p.fresh(5, 200, now));
        assert!(!p.fresh(5, 100, now), "too old for the window");
        assert!(p.fresh(6, 1, now), "a new epoch: the peer restarted");
    }

    #[test]
    fn an_ended_epoch_replayed_is_refused() {
        let (mut p, t0) = (peer(), Instant::now());
        let (old, new) = (new_epoch(1_000, 7), new_epoch(1_001, 3));
        assert!(old < new, "a later start, a later epoch, whatever the random bits");
        assert_ne!(new_epoch(1_000, 1), new_epoch(1_000, 2), "the same millisecond");
        assert!(p.fresh(old, 1, t0));
        assert!(p.fresh(old, 2, t0));
        assert!(p.fresh(new, 1, t0), "the peer restarted");
        // The old run's datagrams, replayed: refused, and the new run's window is intact.
        assert!(!p.fresh(old, 3, t0 + Duration::from_secs(1)));
        assert!(!p.fresh(new, 1, t0 + Duration::from_secs(1)), "still a replay in the new epoch");
        assert!(p.fresh(new, 2, t0 + Duration::from_secs(2)));
        // Silent past the window, a lower epoch is the peer restarted with its clock set back.
        let later = t0 + Duration::from_secs(2) + EPOCH_SILENCE;
        assert!(!p.fresh(old, 9, later - Duration::from_millis(1)));
        assert!(p.fresh(old, 9, later));
        // (The other epoch's datagrams are by then older than the clock window: `open` refuses
        // them.)
    }

    #[test]
    fn a_short_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-sync-key-{}", std::process::id()));
        std::fs::write(&dir, b"short").unwrap();
        let e = read_key(&dir).unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&dir, KEY).unwrap();
        assert_eq!(read_key(&dir).unwrap(), KEY);
        let _ = std::fs::remove_file(&dir);
    }
}

#[cfg(test)]
mod loopback {
    //! Two sync threads over loopback: records queued on one reach the other's store; what a
    //! stranger sends is refused and counted.
    use super::*;
    use sluice_lb::flow::{Flow, FlowKey, FlowState};
    use sluice_lb::peers::PeerFlows;
    use sluice_model::Addr;
    use sluice_model::service::{BackendId, Generation, ServiceId};

    const KEY: &[u8] = b"loopback test key, 32 bytes long";

    fn free_addr() -> SocketAddr {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port")
    }

    fn flow(port: u16) -> Flow {
        let fwd =
            FlowKey::new(Addr::from_v4([198, 18, 0, 100]), port, Addr::from_v4([198, 18, 100, 1]), 80, 6);
        let rev =
            FlowKey::new(Addr::from_v4([198, 18, 1, 11]), 8080, Addr::from_v4([198, 18, 1, 241]), port, 6);
        Flow::new(
            fwd,
            rev,
            ServiceId(0),
            BackendId(0),
            Generation(1),
            FlowState::Established,
            0,
            &Timeouts::default(),
        )
    }

    struct Node {
        store: Arc<PeerFlows>,
        outbox: Outbox,
        stats: Arc<SyncStats>,
        handle: std::thread::JoinHandle<()>,
    }

    fn node(listen: SocketAddr, peer: SocketAddr, stop: &Arc<AtomicBool>) -> Node {
        let (store, writer) = PeerFlows::new(1024);
        let outbox: Outbox = Arc::new(ArrayQueue::new(OUTBOX));
        let stats = Arc::new(SyncStats::default());
        // A gateway started afresh (`sync_setup`): waiting until its peer has answered.
        stats.waiting.store(true, Ordering::Relaxed);
        let cfg = SyncConfig { listen, peers: vec![peer], key: KEY.to_vec(), journals: vec![] };
        let handle =
            spawn(cfg, vec![outbox.clone()], writer, stats.clone(), stop.clone()).expect("sync thread");
        Node { store, outbox, stats, handle }
    }

    fn wait(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}: not within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn flows_queued_on_one_node_reach_the_other_and_strangers_are_refused() {
        let (a_addr, b_addr) = (free_addr(), free_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let a = node(a_addr, b_addr, &stop);
        let b = node(b_addr, a_addr, &stop);
        // Each asks the other for its flows at start, and is answered.
        wait("both caught up", || {
            !a.stats.waiting.load(Ordering::Relaxed) && !b.stats.waiting.load(Ordering::Relaxed)
        });
        let t = Timeouts::default();
        for port in 40_000..40_025 {
            a.outbox.push(journal::encode(&flow(port))).expect("room");
        }
        wait("25 flows at B", || (40_000..40_025).all(|p| b.store.find(&flow(p).fwd, 1, &t).is_some()));
        assert!(a.stats.sent.load(Ordering::Relaxed) >= 25);
        // Their ends travel too.
        a.outbox.push(journal::encode_closed(&flow(40_000))).expect("room");
        wait("the ended flow forgotten", || b.store.find(&flow(40_000).fwd, 1, &t).is_none());
        // A stranger (another port on A's address is still A's address: a different key) is
        // refused, whatever it sends.
        let rejected = b.stats.rejected.load(Ordering::Relaxed);
        let stranger = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let mut forged = Packer::new(b"not the key, but thirty-two bytes", 9);
        forged.begin();
        forged.buf.extend_from_slice(&journal::encode(&flow(41_000)));
        forged.count = 1;
        stranger.send_to(forged.seal(KIND_FLOWS), b_addr).expect("send");
        stranger.send_to(b"garbage", b_addr).expect("send");
        wait("both refused", || b.stats.rejected.load(Ordering::Relaxed) >= rejected + 2);
        assert!(b.store.find(&flow(41_000).fwd, 1, &t).is_none());
        stop.store(true, Ordering::Relaxed);
        a.handle.join().expect("A");
        b.handle.join().expect("B");
    }
}
