//! The L2 election in cluster mode: one Kubernetes Lease (coordination.k8s.io/v1) per L2 VIP, in
//! the namespace control runs in (`--lease-namespace`), named `sluice-l2-<address>` (dots and
//! colons as dashes), its holder the node's name. The API server's optimistic concurrency is
//! the consensus: of two nodes writing one Lease at one resourceVersion, one gets 409 Conflict.
//!
//! - A candidate takes a Lease that is absent, released (no holder), or not renewed for its
//!   `leaseDurationSeconds` **as this node observed it**: the time is measured on this node's
//!   monotonic clock from when it last saw the Lease change (its resourceVersion), as client-go's
//!   leader election does, so the nodes' clocks need not agree.
//! - The holder renews every [`Leases::renew_every`], and counts itself the holder only while its
//!   last successful renewal is younger than the duration less [`SAFETY_MARGIN`]: a holder cut off
//!   from the API server stops answering ARP before another can take the Lease over.
//! - A Lease of a VIP this node no longer contends for (not a candidate any more, or its gateway
//!   stopped serving) is released: its holder cleared, so another takes it at once.
//!
//! Takeover after a holder dies: its duration after its last renewal, plus up to one look
//! ([`Leases::look_every`]): 2.0–2.1 s with the defaults (2 s, 250 ms; control/tests/cluster.rs
//! measures it), at most about 2.75 s after the node died (it renews every 0.5 s). The cost: a GET per VIP per look on each candidate,
//! and a PUT per held VIP per renewal.
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

/// How long before its Lease expires (as others see it) a holder stops counting itself one.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(500);
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(750);

/// The Lease of a VIP.
pub fn lease_name(vip: IpAddr) -> String {
    format!("sluice-l2-{}", vip.to_string().replace(['.', ':'], "-"))
}

/// What is known of one VIP's Lease.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Its resourceVersion when last read, and when it was first seen at that version.
    version: Option<(String, Instant)>,
    /// When this node last renewed (or took) it successfully.
    renewed: Option<Instant>,
}

/// The Leases this node contends for.
pub struct Leases {
    api: Api<Lease>,
    node: String,
    duration_s: i32,
    seen: BTreeMap<IpAddr, Seen>,
    last_look: Option<Instant>,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Leases {
    /// Contending as `node` for Leases in `namespace`, each held for `duration_s` seconds.
    pub fn new(client: Client, namespace: &str, node: &str, duration_s: i32) -> Leases {
        Leases {
            api: Api::namespaced(client, namespace),
            node: node.into(),
            duration_s: duration_s.max(1),
            seen: BTreeMap::new(),
            last_look: None,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_s as u64)
    }

    /// How often the holder renews: a quarter of the duration.
    pub fn renew_every(&self) -> Duration {
        self.duration() / 4
    }

    /// How often the Leases are looked at: an eighth of the duration (250 ms for 2 s).
    pub fn look_every(&self) -> Duration {
        self.duration() / 8
    }

    /// The VIPs this node holds now.
    pub fn held(&self) -> BTreeSet<IpAddr> {
        let valid = self.duration().saturating_sub(SAFETY_MARGIN);
        self.seen
            .iter()
            .filter(|(_, s)| s.renewed.is_some_and(|t| t.elapsed() < valid))
            .map(|(v, _)| *v)
            .collect()
    }

    /// Looks at, takes, renews or releases the Leases, when [`Self::look_every`] has passed:
    /// `candidates` are the VIPs this node contends for (none when its gateway does not serve).
    /// Returns what it holds afterwards.
    pub async fn step(&mut self, candidates: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        if self.last_look.is_some_and(|t| t.elapsed() < self.look_every()) {
            return self.held();
        }
        self.last_look = Some(Instant::now());
        // Release what is no longer contended for.
        let gone: Vec<IpAddr> = self.seen.keys().filter(|v| !candidates.contains(v)).copied().collect();
        for v in gone {
            if let Some(s) = self.seen.remove(&v)
                && s.renewed.is_some()
            {
                self.release(v).await;
            }
        }
        let steps: Vec<_> =
            candidates.iter().map(|&v| (v, self.seen.get(&v).cloned().unwrap_or_default())).collect();
        let results = futures::future::join_all(steps.into_iter().map(|(v, s)| {
            let (api, node, duration_s) = (self.api.clone(), self.node.clone(), self.duration_s);
            let (renew_every, duration) = (self.renew_every(), self.duration());
            async move {
                let r = tokio::time::timeout(
                    REQUEST_TIMEOUT * 2,
                    one(&api, &node, duration_s, v, s.clone(), renew_every, duration),
                )
                .await;
                match r {
                    Ok(Ok(s)) => (v, s),
                    Ok(Err(e)) => {
                        warn!("L2 Lease {}: {e}", lease_name(v));
                        (v, s)
                    }
                    Err(_) => {
                        warn!("L2 Lease {}: the API server did not answer in time", lease_name(v));
                        (v, s)
                    }
                }
            }
        }))
        .await;
        for (v, s) in results {
            self.seen.insert(v, s);
        }
        self.held()
    }

    /// Clears the holder of VIP `v`'s Lease, if this node holds it.
    async fn release(&self, v: IpAddr) {
        let name = lease_name(v);
        let Ok(Ok(Some(mut lease))) = tokio::time::timeout(REQUEST_TIMEOUT, self.api.get_opt(&name)).await
        else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.node) {
            return;
        }
        spec.holder_identity = None;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.api.replace(&name, &PostParams::default(), &lease))
            .await
        {
            Ok(Ok(_)) => info!("L2 Lease {name}: released"),
            Ok(Err(e)) => warn!("L2 Lease {name}: release: {e}"),
            Err(_) => warn!("L2 Lease {name}: release: the API server did not answer in time"),
        }
    }
}

/// One VIP's step: reads its Lease, then takes, renews or leaves it. Returns what is known of it.
async fn one(
    api: &Api<Lease>,
    node: &str,
    duration_s: i32,
    v: IpAddr,
    mut s: Seen,
    renew_every: Duration,
    duration: Duration,
) -> Result<Seen, kube::Error> {
    let name = lease_name(v);
    let now = Instant::now();
    let ts = Timestamp::now();
    let Some(mut lease) = api.get_opt(&name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.into()),
                lease_duration_seconds: Some(duration_s),
                acquire_time: Some(MicroTime(ts)),
                renew_time: Some(MicroTime(ts)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match api.create(&PostParams::default(), &lease).await {
            Ok(l) => {
                info!("L2 Lease {name}: taken (it was absent)");
                s.renewed = Some(now);
                s.version = l.metadata.resource_version.map(|r| (r, now));
            }
            Err(e) if conflict(&e) => s.renewed = None,
            Err(e) => return Err(e),
        }
        return Ok(s);
    };
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    if s.version.as_ref().is_none_or(|(r, _)| *r != version) {
        s.version = Some((version, now));
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let ours = holder.as_deref() == Some(node);
    if ours {
        if s.renewed.is_some_and(|t| t.elapsed() < renew_every) {
            return Ok(s);
        }
    } else {
        s.renewed = None;
        let their = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_s).max(1) as u64);
        let unchanged_for = s.version.as_ref().map_or(Duration::ZERO, |(_, since)| now - *since);
        if holder.is_some() && unchanged_for < their.max(duration) {
            return Ok(s);
        }
        spec.holder_identity = Some(node.into());
        spec.acquire_time = Some(MicroTime(ts));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(duration_s);
    spec.renew_time = Some(MicroTime(ts));
    match api.replace(&name, &PostParams::default(), &lease).await {
        Ok(l) => {
            if !ours {
                info!("L2 Lease {name}: taken from {}", holder.as_deref().unwrap_or("nobody (released)"));
            }
            s.renewed = Some(now);
            s.version = l.metadata.resource_version.map(|r| (r, now));
        }
        Err(e) if conflict(&e) => s.renewed = None,
        Err(e) => return Err(e),
    }
    Ok(s)
}
