//! The `table_reader` target's world: a table file as control writes it (3 slots of 8 KiB, two
//! generations of a small table published), which the fuzzer's bytes damage — before the reader
//! maps it, and while it holds it, as a hostile or broken writer would — between the reader's
//! opens, refreshes and reads. Each payload the reader adopts goes through the image decoder.
//!
//! ## Input format
//!
//! `[mode: u8]`, then:
//! - `mode % 4 == 0`: the rest is the whole file (short files, foreign files);
//! - otherwise the file starts as control wrote it, cut by `(mode >> 2) % 8` × 4 KiB, and the rest
//!   is steps, by `kind % 4`:
//!   - 0 `[at: u16 LE][len: u8][len bytes]`: writes the bytes into the file at `at % 16 KiB` of
//!     the control block (`at >> 14 == 0`) or of slot `(at >> 14) - 1`;
//!   - 1 refresh (opening first if no reader is open), then read and decode the payload;
//!   - 2 drop the reader and open the file again;
//!   - 3 publish-like: a slot header made consistent with the bytes now in slot `b[0] % 3` and
//!     the `active` word pointing at it (so that damage to payloads reaches the decoder).
//!
//! No step changes the file's length while it is mapped: that is a SIGBUS by design of `mmap`,
//! not a parsing question.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use sluice_model::Addr;
use sluice_model::image;
use sluice_model::service::{
    BackendSpec, Conditions, Frontend, Generation, MaglevSize, NatMode, Protocol, Scheduler, ServiceKey,
    ServiceSpec, ServiceTable, TableSpec,
};
use sluice_table::protocol::{ABI_VERSION, SLOT_HEADER_BYTES, SLOT_MAGIC, checksum};
use sluice_table::shm::CONTROL_BYTES;
use sluice_table::{Geometry, Publisher, Reader};

/// Slots of the base file, and their size.
pub const SLOTS: u32 = 3;
pub const SLOT_BYTES: u64 = 8192;
/// Offset of the `active` word in the control block (`protocol::Control`).
const ACTIVE_AT: usize = 24;

/// A small table's image: what control publishes into the base file.
pub fn small_image(generation: u64) -> Vec<u8> {
    let v4 = Addr::from_v4;
    let spec = TableSpec {
        generation: Generation(generation),
        node_addrs: vec![v4([198, 18, 0, 1])],
        maglev_size: MaglevSize::Fixed(13),
        l7: Default::default(),
        services: vec![
            ServiceSpec {
                name: "default/web:80".into(),
                frontends: vec![ServiceKey {
                    frontend: Frontend::Address(v4([198, 19, 0, 10])),
                    port: 80,
                    protocol: Protocol::Tcp,
                }],
                backends: (1..=2)
                    .map(|i| BackendSpec {
                        addr: v4([198, 18, 1, i]),
                        port: 8080,
                        weight: 1,
                        conditions: Conditions::READY,
                    })
                    .collect(),
                scheduler: Scheduler::Maglev,
                affinity: None,
                nat: NatMode::FullNat,
                snat: vec![v4([198, 18, 0, 1])],
            },
            ServiceSpec {
                name: "default/dns:53".into(),
                frontends: vec![ServiceKey {
                    frontend: Frontend::Address(v4([198, 19, 0, 10])),
                    port: 53,
                    protocol: Protocol::Udp,
                }],
                backends: vec![BackendSpec {
                    addr: v4([198, 18, 1, 1]),
                    port: 5353,
                    weight: 1,
                    conditions: Conditions::READY,
                }],
                scheduler: Scheduler::RoundRobin,
                affinity: None,
                nat: NatMode::Dnat,
                snat: vec![],
            },
        ],
    };
    image::encode(&ServiceTable::build(&spec).unwrap_or_else(|e| panic!("the small table builds: {e}")))
}

struct World {
    /// The base file's bytes.
    base: Vec<u8>,
    /// Where each input's file is written.
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // tmpfs when there is one: the file is rewritten for every input. The name carries the
        // process id: libFuzzer ends a run by exiting, which drops nothing, so fuzz/run removes
        // the directories of processes that are gone.
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-fuzz-table-{}-", std::process::id()))
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let made = dir.path().join("base");
        let mut p = Publisher::create(&made, Geometry { slots: SLOTS, slot_bytes: SLOT_BYTES })
            .unwrap_or_else(|e| panic!("{e}"));
        for g in 1..=2 {
            p.publish(&small_image(g)).unwrap_or_else(|e| panic!("publish: {e}"));
        }
        drop(p);
        let base = std::fs::read(&made).unwrap_or_else(|e| panic!("{}: {e}", made.display()));
        World { base, path: dir.path().join("table"), _dir: dir }
    })
}

/// The bytes control writes for one generation (for seeds): the base file.
pub fn base_file() -> &'static [u8] {
    &world().base
}

fn write_at(path: &PathBuf, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap_or_else(|e| panic!("{e}"));
    f.seek(SeekFrom::Start(at)).and_then(|_| f.write_all(bytes)).unwrap_or_else(|e| panic!("{e}"));
}

/// Where `at` (a step's 16-bit position) falls in the file.
fn place(at: u16) -> u64 {
    let area = u64::from(at >> 14);
    let off = u64::from(at & 0x3fff);
    if area == 0 { off } else { CONTROL_BYTES as u64 + (area - 1) * SLOT_BYTES + off % SLOT_BYTES }
}

fn read_and_decode(r: &Reader) {
    if let Some(p) = r.payload() {
        // The reader checked the payload against its checksum; the image is still untrusted.
        let _ = image::decode(p);
        assert!(r.generation().is_some(), "a payload without a generation");
    }
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let w = world();
    let Some((&mode, mut rest)) = data.split_first() else { return };
    if mode % 4 == 0 {
        std::fs::write(&w.path, rest).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(mut r) = Reader::open(&w.path) {
            r.refresh();
            read_and_decode(&r);
        }
        return;
    }
    let cut = usize::from((mode >> 2) % 8) * 4096;
    std::fs::write(&w.path, &w.base[..w.base.len() - cut]).unwrap_or_else(|e| panic!("{e}"));
    let mut reader: Option<Reader> = None;
    while let Some((&kind, tail)) = rest.split_first() {
        rest = tail;
        match kind % 4 {
            0 => {
                let [a, b, n, more @ ..] = rest else { return };
                let n = usize::from(*n).min(more.len());
                let at = place(u16::from_le_bytes([*a, *b]));
                // Within the file as it is: writing beyond would grow it.
                let end = (w.base.len() - cut) as u64;
                let n = n.min(end.saturating_sub(at) as usize);
                write_at(&w.path, at, &more[..n]);
                rest = &more[n..];
            }
            1 => {
                if reader.is_none() {
                    reader = Reader::open(&w.path).ok();
                }
                if let Some(r) = reader.as_mut() {
                    r.refresh();
                    read_and_decode(r);
                }
            }
            2 => {
                drop(reader.take());
                reader = Reader::open(&w.path).ok();
            }
            _ => {
                let Some((&slot, tail)) = rest.split_first() else { return };
                rest = tail;
                publish_like(w, u64::from(slot % SLOTS as u8), (w.base.len() - cut) as u64);
            }
        }
    }
    if let Some(r) = reader.as_mut() {
        r.refresh();
        read_and_decode(r);
    }
}

/// Makes slot `slot`'s header consistent with the payload bytes in it now (its length kept,
/// bounded by the slot) and points `active` at it with the next generation.
fn publish_like(w: &World, slot: u64, file_len: u64) {
    let start = CONTROL_BYTES as u64 + slot * SLOT_BYTES;
    if start + SLOT_BYTES > file_len {
        return;
    }
    let bytes = std::fs::read(&w.path).unwrap_or_else(|e| panic!("{e}"));
    let s = &bytes[start as usize..(start + SLOT_BYTES) as usize];
    let len = u64::from_le_bytes(s[24..32].try_into().unwrap_or_default())
        .min(SLOT_BYTES - SLOT_HEADER_BYTES as u64);
    let active = u64::from_le_bytes(bytes[ACTIVE_AT..ACTIVE_AT + 8].try_into().unwrap_or_default());
    let generation = (active >> 8) + 1;
    let payload = &s[SLOT_HEADER_BYTES..SLOT_HEADER_BYTES + len as usize];
    let mut h = Vec::with_capacity(SLOT_HEADER_BYTES);
    h.extend_from_slice(&SLOT_MAGIC.to_le_bytes());
    h.extend_from_slice(&ABI_VERSION.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&generation.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&checksum(payload).to_le_bytes());
    h.resize(SLOT_HEADER_BYTES, 0);
    write_at(&w.path, start, &h);
    write_at(&w.path, ACTIVE_AT as u64, &((generation << 8) | slot).to_le_bytes());
}
