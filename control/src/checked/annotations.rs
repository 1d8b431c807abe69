//! ingress-nginx's annotations (`nginx.ingress.kubernetes.io/…`, INGRESS.md §2.2) read once into
//! typed values ([`sluice_model::policy`]), with a [`Finding`] for each one: served as is,
//! served differently (and how), ignored (and why), or refused (and what that does).
//!
//! What a bad value does follows ingress-nginx, which is what its users' Ingresses were
//! written against:
//! - most fall back to the default, and say so ([`Verdict::Ignored`]);
//! - a guard that cannot be honoured — basic auth without its Secret, an allow list without one
//!   valid entry, an external or client-certificate authentication Sluice does not implement,
//!   verification of an upstream's certificate (`proxy-ssl-verify: "on"` with its
//!   `proxy-ssl-secret`; without one ingress-nginx verifies nothing either) —
//!   makes every path of the Ingress answer 503 ([`Effect::Deny`]): an Ingress never becomes
//!   open because Sluice could not read what protects it;
//! - a limit that is not a number, or a bad `limit-whitelist`, skips the whole Ingress
//!   ([`Effect::Skip`]), as ingress-nginx does.
//!
//! Every `*-snippet` annotation is refused: it is nginx configuration text, and Sluice runs no
//! configuration language (CVE-2025-1974 and its family came from rendering annotation values
//! into one). The rest of the Ingress loads. No value is ever rendered into text another
//! program reads: each grammar here yields data, and a value that fits no grammar is refused
//! whole — it is quoted (Rust `{:?}`, so a newline shows as `\n`) in the message and nowhere else.
//!
//! Not hot path. No `unsafe`.

use std::collections::BTreeMap;
use std::fmt;

use sluice_model::policy::{
    self, BackendProtocol, Canary, Cidr, CookieAffinity, Cors, HashKey, NGINX_PREFIX, Policy, Redirect,
    RewriteTarget, SameSite,
};

/// What Sluice does with one annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Served as ingress-nginx serves it.
    Served,
    /// Served, not quite as ingress-nginx does (the message says how).
    Differs,
    /// Not acted on (the message says why); the Ingress is served without it.
    Ignored,
    /// Refused: an error (the message says what that does to the Ingress).
    Refused,
}

impl Verdict {
    /// How the migration report names it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Served => "served",
            Verdict::Differs => "served differently",
            Verdict::Ignored => "ignored",
            Verdict::Refused => "refused",
        }
    }
}

/// One annotation's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The annotation's full name.
    pub annotation: String,
    /// What Sluice does with it.
    pub verdict: Verdict,
    /// Why, or how.
    pub message: String,
    /// The line the annotation is written on (manifest mode; 0 when not known).
    pub line: usize,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.annotation, self.verdict.name(), self.message)
    }
}

/// What the annotations do to the whole Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Effect {
    /// It is served (perhaps without some annotations).
    #[default]
    Serve,
    /// Every request it routes answers 503 (why).
    Deny(String),
    /// It is not served at all (why).
    Skip(String),
}

/// Which kind of htpasswd Secret `auth-secret` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSecretType {
    /// `auth-file`: an htpasswd file under the key `auth` (the default).
    File,
    /// `auth-map`: each key a user, each value a hash.
    Map,
}

/// Basic auth as the annotations ask for it; the Secret is read at compile, where Secrets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAsk {
    /// The Secret's namespace (the Ingress's: another namespace is refused).
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// Its kind.
    pub secret_type: AuthSecretType,
}

/// Where the header fields of a ConfigMap an annotation names go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HeadersFor {
    /// `custom-headers`: added to every response sent to the client
    /// ([`Policy::response_headers`]).
    Response,
    /// `proxy-set-headers`: set on every request sent upstream, the client's own fields of
    /// those names dropped ([`Policy::request_headers`]).
    Request,
}

impl HeadersFor {
    /// The annotation that asks for it (without the prefix).
    pub fn annotation(self) -> &'static str {
        match self {
            HeadersFor::Response => "custom-headers",
            HeadersFor::Request => "proxy-set-headers",
        }
    }
}

/// A ConfigMap an annotation names (`custom-headers`, `proxy-set-headers`); read at compile,
/// where ConfigMaps are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapAsk {
    /// Which annotation, and so where its fields go.
    pub target: HeadersFor,
    /// Its namespace (the Ingress's: another namespace is refused).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// An Ingress's annotations, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    /// What they ask of the Ingress's paths.
    pub policy: Policy,
    /// `canary: "true"`: this Ingress is a canary of another with the same host and path.
    pub canary: Option<Canary>,
    /// `ssl-redirect` when given (a bad value reads as ingress-nginx's default, true). Without
    /// it, the class decides: true for ingress-nginx's, false for Sluice's own.
    pub ssl_redirect: Option<bool>,
    /// `auth-type: basic`: the Secret to read.
    pub auth: Option<AuthAsk>,
    /// ConfigMaps to read.
    pub config_maps: Vec<ConfigMapAsk>,
    /// What they do to the whole Ingress.
    pub effect: Effect,
    /// One per annotation of ingress-nginx's, in name order.
    pub findings: Vec<Finding>,
}

/// The annotations that are nginx configuration text.
fn is_snippet(key: &str) -> bool {
    key.ends_with("-snippet") || key == "configuration-snippet"
}

/// Guards Sluice does not implement: an Ingress carrying one is denied (503) rather than served
/// without the protection it asked for.
const UNSUPPORTED_GUARDS: [(&str, &str); 5] = [
    ("auth-url", "external authentication"),
    ("auth-tls-secret", "client certificate authentication"),
    ("auth-tls-verify-client", "client certificate authentication"),
    ("enable-modsecurity", "the ModSecurity web application firewall"),
    ("enable-owasp-core-rules", "the ModSecurity web application firewall"),
];

/// Annotations that only qualify an unsupported guard or feature: ignored, since the guard
/// itself decides (and denies).
const QUALIFIERS: [&str; 4] = ["auth-", "modsecurity-", "global-rate-limit", "mirror-"];

/// Known ingress-nginx annotations Sluice does not act on, and why.
const NOT_SERVED: [(&str, &str); 19] = [
    ("load-balance", "the balancing algorithm is the gateway's (--l7-balance round_robin|ewma)"),
    ("ssl-passthrough", "TLS is terminated by Sluice; passthrough is an L4 Service's job"),
    ("server-alias", "list the host in the Ingress rules instead"),
    ("proxy-buffering", "Sluice streams bodies through fixed buffers"),
    ("proxy-buffer-size", "Sluice streams bodies through fixed buffers"),
    ("proxy-request-buffering", "Sluice streams bodies through fixed buffers"),
    ("proxy-http-version", "upstreams get HTTP/1.1 (or HTTP/2 by backend-protocol)"),
    ("proxy-next-upstream", "a failed idempotent request is tried on up to 3 endpoints"),
    ("proxy-next-upstream-tries", "a failed idempotent request is tried on up to 3 endpoints"),
    ("proxy-next-upstream-timeout", "a failed idempotent request is tried on up to 3 endpoints"),
    ("service-upstream", "requests always go to the endpoints"),
    ("default-backend", "use spec.defaultBackend"),
    ("ssl-ciphers", "the suites are Sluice's fixed AEAD list (TLS 1.2 and 1.3)"),
    ("custom-http-errors", "error pages are Sluice's"),
    // TLS to upstreams (backend-protocol HTTPS, GRPCS) has ingress-nginx's defaults and no
    // knob: proxy-ssl-verify off (read in `read_proxy`), proxy-ssl-server-name off.
    (
        "proxy-ssl-secret",
        "no client certificate is presented to upstreams and none is verified (an upstream that \
         requires one refuses the handshake: 502)",
    ),
    ("proxy-ssl-verify-depth", "upstream certificates are not verified"),
    ("proxy-ssl-name", "upstream certificates are not verified and no SNI is sent to upstreams"),
    ("proxy-ssl-protocols", "TLS to upstreams is 1.3 or 1.2, whatever is asked"),
    ("proxy-ssl-ciphers", "TLS to upstreams uses Sluice's fixed AEAD suites (TLS 1.2 and 1.3)"),
];

/// Reads an Ingress's annotations (in namespace `namespace`).
pub fn read(namespace: &str, all: &BTreeMap<String, String>) -> Annotations {
    let mut r = Reader { ns: namespace, a: BTreeMap::new(), out: Annotations::default() };
    for (k, v) in all {
        if let Some(short) = k.strip_prefix(NGINX_PREFIX) {
            r.a.insert(short, v.as_str());
        }
    }
    if r.a.is_empty() {
        return r.out;
    }
    r.read_all();
    r.out.findings.sort_by(|a, b| a.annotation.cmp(&b.annotation));
    r.out
}

struct Reader<'a> {
    ns: &'a str,
    /// Short name (without the prefix) → value.
    a: BTreeMap<&'a str, &'a str>,
    out: Annotations,
}

impl<'a> Reader<'a> {
    fn find(&mut self, key: &str, verdict: Verdict, message: impl Into<String>) {
        // One finding per annotation: the first said wins (a key read twice says it once).
        if self.out.findings.iter().any(|f| f.annotation.strip_prefix(NGINX_PREFIX) == Some(key)) {
            return;
        }
        self.out.findings.push(Finding {
            annotation: format!("{NGINX_PREFIX}{key}"),
            verdict,
            message: message.into(),
            line: 0,
        });
    }

    fn served(&mut self, key: &str, message: impl Into<String>) {
        self.find(key, Verdict::Served, message);
    }

    fn ignored(&mut self, key: &str, message: impl Into<String>) {
        self.find(key, Verdict::Ignored, message);
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.a.get(key).copied()
    }

    /// A value, refused outright when longer than any grammar here takes.
    fn value(&mut self, key: &str) -> Option<&'a str> {
        let v = self.get(key)?;
        if v.len() > policy::MAX_VALUE_BYTES {
            self.ignored(key, format!("longer than {} bytes; the default is used", policy::MAX_VALUE_BYTES));
            return None;
        }
        Some(v.trim())
    }

    /// A boolean with a default: a bad value is the default, as in ingress-nginx.
    fn flag(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.value(key) else { return default };
        match policy::parse_bool(v) {
            Ok(b) => {
                self.served(key, format!("{b}"));
                b
            }
            Err(e) => {
                self.ignored(key, format!("{e}; the default ({default}) is used"));
                default
            }
        }
    }

    fn deny(&mut self, why: String) {
        if self.out.effect == Effect::Serve {
            self.out.effect = Effect::Deny(why.clone());
            self.out.policy.deny = Some(why);
        }
    }

    fn skip(&mut self, key: &str, why: String) {
        self.find(
            key,
            Verdict::Refused,
            format!("{why}; the whole Ingress is not served (as ingress-nginx skips it)"),
        );
        if !matches!(self.out.effect, Effect::Skip(_)) {
            self.out.effect = Effect::Skip(format!("{NGINX_PREFIX}{key}: {why}"));
        }
    }

    fn read_all(&mut self) {
        let keys: Vec<&'a str> = self.a.keys().copied().collect();
        // Refusals first: they do not depend on anything else.
        for &k in &keys {
            if is_snippet(k) {
                self.find(
                    k,
                    Verdict::Refused,
                    "nginx configuration text; Sluice runs no configuration language (the source of \
                     CVE-2025-1974 and its family); the annotation is dropped, the rest of the Ingress loads",
                );
            } else if let Some((_, what)) = UNSUPPORTED_GUARDS.iter().find(|(g, _)| *g == k) {
                let why = format!("{NGINX_PREFIX}{k}: {what} is not implemented by Sluice");
                self.find(
                    k,
                    Verdict::Refused,
                    format!("{what} is not implemented; every path of this Ingress answers 503 rather than be served without it"),
                );
                self.deny(why);
            }
        }
        let canary = self.flag("canary", false);
        if canary {
            self.read_canary();
        } else {
            for &k in keys.iter().filter(|k| k.starts_with("canary-")) {
                self.ignored(k, "only read with canary: \"true\"");
            }
            self.read_paths();
            self.read_redirects();
            self.read_auth();
            self.read_limits();
            self.read_proxy();
            self.read_sources();
            self.read_cors();
            self.read_config_maps();
        }
        self.read_balancing();
        for &k in &keys {
            if let Some((_, why)) = NOT_SERVED.iter().find(|(n, _)| *n == k) {
                self.ignored(k, *why);
            } else if canary && !is_balancing(k) {
                self.ignored(
                    k,
                    "a canary Ingress takes only canary, load-balancing and affinity annotations",
                );
            } else if QUALIFIERS.iter().any(|q| k.starts_with(q)) {
                self.ignored(k, "belongs to a feature Sluice does not implement");
            } else {
                self.ignored(k, "not an ingress-nginx annotation Sluice knows");
            }
        }
    }

    fn read_paths(&mut self) {
        if let Some(v) = self.value("rewrite-target") {
            match RewriteTarget::parse(v) {
                Ok(t) => {
                    self.served(
                        "rewrite-target",
                        format!(
                            "upstream path {t} (groups of the path regex); the host's paths become regexes"
                        ),
                    );
                    self.out.policy.rewrite = Some(t);
                }
                Err(e) => self
                    .ignored("rewrite-target", format!("{e}; not rewritten (as ingress-nginx ignores it)")),
            }
        }
        self.out.policy.use_regex = self.flag("use-regex", false) || self.out.policy.rewrite.is_some();
        if let Some(v) = self.value("app-root") {
            match policy::parse_path(v) {
                Ok(p) => {
                    self.served("app-root", format!("302 to {p} for a request of /"));
                    self.out.policy.app_root = Some(p);
                }
                Err(e) => self.ignored("app-root", e),
            }
        }
        if let Some(v) = self.value("x-forwarded-prefix") {
            if policy::is_field_value(v) && !v.is_empty() {
                self.served("x-forwarded-prefix", format!("X-Forwarded-Prefix: {v}"));
                self.out.policy.forwarded_prefix = Some(v.to_owned());
            } else {
                self.ignored("x-forwarded-prefix", format!("{v:?} is not a header value"));
            }
        }
    }

    fn read_redirects(&mut self) {
        // Its default is the class's: compile decides (`ssl_redirect`).
        if self.get("ssl-redirect").is_some() {
            let v = self.flag("ssl-redirect", true);
            self.out.ssl_redirect = Some(v);
        }
        self.out.policy.force_ssl_redirect = self.flag("force-ssl-redirect", false);
        self.out.policy.preserve_trailing_slash = self.flag("preserve-trailing-slash", false);
        // temporal-redirect wins over permanent-redirect (ingress-nginx's order).
        for (key, code_key, default, max) in [
            ("temporal-redirect", "temporal-redirect-code", 302u16, 307u16),
            ("permanent-redirect", "permanent-redirect-code", 301, 308),
        ] {
            let Some(v) = self.value(key) else {
                if self.get(code_key).is_some() {
                    self.ignored(code_key, format!("only read with {key}"));
                }
                continue;
            };
            let location = match policy::parse_url(v).or_else(|_| policy::parse_path(v)) {
                Ok(l) => l,
                Err(_) => {
                    self.ignored(key, format!("{v:?} is not an absolute http(s) URL or a path; no redirect"));
                    continue;
                }
            };
            let code = match self.value(code_key) {
                None => default,
                Some(c) => match policy::parse_count(c, u32::from(max)) {
                    Ok(n) if n >= 300 => {
                        self.served(code_key, format!("{n}"));
                        n as u16
                    }
                    _ => {
                        self.ignored(
                            code_key,
                            format!("{c:?} is not a status of 300..={max}; {default} is used"),
                        );
                        default
                    }
                },
            };
            if self.out.policy.redirect.is_some() {
                self.ignored(key, "temporal-redirect is set and wins");
                continue;
            }
            self.served(key, format!("{code} to {location}"));
            self.out.policy.redirect = Some(Redirect { location, code });
        }
    }

    fn read_auth(&mut self) {
        let Some(t) = self.value("auth-type") else {
            for k in ["auth-secret", "auth-secret-type", "auth-realm"] {
                if self.get(k).is_some() {
                    self.ignored(k, "only read with auth-type: basic");
                }
            }
            return;
        };
        if t != "basic" {
            let why = if t == "digest" {
                "digest authentication is not implemented".to_owned()
            } else {
                format!("{t:?} is not basic or digest")
            };
            self.find(
                "auth-type",
                Verdict::Refused,
                format!("{why}; every path of this Ingress answers 503"),
            );
            self.deny(format!("{NGINX_PREFIX}auth-type: {why}"));
            return;
        }
        let secret_type = match self.value("auth-secret-type") {
            None => AuthSecretType::File,
            Some("auth-file") => {
                self.served("auth-secret-type", "auth-file: an htpasswd file under the key auth");
                AuthSecretType::File
            }
            Some("auth-map") => {
                self.served("auth-secret-type", "auth-map: each key a user, each value a hash");
                AuthSecretType::Map
            }
            Some(other) => {
                let why = format!("{other:?} is not auth-file or auth-map");
                self.find(
                    "auth-secret-type",
                    Verdict::Refused,
                    format!("{why}; every path of this Ingress answers 503"),
                );
                self.deny(format!("{NGINX_PREFIX}auth-secret-type: {why}"));
                return;
            }
        };
        let realm = match self.value("auth-realm") {
            None => "Authentication Required".to_owned(),
            Some(r) if policy::is_realm(r) => {
                self.served("auth-realm", format!("realm {r:?}"));
                r.to_owned()
            }
            Some(r) => {
                self.ignored(
                    "auth-realm",
                    format!("{r:?} cannot be a realm (quotes, backslashes or control characters)"),
                );
                "Authentication Required".to_owned()
            }
        };
        let secret = self.value("auth-secret").map(|s| match s.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => (self.ns.to_owned(), s.to_owned()),
        });
        match secret {
            None => {
                let why = "auth-type basic without auth-secret".to_owned();
                self.find(
                    "auth-type",
                    Verdict::Refused,
                    format!("{why}; every path of this Ingress answers 503"),
                );
                self.deny(format!("{NGINX_PREFIX}auth-type: {why}"));
            }
            Some((ns, name)) if ns != self.ns => {
                let why =
                    format!("Secret {ns}/{name} is in another namespace (only the Ingress's own is read)");
                self.find(
                    "auth-secret",
                    Verdict::Refused,
                    format!("{why}; every path of this Ingress answers 503"),
                );
                self.deny(format!("{NGINX_PREFIX}auth-secret: {why}"));
            }
            Some((namespace, name)) => {
                self.served(
                    "auth-type",
                    format!("basic, realm {realm:?}; Authorization is not sent upstream"),
                );
                self.served("auth-secret", format!("Secret {namespace}/{name} (read at compile)"));
                self.out.policy.basic_auth = Some(policy::BasicAuth { realm, users: Vec::new() });
                self.out.auth = Some(AuthAsk { namespace, name, secret_type });
            }
        }
    }

    fn read_limits(&mut self) {
        let limits = &mut self.out.policy.limits;
        limits.burst_multiplier = policy::DEFAULT_BURST_MULTIPLIER;
        for key in ["limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier"] {
            let Some(v) = self.value(key) else { continue };
            match policy::parse_count(v, 1_000_000_000) {
                Ok(n) => {
                    let l = &mut self.out.policy.limits;
                    match key {
                        "limit-rps" => l.rps = (n > 0).then_some(n),
                        "limit-rpm" => l.rpm = (n > 0).then_some(n),
                        "limit-connections" => l.connections = (n > 0).then_some(n),
                        _ => l.burst_multiplier = n.max(1),
                    }
                    let what = match key {
                        "limit-rps" => {
                            format!("{n} requests a second per client address, over all workers; 503 over it")
                        }
                        "limit-rpm" => {
                            format!("{n} requests a minute per client address, over all workers; 503 over it")
                        }
                        "limit-connections" => {
                            format!("{n} connections at once per client address; 503 over it")
                        }
                        _ => format!("bursts of {} times the limit", n.max(1)),
                    };
                    self.served(key, what);
                }
                Err(e) => self.skip(key, e),
            }
        }
        if let Some(v) = self.value("limit-whitelist") {
            let (good, bad) = Cidr::parse_list(v);
            if let Some(first) = bad.first() {
                self.skip("limit-whitelist", first.clone());
            } else {
                self.served("limit-whitelist", format!("{} ranges exempt from the limits", good.len()));
                self.out.policy.limits.whitelist = good;
            }
        }
    }

    fn read_proxy(&mut self) {
        if let Some(v) = self.value("backend-protocol") {
            match BackendProtocol::ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(v)) {
                Some(&(p, name)) => {
                    let how = match p {
                        BackendProtocol::Https => "HTTPS: HTTP/1.1 over TLS (ALPN http/1.1); ",
                        BackendProtocol::Grpcs => "GRPCS: HTTP/2 over TLS (ALPN h2); ",
                        BackendProtocol::Grpc | BackendProtocol::H2c => ": HTTP/2 in clear",
                        BackendProtocol::Http => "",
                    };
                    let message = if p.is_tls() {
                        format!(
                            "{how}the endpoint's certificate is not verified and no SNI is sent, as \
                             ingress-nginx does by default (proxy-ssl-verify and proxy-ssl-server-name off)"
                        )
                    } else {
                        format!("{name}{how}")
                    };
                    self.served("backend-protocol", message);
                    self.out.policy.backend_protocol = p;
                }
                None if v.eq_ignore_ascii_case("AUTO_HTTP") => {
                    self.find("backend-protocol", Verdict::Differs, "AUTO_HTTP is served as HTTP");
                }
                None => self.ignored(
                    "backend-protocol",
                    format!("{v:?} is not HTTP, HTTPS, GRPC, GRPCS or H2C; HTTP is used"),
                ),
            }
        }
        self.read_proxy_ssl();
        if let Some(v) = self.value("proxy-body-size") {
            match policy::parse_size(v) {
                Ok(n) => {
                    self.served(
                        "proxy-body-size",
                        if n == 0 { "no limit".into() } else { format!("{n} bytes; 413 over it") },
                    );
                    self.out.policy.body_limit = Some(n);
                }
                Err(e) => self.ignored("proxy-body-size", format!("{e}; the gateway's default is used")),
            }
        }
        for (key, default) in [
            ("proxy-connect-timeout", policy::DEFAULT_CONNECT_TIMEOUT_S),
            ("proxy-read-timeout", policy::DEFAULT_READ_TIMEOUT_S),
            ("proxy-send-timeout", policy::DEFAULT_READ_TIMEOUT_S),
        ] {
            let Some(v) = self.value(key) else { continue };
            let s = match policy::parse_count(v, 86_400) {
                Ok(0) | Err(_) => {
                    self.ignored(
                        key,
                        format!("{v:?} is not a whole number of seconds (1..=86400); the default ({default} s) is used"),
                    );
                    continue;
                }
                Ok(s) => s,
            };
            self.served(key, format!("{s} s"));
            let p = &mut self.out.policy;
            match key {
                "proxy-connect-timeout" => p.connect_timeout_s = Some(s),
                "proxy-read-timeout" => p.read_timeout_s = Some(s),
                _ => p.send_timeout_s = Some(s),
            }
        }
        if let Some(v) = self.value("upstream-vhost") {
            match sluice_model::route::HostRule::new(Some(v)) {
                Ok(sluice_model::route::HostRule::Precise(_)) => {
                    self.served("upstream-vhost", format!("Host: {v} upstream"));
                    self.out.policy.upstream_vhost = Some(v.to_owned());
                }
                _ => self.ignored("upstream-vhost", format!("{v:?} is not a host name")),
            }
        }
    }

    /// `proxy-ssl-verify` and `proxy-ssl-server-name`: only their defaults, off, are served.
    /// (ingress-nginx reads every `proxy-ssl-*` only with `proxy-ssl-secret`, whose `ca.crt` it
    /// verifies against; Sluice takes the annotation at its word.)
    fn read_proxy_ssl(&mut self) {
        if let Some(v) = self.value("proxy-ssl-verify") {
            match v {
                // ingress-nginx reads its proxy-ssl-* annotations only with a proxy-ssl-secret
                // (the CA): without one it verifies nothing, and an Ingress that worked there
                // unverified is served the same way here.
                "on" if self.value("proxy-ssl-secret").is_none() => self.ignored(
                    "proxy-ssl-verify",
                    "on without proxy-ssl-secret: ingress-nginx then verifies nothing, and neither does Sluice",
                ),
                "on" => {
                    let what = "verification of the upstream's certificate (proxy-ssl-verify: on)";
                    self.find(
                        "proxy-ssl-verify",
                        Verdict::Refused,
                        format!(
                            "{what} is not implemented; every path of this Ingress answers 503 rather \
                             than be served without it"
                        ),
                    );
                    self.deny(format!("{NGINX_PREFIX}proxy-ssl-verify: {what} is not implemented by Sluice"));
                }
                "off" => self.served("proxy-ssl-verify", "off: the upstream's certificate is not verified"),
                _ => self.ignored("proxy-ssl-verify", format!("{v:?} is not on or off; off is used")),
            }
        }
        if let Some(v) = self.value("proxy-ssl-server-name") {
            match v {
                "off" => self.served("proxy-ssl-server-name", "off: no SNI is sent to upstreams"),
                "on" => self.ignored(
                    "proxy-ssl-server-name",
                    "SNI to upstreams is not implemented; none is sent (as with off)",
                ),
                _ => self.ignored("proxy-ssl-server-name", format!("{v:?} is not on or off; off is used")),
            }
        }
    }

    fn read_sources(&mut self) {
        for key in ["whitelist-source-range", "allowlist-source-range", "denylist-source-range"] {
            let Some(v) = self.value(key) else { continue };
            let (good, bad) = Cidr::parse_list(v);
            let allow = key != "denylist-source-range";
            if good.is_empty() {
                let why = format!("no valid range in {v:?}");
                if allow {
                    self.find(
                        key,
                        Verdict::Refused,
                        format!("{why}; every path of this Ingress answers 503"),
                    );
                    self.deny(format!("{NGINX_PREFIX}{key}: {why}"));
                } else {
                    self.ignored(key, why);
                }
                continue;
            }
            let n = good.len();
            let list =
                if allow { &mut self.out.policy.allow_sources } else { &mut self.out.policy.deny_sources };
            list.extend(good);
            list.sort();
            list.dedup();
            let what = if allow { "only these clients; 403 for others" } else { "403 for these clients" };
            if bad.is_empty() {
                self.served(key, format!("{n} ranges: {what}"));
            } else {
                self.find(key, Verdict::Differs, format!("{n} ranges: {what}; left out: {}", bad.join("; ")));
            }
        }
    }

    fn read_cors(&mut self) {
        if !self.flag("enable-cors", false) {
            for k in [
                "cors-allow-origin",
                "cors-allow-methods",
                "cors-allow-headers",
                "cors-expose-headers",
                "cors-allow-credentials",
                "cors-max-age",
            ] {
                if self.get(k).is_some() {
                    self.ignored(k, "only read with enable-cors: \"true\"");
                }
            }
            return;
        }
        let mut cors = Cors {
            allow_origins: vec!["*".into()],
            allow_methods: policy::DEFAULT_CORS_METHODS.into(),
            allow_headers: policy::DEFAULT_CORS_HEADERS.into(),
            expose_headers: String::new(),
            allow_credentials: true,
            max_age_s: policy::DEFAULT_CORS_MAX_AGE_S,
        };
        if let Some(v) = self.value("cors-allow-origin") {
            let origins: Vec<String> =
                v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
            let ok = |o: &String| {
                o == "*"
                    || policy::parse_url(o).is_ok_and(|u| {
                        !u.trim_start_matches("https://").trim_start_matches("http://").contains('/')
                    })
            };
            if !origins.is_empty() && origins.iter().all(ok) {
                self.served("cors-allow-origin", origins.join(", "));
                cors.allow_origins = origins;
            } else {
                self.ignored(
                    "cors-allow-origin",
                    format!("{v:?} is not * or a list of origins (scheme://host[:port]); * is used"),
                );
            }
        }
        for (key, slot) in [("cors-allow-methods", 0), ("cors-allow-headers", 1), ("cors-expose-headers", 2)]
        {
            let Some(v) = self.value(key) else { continue };
            let ok = v.split(',').map(str::trim).all(|t| t == "*" || policy::is_token(t));
            if ok && policy::is_field_value(v) {
                self.served(key, v.to_owned());
                let s = v.to_owned();
                match slot {
                    0 => cors.allow_methods = s,
                    1 => cors.allow_headers = s,
                    _ => cors.expose_headers = s,
                }
            } else {
                self.ignored(
                    key,
                    format!("{v:?} is not a comma-separated list of tokens; the default is used"),
                );
            }
        }
        cors.allow_credentials = self.flag("cors-allow-credentials", true);
        if let Some(v) = self.value("cors-max-age") {
            match policy::parse_count(v, u32::MAX) {
                Ok(n) => {
                    self.served("cors-max-age", format!("{n} s"));
                    cors.max_age_s = n;
                }
                Err(e) => self.ignored("cors-max-age", format!("{e}; the default is used")),
            }
        }
        self.out.policy.cors = Some(cors);
    }

    /// `custom-headers` and `proxy-set-headers`: `name` or `namespace/name` of a ConfigMap of
    /// the Ingress's namespace. Another namespace's is refused (ignored, the Ingress served
    /// without it): whoever writes an Ingress would otherwise send any ConfigMap of the cluster
    /// to its clients, or to its upstreams, as headers. ingress-nginx reads any namespace's.
    fn read_config_maps(&mut self) {
        for target in [HeadersFor::Response, HeadersFor::Request] {
            let key = target.annotation();
            let Some(v) = self.value(key) else { continue };
            let (ns, name) = match v.split_once('/') {
                Some((ns, name)) => (ns, name),
                None => (self.ns, v),
            };
            let named = |s: &str| {
                sluice_model::route::HostRule::new(Some(s)).is_ok() && !s.contains('*') && !s.is_empty()
            };
            if !named(ns) || !named(name) {
                self.ignored(key, format!("{v:?} is not a ConfigMap name (namespace/name)"));
                continue;
            }
            if ns != self.ns {
                self.ignored(
                    key,
                    format!(
                        "ConfigMap {ns}/{name} is in another namespace (only the Ingress's own is read: copy \
                         it into {}); served without these headers",
                        self.ns
                    ),
                );
                continue;
            }
            let what = match target {
                HeadersFor::Response => "added to every response",
                HeadersFor::Request => {
                    "set on every request sent upstream (the client's own of those names dropped)"
                }
            };
            self.served(key, format!("the fields of ConfigMap {ns}/{name} (read at compile), {what}"));
            self.out.config_maps.push(ConfigMapAsk {
                target,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
        }
    }

    fn read_canary(&mut self) {
        let mut c = Canary::default();
        if let Some(v) = self.value("canary-by-header") {
            if policy::is_token(v) {
                self.served("canary-by-header", format!("header {v}: always → canary, never → main"));
                c.header = Some(v.to_ascii_lowercase());
            } else {
                self.ignored("canary-by-header", format!("{v:?} is not a header name"));
            }
        }
        if let Some(v) = self.value("canary-by-header-value") {
            if c.header.is_some() && policy::is_field_value(v) && !v.is_empty() {
                self.served("canary-by-header-value", format!("{v:?} → canary (replaces always)"));
                c.header_value = Some(v.to_owned());
            } else {
                self.ignored("canary-by-header-value", "needs canary-by-header, and a header value");
            }
        }
        if let Some(v) = self.value("canary-by-header-pattern") {
            if c.header_value.is_some() {
                self.ignored("canary-by-header-pattern", "canary-by-header-value is set and wins");
            } else if c.header.is_none() {
                self.ignored("canary-by-header-pattern", "needs canary-by-header");
            } else {
                match regex_syntax::Parser::new().parse(v) {
                    Ok(_) if v.len() <= 1024 => {
                        self.served("canary-by-header-pattern", format!("values matching {v:?} → canary"));
                        c.header_pattern = Some(v.to_owned());
                    }
                    _ => {
                        self.ignored("canary-by-header-pattern", format!("{v:?} is not a regex Sluice takes"))
                    }
                }
            }
        }
        if let Some(v) = self.value("canary-by-cookie") {
            if policy::is_cookie_name(v) {
                self.served("canary-by-cookie", format!("cookie {v}: always → canary, never → main"));
                c.cookie = Some(v.to_owned());
            } else {
                self.ignored("canary-by-cookie", format!("{v:?} is not a cookie name"));
            }
        }
        if let Some(v) = self.value("canary-weight-total") {
            match policy::parse_count(v, 1_000_000) {
                Ok(n) if n > 0 => {
                    self.served("canary-weight-total", format!("{n}"));
                    c.weight_total = n;
                }
                _ => self.ignored(
                    "canary-weight-total",
                    format!("{v:?} is not a whole number 1..=1000000; 100 is used"),
                ),
            }
        }
        if let Some(v) = self.value("canary-weight") {
            match policy::parse_count(v, c.weight_total) {
                Ok(n) => {
                    self.served("canary-weight", format!("{n} of {} requests → canary", c.weight_total));
                    c.weight = n;
                }
                Err(_) => {
                    self.ignored("canary-weight", format!("{v:?} is not 0..={}; 0 is used", c.weight_total))
                }
            }
        }
        self.out.canary = Some(c);
    }

    /// Load-balancing and affinity: read for main and canary Ingresses alike.
    fn read_balancing(&mut self) {
        if let Some(v) = self.value("upstream-hash-by") {
            match HashKey::parse(v) {
                Ok(k) => {
                    self.served("upstream-hash-by", format!("endpoint by consistent hash of {v}"));
                    self.out.policy.hash_by = Some(k);
                }
                Err(e) => self.ignored("upstream-hash-by", e),
            }
        }
        let Some(a) = self.value("affinity") else {
            for k in self
                .a
                .keys()
                .copied()
                .filter(|k| k.starts_with("session-cookie-") || *k == "affinity-mode")
                .collect::<Vec<_>>()
            {
                self.ignored(k, "only read with affinity: cookie");
            }
            return;
        };
        if a != "cookie" {
            self.ignored("affinity", format!("{a:?} is not cookie"));
            return;
        }
        let mut c = CookieAffinity {
            name: policy::DEFAULT_COOKIE_NAME.into(),
            path: None,
            expires_s: None,
            max_age_s: None,
            samesite: None,
            persistent: false,
        };
        if let Some(v) = self.value("session-cookie-name") {
            if policy::is_cookie_name(v) {
                self.served("session-cookie-name", v.to_owned());
                c.name = v.to_owned();
            } else {
                self.ignored(
                    "session-cookie-name",
                    format!("{v:?} is not a cookie name; INGRESSCOOKIE is used"),
                );
            }
        }
        if let Some(v) = self.value("session-cookie-path") {
            match policy::parse_path(v) {
                Ok(p) if !p.contains(';') => {
                    self.served("session-cookie-path", p.clone());
                    c.path = Some(p);
                }
                _ => self.ignored("session-cookie-path", format!("{v:?} is not a cookie path")),
            }
        }
        for key in ["session-cookie-expires", "session-cookie-max-age"] {
            let Some(v) = self.value(key) else { continue };
            match policy::parse_count(v, u32::MAX) {
                Ok(n) => {
                    self.served(key, format!("{n} s"));
                    if key.ends_with("expires") {
                        c.expires_s = Some(n);
                    } else {
                        c.max_age_s = Some(n);
                    }
                }
                Err(e) => self.ignored(key, format!("{e}; a session cookie")),
            }
        }
        if let Some(v) = self.value("session-cookie-samesite") {
            match v.parse::<SameSite>() {
                Ok(s) => {
                    self.served("session-cookie-samesite", s.name());
                    c.samesite = Some(s);
                }
                Err(e) => self.ignored("session-cookie-samesite", e),
            }
        }
        if let Some(v) = self.value("affinity-mode") {
            match v {
                "balanced" | "persistent" => {
                    self.served("affinity-mode", v.to_owned());
                    c.persistent = v == "persistent";
                }
                _ => self.ignored("affinity-mode", format!("{v:?} is not balanced or persistent")),
            }
        }
        self.served("affinity", format!("cookie {}: HttpOnly, Secure over HTTPS", c.name));
        self.out.policy.affinity = Some(c);
    }
}

/// The annotations a canary Ingress still reads.
fn is_balancing(k: &str) -> bool {
    k == "canary"
        || k.starts_with("canary-")
        || k == "affinity"
        || k == "affinity-mode"
        || k.starts_with("session-cookie-")
        || k == "upstream-hash-by"
        || k == "load-balance"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(pairs: &[(&str, &str)]) -> Annotations {
        let m = pairs.iter().map(|(k, v)| (format!("{NGINX_PREFIX}{k}"), (*v).to_owned())).collect();
        read("shop", &m)
    }

    fn verdict(a: &Annotations, key: &str) -> Verdict {
        a.findings
            .iter()
            .find(|f| f.annotation == format!("{NGINX_PREFIX}{key}"))
            .unwrap_or_else(|| panic!("{key}: {a:?}"))
            .verdict
    }

    #[test]
    fn no_annotations_is_the_default_policy() {
        let a = read("shop", &BTreeMap::from([("other.io/x".to_owned(), "y".to_owned())]));
        assert!(a.policy.is_default() && a.findings.is_empty() && a.effect == Effect::Serve);
    }

    #[test]
    fn each_annotation_gets_exactly_one_finding() {
        let a = read_all(&[
            ("rewrite-target", "/$2"),
            ("ssl-redirect", "false"),
            ("limit-rps", "10"),
            ("proxy-body-size", "8m"),
            ("whatever-this-is", "1"),
            ("configuration-snippet", "more_set_headers \"X: y\";"),
        ]);
        assert_eq!(a.findings.len(), 6, "{:#?}", a.findings);
        assert_eq!(verdict(&a, "rewrite-target"), Verdict::Served);
        assert!(a.policy.use_regex);
        assert_eq!(a.ssl_redirect, Some(false));
        assert_eq!(a.policy.limits.rps, Some(10));
        assert_eq!(a.policy.body_limit, Some(8 << 20));
        assert_eq!(verdict(&a, "whatever-this-is"), Verdict::Ignored);
        assert_eq!(verdict(&a, "configuration-snippet"), Verdict::Refused);
        // A snippet is dropped, not a reason to refuse the Ingress.
        assert_eq!(a.effect, Effect::Serve);
    }

    #[test]
    fn bad_values_fall_back_deny_or_skip_as_ingress_nginx_does() {
        let a = read_all(&[("proxy-read-timeout", "1m"), ("ssl-redirect", "yes")]);
        assert_eq!(a.policy.read_timeout_s, None, "the default");
        assert_eq!(a.ssl_redirect, Some(true), "a bad value is ingress-nginx's default");
        assert_eq!(a.effect, Effect::Serve);

        let a = read_all(&[("limit-rps", "ten")]);
        assert!(matches!(a.effect, Effect::Skip(_)), "{a:?}");
        assert_eq!(verdict(&a, "limit-rps"), Verdict::Refused);

        let a = read_all(&[("limit-whitelist", "10.0.0.0/8, nope")]);
        assert!(matches!(a.effect, Effect::Skip(_)));

        let a = read_all(&[("whitelist-source-range", "nope, nada")]);
        assert!(matches!(a.effect, Effect::Deny(_)));
        assert!(a.policy.deny.is_some());

        let a = read_all(&[("auth-type", "basic")]);
        assert!(matches!(a.effect, Effect::Deny(_)), "no Secret named: {a:?}");
        let a = read_all(&[("auth-type", "basic"), ("auth-secret", "other/creds")]);
        assert!(matches!(a.effect, Effect::Deny(_)), "another namespace: {a:?}");
        let a = read_all(&[("auth-type", "basic"), ("auth-secret", "creds"), ("auth-realm", "Shop")]);
        assert_eq!(a.effect, Effect::Serve);
        assert_eq!(
            a.auth,
            Some(AuthAsk {
                namespace: "shop".into(),
                name: "creds".into(),
                secret_type: AuthSecretType::File
            })
        );
        assert_eq!(a.policy.basic_auth.as_ref().unwrap().realm, "Shop");
    }

    #[test]
    fn an_unsupported_guard_denies_rather_than_opens() {
        for key in ["auth-url", "auth-tls-secret", "enable-modsecurity"] {
            let a = read_all(&[(key, "x")]);
            assert!(matches!(a.effect, Effect::Deny(_)), "{key}: {a:?}");
            assert_eq!(verdict(&a, key), Verdict::Refused);
        }
    }

    #[test]
    fn tls_backend_protocols_are_served_with_ingress_nginx_defaults() {
        for (v, p) in [("HTTPS", BackendProtocol::Https), ("grpcs", BackendProtocol::Grpcs)] {
            let a = read_all(&[("backend-protocol", v)]);
            assert_eq!((a.policy.backend_protocol, a.effect.clone()), (p, Effect::Serve));
            let f = &a.findings[0];
            assert_eq!(f.verdict, Verdict::Served);
            assert!(f.message.contains("over TLS") && f.message.contains("not verified"), "{f}");
            assert!(!f.message.contains("in clear"), "{f}");
        }
        let a = read_all(&[("backend-protocol", "GRPC")]);
        assert_eq!(a.findings[0].message, "GRPC: HTTP/2 in clear");
        // The defaults, said explicitly: served.
        let a = read_all(&[
            ("backend-protocol", "HTTPS"),
            ("proxy-ssl-verify", "off"),
            ("proxy-ssl-server-name", "off"),
        ]);
        assert_eq!(a.effect, Effect::Serve);
        assert_eq!(verdict(&a, "proxy-ssl-verify"), Verdict::Served);
        assert_eq!(verdict(&a, "proxy-ssl-server-name"), Verdict::Served);
    }

    #[test]
    fn proxy_ssl_verify_on_denies_rather_than_serve_unverified() {
        let a = read_all(&[
            ("backend-protocol", "HTTPS"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-secret", "shop/upstream-ca"),
            ("proxy-ssl-verify-depth", "2"),
        ]);
        let Effect::Deny(why) = &a.effect else { panic!("{a:?}") };
        assert!(why.contains("proxy-ssl-verify"), "{why}");
        assert!(a.policy.deny.is_some());
        assert_eq!(verdict(&a, "proxy-ssl-verify"), Verdict::Refused);
        assert_eq!(verdict(&a, "proxy-ssl-secret"), Verdict::Ignored);
        assert_eq!(verdict(&a, "proxy-ssl-verify-depth"), Verdict::Ignored);
        assert_eq!(a.findings.len(), 4, "{:#?}", a.findings);
    }

    /// ingress-nginx verifies only with a CA Secret: `on` alone verifies nothing there, so an
    /// Ingress that worked unverified is served here too.
    #[test]
    fn proxy_ssl_verify_on_without_a_secret_is_served_as_ingress_nginx_serves_it() {
        let a = read_all(&[("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "on")]);
        assert_eq!(a.effect, Effect::Serve, "{a:?}");
        assert!(a.policy.deny.is_none());
        let f = a.findings.iter().find(|f| f.annotation.ends_with("proxy-ssl-verify")).unwrap();
        assert_eq!(f.verdict, Verdict::Ignored, "{f}");
        assert!(f.message.contains("proxy-ssl-secret"), "{f}");
    }

    #[test]
    fn proxy_ssl_knobs_sluice_lacks_are_ignored_with_a_reason() {
        let a = read_all(&[
            ("backend-protocol", "GRPCS"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-protocols", "TLSv1.3"),
            ("proxy-ssl-ciphers", "HIGH:!aNULL"),
            ("proxy-ssl-verify", "maybe"),
        ]);
        assert_eq!(a.effect, Effect::Serve, "nothing here protects the Ingress: {a:?}");
        for key in [
            "proxy-ssl-server-name",
            "proxy-ssl-name",
            "proxy-ssl-protocols",
            "proxy-ssl-ciphers",
            "proxy-ssl-verify",
        ] {
            let f = a.findings.iter().find(|f| f.annotation.ends_with(key)).unwrap();
            assert_eq!(f.verdict, Verdict::Ignored, "{f}");
            assert!(!f.message.contains("not an ingress-nginx annotation"), "{f}");
        }
        assert_eq!(a.policy.backend_protocol, BackendProtocol::Grpcs);
    }

    #[test]
    fn redirects_and_codes() {
        let a = read_all(&[
            ("permanent-redirect", "https://new.example.com/x"),
            ("permanent-redirect-code", "308"),
        ]);
        assert_eq!(
            a.policy.redirect,
            Some(Redirect { location: "https://new.example.com/x".into(), code: 308 })
        );
        let a = read_all(&[
            ("permanent-redirect", "https://a.example.com"),
            ("temporal-redirect", "https://b.example.com"),
            ("temporal-redirect-code", "399"),
        ]);
        assert_eq!(a.policy.redirect, Some(Redirect { location: "https://b.example.com".into(), code: 302 }));
        assert_eq!(verdict(&a, "permanent-redirect"), Verdict::Ignored);
        assert_eq!(verdict(&a, "temporal-redirect-code"), Verdict::Ignored);
    }

    #[test]
    fn canary_keys_need_canary_true_and_a_canary_reads_only_its_own() {
        let a = read_all(&[("canary-weight", "30")]);
        assert!(a.canary.is_none());
        assert_eq!(verdict(&a, "canary-weight"), Verdict::Ignored);
        let a = read_all(&[
            ("canary", "true"),
            ("canary-weight", "30"),
            ("canary-by-header", "X-Canary"),
            ("rewrite-target", "/"),
            ("affinity", "cookie"),
        ]);
        let c = a.canary.as_ref().unwrap();
        assert_eq!((c.weight, c.weight_total, c.header.as_deref()), (30, 100, Some("x-canary")));
        assert_eq!(verdict(&a, "rewrite-target"), Verdict::Ignored);
        assert_eq!(verdict(&a, "affinity"), Verdict::Served);
        assert!(a.policy.rewrite.is_none() && a.policy.affinity.is_some());
        let a = read_all(&[("canary", "true"), ("canary-weight", "101")]);
        assert_eq!(a.canary.unwrap().weight, 0, "a bad weight is 0");
    }

    #[test]
    fn config_maps_are_asked_for_in_the_ingress_namespace_only() {
        let a = read_all(&[("custom-headers", "hdrs"), ("proxy-set-headers", "shop/up")]);
        assert_eq!(
            a.config_maps,
            [
                ConfigMapAsk { target: HeadersFor::Response, namespace: "shop".into(), name: "hdrs".into() },
                ConfigMapAsk { target: HeadersFor::Request, namespace: "shop".into(), name: "up".into() },
            ]
        );
        assert_eq!(verdict(&a, "custom-headers"), Verdict::Served);
        let f = a.findings.iter().find(|f| f.annotation.ends_with("/proxy-set-headers")).unwrap();
        assert_eq!(
            f.message,
            "the fields of ConfigMap shop/up (read at compile), set on every request sent upstream (the \
             client's own of those names dropped)"
        );
        // Another namespace's: not read, the Ingress served without it.
        let a = read_all(&[("custom-headers", "kube-system/cluster-config")]);
        assert!(a.config_maps.is_empty() && a.effect == Effect::Serve, "{a:?}");
        assert_eq!(verdict(&a, "custom-headers"), Verdict::Ignored);
        let a = read_all(&[("proxy-set-headers", "shop/Bad_Name")]);
        assert!(a.config_maps.is_empty());
        assert_eq!(verdict(&a, "proxy-set-headers"), Verdict::Ignored);
        // A canary reads none.
        let a = read_all(&[("canary", "true"), ("custom-headers", "hdrs")]);
        assert!(a.config_maps.is_empty());
    }

    /// The payloads of ingress-nginx's configuration-injection CVEs, as published: each is
    /// refused, or kept only as data that no grammar here turns into anything.
    #[test]
    fn cve_payloads_are_refused_or_inert() {
        let ssl_engine = "http://x/#;\n}\n}\n}\nssl_engine /tmp/exploit.so;\n#";
        let fixtures: [(&str, &str); 8] = [
            // CVE-2025-24514: auth-url.
            ("auth-url", ssl_engine),
            // CVE-2025-1097: auth-tls-match-cn.
            ("auth-tls-match-cn", "CN=abc #(\n){}\n }}\nssl_engine /tmp/exploit.so;\n#"),
            // CVE-2025-1098: mirror-target and mirror-host.
            ("mirror-target", "http://x/;\n}\n}\nssl_engine /tmp/exploit.so;\n#"),
            ("mirror-host", "x;\nssl_engine /tmp/exploit.so;"),
            // CVE-2025-1974 reached nginx -t through any of the above; its snippet form.
            ("configuration-snippet", "ssl_engine /proc/self/fd/42;"),
            ("server-snippet", "load_module /tmp/x.so;"),
            // CVE-2023-5044: permanent-redirect.
            ("permanent-redirect", "https://x.com;\nssl_engine /tmp/exploit.so;"),
            // CVE-2026-24512 came through the path; a rewrite target with configuration text.
            ("rewrite-target", "/$1;\n}\nssl_engine /tmp/x.so;"),
        ];
        for (key, payload) in fixtures {
            let a = read_all(&[(key, payload)]);
            let f = a.findings.iter().find(|f| f.annotation.ends_with(key)).unwrap();
            assert!(matches!(f.verdict, Verdict::Refused | Verdict::Ignored), "{key}: {f:?}");
            // Nothing of it is kept as a value...
            let kept = format!("{:?}", a.policy);
            assert!(!kept.contains("ssl_engine") && !kept.contains("load_module"), "{key}: {kept}");
            // ...and a message quotes it, never with a raw newline.
            assert!(!f.message.contains('\n'), "{key}: {:?}", f.message);
        }
    }
}
