//! A tiny HTTP/2 echo server over cleartext (h2c with prior knowledge), driving
//! `sluice_l7::h2::Conn` in the server role with blocking std sockets, a thread per connection.
//! Every request is answered 200 with `METHOD PATH\n`, followed by the request body for POST.
//!
//! ```sh
//! cargo run -p sluice-l7 --example h2_echo -- 8080
//! nghttp -v http://127.0.0.1:8080/x
//! curl --http2-prior-knowledge -d hello http://127.0.0.1:8080/echo
//! h2load -n 2000 -c 4 -m 10 http://127.0.0.1:8080/
//! ```
//!
//! It listens on 127.0.0.1 only. It is a test tool, not a server: bodies are held whole in
//! memory (up to 16 MiB per request).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use sluice_l7::h2::hpack::Field;
use sluice_l7::h2::{Config, Conn, ErrorCode, Event, Role, StreamId};

/// The most request body one stream may send before it is reset.
const MAX_BODY_BYTES: usize = 16 << 20;

/// One request being read or answered.
#[derive(Debug, Default)]
struct Exchange {
    /// What the response body will be: `METHOD PATH\n`, then the request body for POST.
    reply: Vec<u8>,
    echo_body: bool,
    request_done: bool,
    head_sent: bool,
    /// Bytes of `reply` sent.
    sent: usize,
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("h2_echo: listening on {}", listener.local_addr()?);
    run(listener)
}

/// Accepts connections forever, each served on its own thread.
pub(crate) fn run(listener: TcpListener) -> io::Result<()> {
    for sock in listener.incoming() {
        let sock = sock?;
        thread::spawn(move || {
            if let Err(e) = serve(sock) {
                eprintln!("h2_echo: connection: {e}");
            }
        });
    }
    Ok(())
}

/// Serves one connection until it is finished or closed.
pub(crate) fn serve(mut sock: TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let start = Instant::now();
    let mut conn = Conn::new(Role::Server, Config::DEFAULT);
    // A whole frame must fit: the largest frame we accept and its header.
    let mut input = vec![0u8; conn.config().max_frame_size as usize + 9 + 64 * 1024];
    let mut have = 0;
    let mut streams: HashMap<StreamId, Exchange> = HashMap::new();
    loop {
        answer(&mut conn, &mut streams);
        let out = conn.write_buf();
        if !out.is_empty() {
            sock.write_all(out)?;
            let n = out.len();
            conn.wrote(n);
            // Writing may have made room for more of the bodies.
            continue;
        }
        if conn.is_finished() {
            return Ok(());
        }
        let n = sock.read(&mut input[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let now_ns = start.elapsed().as_nanos() as u64;
        let mut off = 0;
        loop {
            let r = conn.recv(&input[off..have], now_ns);
            let consumed = r.consumed;
            let Some(event) = r.event else {
                off += consumed;
                if consumed == 0 {
                    break;
                }
                continue;
            };
            // The event borrows the connection: note what it says, then act.
            let mut release = None;
            match event {
                Event::Head { stream, head, end_stream } => {
                    let method = head.method().unwrap_or(b"?");
                    let mut reply = method.to_vec();
                    reply.push(b' ');
                    reply.extend_from_slice(head.path().unwrap_or(b"?"));
                    reply.push(b'\n');
                    let echo_body = method == b"POST";
                    streams.insert(
                        stream,
                        Exchange { reply, echo_body, request_done: end_stream, ..Exchange::default() },
                    );
                }
                Event::Data { stream, data, end_stream } => {
                    let bytes = &input[off..have][data];
                    if let Some(x) = streams.get_mut(&stream) {
                        if x.echo_body && x.reply.len() + bytes.len() <= MAX_BODY_BYTES {
                            x.reply.extend_from_slice(bytes);
                        }
                        x.request_done |= end_stream;
                    }
                    release = Some((stream, bytes.len()));
                }
                Event::Trailers { stream, .. } => {
                    if let Some(x) = streams.get_mut(&stream) {
                        x.request_done = true;
                    }
                }
                Event::Reset { stream, .. } | Event::StreamError { stream, .. } => {
                    streams.remove(&stream);
                }
                Event::ConnectionError { reason } => {
                    eprintln!("h2_echo: connection error: {} ({})", reason.name(), reason.code().name());
                }
                Event::WindowUpdate { .. } | Event::Pong { .. } | Event::GoAway { .. } => {}
            }
            off += consumed;
            if let Some((stream, n)) = release {
                // The bytes are copied out of the input: the client may send that much more.
                conn.release(stream, n);
            }
        }
        input.copy_within(off..have, 0);
        have -= off;
    }
}

/// Sends what can be sent of every finished request's answer.
fn answer(conn: &mut Conn, streams: &mut HashMap<StreamId, Exchange>) {
    let mut done = Vec::new();
    for (&id, x) in streams.iter_mut() {
        if !x.request_done {
            continue;
        }
        if !x.head_sent {
            let len = x.reply.len().to_string();
            let fields =
                [Field::new(b"content-type", b"text/plain"), Field::new(b"content-length", len.as_bytes())];
            match conn.send_response(id, 200, fields, false) {
                Ok(()) => x.head_sent = true,
                Err(_) => continue,
            }
        }
        match conn.send_data(id, &x.reply[x.sent..], true) {
            Ok(n) => {
                x.sent += n;
                if x.sent == x.reply.len() {
                    done.push(id);
                }
            }
            Err(_) => {
                let _ = conn.reset(id, ErrorCode::INTERNAL_ERROR);
                done.push(id);
            }
        }
    }
    for id in done {
        streams.remove(&id);
    }
}
