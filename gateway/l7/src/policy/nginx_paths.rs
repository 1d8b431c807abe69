//! ingress-nginx's path dialect (its IngressClass `nginx`; INGRESS.md §2.1), for one host:
//! the paths of every Ingress of the host compiled into one matcher per generation, a request
//! path normalised and matched per request, and `rewrite-target` applied.
//!
//! # What the proxy calls
//! - Per generation, per host of the `nginx` class: [`HostPaths::new`] with the host's
//!   [`PathRule`]s (every Ingress's, each with its route id and whether its Ingress asks for
//!   regexes: `use-regex` or a `rewrite-target`). Problems (a path that is not a regex Sluice
//!   runs) come back beside it; that path is left out.
//! - Per worker, per host, after each generation: [`HostPaths::new_cache`] — the normalised
//!   path's buffer, and for a regex host the regex's cache and capture slots (allocated there
//!   once, so matching allocates nothing).
//! - Per request: [`HostPaths::find`] with the request's path → a route id, a 301, or no
//!   match (the default backend, else 404); [`PathCache::path`] is the normalised path to send
//!   upstream, [`PathCache::group`] the capture groups, and [`rewrite`] the upstream path of a
//!   route with `rewrite-target`. [`write_location`] makes a redirect's Location.
//!
//! # Matching
//! - **Plain host** (no Ingress of the host asks for regexes), nginx's prefix locations as
//!   ingress-nginx writes them: `Exact /foo` is `location = /foo`; `Prefix /foo` is
//!   `location = /foo` and `location /foo/` — `/foo` exactly or anything under `/foo/` (a
//!   trailing slash in the rule changes nothing; `Prefix /` is every path);
//!   `ImplementationSpecific /foo` is `location /foo`, a plain string prefix (`/foobar`
//!   too). An exact location that equals the path wins; then, when an
//!   ImplementationSpecific path is the request's path plus `/`, a **301** to that path
//!   (nginx's redirect for a location ending in `/` served by `proxy_pass`); then the longest
//!   prefix, the first rule on a tie. Case-sensitive.
//! - **Regex host** (any Ingress of the host has `use-regex: "true"` or `rewrite-target`):
//!   **every** path of the host, whatever its type and Ingress, is a case-insensitive regex
//!   anchored at the start only (`location ~* "^PATH"`), tried longest path string first
//!   (ingress-nginx sorts its locations by length, the rules' order kept on a tie); the first
//!   that matches wins. One multi-pattern `regex-automata` regex, searched anchored with
//!   leftmost-first semantics, which is exactly "the first pattern that matches here".
//!
//! # Normalisation (before matching, like nginx's `$uri`)
//! Percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) are decoded
//! (`/%61pi` is `/api`, `/%2e%2e/` is `/../`); dot segments are removed (RFC 3986 §5.2.4:
//! `/a/./b` → `/a/b`, `/a/../b` → `/b`, never above `/`); repeated slashes are merged. A path
//! whose slashes were merged is answered **301** to the normalised path (INGRESS.md §2.1), so
//! that the client and every later hop see one spelling; the other rewrites are silent. The
//! upstream should get [`PathCache::path`], the path that was matched — a check made on one
//! spelling then holds for what the backend reads.
//!
//! # Known limits
//! - Regexes are Rust regex syntax (control checks them with `regex-syntax`), not PCRE:
//!   look-around and back-references are refused, `\d` and friends are ASCII or Unicode per
//!   Rust's rules. ingress-nginx's `location` is nginx's, with nginx's PCRE.
//! - Other percent-encodings (`%2F`, `%20`…) are left encoded and compared as such; nginx
//!   decodes them all for matching. A rule path spelled with a literal space or `%` therefore
//!   matches differently.
//! - A path over [`HostPaths::new_cache`]'s capacity makes the buffer grow (one allocation).
//! - Matching a plain host scans its rules (a few comparisons per rule); hosts with thousands
//!   of paths would want an index.
//! - Regexes run on the PikeVM (or the one-pass DFA), whose scratch space is allocated when a
//!   cache is made and warmed (`policy::regex_config`): slower than a lazy DFA, but no
//!   request allocates.
//!
//! Hot path: [`HostPaths::find`], [`rewrite`], [`write_location`]. No `unsafe`.

use std::ops::Range;

use regex_automata::meta::{Cache, Regex};
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};
use sluice_model::policy::{RewritePart, RewriteTarget};
use sluice_model::route::PathType;

use super::{TooSmall, Writer};

/// One path of a host, as control compiled it from an Ingress of the `nginx` class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The path as written in the Ingress (a regex on a regex host).
    pub path: String,
    /// Its type.
    pub path_type: PathType,
    /// What the caller routes a match to (an index of its own).
    pub route: u32,
    /// Its Ingress has `use-regex: "true"` or a `rewrite-target`: the whole host is a regex
    /// host.
    pub use_regex: bool,
}

/// What a request path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// The route of the path that matched. [`PathCache::path`] is the normalised path,
    /// [`PathCache::group`] its groups.
    Route(u32),
    /// 301 to [`PathCache::path`] (the normalised path, or the path plus `/`), with the
    /// request's query ([`write_location`]).
    Redirect,
    /// No path matched: the host's default backend, else 404.
    NotFound,
}

/// One host's compiled paths. Made per generation; `Sync`, shared by every worker.
#[derive(Debug, Clone)]
pub struct HostPaths {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    Plain {
        /// `location = P`, in rule order.
        exact: Vec<(Box<[u8]>, u32)>,
        /// `location P`, longest first (rule order on a tie).
        prefixes: Vec<(Box<[u8]>, u32)>,
        /// ImplementationSpecific paths ending in `/` (not `/` itself), without it: a request
        /// for one of these gets a 301 to it with the slash.
        slash_redirects: Vec<Box<[u8]>>,
    },
    Regex {
        re: Regex,
        /// Route of each pattern, by pattern id.
        routes: Vec<u32>,
    },
}

/// A worker's scratch space for one [`HostPaths`]: the normalised path and, for a regex host,
/// the regex cache and capture slots.
#[derive(Debug, Clone)]
pub struct PathCache {
    path: Vec<u8>,
    regex: Option<(Cache, Captures)>,
    /// Whether `regex`'s captures hold the last match.
    captured: bool,
}

impl PathCache {
    /// The normalised path of the last [`HostPaths::find`] (for [`PathMatch::Redirect`], the
    /// redirect's path).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The range in [`PathCache::path`] of capture group `index` of the last match (0: the
    /// whole match); `None` for a group that did not take part, a plain host, or no match.
    pub fn group(&self, index: usize) -> Option<Range<usize>> {
        match &self.regex {
            Some((_, caps)) if self.captured => caps.get_group(index).map(|s| s.range()),
            _ => None,
        }
    }
}

impl HostPaths {
    /// Compiles one host's paths, in the order its Ingresses' rules come (which decides ties);
    /// the problems, one per path left out.
    pub fn new(rules: &[PathRule]) -> (HostPaths, Vec<String>) {
        let mut problems = Vec::new();
        if rules.iter().any(|r| r.use_regex) {
            // Longest path string first, stable (ingress-nginx's `sort.SliceStable` by length).
            let mut order: Vec<&PathRule> = rules.iter().collect();
            order.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
            let mut patterns = Vec::with_capacity(order.len());
            let mut routes = Vec::with_capacity(order.len());
            for r in order {
                let pattern = format!("^{}", r.path);
                // Checked one by one, so one bad path does not take the host's others down.
                match regex_syntax::ParserBuilder::new().case_insensitive(true).build().parse(&pattern) {
                    Ok(_) => {
                        patterns.push(pattern);
                        routes.push(r.route);
                    }
                    Err(e) => problems.push(format!("path {:?} is not a regex Sluice runs: {e}", r.path)),
                }
            }
            let built = Regex::builder()
                .configure(super::regex_config())
                .syntax(syntax::Config::new().case_insensitive(true).utf8(false))
                .build_many(&patterns);
            match built {
                Ok(re) => return (HostPaths { mode: Mode::Regex { re, routes } }, problems),
                Err(e) => {
                    problems.push(format!("the host's paths do not compile together: {e}"));
                    let none: [&str; 0] = [];
                    let re = Regex::new_many(&none).expect("an empty set of patterns compiles");
                    return (HostPaths { mode: Mode::Regex { re, routes: Vec::new() } }, problems);
                }
            }
        }
        let mut exact: Vec<(Box<[u8]>, u32)> = Vec::new();
        let mut prefixes: Vec<(Box<[u8]>, u32)> = Vec::new();
        let mut slash_redirects: Vec<Box<[u8]>> = Vec::new();
        for r in rules {
            let p = r.path.as_bytes();
            if p.first() != Some(&b'/') {
                problems.push(format!("path {:?} does not begin with /", r.path));
                continue;
            }
            match r.path_type {
                PathType::Exact => exact.push((p.into(), r.route)),
                PathType::Prefix => {
                    let bare = p.strip_suffix(b"/").unwrap_or(p);
                    if bare.is_empty() {
                        prefixes.push((b"/"[..].into(), r.route));
                    } else {
                        exact.push((bare.into(), r.route));
                        let mut dir = bare.to_vec();
                        dir.push(b'/');
                        prefixes.push((dir.into(), r.route));
                    }
                }
                PathType::ImplementationSpecific => {
                    if p.len() > 1
                        && let Some(bare) = p.strip_suffix(b"/")
                    {
                        slash_redirects.push(bare.into());
                    }
                    prefixes.push((p.into(), r.route));
                }
            }
        }
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        (HostPaths { mode: Mode::Plain { exact, prefixes, slash_redirects } }, problems)
    }

    /// Whether the host's paths are regexes.
    pub fn is_regex(&self) -> bool {
        matches!(self.mode, Mode::Regex { .. })
    }

    /// A worker's scratch space for this host; `max_path_bytes` is the longest request path
    /// expected (the head parser's target limit), so the buffer never grows.
    pub fn new_cache(&self, max_path_bytes: usize) -> PathCache {
        PathCache {
            path: Vec::with_capacity(max_path_bytes + 1),
            regex: match &self.mode {
                Mode::Regex { re, .. } => {
                    let mut cache = re.create_cache();
                    let mut caps = Captures::all(re.group_info().clone());
                    // The engines finish setting up their scratch space on their first search
                    // (measured: 7 allocations, whatever the haystack): do it here.
                    re.search_captures_with(&mut cache, &Input::new("/").anchored(Anchored::Yes), &mut caps);
                    Some((cache, caps))
                }
                Mode::Plain { .. } => None,
            },
            captured: false,
        }
    }

    /// Normalises `path` (the request target's path, without query) into `cache` and matches
    /// it. `cache` must come from this host's [`HostPaths::new_cache`].
    pub fn find(&self, path: &str, cache: &mut PathCache) -> PathMatch {
        cache.captured = false;
        let Some(merged) = normalize(path.as_bytes(), &mut cache.path) else { return PathMatch::NotFound };
        if merged {
            return PathMatch::Redirect;
        }
        let p = &cache.path[..];
        match &self.mode {
            Mode::Plain { exact, prefixes, slash_redirects } => {
                if let Some((_, route)) = exact.iter().find(|(e, _)| **e == *p) {
                    return PathMatch::Route(*route);
                }
                if slash_redirects.iter().any(|s| **s == *p) {
                    cache.path.push(b'/');
                    return PathMatch::Redirect;
                }
                prefixes
                    .iter()
                    .find(|(pre, _)| p.starts_with(pre))
                    .map_or(PathMatch::NotFound, |(_, r)| PathMatch::Route(*r))
            }
            Mode::Regex { re, routes } => {
                let Some((c, caps)) = &mut cache.regex else { return PathMatch::NotFound };
                re.search_captures_with(c, &Input::new(p).anchored(Anchored::Yes), caps);
                match caps.pattern() {
                    Some(pid) => {
                        cache.captured = true;
                        routes.get(pid.as_usize()).map_or(PathMatch::NotFound, |r| PathMatch::Route(*r))
                    }
                    None => PathMatch::NotFound,
                }
            }
        }
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises an origin-form path into `out` (see the module documentation): `Some(true)`
/// when repeated slashes were merged, `None` when it does not begin with `/` (`*`).
pub fn normalize(path: &[u8], out: &mut Vec<u8>) -> Option<bool> {
    out.clear();
    if path.first() != Some(&b'/') {
        return None;
    }
    out.push(b'/');
    let mut merged = false;
    let mut i = 1;
    loop {
        // A segment: bytes up to the next `/`, unreserved escapes decoded.
        let start = out.len();
        while i < path.len() && path[i] != b'/' {
            let b = path[i];
            if b == b'%'
                && let (Some(h), Some(l)) =
                    (path.get(i + 1).and_then(|&c| hex(c)), path.get(i + 2).and_then(|&c| hex(c)))
                && is_unreserved((h << 4) | l)
            {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(b);
            i += 1;
        }
        let at_end = i >= path.len();
        match &out[start..] {
            b"." => out.truncate(start),
            b".." => {
                out.truncate(start);
                if out.len() > 1 {
                    out.pop();
                    let parent = out.iter().rposition(|&b| b == b'/').map_or(0, |s| s + 1);
                    out.truncate(parent);
                }
            }
            b"" => merged |= !at_end,
            _ if !at_end => out.push(b'/'),
            _ => {}
        }
        if at_end {
            return Some(merged);
        }
        i += 1;
    }
}

/// Writes the upstream path of `rewrite-target`: the target's text with `$n` replaced by group
/// `n` of the match (empty for a group that did not take part), then `?` and the request's
/// query when it has one (nginx's `rewrite` keeps the arguments). Like nginx's `rewrite`, the
/// target replaces the whole path: what the groups do not capture is gone. An empty result is
/// `/`. `group` is [`PathCache::group`]; `path` is [`PathCache::path`].
pub fn rewrite(
    target: &RewriteTarget,
    path: &[u8],
    group: impl Fn(usize) -> Option<Range<usize>>,
    query: Option<&str>,
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    for part in &target.parts {
        match part {
            RewritePart::Literal(s) => w.put(s.as_bytes())?,
            RewritePart::Group(n) => {
                if let Some(bytes) = group(usize::from(*n)).and_then(|r| path.get(r)) {
                    w.put(bytes)?;
                }
            }
        }
    }
    if w.len() == 0 {
        w.put(b"/")?;
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        w.put(b"?")?;
        w.put(q.as_bytes())?;
    }
    Ok(w.len())
}

/// Writes a redirect's Location value — [`PathCache::path`] and the request's query — into
/// `out`; its length.
pub fn write_location(path: &[u8], query: Option<&str>, out: &mut [u8]) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    w.put(path)?;
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        w.put(b"?")?;
        w.put(q.as_bytes())?;
    }
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(path: &str, path_type: PathType, route: u32, use_regex: bool) -> PathRule {
        PathRule { path: path.into(), path_type, route, use_regex }
    }

    const E: PathType = PathType::Exact;
    const P: PathType = PathType::Prefix;
    const I: PathType = PathType::ImplementationSpecific;

    /// What a row expects: a route, a 301 to a path, or nothing.
    #[derive(Debug, PartialEq, Eq)]
    enum Want {
        Route(u32),
        Moved(&'static str),
        None,
    }

    fn run(rules: &[PathRule], rows: &[(&str, Want)]) {
        let (host, problems) = HostPaths::new(rules);
        assert!(problems.is_empty(), "{problems:?}");
        let mut cache = host.new_cache(64);
        for (path, want) in rows {
            let got = match host.find(path, &mut cache) {
                PathMatch::Route(r) => Want::Route(r),
                PathMatch::Redirect => {
                    Want::Moved(Box::leak(String::from_utf8(cache.path().to_vec()).unwrap().into_boxed_str()))
                }
                PathMatch::NotFound => Want::None,
            };
            assert_eq!(got, *want, "{path:?} with {rules:?}");
        }
    }

    #[test]
    fn plain_hosts() {
        // INGRESS.md §2.1: Prefix `/foo` is `/foo` exactly or under `/foo/`; ImplementationSpecific
        // a plain string prefix; Exact exact.
        run(
            &[rule("/foo", P, 1, false), rule("/imp", I, 2, false), rule("/exact", E, 3, false)],
            &[
                ("/foo", Want::Route(1)),
                ("/foo/", Want::Route(1)),
                ("/foo/bar", Want::Route(1)),
                ("/foobar", Want::None),
                ("/FOO", Want::None),
                ("/imp", Want::Route(2)),
                ("/impala", Want::Route(2)),
                ("/imp/x", Want::Route(2)),
                ("/exact", Want::Route(3)),
                ("/exact/", Want::None),
                ("/exactly", Want::None),
                ("/", Want::None),
            ],
        );
        // A Prefix rule's trailing slash changes nothing; `/` catches the rest; longest wins.
        run(
            &[
                rule("/", P, 0, false),
                rule("/api/", P, 1, false),
                rule("/api/v1", P, 2, false),
                rule("/api", I, 3, false),
            ],
            &[
                ("/api", Want::Route(1)),
                ("/api/users", Want::Route(1)),
                ("/api/v1", Want::Route(2)),
                ("/api/v1/users", Want::Route(2)),
                ("/api/v10", Want::Route(1)),
                ("/apix", Want::Route(3)),
                ("/other", Want::Route(0)),
            ],
        );
        // The 301 to a trailing slash (nginx's proxy_pass location ending in `/`), which an
        // exact location beats and a Prefix rule never needs.
        run(
            &[
                rule("/x/", I, 1, false),
                rule("/y/", P, 2, false),
                rule("/z/", I, 3, false),
                rule("/z", E, 4, false),
            ],
            &[
                ("/x", Want::Moved("/x/")),
                ("/x/", Want::Route(1)),
                ("/x/a", Want::Route(1)),
                ("/y", Want::Route(2)),
                ("/z", Want::Route(4)),
                ("/z/", Want::Route(3)),
            ],
        );
        // Exact beats a longer prefix of the same path; the first rule wins a tie.
        run(
            &[rule("/a", I, 1, false), rule("/a", E, 2, false), rule("/a", I, 3, false)],
            &[("/a", Want::Route(2)), ("/ab", Want::Route(1))],
        );
    }

    #[test]
    fn regex_hosts() {
        // ingress-nginx's "Ingress Path Matching" example: with use-regex on the host, paths
        // are tried longest first, case-insensitively, so `/foo/bar/bar` goes to
        // `/foo/bar/[A-Z0-9]{3}`, not to `/foo/bar/bar`.
        run(
            &[rule("/foo/bar/bar", P, 1, false), rule("/foo/bar/[A-Z0-9]{3}", I, 2, true)],
            &[
                ("/foo/bar/bar", Want::Route(2)),
                ("/foo/bar/BAR", Want::Route(2)),
                ("/foo/bar/ba", Want::None),
                // Anchored at the start only: the rest may follow.
                ("/foo/bar/bar/baz", Want::Route(2)),
                ("/x/foo/bar/bar", Want::None),
            ],
        );
        // Every path of the host becomes a regex: the Prefix and Exact rules of an Ingress
        // without use-regex are `^PATH` prefixes, case-insensitive, `.` is any character.
        run(
            &[
                rule("/exact", E, 1, false),
                rule("/prefix.v1", P, 2, false),
                rule("/", P, 3, false),
                rule("/api/(v[0-9]+)/(.*)", I, 4, true),
            ],
            &[
                ("/exactly", Want::Route(1)),
                ("/EXACT", Want::Route(1)),
                ("/prefixxv1/more", Want::Route(2)),
                ("/api/v2/users", Want::Route(4)),
                ("/api/vx/users", Want::Route(3)),
                ("/anything", Want::Route(3)),
            ],
        );
        // The same length: the first rule wins.
        run(
            &[rule("/a.", I, 1, true), rule("/ab", I, 2, false)],
            &[("/ab", Want::Route(1)), ("/ac", Want::Route(1))],
        );
    }

    #[test]
    fn normalised_before_matching() {
        run(
            &[rule("/foo", P, 1, false), rule("/api", P, 2, false)],
            &[
                ("/a/../foo", Want::Route(1)),
                ("/./foo/./bar", Want::Route(1)),
                ("/../../foo", Want::Route(1)),
                ("/%66oo", Want::Route(1)),
                ("/%61%70%69/x", Want::Route(2)),
                ("/x/%2e%2e/api", Want::Route(2)),
                ("/x/%2E%2e/api", Want::Route(2)),
                ("/foo%2fbar", Want::None),
                ("//foo", Want::Moved("/foo")),
                ("/foo//bar", Want::Moved("/foo/bar")),
                ("/a/..//foo", Want::Moved("/foo")),
                ("*", Want::None),
            ],
        );
        let rows: &[(&str, Option<(&str, bool)>)] = &[
            ("/", Some(("/", false))),
            ("/a/b/c/./../../g", Some(("/a/g", false))),
            ("/mid/content=5/../6", Some(("/mid/6", false))),
            ("/a/.", Some(("/a/", false))),
            ("/a/..", Some(("/", false))),
            ("/a/b/", Some(("/a/b/", false))),
            ("/..", Some(("/", false))),
            ("/.../a", Some(("/.../a", false))),
            ("/.a/..b", Some(("/.a/..b", false))),
            ("///", Some(("/", true))),
            ("/a//", Some(("/a/", true))),
            ("/%7euser/%41", Some(("/~user/A", false))),
            ("/%zz/%4", Some(("/%zz/%4", false))),
            ("/%20/%25", Some(("/%20/%25", false))),
            ("", None),
            ("a/b", None),
        ];
        let mut out = Vec::new();
        for (path, want) in rows {
            let got = normalize(path.as_bytes(), &mut out)
                .map(|m| (std::str::from_utf8(&out).unwrap().to_owned(), m));
            assert_eq!(got.as_ref().map(|(p, m)| (p.as_str(), *m)), *want, "{path:?}");
        }
    }

    #[test]
    fn rewrite_targets() {
        // ingress-nginx's rewrite documentation, and INGRESS.md §2.2.
        let rows: &[(&str, &str, &str, Option<&str>, &str)] = &[
            ("/something(/|$)(.*)", "/$2", "/something", None, "/"),
            ("/something(/|$)(.*)", "/$2", "/something/", None, "/"),
            ("/something(/|$)(.*)", "/$2", "/something/new", None, "/new"),
            ("/something(/|$)(.*)", "/$2", "/something/new", Some("a=1&b"), "/new?a=1&b"),
            ("/something(/|$)(.*)", "/$2", "/SOMETHING/New", None, "/New"),
            ("/something(/|$)(.*)", "/$2", "/something/a/../b", None, "/b"),
            // `$1` of a group that did not match is empty.
            ("/api(/v[0-9])?/(.*)", "/svc$1/$2", "/api/x", None, "/svc/x"),
            ("/api(/v[0-9])?/(.*)", "/svc$1/$2", "/api/v2/x", None, "/svc/v2/x"),
            // nginx's rewrite replaces the whole path: what is not captured goes.
            ("/old", "/new", "/old/deeper", Some(""), "/new"),
            ("/(.*)", "$1", "/", None, "/"),
            ("/app(/|$)(.*)", "/$0", "/app/x", None, "//app/x"),
        ];
        let mut out = [0u8; 64];
        for (path, target, request, query, want) in rows {
            let (host, problems) = HostPaths::new(&[rule(path, I, 7, true)]);
            assert!(problems.is_empty());
            let mut cache = host.new_cache(64);
            assert_eq!(host.find(request, &mut cache), PathMatch::Route(7), "{request}");
            let target = RewriteTarget::parse(target).unwrap();
            let n = rewrite(&target, cache.path(), |i| cache.group(i), *query, &mut out).unwrap();
            assert_eq!(std::str::from_utf8(&out[..n]).unwrap(), *want, "{path} {request}");
        }
        let target = RewriteTarget::parse("/$1/long/text").unwrap();
        assert_eq!(rewrite(&target, b"/x", |_| None, None, &mut [0u8; 8]), Err(TooSmall));
    }

    #[test]
    fn redirect_locations_keep_the_query() {
        let mut out = [0u8; 32];
        let n = write_location(b"/x/", Some("a=1"), &mut out).unwrap();
        assert_eq!(&out[..n], b"/x/?a=1");
        let n = write_location(b"/x/", Some(""), &mut out).unwrap();
        assert_eq!(&out[..n], b"/x/");
    }

    /// The regex host against a reference written from ingress-nginx's rule: each path alone
    /// as `(?i)^PATH`, tried longest first (rule order on a tie), the first that matches.
    /// It checks that one multi-pattern search with leftmost-first semantics is that rule.
    fn regex_reference(rules: &[PathRule], path: &[u8]) -> Option<u32> {
        let mut order: Vec<&PathRule> = rules.iter().collect();
        order.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        order.into_iter().find_map(|r| {
            let re = Regex::builder()
                .syntax(syntax::Config::new().case_insensitive(true).utf8(false))
                .build(&format!("^{}", r.path))
                .unwrap();
            re.is_match(Input::new(path).anchored(Anchored::Yes)).then_some(r.route)
        })
    }

    /// The plain host against a reference written from nginx's location rules as
    /// ingress-nginx writes them (module documentation), one rule at a time.
    fn plain_reference(rules: &[PathRule], p: &[u8]) -> Option<Result<u32, ()>> {
        let exact = |r: &PathRule| match r.path_type {
            PathType::Exact => r.path.as_bytes() == p,
            PathType::Prefix => {
                let bare = r.path.trim_end_matches('/');
                !bare.is_empty() && bare.as_bytes() == p
            }
            PathType::ImplementationSpecific => false,
        };
        if let Some(r) = rules.iter().find(|r| exact(r)) {
            return Some(Ok(r.route));
        }
        if rules.iter().any(|r| {
            r.path_type == PathType::ImplementationSpecific
                && r.path.len() > 1
                && r.path.strip_suffix('/').is_some_and(|b| b.as_bytes() == p)
        }) {
            return Some(Err(()));
        }
        let location = |r: &PathRule| -> Option<Vec<u8>> {
            match r.path_type {
                PathType::Exact => None,
                PathType::Prefix => Some(format!("{}/", r.path.trim_end_matches('/')).into_bytes()),
                PathType::ImplementationSpecific => Some(r.path.as_bytes().to_vec()),
            }
        };
        let mut best: Option<(usize, u32)> = None;
        for r in rules {
            if let Some(l) = location(r)
                && p.starts_with(&l)
                && best.is_none_or(|(len, _)| l.len() > len)
            {
                best = Some((l.len(), r.route));
            }
        }
        best.map(|(_, r)| Ok(r))
    }

    fn arb_rules(regex: bool) -> impl Strategy<Value = Vec<PathRule>> {
        let paths = if regex {
            prop::sample::select(vec![
                "/",
                "/a",
                "/A/b",
                "/a.",
                "/a/(b|c)",
                "/a/b/.*",
                "/[ab]+",
                "/b(/|$)(.*)",
                "/ab",
                "/a/",
            ])
        } else {
            prop::sample::select(vec!["/", "/a", "/a/", "/a/b", "/ab", "/b/", "/a/b/", "/b"])
        };
        let types =
            prop::sample::select(vec![PathType::Exact, PathType::Prefix, PathType::ImplementationSpecific]);
        proptest::collection::vec((paths, types, any::<bool>()), 1..6).prop_map(move |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (p, t, r))| rule(p, t, i as u32, regex && (r || i == 0)))
                .collect()
        })
    }

    fn arb_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop::sample::select(vec!["/", "a", "b", "A", "c", "/a", "/b/"]), 1..6)
            .prop_map(|parts| format!("/{}", parts.concat()))
    }

    proptest! {
        #[test]
        fn regex_hosts_match_the_reference(rules in arb_rules(true), path in arb_path()) {
            let (host, problems) = HostPaths::new(&rules);
            prop_assert!(problems.is_empty());
            let mut cache = host.new_cache(64);
            let got = host.find(&path, &mut cache);
            if got != PathMatch::Redirect {
                let want = regex_reference(&rules, cache.path());
                prop_assert_eq!(got, want.map_or(PathMatch::NotFound, PathMatch::Route));
            }
        }

        #[test]
        fn plain_hosts_match_the_reference(rules in arb_rules(false), path in arb_path()) {
            let (host, problems) = HostPaths::new(&rules);
            prop_assert!(problems.is_empty());
            let mut cache = host.new_cache(64);
            let got = host.find(&path, &mut cache);
            let mut normal = Vec::new();
            if normalize(path.as_bytes(), &mut normal) == Some(false) {
                let want = match plain_reference(&rules, &normal) {
                    Some(Ok(r)) => PathMatch::Route(r),
                    Some(Err(())) => PathMatch::Redirect,
                    None => PathMatch::NotFound,
                };
                prop_assert_eq!(got, want);
            } else {
                prop_assert_eq!(got, PathMatch::Redirect);
            }
        }

        #[test]
        fn normalised_paths_are_normal(path in "/[a-c./%2eE]{0,24}") {
            let mut once = Vec::new();
            let merged = normalize(path.as_bytes(), &mut once).unwrap();
            let text = String::from_utf8(once.clone()).unwrap();
            prop_assert!(text.starts_with('/'), "{}", text);
            prop_assert!(!text.contains("//"), "{}", text);
            prop_assert!(!text.split('/').any(|seg| seg == "." || seg == ".."), "{}", text);
            prop_assert_eq!(merged, path.contains("//"));
            // Idempotent, and never longer.
            let mut twice = Vec::new();
            prop_assert_eq!(normalize(&once, &mut twice), Some(false));
            prop_assert_eq!(&twice, &once);
            prop_assert!(once.len() <= path.len());
        }
    }

    #[test]
    fn bad_regexes_are_reported_and_left_out() {
        let (host, problems) = HostPaths::new(&[
            rule("/ok/(.*)", I, 1, true),
            rule("/bad(?<=x)", I, 2, false),
            rule("/(unclosed", I, 3, false),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(host.is_regex());
        let mut cache = host.new_cache(16);
        assert_eq!(host.find("/ok/x", &mut cache), PathMatch::Route(1));
        assert_eq!(host.find("/bad", &mut cache), PathMatch::NotFound);
        assert_eq!(cache.group(0), None, "no match, no groups");
    }
}
