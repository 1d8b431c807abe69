//! Namespace tests of the L7 stage (scenarios 10 and 11): real clients (`curl`, `openssl
//! s_client`), the gateway serving Ingresses on an address of its own, real nginx backends.
//! Control runs on `deploy/examples/ingress/` — the petclinic Ingress, its Services and Pods —
//! with the TLS Secret made at run time, as `kubectl create secret tls` would (no key is ever
//! committed). Needs root; see the crate docs.

use std::path::Path;

use sluice_sandbox::tls::{certificate, tls_secret};
use sluice_sandbox::{Backend, Sandbox, example, require_root};

/// The address Ingresses are served on (on-link for the client, like a LoadBalancer VIP).
const L7: &str = "198.18.100.80";

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// The sandbox with the petclinic Ingress served on [`L7`]; `None` when skipped.
fn up(test: &str, dir: &Path) -> Option<Sandbox> {
    up_with(test, dir, &[], &[L7])
}

/// [`up`] with more manifests, waiting for listeners on each of `serving`.
fn up_with(test: &str, dir: &Path, extra: &[(&str, &str)], serving: &[&str]) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    let (cert, key) = certificate(dir, "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    let mut manifests = vec![("tls-secret.yaml", secret.as_str())];
    manifests.extend_from_slice(extra);
    sb.set_manifests(&[example("ingress")], &manifests).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--l7-address", L7]).expect("gateway");
    // The workers open their listeners when they take the first generation.
    sb.wait_l7_listeners(serving).expect("L7 listeners");
    Some(sb)
}

/// `curl` from the client; (status, body) or curl's complaint.
fn curl(sb: &Sandbox, extra: &[&str], url: &str) -> Result<(u16, String), String> {
    let mut args = vec!["curl", "-sS", "-g", "-m", "5", "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = sb.exec("cl", &args).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.trim().to_owned()))
}

/// `curl` that must succeed, with the gateway's log on failure.
fn must_curl(sb: &Sandbox, extra: &[&str], url: &str) -> (u16, String) {
    curl(sb, extra, url).unwrap_or_else(|e| panic!("{e}\ngateway log:\n{}", sb.log("gateway")))
}

#[test]
fn http_is_routed_by_host_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sb) = up("http_is_routed_by_host_and_path", dir.path()) else { return };
    let host = ["-H", "Host: foo.bar.com"];
    let base = format!("http://{L7}");
    // Scenario 10: `/` Prefix to petclinic, `/oups` Exact to petclinic-errors (by port name),
    // `/owners/find` Prefix to owners.
    for (path, who) in [
        ("/", "petclinic-web-1"),
        ("/vets", "petclinic-web-1"),
        ("/oups", "petclinic-errors-1"),
        ("/oups/", "petclinic-web-1"),
        ("/owners/find", "owners-1"),
        ("/owners/find/", "owners-1"),
        ("/owners/find/42", "owners-1"),
        ("/owners/findx", "petclinic-web-1"),
    ] {
        let (status, body) = must_curl(&sb, &host, &format!("{base}{path}"));
        assert_eq!((status, body.as_str()), (200, who), "GET {path}");
    }
    // Another host: no rule, no default backend: Sluice's own 404.
    let (status, _) = must_curl(&sb, &["-H", "Host: other.example"], &format!("{base}/"));
    assert_eq!(status, 404);
    // Keep-alive: several requests on one connection, all answered.
    let out = sb
        .exec(
            "cl",
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "-H",
                "Host: foo.bar.com",
                &format!("{base}/oups"),
                &format!("{base}/"),
            ],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["petclinic-errors-1", "petclinic-web-1"], "{out:?}");
    assert!(out.status.success(), "{out:?}");
    // 11 requests: 10 answered by backends, 1 by Sluice (the 404); the access log has each.
    assert!(sb.wait_counter("l7_requests", 11) >= 11, "{}", sb.metrics());
    assert!(sb.wait_counter("l7_responses_2xx", 10) >= 10, "{}", sb.metrics());
    assert_eq!(sb.wait_counter("l7_responses_4xx", 1), 1);
    assert_eq!(sb.gateway_counter("l7_local_responses"), 1);
    // The same requests on control's page by route: status classes and both durations.
    let route = |path: &str, ty: &str, svc: &str| {
        format!(
            r#"namespace="default",ingress="petclinic",host="foo.bar.com",path="{path}",path_type="{ty}",service="{svc}""#
        )
    };
    let (web, errors, owners) = (
        route("/", "Prefix", "petclinic"),
        route("/oups", "Exact", "petclinic-errors"),
        route("/owners/find", "Prefix", "owners"),
    );
    let want = [
        format!("sluice_l7_requests_total{{{web},status=\"2xx\"}} 5\n"),
        format!("sluice_l7_requests_total{{{errors},status=\"2xx\"}} 2\n"),
        format!("sluice_l7_requests_total{{{owners},status=\"2xx\"}} 3\n"),
        format!("sluice_l7_request_duration_seconds_count{{{owners}}} 3\n"),
        format!("sluice_l7_upstream_duration_seconds_count{{{owners}}} 3\n"),
        format!("sluice_l7_request_duration_seconds_bucket{{{owners},le=\"+Inf\"}} 3\n"),
        r#"sluice_l7_requests_total{namespace="",ingress="",host="",path="",path_type="",service="",status="4xx"} 1"#
            .to_owned()
            + "\n",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let page = sb.metrics();
        let missing: Vec<&String> = want.iter().filter(|w| !page.contains(w.as_str())).collect();
        if missing.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "missing {missing:?} in:\n{page}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = sb.log("gateway");
    assert!(log.contains("\"GET /owners/find/42 HTTP/1.1\" 200"), "access log:\n{log}");
    assert!(
        log.contains("foo.bar.com \"GET /oups HTTP/1.1\" 200 19 198.18.1.112:8080"),
        "access log:\n{log}"
    );
}

#[test]
fn https_terminates_with_the_certificate_sni_names() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sb) = up("https_terminates_with_the_certificate_sni_names", dir.path()) else { return };
    let ca = dir.path().join("foo.bar.com.crt");
    let ca = ca.to_string_lossy();
    let resolve = format!("foo.bar.com:443:{L7}");
    let (status, body) =
        must_curl(&sb, &["--cacert", &ca, "--resolve", &resolve], "https://foo.bar.com/owners/find/1");
    assert_eq!((status, body.as_str()), (200, "owners-1"));
    // TLS 1.3 and 1.2 both; 1.1 refused.
    for v in ["--tlsv1.3", "--tlsv1.2"] {
        let max = if v == "--tlsv1.2" { ["--tls-max", "1.2"] } else { ["--tls-max", "1.3"] };
        let (status, _) = must_curl(
            &sb,
            &["--cacert", &ca, "--resolve", &resolve, v, max[0], max[1]],
            "https://foo.bar.com/",
        );
        assert_eq!(status, 200, "{v}");
    }
    let old =
        curl(&sb, &["-k", "--resolve", &resolve, "--tlsv1.1", "--tls-max", "1.1"], "https://foo.bar.com/");
    assert!(old.is_err(), "TLS 1.1 must be refused: {old:?}");
    // SNI chooses: an unknown name gets the default certificate, not foo.bar.com's.
    let subject = |name: &str| {
        let out = sb
            .exec("cl", &["sh", "-c", &format!(
                "echo | openssl s_client -connect {L7}:443 -servername {name} 2>/dev/null | openssl x509 -noout -subject"
            )])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(subject("foo.bar.com").contains("foo.bar.com"), "{}", subject("foo.bar.com"));
    let other = subject("unknown.example");
    assert!(!other.is_empty() && !other.contains("foo.bar.com"), "default certificate: {other}");
    // Three curl handshakes and two s_client ones completed; the TLS 1.1 attempt failed.
    assert_eq!(sb.wait_counter("l7_tls_handshakes", 5), 5, "{}", sb.metrics());
    assert!(sb.gateway_counter("l7_tls_errors") >= 1, "{}", sb.metrics());
}

/// An address pool and a LoadBalancer Service on the L7 address's port 9000: the Service takes
/// the address it asks for, the IngressClass the pool's next free one.
const SHARED: &str = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: edge
  namespace: sluice-system
spec:
  addresses:
    - 198.18.100.80-198.18.100.89
---
apiVersion: v1
kind: Service
metadata:
  name: petclinic-l4
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.100.80
  selector:
    app: petclinic
  ports:
    - port: 9000
      targetPort: 8080
";

#[test]
fn l4_services_keep_their_ports_on_an_l7_address_and_the_class_gets_one_from_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let test = "l4_services_keep_their_ports_on_an_l7_address_and_the_class_gets_one_from_the_pool";
    // 198.18.100.80 by flag (and the L4 Service's), .81 the IngressClass's, from the pool.
    let Some(sb) = up_with(test, dir.path(), &[("shared.yaml", SHARED)], &[L7, "198.18.100.81"]) else {
        return;
    };
    let host = ["-H", "Host: foo.bar.com"];
    // L4 on port 9000 of the address: forwarded by the workers (no Host needed, any path).
    let (status, body) = must_curl(&sb, &[], &format!("http://{L7}:9000/owners/find"));
    assert_eq!((status, body.as_str()), (200, "petclinic-web-1"));
    assert!(sb.wait_counter("new_flows", 1) >= 1, "the L4 path took it: {}", sb.metrics());
    // L7 on port 80 of the same address, and on the class's own address.
    for addr in [L7, "198.18.100.81"] {
        let (status, body) = must_curl(&sb, &host, &format!("http://{addr}/owners/find/7"));
        assert_eq!((status, body.as_str()), (200, "owners-1"), "{addr}");
    }
    let status = sb.status();
    assert!(status.contains("198.18.100.81"), "control's status names the class's address:\n{status}");
    // The gateway put both addresses on its interface, and takes them off when it stops.
    let addrs = |sb: &Sandbox| {
        let out = sb.exec("gw", &["ip", "-4", "addr", "show", "dev", "gw0"]).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = addrs(&sb);
    assert!(before.contains("198.18.100.80/32") && before.contains("198.18.100.81/32"), "{before}");
    let mut sb = sb;
    assert!(
        sb.stop("gateway", rustix::process::Signal::TERM).is_some_and(|s| s.success()),
        "{}",
        sb.log("gateway")
    );
    let after = addrs(&sb);
    assert!(!after.contains("198.18.100.8") && after.contains("198.18.0.1/24"), "{after}");
}

/// An Ingress path to an ExternalName Service goes to what its name resolves to (asked of the
/// gateway's `--dns-server`, again when the TTL runs out); one to a headless Service goes to its
/// endpoints.
#[test]
fn external_name_and_headless_backends() {
    let test = "external_name_and_headless_backends";
    if !require_root(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    // The DNS server runs beside the owners backend (b2); the name first points at it.
    let zone = sb.dir().join("zone");
    std::fs::write(&zone, "owners.sluice.test 198.18.1.113\n").unwrap();
    let dns = sluice_sandbox::bin("sluice-dns-fixed");
    sb.spawn(
        "b2",
        "dns",
        &[
            dns.to_str().unwrap(),
            "--listen",
            "198.18.1.113:5353",
            "--zone",
            zone.to_str().unwrap(),
            "--ttl",
            "1",
        ],
    )
    .expect("dns");
    let manifests = "apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: owners.sluice.test, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: owners-headless}
spec: {clusterIP: None, selector: {app: owners}, ports: [{port: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: more}
spec:
  ingressClassName: sluice
  rules:
  - host: more.example
    http:
      paths:
      - {path: /ext, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
      - {path: /headless, pathType: Prefix, backend: {service: {name: owners-headless, port: {number: 8080}}}}
";
    let (cert, key) = certificate(dir.path(), "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    sb.set_manifests(
        &[example("ingress")],
        &[("tls-secret.yaml", secret.as_str()), ("more.yaml", manifests)],
    )
    .expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--l7-address", L7, "--dns-server", "198.18.1.113:5353"]).expect("gateway");
    let host = ["-H", "Host: more.example"];
    let url = |p: &str| format!("http://{L7}{p}");
    let until = |want: &str, path: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let got = curl(&sb, &host, &url(path));
            if matches!(&got, Ok((200, b)) if b == want) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: {got:?}, want {want}\ngateway:\n{}\ndns:\n{}",
                sb.log("gateway"),
                sb.log("dns")
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    until("owners-1", "/ext");
    until("owners-1", "/headless");
    // The name moves: within its TTL (1 s) and a round, requests follow it.
    std::fs::write(&zone, "owners.sluice.test 198.18.1.112\n").unwrap();
    until("petclinic-errors-1", "/ext");
    // Gone from DNS: no endpoint, 503 from Sluice.
    std::fs::write(&zone, "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while must_curl(&sb, &host, &url("/ext")).0 != 503 {
        assert!(std::time::Instant::now() < deadline, "still served:\n{}", sb.log("gateway"));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(sb.log("dns").matches("query owners.sluice.test A").count() >= 3, "{}", sb.log("dns"));
}
