//! Request limits per client address — `limit-rps`, `limit-rpm`, `limit-connections`,
//! `limit-whitelist` — shared by every worker of the gateway, so a client whose connections
//! land on several workers gets the rate once, not once per worker.
//!
//! # What the proxy calls
//! - Once per gateway: [`Limiter::new`], in an `Arc` every worker holds. It outlives
//!   generations, so a reload does not reset anyone's budget.
//! - Per generation, per Ingress with limits: [`LimitRule::new`] with a [`LimitId`] that stays
//!   the same across generations for the same Ingress ([`LimitId::of_ingress`]).
//! - Per request: [`Limiter::check_rate`] (a refused request gets **503**, as ingress-nginx's
//!   `limit-req-status-code` default), and [`Limiter::acquire`] when the rule limits
//!   connections: it gives a [`ConnGuard`] to keep until the response is complete (dropping it
//!   releases the place) or refuses (**503**). Like nginx's `limit_conn`, what is counted is
//!   requests in progress per client, which over HTTP/1.1 is its busy connections.
//!
//! # The arithmetic (GCRA, nginx's `limit_req … burst=B nodelay`)
//! A rate of `r` per second is an emission interval `T = 1 s / r` (`60 s / r` per minute); the
//! burst is `B = r × limit-burst-multiplier` (ingress-nginx's own formula, for rps and rpm
//! alike). Each slot holds one number, the theoretical arrival time `TAT`. A request at `now`
//! is allowed when `max(TAT, now) − now ≤ B·T`, and then `TAT = max(TAT, now) + T`; a refused
//! request changes nothing (no delay, nothing queued: nginx's `nodelay`). So a client idle long
//! enough gets `B + 1` requests at once, then one per `T`. nginx's `excess` arithmetic gives
//! the same to a client it has not seen for a minute, and one request fewer (`B`) to one that
//! came back within the minute after its excess drained: that one request is the difference.
//! With both rps and rpm, a request must pass both; one that passes rps and fails rpm is
//! refunded to the rps slot (nginx commits neither when one refuses), best effort.
//!
//! # Collisions fail safe
//! The table has a fixed number of slots, and a slot is picked by a keyed hash (SipHash-2-4
//! with the gateway's secret: no client can choose addresses that land on another's slot) of
//! (the rule's identity, rps or rpm or connections, the client address). There is no tag: two
//! clients whose hashes collide **share one budget** — together they get one client's rate, or
//! one client's connections. They are limited more, never less. A slot only carries over what
//! the last `B·T` seconds left in it, so only clients busy in the same few seconds can meet.
//! With `n` clients busy at once and `S` slots, a client shares its slot with probability about
//! `n / S`: the default 2^20 rate slots (8 MiB) keep that under 1 % for 10,000 busy clients;
//! size [`LimiterConfig`] for more.
//!
//! # Time
//! `now_ns` is the caller's monotonic clock (`CLOCK_MONOTONIC`), the same on every worker. A
//! worker whose reading lags another's is judged as if early, which is stricter, never looser.
//!
//! # Known limits
//! - Per gateway, like ingress-nginx's per replica: two gateways do not share budgets.
//! - Addresses are the TCP peer's (an IPv4-mapped IPv6 peer counts as its IPv4 address); an
//!   IPv6 client holding a /64 has 2^64 addresses, as with ingress-nginx's `$binary_remote_addr`.
//!
//! Hot path: [`Limiter::check_rate`] and [`Limiter::acquire`] take no lock and allocate
//! nothing (an atomic compare-and-swap loop on one word per rate, one for the connections).
//! No `unsafe`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sluice_model::policy::{Cidr, DEFAULT_BURST_MULTIPLIER, Limits};

use super::{Sip, SipKey, hash_ip};

const SECOND_NS: u64 = 1_000_000_000;

/// The sizes of a [`Limiter`]'s tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Rate slots (rounded up to a power of two): 8 bytes each.
    pub rate_slots: usize,
    /// Connection slots (rounded up to a power of two): 4 bytes each.
    pub connection_slots: usize,
}

impl LimiterConfig {
    /// 2^20 rate slots (8 MiB) and 2^18 connection slots (1 MiB); pages never touched cost
    /// nothing.
    pub const DEFAULT: LimiterConfig = LimiterConfig { rate_slots: 1 << 20, connection_slots: 1 << 18 };
}

impl Default for LimiterConfig {
    fn default() -> LimiterConfig {
        LimiterConfig::DEFAULT
    }
}

/// Which Ingress a rule belongs to: clients are counted per Ingress, as ingress-nginx counts
/// them per zone. The same Ingress must get the same id in every generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitId(pub u64);

impl LimitId {
    /// The id of an Ingress, from its namespace and name.
    pub fn of_ingress(namespace: &str, name: &str) -> LimitId {
        let mut h = Sip::new(&SipKey::new(*b"sluice limit ids"));
        h.write_field(namespace.as_bytes());
        h.write_field(name.as_bytes());
        LimitId(h.finish())
    }
}

/// A rate as GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// `T`: one request's share of time.
    pub interval_ns: u64,
    /// `B·T`: how far ahead of `now` the TAT may be before a request is refused.
    pub tolerance_ns: u64,
}

impl Gcra {
    /// `limit` requests per `period_ns`, burst `limit × multiplier` (0 counts as the default
    /// 5; a burst of at least one).
    pub fn new(limit: u32, period_ns: u64, multiplier: u32) -> Gcra {
        let limit = u64::from(limit.max(1));
        let multiplier = if multiplier == 0 { DEFAULT_BURST_MULTIPLIER } else { multiplier };
        let interval_ns = (period_ns / limit).max(1);
        let burst = limit.saturating_mul(u64::from(multiplier)).max(1);
        Gcra { interval_ns, tolerance_ns: interval_ns.saturating_mul(burst) }
    }

    /// One request at `now_ns` against a slot's TAT: the new TAT if allowed.
    #[inline]
    pub fn admit(&self, tat_ns: u64, now_ns: u64) -> Option<u64> {
        let tat = tat_ns.max(now_ns);
        (tat - now_ns <= self.tolerance_ns).then(|| tat.saturating_add(self.interval_ns))
    }
}

/// One Ingress's limits, ready to apply. Made per generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    id: LimitId,
    rps: Option<Gcra>,
    rpm: Option<Gcra>,
    connections: Option<u32>,
    whitelist: Box<[Cidr]>,
}

impl LimitRule {
    /// The rule for an Ingress's [`Limits`]; `None` when it sets none.
    pub fn new(id: LimitId, limits: &Limits) -> Option<LimitRule> {
        if !limits.any() {
            return None;
        }
        Some(LimitRule {
            id,
            rps: limits.rps.map(|r| Gcra::new(r, SECOND_NS, limits.burst_multiplier)),
            rpm: limits.rpm.map(|r| Gcra::new(r, 60 * SECOND_NS, limits.burst_multiplier)),
            connections: limits.connections,
            whitelist: limits.whitelist.clone().into(),
        })
    }

    /// Whether `client` is on the rule's `limit-whitelist`.
    pub fn exempts(&self, client: IpAddr) -> bool {
        self.whitelist.iter().any(|c| c.contains(client))
    }

    /// Whether it limits concurrent connections (then call [`Limiter::acquire`]).
    pub fn limits_connections(&self) -> bool {
        self.connections.is_some()
    }
}

/// The answer of [`Limiter::check_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the rate (or the rule has no rate).
    Allowed,
    /// On the whitelist: not counted.
    Exempt,
    /// Over: 503.
    Refused,
}

/// Over `limit-connections`: 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections;

/// The gateway's limit table (see the module documentation). Every worker holds an
/// `Arc<Limiter>`.
pub struct Limiter {
    key: SipKey,
    /// TATs, 0 when never used (any TAT before `now` means the same: a full budget).
    rate: Box<[AtomicU64]>,
    /// Requests in progress.
    conns: Box<[AtomicU32]>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the slots: millions of numbers.
        f.debug_struct("Limiter")
            .field("rate_slots", &self.rate.len())
            .field("connection_slots", &self.conns.len())
            .finish_non_exhaustive()
    }
}

const KIND_RPS: u8 = 1;
const KIND_RPM: u8 = 2;
const KIND_CONN: u8 = 3;

impl Limiter {
    /// Allocates the tables; `key` is the gateway's secret.
    pub fn new(config: LimiterConfig, key: &SipKey) -> Limiter {
        let rate = config.rate_slots.max(1).next_power_of_two();
        let conns = config.connection_slots.max(1).next_power_of_two();
        Limiter {
            key: key.derive(b"limiter"),
            rate: (0..rate).map(|_| AtomicU64::new(0)).collect(),
            conns: (0..conns).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn slot(&self, id: LimitId, kind: u8, client: IpAddr, len: usize) -> usize {
        let mut h = Sip::new(&self.key);
        h.write(&id.0.to_le_bytes());
        h.write(&[kind]);
        hash_ip(&mut h, client);
        // `len` is a power of two.
        (h.finish() as usize) & (len - 1)
    }

    /// Counts a request of `client` against the rule's rates at `now_ns`.
    pub fn check_rate(&self, rule: &LimitRule, client: IpAddr, now_ns: u64) -> RateVerdict {
        if rule.rps.is_none() && rule.rpm.is_none() {
            return RateVerdict::Allowed;
        }
        if rule.exempts(client) {
            return RateVerdict::Exempt;
        }
        let rps = rule.rps.map(|g| (g, &self.rate[self.slot(rule.id, KIND_RPS, client, self.rate.len())]));
        if let Some((g, slot)) = rps
            && !take(slot, &g, now_ns)
        {
            return RateVerdict::Refused;
        }
        if let Some(g) = rule.rpm {
            let slot = &self.rate[self.slot(rule.id, KIND_RPM, client, self.rate.len())];
            if !take(slot, &g, now_ns) {
                if let Some((g, slot)) = rps {
                    // Relaxed: the slot is the whole state; no other memory depends on it.
                    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                        Some(tat.saturating_sub(g.interval_ns))
                    });
                }
                return RateVerdict::Refused;
            }
        }
        RateVerdict::Allowed
    }

    /// Takes one of `client`'s places under the rule's `limit-connections`: `Ok(Some(guard))`
    /// to hold until the request is done, `Ok(None)` when the rule sets no such limit or the
    /// client is exempt, `Err` when the client already has as many as allowed.
    pub fn acquire(
        self: &Arc<Self>,
        rule: &LimitRule,
        client: IpAddr,
    ) -> Result<Option<ConnGuard>, TooManyConnections> {
        let Some(max) = rule.connections else { return Ok(None) };
        if rule.exempts(client) {
            return Ok(None);
        }
        let slot = self.slot(rule.id, KIND_CONN, client, self.conns.len());
        // Relaxed: the counter is the whole state; the guard's release is a decrement of it.
        self.conns[slot]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .map_err(|_| TooManyConnections)?;
        Ok(Some(ConnGuard { limiter: Arc::clone(self), slot }))
    }

    /// Requests in progress counted in `client`'s slot of the rule (for tests and status).
    pub fn connections(&self, rule: &LimitRule, client: IpAddr) -> u32 {
        self.conns[self.slot(rule.id, KIND_CONN, client, self.conns.len())].load(Ordering::Relaxed)
    }
}

/// One GCRA step on a slot: a compare-and-swap loop, so concurrent requests of one client on
/// several workers each see the TAT the others left.
#[inline]
fn take(slot: &AtomicU64, g: &Gcra, now_ns: u64) -> bool {
    // Relaxed: the TAT is the whole state and the CAS orders the updates of this one word.
    slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| g.admit(tat, now_ns)).is_ok()
}

/// A place under `limit-connections`, given back when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    limiter: Arc<Limiter>,
    slot: usize,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // Relaxed: see `Limiter::acquire`. Never below zero: this guard's increment is in it.
        self.limiter.conns[self.slot].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn limiter() -> Arc<Limiter> {
        Arc::new(Limiter::new(
            LimiterConfig { rate_slots: 1 << 12, connection_slots: 1 << 10 },
            &SipKey::new([3; 16]),
        ))
    }

    fn limits(rps: Option<u32>, rpm: Option<u32>, conns: Option<u32>, multiplier: u32) -> Limits {
        Limits { rps, rpm, connections: conns, burst_multiplier: multiplier, whitelist: Vec::new() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (description, limits, requests as (time in ms, how many), allowed of each).
    type Row = (&'static str, Limits, &'static [(u64, u32)], &'static [u32]);

    #[test]
    fn rates_as_ingress_nginx_sets_them() {
        let rows: &[Row] = &[
            // rps 2 × 5: burst 10, so 11 at once, then one per 500 ms.
            (
                "rps burst",
                limits(Some(2), None, None, 5),
                &[(0, 20), (499, 1), (500, 1), (1000, 3)],
                &[11, 0, 1, 1],
            ),
            ("rps refill", limits(Some(2), None, None, 5), &[(0, 11), (5500, 20)], &[11, 11]),
            // rpm 60 × 1: burst 60, 61 at once, then one a second.
            (
                "rpm",
                limits(None, Some(60), None, 1),
                &[(0, 100), (999, 1), (1000, 1), (3000, 5)],
                &[61, 0, 1, 2],
            ),
            // Both: the tighter wins, and rpm's refusals refund rps.
            ("both", limits(Some(10), Some(6), None, 1), &[(0, 20), (1000, 20), (10_000, 20)], &[7, 0, 1]),
            // The refund shows: rpm refuses at 59.999 s what rps let through; without the refund
            // rps would then refuse the request at 60 s that rpm allows.
            ("refund", limits(Some(1), Some(1), None, 1), &[(0, 2), (59_999, 2), (60_000, 1)], &[2, 0, 1]),
            // A multiplier of 0 is the default 5.
            ("default multiplier", limits(Some(1), None, None, 0), &[(0, 10)], &[6]),
            // Only a connection limit: no rate.
            ("no rate", limits(None, None, Some(1), 5), &[(0, 1000)], &[1000]),
        ];
        for (what, l, requests, want) in rows {
            let lim = limiter();
            let rule = LimitRule::new(LimitId(1), l).unwrap();
            let t0 = 1_000 * MS;
            for ((at, n), want) in requests.iter().zip(*want) {
                let got = (0..*n)
                    .filter(|_| lim.check_rate(&rule, ip("192.0.2.1"), t0 + at * MS) == RateVerdict::Allowed)
                    .count();
                assert_eq!(got, *want as usize, "{what}: {n} at {at} ms");
            }
        }
    }

    #[test]
    fn clients_rules_and_the_whitelist_are_apart() {
        let lim = limiter();
        let mut l = limits(Some(1), None, None, 1);
        l.whitelist = vec![Cidr::parse("198.51.100.0/24").unwrap()];
        let a = LimitRule::new(LimitId::of_ingress("ns", "a"), &l).unwrap();
        let b = LimitRule::new(LimitId::of_ingress("ns", "b"), &l).unwrap();
        let count = |rule: &LimitRule, client: &str| {
            (0..10).filter(|_| lim.check_rate(rule, ip(client), 0) == RateVerdict::Allowed).count()
        };
        assert_eq!(count(&a, "192.0.2.1"), 2);
        assert_eq!(count(&a, "192.0.2.2"), 2);
        // The same client under another Ingress: its own budget.
        assert_eq!(count(&b, "192.0.2.1"), 2);
        // Its IPv4-mapped spelling is the same client.
        assert_eq!(count(&a, "::ffff:192.0.2.1"), 0);
        assert_eq!(lim.check_rate(&a, ip("198.51.100.7"), 0), RateVerdict::Exempt);
        assert_eq!(LimitRule::new(LimitId(1), &Limits::default()), None);
        assert_eq!(format!("{lim:?}"), "Limiter { rate_slots: 4096, connection_slots: 1024, .. }");
    }

    #[test]
    fn threads_share_one_clients_budget() {
        // 4 threads, each 2,000 requests of one client with the clock stopped: exactly B + 1
        // pass in all, whoever sends them.
        let lim = limiter();
        let rule = Arc::new(LimitRule::new(LimitId(9), &limits(Some(10), None, None, 5)).unwrap());
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (lim, rule) = (Arc::clone(&lim), Arc::clone(&rule));
                    s.spawn(move || {
                        (0..2000)
                            .filter(|_| {
                                lim.check_rate(&rule, ip("192.0.2.9"), 7 * MS) == RateVerdict::Allowed
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 51);
    }

    #[test]
    fn threads_with_moving_clocks_stay_within_the_rate() {
        // Each thread's clock advances 1 ms per request, not in step with the others'. GCRA
        // bounds what passes by the latest reading: TAT rises by T per request allowed and
        // never passes that reading + B·T + T, so over 999 ms at most 51 + 9.99; and nothing
        // is refused before TAT passes the earliest reading + B·T (over 40 allowed).
        let lim = limiter();
        let rule = Arc::new(LimitRule::new(LimitId(9), &limits(Some(10), None, None, 5)).unwrap());
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let (lim, rule) = (Arc::clone(&lim), Arc::clone(&rule));
                    s.spawn(move || {
                        (0..1000u64)
                            .filter(|i| {
                                lim.check_rate(&rule, ip("192.0.2.9"), 5_000 * MS + i * MS + t)
                                    == RateVerdict::Allowed
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!((41..=60).contains(&allowed), "{allowed}");
    }

    #[test]
    fn connections_never_exceed_the_limit_across_threads() {
        let lim = limiter();
        let rule = Arc::new(LimitRule::new(LimitId(4), &limits(None, None, Some(3), 5)).unwrap());
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let refused: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (lim, rule, inside, most) =
                        (Arc::clone(&lim), Arc::clone(&rule), inside.clone(), most.clone());
                    s.spawn(move || {
                        let mut refused = 0;
                        for _ in 0..2000 {
                            match lim.acquire(&rule, ip("2001:db8::1")) {
                                Ok(Some(guard)) => {
                                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                                    most.fetch_max(n, Ordering::SeqCst);
                                    std::hint::spin_loop();
                                    inside.fetch_sub(1, Ordering::SeqCst);
                                    drop(guard);
                                }
                                Ok(None) => panic!("the rule limits connections"),
                                Err(TooManyConnections) => refused += 1,
                            }
                        }
                        refused
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!(most.load(Ordering::SeqCst) <= 3, "{}", most.load(Ordering::SeqCst));
        assert_eq!(lim.connections(&rule, ip("2001:db8::1")), 0, "every guard gave its place back");
        let _ = refused;
        // One at a time: the fourth is refused, a release lets one in.
        let held: Vec<_> = (0..3).map(|_| lim.acquire(&rule, ip("2001:db8::1")).unwrap().unwrap()).collect();
        assert_eq!(lim.acquire(&rule, ip("2001:db8::1")).unwrap_err(), TooManyConnections);
        assert!(lim.acquire(&rule, ip("2001:db8::2")).unwrap().is_some(), "another client");
        drop(held);
        assert_eq!(lim.connections(&rule, ip("2001:db8::1")), 0);
    }

    /// The oracle: a leaky bucket meter in exact arithmetic — a level that drains 1 ns per ns
    /// and rises by `T` per request allowed, which must stay within `(B + 1)·T`.
    struct Meter {
        level: u128,
        at: u128,
        interval: u128,
        capacity: u128,
    }

    impl Meter {
        fn offer(&mut self, now: u128) -> bool {
            let now = now.max(self.at);
            self.level = self.level.saturating_sub(now - self.at);
            self.at = now;
            if self.level + self.interval <= self.capacity {
                self.level += self.interval;
                true
            } else {
                false
            }
        }
    }

    proptest! {
        #[test]
        fn gcra_matches_the_leaky_bucket(
            rate in 1u32..2000,
            multiplier in 1u32..8,
            per_minute in any::<bool>(),
            gaps in proptest::collection::vec(0u64..3_000_000_000, 1..200),
        ) {
            let period = if per_minute { 60 * SECOND_NS } else { SECOND_NS };
            let g = Gcra::new(rate, period, multiplier);
            let burst = u128::from(rate) * u128::from(multiplier);
            let mut meter = Meter {
                level: 0,
                at: 0,
                interval: u128::from(g.interval_ns),
                capacity: (burst + 1) * u128::from(g.interval_ns),
            };
            let slot = AtomicU64::new(0);
            let (mut now, mut allowed) = (1u64, 0u128);
            for gap in gaps {
                now += gap;
                let got = take(&slot, &g, now);
                prop_assert_eq!(got, meter.offer(u128::from(now)), "at {}", now);
                allowed += u128::from(got);
                // And the rate itself: B + 1 plus one per T elapsed.
                prop_assert!(allowed <= burst + 1 + u128::from(now) / u128::from(g.interval_ns));
            }
        }
    }
}
