//! Compiles the XDP programs the sandbox attaches: XDP_PASS for the gateway's peers
//! (`bpf/pass.c`), XDP_DROP for generators (`bpf/drop.c`), and the flood benchmark's sink for
//! replies to forged sources (`bpf/sink.c`).
fn main() {
    sluice_bpf_build::compile("pass");
    sluice_bpf_build::compile("drop");
    sluice_bpf_build::compile("sink");
}
