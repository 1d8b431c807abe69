//! The few primitives Sluice's data plane needs that safe Rust cannot express, each behind a
//! safe function whose contract is stated here. This crate, `xsk` and `table` are the only homes
//! of `unsafe` in the workspace.
//!
//! - [`prefetch`]: a cache prefetch hint, so a batch can issue all its flow-table loads before
//!   it needs any of them (a plain load stalls retirement; a prefetch does not).
//! - [`match_u32x16`]: which of sixteen `u32` equal a value, as a bit mask — four SSE2 compares
//!   where the scalar loop costs some fifty instructions (LLVM does not vectorise it).
//! - [`huge_slice`]: a large table on transparent huge pages (asked for before the memory is
//!   first touched): a flow table's random accesses then miss the TLB far less — on a virtual
//!   machine, where a TLB miss walks two page tables, that is most of what a miss costs.
//!
//! - [`xdp_live_frames`]: the `bpf(BPF_PROG_TEST_RUN)` call that makes the kernel replay a frame
//!   through an XDP program and transmit what it returns (the packet generator's fast path).
//!
//! - [`recv`], [`send`], [`writev`]: the L7 stage's socket reads and writes as bare system
//!   calls. Through libc each is a thread-cancellation point, wrapped in two calls that turn
//!   asynchronous cancellation on and off around it — about 1 % of a worker's CPU under a
//!   keep-alive HTTPS load (perf, 2026-12-05), for a feature Sluice never uses.
//!
//! Hot path: yes (but [`xdp_live_frames`], a generator's system call). No allocation (but in
//! [`huge_slice`], at start).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

/// `n` copies of `value` in one allocation that the kernel is asked (`MADV_HUGEPAGE`) to back
/// with transparent huge pages, before any of it is touched. Where the kernel does not do
/// transparent huge pages (or the request fails), the memory is ordinary: only the speed differs.
pub fn huge_slice<T: Clone>(n: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(core::mem::size_of::<T>());
    const PAGE: usize = 4096;
    let start = v.as_mut_ptr() as usize;
    let (from, to) = (start.next_multiple_of(PAGE), (start + bytes) / PAGE * PAGE);
    #[cfg(target_os = "linux")]
    if to > from {
        // SAFETY: [from, to) is page-aligned and inside the allocation `v` owns (its capacity); madvise only sets a paging hint on it and reads or writes no memory.
        let _ = unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    }
    v.resize(n, value);
    v.into_boxed_slice()
}

/// Hints the CPU to bring the cache line holding `*r` into all cache levels.
///
/// A hint only: it has no observable effect besides timing, never faults, and is a no-op on
/// targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // `_mm_prefetch` only hints the cache hierarchy: it performs no architectural memory
        // access and cannot fault; the pointer comes from a live reference in any case.
        // SAFETY: no access is made, and SSE (its target feature) is in the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>()) };
    }
    #[cfg(target_arch = "aarch64")]
    {
        // `prfm` is a hint: no architectural access, no fault; the address is a live reference's.
        // SAFETY: the instruction makes no memory access and touches no register but its input.
        unsafe {
            core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) r as *const T, options(nostack, readonly, preserves_flags))
        };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = r;
}

/// A mask with bit `i` set where `lanes[i] == value`.
#[inline(always)]
pub fn match_u32x16(lanes: &[u32; 16], value: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{
            __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps, _mm_set1_epi32,
        };
        // Each `_mm_loadu_si128` reads the 16 bytes of `lanes[4q..4q + 4]`, inside the borrowed
        // array since q < 4, at any alignment.
        // SAFETY: SSE2 (the target feature) is in the x86-64 baseline; every load is in bounds.
        unsafe {
            let v = _mm_set1_epi32(value as i32);
            let mut mask = 0u32;
            for q in 0..4 {
                let p = lanes.as_ptr().add(4 * q).cast::<__m128i>();
                let eq = _mm_cmpeq_epi32(_mm_loadu_si128(p), v);
                mask |= (_mm_movemask_ps(_mm_castsi128_ps(eq)) as u32) << (4 * q);
            }
            mask
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut mask = 0u32;
        for (i, &l) in lanes.iter().enumerate() {
            mask |= u32::from(l == value) << i;
        }
        mask
    }
}

/// `union bpf_attr`'s `test` member, up to `batch_size` (Linux 5.18+), padded to 8 bytes.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as a test run's context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Runs the XDP program `prog_fd` over `repeat` copies of `frame` in live-frames mode
/// (`BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel transmits what the program returns `XDP_TX` out of
/// interface `ifindex`, in batches of `batch` frames, on the calling thread's CPU. Returns when
/// it is done, or the `errno` the kernel refused the call with.
pub fn xdp_live_frames(prog_fd: i32, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> Result<(), i32> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    let ctx = XdpMd { data_end: frame.len() as u32, ingress_ifindex: ifindex, ..XdpMd::default() };
    let attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: core::mem::size_of::<XdpMd>() as u32,
        ctx_in: (&ctx as *const XdpMd) as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a live, fully initialised BPF_PROG_TEST_RUN attribute of the size passed; the buffers it points to (`frame`, `ctx`) outlive the call, and the kernel only reads them (no output buffers are given).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &attr as *const TestRunAttr,
            core::mem::size_of::<TestRunAttr>(),
        )
    };
    if r < 0 {
        // Read right after the failed call, before anything else can set it.
        return Err(errno());
    }
    Ok(())
}

/// The calling thread's `errno`.
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// `recv(fd, buf, 0)`: bytes read (0 at end of stream), or the `errno`.
#[inline]
pub fn recv(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    // A bad `fd` is an error, not UB; the null address and length ask for no source address.
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            0,
            core::ptr::null_mut::<libc::sockaddr>(),
            core::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// `send(fd, buf, MSG_NOSIGNAL)` (a closed peer is `EPIPE`, not a signal): bytes written, or
/// the `errno`.
#[inline]
pub fn send(fd: i32, buf: &[u8]) -> Result<usize, i32> {
    // A bad `fd` is an error, not UB; no destination address.
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            core::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// The most buffers one [`writev`] takes; more are left for the next call.
pub const WRITEV_MAX: usize = 16;

/// `writev(fd, bufs)` of the first [`WRITEV_MAX`] buffers: bytes written, or the `errno`. On a
/// socket whose peer closed this is `EPIPE` and a `SIGPIPE`, which the Rust runtime ignores.
#[inline]
pub fn writev(fd: i32, bufs: &[&[u8]]) -> Result<usize, i32> {
    let mut iov = [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; WRITEV_MAX];
    let n = bufs.len().min(WRITEV_MAX);
    for (v, b) in iov.iter_mut().zip(bufs) {
        *v = libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() };
    }
    // A bad `fd` is an error, not UB.
    // SAFETY: the first `n` iovecs describe live slices borrowed for the call; writev only reads.
    let r = unsafe { libc::syscall(libc::SYS_writev, fd, iov.as_ptr(), n as libc::c_int) };
    if r < 0 { Err(errno()) } else { Ok(r as usize) }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the workers' `now_ns` and of the XDP program's
/// `bpf_ktime_get_ns()`, so that both agree on a SYN cookie's time slot.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; CLOCK_MONOTONIC always exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs the XDP program `prog_fd` once over `frame` (`BPF_PROG_TEST_RUN`, nothing sent): its
/// return value and the frame as the program left it (it may have grown by up to 256 bytes), or
/// the `errno` the kernel refused the call with.
pub fn xdp_test_run(prog_fd: i32, frame: &[u8]) -> Result<(u32, Vec<u8>), i32> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut out = alloc::vec![0u8; frame.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_size_out: out.len() as u32,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a live, fully initialised BPF_PROG_TEST_RUN attribute of the size passed; `frame` outlives the call and is only read; `out` is `data_size_out` bytes, writable, and outlives the call, which writes at most that many.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            core::mem::size_of::<TestRunAttr>(),
        )
    };
    if r < 0 {
        // Read right after the failed call, before anything else can set it.
        return Err(errno());
    }
    out.truncate((attr.data_size_out as usize).min(out.len()));
    Ok((attr.retval, out))
}

#[cfg(test)]
mod tests {
    extern crate std;

    #[test]
    fn bare_socket_calls_move_bytes_and_report_errno() {
        use std::os::fd::AsRawFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        let mut buf = [0u8; 64];
        assert_eq!(super::recv(fb, &mut buf), Err(libc::EAGAIN), "nothing yet: EAGAIN");
        assert_eq!(super::send(fa, b"head "), Ok(5));
        let parts: [&[u8]; 3] = [b"one ", b"two ", b"three"];
        assert_eq!(super::writev(fa, &parts), Ok(13));
        assert_eq!(super::recv(fb, &mut buf), Ok(18));
        assert_eq!(&buf[..18], b"head one two three");
        // More buffers than one call takes: the first WRITEV_MAX go.
        let many = [&b"x"[..]; super::WRITEV_MAX + 4];
        assert_eq!(super::writev(fa, &many), Ok(super::WRITEV_MAX));
        drop(a);
        assert_eq!(super::recv(fb, &mut buf), Ok(super::WRITEV_MAX));
        assert_eq!(super::recv(fb, &mut buf), Ok(0), "end of stream");
        assert_eq!(super::send(-1, b"x"), Err(libc::EBADF));
    }

    #[test]
    fn match_u32x16_finds_every_lane() {
        let mut lanes = [0u32; 16];
        assert_eq!(super::match_u32x16(&lanes, 0), 0xffff);
        assert_eq!(super::match_u32x16(&lanes, 7), 0);
        for (i, l) in lanes.iter_mut().enumerate() {
            *l = 100 + i as u32;
        }
        lanes[3] = 7;
        lanes[15] = 7;
        assert_eq!(super::match_u32x16(&lanes, 7), (1 << 3) | (1 << 15));
        for i in [0usize, 5, 8, 12] {
            assert_eq!(super::match_u32x16(&lanes, 100 + i as u32), 1 << i);
        }
    }

    /// `prefetch` has no observable effect but timing and takes a shared reference, so there is
    /// no result to assert: this test checks only that it never faults — on every element of a
    /// slab, on the last one (at the allocation's edge), and on zero-sized values, whose
    /// references hold a dangling address (0x1 for `&()`). A prefetch that became a load would
    /// crash on the last.
    #[test]
    fn prefetch_does_not_fault() {
        let v = super::huge_slice(1 << 13, 1u64);
        for x in v.iter() {
            super::prefetch(x);
        }
        super::prefetch(&v[v.len() - 1]);
        super::prefetch(&());
        super::prefetch(&[0u64; 0]);
    }
}
