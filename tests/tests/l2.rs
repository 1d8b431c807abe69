//! L2 mode failover (issue 17, item 3): two gateway nodes on one client segment, each with its
//! control and gateway in its own namespace; an L2Advertisement puts the LoadBalancer VIP in L2
//! mode, and the controls' election (`--l2-listen`/`--l2-peer`/`--l2-key`, docs/l2.md) makes one
//! node active for it. Only that node answers ARP for the VIP; drained, it hands the VIP over at
//! once; SIGKILL the active node (gateway and control: the election runs in control) and the
//! other takes over, announcing the VIP with a gratuitous ARP (IPv4) and an unsolicited
//! neighbour advertisement (IPv6): the client's neighbour entries move to its MAC, and new
//! connections succeed.
//!
//! ```text
//!   cl (198.18.0.100) ─┐                 ┌─ gw   node a: 198.18.0.1, SNAT 198.18.1.254
//!                      ├── switch br0 ───┼─ gw2  node b: 198.18.0.2, SNAT 198.18.1.253
//!   b0, b1 (backends) ─┘                 └─ (both gateways and their controls, one per ns)
//! ```
//! `web` is FullNAT: each node's replies come back to its own SNAT address; `web-local` is DNAT
//! (externalTrafficPolicy: Local, an endpoint on each node). With the flow sync between the
//! gateways and keepalived moving a dead node's SNAT address (docs/flow-sync.md), a download
//! through each survives the takeover. Needs root; see the crate docs.

use std::time::{Duration, Instant};

use sluice_sandbox::{Backend, Sandbox, bin, mac_in, must, require_root, veth};

const VIP: &str = "198.18.100.10";
/// The IPv6 VIP.
const VIP6: &str = "2001:db8:100::10";
const NODE_B: &str = "198.18.0.2";
const SNAT_B: &str = "198.18.1.253";
/// How long a takeover may take (issue 17: 3 s in L2 mode).
const TAKEOVER_LIMIT: Duration = Duration::from_secs(3);

const MANIFESTS: &str = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: sluice-system}
spec:
  addresses: [198.18.100.10-198.18.100.19, 2001:db8:100::10-2001:db8:100::1f]
---
# IPv6: the unsolicited neighbour advertisement's turn.
apiVersion: v1
kind: Service
metadata: {name: web6}
spec:
  type: LoadBalancer
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  loadBalancerIP: 2001:db8:100::10
  ports:
    - {name: http, port: 80, targetPort: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web6-1
  labels: {kubernetes.io/service-name: web6}
addressType: IPv6
ports:
  - {name: http, port: 80, protocol: TCP}
endpoints:
  - addresses: [\"2001:db8:1::11\"]
    conditions: {ready: true}
  - addresses: [\"2001:db8:1::12\"]
    conditions: {ready: true}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: edge-l2, namespace: sluice-system}
spec:
  ipAddressPools: [edge]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.100.10
  ports:
    - {name: http, port: 80, targetPort: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
  - {name: http, port: 80, protocol: TCP}
endpoints:
  - addresses: [198.18.1.11]
    conditions: {ready: true}
  - addresses: [198.18.1.12]
    conditions: {ready: true}
---
# DNAT: externalTrafficPolicy Local, one endpoint on each node (each node's table lists the
# other's with weight 0, for the flows it carries over: docs/flow-sync.md).
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.100.11
  externalTrafficPolicy: Local
  ports:
    - {name: http, port: 80, targetPort: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-local-1
  labels: {kubernetes.io/service-name: web-local}
addressType: IPv4
ports:
  - {name: http, port: 80, protocol: TCP}
endpoints:
  - addresses: [198.18.1.11]
    conditions: {ready: true}
    nodeName: gw-a
  - addresses: [198.18.1.12]
    conditions: {ready: true}
    nodeName: gw-b
";
/// The DNAT VIP (externalTrafficPolicy: Local).
const VIP_LOCAL: &str = "198.18.100.11";

/// One gateway node: its namespace role, name, address, and its processes' names.
struct Node {
    role: &'static str,
    name: &'static str,
    addr: &'static str,
    snat: &'static str,
    addr6: &'static str,
    snat6: &'static str,
}

impl Node {
    fn control(&self) -> String {
        format!("control-{}", self.name)
    }
    fn gateway(&self) -> String {
        if self.role == "gw" { "gateway".into() } else { format!("gateway-{}", self.name) }
    }
}

const A: Node = Node {
    role: "gw",
    name: "gw-a",
    addr: "198.18.0.1",
    snat: "198.18.1.254",
    addr6: "2001:db8::1",
    snat6: "2001:db8:1::fe",
};
const B: Node = Node {
    role: "gw2",
    name: "gw-b",
    addr: NODE_B,
    snat: SNAT_B,
    addr6: "2001:db8::2",
    snat6: "2001:db8:1::fd",
};

/// The sandbox with a second gateway node on the clients' switch.
fn two_nodes() -> Sandbox {
    let backend =
        |name: &str, v4: &str, v6: &str| Backend { v6: Some(v6.into()), ..Backend::http(name, v4, &[80]) };
    let backends = [
        backend("web-1", "198.18.1.11", "2001:db8:1::11"),
        backend("web-2", "198.18.1.12", "2001:db8:1::12"),
    ];
    let mut sb = Sandbox::new(&backends).expect("sandbox");
    let ns = sb.add_namespace(B.role).expect("namespace");
    let sw = sb.ns("sw");
    let port = format!("s-{}", B.role);
    veth((&ns, "gw0"), (&sw, &port), 0).expect("veth");
    must(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"]).expect("switch port");
    // As the sandbox's own gateway port (docs/af-xdp.md pitfall 3): GRO and an XDP program on
    // the switch's end, so that what the gateway transmits from AF_XDP is taken.
    must(&["ip", "netns", "exec", &sw, "ethtool", "-K", &port, "gro", "on"]).expect("gro");
    sb.pass_on_switch_port(B.role).expect("XDP_PASS on the switch port");
    must(&["ip", "-n", &ns, "link", "set", "gw0", "up"]).expect("up");
    must(&["ip", "netns", "exec", &ns, "ethtool", "-K", "gw0", "tx", "off"]).expect("tx off");
    for a in [format!("{}/24", B.addr), format!("{}/24", B.snat)] {
        must(&["ip", "-n", &ns, "addr", "add", &a, "dev", "gw0"]).expect("address");
    }
    for a in [format!("{}/64", B.addr6), format!("{}/64", B.snat6)] {
        must(&["ip", "-n", &ns, "addr", "add", &a, "dev", "gw0", "nodad"]).expect("address");
    }
    sb.set_manifests(&[], &[("l2.yaml", MANIFESTS)]).expect("manifests");
    sb
}

/// The table file of a node.
fn table(sb: &Sandbox, node: &Node) -> String {
    if node.role == "gw" {
        sb.table().to_string_lossy().into_owned()
    } else {
        sb.dir().join(format!("table-{}", node.name)).to_string_lossy().into_owned()
    }
}

/// Starts a node's control (in its namespace: the election speaks on the link) with the
/// election towards `peer`.
fn start_control(sb: &mut Sandbox, node: &Node, peer: &Node, key: &str) {
    let c = bin("sluice-control").to_string_lossy().into_owned();
    let (m, t) = (sb.manifests().to_string_lossy().into_owned(), table(sb, node));
    let (listen, peer) = (format!("{}:7947", node.addr), format!("{}:7947", peer.addr));
    let drain = sb.dir().join(format!("drain-{}", node.name)).to_string_lossy().into_owned();
    let args = [
        c.as_str(),
        "run",
        "--manifests",
        &m,
        "--table",
        &t,
        "--node-address",
        node.addr,
        "--node-address",
        node.addr6,
        "--snat-address",
        node.snat,
        "--snat-address",
        node.snat6,
        "--node-name",
        node.name,
        "--metrics-address",
        "127.0.0.1:0",
        "--interval-ms",
        "200",
        "--l2-listen",
        &listen,
        "--l2-peer",
        &peer,
        "--l2-key",
        key,
        "--l2-interface",
        "gw0",
        // This sandbox's own (never created): not the machine's /run/sluice/drain.
        "--drain-file",
        &drain,
    ];
    sb.spawn(node.role, &node.control(), &args).expect("control");
    // Its first table published (a gateway started before would find no table file).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new(&c).args(["status", "--table", &t]).output().expect("status");
        if String::from_utf8_lossy(&out.stdout).starts_with("generation ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "control {} published nothing:\n{}",
            node.name,
            sb.log(&node.control())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a node's gateway and waits until it runs a table with its XDP program attached; with
/// `sync` (the key file), with the flow sync towards `peer` (docs/flow-sync.md).
fn start_gateway(sb: &mut Sandbox, node: &Node, peer: &Node, sync: Option<&str>) {
    let (listen, to) = (format!("{}:7950", node.addr), format!("{}:7950", peer.addr));
    let sync_args: Vec<&str> = match sync {
        Some(key) => vec![
            "--sync-listen",
            &listen,
            "--sync-peer",
            &to,
            "--sync-key",
            key,
            "--peer-snat-address",
            peer.snat,
        ],
        None => vec![],
    };
    if node.role == "gw" {
        // The sandbox's own gateway, on the sandbox's table.
        sb.start_gateway(&sync_args).unwrap_or_else(|e| panic!("{e}\ncontrol:\n{}", sb.log(&node.control())));
        return;
    }
    let g = bin("sluice-gateway").to_string_lossy().into_owned();
    let t = table(sb, node);
    let journal = sb.dir().join(format!("flows-{}", node.name)).to_string_lossy().into_owned();
    let mut args =
        vec![g.as_str(), "--iface", "gw0", "--table", &t, "--flows", "65536", "--flow-journal", &journal];
    args.extend_from_slice(&sync_args);
    sb.spawn(node.role, &node.gateway(), &args).expect("gateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = |log: &str| log.contains("key(s) set") && log.contains("XDP program attached");
    while !ready(&sb.log(&node.gateway())) {
        assert!(
            Instant::now() < deadline,
            "gateway {} did not start:\n{}\ncontrol:\n{}",
            node.name,
            sb.log(&node.gateway()),
            sb.log(&node.control())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The client's neighbour entry for the VIP: its MAC, if it has one.
fn client_mac_for_vip(sb: &Sandbox) -> Option<String> {
    client_mac_for(sb, VIP)
}

/// The client's neighbour entry for `vip` (either family): its MAC, if it has one.
fn client_mac_for(sb: &Sandbox, vip: &str) -> Option<String> {
    let out = sb.exec("cl", &["ip", "neigh", "show", vip]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).map(str::to_owned)
}

/// Three ARP requests for the VIP from the client: how many replies came back.
fn arp_replies(sb: &Sandbox) -> u64 {
    let probe = bin("sluice-probe").to_string_lossy().into_owned();
    let out = sb.exec("cl", &[&probe, "arp-forge", "c0", "198.18.0.100", VIP, "1"]).expect("probe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "arp_frames")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("sluice-probe: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// A request to the VIP from the client over a new connection: the backend's name.
fn get(sb: &Sandbox) -> Result<String, String> {
    sb.get(&format!("http://{VIP}/"))
}

fn logs(sb: &Sandbox) -> String {
    let mut out: Vec<String> = [A, B]
        .iter()
        .map(|n| {
            format!(
                "--- {} control:\n{}\n--- {} gateway:\n{}\n--- {} keepalived:\n{}",
                n.name,
                sb.log(&n.control()),
                n.name,
                sb.log(&n.gateway()),
                n.name,
                sb.log(&format!("keepalived-{}", n.name))
            )
        })
        .collect();
    for d in ["download-fullnat", "download-dnat"] {
        out.push(format!("--- {d}: {}", sb.log(d)));
    }
    out.join("\n")
}

#[test]
fn one_node_answers_for_the_vip_and_the_other_takes_over_when_it_is_killed() {
    if !require_root("l2 failover") {
        return;
    }
    let mut sb = two_nodes();
    let key = sb.dir().join("l2.key");
    std::fs::write(&key, "a shared key of thirty-two bytes!").expect("key");
    let key = key.to_string_lossy().into_owned();
    for (node, peer) in [(&A, &B), (&B, &A)] {
        start_control(&mut sb, node, peer, &key);
    }
    for (node, peer) in [(&A, &B), (&B, &A)] {
        start_gateway(&mut sb, node, peer, None);
    }
    let macs = [mac_in(&sb.ns(A.role), "gw0"), mac_in(&sb.ns(B.role), "gw0")];
    // The election settles (each node waits 1 s, its gateway serving, before it takes a VIP):
    // then exactly one node answers for the VIP. Three ARP requests get three replies (two
    // nodes answering would be six), and the client learns one node's MAC; the same twice in a
    // row, 300 ms apart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    let active = loop {
        let _ = sb.exec("cl", &["ip", "neigh", "flush", "dev", "c0"]);
        let replies = arp_replies(&sb);
        let answered = get(&sb);
        let mac = client_mac_for_vip(&sb);
        let now = (replies == 3 && answered.is_ok())
            .then(|| macs.iter().position(|m| Some(m) == mac.as_ref()))
            .flatten();
        if now.is_some() && now == last {
            break now.unwrap_or_default();
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "not one node answering: {replies} ARP replies, neighbour {mac:?} (MACs {macs:?}), GET {answered:?}\n{}",
            logs(&sb)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let (active_node, standby_node) = if active == 0 { (&A, &B) } else { (&B, &A) };
    // The elections agree: the node answering is the one that says it holds the VIP.
    let holds = |n: &Node| {
        let log = sb.log(&n.control());
        let last = log.lines().rev().find(|l| l.contains("L2 election: now announcing"));
        last.is_some_and(|l| l.split("no longer").next().is_some_and(|gained| gained.contains(VIP)))
    };
    assert!(holds(active_node) && !holds(standby_node), "the logs disagree with the wire:\n{}", logs(&sb));
    // And so do the tables (`sluice-control status`, the roles the gateways run).
    let status = |n: &Node| {
        let c = bin("sluice-control");
        let out = std::process::Command::new(c)
            .args(["status", "--table", &table(&sb, n)])
            .output()
            .expect("status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (on, off) = (status(active_node), status(standby_node));
    assert!(on.contains(&format!("L2 {VIP}  active here")), "{on}");
    assert!(off.contains(&format!("L2 {VIP}  standby")), "{off}");
    // The IPv6 VIP, held by the same node (it took both at once): the client solicits it and
    // learns the active node's MAC.
    let url6 = format!("http://[{VIP6}]/");
    sb.get(&url6).unwrap_or_else(|e| panic!("GET {url6}: {e}\n{}", logs(&sb)));
    assert_eq!(client_mac_for(&sb, VIP6).as_deref(), Some(macs[active].as_str()), "{}", logs(&sb));
    // Drain the active node (its drain file): it hands the VIP over at once, keeping its gateway
    // up; the client's entry follows. The drain lifted, the VIP stays where it went (holders are
    // sticky): the node to kill is now the other one.
    let drain = sb.dir().join(format!("drain-{}", active_node.name));
    std::fs::write(&drain, "").expect("drain file");
    let drained = Instant::now();
    while client_mac_for_vip(&sb).as_deref() != Some(macs[1 - active].as_str()) {
        assert!(
            drained.elapsed() < TAKEOVER_LIMIT,
            "draining {} moved nothing: the client's entry is {:?}\n{}",
            active_node.name,
            client_mac_for_vip(&sb),
            logs(&sb)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let handed = drained.elapsed();
    std::fs::remove_file(&drain).expect("drain file");
    sb.get(&format!("http://{VIP}/")).unwrap_or_else(|e| panic!("GET after the drain: {e}\n{}", logs(&sb)));
    // Settled again (the undrained node's election waits its settling time): still the other's.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(client_mac_for_vip(&sb).as_deref(), Some(macs[1 - active].as_str()), "{}", logs(&sb));
    println!(
        "L2 drain: {} handed the VIP to {} in {} ms",
        active_node.name,
        standby_node.name,
        handed.as_millis()
    );
    let active = 1 - active;
    let (active_node, standby_node) = (standby_node, active_node);
    // Kill the active node whole: its control (the election) first, then its gateway — the
    // other order would let the control see its gateway die and hand the VIP over at once (in
    // about 0.1 s), which is the gateway-only failure, not a node's death.
    let killed = Instant::now();
    sb.stop(&active_node.control(), rustix::process::Signal::KILL);
    sb.stop(&active_node.gateway(), rustix::process::Signal::KILL);
    // The standby's gratuitous ARP moves the client's entry to its MAC.
    let moved = loop {
        if client_mac_for_vip(&sb).as_deref() == Some(&macs[1 - active]) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < TAKEOVER_LIMIT * 2,
            "the client's neighbour entry for {VIP} is still {:?} (the standby, {}, is {}) after {:?}\n{}",
            client_mac_for_vip(&sb),
            standby_node.name,
            macs[1 - active],
            killed.elapsed(),
            logs(&sb)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // New connections succeed through the new node.
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = loop {
        match get(&sb) {
            Ok(_) => break killed.elapsed().as_millis(),
            Err(e) => {
                assert!(Instant::now() < deadline, "no new connection after the takeover: {e}\n{}", logs(&sb))
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "L2 takeover: the client's neighbour entry moved to {} {} ms after {} was killed; a new connection served {} ms after",
        standby_node.name,
        moved.as_millis(),
        active_node.name,
        served
    );
    assert!(moved < TAKEOVER_LIMIT, "takeover took {moved:?}, over {TAKEOVER_LIMIT:?}\n{}", logs(&sb));
    // The IPv6 VIP's entry moved too (the unsolicited neighbour advertisement), and answers.
    let deadline = Instant::now() + Duration::from_secs(3);
    while client_mac_for(&sb, VIP6).as_deref() != Some(macs[1 - active].as_str()) {
        assert!(
            Instant::now() < deadline,
            "the client's entry for {VIP6} is {:?}\n{}",
            client_mac_for(&sb, VIP6),
            logs(&sb)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sb.get(&url6).unwrap_or_else(|e| panic!("GET {url6} after the takeover: {e}\n{}", logs(&sb)));
    // Only the new node answers now, and the client learns its MAC afresh.
    let _ = sb.exec("cl", &["ip", "neigh", "flush", "dev", "c0"]);
    assert_eq!(arp_replies(&sb), 3, "ARP replies after the takeover\n{}", logs(&sb));
    get(&sb).unwrap_or_else(|e| panic!("GET after a flush: {e}\n{}", logs(&sb)));
    assert_eq!(client_mac_for_vip(&sb).as_deref(), Some(macs[1 - active].as_str()), "{}", logs(&sb));
}

/// keepalived (VRRP) for a node's SNAT address: master on its own node, backup on the other,
/// so that the backends' replies to a dead node's SNAT address (FullNAT) and their default
/// route (DNAT) reach the node that took its flows over (docs/flow-sync.md, "What the network
/// must do"). Returns the VRRP child's pid file.
fn start_keepalived(sb: &mut Sandbox, node: &Node, peer: &Node) -> std::path::PathBuf {
    let dir = sb.dir().to_path_buf();
    let instance = |owner: &Node, id: u8, prio: u8| {
        format!(
            "vrrp_instance snat_{id} {{\n  state BACKUP\n  interface gw0\n  virtual_router_id {id}\n  \
             priority {prio}\n  advert_int 0.2\n  virtual_ipaddress {{\n    {}/24 dev gw0\n  }}\n}}\n",
            owner.snat
        )
    };
    let (mine, theirs) = if node.role == "gw" { (51, 52) } else { (52, 51) };
    let conf = format!(
        "global_defs {{\n  router_id {}\n  vrrp_version 3\n}}\n{}{}",
        node.name,
        instance(node, mine, 150),
        instance(peer, theirs, 100)
    );
    let path = dir.join(format!("keepalived-{}.conf", node.name));
    std::fs::write(&path, conf).expect("keepalived.conf");
    let vrrp_pid = dir.join(format!("keepalived-{}-vrrp.pid", node.name));
    let args = [
        "keepalived".to_owned(),
        "-n".into(),
        "-l".into(),
        "-D".into(),
        "-P".into(),
        "-f".into(),
        path.to_string_lossy().into_owned(),
        "-p".into(),
        dir.join(format!("keepalived-{}.pid", node.name)).to_string_lossy().into_owned(),
        "-r".into(),
        vrrp_pid.to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.spawn(node.role, &format!("keepalived-{}", node.name), &args).expect("keepalived");
    vrrp_pid
}

/// The node holds `vips`, by its control's log (the last "now announcing" line names them all).
fn holds_all(sb: &Sandbox, node: &Node, vips: &[&str]) -> bool {
    sb.log(&node.control())
        .lines()
        .rev()
        .find(|l| l.contains("L2 election: now announcing"))
        .and_then(|l| l.split("no longer").next())
        .is_some_and(|gained| vips.iter().all(|v| gained.contains(v)))
}

/// A 2 MiB download at 256 KiB/s (8 s) through `vip`, from the client, in the background: its
/// log gets `BYTES HTTP_CODE` when it ends (25 s at most: one the takeover broke stalls).
fn start_download(sb: &mut Sandbox, name: &str, vip: &str) {
    let url = format!("http://{vip}/big");
    let args =
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{http_code}", "--max-time", "25", &url];
    sb.spawn("cl", name, &args).expect("curl");
}

/// Established connections survive the takeover (issue 17, item 3): a FullNAT download and a
/// DNAT (externalTrafficPolicy: Local) download through the active node, SIGKILL that node
/// (control, gateway, and the keepalived moving its SNAT address), and both complete through
/// the other, which has the flows from the flow sync.
#[test]
fn established_downloads_survive_the_takeover() {
    if !require_root("l2 failover with established connections") {
        return;
    }
    let mut sb = two_nodes();
    let (l2_key, sync_key) = (sb.dir().join("l2.key"), sb.dir().join("sync.key"));
    std::fs::write(&l2_key, "a shared key of thirty-two bytes!").expect("key");
    std::fs::write(&sync_key, "another key, for the flow sync: 32+ bytes").expect("key");
    for k in [&l2_key, &sync_key] {
        std::fs::set_permissions(k, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    }
    let (l2_key, sync_key) = (l2_key.to_string_lossy().into_owned(), sync_key.to_string_lossy().into_owned());
    // The SNAT addresses are keepalived's: off the interfaces the sandbox put them on.
    must(&["ip", "-n", &sb.ns(A.role), "addr", "del", &format!("{}/24", A.snat), "dev", "gw0"]).expect("del");
    must(&["ip", "-n", &sb.ns(B.role), "addr", "del", &format!("{}/24", B.snat), "dev", "gw0"]).expect("del");
    let vrrp_a = start_keepalived(&mut sb, &A, &B);
    start_keepalived(&mut sb, &B, &A);
    // Node a first, alone, until it holds both VIPs; then node b, which takes nothing (holders
    // are sticky): the active node is known.
    start_control(&mut sb, &A, &B, &l2_key);
    start_gateway(&mut sb, &A, &B, Some(&sync_key));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holds_all(&sb, &A, &[VIP, VIP_LOCAL]) {
        assert!(Instant::now() < deadline, "gw-a did not take both VIPs:\n{}", logs(&sb));
        std::thread::sleep(Duration::from_millis(50));
    }
    start_control(&mut sb, &B, &A, &l2_key);
    start_gateway(&mut sb, &B, &A, Some(&sync_key));
    // Node b's election has settled (1 s of serving) without taking anything, and the SNAT
    // addresses are each on their node.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!sb.log(&B.control()).contains("L2 election: now announcing"), "gw-b took a VIP:\n{}", logs(&sb));
    let mac_a = mac_in(&sb.ns(A.role), "gw0");
    let mac_b = mac_in(&sb.ns(B.role), "gw0");
    for vip in [VIP, VIP_LOCAL] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while sb.get(&format!("http://{vip}/")).is_err() {
            assert!(Instant::now() < deadline, "{vip} does not answer:\n{}", logs(&sb));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(client_mac_for_vip(&sb).as_deref(), Some(mac_a.as_str()));
    start_download(&mut sb, "download-fullnat", VIP);
    start_download(&mut sb, "download-dnat", VIP_LOCAL);
    // 1.5 s in: both flows are established, and synced to node b.
    std::thread::sleep(Duration::from_millis(1500));
    for d in ["download-fullnat", "download-dnat"] {
        assert!(sb.log(d).is_empty(), "{d} ended before the takeover: {}\n{}", sb.log(d), logs(&sb));
    }
    let killed = Instant::now();
    sb.stop(&A.control(), rustix::process::Signal::KILL);
    sb.stop(&A.gateway(), rustix::process::Signal::KILL);
    if let Some(pid) = std::fs::read_to_string(&vrrp_a).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
        // keepalived's VRRP child, which the parent's SIGKILL leaves running.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).expect("pid"),
            rustix::process::Signal::KILL,
        );
    }
    sb.stop(&format!("keepalived-{}", A.name), rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(30);
    for d in ["download-fullnat", "download-dnat"] {
        while sb.log(d).is_empty() {
            assert!(Instant::now() < deadline, "{d} did not end\n{}", logs(&sb));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let took = killed.elapsed();
    let (full, dnat) = (sb.log("download-fullnat"), sb.log("download-dnat"));
    println!(
        "L2 takeover under two downloads: FullNAT {full:?}, DNAT {dnat:?}; both ended {} ms after gw-a was killed",
        took.as_millis()
    );
    assert_eq!(client_mac_for_vip(&sb).as_deref(), Some(mac_b.as_str()), "{}", logs(&sb));
    assert_eq!(full.trim(), "2097152 200", "the FullNAT download\n{}", logs(&sb));
    assert_eq!(dnat.trim(), "2097152 200", "the DNAT download\n{}", logs(&sb));
}
