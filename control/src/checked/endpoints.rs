//! EndpointSlices (discovery.k8s.io/v1) and v1 Endpoints: addresses parsed, ports typed,
//! conditions resolved as the API documents their absence (`docs/kubernetes.md` §2).

use std::net::IpAddr;

use sluice_model::service::Conditions;

use super::{Checked, Named, PortProtocol, Problem, address, choose, namespace_of, port_number, verdict};
use crate::objects;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// Host names (deprecated; nothing forwards to them).
    Fqdn,
}

/// One port of an EndpointSlice or of a v1 Endpoints subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    /// The Service port's name it serves (`""` for an unnamed port).
    pub name: String,
    /// Its protocol.
    pub protocol: PortProtocol,
    /// The port endpoints listen on; `None` when the slice gives none (or 0), which kube-proxy
    /// reads as no port. Always set for v1 Endpoints.
    pub port: Option<u16>,
}

impl EndpointPort {
    /// Whether this is the port of the Service port named `name` (`""` when unnamed) and of
    /// `protocol`: endpoint ports pair with Service ports by name and protocol.
    pub fn serves(&self, name: &str, protocol: PortProtocol) -> bool {
        self.name == name && self.protocol == protocol
    }
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Ready, serving, terminating; an absent condition taken as the API documents (ready and
    /// serving: yes, terminating: no).
    pub conditions: Conditions,
    /// The node it runs on.
    pub node_name: Option<String>,
}

/// An EndpointSlice, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The Service it belongs to (its `kubernetes.io/service-name` label), if any.
    pub service: Option<String>,
    /// `addressType`.
    pub address_type: AddressType,
    /// Its endpoints (none are kept for an FQDN slice: there is no address to forward to).
    pub endpoints: Vec<SliceEndpoint>,
    /// Its ports.
    pub ports: Vec<EndpointPort>,
}

impl Named for EndpointSlice {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks an EndpointSlice.
pub fn endpoint_slice(s: objects::EndpointSlice) -> Checked<EndpointSlice> {
    const TYPES: [(&str, AddressType); 3] =
        [("IPv4", AddressType::Ipv4), ("IPv6", AddressType::Ipv6), ("FQDN", AddressType::Fqdn)];
    let mut problems = Vec::new();
    let address_type =
        choose("addressType", &s.address_type, &TYPES, &mut problems).unwrap_or(AddressType::Fqdn);
    let endpoints = if address_type == AddressType::Fqdn {
        Vec::new()
    } else {
        s.endpoints.iter().enumerate().map(|(i, e)| slice_endpoint(i, e, &mut problems)).collect()
    };
    let ports = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = |f: &str| format!("ports[{i}].{f}");
            EndpointPort {
                name: p.name.clone().unwrap_or_default(),
                protocol: PortProtocol::check(&at("protocol"), p.protocol.as_deref(), &mut problems),
                port: p.port.filter(|&n| n != 0).map(|n| port_number(&at("port"), n, &mut problems)),
            }
        })
        .collect();
    let service = s.metadata.labels.get(SERVICE_NAME_LABEL).filter(|n| !n.is_empty()).cloned();
    let checked = EndpointSlice {
        namespace: namespace_of(&s.metadata).to_owned(),
        name: s.metadata.name.clone().unwrap_or_default(),
        service,
        address_type,
        endpoints,
        ports,
    };
    verdict(checked, problems)
}

fn slice_endpoint(i: usize, e: &objects::Endpoint, problems: &mut Vec<Problem>) -> SliceEndpoint {
    let addresses = e
        .addresses
        .iter()
        .enumerate()
        .filter_map(|(j, a)| address(&format!("endpoints[{i}].addresses[{j}]"), a, problems))
        .collect();
    // discovery/v1 EndpointConditions: unset ready and serving mean "unknown, assume yes";
    // unset terminating "no".
    let ready = e.conditions.ready.unwrap_or(true);
    let conditions = Conditions {
        ready,
        serving: e.conditions.serving.unwrap_or(ready),
        terminating: e.conditions.terminating.unwrap_or(false),
    };
    SliceEndpoint { addresses, conditions, node_name: e.node_name.clone() }
}

/// One address of a v1 Endpoints subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddress {
    /// The address.
    pub ip: IpAddr,
    /// The node it is on.
    pub node_name: Option<String>,
}

/// `Endpoints.subsets[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSubset {
    /// Ready addresses.
    pub addresses: Vec<EndpointAddress>,
    /// Addresses not ready.
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// The ports.
    pub ports: Vec<EndpointPort>,
}

/// v1 Endpoints, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the Service's).
    pub name: String,
    /// Its subsets.
    pub subsets: Vec<EndpointSubset>,
}

impl Named for Endpoints {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks v1 Endpoints.
pub fn endpoints(e: objects::Endpoints) -> Checked<Endpoints> {
    let mut problems = Vec::new();
    let subsets = e.subsets.iter().enumerate().map(|(i, sub)| subset(i, sub, &mut problems)).collect();
    let checked = Endpoints {
        namespace: namespace_of(&e.metadata).to_owned(),
        name: e.metadata.name.clone().unwrap_or_default(),
        subsets,
    };
    verdict(checked, problems)
}

fn subset(i: usize, sub: &objects::EndpointSubset, problems: &mut Vec<Problem>) -> EndpointSubset {
    let addresses = |field: &str, list: &[objects::EndpointAddress], problems: &mut Vec<Problem>| {
        list.iter()
            .enumerate()
            .filter_map(|(j, a)| {
                let ip = address(&format!("subsets[{i}].{field}[{j}].ip"), &a.ip, problems)?;
                Some(EndpointAddress { ip, node_name: a.node_name.clone() })
            })
            .collect::<Vec<_>>()
    };
    let ready = addresses("addresses", &sub.addresses, problems);
    let not_ready = addresses("notReadyAddresses", &sub.not_ready_addresses, problems);
    let ports = sub
        .ports
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let at = |f: &str| format!("subsets[{i}].ports[{j}].{f}");
            EndpointPort {
                name: p.name.clone().unwrap_or_default(),
                protocol: PortProtocol::check(&at("protocol"), p.protocol.as_deref(), problems),
                port: Some(port_number(&at("port"), p.port, problems)),
            }
        })
        .collect();
    EndpointSubset { addresses: ready, not_ready_addresses: not_ready, ports }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_resolved_and_addresses_parsed() {
        let s: objects::EndpointSlice = serde_norway::from_str(
            "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080}, {port: 0}]\nendpoints:\n  - addresses: [198.18.1.1]\n  - addresses: [198.18.1.2]\n    conditions: {ready: false, serving: true, terminating: true}\n    nodeName: gw-1\n",
        )
        .unwrap();
        let s = endpoint_slice(s).unwrap();
        assert_eq!(s.service.as_deref(), Some("web"));
        assert_eq!(
            s.ports[0],
            EndpointPort { name: "http".into(), protocol: PortProtocol::Tcp, port: Some(8080) }
        );
        assert_eq!(s.ports[1].port, None, "port 0 is no port");
        assert_eq!(s.endpoints[0].conditions, Conditions::READY);
        assert_eq!(s.endpoints[1].conditions, Conditions::DRAINING);
        assert_eq!(s.endpoints[1].addresses, ["198.18.1.2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_bad_address_or_port_is_named() {
        let s: objects::EndpointSlice = serde_norway::from_str(
            "metadata: {name: web-1}\naddressType: IPv4\nports: [{port: 70000, protocol: udp}]\nendpoints: [{addresses: [nope]}]\n",
        )
        .unwrap();
        let problems: Vec<String> = endpoint_slice(s).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "endpoints[0].addresses[0]: \"nope\" is not an IP address",
                "ports[0].protocol: \"udp\" is not one of TCP, UDP, SCTP; did you mean \"UDP\"?",
                "ports[0].port: 70000 is not a port (1..=65535)",
            ]
        );
    }
}
