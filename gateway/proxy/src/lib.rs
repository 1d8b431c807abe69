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
//! TLS record and one `send` (see there; under h2load, 0.13 writes per request instead of
//! 1.0 — `perf stat` syscall counts and the benchmark in benches/README.md).
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
//! Listening sockets may be made elsewhere and adopted ([`bind_listener`],
//! [`Proxy::adopt_listener`]): the gateway's main thread owns them, so that an upgrade can hand
//! them to the next process (`sluice-gateway`'s handover). [`Proxy::drain`] is the old
//! process's side of it: no more accepting, GOAWAY to HTTP/2 clients, `Connection: close` to
//! HTTP/1.1 ones.
//!
//! TLS to upstreams (`backend-protocol` HTTPS and GRPCS): the connection gets a
//! `rustls::ClientConnection` from the proxy's [`sluice_l7::upstream_tls::UpstreamTls`] (one
//! `Arc<ClientConfig>` per protocol, built once per proxy, so the session cache is the
//! worker's), with ingress-nginx's defaults: the certificate is not verified (its handshake
//! signature is), no SNI (the server name is the endpoint's address), ALPN `http/1.1` or `h2`.
//! The core is told the connection is ready once the handshake is done, so its connect timeout
//! covers TCP and TLS; a handshake that fails is a failed connect (retried on another endpoint,
//! else 502) and counted (`upstream_tls_errors`). Records are moved as a client's are (a
//! `Wire` per upstream connection: read, open, hand the plaintext over; take the core's bytes,
//! seal, write). A TLS connection is pooled with its TLS state, in pools of its own
//! (`pool_index`: HTTP/1.1 or HTTP/2, clear or TLS); while idle its records are read (TLS 1.3
//! session tickets keep it there; close_notify, the end of the stream, data or an error take it
//! out), and the look at Release for a close that came with the response goes through TLS.
//!
//! # Allocation
//! Per connection: the core's buffers, the slot (the slot table grows to the most
//! connections open at once and stays), the TLS state. Per request: nothing in the driver;
//! the access log, when on, formats each line into one reused `String`.
//!
//! # Known limits
//! - Timers are a scan of the connections on every [`Proxy::tick`] (fine for thousands,
//!   a timer wheel later).
//! - Upstreams are HTTP/1.1 or HTTP/2 (GRPC, H2C; one stream at a time per connection), in
//!   clear or over TLS (HTTPS, GRPCS) without certificate verification or SNI, as
//!   ingress-nginx by default: `proxy-ssl-verify`, `proxy-ssl-secret` (a CA, a client
//!   certificate) and `proxy-ssl-server-name`/`proxy-ssl-name` are not implemented (control
//!   denies an Ingress that asks for verification).
//! - Each of the four pools holds up to [`sluice_l7::proxy::PoolConfig`]'s `max_idle` idle
//!   connections (the limit is per kind, not for the worker).
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
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConfig, ServerConnection};
use socket2::{Domain, Protocol, Socket, Type};

use sluice_l7::proxy::{Action, Config, Context, Generation, H2Upstream, Pool, UpstreamError};
use sluice_l7::upstream_tls::UpstreamTls;
use sluice_model::l7::L7Table;
use sluice_model::policy::BackendProtocol;

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
    /// TLS handshakes with upstreams completed (`backend-protocol` HTTPS, GRPCS).
    pub upstream_tls_handshakes: u64,
    /// Of those, resumed sessions.
    pub upstream_tls_resumed: u64,
    /// TLS to upstreams that failed: handshakes that did not complete (a failed connect: the
    /// request is retried or answered 502) and records that failed afterwards.
    pub upstream_tls_errors: u64,
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
    wire: Wire,
    addr: SocketAddr,
    /// The client slot and lane it serves.
    owner: Option<(usize, usize)>,
    /// TCP is connected.
    established: bool,
    /// It carries the core's bytes: TCP connected and, over TLS, the handshake done (the core
    /// was told with `upstream_connected`).
    connected: bool,
    /// Requests it finished.
    uses: u32,
    /// It failed or closed: the core was told; only a Release is expected.
    dead: bool,
    /// It speaks HTTP/2 (`backend-protocol` GRPC, GRPCS, H2C): the converter between the
    /// core's HTTP/1.1 bytes and the wire, kept with it in the pool.
    h2: Option<Box<H2Upstream>>,
}

impl UpstreamConn {
    /// The pool it returns to ([`pool_index`]).
    fn pool(&self) -> usize {
        pool_index(self.h2.is_some(), self.wire.tls.is_some())
    }
}

/// The pools of idle upstream connections: one per kind, HTTP/1.1 or HTTP/2, in clear or TLS.
/// An endpoint address may be reached more than one way (two Ingresses, two protocols), and a
/// connection must only be taken again for the kind it was opened as.
const POOLS: usize = 4;

/// The index in [`Proxy`]'s pools of a connection that speaks HTTP/2 (`h2`) or not, over TLS
/// (`tls`) or not.
fn pool_index(h2: bool, tls: bool) -> usize {
    usize::from(h2) | usize::from(tls) << 1
}

/// An upstream connection's byte stream: the socket, and TLS over it for `backend-protocol`
/// HTTPS and GRPCS. Edge-triggered like a client's: `readable` and `writable` hold until a
/// call meets `WouldBlock` (or a short read).
struct Wire {
    stream: TcpStream,
    /// The TLS session, kept with the connection in the pool (its keys, and the tickets the
    /// server sends go to the configuration's session cache).
    tls: Option<Box<ClientConnection>>,
    readable: bool,
    writable: bool,
    /// An event said the upstream closed (or the socket failed): read to the end.
    hup: bool,
    /// TLS: the socket's end of stream was read (rustls holds what came before it).
    eof: bool,
}

/// What a read or write on a [`Wire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    /// Bytes moved: read into the buffer, or taken from it.
    Moved(usize),
    /// Nothing now: wait for the next event.
    Blocked,
    /// The upstream ended its stream (a read returned 0; over TLS, close_notify or the end of
    /// the socket, after the plaintext that came before it).
    Eof,
    /// The socket failed.
    Failed,
    /// TLS failed (a record that does not open, an alert, a protocol error).
    TlsFailed,
}

/// How far a new connection's TLS handshake is.
enum Handshake {
    /// Done (or no TLS): the connection carries the core's bytes.
    Done,
    /// Waiting for the socket.
    Waiting,
    /// Failed: a connect failure.
    Failed,
}

/// Buffered TLS bytes per connection and direction, at most (rustls' `set_buffer_limit`, as
/// on client connections).
const TLS_BUFFER_BYTES: usize = 64 * 1024;

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

/// A listening socket for `addr`, as every worker's listener is made: nonblocking,
/// `SO_REUSEADDR` and `SO_REUSEPORT` (each worker has its own on the same address, and the
/// kernel spreads connections over them), `IP_FREEBIND` (an address not yet on an interface
/// can be bound), IPv6 only for an IPv6 address, listening with `backlog`.
pub fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
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
    socket.listen(backlog)?;
    Ok(socket.into())
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
    /// Idle upstream connections, a pool per kind ([`pool_index`]).
    pools: [Pool<usize>; POOLS],
    /// The TLS client configurations of HTTPS and GRPCS upstreams: built once per proxy (so
    /// per worker: their session caches are this worker's), shared by its connections.
    upstream_tls: UpstreamTls,
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
            pools: std::array::from_fn(|_| Pool::new(config.core.pool)),
            upstream_tls: UpstreamTls::new(),
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
        for pool in &mut self.pools {
            pool.expire(0, |a| generation.is_live(a), |u| dead.push(u));
        }
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
        self.stop_accepting(registry);
        for i in 0..self.slots.len() {
            if let Slot::Client(c) = &mut self.slots[i]
                && let Front::H2(h2) = &mut c.front
            {
                h2.go_away(&mut self.ctx, now_ns);
                self.drive(registry, i, now_ns);
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

    /// Listens on `addr` (`tls`: HTTPS with this configuration) with a socket of
    /// [`bind_listener`]'s — every worker has its own on the same address. Returns the address
    /// bound (its port, when `addr`'s is 0).
    pub fn listen(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        let socket = bind_listener(addr, self.config.backlog)?;
        self.adopt_listener(registry, socket, tls)
    }

    /// Accepts on `socket`, a listening TCP socket made elsewhere (by [`bind_listener`], or
    /// handed over by another process): made nonblocking and registered. Returns its address.
    pub fn adopt_listener(
        &mut self,
        registry: &Registry,
        socket: std::net::TcpListener,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        socket.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(socket);
        let local = listener.local_addr()?;
        let Some(i) = self.alloc() else {
            return Err(io::Error::other("no token left in the proxy's range for a listener"));
        };
        registry.register(&mut listener, Token(self.base + i), Interest::READABLE)?;
        self.slots[i] = Slot::Listener(Listener { socket: listener, port: local.port(), tls });
        Ok(local)
    }

    /// Stops listening on `addr` (as [`Proxy::listen`] returned it), every socket of it this
    /// proxy has: each is closed here (connections not yet accepted are reset, unless another
    /// process holds the socket too); connections already accepted go on. Returns whether
    /// there was such a listener.
    pub fn unlisten(&mut self, registry: &Registry, addr: SocketAddr) -> bool {
        let mut found = false;
        for i in 0..self.slots.len() {
            if let Slot::Listener(l) = &mut self.slots[i]
                && l.socket.local_addr().is_ok_and(|a| a == addr)
            {
                // Fails only if it is not registered, which closing settles anyway.
                let _ = registry.deregister(&mut l.socket);
                self.free_slot(i);
                found = true;
            }
        }
        found
    }

    /// Stops accepting: every listener is deregistered and this proxy's copy of it closed
    /// (a socket another process holds too goes on accepting there). Connections already
    /// accepted go on.
    pub fn stop_accepting(&mut self, registry: &Registry) {
        for i in 0..self.slots.len() {
            if let Slot::Listener(l) = &mut self.slots[i] {
                let _ = registry.deregister(&mut l.socket);
                self.free_slot(i);
            }
        }
    }

    /// Drains (an upgrade: a new process accepts now): stops accepting, drains every HTTP/2
    /// client (GOAWAY announcing the shutdown, a second naming its last stream
    /// [`sluice_l7::proxy::DRAIN_GOAWAY_NS`] later, at a [`Proxy::tick`]:
    /// [`sluice_l7::proxy::H2Conn::drain`]), and from now on closes every HTTP/1.1 connection
    /// after its next response ([`sluice_l7::proxy::Context::set_draining`]; an idle one is
    /// left to its next request, its idle timeout or the process's exit). Done when
    /// [`Proxy::clients`] is 0.
    pub fn drain(&mut self, registry: &Registry, now_ns: u64) {
        self.ctx.set_draining();
        self.stop_accepting(registry);
        for i in 0..self.slots.len() {
            if let Slot::Client(c) = &mut self.slots[i]
                && let Front::H2(h2) = &mut c.front
            {
                h2.drain(&mut self.ctx, now_ns);
                self.drive(registry, i, now_ns);
            }
        }
        self.flush(registry, now_ns);
    }

    /// Client connections open.
    pub fn clients(&self) -> usize {
        self.stats.clients
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
        s.pooled = self.pools.iter().map(Pool::len).sum();
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
                u.wire.readable |= readable;
                u.wire.hup |= hup;
                u.wire.writable |= writable;
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
        for pool in &mut self.pools {
            pool.expire(now_ns, |a| generation.is_live(a), |u| dead.push(u));
        }
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
                    // would hand out a dead connection. Over TLS the look goes through the
                    // records: session tickets keep it, close_notify or data does not.
                    // (HTTP/2 connections say what they can take: `reusable`.)
                    if x.h2.is_none()
                        && let Err(e) = x.wire.idle()
                    {
                        if e == Io::TlsFailed {
                            self.stats.upstream_tls_errors += 1;
                        }
                        self.close_upstream(registry, u);
                        continue;
                    }
                    x.owner = None;
                    x.uses += 1;
                    let (addr, uses, pool) = (x.addr, x.uses, x.pool());
                    if let Some(u) = self.pools[pool].put(addr, u, uses, now_ns) {
                        self.close_upstream(registry, u);
                    }
                }
            }
        }
    }

    fn connect(&mut self, registry: &Registry, i: usize, lane: usize, addr: SocketAddr, now_ns: u64) {
        let protocol = match &self.slots[i] {
            Slot::Client(c) => c.front.upstream_protocol(lane).unwrap_or(BackendProtocol::Http),
            _ => return,
        };
        let want_h2 = protocol.is_h2();
        let tls_config = self.upstream_tls.config(protocol).cloned();
        let mut stale = Vec::new();
        let pool = &mut self.pools[pool_index(want_h2, tls_config.is_some())];
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
                x.wire.writable = true;
            }
            self.stats.upstream_reuses += 1;
            if let Slot::Client(c) = &mut self.slots[i] {
                *c.lane(lane) = Some(u);
                c.front.upstream_connected(&mut self.ctx, lane, true, now_ns);
            }
            return;
        }
        // proxy_ssl_server_name off: the endpoint's address is the server name, for which
        // rustls sends no SNI; it keys the session cache, per endpoint.
        let tls = match tls_config.map(|config| ClientConnection::new(config, ServerName::from(addr.ip()))) {
            None => Ok(None),
            Some(Ok(mut t)) => {
                t.set_buffer_limit(Some(TLS_BUFFER_BYTES));
                Ok(Some(Box::new(t)))
            }
            Some(Err(_)) => {
                self.stats.upstream_tls_errors += 1;
                Err(())
            }
        };
        let opened = match tls.map(|tls| (tls, self.alloc())) {
            Err(()) | Ok((_, None)) => None,
            Ok((tls, Some(u))) => match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let _ = stream.set_nodelay(true);
                    match registry.register(
                        &mut stream,
                        Token(self.base + u),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => {
                            let h2 = want_h2.then(|| {
                                Box::new(if tls.is_some() {
                                    H2Upstream::over_tls()
                                } else {
                                    H2Upstream::new()
                                })
                            });
                            self.slots[u] = Slot::Upstream(UpstreamConn {
                                wire: Wire {
                                    stream,
                                    tls,
                                    readable: false,
                                    writable: false,
                                    hup: false,
                                    eof: false,
                                },
                                addr,
                                owner: Some((i, lane)),
                                established: false,
                                connected: false,
                                uses: 0,
                                dead: false,
                                h2,
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
        let (ctx, stats) = (&mut self.ctx, &mut self.stats);
        if x.dead {
            return false;
        }
        let mut moved = false;
        if !x.established {
            if !(x.wire.writable || x.wire.readable) {
                return false;
            }
            match x.wire.stream.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Connect, now_ns);
                    return true;
                }
            }
            match x.wire.stream.peer_addr() {
                Ok(_) => {
                    x.established = true;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    x.wire.writable = false;
                    x.wire.readable = false;
                    return false;
                }
                Err(_) => {
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Connect, now_ns);
                    return true;
                }
            }
        }
        if !x.connected {
            // The core is told once the connection can carry its bytes: over TLS, after the
            // handshake, so that its connect timeout covers TCP and TLS (nginx's
            // proxy_connect_timeout covers its SSL handshake too). A failed handshake is a
            // failed connect: the core retries another endpoint or answers 502.
            match x.wire.handshake() {
                Handshake::Done => {
                    if let Some(tls) = &x.wire.tls {
                        stats.upstream_tls_handshakes += 1;
                        if tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                            stats.upstream_tls_resumed += 1;
                        }
                    }
                    x.connected = true;
                    c.front.upstream_connected(ctx, lane, false, now_ns);
                    moved = true;
                }
                Handshake::Waiting => return moved,
                Handshake::Failed => {
                    stats.upstream_tls_errors += 1;
                    x.dead = true;
                    c.front.upstream_failed(ctx, lane, UpstreamError::Connect, now_ns);
                    return true;
                }
            }
        }
        if x.h2.is_some() {
            return h2_upstream_io(c, x, lane, ctx, stats, now_ns) || moved;
        }
        let UpstreamConn { wire, dead, .. } = x;
        // How the connection ended, if it did.
        let mut end = None;
        // The request out (into TLS, then its records out).
        loop {
            let buf = c.front.upstream_write_buf(lane);
            if buf.is_empty() {
                break;
            }
            match wire.send(buf) {
                Io::Moved(n) => {
                    c.front.upstream_wrote(ctx, lane, n, now_ns);
                    moved = true;
                }
                Io::Blocked => break,
                e => {
                    end = Some(e);
                    break;
                }
            }
        }
        // Records TLS still holds: the tail of the request, answers to the server's messages.
        if end.is_none()
            && let Err(e) = wire.flush()
        {
            end = Some(e);
        }
        // The response in.
        while end.is_none() {
            let buf = c.front.upstream_read_buf(lane);
            if buf.is_empty() {
                break;
            }
            match wire.recv(buf) {
                Io::Moved(n) => {
                    c.front.upstream_read(ctx, lane, n, now_ns);
                    moved = true;
                }
                Io::Blocked => break,
                e => end = Some(e),
            }
        }
        match end {
            None => moved,
            Some(Io::Eof) => {
                *dead = true;
                c.front.upstream_eof(ctx, lane, now_ns);
                true
            }
            Some(e) => {
                if e == Io::TlsFailed {
                    stats.upstream_tls_errors += 1;
                }
                *dead = true;
                c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
                true
            }
        }
    }

    /// An event on an idle pooled connection: the upstream closed it, sent something it should
    /// not have, or — HTTP/2, TLS — sent what idle connections get (SETTINGS, PING, session
    /// tickets), which is taken and answered. It leaves the pool when it cannot take another
    /// exchange.
    fn idle_event(&mut self, registry: &Registry, u: usize) {
        let Slot::Upstream(x) = &mut self.slots[u] else { return };
        let kept = match &mut x.h2 {
            None => x.wire.idle(),
            Some(h2) => h2_idle(&mut x.wire, h2, self.now_ns),
        };
        let Err(e) = kept else { return };
        if e == Io::TlsFailed {
            self.stats.upstream_tls_errors += 1;
        }
        let (addr, pool) = (x.addr, x.pool());
        self.pools[pool].remove(&addr, &u);
        self.close_upstream(registry, u);
    }

    fn close_upstream(&mut self, registry: &Registry, u: usize) {
        if let Slot::Upstream(x) = &mut self.slots[u] {
            if x.connected
                && let Some(tls) = &mut x.wire.tls
            {
                // One try, as for clients: a close the upstream can tell from a truncation.
                tls.send_close_notify();
                let _ = tls.write_tls(&mut Raw::of(&x.wire.stream));
            }
            let _ = registry.deregister(&mut x.wire.stream);
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
/// converter to the wire, the wire's frames through it back to the core. Whether anything
/// moved.
fn h2_upstream_io(
    c: &mut Client,
    x: &mut UpstreamConn,
    lane: usize,
    ctx: &mut Context,
    stats: &mut ProxyStats,
    now_ns: u64,
) -> bool {
    let UpstreamConn { wire, h2, dead, .. } = x;
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
    // How the connection ended, if it did.
    let mut end = None;
    while !conv.write_buf().is_empty() {
        match wire.send(conv.write_buf()) {
            Io::Moved(n) => {
                conv.wrote(n);
                moved = true;
            }
            Io::Blocked => break,
            e => {
                end = Some(e);
                break;
            }
        }
    }
    if end.is_none()
        && let Err(e) = wire.flush()
    {
        end = Some(e);
    }
    while end.is_none() {
        let buf = conv.read_buf();
        if buf.is_empty() {
            break;
        }
        match wire.recv(buf) {
            Io::Moved(n) => {
                conv.read(n, now_ns);
                moved = true;
            }
            Io::Blocked => break,
            e => end = Some(e),
        }
    }
    if let Some(e @ (Io::Failed | Io::TlsFailed)) = end {
        if e == Io::TlsFailed {
            stats.upstream_tls_errors += 1;
        }
        *dead = true;
        c.front.upstream_failed(ctx, lane, UpstreamError::Io, now_ns);
        return true;
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
    if end == Some(Io::Eof) {
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

/// An idle HTTP/2 upstream connection's event: HTTP/2 servers talk on idle connections
/// (SETTINGS, PING, WINDOW_UPDATE, GOAWAY): the frames are read and answered. Ok while it can
/// take another exchange.
fn h2_idle(wire: &mut Wire, h2: &mut H2Upstream, now_ns: u64) -> Result<(), Io> {
    loop {
        let buf = h2.read_buf();
        if buf.is_empty() {
            break;
        }
        match wire.recv(buf) {
            Io::Moved(n) => h2.read(n, now_ns),
            Io::Blocked => break,
            e => return Err(e),
        }
    }
    while !h2.write_buf().is_empty() {
        match wire.send(h2.write_buf()) {
            Io::Moved(n) => h2.wrote(n),
            Io::Blocked => break,
            e => return Err(e),
        }
    }
    wire.flush()?;
    if h2.reusable() { Ok(()) } else { Err(Io::Eof) }
}

impl Wire {
    /// Reads what the upstream sent into `buf` (not empty): the socket's bytes or, over TLS,
    /// the plaintext, reading and opening records as needed (as `client_io` does for clients).
    fn recv(&mut self, buf: &mut [u8]) -> Io {
        let Some(tls) = &mut self.tls else {
            while self.readable {
                let asked = buf.len();
                match Raw::of(&self.stream).read(buf) {
                    Ok(0) => return Io::Eof,
                    Ok(n) => {
                        self.readable = !read_exhausted(n, asked, self.hup);
                        return Io::Moved(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Io::Failed,
                }
            }
            return Io::Blocked;
        };
        // Each turn reads the socket or returns: it ends when the socket is empty.
        loop {
            match tls.reader().read(buf) {
                // close_notify.
                Ok(0) => return Io::Eof,
                Ok(n) => return Io::Moved(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: the end of the stream all the same (the
                // core tells a complete response from a cut one by its framing).
                Err(_) => return Io::Eof,
            }
            if self.eof {
                return Io::Eof;
            }
            // rustls wants no records while plaintext waits (taken above) or after close_notify.
            if !self.readable || !tls.wants_read() {
                return Io::Blocked;
            }
            if let Err(e) = read_records(tls, &self.stream, &mut self.readable, self.hup, &mut self.eof) {
                return e;
            }
        }
    }

    /// Writes `buf` toward the upstream: to the socket or, over TLS, into the session (what
    /// its buffer takes), then the records out.
    fn send(&mut self, buf: &[u8]) -> Io {
        let Some(tls) = &mut self.tls else {
            while self.writable {
                match Raw::of(&self.stream).write(buf) {
                    Ok(n) => return Io::Moved(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Io::Failed,
                }
            }
            return Io::Blocked;
        };
        let mut n = tls.writer().write(buf).unwrap_or(0);
        if let Err(e) = write_records(tls, &self.stream, &mut self.writable) {
            return e;
        }
        if n == 0 && self.writable {
            // The session's buffer was full, and the socket took all of it: room now.
            n = tls.writer().write(buf).unwrap_or(0);
            if let Err(e) = write_records(tls, &self.stream, &mut self.writable) {
                return e;
            }
        }
        if n > 0 { Io::Moved(n) } else { Io::Blocked }
    }

    /// Writes the records the TLS session holds while the socket takes them (in clear, there
    /// are none).
    fn flush(&mut self) -> Result<(), Io> {
        match &mut self.tls {
            None => Ok(()),
            Some(tls) => write_records(tls, &self.stream, &mut self.writable),
        }
    }

    /// Drives a new connection's TLS handshake as far as the socket lets it (in clear there is
    /// none: done).
    fn handshake(&mut self) -> Handshake {
        let Some(tls) = &mut self.tls else { return Handshake::Done };
        // Each turn reads the socket or returns.
        loop {
            if write_records(tls, &self.stream, &mut self.writable).is_err() {
                return Handshake::Failed;
            }
            if !tls.is_handshaking() {
                return Handshake::Done;
            }
            if self.eof {
                return Handshake::Failed;
            }
            if !self.readable || !tls.wants_read() {
                return Handshake::Waiting;
            }
            if read_records(tls, &self.stream, &mut self.readable, self.hup, &mut self.eof).is_err() {
                // The alert rustls queued, if any, goes out; failed either way.
                let _ = write_records(tls, &self.stream, &mut self.writable);
                return Handshake::Failed;
            }
        }
    }

    /// Looks at an idle connection (in the pool, or going back to it): Ok while it can take
    /// another exchange, else what it did — closed (EOF, close_notify), sent bytes no request
    /// asked for, failed. Over TLS, records without data (session tickets, key updates) are
    /// taken on the way. In clear, a connection with no event since its last read is not read.
    fn idle(&mut self) -> Result<(), Io> {
        let mut probe = [0u8; 1];
        match self.recv(&mut probe) {
            Io::Blocked => self.flush(),
            other => Err(other),
        }
    }
}

/// Reads records from the socket into a TLS session (one read: what its buffer takes) and
/// opens them.
fn read_records(
    tls: &mut ClientConnection,
    stream: &TcpStream,
    readable: &mut bool,
    hup: bool,
    eof: &mut bool,
) -> Result<(), Io> {
    let mut reader = Measured { stream: Raw::of(stream), short: false };
    loop {
        match tls.read_tls(&mut reader) {
            Ok(0) => {
                *eof = true;
                *readable = false;
            }
            Ok(_) => {
                if reader.short && !hup {
                    *readable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *readable = false;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Io::Failed),
        }
        break;
    }
    match tls.process_new_packets() {
        Ok(_) => Ok(()),
        Err(_) => Err(Io::TlsFailed),
    }
}

/// Writes the records a TLS session holds while the socket takes them.
fn write_records(tls: &mut ClientConnection, stream: &TcpStream, writable: &mut bool) -> Result<(), Io> {
    while *writable && tls.wants_write() {
        match tls.write_tls(&mut Raw::of(stream)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Io::Failed),
        }
    }
    Ok(())
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
