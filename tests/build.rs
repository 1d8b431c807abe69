//! Compiles the XDP_PASS program the sandbox attaches to the gateway's peers (`bpf/pass.c`).
fn main() {
    sluice_bpf_build::compile("pass");
}
