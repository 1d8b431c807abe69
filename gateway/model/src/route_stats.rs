//! What the L7 stage counts per route, and the layout it publishes it in: one row of
//! [`VALUES`] numbers per route, indexed by the route's metrics row ([`crate::route::PathRoute::metric`]),
//! per gateway worker. Control numbers the routes, the workers count into the rows, and control
//! reports each row under its route's labels (Ingress, host, path) as Prometheus counters and
//! histograms, summed over the workers.
//!
//! Row 0 is the requests no route took: Sluice's 404, and heads refused before routing.
//!
//! A row, in order:
//! - responses by status class: none (closed without one), 1xx, 2xx, 3xx, 4xx, 5xx;
//! - response body bytes;
//! - the request duration (head received to response complete): sum in nanoseconds, then one
//!   count per bucket of [`BUCKETS_S`] and one past the last (`+Inf`);
//! - the upstream duration of proxied requests (the last attempt's connect to response
//!   complete): the same;
//! - reserved (zero).
//!
//! The buckets are ingress-nginx's request-duration buckets with two below 5 ms, where a proxy on
//! the same network as its backends answers.
//!
//! Hot path: [`Row::record`] is a few additions and at most 13 comparisons per request.

/// How many rows a worker publishes: route metrics rows are `0..ROWS`.
pub const ROWS: usize = 2048;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS_S: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The same in nanoseconds.
const BUCKETS_NS: [u64; 13] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Counts per histogram: one per bound and `+Inf`.
pub const HISTOGRAM_BUCKETS: usize = BUCKETS_S.len() + 1;

/// Where a row's responses by class begin (index `status / 100`, 0 for none).
pub const RESPONSES: usize = 0;
/// Response body bytes.
pub const RESPONSE_BYTES: usize = 6;
/// The request duration histogram: its sum (ns), then its buckets.
pub const REQUEST_DURATION: usize = 7;
/// The upstream duration histogram: its sum (ns), then its buckets.
pub const UPSTREAM_DURATION: usize = REQUEST_DURATION + 1 + HISTOGRAM_BUCKETS;
/// Values per row (with room for more).
pub const VALUES: usize = 40;

const _: () = assert!(UPSTREAM_DURATION + 1 + HISTOGRAM_BUCKETS <= VALUES);
const _: () = {
    let mut i = 0;
    while i < BUCKETS_S.len() {
        assert!(BUCKETS_S[i] * 1e9 == BUCKETS_NS[i] as f64);
        i += 1;
    }
};

/// The bucket a duration falls in (`HISTOGRAM_BUCKETS - 1`: past the last bound).
#[inline]
pub fn bucket(ns: u64) -> usize {
    BUCKETS_NS.iter().position(|&b| ns <= b).unwrap_or(BUCKETS_NS.len())
}

/// One route's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row(pub [u64; VALUES]);

impl Default for Row {
    fn default() -> Row {
        Row([0; VALUES])
    }
}

impl Row {
    /// Counts one request: its final status (0: none), the response body bytes, how long it
    /// took, and how long its upstream took when it was proxied.
    #[inline]
    pub fn record(&mut self, status: u16, body_bytes: u64, request_ns: u64, upstream_ns: Option<u64>) {
        let v = &mut self.0;
        v[RESPONSES + usize::from(status / 100).min(5)] += 1;
        v[RESPONSE_BYTES] = v[RESPONSE_BYTES].wrapping_add(body_bytes);
        v[REQUEST_DURATION] = v[REQUEST_DURATION].wrapping_add(request_ns);
        v[REQUEST_DURATION + 1 + bucket(request_ns)] += 1;
        if let Some(ns) = upstream_ns {
            v[UPSTREAM_DURATION] = v[UPSTREAM_DURATION].wrapping_add(ns);
            v[UPSTREAM_DURATION + 1 + bucket(ns)] += 1;
        }
    }

    /// Requests counted (every response class).
    pub fn requests(&self) -> u64 {
        self.0[RESPONSES..RESPONSES + 6].iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// A histogram's sum in seconds, its count and its bucket counts (not cumulative):
    /// `at` is [`REQUEST_DURATION`] or [`UPSTREAM_DURATION`].
    pub fn histogram(&self, at: usize) -> (f64, u64, [u64; HISTOGRAM_BUCKETS]) {
        let mut buckets = [0; HISTOGRAM_BUCKETS];
        buckets.copy_from_slice(&self.0[at + 1..at + 1 + HISTOGRAM_BUCKETS]);
        let count = buckets.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        (self.0[at] as f64 / 1e9, count, buckets)
    }

    /// Each value less `base`'s (counts since `base` was read; a value below its base — its
    /// counter started over — is taken whole).
    pub fn since(&self, base: &Row) -> Row {
        let mut out = Row::default();
        for ((o, &v), &b) in out.0.iter_mut().zip(&self.0).zip(&base.0) {
            *o = if v >= b { v - b } else { v };
        }
        out
    }

    /// Adds `other`'s values to this row's.
    pub fn add(&mut self, other: &Row) {
        for (a, &b) in self.0.iter_mut().zip(&other.0) {
            *a = a.wrapping_add(b);
        }
    }
}

/// A row from published values (missing ones are zero, extra ones ignored).
impl From<&[u64]> for Row {
    fn from(values: &[u64]) -> Row {
        let mut r = Row::default();
        for (o, &v) in r.0.iter_mut().zip(values) {
            *o = v;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_first_bucket_they_fit() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000_000), 0);
        assert_eq!(bucket(1_000_001), 1);
        assert_eq!(bucket(10_000_000_000), 12);
        assert_eq!(bucket(10_000_000_001), 13);
        assert_eq!(bucket(u64::MAX), HISTOGRAM_BUCKETS - 1);
    }

    #[test]
    fn a_row_counts_classes_bytes_and_both_histograms() {
        let mut r = Row::default();
        r.record(200, 10, 2_000_000, Some(1_500_000));
        r.record(503, 5, 30_000, None);
        r.record(0, 0, 20_000_000_000, Some(20_000_000_000));
        assert_eq!(r.0[RESPONSES + 2], 1);
        assert_eq!(r.0[RESPONSES + 5], 1);
        assert_eq!(r.0[RESPONSES], 1);
        assert_eq!(r.requests(), 3);
        assert_eq!(r.0[RESPONSE_BYTES], 15);
        let (sum, count, buckets) = r.histogram(REQUEST_DURATION);
        assert_eq!(count, 3);
        assert!((sum - 20.00203).abs() < 1e-9, "{sum}");
        assert_eq!((buckets[0], buckets[1], buckets[13]), (1, 1, 1));
        let (_, count, buckets) = r.histogram(UPSTREAM_DURATION);
        assert_eq!(count, 2);
        assert_eq!((buckets[1], buckets[13]), (1, 1));
        assert!(r.0[UPSTREAM_DURATION + 1 + HISTOGRAM_BUCKETS..].iter().all(|&v| v == 0));
    }

    #[test]
    fn counts_since_a_base_start_over_where_a_counter_did() {
        let mut base = Row::default();
        base.0[2] = 10;
        base.0[3] = 50;
        let mut now = Row::default();
        now.0[2] = 15;
        now.0[3] = 4;
        let d = now.since(&base);
        assert_eq!((d.0[2], d.0[3]), (5, 4));
    }
}
