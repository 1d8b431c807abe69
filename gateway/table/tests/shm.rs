//! The table file end to end: creation, publication, adoption, refusal of bad generations and
//! bad files, slot reuse against lagging readers, a writer restart, and a reader in another
//! process that dies holding its record.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sluice_table::protocol::{ABI_VERSION, checksum};
use sluice_table::shm::CONTROL_BYTES;
use sluice_table::{Geometry, OpenError, PublishError, Publisher, Reader, Refresh, Refusal};

/// A temporary file path, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        let p = std::env::temp_dir().join(format!("sluice-table-{tag}-{}-{}", std::process::id(), unique()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

const SMALL: Geometry = Geometry { slots: 3, slot_bytes: 16 * 1024 };

/// The payload of generation `g`, `len` bytes: each byte depends on `g` and its position, so a
/// torn read or a mix of two generations shows.
fn payload(g: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (g as usize * 31 + i * 7) as u8).collect()
}

#[test]
fn publish_then_adopt_and_nothing_before() {
    let t = TempPath::new("basic");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mode = std::fs::metadata(&t.0).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the table is readable by its owner only");
    let mut r = Reader::open(&t.0).unwrap();
    assert_eq!((r.generation(), r.payload()), (None, None));
    assert_eq!(r.refresh(), Refresh::Unchanged);
    assert_eq!(w.publish(&payload(1, 100)).unwrap(), 1);
    assert_eq!(r.refresh(), Refresh::Adopted(1));
    assert_eq!(r.payload().unwrap(), &payload(1, 100)[..]);
    assert_eq!(r.refresh(), Refresh::Unchanged);
    assert_eq!(w.publish(&payload(2, 5000)).unwrap(), 2);
    assert_eq!(r.refresh(), Refresh::Adopted(2));
    assert_eq!(r.payload().unwrap(), &payload(2, 5000)[..]);
    assert_eq!(w.readers(), vec![(u64::from(std::process::id()), 2)]);
    // A reader opened later adopts the current generation at once.
    let r2 = Reader::open(&t.0).unwrap();
    assert_eq!(r2.generation(), Some(2));
}

#[test]
fn a_lagging_reader_holds_back_slot_reuse_not_publication() {
    let t = TempPath::new("lag");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    w.publish(&payload(1, 64)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(1));
    // The reader sits on generation 1: two more fit in the other slots, then the writer waits.
    w.publish(&payload(2, 64)).unwrap();
    w.publish(&payload(3, 64)).unwrap();
    assert_eq!(w.publish(&payload(4, 64)), Err(PublishError::Busy));
    assert_eq!(r.payload().unwrap(), &payload(1, 64)[..], "generation 1 is intact while in use");
    assert_eq!(r.refresh(), Refresh::Adopted(3), "a reader skips to the newest generation");
    assert_eq!(w.publish(&payload(4, 64)), Ok(4));
    // A dropped reader holds nothing back.
    drop(r);
    for g in 5..20 {
        assert_eq!(w.publish(&payload(g, 64)), Ok(g));
    }
}

#[test]
fn a_stats_only_reader_holds_nothing_back_and_still_publishes_counters() {
    let t = TempPath::new("statsonly");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    w.publish(&payload(1, 64)).unwrap();
    let mut r = Reader::open_stats_only(&t.0).unwrap();
    assert_eq!((r.generation(), r.payload()), (None, None), "it never adopts");
    for g in 2..20 {
        assert_eq!(w.publish(&payload(g, 64)), Ok(g), "no slot held back");
        assert_eq!(r.refresh(), Refresh::Unchanged);
    }
    r.publish_stats(&[7, 8]);
    let stats = w.reader_stats();
    assert!(stats.iter().any(|(_, v)| v.starts_with(&[7, 8])), "{stats:?}");
    // A reader that adopted and then stopped refreshing holds its slot; the stats-only one
    // beside it changes nothing.
    let mut lagging = Reader::open(&t.0).unwrap();
    assert_eq!(lagging.generation(), Some(19));
    w.publish(&payload(20, 64)).unwrap();
    w.publish(&payload(21, 64)).unwrap();
    assert_eq!(w.publish(&payload(22, 64)), Err(PublishError::Busy));
    assert_eq!(lagging.refresh(), Refresh::Adopted(21));
    assert_eq!(w.publish(&payload(22, 64)), Ok(22));
}

#[test]
fn readers_publish_counters_to_the_stats_region() {
    let t = TempPath::new("stats");
    let w = Publisher::create(&t.0, SMALL).unwrap();
    let a = Reader::open(&t.0).unwrap();
    let b = Reader::open(&t.0).unwrap();
    a.publish_stats(&[1, 2, 3]);
    b.publish_stats(&[10, 20]);
    let mut got: Vec<Vec<u64>> = w
        .reader_stats()
        .into_iter()
        .map(|(pid, v)| {
            assert_eq!(pid, u64::from(std::process::id()));
            v[..3].to_vec()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![vec![1, 2, 3], vec![10, 20, 0]]);
    drop(a);
    // A new reader in a freed record starts from zero.
    let c = Reader::open(&t.0).unwrap();
    let _ = &c;
    let mut firsts: Vec<u64> = w.reader_stats().into_iter().map(|(_, v)| v[0]).collect();
    firsts.sort();
    assert_eq!(firsts, vec![0, 10]);
}

#[test]
fn too_large_is_refused_by_the_writer() {
    let t = TempPath::new("large");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let e = w.publish(&vec![0; 16 * 1024]).unwrap_err();
    assert!(matches!(e, PublishError::TooLarge { len: 16384, .. }), "{e}");
    assert_eq!(w.generation(), 0);
}

/// Flips one byte of the file at `offset`.
fn corrupt(path: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0xff;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn a_corrupted_generation_is_refused_and_the_last_good_one_stays() {
    let t = TempPath::new("corrupt");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    w.publish(&payload(1, 1000)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(1));
    // Generation 2 goes to slot 1 (slot 0 holds the reader's generation 1); damage its payload
    // after publication, before the reader looks.
    w.publish(&payload(2, 1000)).unwrap();
    corrupt(&t.0, CONTROL_BYTES as u64 + SMALL.slot_bytes + 64 + 500);
    assert_eq!(r.refresh(), Refresh::Refused(2, Refusal::Checksum));
    assert_eq!((r.generation(), r.refused()), (Some(1), 1));
    assert_eq!(r.payload().unwrap(), &payload(1, 1000)[..], "the last good table stays live");
    assert_eq!(r.refresh(), Refresh::Unchanged, "a refused generation is not re-examined every batch");
    w.publish(&payload(3, 1000)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(3));
}

#[test]
fn a_slot_of_another_abi_is_refused() {
    let t = TempPath::new("slot-abi");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    w.publish(&payload(1, 10)).unwrap();
    // The slot header's ABI field is at offset 8 of slot 0.
    corrupt(&t.0, CONTROL_BYTES as u64 + 8);
    let Refresh::Refused(1, Refusal::AbiMismatch { found }) = r.refresh() else { panic!("refused") };
    assert_ne!(found, ABI_VERSION);
    assert_eq!(r.payload(), None);
}

/// Found by `fuzz/run table_reader`: a control block whose `slots` word grows after the reader
/// mapped the file (a hostile or broken writer) named a slot beyond the mapping, and the reader
/// read it. The slot is bounded by the geometry the file was mapped with.
#[test]
fn a_slot_count_raised_under_a_reader_bounds_nothing() {
    use std::os::unix::fs::FileExt;
    let t = TempPath::new("slots-raised");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    w.publish(&payload(1, 100)).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    assert_eq!(r.generation(), Some(1));
    // The control block: `slots` (u32) at offset 12, `active` (generation << 8 | slot) at 24.
    let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    f.write_all_at(&8u32.to_le_bytes(), 12).unwrap();
    f.write_all_at(&((2u64 << 8) | 7).to_le_bytes(), 24).unwrap();
    assert_eq!(r.refresh(), Refresh::Refused(2, Refusal::BadSlot(7)));
    assert_eq!(r.payload().unwrap(), &payload(1, 100)[..], "the last good table stays live");
}

/// Found by `fuzz/run table_reader`: a control block whose slot size makes the file's length
/// overflow (here 2 × 2^63 wraps to 0) passed the length check with a short file, and the reader
/// would have read far past its mapping. It is refused as truncated.
#[test]
fn a_geometry_whose_length_overflows_is_refused() {
    use std::os::unix::fs::FileExt;
    let t = TempPath::new("overflow");
    drop(Publisher::create(&t.0, SMALL).unwrap());
    // The control block: `slots` (u32) at offset 12, `slot_bytes` (u64) at 16.
    let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    f.write_all_at(&2u32.to_le_bytes(), 12).unwrap();
    f.write_all_at(&(1u64 << 63).to_le_bytes(), 16).unwrap();
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::Truncated { .. }), "{e}");
}

#[test]
fn bad_files_are_refused_with_their_own_errors() {
    let t = TempPath::new("files");
    // Not a table at all.
    std::fs::write(&t.0, vec![0x42u8; CONTROL_BYTES + 4096]).unwrap();
    assert!(matches!(Reader::open(&t.0), Err(OpenError::BadMagic { .. })));
    // Too short to hold a control block.
    std::fs::write(&t.0, b"tiny").unwrap();
    assert!(matches!(Reader::open(&t.0), Err(OpenError::Truncated { .. })));
    // A table of another ABI version (the control block's ABI field is at offset 8).
    std::fs::remove_file(&t.0).unwrap();
    drop(Publisher::create(&t.0, SMALL).unwrap());
    corrupt(&t.0, 8);
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::AbiMismatch { .. }), "{e}");
    assert!(e.to_string().contains("run a control and a gateway of the same release"), "{e}");
    // A missing file.
    let missing = TempPath::new("missing");
    assert!(matches!(Reader::open(&missing.0), Err(OpenError::Io { .. })));
    // Unusable geometry.
    assert!(matches!(
        Publisher::create(&missing.0, Geometry { slots: 1, slot_bytes: 8192 }),
        Err(OpenError::BadGeometry(_))
    ));
}

#[test]
fn one_writer_at_a_time_and_a_restart_continues() {
    let t = TempPath::new("writer");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    assert!(matches!(Publisher::create(&t.0, SMALL), Err(OpenError::WriterBusy { .. })));
    w.publish(&payload(1, 10)).unwrap();
    w.publish(&payload(2, 10)).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    drop(w);
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    assert_eq!(w.generation(), 2, "generations continue across a control restart");
    assert_eq!(w.publish(&payload(3, 10)), Ok(3));
    assert_eq!(r.refresh(), Refresh::Adopted(3));
    // Another geometry on the same file is refused rather than silently remapped.
    drop(w);
    let other = Geometry { slots: 2, slot_bytes: 16 * 1024 };
    assert!(matches!(Publisher::create(&t.0, other), Err(OpenError::BadGeometry(_))));
}

/// Run as a child process (see `a_reader_in_another_process`): open the table, wait for the
/// generation given, check its payload, report, and exit without releasing the record (as a
/// crashed gateway would).
#[test]
fn child_reader() {
    let Ok(path) = std::env::var("SLUICE_TABLE_CHILD") else { return };
    let want: u64 = std::env::var("SLUICE_TABLE_WANT").unwrap().parse().unwrap();
    let mut r = Reader::open(std::path::Path::new(&path)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.generation() != Some(want) {
        assert!(std::time::Instant::now() < deadline, "generation {want} never came");
        r.refresh();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let p = r.payload().unwrap();
    assert_eq!(p, &payload(want, p.len())[..]);
    println!("CHILD-ADOPTED {want} {:016x}", checksum(p));
    std::process::exit(0);
}

#[test]
fn a_reader_in_another_process() {
    let t = TempPath::new("process");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    w.publish(&payload(1, 3000)).unwrap();
    w.publish(&payload(2, 3000)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reader", "--nocapture", "--test-threads=1"])
        .env("SLUICE_TABLE_CHILD", &t.0)
        .env("SLUICE_TABLE_WANT", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let want = format!("CHILD-ADOPTED 2 {:016x}", checksum(&payload(2, 3000)));
    assert!(stdout.contains(&want), "child said: {stdout}");
    // The child exited holding its record: the writer reclaims it and is not held back.
    assert_eq!(w.reclaim_dead_readers(), 1);
    assert!(w.readers().is_empty());
    for g in 3..10 {
        assert_eq!(w.publish(&payload(g, 10)), Ok(g));
    }
}

mod concurrent {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Random publications against reader threads that refresh and read as fast as they can:
        /// every payload a reader sees is exactly its generation's (never torn, never mixed),
        /// generations only go forward, nothing valid is refused, every reader reaches the last
        /// generation, and the writer always gets through (readers never make it wait for long).
        #[test]
        fn readers_never_see_a_torn_or_mixed_table(sizes in prop::collection::vec(0usize..12_000, 1..40)) {
            let t = TempPath::new("prop");
            let mut w = Publisher::create(&t.0, SMALL).unwrap();
            // The last generation published, once the writer is done (0 before).
            let last = Arc::new(AtomicU64::new(0));
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let (path, done) = (t.0.clone(), last.clone());
                    let mut r = Reader::open(&path).unwrap();
                    std::thread::spawn(move || {
                        let (mut last, mut adopted) = (0u64, 0u64);
                        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                        loop {
                            let fin = done.load(Ordering::Acquire);
                            if fin != 0 && r.generation() == Some(fin) {
                                break;
                            }
                            assert!(std::time::Instant::now() < deadline, "never reached the last generation");
                            match r.refresh() {
                                Refresh::Refused(g, why) => panic!("generation {g} refused: {why}"),
                                Refresh::Adopted(g) => {
                                    assert!(g > last, "generation went from {last} to {g}");
                                    last = g;
                                    adopted += 1;
                                }
                                Refresh::Unchanged => {}
                            }
                            if let (Some(g), Some(p)) = (r.generation(), r.payload()) {
                                assert_eq!(p, &payload(g, p.len())[..], "generation {g} torn or mixed");
                            }
                        }
                        adopted
                    })
                })
                .collect();
            for (i, &len) in sizes.iter().enumerate() {
                let g = i as u64 + 1;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    match w.publish(&payload(g, len)) {
                        Ok(got) => { prop_assert_eq!(got, g); break; }
                        Err(PublishError::Busy) => {
                            prop_assert!(std::time::Instant::now() < deadline, "writer starved");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            last.store(sizes.len() as u64, Ordering::Release);
            for h in readers {
                prop_assert!(h.join().unwrap() >= 1);
            }
        }
    }
}
