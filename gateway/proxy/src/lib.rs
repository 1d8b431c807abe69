//! Sluice's L7 socket driver: the listeners, client connections and upstream connections of
//! **one** worker thread, registered in that worker's `mio` reactor, around the sans-IO proxy
//! core of [`sluice_l7::proxy`].
//!
//! A worker owns one [`Proxy`]. Every socket of it is registered in the `mio::Registry` the
//! worker gives, edge-triggered, with a token from the range the worker gives (so that its
//! AF_XDP and doorbell tokens never collide). A connection lives and dies on the worker that
//! accepted it, and so do the upstream connections it opens and the keep-alive pool they
//! return to: no locks, nothing shared between workers but the listening address, which every
//! worker binds with `SO_REUSEPORT` so the kernel spreads connections over them.
//!
//! # How a worker calls it
//! ```text
//! let mut proxy = Proxy::new(ProxyConfig::default(), L7_FIRST.0..L7_FIRST.0 + 65_536);
//! proxy.set_generation(l7_table);                          // and again on every generation
//! proxy.listen(registry, "0.0.0.0:80".parse()?, None)?;     // plain HTTP
//! proxy.listen(registry, "0.0.0.0:443".parse()?, Some(tls_config))?;
//! loop {
//!     poll.poll(&mut events, Some(timeout <= 100 ms))?;
//!     let now_ns = monotonic_ns();
//!     for event in events.iter() {
//!         if proxy.owns(event.token()) { proxy.handle(registry, event, now_ns); }
//!     }
//!     proxy.tick(registry, now_ns);                          // at least every ~100 ms
//!     proxy.flush(registry, now_ns);                         // the output held back (HTTP/2)
//! }
//! ```
//!
//! # What happens on an event
//! The socket's readiness is remembered (edge-triggered: an event says "something changed"),
//! then the connection it belongs to is driven until nothing moves: read the client while the
//! core has room, write what the core has for it, carry out the core's
//! [`sluice_l7::proxy::Action`]s (take an idle upstream connection from the pool or start a
//! nonblocking connect; return one to the pool or close it), write and read the upstream.
//! Reads and writes go on until `WouldBlock` or until the core has no room, so a slow side
//! stops the other (backpressure) and an event is never needed twice.
//! An HTTP/2 client's output is the exception: it is held until [`Proxy::flush`], which the
//! worker calls after each batch of events, so that the responses of many streams leave in one
//! TLS record and one `send` (see there: under h2load, 0.13 writes per request instead of
//! 1.0, and 38 % more requests per CPU-second).
//!
//! TLS listeners wrap each accepted connection in a `rustls::ServerConnection` made from the
//! listener's `Arc<ServerConfig>`; the plaintext goes to the same core.
//!
//! HTTP/2: a connection's first bytes decide (`front.rs`): the HTTP/2 preface (after ALPN `h2`,
//! or h2c by prior knowledge) makes it a [`sluice_l7::proxy::H2Conn`], which serves each stream
//! with a core of its own (a *lane*); every upstream connection belongs to a (client, lane), and
//! each lane's is driven like an HTTP/1.1 client's. An exchange whose route's `backend-protocol`
//! is HTTP/2 (GRPC, GRPCS, H2C) gets an upstream connection with a
//! [`sluice_l7::proxy::H2Upstream`] between the core and the socket, pooled apart from the
//! HTTP/1.1 ones. [`Proxy::go_away`] starts a graceful shutdown of the HTTP/2 clients.
//!
//! # Allocation
//! Per connection: the core's buffers, the slot (the slot table grows to the most
//! connections open at once and stays), the TLS state. Per request: nothing in the driver;
//! the access log, when on, formats each line into one reused `String`.
//!
//! # Known limits
//! - Timers are a scan of the connections on every [`Proxy::tick`] (fine for thousands,
//!   a timer wheel later).
//! - Upstreams are HTTP/1.1, or HTTP/2 in clear (GRPC, H2C; one stream at a time per
//!   connection); no TLS to upstreams (`backend-protocol: HTTPS` and `GRPCS` later).
//! - An HTTP/2 client's lanes are all looked at on each of its events (at most
//!   SETTINGS_MAX_CONCURRENT_STREAMS, 100).
//! - A closing client connection is closed once its last response is written; bytes that
//!   arrive later may make the kernel reset it (no lingering close beyond five seconds of
//!   draining).
//!
//! Not `unsafe`: `socket2` sets `SO_REUSEPORT` and `IP_FREEBIND`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rustls::{ServerConfig, ServerConnection};
use socket2::{Domain, Protocol, Socket, Type};

use sluice_l7::proxy::{Action, Config, Context, Generation, H2Upstream, Pool, UpstreamError};
use sluice_model::l7::L7Table;

pub use sluice_l7::proxy::{AccessRecord, H2Stats, RouteMeter, Stats as CoreStats};

mod front;
use front::Front;

/// A line sink for the access log.
pub type LineSink = Box<dyn FnMut(&str)>;

/// How a worker's proxy is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The core's limits and timeouts (ingress-nginx's defaults).
    pub core: Config,
    /// Write one access-log line per request to the sink given with
    /// [`Proxy::set_access_log`].
    pub access_log: bool,
    /// The listen backlog.
    pub backlog: i32,
    /// Seeds the X-Request-ID generator (0: seeded from the process's hash keys).
    pub seed: u64,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig { core: Config::DEFAULT, access_log: false, backlog: 1024, seed: 0 }
    }
}

/// A snapshot of a worker proxy's counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections open.
    pub clients: usize,
    /// Upstream connections open (attached and idle).
    pub upstreams: usize,
    /// Of those, idle in the pool.
    pub pooled: usize,
    /// Client connections accepted.
    pub accepted: u64,
    /// Client connections refused because the token range was full.
    pub refused: u64,
    /// Upstream connections opened (not taken from the pool).
    pub upstream_connects: u64,
    /// Requests that took a pooled upstream connection.
    pub upstream_reuses: u64,
    /// TLS handshakes or records that failed.
    pub tls_errors: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// Of those, resumed sessions (a ticket).
    pub tls_resumed: u64,
    /// Writes to client sockets (system calls that wrote something): with the responses,
    /// shows how well HTTP/2 responses are gathered ([`Proxy::flush`]).
    pub client_writes: u64,
    /// The core's counters: requests, responses per status class, buffers.
    pub core: CoreStats,
    /// HTTP/2 clients' counters (the `l7_h2_*` counters).
    pub h2: H2Stats,
}

/// A listening socket.
struct Listener {
    socket: TcpListener,
    port: u16,
    tls: Option<Arc<ServerConfig>>,
}

/// A client connection.
struct Client {
    stream: TcpStream,
    front: Front,
    tls: Option<Box<ServerConnection>>,
    /// The upstream connection of lane 0 (an HTTP/1.1 client's only one).
    upstream: Option<usize>,
    /// The upstream connections of an HTTP/2 client's other lanes (index: lane - 1).
    lanes: Vec<Option<usize>>,
    readable: bool,
    writable: bool,
    eof: bool,
    /// An event said the peer closed (or the socket failed): read to the end, not only until a
    /// short read (see [`read_exhausted`]).
    hup: bool,
    /// Its TLS handshake completed (and was counted).
    handshaken: bool,
    /// Output held back until [`Proxy::flush`] (an HTTP/2 client's: see there); it is on the
    /// proxy's list of clients to flush.
    dirty: bool,
}

/// An upstream connection: attached to a client (`owner`) or idle in the pool.
struct UpstreamConn {
    stream: TcpStream,
    addr: SocketAddr,
    /// The client slot and lane it serves.
    owner: Option<(usize, usize)>,
    connected: bool,
    /// Requests it finished.
    uses: u32,
    readable: bool,
    writable: bool,
    /// An event said the upstream closed (or the socket failed): read to the end.
    hup: bool,
    /// It failed or closed: the core was told; only a Release is expected.
    dead: bool,
    /// It speaks HTTP/2 (`backend-protocol` GRPC, GRPCS, H2C): the converter between the
    /// core's HTTP/1.1 bytes and the socket, kept with it in the pool.
    h2: Option<Box<H2Upstream>>,
}

impl Client {
    /// The upstream slot of `lane`.
    fn lane(&mut self, lane: usize) -> &mut Option<usize> {
        if lane == 0 {
            return &mut self.upstream;
        }
        if self.lanes.len() < lane {
            self.lanes.resize(lane, None);
        }
        &mut self.lanes[lane - 1]
    }
}

enum Slot {
    Free,
    Listener(Listener),
    Client(Box<Client>),
    Upstream(UpstreamConn),
}

/// One worker thread's L7 proxy. See the crate documentation.
pub struct Proxy {
    config: ProxyConfig,
    ctx: Context,
    base: usize,
    capacity: usize,
    slots: Vec<Slot>,
    free: Vec<usize>,
    pool: Pool<usize>,
    /// Idle HTTP/2 upstream connections (a separate pool: an endpoint may be reached both ways).
    pool_h2: Pool<usize>,
    stats: ProxyStats,
    /// The time of the last event or tick (for what happens between them: a new generation).
    now_ns: u64,
    /// Clients whose output waits for [`Proxy::flush`].
    dirty: Vec<usize>,
    /// In [`Proxy::flush`]: every client's output is written at once.
    flushing: bool,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("tokens", &(self.base..self.base + self.capacity))
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy whose sockets take tokens from `tokens`, with an empty generation (404 for all)
    /// and no listener.
    pub fn new(config: ProxyConfig, tokens: Range<usize>) -> Proxy {
        let seed = if config.seed != 0 {
            config.seed
        } else {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(tokens.start);
            h.finish()
        };
        Proxy {
            config,
            ctx: Context::new(config.core, seed),
            base: tokens.start,
            capacity: tokens.end.saturating_sub(tokens.start),
            slots: Vec::new(),
            free: Vec::new(),
            pool: Pool::new(config.core.pool),
            pool_h2: Pool::new(config.core.pool),
            stats: ProxyStats::default(),
            now_ns: 0,
            dirty: Vec::new(),
            flushing: false,
        }
    }

    /// Shares the gateway's key and limit table ([`sluice_l7::proxy::Shared`]) with this
    /// worker's proxy: every worker of a gateway gets the same.
    pub fn set_shared(&mut self, shared: sluice_l7::proxy::Shared) {
        self.ctx.set_shared(shared);
    }

    /// Requests arriving from now on are routed by this generation's L7 table (the router and
    /// the endpoint index are built here, once); requests in flight keep theirs. Idle pooled
    /// connections to endpoints it no longer has are closed.
    pub fn set_generation(&mut self, registry: &Registry, l7: Arc<L7Table>) {
        let generation = Rc::new(Generation::new(&l7));
        let mut dead = Vec::new();
        self.pool.expire(0, |a| generation.is_live(a), |u| dead.push(u));
        self.pool_h2.expire(0, |a| generation.is_live(a), |u| dead.push(u));
        for u in dead {
            self.close_upstream(registry, u);
        }
        self.ctx.set_generation(generation);
        // HTTP/2 clients whose streams in flight lost their route are sent GOAWAY.
        let now_ns = self.now_ns;
        for i in 0..self.slots.len() {
            if let Slot::Client(c) = &mut self.slots[i]
                && let Front::H2(h2) = &mut c.front
            {
                h2.generation_changed(&mut self.ctx, now_ns);
                self.drive(registry, i, now_ns);
            }
        }
        self.flush(registry, now_ns);
    }

    /// Starts a graceful shutdown of every HTTP/2 client connection (GOAWAY: the streams in
    /// flight finish, no new one is taken) and closes the listeners. Returns the streams still
    /// in flight, to wait for (see [`Proxy::h2_streams`]).
    pub fn go_away(&mut self, registry: &Registry, now_ns: u64) -> usize {
        for i in 0..self.slots.len() {
            match &mut self.slots[i] {
                Slot::Listener(l) => {
                    let _ = registry.deregister(&mut l.socket);
                    self.free_slot(i);
                }
                Slot::Client(c) => {
                    if let Front::H2(h2) = &mut c.front {
                        h2.go_away(&mut self.ctx, now_ns);
                        self.drive(registry, i, now_ns);
                    }
                }
                _ => {}
            }
        }
        self.flush(registry, now_ns);
        self.h2_streams()
    }

    /// HTTP/2 streams in flight on every client connection.
    pub fn h2_streams(&self) -> usize {
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Client(c) => match &c.front {
                    Front::H2(h2) => h2.open_streams(),
                    _ => 0,
                },
                _ => 0,
            })
            .sum()
    }

    /// Sends one line per request to `sink`, when [`ProxyConfig::access_log`] is on:
    /// `client host "request line" status body_bytes upstream request_time upstream_time`
    /// (times in seconds with millisecond precision, `-` where there is none). Connections
    /// accepted afterwards log.
    pub fn set_access_log(&mut self, sink: LineSink) {
        if !self.config.access_log {
            return;
        }
        let mut sink = sink;
        let mut line = String::with_capacity(256);
        self.ctx.set_access_log(Some(Box::new(move |r: &AccessRecord<'_>| {
            line.clear();
            let secs = |ns: u64| ns as f64 / 1e9;
            let _ = write!(
                line,
                "{} {} \"{}\" {} {} ",
                r.client.ip(),
                if r.host.is_empty() { "-" } else { r.host },
                r.request_line,
                r.status,
                r.body_bytes
            );
            let _ = match r.upstream {
                Some(u) => write!(line, "{u} "),
                None => write!(line, "- "),
            };
            let _ = write!(line, "{:.3} ", secs(r.request_time_ns));
            let _ = match r.upstream_time_ns {
                Some(t) => write!(line, "{:.3}", secs(t)),
                None => write!(line, "-"),
            };
            sink(&line);
        })));
    }

    /// Listens on `addr` (`tls`: HTTPS with this configuration) with a nonblocking
    /// `SO_REUSEPORT` socket — every worker has its own on the same address — with
    /// `IP_FREEBIND`, so an address not yet on an interface can be bound. Returns the address
    /// bound (its port, when `addr`'s is 0).
    pub fn listen(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_only_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(self.config.backlog)?;
        let mut listener = TcpListener::from_std(socket.into());
        let local = listener.local_addr()?;
        let Some(i) = self.alloc() else {
            return Err(io::Error::other("no token left in the proxy's range for a listener"));
        };
        registry.register(&mut listener, Token(self.base + i), Interest::READABLE)?;
        self.slots[i] = Slot::Listener(Listener { socket: listener, port: local.port(), tls });
        Ok(local)
    }

    /// Stops listening on `addr` (as [`Proxy::listen`] returned it): the socket is closed, so
    /// connections not yet accepted are reset; connections already accepted go on. Returns
    /// whether there was such a listener.
    pub fn unlisten(&mut self, registry: &Registry, addr: SocketAddr) -> bool {
        let found = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Listener(l) if l.socket.local_addr().is_ok_and(|a| a == addr)));
        let Some(i) = found else { return false };
        if let Slot::Listener(l) = &mut self.slots[i] {
            // Fails only if it is not registered, which closing settles anyway.
            let _ = registry.deregister(&mut l.socket);
        }
        self.free_slot(i);
        true
    }

    /// New TLS handshakes on every TLS listener use `config` (after a certificate change);
    /// connections already open keep theirs.
    pub fn set_tls(&mut self, config: Arc<ServerConfig>) {
        for s in &mut self.slots {
            if let Slot::Listener(l) = s
                && l.tls.is_some()
            {
                l.tls = Some(Arc::clone(&config));
            }
        }
    }

    /// Whether `token` is one of this proxy's.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + self.capacity
    }

    /// Counters, for metrics.
    pub fn stats(&self) -> ProxyStats {
        let mut s = self.stats;
        s.core = *self.ctx.stats();
        s.h2 = *self.ctx.h2_stats();
        s.pooled = self.pool.len() + self.pool_h2.len();
        s
    }

    /// The counts per route (`sluice_model::route_stats`), to publish and reset.
    pub fn routes_mut(&mut self) -> &mut RouteMeter {
        self.ctx.routes_mut()
    }

    /// Handles one readiness event for a token this proxy [`Proxy::owns`].
    pub fn handle(&mut self, registry: &Registry, event: &Event, now_ns: u64) {
        self.now_ns = now_ns;
        let Some(i) = event.token().0.checked_sub(self.base) else { return };
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let hup = event.is_read_closed() || event.is_error();
        let writable = event.is_writable() || event.is_write_closed() || event.is_error();
        match self.slots.get_mut(i) {
            Some(Slot::Listener(_)) => self.accept(registry, i, now_ns),
            Some(Slot::Client(c)) => {
                c.readable |= readable;
                c.hup |= hup;
                c.writable |= writable;
                self.drive(registry, i, now_ns);
            }
            Some(Slot::Upstream(u)) => {
                u.readable |= readable;
                u.hup |= hup;
                u.writable |= writable;
                match u.owner {
                    Some((c, _)) => self.drive(registry, c, now_ns),
                    None => self.idle_event(registry, i),
                }
            }
            Some(Slot::Free) | None => {}
        }
    }

    /// Writes the output held back during a batch of events: call after every batch of
    /// [`Proxy::handle`] calls (one `epoll_wait`'s events) and after [`Proxy::tick`].
    ///
    /// An HTTP/2 client's streams are answered as their upstreams answer, each upstream
    /// connection with an event of its own. Written at once, every response would be a TLS
    /// record, a `send` and a TCP segment of its own (and an ACK, and h2load's next request in
    /// a segment of its own); held until the batch's events are handled, the responses of one
    /// wake-up go out together: one record, one `send`. The delay is the batch's handling
    /// time. HTTP/1.1 clients are written at once (one response in flight each: nothing to
    /// gather).
    pub fn flush(&mut self, registry: &Registry, now_ns: u64) {
        self.flushing = true;
        while let Some(i) = self.dirty.pop() {
            if let Slot::Client(c) = &mut self.slots[i]
                && c.dirty
            {
                c.dirty = false;
                self.drive(registry, i, now_ns);
            }
        }
        self.flushing = false;
    }

    /// Runs the timers (client head and idle timeouts, upstream connect and read timeouts,
    /// the pool's idle time). Call at least every ~100 ms, then [`Proxy::flush`].
    pub fn tick(&mut self, registry: &Registry, now_ns: u64) {
        // The wall clock against the caller's monotonic one, for affinity cookies' dates.
        let unix_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.ctx.set_wall_clock(now_ns, unix_s);
        self.now_ns = now_ns;
        for i in 0..self.slots.len() {
            if let Slot::Client(c) = &mut self.slots[i] {
                c.front.tick(&mut self.ctx, now_ns);
                self.drive(registry, i, now_ns);
            }
        }
        self.ctx.tick(now_ns);
        let generation = Rc::clone(self.ctx.generation());
        let mut dead = Vec::new();
        self.pool.expire(now_ns, |a| generation.is_live(a), |u| dead.push(u));
        self.pool_h2.expire(now_ns, |a| generation.is_live(a), |u| dead.push(u));
        for u in dead {
            self.close_upstream(registry, u);
        }
    }

    fn alloc(&mut self) -> Option<usize> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.slots.len() < self.capacity {
            self.slots.push(Slot::Free);
            return Some(self.slots.len() - 1);
        }
        None
    }

    fn free_slot(&mut self, i: usize) {
        self.slots[i] = Slot::Free;
        self.free.push(i);
    }

    fn accept(&mut self, registry: &Registry, i: usize, now_ns: u64) {
        loop {
            let Slot::Listener(l) = &self.slots[i] else { return };
            let (stream, peer) = match l.socket.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ECONNABORTED and the like: that connection is gone, others may follow;
                // EMFILE: wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => return,
            };
            let (port, tls_config) = (l.port, l.tls.clone());
            let tls = match tls_config.map(ServerConnection::new) {
                None => None,
                Some(Ok(mut t)) => {
                    t.set_buffer_limit(Some(64 * 1024));
                    Some(Box::new(t))
                }
                Some(Err(_)) => {
                    self.stats.tls_errors += 1;
                    continue;
                }
            };
            let Some(j) = self.alloc() else {
                self.stats.refused += 1;
                continue;
            };
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            if registry
                .register(&mut stream, Token(self.base + j), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                self.free.push(j);
                continue;
            }
            let https = tls.is_some();
            self.slots[j] = Slot::Client(Box::new(Client {
                stream,
                front: Front::new(peer, port, https, now_ns),
                tls,
                upstream: None,
                lanes: Vec::new(),
                readable: true,
                writable: true,
                eof: false,
                hup: false,
                handshaken: false,
                dirty: false,
            }));
            self.stats.accepted += 1;
            self.stats.clients += 1;
            self.drive(registry, j, now_ns);
        }
    }

    /// Moves bytes for client `i` and its upstream until nothing moves.
    fn drive(&mut self, registry: &Registry, i: usize, now_ns: u64) {
        for _ in 0..1024 {
            let mut moved = self.client_io(i, now_ns);
            moved |= self.actions(registry, i, now_ns);
            let Slot::Client(c) = &self.slots[i] else { return };
            // Every lane that may have an upstream (an HTTP/1.1 client has lane 0 only).
            let lanes = 1 + c.lanes.len();
            for lane in 0..lanes {
                moved |= self.upstream_io(i, lane, now_ns);
            }
            moved |= self.actions(registry, i, now_ns);
            let Slot::Client(c) = &mut self.slots[i] else { return };
            if c.front.is_finished() {
                self.close_client(registry, i);
                return;
            }
            if !moved {
                // Until its next event: an idle connection keeps no buffer.
                c.front.shed_idle_buffers();
                break;
            }
        }
        // Output held back for the flush (or, after 1,024 rounds, work left for it).
        let Slot::Client(c) = &mut self.slots[i] else { return };
        let held = !c.front.client_write_buf().is_empty() || c.tls.as_ref().is_some_and(|t| t.wants_write());
        if held && c.writable && matches!(c.front, Front::H2(_)) && !self.flushing && !c.dirty {
            c.dirty = true;
            self.dirty.push(i);
        }
    }

    fn client_io(&mut self, i: usize, now_ns: u64) -> bool {
        let Slot::Client(c) = &mut self.slots[i] else { return false };
        let ctx = &mut self.ctx;
        let mut moved = false;
        // An HTTP/2 client's output waits for the flush (see [`Proxy::flush`]).
        let write = self.flushing || !matches!(c.front, Front::H2(_));
        match &mut c.tls {
            None => {
                // Read.
                while c.readable && !c.eof {
                    let buf = c.front.client_read_buf();
                    if buf.is_empty() {
                        break;
                    }
                    let asked = buf.len();
                    match Raw::of(&c.stream).read(buf) {
                        Ok(0) => {
                            c.eof = true;
                            c.front.client_eof(ctx, now_ns);
                        }
                        Ok(n) => {
                            c.front.client_read(ctx, n, now_ns);
                            c.readable = !read_exhausted(n, asked, c.hup);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            c.eof = true;
                            c.front.client_failed(ctx, now_ns);
                        }
                    }
                    moved = true;
                }
                // Write.
                while write && c.writable && !c.front.client_write_buf().is_empty() {
                    match Raw::of(&c.stream).write(c.front.client_write_buf()) {
                        Ok(n) => {
                            self.stats.client_writes += 1;
                            c.front.client_wrote(ctx, n, now_ns);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            c.eof = true;
                            c.front.client_failed(ctx, now_ns);
                        }
                    }
                    moved = true;
                }
            }
            Some(tls) => {
                // Records in.
                while c.readable && !c.eof && tls.wants_read() {
                    let mut reader = Measured { stream: Raw::of(&c.stream), short: false };
                    match tls.read_tls(&mut reader) {
                        Ok(0) => {
                            c.eof = true;
                        }
                        Ok(_) => {
                            if reader.short && !c.hup {
                                c.readable = false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.readable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            c.eof = true;
                            c.front.client_failed(ctx, now_ns);
                            break;
                        }
                    }
                    moved = true;
                    if tls.process_new_packets().is_err() {
                        self.stats.tls_errors += 1;
                        // The alert rustls queued goes out with the writes below.
                        c.eof = true;
                        c.front.client_failed(ctx, now_ns);
                        break;
                    }
                    if !c.handshaken && !tls.is_handshaking() {
                        c.handshaken = true;
                        self.stats.tls_handshakes += 1;
                        if tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                            self.stats.tls_resumed += 1;
                        }
                    }
                }
                // Plaintext to the core.
                loop {
                    let buf = c.front.client_read_buf();
                    if buf.is_empty() {
                        break;
                    }
                    match tls.reader().read(buf) {
                        Ok(0) => {
                            c.eof = true;
                            c.front.client_eof(ctx, now_ns);
                            moved = true;
                            break;
                        }
                        Ok(n) => {
                            c.front.client_read(ctx, n, now_ns);
                            moved = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if c.eof {
                                c.front.client_eof(ctx, now_ns);
                            }
                            break;
                        }
                        Err(_) => {
                            c.eof = true;
                            c.front.client_eof(ctx, now_ns);
                            moved = true;
                            break;
                        }
                    }
                }
                // Plaintext from the core, then records out.
                let out = if write { c.front.client_write_buf() } else { &[] };
                if !out.is_empty()
                    && let Ok(n) = tls.writer().write(out)
                    && n > 0
                {
                    c.front.client_wrote(ctx, n, now_ns);
                    moved = true;
                }
                while write && c.writable && tls.wants_write() {
                    match tls.write_tls(&mut Raw::of(&c.stream)) {
                        Ok(_) => {
                            self.stats.client_writes += 1;
                            moved = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            c.eof = true;
                            c.front.client_failed(ctx, now_ns);
                            break;
                        }
                    }
                }
            }
        }
        moved
    }

    fn actions(&mut self, registry: &Registry, i: usize, now_ns: u64) -> bool {
        let mut moved = false;
        loop {
            let Slot::Client(c) = &mut self.slots[i] else { return moved };
            let Some((lane, action)) = c.front.poll_action() else { return moved };
            moved = true;
            match action {
                Action::Connect(addr) => self.connect(registry, i, lane, addr, now_ns),
                Action::Release { keep_alive } => {
                    let Some(u) = c.lane(lane).take() else { continue };
                    let keep = keep_alive
                        && matches!(&self.slots[u], Slot::Upstream(x)
                            if x.connected && !x.dead && x.h2.as_ref().is_none_or(|h| h.reusable()));
                    if !keep {
                        self.close_upstream(registry, u);
                        continue;
                    }
                    let Slot::Upstream(x) = &mut self.slots[u] else { continue };
                    // Edge-triggered: if the last read did not end in WouldBlock, a close that
                    // came with the response will raise no new event. Look now, or the pool
                    // would hand out a dead connection.
                    if x.readable && x.h2.is_none() {
                        let mut probe = [0u8; 1];
                        match Raw::of(&x.stream).read(&mut probe) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => x.readable = false,
                            _ => {
                                self.close_upstream(registry, u);
                                continue;
                            }
                        }
                    }
                    x.owner = None;
                    x.uses += 1;
                    let (addr, uses) = (x.addr, x.uses);
                    let pool = if x.h2.is_some() { &mut self.pool_h2 } else { &mut self.pool };
                    if let Some(u) = pool.put(addr, u, uses, now_ns) {
                        self.close_upstream(registry, u);
                    }
                }
            }
        }
    }

    fn connect(&mut self, registry: &Registry, i: usize, lane: usize, addr: SocketAddr, now_ns: u64) {
        let mut stale = Vec::new();
        let want_h2 = matches!(&self.slots[i], Slot::Client(c) if c.front.upstream_h2(lane));
        let pool = if want_h2 { &mut self.pool_h2 } else { &mut self.pool };
        let pooled = pool.take(&addr, now_ns, |u| stale.push(u));
        for u in stale {
            self.close_upstream(registry, u);
        }
        if let Some((u, _)) = pooled {
            if let Slot::Upstream(x) = &mut self.slots[u] {
                // Its readiness is known: it went into the pool with nothing to read (the
                // probe at release), and an event since would have taken it out
                // (`idle_event`). A read now would only say EAGAIN.
                x.owner = Some((i, lane));
                x.writable = true;
            }
            self.stats.upstream_reuses += 1;
            if let Slot::Client(c) = &mut self.slots[i] {
                *c.lane(lane) = Some(u);
                c.front.upstream_connected(&mut self.ctx, lane, true, now_ns);
            }
            return;
        }
        let opened = match self.alloc() {
            None => None,
            Some(u) => match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let _ = stream.set_nodelay(true);
                    match registry.register(
                        &mut stream,
                        Token(self.base + u),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => {
                            self.slots[u] = Slot::Upstream(UpstreamConn {
                                stream,
                                addr,
                                owner: Some((i, lane)),
                                connected: false,
                                uses: 0,
                                readable: false,
                                writable: false,
                                hup: false,
                                dead: false,
                                h2: want_h2.then(|| Box::new(H2Upstream::new())),
                            });
                            self.stats.upstreams += 1;
                            self.stats.upstream_connects += 1;
                            Some(u)
                        }
                        Err(_) => {
                            self.free.push(u);
                            None
                        }
                    }
                }
                Err(_) => {
                    self.free.push(u);
                    None
                }
            },
        };
        let Slot::Client(c) = &mut self.slots[i] else { return };
        match opened {
            Some(u) => *c.lane(lane) = Some(u),
            None => c.front.upstream_failed(&mut self.ctx, lane, UpstreamError::Connect, now_ns),
        }
    }

    fn upstream_io(&mut self, i: usize, lane: usize, now_ns: u64) -> bool {
        let Slot::Client(c) = &mut self.slots[i] else { return false };
        let Some(u) = *c.lane(lane) else { return false };
        let (a, b) = (i.min(u), i.max(u));
        let (lo, hi) = self.slots.split_at_mut(b);
        let (cs, us) = if i < u { (&mut lo[a], &mut hi[0]) } else { (&mut hi[0], &mut lo[a]) };
        let (Slot::Client(c), Slot::Upstream(x)) = (cs, us) else { return false };
        let ctx = &mut self.ctx;
        if x.dead {
            return false;
        }
        let mut moved = false;
        if !x.connected {
            if !(x.writable || x.readable) {
                return false;
            }
            match x.stream.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Connect, now_ns);
                    return true;
                }
            }
            match x.stream.peer_addr() {
                Ok(_) => {
                    x.connected = true;
                    c.front.upstream_connected(ctx, lane, false, now_ns);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    x.writable = false;
                    x.readable = false;
                    return false;
                }
                Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Connect, now_ns);
                    return true;
                }
            }
        }
        if x.h2.is_some() {
            return h2_upstream_io(c, x, lane, ctx, now_ns) || moved;
        }
        while x.writable && !x.dead && !c.front.upstream_write_buf(lane).is_empty() {
            match Raw::of(&x.stream).write(c.front.upstream_write_buf(lane)) {
                Ok(n) => c.front.upstream_wrote(ctx, lane, n, now_ns),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => x.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
                }
            }
            moved = true;
        }
        while x.readable && !x.dead {
            let buf = c.front.upstream_read_buf(lane);
            if buf.is_empty() {
                break;
            }
            let asked = buf.len();
            match Raw::of(&x.stream).read(buf) {
                Ok(0) => {
                    x.dead = true;
                    c.front.upstream_eof(ctx, lane, now_ns);
                }
                Ok(n) => {
                    c.front.upstream_read(ctx, lane, n, now_ns);
                    x.readable = !read_exhausted(n, asked, x.hup);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => x.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
                }
            }
            moved = true;
        }
        moved
    }

    /// An event on an idle pooled connection: the upstream closed it (or sent something it
    /// should not have). Either way it leaves the pool.
    fn idle_event(&mut self, registry: &Registry, u: usize) {
        let Slot::Upstream(x) = &mut self.slots[u] else { return };
        if !x.readable {
            return;
        }
        if let Some(h2) = &mut x.h2 {
            // HTTP/2 servers talk on idle connections (SETTINGS, PING, WINDOW_UPDATE, GOAWAY):
            // the frames are read and answered; the connection leaves the pool when it cannot
            // take another exchange.
            let mut open = true;
            loop {
                let buf = h2.read_buf();
                if buf.is_empty() {
                    break;
                }
                match Raw::of(&x.stream).read(buf) {
                    Ok(0) => open = false,
                    Ok(n) => {
                        h2.read(n, self.now_ns);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => x.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => open = false,
                }
                break;
            }
            while open && !h2.write_buf().is_empty() {
                match Raw::of(&x.stream).write(h2.write_buf()) {
                    Ok(n) => h2.wrote(n),
                    Err(_) => break,
                }
            }
            if !open || !h2.reusable() {
                let addr = x.addr;
                self.pool_h2.remove(&addr, &u);
                self.close_upstream(registry, u);
            }
            return;
        }
        let mut probe = [0u8; 1];
        match Raw::of(&x.stream).read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => x.readable = false,
            _ => {
                let addr = x.addr;
                self.pool.remove(&addr, &u);
                self.close_upstream(registry, u);
            }
        }
    }

    fn close_upstream(&mut self, registry: &Registry, u: usize) {
        if let Slot::Upstream(x) = &mut self.slots[u] {
            let _ = registry.deregister(&mut x.stream);
            self.stats.upstreams -= 1;
            self.free_slot(u);
        }
    }

    fn close_client(&mut self, registry: &Registry, i: usize) {
        let Slot::Client(c) = &mut self.slots[i] else { return };
        if let Some(tls) = &mut c.tls {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut Raw::of(&c.stream));
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        let _ = registry.deregister(&mut c.stream);
        let first = c.upstream.take();
        let more = std::mem::take(&mut c.lanes);
        for u in first.into_iter().chain(more.into_iter().flatten()) {
            self.close_upstream(registry, u);
        }
        self.stats.clients -= 1;
        self.free_slot(i);
    }
}

/// Moves an HTTP/2 upstream connection's bytes: the core's HTTP/1.1 request through the
/// converter to the socket, the socket's frames through it back to the core. Whether anything
/// moved.
fn h2_upstream_io(c: &mut Client, x: &mut UpstreamConn, lane: usize, ctx: &mut Context, now_ns: u64) -> bool {
    let UpstreamConn { stream, h2, writable, readable, hup, dead, .. } = x;
    let Some(conv) = h2.as_mut() else { return false };
    let mut moved = false;
    loop {
        let h1 = c.front.upstream_write_buf(lane);
        if h1.is_empty() {
            break;
        }
        let n = conv.send(h1);
        if n == 0 {
            break;
        }
        c.front.upstream_wrote(ctx, lane, n, now_ns);
        moved = true;
    }
    while *writable && !conv.write_buf().is_empty() {
        match Raw::of(stream).write(conv.write_buf()) {
            Ok(n) => {
                conv.wrote(n);
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                *dead = true;
                c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
                return true;
            }
        }
    }
    let mut eof = false;
    while *readable {
        let buf = conv.read_buf();
        if buf.is_empty() {
            break;
        }
        let asked = buf.len();
        match Raw::of(stream).read(buf) {
            Ok(0) => {
                eof = true;
                *readable = false;
            }
            Ok(n) => {
                conv.read(n, now_ns);
                *readable = !read_exhausted(n, asked, *hup);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                *dead = true;
                c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
                return true;
            }
        }
        moved = true;
    }
    loop {
        let out = conv.response();
        if out.is_empty() {
            break;
        }
        let buf = c.front.upstream_read_buf(lane);
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(out.len());
        buf[..n].copy_from_slice(&out[..n]);
        c.front.upstream_read(ctx, lane, n, now_ns);
        conv.took(n, now_ns);
        moved = true;
    }
    if eof {
        *dead = true;
        c.front.upstream_eof(ctx, lane, now_ns);
        moved = true;
    } else if conv.failed() && conv.response().is_empty() {
        *dead = true;
        c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
        moved = true;
    }
    moved
}

/// Whether a read of `n` bytes, when `asked` were asked for, has emptied the socket for now.
/// epoll(7): for a stream socket, a read that returns fewer bytes than asked shows the receive
/// queue is exhausted; bytes arriving later raise a new edge-triggered event. So the read that
/// would only say `EAGAIN` is saved: 2.8 of the 6.8 system calls per keep-alive HTTPS request
/// that `strace -c` counted under wrk.
/// Not when an event said the peer closed (`hup`): its end of stream came with the last event
/// and raises no new one, so reading goes on until it is seen.
fn read_exhausted(n: usize, asked: usize, hup: bool) -> bool {
    n < asked && !hup
}

/// A connected socket read and written with bare system calls (`sluice_sys`: no libc
/// cancellation-point wrapper around each).
#[derive(Clone, Copy)]
struct Raw(i32);

impl Raw {
    fn of(stream: &TcpStream) -> Raw {
        Raw(std::os::fd::AsRawFd::as_raw_fd(stream))
    }
}

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sluice_sys::recv(self.0, buf).map_err(io::Error::from_raw_os_error)
    }
}

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sluice_sys::send(self.0, buf).map_err(io::Error::from_raw_os_error)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut slices: [&[u8]; sluice_sys::WRITEV_MAX] = [&[]; sluice_sys::WRITEV_MAX];
        let n = bufs.len().min(sluice_sys::WRITEV_MAX);
        for (s, b) in slices.iter_mut().zip(bufs) {
            *s = b;
        }
        sluice_sys::writev(self.0, &slices[..n]).map_err(io::Error::from_raw_os_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stream that remembers whether its last read was short (for rustls' `read_tls`, which asks
/// for what its buffer has room for).
struct Measured {
    stream: Raw,
    short: bool,
}

impl Read for Measured {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}
