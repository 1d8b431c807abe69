//! `sluice-control check`: the migration report for ingress-nginx's users.
//!
//! Given a directory of manifests or a `kubectl get ingress,service,secret,configmap -A -o yaml`
//! dump, it compiles the Ingresses as Sluice would serve them — ingress-nginx's IngressClasses
//! included, and the class `nginx` assumed to be ingress-nginx's when the dump holds no
//! IngressClass of that name (a `kubectl get ingress` dump does not) — and says, one line per
//! finding, `file:line: Ingress namespace/name: annotation: verdict: …`:
//! - what is served as ingress-nginx serves it,
//! - what is served differently, and how,
//! - what is ignored, and why,
//! - what is refused, and what that does to the Ingress (dropped annotation, 503, not served),
//!
//! then the other problems compile finds with the Ingresses (a backend Service that does not
//! exist, a path Sluice does not route, a TLS Secret it cannot use, route conflicts). It is
//! [`Report::refused`] — and the command exits non-zero — when anything is refused.
//!
//! Not hot path. No `unsafe`.

use std::path::{Path, PathBuf};

use sluice_model::service::Generation;

use crate::checked::IngressClass;
use crate::checked::annotations::Verdict;
use crate::compile::{Config, INGRESS_NGINX_CONTROLLER, compile};
use crate::load::Loaded;
use crate::store::Located;

/// The class most ingress-nginx installations are given.
pub const NGINX_CLASS: &str = "nginx";

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One line per finding, in file and line order (objects of no file last).
    pub lines: Vec<String>,
    /// Whether anything was refused (the command then exits non-zero).
    pub refused: bool,
    /// Ingresses looked at.
    pub ingresses: usize,
}

/// Builds the report on what was loaded (its load errors included).
pub fn report(mut loaded: Loaded) -> Report {
    let mut out = Report { ingresses: loaded.store.ingresses.len(), ..Report::default() };
    for e in &loaded.errors {
        out.lines.push(e.to_string());
        out.refused = true;
    }
    let store = &mut loaded.store;
    if !store.ingress_classes.iter().any(|c| c.object.name == NGINX_CLASS) {
        store.ingress_classes.push(Located {
            object: IngressClass {
                name: NGINX_CLASS.into(),
                controller: Some(INGRESS_NGINX_CONTROLLER.into()),
                is_default: false,
                address: None,
                pool: None,
            },
            file: PathBuf::new(),
            line: 0,
        });
    }
    let cfg = Config { ingress_nginx_class: true, ..Config::default() };
    let compiled = compile(store, &cfg, Generation(1));
    let about_ingresses = |s: &&String| s.contains("Ingress ");
    for l in &store.ingresses {
        for f in l.object.nginx.findings.iter().filter(|f| f.verdict == Verdict::Served) {
            let at = match f.line {
                0 => format!("Ingress {}", l.object.key()),
                line => format!("{}:{line}: Ingress {}", l.file.display(), l.object.key()),
            };
            // An annotation compile refused (its Secret is missing, say) is said once, refused;
            // one it could not act on (its ConfigMap is missing), once, ignored.
            let prefix = format!("{at}: {}: ", f.annotation);
            let ignored = format!("{prefix}ignored: ");
            if !compiled.errors.iter().any(|e| e.starts_with(&prefix))
                && !compiled.notes.iter().any(|n| n.starts_with(&ignored))
            {
                out.lines.push(format!("{at}: {f}"));
            }
        }
    }
    for e in compiled.errors.iter().filter(about_ingresses) {
        out.lines.push(e.clone());
        out.refused = true;
    }
    out.lines.extend(compiled.notes.iter().filter(about_ingresses).cloned());
    out.lines.extend(compiled.ignored.iter().cloned());
    out.lines.sort_by(|a, b| place(a).cmp(&place(b)).then_with(|| a.cmp(b)));
    out.lines.dedup();
    out
}

/// Where a line says it is: (no file, file, line), so that lines without one come last.
fn place(line: &str) -> (bool, &Path, usize) {
    let mut parts = line.splitn(3, ':');
    match (parts.next(), parts.next().and_then(|n| n.parse::<usize>().ok())) {
        (Some(file), Some(n)) => (false, Path::new(file), n),
        _ => (true, Path::new(""), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load;

    fn check(yaml: &str) -> Report {
        let mut loaded = Loaded::default();
        load::load_str(Path::new("dump.yaml"), yaml, &mut loaded);
        report(loaded)
    }

    const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}], selector: {app: web}}
";

    #[test]
    fn each_annotation_is_one_line_at_its_place() {
        let r = check(&format!(
            "{SERVICE}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: \"false\"
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
    nginx.ingress.kubernetes.io/configuration-snippet: |
      more_set_headers \"X: y\";
    nginx.ingress.kubernetes.io/load-balance: ewma
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"
        ));
        let text = r.lines.join("\n");
        assert!(r.refused, "{text}");
        for want in [
            "dump.yaml:12: Ingress shop/web: nginx.ingress.kubernetes.io/ssl-redirect: served: false",
            "dump.yaml:13: Ingress shop/web: nginx.ingress.kubernetes.io/proxy-body-size: served: 8388608 bytes",
            "dump.yaml:14: Ingress shop/web: nginx.ingress.kubernetes.io/configuration-snippet: refused: nginx \
             configuration text",
            "dump.yaml:16: Ingress shop/web: nginx.ingress.kubernetes.io/load-balance: ignored:",
        ] {
            assert!(r.lines.iter().any(|l| l.starts_with(want)), "{want}\nin:\n{text}");
        }
        assert_eq!(r.lines.iter().filter(|l| l.contains("configuration-snippet")).count(), 1, "{text}");
    }

    /// `custom-headers` and `proxy-set-headers`: served, from the ConfigMap the dump holds (a
    /// field Sluice does not set said beside it); ignored, once, when the ConfigMap is missing.
    #[test]
    fn config_map_annotations_are_served_or_ignored_with_the_reason() {
        let r = check(&format!(
            "{SERVICE}---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: hdrs, namespace: shop}}
  data: {{X-Frame-Options: DENY, Connection: close}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/custom-headers: shop/hdrs
    nginx.ingress.kubernetes.io/proxy-set-headers: upstream
spec:
  ingressClassName: nginx
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
"
        ));
        let text = r.lines.join("\n");
        assert!(!r.refused, "{text}");
        let at = "dump.yaml:20: Ingress shop/web: nginx.ingress.kubernetes.io";
        let want = [
            format!(
                "{at}/custom-headers: served differently: ConfigMap shop/hdrs (dump.yaml:9): data.Connection: not \
                 set: a hop-by-hop or framing field, which Sluice writes for each connection itself"
            ),
            format!(
                "{at}/custom-headers: served: the fields of ConfigMap shop/hdrs (read at compile), added to every \
                 response"
            ),
            "dump.yaml:21: Ingress shop/web: nginx.ingress.kubernetes.io/proxy-set-headers: ignored: ConfigMap \
             shop/upstream does not exist (or was refused: its own error says why); served without these \
             headers until it does"
                .to_owned(),
        ];
        let about: Vec<&String> = r.lines.iter().filter(|l| l.contains("-headers")).collect();
        assert_eq!(about, want.iter().collect::<Vec<_>>(), "{text}");
    }

    #[test]
    fn a_clean_ingress_is_not_refused() {
        let r = check(&format!(
            "{SERVICE}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {{nginx.ingress.kubernetes.io/limit-rps: \"10\"}}
spec:
  ingressClassName: nginx
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
"
        ));
        assert!(!r.refused, "{:#?}", r.lines);
        assert!(
            r.lines.iter().any(|l| l.contains("limit-rps: served: 10 requests a second")),
            "{:#?}",
            r.lines
        );
    }
}
