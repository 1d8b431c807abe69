//! One HTTP/2 connection as a state machine, in either role: [`Role::Server`] facing clients,
//! [`Role::Client`] facing upstreams (h2c or h2 under TLS, gRPC servers).
//!
//! Bytes read from the socket go to [`Conn::recv`], which consumes what it can and gives back
//! at most one [`Event`] per call; bytes to write accumulate in an output buffer
//! ([`Conn::write_buf`], [`Conn::wrote`]). The application sends with [`Conn::send_request`],
//! [`Conn::send_response`], [`Conn::send_data`], [`Conn::send_trailers`], [`Conn::reset`],
//! [`Conn::go_away`] and [`Conn::ping`], and returns flow-control credit with
//! [`Conn::release`] as it frees room for the data it was given.
//!
//! See the [module documentation](super) for the rules enforced and the limits.

use std::ops::Range;

use super::error::{ErrorCode, Reason, StreamReason};
use super::frame::{
    self, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, Frame, FrameError, FrameHeader, FrameType, HEADER_LEN,
    MAX_WINDOW, PREFACE, StreamId, flags, setting,
};
use super::hpack::{self, DEFAULT_TABLE_SIZE, Decoder, Encoder, Field, HeaderList};
use crate::storage;

/// One second in nanoseconds.
const SECOND_NS: u64 = 1_000_000_000;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts streams: requests in, responses out.
    Server,
    /// Opens streams: requests out, responses in.
    Client,
}

/// At most `max` events per window of `window_ns` (fixed windows, restarted by the first event
/// after one ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed in one window.
    pub max: u32,
    /// The window's length.
    pub window_ns: u64,
}

/// A connection's limits. Each one hit ends what it guards with a distinct reason
/// ([`Reason`] for the connection, [`StreamReason`] for a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise; streams the peer opens beyond it are
    /// refused (RST_STREAM REFUSED_STREAM). Also the size of the stream table, made once, so a
    /// client opens at most this many too. Default 100 (nginx's, RFC 9113's recommended floor).
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce while decoding (name + value + 32
    /// per field): a request over it is answered 431, a response reset. Default 32 KiB, the
    /// HTTP/1.1 head limit of [`crate::h1::Limits::DEFAULT`].
    pub max_header_list_bytes: u32,
    /// The largest header block, compressed, HEADERS and CONTINUATIONs together; over it the
    /// connection ends ([`Reason::HeaderBlockTooLarge`]). Default 32 KiB.
    pub max_header_block_bytes: u32,
    /// The most CONTINUATION frames in one header block ([`Reason::ContinuationFlood`]).
    /// Default 8 (nghttp2's).
    pub max_continuation_frames: u32,
    /// SETTINGS_MAX_FRAME_SIZE we advertise; a longer frame ends the connection
    /// ([`Reason::FrameTooLarge`]). Default 16,384 (the protocol's). The reader's input buffer
    /// must hold a whole frame: `max_frame_size + 9` bytes.
    pub max_frame_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE we advertise (the decoder's table) and the most our encoder
    /// uses. Default 4,096.
    pub header_table_size: u32,
    /// The flow-control window of each stream we receive on: what the application buffers for
    /// one stream. Default 65,535 (the protocol's initial window).
    pub stream_window: u32,
    /// The connection's receive window: what the application buffers for all streams. Default
    /// 1 MiB.
    pub connection_window: u32,
    /// Output buffer for heads and data (control frames have a reserve of their own beyond it).
    /// Default 64 KiB.
    pub write_buffer_bytes: usize,
    /// Streams reset by the peer before we finished them, and streams we reset because of the
    /// peer (refused, malformed, flow control): rapid reset and "MadeYouReset"
    /// ([`Reason::RapidReset`]). Default 200 per 10 s.
    pub resets: Rate,
    /// SETTINGS frames from the peer ([`Reason::SettingsFlood`]). Default 32 per 10 s.
    pub settings: Rate,
    /// PING frames from the peer ([`Reason::PingFlood`]). Default 1,000 per 10 s: gRPC
    /// clients measure bandwidth with a PING per round trip while data flows, and an answer
    /// costs 17 bytes; a peer that asks without reading hits [`Config::max_pending_answers`]
    /// first.
    pub pings: Rate,
    /// Frames that carry nothing: empty DATA without END_STREAM, empty CONTINUATION without
    /// END_HEADERS, PRIORITY, unknown types, frames on closed streams
    /// ([`Reason::EmptyFrameFlood`]). Default 1,000 per 10 s.
    pub empty_frames: Rate,
    /// Answers (PING and SETTINGS acknowledgements, RST_STREAMs) queued and not yet written out
    /// ([`Reason::AnswerBacklog`]): a peer that asks without reading. Default 128.
    pub max_pending_answers: u32,
}

impl Config {
    /// The defaults named on each field.
    pub const DEFAULT: Config = Config {
        max_concurrent_streams: 100,
        max_header_list_bytes: 32 * 1024,
        max_header_block_bytes: 32 * 1024,
        max_continuation_frames: 8,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        header_table_size: DEFAULT_TABLE_SIZE as u32,
        stream_window: DEFAULT_WINDOW,
        connection_window: 1024 * 1024,
        write_buffer_bytes: 64 * 1024,
        resets: Rate { max: 200, window_ns: 10 * SECOND_NS },
        settings: Rate { max: 32, window_ns: 10 * SECOND_NS },
        pings: Rate { max: 1000, window_ns: 10 * SECOND_NS },
        empty_frames: Rate { max: 1000, window_ns: 10 * SECOND_NS },
        max_pending_answers: 128,
    };
}

impl Default for Config {
    fn default() -> Config {
        Config::DEFAULT
    }
}

/// Counters of one connection (a proxy adds them up per worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Streams opened (by the peer in the server role, by us in the client role).
    pub streams_opened: u64,
    /// Streams refused: over the concurrency limit or after our GOAWAY.
    pub streams_refused: u64,
    /// Streams we reset because of the peer (malformed, flow control, closed, too large).
    pub stream_errors: u64,
    /// Streams the peer reset before we finished them.
    pub peer_resets: u64,
    /// Header lists over the limit (answered 431 in the server role).
    pub header_lists_too_large: u64,
    /// Frames ignored as carrying nothing (counted against [`Config::empty_frames`]).
    pub empty_frames: u64,
}

/// What the peer's SETTINGS say (RFC 9113 §6.5.2), the protocol's defaults until they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub header_table_size: u32,
    /// SETTINGS_ENABLE_PUSH.
    pub enable_push: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS (unlimited: `u32::MAX`).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (unlimited: `u32::MAX`).
    pub max_header_list_size: u32,
}

impl PeerSettings {
    const DEFAULT: PeerSettings = PeerSettings {
        header_table_size: DEFAULT_TABLE_SIZE as u32,
        enable_push: true,
        max_concurrent_streams: u32::MAX,
        initial_window_size: DEFAULT_WINDOW,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        max_header_list_size: u32::MAX,
    };
}

/// Where each pseudo-header field is in the list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pseudo {
    method: Option<u32>,
    scheme: Option<u32>,
    authority: Option<u32>,
    path: Option<u32>,
    status: Option<u32>,
    host: Option<u32>,
    /// The first regular field.
    regular: u32,
}

/// A request or response head, or trailers, as decoded and checked (RFC 9113 §8.3): views
/// into the connection's header list, valid until the next call to [`Conn::recv`].
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    list: &'a HeaderList,
    pseudo: Pseudo,
    content_length: Option<u64>,
}

impl<'a> Head<'a> {
    fn get(&self, i: Option<u32>) -> Option<&'a [u8]> {
        i.map(|i| self.list.field(i as usize).value)
    }

    /// `:method` (requests).
    pub fn method(&self) -> Option<&'a [u8]> {
        self.get(self.pseudo.method)
    }

    /// `:scheme` (requests other than CONNECT).
    pub fn scheme(&self) -> Option<&'a [u8]> {
        self.get(self.pseudo.scheme)
    }

    /// The authority to route by: `:authority`, else the Host field (they cannot differ:
    /// [`StreamReason::HostMismatch`]).
    pub fn authority(&self) -> Option<&'a [u8]> {
        self.get(self.pseudo.authority).or_else(|| self.get(self.pseudo.host))
    }

    /// `:path` with its query (requests other than CONNECT).
    pub fn path(&self) -> Option<&'a [u8]> {
        self.get(self.pseudo.path)
    }

    /// `:status` (responses).
    pub fn status(&self) -> Option<u16> {
        let v = self.get(self.pseudo.status)?;
        v.iter().try_fold(0u16, |n, &d| Some(n * 10 + u16::from(d - b'0')))
    }

    /// An informational (1xx) response: another head follows.
    pub fn is_informational(&self) -> bool {
        self.status().is_some_and(|s| (100..200).contains(&s))
    }

    /// The Content-Length field's value, checked against the DATA that follows.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The regular (non-pseudo) fields, in order, names lowercase. Several `cookie` fields
    /// are to be joined with `; ` when going to HTTP/1.1 (§8.2.3).
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let list = self.list;
        (self.pseudo.regular as usize..list.len()).map(move |i| list.field(i))
    }

    /// The first value of a regular field (`name` lowercase).
    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.fields().find(|f| f.name == name).map(|f| f.value)
    }

    /// The decoded size of the list (RFC 9113 §6.5.2).
    pub fn size(&self) -> usize {
        self.list.size()
    }
}

/// What [`Conn::recv`] reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// A request head (server) or a response head (client; informational ones come before the
    /// final one). `end_stream`: no body follows.
    Head {
        /// The stream.
        stream: StreamId,
        /// The head.
        head: Head<'a>,
        /// The peer ended the stream with it.
        end_stream: bool,
    },
    /// Body bytes: `data` is a range of the input given to this call of [`Conn::recv`] (DATA
    /// payloads are not copied; padding is left out). Call [`Conn::release`] with its length
    /// once the bytes are out of the application's buffer. An empty range with `end_stream`
    /// only ends the stream.
    Data {
        /// The stream.
        stream: StreamId,
        /// The bytes, in the input.
        data: Range<usize>,
        /// The last bytes of the stream.
        end_stream: bool,
    },
    /// Trailers: they end the stream.
    Trailers {
        /// The stream.
        stream: StreamId,
        /// The fields (no pseudo-header field).
        trailers: Head<'a>,
    },
    /// The peer reset the stream (RST_STREAM).
    Reset {
        /// The stream.
        stream: StreamId,
        /// The peer's code.
        code: ErrorCode,
    },
    /// We reset the stream because of the peer (RST_STREAM sent; in the server role a header
    /// list over the limit was answered 431 first). The stream may be one the application
    /// never saw (a refused or malformed request).
    StreamError {
        /// The stream.
        stream: StreamId,
        /// Why.
        reason: StreamReason,
    },
    /// More may be sent: the peer's window grew (WINDOW_UPDATE; stream 0: the connection's, or
    /// a SETTINGS change for every stream).
    WindowUpdate {
        /// The stream, or 0.
        stream: StreamId,
    },
    /// The answer to our [`Conn::ping`].
    Pong {
        /// Its data.
        data: [u8; 8],
    },
    /// The peer is going away: streams above `last_stream` that we opened were not processed
    /// (safe to retry elsewhere) and are forgotten; no new stream may be opened.
    GoAway {
        /// The last stream the peer processes.
        last_stream: StreamId,
        /// Its code.
        code: ErrorCode,
        /// Its debug data: a range of the input given to this call.
        debug: Range<usize>,
    },
    /// A connection error: GOAWAY with the reason's code is queued, nothing more is read;
    /// close once [`Conn::write_buf`] is written out ([`Conn::is_finished`]).
    ConnectionError {
        /// Why.
        reason: Reason,
    },
}

/// What one call of [`Conn::recv`] did.
#[derive(Debug)]
pub struct Recv<'a> {
    /// Bytes of the input consumed: drop them; keep the rest at the front of the next input.
    pub consumed: usize,
    /// What happened, if anything. No event and nothing consumed: more input is needed.
    pub event: Option<Event<'a>>,
}

/// Why a send is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Not for this role (a server does not send requests, a client not responses).
    WrongRole,
    /// No such stream open.
    UnknownStream,
    /// Our side of the stream is ended (END_STREAM or RST_STREAM sent).
    StreamClosed,
    /// Data or trailers before the head, a head after the final one.
    OutOfOrder,
    /// The output buffer has no room: write it out and try again.
    Blocked,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS, or our stream table, is full.
    StreamLimit,
    /// A GOAWAY was sent or received: no new stream.
    GoingAway,
    /// The connection has ended.
    Closed,
    /// A head larger than the output buffer or the peer's SETTINGS_MAX_HEADER_LIST_SIZE.
    HeadTooLarge,
}

/// The pseudo-header fields of a request to send (RFC 9113 §8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a [u8],
    /// `:scheme` (`http` or `https`; ignored for CONNECT).
    pub scheme: &'a [u8],
    /// `:authority` (may be empty: then not sent).
    pub authority: &'a [u8],
    /// `:path` (ignored for CONNECT).
    pub path: &'a [u8],
}

/// Receive side of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    /// Waiting for the (final) head: a client's stream.
    Head,
    /// The head came; DATA and trailers may follow.
    Body,
    /// The peer ended the stream.
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    id: StreamId,
    recv: RecvState,
    /// What the peer may still send on the stream.
    recv_window: i64,
    /// Credit released by the application and not yet given back.
    credit: u32,
    content_length: Option<u64>,
    received: u64,
    /// What we may still send.
    send_window: i64,
    /// The final head was sent (server) or the request was (client).
    head_sent: bool,
    /// END_STREAM sent.
    send_closed: bool,
    /// A response to HEAD: no body whatever Content-Length says.
    head_request: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server: waiting for the client's preface.
    Preface,
    Open,
    /// A connection error was found (or a GOAWAY for one sent).
    Failed(Reason),
}

/// A header block being received.
#[derive(Debug, Clone, Copy)]
struct Block {
    stream: StreamId,
    end_stream: bool,
    frames: u32,
    /// Its priority fields name the stream itself (§5.3.1): a stream error once decoded.
    self_dependent: bool,
}

/// A DATA frame whose payload is arriving.
#[derive(Debug, Clone, Copy)]
struct DataIn {
    stream: StreamId,
    /// Data bytes still to come.
    remaining: u32,
    /// Padding bytes after them.
    pad: u32,
    end_stream: bool,
    /// Handed to the application (else dropped: a closed or reset stream).
    deliver: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start_ns: u64,
    count: u32,
}

impl Window {
    /// Counts one event: true when over the rate.
    fn hit(&mut self, rate: Rate, now_ns: u64) -> bool {
        if self.count == 0 || now_ns.saturating_sub(self.start_ns) >= rate.window_ns {
            self.start_ns = now_ns;
            self.count = 0;
        }
        self.count += 1;
        self.count > rate.max
    }
}

/// An event not yet tied to the borrows it hands out.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Head { stream: StreamId, pseudo: Pseudo, content_length: Option<u64>, end_stream: bool },
    Data { stream: StreamId, data: (usize, usize), end_stream: bool },
    Trailers { stream: StreamId, pseudo: Pseudo },
    Reset { stream: StreamId, code: ErrorCode },
    StreamError { stream: StreamId, reason: StreamReason },
    WindowUpdate { stream: StreamId },
    Pong { data: [u8; 8] },
    GoAway { last_stream: StreamId, code: ErrorCode, debug: (usize, usize) },
    ConnectionError { reason: Reason },
}

/// Room for control frames beyond [`Config::write_buffer_bytes`] (acknowledgements, resets,
/// window updates, GOAWAY), on top of the pending answers' own.
const CONTROL_RESERVE: usize = 4096;

/// One HTTP/2 connection. See the module documentation.
#[derive(Debug)]
pub struct Conn {
    role: Role,
    config: Config,
    state: State,
    /// The peer's first frame (SETTINGS) came.
    peer_settings_seen: bool,
    peer: PeerSettings,
    streams: Vec<Stream>,
    /// The highest stream the peer opened.
    last_peer_stream: u32,
    /// The next stream we open (client: odd).
    next_local_stream: u32,
    goaway_sent: Option<StreamId>,
    goaway_received: Option<StreamId>,
    block: Vec<u8>,
    block_state: Option<Block>,
    data_in: Option<DataIn>,
    decoder: Decoder,
    list: HeaderList,
    encoder: Encoder,
    scratch: Vec<u8>,
    /// What the peer may still send on the connection.
    recv_conn_window: i64,
    conn_credit: u64,
    send_conn_window: i64,
    /// The initial stream receive window in force: the protocol's until our SETTINGS are
    /// acknowledged, then ours.
    recv_initial_window: u32,
    settings_acked: bool,
    out: Vec<u8>,
    answers: u32,
    answers_end: usize,
    resets: Window,
    settings_window: Window,
    pings: Window,
    empty: Window,
    stats: Stats,
}

/// The connection-specific fields (RFC 9113 §8.2.2): malformed when received, dropped when
/// sent.
/// The output buffer's capacity: what the application may queue, the control frames' reserve
/// and room for the answers (SETTINGS and PING acknowledgements) that may wait.
fn out_capacity(config: &Config) -> usize {
    config.write_buffer_bytes + CONTROL_RESERVE + config.max_pending_answers as usize * 17
}

const CONNECTION_SPECIFIC: &[&[u8]] =
    &[b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"];

impl Conn {
    /// A connection in `role`, its tables and buffers allocated now. A client's preface and
    /// both roles' SETTINGS are queued at once.
    pub fn new(role: Role, config: Config) -> Conn {
        let max_frame = config.max_frame_size.clamp(DEFAULT_MAX_FRAME_SIZE, frame::MAX_MAX_FRAME_SIZE);
        let config = Config {
            max_frame_size: max_frame,
            stream_window: config.stream_window.min(MAX_WINDOW),
            connection_window: config.connection_window.clamp(DEFAULT_WINDOW, MAX_WINDOW),
            max_concurrent_streams: config.max_concurrent_streams.max(1),
            ..config
        };
        let mut conn = Conn {
            role,
            config,
            state: if role == Role::Server { State::Preface } else { State::Open },
            peer_settings_seen: false,
            peer: PeerSettings::DEFAULT,
            streams: Vec::new(),
            last_peer_stream: 0,
            next_local_stream: 1,
            goaway_sent: None,
            goaway_received: None,
            block: Vec::new(),
            block_state: None,
            data_in: None,
            decoder: Decoder::new(config.header_table_size as usize),
            list: HeaderList::new(config.max_header_list_bytes as usize),
            encoder: Encoder::new(config.header_table_size as usize),
            scratch: Vec::new(),
            recv_conn_window: i64::from(DEFAULT_WINDOW),
            conn_credit: 0,
            send_conn_window: i64::from(DEFAULT_WINDOW),
            recv_initial_window: DEFAULT_WINDOW,
            settings_acked: false,
            out: storage::take_vec(out_capacity(&config)),
            answers: 0,
            answers_end: 0,
            resets: Window::default(),
            settings_window: Window::default(),
            pings: Window::default(),
            empty: Window::default(),
            stats: Stats::default(),
        };
        if role == Role::Client {
            conn.out.extend_from_slice(PREFACE);
        }
        let mut params = [(0u16, 0u32); 6];
        let mut n = 0;
        let mut add = |id, v| {
            params[n] = (id, v);
            n += 1;
        };
        if role == Role::Client {
            add(setting::ENABLE_PUSH, 0);
        }
        add(setting::MAX_CONCURRENT_STREAMS, config.max_concurrent_streams);
        add(setting::INITIAL_WINDOW_SIZE, config.stream_window);
        if config.max_frame_size != DEFAULT_MAX_FRAME_SIZE {
            add(setting::MAX_FRAME_SIZE, config.max_frame_size);
        }
        add(setting::MAX_HEADER_LIST_SIZE, config.max_header_list_bytes);
        if config.header_table_size as usize != DEFAULT_TABLE_SIZE {
            add(setting::HEADER_TABLE_SIZE, config.header_table_size);
        }
        frame::write_settings(&mut conn.out, &params[..n]);
        let extra = config.connection_window - DEFAULT_WINDOW;
        if extra > 0 {
            frame::write_window_update(&mut conn.out, StreamId::CONNECTION, extra);
            conn.recv_conn_window += i64::from(extra);
        }
        conn
    }

    /// Gives back the output buffer's storage when it is empty (to the thread's free list; the
    /// next frame takes it again) — what an idle connection does, so that it holds only its
    /// HPACK tables and state. The other buffers (header block, header list, encoding scratch)
    /// are as large as the largest head the connection has seen.
    pub fn shed(&mut self) {
        if self.out.is_empty() && self.out.capacity() > 0 {
            storage::give_vec(std::mem::take(&mut self.out), out_capacity(&self.config));
        }
    }

    /// Takes the output buffer's storage back after [`Conn::shed`].
    #[inline]
    fn wake(&mut self) {
        if self.out.capacity() == 0 {
            self.out = storage::take_vec(out_capacity(&self.config));
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in force (out-of-range values clamped).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peer's settings.
    pub fn peer_settings(&self) -> &PeerSettings {
        &self.peer
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the connection failed, if it did.
    pub fn error(&self) -> Option<Reason> {
        match self.state {
            State::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// Streams open (in either direction).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes to write to the socket.
    pub fn write_buf(&self) -> &[u8] {
        &self.out
    }

    /// `n` bytes of [`Conn::write_buf`] were written.
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.out.drain(..n);
        if n >= self.answers_end {
            self.answers = 0;
            self.answers_end = 0;
        } else {
            self.answers_end -= n;
        }
    }

    /// Nothing more will happen: the connection failed, or a GOAWAY was exchanged and every
    /// stream is done — and the output is written. Close the socket.
    pub fn is_finished(&self) -> bool {
        let done = match self.state {
            State::Failed(_) => true,
            _ => (self.goaway_sent.is_some() || self.goaway_received.is_some()) && self.streams.is_empty(),
        };
        done && self.out.is_empty()
    }

    // ---- receiving -------------------------------------------------------------------------

    /// Consumes bytes read from the socket (`input`: what was not consumed before, then what
    /// came since) and reports at most one event. Call again with the rest until nothing is
    /// consumed and no event comes. `now_ns` is the time, for the flood windows.
    pub fn recv(&mut self, input: &[u8], now_ns: u64) -> Recv<'_> {
        self.wake();
        let (consumed, ev) = self.recv_inner(input, now_ns);
        Recv { consumed, event: ev.map(|e| self.materialize(e)) }
    }

    fn materialize(&self, e: Ev) -> Event<'_> {
        match e {
            Ev::Head { stream, pseudo, content_length, end_stream } => {
                Event::Head { stream, head: Head { list: &self.list, pseudo, content_length }, end_stream }
            }
            Ev::Data { stream, data, end_stream } => Event::Data { stream, data: data.0..data.1, end_stream },
            Ev::Trailers { stream, pseudo } => {
                Event::Trailers { stream, trailers: Head { list: &self.list, pseudo, content_length: None } }
            }
            Ev::Reset { stream, code } => Event::Reset { stream, code },
            Ev::StreamError { stream, reason } => Event::StreamError { stream, reason },
            Ev::WindowUpdate { stream } => Event::WindowUpdate { stream },
            Ev::Pong { data } => Event::Pong { data },
            Ev::GoAway { last_stream, code, debug } => {
                Event::GoAway { last_stream, code, debug: debug.0..debug.1 }
            }
            Ev::ConnectionError { reason } => Event::ConnectionError { reason },
        }
    }

    fn recv_inner(&mut self, input: &[u8], now_ns: u64) -> (usize, Option<Ev>) {
        let mut pos = 0;
        loop {
            if let State::Failed(_) = self.state {
                return (input.len(), None);
            }
            if self.state == State::Preface {
                let have = input.len().min(PREFACE.len());
                if input[..have] != PREFACE[..have] {
                    return self.fail(Reason::Preface, input.len());
                }
                if have < PREFACE.len() {
                    return (0, None);
                }
                pos = PREFACE.len();
                self.state = State::Open;
            }
            if let Some(d) = self.data_in {
                let avail = input.len() - pos;
                if d.remaining > 0 {
                    let n = avail.min(d.remaining as usize);
                    if n == 0 {
                        return (pos, None);
                    }
                    let range = (pos, pos + n);
                    pos += n;
                    let remaining = d.remaining - n as u32;
                    let last = remaining == 0 && d.pad == 0;
                    self.data_in = if last { None } else { Some(DataIn { remaining, ..d }) };
                    if d.deliver {
                        return (
                            pos,
                            Some(Ev::Data {
                                stream: d.stream,
                                data: range,
                                end_stream: last && d.end_stream,
                            }),
                        );
                    }
                    continue;
                }
                let n = avail.min(d.pad as usize);
                pos += n;
                if n < d.pad as usize {
                    self.data_in = Some(DataIn { pad: d.pad - n as u32, ..d });
                    return (pos, None);
                }
                self.data_in = None;
                if d.deliver && d.end_stream {
                    return (pos, Some(Ev::Data { stream: d.stream, data: (pos, pos), end_stream: true }));
                }
                continue;
            }
            let Some(h) = FrameHeader::parse(&input[pos..]) else { return (pos, None) };
            if h.len > self.config.max_frame_size {
                return self.fail(Reason::FrameTooLarge, input.len());
            }
            if !self.peer_settings_seen && (h.kind != FrameType::Settings || h.has(flags::ACK)) {
                return self.fail(Reason::FirstFrameNotSettings, input.len());
            }
            if let Some(b) = self.block_state {
                if h.kind != FrameType::Continuation {
                    return self.fail(Reason::ExpectedContinuation, input.len());
                }
                if h.stream != b.stream {
                    return self.fail(Reason::UnexpectedContinuation, input.len());
                }
            }
            if h.kind == FrameType::Data {
                // DATA is handed on as it arrives: only its header and pad length are needed.
                let padded = h.has(flags::PADDED);
                let head_len = HEADER_LEN + usize::from(padded);
                if input.len() - pos < head_len {
                    return (pos, None);
                }
                if h.stream.is_connection() {
                    return self.fail(Reason::StreamIdZero, input.len());
                }
                let pad = if padded {
                    if h.len == 0 {
                        return self.fail(Reason::FrameSize, input.len());
                    }
                    let pad = u32::from(input[pos + HEADER_LEN]);
                    if pad >= h.len {
                        return self.fail(Reason::Padding, input.len());
                    }
                    pad
                } else {
                    0
                };
                pos += head_len;
                let pad_total = pad + u32::from(padded);
                match self.on_data(h, h.len - pad_total, pad_total, now_ns) {
                    Ok(Some(ev)) => return (pos, Some(ev)),
                    Ok(None) => continue,
                    Err(reason) => return self.fail(reason, input.len()),
                }
            }
            let end = pos + HEADER_LEN + h.len as usize;
            if input.len() < end {
                return (pos, None);
            }
            let payload = &input[pos + HEADER_LEN..end];
            let payload_start = pos + HEADER_LEN;
            pos = end;
            let result = match Frame::parse(h, payload) {
                Ok(f) => self.on_frame(f, payload_start, now_ns),
                Err(FrameError::Connection(r)) => Err(r),
                Err(FrameError::Stream(id, r)) => self.stream_error(id, r, now_ns),
            };
            match result {
                Ok(Some(ev)) => return (pos, Some(ev)),
                Ok(None) => {}
                Err(reason) => return self.fail(reason, input.len()),
            }
        }
    }

    /// Ends the connection: GOAWAY with the reason's code.
    fn fail(&mut self, reason: Reason, consumed: usize) -> (usize, Option<Ev>) {
        self.state = State::Failed(reason);
        self.block_state = None;
        self.data_in = None;
        // §6.8: a second GOAWAY may not name a higher stream than the first.
        let last = StreamId(self.last_peer_stream).min(self.goaway_sent.unwrap_or(StreamId(MAX_WINDOW)));
        frame::write_goaway(&mut self.out, last, reason.code(), reason.name().as_bytes());
        self.goaway_sent = Some(last);
        (consumed, Some(Ev::ConnectionError { reason }))
    }

    fn slot(&self, id: StreamId) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Whether a stream not in the table was never opened (idle, RFC 9113 §5.1), as opposed to
    /// closed.
    fn is_idle(&self, id: StreamId) -> bool {
        let ours = match self.role {
            Role::Client => id.is_client_initiated(),
            Role::Server => !id.is_client_initiated(),
        };
        if ours { id.0 >= self.next_local_stream } else { id.0 > self.last_peer_stream }
    }

    fn count_empty(&mut self, now_ns: u64) -> Result<(), Reason> {
        self.stats.empty_frames += 1;
        if self.empty.hit(self.config.empty_frames, now_ns) {
            return Err(Reason::EmptyFrameFlood);
        }
        Ok(())
    }

    fn count_reset(&mut self, now_ns: u64) -> Result<(), Reason> {
        if self.resets.hit(self.config.resets, now_ns) {
            return Err(Reason::RapidReset);
        }
        Ok(())
    }

    /// Notes an answer queued; too many unread ones end the connection.
    fn answered(&mut self) -> Result<(), Reason> {
        self.answers += 1;
        self.answers_end = self.out.len();
        if self.answers > self.config.max_pending_answers {
            return Err(Reason::AnswerBacklog);
        }
        Ok(())
    }

    /// Resets a stream because of the peer.
    fn stream_error(
        &mut self,
        id: StreamId,
        reason: StreamReason,
        now_ns: u64,
    ) -> Result<Option<Ev>, Reason> {
        if self.slot(id).is_none() && self.is_idle(id) {
            // §6.4: no RST_STREAM for an idle stream. Only PRIORITY may name one (§5.1), so a
            // bad PRIORITY there is a connection error; anything else was not allowed at all.
            return Err(match reason {
                StreamReason::PriorityFrameSize => Reason::FrameSize,
                StreamReason::SelfDependency => Reason::SelfDependency,
                _ => Reason::IdleStream,
            });
        }
        if let Some(i) = self.slot(id) {
            self.remove(i);
        }
        frame::write_rst_stream(&mut self.out, id, reason.code());
        if reason == StreamReason::Refused {
            self.stats.streams_refused += 1;
        } else {
            self.stats.stream_errors += 1;
        }
        self.answered()?;
        self.count_reset(now_ns)?;
        Ok(Some(Ev::StreamError { stream: id, reason }))
    }

    /// Forgets a stream; the credit it held for the connection goes back with the next update.
    fn remove(&mut self, i: usize) {
        self.streams.swap_remove(i);
    }

    fn on_data(
        &mut self,
        h: FrameHeader,
        len: u32,
        pad_total: u32,
        now_ns: u64,
    ) -> Result<Option<Ev>, Reason> {
        let id = h.stream;
        let end_stream = h.has(flags::END_STREAM);
        let pad_after = pad_total.saturating_sub(1);
        // §6.9: the whole payload counts against the connection window.
        if i64::from(h.len) > self.recv_conn_window {
            return Err(Reason::FlowControl);
        }
        self.recv_conn_window -= i64::from(h.len);
        // Padding never reaches the application: its credit goes back at once.
        self.conn_credit += u64::from(pad_total);
        let discard = |conn: &mut Conn| {
            conn.conn_credit += u64::from(len);
            conn.data_in =
                Some(DataIn { stream: id, remaining: len, pad: pad_after, end_stream, deliver: false });
        };
        let Some(i) = self.slot(id) else {
            if self.is_idle(id) {
                return Err(Reason::IdleStream);
            }
            // A closed stream (reset, or finished): the peer may not have known yet.
            discard(self);
            self.count_empty(now_ns)?;
            self.flush_credit();
            return Ok(None);
        };
        let s = self.streams[i];
        let err = match s.recv {
            RecvState::Closed => Some(StreamReason::StreamClosed),
            RecvState::Head => Some(StreamReason::DataBeforeHead),
            RecvState::Body if i64::from(h.len) > s.recv_window => Some(StreamReason::FlowControl),
            RecvState::Body => match s.content_length {
                Some(cl)
                    if !s.head_request
                        && (s.received + u64::from(len) > cl
                            || end_stream && s.received + u64::from(len) != cl) =>
                {
                    Some(StreamReason::ContentLengthMismatch)
                }
                _ => None,
            },
        };
        if let Some(reason) = err {
            discard(self);
            self.flush_credit();
            return self.stream_error(id, reason, now_ns);
        }
        let s = &mut self.streams[i];
        s.recv_window -= i64::from(h.len);
        s.credit += pad_total;
        s.received += u64::from(len);
        if end_stream {
            s.recv = RecvState::Closed;
            if s.send_closed {
                self.remove(i);
            }
        }
        if len == 0 && !end_stream {
            self.count_empty(now_ns)?;
        }
        self.data_in = Some(DataIn { stream: id, remaining: len, pad: pad_after, end_stream, deliver: true });
        if pad_total > 0 {
            self.flush_credit();
        }
        if len == 0 && pad_after == 0 {
            self.data_in = None;
            if end_stream {
                return Ok(Some(Ev::Data { stream: id, data: (0, 0), end_stream: true }));
            }
        }
        Ok(None)
    }

    fn on_frame(&mut self, f: Frame<'_>, payload_start: usize, now_ns: u64) -> Result<Option<Ev>, Reason> {
        match f {
            Frame::Data { .. } => unreachable!("DATA is handled as it streams"),
            Frame::Headers { stream, fragment, end_stream, end_headers, priority } => {
                self.start_block(stream, fragment, end_stream)?;
                if let Some(b) = &mut self.block_state {
                    b.self_dependent = priority.is_some_and(|p| p.dependency == stream);
                }
                if end_headers { self.end_block(now_ns) } else { Ok(None) }
            }
            Frame::Continuation { fragment, end_headers, .. } => {
                let Some(mut b) = self.block_state else { return Err(Reason::UnexpectedContinuation) };
                b.frames += 1;
                if b.frames > self.config.max_continuation_frames {
                    return Err(Reason::ContinuationFlood);
                }
                if fragment.is_empty() && !end_headers {
                    self.count_empty(now_ns)?;
                }
                if self.block.len() + fragment.len() > self.config.max_header_block_bytes as usize {
                    return Err(Reason::HeaderBlockTooLarge);
                }
                self.block.extend_from_slice(fragment);
                self.block_state = Some(b);
                if end_headers { self.end_block(now_ns) } else { Ok(None) }
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {
                self.count_empty(now_ns)?;
                Ok(None)
            }
            Frame::RstStream { stream, code } => {
                let Some(i) = self.slot(stream) else {
                    if self.is_idle(stream) {
                        return Err(Reason::IdleStream);
                    }
                    self.count_empty(now_ns)?;
                    return Ok(None);
                };
                let s = self.streams[i];
                self.remove(i);
                if !s.send_closed {
                    self.stats.peer_resets += 1;
                    self.count_reset(now_ns)?;
                }
                Ok(Some(Ev::Reset { stream, code }))
            }
            Frame::Settings { ack: true, .. } => {
                if !self.settings_acked {
                    self.settings_acked = true;
                    // §6.9.2: our initial window applies from the acknowledgement; open streams'
                    // windows move by the difference.
                    let delta = i64::from(self.config.stream_window) - i64::from(self.recv_initial_window);
                    self.recv_initial_window = self.config.stream_window;
                    for s in &mut self.streams {
                        s.recv_window += delta;
                    }
                }
                Ok(None)
            }
            Frame::Settings { ack: false, settings } => {
                if self.peer_settings_seen && self.settings_window.hit(self.config.settings, now_ns) {
                    return Err(Reason::SettingsFlood);
                }
                self.peer_settings_seen = true;
                let mut grew = false;
                for (id, v) in settings.iter() {
                    match id {
                        setting::HEADER_TABLE_SIZE => {
                            self.peer.header_table_size = v;
                            self.encoder.set_peer_table_size(v as usize);
                        }
                        setting::ENABLE_PUSH => {
                            // §6.5.2: a client must not be told push is enabled.
                            if self.role == Role::Client && v == 1 {
                                return Err(Reason::BadSetting);
                            }
                            self.peer.enable_push = v == 1;
                        }
                        setting::MAX_CONCURRENT_STREAMS => {
                            grew |= v > self.peer.max_concurrent_streams;
                            self.peer.max_concurrent_streams = v;
                        }
                        setting::INITIAL_WINDOW_SIZE => {
                            let delta = i64::from(v) - i64::from(self.peer.initial_window_size);
                            for s in &mut self.streams {
                                s.send_window += delta;
                                if s.send_window > i64::from(MAX_WINDOW) {
                                    return Err(Reason::BadWindowSetting);
                                }
                            }
                            grew |= delta > 0;
                            self.peer.initial_window_size = v;
                        }
                        setting::MAX_FRAME_SIZE => self.peer.max_frame_size = v,
                        setting::MAX_HEADER_LIST_SIZE => self.peer.max_header_list_size = v,
                        _ => {}
                    }
                }
                frame::write_settings_ack(&mut self.out);
                self.answered()?;
                Ok(grew.then_some(Ev::WindowUpdate { stream: StreamId::CONNECTION }))
            }
            Frame::PushPromise { .. } => Err(Reason::PushPromise),
            Frame::Ping { ack: true, data } => Ok(Some(Ev::Pong { data })),
            Frame::Ping { ack: false, data } => {
                if self.pings.hit(self.config.pings, now_ns) {
                    return Err(Reason::PingFlood);
                }
                frame::write_ping(&mut self.out, true, data);
                self.answered()?;
                Ok(None)
            }
            Frame::GoAway { last_stream, code, debug } => {
                self.goaway_received = Some(last_stream);
                // Streams we opened above `last_stream` were never processed: forget them.
                let role = self.role;
                self.streams.retain(|s| {
                    let ours = (role == Role::Client) == s.id.is_client_initiated();
                    !(ours && s.id > last_stream)
                });
                let start = payload_start + 8;
                Ok(Some(Ev::GoAway { last_stream, code, debug: (start, start + debug.len()) }))
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream.is_connection() {
                    self.send_conn_window += i64::from(increment);
                    if self.send_conn_window > i64::from(MAX_WINDOW) {
                        return Err(Reason::WindowOverflow);
                    }
                    return Ok(Some(Ev::WindowUpdate { stream }));
                }
                let Some(i) = self.slot(stream) else {
                    if self.is_idle(stream) {
                        return Err(Reason::IdleStream);
                    }
                    return Ok(None);
                };
                self.streams[i].send_window += i64::from(increment);
                if self.streams[i].send_window > i64::from(MAX_WINDOW) {
                    return self.stream_error(stream, StreamReason::WindowOverflow, now_ns);
                }
                Ok(Some(Ev::WindowUpdate { stream }))
            }
        }
    }

    fn start_block(&mut self, stream: StreamId, fragment: &[u8], end_stream: bool) -> Result<(), Reason> {
        // A new stream from the peer must be of its parity and above every earlier one.
        if self.slot(stream).is_none() && self.is_idle(stream) {
            let peer_opens = match self.role {
                Role::Server => stream.is_client_initiated(),
                Role::Client => false,
            };
            if !peer_opens {
                return Err(if self.role == Role::Client { Reason::IdleStream } else { Reason::StreamId });
            }
        }
        if self.role == Role::Server && !stream.is_client_initiated() {
            return Err(Reason::StreamId);
        }
        if fragment.len() > self.config.max_header_block_bytes as usize {
            return Err(Reason::HeaderBlockTooLarge);
        }
        self.block.clear();
        self.block.extend_from_slice(fragment);
        self.block_state = Some(Block { stream, end_stream, frames: 0, self_dependent: false });
        Ok(())
    }

    fn end_block(&mut self, now_ns: u64) -> Result<Option<Ev>, Reason> {
        let Some(b) = self.block_state.take() else { return Ok(None) };
        // Decoded whatever becomes of the stream: the table must follow the peer's encoder.
        self.decoder.decode(&self.block, &mut self.list).map_err(Reason::Compression)?;
        let id = b.stream;
        if b.self_dependent {
            if self.slot(id).is_none() && self.is_idle(id) {
                // The stream opens to be reset at once.
                self.last_peer_stream = id.0;
            }
            return self.stream_error(id, StreamReason::SelfDependency, now_ns);
        }
        let Some(i) = self.slot(id) else {
            if !self.is_idle(id) {
                // A closed stream (we reset it; the peer did not know yet): nothing to do.
                self.count_empty(now_ns)?;
                return Ok(None);
            }
            return self.open_peer_stream(b, now_ns);
        };
        let s = self.streams[i];
        if self.list.is_oversize() {
            self.stats.header_lists_too_large += 1;
            return self.stream_error(id, StreamReason::HeaderListTooLarge, now_ns);
        }
        match s.recv {
            RecvState::Closed => self.stream_error(id, StreamReason::StreamClosed, now_ns),
            RecvState::Head => {
                // A response (client role).
                let pseudo = match check(&self.list, Kind::Response) {
                    Ok(p) => p,
                    Err(r) => return self.stream_error(id, r, now_ns),
                };
                let head = Head { list: &self.list, pseudo, content_length: None };
                let status = head.status().unwrap_or(0);
                let content_length = match content_length(&self.list, pseudo) {
                    Ok(cl) => cl,
                    Err(r) => return self.stream_error(id, r, now_ns),
                };
                if (100..200).contains(&status) {
                    if b.end_stream {
                        return self.stream_error(id, StreamReason::InformationalEndStream, now_ns);
                    }
                    return Ok(Some(Ev::Head { stream: id, pseudo, content_length, end_stream: false }));
                }
                let s = &mut self.streams[i];
                s.content_length = if status == 304 || status == 204 { None } else { content_length };
                if b.end_stream && !s.head_request && s.content_length.is_some_and(|cl| cl != 0) {
                    return self.stream_error(id, StreamReason::ContentLengthMismatch, now_ns);
                }
                s.recv = if b.end_stream { RecvState::Closed } else { RecvState::Body };
                if b.end_stream && s.send_closed {
                    self.remove(i);
                }
                Ok(Some(Ev::Head { stream: id, pseudo, content_length, end_stream: b.end_stream }))
            }
            RecvState::Body => {
                // Trailers.
                if !b.end_stream {
                    return self.stream_error(id, StreamReason::TrailersWithoutEndStream, now_ns);
                }
                let pseudo = match check(&self.list, Kind::Trailers) {
                    Ok(p) => p,
                    Err(r) => return self.stream_error(id, r, now_ns),
                };
                if !s.head_request && s.content_length.is_some_and(|cl| cl != s.received) {
                    return self.stream_error(id, StreamReason::ContentLengthMismatch, now_ns);
                }
                self.streams[i].recv = RecvState::Closed;
                if s.send_closed {
                    self.remove(i);
                }
                Ok(Some(Ev::Trailers { stream: id, pseudo }))
            }
        }
    }

    fn open_peer_stream(&mut self, b: Block, now_ns: u64) -> Result<Option<Ev>, Reason> {
        let id = b.stream;
        self.last_peer_stream = id.0;
        if self.goaway_sent.is_some_and(|last| id > last) {
            // §6.8: streams above our GOAWAY's last stream are ignored.
            return Ok(None);
        }
        if self.list.is_oversize() {
            self.stats.header_lists_too_large += 1;
            // RFC 9113 §10.5.1: 431; then RST_STREAM NO_ERROR, so the client stops sending the
            // body (§8.1).
            self.scratch.clear();
            self.encoder.encode([Field::new(b":status", b"431")], &mut self.scratch);
            frame::write_headers(&mut self.out, id, &self.scratch, true, true);
            frame::write_rst_stream(&mut self.out, id, ErrorCode::NO_ERROR);
            self.stats.stream_errors += 1;
            self.answered()?;
            self.count_reset(now_ns)?;
            return Ok(Some(Ev::StreamError { stream: id, reason: StreamReason::HeaderListTooLarge }));
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            return self.stream_error(id, StreamReason::Refused, now_ns);
        }
        let pseudo = match check(&self.list, Kind::Request) {
            Ok(p) => p,
            Err(r) => return self.stream_error(id, r, now_ns),
        };
        let content_length = match content_length(&self.list, pseudo) {
            Ok(cl) => cl,
            Err(r) => return self.stream_error(id, r, now_ns),
        };
        if b.end_stream && content_length.is_some_and(|cl| cl != 0) {
            return self.stream_error(id, StreamReason::ContentLengthMismatch, now_ns);
        }
        self.streams.push(Stream {
            id,
            recv: if b.end_stream { RecvState::Closed } else { RecvState::Body },
            recv_window: i64::from(self.recv_initial_window),
            credit: 0,
            content_length,
            received: 0,
            send_window: i64::from(self.peer.initial_window_size),
            head_sent: false,
            send_closed: false,
            head_request: false,
        });
        self.stats.streams_opened += 1;
        Ok(Some(Ev::Head { stream: id, pseudo, content_length, end_stream: b.end_stream }))
    }

    // ---- flow control ----------------------------------------------------------------------

    /// The application is done with `n` bytes of DATA it was given on `stream` (they left its
    /// buffer): the peer may send that much more. WINDOW_UPDATEs go out once half a window is
    /// owed. Call it for every byte of every [`Event::Data`], even after the stream ended or
    /// was reset (the connection's window still counts them).
    pub fn release(&mut self, stream: StreamId, n: usize) {
        self.wake();
        let n = n as u32;
        self.conn_credit += u64::from(n);
        if let Some(i) = self.slot(stream) {
            self.streams[i].credit = self.streams[i].credit.saturating_add(n);
        }
        self.flush_credit();
    }

    /// Sends the WINDOW_UPDATEs owed past half a window.
    fn flush_credit(&mut self) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        if self.conn_credit >= u64::from(self.config.connection_window / 2) {
            // Never past the largest window, whatever the application released.
            let room = (i64::from(MAX_WINDOW) - self.recv_conn_window).max(0) as u64;
            let inc = self.conn_credit.min(room) as u32;
            if inc == 0 {
                self.conn_credit = 0;
                return;
            }
            frame::write_window_update(&mut self.out, StreamId::CONNECTION, inc);
            self.recv_conn_window += i64::from(inc);
            self.conn_credit -= u64::from(inc);
        }
        let half = (self.recv_initial_window / 2).max(1);
        for s in &mut self.streams {
            if s.credit >= half && s.recv == RecvState::Body {
                let room = (i64::from(MAX_WINDOW) - s.recv_window).max(0) as u32;
                let inc = s.credit.min(room);
                if inc > 0 {
                    frame::write_window_update(&mut self.out, s.id, inc);
                    s.recv_window += i64::from(inc);
                }
                s.credit = 0;
            }
        }
    }

    // ---- sending ---------------------------------------------------------------------------

    fn writable(&self) -> Result<(), SendError> {
        match self.state {
            State::Failed(_) => Err(SendError::Closed),
            _ => Ok(()),
        }
    }

    /// How many DATA bytes [`Conn::send_data`] would take now on `stream`: the peer's stream
    /// and connection windows and the output buffer's room.
    pub fn send_capacity(&self, stream: StreamId) -> usize {
        let Some(i) = self.slot(stream) else { return 0 };
        let s = &self.streams[i];
        if s.send_closed || !s.head_sent || self.writable().is_err() {
            return 0;
        }
        let window = s.send_window.min(self.send_conn_window).max(0) as usize;
        let room = self.config.write_buffer_bytes.saturating_sub(self.out.len());
        let frame_size = self.peer.max_frame_size as usize;
        // Each frame costs a header.
        let frames = room.div_ceil(frame_size + HEADER_LEN);
        let room = room.saturating_sub(frames * HEADER_LEN);
        window.min(room)
    }

    /// Opens a stream with a request head (client role): its stream, or why not.
    /// `end_stream`: no body follows. Connection-specific fields are dropped (§8.2.2).
    pub fn send_request<'f>(
        &mut self,
        req: Request<'_>,
        fields: impl IntoIterator<Item = Field<'f>> + Clone,
        end_stream: bool,
    ) -> Result<StreamId, SendError> {
        self.writable()?;
        if self.role != Role::Client {
            return Err(SendError::WrongRole);
        }
        if self.goaway_sent.is_some() || self.goaway_received.is_some() {
            return Err(SendError::GoingAway);
        }
        let ours = self.streams.len();
        if ours >= self.config.max_concurrent_streams as usize
            || ours as u64 >= u64::from(self.peer.max_concurrent_streams)
        {
            return Err(SendError::StreamLimit);
        }
        if self.next_local_stream > MAX_WINDOW {
            return Err(SendError::GoingAway);
        }
        let id = StreamId(self.next_local_stream);
        let connect = req.method == b"CONNECT";
        let mut pseudo = [
            Field::new(b":method", req.method),
            Field::new(b":scheme", req.scheme),
            Field::new(b":authority", req.authority),
            Field::new(b":path", req.path),
        ];
        let mut n = 4;
        if connect {
            pseudo[1] = pseudo[2];
            n = 2;
        } else if req.authority.is_empty() {
            pseudo[2] = pseudo[3];
            n = 3;
        }
        self.write_head(id, &pseudo[..n], fields, end_stream)?;
        self.next_local_stream += 2;
        self.streams.push(Stream {
            id,
            recv: RecvState::Head,
            recv_window: i64::from(self.recv_initial_window),
            credit: 0,
            content_length: None,
            received: 0,
            send_window: i64::from(self.peer.initial_window_size),
            head_sent: true,
            send_closed: end_stream,
            head_request: req.method == b"HEAD",
        });
        self.stats.streams_opened += 1;
        Ok(id)
    }

    /// Sends a response head (server role): 1xx any number of times, then the final one.
    /// `end_stream`: no body follows. Connection-specific fields are dropped (§8.2.2).
    pub fn send_response<'f>(
        &mut self,
        stream: StreamId,
        status: u16,
        fields: impl IntoIterator<Item = Field<'f>> + Clone,
        end_stream: bool,
    ) -> Result<(), SendError> {
        self.writable()?;
        if self.role != Role::Server {
            return Err(SendError::WrongRole);
        }
        let i = self.slot(stream).ok_or(SendError::UnknownStream)?;
        let s = self.streams[i];
        if s.send_closed {
            return Err(SendError::StreamClosed);
        }
        if s.head_sent || !(100..=999).contains(&status) {
            return Err(SendError::OutOfOrder);
        }
        let informational = (100..200).contains(&status);
        if informational && end_stream {
            return Err(SendError::OutOfOrder);
        }
        let digits =
            [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
        self.write_head(stream, &[Field::new(b":status", &digits)], fields, end_stream)?;
        let s = &mut self.streams[i];
        s.head_sent |= !informational;
        self.after_send(i, end_stream);
        Ok(())
    }

    /// Sends trailers, ending the stream (gRPC's `grpc-status` travels here).
    pub fn send_trailers<'f>(
        &mut self,
        stream: StreamId,
        fields: impl IntoIterator<Item = Field<'f>> + Clone,
    ) -> Result<(), SendError> {
        self.writable()?;
        let i = self.slot(stream).ok_or(SendError::UnknownStream)?;
        let s = self.streams[i];
        if s.send_closed {
            return Err(SendError::StreamClosed);
        }
        if !s.head_sent {
            return Err(SendError::OutOfOrder);
        }
        self.write_head(stream, &[], fields, true)?;
        self.after_send(i, true);
        Ok(())
    }

    /// Sends up to `data.len()` bytes of body: as much as [`Conn::send_capacity`] allows, in
    /// frames of the peer's maximum size. Returns how many were taken; `end_stream` is sent
    /// with the last byte only when all were taken (an empty `data` with `end_stream` just
    /// ends the stream).
    pub fn send_data(&mut self, stream: StreamId, data: &[u8], end_stream: bool) -> Result<usize, SendError> {
        self.wake();
        self.writable()?;
        let i = self.slot(stream).ok_or(SendError::UnknownStream)?;
        let s = self.streams[i];
        if s.send_closed {
            return Err(SendError::StreamClosed);
        }
        if !s.head_sent {
            return Err(SendError::OutOfOrder);
        }
        let n = data.len().min(self.send_capacity(stream));
        let end = end_stream && n == data.len();
        if n == 0 && !end {
            return Ok(0);
        }
        if n == 0 && self.out.len() + HEADER_LEN > self.config.write_buffer_bytes {
            return Err(SendError::Blocked);
        }
        let frame_size = self.peer.max_frame_size as usize;
        let mut chunks = data[..n].chunks(frame_size).peekable();
        if n == 0 {
            frame::write_data(&mut self.out, stream, &[], true);
        }
        while let Some(c) = chunks.next() {
            frame::write_data(&mut self.out, stream, c, end && chunks.peek().is_none());
        }
        self.send_conn_window -= n as i64;
        self.streams[i].send_window -= n as i64;
        self.after_send(i, end);
        Ok(n)
    }

    /// Resets a stream (RST_STREAM with `code`; CANCEL when the application gives up on it).
    pub fn reset(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), SendError> {
        self.wake();
        self.writable()?;
        let i = self.slot(stream).ok_or(SendError::UnknownStream)?;
        self.remove(i);
        frame::write_rst_stream(&mut self.out, stream, code);
        // The rest of a DATA frame arriving for it is dropped, its credit given back.
        if let Some(d) = &mut self.data_in
            && d.stream == stream
            && d.deliver
        {
            d.deliver = false;
            self.conn_credit += u64::from(d.remaining);
        }
        Ok(())
    }

    /// Starts a graceful shutdown: GOAWAY NO_ERROR naming the last stream the peer opened;
    /// streams it opens after are ignored; the connection is finished once the open ones are
    /// done ([`Conn::is_finished`]).
    pub fn go_away(&mut self) {
        self.wake();
        if self.goaway_sent.is_some() || self.writable().is_err() {
            return;
        }
        let last = StreamId(self.last_peer_stream);
        frame::write_goaway(&mut self.out, last, ErrorCode::NO_ERROR, &[]);
        self.goaway_sent = Some(last);
    }

    /// Announces a shutdown (RFC 9113 §6.8: "a server that is attempting to gracefully shut
    /// down a connection SHOULD send an initial GOAWAY frame with the last stream identifier
    /// set to 2^31-1 and a NO_ERROR code"): the peer stops opening streams, and those it opened
    /// before it saw this are still served. [`Conn::go_away`], at least a round trip later,
    /// names the last stream. Nothing if a GOAWAY was sent already.
    pub fn announce_go_away(&mut self) {
        self.wake();
        if self.goaway_sent.is_some() || self.writable().is_err() {
            return;
        }
        frame::write_goaway(&mut self.out, StreamId(0x7fff_ffff), ErrorCode::NO_ERROR, &[]);
    }

    /// Sends a PING; the answer comes as [`Event::Pong`].
    pub fn ping(&mut self, data: [u8; 8]) -> Result<(), SendError> {
        self.wake();
        self.writable()?;
        frame::write_ping(&mut self.out, false, data);
        Ok(())
    }

    fn after_send(&mut self, i: usize, end_stream: bool) {
        if end_stream {
            self.streams[i].send_closed = true;
            if self.streams[i].recv == RecvState::Closed {
                self.remove(i);
            }
        }
    }

    /// Encodes a head (pseudo-header fields first) into HEADERS and CONTINUATIONs. Checks the
    /// room first, with a bound of the encoded size, so that a refused head leaves the
    /// encoder's table untouched.
    fn write_head<'f>(
        &mut self,
        stream: StreamId,
        pseudo: &[Field<'_>],
        fields: impl IntoIterator<Item = Field<'f>> + Clone,
        end_stream: bool,
    ) -> Result<(), SendError> {
        self.wake();
        let keep = |f: &Field<'_>| {
            let name = f.name;
            let specific = CONNECTION_SPECIFIC.iter().any(|c| c.eq_ignore_ascii_case(name));
            let te_trailers = !name.eq_ignore_ascii_case(b"te") || f.value.eq_ignore_ascii_case(b"trailers");
            !specific && te_trailers
        };
        let mut bound = 16;
        let mut list_size = 0u64;
        let mut count = |f: &Field<'_>| {
            bound += f.name.len() + f.value.len() + 12;
            list_size += (f.name.len() + f.value.len() + hpack::ENTRY_OVERHEAD) as u64;
        };
        pseudo.iter().for_each(&mut count);
        fields.clone().into_iter().filter(keep).for_each(|f| count(&f));
        let frame_size = self.peer.max_frame_size as usize;
        let total = bound + HEADER_LEN * (bound / frame_size + 1);
        if total > self.config.write_buffer_bytes || list_size > u64::from(self.peer.max_header_list_size) {
            return Err(SendError::HeadTooLarge);
        }
        if self.out.len() + total > self.config.write_buffer_bytes {
            return Err(SendError::Blocked);
        }
        self.scratch.clear();
        self.encoder.begin_block(&mut self.scratch);
        for &f in pseudo {
            self.encoder.encode_field(f, &mut self.scratch);
        }
        for f in fields.into_iter().filter(keep) {
            self.encoder.encode_field(f, &mut self.scratch);
        }
        let mut chunks = self.scratch.chunks(frame_size);
        let first = chunks.next().unwrap_or(&[]);
        let mut rest = chunks.peekable();
        frame::write_headers(&mut self.out, stream, first, end_stream, rest.peek().is_none());
        while let Some(c) = rest.next() {
            frame::write_continuation(&mut self.out, stream, c, rest.peek().is_none());
        }
        Ok(())
    }
}

/// What a header list must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
    Trailers,
}

/// Checks a header list against RFC 9113 §8.2 and §8.3 and finds its pseudo-header fields.
fn check(list: &HeaderList, kind: Kind) -> Result<Pseudo, StreamReason> {
    let mut p = Pseudo::default();
    let mut regular = false;
    for (i, f) in list.iter().enumerate() {
        let idx = Some(i as u32);
        check_value(f.value)?;
        if let Some(name) = f.name.strip_prefix(b":") {
            if kind == Kind::Trailers {
                return Err(StreamReason::PseudoInTrailers);
            }
            if regular {
                return Err(StreamReason::PseudoAfterRegular);
            }
            let slot = match (kind, name) {
                (Kind::Request, b"method") => &mut p.method,
                (Kind::Request, b"scheme") => &mut p.scheme,
                (Kind::Request, b"authority") => &mut p.authority,
                (Kind::Request, b"path") => &mut p.path,
                (Kind::Response, b"status") => &mut p.status,
                _ => return Err(StreamReason::UnknownPseudo),
            };
            if slot.is_some() {
                return Err(StreamReason::DuplicatePseudo);
            }
            *slot = idx;
            p.regular = i as u32 + 1;
            continue;
        }
        regular = true;
        check_name(f.name)?;
        let name = f.name;
        if CONNECTION_SPECIFIC.contains(&name) {
            return Err(StreamReason::ConnectionSpecific);
        }
        if name == b"te" && f.value != b"trailers" {
            return Err(StreamReason::BadTe);
        }
        if name == b"host" && p.host.is_none() {
            p.host = idx;
        }
    }
    let value = |i: Option<u32>| i.map(|i| list.field(i as usize).value);
    match kind {
        Kind::Request => {
            let method = value(p.method).ok_or(StreamReason::MissingPseudo)?;
            if method == b"CONNECT" {
                // §8.5: only :method and :authority.
                if p.scheme.is_some() || p.path.is_some() {
                    return Err(StreamReason::UnknownPseudo);
                }
                if p.authority.is_none() {
                    return Err(StreamReason::MissingPseudo);
                }
            } else {
                let path = value(p.path).ok_or(StreamReason::MissingPseudo)?;
                if p.scheme.is_none() {
                    return Err(StreamReason::MissingPseudo);
                }
                let ok = path.first() == Some(&b'/') || (path == b"*" && method == b"OPTIONS");
                if !ok {
                    return Err(StreamReason::BadPath);
                }
            }
            // §8.3.1: no userinfo in :authority (nor in Host, which stands for it).
            if value(p.authority)
                .or(value(p.host))
                .is_some_and(|a| a.iter().any(|&b| b == b'@' || b == b' ' || b == b'\t'))
            {
                return Err(StreamReason::BadAuthority);
            }
            if let (Some(a), Some(h)) = (value(p.authority), value(p.host))
                && !a.eq_ignore_ascii_case(h)
            {
                return Err(StreamReason::HostMismatch);
            }
        }
        Kind::Response => {
            let status = value(p.status).ok_or(StreamReason::MissingPseudo)?;
            let digits = status.len() == 3 && status.iter().all(u8::is_ascii_digit) && status[0] != b'0';
            if !digits || status == b"101" {
                return Err(StreamReason::BadStatus);
            }
        }
        Kind::Trailers => {}
    }
    Ok(p)
}

/// The Content-Length of a checked list: one number, or several equal ones.
fn content_length(list: &HeaderList, p: Pseudo) -> Result<Option<u64>, StreamReason> {
    let mut cl = None;
    for i in p.regular as usize..list.len() {
        let f = list.field(i);
        if f.name != b"content-length" {
            continue;
        }
        if f.value.is_empty() || f.value.len() > 19 || !f.value.iter().all(u8::is_ascii_digit) {
            return Err(StreamReason::BadContentLength);
        }
        let v = f.value.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        if cl.is_some_and(|c| c != v) {
            return Err(StreamReason::BadContentLength);
        }
        cl = Some(v);
    }
    Ok(cl)
}

/// §8.2.1: a name is a lowercase token.
fn check_name(name: &[u8]) -> Result<(), StreamReason> {
    if name.is_empty() {
        return Err(StreamReason::BadName);
    }
    for &b in name {
        if b.is_ascii_uppercase() {
            return Err(StreamReason::UppercaseName);
        }
        let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if !tchar {
            return Err(StreamReason::BadName);
        }
    }
    Ok(())
}

/// §8.2.1: no NUL, CR or LF; no whitespace at either end.
fn check_value(value: &[u8]) -> Result<(), StreamReason> {
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(StreamReason::BadValue);
    }
    let ws = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if ws(value.first()) || ws(value.last()) {
        return Err(StreamReason::BadValue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event, owned, for comparing.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum E {
        Head { stream: u32, fields: Vec<(String, String)>, end: bool },
        Data { stream: u32, bytes: Vec<u8>, end: bool },
        Trailers { stream: u32, fields: Vec<(String, String)> },
        Reset { stream: u32, code: ErrorCode },
        StreamError { stream: u32, reason: StreamReason },
        Window { stream: u32 },
        Pong([u8; 8]),
        GoAway { last: u32, code: ErrorCode, debug: Vec<u8> },
        ConnError(Reason),
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn all_fields(h: &Head<'_>) -> Vec<(String, String)> {
        h.list.iter().map(|f| (text(f.name), text(f.value))).collect()
    }

    fn own(ev: Event<'_>, input: &[u8]) -> E {
        match ev {
            Event::Head { stream, head, end_stream } => {
                E::Head { stream: stream.0, fields: all_fields(&head), end: end_stream }
            }
            Event::Data { stream, data, end_stream } => {
                E::Data { stream: stream.0, bytes: input[data].to_vec(), end: end_stream }
            }
            Event::Trailers { stream, trailers } => {
                E::Trailers { stream: stream.0, fields: all_fields(&trailers) }
            }
            Event::Reset { stream, code } => E::Reset { stream: stream.0, code },
            Event::StreamError { stream, reason } => E::StreamError { stream: stream.0, reason },
            Event::WindowUpdate { stream } => E::Window { stream: stream.0 },
            Event::Pong { data } => E::Pong(data),
            Event::GoAway { last_stream, code, debug } => {
                E::GoAway { last: last_stream.0, code, debug: input[debug].to_vec() }
            }
            Event::ConnectionError { reason } => E::ConnError(reason),
        }
    }

    /// Feeds `input` in pieces of the given sizes (the rest at the end), keeping unconsumed
    /// bytes like a driver would; data events of one stream that follow each other are merged,
    /// and window events dropped (they depend on how input is cut), so that any cut gives the
    /// same list.
    fn feed_cut(conn: &mut Conn, input: &[u8], cuts: &[usize], now_ns: u64) -> Vec<E> {
        let mut events = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut rest = input;
        let mut cuts = cuts.iter();
        loop {
            let n = cuts.next().copied().unwrap_or(rest.len()).min(rest.len());
            pending.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                let r = conn.recv(&pending, now_ns);
                let consumed = r.consumed;
                let ev = r.event.map(|e| own(e, &pending));
                pending.drain(..consumed);
                let Some(ev) = ev else {
                    if consumed == 0 {
                        break;
                    }
                    continue;
                };
                match (events.last_mut(), ev) {
                    (_, E::Window { .. }) => {}
                    (Some(E::Data { stream, bytes, end }), E::Data { stream: s2, bytes: b2, end: e2 })
                        if *stream == s2 && !*end =>
                    {
                        bytes.extend_from_slice(&b2);
                        *end = e2;
                    }
                    (_, ev) => events.push(ev),
                }
            }
            if rest.is_empty() {
                break;
            }
        }
        events
    }

    fn feed(conn: &mut Conn, input: &[u8]) -> Vec<E> {
        feed_cut(conn, input, &[], 0)
    }

    /// Feeds `input` whole, then cut at every byte, then one byte at a time, each to a fresh
    /// connection, and checks that all give the same events and output; returns them.
    fn feed_every_cut(make: impl Fn() -> Conn, input: &[u8]) -> (Vec<E>, Vec<u8>) {
        let mut whole = make();
        let events = feed(&mut whole, input);
        let out = whole.write_buf().to_vec();
        for cut in 1..input.len() {
            let mut c = make();
            assert_eq!(feed_cut(&mut c, input, &[cut], 0), events, "cut at {cut}");
            assert_eq!(c.write_buf(), &out[..], "output, cut at {cut}");
        }
        let mut c = make();
        let ones = vec![1; input.len()];
        assert_eq!(feed_cut(&mut c, input, &ones, 0), events, "byte by byte");
        (events, out)
    }

    fn frames_of(out: &[u8]) {
        frames(out);
    }

    /// The frames in `out`.
    fn frames(out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut v = Vec::new();
        let mut rest = if out.starts_with(PREFACE) { &out[PREFACE.len()..] } else { out };
        while let Some(h) = FrameHeader::parse(rest) {
            let end = HEADER_LEN + h.len as usize;
            v.push((h, rest[HEADER_LEN..end].to_vec()));
            rest = &rest[end..];
        }
        assert!(rest.is_empty(), "a cut frame in the output");
        v
    }

    fn goaway_code(out: &[u8]) -> Option<ErrorCode> {
        frames(out)
            .iter()
            .find(|(h, _)| h.kind == FrameType::GoAway)
            .map(|(_, p)| ErrorCode(u32::from_be_bytes([p[4], p[5], p[6], p[7]])))
    }

    fn rst_codes(out: &[u8]) -> Vec<(u32, ErrorCode)> {
        frames(out)
            .iter()
            .filter(|(h, _)| h.kind == FrameType::RstStream)
            .map(|(h, p)| (h.stream.0, ErrorCode(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))))
            .collect()
    }

    fn server() -> Conn {
        Conn::new(Role::Server, Config::DEFAULT)
    }

    fn server_with(f: impl FnOnce(&mut Config)) -> Conn {
        let mut c = Config::DEFAULT;
        f(&mut c);
        Conn::new(Role::Server, c)
    }

    /// A client's byte stream, built frame by frame.
    struct Peer {
        enc: Encoder,
        bytes: Vec<u8>,
    }

    impl Peer {
        /// Preface and an empty SETTINGS.
        fn client() -> Peer {
            let mut bytes = PREFACE.to_vec();
            frame::write_settings(&mut bytes, &[]);
            Peer { enc: Encoder::new(4096), bytes }
        }

        fn server() -> Peer {
            let mut bytes = Vec::new();
            frame::write_settings(&mut bytes, &[]);
            Peer { enc: Encoder::new(4096), bytes }
        }

        fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
            let mut b = Vec::new();
            self.enc.encode(fields.iter().map(|(n, v)| Field::new(n.as_bytes(), v.as_bytes())), &mut b);
            b
        }

        fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> &mut Peer {
            let b = self.block(fields);
            frame::write_headers(&mut self.bytes, StreamId(stream), &b, end_stream, true);
            self
        }

        fn get(&mut self, stream: u32, path: &str) -> &mut Peer {
            self.headers(
                stream,
                &[(":method", "GET"), (":scheme", "http"), (":authority", "example.com"), (":path", path)],
                true,
            )
        }

        fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> &mut Peer {
            frame::write_data(&mut self.bytes, StreamId(stream), data, end_stream);
            self
        }

        fn raw(&mut self, bytes: &[u8]) -> &mut Peer {
            self.bytes.extend_from_slice(bytes);
            self
        }
    }

    fn req(stream: u32, path: &str, end: bool) -> E {
        E::Head {
            stream,
            fields: [(":method", "GET"), (":scheme", "http"), (":authority", "example.com"), (":path", path)]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            end,
        }
    }

    #[test]
    fn a_server_starts_with_settings_and_a_connection_window_update() {
        let s = server();
        let f = frames(s.write_buf());
        assert_eq!(f[0].0.kind, FrameType::Settings);
        let params: Vec<(u16, u32)> = f[0]
            .1
            .chunks(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
            .collect();
        assert_eq!(params, [(3, 100), (4, 65_535), (6, 32 * 1024)]);
        assert_eq!(f[1].0.kind, FrameType::WindowUpdate);
        assert_eq!(f[1].1, (1024 * 1024 - 65_535u32).to_be_bytes());
        let c = Conn::new(Role::Client, Config::DEFAULT);
        assert!(c.write_buf().starts_with(PREFACE));
        assert_eq!(frames(c.write_buf())[0].1[..6], [0, 2, 0, 0, 0, 0], "ENABLE_PUSH 0 first");
    }

    #[test]
    fn a_bad_preface_or_first_frame_ends_the_connection() {
        let mut s = server();
        let out_len = s.write_buf().len();
        assert_eq!(feed(&mut s, b"GET / HTTP/1.1\r\n\r\n"), [E::ConnError(Reason::Preface)]);
        assert_eq!(goaway_code(&s.write_buf()[out_len..]), Some(ErrorCode::PROTOCOL_ERROR));
        // A prefix of the preface waits for more.
        let mut s = server();
        assert_eq!(feed(&mut s, &PREFACE[..10]), []);
        let mut s = server();
        let mut input = PREFACE.to_vec();
        frame::write_ping(&mut input, false, [0; 8]);
        assert_eq!(feed(&mut s, &input), [E::ConnError(Reason::FirstFrameNotSettings)]);
        // Nothing is read after a connection error; the connection is finished once written.
        assert_eq!(s.recv(b"more", 0).consumed, 4);
        assert!(!s.is_finished());
        let n = s.write_buf().len();
        s.wrote(n);
        assert!(s.is_finished());
    }

    #[test]
    fn a_get_from_byte_literals() {
        // HEADERS, stream 1, END_STREAM|END_HEADERS: :method GET (static 2), :scheme http (6),
        // :path / (4), :authority "localhost" (literal without indexing, name index 1).
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        input.extend_from_slice(&[0, 0, 14, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x01, 0x09]);
        input.extend_from_slice(b"localhost");
        let (events, out) = feed_every_cut(server, &input);
        assert_eq!(
            events,
            [E::Head {
                stream: 1,
                fields: vec![
                    (":method".into(), "GET".into()),
                    (":scheme".into(), "http".into()),
                    (":path".into(), "/".into()),
                    (":authority".into(), "localhost".into()),
                ],
                end: true,
            }]
        );
        // Our SETTINGS and window, then the ACK of theirs.
        let f = frames(&out);
        assert_eq!((f[2].0.kind, f[2].0.flags), (FrameType::Settings, flags::ACK));
    }

    #[test]
    fn request_body_trailers_and_response_round_trip() {
        let mut p = Peer::client();
        p.headers(
            1,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/up"),
                ("content-length", "11"),
                ("te", "trailers"),
            ],
            false,
        )
        .data(1, b"hello ", false)
        .raw(&{
            // A padded DATA: pad length 3, "world", three zero bytes.
            let mut f = vec![0, 0, 9, 0, flags::PADDED, 0, 0, 0, 1, 3];
            f.extend_from_slice(b"world\0\0\0");
            f
        })
        .headers(1, &[("grpc-status", "0")], true)
        .get(3, "/next");
        let (events, _) = feed_every_cut(server, &p.bytes);
        let field = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            events,
            [
                E::Head {
                    stream: 1,
                    fields: vec![
                        field(":method", "POST"),
                        field(":scheme", "http"),
                        field(":authority", "a"),
                        field(":path", "/up"),
                        field("content-length", "11"),
                        field("te", "trailers"),
                    ],
                    end: false
                },
                E::Data { stream: 1, bytes: b"hello world".to_vec(), end: false },
                E::Trailers { stream: 1, fields: vec![field("grpc-status", "0")] },
                req(3, "/next", true),
            ]
        );
    }

    /// Moves everything each side has written to the other; returns the events of both.
    fn pump(client: &mut Conn, server: &mut Conn) -> (Vec<E>, Vec<E>) {
        let (mut ce, mut se) = (Vec::new(), Vec::new());
        loop {
            let to_server = client.write_buf().to_vec();
            client.wrote(to_server.len());
            se.extend(feed(server, &to_server));
            let to_client = server.write_buf().to_vec();
            server.wrote(to_client.len());
            ce.extend(feed(client, &to_client));
            if client.write_buf().is_empty() && server.write_buf().is_empty() {
                return (ce, se);
            }
        }
    }

    #[test]
    fn client_and_server_talk_grpc_style() {
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let mut s = server();
        let id = c
            .send_request(
                Request {
                    method: b"POST",
                    scheme: b"http",
                    authority: b"grpc.local",
                    path: b"/pkg.Svc/Call",
                },
                [
                    Field::new(b"content-type", b"application/grpc"),
                    Field::new(b"te", b"trailers"),
                    Field::new(b"Connection", b"keep-alive"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(id, StreamId(1));
        assert_eq!(c.send_data(id, b"\0\0\0\0\x02hi", true), Ok(7));
        let (_, se) = pump(&mut c, &mut s);
        assert_eq!(se.len(), 2, "{se:?}");
        match &se[0] {
            E::Head { stream: 1, fields, end: false } => {
                assert!(fields.contains(&("te".into(), "trailers".into())));
                assert!(
                    !fields.iter().any(|(n, _)| n == "connection"),
                    "connection-specific fields are not sent"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(se[1], E::Data { stream: 1, bytes: b"\0\0\0\0\x02hi".to_vec(), end: true });
        s.release(id, 7);
        s.send_response(id, 200, [Field::new(b"content-type", b"application/grpc")], false).unwrap();
        assert_eq!(s.send_data(id, b"\0\0\0\0\x02yo", false), Ok(7));
        s.send_trailers(id, [Field::new(b"grpc-status", b"0"), Field::new(b"grpc-message", b"")]).unwrap();
        assert_eq!(s.open_streams(), 0);
        let (ce, _) = pump(&mut c, &mut s);
        assert_eq!(ce.len(), 3, "{ce:?}");
        assert!(
            matches!(&ce[0], E::Head { stream: 1, end: false, fields } if fields[0] == (":status".into(), "200".into()))
        );
        assert_eq!(ce[1], E::Data { stream: 1, bytes: b"\0\0\0\0\x02yo".to_vec(), end: false });
        assert_eq!(
            ce[2],
            E::Trailers {
                stream: 1,
                fields: vec![("grpc-status".into(), "0".into()), ("grpc-message".into(), "".into())]
            }
        );
        assert_eq!(c.open_streams(), 0);
        // Graceful end: both finished once GOAWAY is exchanged and written.
        s.go_away();
        let (ce, _) = pump(&mut c, &mut s);
        assert_eq!(ce, [E::GoAway { last: 1, code: ErrorCode::NO_ERROR, debug: vec![] }]);
        assert!(s.is_finished() && c.is_finished());
        assert_eq!(
            c.send_request(Request { method: b"GET", scheme: b"http", authority: b"", path: b"/" }, [], true),
            Err(SendError::GoingAway)
        );
    }

    #[test]
    fn a_client_sees_informational_heads_then_the_final_one() {
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let head_req = c
            .send_request(
                Request { method: b"HEAD", scheme: b"https", authority: b"x", path: b"/" },
                [],
                true,
            )
            .unwrap();
        let mut p = Peer::server();
        p.headers(head_req.0, &[(":status", "100")], false).headers(
            head_req.0,
            &[(":status", "200"), ("content-length", "1234")],
            true,
        );
        let (events, _) = feed_every_cut(
            || {
                let mut c = Conn::new(Role::Client, Config::DEFAULT);
                c.send_request(
                    Request { method: b"HEAD", scheme: b"https", authority: b"x", path: b"/" },
                    [],
                    true,
                )
                .unwrap();
                c
            },
            &p.bytes,
        );
        assert!(matches!(&events[0], E::Head { stream: 1, end: false, fields } if fields[0].1 == "100"));
        assert!(
            matches!(&events[1], E::Head { stream: 1, end: true, fields } if fields[0].1 == "200"),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
        // A 1xx with END_STREAM is malformed; a server may not open streams; nor push.
        let mut c2 = Conn::new(Role::Client, Config::DEFAULT);
        c2.send_request(Request { method: b"GET", scheme: b"https", authority: b"x", path: b"/" }, [], true)
            .unwrap();
        let mut p = Peer::server();
        p.headers(1, &[(":status", "103")], true);
        assert_eq!(
            feed(&mut c2, &p.bytes),
            [E::StreamError { stream: 1, reason: StreamReason::InformationalEndStream }]
        );
        let mut p = Peer::server();
        p.headers(2, &[(":status", "200")], true);
        assert_eq!(feed(&mut c, &p.bytes), [E::ConnError(Reason::IdleStream)]);
        let mut c3 = Conn::new(Role::Client, Config::DEFAULT);
        let mut p = Peer::server();
        p.raw(&[0, 0, 5, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0x82]);
        assert_eq!(feed(&mut c3, &p.bytes), [E::ConnError(Reason::PushPromise)]);
    }

    fn raw_block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            b.push(0);
            hpack::encode_int(n.len(), 7, 0, &mut b);
            b.extend_from_slice(n);
            hpack::encode_int(v.len(), 7, 0, &mut b);
            b.extend_from_slice(v);
        }
        b
    }

    #[test]
    fn malformed_requests_are_stream_errors() {
        let base: [(&[u8], &[u8]); 4] =
            [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.com"), (b":path", b"/")];
        let with = |extra: &[(&'static [u8], &'static [u8])]| -> Vec<(&'static [u8], &'static [u8])> {
            let mut v: Vec<(&[u8], &[u8])> = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        type Case<'a> = (&'a str, Vec<(&'a [u8], &'a [u8])>, Option<StreamReason>);
        let cases: Vec<Case<'_>> = vec![
            ("fine", with(&[(b"accept", b"*/*")]), None),
            ("te trailers is fine", with(&[(b"te", b"trailers")]), None),
            ("uppercase name", with(&[(b"Accept", b"*/*")]), Some(StreamReason::UppercaseName)),
            ("space in name", with(&[(b"a b", b"1")]), Some(StreamReason::BadName)),
            ("connection", with(&[(b"connection", b"close")]), Some(StreamReason::ConnectionSpecific)),
            ("keep-alive", with(&[(b"keep-alive", b"5")]), Some(StreamReason::ConnectionSpecific)),
            (
                "proxy-connection",
                with(&[(b"proxy-connection", b"x")]),
                Some(StreamReason::ConnectionSpecific),
            ),
            (
                "transfer-encoding",
                with(&[(b"transfer-encoding", b"chunked")]),
                Some(StreamReason::ConnectionSpecific),
            ),
            ("upgrade", with(&[(b"upgrade", b"websocket")]), Some(StreamReason::ConnectionSpecific)),
            ("te gzip", with(&[(b"te", b"gzip")]), Some(StreamReason::BadTe)),
            ("value with CR", with(&[(b"x", b"a\rb")]), Some(StreamReason::BadValue)),
            ("value with leading space", with(&[(b"x", b" a")]), Some(StreamReason::BadValue)),
            (
                "pseudo after regular",
                with(&[(b"x", b"1"), (b":status", b"200")]),
                Some(StreamReason::PseudoAfterRegular),
            ),
            (
                "status in a request",
                vec![(b":status", b"200"), (b":method", b"GET")],
                Some(StreamReason::UnknownPseudo),
            ),
            ("unknown pseudo", with(&[(b":protocol", b"websocket")]), Some(StreamReason::UnknownPseudo)),
            (
                "duplicate method",
                vec![(b":method", b"GET"), (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")],
                Some(StreamReason::DuplicatePseudo),
            ),
            ("no path", vec![(b":method", b"GET"), (b":scheme", b"http")], Some(StreamReason::MissingPseudo)),
            ("no scheme", vec![(b":method", b"GET"), (b":path", b"/")], Some(StreamReason::MissingPseudo)),
            ("no method", vec![(b":scheme", b"http"), (b":path", b"/")], Some(StreamReason::MissingPseudo)),
            (
                "relative path",
                vec![(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"x")],
                Some(StreamReason::BadPath),
            ),
            (
                "empty path",
                vec![(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"")],
                Some(StreamReason::BadPath),
            ),
            (
                "asterisk with OPTIONS",
                vec![(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*")],
                None,
            ),
            (
                "asterisk with GET",
                vec![(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"*")],
                Some(StreamReason::BadPath),
            ),
            ("CONNECT", vec![(b":method", b"CONNECT"), (b":authority", b"a:443")], None),
            (
                "CONNECT with a path",
                vec![(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")],
                Some(StreamReason::UnknownPseudo),
            ),
            ("host differs", with(&[(b"host", b"b.com")]), Some(StreamReason::HostMismatch)),
            ("host agrees", with(&[(b"host", b"A.com")]), None),
            (
                "userinfo",
                vec![
                    (b":method", b"GET"),
                    (b":scheme", b"http"),
                    (b":authority", b"u@a.com"),
                    (b":path", b"/"),
                ],
                Some(StreamReason::BadAuthority),
            ),
            ("bad content-length", with(&[(b"content-length", b"1x")]), Some(StreamReason::BadContentLength)),
            (
                "two content-lengths",
                with(&[(b"content-length", b"1"), (b"content-length", b"2")]),
                Some(StreamReason::BadContentLength),
            ),
            (
                "content-length with no body",
                with(&[(b"content-length", b"3")]),
                Some(StreamReason::ContentLengthMismatch),
            ),
        ];
        for (what, fields, want) in cases {
            let mut input = PREFACE.to_vec();
            frame::write_settings(&mut input, &[]);
            frame::write_headers(&mut input, StreamId(1), &raw_block(&fields), true, true);
            let mut s = server();
            let before = s.write_buf().len();
            let events = feed(&mut s, &input);
            match want {
                None => assert!(matches!(events[..], [E::Head { stream: 1, .. }]), "{what}: {events:?}"),
                Some(reason) => {
                    assert_eq!(events, [E::StreamError { stream: 1, reason }], "{what}");
                    assert_eq!(
                        rst_codes(&s.write_buf()[before..]),
                        [(1, ErrorCode::PROTOCOL_ERROR)],
                        "{what}"
                    );
                    assert!(reason.is_malformed());
                    // The connection goes on.
                    let mut more = Vec::new();
                    frame::write_ping(&mut more, false, [7; 8]);
                    assert_eq!(feed(&mut s, &more), []);
                    assert!(s.error().is_none());
                }
            }
        }
    }

    #[test]
    fn content_length_is_checked_against_data() {
        let mut p = Peer::client();
        p.headers(
            1,
            &[(":method", "POST"), (":scheme", "http"), (":path", "/"), ("content-length", "3")],
            false,
        )
        .data(1, b"four", true);
        let (events, out) = feed_every_cut(server, &p.bytes);
        assert_eq!(events[1], E::StreamError { stream: 1, reason: StreamReason::ContentLengthMismatch });
        assert_eq!(rst_codes(&out), [(1, ErrorCode::PROTOCOL_ERROR)]);
        // Too few, ended by DATA, or by trailers.
        let mut p = Peer::client();
        p.headers(
            1,
            &[(":method", "POST"), (":scheme", "http"), (":path", "/"), ("content-length", "3")],
            false,
        )
        .data(1, b"ab", true);
        p.headers(
            3,
            &[(":method", "POST"), (":scheme", "http"), (":path", "/"), ("content-length", "3")],
            false,
        )
        .data(3, b"ab", false)
        .headers(3, &[("x", "y")], true);
        let events = feed(&mut server(), &p.bytes);
        assert_eq!(events[1], E::StreamError { stream: 1, reason: StreamReason::ContentLengthMismatch });
        assert_eq!(
            events[4],
            E::StreamError { stream: 3, reason: StreamReason::ContentLengthMismatch },
            "{events:?}"
        );
    }

    #[test]
    fn frames_on_idle_closed_and_half_closed_streams() {
        let mut p = Peer::client();
        p.data(1, b"x", false);
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::IdleStream)]);
        // An even stream from a client.
        let mut p = Peer::client();
        p.get(2, "/");
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::StreamId)]);
        // Stream ids grow: opening 5 closes 1 and 3 (§5.1.1); HEADERS on 3 then is on a closed
        // stream — ignored and counted (we cannot tell it from one we reset).
        let mut p = Peer::client();
        p.get(5, "/").get(3, "/");
        let mut s = server();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e, [req(5, "/", true)]);
        assert_eq!(s.stats().empty_frames, 1);
        // DATA after END_STREAM: STREAM_CLOSED on the stream.
        let mut p = Peer::client();
        p.get(1, "/").data(1, b"late", false);
        let mut s = server();
        let before = s.write_buf().len();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e[1], E::StreamError { stream: 1, reason: StreamReason::StreamClosed });
        assert_eq!(rst_codes(&s.write_buf()[before..]), [(1, ErrorCode::STREAM_CLOSED)]);
        // Frames on a stream closed both ways are ignored (and counted).
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        let mut s = server();
        feed(&mut s, &p.bytes);
        s.reset(StreamId(1), ErrorCode::CANCEL).unwrap();
        let mut p2 = Peer { enc: p.enc, bytes: Vec::new() };
        p2.data(1, b"in flight", false);
        frame::write_rst_stream(&mut p2.bytes, StreamId(1), ErrorCode::CANCEL);
        frame::write_window_update(&mut p2.bytes, StreamId(1), 10);
        assert_eq!(feed(&mut s, &p2.bytes), []);
        assert_eq!(s.stats().empty_frames, 2);
        assert!(s.error().is_none());
    }

    #[test]
    fn the_peer_cannot_send_more_than_our_windows() {
        // Stream window 65,535: a 65,536th byte on the stream is a stream error.
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        for _ in 0..4 {
            p.data(1, &[0; 16_384], false);
        }
        let mut s = server();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e.last(), Some(&E::StreamError { stream: 1, reason: StreamReason::FlowControl }));
        assert!(rst_codes(s.write_buf()).contains(&(1, ErrorCode::FLOW_CONTROL_ERROR)));
        // Released bytes come back as WINDOW_UPDATEs: then the same is fine.
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        for _ in 0..3 {
            p.data(1, &[0; 16_384], false);
        }
        let mut s = server();
        feed(&mut s, &p.bytes);
        let before = s.write_buf().len();
        s.release(StreamId(1), 3 * 16_384);
        let updates: Vec<_> = frames(&s.write_buf()[before..])
            .into_iter()
            .filter(|(h, _)| h.kind == FrameType::WindowUpdate)
            .map(|(h, p)| (h.stream.0, u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
            .collect();
        assert_eq!(updates, [(1, 3 * 16_384)]);
        let mut more = Vec::new();
        for _ in 0..3 {
            frame::write_data(&mut more, StreamId(1), &[0; 16_384], false);
        }
        assert!(feed(&mut s, &more).iter().all(|e| matches!(e, E::Data { .. })));
        // The connection window: 1 MiB over many streams, none released.
        let mut p = Peer::client();
        let mut s = server_with(|c| c.stream_window = MAX_WINDOW);
        for i in 0..17 {
            p.headers(2 * i + 1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
            for _ in 0..4 {
                p.data(2 * i + 1, &[0; 16_384], false);
            }
        }
        // (The peer saw our SETTINGS acknowledged: the stream windows are ours.)
        frame::write_settings_ack(&mut p.bytes[PREFACE.len() + 9..].to_vec());
        let mut input = p.bytes.clone();
        input.splice(PREFACE.len() + 9..PREFACE.len() + 9, [0, 0, 0, 4, 1, 0, 0, 0, 0]);
        let e = feed(&mut s, &input);
        assert_eq!(e.last(), Some(&E::ConnError(Reason::FlowControl)), "{:?}", &e[e.len() - 2..]);
        assert_eq!(goaway_code(s.write_buf()), Some(ErrorCode::FLOW_CONTROL_ERROR));
    }

    #[test]
    fn we_send_no_more_than_the_peer_allows() {
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let mut s = server_with(|c| c.write_buffer_bytes = 256 * 1024);
        let id = c
            .send_request(Request { method: b"GET", scheme: b"http", authority: b"a", path: b"/" }, [], true)
            .unwrap();
        pump(&mut c, &mut s);
        s.send_response(id, 200, [], false).unwrap();
        // The client's stream window is 65,535 (and the connection's too).
        assert_eq!(s.send_capacity(id), 65_535);
        assert_eq!(s.send_data(id, &[1; 100_000], true), Ok(65_535));
        assert_eq!(s.send_capacity(id), 0);
        assert_eq!(s.send_data(id, &[1; 10], true), Ok(0));
        let (ce, _) = pump(&mut c, &mut s);
        let got: usize = ce.iter().map(|e| if let E::Data { bytes, .. } = e { bytes.len() } else { 0 }).sum();
        assert_eq!(got, 65_535);
        // The client frees its buffer: the server may go on.
        c.release(id, 65_535);
        let (_, se) = pump(&mut c, &mut s);
        assert!(se.contains(&E::Window { stream: 1 }) || se.is_empty(), "{se:?}");
        assert!(s.send_capacity(id) > 0);
        let rest = 100_000 - 65_535;
        assert_eq!(s.send_data(id, &[1; 34_465], true), Ok(rest));
        let (ce, _) = pump(&mut c, &mut s);
        assert!(matches!(ce.last(), Some(E::Data { end: true, .. })));
        assert_eq!(s.open_streams(), 0);
        // A peer's WINDOW_UPDATE that overflows: connection, or stream.
        let mut s = server();
        let mut p = Peer::client();
        frame::write_window_update(&mut p.bytes, StreamId(0), MAX_WINDOW);
        assert_eq!(feed(&mut s, &p.bytes), [E::ConnError(Reason::WindowOverflow)]);
        let mut s = server();
        let mut p = Peer::client();
        p.get(1, "/");
        frame::write_window_update(&mut p.bytes, StreamId(1), MAX_WINDOW);
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e[1], E::StreamError { stream: 1, reason: StreamReason::WindowOverflow });
        // A SETTINGS_INITIAL_WINDOW_SIZE that makes an open stream's window overflow.
        let mut s = server();
        let mut p = Peer::client();
        p.get(1, "/");
        frame::write_window_update(&mut p.bytes, StreamId(1), MAX_WINDOW - 65_535);
        frame::write_settings(&mut p.bytes, &[(setting::INITIAL_WINDOW_SIZE, 65_536)]);
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e.last(), Some(&E::ConnError(Reason::BadWindowSetting)));
    }

    #[test]
    fn streams_over_the_limit_are_refused() {
        let mut p = Peer::client();
        for i in 0..3 {
            p.headers(2 * i + 1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        }
        let mut s = server_with(|c| c.max_concurrent_streams = 2);
        let before = s.write_buf().len();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e[2], E::StreamError { stream: 5, reason: StreamReason::Refused });
        assert_eq!(rst_codes(&s.write_buf()[before..]), [(5, ErrorCode::REFUSED_STREAM)]);
        assert_eq!(s.stats().streams_refused, 1);
        assert_eq!(s.open_streams(), 2);
    }

    #[test]
    fn rapid_reset_ends_the_connection() {
        let flood = |n: u32, step_ns: u64| {
            let mut p = Peer::client();
            let mut s = server();
            let mut all = feed(&mut s, &p.bytes);
            for i in 0..n {
                p.bytes.clear();
                p.headers(2 * i + 1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
                frame::write_rst_stream(&mut p.bytes, StreamId(2 * i + 1), ErrorCode::CANCEL);
                all.extend(feed_cut(&mut s, &p.bytes, &[], u64::from(i) * step_ns));
                let n = s.write_buf().len();
                s.wrote(n);
            }
            (s, all)
        };
        let (s, events) = flood(201, 0);
        assert_eq!(events.last(), Some(&E::ConnError(Reason::RapidReset)));
        assert_eq!(s.stats().peer_resets, 201);
        assert_eq!(s.error(), Some(Reason::RapidReset));
        // Under the rate (200 per 10 s): fine.
        let (s, _) = flood(400, 60_000_000);
        assert_eq!(s.error(), None);
        // Resets we make the peer cause count too ("MadeYouReset"): malformed heads.
        let mut p = Peer::client();
        for i in 0..201 {
            p.headers(
                2 * i + 1,
                &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("connection", "x")],
                true,
            );
        }
        let mut s = server_with(|c| c.max_pending_answers = 1000);
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e.last(), Some(&E::ConnError(Reason::RapidReset)));
        assert_eq!(goaway_code(s.write_buf()), Some(ErrorCode::ENHANCE_YOUR_CALM));
    }

    #[test]
    fn continuation_floods_end_the_connection() {
        let headers_then = |conts: usize, each: &[u8]| {
            let mut p = Peer::client();
            let b = p.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]);
            frame::write_headers(&mut p.bytes, StreamId(1), &b, true, false);
            for i in 0..conts {
                frame::write_continuation(&mut p.bytes, StreamId(1), each, i + 1 == conts);
            }
            let mut s = server();
            (feed(&mut s, &p.bytes), s)
        };
        // 8 CONTINUATIONs (each one field "x: y") are fine; 9 are not.
        let xy = raw_block(&[(b"x", b"y")]);
        let (e, _) = headers_then(8, &xy);
        assert!(matches!(e[..], [E::Head { .. }]), "{e:?}");
        let (e, s) = headers_then(9, &xy);
        assert_eq!(e, [E::ConnError(Reason::ContinuationFlood)]);
        assert_eq!(goaway_code(s.write_buf()), Some(ErrorCode::ENHANCE_YOUR_CALM));
        // A block over 32 KiB, in few frames.
        let big = raw_block(&[(b"x-big", &[b'a'; 12_000])]);
        let (e, _) = headers_then(3, &big);
        assert_eq!(e, [E::ConnError(Reason::HeaderBlockTooLarge)]);
        // Another frame inside a block, or a CONTINUATION out of nowhere.
        let mut p = Peer::client();
        let b = p.block(&[(":method", "GET")]);
        frame::write_headers(&mut p.bytes, StreamId(1), &b, false, false);
        frame::write_ping(&mut p.bytes, false, [0; 8]);
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::ExpectedContinuation)]);
        let mut p = Peer::client();
        frame::write_continuation(&mut p.bytes, StreamId(1), &[0x82], true);
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::UnexpectedContinuation)]);
    }

    #[test]
    fn settings_ping_and_empty_frame_floods() {
        let mut p = Peer::client();
        for _ in 0..33 {
            frame::write_settings(&mut p.bytes, &[]);
        }
        let mut s = server();
        assert_eq!(feed(&mut s, &p.bytes), [E::ConnError(Reason::SettingsFlood)]);
        assert_eq!(goaway_code(s.write_buf()), Some(ErrorCode::ENHANCE_YOUR_CALM));
        let mut p = Peer::client();
        for _ in 0..1001 {
            frame::write_ping(&mut p.bytes, false, [1; 8]);
        }
        let mut s = server_with(|c| c.max_pending_answers = 10_000);
        assert_eq!(feed(&mut s, &p.bytes), [E::ConnError(Reason::PingFlood)]);
        // The same pings over time, answered and written out: fine.
        let mut s = server();
        feed(&mut s, &Peer::client().bytes);
        for i in 0..3000u64 {
            let mut b = Vec::new();
            frame::write_ping(&mut b, false, [1; 8]);
            assert_eq!(feed_cut(&mut s, &b, &[], i * 20_000_000), []);
            let n = s.write_buf().len();
            s.wrote(n);
        }
        assert!(s.error().is_none());
        // Answers not written out: a peer that does not read.
        let mut p = Peer::client();
        for _ in 0..128 {
            frame::write_ping(&mut p.bytes, false, [1; 8]);
        }
        let mut s = server();
        assert_eq!(
            feed(&mut s, &p.bytes),
            [E::ConnError(Reason::AnswerBacklog)],
            "the SETTINGS ACK and 128 PING ACKs"
        );
        // Empty DATA frames.
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        for _ in 0..1001 {
            p.data(1, &[], false);
        }
        let mut s = server();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e.last(), Some(&E::ConnError(Reason::EmptyFrameFlood)));
        assert_eq!(s.stats().empty_frames, 1001);
        // PRIORITY and unknown frames count as empty too.
        let mut p = Peer::client();
        for i in 0..1001u32 {
            if i % 2 == 0 {
                frame::write_priority(
                    &mut p.bytes,
                    StreamId(2 * i + 1),
                    frame::Priority { exclusive: false, dependency: StreamId(0), weight: 1 },
                );
            } else {
                p.raw(&[0, 0, 1, 0xee, 0, 0, 0, 0, 0, 9]);
            }
        }
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::EmptyFrameFlood)]);
    }

    #[test]
    fn a_header_list_over_the_limit_gets_431() {
        // An HPACK bomb: one 4,000-byte entry named 20 times.
        let mut block = raw_block(&[]);
        block.push(0x40);
        hpack::encode_int(5, 7, 0, &mut block);
        block.extend_from_slice(b"x-big");
        hpack::encode_int(4000, 7, 0, &mut block);
        block.extend_from_slice(&[b'v'; 4000]);
        block.extend(std::iter::repeat_n(0xbe, 20));
        let mut fields = vec![0x82, 0x86, 0x84];
        fields.extend_from_slice(&block);
        let mut input = Peer::client().bytes;
        frame::write_headers(&mut input, StreamId(1), &fields, false, true);
        let mut s = server();
        let before = s.write_buf().len();
        let e = feed(&mut s, &input);
        assert_eq!(e, [E::StreamError { stream: 1, reason: StreamReason::HeaderListTooLarge }]);
        let out = frames(&s.write_buf()[before..]);
        // (After the ACK of the client's SETTINGS.)
        assert_eq!((out[1].0.kind, out[1].0.stream), (FrameType::Headers, StreamId(1)));
        assert!(out[1].0.has(flags::END_STREAM));
        let mut status = HeaderList::new(1024);
        Decoder::new(4096).decode(&out[1].1, &mut status).unwrap();
        assert_eq!(status.field(0), Field::new(b":status", b"431"));
        assert_eq!(rst_codes(&s.write_buf()[before..]), [(1, ErrorCode::NO_ERROR)]);
        assert_eq!(s.stats().header_lists_too_large, 1);
        // The decoder kept the table: the next request can use the entry.
        let mut next = Vec::new();
        frame::write_headers(&mut next, StreamId(3), &[0x82, 0x86, 0x84, 0xbe], true, true);
        let e = feed(&mut s, &next);
        assert!(matches!(&e[..], [E::Head { stream: 3, fields, .. }] if fields[3].0 == "x-big"), "{e:?}");
        // The 431 is a real response: a client reads it.
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let big = vec![b'a'; 40_000];
        let mut srv = server_with(|c| c.max_header_block_bytes = 64 * 1024);
        let id = c
            .send_request(
                Request { method: b"GET", scheme: b"http", authority: b"a", path: b"/" },
                [Field::new(b"x-big", &big)],
                true,
            )
            .unwrap();
        let (ce, se) = pump(&mut c, &mut srv);
        assert_eq!(se, [E::StreamError { stream: id.0, reason: StreamReason::HeaderListTooLarge }]);
        assert!(matches!(&ce[0], E::Head { end: true, fields, .. } if fields[0].1 == "431"), "{ce:?}");
    }

    #[test]
    fn self_dependencies() {
        // HEADERS on stream 1 depending on itself: a stream error, after the block is decoded
        // (its literal goes into the table, and the next request refers to it).
        let mut p = Peer::client();
        let block = p.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("x-kept", "1")]);
        let mut payload = vec![0, 0, 0, 1, 16];
        payload.extend_from_slice(&block);
        frame::FrameHeader {
            len: payload.len() as u32,
            kind: FrameType::Headers,
            flags: flags::END_HEADERS | flags::END_STREAM | flags::PRIORITY,
            stream: StreamId(1),
        }
        .write(&mut p.bytes);
        p.raw(&payload);
        p.headers(3, &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("x-kept", "1")], true);
        let mut s = server();
        let before = s.write_buf().len();
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e[0], E::StreamError { stream: 1, reason: StreamReason::SelfDependency });
        assert!(
            matches!(&e[1], E::Head { stream: 3, fields, .. } if fields[3] == ("x-kept".into(), "1".into())),
            "{e:?}"
        );
        assert_eq!(rst_codes(&s.write_buf()[before..]), [(1, ErrorCode::PROTOCOL_ERROR)]);
        // PRIORITY on an idle stream depending on itself: no RST_STREAM for an idle stream.
        let mut p = Peer::client();
        frame::write_priority(
            &mut p.bytes,
            StreamId(7),
            frame::Priority { exclusive: false, dependency: StreamId(7), weight: 1 },
        );
        assert_eq!(feed(&mut server(), &p.bytes), [E::ConnError(Reason::SelfDependency)]);
    }

    #[test]
    fn a_reset_stream_gets_no_more_data() {
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false)
            .data(1, &[5; 1000], false);
        let mut s = server();
        let input = p.bytes.clone();
        let cut = input.len() - 600;
        let e = feed(&mut s, &input[..cut]);
        assert_eq!(e.len(), 2, "{e:?}");
        s.reset(StreamId(1), ErrorCode::CANCEL).unwrap();
        assert_eq!(feed(&mut s, &input[cut..]), []);
        assert_eq!(rst_codes(s.write_buf()), [(1, ErrorCode::CANCEL)]);
    }

    #[test]
    fn frames_longer_than_our_limit_end_the_connection() {
        let mut p = Peer::client();
        p.get(1, "/");
        p.data(1, &[0; 16_385], false);
        let e = feed(&mut server(), &p.bytes);
        assert_eq!(e.last(), Some(&E::ConnError(Reason::FrameTooLarge)));
        let mut s = server_with(|c| c.max_frame_size = 32_768);
        let mut p = Peer::client();
        p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false).data(
            1,
            &[0; 16_385],
            false,
        );
        let e = feed(&mut s, &p.bytes);
        assert_eq!(e[1], E::Data { stream: 1, bytes: vec![0; 16_385], end: false });
    }

    #[test]
    fn ping_settings_and_goaway_from_the_peer() {
        let mut p = Peer::client();
        frame::write_ping(&mut p.bytes, false, *b"abcdefgh");
        frame::write_settings(
            &mut p.bytes,
            &[
                (setting::MAX_FRAME_SIZE, 1 << 20),
                (setting::HEADER_TABLE_SIZE, 0),
                (setting::INITIAL_WINDOW_SIZE, 1 << 20),
            ],
        );
        frame::write_goaway(&mut p.bytes, StreamId(0), ErrorCode::NO_ERROR, b"bye");
        let (events, out) = feed_every_cut(server, &p.bytes);
        assert_eq!(events, [E::GoAway { last: 0, code: ErrorCode::NO_ERROR, debug: b"bye".to_vec() }]);
        let f = frames(&out);
        assert!(
            f.iter().any(|(h, p)| h.kind == FrameType::Ping && h.flags == flags::ACK && p == b"abcdefgh")
        );
        assert_eq!(
            f.iter().filter(|(h, _)| h.kind == FrameType::Settings && h.flags == flags::ACK).count(),
            2
        );
        let mut s = server();
        feed(&mut s, &p.bytes);
        assert_eq!(s.peer_settings().max_frame_size, 1 << 20);
        assert_eq!(s.peer_settings().initial_window_size, 1 << 20);
        assert!(s.is_finished() || !s.write_buf().is_empty());
        // Our ping's answer.
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let mut srv = server();
        c.ping(*b"12345678").unwrap();
        let (ce, _) = pump(&mut c, &mut srv);
        assert_eq!(ce, [E::Pong(*b"12345678")]);
    }

    #[test]
    fn a_client_forgets_streams_the_server_did_not_process() {
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let r = Request { method: b"GET", scheme: b"http", authority: b"a", path: b"/" };
        for _ in 0..3 {
            c.send_request(r, [], true).unwrap();
        }
        let mut p = Peer::server();
        frame::write_goaway(&mut p.bytes, StreamId(1), ErrorCode::NO_ERROR, b"");
        assert_eq!(feed(&mut c, &p.bytes), [E::GoAway { last: 1, code: ErrorCode::NO_ERROR, debug: vec![] }]);
        assert_eq!(c.open_streams(), 1);
        assert_eq!(c.send_request(r, [], true), Err(SendError::GoingAway));
        // The peer's stream limit.
        let mut c = Conn::new(Role::Client, Config::DEFAULT);
        let mut p = Peer::server();
        frame::write_settings(&mut p.bytes, &[(setting::MAX_CONCURRENT_STREAMS, 1)]);
        feed(&mut c, &p.bytes);
        c.send_request(r, [], true).unwrap();
        assert_eq!(c.send_request(r, [], true), Err(SendError::StreamLimit));
    }

    #[test]
    fn sending_checks_order_and_room() {
        let mut s = server_with(|c| c.write_buffer_bytes = 1024);
        let mut p = Peer::client();
        p.get(1, "/").headers(3, &[(":method", "POST"), (":scheme", "http"), (":path", "/")], false);
        feed(&mut s, &p.bytes);
        assert_eq!(s.send_data(StreamId(1), b"x", true), Err(SendError::OutOfOrder));
        assert_eq!(s.send_trailers(StreamId(1), []), Err(SendError::OutOfOrder));
        assert_eq!(s.send_response(StreamId(9), 200, [], true), Err(SendError::UnknownStream));
        assert_eq!(
            s.send_request(Request { method: b"GET", scheme: b"http", authority: b"", path: b"/" }, [], true),
            Err(SendError::WrongRole)
        );
        let huge = vec![b'a'; 2000];
        assert_eq!(
            s.send_response(StreamId(1), 200, [Field::new(b"x", &huge)], true),
            Err(SendError::HeadTooLarge)
        );
        s.send_response(StreamId(1), 100, [], false).unwrap();
        s.send_response(StreamId(1), 200, [], false).unwrap();
        assert_eq!(s.send_response(StreamId(1), 200, [], false), Err(SendError::OutOfOrder));
        // The output buffer fills: the rest waits until it is written.
        let n = s.send_data(StreamId(1), &[0; 5000], true).unwrap();
        assert!(n < 1024, "{n}");
        assert_eq!(
            s.send_response(StreamId(3), 200, [Field::new(b"x", &[b'a'; 500])], false),
            Err(SendError::Blocked)
        );
        let len = s.write_buf().len();
        s.wrote(len);
        s.send_response(StreamId(3), 200, [Field::new(b"x", &[b'a'; 500])], false).unwrap();
        assert_eq!(s.send_data(StreamId(1), &[0; 5000][n..], true).map(|m| m > 0), Ok(true));
    }

    #[test]
    fn a_long_head_goes_out_in_continuations() {
        let big =
            Config { max_header_list_bytes: 64 * 1024, max_header_block_bytes: 64 * 1024, ..Config::DEFAULT };
        let mut c = Conn::new(Role::Client, big);
        let mut s = server_with(|c| c.write_buffer_bytes = 128 * 1024);
        let id = c
            .send_request(Request { method: b"GET", scheme: b"http", authority: b"a", path: b"/" }, [], true)
            .unwrap();
        pump(&mut c, &mut s);
        let v = vec![b'z'; 20_000];
        s.send_response(id, 200, [Field::new(b"x-a", &v), Field::new(b"x-b", &v)], true).unwrap();
        let f = frames(s.write_buf());
        assert_eq!(
            f.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(),
            [FrameType::Headers, FrameType::Continuation, FrameType::Continuation]
        );
        let out = s.write_buf().to_vec();
        let e = feed(&mut c, &out);
        assert!(matches!(&e[..], [E::Head { end: true, fields, .. }] if fields.len() == 3), "{e:?}");
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        /// A frame header of any type and flags on a small stream, with a short payload.
        fn any_frame() -> impl Strategy<Value = Vec<u8>> {
            (0u8..12, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
                |(kind, flags, stream, payload)| {
                    let mut f = Vec::new();
                    FrameHeader {
                        len: payload.len() as u32,
                        kind: FrameType::from_u8(kind),
                        flags,
                        stream: StreamId(stream),
                    }
                    .write(&mut f);
                    f.extend_from_slice(&payload);
                    f
                },
            )
        }

        proptest! {
            #[test]
            fn any_frames_never_panic_either_role(frames in proptest::collection::vec(any_frame(), 0..30), role in any::<bool>()) {
                let (mut conn, mut input) = if role {
                    (server(), Peer::client().bytes)
                } else {
                    let mut c = Conn::new(Role::Client, Config::DEFAULT);
                    c.send_request(Request { method: b"POST", scheme: b"http", authority: b"a", path: b"/" }, [], false).unwrap();
                    (c, Peer::server().bytes)
                };
                for f in &frames {
                    input.extend_from_slice(f);
                }
                let events = feed(&mut conn, &input);
                // After a connection error, nothing more: one error at most, last.
                let errors = events.iter().filter(|e| matches!(e, E::ConnError(_))).count();
                prop_assert!(errors <= 1);
                if errors == 1 {
                    prop_assert!(matches!(events.last(), Some(E::ConnError(_))));
                    prop_assert!(goaway_code(conn.write_buf()).is_some());
                }
                // Whatever came, the output is whole frames.
                frames_of(conn.write_buf());
            }

            #[test]
            fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut input = Peer::client().bytes;
                input.extend_from_slice(&bytes);
                let mut conn = server();
                feed(&mut conn, &input);
                frames_of(conn.write_buf());
            }

            #[test]
            fn any_cut_gives_the_same_events(cuts in proptest::collection::vec(1usize..64, 0..40)) {
                let mut p = Peer::client();
                p.headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/a")], false)
                    .data(1, &[7; 100], false)
                    .get(3, "/b")
                    .data(1, b"tail", false)
                    .headers(1, &[("trailer-x", "1")], true);
                frame::write_ping(&mut p.bytes, false, [3; 8]);
                let mut whole = server();
                let want = feed(&mut whole, &p.bytes);
                let mut cut = server();
                prop_assert_eq!(feed_cut(&mut cut, &p.bytes, &cuts, 0), want);
                prop_assert_eq!(cut.write_buf(), whole.write_buf());
            }
        }
    }
}
