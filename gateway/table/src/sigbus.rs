//! SIGBUS containment for mappings of the table file.
//!
//! A shared file mapping whose file is truncated under it raises SIGBUS on the next access to a
//! page past the new end — in the gateway, a worker publishing its counters, or the main thread
//! checksumming a slot. A check of the file's length before each access leaves a window (the
//! truncation can land between check and access), so this module closes it: every table mapping
//! is registered here, and a process-wide SIGBUS handler that finds the faulting address inside
//! a registered mapping replaces the whole mapping, in place, with private zero-filled memory of
//! the same size (`mmap(MAP_FIXED | MAP_ANONYMOUS)`) and returns. The faulting access runs again
//! and reads zeros (or writes into memory nobody else sees); the mapping is marked hit, and its
//! owner treats it as gone ([`Registration::hit`]). A SIGBUS anywhere else goes to the handler
//! that was installed before ours, or gets the default action (the process dies, as it would
//! have without this module).
//!
//! Why replacing is sound: a fault inside a registered mapping happens on a thread that is
//! accessing it, so the mapping's owner is alive and not unmapping it (it unregisters before it
//! unmaps, and cannot unmap while borrowed); pointers into the mapping stay valid, only the bytes
//! behind them become zeros — which the protocol reads as "nothing published" (magic 0, `active`
//! 0) and the image decoder refuses. The handler only loads atomics and calls `mmap`,
//! `sigaction` and `raise` (raw system calls; `mmap` is not on POSIX's async-signal-safe list
//! but takes no lock in glibc or musl).
//!
//! Unsafe: yes — a signal handler and `mmap` over memory we own.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// How many mappings can be registered at once: one per reader record, a writer and room for a
/// file being replaced.
const MAX_REGIONS: usize = 2 * crate::protocol::MAX_READERS + 8;

/// A start address no mapping has, marking a slot being filled.
const CLAIMING: usize = 1;

struct Region {
    /// 0: free; [`CLAIMING`]: being registered; otherwise the mapping's start.
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}

#[expect(clippy::declare_interior_mutable_const, reason = "an array initialiser, each slot its own atomics")]
const FREE: Region =
    Region { start: AtomicUsize::new(0), len: AtomicUsize::new(0), hit: AtomicBool::new(false) };

static REGIONS: [Region; MAX_REGIONS] = [FREE; MAX_REGIONS];
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, for faults that are not ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A mapping registered for containment; unregisters on drop (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Registration {
    /// Index in [`REGIONS`]; `None` when every slot was taken (then a truncation is not
    /// contained for this mapping: it is detected by the length checks only).
    slot: Option<usize>,
}

impl Registration {
    /// Registers `[start, start + len)` and installs the handler on first use.
    pub(crate) fn new(start: *const u8, len: usize) -> Registration {
        install();
        let start = start as usize;
        let slot = REGIONS
            .iter()
            .position(|r| r.start.compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Relaxed).is_ok());
        if let Some(i) = slot {
            let r = &REGIONS[i];
            r.len.store(len, Ordering::Relaxed);
            r.hit.store(false, Ordering::Relaxed);
            // Release pairs with the handler's Acquire load of `start`: it sees `len` with it.
            r.start.store(start, Ordering::Release);
        }
        Registration { slot }
    }

    /// Whether a SIGBUS was contained in this mapping: its file shrank under it, and its memory
    /// is now private zeros.
    pub(crate) fn hit(&self) -> bool {
        // Acquire pairs with the handler's Release store.
        self.slot.is_some_and(|i| REGIONS[i].hit.load(Ordering::Acquire))
    }

    /// Whether the mapping is protected (a slot was free when it was registered).
    pub(crate) fn contained(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            REGIONS[i].start.store(0, Ordering::Release);
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // sigaction with a null new action only reads the current one.
        // SAFETY: a zeroed sigaction is a valid buffer for it to fill.
        let previous = unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            libc::sigaction(libc::SIGBUS, core::ptr::null(), &mut old);
            old
        };
        let _ = PREVIOUS.set(previous);
        // `on_sigbus` only does what a handler may (see the module doc); the mask is
        // initialised by sigemptyset before use.
        // SAFETY: `on_sigbus` has the SA_SIGINFO signature the flags announce.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, core::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &REGIONS {
        // Acquire pairs with the Release store in `Registration::new`.
        let start = r.start.load(Ordering::Acquire);
        if start <= CLAIMING {
            continue;
        }
        let len = r.len.load(Ordering::Relaxed);
        if addr.wrapping_sub(start) >= len || r.start.load(Ordering::Acquire) != start {
            continue;
        }
        // The fault is in a registered mapping, on the thread accessing it, so its owner keeps
        // it mapped at least until this access is done (see the module doc).
        // MAP_FIXED replaces it with zeroed private memory of the same size, so every pointer
        // into it stays valid.
        // SAFETY: [start, start + len) is our own live mapping.
        let p = unsafe {
            libc::mmap(
                start as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            // Pairs with the Acquire load in `Registration::hit`.
            r.hit.store(true, Ordering::Release);
            return;
        }
    }
    not_ours(sig, info, ctx);
}

/// A signal handler of the SA_SIGINFO kind.
type InfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void);

/// A SIGBUS outside our mappings: what would have happened without us.
fn not_ours(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    if let Some(prev) = PREVIOUS.get()
        && prev.sa_sigaction != libc::SIG_DFL
        && prev.sa_sigaction != libc::SIG_IGN
    {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // Installed by its owner for exactly this call.
            // SAFETY: with SA_SIGINFO the previous action's address is a three-argument handler.
            let f: InfoHandler = unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig, info, ctx);
        } else {
            // SAFETY: without SA_SIGINFO the previous action's address is a one-argument handler.
            let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig);
        }
        return;
    }
    // Restoring the default action and raising the signal again: the process ends with SIGBUS
    // (on return, for a fault; at once, for a sent signal), as it would have without us.
    // SAFETY: a zeroed sigaction with SIG_DFL and an initialised mask is a valid action.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(libc::SIGBUS, &dfl, core::ptr::null_mut());
        libc::raise(sig);
    }
}
