//! The flow journal: what a gateway started after this one needs to carry on every flow this
//! one forwards, kept in memory that outlives the process (a file in `/dev/shm`, mapped by the
//! daemon; this module sees only bytes).
//!
//! **What is kept.** One record per slab slot of the [`FlowTable`](crate::flow::FlowTable),
//! written when a flow is inserted, rewritten when its tracking state changes (a handful of times
//! in a connection's life: SYN-ACK, established, each FIN, the close) and cleared when it is
//! removed: the two keys (which hold everything the rewrite needs — for FullNAT the SNAT tuple
//! the backend answers to, for DNAT the backend), the state, the FIN bits and the SYN-cookie
//! shift. Nothing is written per packet: timers, sequence positions and counters are not kept.
//! A flow carried over starts its timeout afresh, and its tracker picks both directions up from
//! their next segments, as conntrack's liberal pickup does for a flow it joins mid-stream. The
//! one exception is a flow in TIME_WAIT, whose client's last sequence number and timestamp are
//! final when it enters that state and are what decides whether a new SYN may take its FullNAT
//! tuple (RFC 6191): without them a restart would keep every such tuple taken until it expires.
//!
//! **What is not trusted.** The bytes are read by a later process and may have been written by a
//! process that died half-way through a record, or by anyone who can write the file. Every record
//! carries a keyed check over the rest: a torn or altered record fails it and is counted, never
//! adopted. A record that passes is still checked field by field (state, flags, protocol,
//! padding). Service and backend ids are not kept at all: an adopted flow belongs to no table
//! generation ([`ADOPTED`]), so its first packet finds its service and backend again by address,
//! as after any table change (`engine::on_flow`); nothing read here is ever used as an index.
//!
//! **Not kept, by design:** a flow still in its SYN-cookie handshake with the backend (what it
//! needs, the cookie, lived only in the dead process; the client retransmits), and the
//! session-affinity table (a new connection of a pinned client may choose again after a
//! restart; its established connections keep their backend).
//!
//! Layout: a header of [`HEADER`] bytes (magic, version, record size, capacity), then
//! `capacity` records of [`RECORD`] bytes:
//!
//! ```text
//! 0      live (0xa5) or free (anything else)
//! 1      state (FlowState as u8)        2   FIN / proxied bits     3   zero
//! 4..8   SYN-cookie shift (delta), little-endian
//! 8..48  forward key: src[16] dst[16] sport dport (LE) proto, 3 zero bytes
//! 48..88 reverse key, the same
//! 88..97 for a flow in TIME_WAIT: the client's last sequence end and timestamp, LE, and
//!        bit 0 "known", bit 1 "has timestamp" (what RFC 6191 reuse compares); else zero
//! 97..120 zero
//! 120..128 check: a keyed hash of bytes 0..120
//! ```
//!
//! Hot path: [`Journal::write`] runs once per new flow and per state change, not per packet.

use sluice_model::addr::Addr;
use sluice_model::hash;
use sluice_model::service::Generation;

use crate::flow::{Flow, FlowKey, FlowState, Timeouts};

/// Bytes of one record.
pub const RECORD: usize = 128;
/// Bytes before the first record.
pub const HEADER: usize = 128;
const MAGIC: [u8; 8] = *b"SLUICEJ1";
const VERSION: u32 = 1;
const LIVE: u8 = 0xa5;
/// A flow-sync record of a flow that ended ([`encode_closed`]).
const CLOSED: u8 = 0x5a;
/// Not a secret: the check finds torn and damaged records, and decoding trusts nothing it
/// passes.
const CHECK_SEED: u64 = 0x6a6f_7572_6e61_6c31;

/// The generation of a flow carried over from a previous gateway: none of the table's, so its
/// service and backend are found again by address on its first packet.
pub const ADOPTED: Generation = Generation(u64::MAX);

/// The memory a journal is written to: a mapping the daemon owns (it outlives the process),
/// or anything else that gives out bytes (tests use a `Vec`).
pub type Memory = Box<dyn AsMut<[u8]> + Send>;

/// Bytes a journal for `capacity` flows needs.
pub fn bytes_for(capacity: usize) -> usize {
    HEADER + capacity * RECORD
}

/// Why a journal cannot be used or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalError {
    /// The memory is shorter than its header or its capacity says.
    TooShort {
        /// Bytes there are.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The header is not a journal's (no magic: not written by a gateway, or overwritten).
    NotAJournal,
    /// Written by a gateway whose records this one cannot read.
    Version {
        /// Its version.
        found: u32,
        /// Ours.
        ours: u32,
    },
}

impl core::fmt::Display for JournalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JournalError::TooShort { len, need } => {
                write!(f, "{len} bytes, shorter than the {need} its header calls for")
            }
            JournalError::NotAJournal => f.write_str("not a flow journal (its first bytes are not SLUICEJ1)"),
            JournalError::Version { found, ours } => {
                write!(f, "journal version {found}; this gateway reads version {ours}")
            }
        }
    }
}

impl std::error::Error for JournalError {}

/// A journal being written, one record per slab slot.
pub(crate) struct Journal {
    mem: Memory,
    capacity: usize,
}

impl core::fmt::Debug for Journal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Journal").field("capacity", &self.capacity).finish()
    }
}

impl Journal {
    /// Starts a journal for `capacity` slots in `mem`, which must be zeros (a new file: every
    /// record free): writes the header. Nothing else is touched, so a file's pages are
    /// allocated only as flows are written to them.
    pub(crate) fn new(mut mem: Memory, capacity: usize) -> Result<Journal, JournalError> {
        let need = bytes_for(capacity);
        let bytes = (*mem).as_mut();
        if bytes.len() < need {
            return Err(JournalError::TooShort { len: bytes.len(), need });
        }
        bytes[..HEADER].fill(0);
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(RECORD as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&(capacity as u64).to_le_bytes());
        Ok(Journal { mem, capacity })
    }

    /// Writes slot `idx`'s record for `f`.
    #[inline]
    pub(crate) fn write(&mut self, idx: u32, f: &Flow) {
        self.put(idx, &encode(f));
    }

    /// Writes slot `idx`'s record, already encoded.
    #[inline]
    pub(crate) fn put(&mut self, idx: u32, rec: &[u8; RECORD]) {
        if let Some(r) = self.record(idx) {
            r.copy_from_slice(rec);
        }
    }

    /// All of its bytes.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        (*self.mem).as_mut()
    }

    /// Marks slot `idx` free.
    #[inline]
    pub(crate) fn clear(&mut self, idx: u32) {
        if let Some(r) = self.record(idx) {
            r[0] = 0;
        }
    }

    #[inline(always)]
    fn record(&mut self, idx: u32) -> Option<&mut [u8]> {
        let at = HEADER + idx as usize * RECORD;
        if idx as usize >= self.capacity {
            return None;
        }
        (*self.mem).as_mut().get_mut(at..at + RECORD)
    }
}

fn put_key(out: &mut [u8], k: &FlowKey) {
    out[..16].copy_from_slice(&k.src.0);
    out[16..32].copy_from_slice(&k.dst.0);
    out[32..34].copy_from_slice(&k.sport.to_le_bytes());
    out[34..36].copy_from_slice(&k.dport.to_le_bytes());
    out[36] = k.proto;
}

fn get_key(b: &[u8]) -> Option<FlowKey> {
    if b[37..40] != [0, 0, 0] {
        return None;
    }
    let addr = |r: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(r);
        Addr(a)
    };
    Some(FlowKey::new(
        addr(&b[..16]),
        u16::from_le_bytes([b[32], b[33]]),
        addr(&b[16..32]),
        u16::from_le_bytes([b[34], b[35]]),
        b[36],
    ))
}

fn check(rec: &[u8]) -> u64 {
    let mut w = [0u64; 15];
    for (i, c) in rec[..120].chunks_exact(8).enumerate() {
        w[i] = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    hash::words(CHECK_SEED, &w)
}

/// The record of a flow that has ended, for the flow-sync peers ([`crate::peers`]): its keys,
/// so that a peer forgets it. Never in a journal (a slot of a removed flow is free).
pub fn encode_closed(f: &Flow) -> [u8; RECORD] {
    encode_as(f, CLOSED)
}

/// The record of a live flow.
pub fn encode(f: &Flow) -> [u8; RECORD] {
    encode_as(f, LIVE)
}

/// A flow's record under `marker`, its check computed once.
fn encode_as(f: &Flow, marker: u8) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[0] = marker;
    r[1] = f.state as u8;
    r[2] = f.fin_bits();
    r[4..8].copy_from_slice(&f.delta.to_le_bytes());
    put_key(&mut r[8..48], &f.fwd);
    put_key(&mut r[48..88], &f.rev);
    if f.state == FlowState::TimeWait {
        let s = &f.seq[0];
        r[88..92].copy_from_slice(&s.end.to_le_bytes());
        r[92..96].copy_from_slice(&s.tsval.to_le_bytes());
        r[96] = u8::from(s.known) | (u8::from(s.has_ts) << 1);
    }
    let c = check(&r);
    r[120..].copy_from_slice(&c.to_le_bytes());
    r
}

/// Whether a record is marked live (its check is not looked at: [`decode`] does that).
pub fn is_live(rec: &[u8]) -> bool {
    rec.first() == Some(&LIVE)
}

/// What one record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A free slot.
    Free,
    /// A flow, ready to insert: no table generation ([`ADOPTED`]), its timeout starting now,
    /// its sequence positions unknown.
    Flow(Flow),
    /// A flow this gateway does not carry over (in its SYN-cookie handshake with the backend).
    Skipped,
    /// Torn, damaged or not a flow: counted, never used.
    Damaged,
}

/// What a flow-sync record says ([`crate::peers`]): a flow a peer forwards, or one it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// A live flow, as [`Record::Flow`].
    Live(Flow),
    /// A flow that ended: its forward key.
    Closed(FlowKey),
    /// A flow in its SYN-cookie handshake ([`Record::Skipped`]).
    Skipped,
    /// Torn, damaged, free or not a flow.
    Damaged,
}

/// Decodes one flow-sync record: the journal's checks, and a closed flow's too.
pub fn decode_synced(rec: &[u8], now_ns: u64, timeouts: &Timeouts) -> Synced {
    if rec.len() >= RECORD && rec[0] == CLOSED {
        // The same fields as a live record's, under the CLOSED marker its check covers.
        return match checked(&rec[..RECORD]).map(|r| fields(r, now_ns, timeouts)) {
            Some(Record::Flow(f)) => Synced::Closed(f.fwd),
            Some(Record::Skipped) => Synced::Skipped,
            _ => Synced::Damaged,
        };
    }
    match decode(rec, now_ns, timeouts) {
        Record::Flow(f) => Synced::Live(f),
        Record::Skipped => Synced::Skipped,
        Record::Free | Record::Damaged => Synced::Damaged,
    }
}

/// Decodes one record (of [`RECORD`] bytes; a shorter slice is damaged).
pub fn decode(rec: &[u8], now_ns: u64, timeouts: &Timeouts) -> Record {
    let Some(rec) = rec.get(..RECORD) else { return Record::Damaged };
    if rec[0] != LIVE {
        return Record::Free;
    }
    checked(rec).map_or(Record::Damaged, |r| fields(r, now_ns, timeouts))
}

/// A whole record (marker and all) whose stored check matches its bytes.
fn checked(rec: &[u8]) -> Option<&[u8]> {
    let stored =
        u64::from_le_bytes([rec[120], rec[121], rec[122], rec[123], rec[124], rec[125], rec[126], rec[127]]);
    (stored == check(rec)).then_some(rec)
}

/// The fields of a checked record (of [`RECORD`] bytes, whatever its marker).
fn fields(rec: &[u8], now_ns: u64, timeouts: &Timeouts) -> Record {
    if rec[3] != 0 || rec[97..120].iter().any(|&b| b != 0) || rec[96] & !3 != 0 {
        return Record::Damaged;
    }
    let (Some(state), Some(fwd), Some(rev)) =
        (FlowState::from_u8(rec[1]), get_key(&rec[8..48]), get_key(&rec[48..88]))
    else {
        return Record::Damaged;
    };
    let tcp = sluice_wire::ip_proto::TCP;
    let udp = sluice_wire::ip_proto::UDP;
    let udp_state = matches!(state, FlowState::UdpUnreplied | FlowState::UdpReplied);
    let fits = match fwd.proto {
        p if p == tcp => !udp_state,
        p if p == udp => udp_state,
        _ => false,
    };
    if !fits || rev.proto != fwd.proto {
        return Record::Damaged;
    }
    if state == FlowState::SynProxy {
        return Record::Skipped;
    }
    let delta = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let word = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
    let closing = (rec[96] & 1 != 0).then(|| (word(88), (rec[96] & 2 != 0).then(|| word(92))));
    if closing.is_some() && state != FlowState::TimeWait
        || rec[96] == 0 && rec[88..96].iter().any(|&b| b != 0)
    {
        return Record::Damaged;
    }
    match Flow::carried_over(fwd, rev, state, rec[2], delta, closing, now_ns, timeouts) {
        Some(f) => Record::Flow(f),
        None => Record::Damaged,
    }
}

/// What a journal held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Flows to carry over.
    pub flows: Vec<Flow>,
    /// Records left behind on purpose ([`Record::Skipped`]).
    pub skipped: usize,
    /// Records that failed their check or a field's ([`Record::Damaged`]).
    pub damaged: usize,
}

/// Checks a journal's header (its first [`HEADER`] bytes or more): the number of records
/// that follow it.
pub fn header(bytes: &[u8]) -> Result<usize, JournalError> {
    if bytes.len() < HEADER {
        return Err(JournalError::TooShort { len: bytes.len(), need: HEADER });
    }
    if bytes[..8] != MAGIC {
        return Err(JournalError::NotAJournal);
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let record = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if version != VERSION || record as usize != RECORD {
        return Err(JournalError::Version { found: version, ours: VERSION });
    }
    let capacity = u64::from_le_bytes([
        bytes[16], bytes[17], bytes[18], bytes[19], bytes[20], bytes[21], bytes[22], bytes[23],
    ]);
    usize::try_from(capacity).map_err(|_| JournalError::TooShort { len: bytes.len(), need: usize::MAX })
}

impl Recovered {
    /// Decodes whole records (`bytes.len()` a multiple of [`RECORD`]; a partial one at the end
    /// counts as damaged) into `self`.
    pub fn add(&mut self, bytes: &[u8], now_ns: u64, timeouts: &Timeouts) {
        for rec in bytes.chunks(RECORD) {
            match decode(rec, now_ns, timeouts) {
                Record::Free => {}
                Record::Flow(f) => self.flows.push(f),
                Record::Skipped => self.skipped += 1,
                Record::Damaged => self.damaged += 1,
            }
        }
    }
}

/// Reads a journal another gateway wrote, held whole in memory (tests; the daemon reads a file
/// piece by piece with [`header`] and [`Recovered::add`]). Control path: allocates.
pub fn recover(bytes: &[u8], now_ns: u64, timeouts: &Timeouts) -> Result<Recovered, JournalError> {
    let capacity = header(bytes)?;
    let need = (capacity as u128) * RECORD as u128 + HEADER as u128;
    if need > bytes.len() as u128 {
        return Err(JournalError::TooShort {
            len: bytes.len(),
            need: usize::try_from(need).unwrap_or(usize::MAX),
        });
    }
    let mut out = Recovered::default();
    out.add(&bytes[HEADER..need as usize], now_ns, timeouts);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowTable, SeqTrack};
    use proptest::prelude::*;
    use sluice_model::service::{BackendId, ServiceId};

    fn key(a: u8, sport: u16, b: u8, dport: u16, proto: u8) -> FlowKey {
        FlowKey::new(Addr::from_v4([198, 18, 0, a]), sport, Addr::from_v4([198, 19, 0, b]), dport, proto)
    }

    fn flow(i: u16, state: FlowState) -> Flow {
        let proto = if matches!(state, FlowState::UdpReplied | FlowState::UdpUnreplied) { 17 } else { 6 };
        Flow::new(
            key(1, 1000 + i, 2, 80, proto),
            key(3, 8080, 4, 40_000 + i, proto),
            ServiceId(0),
            BackendId(0),
            Generation(7),
            state,
            5,
            &Timeouts::default(),
        )
    }

    #[test]
    fn a_flow_survives_its_record() {
        let t = Timeouts::default();
        let mut f = flow(1, FlowState::Established);
        f.set_proxied();
        f.delta = 0xdead_beef;
        let Record::Flow(back) = decode(&encode(&f), 100, &t) else { panic!("not decoded") };
        assert_eq!((back.fwd, back.rev, back.state, back.delta), (f.fwd, f.rev, f.state, f.delta));
        assert!(back.is_proxied());
        assert_eq!(back.generation, ADOPTED);
        assert_eq!(back.expires_ns, 100 + t.established_ns);
        assert!(!back.seq[0].known && !back.seq[1].known);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let t = Timeouts::default();
        let rec = encode(&flow(2, FlowState::FinWait));
        for bit in 0..RECORD * 8 {
            let mut r = rec;
            r[bit / 8] ^= 1 << (bit % 8);
            let got = decode(&r, 0, &t);
            assert!(matches!(got, Record::Damaged | Record::Free), "bit {bit} gave {got:?}");
        }
    }

    #[test]
    fn a_time_wait_keeps_what_rfc_6191_compares() {
        let t = Timeouts::default();
        let mut f = flow(4, FlowState::TimeWait);
        f.seq[0].end = 1000;
        f.seq[0].known = true;
        f.seq[0].tsval = 77;
        f.seq[0].has_ts = true;
        let Record::Flow(back) = decode(&encode(&f), 1, &t) else { panic!("not decoded") };
        assert_eq!(
            back.seq[0],
            SeqTrack { end: 1000, tsval: 77, known: true, has_ts: true, ..SeqTrack::default() }
        );
        assert!(back.reusable_by(2000, Some(78)), "a later SYN with a newer timestamp takes the tuple");
        assert!(!back.reusable_by(2000, Some(76)), "PAWS refuses an older timestamp");
        // Not kept for other states: their positions move on unseen.
        f.state = FlowState::Established;
        let Record::Flow(back) = decode(&encode(&f), 1, &t) else { panic!("not decoded") };
        assert!(!back.seq[0].known);
    }

    #[test]
    fn a_cookie_handshake_is_left_behind() {
        let rec = encode(&flow(3, FlowState::SynProxy));
        assert_eq!(decode(&rec, 0, &Timeouts::default()), Record::Skipped);
    }

    #[test]
    fn a_bad_header_is_named() {
        let t = Timeouts::default();
        assert_eq!(recover(&[0; 10], 0, &t).unwrap_err(), JournalError::TooShort { len: 10, need: HEADER });
        assert_eq!(recover(&[0; 4096], 0, &t).unwrap_err(), JournalError::NotAJournal);
        let mut b = vec![0u8; bytes_for(4)];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&9u32.to_le_bytes());
        b[12..16].copy_from_slice(&(RECORD as u32).to_le_bytes());
        assert_eq!(recover(&b, 0, &t).unwrap_err(), JournalError::Version { found: 9, ours: VERSION });
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(recover(&b, 0, &t), Err(JournalError::TooShort { .. })));
        b[16..24].copy_from_slice(&4u64.to_le_bytes());
        assert_eq!(recover(&b, 0, &t).map(|r| r.flows.len()), Ok(0));
    }

    proptest! {
        /// Whatever happens to the table — inserts, state changes, removals, evictions of a
        /// full slab — the journal holds exactly its live flows (less cookie handshakes).
        #[test]
        fn the_journal_holds_the_live_flows(ops in proptest::collection::vec((0u8..4, 0u16..40, 0usize..11), 1..300)) {
            const STATES: [FlowState; 11] = [
                FlowState::SynSent, FlowState::SynRecv, FlowState::SynProxy, FlowState::Established,
                FlowState::FinWait, FlowState::CloseWait, FlowState::LastAck, FlowState::TimeWait,
                FlowState::Close, FlowState::UdpUnreplied, FlowState::UdpReplied,
            ];
            let cap = 16;
            let mut table = FlowTable::new(cap, 9);
            table.set_journal(Box::new(vec![0u8; bytes_for(cap)])).unwrap();
            let t = Timeouts::default();
            for (op, i, s) in ops {
                let f = flow(i, STATES[s]);
                let found = table.lookup(&f.fwd, table.hash(&f.fwd));
                match (op, found) {
                    (0 | 1, None) => { let _ = table.insert(f, 5, &mut |_| {}); }
                    (2, Some((id, _))) => {
                        let fl = table.flow_mut(id);
                        if fl.fwd.proto == 6 {
                            fl.state = STATES[s % 9];
                            fl.on_tcp(crate::flow::Dir::Forward, sluice_wire::tcp::flags::FIN, 6, &t);
                        } else {
                            fl.state = STATES[9 + s % 2];
                        }
                        table.journal_update(id);
                    }
                    (3, Some((id, _))) => { table.remove(id); }
                    _ => {}
                }
            }
            let got = recover(table.journal().unwrap(), 9, &t).unwrap();
            prop_assert_eq!(got.damaged, 0);
            let mut want = Vec::new();
            table.for_each(|_, f| if f.state != FlowState::SynProxy { want.push((f.fwd, f.rev, f.state, f.fin_bits(), f.delta)) });
            let mut have: Vec<_> = got.flows.iter().map(|f| (f.fwd, f.rev, f.state, f.fin_bits(), f.delta)).collect();
            let k = |x: &(FlowKey, FlowKey, FlowState, u8, u32)| (x.0.sport, x.0.proto);
            want.sort_by_key(k);
            have.sort_by_key(k);
            prop_assert_eq!(have, want);
        }
    }
}
