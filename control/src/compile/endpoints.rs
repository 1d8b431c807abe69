//! A Service port's endpoints: from its EndpointSlices when it has any (the endpoint
//! controller's output: in a cluster, always); else from the Pods its selector picks, derived as
//! the endpoint controller would (ready = the Pod's Ready condition and not being deleted; a
//! named `targetPort` resolved against the Pod's container ports); else from its v1 Endpoints.

use std::net::IpAddr;

use sluice_model::service::Conditions;

use super::Index;
use crate::checked::{AddressType, EndpointSlice, Endpoints, Pod, Service, ServicePort, TargetPort};
use crate::store::Store;

/// One endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint<'a> {
    pub(super) addr: IpAddr,
    pub(super) port: u16,
    pub(super) conditions: Conditions,
    /// The node it runs on.
    pub(super) node: Option<&'a str>,
}

/// The endpoints of the Service port `p` of `s`.
pub(super) fn of_port<'a>(
    index: &Index,
    store: &'a Store,
    s: &Service,
    p: &ServicePort,
) -> Vec<Endpoint<'a>> {
    let slices = index.slices_of(store, &s.namespace, &s.name);
    if !slices.is_empty() {
        return from_slices(&slices, p);
    }
    if !s.selector.is_empty() {
        return index
            .selected(store, &s.namespace, &s.selector)
            .into_iter()
            .flat_map(|pod| from_pod(pod, p))
            .collect();
    }
    index.endpoints_of(store, &s.namespace, &s.name).map(|e| from_endpoints(e, p)).unwrap_or_default()
}

/// The name Service port `p` is known by in endpoint ports (`""` when unnamed).
fn port_name(p: &ServicePort) -> &str {
    p.name.as_deref().unwrap_or("")
}

fn from_slices<'a>(slices: &[&'a EndpointSlice], p: &ServicePort) -> Vec<Endpoint<'a>> {
    let mut v = Vec::new();
    for slice in slices.iter().filter(|s| s.address_type != AddressType::Fqdn) {
        // Endpoint ports pair with Service ports by name and protocol.
        let Some(port) =
            slice.ports.iter().find(|sp| sp.serves(port_name(p), p.protocol)).and_then(|sp| sp.port)
        else {
            continue;
        };
        for e in &slice.endpoints {
            let node = e.node_name.as_deref();
            v.extend(e.addresses.iter().map(|&addr| Endpoint { addr, port, conditions: e.conditions, node }));
        }
    }
    v
}

/// The legacy form: `addresses` are ready, `notReadyAddresses` are not.
fn from_endpoints<'a>(e: &'a Endpoints, p: &ServicePort) -> Vec<Endpoint<'a>> {
    let mut v = Vec::new();
    for sub in &e.subsets {
        let Some(port) =
            sub.ports.iter().find(|ep| ep.serves(port_name(p), p.protocol)).and_then(|ep| ep.port)
        else {
            continue;
        };
        for (addrs, ready) in [(&sub.addresses, true), (&sub.not_ready_addresses, false)] {
            let conditions = Conditions { ready, serving: ready, terminating: false };
            v.extend(addrs.iter().map(|a| Endpoint {
                addr: a.ip,
                port,
                conditions,
                node: a.node_name.as_deref(),
            }));
        }
    }
    v
}

/// The endpoints one Pod gives a Service port, as the endpoint controller derives them.
fn from_pod<'a>(pod: &'a Pod, p: &ServicePort) -> Vec<Endpoint<'a>> {
    if pod.finished {
        return Vec::new();
    }
    let port = match &p.target_port {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod.port_named(name, p.protocol),
    };
    let Some(port) = port else { return Vec::new() };
    let conditions =
        Conditions { ready: pod.ready && !pod.terminating, serving: pod.ready, terminating: pod.terminating };
    let node = pod.node_name.as_deref();
    pod.ips.iter().map(|&addr| Endpoint { addr, port, conditions, node }).collect()
}
