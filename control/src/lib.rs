//! Sluice's control process: Kubernetes objects in, the published service table out.
//!
//! Sources → store → compile → publish, one module each, dependencies pointing one way
//! (`objects` ← `checked` ← `store` ← `compile` ← `publish`; `load` and `cluster` fill the
//! store, `metrics` is read by `publish` and the binary):
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
//! - [`l2`]: L2 mode — which VIPs are in it, the election of one node per VIP (a peer protocol
//!   in manifest mode, Leases in cluster mode), and each VIP's role in the published table.
//! - [`check`]: `sluice-control check`, the migration report for ingress-nginx's Ingresses.
//! - [`compile`]: a store → a [`sluice_model::service::TableSpec`] (pure: same store, same table).
//! - [`publish`]: the table built and published to the gateway, and the publication logged.
//! - [`metrics`]: control's own figures and the gateway workers' counters (from the table file's
//!   stats region), served over HTTP for Prometheus.
//!
//! Not hot path. No `unsafe`.
#![forbid(unsafe_code)]

pub mod bird;
pub mod check;
pub mod checked;
pub mod cluster;
pub mod compile;
pub mod l2;
pub mod leader;
pub mod load;
pub mod metrics;
pub mod objects;
pub mod publish;
pub mod store;
