//! Sluice's control process: Kubernetes objects in, the published service table out.
//!
//! Sources → store → compile, one module each, dependencies pointing one way
//! (`objects` ← `checked` ← `store` ← `compile`; `load` and `cluster` fill the store):
//!
//! - [`objects`]: the objects read, as strict serde types.
//! - [`checked`]: the checks every object passes, whichever its source, and the typed values
//!   they produce (what compile reads).
//! - [`store`]: the checked objects, and the changes made to them since the last compile.
//! - [`load`]: a directory of manifests → a store, every problem reported with file, line,
//!   object and field.
//! - [`cluster`]: cluster mode — kube watchers and reflector stores, synced into a store through
//!   the same checks.
//! - [`leader`]: the leader's Lease, and LoadBalancer status written back.
//! - [`compile`]: a store → a [`sluice_model::service::TableSpec`] (pure: same store, same table).
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
pub mod store;
