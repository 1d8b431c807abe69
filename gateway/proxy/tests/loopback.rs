//! The proxy on loopback: a real backend, real clients (raw sockets and curl), the proxy run
//! by a thread as a worker runs it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Backend, Client, read_response, run_proxy, table};
use sluice_l7::proxy::Config;
use sluice_proxy::ProxyConfig;

fn config() -> ProxyConfig {
    ProxyConfig { access_log: true, ..ProxyConfig::default() }
}

#[test]
fn get_and_post_are_proxied_with_keep_alive_on_both_sides() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    for _ in 0..5 {
        let r = c.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        assert_eq!(r.field("server"), Some("sluice"));
    }
    c.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\nhello world");
    let r = read_response(&mut c.r, false);
    assert_eq!((r.status, r.text().as_str(), r.field("content-length")), (200, "hello world", Some("11")));
    let r = c.get("/headers");
    let seen = r.text();
    assert!(
        seen.contains("x-forwarded-for: 127.0.0.1\n") && seen.contains("x-forwarded-proto: http\n"),
        "{seen}"
    );
    assert!(seen.contains("x-request-id: "), "{seen}");
    let r = c.get("/chunked");
    assert_eq!((r.field("transfer-encoding"), r.text().as_str()), (Some("chunked"), "hello world"));

    assert_eq!(backend.connections.load(Ordering::SeqCst), 1, "one upstream connection, reused");
    // The client reads the last response before the proxy's thread counts it (two threads, two
    // moments): wait for the counts, then for the log.
    let s = proxy.wait_stats("8 responses", |s| s.core.requests == 8 && s.core.responses[2] == 8);
    assert_eq!(s.upstream_connects, 1);
    assert_eq!(s.upstream_reuses, 7);
    let t = std::time::Instant::now();
    while proxy.log.lock().unwrap().len() < 8 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = proxy.log.lock().unwrap().clone();
    assert_eq!(log.len(), 8, "{log:?}");
    assert!(log[5].starts_with("127.0.0.1 app.test \"POST /echo HTTP/1.1\" 200 11 "), "{}", log[5]);
}

#[test]
fn curl_through_the_proxy() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    let url = format!("http://{}/echo", proxy.http);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-H", "Host: app.test", "--data-binary", "posted", &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "posted");
    // Two requests in one curl: one client connection, one upstream connection.
    let url2 = format!("http://{}/", proxy.http);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-H", "Host: app.test", &url2, &url2])
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "okok");
    let s = proxy.wait_stats("3 requests", |s| s.core.requests == 3);
    assert_eq!(s.accepted, 2);
    assert_eq!(s.upstream_connects, 1);
    // No route: 404 from Sluice.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", &url2])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

#[test]
fn a_closed_backend_port_is_502() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = run_proxy(config(), table(&[port]), None);
    let mut c = Client::connect(proxy.http);
    let r = c.get("/");
    assert_eq!(r.status, 502);
    assert_eq!(r.field("server"), Some("sluice"));
    let s = proxy.wait_stats("3 tries", |s| s.core.requests == 1);
    assert_eq!(s.core.retries, 2, "the one endpoint tried three times");
}

#[test]
fn a_backend_that_never_answers_is_504() {
    let backend = Backend::start();
    let core = Config { upstream_read_timeout_ns: 300_000_000, ..Config::default() };
    let proxy = run_proxy(ProxyConfig { core, ..config() }, table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    let r = c.get("/silent");
    assert_eq!(r.status, 504);
    let s = proxy.wait_stats("upstream closed", |s| s.upstreams == 0);
    assert_eq!(s.core.responses[5], 1);
}

#[test]
fn a_100_mb_upload_and_download_stream_through_bounded_buffers() {
    const SIZE: usize = 100 * 1000 * 1000;
    let backend = Backend::start();
    let core = Config { max_body_bytes: None, ..Config::default() };
    let proxy = run_proxy(ProxyConfig { core, ..config() }, table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(
            format!("POST /sink HTTP/1.1\r\nHost: app.test\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let piece = vec![b'u'; 64 * 1024];
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(piece.len());
            w.write_all(&piece[..n]).unwrap();
            left -= n;
        }
    });
    let r = read_response(&mut c.r, false);
    writer.join().unwrap();
    assert_eq!((r.status, r.text()), (200, SIZE.to_string()));

    c.send(format!("GET /big?n={SIZE} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes());
    let (line, mut got) = (read_head_len(&mut c), 0usize);
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut buf = vec![0u8; 256 * 1024];
    while got < SIZE {
        let n = c.r.read(&mut buf[..(SIZE - got).min(256 * 1024)]).unwrap();
        assert!(n > 0, "cut short at {got}");
        got += n;
    }
    let s = proxy.wait_stats("2 requests", |s| s.core.responses[2] == 2);
    let max = s.core.max_conn_buffered_bytes;
    assert!(max <= 256 * 1024, "a connection held {max} bytes");
    assert!(max >= 16 * 1024, "the buffers were used: {max}");
}

/// Reads a response head; returns its status line (the body is left to read).
fn read_head_len(c: &mut Client) -> String {
    use std::io::BufRead;
    let mut first = String::new();
    c.r.read_line(&mut first).unwrap();
    loop {
        let mut l = String::new();
        c.r.read_line(&mut l).unwrap();
        if l == "\r\n" {
            return first;
        }
    }
}

#[test]
fn an_upgrade_becomes_a_two_way_tunnel() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    c.send(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let r = read_response(&mut c.r, false);
    assert_eq!(r.status, 101);
    assert_eq!(r.field("upgrade"), Some("websocket"));
    for msg in [&b"ping"[..], b"GET / HTTP/1.1\r\n\r\n", &[0u8, 1, 2, 255]] {
        c.send(msg);
        let mut back = vec![0u8; msg.len()];
        c.r.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    drop(c);
    proxy.wait_stats("tunnel closed", |s| s.clients == 0 && s.upstreams == 0);
}

#[test]
fn https_through_rustls_with_curl() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["app.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), Some(Arc::new(tls)));
    let https: SocketAddr = proxy.https.unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let url = format!("https://app.test:{}/headers", https.port());
    let resolve = format!("app.test:{}:127.0.0.1", https.port());
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
            &url,
        ])
        .output()
        .expect("curl runs");
    // A 20 MB download through TLS: backpressure through rustls' buffers too.
    let big = format!("https://app.test:{}/big?n=20000000", https.port());
    let download = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert", ca.to_str().unwrap(), "--resolve", &resolve])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{size_download}", &big])
        .output()
        .expect("curl runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    assert_eq!(body.matches("GET /headers HTTP/1.1").count(), 2, "{body}");
    assert_eq!(String::from_utf8_lossy(&download.stdout), "200 20000000");
    let s = proxy.wait_stats("3 requests", |s| s.core.requests == 3);
    assert_eq!((s.accepted, s.tls_errors), (2, 0));
    assert!(s.core.max_conn_buffered_bytes <= 256 * 1024, "{s:?}");
}

#[test]
fn slow_heads_get_408() {
    let backend = Backend::start();
    let core = Config { client_head_timeout_ns: 200_000_000, ..Config::default() };
    let proxy = run_proxy(ProxyConfig { core, ..config() }, table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    c.send(b"GET / HTTP/1.1\r\nHost: app");
    let r = read_response(&mut c.r, false);
    assert_eq!(r.status, 408);
    let mut rest = Vec::new();
    c.r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the 408");
    let _ = Duration::ZERO;
}

#[test]
fn upstream_connections_the_backend_drops_are_not_a_clients_problem() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    let mut c = Client::connect(proxy.http);
    for i in 0..20 {
        let r = c.get("/once");
        assert_eq!(r.status, 200, "request {i}");
        if i % 2 == 0 {
            // Sometimes give the proxy time to see the close of the idle connection first;
            // otherwise the GET meets the dead pooled connection and is sent again.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let s = proxy.wait_stats("20 requests", |s| s.core.responses[2] == 20);
    assert_eq!(s.core.responses[5], 0);
    assert!(backend.connections.load(Ordering::SeqCst) >= 20, "one upstream connection per request");
}

#[test]
fn http10_clients_get_close_delimited_bodies_of_unknown_length() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    let url = format!("http://{}/chunked", proxy.http);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http1.0", "--max-time", "20", "-H", "Host: app.test", &url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\r\n\r\nhello world"), "{text}");
    assert!(!text.contains("chunked") && text.contains("Connection: close\r\n"), "{text}");
}

#[test]
fn trailers_cross_the_proxy_both_ways_on_real_sockets() {
    let backend = Backend::start();
    let proxy = run_proxy(config(), table(&[backend.addr]), None);
    // A raw client: request trailers reach the backend (which sends them back as its data), the
    // backend's reach the client; the fields no trailer may carry stay behind.
    let mut c = Client::connect(proxy.http);
    c.send(
        b"POST /trailers HTTP/1.1\r\nHost: app.test\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\nhi\r\n0\r\nX-Sum: 7\r\nAuthorization: Basic eA==\r\n\r\n",
    );
    let r = read_response(&mut c.r, false);
    assert_eq!((r.status, r.text().as_str()), (200, "X-Sum: 7\r\n"));
    assert_eq!(r.field("trailer"), Some("X-Checksum"));
    assert_eq!(r.trailers, [("x-checksum".to_string(), "42".to_string())]);
    // The connection goes on: the trailer sections ended where they should.
    let r = c.get("/headers");
    assert!(r.text().starts_with("GET /headers HTTP/1.1\n"), "{}", r.text());
    // curl shows the trailer fields it received with the head (-D).
    let url = format!("http://{}/trailers", proxy.http);
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "20", "-H", "Host: app.test", &url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Transfer-Encoding: chunked\r\n") && text.contains("X-Checksum: 42\r\n"), "{text}");
    assert!(!text.contains("no=1"), "{text}");
}

#[test]
fn a_body_over_the_limit_is_413_and_never_reaches_the_backend() {
    let backend = Backend::start();
    let core = Config { max_body_bytes: Some(1000), ..Config::default() };
    let proxy = run_proxy(ProxyConfig { core, ..config() }, table(&[backend.addr]), None);
    let url = format!("http://{}/echo", proxy.http);
    let body = "x".repeat(5000);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "-H", "Host: app.test"])
        .args(["--data-binary", &body, &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
    assert_eq!(backend.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn a_listener_taken_away_refuses_new_connections() {
    let poll = mio::Poll::new().unwrap();
    let mut proxy = sluice_proxy::Proxy::new(config(), 1024..2048);
    let addr = proxy.listen(poll.registry(), "127.0.0.1:0".parse().unwrap(), None).unwrap();
    // The kernel completes the handshake into the backlog: the listener is there.
    assert!(std::net::TcpStream::connect(addr).is_ok());
    assert!(proxy.unlisten(poll.registry(), addr));
    assert!(!proxy.unlisten(poll.registry(), addr), "only once");
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
