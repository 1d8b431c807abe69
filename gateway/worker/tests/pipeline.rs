//! Pipeline tests: frames built with `etherparse` go through a real `Worker` over an in-memory
//! port; each step states the verdict and, for transmitted frames, the exact expected bytes.
//!
//! Steps are fixture tables — description, input frame, expected outcome. Inputs and expected
//! frames are closures of a small context so that a table can use what an earlier step taught it:
//! the SNAT port the gateway chose (any port of the worker's range is correct; the test then
//! checks every other byte) and the backend Maglev chose. Only a step marked [`Step::learns`] (a
//! new flow's first frame) learns them, from its own output; every other step is judged against
//! what earlier steps taught, so that a later frame on another port or backend fails.

mod common;

use common::*;
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, icmpv4, icmpv6};
use sluice_model::service::*;
use sluice_model::{Counter, DropReason, PortRange};

#[derive(Debug, Default, Clone)]
struct Ctx {
    /// The SNAT port of the last frame the gateway sent from a SNAT address.
    port: u16,
    /// The last octet of the backend the last forwarded frame went to (198.18.1.x / 2001:db8:1::x).
    backend: u8,
    /// The last transmitted frame.
    last_tx: Vec<u8>,
}

enum Expect {
    Tx(Vec<u8>),
    /// Any transmitted frame (for steps whose bytes another test pins).
    AnyTx,
    Kernel,
    Drop(DropReason),
}

type Build = Box<dyn Fn(&Ctx) -> Vec<u8>>;
type Want = Box<dyn Fn(&Ctx) -> Expect>;

struct Step {
    desc: &'static str,
    input: Build,
    expect: Want,
    /// Whether this step's output chooses the SNAT port and backend later steps use.
    learns: bool,
}

fn step(
    desc: &'static str,
    input: impl Fn(&Ctx) -> Vec<u8> + 'static,
    expect: impl Fn(&Ctx) -> Expect + 'static,
) -> Step {
    Step { desc, input: Box::new(input), expect: Box::new(expect), learns: false }
}

/// Learns the backend a frame went to and the SNAT port it left from (when the source is ours).
fn learn(ctx: &mut Ctx, f: &[u8]) {
    ctx.port = 0;
    ctx.backend = 0;
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(f) else { return };
    let is_l4 =
        matches!(p.transport, Some(etherparse::TransportSlice::Tcp(_) | etherparse::TransportSlice::Udp(_)));
    // Learn from frames sent to a backend: the backend, and the SNAT port when the source is ours.
    if ethertype == 0x0800 && f[30..33] == [198, 18, 1] {
        ctx.backend = f[33];
        if f[26..30] == NODE && is_l4 {
            ctx.port = l4_src_port(f);
        }
    } else if ethertype == 0x86dd && f[38..52] == v6("2001:db8:1::")[..14] {
        ctx.backend = f[53];
        if f[22..38] == v6(NODE6) && is_l4 {
            ctx.port = l4_src_port(f);
        }
    }
    if ctx.port != 0 {
        assert!((SNAT_LO..=SNAT_HI).contains(&ctx.port), "SNAT port {} outside the worker's range", ctx.port);
    }
}

fn run(h: &mut Harness, steps: Vec<Step>) -> Ctx {
    let mut ctx = Ctx::default();
    for s in steps {
        let input = (s.input)(&ctx);
        let got = h.send(&input);
        if let Outcome::Tx(f) = &got {
            ctx.last_tx = f.to_vec();
            if s.learns {
                learn(&mut ctx, f);
                assert_ne!(ctx.backend, 0, "{}: learns a backend, but went to none: {}", s.desc, hex(f));
            }
        }
        // A step that learns is judged by what it taught; any other by what came before it
        // (`last_tx` aside, which only inputs use).
        match ((s.expect)(&ctx), got) {
            (Expect::Tx(want), Outcome::Tx(got)) => {
                assert_eq!(hex(&got), hex(&want), "{}: transmitted frame differs (got, want)", s.desc)
            }
            (Expect::AnyTx, Outcome::Tx(_)) => {}
            (Expect::Kernel, Outcome::Kernel(got)) => {
                assert_eq!(got, input, "{}: passed frames are untouched", s.desc)
            }
            (Expect::Drop(want), Outcome::Dropped(got)) => assert_eq!(got, want, "{}: drop reason", s.desc),
            (want, got) => panic!("{}: expected {}, got {got:?}", s.desc, describe(&want)),
        }
    }
    ctx
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::Tx(_) | Expect::AnyTx => "a transmitted frame".into(),
        Expect::Kernel => "a pass to the kernel".into(),
        Expect::Drop(r) => format!("a drop ({})", r.name()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

const CPORT: u16 = 40_000;

// ---------------------------------------------------------------------------------------------
// L4 NAT, both directions

#[test]
fn fullnat_tcp_to_vip_both_directions() {
    let mut h = Harness::standard();
    let ctx = run(
        &mut h,
        vec![
            step(
                "client SYN to the VIP is sent to the backend from a SNAT address and port",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 8080).ttl(63).tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "backend SYN-ACK is reverse-translated to come from the VIP",
                |c| from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, c.port).tcp(syn_ack(), b""),
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP_ONE, 80).to(CLIENT_MAC, CLIENT, CPORT).ttl(63).tcp(syn_ack(), b""),
                    )
                },
            ),
            step(
                "client ACK with a request",
                |_| {
                    from(CLIENT_MAC, CLIENT, CPORT)
                        .to(GW_MAC, VIP_ONE, 80)
                        .tcp(ack(5001), b"GET / HTTP/1.1\r\n\r\n")
                },
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port)
                            .to(backend_mac(1), be(1), 8080)
                            .ttl(63)
                            .tcp(ack(5001), b"GET / HTTP/1.1\r\n\r\n"),
                    )
                },
            ),
            step(
                "backend response",
                |c| {
                    from(backend_mac(1), be(1), 8080)
                        .to(GW_MAC, NODE, c.port)
                        .tcp(ack(119), b"HTTP/1.1 200 OK\r\n\r\n")
                },
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP_ONE, 80)
                            .to(CLIENT_MAC, CLIENT, CPORT)
                            .ttl(63)
                            .tcp(ack(119), b"HTTP/1.1 200 OK\r\n\r\n"),
                    )
                },
            ),
            step(
                "client FIN",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, VIP_ONE, 80).tcp(fin_ack(), b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port)
                            .to(backend_mac(1), be(1), 8080)
                            .ttl(63)
                            .tcp(fin_ack(), b""),
                    )
                },
            ),
            step(
                "backend FIN",
                |c| from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, c.port).tcp(fin_ack(), b""),
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP_ONE, 80).to(CLIENT_MAC, CLIENT, CPORT).ttl(63).tcp(fin_ack(), b""),
                    )
                },
            ),
            step(
                "last ACK",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, VIP_ONE, 80).tcp(ack(202), b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 8080).ttl(63).tcp(ack(202), b""),
                    )
                },
            ),
        ],
    );
    assert_ne!(ctx.port, 0);
    let c = h.worker.counters();
    assert_eq!((c[Counter::NewFlows], c[Counter::Forwarded], c.dropped_total()), (1, 7, 0));
    let flows = h.worker.l4().flows();
    let mut states = Vec::new();
    flows.for_each(|_, f| states.push(f.state));
    assert_eq!(states, vec![sluice_lb::flow::FlowState::TimeWait]);
}

#[test]
fn fullnat_udp_to_vip_both_directions() {
    let mut h = Harness::standard();
    run(
        &mut h,
        vec![
            step(
                "client query",
                |_| from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP_ONE, 53).udp(b"query"),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 5353).ttl(63).udp(b"query"),
                    )
                },
            )
            .learns(),
            step(
                "backend answer",
                |c| from(backend_mac(1), be(1), 5353).to(GW_MAC, NODE, c.port).udp(b"answer"),
                |_| Expect::Tx(from(GW_MAC, VIP_ONE, 53).to(CLIENT_MAC, CLIENT, 5000).ttl(63).udp(b"answer")),
            ),
            step(
                "second query of the same flow keeps its SNAT port",
                |_| from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP_ONE, 53).udp(b"again"),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 5353).ttl(63).udp(b"again"),
                    )
                },
            ),
        ],
    );
    assert_eq!(h.worker.counters()[Counter::NewFlows], 1);
}

#[test]
fn nodeport_tcp_and_udp_on_the_node_address_only() {
    let mut h = Harness::standard();
    run(
        &mut h,
        vec![
            step(
                "SYN to NODE:31080 goes to one of the web backends on 8080",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, NODE, 31080).tcp(SYN, b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port)
                            .to(backend_mac(c.backend), be(c.backend), 8080)
                            .ttl(63)
                            .tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "SYN-ACK comes back from NODE:31080",
                |c| {
                    from(backend_mac(c.backend), be(c.backend), 8080)
                        .to(GW_MAC, NODE, c.port)
                        .tcp(syn_ack(), b"")
                },
                |_| {
                    Expect::Tx(
                        from(GW_MAC, NODE, 31080).to(CLIENT_MAC, CLIENT, CPORT).ttl(63).tcp(syn_ack(), b""),
                    )
                },
            ),
            step(
                "UDP to NODE:31053",
                |_| from(CLIENT_MAC, CLIENT, 6000).to(GW_MAC, NODE, 31053).udp(b"q"),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port)
                            .to(backend_mac(c.backend), be(c.backend), 5353)
                            .ttl(63)
                            .udp(b"q"),
                    )
                },
            )
            .learns(),
            step(
                "UDP answer",
                |c| from(backend_mac(c.backend), be(c.backend), 5353).to(GW_MAC, NODE, c.port).udp(b"a"),
                |_| Expect::Tx(from(GW_MAC, NODE, 31053).to(CLIENT_MAC, CLIENT, 6000).ttl(63).udp(b"a")),
            ),
            step(
                "the NodePort on an address that is not the node's is not ours",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, [198, 18, 0, 9], 31080).tcp(SYN, b""),
                |_| Expect::Kernel,
            ),
            step(
                "a port that is no NodePort is the kernel's (SSH to the node keeps working)",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, NODE, 22).tcp(SYN, b""),
                |_| Expect::Kernel,
            ),
        ],
    );
}

#[test]
fn dnat_keeps_the_client_address_and_adopts_mid_stream_flows() {
    let mut h = Harness::standard();
    run(
        &mut h,
        vec![
            step(
                "SYN: only the destination is rewritten",
                |_| from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, VIP_DNAT, 80).tcp(SYN, b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, CLIENT, CPORT)
                            .to(backend_mac(c.backend), be(c.backend), 8080)
                            .ttl(63)
                            .tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "the backend answers the client directly, routed through the gateway",
                |c| {
                    from(backend_mac(c.backend), be(c.backend), 8080)
                        .to(GW_MAC, CLIENT, CPORT)
                        .tcp(syn_ack(), b"")
                },
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP_DNAT, 80).to(CLIENT_MAC, CLIENT, CPORT).ttl(63).tcp(syn_ack(), b""),
                    )
                },
            ),
            step(
                "a mid-stream segment of a flow this gateway never saw (another node's, or before a restart) is adopted: Maglev picks the backend the flow's SYN got",
                |_| from(CLIENT_MAC, CLIENT, CPORT + 1).to(GW_MAC, VIP_DNAT, 80).tcp(ack(9), b"data"),
                |_| {
                    let b = dnat_backend_of_syn(CPORT + 1);
                    Expect::Tx(
                        from(GW_MAC, CLIENT, CPORT + 1)
                            .to(backend_mac(b), be(b), 8080)
                            .ttl(63)
                            .tcp(ack(9), b"data"),
                    )
                },
            ),
            step(
                "under FullNAT a mid-stream segment cannot be adopted (the SNAT port would differ)",
                |_| from(CLIENT_MAC, CLIENT, CPORT + 2).to(GW_MAC, VIP, 80).tcp(ack(9), b"data"),
                |_| Expect::Drop(DropReason::NoFlowForSegment),
            ),
            step(
                "a stray RST without a flow is not adopted",
                |_| from(CLIENT_MAC, CLIENT, CPORT + 3).to(GW_MAC, VIP_DNAT, 80).tcp(rst(), b""),
                |_| Expect::Drop(DropReason::NoFlowForSegment),
            ),
        ],
    );
    assert_eq!(h.worker.counters()[Counter::AdoptedFlows], 1);
}

/// The backend a fresh gateway (another node, or this one before a restart) sends a DNAT flow's
/// SYN from `sport` to.
fn dnat_backend_of_syn(sport: u16) -> u8 {
    backend_of(
        &Harness::standard().send(&from(CLIENT_MAC, CLIENT, sport).to(GW_MAC, VIP_DNAT, 80).tcp(SYN, b"")),
    )
}

#[test]
fn an_adopted_flow_goes_to_the_backend_its_syn_went_to() {
    // The SYN seen by one gateway, a mid-stream segment of the same flow by another: both pick
    // the same backend, for every flow, and the flows spread (else one backend would pass).
    let mut seen = std::collections::BTreeSet::new();
    for sport in 41_000..41_050u16 {
        let syn = dnat_backend_of_syn(sport);
        let mut other = Harness::standard();
        let mid = other.send(&from(CLIENT_MAC, CLIENT, sport).to(GW_MAC, VIP_DNAT, 80).tcp(ack(9), b"data"));
        assert_eq!(backend_of(&mid), syn, "source port {sport}");
        assert_eq!(other.worker.counters()[Counter::AdoptedFlows], 1);
        seen.insert(syn);
    }
    assert!(seen.len() > 1, "50 flows all on backend {seen:?}");
}

#[test]
fn ipv6_tcp_and_udp_fullnat() {
    let mut h = Harness::standard();
    let b1 = be6(1);
    let (b1a, b1b, b1c) = (b1.clone(), b1.clone(), b1.clone());
    let b1d = b1.clone();
    run(
        &mut h,
        vec![
            step(
                "SYN to the IPv6 VIP",
                |_| from(CLIENT_MAC, CLIENT6, CPORT).to(GW_MAC, VIP6, 80).tcp(SYN, b""),
                move |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE6, c.port).to(backend_mac(1), &b1a, 8080).ttl(63).tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "SYN-ACK",
                move |c| from(backend_mac(1), &b1b, 8080).to(GW_MAC, NODE6, c.port).tcp(syn_ack(), b""),
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP6, 80).to(CLIENT_MAC, CLIENT6, CPORT).ttl(63).tcp(syn_ack(), b""),
                    )
                },
            ),
            step(
                "UDP query over IPv6",
                |_| from(CLIENT_MAC, CLIENT6, 5000).to(GW_MAC, VIP6, 53).udp(b"q6"),
                move |c| {
                    Expect::Tx(from(GW_MAC, NODE6, c.port).to(backend_mac(1), &b1c, 5353).ttl(63).udp(b"q6"))
                },
            )
            .learns(),
            step(
                "UDP answer over IPv6",
                move |c| from(backend_mac(1), &b1d, 5353).to(GW_MAC, NODE6, c.port).udp(b"a6"),
                |_| Expect::Tx(from(GW_MAC, VIP6, 53).to(CLIENT_MAC, CLIENT6, 5000).ttl(63).udp(b"a6")),
            ),
        ],
    );
}

#[test]
fn replies_to_a_remote_client_go_to_its_router() {
    let mut h = Harness::standard();
    run(
        &mut h,
        vec![
            step(
                "SYN from beyond the router",
                |_| from(ROUTER_MAC, REMOTE_CLIENT, CPORT).to(GW_MAC, VIP_ONE, 80).ttl(60).tcp(SYN, b""),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 8080).ttl(59).tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "the answer is sent to the router's MAC",
                |c| from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, c.port).tcp(syn_ack(), b""),
                |_| {
                    Expect::Tx(
                        from(GW_MAC, VIP_ONE, 80)
                            .to(ROUTER_MAC, REMOTE_CLIENT, CPORT)
                            .ttl(63)
                            .tcp(syn_ack(), b""),
                    )
                },
            ),
        ],
    );
}

#[test]
fn vlan_tags_are_kept() {
    let mut h = Harness::standard();
    let tagged = |smac, dmac, src, sport, dst, dport, ttl| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(smac, dmac)
            .single_vlan(etherparse::VlanId::try_new(100).unwrap())
            .ipv4(src, dst, ttl)
            .udp(sport, dport)
            .write(&mut v, b"tagged")
            .unwrap();
        v
    };
    let mut f = Vec::new();
    let input = tagged(CLIENT_MAC, GW_MAC, CLIENT, 5000, VIP_ONE, 53, 64);
    let Outcome::Tx(out) = h.send(&input) else { panic!("forwarded") };
    f.extend_from_slice(&out);
    let port = u16::from_be_bytes([f[38], f[39]]);
    assert_eq!(f, tagged(GW_MAC, backend_mac(1), NODE, port, be(1), 5353, 63));
}

// ---------------------------------------------------------------------------------------------
// ICMP

#[test]
fn icmp_echo_to_a_vip_is_answered_and_others_are_the_kernels() {
    let mut h = Harness::standard();
    let echo4 = |smac, dmac, src, dst, ttl, reply: bool| {
        let mut v = Vec::new();
        let b = PacketBuilder::ethernet2(smac, dmac).ipv4(src, dst, ttl);
        if reply { b.icmpv4_echo_reply(7, 1) } else { b.icmpv4_echo_request(7, 1) }
            .write(&mut v, b"ping")
            .unwrap();
        v
    };
    let echo6 = |smac, dmac, src: &str, dst: &str, hops, reply: bool| {
        let mut v = Vec::new();
        let b = PacketBuilder::ethernet2(smac, dmac).ipv6(v6(src), v6(dst), hops);
        if reply { b.icmpv6_echo_reply(7, 1) } else { b.icmpv6_echo_request(7, 1) }
            .write(&mut v, b"ping6")
            .unwrap();
        v
    };
    run(
        &mut h,
        vec![
            step(
                "ping to a VIP is answered by the gateway",
                move |_| echo4(CLIENT_MAC, GW_MAC, CLIENT, VIP, 64, false),
                move |_| Expect::Tx(echo4(GW_MAC, CLIENT_MAC, VIP, CLIENT, 64, true)),
            ),
            step(
                "ping to the IPv6 VIP too",
                move |_| echo6(CLIENT_MAC, GW_MAC, CLIENT6, VIP6, 30, false),
                move |_| Expect::Tx(echo6(GW_MAC, CLIENT_MAC, VIP6, CLIENT6, 64, true)),
            ),
            step(
                "ping to the node's own address is the kernel's",
                move |_| echo4(CLIENT_MAC, GW_MAC, CLIENT, NODE, 64, false),
                |_| Expect::Kernel,
            ),
            step(
                "an echo reply is the kernel's",
                move |_| echo4(CLIENT_MAC, GW_MAC, CLIENT, NODE, 64, true),
                |_| Expect::Kernel,
            ),
        ],
    );
    assert_eq!(h.worker.counters()[Counter::IcmpEchoReplies], 2);
}

fn port_unreachable() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
}

/// The IP packet of a frame with its TTL set, IPv4 checksum fixed (what a host quotes).
fn ip_of(frame: &[u8], ttl: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[22] = ttl;
    fix_ipv4_checksum(&mut f);
    f[14..].to_vec()
}

#[test]
fn icmp_errors_about_a_flow_are_translated_both_ways() {
    let mut h = Harness::standard();
    let query = from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP_ONE, 53).udp(b"query");
    let q2 = query.clone();
    let syn = from(CLIENT_MAC, CLIENT, CPORT).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b"");
    let syn2 = syn.clone();
    run(
        &mut h,
        vec![
            step(
                "a UDP query opens a flow",
                move |_| q2.clone(),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 5353).ttl(63).udp(b"query"),
                    )
                },
            )
            .learns(),
            step(
                "the backend's port-unreachable (quoting the whole datagram) reaches the client, from the VIP, about the client's own datagram",
                |c| {
                    from_host(backend_mac(1), be(1))
                        .to_host(GW_MAC, NODE)
                        .icmp4(port_unreachable(), &c.last_tx[14..])
                },
                move |_| {
                    Expect::Tx(
                        from_host(GW_MAC, VIP_ONE)
                            .to_host(CLIENT_MAC, CLIENT)
                            .ttl(63)
                            .icmp4(port_unreachable(), &ip_of(&query, 63)),
                    )
                },
            ),
            step(
                "the client's port-unreachable about our answer goes to the backend, about the backend's own datagram",
                |c| {
                    let _ = c;
                    // What the client received: the answer as the gateway sent it.
                    let seen = from(GW_MAC, VIP_ONE, 53).to(CLIENT_MAC, CLIENT, 5000).ttl(63).udp(b"answer");
                    from_host(CLIENT_MAC, CLIENT)
                        .to_host(GW_MAC, VIP_ONE)
                        .icmp4(port_unreachable(), &seen[14..])
                },
                |c| {
                    let sent =
                        from(backend_mac(1), be(1), 5353).to(GW_MAC, NODE, c.port).ttl(63).udp(b"answer");
                    Expect::Tx(
                        from_host(GW_MAC, NODE)
                            .to_host(backend_mac(1), be(1))
                            .ttl(63)
                            .icmp4(port_unreachable(), &sent[14..]),
                    )
                },
            ),
            step(
                "a TCP SYN opens a flow",
                move |_| syn2.clone(),
                |c| {
                    Expect::Tx(
                        from(GW_MAC, NODE, c.port).to(backend_mac(1), be(1), 8080).ttl(63).tcp(SYN, b""),
                    )
                },
            )
            .learns(),
            step(
                "fragmentation-needed from a router on the backend side (RFC 792 quote: header + 8 bytes) keeps the router as its source",
                |c| {
                    from_host(backend_mac(3), [198, 18, 1, 254]).to_host(GW_MAC, NODE).icmp4(
                        Icmpv4Type::DestinationUnreachable(
                            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
                        ),
                        &c.last_tx[14..14 + 28],
                    )
                },
                move |_| {
                    Expect::Tx(
                        from_host(GW_MAC, [198, 18, 1, 254]).to_host(CLIENT_MAC, CLIENT).ttl(63).icmp4(
                            Icmpv4Type::DestinationUnreachable(
                                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
                            ),
                            &ip_of(&syn, 63)[..28],
                        ),
                    )
                },
            ),
            step(
                "an error about no flow, sent to a VIP, is dropped and counted",
                |_| {
                    let stray = from(GW_MAC, VIP_ONE, 53).to(CLIENT_MAC, CLIENT, 9999).ttl(63).udp(b"x");
                    from_host(CLIENT_MAC, CLIENT)
                        .to_host(GW_MAC, VIP_ONE)
                        .icmp4(port_unreachable(), &stray[14..])
                },
                |_| Expect::Drop(DropReason::IcmpErrorNoFlow),
            ),
            step(
                "an error about no flow, sent to the node, is the kernel's",
                |_| {
                    let stray = from(GW_MAC, NODE, 53).to(CLIENT_MAC, CLIENT, 9999).ttl(63).udp(b"x");
                    from_host(CLIENT_MAC, CLIENT)
                        .to_host(GW_MAC, NODE)
                        .icmp4(port_unreachable(), &stray[14..])
                },
                |_| Expect::Kernel,
            ),
            step(
                "an error to a VIP whose quote is unreadable is dropped and counted",
                |_| {
                    from_host(CLIENT_MAC, CLIENT)
                        .to_host(GW_MAC, VIP_ONE)
                        .icmp4(port_unreachable(), &[0x45, 0, 0, 20, 0, 0])
                },
                |_| Expect::Drop(DropReason::IcmpErrorMalformed),
            ),
        ],
    );
    assert_eq!(h.worker.counters()[Counter::IcmpErrorsTranslated], 3);
}

#[test]
fn icmpv6_packet_too_big_is_translated() {
    let mut h = Harness::standard();
    let syn = from(CLIENT_MAC, CLIENT6, CPORT).to(GW_MAC, VIP6, 80).tcp(SYN, b"0123456789");
    let s2 = syn.clone();
    let _ = icmpv6::DestUnreachableCode::Port;
    let b1 = be6(1);
    run(
        &mut h,
        vec![
            step("SYN over IPv6", move |_| s2.clone(), |_| Expect::Tx(Vec::new())).learns().expect_any_tx(),
            step(
                "packet-too-big from the backend reaches the client about its own segment",
                move |c| {
                    from_host(backend_mac(1), &b1)
                        .to_host(GW_MAC, NODE6)
                        .icmp6(Icmpv6Type::PacketTooBig { mtu: 1280 }, &c.last_tx[14..])
                },
                move |_| {
                    let mut quote = syn[14..].to_vec();
                    quote[7] = 63;
                    Expect::Tx(
                        from_host(GW_MAC, VIP6)
                            .to_host(CLIENT_MAC, CLIENT6)
                            .ttl(63)
                            .icmp6(Icmpv6Type::PacketTooBig { mtu: 1280 }, &quote),
                    )
                },
            ),
        ],
    );
}

impl Step {
    /// Accepts any transmitted frame (for steps whose bytes another test pins).
    fn expect_any_tx(self) -> Step {
        Step { expect: Box::new(|_| Expect::AnyTx), ..self }
    }

    /// Marks the first frame of a new flow: its output teaches later steps the SNAT port and
    /// the backend chosen, and it is judged by them.
    fn learns(self) -> Step {
        Step { learns: true, ..self }
    }
}

// ---------------------------------------------------------------------------------------------
// Backend choice: spread, affinity, terminating endpoints, table changes

#[test]
fn new_flows_spread_over_every_backend() {
    let mut h = Harness::standard();
    let mut n = [0u32; 4];
    for i in 0..300u16 {
        let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, 1024 + i).to(GW_MAC, VIP, 80).tcp(SYN, b""))
        else {
            panic!("forwarded")
        };
        n[usize::from(dst4(&f)[3])] += 1;
    }
    assert!(n[1..].iter().all(|&c| (60..=140).contains(&c)), "{n:?}");
}

fn syn_to(h: &mut Harness, src: [u8; 4], sport: u16, vip: [u8; 4]) -> Outcome {
    h.send(&from(CLIENT_MAC, src, sport).to(GW_MAC, vip, 80).tcp(SYN, b""))
}

fn backend_of(o: &Outcome) -> u8 {
    match o {
        Outcome::Tx(f) => dst4(f)[3],
        other => panic!("not forwarded: {other:?}"),
    }
}

#[test]
fn session_affinity_client_ip_holds_until_the_timeout() {
    let mut services = standard_services();
    let mut h = Harness::new(services.clone());
    // Many connections from one client: one backend.
    let first = backend_of(&syn_to(&mut h, CLIENT, 1000, VIP_AFFINITY));
    for p in 1001..1020 {
        assert_eq!(backend_of(&syn_to(&mut h, CLIENT, p, VIP_AFFINITY)), first);
    }
    // Different clients spread.
    let mut seen = std::collections::HashSet::new();
    for i in 1..60u8 {
        seen.insert(backend_of(&syn_to(&mut h, [198, 18, 2, i], 1000, VIP_AFFINITY)));
    }
    assert!(seen.len() >= 2, "clients spread: {seen:?}");
    // The pinned backend stops being ready: the client is re-pinned elsewhere.
    let aff = services.iter_mut().find(|s| s.name == "default/sticky:80").unwrap();
    for b in aff.backends.iter_mut() {
        if b.addr.v4()[3] == first {
            b.conditions = Conditions::DRAINING;
        }
    }
    h.worker.set_table(table(2, services.clone()));
    let second = backend_of(&syn_to(&mut h, CLIENT, 2000, VIP_AFFINITY));
    assert_ne!(second, first);
    // It comes back: affinity keeps the client where it was re-pinned...
    let aff = services.iter_mut().find(|s| s.name == "default/sticky:80").unwrap();
    for b in aff.backends.iter_mut() {
        b.conditions = Conditions::READY;
    }
    h.worker.set_table(table(3, services));
    h.advance_s(9);
    assert_eq!(backend_of(&syn_to(&mut h, CLIENT, 2001, VIP_AFFINITY)), second, "within timeoutSeconds");
    h.advance_s(9);
    assert_eq!(
        backend_of(&syn_to(&mut h, CLIENT, 2002, VIP_AFFINITY)),
        second,
        "each new connection refreshes"
    );
    // ...until timeoutSeconds (10 s) pass with no new connection.
    h.advance_s(11);
    assert_eq!(
        backend_of(&syn_to(&mut h, CLIENT, 2003, VIP_AFFINITY)),
        first,
        "after the timeout, a fresh choice"
    );
    assert!(h.worker.counters()[Counter::AffinityHits] >= 20);
}

#[test]
fn terminating_endpoints_keep_their_flows_and_get_no_new_ones() {
    // Both ready at first; find a client port whose flow lands on backend 2.
    let both = |c2: Conditions, with1: bool| {
        let mut s = standard_services();
        let d = s.iter_mut().find(|s| s.name == "default/drain:80").unwrap();
        d.backends = if with1 { backends(&[1], 8080, Conditions::READY) } else { vec![] };
        d.backends.extend(backends(&[2], 8080, c2));
        s
    };
    let mut h = Harness::new(both(Conditions::READY, true));
    let sport = (1000..2000).find(|&p| backend_of(&syn_to(&mut h, CLIENT, p, VIP_DRAIN)) == 2).unwrap();
    // Backend 2 starts terminating.
    h.worker.set_table(table(2, both(Conditions::DRAINING, true)));
    let again = h.send(&from(CLIENT_MAC, CLIENT, sport).to(GW_MAC, VIP_DRAIN, 80).tcp(ack(1), b"more"));
    assert_eq!(backend_of(&again), 2, "the established flow stays on the terminating endpoint");
    for p in 3000..3100 {
        assert_eq!(
            backend_of(&syn_to(&mut h, CLIENT, p, VIP_DRAIN)),
            1,
            "new flows avoid the terminating endpoint"
        );
    }
    // With no ready endpoint left, serving+terminating ones take new flows (kube-proxy's fallback).
    h.worker.set_table(table(3, both(Conditions::DRAINING, false)));
    assert_eq!(backend_of(&syn_to(&mut h, CLIENT, 4000, VIP_DRAIN)), 2);
    // Terminating and no longer serving: nothing takes new flows.
    h.worker.set_table(table(4, both(Conditions { ready: false, serving: false, terminating: true }, false)));
    assert_eq!(syn_to(&mut h, CLIENT, 4001, VIP_DRAIN), Outcome::Dropped(DropReason::NoBackend));
}

#[test]
fn a_selector_switch_moves_new_flows_and_established_ones_finish() {
    // Blue: backend 1. Green: backends 2 and 3. The Service's selector switches from blue to green.
    let web = |lasts: &[u8]| {
        let mut s = standard_services();
        s[0].backends = backends(lasts, 8080, Conditions::READY);
        s
    };
    let mut h = Harness::new(web(&[1]));
    let mut ports = Vec::new();
    for p in 5000..5020u16 {
        assert_eq!(backend_of(&syn_to(&mut h, CLIENT, p, VIP)), 1);
        ports.push((p, h.port_snat_of_last()));
    }
    h.worker.set_table(table(2, web(&[2, 3])));
    for &(p, snat) in &ports {
        // Both directions of each established flow still work, on blue.
        let fwd = h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP, 80).tcp(ack(1), b"req"));
        assert_eq!(backend_of(&fwd), 1, "established flow {p} finishes on blue");
        let back = h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(ack(4), b"resp"));
        assert_eq!(
            back,
            Outcome::Tx(from(GW_MAC, VIP, 80).to(CLIENT_MAC, CLIENT, p).ttl(63).tcp(ack(4), b"resp"))
        );
    }
    for p in 6000..6040u16 {
        assert_ne!(backend_of(&syn_to(&mut h, CLIENT, p, VIP)), 1, "new flows go to green");
    }
    let c = h.worker.counters();
    assert_eq!(c[Counter::FlowsOrphaned], 20);
    assert_eq!(c.dropped_total(), 0);
}

impl Harness {
    /// The SNAT port of the frame the last `send` transmitted (re-derived from the flow table).
    fn port_snat_of_last(&self) -> u16 {
        let mut newest = (0u64, 0u16);
        self.worker.l4().flows().for_each(|id, f| {
            let _ = id;
            if f.last_seen_ns >= newest.0 {
                newest = (f.last_seen_ns, f.rev.dport);
            }
        });
        newest.1
    }
}

#[test]
fn a_removed_backend_affects_only_its_own_flows_and_udp_moves_on() {
    let mut h = Harness::standard();
    // UDP flows over all three backends.
    let mut by_backend = std::collections::HashMap::new();
    for p in 7000..7060u16 {
        let b = backend_of(&h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP, 53).udp(b"q")));
        by_backend.entry(b).or_insert_with(Vec::new).push(p);
    }
    assert_eq!(by_backend.len(), 3);
    let mut s = standard_services();
    s[1].backends = backends(&[1, 2], 5353, Conditions::READY);
    h.worker.set_table(table(2, s));
    for (b, ports) in &by_backend {
        for &p in ports {
            let now = backend_of(&h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP, 53).udp(b"q")));
            if *b == 3 {
                assert_ne!(now, 3, "a flow of the removed backend moves on");
            } else {
                assert_eq!(now, *b, "flows of the other backends stay (Maglev moves only what it must)");
            }
        }
    }
}

#[test]
fn snat_never_reuses_a_tuple_a_backend_may_hold_in_time_wait() {
    let mut cfg = worker_config();
    cfg.l4.snat_ports = PortRange::new(SNAT_LO, SNAT_LO + 49).unwrap();
    let mut h = Harness {
        worker: sluice_worker::Worker::new(&cfg, table(1, standard_services()), next_hops()),
        ..Harness::standard()
    };
    // Fifty connections opened and closed by the backend first (the backend holds TIME_WAIT).
    // That their fifty ports differ is the per-backend cursor's doing, not the check under
    // test: that is the refusal once the cursor has wrapped, below.
    for i in 0..50u16 {
        let p = 9000 + i;
        let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b""))
        else {
            panic!()
        };
        let snat = l4_src_port(&f);
        for (from_backend, t) in
            [(true, syn_ack()), (false, ack(5001)), (true, fin_ack()), (false, fin_ack()), (true, ack(202))]
        {
            let o = if from_backend {
                h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(t, b""))
            } else {
                h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP_ONE, 80).tcp(t, b""))
            };
            assert!(matches!(o, Outcome::Tx(_)));
        }
    }
    // Every port of the range is in TIME_WAIT towards this backend: a new connection is refused
    // and counted rather than sent into a TIME_WAIT socket.
    assert_eq!(syn_to(&mut h, CLIENT, 9100, VIP_ONE), Outcome::Dropped(DropReason::SnatExhausted));
    // Another backend's tuples are independent.
    h.worker.set_table(table(2, {
        let mut s = standard_services();
        let one = s.iter_mut().find(|s| s.name == "default/one:80").unwrap();
        one.backends = backends(&[2], 8080, Conditions::READY);
        s
    }));
    assert_eq!(backend_of(&syn_to(&mut h, CLIENT, 9101, VIP_ONE)), 2);
    // After the backend's TIME_WAIT (60 s; the tracker holds 61 s) the tuples are free again.
    h.worker.set_table(table(3, standard_services()));
    h.advance_s(62);
    for _ in 0..200 {
        h.worker.poll(&mut h.port, h.now_ns); // idle polls sweep expired flows
    }
    assert_eq!(backend_of(&syn_to(&mut h, CLIENT, 9102, VIP_ONE)), 1);
}

// ---------------------------------------------------------------------------------------------
// What is not ours, and what is broken

#[test]
fn refusals_and_passes() {
    let mut h = Harness::standard();
    let mut unresolved = standard_services();
    unresolved.push(svc(
        "default/far:80",
        vec![key(a4([198, 19, 0, 70]), 80, Protocol::Tcp)],
        backends(&[9], 8080, Conditions::READY),
    ));
    unresolved.push(svc(
        "default/farther:80",
        vec![key(a4([198, 19, 0, 71]), 80, Protocol::Tcp)],
        backends(&[10], 8080, Conditions::READY),
    ));
    let mut u = Harness::new(unresolved);
    run(
        &mut h,
        vec![
            step(
                "a service with no endpoints refuses new flows",
                |_| from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, VIP_EMPTY, 80).tcp(SYN, b""),
                |_| Expect::Drop(DropReason::NoBackend),
            ),
            step(
                "a port of a VIP with no service is the kernel's",
                |_| from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, VIP, 9999).udp(b"x"),
                |_| Expect::Kernel,
            ),
            step(
                "TTL 1 to a VIP cannot be forwarded",
                |_| from(CLIENT_MAC, CLIENT, 2).to(GW_MAC, VIP, 80).ttl(1).tcp(SYN, b""),
                |_| Expect::Drop(DropReason::TtlExceeded),
            ),
            step(
                "GRE to a VIP is not a protocol services speak",
                |_| {
                    let mut f = from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, VIP, 53).udp(b"gre");
                    f[23] = 47;
                    fix_ipv4_checksum(&mut f);
                    f
                },
                |_| Expect::Drop(DropReason::UnsupportedProtocol),
            ),
            step(
                "GRE elsewhere is the kernel's",
                |_| {
                    let mut f = from(CLIENT_MAC, CLIENT, 1).to(GW_MAC, NODE, 53).udp(b"gre");
                    f[23] = 47;
                    fix_ipv4_checksum(&mut f);
                    f
                },
                |_| Expect::Kernel,
            ),
            step("ARP is the kernel's", |_| arp_request(CLIENT_MAC, CLIENT, NODE), |_| Expect::Kernel),
        ],
    );
    // A next hop with no known MAC: the frame is held and resolution requested; it leaves at the
    // first poll after the neighbour is learned.
    assert_eq!(syn_to(&mut u, CLIENT, 1, [198, 19, 0, 70]), Outcome::Parked);
    assert_eq!(u.worker.next_hops_mut().pending().collect::<Vec<_>>(), vec![a4(be(9))]);
    assert_eq!(u.worker.poll(&mut u.port, u.now_ns), 0);
    assert!(u.port.take_tx().is_none(), "still waiting");
    u.worker.next_hops_mut().set_neighbor(a4(be(9)), backend_mac(9));
    u.worker.poll(&mut u.port, u.now_ns);
    let held = u.port.take_tx().expect("the held SYN leaves once its neighbour is known");
    assert_eq!(backend_of(&Outcome::Tx(held.clone())), 9);
    assert_eq!(held[0..6], backend_mac(9), "to the learned MAC");
    assert_eq!(u.worker.parked(), 0);
    // One that never resolves is dropped and counted after PARK_NS.
    assert_eq!(syn_to(&mut u, CLIENT, 2, [198, 19, 0, 71]), Outcome::Parked);
    u.advance_s(2);
    u.worker.poll(&mut u.port, u.now_ns);
    assert_eq!(u.worker.parked(), 0);
    assert_eq!(u.worker.counters().dropped(DropReason::NeighborUnresolved), 1);
    assert_eq!(u.port.free_frames(), 256, "every frame is back in the pool");
    // A full transmit ring: the frame is not taken in (no work done on a frame that could not
    // leave, nothing dropped); it goes out once the ring has room.
    h.port.set_tx_capacity(0);
    assert!(h.port.inject(&from(CLIENT_MAC, CLIENT, 3).to(GW_MAC, VIP, 80).tcp(SYN, b"")));
    assert_eq!(h.worker.poll(&mut h.port, h.now_ns), 0);
    assert_eq!(h.port.rx_pending(), 1, "left in the receive ring");
    assert_eq!(h.worker.counters()[Counter::TxWaits], 1);
    assert_eq!(h.worker.counters().dropped(DropReason::TxRingFull), 0);
    // Room for two: of five waiting frames two are taken, the rest wait.
    h.port.set_tx_capacity(2);
    for p in 4..8 {
        assert!(h.port.inject(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP, 80).tcp(SYN, b"")));
    }
    assert_eq!(h.worker.poll(&mut h.port, h.now_ns), 2);
    assert_eq!((h.port.tx_pending(), h.port.rx_pending()), (2, 3));
    h.port.set_tx_capacity(usize::MAX);
    assert_eq!(h.worker.poll(&mut h.port, h.now_ns), 3);
    assert_eq!(h.port.tx_pending(), 5);
    assert_eq!(h.worker.counters().dropped(DropReason::TxRingFull), 0);
}

#[test]
fn malformed_input_is_dropped_and_counted() {
    let good = || from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP, 53).udp(b"payload!");
    let tcp = || from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP, 80).tcp(SYN, b"");
    let good6 = || from(CLIENT_MAC, CLIENT6, 5000).to(GW_MAC, VIP6, 53).udp(b"payload!");
    let patched = |f: Vec<u8>, at: usize, bytes: &'static [u8], fix: bool| {
        move |_: &Ctx| {
            let mut f = f.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            if fix {
                fix_ipv4_checksum(&mut f);
            }
            f
        }
    };
    let d = |r: DropReason| move |_: &Ctx| Expect::Drop(r);
    let mut h = Harness::standard();
    run(
        &mut h,
        vec![
            step("empty frame", |_| vec![], d(DropReason::TruncatedEthernet)),
            step("13 bytes", move |_| good()[..13].to_vec(), d(DropReason::TruncatedEthernet)),
            step(
                "unknown EtherType (LLDP)",
                patched(good(), 12, &[0x88, 0xcc], false),
                d(DropReason::UnknownEthertype),
            ),
            step(
                "three stacked VLAN tags",
                |_| {
                    let mut f = vec![0u8; 60];
                    f[12..14].copy_from_slice(&[0x88, 0xa8]);
                    f[16..18].copy_from_slice(&[0x81, 0x00]);
                    f[20..22].copy_from_slice(&[0x81, 0x00]);
                    f[24..26].copy_from_slice(&[0x08, 0x00]);
                    f
                },
                d(DropReason::BadVlan),
            ),
            step(
                "a VLAN tag cut short",
                move |_| {
                    let mut f = good()[..16].to_vec();
                    f[12..14].copy_from_slice(&[0x81, 0x00]);
                    f
                },
                d(DropReason::BadVlan),
            ),
            step("IPv4 header cut short", move |_| good()[..14 + 12].to_vec(), d(DropReason::TruncatedIpv4)),
            step(
                "IHL 4 (below the minimum)",
                patched(good(), 14, &[0x44], true),
                d(DropReason::BadIpv4HeaderLen),
            ),
            step(
                "IHL 15 beyond the packet",
                move |_| {
                    let mut f = good();
                    f.resize(14 + 40, 0);
                    f[14] = 0x4f;
                    f[16..18].copy_from_slice(&40u16.to_be_bytes());
                    f
                },
                d(DropReason::BadIpv4HeaderLen),
            ),
            step(
                "total length that lies (1500 in a short frame)",
                patched(good(), 16, &[0x05, 0xdc], true),
                d(DropReason::BadIpv4Length),
            ),
            step(
                "total length below the header",
                patched(good(), 16, &[0x00, 0x10], true),
                d(DropReason::BadIpv4Length),
            ),
            step(
                "IPv6 version in an IPv4 EtherType",
                patched(good(), 14, &[0x65], false),
                d(DropReason::BadIpVersion),
            ),
            step(
                "first fragment (MF)",
                patched(good(), 20, &[0x20, 0x00], true),
                d(DropReason::Ipv4Fragment),
            ),
            step(
                "later fragment (offset)",
                patched(good(), 20, &[0x00, 0x10], true),
                d(DropReason::Ipv4Fragment),
            ),
            step(
                "TCP header cut short (IP length says so)",
                move |_| cut_ipv4(&tcp(), 20 + 12),
                d(DropReason::TruncatedTcp),
            ),
            step(
                "TCP data offset 4",
                patched(tcp(), 14 + 20 + 12, &[0x40], false),
                d(DropReason::BadTcpHeaderLen),
            ),
            step(
                "TCP data offset beyond the segment",
                patched(tcp(), 14 + 20 + 12, &[0xf0], false),
                d(DropReason::BadTcpHeaderLen),
            ),
            step(
                "UDP length that lies",
                patched(good(), 14 + 20 + 4, &[0x01, 0x00], false),
                d(DropReason::BadUdpLength),
            ),
            step(
                "UDP length below its header",
                patched(good(), 14 + 20 + 4, &[0x00, 0x04], false),
                d(DropReason::BadUdpLength),
            ),
            step("UDP header cut short", move |_| cut_ipv4(&good(), 20 + 4), d(DropReason::TruncatedUdp)),
            step(
                "ICMP header cut short",
                move |_| {
                    let mut f = good();
                    f[23] = 1; // ICMP
                    cut_ipv4(&f, 20 + 4)
                },
                d(DropReason::TruncatedIcmp),
            ),
            step("IPv6 header cut short", move |_| good6()[..14 + 30].to_vec(), d(DropReason::TruncatedIpv6)),
            step(
                "IPv6 payload length that lies",
                patched(good6(), 14 + 4, &[0x01, 0x00], false),
                d(DropReason::BadIpv6Length),
            ),
            step(
                "IPv6 fragment header",
                move |_| {
                    let mut f = good6();
                    f[14 + 6] = 44;
                    f
                },
                d(DropReason::Ipv6Fragment),
            ),
            step(
                "IPv6 extension header beyond the packet",
                move |_| {
                    let mut f = good6();
                    f[14 + 6] = 0;
                    f[14 + 40 + 1] = 9;
                    f
                },
                d(DropReason::BadIpv6Length),
            ),
            step(
                "IPv6 extension chain longer than we walk",
                |_| {
                    let mut v = Vec::new();
                    PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC)
                        .ipv6(v6(CLIENT6), v6(VIP6), 64)
                        .udp(1, 53)
                        .write(&mut v, &[0u8; 80])
                        .unwrap();
                    v[14 + 6] = 60;
                    for i in 0..10 {
                        v[14 + 40 + 8 * i] = 60;
                        v[14 + 40 + 8 * i + 1] = 0;
                    }
                    v
                },
                d(DropReason::Ipv6ExtensionChain),
            ),
            step(
                "ARP that is not Ethernet/IPv4",
                |_| {
                    let mut f = vec![0xff; 6];
                    f.extend_from_slice(&CLIENT_MAC);
                    f.extend_from_slice(&[0x08, 0x06, 0, 6, 8, 0, 6, 4, 0, 1]);
                    f.extend_from_slice(&[0u8; 20]);
                    f
                },
                d(DropReason::MalformedArp),
            ),
        ],
    );
    let c = h.worker.counters();
    assert_eq!(c[Counter::Forwarded] + c[Counter::Passed], 0);
    assert_eq!(c.dropped_total(), c[Counter::RxFrames]);
}

/// Opens a FullNAT connection from `client:p` to VIP_ONE through the whole handshake (the
/// backend answers, the client acknowledges); returns its SNAT port.
fn establish(h: &mut Harness, client: [u8; 4], p: u16) -> u16 {
    let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, client, p).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b"")) else {
        panic!("SYN from {client:?}:{p} not forwarded")
    };
    let snat = l4_src_port(&f);
    let o = h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(syn_ack(), b""));
    assert!(matches!(o, Outcome::Tx(_)), "SYN-ACK: {o:?}");
    let o = h.send(&from(CLIENT_MAC, client, p).to(GW_MAC, VIP_ONE, 80).tcp(ack(5001), b""));
    assert!(matches!(o, Outcome::Tx(_)), "ACK: {o:?}");
    snat
}

/// A harness whose worker has only fifty SNAT ports, and `snat` as every service's pool.
fn small_snat(snat: &[[u8; 4]]) -> Harness {
    let mut cfg = worker_config();
    cfg.l4.snat_ports = PortRange::new(SNAT_LO, SNAT_LO + 49).unwrap();
    let services: Vec<ServiceSpec> = standard_services()
        .into_iter()
        .map(|mut s| {
            s.snat = snat.iter().map(|a| a4(*a)).chain([a6(NODE6)]).collect();
            s
        })
        .collect();
    Harness {
        worker: sluice_worker::Worker::new(&cfg, table(1, services), next_hops()),
        ..Harness::standard()
    }
}

#[test]
fn a_tuple_taken_back_from_a_half_open_flow_is_reset_at_the_backend_first() {
    // Fifty ports, fifty half-open SYNs the backend answered: the fifty-first SYN takes one of
    // their tuples. The backend still holds that SYN half-open (SYN-RECEIVED); the gateway sends
    // it a RST at the old connection's next sequence number, then the new SYN, in that order.
    let mut h = small_snat(&[NODE]);
    let mut isn_of = std::collections::HashMap::new();
    for i in 0..50u16 {
        let syn = Tcp { seq: 1000 + u32::from(i), ..SYN };
        let Outcome::Tx(f) =
            h.send(&from(CLIENT_MAC, [198, 18, 9, 1], 10_000 + i).to(GW_MAC, VIP_ONE, 80).tcp(syn, b""))
        else {
            panic!()
        };
        isn_of.insert(l4_src_port(&f), 1000 + u32::from(i));
        let sa = Tcp { syn: true, ack: Some(1001 + u32::from(i)), seq: 5000, ..Tcp::default() };
        assert!(matches!(
            h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, l4_src_port(&f)).tcp(sa, b"")),
            Outcome::Tx(_)
        ));
    }
    assert!(h.before.is_empty());
    let Outcome::Tx(syn) = h.send(&from(CLIENT_MAC, CLIENT, 7777).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b""))
    else {
        panic!()
    };
    let snat = l4_src_port(&syn);
    assert_eq!(h.before.len(), 1, "a RST ahead of the SYN");
    let rst = &h.before[0];
    let p = etherparse::SlicedPacket::from_ethernet(rst).unwrap();
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else { panic!() };
    assert!(t.rst());
    assert_eq!(
        (dst4(rst), src4(rst), t.destination_port(), t.source_port()),
        (be(1), NODE, 8080, snat),
        "the same tuple"
    );
    assert_eq!(t.sequence_number(), isn_of[&snat] + 1, "in the backend's window");
    assert_eq!(&rst[..6], &backend_mac(1));
    assert_eq!(h.worker.counters()[Counter::ExtrasSent], 1);
}

#[test]
fn a_syn_flood_the_backend_answers_cannot_lock_real_clients_out() {
    let mut h = small_snat(&[NODE]);
    // Ten real connections, fully established.
    let established: Vec<(u16, u16)> =
        (0..10u16).map(|i| (7000 + i, establish(&mut h, CLIENT, 7000 + i))).collect();
    // A flood of SYNs from many addresses, each answered by the backend with a SYN-ACK (a real
    // server does) and never acknowledged: SYN-RECEIVED is still half-open, so the flood takes
    // back its own tuples and never those of the established connections.
    for i in 0..400u16 {
        let flooder = [198, 18, 9, (i % 250) as u8];
        let o = h.send(&from(CLIENT_MAC, flooder, 10_000 + i).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b""));
        let Outcome::Tx(f) = o else { panic!("flood SYN {i}: {o:?}") };
        let snat = l4_src_port(&f);
        let o = h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(syn_ack(), b""));
        assert!(matches!(o, Outcome::Tx(_)), "flood SYN-ACK {i}: {o:?}");
        if i % 40 == 0 {
            // Real clients keep getting in during the flood.
            establish(&mut h, [198, 18, 2, 7], 5000 + i);
        }
    }
    assert!(h.worker.counters()[Counter::SnatReclaimed] > 300);
    assert_eq!(h.worker.counters().dropped(DropReason::SnatExhausted), 0);
    // Each tuple taken back was cleared at the backend first.
    assert_eq!(h.worker.counters()[Counter::ExtrasSent], h.worker.counters()[Counter::SnatReclaimed]);
    for (p, snat) in established {
        let o = h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP_ONE, 80).tcp(ack(5001), b"data"));
        let Outcome::Tx(f) = o else { panic!("established flow {p} lost: {o:?}") };
        assert_eq!(l4_src_port(&f), snat);
    }
}

/// How a test connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The backend's FIN first (HTTP with `Connection: close`): the backend holds TIME_WAIT.
    BackendFirst,
    /// The client's FIN first, which the backend's FIN acknowledges: a passive close, no
    /// TIME_WAIT on the backend.
    ClientFirst,
    /// Both FINs sent before either saw the other's: both sides hold TIME_WAIT.
    Crossing,
}

/// Runs one connection through the handshake and a close; returns its SNAT port, or `None`
/// when its SYN was not forwarded.
fn open_and_close(h: &mut Harness, client: [u8; 4], p: u16, syn_seq: u32, closing: Closing) -> Option<u16> {
    let syn = Tcp { seq: syn_seq, ..SYN };
    let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, client, p).to(GW_MAC, VIP_ONE, 80).tcp(syn, b"")) else {
        return None;
    };
    let snat = l4_src_port(&f);
    let (c1, b1) = (syn_seq + 1, 5001);
    let seg = |seq: u32, ack: u32, fin: bool| Tcp { seq, ack: Some(ack), fin, ..Tcp::default() };
    let (by_client, backend) = (false, true);
    let steps = match closing {
        Closing::BackendFirst => vec![
            (backend, seg(b1, c1, true)),
            (by_client, seg(c1, b1 + 1, true)),
            (backend, seg(b1 + 1, c1 + 1, false)),
        ],
        Closing::ClientFirst => vec![
            (by_client, seg(c1, b1, true)),
            (backend, seg(b1, c1 + 1, true)),
            (by_client, seg(c1 + 1, b1 + 1, false)),
        ],
        Closing::Crossing => vec![
            (by_client, seg(c1, b1, true)),
            (backend, seg(b1, c1, true)),
            (by_client, seg(c1 + 1, b1 + 1, false)),
            (backend, seg(b1 + 1, c1 + 1, false)),
        ],
    };
    let handshake = [(backend, syn_ack()), (by_client, seg(c1, b1, false))];
    for (from_backend, t) in handshake.into_iter().chain(steps) {
        let o = if from_backend {
            h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(t, b""))
        } else {
            h.send(&from(CLIENT_MAC, client, p).to(GW_MAC, VIP_ONE, 80).tcp(t, b""))
        };
        assert!(matches!(o, Outcome::Tx(_)), "{closing:?}: {o:?}");
    }
    assert_eq!(flow_of(h, p).state, sluice_lb::flow::FlowState::TimeWait, "{closing:?}");
    Some(snat)
}

#[test]
fn a_tuple_the_backend_no_longer_holds_is_reused_at_once() {
    let mut h = small_snat(&[NODE]);
    // The client closes first: the backend passes through LAST_ACK to CLOSED and keeps nothing,
    // so a connection storm never runs out of the fifty ports.
    for i in 0..500u16 {
        let client = [198, 18, 3, (i % 200) as u8];
        assert!(
            open_and_close(&mut h, client, 10_000 + i, 1000, Closing::ClientFirst).is_some(),
            "connection {i}"
        );
    }
    assert!(h.worker.counters()[Counter::SnatReused] >= 450);
    assert_eq!(h.worker.counters().dropped(DropReason::SnatExhausted), 0);
}

#[test]
fn a_backends_time_wait_takes_a_new_syn_only_with_a_higher_sequence_number() {
    // The backend closes first (HTTP with Connection: close), or the FINs cross: either way it
    // holds TIME_WAIT.
    for closing in [Closing::BackendFirst, Closing::Crossing] {
        time_wait_takes_a_new_syn_only_with_a_higher_sequence_number(closing);
    }
}

fn time_wait_takes_a_new_syn_only_with_a_higher_sequence_number(closing: Closing) {
    let mut h = small_snat(&[NODE]);
    // The backend closes first (HTTP with Connection: close): it holds TIME_WAIT on every
    // tuple. A new SYN whose sequence number is below the old connection's is refused by
    // TIME_WAIT (RFC 6191), so those tuples are not reused...
    for i in 0..50u16 {
        assert!(open_and_close(&mut h, CLIENT, 9000 + i, 1_000_000, closing).is_some());
    }
    let low = Tcp { seq: 10, ..SYN };
    let o = h.send(&from(CLIENT_MAC, [198, 18, 3, 3], 9500).to(GW_MAC, VIP_ONE, 80).tcp(low, b""));
    assert_eq!(o, Outcome::Dropped(DropReason::SnatExhausted));
    // ...and one whose sequence number is above it is accepted by TIME_WAIT: the tuple is
    // reused at once.
    let high = Tcp { seq: 2_000_000, ..SYN };
    let o = h.send(&from(CLIENT_MAC, [198, 18, 3, 3], 9501).to(GW_MAC, VIP_ONE, 80).tcp(high, b""));
    assert!(matches!(o, Outcome::Tx(_)), "{o:?}");
    assert_eq!(h.worker.counters()[Counter::SnatReused], 1);
}

#[test]
fn a_clients_rst_answering_an_old_connections_ack_is_not_out_of_window() {
    // A reused tuple met a backend TIME_WAIT that refused the SYN (a timestamp from another
    // client's clock): TIME_WAIT answers with an ACK of the old connection, and the client,
    // in SYN-SENT, resets it with that acknowledgement number as its sequence number (RFC 9293
    // §3.10.7.3). That RST clears the TIME_WAIT so the client's next SYN gets through: the
    // gateway must pass it, though it lies far outside the new connection's window.
    let mut h = small_snat(&[NODE]);
    let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, 7200).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b"")) else {
        panic!()
    };
    let snat = l4_src_port(&f);
    let old_ack = 0x5000_0000;
    let tw_ack = Tcp { seq: 0x1234, ack: Some(old_ack), ..Tcp::default() };
    assert!(matches!(
        h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(tw_ack, b"")),
        Outcome::Tx(_)
    ));
    // A RST at another sequence number is still refused...
    let o = h.send(
        &from(CLIENT_MAC, CLIENT, 7200).to(GW_MAC, VIP_ONE, 80).tcp(Tcp { seq: old_ack + 7, ..rst() }, b""),
    );
    assert_eq!(o, Outcome::Dropped(DropReason::TcpOutOfWindow));
    // ...the one answering the ACK passes.
    let o = h.send(
        &from(CLIENT_MAC, CLIENT, 7200).to(GW_MAC, VIP_ONE, 80).tcp(Tcp { seq: old_ack, ..rst() }, b""),
    );
    assert!(matches!(o, Outcome::Tx(_)), "{o:?}");
}

#[test]
fn snat_addresses_are_a_pool() {
    // Two SNAT addresses of fifty ports each: a hundred connections held in TIME_WAIT by the
    // backend fit; the hundred-and-first does not.
    let second = [198, 18, 0, 3];
    let mut h = small_snat(&[NODE, second]);
    let mut tuples = std::collections::HashSet::new();
    for i in 0..100u16 {
        let p = 9000 + i;
        let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP_ONE, 80).tcp(SYN, b""))
        else {
            panic!("connection {i} refused")
        };
        let (src, snat) = (src4(&f), l4_src_port(&f));
        assert!(tuples.insert((src, snat)), "tuple {src:?}:{snat} handed out twice");
        // Close it from the backend first (TIME_WAIT on the backend).
        for (from_backend, t) in
            [(true, syn_ack()), (false, ack(5001)), (true, fin_ack()), (false, fin_ack()), (true, ack(202))]
        {
            let o = if from_backend {
                h.send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, src, snat).tcp(t, b""))
            } else {
                h.send(&from(CLIENT_MAC, CLIENT, p).to(GW_MAC, VIP_ONE, 80).tcp(t, b""))
            };
            assert!(matches!(o, Outcome::Tx(_)), "{o:?}");
        }
    }
    assert_eq!(tuples.iter().filter(|(a, _)| *a == second).count(), 50);
    assert!(h.worker.counters()[Counter::SnatPoolFallbacks] > 0);
    assert_eq!(syn_to(&mut h, CLIENT, 9200, VIP_ONE), Outcome::Dropped(DropReason::SnatExhausted));
}

#[test]
fn a_rst_or_fin_closes_a_flow_only_inside_the_window() {
    let mut h = small_snat(&[NODE]);
    let snat = establish(&mut h, CLIENT, 7100);
    // A blind RST and a blind FIN far from the client's sequence numbers: dropped, counted,
    // and the connection carries on.
    for (i, blind) in
        [Tcp { seq: 0x8000_0000, ..rst() }, Tcp { seq: 0x9000_0000, ..fin_ack() }].into_iter().enumerate()
    {
        let o = h.send(&from(CLIENT_MAC, CLIENT, 7100).to(GW_MAC, VIP_ONE, 80).tcp(blind, b""));
        assert_eq!(o, Outcome::Dropped(DropReason::TcpOutOfWindow), "blind segment {i}");
        let o = h.send(
            &from(backend_mac(1), be(1), 8080)
                .to(GW_MAC, NODE, snat)
                .tcp(Tcp { seq: 0x7000_0000, ..rst() }, b""),
        );
        assert_eq!(
            o,
            Outcome::Dropped(DropReason::TcpOutOfWindow),
            "blind segment {i} from the backend side"
        );
    }
    assert_eq!(h.worker.counters().dropped(DropReason::TcpOutOfWindow), 4);
    let data = h.send(&from(CLIENT_MAC, CLIENT, 7100).to(GW_MAC, VIP_ONE, 80).tcp(ack(5001), b"still open"));
    assert!(matches!(data, Outcome::Tx(_)));
    let f = flow_of(&h, 7100);
    assert_eq!(f.state, sluice_lb::flow::FlowState::Established);
    // The backend's RST at its own sequence number closes it.
    let o = h
        .send(&from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat).tcp(Tcp { seq: 5001, ..rst() }, b""));
    assert!(matches!(o, Outcome::Tx(_)), "{o:?}");
    assert_eq!(flow_of(&h, 7100).state, sluice_lb::flow::FlowState::Close);
}

/// The flow whose client port is `p`.
fn flow_of(h: &Harness, p: u16) -> sluice_lb::flow::Flow {
    let mut found = None;
    h.worker.l4().flows().for_each(|_, f| {
        if f.fwd.sport == p {
            found = Some(*f);
        }
    });
    found.unwrap_or_else(|| panic!("no flow from port {p}"))
}

#[test]
fn a_forged_arp_request_diverts_nothing() {
    // "who-has VIP tell BACKEND" from another MAC on the segment: answered (it is a request
    // for a VIP like any other) but the backend's neighbour entry, which came from the kernel,
    // stands — no frame for the backend goes to the forger.
    let forger: [u8; 6] = [0x02, 0, 0, 0, 0, 0x66];
    let mut h = Harness::standard();
    let mut reached = std::collections::BTreeSet::new();
    for i in 0..3u16 {
        assert!(matches!(h.send(&arp_request(forger, be(1), VIP)), Outcome::Tx(_)));
        for p in 0..30u16 {
            let sport = 20_000 + 100 * i + p;
            let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, sport).to(GW_MAC, VIP, 80).tcp(SYN, b""))
            else {
                panic!("the SYN from port {sport} was not forwarded")
            };
            let b = dst4(&f)[3];
            assert_eq!(
                f[0..6],
                backend_mac(b),
                "the SYN from port {sport} to backend {b} went to another MAC"
            );
            reached.insert(b);
        }
    }
    // Backend 1, the one the forger claimed, still gets its share (90 flows over three).
    assert_eq!(reached, [1, 2, 3].into(), "backends reached");
    // A forged request about the client does not redirect the replies to it either.
    let Outcome::Tx(f) = h.send(&from(CLIENT_MAC, CLIENT, 30_000).to(GW_MAC, VIP, 80).tcp(SYN, b"")) else {
        panic!()
    };
    let (b, snat) = (f[33], l4_src_port(&f));
    assert!(matches!(h.send(&arp_request(forger, CLIENT, VIP)), Outcome::Tx(_)));
    let Outcome::Tx(back) =
        h.send(&from(backend_mac(b), be(b), 8080).to(GW_MAC, NODE, snat).tcp(syn_ack(), b""))
    else {
        panic!()
    };
    assert_eq!(back[0..6], CLIENT_MAC);
}

/// VIPs are owned on the wire: an ARP request or a neighbour solicitation for one is answered
/// by the worker itself (the kernel does not have the address); anything else about neighbours
/// is the kernel's, and a solicitation that is not from the link, or is malformed, is not
/// answered.
#[test]
fn arp_and_neighbour_solicitations_for_vips_are_answered() {
    use sluice_wire::{arp, checksum, icmp, ip_proto, ipv6, ndp};
    let mut h = Harness::standard();
    let Outcome::Tx(reply) = h.send(&arp_request(CLIENT_MAC, CLIENT, VIP)) else { panic!("answered") };
    assert_eq!((&reply[0..6], &reply[6..12]), (&CLIENT_MAC[..], &GW_MAC[..]));
    let a = arp::Packet::new_checked(&reply[14..]).unwrap();
    assert_eq!(a.operation(), arp::OP_REPLY);
    assert_eq!(
        (a.sender_mac(), a.sender_ip(), a.target_mac(), a.target_ip()),
        (GW_MAC, VIP, CLIENT_MAC, CLIENT)
    );

    // A solicitation with the asker's link-layer option: a solicited advertisement to it,
    // carrying our address in the option's room, with a valid checksum.
    let Outcome::Tx(na) = h.send(&neighbor_solicit(CLIENT_MAC, CLIENT6, VIP6, 255, true)) else {
        panic!("answered")
    };
    assert_eq!((&na[0..6], &na[6..12]), (&CLIENT_MAC[..], &GW_MAC[..]));
    let ip = ipv6::Packet::new_checked(&na[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (v6(VIP6), v6(CLIENT6), 255));
    let m = ndp::Message::new_checked(&na[54..]).unwrap();
    assert_eq!(
        (m.msg_type(), m.target(), m.flags()),
        (icmp::v6::NEIGHBOR_ADVERT, v6(VIP6), ndp::flags::SOLICITED | ndp::flags::OVERRIDE)
    );
    assert_eq!(m.link_layer(ndp::option::TARGET_LL), Some(GW_MAC));
    let ph = checksum::pseudo_header_v6(&v6(VIP6), &v6(CLIENT6), ip_proto::ICMPV6, 32);
    assert_eq!(checksum::finish(checksum::accumulate(ph, &na[54..])), 0);

    // Duplicate address detection (from ::, no option): to all nodes, not solicited.
    let Outcome::Tx(dad) = h.send(&neighbor_solicit(CLIENT_MAC, "::", VIP6, 255, false)) else {
        panic!("answered")
    };
    assert_eq!(&dad[0..6], &ndp::ALL_NODES_MAC[..]);
    let m = ndp::Message::new_checked(&dad[54..]).unwrap();
    assert_eq!((m.flags(), m.link_layer(ndp::option::TARGET_LL)), (ndp::flags::OVERRIDE, None));

    // Not answered: for the node's own address, from beyond a router, or with a zero-length
    // option (RFC 4861 §7.1.1).
    assert!(matches!(h.send(&arp_request(CLIENT_MAC, CLIENT, NODE)), Outcome::Kernel(_)));
    assert!(!matches!(h.send(&neighbor_solicit(CLIENT_MAC, CLIENT6, VIP6, 64, true)), Outcome::Tx(_)));
    let mut bad = neighbor_solicit(CLIENT_MAC, CLIENT6, VIP6, 255, true);
    bad[54 + 25] = 0;
    assert!(!matches!(h.send(&bad), Outcome::Tx(_)));
    assert_eq!(h.worker.counters()[Counter::NeighborReplies], 3);
}

/// L2 mode (docs/l2.md): a VIP another node announces is not answered for — its ARP request and
/// its neighbour solicitation go to the kernel, which does not have the address — while its
/// traffic is still forwarded; the same VIP active here is answered again.
#[test]
fn a_vip_another_node_announces_in_l2_mode_is_not_answered_for() {
    use sluice_model::service::L2Role;
    let mut h = Harness::standard();
    let mut t = (*table(2, standard_services())).clone();
    t.set_l2([(a4(VIP), L2Role::Standby), (a6(VIP6), L2Role::Standby)].into_iter().collect());
    h.worker.set_table(std::sync::Arc::new(t.clone()));
    assert!(matches!(h.send(&arp_request(CLIENT_MAC, CLIENT, VIP)), Outcome::Kernel(_)));
    assert!(matches!(h.send(&neighbor_solicit(CLIENT_MAC, CLIENT6, VIP6, 255, true)), Outcome::Kernel(_)));
    assert_eq!(h.worker.counters()[Counter::NeighborReplies], 0);
    // A flow that reaches this node all the same (a client's stale entry) is forwarded.
    let syn = from(CLIENT_MAC, CLIENT, 40_000).to(GW_MAC, VIP, 80).tcp(SYN, b"");
    assert!(matches!(h.send(&syn), Outcome::Tx(_)));
    // Active here: answered.
    t.set_l2([(a4(VIP), L2Role::Active), (a6(VIP6), L2Role::Active)].into_iter().collect());
    h.worker.set_table(std::sync::Arc::new(t));
    assert!(matches!(h.send(&arp_request(CLIENT_MAC, CLIENT, VIP)), Outcome::Tx(_)));
    assert!(matches!(h.send(&neighbor_solicit(CLIENT_MAC, CLIENT6, VIP6, 255, true)), Outcome::Tx(_)));
    assert_eq!(h.worker.counters()[Counter::NeighborReplies], 2);
}
