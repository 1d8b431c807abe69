//! Control's manifest loader (`sluice_control::load::load_str`) on arbitrary text: problems are
//! reported, never a panic; and what loads compiles to a table that, if it builds, the gateway's
//! image decoder accepts as it was built.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_control::compile;
use sluice_control::load::{self, Loaded};
use sluice_model::image;
use sluice_model::service::{Generation, ServiceTable};

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("manifests"), |data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loaded = Loaded::default();
    load::load_str(Path::new("fuzz.yaml"), &text, &mut loaded);
    for e in &loaded.errors {
        assert!(e.line >= 1, "errors are located on a line: {e}");
    }
    let compiled = compile::compile(&loaded.store, &sluice_fuzz::seeds::compile_config(), Generation(1));
    if let Ok(t) = ServiceTable::build(&compiled.spec) {
        let bytes = image::encode(&t);
        let back = image::decode(&bytes).unwrap_or_else(|e| panic!("control built a table the gateway refuses: {e}"));
        assert_eq!(back.services(), t.services());
    }
});
