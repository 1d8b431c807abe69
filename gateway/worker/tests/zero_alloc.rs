//! A warm worker forwards a million frames without a single heap allocation.
//!
//! `allocation_counter` installs a counting global allocator in this test binary.
//! Frames cycle through an in-memory port (preallocated), a mix of new flows, established flows in
//! both directions, UDP, IPv6, ICMP echo, passes and drops, so every common path is covered. The
//! flow table holds fewer flows than there are SYN templates, so every round of them opens new
//! flows again: the backend choice (session affinity's included), the SNAT port search, the
//! insert and the eviction all run inside the measurement.

mod common;

use common::*;
use sluice_model::Counter;

#[test]
fn a_million_frames_without_allocating() {
    let mut cfg = worker_config();
    // Fewer than the 2,200 SYN templates: each comes round after its flow was evicted.
    cfg.l4.flow_capacity = 1024;
    let mut h = Harness {
        worker: sluice_worker::Worker::new(&cfg, table(1, standard_services()), next_hops()),
        ..Harness::standard()
    };
    // The templates: client → VIP (TCP, many source ports), backend → gateway replies, UDP,
    // IPv6, ping, a pass and a malformed frame.
    let mut templates = Vec::new();
    for i in 0..2000u16 {
        templates.push(from(CLIENT_MAC, CLIENT, 10_000 + i).to(GW_MAC, VIP, 80).tcp(SYN, &[0u8; 6]));
    }
    for i in 0..200u16 {
        templates.push(from(CLIENT_MAC, CLIENT, 30_000 + i).to(GW_MAC, VIP_AFFINITY, 80).tcp(SYN, b""));
    }
    templates.push(from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP, 53).udp(b"query"));
    templates.push(from(CLIENT_MAC, CLIENT6, 5000).to(GW_MAC, VIP6, 53).udp(b"q6"));
    let mut ping = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"ping")
        .unwrap();
    templates.push(ping);
    templates.push(from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, NODE, 22).tcp(SYN, b""));
    templates.push(vec![0u8; 20]);
    // Warm up: every flow exists, and replies for them are recorded as templates too.
    for t in templates.clone() {
        h.port.inject(&t);
        h.worker.poll(&mut h.port, h.now_ns);
        h.port.drain_kernel();
        while let Some(out) = h.port.take_tx() {
            if out[12..14] == [0x08, 0x00] && out[30..33] == [198, 18, 1] && out[23] == 6 {
                // A SYN towards a backend: its SYN-ACK is a reverse-direction template.
                let mut reply = out.clone();
                reply[0..6].copy_from_slice(&GW_MAC);
                reply[6..12].copy_from_slice(&out[0..6]);
                let (src, dst) = (out[26..30].to_vec(), out[30..34].to_vec());
                reply[26..30].copy_from_slice(&dst);
                reply[30..34].copy_from_slice(&src);
                reply.swap(34, 36);
                reply.swap(35, 37);
                templates.push(reply);
            }
        }
    }
    let n_templates = templates.len();
    assert!(n_templates > 4000, "replies recorded: {n_templates}");
    let before = h.worker.counters();

    let info = allocation_counter::measure(|| {
        let mut sent = 0usize;
        let mut i = 0usize;
        while sent < 1_000_000 {
            for _ in 0..64 {
                h.port.inject(&templates[i % n_templates]);
                i += 1;
            }
            sent += h.worker.poll(&mut h.port, h.now_ns);
            h.port.drain_tx(|_| {});
            h.port.drain_kernel();
            h.now_ns += 1_000;
        }
    });

    let after = h.worker.counters();
    assert_eq!(info.count_total, 0, "allocations on the warm path: {info:?}");
    let moved = |c: Counter| after[c] - before[c];
    // About half the frames are SYNs, each opening a new flow; the replies of evicted flows
    // are passed rather than forwarded.
    assert!(moved(Counter::NewFlows) > 400_000, "new flows: {}", moved(Counter::NewFlows));
    assert!(moved(Counter::Forwarded) > 450_000, "forwarded: {}", moved(Counter::Forwarded));
    assert!(moved(Counter::Bounced) > 0 && moved(Counter::Passed) > 0);
}
