//! The four single-producer single-consumer rings an AF_XDP socket shares with the kernel.
//!
//! Each ring is a power-of-two array of entries in memory mapped from the socket, with a
//! producer and a consumer index that only ever grow (wrapping at 2³²). One side produces, the
//! other consumes; each side keeps a cached copy of the other side's index and reads the shared
//! one (Acquire) only when its cached view says the ring is full or empty, so a batch costs one
//! shared load at most and one Release store to publish. This is the protocol of the kernel's
//! `Documentation/networking/af_xdp.rst` and of libxdp's `xsk.h`.
//!
//! Fill and TX rings: user space produces. RX and completion rings: user space consumes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mapping of a ring.
pub(crate) struct Ring<T: Copy> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer side: our producer index; consumer side: the last producer index we loaded.
    cached_prod: u32,
    /// Producer side: the last consumer index we loaded (+ size); consumer side: ours.
    cached_cons: u32,
}

// SAFETY: a Ring is the only user-space handle on its mapping (never cloned); moving it to another thread moves that exclusive access with it. The kernel side is synchronised through the atomic indices.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

impl<T: Copy> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("size", &self.size).finish_non_exhaustive()
    }
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries of socket `fd` at page offset `pgoff`, described by
    /// `off` (from `XDP_MMAP_OFFSETS`).
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        size: u32,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        producer_side: bool,
    ) -> io::Result<Ring<T>> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint); the arguments are plain values and the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the `map_len` bytes just mapped (it sized the ring region from the same `size`), and are aligned for their types.
        let at = |o: u64| unsafe { NonNull::new_unchecked(base.add(o as usize)) };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        let mut ring = Ring {
            // SAFETY: `p` is not MAP_FAILED, so it is a valid non-null mapping address.
            map: unsafe { NonNull::new_unchecked(base) },
            map_len,
            producer,
            consumer,
            flags: at(off.flags).cast::<AtomicU32>(),
            desc: at(off.desc).cast::<T>(),
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
        };
        // SAFETY: both indices point into the live mapping (see above).
        let (prod, cons) = unsafe {
            (ring.producer.as_ref().load(Ordering::Relaxed), ring.consumer.as_ref().load(Ordering::Relaxed))
        };
        if producer_side {
            ring.cached_prod = prod;
            ring.cached_cons = cons.wrapping_add(size);
        } else {
            ring.cached_prod = prod;
            ring.cached_cons = cons;
        }
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our mapping, which lives as long as `self`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Whether the kernel asked to be woken (`XDP_RING_NEED_WAKEUP`).
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer side (fill, TX) ----

    /// Free entries, reloading the consumer index only when fewer than `want` look free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire).wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes `items` (at most [`Ring::free`] of them) and publishes them.
    pub(crate) fn produce(&mut self, items: impl ExactSizeIterator<Item = T>) -> u32 {
        let n = (items.len() as u32).min(self.free(items.len() as u32));
        for (i, item) in items.take(n as usize).enumerate() {
            let idx = self.cached_prod.wrapping_add(i as u32) & self.mask;
            // SAFETY: `idx <= mask < size`: inside the descriptor array; the entry lies between the consumer and producer indices, so the kernel does not read it until the Release store below publishes it.
            unsafe { self.desc.as_ptr().add(idx as usize).write(item) };
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
        n
    }

    // ---- consumer side (RX, completion) ----

    /// Entries ready to read, reloading the producer index only when fewer than `want` are known.
    pub(crate) fn available(&mut self, want: u32) -> u32 {
        let ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready >= want {
            return ready;
        }
        self.cached_prod = self.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reads up to `out.len()` entries into `out` and releases them to the kernel.
    pub(crate) fn consume(&mut self, out: &mut [T]) -> usize {
        let n = (out.len() as u32).min(self.available(out.len() as u32));
        for (i, slot) in out[..n as usize].iter_mut().enumerate() {
            let idx = self.cached_cons.wrapping_add(i as u32) & self.mask;
            // SAFETY: `idx < size`; the entry was published by the kernel's Release store that our Acquire load in `available` observed, and it stays ours until the consumer index moves past it below.
            *slot = unsafe { self.desc.as_ptr().add(idx as usize).read() };
        }
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
        n as usize
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `map`; nothing refers to it after drop.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}
