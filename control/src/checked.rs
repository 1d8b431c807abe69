//! The checks every object passes before control acts on it, whichever source it came from — a
//! manifest directory ([`crate::load`]) or a cluster ([`crate::cluster`]) — and the typed values
//! they produce. A check takes the serde object of [`crate::objects`] and gives either its typed
//! value or every problem found, each naming its field path (`spec.ports[0].nodePort`) and what
//! to do about it. Compile reads only the typed values: nothing downstream parses an address or
//! matches a string that a check has already read.
//!
//! - [`Service`]: its [`ServiceType`], ports with a [`PortProtocol`] and a [`TargetPort`],
//!   parsed addresses, an [`Affinity`](sluice_model::service::Affinity), a [`TrafficPolicy`], its
//!   [`Scheduler`](sluice_model::service::Scheduler) and the MetalLB annotations, with the
//!   defaults the API server's `SetDefaults_Service` applies (`docs/kubernetes.md` §1.3).
//! - [`EndpointSlice`] and [`Endpoints`]: parsed addresses, typed ports, resolved conditions.
//! - [`Pod`]: parsed addresses, readiness, deletion, node and named container ports.
//! - [`Pool`]: MetalLB's `IPAddressPool`, its ranges parsed ([`AddressRange`]).
//! - [`BgpPeer`], [`BgpAdvertisement`], [`BfdProfile`]: MetalLB's BGP objects (docs/bgp.md).
//! - [`L2Advertisement`]: MetalLB's L2 object (docs/l2.md).
//! - [`Ingress`], [`IngressClass`], [`Secret`]: Ingress rules with typed hosts, paths and
//!   backends; an IngressClass's controller and default flag; a Secret's data decoded.
//! - [`ConfigMap`]: its keys checked, its `data` read as header fields (what `custom-headers`
//!   and `proxy-set-headers` take).
//!
//! Not hot path. No `unsafe`.

use std::fmt;

use crate::objects::ObjectMeta;

pub mod annotations;
mod bgp;
mod config_map;
mod endpoints;
mod ingress;
mod l2;
mod pod;
mod pool;
mod service;

pub use bgp::{
    BfdProfile, BgpAdvertisement, BgpPeer, Community, HOSTNAME_LABEL, bfd_profile, bgp_advertisement,
    bgp_peer, missing_bfd_profiles,
};
pub use config_map::{ConfigMap, config_map};
pub use endpoints::{
    AddressType, EndpointAddress, EndpointPort, EndpointSlice, EndpointSubset, Endpoints, SERVICE_NAME_LABEL,
    SliceEndpoint, endpoint_slice, endpoints,
};
pub use ingress::{
    CONTROLLER, DEFAULT_CLASS_ANNOTATION, INGRESS_ADDRESS_ANNOTATION, Ingress, IngressBackend, IngressClass,
    IngressPath, IngressRule, IngressTls, LEGACY_CLASS_ANNOTATION, PathValue, Secret, ingress, ingress_class,
    secret,
};
pub use l2::{L2Advertisement, l2_advertisement};
pub use pod::{ContainerPort, Pod, pod, pod_spec_fields};
pub use pool::{AddressRange, Pool, pool};
pub use service::{
    Created, LB_IPS_ANNOTATION, POOL_ANNOTATION, PortProtocol, SCHEDULER_ANNOTATION, Service, ServicePort,
    ServiceType, TargetPort, TrafficPolicy, service,
};

/// One problem with one object: the field it is in and what is wrong (and the fix, where one is
/// evident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field path, as `kubectl explain` spells it (`spec.ports[1].port`).
    pub field: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What a check gives: the typed value, or every problem found.
pub type Checked<T> = Result<T, Vec<Problem>>;

/// An object's namespace and name (what makes two objects of a kind the same object).
pub trait Named {
    /// The namespace (`default` when the object states none).
    fn namespace(&self) -> &str;
    /// The name.
    fn name(&self) -> &str;
}

/// The namespace an object's metadata gives, `default` when it states none (as `kubectl apply`
/// would put it).
pub(crate) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// `Ok(value)` when nothing was found wrong.
fn verdict<T>(value: T, problems: Vec<Problem>) -> Checked<T> {
    if problems.is_empty() { Ok(value) } else { Err(problems) }
}

/// The option `value` names among `options` (name, value); else a problem saying which names are
/// allowed and which one was probably meant.
fn choose<T: Copy>(at: &str, value: &str, options: &[(&str, T)], problems: &mut Vec<Problem>) -> Option<T> {
    let found = options.iter().find(|(n, _)| *n == value).map(|(_, v)| *v);
    if found.is_none() {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = suggest(value, names.iter().copied())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        problems.push(Problem::new(at, format!("{value:?} is not one of {}{hint}", names.join(", "))));
    }
    found
}

/// A port number (1..=65535), or a problem (and 0, which no typed value keeps: the object is
/// refused).
fn port_number(at: &str, n: i64, problems: &mut Vec<Problem>) -> u16 {
    match u16::try_from(n) {
        Ok(p) if p != 0 => p,
        _ => {
            problems.push(Problem::new(at, format!("{n} is not a port (1..=65535)")));
            0
        }
    }
}

/// An IP address, or a problem.
fn address(at: &str, text: &str, problems: &mut Vec<Problem>) -> Option<std::net::IpAddr> {
    let parsed = text.parse().ok();
    if parsed.is_none() {
        problems.push(Problem::new(at, format!("{text:?} is not an IP address")));
    }
    parsed
}

/// The closest of `candidates` to a misspelt `name`, if any is close enough to be what was meant.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    // Close in spelling, or a prefix of the name (`serviceName` for `service`).
    candidates
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let d = if cl.len() >= 4 && lower.starts_with(&cl) { 1 } else { edit_distance(&lower, &cl) };
            (d, c)
        })
        .filter(|(d, c)| *d <= 2.max(c.len().min(name.len()) / 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reports each of `keys` that is not one of `known`, with the name probably meant.
fn unknown_names(at: &str, keys: impl Iterator<Item = String>, known: &[&str], problems: &mut Vec<Problem>) {
    for k in keys {
        if !known.contains(&k.as_str()) {
            let hint = suggest(&k, known.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            problems.push(Problem::new(format!("{at}.{k}"), format!("unknown field{hint}")));
        }
    }
}

/// The string keys of a YAML mapping.
fn keys(map: &serde_norway::Mapping) -> impl Iterator<Item = String> + '_ {
    map.keys().filter_map(|k| k.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_name_gets_the_one_meant() {
        assert_eq!(suggest("seletor", ["selector", "ports"].into_iter()), Some("selector"));
        assert_eq!(suggest("serviceName", ["service", "resource"].into_iter()), Some("service"));
        assert_eq!(suggest("zzz", ["selector"].into_iter()), None);
    }

    #[test]
    fn choose_names_the_allowed_values() {
        let mut problems = Vec::new();
        let options = [("TCP", 1), ("UDP", 2)];
        assert_eq!(choose("p", "UDP", &options, &mut problems), Some(2));
        assert_eq!(choose("p", "UPD", &options, &mut problems), None);
        assert_eq!(problems, [Problem::new("p", "\"UPD\" is not one of TCP, UDP; did you mean \"UDP\"?")]);
    }
}
