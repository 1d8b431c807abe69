//! Upstream response heads: parsed with `httparse`, framed by RFC 9112 §6.3, and rewritten
//! for the client in one pass (hop-by-hop fields out, `Trailer` only where the trailer section
//! goes too, `Server` in when missing, the framing and `Connection` the client connection
//! needs).
//!
//! Hot path: allocates nothing (the field array is on the stack).

use super::buf::Buf;
use super::write_trailer_field;
use crate::h1::{HOP_BY_HOP, MAX_FIELDS, Method, ResponseBody, response_body, tokens};

/// How a response body is delimited on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body (HEAD, 1xx, 204, 304, or Content-Length 0).
    None,
    /// Content-Length.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes.
    Close,
    /// A tunnel follows (101).
    Tunnel,
}

/// What the client is, for rewriting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    /// The request's method.
    pub(crate) method: Method,
    /// HTTP/1.1 (else 1.0).
    pub(crate) http11: bool,
    /// The client connection closes after this response whatever the response says.
    pub(crate) close: bool,
    /// The request asked for an upgrade.
    pub(crate) upgrade: bool,
}

impl Client {
    /// Whether a body of unknown length reaches this client chunked (with its trailer section):
    /// HTTP/1.1 clients; an HTTP/1.0 one gets it delimited by close.
    pub(crate) const fn takes_chunked(&self) -> bool {
        self.http11
    }
}

/// A response head, read and (unless interim and dropped) written for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status.
    pub(crate) status: u16,
    /// Its length in the upstream's bytes.
    pub(crate) head_len: usize,
    /// The body on the upstream side.
    pub(crate) body: Body,
    /// The body is sent to the client chunked (decoded and re-framed, or a close-delimited
    /// body given a length-less framing that keeps the connection).
    pub(crate) rechunk: bool,
    /// The client connection is closed after this response.
    pub(crate) close_client: bool,
    /// The upstream connection may carry another request.
    pub(crate) upstream_keep_alive: bool,
}

/// Why a response head is not relayed: 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadResponse {
    /// Not an HTTP/1.x response head.
    Malformed,
    /// Content-Length invalid or conflicting (RFC 9112 §6.3 rule 5).
    ContentLength,
    /// 101 to a request that did not ask for an upgrade.
    UnexpectedUpgrade,
    /// The rewritten head does not fit the client's buffer.
    TooLarge,
}

/// Parses the response head at the front of `buf` (`Ok(None)` until complete) and writes what
/// the client gets into `out`: nothing for an interim response to an HTTP/1.0 client. `out`
/// must have room for the head plus 256 bytes.
/// `extra`: header lines (each ending in CRLF) the final response gains (HSTS, CORS...).
pub(crate) fn relay_head(
    buf: &[u8],
    client: Client,
    out: &mut Buf,
    extra: &str,
) -> Result<Option<Head>, BadResponse> {
    // httparse has no uninitialised-array variant for responses: 256 empty slots, on the stack.
    let mut raw = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut raw);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let status = resp.code.ok_or(BadResponse::Malformed)?;
    let http11 = resp.version == Some(1);
    let reason = resp.reason.unwrap_or("");
    let fields = &*resp.headers;

    let (mut close, mut keep_alive, mut chunked_last, mut te, mut has_server) =
        (false, false, false, false, false);
    let mut length: Option<u64> = None;
    for f in fields {
        if f.name.eq_ignore_ascii_case("connection") {
            for t in tokens(f.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            for t in tokens(f.value) {
                chunked_last = t.eq_ignore_ascii_case(b"chunked");
            }
        } else if f.name.eq_ignore_ascii_case("content-length") {
            for v in f.value.split(|&b| b == b',') {
                let n = decimal(trim(v)).ok_or(BadResponse::ContentLength)?;
                if length.is_some_and(|m| m != n) {
                    return Err(BadResponse::ContentLength);
                }
                length = Some(n);
            }
        } else if f.name.eq_ignore_ascii_case("server") {
            has_server = true;
        }
    }
    let upstream_keep_alive = if http11 { !close } else { keep_alive && !close };

    let kind = response_body(client.method, status);
    let interim = (100..200).contains(&status) && status != 101;
    if interim {
        // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients only
        // (RFC 9110 §15.2).
        if client.http11 {
            write_status(out, status, reason)?;
            // No body, so no trailer section for a Trailer field to announce.
            let relayed = |f: &&httparse::Header<'_>| {
                !hop_by_hop(f.name, fields, false) && !f.name.eq_ignore_ascii_case("trailer")
            };
            for f in fields.iter().filter(relayed) {
                write_field(out, f.name, f.value)?;
            }
            push(out, b"\r\n")?;
        }
        let head = Head {
            status,
            head_len,
            body: Body::None,
            rechunk: false,
            close_client: false,
            upstream_keep_alive,
        };
        return Ok(Some(head));
    }
    let body = match kind {
        ResponseBody::Tunnel if status == 101 && !client.upgrade => {
            return Err(BadResponse::UnexpectedUpgrade);
        }
        ResponseBody::Tunnel => Body::Tunnel,
        ResponseBody::None => Body::None,
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (rule 3); a coding
        // other than chunked last means the body ends at close (rule 4).
        ResponseBody::Framed if te && chunked_last => Body::Chunked,
        ResponseBody::Framed if te => Body::Close,
        ResponseBody::Framed => match length {
            Some(0) => Body::None,
            Some(n) => Body::Length(n),
            None => Body::Close,
        },
    };
    // A body of unknown length goes chunked to an HTTP/1.1 client; an HTTP/1.0 client gets it
    // delimited by close.
    let unknown = matches!(body, Body::Chunked | Body::Close);
    let rechunk = unknown && client.takes_chunked();
    let close_client = client.close || (unknown && !client.http11) || (body == Body::Close && !rechunk);
    let tunnel = body == Body::Tunnel;

    write_status(out, status, reason)?;
    for f in fields {
        if hop_by_hop(f.name, fields, tunnel) || replaced(f.name, extra) {
            continue;
        }
        // A length is forwarded only with the body it describes (rule 3: not with chunked).
        if f.name.eq_ignore_ascii_case("content-length") && te && kind == ResponseBody::Framed {
            continue;
        }
        if f.name.eq_ignore_ascii_case("trailer") {
            // It announces the trailer section, which reaches the client only from a chunked body
            // sent on chunked (RFC 9110 §6.6.2), and without the fields dropped from it.
            if body == Body::Chunked && rechunk && !write_trailer_field(out, f.value) {
                return Err(BadResponse::TooLarge);
            }
            continue;
        }
        write_field(out, f.name, f.value)?;
    }
    if !has_server && !replaced("server", extra) {
        push(out, b"Server: sluice\r\n")?;
    }
    push(out, extra.as_bytes())?;
    if rechunk {
        push(out, b"Transfer-Encoding: chunked\r\n")?;
    }
    if tunnel {
        push(out, b"Connection: upgrade\r\n")?;
    } else if close_client {
        push(out, b"Connection: close\r\n")?;
    } else if !client.http11 {
        push(out, b"Connection: keep-alive\r\n")?;
    }
    push(out, b"\r\n")?;
    Ok(Some(Head { status, head_len, body, rechunk, close_client, upstream_keep_alive }))
}

/// Whether the upstream's field `name` gives way to one of Sluice's (`extra`: the fields the
/// route adds — `custom-headers`, CORS, HSTS — which replace the upstream's of the same name,
/// as ingress-nginx's `more_set_headers` does). `Set-Cookie` adds (an affinity cookie beside
/// the application's).
fn replaced(name: &str, extra: &str) -> bool {
    !extra.is_empty()
        && !name.eq_ignore_ascii_case("set-cookie")
        && extra
            .split("\r\n")
            .any(|line| line.split_once(':').is_some_and(|(n, _)| n.eq_ignore_ascii_case(name)))
}

fn write_status(out: &mut Buf, status: u16, reason: &str) -> Result<(), BadResponse> {
    let digits =
        [b'0' + (status / 100 % 10) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
    push(out, b"HTTP/1.1 ")?;
    push(out, &digits)?;
    push(out, b" ")?;
    push(out, reason.as_bytes())?;
    push(out, b"\r\n")
}

fn write_field(out: &mut Buf, name: &str, value: &[u8]) -> Result<(), BadResponse> {
    push(out, name.as_bytes())?;
    push(out, b": ")?;
    push(out, value)?;
    push(out, b"\r\n")
}

fn push(out: &mut Buf, bytes: &[u8]) -> Result<(), BadResponse> {
    if out.push(bytes) { Ok(()) } else { Err(BadResponse::TooLarge) }
}

/// Whether a response field is hop-by-hop: a fixed one (Upgrade kept for a 101) or one the
/// Connection fields name.
fn hop_by_hop(name: &str, fields: &[httparse::Header<'_>], keep_upgrade: bool) -> bool {
    if keep_upgrade && name.eq_ignore_ascii_case("upgrade") {
        return false;
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return true;
    }
    fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .any(|f| tokens(f.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(s, |e| e + 1);
    &v[s..e]
}

fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(head: &str, client: Client) -> (Result<Option<Head>, BadResponse>, String) {
        let mut out = Buf::new(4096);
        let r = relay_head(head.as_bytes(), client, &mut out, "");
        (r, String::from_utf8(out.bytes().to_vec()).unwrap())
    }

    const GET11: Client = Client { method: Method::Get, http11: true, close: false, upgrade: false };

    #[test]
    fn the_routes_fields_replace_the_upstreams() {
        let mut out = Buf::new(4096);
        let head = "HTTP/1.1 200 OK\r\nX-Frame-Options: SAMEORIGIN\r\nset-cookie: app=1\r\nServer: app\r\nContent-Length: 0\r\n\r\n";
        let extra = "x-frame-options: DENY\r\nServer: edge\r\nSet-Cookie: INGRESSCOOKIE=x\r\n";
        relay_head(head.as_bytes(), GET11, &mut out, extra).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(out.bytes().to_vec()).unwrap(),
            "HTTP/1.1 200 OK\r\nset-cookie: app=1\r\nContent-Length: 0\r\n\
             x-frame-options: DENY\r\nServer: edge\r\nSet-Cookie: INGRESSCOOKIE=x\r\n\r\n"
        );
    }

    #[test]
    fn framing_and_rewriting() {
        let (r, out) = relay("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: x\r\n\r\nhello", GET11);
        let h = r.unwrap().unwrap();
        assert_eq!(h.body, Body::Length(5));
        assert!(!h.rechunk && !h.close_client && h.upstream_keep_alive);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: sluice\r\n\r\n");

        let (r, out) = relay(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\nServer: x\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
            GET11,
        );
        let h = r.unwrap().unwrap();
        assert_eq!((h.body, h.rechunk, h.upstream_keep_alive), (Body::Chunked, true, false));
        assert_eq!(out, "HTTP/1.1 200 OK\r\nServer: x\r\nTransfer-Encoding: chunked\r\n\r\n");

        let http10 = Client { http11: false, ..GET11 };
        let (r, out) = relay("HTTP/1.1 200 OK\r\n\r\n", http10);
        let h = r.unwrap().unwrap();
        assert_eq!((h.body, h.rechunk, h.close_client), (Body::Close, false, true));
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");

        let head = Client { method: Method::Head, ..GET11 };
        let (r, _) = relay("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", head);
        assert_eq!(r.unwrap().unwrap().body, Body::None);
        for s in ["204 No Content", "304 Not Modified"] {
            let (r, _) = relay(&format!("HTTP/1.1 {s}\r\nContent-Length: 50\r\n\r\n"), GET11);
            assert_eq!(r.unwrap().unwrap().body, Body::None, "{s}");
        }
        let (r, _) = relay("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", GET11);
        assert_eq!(r, Err(BadResponse::ContentLength));
        let (r, _) = relay("HTTP/1.1 200 OK\r\nContent-", GET11);
        assert_eq!(r, Ok(None));
        let (r, _) = relay(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            GET11,
        );
        assert_eq!(r, Err(BadResponse::UnexpectedUpgrade));
        let (r, out) = relay(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            Client { upgrade: true, ..GET11 },
        );
        assert_eq!(r.unwrap().unwrap().body, Body::Tunnel);
        assert!(out.contains("Upgrade: websocket\r\n") && out.contains("Connection: upgrade\r\n"), "{out}");
        let (r, out) = relay("HTTP/1.1 100 Continue\r\n\r\n", http10);
        assert_eq!(r.unwrap().unwrap().status, 100);
        assert_eq!(out, "", "no interim response to a 1.0 client");
    }

    #[test]
    fn trailer_goes_only_where_the_trailer_section_does_without_the_dropped_names() {
        let chunked = "HTTP/1.1 200 OK\r\nTrailer: grpc-status, Content-Length,grpc-message\r\nTrailer: Host\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (r, out) = relay(chunked, GET11);
        assert!(r.unwrap().unwrap().rechunk);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nTrailer: grpc-status, grpc-message\r\nServer: sluice\r\nTransfer-Encoding: chunked\r\n\r\n",
            "a Trailer field left with no name is not written"
        );
        // An HTTP/1.0 client gets no trailer section, a sized body has none.
        let (_, out) = relay(chunked, Client { http11: false, ..GET11 });
        assert!(!out.contains("Trailer"), "{out}");
        let (_, out) = relay("HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 1\r\n\r\n", GET11);
        assert!(!out.contains("Trailer"), "{out}");
        let (_, out) = relay("HTTP/1.1 103 Early Hints\r\nTrailer: X\r\nLink: </a>\r\n\r\n", GET11);
        assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    }
}
