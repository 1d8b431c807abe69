//! HTTP/2 clients of the reverse proxy, sans-IO: one [`H2Conn`] per client connection that
//! speaks HTTP/2 (ALPN `h2`, or the connection preface on a plain listener), multiplexing its
//! streams over the HTTP/1.1 core of [`super::Conn`].
//!
//! # Design: an adapter over the HTTP/1.1 core
//! Each stream is served by a *lane*: a [`super::Conn`] — the same state machine an HTTP/1.1
//! client connection gets — fed a request head synthesized from the stream's HEADERS
//! (`METHOD :path HTTP/1.1`, `Host` from `:authority`, the fields as they came, `cookie`
//! fields joined with `; ` per RFC 9113 §8.2.3, `Transfer-Encoding: chunked` when there is no
//! Content-Length and a body follows) and its DATA (framed chunked, or as it is under a
//! Content-Length); the HTTP/1.1 response the core writes for its "client" is parsed back
//! into HEADERS, DATA and trailers. So routing, the policy gate (404, 503, redirects, auth,
//! limits), endpoint choice, the upstream head (X-Forwarded-*, X-Request-ID), retries,
//! timeouts, per-route metrics and the access log are the HTTP/1.1 path's, with one source.
//! A lane is kept for the next stream once its exchange is done (its core goes back to
//! waiting for a head, like a keep-alive connection), so a busy connection makes no new core
//! per stream; its upstream connection goes back to the worker's keep-alive pool as with
//! HTTP/1.1.
//!
//! # Flow control, both ways
//! - Client → upstream: DATA goes into the lane core's input buffer as far as it has room; the
//!   rest waits in the lane's staging buffer (at most a stream window: the client cannot send
//!   more unreleased). Bytes are released to the client ([`h2::Conn::release`], so
//!   WINDOW_UPDATE) only as they enter the core, which takes them only as the upstream takes
//!   them: a slow upstream stops the client's stream and nothing else.
//! - Upstream → client: the core's output buffer is read only as far as the client's stream
//!   and connection windows allow ([`h2::Conn::send_capacity`]); a full output buffer stops
//!   the core reading its upstream.
//!
//! # Streams that fail, connections that end
//! A stream whose exchange fails after its response began (the upstream closed or reset
//! mid-body, a timeout) is reset (RST_STREAM INTERNAL_ERROR) and counted; the others go on.
//! A stream the client resets aborts its lane (its upstream connection is closed, not pooled).
//! A response complete before the request body is ends the stream with RST_STREAM NO_ERROR
//! (RFC 9113 §8.1). [`H2Conn::go_away`] (gateway shutdown) and [`H2Conn::generation_changed`]
//! (a table change that removes the route of a stream in flight) send GOAWAY: the streams
//! open finish, new ones are ignored, and the connection closes when they are done. A
//! connection error (a flood, a protocol error) is counted by its reason
//! ([`crate::h2::Reason::counter`]) and ends every lane.
//!
//! # Cost and allocation
//! Per connection: the [`h2::Conn`] (its HPACK tables; its output buffer from the thread's free
//! list, given back when idle; its other buffers grown to the most used — see its module), the
//! input buffer (storage from the free list, given back when idle) and the head scratch buffer
//! (grown to the longest head). Per lane, made the
//! first time that many streams are open at once and kept: a core (its action queue and
//! head-parser index; its four buffers take storage from the free list only while busy), a
//! staging buffer (storage only while a request body waits), and the route key string.
//! Per stream after that: nothing, except trailers (their fields are gathered in a vector per
//! lane that grows to the largest trailer section seen), and a new core when the last one was
//! given up (a stream reset, a failed exchange, a response complete before its request body,
//! or the core's [`super::Config::max_requests_per_client`] reached). The price of one source for the
//! semantics: each request head is written as HTTP/1.1 and parsed again, and each response
//! head parsed once more (`httparse`), and chunked bodies are framed and decoded once more.
//!
//! # Known limits
//! - No CONNECT (RFC 9113 §8.5) and no extended CONNECT: a tunnel answer resets the stream.
//! - Request trailers reach the upstream only with a body of unknown length (chunked), as with
//!   HTTP/1.1; a trailer section larger than a lane's input buffer is dropped.
//! - The metrics see the request as the HTTP/1.1 request it became (the access log's request
//!   line says `HTTP/2.0`).
//! - Priorities are ignored: lanes are served round robin.
//! - Streams the client opens after a GOAWAY are ignored, not refused (the h2 module's limit).
//! - Upstreams are HTTP/1.1 (gRPC's HTTP/2 upstreams are not served yet).
//!
//! Hot path: yes. No `unsafe`.

use std::net::SocketAddr;

use super::buf::Buf;
use super::{Action, Conn, Context, Phase, UpstreamError};
use crate::h1::{
    BodyDecoder, Framing, MAX_FIELDS, Method, ResponseBody, is_allowed_in_trailer, response_body,
};
use crate::h2::hpack::Field;
use crate::h2::{self, ErrorCode, Event, Role, SendError, StreamId};
use sluice_model::counters::Counter;

pub use crate::h2::frame::PREFACE;

/// Room a chunk's framing takes in the core's input: the size line (up to 16 hex digits and
/// CRLF) and the CRLF after the data.
const CHUNK_ROOM: usize = 20;

/// Fields of a response head parsed with a small array first (see [`H2Conn`]'s pump).
const FEW_FIELDS: usize = 24;

/// The input buffer beyond one whole frame: room for the next frames of a read.
const INPUT_EXTRA: usize = 16 * 1024;

/// HTTP/2 counters of one worker, one per [`Counter`] (only the `l7_h2_*` ones move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Stats {
    counts: [u64; Counter::COUNT],
}

impl Default for H2Stats {
    fn default() -> H2Stats {
        H2Stats { counts: [0; Counter::COUNT] }
    }
}

impl H2Stats {
    /// Counts one `counter`.
    #[inline]
    pub fn add(&mut self, counter: Counter) {
        self.counts[counter as usize] += 1;
    }

    /// The count of `counter`.
    pub fn count(&self, counter: Counter) -> u64 {
        self.counts[counter as usize]
    }

    /// Every counter with its count.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().copied().zip(self.counts.iter().copied())
    }
}

/// The HTTP/2 settings a client connection gets: the module's defaults, with the header list
/// limit of an HTTP/1.1 head ([`crate::h1::Limits::max_head_bytes`]), and smaller buffers made
/// once per connection (an idle connection holds them): a 16 KiB output buffer (one TLS
/// record's worth; the data of every stream goes through it in turn) and header blocks of at
/// most 16 KiB compressed (nginx's `http2_max_field_size`-era default; a 32 KiB list of
/// HPACK-compressed fields fits).
pub fn h2_config(config: &super::Config) -> h2::Config {
    h2::Config {
        max_header_list_bytes: u32::try_from(config.limits.max_head_bytes).unwrap_or(u32::MAX),
        max_header_block_bytes: 16 * 1024,
        write_buffer_bytes: 16 * 1024,
        ..h2::Config::DEFAULT
    }
}

/// How a stream's request body reaches the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqBody {
    /// No body.
    None,
    /// Under its Content-Length: bytes as they are.
    Length,
    /// Framed chunked.
    Chunked,
}

/// Where a stream's response is.
#[derive(Debug)]
enum Resp {
    /// Waiting for the final head in the core's output.
    Head,
    /// The body: a decoder of the core's framing (`None`: until the core closes), and whether
    /// it is chunked (then trailers may follow).
    Body(Option<BodyDecoder>, bool),
    /// The body is complete: trailers or an empty END_STREAM DATA are to be sent.
    End,
    /// END_STREAM sent.
    Done,
}

/// One stream's exchange through a core of its own, kept for the next stream.
#[derive(Debug)]
struct Lane {
    conn: Option<Conn>,
    stream: Option<StreamId>,
    req: ReqBody,
    /// The client ended the stream (END_STREAM or trailers).
    req_ended: bool,
    /// The whole request body, and its end, are in the core's input.
    req_fed: bool,
    /// Request body bytes the core had no room for yet (released to the client as they move).
    pending: Buf,
    /// The request's trailer field lines, for the chunked body's end.
    req_trailers: Vec<u8>,
    head_request: bool,
    resp: Resp,
    /// The response's trailer field lines, gathered until the body ends.
    resp_trailers: Vec<u8>,
    /// `authority` then `path`, for routing again after a table change.
    route: String,
    host_len: usize,
}

impl Lane {
    fn new(window: usize) -> Lane {
        Lane {
            conn: None,
            stream: None,
            req: ReqBody::None,
            req_ended: false,
            req_fed: false,
            pending: Buf::new(window),
            req_trailers: Vec::new(),
            head_request: false,
            resp: Resp::Done,
            resp_trailers: Vec::new(),
            route: String::new(),
            host_len: 0,
        }
    }

    /// Whether a new stream can take it: no stream, and a core that waits for a head with
    /// nothing held (or none).
    fn is_free(&self) -> bool {
        self.stream.is_none()
            && self.conn.as_ref().is_none_or(|c| {
                matches!(c.phase, Phase::Head)
                    && c.cin.is_empty()
                    && c.cout.is_empty()
                    && !c.attached
                    && c.actions.is_empty()
                    && !c.client_eof
            })
    }

    /// Ends the lane's part in its stream: the core gives up the exchange (its upstream is
    /// closed) unless it is idle.
    fn abort(&mut self, ctx: &mut Context, now_ns: u64) {
        self.stream = None;
        self.pending.clear();
        if let Some(c) = &mut self.conn
            && !(matches!(c.phase, Phase::Head) && c.cin.is_empty() && c.cout.is_empty() && !c.attached)
        {
            c.client_failed(ctx, now_ns);
        }
    }
}

/// What to do with the h2 connection once an event's borrow of it ends.
enum After {
    Nothing,
    Release(StreamId, usize),
    Reset(StreamId, ErrorCode),
    Answer(StreamId, u16),
}

/// One HTTP/2 client connection, sans-IO. See the module documentation.
///
/// The driver's loop is [`super::Conn`]'s, with a lane for each upstream action:
/// [`H2Conn::poll_action`] says which lane an [`Action`] is for, and the upstream methods take
/// that lane.
#[derive(Debug)]
pub struct H2Conn {
    h2: h2::Conn,
    input: Buf,
    lanes: Vec<Lane>,
    scratch: Vec<u8>,
    peer: SocketAddr,
    local_port: u16,
    https: bool,
    /// The client closed its side.
    eof: bool,
    /// The client connection failed: nothing more is written.
    failed: bool,
    /// Since when no stream has been open (the idle timer), or the connection's start.
    idle_since_ns: u64,
    /// When the client last took bytes (or there were none for it).
    client_write_ns: u64,
    /// The lane served first next time (round robin).
    next: usize,
    /// Draining: when the GOAWAY naming the last stream goes out (the first one, announcing
    /// the shutdown, went at [`H2Conn::drain`]).
    drain_at_ns: Option<u64>,
}

impl H2Conn {
    /// A connection accepted from `peer` on a listener's `local_port` (`https`: behind TLS)
    /// whose client speaks HTTP/2: our SETTINGS are queued at once.
    pub fn new(ctx: &mut Context, peer: SocketAddr, local_port: u16, https: bool, now_ns: u64) -> H2Conn {
        ctx.h2.add(Counter::L7H2Connections);
        let config = h2_config(&ctx.config);
        let h2 = h2::Conn::new(Role::Server, config);
        let frame = h2.config().max_frame_size as usize + 9;
        H2Conn {
            h2,
            input: Buf::new(frame + INPUT_EXTRA),
            lanes: Vec::new(),
            scratch: Vec::new(),
            peer,
            local_port,
            https,
            eof: false,
            failed: false,
            idle_since_ns: now_ns,
            client_write_ns: now_ns,
            next: 0,
            drain_at_ns: None,
        }
    }

    /// The HTTP/2 connection (its settings and counters).
    pub fn h2(&self) -> &h2::Conn {
        &self.h2
    }

    /// Where to read client bytes to; empty when nothing more is read.
    pub fn client_read_buf(&mut self) -> &mut [u8] {
        if self.eof || self.h2.error().is_some() {
            return &mut [];
        }
        self.input.space()
    }

    /// `n` bytes were read into [`H2Conn::client_read_buf`].
    pub fn client_read(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        self.input.filled(n);
        self.progress(ctx, now_ns);
    }

    /// The client closed its side: every stream is given up.
    pub fn client_eof(&mut self, ctx: &mut Context, now_ns: u64) {
        self.eof = true;
        self.abort_all(ctx, now_ns);
        self.progress(ctx, now_ns);
    }

    /// The client connection failed: nothing more can be sent on it.
    pub fn client_failed(&mut self, ctx: &mut Context, now_ns: u64) {
        self.eof = true;
        self.failed = true;
        self.abort_all(ctx, now_ns);
    }

    /// Bytes to write to the client.
    pub fn client_write_buf(&self) -> &[u8] {
        if self.failed { &[] } else { self.h2.write_buf() }
    }

    /// `n` bytes of [`H2Conn::client_write_buf`] were written.
    pub fn client_wrote(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        self.h2.wrote(n);
        self.client_write_ns = now_ns;
        self.progress(ctx, now_ns);
    }

    /// The next thing the driver must do, and for which lane.
    pub fn poll_action(&mut self) -> Option<(usize, Action)> {
        self.lanes.iter_mut().enumerate().find_map(|(i, l)| Some((i, l.conn.as_mut()?.poll_action()?)))
    }

    fn lane_conn(&mut self, lane: usize) -> Option<&mut Conn> {
        self.lanes.get_mut(lane)?.conn.as_mut()
    }

    /// Where to read `lane`'s upstream bytes to ([`Conn::upstream_read_buf`]).
    pub fn upstream_read_buf(&mut self, lane: usize) -> &mut [u8] {
        match self.lane_conn(lane) {
            Some(c) => c.upstream_read_buf(),
            None => &mut [],
        }
    }

    /// `n` bytes were read into [`H2Conn::upstream_read_buf`].
    pub fn upstream_read(&mut self, ctx: &mut Context, lane: usize, n: usize, now_ns: u64) {
        if let Some(c) = self.lane_conn(lane) {
            c.upstream_read(ctx, n, now_ns);
        }
        self.progress_lane(ctx, lane, now_ns);
    }

    /// Whether `lane`'s request goes upstream over HTTP/2 ([`Conn::upstream_h2`]).
    pub fn upstream_h2(&self, lane: usize) -> bool {
        self.lanes.get(lane).and_then(|l| l.conn.as_ref()).is_some_and(Conn::upstream_h2)
    }

    /// The `backend-protocol` of `lane`'s request ([`Conn::upstream_protocol`]).
    pub fn upstream_protocol(&self, lane: usize) -> Option<sluice_model::policy::BackendProtocol> {
        self.lanes.get(lane).and_then(|l| l.conn.as_ref()).and_then(Conn::upstream_protocol)
    }

    /// Bytes to write to `lane`'s upstream.
    pub fn upstream_write_buf(&self, lane: usize) -> &[u8] {
        match self.lanes.get(lane).and_then(|l| l.conn.as_ref()) {
            Some(c) => c.upstream_write_buf(),
            None => &[],
        }
    }

    /// `n` bytes of [`H2Conn::upstream_write_buf`] were written.
    pub fn upstream_wrote(&mut self, ctx: &mut Context, lane: usize, n: usize, now_ns: u64) {
        if let Some(c) = self.lane_conn(lane) {
            c.upstream_wrote(ctx, n, now_ns);
        }
        self.progress_lane(ctx, lane, now_ns);
    }

    /// `lane`'s upstream connection is ready ([`Conn::upstream_connected`]).
    pub fn upstream_connected(&mut self, ctx: &mut Context, lane: usize, reused: bool, now_ns: u64) {
        if let Some(c) = self.lane_conn(lane) {
            c.upstream_connected(ctx, reused, now_ns);
        }
        self.progress_lane(ctx, lane, now_ns);
    }

    /// `lane`'s upstream connection failed.
    pub fn upstream_failed(&mut self, ctx: &mut Context, lane: usize, error: UpstreamError, now_ns: u64) {
        if let Some(c) = self.lane_conn(lane) {
            c.upstream_failed(ctx, error, now_ns);
        }
        self.progress_lane(ctx, lane, now_ns);
    }

    /// `lane`'s upstream closed its side.
    pub fn upstream_eof(&mut self, ctx: &mut Context, lane: usize, now_ns: u64) {
        if let Some(c) = self.lane_conn(lane) {
            c.upstream_eof(ctx, now_ns);
        }
        self.progress_lane(ctx, lane, now_ns);
    }

    /// Whether the connection is done: close the client socket (and drop this). Every lane's
    /// upstream has been released by then.
    pub fn is_finished(&self) -> bool {
        let ended = self.failed || self.h2.is_finished() || (self.eof && self.h2.write_buf().is_empty());
        ended
            && self.lanes.iter().all(|l| l.conn.as_ref().is_none_or(|c| !c.attached && c.actions.is_empty()))
    }

    /// Streams in flight.
    pub fn open_streams(&self) -> usize {
        self.lanes.iter().filter(|l| l.stream.is_some()).count()
    }

    /// Lanes made so far (the most streams in flight at once, plus lanes closing).
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Bytes held in the connection's buffers now (the HTTP/2 output included).
    pub fn buffered_bytes(&self) -> usize {
        let lanes: usize = self
            .lanes
            .iter()
            .map(|l| l.pending.held() + l.conn.as_ref().map_or(0, Conn::buffered_bytes))
            .sum();
        self.input.held() + self.h2.write_buf().len() + lanes
    }

    /// Gives back the storage of every empty buffer (see [`Conn::shed_idle_buffers`]).
    pub fn shed_idle_buffers(&mut self) {
        self.input.shed();
        self.h2.shed();
        for l in &mut self.lanes {
            l.pending.shed();
            if let Some(c) = &mut l.conn {
                c.shed_idle_buffers();
            }
        }
    }

    /// Starts a graceful shutdown (GOAWAY NO_ERROR): the streams open finish, new ones are
    /// ignored, the connection is finished once they are done.
    pub fn go_away(&mut self, ctx: &mut Context, now_ns: u64) {
        if self.h2.error().is_none() && !self.failed {
            self.h2.go_away();
            ctx.h2.add(Counter::L7H2GoAways);
        }
        self.progress(ctx, now_ns);
    }

    /// Drains (an upgrade: another process accepts now), the graceful way of RFC 9113 §6.8:
    /// GOAWAY with the largest stream id now, so that the client opens no new stream and
    /// those already on their way are served; GOAWAY with the last stream it opened
    /// [`DRAIN_GOAWAY_NS`](super::DRAIN_GOAWAY_NS) later (at a tick), then the connection ends
    /// when its streams are done. A single GOAWAY would cross the client's next streams and
    /// fail them.
    pub fn drain(&mut self, ctx: &mut Context, now_ns: u64) {
        if self.drain_at_ns.is_some() || self.failed || self.h2.error().is_some() {
            return;
        }
        self.h2.announce_go_away();
        self.drain_at_ns = Some(now_ns.saturating_add(super::DRAIN_GOAWAY_NS));
        self.progress(ctx, now_ns);
    }

    /// The context's generation changed: if a stream in flight no longer has its route (the
    /// request would now be routed elsewhere or nowhere), GOAWAY — its stream finishes on the
    /// generation it began with, and the client opens new streams on a new connection.
    pub fn generation_changed(&mut self, ctx: &mut Context, now_ns: u64) {
        let generation = std::rc::Rc::clone(ctx.generation());
        let removed = self.lanes.iter().any(|l| {
            let (Some(_), Some(c)) = (l.stream, l.conn.as_ref()) else { return false };
            let Phase::Exchange(ex) = &c.phase else { return false };
            let (host, path) = l.route.split_at(l.host_len);
            let before = ex.generation.router().route(host, path);
            let after = generation.router().route(host, path);
            before.service() != after.service() || after.service().is_none()
        });
        if removed {
            self.go_away(ctx, now_ns);
        }
    }

    /// Runs the timers: every lane's (upstream connect and read timeouts), the client's send
    /// timeout, and the idle timeout (a GOAWAY once no stream has been open for
    /// [`super::Config::client_idle_timeout_ns`]).
    pub fn tick(&mut self, ctx: &mut Context, now_ns: u64) {
        if self.drain_at_ns.is_some_and(|t| now_ns >= t) {
            self.drain_at_ns = None;
            self.go_away(ctx, now_ns);
        }
        for l in &mut self.lanes {
            if let Some(c) = &mut l.conn {
                c.tick(ctx, now_ns);
            }
        }
        let c = ctx.config;
        if !self.failed
            && !self.h2.write_buf().is_empty()
            && now_ns.saturating_sub(self.client_write_ns) >= c.client_send_timeout_ns
        {
            ctx.stats.client_timeouts += 1;
            self.client_failed(ctx, now_ns);
            return;
        }
        if self.open_streams() == 0 {
            let idle = now_ns.saturating_sub(self.idle_since_ns);
            let limit = if self.h2.stats().streams_opened == 0 {
                c.client_head_timeout_ns.min(c.client_idle_timeout_ns)
            } else {
                c.client_idle_timeout_ns
            };
            if idle >= limit {
                // Quietly: GOAWAY NO_ERROR and close (not counted as a shutdown GOAWAY).
                self.h2.go_away();
                self.eof = true;
            }
        }
        self.progress(ctx, now_ns);
    }

    fn abort_all(&mut self, ctx: &mut Context, now_ns: u64) {
        for l in &mut self.lanes {
            l.abort(ctx, now_ns);
        }
    }

    /// Moves bytes and steps every stream until nothing more can happen.
    fn progress(&mut self, ctx: &mut Context, now_ns: u64) {
        let had_output = !self.h2.write_buf().is_empty();
        loop {
            let mut moved = self.receive(ctx, now_ns);
            let n = self.lanes.len();
            for k in 0..n {
                moved |= self.pump_lane(ctx, (self.next + k) % n, now_ns);
            }
            if n > 0 {
                self.next = (self.next + 1) % n;
            }
            if !moved {
                break;
            }
        }
        self.after(ctx, now_ns, had_output);
    }

    /// Steps one lane (after an event of its upstream) until nothing more can happen.
    fn progress_lane(&mut self, ctx: &mut Context, lane: usize, now_ns: u64) {
        let had_output = !self.h2.write_buf().is_empty();
        while lane < self.lanes.len() && self.pump_lane(ctx, lane, now_ns) {}
        self.after(ctx, now_ns, had_output);
    }

    fn after(&mut self, ctx: &mut Context, now_ns: u64, had_output: bool) {
        if !had_output && !self.h2.write_buf().is_empty() {
            // The client's send timeout counts from when it had something to read.
            self.client_write_ns = now_ns;
        }
        if self.lanes.iter().any(|l| l.stream.is_some()) {
            self.idle_since_ns = now_ns;
        }
        let held = self.buffered_bytes();
        if held > ctx.stats.max_conn_buffered_bytes {
            ctx.stats.max_conn_buffered_bytes = held;
        }
    }

    /// Reads frames from the input; whether anything happened.
    fn receive(&mut self, ctx: &mut Context, now_ns: u64) -> bool {
        let H2Conn { h2, input, lanes, scratch, peer, local_port, https, .. } = self;
        let facts = (*peer, *local_port, *https);
        let bytes = input.bytes();
        let mut off = 0;
        let mut moved = false;
        loop {
            let r = h2.recv(&bytes[off..], now_ns);
            let consumed = r.consumed;
            let Some(event) = r.event else {
                off += consumed;
                if consumed == 0 {
                    break;
                }
                moved = true;
                continue;
            };
            moved = true;
            let after = match event {
                Event::Head { stream, head, end_stream } => {
                    open_stream(ctx, lanes, scratch, facts, stream, &head, end_stream, now_ns)
                }
                Event::Data { stream, data, end_stream } => {
                    let data = &bytes[off..][data];
                    match lanes.iter_mut().find(|l| l.stream == Some(stream)) {
                        Some(lane) => on_data(ctx, lane, stream, data, end_stream, now_ns),
                        None => After::Release(stream, data.len()),
                    }
                }
                Event::Trailers { stream, trailers } => {
                    if let Some(lane) = lanes.iter_mut().find(|l| l.stream == Some(stream)) {
                        lane.req_trailers.clear();
                        for f in trailers.fields().filter(|f| is_allowed_in_trailer(f.name)) {
                            lane.req_trailers.extend_from_slice(f.name);
                            lane.req_trailers.extend_from_slice(b": ");
                            lane.req_trailers.extend_from_slice(f.value);
                            lane.req_trailers.extend_from_slice(b"\r\n");
                        }
                        lane.req_ended = true;
                    }
                    After::Nothing
                }
                Event::Reset { stream, .. } => {
                    ctx.h2.add(Counter::L7H2PeerResets);
                    if let Some(lane) = lanes.iter_mut().find(|l| l.stream == Some(stream)) {
                        lane.abort(ctx, now_ns);
                    }
                    After::Nothing
                }
                Event::StreamError { stream, reason } => {
                    ctx.h2.add(reason.counter());
                    if let Some(lane) = lanes.iter_mut().find(|l| l.stream == Some(stream)) {
                        lane.abort(ctx, now_ns);
                    }
                    After::Nothing
                }
                Event::ConnectionError { reason } => {
                    ctx.h2.add(reason.counter());
                    for l in lanes.iter_mut() {
                        l.abort(ctx, now_ns);
                    }
                    After::Nothing
                }
                Event::WindowUpdate { .. } | Event::Pong { .. } | Event::GoAway { .. } => After::Nothing,
            };
            off += consumed;
            match after {
                After::Nothing => {}
                After::Release(stream, n) => h2.release(stream, n),
                After::Reset(stream, code) => {
                    let _ = h2.reset(stream, code);
                }
                After::Answer(stream, status) => {
                    if h2.send_response(stream, status, [Field::new(b"server", b"sluice")], true).is_err() {
                        let _ = h2.reset(stream, ErrorCode::INTERNAL_ERROR);
                    }
                }
            }
        }
        input.consume(off);
        moved
    }

    /// Moves what can move for one lane: staged request body into its core, its core's
    /// response out as frames. Whether anything moved.
    fn pump_lane(&mut self, ctx: &mut Context, i: usize, now_ns: u64) -> bool {
        let H2Conn { h2, lanes, .. } = self;
        let lane = &mut lanes[i];
        let Some(conn) = lane.conn.as_mut() else { return false };
        let Some(stream) = lane.stream else {
            // Between streams: a core that closed is dropped once its actions are taken.
            if conn.is_finished() && conn.actions.is_empty() {
                lane.conn = None;
            }
            return false;
        };
        let mut moved = false;
        // The request body: staged bytes into the core as it takes them.
        while !lane.pending.is_empty() {
            let n = feed(conn, lane.req, lane.pending.bytes(), ctx, now_ns);
            if n == 0 {
                break;
            }
            lane.pending.consume(n);
            h2.release(stream, n);
            moved = true;
        }
        if lane.req_ended && !lane.req_fed && lane.pending.is_empty() {
            moved |= finish_request(conn, lane.req, &mut lane.req_trailers, &mut lane.req_fed, ctx, now_ns);
        }
        // The response.
        let method = if lane.head_request { Method::Head } else { Method::Get };
        loop {
            let conn = lane.conn.as_mut().expect("a lane with a stream has a core");
            match &mut lane.resp {
                Resp::Head => {
                    let out = conn.cout.bytes();
                    if out.is_empty() {
                        break;
                    }
                    // Most heads have a few fields: a small array first (a full one is 8 KiB
                    // to initialise per response), the full one only when it is too small.
                    let mut few = [httparse::EMPTY_HEADER; FEW_FIELDS];
                    let mut all;
                    let mut resp = httparse::Response::new(&mut few);
                    let mut parsed = resp.parse(out);
                    if matches!(parsed, Err(httparse::Error::TooManyHeaders)) {
                        all = [httparse::EMPTY_HEADER; MAX_FIELDS];
                        resp = httparse::Response::new(&mut all);
                        parsed = resp.parse(out);
                    }
                    let head_len = match parsed {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) => break,
                        Err(_) => {
                            fail(h2, lane, stream, ctx, now_ns);
                            return true;
                        }
                    };
                    let status = resp.code.unwrap_or(502);
                    let interim = (100..200).contains(&status);
                    let (mut length, mut chunked) = (None, false);
                    for f in resp.headers.iter() {
                        if f.name.eq_ignore_ascii_case("content-length") {
                            length =
                                std::str::from_utf8(f.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
                        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
                        }
                    }
                    let body = match (interim, response_body(method, status)) {
                        (true, _) | (false, ResponseBody::None) => None,
                        (false, ResponseBody::Tunnel) => {
                            fail(h2, lane, stream, ctx, now_ns);
                            return true;
                        }
                        (false, ResponseBody::Framed) => match (chunked, length) {
                            (true, _) => Some((BodyDecoder::new(Framing::Chunked, None).ok(), true)),
                            (false, Some(0)) => None,
                            (false, Some(n)) => {
                                Some((BodyDecoder::new(Framing::ContentLength(n), None).ok(), false))
                            }
                            (false, None) => Some((None, false)),
                        },
                    };
                    let end_stream = !interim && body.is_none();
                    let fields = resp.headers.iter().map(|h| Field::new(h.name.as_bytes(), h.value));
                    match h2.send_response(stream, status, fields, end_stream) {
                        Ok(()) => {}
                        Err(SendError::Blocked) => break,
                        Err(_) => {
                            fail(h2, lane, stream, ctx, now_ns);
                            return true;
                        }
                    }
                    conn.client_wrote(ctx, head_len, now_ns);
                    moved = true;
                    if !interim {
                        lane.resp_trailers.clear();
                        lane.resp = match body {
                            None => Resp::Done,
                            Some((d, chunked)) => Resp::Body(d, chunked),
                        };
                    }
                }
                Resp::Body(dec, chunked) => {
                    let chunked = *chunked;
                    let cap = h2.send_capacity(stream);
                    let out = conn.cout.bytes();
                    if out.is_empty() {
                        if dec.is_none() && matches!(conn.phase, Phase::Closing) {
                            // Delimited by the core's close.
                            lane.resp = Resp::End;
                            moved = true;
                            continue;
                        }
                        break;
                    }
                    if cap == 0 {
                        break;
                    }
                    let n = out.len().min(cap);
                    let (consumed, done) = match dec {
                        Some(d) => {
                            let step = match d.decode(&out[..n]) {
                                Ok(s) => s,
                                Err(_) => {
                                    fail(h2, lane, stream, ctx, now_ns);
                                    return true;
                                }
                            };
                            // A Content-Length body ends with its last bytes' frame.
                            let end = step.done && !chunked;
                            if (!step.data.is_empty() || end)
                                && h2.send_data(stream, &out[step.data.clone()], end).is_err()
                            {
                                fail(h2, lane, stream, ctx, now_ns);
                                return true;
                            }
                            if !step.trailer.is_empty() {
                                lane.resp_trailers.extend_from_slice(d.trailer_prefix());
                                lane.resp_trailers.extend_from_slice(&out[step.trailer.clone()]);
                            }
                            if end {
                                conn.client_wrote(ctx, step.consumed, now_ns);
                                lane.resp = Resp::Done;
                                moved = true;
                                continue;
                            }
                            (step.consumed, step.done)
                        }
                        None => match h2.send_data(stream, &out[..n], false) {
                            Ok(m) => (m, false),
                            Err(_) => {
                                fail(h2, lane, stream, ctx, now_ns);
                                return true;
                            }
                        },
                    };
                    if consumed > 0 {
                        conn.client_wrote(ctx, consumed, now_ns);
                        moved = true;
                    }
                    if done {
                        lane.resp = Resp::End;
                        moved = true;
                    } else if consumed == 0 {
                        break;
                    }
                }
                Resp::End => {
                    let sent = if lane.resp_trailers.is_empty() {
                        h2.send_data(stream, &[], true).map(|_| ())
                    } else {
                        h2.send_trailers(stream, trailer_fields(&lane.resp_trailers))
                    };
                    match sent {
                        Ok(()) => {
                            lane.resp = Resp::Done;
                            moved = true;
                        }
                        Err(SendError::Blocked) => break,
                        Err(_) => {
                            fail(h2, lane, stream, ctx, now_ns);
                            return true;
                        }
                    }
                }
                Resp::Done => {
                    // The stream is answered. A request body not all sent is not wanted any
                    // more (RFC 9113 §8.1): the stream is reset with NO_ERROR, the core gives
                    // the exchange up.
                    if !lane.req_fed {
                        let _ = h2.reset(stream, ErrorCode::NO_ERROR);
                        lane.abort(ctx, now_ns);
                    }
                    lane.stream = None;
                    return true;
                }
            }
        }
        // An exchange that ended without its whole response: the core closed (upstream reset
        // mid-body, a timeout, the client's send timeout).
        let conn = lane.conn.as_ref().expect("a lane with a stream has a core");
        if matches!(conn.phase, Phase::Closing)
            && conn.cout.is_empty()
            && matches!(lane.resp, Resp::Head | Resp::Body(Some(_), _))
        {
            fail(h2, lane, stream, ctx, now_ns);
            return true;
        }
        moved
    }
}

/// Gives a stream up after its exchange failed: RST_STREAM INTERNAL_ERROR, counted.
fn fail(h2: &mut h2::Conn, lane: &mut Lane, stream: StreamId, ctx: &mut Context, now_ns: u64) {
    let _ = h2.reset(stream, ErrorCode::INTERNAL_ERROR);
    ctx.h2.add(Counter::L7H2StreamsFailed);
    lane.abort(ctx, now_ns);
    lane.resp = Resp::Done;
}

/// Fields of trailer lines (`name: value` CRLF each).
pub(super) fn trailer_fields(lines: &[u8]) -> impl Iterator<Item = Field<'_>> + Clone {
    lines.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        (!name.is_empty()).then(|| Field::new(name, value))
    })
}

/// Opens a stream on a free lane: its head goes to the lane's core as HTTP/1.1.
#[allow(clippy::too_many_arguments)]
fn open_stream(
    ctx: &mut Context,
    lanes: &mut Vec<Lane>,
    scratch: &mut Vec<u8>,
    (peer, local_port, https): (SocketAddr, u16, bool),
    stream: StreamId,
    head: &h2::Head<'_>,
    end_stream: bool,
    now_ns: u64,
) -> After {
    ctx.h2.add(Counter::L7H2Streams);
    let method = head.method().unwrap_or(b"GET");
    let authority = head.authority().unwrap_or(b"");
    let connect = method == b"CONNECT";
    let path = if connect { authority } else { head.path().unwrap_or(b"/") };
    let req = match head.content_length() {
        Some(0) => ReqBody::None,
        Some(_) => ReqBody::Length,
        None if end_stream => ReqBody::None,
        None => ReqBody::Chunked,
    };
    // The HTTP/1.1 head (RFC 9113 §8.3.1: Host from `:authority`; §8.2.3: cookies joined).
    scratch.clear();
    scratch.extend_from_slice(method);
    scratch.push(b' ');
    scratch.extend_from_slice(path);
    scratch.extend_from_slice(b" HTTP/1.1\r\n");
    if !authority.is_empty() {
        scratch.extend_from_slice(b"host: ");
        scratch.extend_from_slice(authority);
        scratch.extend_from_slice(b"\r\n");
    }
    let mut cookies = false;
    for f in head.fields() {
        match f.name {
            b"host" => continue,
            b"cookie" => {
                cookies = true;
                continue;
            }
            _ => {}
        }
        scratch.extend_from_slice(f.name);
        scratch.extend_from_slice(b": ");
        scratch.extend_from_slice(f.value);
        scratch.extend_from_slice(b"\r\n");
    }
    if cookies {
        scratch.extend_from_slice(b"cookie: ");
        for (k, f) in head.fields().filter(|f| f.name == b"cookie").enumerate() {
            if k > 0 {
                scratch.extend_from_slice(b"; ");
            }
            scratch.extend_from_slice(f.value);
        }
        scratch.extend_from_slice(b"\r\n");
    }
    if req == ReqBody::Chunked {
        scratch.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    scratch.extend_from_slice(b"\r\n");

    let i = match lanes.iter().position(Lane::is_free) {
        Some(i) => i,
        None => {
            lanes.push(Lane::new(h2_config(&ctx.config).stream_window as usize));
            lanes.len() - 1
        }
    };
    let lane = &mut lanes[i];
    let conn = lane.conn.get_or_insert_with(|| {
        let mut c = Conn::new(ctx, peer, local_port, https, now_ns);
        c.h2_lane = true;
        c
    });
    let room = conn.client_read_buf();
    if room.len() < scratch.len() {
        return After::Answer(stream, 431);
    }
    room[..scratch.len()].copy_from_slice(scratch);
    lane.stream = Some(stream);
    lane.req = req;
    lane.req_ended = end_stream;
    lane.req_fed = false;
    lane.pending.clear();
    lane.req_trailers.clear();
    lane.head_request = method == b"HEAD";
    lane.resp = Resp::Head;
    lane.route.clear();
    lane.route.push_str(std::str::from_utf8(authority).unwrap_or(""));
    lane.host_len = lane.route.len();
    let path = std::str::from_utf8(path).unwrap_or("/");
    lane.route.push_str(path.split('?').next().unwrap_or(path));
    conn.client_read(ctx, scratch.len(), now_ns);
    After::Nothing
}

/// DATA for a lane's stream: into its core as far as there is room, the rest staged. What may
/// be released at once.
fn on_data(
    ctx: &mut Context,
    lane: &mut Lane,
    stream: StreamId,
    data: &[u8],
    end: bool,
    now_ns: u64,
) -> After {
    let Some(conn) = lane.conn.as_mut() else { return After::Release(stream, data.len()) };
    let fed = if lane.pending.is_empty() { feed(conn, lane.req, data, ctx, now_ns) } else { 0 };
    if !lane.pending.push(&data[fed..]) {
        // More than a stream window unreleased: the h2 module would have refused it.
        lane.abort(ctx, now_ns);
        return After::Reset(stream, ErrorCode::FLOW_CONTROL_ERROR);
    }
    lane.req_ended |= end;
    if lane.req_ended && !lane.req_fed && lane.pending.is_empty() {
        finish_request(conn, lane.req, &mut lane.req_trailers, &mut lane.req_fed, ctx, now_ns);
    }
    if fed > 0 { After::Release(stream, fed) } else { After::Nothing }
}

/// Writes what of `data` fits into the core's input, framed as the request body is: how many
/// bytes of `data` it took.
fn feed(conn: &mut Conn, req: ReqBody, data: &[u8], ctx: &mut Context, now_ns: u64) -> usize {
    if data.is_empty() {
        return 0;
    }
    let room = conn.client_read_buf();
    let (taken, written) = match req {
        ReqBody::Chunked => {
            if room.len() <= CHUNK_ROOM {
                return 0;
            }
            let n = data.len().min(room.len() - CHUNK_ROOM);
            let mut at = hex(&mut room[..], n);
            room[at..at + 2].copy_from_slice(b"\r\n");
            at += 2;
            room[at..at + n].copy_from_slice(&data[..n]);
            at += n;
            room[at..at + 2].copy_from_slice(b"\r\n");
            (n, at + 2)
        }
        // A body without framing gets no bytes from the h2 module (Content-Length 0 or
        // END_STREAM with the head are checked there).
        ReqBody::None => return data.len(),
        ReqBody::Length => {
            let n = data.len().min(room.len());
            room[..n].copy_from_slice(&data[..n]);
            (n, n)
        }
    };
    if written > 0 {
        conn.client_read(ctx, written, now_ns);
    }
    taken
}

/// Writes the end of a chunked request body (the last chunk, the trailers, the empty line)
/// when it fits; whether it was written (then `fed` is set).
fn finish_request(
    conn: &mut Conn,
    req: ReqBody,
    trailers: &mut Vec<u8>,
    fed: &mut bool,
    ctx: &mut Context,
    now_ns: u64,
) -> bool {
    if req != ReqBody::Chunked {
        *fed = true;
        return true;
    }
    let room = conn.client_read_buf();
    if trailers.len() + 5 > room.len() {
        if trailers.len() + 5 > conn.cin.cap() {
            // It could never fit: the trailers are dropped (see the known limits).
            trailers.clear();
        }
        return false;
    }
    let mut at = 0;
    room[..3].copy_from_slice(b"0\r\n");
    at += 3;
    room[at..at + trailers.len()].copy_from_slice(trailers);
    at += trailers.len();
    room[at..at + 2].copy_from_slice(b"\r\n");
    at += 2;
    conn.client_read(ctx, at, now_ns);
    *fed = true;
    true
}

/// Writes `n` in lowercase hex at the start of `out`: how many digits.
fn hex(out: &mut [u8], n: usize) -> usize {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (k, o) in out[..digits].iter_mut().enumerate() {
        *o = b"0123456789abcdef"[(n >> (4 * (digits - 1 - k))) & 0xf];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_sizes() {
        let mut b = [0u8; 20];
        for (n, s) in [(0usize, "0"), (9, "9"), (10, "a"), (255, "ff"), (4096, "1000"), (16384, "4000")] {
            let k = hex(&mut b, n);
            assert_eq!(&b[..k], s.as_bytes());
        }
    }

    #[test]
    fn trailer_lines_become_fields() {
        let lines = b"grpc-status: 0\r\ngrpc-message:  ok \r\n";
        let f: Vec<_> = trailer_fields(lines).map(|f| (f.name, f.value)).collect();
        assert_eq!(f, [(&b"grpc-status"[..], &b"0"[..]), (&b"grpc-message"[..], &b"ok"[..])]);
    }
}
