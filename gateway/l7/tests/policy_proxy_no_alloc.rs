//! A route with every per-request annotation — basic auth (a cached verdict), limits, CORS,
//! HSTS, a canary by header, ingress-nginx's regex paths with rewrite-target, affinity and a
//! request path to normalise — proxies keep-alive requests without allocating, once the
//! connection and the per-connection buffers exist.

use std::rc::Rc;

use sluice_l7::proxy::{Action, Config, Conn, Context, Generation};
use sluice_model::l7::{Endpoint, L7Table, Upstream};
use sluice_model::policy::{
    BasicAuth, Canary, CookieAffinity, Cors, Limits, PasswordHash, Policy, RewriteTarget,
};
use sluice_model::route::{
    Backend, Dialect, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
    ServiceBackend, ServicePort,
};

fn svc(name: &str) -> ServiceBackend {
    ServiceBackend { namespace: "ns".into(), name: name.into(), port: ServicePort::Number(80) }
}

fn table() -> L7Table {
    let policy = Policy {
        rewrite: Some(RewriteTarget::parse("/$2").unwrap()),
        use_regex: true,
        basic_auth: Some(BasicAuth {
            realm: "r".into(),
            // foo:secret
            users: vec![("foo".into(), PasswordHash::parse("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=").unwrap())],
        }),
        limits: Limits {
            rps: Some(1_000_000),
            connections: Some(1000),
            burst_multiplier: 5,
            ..Limits::default()
        },
        cors: Some(Cors {
            allow_origins: vec!["https://a.example".into()],
            allow_methods: "GET".into(),
            allow_headers: "X-A".into(),
            expose_headers: String::new(),
            allow_credentials: true,
            max_age_s: 60,
        }),
        affinity: Some(CookieAffinity {
            name: "route".into(),
            path: None,
            expires_s: Some(3600),
            max_age_s: None,
            samesite: None,
            persistent: false,
        }),
        ..Policy::default()
    };
    let spec = |name: &str, policy: Policy, canary, backend: ServiceBackend, path: &str| IngressSpec {
        id: IngressRef::new("ns", name),
        created_unix_s: Some(1),
        default_backend: None,
        rules: vec![RuleSpec {
            host: HostRule::new(Some("app.example")).unwrap(),
            paths: vec![PathSpec {
                path_type: PathType::ImplementationSpecific,
                path: RulePath::nginx(path).unwrap(),
                backend: Backend::Service(backend),
            }],
        }],
        policy,
        canary,
        dialect: Dialect::IngressNginx,
    };
    let canary = Canary { header: Some("x-canary".into()), ..Canary::default() };
    let ingresses = [
        spec("app", policy, None, svc("web"), "/api(/|$)(.*)"),
        spec("app-canary", Policy::default(), Some(canary), svc("v2"), "/api(/|$)(.*)"),
    ];
    let ep = |a: &str| Endpoint { addr: a.parse().unwrap(), ready: true, serving: true, terminating: false };
    L7Table {
        routes: RouteTable::compile(&ingresses),
        upstreams: vec![
            Upstream { service: svc("v2"), endpoints: vec![ep("10.0.0.9:8080")], external: None },
            Upstream {
                service: svc("web"),
                endpoints: vec![ep("10.0.0.1:8080"), ep("10.0.0.2:8080")],
                external: None,
            },
        ],
        certificates: vec![],
        listeners: vec![],
    }
}

fn feed(buf: &mut [u8], src: &[u8]) -> usize {
    let n = buf.len().min(src.len());
    buf[..n].copy_from_slice(&src[..n]);
    n
}

#[test]
fn requests_through_a_full_policy_allocate_nothing() {
    let mut ctx = Context::new(Config::default(), 1);
    ctx.set_generation(Rc::new(Generation::new(&table())));
    let mut conn = Conn::new(&ctx, "198.18.0.1:5000".parse().unwrap(), 80, false, 0);
    let requests: [&[u8]; 2] = [
        b"GET /API/./x/%61b?q=1 HTTP/1.1\r\nHost: app.example\r\nAuthorization: Basic Zm9vOnNlY3JldA==\r\n\
          Origin: https://a.example\r\nCookie: a=1\r\n\r\n",
        b"GET /api/y HTTP/1.1\r\nHost: app.example\r\nAuthorization: Basic Zm9vOnNlY3JldA==\r\nX-Canary: always\r\n\r\n",
    ];
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let one = |ctx: &mut Context, conn: &mut Conn, request: &[u8], now: u64| {
        let n = feed(conn.client_read_buf(), request);
        conn.client_read(ctx, n, now);
        let mut attached = false;
        while let Some(a) = conn.poll_action() {
            if let Action::Connect(_) = a {
                attached = true;
                conn.upstream_connected(ctx, true, now);
            }
        }
        assert!(attached, "{:?}", String::from_utf8_lossy(conn.client_write_buf()));
        let sent = conn.upstream_write_buf().len();
        assert!(!conn.upstream_write_buf().windows(13).any(|w| w.eq_ignore_ascii_case(b"authorization")));
        conn.upstream_wrote(ctx, sent, now);
        let n = feed(conn.upstream_read_buf(), response);
        conn.upstream_read(ctx, n, now);
        assert_eq!(conn.poll_action(), Some(Action::Release { keep_alive: true }));
        let out = conn.client_write_buf().len();
        conn.client_wrote(ctx, out, now);
        conn.shed_idle_buffers();
    };
    for (i, r) in requests.iter().cycle().take(20).enumerate() {
        one(&mut ctx, &mut conn, r, i as u64 * 1000);
    }
    let info = allocation_counter::measure(|| {
        for (i, r) in requests.iter().cycle().take(200).enumerate() {
            one(&mut ctx, &mut conn, r, 1_000_000 + i as u64 * 1000);
        }
    });
    assert_eq!(ctx.stats().responses[2], 220);
    assert_eq!(info.count_total, 0, "{info:?}");
}
