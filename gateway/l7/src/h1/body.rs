//! Request bodies: Content-Length counted down, chunked decoded as a stream.

use std::ops::Range;

use super::Framing;
use super::fields::is_tchar;

/// The longest chunk-size line (size and extensions, without CRLF): beyond it, 400.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// The largest trailer section: beyond it, 400.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

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
    /// Whether the body is complete; bytes after `consumed` belong to what follows it.
    pub done: bool,
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
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    /// Complete.
    Done,
}

/// Reads a request body, whatever its framing, from byte slices as they arrive. Its state is a
/// few words: it never holds body bytes.
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
    },
}

impl BodyDecoder {
    /// A decoder for a body of this framing, refusing more than `max_body_bytes` of data
    /// (`None`: no limit). A Content-Length over the limit is refused at once.
    pub fn new(framing: Framing, max_body_bytes: Option<u64>) -> Result<BodyDecoder, BodyError> {
        let budget = max_body_bytes.unwrap_or(u64::MAX);
        let kind = match framing {
            Framing::None | Framing::ContentLength(0) => Kind::Done,
            Framing::ContentLength(n) if n > budget => return Err(BodyError::TooLarge),
            Framing::ContentLength(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked { state: Chunk::SizeStart, size: 0, line: 0 },
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
    /// called until the read is consumed. Allocates nothing.
    pub fn decode_piece(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Option<usize>, BodyError> {
        let mut pos = 0;
        loop {
            let s = self.decode(&input[pos..])?;
            debug_assert!(s.data.end <= s.consumed && s.consumed <= input.len() - pos, "{s:?}");
            if !s.data.is_empty() {
                data(&input[pos..][s.data]);
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
            Kind::Done => Ok(Step { consumed: 0, data: 0..0, done: true }),
            Kind::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= n as u64;
                let done = *left == 0;
                if done {
                    self.kind = Kind::Done;
                }
                Ok(Step { consumed: n, data: 0..n, done })
            }
            Kind::Chunked { state, size, line } => chunked(state, size, line, &mut self.budget, input),
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
fn chunked(
    state: &mut Chunk,
    size: &mut u64,
    line: &mut usize,
    budget: &mut u64,
    input: &[u8],
) -> Result<Step, BodyError> {
    let mut i = 0;
    while i < input.len() {
        if *state == Chunk::Done {
            // Nothing after the body is the body's.
            return Ok(Step { consumed: i, data: i..i, done: true });
        }
        if *state == Chunk::Data {
            let n = usize::try_from(*size).unwrap_or(usize::MAX).min(input.len() - i);
            *size -= n as u64;
            if *size == 0 {
                *state = Chunk::DataCr;
            }
            return Ok(Step { consumed: i + n, data: i..i + n, done: false });
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
            Chunk::TrailerStart | Chunk::TrailerName | Chunk::TrailerValue | Chunk::TrailerLf | Chunk::EndLf
        );
        if in_trailer {
            *line += 1;
            if *line > MAX_TRAILER_BYTES {
                return Err(BodyError::TrailerTooLarge);
            }
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
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart | Chunk::TrailerName, _) if is_tchar(b) => Chunk::TrailerName,
            (Chunk::TrailerStart, b'\n') => return Err(BodyError::LineEnding),
            // A trailer line beginning with whitespace is obs-fold; a name needs its colon at once.
            (Chunk::TrailerStart, _) => return Err(BodyError::Trailer),
            (Chunk::TrailerName, b':') => Chunk::TrailerValue,
            (Chunk::TrailerName, _) => return Err(BodyError::Trailer),
            (Chunk::TrailerValue, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerValue, b'\n') => return Err(BodyError::LineEnding),
            (Chunk::TrailerValue, _) if ws || is_visible(b) => Chunk::TrailerValue,
            (Chunk::TrailerValue, _) => return Err(BodyError::Trailer),
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::TrailerLf, _) => return Err(BodyError::LineEnding),
            (Chunk::EndLf, b'\n') => {
                *state = Chunk::Done;
                return Ok(Step { consumed: i, data: i..i, done: true });
            }
            (Chunk::EndLf, _) => return Err(BodyError::LineEnding),
            // Both are handled before a byte is read; were they not, refusing is the safe answer.
            (Chunk::Data | Chunk::Done, _) => return Err(BodyError::ChunkDataEnd),
        };
    }
    let done = *state == Chunk::Done;
    Ok(Step { consumed: input.len(), data: input.len()..input.len(), done })
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
    fn state_stays_small() {
        // Bounded state: a few words, whatever the body.
        assert!(std::mem::size_of::<BodyDecoder>() <= 48, "{}", std::mem::size_of::<BodyDecoder>());
    }
}
