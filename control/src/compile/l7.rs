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
//! - **ConfigMaps** (`custom-headers`, `proxy-set-headers`): the header fields of the ConfigMap
//!   the annotation names, of the Ingress's namespace, into the policy's response or request
//!   headers; a field that frames a message or belongs to one connection, one the gateway
//!   writes itself, or one past [`MAX_CONFIG_MAP_HEADER_BYTES`], is left out with a note; a
//!   missing ConfigMap is a note, and the Ingress is served without its headers.
//! - **Listeners**: the address of each class of Sluice's with an Ingress
//!   ([`super::allocation`]), ports 80 and 443; each Ingress is served on its class's address
//!   (what its `status.loadBalancer.ingress` is to say).
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use sluice_model::Addr;
use sluice_model::l7::{Certificate, Endpoint, ExternalName, L7Table, Listener, SecretRef, Upstream};
use sluice_model::route::{
    Backend, Dialect, HostRule, IngressRef, IngressSpec, PathSpec, RouteTable, RulePath, RuleSpec,
    ServiceBackend, ServicePort, Unavailable,
};

use sluice_model::policy::{self, Header, NGINX_PREFIX, PasswordHash};

use super::allocation::ClassAsk;
use super::{Config, Index, endpoints, tls};
use crate::checked::annotations::{AuthAsk, AuthSecretType, ConfigMapAsk, Effect, HeadersFor, Verdict};
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
    /// The class's path dialect.
    pub(super) dialect: Dialect,
}

/// A class's path dialect: ingress-nginx's for its controller's classes.
fn dialect_of(c: &IngressClass) -> Dialect {
    if c.controller.as_deref() == Some(INGRESS_NGINX_CONTROLLER) {
        Dialect::IngressNginx
    } else {
        Dialect::Kubernetes
    }
}

/// ingress-nginx's IngressClass controller: its classes are served when
/// [`Config::ingress_nginx_class`] says so.
pub const INGRESS_NGINX_CONTROLLER: &str = "k8s.io/ingress-nginx";

/// Sluice's IngressClasses by name.
fn our_classes<'s>(store: &'s Store, cfg: &Config) -> BTreeMap<&'s str, &'s IngressClass> {
    store
        .ingress_classes
        .iter()
        .map(|l| &l.object)
        .filter(|c| {
            c.controller.as_deref() == Some(CONTROLLER)
                || (cfg.ingress_nginx_class && c.controller.as_deref() == Some(INGRESS_NGINX_CONTROLLER))
        })
        .map(|c| (c.name.as_str(), c))
        .collect()
}

/// The Ingresses of Sluice's classes, in namespace/name order; `ignored` says why each other
/// one is not (info, not an error: it is another controller's).
pub(super) fn select<'s>(store: &'s Store, cfg: &Config, ignored: &mut Vec<String>) -> Vec<Selected<'s>> {
    let ours = our_classes(store, cfg);
    let exists = |name: &str| store.ingress_classes.iter().any(|l| l.object.name == name);
    let default = ours.values().find(|c| c.is_default).map(|c| (c.name.as_str(), dialect_of(c)));
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
                Some((name, c)) => out.push(Selected { ingress: l, class: name, dialect: dialect_of(c) }),
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
                Some((class, dialect)) => out.push(Selected { ingress: l, class, dialect }),
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
pub(super) fn class_asks<'s>(store: &'s Store, cfg: &Config, selected: &[Selected<'s>]) -> Vec<ClassAsk<'s>> {
    let used: BTreeSet<&str> = selected.iter().map(|s| s.class).collect();
    our_classes(store, cfg)
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

/// Where an Ingress states one of ingress-nginx's annotations (`short`, without the prefix): the
/// annotation's own line when known, else the Ingress's.
fn annotation_at(l: &Located<Ingress>, short: &str) -> String {
    let line = l
        .object
        .nginx
        .findings
        .iter()
        .find(|f| f.annotation.strip_prefix(NGINX_PREFIX) == Some(short))
        .map_or(0, |f| f.line);
    match line {
        0 => located(l),
        line => format!("{}:{line}: Ingress {}", l.file.display(), l.object.key()),
    }
}

/// What the header fields a ConfigMap names may add to each message, in bytes (`name: value`
/// and its line break, every field together): they are written into every request or response
/// head, whose room is the gateway's; past it, the remaining fields are not set, and said.
pub const MAX_CONFIG_MAP_HEADER_BYTES: usize = 4096;

/// Why a ConfigMap may not set the field `name` in `target`'s direction, if it may not.
fn refused_field(target: HeadersFor, name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let why = match (n.as_str(), target) {
        // RFC 9110 §7.6.1, RFC 9112 §6: they frame the message or describe one connection, and
        // Sluice writes them for each of its own connections.
        (
            "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
            | "content-length",
            _,
        ) => "a hop-by-hop or framing field, which Sluice writes for each connection itself",
        (p, _) if p.starts_with("proxy-") => {
            "a field for the proxies on the way (Proxy-*), not the other end's"
        }
        ("host", HeadersFor::Response) => "Host is a request field",
        ("host", HeadersFor::Request) => "the Host sent upstream is upstream-vhost's to set",
        ("x-forwarded-prefix", HeadersFor::Request) => "X-Forwarded-Prefix is x-forwarded-prefix's to set",
        (
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "x-forwarded-port" | "x-real-ip"
            | "x-request-id",
            HeadersFor::Request,
        ) => "Sluice writes it on every request sent upstream (it would be sent twice)",
        _ => return None,
    };
    Some(why)
}

/// The header fields of the ConfigMap `ask` names, in key order; `said` (`file:line: Ingress
/// ns/name: annotation`) starts a note for each one left out and why, or for the whole
/// annotation when no field is set (the ConfigMap missing, say): the Ingress is served without
/// them, and gets them when the ConfigMap appears or is fixed (a later compile).
fn config_map_headers(store: &Store, ask: &ConfigMapAsk, said: &str, notes: &mut Vec<String>) -> Vec<Header> {
    let name = format!("ConfigMap {}/{}", ask.namespace, ask.name);
    let Some(found) =
        store.config_maps.iter().find(|c| c.object.namespace == ask.namespace && c.object.name == ask.name)
    else {
        notes.push(format!(
            "{said}: ignored: {name} does not exist (or was refused: its own error says why); served \
             without these headers until it does"
        ));
        return Vec::new();
    };
    let cm = match found.line {
        0 => name,
        line => format!("{name} ({}:{line})", found.file.display()),
    };
    let mut out = Vec::new();
    let mut bytes = 0;
    for h in &found.object.headers {
        let skip = match h {
            Err(p) => format!("{p}; not set"),
            Ok(h) => match refused_field(ask.target, &h.name) {
                Some(why) => format!("data.{}: not set: {why}", h.name),
                None if bytes + h.name.len() + h.value.len() + 4 > MAX_CONFIG_MAP_HEADER_BYTES => format!(
                    "data.{}: not set: the fields before it take the {MAX_CONFIG_MAP_HEADER_BYTES} bytes a \
                     ConfigMap's fields may add to each message",
                    h.name
                ),
                None => {
                    bytes += h.name.len() + h.value.len() + 4;
                    out.push(h.clone());
                    continue;
                }
            },
        };
        notes.push(format!("{said}: served differently: {cm}: {skip}"));
    }
    if out.is_empty() {
        notes
            .push(format!("{said}: ignored: {cm} has no field Sluice can set; served without these headers"));
    }
    out
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
        let Some(spec) = ingress_spec(store, index, s, &mut out.errors, &mut out.notes) else {
            continue;
        };
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
    out.notes.extend(unserved_canaries(&specs, &routes));
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

/// The paths of canary Ingresses that serve nothing: no main Ingress routes their host and
/// path, or another canary took it first.
fn unserved_canaries(specs: &[IngressSpec], routes: &RouteTable) -> Vec<String> {
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| s.canary.is_some()) {
        for r in &spec.rules {
            let entry = routes.hosts().iter().find(|h| h.host == r.host);
            for p in &r.paths {
                let kind = p.path_type.kind();
                let main = entry.and_then(|h| {
                    h.paths.iter().find(|m| m.kind == kind && m.path.key(kind) == p.path.key(kind))
                });
                let why = match main.map(|m| m.canary.as_deref()) {
                    None => "no Ingress that is not a canary routes it".to_owned(),
                    Some(Some(c)) if c.ingress == spec.id => continue,
                    Some(Some(c)) => {
                        format!("Ingress {} is its canary already (one canary per path)", c.ingress)
                    }
                    Some(None) => continue,
                };
                out.push(format!(
                    "Ingress {}: canary for host {} path {} ({}): not served: {why}",
                    spec.id,
                    r.host,
                    p.path,
                    p.path_type.name()
                ));
            }
        }
    }
    out
}

/// The users of a basic-auth Secret, or why there are none to check against.
fn auth_users(
    store: &Store,
    ask: &AuthAsk,
    problems: &mut Vec<String>,
) -> Result<Vec<(String, PasswordHash)>, String> {
    let secret = store
        .secrets
        .iter()
        .map(|l| &l.object)
        .find(|s| s.namespace == ask.namespace && s.name == ask.name)
        .ok_or_else(|| format!("Secret {}/{} does not exist", ask.namespace, ask.name))?;
    let users = match ask.secret_type {
        AuthSecretType::File => {
            let text = secret.data.get("auth").ok_or_else(|| {
                format!("Secret {}/{} has no key auth (an htpasswd file)", ask.namespace, ask.name)
            })?;
            let text = std::str::from_utf8(text)
                .map_err(|_| format!("Secret {}/{}: auth is not text", ask.namespace, ask.name))?;
            let (users, bad) = policy::parse_htpasswd(text);
            problems
                .extend(bad.into_iter().map(|b| format!("Secret {}/{}: auth: {b}", ask.namespace, ask.name)));
            users
        }
        AuthSecretType::Map => {
            let mut users = Vec::new();
            for (user, hash) in &secret.data {
                let parsed = std::str::from_utf8(hash)
                    .map_err(|_| "not text".to_owned())
                    .and_then(|h| PasswordHash::parse(h.trim()));
                match parsed {
                    Ok(h) if policy::is_user(user) => users.push((user.clone(), h)),
                    Ok(_) => problems
                        .push(format!("Secret {}/{}: {user:?} is not a user name", ask.namespace, ask.name)),
                    Err(e) => {
                        problems.push(format!("Secret {}/{}: user {user:?}: {e}", ask.namespace, ask.name))
                    }
                }
            }
            users
        }
    };
    if users.is_empty() {
        return Err(format!("Secret {}/{} has no user Sluice can check", ask.namespace, ask.name));
    }
    Ok(users)
}

/// An Ingress as the route table takes it, its backends resolved against the Services; `None`
/// when its annotations skip it (ingress-nginx's rule for a bad limit).
fn ingress_spec(
    store: &Store,
    index: &Index,
    s: &Selected<'_>,
    errors: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<IngressSpec> {
    let (l, dialect) = (s.ingress, s.dialect);
    let ing = &l.object;
    let at = located(l);
    let a = &ing.nginx;
    for f in &a.findings {
        let at = match f.line {
            0 => at.clone(),
            line => format!("{}:{line}: Ingress {}", l.file.display(), ing.key()),
        };
        match f.verdict {
            Verdict::Refused => errors.push(format!("{at}: {f}")),
            Verdict::Ignored | Verdict::Differs => notes.push(format!("{at}: {f}")),
            Verdict::Served => {}
        }
    }
    if matches!(a.effect, Effect::Skip(_)) {
        return None;
    }
    let mut policy = a.policy.clone();
    // ingress-nginx redirects hosts with a certificate to HTTPS unless told not to; Sluice's own
    // class only when told to.
    policy.ssl_redirect = a.ssl_redirect.unwrap_or(dialect == Dialect::IngressNginx);
    if let (Some(ask), Some(auth)) = (&a.auth, policy.basic_auth.as_mut()) {
        let mut problems = Vec::new();
        match auth_users(store, ask, &mut problems) {
            Ok(users) => auth.users = users,
            Err(why) => {
                let at = annotation_at(l, "auth-secret");
                errors.push(format!(
                    "{at}: {NGINX_PREFIX}auth-secret: {why}; every path of this Ingress answers 503"
                ));
                policy.deny.get_or_insert(format!("{NGINX_PREFIX}auth-secret: {why}"));
            }
        }
        notes.extend(
            problems
                .into_iter()
                .map(|p| format!("{at}: {NGINX_PREFIX}auth-secret: {p}; that user cannot log in")),
        );
    }
    for ask in &a.config_maps {
        let said = format!(
            "{}: {NGINX_PREFIX}{}",
            annotation_at(l, ask.target.annotation()),
            ask.target.annotation()
        );
        let headers = config_map_headers(store, ask, &said, notes);
        match ask.target {
            HeadersFor::Response => policy.response_headers = headers,
            HeadersFor::Request => policy.request_headers = headers,
        }
    }
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
            // ingress-nginx's dialect takes its ImplementationSpecific paths as written (regexes).
            let nginx = match (&p.path, dialect) {
                (PathValue::Other(text), Dialect::IngressNginx) => RulePath::nginx(text).ok(),
                _ => None,
            };
            match (&p.path, nginx.as_ref()) {
                (_, Some(path)) | (PathValue::Rule(path), None) => {
                    paths.push(PathSpec { path_type: p.path_type, path: path.clone(), backend: b })
                }
                (PathValue::Other(text), None) => errors.push(format!(
                    "{at}: {field}.path: {text:?} is not a path Sluice's class routes (ImplementationSpecific \
                     is Prefix here: an absolute path without //, /./, /../ or %2f, only URL path \
                     characters); this path is not routed"
                )),
            }
        }
        rules.push(RuleSpec { host: r.host.clone(), paths });
    }
    Some(IngressSpec {
        id: IngressRef::new(&ing.namespace, &ing.name),
        created_unix_s: ing.created.map(|c| c.secs),
        default_backend,
        rules,
        policy,
        canary: a.canary.clone(),
        dialect,
    })
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
    // An ExternalName Service may declare no port: a port number is then used as it is.
    let external_by_number = svc.external_name.is_some() && matches!(port, ServicePort::Number(_));
    if !found && !external_by_number {
        let (what, fld) = match port {
            ServicePort::Number(n) => (format!("port {n}"), "number"),
            ServicePort::Name(n) => (format!("port named {n:?}"), "name"),
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
    // An ExternalName Service: the gateway resolves the name; the port is the Service port's
    // numeric targetPort, else the port the Ingress names (ingress-nginx's choice).
    let external = svc.and_then(|s| {
        let host = s.external_name.clone()?;
        let port = match (port, &service.port) {
            (Some((_, sp)), _) => match &sp.target_port {
                crate::checked::TargetPort::Number(n) => *n,
                crate::checked::TargetPort::Name(_) => sp.port,
            },
            (None, ServicePort::Number(n)) => *n,
            (None, ServicePort::Name(_)) => return None,
        };
        Some(ExternalName { host, port })
    });
    Upstream { service, endpoints, external }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256};
    use sluice_model::l7::ExternalName;
    use sluice_model::route::{Backend, HostRule, ServiceBackend, ServicePort, Unavailable};
    use sluice_model::service::Generation;

    use super::super::tls::tests::{cert, key};
    use super::super::{Compiled, Config, compile as compile_all};
    use super::Header;
    use crate::load::{Loaded, load_str};

    const POOL: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: sluice-system}
spec: {addresses: [198.18.100.10-198.18.100.19]}
";

    const CLASS: &str = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.io/ingress}
";

    /// A Service `name` of namespace shop with a port 80 named http → targetPort http, and a
    /// slice giving two endpoints (one port number each: the named target port resolved per
    /// endpoint group).
    fn service(name: &str) -> String {
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}, {{name: metrics, port: 9090, protocol: UDP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-a, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: [198.18.1.2], conditions: {{ready: true}}}}
- {{addresses: [198.18.1.9], conditions: {{ready: false, serving: true, terminating: true}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-b, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 8081, protocol: TCP}}]
endpoints:
- {{addresses: [198.18.1.3]}}
"
        )
    }

    fn ingress(name: &str, class: &str, backend: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: shop{class}}}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {{path: /{name}, pathType: Prefix, backend: {backend}}}
"
        )
    }

    fn load(docs: &[&str]) -> Loaded {
        let mut loaded = Loaded::default();
        load_str(Path::new("inline.yaml"), &docs.join("---\n"), &mut loaded);
        assert!(
            loaded.errors.is_empty(),
            "{:?}",
            loaded.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
        loaded
    }

    fn compiled(docs: &[&str]) -> Compiled {
        compile_all(&load(docs).store, &Config::default(), Generation(1))
    }

    fn served(c: &Compiled) -> Vec<String> {
        c.spec.l7.routes.hosts().iter().flat_map(|h| &h.paths).map(|p| p.ingress.to_string()).collect()
    }

    const WEB: &str = "{service: {name: web, port: {number: 80}}}";

    /// An Ingress of Sluice's class for `/` of shop.example.com with these annotations.
    fn annotated(name: &str, annotations: &str, backend: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: shop, annotations: {{{annotations}}}}}
spec:
  ingressClassName: sluice
  rules:
  - host: shop.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {backend}}}
"
        )
    }

    fn path_policy(c: &Compiled) -> &sluice_model::policy::Policy {
        let routes = &c.spec.l7.routes;
        let p = &routes.hosts()[0].paths[0];
        routes.policy(p.policy).unwrap()
    }

    #[test]
    fn external_name_and_headless_services_are_upstreams() {
        let external = "apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {type: ExternalName, externalName: db.example.com., ports: [{name: http, port: 80, targetPort: 8080}]}
";
        let bare = "apiVersion: v1
kind: Service
metadata: {name: bare, namespace: shop}
spec: {type: ExternalName, externalName: bare.example.com}
";
        let headless = service("web").replace("spec:\n", "spec:\n  clusterIP: None\n");
        let ing = |name: &str, backend: &str| {
            annotated(name, "", backend).replace("path: /,", &format!("path: /{name},"))
        };
        let c = compiled(&[
            POOL,
            CLASS,
            external,
            bare,
            &headless,
            &ing("db", "{service: {name: db, port: {name: http}}}"),
            &ing("bare", "{service: {name: bare, port: {number: 9000}}}"),
            &ing("web", WEB),
        ]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let up = |name: &str| c.spec.l7.upstreams.iter().find(|u| u.service.name == name).unwrap();
        assert_eq!(up("db").external, Some(ExternalName { host: "db.example.com".into(), port: 8080 }));
        assert_eq!(up("bare").external, Some(ExternalName { host: "bare.example.com".into(), port: 9000 }));
        assert!(up("db").endpoints.is_empty());
        // A headless Service's endpoints are used directly.
        assert_eq!(up("web").endpoints.len(), 3, "{:?}", up("web"));
        assert!(up("web").external.is_none());

        let bad = external.replace("db.example.com.", "'not a name'");
        let mut loaded = Loaded::default();
        load_str(Path::new("inline.yaml"), &bad, &mut loaded);
        assert!(
            loaded.errors.iter().any(|e| e.to_string().contains("spec.externalName")),
            "{:?}",
            loaded.errors
        );
    }

    #[test]
    fn basic_auth_reads_its_secret_or_denies() {
        let secret = "apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData:
  auth: |
    foo:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=
    bad:plaintext
";
        let auth =
            "nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: creds";
        let c = compiled(&[POOL, CLASS, &service("web"), secret, &annotated("web", auth, WEB)]);
        let p = path_policy(&c);
        let users = &p.basic_auth.as_ref().unwrap().users;
        assert_eq!(users.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(), ["foo"]);
        assert!(p.deny.is_none());
        let notes = c.notes.join("\n");
        assert!(notes.contains("auth: line 2: user \"bad\""), "{notes}");
        assert!(!notes.contains("plaintext"), "a password is never logged: {notes}");

        // Without the Secret: every path 503, and an error naming it.
        let c = compiled(&[POOL, CLASS, &service("web"), &annotated("web", auth, WEB)]);
        assert!(path_policy(&c).deny.is_some());
        let errors = c.errors.join("\n");
        assert!(errors.contains("Ingress shop/web: nginx.ingress.kubernetes.io/auth-secret: Secret shop/creds does not exist; every path of this Ingress answers 503"), "{errors}");
    }

    /// The ConfigMaps of `custom-headers` and `proxy-set-headers`: their fields fill the
    /// policy's response and request headers, but for those the gateway writes itself or that
    /// are not fields at all, each said; a missing ConfigMap is said, and the Ingress is served
    /// without its headers until it appears.
    #[test]
    fn config_maps_fill_the_response_and_request_headers() {
        let maps = "apiVersion: v1
kind: ConfigMap
metadata: {name: hdrs, namespace: shop}
data:
  X-Frame-Options: DENY
  Connection: close
  Proxy-Authenticate: Basic
  X-Bad: |
    two
    lines
---
apiVersion: v1
kind: ConfigMap
metadata: {name: up, namespace: shop}
data: {X-Team: payments, Host: other.example, X-Real-IP: 203.0.113.9, Content-Length: '0'}
";
        let ann = "nginx.ingress.kubernetes.io/custom-headers: hdrs, \
                   nginx.ingress.kubernetes.io/proxy-set-headers: shop/up";
        let ingress = annotated("web", ann, WEB);
        let docs = [POOL, CLASS, &service("web"), maps, &ingress];
        let c = compiled(&docs);
        let p = path_policy(&c);
        assert_eq!(p.response_headers, [Header::new("X-Frame-Options", "DENY").unwrap()]);
        assert_eq!(p.request_headers, [Header::new("X-Team", "payments").unwrap()]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        // Where things are written: the ConfigMaps' documents; the Ingress's, whose annotations
        // are one flow mapping (no line of their own).
        let text = docs.join("---\n");
        let line_of = |s: &str| text.lines().position(|l| l.contains(s)).unwrap() + 1;
        let (hdrs, up) = (line_of("name: hdrs") - 2, line_of("name: up") - 2);
        let at = format!(
            "inline.yaml:{}: Ingress shop/web: nginx.ingress.kubernetes.io",
            line_of("annotations: {") - 2
        );
        let skipped = [
            format!(
                "{at}/custom-headers: served differently: ConfigMap shop/hdrs (inline.yaml:{hdrs}): data.Connection: \
                 not set: a hop-by-hop or framing field, which Sluice writes for each connection itself"
            ),
            format!(
                "{at}/custom-headers: served differently: ConfigMap shop/hdrs (inline.yaml:{hdrs}): \
                 data.Proxy-Authenticate: not set: a field for the proxies on the way (Proxy-*), not the other end's"
            ),
            format!(
                "{at}/custom-headers: served differently: ConfigMap shop/hdrs (inline.yaml:{hdrs}): data.X-Bad: the \
                 value holds a line break (CR or LF): a header value is one line (a YAML `|` block ends with one: \
                 write the value as a quoted string); not set"
            ),
            format!(
                "{at}/proxy-set-headers: served differently: ConfigMap shop/up (inline.yaml:{up}): data.Content-Length: \
                 not set: a hop-by-hop or framing field, which Sluice writes for each connection itself"
            ),
            format!(
                "{at}/proxy-set-headers: served differently: ConfigMap shop/up (inline.yaml:{up}): data.Host: not set: \
                 the Host sent upstream is upstream-vhost's to set"
            ),
            format!(
                "{at}/proxy-set-headers: served differently: ConfigMap shop/up (inline.yaml:{up}): data.X-Real-IP: not \
                 set: Sluice writes it on every request sent upstream (it would be sent twice)"
            ),
        ];
        let mut notes = c.notes.clone();
        notes.sort();
        assert_eq!(notes, skipped, "every skipped field said, once, and nothing else");

        // Without the ConfigMaps: the Ingress is served, without headers, and each annotation
        // says which ConfigMap is missing.
        let c = compiled(&[POOL, CLASS, &service("web"), &ingress]);
        assert_eq!(served(&c), ["shop/web"]);
        let p = path_policy(&c);
        assert!(p.response_headers.is_empty() && p.request_headers.is_empty());
        let notes = c.notes.join("\n");
        for (annotation, name) in [("custom-headers", "hdrs"), ("proxy-set-headers", "up")] {
            let want = format!(
                "Ingress shop/web: nginx.ingress.kubernetes.io/{annotation}: ignored: ConfigMap shop/{name} does not \
                 exist (or was refused: its own error says why); served without these headers until it does"
            );
            assert!(notes.contains(&want), "{want}\nin:\n{notes}");
        }

        // Only skipped fields: the annotation does nothing, and says so. Fields past the bound
        // are left out.
        let only_bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hdrs, namespace: shop}\ndata: {TE: trailers}\n";
        let c = compiled(&[POOL, CLASS, &service("web"), only_bad, &ingress]);
        assert!(path_policy(&c).response_headers.is_empty());
        assert!(
            c.notes.iter().any(|n| n.contains("custom-headers: ignored: ConfigMap shop/hdrs (inline.yaml:")
                && n.ends_with("has no field Sluice can set; served without these headers")),
            "{:#?}",
            c.notes
        );
        let value = "v".repeat(1000);
        let many: String = (0..6).map(|i| format!("  X-{i}: {value}\n")).collect();
        let big = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: hdrs, namespace: shop}}\ndata:\n{many}"
        );
        let c = compiled(&[POOL, CLASS, &service("web"), &big, &ingress]);
        let names: Vec<&str> = path_policy(&c).response_headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["X-0", "X-1", "X-2", "X-3"]);
        assert_eq!(c.notes.iter().filter(|n| n.contains("bytes a ConfigMap's fields may add")).count(), 2);
    }

    #[test]
    fn a_bad_limit_skips_the_ingress_and_a_snippet_is_only_dropped() {
        let c = compiled(&[
            POOL,
            CLASS,
            &service("web"),
            &annotated("web", "nginx.ingress.kubernetes.io/limit-rps: lots", WEB),
        ]);
        assert!(served(&c).is_empty());
        assert!(
            c.errors.join("\n").contains("limit-rps: refused: \"lots\" is not a whole number"),
            "{:?}",
            c.errors
        );
        let c = compiled(&[
            POOL,
            CLASS,
            &service("web"),
            &annotated("web", "nginx.ingress.kubernetes.io/server-snippet: 'load_module /tmp/x.so;'", WEB),
        ]);
        assert_eq!(served(&c), ["shop/web"]);
        assert!(c.errors.join("\n").contains("server-snippet: refused"), "{:?}", c.errors);
    }

    #[test]
    fn a_canary_joins_its_main_route_and_an_orphan_is_said() {
        let canary =
            "nginx.ingress.kubernetes.io/canary: 'true', nginx.ingress.kubernetes.io/canary-weight: '25'";
        let v2 = "{service: {name: web-v2, port: {number: 80}}}";
        let c = compiled(&[
            POOL,
            CLASS,
            &service("web"),
            &service("web-v2"),
            &annotated("web", "", WEB),
            &annotated("web-canary", canary, v2),
        ]);
        assert_eq!(served(&c), ["shop/web"], "a canary is not a route of its own");
        let p = &c.spec.l7.routes.hosts()[0].paths[0];
        let k = p.canary.as_ref().unwrap();
        assert_eq!((k.ingress.to_string().as_str(), k.rule.weight), ("shop/web-canary", 25));
        assert!(c.spec.l7.upstreams.iter().any(|u| u.service.name == "web-v2"), "its Service is an upstream");
        assert!(c.notes.iter().all(|n| !n.contains("canary for host")), "{:?}", c.notes);

        let c = compiled(&[POOL, CLASS, &service("web-v2"), &annotated("web-canary", canary, v2)]);
        assert!(c.notes.join("\n").contains("Ingress shop/web-canary: canary for host shop.example.com path / (Prefix): not served: no Ingress that is not a canary routes it"), "{:?}", c.notes);
    }

    #[test]
    fn class_is_chosen_by_field_then_annotation_then_default() {
        let other = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
";
        let by_field = ingress("by-field", "", WEB).replace("spec:\n", "spec:\n  ingressClassName: sluice\n");
        let field_wins = ingress("field-wins", ", annotations: {kubernetes.io/ingress.class: sluice}", WEB)
            .replace("spec:\n", "spec:\n  ingressClassName: nginx\n");
        let legacy = ingress("legacy", ", annotations: {kubernetes.io/ingress.class: sluice}", WEB);
        let legacy_other =
            ingress("legacy-other", ", annotations: {kubernetes.io/ingress.class: nginx}", WEB);
        let unknown = ingress("unknown", "", WEB).replace("spec:\n", "spec:\n  ingressClassName: gone\n");
        let classless = ingress("classless", "", WEB);
        let svc = service("web");
        let all =
            [POOL, CLASS, other, &svc, &by_field, &field_wins, &legacy, &legacy_other, &unknown, &classless];
        let c = compiled(&all);
        assert_eq!(served(&c), ["shop/by-field", "shop/legacy"]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let ignored = c.ignored.join("\n");
        for (name, why) in [
            ("field-wins", "another controller's"),
            ("legacy-other", "another controller's"),
            ("unknown", "does not exist"),
            ("classless", "no IngressClass of Sluice's"),
        ] {
            assert!(
                ignored.contains(&format!("Ingress shop/{name}: ")) && ignored.contains(why),
                "{name}: {ignored}"
            );
        }
        // Sluice's class made the default takes the class-less Ingress; the other class's stay
        // another's.
        let default = CLASS.replace(
            "{name: sluice}",
            "{name: sluice, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}",
        );
        let all = [
            POOL,
            &default,
            other,
            &svc,
            &by_field,
            &field_wins,
            &legacy,
            &legacy_other,
            &unknown,
            &classless,
        ];
        let c = compiled(&all);
        assert_eq!(served(&c), ["shop/by-field", "shop/classless", "shop/legacy"]);
        // "True" is not "true".
        let not_default = default.replace("\"true\"", "\"True\"");
        let c = compiled(&[POOL, &not_default, &svc, &classless]);
        assert!(served(&c).is_empty());
        assert!(c.spec.l7.listeners.is_empty(), "no Ingress of the class: no listener");
    }

    /// The Ingresses no longer served whose status holds an address of our pools are released —
    /// not those served, nor those whose address is outside every pool (another implementation's)
    /// or a LoadBalancer Service's (an ingress controller fronted by it writes that).
    #[test]
    fn ingresses_no_longer_served_are_released_from_our_pools_only() {
        let nginx = "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
";
        let lb = "apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: shop}
spec: {type: LoadBalancer, clusterIP: 198.19.0.50, loadBalancerIP: 198.18.100.15, ports: [{port: 80, nodePort: 30080}]}
";
        let with = |name: &str, class: &str, status: Option<&str>| {
            let ing =
                ingress(name, "", WEB).replace("spec:\n", &format!("spec:\n  ingressClassName: {class}\n"));
            match status {
                Some(ip) => format!("{ing}status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"),
                None => ing,
            }
        };
        let docs = [
            with("served", "sluice", Some("198.18.100.10")),
            with("moved", "nginx", Some("198.18.100.10")),
            with("class-gone", "deleted", Some("198.18.100.12")),
            with("foreign", "nginx", Some("203.0.113.5")),
            with("fronted", "nginx", Some("198.18.100.15")),
            with("never", "nginx", None),
        ];
        let svc = service("web");
        let mut all: Vec<&str> = vec![POOL, CLASS, nginx, lb, &svc];
        all.extend(docs.iter().map(String::as_str));
        let c = compiled(&all);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.load_balancers["shop/nginx"], ["198.18.100.15".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(c.ingress_addresses.keys().collect::<Vec<_>>(), ["shop/served"]);
        let mut released = c.ingress_release.clone();
        released.sort();
        assert_eq!(released, ["shop/class-gone", "shop/moved"]);
        // Sluice's class given no address (its annotation names one outside every pool): its
        // Ingress is served nowhere, and the address its status holds is released.
        let nowhere = CLASS.replace(
            "{name: sluice}",
            "{name: sluice, annotations: {sluice.io/ingress-address: 203.0.113.9}}",
        );
        let c = compiled(&[POOL, &nowhere, &svc, &docs[0]]);
        assert!(c.ingress_addresses.is_empty());
        assert_eq!(c.ingress_release, ["shop/served"]);
    }

    #[test]
    fn ports_by_number_and_name_resolve_to_the_endpoints_target_ports() {
        let by_name = ingress("by-name", "", "{service: {name: web, port: {name: http}}}")
            .replace("spec:\n", "spec:\n  ingressClassName: sluice\n");
        let by_number =
            ingress("by-number", "", WEB).replace("spec:\n", "spec:\n  ingressClassName: sluice\n");
        let c = compiled(&[POOL, CLASS, &service("web"), &by_name, &by_number]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let ups = &c.spec.l7.upstreams;
        let svc = |port| ServiceBackend { namespace: "shop".into(), name: "web".into(), port };
        assert_eq!(
            ups.iter().map(|u| u.service.clone()).collect::<Vec<_>>(),
            [svc(ServicePort::Number(80)), svc(ServicePort::Name("http".into()))]
        );
        for u in ups {
            let eps: Vec<(String, bool, bool, bool)> =
                u.endpoints.iter().map(|e| (e.addr.to_string(), e.ready, e.serving, e.terminating)).collect();
            assert_eq!(
                eps,
                [
                    ("198.18.1.2:8080".into(), true, true, false),
                    ("198.18.1.3:8081".into(), true, true, false),
                    ("198.18.1.9:8080".into(), false, true, true),
                ]
            );
        }
        // Served on the first free pool address, ports 80 and 443; each Ingress says so.
        let l = &c.spec.l7.listeners;
        assert_eq!(
            (l.len(), l[0].addr.to_string(), l[0].http_port, l[0].https_port),
            (1, "198.18.100.10".into(), 80, 443)
        );
        assert_eq!(
            c.ingress_addresses["shop/by-name"],
            ["198.18.100.10".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn unavailable_backends_are_503_with_an_error_and_the_rest_loads() {
        let docs: Vec<String> = [
            ("resource", "{resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}"),
            ("missing", "{service: {name: nope, port: {number: 80}}}"),
            ("no-port", "{service: {name: web, port: {number: 81}}}"),
            ("udp-port", "{service: {name: web, port: {name: metrics}}}"),
            ("fine", WEB),
        ]
        .iter()
        .map(|(n, b)| ingress(n, "", b).replace("spec:\n", "spec:\n  ingressClassName: sluice\n"))
        .collect();
        let svc = service("web");
        let mut all: Vec<&str> = vec![POOL, CLASS, &svc];
        all.extend(docs.iter().map(String::as_str));
        let c = compiled(&all);
        let backend_of = |name: &str| {
            c.spec.l7.routes.hosts()[0]
                .paths
                .iter()
                .find(|p| p.ingress.name == name)
                .map(|p| p.backend.clone())
        };
        assert_eq!(backend_of("resource"), Some(Backend::Unavailable(Unavailable::Resource)));
        assert_eq!(backend_of("missing"), Some(Backend::Unavailable(Unavailable::MissingService)));
        assert_eq!(backend_of("no-port"), Some(Backend::Unavailable(Unavailable::MissingPort)));
        assert_eq!(backend_of("udp-port"), Some(Backend::Unavailable(Unavailable::MissingPort)));
        assert!(matches!(backend_of("fine"), Some(Backend::Service(_))));
        let e = c.errors.join("\n");
        for want in [
            "inline.yaml:35: Ingress shop/resource: spec.rules[0].http.paths[0].backend.resource: Sluice serves no resource backends; requests routed here get 503",
            "Ingress shop/missing: spec.rules[0].http.paths[0].backend.service.name: Service shop/nope does not exist; requests routed here get 503",
            "Ingress shop/no-port: spec.rules[0].http.paths[0].backend.service.port.number: Service shop/web has no TCP port 81 (it has http (80/TCP), metrics (9090/UDP)); requests routed here get 503",
            "Ingress shop/udp-port: spec.rules[0].http.paths[0].backend.service.port.name: Service shop/web has no TCP port named \"metrics\"",
        ] {
            assert!(e.contains(want), "{want}\nnot in\n{e}");
        }
        // Only the Service port named by a route that resolved has an upstream.
        assert_eq!(c.spec.l7.upstreams.len(), 1);
    }

    #[test]
    fn route_conflicts_are_reported_naming_both_ingresses_and_kept() {
        let a = ingress("a", ", creationTimestamp: '2025-01-01T00:00:00Z'", WEB)
            .replace("spec:\n", "spec:\n  ingressClassName: sluice\n")
            .replace("path: /a,", "path: /same,");
        let b = ingress("b", ", creationTimestamp: '2024-01-01T00:00:00Z'", WEB)
            .replace("spec:\n", "spec:\n  ingressClassName: sluice\n")
            .replace("path: /b,", "path: /same/,");
        let c = compiled(&[POOL, CLASS, &service("web"), &a, &b]);
        assert_eq!(served(&c), ["shop/b"], "the older wins");
        assert_eq!(c.spec.l7.routes.conflicts().len(), 1);
        let n = c.notes.join("\n");
        assert!(n.contains("Ingress shop/a: host shop.example.com: path /same (Prefix) is already routed by Ingress shop/b"), "{n}");
    }

    /// A TLS Secret with these PEM texts, in namespace shop.
    fn secret(name: &str, crt: &str, key: &str) -> String {
        let indent = |t: &str| t.lines().map(|l| format!("    {l}\n")).collect::<String>();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(crt),
            indent(key)
        )
    }

    fn tls_ingress(name: &str, secret: &str, host: &str) -> String {
        ingress(name, "", WEB).replace(
            "spec:\n",
            &format!(
                "spec:\n  ingressClassName: sluice\n  tls: [{{hosts: ['{host}'], secretName: {secret}}}]\n"
            ),
        )
    }

    #[test]
    fn tls_secrets_become_certificates_and_bad_ones_are_errors_naming_secret_and_ingress() {
        let (rsa, ec, ed) = (key(&PKCS_RSA_SHA256), key(&PKCS_ECDSA_P256_SHA256), key(&PKCS_ED25519));
        let good_rsa = secret("rsa", &cert(&rsa, &["shop.example.com"], (2100, 1, 1)), &rsa.serialize_pem());
        let good_ed = secret("ed", &cert(&ed, &["*.example.com"], (2100, 1, 1)), &ed.serialize_pem());
        let ec_cert = cert(&ec, &["x.example.com"], (2100, 1, 1));
        let bad: Vec<(&str, String, &str)> = vec![
            ("not-pem", secret("not-pem", "hello", &ec.serialize_pem()), "tls.crt is not PEM"),
            (
                "no-cert",
                secret("no-cert", &ec.serialize_pem(), &ec.serialize_pem()),
                "tls.crt holds no CERTIFICATE block",
            ),
            (
                "mismatch",
                secret("mismatch", &ec_cert, &rsa.serialize_pem()),
                "tls.key does not match the certificate",
            ),
            (
                "expired",
                secret("expired", &cert(&ec, &["x.example.com"], (2020, 1, 1)), &ec.serialize_pem()),
                "the certificate in tls.crt expired at 2020-01-01T00:00:00Z",
            ),
            ("no-key", secret("no-key", &ec_cert, "hello"), "tls.key holds no private key"),
        ];
        let opaque =
            "apiVersion: v1\nkind: Secret\nmetadata: {name: opaque, namespace: shop}\nstringData: {a: b}\n";
        let mut docs: Vec<String> =
            vec![POOL.into(), CLASS.into(), service("web"), good_rsa, good_ed, opaque.into()];
        docs.push(tls_ingress("web", "rsa", "shop.example.com"));
        docs.push(tls_ingress("wild", "ed", "*.example.com"));
        docs.push(tls_ingress("web2", "rsa", "www.example.com"));
        docs.push(tls_ingress("opaque", "opaque", "o.example.com"));
        docs.push(tls_ingress("absent", "absent", "a.example.com"));
        for (name, s, _) in &bad {
            docs.push(s.clone());
            docs.push(tls_ingress(&format!("uses-{name}"), name, "x.example.com"));
        }
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let c = compiled(&refs);
        let certs = &c.spec.l7.certificates;
        let names: Vec<String> = certs.iter().map(|c| c.secret.to_string()).collect();
        assert_eq!(names, ["shop/ed", "shop/rsa"], "the good ones load");
        let rsa_cert = &certs[1];
        assert_eq!(rsa_cert.ingresses.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["web", "web2"]);
        assert_eq!(
            rsa_cert.hosts,
            [HostRule::Precise("shop.example.com".into()), HostRule::Precise("www.example.com".into())]
        );
        assert_eq!(rsa_cert.not_after_unix_s, 4_102_444_800);
        assert_eq!(certs[0].key_format, sluice_model::l7::KeyFormat::Pkcs8);
        let e = c.errors.join("\n");
        for (name, _, why) in &bad {
            let want = format!("Ingress shop/uses-{name}: spec.tls[0].secretName: Secret shop/{name}: {why}");
            assert!(e.contains(&want), "{want}\nnot in\n{e}");
        }
        assert!(e.contains("Ingress shop/opaque: spec.tls[0].secretName: Secret shop/opaque: is of type \"Opaque\", not kubernetes.io/tls"), "{e}");
        assert!(
            e.contains("Ingress shop/absent: spec.tls[0].secretName: Secret shop/absent: does not exist"),
            "{e}"
        );
        // Every route still loads, and no key reaches an error.
        assert_eq!(served(&c).len(), 10);
        for k in [&rsa, &ec, &ed] {
            let pem = k.serialize_pem();
            let body = pem.lines().nth(1).unwrap();
            assert!(!e.contains(body), "{e}");
        }
        // And the whole generation survives the trip through the image.
        let t = sluice_model::service::ServiceTable::build(&c.spec).unwrap();
        let back = sluice_model::image::decode(&sluice_model::image::encode(&t)).unwrap();
        assert_eq!(back.l7(), &*c.spec.l7);
    }

    #[test]
    fn an_implementation_specific_path_sluice_cannot_route_is_an_error_for_its_class_only() {
        let re = ingress("re", "", WEB)
            .replace("spec:\n", "spec:\n  ingressClassName: sluice\n")
            .replace("path: /re, pathType: Prefix", "path: '/re[0-9]+', pathType: ImplementationSpecific");
        let c = compiled(&[POOL, CLASS, &service("web"), &re]);
        assert!(c.errors.join("\n").contains("Ingress shop/re: spec.rules[0].http.paths[0].path: \"/re[0-9]+\" is not a path Sluice's class routes"), "{:?}", c.errors);
        let nginx = re.replace("ingressClassName: sluice", "ingressClassName: nginx");
        let c = compiled(&[POOL, CLASS, &service("web"), &nginx]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
    }

    #[test]
    fn an_ingress_class_address_is_named_or_taken_after_the_services() {
        let lb = "apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec: {type: LoadBalancer, ports: [{port: 53, protocol: UDP}]}\n";
        let ing = ingress("web", "", WEB).replace("spec:\n", "spec:\n  ingressClassName: sluice\n");
        let c = compiled(&[POOL, CLASS, lb, &service("web"), &ing]);
        assert_eq!(c.load_balancers["shop/lb"], ["198.18.100.10".parse::<std::net::IpAddr>().unwrap()]);
        assert_eq!(c.spec.l7.listeners[0].addr.to_string(), "198.18.100.11");
        let named = CLASS.replace(
            "{name: sluice}",
            "{name: sluice, annotations: {sluice.io/ingress-address: 198.18.100.17}}",
        );
        let c = compiled(&[POOL, &named, lb, &service("web"), &ing]);
        assert_eq!(c.spec.l7.listeners[0].addr.to_string(), "198.18.100.17");
        let outside = named.replace("198.18.100.17", "203.0.113.1");
        let c = compiled(&[POOL, &outside, lb, &service("web"), &ing]);
        assert!(c.spec.l7.listeners.is_empty());
        assert!(c.errors.join("\n").contains("IngressClass sluice: metadata.annotations[sluice.io/ingress-address]: 203.0.113.1 is in no IPAddressPool"), "{:?}", c.errors);
    }
}
