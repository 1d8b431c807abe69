//! The flows other gateways forward, as their flow sync told this one: what lets this gateway
//! carry a flow that ECMP moved here from another node (a node killed, drained or added), or a
//! reply that crossed this node instead of the one that opened the flow.
//!
//! **Shape.** One writer, many readers, no lock. The writer is the daemon's flow-sync thread
//! ([`PeerWriter`], which owns the bookkeeping: free slots, which key is where); the readers are
//! the workers ([`PeerFlows::find`]), which look here only when their own flow table misses —
//! never for a packet of a flow they hold. A slot holds one flow's record in the journal's
//! format ([`crate::journal`]: the two keys, the state, the SYN-cookie shift, and the keyed
//! check), written under a sequence lock: a reader that saw the sequence move, or odd, retries
//! once and then treats the slot as a miss — the flow's next packet finds it. Both keys of a
//! flow point at its slot from the index, a bucketed table of atomic words (`tag << 32 |
//! slot + 1`), probed over [`PROBE`] buckets.
//!
//! **Trust.** Records arrive over the network, authenticated by the sync protocol's MAC but
//! still decoded field by field ([`crate::journal::decode_synced`]) on the way in and again on
//! the way out (a slot read torn fails its check): nothing read here is an index into anything
//! but this store, and a flow taken from here belongs to no table generation
//! ([`crate::journal::ADOPTED`]), so the worker finds its service and backend again by address.
//!
//! **Bounds.** A fixed number of slots, all allocated at start. A record that finds no slot, or
//! no room in the index, is refused and counted ([`Applied::Full`]). Each slot expires with its
//! flow's timeout, counted from the last record about it; the sync sender refreshes the flows
//! it carries, and [`PeerWriter::sweep`] frees the expired.
//!
//! Off the path of the flows a worker knows: [`PeerFlows::find`] runs for a packet no flow of
//! the worker claims that is not a TCP SYN — a moved flow's first packet, which then becomes
//! the worker's own, and a new UDP flow's first packet (a miss: a few cache lines of the
//! index). No `unsafe`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::flow::{Flow, FlowKey, Timeouts};
use crate::journal::{self, RECORD, Synced};

/// Buckets probed for a key.
const PROBE: usize = 4;
const WAYS: usize = 8;
const WORDS: usize = RECORD / 8;

#[derive(Default)]
struct Slot {
    /// Even: stable; odd: being written.
    seq: AtomicU64,
    /// When the flow expires here (monotonic ns), unless refreshed.
    expires_ns: AtomicU64,
    words: [AtomicU64; WORDS],
}

#[derive(Default)]
struct Bucket {
    entries: [AtomicU64; WAYS],
}

/// The store the workers read. Shared (`Arc`) between the flow-sync thread and the workers.
pub struct PeerFlows {
    slots: Box<[Slot]>,
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Counts the flows stored or refreshed: a reader holding frames for records runs them
    /// again only when it moved ([`PeerFlows::version`]).
    version: AtomicU64,
}

impl core::fmt::Debug for PeerFlows {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerFlows").field("capacity", &self.slots.len()).finish()
    }
}

fn key_hash(k: &FlowKey) -> u64 {
    k.stable_hash()
}

/// The index entry's tag: the hash's high 32 bits, never 0 (an entry of 0 is empty).
fn tag_of(h: u64) -> u64 {
    (h >> 32) | 1
}

impl PeerFlows {
    /// A store for up to `capacity` flows (at least 1), and its only writer.
    ///
    /// Memory: about `capacity × 340` bytes (a slot of 144, the index's share of 32 to 64, the
    /// writer's keys of 128 and free list), all allocated here.
    pub fn new(capacity: usize) -> (Arc<PeerFlows>, PeerWriter) {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1);
        // Two entries per flow over buckets of eight: at most half full.
        let nbuckets = (capacity * 2 * 2).div_ceil(WAYS).next_power_of_two().max(PROBE);
        let store = Arc::new(PeerFlows {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            buckets: (0..nbuckets).map(|_| Bucket::default()).collect(),
            mask: nbuckets - 1,
            version: AtomicU64::new(0),
        });
        let writer = PeerWriter {
            store: store.clone(),
            free: (0..capacity as u32).rev().collect(),
            len: 0,
            keys: vec![None; capacity],
            sweep_at: 0,
        };
        (store, writer)
    }

    /// Maximum number of flows.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Moves each time a flow is stored or refreshed: what [`PeerFlows::find`] could not find
    /// before, it may find only once this has moved.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The flow whose forward or reverse key is `key`, ready to insert into a worker's flow
    /// table (in no table generation, its timeout starting at `now_ns`), if a peer said it
    /// forwards it and it has not expired.
    pub fn find(&self, key: &FlowKey, now_ns: u64, timeouts: &Timeouts) -> Option<Flow> {
        let h = key_hash(key);
        let tag = tag_of(h);
        for i in 0..PROBE {
            let b = &self.buckets[(h as usize).wrapping_add(i) & self.mask];
            for e in &b.entries {
                let v = e.load(Ordering::Acquire);
                if v == 0 || v >> 32 != tag {
                    continue;
                }
                let Some(slot) = ((v & 0xffff_ffff) as usize).checked_sub(1).and_then(|s| self.slots.get(s))
                else {
                    continue;
                };
                if let Some(f) = read(slot, now_ns, timeouts)
                    && (f.fwd == *key || f.rev == *key)
                {
                    return Some(f);
                }
            }
        }
        None
    }
}

/// A slot's flow, read under its sequence lock (two tries), if live and not expired.
fn read(slot: &Slot, now_ns: u64, timeouts: &Timeouts) -> Option<Flow> {
    let (rec, expires) = read_raw(slot)?;
    if expires <= now_ns {
        return None;
    }
    match journal::decode_synced(&rec, now_ns, timeouts) {
        Synced::Live(f) => Some(f),
        _ => None,
    }
}

/// A slot's record and expiry as one writer's store left them, read under the sequence lock
/// (two tries): never half of one write and half of another.
fn read_raw(slot: &Slot) -> Option<([u8; RECORD], u64)> {
    for _ in 0..2 {
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            continue;
        }
        let expires = slot.expires_ns.load(Ordering::Relaxed);
        let mut rec = [0u8; RECORD];
        for (w, out) in slot.words.iter().zip(rec.chunks_exact_mut(8)) {
            out.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) == s1 {
            return Some((rec, expires));
        }
    }
    None
}

fn write(slot: &Slot, rec: &[u8; RECORD], expires_ns: u64) {
    let s = slot.seq.load(Ordering::Relaxed);
    slot.seq.store(s.wrapping_add(1) | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    slot.expires_ns.store(expires_ns, Ordering::Relaxed);
    for (w, c) in slot.words.iter().zip(rec.chunks_exact(8)) {
        w.store(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]), Ordering::Relaxed);
    }
    slot.seq.store((s | 1).wrapping_add(1), Ordering::Release);
}

/// What became of one record given to [`PeerWriter::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A flow stored or refreshed.
    Stored,
    /// A flow forgotten (its peer ended it).
    Removed,
    /// The end of a flow this store did not hold.
    Unknown,
    /// A flow in its SYN-cookie handshake: not carried (its cookie lives only in its gateway).
    Skipped,
    /// No slot or no room in the index: refused.
    Full,
    /// Failed its check or a field's.
    Damaged,
}

/// The store's writer: the flow-sync thread. Control path (allocates only at start).
pub struct PeerWriter {
    store: Arc<PeerFlows>,
    free: Vec<u32>,
    /// Flows held.
    len: usize,
    /// Each slot's keys, and where each one's index entry is.
    keys: Vec<Option<Held>>,
    sweep_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    fwd: FlowKey,
    rev: FlowKey,
    expires_ns: u64,
    entries: [(usize, usize); 2],
}

impl core::fmt::Debug for PeerWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PeerWriter").field("len", &self.len()).finish()
    }
}

impl PeerWriter {
    /// Flows the store holds at most.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes one record a peer sent: stores or refreshes its flow, or forgets it.
    pub fn apply(&mut self, rec: &[u8; RECORD], now_ns: u64, timeouts: &Timeouts) -> Applied {
        match journal::decode_synced(rec, now_ns, timeouts) {
            Synced::Live(f) => self.store(rec, &f),
            Synced::Closed(fwd) => {
                if self.remove(&fwd) {
                    Applied::Removed
                } else {
                    Applied::Unknown
                }
            }
            Synced::Skipped => Applied::Skipped,
            Synced::Damaged => Applied::Damaged,
        }
    }

    fn store(&mut self, rec: &[u8; RECORD], f: &Flow) -> Applied {
        let r = self.store_flow(rec, f);
        if r == Applied::Stored {
            // After the slot and its index entries: a reader that sees the new version finds
            // them.
            self.store.version.fetch_add(1, Ordering::Release);
        }
        r
    }

    fn store_flow(&mut self, rec: &[u8; RECORD], f: &Flow) -> Applied {
        if let Some(s) = self.find_slot(&f.fwd, true) {
            let same = self.keys[s].is_some_and(|h| h.rev == f.rev);
            if same {
                write(&self.store.slots[s], rec, f.expires_ns);
                if let Some(h) = &mut self.keys[s] {
                    h.expires_ns = f.expires_ns;
                }
                return Applied::Stored;
            }
            // The same client tuple on another translation: the peer reopened it.
            self.remove(&f.fwd);
        }
        // The reverse key of another stored flow (a tuple reused): that one is over.
        if let Some(other) = self.find_slot(&f.rev, false)
            && let Some(h) = self.keys[other]
        {
            self.remove(&h.fwd);
        }
        let Some(s) = self.free.pop() else { return Applied::Full };
        let slot = &self.store.slots[s as usize];
        write(slot, rec, f.expires_ns);
        let Some(e0) = self.place(&f.fwd, s) else {
            self.release(s);
            return Applied::Full;
        };
        let Some(e1) = self.place(&f.rev, s) else {
            self.store.buckets[e0.0].entries[e0.1].store(0, Ordering::Release);
            self.release(s);
            return Applied::Full;
        };
        self.keys[s as usize] =
            Some(Held { fwd: f.fwd, rev: f.rev, expires_ns: f.expires_ns, entries: [e0, e1] });
        self.len += 1;
        Applied::Stored
    }

    /// The slot whose flow has `key` as its forward key, or (`fwd_only` false) as either
    /// (writer's view: the index the workers read, checked against the keys held here).
    fn find_slot(&self, key: &FlowKey, fwd_only: bool) -> Option<usize> {
        let h = key_hash(key);
        let tag = tag_of(h);
        for i in 0..PROBE {
            let b = &self.store.buckets[(h as usize).wrapping_add(i) & self.store.mask];
            for e in &b.entries {
                let v = e.load(Ordering::Relaxed);
                if v == 0 || v >> 32 != tag {
                    continue;
                }
                let s = ((v & 0xffff_ffff) as usize).checked_sub(1)?;
                let held = self.keys.get(s).copied().flatten();
                if held.is_some_and(|h| h.fwd == *key || !fwd_only && h.rev == *key) {
                    return Some(s);
                }
            }
        }
        None
    }

    fn place(&mut self, key: &FlowKey, s: u32) -> Option<(usize, usize)> {
        let h = key_hash(key);
        let v = tag_of(h) << 32 | (u64::from(s) + 1);
        for i in 0..PROBE {
            let b = (h as usize).wrapping_add(i) & self.store.mask;
            for (j, e) in self.store.buckets[b].entries.iter().enumerate() {
                if e.load(Ordering::Relaxed) == 0 {
                    e.store(v, Ordering::Release);
                    return Some((b, j));
                }
            }
        }
        None
    }

    fn remove(&mut self, fwd: &FlowKey) -> bool {
        let Some(s) = self.find_slot(fwd, true) else { return false };
        self.len -= 1;
        if let Some(h) = self.keys[s].take() {
            for (b, j) in h.entries {
                self.store.buckets[b].entries[j].store(0, Ordering::Release);
            }
        }
        self.release(s as u32);
        true
    }

    fn release(&mut self, s: u32) {
        write(&self.store.slots[s as usize], &[0u8; RECORD], 0);
        self.free.push(s);
    }

    /// Frees up to `budget` slots' worth of expired flows, resuming where the last call
    /// stopped. Returns how many were freed.
    pub fn sweep(&mut self, now_ns: u64, budget: usize) -> usize {
        let n = self.keys.len();
        let mut freed = 0;
        for _ in 0..budget.min(n) {
            let i = self.sweep_at;
            self.sweep_at = (i + 1) % n;
            if let Some(h) = self.keys[i]
                && h.expires_ns <= now_ns
                && self.remove(&h.fwd)
            {
                freed += 1;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowState;
    use sluice_model::Addr;
    use sluice_model::service::{BackendId, Generation, ServiceId};

    fn flow(client_port: u16, snat_port: u16, state: FlowState) -> Flow {
        let fwd = FlowKey::new(
            Addr::from_v4([198, 18, 0, 100]),
            client_port,
            Addr::from_v4([198, 18, 100, 1]),
            80,
            6,
        );
        let rev = FlowKey::new(
            Addr::from_v4([198, 18, 1, 11]),
            8080,
            Addr::from_v4([198, 18, 1, 241]),
            snat_port,
            6,
        );
        Flow::new(fwd, rev, ServiceId(0), BackendId(0), Generation(1), state, 0, &Timeouts::default())
    }

    #[test]
    fn the_memory_per_flow_is_what_new_says() {
        assert_eq!(core::mem::size_of::<Slot>(), 144);
        assert!(core::mem::size_of::<Option<Held>>() <= 128, "{}", core::mem::size_of::<Option<Held>>());
        // Two index entries per flow in buckets at most half full, rounded up to a power of two.
        let (store, _) = PeerFlows::new(1000);
        let per_flow = store.buckets.len() * core::mem::size_of::<Bucket>() / 1000;
        assert!((32..=64).contains(&per_flow), "{per_flow}");
    }

    #[test]
    fn a_stored_flow_is_found_by_either_key_and_forgotten_at_its_end() {
        let t = Timeouts::default();
        let (store, mut w) = PeerFlows::new(16);
        let f = flow(40000, 1025, FlowState::Established);
        assert_eq!(w.apply(&journal::encode(&f), 1, &t), Applied::Stored);
        let got = store.find(&f.fwd, 2, &t).expect("by its forward key");
        assert_eq!((got.fwd, got.rev, got.state), (f.fwd, f.rev, f.state));
        assert_eq!(got.generation, journal::ADOPTED);
        assert!(store.find(&f.rev, 2, &t).is_some(), "by its reverse key");
        assert!(store.find(&flow(40001, 1026, FlowState::Established).fwd, 2, &t).is_none());
        // Refreshed in place: still one flow.
        assert_eq!(w.apply(&journal::encode(&f), 3, &t), Applied::Stored);
        assert_eq!(w.len(), 1);
        assert_eq!(w.apply(&journal::encode_closed(&f), 4, &t), Applied::Removed);
        assert!(store.find(&f.fwd, 5, &t).is_none() && store.find(&f.rev, 5, &t).is_none());
        assert_eq!(w.apply(&journal::encode_closed(&f), 4, &t), Applied::Unknown);
        assert!(w.is_empty());
    }

    #[test]
    fn a_full_store_refuses_and_a_sweep_frees_the_expired() {
        let t = Timeouts::default();
        let (store, mut w) = PeerFlows::new(4);
        for i in 0..4 {
            let f = flow(40000 + i, 2000 + i, FlowState::SynSent);
            assert_eq!(w.apply(&journal::encode(&f), 0, &t), Applied::Stored);
        }
        let extra = flow(41000, 3000, FlowState::SynSent);
        assert_eq!(w.apply(&journal::encode(&extra), 0, &t), Applied::Full);
        // SYN_SENT flows time out first; past that, none is found, and a sweep frees them.
        let later = t.of(FlowState::SynSent) + 1;
        assert!(store.find(&flow(40000, 2000, FlowState::SynSent).fwd, later, &t).is_none());
        assert_eq!(w.sweep(later, 100), 4);
        assert_eq!(w.apply(&journal::encode(&extra), later, &t), Applied::Stored);
    }

    #[test]
    fn damaged_records_are_refused_and_a_reused_tuple_replaces_its_old_flow() {
        let t = Timeouts::default();
        let (store, mut w) = PeerFlows::new(8);
        let f = flow(40000, 1025, FlowState::Established);
        let mut bad = journal::encode(&f);
        bad[9] ^= 1;
        assert_eq!(w.apply(&bad, 0, &t), Applied::Damaged);
        assert!(w.is_empty());
        assert_eq!(w.apply(&journal::encode(&f), 0, &t), Applied::Stored);
        // The same client tuple, translated anew (the peer reopened it): the old one goes.
        let again = flow(40000, 1099, FlowState::SynSent);
        assert_eq!(w.apply(&journal::encode(&again), 0, &t), Applied::Stored);
        assert_eq!(w.len(), 1);
        assert!(store.find(&f.rev, 1, &t).is_none());
        assert_eq!(store.find(&again.rev, 1, &t).map(|g| g.rev), Some(again.rev));
        // Another client on the old one's SNAT tuple: the one holding it goes.
        let other = flow(40555, 1099, FlowState::SynSent);
        assert_eq!(w.apply(&journal::encode(&other), 0, &t), Applied::Stored);
        assert_eq!(w.len(), 1);
        assert!(store.find(&again.fwd, 1, &t).is_none());
    }

    #[test]
    fn a_reader_sees_one_whole_write_or_nothing_never_a_mix() {
        // The sequence lock itself, below the records' keyed check (which would hide a torn
        // read as a miss): two records that differ in every word, written in turn into one
        // slot while another thread reads it raw. Without the lock, a read mixes the two.
        use std::sync::atomic::AtomicBool;
        let slot = std::sync::Arc::new(Slot::default());
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let (a, b) = ([0x11u8; RECORD], [0xeeu8; RECORD]);
        write(&slot, &a, 1);
        let reader = {
            let (slot, done) = (slot.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut whole, mut missed) = (0u32, 0u32);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                while whole < 20_000 && std::time::Instant::now() < deadline {
                    match read_raw(&slot) {
                        Some((rec, expires)) => {
                            let one = (rec == a && expires == 1) || (rec == b && expires == 2);
                            assert!(one, "a torn read: {:x?}… expiring {expires}", &rec[..16]);
                            whole += 1;
                        }
                        None => missed += 1,
                    }
                }
                done.store(true, Ordering::Relaxed);
                (whole, missed)
            })
        };
        let mut writes = 0u64;
        // Until the reader is done, or has panicked (a torn read).
        while !done.load(Ordering::Relaxed) && !reader.is_finished() {
            if writes.is_multiple_of(2) {
                write(&slot, &b, 2)
            } else {
                write(&slot, &a, 1)
            }
            writes += 1;
            // A little room between writes, as real ones have plenty.
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
        let (whole, missed) = reader.join().expect("reader");
        assert!(whole > 0 && writes > 0, "{whole} whole reads, {missed} missed, {writes} writes");
    }
}
