//! Sluice's run-to-completion worker: receive a batch, run each frame through parse → classify →
//! L4 → verdict, transmit the batch. One worker per pinned core; it owns its ports (AF_XDP
//! sockets in production, `sluice_port::MemPort` in tests and benchmarks), its L4 engine (flows,
//! schedulers, affinity) and its counters, and shares nothing writable with other workers.
//!
//! - [`nexthop`]: the next-hop neighbour cache: destination → MAC and port, from routes and
//!   neighbours (filled off the hot path).
//! - [`worker`]: the batch loop and counters, over one port or two (two-armed).
//! - [`fastpath`]: the XDP fast path's entries: which flows the kernel may forward, and how.
//! - [`handoff`]: which worker owns a frame, and the lock-free mailboxes that carry frames to it.
//! - [`reactor`]: the per-core reactor, the one place a worker thread waits (its sockets, its
//!   doorbell, and the L7 stage's sockets), and when a busy worker may sleep.
//!
//! Hot path: yes. After [`worker::Worker::new`], a poll performs no allocation, takes no lock and
//! makes no system call of its own (the port may, to wake its rings).
#![forbid(unsafe_code)]

pub mod fastpath;
pub mod handoff;
pub mod nexthop;
pub mod reactor;
pub mod worker;

pub use worker::{BATCH, Worker, WorkerConfig};
