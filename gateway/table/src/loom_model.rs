//! The publication protocol under loom: every interleaving of a writer publishing generations
//! and readers refreshing and reading, with slot memory in loom's tracked cells, so that a
//! slot written while a reader may read it is reported as a data race.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p sluice-table --release --lib loom`.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;

use crate::protocol::*;

const PAYLOAD: usize = 8;

struct LoomStore {
    headers: Vec<UnsafeCell<SlotHeader>>,
    payloads: Vec<UnsafeCell<[u8; PAYLOAD]>>,
}

impl SlotStore for LoomStore {
    fn slots(&self) -> usize {
        self.headers.len()
    }

    fn capacity(&self) -> usize {
        PAYLOAD
    }

    fn write(&self, slot: usize, header: &SlotHeader, payload: &[u8]) {
        self.headers[slot].with_mut(|h| {
            // SAFETY: loom model; loom checks this access does not race with a reader's.
            unsafe { *h = *header }
        });
        self.payloads[slot].with_mut(|p| {
            // SAFETY: loom model; loom checks the access, as above.
            let dst: &mut [u8; PAYLOAD] = unsafe { &mut *p };
            dst[..payload.len()].copy_from_slice(payload);
        });
    }

    fn read<R>(&self, slot: usize, f: impl FnOnce(&SlotHeader, &[u8]) -> R) -> R {
        // SAFETY: loom model; loom checks these reads do not race with a write.
        let h = self.headers[slot].with(|h| unsafe { *h });
        // SAFETY: loom model; loom checks the access, as above.
        let p = self.payloads[slot].with(|p| unsafe { *p });
        f(&h, &p)
    }
}

fn control(slots: u32) -> Control {
    Control {
        magic: CONTROL_MAGIC,
        abi: ABI_VERSION,
        slots,
        slot_bytes: 0,
        active: AtomicU64::new(0),
        slot_generation: core::array::from_fn(|_| AtomicU64::new(0)),
        readers: core::array::from_fn(|_| ReaderRecord { owner: AtomicU64::new(0), seen: AtomicU64::new(0) }),
        stats: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU64::new(0))),
    }
}

fn store(slots: usize) -> LoomStore {
    LoomStore {
        headers: (0..slots).map(|_| UnsafeCell::new(SlotHeader::default())).collect(),
        payloads: (0..slots).map(|_| UnsafeCell::new([0; PAYLOAD])).collect(),
    }
}

/// The payload of generation `g`: every byte says which generation it belongs to.
fn payload(g: u64) -> [u8; PAYLOAD] {
    [g as u8; PAYLOAD]
}

fn check_read<S: SlotStore>(r: &mut ReaderState, c: &Control, s: &S) {
    match r.refresh(c, s) {
        Refresh::Refused(g, why) => panic!("generation {g} refused: {why}"),
        Refresh::Adopted(_) | Refresh::Unchanged => {}
    }
    if let Some((g, slot, len)) = r.current {
        s.read(slot, |_, p| assert_eq!(&p[..len], &payload(g), "torn read of generation {g}"));
    }
}

fn model(slots: u32, generations: u64, readers: usize, rounds: usize) {
    // Three preemptions find the ordering bugs loom is for in protocols of this size; an
    // unbounded search of the larger models does not finish in CI's time.
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        let c = Arc::new(control(slots));
        let s = Arc::new(store(slots as usize));
        for i in 0..readers {
            c.readers[i].owner.store(1 + i as u64, Ordering::SeqCst);
        }
        let mut handles = Vec::new();
        for i in 0..readers {
            let (c, s) = (c.clone(), s.clone());
            handles.push(thread::spawn(move || {
                let mut r = ReaderState::new(i);
                for _ in 0..rounds {
                    check_read(&mut r, &c, &*s);
                }
            }));
        }
        let mut published = 0;
        for g in 1..=generations {
            // A busy table is a normal outcome: the writer just does not publish that round.
            if publish(&c, &*s, g, &payload(g)).is_ok() {
                published = g;
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(published >= 1, "the first publication always finds a free slot");
    });
}

#[test]
fn loom_one_reader_two_slots() {
    model(2, 3, 1, 2);
}

#[test]
fn loom_one_reader_three_slots() {
    model(3, 3, 1, 2);
}

#[test]
fn loom_two_readers_three_slots() {
    model(3, 2, 2, 2);
}
