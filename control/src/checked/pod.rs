//! Pods: what the endpoint controller reads of them (addresses, readiness, deletion, node, named
//! container ports), typed once; the rest of a PodSpec is checked by field name only.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_norway::Value;

use super::{
    Checked, Named, PortProtocol, Problem, address, choose, keys, namespace_of, port_number, unknown_names,
    verdict,
};
use crate::objects::{self, CONTAINER_FIELDS, CONTAINER_PORT_FIELDS, POD_SPEC_FIELDS};

/// A named container port (what a named `targetPort` resolves to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// Its name.
    pub name: String,
    /// Its protocol.
    pub protocol: PortProtocol,
    /// `containerPort`.
    pub port: u16,
}

/// A Pod, checked: what makes it an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (what selectors match).
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`: the node it runs on.
    pub node_name: Option<String>,
    /// `status.podIPs`, then `status.podIP` if not among them.
    pub ips: Vec<IpAddr>,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// It is being deleted (`metadata.deletionTimestamp`).
    pub terminating: bool,
    /// Its phase is `Succeeded` or `Failed`: its containers will not run again.
    pub finished: bool,
    /// Its containers' named ports.
    pub ports: Vec<ContainerPort>,
}

impl Pod {
    /// The number of its container port called `name` for `protocol`.
    pub fn port_named(&self, name: &str, protocol: PortProtocol) -> Option<u16> {
        self.ports.iter().find(|p| p.name == name && p.protocol == protocol).map(|p| p.port)
    }
}

impl Named for Pod {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a Pod: its spec's field names, its container ports, its addresses and phase.
pub fn pod(p: objects::Pod) -> Checked<Pod> {
    const PHASES: [(&str, bool); 5] =
        [("Pending", false), ("Running", false), ("Succeeded", true), ("Failed", true), ("Unknown", false)];
    let mut problems = pod_spec_fields("spec", &p.spec);
    let ports = container_ports(&p.spec, &mut problems);
    let node_name = match p.spec.get("nodeName") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => {
            problems.push(Problem::new("spec.nodeName", "must be a node's name (a string)"));
            None
        }
    };
    let status = p.status.unwrap_or_default();
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .enumerate()
        .filter_map(|(i, ip)| address(&format!("status.podIPs[{i}].ip"), &ip.ip, &mut problems))
        .collect();
    if let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
        && let Some(ip) = address("status.podIP", ip, &mut problems)
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    let finished = status
        .phase
        .as_deref()
        .is_some_and(|ph| choose("status.phase", ph, &PHASES, &mut problems) == Some(true));
    let checked = Pod {
        namespace: namespace_of(&p.metadata).to_owned(),
        name: p.metadata.name.clone().unwrap_or_default(),
        labels: p.metadata.labels,
        node_name,
        ips,
        ready: status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"),
        terminating: p.metadata.deletion_timestamp.is_some(),
        finished,
        ports,
    };
    verdict(checked, problems)
}

/// Checks a PodSpec's field names, and its containers' and their ports' (`at` is where the spec
/// is: `spec`, or a workload's `spec.template.spec`).
pub fn pod_spec_fields(at: &str, spec: &BTreeMap<String, Value>) -> Vec<Problem> {
    let mut problems = Vec::new();
    unknown_names(at, spec.keys().cloned(), POD_SPEC_FIELDS, &mut problems);
    for (i, c) in sequence(spec.get("containers")).iter().enumerate() {
        let Value::Mapping(c) = c else { continue };
        unknown_names(&format!("{at}.containers[{i}]"), keys(c), CONTAINER_FIELDS, &mut problems);
        for (j, p) in sequence(c.get("ports")).iter().enumerate() {
            let Value::Mapping(p) = p else { continue };
            let at = format!("{at}.containers[{i}].ports[{j}]");
            unknown_names(&at, keys(p), CONTAINER_PORT_FIELDS, &mut problems);
        }
    }
    problems
}

/// The containers' named ports.
fn container_ports(spec: &BTreeMap<String, Value>, problems: &mut Vec<Problem>) -> Vec<ContainerPort> {
    let mut named = Vec::new();
    for (i, c) in sequence(spec.get("containers")).iter().enumerate() {
        for (j, p) in sequence(c.get("ports")).iter().enumerate() {
            let at = |f: &str| format!("spec.containers[{i}].ports[{j}].{f}");
            let port = match p.get("containerPort") {
                Some(Value::Number(n)) => {
                    port_number(&at("containerPort"), n.as_i64().unwrap_or(-1), problems)
                }
                _ => {
                    problems.push(Problem::new(at("containerPort"), "required: the port number (1..=65535)"));
                    0
                }
            };
            let protocol =
                PortProtocol::check(&at("protocol"), p.get("protocol").and_then(Value::as_str), problems);
            if let Some(name) = p.get("name").and_then(Value::as_str) {
                named.push(ContainerPort { name: name.to_owned(), protocol, port });
            }
        }
    }
    named
}

/// The items of a YAML sequence (none when `v` is absent or not a sequence).
fn sequence(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_makes_an_endpoint_is_typed() {
        let p: objects::Pod = serde_norway::from_str(
            "metadata: {name: web-1, labels: {app: web}, deletionTimestamp: \"2025-01-01T00:00:00Z\"}\nspec:\n  nodeName: gw-1\n  containers: [{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 9090}, {name: dns, containerPort: 53, protocol: UDP}]}]\nstatus:\n  phase: Running\n  podIP: 198.18.1.1\n  podIPs: [{ip: 198.18.1.1}, {ip: \"2001:db8::1\"}]\n  conditions: [{type: Ready, status: \"True\"}]\n",
        )
        .unwrap();
        let p = pod(p).unwrap();
        assert_eq!((p.ready, p.terminating, p.finished), (true, true, false));
        assert_eq!(p.node_name.as_deref(), Some("gw-1"));
        assert_eq!(p.ips.len(), 2);
        assert_eq!(p.port_named("http", PortProtocol::Tcp), Some(8080));
        assert_eq!(p.port_named("dns", PortProtocol::Tcp), None);
        assert_eq!(p.port_named("dns", PortProtocol::Udp), Some(53));
    }

    #[test]
    fn bad_ports_and_addresses_are_named() {
        let p: objects::Pod = serde_norway::from_str(
            "metadata: {name: web-1}\nspec:\n  containers: [{name: c, ports: [{name: http, containerPort: 0}, {name: x}]}]\nstatus: {podIP: nope, phase: Done}\n",
        )
        .unwrap();
        let problems: Vec<String> = pod(p).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "spec.containers[0].ports[0].containerPort: 0 is not a port (1..=65535)",
                "spec.containers[0].ports[1].containerPort: required: the port number (1..=65535)",
                "status.podIP: \"nope\" is not an IP address",
                "status.phase: \"Done\" is not one of Pending, Running, Succeeded, Failed, Unknown",
            ]
        );
    }
}
