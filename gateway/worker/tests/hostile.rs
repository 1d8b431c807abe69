//! Hostile input: arbitrary bytes and mutations of valid frames never panic, and every frame is
//! accounted for — transmitted, handed to the kernel, or dropped with a named reason.

mod common;

use common::*;
use proptest::prelude::*;
use sluice_model::Counter;

fn seeds() -> Vec<Vec<u8>> {
    vec![
        from(CLIENT_MAC, CLIENT, 40_000).to(GW_MAC, VIP, 80).tcp(SYN, b"GET / HTTP/1.1\r\n\r\n"),
        from(CLIENT_MAC, CLIENT, 5000).to(GW_MAC, VIP, 53).udp(b"query"),
        from(CLIENT_MAC, CLIENT6, 40_000).to(GW_MAC, VIP6, 80).tcp(SYN, b"x"),
        from(CLIENT_MAC, CLIENT6, 5000).to(GW_MAC, VIP6, 53).udp(b"q6"),
        from(CLIENT_MAC, CLIENT, 40_000).to(GW_MAC, NODE, 31080).tcp(ack(1), b"data"),
    ]
}

fn check_accounting(h: &Harness) {
    let c = h.worker.counters();
    // Every frame is sent, handed over, dropped with a reason, or still held for its next hop.
    let held = h.worker.parked() as u64;
    let out = c[Counter::TxFrames] + c[Counter::KernelFrames] + c.dropped_total() + held;
    assert_eq!(c[Counter::RxFrames], out, "{c:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..32)) {
        let mut h = Harness::standard();
        for f in &frames {
            h.port.inject(f);
        }
        h.worker.poll(&mut h.port, h.now_ns);
        h.port.drain_tx(|_| {});
        h.port.drain_kernel();
        check_accounting(&h);
        prop_assert_eq!(h.port.free_frames(), 256, "every frame buffer came back");
    }

    #[test]
    fn mutated_valid_frames(which in 0usize..5, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut h = Harness::standard();
        let mut f = seeds()[which].clone();
        for (at, v) in edits {
            let i = at.index(f.len());
            f[i] = v;
        }
        if truncate {
            f.truncate(cut.index(f.len() + 1));
        }
        h.port.inject(&f);
        h.worker.poll(&mut h.port, h.now_ns);
        check_accounting(&h);
    }
}
