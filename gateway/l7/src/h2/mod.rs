//! HTTP/2 (RFC 9113) with HPACK (RFC 7541), sans-IO: bytes in, typed events and bytes out, for
//! the proxy's client side (browsers, gRPC clients) and its upstream side (h2c/h2 servers,
//! gRPC backends).
//!
//! - [`frame`]: the 9-byte header and every frame type (§4, §6), parsed from slices with §6's
//!   checks, each failure a connection error or a stream error with its [`Reason`] or
//!   [`StreamReason`] (and so its [`ErrorCode`]); writers into a caller's `Vec<u8>`.
//! - [`hpack`]: the decoder (static and dynamic tables, size updates bounded by our
//!   SETTINGS_HEADER_TABLE_SIZE, integers, raw and Huffman strings, never-indexed literals) and
//!   the encoder (indexing, Huffman when shorter); the decoded header list's size is bounded
//!   while decoding (HPACK bombs).
//! - [`conn`]: one connection, either [`Role`], as a state machine ([`Conn`]).
//!
//! # Driving a connection
//! ```text
//! let mut conn = Conn::new(Role::Server, Config::DEFAULT);  // SETTINGS queued
//! loop {
//!     write conn.write_buf() to the socket; conn.wrote(n);
//!     read into `input` (after the bytes not consumed last time);
//!     loop {
//!         let r = conn.recv(&input[off..], now_ns);        // at most one event
//!         handle r.event (Head, Data { range of input }, Trailers, Reset, ...);
//!         off += r.consumed; stop when nothing consumed and no event;
//!     }
//!     conn.send_response / send_data (≤ send_capacity) / send_trailers / reset / go_away;
//!     conn.release(stream, n) as body bytes leave the application's buffer;
//!     close the socket once conn.is_finished().
//! }
//! ```
//! The input buffer must hold a whole frame (`Config::max_frame_size` + 9 bytes): frames other
//! than DATA are parsed only once complete and consumed whole. DATA is handed on as it arrives,
//! as ranges of the input (no copy), so a body of any size streams through.
//!
//! # What a connection enforces
//! - Preface (§3.4): a server checks the client's 24 bytes, then that its first frame is
//!   SETTINGS; a client sends the preface and expects SETTINGS first.
//! - Frames (§4.2, §6): length against our SETTINGS_MAX_FRAME_SIZE, stream 0 or not, padding,
//!   sizes of fixed frames, SETTINGS ranges; unknown frame types ignored (counted).
//! - Header blocks (§4.3, §6.10): HEADERS then CONTINUATIONs on the same stream, nothing in
//!   between; decoded even when the stream is refused or closed, so the HPACK table stays in
//!   step; a decoding failure is COMPRESSION_ERROR.
//! - Streams (§5.1): identifiers of the right parity, increasing; frames on idle streams are
//!   PROTOCOL_ERROR; DATA or HEADERS after the peer's END_STREAM are STREAM_CLOSED; the
//!   peer's streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM).
//! - Messages (§8.1-§8.3): request pseudo-header fields (`:method`, `:scheme`, `:path`,
//!   `:authority`; CONNECT with `:authority` only), response `:status` (three digits, not
//!   101), pseudo-header fields first, once, none in trailers; lowercase token names; values
//!   without NUL, CR, LF or surrounding whitespace; no Connection, Keep-Alive,
//!   Proxy-Connection, Transfer-Encoding or Upgrade; TE only `trailers`; Host equal to
//!   `:authority`, neither with userinfo or whitespace; Content-Length a number, equal to the DATA received (not for responses to
//!   HEAD, 204 and 304); trailers end the stream; a 1xx does not. Each failure is a stream
//!   error (PROTOCOL_ERROR) with its [`StreamReason`]. Sending drops the connection-specific
//!   fields (so HTTP/1.1 heads can be passed as they are) and lowercases names.
//! - Flow control (§5.2, §6.9): the peer may send what our windows allow and no more
//!   (FLOW_CONTROL_ERROR, for the stream or the connection); windows are what the application
//!   has room for: [`Config::stream_window`] and [`Config::connection_window`], given back
//!   with [`Conn::release`] as the application frees room, in WINDOW_UPDATEs of at least half
//!   a window; padding is given back at once. We send what the peer's windows allow
//!   ([`Conn::send_capacity`]); its SETTINGS_INITIAL_WINDOW_SIZE changes move open streams'
//!   windows; an overflow is FLOW_CONTROL_ERROR.
//! - Floods (INGRESS.md §4), each ending the connection with GOAWAY ENHANCE_YOUR_CALM and its
//!   reason: rapid reset ([`Reason::RapidReset`]: streams reset by the peer before we finished
//!   them, and streams we reset because of the peer — "MadeYouReset" — per time window);
//!   CONTINUATION floods ([`Reason::ContinuationFlood`]: CONTINUATIONs per block;
//!   [`Reason::HeaderBlockTooLarge`]: bytes per block); SETTINGS and PING floods (per time
//!   window, and [`Reason::AnswerBacklog`]: acknowledgements piling up unwritten); empty
//!   frames ([`Reason::EmptyFrameFlood`]). HPACK bombs stop at the header list limit: a
//!   request over it is answered 431 and reset (NO_ERROR); a response or trailers over it
//!   reset.
//! - Graceful shutdown (§6.8): [`Conn::go_away`] sends GOAWAY NO_ERROR with the last stream
//!   the peer opened, ignores the streams it opens after, and the connection is finished when
//!   the open ones are. A peer's GOAWAY is reported; our streams above its last stream are
//!   forgotten (they were not processed: safe to retry).
//!
//! The defaults of every limit are on [`Config`]'s fields. Time (`now_ns`) is only used by
//! the flood windows; there is no timer inside: idle and SETTINGS-acknowledgement timeouts are
//! the driver's.
//!
//! # For the proxy
//! A request head gives method, scheme, authority (`:authority` else Host), path and fields
//! ([`Head`]); translating it to HTTP/1.1 means a request line from `:method` and `:path`, Host
//! from the authority, the `cookie` fields joined with `; ` (§8.2.3), and chunked framing when
//! there is no Content-Length. Trailers come as [`Event::Trailers`] and go out with
//! [`Conn::send_trailers`], so gRPC's `grpc-status` crosses end to end. Every connection
//! error and stream error carries a reason with a stable `name()` for counters.
//!
//! # Known limits
//! - No server push (we send SETTINGS_ENABLE_PUSH 0 as a client; PUSH_PROMISE is always a
//!   connection error), no extended CONNECT (RFC 8441: `:protocol` is refused), no priority
//!   scheduling (PRIORITY and HEADERS priority fields are parsed and ignored, RFC 9113 §5.3).
//! - Frames on a stream that is closed, after we reset it or after it finished, are ignored
//!   (counted as empty frames) rather than answered STREAM_CLOSED: without remembering every
//!   closed stream the two cannot be told apart, and RFC 9113 §5.1 requires ignoring the
//!   former. HEADERS on a lower, never-used identifier is therefore ignored too, not a
//!   connection error.
//! - Streams above our GOAWAY's last stream are ignored, not refused with RST_STREAM.
//! - The stream table is searched linearly (at most [`Config::max_concurrent_streams`]
//!   entries).
//! - A received header block is held whole (up to [`Config::max_header_block_bytes`]) before it
//!   is decoded; a head we send must fit the output buffer whole.
//! - No SETTINGS acknowledgement timeout (SETTINGS_TIMEOUT is never sent).
//! - `:authority` is checked for userinfo and whitespace only, not against the `host[:port]`
//!   grammar: routing normalises it like an HTTP/1.1 Host.
//! - A PRIORITY frame or HEADERS priority that makes a stream depend on itself is refused
//!   (§5.3.1); other priority fields are not looked at.
//!
//! # Allocation
//! A [`Conn`] allocates its HPACK tables' rings when it is made and takes its output buffer
//! (write buffer, a control reserve and room for the pending answers) from the thread's free
//! list; [`Conn::shed`] gives the output buffer back while it is empty (an idle connection holds
//! about 8 KiB). The stream table, the header block buffer, the decoded header list and the
//! encoding scratch grow as they are used, to the most the connection has needed (the limits
//! bound them). Once they have, receiving and sending allocate nothing (`tests/h2_no_alloc.rs`
//! counts), except: the output buffer grows if control frames pile up past their reserve before
//! the answer backlog limit ends the connection. Hot path: yes. No `unsafe`.

pub mod conn;
mod error;
pub mod frame;
pub mod hpack;
mod huffman;

pub use conn::{Config, Conn, Event, Head, PeerSettings, Rate, Recv, Request, Role, SendError, Stats};
pub use error::{ErrorCode, Reason, StreamReason};
pub use frame::StreamId;
pub use huffman::HuffmanError;
