//! Sluice's interface to the kernel's fast path: AF_XDP sockets (UMEM and the four rings, our
//! own code — `docs/af-xdp.md` says why), the XDP program that steers service traffic to
//! them and leaves the rest to the kernel, and the small kernel interfaces the gateway needs off
//! the hot path (routes and neighbours over netlink, interface facts, a raw sender).
//!
//! With `sluice-sys` and `sluice-table`, this crate is one of the only homes of `unsafe` in the
//! workspace; every block states why it is sound.
//!
//! - [`socket`]: [`XskSocket`], a [`sluice_port::Port`] over an AF_XDP socket.
//! - [`steer`]: [`Steering`], the XDP program (attached through netlink so that it outlives a
//!   restart, or through a bpf_link for tests and tools) and its maps.
//! - [`fastpath`]: the layout of the fast path's map (established flows the program forwards).
//! - [`netlink`]: routes, neighbours, and asking the kernel to resolve one.
//! - [`link`]: MAC address, queue count, raw frame sender.
//! - [`macswap`]: the MAC-swap `XDP_TX` loop, the ceiling `benches/run l4` measures.
//!
//! Hot path: [`XskSocket`]'s `Port` methods (no allocation, no lock; a system call only to wake
//! the kernel when a ring asks for it).

mod ring;

pub mod fastpath;
pub mod link;
pub mod macswap;
pub mod netlink;
pub mod socket;
pub mod steer;

pub use socket::{BindMode, Config, Mode, XskSocket};
pub use steer::{AttachMode, FastPath, Kind, STEER_HOST, SteerKey, SteerValue, Steering};
