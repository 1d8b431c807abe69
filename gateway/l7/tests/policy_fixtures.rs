//! ingress-nginx's annotations, as the proxy core serves them: one fixture per behaviour — a
//! route's policy and a request in; Sluice's own answer, or the request the upstream gets and
//! the response the client gets, out.

use std::net::SocketAddr;
use std::rc::Rc;

use sluice_l7::proxy::{Action, Config, Conn, Context, Generation};
use sluice_model::l7::{Certificate, Endpoint, KeyFormat, L7Table, SecretRef, Upstream};
use sluice_model::policy::{Cidr, Cors, Header, Policy, Redirect, RewriteTarget};
use sluice_model::route::{
    Backend, Dialect, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
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
        |a: &str| Endpoint { addr: a.parse().unwrap(), ready: true, serving: true, terminating: false };
    L7Table {
        routes: RouteTable::compile(&[ingress]),
        upstreams: vec![Upstream {
            service: web(),
            endpoints: vec![endpoint("10.0.0.1:8080"), endpoint("10.0.0.3:8080")],
            external: None,
        }],
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
    Proxied { upstream: String, client: String, to: SocketAddr },
}

fn serve(policy: &Policy, https: bool, request: &str) -> Outcome {
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(policy))));
    serve_in(&mut ctx, https, request, 0)
}

/// One request on a new connection of `ctx` at `now`.
fn serve_in(ctx: &mut Context, https: bool, request: &str, now: u64) -> Outcome {
    let peer: SocketAddr = CLIENT.parse().unwrap();
    let mut conn = Conn::new(ctx, peer, if https { 443 } else { 80 }, https, now);
    let buf = conn.client_read_buf();
    buf[..request.len()].copy_from_slice(request.as_bytes());
    conn.client_read(ctx, request.len(), now);
    let mut attached = None;
    while let Some(a) = conn.poll_action() {
        if let Action::Connect(to) = a {
            attached = Some(to);
            conn.upstream_connected(ctx, false, now);
        }
    }
    let Some(to) = attached else {
        let out = String::from_utf8(conn.client_write_buf().to_vec()).unwrap();
        return Outcome::Local(out);
    };
    let upstream = String::from_utf8(conn.upstream_write_buf().to_vec()).unwrap();
    let n = upstream.len();
    conn.upstream_wrote(ctx, n, now);
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    conn.upstream_read_buf()[..response.len()].copy_from_slice(response);
    conn.upstream_read(ctx, response.len(), now);
    let client = String::from_utf8(conn.client_write_buf().to_vec()).unwrap();
    Outcome::Proxied { upstream, client, to }
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
        Outcome::Proxied { upstream, client, .. } => {
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
    let p = Policy { ssl_redirect: true, ..Policy::default() };
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
    let kept = Policy { preserve_trailing_slash: true, ..p.clone() };
    local(
        &kept,
        false,
        &get("secure.example", "/shop/", ""),
        308,
        &["Location: https://secure.example/shop/"],
        &[],
    );
    let off = Policy::default();
    proxied(&off, false, &get("secure.example", "/", ""), &[], &[], &[]);
    // Without the redirect, no HSTS either.
    match serve(&off, true, &get("secure.example", "/", "")) {
        Outcome::Proxied { client, .. } => assert!(!client.contains("Strict-Transport-Security"), "{client}"),
        o => panic!("{o:?}"),
    }
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
        &["Content-Length", "204 No Content\n", " Error\r\n"],
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
                sluice_model::policy::PasswordHash::parse("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap(),
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
    // foo:secret, whose SHA-1 the Secret holds: proxied, without the credentials.
    proxied(
        &p,
        false,
        &get("plain.example", "/", "Authorization: Basic Zm9vOnNlY3JldA==\r\n"),
        &["GET / HTTP/1.1"],
        &["authorization"],
        &[],
    );
}

#[test]
fn limit_rps_refuses_past_the_burst_and_refills() {
    let p = Policy {
        limits: sluice_model::policy::Limits { rps: Some(2), burst_multiplier: 1, ..Default::default() },
        ..Policy::default()
    };
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(&p))));
    let req = get("plain.example", "/", "");
    let ok = |o: Outcome| matches!(o, Outcome::Proxied { .. });
    // 2 a second, burst 2 × 1: at one instant the burst and one more pass (GCRA), then 503;
    // half a second later one more passes.
    let first: Vec<bool> = (0..4).map(|_| ok(serve_in(&mut ctx, false, &req, 1_000))).collect();
    assert_eq!(first, [true, true, true, false]);
    assert!(ok(serve_in(&mut ctx, false, &req, 500_001_000)));
    assert!(!ok(serve_in(&mut ctx, false, &req, 500_001_000)));
    assert_eq!(ctx.stats().limited, 2);
    // Exempt by limit-whitelist.
    let w = Policy {
        limits: sluice_model::policy::Limits {
            rps: Some(1),
            burst_multiplier: 1,
            whitelist: vec![Cidr::parse("198.18.0.0/16").unwrap()],
            ..Default::default()
        },
        ..Policy::default()
    };
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(&w))));
    assert!((0..10).all(|_| ok(serve_in(&mut ctx, false, &req, 1_000))));
}

/// `app.example`, in ingress-nginx's dialect: the given paths (the first Ingress's, with
/// `policy`) → web (10.0.0.1), and a canary Ingress for `/` → web-v2 (10.0.0.2) with `canary`.
fn nginx_table(
    policy: &Policy,
    paths: &[(&str, PathType)],
    canary: Option<sluice_model::policy::Canary>,
) -> L7Table {
    let v2 = ServiceBackend { name: "web-v2".into(), ..web() };
    let spec = |name: &str, policy: &Policy, canary, backend: &ServiceBackend, paths: &[(&str, PathType)]| {
        IngressSpec {
            id: IngressRef::new("ns", name),
            created_unix_s: Some(1),
            default_backend: None,
            rules: vec![RuleSpec {
                host: HostRule::new(Some("app.example")).unwrap(),
                paths: paths
                    .iter()
                    .map(|&(p, t)| PathSpec {
                        path_type: t,
                        path: RulePath::nginx(p).unwrap(),
                        backend: Backend::Service(backend.clone()),
                    })
                    .collect(),
            }],
            policy: policy.clone(),
            canary,
            dialect: Dialect::IngressNginx,
        }
    };
    let mut ingresses = vec![spec("app", policy, None, &web(), paths)];
    if let Some(c) = canary {
        ingresses.push(spec("app-canary", &Policy::default(), Some(c), &v2, &[("/", PathType::Prefix)]));
    }
    let endpoint =
        |a: &str| Endpoint { addr: a.parse().unwrap(), ready: true, serving: true, terminating: false };
    L7Table {
        routes: RouteTable::compile(&ingresses),
        upstreams: vec![
            Upstream { service: web(), endpoints: vec![endpoint("10.0.0.1:8080")], external: None },
            Upstream { service: v2, endpoints: vec![endpoint("10.0.0.2:8080")], external: None },
        ],
        certificates: vec![],
        listeners: vec![],
    }
}

fn nginx_ctx(table: &L7Table) -> Context {
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(table)));
    ctx
}

#[test]
fn rewrite_target_with_capture_groups() {
    let p =
        Policy { rewrite: Some(RewriteTarget::parse("/$2").unwrap()), use_regex: true, ..Policy::default() };
    let t = nginx_table(&p, &[("/something(/|$)(.*)", PathType::ImplementationSpecific)], None);
    let mut ctx = nginx_ctx(&t);
    for (request, upstream) in [
        ("/something", "GET / HTTP/1.1"),
        ("/something/", "GET / HTTP/1.1"),
        ("/something/new", "GET /new HTTP/1.1"),
        ("/SOMETHING/new?x=1", "GET /new?x=1 HTTP/1.1"),
    ] {
        match serve_in(&mut ctx, false, &get("app.example", request, ""), 0) {
            Outcome::Proxied { upstream: up, .. } => assert!(up.starts_with(upstream), "{request}: {up}"),
            o => panic!("{request}: {o:?}"),
        }
    }
    // Not under the regex: no route, 404.
    assert!(
        matches!(serve_in(&mut ctx, false, &get("app.example", "/other", ""), 0), Outcome::Local(ref o) if o.starts_with("HTTP/1.1 404"))
    );
}

#[test]
fn ingress_nginx_plain_prefixes_and_its_redirects() {
    let t = nginx_table(
        &Policy::default(),
        &[
            ("/app", PathType::ImplementationSpecific),
            ("/docs/", PathType::ImplementationSpecific),
            ("/api", PathType::Prefix),
        ],
        None,
    );
    let mut ctx = nginx_ctx(&t);
    let mut go = |path: &str| serve_in(&mut ctx, false, &get("app.example", path, ""), 0);
    // ImplementationSpecific is a plain string prefix there.
    assert!(matches!(go("/application"), Outcome::Proxied { .. }));
    // Prefix /api: /api itself or under /api/, not /apix.
    assert!(matches!(go("/api/v1"), Outcome::Proxied { .. }));
    assert!(matches!(go("/apix"), Outcome::Local(ref o) if o.starts_with("HTTP/1.1 404")));
    // /docs where a rule has /docs/: 301 to it; merged slashes: 301 to the normal path.
    match go("/docs") {
        Outcome::Local(o) => {
            assert!(o.starts_with("HTTP/1.1 301") && o.contains("Location: /docs/\r\n"), "{o}")
        }
        o => panic!("{o:?}"),
    }
    match go("//app//x?q=1") {
        Outcome::Local(o) => {
            assert!(o.starts_with("HTTP/1.1 301") && o.contains("Location: /app/x?q=1\r\n"), "{o}")
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn canary_by_header_then_cookie_then_weight() {
    let c = sluice_model::policy::Canary {
        header: Some("x-canary".into()),
        cookie: Some("canary".into()),
        weight: 0,
        ..Default::default()
    };
    let t = nginx_table(&Policy::default(), &[("/", PathType::Prefix)], Some(c));
    let mut ctx = nginx_ctx(&t);
    let main: SocketAddr = "10.0.0.1:8080".parse().unwrap();
    let canary: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    let mut to = |fields: &str| match serve_in(&mut ctx, false, &get("app.example", "/", fields), 0) {
        Outcome::Proxied { to, .. } => to,
        o => panic!("{fields}: {o:?}"),
    };
    assert_eq!(to(""), main, "weight 0");
    assert_eq!(to("X-Canary: always\r\n"), canary);
    assert_eq!(to("X-Canary: never\r\nCookie: canary=always\r\n"), main, "the header first");
    assert_eq!(to("X-Canary: maybe\r\nCookie: a=b; canary=always\r\n"), canary, "then the cookie");
    assert_eq!(to("Cookie: canary=never\r\n"), main);
    // By weight: about 30 % of 1,000 requests.
    let w = sluice_model::policy::Canary { weight: 30, ..Default::default() };
    let t = nginx_table(&Policy::default(), &[("/", PathType::Prefix)], Some(w));
    let mut ctx = nginx_ctx(&t);
    let n = (0..1000)
        .filter(|_| matches!(serve_in(&mut ctx, false, &get("app.example", "/", ""), 0), Outcome::Proxied { to, .. } if to == canary))
        .count();
    assert!((220..=380).contains(&n), "{n} of 1000 to the canary");
}

#[test]
fn cookie_affinity_keeps_a_client_on_its_endpoint() {
    let p = Policy {
        affinity: Some(sluice_model::policy::CookieAffinity {
            name: "INGRESSCOOKIE".into(),
            path: None,
            expires_s: None,
            max_age_s: Some(60),
            samesite: Some(sluice_model::policy::SameSite::Lax),
            persistent: true,
        }),
        ..Policy::default()
    };
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(&p))));
    let (to, client) = match serve_in(&mut ctx, false, &get("plain.example", "/", ""), 0) {
        Outcome::Proxied { to, client, .. } => (to, client),
        o => panic!("{o:?}"),
    };
    let line = client
        .lines()
        .find(|l| l.starts_with("Set-Cookie: INGRESSCOOKIE="))
        .unwrap_or_else(|| panic!("{client}"));
    assert!(line.ends_with("; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"), "{line}");
    let value = &line["Set-Cookie: INGRESSCOOKIE=".len()..][..16];
    assert!(!value.contains("10.0.0"), "the endpoint is not in the cookie");
    // With the cookie, every request goes to the same endpoint (round robin would alternate)
    // and no new cookie is set.
    for _ in 0..6 {
        match serve_in(
            &mut ctx,
            false,
            &get("plain.example", "/", &format!("Cookie: a=1; INGRESSCOOKIE={value}\r\n")),
            0,
        ) {
            Outcome::Proxied { to: t, client, .. } => {
                assert_eq!(t, to);
                assert!(!client.contains("Set-Cookie"), "{client}");
            }
            o => panic!("{o:?}"),
        }
    }
    // A cookie naming no endpoint (persistent mode): chosen again, with a new cookie.
    match serve_in(
        &mut ctx,
        false,
        &get("plain.example", "/", "Cookie: INGRESSCOOKIE=0123456789abcdef\r\n"),
        0,
    ) {
        Outcome::Proxied { client, .. } => assert!(client.contains("Set-Cookie: INGRESSCOOKIE="), "{client}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn upstream_hash_by_keeps_a_key_on_its_endpoint() {
    let p = Policy {
        hash_by: Some(sluice_model::policy::HashKey::parse("$request_uri").unwrap()),
        ..Policy::default()
    };
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&table(&p))));
    let mut to = |path: &str| match serve_in(&mut ctx, false, &get("plain.example", path, ""), 0) {
        Outcome::Proxied { to, .. } => to,
        o => panic!("{o:?}"),
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let path = format!("/item/{i}");
        let first = to(&path);
        for _ in 0..3 {
            assert_eq!(to(&path), first, "{path}");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "keys spread over both endpoints");
}

#[test]
fn proxy_connect_and_read_timeouts_per_route() {
    let p = Policy { connect_timeout_s: Some(1), read_timeout_s: Some(2), ..Policy::default() };
    for (connect, at_ns, what) in [(false, 1_100_000_000u64, "connect"), (true, 2_100_000_000, "read")] {
        let mut ctx = Context::new(Config::default(), 7);
        ctx.set_generation(Rc::new(Generation::new(&table(&p))));
        let peer: SocketAddr = CLIENT.parse().unwrap();
        let mut conn = Conn::new(&ctx, peer, 80, false, 0);
        let request = get("plain.example", "/", "");
        conn.client_read_buf()[..request.len()].copy_from_slice(request.as_bytes());
        conn.client_read(&mut ctx, request.len(), 0);
        while let Some(a) = conn.poll_action() {
            if matches!(a, Action::Connect(_)) && connect {
                conn.upstream_connected(&mut ctx, false, 0);
            }
        }
        if connect {
            let n = conn.upstream_write_buf().len();
            conn.upstream_wrote(&mut ctx, n, 0);
        }
        // Under the route's timeout (the gateway's are 5 s and 60 s): nothing yet.
        conn.tick(&mut ctx, at_ns - 200_000_000);
        assert!(conn.client_write_buf().is_empty(), "{what}: too early");
        // A connect that times out moves to another endpoint (nothing was sent): each attempt
        // gets the route's second, well under the gateway's 5 s.
        let mut t = at_ns;
        for _ in 0..3 {
            conn.tick(&mut ctx, t);
            while conn.poll_action().is_some() {}
            if !conn.client_write_buf().is_empty() {
                break;
            }
            t += 1_100_000_000;
        }
        let out = String::from_utf8_lossy(conn.client_write_buf()).into_owned();
        assert!(out.starts_with("HTTP/1.1 504"), "{what}: {out}");
        assert!(t < 5_000_000_000, "{what}: the route's timeout, not the gateway's");
    }
}

/// `proxy-send-timeout`: request bytes that the upstream does not take for the route's time end
/// the exchange with 504 (not retried: the upstream may have some of them); once it has taken
/// them all, only the read timeout counts.
#[test]
fn proxy_send_timeout_per_route() {
    let p = Policy { send_timeout_s: Some(2), ..Policy::default() };
    for (takes, what) in [(false, "the upstream takes nothing"), (true, "the upstream took the request")] {
        let mut ctx = Context::new(Config::default(), 7);
        ctx.set_generation(Rc::new(Generation::new(&table(&p))));
        let peer: SocketAddr = CLIENT.parse().unwrap();
        let mut conn = Conn::new(&ctx, peer, 80, false, 0);
        let request = get("plain.example", "/", "");
        conn.client_read_buf()[..request.len()].copy_from_slice(request.as_bytes());
        conn.client_read(&mut ctx, request.len(), 0);
        while let Some(a) = conn.poll_action() {
            if matches!(a, Action::Connect(_)) {
                conn.upstream_connected(&mut ctx, false, 0);
            }
        }
        assert!(!conn.upstream_write_buf().is_empty());
        if takes {
            let n = conn.upstream_write_buf().len();
            conn.upstream_wrote(&mut ctx, n, 1_000_000_000);
        }
        conn.tick(&mut ctx, 1_900_000_000);
        assert!(conn.client_write_buf().is_empty(), "{what}: too early");
        conn.tick(&mut ctx, 2_100_000_000);
        while conn.poll_action().is_some() {}
        let out = String::from_utf8_lossy(conn.client_write_buf()).into_owned();
        if takes {
            assert!(out.is_empty(), "{what}: {out}");
        } else {
            assert!(out.starts_with("HTTP/1.1 504"), "{what}: {out}");
        }
    }
}

/// `affinity-mode: balanced` (the default): the cookie holds a random key hashed over the
/// endpoints. A key keeps its endpoint while the endpoints stay; when one is added, about its
/// share of the keys moves to it and the others stay (persistent cookies would all stay).
#[test]
fn balanced_affinity_moves_a_share_of_sessions_to_a_new_endpoint() {
    let affinity = sluice_model::policy::CookieAffinity {
        name: "INGRESSCOOKIE".into(),
        path: None,
        expires_s: None,
        max_age_s: None,
        samesite: None,
        persistent: false,
    };
    let p = Policy { affinity: Some(affinity), ..Policy::default() };
    let mut two = table(&p);
    let mut ctx = Context::new(Config::default(), 7);
    ctx.set_generation(Rc::new(Generation::new(&two)));
    let with = |ctx: &mut Context, value: &str| match serve_in(
        ctx,
        false,
        &get("plain.example", "/", &format!("Cookie: INGRESSCOOKIE={value}\r\n")),
        0,
    ) {
        Outcome::Proxied { to, client, .. } => {
            assert!(!client.contains("Set-Cookie"), "a valid key keeps its cookie: {client}");
            to
        }
        o => panic!("{o:?}"),
    };
    // New sessions get a key each, and are spread over both endpoints.
    let mut keys = Vec::new();
    let mut spread = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let Outcome::Proxied { to, client, .. } =
            serve_in(&mut ctx, false, &get("plain.example", "/", ""), 0)
        else {
            panic!()
        };
        let line = client.lines().find(|l| l.starts_with("Set-Cookie: INGRESSCOOKIE=")).expect("a cookie");
        let key = line["Set-Cookie: INGRESSCOOKIE=".len()..][..16].to_owned();
        assert_eq!(with(&mut ctx, &key), to, "the key leads where its first request went");
        spread.insert(to);
        keys.push((key, to));
    }
    assert_eq!(spread.len(), 2);
    // A third endpoint: about a third of the keys move, all of them to it.
    two.upstreams[0].endpoints.push(Endpoint {
        addr: "10.0.0.5:8080".parse().unwrap(),
        ready: true,
        serving: true,
        terminating: false,
    });
    ctx.set_generation(Rc::new(Generation::new(&two)));
    let new: SocketAddr = "10.0.0.5:8080".parse().unwrap();
    let mut moved = 0;
    for (key, before) in &keys {
        let now = with(&mut ctx, key);
        if now != *before {
            assert_eq!(now, new, "a key moves only to the new endpoint");
            moved += 1;
        }
    }
    assert!((35..=100).contains(&moved), "{moved} of 200 sessions moved");
}
