//! Namespace tests of HTTP/2 through the gateway: real HTTP/2 clients (`curl --http2` over TLS
//! by ALPN and `--http2-prior-knowledge` in clear, `nghttp`, `h2load`) against the petclinic
//! Ingress and its nginx (HTTP/1.1) backends; and a gRPC client and server (Python `grpcio`,
//! `tests/grpc/`) through an Ingress whose `backend-protocol` is GRPC, so the upstream is
//! HTTP/2 too. Needs root; see the crate docs.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_sandbox::tls::{certificate, tls_secret};
use sluice_sandbox::{Backend, Sandbox, example, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

/// The gRPC server's port on the owners backend (198.18.1.113).
const GRPC_PORT: u16 = 50051;

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// The sandbox with the petclinic Ingress (and `extra` manifests) served on [`L7`], after
/// `before` ran (processes the backends need); `None` when skipped.
fn up(test: &str, dir: &Path, extra: &[(&str, &str)], before: impl FnOnce(&mut Sandbox)) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    before(&mut sb);
    let (cert, key) = certificate(dir, "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    let mut manifests = vec![("tls-secret.yaml", secret.as_str())];
    manifests.extend_from_slice(extra);
    sb.set_manifests(&[example("ingress")], &manifests).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--l7-address", L7]).expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    Some(sb)
}

/// Runs a command in the client's namespace; its standard output, or a panic with both outputs
/// and the gateway's log.
fn client(sb: &Sandbox, args: &[&str]) -> String {
    let mut full = vec!["timeout", "60"];
    full.extend_from_slice(args);
    let out = sb.exec("cl", &full).expect("exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {}\nstdout:\n{text}\nstderr:\n{}\ngateway log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sb.log("gateway")
    );
    text
}

#[test]
fn http2_clients_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sb) = up("http2_clients_through_the_gateway", dir.path(), &[], |_| {}) else { return };
    let ca = dir.path().join("foo.bar.com.crt");
    let ca = ca.to_string_lossy();
    let resolve = format!("foo.bar.com:443:{L7}");
    // curl over TLS: ALPN picks h2.
    let out = client(
        &sb,
        &[
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_code} %{http_version}",
            "https://foo.bar.com/owners/find/1",
        ],
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["owners-1", "200", "2"], "{out}");
    // curl in clear, prior knowledge: the preface makes the connection HTTP/2, and the request
    // gets what HTTP/1.1 gets (foo.bar.com has a certificate: ingress-nginx's ssl-redirect
    // applies to both alike).
    let plain = |version: &str| {
        client(
            &sb,
            &[
                "curl",
                "-sS",
                version,
                "-H",
                "Host: foo.bar.com",
                "-w",
                "\n%{http_code} %{redirect_url} %{http_version}",
                &format!("http://{L7}/oups"),
            ],
        )
    };
    let (h2, h1) = (plain("--http2-prior-knowledge"), plain("--http1.1"));
    assert!(h2.ends_with(" 2") && h1.ends_with(" 1.1"), "{h2}\n{h1}");
    assert_eq!(h2.trim_end_matches(" 2"), h1.trim_end_matches(" 1.1"), "the same answer both ways");
    assert_eq!(sb.wait_counter("l7_h2_connections", 2), 2, "{}", sb.metrics());
    // nghttp over TLS: three streams on one connection, each routed by its path.
    let url = |p: &str| format!("https://{L7}{p}");
    let out = client(
        &sb,
        &["nghttp", "-v", "-H", ":authority: foo.bar.com", &url("/"), &url("/oups"), &url("/owners/find/7")],
    );
    assert_eq!(out.matches(":status: 200").count(), 3, "{out}");
    for who in ["petclinic-web-1", "petclinic-errors-1", "owners-1"] {
        assert!(out.contains(who), "{who}: {out}");
    }
    assert_eq!(sb.wait_counter("l7_h2_connections", 3), 3, "one connection for three streams");
    // h2load over TLS: 2,000 requests over 4 connections, 10 streams each at once, all 2xx.
    let out = client(
        &sb,
        &["h2load", "-n", "2000", "-c", "4", "-m", "10", "-H", ":authority: foo.bar.com", &url("/")],
    );
    assert!(out.contains("2000 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx"), "{out}");
    assert_eq!(sb.wait_counter("l7_h2_connections", 7), 7);
    assert!(sb.wait_counter("l7_h2_streams", 2005) >= 2005, "{}", sb.metrics());
    assert!(sb.wait_counter("l7_responses_2xx", 2004) >= 2004, "{}", sb.metrics());
    assert_eq!(sb.gateway_counter("l7_h2_streams_failed"), 0);
    assert_eq!(sb.gateway_counter("l7_h2_protocol_errors"), 0);
    // No route: Sluice's own 404, over HTTP/2 too.
    let out = client(
        &sb,
        &[
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{L7}/"),
        ],
    );
    assert_eq!(out, "404");
    let log = sb.log("gateway");
    assert!(log.contains("foo.bar.com \"GET /owners/find/1 HTTP/2.0\" 200"), "access log:\n{log}");
}

/// The gRPC Service and Ingress: `grpc.example` → the owners Pod's port 50051, over HTTP/2.
const GRPC: &str = "apiVersion: v1
kind: Service
metadata: {name: echo-grpc}
spec: {selector: {app: owners}, ports: [{name: grpc, port: 50051, targetPort: 50051}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: echo-grpc
  annotations:
    nginx.ingress.kubernetes.io/backend-protocol: GRPC
spec:
  ingressClassName: sluice
  rules:
  - host: grpc.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo-grpc, port: {number: 50051}}}}
";

#[test]
fn grpc_unary_and_streaming_through_the_gateway() {
    let test = "grpc_unary_and_streaming_through_the_gateway";
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc");
    let (server, client_py) = (scripts.join("server.py"), scripts.join("client.py"));
    let dir = tempfile::tempdir().unwrap();
    let Some(sb) = up(test, dir.path(), &[("grpc.yaml", GRPC)], |sb| {
        let listen = format!("198.18.1.113:{GRPC_PORT}");
        sb.spawn("b2", "grpc", &["/usr/bin/python3", server.to_str().unwrap(), &listen])
            .expect("gRPC server");
    }) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.log("grpc").contains("listening") {
        assert!(Instant::now() < deadline, "the gRPC server did not start:\n{}", sb.log("grpc"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = client(
        &sb,
        &["/usr/bin/python3", client_py.to_str().unwrap(), &format!("{L7}:80"), "grpc.example", "5"],
    );
    assert_eq!(out, "unary ok 5\nstream ok 5\nstatus ok NOT_FOUND\n", "{out}");
    assert_eq!(sb.wait_counter("l7_requests", 7), 7, "{}", sb.metrics());
    assert_eq!(sb.gateway_counter("l7_h2_streams_failed"), 0);
    let log = sb.log("gateway");
    assert!(log.contains("grpc.example \"POST /echo.Echo/Unary HTTP/2.0\" 200"), "access log:\n{log}");
}

/// An HTTP/2 client that opens a connection, waits for the file `go` to appear, then reads
/// until the gateway closes and prints the types of the frames it received.
const IDLE_H2_CLIENT: &str = r#"
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], 80))
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
print("connected", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
data = b""
s.settimeout(10)
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
types = []
while len(data) >= 9:
    n = int.from_bytes(data[:3], "big")
    types.append(data[3])
    data = data[9 + n:]
print("frames", *types, flush=True)
"#;

#[test]
fn a_stopping_gateway_sends_goaway() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut sb) = up("a_stopping_gateway_sends_goaway", dir.path(), &[], |_| {}) else { return };
    let script = sb.dir().join("idle_h2.py");
    let go = sb.dir().join("go");
    std::fs::write(&script, IDLE_H2_CLIENT).unwrap();
    sb.spawn("cl", "idle-h2", &["/usr/bin/python3", script.to_str().unwrap(), L7, go.to_str().unwrap()])
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.gateway_counter("l7_h2_connections") < 1 {
        assert!(Instant::now() < deadline, "no HTTP/2 connection:\n{}", sb.log("idle-h2"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        sb.stop("gateway", rustix::process::Signal::TERM).is_some_and(|s| s.success()),
        "{}",
        sb.log("gateway")
    );
    std::fs::write(&go, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sb.log("idle-h2").contains("frames") {
        assert!(Instant::now() < deadline, "{}", sb.log("idle-h2"));
        std::thread::sleep(Duration::from_millis(20));
    }
    // SETTINGS (4) first, GOAWAY (7) last.
    let log = sb.log("idle-h2");
    let frames = log.lines().find(|l| l.starts_with("frames")).unwrap();
    assert!(frames.starts_with("frames 4") && frames.ends_with(" 7"), "{frames}");
}

/// A rapid-reset client (CVE-2023-44487): 500 streams opened and reset at once, in one write.
const RAPID_RESET_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], 80))
frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
block = b"\x82\x86\x84\x41\x0bfoo.bar.com"  # GET, http, /, :authority foo.bar.com
for i in range(500):
    sid = (2 * i + 1).to_bytes(4, "big")
    frames += len(block).to_bytes(3, "big") + b"\x01\x04" + sid + block  # HEADERS, END_HEADERS
    frames += b"\x00\x00\x04\x03\x00" + sid + b"\x00\x00\x00\x08"  # RST_STREAM CANCEL
s.sendall(frames)
s.settimeout(10)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
codes = []
while len(data) >= 9:
    n = int.from_bytes(data[:3], "big")
    if data[3] == 7:
        codes.append(int.from_bytes(data[13:17], "big"))
    data = data[9 + n:]
print("goaway", *codes, flush=True)
"#;

#[test]
fn a_rapid_reset_flood_ends_the_connection_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut sb) = up("a_rapid_reset_flood_ends_the_connection_and_is_counted", dir.path(), &[], |_| {})
    else {
        return;
    };
    let script = sb.dir().join("rapid_reset.py");
    std::fs::write(&script, RAPID_RESET_CLIENT).unwrap();
    sb.spawn("cl", "rapid-reset", &["/usr/bin/python3", script.to_str().unwrap(), L7]).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.log("rapid-reset").contains("goaway") {
        assert!(Instant::now() < deadline, "{}", sb.log("rapid-reset"));
        std::thread::sleep(Duration::from_millis(20));
    }
    // GOAWAY ENHANCE_YOUR_CALM (0xb), and the gateway's counter.
    let log = sb.log("rapid-reset");
    assert!(log.contains("goaway 11"), "{log}");
    assert_eq!(sb.wait_counter("l7_h2_rapid_resets", 1), 1, "{}", sb.metrics());
    assert!(sb.gateway_counter("l7_h2_peer_resets") >= 200, "{}", sb.metrics());
    // The gateway serves on.
    let out = client(
        &sb,
        &[
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{L7}/"),
        ],
    );
    assert_eq!(out, "404");
}
