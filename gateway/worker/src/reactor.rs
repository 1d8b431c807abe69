//! The per-core reactor: the one place a worker thread waits. A `mio::Poll` (epoll) holds
//! everything that can give the worker work — its ports' AF_XDP sockets, the doorbell other
//! workers ring when they hand it a frame, and (with the L7 stage) its listening sockets and
//! kernel TCP connections — so that one thread can sleep on all of it at once and wake for
//! whichever is ready.
//!
//! The worker does not wait while it has work: it polls its rings in a loop and calls
//! [`Reactor::wait`] only after a run of empty polls (see [`Idle`]), so under load the reactor
//! costs nothing — no system call per batch. Readiness is edge-triggered (epoll's `EPOLLET`, as
//! mio registers everything): an event says "something arrived since you last looked", and the
//! worker then drains what it can. That is safe for rings, because the worker polls every ring
//! after each wake-up whatever the event said, and for the doorbell, which the worker empties
//! when it wakes.
//!
//! Tokens: ports are `0..MAX_PORTS`, the doorbell is [`DOORBELL`], and the L7 stage's sources
//! take tokens from [`L7_FIRST`] on.
//!
//! Not hot path: one `epoll_wait` per sleep.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::worker::MAX_PORTS;

/// The doorbell's token.
pub const DOORBELL: Token = Token(MAX_PORTS);

/// The first token the L7 stage's listeners and connections may use.
pub const L7_FIRST: Token = Token(1024);

/// Events one wait takes at most (the rest are taken by the next).
const EVENTS: usize = 256;

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
}

impl core::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

impl Reactor {
    /// An empty reactor.
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor { poll: Poll::new()?, events: Events::with_capacity(EVENTS) })
    }

    /// Watches port `index`'s socket (an AF_XDP socket's descriptor) for frames to receive.
    pub fn register_port(&self, index: usize, fd: BorrowedFd<'_>) -> io::Result<()> {
        if index >= MAX_PORTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {index}: at most {MAX_PORTS}"),
            ));
        }
        let raw = fd.as_raw_fd();
        self.poll.registry().register(&mut SourceFd(&raw), Token(index), Interest::READABLE)
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
    /// signal, it returns as if it had timed out (the caller checks its stop flag).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Woken> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Woken::default()),
            Err(e) => return Err(e),
        }
        let mut w = Woken::default();
        for e in self.events.iter() {
            match e.token() {
                t if t.0 < MAX_PORTS => w.ports = true,
                DOORBELL => w.doorbell = true,
                t if t >= L7_FIRST => w.l7 += 1,
                _ => {}
            }
        }
        Ok(w)
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
        bell_tx.send(b"ring").unwrap();
        l7_tx.send(b"GET /").unwrap();
        assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), Woken { ports: false, doorbell: true, l7: 1 });
        // Edge-triggered: what was reported is not reported again until more arrives.
        assert!(r.wait(Duration::from_millis(10)).unwrap().timed_out());
        port_tx.send(b"another").unwrap();
        assert!(r.wait(Duration::from_secs(5)).unwrap().ports);
        assert!(r.register_port(MAX_PORTS, port_rx.as_fd()).is_err(), "no port token past MAX_PORTS");
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
