//! HTTP/2 streams through the proxy allocate nothing once the connection has served as many
//! streams at once before: lanes are kept, their cores reused, buffers taken from the
//! thread's free list (the access log off). Trailers excepted (a lane's trailer vector grows
//! once to the largest section seen, then is reused: counted in the warm-up).

mod common;

use std::rc::Rc;

use sluice_l7::h2::hpack::Field;
use sluice_l7::h2::{self, Event, Request, Role, StreamId};
use sluice_l7::proxy::{Action, Config, Context, Generation, H2Conn};

const STREAMS: usize = 10;

#[test]
fn streams_allocate_nothing_once_the_lanes_exist() {
    let mut ctx = Context::new(Config::default(), 1);
    ctx.set_generation(Rc::new(Generation::new(&common::table(&[common::ep(1), common::ep(2)]))));
    let mut conn = H2Conn::new(&mut ctx, "192.0.2.1:5000".parse().unwrap(), 443, true, 0);
    let mut client = h2::Conn::new(Role::Client, h2::Config::DEFAULT);
    let mut cin = vec![0u8; 256 * 1024];
    let mut have = 0;
    let mut ids = [StreamId(0); STREAMS];
    let mut lanes = [usize::MAX; STREAMS];
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n\
        5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n";
    let mut round = |ctx: &mut Context, conn: &mut H2Conn| -> usize {
        let mut ended = 0;
        for id in ids.iter_mut() {
            let req = Request { method: b"POST", scheme: b"https", authority: b"app.example", path: b"/rpc" };
            *id = client.send_request(req, [Field::new(b"te", b"trailers")], false).unwrap();
            client.send_data(*id, b"ping", true).unwrap();
        }
        // Client → proxy.
        let out = client.write_buf();
        let buf = conn.client_read_buf();
        let n = out.len().min(buf.len());
        buf[..n].copy_from_slice(&out[..n]);
        client.wrote(n);
        conn.client_read(ctx, n, 0);
        // Lanes → upstreams: connect, take the request, answer.
        let mut k = 0;
        while let Some((lane, a)) = conn.poll_action() {
            if let Action::Connect(_) = a {
                lanes[k] = lane;
                k += 1;
                conn.upstream_connected(ctx, lane, true, 0);
            }
        }
        assert_eq!(k, STREAMS);
        for &lane in &lanes {
            let sent = conn.upstream_write_buf(lane).len();
            assert!(sent > 0);
            conn.upstream_wrote(ctx, lane, sent, 0);
            let buf = conn.upstream_read_buf(lane);
            buf[..response.len()].copy_from_slice(response);
            conn.upstream_read(ctx, lane, response.len(), 0);
        }
        let mut released = 0;
        while let Some((_, a)) = conn.poll_action() {
            assert_eq!(a, Action::Release { keep_alive: true });
            released += 1;
        }
        assert_eq!(released, STREAMS);
        // Proxy → client.
        loop {
            let out = conn.client_write_buf();
            if out.is_empty() {
                break;
            }
            let n = out.len().min(cin.len() - have);
            cin[have..have + n].copy_from_slice(&out[..n]);
            have += n;
            conn.client_wrote(ctx, n, 0);
        }
        let mut off = 0;
        loop {
            let r = client.recv(&cin[off..have], 0);
            let consumed = r.consumed;
            let mut release = None;
            match r.event {
                None if consumed == 0 => break,
                Some(Event::Trailers { trailers, .. }) => {
                    assert_eq!(trailers.field(b"grpc-status"), Some(&b"0"[..]));
                    ended += 1;
                }
                Some(Event::Data { stream, data, .. }) => release = Some((stream, data.len())),
                _ => {}
            }
            off += consumed;
            if let Some((s, n)) = release {
                client.release(s, n);
            }
        }
        cin.copy_within(off..have, 0);
        have -= off;
        conn.shed_idle_buffers();
        ended
    };
    assert_eq!(round(&mut ctx, &mut conn), STREAMS);
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            assert_eq!(round(&mut ctx, &mut conn), STREAMS);
        }
    });
    assert_eq!(conn.lanes(), STREAMS);
    assert_eq!(ctx.stats().responses[2], 101 * STREAMS as u64);
    assert_eq!(info.count_total, 0, "{info:?}");
}

/// What an HTTP/2 client connection holds before its first stream, and what a lane adds: the
/// figures docs/l7.md gives, and a bound that catches a buffer growing by accident.
#[test]
fn an_idle_http2_connection_holds_a_bounded_amount() {
    let mut ctx = Context::new(Config::default(), 1);
    let info = allocation_counter::measure(|| {
        let conn = H2Conn::new(&mut ctx, "192.0.2.1:5000".parse().unwrap(), 443, true, 0);
        std::hint::black_box(&conn);
        std::mem::forget(conn);
    });
    let kib = info.bytes_current as f64 / 1024.0;
    eprintln!("an HTTP/2 client connection: {kib:.1} KiB in {} allocations", info.count_current);
    assert!(kib < 160.0, "{kib:.1} KiB");
}
