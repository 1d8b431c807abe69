//! One behaviour, two paths: the XDP fast path (`bpf/steer.c` built with the fast path,
//! loaded into the kernel and run with `BPF_PROG_RUN`) against the worker, on the pipeline
//! tests' service table and frames (`common`).
//!
//! For each fixture, a flow is opened through a real worker; the entries the worker would
//! install for it ([`sluice_worker::Worker::fast_entry`]) go into the program's map; then every
//! frame of the established flow is given to both, and the program's frame must equal the
//! worker's byte for byte, with `XDP_TX`. Frames user space must see (SYN, FIN, RST, TTL 1,
//! options, fragments, unknown flows, malformed) must come out of the program untouched.
//!
//! Needs root (loading a program); skips loudly without it, and fails under
//! `SLUICE_REQUIRE_ROOT=1`.

mod common;

use std::net::IpAddr;

use common::*;
use sluice_lb::flow::{Dir, Flow};
use sluice_model::Addr;
use sluice_worker::fastpath::Egress;
use sluice_xsk::fastpath::{FAST_CLOSING, FAST_TX, FastKey};
use sluice_xsk::steer::{FastPath, Steering};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// Whether this process may load programs; when not, says so loudly (or fails under
/// `SLUICE_REQUIRE_ROOT=1`, so that a skipped suite cannot pass there).
fn require_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2));
    if euid == Some("0") {
        return true;
    }
    assert_ne!(
        std::env::var("SLUICE_REQUIRE_ROOT").as_deref(),
        Ok("1"),
        "{test}: needs root (loading an XDP program) and SLUICE_REQUIRE_ROOT=1 forbids skipping"
    );
    eprintln!("\n!!!!!!!! SKIPPED {test}: needs root (loading an XDP program) !!!!!!!!\n");
    false
}

impl Host for IpAddr {
    fn ip(&self) -> IpAddr {
        *self
    }
}

fn ip(a: &Addr) -> IpAddr {
    match a.family() {
        sluice_model::Family::V4 => IpAddr::from(a.v4()),
        sluice_model::Family::V6 => IpAddr::from(a.0),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// The worker, and the program with the fast path beside it.
struct Both {
    h: Harness,
    s: Steering,
}

impl Both {
    fn new(test: &str) -> Option<Both> {
        if !require_root(test) {
            return None;
        }
        let s =
            Steering::load_with(FastPath::On).expect("the verifier accepts the program with the fast path");
        assert!(s.fast_path());
        Some(Both { h: Harness::standard(), s })
    }

    /// The worker's output for `frame` (which must be forwarded).
    fn worker(&mut self, desc: &str, frame: &[u8]) -> Vec<u8> {
        match self.h.send(frame) {
            Outcome::Tx(f) => f,
            other => panic!("{desc}: the worker did not forward it: {other:?}"),
        }
    }

    /// The program's verdict and frame.
    fn program(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.s.test_run(frame).expect("BPF_PROG_RUN")
    }

    /// Installs both directions of `f`, as the worker would (frames arrive on port 0).
    fn install(&mut self, f: &Flow) -> [FastKey; 2] {
        [Dir::Forward, Dir::Reverse].map(|dir| {
            let (k, e) = self.h.worker.fast_entry(f, dir).expect("the next hop is known");
            assert_eq!(e.flags, FAST_TX, "one-armed: out the way it came");
            self.s.fast_install(&k, &e).expect("install");
            k
        })
    }

    /// Gives `frame` to both; they must send the same bytes, and the program with XDP_TX.
    fn same(&mut self, desc: &str, frame: &[u8]) {
        let (verdict, out) = self.program(frame);
        let want = self.worker(desc, frame);
        assert_eq!(verdict, XDP_TX, "{desc}: the program's verdict");
        assert_eq!(
            hex(&out),
            hex(&want),
            "{desc}: the program's frame differs from the worker's (got, want)"
        );
    }

    /// Gives `frame` to the program only: it must hand it back, untouched.
    fn handed_back(&mut self, desc: &str, frame: &[u8]) {
        let (verdict, out) = self.program(frame);
        assert_eq!(verdict, XDP_PASS, "{desc}: handed back (no socket is bound, so the steering passes)");
        assert_eq!(hex(&out), hex(frame), "{desc}: a handed-back frame is not rewritten");
    }
}

/// The flow from client port `cport` of protocol `proto`.
fn flow_of(h: &Harness, cport: u16, proto: u8) -> Flow {
    let mut found = None;
    h.worker.l4().flows().for_each(|_, f| {
        if f.fwd.sport == cport && f.fwd.proto == proto {
            found = Some(*f);
        }
    });
    found.unwrap_or_else(|| panic!("no flow from port {cport}"))
}

/// An established-flow fixture: a client (behind `client_mac`) talking to a frontend.
#[derive(Clone, Copy)]
struct Fixture {
    desc: &'static str,
    client_mac: [u8; 6],
    client: IpAddr,
    cport: u16,
    frontend: IpAddr,
    fport: u16,
    ttl: u8,
}

/// The standard table's frontends, from the pipeline tests: FullNAT and DNAT, IPv4 and IPv6, a
/// NodePort, a client beyond a router.
fn fixtures() -> Vec<Fixture> {
    let c4 = IpAddr::from(CLIENT);
    let c6: IpAddr = CLIENT6.parse().unwrap();
    let vip6: IpAddr = VIP6.parse().unwrap();
    let f = |desc, client, cport, frontend: [u8; 4], fport| Fixture {
        desc,
        client_mac: CLIENT_MAC,
        client,
        cport,
        frontend: IpAddr::from(frontend),
        fport,
        ttl: 64,
    };
    vec![
        f("FullNAT TCP to a VIP", c4, 40_000, VIP_ONE, 80),
        f("FullNAT TCP to a Maglev service", c4, 40_001, VIP, 80),
        f("FullNAT UDP to a VIP", c4, 40_002, VIP_ONE, 53),
        f("FullNAT UDP to a Maglev service", c4, 40_003, VIP, 53),
        f("DNAT TCP", c4, 40_004, VIP_DNAT, 80),
        f("NodePort TCP", c4, 40_005, NODE, 31080),
        f("NodePort UDP", c4, 40_006, NODE, 31053),
        Fixture { desc: "FullNAT TCP over IPv6", client: c6, frontend: vip6, ..f("", c4, 40_007, VIP, 80) },
        Fixture { desc: "FullNAT UDP over IPv6", client: c6, frontend: vip6, ..f("", c4, 40_008, VIP, 53) },
        Fixture {
            desc: "a client beyond the router",
            client_mac: ROUTER_MAC,
            client: IpAddr::from(REMOTE_CLIENT),
            ttl: 60,
            ..f("", c4, 40_009, VIP_ONE, 80)
        },
    ]
}

impl Fixture {
    fn udp(&self) -> bool {
        matches!(self.fport, 53 | 31053)
    }

    fn proto(&self) -> u8 {
        if self.udp() { 17 } else { 6 }
    }

    /// A frame from the client.
    fn client(&self) -> Frame {
        from(self.client_mac, self.client, self.cport).to(GW_MAC, self.frontend, self.fport).ttl(self.ttl)
    }

    /// A frame from the backend of `f`, as it arrives (to the SNAT address, or the client).
    fn backend(&self, f: &Flow) -> Frame {
        from(backend_mac(f.rev.src.0[15]), ip(&f.rev.src), f.rev.sport).to(
            GW_MAC,
            ip(&f.rev.dst),
            f.rev.dport,
        )
    }

    /// Opens the flow through the worker (TCP: the handshake; UDP: a query and its answer).
    fn open(&self, b: &mut Both) -> Flow {
        if self.udp() {
            b.worker("query", &self.client().udp(b"q"));
            let f = flow_of(&b.h, self.cport, self.proto());
            b.worker("answer", &self.backend(&f).udp(b"a"));
        } else {
            b.worker("SYN", &self.client().tcp(SYN, b""));
            let f = flow_of(&b.h, self.cport, self.proto());
            b.worker("SYN-ACK", &self.backend(&f).tcp(syn_ack(), b""));
            b.worker("ACK", &self.client().tcp(ack(5001), b""));
        }
        let f = flow_of(&b.h, self.cport, self.proto());
        assert!(sluice_worker::fastpath::offloadable(&f), "{}: established: {:?}", self.desc, f.state);
        f
    }

    /// A two-byte payload for which the client's datagram, rewritten, sums to zero: RFC 768
    /// sends that checksum as 0xffff, as 0 means "none" (one payload in 65,535 does).
    fn zero_sum_payload(&self, f: &Flow) -> [u8; 2] {
        let out = from(GW_MAC, ip(&f.rev.dst), f.rev.dport).to(GW_MAC, ip(&f.rev.src), f.rev.sport).ttl(63);
        let at = if matches!(self.client, IpAddr::V6(_)) { 14 + 40 + 6 } else { 14 + 20 + 6 };
        (0..=u16::MAX)
            .map(u16::to_be_bytes)
            .find(|w| out.udp(w)[at..at + 2] == [0xff, 0xff])
            .expect("a payload that sums to zero")
    }

    /// The established flow's frames, each way.
    fn established(&self, f: &Flow) -> Vec<(String, Vec<u8>)> {
        let d = self.desc;
        let (c, s) = (self.client(), self.backend(f));
        if self.udp() {
            let mut v = vec![
                (format!("{d}: a query"), c.udp(b"query")),
                (format!("{d}: an answer"), s.udp(b"answer")),
                (format!("{d}: an empty datagram"), c.udp(b"")),
                (format!("{d}: a large answer"), s.udp(&[0xa5; 1400])),
                (format!("{d}: a query whose new checksum sums to zero"), c.udp(&self.zero_sum_payload(f))),
            ];
            if !matches!(self.client, IpAddr::V6(_)) {
                // RFC 768: "no checksum" stays so, both ways.
                let mut q = c.udp(b"unsummed");
                q[40..42].copy_from_slice(&[0, 0]);
                let mut a = s.udp(b"unsummed");
                a[40..42].copy_from_slice(&[0, 0]);
                v.push((format!("{d}: a query without a checksum"), q));
                v.push((format!("{d}: an answer without a checksum"), a));
            }
            return v;
        }
        let push = Tcp { psh: true, ..ack(5001) };
        vec![
            (format!("{d}: a request"), c.tcp(push, b"GET / HTTP/1.1\r\n\r\n")),
            (format!("{d}: the response"), s.tcp(Tcp { psh: true, ..ack(119) }, b"HTTP/1.1 200 OK\r\n\r\n")),
            (format!("{d}: a pure ACK"), c.tcp(ack(5020), b"")),
            (format!("{d}: a full-size segment"), s.tcp(ack(119), &[0x5a; 1400])),
            (format!("{d}: an ACK with TTL 2"), self.client().ttl(2).tcp(ack(5021), b"")),
        ]
    }
}

#[test]
fn the_program_forwards_established_flows_exactly_as_the_worker() {
    let Some(mut b) = Both::new("the_program_forwards_established_flows_exactly_as_the_worker") else {
        return;
    };
    for fx in fixtures() {
        let f = fx.open(&mut b);
        let keys = b.install(&f);
        let frames = fx.established(&f);
        for (desc, frame) in &frames {
            b.same(desc, frame);
        }
        // The program's counters, read back as user space will: every frame forwarded is counted,
        // in the entry of its direction.
        let e = [0, 1].map(|i| b.s.fast_entry(&keys[i]).unwrap().expect("installed"));
        let (packets, bytes) = (e[0].packets + e[1].packets, e[0].bytes + e[1].bytes);
        assert_eq!(packets, frames.len() as u64, "{}: packets counted", fx.desc);
        assert_eq!(bytes, frames.iter().map(|(_, f)| f.len() as u64).sum::<u64>(), "{}: bytes", fx.desc);
        assert!(e[0].last_seen_ns > 0 && e[1].last_seen_ns > 0, "{}: last seen", fx.desc);
    }
    let c = b.s.fast_counts();
    assert!(c.forwarded > 0 && c.handed_back == 0 && c.no_port == 0, "{c:?}");
}

#[test]
fn vlan_tags_are_kept_on_the_fast_path_too() {
    let Some(mut b) = Both::new("vlan_tags_are_kept_on_the_fast_path_too") else { return };
    let tagged = |smac, dmac, src: IpAddr, sport, dst: IpAddr, dport, payload: &[u8]| {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else { unreachable!() };
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2(smac, dmac)
            .single_vlan(etherparse::VlanId::try_new(100).unwrap())
            .ipv4(s.octets(), d.octets(), 64)
            .udp(sport, dport)
            .write(&mut v, payload)
            .unwrap();
        v
    };
    b.worker("query", &tagged(CLIENT_MAC, GW_MAC, CLIENT.into(), 5000, VIP_ONE.into(), 53, b"q"));
    let f = flow_of(&b.h, 5000, 17);
    let bmac = backend_mac(f.rev.src.0[15]);
    let answer = |p: &[u8]| tagged(bmac, GW_MAC, ip(&f.rev.src), f.rev.sport, ip(&f.rev.dst), f.rev.dport, p);
    b.worker("answer", &answer(b"a"));
    b.install(&flow_of(&b.h, 5000, 17));
    b.same("a tagged query", &tagged(CLIENT_MAC, GW_MAC, CLIENT.into(), 5000, VIP_ONE.into(), 53, b"again"));
    b.same("a tagged answer", &answer(b"answer"));
    assert_eq!(b.s.fast_clear().unwrap(), 2, "both directions");
    let again = tagged(CLIENT_MAC, GW_MAC, CLIENT.into(), 5000, VIP_ONE.into(), 53, b"again");
    b.handed_back("a query once the map is cleared", &again);
}

#[test]
fn frames_to_another_mac_are_the_kernels_not_forwarded() {
    let Some(mut b) = Both::new("frames_to_another_mac_are_the_kernels_not_forwarded") else { return };
    let fx = fixtures()[0];
    let f = fx.open(&mut b);
    b.install(&f);
    let (_, frame) = fx.established(&f).into_iter().next().expect("a frame");
    b.s.set_own_mac(GW_MAC).expect("own_mac");
    let mut other = frame.clone();
    other[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
    b.handed_back("a unicast frame to another host's MAC (a veth, a promiscuous NIC)", &other);
    assert_eq!(b.program(&frame).0, XDP_TX, "one to the interface's own MAC is forwarded");
    let mut broadcast = frame;
    broadcast[..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(b.program(&broadcast).0, XDP_TX, "broadcast and multicast are not filtered");
}

/// `frame` (untagged IPv4) with `f` applied to its IP header, and the header checksum made
/// right again.
fn patched(frame: &[u8], f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = frame.to_vec();
    f(&mut v);
    fix_ipv4_checksum(&mut v);
    v
}

#[test]
fn what_user_space_must_see_is_handed_back_untouched() {
    let Some(mut b) = Both::new("what_user_space_must_see_is_handed_back_untouched") else { return };
    let fx = fixtures()[0];
    let f = fx.open(&mut b);
    let keys = b.install(&f);
    let (c, s) = (fx.client(), fx.backend(&f));
    let data = c.tcp(ack(5001), b"data");
    b.same("data, to show the entries work", &data);

    b.handed_back("a SYN on the flow's tuple", &c.tcp(SYN, b""));
    b.handed_back("TTL 1", &fx.client().ttl(1).tcp(ack(5001), b"data"));
    b.handed_back(
        "an unknown flow",
        &from(CLIENT_MAC, CLIENT, 41_000).to(GW_MAC, VIP_ONE, 80).tcp(ack(1), b"x"),
    );
    b.handed_back(
        "IPv4 options",
        &patched(&data, |v| {
            // four NOPs after the header: IHL 6, total length + 4
            v.splice(34..34, [1u8; 4]);
            v[14] = 0x46;
            let tl = u16::from_be_bytes([v[16], v[17]]) + 4;
            v[16..18].copy_from_slice(&tl.to_be_bytes());
        }),
    );
    b.handed_back("a first fragment", &patched(&data, |v| v[20] |= 0x20));
    b.handed_back("a later fragment", &patched(&data, |v| v[21] = 8));
    b.handed_back("a total length beyond the frame", &patched(&data, |v| v[17] += 1));
    b.handed_back(
        "a TCP header length beyond the segment",
        &patched(&data, |v| v[46] = 0xf0 | (v[46] & 0x0f)),
    );
    b.handed_back("a truncated TCP header", &cut_ipv4(&data, 20 + 12));
    let icmp = from_host(backend_mac(1), ip(&f.rev.src)).to_host(GW_MAC, ip(&f.rev.dst)).icmp4(
        etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
        &data[14..],
    );
    b.handed_back("an ICMP error", &icmp);
    assert_eq!(b.s.fast_counts().handed_back, 1, "only the SYN found an entry and was handed back");
    assert!(b.s.fast_entry(&keys[0]).unwrap().is_some(), "a SYN leaves the entry to user space");

    // A FIN or RST hands the direction back to user space for good: its entry stays, marked
    // closing, with its counters, for user space to read before it removes it.
    let closing = |b: &Both, i: usize| {
        b.s.fast_entry(&keys[i]).unwrap().expect("kept for its counters").flags & FAST_CLOSING != 0
    };
    b.handed_back("the client's FIN", &c.tcp(fin_ack(), b""));
    assert!(closing(&b, 0), "the client's direction is user space's again");
    assert!(!closing(&b, 1), "the backend's is not (yet)");
    b.handed_back("the client's next segment", &data);
    b.handed_back("the backend's RST", &s.tcp(rst(), b""));
    assert!(closing(&b, 1), "both directions are user space's");
    b.handed_back("the backend's next segment", &s.tcp(Tcp { psh: true, ..ack(119) }, b"more"));
    assert_eq!(b.s.fast_counts().handed_back, 5);
}

#[test]
fn two_armed_entries_redirect_to_their_port() {
    let Some(mut b) = Both::new("two_armed_entries_redirect_to_their_port") else { return };
    let fx = fixtures()[0];
    let f = fx.open(&mut b);
    // The client's frames arrive on port 1; the worker sends them from port 0.
    let (_, one_armed) = b.h.worker.fast_entry(&f, Dir::Forward).unwrap();
    let egress = Egress { dmac: one_armed.dmac, smac: one_armed.smac, out: 0, arrival: 1 };
    let (k, e) = sluice_worker::fastpath::entry(&f, Dir::Forward, &egress);
    assert_eq!((e.flags, e.tx_port), (0, 0));
    b.s.fast_install(&k, &e).unwrap();
    let data = fx.client().tcp(ack(5001), b"data");
    let (verdict, _) = b.program(&data);
    assert_eq!(verdict, XDP_DROP, "no interface in fast_tx[0] yet: dropped, not passed rewritten");
    assert_eq!(b.s.fast_counts().no_port, 1);
    b.s.set_fast_port(0, 1).expect("fast_tx[0] = lo");
    let (verdict, out) = b.program(&data);
    assert_eq!(verdict, XDP_REDIRECT);
    assert_eq!(hex(&out), hex(&b.worker("data", &data)), "the same rewrite");
}
