//! Ingresses, IngressClasses and Secrets: checked as the API server would, into typed values.
//!
//! - [`Ingress`]: rule hosts as [`HostRule`]s, Exact and Prefix paths as [`RulePath`]s (the
//!   route table's own checks, so control refuses what the gateway could not route), backends
//!   as [`IngressBackend`]s, `tls[]` hosts as [`HostRule`]s, the creation time, and both ways of
//!   naming a class (`spec.ingressClassName`, the legacy `kubernetes.io/ingress.class`), and
//!   what its `status.loadBalancer.ingress` says now (addresses checked: a bad one is a problem,
//!   as the API server's validation would make it). Which Ingresses are Sluice's is decided at
//!   compile, where the IngressClasses are known.
//! - [`IngressClass`]: its controller and whether it is the default class.
//! - [`Secret`]: its type and its data, base64-decoded, `stringData` merged in (the API server
//!   does that; manifest mode must too). TLS material is parsed at compile, for the Ingresses
//!   that use it, so that an error can name both.
//!
//! Not hot path. No `unsafe`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_model::route::{HostRule, PathType, RulePath, ServicePort};

use super::service::Created;
use super::{Checked, Named, Problem, choose, namespace_of, verdict};
use crate::objects;
use crate::objects::ServiceBackendPort;

/// The legacy annotation naming an Ingress's class (still honoured: `docs/kubernetes.md` §3.1).
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The annotation on an IngressClass of Sluice's naming the address its Ingresses are served on
/// (one of an IPAddressPool's). Without it, the class takes one from the pool that
/// `metallb.io/address-pool` names, else from the auto-assigning pools.
pub const INGRESS_ADDRESS_ANNOTATION: &str = "sluice.io/ingress-address";
/// Sluice's IngressClass controller (`spec.controller`).
pub const CONTROLLER: &str = "sluice.io/ingress";
/// The annotation that makes an IngressClass the default (value `"true"`).
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// An Ingress, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `metadata.creationTimestamp`, when stated (the older Ingress wins a route conflict).
    pub created: Option<Created>,
    /// `spec.ingressClassName`.
    pub class_name: Option<String>,
    /// The `kubernetes.io/ingress.class` annotation.
    pub legacy_class: Option<String>,
    /// `spec.defaultBackend`.
    pub default_backend: Option<IngressBackend>,
    /// `spec.rules`.
    pub rules: Vec<IngressRule>,
    /// `spec.tls`.
    pub tls: Vec<IngressTls>,
    /// Annotations, as written.
    pub annotations: BTreeMap<String, String>,
    /// ingress-nginx's annotations, read ([`super::annotations`]).
    pub nginx: super::annotations::Annotations,
    /// `status.loadBalancer.ingress[].ip`, in order: what the status says the Ingress is served
    /// on (the leader writes it only when it differs, and releases it when the Ingress stops
    /// being Sluice's).
    pub status_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].hostname`, in order. Sluice writes addresses only, so a
    /// status that names a host is not the one Sluice would write: the leader compares these
    /// too (they must be none), and its write replaces them (the list is atomic).
    pub status_hostnames: Vec<String>,
}

/// An Ingress backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressBackend {
    /// A Service of the Ingress's namespace, and one of its ports.
    Service {
        /// `service.name`.
        name: String,
        /// `service.port`: number or name.
        port: ServicePort,
    },
    /// A `resource` backend (Sluice serves none: 503).
    Resource,
}

/// `spec.rules[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    /// `host`.
    pub host: HostRule,
    /// `http.paths`.
    pub paths: Vec<IngressPath>,
}

/// A path as an Ingress writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathValue {
    /// A path the route table takes (Exact and Prefix paths always are; an absent
    /// ImplementationSpecific path is `/`).
    Rule(RulePath),
    /// An ImplementationSpecific path that is not a rule path (a regex of ingress-nginx's
    /// class, say): legal for the API server, refused by Sluice's class at compile.
    Other(String),
}

/// `spec.rules[].http.paths[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    /// `pathType`.
    pub path_type: PathType,
    /// `path`.
    pub path: PathValue,
    /// `backend`.
    pub backend: IngressBackend,
}

/// `spec.tls[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressTls {
    /// `hosts`.
    pub hosts: Vec<HostRule>,
    /// `secretName` (a Secret of the Ingress's namespace).
    pub secret_name: Option<String>,
}

/// An IngressClass, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClass {
    /// Its name (cluster-scoped).
    pub name: String,
    /// `spec.controller`.
    pub controller: Option<String>,
    /// Annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub is_default: bool,
    /// [`INGRESS_ADDRESS_ANNOTATION`]: the address to serve it on.
    pub address: Option<std::net::IpAddr>,
    /// `metallb.io/address-pool`: the pool to take the address from.
    pub pool: Option<String>,
}

/// A Secret, checked: its data decoded, `stringData` merged in.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `type` (default `Opaque`).
    pub type_: String,
    /// `data` (base64-decoded) with `stringData` over it. Never printed (its `Debug` shows the
    /// keys only).
    pub data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("type_", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Named for Ingress {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Ingress {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl Named for IngressClass {
    fn namespace(&self) -> &str {
        ""
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Secret {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks an Ingress as the API server would (networking/v1 validation).
pub fn ingress(ing: objects::Ingress) -> Checked<Ingress> {
    let mut problems = Vec::new();
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        problems.push(Problem::new("spec", "an Ingress needs rules or a defaultBackend"));
    }
    let default_backend =
        spec.default_backend.as_ref().map(|b| backend("spec.defaultBackend", b, &mut problems));
    let mut rules = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.iter().enumerate() {
        let host = host(&format!("spec.rules[{i}].host"), rule.host.as_deref(), &mut problems);
        let mut paths = Vec::new();
        for (j, p) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            const TYPES: [(&str, PathType); 3] = [
                ("Exact", PathType::Exact),
                ("Prefix", PathType::Prefix),
                ("ImplementationSpecific", PathType::ImplementationSpecific),
            ];
            let path_type = match p.path_type.as_deref() {
                None => {
                    let required = "required: Exact, Prefix or ImplementationSpecific";
                    problems.push(Problem::new(format!("{at}.pathType"), required));
                    None
                }
                Some(t) => choose(&format!("{at}.pathType"), t, &TYPES, &mut problems),
            };
            // Exact and Prefix paths as the route table takes them ([`RulePath::new`]: absolute,
            // no `//`, `/./`, `/../`, `%2f`, only URL path characters), as the API server does.
            // An ImplementationSpecific path is the class's business: kept as written when it
            // is not a rule path, and refused by Sluice's class at compile.
            let path = match (path_type, p.path.as_deref()) {
                (Some(PathType::ImplementationSpecific), None) => Some(PathValue::Rule(RulePath::root())),
                (Some(PathType::ImplementationSpecific), Some(text)) => Some(
                    RulePath::new(text).map_or_else(|_| PathValue::Other(text.to_owned()), PathValue::Rule),
                ),
                (_, text) => match RulePath::new(text.unwrap_or("")) {
                    Ok(r) => Some(PathValue::Rule(r)),
                    Err(e) => {
                        if path_type.is_some() {
                            problems.push(Problem::new(format!("{at}.path"), e.to_string()));
                        }
                        None
                    }
                },
            };
            let backend = backend(&format!("{at}.backend"), &p.backend, &mut problems);
            if let (Some(path_type), Some(path)) = (path_type, path) {
                paths.push(IngressPath { path_type, path, backend });
            }
        }
        rules.extend(host.map(|host| IngressRule { host, paths }));
    }
    let mut tls = Vec::with_capacity(spec.tls.len());
    for (i, t) in spec.tls.iter().enumerate() {
        let mut hosts = Vec::with_capacity(t.hosts.len());
        for (j, h) in t.hosts.iter().enumerate() {
            hosts.extend(host(&format!("spec.tls[{i}].hosts[{j}]"), Some(h), &mut problems));
        }
        tls.push(IngressTls { hosts, secret_name: t.secret_name.clone().filter(|s| !s.is_empty()) });
    }
    let created = ing.metadata.creation_timestamp.as_deref().and_then(|t| {
        let created = Created::parse(t);
        if created.is_none() {
            problems.push(Problem::new(
                "metadata.creationTimestamp",
                format!("{t:?} is not a time as the API server writes it (\"2025-01-01T00:00:00Z\")"),
            ));
        }
        created
    });
    let (status_ips, status_hostnames) = status(ing.status.as_ref(), &mut problems);
    let checked = Ingress {
        namespace: namespace_of(&ing.metadata).to_owned(),
        name: ing.metadata.name.clone().unwrap_or_default(),
        created,
        class_name: spec.ingress_class_name.clone(),
        legacy_class: ing.metadata.annotations.get(LEGACY_CLASS_ANNOTATION).cloned(),
        default_backend,
        rules,
        tls,
        nginx: super::annotations::read(namespace_of(&ing.metadata), &ing.metadata.annotations),
        annotations: ing.metadata.annotations.clone(),
        status_ips,
        status_hostnames,
    };
    verdict(checked, problems)
}

/// `status.loadBalancer.ingress[]`: the addresses (each checked) and the host names, each in
/// order. An entry may have either or both (`ports` are not read).
fn status(
    status: Option<&objects::IngressStatus>,
    problems: &mut Vec<Problem>,
) -> (Vec<IpAddr>, Vec<String>) {
    let entries =
        status.and_then(|s| s.load_balancer.as_ref()).map(|lb| lb.ingress.as_slice()).unwrap_or_default();
    let mut ips = Vec::new();
    let mut hostnames = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(ip) = e.ip.as_deref() {
            ips.extend(super::address(&format!("status.loadBalancer.ingress[{i}].ip"), ip, problems));
        }
        hostnames.extend(e.hostname.clone());
    }
    (ips, hostnames)
}

/// A host (a rule's or a `tls[]` entry's): a lowercase DNS name, perhaps with a wildcard first
/// label — checked by the route table's own rule ([`HostRule::new`]).
fn host(at: &str, h: Option<&str>, problems: &mut Vec<Problem>) -> Option<HostRule> {
    HostRule::new(h).map_err(|e| problems.push(Problem::new(at, e.to_string()))).ok()
}

/// A backend: exactly one of a Service port (by number or by name) and a resource.
fn backend(at: &str, b: &objects::IngressBackend, problems: &mut Vec<Problem>) -> IngressBackend {
    // What a refused backend stands for meanwhile (the Ingress is refused whole anyway).
    let refused = IngressBackend::Resource;
    match (&b.service, &b.resource) {
        (Some(svc), None) => {
            let port = match &svc.port {
                Some(ServiceBackendPort { name: Some(_), number: Some(_) }) => {
                    let m = "give a port name or a number, not both";
                    problems.push(Problem::new(format!("{at}.service.port"), m));
                    return refused;
                }
                Some(ServiceBackendPort { name: None, number: None }) | None => {
                    let m = "required: `number: 8080` or `name: http`";
                    problems.push(Problem::new(format!("{at}.service.port"), m));
                    return refused;
                }
                Some(ServiceBackendPort { number: Some(n), .. }) => match u16::try_from(*n) {
                    Ok(p) if p != 0 => ServicePort::Number(p),
                    _ => {
                        let m = format!("{n} is not a port (1..=65535)");
                        problems.push(Problem::new(format!("{at}.service.port.number"), m));
                        return refused;
                    }
                },
                Some(ServiceBackendPort { name: Some(n), .. }) => ServicePort::Name(n.clone()),
            };
            IngressBackend::Service { name: svc.name.clone(), port }
        }
        (None, Some(_)) => IngressBackend::Resource,
        _ => {
            problems.push(Problem::new(at, "exactly one of `service` and `resource` is required"));
            refused
        }
    }
}

/// An IngressClass: its controller, whether it is the default, and where to serve it.
pub fn ingress_class(c: objects::IngressClass) -> Checked<IngressClass> {
    let mut problems = Vec::new();
    let annotations = &c.metadata.annotations;
    let address = annotations.get(INGRESS_ADDRESS_ANNOTATION).and_then(|a| {
        let at = format!("metadata.annotations[{INGRESS_ADDRESS_ANNOTATION}]");
        super::address(&at, a.trim(), &mut problems)
    });
    let checked = IngressClass {
        name: c.metadata.name.clone().unwrap_or_default(),
        controller: c.spec.controller.clone(),
        // Kubernetes takes exactly "true" (`IsDefaultIngressClass`).
        is_default: annotations.get(DEFAULT_CLASS_ANNOTATION).is_some_and(|v| v == "true"),
        address,
        pool: annotations.get(super::POOL_ANNOTATION).cloned(),
    };
    verdict(checked, problems)
}

/// Standard base64 (the encoding of Secret `data`), whitespace ignored; `None` if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    sluice_model::policy::base64(&s)
}

/// Checks a Secret, with the API server's default `type: Opaque`, and decodes its data.
pub fn secret(sec: objects::Secret) -> Checked<Secret> {
    let mut problems = Vec::new();
    let type_ = sec.type_.clone().unwrap_or_else(|| "Opaque".into());
    let mut data = BTreeMap::new();
    for (k, v) in &sec.data {
        match base64_decode(v) {
            Some(bytes) => {
                data.insert(k.clone(), bytes);
            }
            None => problems.push(Problem::new(
                format!("data.{k}"),
                "not base64 (put plain text under stringData instead)",
            )),
        }
    }
    // The API server merges stringData over data (`docs/kubernetes.md` §4.1).
    for (k, v) in &sec.string_data {
        data.insert(k.clone(), v.as_bytes().to_vec());
    }
    if type_ == "kubernetes.io/tls" {
        for k in ["tls.crt", "tls.key"] {
            if !data.contains_key(k) {
                problems.push(Problem::new(
                    format!("data.{k}"),
                    format!("a kubernetes.io/tls Secret needs {k} (as `kubectl create secret tls` writes)"),
                ));
            }
        }
    }
    let checked = Secret {
        namespace: namespace_of(&sec.metadata).to_owned(),
        name: sec.metadata.name.clone().unwrap_or_default(),
        type_,
        data,
    };
    verdict(checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_as_the_api_server_encodes() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("aGVs\nbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("aGk").as_deref(), None);
        assert_eq!(base64_decode("a===").as_deref(), None);
        assert_eq!(base64_decode("a-b_").as_deref(), None);
    }

    fn load(yaml: &str) -> Checked<Ingress> {
        ingress(serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn an_ingress_is_typed_once() {
        let ing = load(
            "metadata: {name: web, namespace: shop, creationTimestamp: '2025-01-01T00:00:00Z', \
             annotations: {kubernetes.io/ingress.class: legacy}}
spec:
  ingressClassName: sluice
  defaultBackend: {resource: {kind: Bucket, name: b}}
  tls: [{hosts: ['*.shop.com'], secretName: tls}]
  rules:
  - host: shop.com
    http:
      paths:
      - {path: /a/, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
      - {path: '/re[0-9]+', pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
",
        )
        .unwrap();
        assert_eq!((ing.namespace.as_str(), ing.name.as_str()), ("shop", "web"));
        assert_eq!(ing.created.map(|c| c.secs), Some(1_735_689_600));
        assert_eq!(ing.class_name.as_deref(), Some("sluice"));
        assert_eq!(ing.legacy_class.as_deref(), Some("legacy"));
        assert_eq!(ing.default_backend, Some(IngressBackend::Resource));
        assert_eq!(ing.tls[0].hosts, vec![HostRule::Wildcard("shop.com".into())]);
        let p = &ing.rules[0].paths;
        assert_eq!(p[0].path, PathValue::Rule(RulePath::new("/a/").unwrap()));
        assert_eq!(
            p[0].backend,
            IngressBackend::Service { name: "web".into(), port: ServicePort::Name("http".into()) }
        );
        assert_eq!(p[1].path, PathValue::Rule(RulePath::root()));
        assert_eq!(p[2].path, PathValue::Other("/re[0-9]+".into()));
    }

    #[test]
    fn an_ingress_keeps_what_its_status_says() {
        let ing = load(
            "metadata: {name: web}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
status:
  loadBalancer:
    ingress:
    - {ip: 198.18.100.4}
    - {hostname: lb.example.com, ports: [{port: 443, protocol: TCP}]}
    - {ip: '2001:db8::4', hostname: v6.example.com}
",
        )
        .unwrap();
        let ips: Vec<IpAddr> = vec!["198.18.100.4".parse().unwrap(), "2001:db8::4".parse().unwrap()];
        assert_eq!(ing.status_ips, ips);
        assert_eq!(ing.status_hostnames, ["lb.example.com", "v6.example.com"]);
        // No status, or an empty one: nothing.
        for status in ["", "status: {}\n", "status: {loadBalancer: {}}\n"] {
            let ing = load(&format!(
                "metadata: {{name: web}}\nspec: {{defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n{status}"
            ))
            .unwrap();
            assert!(ing.status_ips.is_empty() && ing.status_hostnames.is_empty(), "{status:?}");
        }
    }

    #[test]
    fn a_bad_status_address_is_a_problem_naming_its_field() {
        let e = load(
            "metadata: {name: web}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
status: {loadBalancer: {ingress: [{ip: 198.18.100.4}, {ip: 198.18.100.300}]}}
",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "status.loadBalancer.ingress[1].ip");
        assert_eq!(e[0].message, "\"198.18.100.300\" is not an IP address");
    }

    #[test]
    fn an_ingress_status_has_no_ip_mode() {
        // A Service's entry field, not an Ingress's (IngressLoadBalancerIngress): refused by name.
        let r: Result<objects::Ingress, _> = serde_norway::from_str(
            "metadata: {name: web}\nstatus: {loadBalancer: {ingress: [{ip: 198.18.100.4, ipMode: VIP}]}}\n",
        );
        let e = r.unwrap_err().to_string();
        assert!(e.contains("unknown field `ipMode`"), "{e}");
    }

    #[test]
    fn a_bad_tls_host_is_a_problem_naming_its_field() {
        let e = load(
            "metadata: {name: web}
spec:
  tls: [{hosts: [Shop.com]}]
  defaultBackend: {service: {name: web, port: {number: 80}}}
",
        )
        .unwrap_err();
        assert_eq!(e[0].field, "spec.tls[0].hosts[0]");
    }

    #[test]
    fn secrets_merge_string_data_and_never_print_it() {
        let s: objects::Secret = serde_norway::from_str(
            "metadata: {name: tls}\ntype: kubernetes.io/tls\ndata: {tls.crt: Q0VSVA==}\nstringData: {tls.key: KEYBYTES}\n",
        )
        .unwrap();
        let s = secret(s).unwrap();
        assert_eq!(s.data["tls.crt"], b"CERT");
        assert_eq!(s.data["tls.key"], b"KEYBYTES");
        let shown = format!("{s:?}");
        assert!(!shown.contains("KEYBYTES") && shown.contains("tls.key"), "{shown}");
    }
}
