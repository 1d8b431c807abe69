//! The service table in shared memory: how the control process publishes a table generation
//! and how gateway workers adopt it, without either ever waiting for the other.
//!
//! - [`protocol`]: the lock-free publication protocol (one Release store to publish, one Acquire
//!   load per batch to check, slots reused only when no reader can see them), independent of
//!   where its memory lives, so that loom can check it.
//! - [`shm`]: the shared-memory file (mode 0600): control block, slots, the
//!   [`shm::Publisher`] (control) and [`shm::Reader`] (one per worker), each validating what it
//!   maps.
//!
//! A slot's payload is opaque bytes with a checksum here; the encoding of services, backends,
//! Maglev arrays and SNAT pools into it (positions as offsets, never pointers) is layered on top.
//!
//! Unsafe: yes, in [`shm`] only — the file is memory shared with other processes. Hot path:
//! [`shm::Reader::refresh`] (one atomic load when nothing changed) and [`shm::Reader::payload`].
#![deny(unsafe_op_in_unsafe_fn)]

pub mod protocol;
#[cfg(not(loom))]
pub mod shm;

pub use protocol::{PublishError, Refresh, Refusal};

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(not(loom))]
pub use shm::{Geometry, OpenError, Publisher, Reader};
