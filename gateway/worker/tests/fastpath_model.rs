//! The flow table and the fast path's map never disagree about a flow: a worker with the fast
//! path on is driven with random events (flows opened, data, FIN, RST, backends removed and
//! restored, time passing, new next hops, a table too small for every flow, an installer queue
//! too short for a batch's commands), its installer commands are
//! applied in order to a model of the map, and after each event every entry in the model must
//! belong to a flow the engine still forwards through the kernel, and be exactly the entry the
//! worker would build for it now — the same backend, the same rewrite. The model answers the
//! worker's read-backs with the last-seen time of frames "the kernel" forwarded (events that
//! reach an installed entry instead of the worker). No root needed.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use crossbeam_queue::ArrayQueue;
use proptest::prelude::*;
use sluice_lb::flow::{Dir, Flow};
use sluice_model::Counter;
use sluice_model::service::Conditions;
use sluice_port::mem::MemPort;
use sluice_worker::Worker;
use sluice_worker::fastpath::{FastCommand, FastQueue, FastReport, FastReports, key};
use sluice_xsk::fastpath::{FastEntry, FastKey};

/// The installer's queue and the queue of its read-backs.
struct Queues {
    commands: FastQueue,
    reports: FastReports,
}

/// A worker with the fast path on, a table of `capacity` flows, an installer queue of `queue`.
fn harness(capacity: usize, queue: usize) -> (Harness, Queues) {
    let mut cfg = worker_config();
    cfg.l4.flow_capacity = capacity;
    cfg.l4.fast_path = true;
    let q = Queues { commands: Arc::new(ArrayQueue::new(queue)), reports: Arc::new(ArrayQueue::new(queue)) };
    let worker = Worker::new(&cfg, table(1, standard_services()), next_hops())
        .with_fast_path(q.commands.clone())
        .with_fast_reports(q.reports.clone());
    let h = Harness { worker, port: MemPort::new(256, 2048), now_ns: 1_000_000_000, before: Vec::new() };
    (h, q)
}

/// The installer, as a map: applies the queued commands in order. An entry's `packets` and
/// `last_seen_ns` are what "the kernel" forwarded ([`Model::kernel_frame`]).
#[derive(Default)]
struct Model(HashMap<FastKey, FastEntry>);

impl Model {
    fn apply(&mut self, q: &Queues) {
        while let Some(c) = q.commands.pop() {
            match c {
                FastCommand::Install(_, k, e) => {
                    self.0.insert(k, e);
                }
                FastCommand::Remove(k) => {
                    self.0.remove(&k);
                }
                FastCommand::Clear => self.0.clear(),
                FastCommand::Ask(fwd, rev) => {
                    let (mut last_seen_ns, mut frames, mut bytes) = (0, 0, 0);
                    for k in [key(&fwd), key(&rev)] {
                        if let Some(e) = self.0.get_mut(&k) {
                            last_seen_ns = last_seen_ns.max(e.last_seen_ns);
                            frames += std::mem::take(&mut e.packets);
                            bytes += std::mem::take(&mut e.bytes);
                        }
                    }
                    let r = FastReport::Seen { fwd, rev, last_seen_ns, frames, bytes };
                    // A full report queue loses the answer: the engine's wait withdraws the flow.
                    let _ = q.reports.push(r);
                }
            }
        }
    }

    /// A frame the kernel forwarded through entry `k` at `now_ns`: whether there was one.
    fn kernel_frame(&mut self, k: &FastKey, now_ns: u64) -> bool {
        let Some(e) = self.0.get_mut(k) else { return false };
        e.packets += 1;
        e.bytes += 64;
        e.last_seen_ns = now_ns;
        true
    }

    /// Lets the installer catch up: what a full queue held back (a pending clear) goes out on
    /// the next polls, and read-backs are answered and taken.
    fn settle(&mut self, h: &mut Harness, q: &Queues) {
        for _ in 0..3 {
            self.apply(q);
            h.idle_poll();
        }
        self.apply(q);
    }

    /// Every entry belongs to a flow the engine has offloaded, and is the entry the worker
    /// would build for it now.
    fn check(&self, h: &mut Harness) -> Result<(), TestCaseError> {
        let generation = h.worker.l4().table().generation();
        let mut flows: HashMap<FastKey, (Flow, Dir)> = HashMap::new();
        h.worker.l4().flows().for_each(|_, f| {
            flows.insert(key(&f.fwd), (*f, Dir::Forward));
            flows.insert(key(&f.rev), (*f, Dir::Reverse));
        });
        for (k, e) in &self.0 {
            let Some((f, dir)) = flows.get(k) else {
                return Err(TestCaseError::fail(format!("an entry without a flow: {k:?}")));
            };
            prop_assert!(f.is_offloaded(), "an entry for a flow the engine took back: {f:?}");
            prop_assert!(f.offloadable() || f.generation != generation, "not offloadable: {f:?}");
            let (wk, want) = h.worker.fast_entry(f, *dir).expect("next hops are known");
            prop_assert_eq!(&wk, k);
            let program = FastEntry { packets: 0, bytes: 0, last_seen_ns: 0, ..*e };
            prop_assert_eq!(&program, &want, "the entry and the flow disagree");
        }
        Ok(())
    }
}

const FLOWS: u16 = 24;

/// Flow `i`: TCP to the Maglev web service for even `i`, UDP to its DNS service for odd.
fn client(i: u16) -> Frame {
    let (port, vport) = (42_000 + i, if i.is_multiple_of(2) { 80 } else { 53 });
    from(CLIENT_MAC, CLIENT, port).to(GW_MAC, VIP, vport)
}

fn flow_of(h: &Harness, i: u16) -> Option<Flow> {
    let proto = if i.is_multiple_of(2) { 6 } else { 17 };
    let mut found = None;
    h.worker.l4().flows().for_each(|_, f| {
        if f.fwd.sport == 42_000 + i && f.fwd.proto == proto {
            found = Some(*f);
        }
    });
    found
}

fn backend(f: &Flow) -> Frame {
    let a = f.rev.src.v4();
    from(backend_mac(a[3]), a, f.rev.sport).to(GW_MAC, f.rev.dst.v4(), f.rev.dport)
}

#[derive(Debug, Clone)]
enum Op {
    Open(u16),
    Data(u16, bool),
    Fin(u16, bool),
    Rst(u16, bool),
    RemoveBackend(u8),
    RestoreBackends,
    AdvanceS(u8),
    /// New routes and neighbours from the main thread: backend 2 at another MAC address, or
    /// back at its own.
    NewNextHops(bool),
    /// A data frame of flow `i` (from the backend: `true`) that the kernel forwards when its
    /// entry is installed, and the worker sees otherwise.
    KernelData(u16, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..FLOWS).prop_map(Op::Open),
        4 => (0..FLOWS, any::<bool>()).prop_map(|(i, b)| Op::Data(i, b)),
        1 => (0..FLOWS, any::<bool>()).prop_map(|(i, b)| Op::Fin(i, b)),
        1 => (0..FLOWS, any::<bool>()).prop_map(|(i, b)| Op::Rst(i, b)),
        1 => (1u8..=3).prop_map(Op::RemoveBackend),
        1 => Just(Op::RestoreBackends),
        1 => prop_oneof![Just(1u8), Just(40), Just(130), Just(255)].prop_map(Op::AdvanceS),
        1 => any::<bool>().prop_map(Op::NewNextHops),
        3 => (0..FLOWS, any::<bool>()).prop_map(|(i, b)| Op::KernelData(i, b)),
    ]
}

/// Runs one event through the worker, or through the model's "kernel" (outcomes vary: a
/// segment of a flow that is gone is dropped; the property is about the map, not about them).
fn run(h: &mut Harness, model: &mut Model, generation: &mut u64, o: &Op) {
    if let Op::KernelData(i, back) = *o {
        let k = flow_of(h, i).map(|f| key(if back { &f.rev } else { &f.fwd }));
        if k.is_some_and(|k| model.kernel_frame(&k, h.now_ns)) {
            return;
        }
    }
    let from_backend = |h: &Harness, i: u16| flow_of(h, i).map(|f| backend(&f));
    let tcp = |i: u16| i.is_multiple_of(2);
    match *o {
        Op::Open(i) if tcp(i) => {
            h.send(&client(i).tcp(SYN, b""));
            if let Some(b) = from_backend(h, i) {
                h.send(&b.tcp(syn_ack(), b""));
                h.send(&client(i).tcp(ack(5001), b""));
            }
        }
        Op::Open(i) => {
            h.send(&client(i).udp(b"q"));
            if let Some(b) = from_backend(h, i) {
                h.send(&b.udp(b"a"));
            }
        }
        Op::Data(i, back) | Op::KernelData(i, back) => {
            let f = if back { from_backend(h, i) } else { Some(client(i)) };
            if let Some(f) = f {
                h.send(&if tcp(i) { f.tcp(Tcp { psh: true, ..ack(5001) }, b"data") } else { f.udp(b"data") });
            }
        }
        Op::Fin(i, back) | Op::Rst(i, back) if tcp(i) => {
            let t = if matches!(o, Op::Fin(..)) { fin_ack() } else { rst() };
            let f = if back { from_backend(h, i) } else { Some(client(i)) };
            if let Some(f) = f {
                h.send(&f.tcp(t, b""));
            }
        }
        Op::Fin(..) | Op::Rst(..) => {}
        Op::RemoveBackend(b) => {
            let mut s = standard_services();
            let rest: Vec<u8> = [1, 2, 3].into_iter().filter(|&x| x != b).collect();
            s[0].backends = backends(&rest, 8080, Conditions::READY);
            s[1].backends = backends(&rest, 5353, Conditions::READY);
            *generation += 1;
            h.worker.set_table(table(*generation, s));
        }
        Op::RestoreBackends => {
            *generation += 1;
            h.worker.set_table(table(*generation, standard_services()));
        }
        Op::NewNextHops(moved) => {
            let mut n = next_hops();
            if moved {
                n.set_neighbor(a4(be(2)), [0x02, 0, 0, 0, 9, 2]);
            }
            h.worker.set_next_hops(n);
        }
        Op::AdvanceS(s) => {
            h.advance_s(u64::from(s));
            for _ in 0..8 {
                h.idle_poll();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_map_never_disagrees_with_the_flow_table(
        ops in prop::collection::vec(op(), 1..60),
        small_table in any::<bool>(),
        small_queue in any::<bool>(),
    ) {
        let (mut h, q) = harness(if small_table { 16 } else { 256 }, if small_queue { 3 } else { 256 });
        let mut model = Model::default();
        let mut generation = 1;
        for o in &ops {
            run(&mut h, &mut model, &mut generation, o);
            model.settle(&mut h, &q);
            model.check(&mut h)?;
        }
    }
}

#[test]
fn established_flows_are_installed_and_taken_back() {
    let (mut h, q) = harness(256, 256);
    let mut model = Model::default();
    let mut generation = 1;
    run(&mut h, &mut model, &mut generation, &Op::Open(0));
    run(&mut h, &mut model, &mut generation, &Op::Open(1));
    model.settle(&mut h, &q);
    assert_eq!(model.0.len(), 4, "two directions of two flows");
    model.check(&mut h).unwrap();
    // A new neighbour leaves every next hop as it was: the entries stay.
    let mut n = next_hops();
    n.set_neighbor(a4([198, 18, 0, 77]), [0x02, 0, 0, 0, 0, 0x77]);
    h.worker.set_next_hops(n);
    model.settle(&mut h, &q);
    assert_eq!(model.0.len(), 4, "a new neighbour keeps the entries");
    // A neighbour at a new MAC address does not.
    let mut n = next_hops();
    n.set_neighbor(a4(be(1)), [0x02, 0, 0, 0, 9, 1]);
    n.set_neighbor(a4(be(2)), [0x02, 0, 0, 0, 9, 2]);
    n.set_neighbor(a4(be(3)), [0x02, 0, 0, 0, 9, 3]);
    h.worker.set_next_hops(n);
    model.settle(&mut h, &q);
    assert!(model.0.is_empty(), "moved next hops clear the entries");
    h.worker.set_next_hops(next_hops());
    run(&mut h, &mut model, &mut generation, &Op::Data(0, false));
    run(&mut h, &mut model, &mut generation, &Op::Data(1, false));
    model.settle(&mut h, &q);
    assert_eq!(model.0.len(), 4, "the flows are offered again on their next packet");
    model.check(&mut h).unwrap();
    let udp = flow_of(&h, 1).unwrap();

    run(&mut h, &mut model, &mut generation, &Op::Fin(0, false));
    model.settle(&mut h, &q);
    assert_eq!(model.0.len(), 2, "a FIN takes the TCP flow back");
    assert!(model.0.contains_key(&key(&udp.fwd)) && model.0.contains_key(&key(&udp.rev)));

    // Its backend leaves: within capacity / RESCAN_BUDGET polls (one, here) the flow is taken
    // back, and its next datagram starts over on another backend, which is installed.
    let gone = udp.rev.src.v4()[3];
    run(&mut h, &mut model, &mut generation, &Op::RemoveBackend(gone));
    assert!(h.worker.busy(), "a pass over the flow table is due");
    h.idle_poll();
    assert!(!h.worker.busy());
    model.settle(&mut h, &q);
    assert!(model.0.is_empty(), "withdrawn within a sweep: {:?}", model.0.keys());
    run(&mut h, &mut model, &mut generation, &Op::Data(1, false));
    run(&mut h, &mut model, &mut generation, &Op::Data(1, true));
    model.settle(&mut h, &q);
    let moved = flow_of(&h, 1).unwrap();
    assert_ne!(moved.rev.src.v4()[3], gone);
    assert_eq!(model.0.len(), 2, "the new flow is installed");
    model.check(&mut h).unwrap();

    // Idle past its deadline: taken back first, then expired after the grace.
    h.advance_s(121);
    for _ in 0..32 {
        h.idle_poll();
    }
    model.settle(&mut h, &q);
    assert!(model.0.is_empty(), "taken back at its deadline");
    assert!(flow_of(&h, 1).is_some(), "but not expired: it may have been busy in the kernel");
    h.advance_s(11);
    for _ in 0..32 {
        h.idle_poll();
    }
    assert!(flow_of(&h, 1).is_none(), "expired after the grace");
    let c = h.worker.counters();
    // Offered: two flows, twice each (after the next hops moved), and the UDP flow anew on its
    // new backend. Withdrawn: both by the moved next hops, the TCP flow by its FIN, the UDP flow
    // by the table change and at its deadline.
    assert_eq!(c[Counter::FastOffered], 5);
    assert_eq!(c[Counter::FastWithdrawn], 5);
}

/// Read-back: an offloaded UDP flow whose frames only the kernel forwards stays offloaded past
/// every deadline while the kernel's last-seen time is recent, and its frames reach the
/// worker's counters; idle, it is withdrawn at its next deadline and expires after the grace.
#[test]
fn a_flow_the_kernel_keeps_busy_is_not_withdrawn_at_its_deadline() {
    let (mut h, q) = harness(256, 256);
    let mut model = Model::default();
    let mut generation = 1;
    run(&mut h, &mut model, &mut generation, &Op::Open(1));
    model.settle(&mut h, &q);
    assert_eq!(model.0.len(), 2, "both directions installed");
    let mut kernel_frames = 0;
    for round in 0..3 {
        // Busy in the kernel alone: the worker sees none of it, and its deadline (120 s after
        // it last saw the flow) passes. 32 polls: two passes of the sweep over 256 slots.
        for _ in 0..5 {
            h.advance_s(25);
            run(&mut h, &mut model, &mut generation, &Op::KernelData(1, round % 2 == 1));
            kernel_frames += 1;
            for _ in 0..32 {
                h.idle_poll();
            }
            model.settle(&mut h, &q);
            assert_eq!(model.0.len(), 2, "round {round}: withdrawn while the kernel forwards it");
            assert!(flow_of(&h, 1).is_some_and(|f| f.is_offloaded()));
        }
        model.check(&mut h).unwrap();
    }
    let c = h.worker.counters();
    assert!(c[Counter::FastKept] >= 2, "kept at its deadlines: {}", c[Counter::FastKept]);
    assert_eq!(c[Counter::FastWithdrawn], 0);
    // Idle: at the next deadline the read-back finds nothing new, and the flow is withdrawn.
    h.advance_s(121);
    for _ in 0..32 {
        h.idle_poll();
    }
    model.settle(&mut h, &q);
    assert!(model.0.is_empty(), "idle past its timeout: withdrawn");
    assert_eq!(h.worker.counters()[Counter::FastWithdrawn], 1);
    // Every frame the kernel forwarded was read back before the entries went.
    assert_eq!(h.worker.counters()[Counter::FastFrames], kernel_frames);
    h.advance_s(11);
    for _ in 0..32 {
        h.idle_poll();
    }
    assert!(flow_of(&h, 1).is_none(), "expired after the grace");
}
