//! `benches/run micro`: nanoseconds per packet of the L4 path on one core, beside the floor of
//! touching a frame at all (a MAC swap over the same frames, same batch size, same run).
//!
//! criterion measures; this program then prints a table and, last, `RESULT {json}`.
#![forbid(unsafe_code)]

use sluice_model::Counter;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use sluice_benches::*;
use sluice_model::maglev::{self, MaglevTable, Member};
use sluice_port::Desc;
use sluice_worker::BATCH;

const NOW_NS: u64 = 1_000_000_000;

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 18];
            id[10] = 0xff;
            id[11] = 0xff;
            id[12..16].copy_from_slice(&backend(i));
            id[16..18].copy_from_slice(&9000u16.to_be_bytes());
            Member { id, weight: 1, index: i as u16 }
        })
        .collect()
}

/// A worker that has seen every flow once (so the measured frames hit established flows).
fn warm(n_flows: usize, len: usize) -> (sluice_worker::Worker, BenchPort) {
    let flows = client_flows(n_flows, 7);
    let mut w = worker(100, (n_flows * 2).next_power_of_two());
    let mut seq = BenchPort::new(udp_template(len), flows.clone(), Workload::Flows, 11);
    // Visit every flow in order once: a port whose order is the identity.
    for chunk in flows.chunks(BATCH) {
        let mut p = BenchPort::new(udp_template(len), chunk.to_vec(), Workload::Flows, 0);
        p.set_sequential();
        w.poll(&mut p, NOW_NS);
    }
    assert_eq!(w.counters()[Counter::NewFlows], n_flows as u64, "every flow established");
    seq.sent = 0;
    (w, seq)
}

fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/criterion"))
}

fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let p = criterion_home().join(group).join(id).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .output_directory(&criterion_home())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);

    let mut g = c.benchmark_group("l4");
    g.throughput(Throughput::Elements(BATCH as u64));

    // The floor: same port, same frames, same batch size; only a MAC swap.
    for (len, id) in [(60, "macswap_64"), (508, "macswap_512"), (1496, "macswap_1500")] {
        let mut port = BenchPort::new(udp_template(len), client_flows(100_000, 7), Workload::Flows, 11);
        let mut descs = [Desc::default(); BATCH];
        g.bench_function(id, |b| b.iter(|| macswap_poll(&mut port, &mut descs)));
    }
    for (n, len, id) in [
        (100_000, 60, "fullnat_100k_64"),
        (1_000, 60, "fullnat_1k_64"),
        (1_000, 508, "fullnat_1k_512"),
        (1_000, 1496, "fullnat_1k_1500"),
    ] {
        let (mut w, mut port) = warm(n, len);
        g.bench_function(id, |b| b.iter(|| w.poll(&mut port, NOW_NS)));
        assert_eq!(port.not_sent, 0, "{id}: every frame forwarded");
    }
    // A connection storm: every frame a new flow, into a full table (1M flows: the default
    // capacity, far beyond the caches) and into a 64k-flow table (its index fits in L2/L3).
    for (capacity, id) in [(1 << 20, "newflow_64"), (1 << 16, "newflow_64k_table_64")] {
        let mut w = worker(100, capacity);
        let mut port = BenchPort::new(udp_template(60), Vec::new(), Workload::NewFlows, 0);
        g.bench_function(id, |b| b.iter(|| w.poll(&mut port, NOW_NS)));
        assert_eq!(port.not_sent, 0, "{id}: every frame forwarded");
    }
    g.finish();

    // A gateway worker's per-batch check for a new table generation when there is none (the
    // figure issue 3's control benchmark names `reader_adopt_ns`).
    let table_path = std::env::temp_dir().join(format!("sluice-bench-table-{}", std::process::id()));
    let _ = std::fs::remove_file(&table_path);
    {
        let geometry = sluice_table::Geometry { slots: 3, slot_bytes: 1 << 20 };
        let mut publisher = sluice_table::Publisher::create(&table_path, geometry).expect("table file");
        let mut reader = sluice_table::Reader::open(&table_path).expect("table reader");
        publisher.publish(&[7u8; 4096]).expect("publish");
        reader.refresh();
        let mut g = c.benchmark_group("table");
        g.bench_function("refresh_unchanged", |b| b.iter(|| reader.refresh()));
        g.finish();
    }
    let _ = std::fs::remove_file(&table_path);

    let mut g = c.benchmark_group("maglev");
    let ms = members(100);
    g.bench_with_input(BenchmarkId::new("build", "M65537_N100"), &ms, |b, ms| {
        b.iter(|| MaglevTable::build(ms, maglev::DEFAULT_SIZE).expect("builds"))
    });
    g.finish();
    c.final_summary();

    // Disruption: remove each of 10 backends of 100 in turn; the worst fraction of the other
    // backends' slots that moved.
    let before = MaglevTable::build(&ms, maglev::DEFAULT_SIZE).expect("builds");
    let mut extra_moved: f64 = 0.0;
    for gone in (0..100).step_by(10) {
        let rest: Vec<Member> = ms.iter().copied().filter(|m| m.index != gone).collect();
        let after = MaglevTable::build(&rest, maglev::DEFAULT_SIZE).expect("builds");
        let (mut others, mut moved) = (0usize, 0usize);
        for (a, b) in before.entries().iter().zip(after.entries()) {
            if *a != gone {
                others += 1;
                moved += usize::from(a != b);
            }
        }
        extra_moved = extra_moved.max(moved as f64 / others as f64);
    }

    // Allocations per packet on the warm 100k-flow path.
    let (mut w, mut port) = warm(100_000, 60);
    let polls = 1_000_000 / BATCH;
    let mut pkts = 0usize;
    let info = allocation_counter::measure(|| pkts = run(&mut w, &mut port, polls, NOW_NS));
    let allocs_per_pkt = info.count_total as f64 / pkts as f64;

    let per_pkt = |id: &str| mean_ns("l4", id).map(|ns| ns / BATCH as f64);
    // Each row, and the floor it is compared with: the MAC swap over frames of the same size.
    let rows = [
        ("MAC swap only (floor), 64 B", "macswap_64", "macswap_64"),
        ("MAC swap only (floor), 512 B", "macswap_512", "macswap_512"),
        ("MAC swap only (floor), 1500 B", "macswap_1500", "macswap_1500"),
        ("FullNAT, 100k flows, 64 B", "fullnat_100k_64", "macswap_64"),
        ("FullNAT, 1k flows, 64 B", "fullnat_1k_64", "macswap_64"),
        ("FullNAT, 1k flows, 512 B", "fullnat_1k_512", "macswap_512"),
        ("FullNAT, 1k flows, 1500 B", "fullnat_1k_1500", "macswap_1500"),
        ("New flow per frame, 1M table", "newflow_64", "macswap_64"),
        ("New flow per frame, 64k table", "newflow_64k_table_64", "macswap_64"),
    ];
    println!();
    println!(
        "{:<32} {:>10} {:>12} {:>16}",
        "path (one core, batch 64)", "ns/pkt", "Mpps/core", "above the floor"
    );
    for (name, id, floor) in rows {
        match per_pkt(id) {
            Some(ns) => {
                let above = per_pkt(floor).map(|m| format!("{:+.1} ns", ns - m)).unwrap_or_default();
                println!("{name:<32} {ns:>10.1} {:>12.2} {above:>16}", 1e3 / ns);
            }
            None => println!("{name:<32} {:>10}", "(not run)"),
        }
    }
    let build_ms = mean_ns("maglev", "build/M65537_N100").map(|ns| ns / 1e6);
    let build = build_ms.map(|m| format!("{m:.3} ms")).unwrap_or_default();
    println!("{:<32} {build:>10}", "Maglev build M=65537 N=100");
    println!("{:<32} {extra_moved:>10.4}", "Maglev extra moved (1 of 100)");
    println!("{:<32} {allocs_per_pkt:>10}", "allocations per packet");
    let adopt_ns = mean_ns("table", "refresh_unchanged");
    let adopt = adopt_ns.map(|n| format!("{n:.1} ns")).unwrap_or_default();
    println!("{:<32} {adopt:>10}", "table refresh, nothing new");
    let result = serde_json::json!({
        "nat_ns_per_pkt": per_pkt("fullnat_100k_64"),
        "nat_hot_ns_per_pkt": per_pkt("fullnat_1k_64"),
        "nat_hot_512_ns_per_pkt": per_pkt("fullnat_1k_512"),
        "nat_hot_1500_ns_per_pkt": per_pkt("fullnat_1k_1500"),
        "newflow_ns_per_pkt": per_pkt("newflow_64"),
        "newflow_64k_table_ns_per_pkt": per_pkt("newflow_64k_table_64"),
        "macswap_ns_per_pkt": per_pkt("macswap_64"),
        "macswap_512_ns_per_pkt": per_pkt("macswap_512"),
        "macswap_1500_ns_per_pkt": per_pkt("macswap_1500"),
        "maglev_build_ms": build_ms,
        "maglev_extra_moved_frac": extra_moved,
        "allocs_per_pkt": allocs_per_pkt,
        "reader_adopt_ns": adopt_ns,
    });
    println!("RESULT {result}");
}
