//! Namespace tests of TLS to upstreams through the gateway (`backend-protocol: HTTPS` and
//! `GRPCS`): real backends that speak TLS only — nginx with a certificate made at run time,
//! Python `grpcio` with `grpc.ssl_server_credentials` (`tests/grpc/`) — and real clients (curl,
//! the gRPC client) in clear to the gateway. Checked: the answer comes from the TLS backend,
//! over one pooled TLS connection; a backend that speaks plain HTTP on the port fails the
//! handshake (502, counted); `proxy-ssl-verify: "on"` is denied (503). Needs root; see the
//! crate docs.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_sandbox::tls::certificate;
use sluice_sandbox::{Backend, Sandbox, nginx_conf, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

/// The HTTPS backend's address (nginx: TLS on 8443, plain HTTP on 8080).
const SECURE: &str = "198.18.1.114";

/// The GRPCS backend's address (grpcio over TLS on 50051).
const GRPCS: &str = "198.18.1.115";

/// The Pods, Services and Ingresses: `secure.example` → HTTPS to nginx's TLS port;
/// `wrong.example` → HTTPS to its plain port; `verified.example` → HTTPS with proxy-ssl-verify
/// on; `grpcs.example` → GRPCS to the gRPC server.
const MANIFESTS: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.io/ingress}
---
apiVersion: v1
kind: Pod
metadata: {name: secure-1, labels: {app: secure}}
spec: {containers: [{name: app, image: registry.example/secure:1, ports: [{name: https, containerPort: 8443}, {name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.1.114, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Service
metadata: {name: secure}
spec: {selector: {app: secure}, ports: [{name: https, port: 443, targetPort: 8443}, {name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: grpcs-1, labels: {app: grpcs}}
spec: {containers: [{name: app, image: registry.example/grpcs:1, ports: [{name: grpcs, containerPort: 50051}]}]}
status: {phase: Running, podIP: 198.18.1.115, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpcs}
spec: {selector: {app: grpcs}, ports: [{name: grpcs, port: 50051, targetPort: 50051}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  annotations: {nginx.ingress.kubernetes.io/backend-protocol: HTTPS}
spec:
  ingressClassName: sluice
  rules:
  - host: secure.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 443}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: wrong
  annotations: {nginx.ingress.kubernetes.io/backend-protocol: HTTPS}
spec:
  ingressClassName: sluice
  rules:
  - host: wrong.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 80}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: verified
  annotations:
    nginx.ingress.kubernetes.io/backend-protocol: HTTPS
    nginx.ingress.kubernetes.io/proxy-ssl-verify: "on"
    nginx.ingress.kubernetes.io/proxy-ssl-secret: default/upstream-ca
spec:
  ingressClassName: sluice
  rules:
  - host: verified.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 443}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: grpcs
  annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPCS}
spec:
  ingressClassName: sluice
  rules:
  - host: grpcs.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: grpcs, port: {number: 50051}}}}]}
"#;

/// The sandbox with [`MANIFESTS`], control and the gateway serving them on [`L7`], after
/// `before` started what the backends serve; `None` when skipped.
fn up(test: &str, backends: &[Backend], before: impl FnOnce(&mut Sandbox)) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(backends).expect("sandbox");
    before(&mut sb);
    sb.set_manifests(&[], &[("tls-upstream.yaml", MANIFESTS)]).expect("manifests");
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

/// Waits (bounded) until `name` has logged `what`.
fn wait_log(sb: &Sandbox, name: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.log(name).contains(what) {
        assert!(Instant::now() < deadline, "{name} did not log {what:?}:\n{}", sb.log(name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn https_upstreams_through_the_gateway() {
    let test = "https_upstreams_through_the_gateway";
    let backends = [Backend::http("secure-1", SECURE, &[8080])];
    let Some(sb) = up(test, &backends, |sb| {
        // nginx with TLS only on 8443, a certificate made now for a name nobody asks for. Each
        // answer says what the TLS connection was: protocol, requests on it, SNI, ALPN.
        let dir = sb.dir().join("nginx-secure-tls");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        certificate(&dir, "backend.invalid", "secure").expect("certificate");
        let d = dir.display();
        let server = format!(
            "server {{ listen {SECURE}:8443 ssl;\n\
             \x20 ssl_certificate {d}/secure.crt; ssl_certificate_key {d}/secure.key;\n\
             \x20 location / {{ default_type text/plain;\n\
             \x20   return 200 \"secure-1 $ssl_protocol requests=$connection_requests sni=[$ssl_server_name] alpn=[$ssl_alpn_protocol]\\n\"; }}\n\
             }}"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, &server)).unwrap();
        sb.spawn("b0", "nginx-secure-tls", &["nginx", "-c", &conf.to_string_lossy()]).expect("nginx");
        let probe = format!("https://{SECURE}:8443/");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sb.exec("b0", &["curl", "-sk", "-m", "1", &probe]).is_ok_and(|o| o.status.success()) {
            assert!(
                Instant::now() < deadline,
                "nginx (TLS) does not answer:\n{}",
                sb.log("nginx-secure-tls")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }) else {
        return;
    };
    // Two requests on one client connection: one worker, one upstream TLS connection, pooled
    // and taken again (nginx counts the requests on it).
    let url = format!("http://{L7}/");
    let out = client(&sb, &["curl", "-sS", "--fail", "-H", "Host: secure.example", &url, &url]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("secure-1 TLSv1.") && lines[0].contains("requests=1"), "{out}");
    assert!(lines[1].contains("requests=2"), "the second request on the same TLS connection: {out}");
    // ingress-nginx's defaults: no SNI, ALPN http/1.1.
    assert!(lines[0].ends_with("sni=[] alpn=[http/1.1]"), "{out}");
    assert_eq!(sb.wait_counter("l7_upstream_tls_handshakes", 1), 1, "{}", sb.metrics());
    assert!(sb.wait_counter("l7_upstream_reuses", 1) >= 1, "{}", sb.metrics());
    assert_eq!(sb.gateway_counter("l7_upstream_tls_errors"), 0);

    // HTTPS to a port that speaks plain HTTP: nginx answers the ClientHello with a 400, which
    // is no TLS record. A failed connect: 502 (after the retries), counted.
    let out = client(
        &sb,
        &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: wrong.example", &url],
    );
    assert_eq!(out, "502");
    assert!(sb.wait_counter("l7_upstream_tls_errors", 1) >= 1, "{}", sb.metrics());

    // proxy-ssl-verify: "on" is a check Sluice does not make: the Ingress is denied.
    let out = client(
        &sb,
        &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: verified.example", &url],
    );
    assert_eq!(out, "503");
    let log = sb.log("gateway");
    assert!(log.contains("secure.example \"GET / HTTP/1.1\" 200"), "access log:\n{log}");
}

#[test]
fn grpcs_upstream_through_the_gateway() {
    let test = "grpcs_upstream_through_the_gateway";
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc");
    let (server, client_py) = (scripts.join("server.py"), scripts.join("client.py"));
    let backends = [Backend::http("grpcs-1", GRPCS, &[])];
    let Some(sb) = up(test, &backends, |sb| {
        let dir = sb.dir().to_path_buf();
        certificate(&dir, "grpc.invalid", "grpcs").expect("certificate");
        let (crt, key) = (dir.join("grpcs.crt"), dir.join("grpcs.key"));
        let listen = format!("{GRPCS}:50051");
        let args = [
            "/usr/bin/python3",
            server.to_str().unwrap(),
            &listen,
            crt.to_str().unwrap(),
            key.to_str().unwrap(),
        ];
        sb.spawn("b0", "grpcs", &args).expect("gRPC server");
        wait_log(sb, "grpcs", "listening");
    }) else {
        return;
    };
    let out = client(
        &sb,
        &["/usr/bin/python3", client_py.to_str().unwrap(), &format!("{L7}:80"), "grpcs.example", "5"],
    );
    assert_eq!(out, "unary ok 5\nstream ok 5\nstatus ok NOT_FOUND\n", "{out}");
    assert_eq!(sb.wait_counter("l7_requests", 7), 7, "{}", sb.metrics());
    assert_eq!(sb.wait_counter("l7_upstream_tls_handshakes", 1), 1, "one TLS connection: {}", sb.metrics());
    assert_eq!(sb.gateway_counter("l7_upstream_tls_errors"), 0);
    assert_eq!(sb.gateway_counter("l7_h2_streams_failed"), 0);
    let log = sb.log("gateway");
    assert!(log.contains("grpcs.example \"POST /echo.Echo/Unary HTTP/2.0\" 200"), "access log:\n{log}");
}
