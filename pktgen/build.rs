//! Compiles the generator's XDP programs (`bpf/gen.c`: the live-frames fast path, the sink and
//! the receive side), which `livegen.rs` embeds.
fn main() {
    sluice_bpf_build::compile("gen");
}
