//! ingress-nginx's annotations, as the proxy core serves them: one fixture per behaviour — a
//! route's policy and a request in; Sluice's own answer, or the request the upstream gets and
//! the response the client gets, out.

use std::net::SocketAddr;
use std::rc::Rc;

use sluice_l7::proxy::{Action, Config, Conn, Context, Generation};
use sluice_model::l7::{Certificate, Endpoint, KeyFormat, L7Table, SecretRef, Upstream};
use sluice_model::policy::{Cidr, Cors, Header, Policy, Redirect};
use sluice_model::route::{
    Backend, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
    ServiceBackend, ServicePort,
};

const CLIENT: &str = "198.18.0.7:40000";

fn web() -> ServiceBackend {
    ServiceBackend { namespace: "ns".into(), name: "web".into(), port: ServicePort::Number(80) }
}

/// `secure.example` (which has a certificate) and `plain.example` (which has none), both `/` →
/// web, with `policy`.
fn table(policy: &Policy) -> L7Table {
    let rule = |host: &str| RuleSpec {
        host: HostRule::new(Some(host)).unwrap(),
        paths: vec![PathSpec {
            path_type: PathType::Prefix,
            path: RulePath::new("/").unwrap(),
            backend: Backend::Service(web()),
        }],
    };
    let ingress = IngressSpec {
        id: IngressRef::new("ns", "app"),
        created_unix_s: Some(1),
        default_backend: None,
        rules: vec![rule("secure.example"), rule("plain.example")],
        policy: policy.clone(),
        canary: None,
        dialect: Default::default(),
    };
    let endpoint =
        Endpoint { addr: "10.0.0.1:8080".parse().unwrap(), ready: true, serving: true, terminating: false };
    L7Table {
        routes: RouteTable::compile(&[ingress]),
        upstreams: vec![Upstream { service: web(), endpoints: vec![endpoint], external: None }],
        // Only its hosts matter here (routing and redirects); TLS itself is tested elsewhere.
        certificates: vec![Certificate {
            secret: SecretRef { namespace: "ns".into(), name: "tls".into() },
            ingresses: vec![IngressRef::new("ns", "app")],
            hosts: vec![HostRule::new(Some("secure.example")).unwrap()],
            chain_der: vec![],
            key_format: KeyFormat::Pkcs8,
            key_der: vec![],
            not_after_unix_s: i64::MAX,
        }],
        listeners: vec![],
    }
}

/// What one request gave: Sluice's answer (status line and head) or the upstream request and
/// the response relayed for a `200` from the upstream.
#[derive(Debug)]
enum Outcome {
    Local(String),
    Proxied { upstream: String, client: String },
}

fn serve(policy: &Policy, https: bool, request: &str) -> Outcome {
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(policy))));
    let peer: SocketAddr = CLIENT.parse().unwrap();
    let mut conn = Conn::new(&ctx, peer, if https { 443 } else { 80 }, https, 0);
    let buf = conn.client_read_buf();
    buf[..request.len()].copy_from_slice(request.as_bytes());
    conn.client_read(&mut ctx, request.len(), 0);
    let mut attached = false;
    while let Some(a) = conn.poll_action() {
        if let Action::Connect(_) = a {
            attached = true;
            conn.upstream_connected(&mut ctx, false, 0);
        }
    }
    if !attached {
        let out = String::from_utf8(conn.client_write_buf().to_vec()).unwrap();
        return Outcome::Local(out);
    }
    let upstream = String::from_utf8(conn.upstream_write_buf().to_vec()).unwrap();
    let n = upstream.len();
    conn.upstream_wrote(&mut ctx, n, 0);
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    conn.upstream_read_buf()[..response.len()].copy_from_slice(response);
    conn.upstream_read(&mut ctx, response.len(), 0);
    let client = String::from_utf8(conn.client_write_buf().to_vec()).unwrap();
    Outcome::Proxied { upstream, client }
}

fn get(host: &str, target: &str, fields: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n")
}

/// Sluice answers `status` itself, its head holding every line of `has` and none of `lacks`.
fn local(policy: &Policy, https: bool, request: &str, status: u16, has: &[&str], lacks: &[&str]) {
    match serve(policy, https, request) {
        Outcome::Local(out) => {
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{request:?} → {out}");
            for h in has {
                assert!(out.contains(&format!("{h}\r\n")), "{request:?}: lacks {h:?}:\n{out}");
            }
            for l in lacks {
                assert!(!out.contains(l), "{request:?}: has {l:?}:\n{out}");
            }
        }
        p => panic!("{request:?}: proxied, expected {status}: {p:?}"),
    }
}

/// The request is proxied; the upstream request has `up`, lacks `up_lacks`; the response the
/// client gets has `down`.
fn proxied(policy: &Policy, https: bool, request: &str, up: &[&str], up_lacks: &[&str], down: &[&str]) {
    match serve(policy, https, request) {
        Outcome::Proxied { upstream, client } => {
            for h in up {
                assert!(
                    upstream.contains(&format!("{h}\r\n")),
                    "{request:?}: upstream lacks {h:?}:\n{upstream}"
                );
            }
            for h in up_lacks {
                assert!(
                    !upstream.to_ascii_lowercase().contains(&h.to_ascii_lowercase()),
                    "{request:?}: upstream has {h:?}:\n{upstream}"
                );
            }
            for h in down {
                assert!(client.contains(&format!("{h}\r\n")), "{request:?}: client lacks {h:?}:\n{client}");
            }
        }
        o => panic!("{request:?}: expected to be proxied: {o:?}"),
    }
}

#[test]
fn ssl_redirect_is_308_for_a_host_with_a_certificate() {
    let p = Policy::default();
    local(
        &p,
        false,
        &get("secure.example", "/a/b/?x=1", ""),
        308,
        &["Location: https://secure.example/a/b/?x=1"],
        &[],
    );
    local(
        &p,
        false,
        &get("secure.example:80", "/shop/", ""),
        308,
        &["Location: https://secure.example/shop"],
        &[],
    );
    // No certificate: proxied as is; over HTTPS: proxied, with HSTS.
    proxied(&p, false, &get("plain.example", "/", ""), &["Host: plain.example"], &[], &[]);
    proxied(
        &p,
        true,
        &get("secure.example", "/", ""),
        &[],
        &[],
        &["Strict-Transport-Security: max-age=31536000; includeSubDomains"],
    );
    let kept = Policy { preserve_trailing_slash: true, ..Policy::default() };
    local(
        &kept,
        false,
        &get("secure.example", "/shop/", ""),
        308,
        &["Location: https://secure.example/shop/"],
        &[],
    );
    let off = Policy { ssl_redirect: false, ..Policy::default() };
    proxied(&off, false, &get("secure.example", "/", ""), &[], &[], &[]);
    let forced = Policy { force_ssl_redirect: true, ..Policy::default() };
    local(&forced, false, &get("plain.example", "/x", ""), 308, &["Location: https://plain.example/x"], &[]);
    // HTTPS without a certificate of its own: no HSTS.
    match serve(&p, true, &get("plain.example", "/", "")) {
        Outcome::Proxied { client, .. } => assert!(!client.contains("Strict-Transport-Security"), "{client}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn redirects_and_app_root() {
    let p = Policy {
        ssl_redirect: false,
        redirect: Some(Redirect { location: "https://new.example/".into(), code: 301 }),
        ..Policy::default()
    };
    local(&p, false, &get("plain.example", "/any", ""), 301, &["Location: https://new.example/"], &[]);
    let root = Policy { ssl_redirect: false, app_root: Some("/app".into()), ..Policy::default() };
    local(&root, false, &get("plain.example", "/", ""), 302, &["Location: /app"], &[]);
    proxied(&root, false, &get("plain.example", "/other", ""), &["GET /other HTTP/1.1"], &[], &[]);
}

#[test]
fn source_ranges_and_deny() {
    let allow = Policy { allow_sources: vec![Cidr::parse("203.0.113.0/24").unwrap()], ..Policy::default() };
    local(&allow, false, &get("plain.example", "/", ""), 403, &[], &[]);
    let allow_us = Policy { allow_sources: vec![Cidr::parse("198.18.0.0/15").unwrap()], ..Policy::default() };
    proxied(&allow_us, false, &get("plain.example", "/", ""), &[], &[], &[]);
    let deny = Policy { deny_sources: vec![Cidr::parse("198.18.0.7").unwrap()], ..Policy::default() };
    local(&deny, false, &get("plain.example", "/", ""), 403, &[], &[]);
    let denied = Policy { deny: Some("auth-secret missing".into()), ..Policy::default() };
    local(&denied, false, &get("plain.example", "/", ""), 503, &[], &["auth-secret"]);
}

#[test]
fn upstream_fields_vhost_prefix_and_set_headers() {
    let p = Policy {
        upstream_vhost: Some("internal.svc".into()),
        forwarded_prefix: Some("/shop".into()),
        request_headers: vec![Header::new("X-Env", "prod").unwrap()],
        response_headers: vec![Header::new("X-Served-By", "sluice").unwrap()],
        ..Policy::default()
    };
    proxied(
        &p,
        false,
        &get("plain.example", "/a", "X-Env: dev\r\nX-Forwarded-Prefix: /evil\r\n"),
        &[
            "Host: internal.svc",
            "X-Forwarded-Prefix: /shop",
            "X-Env: prod",
            "X-Forwarded-Host: plain.example",
        ],
        &["\nhost: plain.example", "x-env: dev", "/evil"],
        &["X-Served-By: sluice"],
    );
}

#[test]
fn cors_preflight_and_responses() {
    let p = Policy {
        cors: Some(Cors {
            allow_origins: vec!["https://app.example".into()],
            allow_methods: "GET, POST".into(),
            allow_headers: "X-A".into(),
            expose_headers: String::new(),
            allow_credentials: true,
            max_age_s: 600,
        }),
        ..Policy::default()
    };
    let preflight = "OPTIONS /api HTTP/1.1\r\nHost: plain.example\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: POST\r\n\r\n";
    local(
        &p,
        false,
        preflight,
        204,
        &[
            "Access-Control-Allow-Origin: https://app.example",
            "Access-Control-Allow-Credentials: true",
            "Access-Control-Allow-Methods: GET, POST",
            "Access-Control-Max-Age: 600",
        ],
        &["Content-Length", "204 No Content\n"],
    );
    proxied(
        &p,
        false,
        &get("plain.example", "/api", "Origin: https://app.example\r\n"),
        &[],
        &[],
        &["Access-Control-Allow-Origin: https://app.example"],
    );
    // Another origin: no CORS fields; a preflight from it is proxied like any OPTIONS.
    match serve(&p, false, &get("plain.example", "/api", "Origin: https://evil.example\r\n")) {
        Outcome::Proxied { client, .. } => assert!(!client.contains("Access-Control"), "{client}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn body_size_and_timeouts_per_route() {
    let small = Policy { body_limit: Some(4), ..Policy::default() };
    let post = "POST / HTTP/1.1\r\nHost: plain.example\r\nContent-Length: 5\r\n\r\nhello";
    local(&small, false, post, 413, &[], &[]);
    let none = Policy { body_limit: Some(0), ..Policy::default() };
    let big = "POST / HTTP/1.1\r\nHost: plain.example\r\nContent-Length: 2000000\r\n\r\n";
    proxied(&none, false, big, &["Content-Length: 2000000"], &[], &[]);
    // The gateway's 1 MiB otherwise.
    local(&Policy::default(), false, big, 413, &[], &[]);
}

#[test]
fn basic_auth_without_credentials_is_401_with_the_realm() {
    let p = Policy {
        basic_auth: Some(sluice_model::policy::BasicAuth {
            realm: "Shop staff".into(),
            users: vec![(
                "foo".into(),
                sluice_model::policy::PasswordHash::parse("{SHA}C+7Hteo/D9vJXQ3UfzxbwnXaijM=").unwrap(),
            )],
        }),
        ..Policy::default()
    };
    local(
        &p,
        false,
        &get("plain.example", "/", ""),
        401,
        &["WWW-Authenticate: Basic realm=\"Shop staff\""],
        &[],
    );
    local(&p, false, &get("plain.example", "/", "Authorization: Basic Zm9vOndyb25n\r\n"), 401, &[], &[]);
}
