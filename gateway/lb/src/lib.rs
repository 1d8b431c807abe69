//! Sluice's L4 load-balancing core: services, Maglev, the IPVS schedulers, flows, NAT.
//!
//! Pure logic. No sockets, no clocks, no threads: time arrives as `now_ns`, frames arrive as
//! byte slices and are rewritten in place, and the caller decides what to do with the
//! [`engine::Verdict`]. That is what lets every behaviour here be tested without root and
//! benchmarked without a NIC.
//!
//! - [`service`]: services, backends and the compiled, immutable [`service::ServiceTable`].
//! - [`maglev`]: weighted, deterministic Maglev tables.
//! - [`sched`]: Maglev and rr, wrr, lc, sh, dh, sed, nq.
//! - [`flow`]: the fixed-capacity, bidirectional flow table with TCP/UDP tracking.
//! - [`affinity`]: `sessionAffinity: ClientIP`, and SNAT port choice.
//! - [`packet`], [`nat`]: parsing into offsets, and in-place rewrites with incremental checksums.
//! - [`engine`]: all of it per frame.
//! - [`stats`]: a worker's counters as the flat list published to the table file's stats region.
//! - [`image`]: a table generation as the versioned, offset-based bytes control publishes
//!   through the shared-memory table, and their validation.
//!
//! Hot path: yes ([`engine::L4::process`] and what it calls). No allocation after start, no
//! `unsafe`.
#![forbid(unsafe_code)]

pub mod addr;
pub mod affinity;
pub mod drop;
pub mod engine;
pub mod flow;
pub mod hash;
pub mod image;
pub mod maglev;
pub mod nat;
pub mod neigh;
pub mod packet;
pub mod sched;
pub mod service;
pub mod stats;

pub use addr::{Addr, Family};
pub use drop::DropReason;
pub use engine::{Config, Counters, L4, Verdict};
