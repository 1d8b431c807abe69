//! The shared-memory file: a control block, then `slots` slots, mapped by one writer (control)
//! and any number of readers (gateway workers, in other processes).
//!
//! ```text
//! 0                 40 KiB                  40 KiB + slot_bytes      …
//! | Control + stats | slot 0: header | payload … | slot 1: header | payload … | …
//! ```
//!
//! The file is created with mode 0600. One writer at a time holds an exclusive lock on it; a
//! writer that restarts on an existing file of the same geometry continues its generations, so
//! the gateway keeps forwarding across a control restart. Readers register in a record of the
//! control block and release it on drop; records of processes that died are reclaimed by the
//! writer (checked through `/proc/<pid>`).
//!
//! Unsafe: yes — the control block and slots are memory shared with other processes. The
//! invariants are those of [`crate::protocol`]: a slot is written only while no reader can read
//! it, and every concurrently accessed word of the control block is an atomic. Not hot path
//! except [`Reader::refresh`] and [`Reader::payload`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::MmapRaw;

use crate::protocol::{
    self, ABI_VERSION, CONTROL_MAGIC, Control, MAX_READERS, MAX_SLOTS, Ordering, PublishError, ReaderState,
    Refresh, SLOT_HEADER_BYTES, SlotHeader, SlotStore,
};

/// Bytes reserved for the control block (with its stats region) at the start of the file.
pub const CONTROL_BYTES: usize = 80 * 1024;

const _: () = assert!(core::mem::size_of::<Control>() <= CONTROL_BYTES);

/// The shape of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots (2 ..= [`MAX_SLOTS`]; 3 lets the writer publish while a reader lags one
    /// generation behind).
    pub slots: u32,
    /// Bytes per slot, header included (a multiple of 4096). The file is sparse: pages never
    /// written cost nothing.
    pub slot_bytes: u64,
}

impl Default for Geometry {
    fn default() -> Geometry {
        Geometry { slots: 3, slot_bytes: 256 << 20 }
    }
}

impl Geometry {
    /// Saturating: a geometry read from a hostile file must not wrap to a short length.
    fn file_len(&self) -> u64 {
        u64::from(self.slots).saturating_mul(self.slot_bytes).saturating_add(CONTROL_BYTES as u64)
    }

    fn check(&self) -> Result<(), OpenError> {
        if !(2..=MAX_SLOTS as u32).contains(&self.slots)
            || self.slot_bytes < 8192
            || !self.slot_bytes.is_multiple_of(4096)
        {
            return Err(OpenError::BadGeometry(*self));
        }
        Ok(())
    }
}

/// Why a table file could not be opened or created.
#[derive(Debug)]
pub enum OpenError {
    /// The file could not be opened, created, sized or mapped.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is shorter than its own control block says.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The file does not start with the table magic (not a Sluice table).
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by another layout version.
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// Its ABI version.
        found: u32,
    },
    /// The geometry asked for (or found) is not usable, or differs from the existing file's.
    BadGeometry(Geometry),
    /// Another writer holds the file.
    WriterBusy {
        /// The file.
        path: PathBuf,
    },
    /// All reader records are taken.
    NoReaderRecord {
        /// The file.
        path: PathBuf,
    },
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            OpenError::Truncated { path, len } => {
                write!(f, "{}: file of {len} bytes is shorter than its table layout", path.display())
            }
            OpenError::BadMagic { path } => {
                write!(f, "{}: not a Sluice table file (no SLUICETB magic)", path.display())
            }
            OpenError::AbiMismatch { path, found } => write!(
                f,
                "{}: table ABI {found}, this build reads ABI {ABI_VERSION}; run a control and a gateway of the same release",
                path.display()
            ),
            OpenError::BadGeometry(g) => write!(
                f,
                "table geometry {} slots × {} bytes is not usable (2..={MAX_SLOTS} slots, ≥ 8192 bytes, multiple of 4096) or differs from the existing file",
                g.slots, g.slot_bytes
            ),
            OpenError::WriterBusy { path } => {
                write!(f, "{}: another control process is publishing to this table", path.display())
            }
            OpenError::NoReaderRecord { path } => {
                write!(f, "{}: all {MAX_READERS} reader records are in use", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { path: path.to_owned(), source }
}

/// A mapped table file. Its memory is shared with other processes.
#[derive(Debug)]
struct Mapped {
    map: MmapRaw,
    geometry: Geometry,
}

impl Mapped {
    fn control(&self) -> &Control {
        // The mapping is at least CONTROL_BYTES long (checked when mapped) and page-aligned, and
        // every field of Control that another process may change concurrently is an atomic.
        // SAFETY: in bounds, aligned, alive as long as `self`, shared words are atomics.
        unsafe { &*self.map.as_ptr().cast::<Control>() }
    }

    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        debug_assert!(slot < self.geometry.slots as usize);
        // In bounds: the mapping spans CONTROL_BYTES + slots × slot_bytes (checked when mapped).
        self.map.as_mut_ptr().wrapping_add(CONTROL_BYTES + slot * self.geometry.slot_bytes as usize)
    }
}

impl SlotStore for Mapped {
    fn slots(&self) -> usize {
        self.geometry.slots as usize
    }

    fn capacity(&self) -> usize {
        self.geometry.slot_bytes as usize - SLOT_HEADER_BYTES
    }

    fn write(&self, slot: usize, header: &SlotHeader, payload: &[u8]) {
        let base = self.slot_ptr(slot);
        // `base` starts a slot of slot_bytes ≥ header + payload bytes inside the mapping (publish
        // checked the payload against the capacity), and the source is the caller's buffer.
        // SAFETY: in bounds, non-overlapping, and no reader reads this slot now (the protocol).
        unsafe {
            core::ptr::copy_nonoverlapping(
                (header as *const SlotHeader).cast::<u8>(),
                base,
                SLOT_HEADER_BYTES,
            );
            core::ptr::copy_nonoverlapping(payload.as_ptr(), base.add(SLOT_HEADER_BYTES), payload.len());
        }
    }

    fn read<R>(&self, slot: usize, f: impl FnOnce(&SlotHeader, &[u8]) -> R) -> R {
        let base = self.slot_ptr(slot);
        // The header is copied out by value (unaligned read); the payload is borrowed for `f` only.
        // SAFETY: the slot is in the mapping and not written while we may read it (the protocol).
        let (header, payload) = unsafe {
            (
                core::ptr::read_unaligned(base.cast::<SlotHeader>()),
                core::slice::from_raw_parts(base.add(SLOT_HEADER_BYTES), self.capacity()),
            )
        };
        f(&header, payload)
    }
}

fn map(path: &Path, file: &File, expect: Option<Geometry>) -> Result<Mapped, OpenError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    if len < CONTROL_BYTES as u64 {
        return Err(OpenError::Truncated { path: path.to_owned(), len });
    }
    let map = MmapRaw::map_raw(file).map_err(io_err(path))?;
    // SAFETY: the mapping holds at least CONTROL_BYTES (checked above) and is page-aligned.
    let control = unsafe { &*map.as_ptr().cast::<Control>() };
    if control.magic != CONTROL_MAGIC {
        return Err(OpenError::BadMagic { path: path.to_owned() });
    }
    if control.abi != ABI_VERSION {
        return Err(OpenError::AbiMismatch { path: path.to_owned(), found: control.abi });
    }
    let geometry = Geometry { slots: control.slots, slot_bytes: control.slot_bytes };
    geometry.check()?;
    if expect.is_some_and(|g| g != geometry) {
        return Err(OpenError::BadGeometry(expect.unwrap_or(geometry)));
    }
    if len < geometry.file_len() {
        return Err(OpenError::Truncated { path: path.to_owned(), len });
    }
    Ok(Mapped { map, geometry })
}

fn pid_alive(owner: u64) -> bool {
    owner == 0 || Path::new(&format!("/proc/{}", owner - 1)).exists()
}

/// The writer of a table file (the control process).
#[derive(Debug)]
pub struct Publisher {
    // Held for the exclusive lock; closing it releases the lock.
    _file: File,
    mapped: Mapped,
    generation: u64,
    path: PathBuf,
}

impl Publisher {
    /// Opens `path` for writing, creating it (mode 0600) if absent. An existing file must have
    /// the same geometry; its generations continue.
    pub fn create(path: &Path, geometry: Geometry) -> Result<Publisher, OpenError> {
        geometry.check()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::WriterBusy { path: path.to_owned() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
        if file.metadata().map_err(io_err(path))?.len() == 0 {
            file.set_len(geometry.file_len()).map_err(io_err(path))?;
            let map = MmapRaw::map_raw(&file).map_err(io_err(path))?;
            // The file was just sized to hold the control block; we hold the writer lock, and no
            // reader uses a file before its magic is set, which is written last.
            // SAFETY: in bounds and aligned; nobody else reads these plain fields meanwhile.
            unsafe {
                let c = map.as_mut_ptr().cast::<Control>();
                (*c).abi = ABI_VERSION;
                (*c).slots = geometry.slots;
                (*c).slot_bytes = geometry.slot_bytes;
                (*c).magic = CONTROL_MAGIC;
            }
            map.flush().map_err(io_err(path))?;
        }
        let mapped = map(path, &file, Some(geometry))?;
        let generation =
            protocol::unpack(mapped.control().active.load(Ordering::Acquire)).map_or(0, |(g, _)| g);
        let mut p = Publisher { _file: file, mapped, generation, path: path.to_owned() };
        p.reclaim_dead_readers();
        Ok(p)
    }

    /// Publishes `payload` as the next generation. On [`PublishError::Busy`] the caller retries
    /// later (a reader has not refreshed since the last publication but one).
    pub fn publish(&mut self, payload: &[u8]) -> Result<u64, PublishError> {
        let next = self.generation + 1;
        let r = protocol::publish(self.mapped.control(), &self.mapped, next, payload);
        let r = match r {
            Err(PublishError::Busy) if self.reclaim_dead_readers() > 0 => {
                protocol::publish(self.mapped.control(), &self.mapped, next, payload)
            }
            r => r,
        };
        r.map(|_| {
            self.generation = next;
            next
        })
    }

    /// The last generation published.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registered readers: (process id, generation last adopted).
    pub fn readers(&self) -> Vec<(u64, u64)> {
        self.mapped
            .control()
            .readers
            .iter()
            .filter_map(|r| {
                let owner = r.owner.load(Ordering::Acquire);
                (owner != 0).then(|| (owner - 1, r.seen.load(Ordering::Acquire)))
            })
            .collect()
    }

    /// Every registered reader's counters from the stats region: (process id, counters).
    pub fn reader_stats(&self) -> Vec<(u64, Vec<u64>)> {
        let c = self.mapped.control();
        c.readers
            .iter()
            .zip(&c.stats)
            .filter_map(|(r, st)| {
                let owner = r.owner.load(Ordering::Acquire);
                (owner != 0).then(|| (owner - 1, st.iter().map(|v| v.load(Ordering::Relaxed)).collect()))
            })
            .collect()
    }

    /// Frees the records of readers whose process is gone; returns how many.
    pub fn reclaim_dead_readers(&mut self) -> usize {
        let mut n = 0;
        for r in &self.mapped.control().readers {
            let owner = r.owner.load(Ordering::Acquire);
            if !pid_alive(owner)
                && r.owner.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                n += 1;
            }
        }
        n
    }
}

/// A reader of a table file (one per gateway worker).
#[derive(Debug)]
pub struct Reader {
    mapped: Mapped,
    state: ReaderState,
    path: PathBuf,
}

impl Reader {
    /// Opens `path`, validates its control block and registers a reader record. Adopts the
    /// current generation, if there is a valid one.
    pub fn open(path: &Path) -> Result<Reader, OpenError> {
        let mut r = Reader::register(path)?;
        r.refresh();
        Ok(r)
    }

    /// Opens `path` and registers a record only to publish counters: this reader never adopts
    /// a generation, so it holds no slot back from the writer (a gateway worker that receives
    /// its tables already decoded, from a thread that reads them with [`Reader::open`]).
    /// [`Reader::refresh`] on it is a no-op.
    pub fn open_stats_only(path: &Path) -> Result<Reader, OpenError> {
        let mut r = Reader::register(path)?;
        r.state.stats_only = true;
        // No generation is ever read through this record: every slot but the current one may
        // be reused.
        r.mapped.control().readers[r.state.record].seen.store(u64::MAX, Ordering::SeqCst);
        Ok(r)
    }

    fn register(path: &Path) -> Result<Reader, OpenError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_err(path))?;
        let mapped = map(path, &file, None)?;
        let owner = u64::from(std::process::id()) + 1;
        let c = mapped.control();
        let record = c
            .readers
            .iter()
            .position(|r| r.owner.compare_exchange(0, owner, Ordering::SeqCst, Ordering::SeqCst).is_ok())
            .ok_or_else(|| OpenError::NoReaderRecord { path: path.to_owned() })?;
        // Between the claim and this store the record still shows its previous owner's last
        // generation g; the writer then reuses only slots older than g, and we will read the
        // current one, which is at least g. From here on, 0 holds every slot until we adopt.
        c.readers[record].seen.store(0, Ordering::SeqCst);
        for s in &c.stats[record] {
            s.store(0, Ordering::Relaxed);
        }
        Ok(Reader { mapped, state: ReaderState::new(record), path: path.to_owned() })
    }

    /// Once per batch (and at every idle wake-up): adopts a newer generation if there is a
    /// valid one. Costs one atomic load when nothing changed.
    #[inline]
    pub fn refresh(&mut self) -> Refresh {
        self.state.refresh(self.mapped.control(), &self.mapped)
    }

    /// The payload of the generation in use, if one was adopted. Borrowing it prevents a refresh,
    /// so it cannot change underfoot.
    #[inline]
    pub fn payload(&self) -> Option<&[u8]> {
        let (_, slot, len) = self.state.current?;
        let base = self.mapped.slot_ptr(slot);
        // `len` was validated against the slot's capacity; while our record says we use this
        // generation the writer leaves the slot alone, and borrowing `self` keeps `refresh` away.
        // SAFETY: in bounds, and not written for as long as the returned borrow lives.
        Some(unsafe { core::slice::from_raw_parts(base.add(SLOT_HEADER_BYTES), len) })
    }

    /// The generation in use.
    pub fn generation(&self) -> Option<u64> {
        self.state.current.map(|(g, _, _)| g)
    }

    /// How many generations this reader refused.
    pub fn refused(&self) -> u64 {
        self.state.refused
    }

    /// Publishes this reader's counters to the stats region (control reads them for metrics).
    /// Values beyond [`crate::protocol::STATS_PER_READER`] are ignored.
    pub fn publish_stats(&self, values: &[u64]) {
        for (cell, v) in self.mapped.control().stats[self.state.record].iter().zip(values) {
            cell.store(*v, Ordering::Relaxed);
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.mapped.control().readers[self.state.record].owner.store(0, Ordering::Release);
    }
}
