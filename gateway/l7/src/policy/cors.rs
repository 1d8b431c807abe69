//! CORS (`enable-cors` and its `cors-*` keys) as ingress-nginx answers it: the
//! `Access-Control-*` fields on responses to an allowed origin, and the preflight answered by
//! the gateway itself.
//!
//! # What the proxy calls
//! Per request on a route with [`Cors`]: [`classify`] with the method and the request's
//! `Origin` and `Access-Control-Request-Method` values.
//! - [`CorsRequest::Preflight`]: answer **204** at once, with the fields
//!   [`write_preflight_fields`] writes (nothing goes upstream).
//! - [`CorsRequest::Simple`]: proxy it, and add [`write_response_fields`]'s fields to the
//!   response head.
//! - [`CorsRequest::None`]: nothing to do (no `Origin`, or one not allowed: no fields, and a
//!   preflight from it goes upstream, as with ingress-nginx).
//!
//! # The fields (ingress-nginx's `cors` template)
//! `Access-Control-Allow-Origin` (the request's origin when it is allowed, or `*` when every
//! origin is allowed without credentials — `Cors::allowed`), `Access-Control-Allow-Credentials:
//! true` when allowed, `Access-Control-Allow-Methods`, `Access-Control-Allow-Headers`,
//! `Access-Control-Expose-Headers` when set, `Access-Control-Max-Age`; the preflight also
//! `Content-Type: text/plain; charset=UTF-8` (not ingress-nginx's `Content-Length: 0`: a 204
//! must not carry one, RFC 9110 §8.6).
//!
//! # Known limits and differences
//! - ingress-nginx answers every `OPTIONS` from an allowed origin itself; Sluice answers only
//!   a real preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, Fetch
//!   standard §3.2.2) and proxies other `OPTIONS` requests.
//! - `Vary: Origin` is added when the answer names the request's origin (the Fetch standard
//!   asks for it so caches do not serve one origin's answer to another); ingress-nginx omits
//!   it.
//! - An `Origin` that is not visible ASCII is not allowed (it would be echoed in a field).
//! - The fields are added to the upstream's; an upstream that sets its own
//!   `Access-Control-*` fields keeps them too (ingress-nginx's `more_set_headers` replaces
//!   them).
//!
//! Hot path: nothing here allocates. No `unsafe`.

use sluice_model::policy::Cors;

use super::{TooSmall, Writer};

/// What CORS asks of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsRequest<'a> {
    /// Nothing: no `Origin`, or an origin not allowed.
    None,
    /// An allowed cross-origin request: proxy it, add the fields to its response.
    Simple {
        /// The request's origin.
        origin: &'a str,
    },
    /// A preflight from an allowed origin: 204 with the fields, nothing upstream.
    Preflight {
        /// The request's origin.
        origin: &'a str,
    },
}

/// Classifies a request: `method` as sent (`OPTIONS` is case-sensitive, RFC 9110 §9.1),
/// `origin` and `request_method` the values of `Origin` and `Access-Control-Request-Method`.
pub fn classify<'a>(
    cors: &Cors,
    method: &str,
    origin: Option<&'a [u8]>,
    request_method: Option<&[u8]>,
) -> CorsRequest<'a> {
    let Some(origin) = origin.and_then(|o| std::str::from_utf8(o).ok()) else { return CorsRequest::None };
    if origin.is_empty()
        || !origin.bytes().all(|b| (0x21..0x7f).contains(&b))
        || cors.allowed(origin).is_none()
    {
        return CorsRequest::None;
    }
    if method == "OPTIONS" && request_method.is_some_and(|m| !m.is_empty()) {
        CorsRequest::Preflight { origin }
    } else {
        CorsRequest::Simple { origin }
    }
}

/// Writes the `Access-Control-*` field lines for a response to `origin` (from
/// [`CorsRequest::Simple`]) into `out`; their length (0 when the origin is not allowed).
pub fn write_response_fields(cors: &Cors, origin: &str, out: &mut [u8]) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    fields(cors, origin, &mut w)?;
    Ok(w.len())
}

/// Writes the preflight answer's field lines (the 204's, [`CorsRequest::Preflight`]) into
/// `out`; their length (0 when the origin is not allowed). The status line, `Server` and the
/// connection's fields are the caller's.
pub fn write_preflight_fields(cors: &Cors, origin: &str, out: &mut [u8]) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    // No Content-Length: a 204 must not carry one (RFC 9110 §8.6), though ingress-nginx's
    // template sends `Content-Length: 0`.
    if fields(cors, origin, &mut w)? {
        w.field(b"Content-Type", b"text/plain; charset=UTF-8")?;
    }
    Ok(w.len())
}

fn fields(cors: &Cors, origin: &str, w: &mut Writer<'_>) -> Result<bool, TooSmall> {
    let Some(allow) = cors.allowed(origin) else { return Ok(false) };
    w.field(b"Access-Control-Allow-Origin", allow.as_bytes())?;
    if allow != "*" {
        w.field(b"Vary", b"Origin")?;
    }
    if cors.allow_credentials {
        w.field(b"Access-Control-Allow-Credentials", b"true")?;
    }
    w.field(b"Access-Control-Allow-Methods", cors.allow_methods.as_bytes())?;
    w.field(b"Access-Control-Allow-Headers", cors.allow_headers.as_bytes())?;
    if !cors.expose_headers.is_empty() {
        w.field(b"Access-Control-Expose-Headers", cors.expose_headers.as_bytes())?;
    }
    w.put(b"Access-Control-Max-Age: ")?;
    w.put_u64(u64::from(cors.max_age_s))?;
    w.put(b"\r\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::policy::{DEFAULT_CORS_HEADERS, DEFAULT_CORS_MAX_AGE_S, DEFAULT_CORS_METHODS};

    fn cors(origins: &[&str], credentials: bool, expose: &str) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: DEFAULT_CORS_METHODS.into(),
            allow_headers: DEFAULT_CORS_HEADERS.into(),
            expose_headers: expose.into(),
            allow_credentials: credentials,
            max_age_s: DEFAULT_CORS_MAX_AGE_S,
        }
    }

    #[test]
    fn requests_classified() {
        let c = cors(&["https://a.com", "https://*.b.com"], true, "");
        type Row = (&'static str, Option<&'static [u8]>, Option<&'static [u8]>, CorsRequest<'static>);
        let rows: &[Row] = &[
            ("GET", None, None, CorsRequest::None),
            ("GET", Some(b"https://a.com"), None, CorsRequest::Simple { origin: "https://a.com" }),
            ("POST", Some(b"https://x.b.com"), None, CorsRequest::Simple { origin: "https://x.b.com" }),
            ("GET", Some(b"https://evil.com"), None, CorsRequest::None),
            (
                "OPTIONS",
                Some(b"https://a.com"),
                Some(b"PUT"),
                CorsRequest::Preflight { origin: "https://a.com" },
            ),
            // OPTIONS without Access-Control-Request-Method is not a preflight.
            ("OPTIONS", Some(b"https://a.com"), None, CorsRequest::Simple { origin: "https://a.com" }),
            ("OPTIONS", Some(b"https://a.com"), Some(b""), CorsRequest::Simple { origin: "https://a.com" }),
            (
                "options",
                Some(b"https://a.com"),
                Some(b"PUT"),
                CorsRequest::Simple { origin: "https://a.com" },
            ),
            // A preflight from an origin not allowed goes upstream.
            ("OPTIONS", Some(b"https://evil.com"), Some(b"PUT"), CorsRequest::None),
            ("GET", Some(b"https://a.com\xff"), None, CorsRequest::None),
            ("GET", Some(b""), None, CorsRequest::None),
        ];
        for (method, origin, acrm, want) in rows {
            assert_eq!(classify(&c, method, *origin, *acrm), *want, "{method} {origin:?} {acrm:?}");
        }
        let any = cors(&["*"], false, "");
        assert_eq!(classify(&any, "GET", Some(b"null"), None), CorsRequest::Simple { origin: "null" });
        assert_eq!(classify(&any, "GET", Some(b"a b"), None), CorsRequest::None);
    }

    #[test]
    fn fields_as_ingress_nginx_writes_them() {
        let mut out = [0u8; 512];
        let c = cors(&["https://a.com"], true, "X-Total");
        let n = write_response_fields(&c, "https://a.com", &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out[..n]).unwrap(),
            "Access-Control-Allow-Origin: https://a.com\r\n\
             Vary: Origin\r\n\
             Access-Control-Allow-Credentials: true\r\n\
             Access-Control-Allow-Methods: GET, PUT, POST, DELETE, PATCH, OPTIONS\r\n\
             Access-Control-Allow-Headers: DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
             Cache-Control,Content-Type,Range,Authorization\r\n\
             Access-Control-Expose-Headers: X-Total\r\n\
             Access-Control-Max-Age: 1728000\r\n"
        );
        let any = Cors { max_age_s: 60, ..cors(&["*"], false, "") };
        let n = write_preflight_fields(&any, "https://z.org", &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out[..n]).unwrap(),
            "Access-Control-Allow-Origin: *\r\n\
             Access-Control-Allow-Methods: GET, PUT, POST, DELETE, PATCH, OPTIONS\r\n\
             Access-Control-Allow-Headers: DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
             Cache-Control,Content-Type,Range,Authorization\r\n\
             Access-Control-Max-Age: 60\r\n\
             Content-Type: text/plain; charset=UTF-8\r\n"
        );
        // `*` with credentials echoes the origin (a browser refuses `*` with credentials).
        let n = write_response_fields(&cors(&["*"], true, ""), "https://z.org", &mut out).unwrap();
        assert!(out[..n].starts_with(b"Access-Control-Allow-Origin: https://z.org\r\nVary: Origin\r\n"));
        assert_eq!(write_response_fields(&c, "https://evil.com", &mut out), Ok(0));
        assert_eq!(write_preflight_fields(&c, "https://evil.com", &mut out), Ok(0));
        assert_eq!(write_response_fields(&c, "https://a.com", &mut [0u8; 100]), Err(TooSmall));
    }
}
