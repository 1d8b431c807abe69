//! Sluice's control process: Kubernetes objects in, the published service table out.
//!
//! - [`objects`]: the objects read, as strict serde types.
//! - [`checked`]: the checks every object passes, whichever its source, and the typed values
//!   they produce.
//! - [`cluster`]: cluster mode — kube watchers and reflector stores, snapshots as [`load::Store`].
//! - [`leader`]: the leader's Lease, and LoadBalancer status written back.
//! - [`load`]: a directory of manifests → stores, validated and defaulted like the API server
//!   would, every problem reported with file, line, object and field.
//! - [`compile`]: stores → a [`sluice_model::service::TableSpec`] (pure: same stores, same table).
//! - [`metrics`]: control's own figures and the gateway workers' counters (from the table file's
//!   stats region) in the Prometheus text format.
//!
//! Not hot path. No `unsafe`.
#![forbid(unsafe_code)]

pub mod checked;
pub mod cluster;
pub mod compile;
pub mod leader;
pub mod load;
pub mod metrics;
pub mod objects;
