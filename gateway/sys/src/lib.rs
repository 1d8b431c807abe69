//! The few primitives Sluice's data plane needs that safe Rust cannot express, each behind a
//! safe function whose contract is stated here. This crate, `xsk` and `table` are the only homes
//! of `unsafe` in the workspace.
//!
//! - [`prefetch`]: a cache prefetch hint, so a batch can issue all its flow-table loads before
//!   it needs any of them (a plain load stalls retirement; a prefetch does not).
//!
//! Hot path: yes. No allocation.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

/// Hints the CPU to bring the cache line holding `*r` into all cache levels.
///
/// A hint only: it has no observable effect besides timing, never faults, and is a no-op on
/// targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` only hints the cache hierarchy; it performs no architectural
        // memory access and cannot fault, and SSE (which provides it) is part of the x86-64
        // baseline, so the target feature is always present. The pointer comes from a live
        // reference in any case.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>()) };
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: `prfm` is a hint that performs no architectural access and cannot fault; the
        // address comes from a live reference.
        unsafe {
            core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) r as *const T, options(nostack, readonly, preserves_flags))
        };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_is_harmless() {
        let v = [1u64; 64];
        for x in &v {
            super::prefetch(x);
        }
        assert_eq!(v.iter().sum::<u64>(), 64);
    }
}
