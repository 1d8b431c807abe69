//! What a worker reads frames from and writes them to.
//!
//! - [`port`]: the [`Port`] trait (receive a batch, transmit a batch, hand a frame to the
//!   kernel, recycle) and frame descriptors. The AF_XDP socket (`sluice-xsk`) implements it in
//!   production, the packet generator drives it, the worker polls it.
//! - [`mem`]: [`mem::MemPort`], a port over one preallocated buffer, for tests and benchmarks.
//!
//! Hot path: yes (the trait's calls are per batch). No `unsafe`.
#![forbid(unsafe_code)]

pub mod mem;
pub mod port;

pub use mem::MemPort;
pub use port::{Desc, Port};
