//! Several workers and several ports: frames that RSS puts on another worker's queue are handed
//! to the worker owning their flow (FullNAT replies by SNAT port, clients and DNAT replies by the
//! client's address), and a two-armed worker sends each frame out through the port of its next
//! hop, copying it across.

mod common;

use common::*;
use sluice_model::Counter;
use sluice_model::DropReason;
use sluice_port::mem::MemPort;
use sluice_worker::handoff::{Mailboxes, Sharding};
use sluice_worker::nexthop::{NextHops, Route};
use sluice_worker::{Worker, WorkerConfig};

const NOW: u64 = 1_000_000_000;

/// Two workers, one queue (port) each, sharing the SNAT range as the gateway splits it.
fn pair() -> (Vec<Worker>, Vec<MemPort>) {
    let boxes = Mailboxes::new(2, 64);
    let workers = (0..2)
        .map(|i| {
            let mut cfg = worker_config();
            cfg.l4.snat_ports = snat_range().share(2, i).unwrap();
            cfg.l4.seed = 0x1234 + i as u64;
            Worker::new(&cfg, table(1, standard_services()), next_hops()).with_sharding(Sharding {
                me: i,
                mailboxes: boxes.clone(),
                snat_ports: snat_range(),
            })
        })
        .collect();
    (workers, (0..2).map(|_| MemPort::new(256, 2048)).collect())
}

/// Polls both workers until neither has anything to do; returns every transmitted frame, with
/// the worker that sent it.
fn settle(workers: &mut [Worker], ports: &mut [MemPort]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..4 {
        for (i, (w, p)) in workers.iter_mut().zip(ports.iter_mut()).enumerate() {
            w.poll(p, NOW);
            while let Some(f) = p.take_tx() {
                out.push((i, f));
            }
        }
    }
    out
}

fn sharding_of(w: usize) -> Sharding {
    Sharding { me: w, mailboxes: Mailboxes::new(2, 1), snat_ports: snat_range() }
}

/// A client address whose frames to VIP:80 worker 1 owns, its MAC known to every worker.
fn client_of_worker_1(workers: &mut [Worker]) -> [u8; 4] {
    let s = sharding_of(0);
    let client = (2..250u8)
        .map(|i| [198, 18, 0, i])
        .find(|c| s.owner(&a4(*c), &a4(VIP), 80, true) == 1)
        .expect("a client owned by worker 1");
    for w in workers {
        w.next_hops_mut().set_neighbor(a4(client), CLIENT_MAC);
    }
    client
}

#[test]
fn replies_on_the_wrong_queue_reach_the_worker_that_owns_the_flow() {
    let (mut workers, mut ports) = pair();
    // A client the other worker owns, whose SYN lands on worker `wrong`'s queue.
    let client = client_of_worker_1(&mut workers);
    let (owner, wrong) = (1, 0);
    let syn = from(CLIENT_MAC, client, 40_000).to(GW_MAC, VIP, 80).tcp(SYN, b"");
    ports[wrong].inject(&syn);
    let sent = settle(&mut workers, &mut ports);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (by, to_backend) = &sent[0];
    assert_eq!(*by, owner, "the owner sends it");
    assert_eq!(workers[wrong].counters()[Counter::HandedOff], 1);
    assert_eq!(workers[owner].counters()[Counter::HandedIn], 1);
    let backend = dst4(to_backend);
    let snat_port = l4_src_port(to_backend);
    let share = snat_range().share(2, owner).unwrap();
    assert!(share.contains(snat_port), "{snat_port} from the owner's share {share}");

    // The backend's SYN-ACK comes back on the other queue: handed over by SNAT port, translated
    // back to the client by the owner.
    let reply = from(backend_mac(backend[3]), backend, 8080).to(GW_MAC, NODE, snat_port).tcp(syn_ack(), b"");
    ports[wrong].inject(&reply);
    let sent = settle(&mut workers, &mut ports);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (by, to_client) = &sent[0];
    assert_eq!(*by, owner);
    assert_eq!(dst4(to_client), client);
    assert_eq!(&to_client[0..6], &CLIENT_MAC[..]);
    assert_eq!(workers[wrong].counters()[Counter::HandedOff], 2);
    // Nothing was dropped for lack of a flow on either side.
    for w in &workers {
        assert_eq!(w.counters().dropped(DropReason::NoFlowForSegment), 0);
    }
}

#[test]
fn a_handed_over_frame_waits_in_the_mailbox_while_its_owner_cannot_send() {
    let (mut workers, mut ports) = pair();
    let client = client_of_worker_1(&mut workers);
    ports[1].set_tx_capacity(0);
    ports[0].inject(&from(CLIENT_MAC, client, 40_000).to(GW_MAC, VIP, 80).tcp(SYN, b""));
    assert!(settle(&mut workers, &mut ports).is_empty());
    assert_eq!(workers[0].counters()[Counter::HandedOff], 1);
    assert_eq!(workers[1].counters()[Counter::HandedIn], 0, "not taken in while it could not be sent");
    ports[1].set_tx_capacity(usize::MAX);
    let sent = settle(&mut workers, &mut ports);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, 1, "sent by its owner once it could");
    for w in &workers {
        assert_eq!(w.counters().dropped(DropReason::TxRingFull), 0);
    }
}

#[test]
fn dnat_replies_follow_the_client_and_frames_stay_home_when_owned() {
    let (mut workers, mut ports) = pair();
    let s = sharding_of(0);
    let client = (2..250u8)
        .map(|i| [198, 18, 0, i])
        .find(|c| s.owner(&a4(*c), &a4(VIP_DNAT), 80, true) == 0)
        .expect("a client owned by worker 0");
    for w in &mut workers {
        w.next_hops_mut().set_neighbor(a4(client), CLIENT_MAC);
    }
    // Owned by worker 0 and received there: no hand-over.
    ports[0].inject(&from(CLIENT_MAC, client, 40_001).to(GW_MAC, VIP_DNAT, 80).tcp(SYN, b""));
    let sent = settle(&mut workers, &mut ports);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 0);
    assert_eq!(workers[0].counters()[Counter::HandedOff], 0);
    let backend = dst4(&sent[0].1);
    // The DNAT reply (backend → client) arrives on worker 1's queue: handed to worker 0, which
    // holds the flow and restores the VIP as source.
    let reply = from(backend_mac(backend[3]), backend, 8080).to(GW_MAC, client, 40_001).tcp(syn_ack(), b"");
    ports[1].inject(&reply);
    let sent = settle(&mut workers, &mut ports);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, 0);
    assert_eq!(&sent[0].1[26..30], &VIP_DNAT[..], "the reply comes from the VIP");
    assert_eq!(workers[1].counters()[Counter::HandedOff], 1);
}

#[test]
fn a_full_mailbox_drops_and_counts() {
    let boxes = Mailboxes::new(2, 1);
    let mk =
        |i: usize| {
            Worker::new(&worker_config(), table(1, standard_services()), next_hops())
                .with_sharding(Sharding { me: i, mailboxes: boxes.clone(), snat_ports: snat_range() })
        };
    let mut w0 = mk(0);
    let mut port = MemPort::new(64, 2048);
    let s = sharding_of(0);
    let clients: Vec<[u8; 4]> = (2..250u8)
        .map(|i| [198, 18, 0, i])
        .filter(|c| s.owner(&a4(*c), &a4(VIP), 80, true) == 1)
        .take(2)
        .collect();
    for c in &clients {
        port.inject(&from(CLIENT_MAC, *c, 40_000).to(GW_MAC, VIP, 80).tcp(SYN, b""));
    }
    w0.poll(&mut port, NOW);
    assert_eq!(w0.counters()[Counter::HandedOff], 1, "one parcel");
    assert_eq!(w0.counters().dropped(DropReason::HandoffFull), 1);
    assert_eq!(port.free_frames(), 64, "both frames given back");
}

#[test]
fn a_two_armed_worker_sends_each_way_through_its_own_port() {
    const OUTSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const INSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    let mut hops = NextHops::new();
    hops.add_route_on(0, Route { prefix: a4([198, 18, 0, 0]), len: 24, via: None });
    hops.add_route_on(1, Route { prefix: a4([198, 18, 1, 0]), len: 24, via: None });
    hops.set_neighbor_on(0, a4(CLIENT), CLIENT_MAC);
    for i in 1..=3 {
        hops.set_neighbor_on(1, a4(be(i)), backend_mac(i));
    }
    let cfg = WorkerConfig { mac: OUTSIDE_MAC, ..worker_config() };
    let mut w =
        Worker::new(&cfg, table(1, standard_services()), hops).with_port_macs(&[OUTSIDE_MAC, INSIDE_MAC]);
    let mut ports = [MemPort::new(64, 2048), MemPort::new(64, 2048)];
    ports[0].inject(&from(CLIENT_MAC, CLIENT, 40_000).to(OUTSIDE_MAC, VIP, 80).tcp(SYN, b"hello"));
    assert_eq!(w.poll_ports(&mut ports, NOW), 1);
    assert!(ports[0].take_tx().is_none(), "nothing back out of the client side");
    let f = ports[1].take_tx().expect("out of the backend side");
    assert_eq!(&f[6..12], &INSIDE_MAC[..], "from the inside port's MAC");
    let backend = dst4(&f);
    assert_eq!(&f[0..6], &backend_mac(backend[3])[..]);
    assert!(f.ends_with(b"hello"));
    assert_eq!(ports[0].free_frames(), 64, "the client-side frame went back to its port");
    assert_eq!(w.counters()[Counter::PortCopies], 1);
    // The reply, on the inside port, leaves through the outside one.
    let snat_port = l4_src_port(&f);
    ports[1].inject(
        &from(backend_mac(backend[3]), backend, 8080).to(INSIDE_MAC, NODE, snat_port).tcp(syn_ack(), b""),
    );
    assert_eq!(w.poll_ports(&mut ports, NOW), 1);
    let back = ports[0].take_tx().expect("out of the client side");
    assert_eq!((&back[0..6], &back[6..12]), (&CLIENT_MAC[..], &OUTSIDE_MAC[..]));
    assert_eq!(dst4(&back), CLIENT);
    // ARP for the VIP asked on the outside is answered there, with the outside MAC.
    ports[0].inject(&arp_request(CLIENT_MAC, CLIENT, VIP));
    w.poll_ports(&mut ports, NOW);
    let answer = ports[0].take_tx().expect("ARP answered on the outside");
    assert_eq!(&answer[6..12], &OUTSIDE_MAC[..]);
}
