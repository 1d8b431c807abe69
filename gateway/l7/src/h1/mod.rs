//! HTTP/1.1 (RFC 9112) as a proxy's front end reads it: request heads, body framing, the
//! fields a proxy must not forward, and which responses have a body.
//!
//! # What a request goes through
//! 1. [`HeadParser::parse`] is given the connection's unconsumed bytes after every read. It
//!    scans only the bytes it has not seen for the empty line that ends the head (so a head
//!    that trickles in a byte at a time costs linear time), refusing a bare CR as soon as it
//!    sees one and enforcing the limits on the way ([`Limits`]: a request-target longer than
//!    `max_uri_bytes` → 414, a head longer than `max_head_bytes` or with more than `max_fields`
//!    fields → 431). Only a complete head is handed to `httparse`, once.
//! 2. The head is then checked against the rules a proxy must enforce, and every failure is a
//!    [`Reject`]: answer its [`Reject::status`] and close the connection.
//!    - Syntax: obs-fold (a field line beginning with whitespace), a bare CR, whitespace
//!      between a field name and its colon, control characters, a version other than 1.0 or
//!      1.1 — 400.
//!    - Host (RFC 9112 §3.2): an HTTP/1.1 request needs exactly one Host field; HTTP/1.0 at
//!      most one; its value must be `host[:port]` — else 400. An absolute-form target's
//!      authority overrides Host (which must still be present in 1.1).
//!    - Targets (§3.2): origin-form for every method; absolute-form (`http` or `https`, no
//!      userinfo); authority-form only with CONNECT; asterisk-form only with OPTIONS; no
//!      fragment — else 400.
//!    - Framing (§6.1, §6.3), the request-smuggling defences: Transfer-Encoding with
//!      Content-Length, several Content-Length values that differ, a Content-Length that is not
//!      a plain decimal number (`+5`, `0x5`, `5 5`, overflow), a Transfer-Encoding whose last
//!      coding is not `chunked`, `chunked` given twice, Transfer-Encoding in an HTTP/1.0
//!      request — all 400. A coding before `chunked` (`gzip, chunked`) is valid HTTP that
//!      Sluice does not implement: 501 (§6.1's SHOULD). Identical repeated Content-Length values
//!      are one value (RFC 9110 §8.6). No framing field: no body.
//!    - Expect: `100-continue` is reported to the caller (1.1 only: §10.1.1 of RFC 9110 says a
//!      1.0 request's is ignored); any other expectation → 417.
//! 3. The caller gets a [`RequestHead`]: method, target (its form, path and query), version,
//!    the authority to route by, [`Framing`], whether the connection stays open afterwards
//!    (1.1: unless `Connection: close`; 1.0: only with `Connection: keep-alive`), Expect
//!    100-continue, and the protocol asked for by Upgrade (1.1, with `Connection: upgrade`).
//!    Fields are views into the caller's buffer; nothing of the head is copied.
//! 4. The body is read with a [`BodyDecoder`] made from the framing: it is fed whatever bytes
//!    arrive and hands back ranges of them that are body data, never buffering any. The
//!    chunked decoder checks sizes (hex digits only, no overflow), extensions (RFC 9112 §7.1.1
//!    grammar), the CRLF after each chunk's data, and the trailer section, whose field lines
//!    are checked like a head's (no obs-fold, no bare CR, a token and a colon) and handed back
//!    as ranges of the input to forward, except the fields [`NOT_IN_TRAILERS`] names (RFC 9110
//!    §6.5.1: framing, routing, authentication, controls...), which are dropped; chunked
//!    framing demands CRLF line ends. A failure is a [`BodyError`]: 400 (413 over the body
//!    limit) and close.
//!
//! [`RequestHead::is_hop_by_hop`] says which fields are not forwarded: Connection and every
//! field it names, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding and Upgrade (kept when
//! the request is being upgraded). Trailer is not hop-by-hop (RFC 9110 §6.6.2); the forwarding
//! code keeps it only where the trailer section goes too. [`response_body`] says whether a
//! response has a body: not for HEAD, 1xx, 204 and 304; a 101, or a 2xx to CONNECT, turns the
//! connection into a tunnel.
//!
//! # Known limits
//! - The request-target is checked for its form, not percent-encoding or dot-segments; routing
//!   sees the path as received.
//! - A trailer field named by the message's Connection field is not dropped for it: the
//!   decoder knows only the fixed list [`NOT_IN_TRAILERS`] (which has every fixed hop-by-hop
//!   name).
//! - A version other than 1.0 and 1.1 gets 400 (505 would be more precise).
//! - Field names with underscores are accepted like any token; whether to forward them is the
//!   forwarding code's decision.
//!
//! Hot path: yes. [`HeadParser::parse`] and [`BodyDecoder::decode`] allocate nothing (the
//! parser's field index is allocated once, in [`HeadParser::new`]).

mod body;
mod fields;
mod head;
mod response;

pub use body::{
    BodyDecoder, BodyError, MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES, MAX_TRAILER_PREFIX_BYTES, Step,
};
pub use fields::{HOP_BY_HOP, NOT_IN_TRAILERS, is_allowed_in_trailer, tokens};
pub use head::{Field, Framing, HeadParser, Limits, MAX_FIELDS, RequestHead, TargetForm};
pub use response::{ResponseBody, response_body};

/// An HTTP version this front end speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// A request method (RFC 9110 §9: case-sensitive tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: its response has no body.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// CONNECT: authority-form target; a 2xx answer makes a tunnel.
    Connect,
    /// OPTIONS: may have the asterisk-form target.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
    /// Any other token ([`RequestHead::method_str`] has it).
    Other,
}

impl Method {
    /// The method a token names.
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// Why a request head is refused. Each is answered with [`Reject::status`] and the connection
/// is closed: after a framing doubt nothing that follows on it can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The request line is not `method SP request-target SP HTTP-version`.
    RequestLine,
    /// A version other than HTTP/1.0 and HTTP/1.1.
    Version,
    /// A request-target of a form its method does not take, or malformed (a fragment,
    /// userinfo, a scheme other than http and https).
    Target,
    /// A field line that begins with whitespace: obs-fold (RFC 9112 §5.2).
    ObsFold,
    /// A CR not followed by LF (RFC 9112 §2.2).
    BareCr,
    /// Whitespace between a field name and its colon (RFC 9112 §5.1).
    SpaceBeforeColon,
    /// A field line without a colon, or a byte a field name cannot have.
    FieldName,
    /// A byte a field value cannot have (a control character).
    FieldValue,
    /// An HTTP/1.1 request without Host (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host field (RFC 9112 §3.2).
    DuplicateHost,
    /// A Host value, or an absolute-form target's authority, that is not `host[:port]`.
    BadHost,
    /// A Content-Length that is not a decimal number of at most 64 bits.
    BadContentLength,
    /// Content-Length values that differ (RFC 9112 §6.3 rule 5).
    ConflictingContentLength,
    /// Transfer-Encoding and Content-Length together (RFC 9112 §6.1).
    TransferEncodingWithContentLength,
    /// A Transfer-Encoding whose last coding is not `chunked` (RFC 9112 §6.3 rule 4).
    NotChunked,
    /// `chunked` applied more than once (RFC 9112 §7).
    ChunkedTwice,
    /// Transfer-Encoding in an HTTP/1.0 request: faulty framing (RFC 9112 §6.1).
    TransferEncodingHttp10,
    /// A transfer coding other than `chunked` before it: valid, not implemented.
    UnsupportedTransferCoding,
    /// An expectation other than `100-continue` (RFC 9110 §10.1.1).
    Expectation,
    /// A request-target longer than [`Limits::max_uri_bytes`].
    UriTooLong,
    /// A head longer than [`Limits::max_head_bytes`].
    HeadTooLarge,
    /// More fields than [`Limits::max_fields`].
    TooManyFields,
}

impl Reject {
    /// Every reason, in order.
    pub const ALL: &'static [Reject] = &[
        Reject::RequestLine,
        Reject::Version,
        Reject::Target,
        Reject::ObsFold,
        Reject::BareCr,
        Reject::SpaceBeforeColon,
        Reject::FieldName,
        Reject::FieldValue,
        Reject::MissingHost,
        Reject::DuplicateHost,
        Reject::BadHost,
        Reject::BadContentLength,
        Reject::ConflictingContentLength,
        Reject::TransferEncodingWithContentLength,
        Reject::NotChunked,
        Reject::ChunkedTwice,
        Reject::TransferEncodingHttp10,
        Reject::UnsupportedTransferCoding,
        Reject::Expectation,
        Reject::UriTooLong,
        Reject::HeadTooLarge,
        Reject::TooManyFields,
    ];

    /// The status to answer with.
    pub const fn status(self) -> u16 {
        match self {
            Reject::UriTooLong => 414,
            Reject::HeadTooLarge | Reject::TooManyFields => 431,
            Reject::UnsupportedTransferCoding => 501,
            Reject::Expectation => 417,
            _ => 400,
        }
    }

    /// A stable snake_case name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::RequestLine => "request_line",
            Reject::Version => "version",
            Reject::Target => "target",
            Reject::ObsFold => "obs_fold",
            Reject::BareCr => "bare_cr",
            Reject::SpaceBeforeColon => "space_before_colon",
            Reject::FieldName => "field_name",
            Reject::FieldValue => "field_value",
            Reject::MissingHost => "missing_host",
            Reject::DuplicateHost => "duplicate_host",
            Reject::BadHost => "bad_host",
            Reject::BadContentLength => "bad_content_length",
            Reject::ConflictingContentLength => "conflicting_content_length",
            Reject::TransferEncodingWithContentLength => "transfer_encoding_with_content_length",
            Reject::NotChunked => "not_chunked",
            Reject::ChunkedTwice => "chunked_twice",
            Reject::TransferEncodingHttp10 => "transfer_encoding_http10",
            Reject::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Reject::Expectation => "expectation",
            Reject::UriTooLong => "uri_too_long",
            Reject::HeadTooLarge => "head_too_large",
            Reject::TooManyFields => "too_many_fields",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_names_are_unique_and_statuses_are_client_errors_or_501() {
        let mut names: Vec<&str> = Reject::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reject::ALL.len());
        for r in Reject::ALL {
            assert!(matches!(r.status(), 400 | 414 | 417 | 431 | 501), "{r:?}");
        }
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_token("GET"), Method::Get);
        assert_eq!(Method::from_token("get"), Method::Other);
        assert_eq!(Method::from_token("CONNECT"), Method::Connect);
    }
}
