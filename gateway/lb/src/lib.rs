//! Sluice's L4 engine: flows, the IPVS schedulers, session affinity, NAT — per frame.
//!
//! Pure logic. No sockets, no clocks, no threads: time arrives as `now_ns`, frames arrive as
//! byte slices and are rewritten in place, and the caller decides what to do with the
//! [`engine::Verdict`]. That is what lets every behaviour here be tested without root and
//! benchmarked without a NIC. What the engine forwards from — the service table, Maglev, the
//! counters' names — is the contract, in `sluice-model`.
//!
//! - [`packet`]: parsing a frame into the offsets the engine works on.
//! - [`sched`]: Maglev and rr, wrr, lc, sh, dh, sed, nq.
//! - [`flow`]: the fixed-capacity, bidirectional flow table with TCP/UDP tracking.
//! - [`affinity`]: `sessionAffinity: ClientIP`, and SNAT port choice.
//! - [`nat`]: in-place rewrites with incremental checksums.
//! - [`synproxy`]: connections opened through a SYN cookie: the handshake with the backend and
//!   the sequence shift.
//! - [`vip`]: owning service addresses on the wire: ARP and neighbour solicitations for them
//!   answered, and the gratuitous announcements of a new one.
//! - [`journal`]: flow records that outlive the process; [`peers`]: the flows other gateways
//!   forward, from their flow sync.
//! - [`engine`]: all of it per frame.
//!
//! Hot path: yes ([`engine::L4::process`] and what it calls). No allocation after start, no
//! `unsafe`.
#![forbid(unsafe_code)]

pub mod affinity;
pub mod engine;
pub mod flow;
pub mod journal;
pub mod nat;
pub mod packet;
pub mod peers;
pub mod sched;
pub mod synproxy;
pub mod vip;

pub use engine::{Config, L4, Verdict};
