//! The annotation grammars: control's reader of an Ingress's `nginx.ingress.kubernetes.io/*`
//! annotations (`sluice_control::checked::annotations::read`, which calls every grammar of
//! `sluice_model::policy`: sizes, counts, booleans, CIDR lists, paths and URLs, rewrite targets,
//! hash keys, CORS, cookies, canary keys, redirects, timeouts) and each grammar on its own.
//!
//! The input is lines `key=value`; a key that is a number picks one of [`NAMES`] (so mutation
//! reaches every annotation), any other key is taken as written. What must hold, whatever the
//! values: no panic; a finding per annotation at most, each naming an annotation that was given;
//! and nothing a value can smuggle into a header line — every string the policy will write into
//! a request or response head (a Location, a Host, a cookie's name and path, CORS fields, a
//! realm, a forwarded prefix, a rewritten path) is free of control characters (CR, LF, NUL:
//! header injection, this gateway's form of CVE-2025-1974's configuration injection). Each
//! grammar re-reads what it prints (CIDRs, rewrite targets, hash keys) as the same value.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sluice_control::checked::annotations;
use sluice_model::policy::{self, Cidr, HashKey, RewriteTarget};

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's annotations (short names), those Sluice reads and a few it refuses.
#[rustfmt::skip]
const NAMES: &[&str] = &[
    "rewrite-target", "use-regex", "app-root", "ssl-redirect", "force-ssl-redirect",
    "preserve-trailing-slash", "permanent-redirect", "permanent-redirect-code", "temporal-redirect",
    "temporal-redirect-code", "auth-type", "auth-secret", "auth-secret-type", "auth-realm",
    "limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier", "limit-whitelist",
    "canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
    "canary-by-cookie", "canary-weight", "canary-weight-total", "backend-protocol",
    "proxy-body-size", "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
    "whitelist-source-range", "allowlist-source-range", "denylist-source-range", "affinity",
    "affinity-mode", "session-cookie-name", "session-cookie-path", "session-cookie-expires",
    "session-cookie-max-age", "session-cookie-samesite", "upstream-hash-by", "enable-cors",
    "cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers",
    "cors-allow-credentials", "cors-max-age", "upstream-vhost", "x-forwarded-prefix",
    "custom-headers", "proxy-set-headers", "configuration-snippet", "server-snippet", "auth-url",
    "load-balance", "service-upstream", "ssl-passthrough", "proxy-ssl-verify",
];

/// Whether `s` can go into a header line as it is: no control character but tab.
fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn each_grammar(value: &str) {
    let _ = (policy::parse_size(value), policy::parse_count(value, 86_400), policy::parse_bool(value));
    if let Ok(p) = policy::parse_path(value) {
        assert!(header_safe(&p) && p.starts_with('/'), "{p:?}");
    }
    if let Ok(u) = policy::parse_url(value) {
        assert!(header_safe(&u), "{u:?}");
    }
    let (good, _) = Cidr::parse_list(value);
    for c in good {
        assert_eq!(Cidr::parse(&c.to_string()), Ok(c), "{value:?}");
        assert!(c.contains(c.addr), "{c}");
    }
    // Printed forms may be longer than what was read (`$1` → `${1}`): they must read back
    // within the grammars' length limits (2,048 and 512 bytes). Found by this target in its
    // first ten minutes: a 500-byte hash key printed to 540, over its limit — the harness's
    // mistake, not the grammar's.
    if let Ok(t) = RewriteTarget::parse(value) {
        let printed = t.to_string();
        if printed.len() <= 2048 {
            assert_eq!(RewriteTarget::parse(&printed).as_ref(), Ok(&t), "{value:?}");
        }
    }
    if let Ok(k) = HashKey::parse(value) {
        let printed = k.to_string();
        if printed.len() <= 512 {
            assert_eq!(HashKey::parse(&printed).as_ref(), Ok(&k), "{value:?}");
        }
    }
}

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("annotations"), |data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut all = BTreeMap::new();
    for line in text.lines().take(64) {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let key = match k.parse::<usize>() {
            Ok(i) => format!("{PREFIX}{}", NAMES[i % NAMES.len()]),
            Err(_) if k.contains('/') => k.to_owned(),
            Err(_) => format!("{PREFIX}{k}"),
        };
        each_grammar(v);
        all.insert(key, v.to_owned());
    }
    let a = annotations::read("default", &all);
    let mut seen = std::collections::BTreeSet::new();
    for f in &a.findings {
        assert!(all.contains_key(&f.annotation), "a finding about {:?}, not given", f.annotation);
        assert!(seen.insert(f.annotation.clone()), "two findings about {:?}", f.annotation);
    }
    // What goes into header lines.
    let p = &a.policy;
    let mut strings: Vec<&str> = Vec::new();
    strings.extend(p.app_root.as_deref());
    strings.extend(p.forwarded_prefix.as_deref());
    strings.extend(p.upstream_vhost.as_deref());
    if let Some(r) = &p.redirect {
        assert!((300..=308).contains(&r.code), "{}", r.code);
        strings.push(&r.location);
    }
    if let Some(c) = &p.affinity {
        strings.push(&c.name);
        strings.extend(c.path.as_deref());
    }
    if let Some(c) = &p.cors {
        strings.extend(c.allow_origins.iter().map(String::as_str));
        strings.extend([c.allow_methods.as_str(), c.allow_headers.as_str(), c.expose_headers.as_str()]);
    }
    if let Some(t) = &p.rewrite {
        let text = t.to_string();
        assert!(header_safe(&text), "{text:?}");
    }
    if let Some(c) = &a.canary {
        strings.extend(c.header.as_deref());
        strings.extend(c.header_value.as_deref());
        strings.extend(c.cookie.as_deref());
        assert!(c.weight <= c.weight_total, "{} of {}", c.weight, c.weight_total);
    }
    for s in strings {
        assert!(header_safe(s), "{s:?} would go into a header line");
    }
});
