//! Cookies: the request's `Cookie` fields read without copying (RFC 6265 §4.2), and session
//! affinity (`affinity: cookie`): the `Set-Cookie` that pins a client to an endpoint, and the
//! endpoint its cookie names.
//!
//! # What the proxy calls
//! - Per request, anywhere a cookie is wanted ([`super::canary`], affinity): [`find`] with
//!   every `Cookie` field value of the request and the name.
//! - Per generation, per upstream of a route with affinity: [`EndpointTokens::new`] with the
//!   gateway's [`SipKey`] and the upstream's eligible endpoints (allocates a sorted table).
//! - Per request on such a route: [`EndpointTokens::find`] with the cookie's value — an
//!   endpoint (use it if it is usable) or `None` (pick one as usual); then, when the request
//!   had no valid cookie, [`write_set_cookie`] with [`EndpointTokens::token`] of the endpoint
//!   picked, for the response.
//!
//! # The token
//! The cookie's value is 16 hex digits: a SipHash-2-4 of the endpoint's address and port under
//! the gateway's secret key. It names an endpoint without showing its address (ingress-nginx
//! puts a hash there too), is the same on every worker, and on every gateway given the same
//! key — give every replica the same key, or a client that moves between gateways is
//! re-pinned. An endpoint keeps its token across generations while its address does.
//!
//! # Known limits
//! - `affinity-mode` `balanced` and `persistent` behave the same here (persistent): a client
//!   stays on its endpoint while that endpoint is eligible. ingress-nginx's balanced mode
//!   re-spreads some clients when the upstream is scaled; that belongs to the balancer.
//! - `session-cookie-change-on-failure`, `-conditional-samesite-none` and `Domain` are not
//!   implemented. `Expires` is written as an IMF-fixdate (RFC 6265 §4.1.1), where nginx writes
//!   the older Netscape form; browsers read both.
//! - Cookie values are returned as sent: a value in double quotes keeps its quotes (as nginx's
//!   `$cookie_NAME`). The first pair with the name wins, across fields in order.
//!
//! Hot path: [`find`], [`EndpointTokens::find`], [`write_set_cookie`] allocate nothing. No
//! `unsafe`.

use std::net::SocketAddr;

use sluice_model::policy::CookieAffinity;

use super::{Sip, SipKey, TooSmall, Writer, hash_ip};

/// The `name=value` pairs of one `Cookie` field value, in order (RFC 6265 §4.2.1
/// `cookie-string`, read leniently as §5.4 writes it: pairs split at `;`, spaces and tabs
/// around names and values dropped, pairs without `=` skipped).
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
}

/// The pairs of one `Cookie` field value.
pub fn pairs(field_value: &[u8]) -> Pairs<'_> {
    Pairs { rest: field_value }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        while !self.rest.is_empty() {
            let end = self.rest.iter().position(|&b| b == b';').unwrap_or(self.rest.len());
            let pair = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                let name = trim(&pair[..eq]);
                if !name.is_empty() {
                    return Some((name, trim(&pair[eq + 1..])));
                }
            }
        }
        None
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The value of the first cookie called `name` (case-sensitive, as cookie names are) in the
/// request's `Cookie` field values, in the order they came.
pub fn find<'a>(cookie_fields: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a [u8]> {
    cookie_fields.into_iter().find_map(|f| pairs(f).find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v))
}

/// The affinity cookie's value: an endpoint's token (`affinity-mode: persistent`, made with
/// [`EndpointToken::of`]) or a random key hashed over the endpoints (`balanced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointToken(pub u64);

impl EndpointToken {
    /// The token of `endpoint` under `key`.
    pub fn of(key: &SipKey, endpoint: SocketAddr) -> EndpointToken {
        let mut h = Sip::new(&key.derive(b"affinity"));
        hash_ip(&mut h, endpoint.ip());
        h.write(&endpoint.port().to_le_bytes());
        EndpointToken(h.finish())
    }

    /// Its 16 lowercase hex digits.
    pub fn to_hex(self) -> [u8; 16] {
        let mut out = [0; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = b"0123456789abcdef"[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }

    /// Reads 16 hex digits (either case); `None` for anything else.
    pub fn parse(s: &[u8]) -> Option<EndpointToken> {
        if s.len() != 16 {
            return None;
        }
        let mut v = 0u64;
        for &c in s {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | u64::from(d);
        }
        Some(EndpointToken(v))
    }
}

/// The tokens of one upstream's endpoints, sorted for lookup. Made per generation.
#[derive(Debug, Clone, Default)]
pub struct EndpointTokens {
    sorted: Box<[(EndpointToken, SocketAddr)]>,
}

impl EndpointTokens {
    /// The tokens of `endpoints` under the gateway's `key`.
    pub fn new(key: &SipKey, endpoints: &[SocketAddr]) -> EndpointTokens {
        let mut v: Vec<_> = endpoints.iter().map(|&e| (EndpointToken::of(key, e), e)).collect();
        v.sort_unstable();
        v.dedup();
        EndpointTokens { sorted: v.into() }
    }

    /// The endpoint a cookie value names, if it is one of these.
    pub fn find(&self, cookie_value: &[u8]) -> Option<SocketAddr> {
        let t = EndpointToken::parse(cookie_value)?;
        let i = self.sorted.binary_search_by(|(k, _)| k.cmp(&t)).ok()?;
        Some(self.sorted[i].1)
    }

    /// The token of one of these endpoints.
    pub fn token(&self, endpoint: SocketAddr) -> Option<EndpointToken> {
        self.sorted.iter().find(|(_, e)| *e == endpoint).map(|(t, _)| *t)
    }
}

/// Writes the affinity cookie's field line — `Set-Cookie: NAME=TOKEN; Expires=…; Max-Age=…;
/// Path=…; Secure; HttpOnly; SameSite=…` and CRLF, in lua-resty-cookie's order as
/// ingress-nginx sets it — into `out`; its length.
///
/// `Path` is `session-cookie-path`, else `default_path` (ingress-nginx: the matched location's
/// path), else `/` when that is not a valid cookie path (a control character or `;`). Expires
/// is `now_unix_s` + `session-cookie-expires`; without `-expires` and `-max-age` it is a
/// session cookie. `Secure` when the request came over HTTPS; always `HttpOnly`.
pub fn write_set_cookie(
    affinity: &CookieAffinity,
    token: EndpointToken,
    default_path: &str,
    https: bool,
    now_unix_s: u64,
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    w.put(b"Set-Cookie: ")?;
    w.put(affinity.name.as_bytes())?;
    w.put(b"=")?;
    w.put(&token.to_hex())?;
    if let Some(s) = affinity.expires_s {
        w.put(b"; Expires=")?;
        let mut date = [0; 29];
        imf_fixdate(now_unix_s.saturating_add(u64::from(s)), &mut date);
        w.put(&date)?;
    }
    if let Some(s) = affinity.max_age_s {
        w.put(b"; Max-Age=")?;
        w.put_u64(u64::from(s))?;
    }
    let path = affinity.path.as_deref().unwrap_or(default_path);
    let valid = |p: &str| p.starts_with('/') && p.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';');
    w.put(b"; Path=")?;
    w.put(if valid(path) { path.as_bytes() } else { b"/" })?;
    if https {
        w.put(b"; Secure")?;
    }
    w.put(b"; HttpOnly")?;
    if let Some(s) = affinity.samesite {
        w.put(b"; SameSite=")?;
        w.put(s.name().as_bytes())?;
    }
    w.put(b"\r\n")?;
    Ok(w.len())
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7) of a Unix time, into 29 bytes.
pub fn imf_fixdate(unix_s: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    // Past year 9999 the format has no room: 9999-12-31 23:59:59.
    let unix_s = unix_s.min(253_402_300_799);
    let days = unix_s / 86_400;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    let mut i = 0;
    let mut put = |b: &[u8]| {
        out[i..i + b.len()].copy_from_slice(b);
        i += b.len();
    };
    put(DAYS[(days % 7) as usize]);
    put(b", ");
    put(&two(day));
    put(b" ");
    put(MONTHS[(month - 1) as usize]);
    put(b" ");
    put(&two(year / 100));
    put(&two(year));
    put(b" ");
    put(&two(secs / 3600));
    put(b":");
    put(&two(secs / 60 % 60));
    put(b":");
    put(&two(secs % 60));
    put(b" GMT");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::policy::{DEFAULT_COOKIE_NAME, SameSite};

    #[test]
    fn cookie_fields() {
        type Row = (&'static [&'static [u8]], &'static str, Option<&'static [u8]>);
        let cases: &[Row] = &[
            (&[b"a=1; b=2"], "b", Some(b"2")),
            (&[b"a=1;b=2"], "b", Some(b"2")),
            (&[b"  a = 1 ;  b\t=\t2  "], "a", Some(b"1")),
            (&[b"a=1; a=2"], "a", Some(b"1")),
            (&[b"x=1", b"a=2"], "a", Some(b"2")),
            (&[b"a=1", b"a=2"], "a", Some(b"1")),
            (&[b"A=1"], "a", None),
            (&[b"a"], "a", None),
            (&[b"a=; b=2"], "a", Some(b"")),
            (&[b"a=x=y"], "a", Some(b"x=y")),
            (&[b"a=\"q\""], "a", Some(b"\"q\"")),
            (&[b";;=1; ; a=3;"], "a", Some(b"3")),
            (&[b"ab=1"], "a", None),
            (&[b""], "a", None),
            (&[], "a", None),
        ];
        for (fields, name, want) in cases {
            assert_eq!(find(fields.iter().copied(), name), *want, "{fields:?} {name}");
        }
    }

    fn key() -> SipKey {
        SipKey::new(*b"0123456789abcdef")
    }

    #[test]
    fn tokens_name_endpoints_without_showing_them() {
        let eps: Vec<SocketAddr> = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.1:8081", "[2001:db8::1]:8080"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let tokens = EndpointTokens::new(&key(), &eps);
        for &e in &eps {
            let t = tokens.token(e).unwrap();
            let hex = t.to_hex();
            assert_eq!(tokens.find(&hex), Some(e));
            assert_eq!(tokens.find(&hex.to_ascii_uppercase()), Some(e));
        }
        // Stable: the same on another worker, and in the next generation without the others.
        let again = EndpointTokens::new(&key(), &eps[1..2]);
        assert_eq!(again.token(eps[1]), tokens.token(eps[1]));
        assert_eq!(again.find(&tokens.token(eps[0]).unwrap().to_hex()), None, "endpoint gone");
        // Another key, other tokens.
        assert_ne!(EndpointTokens::new(&SipKey::new([0; 16]), &eps).token(eps[0]), tokens.token(eps[0]));
        for bad in [&b""[..], b"0123", b"0123456789abcdeg", b"0123456789abcdef0", b" 123456789abcdef"] {
            assert_eq!(tokens.find(bad), None, "{bad:?}");
        }
        // A pinned value, so a change of the hash (which would re-pin every client) is seen.
        assert_eq!(&EndpointToken::of(&key(), eps[0]).to_hex(), b"9dbf79a59989e925");
    }

    #[test]
    fn set_cookie_fields() {
        let token = EndpointToken(0x0123_4567_89ab_cdef);
        let base = CookieAffinity {
            name: DEFAULT_COOKIE_NAME.into(),
            path: None,
            expires_s: None,
            max_age_s: None,
            samesite: None,
            persistent: false,
        };
        let t = 1_700_000_000; // 2023-11-14 22:13:20 UTC
        let rows: &[(CookieAffinity, &str, bool, &str)] = &[
            (
                base.clone(),
                "/app",
                false,
                "Set-Cookie: INGRESSCOOKIE=0123456789abcdef; Path=/app; HttpOnly\r\n",
            ),
            (
                base.clone(),
                "/",
                true,
                "Set-Cookie: INGRESSCOOKIE=0123456789abcdef; Path=/; Secure; HttpOnly\r\n",
            ),
            (
                CookieAffinity {
                    name: "route".into(),
                    path: Some("/shop".into()),
                    expires_s: Some(172_800),
                    max_age_s: Some(172_800),
                    samesite: Some(SameSite::Strict),
                    persistent: true,
                },
                "/ignored",
                true,
                "Set-Cookie: route=0123456789abcdef; Expires=Thu, 16 Nov 2023 22:13:20 GMT; Max-Age=172800; \
                 Path=/shop; Secure; HttpOnly; SameSite=Strict\r\n",
            ),
            // A regex location is no cookie path.
            (
                base.clone(),
                "/api(/|$)(.*);x",
                false,
                "Set-Cookie: INGRESSCOOKIE=0123456789abcdef; Path=/; HttpOnly\r\n",
            ),
            (
                CookieAffinity { samesite: Some(SameSite::None), ..base.clone() },
                "/",
                false,
                "Set-Cookie: INGRESSCOOKIE=0123456789abcdef; Path=/; HttpOnly; SameSite=None\r\n",
            ),
        ];
        let mut buf = [0u8; 256];
        for (aff, default_path, https, want) in rows {
            let n = write_set_cookie(aff, token, default_path, *https, t, &mut buf).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), *want);
        }
        assert_eq!(write_set_cookie(&base, token, "/", false, t, &mut [0u8; 30]), Err(TooSmall));
    }

    #[test]
    fn dates() {
        let rows: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            // 2100 is not a leap year.
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (4_133_980_799, "Fri, 31 Dec 2100 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        let mut out = [0; 29];
        for (t, want) in rows {
            imf_fixdate(*t, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), *want, "{t}");
        }
    }
}
