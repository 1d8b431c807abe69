//! An AF_XDP socket bound to one queue of one interface, with its own UMEM, as a worker
//! [`Port`].
//!
//! The UMEM is one anonymous mapping of `frames × frame_size` bytes (on 2 MiB hugepages when
//! asked and available). Frames are owned by exactly one party at a time: the free stack here,
//! the fill ring (kernel will receive into it), the RX ring → the worker, the TX ring (kernel is
//! sending it) → completion ring → the free stack again. Every receive tops the fill ring up
//! from the free stack and drains the completion ring into it, so no frame is lost and none is
//! used twice.
//!
//! The bind asks for zero-copy when [`BindMode::Auto`] and falls back to copy mode when the
//! driver has none (veth), saying which it got in [`XskSocket::mode`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use sluice_port::{Desc, Port};

use crate::ring::Ring;

/// How to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy when the driver supports it, copy otherwise.
    #[default]
    Auto,
    /// Copy mode only.
    Copy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// What the bind got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
    /// The NIC reads and writes the UMEM directly.
    ZeroCopy,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Copy => "copy",
            Mode::ZeroCopy => "zero-copy",
        })
    }
}

/// Socket settings. Ring sizes are powers of two; `frames` must exceed fill + RX + TX + what a
/// worker holds in flight (`docs/af-xdp.md`, pitfall 4).
#[derive(Debug, Clone)]
pub struct Config {
    /// Frames in the UMEM.
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Entries of the RX and fill rings.
    pub rx_size: u32,
    /// Entries of the TX and completion rings.
    pub tx_size: u32,
    /// Zero-copy or copy.
    pub bind: BindMode,
    /// Back the UMEM with 2 MiB hugepages (falls back to normal pages if none are reserved).
    pub hugepages: bool,
}

/// Room the kernel keeps in front of every received frame (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// The smallest frame size (2048 or 4096 bytes) that holds a received frame of an interface
/// with this MTU — the MTU plus an Ethernet header and one VLAN tag, after the kernel's
/// headroom — or `None` when not even 4096 does: a frame must fit one UMEM frame, as the
/// sockets do not use multi-buffer.
pub fn frame_size_for_mtu(mtu: u32) -> Option<u32> {
    [2048, 4096].into_iter().find(|&size| mtu <= max_mtu(size))
}

/// The largest MTU whose frames fit frames of `frame_size` bytes.
pub const fn max_mtu(frame_size: u32) -> u32 {
    frame_size.saturating_sub(XDP_PACKET_HEADROOM + 18)
}

/// The largest MTU [`frame_size_for_mtu`] accepts.
pub const MAX_MTU: u32 = max_mtu(4096);

impl Default for Config {
    fn default() -> Config {
        Config {
            frames: 16384,
            frame_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            bind: BindMode::Auto,
            hugepages: false,
        }
    }
}

/// Why a socket could not be made.
#[derive(Debug)]
pub enum Error {
    /// A setting is out of range.
    Config(String),
    /// No interface of that name.
    NoInterface(String),
    /// A system call failed.
    Sys {
        /// Which step.
        step: &'static str,
        /// The error.
        err: io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(s) => write!(f, "AF_XDP socket settings: {s}"),
            Error::NoInterface(s) => write!(f, "no network interface named {s:?}"),
            Error::Sys { step, err } if err.raw_os_error() == Some(libc::EPERM) => write!(
                f,
                "{step}: {err} — AF_XDP needs CAP_NET_ADMIN and CAP_NET_RAW (run as root, or grant \
                 them with setcap)"
            ),
            Error::Sys { step, err } => write!(f, "{step}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

fn sys(step: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |err| Error::Sys { step, err }
}

/// The kernel's counters for one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames dropped for reasons other than an invalid descriptor.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// Looks up an interface index.
pub fn if_index(name: &str) -> Result<u32, Error> {
    let c = CString::new(name).map_err(|_| Error::NoInterface(name.into()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 { Err(Error::NoInterface(name.into())) } else { Ok(i) }
}

struct Umem {
    area: NonNull<u8>,
    len: usize,
    hugepages: bool,
}

impl Umem {
    fn new(len: usize, hugepages: bool) -> Result<Umem, Error> {
        let base = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        let attempt = |flags| {
            // SAFETY: a fresh anonymous mapping (no file, null hint); checked below.
            let p = unsafe {
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
            };
            if p == libc::MAP_FAILED { None } else { NonNull::new(p.cast::<u8>()) }
        };
        if hugepages {
            if let Some(area) = attempt(base | libc::MAP_HUGETLB) {
                return Ok(Umem { area, len, hugepages: true });
            }
            tracing::warn!(
                "no hugepages for a {} MiB UMEM (raise /proc/sys/vm/nr_hugepages); using normal pages",
                len >> 20
            );
        }
        // Otherwise transparent huge pages where the kernel gives them: asked for before the
        // memory is touched, then populated. Frames cycle through the fill and RX rings (4,096
        // of them, each on its own 4 KiB page, more than a TLB holds), so on small pages nearly
        // every frame the worker reads is a TLB miss; on a virtual machine a miss walks two page
        // tables. Where THP is off, the pages are small: only the speed differs.
        let Some(area) = attempt(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) else {
            return Err(Error::Sys { step: "mmap UMEM", err: io::Error::last_os_error() });
        };
        let p = area.as_ptr().cast::<libc::c_void>();
        // SAFETY: [p, p + len) is the mapping just made; madvise hints at its paging and POPULATE_WRITE faults it in (as MAP_POPULATE would) without changing its contents.
        let populated = unsafe {
            libc::madvise(p, len, libc::MADV_HUGEPAGE);
            libc::madvise(p, len, MADV_POPULATE_WRITE) == 0
        };
        if !populated {
            // Before 5.14: fault each page in by writing it (the memory is fresh zeroes).
            for off in (0..len).step_by(4096) {
                // SAFETY: `off < len`: inside the mapping, which nothing else references yet.
                unsafe { area.as_ptr().add(off).write_volatile(0) };
            }
        }
        Ok(Umem { area, len, hugepages: false })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; the socket (which the kernel pinned the pages for) is closed before, as `XskSocket` drops its fd first.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
    }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14): fault a range in, writable.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17; not yet in the libc crate): frames one copy-mode
/// transmit wake-up may send.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, v: &T, step: &'static str) -> Result<(), Error> {
    // SAFETY: `v` is a live value of the size passed; the kernel copies it in.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(Error::Sys { step, err: io::Error::last_os_error() }) }
}

fn getsockopt<T: Default>(fd: BorrowedFd<'_>, opt: libc::c_int, step: &'static str) -> Result<T, Error> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    let out = (&mut v as *mut T).cast();
    // SAFETY: the kernel writes at most `len` bytes into `v`, a live value of that size.
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_XDP, opt, out, &mut len) };
    if r == 0 { Ok(v) } else { Err(Error::Sys { step, err: io::Error::last_os_error() }) }
}

/// An AF_XDP socket and its UMEM. See the module documentation.
pub struct XskSocket {
    // Field order is drop order: rings, then the socket, then the UMEM it registered.
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fd: OwnedFd,
    umem: Umem,
    free: Vec<u64>,
    frame_mask: u64,
    mode: Mode,
    scratch: Vec<libc::xdp_desc>,
    scratch_addr: Vec<u64>,
    wakeups: u64,
    tx_budget: u32,
}

// SAFETY: the socket owns its mappings exclusively; moving it to a worker thread moves that ownership. It is never shared (no `Sync`).
unsafe impl Send for XskSocket {}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("mode", &self.mode)
            .field("umem_bytes", &self.umem.len)
            .field("hugepages", &self.umem.hugepages)
            .field("tx_budget", &self.tx_budget)
            .finish_non_exhaustive()
    }
}

impl XskSocket {
    /// Creates a socket with its UMEM and binds it to queue `queue` of `iface`.
    pub fn bind(iface: &str, queue: u32, config: &Config) -> Result<XskSocket, Error> {
        let c = config;
        let pow2 = |v: u32| v.is_power_of_two();
        if !(c.frame_size == 2048 || c.frame_size == 4096) {
            return Err(Error::Config(format!("frame size {} (must be 2048 or 4096)", c.frame_size)));
        }
        if !pow2(c.rx_size) || !pow2(c.tx_size) || c.rx_size < 64 || c.tx_size < 64 {
            return Err(Error::Config(format!(
                "ring sizes {}/{} (must be powers of two, at least 64)",
                c.rx_size, c.tx_size
            )));
        }
        if c.frames < 2 * c.rx_size + c.tx_size + 256 {
            return Err(Error::Config(format!(
                "{} frames are too few for rings of {}/{} (need at least {})",
                c.frames,
                c.rx_size,
                c.tx_size,
                2 * c.rx_size + c.tx_size + 256
            )));
        }
        let ifindex = if_index(iface)?;
        match c.bind {
            BindMode::Copy => Self::open(ifindex, queue, c, Mode::Copy),
            BindMode::ZeroCopy => Self::open(ifindex, queue, c, Mode::ZeroCopy),
            BindMode::Auto => match Self::open(ifindex, queue, c, Mode::ZeroCopy) {
                Ok(s) => Ok(s),
                Err(Error::Sys { step: "bind", err })
                    if matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)) =>
                {
                    Self::open(ifindex, queue, c, Mode::Copy)
                }
                Err(e) => Err(e),
            },
        }
    }

    fn open(ifindex: u32, queue: u32, c: &Config, mode: Mode) -> Result<XskSocket, Error> {
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::Sys { step: "socket(AF_XDP)", err: io::Error::last_os_error() });
        }
        // SAFETY: `raw` is a descriptor we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = c.frames as usize * c.frame_size as usize;
        let umem = Umem::new(len, c.hugepages)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.area.as_ptr() as u64,
            len: len as u64,
            chunk_size: c.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg, "register UMEM")?;
        setsockopt(fd.as_fd(), libc::XDP_UMEM_FILL_RING, &c.rx_size, "size fill ring")?;
        setsockopt(fd.as_fd(), libc::XDP_UMEM_COMPLETION_RING, &c.tx_size, "size completion ring")?;
        setsockopt(fd.as_fd(), libc::XDP_RX_RING, &c.rx_size, "size RX ring")?;
        setsockopt(fd.as_fd(), libc::XDP_TX_RING, &c.tx_size, "size TX ring")?;
        // In copy mode each wake-up transmits at most this many frames (the kernel's default is
        // 32, which leaves the rest of a 64-frame batch in the ring until the next one, and the
        // ring fills). Since Linux 6.17 it can be raised up to the TX ring's size; older kernels
        // keep 32.
        let tx_budget = if setsockopt(fd.as_fd(), XDP_MAX_TX_SKB_BUDGET, &c.tx_size, "TX budget").is_ok() {
            c.tx_size
        } else {
            32
        };
        let off: Offsets = getsockopt(fd.as_fd(), libc::XDP_MMAP_OFFSETS, "XDP_MMAP_OFFSETS")?;
        let off = off.0;
        let b = fd.as_fd();
        let mut fill = Ring::<u64>::map(b, c.rx_size, libc::XDP_UMEM_PGOFF_FILL_RING, &off.fr, true)
            .map_err(sys("map fill ring"))?;
        let comp = Ring::<u64>::map(b, c.tx_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, false)
            .map_err(sys("map completion ring"))?;
        let rx = Ring::<libc::xdp_desc>::map(b, c.rx_size, libc::XDP_PGOFF_RX_RING as u64, &off.rx, false)
            .map_err(sys("map RX ring"))?;
        let tx = Ring::<libc::xdp_desc>::map(b, c.tx_size, libc::XDP_PGOFF_TX_RING as u64, &off.tx, true)
            .map_err(sys("map TX ring"))?;

        let fs = u64::from(c.frame_size);
        let mut free: Vec<u64> = (0..u64::from(c.frames)).rev().map(|i| i * fs).collect();
        let first: Vec<u64> = free.split_off(free.len() - c.rx_size as usize);
        fill.produce(first.into_iter());

        let flags = libc::XDP_USE_NEED_WAKEUP
            | match mode {
                Mode::Copy => libc::XDP_COPY,
                Mode::ZeroCopy => libc::XDP_ZEROCOPY,
            };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // EBUSY: another socket holds the queue — or held it: a process that has just exited
        // leaves its socket to be released by the kernel a moment later (measured: a second
        // `sluice-pktgen send` on the queue right after the first failed now and then). Tried
        // again for up to 2 s before it is an error; a queue really in use stays EBUSY.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            // SAFETY: `sa` is a live sockaddr_xdp of the length passed.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() > deadline {
                return Err(Error::Sys { step: "bind", err });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let cap = c.rx_size.max(c.tx_size) as usize;
        Ok(XskSocket {
            fill,
            comp,
            rx,
            tx,
            fd,
            umem,
            free,
            frame_mask: !(fs - 1),
            mode,
            scratch: vec![libc::xdp_desc { addr: 0, len: 0, options: 0 }; cap],
            scratch_addr: vec![0; cap],
            wakeups: 0,
            tx_budget,
        })
    }

    /// Copy or zero-copy.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the UMEM sits on hugepages.
    pub fn hugepages(&self) -> bool {
        self.umem.hugepages
    }

    /// The socket, for `poll` and for the XSKMAP.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Frames one transmit wake-up sends in copy mode: the TX ring's size where the kernel lets
    /// it be raised (6.17 and later), else the kernel's default of 32.
    pub fn tx_budget(&self) -> u32 {
        self.tx_budget
    }

    /// Wake-up system calls made so far (TX kicks and fill-ring wakes).
    pub fn wakeups(&self) -> u64 {
        self.wakeups
    }

    /// Frames on the free stack (neither in a ring nor held by the worker).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> Result<Stats, Error> {
        let s: StatsRaw = getsockopt(self.fd.as_fd(), libc::XDP_STATISTICS, "XDP_STATISTICS")?;
        let s = s.0;
        Ok(Stats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }

    /// Frames to build and transmit (a generator's path): takes up to `out.len()` free frames,
    /// after reclaiming completed transmissions; their lengths are the full frame size. Give each
    /// back through `send` or `release`.
    pub fn alloc_tx(&mut self, out: &mut [Desc]) -> usize {
        self.reclaim();
        let n = out.len().min(self.free.len());
        let frame_len = (!self.frame_mask + 1) as u32;
        for o in &mut out[..n] {
            // `free` has at least `n` entries.
            let addr = self.free.pop().unwrap_or_default();
            *o = Desc { addr, len: frame_len };
        }
        n
    }

    /// Wakes the kernel's transmit path (copy mode needs it after every batch; `send` does it).
    pub fn kick_tx(&mut self) {
        self.wakeups += 1;
        let fd = self.fd.as_raw_fd();
        // SAFETY: a zero-length, non-blocking send on our own socket with no buffer: the kernel only runs its TX path; errors (EAGAIN, EBUSY, ENOBUFS, ENETDOWN) leave the frames in the ring for the next kick.
        unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    }

    /// Returns completed transmissions to the free stack.
    fn reclaim(&mut self) {
        loop {
            let n = self.comp.consume(&mut self.scratch_addr);
            for &a in &self.scratch_addr[..n] {
                self.free.push(a & self.frame_mask);
            }
            if n < self.scratch_addr.len() {
                break;
            }
        }
    }

    /// Returns completed transmissions to the free stack and tops the fill ring up from it.
    fn recycle(&mut self) {
        self.reclaim();
        let want = self.fill.free(self.free.len() as u32).min(self.free.len() as u32) as usize;
        if want > 0 {
            let start = self.free.len() - want;
            // `free(want)` said at least `want` entries are free, and only we produce.
            let n = self.fill.produce(self.free[start..].iter().copied()) as usize;
            debug_assert_eq!(n, want);
            self.free.truncate(start);
        }
    }

    /// Asks the kernel to fill the RX ring (it set `XDP_RING_NEED_WAKEUP` on the fill ring).
    fn wake_rx(&mut self) {
        self.wakeups += 1;
        let fd = self.fd.as_raw_fd();
        let null = std::ptr::null_mut();
        // SAFETY: a zero-length, non-blocking receive on our own socket with no buffer: the kernel only runs its RX path; an error leaves the frames in the fill ring for the next wake-up.
        unsafe { libc::recvfrom(fd, null, 0, libc::MSG_DONTWAIT, null.cast(), null.cast()) };
    }
}

/// `XDP_MMAP_OFFSETS` as a defaultable value.
struct Offsets(libc::xdp_mmap_offsets);

impl Default for Offsets {
    fn default() -> Offsets {
        let z = libc::xdp_ring_offset { producer: 0, consumer: 0, desc: 0, flags: 0 };
        Offsets(libc::xdp_mmap_offsets { rx: z, tx: z, fr: z, cr: z })
    }
}

/// `XDP_STATISTICS` as a defaultable value.
struct StatsRaw(libc::xdp_statistics);

impl Default for StatsRaw {
    fn default() -> StatsRaw {
        StatsRaw(libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        })
    }
}

impl Port for XskSocket {
    fn recv(&mut self, out: &mut [Desc]) -> usize {
        self.recycle();
        let want = out.len().min(self.scratch.len());
        let n = self.rx.consume(&mut self.scratch[..want]);
        if n == 0 && self.fill.needs_wakeup() {
            self.wake_rx();
        }
        for (o, d) in out.iter_mut().zip(&self.scratch[..n]) {
            *o = Desc { addr: d.addr, len: d.len };
        }
        n
    }

    fn frame(&mut self, desc: &Desc) -> &mut [u8] {
        let (start, len) = (desc.addr as usize, desc.len as usize);
        if start.checked_add(len).is_none_or(|end| end > self.umem.len) {
            return &mut [];
        }
        // SAFETY: `start + len` is inside the UMEM (checked above); the frame belongs to the worker (received and not yet given back), so neither the kernel nor another borrow touches it while this `&mut self` borrow lives.
        unsafe { std::slice::from_raw_parts_mut(self.umem.area.as_ptr().add(start), len) }
    }

    fn frame_room(&mut self, desc: &Desc) -> &mut [u8] {
        let start = desc.addr as usize;
        // The end of the UMEM frame the descriptor lies in (aligned mode: frames of 2^n bytes).
        let chunk_end = ((desc.addr & self.frame_mask) + !self.frame_mask + 1) as usize;
        let end = chunk_end.max(start.saturating_add(desc.len as usize));
        if end > self.umem.len || start > end {
            return &mut [];
        }
        // SAFETY: `start..end` is inside the UMEM (checked above) and inside the one frame the descriptor names, which belongs to the worker (received and not yet given back), so neither the kernel nor another borrow touches it while this `&mut self` borrow lives.
        unsafe { std::slice::from_raw_parts_mut(self.umem.area.as_ptr().add(start), end - start) }
    }

    fn send(&mut self, frames: &[Desc]) -> usize {
        let n =
            self.tx.produce(frames.iter().map(|d| libc::xdp_desc { addr: d.addr, len: d.len, options: 0 }));
        if n > 0 && (self.mode == Mode::Copy || self.tx.needs_wakeup()) {
            self.kick_tx();
        }
        n as usize
    }

    fn to_kernel(&mut self, _frames: &[Desc]) -> usize {
        // An AF_XDP socket cannot hand a frame back to the stack; the XDP program passes what
        // is not ours before it gets here, so the worker counts the rare rest as dropped.
        0
    }

    fn release(&mut self, frames: &[Desc]) {
        for d in frames {
            self.free.push(d.addr & self.frame_mask);
        }
    }

    fn alloc(&mut self, out: &mut [Desc]) -> usize {
        self.alloc_tx(out)
    }

    fn tx_room(&mut self, want: usize) -> usize {
        let want = want.min(u32::MAX as usize) as u32;
        let mut room = self.tx.free(want);
        if room < want && (self.mode == Mode::Copy || self.tx.needs_wakeup()) {
            // What is left in the ring goes out only on a wake-up (copy mode: inside it).
            self.kick_tx();
            room = self.tx.free(want);
        }
        room as usize
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes; returns whether one is.
/// At most 16 descriptors are watched.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> bool {
    let mut p = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 16];
    let n = fds.len().min(p.len());
    for (slot, f) in p.iter_mut().zip(&fds[..n]) {
        *slot = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    }
    // SAFETY: `p` is a live array of at least `n` pollfd entries.
    let r = unsafe { libc::poll(p.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    r > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_size_follows_the_mtu() {
        assert_eq!(frame_size_for_mtu(1500), Some(2048));
        assert_eq!(frame_size_for_mtu(1774), Some(2048), "1774 + 18 + 256 = 2048");
        assert_eq!(frame_size_for_mtu(1775), Some(4096));
        assert_eq!(frame_size_for_mtu(MAX_MTU), Some(4096));
        assert_eq!(frame_size_for_mtu(MAX_MTU + 1), None);
        assert_eq!(frame_size_for_mtu(9000), None);
        assert_eq!(frame_size_for_mtu(u32::MAX), None);
        assert_eq!((max_mtu(2048), max_mtu(4096), max_mtu(0)), (1774, 3822, 0));
    }
}
