//! A driver for profilers (perf, callgrind), not a benchmark: runs one workload through a worker
//! for a fixed number of batches and prints ns/packet and any drops.
//!
//! `cargo run --release -p sluice-benches --example profile -- new CAPACITY` (every frame a new
//! flow) or `-- flows N` (N established flows in random order).
#![forbid(unsafe_code)]
use sluice_benches::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mode = a.get(1).map(String::as_str).unwrap_or("new");
    let n: usize = a.get(2).map(|x| x.parse().unwrap()).unwrap_or(1 << 20);
    let (mut w, mut port) = if mode == "new" {
        (worker(100, n), BenchPort::new(udp_template(60), Vec::new(), Workload::NewFlows, 0))
    } else {
        let flows = client_flows(n, 7);
        let mut w = worker(100, (n * 2).next_power_of_two());
        for chunk in flows.chunks(64) {
            let mut p = BenchPort::new(udp_template(60), chunk.to_vec(), Workload::Flows, 0);
            p.set_sequential();
            w.poll(&mut p, 1_000_000_000);
        }
        (w, BenchPort::new(udp_template(60), flows, Workload::Flows, 11))
    };
    let t = std::time::Instant::now();
    let polls: usize = a.get(3).map(|x| x.parse().unwrap()).unwrap_or(80_000);
    let pkts = run(&mut w, &mut port, polls, 1_000_000_000);
    let el = t.elapsed();
    println!("{pkts} pkts {:.1} ns/pkt", el.as_nanos() as f64 / pkts as f64);
    let c = w.counters();
    for r in sluice_model::DropReason::ALL {
        if c.dropped(*r) > 0 {
            println!("drop {} {}", r.name(), c.dropped(*r));
        }
    }
}
