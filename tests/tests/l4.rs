//! Namespace tests of the L4 data plane: real clients, a real gateway on AF_XDP, real servers.
//! Each starts control on manifests from `deploy/examples/` (needs root; see the crate docs).

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

/// A sandbox with `backends`, control on `examples`, and the gateway; `None` when skipped.
fn up(test: &str, backends: &[Backend], examples: &[PathBuf]) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(backends).expect("sandbox");
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
    for i in 0..12 {
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
    let backends: Vec<Backend> = (1..=3)
        .map(|i| Backend {
            name: format!("echo-{i}"),
            v4: format!("198.18.1.8{i}"),
            v6: Some(format!("2001:db8:1::8{i}")),
            tcp: vec![8080],
            udp: vec![7007],
        })
        .collect();
    let Some(sb) = up("ipv6_and_ipv4", &backends, &[example("dual-stack")]) else { return };
    for url in [
        "http://[2001:db8:19::10]/",
        "http://[2001:db8::1]:31090/",
        "http://198.19.2.10/",
        "http://198.18.0.1:31090/",
    ] {
        let seen = spread(&sb, url, 15);
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

#[test]
fn local_traffic_policy_is_dnat_to_local_endpoints_keeping_the_client_address() {
    let backends: Vec<Backend> =
        [("web-local-1", "198.18.1.101"), ("web-local-2", "198.18.1.102"), ("web-remote", "198.18.1.103")]
            .iter()
            .map(|(n, a)| Backend::http(n, a, &[8080]))
            .collect();
    let Some(sb) = up("local_traffic_policy", &backends, &[example("local-traffic")]) else { return };
    let seen = spread(&sb, "http://198.18.100.30/", 20);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["web-local-1", "web-local-2"], "{seen:?}");
    assert_eq!(
        sb.get("http://198.18.100.30/ip").expect("GET /ip"),
        "198.18.0.100",
        "the backend sees the client"
    );
}
