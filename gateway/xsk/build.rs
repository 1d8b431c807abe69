//! Compiles the gateway's XDP steering program (`bpf/steer.c`), which `steer.rs` embeds: as is,
//! and with the fast path for established flows compiled in (`steer_fast.o`); and the MAC-swap
//! `XDP_TX` loop (`bpf/macswap.c`, `macswap.rs`), the ceiling `benches/run l4` measures.
fn main() {
    sluice_bpf_build::compile("steer");
    sluice_bpf_build::compile_variant("steer", "steer_fast", &["SLUICE_FAST_PATH"]);
    sluice_bpf_build::compile("macswap");
}
