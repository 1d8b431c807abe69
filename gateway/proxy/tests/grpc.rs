//! gRPC through the proxy on loopback: Python `grpcio` (Debian: python3-grpcio) as client and
//! server (`tests/grpc/`: generic handlers, raw bytes, no protoc), the route's
//! `backend-protocol: GRPC`, so the upstream is HTTP/2 in clear with trailers carried end to
//! end: unary calls with trailing metadata, a bidirectional stream, and an error status; and
//! the same with `GRPCS`, the server speaking TLS only (ALPN h2). A
//! missing grpcio skips the test loudly, unless `SLUICE_REQUIRE_ROOT=1` (the full suite),
//! where it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{run_proxy, table_with};
use sluice_model::counters::Counter;
use sluice_model::policy::{BackendProtocol, Policy};
use sluice_proxy::ProxyConfig;

/// Debian's interpreter: grpcio is a Debian package, not one of another Python's.
const PYTHON: &str = "/usr/bin/python3";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/grpc").join(name)
}

fn have_grpcio() -> bool {
    let found = Command::new(PYTHON).args(["-c", "import grpc"]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SLUICE_REQUIRE_ROOT").as_deref() != Ok("1"),
            "python3-grpcio is missing and SLUICE_REQUIRE_ROOT=1: apt-get install python3-grpcio"
        );
        eprintln!(
            "!!! SKIPPED: python3-grpcio is not installed (Debian: python3-grpcio); gRPC NOT tested !!!"
        );
    }
    found
}

/// The gRPC server, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// The server with more arguments (`CERT KEY`: over TLS).
    fn start_with(extra: &[&std::path::Path]) -> Server {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut child = Command::new(PYTHON)
            .arg(script("server.py"))
            .arg(addr.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gRPC server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "listening", "the gRPC server did not start");
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn grpc_unary_streaming_and_status_cross_an_h2c_upstream() {
    if !have_grpcio() {
        return;
    }
    let server = Server::start();
    let policy = Policy { backend_protocol: BackendProtocol::Grpc, ..Policy::default() };
    let proxy = run_proxy(
        ProxyConfig { access_log: true, ..ProxyConfig::default() },
        table_with(&[server.addr], policy),
        None,
    );
    let out = Command::new("timeout")
        .args(["60", PYTHON])
        .arg(script("client.py"))
        .args([&proxy.http.to_string(), "app.test", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("unary ok 5") && text.contains("stream ok 5") && text.contains("status ok NOT_FOUND"),
        "{text}"
    );
    let s = proxy.wait_stats("7 calls", |s| s.core.requests == 7);
    assert_eq!(s.h2.count(Counter::L7H2Connections), 1);
    assert_eq!(s.upstream_connects, 1, "one HTTP/2 upstream connection, reused: {s:?}");
    let log = proxy.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("\"POST /echo.Echo/Stream HTTP/2.0\" 200 ")), "{log:?}");
}

#[test]
fn grpc_crosses_a_grpcs_upstream_over_tls() {
    if !have_grpcio() {
        return;
    }
    // A certificate made at run time, for a name the proxy never asks for (proxy_ssl_verify
    // off): the key is never committed.
    let cert = rcgen::generate_simple_self_signed(vec!["grpc.invalid".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-proxy-grpcs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(&[&crt, &key]);
    let _ = std::fs::remove_dir_all(&dir);
    let policy = Policy { backend_protocol: BackendProtocol::Grpcs, ..Policy::default() };
    let proxy = run_proxy(
        ProxyConfig { access_log: true, ..ProxyConfig::default() },
        table_with(&[server.addr], policy),
        None,
    );
    let out = Command::new("timeout")
        .args(["60", PYTHON])
        .arg(script("client.py"))
        .args([&proxy.http.to_string(), "app.test", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "unary ok 5\nstream ok 5\nstatus ok NOT_FOUND\n");
    let s = proxy.wait_stats("7 calls", |s| s.core.requests == 7);
    assert_eq!(s.upstream_connects, 1, "one HTTP/2 connection over TLS, reused: {s:?}");
    assert_eq!((s.upstream_tls_handshakes, s.upstream_tls_errors), (1, 0), "{s:?}");
    assert_eq!(s.h2.count(Counter::L7H2StreamsFailed), 0);
}
