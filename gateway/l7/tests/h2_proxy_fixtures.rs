//! HTTP/2 clients through the proxy, sans-IO: our h2 client role plays the client, a fake
//! driver plays the upstream sockets of each lane (one HTTP/1.1 upstream connection per
//! stream in flight). Streams multiplexed, a failing stream reset alone, flow-control
//! backpressure both ways, trailers both ways, and the HTTP/1.1 core's semantics (routing,
//! local answers, forwarded fields) kept.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use common::{ep, table};
use sluice_l7::h2::hpack::Field;
use sluice_l7::h2::{self, ErrorCode, Event, Request, Role, StreamId};
use sluice_l7::proxy::{Action, Config, Context, Generation, H2Conn};
use sluice_model::counters::Counter;

const CLIENT: &str = "192.0.2.7:40000";

/// What the client saw on a stream.
#[derive(Debug, Default, Clone)]
struct Seen {
    status: Option<u16>,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    ended: bool,
    reset: Option<ErrorCode>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One lane's fake upstream connection.
#[derive(Debug, Default)]
struct Up {
    attached: bool,
    addr: Option<SocketAddr>,
    /// Bytes it received on the current attachment.
    got: Vec<u8>,
    releases: Vec<bool>,
}

/// A fake driver: an h2 client, the proxy's HTTP/2 connection, an upstream per lane.
struct H {
    ctx: Context,
    conn: H2Conn,
    client: h2::Conn,
    now: u64,
    /// Client input not consumed yet.
    cin: Vec<u8>,
    seen: BTreeMap<u32, Seen>,
    ups: BTreeMap<usize, Up>,
    /// The client releases (reads) what it receives; off to hold its windows shut.
    reading: bool,
    /// Bytes received and not released, per stream (released when `reading` turns on).
    unreleased: Vec<(StreamId, usize)>,
    /// The upstreams take what the lanes write; off to stall them.
    upstreams_reading: bool,
    /// The last stream of each GOAWAY the client received.
    goaways: Vec<StreamId>,
}

impl H {
    fn new() -> H {
        let mut ctx = Context::new(Config::default(), 7);
        ctx.set_generation(Rc::new(Generation::new(&table(&[ep(1), ep(2)]))));
        let conn = H2Conn::new(&mut ctx, CLIENT.parse().unwrap(), 443, true, 0);
        let client = h2::Conn::new(Role::Client, h2::Config::DEFAULT);
        let mut h = H {
            ctx,
            conn,
            client,
            now: 0,
            cin: vec![],
            seen: BTreeMap::new(),
            ups: BTreeMap::new(),
            reading: true,
            unreleased: vec![],
            upstreams_reading: true,
            goaways: vec![],
        };
        h.run();
        h
    }

    fn run(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            // Client → proxy.
            let out = self.client.write_buf().to_vec();
            if !out.is_empty() {
                let buf = self.conn.client_read_buf();
                let n = buf.len().min(out.len());
                if n > 0 {
                    buf[..n].copy_from_slice(&out[..n]);
                    self.client.wrote(n);
                    self.conn.client_read(&mut self.ctx, n, self.now);
                    moved = true;
                }
            }
            // Proxy → client.
            let out = self.conn.client_write_buf().to_vec();
            if !out.is_empty() {
                self.cin.extend_from_slice(&out);
                self.conn.client_wrote(&mut self.ctx, out.len(), self.now);
                moved = true;
                self.client_recv();
            }
            if self.reading && !self.unreleased.is_empty() {
                for (s, n) in std::mem::take(&mut self.unreleased) {
                    self.client.release(s, n);
                }
                moved = true;
            }
            // Lanes → upstreams.
            let lanes: Vec<usize> =
                if self.upstreams_reading { self.ups.keys().copied().collect() } else { vec![] };
            for lane in lanes {
                let out = self.conn.upstream_write_buf(lane).to_vec();
                if !out.is_empty() {
                    self.ups.get_mut(&lane).unwrap().got.extend_from_slice(&out);
                    self.conn.upstream_wrote(&mut self.ctx, lane, out.len(), self.now);
                    moved = true;
                }
            }
            while let Some((lane, a)) = self.conn.poll_action() {
                moved = true;
                let up = self.ups.entry(lane).or_default();
                match a {
                    Action::Connect(addr) => {
                        assert!(!up.attached, "Connect while attached");
                        up.attached = true;
                        up.addr = Some(addr);
                        up.got.clear();
                        self.conn.upstream_connected(&mut self.ctx, lane, false, self.now);
                    }
                    Action::Release { keep_alive } => {
                        assert!(up.attached, "Release without Connect");
                        up.attached = false;
                        up.releases.push(keep_alive);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no fixed point");
    }

    fn client_recv(&mut self) {
        let mut off = 0;
        loop {
            let r = self.client.recv(&self.cin[off..], self.now);
            let consumed = r.consumed;
            let mut release = None;
            match r.event {
                None => {
                    off += consumed;
                    if consumed == 0 {
                        break;
                    }
                    continue;
                }
                Some(Event::Head { stream, head, end_stream }) => {
                    let s = self.seen.entry(stream.0).or_default();
                    if !head.is_informational() {
                        s.status = head.status();
                        s.fields = head.fields().map(|f| (text(f.name), text(f.value))).collect();
                    }
                    s.ended |= end_stream;
                }
                Some(Event::Data { stream, data, end_stream }) => {
                    let bytes = &self.cin[off..][data];
                    let s = self.seen.entry(stream.0).or_default();
                    s.body.extend_from_slice(bytes);
                    s.ended |= end_stream;
                    release = Some((stream, bytes.len()));
                }
                Some(Event::Trailers { stream, trailers }) => {
                    let s = self.seen.entry(stream.0).or_default();
                    s.trailers = trailers.fields().map(|f| (text(f.name), text(f.value))).collect();
                    s.ended = true;
                }
                Some(Event::Reset { stream, code }) => {
                    self.seen.entry(stream.0).or_default().reset = Some(code);
                }
                Some(Event::GoAway { last_stream, .. }) => self.goaways.push(last_stream),
                Some(Event::WindowUpdate { .. } | Event::Pong { .. }) => {}
                Some(e) => panic!("client: unexpected {e:?}"),
            }
            off += consumed;
            if let Some((s, n)) = release {
                if self.reading {
                    self.client.release(s, n);
                } else {
                    self.unreleased.push((s, n));
                }
            }
        }
        self.cin.drain(..off);
    }

    fn request(&mut self, method: &str, path: &str, fields: &[(&str, &str)], end: bool) -> StreamId {
        self.request_to("app.example", method, path, fields, end)
    }

    fn request_to(
        &mut self,
        authority: &str,
        method: &str,
        path: &str,
        fields: &[(&str, &str)],
        end: bool,
    ) -> StreamId {
        let req = Request {
            method: method.as_bytes(),
            scheme: b"https",
            authority: authority.as_bytes(),
            path: path.as_bytes(),
        };
        let fields: Vec<Field<'_>> =
            fields.iter().map(|(n, v)| Field::new(n.as_bytes(), v.as_bytes())).collect();
        let id = self.client.send_request(req, fields.iter().copied(), end).unwrap();
        self.run();
        id
    }

    fn data(&mut self, stream: StreamId, mut bytes: &[u8], end: bool) {
        loop {
            let n = self.client.send_data(stream, bytes, end).unwrap();
            bytes = &bytes[n..];
            self.run();
            if bytes.is_empty() {
                return;
            }
            assert!(n > 0, "the client cannot send: windows shut");
        }
    }

    /// The lane whose upstream received a request for `path`.
    fn lane_of(&self, path: &str) -> usize {
        let line = format!(" {path} HTTP/1.1\r\n");
        *self
            .ups
            .iter()
            .find(|(_, u)| u.attached && text(&u.got).contains(&line))
            .unwrap_or_else(|| panic!("no upstream got {path}: {:?}", self.ups))
            .0
    }

    fn upstream_text(&self, lane: usize) -> String {
        text(&self.ups[&lane].got)
    }

    /// The upstream of `lane` sends `bytes`; returns how many it could (backpressure).
    fn respond(&mut self, lane: usize, bytes: &[u8]) -> usize {
        let mut sent = 0;
        while sent < bytes.len() {
            let buf = self.conn.upstream_read_buf(lane);
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(bytes.len() - sent);
            buf[..n].copy_from_slice(&bytes[sent..sent + n]);
            self.conn.upstream_read(&mut self.ctx, lane, n, self.now);
            sent += n;
            self.run();
        }
        sent
    }

    fn seen(&self, stream: StreamId) -> Seen {
        self.seen.get(&stream.0).cloned().unwrap_or_default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn streams_are_multiplexed_each_on_its_own_upstream_and_answered_out_of_order() {
    let mut h = H::new();
    let a = h.request("GET", "/a", &[("accept", "*/*"), ("cookie", "x=1"), ("cookie", "y=2")], true);
    let b = h.request("GET", "/b?q=1", &[], true);
    let c = h.request("HEAD", "/c", &[], true);
    let (la, lb, lc) = (h.lane_of("/a"), h.lane_of("/b?q=1"), h.lane_of("/c"));
    assert!(la != lb && lb != lc && la != lc);
    let up = h.upstream_text(la);
    assert!(up.starts_with("GET /a HTTP/1.1\r\nhost: app.example\r\naccept: */*\r\n"), "{up}");
    assert!(up.contains("cookie: x=1; y=2\r\n"), "{up}");
    assert!(up.contains("X-Forwarded-For: 192.0.2.7\r\n"), "{up}");
    assert!(up.contains("X-Forwarded-Proto: https\r\n"), "{up}");
    assert!(up.contains("X-Forwarded-Port: 443\r\n"), "{up}");
    assert!(up.contains("X-Request-ID: "), "{up}");
    assert!(!up.to_ascii_lowercase().contains("transfer-encoding"), "{up}");

    h.respond(lc, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    h.respond(lb, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbee\r\n0\r\n\r\n");
    h.respond(la, b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-A: 1\r\n\r\naaa");
    let (sa, sb, sc) = (h.seen(a), h.seen(b), h.seen(c));
    assert_eq!((sa.status, sa.body.as_slice(), sa.ended), (Some(201), &b"aaa"[..], true), "{sa:?}");
    assert_eq!(sa.field("x-a"), Some("1"));
    assert_eq!(sa.field("server"), Some("sluice"));
    assert_eq!((sb.status, sb.body.as_slice(), sb.ended), (Some(200), &b"bee"[..], true), "{sb:?}");
    assert_eq!((sc.status, sc.body.len(), sc.ended), (Some(200), 0, true), "{sc:?}");
    assert_eq!(sc.field("content-length"), Some("5"));
    for l in [la, lb, lc] {
        assert_eq!(h.ups[&l].releases, [true], "lane {l}: the upstream goes back to the pool");
    }
    assert_eq!(h.conn.open_streams(), 0);
    // The lanes are kept: three more streams take them, no new one.
    for p in ["/d", "/e", "/f"] {
        h.request("GET", p, &[], true);
    }
    assert_eq!(h.conn.lanes(), 3);
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2Streams), 6);
    assert_eq!(h.ctx.stats().requests, 6);
}

#[test]
fn sluice_answers_404_and_503_itself_as_for_http11() {
    let mut h = H::new();
    let nf = h.request_to("other.example", "GET", "/", &[], true);
    let empty = h.request("GET", "/empty", &[], true);
    // Answered before its body: the stream ends, then RST_STREAM NO_ERROR (RFC 9113 §8.1).
    let gone = h.request("POST", "/gone", &[("content-length", "3")], false);
    assert_eq!(h.seen(nf).status, Some(404));
    assert_eq!(h.seen(nf).body, b"404 Not Found\n");
    assert_eq!(h.seen(empty).status, Some(503));
    assert_eq!(h.seen(gone).status, Some(503));
    assert!(h.seen(gone).ended, "{:?}", h.seen(gone));
    assert_eq!(h.seen(gone).reset, Some(ErrorCode::NO_ERROR));
    assert!(h.ups.is_empty(), "no upstream asked for");
    assert_eq!(h.ctx.stats().local_responses, 3);
}

#[test]
fn a_failing_stream_is_reset_alone() {
    let mut h = H::new();
    let a = h.request("GET", "/a", &[], true);
    let b = h.request("GET", "/b", &[], true);
    let (la, lb) = (h.lane_of("/a"), h.lane_of("/b"));
    h.respond(la, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    // The upstream of /a goes away mid-body.
    h.conn.upstream_eof(&mut h.ctx, la, h.now);
    h.run();
    h.respond(lb, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let (sa, sb) = (h.seen(a), h.seen(b));
    assert_eq!(sa.status, Some(200));
    assert_eq!(sa.body, b"partial");
    assert_eq!(sa.reset, Some(ErrorCode::INTERNAL_ERROR), "{sa:?}");
    assert_eq!((sb.status, sb.body.as_slice(), sb.ended, sb.reset), (Some(200), &b"ok"[..], true, None));
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2StreamsFailed), 1);
    assert_eq!(h.ups[&la].releases, [false], "a failed exchange's upstream is closed");
    // The connection goes on.
    let c = h.request("GET", "/c", &[], true);
    let lc = h.lane_of("/c");
    h.respond(lc, b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(h.seen(c).status, Some(204));
}

#[test]
fn a_client_reset_aborts_its_exchange_only() {
    let mut h = H::new();
    let a = h.request("GET", "/a", &[], true);
    let b = h.request("GET", "/b", &[], true);
    let (la, lb) = (h.lane_of("/a"), h.lane_of("/b"));
    h.client.reset(a, ErrorCode::CANCEL).unwrap();
    h.run();
    assert_eq!(h.ups[&la].releases, [false]);
    h.respond(lb, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(h.seen(b).body, b"ok");
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2PeerResets), 1);
}

#[test]
fn request_bodies_go_up_sized_or_chunked_with_their_trailers() {
    let mut h = H::new();
    let sized = h.request("POST", "/sized", &[("content-length", "6")], false);
    h.data(sized, b"abc", false);
    h.data(sized, b"def", true);
    let ls = h.lane_of("/sized");
    let up = h.upstream_text(ls);
    assert!(up.contains("content-length: 6\r\n") && up.ends_with("\r\n\r\nabcdef"), "{up}");

    let chunked = h.request("POST", "/chunked", &[("te", "trailers")], false);
    h.data(chunked, b"hello", false);
    h.client.send_trailers(chunked, [Field::new(b"x-checksum", b"42")]).unwrap();
    h.run();
    let lc = h.lane_of("/chunked");
    let up = h.upstream_text(lc);
    assert!(up.contains("Transfer-Encoding: chunked\r\n"), "{up}");
    assert!(up.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n"), "{up}");
    h.respond(ls, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    h.respond(lc, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.seen(sized).status, Some(200));
    assert!(h.seen(chunked).ended);
}

#[test]
fn response_trailers_reach_the_client_as_trailers() {
    let mut h = H::new();
    let s = h.request("POST", "/rpc", &[("te", "trailers"), ("content-type", "application/grpc")], false);
    h.data(s, b"\0\0\0\0\0", true);
    let l = h.lane_of("/rpc");
    assert!(h.upstream_text(l).contains("TE: trailers\r\n"), "{}", h.upstream_text(l));
    h.respond(
        l,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTrailer: grpc-status\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\0\0\0\0\0\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n",
    );
    let seen = h.seen(s);
    assert_eq!(seen.body, b"\0\0\0\0\0");
    assert_eq!(
        seen.trailers,
        [("grpc-status".to_string(), "0".to_string()), ("grpc-message".to_string(), "ok".to_string())]
    );
    assert!(seen.ended);
}

#[test]
fn a_client_that_does_not_read_stops_the_upstream_read_and_nothing_else() {
    let mut h = H::new();
    h.reading = false;
    let big = h.request("GET", "/big", &[], true);
    let lb = h.lane_of("/big");
    let total = 4 << 20;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
    assert_eq!(h.respond(lb, head.as_bytes()), head.len());
    let body = vec![7u8; total];
    let sent = h.respond(lb, &body);
    assert!(sent < 512 * 1024, "the upstream is read only as far as the client's window: {sent}");
    assert!(h.seen(big).body.len() <= 65_535, "{}", h.seen(big).body.len());
    // Another stream still gets through (its own window; the connection window is 1 MiB... the
    // client's default is 64 KiB, so that one is shut too: open it).
    h.reading = true;
    h.run();
    let mut at = sent;
    while at < total {
        let n = h.respond(lb, &body[at..]);
        assert!(n > 0, "stuck at {at}");
        at += n;
    }
    let seen = h.seen(big);
    assert_eq!((seen.body.len(), seen.ended), (total, true));
    assert!(h.ctx.stats().max_conn_buffered_bytes < 512 * 1024, "{}", h.ctx.stats().max_conn_buffered_bytes);
}

#[test]
fn a_slow_upstream_holds_back_its_client_stream_by_flow_control() {
    let mut h = H::new();
    let up = h.request("POST", "/upload", &[], false);
    let lu = h.lane_of("/upload");
    h.upstreams_reading = false;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    // The client sends what its windows allow: the stream's 64 KiB, and no more, while the
    // upstream takes nothing.
    let mut sent = 0;
    loop {
        let n = h.client.send_data(up, &body[sent..], true).unwrap();
        h.run();
        if n == 0 {
            break;
        }
        sent += n;
    }
    assert!(sent < 200_000, "held by the window: {sent}");
    assert!(h.conn.buffered_bytes() < 200_000, "{}", h.conn.buffered_bytes());
    // The upstream reads again: everything crosses, framed chunked.
    h.upstreams_reading = true;
    h.run();
    h.data(up, &body[sent..], true);
    let got = &h.ups[&lu].got;
    assert!(got.ends_with(b"0\r\n\r\n"));
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(dechunk(&got[head_end..]) == body, "the body arrives whole and in order");
    h.respond(lu, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.seen(up).status, Some(200));
}

/// The data of a chunked body (no extensions, no trailers).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let line = b.iter().position(|&c| c == b'\r').unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line + 2..line + 2 + n]);
        b = &b[line + 2 + n + 2..];
    }
}

#[test]
fn go_away_lets_the_streams_in_flight_finish() {
    let mut h = H::new();
    let a = h.request("GET", "/a", &[], true);
    let la = h.lane_of("/a");
    h.conn.go_away(&mut h.ctx, h.now);
    h.run();
    assert!(!h.conn.is_finished());
    h.respond(la, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(h.seen(a).body, b"ok");
    assert!(h.conn.is_finished(), "done once its streams are");
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2GoAways), 1);
}

#[test]
fn a_drain_announces_goaway_then_names_the_last_stream_and_serves_streams_in_between() {
    use sluice_l7::proxy::DRAIN_GOAWAY_NS;
    let mut h = H::new();
    let a = h.request("GET", "/a", &[], true);
    let la = h.lane_of("/a");
    h.conn.drain(&mut h.ctx, h.now);
    // A stream the client opens before it sees the GOAWAY is served.
    let b = h.request("GET", "/b", &[], true);
    let lb = h.lane_of("/b");
    // RFC 9113 §6.8: first the largest stream id.
    assert_eq!(h.goaways, [StreamId(0x7fff_ffff)]);
    h.respond(la, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(!h.conn.is_finished(), "open until the second GOAWAY");
    h.now += DRAIN_GOAWAY_NS;
    h.conn.tick(&mut h.ctx, h.now);
    h.run();
    assert_eq!(h.goaways, [StreamId(0x7fff_ffff), b]);
    h.respond(lb, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((h.seen(a).body.as_slice(), h.seen(b).body.as_slice()), (&b"ok"[..], &b"hi"[..]));
    assert!(h.conn.is_finished(), "done once its streams are");
}

#[test]
fn a_table_change_that_removes_the_route_in_flight_sends_goaway() {
    let mut h = H::new();
    let a = h.request("GET", "/a", &[], true);
    let la = h.lane_of("/a");
    // Same routes: nothing happens.
    h.ctx.set_generation(Rc::new(Generation::new(&table(&[ep(1), ep(2)]))));
    h.conn.generation_changed(&mut h.ctx, h.now);
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2GoAways), 0);
    // No routes: GOAWAY, the stream finishes on its generation.
    h.ctx.set_generation(Rc::new(Generation::empty()));
    h.conn.generation_changed(&mut h.ctx, h.now);
    h.run();
    assert_eq!(h.ctx.h2_stats().count(Counter::L7H2GoAways), 1);
    h.respond(la, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(h.seen(a).body, b"ok");
    assert!(h.conn.is_finished());
}
