//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, every frame type parsed from a byte
//! slice with the checks of §6, and writers that append frames to a caller's buffer.
//!
//! [`FrameHeader::parse`] reads a header; [`Frame::parse`] takes it and the whole payload and
//! gives a typed [`Frame`] borrowing the payload, or a [`FrameError`] saying whether the error
//! ends the connection or only the stream, with its reason (and so its error code). What
//! depends on the connection's state (streams, windows, header blocks, settings in force) is
//! checked by [`super::conn`], not here — except the length against the frame size limit,
//! which the caller checks on the header before waiting for the payload. Frames of unknown
//! types parse as [`Frame::Unknown`], for the caller to ignore (§4.1, §5.5); unknown flags are
//! ignored.
//!
//! Hot path: yes; nothing here allocates except the caller's buffer growing in the writers.

use super::error::{ErrorCode, Reason, StreamReason};

/// The length of a frame header.
pub const HEADER_LEN: usize = 9;

/// The client connection preface (RFC 9113 §3.4), before the client's first SETTINGS.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// SETTINGS_MAX_FRAME_SIZE's initial value, and the least it may be (§6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The most SETTINGS_MAX_FRAME_SIZE may be (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// The initial flow-control window of the connection and of every stream (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// A stream identifier (31 bits; 0 is the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The connection itself.
    pub const CONNECTION: StreamId = StreamId(0);

    /// Whether this is stream 0.
    pub const fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// Whether a client opened it (odd identifiers, §5.1.1).
    pub const fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }
}

/// Frame types (§6, §11.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// DATA (0x0).
    Data,
    /// HEADERS (0x1).
    Headers,
    /// PRIORITY (0x2), deprecated by RFC 9113 but still parsed.
    Priority,
    /// RST_STREAM (0x3).
    RstStream,
    /// SETTINGS (0x4).
    Settings,
    /// PUSH_PROMISE (0x5).
    PushPromise,
    /// PING (0x6).
    Ping,
    /// GOAWAY (0x7).
    GoAway,
    /// WINDOW_UPDATE (0x8).
    WindowUpdate,
    /// CONTINUATION (0x9).
    Continuation,
    /// Any other type: ignored.
    Unknown(u8),
}

impl FrameType {
    /// The type a byte names.
    pub const fn from_u8(b: u8) -> FrameType {
        match b {
            0 => FrameType::Data,
            1 => FrameType::Headers,
            2 => FrameType::Priority,
            3 => FrameType::RstStream,
            4 => FrameType::Settings,
            5 => FrameType::PushPromise,
            6 => FrameType::Ping,
            7 => FrameType::GoAway,
            8 => FrameType::WindowUpdate,
            9 => FrameType::Continuation,
            other => FrameType::Unknown(other),
        }
    }

    /// Its byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            FrameType::Data => 0,
            FrameType::Headers => 1,
            FrameType::Priority => 2,
            FrameType::RstStream => 3,
            FrameType::Settings => 4,
            FrameType::PushPromise => 5,
            FrameType::Ping => 6,
            FrameType::GoAway => 7,
            FrameType::WindowUpdate => 8,
            FrameType::Continuation => 9,
            FrameType::Unknown(b) => b,
        }
    }
}

/// Frame flags (§6).
pub mod flags {
    /// DATA, HEADERS: the last frame of the stream from its sender.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the last frame of the header block.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte and padding.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: priority fields.
    pub const PRIORITY: u8 = 0x20;
}

/// A frame header (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload's length (24 bits).
    pub len: u32,
    /// The type.
    pub kind: FrameType,
    /// The flags.
    pub flags: u8,
    /// The stream (the reserved bit cleared).
    pub stream: StreamId,
}

impl FrameHeader {
    /// The header at the front of `bytes`, if there are 9 bytes.
    pub fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: FrameType::from_u8(b[3]),
            flags: b[4],
            stream: StreamId(u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW),
        })
    }

    /// Appends the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        let len = self.len.to_be_bytes();
        out.extend_from_slice(&[len[1], len[2], len[3], self.kind.to_u8(), self.flags]);
        out.extend_from_slice(&(self.stream.0 & MAX_WINDOW).to_be_bytes());
    }

    /// Whether a flag is set.
    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Stream dependency and weight (§5.3.2, deprecated; parsed and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The exclusive flag.
    pub exclusive: bool,
    /// The stream depended on.
    pub dependency: StreamId,
    /// The weight minus one.
    pub weight: u8,
}

impl Priority {
    fn parse(b: &[u8]) -> Priority {
        let dep = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Priority { exclusive: dep & 0x8000_0000 != 0, dependency: StreamId(dep & MAX_WINDOW), weight: b[4] }
    }
}

/// SETTINGS parameters (§6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The parameters of a SETTINGS frame, already checked against their ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    raw: &'a [u8],
}

impl<'a> Settings<'a> {
    /// The parameters in order, `(identifier, value)`; unknown identifiers included (the
    /// receiver ignores them, §6.5.2).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        self.raw
            .chunks_exact(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
    }

    /// How many parameters.
    pub fn len(&self) -> usize {
        self.raw.len() / 6
    }

    /// No parameter.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// A parsed frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA (§6.1): the data without padding.
    Data {
        /// The stream.
        stream: StreamId,
        /// The data.
        data: &'a [u8],
        /// Padding bytes, pad length byte included (they count for flow control).
        padding: u32,
        /// END_STREAM.
        end_stream: bool,
    },
    /// HEADERS (§6.2): a header block fragment.
    Headers {
        /// The stream.
        stream: StreamId,
        /// Priority fields, if any.
        priority: Option<Priority>,
        /// The fragment, without padding.
        fragment: &'a [u8],
        /// END_STREAM.
        end_stream: bool,
        /// END_HEADERS.
        end_headers: bool,
    },
    /// PRIORITY (§6.3).
    Priority {
        /// The stream.
        stream: StreamId,
        /// Its priority.
        priority: Priority,
    },
    /// RST_STREAM (§6.4).
    RstStream {
        /// The stream.
        stream: StreamId,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS (§6.5).
    Settings {
        /// An acknowledgement (no parameters).
        ack: bool,
        /// The parameters.
        settings: Settings<'a>,
    },
    /// PUSH_PROMISE (§6.6).
    PushPromise {
        /// The stream it is associated with.
        stream: StreamId,
        /// The stream it reserves.
        promised: StreamId,
        /// The fragment, without padding.
        fragment: &'a [u8],
        /// END_HEADERS.
        end_headers: bool,
    },
    /// PING (§6.7).
    Ping {
        /// An answer.
        ack: bool,
        /// The opaque data.
        data: [u8; 8],
    },
    /// GOAWAY (§6.8).
    GoAway {
        /// The last stream the sender processed or may process.
        last_stream: StreamId,
        /// Why.
        code: ErrorCode,
        /// Opaque debug data.
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE (§6.9); the increment is not 0.
    WindowUpdate {
        /// The stream, or 0 for the connection.
        stream: StreamId,
        /// The increment, 1..=2^31-1.
        increment: u32,
    },
    /// CONTINUATION (§6.10).
    Continuation {
        /// The stream.
        stream: StreamId,
        /// The fragment.
        fragment: &'a [u8],
        /// END_HEADERS.
        end_headers: bool,
    },
    /// A type this implementation does not know: to be ignored (§5.5).
    Unknown {
        /// Its type byte.
        kind: u8,
        /// Its stream.
        stream: StreamId,
    },
}

/// A frame that breaks §6's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A connection error: GOAWAY and close.
    Connection(Reason),
    /// A stream error: RST_STREAM on that stream; the connection goes on.
    Stream(StreamId, StreamReason),
}

impl FrameError {
    /// The error code to send.
    pub const fn code(self) -> ErrorCode {
        match self {
            FrameError::Connection(r) => r.code(),
            FrameError::Stream(_, r) => r.code(),
        }
    }
}

fn conn(r: Reason) -> FrameError {
    FrameError::Connection(r)
}

/// Removes padding (§6.1): the pad length byte and that many bytes at the end.
fn unpad<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<(&'a [u8], u32), FrameError> {
    if !h.has(flags::PADDED) {
        return Ok((payload, 0));
    }
    let (&pad, rest) = payload.split_first().ok_or(conn(Reason::FrameSize))?;
    let pad = usize::from(pad);
    // §6.1: padding at least as long as the rest of the payload is a PROTOCOL_ERROR.
    if pad >= payload.len() {
        return Err(conn(Reason::Padding));
    }
    Ok((&rest[..rest.len() - pad], pad as u32 + 1))
}

impl<'a> Frame<'a> {
    /// Parses a frame from its header and its whole payload (`payload.len() == h.len`).
    pub fn parse(h: FrameHeader, payload: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        debug_assert_eq!(payload.len(), h.len as usize);
        let stream = h.stream;
        let on_stream = || if stream.is_connection() { Err(conn(Reason::StreamIdZero)) } else { Ok(()) };
        let on_conn = || if stream.is_connection() { Ok(()) } else { Err(conn(Reason::StreamIdNotZero)) };
        match h.kind {
            FrameType::Data => {
                on_stream()?;
                let (data, padding) = unpad(&h, payload)?;
                Ok(Frame::Data { stream, data, padding, end_stream: h.has(flags::END_STREAM) })
            }
            FrameType::Headers => {
                on_stream()?;
                let (mut fragment, _) = unpad(&h, payload)?;
                let priority = if h.has(flags::PRIORITY) {
                    if fragment.len() < 5 {
                        return Err(conn(Reason::FrameSize));
                    }
                    // A self-dependency (§5.3.1) is the connection's to report: the block must be
                    // decoded first, for HPACK's sake.
                    let p = Priority::parse(fragment);
                    fragment = &fragment[5..];
                    Some(p)
                } else {
                    None
                };
                Ok(Frame::Headers {
                    stream,
                    priority,
                    fragment,
                    end_stream: h.has(flags::END_STREAM),
                    end_headers: h.has(flags::END_HEADERS),
                })
            }
            FrameType::Priority => {
                on_stream()?;
                if payload.len() != 5 {
                    return Err(FrameError::Stream(stream, StreamReason::PriorityFrameSize));
                }
                let priority = Priority::parse(payload);
                if priority.dependency == stream {
                    return Err(FrameError::Stream(stream, StreamReason::SelfDependency));
                }
                Ok(Frame::Priority { stream, priority })
            }
            FrameType::RstStream => {
                on_stream()?;
                let b: [u8; 4] = payload.try_into().map_err(|_| conn(Reason::FrameSize))?;
                Ok(Frame::RstStream { stream, code: ErrorCode(u32::from_be_bytes(b)) })
            }
            FrameType::Settings => {
                on_conn()?;
                let ack = h.has(flags::ACK);
                if (ack && !payload.is_empty()) || !payload.len().is_multiple_of(6) {
                    return Err(conn(Reason::FrameSize));
                }
                let settings = Settings { raw: payload };
                for (id, value) in settings.iter() {
                    match id {
                        setting::ENABLE_PUSH if value > 1 => return Err(conn(Reason::BadSetting)),
                        setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                            return Err(conn(Reason::BadWindowSetting));
                        }
                        setting::MAX_FRAME_SIZE
                            if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
                        {
                            return Err(conn(Reason::BadSetting));
                        }
                        _ => {}
                    }
                }
                Ok(Frame::Settings { ack, settings })
            }
            FrameType::PushPromise => {
                on_stream()?;
                let (fragment, _) = unpad(&h, payload)?;
                if fragment.len() < 4 {
                    return Err(conn(Reason::FrameSize));
                }
                let promised =
                    u32::from_be_bytes([fragment[0], fragment[1], fragment[2], fragment[3]]) & MAX_WINDOW;
                Ok(Frame::PushPromise {
                    stream,
                    promised: StreamId(promised),
                    fragment: &fragment[4..],
                    end_headers: h.has(flags::END_HEADERS),
                })
            }
            FrameType::Ping => {
                on_conn()?;
                let data: [u8; 8] = payload.try_into().map_err(|_| conn(Reason::FrameSize))?;
                Ok(Frame::Ping { ack: h.has(flags::ACK), data })
            }
            FrameType::GoAway => {
                on_conn()?;
                if payload.len() < 8 {
                    return Err(conn(Reason::FrameSize));
                }
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & MAX_WINDOW;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                Ok(Frame::GoAway { last_stream: StreamId(last), code: ErrorCode(code), debug: &payload[8..] })
            }
            FrameType::WindowUpdate => {
                let b: [u8; 4] = payload.try_into().map_err(|_| conn(Reason::FrameSize))?;
                let increment = u32::from_be_bytes(b) & MAX_WINDOW;
                if increment == 0 {
                    return Err(if stream.is_connection() {
                        conn(Reason::ZeroWindowIncrement)
                    } else {
                        FrameError::Stream(stream, StreamReason::ZeroWindowIncrement)
                    });
                }
                Ok(Frame::WindowUpdate { stream, increment })
            }
            FrameType::Continuation => {
                on_stream()?;
                Ok(Frame::Continuation { stream, fragment: payload, end_headers: h.has(flags::END_HEADERS) })
            }
            FrameType::Unknown(kind) => Ok(Frame::Unknown { kind, stream }),
        }
    }
}

fn header(out: &mut Vec<u8>, len: usize, kind: FrameType, flags: u8, stream: StreamId) {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
    FrameHeader { len: len as u32, kind, flags, stream }.write(out);
}

/// Appends a DATA frame (no padding).
pub fn write_data(out: &mut Vec<u8>, stream: StreamId, data: &[u8], end_stream: bool) {
    header(out, data.len(), FrameType::Data, if end_stream { flags::END_STREAM } else { 0 }, stream);
    out.extend_from_slice(data);
}

/// Appends a HEADERS frame carrying `fragment` (no padding, no priority).
pub fn write_headers(
    out: &mut Vec<u8>,
    stream: StreamId,
    fragment: &[u8],
    end_stream: bool,
    end_headers: bool,
) {
    let f = if end_stream { flags::END_STREAM } else { 0 } | if end_headers { flags::END_HEADERS } else { 0 };
    header(out, fragment.len(), FrameType::Headers, f, stream);
    out.extend_from_slice(fragment);
}

/// Appends a CONTINUATION frame.
pub fn write_continuation(out: &mut Vec<u8>, stream: StreamId, fragment: &[u8], end_headers: bool) {
    header(
        out,
        fragment.len(),
        FrameType::Continuation,
        if end_headers { flags::END_HEADERS } else { 0 },
        stream,
    );
    out.extend_from_slice(fragment);
}

/// Appends a PRIORITY frame.
pub fn write_priority(out: &mut Vec<u8>, stream: StreamId, p: Priority) {
    header(out, 5, FrameType::Priority, 0, stream);
    let dep = p.dependency.0 & MAX_WINDOW | if p.exclusive { 0x8000_0000 } else { 0 };
    out.extend_from_slice(&dep.to_be_bytes());
    out.push(p.weight);
}

/// Appends a RST_STREAM frame.
pub fn write_rst_stream(out: &mut Vec<u8>, stream: StreamId, code: ErrorCode) {
    header(out, 4, FrameType::RstStream, 0, stream);
    out.extend_from_slice(&code.0.to_be_bytes());
}

/// Appends a SETTINGS frame with these parameters.
pub fn write_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    header(out, params.len() * 6, FrameType::Settings, 0, StreamId::CONNECTION);
    for &(id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement.
pub fn write_settings_ack(out: &mut Vec<u8>) {
    header(out, 0, FrameType::Settings, flags::ACK, StreamId::CONNECTION);
}

/// Appends a PING (or its answer, `ack`).
pub fn write_ping(out: &mut Vec<u8>, ack: bool, data: [u8; 8]) {
    header(out, 8, FrameType::Ping, if ack { flags::ACK } else { 0 }, StreamId::CONNECTION);
    out.extend_from_slice(&data);
}

/// Appends a GOAWAY frame.
pub fn write_goaway(out: &mut Vec<u8>, last_stream: StreamId, code: ErrorCode, debug: &[u8]) {
    header(out, 8 + debug.len(), FrameType::GoAway, 0, StreamId::CONNECTION);
    out.extend_from_slice(&(last_stream.0 & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
}

/// Appends a WINDOW_UPDATE frame (`increment` 1..=2^31-1).
pub fn write_window_update(out: &mut Vec<u8>, stream: StreamId, increment: u32) {
    debug_assert!(increment > 0 && increment <= MAX_WINDOW);
    header(out, 4, FrameType::WindowUpdate, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
        let h = FrameHeader::parse(bytes).expect("a header");
        assert_eq!(bytes.len(), HEADER_LEN + h.len as usize, "test frame length");
        Frame::parse(h, &bytes[HEADER_LEN..])
    }

    #[test]
    fn header_round_trip_and_reserved_bit() {
        let b = [0x00, 0x40, 0x00, 0x01, 0x25, 0x80, 0x00, 0x00, 0x03];
        let h = FrameHeader::parse(&b).unwrap();
        assert_eq!(h, FrameHeader { len: 16384, kind: FrameType::Headers, flags: 0x25, stream: StreamId(3) });
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out, [0x00, 0x40, 0x00, 0x01, 0x25, 0x00, 0x00, 0x00, 0x03]);
        assert!(FrameHeader::parse(&b[..8]).is_none());
    }

    #[test]
    fn every_type_parses_from_bytes() {
        let data = [0, 0, 5, 0, 1, 0, 0, 0, 1, b'h', b'e', b'l', b'l', b'o'];
        assert_eq!(
            parse(&data),
            Ok(Frame::Data { stream: StreamId(1), data: b"hello", padding: 0, end_stream: true })
        );
        // Padded: pad length 2, "hi", two zero bytes.
        let padded = [0, 0, 5, 0, 0x8, 0, 0, 0, 3, 2, b'h', b'i', 0, 0];
        assert_eq!(
            parse(&padded),
            Ok(Frame::Data { stream: StreamId(3), data: b"hi", padding: 3, end_stream: false })
        );
        // HEADERS with padding and priority: pad 1, dep 0x80000001 (exclusive, 1), weight 15, ":method GET".
        let headers = [0, 0, 8, 1, 0x2d, 0, 0, 0, 3, 1, 0x80, 0, 0, 1, 15, 0x82, 0];
        assert_eq!(
            parse(&headers),
            Ok(Frame::Headers {
                stream: StreamId(3),
                priority: Some(Priority { exclusive: true, dependency: StreamId(1), weight: 15 }),
                fragment: &[0x82],
                end_stream: true,
                end_headers: true,
            })
        );
        let prio = [0, 0, 5, 2, 0, 0, 0, 0, 5, 0, 0, 0, 3, 7];
        assert_eq!(
            parse(&prio),
            Ok(Frame::Priority {
                stream: StreamId(5),
                priority: Priority { exclusive: false, dependency: StreamId(3), weight: 7 }
            })
        );
        let rst = [0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8];
        assert_eq!(parse(&rst), Ok(Frame::RstStream { stream: StreamId(1), code: ErrorCode::CANCEL }));
        let settings = [0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100, 0, 0x99, 0, 0, 0, 1];
        match parse(&settings) {
            Ok(Frame::Settings { ack: false, settings }) => {
                assert_eq!(settings.iter().collect::<Vec<_>>(), [(3, 100), (0x99, 1)]);
            }
            other => panic!("{other:?}"),
        }
        let ack = [0, 0, 0, 4, 1, 0, 0, 0, 0];
        assert!(matches!(parse(&ack), Ok(Frame::Settings { ack: true, .. })));
        let push = [0, 0, 5, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0x82];
        assert_eq!(
            parse(&push),
            Ok(Frame::PushPromise {
                stream: StreamId(1),
                promised: StreamId(2),
                fragment: &[0x82],
                end_headers: true
            })
        );
        let ping = [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(parse(&ping), Ok(Frame::Ping { ack: true, data: [1, 2, 3, 4, 5, 6, 7, 8] }));
        let goaway = [0, 0, 10, 7, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0xb, b'h', b'i'];
        assert_eq!(
            parse(&goaway),
            Ok(Frame::GoAway { last_stream: StreamId(7), code: ErrorCode::ENHANCE_YOUR_CALM, debug: b"hi" })
        );
        let wu = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0x80, 0, 0x10, 0];
        assert_eq!(parse(&wu), Ok(Frame::WindowUpdate { stream: StreamId(0), increment: 4096 }));
        let cont = [0, 0, 1, 9, 4, 0, 0, 0, 1, 0x84];
        assert_eq!(
            parse(&cont),
            Ok(Frame::Continuation { stream: StreamId(1), fragment: &[0x84], end_headers: true })
        );
        let unknown = [0, 0, 2, 0xfa, 0xff, 0, 0, 0, 9, 1, 2];
        assert_eq!(parse(&unknown), Ok(Frame::Unknown { kind: 0xfa, stream: StreamId(9) }));
    }

    #[test]
    fn section_6_violations_get_their_errors() {
        use FrameError::{Connection as C, Stream as S};
        let cases: &[(&str, &[u8], FrameError)] = &[
            ("DATA on stream 0", &[0, 0, 1, 0, 0, 0, 0, 0, 0, 1], C(Reason::StreamIdZero)),
            ("DATA padding = payload", &[0, 0, 2, 0, 8, 0, 0, 0, 1, 2, 0], C(Reason::Padding)),
            ("DATA padded, empty", &[0, 0, 0, 0, 8, 0, 0, 0, 1], C(Reason::FrameSize)),
            ("HEADERS on stream 0", &[0, 0, 1, 1, 4, 0, 0, 0, 0, 0x82], C(Reason::StreamIdZero)),
            ("HEADERS padding too long", &[0, 0, 2, 1, 0xc, 0, 0, 0, 1, 5, 0x82], C(Reason::Padding)),
            ("HEADERS priority cut", &[0, 0, 3, 1, 0x24, 0, 0, 0, 1, 0, 0, 0], C(Reason::FrameSize)),
            (
                "PRIORITY of 4 bytes",
                &[0, 0, 4, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                S(StreamId(1), StreamReason::PriorityFrameSize),
            ),
            ("PRIORITY on 0", &[0, 0, 5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0], C(Reason::StreamIdZero)),
            ("RST_STREAM of 3 bytes", &[0, 0, 3, 3, 0, 0, 0, 0, 1, 0, 0, 0], C(Reason::FrameSize)),
            ("RST_STREAM on 0", &[0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0], C(Reason::StreamIdZero)),
            ("SETTINGS on a stream", &[0, 0, 0, 4, 0, 0, 0, 0, 1], C(Reason::StreamIdNotZero)),
            ("SETTINGS of 5 bytes", &[0, 0, 5, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0], C(Reason::FrameSize)),
            (
                "SETTINGS ACK with a payload",
                &[0, 0, 6, 4, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1],
                C(Reason::FrameSize),
            ),
            ("ENABLE_PUSH 2", &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2], C(Reason::BadSetting)),
            (
                "INITIAL_WINDOW_SIZE 2^31",
                &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0x80, 0, 0, 0],
                C(Reason::BadWindowSetting),
            ),
            (
                "MAX_FRAME_SIZE 16383",
                &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x3f, 0xff],
                C(Reason::BadSetting),
            ),
            ("MAX_FRAME_SIZE 2^24", &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0], C(Reason::BadSetting)),
            ("PUSH_PROMISE cut", &[0, 0, 3, 5, 4, 0, 0, 0, 1, 0, 0, 0], C(Reason::FrameSize)),
            ("PING of 7 bytes", &[0, 0, 7, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], C(Reason::FrameSize)),
            (
                "PING on a stream",
                &[0, 0, 8, 6, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                C(Reason::StreamIdNotZero),
            ),
            ("GOAWAY of 7 bytes", &[0, 0, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], C(Reason::FrameSize)),
            (
                "GOAWAY on a stream",
                &[0, 0, 8, 7, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
                C(Reason::StreamIdNotZero),
            ),
            ("WINDOW_UPDATE of 3", &[0, 0, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1], C(Reason::FrameSize)),
            (
                "WINDOW_UPDATE 0 on 0",
                &[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                C(Reason::ZeroWindowIncrement),
            ),
            (
                "WINDOW_UPDATE 0 on 1",
                &[0, 0, 4, 8, 0, 0, 0, 0, 1, 0x80, 0, 0, 0],
                S(StreamId(1), StreamReason::ZeroWindowIncrement),
            ),
            ("CONTINUATION on 0", &[0, 0, 0, 9, 4, 0, 0, 0, 0], C(Reason::StreamIdZero)),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(parse(bytes), Err(*want), "{what}");
        }
        assert_eq!(C(Reason::FrameSize).code(), ErrorCode::FRAME_SIZE_ERROR);
        assert_eq!(C(Reason::BadWindowSetting).code(), ErrorCode::FLOW_CONTROL_ERROR);
        assert_eq!(S(StreamId(1), StreamReason::PriorityFrameSize).code(), ErrorCode::FRAME_SIZE_ERROR);
    }

    #[test]
    fn writers_write_what_parse_reads() {
        let mut out = Vec::new();
        write_data(&mut out, StreamId(1), b"abc", true);
        write_headers(&mut out, StreamId(3), &[0x82, 0x84], false, false);
        write_continuation(&mut out, StreamId(3), &[0x86], true);
        write_priority(
            &mut out,
            StreamId(5),
            Priority { exclusive: true, dependency: StreamId(3), weight: 200 },
        );
        write_rst_stream(&mut out, StreamId(5), ErrorCode::REFUSED_STREAM);
        write_settings(
            &mut out,
            &[(setting::MAX_CONCURRENT_STREAMS, 100), (setting::INITIAL_WINDOW_SIZE, 1 << 20)],
        );
        write_settings_ack(&mut out);
        write_ping(&mut out, false, *b"12345678");
        write_goaway(&mut out, StreamId(7), ErrorCode::NO_ERROR, b"bye");
        write_window_update(&mut out, StreamId(0), MAX_WINDOW);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while let Some(h) = FrameHeader::parse(rest) {
            let end = HEADER_LEN + h.len as usize;
            frames.push(Frame::parse(h, &rest[HEADER_LEN..end]).unwrap());
            rest = &rest[end..];
        }
        assert!(rest.is_empty());
        assert_eq!(frames.len(), 10);
        assert_eq!(
            frames[0],
            Frame::Data { stream: StreamId(1), data: b"abc", padding: 0, end_stream: true }
        );
        assert_eq!(
            frames[1],
            Frame::Headers {
                stream: StreamId(3),
                priority: None,
                fragment: &[0x82, 0x84],
                end_stream: false,
                end_headers: false
            }
        );
        assert_eq!(
            frames[2],
            Frame::Continuation { stream: StreamId(3), fragment: &[0x86], end_headers: true }
        );
        assert_eq!(
            frames[3],
            Frame::Priority {
                stream: StreamId(5),
                priority: Priority { exclusive: true, dependency: StreamId(3), weight: 200 }
            }
        );
        assert_eq!(frames[4], Frame::RstStream { stream: StreamId(5), code: ErrorCode::REFUSED_STREAM });
        match frames[5] {
            Frame::Settings { ack: false, settings } => {
                assert_eq!(settings.iter().collect::<Vec<_>>(), [(3, 100), (4, 1 << 20)])
            }
            ref f => panic!("{f:?}"),
        }
        assert!(matches!(frames[6], Frame::Settings { ack: true, settings } if settings.is_empty()));
        assert_eq!(frames[7], Frame::Ping { ack: false, data: *b"12345678" });
        assert_eq!(
            frames[8],
            Frame::GoAway { last_stream: StreamId(7), code: ErrorCode::NO_ERROR, debug: b"bye" }
        );
        assert_eq!(frames[9], Frame::WindowUpdate { stream: StreamId(0), increment: MAX_WINDOW });
    }
}
