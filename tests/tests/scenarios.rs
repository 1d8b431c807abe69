//! The L4 scenarios of docs/scenarios.md end to end without root: each example manifest set of
//! `deploy/examples/` is loaded and compiled by control, published through the shared-memory
//! table, adopted and decoded as a gateway worker does, and real frames through a real `Worker`
//! show the scenario happening. (The same, over AF_XDP and namespaces with real servers, is the
//! gateway issue's.)

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::PacketBuilder;
use sluice_control::compile::{Config, compile};
use sluice_control::load::load_dir;
use sluice_control::store::Store;
use sluice_lb::engine::Config as L4Config;
use sluice_model::Addr;
use sluice_model::image;
use sluice_model::service::{Generation, ServiceTable};
use sluice_port::mem::MemPort;
use sluice_table::{Geometry, Publisher, Reader, Refresh};
use sluice_worker::nexthop::{NextHops, Route};
use sluice_worker::{Worker, WorkerConfig};

const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const NODE: [u8; 4] = [198, 18, 0, 1];

/// Control on one side of a table file, a worker on the other.
struct Gateway {
    publisher: Publisher,
    reader: Reader,
    worker: Worker,
    port: MemPort,
    path: std::path::PathBuf,
    generation: u64,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn store(example: &str) -> Store {
    let dir = sluice_sandbox::example(example);
    let l = load_dir(&dir).unwrap();
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.store
}

impl Gateway {
    fn new(tag: &str) -> Gateway {
        let path = std::env::temp_dir().join(format!("sluice-scenario-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let publisher = Publisher::create(&path, Geometry { slots: 3, slot_bytes: 1 << 20 }).unwrap();
        let reader = Reader::open(&path).unwrap();
        let mut hops = NextHops::new();
        hops.add_route(Route { prefix: Addr::from_v4([198, 18, 0, 0]), len: 15, via: None });
        for last in 1..=255u8 {
            hops.set_neighbor(Addr::from_v4([198, 18, 1, last]), [2, 0, 0, 0, 1, last]);
        }
        hops.set_neighbor(Addr::from_v4([198, 18, 0, 2]), CLIENT_MAC);
        let cfg = WorkerConfig { mac: GW_MAC, l4: L4Config { flow_capacity: 4096, ..L4Config::default() } };
        let worker = Worker::new(&cfg, Arc::new(ServiceTable::empty()), hops);
        Gateway { publisher, reader, worker, port: MemPort::new(64, 2048), path, generation: 0 }
    }

    /// Control's side: compile and publish. The worker's side: adopt, decode, install.
    fn publish(&mut self, store: &Store) {
        self.generation += 1;
        let cfg = Config {
            node_name: None,
            node_addrs: vec![IpAddr::from(NODE)],
            snat: vec![],
            load_balancer_class: None,
            external_ip_ranges: vec![],
            ingress_nginx_class: false,
        };
        let compiled = compile(store, &cfg, Generation(self.generation));
        let table = ServiceTable::build(&compiled.spec).unwrap();
        self.publisher.publish(&image::encode(&table)).unwrap();
        assert_eq!(self.reader.refresh(), Refresh::Adopted(self.generation));
        self.worker.set_table(Arc::new(image::decode(self.reader.payload().unwrap()).unwrap()));
    }

    /// Sends one frame; returns the backend (address, port) it was sent to, if forwarded.
    fn send(&mut self, frame: &[u8]) -> Option<(IpAddr, u16)> {
        self.port.inject(frame);
        self.worker.poll(&mut self.port, 1_000_000_000);
        self.port.drain_kernel();
        let out = self.port.take_tx()?;
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!("IPv4") };
        let port = match p.transport.unwrap() {
            etherparse::TransportSlice::Tcp(t) => t.destination_port(),
            etherparse::TransportSlice::Udp(u) => u.destination_port(),
            other => panic!("{other:?}"),
        };
        Some((IpAddr::from(ip.header().destination()), port))
    }

    fn tcp(
        &mut self,
        client: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        syn: bool,
    ) -> Option<(IpAddr, u16)> {
        let mut v = Vec::new();
        let b = PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC).ipv4(client, dst, 64).tcp(sport, dport, 1, 1000);
        let b = if syn { b.syn() } else { b.ack(1) };
        b.write(&mut v, b"").unwrap();
        self.send(&v)
    }

    fn udp(&mut self, client: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Option<(IpAddr, u16)> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
            .ipv4(client, dst, 64)
            .udp(sport, dport)
            .write(&mut v, b"q")
            .unwrap();
        self.send(&v)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn scenario_1_nodeport_spreads_over_the_pods() {
    let mut g = Gateway::new("nodeport");
    g.publish(&store("nodeport"));
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60u16 {
        let (b, port) =
            g.tcp([198, 18, 2, (i % 200) as u8 + 1], 1000 + i, NODE, 31080, true).expect("forwarded");
        assert_eq!(port, 8080);
        seen.insert(b);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![ip("198.18.1.1"), ip("198.18.1.2"), ip("198.18.1.3")]
    );
    assert_eq!(g.tcp([198, 18, 2, 1], 5, NODE, 31081, true), None, "not a NodePort");
}

#[test]
fn scenario_2_loadbalancer_vips_tcp_and_udp() {
    let mut g = Gateway::new("lb");
    g.publish(&store("loadbalancer"));
    let (b, port) = g.tcp([198, 18, 2, 1], 1000, [198, 18, 100, 10], 80, true).unwrap();
    assert!(b == ip("198.18.1.11") || b == ip("198.18.1.12"));
    assert_eq!(port, 8080, "the named targetPort resolved");
    let (b, port) = g.udp([198, 18, 2, 1], 1000, [198, 18, 100, 15], 53).unwrap();
    assert!((b == ip("198.18.1.21") || b == ip("198.18.1.22")) && port == 5353);
}

#[test]
fn scenario_3_clusterip() {
    let mut g = Gateway::new("clusterip");
    g.publish(&store("clusterip"));
    assert_eq!(g.tcp([198, 18, 2, 1], 1000, [198, 19, 0, 33], 3306, true), Some((ip("198.18.1.30"), 3306)));
}

#[test]
fn scenario_4_blue_green_switch_keeps_established_connections() {
    let mut g = Gateway::new("bluegreen");
    let mut s = store("blue-green");
    g.publish(&s);
    let (blue, _) = g.tcp([198, 18, 2, 1], 1000, NODE, 31080, true).unwrap();
    assert!(blue == ip("198.18.1.41") || blue == ip("198.18.1.42"));
    // `kubectl apply` of the Service with version: v1.0.1.
    s.services[0].object.selector.insert("version".into(), "v1.0.1".into());
    g.publish(&s);
    assert_eq!(
        g.tcp([198, 18, 2, 1], 1000, NODE, 31080, false).unwrap().0,
        blue,
        "the established connection finishes on blue"
    );
    for i in 0..20 {
        let (b, _) = g.tcp([198, 18, 2, 2], 2000 + i, NODE, 31080, true).unwrap();
        assert!(b == ip("198.18.1.51") || b == ip("198.18.1.52"), "new connections go to green: {b}");
    }
}

#[test]
fn scenario_5_session_affinity() {
    let mut g = Gateway::new("affinity");
    g.publish(&store("session-affinity"));
    let (first, _) = g.tcp([198, 18, 2, 7], 1000, [198, 19, 0, 40], 80, true).unwrap();
    for p in 1001..1020 {
        assert_eq!(g.tcp([198, 18, 2, 7], p, [198, 19, 0, 40], 80, true).unwrap().0, first);
    }
}

#[test]
fn scenario_9_only_ready_endpoints_take_new_connections() {
    let mut g = Gateway::new("endpoints");
    g.publish(&store("endpointslices"));
    for p in 1000..1030 {
        assert_eq!(g.tcp([198, 18, 2, 1], p, [198, 19, 0, 90], 80, true), Some((ip("198.18.1.91"), 8080)));
        assert_eq!(g.tcp([198, 18, 2, 1], p, [198, 19, 0, 91], 80, true), Some((ip("198.18.1.95"), 8080)));
    }
}
