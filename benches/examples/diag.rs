//! scratch
use sluice_benches::*;
fn main() {
    let cap: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(1 << 20);
    let mut w = worker(100, cap);
    let mut port = BenchPort::new(udp_template(60), Vec::new(), Workload::NewFlows, 0);
    let t = std::time::Instant::now();
    let n = run(&mut w, &mut port, 40_000, 1_000_000_000);
    let el = t.elapsed();
    let c = w.l4_counters();
    println!("{n} pkts {:?} {:.1} ns/pkt", el, el.as_nanos() as f64 / n as f64);
    for r in sluice_lb::DropReason::ALL {
        if c.dropped(*r) > 0 {
            println!("{} {}", r.name(), c.dropped(*r));
        }
    }
    println!("{:?}", w.l4().flows().stats());
}
