//! The HTTP/2 upstream converter, sans-IO: HTTP/1.1 request bytes (as the core writes them) in,
//! frames to a server (our h2 server role) out; the server's frames back as HTTP/1.1 response
//! bytes, trailers as a chunked body's trailer section.

use sluice_l7::h2::hpack::Field;
use sluice_l7::h2::{self, ErrorCode, Event, Role, StreamId};
use sluice_l7::proxy::H2Upstream;

/// A request head as the server saw it: its stream, its fields (pseudo-header fields first),
/// whether it ended the stream.
type SeenHead = (StreamId, Vec<(String, String)>, bool);

/// A converter and a server, and what the server saw.
struct H {
    up: H2Upstream,
    server: h2::Conn,
    sin: Vec<u8>,
    heads: Vec<SeenHead>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    ended: bool,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl H {
    fn new() -> H {
        H::with(H2Upstream::new())
    }

    fn with(up: H2Upstream) -> H {
        H {
            up,
            server: h2::Conn::new(Role::Server, h2::Config::DEFAULT),
            sin: vec![],
            heads: vec![],
            body: vec![],
            trailers: vec![],
            ended: false,
        }
    }

    /// Moves bytes both ways until nothing moves; returns the converted response.
    fn run(&mut self) -> String {
        let mut resp = Vec::new();
        for _ in 0..1000 {
            let mut moved = false;
            let out = self.up.write_buf().to_vec();
            if !out.is_empty() {
                self.up.wrote(out.len());
                self.sin.extend_from_slice(&out);
                moved = true;
                let mut off = 0;
                loop {
                    let r = self.server.recv(&self.sin[off..], 0);
                    let consumed = r.consumed;
                    let mut release = None;
                    match r.event {
                        None if consumed == 0 => break,
                        Some(Event::Head { stream, head, end_stream }) => {
                            let mut f = vec![];
                            for (n, v) in [
                                (":method", head.method()),
                                (":scheme", head.scheme()),
                                (":authority", head.authority()),
                                (":path", head.path()),
                            ] {
                                f.push((n.to_string(), text(v.unwrap_or(b""))));
                            }
                            f.extend(head.fields().map(|x| (text(x.name), text(x.value))));
                            self.heads.push((stream, f, end_stream));
                            self.ended |= end_stream;
                        }
                        Some(Event::Data { stream, data, end_stream }) => {
                            self.body.extend_from_slice(&self.sin[off..][data.clone()]);
                            release = Some((stream, data.len()));
                            self.ended |= end_stream;
                        }
                        Some(Event::Trailers { trailers, .. }) => {
                            self.trailers =
                                trailers.fields().map(|x| (text(x.name), text(x.value))).collect();
                            self.ended = true;
                        }
                        _ => {}
                    }
                    off += consumed;
                    if let Some((s, n)) = release {
                        self.server.release(s, n);
                    }
                }
                self.sin.drain(..off);
            }
            let out = self.server.write_buf().to_vec();
            if !out.is_empty() {
                self.server.wrote(out.len());
                let mut at = 0;
                while at < out.len() {
                    let buf = self.up.read_buf();
                    let n = buf.len().min(out.len() - at);
                    buf[..n].copy_from_slice(&out[at..at + n]);
                    self.up.read(n, 0);
                    at += n;
                    let r = self.up.response().to_vec();
                    self.up.took(r.len(), 0);
                    resp.extend_from_slice(&r);
                }
                moved = true;
            }
            if !moved {
                return text(&resp);
            }
        }
        panic!("no fixed point");
    }
}

#[test]
fn a_grpc_call_crosses_with_its_trailers_both_ways() {
    let mut h = H::new();
    let req = b"POST /echo.Echo/Unary HTTP/1.1\r\nHost: grpc.test\r\ncontent-type: application/grpc\r\n\
        X-Forwarded-For: 10.0.0.1\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nConnection: te\r\n\r\n\
        5\r\n\0\0\0\0\0\r\n0\r\nx-end: 1\r\n\r\n";
    assert_eq!(h.up.send(req), req.len());
    h.run();
    let (stream, fields, end) = h.heads[0].clone();
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(
        (get(":method"), get(":scheme"), get(":authority"), get(":path")),
        (Some("POST"), Some("http"), Some("grpc.test"), Some("/echo.Echo/Unary"))
    );
    assert_eq!(
        (get("te"), get("x-forwarded-for"), get("host"), get("connection")),
        (Some("trailers"), Some("10.0.0.1"), None, None)
    );
    assert!(!end);
    assert_eq!(h.body, b"\0\0\0\0\0");
    assert_eq!(h.trailers, [("x-end".to_string(), "1".to_string())]);
    h.server.send_response(stream, 200, [Field::new(b"content-type", b"application/grpc")], false).unwrap();
    h.server.send_data(stream, b"\0\0\0\0\x01z", false).unwrap();
    h.server.send_trailers(stream, [Field::new(b"grpc-status", b"0")]).unwrap();
    let resp = h.run();
    assert_eq!(
        resp,
        "HTTP/1.1 200 -\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n6\r\n\0\0\0\0\x01z\r\n0\r\ngrpc-status: 0\r\n\r\n"
    );
    assert!(h.up.reusable(), "the next exchange takes the next stream");
    // A trailers-only answer (an error status), on the same connection.
    let req = b"GET /x HTTP/1.1\r\nHost: grpc.test\r\n\r\n";
    assert_eq!(h.up.send(req), req.len());
    h.run();
    let (stream, _, end) = h.heads[1].clone();
    assert!(end && stream.0 == 3);
    h.server.send_response(stream, 200, [Field::new(b"grpc-status", b"5")], true).unwrap();
    let resp = h.run();
    assert_eq!(resp, "HTTP/1.1 200 -\r\ngrpc-status: 5\r\ncontent-length: 0\r\n\r\n");
    assert!(h.up.reusable());
}

#[test]
fn a_stream_the_server_resets_fails_the_exchange() {
    let mut h = H::new();
    let req = b"GET /x HTTP/1.1\r\nHost: grpc.test\r\n\r\n";
    h.up.send(req);
    h.run();
    let stream = h.heads[0].0;
    h.server.reset(stream, ErrorCode::INTERNAL_ERROR).unwrap();
    h.run();
    assert!(h.up.failed() && !h.up.reusable());
}

#[test]
fn over_tls_the_scheme_is_https() {
    // GRPCS: the connection is TLS (the driver's), so the target URI's scheme is https
    // (RFC 9113 §8.3.1).
    let mut h = H::with(H2Upstream::over_tls());
    let req = b"GET /x HTTP/1.1\r\nHost: grpc.test\r\n\r\n";
    assert_eq!(h.up.send(req), req.len());
    h.run();
    let (_, fields, _) = h.heads[0].clone();
    assert!(fields.contains(&(":scheme".to_string(), "https".to_string())), "{fields:?}");
}
