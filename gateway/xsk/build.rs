//! Compiles the XDP programs (`bpf/steer.c`: the gateway's steering; `bpf/gen.c`: the packet
//! generator's kernel fast path and sink) with Debian's clang into `$OUT_DIR`, where `steer.rs`
//! and `gen.rs` embed them. Needs `clang` and `linux-libc-dev` (kernel UAPI headers); no libbpf.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in ["steer", "gen"] {
        compile(&out, name);
    }
}

fn compile(out: &std::path::Path, name: &str) {
    let src = format!("bpf/{name}.c");
    println!("cargo:rerun-if-changed={src}");
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64",
        Ok("aarch64") => "aarch64",
        Ok(other) => panic!("sluice-xsk: no multiarch include path known for {other}"),
        Err(_) => "x86_64",
    };
    let clang = std::env::var("SLUICE_CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .args(["-c", &src, "-o"])
        .arg(out.join(format!("{name}.o")))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("sluice-xsk: {clang} failed to compile {src} ({s})"),
        Err(e) => panic!(
            "sluice-xsk: cannot run {clang} ({e}): the XDP program is built with clang — \
             `apt-get install clang linux-libc-dev`"
        ),
    }
}
