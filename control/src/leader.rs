//! The leader's duties in cluster mode: holding a Lease, and writing each LoadBalancer Service's
//! address, and the address each Ingress of Sluice's is served on, to their
//! `status.loadBalancer.ingress`.
//!
//! kube-rs has no leader election (`docs/kubernetes.md` §6), so this is the Lease protocol by hand
//! (coordination.k8s.io/v1): take the Lease when it is absent or its holder has not renewed it
//! for `leaseDurationSeconds`, renew it while holding it; every write carries the
//! resourceVersion read, so of two contenders one gets a 409 Conflict and is not the leader.
//! Every control process publishes the table (a per-node duty); only the leader writes status.
//!
//! Status is written by server-side apply as field manager `sluice.io/lb`, and only when the
//! object's status does not already say it — the watch brings our own write back, and writing
//! again would loop. An Ingress's entry is an `IngressLoadBalancerIngress` (`ip`, `hostname`,
//! `ports`; no `ipMode`, which is a Service's): Sluice writes `ip` alone, so a status that also
//! names a host name is not "already said" and is written over (the list is atomic).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service as KService;
use k8s_openapi::api::networking::v1::Ingress as KIngress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::checked::{Ingress, Service};

/// The field manager of our status writes.
pub const FIELD_MANAGER: &str = "sluice.io/lb";

/// A Lease this process contends for.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_s: i32,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderLease {
    /// The Lease `namespace/name`, held as `identity` for `duration_s` seconds per renewal.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration_s: i32) -> LeaderLease {
        LeaderLease {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration_s,
        }
    }

    /// Takes or renews the Lease; true if this process holds it now.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_s),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let ours = spec.holder_identity.as_deref() == Some(&self.identity);
        let duration =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(self.duration_s)));
        let expired =
            spec.renew_time.as_ref().is_none_or(|t| t.0.saturating_add(duration).is_ok_and(|end| end < now));
        if !ours && !expired {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(self.duration_s);
        spec.renew_time = Some(MicroTime(now));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Writes `ips` to the Service's `status.loadBalancer.ingress` unless it already says exactly
/// that; returns whether it wrote.
pub async fn write_load_balancer_status(
    client: Client,
    svc: &Service,
    ips: &[std::net::IpAddr],
) -> Result<bool, kube::Error> {
    if svc.status_ips == ips {
        return Ok(false);
    }
    let ingress: Vec<serde_json::Value> =
        ips.iter().map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"})).collect();
    let patch = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "status": {"loadBalancer": {"ingress": ingress}},
    });
    let api: Api<KService> = Api::namespaced(client, &svc.namespace);
    api.patch_status(&svc.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

/// Releases a Service's LoadBalancer address: applies an empty `status.loadBalancer` as our field
/// manager. Server-side apply then removes the fields this manager set and no longer sets — ours
/// only: an address another implementation wrote stays.
pub async fn clear_load_balancer_status(client: Client, svc: &Service) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "status": {"loadBalancer": {}},
    });
    let api: Api<KService> = Api::namespaced(client, &svc.namespace);
    api.patch_status(&svc.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Writes `ips` to the Ingress's `status.loadBalancer.ingress` unless it already says exactly
/// that (those addresses, in that order, and no host name); returns whether it wrote.
pub async fn write_ingress_status(
    client: Client,
    ing: &Ingress,
    ips: &[std::net::IpAddr],
) -> Result<bool, kube::Error> {
    if ing.status_ips == ips && ing.status_hostnames.is_empty() {
        return Ok(false);
    }
    let ingress: Vec<serde_json::Value> =
        ips.iter().map(|ip| serde_json::json!({"ip": ip.to_string()})).collect();
    let patch = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "status": {"loadBalancer": {"ingress": ingress}},
    });
    let api: Api<KIngress> = Api::namespaced(client, &ing.namespace);
    api.patch_status(&ing.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

/// Releases an Ingress's address: applies an empty `status.loadBalancer` as our field manager,
/// which removes what Sluice wrote and leaves what another controller wrote.
pub async fn clear_ingress_status(client: Client, ing: &Ingress) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "status": {"loadBalancer": {}},
    });
    let api: Api<KIngress> = Api::namespaced(client, &ing.namespace);
    api.patch_status(&ing.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}
