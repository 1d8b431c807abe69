//! Field-value lists and the hop-by-hop fields.

/// Fields that describe one connection, not the message, and are never forwarded as received
/// (RFC 9110 §7.6.1, RFC 9112 §6.1 and §7.4): besides these, every field the Connection field
/// names. Upgrade is forwarded when the proxy is upgrading the connection (with a Connection
/// field of its own). Lowercase.
pub const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

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
        for h in
            ["Connection", "KEEP-ALIVE", "proxy-connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"]
        {
            assert!(is_fixed_hop_by_hop(h, false), "{h}");
        }
        assert!(!is_fixed_hop_by_hop("Upgrade", true));
        assert!(is_fixed_hop_by_hop("Connection", true));
        for h in ["Host", "Content-Length", "Trailers", "Tea", "Keep"] {
            assert!(!is_fixed_hop_by_hop(h, false), "{h}");
        }
    }
}
