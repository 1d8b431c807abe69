//! Metrics: control's own figures and every gateway worker's counters, encoded by
//! `prometheus-client` in the Prometheus text format, version 0.0.4
//! (`text/plain; version=0.0.4; charset=utf-8`), and served over HTTP by [`server`].
//!
//! **Why 0.0.4 and not OpenMetrics**: it is what control served before, so a scraper, the
//! dashboard and the tests read the same lines (`# TYPE sluice_gateway_drops_total counter`
//! included — OpenMetrics would name the family `sluice_gateway_drops` and end the page with
//! `# EOF`); every Prometheus-compatible scraper reads it, and nothing here needs what OpenMetrics
//! adds (exemplars, created timestamps).
//!
//! **Why a collector**: the workers' counters live in the table file's stats region, owned and
//! incremented by the workers, not by control; `prometheus-client`'s own counters are monotonic
//! values that the registry owns, which would have to be kept in step by adding deltas and would
//! keep reporting a worker that has gone. [`Metrics`] is instead a
//! [`Collector`]: at every scrape it reads the stats region and control's figures, and encodes
//! them as constant counters and gauges. Control's figures are read together under one lock, so a
//! scrape never pairs one publication's generation with another's service count.
//!
//! Names: `sluice_gateway_<counter>_total{worker="<pid>/<n>"}` for every
//! [`sluice_model::Counter`], `sluice_gateway_drops_total{worker=…,reason="<reason>"}` for every
//! [`sluice_model::DropReason`] (each one's `help()` is the HELP text),
//! `sluice_gateway_<gauge>{worker=…}` for every [`sluice_model::Gauge`], and `sluice_control_*`
//! for control's own figures, among them the table's age
//! (`sluice_control_table_age_seconds`) and the time it was published
//! (`sluice_control_generation_published_timestamp_seconds`), absent until control publishes.
//!
//! Not hot path. No `unsafe`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use sluice_model::DropReason;
use sluice_model::counters::{LEN, Stat, fingerprint, schema};
use sluice_model::l7::L7Table;

use routes::{RouteRows, WorkerRows};

pub mod routes;
pub mod server;

/// Published values before the fingerprint.
const COUNT: usize = LEN - 1;

const _: () = assert!(
    COUNT <= sluice_table::protocol::STATS_PER_READER,
    "the stats region is too small for the schema"
);
const _: () = assert!(
    sluice_table::protocol::ROUTE_ROWS == sluice_model::route_stats::ROWS
        && sluice_table::protocol::ROUTE_ROW_VALUES == sluice_model::route_stats::VALUES,
    "the route-stats region and the route rows disagree"
);

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What control knows about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlFigures {
    /// The generation last published.
    pub generation: u64,
    /// Services (per port and family) in it.
    pub services: usize,
    /// Backends in it.
    pub backends: usize,
    /// Problems with objects at the last load (manifests) or sync (a cluster).
    pub manifest_errors: usize,
    /// What the last compile refused (addresses a Service may not have, Services whose frontend
    /// another holds).
    pub refused: usize,
    /// Publications since start.
    pub publications: u64,
    /// When the generation now live was published (`None` before the first publication).
    pub published_at: Option<SystemTime>,
}

/// Every registered reader's counters: (process id, counters in [`sluice_model::counters`] order,
/// then the fingerprint of their layout).
pub type WorkerStats = Vec<(u64, Vec<u64>)>;

/// What a scrape reads: control's figures, as the control loop last set them, and a source of
/// the workers' counters, read at the scrape.
pub struct Metrics {
    live: Arc<Live>,
    registry: Registry,
}

struct Live {
    figures: Mutex<ControlFigures>,
    workers: Box<dyn Fn() -> WorkerStats + Send + Sync>,
    /// The L7 routes' metrics rows.
    routes: Mutex<RouteRows>,
    /// What every worker counted in one route row.
    route_rows: Box<dyn Fn(u16) -> WorkerRows + Send + Sync>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").field("figures", &self.figures).finish_non_exhaustive()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("figures", &self.figures()).finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics whose workers' counters `workers` reads (from the table file's stats region:
    /// [`sluice_table::Publisher::reader_stats`]).
    pub fn new(workers: impl Fn() -> WorkerStats + Send + Sync + 'static) -> Metrics {
        Metrics::with_routes(workers, |_| Vec::new())
    }

    /// Metrics with the workers' counters per L7 route, one row read by `route_rows` (from the
    /// table file's route-stats region: [`sluice_table::Publisher::route_row`]).
    pub fn with_routes(
        workers: impl Fn() -> WorkerStats + Send + Sync + 'static,
        route_rows: impl Fn(u16) -> WorkerRows + Send + Sync + 'static,
    ) -> Metrics {
        let live = Arc::new(Live {
            figures: Mutex::default(),
            workers: Box::new(workers),
            routes: Mutex::default(),
            route_rows: Box::new(route_rows),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(live.clone()));
        Metrics { live, registry }
    }

    /// Control's figures now.
    pub fn figures(&self) -> ControlFigures {
        *self.live.figures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes control's figures (all at once, as one scrape will see them).
    pub fn update(&self, change: impl FnOnce(&mut ControlFigures)) {
        change(&mut self.live.figures.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Gives the routes of `l7`, about to be published, their metrics rows (see [`routes`]).
    pub fn number_routes(&self, l7: &mut L7Table) {
        let mut rows = self.live.routes.lock().unwrap_or_else(PoisonError::into_inner);
        rows.number(l7, &self.live.route_rows);
    }

    /// The page, now.
    pub fn render(&self) -> String {
        let mut page = String::new();
        // Writing to a String fails only if a value's formatting does, which ours do not.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut page, &self.registry);
        page
    }
}

/// Encodes one constant metric of its own family.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    let m = enc.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for Live {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let c = *self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        let workers = (self.workers)();
        encode_control(&c, SystemTime::now(), &mut enc)?;
        encode_workers(&workers, &mut enc)?;
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes::encode(&routes.report(&self.route_rows), routes.unnumbered(), &mut enc)
    }
}

fn encode_control(c: &ControlFigures, now: SystemTime, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let gauge = |v: usize| ConstGauge::new(v as u64);
    family(
        enc,
        "sluice_control_generation",
        "The table generation last published.",
        None,
        &ConstGauge::new(c.generation),
    )?;
    let help = "Service entries (per port and family) in the published table.";
    family(enc, "sluice_control_services", help, None, &gauge(c.services))?;
    family(enc, "sluice_control_backends", "Backends in the published table.", None, &gauge(c.backends))?;
    let help = "Problems found in the objects (manifests, or the cluster's) at the last load.";
    family(enc, "sluice_control_manifest_errors", help, None, &gauge(c.manifest_errors))?;
    let help = "Addresses and Services the last compile refused (external IPs outside the allowed ranges, \
                node addresses, frontend collisions).";
    family(enc, "sluice_control_refused", help, None, &gauge(c.refused))?;
    let help = "Tables published since start.";
    family(enc, "sluice_control_publications", help, None, &ConstCounter::new(c.publications))?;
    let Some(at) = c.published_at else { return Ok(()) };
    let unix = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let age = now.duration_since(at).unwrap_or_default().as_secs_f64();
    let help = "Seconds since the generation now live was published.";
    family(enc, "sluice_control_table_age", help, Some(&Unit::Seconds), &ConstGauge::new(age))?;
    let help = "When the generation now live was published (Unix time).";
    family(
        enc,
        "sluice_control_generation_published_timestamp",
        help,
        Some(&Unit::Seconds),
        &ConstGauge::new(unix),
    )
}

/// The help of the drops family: each reason's own.
fn drops_help() -> String {
    let reasons: Vec<String> =
        DropReason::ALL.iter().map(|r| format!("{}: {}", r.name(), r.help())).collect();
    format!("Frames dropped, by reason. {}", reasons.join(" "))
}

fn encode_workers(workers: &WorkerStats, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
    // Readers that publish counters of this schema are workers; one of another schema (a gateway
    // of another version) is counted apart instead of mislabelled; one that never published
    // (the gateway's own table watcher) is not a worker.
    let fp = fingerprint();
    let stamp = |v: &Vec<u64>| v.get(COUNT).copied().unwrap_or(0);
    let other = workers.iter().filter(|(_, v)| stamp(v) != 0 && stamp(v) != fp).count();
    let workers: Vec<(String, &Vec<u64>)> = workers
        .iter()
        .filter(|(_, v)| stamp(v) == fp)
        .enumerate()
        .map(|(n, (pid, v))| (format!("{pid}/{n}"), v))
        .collect();
    let help = "Gateway workers publishing counters on the table.";
    family(enc, "sluice_control_gateway_workers", help, None, &ConstGauge::new(workers.len() as u64))?;
    let help = "Gateway workers whose counters have another layout (another version): not reported.";
    family(enc, "sluice_control_gateway_workers_other_schema", help, None, &ConstGauge::new(other as u64))?;
    let value = |values: &Vec<u64>, i: usize| ConstCounter::new(values.get(i).copied().unwrap_or(0));
    for (i, stat) in schema().enumerate() {
        let Stat::Count(c) = stat else { continue };
        let name = format!("sluice_gateway_{}", c.name());
        let mut m = enc.encode_descriptor(&name, c.help(), None, MetricType::Counter)?;
        for (worker, values) in &workers {
            let labels = [("worker", worker.as_str())];
            value(values, i).encode(m.encode_family(&labels)?)?;
        }
    }
    // Every drop reason in one family, a label apart.
    let help = drops_help();
    let mut m = enc.encode_descriptor("sluice_gateway_drops", &help, None, MetricType::Counter)?;
    for (i, stat) in schema().enumerate() {
        let Stat::Drop(r) = stat else { continue };
        for (worker, values) in &workers {
            let labels = [("worker", worker.as_str()), ("reason", r.name())];
            value(values, i).encode(m.encode_family(&labels)?)?;
        }
    }
    // Levels: flows in each worker's table, and its capacity.
    for (i, stat) in schema().enumerate() {
        let Stat::Gauge(g) = stat else { continue };
        let name = format!("sluice_gateway_{}", g.name());
        let mut m = enc.encode_descriptor(&name, g.help(), None, MetricType::Gauge)?;
        for (worker, values) in &workers {
            let labels = [("worker", worker.as_str())];
            ConstGauge::new(values.get(i).copied().unwrap_or(0)).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_counter_per_worker() {
        let mut w = vec![0u64; LEN];
        w[0] = 11; // rx_frames
        w[COUNT - 1 - sluice_model::Gauge::COUNT] = 4; // the last drop reason
        // Gauges come last, in their list's order.
        w[COUNT - sluice_model::Gauge::COUNT + sluice_model::Gauge::FlowCapacity as usize] = 65_536;
        w[COUNT] = fingerprint();
        let mut other = w.clone();
        other[COUNT] = 7; // another version's layout
        let silent = vec![0u64; LEN]; // a reader that never published
        let workers = vec![(42, w), (43, other), (44, silent)];
        let metrics = Metrics::new(move || workers.clone());
        let published_at = SystemTime::now() - std::time::Duration::from_secs(90);
        metrics.update(|f| {
            *f = ControlFigures {
                generation: 3,
                services: 2,
                backends: 5,
                manifest_errors: 1,
                refused: 0,
                publications: 3,
                published_at: Some(published_at),
            }
        });
        let page = metrics.render();
        assert!(page.contains("sluice_control_gateway_workers_other_schema 1\n"), "{page}");
        assert!(!page.contains("worker=\"43/") && !page.contains("worker=\"44/"), "{page}");
        assert!(page.contains("sluice_control_generation 3\n"), "{page}");
        assert!(page.contains("sluice_control_publications_total 3\n"), "{page}");
        assert!(page.contains("sluice_control_gateway_workers 1\n"));
        assert!(page.contains("sluice_gateway_rx_frames_total{worker=\"42/0\"} 11\n"));
        assert!(page.contains("# HELP sluice_gateway_rx_frames_total Frames received.\n"), "{page}");
        let last = DropReason::ALL[DropReason::COUNT - 1];
        assert!(
            page.contains(&format!(
                "sluice_gateway_drops_total{{worker=\"42/0\",reason=\"{}\"}} 4\n",
                last.name()
            )),
            "{page}"
        );
        assert_eq!(page.matches("# TYPE sluice_gateway_drops_total counter").count(), 1);
        assert!(page.contains(last.help()), "every reason's help is in the drops family's: {page}");
        assert!(page.contains("# TYPE sluice_gateway_flow_capacity gauge\n"), "{page}");
        assert!(page.contains("sluice_gateway_flow_capacity{worker=\"42/0\"} 65536\n"), "{page}");
        let value = |name: &str| -> f64 {
            let line = page
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name}: {page}"));
            line[name.len() + 1..].parse().unwrap()
        };
        let age = value("sluice_control_table_age_seconds");
        assert!((90.0..120.0).contains(&age), "{age}");
        let at = published_at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((value("sluice_control_generation_published_timestamp_seconds") - at).abs() < 0.01);
    }

    #[test]
    fn no_age_before_the_first_publication() {
        let page = Metrics::new(Vec::new).render();
        assert!(page.contains("sluice_control_generation 0\n"), "{page}");
        assert!(!page.contains("table_age") && !page.contains("published_timestamp"), "{page}");
    }
}
