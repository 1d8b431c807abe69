//! Namespace tests of the L4 data plane: real clients, a real gateway on AF_XDP, real servers.
//! Each starts control on manifests from `deploy/examples/` (needs root; see the crate docs).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sluice_sandbox::{Backend, GW_V4, Sandbox, Topology, example, require_root};

/// A sandbox with `backends`, control on `examples`, and the gateway; `None` when skipped.
fn up(test: &str, backends: &[Backend], examples: &[PathBuf]) -> Option<Sandbox> {
    up_with(test, backends, examples, Topology::default())
}

/// [`up`], plugged in as `topology` says.
fn up_with(test: &str, backends: &[Backend], examples: &[PathBuf], topology: Topology) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::with_topology(backends, topology).expect("sandbox");
    sb.set_manifests(examples, &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&[]).expect("gateway");
    Some(sb)
}

/// Who answered `n` GETs of `url`; panics on any failure.
fn spread(sb: &Sandbox, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let body =
            sb.get(url).unwrap_or_else(|e| panic!("request {i}: {e}\ngateway log:\n{}", sb.log("gateway")));
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

fn petclinic() -> Vec<Backend> {
    (1..=3).map(|i| Backend::http(&format!("petclinic-{i}"), &format!("198.18.1.{i}"), &[8080])).collect()
}

#[test]
fn nodeport_spreads_tcp_over_every_backend() {
    let Some(sb) = up("nodeport_spreads_tcp_over_every_backend", &petclinic(), &[example("nodeport")]) else {
        return;
    };
    let seen = spread(&sb, &format!("http://{GW_V4}:31080/"), 30);
    assert_eq!(seen.len(), 3, "every backend answers: {seen:?}");
    assert!(sb.wait_counter("new_flows", 30) >= 30, "{}", sb.metrics());
    // This kernel (6.17+) lets one copy-mode wake-up send the whole TX ring, not 32 frames.
    assert!(sb.log("gateway").contains("up to 2048 frames per transmit wake-up"), "{}", sb.log("gateway"));
    // The UMEM (16,384 frames of 2 KiB) is on transparent huge pages where the kernel gives them.
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[never]") || thp.is_empty() {
        // CI (SLUICE_REQUIRE_ROOT=1) runs where the check can run: a skip there is a failure.
        assert_ne!(
            std::env::var("SLUICE_REQUIRE_ROOT").as_deref(),
            Ok("1"),
            "transparent huge pages are off (or unreadable: {thp:?}) and SLUICE_REQUIRE_ROOT=1 forbids \
             skipping the UMEM's huge-page check"
        );
        eprintln!("\n!!! transparent huge pages are off on this machine: the UMEM's pages are NOT checked\n");
        return;
    }
    let pid = sb.pid("gateway").expect("gateway pid");
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut size = 0;
    let huge_umem = smaps.lines().any(|l| {
        if let Some(v) = l.strip_prefix("Size:") {
            size = v.trim().trim_end_matches(" kB").parse().unwrap_or(0);
        }
        l.strip_prefix("AnonHugePages:").is_some_and(|v| {
            size == 32 * 1024 && v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0) > 0
        })
    });
    assert!(huge_umem, "a 32 MiB mapping with huge pages in /proc/{pid}/smaps");
}

#[test]
fn loadbalancer_vip_is_owned_on_the_wire_for_tcp_udp_and_ping() {
    let backends = [
        Backend::http("web-1", "198.18.1.11", &[8080]),
        Backend::http("web-2", "198.18.1.12", &[8080]),
        Backend { name: "dns-1".into(), v4: "198.18.1.21".into(), v6: None, tcp: vec![], udp: vec![5353] },
        Backend { name: "dns-2".into(), v4: "198.18.1.22".into(), v6: None, tcp: vec![], udp: vec![5353] },
    ];
    let Some(sb) = up("loadbalancer_vip", &backends, &[example("loadbalancer")]) else { return };
    // web gets the pool's first address; dns asked for .15.
    let seen = spread(&sb, "http://198.18.100.10/", 20);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["web-1", "web-2"], "{seen:?}");
    assert_eq!(sb.client_neighbor("198.18.100.10"), sb.gateway_mac(), "the gateway answers ARP for the VIP");
    let mut dns = BTreeMap::new();
    for i in 0..30 {
        let r = sb.udp("198.18.100.15", 53, &format!("q{i}")).expect("UDP answer");
        let (who, what) = r.split_once(':').expect("NAME:payload");
        assert_eq!(what, format!("q{i}"));
        *dns.entry(who.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(dns.len(), 2, "UDP flows spread over both dns backends: {dns:?}");
    let ping = sb.exec("cl", &["ping", "-c", "2", "-W", "2", "198.18.100.10"]).expect("ping");
    assert!(ping.status.success(), "ping to the VIP: {}", String::from_utf8_lossy(&ping.stdout));
    assert!(sb.wait_counter("neighbor_replies", 1) >= 1);
    assert!(sb.wait_counter("icmp_echo_replies", 2) >= 2);
}

/// One forged ARP request on the segment — "who-has VIP tell BACKEND" from another MAC — must
/// divert nothing: the gateway answers it (a request for a VIP like any other) but keeps the
/// backend's neighbour entry, which came from the kernel. The forger counts the IP frames that
/// reach its MAC while clients connect to the VIP: none.
#[test]
fn a_forged_arp_request_diverts_no_frame_to_the_forger() {
    let backends =
        [Backend::http("web-1", "198.18.1.11", &[8080]), Backend::http("web-2", "198.18.1.12", &[8080])];
    let Some(mut sb) = up("forged_arp", &backends, &[example("loadbalancer")]) else { return };
    spread(&sb, "http://198.18.100.10/", 6); // the backends' neighbours are known
    sb.add_client("fg", "198.18.0.66").expect("the forger's namespace");
    let p = sluice_sandbox::bin("sluice-probe").to_string_lossy().into_owned();
    let forger = sb
        .spawn("fg", "forger", &[&p, "arp-forge", "c0", "198.18.1.11", "198.18.100.10", "20"])
        .expect("forger");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sb.log("forger").contains("forged") {
        assert!(std::time::Instant::now() < deadline, "the forger did not start: {}", sb.log("forger"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let seen = spread(&sb, "http://198.18.100.10/", 40);
    assert_eq!(seen.values().sum::<usize>(), 40, "every connection to the VIP answered: {seen:?}");
    let _ = forger;
    sb.stop("forger", rustix::process::Signal::TERM);
    let log = sb.log("forger");
    let ip_frames: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("ip_frames "))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the forger did not report: {log}"));
    assert_eq!(ip_frames, 0, "IP frames reached the forger's MAC: {log}");
    assert!(log.contains("arp_frames"), "{log}");
}

#[test]
fn clusterip_routed_to_the_gateway() {
    let backends = [Backend::http("mysql-0", "198.18.1.30", &[3306])];
    let Some(sb) = up("clusterip_routed_to_the_gateway", &backends, &[example("clusterip")]) else { return };
    assert_eq!(sb.get("http://198.19.0.33:3306/").expect("through the ClusterIP"), "mysql-0");
}

#[test]
fn session_affinity_keeps_a_client_on_one_backend() {
    let backends: Vec<Backend> =
        (1..=3).map(|i| Backend::http(&format!("cart-{i}"), &format!("198.18.1.6{i}"), &[8080])).collect();
    let Some(sb) = up("session_affinity", &backends, &[example("session-affinity")]) else { return };
    let seen = spread(&sb, "http://198.19.0.40/", 20);
    assert_eq!(seen.len(), 1, "one backend for one client: {seen:?}");
    assert!(sb.wait_counter("affinity_hits", 19) >= 19);
}

#[test]
fn ipv6_and_ipv4_tcp_and_udp_through_clusterip_nodeport_and_loadbalancer() {
    let Some(sb) = up("ipv6_and_ipv4", &echo_backends(), &[example("dual-stack")]) else { return };
    for url in [
        "http://[2001:db8:19::10]/",
        "http://[2001:db8::1]:31090/",
        "http://198.19.2.10/",
        "http://198.18.0.1:31090/",
    ] {
        // Maglev spreads by source port: 40 requests miss one of 3 backends with odds 3·(2/3)^40.
        let seen = spread(&sb, url, 40);
        assert_eq!(seen.len(), 3, "{url}: {seen:?}");
    }
    // The IPv6 LoadBalancer: the client solicits the VIP's neighbour and the gateway answers.
    assert!(sb.get("http://[2001:db8:100::10]/").expect("IPv6 VIP").starts_with("echo-"));
    assert_eq!(sb.client_neighbor("2001:db8:100::10"), sb.gateway_mac());
    for (addr, port) in
        [("2001:db8:19::10", 7), ("2001:db8::1", 31091), ("198.19.2.10", 7), ("198.18.0.1", 31091)]
    {
        let r = sb.udp(addr, port, "hello").unwrap_or_else(|e| panic!("UDP {addr}:{port}: {e}"));
        assert!(r.starts_with("echo-") && r.ends_with(":hello"), "{r}");
    }
    let ping = sb.exec("cl", &["ping", "-6", "-c", "1", "-W", "2", "2001:db8:100::10"]).expect("ping");
    assert!(ping.status.success(), "ping6 to the VIP");
}

/// The Pods of the dual-stack example: nginx on 8080, a UDP echo server on 7007.
fn echo_backends() -> Vec<Backend> {
    (1..=3)
        .map(|i| Backend {
            name: format!("echo-{i}"),
            v4: format!("198.18.1.8{i}"),
            v6: Some(format!("2001:db8:1::8{i}")),
            tcp: vec![8080],
            udp: vec![7007],
        })
        .collect()
}

/// Every request of the dual-stack example answered (TCP and UDP, IPv4 and IPv6).
fn dual_stack_traffic(sb: &Sandbox) {
    for url in [
        "http://[2001:db8:19::10]/",
        "http://[2001:db8::1]:31090/",
        "http://198.19.2.10/",
        "http://198.18.0.1:31090/",
    ] {
        let seen = spread(sb, url, 30);
        assert!(seen.len() >= 2, "{url}: {seen:?}");
    }
    for (addr, i) in
        [("198.19.2.10", 0), ("2001:db8:19::10", 1)].iter().flat_map(|a| (0..10).map(move |i| (a.0, i)))
    {
        let r = sb.udp(addr, 7, &format!("u{i}")).unwrap_or_else(|e| panic!("UDP to {addr}: {e}"));
        assert!(r.ends_with(&format!(":u{i}")), "{r}");
    }
}

#[test]
fn two_queues_hand_each_frame_to_the_worker_that_owns_its_flow() {
    let topology = Topology { queues: 2, ..Topology::default() };
    let mut backends = echo_backends();
    backends.extend(local_backends());
    let examples = [example("dual-stack"), example("local-traffic")];
    let Some(sb) = up_with("two_queues", &backends, &examples, topology) else { return };
    assert!(sb.log("gateway").contains("2 queue(s)"), "{}", sb.log("gateway"));
    dual_stack_traffic(&sb);
    // DNAT: the replies go back to the client's address, and follow it to its worker. (With both
    // examples' pools, web-local's address is the one control logged.)
    let log = sb.log("control");
    let vip = log
        .lines()
        .find_map(|l| l.split_once("LoadBalancer default/web-local: ").map(|(_, vip)| vip.trim()))
        .unwrap_or_else(|| panic!("web-local's address in control's log:\n{log}"))
        .to_owned();
    let seen = spread(&sb, &format!("http://{vip}/"), 30);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["web-local-1", "web-local-2"], "{seen:?}");
    // Frames of one flow land on both queues (the switch spreads by its own hash, requests and
    // replies alike); every one reached the worker holding the flow.
    assert!(sb.wait_counter("handed_off", 1) >= 1, "{}", sb.metrics());
    assert!(sb.wait_counter("handed_in", 1) >= 1);
    let (off, into) = sb.wait_counters_agree("handed_off", "handed_in");
    assert_eq!(off, into, "every frame handed off was taken in: {}", sb.metrics());
    assert_eq!(sb.gateway_drops("no_flow_for_segment"), 0, "{}", sb.metrics());
    assert_eq!(sb.gateway_drops("handoff_full"), 0);
}

#[test]
fn a_two_armed_gateway_faces_clients_and_backends_on_separate_interfaces() {
    let topology = Topology { two_armed: true, ..Topology::default() };
    let Some(sb) = up_with("two_armed", &echo_backends(), &[example("dual-stack")], topology) else { return };
    assert!(sb.log("gateway").contains("facing backends"), "{}", sb.log("gateway"));
    dual_stack_traffic(&sb);
    // Every forwarded frame crossed from one interface to the other.
    assert!(sb.wait_counter("port_copies", 160) >= 160, "{}", sb.metrics());
    // The kernel's own traffic on the backend side still works.
    let ping = sb.exec("b0", &["ping", "-c", "1", "-W", "2", "198.18.1.254"]).expect("ping");
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
}

#[test]
fn frames_larger_than_2048_bytes_cross_a_gateway_on_links_with_a_larger_mtu() {
    // MTU 3000 everywhere: TCP segments of 2,960 bytes, frames of 3,014; the gateway takes
    // 4096-byte UMEM frames (with 2048-byte ones every full segment would be dropped).
    let topology = Topology { mtu: 3000, ..Topology::default() };
    let Some(sb) = up_with("mtu_3000", &petclinic(), &[example("nodeport")], topology) else { return };
    assert!(sb.log("gateway").contains("4096-byte frames"), "{}", sb.log("gateway"));
    let url = format!("http://{GW_V4}:31080/");
    for _ in 0..3 {
        // An upload (client → backend) and a download (backend → client) of full-size segments.
        let script = format!("head -c 1000000 /dev/zero | curl -sS -m 10 --fail --data-binary @- {url}");
        let out = sb.exec("cl", &["sh", "-c", &script]).expect("curl");
        assert!(out.status.success(), "upload: {}", String::from_utf8_lossy(&out.stderr));
        let big = format!("{url}big");
        let out = sb
            .exec(
                "cl",
                &[
                    "curl",
                    "-sS",
                    "-m",
                    "10",
                    "--fail",
                    "-r",
                    "0-299999",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{size_download}",
                    &big,
                ],
            )
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "300000",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(sb.gateway_counter("xsk_rx_dropped"), 0, "{}", sb.metrics());
    let [rx, frames] = sb.gateway_counters(["rx_bytes", "rx_frames"]);
    assert!(frames > 0 && rx / frames > 1500, "mostly full segments: {rx} bytes in {frames} frames");
}

/// The Pods of the local-traffic example: two on the gateway's node, one elsewhere.
fn local_backends() -> Vec<Backend> {
    [("web-local-1", "198.18.1.101"), ("web-local-2", "198.18.1.102"), ("web-remote", "198.18.1.103")]
        .iter()
        .map(|(n, a)| Backend::http(n, a, &[8080]))
        .collect()
}

#[test]
fn local_traffic_policy_is_dnat_to_local_endpoints_keeping_the_client_address() {
    let Some(sb) = up("local_traffic_policy", &local_backends(), &[example("local-traffic")]) else { return };
    let seen = spread(&sb, "http://198.18.100.30/", 20);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["web-local-1", "web-local-2"], "{seen:?}");
    assert_eq!(
        sb.get("http://198.18.100.30/ip").expect("GET /ip"),
        "198.18.0.100",
        "the backend sees the client"
    );
    // The XDP program takes the DNAT backends' replies (their source address and port), which
    // the host's own connection to a backend looks like too: that one is the host's.
    let o = sb.exec("gw", &["curl", "-s", "-m", "3", "http://198.18.1.101:8080/"]).expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "web-local-1",
        "the host's own connection to a DNAT backend"
    );
}

/// A GET in a thread: (backend from the X-Backend header, body bytes) or the error.
fn download(sb: &Sandbox, url: &str) -> Result<(String, usize), String> {
    let out = sb
        .exec(
            "cl",
            &[
                "curl",
                "-sS",
                "-g",
                "-m",
                "30",
                "--fail",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                url,
            ],
        )
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The headers come first on stdout: a download that fails after them still names its backend.
    let backend = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Backend: ").or_else(|| l.strip_prefix("x-backend: ")))
        .unwrap_or("?")
        .trim()
        .to_owned();
    if !out.status.success() {
        return Err(format!("{url} from backend {backend}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let size = text.lines().last().unwrap_or("0").trim().parse().unwrap_or(0);
    Ok((backend, size))
}

#[test]
fn blue_green_switch_under_load_fails_no_request() {
    let backends: Vec<Backend> = [
        ("petclinic-blue-1", "198.18.1.41"),
        ("petclinic-blue-2", "198.18.1.42"),
        ("petclinic-green-1", "198.18.1.51"),
        ("petclinic-green-2", "198.18.1.52"),
    ]
    .iter()
    .map(|(n, a)| Backend::http(n, a, &[8080]))
    .collect();
    let Some(sb) = up("blue_green_switch", &backends, &[example("blue-green")]) else { return };
    let url = format!("http://{GW_V4}:31080/");
    let before = spread(&sb, &url, 10);
    assert!(before.keys().all(|k| k.contains("blue")), "{before:?}");
    let manifest = std::fs::read_to_string(example("blue-green").join("petclinic.yaml")).expect("example");
    // The Service's selector is the first `version:` of the file.
    let switched = manifest.replacen("version: v1.0.0", "version: v1.0.1", 1);
    assert_ne!(switched, manifest);
    let g = sb.generation().expect("generation");
    std::thread::scope(|s| {
        let long = s.spawn(|| download(&sb, &format!("{url}big")));
        let requests = s.spawn(|| {
            let mut log = Vec::new();
            for _ in 0..200 {
                log.push(sb.get(&url));
            }
            log
        });
        std::thread::sleep(std::time::Duration::from_millis(700));
        sb.set_manifests(&[], &[("petclinic.yaml", &switched)]).expect("switch");
        sb.wait_generation(g + 1).expect("the switch is published");
        let log = requests.join().expect("requests");
        let failed: Vec<_> = log.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), log.len());
        let (who, size) = long.join().expect("download").expect("the long download survives the switch");
        assert!(who.contains("blue") && size == 2 << 20, "{who} {size}");
    });
    let after = spread(&sb, &url, 10);
    assert!(after.keys().all(|k| k.contains("green")), "{after:?}");
}

#[test]
fn removing_a_backend_leaves_the_other_connections_alone() {
    let Some(sb) = up("removing_a_backend", &petclinic(), &[example("nodeport")]) else { return };
    let url = format!("http://{GW_V4}:31080/big");
    let manifest = std::fs::read_to_string(example("nodeport").join("petclinic.yaml")).expect("example");
    // Drop the Pod petclinic-1 (the second document).
    let docs: Vec<&str> = manifest.split("\n---\n").collect();
    assert!(docs[1].contains("name: petclinic-1"));
    let without: String =
        docs.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, d)| *d).collect::<Vec<_>>().join("\n---\n");
    let g = sb.generation().expect("generation");
    let results = std::thread::scope(|s| {
        let downloads: Vec<_> = (0..12).map(|_| s.spawn(|| download(&sb, &url))).collect();
        std::thread::sleep(std::time::Duration::from_secs(2));
        sb.set_manifests(&[], &[("petclinic.yaml", &without)]).expect("remove petclinic-1");
        sb.wait_generation(g + 1).expect("published");
        let during = spread(&sb, &format!("http://{GW_V4}:31080/"), 12);
        assert!(
            !during.contains_key("petclinic-1"),
            "no new connection goes to the removed backend: {during:?}"
        );
        downloads.into_iter().map(|d| d.join().expect("thread")).collect::<Vec<_>>()
    });
    // Every download completes, the removed backend's too: its Pod left the Service, but its
    // server still answers, and an established TCP flow keeps its backend until it closes (as
    // kube-proxy's conntrack entries outlive the endpoint; docs/design.md).
    let mut served = BTreeMap::new();
    for r in &results {
        let (who, size) = r.as_ref().unwrap_or_else(|e| panic!("a download failed: {e}"));
        assert_eq!(*size, 2 << 20, "{who}'s download is complete");
        *served.entry(who.clone()).or_insert(0) += 1;
    }
    // Maglev spreads by source port, so which backends served is chance; with 12 downloads the
    // chance that none went to a backend that stays is (1/3)^12.
    assert!(served.keys().any(|k| k != "petclinic-1"), "{served:?}");
}

#[test]
fn the_kernel_keeps_its_own_traffic_and_a_killed_gateway_holds_only_the_services() {
    let Some(mut sb) = up("kernel_traffic_and_sigkill", &petclinic(), &[example("nodeport")]) else { return };
    // The host's own service on the gateway (what SSH would be).
    sb.start_nginx("gw", "gateway-host", &[22]).expect("nginx on the gateway");
    let host = |sb: &Sandbox| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match sb.get("http://198.18.0.1:22/") {
                Ok(b) => return Ok(b),
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    };
    assert_eq!(host(&sb).expect("the host's own TCP service"), "gateway-host");
    let ping = |sb: &Sandbox| {
        sb.exec("cl", &["ping", "-c", "1", "-W", "2", GW_V4]).map(|o| o.status.success()).unwrap_or(false)
    };
    assert!(ping(&sb), "ping to the host's address");
    assert!(sb.get(&format!("http://{GW_V4}:31080/")).is_ok());
    assert!(sb.xdp_attached());
    let status = sb.stop("gateway", rustix::process::Signal::KILL).expect("gateway running");
    assert!(!status.success());
    // The program outlives its process and holds the service's traffic for the next gateway
    // (docs/restarts.md): service frames are dropped, not answered by the kernel...
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(sb.xdp_attached(), "the XDP program stays for the next gateway");
    let held = sb.exec("cl", &["curl", "-sS", "-m", "1", &format!("http://{GW_V4}:31080/")]).expect("curl");
    let said = String::from_utf8_lossy(&held.stderr);
    assert!(!held.status.success() && said.contains("timed out"), "held, not refused: {said}");
    // ...while the host's own traffic is the kernel's as ever.
    assert!(ping(&sb), "ping after the gateway died");
    assert_eq!(host(&sb).expect("the host's service after the gateway died"), "gateway-host");
    // `--release` takes it off: then nothing is left behind.
    let gw = sluice_sandbox::bin("sluice-gateway").to_string_lossy().into_owned();
    let journal = format!("{}-flows", sb.table().display());
    let out =
        sb.exec("gw", &[&gw, "--iface", "gw0", "--flow-journal", &journal, "--release"]).expect("release");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!sb.xdp_attached(), "released");
    assert!(!std::path::Path::new(&format!("{journal}-gw0-0")).exists(), "the journal is removed");
    assert!(ping(&sb), "ping after the release");
    assert_eq!(host(&sb).expect("the host's service after the release"), "gateway-host");
}

/// Runs `sluice-probe` in a role's namespace; `Err` carries its complaint.
fn probe(sb: &Sandbox, role: &str, args: &[&str]) -> Result<(), String> {
    let p = sluice_sandbox::bin("sluice-probe").to_string_lossy().into_owned();
    let mut full = vec![p.as_str()];
    full.extend_from_slice(args);
    let o = sb.exec(role, &full).map_err(|e| e.to_string())?;
    if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
}

/// The SNAT address is one of the host's own (198.18.1.254 on the gateway's interface), and the
/// XDP program takes replies to it on the SNAT ports and ICMP errors to it. What is the host's
/// own there must still reach the host: a service listening on a port of the SNAT range, a
/// connection the host opened from such a port, an ICMP port unreachable about the host's own
/// datagram, and the ICMP "fragmentation needed" a router sends about the host's own TCP
/// (path MTU discovery: without it, the host's connection through a narrower link stalls).
#[test]
fn the_host_keeps_its_own_traffic_on_the_snat_address() {
    let Some(mut sb) = up("host_traffic_on_the_snat_address", &petclinic()[..1], &[example("nodeport")])
    else {
        return;
    };
    let snat = sluice_sandbox::SNAT_V4;
    // A service of the host's on a port inside the SNAT range (10000-29999).
    let sink = format!("{snat}:20005");
    let p = sluice_sandbox::bin("sluice-probe").to_string_lossy().into_owned();
    sb.spawn("gw", "host-sink", &[&p, "tcp-sink", &sink]).expect("sink");
    let sent = (0..5).find_map(|_| match probe(&sb, "b0", &["tcp-send", &sink, "100000"]) {
        Ok(()) => Some(()),
        Err(_) => {
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        }
    });
    assert!(
        sent.is_some(),
        "a backend reaches the host's service on {sink}: {:?}",
        probe(&sb, "b0", &["tcp-send", &sink, "100000"])
    );
    // A connection the host opens from a port inside the range.
    let o = sb
        .exec("gw", &["curl", "-s", "-m", "3", "--local-port", "20010", "http://198.18.1.1:8080/"])
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "petclinic-1",
        "the host's own connection from port 20010"
    );
    // An ICMP error about the host's own datagram.
    probe(&sb, "gw", &["udp-refused", "198.18.1.1:9"]).expect("the host's ICMP port unreachable");
    // Path MTU discovery: the backend host routes to a network behind a 1280-byte link; the
    // host's TCP sends full-size segments, and only the router's ICMP tells it to shrink them.
    let far = sb.add_namespace("far").expect("namespace");
    let b0 = sb.ns("b0");
    sluice_sandbox::veth((&far, "f0"), (&b0, "r0"), 1).expect("veth");
    for (ns, dev, addr) in [(&far, "f0", "198.18.201.2/24"), (&b0, "r0", "198.18.201.1/24")] {
        sluice_sandbox::must(&["ip", "-n", ns, "link", "set", dev, "mtu", "1280"]).unwrap();
        sluice_sandbox::must(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]).unwrap();
        sluice_sandbox::must(&["ip", "-n", ns, "link", "set", dev, "up"]).unwrap();
    }
    sluice_sandbox::must(&["ip", "-n", &far, "route", "add", "default", "via", "198.18.201.1"]).unwrap();
    sluice_sandbox::must(&["ip", "netns", "exec", &b0, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    let gw = sb.ns("gw");
    sluice_sandbox::must(&[
        "ip",
        "-n",
        &gw,
        "route",
        "add",
        "198.18.201.0/24",
        "via",
        "198.18.1.1",
        "src",
        snat,
    ])
    .unwrap();
    sb.spawn("far", "far-sink", &[&p, "tcp-sink", "198.18.201.2:7000"]).expect("far sink");
    let mut last = Err(String::new());
    for _ in 0..20 {
        last = probe(&sb, "gw", &["tcp-send", "198.18.201.2:7000", "300000"]);
        if last.is_ok() || !last.as_ref().is_err_and(|e| e.contains("connect")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last.unwrap_or_else(|e| panic!("the host's TCP through the 1280-byte link: {e}\n{}", sb.log("gateway")));
}

/// A table file removed on drop.
struct NobodysTable(PathBuf);

impl Drop for NobodysTable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_gateway_explains_missing_privileges_and_missing_xdp_support() {
    let Some(mut sb) = up("gateway_errors", &petclinic()[..1], &[example("nodeport")]) else { return };
    let gw = sluice_sandbox::bin("sluice-gateway").to_string_lossy().into_owned();
    let t = sb.table().to_string_lossy().into_owned();
    // Unprivileged, on a table it may open (a copy owned by its user, 0600 as control makes
    // them), so that what fails is the XDP program, and what it says is what to do about it.
    let copy = NobodysTable(PathBuf::from(format!("{t}-nobody")));
    std::fs::copy(&t, &copy.0).expect("copy the table");
    std::fs::set_permissions(&copy.0, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&copy.0, Some(65534), Some(65534)).expect("chown");
    let nobodys = copy.0.to_string_lossy().into_owned();
    let out = sb
        .exec(
            "gw",
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &gw,
                "--iface",
                "gw0",
                "--table",
                &nobodys,
                "--flow-journal",
                "off",
            ],
        )
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("loading the XDP program") && err.contains("run as root"), "{err}");
    assert!(!err.contains("table "), "the table was opened: {err}");
    let out = sb.exec("gw", &[&gw, "--iface", "nope0", "--table", &t, "--flow-journal", "off"]).expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no network interface named \"nope0\""));
    // Loopback has no native XDP. (Its MTU, 65536, would be refused first: see below.)
    assert!(sb.exec("gw", &["ip", "link", "set", "lo", "mtu", "1500"]).expect("ip").status.success());
    let out = sb
        .exec("gw", &[&gw, "--iface", "lo", "--xdp-mode", "native", "--table", &t, "--flow-journal", "off"])
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("attaching the XDP program to lo"), "{err}");
    // Frames must fit one UMEM frame: an MTU of 3000 takes 4096-byte frames, 9000 is refused
    // with what to do about it.
    for args in [
        &["ip", "link", "add", "big0", "type", "veth", "peer", "name", "big1"][..],
        &["ip", "link", "set", "big0", "mtu", "9000", "up"],
        &["ip", "link", "set", "big1", "mtu", "9000", "up"],
    ] {
        assert!(sb.exec("gw", args).expect("ip").status.success(), "{args:?}");
    }
    let out = sb.exec("gw", &[&gw, "--iface", "big0", "--table", &t, "--flow-journal", "off"]).expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("big0 has MTU 9000") && err.contains("ip link set big0 mtu 3822"), "{err}");
    for i in ["big0", "big1"] {
        assert!(sb.exec("gw", &["ip", "link", "set", i, "mtu", "3000"]).expect("ip").status.success());
    }
    let out = sb
        .exec(
            "gw",
            &["timeout", "-s", "TERM", "3", &gw, "--iface", "big0", "--table", &t, "--flow-journal", "off"],
        )
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4096-byte frames"), "{err}");
    // An MTU raised past the frames while the gateway runs is reported.
    for i in ["big0", "big1"] {
        assert!(sb.exec("gw", &["ip", "link", "set", i, "mtu", "1500"]).expect("ip").status.success());
    }
    sb.spawn("gw", "gateway-big0", &[&gw, "--iface", "big0", "--table", &t, "--flow-journal", "off"])
        .expect("spawn");
    wait_until(|| sb.log("gateway-big0").contains("2048-byte frames"), "the gateway on big0");
    for i in ["big1", "big0"] {
        assert!(sb.exec("gw", &["ip", "link", "set", i, "mtu", "3000"]).expect("ip").status.success());
    }
    wait_until(
        || {
            sb.log("gateway-big0")
                .contains("big0's MTU is now 3000, but its AF_XDP frames hold an MTU of 1774")
        },
        "the MTU warning",
    );
    let _ = sb.stop("gateway-big0", rustix::process::Signal::TERM);
    let _ = sb.stop("control", rustix::process::Signal::TERM);
}

/// Waits up to 10 s for `f`, or panics naming `what`.
fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Idle workers sleep in their reactor and wake for the first frame: on their AF_XDP socket, and
/// (with two queues) on the doorbell another worker rings when it hands them a frame. The
/// workers here would otherwise sleep 20 s, so a request that did not wake its worker would time
/// out (curl after 2 s, the UDP echo after 0.7 s).
#[test]
fn idle_workers_wake_for_the_first_frame_on_their_socket_and_their_doorbell() {
    let test = "idle_workers_wake";
    if !require_root(test) {
        return;
    }
    let mut sb = Sandbox::with_topology(&echo_backends(), Topology { queues: 2, ..Topology::default() })
        .expect("sandbox");
    sb.set_manifests(&[example("dual-stack")], &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--max-sleep-ms", "20000"]).expect("gateway");
    for round in 0..6 {
        // Long enough for both workers to have gone to sleep (a few hundred empty polls).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let url = if round % 2 == 0 { "http://198.19.2.10/" } else { "http://[2001:db8:19::10]/" };
        let body = sb
            .get_from("cl", url, &["-m", "2"])
            .unwrap_or_else(|e| panic!("round {round}: {url}: {e}\ngateway log:\n{}", sb.log("gateway")));
        assert!(body.starts_with("echo-"), "{body}");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let addr = if round % 2 == 0 { "198.19.2.10" } else { "2001:db8:19::10" };
        let r = sb
            .udp(addr, 7, &format!("r{round}"))
            .unwrap_or_else(|e| panic!("round {round}: UDP to {addr}: {e}"));
        assert!(r.ends_with(&format!(":r{round}")), "{r}");
    }
    // The hand-over (and so the doorbell) was used: replies RSS put on the other queue.
    assert!(sb.wait_counter("handed_off", 1) >= 1, "{}", sb.metrics());
}

/// The table file truncated under a running gateway (control stopped, as an operator's mistake
/// would leave it): noticed and logged within a second, once, no SIGBUS, the last good table
/// keeps forwarding. Then the file is removed and a new one appears whose first generation is not
/// a table image: the gateway adopts the file (its generations start again from 1, and it says
/// so), refuses that generation once — not every 10 ms — and keeps forwarding; control started
/// on that file continues its generations, and the gateway takes the next one, with the
/// workers' counters now reaching control through the new file.
#[test]
fn a_table_file_truncated_then_replaced_under_the_gateway() {
    let Some(mut sb) = up("table_truncated_then_replaced", &petclinic(), &[example("nodeport")]) else {
        return;
    };
    let url = format!("http://{GW_V4}:31080/");
    let serves = |sb: &Sandbox, when: &str| {
        for i in 0..3 {
            sb.get(&url).unwrap_or_else(|e| panic!("{when}, request {i}: {e}\n{}", sb.log("gateway")));
        }
    };
    serves(&sb, "before");
    sb.stop("control", rustix::process::Signal::TERM).expect("control running");
    let table = sb.table().to_owned();
    std::fs::OpenOptions::new().write(true).open(&table).expect("table").set_len(0).expect("truncate");
    wait_until(|| sb.log("gateway").contains("was truncated to 0 bytes"), "the gateway to notice");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(sb.pid("gateway").is_some() && sb.xdp_attached(), "{}", sb.log("gateway"));
    serves(&sb, "on the last good table");
    let log = sb.log("gateway");
    assert_eq!(log.matches("the file there now is refused").count(), 1, "one problem, logged once:\n{log}");

    std::fs::remove_file(&table).expect("remove");
    let mut other =
        sluice_table::Publisher::create(&table, sluice_table::Geometry::default()).expect("new file");
    assert_eq!(other.publish(b"not a table image").expect("publish"), 1);
    wait_until(|| sb.log("gateway").contains("adopted the file now there"), "adoption");
    wait_until(|| sb.log("gateway").contains("table generation 1 refused"), "the refusal");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let log = sb.log("gateway");
    assert_eq!(log.matches("table generation 1 refused").count(), 1, "logged once:\n{log}");
    serves(&sb, "after a refused generation");

    drop(other);
    let seconds = sb.log("gateway").matches("table generation 2:").count();
    sb.start_control().expect("control on the new file");
    wait_until(
        || sb.log("gateway").matches("table generation 2:").count() > seconds,
        "generation 2 of the new file in the gateway",
    );
    serves(&sb, "on the new file");
    assert!(sb.wait_counter("rx_frames", 1) >= 1, "{}", sb.metrics());
}

#[test]
fn syn_cookies_open_real_connections_in_both_families() {
    // Every SYN answered by the XDP program with a cookie (`--syn-cookies always`): each
    // connection below is opened by the client's ACK, proxied to the backend by the worker, and
    // carried with shifted sequence numbers — a 300 kB body included (many windows, no scaling).
    cookie_traffic("syn_cookies_open_real_connections_in_both_families", "native");
}

#[test]
fn syn_cookies_open_real_connections_with_generic_xdp() {
    cookie_traffic("syn_cookies_open_real_connections_with_generic_xdp", "skb");
}

fn cookie_traffic(test: &str, xdp_mode: &str) {
    if !require_root(test) {
        return;
    }
    let mut sb = Sandbox::new(&echo_backends()).expect("sandbox");
    sb.set_manifests(&[example("dual-stack")], &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--syn-cookies", "always", "--xdp-mode", xdp_mode]).expect("gateway");
    // On a veth in native mode the gateway says what its peer needs for XDP_TX (the sandbox
    // attaches it); in generic mode XDP_TX goes through the kernel's transmit path and needs none.
    assert_eq!(sb.log("gateway").contains("gw0 has a peer"), xdp_mode == "native", "{}", sb.log("gateway"));
    let urls = [
        "http://198.19.2.10/",
        "http://198.18.0.1:31090/",
        "http://[2001:db8:19::10]/",
        "http://[2001:db8::1]:31090/",
        "http://[2001:db8:100::10]/",
    ];
    for url in urls {
        for i in 0..3 {
            let body = sb.get(url).unwrap_or_else(|e| panic!("{url} #{i}: {e}\n{}", sb.log("gateway")));
            assert!(body.starts_with("echo-"), "{url}: {body}");
        }
    }
    let big = sb
        .get_from("cl", "http://198.19.2.10/big", &["-r", "0-299999", "--max-time", "10"])
        .unwrap_or_else(|e| panic!("the 300 kB body: {e}\n{}", sb.log("gateway")));
    assert_eq!(big.len(), 300_000);
    assert!(big.bytes().all(|b| b == b'x'));
    let opened = urls.len() as u64 * 3 + 1;
    assert!(sb.wait_counter("syn_cookies_accepted", opened) >= opened, "every connection through a cookie");
}

/// Who is attached to the gateway's interface: the maps its XDP program uses.
fn program_maps(sb: &Sandbox) -> Vec<String> {
    let id = sb.xdp_program_id("gw0").expect("an XDP program on gw0");
    sluice_xsk::steer::program_maps(id).expect("the program's maps")
}

#[test]
fn the_fast_path_forwards_established_flows_in_the_kernel() {
    let test = "the_fast_path_forwards_established_flows_in_the_kernel";
    if !require_root(test) {
        return;
    }
    let mut sb = Sandbox::new(&petclinic()).expect("sandbox");
    sb.set_manifests(&[example("nodeport")], &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--fast-path", "on"]).expect("gateway");
    let maps = program_maps(&sb);
    assert!(maps.iter().any(|m| m == "fast_flows") && maps.iter().any(|m| m == "fast_tx"), "{maps:?}");
    // Once the worker has published its counters (it may not have yet: a read at once raced).
    let before = sb.wait_counter("forwarded", 0);
    for i in 0..3 {
        let (who, size) = download(&sb, &format!("http://{GW_V4}:31080/big"))
            .unwrap_or_else(|e| panic!("download {i}: {e}\ngateway log:\n{}", sb.log("gateway")));
        assert_eq!(size, 2 << 20, "{who}'s download is complete");
    }
    assert!(sb.wait_counter("fast_offered", 3) >= 3, "{}", sb.metrics());
    // 2 MiB is at least 1,449 segments from the backend (1,448 bytes each at most), plus the
    // client's ACKs: over 4,300 frames through the gateway for three downloads. The worker sees
    // the handshakes, what comes before the entries are installed (within 10 ms), and the
    // closes: a few hundred (measured: 237, 134 while the program forwarded 4,551).
    let forwarded = sb.gateway_counter("forwarded") - before;
    eprintln!("{test}: the worker forwarded {forwarded} frames of three 2 MiB downloads");
    assert!(forwarded < 1_000, "the worker forwarded {forwarded} frames: the kernel did not take the flows");
    assert!(sb.get(&format!("http://{GW_V4}:31080/")).is_ok(), "and new connections still work");
    // Each download's close withdraws its flow; the installer reads the entries before it
    // removes them, and what the kernel forwarded reaches the worker's counters.
    let read_back = sb.wait_counter("fast_frames", 1_449);
    eprintln!("{test}: the kernel's frames read back into the worker's counters: {read_back}");
    assert!(read_back >= 1_449, "at least one download's data read back: {read_back}");
    // The program's own count, which the gateway logs when it stops.
    sb.stop("gateway", rustix::process::Signal::TERM).expect("gateway running");
    let log = sb.log("gateway");
    let in_kernel: u64 = log
        .split("XDP fast path: forwarded ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fast-path line in the gateway's log:\n{log}"));
    eprintln!("{test}: the program forwarded {in_kernel} frames");
    assert!(
        in_kernel + forwarded > 3 * 1_449 && in_kernel > 10 * forwarded,
        "the program forwarded {in_kernel} frames, the worker {forwarded}"
    );
    assert!(read_back <= in_kernel, "read back {read_back} of the {in_kernel} the program forwarded");
}

#[test]
fn with_the_fast_path_off_nothing_of_it_is_loaded() {
    let test = "with_the_fast_path_off_nothing_of_it_is_loaded";
    if !require_root(test) {
        return;
    }
    let mut sb = Sandbox::new(&petclinic()).expect("sandbox");
    sb.set_manifests(&[example("nodeport")], &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--fast-path", "off"]).expect("gateway");
    let maps = program_maps(&sb);
    assert!(maps.iter().any(|m| m == "steer"), "the steering program: {maps:?}");
    assert!(!maps.iter().any(|m| m.starts_with("fast_")), "no map of the fast path: {maps:?}");
    let (_, size) = download(&sb, &format!("http://{GW_V4}:31080/big")).expect("download");
    assert_eq!(size, 2 << 20);
    assert_eq!(sb.gateway_counter("fast_offered"), 0);
}

/// `--fast-path auto`, the default: on where the AF_XDP sockets bind in copy mode, as they do
/// on the sandbox's veth. The log says which applies and why, and the program has the maps.
#[test]
fn the_default_fast_path_is_on_where_af_xdp_copies() {
    let test = "the_default_fast_path_is_on_where_af_xdp_copies";
    if !require_root(test) {
        return;
    }
    let mut sb = Sandbox::new(&petclinic()).expect("sandbox");
    sb.set_manifests(&[example("nodeport")], &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--fast-path", "auto"]).expect("gateway");
    let log = sb.log("gateway");
    assert!(
        log.contains(
            "XDP fast path for established flows: on (--fast-path auto: the AF_XDP sockets run in copy mode"
        ),
        "{log}"
    );
    assert!(log.contains("AF_XDP copy mode"), "{log}");
    let maps = program_maps(&sb);
    assert!(maps.iter().any(|m| m == "fast_flows"), "the fast path's map: {maps:?}");
    let (_, size) = download(&sb, &format!("http://{GW_V4}:31080/big")).expect("download");
    assert_eq!(size, 2 << 20);
    assert!(sb.wait_counter("fast_offered", 1) >= 1, "{}", sb.metrics());
}
