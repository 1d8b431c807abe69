//! The shared-memory slot channel between the two processes: how control publishes a table
//! generation and how the gateway adopts it, without either ever waiting for the other, and the
//! stats region through which the gateway's workers publish their counters back.
//!
//! - [`protocol`]: the lock-free publication protocol (one Release store to publish, one Acquire
//!   load to check for a new generation, slots reused only when no reader can still see them),
//!   independent of where its memory lives, so that loom can check it.
//! - [`shm`]: the shared-memory file (mode 0600): control block, slots, stats region, the
//!   [`shm::Publisher`] (control) and the [`shm::Reader`], each validating what it opens and maps
//!   (no symbolic link, our own file, not writable by others, geometry taken once and bounded),
//!   and noticing a file truncated or replaced under it.
//! - `sigbus` (private): a truncation under a mapping turns it into private zeros instead of a
//!   SIGBUS that kills the process.
//!
//! Who reads: the gateway's main thread holds the one full reader; it checks for a new
//! generation every few milliseconds, validates and decodes it once, and hands the decoded table
//! to every worker. Each worker holds a stats-only reader record ([`shm::Reader::open_stats_only`]),
//! which never adopts a generation and so never holds a slot back from the writer; it only
//! publishes the worker's counters. Nothing here is on the per-packet path.
//!
//! A slot's payload is opaque bytes with a checksum here; what the bytes mean (the table image,
//! positions as offsets, never pointers) is `sluice-model`'s `image`.
//!
//! Unsafe: yes, in [`shm`], [`state`] and `sigbus` only — the files are memory shared with other
//! processes.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod protocol;
#[cfg(not(loom))]
pub mod shm;
#[cfg(not(loom))]
mod sigbus;
#[cfg(not(loom))]
pub mod state;

pub use protocol::{PublishError, Refresh, Refusal};

/// Where control publishes the table, and the gateway reads it, unless told otherwise.
pub const DEFAULT_PATH: &str = "/dev/shm/sluice-table";

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(not(loom))]
pub use shm::{FileId, FileState, Geometry, OpenError, Publisher, Reader};
