//! Namespace tests of the L7 stage under load and change (issue 13, item 9): real clients
//! (`curl`, `sluice-l7-load`), the gateway serving Ingresses on an address of its own, real
//! backends (nginx, `sluice-l7-load`'s WebSocket echo and upload sink).
//!
//! - Hitless: Ingress rules, a TLS Secret and endpoints change every 300 ms while keep-alive
//!   clients loop over HTTP and HTTPS; not one request fails.
//! - 1 GiB streamed each way at once, checksums equal, the gateway's memory flat.
//! - A WebSocket echo through the gateway.
//! - 10,000 idle keep-alive connections (5,000 HTTP, 5,000 TLS) held and served again; the
//!   gateway's memory per connection is printed.
//!
//! The manifests are written by the tests (Pods with the backends' addresses, as in
//! `deploy/examples/ingress`); TLS Secrets are made at run time. They check behaviour, never
//! speed: the rates printed are for people. Needs root; see the crate docs.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_sandbox::{Backend, Sandbox, bin, nginx_conf, require_root};

/// The address Ingresses are served on (on-link for the client, like a LoadBalancer VIP).
const L7: &str = "198.18.100.80";

/// The host every Ingress of these tests routes.
const HOST: &str = "foo.bar.com";

// ---------------------------------------------------------------------------------------------
// Manifests

/// The IngressClass of Sluice's controller.
const INGRESS_CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: sluice\n\
spec:\n  controller: sluice.io/ingress\n";

/// A Service selecting `app: NAME`, port 8080 to 8080.
fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n\
         \x20 ports:\n    - name: http\n      port: 8080\n      targetPort: 8080\n"
    )
}

/// A running, ready Pod of `app` at `ip`.
fn pod(name: &str, app: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {app}\nspec:\n\
         \x20 containers:\n    - name: app\n      image: registry.example/{app}:1\n      ports:\n\
         \x20       - containerPort: 8080\nstatus:\n  phase: Running\n  podIP: {ip}\n  conditions:\n\
         \x20   - type: Ready\n      status: \"True\"\n"
    )
}

/// An Ingress of Sluice's class for [`HOST`]: (path, pathType, Service) rules, and a TLS Secret.
fn ingress(name: &str, paths: &[(&str, &str, &str)], tls_secret: Option<&str>) -> String {
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n  ingressClassName: sluice\n"
    );
    if let Some(s) = tls_secret {
        let _ = write!(y, "  tls:\n    - hosts: [{HOST}]\n      secretName: {s}\n");
    }
    let _ = write!(y, "  rules:\n    - host: {HOST}\n      http:\n        paths:\n");
    for (path, kind, svc) in paths {
        let _ = write!(
            y,
            "          - path: {path}\n            pathType: {kind}\n            backend:\n              service:\n\
             \x20               name: {svc}\n                port:\n                  number: 8080\n"
        );
    }
    y
}

/// A certificate for [`HOST`] (and `*.HOST`) in `dir`, files named by `tag`: (cert PEM, key PEM).
fn certificate(dir: &Path, tag: &str) -> (String, String) {
    sluice_sandbox::tls::certificate(dir, HOST, tag).expect("certificate")
}

/// A `kubernetes.io/tls` Secret.
fn tls_secret(name: &str, cert: &str, key: &str) -> String {
    sluice_sandbox::tls::tls_secret(name, cert, key).expect("secret")
}

/// Writes `files` (name, YAML) as the whole manifest directory.
fn set_manifests(sb: &Sandbox, files: &[(String, String)]) {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, y)| (n.as_str(), y.as_str())).collect();
    sb.set_manifests(&[], &files).expect("manifests");
}

// ---------------------------------------------------------------------------------------------
// Sandbox

/// A sandbox with these backends (the test starts servers other than nginx), control on
/// `manifests`, the gateway serving Ingresses on [`L7`] with `gateway_args`; `None` when skipped.
fn up(
    test: &str,
    backends: &[Backend],
    manifests: &[(String, String)],
    gateway_args: &[&str],
) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(backends).expect("sandbox");
    set_manifests(&sb, manifests);
    sb.start_control().expect("control");
    let mut args = vec!["--l7-address", L7];
    args.extend_from_slice(gateway_args);
    sb.start_gateway(&args).expect("gateway");
    // The workers open their listeners when they take the first generation.
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    Some(sb)
}

/// Waits (up to 10 s) until `curl URL` from `role` succeeds: a server the test started listens.
fn wait_listening(sb: &Sandbox, role: &str, url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb.exec(role, &["curl", "-sf", "-m", "1", url]).is_ok_and(|o| o.status.success()) {
        assert!(Instant::now() < deadline, "{what} does not answer on {url}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `curl -H Host: HOST http://L7 PATH` from the client: (status, body) or curl's complaint.
fn get(sb: &Sandbox, path: &str) -> Result<(u16, String), String> {
    let url = format!("http://{L7}{path}");
    let out = sb
        .exec(
            "cl",
            &["curl", "-sS", "-m", "10", "-H", &format!("Host: {HOST}"), "-w", "\n%{http_code}", &url],
        )
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.trim().to_owned()))
}

/// A memory figure of the gateway (KiB) from /proc: `VmRSS` (resident) or `VmData` (heap and
/// other private mappings, touched or not). `ip netns exec` execs the command, so the process
/// [`Sandbox::spawn`] started is the gateway itself.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("gateway's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The gateway's resident memory (KiB).
fn rss_kib(pid: u32) -> u64 {
    vm_kib(pid, "VmRSS")
}

/// The gateway's process id (checked to be the gateway's, not `ip`'s).
fn gateway_pid(sb: &Sandbox) -> u32 {
    let pid = sb.pid("gateway").expect("gateway pid");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(comm.starts_with("sluice-gateway"), "process {pid} is {comm:?}, not the gateway");
    pid
}

/// The SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint` prints it.
fn fingerprint(pem_file: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem_file)
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. Hitless changes

/// What one client loop saw.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    ok: u64,
    connects: u64,
    failures: Vec<String>,
    bodies: std::collections::BTreeSet<String>,
}

/// One curl invocation of `urls` on one keep-alive connection (curl reuses it for every URL of
/// an invocation); each response is checked against the backends its path may reach.
fn curl_batch(sb: &Sandbox, extra: &[&str], urls: &[(String, &[&str])], tally: &mut Tally) {
    let mut args = vec!["curl", "-sS", "-g", "-m", "5", "-w", "\nCODE %{http_code} %{num_connects}\n"];
    args.extend_from_slice(extra);
    args.extend(urls.iter().map(|(u, _)| u.as_str()));
    let out = match sb.exec("cl", &args) {
        Ok(o) => o,
        Err(e) => {
            tally.failures.push(format!("curl: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut body = String::new();
    let mut answered = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("CODE ") else {
            if !line.trim().is_empty() {
                body = line.trim().to_owned();
            }
            continue;
        };
        let mut w = rest.split_whitespace();
        let (code, connects) = (w.next().unwrap_or(""), w.next().and_then(|c| c.parse().ok()).unwrap_or(0));
        let (url, expected) = &urls[answered.min(urls.len() - 1)];
        answered += 1;
        tally.requests += 1;
        tally.connects += connects;
        if code == "200" && expected.contains(&body.as_str()) {
            tally.ok += 1;
            tally.bodies.insert(std::mem::take(&mut body));
        } else {
            tally.failures.push(format!("{url}: status {code}, body {body:?}, expected one of {expected:?}"));
        }
        body.clear();
    }
    if answered != urls.len() {
        tally.requests += (urls.len() - answered) as u64;
        tally.failures.push(format!(
            "curl answered {answered} of {} URLs: {}",
            urls.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
}

/// Every 300 ms for 10 s a new generation: the petclinic Service's endpoints alternate (one or
/// both Pods, at least one ready), an extra Ingress path comes and goes, the TLS Secret is
/// replaced with another certificate every other step. Meanwhile one client loops over HTTP and
/// one over HTTPS, 20 requests per keep-alive connection; every response must be a 200 from a
/// backend its path may reach. Then the last step's routes, endpoints and certificate must be
/// what the gateway serves.
#[test]
fn changes_every_300_ms_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let backends = [
        Backend::http("petclinic-1", "198.18.1.1", &[8080]),
        Backend::http("petclinic-2", "198.18.1.2", &[8080]),
        Backend::http("owners-1", "198.18.1.3", &[8080]),
    ];
    let certs = [certificate(dir.path(), "cert-a"), certificate(dir.path(), "cert-b")];
    let secrets = certs.each_ref().map(|(c, k)| tls_secret("tls-secret", c, k));
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{}{}", certs[0].0, certs[1].0)).unwrap();
    // Step i: Pods {1,2}, {1}, {1,2}, {2}; the /extra Ingress on odd steps; Secret a, a, b, b.
    let step = |i: usize| -> Vec<(String, String)> {
        let mut files = vec![
            ("class.yaml".to_owned(), INGRESS_CLASS.to_owned()),
            ("services.yaml".to_owned(), format!("{}---\n{}", service("petclinic"), service("owners"))),
            ("owners-1.yaml".to_owned(), pod("owners-1", "owners", "198.18.1.3")),
            (
                "main.yaml".to_owned(),
                ingress(
                    "main",
                    &[("/", "Prefix", "petclinic"), ("/owners/find", "Prefix", "owners")],
                    Some("tls-secret"),
                ),
            ),
            ("secret.yaml".to_owned(), secrets[(i / 2) % 2].clone()),
        ];
        if i % 4 != 3 {
            files.push(("petclinic-1.yaml".into(), pod("petclinic-1", "petclinic", "198.18.1.1")));
        }
        if i % 4 != 1 {
            files.push(("petclinic-2.yaml".into(), pod("petclinic-2", "petclinic", "198.18.1.2")));
        }
        if i % 2 == 1 {
            files.push(("extra.yaml".into(), ingress("extra", &[("/extra", "Exact", "owners")], None)));
        }
        files
    };
    let Some(sb) = up("changes_every_300_ms_fail_no_request", &backends, &step(0), &["--no-access-log"])
    else {
        return;
    };
    let start_generation = sb.generation().expect("a generation");

    let petclinic: &[&str] = &["petclinic-1", "petclinic-2"];
    let owners: &[&str] = &["owners-1"];
    let batch = |base: &str| -> Vec<(String, &[&str])> {
        (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    (format!("{base}/"), petclinic)
                } else {
                    (format!("{base}/owners/find/{i}"), owners)
                }
            })
            .collect()
    };
    let http_urls = batch(&format!("http://{L7}"));
    let https_urls = batch(&format!("https://{HOST}"));
    let host = format!("Host: {HOST}");
    let resolve = format!("{HOST}:443:{L7}");
    let bundle_s = bundle.to_string_lossy().into_owned();
    let http_args = ["-H", host.as_str()];
    let https_args = ["--cacert", bundle_s.as_str(), "--resolve", resolve.as_str()];

    let run_for = Duration::from_secs(10);
    let started = Instant::now();
    let mut steps = 0;
    let client = |extra: &[&str], urls: &Vec<(String, &[&str])>| {
        let mut tally = Tally::default();
        // Bounded: by time, and by count should each batch be instantaneous.
        for _ in 0..10_000 {
            if started.elapsed() > run_for {
                break;
            }
            curl_batch(&sb, extra, urls, &mut tally);
        }
        tally
    };
    let (http, https) = std::thread::scope(|scope| {
        let h = scope.spawn(|| client(&http_args, &http_urls));
        let s = scope.spawn(|| client(&https_args, &https_urls));
        // At most 100 steps, one per 300 ms, while the clients run.
        while started.elapsed() < run_for && steps < 100 {
            std::thread::sleep(Duration::from_millis(300));
            steps += 1;
            set_manifests(&sb, &step(steps));
        }
        (h.join().unwrap(), s.join().unwrap())
    });
    // A last step with one Pod (petclinic-2), /extra present and certificate b.
    let last = steps + 1 + (3 + 4 - (steps + 1) % 4) % 4;
    assert_eq!(last % 4, 3);
    set_manifests(&sb, &step(last));
    let elapsed = started.elapsed();
    eprintln!(
        "hitless: {steps} changes in {elapsed:.1?}; HTTP {http:?}\nHTTPS {https:?}",
        http = (http.requests, http.ok, http.connects),
        https = (https.requests, https.ok, https.connects)
    );

    let log = sb.log("gateway");
    for (name, t) in [("HTTP", &http), ("HTTPS", &https)] {
        assert!(
            t.failures.is_empty(),
            "{name}: {} of {} requests failed; the first:\n{}\ngateway log:\n{log}",
            t.failures.len(),
            t.requests,
            t.failures[..t.failures.len().min(20)].join("\n")
        );
        assert!(t.requests >= 100 && t.ok == t.requests, "{name}: {t:?}");
        // Keep-alive: far fewer connections than requests.
        assert!(
            t.connects * 4 <= t.requests,
            "{name}: {} connections for {} requests",
            t.connects,
            t.requests
        );
        assert!(
            t.bodies.contains("petclinic-1") && t.bodies.contains("petclinic-2"),
            "{name}: {:?}",
            t.bodies
        );
    }

    // Control published a generation per change (give or take those it merged), and the
    // gateway took them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let adopted = |g: u64| sb.log("gateway").contains(&format!("table generation {g}:"));
    let end_generation = loop {
        let g = sb.generation().expect("a generation");
        if g > start_generation + steps as u64 / 2 && adopted(g) {
            break g;
        }
        assert!(
            Instant::now() < deadline,
            "generation {g} after {steps} changes, from {start_generation}; gateway log:\n{}",
            sb.log("gateway")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let taken = sb
        .log("gateway")
        .lines()
        .filter(|l| l.contains("table generation ") && l.contains(" service(s)"))
        .count();
    eprintln!("generations {start_generation}..={end_generation}; the gateway logged {taken} adoptions");
    assert!(
        end_generation - start_generation >= steps as u64 / 2,
        "{steps} changes, generations {start_generation}..{end_generation}"
    );
    assert!(
        taken as u64 >= (end_generation - start_generation) / 2,
        "the gateway took {taken} generations:\n{}",
        sb.log("gateway")
    );

    // The last step is served: its endpoints, its route, its certificate. The generation is
    // adopted by the main thread first, the worker a moment later: wait (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answers: Vec<_> = (0..4).map(|_| get(&sb, "/")).chain([get(&sb, "/extra")]).collect();
        let want = [&["petclinic-2"; 4][..], &["owners-1"]].concat();
        if answers.iter().map(|a| a.as_ref().map(|(_, b)| b.as_str()).unwrap_or("")).eq(want.iter().copied())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the last change: {answers:?}; gateway log:\n{}",
            sb.log("gateway")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let served = sb
        .exec("cl", &["sh", "-c", &format!(
            "echo | openssl s_client -connect {L7}:443 -servername {HOST} 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        )])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&served.stdout).trim(), fingerprint(&dir.path().join("cert-b.crt")));
}

// ---------------------------------------------------------------------------------------------
// 2. 1 GiB each way

/// The size of each transfer.
const BIG_BYTES: u64 = 1 << 30;

/// A file of `bytes` (a multiple of 16 MiB) of a pseudo-random pattern (xorshift64), so that a
/// checksum tells misplaced bytes from right ones.
fn pattern_file(path: &Path, bytes: u64) {
    let mut block = vec![0u8; 16 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in block.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..bytes / block.len() as u64 {
        // A different block each time: the block number in its first bytes.
        block[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

/// `sha256sum FILE`'s digest.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned()
}

/// 1 GiB downloaded from nginx and 1 GiB uploaded to a sink, at the same time, through the
/// gateway with `--proxy-body-size 0`: the bytes arrive whole (SHA-256 on both ends), and the
/// gateway's resident memory stays within 64 MiB of what it was before (the proxy's buffers are
/// fixed per connection; a proxy that buffered bodies would grow by a gigabyte).
#[test]
fn a_gigabyte_each_way_leaves_the_gateway_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let backends = [Backend::http("files-1", "198.18.1.1", &[]), Backend::http("sink-1", "198.18.1.2", &[])];
    let manifests = vec![
        ("class.yaml".to_owned(), INGRESS_CLASS.to_owned()),
        ("services.yaml".to_owned(), format!("{}---\n{}", service("files"), service("sink"))),
        (
            "pods.yaml".to_owned(),
            format!("{}---\n{}", pod("files-1", "files", "198.18.1.1"), pod("sink-1", "sink", "198.18.1.2")),
        ),
        (
            "main.yaml".to_owned(),
            ingress("main", &[("/", "Prefix", "files"), ("/upload", "Prefix", "sink")], None),
        ),
    ];
    let Some(mut sb) = up(
        "a_gigabyte_each_way_leaves_the_gateway_memory_flat",
        &backends,
        &manifests,
        &["--proxy-body-size", "0"],
    ) else {
        return;
    };
    let file = dir.path().join("huge");
    let t = Instant::now();
    pattern_file(&file, BIG_BYTES);
    let digest = sha256(&file);
    eprintln!("{} MiB file and its digest made in {:.1?}", BIG_BYTES >> 20, t.elapsed());
    // nginx serves the file; the sink takes uploads.
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let server = format!(
        "server {{ listen 198.18.1.1:8080;\n\
         \x20 location = /huge {{ alias {}; default_type application/octet-stream; }}\n\
         \x20 location / {{ default_type text/plain; return 200 \"files-1\\n\"; }}\n}}",
        file.display()
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), &server)).unwrap();
    sb.spawn("b0", "nginx-files", &["nginx", "-c", &conf.to_string_lossy()]).unwrap();
    let tool = bin("sluice-l7-load").to_string_lossy().into_owned();
    sb.spawn("b1", "sink", &[&tool, "sink", "198.18.1.2:8080"]).unwrap();
    wait_listening(&sb, "b0", "http://198.18.1.1:8080/", "nginx");
    wait_listening(&sb, "b1", "http://198.18.1.2:8080/", "the sink");
    // Warm: one small request each way, so that the baseline includes the first connections.
    assert_eq!(get(&sb, "/").map(|(s, _)| s), Ok(200));
    assert_eq!(get(&sb, "/upload"), Ok((200, "sink".to_owned())));
    let pid = gateway_pid(&sb);
    let base = rss_kib(pid);

    let host = format!("Host: {HOST}");
    let t = Instant::now();
    let (down, up, peak, samples) = std::thread::scope(|scope| {
        let down = scope.spawn(|| {
            // The body goes to sha256sum; curl's status line to standard error.
            let script = format!(
                "curl -sS -g -m 150 -H '{host}' -w '%{{stderr}}%{{http_code}} %{{size_download}}\\n' http://{L7}/huge | sha256sum"
            );
            sb.exec("cl", &["sh", "-c", &script]).unwrap()
        });
        let up = scope.spawn(|| {
            let f = file.to_string_lossy();
            sb.exec(
                "cl",
                &[
                    "curl",
                    "-sS",
                    "-g",
                    "-m",
                    "150",
                    "-H",
                    &host,
                    "-T",
                    &f,
                    "-w",
                    "\n%{http_code}",
                    &format!("http://{L7}/upload"),
                ],
            )
            .unwrap()
        });
        let (mut peak, mut samples) = (base, 0);
        // Sampled every 100 ms until both are done (each is bounded by curl's -m 150).
        while !(down.is_finished() && up.is_finished()) {
            peak = peak.max(rss_kib(pid));
            samples += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (down.join().unwrap(), up.join().unwrap(), peak, samples)
    });
    let elapsed = t.elapsed();
    let log = sb.log("gateway");
    let (down_out, down_err) = (String::from_utf8_lossy(&down.stdout), String::from_utf8_lossy(&down.stderr));
    let (up_out, up_err) = (String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr));
    eprintln!(
        "1 GiB each way in {elapsed:.1?} ({:.0} MB/s each way); gateway RSS {base} KiB before, peak {peak} KiB ({samples} samples)",
        BIG_BYTES as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert_eq!(down_err.trim(), format!("200 {BIG_BYTES}"), "download: {down_err}\ngateway log:\n{log}");
    assert_eq!(down_out.split_whitespace().next(), Some(digest.as_str()), "download's digest");
    let up_lines: Vec<&str> = up_out.lines().filter(|l| !l.is_empty()).collect();
    let want = format!("{BIG_BYTES} {digest}");
    assert_eq!(up_lines, [want.as_str(), "200"], "upload: {up_err}\ngateway log:\n{log}");
    assert!(samples >= 3, "{samples} RSS samples");
    assert!(peak <= base + 64 * 1024, "gateway RSS grew from {base} KiB to {peak} KiB during the transfers");
}

// ---------------------------------------------------------------------------------------------
// 3. WebSocket

/// A WebSocket upgrade through the gateway to an echo server: the 101 with the right accept key
/// reaches the client, and frames of every length encoding (up to 200,000 bytes) come back
/// unchanged, then the close handshake.
#[test]
fn websocket_frames_are_echoed_through_the_gateway() {
    let backends = [Backend::http("ws-1", "198.18.1.1", &[])];
    let manifests = vec![
        ("class.yaml".to_owned(), INGRESS_CLASS.to_owned()),
        ("ws.yaml".to_owned(), format!("{}---\n{}", service("ws"), pod("ws-1", "ws", "198.18.1.1"))),
        ("main.yaml".to_owned(), ingress("main", &[("/ws", "Prefix", "ws")], None)),
    ];
    let Some(mut sb) = up("websocket_frames_are_echoed_through_the_gateway", &backends, &manifests, &[])
    else {
        return;
    };
    let tool = bin("sluice-l7-load").to_string_lossy().into_owned();
    sb.spawn("b0", "ws-echo", &[&tool, "ws-echo", "198.18.1.1:8080"]).unwrap();
    wait_listening(&sb, "b0", "http://198.18.1.1:8080/", "the WebSocket echo");
    let out = sb.exec("cl", &[&tool, "ws-client", &format!("{L7}:80"), HOST, "24"]).unwrap();
    assert!(
        out.status.success(),
        "ws-client: {}{}\ngateway log:\n{}\necho log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        sb.log("gateway"),
        sb.log("ws-echo")
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok 24 frames"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. 10,000 idle connections

/// A `sluice-l7-load hold` process in the client namespace; killed when dropped.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(sb: &Sandbox, args: &[&str]) -> Holder {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &sb.ns("cl")])
            .arg(bin("sluice-l7-load"))
            .arg("hold")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice-l7-load hold");
        let (stdin, stdout) = (child.stdin.take(), BufReader::new(child.stdout.take().unwrap()));
        Holder { child, stdin, stdout }
    }

    /// The next line it prints; empty when it exited (its own timeouts bound the wait).
    fn line(&mut self) -> String {
        let mut l = String::new();
        let _ = self.stdout.read_line(&mut l);
        l.trim().to_owned()
    }

    /// Tells it to send its sample of requests.
    fn go(&mut self) {
        writeln!(self.stdin.as_mut().expect("stdin")).expect("hold's stdin");
    }

    /// Waits for it to exit: its status and standard error.
    fn finish(&mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (self.child.wait().expect("hold"), err)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 5,000 HTTP and 5,000 TLS keep-alive connections, each having had one request, held idle
/// at once; then a request on every tenth of them is served. Prints the gateway's resident
/// memory per connection (plain and TLS), held to a loose bound only.
#[test]
fn ten_thousand_idle_connections_are_held_and_served() {
    const EACH: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "cert");
    let backends = [Backend::http("petclinic-1", "198.18.1.1", &[8080])];
    let manifests = vec![
        ("class.yaml".to_owned(), INGRESS_CLASS.to_owned()),
        (
            "app.yaml".to_owned(),
            format!("{}---\n{}", service("petclinic"), pod("petclinic-1", "petclinic", "198.18.1.1")),
        ),
        ("main.yaml".to_owned(), ingress("main", &[("/", "Prefix", "petclinic")], Some("tls-secret"))),
        ("secret.yaml".to_owned(), tls_secret("tls-secret", &cert, &key)),
    ];
    let Some(sb) =
        up("ten_thousand_idle_connections_are_held_and_served", &backends, &manifests, &["--no-access-log"])
    else {
        return;
    };
    assert_eq!(get(&sb, "/"), Ok((200, "petclinic-1".to_owned())));
    let pid = gateway_pid(&sb);
    let settle = || std::thread::sleep(Duration::from_millis(500));
    settle();
    let (r0, d0) = (rss_kib(pid), vm_kib(pid, "VmData"));
    let ca = dir.path().join("cert.crt").to_string_lossy().into_owned();
    let each = EACH.to_string();
    let sample = (EACH / 10).to_string();
    let t = Instant::now();
    let mut plain = Holder::start(&sb, &[&format!("{L7}:80"), HOST, &each, &sample]);
    assert_eq!(plain.line(), format!("held {EACH}"), "HTTP: {}", plain.finish().1);
    let t_plain = t.elapsed();
    settle();
    let (r1, d1) = (rss_kib(pid), vm_kib(pid, "VmData"));
    let t = Instant::now();
    let mut tls = Holder::start(&sb, &[&format!("{L7}:443"), HOST, &each, &sample, &ca, HOST]);
    assert_eq!(tls.line(), format!("held {EACH}"), "TLS: {}", tls.finish().1);
    let t_tls = t.elapsed();
    settle();
    let (r2, d2) = (rss_kib(pid), vm_kib(pid, "VmData"));
    // All 10,000 held: each holder now sends a request on a tenth of its connections.
    plain.go();
    tls.go();
    let t = Instant::now();
    let (served_plain, served_tls) = (plain.line(), tls.line());
    let t_served = t.elapsed();
    let ((s1, e1), (s2, e2)) = (plain.finish(), tls.finish());
    eprintln!(
        "a request on {} of each served in {t_served:.1?}; the holders exited {:.1?} later",
        EACH / 10,
        t.elapsed() - t_served
    );
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / EACH as f64;
    let (kib_plain, kib_tls) = (per(r0, r1), per(r1, r2));
    eprintln!(
        "idle connections: gateway RSS {r0} KiB, {r1} KiB with {EACH} HTTP ({t_plain:.1?} to open), {r2} KiB with {EACH} TLS more \
         ({t_tls:.1?}): {kib_plain:.1} KiB per HTTP connection, {kib_tls:.1} KiB per TLS connection resident; \
         {:.1} and {:.1} KiB allocated (VmData; untouched buffer pages are not resident)",
        per(d0, d1),
        per(d1, d2)
    );
    let want = format!("served {} of {}", EACH / 10, EACH / 10);
    assert!(
        s1.success() && served_plain == want,
        "HTTP: {served_plain:?} {e1}\ngateway log:\n{}",
        sb.log("gateway")
    );
    assert!(
        s2.success() && served_tls == want,
        "TLS: {served_tls:?} {e2}\ngateway log:\n{}",
        sb.log("gateway")
    );
    // A sanity bound, not a target: far over any plausible figure.
    assert!(kib_plain < 256.0 && kib_tls < 256.0, "{kib_plain:.1} / {kib_tls:.1} KiB per connection");
}
