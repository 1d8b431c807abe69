//! The policy primitives the proxy calls per request allocate nothing, measured with
//! `allocation_counter` (a counting global allocator in this test binary, counting this
//! thread's allocations). What is made per generation and per worker is made before the
//! measurement, as the proxy makes it; the regex caches warm themselves when made.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sluice_l7::policy::SipKey;
use sluice_l7::policy::auth::{AuthCache, AuthCacheConfig, AuthOutcome, BasicAuthCheck};
use sluice_l7::policy::canary::{CanaryRule, Pick};
use sluice_l7::policy::cookie::{self, EndpointTokens};
use sluice_l7::policy::cors::{self, CorsRequest};
use sluice_l7::policy::limit::{LimitId, LimitRule, Limiter, LimiterConfig, RateVerdict};
use sluice_l7::policy::nginx_paths::{self, HostPaths, PathMatch, PathRule};
use sluice_model::policy::{
    BasicAuth, Canary, CookieAffinity, Cors, DEFAULT_CORS_HEADERS, DEFAULT_CORS_METHODS, Limits,
    PasswordHash, RewriteTarget,
};
use sluice_model::route::PathType;

#[test]
fn per_request_policy_allocates_nothing() {
    let key = SipKey::new([9; 16]);
    // Per generation.
    let users = [
        ("alice", "$2y$04$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy"),
        ("carol", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="),
        ("frank", "$apr1$8Rxn8EFj$2B3MigUoSsJDzu3tDXLv6."),
    ];
    let auth = BasicAuthCheck::new(&BasicAuth {
        realm: "r".into(),
        users: users.iter().map(|(u, h)| (u.to_string(), PasswordHash::parse(h).unwrap())).collect(),
    });
    let limits =
        Limits { rps: Some(5), rpm: Some(100), connections: Some(2), burst_multiplier: 5, whitelist: vec![] };
    let rule = LimitRule::new(LimitId::of_ingress("ns", "web"), &limits).unwrap();
    let canary = CanaryRule::new(&Canary {
        header: Some("x-user".into()),
        header_pattern: Some("^(alice|bob)$".into()),
        cookie: Some("canary".into()),
        weight: 10,
        ..Canary::default()
    })
    .unwrap();
    let path_rules = [
        PathRule {
            path: "/something(/|$)(.*)".into(),
            path_type: PathType::ImplementationSpecific,
            route: 1,
            use_regex: true,
        },
        PathRule { path: "/".into(), path_type: PathType::Prefix, route: 2, use_regex: false },
    ];
    let (regex_host, _) = HostPaths::new(&path_rules);
    let plain_rules = [
        PathRule { path: "/api".into(), path_type: PathType::Prefix, route: 3, use_regex: false },
        PathRule {
            path: "/x/".into(),
            path_type: PathType::ImplementationSpecific,
            route: 4,
            use_regex: false,
        },
    ];
    let (plain_host, _) = HostPaths::new(&plain_rules);
    let target = RewriteTarget::parse("/$2").unwrap();
    let endpoints: Vec<SocketAddr> = (1..=8).map(|i| SocketAddr::from(([10, 0, 0, i], 8080))).collect();
    let tokens = EndpointTokens::new(&key, &endpoints);
    let affinity = CookieAffinity {
        name: "INGRESSCOOKIE".into(),
        path: None,
        expires_s: Some(3600),
        max_age_s: Some(3600),
        samesite: None,
        persistent: false,
    };
    let cors_rule = Cors {
        allow_origins: vec!["https://a.com".into()],
        allow_methods: DEFAULT_CORS_METHODS.into(),
        allow_headers: DEFAULT_CORS_HEADERS.into(),
        expose_headers: String::new(),
        allow_credentials: true,
        max_age_s: 60,
    };
    // Per gateway and per worker.
    let limiter =
        Arc::new(Limiter::new(LimiterConfig { rate_slots: 1 << 10, connection_slots: 1 << 10 }, &key));
    let mut auth_cache = AuthCache::new(AuthCacheConfig::DEFAULT, &key);
    let mut canary_cache = canary.new_cache();
    let mut regex_cache = regex_host.new_cache(8192);
    let mut plain_cache = plain_host.new_cache(8192);
    // Long inputs inside the measurement: the regex engines' scratch does not grow with them.
    let long_path = format!("/something/{}", "a/".repeat(4000));
    let long_value = vec![b'x'; 8000];
    let alice = b"Basic YWxpY2U6c2VjcmV0".as_slice();
    let _ = auth.verify(Some(alice), &mut auth_cache, 1);

    let mut out = [0u8; 512];
    let mut counts = [0usize; 8];
    let info = allocation_counter::measure(|| {
        for i in 0..200u64 {
            let now = 1_000_000 + i * 1_000_000;
            let client = IpAddr::from([192, 0, 2, (i % 7) as u8]);
            // Auth: a cached verdict, SHA-1 and MD5-crypt computed, a bcrypt every 50.
            counts[0] += usize::from(auth.verify(Some(alice), &mut auth_cache, now) == AuthOutcome::Allowed);
            let _ = auth.verify(Some(b"Basic Y2Fyb2w6cHc="), &mut auth_cache, now);
            let _ = auth.verify(Some(b"Basic ZnJhbms6cGFzc3dvcmQ="), &mut auth_cache, now);
            if i % 50 == 0 {
                assert!(auth.check_password(b"alice", b"secret"));
            }
            let _ = auth.verify(Some(b"Basic bm9ib2R5Ong="), &mut auth_cache, now);
            let _ = auth.write_challenge(&mut out).unwrap();
            // Limits.
            counts[1] += usize::from(limiter.check_rate(&rule, client, now) == RateVerdict::Allowed);
            if let Ok(Some(guard)) = limiter.acquire(&rule, client) {
                counts[2] += 1;
                drop(guard);
            }
            // Canary.
            let user: &[u8] = if i % 2 == 0 { b"alice" } else { b"carol" };
            let cookies: [&[u8]; 2] = [b"a=1; b=2", b"canary=never"];
            counts[3] +=
                usize::from(canary.decide(&mut canary_cache, Some(user), cookies, i << 40).0 == Pick::Canary);
            let _ = canary.decide(&mut canary_cache, Some(&long_value), [], i);
            // Paths, rewrite, redirect.
            assert_eq!(regex_host.find(&long_path, &mut regex_cache), PathMatch::Route(1));
            if let PathMatch::Route(1) = regex_host.find("/something/./new/../x", &mut regex_cache) {
                let n = nginx_paths::rewrite(
                    &target,
                    regex_cache.path(),
                    |g| regex_cache.group(g),
                    Some("q=1"),
                    &mut out,
                )
                .unwrap();
                counts[4] += n;
            }
            if plain_host.find("/x", &mut plain_cache) == PathMatch::Redirect {
                counts[5] += nginx_paths::write_location(plain_cache.path(), Some("a=b"), &mut out).unwrap();
            }
            let _ = plain_host.find("/api/v1/%61bc", &mut plain_cache);
            // Affinity and CORS.
            let value = cookie::find([b"INGRESSCOOKIE=0123456789abcdef; x=y".as_slice()], "INGRESSCOOKIE");
            counts[6] += usize::from(value.and_then(|v| tokens.find(v)).is_some());
            let token = tokens.token(endpoints[(i % 8) as usize]).unwrap();
            let _ = cookie::write_set_cookie(&affinity, token, "/", true, 1_700_000_000, &mut out).unwrap();
            if let CorsRequest::Preflight { origin } =
                cors::classify(&cors_rule, "OPTIONS", Some(b"https://a.com"), Some(b"PUT"))
            {
                counts[7] += cors::write_preflight_fields(&cors_rule, origin, &mut out).unwrap();
            }
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    // The work was done: alice every time, the rates, the connections, alice's canary, the
    // rewrite `/x?q=1`, the redirect `/x/?a=b`, no token matching a made-up one, the preflight.
    assert_eq!(counts[0], 200);
    assert!(counts[1] > 0 && counts[1] < 200, "{counts:?}");
    assert_eq!(counts[2], 200);
    assert_eq!(counts[3], 100);
    assert_eq!(counts[4], 200 * "/x?q=1".len());
    assert_eq!(counts[5], 200 * "/x/?a=b".len());
    assert_eq!(counts[6], 0);
    assert!(counts[7] > 0);
}
