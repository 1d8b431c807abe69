//! Compiles the XDP programs the sandbox attaches: XDP_PASS for the gateway's peers
//! (`bpf/pass.c`), XDP_DROP for generators (`bpf/drop.c`).
fn main() {
    sluice_bpf_build::compile("pass");
    sluice_bpf_build::compile("drop");
}
