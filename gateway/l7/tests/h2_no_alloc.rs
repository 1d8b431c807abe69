//! HTTP/2 allocates nothing once a connection is made: a client and a server `h2::Conn` carry
//! a thousand requests with bodies, trailers, pings and window updates between them, measured
//! with `allocation_counter` (a counting global allocator in this test binary).

use sluice_l7::h2::hpack::Field;
use sluice_l7::h2::{Config, Conn, Event, Request, Role, StreamId};

/// Moves what `from` wrote to `to` through the fixed buffer `wire`, and hands every event to
/// `on`. Returns how many events came.
fn carry(from: &mut Conn, to: &mut Conn, wire: &mut Vec<u8>, mut on: impl FnMut(&mut Conn, Ev)) -> usize {
    let out = from.write_buf();
    assert!(wire.len() + out.len() <= wire.capacity(), "the test's wire is too small");
    wire.extend_from_slice(out);
    let n = out.len();
    from.wrote(n);
    let mut off = 0;
    let mut events = 0;
    loop {
        let r = to.recv(&wire[off..], 0);
        let consumed = r.consumed;
        let ev = r.event.map(|e| match e {
            Event::Head { stream, end_stream, head } => Ev::Head(stream, end_stream, head.fields().count()),
            Event::Data { stream, data, end_stream } => Ev::Data(stream, data.len(), end_stream),
            Event::Trailers { stream, trailers } => Ev::Trailers(stream, trailers.fields().count()),
            Event::WindowUpdate { .. } => Ev::Window,
            other => panic!("unexpected {other:?}"),
        });
        off += consumed;
        match ev {
            Some(Ev::Window) => {}
            Some(ev) => {
                events += 1;
                on(to, ev);
            }
            None if consumed == 0 => break,
            None => {}
        }
    }
    wire.drain(..off);
    events
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// Stream, end of stream, regular fields.
    Head(StreamId, bool, usize),
    /// Stream, bytes, end of stream.
    Data(StreamId, usize, bool),
    /// Stream, fields.
    Trailers(StreamId, usize),
    Window,
}

#[test]
fn a_thousand_exchanges_allocate_nothing() {
    let mut client = Conn::new(Role::Client, Config::DEFAULT);
    let mut server = Conn::new(Role::Server, Config::DEFAULT);
    let mut wire = Vec::with_capacity(1 << 20);
    let body = [7u8; 3000];
    let round = |client: &mut Conn, server: &mut Conn, wire: &mut Vec<u8>| {
        let req = Request {
            method: b"POST",
            scheme: b"https",
            authority: b"api.example.com",
            path: b"/pkg.Svc/Call",
        };
        let fields = [
            Field::new(b"content-type", b"application/grpc"),
            Field::new(b"te", b"trailers"),
            Field::new(b"user-agent", b"grpc-test/1.0"),
        ];
        let id = client.send_request(req, fields, false).unwrap();
        assert_eq!(client.send_data(id, &body, true).unwrap(), body.len());
        let mut got = 0;
        carry(client, server, wire, |s, ev| match ev {
            Ev::Head(stream, end, fields) => assert!(stream.0 % 2 == 1 && !end && fields == 3),
            Ev::Data(stream, n, end) => {
                got += n;
                s.release(stream, n);
                if end {
                    s.send_response(stream, 200, [Field::new(b"content-type", b"application/grpc")], false)
                        .unwrap();
                    assert_eq!(s.send_data(stream, &[1; 100], false).unwrap(), 100);
                    s.send_trailers(stream, [Field::new(b"grpc-status", b"0")]).unwrap();
                }
            }
            Ev::Trailers(..) | Ev::Window => panic!("no request trailers"),
        });
        assert_eq!(got, body.len());
        let mut events = 0;
        carry(server, client, wire, |c, ev| {
            events += 1;
            match ev {
                Ev::Data(stream, n, _) => c.release(stream, n),
                Ev::Trailers(stream, fields) => assert!(stream.0 % 2 == 1 && fields == 1),
                _ => {}
            }
        });
        assert_eq!(events, 3, "head, data, trailers");
        // Window updates and acknowledgements back.
        carry(client, server, wire, |_, _| {});
    };
    // Warm up: the settings exchange and the HPACK tables' first entries.
    for _ in 0..3 {
        round(&mut client, &mut server, &mut wire);
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            round(&mut client, &mut server, &mut wire);
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert_eq!(server.stats().streams_opened, 1003);
    assert!(server.error().is_none() && client.error().is_none());
}
