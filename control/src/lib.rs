//! Sluice's control process: Kubernetes objects in, the published service table out.
//!
//! - [`objects`]: the objects read, as strict serde types.
//! - [`load`]: a directory of manifests → stores, validated and defaulted like the API server
//!   would, every problem reported with file, line, object and field.
//! - [`compile`]: stores → a [`sluice_lb::service::TableSpec`] (pure: same stores, same table).
//! - [`metrics`]: control's own figures and the gateway workers' counters (from the table file's
//!   stats region) in the Prometheus text format.
//!
//! Not hot path. No `unsafe`.
#![forbid(unsafe_code)]

pub mod compile;
pub mod load;
pub mod metrics;
pub mod objects;
