//! The per-core reactor: the one place a worker thread waits. A `mio::Poll` (epoll) holds
//! everything that can give the worker work — its ports' AF_XDP sockets, the doorbell other
//! workers ring when they hand it a frame, and (with the L7 stage) its listening sockets and
//! kernel TCP connections — so that one thread can sleep on all of it at once and wake for
//! whichever is ready.
//!
//! The worker does not wait while it has work: it polls its rings in a loop and calls
//! [`Reactor::wait`] only after a run of empty polls (see [`Idle`]), so under load the reactor
//! costs nothing — no system call per batch.
//!
//! **Ports are in the poll set only while the worker sleeps.** A socket registered in epoll has
//! epoll's callback on its wait queue, and the kernel runs it at every receive flush (once per
//! NAPI poll), in the softirq of the core that receives — whether or not anyone waits. Measured
//! with `benches/run l4 --quick --repeat 5` on veth (where that core is also the generator's):
//! Sluice's forwarding rate relative to the plain AF_XDP loop was 0.85 (median of 5 runs,
//! 0.82–0.89) with the sockets registered for good, against 0.93 (0.88–1.05, 11 runs) before the
//! reactor and 0.92 (0.88–0.98, 6 runs) as it is now. So [`Reactor::wait`] adds the ports before
//! it sleeps, and they leave the set as soon as frames flow again: when a wait or a
//! [`Reactor::poll_l7`] reports a port, or the worker says it received frames
//! ([`Reactor::frames_flowing`], one test of a flag per batch). A worker woken by anything else
//! — the L7 stage's sockets, the doorbell, a timeout — keeps them in the set for its next sleep:
//! a worker serving L7 with no frames coming sleeps and wakes thousands of times a second, and
//! adding and removing its ports each time was two `epoll_ctl` calls per sleep, 2.3 % of its
//! CPU under `wrk` HTTPS (perf, 2026-12-05). Adding a socket checks its readiness at once, so
//! frames that arrived between the worker's last empty poll and its sleep wake it immediately;
//! a socket kept in the set reports every arrival as an event: no wake-up is lost either way.
//!
//! Other sources (the doorbell, the L7 stage's sockets) stay registered, edge-triggered (epoll's
//! `EPOLLET`, as mio registers everything): an event says "something arrived since you last
//! looked", and the worker then drains what it can — the doorbell is emptied when the worker
//! wakes.
//!
//! Tokens: ports are `0..MAX_PORTS`, the doorbell is [`DOORBELL`], and the L7 stage's sources
//! take tokens from [`L7_FIRST`] on.
//!
//! Not hot path: one `epoll_wait` per sleep.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::worker::MAX_PORTS;

/// The doorbell's token.
pub const DOORBELL: Token = Token(MAX_PORTS);

/// The first token the L7 stage's listeners and connections may use.
pub const L7_FIRST: Token = Token(1024);

/// Events one wait takes at most (the rest are taken by the next).
const EVENTS: usize = 256;

/// L7 events a busy worker takes between two batches of frames, at most ([`Reactor::poll_l7`]):
/// each is handled to completion (TLS, parsing, both sockets), so this bounds how long frames
/// wait in the receive ring behind the L7 stage. The rest stay ready for the next poll
/// (edge-triggered: epoll keeps a ready source on its list until it is reported).
pub const L7_BATCH: usize = 16;

/// Why [`Reactor::wait`] returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Woken {
    /// A port had frames (or room to send).
    pub ports: bool,
    /// The doorbell rang: another worker handed this one frames.
    pub doorbell: bool,
    /// Events for the L7 stage's sources (tokens from [`L7_FIRST`]).
    pub l7: usize,
}

impl Woken {
    /// Whether the wait ended by timeout, with nothing ready.
    pub fn timed_out(&self) -> bool {
        *self == Woken::default()
    }
}

/// One worker thread's poll set.
pub struct Reactor {
    poll: Poll,
    events: Events,
    /// For [`Reactor::poll_l7`]: [`L7_BATCH`] at a time.
    l7_events: Events,
    /// The ports' sockets, added to the poll set for each wait (see the module documentation).
    ports: [Option<RawFd>; MAX_PORTS],
    /// Whether they are in the poll set now.
    ports_in: bool,
}

impl core::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

impl Reactor {
    /// An empty reactor.
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS),
            l7_events: Events::with_capacity(L7_BATCH),
            ports: [None; MAX_PORTS],
            ports_in: false,
        })
    }

    /// Watches port `index`'s socket (an AF_XDP socket's descriptor) for frames to receive,
    /// while the worker sleeps. The socket must outlive the reactor's waits.
    pub fn register_port(&mut self, index: usize, fd: BorrowedFd<'_>) -> io::Result<()> {
        let Some(slot) = self.ports.get_mut(index) else {
            let why = format!("port {index}: at most {MAX_PORTS}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        };
        *slot = Some(fd.as_raw_fd());
        Ok(())
    }

    /// Watches the worker's doorbell (its mailbox's receiving end).
    pub fn register_doorbell(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        self.poll.registry().register(&mut SourceFd(&raw), DOORBELL, Interest::READABLE)
    }

    /// The registry, for the L7 stage's listeners and connections (tokens from [`L7_FIRST`]).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Sleeps until a source is ready or `timeout` passes; says what woke it. Interrupted by a
    /// signal, it returns as if it had timed out (the caller checks its stop flag). Events for
    /// the L7 stage's sources are dropped: use [`Reactor::wait_with`] when there are any.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Woken> {
        self.wait_with(timeout, |_, _| {})
    }

    /// [`Reactor::wait`], handing each event for the L7 stage's sources (tokens from
    /// [`L7_FIRST`]) to `on_l7` with the registry, so it can register what it opens.
    pub fn wait_with(
        &mut self,
        timeout: Duration,
        mut on_l7: impl FnMut(&Registry, &Event),
    ) -> io::Result<Woken> {
        self.add_ports()?;
        let polled = self.poll.poll(&mut self.events, Some(timeout));
        if polled.is_err() || self.events.iter().any(|e| e.token().0 < MAX_PORTS) {
            self.remove_ports();
        }
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Woken::default()),
            Err(e) => return Err(e),
        }
        let mut w = Woken::default();
        for e in self.events.iter() {
            match e.token() {
                t if t.0 < MAX_PORTS => w.ports = true,
                DOORBELL => w.doorbell = true,
                t if t >= L7_FIRST => {
                    w.l7 += 1;
                    on_l7(self.poll.registry(), e);
                }
                _ => {}
            }
        }
        Ok(w)
    }

    /// Takes what is ready now for the L7 stage (and the doorbell) without sleeping — at most
    /// [`L7_BATCH`] events — handing each L7 event to `on_l7`: how a busy worker serves its
    /// kernel sockets between batches.
    /// The ports are not in the poll set then (see the module documentation): their frames are
    /// the batch loop's. One `epoll_wait` with a zero timeout; returns the L7 events taken.
    pub fn poll_l7(&mut self, mut on_l7: impl FnMut(&Registry, &Event)) -> io::Result<usize> {
        match self.poll.poll(&mut self.l7_events, Some(Duration::ZERO)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        if self.ports_in && self.l7_events.iter().any(|e| e.token().0 < MAX_PORTS) {
            self.remove_ports();
        }
        let mut n = 0;
        for e in self.l7_events.iter().filter(|e| e.token() >= L7_FIRST) {
            n += 1;
            on_l7(self.poll.registry(), e);
        }
        Ok(n)
    }

    /// The worker received frames: its ports leave the poll set if a sleep left them there (see
    /// the module documentation). One test of a flag when they are out.
    #[inline]
    pub fn frames_flowing(&mut self) {
        if self.ports_in {
            self.remove_ports();
        }
    }

    /// Forgets every port: out of the poll set now, never added again. For a worker about to
    /// close its AF_XDP sockets and go on with its L7 stage alone (an upgrade: the next
    /// gateway binds the queues).
    pub fn forget_ports(&mut self) {
        self.remove_ports();
        self.ports = [None; MAX_PORTS];
    }

    /// Whether the ports are in the poll set now.
    pub fn ports_in(&self) -> bool {
        self.ports_in
    }

    fn add_ports(&mut self) -> io::Result<()> {
        if self.ports_in {
            return Ok(());
        }
        let registry = self.poll.registry();
        let failed = self.ports.iter().enumerate().find_map(|(i, fd)| {
            fd.as_ref()
                .and_then(|fd| registry.register(&mut SourceFd(fd), Token(i), Interest::READABLE).err())
        });
        if let Some(e) = failed {
            // Those added before the failure go out again (the others' removal fails, harmlessly).
            self.remove_ports();
            return Err(e);
        }
        self.ports_in = true;
        Ok(())
    }

    fn remove_ports(&mut self) {
        for fd in self.ports.iter().flatten() {
            // Fails only if the socket is gone, which takes it out of the set anyway.
            let _ = self.poll.registry().deregister(&mut SourceFd(fd));
        }
        self.ports_in = false;
    }
}

/// When a busy-polling worker should sleep: after `spin` empty polls in a row. Spinning keeps
/// latency low while frames arrive; sleeping makes an idle gateway cost no CPU.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    spin: u32,
    empty: u32,
}

impl Idle {
    /// Sleeps after `spin` empty polls.
    pub const fn new(spin: u32) -> Idle {
        Idle { spin, empty: 0 }
    }

    /// Records a poll that found `frames` frames; true when the worker has spun long enough
    /// without work and may sleep.
    #[inline]
    pub fn after_poll(&mut self, frames: usize) -> bool {
        if frames > 0 {
            self.empty = 0;
            return false;
        }
        self.empty += 1;
        self.empty >= self.spin
    }

    /// The worker slept (or decided not to): spin again before the next sleep.
    pub fn reset(&mut self) {
        self.empty = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Instant;

    #[test]
    fn a_wait_says_what_woke_it_and_times_out_when_nothing_does() {
        let mut r = Reactor::new().unwrap();
        let (port_rx, port_tx) = UnixDatagram::pair().unwrap();
        let (bell_rx, bell_tx) = UnixDatagram::pair().unwrap();
        let (l7_rx, l7_tx) = UnixDatagram::pair().unwrap();
        r.register_port(1, port_rx.as_fd()).unwrap();
        r.register_doorbell(bell_rx.as_fd()).unwrap();
        let raw = l7_rx.as_raw_fd();
        r.registry().register(&mut SourceFd(&raw), L7_FIRST, Interest::READABLE).unwrap();

        let t = Instant::now();
        assert!(r.wait(Duration::from_millis(30)).unwrap().timed_out());
        assert!(t.elapsed() >= Duration::from_millis(25), "it slept");

        port_tx.send(b"frame").unwrap();
        assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), Woken { ports: true, ..Woken::default() });
        // A port is armed for each wait: what is still unread wakes the next wait at once.
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
        let mut buf = [0u8; 16];
        port_rx.recv(&mut buf).unwrap();
        bell_tx.send(b"ring").unwrap();
        l7_tx.send(b"GET /").unwrap();
        assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), Woken { ports: false, doorbell: true, l7: 1 });
        // The other sources are edge-triggered: what was reported is not reported again until
        // more arrives.
        assert!(r.wait(Duration::from_millis(10)).unwrap().timed_out());
        port_tx.send(b"another").unwrap();
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
        assert!(r.register_port(MAX_PORTS, port_rx.as_fd()).is_err(), "no port token past MAX_PORTS");
    }

    #[test]
    fn ports_stay_in_the_set_across_sleeps_until_frames_flow() {
        let mut r = Reactor::new().unwrap();
        let (port_rx, port_tx) = UnixDatagram::pair().unwrap();
        let (l7_rx, l7_tx) = UnixDatagram::pair().unwrap();
        r.register_port(0, port_rx.as_fd()).unwrap();
        let raw = l7_rx.as_raw_fd();
        r.registry().register(&mut SourceFd(&raw), L7_FIRST, Interest::READABLE).unwrap();
        assert!(!r.ports_in());
        // Woken by the L7 stage, twice: the ports stay in for the next sleep.
        for _ in 0..2 {
            l7_tx.send(b"GET /").unwrap();
            assert_eq!(r.wait(Duration::from_secs(5)).unwrap().l7, 1);
            assert!(r.ports_in());
        }
        // A frame arriving while they are in, with nobody waiting, wakes the next wait: no
        // wake-up is lost. Being reported takes them out.
        port_tx.send(b"frame").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
        assert!(!r.ports_in());
        // Unread, it wakes the next wait at once (adding a port checks its readiness).
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
        let mut buf = [0u8; 16];
        port_rx.recv(&mut buf).unwrap();
        // A timeout leaves them in; frames received by the batch loop take them out.
        assert!(r.wait(Duration::from_millis(10)).unwrap().timed_out());
        assert!(r.ports_in());
        r.frames_flowing();
        assert!(!r.ports_in());
        // A busy poll that sees a port takes them out too.
        assert!(r.wait(Duration::from_millis(10)).unwrap().timed_out());
        port_tx.send(b"frame").unwrap();
        assert_eq!(r.poll_l7(|_, _| panic!("no L7 event")).unwrap(), 0);
        assert!(!r.ports_in());
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports, "the frame is still there");
    }

    #[test]
    fn l7_events_reach_their_handler_asleep_and_busy_and_ports_stay_the_batch_loops() {
        let mut r = Reactor::new().unwrap();
        let (port_rx, port_tx) = UnixDatagram::pair().unwrap();
        let (l7_rx, l7_tx) = UnixDatagram::pair().unwrap();
        r.register_port(0, port_rx.as_fd()).unwrap();
        let raw = l7_rx.as_raw_fd();
        let token = Token(L7_FIRST.0 + 7);
        r.registry().register(&mut SourceFd(&raw), token, Interest::READABLE).unwrap();

        let mut seen = Vec::new();
        l7_tx.send(b"GET /").unwrap();
        let w = r.wait_with(Duration::from_secs(5), |_, e| seen.push((e.token(), e.is_readable()))).unwrap();
        assert_eq!((w.l7, seen.as_slice()), (1, [(token, true)].as_slice()));

        // Busy: a zero-timeout poll hands over L7 events and never sees the ports.
        seen.clear();
        port_tx.send(b"frame").unwrap();
        l7_tx.send(b"more").unwrap();
        let t = Instant::now();
        assert_eq!(r.poll_l7(|_, e| seen.push((e.token(), e.is_readable()))).unwrap(), 1);
        assert_eq!(seen, [(token, true)]);
        assert_eq!(r.poll_l7(|_, _| panic!("nothing new arrived")).unwrap(), 0);
        assert!(t.elapsed() < Duration::from_secs(1), "it did not sleep");
        // The frame is still there for the next sleep to notice.
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
    }

    #[test]
    fn a_busy_poll_takes_a_bounded_batch_and_leaves_the_rest_ready() {
        let mut r = Reactor::new().unwrap();
        let pairs: Vec<(UnixDatagram, UnixDatagram)> =
            (0..L7_BATCH + 5).map(|_| UnixDatagram::pair().unwrap()).collect();
        for (i, (rx, tx)) in pairs.iter().enumerate() {
            let raw = rx.as_raw_fd();
            r.registry().register(&mut SourceFd(&raw), Token(L7_FIRST.0 + i), Interest::READABLE).unwrap();
            tx.send(b"x").unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        assert_eq!(
            r.poll_l7(|_, e| {
                seen.insert(e.token());
            })
            .unwrap(),
            L7_BATCH
        );
        assert_eq!(
            r.poll_l7(|_, e| {
                seen.insert(e.token());
            })
            .unwrap(),
            5,
            "the rest, next time"
        );
        assert_eq!(seen.len(), L7_BATCH + 5, "every source once");
    }

    #[test]
    fn a_worker_sleeps_only_after_a_run_of_empty_polls() {
        let mut idle = Idle::new(3);
        assert!(!idle.after_poll(0));
        assert!(!idle.after_poll(0));
        assert!(!idle.after_poll(5), "work resets the count");
        assert!(!idle.after_poll(0));
        assert!(!idle.after_poll(0));
        assert!(idle.after_poll(0));
        idle.reset();
        assert!(!idle.after_poll(0));
    }
}
