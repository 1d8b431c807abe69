//! Ingresses, IngressClasses and Secrets: checked as the API server would, and kept as their
//! serde objects (the L7 stage will type them).

use sluice_model::route::{HostRule, RulePath};

use super::{Checked, Named, Problem, choose, namespace_of, verdict};
use crate::objects::{Ingress, IngressBackend, IngressClass, Secret, ServiceBackendPort};

impl Named for Ingress {
    fn namespace(&self) -> &str {
        namespace_of(&self.metadata)
    }
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}

impl Named for IngressClass {
    fn namespace(&self) -> &str {
        namespace_of(&self.metadata)
    }
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}

impl Named for Secret {
    fn namespace(&self) -> &str {
        namespace_of(&self.metadata)
    }
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}

/// Checks an Ingress as the API server would (networking/v1 validation).
pub fn ingress(ing: Ingress) -> Checked<Ingress> {
    let mut problems = Vec::new();
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        problems.push(Problem::new("spec", "an Ingress needs rules or a defaultBackend"));
    }
    if let Some(b) = &spec.default_backend {
        backend("spec.defaultBackend", b, &mut problems);
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        if let Some(h) = &rule.host {
            host(&format!("spec.rules[{i}].host"), h, &mut problems);
        }
        for (j, p) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            const TYPES: [(&str, bool); 3] =
                [("Exact", true), ("Prefix", true), ("ImplementationSpecific", false)];
            let absolute = match p.path_type.as_deref() {
                None => {
                    let required = "required: Exact, Prefix or ImplementationSpecific";
                    problems.push(Problem::new(format!("{at}.pathType"), required));
                    false
                }
                Some(t) => choose(&format!("{at}.pathType"), t, &TYPES, &mut problems).unwrap_or(false),
            };
            // Exact and Prefix paths as the route table takes them ([`RulePath::new`]: absolute,
            // no `//`, `/./`, `/../`, `%2f`, only URL path characters), as the API server does.
            if absolute && let Err(e) = RulePath::new(p.path.as_deref().unwrap_or("")) {
                problems.push(Problem::new(format!("{at}.path"), e.to_string()));
            }
            backend(&format!("{at}.backend"), &p.backend, &mut problems);
        }
    }
    verdict(ing, problems)
}

/// A rule's host: a lowercase DNS name, perhaps with a wildcard first label — checked by the
/// route table's own rule ([`HostRule::new`]), so control refuses what the gateway could not
/// route.
fn host(at: &str, h: &str, problems: &mut Vec<Problem>) {
    if let Err(e) = HostRule::new(Some(h)) {
        problems.push(Problem::new(at, e.to_string()));
    }
}

/// A backend: exactly one of a Service port (by number or by name) and a resource.
fn backend(at: &str, b: &IngressBackend, problems: &mut Vec<Problem>) {
    match (&b.service, &b.resource) {
        (Some(svc), None) => match &svc.port {
            Some(ServiceBackendPort { name: Some(_), number: Some(_) }) => problems
                .push(Problem::new(format!("{at}.service.port"), "give a port name or a number, not both")),
            Some(ServiceBackendPort { name: None, number: None }) | None => problems
                .push(Problem::new(format!("{at}.service.port"), "required: `number: 8080` or `name: http`")),
            Some(ServiceBackendPort { number: Some(n), .. }) if !(1..=65_535).contains(n) => problems.push(
                Problem::new(format!("{at}.service.port.number"), format!("{n} is not a port (1..=65535)")),
            ),
            _ => {}
        },
        (None, Some(_)) => {}
        _ => problems.push(Problem::new(at, "exactly one of `service` and `resource` is required")),
    }
}

/// An IngressClass: nothing to check beyond its fields' names.
pub fn ingress_class(c: IngressClass) -> Checked<IngressClass> {
    Ok(c)
}

/// Whether `s` is standard base64 (the encoding of Secret `data`).
fn is_base64(s: &str) -> bool {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

/// Checks a Secret, with the API server's default `type: Opaque`.
pub fn secret(mut sec: Secret) -> Checked<Secret> {
    let mut problems = Vec::new();
    let ty = sec.type_.get_or_insert_with(|| "Opaque".into()).clone();
    for (k, v) in &sec.data {
        if !is_base64(v) {
            problems.push(Problem::new(
                format!("data.{k}"),
                "not base64 (put plain text under stringData instead)",
            ));
        }
    }
    if ty == "kubernetes.io/tls" {
        for k in ["tls.crt", "tls.key"] {
            if !sec.data.contains_key(k) && !sec.string_data.contains_key(k) {
                problems.push(Problem::new(
                    format!("data.{k}"),
                    format!("a kubernetes.io/tls Secret needs {k} (as `kubectl create secret tls` writes)"),
                ));
            }
        }
    }
    verdict(sec, problems)
}
