//! Ingress routes: the typed form of Ingress rules control hands over, and the merged route
//! table the L7 stage routes from.
//!
//! Control validates each Ingress (as the API server would) into an [`IngressSpec`]: hosts as
//! [`HostRule`]s, paths as [`RulePath`]s with their [`PathType`], backends as [`Backend`]s.
//! [`RouteTable::compile`] merges every Ingress of Sluice's class into one table with one entry
//! per host rule, and settles conflicts deterministically, reporting each one.
//!
//! # Semantics (Kubernetes Ingress v1, Sluice's strict class)
//! - **Hosts.** A precise host matches the request's host (the Host header or the absolute
//!   target's authority, without port, lowercased, without one trailing dot). `*.foo.com` matches
//!   a host with exactly one more label in front (`bar.foo.com`, not `foo.com`, not
//!   `baz.bar.foo.com`). A rule without host matches every host. A request host that is an IP
//!   literal matches only rules without host (rule hosts are DNS names).
//! - **Paths.** `Exact` compares the whole path, byte for byte. `Prefix` compares path elements:
//!   a rule path matches when its elements (split on `/`, a trailing `/` ignored on either side)
//!   begin the request's elements, the last one compared whole: `/foo` matches `/foo`, `/foo/`
//!   and `/foo/bar`, not `/foobar`; `/` matches everything. `ImplementationSpecific` is `Prefix`
//!   in Sluice's class — same matching, same conflicts — and its path may be absent, meaning `/`.
//!   Paths are matched as received (no percent-decoding, no dot-segment removal).
//! - **Precedence.** A request has at most three host entries that can match it: its precise
//!   host, the one wildcard one label up, and the rules without host; they are tried in that
//!   order (the more specific host first) and the first entry with a matching path decides.
//!   Within an entry the longest matching path wins, its length counted without a `Prefix`
//!   path's trailing slash; on a tie `Exact` beats `Prefix`. (So an `Exact` path that matches
//!   always wins: it is the whole request path, which no prefix is longer than.)
//! - **Default backends.** When no path matches, the request goes to the default backend of the
//!   most specific of its host entries that has one. An Ingress's `spec.defaultBackend` belongs
//!   to every host entry its rules name; an Ingress without rules gives it to the entry of
//!   rules without host, so it catches every unmatched request. No default backend: Sluice
//!   answers 404 itself.
//! - **Several Ingresses.** Rules of every Ingress for one host merge into one entry. Two paths
//!   conflict when they have the same host, the same matching kind (`Exact`, or
//!   `Prefix`/`ImplementationSpecific`) and the same path (for prefixes: once the trailing slash
//!   is dropped); two default backends conflict when they belong to the same host entry. The
//!   older Ingress wins (`metadata.creationTimestamp`; an Ingress without one — manifest mode —
//!   counts as newer than any with one), then the smaller `namespace/name`, then the rule that
//!   comes first in the Ingress. Every loser is reported as a [`Conflict`], naming both.
//! - **Backends.** A Service (name and port number or name, in the Ingress's namespace) or an
//!   unavailable backend: a `resource` backend or a Service that does not exist becomes
//!   [`Backend::Unavailable`], and a request routed there gets 503.
//!
//! Not hot path (compiled once per table generation); the matching in the L7 stage is.

use std::collections::BTreeMap;
use std::fmt;

use crate::policy::{Canary, Policy};

/// An Ingress's identity: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl IngressRef {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> IngressRef {
        IngressRef { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for IngressRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A rule path's `pathType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathType {
    /// The whole path, byte for byte.
    Exact,
    /// Element by element (see the module documentation).
    Prefix,
    /// Sluice's class defines it as [`PathType::Prefix`].
    ImplementationSpecific,
}

impl PathType {
    /// The name Kubernetes uses.
    pub const fn name(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }

    /// How a path of this type is matched in Sluice's class.
    pub const fn kind(self) -> MatchKind {
        match self {
            PathType::Exact => MatchKind::Exact,
            PathType::Prefix | PathType::ImplementationSpecific => MatchKind::Prefix,
        }
    }
}

/// How a path is matched: what [`PathType`]s come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchKind {
    /// The whole request path.
    Exact,
    /// Leading path elements.
    Prefix,
}

/// Why a rule path or host was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// A path that does not begin with `/`.
    PathNotAbsolute(String),
    /// A path with a sequence the API server refuses for Exact and Prefix paths (`//`, `/./`,
    /// `/../`, `%2f`, or a final `/.` or `/..`): it would match differently here and upstream.
    PathSequence {
        /// The path.
        path: String,
        /// The sequence.
        sequence: &'static str,
    },
    /// A path with a byte outside RFC 3986's path characters.
    PathCharacter {
        /// The path.
        path: String,
        /// The byte.
        byte: u8,
    },
    /// A host that is not a lowercase DNS name (RFC 1123 subdomain), or is an IP address.
    Host(String),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::PathNotAbsolute(p) => write!(f, "path {p:?} must begin with '/'"),
            RuleError::PathSequence { path, sequence } => {
                write!(f, "path {path:?} must not contain {sequence:?}")
            }
            RuleError::PathCharacter { path, byte } => write!(
                f,
                "path {path:?} has byte 0x{byte:02x}, not allowed in a URL path (percent-encode it)"
            ),
            RuleError::Host(h) => write!(
                f,
                "host {h:?} must be a lowercase DNS name (a.example.com), optionally with a \
                 wildcard first label (*.example.com), and not an IP address"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

/// A rule's path: absolute, free of the sequences the API server refuses, only URL path
/// characters. Checked once, where it is made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RulePath(String);

/// Sequences the API server refuses in Exact and Prefix paths
/// (`k8s.io/kubernetes/pkg/apis/networking/validation`: `invalidPathSequences`).
const BAD_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
/// Suffixes it refuses (`invalidPathSuffixes`).
const BAD_SUFFIXES: [&str; 2] = ["/..", "/."];

impl RulePath {
    /// `/`.
    pub fn root() -> RulePath {
        RulePath("/".into())
    }

    /// Checks a path. Sluice's class holds every path type to the rules the API server applies
    /// to Exact and Prefix paths, so an ImplementationSpecific path means the same here and
    /// upstream.
    pub fn new(path: &str) -> Result<RulePath, RuleError> {
        if !path.starts_with('/') {
            return Err(RuleError::PathNotAbsolute(path.into()));
        }
        for sequence in BAD_SEQUENCES {
            if path.contains(sequence) {
                return Err(RuleError::PathSequence { path: path.into(), sequence });
            }
        }
        for sequence in BAD_SUFFIXES {
            if path.ends_with(sequence) {
                return Err(RuleError::PathSequence { path: path.into(), sequence });
            }
        }
        // RFC 3986 §3.3: path = *( "/" / pchar ); pchar = unreserved / pct-encoded / sub-delims
        // / ":" / "@".
        if let Some(&byte) = path.as_bytes().iter().find(|&&b| !is_path_byte(b)) {
            return Err(RuleError::PathCharacter { path: path.into(), byte });
        }
        Ok(RulePath(path.into()))
    }

    /// A path of ingress-nginx's dialect (an ImplementationSpecific path of its class, a regex
    /// perhaps): absolute, printable ASCII without spaces, at most 1,024 bytes. Never rendered
    /// into anything: matched as a string, or compiled as a regex by the gateway.
    pub fn nginx(path: &str) -> Result<RulePath, RuleError> {
        if !path.starts_with('/') {
            return Err(RuleError::PathNotAbsolute(path.into()));
        }
        if let Some(&byte) = path.as_bytes().iter().find(|&&b| !(0x21..0x7f).contains(&b)) {
            return Err(RuleError::PathCharacter { path: path.into(), byte });
        }
        if path.len() > 1024 {
            return Err(RuleError::PathCharacter { path: path[..64].into(), byte: b'.' });
        }
        Ok(RulePath(path.into()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The string a request path is compared with for `kind`: the path itself for Exact; for
    /// Prefix the path without its trailing slash, so `/` becomes the empty string (which every
    /// path begins with).
    pub fn key(&self, kind: MatchKind) -> &str {
        match kind {
            MatchKind::Exact => &self.0,
            MatchKind::Prefix => self.0.strip_suffix('/').unwrap_or(&self.0),
        }
    }
}

impl fmt::Display for RulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A byte RFC 3986 allows in a path (the `%` of a pct-encoded triplet included).
const fn is_path_byte(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'_' | b'~'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        | b':' | b'@' | b'%' | b'/')
}

/// Which hosts a rule is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostRule {
    /// One host (lowercase DNS name).
    Precise(String),
    /// `*.` + this suffix (lowercase DNS name): hosts with exactly one more label.
    Wildcard(String),
    /// No host: every host.
    Any,
}

impl HostRule {
    /// Checks an Ingress rule's `host`: absent or empty is [`HostRule::Any`].
    pub fn new(host: Option<&str>) -> Result<HostRule, RuleError> {
        let h = match host {
            None | Some("") => return Ok(HostRule::Any),
            Some(h) => h,
        };
        let bad = || RuleError::Host(h.into());
        if h.parse::<std::net::IpAddr>().is_ok() {
            return Err(bad());
        }
        match h.strip_prefix("*.") {
            Some(suffix) if is_dns_name(suffix) => Ok(HostRule::Wildcard(suffix.into())),
            None if is_dns_name(h) => Ok(HostRule::Precise(h.into())),
            _ => Err(bad()),
        }
    }

    /// Whether a request host (lowercase, without port or trailing dot) matches the rule.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostRule::Precise(h) => h == host,
            HostRule::Wildcard(suffix) => wildcard_suffix(host) == Some(suffix.as_str()),
            HostRule::Any => true,
        }
    }
}

/// The suffix a wildcard rule must have to match `host`: everything after its first label, if
/// that label is not empty.
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((first, rest)) if !first.is_empty() && !rest.is_empty() => Some(rest),
        _ => None,
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Precise(h) => f.write_str(h),
            HostRule::Wildcard(s) => write!(f, "*.{s}"),
            HostRule::Any => f.write_str("(any host)"),
        }
    }
}

/// An RFC 1123 subdomain in lowercase: labels of `a-z0-9-`, not beginning or ending with `-`,
/// at most 63 bytes each and 253 in all.
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A Service port, as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServicePort {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

/// A Service backend: a Service of the Ingress's namespace and one of its ports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceBackend {
    /// The Service's namespace (the Ingress's).
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port.
    pub port: ServicePort,
}

/// Why a backend cannot take requests. Requests routed to it get 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unavailable {
    /// A `resource` backend: Sluice's class serves no resources.
    Resource,
    /// The Service does not exist.
    MissingService,
    /// The Service has no such port.
    MissingPort,
}

impl Unavailable {
    /// A short name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Unavailable::Resource => "resource_backend",
            Unavailable::MissingService => "missing_service",
            Unavailable::MissingPort => "missing_port",
        }
    }
}

/// Where a rule sends requests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// A Service port.
    Service(ServiceBackend),
    /// Nothing that can answer: 503.
    Unavailable(Unavailable),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Service(s) => match &s.port {
                ServicePort::Number(n) => write!(f, "service {}/{}:{n}", s.namespace, s.name),
                ServicePort::Name(n) => write!(f, "service {}/{}:{n}", s.namespace, s.name),
            },
            Backend::Unavailable(u) => write!(f, "unavailable ({})", u.name()),
        }
    }
}

/// One path of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSpec {
    /// `pathType`.
    pub path_type: PathType,
    /// `path` (for ImplementationSpecific without a path: [`RulePath::root`]).
    pub path: RulePath,
    /// `backend`.
    pub backend: Backend,
}

/// One rule: a host and its paths (`spec.rules[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `host`.
    pub host: HostRule,
    /// `http.paths` (empty when `http` is absent).
    pub paths: Vec<PathSpec>,
}

/// One Ingress of Sluice's class, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressSpec {
    /// Its identity.
    pub id: IngressRef,
    /// `metadata.creationTimestamp` as seconds since the Unix epoch; `None` in manifest mode.
    pub created_unix_s: Option<i64>,
    /// `spec.defaultBackend`.
    pub default_backend: Option<Backend>,
    /// `spec.rules`.
    pub rules: Vec<RuleSpec>,
    /// What its annotations ask of its paths and default backend.
    pub policy: Policy,
    /// `Some` for a canary Ingress (ingress-nginx's `canary: "true"`): its paths are not routes
    /// of their own but a second backend of the same host and path of another Ingress.
    pub canary: Option<Canary>,
    /// How its paths are matched: its IngressClass's.
    pub dialect: Dialect,
}

/// How an IngressClass matches paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Dialect {
    /// Sluice's own classes: the Kubernetes documentation's rules, strictly.
    #[default]
    Kubernetes,
    /// ingress-nginx's classes (controller `k8s.io/ingress-nginx`), served with its own
    /// matching (`docs/l7.md`, "ingress-nginx's dialect").
    IngressNginx,
}

impl IngressSpec {
    /// The order in which Ingresses win conflicts: older first (unknown age last), then by
    /// `namespace/name`.
    fn precedence(&self) -> (bool, i64, &str, &str) {
        (self.created_unix_s.is_none(), self.created_unix_s.unwrap_or(0), &self.id.namespace, &self.id.name)
    }
}

/// A path in a compiled host entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRoute {
    /// How it is matched.
    pub kind: MatchKind,
    /// The path type as the Ingress declared it.
    pub path_type: PathType,
    /// The path as the Ingress declared it ([`RulePath::key`] gives what is compared).
    pub path: RulePath,
    /// Where it sends requests.
    pub backend: Backend,
    /// The Ingress it comes from.
    pub ingress: IngressRef,
    /// The row its requests are counted in ([`crate::route_stats`]); 0, the row of requests no
    /// route took, until control numbers the routes ([`RouteTable::number_routes`]).
    pub metric: u16,
    /// Its Ingress's policy: an index into [`RouteTable::policies`] (0: the default policy).
    pub policy: u16,
    /// A canary Ingress's backend for the same host and path, and when it is taken.
    pub canary: Option<Box<CanaryRoute>>,
}

/// The canary of a path: ingress-nginx's second Ingress with `canary: "true"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRoute {
    /// Which requests it takes.
    pub rule: Canary,
    /// Where it sends them.
    pub backend: Backend,
    /// The canary Ingress.
    pub ingress: IngressRef,
    /// Its policy (load balancing and affinity only), an index into [`RouteTable::policies`].
    pub policy: u16,
    /// Its metrics row.
    pub metric: u16,
}

/// A default backend and the Ingress it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// The backend.
    pub backend: Backend,
    /// The Ingress whose `spec.defaultBackend` it is.
    pub ingress: IngressRef,
    /// The row its requests are counted in, as [`PathRoute::metric`].
    pub metric: u16,
    /// Its Ingress's policy, as [`PathRoute::policy`].
    pub policy: u16,
}

/// What names a route in the metrics: the labels its row is reported under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey<'t> {
    /// The host entry's rule.
    pub host: &'t HostRule,
    /// The path and its type; `None` for the entry's default backend.
    pub path: Option<(PathType, &'t RulePath)>,
    /// The Ingress the route comes from.
    pub ingress: &'t IngressRef,
    /// Where it sends requests.
    pub backend: &'t Backend,
}

/// Everything routed for one host rule, merged across Ingresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoutes {
    /// The host rule.
    pub host: HostRule,
    /// How its paths are matched: ingress-nginx's dialect when any of its Ingresses is of
    /// ingress-nginx's class.
    pub dialect: Dialect,
    /// ingress-nginx's dialect: every path of the host is a regex, because one of its Ingresses
    /// has `use-regex` or `rewrite-target`.
    pub regex: bool,
    /// The paths that won, ordered by kind, then matching key.
    pub paths: Vec<PathRoute>,
    /// The default backend for requests of this entry that no path matches.
    pub default_backend: Option<DefaultRoute>,
}

/// What two Ingresses (or two rules of one) both claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A path (the loser's, as declared).
    Path {
        /// Path type.
        path_type: PathType,
        /// Path.
        path: RulePath,
    },
    /// The default backend of a host entry.
    DefaultBackend,
}

/// A conflict settled at compile time: the loser's claim is not routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The host entry.
    pub host: HostRule,
    /// What was claimed twice.
    pub claim: Claim,
    /// The Ingress whose claim is routed.
    pub winner: IngressRef,
    /// The Ingress whose claim is ignored (the winner itself when one Ingress repeats a path).
    pub loser: IngressRef,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.claim {
            Claim::Path { path_type, path } => format!("path {path} ({})", path_type.name()),
            Claim::DefaultBackend => "the default backend".into(),
        };
        if self.winner == self.loser {
            write!(
                f,
                "Ingress {}: host {}: {what} is given twice; the first one is used",
                self.loser, self.host
            )
        } else {
            write!(
                f,
                "Ingress {}: host {}: {what} is already routed by Ingress {}, which wins (older, \
                 or first by namespace/name); this one is ignored",
                self.loser, self.host, self.winner
            )
        }
    }
}

/// The merged routes of every Ingress of Sluice's class: one generation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    hosts: Vec<HostRoutes>,
    conflicts: Vec<Conflict>,
    /// Every distinct policy the routes name; the first is the default one.
    policies: Vec<Policy>,
}

#[derive(Default)]
struct Entry {
    paths: BTreeMap<(MatchKind, String), PathRoute>,
    default_backend: Option<DefaultRoute>,
    dialect: Dialect,
    regex: bool,
}

impl RouteTable {
    /// Merges Ingresses into host entries, settling conflicts as the module documentation says.
    /// Deterministic: the order of `ingresses` does not matter (except between two with the same
    /// `namespace/name`, which a source never gives).
    pub fn compile(ingresses: &[IngressSpec]) -> RouteTable {
        let mut order: Vec<&IngressSpec> = ingresses.iter().collect();
        order.sort_by(|a, b| a.precedence().cmp(&b.precedence()));

        let mut entries: BTreeMap<HostRule, Entry> = BTreeMap::new();
        let mut conflicts = Vec::new();
        let mut policies = vec![Policy::default()];
        let mut policy_of = |p: &Policy| -> u16 {
            match policies.iter().position(|q| q == p) {
                Some(i) => i as u16,
                None if policies.len() < usize::from(u16::MAX) => {
                    policies.push(p.clone());
                    (policies.len() - 1) as u16
                }
                // 65,535 distinct policies: a bound no cluster meets; the rest get the default.
                None => 0,
            }
        };
        // Canaries attach to the routes the main Ingresses made, so they come after all of them.
        let (canaries, mains): (Vec<&IngressSpec>, Vec<&IngressSpec>) =
            order.into_iter().partition(|i| i.canary.is_some());
        for ing in mains {
            let policy = policy_of(&ing.policy);
            for rule in &ing.rules {
                let entry = entries.entry(rule.host.clone()).or_default();
                entry.dialect = entry.dialect.max(ing.dialect);
                entry.regex |= ing.dialect == Dialect::IngressNginx
                    && (ing.policy.use_regex || ing.policy.rewrite.is_some());
                for p in &rule.paths {
                    let kind = p.path_type.kind();
                    let key = (kind, p.path.key(kind).to_owned());
                    match entry.paths.get(&key) {
                        Some(winner) => conflicts.push(Conflict {
                            host: rule.host.clone(),
                            claim: Claim::Path { path_type: p.path_type, path: p.path.clone() },
                            winner: winner.ingress.clone(),
                            loser: ing.id.clone(),
                        }),
                        None => {
                            let route = PathRoute {
                                kind,
                                path_type: p.path_type,
                                path: p.path.clone(),
                                backend: p.backend.clone(),
                                ingress: ing.id.clone(),
                                metric: 0,
                                policy,
                                canary: None,
                            };
                            entry.paths.insert(key, route);
                        }
                    }
                }
            }
            let Some(backend) = &ing.default_backend else { continue };
            // The hosts this Ingress's default backend belongs to, each once, in rule order.
            let mut hosts: Vec<&HostRule> = Vec::new();
            for rule in &ing.rules {
                if !hosts.contains(&&rule.host) {
                    hosts.push(&rule.host);
                }
            }
            if ing.rules.is_empty() {
                hosts.push(&HostRule::Any);
            }
            for host in hosts {
                let entry = entries.entry(host.clone()).or_default();
                match &entry.default_backend {
                    Some(winner) => conflicts.push(Conflict {
                        host: host.clone(),
                        claim: Claim::DefaultBackend,
                        winner: winner.ingress.clone(),
                        loser: ing.id.clone(),
                    }),
                    None => {
                        entry.default_backend = Some(DefaultRoute {
                            backend: backend.clone(),
                            ingress: ing.id.clone(),
                            metric: 0,
                            policy,
                        })
                    }
                }
            }
        }
        // ingress-nginx: a canary serves the host and path of a main Ingress; at most one canary
        // per path (the first by precedence); a canary without a main route serves nothing.
        for ing in canaries {
            let Some(rule) = &ing.canary else { continue };
            let policy = policy_of(&ing.policy);
            for r in &ing.rules {
                let Some(entry) = entries.get_mut(&r.host) else { continue };
                for p in &r.paths {
                    let kind = p.path_type.kind();
                    let Some(main) = entry.paths.get_mut(&(kind, p.path.key(kind).to_owned())) else {
                        continue;
                    };
                    if main.canary.is_none() {
                        main.canary = Some(Box::new(CanaryRoute {
                            rule: rule.clone(),
                            backend: p.backend.clone(),
                            ingress: ing.id.clone(),
                            policy,
                            metric: 0,
                        }));
                    }
                }
            }
        }
        let hosts = entries
            .into_iter()
            .map(|(host, e)| HostRoutes {
                host,
                dialect: e.dialect,
                regex: e.regex && e.dialect == Dialect::IngressNginx,
                paths: e.paths.into_values().collect(),
                default_backend: e.default_backend,
            })
            .collect();
        RouteTable { hosts, conflicts, policies }
    }

    /// Gives every route (each path, each default backend) its metrics row: `row(key)`, called
    /// once per route in table order. Control numbers the routes of each table it publishes so
    /// that a route keeps its row from one generation to the next.
    pub fn number_routes(&mut self, mut row: impl FnMut(RouteKey<'_>) -> u16) {
        for h in &mut self.hosts {
            for p in &mut h.paths {
                p.metric = row(RouteKey {
                    host: &h.host,
                    path: Some((p.path_type, &p.path)),
                    ingress: &p.ingress,
                    backend: &p.backend,
                });
                if let Some(c) = &mut p.canary {
                    c.metric = row(RouteKey {
                        host: &h.host,
                        path: Some((p.path_type, &p.path)),
                        ingress: &c.ingress,
                        backend: &c.backend,
                    });
                }
            }
            if let Some(d) = &mut h.default_backend {
                d.metric =
                    row(RouteKey { host: &h.host, path: None, ingress: &d.ingress, backend: &d.backend });
            }
        }
    }

    /// A table from its parts, as an image holds them (decoded: the entries and conflicts a
    /// [`RouteTable::compile`] gave, checked by the decoder).
    pub(crate) fn from_parts(
        hosts: Vec<HostRoutes>,
        conflicts: Vec<Conflict>,
        policies: Vec<Policy>,
    ) -> RouteTable {
        RouteTable { hosts, conflicts, policies }
    }

    /// The policies the routes name ([`PathRoute::policy`]); the first is the default one
    /// (empty only in a table made by `Default`).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy at `index`, if there is one.
    pub fn policy(&self, index: u16) -> Option<&Policy> {
        self.policies.get(usize::from(index))
    }

    /// The host entries, ordered by host rule (precise, wildcard, then the entry without host).
    pub fn hosts(&self) -> &[HostRoutes] {
        &self.hosts
    }

    /// The conflicts settled, in the order they were met (winners first by precedence).
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Backend {
        Backend::Service(ServiceBackend {
            namespace: "default".into(),
            name: name.into(),
            port: ServicePort::Number(80),
        })
    }

    fn ingress(
        name: &str,
        created: Option<i64>,
        rules: Vec<RuleSpec>,
        default: Option<Backend>,
    ) -> IngressSpec {
        IngressSpec {
            policy: Default::default(),
            canary: None,
            dialect: Default::default(),
            id: IngressRef::new("default", name),
            created_unix_s: created,
            default_backend: default,
            rules,
        }
    }

    fn rule(host: Option<&str>, paths: &[(PathType, &str, &str)]) -> RuleSpec {
        RuleSpec {
            host: HostRule::new(host).unwrap(),
            paths: paths
                .iter()
                .map(|&(t, p, b)| PathSpec { path_type: t, path: RulePath::new(p).unwrap(), backend: svc(b) })
                .collect(),
        }
    }

    #[test]
    fn paths_are_checked_like_the_api_server() {
        for ok in ["/", "/foo", "/foo/", "/a/b.c/~d", "/%41", "/a:b@c", "/.well-known/x"] {
            assert!(RulePath::new(ok).is_ok(), "{ok}");
        }
        let cases: [(&str, &str); 10] = [
            ("foo", "begin with '/'"),
            ("", "begin with '/'"),
            ("/a//b", "\"//\""),
            ("/a/./b", "\"/./\""),
            ("/a/../b", "\"/../\""),
            ("/a%2fb", "\"%2f\""),
            ("/a%2Fb", "\"%2F\""),
            ("/a/..", "\"/..\""),
            ("/a/.", "\"/.\""),
            ("/a b", "0x20"),
        ];
        for (bad, says) in cases {
            let e = RulePath::new(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(RulePath::new("/a?b").is_err());
        assert!(RulePath::new("/a#b").is_err());
        assert!(RulePath::new("/é").is_err());
    }

    #[test]
    fn prefix_keys_drop_one_trailing_slash() {
        let key = |p: &str, k| RulePath::new(p).unwrap().key(k).to_owned();
        assert_eq!(key("/", MatchKind::Prefix), "");
        assert_eq!(key("/foo/", MatchKind::Prefix), "/foo");
        assert_eq!(key("/foo", MatchKind::Prefix), "/foo");
        assert_eq!(key("/foo/", MatchKind::Exact), "/foo/");
    }

    #[test]
    fn hosts_are_checked_and_typed() {
        assert_eq!(HostRule::new(None).unwrap(), HostRule::Any);
        assert_eq!(HostRule::new(Some("")).unwrap(), HostRule::Any);
        assert_eq!(HostRule::new(Some("foo.com")).unwrap(), HostRule::Precise("foo.com".into()));
        assert_eq!(HostRule::new(Some("*.foo.com")).unwrap(), HostRule::Wildcard("foo.com".into()));
        for bad in [
            "Foo.com",
            "*",
            "*.",
            "a.*.com",
            "**.foo.com",
            "*foo.com",
            "1.2.3.4",
            "::1",
            "-a.com",
            "a..com",
            "a_b.com",
        ] {
            assert!(HostRule::new(Some(bad)).is_err(), "{bad}");
        }
        assert!(HostRule::new(Some(&"a".repeat(64))).is_err());
        assert!(HostRule::new(Some(&["a"; 127].join("."))).is_ok()); // 253 bytes
        assert!(HostRule::new(Some(&["a"; 128].join("."))).is_err()); // 255 bytes
    }

    #[test]
    fn host_rules_match_as_documented() {
        let w = HostRule::new(Some("*.foo.com")).unwrap();
        assert!(w.matches("bar.foo.com"));
        assert!(!w.matches("baz.bar.foo.com"));
        assert!(!w.matches("foo.com"));
        assert!(!w.matches(".foo.com"));
        let p = HostRule::new(Some("foo.com")).unwrap();
        assert!(p.matches("foo.com"));
        assert!(!p.matches("bar.foo.com"));
        assert!(HostRule::Any.matches("anything"));
    }

    #[test]
    fn the_older_ingress_wins_a_path_and_the_loser_is_reported() {
        let paths = [(PathType::Prefix, "/api", "a")];
        let newer = ingress("newer", Some(200), vec![rule(Some("foo.com"), &paths)], None);
        let older = ingress(
            "older",
            Some(100),
            vec![rule(Some("foo.com"), &[(PathType::Prefix, "/api/", "b")])],
            None,
        );
        for input in [vec![newer.clone(), older.clone()], vec![older.clone(), newer.clone()]] {
            let t = RouteTable::compile(&input);
            assert_eq!(t.hosts().len(), 1);
            assert_eq!(t.hosts()[0].paths.len(), 1);
            assert_eq!(t.hosts()[0].paths[0].ingress.name, "older");
            assert_eq!(t.hosts()[0].paths[0].backend, svc("b"));
            assert_eq!(t.conflicts().len(), 1);
            let c = &t.conflicts()[0];
            assert_eq!((c.winner.name.as_str(), c.loser.name.as_str()), ("older", "newer"));
            let text = c.to_string();
            assert!(text.contains("default/newer") && text.contains("default/older"), "{text}");
        }
    }

    #[test]
    fn without_timestamps_namespace_and_name_decide_and_known_age_beats_unknown() {
        let paths = [(PathType::Exact, "/x", "s")];
        let b = ingress("b", None, vec![rule(Some("foo.com"), &paths)], None);
        let a = ingress("a", None, vec![rule(Some("foo.com"), &paths)], None);
        let t = RouteTable::compile(&[b.clone(), a.clone()]);
        assert_eq!(t.hosts()[0].paths[0].ingress.name, "a");
        assert_eq!(t.conflicts()[0].loser.name, "b");
        let mut z = ingress("z", Some(1_000_000), vec![rule(Some("foo.com"), &paths)], None);
        z.id.namespace = "zz".into();
        let t = RouteTable::compile(&[a, b, z]);
        assert_eq!(t.hosts()[0].paths[0].ingress.name, "z");
        assert_eq!(t.conflicts().len(), 2);
    }

    #[test]
    fn exact_and_prefix_of_one_path_do_not_conflict_but_prefix_and_implementation_specific_do() {
        let r = rule(
            Some("foo.com"),
            &[
                (PathType::Exact, "/foo", "e"),
                (PathType::Prefix, "/foo", "p"),
                (PathType::ImplementationSpecific, "/foo/", "i"),
            ],
        );
        let t = RouteTable::compile(&[ingress("one", Some(1), vec![r], None)]);
        assert_eq!(t.hosts()[0].paths.len(), 2);
        assert_eq!(t.conflicts().len(), 1);
        assert_eq!(t.conflicts()[0].winner, t.conflicts()[0].loser);
        assert_eq!(
            t.conflicts()[0].claim,
            Claim::Path {
                path_type: PathType::ImplementationSpecific,
                path: RulePath::new("/foo/").unwrap()
            }
        );
        assert!(t.conflicts()[0].to_string().contains("given twice"));
    }

    #[test]
    fn default_backends_belong_to_their_ingress_hosts_or_to_every_host() {
        let with_rules = ingress(
            "web",
            Some(1),
            vec![rule(Some("a.com"), &[]), rule(Some("*.b.com"), &[]), rule(Some("a.com"), &[])],
            Some(svc("web-default")),
        );
        let catch_all = ingress("catch-all", Some(2), vec![], Some(svc("fallback")));
        let late = ingress("late", Some(3), vec![rule(Some("a.com"), &[])], Some(svc("late")));
        let t = RouteTable::compile(&[late, catch_all, with_rules]);
        let default_of = |h: HostRule| {
            t.hosts().iter().find(|e| e.host == h).and_then(|e| e.default_backend.clone()).map(|d| d.backend)
        };
        assert_eq!(default_of(HostRule::Precise("a.com".into())), Some(svc("web-default")));
        assert_eq!(default_of(HostRule::Wildcard("b.com".into())), Some(svc("web-default")));
        assert_eq!(default_of(HostRule::Any), Some(svc("fallback")));
        assert_eq!(t.conflicts().len(), 1, "{:?}", t.conflicts());
        assert_eq!(t.conflicts()[0].claim, Claim::DefaultBackend);
        assert_eq!(t.conflicts()[0].loser.name, "late");
        // Entries are ordered: precise hosts, then wildcards, then the entry without host.
        let order: Vec<String> = t.hosts().iter().map(|h| h.host.to_string()).collect();
        assert_eq!(order, ["a.com", "*.b.com", "(any host)"]);
    }
}
