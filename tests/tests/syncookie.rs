//! The XDP program's SYN cookies against their definition (`sluice_model::syncookie`), which the
//! L4 engine checks: the kernel runs the loaded program over SYNs (`BPF_PROG_TEST_RUN`, nothing
//! attached), and each answer must be a well-formed SYN-ACK whose sequence number the engine's
//! check accepts. Needs root (loading a program).

use std::collections::HashMap;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use sluice_model::syncookie::{self, Handshake};
use sluice_sandbox::require_root;
use sluice_xsk::steer::{Kind, SteerKey, SteerValue, Steering, SynCookies};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0x0f1e_2d3c_4b5a_6978];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn mapped(v4: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&v4);
    a
}

const VIP4: [u8; 4] = [198, 18, 100, 10];
const CLIENT4: [u8; 4] = [198, 18, 0, 2];
const VIP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];

/// The program, loaded, steering TCP to VIP4:80 and [VIP6]:80, with cookies as `c` says.
fn program(c: &SynCookies) -> Option<Steering> {
    if !require_root("syncookie") {
        return None;
    }
    // The SYN budget and the flood state are per CPU, and BPF_PROG_RUN runs the program on the
    // caller's: a test thread that moved between two runs met another CPU's fresh bucket (seen
    // once in CI: the flood "over" 10 ms after it began). Each test runs on one CPU.
    let mut one = rustix::thread::CpuSet::new();
    one.set(rustix::thread::sched_getcpu());
    rustix::thread::sched_setaffinity(None, &one).expect("pin the test to one CPU");
    let mut s = Steering::load().expect("load the steering program");
    let mut want = HashMap::new();
    want.insert(SteerKey::new(Kind::Dst, mapped(VIP4), 80, 6), SteerValue::default());
    want.insert(SteerKey::new(Kind::Dst, VIP6, 80, 6), SteerValue::default());
    s.sync(&want).expect("steer map");
    s.set_syn_cookies(c).expect("cookie settings");
    Some(s)
}

fn always() -> SynCookies {
    SynCookies::always(KEY)
}

/// A SYN from the client to the VIP on port 80 (IPv6 when `v6`), with Linux's options when
/// `options`.
fn syn(v6: bool, isn: u32, options: bool) -> Vec<u8> {
    syn_from(v6, 40_000, isn, options)
}

fn syn_from(v6: bool, cport: u16, isn: u32, options: bool) -> Vec<u8> {
    use etherparse::{PacketBuilder, TcpOptionElement as O};
    let b = PacketBuilder::ethernet2(CLIENT_MAC, GW_MAC);
    let b = if v6 { b.ipv6(CLIENT6, VIP6, 64) } else { b.ipv4(CLIENT4, VIP4, 64) };
    let mut b = b.tcp(cport, 80, isn, 64_240).syn();
    if options {
        b = b
            .options(&[
                O::MaximumSegmentSize(if v6 { 1440 } else { 1460 }),
                O::SelectiveAcknowledgementPermitted,
                O::Timestamp(12345, 0),
                O::Noop,
                O::WindowScale(7),
            ])
            .unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn monotonic_slot() -> u32 {
    syncookie::slot(sluice_sys::monotonic_ns())
}

/// Checks that `out` answers the SYN made by `syn(v6, isn, _)` with a cookie the engine accepts,
/// and returns the MSS it offers.
fn check_answer(out: &[u8], v6: bool, isn: u32) -> u16 {
    check_answer_from(out, v6, 40_000, isn)
}

fn check_answer_from(out: &[u8], v6: bool, cport: u16, isn: u32) -> u16 {
    assert_eq!(&out[..6], &CLIENT_MAC, "to the client's MAC");
    assert_eq!(&out[6..12], &GW_MAC, "from the MAC the SYN was sent to");
    let p = SlicedPacket::from_ethernet(out).expect("a well-formed frame");
    let (src, dst) = match p.net.expect("IP") {
        NetSlice::Ipv4(ip) => {
            assert!(!v6);
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum(), "IPv4 checksum");
            assert_eq!(h.total_len() as usize, out.len() - 14, "IPv4 total length");
            (mapped(h.source()), mapped(h.destination()))
        }
        NetSlice::Ipv6(ip) => {
            assert!(v6);
            (ip.header().source(), ip.header().destination())
        }
    };
    assert_eq!((src, dst), if v6 { (VIP6, CLIENT6) } else { (mapped(VIP4), mapped(CLIENT4)) });
    let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not TCP") };
    assert!(t.syn() && t.ack() && !t.rst() && !t.fin(), "a SYN-ACK");
    assert_eq!((t.source_port(), t.destination_port()), (80, cport));
    assert_eq!(t.acknowledgment_number(), isn.wrapping_add(1));
    assert!(t.payload().is_empty());
    let sum = if v6 {
        t.to_header().calc_checksum_ipv6_raw(VIP6, CLIENT6, &[]).unwrap()
    } else {
        t.to_header().calc_checksum_ipv4_raw(VIP4, CLIENT4, &[]).unwrap()
    };
    assert_eq!(sum, t.checksum(), "TCP checksum");
    let opts: Vec<_> = t.options_iterator().collect::<Result<_, _>>().unwrap();
    let [etherparse::TcpOptionElement::MaximumSegmentSize(mss)] = opts[..] else {
        panic!("only an MSS option: {opts:?}")
    };
    let h = Handshake {
        client: if v6 { CLIENT6 } else { mapped(CLIENT4) },
        frontend: if v6 { VIP6 } else { mapped(VIP4) },
        cport,
        fport: 80,
        isn,
    };
    let class = syncookie::check(KEY, &h, t.sequence_number(), monotonic_slot())
        .expect("the engine accepts the program's cookie");
    assert_eq!(syncookie::MSS_CLASSES[usize::from(class)], mss);
    let other = Handshake { isn: isn.wrapping_add(1), ..h };
    assert_eq!(syncookie::check(KEY, &other, t.sequence_number(), monotonic_slot()), None);
    mss
}

#[test]
fn the_programs_cookies_are_the_ones_the_engine_checks() {
    let Some(mut s) = program(&always()) else { return };
    for v6 in [false, true] {
        for isn in [1u32, 0x8000_0000, u32::MAX] {
            let (verdict, out) = s.test_run(&syn(v6, isn, true)).unwrap();
            assert_eq!(verdict, XDP_TX, "v6={v6}");
            let mss = check_answer(&out, v6, isn);
            assert_eq!(mss, if v6 { 1440 } else { 1460 });
        }
        // No options at all: the frame grows by the MSS option; the MSS is the smallest class.
        let (verdict, out) = s.test_run(&syn(v6, 77, false)).unwrap();
        assert_eq!(verdict, XDP_TX);
        assert_eq!(check_answer(&out, v6, 77), 536);
    }
    assert_eq!(s.counts().2, 8, "every cookie counted");
}

#[test]
fn only_syns_beyond_the_budget_get_cookies() {
    // One SYN a second, a bucket of one: the first goes to the worker (no socket is registered
    // here, so the redirect falls back to the kernel), the next is answered.
    let Some(mut s) = program(&SynCookies::budget(KEY, 1, 1)) else { return };
    assert_eq!(s.test_run(&syn(false, 5, true)).unwrap().0, XDP_PASS, "within the budget");
    let (verdict, out) = s.test_run(&syn(false, 6, true)).unwrap();
    assert_eq!(verdict, XDP_TX, "beyond it");
    check_answer(&out, false, 6);

    // Cookies off: every SYN goes to the worker.
    s.set_syn_cookies(&SynCookies::off(KEY)).unwrap();
    for isn in 0..10 {
        assert_eq!(s.test_run(&syn(isn % 2 == 0, isn, true)).unwrap().0, XDP_PASS);
    }
}

#[test]
fn a_flood_turns_every_syn_into_a_cookie_until_it_has_passed() {
    // A thousand SYNs a second, a bucket of one. The second SYN finds it dry: a flood. Ten
    // milliseconds later the bucket holds ten again, and still every SYN gets a cookie: the
    // budget's share of a flood must not reach the workers either. Once the rate has stayed
    // within the budget for `hold_ns`, SYNs go to the worker again.
    // (A hold of a second: a test stalled that long between two runs would see the flood over.)
    let mut c = SynCookies::budget(KEY, 1000, 1);
    c.hold_ns = 1_000_000_000;
    let Some(mut s) = program(&c) else { return };
    assert_eq!(s.test_run(&syn(false, 1, true)).unwrap().0, XDP_PASS, "within the budget");
    assert_eq!(s.test_run(&syn(false, 2, true)).unwrap().0, XDP_TX, "dry");
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(s.test_run(&syn(false, 3, true)).unwrap().0, XDP_TX, "the flood is not over");
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(s.test_run(&syn(false, 4, true)).unwrap().0, XDP_PASS, "over");
}

#[test]
fn only_a_bare_syn_to_a_frontend_is_answered() {
    let Some(mut s) = program(&always()) else { return };
    // An ACK (the client's answer to a cookie) goes to the worker.
    let mut ack = syn(false, 9, false);
    ack[14 + 20 + 13] = 0x10;
    assert_eq!(s.test_run(&ack).unwrap().0, XDP_PASS);
    // A SYN to a port that is no frontend is the kernel's.
    let mut other = syn(false, 9, true);
    other[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&81u16.to_be_bytes());
    assert_eq!(s.test_run(&other).unwrap().0, XDP_PASS);
    // A SYN with RST set is nobody's handshake.
    let mut synrst = syn(false, 9, true);
    synrst[14 + 20 + 13] |= 0x04;
    assert_eq!(s.test_run(&synrst).unwrap().0, XDP_PASS);
    assert_eq!(s.counts().2, 0);
}

#[test]
fn every_answer_is_well_formed_whatever_the_port_and_sequence_number() {
    let Some(mut s) = program(&always()) else { return };
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (cport, isn, v6) = ((x >> 40) as u16 | 1024, x as u32, i % 2 == 1);
        let (verdict, out) = s.test_run(&syn_from(v6, cport, isn, true)).unwrap();
        assert_eq!(verdict, XDP_TX);
        check_answer_from(&out, v6, cport, isn);
    }
}
