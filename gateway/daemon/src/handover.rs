//! Upgrades without a refused connection: a new `sluice-gateway` takes the L7 listening sockets
//! over from the running one, as HAProxy's `-x` and Envoy's hot restart do, so no SYN ever meets
//! a closed port; the old one then stops accepting, finishes what it has and exits.
//!
//! # The protocol (version 1)
//! The running gateway listens on a Unix `SOCK_SEQPACKET` socket (`--handover-socket`; by
//! default `/run/sluice/gateway-IFACE-netINODE.sock`, the interface and the network
//! namespace's inode: two gateways on one machine never meet by accident), mode 0600 in a 0700
//! directory. Each message is one packet of text lines; listening sockets travel with
//! `SCM_RIGHTS`. Both sides check the peer's credentials (`SO_PEERCRED`): same user or root.
//!
//! ```text
//! new → old   SLUICE-HANDOVER/1 hello
//! old → new   SLUICE-HANDOVER/1 offer listeners=N addresses=IP,IP,…   (addresses it added)
//! old → new   batch K                 + K fds (SCM_RIGHTS), K ≤ 32
//!             ADDR:PORT http|https SLOT  (K lines, in the fds' order)
//!             … as many batches as it takes N listeners …
//! old → new   end
//! new → old   release-l4               (the new one checked everything it got)
//! old → new   l4-released              (its AF_XDP sockets and flow journals closed)
//!             … the new one attaches, binds, starts its workers, serves the listeners …
//! new → old   ready
//! old → new   draining PID SECONDS     (it stopped accepting; it exits within SECONDS)
//! ```
//! Either side may send `error TEXT` and close. A version the old gateway does not speak gets
//! `error`; so does anything out of order.
//!
//! What the new gateway receives is hostile until checked: message sizes and counts are
//! bounded, a truncated packet or control message is an error, every descriptor must be a
//! listening TCP socket with `SO_REUSEPORT` of the family, address and port its line says, and
//! no (address, kind, slot) twice. Any failure closes every descriptor received, logs why,
//! and the gateway starts as if no old one were there (it binds its own listeners; a gateway
//! still running then holds the interface, and the new one's XDP attach says so).
//!
//! # Listeners and workers
//! The main thread owns every listening socket (`crate::l7`): one per worker per (address,
//! port), each a member of the address's `SO_REUSEPORT` group, each handed to its worker as a
//! duplicate. The slots received are kept as they are: slot `i` is served by worker `i mod W`.
//! A new gateway with more workers binds the missing slots into the same group; one with fewer
//! keeps accepting on every slot it received (a worker serves several). Closing a surplus
//! listener would reset the connections waiting in its accept queue — the kernel does not move
//! them to the group's other members — so none is closed while the address is served.
//!
//! # The old gateway
//! On `release-l4` it stops its L4 part exactly as a SIGTERM does (the workers close their
//! AF_XDP sockets and flow journals; the XDP program stays, holding the service traffic until
//! the new gateway replaces it: docs/restarts.md) while the workers' L7 stages go on
//! accepting and serving. If the new gateway goes away before `ready`, the old one keeps
//! serving L7 and waits for the next new gateway. On `ready` it stops accepting (the sockets
//! live on in the new process: nothing waiting in an accept queue is lost), HTTP/2 clients get
//! two GOAWAYs (RFC 9113 §6.8: no new streams, then the last stream), HTTP/1.1 clients
//! `Connection: close` on their next response (an idle one is not closed under a request that
//! may be on its way); it exits when its last client connection is done, or at
//! `--drain-seconds`. The L7 addresses it put on the interface stay there: the
//! new gateway takes them as its own (and takes them off when it stops).
//!
//! # Known limits
//! - L4 flows and the XDP program do not outlive the old process here (state that survives a
//!   restart is another part of issue 16); between `release-l4` and the new gateway's bind,
//!   L4 traffic is passed to the kernel.
//! - The counters of the old workers stop being published at `release-l4` (the new workers
//!   publish to the same records).
//!
//! Not hot path; no `unsafe` (rustix's safe `sendmsg`/`recvmsg`).

use std::collections::BTreeSet;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{
    self as rnet, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType, sockopt,
};
use sluice_log::{error, info, warn};
use sluice_xsk::Steering;

/// The protocol's name and version, first on the first line of each side.
const MAGIC: &str = "SLUICE-HANDOVER/1";
/// Descriptors per message (the kernel takes up to 253).
const BATCH: usize = 32;
/// The largest message either side sends or accepts.
const MAX_MESSAGE: usize = 16 * 1024;
/// The most listeners and addresses a new gateway accepts.
const MAX_LISTENERS: usize = 4096;
const MAX_ADDRESSES: usize = 1024;
/// The most slots per (address, port): far above any machine's cores.
const MAX_SLOT: usize = 4096;
/// How long either side waits for the other's next message, but for `ready` (the new gateway
/// starts its workers in between) and for `draining`.
const STEP: Duration = Duration::from_secs(10);

/// The longest a whole offer may take to arrive.
const OFFER_TIME: Duration = Duration::from_secs(20);

/// `--drain-seconds`' default: how long an old gateway lets its L7 connections finish.
pub(crate) const DEFAULT_DRAIN_SECONDS: u64 = 30;

/// A handover failure: what happened, said to the operator.
#[derive(Debug)]
pub(crate) enum Error {
    /// A system call on the handover socket.
    Io { step: &'static str, err: std::io::Error },
    /// The other side said or sent something the protocol does not allow.
    Protocol(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { step, err } => write!(f, "{step}: {err}"),
            Error::Protocol(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    fn io(step: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
        move |e| Error::Io { step, err: e.into() }
    }
}

fn bad(what: impl Into<String>) -> Error {
    Error::Protocol(what.into())
}

/// The default handover socket for `iface`, in this network namespace.
pub(crate) fn default_path(iface: &str) -> PathBuf {
    let ns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    PathBuf::from(format!("/run/sluice/gateway-{iface}-net{ns}.sock"))
}

/// One listening socket as the protocol describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Described {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) slot: usize,
}

/// What a running gateway hands over: its listeners, and the L7 addresses it put on the
/// interface. The main thread keeps it current (`crate::l7`, `crate::supervise`).
#[derive(Debug, Default)]
pub(crate) struct Offer {
    pub(crate) listeners: Vec<(Described, Arc<TcpListener>)>,
    pub(crate) addresses: Vec<IpAddr>,
}

/// The offer, shared by the main thread and the handover server.
pub(crate) type OfferCell = Arc<Mutex<Offer>>;

/// What a new gateway took over.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) listeners: Vec<(Described, TcpListener)>,
    pub(crate) addresses: Vec<IpAddr>,
    /// To the old gateway, for `ready`.
    conn: OwnedFd,
}

// ---------------------------------------------------------------------------------------------
// Messages

/// Sends one message, with `fds` attached.
fn send(sock: BorrowedFd<'_>, text: &str, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(bad(format!("{} descriptors do not fit one message", fds.len())));
    }
    let n = rnet::sendmsg(sock, &[IoSlice::new(text.as_bytes())], &mut control, SendFlags::NOSIGNAL)
        .map_err(Error::io("sending on the handover socket"))?;
    if n != text.len() {
        return Err(bad("a message was sent in part"));
    }
    Ok(())
}

/// Receives one message: its text and the descriptors that came with it. A message or a
/// control part that did not fit is an error (its descriptors are closed); so is the end of
/// the connection (`what` says what was awaited).
fn recv(sock: BorrowedFd<'_>, what: &str) -> Result<(String, Vec<OwnedFd>), Error> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let r = rnet::recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| match e {
            rustix::io::Errno::AGAIN => bad(format!("no {what} within {} s", STEP.as_secs())),
            e => Error::Io { step: "receiving on the handover socket", err: e.into() },
        })?;
    // Every descriptor that came is owned now (and closed on any error below).
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(iter) = m {
            fds.extend(iter);
        }
    }
    if r.flags.contains(ReturnFlags::CTRUNC) {
        return Err(bad(format!("more than {BATCH} descriptors in one message")));
    }
    if r.flags.contains(ReturnFlags::TRUNC) || r.bytes > MAX_MESSAGE {
        return Err(bad(format!("a message over {MAX_MESSAGE} bytes")));
    }
    if r.bytes == 0 {
        return Err(bad(format!("the connection ended before {what}")));
    }
    let text = std::str::from_utf8(&buf[..r.bytes]).map_err(|_| bad("a message that is not UTF-8"))?;
    if let Some(e) = text.strip_prefix("error ") {
        return Err(bad(format!("the other gateway said: {}", e.trim_end())));
    }
    Ok((text.to_owned(), fds))
}

/// A connected handover socket's peer: the same user as this process, or root.
fn check_peer(sock: BorrowedFd<'_>) -> Result<(), Error> {
    let cred = sockopt::socket_peercred(sock).map_err(Error::io("SO_PEERCRED"))?;
    let me = rustix::process::geteuid();
    if cred.uid != me && !cred.uid.is_root() {
        return Err(bad(format!(
            "peer (pid {}) runs as uid {}, not as this gateway's",
            cred.pid.as_raw_nonzero(),
            cred.uid.as_raw()
        )));
    }
    Ok(())
}

fn set_timeout(sock: BorrowedFd<'_>, t: Option<Duration>) -> Result<(), Error> {
    sockopt::set_socket_timeout(sock, sockopt::Timeout::Recv, t).map_err(Error::io("SO_RCVTIMEO"))?;
    sockopt::set_socket_timeout(sock, sockopt::Timeout::Send, Some(STEP)).map_err(Error::io("SO_SNDTIMEO"))
}

/// The offer's first line.
fn offer_line(listeners: usize, addresses: &[IpAddr]) -> String {
    let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    format!("{MAGIC} offer listeners={listeners} addresses={}\n", list.join(","))
}

/// Parses the offer's first line: (listeners, addresses).
fn parse_offer(text: &str) -> Result<(usize, Vec<IpAddr>), Error> {
    let line = one_line(text)?;
    let rest = line
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(" offer "))
        .ok_or_else(|| bad(format!("not an offer of {MAGIC}: {:?}", clip(line))))?;
    let mut words = rest.split(' ');
    let n = words
        .next()
        .and_then(|w| w.strip_prefix("listeners="))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= MAX_LISTENERS)
        .ok_or_else(|| bad(format!("offer: listeners= missing or over {MAX_LISTENERS}")))?;
    let list = words
        .next()
        .and_then(|w| w.strip_prefix("addresses="))
        .ok_or_else(|| bad("offer: addresses= missing"))?;
    if words.next().is_some() {
        return Err(bad("offer: more than listeners= and addresses="));
    }
    let addresses: Vec<IpAddr> = if list.is_empty() {
        Vec::new()
    } else {
        list.split(',')
            .map(|a| a.parse().map_err(|_| bad(format!("offer: {:?} is not an address", clip(a)))))
            .collect::<Result<_, _>>()?
    };
    if addresses.len() > MAX_ADDRESSES {
        return Err(bad(format!("offer: over {MAX_ADDRESSES} addresses")));
    }
    Ok((n, addresses))
}

/// A batch's text for `items`.
fn batch_text(items: &[Described]) -> String {
    let mut s = format!("batch {}\n", items.len());
    for d in items {
        s.push_str(&format!("{} {} {}\n", d.addr, if d.tls { "https" } else { "http" }, d.slot));
    }
    s
}

/// Parses a batch's text: its descriptions, as many as `fds` came with it.
fn parse_batch(text: &str, fds: usize) -> Result<Vec<Described>, Error> {
    let mut lines =
        text.strip_suffix('\n').ok_or_else(|| bad("a batch that does not end a line"))?.split('\n');
    let k = lines
        .next()
        .and_then(|l| l.strip_prefix("batch "))
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|&k| (1..=BATCH).contains(&k))
        .ok_or_else(|| bad(format!("expected `batch K` (1 ≤ K ≤ {BATCH})")))?;
    if k != fds {
        return Err(bad(format!("a batch of {k} came with {fds} descriptor(s)")));
    }
    let items: Vec<Described> = lines
        .map(|l| {
            let mut w = l.split(' ');
            let (Some(a), Some(kind), Some(slot), None) = (w.next(), w.next(), w.next(), w.next()) else {
                return Err(bad(format!("batch line {:?}: expected ADDR:PORT http|https SLOT", clip(l))));
            };
            let addr: SocketAddr =
                a.parse().map_err(|_| bad(format!("batch: {:?} is not ADDR:PORT", clip(a))))?;
            let tls = match kind {
                "http" => false,
                "https" => true,
                _ => return Err(bad(format!("batch: kind {:?} is neither http nor https", clip(kind)))),
            };
            let slot = slot
                .parse::<usize>()
                .ok()
                .filter(|&s| s < MAX_SLOT)
                .ok_or_else(|| bad(format!("batch: slot {:?} is not below {MAX_SLOT}", clip(slot))))?;
            if addr.port() == 0 {
                return Err(bad(format!("batch: {addr} has no port")));
            }
            Ok(Described { addr, tls, slot })
        })
        .collect::<Result<_, _>>()?;
    if items.len() != k {
        return Err(bad(format!("`batch {k}` with {} line(s)", items.len())));
    }
    Ok(items)
}

/// The only line of a message.
fn one_line(text: &str) -> Result<&str, Error> {
    match text.strip_suffix('\n') {
        Some(l) if !l.contains('\n') => Ok(l),
        _ => Err(bad(format!("expected one line, got {:?}", clip(text)))),
    }
}

/// At most 80 characters of something the other side sent, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Whether `fd` is what `d` says: a listening TCP socket with `SO_REUSEPORT`, bound to
/// `d.addr`. Returns it as a listener.
fn check_listener(fd: OwnedFd, d: &Described) -> Result<TcpListener, Error> {
    let wrong = |what: String| {
        bad(format!("descriptor for {} {}: {what}", d.addr, if d.tls { "https" } else { "http" }))
    };
    let ty = sockopt::socket_type(&fd).map_err(|e| wrong(format!("not a socket ({e})")))?;
    if ty != SocketType::STREAM {
        return Err(wrong("not a stream socket".into()));
    }
    let family = sockopt::socket_domain(&fd).map_err(|e| wrong(e.to_string()))?;
    let want = if d.addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    if family != want {
        return Err(wrong("of another address family".into()));
    }
    if sockopt::socket_protocol(&fd).map_err(|e| wrong(e.to_string()))? != Some(rnet::ipproto::TCP) {
        return Err(wrong("not TCP".into()));
    }
    if !sockopt::socket_acceptconn(&fd).map_err(|e| wrong(e.to_string()))? {
        return Err(wrong("not listening".into()));
    }
    if !sockopt::socket_reuseport(&fd).map_err(|e| wrong(e.to_string()))? {
        return Err(wrong("without SO_REUSEPORT".into()));
    }
    let l = TcpListener::from(fd);
    let bound = l.local_addr().map_err(|e| wrong(e.to_string()))?;
    if bound != d.addr {
        return Err(wrong(format!("bound to {bound}")));
    }
    Ok(l)
}

// ---------------------------------------------------------------------------------------------
// The new gateway's side

/// Asks the gateway listening at `path` for its listeners. `Ok(None)`: nobody listens there
/// (no socket, or a stale one): a plain start. `Err`: something answered and the handover
/// failed; the caller logs it and starts plainly. On success the old gateway has released
/// its L4 part: this one may attach its XDP program and bind its AF_XDP sockets.
pub(crate) fn take_over(path: &Path) -> Result<Option<Taken>, Error> {
    let sock = rnet::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(Error::io("socket"))?;
    let addr = SocketAddrUnix::new(path).map_err(Error::io("handover socket path"))?;
    match rnet::connect(&sock, &addr) {
        Ok(()) => {}
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::CONNREFUSED | rustix::io::Errno::NOTDIR) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::Io { step: "connecting to the handover socket", err: e.into() }),
    }
    let fd = sock.as_fd();
    check_peer(fd)?;
    set_timeout(fd, Some(STEP))?;
    send(fd, &format!("{MAGIC} hello\n"), &[])?;
    let (text, fds) = recv(fd, "an offer")?;
    if !fds.is_empty() {
        return Err(bad("descriptors with the offer line"));
    }
    let (n, addresses) = parse_offer(&text)?;
    let mut listeners = Vec::with_capacity(n);
    let mut seen = BTreeSet::new();
    let mut kinds = std::collections::BTreeMap::new();
    // The whole offer within OFFER_TIME, not only each message within STEP: an answer that
    // trickles in cannot hold this gateway's start for long.
    let start = Instant::now();
    while listeners.len() < n {
        if start.elapsed() > OFFER_TIME {
            return Err(bad(format!("the offer took over {} s", OFFER_TIME.as_secs())));
        }
        let (text, fds) = recv(fd, "a batch of listeners")?;
        let items = parse_batch(&text, fds.len())?;
        if listeners.len() + items.len() > n {
            return Err(bad(format!("more than the {n} listeners offered")));
        }
        for (d, fd) in items.into_iter().zip(fds) {
            if !seen.insert((d.addr, d.tls, d.slot)) {
                return Err(bad(format!("{} slot {} twice", d.addr, d.slot)));
            }
            if *kinds.entry(d.addr).or_insert(d.tls) != d.tls {
                return Err(bad(format!("{} both http and https", d.addr)));
            }
            let l = check_listener(fd, &d)?;
            listeners.push((d, l));
        }
    }
    let (text, fds) = recv(fd, "the end of the offer")?;
    if !fds.is_empty() || one_line(&text)? != "end" {
        return Err(bad(format!("expected `end`, got {:?}", clip(&text))));
    }
    send(fd, "release-l4\n", &[])?;
    let (text, _) = recv(fd, "the old gateway's L4 release")?;
    if one_line(&text)? != "l4-released" {
        return Err(bad(format!("expected `l4-released`, got {:?}", clip(&text))));
    }
    Ok(Some(Taken { listeners, addresses, conn: sock }))
}

/// [`take_over`], its outcome logged: what was taken, or `None` for a plain start.
pub(crate) fn take_over_logged(path: &Path) -> Option<Taken> {
    match take_over(path) {
        Ok(Some(t)) => {
            info!(
                "handover: took over {} L7 listener(s) and {} address(es) from the gateway at {}; it released \
                 its L4 part",
                t.listeners.len(),
                t.addresses.len(),
                path.display()
            );
            Some(t)
        }
        Ok(None) => {
            info!("handover: no gateway answers at {}; starting afresh", path.display());
            None
        }
        Err(e) => {
            warn!("handover from the gateway at {} failed: {e}; starting afresh", path.display());
            None
        }
    }
}

impl Taken {
    /// Tells the old gateway this one serves the listeners: it stops accepting and drains.
    /// Returns its answer (`draining PID SECONDS`).
    fn ready(self) -> Result<String, Error> {
        let fd = self.conn.as_fd();
        send(fd, "ready\n", &[])?;
        let (text, _) = recv(fd, "the old gateway's `draining`")?;
        let line = one_line(&text)?;
        if !line.starts_with("draining ") {
            return Err(bad(format!("expected `draining`, got {:?}", clip(line))));
        }
        Ok(line.to_owned())
    }

    /// Splits off what the L7 stage adopts: the listeners and the addresses.
    pub(crate) fn split(&mut self) -> (Vec<(Described, TcpListener)>, Vec<IpAddr>) {
        (std::mem::take(&mut self.listeners), std::mem::take(&mut self.addresses))
    }
}

// ---------------------------------------------------------------------------------------------
// The old gateway's side, and what both share

/// Where a gateway is in its life, as the handover moves it (shared with the workers).
#[derive(Debug, Default)]
pub(crate) struct Leaving {
    /// 0: serving; [`L4_OFF`]: L7 only, still accepting; [`DRAIN`]: draining.
    phase: AtomicU8,
    /// Workers that closed their AF_XDP sockets.
    released: AtomicUsize,
    /// When draining ends (CLOCK_MONOTONIC ns).
    deadline_ns: AtomicU64,
}

const L4_OFF: u8 = 1;
const DRAIN: u8 = 2;

impl Leaving {
    /// Whether the workers are to close their AF_XDP sockets (one relaxed load: read once per
    /// pass of a worker's loop, beside its stop flag).
    #[inline]
    pub(crate) fn l4_off(&self) -> bool {
        self.phase.load(Ordering::Relaxed) >= L4_OFF
    }

    /// A worker closed its AF_XDP sockets.
    pub(crate) fn released_one(&self) {
        self.released.fetch_add(1, Ordering::Release);
    }

    /// `Some(deadline)` once draining has begun.
    pub(crate) fn drain_deadline_ns(&self) -> Option<u64> {
        // Acquire: pairs with the Release store of the phase in `drain`, after the deadline.
        (self.phase.load(Ordering::Acquire) == DRAIN).then(|| self.deadline_ns.load(Ordering::Relaxed))
    }

    fn drain(&self, deadline_ns: u64) {
        self.deadline_ns.store(deadline_ns, Ordering::Relaxed);
        self.phase.store(DRAIN, Ordering::Release);
    }
}

/// The server's progress, as the main thread and the server thread see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Serving,
    /// A new gateway asked for the L4 part.
    ReleaseAsked,
    /// The main thread released it.
    Released,
    /// The new gateway is ready: drain.
    Drain,
}

#[derive(Debug)]
struct Server {
    step: Mutex<Step>,
    changed: Condvar,
    offer: OfferCell,
    drain: Duration,
}

impl Server {
    fn set(&self, s: Step) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.changed.notify_all();
    }

    fn step(&self) -> Step {
        *self.step.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A gateway's end of the handover: the server it runs for the next gateway, and, when it took
/// over from an old one, the `ready` it owes it.
#[derive(Debug)]
pub(crate) struct Handover {
    path: PathBuf,
    server: Arc<Server>,
    /// `ready` to send once this gateway's workers serve the listeners taken.
    owed: Option<Taken>,
    /// The server thread, once started.
    thread: Option<JoinHandle<()>>,
    /// The socket file as bound: removed at exit only while it is still this one.
    bound: Option<(u64, u64)>,
    release_asked: Arc<AtomicBool>,
}

impl Handover {
    /// For a gateway at `path` offering what `offer` holds; `taken`: what it took over.
    pub(crate) fn new(path: PathBuf, offer: OfferCell, taken: Option<Taken>, drain: Duration) -> Handover {
        let server =
            Arc::new(Server { step: Mutex::new(Step::Serving), changed: Condvar::new(), offer, drain });
        let mut h = Handover {
            path,
            server,
            owed: taken,
            thread: None,
            bound: None,
            release_asked: Arc::new(AtomicBool::new(false)),
        };
        if h.owed.is_none() {
            h.serve();
        }
        h
    }

    /// Whether a new gateway asked this one to release its L4 part (the supervisor's loop ends).
    pub(crate) fn release_asked(&self) -> bool {
        self.release_asked.load(Ordering::Relaxed)
    }

    /// Called by the main thread's loop: once `serving()` says this gateway's workers serve the
    /// listeners taken over, tells the old gateway, and starts this one's server.
    pub(crate) fn poll(&mut self, serving: impl FnOnce() -> bool) {
        if self.owed.is_none() || !serving() {
            return;
        }
        if let Some(t) = self.owed.take() {
            match t.ready() {
                Ok(line) => info!("handover: the old gateway is {}", line),
                Err(e) => warn!("handover: telling the old gateway this one is ready: {e}"),
            }
        }
        self.serve();
    }

    /// Listens on the handover socket, in a thread of its own.
    fn serve(&mut self) {
        match self.bind() {
            Ok(listener) => {
                let server = Arc::clone(&self.server);
                let asked = Arc::clone(&self.release_asked);
                let path = self.path.clone();
                let bound = self.bound;
                let t = std::thread::Builder::new()
                    .name("sluice-handover".into())
                    .spawn(move || run_server(&listener, &server, &asked, &path, bound));
                match t {
                    Ok(t) => {
                        info!("handover: listening on {} for the next gateway", self.path.display());
                        self.thread = Some(t);
                    }
                    Err(e) => {
                        warn!("handover: no server thread ({e}); an upgrade will not take the listeners over")
                    }
                }
            }
            Err(e) => warn!(
                "handover: cannot listen on {}: {e}; an upgrade will not take the listeners over",
                self.path.display()
            ),
        }
    }

    /// Binds the handover socket: 0600, in a directory made 0700 if it is not there. A file
    /// already at the path is removed first (a gateway that died left it, or the old gateway
    /// has let it go).
    fn bind(&mut self) -> Result<OwnedFd, Error> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|err| Error::Io { step: "creating its directory", err })?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_dir() => return Err(bad("a directory is there")),
            Ok(_) => std::fs::remove_file(&self.path)
                .map_err(|err| Error::Io { step: "removing the old file", err })?,
            Err(_) => {}
        }
        let sock = rnet::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
            .map_err(Error::io("socket"))?;
        let addr = SocketAddrUnix::new(&self.path).map_err(Error::io("handover socket path"))?;
        rnet::bind(&sock, &addr).map_err(Error::io("bind"))?;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| Error::Io { step: "chmod", err })?;
        rnet::listen(&sock, 4).map_err(Error::io("listen"))?;
        self.bound = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        Ok(sock)
    }

    /// The old gateway's part, once its supervisor returned because a new gateway asked for
    /// the L4 part: the workers close their AF_XDP sockets and flow journals, the XDP programs
    /// are left holding the traffic (as at a stop), the new gateway is told; then, once it is ready, the workers drain; this
    /// returns when they are done (or at a stop signal, or when the workers ended).
    pub(crate) fn leave(
        &mut self,
        steering: &mut Vec<Steering>,
        leaving: &Leaving,
        stop: &AtomicBool,
        workers: &[JoinHandle<()>],
    ) {
        info!("handover: a new gateway takes over; stopping L4 (AF_XDP, XDP), L7 goes on accepting");
        leaving.phase.store(L4_OFF, Ordering::Relaxed);
        let until = Instant::now() + Duration::from_secs(2);
        while leaving.released.load(Ordering::Acquire) < workers.len()
            && Instant::now() < until
            && !workers.iter().all(JoinHandle::is_finished)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        // As at a stop: the programs stay attached (through netlink), holding the service
        // traffic until the new gateway's replace them (docs/restarts.md); the workers have let
        // go of their flow journals, which the new gateway reads before it binds the queues.
        steering.clear();
        self.server.set(Step::Released);
        loop {
            if stop.load(Ordering::Relaxed) || workers.iter().all(JoinHandle::is_finished) {
                return;
            }
            if self.server.step() == Step::Drain {
                // The server let the socket file go: whatever is at the path now is the new
                // gateway's (its inode number may even be the old one's).
                self.bound = None;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let deadline = sluice_sys::monotonic_ns().saturating_add(self.server.drain.as_nanos() as u64);
        leaving.drain(deadline);
        info!("handover: the new gateway serves; draining for up to {} s", self.server.drain.as_secs());
        while !stop.load(Ordering::Relaxed) && !workers.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        // The socket file, unless it is another gateway's now.
        let now = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if self.bound.is_some() && now == self.bound {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The handover server: one new gateway at a time, until one is ready.
fn run_server(
    listener: &OwnedFd,
    server: &Server,
    asked: &AtomicBool,
    path: &Path,
    bound: Option<(u64, u64)>,
) {
    loop {
        let conn = match rnet::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => continue,
            Err(e) => {
                error!(
                    "handover: accept on {}: {e}; no further upgrade can take the listeners over",
                    path.display()
                );
                return;
            }
        };
        match serve_one(conn.as_fd(), server, asked) {
            Ok(()) => {
                // Let the path go before saying so (the new gateway binds it next): only while
                // the file there is still the one bound.
                let now = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
                if bound.is_some() && now == bound {
                    let _ = std::fs::remove_file(path);
                }
                let line = format!("draining {} {}\n", std::process::id(), server.drain.as_secs());
                if let Err(e) = send(conn.as_fd(), &line, &[]) {
                    warn!("handover: {e}");
                }
                return;
            }
            Err(e) if server.step() == Step::Released => error!(
                "handover: {e}; the new gateway went away after this one stopped its L4 part: this one keeps \
                 serving L7 and waits for the next new gateway"
            ),
            Err(e) => warn!("handover: {e}; this gateway goes on serving"),
        }
    }
}

/// One new gateway's conversation; `Ok` once it is ready (the caller answers `draining`).
fn serve_one(conn: BorrowedFd<'_>, server: &Server, asked: &AtomicBool) -> Result<(), Error> {
    check_peer(conn)?;
    set_timeout(conn, Some(STEP))?;
    let (text, _) = recv(conn, "hello")?;
    let line = one_line(&text)?;
    if line != format!("{MAGIC} hello") {
        let said = format!("error this gateway speaks {MAGIC}; got {:?}\n", clip(line));
        let _ = send(conn, &said, &[]);
        return Err(bad(format!("a new gateway said {:?}", clip(line))));
    }
    // A snapshot: the main thread may change the offer meanwhile (a new table generation);
    // what is sent is consistent.
    let (listeners, addresses): (Vec<(Described, Arc<TcpListener>)>, Vec<IpAddr>) = {
        let o = server.offer.lock().unwrap_or_else(|e| e.into_inner());
        (o.listeners.clone(), o.addresses.clone())
    };
    send(conn, &offer_line(listeners.len(), &addresses), &[])?;
    for chunk in listeners.chunks(BATCH) {
        let items: Vec<Described> = chunk.iter().map(|(d, _)| d.clone()).collect();
        let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, l)| l.as_fd()).collect();
        send(conn, &batch_text(&items), &fds)?;
    }
    send(conn, "end\n", &[])?;
    info!("handover: offered {} listener(s) to a new gateway", listeners.len());
    let (text, _) = recv(conn, "release-l4")?;
    if one_line(&text)? != "release-l4" {
        return Err(bad(format!("expected `release-l4`, got {:?}", clip(&text))));
    }
    if server.step() == Step::Serving {
        server.set(Step::ReleaseAsked);
        asked.store(true, Ordering::Relaxed);
    }
    {
        let step = server.step.lock().unwrap_or_else(|e| e.into_inner());
        let (step, _) = server
            .changed
            .wait_timeout_while(step, STEP, |s| *s == Step::ReleaseAsked)
            .unwrap_or_else(|e| e.into_inner());
        if *step != Step::Released {
            return Err(bad("this gateway did not release its L4 part in time"));
        }
    }
    send(conn, "l4-released\n", &[])?;
    // The new gateway starts its workers now: no limit on the wait (it goes away or says ready).
    set_timeout(conn, None)?;
    let (text, _) = recv(conn, "ready")?;
    if one_line(&text)? != "ready" {
        return Err(bad(format!("expected `ready`, got {:?}", clip(&text))));
    }
    server.set(Step::Drain);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        rnet::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap()
    }

    #[test]
    fn offers_and_batches_round_trip() {
        let addrs: Vec<IpAddr> = vec!["198.18.0.9".parse().unwrap(), "2001:db8::9".parse().unwrap()];
        assert_eq!(parse_offer(&offer_line(7, &addrs)).unwrap(), (7, addrs));
        assert_eq!(parse_offer(&offer_line(0, &[])).unwrap(), (0, vec![]));
        let items = vec![
            Described { addr: "198.18.0.9:80".parse().unwrap(), tls: false, slot: 0 },
            Described { addr: "[2001:db8::9]:443".parse().unwrap(), tls: true, slot: 3 },
        ];
        assert_eq!(parse_batch(&batch_text(&items), 2).unwrap(), items);
    }

    #[test]
    fn hostile_offers_and_batches_are_errors_not_panics() {
        for bad in [
            "",
            "\n",
            "SLUICE-HANDOVER/2 offer listeners=1 addresses=\n",
            "SLUICE-HANDOVER/1 offer listeners=99999 addresses=\n",
            "SLUICE-HANDOVER/1 offer listeners=-1 addresses=\n",
            "SLUICE-HANDOVER/1 offer listeners=1 addresses=1.2.3\n",
            "SLUICE-HANDOVER/1 offer listeners=1\n",
            "SLUICE-HANDOVER/1 offer listeners=1 addresses= x\n",
            "SLUICE-HANDOVER/1 offer listeners=1 addresses=\nmore\n",
        ] {
            assert!(parse_offer(bad).is_err(), "{bad:?}");
        }
        for (bad, fds) in [
            ("batch 1\n198.18.0.9:80 http 0\n", 2),
            ("batch 2\n198.18.0.9:80 http 0\n", 2),
            ("batch 0\n", 0),
            ("batch 33\n", 33),
            ("batch 1\n198.18.0.9 http 0\n", 1),
            ("batch 1\n198.18.0.9:0 http 0\n", 1),
            ("batch 1\n198.18.0.9:80 ftp 0\n", 1),
            ("batch 1\n198.18.0.9:80 http 4096\n", 1),
            ("batch 1\n198.18.0.9:80 http 0 extra\n", 1),
            ("batch 1\n198.18.0.9:80 http 0", 1),
            ("batch x\n", 1),
        ] {
            assert!(parse_batch(bad, fds).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listeners_travel_with_their_descriptions_and_are_checked() {
        let (a, b) = pair();
        let l = sluice_proxy::bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = l.local_addr().unwrap();
        let d = Described { addr, tls: true, slot: 1 };
        send(a.as_fd(), &batch_text(std::slice::from_ref(&d)), &[l.as_fd()]).unwrap();
        let (text, fds) = recv(b.as_fd(), "a batch").unwrap();
        let items = parse_batch(&text, fds.len()).unwrap();
        assert_eq!(items, std::slice::from_ref(&d));
        let got = check_listener(fds.into_iter().next().unwrap(), &items[0]).unwrap();
        assert_eq!(got.local_addr().unwrap(), addr);

        // A socket that is not what its line says.
        let other = Described { addr: "127.0.0.1:1".parse().unwrap(), ..d.clone() };
        let dup = l.try_clone().unwrap();
        assert!(check_listener(OwnedFd::from(dup), &other).is_err());
        let (c, _d) = pair();
        assert!(check_listener(c, &d).is_err(), "a Unix socket");
        let not_listening = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ud = Described { addr: not_listening.local_addr().unwrap(), ..d.clone() };
        assert!(check_listener(OwnedFd::from(not_listening), &ud).is_err(), "a UDP socket");
        // Without SO_REUSEPORT.
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let pd = Described { addr: plain.local_addr().unwrap(), ..d };
        assert!(check_listener(OwnedFd::from(plain), &pd).is_err());
    }

    #[test]
    fn an_error_line_and_a_closed_peer_are_errors() {
        let (a, b) = pair();
        send(a.as_fd(), "error nope\n", &[]).unwrap();
        let e = recv(b.as_fd(), "x").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        drop(a);
        let e = recv(b.as_fd(), "an offer").unwrap_err().to_string();
        assert!(e.contains("ended before an offer"), "{e}");
    }

    #[test]
    fn a_whole_handover_between_two_threads() {
        let dir = std::env::temp_dir().join(format!("sluice-handover-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("h.sock");
        // Nobody there: a plain start.
        assert!(take_over(&path).unwrap().is_none());
        let l = Arc::new(sluice_proxy::bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap());
        let addr = l.local_addr().unwrap();
        let offer: OfferCell = Arc::default();
        offer.lock().unwrap().listeners =
            (0..40).map(|slot| (Described { addr, tls: false, slot }, Arc::clone(&l))).collect();
        offer.lock().unwrap().addresses = vec!["198.18.0.9".parse().unwrap()];
        let old = Handover::new(path.clone(), offer, None, Duration::from_secs(3));
        // The old gateway's main thread: releases when asked.
        let server = Arc::clone(&old.server);
        let main = std::thread::spawn(move || {
            while server.step() != Step::ReleaseAsked {
                std::thread::sleep(Duration::from_millis(1));
            }
            server.set(Step::Released);
            while server.step() != Step::Drain {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut taken = take_over(&path).unwrap().expect("an old gateway answered");
        assert!(old.release_asked());
        let (listeners, addresses) = taken.split();
        assert_eq!(listeners.len(), 40);
        assert!(listeners.iter().all(|(d, l)| d.addr == addr && l.local_addr().unwrap() == addr));
        assert_eq!(addresses, ["198.18.0.9".parse::<IpAddr>().unwrap()]);
        let said = taken.ready().unwrap();
        assert!(said.starts_with("draining "), "{said}");
        main.join().unwrap();
        // The old one let the path go.
        assert!(!path.exists());
        drop(old);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
