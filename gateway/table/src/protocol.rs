//! The publication protocol, independent of where its memory lives (a shared-memory file in
//! production, ordinary memory under loom).
//!
//! One writer, many readers, `N` slots.
//!
//! - The writer fills a slot no reader can be using, then makes it current with **one Release
//!   store** of `active` (generation and slot index packed in one word). One generation is one
//!   slot: everything in it changes together.
//! - A reader, once per batch, **loads `active` (Acquire)**. If the generation is new it
//!   validates the slot (header, bounds, checksum) and adopts it — or refuses it and keeps the
//!   generation it had. After adopting it **stores the generation into its record (Release)**:
//!   "I have finished with everything older". That is all a reader ever does: no loop, no wait.
//! - **Reuse rule.** A slot holding generation `g` may be rewritten only when every registered
//!   reader's record is *greater* than `g`. A reader still using `g` has recorded `g`; a reader
//!   that loaded `active` while it named `g` but has not recorded it yet still shows an older
//!   generation; either way `g`'s slot stays untouched. The writer's Acquire loads of the records
//!   pair with the readers' Release stores, so a reader's last reads of a slot happen-before the
//!   writer's first write to it; the readers' Acquire load of `active` pairs with the writer's
//!   Release store, so the payload is complete before anyone reads it.
//! - A reader that stops refreshing holds back slot reuse (never the readers): with three slots
//!   the writer can publish while one reader lags a generation behind, and waits (returns
//!   [`PublishError::Busy`]) beyond that. Readers must refresh at least at every wake-up.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The most slots a table file may have.
#[cfg(not(loom))]
pub const MAX_SLOTS: usize = 8;
/// The most slots a table file may have.
#[cfg(loom)]
pub const MAX_SLOTS: usize = 3;

/// The most readers (gateway workers) that can be registered at once.
#[cfg(not(loom))]
pub const MAX_READERS: usize = 64;
/// The most readers (gateway workers) that can be registered at once.
#[cfg(loom)]
pub const MAX_READERS: usize = 2;

/// Values per reader in the stats region (a gateway worker's counters, drops and gauges; see
/// `sluice_model::counters`), with room for more.
#[cfg(not(loom))]
pub const STATS_PER_READER: usize = 192;
/// Counters per reader in the stats region.
#[cfg(loom)]
pub const STATS_PER_READER: usize = 1;

/// Rows per reader in the route-stats region (one per L7 route: `sluice_model::route_stats`).
pub const ROUTE_ROWS: usize = 2048;

/// Values per row of the route-stats region.
pub const ROUTE_ROW_VALUES: usize = 40;

/// Magic number at the start of the control block: `SLUICETB`.
pub const CONTROL_MAGIC: u64 = u64::from_le_bytes(*b"SLUICETB");
/// Magic number at the start of every slot: `SLUICESL`.
pub const SLOT_MAGIC: u64 = u64::from_le_bytes(*b"SLUICESL");
/// The layout version. Any change to [`Control`], [`SlotHeader`], the route-stats region or the
/// payload encoding bumps it. 3: the route-stats region; 4: 192 stats per reader (the flow
/// sync's counters).
pub const ABI_VERSION: u32 = 4;

/// One registered reader.
#[repr(C)]
pub struct ReaderRecord {
    /// 0 when free; otherwise `pid + 1` of the owning process (so liveness can be checked).
    pub owner: AtomicU64,
    /// The generation the reader adopted last: it uses nothing older.
    pub seen: AtomicU64,
}

/// The control block at the start of the file.
///
/// Every field is an atomic, even those written once at creation: the other process can write
/// any byte of the file at any time, and a plain field read while it does would be a data race.
/// The geometry fields (`slots`, `slot_bytes`) are read once, when the file is mapped, validated,
/// and kept by the mapping's owner; nothing here indexes with their live values (a writer that
/// changed them later would otherwise send both sides out of bounds).
#[repr(C)]
pub struct Control {
    /// [`CONTROL_MAGIC`].
    pub magic: AtomicU64,
    /// [`ABI_VERSION`].
    pub abi: AtomicU32,
    /// Number of slots in use (≤ [`MAX_SLOTS`]). Read once, at map time.
    pub slots: AtomicU32,
    /// Bytes per slot, header included. Read once, at map time.
    pub slot_bytes: AtomicU64,
    /// `generation << 8 | slot` of the current table; 0 before the first publication.
    pub active: AtomicU64,
    /// The generation each slot holds (0: never written). Written by the writer only.
    pub slot_generation: [AtomicU64; MAX_SLOTS],
    /// Registered readers.
    pub readers: [ReaderRecord; MAX_READERS],
    /// The stats region: each reader's counters, written by that reader only (Relaxed: they are
    /// monotonic counters read for metrics, ordering nothing), read by control.
    pub stats: [[AtomicU64; STATS_PER_READER]; MAX_READERS],
}

/// The header at the start of each slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotHeader {
    /// [`SLOT_MAGIC`].
    pub magic: u64,
    /// [`ABI_VERSION`].
    pub abi: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// The generation this slot holds.
    pub generation: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// [`checksum`] of the payload.
    pub checksum: u64,
    /// Reserved, zero.
    pub reserved: [u64; 3],
}

/// Bytes taken by [`SlotHeader`] at the start of a slot.
pub const SLOT_HEADER_BYTES: usize = core::mem::size_of::<SlotHeader>();

const _: () = assert!(SLOT_HEADER_BYTES == 64);

/// Packs a generation and slot into the `active` word.
#[inline(always)]
pub(crate) fn pack(generation: u64, slot: usize) -> u64 {
    (generation << 8) | slot as u64
}

/// Unpacks the `active` word; `None` before the first publication.
#[inline(always)]
pub(crate) fn unpack(active: u64) -> Option<(u64, usize)> {
    (active != 0).then_some((active >> 8, (active & 0xff) as usize))
}

/// A 64-bit checksum of the payload: FNV-1a-style over little-endian 64-bit words in four
/// independent lanes (so the multiplications overlap; several GB/s), folded together with the
/// length. It catches any corruption a torn or foreign write leaves; it is not a MAC.
pub fn checksum(payload: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let word = |w: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        u64::from_le_bytes(b)
    };
    let mut lanes: [u64; 4] =
        [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4, 0x9ce4_cbf2_2325_8422, 0x2325_8422_9ce4_cbf2];
    let mut blocks = payload.chunks_exact(32);
    for b in &mut blocks {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane = (*lane ^ word(&b[8 * l..8 * l + 8])).wrapping_mul(PRIME);
        }
    }
    let mut h = (payload.len() as u64).wrapping_mul(PRIME);
    for lane in lanes {
        h = (h ^ lane ^ (lane >> 29)).wrapping_mul(PRIME);
    }
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h ^ (h >> 29)
}

/// Where slot contents live. The protocol decides who may touch which slot when; an
/// implementation only copies bytes.
pub(crate) trait SlotStore {
    /// How many slots there are: the geometry taken when the memory was mapped, never the
    /// control block's live `slots` field.
    fn slots(&self) -> usize;
    /// Bytes available for a payload in one slot.
    fn capacity(&self) -> usize;
    /// Writes a slot's header and payload. The protocol guarantees no reader reads this slot
    /// meanwhile.
    fn write(&self, slot: usize, header: &SlotHeader, payload: &[u8]);
    /// Reads a slot's header and gives it and the slot's whole payload area to `f`.
    fn read<R>(&self, slot: usize, f: impl FnOnce(&SlotHeader, &[u8]) -> R) -> R;
}

/// Why a publication did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// Every slot but the current one may still be in use by a reader that has not refreshed.
    Busy,
    /// The payload is larger than a slot.
    TooLarge {
        /// The payload's size.
        len: usize,
        /// What a slot holds.
        capacity: usize,
    },
    /// The file is shorter than its mapping: someone truncated it under the writer, whose
    /// publications would go nowhere (see `shm`'s module doc).
    FileShrunk {
        /// Its length now.
        len: u64,
    },
}

impl core::fmt::Display for PublishError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PublishError::Busy => {
                write!(f, "every free slot may still be read by a reader that has not refreshed; retry")
            }
            PublishError::TooLarge { len, capacity } => {
                write!(
                    f,
                    "table of {len} bytes does not fit a slot of {capacity} bytes (recreate the file with larger slots)"
                )
            }
            PublishError::FileShrunk { len } => write!(
                f,
                "the table file was truncated to {len} bytes under this writer; remove it and restart control (who else writes it?)"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// The writer's side: publishes `payload` as `generation` (greater than every earlier one).
/// Returns the slot used.
pub(crate) fn publish<S: SlotStore>(
    c: &Control,
    store: &S,
    generation: u64,
    payload: &[u8],
) -> Result<usize, PublishError> {
    if payload.len() > store.capacity() {
        return Err(PublishError::TooLarge { len: payload.len(), capacity: store.capacity() });
    }
    let slot = free_slot(c, store.slots()).ok_or(PublishError::Busy)?;
    let header = SlotHeader {
        magic: SLOT_MAGIC,
        abi: ABI_VERSION,
        flags: 0,
        generation,
        payload_len: payload.len() as u64,
        checksum: checksum(payload),
        reserved: [0; 3],
    };
    store.write(slot, &header, payload);
    c.slot_generation[slot].store(generation, Ordering::Relaxed);
    // Pairs with the readers' Acquire load of `active`: the slot is complete before it is named.
    c.active.store(pack(generation, slot), Ordering::Release);
    Ok(slot)
}

/// A slot among the first `slots` (the mapped geometry) that is not current and that no
/// registered reader can still be reading.
pub(crate) fn free_slot(c: &Control, slots: usize) -> Option<usize> {
    let current = unpack(c.active.load(Ordering::Relaxed)).map(|(_, s)| s);
    let mut oldest_in_use = u64::MAX;
    for r in &c.readers {
        // Acquire pairs with each reader's Release store of `seen`: what it read before
        // finishing with a generation happens-before we overwrite that generation's slot.
        if r.owner.load(Ordering::Acquire) != 0 {
            oldest_in_use = oldest_in_use.min(r.seen.load(Ordering::Acquire));
        }
    }
    // A slot never written (generation 0) was never current, so nobody can be reading it.
    (0..slots.min(MAX_SLOTS))
        .filter(|&s| Some(s) != current)
        .filter(|&s| {
            let g = c.slot_generation[s].load(Ordering::Relaxed);
            g == 0 || g < oldest_in_use
        })
        .min_by_key(|&s| c.slot_generation[s].load(Ordering::Relaxed))
}

/// Why a reader refused a generation (and kept the one it had).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The slot index is out of range.
    BadSlot(usize),
    /// The slot does not start with [`SLOT_MAGIC`].
    BadMagic,
    /// The slot was written by another layout version.
    AbiMismatch {
        /// The version found.
        found: u32,
    },
    /// The slot holds another generation than `active` names.
    GenerationMismatch {
        /// The generation found in the slot.
        found: u64,
    },
    /// The payload length exceeds the slot.
    BadLength(u64),
    /// The payload does not match its checksum.
    Checksum,
    /// The generation is not newer than the one adopted: a writer went back in time (a file
    /// rewritten in place, or a second writer). A new file is a new reader (see `shm`).
    Stale {
        /// The generation in use.
        adopted: u64,
    },
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::BadSlot(s) => write!(f, "slot {s} does not exist"),
            Refusal::BadMagic => f.write_str("slot header has no SLUICESL magic"),
            Refusal::AbiMismatch { found } => {
                write!(f, "slot written with table ABI {found}, this gateway reads ABI {ABI_VERSION}")
            }
            Refusal::GenerationMismatch { found } => write!(f, "slot holds generation {found}"),
            Refusal::BadLength(n) => write!(f, "payload length {n} exceeds the slot"),
            Refusal::Checksum => f.write_str("payload does not match its checksum"),
            Refusal::Stale { adopted } => {
                write!(f, "not newer than generation {adopted}, in use (generations only go forward)")
            }
        }
    }
}

/// What a reader's refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing new (the common case: one atomic load).
    Unchanged,
    /// A new generation was validated and adopted.
    Adopted(u64),
    /// A new generation was refused; the previous one (if any) stays in use.
    Refused(u64, Refusal),
}

/// One reader's state.
#[derive(Debug, Clone)]
pub(crate) struct ReaderState {
    pub(crate) record: usize,
    pub(crate) current: Option<(u64, usize, usize)>,
    pub(crate) last_seen_active: u64,
    pub(crate) refused: u64,
    /// Registered only to publish counters: never adopts, holds no slot.
    pub(crate) stats_only: bool,
}

impl ReaderState {
    pub(crate) fn new(record: usize) -> ReaderState {
        ReaderState { record, current: None, last_seen_active: 0, refused: 0, stats_only: false }
    }

    /// Once per batch: adopts a new generation if there is a valid one.
    #[inline]
    pub(crate) fn refresh<S: SlotStore>(&mut self, c: &Control, store: &S) -> Refresh {
        if self.stats_only {
            return Refresh::Unchanged;
        }
        // Pairs with the writer's Release store in `publish`.
        let active = c.active.load(Ordering::Acquire);
        if active == self.last_seen_active {
            return Refresh::Unchanged;
        }
        self.last_seen_active = active;
        let Some((generation, slot)) = unpack(active) else { return Refresh::Unchanged };
        let checked = match self.current {
            Some((adopted, _, _)) if generation <= adopted => Err(Refusal::Stale { adopted }),
            _ => self.validate(store, generation, slot),
        };
        match checked {
            Ok(len) => {
                self.current = Some((generation, slot, len));
                // Pairs with the writer's Acquire loads in `free_slot`: we are done with every
                // older generation.
                c.readers[self.record].seen.store(generation, Ordering::Release);
                Refresh::Adopted(generation)
            }
            Err(r) => {
                self.refused += 1;
                Refresh::Refused(generation, r)
            }
        }
    }

    fn validate<S: SlotStore>(&self, store: &S, generation: u64, slot: usize) -> Result<usize, Refusal> {
        // The slot index comes from `active`, which the writer (or anyone who can write the
        // file) controls: bounded by the geometry taken at map time.
        if slot >= store.slots().min(MAX_SLOTS) {
            return Err(Refusal::BadSlot(slot));
        }
        store.read(slot, |h, payload| {
            if h.magic != SLOT_MAGIC {
                return Err(Refusal::BadMagic);
            }
            if h.abi != ABI_VERSION {
                return Err(Refusal::AbiMismatch { found: h.abi });
            }
            if h.generation != generation {
                return Err(Refusal::GenerationMismatch { found: h.generation });
            }
            if h.payload_len > store.capacity() as u64 {
                return Err(Refusal::BadLength(h.payload_len));
            }
            let len = h.payload_len as usize;
            if checksum(&payload[..len]) != h.checksum {
                return Err(Refusal::Checksum);
            }
            Ok(len)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips() {
        assert_eq!(unpack(0), None);
        assert_eq!(unpack(pack(7, 2)), Some((7, 2)));
        assert_eq!(unpack(pack(u64::MAX >> 8, 255)), Some((u64::MAX >> 8, 255)));
    }

    #[test]
    fn checksum_sees_every_byte() {
        let base = vec![0x5au8; 1027];
        let c = checksum(&base);
        for i in [0, 7, 8, 512, 1023, 1026] {
            let mut v = base.clone();
            v[i] ^= 1;
            assert_ne!(checksum(&v), c, "flip at {i}");
        }
        assert_ne!(checksum(&base[..1026]), c, "length counts");
    }
}
