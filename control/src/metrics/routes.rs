//! Metrics per L7 route: control numbers the routes of every table it publishes (each route's
//! metrics row, `sluice_model::route_stats`), the gateway's workers count each request in its
//! route's row, and a scrape reports each row, summed over the workers, under the labels of the
//! route it stands for.
//!
//! **Rows.** A route (Ingress, host, path and type, Service) keeps its row for as long as it is
//! in the table. A new route takes a row never used by this control process, else the row of
//! the route that left the table longest ago. Row 0 is for requests no route took. Past
//! `ROWS - 1` routes at once, the rest share row 0 and [`RouteRows::unnumbered`] says how many.
//!
//! **Starting over.** A row's counts in the table file may predate its route: left by the route
//! that had it before, or by another control process (this one restarted on the same file). So
//! whenever a row is given to a route, control reads what every worker has counted in it so far
//! — its base — and reports only what was counted since. A worker whose counts fall below its
//! base (a gateway that restarted and took the record) is reported whole. The counts that land
//! between a route leaving and its row's next use, and the up to 100 ms a worker takes to
//! publish, are the only ones that can be misattributed.
//!
//! Not hot path: once per publication and once per scrape. No `unsafe`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Unit;
use sluice_model::l7::L7Table;
use sluice_model::route::{Backend, HostRule, RouteKey};
use sluice_model::route_stats::{
    self, BUCKETS_S, REQUEST_DURATION, RESPONSE_BYTES, ROWS, Row, UPSTREAM_DURATION,
};

/// What every worker has counted in one row: (reader record, process id, values).
pub type WorkerRows = Vec<(usize, u64, Row)>;

/// The labels a row is reported under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteLabels {
    /// The Ingress's namespace.
    pub namespace: String,
    /// The Ingress's name.
    pub ingress: String,
    /// The host rule (`*.example.com` for a wildcard, empty for any host).
    pub host: String,
    /// The path as declared; empty for a default backend.
    pub path: String,
    /// `Exact`, `Prefix` or `ImplementationSpecific`; empty for a default backend.
    pub path_type: String,
    /// The Service's name (empty when the backend is unavailable).
    pub service: String,
}

impl RouteLabels {
    fn of(key: &RouteKey<'_>) -> RouteLabels {
        RouteLabels {
            namespace: key.ingress.namespace.clone(),
            ingress: key.ingress.name.clone(),
            host: match key.host {
                HostRule::Any => String::new(),
                h => h.to_string(),
            },
            path: key.path.map(|(_, p)| p.as_str().to_owned()).unwrap_or_default(),
            path_type: key.path.map(|(t, _)| t.name().to_owned()).unwrap_or_default(),
            service: match key.backend {
                Backend::Service(s) => s.name.clone(),
                Backend::Unavailable(_) => String::new(),
            },
        }
    }

    /// Requests no route took.
    fn none() -> RouteLabels {
        RouteLabels {
            namespace: String::new(),
            ingress: String::new(),
            host: String::new(),
            path: String::new(),
            path_type: String::new(),
            service: String::new(),
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("namespace", &self.namespace),
            ("ingress", &self.ingress),
            ("host", &self.host),
            ("path", &self.path),
            ("path_type", &self.path_type),
            ("service", &self.service),
        ]
    }
}

/// The rows given to routes, and their bases.
#[derive(Debug)]
pub struct RouteRows {
    /// Rows by the labels of the route that has them (row 0 excepted).
    rows: HashMap<RouteLabels, u16>,
    /// Labels by row; `None` for a row no route has.
    labels: Vec<Option<RouteLabels>>,
    /// Rows whose route left, oldest first.
    free: VecDeque<u16>,
    /// The next row never given.
    fresh: u16,
    /// What each worker had counted in a row when it was given: `(record, pid) → values`.
    bases: HashMap<u16, HashMap<(usize, u64), Row>>,
    /// Routes of the last table left without a row of their own.
    unnumbered: usize,
    /// Row 0's base has been read (at the first numbering).
    started: bool,
}

impl Default for RouteRows {
    fn default() -> RouteRows {
        let mut labels = vec![None; ROWS];
        labels[0] = Some(RouteLabels::none());
        RouteRows {
            rows: HashMap::new(),
            labels,
            free: VecDeque::new(),
            fresh: 1,
            bases: HashMap::new(),
            unnumbered: 0,
            started: false,
        }
    }
}

impl RouteRows {
    /// Numbers the routes of `l7`: each keeps its row, a new one takes a free row, whose base is
    /// read with `read(row)`; rows of routes no longer there are freed.
    pub fn number(&mut self, l7: &mut L7Table, read: impl Fn(u16) -> WorkerRows) {
        if !self.started {
            self.started = true;
            self.set_base(0, &read);
        }
        // Rows of routes gone are freed first, so a route that replaces one can take its row.
        let mut live = HashSet::new();
        l7.routes.number_routes(|key| {
            live.insert(RouteLabels::of(&key));
            0
        });
        let gone: Vec<RouteLabels> = self.rows.keys().filter(|l| !live.contains(*l)).cloned().collect();
        for labels in gone {
            if let Some(row) = self.rows.remove(&labels) {
                self.labels[usize::from(row)] = None;
                self.bases.remove(&row);
                self.free.push_back(row);
            }
        }
        let mut unnumbered = 0;
        let mut given = Vec::new();
        l7.routes.number_routes(|key| {
            let labels = RouteLabels::of(&key);
            if let Some(&row) = self.rows.get(&labels) {
                return row;
            }
            match self.take_row() {
                Some(row) => {
                    self.labels[usize::from(row)] = Some(labels.clone());
                    self.rows.insert(labels, row);
                    given.push(row);
                    row
                }
                None => {
                    unnumbered += 1;
                    0
                }
            }
        });
        for row in given {
            self.set_base(row, &read);
        }
        self.unnumbered = unnumbered;
    }

    /// Routes of the last table that share row 0 for want of a row.
    pub fn unnumbered(&self) -> usize {
        self.unnumbered
    }

    fn take_row(&mut self) -> Option<u16> {
        if usize::from(self.fresh) < ROWS {
            self.fresh += 1;
            return Some(self.fresh - 1);
        }
        self.free.pop_front()
    }

    fn set_base(&mut self, row: u16, read: &impl Fn(u16) -> WorkerRows) {
        let base = read(row).into_iter().map(|(record, pid, v)| ((record, pid), v)).collect();
        self.bases.insert(row, base);
    }

    /// Each numbered row's labels and its counts since its base, summed over the workers.
    pub fn report(&self, read: impl Fn(u16) -> WorkerRows) -> Vec<(&RouteLabels, Row)> {
        let mut out = Vec::new();
        for (row, labels) in self.labels.iter().enumerate() {
            let Some(labels) = labels else { continue };
            let row = row as u16;
            let bases = self.bases.get(&row);
            let mut sum = Row::default();
            for (record, pid, v) in read(row) {
                match bases.and_then(|b| b.get(&(record, pid))) {
                    Some(base) => sum.add(&v.since(base)),
                    None => sum.add(&v),
                }
            }
            out.push((labels, sum));
        }
        out.sort_by(|a, b| a.0.pairs().cmp(&b.0.pairs()));
        out
    }
}

/// The status classes of [`route_stats::RESPONSES`], as labels.
const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Encodes the L7 families: requests by status class, response bytes, request and upstream
/// duration histograms, each per route.
pub fn encode(
    rows: &[(&RouteLabels, Row)],
    unnumbered: usize,
    enc: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let help = "L7 requests by route (Ingress, host, path) and status class (none: closed without a response). \
                Empty labels: requests no route took (Sluice's 404, heads refused before routing).";
    let mut m = enc.encode_descriptor("sluice_l7_requests", help, None, MetricType::Counter)?;
    for (labels, row) in rows {
        for (class, name) in CLASSES.iter().enumerate() {
            let n = row.0[route_stats::RESPONSES + class];
            if n == 0 {
                continue;
            }
            let p = labels.pairs();
            let with = [p[0], p[1], p[2], p[3], p[4], p[5], ("status", *name)];
            ConstCounter::new(n).encode(m.encode_family(&with)?)?;
        }
    }
    let help = "Response body bytes sent to clients, by route.";
    let mut m = enc.encode_descriptor("sluice_l7_response", help, Some(&Unit::Bytes), MetricType::Counter)?;
    for (labels, row) in rows {
        ConstCounter::new(row.0[RESPONSE_BYTES]).encode(m.encode_family(&labels.pairs())?)?;
    }
    for (name, at, help) in [
        (
            "sluice_l7_request_duration",
            REQUEST_DURATION,
            "From a request's head received to its response complete (or the connection closed), by route.",
        ),
        (
            "sluice_l7_upstream_duration",
            UPSTREAM_DURATION,
            "From the last upstream attempt's connect to the response complete, by route (proxied requests only).",
        ),
    ] {
        let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (labels, row) in rows {
            let (sum, count, counts) = row.histogram(at);
            let buckets: Vec<(f64, u64)> =
                BUCKETS_S.iter().copied().chain([f64::INFINITY]).zip(counts).collect();
            m.encode_family(&labels.pairs())?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    let help = "Routes of the published table counted with the requests no route took: more routes than metrics rows.";
    let m = enc.encode_descriptor("sluice_control_routes_unnumbered", help, None, MetricType::Gauge)?;
    prometheus_client::metrics::gauge::ConstGauge::new(unnumbered as u64).encode(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::route::{
        Backend, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath, RuleSpec,
        ServiceBackend, ServicePort,
    };
    use std::cell::RefCell;

    fn table(paths: &[&str]) -> L7Table {
        let svc = Backend::Service(ServiceBackend {
            namespace: "shop".into(),
            name: "web".into(),
            port: ServicePort::Number(80),
        });
        let spec = IngressSpec {
            policy: Default::default(),
            canary: None,
            dialect: Default::default(),
            id: IngressRef::new("shop", "web"),
            created_unix_s: None,
            default_backend: Some(svc.clone()),
            rules: vec![RuleSpec {
                host: HostRule::new(Some("shop.example")).unwrap(),
                paths: paths
                    .iter()
                    .map(|p| PathSpec {
                        path_type: PathType::Prefix,
                        path: RulePath::new(p).unwrap(),
                        backend: svc.clone(),
                    })
                    .collect(),
            }],
        };
        L7Table { routes: RouteTable::compile(&[spec]), ..L7Table::default() }
    }

    fn rows_of(t: &L7Table) -> Vec<(String, u16)> {
        let mut out = Vec::new();
        for h in t.routes.hosts() {
            for p in &h.paths {
                out.push((p.path.as_str().to_owned(), p.metric));
            }
            if let Some(d) = &h.default_backend {
                out.push(("default".into(), d.metric));
            }
        }
        out
    }

    /// A fake table file: what one worker (record 0, pid 7) has counted per row.
    #[derive(Default)]
    struct Counted(RefCell<HashMap<u16, Row>>);

    impl Counted {
        fn add(&self, row: u16, requests: u64) {
            let mut m = self.0.borrow_mut();
            let r = m.entry(row).or_default();
            for _ in 0..requests {
                r.record(200, 1, 1000, Some(500));
            }
        }
        fn read(&self, row: u16) -> WorkerRows {
            self.0.borrow().get(&row).map(|r| vec![(0, 7, *r)]).unwrap_or_default()
        }
    }

    #[test]
    fn routes_keep_their_rows_and_a_new_route_reports_only_its_own_requests() {
        let counted = Counted::default();
        // What a previous control left in the file, in rows this one is about to give.
        counted.add(0, 5);
        counted.add(1, 3);
        let mut rows = RouteRows::default();
        let mut t = table(&["/a", "/b"]);
        rows.number(&mut t, |r| counted.read(r));
        let first = rows_of(&t);
        assert_eq!(first.iter().map(|(_, r)| *r).collect::<HashSet<_>>().len(), 3, "{first:?}");
        assert!(first.iter().all(|(_, r)| *r != 0));
        let report = rows.report(|r| counted.read(r));
        assert!(report.iter().all(|(_, row)| row.requests() == 0), "old counts are not reported: {report:?}");
        // Counts since are.
        let a = first.iter().find(|(p, _)| p == "/a").unwrap().1;
        counted.add(a, 2);
        counted.add(0, 1);
        let report = rows.report(|r| counted.read(r));
        let of = |path: &str| report.iter().find(|(l, _)| l.path == path).map(|(_, r)| r.requests());
        assert_eq!((of("/a"), of("/b"), of("")), (Some(2), Some(0), Some(1)));
        let none = report.iter().find(|(l, _)| l.ingress.is_empty()).unwrap();
        assert_eq!(none.1.requests(), 1);
        // The same routes again: the same rows. One gone, one new: the new takes a fresh row.
        let mut t = table(&["/a", "/b"]);
        rows.number(&mut t, |r| counted.read(r));
        assert_eq!(rows_of(&t), first);
        let mut t = table(&["/a", "/c"]);
        rows.number(&mut t, |r| counted.read(r));
        let now = rows_of(&t);
        let c = now.iter().find(|(p, _)| p == "/c").unwrap().1;
        assert!(!first.iter().any(|(_, r)| *r == c), "a fresh row: {now:?}");
        assert_eq!(now.iter().find(|(p, _)| p == "/a").unwrap().1, a);
        let report = rows.report(|r| counted.read(r));
        assert!(report.iter().all(|(l, _)| l.path != "/b"), "a route gone is not reported");
    }

    #[test]
    fn rows_run_out_then_the_longest_free_is_reused_from_zero() {
        let counted = Counted::default();
        // Every fresh row used up but two.
        let mut rows = RouteRows { fresh: (ROWS - 2) as u16, ..RouteRows::default() };
        let mut t = table(&["/a"]); // /a and the default backend: the last two fresh rows
        rows.number(&mut t, |r| counted.read(r));
        let a = rows_of(&t)[0].1;
        counted.add(a, 4);
        // /a leaves, /b and /c come: /b takes /a's row (its counts not reported), /c none.
        let mut t = table(&["/b", "/c"]);
        rows.number(&mut t, |r| counted.read(r));
        let now = rows_of(&t);
        assert_eq!(now.iter().filter(|(_, r)| *r == a).count(), 1, "{now:?}");
        assert_eq!(now.iter().filter(|(_, r)| *r == 0).count(), 1, "{now:?}");
        assert_eq!(rows.unnumbered(), 1);
        let report = rows.report(|r| counted.read(r));
        assert!(report.iter().all(|(_, row)| row.requests() == 0), "{report:?}");
        // A gateway that restarted (its record's counts below the base) is reported whole.
        counted.0.borrow_mut().insert(a, Row::default());
        counted.add(a, 1);
        let report = rows.report(|r| counted.read(r));
        assert_eq!(report.iter().map(|(_, r)| r.requests()).sum::<u64>(), 1);
    }

    #[test]
    fn the_page_names_each_route_with_its_classes_bytes_and_histograms() {
        let counted = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<u16, Row>::new()));
        let source = counted.clone();
        let metrics = crate::metrics::Metrics::with_routes(Vec::new, move |row| {
            source.lock().unwrap().get(&row).map(|r| vec![(0, 7, *r)]).unwrap_or_default()
        });
        let mut t = table(&["/a"]);
        metrics.number_routes(&mut t);
        let a = rows_of(&t)[0].1;
        {
            let mut c = counted.lock().unwrap();
            let r = c.entry(a).or_default();
            r.record(200, 100, 2_000_000, Some(1_000_000));
            r.record(502, 20, 30_000_000, Some(29_000_000));
            c.entry(0).or_default().record(404, 9, 50_000, None);
        }
        let page = metrics.render();
        let labels = r#"namespace="shop",ingress="web",host="shop.example",path="/a",path_type="Prefix",service="web""#;
        for line in [
            format!("sluice_l7_requests_total{{{labels},status=\"2xx\"}} 1\n"),
            format!("sluice_l7_requests_total{{{labels},status=\"5xx\"}} 1\n"),
            format!("sluice_l7_response_bytes_total{{{labels}}} 120\n"),
            format!("sluice_l7_request_duration_seconds_count{{{labels}}} 2\n"),
            format!("sluice_l7_request_duration_seconds_bucket{{{labels},le=\"0.0025\"}} 1\n"),
            format!("sluice_l7_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2\n"),
            format!("sluice_l7_upstream_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1\n"),
            format!("sluice_l7_upstream_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2\n"),
            r#"sluice_l7_requests_total{namespace="",ingress="",host="",path="",path_type="",service="",status="4xx"} 1"#.to_owned() + "\n",
            "sluice_control_routes_unnumbered 0\n".to_owned(),
        ] {
            assert!(page.contains(&line), "{line}\n{page}");
        }
        let sum = page
            .lines()
            .find(|l| l.starts_with(&format!("sluice_l7_request_duration_seconds_sum{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse::<f64>().unwrap())
            .unwrap();
        assert!((sum - 0.032).abs() < 1e-9, "{sum}");
        assert_eq!(page.matches("# TYPE sluice_l7_request_duration_seconds histogram").count(), 1, "{page}");
    }
}
