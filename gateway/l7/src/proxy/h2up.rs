//! HTTP/2 upstream connections (`backend-protocol: GRPC` and `H2C`: HTTP/2 in clear, prior
//! knowledge; `GRPCS`: HTTP/2 over TLS, ALPN `h2`, the TLS being the driver's), sans-IO: an [`H2Upstream`] sits between the core's HTTP/1.1 upstream bytes and
//! the upstream socket, so that the exchange — routing, retries, timeouts, trailers, metrics —
//! is the core's own, unchanged.
//!
//! - Requests: the HTTP/1.1 request the core writes ([`super::Conn::upstream_write_buf`]) is
//!   parsed and sent as a stream: `:method` and `:path` from the request line, `:authority`
//!   from Host, `:scheme` `http` (`https` over TLS, [`H2Upstream::over_tls`]); the fields as they are (the h2 module drops the
//!   connection-specific ones); the body (Content-Length or chunked, decoded) as DATA within
//!   the server's windows; a chunked body's trailer section as trailers, else END_STREAM on
//!   the last DATA.
//! - Responses: HEADERS become an HTTP/1.1 head (`Transfer-Encoding: chunked` unless the
//!   stream ended with it: then `Content-Length: 0` where there was none), DATA becomes
//!   chunks, trailers the chunked body's trailer section — which the core relays to clients
//!   that take trailers (HTTP/2 clients do), so gRPC's `grpc-status` crosses end to end. A
//!   trailers-only response (HEADERS with END_STREAM) keeps its fields in the head.
//! - A stream reset by the server, a GOAWAY that excludes it, or a connection error fails the
//!   exchange ([`H2Upstream::failed`]: the driver reports an I/O error to the core, which
//!   retries or answers 502 as for HTTP/1.1). After a complete exchange the connection is
//!   [`H2Upstream::reusable`] and goes back to the keep-alive pool with its HTTP/2 state: the
//!   next request is the next stream on it.
//!
//! # Known limits
//! - One stream at a time per upstream connection (an exchange holds its connection, as with
//!   HTTP/1.1): concurrency upstream comes from several pooled connections, not multiplexing.
//! - Flow control toward the server is TCP's: DATA is acknowledged as it is converted, and
//!   the converted bytes wait in a bounded buffer; the socket is not read while it is full.
//!
//! # Allocation
//! Per upstream connection: the [`h2::Conn`] (see its module) and two buffers. Per exchange:
//! nothing, except the trailer section gathered from a chunked request body (a vector that
//! grows to the largest seen).

use std::fmt::Write as _;

use super::buf::{Buf, Out};
use crate::h1::{BodyDecoder, Framing, MAX_FIELDS};
use crate::h2::hpack::Field;
use crate::h2::{self, Event, Request, Role, SendError, StreamId};

/// The converted response's buffer.
const OUT_BYTES: usize = 96 * 1024;

/// Room kept in it before a frame is read: a whole head (the header list limit) or DATA frame,
/// with its framing.
const OUT_ROOM: usize = 48 * 1024;

/// Where the request being sent is.
#[derive(Debug)]
enum Req {
    /// No exchange.
    Idle,
    /// The body, decoded from the core's framing.
    Body(BodyDecoder),
    /// All sent.
    Done,
}

/// One HTTP/2 upstream connection's state, kept with the socket (and in the pool).
#[derive(Debug)]
pub struct H2Upstream {
    h2: h2::Conn,
    input: Buf,
    out: Buf,
    stream: Option<StreamId>,
    req: Req,
    req_chunked: bool,
    req_trailers: Vec<u8>,
    /// The response ended (END_STREAM).
    resp_done: bool,
    failed: bool,
    /// `:scheme` of the requests (RFC 9113 §8.3.1: the scheme of the target URI, `https` when
    /// the connection is TLS).
    scheme: &'static [u8],
}

impl Default for H2Upstream {
    fn default() -> H2Upstream {
        H2Upstream::new()
    }
}

impl H2Upstream {
    /// A new connection's state, in clear: the preface and SETTINGS queued.
    pub fn new() -> H2Upstream {
        let config = h2::Config { max_concurrent_streams: 1, ..h2::Config::DEFAULT };
        let h2 = h2::Conn::new(Role::Client, config);
        let frame = h2.config().max_frame_size as usize + 9;
        H2Upstream {
            h2,
            input: Buf::new(frame + 16 * 1024),
            out: Buf::new(OUT_BYTES),
            stream: None,
            req: Req::Idle,
            req_chunked: false,
            req_trailers: Vec::new(),
            resp_done: false,
            failed: false,
            scheme: b"http",
        }
    }

    /// A new connection's state for a connection over TLS (`GRPCS`): requests say
    /// `:scheme: https`.
    pub fn over_tls() -> H2Upstream {
        H2Upstream { scheme: b"https", ..H2Upstream::new() }
    }

    /// The exchange failed (stream reset, GOAWAY, connection error, a request it could not
    /// send): tell the core once [`H2Upstream::response`] is drained.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the connection can carry another exchange (pool it).
    pub fn reusable(&self) -> bool {
        !self.failed
            && self.stream.is_none()
            && self.h2.error().is_none()
            && !self.h2.is_finished()
            && self.out.is_empty()
            && matches!(self.req, Req::Idle)
    }

    /// Bytes to write to the socket.
    pub fn write_buf(&self) -> &[u8] {
        self.h2.write_buf()
    }

    /// `n` bytes of [`H2Upstream::write_buf`] were written.
    pub fn wrote(&mut self, n: usize) {
        self.h2.wrote(n);
    }

    /// Where to read socket bytes to (empty while the converted response waits for room).
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.failed || self.h2.error().is_some() {
            return &mut [];
        }
        self.input.space()
    }

    /// `n` bytes were read into [`H2Upstream::read_buf`].
    pub fn read(&mut self, n: usize, now_ns: u64) {
        self.input.filled(n);
        self.receive(now_ns);
    }

    /// The response converted to HTTP/1.1, for the core's upstream input.
    pub fn response(&self) -> &[u8] {
        self.out.bytes()
    }

    /// `n` bytes of [`H2Upstream::response`] were taken by the core.
    pub fn took(&mut self, n: usize, now_ns: u64) {
        self.out.consume(n);
        if self.stream.is_none() && self.resp_done && self.out.is_empty() && matches!(self.req, Req::Done) {
            // The exchange is over: the connection may take the next one.
            self.req = Req::Idle;
            self.resp_done = false;
        }
        self.receive(now_ns);
    }

    /// Takes what it can of the HTTP/1.1 request bytes the core wrote: how many. A request it
    /// cannot send sets [`H2Upstream::failed`].
    pub fn send(&mut self, h1: &[u8]) -> usize {
        if self.failed {
            return 0;
        }
        let mut taken = 0;
        if matches!(self.req, Req::Idle) {
            match self.open(h1) {
                Some(n) => taken = n,
                None => return 0,
            }
        }
        let mut rest = &h1[taken..];
        loop {
            let Some(stream) = self.stream else { return taken };
            let Req::Body(dec) = &mut self.req else { return taken };
            if dec.is_done() {
                let sent = if self.req_trailers.is_empty() {
                    self.h2.send_data(stream, &[], true).map(|_| ())
                } else {
                    self.h2.send_trailers(stream, super::h2::trailer_fields(&self.req_trailers))
                };
                match sent {
                    Ok(()) => self.req = Req::Done,
                    Err(SendError::Blocked) => {}
                    Err(_) => self.failed = true,
                }
                return taken;
            }
            let cap = self.h2.send_capacity(stream);
            if rest.is_empty() || cap == 0 {
                return taken;
            }
            let n = rest.len().min(cap);
            let step = match dec.decode(&rest[..n]) {
                Ok(s) => s,
                Err(_) => {
                    self.failed = true;
                    return taken;
                }
            };
            if !step.trailer.is_empty() {
                self.req_trailers.extend_from_slice(dec.trailer_prefix());
                self.req_trailers.extend_from_slice(&rest[step.trailer.clone()]);
            }
            // A sized body ends with its last DATA frame.
            let end = step.done && !self.req_chunked;
            if (!step.data.is_empty() || end)
                && self.h2.send_data(stream, &rest[step.data.clone()], end).is_err()
            {
                self.failed = true;
                return taken;
            }
            if end {
                self.req = Req::Done;
            }
            taken += step.consumed;
            rest = &rest[step.consumed..];
            if step.consumed == 0 {
                return taken;
            }
        }
    }

    /// Opens the stream from the request head at the front of `h1`: the head's length, or
    /// `None` (incomplete, or refused: then failed).
    fn open(&mut self, h1: &[u8]) -> Option<usize> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut raw);
        let head_len = match req.parse(h1) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.failed = true;
                return None;
            }
        };
        let (mut length, mut chunked, mut authority) = (None, false, &b""[..]);
        for f in req.headers.iter() {
            if f.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(f.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if f.name.eq_ignore_ascii_case("host") {
                authority = f.value;
            }
        }
        let framing = match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(n)) => Framing::ContentLength(n),
            (false, None) => Framing::None,
        };
        let dec = BodyDecoder::new(framing, None).ok()?;
        let end_stream = dec.is_done();
        let method = req.method.unwrap_or("GET").as_bytes();
        let path = req.path.unwrap_or("/").as_bytes();
        let fields = req
            .headers
            .iter()
            .filter(|f| !f.name.eq_ignore_ascii_case("host"))
            .map(|f| Field::new(f.name.as_bytes(), f.value));
        let r = Request { method, scheme: self.scheme, authority, path };
        match self.h2.send_request(r, fields, end_stream) {
            Ok(id) => {
                self.stream = Some(id);
                self.req_chunked = chunked;
                self.req_trailers.clear();
                self.req = if end_stream { Req::Done } else { Req::Body(dec) };
                self.resp_done = false;
                Some(head_len)
            }
            Err(SendError::Blocked) => None,
            Err(_) => {
                self.failed = true;
                None
            }
        }
    }

    /// Reads frames while the converted response has room.
    fn receive(&mut self, now_ns: u64) {
        let H2Upstream { h2, input, out, stream, resp_done, failed, .. } = self;
        let bytes = input.bytes();
        let mut off = 0;
        while out.room(true) >= OUT_ROOM {
            let r = h2.recv(&bytes[off..], now_ns);
            let consumed = r.consumed;
            let Some(event) = r.event else {
                off += consumed;
                if consumed == 0 {
                    break;
                }
                continue;
            };
            let mut release = None;
            match event {
                Event::Head { stream: s, head, end_stream } if Some(s) == *stream => {
                    let status = head.status().unwrap_or(502);
                    let mut w = Out(out);
                    let _ = write!(w, "HTTP/1.1 {status} -\r\n");
                    let mut has_length = false;
                    for f in head.fields() {
                        has_length |= f.name == b"content-length";
                        if f.name == b"content-length" && !end_stream {
                            // Re-framed chunked (trailers may follow).
                            continue;
                        }
                        let _ = w.raw(f.name);
                        let _ = w.raw(b": ");
                        let _ = w.raw(f.value);
                        let _ = w.raw(b"\r\n");
                    }
                    if !head.is_informational() {
                        if end_stream {
                            if !has_length {
                                let _ = w.raw(b"content-length: 0\r\n");
                            }
                        } else {
                            let _ = w.raw(b"transfer-encoding: chunked\r\n");
                        }
                    }
                    let _ = w.raw(b"\r\n");
                    if end_stream {
                        *resp_done = true;
                        *stream = None;
                    }
                }
                Event::Data { stream: s, data, end_stream } if Some(s) == *stream => {
                    let d = &bytes[off..][data];
                    if !d.is_empty() {
                        let _ = write!(Out(out), "{:x}\r\n", d.len());
                        out.push(d);
                        out.push(b"\r\n");
                    }
                    release = Some((s, d.len()));
                    if end_stream {
                        out.push(b"0\r\n\r\n");
                        *resp_done = true;
                        *stream = None;
                    }
                }
                Event::Data { stream: s, data, .. } => release = Some((s, data.len())),
                Event::Trailers { stream: s, trailers } if Some(s) == *stream => {
                    let mut w = Out(out);
                    let _ = w.raw(b"0\r\n");
                    for f in trailers.fields() {
                        let _ = w.raw(f.name);
                        let _ = w.raw(b": ");
                        let _ = w.raw(f.value);
                        let _ = w.raw(b"\r\n");
                    }
                    let _ = w.raw(b"\r\n");
                    *resp_done = true;
                    *stream = None;
                }
                Event::Reset { stream: s, .. } | Event::StreamError { stream: s, .. }
                    if Some(s) == *stream =>
                {
                    *failed = true;
                    *stream = None;
                }
                Event::GoAway { last_stream, .. } if stream.is_some_and(|s| s.0 > last_stream.0) => {
                    *failed = true;
                    *stream = None;
                }
                Event::ConnectionError { .. } if stream.is_some() => {
                    *failed = true;
                    *stream = None;
                }
                _ => {}
            }
            off += consumed;
            if let Some((s, n)) = release {
                h2.release(s, n);
            }
        }
        input.consume(off);
    }
}
