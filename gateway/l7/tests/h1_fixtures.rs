//! HTTP/1.1 framing and smuggling fixtures: each case is bytes in and the outcome expected, and
//! every case is also fed split in two at every byte, and one byte at a time, through the same
//! parser or decoder: the outcome must not depend on how the bytes arrived.

use sluice_l7::h1::{
    BodyDecoder, BodyError, Framing, HeadParser, Limits, MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES, Method,
    NOT_IN_TRAILERS, Reject, RequestHead, TargetForm, Version,
};

/// Small limits, so that the limit cases stay readable.
const LIMITS: Limits = Limits { max_head_bytes: 256, max_uri_bytes: 64, max_fields: 8 };

/// Everything a head says, owned, to compare heads parsed from differently split input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    method: Method,
    target: String,
    form: TargetForm,
    path: String,
    query: Option<String>,
    authority: String,
    version: Version,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<String>,
    head_len: usize,
    fields: Vec<(String, Vec<u8>)>,
}

impl Summary {
    fn of(h: &RequestHead<'_>) -> Summary {
        Summary {
            method: h.method(),
            target: h.target().into(),
            form: h.form(),
            path: h.path().into(),
            query: h.query().map(Into::into),
            authority: h.authority().into(),
            version: h.version(),
            framing: h.framing(),
            keep_alive: h.keep_alive(),
            expect_continue: h.expect_continue(),
            upgrade: h.upgrade().map(Into::into),
            head_len: h.head_len(),
            fields: h.fields().map(|f| (f.name.into(), f.value.to_vec())).collect(),
        }
    }
}

type Outcome = Result<Option<Summary>, Reject>;

fn parse_once(p: &mut HeadParser, bytes: &[u8]) -> Outcome {
    p.parse(bytes).map(|h| h.as_ref().map(Summary::of))
}

/// What a head fixture expects: the framing of a head, or a refusal.
type Want = Result<Framing, Reject>;

const OK: Want = Ok(Framing::None);

#[rustfmt::skip]
const HEADS: &[(&str, &[u8], Want)] = &[
    // Accepted heads.
    ("plain GET", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", OK),
    ("Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Ok(Framing::ContentLength(5))),
    ("Content-Length 0", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Ok(Framing::ContentLength(0))),
    ("identical Content-Length fields", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Ok(Framing::ContentLength(5))),
    ("identical Content-Length list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Ok(Framing::ContentLength(5))),
    ("Content-Length leading zeros", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", Ok(Framing::ContentLength(7))),
    ("Content-Length u64::MAX", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", Ok(Framing::ContentLength(u64::MAX))),
    ("chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Ok(Framing::Chunked)),
    ("chunked, any case", b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n", Ok(Framing::Chunked)),
    ("chunked after an empty list", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(Framing::Chunked)),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n", OK),
    ("empty lines before the request line", b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", OK),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", OK),
    ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", OK),
    ("IPv6 Host", b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", OK),
    ("absolute form", b"GET http://a.example/x HTTP/1.1\r\nHost: b\r\n\r\n", OK),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", OK),
    ("CONNECT", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", OK),
    ("obs-text in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", OK),
    ("Expect: 100-continue", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", Ok(Framing::ContentLength(1))),
    ("eight fields", b"GET / HTTP/1.1\r\nHost: a\r\n2: x\r\n3: x\r\n4: x\r\n5: x\r\n6: x\r\n7: x\r\n8: x\r\n\r\n", OK),

    // Framing: the request-smuggling cases (RFC 9112 §6.1, §6.3).
    ("TE and CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Err(Reject::TransferEncodingWithContentLength)),
    ("CL and TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Err(Reject::TransferEncodingWithContentLength)),
    ("TE and a bad CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n", Err(Reject::TransferEncodingWithContentLength)),
    ("differing CL fields", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Err(Reject::ConflictingContentLength)),
    ("differing CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", Err(Reject::ConflictingContentLength)),
    ("CL +5", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL -1", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL 0x5", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL 5 5", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL empty element", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", Err(Reject::BadContentLength)),
    ("CL 5.0", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", Err(Reject::BadContentLength)),
    ("TE gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Err(Reject::NotChunked)),
    ("TE identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Err(Reject::NotChunked)),
    ("TE chunked, gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Err(Reject::NotChunked)),
    ("TE chunked then gzip field", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", Err(Reject::NotChunked)),
    ("TE empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Err(Reject::NotChunked)),
    ("TE xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Err(Reject::NotChunked)),
    ("TE chunked with a parameter", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", Err(Reject::NotChunked)),
    ("TE chunked, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Err(Reject::ChunkedTwice)),
    ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(Reject::UnsupportedTransferCoding)),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(Reject::TransferEncodingHttp10)),

    // Syntax.
    ("obs-fold with a space", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Err(Reject::ObsFold)),
    ("obs-fold with a tab", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", Err(Reject::ObsFold)),
    ("whitespace before the first field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", Err(Reject::ObsFold)),
    ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Err(Reject::BareCr)),
    ("bare CR in the request line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::BareCr)),
    ("bare CR before the request line", b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::BareCr)),
    ("bare CR as the end", b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", Err(Reject::BareCr)),
    ("space before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Err(Reject::SpaceBeforeColon)),
    ("TE with a space before the colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", Err(Reject::SpaceBeforeColon)),
    ("tab before the colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Err(Reject::SpaceBeforeColon)),
    ("a field without colon", b"GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n", Err(Reject::FieldName)),
    ("a bad byte in a name", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", Err(Reject::FieldName)),
    ("an empty name", b"GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", Err(Reject::FieldName)),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Err(Reject::FieldValue)),
    ("DEL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", Err(Reject::FieldValue)),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Err(Reject::Version)),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Err(Reject::Version)),
    ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", Err(Reject::Version)),
    ("two spaces", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::RequestLine)),
    ("space after the version", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Err(Reject::RequestLine)),
    ("no target", b"GET\r\nHost: a\r\n\r\n", Err(Reject::RequestLine)),
    ("space before the method", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::RequestLine)),

    // Host (RFC 9112 §3.2).
    ("1.1 without Host", b"GET / HTTP/1.1\r\nX: a\r\n\r\n", Err(Reject::MissingHost)),
    ("1.1 absolute form without Host", b"GET http://a/ HTTP/1.1\r\n\r\n", Err(Reject::MissingHost)),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Err(Reject::DuplicateHost)),
    ("two Hosts in 1.0", b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", Err(Reject::DuplicateHost)),
    ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Err(Reject::BadHost)),
    ("Host with a path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Err(Reject::BadHost)),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Err(Reject::BadHost)),
    ("Host port too big", b"GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", Err(Reject::BadHost)),
    ("Host IPv6 unclosed", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Err(Reject::BadHost)),
    ("absolute form without host", b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::BadHost)),

    // Targets (RFC 9112 §3.2).
    ("GET *", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("a relative target", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("a fragment", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("userinfo", b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("another scheme", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("CONNECT to a path", b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),
    ("CONNECT without port", b"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", Err(Reject::Target)),

    ("Expect something else", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Err(Reject::Expectation)),

    // Limits (LIMITS: 256-byte head, 64-byte target, 8 fields; the rest in generated_heads).
    ("nine fields", b"GET / HTTP/1.1\r\nHost: a\r\n2: x\r\n3: x\r\n4: x\r\n5: x\r\n6: x\r\n7: x\r\n8: x\r\n9: x\r\n\r\n", Err(Reject::TooManyFields)),
];

/// The head fixtures that need generated bytes: the head limit, exactly and over.
fn generated_heads() -> Vec<(&'static str, Vec<u8>, Want)> {
    let head_of = |len: usize| {
        let mut h = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        let pad = len - h.len() - 4;
        h.extend(std::iter::repeat_n(b'v', pad));
        h.extend_from_slice(b"\r\n\r\n");
        assert_eq!(h.len(), len);
        h
    };
    let target_of = |len: usize| {
        let mut h = b"GET /".to_vec();
        h.extend(std::iter::repeat_n(b'a', len - 1));
        h.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        h
    };
    let mut endless_target = b"GET /".to_vec();
    endless_target.extend(std::iter::repeat_n(b'a', 300));
    let mut endless_field = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    endless_field.extend(std::iter::repeat_n(b'v', 300));
    let mut endless_method = vec![b'G'; 300];
    endless_method.extend_from_slice(b" / HTTP/1.1\r\n\r\n");
    vec![
        ("a target of exactly the limit", target_of(64), OK),
        ("a target one byte over the limit", target_of(65), Err(Reject::UriTooLong)),
        ("a head of exactly the limit", head_of(256), OK),
        ("a head one byte over the limit", head_of(257), Err(Reject::HeadTooLarge)),
        ("a target that never ends", endless_target, Err(Reject::UriTooLong)),
        ("a field that never ends", endless_field, Err(Reject::HeadTooLarge)),
        ("a method that never ends", endless_method, Err(Reject::HeadTooLarge)),
        ("empty lines that never end", b"\r\n".repeat(200), Err(Reject::HeadTooLarge)),
    ]
}

fn all_heads() -> Vec<(&'static str, Vec<u8>, Want)> {
    HEADS.iter().map(|&(d, b, w)| (d, b.to_vec(), w)).chain(generated_heads()).collect()
}

#[test]
fn head_fixtures_whole() {
    for (desc, bytes, want) in all_heads() {
        let mut p = HeadParser::new(LIMITS);
        let got = parse_once(&mut p, &bytes).map(|h| h.map(|s| s.framing));
        match want {
            Ok(framing) => assert_eq!(got, Ok(Some(framing)), "{desc}"),
            Err(reject) => assert_eq!(got, Err(reject), "{desc}"),
        }
    }
}

/// Feeds `bytes[..k]` for each `k` in `cuts`, then all of `bytes`, to one parser, as a
/// connection that receives them in pieces would: each outcome before the last must be "not
/// yet", or already the final outcome.
fn feed_growing(p: &mut HeadParser, bytes: &[u8], cuts: impl Iterator<Item = usize>) -> Outcome {
    for k in cuts {
        let o = parse_once(p, &bytes[..k]);
        if o != Ok(None) {
            return o;
        }
    }
    parse_once(p, bytes)
}

#[test]
fn head_fixtures_split_at_every_byte() {
    for (desc, bytes, _) in all_heads() {
        let whole = parse_once(&mut HeadParser::new(LIMITS), &bytes);
        for k in 0..bytes.len() {
            let mut p = HeadParser::new(LIMITS);
            assert_eq!(feed_growing(&mut p, &bytes, [k].into_iter()), whole, "{desc}: split at {k}");
        }
        let mut p = HeadParser::new(LIMITS);
        assert_eq!(feed_growing(&mut p, &bytes, 0..bytes.len()), whole, "{desc}: byte by byte");
    }
}

#[test]
fn an_early_prefix_is_not_yet_a_head_and_an_early_error_is_the_final_one() {
    for (desc, bytes, _) in all_heads() {
        let whole = parse_once(&mut HeadParser::new(LIMITS), &bytes);
        for k in 0..bytes.len() {
            let o = parse_once(&mut HeadParser::new(LIMITS), &bytes[..k]);
            match (&o, &whole) {
                (Ok(None), _) => {}
                (Err(e), Err(w)) => assert_eq!(e, w, "{desc}: prefix {k}"),
                // A head is complete before the body's bytes arrive.
                (Ok(Some(h)), Ok(Some(w))) => assert_eq!(h, w, "{desc}: prefix {k}"),
                _ => panic!("{desc}: prefix {k} gave {o:?}, the whole {whole:?}"),
            }
        }
    }
}

#[test]
fn every_reject_has_a_fixture() {
    let heads = all_heads();
    for r in Reject::ALL {
        assert!(heads.iter().any(|(_, _, w)| *w == Err(*r)), "no fixture for {r:?}");
    }
}

/// What a body fixture expects: the data and where the body ended (`None`: not yet), or an error.
type BodyWant = Result<(&'static [u8], Option<usize>), BodyError>;

#[rustfmt::skip]
const BODIES: &[(&str, Framing, &[u8], BodyWant)] = &[
    ("content-length", Framing::ContentLength(5), b"helloGET", Ok((b"hello", Some(5)))),
    ("content-length, short", Framing::ContentLength(5), b"hel", Ok((b"hel", None))),
    ("no body", Framing::None, b"GET", Ok((b"", Some(0)))),
    ("one chunk", Framing::Chunked, b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", Some(15)))),
    ("then the next request", Framing::Chunked, b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1", Ok((b"hello", Some(15)))),
    ("several chunks", Framing::Chunked, b"3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", Ok((b"abcdef", Some(26)))),
    ("hex sizes, any case", Framing::Chunked, b"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", Ok((b"01234567890123456789", Some(35)))),
    ("leading zeros", Framing::Chunked, b"0005\r\nhello\r\n000\r\n\r\n", Ok((b"hello", Some(20)))),
    ("extensions", Framing::Chunked, b"5;a=b;c\r\nhello\r\n0;last\r\n\r\n", Ok((b"hello", Some(26)))),
    ("extensions with whitespace", Framing::Chunked, b"5 ; a = b\t;c\r\nhello\r\n0\r\n\r\n", Ok((b"hello", Some(26)))),
    ("quoted extension", Framing::Chunked, b"5;a=\"x; \\\"y\\\"\"\r\nhello\r\n0\r\n\r\n", Ok((b"hello", Some(28)))),
    ("trailers", Framing::Chunked, b"5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\n\r\n", Ok((b"hello", Some(27)))),
    ("incomplete", Framing::Chunked, b"5\r\nhel", Ok((b"hel", None))),
    ("incomplete size", Framing::Chunked, b"5", Ok((b"", None))),
    ("the largest size", Framing::Chunked, b"ffffffffffffffff\r\n", Ok((b"", None))),
    ("a CRLF in the data", Framing::Chunked, b"4\r\n\r\n\r\n\r\n0\r\n\r\n", Ok((b"\r\n\r\n", Some(14)))),

    ("not hex", Framing::Chunked, b"g\r\n", Err(BodyError::ChunkSize)),
    ("no size", Framing::Chunked, b"\r\nhello", Err(BodyError::ChunkSize)),
    ("space before the size", Framing::Chunked, b" 5\r\nhello\r\n0\r\n\r\n", Err(BodyError::ChunkSize)),
    ("0x", Framing::Chunked, b"0x5\r\nhello", Err(BodyError::ChunkSize)),
    ("signed", Framing::Chunked, b"+5\r\nhello", Err(BodyError::ChunkSize)),
    ("negative", Framing::Chunked, b"-5\r\nhello", Err(BodyError::ChunkSize)),
    ("overflow", Framing::Chunked, b"10000000000000000\r\n", Err(BodyError::ChunkSizeOverflow)),
    ("a far overflow", Framing::Chunked, b"fffffffffffffffffffffffffffffff5\r\nhello", Err(BodyError::ChunkSizeOverflow)),
    ("bare LF after the size", Framing::Chunked, b"5\nhello\r\n0\r\n\r\n", Err(BodyError::LineEnding)),
    ("CR CR after the size", Framing::Chunked, b"5\r\rhello", Err(BodyError::LineEnding)),
    ("more data than the size", Framing::Chunked, b"5\r\nhelloX\r\n0\r\n\r\n", Err(BodyError::ChunkDataEnd)),
    ("bare LF after the data", Framing::Chunked, b"5\r\nhello\n0\r\n\r\n", Err(BodyError::ChunkDataEnd)),
    ("CR without LF after the data", Framing::Chunked, b"5\r\nhello\rX0\r\n\r\n", Err(BodyError::LineEnding)),
    ("whitespace after the size", Framing::Chunked, b"5 \r\nhello\r\n0\r\n\r\n", Err(BodyError::ChunkExtension)),
    ("an empty extension", Framing::Chunked, b"5;\r\nhello", Err(BodyError::ChunkExtension)),
    ("an empty extension value", Framing::Chunked, b"5;a=\r\nhello", Err(BodyError::ChunkExtension)),
    ("an unterminated quote", Framing::Chunked, b"5;a=\"x\r\nhello", Err(BodyError::ChunkExtension)),
    ("two names", Framing::Chunked, b"5;a b\r\nhello", Err(BodyError::ChunkExtension)),
    ("a bad byte in an extension", Framing::Chunked, b"5;a=b\x01\r\nhello", Err(BodyError::ChunkExtension)),
    ("bare LF in an extension", Framing::Chunked, b"5;a\nhello", Err(BodyError::ChunkExtension)),
    ("obs-fold in the trailers", Framing::Chunked, b"0\r\nX: a\r\n b\r\n\r\n", Err(BodyError::Trailer)),
    ("space before a trailer's colon", Framing::Chunked, b"0\r\nX : a\r\n\r\n", Err(BodyError::Trailer)),
    ("a trailer without colon", Framing::Chunked, b"0\r\nX\r\n\r\n", Err(BodyError::Trailer)),
    ("NUL in a trailer", Framing::Chunked, b"0\r\nX: a\0\r\n\r\n", Err(BodyError::Trailer)),
    ("bare LF in a trailer", Framing::Chunked, b"0\r\nX: a\n\r\n", Err(BodyError::LineEnding)),
    ("bare CR in a trailer", Framing::Chunked, b"0\r\nX: a\rb\r\n\r\n", Err(BodyError::LineEnding)),
    ("bare CR in a trailer's name", Framing::Chunked, b"0\r\nX\r: a\r\n\r\n", Err(BodyError::Trailer)),
    // A line that is dropped is checked all the same: the framing around it must hold.
    ("obs-fold after a dropped trailer", Framing::Chunked, b"0\r\nHost: a\r\n b\r\n\r\n", Err(BodyError::Trailer)),
    ("bare CR in a dropped trailer", Framing::Chunked, b"0\r\nContent-Length: 1\r2\r\n\r\n", Err(BodyError::LineEnding)),
    ("space before a dropped trailer's colon", Framing::Chunked, b"0\r\nHost : a\r\n\r\n", Err(BodyError::Trailer)),
    ("a bad byte in a long trailer name", Framing::Chunked, b"0\r\nX-A-Trailer-Name-Longer-Than-Any(: a\r\n\r\n", Err(BodyError::Trailer)),
    ("bare LF as the end", Framing::Chunked, b"0\r\n\n", Err(BodyError::LineEnding)),
    ("CR CR as the end", Framing::Chunked, b"0\r\n\r\r", Err(BodyError::LineEnding)),
];

/// The body fixtures that need generated bytes: the line and trailer limits.
fn generated_bodies() -> Vec<(&'static str, Framing, Vec<u8>, BodyWant)> {
    let ext = |n: usize| {
        let mut b = b"5;".to_vec();
        b.extend(std::iter::repeat_n(b'a', n));
        b.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        b
    };
    let trailer = |n: usize| {
        let mut b = b"0\r\nX: ".to_vec();
        b.extend(std::iter::repeat_n(b'v', n));
        b.extend_from_slice(b"\r\n\r\n");
        b
    };
    let line = MAX_CHUNK_LINE_BYTES - 2;
    let value = MAX_TRAILER_BYTES - b"X: \r\n\r\n".len();
    vec![
        (
            "a chunk line of the limit",
            Framing::Chunked,
            ext(line),
            Ok((b"hello", Some(line + 2 + 2 + 7 + 5))),
        ),
        ("a chunk line over the limit", Framing::Chunked, ext(line + 1), Err(BodyError::ChunkLineTooLong)),
        ("trailers of the limit", Framing::Chunked, trailer(value), Ok((b"", Some(3 + MAX_TRAILER_BYTES)))),
        ("trailers over the limit", Framing::Chunked, trailer(value + 1), Err(BodyError::TrailerTooLarge)),
    ]
}

fn all_bodies() -> Vec<(&'static str, Framing, Vec<u8>, BodyWant)> {
    BODIES.iter().map(|&(d, f, b, w)| (d, f, b.to_vec(), w)).chain(generated_bodies()).collect()
}

/// Decodes `pieces` in order, as separate reads: the data, and the offset (in all the bytes)
/// where the body ended.
fn decode_pieces(framing: Framing, pieces: &[&[u8]]) -> Result<(Vec<u8>, Option<usize>), BodyError> {
    let mut d = BodyDecoder::new(framing, None)?;
    let (mut data, mut offset) = (Vec::new(), 0);
    for piece in pieces {
        if let Some(end) = d.decode_piece(piece, |b| data.extend_from_slice(b))? {
            assert!(d.is_done());
            return Ok((data, Some(offset + end)));
        }
        offset += piece.len();
    }
    Ok((data, None))
}

fn body_want(want: BodyWant) -> Result<(Vec<u8>, Option<usize>), BodyError> {
    want.map(|(d, end)| (d.to_vec(), end))
}

#[test]
fn body_fixtures_whole() {
    for (desc, framing, bytes, want) in all_bodies() {
        assert_eq!(decode_pieces(framing, &[&bytes]), body_want(want), "{desc}");
    }
}

#[test]
fn body_fixtures_split_at_every_byte() {
    for (desc, framing, bytes, want) in all_bodies() {
        let want = body_want(want);
        // The generated limit cases run to 16 KiB: every split near their ends and where their
        // framing is, every 97th byte in between (all of them would take a quarter of a minute).
        let n = bytes.len();
        let splits = (0..=n).filter(|&k| n <= 1024 || k < 512 || k + 512 > n || k % 97 == 0);
        for k in splits {
            let (a, b) = bytes.split_at(k);
            assert_eq!(decode_pieces(framing, &[a, b]), want, "{desc}: split at {k}");
        }
        let bytes_one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_pieces(framing, &bytes_one_by_one), want, "{desc}: byte by byte");
    }
}

#[test]
fn every_body_error_but_the_limit_has_a_fixture() {
    let bodies = all_bodies();
    let errors = [
        BodyError::ChunkSize,
        BodyError::ChunkSizeOverflow,
        BodyError::ChunkExtension,
        BodyError::ChunkLineTooLong,
        BodyError::LineEnding,
        BodyError::ChunkDataEnd,
        BodyError::Trailer,
        BodyError::TrailerTooLarge,
    ];
    for e in errors {
        assert!(bodies.iter().any(|(_, _, _, w)| *w == Err(e)), "no fixture for {e:?}");
    }
}

/// A trailer fixture: description, chunked body, its data, the trailer field lines forwarded (as
/// received, without the dropped ones), and where the body ends.
type TrailerCase = (&'static str, &'static [u8], &'static [u8], &'static [u8], usize);

#[rustfmt::skip]
const TRAILERS: &[TrailerCase] = &[
    ("none", b"3\r\nabc\r\n0\r\n\r\n", b"abc", b"", 13),
    ("one field", b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\n\r\n", b"abc", b"X-Checksum: 1234\r\n", 31),
    ("after an extension on the last chunk", b"0;x=1\r\nX: 1\r\n\r\n", b"", b"X: 1\r\n", 15),
    ("values as received: whitespace, empty, obs-text", b"0\r\nA:  x \t\r\nB:\r\nC: caf\xc3\xa9\r\n\r\n", b"", b"A:  x \t\r\nB:\r\nC: caf\xc3\xa9\r\n", 28),
    ("names as received", b"0\r\ngrpc-STATUS: 0\r\n\r\n", b"", b"grpc-STATUS: 0\r\n", 21),
    ("framing fields dropped", b"0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n", b"", b"X-A: 1\r\n", 60),
    ("dropped fields between kept ones", b"0\r\nX-A: 1\r\nHost: evil\r\nX-B: 2\r\nconnection: close\r\nTE: trailers\r\nX-C: 3\r\n\r\n", b"", b"X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n", 74),
    ("dropped in any case", b"0\r\nCONTENT-length: 5\r\ntRaIlEr: x\r\nKeep-Alive: 1\r\nUpgrade: h2c\r\n\r\n", b"", b"", 65),
    ("authentication, cookies, forwarding fields", b"0\r\nAuthorization: Basic eA==\r\nSet-Cookie: a=b\r\nCookie: c=d\r\nX-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n\r\n", b"", b"", 108),
    ("controls and content format", b"0\r\nCache-Control: no-store\r\nIf-Match: *\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nLocation: /x\r\n\r\n", b"", b"", 106),
    ("the longest dropped names", b"0\r\nProxy-Authorization: x\r\nIf-Unmodified-Since: y\r\n\r\n", b"", b"", 53),
    ("names close to dropped ones are kept", b"0\r\nHos: 1\r\nHosts: 2\r\nContent: 3\r\nContent-Lengthy: 4\r\nProxy-Authorizations: 5\r\n\r\n", b"", b"Hos: 1\r\nHosts: 2\r\nContent: 3\r\nContent-Lengthy: 4\r\nProxy-Authorizations: 5\r\n", 80),
    ("a name longer than any dropped one", b"0\r\nX-A-Rather-Long-Trailer-Field-Name: v\r\n\r\n", b"", b"X-A-Rather-Long-Trailer-Field-Name: v\r\n", 44),
    ("a one-byte name and the next request", b"0\r\nX:1\r\n\r\nGET / HTTP/1.1\r\n", b"", b"X:1\r\n", 10),
];

/// Decodes `pieces` in order, as separate reads: the data, the trailer lines forwarded, and the
/// offset where the body ended.
/// A decoded body: its data, the trailer lines forwarded, and where it ended.
type Decoded = Result<(Vec<u8>, Vec<u8>, Option<usize>), BodyError>;

fn decode_with_trailer(pieces: &[&[u8]]) -> Decoded {
    let mut d = BodyDecoder::new(Framing::Chunked, None)?;
    let (mut data, mut trailer, mut offset) = (Vec::new(), Vec::new(), 0);
    for piece in pieces {
        let end = d.decode_piece_with_trailer(
            piece,
            |b| data.extend_from_slice(b),
            |t| {
                assert!(!t.is_empty(), "no empty trailer pieces");
                trailer.extend_from_slice(t)
            },
        )?;
        if let Some(end) = end {
            return Ok((data, trailer, Some(offset + end)));
        }
        offset += piece.len();
    }
    Ok((data, trailer, None))
}

#[test]
fn trailer_fixtures_whole_split_at_every_byte_and_byte_by_byte() {
    for &(desc, bytes, data, trailer, end) in TRAILERS {
        let want = Ok((data.to_vec(), trailer.to_vec(), Some(end)));
        assert_eq!(decode_with_trailer(&[bytes]), want, "{desc}");
        for k in 0..=bytes.len() {
            let (a, b) = bytes.split_at(k);
            assert_eq!(decode_with_trailer(&[a, b]), want, "{desc}: split at {k}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_with_trailer(&one_by_one), want, "{desc}: byte by byte");
        // Without a trailer sink, the same data and end.
        assert_eq!(decode_pieces(Framing::Chunked, &[bytes]), Ok((data.to_vec(), Some(end))), "{desc}");
    }
}

#[test]
fn every_dropped_field_is_dropped_and_the_lines_around_it_kept() {
    for name in NOT_IN_TRAILERS {
        let body = format!("0\r\nX-Before: 1\r\n{name}: v\r\nX-After: 2\r\n\r\n");
        let bytes = body.as_bytes();
        let want = Ok((vec![], b"X-Before: 1\r\nX-After: 2\r\n".to_vec(), Some(bytes.len())));
        for k in 0..=bytes.len() {
            let (a, b) = bytes.split_at(k);
            assert_eq!(decode_with_trailer(&[a, b]), want, "{name}: split at {k}");
        }
        // One byte longer is another field, and kept.
        let body = format!("0\r\n{name}x: v\r\n\r\n");
        let want = Ok((vec![], format!("{name}x: v\r\n").into_bytes(), Some(body.len())));
        assert_eq!(decode_with_trailer(&[body.as_bytes()]), want, "{name}x");
    }
}
