//! The proxy core under arbitrary event sequences: client bytes (valid requests, mutated ones,
//! noise), upstream bytes (valid responses, mutated ones, noise), connects, failures, ends of
//! stream and time, in any order and in any amounts a driver could deliver them. Whatever
//! happens, no panic; the buffers stay bounded; the actions follow their protocol (a `Release`
//! only for an attached upstream, no `Connect` while one is attached); what the client receives
//! begins with a status line; a finished connection asks for nothing more.

mod common;

use std::rc::Rc;

use proptest::prelude::*;
use sluice_l7::proxy::{Action, Config, Conn, Context, Generation, UpstreamError};
use sluice_model::l7::L7Table;

/// The most a connection may hold: its buffers and the bytes kept for a retry. Generous: the
/// point is "bounded", whatever the input.
const MAX_BUFFERED: usize = 1 << 20;

/// The shared table with three endpoints for `web`.
fn table() -> L7Table {
    common::table(&[common::ep(1), common::ep(2), common::ep(3)])
}

const REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /t HTTP/1.1\r\nHost: app.example\r\nTE: trailers\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 1\r\nHost: x\r\n\r\n",
    b"POST /e HTTP/1.1\r\nHost: app.example\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
];

const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTrailer: grpc-status\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ngrpc-status: 0\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
];

/// Bytes: a valid message, a mutated one, or noise.
fn message(valid: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (0..valid.len()).prop_map(move |i| valid[i].to_vec()),
        2 => ((0..valid.len()), any::<usize>(), any::<u8>()).prop_map(move |(i, at, b)| {
            let mut m = valid[i].to_vec();
            let at = at % m.len();
            m[at] = b;
            m
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

#[derive(Debug, Clone)]
enum Event {
    Client(Vec<u8>),
    Upstream(Vec<u8>),
    /// Drain this much of what the core wrote for the client (0: all).
    DrainClient(usize),
    /// Drain this much of what the core wrote for the upstream (0: all).
    DrainUpstream(usize),
    Connected(bool),
    UpstreamFailed(u8),
    UpstreamEof,
    ClientEof,
    ClientFailed,
    Advance(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => message(REQUESTS).prop_map(Event::Client),
        4 => message(RESPONSES).prop_map(Event::Upstream),
        2 => (0usize..64).prop_map(Event::DrainClient),
        2 => (0usize..64).prop_map(Event::DrainUpstream),
        2 => any::<bool>().prop_map(Event::Connected),
        1 => any::<u8>().prop_map(Event::UpstreamFailed),
        1 => Just(Event::UpstreamEof),
        1 => Just(Event::ClientEof),
        1 => Just(Event::ClientFailed),
        1 => (0u64..120).prop_map(|s| Event::Advance(s * 1_000_000_000)),
    ]
}

struct Driver {
    ctx: Context,
    conn: Conn,
    now: u64,
    attached: bool,
    connected: bool,
    client: Vec<u8>,
    client_eof: bool,
}

impl Driver {
    fn actions(&mut self) {
        // A bounded number of actions per step: a loop of actions would be a bug too.
        for _ in 0..64 {
            match self.conn.poll_action() {
                None => return,
                Some(Action::Connect(_)) => {
                    assert!(!self.attached, "Connect while an upstream is attached");
                    self.attached = true;
                    self.connected = false;
                }
                Some(Action::Release { .. }) => {
                    assert!(self.attached, "Release without an attached upstream");
                    self.attached = false;
                    self.connected = false;
                }
            }
        }
        panic!("more than 64 actions in a row");
    }

    fn step(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::Client(bytes) if !self.client_eof => {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let buf = self.conn.client_read_buf();
                    let n = buf.len().min(rest.len());
                    if n == 0 {
                        break; // backpressure: the rest stays "in the socket"
                    }
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.conn.client_read(&mut self.ctx, n, now);
                    rest = &rest[n..];
                    self.actions();
                }
            }
            Event::Client(_) => {}
            Event::Upstream(bytes) if self.attached && self.connected => {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let buf = self.conn.upstream_read_buf();
                    let n = buf.len().min(rest.len());
                    if n == 0 {
                        break;
                    }
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.conn.upstream_read(&mut self.ctx, n, now);
                    rest = &rest[n..];
                    self.actions();
                    if !(self.attached && self.connected) {
                        break;
                    }
                }
            }
            Event::Upstream(_) => {}
            Event::DrainClient(n) => {
                let out = self.conn.client_write_buf();
                let n = if n == 0 { out.len() } else { n.min(out.len()) };
                self.client.extend_from_slice(&out[..n]);
                if n > 0 {
                    self.conn.client_wrote(&mut self.ctx, n, now);
                }
            }
            Event::DrainUpstream(n) if self.attached && self.connected => {
                let out = self.conn.upstream_write_buf();
                let n = if n == 0 { out.len() } else { n.min(out.len()) };
                if n > 0 {
                    self.conn.upstream_wrote(&mut self.ctx, n, now);
                }
            }
            Event::DrainUpstream(_) => {}
            Event::Connected(reused) if self.attached && !self.connected => {
                self.connected = true;
                self.conn.upstream_connected(&mut self.ctx, reused, now);
            }
            Event::Connected(_) => {}
            Event::UpstreamFailed(k) if self.attached => {
                let error = if k % 2 == 0 { UpstreamError::Connect } else { UpstreamError::Io };
                self.conn.upstream_failed(&mut self.ctx, error, now);
            }
            Event::UpstreamFailed(_) => {}
            Event::UpstreamEof if self.attached && self.connected => {
                self.conn.upstream_eof(&mut self.ctx, now)
            }
            Event::UpstreamEof => {}
            Event::ClientEof if !self.client_eof => {
                self.client_eof = true;
                self.conn.client_eof(&mut self.ctx, now);
            }
            Event::ClientEof => {}
            Event::ClientFailed => {
                self.client_eof = true;
                self.conn.client_failed(&mut self.ctx, now);
            }
            Event::Advance(ns) => {
                self.now += ns;
                self.conn.tick(&mut self.ctx, self.now);
            }
        }
        self.actions();
        assert!(self.conn.buffered_bytes() <= MAX_BUFFERED, "{} bytes buffered", self.conn.buffered_bytes());
        if self.client.len() >= 9 {
            assert!(
                self.client.starts_with(b"HTTP/1.1 ") || self.client.starts_with(b"HTTP/1.0 "),
                "the client's first bytes are a status line: {:?}",
                String::from_utf8_lossy(&self.client[..self.client.len().min(64)])
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_event_sequence_leaves_the_core_sound(events in proptest::collection::vec(event(), 1..40)) {
        let mut ctx = Context::new(Config::default(), 7);
        ctx.set_generation(Rc::new(Generation::new(&table())));
        let conn = Conn::new(&ctx, "192.0.2.7:40000".parse().unwrap(), 80, false, 0);
        let mut d = Driver { ctx, conn, now: 0, attached: false, connected: false, client: vec![], client_eof: false };
        for e in events {
            d.step(e);
        }
        // However it ended, time and the client going away finish it.
        d.step(Event::ClientFailed);
        d.step(Event::Advance(3_600_000_000_000));
        d.step(Event::DrainClient(0));
        prop_assert!(d.conn.is_finished(), "finished once the client failed");
    }
}
