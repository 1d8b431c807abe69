//! Compiles the gateway's XDP steering program (`bpf/steer.c`), which `steer.rs` embeds.
fn main() {
    sluice_bpf_build::compile("steer");
}
