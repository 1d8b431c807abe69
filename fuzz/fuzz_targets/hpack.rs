//! The HPACK decoder on its own (`sluice_l7::h2::hpack`): header blocks, one after another on
//! one decoder (its dynamic table carried over, as on a connection), each cut from the input
//! by a length byte. The `h2` target reaches HPACK through frames; here every byte is a block.
//!
//! What must hold: no panic; the table within the size advertised; a list within its limit or
//! marked oversize; and a round trip — every list decoded is encoded again by Sluice's encoder
//! (its own table carried over too) and decoded by a second decoder to the same fields (names
//! lowercased; a field sent never-indexed stays never-indexed, RFC 7541 §7.1.3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_l7::h2::hpack::{Decoder, Encoder, Field, HeaderList};

/// The table size advertised, and the list limit (the gateway's defaults).
const TABLE: usize = 4096;
const LIST: usize = 32 * 1024;

type Owned = Vec<(Vec<u8>, Vec<u8>, bool)>;

fn owned(list: &HeaderList) -> Owned {
    list.iter().map(|f| (f.name.to_vec(), f.value.to_vec(), f.never_index)).collect()
}

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("hpack"), |data: &[u8]| {
    let mut decoder = Decoder::new(TABLE);
    let (mut encoder, mut again) = (Encoder::new(TABLE), Decoder::new(TABLE));
    let (mut list, mut list2) = (HeaderList::new(LIST), HeaderList::new(LIST));
    let mut rest = data;
    let mut block_out = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (block, next) = tail.split_at(n);
        rest = next;
        if decoder.decode(block, &mut list).is_err() {
            // The connection ends (COMPRESSION_ERROR): the decoder is not used again.
            return;
        }
        assert!(decoder.table_size() <= TABLE);
        if list.is_oversize() {
            assert!(list.size() > LIST);
            continue;
        }
        assert!(list.size() <= LIST);
        let first = owned(&list);
        block_out.clear();
        encoder.encode(list.iter().map(|f| Field { name: f.name, value: f.value, never_index: f.never_index }), &mut block_out);
        again.decode(&block_out, &mut list2).expect("Sluice's own encoding decodes");
        let second = owned(&list2);
        assert_eq!(first.len(), second.len());
        for ((n1, v1, never1), (n2, v2, never2)) in first.iter().zip(&second) {
            assert_eq!(&n1.to_ascii_lowercase(), n2);
            assert_eq!(v1, v2);
            assert!(!never1 || *never2, "a never-indexed field lost its flag");
        }
    }
});
