//! Handing frames between workers, so that every packet of a flow is handled by the worker that
//! holds its state.
//!
//! A NIC's RSS spreads frames over queues by a hash of their addresses and ports, and each queue
//! has its own worker with its own flow table. The two directions of a NATed flow do not hash
//! alike (the reply has other addresses), so a reply can land on another worker's queue. Sluice
//! does not depend on the NIC's hash: the owner of every frame is a function of the frame alone,
//! computed the same way by every worker ([`Sharding::owner`]):
//!
//! - a frame to a frontend (a client's packet): by a hash of the **client's address** — the
//!   address alone, not the port, so that a client's connections share one worker and
//!   `sessionAffinity: ClientIP` holds across them;
//! - a FullNAT reply (to a source port of the SNAT range): the worker whose share of the range
//!   holds the port — the worker that picked it;
//! - any other TCP/UDP frame (a DNAT reply, which goes back to the client's address): by the same
//!   hash of its destination address;
//! - everything else (ARP, ICMP echo, neighbour discovery): whoever received it.
//!
//! A frame another worker owns is copied into a [`Parcel`] taken from the owner's free list and
//! pushed onto the owner's inbox — two lock-free `crossbeam` `ArrayQueue`s per worker, with every
//! parcel allocated up front, so the hot path neither locks nor allocates. The owner copies it
//! into a frame of its own port and runs it through the pipeline like a frame it received. When
//! the owner's parcels are all in flight, the frame is dropped and counted (`handoff_full`).
//!
//! An idle owner sleeps in `poll`; each mailbox has a doorbell (a datagram socket pair) in its
//! poll set, which a sender rings only when the owner has said it is going to sleep — under load
//! the hand-over makes no system call.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_queue::ArrayQueue;
use sluice_model::Addr;
use sluice_model::ports::PortRange;

/// The largest frame a parcel carries (an AF_XDP frame is at most 4096 bytes).
pub const PARCEL_BYTES: usize = 4096;

/// One frame in flight between workers.
#[derive(Debug)]
pub struct Parcel {
    /// Which of the owner's ports it arrived on (the interface; the queue does not matter).
    pub port: u8,
    /// Bytes used of `data`.
    pub len: u16,
    /// The frame.
    pub data: Box<[u8; PARCEL_BYTES]>,
}

/// One worker's inbox and the free parcels others fill for it.
#[derive(Debug)]
struct Mailbox {
    inbox: ArrayQueue<Parcel>,
    free: ArrayQueue<Parcel>,
    sleeping: AtomicBool,
    /// (the owner's end, in its poll set; the senders' end).
    bell: Option<(UnixDatagram, UnixDatagram)>,
}

/// Every worker's mailbox: shared by all workers of a gateway.
#[derive(Debug)]
pub struct Mailboxes {
    boxes: Box<[Mailbox]>,
}

impl Mailboxes {
    /// Mailboxes for `workers` workers, each with `parcels` parcels (allocated now).
    pub fn new(workers: usize, parcels: usize) -> Arc<Mailboxes> {
        let parcels = parcels.max(1);
        let boxes = (0..workers)
            .map(|_| {
                let free = ArrayQueue::new(parcels);
                for _ in 0..parcels {
                    let _ = free.push(Parcel { port: 0, len: 0, data: Box::new([0; PARCEL_BYTES]) });
                }
                let bell = UnixDatagram::pair()
                    .ok()
                    .filter(|(a, b)| a.set_nonblocking(true).is_ok() && b.set_nonblocking(true).is_ok());
                Mailbox { inbox: ArrayQueue::new(parcels), free, sleeping: AtomicBool::new(false), bell }
            })
            .collect();
        Arc::new(Mailboxes { boxes })
    }

    /// How many workers.
    pub fn workers(&self) -> usize {
        self.boxes.len()
    }

    /// Copies `frame`, which arrived on port `port`, to worker `to`. Returns false (nothing
    /// sent) when the frame is too large or `to` has no free parcel.
    pub fn send(&self, to: usize, port: u8, frame: &[u8]) -> bool {
        let Some(b) = self.boxes.get(to) else { return false };
        if frame.len() > PARCEL_BYTES {
            return false;
        }
        let Some(mut p) = b.free.pop() else { return false };
        p.port = port;
        p.len = frame.len() as u16;
        p.data[..frame.len()].copy_from_slice(frame);
        // The inbox holds as many parcels as exist: it cannot be full.
        b.inbox.push(p).map_err(|p| b.free.push(p)).is_ok()
    }

    /// The next parcel for worker `me`; give it back with [`Self::recycle`].
    pub fn receive(&self, me: usize) -> Option<Parcel> {
        self.boxes.get(me)?.inbox.pop()
    }

    /// Wakes worker `to` if it sleeps (after sending it parcels).
    pub fn ring(&self, to: usize) {
        if let Some(b) = self.boxes.get(to)
            && b.sleeping.load(Ordering::Acquire)
            && let Some((_, tx)) = &b.bell
        {
            let _ = tx.send(&[1]);
        }
    }

    /// The doorbell worker `me` sleeps on, with its ports.
    pub fn doorbell(&self, me: usize) -> Option<BorrowedFd<'_>> {
        self.boxes.get(me)?.bell.as_ref().map(|(rx, _)| rx.as_fd())
    }

    /// Worker `me` is about to sleep: returns false (and stays awake) when parcels are waiting.
    pub fn going_to_sleep(&self, me: usize) -> bool {
        let Some(b) = self.boxes.get(me) else { return true };
        b.sleeping.store(true, Ordering::SeqCst);
        // A parcel pushed before the flag was seen would get no ring: look once more.
        if !b.inbox.is_empty() {
            b.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Worker `me` woke up: no more rings, and the ones that came are cleared.
    pub fn awake(&self, me: usize) {
        let Some(b) = self.boxes.get(me) else { return };
        b.sleeping.store(false, Ordering::SeqCst);
        if let Some((rx, _)) = &b.bell {
            let mut buf = [0u8; 16];
            while rx.recv(&mut buf).is_ok() {}
        }
    }

    /// Returns a parcel worker `me` received to its free list.
    pub fn recycle(&self, me: usize, p: Parcel) {
        if let Some(b) = self.boxes.get(me) {
            let _ = b.free.push(p);
        }
    }
}

/// How frames are shared out between the workers of a gateway. See the module documentation.
#[derive(Debug, Clone)]
pub struct Sharding {
    /// This worker.
    pub me: usize,
    /// Every worker's mailbox.
    pub mailboxes: Arc<Mailboxes>,
    /// The whole SNAT port range, split in equal shares in worker order
    /// ([`PortRange::share`]), as the gateway splits it.
    pub snat_ports: PortRange,
}

impl Sharding {
    /// The worker that owns a TCP/UDP frame from `src` to `dst:dport`, given whether the
    /// destination is a frontend of the table.
    #[inline]
    pub fn owner(&self, src: &Addr, dst: &Addr, dport: u16, to_frontend: bool) -> usize {
        let workers = self.mailboxes.workers();
        if workers <= 1 {
            return self.me;
        }
        if to_frontend {
            return by_address(src, workers);
        }
        if self.snat_ports.contains(dport) {
            return self.snat_ports.share_of(workers, dport);
        }
        by_address(dst, workers)
    }
}

/// A worker by a hash of an address (the same in every worker and every run).
#[inline]
fn by_address(a: &Addr, workers: usize) -> usize {
    let lo = u64::from_le_bytes([a.0[8], a.0[9], a.0[10], a.0[11], a.0[12], a.0[13], a.0[14], a.0[15]]);
    let hi = u64::from_le_bytes([a.0[0], a.0[1], a.0[2], a.0[3], a.0[4], a.0[5], a.0[6], a.0[7]]);
    let h = (lo ^ hi.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (((h >> 32) * workers as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_range_and_owners_match_them() {
        let boxes = Mailboxes::new(3, 4);
        let range = sluice_model::ports::SNAT_DEFAULT;
        let s = Sharding { me: 0, mailboxes: boxes, snat_ports: range };
        let shares: Vec<_> = (0..3).map(|i| range.share(3, i).unwrap()).collect();
        let vip = Addr::from_v4([198, 18, 1, 254]);
        for (i, r) in shares.iter().enumerate() {
            let (lo, hi) = (r.lo(), r.hi());
            for port in [lo, hi, lo + (hi - lo) / 2] {
                assert_eq!(s.owner(&Addr::from_v4([198, 18, 1, 2]), &vip, port, false), i);
            }
        }
        // A client's frames and the DNAT replies to it have one owner.
        let client = Addr::from_v4([198, 18, 0, 100]);
        let fwd = s.owner(&client, &Addr::from_v4([198, 18, 100, 1]), 80, true);
        assert_eq!(s.owner(&Addr::from_v4([198, 18, 1, 2]), &client, 40_000, false), fwd);
    }

    #[test]
    fn parcels_go_round_and_a_full_mailbox_refuses() {
        let boxes = Mailboxes::new(2, 2);
        assert!(boxes.send(1, 0, b"one"));
        assert!(boxes.send(1, 1, b"two"));
        assert!(!boxes.send(1, 0, b"three"), "both parcels in flight");
        assert!(!boxes.send(0, 0, &[0; PARCEL_BYTES + 1]), "too large");
        let p = boxes.receive(1).unwrap();
        assert_eq!((&p.data[..p.len as usize], p.port), (&b"one"[..], 0));
        boxes.recycle(1, p);
        assert!(boxes.send(1, 0, b"three"));
        assert!(boxes.receive(0).is_none());
    }

    #[test]
    fn a_sleeping_owner_is_rung_and_one_with_mail_does_not_sleep() {
        let boxes = Mailboxes::new(2, 4);
        let rang = |b: &Mailboxes| {
            let (rx, _) = b.boxes[0].bell.as_ref().unwrap();
            let mut buf = [0u8; 4];
            rx.recv(&mut buf).is_ok()
        };
        assert!(boxes.doorbell(0).is_some());
        boxes.ring(0);
        assert!(!rang(&boxes), "awake: no ring");
        assert!(boxes.going_to_sleep(0));
        boxes.ring(0);
        assert!(rang(&boxes), "asleep: rung");
        boxes.ring(0);
        boxes.awake(0);
        assert!(!rang(&boxes), "cleared on waking");
        assert!(boxes.send(0, 0, b"x"));
        assert!(!boxes.going_to_sleep(0), "mail waits: stay awake");
    }
}
