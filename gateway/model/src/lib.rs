//! The contract between Sluice's processes: what control compiles and publishes, and what every
//! gateway engine reads. Control, the L4 engine, the L7 stage and the XDP steering plan all
//! depend on this crate; none of them depends on another's engine.
//!
//! - [`addr`]: one address type for both families.
//! - [`hash`]: hash functions with fixed definitions (backend choice must agree across nodes).
//! - [`service`]: services, backends, frontends, and the compiled, immutable
//!   [`service::ServiceTable`] with its per-packet lookups.
//! - [`maglev`]: weighted, deterministic Maglev tables.
//! - [`image`]: a table generation as the versioned, offset-based bytes control publishes
//!   through the shared-memory table, its layout written once ([`image::layout`]), and their
//!   validation.
//! - [`drop`], [`counters`]: every drop reason and every counter a worker publishes, each
//!   written once, and the published layout control reads.
//! - [`ports`]: the SNAT, NodePort and ephemeral port ranges.
//!
//! Not hot path to build; the lookups of [`service::ServiceTable`] are. No `unsafe`, no I/O.
#![forbid(unsafe_code)]

pub mod addr;
pub mod counters;
pub mod drop;
pub mod hash;
pub mod image;
pub mod maglev;
pub mod ports;
pub mod service;

pub use addr::{Addr, Family};
pub use counters::{Counter, Counters};
pub use drop::DropReason;
pub use ports::PortRange;
