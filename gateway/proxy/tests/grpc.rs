//! gRPC through the proxy on loopback: Python `grpcio` (Debian: python3-grpcio) as client and
//! server (`tests/grpc/`: generic handlers, raw bytes, no protoc), the route's
//! `backend-protocol: GRPC`, so the upstream is HTTP/2 in clear with trailers carried end to
//! end: unary calls with trailing metadata, a bidirectional stream, and an error status. A
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
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut child = Command::new(PYTHON)
            .arg(script("server.py"))
            .arg(addr.to_string())
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
