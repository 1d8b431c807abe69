//! The route table the proxy tests share: `app.example` with `/` → web (the endpoints given),
//! `/empty` → a Service without endpoints, `/gone` → an unavailable backend; other hosts: 404.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::net::SocketAddr;

use sluice_model::l7::{Endpoint, L7Table, Upstream};
use sluice_model::route::{
    Backend, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
    ServiceBackend, ServicePort, Unavailable,
};

/// Endpoint `10.0.0.last:8080`.
pub(crate) fn ep(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 8080))
}

/// Service `ns/name`, port 80.
pub(crate) fn svc(name: &str) -> ServiceBackend {
    ServiceBackend { namespace: "ns".into(), name: name.into(), port: ServicePort::Number(80) }
}

/// The table, with `web`'s endpoints.
pub(crate) fn table(web: &[SocketAddr]) -> L7Table {
    let path = |p: &str, backend: Backend| PathSpec {
        path_type: PathType::Prefix,
        path: RulePath::new(p).unwrap(),
        backend,
    };
    let ingress = IngressSpec {
        policy: Default::default(),
        canary: None,
        dialect: Default::default(),
        id: IngressRef::new("ns", "app"),
        created_unix_s: Some(1),
        default_backend: None,
        rules: vec![RuleSpec {
            host: HostRule::new(Some("app.example")).unwrap(),
            paths: vec![
                path("/", Backend::Service(svc("web"))),
                path("/empty", Backend::Service(svc("empty"))),
                path("/gone", Backend::Unavailable(Unavailable::MissingService)),
            ],
        }],
    };
    let endpoint = |addr| Endpoint { addr, ready: true, serving: true, terminating: false };
    L7Table {
        routes: RouteTable::compile(&[ingress]),
        upstreams: vec![
            Upstream { service: svc("empty"), endpoints: vec![], external: None },
            Upstream {
                service: svc("web"),
                endpoints: web.iter().copied().map(endpoint).collect(),
                external: None,
            },
        ],
        certificates: vec![],
        listeners: vec![],
    }
}
