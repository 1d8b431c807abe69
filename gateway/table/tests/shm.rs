//! The table file end to end: creation, publication, adoption, refusal of bad generations and
//! bad files, slot reuse against lagging readers, a writer restart, a reader in another
//! process that dies holding its record, and a file that does not deserve trust: a symbolic
//! link, another owner, writable by others, its geometry or generation changed after opening,
//! truncated or replaced under its readers.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sluice_table::protocol::{ABI_VERSION, checksum};
use sluice_table::shm::CONTROL_BYTES;
use sluice_table::{FileState, Geometry, OpenError, PublishError, Publisher, Reader, Refresh, Refusal};

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
fn readers_publish_route_rows_and_a_new_reader_starts_from_zero() {
    use sluice_table::protocol::{ROUTE_ROW_VALUES, ROUTE_ROWS};
    let t = TempPath::new("routes");
    let w = Publisher::create(&t.0, SMALL).unwrap();
    let a = Reader::open_stats_only(&t.0).unwrap();
    let b = Reader::open_stats_only(&t.0).unwrap();
    let last = ROUTE_ROWS - 1;
    a.publish_route_row(3, &[1, 2, 3]);
    a.publish_route_row(last, &vec![9; ROUTE_ROW_VALUES + 5]);
    b.publish_route_row(3, &[10]);
    // Past the region: ignored, not a panic.
    b.publish_route_row(ROUTE_ROWS, &[77]);
    assert!(w.route_row(ROUTE_ROWS).is_empty());
    let mut got: Vec<Vec<u64>> = w.route_row(3).into_iter().map(|(_, _, v)| v[..4].to_vec()).collect();
    got.sort();
    assert_eq!(got, vec![vec![1, 2, 3, 0], vec![10, 0, 0, 0]]);
    let rows = w.route_row(last);
    assert!(
        rows.iter().any(|(_, pid, v)| *pid == u64::from(std::process::id()) && v.iter().all(|&x| x == 9))
    );
    let record_a = w.route_row(3).into_iter().find(|(_, _, v)| v[0] == 1).unwrap().0;
    drop(a);
    let c = Reader::open_stats_only(&t.0).unwrap();
    let _ = &c;
    // The record `a` left is `c`'s now, its rows zero.
    let rows = w.route_row(last);
    assert!(rows.iter().all(|(_, _, v)| v.iter().all(|&x| x == 0)), "{rows:?}");
    assert!(w.route_row(3).iter().any(|(r, _, v)| *r == record_a && v[0] == 0));
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
/// would have read far past its mapping. It is refused (its slot size is beyond the bound the
/// geometry check sets, and the length no longer wraps either).
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
    assert!(matches!(e, OpenError::BadGeometry(..) | OpenError::Truncated { .. }), "{e}");
}

/// A table file its writer has not finished — empty, or sized with its magic not yet written
/// (the window in which a gateway started beside control may look) — is `Unfinished`, which a
/// reader tries again, not a foreign file. The next writer makes it anew, also over whatever
/// a writer that died there left.
#[test]
fn an_unfinished_file_waits_for_its_writer_and_the_next_writer_finishes_it() {
    use std::os::unix::fs::OpenOptionsExt as _;
    let t = TempPath::new("unfinished");
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&t.0).unwrap();
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::Unfinished { .. }), "empty: {e}");
    // Sized, its fields half written, its magic (the first word) still zero; junk further on.
    f.set_len(SMALL.file_len()).unwrap();
    {
        use std::os::unix::fs::FileExt as _;
        f.write_all_at(&[0xee; 64], 8).unwrap();
        f.write_all_at(&[0xee; 4096], 8192).unwrap();
    }
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::Unfinished { .. }), "no magic yet: {e}");
    assert!(e.to_string().contains("holds no table yet"), "{e}");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    w.publish(&payload(1, 100)).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    r.refresh();
    assert_eq!(r.payload().map(<[u8]>::to_vec), Some(payload(1, 100)));
}

#[test]
fn bad_files_are_refused_with_their_own_errors() {
    let t = TempPath::new("files");
    // Written 0600, as a table file must be (else the mode is refused first, whatever the umask).
    let write = |bytes: &[u8]| {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::remove_file(&t.0);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&t.0).unwrap();
        f.write_all(bytes).unwrap();
    };
    // Not a table at all.
    write(&vec![0x42u8; CONTROL_BYTES + 4096]);
    let e = Reader::open(&t.0);
    assert!(matches!(e, Err(OpenError::BadMagic { .. })), "{e:?}");
    // Too short to hold a control block.
    write(b"tiny");
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

/// The child process of `a_reader_in_another_process`, not a test of its own (so it is ignored
/// in the suite, where it would pass without doing anything): open the table, wait for the
/// generation given, check its payload, report, and exit without releasing the record (as a
/// crashed gateway would).
#[test]
#[ignore = "the child of a_reader_in_another_process, which runs it"]
fn child_reader() {
    let path = std::env::var("SLUICE_TABLE_CHILD")
        .expect("child_reader runs as a_reader_in_another_process's child, which sets SLUICE_TABLE_CHILD");
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
        .args(["--exact", "child_reader", "--ignored", "--nocapture", "--test-threads=1"])
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

#[test]
fn a_symbolic_link_is_refused_by_both_sides() {
    let t = TempPath::new("real");
    let link = TempPath::new("link");
    drop(Publisher::create(&t.0, SMALL).unwrap());
    std::os::unix::fs::symlink(&t.0, &link.0).unwrap();
    let e = Reader::open(&link.0).unwrap_err();
    assert!(matches!(e, OpenError::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("remove the link and point --table at the real file"), "{e}");
    let e = Publisher::create(&link.0, SMALL).unwrap_err();
    assert!(matches!(e, OpenError::Symlink { .. }), "{e}");
    // A dangling link is not followed to create a file elsewhere either.
    let elsewhere = TempPath::new("elsewhere");
    let dangling = TempPath::new("dangling");
    std::os::unix::fs::symlink(&elsewhere.0, &dangling.0).unwrap();
    assert!(matches!(Publisher::create(&dangling.0, SMALL), Err(OpenError::Symlink { .. })));
    assert!(!elsewhere.0.exists(), "nothing was created through the link");
}

#[test]
fn a_file_others_may_read_or_write_is_refused() {
    let t = TempPath::new("mode");
    drop(Publisher::create(&t.0, SMALL).unwrap());
    // Writing would let them change the table; reading, take the TLS private keys it holds.
    for mode in [0o620, 0o602, 0o666, 0o640, 0o604, 0o644, 0o610] {
        std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Reader::open(&t.0).unwrap_err();
        assert!(matches!(e, OpenError::Mode { mode: m, .. } if m == mode), "{mode:o}: {e}");
        assert!(e.to_string().contains(&format!("chmod go-rwx {}", t.0.display())), "{e}");
        assert!(matches!(Publisher::create(&t.0, SMALL), Err(OpenError::Mode { .. })));
    }
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o600)).unwrap();
    Reader::open(&t.0).unwrap();
    // The owner's own bits are the owner's business.
    std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    Reader::open(&t.0).unwrap();
}

#[test]
fn a_file_of_another_owner_is_refused() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        assert_ne!(std::env::var("SLUICE_REQUIRE_ROOT").as_deref(), Ok("1"), "needs root to chown");
        eprintln!("!!!!!!!! SKIPPED a_file_of_another_owner_is_refused: needs root (chown) !!!!!!!!");
        return;
    }
    let t = TempPath::new("owner");
    drop(Publisher::create(&t.0, SMALL).unwrap());
    std::os::unix::fs::chown(&t.0, Some(65534), None).unwrap();
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::Owner { uid: 65534, euid: 0, .. }), "{e}");
    assert!(e.to_string().contains("run control and the gateway as the same user"), "{e}");
    assert!(matches!(Publisher::create(&t.0, SMALL), Err(OpenError::Owner { .. })));
}

#[test]
fn a_file_that_is_not_regular_is_refused() {
    let t = TempPath::new("fifo");
    let c = std::ffi::CString::new(t.0.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(Reader::open(&t.0), Err(OpenError::NotRegular { .. })));
}

/// Writes a native-endian u64 at `offset` of the file, as another process writing the mapping.
fn poke(path: &std::path::Path, offset: u64, v: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_ne_bytes(), offset).unwrap();
}

/// Reads a native-endian u64 at `offset` of the file.
fn peek(path: &std::path::Path, offset: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset).unwrap();
    u64::from_ne_bytes(b)
}

/// Offsets in the control block (see `protocol::Control`).
const SLOTS_AT: u64 = 12;
const SLOT_BYTES_AT: u64 = 16;
const ACTIVE_AT: u64 = 24;

/// The slot of `path` holding generation `g` (the slot header's generation is at offset 16).
fn slot_of(path: &std::path::Path, g: u64) -> u64 {
    (0..u64::from(SMALL.slots))
        .find(|s| peek(path, CONTROL_BYTES as u64 + s * SMALL.slot_bytes + 16) == g)
        .unwrap()
}

#[test]
fn the_geometry_is_taken_once_and_bounds_every_index() {
    let t = TempPath::new("geometry");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    w.publish(&payload(1, 100)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(1));
    // Someone with write access grows the slot count and size after both sides mapped the file.
    let slots = peek(&t.0, SLOTS_AT);
    poke(&t.0, SLOTS_AT, (slots & !0xffff_ffff) | 8);
    poke(&t.0, SLOT_BYTES_AT, 1 << 40);
    // The writer keeps to the three slots it mapped (a fourth would lie past the file's end),
    // and the reader reads them right.
    for g in 2..12 {
        assert_eq!(w.publish(&payload(g, 3000)), Ok(g));
        assert_eq!(r.refresh(), Refresh::Adopted(g));
        assert_eq!(r.payload().unwrap(), &payload(g, 3000)[..]);
    }
    assert_eq!(std::fs::metadata(&t.0).unwrap().len(), SMALL.file_len());
    // `active` naming slot 7 (within the file's MAX_SLOTS, beyond its mapped geometry) is refused.
    poke(&t.0, ACTIVE_AT, (12 << 8) | 7);
    assert_eq!(r.refresh(), Refresh::Refused(12, Refusal::BadSlot(7)));
    assert_eq!(r.payload().unwrap(), &payload(11, 3000)[..], "the last good generation stays");
    assert_eq!(r.geometry(), SMALL);
    // A file whose geometry no longer matches its length is refused at open.
    assert!(matches!(Reader::open(&t.0), Err(OpenError::BadGeometry(_))));
}

#[test]
fn a_generation_not_newer_than_the_adopted_one_is_refused() {
    let t = TempPath::new("stale");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    w.publish(&payload(1, 100)).unwrap();
    w.publish(&payload(2, 100)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(2));
    w.publish(&payload(3, 100)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(3));
    // `active` rewritten in place to name generation 2 again, in the slot that still holds it
    // intact: valid in itself, but going back in time.
    let slot = slot_of(&t.0, 2);
    poke(&t.0, ACTIVE_AT, (2 << 8) | slot);
    assert_eq!(r.refresh(), Refresh::Refused(2, Refusal::Stale { adopted: 3 }));
    assert_eq!((r.generation(), r.payload().unwrap()), (Some(3), &payload(3, 100)[..]));
    // And generation 3 again (the same one) is not newer either.
    poke(&t.0, ACTIVE_AT, (3 << 8) | slot_of(&t.0, 3));
    assert_eq!(r.refresh(), Refresh::Refused(3, Refusal::Stale { adopted: 3 }));
}

#[test]
fn a_file_truncated_under_its_readers_is_contained_and_noticed() {
    let t = TempPath::new("truncate");
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    let mut quiet = Reader::open(&t.0).unwrap();
    let stats = Reader::open_stats_only(&t.0).unwrap();
    assert!(r.contained() && quiet.contained() && stats.contained());
    w.publish(&payload(1, 5000)).unwrap();
    assert_eq!(r.refresh(), Refresh::Adopted(1));
    assert_eq!(quiet.refresh(), Refresh::Adopted(1));
    // Truncated to nothing by someone else: every page of every mapping is past the end.
    std::fs::OpenOptions::new().write(true).open(&t.0).unwrap().set_len(0).unwrap();
    // Without any check first, each access faults; the fault is contained (this process
    // would die of SIGBUS otherwise) and the mapping reads as nothing published.
    stats.publish_stats(&[1, 2, 3]);
    assert_eq!(quiet.refresh(), Refresh::Unchanged);
    assert_eq!(quiet.payload(), None, "nothing is read from a file that shrank");
    assert_eq!(quiet.check_file(), FileState::Shrunk { len: 0, want: SMALL.file_len() });
    // The other reader notices by its check before touching anything.
    assert!(matches!(r.check_file(), FileState::Shrunk { len: 0, .. }));
    assert_eq!((r.refresh(), r.payload()), (Refresh::Unchanged, None));
    assert_eq!(r.generation(), Some(1), "it still says which generation it had");
    assert!(matches!(w.publish(&payload(2, 100)), Err(PublishError::FileShrunk { len: 0 })));
    // Dropping them all (which writes their records) does not fault either.
    drop((w, r, quiet, stats));
    // A truncation that leaves the control block: seen by fstat, before any fault.
    let mut w = Publisher::create(&t.0, SMALL).unwrap();
    w.publish(&payload(1, 100)).unwrap();
    let mut r = Reader::open(&t.0).unwrap();
    std::fs::OpenOptions::new().write(true).open(&t.0).unwrap().set_len(CONTROL_BYTES as u64).unwrap();
    assert!(matches!(r.check_file(), FileState::Shrunk { len, .. } if len == CONTROL_BYTES as u64));
    assert_eq!(r.payload(), None);
    let e = Reader::open(&t.0).unwrap_err();
    assert!(matches!(e, OpenError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("remove it, and control creates it anew"), "{e}");
}

#[test]
fn a_file_replaced_under_its_reader_is_noticed_and_the_new_one_opens_afresh() {
    let t = TempPath::new("replace");
    let mut old = Publisher::create(&t.0, SMALL).unwrap();
    for g in 1..=5 {
        old.publish(&payload(g, 100)).unwrap();
    }
    let mut r = Reader::open(&t.0).unwrap();
    assert_eq!((r.generation(), r.check_file()), (Some(5), FileState::Intact));
    std::fs::remove_file(&t.0).unwrap();
    assert_eq!(r.check_file(), FileState::Missing);
    let mut new = Publisher::create(&t.0, SMALL).unwrap();
    assert_eq!(new.publish(&payload(1, 200)), Ok(1), "a new file counts from 1");
    assert_eq!(r.check_file(), FileState::Replaced);
    // The old mapping stays valid: the reader keeps what it had until it is replaced.
    assert_eq!(r.payload().unwrap(), &payload(5, 100)[..]);
    assert_eq!(r.refresh(), Refresh::Unchanged, "the old file says nothing new");
    // The new file is a new reader: its lower generation is adopted (the gateway logs why).
    let fresh = Reader::open(&t.0).unwrap();
    assert_ne!(fresh.file_id(), r.file_id());
    assert_eq!((fresh.generation(), fresh.payload().unwrap()), (Some(1), &payload(1, 200)[..]));
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
