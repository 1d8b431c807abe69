//! Arbitrary and mutated input for the HTTP/1.1 head parser and body decoder: nothing panics,
//! and the outcome never depends on how the bytes were split into reads. Chunked bodies made
//! of random chunks, extensions and trailers decode back to their data.

use proptest::prelude::*;
use sluice_l7::h1::{BodyDecoder, BodyError, Framing, HeadParser, Limits, Reject};

const LIMITS: Limits = Limits { max_head_bytes: 512, max_uri_bytes: 128, max_fields: 16 };

/// A head's outcome, reduced to what can be compared across parses.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    NotYet,
    Head { len: usize, framing: Framing, authority: String, path: String, fields: usize, keep_alive: bool },
    Reject(Reject),
}

fn parse(p: &mut HeadParser, bytes: &[u8]) -> Outcome {
    match p.parse(bytes) {
        Ok(None) => Outcome::NotYet,
        Ok(Some(h)) => {
            assert!(h.head_len() <= bytes.len() && h.head_len() <= LIMITS.max_head_bytes);
            assert!(h.fields().all(|f| !f.name.is_empty()));
            Outcome::Head {
                len: h.head_len(),
                framing: h.framing(),
                authority: h.authority().into(),
                path: h.path().into(),
                fields: h.fields().count(),
                keep_alive: h.keep_alive(),
            }
        }
        Err(r) => Outcome::Reject(r),
    }
}

/// Feeds growing prefixes of `bytes`, cut at `cuts` (sorted), then all of it, to one parser.
fn parse_in_reads(bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut p = HeadParser::new(LIMITS);
    for &k in cuts {
        let o = parse(&mut p, &bytes[..k.min(bytes.len())]);
        if o != Outcome::NotYet {
            return o;
        }
    }
    parse(&mut p, bytes)
}

/// Valid heads to mutate.
const BASES: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"POST /up?x=1 HTTP/1.1\r\nHost: a:80\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://b.example/x HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

/// Bytes that matter to HTTP/1.1 framing.
const INTERESTING: &[u8] = b"\r\n \t:,;\0\x7f\x80aZ0-/?#[]@\"\\";

fn mutation() -> impl Strategy<Value = (usize, u8, u8)> {
    (any::<usize>(), 0u8..3, prop::sample::select(INTERESTING))
}

/// Applies (position, kind, byte) mutations: replace, insert, or delete.
fn mutate(base: &[u8], ops: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(pos, kind, byte) in ops {
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match kind {
            0 if at < b.len() => b[at] = byte,
            1 => b.insert(at, byte),
            _ if at < b.len() => {
                b.remove(at);
            }
            _ => {}
        }
    }
    b
}

fn sorted(mut cuts: Vec<usize>) -> Vec<usize> {
    cuts.sort_unstable();
    cuts
}

/// Decodes `bytes` split at `cuts`: the data and the offset where the body ended, or the error.
fn decode_in_reads(
    framing: Framing,
    bytes: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Option<usize>), BodyError> {
    let mut d = BodyDecoder::new(framing, None)?;
    let (mut data, mut from) = (Vec::new(), 0);
    for to in cuts.iter().map(|&c| c.min(bytes.len())).chain([bytes.len()]) {
        if to < from {
            continue;
        }
        if let Some(end) = d.decode_piece(&bytes[from..to], |b| data.extend_from_slice(b))? {
            return Ok((data, Some(from + end)));
        }
        from = to;
    }
    Ok((data, None))
}

/// A decoded body: its data, the trailer lines forwarded, and where it ended.
type Decoded = Result<(Vec<u8>, Vec<u8>, Option<usize>), BodyError>;

/// [`decode_in_reads`], with the trailer lines forwarded.
fn decode_in_reads_with_trailer(bytes: &[u8], cuts: &[usize]) -> Decoded {
    let mut d = BodyDecoder::new(Framing::Chunked, None)?;
    let (mut data, mut trailer, mut from) = (Vec::new(), Vec::new(), 0);
    for to in cuts.iter().map(|&c| c.min(bytes.len())).chain([bytes.len()]) {
        if to < from {
            continue;
        }
        let piece = &bytes[from..to];
        if let Some(end) = d.decode_piece_with_trailer(
            piece,
            |b| data.extend_from_slice(b),
            |t| trailer.extend_from_slice(t),
        )? {
            return Ok((data, trailer, Some(from + end)));
        }
        from = to;
    }
    Ok((data, trailer, None))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes: no panic, and reads of any size give the outcome of one read.
    #[test]
    fn arbitrary_bytes_parse_alike_however_split(
        bytes in prop::collection::vec(any::<u8>(), 0..700),
        cuts in prop::collection::vec(0usize..700, 0..8),
    ) {
        let whole = parse(&mut HeadParser::new(LIMITS), &bytes);
        prop_assert_eq!(parse_in_reads(&bytes, &sorted(cuts)), whole);
    }

    /// Valid heads with a few bytes replaced, inserted or deleted: no panic, and the outcome of
    /// one read, byte by byte too.
    #[test]
    fn mutated_heads_parse_alike_however_split(
        base in prop::sample::select(BASES),
        ops in prop::collection::vec(mutation(), 1..4),
        cuts in prop::collection::vec(0usize..200, 0..6),
    ) {
        let bytes = mutate(base, &ops);
        let whole = parse(&mut HeadParser::new(LIMITS), &bytes);
        prop_assert_eq!(parse_in_reads(&bytes, &sorted(cuts)), parse(&mut HeadParser::new(LIMITS), &bytes));
        let every: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(parse_in_reads(&bytes, &every), whole);
    }

    /// Arbitrary bytes as a chunked body: no panic, data ranges inside the input, and the same
    /// data, end and error however the bytes are split.
    #[test]
    fn arbitrary_chunked_bytes_decode_alike_however_split(
        bytes in prop::collection::vec(prop::sample::select(b"0123456789abcdefABCDEFgx\r\n ;=\"\t:\\".as_slice()), 0..200),
        cuts in prop::collection::vec(0usize..200, 0..8),
    ) {
        let whole = decode_in_reads(Framing::Chunked, &bytes, &[]);
        prop_assert_eq!(decode_in_reads(Framing::Chunked, &bytes, &sorted(cuts)), whole);
    }

    /// Arbitrary trailer sections, made of field-line pieces and the names of fields that are
    /// dropped: the same data, trailer lines forwarded, end and error however the bytes are split.
    #[test]
    fn arbitrary_trailer_sections_decode_alike_however_split(
        parts in prop::collection::vec(prop::sample::select(vec![
            "Host", "hOST", "Content-Length", "TE", "X-A", "Proxy-Authorization", "If-Unmodified-Since",
            "X-A-Trailer-Name-Longer-Than-Any", ":", ": v", " ", "\t", "\r\n", "\r", "\n", "(",
        ]), 0..30),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let bytes = ["0\r\n", &parts.concat()].concat().into_bytes();
        let whole = decode_in_reads_with_trailer(&bytes, &[]);
        prop_assert_eq!(decode_in_reads_with_trailer(&bytes, &sorted(cuts)), whole);
    }

    /// Fully arbitrary bytes: no panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_body_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(0usize..300, 0..8),
        len in any::<u64>(),
    ) {
        let _ = decode_in_reads(Framing::Chunked, &bytes, &sorted(cuts.clone()));
        let _ = decode_in_reads(Framing::ContentLength(len), &bytes, &sorted(cuts));
    }

    /// Random chunks, extensions and trailers, encoded, decode back to the data, the trailer
    /// lines that may be forwarded, and end exactly where the body does, however split.
    #[test]
    fn chunked_round_trip(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..6),
        ext in prop::sample::select(vec!["", ";a", ";a=b", " ;a = \"q\\\"\"", ";x;y=z"]),
        zeros in 1usize..4,
        upper in any::<bool>(),
        (trailers, forwarded) in prop::sample::select(vec![
            ("", ""),
            ("X: 1\r\n", "X: 1\r\n"),
            ("A: \r\nB: c d\r\n", "A: \r\nB: c d\r\n"),
            ("Host: h\r\nX-Sum: 2\r\nContent-Length: 5\r\n", "X-Sum: 2\r\n"),
            ("X-A-Trailer-Name-Longer-Than-Any: v\r\nTE: x\r\n", "X-A-Trailer-Name-Longer-Than-Any: v\r\n"),
        ]),
        next in prop::collection::vec(any::<u8>(), 0..10),
        cuts in prop::collection::vec(0usize..400, 0..6),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
            wire.extend_from_slice(size.as_bytes());
            wire.extend_from_slice(ext.as_bytes());
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend(std::iter::repeat_n(b'0', zeros));
        wire.extend_from_slice(ext.as_bytes());
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(trailers.as_bytes());
        wire.extend_from_slice(b"\r\n");
        let end = wire.len();
        wire.extend_from_slice(&next);
        let data: Vec<u8> = chunks.concat();
        prop_assert_eq!(decode_in_reads(Framing::Chunked, &wire, &sorted(cuts.clone())), Ok((data.clone(), Some(end))));
        let forwarded = forwarded.as_bytes().to_vec();
        prop_assert_eq!(decode_in_reads_with_trailer(&wire, &sorted(cuts)), Ok((data, forwarded, Some(end))));
    }
}
