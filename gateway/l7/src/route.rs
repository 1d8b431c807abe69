//! Ingress routing: which backend a request goes to, by its host and path.
//!
//! The rules — hosts, the three path types, precedence, default backends, how Ingresses merge —
//! are written once, in `sluice_model::route`'s documentation, and compiled there into a
//! [`RouteTable`]. This module indexes a table for the hot path and answers requests:
//!
//! - the request's host ([`request_host`]) is the authority (the Host field, or the authority of
//!   an absolute-form target) without its port and without one trailing dot, lowercased into a
//!   stack buffer; an IP literal (`[2001:db8::1]:8080`, `192.0.2.1`) is no name and matches only
//!   rules without host;
//! - precise hosts and wildcard suffixes are hash maps, so a request probes at most its own host
//!   and the one wildcard suffix one label up (`bar.foo.com` → `foo.com`), then the entry of
//!   rules without host;
//! - in each entry, Exact paths are a hash map probed with the whole path; Prefix paths are a
//!   hash map of their keys (the path without its trailing slash), probed with the request path
//!   cut at each `/` from the longest cut down, skipping cuts longer than the entry's longest
//!   prefix: the first hit is the longest match.
//!
//! So a request costs a handful of hash probes whatever the number of rules, and allocates
//! nothing. The path is the request's path without the query, **normalised** before matching
//! as nginx normalises `$uri` (`crate::policy::nginx_paths::normalize`: percent-encoded
//! unreserved characters decoded, dot segments removed, repeated slashes merged), so that a
//! route's policy (authentication, allow lists) holds for every spelling of its paths: `/%61dmin`
//! and `/x/../admin` are routed as `/admin`. One that does not begin with `/` (the `*` of
//! `OPTIONS *`) matches only Prefix `/`.
//!
//! A host entry of ingress-nginx's dialect is matched by its own rules
//! (`crate::policy::nginx_paths`: regex hosts, plain string prefixes, the 301 to a trailing
//! slash and to a path whose slashes were merged); its capture groups stay in the router for
//! [`Router::rewrite`].
//!
//! Hot path: [`Router::route`]. [`Router::new`] runs once per table generation.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::Ipv4Addr;

use sluice_model::policy::{RewritePart, RewriteTarget};

use sluice_model::route::{
    Backend, DefaultRoute, Dialect, HostRoutes, HostRule, IngressRef, MatchKind, PathRoute, RouteTable,
    ServiceBackend, Unavailable, wildcard_suffix,
};

use crate::policy::nginx_paths::{self, HostPaths, PathCache, PathMatch, PathRule};
use sluice_model::service::IndexHasher;

/// Keys come from control; request-derived keys only probe, so a fixed hasher is enough (the
/// reasoning of `sluice_model::service::IndexHasher`).
type Index = HashMap<Box<str>, u32, BuildHasherDefault<IndexHasher>>;

/// The longest host name a rule can have (RFC 1123; Kubernetes validates hosts to it).
pub const MAX_HOST_BYTES: usize = 253;

/// A request's host as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestHost<'b> {
    /// A name: lowercase, without port or trailing dot. Matched against precise and wildcard
    /// rules.
    Name(&'b str),
    /// An IPv4 or IPv6 literal: matched by rules without host only.
    Address,
    /// Empty, longer than any rule host, or not an authority: rules without host only.
    Unnamed,
}

/// The host routing uses for an authority (`host[:port]`), lowercased into `buf`.
///
/// The port is what follows the last `:` of a non-bracketed authority (a reg-name or IPv4
/// address has no other colon); a bracketed IPv6 literal keeps its colons and is an
/// [`RequestHost::Address`]. One trailing dot is dropped (`foo.com.` is the fully-qualified
/// spelling of `foo.com`). The authority's syntax is the HTTP layer's business
/// ([`crate::h1`] refuses bad Host values with 400); here anything odd is simply
/// [`RequestHost::Unnamed`].
pub fn request_host<'b>(authority: &str, buf: &'b mut [u8; MAX_HOST_BYTES]) -> RequestHost<'b> {
    let a = authority.as_bytes();
    if a.first() == Some(&b'[') {
        // RFC 3986 §3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]".
        return match a.iter().position(|&b| b == b']') {
            Some(end) if end > 1 && (end + 1 == a.len() || a[end + 1] == b':') => RequestHost::Address,
            _ => RequestHost::Unnamed,
        };
    }
    let host = match a.iter().rposition(|&b| b == b':') {
        Some(i) if a[i + 1..].iter().all(u8::is_ascii_digit) => &a[..i],
        Some(_) => return RequestHost::Unnamed,
        None => a,
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_BYTES {
        return RequestHost::Unnamed;
    }
    let out = &mut buf[..host.len()];
    for (o, &b) in out.iter_mut().zip(host) {
        *o = b.to_ascii_lowercase();
    }
    let Ok(name) = std::str::from_utf8(out) else { return RequestHost::Unnamed };
    if name.parse::<Ipv4Addr>().is_ok() {
        return RequestHost::Address;
    }
    RequestHost::Name(name)
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'r> {
    /// A path of a host entry matched.
    Path {
        /// The host entry.
        entry: &'r HostRoutes,
        /// The path.
        path: &'r PathRoute,
    },
    /// No path matched; the default backend of the most specific host entry that has one.
    Default {
        /// The host entry.
        entry: &'r HostRoutes,
        /// Its default backend.
        default: &'r DefaultRoute,
    },
    /// Nothing matched and no default backend: Sluice answers 404.
    NotFound,
    /// ingress-nginx's dialect: 301 to the path [`Router::redirect_location`] writes (the path
    /// with its slashes merged, or with the slash its rule has).
    Redirect {
        /// The host entry.
        entry: &'r HostRoutes,
    },
}

impl<'r> Route<'r> {
    /// The backend, unless nothing matched.
    pub fn backend(&self) -> Option<&'r Backend> {
        match self {
            Route::Path { path, .. } => Some(&path.backend),
            Route::Default { default, .. } => Some(&default.backend),
            Route::NotFound | Route::Redirect { .. } => None,
        }
    }

    /// The Service to proxy to, if the request is proxied.
    pub fn service(&self) -> Option<&'r ServiceBackend> {
        match self.backend() {
            Some(Backend::Service(s)) => Some(s),
            _ => None,
        }
    }

    /// The Ingress the decision comes from.
    pub fn ingress(&self) -> Option<&'r IngressRef> {
        match self {
            Route::Path { path, .. } => Some(&path.ingress),
            Route::Default { default, .. } => Some(&default.ingress),
            Route::NotFound | Route::Redirect { .. } => None,
        }
    }

    /// The metrics row its requests are counted in (0 when nothing matched).
    pub fn metric(&self) -> u16 {
        match self {
            Route::Path { path, .. } => path.metric,
            Route::Default { default, .. } => default.metric,
            Route::NotFound | Route::Redirect { .. } => 0,
        }
    }

    /// Its Ingress's policy: an index into the table's policies (0, the default, when nothing
    /// matched).
    pub fn policy(&self) -> u16 {
        match self {
            Route::Path { path, .. } => path.policy,
            Route::Default { default, .. } => default.policy,
            Route::NotFound | Route::Redirect { .. } => 0,
        }
    }

    /// The status Sluice answers itself instead of proxying: 404 when nothing matched, 503 for
    /// an unavailable backend; `None` when the request is proxied.
    pub fn status(&self) -> Option<u16> {
        match self.backend() {
            None => Some(404),
            Some(Backend::Unavailable(_)) => Some(503),
            Some(Backend::Service(_)) => None,
        }
    }

    /// Why the backend is unavailable, if it is.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self.backend() {
            Some(Backend::Unavailable(u)) => Some(*u),
            _ => None,
        }
    }
}

/// One host entry's path indexes.
#[derive(Debug, Default)]
struct EntryIndex {
    /// Exact path → index in the entry's paths.
    exact: Index,
    /// Prefix key (path without trailing slash; `""` for `/`) → index in the entry's paths.
    prefix: Index,
    /// The longest prefix key: cuts of the request path longer than it cannot match.
    longest_prefix: usize,
}

/// An entry of ingress-nginx's dialect: its compiled paths and this worker's scratch space.
#[derive(Debug)]
struct NginxEntry {
    paths: HostPaths,
    cache: RefCell<PathCache>,
}

/// The longest path the scratch buffers are made for (the head parser's target limit); a longer
/// one makes them grow once.
const MAX_PATH_BYTES: usize = 8 * 1024;

/// A route table indexed for the hot path: one per table generation and worker (it holds the
/// worker's scratch space: not `Sync`).
#[derive(Debug)]
pub struct Router {
    table: RouteTable,
    entries: Vec<EntryIndex>,
    precise: Index,
    wildcard: Index,
    any: Option<u32>,
    /// Per entry, in ingress-nginx's dialect only: its matcher.
    nginx: Vec<Option<NginxEntry>>,
    /// The normalised path of the request being routed.
    scratch: RefCell<Vec<u8>>,
    /// The ingress-nginx entry whose cache holds the last match (for redirects and rewrites).
    last_nginx: Cell<Option<u32>>,
    /// Paths of ingress-nginx entries left out (a regex Sluice cannot run), for logs.
    problems: Vec<String>,
}

impl Router {
    /// Indexes a compiled table.
    pub fn new(table: RouteTable) -> Router {
        let mut precise = Index::default();
        let mut wildcard = Index::default();
        let mut any = None;
        let mut entries = Vec::with_capacity(table.hosts().len());
        for (i, e) in table.hosts().iter().enumerate() {
            let i = u32::try_from(i).unwrap_or_else(|_| unreachable!("more than 2^32 host entries"));
            match &e.host {
                HostRule::Precise(h) => precise.insert(h.as_str().into(), i),
                HostRule::Wildcard(s) => wildcard.insert(s.as_str().into(), i),
                HostRule::Any => any.replace(i),
            };
            let mut index = EntryIndex::default();
            for (j, p) in e.paths.iter().enumerate() {
                let j = u32::try_from(j).unwrap_or_else(|_| unreachable!("more than 2^32 paths"));
                let key = p.path.key(p.kind);
                match p.kind {
                    MatchKind::Exact => index.exact.insert(key.into(), j),
                    MatchKind::Prefix => {
                        index.longest_prefix = index.longest_prefix.max(key.len());
                        index.prefix.insert(key.into(), j)
                    }
                };
            }
            entries.push(index);
        }
        let mut problems = Vec::new();
        let nginx = table
            .hosts()
            .iter()
            .map(|e| {
                if e.dialect != Dialect::IngressNginx {
                    return None;
                }
                let rules: Vec<PathRule> = e
                    .paths
                    .iter()
                    .enumerate()
                    .map(|(j, p)| PathRule {
                        path: p.path.as_str().to_owned(),
                        path_type: p.path_type,
                        route: j as u32,
                        use_regex: e.regex,
                    })
                    .collect();
                let (paths, bad) = HostPaths::new(&rules);
                problems.extend(bad.into_iter().map(|b| format!("host {}: {b}", e.host)));
                let cache = RefCell::new(paths.new_cache(MAX_PATH_BYTES));
                Some(NginxEntry { paths, cache })
            })
            .collect();
        Router {
            table,
            entries,
            precise,
            wildcard,
            any,
            nginx,
            scratch: RefCell::new(Vec::with_capacity(MAX_PATH_BYTES + 1)),
            last_nginx: Cell::new(None),
            problems,
        }
    }

    /// Paths of ingress-nginx's dialect that are not routed (a regex Sluice cannot run), one
    /// line each, for the gateway's log.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// After [`Route::Redirect`]: the Location to answer with (the path, and the request's
    /// `query`), appended to `out`.
    pub fn redirect_location(&self, query: Option<&str>, out: &mut String) {
        let Some(n) = self.last_nginx_entry() else { return };
        let cache = n.cache.borrow();
        out.push_str(&String::from_utf8_lossy(cache.path()));
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(q);
        }
    }

    /// After a [`Route::Path`] of an ingress-nginx entry: the upstream target `rewrite-target`
    /// makes from the matched path's groups and the request's `query`, written into `out`
    /// (cleared first). Whether there was a match to rewrite from.
    pub fn rewrite(&self, target: &RewriteTarget, query: Option<&str>, out: &mut Vec<u8>) -> bool {
        let Some(n) = self.last_nginx_entry() else { return false };
        let cache = n.cache.borrow();
        // Room for the target's text, the groups (each at most the path) and the query.
        let literal: usize =
            target.parts.iter().map(|p| if let RewritePart::Literal(l) = p { l.len() } else { 0 }).sum();
        let groups = target.parts.iter().filter(|p| matches!(p, RewritePart::Group(_))).count();
        let room = literal + cache.path().len() * groups + query.map_or(0, str::len) + 2;
        out.clear();
        out.resize(room, 0);
        match nginx_paths::rewrite(target, cache.path(), |i| cache.group(i), query, out) {
            Ok(n) => {
                out.truncate(n);
                true
            }
            Err(_) => {
                out.clear();
                false
            }
        }
    }

    fn last_nginx_entry(&self) -> Option<&NginxEntry> {
        self.last_nginx.get().and_then(|e| self.nginx.get(e as usize)).and_then(Option::as_ref)
    }

    /// The table routed from.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Routes a request by its authority (`host[:port]`: the Host field, or the authority of an
    /// absolute-form target) and its path (without query). Allocates nothing.
    pub fn route(&self, authority: &str, path: &str) -> Route<'_> {
        let mut buf = [0u8; MAX_HOST_BYTES];
        let mut chain = [None; 3];
        if let RequestHost::Name(h) = request_host(authority, &mut buf) {
            chain[0] = self.precise.get(h).copied();
            chain[1] = wildcard_suffix(h).and_then(|s| self.wildcard.get(s)).copied();
        }
        chain[2] = self.any;
        self.last_nginx.set(None);
        let mut scratch = self.scratch.borrow_mut();
        let normal = normalised(path, &mut scratch);
        for &e in chain.iter().flatten() {
            let entry = &self.table.hosts()[e as usize];
            if let Some(Some(n)) = self.nginx.get(e as usize) {
                // ingress-nginx's dialect normalises and matches by its own rules.
                let found = n.paths.find(path, &mut n.cache.borrow_mut());
                self.last_nginx.set(Some(e));
                match found {
                    PathMatch::Route(p) => return Route::Path { entry, path: &entry.paths[p as usize] },
                    PathMatch::Redirect => return Route::Redirect { entry },
                    PathMatch::NotFound => continue,
                }
            }
            if let Some(p) = self.match_path(e, normal) {
                return Route::Path { entry, path: &entry.paths[p as usize] };
            }
        }
        for &e in chain.iter().flatten() {
            let entry = &self.table.hosts()[e as usize];
            if let Some(default) = &entry.default_backend {
                return Route::Default { entry, default };
            }
        }
        Route::NotFound
    }

    /// The best path of entry `e` for `path` (normalised): an Exact match if any (it is the whole path, so no
    /// prefix is longer), else the longest Prefix match.
    fn match_path(&self, e: u32, path: &str) -> Option<u32> {
        let index = &self.entries[e as usize];
        if let Some(&p) = index.exact.get(path) {
            return Some(p);
        }
        if index.prefix.is_empty() {
            return None;
        }
        // A key k matches when the path is k, or begins with k followed by '/': the candidates
        // are the whole path and the path cut before each '/', longest first; the empty cut
        // (Prefix `/`) is tried last whatever the path begins with.
        let bytes = path.as_bytes();
        let mut end = bytes.len();
        loop {
            if end <= index.longest_prefix
                && let Some(&p) = index.prefix.get(&path[..end])
            {
                return Some(p);
            }
            if end == 0 {
                return None;
            }
            end = bytes[..end].iter().rposition(|&b| b == b'/').unwrap_or(0);
        }
    }
}

/// `path` normalised as nginx's `$uri` (into `scratch` when it must change): what routing
/// compares. A path that needs nothing done — no `%`, no dot segment, no repeated slash — is
/// used as it is, without a copy.
fn normalised<'p>(path: &'p str, scratch: &'p mut Vec<u8>) -> &'p str {
    let b = path.as_bytes();
    let plain = !b.contains(&b'%')
        && !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..");
    if plain {
        return path;
    }
    scratch.clear();
    match nginx_paths::normalize(b, scratch) {
        // Decoding only unreserved characters keeps it ASCII, so UTF-8.
        Some(_) => std::str::from_utf8(scratch).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::route::{IngressSpec, PathSpec, PathType, RulePath, RuleSpec, ServicePort};

    fn svc(name: &str) -> Backend {
        Backend::Service(ServiceBackend {
            namespace: "default".into(),
            name: name.into(),
            port: ServicePort::Number(80),
        })
    }

    fn ingress(name: &str, created: i64, rules: Vec<RuleSpec>, default: Option<Backend>) -> IngressSpec {
        IngressSpec {
            policy: Default::default(),
            canary: None,
            dialect: Default::default(),
            id: IngressRef::new("default", name),
            created_unix_s: Some(created),
            default_backend: default,
            rules,
        }
    }

    /// A rule whose paths each go to a Service named after the path type and path
    /// (`Prefix /foo` → `Prefix:/foo`), so that a test can say which path matched.
    fn rule(host: Option<&str>, paths: &[(PathType, &str)]) -> RuleSpec {
        RuleSpec {
            host: HostRule::new(host).unwrap(),
            paths: paths
                .iter()
                .map(|&(t, p)| PathSpec {
                    path_type: t,
                    path: RulePath::new(p).unwrap(),
                    backend: svc(&format!("{}:{p}", t.name())),
                })
                .collect(),
        }
    }

    fn router(ingresses: &[IngressSpec]) -> Router {
        Router::new(RouteTable::compile(ingresses))
    }

    /// The Service name a request is routed to, or "404".
    fn to(r: &Router, authority: &str, path: &str) -> String {
        match r.route(authority, path) {
            Route::NotFound => "404".into(),
            route => route.service().map(|s| s.name.clone()).unwrap_or_else(|| "503".into()),
        }
    }

    use PathType::{Exact, ImplementationSpecific, Prefix};

    /// A rule path: its type and path.
    type Path = (PathType, &'static str);

    /// INGRESS.md §1, the Kubernetes documentation's table, every row: path type, rule paths,
    /// request path, expected match (`None`: no match, the default backend).
    #[test]
    fn the_kubernetes_path_table() {
        #[rustfmt::skip]
        let rows: &[(&[Path], &str, Option<Path>)] = &[
            (&[(Prefix, "/")], "/", Some((Prefix, "/"))),
            (&[(Prefix, "/")], "/anything/at/all", Some((Prefix, "/"))),
            (&[(Prefix, "/")], "/x.html", Some((Prefix, "/"))),
            (&[(Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
            (&[(Exact, "/foo")], "/bar", None),
            (&[(Exact, "/foo")], "/foo/", None),
            (&[(Exact, "/foo/")], "/foo", None),
            (&[(Prefix, "/foo")], "/foo", Some((Prefix, "/foo"))),
            (&[(Prefix, "/foo")], "/foo/", Some((Prefix, "/foo"))),
            (&[(Prefix, "/foo/")], "/foo", Some((Prefix, "/foo/"))),
            (&[(Prefix, "/foo/")], "/foo/", Some((Prefix, "/foo/"))),
            (&[(Prefix, "/aaa/bb")], "/aaa/bbb", None),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb"))),
            (&[(Prefix, "/aaa/bbb/")], "/aaa/bbb", Some((Prefix, "/aaa/bbb/"))),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/", Some((Prefix, "/aaa/bbb"))),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/ccc", Some((Prefix, "/aaa/bbb"))),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None),
            (&[(Prefix, "/"), (Prefix, "/aaa")], "/aaa/ccc", Some((Prefix, "/aaa"))),
            (&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/aaa/bbb", Some((Prefix, "/aaa/bbb"))),
            (&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")], "/ccc", Some((Prefix, "/"))),
            (&[(Prefix, "/aaa")], "/ccc", None),
            (&[(Exact, "/foo"), (Prefix, "/foo")], "/foo", Some((Exact, "/foo"))),
            (&[(Prefix, "/foo"), (Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
        ];
        for (paths, request, expect) in rows {
            let r =
                router(&[ingress("t", 1, vec![rule(Some("foo.com"), paths)], Some(svc("default-backend")))]);
            let want = match expect {
                Some((t, p)) => format!("{}:{p}", t.name()),
                None => "default-backend".into(),
            };
            assert_eq!(to(&r, "foo.com", request), want, "{paths:?} {request}");
        }
    }

    /// INGRESS.md §1 hosts, and the request host's normalisation: rule host, request authority,
    /// matches?
    #[test]
    fn the_host_table() {
        #[rustfmt::skip]
        let rows: &[(Option<&str>, &str, bool)] = &[
            (Some("foo.com"), "foo.com", true),
            (Some("foo.com"), "FOO.Com", true),
            (Some("foo.com"), "foo.com:8080", true),
            (Some("foo.com"), "foo.com.", true),
            (Some("foo.com"), "foo.com.:443", true),
            (Some("foo.com"), "foo.co", false),
            (Some("foo.com"), "bar.foo.com", false),
            (Some("foo.com"), "foo.com..", false),
            (Some("foo.com"), "foo.com:http", false),
            (Some("foo.com"), "", false),
            (Some("*.foo.com"), "bar.foo.com", true),
            (Some("*.foo.com"), "BAR.foo.com:80", true),
            (Some("*.foo.com"), "baz.bar.foo.com", false),
            (Some("*.foo.com"), "foo.com", false),
            (Some("*.foo.com"), ".foo.com", false),
            (Some("*.foo.com"), "barfoo.com", false),
            (Some("*.com"), "foo.com", true),
            (Some("*.com"), "com", false),
            (None, "anything.example", true),
            (None, "", true),
            (None, "[2001:db8::1]:8080", true),
            (None, "192.0.2.1", true),
            (Some("foo.com"), "[2001:db8::1]", false),
            (Some("foo.com"), "[foo.com]", false),
            (Some("*.0.2.1"), "192.0.2.1", false),
            (Some("*.0.2.1"), "192.0.2.1:80", false),
            (Some("*.0.2.1"), "x.0.2.1", true),
        ];
        for &(host, authority, matches) in rows {
            let r = router(&[ingress("t", 1, vec![rule(host, &[(Prefix, "/")])], None)]);
            let got = to(&r, authority, "/") != "404";
            assert_eq!(got, matches, "rule {host:?}, request {authority:?}");
        }
    }

    #[test]
    fn request_hosts_are_normalised_without_allocating_a_string() {
        let mut buf = [0u8; MAX_HOST_BYTES];
        assert_eq!(request_host("Foo.COM:8080", &mut buf), RequestHost::Name("foo.com"));
        assert_eq!(request_host("foo.com.", &mut buf), RequestHost::Name("foo.com"));
        assert_eq!(request_host("[::1]", &mut buf), RequestHost::Address);
        assert_eq!(request_host("[::1]:443", &mut buf), RequestHost::Address);
        // The port of an IPv6 literal is not found at its last colon inside the brackets.
        assert_eq!(request_host("[2001:db8::8080]", &mut buf), RequestHost::Address);
        assert_eq!(request_host("[]", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host("[::1", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host("[::1]x", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host("10.0.0.1:80", &mut buf), RequestHost::Address);
        assert_eq!(request_host("", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host(":80", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host(".", &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host("a:b:80", &mut buf), RequestHost::Name("a:b"));
        let long = "a".repeat(MAX_HOST_BYTES);
        assert_eq!(request_host(&long, &mut buf), RequestHost::Name(long.as_str()));
        assert_eq!(request_host(&format!("{long}a"), &mut buf), RequestHost::Unnamed);
        assert_eq!(request_host(&format!("{long}.:1"), &mut buf), RequestHost::Name(long.as_str()));
    }

    #[test]
    fn implementation_specific_is_prefix() {
        let r = router(&[ingress(
            "t",
            1,
            vec![rule(Some("foo.com"), &[(ImplementationSpecific, "/foo")])],
            None,
        )]);
        assert_eq!(to(&r, "foo.com", "/foo"), "ImplementationSpecific:/foo");
        assert_eq!(to(&r, "foo.com", "/foo/bar"), "ImplementationSpecific:/foo");
        assert_eq!(to(&r, "foo.com", "/foobar"), "404");
    }

    #[test]
    fn a_more_specific_host_is_tried_first_then_less_specific_ones() {
        let r = router(&[
            ingress("precise", 1, vec![rule(Some("a.foo.com"), &[(Prefix, "/api")])], None),
            ingress(
                "wild",
                2,
                vec![rule(Some("*.foo.com"), &[(Prefix, "/api/v1"), (Prefix, "/static")])],
                None,
            ),
            ingress("any", 3, vec![rule(None, &[(Prefix, "/"), (Exact, "/api/v1/x")])], None),
        ]);
        // The precise host's path wins though the wildcard's and the hostless one are longer.
        assert_eq!(to(&r, "a.foo.com", "/api/v1/x"), "Prefix:/api");
        // The precise host has no match: the wildcard entry is tried, then the hostless one.
        assert_eq!(to(&r, "a.foo.com", "/static/x"), "Prefix:/static");
        assert_eq!(to(&r, "a.foo.com", "/other"), "Prefix:/");
        assert_eq!(to(&r, "b.foo.com", "/api/v1/x"), "Prefix:/api/v1");
        assert_eq!(to(&r, "b.foo.com", "/api"), "Prefix:/");
        assert_eq!(to(&r, "elsewhere", "/api/v1/x"), "Exact:/api/v1/x");
    }

    #[test]
    fn default_backends_most_specific_host_first_after_every_path() {
        let r = router(&[
            ingress("precise", 1, vec![rule(Some("a.com"), &[(Prefix, "/a")])], Some(svc("a-default"))),
            ingress("wild", 2, vec![rule(Some("*.a.com"), &[(Prefix, "/w")])], Some(svc("w-default"))),
            ingress("any", 3, vec![rule(None, &[(Prefix, "/any")])], None),
            ingress("catch-all", 4, vec![], Some(svc("catch-all"))),
        ]);
        assert_eq!(to(&r, "a.com", "/x"), "a-default");
        // A hostless path beats the precise host's default backend: a rule matched.
        assert_eq!(to(&r, "a.com", "/any"), "Prefix:/any");
        assert_eq!(to(&r, "b.a.com", "/x"), "w-default");
        assert_eq!(to(&r, "b.a.com", "/a"), "w-default");
        assert_eq!(to(&r, "z.com", "/x"), "catch-all");
        assert_eq!(to(&r, "[::1]", "/w"), "catch-all");
        let r = router(&[ingress("precise", 1, vec![rule(Some("a.com"), &[(Prefix, "/a")])], None)]);
        assert_eq!(r.route("a.com", "/b"), Route::NotFound);
        assert_eq!(r.route("a.com", "/b").status(), Some(404));
    }

    #[test]
    fn unavailable_backends_answer_503_and_say_why() {
        let mut ing = ingress("t", 1, vec![rule(Some("a.com"), &[(Prefix, "/")])], None);
        ing.rules[0].paths[0].backend = Backend::Unavailable(Unavailable::Resource);
        ing.default_backend = Some(Backend::Unavailable(Unavailable::MissingService));
        let mut other = ingress("u", 2, vec![rule(Some("b.com"), &[(Exact, "/x")])], None);
        other.default_backend = Some(Backend::Unavailable(Unavailable::MissingService));
        let r = router(&[ing, other]);
        let route = r.route("a.com", "/x");
        assert_eq!((route.status(), route.unavailable()), (Some(503), Some(Unavailable::Resource)));
        assert_eq!(route.ingress().map(|i| i.name.as_str()), Some("t"));
        let route = r.route("b.com", "/y");
        assert_eq!((route.status(), route.unavailable()), (Some(503), Some(Unavailable::MissingService)));
        assert!(matches!(route, Route::Default { .. }));
        assert_eq!(r.route("b.com", "/x").status(), None);
        assert!(r.route("b.com", "/x").service().is_some());
    }

    #[test]
    fn merged_ingresses_route_together_and_the_older_wins_a_conflict() {
        let r = router(&[
            ingress("api", 20, vec![rule(Some("shop.com"), &[(Prefix, "/api"), (Exact, "/")])], None),
            ingress("web", 10, vec![rule(Some("shop.com"), &[(Prefix, "/")])], None),
            ingress("api-copy", 30, vec![rule(Some("shop.com"), &[(Prefix, "/api/")])], None),
        ]);
        assert_eq!(to(&r, "shop.com", "/"), "Exact:/");
        assert_eq!(to(&r, "shop.com", "/index.html"), "Prefix:/");
        assert_eq!(to(&r, "shop.com", "/api/cart"), "Prefix:/api");
        let winner = r.route("shop.com", "/api/cart");
        assert_eq!(winner.ingress().map(|i| i.name.as_str()), Some("api"));
        let c = r.table().conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].winner.name.as_str(), c[0].loser.name.as_str()), ("api", "api-copy"));
    }

    #[test]
    fn paths_that_do_not_begin_with_a_slash_match_only_the_root_prefix() {
        let r = router(&[ingress("t", 1, vec![rule(None, &[(Prefix, "/a"), (Exact, "/a")])], None)]);
        assert_eq!(to(&r, "x", "*"), "404");
        assert_eq!(to(&r, "x", "a"), "404");
        let r = router(&[ingress("t", 1, vec![rule(None, &[(Prefix, "/a"), (Prefix, "/")])], None)]);
        assert_eq!(to(&r, "x", "*"), "Prefix:/");
        assert_eq!(to(&r, "x", ""), "Prefix:/");
        assert_eq!(to(&r, "x", "/a//b"), "Prefix:/a");
        // Repeated slashes merge before matching, as nginx's `$uri`.
        assert_eq!(to(&r, "x", "//a"), "Prefix:/a");
    }

    /// A route's policy holds for every spelling of its paths: percent-encoded unreserved
    /// characters and dot segments are normalised away before matching.
    #[test]
    fn paths_are_normalised_before_matching() {
        let r = router(&[ingress(
            "t",
            1,
            vec![rule(None, &[(Prefix, "/admin"), (Prefix, "/"), (Exact, "/x")])],
            None,
        )]);
        for spelling in [
            "/admin",
            "/%61dmin",
            "/%61%64min/x",
            "/x/../admin",
            "/./admin",
            "/public/../../admin",
            "//admin",
        ] {
            assert_eq!(to(&r, "h", spelling), "Prefix:/admin", "{spelling}");
        }
        assert_eq!(to(&r, "h", "/%78"), "Exact:/x");
        // Reserved characters stay encoded: `%2F` is not a slash.
        assert_eq!(to(&r, "h", "/admin%2Fx"), "Prefix:/");
    }

    #[test]
    fn an_empty_table_routes_nothing() {
        let r = Router::new(RouteTable::default());
        assert_eq!(r.route("a.com", "/"), Route::NotFound);
    }
}
