//! Shared by the worker's integration tests: a standard service table, frame builders and a
//! harness that pushes frames through a real `Worker` over a `MemPort`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::PacketBuilder;
use sluice_lb::engine::Config as L4Config;
use sluice_model::PortRange;
use sluice_model::service::*;
use sluice_model::{Addr, DropReason};
use sluice_port::mem::MemPort;
use sluice_worker::nexthop::{NextHops, Route};
use sluice_worker::{Worker, WorkerConfig};

pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

pub fn backend_mac(last: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 1, last]
}

pub const NODE: [u8; 4] = [198, 18, 0, 1];
pub const CLIENT: [u8; 4] = [198, 18, 0, 2];
pub const REMOTE_CLIENT: [u8; 4] = [198, 20, 5, 5];
pub const ROUTER: [u8; 4] = [198, 18, 0, 254];
pub const VIP: [u8; 4] = [198, 19, 0, 10];
pub const VIP_DNAT: [u8; 4] = [198, 19, 0, 20];
pub const VIP_AFFINITY: [u8; 4] = [198, 19, 0, 30];
pub const VIP_DRAIN: [u8; 4] = [198, 19, 0, 40];
pub const VIP_ONE: [u8; 4] = [198, 19, 0, 50];
pub const VIP_EMPTY: [u8; 4] = [198, 19, 0, 60];

pub fn be(i: u8) -> [u8; 4] {
    [198, 18, 1, i]
}

pub fn v6(s: &str) -> [u8; 16] {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => panic!("not v6"),
    }
}

pub fn a4(a: [u8; 4]) -> Addr {
    Addr::from_v4(a)
}

pub fn a6(s: &str) -> Addr {
    Addr::from_v6(v6(s))
}

pub const NODE6: &str = "2001:db8::1";
pub const CLIENT6: &str = "2001:db8::2";
pub const VIP6: &str = "2001:db8:19::10";

pub fn be6(i: u8) -> String {
    format!("2001:db8:1::{i}")
}

pub fn key(a: Addr, port: u16, p: Protocol) -> ServiceKey {
    ServiceKey { frontend: Frontend::Address(a), port, protocol: p }
}

pub fn nodeport(port: u16, p: Protocol) -> ServiceKey {
    ServiceKey { frontend: Frontend::NodePort(sluice_model::Family::V4), port, protocol: p }
}

pub fn backends(lasts: &[u8], port: u16, c: Conditions) -> Vec<BackendSpec> {
    lasts.iter().map(|&i| BackendSpec { addr: a4(be(i)), port, weight: 1, conditions: c }).collect()
}

pub fn svc(name: &str, frontends: Vec<ServiceKey>, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        frontends,
        backends,
        scheduler: Scheduler::Maglev,
        affinity: None,
        nat: NatMode::FullNat,
        snat: vec![a4(NODE), a6(NODE6)],
    }
}

/// The standard table of the pipeline tests.
pub fn standard_services() -> Vec<ServiceSpec> {
    let mut dnat = svc(
        "default/dnat:80",
        vec![key(a4(VIP_DNAT), 80, Protocol::Tcp)],
        backends(&[1, 2, 3], 8080, Conditions::READY),
    );
    dnat.nat = NatMode::Dnat;
    let mut aff = svc(
        "default/sticky:80",
        vec![key(a4(VIP_AFFINITY), 80, Protocol::Tcp)],
        backends(&[1, 2, 3], 8080, Conditions::READY),
    );
    aff.affinity = Affinity::new(10);
    let mut drain = backends(&[1], 8080, Conditions::READY);
    drain.extend(backends(&[2], 8080, Conditions::DRAINING));
    vec![
        svc(
            "default/web:80",
            vec![key(a4(VIP), 80, Protocol::Tcp), nodeport(31080, Protocol::Tcp)],
            backends(&[1, 2, 3], 8080, Conditions::READY),
        ),
        svc(
            "default/dns:53",
            vec![key(a4(VIP), 53, Protocol::Udp), nodeport(31053, Protocol::Udp)],
            backends(&[1, 2, 3], 5353, Conditions::READY),
        ),
        dnat,
        aff,
        svc("default/drain:80", vec![key(a4(VIP_DRAIN), 80, Protocol::Tcp)], drain),
        svc(
            "default/one:80",
            vec![key(a4(VIP_ONE), 80, Protocol::Tcp)],
            backends(&[1], 8080, Conditions::READY),
        ),
        svc(
            "default/one-udp:53",
            vec![key(a4(VIP_ONE), 53, Protocol::Udp)],
            backends(&[1], 5353, Conditions::READY),
        ),
        svc("default/empty:80", vec![key(a4(VIP_EMPTY), 80, Protocol::Tcp)], vec![]),
        svc(
            "default/web6:80",
            vec![key(a6(VIP6), 80, Protocol::Tcp)],
            vec![BackendSpec { addr: a6(&be6(1)), port: 8080, weight: 1, conditions: Conditions::READY }],
        ),
        svc(
            "default/dns6:53",
            vec![key(a6(VIP6), 53, Protocol::Udp)],
            vec![BackendSpec { addr: a6(&be6(1)), port: 5353, weight: 1, conditions: Conditions::READY }],
        ),
    ]
}

pub fn table(generation: u64, services: Vec<ServiceSpec>) -> Arc<ServiceTable> {
    Arc::new(
        ServiceTable::build(&TableSpec {
            generation: Generation(generation),
            services,
            node_addrs: vec![a4(NODE), a6(NODE6)],
            maglev_size: MaglevSize::Auto,
            l7: Default::default(),
        })
        .unwrap(),
    )
}

pub fn next_hops() -> NextHops {
    let mut n = NextHops::new();
    n.add_route(Route { prefix: a4([198, 18, 0, 0]), len: 24, via: None });
    n.add_route(Route { prefix: a4([198, 18, 1, 0]), len: 24, via: None });
    n.add_route(Route { prefix: a4([0, 0, 0, 0]), len: 0, via: Some(a4(ROUTER)) });
    n.add_route(Route { prefix: a6("2001:db8::"), len: 64, via: None });
    n.add_route(Route { prefix: a6("2001:db8:1::"), len: 64, via: None });
    n.set_neighbor(a4(CLIENT), CLIENT_MAC);
    n.set_neighbor(a4(ROUTER), ROUTER_MAC);
    n.set_neighbor(a6(CLIENT6), CLIENT_MAC);
    for i in 1..=3 {
        n.set_neighbor(a4(be(i)), backend_mac(i));
        n.set_neighbor(a6(&be6(i)), backend_mac(i));
    }
    n
}

pub const SNAT_LO: u16 = 20_000;
pub const SNAT_HI: u16 = 29_999;

/// The gateway's whole SNAT range in these tests.
pub fn snat_range() -> PortRange {
    PortRange::new(SNAT_LO, SNAT_HI).unwrap()
}

pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        mac: GW_MAC,
        l4: L4Config {
            flow_capacity: 4096,
            affinity_capacity: 1024,
            snat_ports: snat_range(),
            seed: 0x1234,
            ..L4Config::default()
        },
    }
}

/// What happened to one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Tx(Vec<u8>),
    Kernel(Vec<u8>),
    Dropped(DropReason),
    /// Held until its next hop's MAC address is known.
    Parked,
    /// Held for the engine (a proxied connection's backend has not answered yet).
    Deferred,
}

pub struct Harness {
    pub worker: Worker,
    pub port: MemPort,
    pub now_ns: u64,
    /// Frames the last [`Harness::send`] transmitted before the one it reports (the RSTs the
    /// engine sends ahead of a new flow's SYN).
    pub before: Vec<Vec<u8>>,
}

impl Harness {
    pub fn new(services: Vec<ServiceSpec>) -> Harness {
        Harness {
            worker: Worker::new(&worker_config(), table(1, services), next_hops()),
            port: MemPort::new(256, 2048),
            now_ns: 1_000_000_000,
            before: Vec::new(),
        }
    }

    pub fn standard() -> Harness {
        Harness::new(standard_services())
    }

    /// Pushes one frame through a poll and reports what became of it.
    pub fn send(&mut self, frame: &[u8]) -> Outcome {
        let before = self.worker.counters();
        let parked_before = self.worker.parked();
        assert!(self.port.inject(frame), "frame injected");
        let n = self.worker.poll(&mut self.port, self.now_ns);
        assert_eq!(n, 1);
        let after = self.worker.counters();
        // Every frame transmitted: the segments the engine wrote in frames of their own first,
        // then, unless it was held or dropped, the frame itself.
        self.before = std::iter::from_fn(|| self.port.take_tx()).collect();
        let extras = sluice_model::counters::Counter::ExtrasSent;
        let extras = (after[extras] - before[extras]) as usize;
        assert!(self.before.len() <= extras + 1, "one frame out, and the segments ahead of it");
        if self.before.len() == extras + 1 {
            let f = self.before.pop().unwrap_or_default();
            return Outcome::Tx(f);
        }
        if let Some(f) = self.port.take_kernel() {
            return Outcome::Kernel(f);
        }
        if self.worker.parked() > parked_before {
            return Outcome::Parked;
        }
        let held = [
            sluice_model::counters::Counter::SynProxyDeferred,
            sluice_model::counters::Counter::HeldForPeers,
        ];
        if held.iter().any(|&c| after[c] > before[c]) && self.worker.deferred() > 0 {
            return Outcome::Deferred;
        }
        let grew: Vec<DropReason> =
            DropReason::ALL.iter().copied().filter(|r| after.dropped(*r) > before.dropped(*r)).collect();
        assert_eq!(grew.len(), 1, "exactly one drop counter moved: {grew:?}");
        Outcome::Dropped(grew[0])
    }

    /// A poll with nothing received (deferred and parked frames are tried again); the frames
    /// it transmitted.
    pub fn idle_poll(&mut self) -> Vec<Vec<u8>> {
        self.worker.poll(&mut self.port, self.now_ns);
        std::iter::from_fn(|| self.port.take_tx()).collect()
    }

    pub fn advance_s(&mut self, s: u64) {
        self.now_ns += s * 1_000_000_000;
    }
}

/// TCP flags for the builders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp {
    pub syn: bool,
    pub ack: Option<u32>,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub seq: u32,
}

pub const SYN: Tcp = Tcp { syn: true, ack: None, fin: false, rst: false, psh: false, seq: 100 };

pub fn ack(n: u32) -> Tcp {
    Tcp { ack: Some(n), seq: 101, ..Tcp::default() }
}

pub fn syn_ack() -> Tcp {
    Tcp { syn: true, ack: Some(101), seq: 5000, ..Tcp::default() }
}

pub fn fin_ack() -> Tcp {
    Tcp { fin: true, ack: Some(1), seq: 200, ..Tcp::default() }
}

pub fn rst() -> Tcp {
    Tcp { rst: true, seq: 300, ..Tcp::default() }
}

/// A host address of either family, for [`from`]: four octets, sixteen, or IPv6 text.
pub trait Host {
    /// The address.
    fn ip(&self) -> std::net::IpAddr;
}

impl Host for [u8; 4] {
    fn ip(&self) -> std::net::IpAddr {
        std::net::IpAddr::from(*self)
    }
}

impl Host for [u8; 16] {
    fn ip(&self) -> std::net::IpAddr {
        std::net::IpAddr::from(*self)
    }
}

impl Host for &str {
    fn ip(&self) -> std::net::IpAddr {
        self.parse().unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

impl Host for &String {
    fn ip(&self) -> std::net::IpAddr {
        self.as_str().ip()
    }
}

/// One end of a frame: MAC address, IP address, port.
#[derive(Debug, Clone, Copy)]
struct End {
    mac: [u8; 6],
    ip: std::net::IpAddr,
    port: u16,
}

/// A frame being described: who sends it, to whom, with which TTL; then what it carries.
/// `from(CLIENT_MAC, CLIENT, 40_000).to(GW_MAC, NODE, 31080).tcp(SYN, b"")`.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    src: End,
    dst: End,
    ttl: u8,
}

/// A frame from `mac`, `addr`, `port` (TTL or hop limit 64 unless [`Frame::ttl`] says otherwise).
pub fn from(mac: [u8; 6], addr: impl Host, port: u16) -> Frame {
    let src = End { mac, ip: addr.ip(), port };
    Frame { src, dst: src, ttl: 64 }
}

/// A frame from `mac`, `addr`, for a message without ports (ICMP).
pub fn from_host(mac: [u8; 6], addr: impl Host) -> Frame {
    from(mac, addr, 0)
}

impl Frame {
    /// To `mac`, `addr`, `port`.
    pub fn to(mut self, mac: [u8; 6], addr: impl Host, port: u16) -> Frame {
        self.dst = End { mac, ip: addr.ip(), port };
        self
    }

    /// To `mac`, `addr`, for a message without ports (ICMP).
    pub fn to_host(self, mac: [u8; 6], addr: impl Host) -> Frame {
        self.to(mac, addr, 0)
    }

    /// With this TTL (IPv4) or hop limit (IPv6).
    pub fn ttl(mut self, ttl: u8) -> Frame {
        self.ttl = ttl;
        self
    }

    /// The Ethernet and IP layers.
    fn ip(&self) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        use std::net::IpAddr;
        let eth = PacketBuilder::ethernet2(self.src.mac, self.dst.mac);
        match (self.src.ip, self.dst.ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), self.ttl),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), self.ttl),
            (s, d) => panic!("{s} and {d} are of different families"),
        }
    }

    /// A TCP segment with flags `t` carrying `payload`.
    pub fn tcp(&self, t: Tcp, payload: &[u8]) -> Vec<u8> {
        let mut s = self.ip().tcp(self.src.port, self.dst.port, t.seq, 64_240);
        if t.syn {
            s = s.syn();
        }
        if let Some(a) = t.ack {
            s = s.ack(a);
        }
        if t.fin {
            s = s.fin();
        }
        if t.rst {
            s = s.rst();
        }
        if t.psh {
            s = s.psh();
        }
        let mut v = Vec::new();
        s.write(&mut v, payload).unwrap();
        v
    }

    /// A UDP datagram carrying `payload`.
    pub fn udp(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.ip().udp(self.src.port, self.dst.port).write(&mut v, payload).unwrap();
        v
    }

    /// An ICMPv4 message of type `t` quoting `quote`.
    pub fn icmp4(&self, t: etherparse::Icmpv4Type, quote: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.ip().icmpv4(t).write(&mut v, quote).unwrap();
        v
    }

    /// An ICMPv6 message of type `t` quoting `quote`.
    pub fn icmp6(&self, t: etherparse::Icmpv6Type, quote: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.ip().icmpv6(t).write(&mut v, quote).unwrap();
        v
    }
}

/// A broadcast ARP request from `sender` (`sender_mac`) asking for `target`.
pub fn arp_request(sender_mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    use sluice_wire::{arp, ethernet};
    let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    ethernet::Frame::new_unchecked(&mut f[..]).emit([0xff; 6], sender_mac, ethernet::ethertype::ARP);
    arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).emit(
        arp::OP_REQUEST,
        sender_mac,
        sender,
        [0; 6],
        target,
    );
    f
}

/// A neighbour solicitation for `target`, from `sender` (`sender_mac`; `"::"` for duplicate
/// address detection) to `target`'s solicited-node group, with `hop_limit` and, when
/// `with_source_ll`, the sender's link-layer address option.
pub fn neighbor_solicit(
    sender_mac: [u8; 6],
    sender: &str,
    target: &str,
    hop_limit: u8,
    with_source_ll: bool,
) -> Vec<u8> {
    use sluice_wire::{checksum, ethernet, ip_proto, ipv6, ndp};
    let (src, tgt) = (v6(sender), v6(target));
    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&tgt[13..]);
    let body = ndp::HEADER_LEN + if with_source_ll { ndp::option::LL_LEN } else { 0 };
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + body];
    let mac = [0x33, 0x33, 0xff, tgt[13], tgt[14], tgt[15]];
    ethernet::Frame::new_unchecked(&mut f[..]).emit(mac, sender_mac, ethernet::ethertype::IPV6);
    let repr =
        ipv6::Repr { src, dst: group, next_header: ip_proto::ICMPV6, payload_len: body as u16, hop_limit };
    ipv6::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).emit(&repr);
    let mut m = ndp::Message::new_unchecked(&mut f[ethernet::HEADER_LEN + ipv6::HEADER_LEN..]);
    m.set_msg_type(sluice_wire::icmp::v6::NEIGHBOR_SOLICIT);
    m.set_target(tgt);
    if with_source_ll {
        m.set_link_layer(ndp::HEADER_LEN, ndp::option::SOURCE_LL, sender_mac);
    }
    m.fill_checksum(checksum::pseudo_header_v6(&src, &group, ip_proto::ICMPV6, body as u32));
    f
}

/// Source port of a TCP/UDP frame (IPv4 or IPv6, untagged).
pub fn l4_src_port(f: &[u8]) -> u16 {
    let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
    match p.transport.unwrap() {
        etherparse::TransportSlice::Tcp(t) => t.source_port(),
        etherparse::TransportSlice::Udp(u) => u.source_port(),
        other => panic!("not TCP/UDP: {other:?}"),
    }
}

/// Source address of an untagged IPv4 frame.
pub fn src4(f: &[u8]) -> [u8; 4] {
    [f[26], f[27], f[28], f[29]]
}

/// Destination address (last octet) of an IPv4 frame.
pub fn dst4(f: &[u8]) -> [u8; 4] {
    [f[30], f[31], f[32], f[33]]
}

/// Recomputes the IPv4 header checksum of a frame (after a test patched the header).
pub fn fix_ipv4_checksum(f: &mut [u8]) {
    let hl = usize::from(f[14] & 0x0f) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = sluice_wire::checksum::checksum(&f[14..14 + hl.min(f.len() - 14)]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 frame cut to `ip_len` bytes of IP packet, with its total length and header checksum
/// made to agree (so only the transport header is short).
pub fn cut_ipv4(frame: &[u8], ip_len: usize) -> Vec<u8> {
    let mut f = frame[..14 + ip_len].to_vec();
    f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
    fix_ipv4_checksum(&mut f);
    f
}
