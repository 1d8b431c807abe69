//! Proxying keep-alive requests allocates nothing once a connection exists: parsing, routing,
//! rewriting both heads, streaming bodies and their trailers and picking endpoints all work in
//! the connection's buffers (the access log off).

mod common;

use std::rc::Rc;

use sluice_l7::proxy::{Action, Config, Conn, Context, Generation};
use sluice_model::l7::L7Table;

/// The shared table with three endpoints for `web`.
fn table() -> L7Table {
    common::table(&[common::ep(1), common::ep(2), common::ep(3)])
}

/// Copies `src` into the core through `dst` (a read buffer) and reports it.
fn feed(buf: &mut [u8], src: &[u8]) -> usize {
    let n = buf.len().min(src.len());
    buf[..n].copy_from_slice(&src[..n]);
    n
}

#[test]
fn keep_alive_requests_allocate_nothing() {
    let mut ctx = Context::new(Config::default(), 1);
    ctx.set_generation(Rc::new(Generation::new(&table())));
    let mut conn = Conn::new(&ctx, "192.0.2.1:5000".parse().unwrap(), 80, false, 0);
    // Trailers both ways, one dropped each way, one with a name longer than any dropped one.
    let request: &[u8] =
        b"POST /api?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
        X-Forwarded-For: 6.6.6.6\r\nTE: trailers\r\nTrailer: X-Checksum, Host\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n0\r\nX-Checksum: 1\r\nHost: evil\r\nX-A-Trailer-Name-Longer-Than-Any: 2\r\n\r\n";
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\
        Trailer: grpc-status\r\n\r\n2\r\nok\r\n0\r\ngrpc-status: 0\r\nSet-Cookie: a=b\r\n\r\n";
    let one = |ctx: &mut Context, conn: &mut Conn| {
        let n = feed(conn.client_read_buf(), request);
        conn.client_read(ctx, n, 0);
        let mut attached = false;
        while let Some(a) = conn.poll_action() {
            if let Action::Connect(_) = a {
                attached = true;
                conn.upstream_connected(ctx, true, 0);
            }
        }
        assert!(attached);
        let sent = conn.upstream_write_buf().len();
        assert!(sent > request.len(), "rewritten head and body");
        assert!(
            conn.upstream_write_buf()
                .ends_with(b"0\r\nX-Checksum: 1\r\nX-A-Trailer-Name-Longer-Than-Any: 2\r\n\r\n")
        );
        conn.upstream_wrote(ctx, sent, 0);
        let n = feed(conn.upstream_read_buf(), response);
        conn.upstream_read(ctx, n, 0);
        assert_eq!(conn.poll_action(), Some(Action::Release { keep_alive: true }));
        let out = conn.client_write_buf().len();
        assert!(conn.client_write_buf().ends_with(b"2\r\nok\r\n0\r\ngrpc-status: 0\r\n\r\n"));
        conn.client_wrote(ctx, out, 0);
        // Idle until the next request, as the driver leaves it: storage back to the free list.
        conn.shed_idle_buffers();
        assert_eq!(conn.buffers_held(), 0);
    };
    one(&mut ctx, &mut conn);
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            one(&mut ctx, &mut conn);
        }
    });
    assert_eq!(ctx.stats().responses[2], 501);
    assert_eq!(info.count_total, 0, "{info:?}");
}
