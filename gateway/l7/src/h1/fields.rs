//! Field-value lists, the hop-by-hop fields and the fields a trailer section may not carry.

/// Fields that describe one connection, not the message, and are never forwarded as received
/// (RFC 9110 §7.6.1, RFC 9112 §6.1): besides these, every field the Connection field names.
/// Upgrade is forwarded when the proxy is upgrading the connection (with a Connection field of
/// its own); `TE: trailers` is said again by the proxy when it applies to its own hop. Trailer
/// is not one of them (RFC 9110 §6.6.2: it describes the message's trailer section), but it is
/// forwarded only where the trailer section is. Lowercase.
pub const HOP_BY_HOP: [&str; 6] =
    ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"];

/// Fields dropped from a trailer section instead of being forwarded. RFC 9110 §6.5.1: a sender
/// must not put a field in a trailer unless its definition allows it there, and none of these
/// allows it, because a recipient needs them before the content (or they belong to one
/// connection): message framing and the hop-by-hop fields, routing, request modifiers (controls
/// and conditionals, §10.1 and §13.1), authentication (§11, RFC 6265 cookies), response control
/// data (§10.2), how to process the content (§8), and the fields Sluice itself vouches for in
/// the request head (a trailer copy would be an unchecked second opinion). Lowercase.
pub const NOT_IN_TRAILERS: [&str; 41] = [
    // Framing and hop-by-hop (RFC 9112 §6, RFC 9110 §7.6.1, §6.6.2).
    "transfer-encoding",
    "content-length",
    "trailer",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    // Routing.
    "host",
    // Request modifiers: controls and conditionals.
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    // Authentication.
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    // Response control data.
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    // Content processing.
    "content-encoding",
    "content-type",
    "content-range",
    // The fields Sluice sets or vouches for in the request head.
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

/// The longest name in [`NOT_IN_TRAILERS`]: a trailer field's name is held up to this many
/// bytes before the decoder knows whether the field is forwarded.
pub(crate) const LONGEST_NOT_IN_TRAILERS: usize = {
    let mut longest = 0;
    let mut i = 0;
    while i < NOT_IN_TRAILERS.len() {
        if NOT_IN_TRAILERS[i].len() > longest {
            longest = NOT_IN_TRAILERS[i].len();
        }
        i += 1;
    }
    longest
};

/// Whether a field called `name` may be forwarded in a trailer section: it is not one of
/// [`NOT_IN_TRAILERS`] (case-insensitive).
pub fn is_allowed_in_trailer(name: &[u8]) -> bool {
    !NOT_IN_TRAILERS.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The elements of a comma-separated field value (RFC 9110 §5.6.1: `#element`), without their
/// surrounding whitespace, empty elements skipped.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    value.split(|&b| b == b',').map(trim_ows).filter(|t| !t.is_empty())
}

/// `value` without leading and trailing spaces and tabs (OWS).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &value[start..end]
}

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2): what tokens — field names, methods, codings,
/// connection options — are made of.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~')
}

/// Whether `name` is one of [`HOP_BY_HOP`] (Upgrade only when `keep_upgrade` is false).
pub(crate) fn is_fixed_hop_by_hop(name: &str, keep_upgrade: bool) -> bool {
    if keep_upgrade && name.eq_ignore_ascii_case("upgrade") {
        return false;
    }
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_drop_whitespace_and_empty_elements() {
        let got: Vec<&[u8]> = tokens(b" close ,, keep-alive,\tUpgrade\t,").collect();
        assert_eq!(got, [&b"close"[..], b"keep-alive", b"Upgrade"]);
        assert_eq!(tokens(b"").count(), 0);
        assert_eq!(tokens(b" , ,").count(), 0);
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b"a b"), b"a b");
    }

    #[test]
    fn the_fixed_hop_by_hop_fields() {
        for h in ["Connection", "KEEP-ALIVE", "proxy-connection", "TE", "Transfer-Encoding", "Upgrade"] {
            assert!(is_fixed_hop_by_hop(h, false), "{h}");
        }
        assert!(!is_fixed_hop_by_hop("Upgrade", true));
        assert!(is_fixed_hop_by_hop("Connection", true));
        for h in ["Host", "Content-Length", "Trailer", "Trailers", "Tea", "Keep"] {
            assert!(!is_fixed_hop_by_hop(h, false), "{h}");
        }
    }

    #[test]
    fn fields_not_allowed_in_trailers() {
        for h in HOP_BY_HOP {
            assert!(!is_allowed_in_trailer(h.as_bytes()), "{h}: every hop-by-hop field is dropped");
        }
        for h in
            [&b"Content-Length"[..], b"HOST", b"trailer", b"Authorization", b"Set-Cookie", b"X-Forwarded-For"]
        {
            assert!(!is_allowed_in_trailer(h), "{}", String::from_utf8_lossy(h));
        }
        for h in
            [&b"X-Checksum"[..], b"grpc-status", b"Server-Timing", b"Content-Digest", b"Hos", b"Hosts", b""]
        {
            assert!(is_allowed_in_trailer(h), "{}", String::from_utf8_lossy(h));
        }
        assert_eq!(LONGEST_NOT_IN_TRAILERS, "proxy-authorization".len());
        for n in NOT_IN_TRAILERS {
            assert_eq!(n, n.to_ascii_lowercase(), "lowercase");
            assert!(n.bytes().all(is_tchar), "{n}");
        }
    }
}
