//! The shared-memory file: a control block, then `slots` slots, mapped by one writer (control)
//! and any number of readers (gateway workers, in other processes).
//!
//! ```text
//! 0                 80 KiB                  80 KiB + slot_bytes      …        after the last slot
//! | Control + stats | slot 0: header | payload … | slot 1: header | payload … | … | route stats |
//! ```
//!
//! The route-stats region holds, for each reader record, [`ROUTE_ROWS`] rows of
//! [`ROUTE_ROW_VALUES`] counters (the L7 stage's counts per route), written by that reader only
//! and read by control, like the control block's stats region. It is 640 KiB per record, sparse
//! until written.
//!
//! The file is created with mode 0600. One writer at a time holds an exclusive lock on it; a
//! writer that restarts on an existing file of the same geometry continues its generations, so
//! the gateway keeps forwarding across a control restart. Readers register in a record of the
//! control block and release it on drop; records of processes that died are reclaimed by the
//! writer (checked through `/proc/<pid>`).
//!
//! # What is trusted, and when
//!
//! The file is memory another process writes, so both sides trust only what they checked:
//!
//! - **Opening.** Both sides open the path with `O_NOFOLLOW` (a symbolic link is refused: whoever
//!   can plant one could point us at any file) and check the opened file, with `fstat` on the
//!   descriptor rather than a second look at the path: a regular file, owned by this process's
//!   effective user, neither readable nor writable by group or others — the table holds TLS
//!   private keys (the L7 half's certificates), and a reader cannot tell whether a table it
//!   would map has any. Each refusal says which and how to fix it.
//! - **Geometry.** The slot count and size are read once, before mapping, bounded
//!   (`2..=MAX_SLOTS` slots of at most [`MAX_SLOT_BYTES`]) and checked against the file's length;
//!   exactly that much is mapped, and every slot index and length used afterwards is bounded by
//!   this copy — never by the control block's live fields, which the other side can still change.
//!   The slot index in `active`, a slot header's payload length and a reader's record index are
//!   all checked against it.
//! - **Truncation.** A shared mapping whose file shrinks raises SIGBUS on the next access past
//!   the new end. `sigbus` contains it: a fault inside a table mapping turns that mapping
//!   into private zeros (read as "nothing published") instead of killing the process, and marks
//!   it, so there is no window between a length check and an access in which a truncation kills
//!   us. [`Reader::check_file`] reports it (and a shrink seen by `fstat` before any fault), and
//!   the reader stops reading from that file; [`Publisher::publish`] refuses to publish into it.
//!   The gateway's main thread calls [`Reader::check_file`] every few hundred milliseconds, keeps
//!   the last table it decoded, and opens the path again (with every check above) until a valid
//!   file is there. Limit: containment needs a free registration (`sigbus` has one per
//!   possible reader record and a few more); a mapping registered beyond that is protected by the
//!   length checks only, which [`Reader::contained`] says. What remains: bytes being checksummed
//!   or decoded when the fault lands turn to zeros half-way, which the checksum or the image
//!   decoder refuses (and the gateway drops a table whose file shrank while it was decoded); and
//!   the handler calls `mmap`, which POSIX does not list as async-signal-safe (see `sigbus`).
//! - **Replacement.** [`Reader::check_file`] also looks the path up (`lstat`): another inode there
//!   means the file was replaced. The reader's own mapping stays valid (the old inode lives as
//!   long as it is mapped); opening the new file is a new [`Reader`].
//! - **Generations** only go forward within one file: a reader refuses a generation not newer
//!   than the one it adopted ([`crate::Refusal::Stale`]). A new file (a new reader) starts from
//!   nothing, so after a replacement the first generation found is adopted even if lower — a
//!   control started on a new file counts from 1. The gateway logs the replacement when it adopts
//!   it, so the restart of generations is explained.
//!
//! Unsafe: yes — the control block and slots are memory shared with other processes. The
//! invariants are those of [`crate::protocol`]: a slot is written only while no reader can read
//! it, and every word of the control block is an atomic (so whatever the other process writes
//! there, reading it is not a data race). Not hot path except [`Reader::refresh`] and
//! [`Reader::payload`].

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use crate::protocol::{
    self, ABI_VERSION, AtomicU64, CONTROL_MAGIC, Control, MAX_READERS, MAX_SLOTS, Ordering, PublishError,
    ROUTE_ROW_VALUES, ROUTE_ROWS, ReaderState, Refresh, SLOT_HEADER_BYTES, SlotHeader, SlotStore,
};
use crate::sigbus::Registration;

/// Bytes reserved for the control block (with its stats region) at the start of the file.
pub const CONTROL_BYTES: usize = 112 * 1024;

/// The largest slot a table file may have (1 GiB): bounds the mapping and every offset into it.
pub const MAX_SLOT_BYTES: u64 = 1 << 30;

const _: () = assert!(core::mem::size_of::<Control>() <= CONTROL_BYTES);

/// Bytes of one reader record's rows in the route-stats region (a whole number of pages).
const ROUTE_RECORD_BYTES: usize = ROUTE_ROWS * ROUTE_ROW_VALUES * 8;

/// Bytes of the route-stats region, after the last slot.
const ROUTE_STATS_BYTES: usize = MAX_READERS * ROUTE_RECORD_BYTES;

const _: () = assert!(ROUTE_RECORD_BYTES.is_multiple_of(4096));

/// The shape of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots (2 ..= [`MAX_SLOTS`]; 3 lets the writer publish while a reader lags one
    /// generation behind).
    pub slots: u32,
    /// Bytes per slot, header included (a multiple of 4096, at most [`MAX_SLOT_BYTES`]). The
    /// file is sparse: pages never written cost nothing.
    pub slot_bytes: u64,
}

impl Default for Geometry {
    fn default() -> Geometry {
        Geometry { slots: 3, slot_bytes: 256 << 20 }
    }
}

impl Geometry {
    /// The length of a file of this geometry: control block, slots, route-stats region.
    /// Saturating: a geometry read from a hostile file must not wrap to a short length.
    pub fn file_len(&self) -> u64 {
        self.route_stats_at().saturating_add(ROUTE_STATS_BYTES as u64)
    }

    /// Where the route-stats region starts: after the last slot (page-aligned, as every slot
    /// size is a multiple of 4096).
    fn route_stats_at(&self) -> u64 {
        u64::from(self.slots).saturating_mul(self.slot_bytes).saturating_add(CONTROL_BYTES as u64)
    }

    fn check(&self) -> Result<(), OpenError> {
        if !(2..=MAX_SLOTS as u32).contains(&self.slots)
            || !(8192..=MAX_SLOT_BYTES).contains(&self.slot_bytes)
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
    /// The file is empty, or its magic is not written yet: its writer is creating it (or
    /// stopped while creating it). A reader opens it again shortly; the next writer finishes it.
    Unfinished {
        /// The file.
        path: PathBuf,
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
    /// The path is a symbolic link (refused: opened with `O_NOFOLLOW`).
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a regular file.
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The file belongs to another user than this process's effective user.
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// This process's effective user.
        euid: u32,
    },
    /// Group or others may read or write the file (it holds private keys).
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            OpenError::Truncated { path, len } => {
                write!(
                    f,
                    "{}: file of {len} bytes is shorter than its table layout (truncated?); remove it, and control creates it anew",
                    path.display()
                )
            }
            OpenError::Unfinished { path } => write!(
                f,
                "{}: holds no table yet (empty, or its magic not written): control is creating it, or \
                 stopped while creating it (the next control finishes it)",
                path.display()
            ),
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
            OpenError::Symlink { path } => write!(
                f,
                "{p}: is a symbolic link, and the table file is never opened through one (whoever \
                 can plant a link could point control or the gateway at any file); remove the \
                 link and point --table at the real file",
                p = path.display()
            ),
            OpenError::NotRegular { path } => write!(
                f,
                "{}: not a regular file; point --table at a file control creates (default {})",
                path.display(),
                crate::DEFAULT_PATH
            ),
            OpenError::Owner { path, uid, euid } => write!(
                f,
                "{p}: owned by uid {uid}, but this process runs as uid {euid}, and a table file \
                 another user owns could be changed under us; run control and the gateway as the \
                 same user, or remove the file (control creates it) or `chown {euid} {p}`",
                p = path.display()
            ),
            OpenError::Mode { path, mode } => write!(
                f,
                "{p}: mode {mode:04o} lets group or others read or write the table, which holds TLS \
                 private keys; `chmod go-rwx {p}` (control creates it 0600)",
                p = path.display()
            ),
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { path: path.to_owned(), source }
}

/// Which file: device and inode, from `fstat` on the descriptor when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// The device.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// What [`Reader::check_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The file is as long as its geometry, and still the one at the path.
    Intact,
    /// The file is shorter than its mapping: someone truncated it. Nothing more is read from it
    /// (the mapping may already be private zeros, see `sigbus`).
    Shrunk {
        /// Its length now (0 when only the contained fault told).
        len: u64,
        /// The length its geometry needs.
        want: u64,
    },
    /// The path names another file now: the one mapped is no longer the one control writes.
    Replaced,
    /// The path names nothing, or cannot be looked up.
    Missing,
}

impl core::fmt::Display for FileState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileState::Intact => f.write_str("intact"),
            FileState::Shrunk { len, want } => {
                write!(f, "truncated to {len} bytes under us (its layout needs {want})")
            }
            FileState::Replaced => f.write_str("replaced by another file"),
            FileState::Missing => f.write_str("removed (or cannot be looked up)"),
        }
    }
}

/// This process's effective user.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `path` read-write without following a symbolic link (creating it 0600 when `create`),
/// then checks what was opened, through the descriptor: a regular file, ours, not writable by
/// group or others.
pub(crate) fn open_checked(path: &Path, create: bool) -> Result<(File, Metadata), OpenError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        options.create(true).truncate(false).mode(0o600);
    }
    let file = options.open(path).map_err(|source| match source.raw_os_error() {
        // O_NOFOLLOW: the last component is a symbolic link.
        Some(libc::ELOOP) => OpenError::Symlink { path: path.to_owned() },
        _ => OpenError::Io { path: path.to_owned(), source },
    })?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular { path: path.to_owned() });
    }
    let euid = euid();
    if meta.uid() != euid {
        return Err(OpenError::Owner { path: path.to_owned(), uid: meta.uid(), euid });
    }
    // Not 0o022 alone: the table holds private keys, so reading is as much a leak as writing
    // is a hijack.
    if meta.mode() & 0o077 != 0 {
        return Err(OpenError::Mode { path: path.to_owned(), mode: meta.mode() & 0o7777 });
    }
    Ok((file, meta))
}

/// A mapped table file. Its memory is shared with other processes.
///
/// Invariant: `map` spans exactly `geometry.file_len()` bytes, `geometry` passed
/// [`Geometry::check`], and it was read once, before mapping; nothing reads the geometry from the
/// control block again.
#[derive(Debug)]
struct Mapped {
    // Declared before `map`: unregistered before it is unmapped.
    registration: Registration,
    map: MmapRaw,
    geometry: Geometry,
    file: File,
    id: FileId,
}

impl Mapped {
    fn control(&self) -> &Control {
        // The mapping is at least CONTROL_BYTES long (checked when mapped) and page-aligned, and
        // every field of Control is an atomic, so whatever another process writes is no race.
        // SAFETY: in bounds, aligned, alive as long as `self`, every field an atomic.
        unsafe { &*self.map.as_ptr().cast::<Control>() }
    }

    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        // Callers bound `slot` by the stored geometry (`SlotStore::slots`), never by the file.
        assert!(slot < self.geometry.slots as usize, "slot {slot} outside the mapped geometry");
        // In bounds: the mapping spans CONTROL_BYTES + slots × slot_bytes (checked when mapped).
        self.map.as_mut_ptr().wrapping_add(CONTROL_BYTES + slot * self.geometry.slot_bytes as usize)
    }

    /// Reader record `record`'s route-stats row `row`.
    fn route_row(&self, record: usize, row: usize) -> &[AtomicU64] {
        // Callers bound both: `record` is a position in the fixed readers array, `row` is checked.
        assert!(record < MAX_READERS && row < ROUTE_ROWS, "route row {record}/{row} outside the region");
        let at = self.geometry.route_stats_at() as usize
            + record * ROUTE_RECORD_BYTES
            + row * ROUTE_ROW_VALUES * 8;
        // In bounds: the mapping spans file_len() = route_stats_at() + MAX_READERS rows of
        // ROUTE_RECORD_BYTES (checked when mapped); 8-aligned, as the region starts on a page
        // and rows are whole numbers of u64s; alive as long as `self`; the other process may
        // write these words at any time, which atomics tolerate.
        // SAFETY: in bounds, aligned, every value an AtomicU64 (same layout as u64).
        unsafe {
            core::slice::from_raw_parts(self.map.as_ptr().add(at).cast::<AtomicU64>(), ROUTE_ROW_VALUES)
        }
    }

    /// Zeroes reader record `record`'s route rows: punches them out of the file (the pages go
    /// back to the system, and read as zeros), or, where the file system cannot, stores zeros.
    fn clear_route_rows(&self, record: usize) {
        assert!(record < MAX_READERS, "record {record} outside the region");
        let at = self.geometry.route_stats_at() as usize + record * ROUTE_RECORD_BYTES;
        // The range is whole pages inside the file (file_len covers every record's rows); the
        // descriptor is ours. Punching a hole in a shared file mapping is defined: the pages read
        // as zeros afterwards, in every process that maps them.
        // SAFETY: fallocate has no memory preconditions; the arguments are checked above.
        let punched = unsafe {
            libc::fallocate(
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as libc::off_t,
                ROUTE_RECORD_BYTES as libc::off_t,
            )
        } == 0;
        if !punched {
            for row in 0..ROUTE_ROWS {
                for v in self.route_row(record, row) {
                    v.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether the file is still as long as the mapping (`fstat` on our descriptor), and no
    /// fault was contained in it.
    fn length_state(&self) -> FileState {
        let want = self.geometry.file_len();
        let len = self.file.metadata().map_or(0, |m| m.len());
        if len < want || self.registration.hit() {
            FileState::Shrunk { len, want }
        } else {
            FileState::Intact
        }
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

/// Reads the control block's fixed fields with `pread` (before anything is mapped), checks them,
/// and maps exactly the length the geometry gives.
fn map(path: &Path, file: File, meta: &Metadata, expect: Option<Geometry>) -> Result<Mapped, OpenError> {
    let len = meta.len();
    if len == 0 {
        return Err(OpenError::Unfinished { path: path.to_owned() });
    }
    if len < CONTROL_BYTES as u64 {
        return Err(OpenError::Truncated { path: path.to_owned(), len });
    }
    // The fixed fields at the start of `Control`, in the machine's byte order as the writer's
    // atomics store them.
    let mut head = [0u8; core::mem::offset_of!(Control, active)];
    file.read_exact_at(&mut head, 0).map_err(io_err(path))?;
    let field = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&head[at..at + n]);
        if cfg!(target_endian = "little") {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b) >> (64 - 8 * n)
        }
    };
    match field(core::mem::offset_of!(Control, magic), 8) {
        CONTROL_MAGIC => {}
        // The writer stores the magic last (`Publisher::create`).
        0 => return Err(OpenError::Unfinished { path: path.to_owned() }),
        _ => return Err(OpenError::BadMagic { path: path.to_owned() }),
    }
    let abi = field(core::mem::offset_of!(Control, abi), 4) as u32;
    if abi != ABI_VERSION {
        return Err(OpenError::AbiMismatch { path: path.to_owned(), found: abi });
    }
    let geometry = Geometry {
        slots: field(core::mem::offset_of!(Control, slots), 4) as u32,
        slot_bytes: field(core::mem::offset_of!(Control, slot_bytes), 8),
    };
    geometry.check()?;
    if expect.is_some_and(|g| g != geometry) {
        return Err(OpenError::BadGeometry(expect.unwrap_or(geometry)));
    }
    if len < geometry.file_len() {
        return Err(OpenError::Truncated { path: path.to_owned(), len });
    }
    let map = MmapOptions::new().len(geometry.file_len() as usize).map_raw(&file).map_err(io_err(path))?;
    let registration = Registration::new(map.as_ptr(), map.len());
    Ok(Mapped { registration, map, geometry, file, id: FileId::of(meta) })
}

/// The control block's magic as the file holds it (`None`: too short to hold one).
fn magic_of(file: &File) -> Option<u64> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, core::mem::offset_of!(Control, magic) as u64).ok()?;
    Some(u64::from_ne_bytes(b))
}

fn pid_alive(owner: u64) -> bool {
    owner == 0 || Path::new(&format!("/proc/{}", owner - 1)).exists()
}

/// The writer of a table file (the control process).
#[derive(Debug)]
pub struct Publisher {
    // Holds the exclusive lock through its file; dropping it releases the lock.
    mapped: Mapped,
    generation: u64,
    path: PathBuf,
}

impl Publisher {
    /// Opens `path` for writing, creating it (mode 0600) if absent. An existing file must pass
    /// the checks of the module doc and have the same geometry; its generations continue. One
    /// a writer left unfinished ([`OpenError::Unfinished`]) is made anew: no reader can have
    /// taken it, and the lock says no writer is at it now.
    pub fn create(path: &Path, geometry: Geometry) -> Result<Publisher, OpenError> {
        geometry.check()?;
        let (file, meta) = open_checked(path, true)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::WriterBusy { path: path.to_owned() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
        let unfinished = meta.len() == 0 || magic_of(&file) == Some(0);
        let meta = if unfinished {
            // From zero: what a writer left half made is not trusted to be zero.
            file.set_len(0).map_err(io_err(path))?;
            file.set_len(geometry.file_len()).map_err(io_err(path))?;
            let map = MmapRaw::map_raw(&file).map_err(io_err(path))?;
            // Dropped before `map`: contained while we write (see `sigbus`).
            let _contained = Registration::new(map.as_ptr(), map.len());
            // The file was just sized to hold the control block and the mapping is page-aligned.
            // SAFETY: in bounds and aligned (above); every field of Control is an atomic.
            let c = unsafe { &*map.as_ptr().cast::<Control>() };
            c.abi.store(ABI_VERSION, Ordering::Relaxed);
            c.slots.store(geometry.slots, Ordering::Relaxed);
            c.slot_bytes.store(geometry.slot_bytes, Ordering::Relaxed);
            // A reader checks the magic first: written last.
            c.magic.store(CONTROL_MAGIC, Ordering::Release);
            map.flush().map_err(io_err(path))?;
            file.metadata().map_err(io_err(path))?
        } else {
            meta
        };
        let mapped = map(path, file, &meta, Some(geometry))?;
        let generation =
            protocol::unpack(mapped.control().active.load(Ordering::Acquire)).map_or(0, |(g, _)| g);
        let mut p = Publisher { mapped, generation, path: path.to_owned() };
        p.reclaim_dead_readers();
        Ok(p)
    }

    /// Publishes `payload` as the next generation. On [`PublishError::Busy`] the caller retries
    /// later (a reader has not refreshed since the last publication but one); on
    /// [`PublishError::FileShrunk`] the file is no longer usable.
    pub fn publish(&mut self, payload: &[u8]) -> Result<u64, PublishError> {
        if let FileState::Shrunk { len, .. } = self.mapped.length_state() {
            return Err(PublishError::FileShrunk { len });
        }
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

    /// The geometry, as mapped.
    pub fn geometry(&self) -> Geometry {
        self.mapped.geometry
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

    /// Row `row` of the route-stats region of every registered reader: (record, process id,
    /// values). Empty for a row past [`ROUTE_ROWS`].
    pub fn route_row(&self, row: usize) -> Vec<(usize, u64, [u64; ROUTE_ROW_VALUES])> {
        if row >= ROUTE_ROWS {
            return Vec::new();
        }
        let c = self.mapped.control();
        c.readers
            .iter()
            .enumerate()
            .filter_map(|(record, r)| {
                let owner = r.owner.load(Ordering::Acquire);
                (owner != 0).then(|| {
                    let mut values = [0; ROUTE_ROW_VALUES];
                    for (v, cell) in values.iter_mut().zip(self.mapped.route_row(record, row)) {
                        *v = cell.load(Ordering::Relaxed);
                    }
                    (record, owner - 1, values)
                })
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

/// A reader of a table file (the gateway's main thread, and each worker for its counters).
#[derive(Debug)]
pub struct Reader {
    mapped: Mapped,
    state: ReaderState,
    path: PathBuf,
    /// The file shrank under us: nothing more is read from it.
    retired: bool,
}

impl Reader {
    /// Opens `path` (with the checks of the module doc), validates its control block and
    /// registers a reader record. Adopts the current generation, if there is a valid one.
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
        let (file, meta) = open_checked(path, false)?;
        let mapped = map(path, file, &meta, None)?;
        let owner = u64::from(std::process::id()) + 1;
        let c = mapped.control();
        // The record index is ours (the position we claimed in a fixed-size array), never read
        // from the file.
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
        mapped.clear_route_rows(record);
        Ok(Reader { mapped, state: ReaderState::new(record), path: path.to_owned(), retired: false })
    }

    /// Once per batch (and at every idle wake-up): adopts a newer generation if there is a
    /// valid one. Costs one atomic load when nothing changed. Nothing, once the file shrank.
    #[inline]
    pub fn refresh(&mut self) -> Refresh {
        if self.retired || self.mapped.registration.hit() {
            self.retired = true;
            return Refresh::Unchanged;
        }
        self.state.refresh(self.mapped.control(), &self.mapped)
    }

    /// The payload of the generation in use, if one was adopted and the file did not shrink
    /// since. Borrowing it prevents a refresh, so it cannot change underfoot.
    #[inline]
    pub fn payload(&self) -> Option<&[u8]> {
        if self.retired || self.mapped.registration.hit() {
            return None;
        }
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
    /// Values beyond [`crate::protocol::STATS_PER_READER`] are ignored. Safe on a file truncated
    /// under us (see the module doc): the values then go nowhere.
    pub fn publish_stats(&self, values: &[u64]) {
        for (cell, v) in self.mapped.control().stats[self.state.record].iter().zip(values) {
            cell.store(*v, Ordering::Relaxed);
        }
    }

    /// Publishes this reader's counts for one L7 route (row `row` of the route-stats region;
    /// control reads them for metrics). A row past [`ROUTE_ROWS`] and values beyond
    /// [`ROUTE_ROW_VALUES`] are ignored. Safe on a file truncated under us, as
    /// [`Reader::publish_stats`].
    pub fn publish_route_row(&self, row: usize, values: &[u64]) {
        if row >= ROUTE_ROWS {
            return;
        }
        for (cell, v) in self.mapped.route_row(self.state.record, row).iter().zip(values) {
            cell.store(*v, Ordering::Relaxed);
        }
    }

    /// Checks the file under the mapping: its length (`fstat` on our descriptor, and whether a
    /// fault was contained in it) and whether the path still names it (`lstat`). Two system
    /// calls; the gateway's main thread calls it a few times a second. A shrunk file retires the
    /// reader: [`Reader::refresh`] and [`Reader::payload`] read nothing from it any more.
    pub fn check_file(&mut self) -> FileState {
        let length = self.mapped.length_state();
        if let FileState::Shrunk { .. } = length {
            self.retired = true;
            return length;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if FileId::of(&m) == self.mapped.id => FileState::Intact,
            Ok(_) => FileState::Replaced,
            Err(_) => FileState::Missing,
        }
    }

    /// Which file is mapped (device and inode, from when it was opened).
    pub fn file_id(&self) -> FileId {
        self.mapped.id
    }

    /// Whether a truncation of the file is contained (`sigbus`) for this reader, rather
    /// than detected by [`Reader::check_file`] alone.
    pub fn contained(&self) -> bool {
        self.mapped.registration.contained()
    }

    /// The geometry, as mapped.
    pub fn geometry(&self) -> Geometry {
        self.mapped.geometry
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
