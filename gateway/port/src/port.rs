//! How a worker exchanges frames with the outside: batches of descriptors into a frame buffer,
//! the shape of an AF_XDP UMEM and its rings (and of DPDK's mbuf bursts).
//!
//! Ownership: a descriptor returned by [`Port::recv`] belongs to the worker until it gives it
//! back through exactly one of [`Port::send`], [`Port::to_kernel`] or [`Port::release`].
//! `send` and `to_kernel` may take fewer than offered (a full ring); the worker then releases the
//! rest and counts them as drops.

/// A frame in the port's buffer: where it starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// Offset of the frame in the port's buffer (an AF_XDP UMEM address).
    pub addr: u64,
    /// Frame length in bytes.
    pub len: u32,
}

/// A source and sink of frames. See the module documentation.
pub trait Port {
    /// Receives up to `out.len()` frames into `out`; returns how many.
    fn recv(&mut self, out: &mut [Desc]) -> usize;

    /// The bytes of a frame this worker holds (exactly `desc.len` bytes).
    fn frame(&mut self, desc: &Desc) -> &mut [u8];

    /// The bytes of a frame this worker holds and the room after it in its buffer: the frame
    /// is the first `desc.len` bytes; a frame rewritten longer (up to the slice's length) is
    /// sent with its `len` changed. By default no room.
    fn frame_room(&mut self, desc: &Desc) -> &mut [u8] {
        self.frame(desc)
    }

    /// Queues frames for transmission; returns how many were taken, from the front.
    fn send(&mut self, frames: &[Desc]) -> usize;

    /// Hands frames to the kernel's network stack; returns how many were taken, from the front.
    fn to_kernel(&mut self, frames: &[Desc]) -> usize;

    /// Gives frames back for reuse.
    fn release(&mut self, frames: &[Desc]);

    /// Takes up to `out.len()` free frames to fill and send (a frame copied in from another
    /// port or worker); their lengths are the whole frame. Returns how many. A port without
    /// spare frames returns 0 (the default).
    fn alloc(&mut self, out: &mut [Desc]) -> usize {
        let _ = out;
        0
    }

    /// How many frames the transmit side can take now, checked against `want` (it may say
    /// more). A worker receives no more than its ports can send: a frame it cannot send would
    /// be processed for nothing and dropped, while one left in the receive ring costs nothing
    /// (and if the ring overflows, the kernel drops and counts it). A port may use the call to
    /// push out what it already holds. Unbounded by default.
    fn tx_room(&mut self, want: usize) -> usize {
        want
    }
}
