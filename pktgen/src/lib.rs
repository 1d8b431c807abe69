//! `sluice-pktgen`: the packet generator every Sluice benchmark uses, and the tool operators use
//! to reproduce its numbers.
//!
//! - [`frame`]: traffic — templates built once per frame size (UDP or TCP SYN, IPv4 or IPv6);
//!   per packet only the fields that vary (source address and port within the flow ranges, the
//!   sequence number and transmit time in the payload) are written, and the checksums updated
//!   incrementally (RFC 1624).
//! - [`measure`]: the receive side — loss, reordering, duplicates and latency (`hdrhistogram`).
//! - [`report`]: the live line, the summary table, `--json`, the SVG plot.
//! - [`livegen`]: the kernel fast path (`BPF_PROG_RUN` live frames, `bpf/gen.c`), the counting
//!   sink and the receive side's XDP program.
#![forbid(unsafe_code)]

pub mod frame;
pub mod livegen;
pub mod measure;
pub mod report;
