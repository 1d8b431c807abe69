//! `sluice_l7::h1` on arbitrary bytes: the head parser, then the body decoder in the head's
//! framing. The first byte of the input sets the size of the reads the rest arrives in; the
//! outcome of the reads must be the outcome of one read, for the head (its framing, length,
//! authority and path, or the refusal) and for the body (its data and end, or the error). No
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_l7::h1::{BodyDecoder, BodyError, Framing, HeadParser, Limits, Reject};

/// Small limits, so that mutation reaches them.
const LIMITS: Limits = Limits { max_head_bytes: 1024, max_uri_bytes: 256, max_fields: 16 };

#[derive(Debug, PartialEq)]
enum Head {
    NotYet,
    Done { len: usize, framing: Framing, authority: String, path: String, fields: usize },
    Refused(Reject),
}

fn head(p: &mut HeadParser, bytes: &[u8]) -> Head {
    match p.parse(bytes) {
        Ok(None) => Head::NotYet,
        Ok(Some(h)) => {
            assert!(h.head_len() <= bytes.len() && h.head_len() <= LIMITS.max_head_bytes);
            // Every accessor, and the hop-by-hop filter, on every field.
            let _ = (h.method(), h.target(), h.query(), h.version(), h.keep_alive(), h.upgrade());
            assert!(h.end_to_end_fields(false).count() <= h.fields().count());
            Head::Done {
                len: h.head_len(),
                framing: h.framing(),
                authority: h.authority().into(),
                path: h.path().into(),
                fields: h.fields().count(),
            }
        }
        Err(r) => Head::Refused(r),
    }
}

/// The body's data and end (an offset in `bytes`), read in pieces of `step` bytes.
fn body(framing: Framing, bytes: &[u8], step: usize) -> Result<(Vec<u8>, Option<usize>), BodyError> {
    let mut d = BodyDecoder::new(framing, Some(1 << 20))?;
    let mut data = Vec::new();
    for (n, piece) in bytes.chunks(step).enumerate() {
        if let Some(end) = d.decode_piece(piece, |b| data.extend_from_slice(b))? {
            return Ok((data, Some(n * step + end)));
        }
    }
    Ok((data, None))
}

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("h1"), |data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else { return };
    let step = usize::from(first % 64) + 1;

    let whole = head(&mut HeadParser::new(LIMITS), bytes);
    let mut p = HeadParser::new(LIMITS);
    let mut read = Head::NotYet;
    for end in (step..bytes.len()).step_by(step).chain([bytes.len()]) {
        read = head(&mut p, &bytes[..end]);
        if read != Head::NotYet {
            break;
        }
    }
    assert_eq!(read, whole, "reads of {step} bytes");

    if let Head::Done { len, framing, .. } = whole {
        let rest = &bytes[len..];
        assert_eq!(body(framing, rest, step), body(framing, rest, rest.len().max(1)), "reads of {step} bytes");
    }
});
