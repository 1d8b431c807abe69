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
//! - [`syncookie`]: the SYN cookies the XDP program makes and the L4 engine checks.
//! - [`route`]: Ingress rules in typed form and the merged route table the L7 stage routes by,
//!   with the conflicts settled in merging.
//! - [`route_stats`]: what the L7 stage counts per route (statuses, durations), and the rows it
//!   publishes them in.
//! - [`policy`]: what an Ingress's annotations (ingress-nginx's) ask of the L7 stage, as typed
//!   values, and the grammars they are read by.
//! - [`l7`]: the L7 half of a generation: routes, the upstreams they name, certificates and the
//!   addresses Ingresses are served on.
//!
//! Not hot path to build; the lookups of [`service::ServiceTable`] are. No `unsafe`, no I/O.
#![forbid(unsafe_code)]

/// An enum of named things, each with a one-line doc, a stable snake_case name and that doc as
/// its help text, and the list of all of them in order (for arrays indexed by the enum): how
/// [`Counter`] and [`DropReason`] are written, each once.
macro_rules! named {
    ($(#[doc = $what:literal])* $vis:vis enum $ty:ident {
        $(#[doc = $doc:literal] $name:ident => $label:literal,)*
    }) => {
        $(#[doc = $what])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        $vis enum $ty {
            $(#[doc = $doc] $name,)*
        }

        impl $ty {
            /// Every one, in order (the order of a published array of counts).
            pub const ALL: &'static [$ty] = &[$($ty::$name,)*];
            /// How many (the length of an array indexed by them).
            pub const COUNT: usize = $ty::ALL.len();

            /// A stable snake_case name for metrics and logs.
            pub const fn name(self) -> &'static str {
                match self { $($ty::$name => $label,)* }
            }

            /// What it means (its one line of documentation), for a metric's help text.
            pub fn help(self) -> &'static str {
                match self { $($ty::$name => $doc.trim_ascii(),)* }
            }
        }
    };
}

pub mod addr;
pub mod counters;
pub mod drop;
pub mod hash;
pub mod image;
pub mod l7;
pub mod maglev;
pub mod policy;
pub mod ports;
pub mod route;
pub mod route_stats;
pub mod service;
pub mod sip;
pub mod syncookie;

pub use addr::{Addr, Family};
pub use counters::{Counter, Counters, Gauge};
pub use drop::DropReason;
pub use ports::PortRange;
