//! Sequences of frames, batches, time, table swaps and neighbour changes through a warm worker
//! (see `sluice_fuzz::frames`): nothing panics, every frame is accounted for, the flow table stays
//! within its capacity, well-formed frames leave with correct checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::frames::Harness;

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("frames"), |data: &[u8]| {
    Harness::warm().run_ops(data);
});
