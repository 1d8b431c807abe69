//! The router against a reference: a straightforward reading of the documented rules
//! (`sluice_model::route`), evaluated over the Ingresses themselves — every rule of every
//! Ingress tried, element-wise path comparison, the winner picked by sorting — with none of the
//! compiled table's merging or indexes. Random Ingresses, random requests; both must agree on
//! the backend and the Ingress it comes from.

use proptest::prelude::*;
use sluice_l7::route::Router;
use sluice_model::route::{
    Backend, HostRule, IngressRef, IngressSpec, MatchKind, PathSpec, PathType, RouteTable, RulePath,
    RuleSpec, ServiceBackend, ServicePort, Unavailable,
};

/// The request's host as the rules define it: the authority lowercased, without port and one
/// trailing dot; `None` for IP literals and hosts no rule can name.
fn reference_host(authority: &str) -> Option<String> {
    let a = authority.to_ascii_lowercase();
    if a.starts_with('[') {
        return None;
    }
    let host = match a.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => &a,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    Some(host.to_owned())
}

/// How specific a rule's host is for a request: 0 precise, 1 wildcard, 2 any; `None` if it
/// does not match.
fn host_level(rule: &HostRule, host: Option<&str>) -> Option<u8> {
    match (rule, host) {
        (HostRule::Any, _) => Some(2),
        (HostRule::Precise(p), Some(h)) if p == h => Some(0),
        (HostRule::Wildcard(suffix), Some(h)) => {
            // Exactly one more label, not empty.
            let labels: Vec<&str> = h.split('.').collect();
            let want: Vec<&str> = suffix.split('.').collect();
            (labels.len() == want.len() + 1 && !labels[0].is_empty() && labels[1..] == want[..]).then_some(1)
        }
        _ => None,
    }
}

/// A path's elements: split on `/`, the leading empty element and one trailing empty element
/// dropped.
fn elements(p: &str) -> Vec<&str> {
    let mut e: Vec<&str> = p.split('/').skip(1).collect();
    if e.last() == Some(&"") {
        e.pop();
    }
    e
}

/// Whether a rule path matches a request path, and the length it matched with.
fn path_match(kind: MatchKind, rule: &RulePath, path: &str) -> Option<usize> {
    match kind {
        MatchKind::Exact => (rule.as_str() == path).then_some(rule.as_str().len()),
        MatchKind::Prefix => {
            let r = elements(rule.as_str());
            // A path that does not begin with '/' has no elements to compare: only `/` matches.
            let q = if path.starts_with('/') { elements(path) } else { vec![path] };
            let matched = r.is_empty() || (r.len() <= q.len() && r[..] == q[..r.len()]);
            matched.then_some(rule.as_str().trim_end_matches('/').len())
        }
    }
}

fn precedence(i: &IngressSpec) -> (bool, i64, String, String) {
    (i.created_unix_s.is_none(), i.created_unix_s.unwrap_or(0), i.id.namespace.clone(), i.id.name.clone())
}

/// How a candidate ranks, smallest first: host specificity, longer path, Exact before Prefix,
/// the Ingress's precedence, then rule and path order within it.
type Rank = (u8, std::cmp::Reverse<usize>, u8, (bool, i64, String, String), usize, usize);

/// The reference decision: (backend, Ingress), or `None` for 404.
fn reference(ingresses: &[IngressSpec], authority: &str, path: &str) -> Option<(Backend, IngressRef)> {
    let host = reference_host(authority);
    // Routing compares the normalised path: of what this generator makes, repeated slashes
    // merge into one.
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    let path = merged.as_str();
    let mut best: Option<(Rank, &PathSpec, &IngressSpec)> = None;
    for ing in ingresses {
        for (ri, rule) in ing.rules.iter().enumerate() {
            let Some(level) = host_level(&rule.host, host.as_deref()) else { continue };
            for (pi, p) in rule.paths.iter().enumerate() {
                let kind = p.path_type.kind();
                let Some(len) = path_match(kind, &p.path, path) else { continue };
                let exact_first = if kind == MatchKind::Exact { 0 } else { 1 };
                let key = (level, std::cmp::Reverse(len), exact_first, precedence(ing), ri, pi);
                if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                    best = Some((key, p, ing));
                }
            }
        }
    }
    if let Some((_, p, ing)) = best {
        return Some((p.backend.clone(), ing.id.clone()));
    }
    for level in 0..3u8 {
        let owner = ingresses
            .iter()
            .filter(|i| i.default_backend.is_some())
            .filter(|i| {
                i.rules.iter().any(|r| host_level(&r.host, host.as_deref()) == Some(level))
                    || (level == 2 && i.rules.is_empty())
            })
            .min_by_key(|i| precedence(i));
        if let Some(i) = owner {
            return Some((i.default_backend.clone()?, i.id.clone()));
        }
    }
    None
}

const RULE_HOSTS: &[Option<&str>] =
    &[None, Some("a.com"), Some("b.a.com"), Some("*.a.com"), Some("*.com"), Some("x.b.a.com")];
const RULE_PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "/ab", "/a/b/", "/b", "/b/a"];
const AUTHORITIES: &[&str] = &[
    "a.com",
    "A.COM:8080",
    "b.a.com",
    "c.b.a.com",
    "x.b.a.com.",
    "com",
    "b.com",
    "[::1]:80",
    "1.2.3.4",
    "",
    "b.a.com:443",
    "B.A.Com.",
    "z.a.com",
    "a.com:x",
];

fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        6 => (0u8..4).prop_map(|i| Backend::Service(ServiceBackend {
            namespace: "ns".into(),
            name: format!("s{i}"),
            port: if i % 2 == 0 { ServicePort::Number(80) } else { ServicePort::Name("http".into()) },
        })),
        1 => Just(Backend::Unavailable(Unavailable::Resource)),
        1 => Just(Backend::Unavailable(Unavailable::MissingService)),
    ]
}

fn path_spec() -> impl Strategy<Value = PathSpec> {
    (
        prop::sample::select(vec![PathType::Exact, PathType::Prefix, PathType::ImplementationSpecific]),
        prop::sample::select(RULE_PATHS),
        backend(),
    )
        .prop_map(|(path_type, path, backend)| PathSpec {
            path_type,
            path: RulePath::new(path).unwrap(),
            backend,
        })
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (prop::sample::select(RULE_HOSTS), prop::collection::vec(path_spec(), 0..4))
        .prop_map(|(host, paths)| RuleSpec { host: HostRule::new(host).unwrap(), paths })
}

fn ingresses() -> impl Strategy<Value = Vec<IngressSpec>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.8, 0i64..4),
            prop::collection::vec(rule(), 0..3),
            prop::option::weighted(0.3, backend()),
            prop::sample::select(vec!["ns1", "ns2"]),
        ),
        0..5,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (created, rules, default_backend, ns))| IngressSpec {
                policy: Default::default(),
                canary: None,
                dialect: Default::default(),
                id: IngressRef::new(ns, format!("ing{i}")),
                created_unix_s: created,
                default_backend,
                rules,
            })
            .collect()
    })
}

/// Request paths: segments of a few names, so that they often hit the rule paths, with empty
/// segments (`//`), trailing slashes and the odd `*`.
fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "", "ba", "c"]), 0..4)
            .prop_map(|s| format!("/{}", s.join("/"))),
        1 => Just("*".to_owned()),
        1 => Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn router_agrees_with_the_reference(
        ingresses in ingresses(),
        requests in prop::collection::vec((prop::sample::select(AUTHORITIES), request_path()), 1..20),
    ) {
        let router = Router::new(RouteTable::compile(&ingresses));
        for (authority, path) in &requests {
            let got = router.route(authority, path);
            let got = got.backend().cloned().zip(got.ingress().cloned());
            prop_assert_eq!(got, reference(&ingresses, authority, path), "{} {}", authority, path);
        }
    }

    /// The order Ingresses arrive in does not matter.
    #[test]
    fn compile_is_independent_of_input_order(ingresses in ingresses(), seed in any::<u64>()) {
        let mut shuffled = ingresses.clone();
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(i as u64 + 1).rotate_left(17) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(RouteTable::compile(&ingresses), RouteTable::compile(&shuffled));
    }
}
