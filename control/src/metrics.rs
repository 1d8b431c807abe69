//! Metrics in the Prometheus text format (version 0.0.4): control's own figures and every
//! gateway worker's counters, read from the table file's stats region. Rendered by the control
//! loop; served from `127.0.0.1` by [`serve`].

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use sluice_model::counters::{LEN, Stat, fingerprint, schema};

/// Published values before the fingerprint.
const COUNT: usize = LEN - 1;

const _: () = assert!(
    COUNT <= sluice_table::protocol::STATS_PER_READER,
    "the stats region is too small for the schema"
);

/// What control knows about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlFigures {
    /// The generation last published.
    pub generation: u64,
    /// Services (per port and family) in it.
    pub services: usize,
    /// Backends in it.
    pub backends: usize,
    /// Manifest problems in the last load.
    pub manifest_errors: usize,
    /// Publications since start.
    pub publications: u64,
}

/// Renders the metrics page. `workers` are (process id, counters in [`sluice_model::counters`] order).
pub fn render(c: &ControlFigures, workers: &[(u64, Vec<u64>)]) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP sluice_control_{name} {help}\n# TYPE sluice_control_{name} gauge\nsluice_control_{name} {v}"
        );
    };
    gauge(&mut out, "generation", "The table generation last published.", c.generation);
    gauge(
        &mut out,
        "services",
        "Service entries (per port and family) in the published table.",
        c.services as u64,
    );
    gauge(&mut out, "backends", "Backends in the published table.", c.backends as u64);
    gauge(
        &mut out,
        "manifest_errors",
        "Problems found in the manifests at the last load.",
        c.manifest_errors as u64,
    );
    let _ = writeln!(
        out,
        "# HELP sluice_control_publications_total Tables published since start.\n# TYPE sluice_control_publications_total counter\nsluice_control_publications_total {}",
        c.publications
    );
    // Readers that publish counters of this schema are workers; one of another schema (a gateway
    // of another version) is counted apart instead of mislabelled; one that never published
    // (the gateway's own table watcher) is not a worker.
    let fp = fingerprint();
    let stamp = |v: &Vec<u64>| v.get(COUNT).copied().unwrap_or(0);
    let mismatched = workers.iter().filter(|(_, v)| stamp(v) != 0 && stamp(v) != fp).count();
    let workers: Vec<&(u64, Vec<u64>)> = workers.iter().filter(|(_, v)| stamp(v) == fp).collect();
    gauge(
        &mut out,
        "gateway_workers",
        "Gateway workers publishing counters on the table.",
        workers.len() as u64,
    );
    gauge(
        &mut out,
        "gateway_workers_other_schema",
        "Gateway workers whose counters have another layout (another version): not reported.",
        mismatched as u64,
    );
    let mut previous = String::new();
    for (i, stat) in schema().enumerate() {
        let (name, label, kind) = match stat {
            Stat::Count(c) => (format!("{}_total", c.name()), String::new(), "counter"),
            Stat::Drop(r) => ("drops_total".to_owned(), format!(",reason=\"{}\"", r.name()), "counter"),
            Stat::Gauge(g) => (g.name().to_owned(), String::new(), "gauge"),
        };
        if name != previous {
            let _ = writeln!(out, "# TYPE sluice_gateway_{name} {kind}");
            previous = name.clone();
        }
        for (w, (pid, values)) in workers.iter().copied().enumerate() {
            let v = values.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "sluice_gateway_{name}{{worker=\"{pid}/{w}\"{label}}} {v}");
        }
    }
    out
}

/// Serves `GET /metrics` (any path) with the latest page on `addr` until the process ends; returns
/// the address bound (useful with port 0).
pub fn serve(addr: SocketAddr, page: Arc<Mutex<String>>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            // The request itself does not matter: read what the client sent, answer the page.
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let body = page.lock().map(|p| p.clone()).unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_counter_per_worker() {
        let mut w = vec![0u64; LEN];
        w[0] = 11; // rx_frames
        w[COUNT - 1 - sluice_model::Gauge::COUNT] = 4; // the last drop reason
        w[COUNT] = fingerprint();
        let mut other = w.clone();
        other[COUNT] = 7; // another version's layout
        let silent = vec![0u64; LEN]; // a reader that never published
        let page = render(
            &ControlFigures { generation: 3, services: 2, backends: 5, manifest_errors: 1, publications: 3 },
            &[(42, w), (43, other), (44, silent)],
        );
        assert!(page.contains("sluice_control_gateway_workers_other_schema 1\n"), "{page}");
        assert!(!page.contains("worker=\"43/") && !page.contains("worker=\"44/"), "{page}");
        assert!(page.contains("sluice_control_generation 3\n"));
        assert!(page.contains("sluice_control_gateway_workers 1\n"));
        assert!(page.contains("sluice_gateway_rx_frames_total{worker=\"42/0\"} 11\n"));
        let last = sluice_model::DropReason::ALL[sluice_model::DropReason::COUNT - 1].name();
        assert!(
            page.contains(&format!("sluice_gateway_drops_total{{worker=\"42/0\",reason=\"{last}\"}} 4\n")),
            "{page}"
        );
        assert_eq!(page.matches("# TYPE sluice_gateway_drops_total counter").count(), 1);
    }
}
