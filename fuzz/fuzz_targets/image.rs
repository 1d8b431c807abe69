//! `sluice_model::image::decode` of arbitrary bytes: a refusal or a table, never a panic; a table
//! decoded encodes to an image that decodes to the same table; and decoding never holds more than
//! `FACTOR` × the image's size (+ `SLACK`) — see `sluice_fuzz::seeds::image_bound`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::alloc::{self, Counting};
use sluice_model::image;

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("image"), |data: &[u8]| {
    alloc::reset_peak();
    let before = alloc::live();
    let decoded = image::decode(data);
    let held = alloc::peak().saturating_sub(before);
    sluice_fuzz::seeds::image_bound(data.len(), held);
    if let Ok(t) = decoded {
        let bytes = image::encode(&t);
        let back = image::decode(&bytes).unwrap_or_else(|e| panic!("a decoded table re-encodes to an image refused: {e}"));
        assert_eq!(image::encode(&back), bytes, "decode ∘ encode is the identity on encoded images");
        assert_eq!(back.services(), t.services());
        assert_eq!(back.backends(), t.backends());
    }
});
