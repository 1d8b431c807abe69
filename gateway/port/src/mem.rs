//! An in-memory [`Port`]: one preallocated buffer of fixed-size frames with a free list and
//! bounded queues for receive, transmit and the kernel path — a UMEM and its rings without a NIC.
//! Tests and benchmarks inject frames and read back what the worker transmitted.
//!
//! After [`MemPort::new`] no operation allocates (the queues are preallocated to the frame
//! count), so the zero-allocation test can run through it.

use std::collections::VecDeque;

use crate::port::{Desc, Port};

/// An in-memory port. See the module documentation.
#[derive(Debug)]
pub struct MemPort {
    buf: Vec<u8>,
    frame_size: usize,
    free: Vec<u64>,
    rx: VecDeque<Desc>,
    tx: VecDeque<Desc>,
    kernel: VecDeque<Desc>,
    tx_capacity: usize,
}

impl MemPort {
    /// A port of `frames` buffers of `frame_size` bytes each.
    pub fn new(frames: usize, frame_size: usize) -> MemPort {
        MemPort {
            buf: vec![0; frames * frame_size],
            frame_size,
            free: (0..frames as u64).rev().map(|i| i * frame_size as u64).collect(),
            rx: VecDeque::with_capacity(frames),
            tx: VecDeque::with_capacity(frames),
            kernel: VecDeque::with_capacity(frames),
            tx_capacity: frames,
        }
    }

    /// Limits how many frames the transmit queue holds (to test a full ring).
    pub fn set_tx_capacity(&mut self, n: usize) {
        self.tx_capacity = n;
    }

    /// Copies a frame in and queues it for receive. Returns false if no buffer is free or the
    /// frame does not fit one.
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.frame_size {
            return false;
        }
        let Some(addr) = self.free.pop() else { return false };
        let a = addr as usize;
        self.buf[a..a + frame.len()].copy_from_slice(frame);
        self.rx.push_back(Desc { addr, len: frame.len() as u32 });
        true
    }

    /// Frames waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    /// Frames transmitted and not yet collected.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Collects one transmitted frame (as a new vector: test side only).
    pub fn take_tx(&mut self) -> Option<Vec<u8>> {
        let d = self.tx.pop_front()?;
        let v = self.bytes(&d).to_vec();
        self.free.push(d.addr);
        Some(v)
    }

    /// Collects one frame handed to the kernel (as a new vector: test side only).
    pub fn take_kernel(&mut self) -> Option<Vec<u8>> {
        let d = self.kernel.pop_front()?;
        let v = self.bytes(&d).to_vec();
        self.free.push(d.addr);
        Some(v)
    }

    /// Hands every transmitted frame to `f` and recycles it, without allocating.
    pub fn drain_tx(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(d) = self.tx.pop_front() {
            f(self.bytes(&d));
            self.free.push(d.addr);
            n += 1;
        }
        n
    }

    /// Recycles every frame handed to the kernel, without allocating.
    pub fn drain_kernel(&mut self) -> usize {
        let n = self.kernel.len();
        while let Some(d) = self.kernel.pop_front() {
            self.free.push(d.addr);
        }
        n
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    fn bytes(&self, d: &Desc) -> &[u8] {
        let a = d.addr as usize;
        &self.buf[a..a + d.len as usize]
    }
}

impl Port for MemPort {
    fn recv(&mut self, out: &mut [Desc]) -> usize {
        let n = out.len().min(self.rx.len());
        for (slot, d) in out.iter_mut().zip(self.rx.drain(..n)) {
            *slot = d;
        }
        n
    }

    fn frame(&mut self, d: &Desc) -> &mut [u8] {
        let a = d.addr as usize;
        &mut self.buf[a..a + d.len as usize]
    }

    fn frame_room(&mut self, d: &Desc) -> &mut [u8] {
        let a = d.addr as usize;
        let end = (a / self.frame_size + 1) * self.frame_size;
        &mut self.buf[a..end.max(a + d.len as usize)]
    }

    fn send(&mut self, frames: &[Desc]) -> usize {
        let n = frames.len().min(self.tx_capacity.saturating_sub(self.tx.len()));
        self.tx.extend(&frames[..n]);
        n
    }

    fn to_kernel(&mut self, frames: &[Desc]) -> usize {
        self.kernel.extend(frames);
        frames.len()
    }

    fn release(&mut self, frames: &[Desc]) {
        self.free.extend(frames.iter().map(|d| d.addr));
    }

    fn tx_room(&mut self, want: usize) -> usize {
        want.min(self.tx_capacity.saturating_sub(self.tx.len()))
    }

    fn alloc(&mut self, out: &mut [Desc]) -> usize {
        let n = out.len().min(self.free.len());
        for o in &mut out[..n] {
            let addr = self.free.pop().unwrap_or_default();
            *o = Desc { addr, len: self.frame_size as u32 };
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cycle_through_without_loss() {
        let mut p = MemPort::new(4, 128);
        assert!(p.inject(&[1; 60]));
        assert!(p.inject(&[2; 64]));
        assert!(!p.inject(&[0; 129]), "larger than a frame");
        let mut d = [Desc::default(); 8];
        assert_eq!(p.recv(&mut d), 2);
        assert_eq!(p.frame(&d[1])[0], 2);
        p.frame(&d[0])[0] = 9;
        assert_eq!(p.send(&d[..1]), 1);
        p.release(&d[1..2]);
        assert_eq!(p.take_tx().unwrap()[0], 9);
        assert_eq!(p.free_frames(), 4);
        p.set_tx_capacity(0);
        assert_eq!(p.tx_room(64), 0);
        assert!(p.inject(&[3; 60]));
        assert_eq!(p.recv(&mut d), 1);
        assert_eq!(p.send(&d[..1]), 0, "a full ring takes nothing");
    }
}
