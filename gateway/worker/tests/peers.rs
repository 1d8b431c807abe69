//! Flows carried between gateways (flow sync, issue 17): gateway A opens a FullNAT flow and its
//! records go through the sync's store ([`sluice_lb::peers`]) to gateway B, which then carries
//! the flow both ways on A's translation — the client's next segment, ECMP-moved to B, reaches
//! the backend on A's SNAT tuple, and the backend's reply is translated back to the VIP. Two
//! real `Worker`s over in-memory ports; the records travel as the sync thread hands them on.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use sluice_lb::journal::RECORD;
use sluice_lb::peers::{Applied, PeerFlows};
use sluice_model::{Counter, DropReason};

type Records = Arc<Mutex<Vec<[u8; RECORD]>>>;

/// A gateway whose flow records are collected, as the sync sender's queue would take them.
fn gateway() -> (Harness, Records) {
    let mut h = Harness::standard();
    let out: Records = Arc::default();
    let o = out.clone();
    h.worker.l4_mut().set_outbox(Box::new(move |r| o.lock().unwrap().push(*r)));
    (h, out)
}

fn sport(f: &[u8]) -> u16 {
    l4_src_port(f)
}

#[test]
fn a_flow_opened_on_one_gateway_is_carried_both_ways_by_another() {
    let (mut a, records) = gateway();
    let client = from(CLIENT_MAC, CLIENT, 40_000);
    let Outcome::Tx(syn) = a.send(&client.to(GW_MAC, VIP, 80).tcp(SYN, b"")) else {
        panic!("A forwards the SYN")
    };
    let (backend, snat_port) = (dst4(&syn), sport(&syn));
    let bmac = backend_mac(backend[3]);
    let Outcome::Tx(_) = a.send(&from(bmac, backend, 8080).to(GW_MAC, NODE, snat_port).tcp(syn_ack(), b""))
    else {
        panic!("A forwards the SYN-ACK")
    };
    assert!(!records.lock().unwrap().is_empty(), "A recorded its flow for the sync");

    // B has not heard of the flow: the client's next segment is refused.
    let (mut b, _) = gateway();
    let data = client.to(GW_MAC, VIP, 80).tcp(ack(5001), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(b.send(&data), Outcome::Dropped(DropReason::NoFlowForSegment));

    // Now it has: A's records, applied as the sync thread applies them.
    let (store, mut writer) = PeerFlows::new(64);
    let t = sluice_lb::flow::Timeouts::default();
    for r in records.lock().unwrap().iter() {
        assert_eq!(writer.apply(r, b.now_ns, &t), Applied::Stored);
    }
    let (mut b, _) = gateway();
    b.worker.l4_mut().set_peers(store);
    let Outcome::Tx(fwd) = b.send(&data) else { panic!("B carries the client's segment") };
    assert_eq!((dst4(&fwd), sport(&fwd), src4(&fwd)), (backend, snat_port, NODE), "on A's translation");
    let reply =
        from(bmac, backend, 8080).to(GW_MAC, NODE, snat_port).tcp(ack(120), b"HTTP/1.1 200 OK\r\n\r\n");
    let Outcome::Tx(back) = b.send(&reply) else { panic!("B carries the backend's reply") };
    assert_eq!((src4(&back), dst4(&back), sport(&back)), (VIP, CLIENT, 80));
    assert_eq!(b.worker.counters()[Counter::FlowsFromPeers], 1, "taken once, then B's own");
}

#[test]
fn a_reply_no_flow_claims_waits_for_its_record_then_is_dropped_not_passed() {
    let (store, _writer) = PeerFlows::new(64);
    let (mut b, _) = gateway();
    let peer_snat = [198, 18, 1, 242];
    b.worker.l4_mut().set_peers(store);
    // To a peer's SNAT address, and a DNAT backend's reply to a client: both held.
    let stray = from(backend_mac(1), be(1), 8080).to(GW_MAC, peer_snat, 20_001).tcp(ack(1), b"x");
    assert_eq!(b.send(&stray), Outcome::Deferred);
    let reply = from(backend_mac(1), be(1), 8080).to(GW_MAC, CLIENT, 40_000).tcp(syn_ack(), b"");
    assert_eq!(b.send(&reply), Outcome::Deferred);
    assert!(b.worker.busy(), "a worker holding frames for a peer's record does not sleep");
    // No record comes: past the wait both are dropped, never passed to the kernel.
    b.now_ns += sluice_lb::engine::PEER_WAIT_NS;
    assert!(b.idle_poll().is_empty());
    assert!(b.port.take_kernel().is_none());
    assert_eq!(b.worker.counters().dropped(DropReason::NoFlowForSegment), 2);
    assert!(!b.worker.busy());
}

#[test]
fn a_dnat_reply_ahead_of_its_record_is_held_and_sent_when_the_record_comes() {
    let (mut a, records) = gateway();
    let client = from(CLIENT_MAC, CLIENT, 40_010);
    let Outcome::Tx(syn) = a.send(&client.to(GW_MAC, VIP_DNAT, 80).tcp(SYN, b"")) else { panic!("A's SYN") };
    let backend = dst4(&syn);
    let (store, mut writer) = PeerFlows::new(64);
    let (mut b, _) = gateway();
    b.worker.l4_mut().set_peers(store);
    // The backend's SYN-ACK reaches B (the backends' router) before A's record.
    let syn_ack_frame =
        from(backend_mac(backend[3]), backend, 8080).to(GW_MAC, CLIENT, 40_010).tcp(syn_ack(), b"");
    assert_eq!(b.send(&syn_ack_frame), Outcome::Deferred);
    let t = sluice_lb::flow::Timeouts::default();
    for r in records.lock().unwrap().iter() {
        writer.apply(r, b.now_ns, &t);
    }
    b.now_ns += 5_000_000;
    let sent = b.idle_poll();
    assert_eq!(sent.len(), 1, "held, then sent once the record came");
    assert_eq!((src4(&sent[0]), dst4(&sent[0]), sport(&sent[0])), (VIP_DNAT, CLIENT, 80));
}

#[test]
fn a_syn_opens_a_flow_of_its_own_and_a_closed_flow_is_not_carried() {
    let (mut a, records) = gateway();
    let client = from(CLIENT_MAC, CLIENT, 40_002);
    let Outcome::Tx(_) = a.send(&client.to(GW_MAC, VIP, 80).tcp(SYN, b"")) else { panic!("SYN") };
    let (store, mut writer) = PeerFlows::new(64);
    let t = sluice_lb::flow::Timeouts::default();
    for r in records.lock().unwrap().drain(..) {
        writer.apply(&r, 0, &t);
    }
    let (mut b, _) = gateway();
    b.worker.l4_mut().set_peers(store.clone());
    // A retransmitted SYN opens B's own flow (its SNAT tuple is B's to choose).
    let Outcome::Tx(_) = b.send(&client.to(GW_MAC, VIP, 80).tcp(SYN, b"")) else { panic!("B's SYN") };
    assert_eq!(b.worker.counters()[Counter::FlowsFromPeers], 0);
    // The flow times out on A: its end reaches the store, which forgets it.
    assert!(store.find(&sluice_lb::flow::FlowKey::new(a4(CLIENT), 40_002, a4(VIP), 80, 6), 0, &t).is_some());
    a.advance_s(600);
    // The sweep visits a budget of slots per poll: enough polls to pass over all of them.
    for _ in 0..4096 {
        a.idle_poll();
        if !records.lock().unwrap().is_empty() {
            break;
        }
    }
    let ended = records.lock().unwrap().iter().map(|r| writer.apply(r, 0, &t)).any(|x| x == Applied::Removed);
    assert!(ended, "A's record of the flow's end removes it from B's store");
    assert!(store.find(&sluice_lb::flow::FlowKey::new(a4(CLIENT), 40_002, a4(VIP), 80, 6), 0, &t).is_none());
}

#[test]
fn ipv6_tcp_and_udp_flows_are_carried_by_another_gateway() {
    let (mut a, records) = gateway();
    let b1 = be6(1);
    let client = from(CLIENT_MAC, CLIENT6, 40_000);
    let Outcome::Tx(syn) = a.send(&client.to(GW_MAC, VIP6, 80).tcp(SYN, b"")) else { panic!("A's SYN") };
    let tcp_port = sport(&syn);
    let Outcome::Tx(_) =
        a.send(&from(backend_mac(1), &b1, 8080).to(GW_MAC, NODE6, tcp_port).tcp(syn_ack(), b""))
    else {
        panic!("A forwards the SYN-ACK")
    };
    let udp_client = from(CLIENT_MAC, CLIENT6, 5000);
    let Outcome::Tx(q) = a.send(&udp_client.to(GW_MAC, VIP6, 53).udp(b"q6")) else { panic!("A's query") };
    let udp_port = sport(&q);

    let (store, mut writer) = PeerFlows::new(64);
    let t = sluice_lb::flow::Timeouts::default();
    let (mut b, _) = gateway();
    for r in records.lock().unwrap().iter() {
        assert_eq!(writer.apply(r, b.now_ns, &t), Applied::Stored);
    }
    b.worker.l4_mut().set_peers(store);
    // Both directions of both flows, on A's translation, frame for frame.
    let data = client.to(GW_MAC, VIP6, 80).tcp(ack(5001), b"GET /");
    let want = from(GW_MAC, NODE6, tcp_port).to(backend_mac(1), &b1, 8080).ttl(63).tcp(ack(5001), b"GET /");
    assert_eq!(b.send(&data), Outcome::Tx(want));
    let reply = from(backend_mac(1), &b1, 8080).to(GW_MAC, NODE6, tcp_port).tcp(ack(106), b"200");
    let want = from(GW_MAC, VIP6, 80).to(CLIENT_MAC, CLIENT6, 40_000).ttl(63).tcp(ack(106), b"200");
    assert_eq!(b.send(&reply), Outcome::Tx(want));
    let answer = from(backend_mac(1), &b1, 5353).to(GW_MAC, NODE6, udp_port).udp(b"a6");
    let want = from(GW_MAC, VIP6, 53).to(CLIENT_MAC, CLIENT6, 5000).ttl(63).udp(b"a6");
    assert_eq!(b.send(&answer), Outcome::Tx(want));
    assert_eq!(b.worker.counters()[Counter::FlowsFromPeers], 2);
}
