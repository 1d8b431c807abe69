//! For build scripts: compiles an XDP program written in C with Debian's clang into `$OUT_DIR`,
//! where the crate embeds it (`include_bytes!(concat!(env!("OUT_DIR"), "/NAME.o"))`). Used by
//! `sluice-xsk` (the gateway's steering program) and `sluice-pktgen` (the generator's programs).
//!
//! Needs `clang` and `linux-libc-dev` (the kernel's UAPI headers); no libbpf. The multiarch
//! include directory is passed explicitly: without it clang finds `<asm/types.h>` only by
//! accident. `SLUICE_CLANG` names another clang.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

/// Compiles `bpf/NAME.c` of the calling crate into `$OUT_DIR/NAME.o`; panics with the command
/// that installs what is missing (a build script's way to fail).
pub fn compile(name: &str) {
    compile_variant(name, name, &[]);
}

/// Compiles `bpf/NAME.c` with the preprocessor symbols `defines` (each `SYMBOL` or
/// `SYMBOL=VALUE`) into `$OUT_DIR/OUTPUT.o`: one source, several programs (a feature compiled in
/// or left out entirely).
pub fn compile_variant(name: &str, output: &str, defines: &[&str]) {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let krate = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let src = format!("bpf/{name}.c");
    // The directory, so that headers beside the program count too.
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=SLUICE_CLANG");
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") | Err(_) => "x86_64",
        Ok("aarch64") => "aarch64",
        Ok(other) => panic!("{krate}: no multiarch include path known for {other}"),
    };
    let clang = std::env::var("SLUICE_CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .args(defines.iter().map(|d| format!("-D{d}")))
        .args(["-c", &src, "-o"])
        .arg(out.join(format!("{output}.o")))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{krate}: {clang} failed to compile {src} ({s})"),
        Err(e) => panic!(
            "{krate}: cannot run {clang} ({e}): XDP programs are built with clang — \
             `apt-get install clang linux-libc-dev`"
        ),
    }
}
