//! `sluice-demo`: Sluice's main job in one command. Builds a namespace sandbox (a client, the
//! gateway, a backend host per Pod of `deploy/examples/` running nginx or a UDP echo server),
//! starts control on the examples and the gateway on AF_XDP, sends real traffic through every
//! L4 scenario and the L7 Ingress scenarios (10: HTTP routing, 11: HTTPS by SNI) of
//! `docs/scenarios.md`, and prints who answered what; then two gateway nodes behind a BIRD
//! router doing ECMP, one of them killed under downloads that all complete (scenario 16,
//! `docs/several-nodes.md`). Everything is removed on exit and on Ctrl-C. Needs root.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_sandbox::tls::{basic_auth_secret, certificate, tls_secret};
use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

fn backends() -> Vec<Backend> {
    let http = |n: &str, a: &str| Backend::http(n, a, &[8080]);
    let udp = |n: &str, a: &str, p: u16| Backend {
        name: n.into(),
        v4: a.into(),
        v6: None,
        tcp: vec![],
        udp: vec![p],
    };
    let mut v = vec![
        http("petclinic-1", "198.18.1.1"),
        http("petclinic-2", "198.18.1.2"),
        http("petclinic-3", "198.18.1.3"),
        http("web-1", "198.18.1.11"),
        http("web-2", "198.18.1.12"),
        udp("dns-1", "198.18.1.21", 5353),
        udp("dns-2", "198.18.1.22", 5353),
        Backend::http("mysql-0", "198.18.1.30", &[3306]),
        http("petclinic-blue-1", "198.18.1.41"),
        http("petclinic-blue-2", "198.18.1.42"),
        http("petclinic-green-1", "198.18.1.51"),
        http("petclinic-green-2", "198.18.1.52"),
        http("cart-1", "198.18.1.61"),
        http("cart-2", "198.18.1.62"),
        http("cart-3", "198.18.1.63"),
        http("sched-1", "198.18.1.71"),
        http("sched-2", "198.18.1.72"),
        http("sched-3", "198.18.1.73"),
        http("legacy-1", "198.18.1.91"),
        http("legacy-2", "198.18.1.92"),
        http("legacy-3", "198.18.1.93"),
        http("web-local-1", "198.18.1.101"),
        http("web-local-2", "198.18.1.102"),
        http("web-remote", "198.18.1.103"),
        http("petclinic-web-1", "198.18.1.111"),
        http("petclinic-errors-1", "198.18.1.112"),
        http("owners-1", "198.18.1.113"),
    ];
    for i in 1..=3 {
        v.push(Backend {
            name: format!("echo-{i}"),
            v4: format!("198.18.1.8{i}"),
            v6: Some(format!("2001:db8:1::8{i}")),
            tcp: vec![8080],
            udp: vec![7007],
        });
    }
    v
}

struct Demo {
    sb: Sandbox,
    stop: Arc<AtomicBool>,
    failures: usize,
}

fn fmt_counts(m: &BTreeMap<String, usize>) -> String {
    m.iter().map(|(k, v)| format!("{k} ×{v}")).collect::<Vec<_>>().join(", ")
}

impl Demo {
    fn check(&self) -> Result<(), String> {
        if self.stop.load(Ordering::Relaxed) { Err("interrupted".into()) } else { Ok(()) }
    }

    fn scenario(&mut self, title: &str, examples: &[&str]) -> Result<(), String> {
        self.scenario_with(title, examples, &[])
    }

    /// [`Demo::scenario`] with extra manifests made at run time (`(file name, YAML)`).
    fn scenario_with(
        &mut self,
        title: &str,
        examples: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<(), String> {
        self.check()?;
        println!("\n── {title}");
        let g = self.sb.generation().unwrap_or(0);
        let dirs: Vec<_> = examples.iter().map(|e| example(e)).collect();
        self.sb.set_manifests(&dirs, extra).map_err(|e| e.to_string())?;
        self.sb.wait_generation(g + 1).map_err(|e| e.to_string())?;
        println!("   manifests: deploy/examples/{{{}}} → table generation {}", examples.join(","), g + 1);
        Ok(())
    }

    /// `n` GETs; prints and returns who answered.
    fn spread(&mut self, what: &str, url: &str, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        let mut failed = 0;
        for _ in 0..n {
            match self.sb.get(url) {
                Ok(b) => *seen.entry(b).or_insert(0) += 1,
                Err(_) => failed += 1,
            }
        }
        self.failures += failed;
        let fail = if failed > 0 { format!("  ✘ {failed} failed") } else { String::new() };
        println!("   {what:<34} {url:<32} → {}{fail}", fmt_counts(&seen));
        seen
    }

    fn udp(&mut self, what: &str, addr: &str, port: u16, n: usize) {
        let mut seen = BTreeMap::new();
        let mut failed = 0;
        for i in 0..n {
            match self.sb.udp(addr, port, &format!("q{i}")) {
                Ok(r) => *seen.entry(r.split(':').next().unwrap_or("").to_owned()).or_insert(0) += 1,
                Err(_) => failed += 1,
            }
        }
        self.failures += failed;
        let target = if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") };
        let fail = if failed > 0 { format!("  ✘ {failed} failed") } else { String::new() };
        println!("   {what:<34} udp {target:<28} → {}{fail}", fmt_counts(&seen));
    }

    /// One HTTP(S) request with curl's `extra` arguments; prints the status and body.
    fn http(&mut self, what: &str, url: &str, extra: &[&str]) {
        let mut args = vec!["curl", "-sS", "-m", "5", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(url);
        let answer = match self.sb.exec("cl", &args) {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
                format!("{} {}", code.trim(), body.lines().next().unwrap_or("").trim())
            }
            Ok(o) => {
                self.failures += 1;
                format!("✘ {}", String::from_utf8_lossy(&o.stderr).trim())
            }
            Err(e) => {
                self.failures += 1;
                format!("✘ {e}")
            }
        };
        println!("   {what:<34} {url:<32} → {answer}");
    }

    /// The subject of the certificate the gateway shows for server name `name`.
    fn certificate_for(&mut self, name: &str) {
        let cmd = format!(
            "echo | openssl s_client -connect {L7}:443 -servername {name} 2>/dev/null | openssl x509 -noout -subject"
        );
        let out = self
            .sb
            .exec("cl", &["sh", "-c", &cmd])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let subject = out.unwrap_or_else(|e| e.to_string());
        if subject.is_empty() {
            self.failures += 1;
        }
        println!("   {:<34} {:<32} → {subject}", format!("certificate for SNI {name}"), "");
    }

    /// One request; prints its status and one field of the response head.
    fn show(&mut self, what: &str, url: &str, extra: &[&str], field: &str) {
        let mut args = vec!["curl", "-sS", "-i", "-m", "5"];
        args.extend_from_slice(extra);
        args.push(url);
        let answer = match self.sb.exec("cl", &args) {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
                let status = text.split_whitespace().nth(1).unwrap_or("?").to_owned();
                let value = text
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(field)))
                    .map(|(_, v)| format!("{field}: {}", v.trim()))
                    .unwrap_or_default();
                format!("{status} {value}")
            }
            Ok(o) => {
                self.failures += 1;
                format!("✘ {}", String::from_utf8_lossy(&o.stderr).trim())
            }
            Err(e) => {
                self.failures += 1;
                format!("✘ {e}")
            }
        };
        println!("   {what:<34} {url:<32} → {answer}");
    }

    /// Scenario 12: Ingresses written for ingress-nginx (its class `nginx`), served as they are.
    /// 15. Upgrade without a blip: three downloads through a FullNAT NodePort, the gateway
    /// killed with SIGKILL in their middle and started again; each completes whole
    /// (docs/restarts.md).
    fn restart(&mut self) -> Result<(), String> {
        self.scenario(
            "15. A restart that drops no connection: SIGKILL under three downloads",
            &["nodeport"],
        )?;
        let cl = self.sb.ns("cl");
        let url = "http://198.18.0.1:31080/big";
        let results = std::thread::scope(|s| -> Result<Vec<Result<usize, String>>, String> {
            let downloads: Vec<_> = (0..3)
                .map(|_| {
                    let cl = cl.clone();
                    s.spawn(move || {
                        let out = std::process::Command::new("ip")
                            .args(["netns", "exec", &cl, "curl", "-sS", "-m", "40", "-o", "/dev/null"])
                            .args(["-w", "%{size_download}", url])
                            .output()
                            .map_err(|e| e.to_string())?;
                        if !out.status.success() {
                            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
                        }
                        String::from_utf8_lossy(&out.stdout)
                            .trim()
                            .parse::<usize>()
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1500));
            let t = Instant::now();
            self.sb.stop("gateway", rustix::process::Signal::KILL).ok_or("the gateway is not running")?;
            self.sb.start_gateway(&["--l7-address", L7]).map_err(|e| e.to_string())?;
            println!(
                "   gateway killed (SIGKILL) 1.5 s into the downloads and started again: serving {} ms later",
                t.elapsed().as_millis()
            );
            Ok(downloads.into_iter().map(|d| d.join().unwrap_or_else(|_| Err("panicked".into()))).collect())
        })?;
        let log = self.sb.log("gateway");
        let carried = log.lines().find(|l| l.contains("carrying over")).map_or("", |l| l.trim());
        println!("   {}", carried.split("INFO ").last().unwrap_or(carried));
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(n) if *n == 2 << 20 => println!("   download {} {url:<32} → {n} bytes, whole", i + 1),
                other => {
                    self.failures += 1;
                    println!("   download {} {url:<32} → ✘ {other:?}", i + 1);
                }
            }
        }
        // Control and the gateway's L7 addresses are as before: the Ingress scenarios go on.
        self.sb.wait_l7_listeners(&[L7]).map_err(|e| e.to_string())
    }

    fn ingress_nginx(&mut self) -> Result<(), String> {
        let (cert, key) =
            certificate(self.sb.dir(), "secure.example", "secure.example").map_err(|e| e.to_string())?;
        let secure = tls_secret("tls-secret", &cert, &key).map_err(|e| e.to_string())?;
        let auth = basic_auth_secret("basic-auth", "staff", "s3cret").map_err(|e| e.to_string())?;
        self.scenario_with(
            "12. ingress-nginx's annotations (seed 004): its IngressClass served with --ingress-nginx-class",
            &["ingress", "ingress-nginx"],
            &[("tls-secret.yaml", &secure), ("basic-auth.yaml", &auth)],
        )?;
        let base = format!("http://{L7}");
        self.show(
            "rewrite-target /$2",
            &format!("{base}/something/new"),
            &["-H", "Host: rewrite.example"],
            "X-Request-Uri",
        );
        self.show(
            "ssl-redirect (a certificate)",
            &format!("{base}/owners/"),
            &["-H", "Host: secure.example"],
            "Location",
        );
        self.show("force-ssl-redirect", &format!("{base}/x"), &["-H", "Host: forced.example"], "Location");
        self.show(
            "basic auth, no credentials",
            &format!("{base}/"),
            &["-H", "Host: staff.example"],
            "WWW-Authenticate",
        );
        self.http(
            "basic auth, staff:s3cret",
            &format!("{base}/"),
            &["-H", "Host: staff.example", "-u", "staff:s3cret"],
        );
        self.http(
            "canary, X-Canary: always",
            &format!("{base}/"),
            &["-H", "Host: canary.example", "-H", "X-Canary: always"],
        );
        let mut seen = BTreeMap::new();
        for _ in 0..40 {
            let out = self
                .sb
                .exec("cl", &["curl", "-s", "-m", "5", "-H", "Host: canary.example", &format!("{base}/")]);
            let body = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
            *seen.entry(body).or_insert(0) += 1;
        }
        println!(
            "   {:<34} {:<32} → {}",
            "canary-weight 30: 40 requests",
            "canary.example/",
            fmt_counts(&seen)
        );
        let url = format!("{base}/");
        // `-o` names one URL's output: one each.
        let mut args = vec!["curl", "-s", "-w", "%{http_code} ", "-H", "Host: limited.example"];
        for _ in 0..12 {
            args.extend(["-o", "/dev/null", url.as_str()]);
        }
        let codes = self
            .sb
            .exec("cl", &args)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        println!("   {:<34} {:<32} → {}", "limit-rps 5 ×1: 12 at once", "limited.example/", codes.trim());
        Ok(())
    }

    fn ping(&mut self, addr: &str) {
        let v6 = if addr.contains(':') { "-6" } else { "-4" };
        let ok =
            self.sb.exec("cl", &["ping", v6, "-c", "2", "-W", "2", addr]).is_ok_and(|o| o.status.success());
        if !ok {
            self.failures += 1;
        }
        println!(
            "   {:<34} {addr:<32} → {}",
            "ping",
            if ok { "echo replies from the gateway" } else { "✘ no reply" }
        );
    }

    fn run(&mut self) -> Result<(), String> {
        let gw_mac = self.sb.gateway_mac();
        self.scenario("1. NodePort (seed 002): NODE:31080 spreads over the petclinic Pods", &["nodeport"])?;
        self.spread("NodePort, TCP", &format!("http://{GW_V4}:31080/"), 12);

        self.scenario(
            "2. LoadBalancer (seeds 000, 003): addresses from the pool, owned on the wire",
            &["loadbalancer"],
        )?;
        self.spread("web: first address of the pool", "http://198.18.100.10/", 8);
        let owner = self.sb.client_neighbor("198.18.100.10");
        println!(
            "   {:<34} {:<32} → {owner} ({})",
            "ARP for the VIP answered by",
            "198.18.100.10",
            if owner == gw_mac { "the gateway" } else { "✘ not the gateway" }
        );
        self.udp("dns: loadBalancerIP, UDP 53→5353", "198.18.100.15", 53, 8);
        self.ping("198.18.100.10");

        self.scenario(
            "3. ClusterIP (seeds 002, 003): the web tier reaches mysql:3306, routed to the gateway",
            &["clusterip"],
        )?;
        self.spread("ClusterIP", "http://198.19.0.33:3306/", 3);

        self.scenario("4. Blue/green (seed 002): switch the selector's version under load", &["blue-green"])?;
        let url = format!("http://{GW_V4}:31080/");
        self.spread("before: version v1.0.0", &url, 6);
        let text = std::fs::read_to_string(example("blue-green").join("petclinic.yaml"))
            .map_err(|e| e.to_string())?;
        let switched = text.replacen("version: v1.0.0", "version: v1.0.1", 1);
        let g = self.sb.generation().unwrap_or(0);
        let sb = &self.sb;
        let (ok, failed, took) = std::thread::scope(|s| {
            let load = s.spawn(|| {
                let t = Instant::now();
                let (mut ok, mut failed) = (0, 0);
                for _ in 0..150 {
                    if sb.get(&url).is_ok() { ok += 1 } else { failed += 1 }
                }
                (ok, failed, t.elapsed())
            });
            std::thread::sleep(Duration::from_millis(500));
            let _ = sb.set_manifests(&[], &[("blue-green-petclinic.yaml", &switched)]);
            let _ = sb.wait_generation(g + 1);
            load.join().unwrap_or((0, 150, Duration::ZERO))
        });
        self.failures += failed;
        println!(
            "   {:<34} {:<32} → {ok} answered, {failed} failed in {:.1} s",
            "switch to v1.0.1 during a loop",
            url,
            took.as_secs_f64()
        );
        self.spread("after: version v1.0.1", &url, 6);

        self.scenario(
            "5. Session affinity (seed 003): ClientIP keeps a client on one backend",
            &["session-affinity"],
        )?;
        self.spread("sessionAffinity: ClientIP", "http://198.19.0.40/", 10);

        self.scenario("6. Schedulers (seeds 003, 004): one Service per scheduler", &["schedulers"])?;
        for (name, last) in
            [("rr", 11), ("wrr", 12), ("lc", 13), ("sh", 14), ("dh", 15), ("sed", 16), ("nq", 17)]
        {
            self.spread(&format!("sluice.io/scheduler: {name}"), &format!("http://198.19.1.{last}/"), 9);
        }

        self.scenario(
            "7–8. Headless and ExternalName (seeds 003, 004): no L4 virtual address",
            &["headless-externalname"],
        )?;
        let status = self.sb.status();
        println!("   {:<34} {:<32} → {}", "services in the table", "", status.lines().next().unwrap_or(""));

        self.scenario(
            "9. Endpoints (seed 003): EndpointSlice conditions and v1 Endpoints",
            &["endpointslices"],
        )?;
        self.spread("ready (terminating, not-ready idle)", "http://198.19.0.90/", 6);

        self.scenario("IPv4 and IPv6: a dual-stack Service and an IPv6 LoadBalancer", &["dual-stack"])?;
        self.spread("IPv6 ClusterIP", "http://[2001:db8:19::10]/", 6);
        self.spread("IPv6 NodePort", "http://[2001:db8::1]:31090/", 6);
        self.spread("IPv6 LoadBalancer (ND answered)", "http://[2001:db8:100::10]/", 6);
        self.udp("IPv6 UDP", "2001:db8:19::10", 7, 6);
        self.ping("2001:db8:100::10");

        self.scenario("externalTrafficPolicy: Local: DNAT to this node's endpoints", &["local-traffic"])?;
        self.spread("only local endpoints", "http://198.18.100.30/", 8);
        let seen = self.sb.get("http://198.18.100.30/ip").unwrap_or_else(|e| e);
        println!("   {:<34} {:<32} → {seen}", "client address seen by the backend", "");

        self.restart()?;

        let (cert, key) =
            certificate(self.sb.dir(), "foo.bar.com", "foo.bar.com").map_err(|e| e.to_string())?;
        let secret = tls_secret("tls-secret", &cert, &key).map_err(|e| e.to_string())?;
        self.scenario_with(
            "10. Ingress HTTP routing (seeds 000, 002): host foo.bar.com, paths by Exact and Prefix",
            &["ingress"],
            &[("tls-secret.yaml", &secret)],
        )?;
        let host = ["-H", "Host: foo.bar.com"];
        let base = format!("http://{L7}");
        for (what, path) in [
            ("Prefix / → petclinic", "/"),
            ("Exact /oups → petclinic-errors", "/oups"),
            ("/oups/ is not Exact /oups", "/oups/"),
            ("Prefix /owners/find → owners", "/owners/find/42"),
            ("/owners/findx is not under it", "/owners/findx"),
        ] {
            self.http(what, &format!("{base}{path}"), &host);
        }
        self.http("another host: Sluice's 404", &format!("{base}/"), &["-H", "Host: other.example"]);

        println!("\n── 11. Ingress HTTPS (seeds 000, 004): tls-secret for foo.bar.com, chosen by SNI");
        let ca = self.sb.dir().join("foo.bar.com.crt").to_string_lossy().into_owned();
        let resolve = format!("foo.bar.com:443:{L7}");
        self.http(
            "TLS 1.3, certificate verified",
            "https://foo.bar.com/owners/find/1",
            &["--cacert", &ca, "--resolve", &resolve],
        );
        self.http(
            "TLS 1.2",
            "https://foo.bar.com/oups",
            &["--cacert", &ca, "--resolve", &resolve, "--tls-max", "1.2"],
        );
        self.certificate_for("foo.bar.com");
        self.certificate_for("unknown.example");

        self.ingress_nginx()?;

        println!("\n── gateway counters (from control's metrics, summed over workers)");
        for name in [
            "rx_frames",
            "tx_frames",
            "forwarded",
            "new_flows",
            "affinity_hits",
            "neighbor_replies",
            "parked",
            "icmp_echo_replies",
            "l7_requests",
            "l7_responses_2xx",
            "l7_responses_4xx",
            "l7_tls_handshakes",
            "l7_auth_denied",
            "l7_limited",
        ] {
            println!("   {name:<20} {}", self.sb.gateway_counter(name));
        }
        let drops: Vec<String> = self
            .sb
            .metrics()
            .lines()
            .filter(|l| l.starts_with("sluice_gateway_drops_total") && !l.ends_with(" 0"))
            .map(|l| l.split("reason=\"").nth(1).unwrap_or(l).replace("\"} ", " "))
            .collect();
        println!(
            "   drops                {}",
            if drops.is_empty() { "none".into() } else { drops.join(", ") }
        );
        Ok(())
    }
}

/// The address Ingresses are served on (on-link for the client, like a LoadBalancer VIP).
const L7: &str = "198.18.100.80";

/// Scenario 16: two gateway nodes behind a BIRD router (`sluice_sandbox::nodes`), a FullNAT and
/// a DNAT VIP over four backends; connections spread over both nodes; node 1 killed (links
/// down, every process SIGKILLed) under four downloads, which complete whole on node 2. Returns
/// the failures.
fn two_nodes(stop: &AtomicBool) -> Result<usize, String> {
    use sluice_sandbox::nodes::{self, Cluster, DNAT_VIP, FULLNAT_VIP, MANIFEST};
    println!(
        "\n── 16. Two gateway nodes behind a BIRD router (ECMP, BFD): a node killed under four downloads"
    );
    let t = Instant::now();
    let mut c = Cluster::new(&nodes::backends(), MANIFEST, 2, 4).map_err(|e| format!("the cluster: {e}"))?;
    for _ in 0..2 {
        c.add_node().map_err(|e| format!("a node: {e}"))?;
    }
    let vips = [FULLNAT_VIP, DNAT_VIP];
    c.wait_next_hops(&vips, &[1, 2], Duration::from_secs(20))?;
    println!(
        "   router, 2 nodes (BIRD, control, gateway, keepalived each), 4 backends: up in {:.1} s{}",
        t.elapsed().as_secs_f64(),
        if c.sync_flags().gateway { ", flow sync on" } else { ", no flow sync in this gateway" }
    );
    for v in vips {
        println!("   router's route to {v}: via {}", c.next_hops(v).join(" and "));
    }
    let mut failures = 0;
    let srcs = c.client_addrs();
    let before: Vec<u64> = (1..=2).map(|k| c.counter(k, "new_flows")).collect();
    for i in 0..20 {
        let url = format!("http://{}/", vips[i % 2]);
        if let Err(e) = c.get(&srcs[i % srcs.len()], &url, 3000) {
            failures += 1;
            println!("   ✘ {e}");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let spread: Vec<String> = (1..=2)
        .map(|k| format!("node {k} ×{}", c.counter(k, "new_flows").saturating_sub(before[k - 1])))
        .collect();
    println!("   20 connections from 4 client addresses, hashed by the router: {}", spread.join(", "));
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    let ns = c.ns("cl");
    /// A download's URL and its bytes, or why not.
    type Download = (String, Result<usize, String>);
    let results = std::thread::scope(|s| -> Result<Vec<Download>, String> {
        let downloads: Vec<_> = (0..4)
            .map(|i| {
                let (ns, src) = (&ns, &srcs[i]);
                let url = format!("http://{}/big", vips[i % 2]);
                s.spawn(move || (url.clone(), nodes::download_in(ns, src, &url)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let t0 = c.kill(1).map_err(|e| format!("kill: {e}"))?;
        c.wait_next_hops(&vips, &[2], Duration::from_secs(5))?;
        let routed = t0.elapsed();
        c.wait_address(2, &nodes::node_snat(1), Duration::from_secs(5))?;
        println!(
            "   node 1 killed 1.5 s into the downloads (links down, SIGKILL): the router routed around it \
             after {} ms (BFD); node 2 held its SNAT address after {} ms (VRRP)",
            routed.as_millis(),
            t0.elapsed().as_millis()
        );
        Ok(downloads
            .into_iter()
            .map(|d| d.join().unwrap_or_else(|_| ("?".into(), Err("panicked".into()))))
            .collect())
    })?;
    for (i, (url, r)) in results.iter().enumerate() {
        match r {
            Ok(n) if *n == 2 << 20 => println!("   download {} {url:<28} → {n} bytes, whole", i + 1),
            other => {
                failures += 1;
                println!("   download {} {url:<28} → ✘ {other:?}", i + 1);
            }
        }
    }
    Ok(failures)
}

fn main() -> std::process::ExitCode {
    sluice_log::init("info");
    if !require_root("sluice-demo") {
        return std::process::ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    println!("Sluice demo: building the sandbox (client, gateway, {} backend hosts)…", backends().len());
    let t = Instant::now();
    let mut sb = match Sandbox::new(&backends()) {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("sluice-demo: building the sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let start = (|| -> Result<(), String> {
        sb.set_manifests(&[example("nodeport")], &[]).map_err(|e| e.to_string())?;
        sb.start_control_with(&["--ingress-nginx-class"]).map_err(|e| e.to_string())?;
        sb.start_gateway(&["--l7-address", L7]).map_err(|e| e.to_string())?;
        Ok(())
    })();
    if let Err(e) = start {
        eprintln!("sluice-demo: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let first = sb.log("gateway");
    println!(
        "ready in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        first.lines().next().unwrap_or("").trim_start_matches("sluice-gateway: ")
    );
    let mut demo = Demo { sb, stop: Arc::clone(&stop), failures: 0 };
    let r = demo.run();
    let mut failures = demo.failures;
    drop(demo); // stops every process and deletes every namespace
    // Scenario 16 on a sandbox of its own (the first one gone: its cores are free).
    let r = r.and_then(|()| {
        failures += two_nodes(&stop)?;
        Ok(())
    });
    match r {
        Ok(()) if failures == 0 => {
            println!("\nAll scenarios answered; the sandbox is gone.");
            std::process::ExitCode::SUCCESS
        }
        Ok(()) => {
            println!("\n✘ {failures} request(s) failed; the sandbox is gone.");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            println!("\nstopped: {e}; the sandbox is gone.");
            std::process::ExitCode::FAILURE
        }
    }
}
