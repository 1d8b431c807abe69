//! Request and response bodies: Content-Length counted down, chunked decoded as a stream, its
//! trailer section checked and handed back line by line for forwarding, without the fields
//! [`super::NOT_IN_TRAILERS`] names.

use std::ops::Range;

use super::Framing;
use super::fields::{LONGEST_NOT_IN_TRAILERS, is_allowed_in_trailer, is_tchar};

/// The longest chunk-size line (size and extensions, without CRLF): beyond it, 400.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// The largest trailer section: beyond it, 400.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The most bytes [`BodyDecoder::trailer_prefix`] gives: a trailer field's name is held this
/// long before the decoder knows whether the field is forwarded.
pub const MAX_TRAILER_PREFIX_BYTES: usize = LONGEST_NOT_IN_TRAILERS;

/// Why a body is refused: 400 and close (413 for [`BodyError::TooLarge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyError {
    /// A chunk size that is not hexadecimal digits.
    ChunkSize,
    /// A chunk size beyond 64 bits.
    ChunkSizeOverflow,
    /// A chunk extension outside RFC 9112 §7.1.1's grammar.
    ChunkExtension,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE_BYTES`].
    ChunkLineTooLong,
    /// A line of the chunked framing not ended by CRLF (a bare LF, or a CR followed by another
    /// byte).
    LineEnding,
    /// Chunk data not followed by CRLF: more data than the size said.
    ChunkDataEnd,
    /// A trailer field line that is not `token ":" value`.
    Trailer,
    /// A trailer section longer than [`MAX_TRAILER_BYTES`].
    TrailerTooLarge,
    /// A body longer than the limit given to [`BodyDecoder::new`].
    TooLarge,
}

impl BodyError {
    /// The status to answer with.
    pub const fn status(self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            _ => 400,
        }
    }

    /// A stable snake_case name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            BodyError::ChunkSize => "chunk_size",
            BodyError::ChunkSizeOverflow => "chunk_size_overflow",
            BodyError::ChunkExtension => "chunk_extension",
            BodyError::ChunkLineTooLong => "chunk_line_too_long",
            BodyError::LineEnding => "line_ending",
            BodyError::ChunkDataEnd => "chunk_data_end",
            BodyError::Trailer => "trailer",
            BodyError::TrailerTooLarge => "trailer_too_large",
            BodyError::TooLarge => "body_too_large",
        }
    }
}

/// What one call of [`BodyDecoder::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// How many bytes of the input it consumed (framing and data).
    pub consumed: usize,
    /// Body data: a range of the input (empty when there is none), within `consumed`.
    pub data: Range<usize>,
    /// The chunked body's last chunk (`0` and its line) was read in this step: the trailer
    /// section, then the end of the body, follow.
    pub last_chunk: bool,
    /// Trailer field lines to forward, each `name: value` CRLF as received: a range of the
    /// input (empty when there is none), within `consumed`, to be written after
    /// [`BodyDecoder::trailer_prefix`]. Fields [`super::NOT_IN_TRAILERS`] names are left out;
    /// the empty line that ends the section is not included.
    pub trailer: Range<usize>,
    /// Whether the body is complete; bytes after `consumed` belong to what follows it.
    pub done: bool,
}

impl Step {
    fn new(consumed: usize, data: Range<usize>, done: bool) -> Step {
        Step { consumed, data, last_chunk: false, trailer: consumed..consumed, done }
    }
}

/// Where the chunked decoder is. Every state is a position in RFC 9112 §7.1's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// In the chunk size.
    Size,
    /// Whitespace after the size or an extension: `;` must follow (BWS ";").
    Bws,
    /// After `;`: whitespace, then an extension name.
    ExtNameStart,
    /// In an extension name.
    ExtName,
    /// Whitespace after an extension name: `=` or `;` must follow.
    ExtNameBws,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    /// In a token value.
    ExtToken,
    /// In a quoted string.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After the closing quote.
    ExtQuotedEnd,
    /// After the CR of a chunk-size line.
    SizeLf,
    /// In chunk data.
    Data,
    /// After chunk data: CR.
    DataCr,
    /// After chunk data: LF.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field name short enough to be one that is dropped: held, not yet forwarded.
    TrailerName,
    /// In a trailer field name longer than any that is dropped: forwarded.
    TrailerLongName,
    /// In a trailer field value (forwarded or not as [`Trailer::keep`] says).
    TrailerValue,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    /// Complete.
    Done,
}

/// Reads a body, whatever its framing, from byte slices as they arrive. Its state is a
/// few words: it never holds body bytes (only the first bytes of a trailer field's name, while
/// it cannot tell yet whether the field is forwarded).
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: Kind,
    /// Body bytes still allowed (`u64::MAX` for no limit).
    budget: u64,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No body, or all of it read.
    Done,
    /// This many bytes left.
    Length(u64),
    /// Chunked.
    Chunked {
        state: Chunk,
        /// The chunk size being read, then the data left in the chunk.
        size: u64,
        /// Bytes of the current chunk-size line, or of the trailer section.
        line: usize,
        /// The trailer field line being read.
        trailer: Trailer,
    },
}

/// The trailer field line being read: whether it is forwarded, and its name while that is not
/// known yet. A fixed array: the decoder still holds no body bytes beyond one short name.
#[derive(Debug, Clone, Copy)]
struct Trailer {
    /// The first bytes of the field name, while it could be one of the dropped fields.
    name: [u8; MAX_TRAILER_PREFIX_BYTES],
    /// How many of `name` are held.
    held: u8,
    /// Held bytes the last step released: they are written before its [`Step::trailer`].
    released: u8,
    /// The line is forwarded (known once its name is).
    keep: bool,
}

// `held` counts up to the array's length.
const _: () = assert!(MAX_TRAILER_PREFIX_BYTES <= u8::MAX as usize);

impl BodyDecoder {
    /// A decoder for a body of this framing, refusing more than `max_body_bytes` of data
    /// (`None`: no limit). A Content-Length over the limit is refused at once.
    pub fn new(framing: Framing, max_body_bytes: Option<u64>) -> Result<BodyDecoder, BodyError> {
        let budget = max_body_bytes.unwrap_or(u64::MAX);
        let kind = match framing {
            Framing::None | Framing::ContentLength(0) => Kind::Done,
            Framing::ContentLength(n) if n > budget => return Err(BodyError::TooLarge),
            Framing::ContentLength(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked {
                state: Chunk::SizeStart,
                size: 0,
                line: 0,
                trailer: Trailer { name: [0; MAX_TRAILER_PREFIX_BYTES], held: 0, released: 0, keep: false },
            },
        };
        Ok(BodyDecoder { kind, budget })
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done | Kind::Chunked { state: Chunk::Done, .. })
    }

    /// Decodes a whole read: hands each run of body data in `input` to `data`, in order, and
    /// says where the body ended in it (`Some(n)`: the bytes from `n` on belong to what follows
    /// the body), or `None` when all of `input` was body and more is wanted. [`Self::decode`],
    /// called until the read is consumed; the trailer section is checked, not handed over.
    /// Allocates nothing.
    pub fn decode_piece(
        &mut self,
        input: &[u8],
        data: impl FnMut(&[u8]),
    ) -> Result<Option<usize>, BodyError> {
        self.decode_piece_with_trailer(input, data, |_| {})
    }

    /// [`Self::decode_piece`], also handing the trailer field lines to forward to `trailer`, in
    /// pieces whose concatenation is those lines (see [`Step::trailer`]).
    pub fn decode_piece_with_trailer(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
        mut trailer: impl FnMut(&[u8]),
    ) -> Result<Option<usize>, BodyError> {
        let mut pos = 0;
        loop {
            let s = self.decode(&input[pos..])?;
            debug_assert!(s.data.end <= s.consumed && s.consumed <= input.len() - pos, "{s:?}");
            debug_assert!(s.trailer.end <= s.consumed, "{s:?}");
            if !s.data.is_empty() {
                data(&input[pos..][s.data]);
            }
            if !s.trailer.is_empty() {
                let prefix = self.trailer_prefix();
                if !prefix.is_empty() {
                    trailer(prefix);
                }
                trailer(&input[pos..][s.trailer]);
            }
            pos += s.consumed;
            if s.done {
                return Ok(Some(pos));
            }
            if pos == input.len() {
                return Ok(None);
            }
        }
    }

    /// Decodes from `input` up to and including the next run of body data (or the end of the
    /// body, or of the input). Call again with the rest of the input until it is all consumed or
    /// the body is done ([`Self::decode_piece`] does). Allocates nothing.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        match &mut self.kind {
            Kind::Done => Ok(Step::new(0, 0..0, true)),
            Kind::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= n as u64;
                let done = *left == 0;
                if done {
                    self.kind = Kind::Done;
                }
                Ok(Step::new(n, 0..n, done))
            }
            Kind::Chunked { state, size, line, trailer } => {
                trailer.released = 0;
                chunked(state, size, line, trailer, &mut self.budget, input)
            }
        }
    }

    /// The start of a forwarded trailer field's name that the decoder held (until it knew the
    /// field is not one to drop) and the last [`Self::decode`] released: to be written before
    /// that step's [`Step::trailer`]. At most [`MAX_TRAILER_PREFIX_BYTES`]; empty when the
    /// step's trailer range is.
    pub fn trailer_prefix(&self) -> &[u8] {
        match &self.kind {
            Kind::Chunked { trailer, .. } => &trailer.name[..usize::from(trailer.released)],
            _ => &[],
        }
    }
}

/// One step of the chunked decoder (RFC 9112 §7.1):
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-val  = token / quoted-string
/// trailer-section = *( field-line CRLF )
/// ```
/// A step hands back at most one run of data, or the forwarded bytes of at most one trailer
/// line (with the end of the previous one's): it ends at the start of a trailer line when it
/// has trailer bytes already, so that a dropped line never sits inside its range.
fn chunked(
    state: &mut Chunk,
    size: &mut u64,
    line: &mut usize,
    trailer: &mut Trailer,
    budget: &mut u64,
    input: &[u8],
) -> Result<Step, BodyError> {
    let mut i = 0;
    let mut last_chunk = false;
    // Where this step's forwarded trailer bytes begin.
    let mut forward: Option<usize> = None;
    let step = |consumed: usize, forward: Option<usize>, last_chunk: bool, done: bool| Step {
        consumed,
        data: consumed..consumed,
        last_chunk,
        trailer: forward.unwrap_or(consumed)..consumed,
        done,
    };
    while i < input.len() {
        if *state == Chunk::Done {
            // Nothing after the body is the body's.
            return Ok(step(i, forward, last_chunk, true));
        }
        if *state == Chunk::Data {
            let n = usize::try_from(*size).unwrap_or(usize::MAX).min(input.len() - i);
            *size -= n as u64;
            if *size == 0 {
                *state = Chunk::DataCr;
            }
            return Ok(Step::new(i + n, i..i + n, false));
        }
        if *state == Chunk::TrailerStart && forward.is_some() {
            return Ok(step(i, forward, last_chunk, false));
        }
        let b = input[i];
        i += 1;
        let in_size_line = matches!(
            *state,
            Chunk::SizeStart
                | Chunk::Size
                | Chunk::Bws
                | Chunk::ExtNameStart
                | Chunk::ExtName
                | Chunk::ExtNameBws
                | Chunk::ExtValueStart
                | Chunk::ExtToken
                | Chunk::ExtQuoted
                | Chunk::ExtQuotedPair
                | Chunk::ExtQuotedEnd
        );
        // The line's length: size and extensions, not its CR.
        if in_size_line && b != b'\r' {
            *line += 1;
            if *line > MAX_CHUNK_LINE_BYTES {
                return Err(BodyError::ChunkLineTooLong);
            }
        }
        let in_trailer = matches!(
            *state,
            Chunk::TrailerStart
                | Chunk::TrailerName
                | Chunk::TrailerLongName
                | Chunk::TrailerValue
                | Chunk::TrailerLf
                | Chunk::EndLf
        );
        if in_trailer {
            *line += 1;
            if *line > MAX_TRAILER_BYTES {
                return Err(BodyError::TrailerTooLarge);
            }
            let forwarded;
            (*state, forwarded) = trailer_byte(*state, b, trailer)?;
            if forwarded && forward.is_none() {
                forward = Some(i - 1);
            }
            if *state == Chunk::Done {
                return Ok(step(i, forward, last_chunk, true));
            }
            continue;
        }
        let ws = b == b' ' || b == b'\t';
        *state = match (*state, b) {
            (Chunk::SizeStart | Chunk::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                *size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(BodyError::ChunkSizeOverflow)?;
                Chunk::Size
            }
            (Chunk::SizeStart, _) => return Err(BodyError::ChunkSize),
            (Chunk::Size | Chunk::ExtName | Chunk::ExtToken | Chunk::ExtQuotedEnd, b'\r') => Chunk::SizeLf,
            (Chunk::Size | Chunk::ExtToken | Chunk::ExtQuotedEnd, _) if ws => Chunk::Bws,
            (
                Chunk::Size
                | Chunk::Bws
                | Chunk::ExtName
                | Chunk::ExtNameBws
                | Chunk::ExtToken
                | Chunk::ExtQuotedEnd,
                b';',
            ) => Chunk::ExtNameStart,
            (Chunk::Size, b'\n') => return Err(BodyError::LineEnding),
            (Chunk::Size, _) => return Err(BodyError::ChunkSize),
            (Chunk::Bws | Chunk::ExtNameStart | Chunk::ExtValueStart, _) if ws => *state,
            (Chunk::ExtNameStart | Chunk::ExtName, _) if is_tchar(b) => Chunk::ExtName,
            (Chunk::ExtName | Chunk::ExtNameBws, _) if ws => Chunk::ExtNameBws,
            (Chunk::ExtName | Chunk::ExtNameBws, b'=') => Chunk::ExtValueStart,
            (Chunk::ExtValueStart | Chunk::ExtToken, _) if is_tchar(b) => Chunk::ExtToken,
            (Chunk::ExtValueStart, b'"') => Chunk::ExtQuoted,
            // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4).
            (Chunk::ExtQuoted, b'"') => Chunk::ExtQuotedEnd,
            (Chunk::ExtQuoted, b'\\') => Chunk::ExtQuotedPair,
            (Chunk::ExtQuoted, _) if is_qdtext(b) => Chunk::ExtQuoted,
            (Chunk::ExtQuotedPair, _) if ws || is_visible(b) => Chunk::ExtQuoted,
            (
                Chunk::Bws
                | Chunk::ExtNameStart
                | Chunk::ExtName
                | Chunk::ExtNameBws
                | Chunk::ExtValueStart
                | Chunk::ExtToken
                | Chunk::ExtQuoted
                | Chunk::ExtQuotedPair
                | Chunk::ExtQuotedEnd,
                _,
            ) => return Err(BodyError::ChunkExtension),
            (Chunk::SizeLf, b'\n') => {
                *line = 0;
                if *size == 0 {
                    last_chunk = true;
                    Chunk::TrailerStart
                } else {
                    if *size > *budget {
                        return Err(BodyError::TooLarge);
                    }
                    *budget -= *size;
                    Chunk::Data
                }
            }
            (Chunk::SizeLf, _) => return Err(BodyError::LineEnding),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataCr, _) => return Err(BodyError::ChunkDataEnd),
            (Chunk::DataLf, b'\n') => {
                *size = 0;
                Chunk::SizeStart
            }
            (Chunk::DataLf, _) => return Err(BodyError::LineEnding),
            // Handled before a byte is read, or by `trailer_byte`; were they not, refusing is the
            // safe answer.
            (
                Chunk::Data
                | Chunk::Done
                | Chunk::TrailerStart
                | Chunk::TrailerName
                | Chunk::TrailerLongName
                | Chunk::TrailerValue
                | Chunk::TrailerLf
                | Chunk::EndLf,
                _,
            ) => return Err(BodyError::ChunkDataEnd),
        };
    }
    let done = *state == Chunk::Done;
    Ok(step(input.len(), forward, last_chunk, done))
}

/// One byte of the trailer section: the next state, and whether the byte is forwarded. A field
/// name is held in `t` until it is known not to be one of [`super::NOT_IN_TRAILERS`] — at its
/// colon, or once it is longer than all of them — and then released (`t.released`), to be
/// written before the forwarded bytes.
fn trailer_byte(state: Chunk, b: u8, t: &mut Trailer) -> Result<(Chunk, bool), BodyError> {
    let ws = b == b' ' || b == b'\t';
    Ok(match (state, b) {
        (Chunk::TrailerStart, b'\r') => (Chunk::EndLf, false),
        (Chunk::TrailerStart, _) if is_tchar(b) => {
            t.name[0] = b;
            t.held = 1;
            t.keep = false;
            (Chunk::TrailerName, false)
        }
        (Chunk::TrailerStart, b'\n') => return Err(BodyError::LineEnding),
        // A trailer line beginning with whitespace is obs-fold; a name needs its colon at once.
        (Chunk::TrailerStart, _) => return Err(BodyError::Trailer),
        (Chunk::TrailerName, b':') => {
            let held = usize::from(t.held);
            t.keep = is_allowed_in_trailer(&t.name[..held]);
            if t.keep {
                t.released = t.held;
            }
            (Chunk::TrailerValue, t.keep)
        }
        (Chunk::TrailerName, _) if is_tchar(b) => {
            let held = usize::from(t.held);
            if held < t.name.len() {
                t.name[held] = b;
                t.held += 1;
                (Chunk::TrailerName, false)
            } else {
                // Longer than every name that is dropped.
                t.released = t.held;
                t.keep = true;
                (Chunk::TrailerLongName, true)
            }
        }
        (Chunk::TrailerLongName, b':') => (Chunk::TrailerValue, true),
        (Chunk::TrailerLongName, _) if is_tchar(b) => (Chunk::TrailerLongName, true),
        (Chunk::TrailerName | Chunk::TrailerLongName, _) => return Err(BodyError::Trailer),
        (Chunk::TrailerValue, b'\r') => (Chunk::TrailerLf, t.keep),
        (Chunk::TrailerValue, b'\n') => return Err(BodyError::LineEnding),
        (Chunk::TrailerValue, _) if ws || is_visible(b) => (Chunk::TrailerValue, t.keep),
        (Chunk::TrailerValue, _) => return Err(BodyError::Trailer),
        (Chunk::TrailerLf, b'\n') => (Chunk::TrailerStart, t.keep),
        (Chunk::TrailerLf, _) => return Err(BodyError::LineEnding),
        (Chunk::EndLf, b'\n') => (Chunk::Done, false),
        (Chunk::EndLf, _) => return Err(BodyError::LineEnding),
        // Not trailer states: the caller does not send them here.
        _ => return Err(BodyError::Trailer),
    })
}

/// VCHAR or obs-text.
const fn is_visible(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0x80..=0xff)
}

/// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
const fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all of `input` in one buffer: the data, and where the body ended.
    fn decode_all(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, Option<usize>), BodyError> {
        let mut data = Vec::new();
        let end = BodyDecoder::new(framing, None)?.decode_piece(input, |d| data.extend_from_slice(d))?;
        Ok((data, end))
    }

    #[test]
    fn content_length_counts_down_and_leaves_what_follows() {
        assert_eq!(decode_all(Framing::ContentLength(3), b"abcGET"), Ok((b"abc".to_vec(), Some(3))));
        assert_eq!(decode_all(Framing::ContentLength(5), b"abc"), Ok((b"abc".to_vec(), None)));
        assert_eq!(decode_all(Framing::None, b"GET"), Ok((vec![], Some(0))));
        assert_eq!(decode_all(Framing::ContentLength(0), b"GET"), Ok((vec![], Some(0))));
    }

    #[test]
    fn the_body_limit_is_413() {
        assert_eq!(BodyDecoder::new(Framing::ContentLength(11), Some(10)).unwrap_err(), BodyError::TooLarge);
        assert!(BodyDecoder::new(Framing::ContentLength(10), Some(10)).is_ok());
        let mut d = BodyDecoder::new(Framing::Chunked, Some(10)).unwrap();
        let s = d.decode(b"6\r\nabcdef\r\n").unwrap();
        assert_eq!(s.data, 3..9);
        let rest = d.decode(&b"6\r\nabcdef\r\n"[s.consumed..]).unwrap();
        assert_eq!(rest.consumed, 2);
        assert_eq!(d.decode(b"5\r\n"), Err(BodyError::TooLarge));
        assert_eq!(BodyError::TooLarge.status(), 413);
        assert_eq!(BodyError::ChunkSize.status(), 400);
    }

    #[test]
    fn trailer_steps_give_one_line_at_a_time_after_the_held_name() {
        let mut d = BodyDecoder::new(Framing::Chunked, None).unwrap();
        let input = b"0\r\nX-A: 1\r\nHost: h\r\nX-B: 2\r\n\r\nnext";
        let s = d.decode(input).unwrap();
        assert!(s.last_chunk && !s.done);
        assert_eq!((s.consumed, s.data.is_empty(), s.trailer), (11, true, 6..11), "up to the next line");
        assert_eq!(d.trailer_prefix(), b"X-A", "held until its colon");
        let s = d.decode(&input[11..]).unwrap();
        assert!(!s.last_chunk);
        assert_eq!((s.consumed, s.trailer), (17, 12..17), "Host: h dropped");
        assert_eq!(d.trailer_prefix(), b"X-B");
        let s = d.decode(&input[28..]).unwrap();
        assert_eq!((s.consumed, s.trailer.is_empty(), s.done), (2, true, true));
        assert_eq!(d.trailer_prefix(), b"");

        // A name held across reads.
        let mut d = BodyDecoder::new(Framing::Chunked, None).unwrap();
        let s = d.decode(b"0\r\nX-Ch").unwrap();
        assert_eq!((s.consumed, s.trailer.is_empty(), d.trailer_prefix()), (7, true, &b""[..]));
        let s = d.decode(b"ecksum: 1\r\n\r\n").unwrap();
        assert_eq!((s.consumed, s.trailer, d.trailer_prefix()), (11, 6..11, &b"X-Checksum"[..]));
        // One longer than any dropped name: released at its first byte past them.
        let mut d = BodyDecoder::new(Framing::Chunked, None).unwrap();
        let held = &b"X-A-Rather-Long-Tra"[..MAX_TRAILER_PREFIX_BYTES];
        let s = d.decode(&[b"0\r\n", held].concat()).unwrap();
        assert!(s.trailer.is_empty());
        let s = d.decode(b"iler: v\r\n\r\n").unwrap();
        assert_eq!((s.consumed, s.trailer, d.trailer_prefix()), (9, 0..9, held));
        // Content-Length bodies have no trailer section.
        let mut d = BodyDecoder::new(Framing::ContentLength(3), None).unwrap();
        let s = d.decode(b"abc").unwrap();
        assert!(s.trailer.is_empty() && !s.last_chunk && d.trailer_prefix().is_empty());
    }

    #[test]
    fn state_stays_small() {
        // Bounded state: a few words, whatever the body.
        assert!(std::mem::size_of::<BodyDecoder>() <= 64, "{}", std::mem::size_of::<BodyDecoder>());
    }
}
