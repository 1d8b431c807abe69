//! Upstream bookkeeping of one worker: the generation's routes and endpoints, round robin,
//! endpoints that keep failing, and the keep-alive pool of idle upstream connections.
//!
//! Not hot path to build ([`Generation::new`] runs once per table generation); picking an
//! endpoint and taking or returning a pooled connection are, and allocate nothing once the
//! pool's per-endpoint lists have grown to their size.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use sluice_model::l7::L7Table;
use sluice_model::policy::Policy;
use sluice_model::route::{HostRule, IngressRef, PathRoute, ServiceBackend, wildcard_suffix};

use crate::policy::auth::BasicAuthCheck;
use crate::policy::canary::{CanaryCache, CanaryRule, Pick};
use crate::policy::cookie::EndpointTokens;
use crate::policy::limit::{LimitId, LimitRule};
use crate::policy::{Sip, SipKey, hash_ip};
use crate::route::Route;

use crate::route::Router;

/// What one worker serves requests from, for one table generation: the router and, per
/// Service port, its eligible endpoints. Requests hold it (an `Rc`) while they are in
/// flight, so a new generation never changes a request already routed.
#[derive(Debug)]
pub struct Generation {
    router: Router,
    index: HashMap<ServiceBackend, usize>,
    upstreams: Vec<Endpoints>,
    live: HashSet<SocketAddr>,
    /// Hosts a TLS Secret's certificate covers: precise names, and wildcard suffixes.
    cert_hosts: HashSet<Box<str>>,
    cert_suffixes: HashSet<Box<str>>,
    /// What a route without a policy of its own gets.
    default_policy: Policy,
    /// Per policy of the table: its basic-auth check, when it asks for one.
    auth: Vec<Option<BasicAuthCheck>>,
    /// Per route (by the address of its `PathRoute` or `DefaultRoute` in the router's table,
    /// stable for the generation): its Ingress's limits, when they set any. Limits are counted
    /// per Ingress, as ingress-nginx counts them per zone.
    limits: HashMap<usize, LimitRule>,
    /// Per path with a canary (same key): the rule and this worker's cache for its pattern.
    canaries: HashMap<usize, (CanaryRule, RefCell<CanaryCache>)>,
    /// Per upstream whose routes use cookie affinity: its endpoints' tokens, made at first use
    /// (with the gateway's key, which the generation does not hold).
    tokens: RefCell<HashMap<usize, EndpointTokens>>,
}

/// The key of a route's runtime state in a [`Generation`]: the address of its record in the
/// router's table (which does not move for the generation's life).
pub(crate) fn route_key(route: &Route<'_>) -> Option<usize> {
    match route {
        Route::Path { path, .. } => Some(std::ptr::from_ref(*path) as usize),
        Route::Default { default, .. } => Some(std::ptr::from_ref(*default) as usize),
        Route::NotFound | Route::Redirect { .. } => None,
    }
}

/// The eligible endpoints of one Service port and the round-robin cursor over them.
#[derive(Debug)]
struct Endpoints {
    eligible: Vec<SocketAddr>,
    /// Per worker: `Generation` is not shared between threads.
    cursor: Cell<usize>,
}

impl Generation {
    /// Indexes a generation's L7 table: the router, and `Upstream::eligible()` per Service port.
    pub fn new(table: &L7Table) -> Generation {
        let mut index = HashMap::with_capacity(table.upstreams.len());
        let mut upstreams = Vec::with_capacity(table.upstreams.len());
        let mut live = HashSet::new();
        for u in &table.upstreams {
            let eligible: Vec<SocketAddr> = u.eligible().map(|e| e.addr).collect();
            live.extend(eligible.iter().copied());
            index.insert(u.service.clone(), upstreams.len());
            upstreams.push(Endpoints { eligible, cursor: Cell::new(0) });
        }
        let (mut cert_hosts, mut cert_suffixes) = (HashSet::new(), HashSet::new());
        for h in table.certificates.iter().flat_map(|c| &c.hosts) {
            match h {
                HostRule::Precise(n) => cert_hosts.insert(n.as_str().into()),
                HostRule::Wildcard(s) => cert_suffixes.insert(s.as_str().into()),
                HostRule::Any => false,
            };
        }
        let router = Router::new(table.routes.clone());
        let routes = router.table();
        let auth = routes.policies().iter().map(|p| p.basic_auth.as_ref().map(BasicAuthCheck::new)).collect();
        let (mut limits, mut canaries) = (HashMap::new(), HashMap::new());
        let limit = |ingress: &IngressRef, policy: u16| {
            let p = routes.policy(policy)?;
            LimitRule::new(LimitId::of_ingress(&ingress.namespace, &ingress.name), &p.limits)
        };
        for h in routes.hosts() {
            for p in &h.paths {
                let key = std::ptr::from_ref(p) as usize;
                if let Some(rule) = limit(&p.ingress, p.policy) {
                    limits.insert(key, rule);
                }
                // A canary whose pattern cannot run (control checked it) takes weight and
                // cookie only.
                if let Some(c) = &p.canary {
                    let rule = CanaryRule::new(&c.rule).or_else(|_| {
                        let mut r = c.rule.clone();
                        r.header_pattern = None;
                        CanaryRule::new(&r)
                    });
                    if let Ok(rule) = rule {
                        let cache = RefCell::new(rule.new_cache());
                        canaries.insert(key, (rule, cache));
                    }
                }
            }
            if let Some(d) = &h.default_backend
                && let Some(rule) = limit(&d.ingress, d.policy)
            {
                limits.insert(std::ptr::from_ref(d) as usize, rule);
            }
        }
        Generation {
            router,
            index,
            upstreams,
            live,
            cert_hosts,
            cert_suffixes,
            default_policy: Policy::default(),
            auth,
            limits,
            canaries,
            tokens: RefCell::new(HashMap::new()),
        }
    }

    /// The endpoint an affinity cookie's value names, among `upstream`'s eligible ones.
    pub fn endpoint_by_token(&self, upstream: usize, value: &[u8], key: &SipKey) -> Option<SocketAddr> {
        let mut tokens = self.tokens.borrow_mut();
        let t = tokens.entry(upstream).or_insert_with(|| EndpointTokens::new(key, self.eligible(upstream)));
        t.find(value)
    }

    /// `upstream-hash-by`: the eligible endpoint a key hash chooses, by rendezvous hashing (the
    /// highest hash of key and endpoint), so that a key keeps its endpoint while the endpoint
    /// stays and only the keys of an endpoint that leaves move. The hash is SipHash under a
    /// fixed key: every gateway chooses alike. An endpoint held back by [`Health`] is passed
    /// over (its keys go to their second choice meanwhile).
    pub fn pick_hashed(
        &self,
        upstream: usize,
        key_hash: u64,
        health: &Health,
        now_ns: u64,
    ) -> Option<SocketAddr> {
        const KEY: SipKey = SipKey::new(*b"sluice hash-by!!");
        let u = self.upstreams.get(upstream)?;
        let score = |a: &SocketAddr| {
            let mut h = Sip::new(&KEY);
            h.write(&key_hash.to_le_bytes());
            hash_ip(&mut h, a.ip());
            h.write(&a.port().to_le_bytes());
            h.finish()
        };
        let best = |healthy: bool| {
            u.eligible
                .iter()
                .filter(|a| !healthy || health.is_up(a, now_ns))
                .max_by_key(|a| score(a))
                .copied()
        };
        best(true).or_else(|| best(false))
    }

    /// The basic-auth check of policy `index`, if it asks for one.
    pub fn auth(&self, index: u16) -> Option<&BasicAuthCheck> {
        self.auth.get(usize::from(index)).and_then(Option::as_ref)
    }

    /// The limits of a route's Ingress, if it sets any.
    pub fn limit(&self, route: &Route<'_>) -> Option<&LimitRule> {
        // Most tables set no limit: no key hashed then.
        if self.limits.is_empty() {
            return None;
        }
        route_key(route).and_then(|k| self.limits.get(&k))
    }

    /// Whether a request routed to `path` goes to its canary: `header` the value of the field
    /// the canary reads, `cookies` the request's Cookie fields, `random` a uniform draw.
    pub fn picks_canary<'a>(
        &self,
        path: &PathRoute,
        header: impl FnOnce(&str) -> Option<&'a [u8]>,
        cookies: impl IntoIterator<Item = &'a [u8]>,
        random: u64,
    ) -> bool {
        let Some((rule, cache)) = self.canaries.get(&(std::ptr::from_ref(path) as usize)) else {
            return false;
        };
        let value = rule.header_name().and_then(header);
        rule.decide(&mut cache.borrow_mut(), value, cookies, random).0 == Pick::Canary
    }

    /// The policy at `index` of the table (the default one when the table has none there).
    pub fn policy(&self, index: u16) -> &Policy {
        self.router.table().policy(index).unwrap_or(&self.default_policy)
    }

    /// Whether a TLS Secret's certificate covers `host` (lowercase, no port): what
    /// ingress-nginx's `ssl-redirect` and HSTS depend on. The default certificate does not count.
    pub fn has_certificate(&self, host: &str) -> bool {
        self.cert_hosts.contains(host)
            || wildcard_suffix(host).is_some_and(|s| self.cert_suffixes.contains(s))
    }

    /// An empty generation: every request gets 404.
    pub fn empty() -> Generation {
        Generation::new(&L7Table::default())
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The index of a Service port's endpoints, if the table has it.
    pub fn upstream(&self, service: &ServiceBackend) -> Option<usize> {
        self.index.get(service).copied()
    }

    /// The eligible endpoints of an upstream.
    pub fn eligible(&self, upstream: usize) -> &[SocketAddr] {
        self.upstreams.get(upstream).map_or(&[], |u| &u.eligible)
    }

    /// Whether an endpoint is eligible for some Service port of this generation (a pooled
    /// connection to one that is not is closed).
    pub fn is_live(&self, addr: &SocketAddr) -> bool {
        self.live.contains(addr)
    }

    /// The endpoint for the next request to `upstream`, by `balance`, skipping `avoid` (the one
    /// that just failed) when there is another, and endpoints [`Health`] holds back. When every
    /// endpoint is held back one is picked anyway: a service whose endpoints all failed recently
    /// is tried rather than refused (fail open). `random` drives EWMA's two choices.
    pub fn pick(
        &self,
        upstream: usize,
        health: &Health,
        now_ns: u64,
        avoid: Option<SocketAddr>,
        balance: Balance,
        random: u64,
    ) -> Option<SocketAddr> {
        let u = self.upstreams.get(upstream)?;
        let n = u.eligible.len();
        if n == 0 {
            return None;
        }
        let usable = |a: &SocketAddr| !(n > 1 && avoid == Some(*a)) && health.is_up(a, now_ns);
        if balance == Balance::Ewma {
            // Two random choices among the usable endpoints, the lower score wins (ingress-nginx's
            // `ewma` balancer). Two passes over the endpoints, no allocation.
            let m = u.eligible.iter().filter(|a| usable(a)).count();
            let nth = |k: usize| u.eligible.iter().filter(|a| usable(a)).nth(k).copied();
            match m {
                0 => {}
                1 => return nth(0),
                _ => {
                    let i = (random % m as u64) as usize;
                    let mut j = ((random >> 32) % (m as u64 - 1)) as usize;
                    if j >= i {
                        j += 1;
                    }
                    let (a, b) = (nth(i)?, nth(j)?);
                    return Some(if health.score(&b, now_ns) < health.score(&a, now_ns) { b } else { a });
                }
            }
        }
        let start = u.cursor.get();
        for i in 0..n {
            let a = u.eligible[(start + i) % n];
            if !usable(&a) {
                continue;
            }
            u.cursor.set((start + i + 1) % n);
            return Some(a);
        }
        let mut a = u.eligible[start % n];
        if n > 1 && avoid == Some(a) {
            a = u.eligible[(start + 1) % n];
        }
        u.cursor.set((start + 1) % n);
        Some(a)
    }
}

/// How a request's endpoint is chosen among a Service port's eligible endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    /// In turn (ingress-nginx's default, `round_robin`).
    #[default]
    RoundRobin,
    /// Two endpoints at random, the one with the lower decaying average of its recent response
    /// times (ingress-nginx's `ewma`): slow endpoints get fewer requests, and one that has not
    /// answered for a while is tried again as its average decays.
    Ewma,
}

impl Balance {
    /// From ingress-nginx's spelling (`round_robin`, `ewma`; `-` for `_` accepted).
    pub fn parse(s: &str) -> Option<Balance> {
        match s {
            "round_robin" | "round-robin" => Some(Balance::RoundRobin),
            "ewma" => Some(Balance::Ewma),
            _ => None,
        }
    }
}

/// How fast an endpoint's average forgets (ingress-nginx's `DECAY_TIME`, 10 s): a sample `t`
/// old weighs `e^(-t / 10 s)`.
const EWMA_DECAY_NS: f64 = 10e9;

/// Averages not updated for this long are dropped (they have decayed to under 0.3 %).
const EWMA_FORGET_NS: u64 = 60_000_000_000;

/// Passive health: an endpoint that failed `threshold` times in a row (connect refused or
/// timed out, reset before a response) is skipped for `backoff_ns`.
#[derive(Debug)]
pub struct Health {
    threshold: u32,
    backoff_ns: u64,
    /// Per failing endpoint: failures in a row, and until when it is skipped.
    failing: HashMap<SocketAddr, (u32, u64)>,
    /// Per endpoint that answered: the decaying average of its response times (ns), and when it
    /// was last updated.
    ewma: HashMap<SocketAddr, (f64, u64)>,
}

impl Health {
    /// Skip an endpoint for `backoff_ns` after `threshold` failures in a row.
    pub fn new(threshold: u32, backoff_ns: u64) -> Health {
        Health { threshold, backoff_ns, failing: HashMap::new(), ewma: HashMap::new() }
    }

    /// Whether requests may go to `addr` now.
    pub fn is_up(&self, addr: &SocketAddr, now_ns: u64) -> bool {
        self.failing.get(addr).is_none_or(|&(_, until)| now_ns >= until)
    }

    /// `addr` failed.
    pub fn failed(&mut self, addr: SocketAddr, now_ns: u64) {
        let (threshold, backoff) = (self.threshold, self.backoff_ns);
        let e = self.failing.entry(addr).or_insert((0, 0));
        e.0 += 1;
        if e.0 >= threshold {
            e.0 = 0;
            e.1 = now_ns.saturating_add(backoff);
        }
    }

    /// `addr` answered.
    pub fn succeeded(&mut self, addr: &SocketAddr) {
        if !self.failing.is_empty() {
            self.failing.remove(addr);
        }
    }

    /// `addr` took `rtt_ns` to answer a request (connect included), at `now_ns`: folded into its
    /// average, the older value decayed by the time since it was updated.
    pub fn observe(&mut self, addr: SocketAddr, rtt_ns: u64, now_ns: u64) {
        let e = self.ewma.entry(addr).or_insert((rtt_ns as f64, now_ns));
        e.0 = decayed(e.0, e.1, rtt_ns as f64, now_ns);
        e.1 = now_ns;
    }

    /// `addr`'s average now: decayed towards 0 since it was last updated (so an endpoint left
    /// alone is tried again), 0 for one never measured (so a new endpoint gets requests).
    pub fn score(&self, addr: &SocketAddr, now_ns: u64) -> f64 {
        self.ewma.get(addr).map_or(0.0, |&(v, at)| decayed(v, at, 0.0, now_ns))
    }

    /// Drops the averages of endpoints not heard from for a minute (ones that left the table).
    pub fn forget_stale(&mut self, now_ns: u64) {
        self.ewma.retain(|_, (_, at)| now_ns.saturating_sub(*at) < EWMA_FORGET_NS);
    }
}

/// `value` last updated at `at_ns`, decayed to `now_ns` with `sample` folded in.
fn decayed(value: f64, at_ns: u64, sample: f64, now_ns: u64) -> f64 {
    let w = (-(now_ns.saturating_sub(at_ns) as f64) / EWMA_DECAY_NS).exp();
    value * w + sample * (1.0 - w)
}

/// Limits of a worker's keep-alive pool (ingress-nginx's `upstream-keepalive-*` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Idle connections kept per worker, all endpoints together (320).
    pub max_idle: usize,
    /// How long an idle connection is kept (60 s).
    pub idle_timeout_ns: u64,
    /// Requests one upstream connection carries at most (10,000).
    pub max_requests: u32,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig { max_idle: 320, idle_timeout_ns: 60_000_000_000, max_requests: 10_000 }
    }
}

/// Idle upstream connections of one worker, per endpoint, most recently used first out.
/// `C` is whatever the driver identifies a connection by (its token).
#[derive(Debug)]
pub struct Pool<C> {
    config: PoolConfig,
    idle: HashMap<SocketAddr, Vec<Idle<C>>>,
    total: usize,
}

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since_ns: u64,
    uses: u32,
}

impl<C: PartialEq> Pool<C> {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Pool<C> {
        Pool { config, idle: HashMap::new(), total: 0 }
    }

    /// The limits.
    pub fn config(&self) -> PoolConfig {
        self.config
    }

    /// Idle connections held.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// An idle connection to `addr` and the requests it carried, if one is fresh enough.
    /// Stale ones met on the way are handed to `close`.
    pub fn take(&mut self, addr: &SocketAddr, now_ns: u64, mut close: impl FnMut(C)) -> Option<(C, u32)> {
        let list = self.idle.get_mut(addr)?;
        while let Some(i) = list.pop() {
            self.total -= 1;
            if now_ns.saturating_sub(i.since_ns) < self.config.idle_timeout_ns {
                return Some((i.conn, i.uses));
            }
            close(i.conn);
        }
        None
    }

    /// Offers a connection that finished a request (its `uses`th): kept, or given back
    /// (`Some`) for the caller to close when the pool is full or it has carried enough.
    pub fn put(&mut self, addr: SocketAddr, conn: C, uses: u32, now_ns: u64) -> Option<C> {
        if uses >= self.config.max_requests || self.total >= self.config.max_idle {
            return Some(conn);
        }
        self.idle.entry(addr).or_default().push(Idle { conn, since_ns: now_ns, uses });
        self.total += 1;
        None
    }

    /// Takes out one idle connection (closed by its upstream, say); whether it was there.
    pub fn remove(&mut self, addr: &SocketAddr, conn: &C) -> bool {
        let Some(list) = self.idle.get_mut(addr) else { return false };
        let Some(i) = list.iter().position(|i| i.conn == *conn) else { return false };
        list.swap_remove(i);
        self.total -= 1;
        true
    }

    /// Hands to `close` every connection idle for too long, and every one to an endpoint
    /// `keep` refuses (no longer in the table).
    pub fn expire(&mut self, now_ns: u64, keep: impl Fn(&SocketAddr) -> bool, mut close: impl FnMut(C)) {
        let timeout = self.config.idle_timeout_ns;
        for (addr, list) in self.idle.iter_mut() {
            let live = keep(addr);
            let before = list.len();
            let mut i = 0;
            while i < list.len() {
                if !live || now_ns.saturating_sub(list[i].since_ns) >= timeout {
                    close(list.swap_remove(i).conn);
                } else {
                    i += 1;
                }
            }
            self.total -= before - list.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 80))
    }

    #[test]
    fn an_endpoint_that_keeps_failing_is_skipped_for_a_while() {
        let mut h = Health::new(3, 10);
        h.failed(a(1), 0);
        h.failed(a(1), 0);
        assert!(h.is_up(&a(1), 0));
        h.failed(a(1), 0);
        assert!(!h.is_up(&a(1), 5));
        assert!(h.is_up(&a(1), 10));
        h.succeeded(&a(1));
        assert!(h.is_up(&a(1), 0));
    }

    fn generation(endpoints: &[SocketAddr]) -> Generation {
        use sluice_model::l7::{Endpoint, Upstream};
        use sluice_model::route::{ServiceBackend, ServicePort};
        let service =
            ServiceBackend { namespace: "ns".into(), name: "web".into(), port: ServicePort::Number(80) };
        let endpoints = endpoints
            .iter()
            .map(|&addr| Endpoint { addr, ready: true, serving: true, terminating: false })
            .collect();
        Generation::new(&L7Table {
            upstreams: vec![Upstream { service, endpoints, external: None }],
            ..L7Table::default()
        })
    }

    #[test]
    fn ewma_sends_requests_to_the_faster_endpoint_and_tries_the_slow_one_again_later() {
        let g = generation(&[a(1), a(2), a(3)]);
        let mut h = Health::new(3, 10);
        let s = 1_000_000_000u64;
        // a(1) answers in 50 ms, the others in 1 ms.
        h.observe(a(1), 50_000_000, 0);
        h.observe(a(2), 1_000_000, 0);
        h.observe(a(3), 1_000_000, 0);
        let mut seed = 7u64;
        let mut counts = HashMap::new();
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let got = g.pick(0, &h, s, None, Balance::Ewma, seed).unwrap();
            *counts.entry(got).or_insert(0) += 1;
        }
        // a(1) wins only when both choices are it, which two distinct choices never are.
        assert_eq!(counts.get(&a(1)), None, "{counts:?}");
        assert!(counts[&a(2)] > 1200 && counts[&a(3)] > 1200, "{counts:?}");
        // Averages decay while an endpoint is left alone: a minute later the busy ones have
        // fresh samples of 1 ms, a(1)'s 50 ms has decayed to 0.12 ms, and it is chosen again.
        let later = 60 * s;
        assert!(h.score(&a(1), later) < 50_000_000.0 * 0.01);
        h.observe(a(2), 1_000_000, later);
        h.observe(a(3), 1_000_000, later);
        let tried = (0..200u64).any(|r| {
            g.pick(0, &h, later, None, Balance::Ewma, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)) == Some(a(1))
        });
        assert!(tried, "a slow endpoint is tried again once its average has decayed");
        // A new sample moves the average by the weight time has given it.
        h.observe(a(2), 100_000_000, later + 10 * s);
        let v = h.score(&a(2), later + 10 * s);
        let w = (-1.0f64).exp();
        assert!((v - (1_000_000.0 * w + 100_000_000.0 * (1.0 - w))).abs() < 1.0, "{v}");
        // Held back and avoided endpoints are not chosen; with one left it is chosen.
        h.failed(a(2), 0);
        h.failed(a(2), 0);
        h.failed(a(2), 0);
        for r in 0..50u64 {
            assert_eq!(g.pick(0, &h, 5, Some(a(3)), Balance::Ewma, r * 977), Some(a(1)));
        }
        // Stale averages are forgotten.
        h.forget_stale(200 * s);
        assert_eq!(h.score(&a(2), 200 * s), 0.0);
        assert!(h.ewma.is_empty());
    }

    #[test]
    fn round_robin_takes_endpoints_in_turn() {
        let g = generation(&[a(1), a(2)]);
        let h = Health::new(3, 10);
        let got: Vec<SocketAddr> =
            (0..4).map(|r| g.pick(0, &h, 0, None, Balance::RoundRobin, r).unwrap()).collect();
        assert_eq!(got, [a(1), a(2), a(1), a(2)]);
        assert_eq!(Balance::parse("ewma"), Some(Balance::Ewma));
        assert_eq!(Balance::parse("round_robin"), Some(Balance::RoundRobin));
        assert_eq!(Balance::parse("least_conn"), None);
    }

    #[test]
    fn the_pool_is_bounded_and_forgets_stale_connections() {
        let mut p = Pool::new(PoolConfig { max_idle: 2, idle_timeout_ns: 100, max_requests: 5 });
        assert_eq!(p.put(a(1), 1u32, 1, 0), None);
        assert_eq!(p.put(a(1), 2, 5, 0), Some(2), "carried enough requests");
        assert_eq!(p.put(a(2), 3, 1, 50), None);
        assert_eq!(p.put(a(2), 4, 1, 50), Some(4), "full");
        let mut closed = vec![];
        assert_eq!(p.take(&a(1), 120, |c| closed.push(c)), None);
        assert_eq!(closed, [1]);
        assert_eq!(p.take(&a(2), 120, |c| closed.push(c)), Some((3, 1)));
        assert!(p.is_empty());
        p.put(a(2), 5, 1, 0);
        p.expire(0, |x| *x != a(2), |c| closed.push(c));
        assert_eq!(closed, [1, 5]);
        assert!(p.is_empty());
    }
}
