//! TLS to upstreams on loopback (`backend-protocol: HTTPS`): a backend that speaks only TLS
//! (rustls, a self-signed certificate made at run time), the proxy run by a thread as a worker
//! runs it. What ingress-nginx does by default is what is checked: the certificate is not
//! verified, no SNI is sent, ALPN is `http/1.1`; connections are pooled with their TLS state,
//! idle ones closed by the upstream leave the pool, sessions resume; a handshake that fails is
//! a connect failure (retried, else 502), and the connect timeout covers the handshake.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Client, read_response, run_proxy, table_with};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sluice_model::policy::{BackendProtocol, Policy};
use sluice_proxy::ProxyConfig;

fn config() -> ProxyConfig {
    ProxyConfig { access_log: true, ..ProxyConfig::default() }
}

fn https() -> Policy {
    Policy { backend_protocol: BackendProtocol::Https, ..Policy::default() }
}

/// What the TLS backend saw.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Handshakes completed, and of those resumed.
    handshakes: AtomicUsize,
    resumed: AtomicUsize,
    /// The server name and ALPN protocol of each handshake.
    hellos: Mutex<Vec<(Option<String>, Option<String>)>>,
}

/// A backend that speaks HTTP/1.1 over TLS only: `/echo` answers the request body, `/big?n=N`
/// N bytes, `/close-notify` answers `ok` and ends the connection with close_notify in the same
/// flight, `/later` answers and does so 150 ms later (an upstream's idle timeout),
/// `/key-update` answers and updates its keys 100 ms later (a record without data on an idle
/// connection); anything else `tls PATH`. Stops on drop.
struct TlsBackend {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A self-signed certificate for a name nobody asks for (the proxy must not care), offering
/// `h2` and `http/1.1` (so the protocol agreed is the one the client offered).
fn server_config() -> Arc<ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["backend.invalid".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(sluice_l7::tls::provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(sluice_l7::tls::VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

impl TlsBackend {
    fn start() -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (sn, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let config = server_config();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        sn.connections.fetch_add(1, Ordering::SeqCst);
                        let (sn, config) = (Arc::clone(&sn), Arc::clone(&config));
                        std::thread::spawn(move || serve_tls(stream, config, &sn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TlsBackend { addr, seen, stop, thread: Some(thread) }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_tls(stream: TcpStream, config: Arc<ServerConfig>, seen: &Seen) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut conn = ServerConnection::new(config).unwrap();
    let mut stream = stream;
    while conn.is_handshaking() {
        if conn.complete_io(&mut stream).is_err() {
            return;
        }
    }
    seen.handshakes.fetch_add(1, Ordering::SeqCst);
    if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        seen.resumed.fetch_add(1, Ordering::SeqCst);
    }
    let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
    seen.hellos.lock().unwrap().push((conn.server_name().map(str::to_owned), alpn));
    let mut r = BufReader::with_capacity(64 * 1024, StreamOwned::new(conn, stream));
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
        let mut length = 0usize;
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).unwrap_or(0) == 0 {
                return;
            }
            if l == "\r\n" {
                break;
            }
            if let Some((n, v)) = l.split_once(':')
                && n.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let w = r.get_mut();
        let answer = |w: &mut StreamOwned<ServerConnection, TcpStream>, body: &[u8]| {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            w.write_all(head.as_bytes()).and_then(|()| w.write_all(body)).and_then(|()| w.flush())
        };
        let res = match target.as_str() {
            "/echo" => answer(w, &body),
            "/close-notify" => {
                // The response and close_notify in one flight (one write): they arrive
                // together, as when a server closes right after answering.
                let _ = w.conn.writer().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                w.conn.send_close_notify();
                while w.conn.wants_write() {
                    if w.conn.write_tls(&mut w.sock).is_err() {
                        break;
                    }
                }
                return;
            }
            t if t.starts_with("/big?n=") => {
                let n: usize = t["/big?n=".len()..].parse().unwrap();
                let mut res =
                    w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes());
                let piece = vec![b'z'; 64 * 1024];
                let mut left = n;
                while left > 0 && res.is_ok() {
                    let m = left.min(piece.len());
                    res = w.write_all(&piece[..m]);
                    left -= m;
                }
                res.and_then(|()| w.flush())
            }
            t => answer(w, format!("tls {t}").as_bytes()),
        };
        if res.is_err() {
            return;
        }
        if target == "/key-update" {
            // A record with no data on the idle connection: a KeyUpdate (TLS 1.3), asking the
            // proxy to update its keys too (it answers with its next write).
            std::thread::sleep(Duration::from_millis(100));
            w.conn.refresh_traffic_keys().unwrap();
            if w.flush().is_err() {
                return;
            }
        }
        if target == "/later" {
            std::thread::sleep(Duration::from_millis(150));
            w.conn.send_close_notify();
            let _ = w.flush();
            return;
        }
    }
}

/// A plain HTTP server that answers 400 to whatever arrives and closes, as nginx does to a
/// TLS ClientHello on a plain port.
fn plain_http_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        // Bounded: the test makes at most a few connections.
        for _ in 0..3 {
            let Ok((mut s, _)) = listener.accept() else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, thread)
}

#[test]
fn an_https_upstream_is_reached_over_tls_without_verification_or_sni_and_pooled() {
    let backend = TlsBackend::start();
    let proxy = run_proxy(config(), table_with(&[backend.addr], https()), None);
    let mut c = Client::connect(proxy.http);
    for path in ["/a", "/b", "/c"] {
        let r = c.get(path);
        assert_eq!((r.status, r.text()), (200, format!("tls {path}")));
    }
    c.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\nhello world");
    let r = read_response(&mut c.r, false);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    // One TLS connection for four requests: pooled with its TLS state and taken again.
    let s = proxy.wait_stats("4 responses", |s| s.core.responses[2] == 4);
    assert_eq!((s.upstream_connects, s.upstream_reuses), (1, 3), "{s:?}");
    assert_eq!((s.upstream_tls_handshakes, s.upstream_tls_errors), (1, 0), "{s:?}");
    assert_eq!(backend.seen.connections.load(Ordering::SeqCst), 1);
    // proxy_ssl_server_name off: no SNI; ALPN http/1.1 (the backend offers h2 first).
    let hellos = backend.seen.hellos.lock().unwrap().clone();
    assert_eq!(hellos, [(None, Some("http/1.1".to_owned()))]);
    // The pooled connection stays while idle: records without data (the session tickets a
    // TLS 1.3 server sends after the handshake, a KeyUpdate here) are read by the idle event
    // and keep it; the next request goes on it, under the new keys.
    let r = c.get("/key-update");
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let s = proxy.stats();
    assert_eq!((s.pooled, s.upstreams), (1, 1), "{s:?}");
    let r = c.get("/after");
    assert_eq!((r.status, r.text().as_str()), (200, "tls /after"));
    let s = proxy.wait_stats("6 responses", |s| s.core.responses[2] == 6);
    assert_eq!((s.upstream_connects, s.upstream_reuses, s.upstream_tls_errors), (1, 5, 0), "{s:?}");
    assert_eq!(backend.seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn an_idle_tls_connection_the_upstream_closes_leaves_the_pool_and_the_next_resumes() {
    let backend = TlsBackend::start();
    let proxy = run_proxy(config(), table_with(&[backend.addr], https()), None);
    let mut c = Client::connect(proxy.http);
    let r = c.get("/later");
    assert_eq!(r.status, 200);
    // close_notify on the idle connection, 150 ms later: read through TLS by the idle event,
    // and the connection leaves the pool (no request is needed to find out).
    let s = proxy.wait_stats("closed while idle", |s| {
        s.upstream_connects == 1 && s.core.responses[2] == 1 && s.pooled == 0 && s.upstreams == 0
    });
    assert_eq!(s.upstream_tls_errors, 0, "{s:?}");
    // The next connection resumes the session (the worker's session cache).
    let r = c.get("/again");
    assert_eq!((r.status, r.text().as_str()), (200, "tls /again"));
    let s = proxy.wait_stats("resumed", |s| s.upstream_tls_handshakes == 2);
    assert_eq!((s.upstream_tls_resumed, s.upstream_reuses), (1, 0), "{s:?}");
    assert_eq!(backend.seen.resumed.load(Ordering::SeqCst), 1);
    assert_eq!(s.core.retries, 0, "no request met a dead connection: {s:?}");
}

#[test]
fn a_close_notify_with_the_response_is_seen_before_the_connection_is_pooled() {
    let backend = TlsBackend::start();
    let proxy = run_proxy(config(), table_with(&[backend.addr], https()), None);
    let mut c = Client::connect(proxy.http);
    // The backend ends each connection with close_notify right after its response. The look
    // at Release (through TLS) or the idle event sees it: whichever comes first, no request is
    // sent on a closed connection and retried.
    for i in 0..10 {
        let r = c.get("/close-notify");
        assert_eq!(r.status, 200, "request {i}");
    }
    let s = proxy.wait_stats("10 responses", |s| s.core.responses[2] == 10);
    assert_eq!((s.core.retries, s.upstream_reuses, s.upstream_connects), (0, 0, 10), "{s:?}");
    proxy.wait_stats("all closed", |s| s.upstreams == 0 && s.pooled == 0);
}

#[test]
fn big_bodies_cross_tls_upstreams_through_bounded_buffers() {
    let backend = TlsBackend::start();
    // proxy-body-size 0: no limit (the default, 1 MiB, would refuse the upload).
    let policy = Policy { body_limit: Some(0), ..https() };
    let proxy = run_proxy(config(), table_with(&[backend.addr], policy), None);
    let mut c = Client::connect(proxy.http);
    let r = c.get("/big?n=20000000");
    assert_eq!((r.status, r.body.len()), (200, 20_000_000));
    assert!(r.body.iter().all(|&b| b == b'z'));
    let body = vec![b'u'; 5_000_000];
    c.send(
        format!("POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
    );
    // The echo comes back only once the whole body is read: write it from another thread.
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&body));
    let r = read_response(&mut c.r, false);
    writer.join().unwrap().unwrap();
    assert_eq!((r.status, r.body.len()), (200, 5_000_000));
    let s = proxy.wait_stats("2 responses", |s| s.core.responses[2] == 2);
    assert_eq!((s.upstream_connects, s.upstream_reuses), (1, 1), "{s:?}");
    assert!(s.core.max_conn_buffered_bytes <= 256 * 1024, "{s:?}");
}

#[test]
fn a_failed_handshake_is_a_connect_failure_retried_else_502_and_counted() {
    // An endpoint that speaks plain HTTP: its 400 is no TLS record.
    let (plain, thread) = plain_http_backend();
    let proxy = run_proxy(config(), table_with(&[plain], https()), None);
    let mut c = Client::connect(proxy.http);
    let r = c.get("/");
    assert_eq!((r.status, r.field("server")), (502, Some("sluice")));
    let s = proxy.wait_stats("1 request", |s| s.core.requests == 1 && s.upstream_tls_errors == 3);
    assert_eq!((s.core.retries, s.upstream_tls_handshakes), (2, 0), "three tries: {s:?}");
    drop(proxy);
    thread.join().unwrap();

    // Beside a TLS endpoint, the request moves there, as after a refused connect.
    let (plain, thread) = plain_http_backend();
    let backend = TlsBackend::start();
    let proxy = run_proxy(config(), table_with(&[plain, backend.addr], https()), None);
    for _ in 0..4 {
        let r = Client::connect(proxy.http).get("/x");
        assert_eq!((r.status, r.text().as_str()), (200, "tls /x"));
    }
    let s = proxy.wait_stats("4 requests", |s| s.core.responses[2] == 4);
    assert!(s.upstream_tls_errors >= 1 && s.core.retries == s.upstream_tls_errors, "{s:?}");
    drop(proxy);
    drop(thread);
}

#[test]
fn the_connect_timeout_covers_the_handshake() {
    // Accepts, and never says a word: TCP connects, the handshake never ends.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let policy = Policy { connect_timeout_s: Some(1), ..https() };
    let proxy = run_proxy(config(), table_with(&[silent.local_addr().unwrap()], policy), None);
    let t = Instant::now();
    let r = Client::connect(proxy.http).get("/");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let s = proxy.wait_stats("closed", |s| s.upstreams == 0);
    assert_eq!(s.upstream_tls_handshakes, 0);
}
