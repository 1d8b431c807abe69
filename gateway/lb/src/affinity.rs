//! `sessionAffinity: ClientIP`: which backend a client was last sent to, per service, per worker.
//!
//! An entry lives `timeoutSeconds` after the client's last *new connection* (kube-proxy's
//! semantics); a fixed-capacity, 4-way set-associative table evicts the entry closest to expiry
//! when a set is full. Entries are keyed by the service's name hash and the client address, and
//! name the backend by address and port, so they survive table generations; a pinned backend that
//! left the service or stopped being eligible is simply not used (the caller re-picks).
//!
//! Workers do not share this table. So that a client whose connections RSS spreads over several
//! workers still sees one backend, the engine makes the *first* choice with a hash of the client
//! address (consistent, like `sh`): every worker — and every gateway node — picks the same
//! backend for a client without talking to the others.
//!
//! Hot path: yes. No allocation after [`AffinityTable::new`].

use sluice_model::addr::Addr;
use sluice_model::hash;
use sluice_model::ports::PortRange;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Service name hash with the low bit forced to 1; 0 marks an empty entry.
    service: u64,
    client: Addr,
    backend: Addr,
    port: u16,
    expires_ns: u64,
}

const WAYS: usize = 4;

/// The affinity table of one worker.
#[derive(Debug)]
pub struct AffinityTable {
    sets: Box<[[Entry; WAYS]]>,
    mask: usize,
    seed: u64,
}

impl AffinityTable {
    /// A table of about `capacity` entries (rounded up to a power of two, at least 4).
    pub fn new(capacity: usize, seed: u64) -> AffinityTable {
        let sets = capacity.div_ceil(WAYS).next_power_of_two().max(1);
        AffinityTable { sets: vec![[Entry::default(); WAYS]; sets].into_boxed_slice(), mask: sets - 1, seed }
    }

    #[inline(always)]
    fn set_of(&self, service: u64, client: &Addr) -> usize {
        let c = &client.0;
        let lo = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let hi = u64::from_ne_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        hash::keyed(self.seed, &[service, lo, hi]) as usize & self.mask
    }

    /// The backend a client is pinned to, if the entry is alive at `now_ns`.
    #[inline]
    pub fn get(&self, service_hash: u64, client: &Addr, now_ns: u64) -> Option<(Addr, u16)> {
        let svc = service_hash | 1;
        self.sets[self.set_of(svc, client)]
            .iter()
            .find(|e| e.service == svc && e.client == *client && e.expires_ns > now_ns)
            .map(|e| (e.backend, e.port))
    }

    /// Pins (or re-pins) a client to a backend until `expires_ns`.
    #[inline]
    pub fn put(&mut self, service_hash: u64, client: &Addr, backend: &Addr, port: u16, expires_ns: u64) {
        let svc = service_hash | 1;
        let i = self.set_of(svc, client);
        let set = &mut self.sets[i];
        let slot = match set.iter().position(|e| e.service == svc && e.client == *client) {
            Some(s) => s,
            None => {
                let mut best = 0;
                for (j, e) in set.iter().enumerate() {
                    if e.service == 0 {
                        best = j;
                        break;
                    }
                    if e.expires_ns < set[best].expires_ns {
                        best = j;
                    }
                }
                best
            }
        };
        set[slot] = Entry { service: svc, client: *client, backend: *backend, port, expires_ns };
    }
}

/// SNAT source-port choice for FullNAT, per worker.
///
/// A port is chosen per *backend*: each backend (hashed into one of [`CURSORS`] cursors) walks the
/// worker's port range in order, so a (gateway address, port, backend) tuple comes round again
/// only after the whole range has been used towards that backend. The caller also checks each
/// candidate against the flow table, which keeps closed connections in TIME_WAIT for longer than
/// a backend does — so a tuple the backend may still hold in TIME_WAIT is never reused, which is
/// what makes kube-proxy's masquerading path collapse under connection churn (a SYN that hits a
/// TIME_WAIT socket is answered with a challenge ACK and waits out a retransmission).
#[derive(Debug)]
pub struct SnatPorts {
    lo: u16,
    span: u32,
    cursors: Box<[u32]>,
}

/// Number of independent per-backend cursors.
pub const CURSORS: usize = 4096;

impl SnatPorts {
    /// Ports from `lo..=hi` (this worker's own range: ranges of different workers must not overlap,
    /// so a reply's destination port names the worker that owns its flow).
    pub fn new(range: PortRange) -> SnatPorts {
        let (lo, span) = (range.lo(), range.len());
        // Each cursor is an offset in 0..span, so an allocation needs no division.
        let cursors =
            (0..CURSORS as u64).map(|i| hash::reduce(hash::words(0x736e_6174, &[i]), span)).collect();
        SnatPorts { lo, span, cursors }
    }

    /// How many ports the range has.
    pub fn span(&self) -> u32 {
        self.span
    }

    /// The port [`Self::next`] would return now, without taking it.
    #[inline(always)]
    pub fn peek(&self, backend_hash: u64) -> u16 {
        self.lo + self.cursors[backend_hash as usize & (CURSORS - 1)] as u16
    }

    /// Puts each backend's cursor back where a previous gateway's probably was, from the ports
    /// its flows still hold (`(backend hash, port)`; ports outside the range are ignored):
    /// after the held port that the longest run of free ports follows. A cursor walks its
    /// range in order, so the ports it handed out last usually lie just before that run, and a cursor
    /// started afresh would walk into them: after a restart that carried a thousand flows to
    /// one backend over, every new flow's candidates were taken (seen in `benches/run faults`).
    /// Control path (at start): allocates.
    pub fn resume(&mut self, held: impl IntoIterator<Item = (u64, u16)>) {
        let mut by_cursor: std::collections::HashMap<usize, Vec<u32>> = std::collections::HashMap::new();
        for (h, port) in held {
            let off = u32::from(port.wrapping_sub(self.lo));
            if port >= self.lo && off < self.span {
                by_cursor.entry(h as usize & (CURSORS - 1)).or_default().push(off);
            }
        }
        for (c, mut offs) in by_cursor {
            offs.sort_unstable();
            offs.dedup();
            // The free run after offs[i] reaches offs[i + 1] (the last one wraps to offs[0]).
            let n = offs.len();
            let run = |i: usize| {
                let next = if i + 1 == n { offs[0] + self.span } else { offs[i + 1] };
                next - offs[i]
            };
            let Some(best) = (0..n).max_by_key(|&i| (run(i), std::cmp::Reverse(i))) else { continue };
            let at = offs[best] + 1;
            self.cursors[c] = if at == self.span { 0 } else { at };
        }
    }

    /// The next candidate port towards the backend whose identity hashes to `backend_hash`.
    #[inline(always)]
    pub fn next(&mut self, backend_hash: u64) -> u16 {
        let c = &mut self.cursors[backend_hash as usize & (CURSORS - 1)];
        let p = self.lo + *c as u16;
        *c = if *c + 1 == self.span { 0 } else { *c + 1 };
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_resumes_after_the_ports_still_held() {
        let mut p = SnatPorts::new(PortRange::new(10_000, 10_999).unwrap());
        let h = 42u64;
        // A previous gateway handed out 10,500..10,899 in order: next is 10,900.
        p.resume((10_500..10_900).map(|port| (h, port)));
        assert_eq!(p.peek(h), 10_900, "after the last port handed out");
        // With 10,100 held too (a long connection), the longest free run follows it instead:
        // 400 free ports in a row.
        let mut p = SnatPorts::new(PortRange::new(10_000, 10_999).unwrap());
        p.resume((10_500..10_900).chain([10_100]).map(|port| (h, port)));
        assert_eq!(p.peek(h), 10_101);
        // Wrapping: held 10,990..10,999 and 10,000..10,019: next is 10,020.
        let mut p = SnatPorts::new(PortRange::new(10_000, 10_999).unwrap());
        p.resume((10_990..=10_999).chain(10_000..10_020).map(|port| (h, port)));
        assert_eq!(p.peek(h), 10_020);
        // Another backend's cursor, and ports outside the range, are untouched.
        let before = p.peek(7);
        p.resume([(7, 9_000), (7, 11_000)]);
        assert_eq!(p.peek(7), before);
    }

    #[test]
    fn affinity_expires_and_refreshes() {
        let mut t = AffinityTable::new(64, 3);
        let c = Addr::from_v4([198, 18, 0, 2]);
        let b = Addr::from_v4([198, 18, 1, 1]);
        assert_eq!(t.get(7, &c, 0), None);
        t.put(7, &c, &b, 80, 100);
        assert_eq!(t.get(7, &c, 99), Some((b, 80)));
        assert_eq!(t.get(7, &c, 100), None, "expired at its deadline");
        assert_eq!(t.get(9, &c, 50), None, "per service");
        t.put(7, &c, &b, 81, 200);
        assert_eq!(t.get(7, &c, 150), Some((b, 81)));
    }

    #[test]
    fn affinity_full_set_evicts_soonest_expiry() {
        // Expiries out of slot and insertion order, so that neither can stand in for the
        // expiry: the third client (slot 2, inserted third) expires soonest.
        let mut t = AffinityTable::new(4, 3); // one set of four
        let b = Addr::from_v4([198, 18, 1, 1]);
        let expiry = [103, 101, 100, 102];
        for (i, e) in (0u8..).zip(expiry) {
            t.put(1, &Addr::from_v4([198, 18, 0, i]), &b, 80, e);
        }
        t.put(1, &Addr::from_v4([198, 18, 0, 9]), &b, 80, 500);
        assert_eq!(t.get(1, &Addr::from_v4([198, 18, 0, 2]), 0), None);
        for i in [0, 1, 3, 9] {
            assert!(t.get(1, &Addr::from_v4([198, 18, 0, i]), 0).is_some(), "client {i} kept");
        }
    }

    #[test]
    fn snat_walks_the_whole_range_before_repeating() {
        let mut s = SnatPorts::new(PortRange::new(20_000, 20_099).unwrap());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let p = s.next(42);
            assert!((20_000..=20_099).contains(&p));
            assert!(seen.insert(p), "port {p} repeated within one cycle");
        }
        assert!(!seen.insert(s.next(42)), "the 101st wraps around");
    }
}
