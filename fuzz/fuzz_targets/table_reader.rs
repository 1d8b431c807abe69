//! The table reader (`sluice_table::Reader`) over a hostile file: what it maps, validates and
//! adopts, then the image decoder on the payload it hands out, as the gateway's main thread does.
//! See `sluice_fuzz::table_file` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("table_reader"), |data: &[u8]| {
    sluice_fuzz::table_file::run(data);
});
