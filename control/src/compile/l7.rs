//! Ingresses of Sluice's class → the L7 half of the generation ([`L7Table`]).
//!
//! - **Class** (`docs/kubernetes.md` §3.1, INGRESS.md §1): an Ingress is Sluice's when
//!   `spec.ingressClassName` names an IngressClass whose `spec.controller` is
//!   [`CONTROLLER`]; else when its `kubernetes.io/ingress.class` annotation names such a
//!   class; else when one of Sluice's classes is annotated
//!   `ingressclass.kubernetes.io/is-default-class: "true"` (the first by name, if several are).
//!   Other Ingresses are left alone, and said so at info level.
//! - **Backends**: a Service of the Ingress's namespace, its port by number (`spec.ports[].port`,
//!   TCP) or by name; the route names the port as the Ingress does. Its endpoints are the
//!   Service port's as L4 finds them (EndpointSlices, whose ports are the target ports resolved
//!   per endpoint, as kube-proxy reads them; else the Pods its selector picks, a named
//!   `targetPort` resolved per Pod; else v1 Endpoints), one per address, sorted, with their
//!   conditions → [`L7Table::upstreams`], one per Service port a route names. A `resource`
//!   backend, a Service that does not exist, a port it does not have: the route stays, as
//!   [`Backend::Unavailable`] (503), with an error naming where the Ingress is written, the
//!   Ingress and the field; everything else is compiled.
//! - **Conflicts** from [`RouteTable::compile`]: a warning each, naming both Ingresses; the
//!   table keeps them for `status`.
//! - **TLS**: each `spec.tls[]` with a `secretName`: the Secret, of type `kubernetes.io/tls`,
//!   checked ([`super::tls`]) → one [`Certificate`] per Secret, with the hosts of every
//!   `tls[]` entry that names it and the Ingresses they are in. A Secret that is missing or bad
//!   is an error naming the Secret and the Ingress; that entry is left out.
//! - **Listeners**: the address of each class of Sluice's with an Ingress
//!   ([`super::allocation`]), ports 80 and 443; each Ingress is served on its class's address
//!   (what its `status.loadBalancer.ingress` is to say).
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use sluice_model::Addr;
use sluice_model::l7::{Certificate, Endpoint, L7Table, Listener, SecretRef, Upstream};
use sluice_model::route::{
    Backend, HostRule, IngressRef, IngressSpec, PathSpec, RouteTable, RuleSpec, ServiceBackend, ServicePort,
    Unavailable,
};

use super::allocation::ClassAsk;
use super::{Index, endpoints, tls};
use crate::checked::{CONTROLLER, Ingress, IngressBackend, IngressClass, PathValue, PortProtocol};
use crate::store::{Located, Store};

/// The plain HTTP port Ingresses are served on.
pub const HTTP_PORT: u16 = 80;
/// The HTTPS port.
pub const HTTPS_PORT: u16 = 443;

/// An Ingress of Sluice's, with the class it is served by.
pub(super) struct Selected<'s> {
    pub(super) ingress: &'s Located<Ingress>,
    pub(super) class: &'s str,
}

/// Sluice's IngressClasses by name.
fn our_classes(store: &Store) -> BTreeMap<&str, &IngressClass> {
    store
        .ingress_classes
        .iter()
        .map(|l| &l.object)
        .filter(|c| c.controller.as_deref() == Some(CONTROLLER))
        .map(|c| (c.name.as_str(), c))
        .collect()
}

/// The Ingresses of Sluice's classes, in namespace/name order; `ignored` says why each other
/// one is not (info, not an error: it is another controller's).
pub(super) fn select<'s>(store: &'s Store, ignored: &mut Vec<String>) -> Vec<Selected<'s>> {
    let ours = our_classes(store);
    let exists = |name: &str| store.ingress_classes.iter().any(|l| l.object.name == name);
    let default = ours.values().find(|c| c.is_default).map(|c| c.name.as_str());
    let mut out = Vec::new();
    let mut all: Vec<&Located<Ingress>> = store.ingresses.iter().collect();
    all.sort_by(|a, b| (&a.object.namespace, &a.object.name).cmp(&(&b.object.namespace, &b.object.name)));
    for l in all {
        let ing = &l.object;
        let (named, field) = match (&ing.class_name, &ing.legacy_class) {
            (Some(n), _) => (Some(n.as_str()), "spec.ingressClassName"),
            (None, Some(n)) => (Some(n.as_str()), "the kubernetes.io/ingress.class annotation"),
            (None, None) => (None, ""),
        };
        match named {
            Some(n) => match ours.get_key_value(n) {
                Some((name, _)) => out.push(Selected { ingress: l, class: name }),
                None if exists(n) => ignored.push(format!(
                    "Ingress {}: {field} names IngressClass {n:?}, another controller's: left to it",
                    ing.key()
                )),
                None => ignored.push(format!(
                    "Ingress {}: {field} names IngressClass {n:?}, which does not exist: not served",
                    ing.key()
                )),
            },
            None => match default {
                Some(class) => out.push(Selected { ingress: l, class }),
                None => ignored.push(format!(
                    "Ingress {}: names no IngressClass, and no IngressClass of Sluice's ({CONTROLLER}) is \
                     the default: not served",
                    ing.key()
                )),
            },
        }
    }
    out
}

/// What each class of Sluice's that has an Ingress asks of allocation, in name order.
pub(super) fn class_asks<'s>(store: &'s Store, selected: &[Selected<'s>]) -> Vec<ClassAsk<'s>> {
    let used: BTreeSet<&str> = selected.iter().map(|s| s.class).collect();
    our_classes(store)
        .into_iter()
        .filter(|(name, _)| used.contains(name))
        .map(|(name, c)| ClassAsk { name, address: c.address, pool: c.pool.as_deref() })
        .collect()
}

/// The L7 half of a generation, and what to say about it.
#[derive(Debug, Clone, Default)]
pub struct L7Compiled {
    /// The table.
    pub table: L7Table,
    /// The addresses each Ingress of Sluice's is served on, by `namespace/name` (for its
    /// `status.loadBalancer.ingress`).
    pub ingress_addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Warnings (route conflicts).
    pub notes: Vec<String>,
    /// Errors (unavailable backends, refused paths, bad TLS Secrets).
    pub errors: Vec<String>,
}

/// Where an Ingress is written and which it is: `file:line: Ingress namespace/name` (a
/// cluster's objects: `Ingress namespace/name`).
fn located(l: &Located<Ingress>) -> String {
    match l.line {
        0 => format!("Ingress {}", l.object.key()),
        line => format!("{}:{line}: Ingress {}", l.file.display(), l.object.key()),
    }
}

/// Compiles the selected Ingresses, served on their classes' `addresses`; TLS certificates are
/// checked against `now_unix_s`.
pub(super) fn compile(
    store: &Store,
    index: &Index,
    selected: &[Selected<'_>],
    addresses: &BTreeMap<String, IpAddr>,
    now_unix_s: i64,
) -> L7Compiled {
    let mut out = L7Compiled::default();
    let mut specs = Vec::with_capacity(selected.len());
    let mut named: BTreeSet<ServiceBackend> = BTreeSet::new();
    for s in selected {
        let spec = ingress_spec(store, index, s.ingress, &mut out.errors);
        for b in
            spec.rules.iter().flat_map(|r| r.paths.iter().map(|p| &p.backend)).chain(&spec.default_backend)
        {
            if let Backend::Service(sb) = b {
                named.insert(sb.clone());
            }
        }
        specs.push(spec);
        if let Some(&a) = addresses.get(s.class) {
            out.ingress_addresses.insert(s.ingress.object.key(), vec![a]);
        }
    }
    let routes = RouteTable::compile(&specs);
    out.notes.extend(routes.conflicts().iter().map(|c| c.to_string()));
    out.table.upstreams = named.into_iter().map(|sb| upstream(store, index, sb)).collect();
    out.table.certificates = certificates(store, selected, now_unix_s, &mut out.errors);
    let mut listeners: Vec<Listener> = selected
        .iter()
        .filter_map(|s| addresses.get(s.class))
        .map(|&a| Listener { addr: Addr::from(a), http_port: HTTP_PORT, https_port: HTTPS_PORT })
        .collect();
    listeners.sort();
    listeners.dedup();
    out.table.listeners = listeners;
    out.table.routes = routes;
    out
}

/// An Ingress as the route table takes it, its backends resolved against the Services.
fn ingress_spec(store: &Store, index: &Index, l: &Located<Ingress>, errors: &mut Vec<String>) -> IngressSpec {
    let ing = &l.object;
    let at = located(l);
    let backend = |field: &str, b: &IngressBackend, errors: &mut Vec<String>| {
        resolve(store, index, ing, &at, field, b, errors)
    };
    let default_backend = ing.default_backend.as_ref().map(|b| backend("spec.defaultBackend", b, errors));
    let mut rules = Vec::with_capacity(ing.rules.len());
    for (i, r) in ing.rules.iter().enumerate() {
        let mut paths = Vec::with_capacity(r.paths.len());
        for (j, p) in r.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let b = backend(&format!("{field}.backend"), &p.backend, errors);
            match &p.path {
                PathValue::Rule(path) => paths.push(PathSpec { path_type: p.path_type, path: path.clone(), backend: b }),
                PathValue::Other(text) => errors.push(format!(
                    "{at}: {field}.path: {text:?} is not a path Sluice's class routes (ImplementationSpecific \
                     is Prefix here: an absolute path without //, /./, /../ or %2f, only URL path \
                     characters); this path is not routed"
                )),
            }
        }
        rules.push(RuleSpec { host: r.host.clone(), paths });
    }
    IngressSpec {
        id: IngressRef::new(&ing.namespace, &ing.name),
        created_unix_s: ing.created.map(|c| c.secs),
        default_backend,
        rules,
    }
}

/// A backend: the Service port it names, or why it is unavailable (with an error).
fn resolve(
    store: &Store,
    index: &Index,
    ing: &Ingress,
    at: &str,
    field: &str,
    b: &IngressBackend,
    errors: &mut Vec<String>,
) -> Backend {
    let (name, port) = match b {
        IngressBackend::Resource => {
            errors.push(format!(
                "{at}: {field}.resource: Sluice serves no resource backends; requests routed here get 503"
            ));
            return Backend::Unavailable(Unavailable::Resource);
        }
        IngressBackend::Service { name, port } => (name, port),
    };
    let Some(&p) = index.services_named(store, &ing.namespace, name).first() else {
        errors.push(format!(
            "{at}: {field}.service.name: Service {}/{name} does not exist; requests routed here get 503",
            ing.namespace
        ));
        return Backend::Unavailable(Unavailable::MissingService);
    };
    let svc = &store.services[p].object;
    let found = svc.ports.iter().any(|sp| sp.protocol == PortProtocol::Tcp && port_is(sp, port));
    if !found {
        let (what, fld) = match port {
            ServicePort::Number(n) => (format!("port {n}"), "number"),
            ServicePort::Name(n) => (format!("a port named {n:?}"), "name"),
        };
        let have: Vec<String> = svc
            .ports
            .iter()
            .map(|sp| match &sp.name {
                Some(n) => format!("{n} ({}/{})", sp.port, sp.protocol),
                None => format!("{}/{}", sp.port, sp.protocol),
            })
            .collect();
        errors.push(format!(
            "{at}: {field}.service.port.{fld}: Service {}/{name} has no TCP {what} (it has {}); requests \
             routed here get 503",
            ing.namespace,
            if have.is_empty() { "none".to_owned() } else { have.join(", ") }
        ));
        return Backend::Unavailable(Unavailable::MissingPort);
    }
    Backend::Service(ServiceBackend {
        namespace: ing.namespace.clone(),
        name: name.clone(),
        port: port.clone(),
    })
}

/// Whether Service port `sp` is the one an Ingress names by number (the Service port, not the
/// target port) or by name.
fn port_is(sp: &crate::checked::ServicePort, port: &ServicePort) -> bool {
    match port {
        ServicePort::Number(n) => sp.port == *n,
        ServicePort::Name(n) => sp.name.as_deref() == Some(n.as_str()),
    }
}

/// The endpoints of a Service port a route names (it exists: [`resolve`] checked).
fn upstream(store: &Store, index: &Index, service: ServiceBackend) -> Upstream {
    let svc = index
        .services_named(store, &service.namespace, &service.name)
        .first()
        .map(|&p| &store.services[p].object);
    let port = svc.and_then(|s| {
        s.ports
            .iter()
            .find(|sp| sp.protocol == PortProtocol::Tcp && port_is(sp, &service.port))
            .map(|sp| (s, sp))
    });
    let mut endpoints: Vec<Endpoint> = port
        .map(|(s, sp)| endpoints::of_port(index, store, s, sp))
        .unwrap_or_default()
        .into_iter()
        .map(|e| Endpoint {
            addr: SocketAddr::new(e.addr, e.port),
            ready: e.conditions.ready,
            serving: e.conditions.serving,
            terminating: e.conditions.terminating,
        })
        .collect();
    // One per address and port: an endpoint listed twice (in two slices while it moves) keeps
    // its best conditions, as kube-proxy keeps the non-terminating one.
    endpoints.sort_by_key(|e| (e.addr, !e.ready, !e.serving, e.terminating));
    endpoints.dedup_by_key(|e| e.addr);
    Upstream { service, endpoints }
}

/// One certificate per TLS Secret the selected Ingresses name, checked; errors for the rest.
fn certificates(
    store: &Store,
    selected: &[Selected<'_>],
    now_unix_s: i64,
    errors: &mut Vec<String>,
) -> Vec<Certificate> {
    let mut by_secret: BTreeMap<SecretRef, Certificate> = BTreeMap::new();
    // Each Secret checked once, whatever the number of Ingresses naming it.
    let mut checked: BTreeMap<SecretRef, Result<tls::Material, String>> = BTreeMap::new();
    for s in selected {
        let ing = &s.ingress.object;
        let at = located(s.ingress);
        for (i, t) in ing.tls.iter().enumerate() {
            let Some(name) = &t.secret_name else { continue };
            let secret = SecretRef { namespace: ing.namespace.clone(), name: name.clone() };
            let material =
                checked.entry(secret.clone()).or_insert_with(|| check_secret(store, &secret, now_unix_s));
            let m = match material {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!(
                        "{at}: spec.tls[{i}].secretName: Secret {secret}: {e}; HTTPS for {} is not served with it",
                        hosts_text(&t.hosts)
                    ));
                    continue;
                }
            };
            let c = by_secret.entry(secret.clone()).or_insert_with(|| Certificate {
                secret,
                ingresses: Vec::new(),
                hosts: Vec::new(),
                chain_der: m.chain_der.clone(),
                key_format: m.key_format,
                key_der: m.key_der.clone(),
                not_after_unix_s: m.not_after_unix_s,
            });
            c.ingresses.push(IngressRef::new(&ing.namespace, &ing.name));
            c.hosts.extend(t.hosts.iter().cloned());
        }
    }
    by_secret
        .into_values()
        .map(|mut c| {
            c.ingresses.sort();
            c.ingresses.dedup();
            c.hosts.sort();
            c.hosts.dedup();
            c
        })
        .collect()
}

fn hosts_text(hosts: &[HostRule]) -> String {
    if hosts.is_empty() {
        return "its hosts".into();
    }
    hosts.iter().map(HostRule::to_string).collect::<Vec<_>>().join(", ")
}

/// The Secret's certificate material, or what is wrong with it.
fn check_secret(store: &Store, secret: &SecretRef, now_unix_s: i64) -> Result<tls::Material, String> {
    let Some(s) = store
        .secrets
        .iter()
        .map(|l| &l.object)
        .find(|s| s.namespace == secret.namespace && s.name == secret.name)
    else {
        return Err("does not exist".into());
    };
    if s.type_ != "kubernetes.io/tls" {
        return Err(format!("is of type {:?}, not kubernetes.io/tls", s.type_));
    }
    // The check on Secrets made sure both keys are there.
    let (crt, key) = (s.data.get("tls.crt"), s.data.get("tls.key"));
    let (Some(crt), Some(key)) = (crt, key) else { return Err("needs tls.crt and tls.key".into()) };
    tls::material(crt, key, now_unix_s).map_err(|e| e.to_string())
}
