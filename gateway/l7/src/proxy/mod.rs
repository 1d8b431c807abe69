//! The HTTP/1.1 reverse proxy, sans-IO: one [`Conn`] per client connection, fed the bytes its
//! driver read from the client and from the upstream, upstream events and time, and giving
//! back the bytes to write to each and [`Action`]s (open an upstream connection, let one go).
//!
//! # What a connection does
//! Requests are taken one at a time, in order: the head is parsed ([`crate::h1::HeadParser`]:
//! every [`crate::h1::Reject`] is answered with its status and the connection closed), routed
//! with the [`Generation`] current when it arrives (held by the request until it is done, so a
//! table change never breaks a request in flight), and sent to an endpoint picked by round
//! robin over the Service port's eligible endpoints ([`Generation::pick`]). What follows a
//! request head on the client connection — its body, pipelined requests — waits in the
//! client's input buffer; once the response is complete the next request is parsed from it.
//!
//! - No route: 404 from Sluice. An unavailable backend or no eligible endpoint: 503. A body
//!   whose Content-Length is over `max_body_bytes` (ingress-nginx's `proxy-body-size`): 413
//!   before anything is forwarded; a chunked body that grows over it: 413 if the response has
//!   not begun, else the connection is closed. A locally answered request's body is read and
//!   dropped so the connection can go on (closed instead if the client waits for 100
//!   Continue).
//! - Upstream: connect failure 502 (for a TLS upstream, a failed handshake too), connect
//!   timeout (TCP and TLS handshake) and read timeout 504 (while no byte of the
//!   response has reached the client; after that the client connection is closed). A connect
//!   failure, or a reset or close before any byte of the response, moves the request to
//!   another endpoint when it can be sent again: nothing of it was written yet (connect
//!   failure), or the method is idempotent (RFC 9110 §9.2.2) and every byte written is still
//!   held ([`Config::tries`] attempts in all). Failures count against the endpoint
//!   ([`Health`]).
//! - Bodies stream both ways through the four fixed buffers of the connection: a side is not
//!   read while the buffer its bytes go to is full, so a body of any size holds at most those
//!   buffers. Content-Length bodies are copied (the length kept); chunked ones are decoded and
//!   framed again; a response delimited by close goes chunked to an HTTP/1.1 client and
//!   delimited by close to an HTTP/1.0 one.
//! - Trailers (RFC 9110 §6.5, RFC 9112 §7.1.2): a chunked body's trailer section goes on
//!   wherever the body goes on chunked — every request body (upstreams get HTTP/1.1), and a
//!   response to an HTTP/1.1 client — line by line as it arrives, through the same bounded
//!   buffers, without the fields [`crate::h1::NOT_IN_TRAILERS`] names (framing, hop-by-hop,
//!   routing, authentication, controls, content format, the forwarding fields). An HTTP/1.0
//!   client gets the body delimited by close and no trailers (RFC 9110 §6.5.1 lets a recipient
//!   discard them). The Trailer field goes along only with its trailer section, without the
//!   names dropped from it. `TE: trailers` is hop-by-hop: Sluice sends its own upstream (with
//!   `Connection: te`) only when the client sent it and is HTTP/1.1, i.e. when the response's
//!   trailers will reach a client that asked for them (RFC 9110 §10.1.4).
//! - Rewriting: requests go upstream as HTTP/1.1 with origin-form targets, without hop-by-hop
//!   fields, with `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
//!   `X-Forwarded-Port` set by Sluice (the client's own are dropped unless
//!   [`Config::trust_forwarded_headers`], which keeps them and appends to X-Forwarded-For) and
//!   `X-Request-ID` kept or generated (32 hex digits from a per-worker generator — unique, not
//!   secret). Responses lose their hop-by-hop fields and gain `Server: sluice` when they have
//!   no Server field; so do Sluice's own answers.
//! - `Expect: 100-continue` is forwarded and the upstream's 100 relayed (interim responses go
//!   to HTTP/1.1 clients only). `Upgrade`: after the upstream's 101 the connection is a byte
//!   tunnel both ways until either side closes.
//! - Keep-alive on both sides: the client connection after a response unless the client or
//!   the response asked to close, or [`Config::max_requests_per_client`] is reached; the
//!   upstream one is handed back with [`Action::Release`]`{ keep_alive: true }` when its
//!   response was complete, nothing else arrived and its endpoint is still in the current
//!   generation.
//! - Timers ([`Conn::tick`]): the client head timeout (408 when part of a head came, else a
//!   silent close), the keep-alive idle timeout, the upstream connect and read timeouts, and a
//!   send timeout on a client that does not read.
//!
//! # Known limits
//! - An HTTP/1.0 client never gets trailers (its body is delimited by close), and trailers are
//!   never merged into a head: that would mean holding the whole body.
//! - A trailer field named by the message's Connection field is forwarded unless it is one of
//!   [`crate::h1::NOT_IN_TRAILERS`] (the head is gone by the time the trailers come).
//! - A request whose response completes before its body was all read closes the client
//!   connection afterwards (the rest of the body is not drained).
//! - A tunnel ends when either side closes (no half-close).
//! - An upstream connect or read timeout on an attempt is not retried on another endpoint.
//!
//! # Allocation
//! A connection allocates its four buffers, the head parser's field index and its action queue
//! once, when it is made; the access-log strings grow to the longest request line seen. Per
//! request: nothing, except the first failure of an endpoint ([`Health`]'s map) and the access
//! log's own sink. Hot path: yes.

mod buf;
mod gate;
mod h2;
mod h2up;
mod response;
mod upstream;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;

use buf::{Buf, Out};
use response::{Body, Client};

use crate::h1::{
    BodyDecoder, BodyError, Framing, HeadParser, Limits, MAX_TRAILER_PREFIX_BYTES, Method, RequestHead,
    TargetForm, Version, is_allowed_in_trailer, tokens,
};
use std::sync::Arc;

use crate::policy::SipKey;
use crate::policy::auth::{AuthCache, AuthCacheConfig, AuthOutcome, AuthStats};
use crate::policy::cookie::{self, EndpointToken};
use crate::policy::limit::{ConnGuard, Limiter, LimiterConfig, RateVerdict};
use crate::route::Route;
use sluice_model::policy::{BackendProtocol, Policy};
use sluice_model::route_stats::{self, Row};

pub use h2::{H2Conn, H2Stats, PREFACE, h2_config};
pub use h2up::H2Upstream;
pub use upstream::{Balance, Generation, Health, Pool, PoolConfig};

/// One second in nanoseconds.
const SECOND_NS: u64 = 1_000_000_000;

/// Room a response Sluice writes itself needs in the client buffer.
const LOCAL_ROOM: usize = 512;

/// Room kept for a policy's extra header lines on Sluice's own answers (CORS, HSTS, custom
/// headers); lines beyond it are dropped from such an answer (never from a redirect's Location,
/// which the room for the target covers).
const EXTRA_ROOM: usize = 2048;

/// How long a closing connection may take to flush what it still has for the client.
const LINGER_NS: u64 = 5 * SECOND_NS;

/// What a proxy worker is configured with (ingress-nginx's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Request head limits (431, 414).
    pub limits: Limits,
    /// The largest request body (`proxy-body-size`, 1 MiB); `None`: no limit (`0` in
    /// ingress-nginx's spelling).
    pub max_body_bytes: Option<u64>,
    /// Time to receive a whole request head (`client-header-timeout`, 60 s).
    pub client_head_timeout_ns: u64,
    /// How long a request body may wait for the client's next byte (`client-body-timeout`,
    /// 60 s, between two reads as nginx's): 408 if the response has not begun, else a close.
    pub client_body_timeout_ns: u64,
    /// How long an idle keep-alive client connection is kept (`keep-alive`, 75 s).
    pub client_idle_timeout_ns: u64,
    /// How long a client may leave a response unread, and a request body unsent (60 s).
    pub client_send_timeout_ns: u64,
    /// Requests per client connection (`keep-alive-requests`, 1,000).
    pub max_requests_per_client: u32,
    /// Upstream connect timeout (`proxy-connect-timeout`, 5 s): 504.
    pub upstream_connect_timeout_ns: u64,
    /// Upstream read timeout (`proxy-read-timeout`, 60 s): 504.
    pub upstream_read_timeout_ns: u64,
    /// Upstream send timeout (`proxy-send-timeout`, 60 s): how long request bytes may wait for
    /// an upstream that takes none of them (between two writes, as nginx's
    /// `proxy_send_timeout`); 504 before a response began.
    pub upstream_send_timeout_ns: u64,
    /// Attempts per request across endpoints (`proxy-next-upstream-tries`, 3).
    pub tries: u8,
    /// Each of the four buffers of a connection holds at least this much (16 KiB); the input
    /// buffers at least a whole head.
    pub buffer_bytes: usize,
    /// Keep the client's X-Forwarded-* and X-Real-IP and append to X-Forwarded-For
    /// (`use-forwarded-headers`, false).
    pub trust_forwarded_headers: bool,
    /// Failures in a row before an endpoint is skipped (3).
    pub endpoint_fail_threshold: u32,
    /// How long it is skipped (10 s).
    pub endpoint_backoff_ns: u64,
    /// The worker's upstream keep-alive pool.
    pub pool: PoolConfig,
    /// How endpoints are chosen (`load-balance`: round robin, or EWMA).
    pub balance: Balance,
}

impl Config {
    /// ingress-nginx's defaults.
    pub const DEFAULT: Config = Config {
        limits: Limits::DEFAULT,
        max_body_bytes: Some(1024 * 1024),
        client_head_timeout_ns: 60 * SECOND_NS,
        client_body_timeout_ns: 60 * SECOND_NS,
        client_idle_timeout_ns: 75 * SECOND_NS,
        client_send_timeout_ns: 60 * SECOND_NS,
        max_requests_per_client: 1000,
        upstream_connect_timeout_ns: 5 * SECOND_NS,
        upstream_read_timeout_ns: 60 * SECOND_NS,
        upstream_send_timeout_ns: 60 * SECOND_NS,
        tries: 3,
        buffer_bytes: 16 * 1024,
        trust_forwarded_headers: false,
        endpoint_fail_threshold: 3,
        endpoint_backoff_ns: 10 * SECOND_NS,
        pool: PoolConfig { max_idle: 320, idle_timeout_ns: 60 * SECOND_NS, max_requests: 10_000 },
        balance: Balance::RoundRobin,
    };
}

impl Default for Config {
    fn default() -> Config {
        Config::DEFAULT
    }
}

/// Counters of one worker's proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Request heads accepted (parsed and checked).
    pub requests: u64,
    /// Responses by status class: index `status / 100` (1xx interim responses not counted;
    /// index 0: requests that ended with the connection closed and no status).
    pub responses: [u64; 6],
    /// Of those, answered by Sluice itself (404, 503, 502, 4xx limits...).
    pub local_responses: u64,
    /// Request heads refused by the parser.
    pub rejected_heads: u64,
    /// Requests moved to another endpoint after a failure.
    pub retries: u64,
    /// The most bytes one connection's buffers held at once (kept replay bytes included).
    pub max_conn_buffered_bytes: usize,
    /// Requests refused by a route's `limit-rps`, `limit-rpm` or `limit-connections` (503).
    pub limited: u64,
    /// Requests refused by basic authentication (401).
    pub auth_denied: u64,
    /// Client connections ended for slowness: a head or a request body that did not come in
    /// time (408, or a close when nothing of a head came), a response left unread.
    pub client_timeouts: u64,
    /// Request bodies refused: chunked framing that breaks the rules (400: a size not hex or
    /// overflowing, a bad extension, a bare LF, data past the size, bad trailers), or a chunked
    /// body that grew over the size limit (413); the connection is closed.
    pub rejected_bodies: u64,
}

/// Counts per route ([`sluice_model::route_stats`]): one [`Row`] per metrics row, and which
/// rows changed since the driver last published them. Made once per worker (its rows are
/// allocated up front); counting a request allocates nothing.
#[derive(Debug)]
pub struct RouteMeter {
    rows: Vec<Row>,
    changed: Vec<bool>,
    /// The changed rows, each once (capacity: every row, so pushing never allocates).
    dirty: Vec<u16>,
}

impl Default for RouteMeter {
    fn default() -> RouteMeter {
        RouteMeter {
            rows: vec![Row::default(); route_stats::ROWS],
            changed: vec![false; route_stats::ROWS],
            dirty: Vec::with_capacity(route_stats::ROWS),
        }
    }
}

impl RouteMeter {
    /// Counts one request in `row` (row 0 when `row` is past the last).
    #[inline]
    pub fn record(
        &mut self,
        row: u16,
        status: u16,
        body_bytes: u64,
        request_ns: u64,
        upstream_ns: Option<u64>,
    ) {
        let row = if usize::from(row) < self.rows.len() { row } else { 0 };
        self.rows[usize::from(row)].record(status, body_bytes, request_ns, upstream_ns);
        if !self.changed[usize::from(row)] {
            self.changed[usize::from(row)] = true;
            self.dirty.push(row);
        }
    }

    /// Hands every row changed since the last call to `publish`, and forgets that they changed.
    pub fn drain_changed(&mut self, mut publish: impl FnMut(u16, &Row)) {
        for row in self.dirty.drain(..) {
            self.changed[usize::from(row)] = false;
            publish(row, &self.rows[usize::from(row)]);
        }
    }

    /// The counts of `row`.
    pub fn row(&self, row: u16) -> Option<&Row> {
        self.rows.get(usize::from(row))
    }

    /// Every count back to zero (the rows' numbering changed: a new control).
    pub fn reset(&mut self) {
        self.rows.fill(Row::default());
        self.changed.fill(false);
        self.dirty.clear();
    }
}

/// One request's access-log record, handed to the sink set with
/// [`Context::set_access_log`] when its response is complete (or the connection failed).
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// The client.
    pub client: SocketAddr,
    /// The authority the request was routed by.
    pub host: &'a str,
    /// `METHOD target HTTP/1.x`.
    pub request_line: &'a str,
    /// The status sent (0: none, the connection was closed).
    pub status: u16,
    /// Body bytes of the response queued for the client.
    pub body_bytes: u64,
    /// The endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
    /// From the request head to the end of the response.
    pub request_time_ns: u64,
    /// From the last attempt's connect to the end of the response.
    pub upstream_time_ns: Option<u64>,
}

/// What every worker of a gateway shares for the annotations: the secret key hashes an outsider
/// could aim at are keyed with, and the table `limit-*` counts clients in.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The gateway's secret key (drawn once at start).
    pub key: SipKey,
    /// The limit table.
    pub limiter: Arc<Limiter>,
}

impl Shared {
    /// A key and a limit table of `limits`' size.
    pub fn new(key: SipKey, limits: LimiterConfig) -> Shared {
        Shared { key, limiter: Arc::new(Limiter::new(limits, &key)) }
    }
}

/// A sink of access-log records.
pub type AccessLog = Box<dyn FnMut(&AccessRecord<'_>)>;

/// What a worker's connections share: configuration, the current generation, endpoint
/// health, the request-id generator, counters and the access-log sink. One per worker thread.
pub struct Context {
    config: Config,
    shared: Shared,
    auth_cache: AuthCache,
    /// The upstream target `rewrite-target` made for the request being begun (reused).
    target: Vec<u8>,
    /// The wall clock at one moment of the monotonic one: (ns, Unix seconds), for cookie dates.
    wall: (u64, u64),
    generation: Rc<Generation>,
    health: Health,
    rng: u64,
    stats: Stats,
    routes: RouteMeter,
    access_log: Option<AccessLog>,
    /// HTTP/2 clients' counters ([`H2Conn`]).
    h2: H2Stats,
    /// The gateway is draining (an upgrade handed its listeners to a new process): HTTP/1.1
    /// clients get `Connection: close` on their next response.
    draining: bool,
}

/// While draining, how long after its first GOAWAY (the largest stream id: "no new streams")
/// an HTTP/2 connection gets the second, which names the last stream served
/// ([`H2Conn::drain`]): streams the client opened before it saw the first are still served.
/// RFC 9113 §6.8 asks for at least a round trip; two seconds leave room for a client whose
/// core is busy.
pub const DRAIN_GOAWAY_NS: u64 = 2 * SECOND_NS;

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).field("stats", &self.stats).finish()
    }
}

impl Context {
    /// A context with an empty generation (every request 404) and a request-id generator
    /// seeded with `seed`.
    pub fn new(config: Config, seed: u64) -> Context {
        // A key of its own, from the seed, and a small limit table: enough for one worker. A
        // gateway gives every worker the same [`Shared`] ([`Context::set_shared`]).
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..].copy_from_slice(&(!seed).rotate_left(17).to_le_bytes());
        let shared =
            Shared::new(SipKey::new(bytes), LimiterConfig { rate_slots: 1 << 12, connection_slots: 1 << 10 });
        Context {
            config,
            auth_cache: AuthCache::new(AuthCacheConfig::DEFAULT, &shared.key),
            shared,
            target: Vec::new(),
            wall: (0, 0),
            generation: Rc::new(Generation::empty()),
            health: Health::new(config.endpoint_fail_threshold, config.endpoint_backoff_ns),
            rng: seed,
            stats: Stats::default(),
            routes: RouteMeter::default(),
            access_log: None,
            h2: H2Stats::default(),
            draining: false,
        }
    }

    /// Starts draining: from now on every HTTP/1.1 response closes its connection. An idle
    /// keep-alive connection is not closed early: the client may be sending its next request
    /// at that moment, and a close that crosses it fails the request (RFC 9112 §9.3.1 lets
    /// a client retry it, but many do not; HAProxy's `idle-close-on-response` waits for the
    /// same reason). It is closed after its next response, by its idle timeout, or when the
    /// draining process exits. HTTP/2 connections are drained by their own GOAWAYs
    /// ([`H2Conn::drain`]).
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Whether [`Context::set_draining`] was called.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Shares the gateway's key and limit table with this worker (every worker of a gateway
    /// gets the same, so a client's limit holds across them).
    pub fn set_shared(&mut self, shared: Shared) {
        self.auth_cache = AuthCache::new(AuthCacheConfig::DEFAULT, &shared.key);
        self.shared = shared;
    }

    /// Says what the wall clock read (`unix_s`) at monotonic `now_ns` (the driver's clocks: this
    /// crate reads none), for the dates of affinity cookies.
    pub fn set_wall_clock(&mut self, now_ns: u64, unix_s: u64) {
        self.wall = (now_ns, unix_s);
    }

    /// Unix seconds at monotonic `now_ns`.
    fn unix_s(&self, now_ns: u64) -> u64 {
        self.wall.1 + now_ns.saturating_sub(self.wall.0) / SECOND_NS
    }

    /// The basic-auth cache's counters.
    pub fn auth_stats(&self) -> AuthStats {
        self.auth_cache.stats()
    }

    /// Requests arriving from now on are routed with `generation`.
    pub fn set_generation(&mut self, generation: Rc<Generation>) {
        self.generation = generation;
    }

    /// The current generation.
    pub fn generation(&self) -> &Rc<Generation> {
        &self.generation
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counts a client connection ended for slowness by the driver (one that never showed a
    /// protocol, or a TLS handshake that did not finish, within the head timeout).
    pub fn count_client_timeout(&mut self) {
        self.stats.client_timeouts += 1;
    }

    /// The HTTP/2 clients' counters.
    pub fn h2_stats(&self) -> &H2Stats {
        &self.h2
    }

    /// The counts per route.
    pub fn routes(&self) -> &RouteMeter {
        &self.routes
    }

    /// The counts per route, to publish and reset.
    pub fn routes_mut(&mut self) -> &mut RouteMeter {
        &mut self.routes
    }

    /// The worker-wide timers (call with the connections' ones): forgets the response-time
    /// averages of endpoints not heard from for a minute.
    pub fn tick(&mut self, now_ns: u64) {
        self.health.forget_stale(now_ns);
    }

    /// Endpoint health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Sends every request's record to `sink` (`None`: no access log).
    pub fn set_access_log(&mut self, sink: Option<AccessLog>) {
        self.access_log = sink;
    }

    /// splitmix64.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What the driver must do for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Attach an upstream connection to this endpoint: one from the pool (then call
    /// [`Conn::upstream_connected`] with `reused`), or a new one (call it once connected — for
    /// a TLS upstream, once its handshake is done, so that the connect timeout covers both —
    /// or [`Conn::upstream_failed`] with [`UpstreamError::Connect`], also for a failed
    /// handshake). Every `Connect` is followed, in time, by one `Release`.
    Connect(SocketAddr),
    /// Detach the upstream connection: return it to the pool if `keep_alive`, else close it.
    Release {
        /// The connection may carry another request.
        keep_alive: bool,
    },
}

/// How an upstream connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// The connection could not be made (refused, unreachable, its TLS handshake failed).
    Connect,
    /// Reset, or another error reading or writing.
    Io,
}

/// Why an attempt ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    ConnectFailed,
    ConnectTimeout,
    Reset,
    Eof,
    ReadTimeout,
    /// Request bytes waited [`Exchange::send_timeout_ns`] for an upstream that took none.
    SendTimeout,
}

/// Where a connection is.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the phase lives in its connection; a boxed exchange would be an allocation per request"
)]
enum Phase {
    /// Waiting for a request head.
    Head,
    /// Dropping the body of a request Sluice answered itself.
    Discard(BodyDecoder),
    /// A request is being proxied.
    Exchange(Exchange),
    /// Upgraded: bytes both ways.
    Tunnel,
    /// Flushing what is left for the client, then closed.
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    Connecting { since_ns: u64 },
    Ready,
}

#[derive(Debug)]
enum Resp {
    Head,
    /// The body: a decoder, or `None` until the upstream closes.
    Body {
        decoder: Option<BodyDecoder>,
        rechunk: bool,
    },
    Done,
}

/// One proxied request.
#[derive(Debug)]
struct Exchange {
    generation: Rc<Generation>,
    upstream: usize,
    addr: SocketAddr,
    tries: u8,
    idempotent: bool,
    client: Client,
    req: BodyDecoder,
    req_chunked: bool,
    req_done: bool,
    up: Upstream,
    resp: Resp,
    /// A byte of the response arrived on this attempt.
    resp_seen: bool,
    /// The final response head was queued for the client.
    head_sent: bool,
    /// The upstream closed (a close-delimited body ends there).
    upstream_eof: bool,
    close_client: bool,
    upstream_keep_alive: bool,
    status: u16,
    body_bytes: u64,
    start_ns: u64,
    attempt_ns: u64,
    last_upstream_ns: u64,
    /// Since when request bytes wait for the upstream (the last write, or when the timers
    /// last saw nothing waiting).
    send_clock_ns: u64,
    /// Since when the request body waits for the client (its last byte, or when the timers
    /// last saw the wait on the upstream's side): the client body timeout's clock.
    body_clock_ns: u64,
    /// The route's `proxy-connect-timeout`, `proxy-read-timeout` and `proxy-send-timeout` (or
    /// the gateway's).
    connect_timeout_ns: u64,
    read_timeout_ns: u64,
    send_timeout_ns: u64,
    /// A place under the route's `limit-connections`, held while the request is in flight.
    _limit_guard: Option<ConnGuard>,
    /// The route's `backend-protocol`: how the driver reaches the upstream (HTTP/2 through an
    /// [`H2Upstream`], TLS or not).
    backend: BackendProtocol,
}

/// The access-log fields of the request in flight.
#[derive(Debug, Default)]
struct LogState {
    host: String,
    line: String,
    start_ns: u64,
    /// The metrics row of the route taken (0 until routed).
    metric: u16,
}

/// One client connection, sans-IO. See the module documentation.
///
/// The driver's loop for it: read from the client into [`Conn::client_read_buf`] (nothing to
/// read into: stop reading until the buffer frees), report with [`Conn::client_read`] (0
/// bytes: [`Conn::client_eof`]); write [`Conn::client_write_buf`], report
/// [`Conn::client_wrote`]; the same for the upstream; carry out [`Conn::poll_action`]'s
/// actions; call [`Conn::tick`] now and then; drop the connection when
/// [`Conn::is_finished`].
#[derive(Debug)]
pub struct Conn {
    peer: SocketAddr,
    local_port: u16,
    https: bool,
    cin: Buf,
    cout: Buf,
    uin: Buf,
    uout: Buf,
    parser: HeadParser,
    phase: Phase,
    requests: u32,
    /// When the current wait (for a head, for a body) began.
    since_ns: u64,
    /// When the client last took bytes (or there were none for it).
    client_write_ns: u64,
    client_eof: bool,
    /// The request being answered is HTTP/1.0 (its keep-alive must be said).
    http10: bool,
    /// The upstream side of a tunnel closed.
    tunnel_upstream_eof: bool,
    attached: bool,
    linger_over: bool,
    closing_since_ns: u64,
    actions: VecDeque<Action>,
    log_enabled: bool,
    log: LogState,
    /// Header lines of the response Sluice answers itself (a redirect's Location...).
    extra: String,
    /// Header lines the relayed response gains (HSTS, CORS, custom headers).
    resp_extra: String,
    /// The requests come from an HTTP/2 stream ([`H2Conn`]'s lane): the access log says
    /// `HTTP/2.0`, as nginx's does.
    h2_lane: bool,
}

/// What to do with a request head.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per request and moved into the phase; boxing would allocate per request"
)]
enum Start {
    Local { status: u16, close: bool, discard: Option<BodyDecoder> },
    Proxy(Exchange),
}

impl Conn {
    /// A connection accepted from `peer` on a listener's `local_port` (`https`: behind TLS),
    /// with buffers sized from `ctx`'s configuration.
    pub fn new(ctx: &Context, peer: SocketAddr, local_port: u16, https: bool, now_ns: u64) -> Conn {
        let c = &ctx.config;
        let input = c.buffer_bytes.max(c.limits.max_head_bytes);
        let output = c.buffer_bytes.max(c.limits.max_head_bytes + 1024);
        Conn {
            peer,
            local_port,
            https,
            cin: Buf::new(input),
            cout: Buf::new(output + 1024),
            uin: Buf::new(input),
            uout: Buf::new(output),
            parser: HeadParser::new(c.limits),
            phase: Phase::Head,
            requests: 0,
            since_ns: now_ns,
            client_write_ns: now_ns,
            client_eof: false,
            http10: false,
            tunnel_upstream_eof: false,
            attached: false,
            linger_over: false,
            closing_since_ns: 0,
            actions: VecDeque::with_capacity(4),
            log_enabled: ctx.access_log.is_some(),
            log: LogState::default(),
            extra: String::new(),
            resp_extra: String::new(),
            h2_lane: false,
        }
    }

    /// Where to read client bytes to; empty while the connection cannot take more (read
    /// nothing until a later call gives room).
    pub fn client_read_buf(&mut self) -> &mut [u8] {
        match self.phase {
            Phase::Closing => {
                // Read and dropped, so that closing does not reset the connection under the
                // response.
                self.cin.clear();
            }
            Phase::Head if !self.cin.at_front() => {
                self.cin.compact();
                self.parser.reset();
            }
            _ => {}
        }
        if self.client_eof {
            return &mut [];
        }
        self.cin.space()
    }

    /// `n` bytes were read into [`Conn::client_read_buf`].
    pub fn client_read(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        // The first byte of a request on an idle keep-alive connection starts its head's clock:
        // the idle time before it was the keep-alive timeout's, not the head's (else a client
        // that sends a head in two packets after a minute of quiet would get 408).
        if n > 0 && self.cin.is_empty() && self.requests > 0 && matches!(self.phase, Phase::Head) {
            self.since_ns = now_ns;
        }
        self.cin.filled(n);
        if matches!(self.phase, Phase::Closing) {
            self.cin.clear();
            return;
        }
        if n > 0
            && let Phase::Exchange(ex) = &mut self.phase
        {
            ex.body_clock_ns = now_ns;
        }
        self.progress(ctx, now_ns);
    }

    /// The client closed its side (a read returned 0).
    pub fn client_eof(&mut self, ctx: &mut Context, now_ns: u64) {
        self.client_eof = true;
        self.progress(ctx, now_ns);
    }

    /// The client connection failed: nothing more can be sent on it.
    pub fn client_failed(&mut self, ctx: &mut Context, now_ns: u64) {
        self.client_eof = true;
        self.cout.clear();
        self.close(ctx, now_ns);
    }

    /// Bytes to write to the client.
    pub fn client_write_buf(&self) -> &[u8] {
        self.cout.bytes()
    }

    /// `n` bytes of [`Conn::client_write_buf`] were written.
    pub fn client_wrote(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        self.cout.consume(n);
        self.client_write_ns = now_ns;
        self.progress(ctx, now_ns);
    }

    /// Where to read upstream bytes to; empty when there is no connected upstream or no room.
    pub fn upstream_read_buf(&mut self) -> &mut [u8] {
        if !self.upstream_ready() {
            return &mut [];
        }
        self.uin.space()
    }

    /// `n` bytes were read into [`Conn::upstream_read_buf`].
    pub fn upstream_read(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        self.uin.filled(n);
        if n > 0
            && let Phase::Exchange(ex) = &mut self.phase
        {
            ex.resp_seen = true;
            ex.last_upstream_ns = now_ns;
            // Something answered: the request will not be sent again.
            self.uout.release_kept();
        }
        self.progress(ctx, now_ns);
    }

    /// Bytes to write to the upstream (empty until it is connected).
    pub fn upstream_write_buf(&self) -> &[u8] {
        if self.upstream_ready() { self.uout.bytes() } else { &[] }
    }

    /// `n` bytes of [`Conn::upstream_write_buf`] were written.
    pub fn upstream_wrote(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        self.uout.consume(n);
        if let Phase::Exchange(ex) = &mut self.phase {
            ex.last_upstream_ns = now_ns;
            ex.send_clock_ns = now_ns;
        }
        self.progress(ctx, now_ns);
    }

    /// The upstream connection asked for with [`Action::Connect`] is ready (`reused`: it came
    /// from the pool): TCP connected and, for a TLS upstream, its handshake done. The connect
    /// timeout (`proxy-connect-timeout`) runs until then, as nginx's covers its SSL handshake.
    pub fn upstream_connected(&mut self, ctx: &mut Context, reused: bool, now_ns: u64) {
        let _ = reused;
        if let Phase::Exchange(ex) = &mut self.phase {
            ex.up = Upstream::Ready;
            ex.last_upstream_ns = now_ns;
            ex.send_clock_ns = now_ns;
        }
        self.progress(ctx, now_ns);
    }

    /// The upstream connection failed.
    pub fn upstream_failed(&mut self, ctx: &mut Context, error: UpstreamError, now_ns: u64) {
        let gone = match error {
            UpstreamError::Connect => Gone::ConnectFailed,
            UpstreamError::Io => Gone::Reset,
        };
        self.upstream_gone(ctx, gone, now_ns);
    }

    /// The upstream closed its side (a read returned 0).
    pub fn upstream_eof(&mut self, ctx: &mut Context, now_ns: u64) {
        self.upstream_gone(ctx, Gone::Eof, now_ns);
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the connection is done: close the client socket (and drop this).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closing) && (self.cout.is_empty() || self.linger_over) && !self.attached
    }

    /// Whether the request in flight goes upstream over HTTP/2 (`backend-protocol` GRPC, GRPCS
    /// or H2C): the driver puts an [`H2Upstream`] between the core and the socket.
    pub fn upstream_h2(&self) -> bool {
        self.upstream_protocol().is_some_and(BackendProtocol::is_h2)
    }

    /// The `backend-protocol` of the request in flight (`None` between requests): HTTP/2 or
    /// not ([`Conn::upstream_h2`]), TLS or not ([`BackendProtocol::is_tls`]: the driver opens
    /// the upstream connection with `crate::upstream_tls`'s configuration, and reports
    /// [`Conn::upstream_connected`] once its handshake is done).
    pub fn upstream_protocol(&self) -> Option<BackendProtocol> {
        match &self.phase {
            Phase::Exchange(ex) => Some(ex.backend),
            _ => None,
        }
    }

    /// Whether an upstream connection is attached (between [`Action::Connect`] and
    /// [`Action::Release`]).
    pub fn has_upstream(&self) -> bool {
        self.attached
    }

    /// Bytes held in the connection's buffers now.
    pub fn buffered_bytes(&self) -> usize {
        self.cin.held() + self.cout.held() + self.uin.held() + self.uout.held()
    }

    /// Gives back the storage of every buffer that is empty (and keeps nothing for a retry):
    /// what the driver calls when it is done with the connection for now, so that an idle
    /// keep-alive connection holds no buffer. Storage waits in the thread's free list for the
    /// next bytes of any connection (no allocation once it has some).
    pub fn shed_idle_buffers(&mut self) {
        for b in [&mut self.cin, &mut self.cout, &mut self.uin, &mut self.uout] {
            b.shed();
        }
    }

    /// How many of the connection's four buffers hold storage now.
    pub fn buffers_held(&self) -> usize {
        [&self.cin, &self.cout, &self.uin, &self.uout].iter().filter(|b| b.has_storage()).count()
    }

    /// Runs the timers.
    pub fn tick(&mut self, ctx: &mut Context, now_ns: u64) {
        let c = ctx.config;
        let since = now_ns.saturating_sub(self.since_ns);
        if !self.cout.is_empty()
            && now_ns.saturating_sub(self.client_write_ns) >= c.client_send_timeout_ns
            && !matches!(self.phase, Phase::Closing)
        {
            ctx.stats.client_timeouts += 1;
            self.cout.clear();
            self.close(ctx, now_ns);
            return;
        }
        match &mut self.phase {
            Phase::Head => {
                let idle = self.cin.is_empty() && self.requests > 0;
                if idle && since >= c.client_idle_timeout_ns {
                    self.close(ctx, now_ns);
                } else if !idle && since >= c.client_head_timeout_ns {
                    ctx.stats.client_timeouts += 1;
                    if self.cin.is_empty() {
                        self.close(ctx, now_ns);
                    } else {
                        self.local(ctx, 408, None, true, now_ns);
                    }
                }
            }
            Phase::Discard(_) => {
                if since >= c.client_head_timeout_ns {
                    ctx.stats.client_timeouts += 1;
                    self.close(ctx, now_ns);
                }
            }
            // A request body that stalls on the client's side (every byte it sent was taken:
            // the wait is not the upstream's): nginx's `client_body_timeout`, between two
            // reads. Without it a body sent a byte a minute would hold its client connection
            // and an upstream connection for ever, every byte restarting the upstream's clocks.
            Phase::Exchange(ex) if !ex.req_done => {
                if !self.cin.is_empty() {
                    ex.body_clock_ns = now_ns;
                } else if now_ns.saturating_sub(ex.body_clock_ns) >= c.client_body_timeout_ns {
                    ctx.stats.client_timeouts += 1;
                    self.abort(ctx, 408, now_ns);
                    return;
                }
                self.tick_upstream(ctx, now_ns);
            }
            Phase::Exchange(_) => self.tick_upstream(ctx, now_ns),
            Phase::Tunnel => {
                if since >= c.upstream_read_timeout_ns {
                    self.close(ctx, now_ns);
                }
            }
            Phase::Closing => {
                if now_ns.saturating_sub(self.closing_since_ns) >= LINGER_NS {
                    self.linger_over = true;
                }
            }
        }
    }

    /// The upstream's timers of an exchange (connect, send, read).
    fn tick_upstream(&mut self, ctx: &mut Context, now_ns: u64) {
        let Phase::Exchange(ex) = &mut self.phase else { return };
        match ex.up {
            Upstream::Connecting { since_ns } if now_ns.saturating_sub(since_ns) >= ex.connect_timeout_ns => {
                self.upstream_gone(ctx, Gone::ConnectTimeout, now_ns);
            }
            // The send clock runs only while request bytes wait (to within one tick of
            // their arrival: nothing waiting, it is set to now).
            Upstream::Ready if self.uout.is_empty() => {
                ex.send_clock_ns = now_ns;
                if now_ns.saturating_sub(ex.last_upstream_ns) >= ex.read_timeout_ns && self.cout.is_empty() {
                    self.upstream_gone(ctx, Gone::ReadTimeout, now_ns);
                }
            }
            Upstream::Ready if now_ns.saturating_sub(ex.send_clock_ns) >= ex.send_timeout_ns => {
                self.upstream_gone(ctx, Gone::SendTimeout, now_ns);
            }
            Upstream::Ready
                if now_ns.saturating_sub(ex.last_upstream_ns) >= ex.read_timeout_ns
                    && self.cout.is_empty() =>
            {
                self.upstream_gone(ctx, Gone::ReadTimeout, now_ns);
            }
            _ => {}
        }
    }

    fn upstream_ready(&self) -> bool {
        match &self.phase {
            Phase::Exchange(ex) => self.attached && ex.up == Upstream::Ready,
            Phase::Tunnel => self.attached,
            _ => false,
        }
    }

    /// Moves bytes and steps the state machine until nothing more can happen.
    fn progress(&mut self, ctx: &mut Context, now_ns: u64) {
        let had_output = !self.cout.is_empty();
        loop {
            let moved = match self.phase {
                Phase::Head => self.on_head(ctx, now_ns),
                Phase::Discard(_) => self.on_discard(ctx, now_ns),
                Phase::Exchange(_) => self.on_exchange(ctx, now_ns),
                Phase::Tunnel => self.on_tunnel(ctx, now_ns),
                Phase::Closing => false,
            };
            if !moved {
                break;
            }
        }
        if !had_output && !self.cout.is_empty() {
            // The client's send timeout counts from when it had something to read.
            self.client_write_ns = now_ns;
        }
        let held = self.buffered_bytes();
        if held > ctx.stats.max_conn_buffered_bytes {
            ctx.stats.max_conn_buffered_bytes = held;
        }
    }

    fn on_head(&mut self, ctx: &mut Context, now_ns: u64) -> bool {
        // Room for an answer of Sluice's whose Location repeats the request's target, and for
        // the policy's extra lines.
        if self.cout.room(false) < LOCAL_ROOM + ctx.config.limits.max_uri_bytes + EXTRA_ROOM {
            // The last response is still leaving: the next request waits for room.
            return false;
        }
        let Conn {
            parser,
            cin,
            uout,
            peer,
            local_port,
            https,
            requests,
            log,
            log_enabled,
            http10,
            extra,
            resp_extra,
            ..
        } = self;
        let (start, head_len, method) = match parser.parse(cin.bytes()) {
            Ok(None) => {
                if self.client_eof {
                    self.close(ctx, now_ns);
                    return true;
                }
                return false;
            }
            Err(reject) => {
                ctx.stats.rejected_heads += 1;
                self.local(ctx, reject.status(), None, true, now_ns);
                return true;
            }
            Ok(Some(head)) => {
                *requests += 1;
                *http10 = head.version() == Version::Http10;
                ctx.stats.requests += 1;
                if *log_enabled {
                    log.host.clear();
                    log.host.push_str(head.authority());
                    log.line.clear();
                    let v = match head.version() {
                        _ if self.h2_lane => "HTTP/2.0",
                        Version::Http11 => "HTTP/1.1",
                        _ => "HTTP/1.0",
                    };
                    let _ = write!(log.line, "{} {} {v}", head.method_str(), head.target());
                }
                log.start_ns = now_ns;
                log.metric = 0;
                let conn = ConnFacts {
                    peer: *peer,
                    local_port: *local_port,
                    https: *https,
                    requests: *requests,
                    drain: ctx.draining && !self.h2_lane,
                };
                let start = begin(ctx, &head, uout, conn, now_ns, &mut log.metric, extra, resp_extra);
                (start, head.head_len(), head.method())
            }
        };
        self.cin.consume(head_len);
        self.since_ns = now_ns;
        match start {
            Start::Local { status, close, discard } => {
                self.local(ctx, status, Some(method), close, now_ns);
                if !close && let Some(d) = discard {
                    self.phase = Phase::Discard(d);
                }
            }
            Start::Proxy(ex) => {
                self.actions.push_back(Action::Connect(ex.addr));
                self.attached = true;
                self.phase = Phase::Exchange(ex);
            }
        }
        true
    }

    fn on_discard(&mut self, ctx: &mut Context, now_ns: u64) -> bool {
        let Phase::Discard(d) = &mut self.phase else { return false };
        if self.cin.is_empty() {
            if self.client_eof {
                self.close(ctx, now_ns);
                return true;
            }
            return false;
        }
        match d.decode_piece(self.cin.bytes(), |_| {}) {
            Ok(Some(end)) => {
                self.cin.consume(end);
                self.phase = Phase::Head;
                self.since_ns = now_ns;
            }
            Ok(None) => self.cin.consume(self.cin.len()),
            Err(_) => {
                ctx.stats.rejected_bodies += 1;
                self.close(ctx, now_ns);
            }
        }
        true
    }

    fn on_exchange(&mut self, ctx: &mut Context, now_ns: u64) -> bool {
        let Phase::Exchange(ex) = &mut self.phase else { return false };
        let mut moved = false;
        // The request body, client → upstream.
        if !ex.req_done {
            match pump(&mut ex.req, &mut self.cin, &mut self.uout, ex.req_chunked) {
                Ok((m, done)) => {
                    moved |= m;
                    ex.req_done = done;
                    if !done && self.client_eof && self.cin.is_empty() {
                        // The client went away mid-body.
                        self.abort(ctx, 0, now_ns);
                        return true;
                    }
                }
                Err(e) => {
                    ctx.stats.rejected_bodies += 1;
                    let status = e.status();
                    self.abort(ctx, status, now_ns);
                    return true;
                }
            }
        }
        let Phase::Exchange(ex) = &mut self.phase else { return moved };
        if ex.up != Upstream::Ready {
            return moved;
        }
        // The response, upstream → client.
        loop {
            match &mut ex.resp {
                Resp::Head => {
                    if self.uin.is_empty() || self.cout.room(false) < self.uin.len() + 256 {
                        break;
                    }
                    match response::relay_head(self.uin.bytes(), ex.client, &mut self.cout, &self.resp_extra)
                    {
                        Ok(None) => {
                            if self.uin.room(false) == 0 || ex.upstream_eof {
                                self.abort(ctx, 502, now_ns);
                                return true;
                            }
                            break;
                        }
                        Err(_) => {
                            self.abort(ctx, 502, now_ns);
                            return true;
                        }
                        Ok(Some(h)) => {
                            moved = true;
                            self.uin.consume(h.head_len);
                            if (100..200).contains(&h.status) && h.status != 101 {
                                continue;
                            }
                            ctx.health.succeeded(&ex.addr);
                            ex.status = h.status;
                            ex.head_sent = true;
                            ex.close_client |= h.close_client;
                            ex.upstream_keep_alive = h.upstream_keep_alive;
                            ex.resp = match h.body {
                                Body::None => Resp::Done,
                                Body::Length(n) => Resp::Body {
                                    decoder: BodyDecoder::new(Framing::ContentLength(n), None).ok(),
                                    rechunk: false,
                                },
                                Body::Chunked => Resp::Body {
                                    decoder: BodyDecoder::new(Framing::Chunked, None).ok(),
                                    rechunk: h.rechunk,
                                },
                                Body::Close => Resp::Body { decoder: None, rechunk: h.rechunk },
                                Body::Tunnel => {
                                    self.uout.release_kept();
                                    self.log_done(ctx, now_ns);
                                    self.phase = Phase::Tunnel;
                                    self.since_ns = now_ns;
                                    return true;
                                }
                            };
                        }
                    }
                }
                Resp::Body { decoder: Some(d), rechunk } => {
                    let before = self.cout.len();
                    match pump(d, &mut self.uin, &mut self.cout, *rechunk) {
                        Ok((m, done)) => {
                            moved |= m;
                            ex.body_bytes += self.cout.len().saturating_sub(before) as u64;
                            if done {
                                ex.resp = Resp::Done;
                            } else {
                                if ex.upstream_eof && self.uin.is_empty() {
                                    // Cut short: the client cannot be told but by a close.
                                    self.abort(ctx, 0, now_ns);
                                    return true;
                                }
                                break;
                            }
                        }
                        Err(_) => {
                            self.abort(ctx, 0, now_ns);
                            return true;
                        }
                    }
                }
                Resp::Body { decoder: None, rechunk } => {
                    let before = self.cout.len();
                    moved |= copy(&mut self.uin, &mut self.cout, *rechunk);
                    ex.body_bytes += self.cout.len().saturating_sub(before) as u64;
                    if ex.upstream_eof && self.uin.is_empty() {
                        if *rechunk && !self.cout.push(b"0\r\n\r\n") {
                            break;
                        }
                        ex.upstream_keep_alive = false;
                        ex.resp = Resp::Done;
                    } else {
                        break;
                    }
                }
                Resp::Done => break,
            }
        }
        let Phase::Exchange(ex) = &mut self.phase else { return moved };
        if matches!(ex.resp, Resp::Done) {
            self.finish(ctx, now_ns);
            return true;
        }
        moved
    }

    fn on_tunnel(&mut self, ctx: &mut Context, now_ns: u64) -> bool {
        let mut moved = copy(&mut self.cin, &mut self.uout, false);
        moved |= copy(&mut self.uin, &mut self.cout, false);
        if moved {
            self.since_ns = now_ns;
        }
        if (self.client_eof && self.cin.is_empty() && self.uout.is_empty())
            || (self.tunnel_upstream_eof && self.uin.is_empty())
        {
            self.close(ctx, now_ns);
            return true;
        }
        moved
    }

    /// The response is complete.
    fn finish(&mut self, ctx: &mut Context, now_ns: u64) {
        let Phase::Exchange(ex) = &self.phase else { return };
        let keep_upstream = ex.upstream_keep_alive
            && ex.req_done
            && self.uout.is_empty()
            && self.uin.is_empty()
            && ctx.generation.is_live(&ex.addr);
        let close = ex.close_client || !ex.req_done;
        if ctx.config.balance == Balance::Ewma {
            // ingress-nginx's sample: connect and response time of the attempt that answered.
            ctx.health.observe(ex.addr, now_ns.saturating_sub(ex.attempt_ns), now_ns);
        }
        self.log_done(ctx, now_ns);
        self.release(keep_upstream);
        // Whatever else the upstream sent is not for the next request.
        self.uin.clear();
        self.uout.clear();
        if close {
            self.close(ctx, now_ns);
        } else {
            self.phase = Phase::Head;
            self.since_ns = now_ns;
        }
    }

    /// Counts and logs the request in flight.
    fn log_done(&mut self, ctx: &mut Context, now_ns: u64) {
        let Phase::Exchange(ex) = &self.phase else { return };
        ctx.stats.responses[usize::from(ex.status / 100).min(5)] += 1;
        let (request_ns, upstream_ns) =
            (now_ns.saturating_sub(ex.start_ns), now_ns.saturating_sub(ex.attempt_ns));
        ctx.routes.record(self.log.metric, ex.status, ex.body_bytes, request_ns, Some(upstream_ns));
        if let Some(sink) = ctx.access_log.as_mut() {
            sink(&AccessRecord {
                client: self.peer,
                host: &self.log.host,
                request_line: &self.log.line,
                status: ex.status,
                body_bytes: ex.body_bytes,
                upstream: Some(ex.addr),
                request_time_ns: request_ns,
                upstream_time_ns: Some(upstream_ns),
            });
        }
    }

    /// The exchange cannot go on: answer `status` if the response has not begun (0: do not
    /// answer), and close.
    fn abort(&mut self, ctx: &mut Context, status: u16, now_ns: u64) {
        let Phase::Exchange(ex) = &mut self.phase else { return };
        let method = ex.client.method;
        if status != 0 && !ex.head_sent {
            self.release(false);
            self.uin.clear();
            self.uout.clear();
            self.local(ctx, status, Some(method), true, now_ns);
        } else {
            if status == 0 && !ex.head_sent {
                ex.status = 0;
            }
            self.log_done(ctx, now_ns);
            self.close(ctx, now_ns);
        }
    }

    /// The upstream connection of the request in flight is gone or timed out.
    fn upstream_gone(&mut self, ctx: &mut Context, gone: Gone, now_ns: u64) {
        match &mut self.phase {
            Phase::Exchange(ex) => {
                if gone == Gone::Eof && (ex.resp_seen || !self.uin.is_empty()) {
                    ex.upstream_eof = true;
                    ex.upstream_keep_alive = false;
                    self.progress(ctx, now_ns);
                    return;
                }
                if ex.resp_seen || ex.head_sent {
                    self.abort(ctx, 502, now_ns);
                    return;
                }
                let never_sent = matches!(ex.up, Upstream::Connecting { .. });
                if matches!(gone, Gone::ConnectFailed | Gone::ConnectTimeout | Gone::Reset) {
                    ctx.health.failed(ex.addr, now_ns);
                }
                let may_resend = match gone {
                    Gone::ConnectFailed | Gone::ConnectTimeout => never_sent,
                    Gone::Reset | Gone::Eof => ex.idempotent && !ex.client.upgrade,
                    Gone::ReadTimeout | Gone::SendTimeout => false,
                };
                let status = match gone {
                    Gone::ConnectTimeout | Gone::ReadTimeout | Gone::SendTimeout => 504,
                    _ => 502,
                };
                let random = ctx.next_random();
                if may_resend
                    && ex.tries < ctx.config.tries
                    && self.uout.replayable()
                    && let Some(next) = ex.generation.pick(
                        ex.upstream,
                        &ctx.health,
                        now_ns,
                        Some(ex.addr),
                        ctx.config.balance,
                        random,
                    )
                {
                    ctx.stats.retries += 1;
                    ex.tries += 1;
                    ex.addr = next;
                    ex.up = Upstream::Connecting { since_ns: now_ns };
                    ex.attempt_ns = now_ns;
                    ex.last_upstream_ns = now_ns;
                    ex.send_clock_ns = now_ns;
                    self.uout.rewind();
                    self.uin.clear();
                    self.release(false);
                    self.attached = true;
                    self.actions.push_back(Action::Connect(next));
                    self.progress(ctx, now_ns);
                    return;
                }
                self.abort(ctx, status, now_ns);
            }
            Phase::Tunnel => {
                // What the upstream sent before it closed still goes to the client.
                self.tunnel_upstream_eof = true;
                self.progress(ctx, now_ns);
            }
            _ => {}
        }
    }

    fn release(&mut self, keep_alive: bool) {
        if self.attached {
            self.attached = false;
            self.actions.push_back(Action::Release { keep_alive });
        }
    }

    /// Queues a response of Sluice's own (`method`: of the request, if one was read), and
    /// closes after it if `close`.
    fn local(&mut self, ctx: &mut Context, status: u16, method: Option<Method>, close: bool, now_ns: u64) {
        self.release(false);
        let close = close || self.client_eof;
        ctx.stats.local_responses += 1;
        ctx.stats.responses[usize::from(status / 100).min(5)] += 1;
        let reason = reason(status);
        if self.cout.is_empty() {
            self.client_write_ns = now_ns;
        }
        // A 204 (a CORS preflight) has no body (RFC 9110 §15.3.5).
        let bodiless = status == 204;
        let body_len = if bodiless { 0 } else { 3 + 1 + reason.len() + 1 };
        // Extra lines belong to the request just routed; a head refused or timed out has none.
        let mut extra = if method.is_some() { self.extra.as_str() } else { "" };
        if !self.cout.reserve(LOCAL_ROOM + extra.len()) {
            extra = "";
        }
        let connection = match (close, self.http10) {
            (true, _) => "Connection: close\r\n",
            (false, true) => "Connection: keep-alive\r\n",
            (false, false) => "",
        };
        let mut out = Out(&mut self.cout);
        let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nServer: sluice\r\n");
        let _ = out.write_str(extra);
        if !bodiless {
            let _ = write!(out, "Content-Type: text/plain\r\nContent-Length: {body_len}\r\n");
        }
        let _ = out.write_str(connection);
        let _ = out.write_str("\r\n");
        if method != Some(Method::Head) && !bodiless {
            let _ = writeln!(out, "{status} {reason}");
        }
        self.extra.clear();
        // A head that was not read (refused, or too slow) was routed nowhere: row 0, timed from
        // when the connection began waiting for it.
        let known = method.is_some();
        let (row, start_ns) = if known { (self.log.metric, self.log.start_ns) } else { (0, self.since_ns) };
        let request_ns = now_ns.saturating_sub(start_ns);
        ctx.routes.record(row, status, body_len as u64, request_ns, None);
        if let Some(sink) = ctx.access_log.as_mut() {
            sink(&AccessRecord {
                client: self.peer,
                host: if known { &self.log.host } else { "" },
                request_line: if known { &self.log.line } else { "" },
                status,
                body_bytes: body_len as u64,
                upstream: None,
                request_time_ns: request_ns,
                upstream_time_ns: None,
            });
        }
        if close {
            self.close(ctx, now_ns);
        } else {
            self.phase = Phase::Head;
            self.since_ns = now_ns;
        }
    }

    /// Closes after what is queued for the client is written.
    fn close(&mut self, _ctx: &mut Context, now_ns: u64) {
        self.release(false);
        if !matches!(self.phase, Phase::Closing) {
            self.closing_since_ns = now_ns;
        }
        self.phase = Phase::Closing;
        self.cin.clear();
        self.uin.clear();
        self.uout.clear();
    }
}

/// What a request's connection is, for [`begin`].
#[derive(Debug, Clone, Copy)]
struct ConnFacts {
    peer: SocketAddr,
    local_port: u16,
    https: bool,
    /// Requests on the connection so far, this one included.
    requests: u32,
    /// The gateway is draining and this is an HTTP/1.1 connection: close after this request.
    drain: bool,
}

/// Decides what to do with a request and, to proxy it, writes its head for the upstream.
#[allow(clippy::too_many_arguments)]
fn begin(
    ctx: &mut Context,
    head: &RequestHead<'_>,
    uout: &mut Buf,
    conn: ConnFacts,
    now_ns: u64,
    metric: &mut u16,
    extra: &mut String,
    resp_extra: &mut String,
) -> Start {
    let ConnFacts { peer, local_port, https, requests, drain } = conn;
    let keep = head.keep_alive() && requests < ctx.config.max_requests_per_client && !drain;
    let method = head.method();
    let generation = Rc::clone(&ctx.generation);
    let route = generation.router().route(head.authority(), head.path());
    *metric = route.metric();
    let policy = generation.policy(route.policy());
    // `proxy-body-size`: the route's, `0` meaning no limit; else the gateway's.
    let body_limit = match policy.body_limit {
        None => ctx.config.max_body_bytes,
        Some(0) => None,
        Some(n) => Some(n),
    };
    let req = match BodyDecoder::new(head.framing(), body_limit) {
        Ok(d) => d,
        Err(e) => return Start::Local { status: e.status(), close: true, discard: None },
    };
    let has_body = !req.is_done();
    let expect = head.expect_continue();
    let local = |status, req| Start::Local {
        status,
        close: !keep || (has_body && expect),
        discard: if has_body { Some(req) } else { None },
    };
    extra.clear();
    resp_extra.clear();
    match route {
        Route::NotFound => return local(404, req),
        Route::Redirect { .. } => {
            // ingress-nginx's dialect: the path with its slashes merged, or with its rule's slash.
            extra.push_str("Location: ");
            generation.router().redirect_location(head.query(), extra);
            extra.push_str("\r\n");
            return local(301, req);
        }
        Route::Path { .. } | Route::Default { .. } => {}
    }
    // nginx's phases, as ingress-nginx fills them: the rewrite phase (redirects, the denied
    // location, the CORS preflight, the redirect to HTTPS), then preaccess (limits), then
    // access (source ranges, basic auth).
    if let Some(status) = gate::gate(policy, &generation, head, peer, https, extra, resp_extra) {
        return local(status, req);
    }
    let mut guard = None;
    if let Some(rule) = generation.limit(&route) {
        let ip = peer.ip();
        if ctx.shared.limiter.check_rate(rule, ip, now_ns) == RateVerdict::Refused {
            ctx.stats.limited += 1;
            return local(503, req);
        }
        match ctx.shared.limiter.acquire(rule, ip) {
            Ok(g) => guard = g,
            Err(_) => {
                ctx.stats.limited += 1;
                return local(503, req);
            }
        }
    }
    if !policy.admits(peer.ip()) {
        return local(403, req);
    }
    if let Some(check) = generation.auth(route.policy()) {
        match check.verify(gate::field(head, "authorization"), &mut ctx.auth_cache, now_ns) {
            AuthOutcome::Allowed => {}
            AuthOutcome::Denied(_) => {
                ctx.stats.auth_denied += 1;
                // A realm is at most 255 bytes, each escaped to at most two.
                let mut line = [0u8; 600];
                if let Ok(n) = check.write_challenge(&mut line) {
                    extra.push_str(std::str::from_utf8(&line[..n]).unwrap_or(""));
                }
                return local(401, req);
            }
            AuthOutcome::Busy => return local(503, req),
        }
    }
    // A canary Ingress takes the requests its rule picks (header, then cookie, then weight);
    // they are counted in its row.
    let mut backend_service = route.service();
    if let Route::Path { path, .. } = route
        && let Some(c) = &path.canary
    {
        let random = ctx.next_random();
        let cookies = head.fields().filter(|f| f.name.eq_ignore_ascii_case("cookie")).map(|f| f.value);
        let header = |name: &str| gate::field(head, name);
        if generation.picks_canary(path, header, cookies, random) {
            backend_service = match &c.backend {
                sluice_model::route::Backend::Service(s) => Some(s),
                sluice_model::route::Backend::Unavailable(_) => None,
            };
            *metric = c.metric;
        }
    }
    let upstream = match backend_service.and_then(|s| generation.upstream(s)) {
        Some(u) => u,
        None => return local(503, req),
    };
    // `rewrite-target` (ingress-nginx's dialect): the upstream path from the matched path's
    // groups, with the request's query.
    let mut target = std::mem::take(&mut ctx.target);
    target.clear();
    if let Some(t) = &policy.rewrite
        && !generation.router().rewrite(t, head.query(), &mut target)
    {
        target.clear();
    }
    // The endpoint: the one the affinity cookie gives (while it is eligible and up), else the
    // one `upstream-hash-by` chooses, else the balancer's; a new affinity cookie names it.
    // `affinity-mode: persistent`: the cookie names its endpoint (a keyed token), which keeps
    // it while it exists. `balanced` (the default): the cookie holds a random key hashed over
    // the endpoints (rendezvous), so a scale-up moves its share of the sessions to the new
    // endpoints, as ingress-nginx's consistent hash of a random key does.
    let mut chosen = None;
    let mut new_cookie = None;
    if let Some(aff) = &policy.affinity {
        let cookies = head.fields().filter(|f| f.name.eq_ignore_ascii_case("cookie")).map(|f| f.value);
        let value = cookie::find(cookies, &aff.name);
        if aff.persistent {
            chosen = value
                .and_then(|v| generation.endpoint_by_token(upstream, v, &ctx.shared.key))
                .filter(|a| ctx.health.is_up(a, now_ns));
            if chosen.is_none() {
                new_cookie = Some(None);
            }
        } else {
            let key = match value.and_then(EndpointToken::parse) {
                Some(t) => t.0,
                None => {
                    let k = ctx.next_random();
                    new_cookie = Some(Some(EndpointToken(k)));
                    k
                }
            };
            chosen = generation.pick_hashed(upstream, key, &ctx.health, now_ns);
        }
    }
    if chosen.is_none()
        && let Some(key) = &policy.hash_by
    {
        chosen = generation.pick_hashed(upstream, gate::hash_key(key, head, peer), &ctx.health, now_ns);
    }
    let random = if ctx.config.balance == Balance::Ewma { ctx.next_random() } else { 0 };
    let Some(addr) =
        chosen.or_else(|| generation.pick(upstream, &ctx.health, now_ns, None, ctx.config.balance, random))
    else {
        return local(503, req);
    };
    if let (Some(token), Some(aff)) = (new_cookie, &policy.affinity) {
        let token = token.unwrap_or_else(|| EndpointToken::of(&ctx.shared.key, addr));
        let path = match route {
            Route::Path { path, .. } => path.path.as_str(),
            _ => "/",
        };
        let mut line = [0u8; 512];
        if let Ok(n) = cookie::write_set_cookie(aff, token, path, https, ctx.unix_s(now_ns), &mut line) {
            resp_extra.push_str(std::str::from_utf8(&line[..n]).unwrap_or(""));
        }
    }
    let upgrade = head.upgrade().is_some();
    let chunked = head.framing() == Framing::Chunked;
    let client = Client { method, http11: head.version() == Version::Http11, close: !keep, upgrade };
    uout.clear();
    uout.keep_from_start();
    let rid = [ctx.next_random(), ctx.next_random()];
    let trusted = ctx.config.trust_forwarded_headers;
    let written = write_request(head, client, uout, peer, local_port, https, trusted, rid, policy, &target);
    ctx.target = target;
    if written.is_err() {
        uout.clear();
        return Start::Local { status: 431, close: true, discard: None };
    }
    let idempotent = matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete | Method::Trace
    );
    let connect_timeout_ns =
        policy.connect_timeout_s.map_or(ctx.config.upstream_connect_timeout_ns, |s| u64::from(s) * SECOND_NS);
    let read_timeout_ns =
        policy.read_timeout_s.map_or(ctx.config.upstream_read_timeout_ns, |s| u64::from(s) * SECOND_NS);
    let send_timeout_ns =
        policy.send_timeout_s.map_or(ctx.config.upstream_send_timeout_ns, |s| u64::from(s) * SECOND_NS);
    let backend = policy.backend_protocol;
    Start::Proxy(Exchange {
        generation,
        upstream,
        addr,
        tries: 1,
        idempotent,
        client,
        req,
        req_chunked: chunked,
        req_done: !has_body,
        up: Upstream::Connecting { since_ns: now_ns },
        resp: Resp::Head,
        resp_seen: false,
        head_sent: false,
        upstream_eof: false,
        close_client: !keep,
        upstream_keep_alive: false,
        status: 0,
        body_bytes: 0,
        start_ns: now_ns,
        attempt_ns: now_ns,
        last_upstream_ns: now_ns,
        send_clock_ns: now_ns,
        body_clock_ns: now_ns,
        connect_timeout_ns,
        read_timeout_ns,
        send_timeout_ns,
        _limit_guard: guard,
        backend,
    })
}

/// Writes the request head the upstream gets.
#[expect(clippy::too_many_arguments, reason = "the request and the connection's facts, each used once")]
fn write_request(
    head: &RequestHead<'_>,
    client: Client,
    uout: &mut Buf,
    peer: SocketAddr,
    local_port: u16,
    https: bool,
    trusted: bool,
    rid: [u64; 2],
    policy: &Policy,
    rewritten: &[u8],
) -> std::fmt::Result {
    let upgrading = head.upgrade().is_some();
    let mut out = Out(uout);
    out.write_str(head.method_str())?;
    out.write_str(" ")?;
    if !rewritten.is_empty() {
        // `rewrite-target`: the path (and query) the route made; Host as the client sent it.
        out.raw(rewritten)?;
        out.write_str(" HTTP/1.1\r\n")?;
        if head.form() == TargetForm::Absolute && policy.upstream_vhost.is_none() {
            write!(out, "Host: {}\r\n", head.authority())?;
        }
    } else if head.form() == TargetForm::Absolute {
        // RFC 9112 §3.2.2: origin-form upstream, Host from the target's authority.
        out.write_str(head.path())?;
        if let Some(q) = head.query() {
            out.write_str("?")?;
            out.write_str(q)?;
        }
        out.write_str(" HTTP/1.1\r\n")?;
        if policy.upstream_vhost.is_none() {
            write!(out, "Host: {}\r\n", head.authority())?;
        }
    } else {
        out.write_str(head.target())?;
        out.write_str(" HTTP/1.1\r\n")?;
    }
    // `upstream-vhost`, `x-forwarded-prefix`, `proxy-set-headers`: the client's own fields of
    // those names are dropped below.
    if let Some(vhost) = &policy.upstream_vhost {
        out.write_str("Host: ")?;
        out.write_str(vhost)?;
        out.write_str("\r\n")?;
    }
    if let Some(prefix) = &policy.forwarded_prefix {
        out.write_str("X-Forwarded-Prefix: ")?;
        out.write_str(prefix)?;
        out.write_str("\r\n")?;
    }
    for h in &policy.request_headers {
        out.write_str(&h.name)?;
        out.write_str(": ")?;
        out.write_str(&h.value)?;
        out.write_str("\r\n")?;
    }
    let trivial = policy.basic_auth.is_none()
        && policy.upstream_vhost.is_none()
        && policy.forwarded_prefix.is_none()
        && policy.request_headers.is_empty();
    let (mut xff, mut has_real_ip, mut has_proto, mut has_fhost, mut has_fport, mut has_rid) =
        (None, false, false, false, false, false);
    let chunked = head.framing() == Framing::Chunked;
    for f in head.end_to_end_fields(upgrading) {
        let n = f.name;
        if n.eq_ignore_ascii_case("host") && head.form() == TargetForm::Absolute {
            continue;
        }
        if !trivial && gate::drops(policy, n) {
            continue;
        }
        if n.eq_ignore_ascii_case("trailer") {
            // It announces the trailer section, which goes upstream with a chunked body only.
            if chunked && !write_trailer_field(out.0, f.value) {
                return Err(std::fmt::Error);
            }
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            if trusted && xff.is_none() {
                xff = Some(f.value);
            }
            continue;
        }
        let forwarded = [
            ("x-real-ip", &mut has_real_ip),
            ("x-forwarded-proto", &mut has_proto),
            ("x-forwarded-host", &mut has_fhost),
            ("x-forwarded-port", &mut has_fport),
        ];
        let mut skip = false;
        for (name, seen) in forwarded {
            if n.eq_ignore_ascii_case(name) {
                *seen = trusted;
                skip = !trusted;
            }
        }
        if skip {
            continue;
        }
        has_rid |= n.eq_ignore_ascii_case("x-request-id");
        out.write_str(n)?;
        out.write_str(": ")?;
        if !out.0.push(f.value) {
            return Err(std::fmt::Error);
        }
        out.write_str("\r\n")?;
    }
    let ip = peer.ip();
    out.write_str("X-Forwarded-For: ")?;
    if let Some(prev) = xff {
        if !out.0.push(prev) {
            return Err(std::fmt::Error);
        }
        out.write_str(", ")?;
    }
    out.ip(ip)?;
    out.write_str("\r\n")?;
    if !has_real_ip {
        out.write_str("X-Real-IP: ")?;
        out.ip(ip)?;
        out.write_str("\r\n")?;
    }
    if !has_proto {
        out.write_str(if https { "X-Forwarded-Proto: https\r\n" } else { "X-Forwarded-Proto: http\r\n" })?;
    }
    if !has_fhost {
        out.write_str("X-Forwarded-Host: ")?;
        out.write_str(head.authority())?;
        out.write_str("\r\n")?;
    }
    if !has_fport {
        out.write_str("X-Forwarded-Port: ")?;
        out.dec(u64::from(local_port))?;
        out.write_str("\r\n")?;
    }
    if !has_rid {
        out.write_str("X-Request-ID: ")?;
        out.hex16(rid[0])?;
        out.hex16(rid[1])?;
        out.write_str("\r\n")?;
    }
    if chunked {
        out.write_str("Transfer-Encoding: chunked\r\n")?;
    }
    // RFC 9110 §10.1.4: `TE: trailers` says the sender will not discard trailer fields. TE is
    // hop-by-hop, so Sluice says it for itself, and only when that holds end to end: the client
    // said it, and the response's trailer section will reach the client (which gets a chunked
    // body, HTTP/1.1). Its other t-codings are not Sluice's to accept. A sender of TE names it
    // in Connection too.
    let te_trailers = client.takes_chunked()
        && head.fields().any(|f| {
            f.name.eq_ignore_ascii_case("te") && tokens(f.value).any(|t| t.eq_ignore_ascii_case(b"trailers"))
        });
    if te_trailers {
        out.write_str("TE: trailers\r\n")?;
    }
    match (te_trailers, upgrading) {
        (true, true) => out.write_str("Connection: te, upgrade\r\n")?,
        (true, false) => out.write_str("Connection: te\r\n")?,
        (false, true) => out.write_str("Connection: upgrade\r\n")?,
        (false, false) => {}
    }
    out.write_str("\r\n")
}

/// Room a re-framing step keeps free in its destination beyond the bytes it consumes: a data
/// step's chunk-size line (up to 16 hex digits, CRLF) and the CRLF after the data; a step at the
/// end, the last chunk (`0` CRLF), a held trailer name and the final CRLF.
const REFRAME_ROOM: usize = 32;
const _: () = assert!(16 + 2 + 2 <= REFRAME_ROOM && 3 + MAX_TRAILER_PREFIX_BYTES + 2 <= REFRAME_ROOM);

/// Decodes a body from `src` into `dst` as far as both allow, framing it chunked again if
/// `rechunk`: whether bytes moved, and whether the body is complete. A chunked body's trailer
/// section goes along when `rechunk` (RFC 9112 §7.1.2: the recipient gets it chunked too),
/// without the fields [`crate::h1::NOT_IN_TRAILERS`] names; without `rechunk` (an HTTP/1.0
/// client gets the body delimited by close) it is dropped, as RFC 9110 §6.5.1 allows.
fn pump(
    dec: &mut BodyDecoder,
    src: &mut Buf,
    dst: &mut Buf,
    rechunk: bool,
) -> Result<(bool, bool), BodyError> {
    let overhead = if rechunk { REFRAME_ROOM } else { 0 };
    let mut moved = false;
    loop {
        if dec.is_done() {
            return Ok((moved, true));
        }
        if src.is_empty() {
            return Ok((moved, false));
        }
        let room = dst.room(true).saturating_sub(overhead);
        if room == 0 {
            return Ok((moved, false));
        }
        let n = src.len().min(room);
        let step = dec.decode(&src.bytes()[..n])?;
        if !step.data.is_empty() {
            let data = &src.bytes()[step.data.clone()];
            if rechunk {
                let _ = write!(Out(dst), "{:x}\r\n", data.len());
            }
            dst.push(data);
            if rechunk {
                dst.push(b"\r\n");
            }
        }
        if rechunk {
            if step.last_chunk {
                dst.push(b"0\r\n");
            }
            if !step.trailer.is_empty() {
                dst.push(dec.trailer_prefix());
                dst.push(&src.bytes()[step.trailer.clone()]);
            }
        }
        src.consume(step.consumed);
        moved |= step.consumed > 0;
        if step.done {
            if rechunk {
                // The empty line that ends the trailer section.
                dst.push(b"\r\n");
            }
            return Ok((moved, true));
        }
        if step.consumed == 0 {
            return Ok((moved, false));
        }
    }
}

/// Copies what fits from `src` to `dst` (as one chunk if `rechunk`); whether bytes moved.
fn copy(src: &mut Buf, dst: &mut Buf, rechunk: bool) -> bool {
    let overhead = if rechunk { REFRAME_ROOM } else { 0 };
    let n = src.len().min(dst.room(true).saturating_sub(overhead));
    if n == 0 {
        return false;
    }
    if rechunk {
        let _ = write!(Out(dst), "{n:x}\r\n");
    }
    dst.push(&src.bytes()[..n]);
    if rechunk {
        dst.push(b"\r\n");
    }
    src.consume(n);
    true
}

/// Writes a Trailer field (RFC 9110 §6.6.2) announcing the names of `value` that may be
/// forwarded in a trailer section ([`is_allowed_in_trailer`]); nothing when none may. False
/// when it does not fit.
fn write_trailer_field(out: &mut Buf, value: &[u8]) -> bool {
    let mut names = tokens(value).filter(|n| is_allowed_in_trailer(n));
    let Some(first) = names.next() else { return true };
    if !(out.push(b"Trailer: ") && out.push(first)) {
        return false;
    }
    for n in names {
        if !(out.push(b", ") && out.push(n)) {
            return false;
        }
    }
    out.push(b"\r\n")
}

/// The reason phrase Sluice sends with its own statuses.
fn reason(status: u16) -> &'static str {
    match status {
        204 => "No Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
