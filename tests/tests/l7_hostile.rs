//! Namespace tests of the L7 stage against hostile clients (issue 16, item 3): slowloris heads
//! and bodies, oversized heads, the request-smuggling framings of RFC 9112 §6.3 and §11.2,
//! HTTP/2 floods (rapid reset, CONTINUATION, SETTINGS, PING, an HPACK bomb), TLS garbage and
//! renegotiation — each must get the answer `docs/l7.md` ("Hostile clients") gives, and move its
//! counter, while a well-behaved client (`tests/hostile/good.py`) loops requests over HTTP/1.1,
//! HTTPS and HTTP/2 and must see no failure at all. The hostile clients are
//! `tests/hostile/hostile.py` (raw sockets, bounded per case) and `openssl s_client`; and
//! `testssl.sh` scans the HTTPS listener. Needs root; see the crate docs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_sandbox::tls::{certificate, certificate_with, tls_secret};
use sluice_sandbox::{Backend, Sandbox, example, repo_root, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

/// The gateway's client head and body timeouts here (seconds): short, so that slow clients
/// are answered within the test's time.
const CLIENT_TIMEOUT_S: &str = "2";

/// The port of the upstream that reads whole bodies (`tests/hostile/upstream.py`) on the
/// petclinic Pod.
const READER_PORT: u16 = 9000;

/// An Ingress without TLS, so that plain requests are proxied (foo.bar.com's are redirected);
/// its `/read` goes to an upstream that waits for the whole body before it answers.
const PLAIN: &str = "apiVersion: v1
kind: Service
metadata: {name: reader}
spec: {selector: {app: petclinic}, ports: [{port: 9000, targetPort: 9000}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain}
spec:
  ingressClassName: sluice
  rules:
  - host: plain.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: petclinic, port: {number: 8080}}}}
      - {path: /read, pathType: Prefix, backend: {service: {name: reader, port: {number: 9000}}}}
";

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// The sandbox with the petclinic Ingress and [`PLAIN`] served on [`L7`], and the CA file
/// clients trust; `None` when skipped.
fn up(test: &str, dir: &Path) -> Option<(Sandbox, PathBuf)> {
    up_with(test, dir, &[])
}

/// [`up`] with more manifests.
fn up_with(test: &str, dir: &Path, extra: &[(&str, &str)]) -> Option<(Sandbox, PathBuf)> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    let port = READER_PORT.to_string();
    sb.spawn("b0", "reader", &["/usr/bin/python3", &script("upstream.py"), "198.18.1.111", &port])
        .expect("reader");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb.log("reader").contains("listening") {
        assert!(Instant::now() < deadline, "the reading upstream did not start:\n{}", sb.log("reader"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (cert, key) = certificate(dir, "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    let mut manifests = vec![("tls-secret.yaml", secret.as_str()), ("plain.yaml", PLAIN)];
    manifests.extend_from_slice(extra);
    sb.set_manifests(&[example("ingress")], &manifests).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&[
        "--l7-address",
        L7,
        "--client-header-timeout",
        CLIENT_TIMEOUT_S,
        "--client-body-timeout",
        CLIENT_TIMEOUT_S,
    ])
    .expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    Some((sb, dir.join("foo.bar.com.crt")))
}

fn script(name: &str) -> String {
    repo_root().join("tests/hostile").join(name).to_string_lossy().into_owned()
}

/// Starts the well-behaved client (at most `max_s` seconds) and waits for its first answers.
fn start_good_client(sb: &mut Sandbox, ca: &Path, stop: &Path, max_s: u32) {
    let before = sb.gateway_counter("l7_requests");
    let (ca, stop, max) = (ca.to_string_lossy(), stop.to_string_lossy(), max_s.to_string());
    sb.spawn("cl", "good", &["/usr/bin/python3", &script("good.py"), L7, &ca, &stop, &max])
        .expect("good client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sb.gateway_counter("l7_requests") < before + 20 {
        assert!(Instant::now() < deadline, "the good client got nowhere:\n{}", sb.log("good"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the well-behaved client and returns (requests that succeeded, failed), with its log.
fn stop_good_client(sb: &Sandbox, stop: &Path) -> (u64, u64, String) {
    std::fs::write(stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = sb.log("good");
        if let Some(line) = log.lines().find(|l| l.starts_with("good ok=")) {
            let mut words = line.split_whitespace().skip(1);
            let mut num = |key: &str| -> u64 {
                words.next().and_then(|w| w.strip_prefix(key)).and_then(|n| n.parse().ok()).expect(line)
            };
            let (ok, failed) = (num("ok="), num("failed="));
            return (ok, failed, log);
        }
        assert!(Instant::now() < deadline, "the good client did not stop:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What each hostile case must get (`docs/l7.md`, "Hostile clients"), as `hostile.py` prints
/// it: the answer (a status, `-` for none; over TLS the alert sent in clear, or the reason the
/// client's TLS library gives; over HTTP/2 the GOAWAY's code and the frames received) and
/// whether the gateway closed the connection. `…` stands for anything.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str)] = &[
    // RFC 9112 §6.3, §11.2: 400 and a close, before anything reaches the upstream (a coding
    // before chunked is valid HTTP Sluice does not implement: 501).
    ("cl_te", "400 closed"),
    ("te_cl", "400 closed"),
    ("te_chunked_identity", "400 closed"),
    ("te_identity", "400 closed"),
    ("te_xchunked", "400 closed"),
    ("te_chunked_twice", "400 closed"),
    ("te_gzip_chunked", "501 closed"),
    ("te_space_before_colon", "400 closed"),
    ("te_obs_fold", "400 closed"),
    ("te_http10", "400 closed"),
    ("cl_differing_fields", "400 closed"),
    ("cl_differing_list", "400 closed"),
    ("cl_signed", "400 closed"),
    ("cl_overflow", "400 closed"),
    ("bare_cr", "400 closed"),
    ("no_host", "400 closed"),
    ("two_hosts", "400 closed"),
    ("nul_in_value", "400 closed"),
    // Chunked bodies that break the framing: 400 (the response has not begun) and a close.
    ("chunk_size_overflow", "400 closed"),
    ("chunk_size_not_hex", "400 closed"),
    ("chunk_size_0x", "400 closed"),
    ("chunk_extension_bad", "400 closed"),
    ("chunk_bare_lf", "400 closed"),
    ("chunk_data_overrun", "400 closed"),
    ("chunk_trailer_obs_fold", "400 closed"),
    // Limits.
    ("oversized_head", "431 closed"),
    ("oversized_target", "414 closed"),
    ("too_many_fields", "431 closed"),
    // Slow clients (the head and body timeouts: 2 s here). A TLS handshake that does not
    // finish in time ends with close_notify (alert 0).
    ("slow_head", "408 closed"),
    ("silent", "- closed"),
    ("slow_body", "408 closed"),
    ("slow_tls_handshake", "alert:0 closed"),
    // Not TLS, or not a TLS record that parses: a fatal alert in clear (decode_error, 50).
    ("tls_plaintext_http", "alert:50 closed"),
    ("tls_garbage_client_hello", "alert:50 closed"),
    ("tls_bad_content_type", "alert:50 closed"),
    ("tls_oversized_record", "alert:50 closed"),
    // A record that does not open after the handshake: bad_record_mac, and a close.
    ("tls12_garbage_after_handshake", "…bad_record_mac closed"),
    ("tls13_garbage_after_handshake", "…bad_record_mac closed"),
    // HTTP/2 floods: GOAWAY ENHANCE_YOUR_CALM (11) and a close.
    ("h2_continuation_flood", "goaway:11 …closed"),
    ("h2_rapid_reset", "goaway:11 …closed"),
    ("h2_settings_flood", "goaway:11 …closed"),
    ("h2_ping_flood", "goaway:11 …closed"),
    // An HPACK bomb is the stream's fault: its stream is answered (HEADERS: 431) and the
    // connection goes on, until the idle timeout ends it quietly (GOAWAY NO_ERROR). The frames:
    // SETTINGS, WINDOW_UPDATE, SETTINGS ack, HEADERS…
    ("h2_hpack_bomb", "goaway:0 frames:4,8,4,1,…closed"),
];

/// Whether a case's result is what [`EXPECTED`] says: equal, or with `…` standing for anything.
fn matches(got: &str, want: &str) -> bool {
    let parts: Vec<&str> = want.split('…').collect();
    let [first, middle @ .., last] = parts.as_slice() else { return got == want };
    if middle.is_empty() && parts.len() == 1 {
        return got == want;
    }
    if got.len() < first.len() + last.len() || !got.starts_with(first) || !got.ends_with(last) {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn hostile_clients_get_their_answers_and_others_are_served_throughout() {
    let test = "hostile_clients_get_their_answers_and_others_are_served_throughout";
    let dir = tempfile::tempdir().unwrap();
    let Some((mut sb, ca)) = up(test, dir.path()) else { return };
    let stop = sb.dir().join("good.stop");
    start_good_client(&mut sb, &ca, &stop, 300);

    // Every hostile case, one after another (each bounded to 10 s in the script).
    let started = Instant::now();
    let out = sb
        .exec(
            "cl",
            &["timeout", "400", "/usr/bin/python3", &script("hostile.py"), L7, &ca.to_string_lossy(), "all"],
        )
        .expect("hostile clients");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!(
        "hostile clients ({:.1} s): {}\n{text}\n{}",
        started.elapsed().as_secs_f64(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().any(|l| l == "done"), "{report}");
    let results: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let mut wrong = Vec::new();
    for (case, want) in EXPECTED {
        if !results.get(case).is_some_and(|got| matches(got, want)) {
            wrong.push(format!("{case}: want {want:?}, got {:?}", results.get(case)));
        }
    }
    assert_eq!(results.len(), EXPECTED.len(), "a case without an expectation:\n{report}");
    assert!(wrong.is_empty(), "{}\n\n{report}\ngateway log:\n{}", wrong.join("\n"), sb.log("gateway"));

    // TLS 1.2 renegotiation, client-initiated (`R` in s_client): refused with a no_renegotiation
    // warning alert (rustls: the first; a second is fatal), and no second handshake.
    let handshakes = sb.gateway_counter("l7_tls_handshakes");
    let reneg = sb
        .exec(
            "cl",
            &[
                "timeout",
                "20",
                "sh",
                "-c",
                &format!(
                    "(printf 'R\\n'; sleep 2; printf 'R\\n'; sleep 2) | openssl s_client -tls1_2 -connect {L7}:443 \
                     -servername foo.bar.com -CAfile {} 2>&1",
                    ca.to_string_lossy()
                ),
            ],
        )
        .expect("s_client");
    let reneg = String::from_utf8_lossy(&reneg.stdout).into_owned();
    assert!(reneg.contains("RENEGOTIATING"), "{reneg}");
    assert!(reneg.contains("no renegotiation") || reneg.contains("no_renegotiation"), "{reneg}");
    assert_eq!(
        sb.wait_counter("l7_tls_handshakes", handshakes + 1),
        handshakes + 1,
        "one handshake: {reneg}"
    );

    // Every kind of hostile input moved its counter, once per case (the good client moves none
    // of these).
    let smuggling_heads = EXPECTED.iter().take_while(|(c, _)| !c.starts_with("chunk_")).count() as u64;
    let exact: &[(&str, u64)] = &[
        // The framing cases, and the three over a limit.
        ("l7_rejected_heads", smuggling_heads + 3),
        ("l7_rejected_bodies", 7),
        // slow_head, silent, slow_body, slow_tls_handshake.
        ("l7_client_timeouts", 4),
        ("l7_h2_continuation_floods", 1),
        ("l7_h2_rapid_resets", 1),
        ("l7_h2_settings_floods", 1),
        ("l7_h2_header_lists_too_large", 1),
    ];
    for &(name, want) in exact {
        sb.wait_counter(name, want);
        assert_eq!(sb.gateway_counter(name), want, "{name}\n{}", sb.metrics());
    }
    // Four kinds of garbage before the handshake and two after it; the renegotiation ends with
    // rustls' error on the second request or with the client's fatal alert, or both.
    let tls_errors = sb.wait_counter("l7_tls_errors", 7);
    assert!((7..=8).contains(&tls_errors), "l7_tls_errors {tls_errors}\n{}", sb.metrics());
    let [pings, backlog] = sb.gateway_counters(["l7_h2_ping_floods", "l7_h2_answer_backlogs"]);
    assert!(pings + backlog >= 1, "a PING flood: {}", sb.metrics());

    // The well-behaved client saw no failure while all of that ran.
    let (ok, failed, log) = stop_good_client(&sb, &stop);
    eprintln!(
        "good client: {ok} requests, {failed} failed; hostile cases {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failed, 0, "{log}");
    assert!(ok >= 100, "{log}");
}

/// The host testssl.sh scans.
const SCAN_HOST: &str = "scan.example";

/// Its Ingress: TLS, the redirect to HTTPS (and so HSTS), security headers on every response.
const SCAN: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: security-headers}
data:
  X-Frame-Options: DENY
  X-Content-Type-Options: nosniff
  Content-Security-Policy: \"default-src 'self'\"
  Referrer-Policy: no-referrer
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: scan
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: \"true\"
    nginx.ingress.kubernetes.io/custom-headers: security-headers
spec:
  ingressClassName: sluice
  tls:
  - {hosts: [scan.example], secretName: scan-tls}
  rules:
  - host: scan.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: petclinic, port: {number: 8080}}}}
";

/// testssl.sh's severities that fail the scan.
const FAILING: &[&str] = &["MEDIUM", "HIGH", "CRITICAL"];

#[test]
fn testssl_finds_nothing_medium_or_worse() {
    let test = "testssl_finds_nothing_medium_or_worse";
    let dir = tempfile::tempdir().unwrap();
    // The scanned host: its own Ingress, with what an operator who cares would set — a
    // certificate of 90 days with a revocation (OCSP) URI, the HTTPS redirect and its HSTS, the
    // usual security headers (custom-headers) — so that the findings are the gateway's, not
    // those of a test certificate or of the backend's bare answers.
    let (cert, key) = certificate_with(
        dir.path(),
        SCAN_HOST,
        SCAN_HOST,
        90,
        &["authorityInfoAccess=OCSP;URI:http://ocsp.scan.example/"],
    )
    .expect("certificate");
    let secret = tls_secret("scan-tls", &cert, &key).expect("secret");
    let Some((mut sb, good_ca)) =
        up_with(test, dir.path(), &[("scan.yaml", SCAN), ("scan-tls.yaml", &secret)])
    else {
        return;
    };
    let ca = dir.path().join(format!("{SCAN_HOST}.crt"));
    assert!(
        sb.exec("cl", &["testssl", "--version"]).is_ok_and(|o| o.status.success()),
        "testssl.sh is missing: tests/packages.sh installs it (Debian package testssl.sh)"
    );
    let stop = sb.dir().join("good.stop");
    start_good_client(&mut sb, &good_ca, &stop, 900);
    // The default scan (protocols, cipher categories, forward secrecy, server preferences,
    // server defaults and certificate, HTTP headers, every vulnerability check, client
    // simulations), trusting the test's certificate; no DNS (the namespace has none). Bounded: 5 s per connect and per openssl call, 15 minutes in all.
    let json = sb.dir().join("testssl.json");
    let started = Instant::now();
    let out = sb
        .exec(
            "cl",
            &[
                "timeout",
                "900",
                "testssl",
                "--quiet",
                "--color",
                "0",
                "--warnings",
                "off",
                "--nodns",
                "none",
                "--ip",
                L7,
                "--add-ca",
                &ca.to_string_lossy(),
                "--connect-timeout",
                "5",
                "--openssl-timeout",
                "5",
                "--jsonfile",
                &json.to_string_lossy(),
                &format!("https://{SCAN_HOST}/"),
            ],
        )
        .expect("testssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let elapsed = started.elapsed().as_secs_f64();
    let findings: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON from testssl ({elapsed:.0} s, {}):\n{text}", out.status));
    let field = |f: &serde_json::Value, k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let mut worth_noting = Vec::new();
    let mut failing = Vec::new();
    for f in &findings {
        let (id, severity, finding) = (field(f, "id"), field(f, "severity"), field(f, "finding"));
        if FAILING.contains(&severity.as_str()) {
            failing.push(format!("{severity} {id}: {finding}"));
        } else if matches!(severity.as_str(), "LOW" | "WARN") {
            worth_noting.push(format!("{severity} {id}: {finding}"));
        }
    }
    eprintln!(
        "testssl: {} findings in {elapsed:.0} s; LOW and WARN:\n  {}",
        findings.len(),
        worth_noting.join("\n  ")
    );
    // The scan ran: it saw TLS 1.3 offered and trusted the chain.
    let has = |id: &str, needle: &str| {
        findings.iter().any(|f| field(f, "id") == id && field(f, "finding").contains(needle))
    };
    assert!(has("TLS1_3", "offered"), "{text}");
    assert!(has("TLS1", "not offered") && has("SSLv3", "not offered"), "{text}");
    assert!(failing.is_empty(), "testssl findings MEDIUM or worse:\n{}\n\n{text}", failing.join("\n"));
    let (ok, failed, log) = stop_good_client(&sb, &stop);
    eprintln!("good client during the scan: {ok} requests, {failed} failed");
    assert_eq!(failed, 0, "{log}");
}
