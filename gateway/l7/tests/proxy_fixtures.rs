//! The proxy core, sans-IO: request and response bytes in, bytes out, through a fake driver
//! that plays the client's and the upstream's sockets. Where cheap, inputs are also fed split
//! at every byte: the outcome must not depend on how the bytes arrived.

mod common;

use std::net::SocketAddr;
use std::rc::Rc;

use common::{ep, table};
use sluice_l7::proxy::{Action, Config, Conn, Context, Generation, UpstreamError};

const CLIENT: &str = "192.0.2.7:40000";

/// A fake driver around one connection.
struct H {
    ctx: Context,
    conn: Conn,
    now: u64,
    /// Endpoints asked for, in order.
    connects: Vec<SocketAddr>,
    /// Releases, in order.
    releases: Vec<bool>,
    /// Bytes the client received.
    client: Vec<u8>,
    /// Bytes the upstream received on the current attempt.
    upstream: Vec<u8>,
    /// Whether an upstream is attached and whether it is connected.
    attached: bool,
    /// Connect attached upstreams at once.
    auto_connect: bool,
    /// Read at most this much from the client per call (the rest stays "in the socket").
    pending_client: Vec<u8>,
}

impl H {
    fn new(config: Config, web: &[SocketAddr]) -> H {
        let mut ctx = Context::new(config, 7);
        ctx.set_generation(Rc::new(Generation::new(&table(web))));
        let conn = Conn::new(&ctx, CLIENT.parse().unwrap(), 80, false, 0);
        H {
            ctx,
            conn,
            now: 0,
            connects: vec![],
            releases: vec![],
            client: vec![],
            upstream: vec![],
            attached: false,
            auto_connect: true,
            pending_client: vec![],
        }
    }

    fn web() -> H {
        H::new(Config::default(), &[ep(1), ep(2)])
    }

    /// Moves everything that can move, as a driver would after events.
    fn run(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            // Client → core.
            if !self.pending_client.is_empty() {
                let buf = self.conn.client_read_buf();
                let n = buf.len().min(self.pending_client.len());
                if n > 0 {
                    buf[..n].copy_from_slice(&self.pending_client[..n]);
                    self.pending_client.drain(..n);
                    self.conn.client_read(&mut self.ctx, n, self.now);
                    moved = true;
                }
            }
            // Core → client.
            let out = self.conn.client_write_buf().to_vec();
            if !out.is_empty() {
                self.client.extend_from_slice(&out);
                self.conn.client_wrote(&mut self.ctx, out.len(), self.now);
                moved = true;
            }
            // Core → upstream.
            let out = self.conn.upstream_write_buf().to_vec();
            if !out.is_empty() {
                self.upstream.extend_from_slice(&out);
                self.conn.upstream_wrote(&mut self.ctx, out.len(), self.now);
                moved = true;
            }
            while let Some(a) = self.conn.poll_action() {
                moved = true;
                match a {
                    Action::Connect(addr) => {
                        assert!(!self.attached, "Connect while attached");
                        self.connects.push(addr);
                        self.attached = true;
                        self.upstream.clear();
                        if self.auto_connect {
                            self.conn.upstream_connected(&mut self.ctx, false, self.now);
                        }
                    }
                    Action::Release { keep_alive } => {
                        assert!(self.attached, "Release without Connect");
                        self.attached = false;
                        self.releases.push(keep_alive);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no fixed point");
    }

    fn send(&mut self, bytes: &[u8]) {
        self.pending_client.extend_from_slice(bytes);
        self.run();
    }

    fn respond(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let buf = self.conn.upstream_read_buf();
            assert!(!buf.is_empty(), "upstream not read (backpressure or detached)");
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.conn.upstream_read(&mut self.ctx, n, self.now);
            rest = &rest[n..];
            self.run();
        }
    }

    fn client_text(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.client)).unwrap()
    }

    fn upstream_text(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.upstream)).unwrap()
    }

    fn advance(&mut self, ns: u64) {
        self.now += ns;
        self.conn.tick(&mut self.ctx, self.now);
        self.run();
    }
}

/// The data of a chunked body without trailer fields (no extensions: what Sluice writes).
fn dechunk(body: &str) -> String {
    let (data, trailer) = dechunk_with_trailer(body);
    assert_eq!(trailer, "", "last chunk, no trailers");
    data
}

/// The data and the trailer section (its field lines, without the empty line that ends it) of
/// a chunked body Sluice wrote (no extensions), which must end where the body does.
fn dechunk_with_trailer(mut body: &str) -> (String, String) {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("size line");
        let n = usize::from_str_radix(size, 16).expect("hex size");
        if n == 0 {
            let trailer = rest.strip_suffix("\r\n").expect("the empty line at the end");
            assert!(trailer.is_empty() || trailer.ends_with("\r\n"), "{rest:?}");
            assert!(!trailer.contains("\r\n\r\n") && !trailer.starts_with("\r\n"), "{rest:?}");
            return (data, trailer.to_string());
        }
        data.push_str(&rest[..n]);
        assert_eq!(&rest[n..n + 2], "\r\n");
        body = &rest[n + 2..];
    }
}

const S: u64 = 1_000_000_000;

#[test]
fn a_get_is_rewritten_and_its_response_relayed_with_keep_alive_on_both_sides() {
    let mut h = H::web();
    h.send(b"GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nAccept: */*\r\n\r\n");
    assert_eq!(h.connects, [ep(1)]);
    let up = h.upstream_text();
    assert!(up.starts_with("GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\nAccept: */*\r\n"), "{up}");
    for gone in ["X-Hop", "Keep-Alive", "keep-alive", "6.6.6.6"] {
        assert!(!up.contains(gone), "{gone} forwarded: {up}");
    }
    // TE is the client's hop's; Sluice says `trailers` for its own (see te_trailers_...).
    assert!(up.contains("\r\nTE: trailers\r\nConnection: te\r\n\r\n"), "{up}");
    assert_eq!((up.matches("TE:").count(), up.matches("Connection:").count()), (1, 1), "{up}");
    for set in [
        "X-Forwarded-For: 192.0.2.7\r\n",
        "X-Real-IP: 192.0.2.7\r\n",
        "X-Forwarded-Proto: http\r\n",
        "X-Forwarded-Host: app.example\r\n",
        "X-Forwarded-Port: 80\r\n",
    ] {
        assert!(up.contains(set), "{set} missing: {up}");
    }
    let rid = up.split("X-Request-ID: ").nth(1).unwrap().split("\r\n").next().unwrap();
    assert_eq!(rid.len(), 32);
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(up.ends_with("\r\n\r\n"));

    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
    assert_eq!(h.client_text(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: sluice\r\n\r\nhello");
    assert_eq!(h.releases, [true], "upstream back to the pool");
    assert!(!h.conn.is_finished());

    // The next request, round robin: the other endpoint; its X-Request-ID kept.
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Request-ID: abc\r\n\r\n");
    assert_eq!(h.connects, [ep(1), ep(2)]);
    let up = h.upstream_text();
    assert!(up.contains("X-Request-ID: abc\r\n") && up.matches("X-Request-ID").count() == 1, "{up}");
    h.respond(b"HTTP/1.1 204 No Content\r\nServer: be\r\n\r\n");
    assert_eq!(h.client_text(), "HTTP/1.1 204 No Content\r\nServer: be\r\n\r\n");
    assert_eq!(h.ctx.stats().responses[2], 2);

    // Idle between requests, the connection gives its buffers back; the next request takes
    // them again.
    assert!(h.conn.buffers_held() > 0);
    h.conn.shed_idle_buffers();
    assert_eq!(h.conn.buffers_held(), 0, "an idle keep-alive connection holds no buffer");
    h.send(b"GET /again HTTP/1.1\r\nHost: app.example\r\n\r\n");
    assert!(h.upstream_text().starts_with("GET /again HTTP/1.1\r\n"));
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(h.client_text().ends_with("\r\n\r\nok"));
}

#[test]
fn pipelined_requests_are_answered_in_order_one_at_a_time() {
    let whole = b"GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.example\r\n\r\nGET /3 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n";
    for split in [whole.len(), 1, 17, 40] {
        let mut h = H::web();
        for piece in whole.chunks(split) {
            h.send(piece);
        }
        for i in 1..=3 {
            let up = h.upstream_text();
            assert!(up.starts_with(&format!("GET /{i} ")), "split {split}: {up}");
            assert_eq!(up.matches("GET").count(), 1, "one at a time: {up}");
            h.respond(format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{i}").as_bytes());
        }
        let out = h.client_text();
        let bodies: Vec<&str> = out.split("\r\n\r\n").skip(1).map(|s| &s[..1]).collect();
        assert_eq!(bodies, ["1", "2", "3"], "{out}");
        assert!(out.ends_with("Connection: close\r\n\r\n3"), "{out}");
        assert!(h.conn.is_finished());
    }
}

#[test]
fn chunked_bodies_are_reframed_both_ways_and_a_sized_body_keeps_its_length() {
    let req = b"POST /up HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: kept\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n";
    for split in [req.len(), 1, 7] {
        let mut h = H::web();
        for piece in req.chunks(split) {
            h.send(piece);
        }
        let up = h.upstream_text();
        let (head, body) = up.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        let (data, trailer) = dechunk_with_trailer(body);
        assert_eq!((data.as_str(), trailer.as_str()), ("helloabc", "X-Trailer: kept\r\n"), "{body}");
        for piece in resp.chunks(split) {
            h.respond(piece);
        }
        let out = h.client_text();
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\nServer: sluice\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "{out}"
        );
        assert_eq!(dechunk(out.split_once("\r\n\r\n").unwrap().1), "wxyz", "{out}");
        assert_eq!(h.releases, [true]);
    }
    // Content-Length both ways, kept.
    let mut h = H::web();
    h.send(b"POST /echo HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc");
    let up = h.upstream_text();
    assert!(
        up.contains("Content-Length: 3\r\n") && up.ends_with("\r\n\r\nabc") && !up.contains("chunked"),
        "{up}"
    );
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    let out = h.client_text();
    assert!(
        out.contains("Content-Length: 3\r\n") && !out.contains("chunked") && out.ends_with("abc"),
        "{out}"
    );
}

#[test]
fn responses_without_a_body_and_a_close_delimited_one() {
    let mut h = H::web();
    h.send(b"HEAD / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    assert_eq!(h.client_text(), "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nServer: sluice\r\n\r\n");
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n");
    assert!(h.client_text().ends_with("\r\n\r\n"));
    assert_eq!(h.releases, [true, true]);

    // Close-delimited: chunked to an HTTP/1.1 client, which stays open...
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\n\r\nuntil close");
    h.conn.upstream_eof(&mut h.ctx, h.now);
    h.run();
    let out = h.client_text();
    assert!(out.contains("Transfer-Encoding: chunked\r\n\r\nb\r\nuntil close\r\n0\r\n\r\n"), "{out}");
    assert_eq!(h.releases, [true, true, false]);
    assert!(!h.conn.is_finished());

    // ... and delimited by close to an HTTP/1.0 one.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let out = h.client_text();
    assert!(out.ends_with("Connection: close\r\n\r\nabc"), "{out}");
    assert!(h.conn.is_finished());
    // An HTTP/1.0 client with keep-alive keeps it for a sized response.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    assert!(h.client_text().contains("Connection: keep-alive\r\n"));
    assert!(!h.conn.is_finished());
    // Without it, closed.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.0\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    assert!(h.conn.is_finished());
}

#[test]
fn sluice_answers_404_503_and_the_limit_statuses_itself() {
    let cases: &[(&[u8], &str, bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: other.example\r\n\r\n", "404 Not Found", false),
        (b"GET /empty HTTP/1.1\r\nHost: app.example\r\n\r\n", "503 Service Unavailable", false),
        (b"GET /gone HTTP/1.1\r\nHost: app.example\r\n\r\n", "503 Service Unavailable", false),
        (b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2000000\r\n\r\n", "413 ", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request", true),
        (b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400 ", true),
        (b"GET / HTTP/1.1\r\nHost: app.example\r\nExpect: magic\r\n\r\n", "417 ", true),
    ];
    for &(req, status, closed) in cases {
        let mut h = H::web();
        h.send(req);
        let out = h.client_text();
        assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
        assert!(out.contains("Server: sluice\r\n"), "{out}");
        assert_eq!(h.conn.is_finished(), closed, "{out}");
        assert!(h.connects.is_empty());
    }
    // 414 and 431.
    let mut h = H::web();
    h.send(format!("GET /{} HTTP/1.1\r\nHost: app.example\r\n\r\n", "a".repeat(9000)).as_bytes());
    assert!(h.client_text().starts_with("HTTP/1.1 414 "));
    let mut h = H::web();
    h.send(format!("GET / HTTP/1.1\r\nHost: app.example\r\nX: {}\r\n\r\n", "a".repeat(33000)).as_bytes());
    assert!(h.client_text().starts_with("HTTP/1.1 431 "));
    // A locally answered request's body is dropped and the connection goes on.
    let mut h = H::web();
    h.send(b"POST / HTTP/1.1\r\nHost: nowhere\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 404 "));
    assert!(h.upstream_text().starts_with("GET / HTTP/1.1\r\n"));
    // proxy-body-size 0: no limit; a chunked body over a limit: 413.
    let mut h = H::new(Config { max_body_bytes: Some(4), ..Config::default() }, &[ep(1)]);
    h.send(
        b"POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(h.client_text().starts_with("HTTP/1.1 413 "));
    assert!(h.conn.is_finished());
}

#[test]
fn slow_heads_get_408_idle_connections_close_quietly() {
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHo");
    h.advance(59 * S);
    assert!(h.client.is_empty());
    h.advance(S);
    assert!(h.client_text().starts_with("HTTP/1.1 408 "));
    assert!(h.conn.is_finished());
    assert_eq!(h.ctx.stats().client_timeouts, 1);

    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.client_text();
    h.advance(74 * S);
    assert!(!h.conn.is_finished());
    h.advance(S);
    assert!(h.conn.is_finished() && h.client.is_empty(), "idle keep-alive closed without a response");

    // After 70 s of keep-alive quiet, a head in two pieces: its 60 s start with its first byte.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.client_text();
    h.advance(70 * S);
    h.send(b"GET / HTTP/1.1\r\nHo");
    h.advance(S);
    assert!(h.client.is_empty() && !h.conn.is_finished(), "{}", h.client_text());
    h.send(b"st: app.example\r\n\r\n");
    assert!(h.upstream_text().starts_with("GET / HTTP/1.1\r\n"));
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 200 "));
    // And a slow one after quiet still gets its 408, 60 s after its first byte.
    h.advance(70 * S);
    h.send(b"GET / HTTP/1.1\r\nHo");
    h.advance(59 * S);
    assert!(h.client.is_empty());
    h.advance(S);
    assert!(h.client_text().starts_with("HTTP/1.1 408 "));
}

#[test]
fn broken_chunked_bodies_get_400_and_a_close_and_are_counted() {
    // RFC 9112 §7.1: each error of the chunked framing, before any response began (400) and
    // in the body of a request Sluice answered itself (a close: its answer went out already).
    let bodies: &[&[u8]] = &[
        b"10000000000000000\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5;a b\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"0\r\nX: a\r\n b\r\n\r\n",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let mut h = H::web();
        let mut req = b"POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        h.send(&req);
        let out = h.client_text();
        assert!(out.starts_with("HTTP/1.1 400 "), "{i}: {out}");
        assert!(h.conn.is_finished(), "{i}");
        assert_eq!(h.ctx.stats().rejected_bodies, 1, "{i}");

        let mut h = H::web();
        let mut req = b"POST / HTTP/1.1\r\nHost: nowhere\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        h.send(&req);
        let out = h.client_text();
        assert!(out.starts_with("HTTP/1.1 404 ") && !out.contains("400"), "{i}: {out}");
        assert!(h.conn.is_finished(), "{i}");
        assert_eq!(h.ctx.stats().rejected_bodies, 1, "{i}");
    }
}

#[test]
fn slow_bodies_get_408_and_a_trickle_does_not_hold_the_exchange_for_ever() {
    // A body that stops: 408 after the body timeout (not the upstream's 504), counted.
    let mut h = H::web();
    h.send(b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 10\r\n\r\nhel");
    assert!(h.upstream_text().ends_with("hel"));
    h.advance(59 * S);
    assert!(h.client.is_empty());
    h.advance(S);
    assert!(h.client_text().starts_with("HTTP/1.1 408 "));
    assert!(h.conn.is_finished());
    assert_eq!(h.releases, [false], "the upstream connection is let go, not pooled");
    assert_eq!(h.ctx.stats().client_timeouts, 1);
    assert_eq!(h.ctx.stats().responses[5], 0, "the client's slowness is not an upstream error");

    // A trickle: a byte every 50 s restarts the clock between reads (nginx's
    // client_body_timeout), and the body's end lets the exchange go on.
    let mut h = H::new(Config { client_body_timeout_ns: 60 * S, ..Config::default() }, &[ep(1)]);
    h.send(b"POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        h.advance(50 * S);
        h.send(b"1\r\nx\r\n");
    }
    h.send(b"0\r\n\r\n");
    h.advance(50 * S);
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 200 "));
    assert_eq!(h.ctx.stats().client_timeouts, 0);

    // A custom timeout: 2 s.
    let mut h = H::new(Config { client_body_timeout_ns: 2 * S, ..Config::default() }, &[ep(1)]);
    h.send(b"PUT / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nab");
    h.advance(S);
    assert!(h.client.is_empty());
    h.advance(S);
    assert!(h.client_text().starts_with("HTTP/1.1 408 "));
    assert_eq!(h.ctx.stats().client_timeouts, 1);
}

#[test]
fn upstream_failures_502_504_and_retries_only_when_the_request_can_be_sent_again() {
    // Connect refused everywhere: tried on each endpoint, 3 tries, then 502.
    let mut h = H::new(Config::default(), &[ep(1), ep(2), ep(3), ep(4)]);
    h.auto_connect = false;
    h.send(b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2\r\n\r\nhi");
    for _ in 0..3 {
        h.conn.upstream_failed(&mut h.ctx, UpstreamError::Connect, h.now);
        h.run();
    }
    assert_eq!(h.connects, [ep(1), ep(2), ep(3)], "a refused connect moves even a POST");
    assert_eq!(h.releases, [false, false, false]);
    assert!(h.client_text().starts_with("HTTP/1.1 502 "));

    // Connect timeout: 504.
    let mut h = H::web();
    h.auto_connect = false;
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.advance(5 * S);
    assert_eq!(h.connects.len(), 2, "timed-out connect retried");
    h.advance(5 * S);
    h.advance(5 * S);
    assert!(h.client_text().starts_with("HTTP/1.1 504 "));

    // Read timeout: 504, not retried.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.advance(60 * S);
    assert!(h.client_text().starts_with("HTTP/1.1 504 "));
    assert_eq!(h.connects.len(), 1);

    // Reset before any response byte: a GET moves, a POST does not.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.conn.upstream_failed(&mut h.ctx, UpstreamError::Io, h.now);
    h.run();
    assert_eq!(h.connects, [ep(1), ep(2)]);
    assert!(h.upstream_text().starts_with("GET / HTTP/1.1\r\n"), "sent again whole");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 200 "));

    let mut h = H::web();
    h.send(b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2\r\n\r\nhi");
    h.conn.upstream_eof(&mut h.ctx, h.now);
    h.run();
    assert_eq!(h.connects, [ep(1)]);
    assert!(h.client_text().starts_with("HTTP/1.1 502 "));

    // After the response began: closed, no status.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    h.conn.upstream_eof(&mut h.ctx, h.now);
    h.run();
    assert!(h.client_text().ends_with("abc"));
    assert!(h.conn.is_finished());
    // A malformed response head: 502.
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 502 "));
}

#[test]
fn an_endpoint_that_keeps_failing_is_skipped() {
    let mut h = H::web();
    h.auto_connect = false;
    for _ in 0..3 {
        h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
        let before = h.connects.len();
        // Fail ep(1) whenever it is tried; ep(2) answers.
        loop {
            let last = *h.connects.last().unwrap();
            if last == ep(1) {
                h.conn.upstream_failed(&mut h.ctx, UpstreamError::Connect, h.now);
                h.run();
            } else {
                h.conn.upstream_connected(&mut h.ctx, false, h.now);
                h.run();
                h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                break;
            }
        }
        assert!(h.connects.len() > before);
    }
    assert!(!h.ctx.health().is_up(&ep(1), h.now));
    let n = h.connects.len();
    for _ in 0..4 {
        h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
        h.conn.upstream_connected(&mut h.ctx, false, h.now);
        h.run();
        h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    assert!(h.connects[n..].iter().all(|&a| a == ep(2)), "{:?}", &h.connects[n..]);
}

#[test]
fn expect_100_continue_is_forwarded_and_the_100_relayed() {
    let mut h = H::web();
    h.send(b"PUT /f HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert!(h.upstream_text().contains("Expect: 100-continue\r\n"));
    h.respond(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(h.client_text(), "HTTP/1.1 100 Continue\r\n\r\n");
    h.send(b"abc");
    assert_eq!(h.upstream_text(), "abc");
    h.respond(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 201 "));
    assert!(!h.conn.is_finished());
    // 413 early, before the body.
    let mut h = H::web();
    h.send(
        b"PUT /f HTTP/1.1\r\nHost: app.example\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(h.client_text().starts_with("HTTP/1.1 413 "));
    assert!(h.connects.is_empty());
}

#[test]
fn an_upgrade_becomes_a_tunnel_after_the_101() {
    let mut h = H::web();
    h.send(b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let up = h.upstream_text();
    assert!(up.contains("Upgrade: websocket\r\n") && up.contains("Connection: upgrade\r\n"), "{up}");
    h.respond(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nserver-first",
    );
    let out = h.client_text();
    assert!(
        out.starts_with("HTTP/1.1 101 Switching Protocols\r\n") && out.ends_with("\r\n\r\nserver-first"),
        "{out}"
    );
    h.send(b"\x81\x05hello GET / HTTP/1.1\r\n\r\n");
    assert_eq!(h.upstream, b"\x81\x05hello GET / HTTP/1.1\r\n\r\n", "bytes, not HTTP");
    h.respond(b"\x81\x02ok");
    assert_eq!(h.client, b"\x81\x02ok");
    h.conn.upstream_eof(&mut h.ctx, h.now);
    h.run();
    assert!(h.conn.is_finished());
    assert_eq!(h.releases, [false]);
}

#[test]
fn a_large_body_streams_through_bounded_buffers_with_backpressure() {
    let mut h = H::web();
    let size = 10 * 1024 * 1024usize;
    h.ctx = Context::new(Config { max_body_bytes: None, ..Config::default() }, 1);
    h.ctx.set_generation(Rc::new(Generation::new(&table(&[ep(1)]))));
    h.conn = Conn::new(&h.ctx, CLIENT.parse().unwrap(), 80, false, 0);
    h.send(format!("POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: {size}\r\n\r\n").as_bytes());
    h.upstream.clear();
    // Upload: the client offers everything; the upstream reads 64 KiB at a time.
    let chunk = vec![b'x'; 256 * 1024];
    let mut offered = 0;
    let mut received = 0;
    while received < size {
        if offered < size && h.pending_client.len() < chunk.len() {
            h.pending_client.extend_from_slice(&chunk[..chunk.len().min(size - offered)]);
            offered += chunk.len().min(size - offered);
        }
        // Feed the client side without draining the upstream.
        let buf = h.conn.client_read_buf();
        let n = buf.len().min(h.pending_client.len());
        buf[..n].copy_from_slice(&h.pending_client[..n]);
        h.pending_client.drain(..n);
        h.conn.client_read(&mut h.ctx, n, 0);
        let out = h.conn.upstream_write_buf();
        let m = out.len().min(64 * 1024);
        received += m;
        h.conn.upstream_wrote(&mut h.ctx, m, 0);
    }
    // Download: the upstream offers, the client reads slowly.
    h.respond(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes());
    h.client.clear();
    let mut sent = 0;
    let mut got = 0;
    while got < size {
        let buf = h.conn.upstream_read_buf();
        let n = buf.len().min(size - sent);
        buf[..n].fill(b'y');
        sent += n;
        h.conn.upstream_read(&mut h.ctx, n, 0);
        let out = h.conn.client_write_buf();
        let m = out.len().min(4096);
        got += m;
        h.conn.client_wrote(&mut h.ctx, m, 0);
    }
    let max = h.ctx.stats().max_conn_buffered_bytes;
    assert!(max <= 4 * 48 * 1024, "{max} bytes buffered");
    assert!(max >= 32 * 1024, "the buffers were used: {max}");
}

#[test]
fn a_request_in_flight_keeps_its_generation_and_a_removed_endpoint_is_not_pooled() {
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    // A new generation without ep(1) arrives while the request is in flight.
    h.ctx.set_generation(Rc::new(Generation::new(&table(&[ep(3)]))));
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 200 "));
    assert_eq!(h.releases, [false], "ep(1) is gone: its connection closes");
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    assert_eq!(h.connects, [ep(1), ep(3)]);
}

#[test]
fn the_thousandth_request_closes_the_connection() {
    let mut h = H::new(Config { max_requests_per_client: 3, ..Config::default() }, &[ep(1)]);
    for i in 0..3 {
        h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
        h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let out = h.client_text();
        assert_eq!(out.contains("Connection: close"), i == 2, "{out}");
    }
    assert!(h.conn.is_finished());
}

#[test]
fn trusted_forwarded_headers_are_kept_and_appended_to() {
    let mut h = H::new(Config { trust_forwarded_headers: true, ..Config::default() }, &[ep(1)]);
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\n\r\n");
    let up = h.upstream_text();
    assert!(up.contains("X-Forwarded-For: 1.1.1.1, 192.0.2.7\r\n"), "{up}");
    assert!(
        up.contains("X-Forwarded-Proto: https\r\n") && !up.contains("X-Forwarded-Proto: http\r\n"),
        "{up}"
    );
}

#[test]
fn absolute_form_targets_go_upstream_in_origin_form() {
    let mut h = H::web();
    h.send(b"GET http://app.example/x?y HTTP/1.1\r\nHost: ignored\r\n\r\n");
    let up = h.upstream_text();
    assert!(up.starts_with("GET /x?y HTTP/1.1\r\nHost: app.example\r\n"), "{up}");
    assert!(!up.contains("ignored\r\n"), "{up}");
}

#[test]
fn a_keep_alive_exchange_split_at_every_byte_gives_the_same_bytes() {
    let req = b"POST /p HTTP/1.1\r\nHost: app.example\r\nX-Request-ID: r1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: app.example\r\nX-Request-ID: r2\r\n\r\n";
    let resp1 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
    let resp2 = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    let run = |req_cut: usize, resp_cut: usize, which: u8| {
        let mut h = H::web();
        h.send(&req[..req_cut]);
        h.send(&req[req_cut..]);
        let first = h.upstream_text();
        let (c1, c2) = if which == 1 { (resp_cut, resp2.len()) } else { (resp1.len(), resp_cut) };
        h.respond(&resp1[..c1]);
        h.respond(&resp1[c1..]);
        let second = h.upstream_text();
        h.respond(&resp2[..c2]);
        h.respond(&resp2[c2..]);
        // Chunk boundaries follow the reads; the data must not.
        let (head, body) = first.split_once("\r\n\r\n").unwrap();
        let first = format!("{head}\r\n\r\n{}", dechunk(body));
        let client = h.client_text();
        let (c_head, c_rest) = client.split_once("\r\n\r\nokHTTP").unwrap();
        let (c2_head, c2_body) = c_rest.split_once("\r\n\r\n").unwrap();
        let client = format!("{c_head} ok HTTP{c2_head} {}", dechunk(c2_body));
        (first, second, client, h.releases.clone())
    };
    let reference = run(req.len(), resp1.len(), 1);
    assert!(reference.0.starts_with("POST /p ") && reference.0.contains("X-Request-ID: r1\r\n"));
    assert!(reference.0.ends_with("Transfer-Encoding: chunked\r\n\r\nabc"), "{}", reference.0);
    assert!(reference.1.starts_with("GET /next ") && reference.1.contains("X-Request-ID: r2\r\n"));
    assert!(
        reference.2.contains(" ok HTTP/1.1 404 Not Found\r\n") && reference.2.ends_with(" x"),
        "{}",
        reference.2
    );
    assert_eq!(reference.3, [true, true]);
    for cut in 0..=req.len() {
        assert_eq!(run(cut, resp1.len(), 1), reference, "request cut at {cut}");
    }
    for cut in 0..=resp1.len() {
        assert_eq!(run(req.len(), cut, 1), reference, "first response cut at {cut}");
    }
    for cut in 0..=resp2.len() {
        assert_eq!(run(req.len(), cut, 2), reference, "second response cut at {cut}");
    }
}

#[test]
fn bytes_an_upstream_sends_past_its_response_are_not_served_to_the_next_request() {
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
    );
    assert_eq!(h.releases, [false], "an upstream that spoke out of turn is closed");
    h.client_text();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    assert!(h.client.is_empty(), "nothing answered before the new upstream does");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood");
    assert!(h.client_text().ends_with("good"));
}

#[test]
fn an_http10_client_is_told_its_connection_is_kept() {
    let mut h = H::web();
    h.send(b"GET / HTTP/1.0\r\nHost: nowhere\r\nConnection: keep-alive\r\n\r\n");
    let out = h.client_text();
    assert!(out.starts_with("HTTP/1.1 404 ") && out.contains("Connection: keep-alive\r\n"), "{out}");
    assert!(!h.conn.is_finished());
}

#[test]
fn a_tunnel_delivers_what_the_upstream_sent_before_it_closed() {
    let mut h = H::web();
    h.send(b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    h.respond(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    h.client_text();
    // The upstream's bytes arrive while the client reads nothing, then the upstream closes.
    let buf = h.conn.upstream_read_buf();
    buf[..3].copy_from_slice(b"bye");
    h.conn.upstream_read(&mut h.ctx, 3, 0);
    h.conn.upstream_eof(&mut h.ctx, 0);
    h.run();
    assert_eq!(h.client_text(), "bye");
    assert!(h.conn.is_finished());
}

#[test]
fn a_slow_answer_to_a_slow_reader_is_not_cut_by_the_send_timeout() {
    let mut h = H::web();
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.advance(59 * S);
    // The response arrives after 59 s; the client does not read it at once.
    let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let buf = h.conn.upstream_read_buf();
    buf[..r.len()].copy_from_slice(r);
    h.conn.upstream_read(&mut h.ctx, r.len(), h.now);
    h.now += S;
    h.conn.tick(&mut h.ctx, h.now);
    assert!(!h.conn.is_finished() && !h.conn.client_write_buf().is_empty());
    // A client that reads nothing for the whole send timeout is let go.
    h.now += 60 * S;
    h.conn.tick(&mut h.ctx, h.now);
    assert!(h.conn.is_finished());
}

#[test]
fn each_request_is_counted_in_its_routes_row_with_its_durations() {
    use sluice_model::route_stats::{REQUEST_DURATION, RESPONSES, UPSTREAM_DURATION, bucket};
    let mut t = table(&[ep(1)]);
    // Rows 1, 2, 3 for `/`, `/empty`, `/gone` (the entry's paths in order).
    let mut next = 0u16;
    t.routes.number_routes(|_| {
        next += 1;
        next
    });
    let mut h = H::web();
    h.ctx.set_generation(Rc::new(Generation::new(&t)));
    h.send(b"GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.advance(3_000_000);
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    h.send(b"GET /gone HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.send(b"GET / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n");
    let _ = h.client_text();
    let meter = h.ctx.routes();
    let web = meter.row(1).unwrap();
    assert_eq!((web.requests(), web.0[RESPONSES + 2], web.0[6]), (1, 1, 5));
    let (sum, count, buckets) = web.histogram(REQUEST_DURATION);
    assert_eq!((count, buckets[bucket(3_000_000)]), (1, 1));
    assert!((sum - 0.003).abs() < 1e-9, "{sum}");
    assert_eq!(web.histogram(UPSTREAM_DURATION).1, 1);
    let gone = meter.row(3).unwrap();
    assert_eq!((gone.requests(), gone.0[RESPONSES + 5]), (1, 1));
    assert_eq!(gone.histogram(UPSTREAM_DURATION).1, 0, "answered by Sluice: no upstream time");
    let none = meter.row(0).unwrap();
    assert_eq!((none.requests(), none.0[RESPONSES + 4]), (1, 1));
    assert_eq!(meter.row(2).unwrap().requests(), 0);
    // A refused head is nobody's route: row 0.
    h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert!(h.client_text().starts_with("HTTP/1.1 400"));
    assert_eq!(h.ctx.routes().row(0).unwrap().0[RESPONSES + 4], 2);
    // The driver publishes the rows that changed, once.
    let mut published = vec![];
    h.ctx.routes_mut().drain_changed(|row, r| published.push((row, r.requests())));
    published.sort();
    assert_eq!(published, [(0, 2), (1, 1), (3, 1)]);
    h.ctx.routes_mut().drain_changed(|row, _| panic!("row {row} again"));
}

/// A gRPC-like exchange over HTTP/1.1: trailers both ways, among them fields no trailer may carry.
const TRAILER_REQUEST: &[u8] = b"POST /grpc HTTP/1.1\r\nHost: app.example\r\nTE: trailers\r\n\
    Trailer: X-Checksum, Host\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\
    Host: evil.example\r\nContent-Length: 99\r\nX-Forwarded-For: 6.6.6.6\r\nx-other:  v \r\n\r\n";
const TRAILER_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n\
    Trailer: grpc-status, grpc-message, Content-Type\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n\
    0\r\ngrpc-status: 0\r\nContent-Type: text/evil\r\ngrpc-message: fine\r\nSet-Cookie: s=1\r\n\
    Transfer-Encoding: chunked\r\n\r\n";

/// What one trailer exchange gave: the upstream's head, data and trailers; the client's head,
/// data and trailers; the next request the upstream got, and the releases.
type TrailerRun = (String, String, String, String, String, String, String, Vec<bool>);

/// Runs [`TRAILER_REQUEST`] and [`TRAILER_RESPONSE`] arriving in these pieces, then a second
/// request on the same connection.
fn trailer_exchange(req: &[&[u8]], resp: &[&[u8]]) -> TrailerRun {
    let mut h = H::web();
    for piece in req {
        h.send(piece);
    }
    let up = h.upstream_text();
    for piece in resp {
        h.respond(piece);
    }
    h.send(b"GET /next HTTP/1.1\r\nHost: app.example\r\n\r\n");
    let next = h.upstream_text();
    h.respond(b"HTTP/1.1 204 No Content\r\n\r\n");
    let client = h.client_text();
    let (client, second) = client.split_once("HTTP/1.1 204 ").expect("the second response");
    assert_eq!(second, "No Content\r\nServer: sluice\r\n\r\n", "nothing of the first one left over");
    let (up_head, up_body) = up.split_once("\r\n\r\n").unwrap();
    let (c_head, c_body) = client.split_once("\r\n\r\n").unwrap();
    let (up_data, up_trailer) = dechunk_with_trailer(up_body);
    let (c_data, c_trailer) = dechunk_with_trailer(c_body);
    (up_head.into(), up_data, up_trailer, c_head.into(), c_data, c_trailer, next, h.releases.clone())
}

#[test]
fn trailers_are_forwarded_both_ways_without_the_fields_no_trailer_may_carry() {
    let reference = trailer_exchange(&[TRAILER_REQUEST], &[TRAILER_RESPONSE]);
    let (up_head, up_data, up_trailer, c_head, c_data, c_trailer, next, releases) = &reference;
    for want in
        ["TE: trailers\r\n", "Connection: te", "Trailer: X-Checksum\r\n", "Transfer-Encoding: chunked\r\n"]
    {
        assert!(up_head.contains(want), "{want}: {up_head}");
    }
    assert!(!up_head.contains("Host\r\n"), "Host is not announced as a trailer: {up_head}");
    assert_eq!(up_data, "hello");
    assert_eq!(
        up_trailer, "X-Checksum: abc\r\nx-other:  v \r\n",
        "Host, Content-Length, X-Forwarded-For dropped"
    );
    assert_eq!(
        c_head,
        "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTrailer: grpc-status, grpc-message\r\n\
         Server: sluice\r\nTransfer-Encoding: chunked"
    );
    assert_eq!(c_data, "ok");
    assert_eq!(c_trailer, "grpc-status: 0\r\ngrpc-message: fine\r\n", "Content-Type, Set-Cookie, TE dropped");
    assert!(next.starts_with("GET /next HTTP/1.1\r\n"), "{next}");
    assert_eq!(releases, &[true, true], "both upstream connections pooled: the bodies ended exactly");

    // Split in two at every byte, each way, and a byte at a time: the same bytes arrive.
    for cut in 0..=TRAILER_REQUEST.len() {
        let (a, b) = TRAILER_REQUEST.split_at(cut);
        assert_eq!(trailer_exchange(&[a, b], &[TRAILER_RESPONSE]), reference, "request cut at {cut}");
    }
    for cut in 0..=TRAILER_RESPONSE.len() {
        let (a, b) = TRAILER_RESPONSE.split_at(cut);
        assert_eq!(trailer_exchange(&[TRAILER_REQUEST], &[a, b]), reference, "response cut at {cut}");
    }
    let req: Vec<&[u8]> = TRAILER_REQUEST.chunks(1).collect();
    let resp: Vec<&[u8]> = TRAILER_RESPONSE.chunks(1).collect();
    assert_eq!(trailer_exchange(&req, &resp), reference, "byte by byte");
}

#[test]
fn trailers_are_dropped_toward_an_http10_client_whose_body_ends_at_close() {
    let resp = b"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Checksum: 99\r\n\r\n";
    for cut in 0..=resp.len() {
        let mut h = H::web();
        h.send(b"GET / HTTP/1.0\r\nHost: app.example\r\nTE: trailers\r\n\r\n");
        let up = h.upstream_text();
        assert!(!up.contains("TE:") && !up.contains("Connection:"), "{up}");
        h.respond(&resp[..cut]);
        h.respond(&resp[cut..]);
        assert_eq!(
            h.client_text(),
            "HTTP/1.1 200 OK\r\nServer: sluice\r\nConnection: close\r\n\r\nabcdef",
            "cut at {cut}"
        );
        assert!(h.conn.is_finished(), "the close ends the body");
        assert_eq!(h.releases, [true], "the upstream's body was read to its end");
    }
}

#[test]
fn te_trailers_goes_upstream_only_for_a_client_that_gets_the_trailers() {
    type Case = (&'static [u8], &'static [&'static str], &'static [&'static str]);
    let cases: &[Case] = &[
        (b"GET / HTTP/1.1\r\nHost: app.example\r\nTE: trailers\r\n\r\n", &["TE: trailers\r\n", "Connection: te\r\n"], &[]),
        (
            b"GET / HTTP/1.1\r\nHost: app.example\r\nTE: gzip;q=0.5, Trailers\r\nConnection: TE\r\n\r\n",
            &["TE: trailers\r\n", "Connection: te\r\n"],
            &["gzip", "TE\r\n"],
        ),
        (b"GET / HTTP/1.1\r\nHost: app.example\r\nTE: gzip\r\n\r\n", &[], &["TE:", "Connection:", "gzip"]),
        (b"GET / HTTP/1.0\r\nHost: app.example\r\nTE: trailers\r\n\r\n", &[], &["TE:", "Connection:"]),
        (b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", &[], &["TE:", "Connection:"]),
        (
            b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, TE\r\nTE: trailers\r\nUpgrade: websocket\r\n\r\n",
            &["TE: trailers\r\n", "Connection: te, upgrade\r\n", "Upgrade: websocket\r\n"],
            &[],
        ),
        // Trailer announces a trailer section: only with a chunked body, only names that may come.
        (
            b"POST / HTTP/1.1\r\nHost: app.example\r\nTrailer: X-Sum\r\nContent-Length: 1\r\n\r\nx",
            &["Content-Length: 1\r\n"],
            &["Trailer"],
        ),
        (
            b"POST / HTTP/1.1\r\nHost: app.example\r\nTrailer: Host, authorization\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &["Transfer-Encoding: chunked\r\n"],
            &["Trailer"],
        ),
    ];
    for &(req, present, absent) in cases {
        let mut h = H::web();
        h.send(req);
        let up = h.upstream_text();
        let head = up.split_once("\r\n\r\n").unwrap().0.to_string() + "\r\n";
        for p in present {
            assert!(head.contains(p), "{p:?} missing: {head}");
        }
        for a in absent {
            assert!(!head.contains(a), "{a:?} forwarded: {head}");
        }
        assert!(head.matches("Connection:").count() <= 1, "{head}");
    }
}

/// Offers all of `input` from the client (`to_upstream`) or from the upstream, as fast as the
/// connection reads it, while the other side takes `take` bytes per write: what that side got,
/// whether a read was cut short by full buffers, and how many writes carried the trailer
/// section (from the last chunk's line to the end).
fn trickle(h: &mut H, input: &[u8], to_upstream: bool, take: usize) -> (Vec<u8>, bool, usize) {
    let (mut got, mut rest, mut cut_short) = (Vec::new(), input, false);
    // Writes so far, and the ones that carried the last chunk's line and the section's end.
    let (mut writes, mut first, mut last) = (0, None, None);
    loop {
        let mut moved = false;
        if !rest.is_empty() {
            let buf = if to_upstream { h.conn.client_read_buf() } else { h.conn.upstream_read_buf() };
            let n = buf.len().min(rest.len());
            cut_short |= n < rest.len();
            if n > 0 {
                buf[..n].copy_from_slice(&rest[..n]);
                if to_upstream {
                    h.conn.client_read(&mut h.ctx, n, 0);
                } else {
                    h.conn.upstream_read(&mut h.ctx, n, 0);
                }
                rest = &rest[n..];
                moved = true;
            }
        }
        while let Some(a) = h.conn.poll_action() {
            match a {
                Action::Connect(_) => h.conn.upstream_connected(&mut h.ctx, false, 0),
                Action::Release { keep_alive } => h.releases.push(keep_alive),
            }
            moved = true;
        }
        let out = if to_upstream { h.conn.upstream_write_buf() } else { h.conn.client_write_buf() };
        let m = out.len().min(take);
        if m > 0 {
            got.extend_from_slice(&out[..m]);
            if to_upstream {
                h.conn.upstream_wrote(&mut h.ctx, m, 0);
            } else {
                h.conn.client_wrote(&mut h.ctx, m, 0);
            }
            moved = true;
            let tail = &got[got.len().saturating_sub(m + 4)..];
            writes += 1;
            if first.is_none() && tail.windows(5).any(|w| w == b"\r\n0\r\n") {
                first = Some(writes);
            }
            if first.is_some() && last.is_none() && got.ends_with(b"\r\n\r\n") {
                last = Some(writes);
            }
        }
        if !moved {
            let trailer_writes = first.zip(last).map_or(0, |(f, l)| l + 1 - f);
            return (got, cut_short, trailer_writes);
        }
    }
}

#[test]
fn a_trailer_section_crosses_full_buffers_both_ways_unchanged() {
    // 100 KiB of data, more than the two buffers on its way hold, then 11 KiB of trailer lines:
    // some dropped, some with names longer than any dropped one.
    let data = "d".repeat(100 * 1024);
    let (mut trailer_in, mut trailer_out) = (String::new(), String::new());
    for i in 0..200 {
        let line = match i % 10 {
            3 => format!("Content-Length: {i}\r\n"),
            7 => format!("X-A-Trailer-Name-Longer-Than-Any-{i}: {}\r\n", "v".repeat(30)),
            _ => format!("X-T-{i}: {}\r\n", "w".repeat(40)),
        };
        trailer_in.push_str(&line);
        if i % 10 != 3 {
            trailer_out.push_str(&line);
        }
    }
    assert!(trailer_in.len() > 8 * 1024 && trailer_in.len() < sluice_l7::h1::MAX_TRAILER_BYTES);
    let body = format!("{:x}\r\n{data}\r\n0\r\n{trailer_in}\r\n", data.len());
    let req = format!("POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    let resp = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}");

    for take in [1, 777, 4093] {
        let mut h = H::web();
        let (up, cut_short, drains) = trickle(&mut h, req.as_bytes(), true, take);
        assert!(cut_short, "take {take}: the client's bytes did not fit the buffers at once");
        assert!(drains >= 3, "take {take}: the trailer section left in {drains} writes");
        let up = String::from_utf8(up).unwrap();
        let (up_data, up_trailer) = dechunk_with_trailer(up.split_once("\r\n\r\n").unwrap().1);
        assert!(up_data == data && up_trailer == trailer_out, "take {take}: request body or trailers differ");

        let (client, cut_short, drains) = trickle(&mut h, resp.as_bytes(), false, take);
        assert!(cut_short, "take {take}: the upstream's bytes did not fit the buffers at once");
        assert!(drains >= 3, "take {take}: the trailer section left in {drains} writes");
        let client = String::from_utf8(client).unwrap();
        let (c_data, c_trailer) = dechunk_with_trailer(client.split_once("\r\n\r\n").unwrap().1);
        assert!(c_data == data && c_trailer == trailer_out, "take {take}: response body or trailers differ");
        assert_eq!(h.releases, [true], "take {take}");
        let max = h.ctx.stats().max_conn_buffered_bytes;
        assert!(max <= 4 * 48 * 1024, "take {take}: {max} bytes buffered");
    }
}

#[test]
fn ewma_moves_requests_off_a_slow_endpoint() {
    use sluice_l7::proxy::Balance;
    let mut h = H::new(Config { balance: Balance::Ewma, ..Config::default() }, &[ep(1), ep(2)]);
    let mut to = Vec::new();
    for _ in 0..20 {
        h.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n");
        let addr = *h.connects.last().unwrap();
        to.push(addr);
        // ep(1) takes 50 ms to answer, ep(2) 1 ms.
        h.advance(if addr == ep(1) { 50_000_000 } else { 1_000_000 });
        h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert!(h.client_text().starts_with("HTTP/1.1 200 OK"));
    }
    // Both are measured within the first requests (an unmeasured endpoint scores 0); from then
    // on ep(1) loses every choice.
    assert!(to[..6].contains(&ep(1)) && to[..6].contains(&ep(2)), "{to:?}");
    let first_slow = to.iter().position(|a| *a == ep(1)).unwrap();
    assert!(to[first_slow + 1..].iter().all(|a| *a == ep(2)), "{to:?}");
}

#[test]
fn a_draining_gateway_closes_after_the_next_response_and_leaves_idle_connections_to_it() {
    // A request in a loop: its response says Connection: close once the drain has begun.
    let mut h = H::web();
    h.send(b"GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    assert!(!h.client_text().contains("Connection: close"));
    h.ctx.set_draining();
    h.send(b"GET /2 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
    let out = h.client_text();
    assert!(out.ends_with("Connection: close\r\n\r\n2"), "{out}");
    assert!(h.conn.is_finished());

    // An idle keep-alive connection is not closed under a request that may be on its way: it
    // is served, and closed after that response (or by its idle timeout).
    let mut h = H::web();
    h.send(b"GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    h.ctx.set_draining();
    h.conn.tick(&mut h.ctx, 10_000_000_000);
    h.run();
    assert!(!h.conn.is_finished());
    h.send(b"GET /2 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
    assert!(h.client_text().ends_with("Connection: close\r\n\r\n2"));
    assert!(h.conn.is_finished());
    let idle = Config::default().client_idle_timeout_ns;
    let mut h = H::web();
    h.send(b"GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    h.ctx.set_draining();
    h.conn.tick(&mut h.ctx, idle);
    h.run();
    assert!(h.conn.is_finished(), "the idle timeout still applies");

    // A connection that has not sent its first request yet is served.
    let mut h = H::web();
    h.ctx.set_draining();
    h.conn.tick(&mut h.ctx, 10_000_000_000);
    h.run();
    assert!(!h.conn.is_finished());
    h.send(b"GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\n");
    h.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    assert!(h.client_text().ends_with("Connection: close\r\n\r\n1"));
}
