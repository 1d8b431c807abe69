//! Connections opened through a SYN cookie, through a real `Worker` over an in-memory port: the
//! client's ACK carrying a cookie (as the XDP program would have made it) becomes the gateway's SYN
//! to the backend; the client's early data is held until the backend answers; the backend's
//! SYN-ACK becomes the gateway's ACK; from then on every segment is shifted between the two
//! sequence spaces.

mod common;

use common::*;
use etherparse::{SlicedPacket, TcpOptionElement, TcpSlice, TransportSlice};
use sluice_model::syncookie::{self, Handshake};
use sluice_model::{Counter, DropReason};

const KEY: [u64; 2] = [0xdead_beef_0bad_cafe, 0x0123_4567_89ab_cdef];
/// The client's initial sequence number.
const ISN: u32 = 0xffff_fff0;
/// The backend's.
const B_ISN: u32 = 0x1000_0000;

fn harness(key: Option<[u64; 2]>) -> Harness {
    let mut cfg = worker_config();
    cfg.l4.syn_cookie_key = key;
    Harness {
        worker: sluice_worker::Worker::new(&cfg, table(1, standard_services()), next_hops()),
        ..Harness::standard()
    }
}

/// The cookie the XDP program would have answered the client's SYN (port `cport`, to `vip:80`)
/// with, at the harness's time.
fn cookie(h: &Harness, client: [u8; 16], vip: [u8; 16], cport: u16, class: u8) -> u32 {
    let hs = Handshake { client, frontend: vip, cport, fport: 80, isn: ISN };
    syncookie::cookie(KEY, &hs, syncookie::slot(h.now_ns), class)
}

/// A client of VIP_ONE:80 (or, in IPv6, of VIP6:80) from port `port` whose SYN the XDP program
/// answered with `cookie`.
struct CookieClient {
    frame: Frame,
    cookie: u32,
}

impl CookieClient {
    fn v4(h: &Harness, port: u16, class: u8) -> CookieClient {
        CookieClient {
            frame: from(CLIENT_MAC, CLIENT, port).to(GW_MAC, VIP_ONE, 80),
            cookie: cookie(h, mapped(CLIENT), mapped(VIP_ONE), port, class),
        }
    }

    fn v6(h: &Harness, port: u16, class: u8) -> CookieClient {
        CookieClient {
            frame: from(CLIENT_MAC, CLIENT6, port).to(GW_MAC, VIP6, 80),
            cookie: cookie(h, v6(CLIENT6), v6(VIP6), port, class),
        }
    }

    /// Its ACK of the cookie (its ISN + 1, the cookie + 1), carrying `payload`.
    fn ack(&self, payload: &[u8]) -> Vec<u8> {
        self.frame.tcp(seg(ISN.wrapping_add(1), Some(self.cookie.wrapping_add(1))), payload)
    }
}

fn mapped(a: [u8; 4]) -> [u8; 16] {
    sluice_model::Addr::from_v4(a).0
}

fn tcp(f: &[u8]) -> TcpSlice<'_> {
    match SlicedPacket::from_ethernet(f).unwrap().transport.unwrap() {
        TransportSlice::Tcp(t) => t,
        other => panic!("not TCP: {other:?}"),
    }
}

fn seg(seq: u32, ack: Option<u32>) -> Tcp {
    Tcp { seq, ack, ..Tcp::default() }
}

/// Checks a frame's TCP checksum (IPv4).
fn checksum_ok(f: &[u8]) -> bool {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
    let t = tcp(f);
    let sum =
        t.to_header().calc_checksum_ipv4_raw(ip.header().source(), ip.header().destination(), t.payload());
    sum.unwrap() == t.checksum()
        && ip.header().to_header().calc_header_checksum() == ip.header().header_checksum()
}

#[test]
fn a_cookie_connection_carries_data_both_ways_with_shifted_sequence_numbers() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7000, 3);
    let (c, client) = (cl.cookie, cl.frame);

    // The client's ACK of the cookie: the gateway's SYN to the backend.
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!("the cookie's ACK opens the connection") };
    assert_eq!(dst4(&syn), be(1));
    assert_eq!(src4(&syn), NODE, "FullNAT: from the SNAT address");
    let snat = l4_src_port(&syn);
    let t = tcp(&syn);
    assert!(t.syn() && !t.ack() && !t.rst() && !t.fin());
    assert_eq!((t.destination_port(), t.sequence_number()), (8080, ISN), "the client's ISN");
    let opts: Vec<_> = t.options_iterator().collect::<Result<_, _>>().unwrap();
    assert_eq!(opts, vec![TcpOptionElement::MaximumSegmentSize(1460)], "the cookie's MSS");
    assert!(checksum_ok(&syn));
    assert_eq!(h.worker.counters()[Counter::SynCookiesAccepted], 1);

    // The request, sent at once, waits for the backend.
    let request = b"GET / HTTP/1.1\r\n\r\n";
    let data = cl.ack(request);
    assert_eq!(h.send(&data), Outcome::Deferred);

    // The backend's SYN-ACK: the gateway completes the handshake itself...
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat);
    let synack = Tcp { syn: true, ..seg(B_ISN, Some(ISN.wrapping_add(1))) };
    let Outcome::Tx(ack) = h.send(&backend.tcp(synack, b"")) else { panic!("the SYN-ACK is answered") };
    assert_eq!((dst4(&ack), src4(&ack), l4_src_port(&ack)), (be(1), NODE, snat));
    let t = tcp(&ack);
    assert!(t.ack() && !t.syn() && !t.rst());
    assert_eq!((t.sequence_number(), t.acknowledgment_number()), (ISN.wrapping_add(1), B_ISN + 1));
    assert!(checksum_ok(&ack));

    // ...and the held request follows, its acknowledgement in the backend's space.
    let sent = h.idle_poll();
    assert_eq!(sent.len(), 1, "the held request is sent");
    let t = tcp(&sent[0]);
    assert_eq!(t.payload(), request);
    assert_eq!((t.sequence_number(), t.acknowledgment_number()), (ISN.wrapping_add(1), B_ISN + 1));
    assert!(checksum_ok(&sent[0]));
    assert_eq!(h.worker.deferred(), 0);

    // The answer reaches the client in the client's space (the cookie's).
    let after_req = ISN.wrapping_add(1).wrapping_add(request.len() as u32);
    let Outcome::Tx(answer) =
        h.send(&backend.tcp(seg(B_ISN + 1, Some(after_req)), b"HTTP/1.1 200 OK\r\n\r\n"))
    else {
        panic!()
    };
    assert_eq!((src4(&answer), dst4(&answer)), (VIP_ONE, CLIENT));
    let t = tcp(&answer);
    assert_eq!((t.sequence_number(), t.acknowledgment_number()), (c.wrapping_add(1), after_req));
    assert!(checksum_ok(&answer));

    // The client's acknowledgement of it goes back shifted.
    let got = c.wrapping_add(1).wrapping_add(19);
    let Outcome::Tx(f) = h.send(&client.tcp(seg(after_req, Some(got)), b"")) else { panic!() };
    assert_eq!(tcp(&f).acknowledgment_number(), B_ISN + 1 + 19);
    assert!(checksum_ok(&f));

    // The window check works in both spaces: the backend's FIN at its next sequence number passes,
    // a client RST far outside the window does not, one at its next sequence number does.
    let fin = Tcp { fin: true, ..seg(B_ISN + 1 + 19, Some(after_req)) };
    let Outcome::Tx(f) = h.send(&backend.tcp(fin, b"")) else { panic!("the backend's FIN") };
    assert_eq!(tcp(&f).sequence_number(), got);
    let o = h.send(&client.tcp(Tcp { rst: true, ..seg(after_req.wrapping_add(1 << 30), None) }, b""));
    assert_eq!(o, Outcome::Dropped(DropReason::TcpOutOfWindow));
    assert!(matches!(h.send(&client.tcp(Tcp { rst: true, ..seg(after_req, None) }, b"")), Outcome::Tx(_)));
}

#[test]
fn only_a_valid_fresh_cookie_opens_a_connection() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7001, 2);
    let (c, client) = (cl.cookie, cl.frame);
    let no_flow = Outcome::Dropped(DropReason::NoFlowForSegment);
    // Another cookie, another ISN, another client port: refused.
    assert_eq!(h.send(&client.tcp(seg(ISN.wrapping_add(1), Some(c ^ 0x100)), b"")), no_flow);
    assert_eq!(h.send(&client.tcp(seg(ISN.wrapping_add(2), Some(c.wrapping_add(1))), b"")), no_flow);
    let other = from(CLIENT_MAC, CLIENT, 7002).to(GW_MAC, VIP_ONE, 80);
    assert_eq!(h.send(&other.tcp(seg(ISN.wrapping_add(1), Some(c.wrapping_add(1))), b"")), no_flow);
    // Two slots later (about 137 s): too old.
    let later = h.now_ns;
    h.now_ns += 2 << syncookie::SLOT_SHIFT;
    assert_eq!(h.send(&cl.ack(b"")), no_flow);
    // In the next slot: still good.
    h.now_ns = later + (1 << syncookie::SLOT_SHIFT);
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!() };
    let opts: Vec<_> = tcp(&syn).options_iterator().collect::<Result<_, _>>().unwrap();
    assert_eq!(opts, vec![TcpOptionElement::MaximumSegmentSize(1440)]);
    assert_eq!(h.worker.counters()[Counter::SynCookiesAccepted], 1);

    // Without a key, the engine checks no cookie.
    let mut plain = harness(None);
    let cl = CookieClient::v4(&plain, 7003, 3);
    assert_eq!(plain.send(&cl.ack(b"")), no_flow);
}

#[test]
fn a_backend_that_refuses_resets_the_client_in_its_own_space() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7010, 3);
    let c = cl.cookie;
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!() };
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, l4_src_port(&syn));
    let refused = Tcp { rst: true, ..seg(0, Some(ISN.wrapping_add(1))) };
    let Outcome::Tx(rst) = h.send(&backend.tcp(refused, b"")) else {
        panic!("the refusal reaches the client")
    };
    assert_eq!((src4(&rst), dst4(&rst), l4_src_port(&rst)), (VIP_ONE, CLIENT, 80));
    let t = tcp(&rst);
    assert!(t.rst() && !t.syn());
    assert_eq!(t.sequence_number(), c.wrapping_add(1), "in the window the cookie opened");
    assert!(checksum_ok(&rst));
}

#[test]
fn a_stale_backend_ack_is_reset_and_the_next_client_segment_sends_the_syn_again() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7020, 3);
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!() };
    let snat = l4_src_port(&syn);
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat);
    // An old connection's ACK (the tuple's last owner): reset it with its own acknowledgement.
    let Outcome::Tx(rst) = h.send(&backend.tcp(seg(0x7777, Some(0x4242_4242)), b"")) else { panic!() };
    let t = tcp(&rst);
    assert!(t.rst());
    assert_eq!((dst4(&rst), t.destination_port(), t.sequence_number()), (be(1), 8080, 0x4242_4242));
    // The client's next segment sends the SYN again, in a frame of its own; its data waits.
    let o = h.send(&cl.ack(b"hello"));
    assert_eq!(o, Outcome::Deferred);
    let again = h.before.first().expect("the SYN again").clone();
    let t = tcp(&again);
    assert!(t.syn() && t.payload().is_empty());
    assert_eq!((l4_src_port(&again), t.sequence_number()), (snat, ISN));
    assert!(checksum_ok(&again));
    // The backend answers now; the held data follows the gateway's ACK.
    let synack = Tcp { syn: true, ..seg(B_ISN, Some(ISN.wrapping_add(1))) };
    let Outcome::Tx(ack) = h.send(&backend.tcp(synack, b"")) else { panic!() };
    assert_eq!(tcp(&ack).sequence_number(), ISN.wrapping_add(1));
    let sent = h.idle_poll();
    assert_eq!(tcp(&sent[0]).payload(), b"hello");
}

#[test]
fn held_segments_are_dropped_when_the_backend_never_answers() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7030, 3);
    assert!(matches!(h.send(&cl.ack(b"")), Outcome::Tx(_)));
    assert_eq!(h.send(&cl.ack(b"x")), Outcome::Deferred);
    // While the data waits, the gateway sends its SYN again every PROXY_SYN_RETRY_NS: the held
    // segment drives the retries, not only the client's own retransmissions.
    let mut retries = 0;
    let step = sluice_lb::engine::PROXY_SYN_RETRY_NS;
    while h.now_ns + step < 1_000_000_000 + sluice_lb::engine::DEFER_NS {
        h.now_ns += step;
        for f in h.idle_poll() {
            let t = tcp(&f);
            assert!(t.syn() && !t.ack() && t.payload().is_empty(), "only the SYN again: {t:?}");
            assert_eq!((dst4(&f), t.sequence_number()), (be(1), ISN));
            retries += 1;
        }
        assert_eq!(h.worker.deferred(), 1, "still held");
    }
    assert!(retries >= 5, "{retries} retries");
    // Then the held data is dropped.
    h.now_ns += step;
    h.idle_poll();
    assert_eq!(h.worker.deferred(), 0);
    assert_eq!(h.worker.counters().dropped(DropReason::SynProxyPending), 1);
}

#[test]
fn an_ipv6_cookie_connection_opens_and_shifts() {
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v6(&h, 7040, 2);
    let c = cl.cookie;
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!("the cookie's ACK opens the connection") };
    let p = SlicedPacket::from_ethernet(&syn).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else { panic!() };
    assert_eq!(ip.header().destination(), v6(&be6(1)));
    assert_eq!(ip.header().source(), v6(NODE6), "FullNAT: from the SNAT address");
    let t = tcp(&syn);
    assert!(t.syn() && !t.ack());
    let sum =
        t.to_header().calc_checksum_ipv6_raw(ip.header().source(), ip.header().destination(), &[]).unwrap();
    assert_eq!(sum, t.checksum());
    let snat = t.source_port();
    let backend = from(backend_mac(1), &be6(1), 8080).to(GW_MAC, NODE6, snat);
    let synack = Tcp { syn: true, ..seg(B_ISN, Some(ISN.wrapping_add(1))) };
    let Outcome::Tx(ack) = h.send(&backend.tcp(synack, b"")) else { panic!("the SYN-ACK is answered") };
    assert_eq!(tcp(&ack).acknowledgment_number(), B_ISN + 1);
    let Outcome::Tx(answer) = h.send(&backend.tcp(seg(B_ISN + 1, Some(ISN.wrapping_add(1))), b"hi")) else {
        panic!()
    };
    assert_eq!(tcp(&answer).sequence_number(), c.wrapping_add(1));
}

#[test]
fn an_icmp_error_about_a_segment_to_the_client_quotes_the_backends_sequence_number() {
    // Path MTU discovery for a cookie connection: a router on the client's side says a segment the
    // gateway sent to the client was too big. The backend's stack accepts the error only if the
    // quoted sequence number is one it sent: the quote is shifted back into its space.
    use etherparse::{Icmpv4Type, icmpv4};
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7050, 3);
    let c = cl.cookie;
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!() };
    let snat = l4_src_port(&syn);
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, snat);
    let synack = Tcp { syn: true, ..seg(B_ISN, Some(ISN.wrapping_add(1))) };
    assert!(matches!(h.send(&backend.tcp(synack, b"")), Outcome::Tx(_)));
    let Outcome::Tx(to_client) =
        h.send(&backend.tcp(seg(B_ISN + 1, Some(ISN.wrapping_add(1))), &[b'x'; 1000]))
    else {
        panic!()
    };
    assert_eq!(tcp(&to_client).sequence_number(), c.wrapping_add(1));
    let too_big = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 576,
    });
    let err = from_host(ROUTER_MAC, ROUTER).to_host(GW_MAC, VIP_ONE).icmp4(too_big, &to_client[14..14 + 28]);
    let Outcome::Tx(out) = h.send(&err) else { panic!("the error reaches the backend") };
    assert_eq!(dst4(&out), be(1));
    // Outer IPv4 (20) + ICMP (8) + quoted IPv4 (20): the quoted TCP header's sequence number.
    let q = 14 + 20 + 8 + 20;
    assert_eq!(u32::from_be_bytes([out[q + 4], out[q + 5], out[q + 6], out[q + 7]]), B_ISN + 1);
    let port = |at: usize| u16::from_be_bytes([out[at], out[at + 1]]);
    assert_eq!((port(q), port(q + 2)), (8080, snat), "the segment as the backend sent it");
}

#[test]
fn a_cookie_ack_carrying_data_keeps_its_data_and_the_syn_goes_in_a_frame_of_its_own() {
    // The client's bare ACK was lost (or it sent its request with the ACK): the first segment the
    // gateway sees carries the cookie *and* data. The SYN goes to the backend in a fresh frame;
    // the data waits and follows the handshake, whole.
    let mut h = harness(Some(KEY));
    let cl = CookieClient::v4(&h, 7060, 3);
    let request = b"GET /held HTTP/1.1\r\n\r\n";
    let o = h.send(&cl.ack(request));
    assert_eq!(o, Outcome::Deferred);
    assert_eq!(h.before.len(), 1, "the SYN, in a frame of its own");
    let syn = h.before[0].clone();
    let t = tcp(&syn);
    assert!(t.syn() && !t.ack() && t.payload().is_empty());
    assert_eq!((dst4(&syn), t.sequence_number()), (be(1), ISN));
    let opts: Vec<_> = t.options_iterator().collect::<Result<_, _>>().unwrap();
    assert_eq!(opts, vec![TcpOptionElement::MaximumSegmentSize(1460)]);
    assert!(checksum_ok(&syn));
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, t.source_port());
    let synack = Tcp { syn: true, ..seg(B_ISN, Some(ISN.wrapping_add(1))) };
    assert!(matches!(h.send(&backend.tcp(synack, b"")), Outcome::Tx(_)));
    let sent = h.idle_poll();
    assert_eq!(sent.len(), 1);
    assert_eq!(tcp(&sent[0]).payload(), request, "the request, whole");
    assert_eq!(tcp(&sent[0]).acknowledgment_number(), B_ISN + 1);
}

#[test]
fn a_cookie_ack_with_data_on_a_reclaimed_tuple_sends_the_rst_then_the_syn_and_keeps_its_data() {
    // Every port of a 50-port range held half-open by SYNs the backend answered (a flood's),
    // then a cookie ACK carrying a request: its flow takes one of their tuples back. Two segments
    // go out ahead, in this order — the RST that clears the backend's half-open connection, then
    // the gateway's SYN on the same tuple — and the request waits for the backend, whole.
    let mut cfg = worker_config();
    cfg.l4.syn_cookie_key = Some(KEY);
    cfg.l4.snat_ports = sluice_model::PortRange::new(SNAT_LO, SNAT_LO + 49).unwrap();
    let mut h = Harness {
        worker: sluice_worker::Worker::new(&cfg, table(1, standard_services()), next_hops()),
        ..Harness::standard()
    };
    for i in 0..50u16 {
        let syn = Tcp { syn: true, seq: 1000, ..Tcp::default() };
        let flood = from(CLIENT_MAC, [198, 18, 9, 1], 10_000 + i).to(GW_MAC, VIP_ONE, 80);
        let Outcome::Tx(f) = h.send(&flood.tcp(syn, b"")) else { panic!() };
        let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, l4_src_port(&f));
        let sa = Tcp { syn: true, ..seg(5000, Some(1001)) };
        assert!(matches!(h.send(&backend.tcp(sa, b"")), Outcome::Tx(_)));
    }
    let cl = CookieClient::v4(&h, 7070, 3);
    let o = h.send(&cl.ack(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(o, Outcome::Deferred, "the request waits");
    assert_eq!(h.before.len(), 2, "the RST and the SYN ahead of it");
    let (rst, syn) = (tcp(&h.before[0]), tcp(&h.before[1]));
    assert!(rst.rst() && syn.syn() && !syn.ack(), "RST first, then SYN: {rst:?} {syn:?}");
    assert_eq!(rst.sequence_number(), 1001, "in the old connection's window");
    assert_eq!(
        (rst.source_port(), rst.destination_port()),
        (syn.source_port(), syn.destination_port()),
        "the same tuple"
    );
    assert_eq!(syn.sequence_number(), ISN);
}

/// A connection from `port` whose SYN the worker saw, opened and then closed: the backend first
/// (it holds TIME_WAIT), the client second (it keeps nothing and may reuse the port at once).
fn closed_connection(h: &mut Harness, port: u16, isn: u32) -> Frame {
    let client = from(CLIENT_MAC, CLIENT, port).to(GW_MAC, VIP_ONE, 80);
    let Outcome::Tx(first) = h.send(&client.tcp(Tcp { syn: true, ..seg(isn, None) }, b"")) else {
        panic!("the SYN is forwarded")
    };
    let backend = from(backend_mac(1), be(1), 8080).to(GW_MAC, NODE, l4_src_port(&first));
    let steps = [
        (true, Tcp { syn: true, ..seg(B_ISN, Some(isn + 1)) }),
        (false, seg(isn + 1, Some(B_ISN + 1))),
        (true, Tcp { fin: true, ..seg(B_ISN + 1, Some(isn + 1)) }),
        (false, Tcp { fin: true, ..seg(isn + 1, Some(B_ISN + 2)) }),
        (true, seg(B_ISN + 2, Some(isn + 2))),
    ];
    for (from_backend, t) in steps {
        let f = if from_backend { backend.tcp(t, b"") } else { client.tcp(t, b"") };
        assert!(matches!(h.send(&f), Outcome::Tx(_)), "the handshake and the close pass");
    }
    client
}

#[test]
fn a_cookie_ack_on_a_closed_tuple_opens_a_new_connection_not_the_old_one() {
    let mut h = harness(Some(KEY));
    closed_connection(&mut h, 7100, 0x5000_0000);
    // The client reuses port 7100; under a flood the XDP program answers its SYN with a cookie,
    // so the worker sees only the ACK. It must open a new connection with the gateway's own SYN,
    // not ride the closed flow's tuple (the backend's TIME_WAIT would answer with the old
    // connection's numbers, and the client would hang).
    let cl = CookieClient::v4(&h, 7100, 3);
    let Outcome::Tx(syn) = h.send(&cl.ack(b"")) else { panic!("the cookie's ACK opens a connection") };
    let t = tcp(&syn);
    assert!(t.syn() && !t.ack(), "a SYN to the backend, not the ACK forwarded on the old tuple");
    assert_eq!(t.sequence_number(), ISN, "the new connection's ISN");
    assert_eq!(h.worker.counters()[Counter::SynCookiesAccepted], 1);

    // An ACK on a closed tuple that answers no cookie still belongs to the old flow.
    let mut h = harness(Some(KEY));
    let client = closed_connection(&mut h, 7200, 0x5000_0000);
    let Outcome::Tx(f) = h.send(&client.tcp(seg(0x5000_0002, Some(B_ISN + 2)), b"")) else {
        panic!("a late ACK of the old connection is forwarded")
    };
    assert!(!tcp(&f).syn());
    assert_eq!(h.worker.counters()[Counter::SynCookiesAccepted], 0);
}
