//! The hot path allocates nothing: parsing heads, decoding bodies and routing requests, measured
//! with `allocation_counter` (a counting global allocator in this test binary, counting this
//! thread's allocations).

use sluice_l7::h1::{BodyDecoder, HeadParser, Limits};
use sluice_l7::route::Router;
use sluice_model::route::{
    Backend, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
    ServiceBackend, ServicePort,
};

fn router() -> Router {
    let backend = |name: &str| {
        Backend::Service(ServiceBackend {
            namespace: "ns".into(),
            name: name.into(),
            port: ServicePort::Number(80),
        })
    };
    let mut ingresses = Vec::new();
    for i in 0..200 {
        let paths = ["/", "/api", "/api/v1", "/static/img"]
            .iter()
            .map(|p| PathSpec {
                path_type: PathType::Prefix,
                path: RulePath::new(p).unwrap(),
                backend: backend(p),
            })
            .chain([PathSpec {
                path_type: PathType::Exact,
                path: RulePath::new("/login").unwrap(),
                backend: backend("login"),
            }])
            .collect();
        ingresses.push(IngressSpec {
            policy: Default::default(),
            canary: None,
            dialect: Default::default(),
            id: IngressRef::new("ns", format!("i{i}")),
            created_unix_s: Some(i),
            default_backend: Some(backend("default")),
            rules: vec![
                RuleSpec { host: HostRule::new(Some(&format!("h{i}.example.com"))).unwrap(), paths },
                RuleSpec {
                    host: HostRule::new(Some(&format!("*.w{i}.example.com"))).unwrap(),
                    paths: vec![],
                },
            ],
        });
    }
    Router::new(RouteTable::compile(&ingresses))
}

#[test]
fn parsing_decoding_and_routing_allocate_nothing() {
    let router = router();
    let mut parser = HeadParser::new(Limits::DEFAULT);
    let request: &[u8] = b"POST /api/v1/items?x=1 HTTP/1.1\r\nHost: H17.Example.COM:443\r\nUser-Agent: t\r\n\
        Accept: */*\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n";
    let mut routed = 0;
    let info = allocation_counter::measure(|| {
        for i in 0..1000 {
            // Arrives in two reads.
            let cut = 10 + i % 60;
            assert!(parser.parse(&request[..cut]).unwrap().is_none());
            let head = parser.parse(request).unwrap().unwrap();
            let forwarded = head.end_to_end_fields(false).count();
            assert_eq!(forwarded, 3);
            let route = router.route(head.authority(), head.path());
            routed += usize::from(route.service().is_some());
            let hosts = ["h5.example.com", "x.w9.example.com", "unknown.example", "[::1]:80"];
            let other = router.route(hosts[i % hosts.len()], "/static/img/a.png");
            routed += usize::from(other.backend().is_some());
            let mut body = BodyDecoder::new(head.framing(), Some(1 << 20)).unwrap();
            let mut rest = &request[head.head_len()..];
            while !rest.is_empty() {
                let step = body.decode(rest).unwrap();
                rest = &rest[step.consumed..];
                if step.done {
                    break;
                }
            }
            assert!(body.is_done());
        }
    });
    // Every request to h17, and the h5 and x.w9 ones of the others (the rest get 404).
    assert_eq!(routed, 1500);
    assert_eq!(info.count_total, 0, "{info:?}");
}
