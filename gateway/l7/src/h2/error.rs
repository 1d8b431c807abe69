//! Error codes (RFC 9113 §7) and the reasons Sluice ends a connection or a stream, each with a
//! stable name for counters.

use super::hpack::DecodeError;
use sluice_model::counters::Counter;

/// An HTTP/2 error code (RFC 9113 §7), as carried by RST_STREAM and GOAWAY. Codes this
/// implementation does not know are kept as they are (§7: treated like INTERNAL_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful shutdown, or a stream no longer needed after a complete response.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// A protocol error with no more specific code.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// An unexpected internal error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The flow-control protocol was violated.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS were not acknowledged in time.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame on a half-closed or closed stream.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame of invalid size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any processing: safe to retry.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The header compression context cannot be kept.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// The CONNECT tunnel failed.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// The peer generates excessive load.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// The transport's security is not sufficient.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// HTTP/1.1 is required.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The RFC's name, or `UNKNOWN`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "UNKNOWN",
        }
    }
}

/// Why Sluice ends a connection (a connection error, RFC 9113 §5.4.1): GOAWAY with
/// [`Reason::code`] is sent and nothing more is read. Each has a stable [`Reason::name`] for a
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The client's first 24 bytes are not the connection preface (§3.4).
    Preface,
    /// The peer's first frame is not SETTINGS (§3.4).
    FirstFrameNotSettings,
    /// A frame longer than our SETTINGS_MAX_FRAME_SIZE (§4.2).
    FrameTooLarge,
    /// A frame whose length is wrong for its type (§6: PING not 8, SETTINGS not a multiple of
    /// 6, RST_STREAM or WINDOW_UPDATE not 4, GOAWAY under 8, an ACK with a payload).
    FrameSize,
    /// A frame that belongs to a stream on stream 0.
    StreamIdZero,
    /// A connection frame (SETTINGS, PING, GOAWAY) on a stream.
    StreamIdNotZero,
    /// Padding as long as the payload or longer (§6.1, §6.2).
    Padding,
    /// A SETTINGS value out of its range (§6.5.2): ENABLE_PUSH not 0 or 1, MAX_FRAME_SIZE
    /// outside 16,384..=16,777,215.
    BadSetting,
    /// SETTINGS_INITIAL_WINDOW_SIZE over 2^31 - 1, or making a window overflow (§6.9.2).
    BadWindowSetting,
    /// WINDOW_UPDATE of 0 on the connection (§6.9).
    ZeroWindowIncrement,
    /// PRIORITY making a stream never opened depend on itself (§5.3.1; no RST_STREAM may be
    /// sent for an idle stream, §6.4).
    SelfDependency,
    /// A frame other than CONTINUATION in the middle of a header block (§6.10).
    ExpectedContinuation,
    /// CONTINUATION not following a HEADERS, PUSH_PROMISE or CONTINUATION without
    /// END_HEADERS, or on another stream (§6.10).
    UnexpectedContinuation,
    /// A frame other than HEADERS or PRIORITY on a stream never opened (§5.1).
    IdleStream,
    /// A new stream whose identifier is not above every earlier one, or of the wrong parity
    /// (§5.1.1).
    StreamId,
    /// PUSH_PROMISE: we never enable push (§8.4).
    PushPromise,
    /// The peer's WINDOW_UPDATE overflows our connection send window (§6.9.1).
    WindowOverflow,
    /// The peer sent more DATA than the connection window we gave it (§6.9.1).
    FlowControl,
    /// A header block that cannot be decoded (§4.3).
    Compression(DecodeError),
    /// Too many streams reset by the peer, or by us because of the peer (refused, malformed),
    /// in a time window (CVE-2023-44487 rapid reset, CVE-2025-8671 "MadeYouReset").
    RapidReset,
    /// A header block of more CONTINUATION frames than allowed (CVE-2024-27316 family).
    ContinuationFlood,
    /// A header block longer than allowed, before it is decoded.
    HeaderBlockTooLarge,
    /// Too many SETTINGS frames in a time window.
    SettingsFlood,
    /// Too many PING frames in a time window.
    PingFlood,
    /// Too many answers (PING and SETTINGS acknowledgements, RST_STREAMs) queued while our
    /// output is not being written: the peer does not read.
    AnswerBacklog,
    /// Too many frames that carry nothing (empty DATA or CONTINUATION, PRIORITY, unknown
    /// types, frames on closed streams) in a time window.
    EmptyFrameFlood,
}

impl Reason {
    /// Every reason, in order (each HPACK error its own).
    pub const ALL: &'static [Reason] = &[
        Reason::Preface,
        Reason::FirstFrameNotSettings,
        Reason::FrameTooLarge,
        Reason::FrameSize,
        Reason::StreamIdZero,
        Reason::StreamIdNotZero,
        Reason::Padding,
        Reason::BadSetting,
        Reason::BadWindowSetting,
        Reason::ZeroWindowIncrement,
        Reason::SelfDependency,
        Reason::ExpectedContinuation,
        Reason::UnexpectedContinuation,
        Reason::IdleStream,
        Reason::StreamId,
        Reason::PushPromise,
        Reason::WindowOverflow,
        Reason::FlowControl,
        Reason::Compression(DecodeError::Truncated),
        Reason::Compression(DecodeError::IntegerOverflow),
        Reason::Compression(DecodeError::BadIndex),
        Reason::Compression(DecodeError::HuffmanEos),
        Reason::Compression(DecodeError::HuffmanPadding),
        Reason::Compression(DecodeError::TableSizeTooLarge),
        Reason::Compression(DecodeError::TableSizeUpdateLate),
        Reason::RapidReset,
        Reason::ContinuationFlood,
        Reason::HeaderBlockTooLarge,
        Reason::SettingsFlood,
        Reason::PingFlood,
        Reason::AnswerBacklog,
        Reason::EmptyFrameFlood,
    ];

    /// The error code its GOAWAY carries.
    pub const fn code(self) -> ErrorCode {
        match self {
            Reason::FrameTooLarge | Reason::FrameSize => ErrorCode::FRAME_SIZE_ERROR,
            Reason::BadWindowSetting | Reason::WindowOverflow | Reason::FlowControl => {
                ErrorCode::FLOW_CONTROL_ERROR
            }
            Reason::Compression(_) => ErrorCode::COMPRESSION_ERROR,
            Reason::RapidReset
            | Reason::ContinuationFlood
            | Reason::HeaderBlockTooLarge
            | Reason::SettingsFlood
            | Reason::PingFlood
            | Reason::AnswerBacklog
            | Reason::EmptyFrameFlood => ErrorCode::ENHANCE_YOUR_CALM,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }
    /// The gateway counter a connection closed for this reason adds to
    /// (`sluice_model::counters`): each flood its own, the rest by kind.
    pub const fn counter(self) -> Counter {
        match self {
            Reason::RapidReset => Counter::L7H2RapidResets,
            Reason::ContinuationFlood => Counter::L7H2ContinuationFloods,
            Reason::HeaderBlockTooLarge => Counter::L7H2HeaderBlocksTooLarge,
            Reason::SettingsFlood => Counter::L7H2SettingsFloods,
            Reason::PingFlood => Counter::L7H2PingFloods,
            Reason::AnswerBacklog => Counter::L7H2AnswerBacklogs,
            Reason::EmptyFrameFlood => Counter::L7H2EmptyFrameFloods,
            Reason::Compression(_) => Counter::L7H2CompressionErrors,
            _ => Counter::L7H2ProtocolErrors,
        }
    }

    /// A stable snake_case name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Preface => "preface",
            Reason::FirstFrameNotSettings => "first_frame_not_settings",
            Reason::FrameTooLarge => "frame_too_large",
            Reason::FrameSize => "frame_size",
            Reason::StreamIdZero => "stream_id_zero",
            Reason::StreamIdNotZero => "stream_id_not_zero",
            Reason::Padding => "padding",
            Reason::BadSetting => "bad_setting",
            Reason::BadWindowSetting => "bad_window_setting",
            Reason::ZeroWindowIncrement => "zero_window_increment",
            Reason::SelfDependency => "self_dependency",
            Reason::ExpectedContinuation => "expected_continuation",
            Reason::UnexpectedContinuation => "unexpected_continuation",
            Reason::IdleStream => "idle_stream",
            Reason::StreamId => "stream_id",
            Reason::PushPromise => "push_promise",
            Reason::WindowOverflow => "window_overflow",
            Reason::FlowControl => "flow_control",
            Reason::Compression(e) => e.name(),
            Reason::RapidReset => "rapid_reset",
            Reason::ContinuationFlood => "continuation_flood",
            Reason::HeaderBlockTooLarge => "header_block_too_large",
            Reason::SettingsFlood => "settings_flood",
            Reason::PingFlood => "ping_flood",
            Reason::AnswerBacklog => "answer_backlog",
            Reason::EmptyFrameFlood => "empty_frame_flood",
        }
    }
}

/// Why Sluice ends one stream (a stream error, RFC 9113 §5.4.2) and the connection goes on.
/// Each has a stable [`StreamReason::name`] for a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamReason {
    /// Over SETTINGS_MAX_CONCURRENT_STREAMS, or opened after our GOAWAY: REFUSED_STREAM, safe
    /// to retry (§5.1.2, §8.7).
    Refused,
    /// A header list over SETTINGS_MAX_HEADER_LIST_SIZE (§6.5.2): a server answers 431.
    HeaderListTooLarge,
    /// The peer sent more DATA than the stream's window (§6.9.1).
    FlowControl,
    /// The peer's WINDOW_UPDATE overflows the stream's send window (§6.9.1).
    WindowOverflow,
    /// WINDOW_UPDATE of 0 on a stream (§6.9).
    ZeroWindowIncrement,
    /// PRIORITY of a length other than 5 (§6.3).
    PriorityFrameSize,
    /// A stream that depends on itself (§5.3.1).
    SelfDependency,
    /// DATA or HEADERS after the peer ended the stream (§5.1: half-closed (remote)).
    StreamClosed,
    /// Malformed (§8.1.1): a pseudo-header field after a regular one.
    PseudoAfterRegular,
    /// Malformed: a pseudo-header field that is not defined, or not for this kind of message.
    UnknownPseudo,
    /// Malformed: a pseudo-header field twice.
    DuplicatePseudo,
    /// Malformed: a required pseudo-header field missing (`:method`, `:scheme`, `:path`, or
    /// `:status`), or `:scheme`/`:path` with CONNECT.
    MissingPseudo,
    /// Malformed: `:path` empty, or neither `*` (OPTIONS) nor beginning with `/`.
    BadPath,
    /// Malformed: `:status` not three digits, or 101 (§8.6).
    BadStatus,
    /// Malformed: an uppercase letter in a field name (§8.2.1).
    UppercaseName,
    /// Malformed: a field name that is empty or has a byte a token cannot have (§8.2.1).
    BadName,
    /// Malformed: a field value with NUL, CR or LF, or whitespace at either end (§8.2.1).
    BadValue,
    /// Malformed: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding or Upgrade
    /// (§8.2.2).
    ConnectionSpecific,
    /// Malformed: TE other than `trailers` (§8.2.2).
    BadTe,
    /// Malformed: Content-Length not a number, or several that differ.
    BadContentLength,
    /// Malformed: DATA adding up to more or less than Content-Length (§8.1.1).
    ContentLengthMismatch,
    /// Malformed: Host and `:authority` name different hosts (§8.3.1).
    HostMismatch,
    /// Malformed: `:authority` (or Host) with userinfo or whitespace (§8.3.1).
    BadAuthority,
    /// Malformed: a pseudo-header field in trailers (§8.1).
    PseudoInTrailers,
    /// Malformed: a second HEADERS that does not end the stream (§8.1).
    TrailersWithoutEndStream,
    /// Malformed: an informational (1xx) response that ends the stream (§8.1).
    InformationalEndStream,
    /// Malformed: DATA before the response head (§8.1).
    DataBeforeHead,
}

impl StreamReason {
    /// Every reason, in order.
    pub const ALL: &'static [StreamReason] = &[
        StreamReason::Refused,
        StreamReason::HeaderListTooLarge,
        StreamReason::FlowControl,
        StreamReason::WindowOverflow,
        StreamReason::ZeroWindowIncrement,
        StreamReason::PriorityFrameSize,
        StreamReason::SelfDependency,
        StreamReason::StreamClosed,
        StreamReason::PseudoAfterRegular,
        StreamReason::UnknownPseudo,
        StreamReason::DuplicatePseudo,
        StreamReason::MissingPseudo,
        StreamReason::BadPath,
        StreamReason::BadStatus,
        StreamReason::UppercaseName,
        StreamReason::BadName,
        StreamReason::BadValue,
        StreamReason::ConnectionSpecific,
        StreamReason::BadTe,
        StreamReason::BadContentLength,
        StreamReason::ContentLengthMismatch,
        StreamReason::HostMismatch,
        StreamReason::BadAuthority,
        StreamReason::PseudoInTrailers,
        StreamReason::TrailersWithoutEndStream,
        StreamReason::InformationalEndStream,
        StreamReason::DataBeforeHead,
    ];

    /// The error code of the RST_STREAM that ends the stream.
    pub const fn code(self) -> ErrorCode {
        match self {
            StreamReason::Refused => ErrorCode::REFUSED_STREAM,
            StreamReason::FlowControl | StreamReason::WindowOverflow => ErrorCode::FLOW_CONTROL_ERROR,
            StreamReason::PriorityFrameSize => ErrorCode::FRAME_SIZE_ERROR,
            StreamReason::StreamClosed => ErrorCode::STREAM_CLOSED,
            _ => ErrorCode::PROTOCOL_ERROR,
        }
    }

    /// Whether the message was malformed (§8.1.1).
    pub const fn is_malformed(self) -> bool {
        !matches!(
            self,
            StreamReason::Refused
                | StreamReason::HeaderListTooLarge
                | StreamReason::FlowControl
                | StreamReason::WindowOverflow
                | StreamReason::ZeroWindowIncrement
                | StreamReason::PriorityFrameSize
                | StreamReason::SelfDependency
                | StreamReason::StreamClosed
        )
    }
    /// The gateway counter a stream reset for this reason adds to (`sluice_model::counters`).
    pub const fn counter(self) -> Counter {
        match self {
            StreamReason::Refused => Counter::L7H2StreamsRefused,
            StreamReason::HeaderListTooLarge => Counter::L7H2HeaderListsTooLarge,
            _ => Counter::L7H2StreamErrors,
        }
    }

    /// A stable snake_case name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            StreamReason::Refused => "refused",
            StreamReason::HeaderListTooLarge => "header_list_too_large",
            StreamReason::FlowControl => "flow_control",
            StreamReason::WindowOverflow => "window_overflow",
            StreamReason::ZeroWindowIncrement => "zero_window_increment",
            StreamReason::PriorityFrameSize => "priority_frame_size",
            StreamReason::SelfDependency => "self_dependency",
            StreamReason::StreamClosed => "stream_closed",
            StreamReason::PseudoAfterRegular => "pseudo_after_regular",
            StreamReason::UnknownPseudo => "unknown_pseudo",
            StreamReason::DuplicatePseudo => "duplicate_pseudo",
            StreamReason::MissingPseudo => "missing_pseudo",
            StreamReason::BadPath => "bad_path",
            StreamReason::BadStatus => "bad_status",
            StreamReason::UppercaseName => "uppercase_name",
            StreamReason::BadName => "bad_name",
            StreamReason::BadValue => "bad_value",
            StreamReason::ConnectionSpecific => "connection_specific",
            StreamReason::BadTe => "bad_te",
            StreamReason::BadContentLength => "bad_content_length",
            StreamReason::ContentLengthMismatch => "content_length_mismatch",
            StreamReason::HostMismatch => "host_mismatch",
            StreamReason::BadAuthority => "bad_authority",
            StreamReason::PseudoInTrailers => "pseudo_in_trailers",
            StreamReason::TrailersWithoutEndStream => "trailers_without_end_stream",
            StreamReason::InformationalEndStream => "informational_end_stream",
            StreamReason::DataBeforeHead => "data_before_head",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_codes_are_errors() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        names.extend(StreamReason::ALL.iter().map(|r| r.name()));
        let n = names.len();
        // A connection reason and a stream reason may share a name (flow_control...): they
        // are counted apart. Within each kind, names are unique.
        let mut conn: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        conn.sort_unstable();
        conn.dedup();
        assert_eq!(conn.len(), Reason::ALL.len());
        let mut stream: Vec<&str> = StreamReason::ALL.iter().map(|r| r.name()).collect();
        stream.sort_unstable();
        stream.dedup();
        assert_eq!(stream.len(), StreamReason::ALL.len());
        assert!(n > 50);
        for r in Reason::ALL {
            assert_ne!(r.code(), ErrorCode::NO_ERROR, "{r:?}");
            assert_ne!(r.code().name(), "UNKNOWN");
        }
        for r in StreamReason::ALL {
            assert_ne!(r.code(), ErrorCode::NO_ERROR, "{r:?}");
        }
        assert_eq!(ErrorCode(0xff).name(), "UNKNOWN");
    }
}
