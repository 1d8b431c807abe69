//! Several gateway nodes behind a BIRD router doing ECMP: the multi-node sandbox of issue 17
//! (items 4 and 5), for `tests/tests/ecmp.rs`, `benches/run ecmp` and the demo.
//!
//! ```text
//!  client ns cl (c0)                 router ns rt (BIRD: eBGP + BFD to every node, ECMP)
//!  198.18.2.10, .11, …    ──br2── r2 198.18.2.1     r0 198.18.0.1   ──br0 (front)──┐
//!  2001:db8:2::10, ::11, …           2001:db8:2::1     2001:db8::1                   │
//!  default via .2.1 / 2001:db8:2::1                                                  │
//!      ┌─────────────────────────────────────────────────────────────────────────────┤
//!   node ns n1 (gw0 198.18.0.11,     node ns n2 (gw0 198.18.0.12,     … n3 (.13, ::13)
//!               2001:db8::11)                    2001:db8::12)
//!   BIRD, control, gateway, keepalived; the gateway on gw0 (front) and gw1 (back)
//!   gw1 198.18.1.231, 2001:db8:1::231 (+ VRRP: SNAT 198.18.1.241, 2001:db8:1::241;
//!                                      backends' router 198.18.1.254, 2001:db8:1::254)
//!      └──────────────── br1 (back) ── backends b0, b1, … 198.18.1.N, 2001:db8:1::N,
//!                                      default via .1.254 / 2001:db8:1::254
//! ```
//! All switches are bridges in one switch namespace `sw`. Every node announces the VIPs its
//! control serves to the router over eBGP (node AS 64512, router AS 64513) with BFD at
//! 100 ms × 3; the router's BIRD merges the equal routes into one multipath route in its kernel
//! (`merge paths on`), and the router's kernel hashes each flow to a node on its L4 tuple
//! (`fib_multipath_hash_policy=1`), so one client's connections spread by port.
//!
//! **Dual-stack** (BGP mode). Every link has an address of each family (IPv4 from
//! 198.18.0.0/15, IPv6 from 2001:db8::/32, numbered alike: 198.18.1.241 and 2001:db8:1::241), and
//! [`MANIFEST`]'s Services have a VIP of each ([`FULLNAT_VIP6`], [`DNAT_VIP6`]). Each family has
//! its own BGP session between router and node (the IPv6 one between their IPv6 front
//! addresses, exporting control's `sluice_vips6`; the router takes the node's global address as
//! next hop, `next hop prefer global`), its own kernel protocol and multipath hash knob on the
//! router (`net.ipv6.fib_multipath_hash_policy=1`, IPv6 forwarding on), and its own VRRP
//! instances on the back side ([`keepalived_conf`]); control is given the node's IPv6 front and
//! SNAT addresses beside the IPv4 ones (`--node-address`, `--snat-address`), the gateway the
//! peers' IPv6 SNAT addresses (`--peer-snat-address`). Flow sync runs over IPv4 and carries
//! both families. IPv6 details: duplicate address detection is off in every namespace (an
//! address under DAD is dead for a second, a VRRP address moved by keepalived included:
//! [`Cluster`]'s `add_ns`), the bridges do no multicast snooping (neighbour solicitations and
//! IPv6 VRRP adverts are multicast: flooded, whatever MLD says), and keepalived moves an IPv6
//! address with unsolicited neighbour advertisements, which update the backends' neighbour
//! entries as gratuitous ARP does.
//!
//! **The back side.** Node k has its own FullNAT source address, 198.18.1.24k (2001:db8:1::24k);
//! the backends send their DNAT replies to a "backends' router", 198.18.1.254
//! (2001:db8:1::254). All are VRRP addresses kept by a keepalived on each node's `gw1` (VRRPv3,
//! adverts every 100 ms): node k is master of its own SNAT addresses, the other nodes back them
//! up; the live node with the lowest number holds the backends' router. When a node dies its
//! addresses move to a live node with a gratuitous ARP or an unsolicited neighbour advertisement
//! within about 0.4 s, and the backends' replies to them follow. The node that takes them over
//! must hold the flows they belong to: flow sync (the gateway's `--sync-*` flags and
//! `--peer-snat-address`), used when the binaries have those flags.
//!
//! **Peers are planned.** A cluster has a capacity (the most nodes it will have); every node is
//! configured with every other slot as a peer (sync peer, peer SNAT address, VRRP instance), so
//! a node added later needs no change on the others — the way an operator plans a node set.
//!
//! **One node name.** All nodes run control with `--node-name sluice-gw`: a Service with
//! `externalTrafficPolicy: Local` (DNAT) goes to the endpoints on "this node", and a flow can
//! keep its backend on another gateway only if every gateway sees the same endpoints. See
//! `docs/several-nodes.md`.
//!
//! **A killed node** loses its processes to SIGKILL and then its links (its switch ports go
//! down): a machine that lost power, which answers nothing any more — not ARP or neighbour
//! solicitations for addresses its keepalived had put on `gw1`, nor BFD. A **drained** node first
//! gets its drain file (control's `--drain-file`: control withdraws its VIPs at once), then its
//! keepalived is stopped (it hands its addresses over at once, VRRP priority 0) and its gateway
//! (SIGTERM).
//!
//! **L2 mode** ([`Mode::L2`], [`Cluster::new_l2`]): no router and no BIRD. The clients sit on
//! the front switch with the nodes' `gw0` and reach the VIPs on-link (`198.18.100.0/24 dev c0`,
//! as [`crate::Sandbox`]'s client does); each node's control runs the L2 election of docs/l2.md
//! (`--l2-listen`, an `--l2-peer` for every other planned node, `--l2-key`, `--l2-interface gw0`)
//! and the manifest gains [`L2_ADVERTISEMENT`]. The election knows a node by its name, so in L2
//! mode node k is `sluice-gw-k` ([`node_name`]) and the manifest's Pods are spread over those
//! names in turn ([`l2_manifest`]): every node has a local endpoint for the DNAT Service
//! (`externalTrafficPolicy: Local` VIPs are announced only from such nodes), and a flow carried
//! over keeps its backend through the flow sync, not through equal tables. The back side is the
//! same as in BGP mode (keepalived, flow sync), both families included, but the clients are
//! IPv4 only ([`Cluster::client_addrs6`] is empty): nothing reaches the IPv6 VIPs in L2 mode.
//!
//! ```text
//!  client ns cl (c0 198.18.0.100, .101, …; 198.18.100.0/24 dev c0)
//!      └── br0 (front) ── gw0 of n1 (198.18.0.11), n2 (.12), … — one node answers ARP per VIP
//! ```
//!
//! Names carry the process id (`sl{pid}x{n}`, as [`crate::Sandbox`]'s), so a sandbox left by a
//! killed run is removed by the next; `Drop` stops every process and deletes every namespace,
//! also on panic. Not hot path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{Backend, COUNTER, NODE_NAME, Proc, bin, fast_path_from_env, must, remove_stale, run, veth};

/// The router's address on the front switch (the nodes' BGP neighbour and default route).
pub const ROUTER: &str = "198.18.0.1";
/// The router's IPv6 address on the front switch (the nodes' IPv6 BGP neighbour and default
/// route; BGP mode).
pub const ROUTER6: &str = "2001:db8::1";
/// The router's address on the clients' link (their default route).
pub const ROUTER_CLIENTS: &str = "198.18.2.1";
/// The router's IPv6 address on the clients' link (their IPv6 default route).
pub const ROUTER_CLIENTS6: &str = "2001:db8:2::1";
/// The backends' default route: a VRRP address, held by the live node with the lowest number.
pub const BACKENDS_ROUTER: &str = "198.18.1.254";
/// The backends' IPv6 default route: a VRRP address of its own VRRP instance, held by the live
/// node with the lowest number as [`BACKENDS_ROUTER`] is.
pub const BACKENDS_ROUTER6: &str = "2001:db8:1::254";
/// The nodes' AS.
pub const NODE_ASN: u32 = 64512;
/// The router's AS.
pub const ROUTER_ASN: u32 = 64513;
/// The UDP port of the L2 election on each node's front address (L2 mode).
pub const L2_PORT: u16 = 7947;
/// The UDP port of flow sync on each node's front address.
pub const SYNC_PORT: u16 = 7946;
/// The most nodes a cluster can plan for (addresses are numbered by node, 1 to 9).
pub const MAX_NODES: usize = 9;
/// The FullNAT LoadBalancer VIP of [`MANIFEST`] (port 80).
pub const FULLNAT_VIP: &str = "198.18.100.10";
/// The DNAT LoadBalancer VIP of [`MANIFEST`] (`externalTrafficPolicy: Local`, port 80).
pub const DNAT_VIP: &str = "198.18.100.11";
/// The IPv6 FullNAT LoadBalancer VIP of [`MANIFEST`] (the Service of [`FULLNAT_VIP`]: dual-stack).
pub const FULLNAT_VIP6: &str = "2001:db8:100::10";
/// The IPv6 DNAT LoadBalancer VIP of [`MANIFEST`] (the Service of [`DNAT_VIP`]: dual-stack).
pub const DNAT_VIP6: &str = "2001:db8:100::11";

// IPv6 addresses are numbered as the IPv4 ones, the decimal number written as the last group
// (198.18.1.241 and 2001:db8:1::241): easier to read side by side than the same number in hex.

/// Node `k`'s front address (BGP, BFD, flow sync; `--node-address`).
pub fn node_front(k: usize) -> String {
    format!("198.18.0.{}", 10 + k)
}

/// Node `k`'s IPv6 front address (its IPv6 BGP session; `--node-address`).
pub fn node_front6(k: usize) -> String {
    format!("2001:db8::{}", 10 + k)
}

/// Node `k`'s own address on the back switch (VRRP adverts come from it).
pub fn node_back(k: usize) -> String {
    format!("198.18.1.{}", 230 + k)
}

/// Node `k`'s own IPv6 address on the back switch (the on-link route to the backends' /64;
/// VRRPv3's IPv6 adverts come from the link-local address).
pub fn node_back6(k: usize) -> String {
    format!("2001:db8:1::{}", 230 + k)
}

/// Node `k`'s FullNAT source address (a VRRP address: node k is its master).
pub fn node_snat(k: usize) -> String {
    format!("198.18.1.{}", 240 + k)
}

/// Node `k`'s IPv6 FullNAT source address (a VRRP address: node k is its master).
pub fn node_snat6(k: usize) -> String {
    format!("2001:db8:1::{}", 240 + k)
}

/// The `i`th client address (0-based), on the clients' link (BGP mode).
pub fn client_addr(i: usize) -> String {
    format!("198.18.2.{}", 10 + i)
}

/// The `i`th IPv6 client address (0-based), on the clients' link (BGP mode).
pub fn client_addr6(i: usize) -> String {
    format!("2001:db8:2::{}", 10 + i)
}

/// The `i`th client address (0-based) in L2 mode, on the front switch.
pub fn l2_client_addr(i: usize) -> String {
    format!("198.18.0.{}", 100 + i)
}

/// Node `k`'s name (`--node-name`): [`NODE_NAME`] for every node in BGP mode, `sluice-gw-k` in
/// L2 mode, where the election knows a node by its name.
pub fn node_name(mode: Mode, k: usize) -> String {
    match mode {
        Mode::Bgp => NODE_NAME.to_owned(),
        Mode::L2 => format!("{NODE_NAME}-{k}"),
    }
}

/// How the nodes announce the VIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Over eBGP to the router's BIRD, which spreads flows over the nodes with ECMP.
    Bgp,
    /// On the clients' segment: one node per VIP answers ARP, elected by the controls
    /// (docs/l2.md); no router.
    L2,
}

impl Mode {
    /// Its name in flags and tables: `bgp`, `l2`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bgp => "bgp",
            Mode::L2 => "l2",
        }
    }

    /// The most client addresses a cluster of this mode can have, all valid host addresses of
    /// their /24: [`client_addr`] 198.18.2.10–209 (BGP), [`l2_client_addr`] 198.18.0.100–254
    /// (L2; .255 is the broadcast address).
    pub fn max_clients(self) -> usize {
        match self {
            Mode::Bgp => 200,
            Mode::L2 => 155,
        }
    }
}

/// The L2Advertisement of L2 mode: every VIP of the pool `edge` ([`MANIFEST`]'s) in L2 mode, on
/// any node, on the interface control names with `--l2-interface`.
pub const L2_ADVERTISEMENT: &str = r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: edge-l2, namespace: sluice-system}
spec:
  ipAddressPools: [edge]
  interfaces: [gw0]
"#;

/// `manifest` for L2 mode with `capacity` nodes: each Pod's `nodeName: sluice-gw` becomes
/// `sluice-gw-1`, `sluice-gw-2`, … in turn ([`node_name`]), and [`L2_ADVERTISEMENT`] is added.
pub fn l2_manifest(manifest: &str, capacity: usize) -> String {
    let from = format!("nodeName: {NODE_NAME},");
    let mut out = String::new();
    let mut n = 0;
    for line in manifest.lines() {
        if line.contains(&from) {
            let to = format!("nodeName: {},", node_name(Mode::L2, n % capacity.max(1) + 1));
            out.push_str(&line.replace(&from, &to));
            n += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str("---");
    out.push_str(L2_ADVERTISEMENT);
    out
}

/// The backends [`MANIFEST`] names: four nginx hosts, 198.18.1.1–4 and 2001:db8:1::1–4, ports
/// 8080 (the DNAT Service's) and 8081 (the FullNAT one's). Two ports, so that a FullNAT
/// reply is never caught by the steering of DNAT replies (keyed by backend address and port):
/// the replies to a dead node's SNAT address reach a live node's workers only through
/// `--peer-snat-address`, which the kill tests thereby cover.
pub fn backends() -> Vec<Backend> {
    (1..=4)
        .map(|i| Backend {
            v6: Some(format!("2001:db8:1::{i}")),
            ..Backend::http(&format!("web-{i}"), &format!("198.18.1.{i}"), &[8080, 8081])
        })
        .collect()
}

/// The Services every node serves: `web` on [`FULLNAT_VIP`] and [`FULLNAT_VIP6`] (FullNAT: the
/// Cluster traffic policy) and `web-local` on [`DNAT_VIP`] and [`DNAT_VIP6`] (DNAT:
/// `externalTrafficPolicy: Local`), both dual-stack (`RequireDualStack`, an address of each
/// family asked for with `metallb.io/loadBalancerIPs`), over the four Pods of [`backends`] (an
/// address of each family) with Maglev, the default scheduler, so every node picks the same
/// backend for a flow.
pub const MANIFEST: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: sluice-system}
spec:
  addresses: [198.18.100.10-198.18.100.19, "2001:db8:100::10-2001:db8:100::1f"]
---
apiVersion: v1
kind: Service
metadata: {name: web, annotations: {metallb.io/loadBalancerIPs: "198.18.100.10,2001:db8:100::10"}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8081}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local, annotations: {metallb.io/loadBalancerIPs: "198.18.100.11,2001:db8:100::11"}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {nodeName: sluice-gw, containers: [{name: app, image: registry.example/web:1, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.1.1, podIPs: [{ip: 198.18.1.1}, {ip: "2001:db8:1::1"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec: {nodeName: sluice-gw, containers: [{name: app, image: registry.example/web:1, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.1.2, podIPs: [{ip: 198.18.1.2}, {ip: "2001:db8:1::2"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-3, labels: {app: web}}
spec: {nodeName: sluice-gw, containers: [{name: app, image: registry.example/web:1, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.1.3, podIPs: [{ip: 198.18.1.3}, {ip: "2001:db8:1::3"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-4, labels: {app: web}}
spec: {nodeName: sluice-gw, containers: [{name: app, image: registry.example/web:1, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.1.4, podIPs: [{ip: 198.18.1.4}, {ip: "2001:db8:1::4"}], conditions: [{type: Ready, status: "True"}]}
"#;

/// What a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Its BIRD (BGP mode), control, gateway and keepalived run.
    Up,
    /// Its drain file written, so control withdraws its routes (BGP) or hands its VIPs over
    /// (L2); its keepalived and gateway stopped ([`Cluster::drain`]); BIRD (BGP mode,
    /// announcing nothing) and control run.
    Drained,
    /// Every process killed and its links down ([`Cluster::kill`]).
    Killed,
}

/// A drain's timings ([`Cluster::drain`]).
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// From the drain's start until the router's kernel routed nothing over the node (BGP), or
    /// until the node's table held no VIP active (L2).
    pub withdrawn: Duration,
    /// From the gateway's SIGTERM to its exit.
    pub gateway_exit: Duration,
    /// The whole drain.
    pub total: Duration,
}

/// Which flow-sync flags the binaries have (the cluster uses what is there, so the same tests
/// ran before flow sync and after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFlags {
    /// The gateway's `--sync-listen`, `--sync-peer`, `--sync-key`.
    pub gateway: bool,
    /// The gateway's `--peer-snat-address` (the peers' FullNAT sources, steered to its workers
    /// once VRRP moves one here).
    pub peer_snat: bool,
}

#[derive(Debug)]
struct Node {
    state: NodeState,
    metrics: Option<String>,
}

/// A router, clients, backends and gateway nodes. See the module documentation.
pub struct Cluster {
    id: String,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    backends: Vec<Backend>,
    manifests: PathBuf,
    capacity: usize,
    clients: usize,
    nodes: Vec<Node>,
    sync: SyncFlags,
    mode: Mode,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// Whether `program --help` (with `sub` first when given) mentions `flag`.
fn has_flag(program: &Path, sub: Option<&str>, flag: &str) -> bool {
    let mut c = Command::new(program);
    if let Some(s) = sub {
        c.arg(s);
    }
    c.arg("--help")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

impl Cluster {
    /// Builds the switches, the router (with its BIRD), `clients` client addresses in one client
    /// namespace and the backends (nginx on each), and writes `manifest` for the nodes'
    /// controls. No node yet: [`Cluster::add_node`]. `capacity` is the most nodes the cluster
    /// will have (every node's peers).
    pub fn new(backends: &[Backend], manifest: &str, capacity: usize, clients: usize) -> io::Result<Cluster> {
        Cluster::with_mode(Mode::Bgp, backends, manifest, capacity, clients)
    }

    /// As [`Cluster::new`], in L2 mode (see the module documentation): no router, the clients on
    /// the nodes' front switch, the controls electing one node per VIP. `manifest` is written as
    /// [`l2_manifest`] makes it.
    pub fn new_l2(
        backends: &[Backend],
        manifest: &str,
        capacity: usize,
        clients: usize,
    ) -> io::Result<Cluster> {
        Cluster::with_mode(Mode::L2, backends, manifest, capacity, clients)
    }

    /// [`Cluster::new`] or [`Cluster::new_l2`], by `mode`.
    pub fn with_mode(
        mode: Mode,
        backends: &[Backend],
        manifest: &str,
        capacity: usize,
        clients: usize,
    ) -> io::Result<Cluster> {
        let max_clients = mode.max_clients();
        if !(1..=MAX_NODES).contains(&capacity) || !(1..=max_clients).contains(&clients) {
            return Err(io::Error::other(format!(
                "a cluster of 1 to {MAX_NODES} nodes and 1 to {max_clients} clients in {} mode (asked: {capacity}, \
                 {clients})",
                mode.name()
            )));
        }
        remove_stale();
        let id = format!("sl{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new().prefix(&format!("{id}-")).tempdir()?;
        let manifests = dir.path().join("manifests");
        fs::create_dir(&manifests)?;
        match mode {
            Mode::Bgp => fs::write(manifests.join("cluster.yaml"), manifest)?,
            Mode::L2 => fs::write(manifests.join("cluster.yaml"), l2_manifest(manifest, capacity))?,
        }
        let (gateway, control) = (bin("sluice-gateway"), bin("sluice-control"));
        let sync = SyncFlags {
            gateway: has_flag(&gateway, None, "--sync-listen"),
            peer_snat: has_flag(&gateway, None, "--peer-snat-address"),
        };
        let needs = match mode {
            Mode::Bgp => "--bird-include",
            Mode::L2 => "--l2-listen",
        };
        if !has_flag(&control, Some("run"), needs) {
            return Err(io::Error::other(format!("{} has no {needs}", control.display())));
        }
        let mut c = Cluster {
            id,
            dir,
            namespaces: Vec::new(),
            procs: Vec::new(),
            backends: backends.to_vec(),
            manifests,
            capacity,
            clients,
            nodes: Vec::new(),
            sync,
            mode,
        };
        c.build()?;
        Ok(c)
    }

    /// How the nodes announce the VIPs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The flow-sync flags the binaries have.
    pub fn sync_flags(&self) -> SyncFlags {
        self.sync
    }

    /// The namespace of a role: `sw`, `rt` (BGP mode), `cl`, a node `n1`, `n2`, … or a backend `b0`, `b1`, …
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.id)
    }

    /// The number of nodes added so far (killed and drained ones included): node numbers are
    /// 1 to this.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Node `k`'s state.
    pub fn state(&self, k: usize) -> NodeState {
        self.nodes[k - 1].state
    }

    /// The client addresses (all in namespace `cl`).
    pub fn client_addrs(&self) -> Vec<String> {
        match self.mode {
            Mode::Bgp => (0..self.clients).map(client_addr).collect(),
            Mode::L2 => (0..self.clients).map(l2_client_addr).collect(),
        }
    }

    /// The IPv6 client addresses (in namespace `cl`, beside [`Cluster::client_addrs`]); none in
    /// L2 mode, whose clients are IPv4 only.
    pub fn client_addrs6(&self) -> Vec<String> {
        match self.mode {
            Mode::Bgp => (0..self.clients).map(client_addr6).collect(),
            Mode::L2 => Vec::new(),
        }
    }

    /// A namespace, its loopback up and IPv6 duplicate address detection off for every interface
    /// made in it afterwards (`default.accept_dad`, copied at creation; `all` as well, since the
    /// kernel skips DAD only when both say so): an address under DAD is "tentative" for a second,
    /// and neither answers neighbour solicitations nor serves as a source — a VRRP address moved
    /// by keepalived, or the link-local address VRRPv3 sends its IPv6 adverts from, would be
    /// dead for that second. Addresses added by hand say `nodad` too.
    fn add_ns(&mut self, role: &str) -> io::Result<String> {
        let ns = self.ns(role);
        must(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        for knob in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
            must(&["ip", "netns", "exec", &ns, "sysctl", "-qw", knob])?;
        }
        Ok(ns)
    }

    /// A veth from `ifname` in `ns` to port `port` of `bridge`, both ends up, hosts' checksums
    /// full (pitfall 1 of docs/af-xdp.md). A gateway's port (`gateway`) gets GRO and an XDP_PASS
    /// program, without which the frames its XDP program transmits stay in the ring (pitfall 3).
    fn wire(&mut self, ns: &str, ifname: &str, bridge: &str, port: &str, gateway: bool) -> io::Result<()> {
        let sw = self.ns("sw");
        veth((ns, ifname), (&sw, port), 1)?;
        must(&["ip", "-n", &sw, "link", "set", port, "master", bridge, "up"])?;
        if gateway {
            // No unknown unicast to a gateway: when a node dies the switch forgets its MAC and
            // floods the frames still sent to it, and a veth hands frames for any MAC to the
            // gateway's XDP program (a NIC's MAC filter would have dropped them) — another
            // node would serve the dead one's traffic, which no real network does.
            must(&["bridge", "-n", &sw, "link", "set", "dev", port, "flood", "off"])?;
            must(&["ip", "netns", "exec", &sw, "ethtool", "-K", port, "gro", "on"])?;
            let obj = self.dir.path().join("pass.o");
            if !obj.exists() {
                fs::write(&obj, crate::PASS_PROGRAM)?;
            }
            let obj = obj.to_string_lossy().into_owned();
            must(&["ip", "-n", &sw, "link", "set", "dev", port, "xdpdrv", "obj", &obj, "sec", "xdp"])?;
        }
        must(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        must(&["ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off"])?;
        Ok(())
    }

    fn build(&mut self) -> io::Result<()> {
        let sw = self.add_ns("sw")?;
        for br in ["br0", "br1", "br2"] {
            // No multicast snooping: IPv6 neighbour solicitations and VRRPv3's IPv6 adverts go
            // to multicast groups. A snooping bridge floods them only while it knows no MLD
            // querier on the segment, and forwards a group only where it saw a report once it
            // does: the switches here flood multicast as a plain switch does, whatever is heard.
            must(&["ip", "-n", &sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0"])?;
            must(&["ip", "-n", &sw, "link", "set", br, "up"])?;
        }
        if self.mode == Mode::Bgp {
            self.build_router()?;
        } else {
            // The clients on the front switch, the VIPs on-link.
            let cl = self.add_ns("cl")?;
            self.wire(&cl, "c0", "br0", "s-cl", false)?;
            for a in self.client_addrs() {
                must(&["ip", "-n", &cl, "addr", "add", &format!("{a}/24"), "dev", "c0"])?;
            }
            must(&["ip", "-n", &cl, "route", "add", "198.18.100.0/24", "dev", "c0"])?;
        }
        self.build_backends()
    }

    /// The router, with its BIRD, and the clients behind it (BGP mode).
    fn build_router(&mut self) -> io::Result<()> {
        let rt = self.add_ns("rt")?;
        self.wire(&rt, "r0", "br0", "s-r0", false)?;
        self.wire(&rt, "r2", "br2", "s-r2", false)?;
        must(&["ip", "-n", &rt, "addr", "add", &format!("{ROUTER}/24"), "dev", "r0"])?;
        must(&["ip", "-n", &rt, "addr", "add", &format!("{ROUTER_CLIENTS}/24"), "dev", "r2"])?;
        must(&["ip", "-n", &rt, "addr", "add", &format!("{ROUTER6}/64"), "dev", "r0", "nodad"])?;
        must(&["ip", "-n", &rt, "addr", "add", &format!("{ROUTER_CLIENTS6}/64"), "dev", "r2", "nodad"])?;
        // Forwarding, and the multipath hash on the L4 tuple: a client's connections spread. Each
        // family has its own knobs.
        for knob in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ] {
            must(&["ip", "netns", "exec", &rt, "sysctl", "-qw", knob])?;
        }
        let cl = self.add_ns("cl")?;
        self.wire(&cl, "c0", "br2", "s-cl", false)?;
        for a in self.client_addrs() {
            must(&["ip", "-n", &cl, "addr", "add", &format!("{a}/24"), "dev", "c0"])?;
        }
        for a in self.client_addrs6() {
            must(&["ip", "-n", &cl, "addr", "add", &format!("{a}/64"), "dev", "c0", "nodad"])?;
        }
        must(&["ip", "-n", &cl, "route", "add", "default", "via", ROUTER_CLIENTS])?;
        must(&["ip", "-n", &cl, "-6", "route", "add", "default", "via", ROUTER_CLIENTS6])?;
        // The router's BIRD: a session per planned node, ECMP into the kernel.
        let conf = self.dir.path().join("rt-bird.conf");
        fs::write(&conf, router_bird_conf(self.capacity))?;
        self.start_bird("rt", &conf)
    }

    /// The backends on the back switch, nginx on each, answering.
    fn build_backends(&mut self) -> io::Result<()> {
        for i in 0..self.backends.len() {
            let b = self.backends[i].clone();
            let role = format!("b{i}");
            let ns = self.add_ns(&role)?;
            self.wire(&ns, "e0", "br1", &format!("s-{role}"), false)?;
            must(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", b.v4), "dev", "e0"])?;
            must(&["ip", "-n", &ns, "route", "add", "default", "via", BACKENDS_ROUTER])?;
            if let Some(v6) = &b.v6 {
                must(&["ip", "-n", &ns, "addr", "add", &format!("{v6}/64"), "dev", "e0", "nodad"])?;
                must(&["ip", "-n", &ns, "-6", "route", "add", "default", "via", BACKENDS_ROUTER6])?;
            }
            if !b.tcp.is_empty() {
                let conf =
                    crate::write_nginx(&self.dir.path().join(format!("nginx-{}", b.name)), &b.name, &b.tcp)?;
                self.spawn(&role, &format!("nginx-{}", b.name), &["nginx", "-c", &conf.to_string_lossy()])?;
            }
        }
        // The servers listen before anything is asked of them.
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, b) in self.backends.clone().iter().enumerate() {
            for p in &b.tcp {
                let probe = format!("http://{}:{p}/", b.v4);
                while self
                    .exec(&format!("b{i}"), &["curl", "-s", "-m", "1", &probe])
                    .map_or(true, |o| !o.status.success())
                {
                    if Instant::now() > deadline {
                        return Err(io::Error::other(format!(
                            "nginx of {} does not answer on {p}:\n{}",
                            b.name,
                            self.log(&format!("nginx-{}", b.name))
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }

    /// Starts BIRD in `role`'s namespace on `conf` (control socket `ROLE-bird.ctl`).
    fn start_bird(&mut self, role: &str, conf: &Path) -> io::Result<()> {
        let check = run(&["bird", "-p", "-c", &conf.to_string_lossy()])?;
        if !check.status.success() {
            return Err(io::Error::other(format!(
                "BIRD refuses {}: {}{}",
                conf.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            )));
        }
        let sock = self.bird_socket(role).to_string_lossy().into_owned();
        let pid = self.dir.path().join(format!("{role}-bird.pid")).to_string_lossy().into_owned();
        let conf = conf.to_string_lossy().into_owned();
        self.spawn(role, &format!("{role}-bird"), &["bird", "-f", "-c", &conf, "-s", &sock, "-P", &pid])?;
        Ok(())
    }

    /// The control socket of `role`'s BIRD (`rt`, `n1`, …).
    fn bird_socket(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}-bird.ctl"))
    }

    /// `birdc` on `role`'s BIRD: its answer (empty if it cannot be asked).
    fn birdc(&self, role: &str, args: &[&str]) -> String {
        let sock = self.bird_socket(role).to_string_lossy().into_owned();
        let mut full = vec!["birdc", "-s", &sock];
        full.extend_from_slice(args);
        self.exec(role, &full).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// The table file of node `k`.
    fn table(&self, k: usize) -> PathBuf {
        PathBuf::from(format!("/dev/shm/sluice-{}-n{k}", self.id))
    }

    /// Adds the next node (numbered from 1), starts its keepalived, BIRD, control and gateway,
    /// and waits until its gateway serves (and, with flow sync, has the peers' flows). It
    /// announces its VIPs soon after: [`Cluster::wait_next_hops`]. Returns its number.
    pub fn add_node(&mut self) -> io::Result<usize> {
        let k = self.nodes.len() + 1;
        if k > self.capacity {
            return Err(io::Error::other(format!("the cluster was planned for {} nodes", self.capacity)));
        }
        self.nodes.push(Node { state: NodeState::Up, metrics: None });
        let role = format!("n{k}");
        let ns = self.add_ns(&role)?;
        self.wire(&ns, "gw0", "br0", &format!("s-{role}"), true)?;
        self.wire(&ns, "gw1", "br1", &format!("s-{role}b"), true)?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", node_front(k)), "dev", "gw0"])?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", node_back(k)), "dev", "gw1"])?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{}/64", node_front6(k)), "dev", "gw0", "nodad"])?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{}/64", node_back6(k)), "dev", "gw1", "nodad"])?;
        if self.mode == Mode::Bgp {
            // The gateway takes its routes from the kernel's tables: its replies to the clients
            // go to these.
            must(&["ip", "-n", &ns, "route", "add", "default", "via", ROUTER])?;
            must(&["ip", "-n", &ns, "-6", "route", "add", "default", "via", ROUTER6])?;
        }
        // keepalived: the SNAT addresses and the backends' router on gw1.
        let ka = self.dir.path().join(format!("{role}-keepalived.conf"));
        fs::write(&ka, keepalived_conf(k, self.capacity))?;
        let (pid, vrrp_pid) = (self.pidfile(&role, "keepalived"), self.pidfile(&role, "keepalived-vrrp"));
        let check = self.exec(&role, &["keepalived", "-t", "-f", &ka.to_string_lossy()])?;
        if !check.status.success() {
            return Err(io::Error::other(format!(
                "keepalived refuses {}: {}",
                ka.display(),
                String::from_utf8_lossy(&check.stderr)
            )));
        }
        self.spawn(
            &role,
            &format!("{role}-keepalived"),
            &[
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-G",
                "-P",
                "-f",
                &ka.to_string_lossy(),
                "-p",
                &pid.to_string_lossy(),
                "-r",
                &vrrp_pid.to_string_lossy(),
            ],
        )?;
        // BGP: BIRD, with control's include (empty until control writes it).
        let include = self.dir.path().join(format!("{role}-bird-sluice.conf"));
        if self.mode == Mode::Bgp {
            fs::write(&include, "")?;
            let conf = self.dir.path().join(format!("{role}-bird.conf"));
            fs::write(&conf, node_bird_conf(k, &include))?;
            self.start_bird(&role, &conf)?;
        }
        self.start_control(k, &include)?;
        self.start_gateway(k)?;
        Ok(k)
    }

    fn pidfile(&self, role: &str, what: &str) -> PathBuf {
        self.dir.path().join(format!("{role}-{what}.pid"))
    }

    /// Starts node `k`'s control (in the node's namespace) and waits for its first publication
    /// and its metrics address. BGP mode: with BIRD's `include` and socket; L2 mode: with the
    /// election towards every other planned node.
    fn start_control(&mut self, k: usize, include: &Path) -> io::Result<()> {
        let role = format!("n{k}");
        let control = bin("sluice-control").to_string_lossy().into_owned();
        let (m, t) =
            (self.manifests.to_string_lossy().into_owned(), self.table(k).to_string_lossy().into_owned());
        let (front, snat) = (node_front(k), node_snat(k));
        let (front6, snat6) = (node_front6(k), node_snat6(k));
        let (inc, sock) =
            (include.to_string_lossy().into_owned(), self.bird_socket(&role).to_string_lossy().into_owned());
        let drain = self.drain_file(k).to_string_lossy().into_owned();
        let name = node_name(self.mode, k);
        let mut args: Vec<String> = [
            control.as_str(),
            "run",
            "--drain-file",
            &drain,
            "--manifests",
            &m,
            "--table",
            &t,
            "--node-name",
            &name,
            "--node-address",
            &front,
            "--node-address",
            &front6,
            "--snat-address",
            &snat,
            "--snat-address",
            &snat6,
            "--metrics-address",
            "127.0.0.1:0",
            "--interval-ms",
            "200",
        ]
        .map(String::from)
        .to_vec();
        match self.mode {
            Mode::Bgp => args.extend(["--bird-include".into(), inc, "--bird-socket".into(), sock]),
            Mode::L2 => {
                let key = self.key("l2.key")?.to_string_lossy().into_owned();
                args.extend(["--l2-listen".into(), format!("{front}:{L2_PORT}")]);
                for j in (1..=self.capacity).filter(|&j| j != k) {
                    args.extend(["--l2-peer".into(), format!("{}:{L2_PORT}", node_front(j))]);
                }
                args.extend(["--l2-key".into(), key, "--l2-interface".into(), "gw0".into()]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("{role}-control");
        self.spawn(&role, &name, &args)?;
        // The first publication, then the metrics address (a log line after the time, level and
        // target: `metrics: http://127.0.0.1:PORT/metrics`).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log(&name);
            let metrics = log
                .lines()
                .find_map(|l| l.split_once("metrics: http://"))
                .map(|(_, a)| format!("http://{a}"));
            if metrics.is_some() && crate::generation_of(&self.table(k)).is_some_and(|g| g >= 1) {
                self.nodes[k - 1].metrics = metrics;
                return Ok(());
            }
            if Instant::now() > deadline || self.exited(&name) {
                return Err(io::Error::other(format!("control of node {k} did not start:\n{log}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process `name` has exited.
    fn exited(&mut self, name: &str) -> bool {
        self.procs.iter_mut().any(|p| p.name == name && matches!(p.child.try_wait(), Ok(Some(_))))
    }

    /// Starts node `k`'s gateway on gw0 (front) and gw1 (back) and waits until its XDP program is
    /// attached and, with flow sync, until it says it has the peers' flows (`flow sync: ready`).
    fn start_gateway(&mut self, k: usize) -> io::Result<()> {
        let role = format!("n{k}");
        let g = bin("sluice-gateway").to_string_lossy().into_owned();
        let t = self.table(k).to_string_lossy().into_owned();
        let journal = format!("{t}-flows");
        let mut args: Vec<String> =
            [g.as_str(), "--iface", "gw0", "--backend-iface", "gw1", "--table", &t, "--flows", "65536"]
                .map(String::from)
                .to_vec();
        args.extend(["--flow-journal".into(), journal]);
        if let Some(f) = fast_path_from_env() {
            args.extend(["--fast-path".into(), f.into()]);
        }
        if self.sync.gateway {
            let key = self.key("sync.key")?;
            args.extend(["--sync-listen".into(), format!("{}:{SYNC_PORT}", node_front(k))]);
            for j in (1..=self.capacity).filter(|&j| j != k) {
                args.extend(["--sync-peer".into(), format!("{}:{SYNC_PORT}", node_front(j))]);
            }
            args.extend(["--sync-key".into(), key.to_string_lossy().into_owned()]);
            if self.sync.peer_snat {
                for j in (1..=self.capacity).filter(|&j| j != k) {
                    args.extend(["--peer-snat-address".into(), node_snat(j)]);
                    args.extend(["--peer-snat-address".into(), node_snat6(j)]);
                }
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("{role}-gateway");
        self.spawn(&role, &name, &args)?;
        let sync = self.sync.gateway;
        // The line of a successful sync of the XDP map, then the program's attachment; with flow
        // sync, the peers' flows received.
        let ready = |log: &str| {
            log.contains("key(s) set")
                && log.contains("XDP program attached")
                && (!sync || log.contains("flow sync: ready"))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&self.log(&name)) {
            if Instant::now() > deadline || self.exited(&name) {
                return Err(io::Error::other(format!(
                    "gateway of node {k} did not start:\n{}",
                    self.log(&name)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A secret shared by the nodes (64 random bytes: `sync.key` for the flow sync, `l2.key` for
    /// the L2 election), made at first use in the cluster's directory.
    fn key(&self, name: &str) -> io::Result<PathBuf> {
        let path = self.dir.path().join(name);
        if !path.exists() {
            let mut key = [0u8; 64];
            io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut key)?;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            io::Write::write_all(&mut f, &key)?;
        }
        Ok(path)
    }

    /// The process id of node `k`'s `what` (`gateway`, `control`, `bird`, `keepalived`), if it
    /// runs.
    pub fn pid(&self, k: usize, what: &str) -> Option<u32> {
        let name = format!("n{k}-{what}");
        self.procs.iter().find(|p| p.name == name).map(|p| p.child.id())
    }

    /// Kills node `k` whole, as a machine that loses its power: its switch ports go down (no
    /// frame of it leaves any more: not the FIN of its BGP session, not a VRRP advert of priority
    /// 0), then SIGKILL to every process it ran (keepalived's VRRP child first). Returns the
    /// moment its links went down.
    pub fn kill(&mut self, k: usize) -> io::Result<Instant> {
        let role = format!("n{k}");
        let prefix = format!("{role}-");
        let vrrp = fs::read_to_string(self.pidfile(&role, "keepalived-vrrp")).unwrap_or_default();
        let sw = self.ns("sw");
        let t0 = Instant::now();
        for port in [format!("s-{role}"), format!("s-{role}b")] {
            must(&["ip", "-n", &sw, "link", "set", &port, "down"])?;
        }
        if let Some(pid) = vrrp.trim().parse::<i32>().ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        for p in self.procs.iter().filter(|p| p.name.starts_with(&prefix)) {
            if let Some(pid) = rustix::process::Pid::from_raw(p.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let mut i = 0;
        while i < self.procs.len() {
            if self.procs[i].name.starts_with(&prefix) {
                let mut p = self.procs.remove(i);
                crate::stop_child(&mut p.child, rustix::process::Signal::KILL);
            } else {
                i += 1;
            }
        }
        self.nodes[k - 1].state = NodeState::Killed;
        Ok(t0)
    }

    /// Node `k`'s drain file (control's `--drain-file`): while it exists, control announces
    /// nothing from the node.
    fn drain_file(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("n{k}.drain"))
    }

    /// Drains node `k` as an operator would: creates its drain file, and control withdraws
    /// the node's VIPs (BGP) or hands them to another node (L2) while its gateway still carries
    /// what reaches it; once the router's kernel routes nothing over the node (BGP) or the
    /// node's table holds no VIP active (L2), its keepalived is stopped (SIGTERM: it hands its
    /// addresses to the backups at once, with priority 0), then its gateway (SIGTERM). See
    /// [`Drain`].
    pub fn drain(&mut self, k: usize) -> io::Result<Drain> {
        let role = format!("n{k}");
        let t0 = Instant::now();
        std::fs::write(self.drain_file(k), b"")?;
        let (via, via6) = (format!("via {} ", node_front(k)), format!("via {} ", node_front6(k)));
        loop {
            let (done, what) = match self.mode {
                Mode::Bgp => {
                    let routes: String = ["-4", "-6"]
                        .iter()
                        .map(|f| {
                            self.exec("rt", &["ip", f, "route", "show"])
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                                .unwrap_or_default()
                        })
                        .collect();
                    (
                        !routes.contains(&via) && !routes.contains(&via6),
                        format!("the router still routes over node {k}:\n{routes}"),
                    )
                }
                Mode::L2 => {
                    let held = self.active_vips(k);
                    (held.is_empty(), format!("node {k} still holds {held:?}"))
                }
            };
            if done {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(io::Error::other(format!(
                    "5 s after node {k}'s drain file appeared {what}\n{}",
                    self.log(&format!("{role}-control"))
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let withdrawn = t0.elapsed();
        let mut stop = |what: &str| -> io::Result<Duration> {
            let name = format!("{role}-{what}");
            let i = self
                .procs
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| io::Error::other(format!("node {k} runs no {what} to stop")))?;
            let mut p = self.procs.remove(i);
            let t = Instant::now();
            crate::stop_child(&mut p.child, rustix::process::Signal::TERM);
            Ok(t.elapsed())
        };
        stop("keepalived")?;
        let gateway_exit = stop("gateway")?;
        self.nodes[k - 1].state = NodeState::Drained;
        Ok(Drain { withdrawn, gateway_exit, total: t0.elapsed() })
    }

    /// The next hops the router's kernel has for `vip` (node front addresses of its family). An
    /// IPv6 multipath route is shown as one `nexthop via ADDR dev r0 weight 1` line per hop, an
    /// IPv4 one likewise: the words after each `via`.
    pub fn next_hops(&self, vip: &str) -> Vec<String> {
        let family = if is_v6(vip) { "-6" } else { "-4" };
        let out = self
            .exec("rt", &["ip", family, "route", "show", vip])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let words: Vec<&str> = out.split_whitespace().collect();
        let mut hops: Vec<String> =
            words.windows(2).filter(|w| w[0] == "via").map(|w| w[1].to_owned()).collect();
        hops.sort();
        hops
    }

    /// Waits up to `limit` until the router's kernel routes each of `vips` (IPv4 or IPv6) over
    /// exactly the nodes `nodes` (their front addresses of the VIP's family); returns how long it
    /// took, or the routes and BIRD's view when it does not.
    pub fn wait_next_hops(
        &self,
        vips: &[&str],
        nodes: &[usize],
        limit: Duration,
    ) -> Result<Duration, String> {
        let want = |vip: &str| {
            let front = if is_v6(vip) { node_front6 } else { node_front };
            let mut w: Vec<String> = nodes.iter().map(|&k| front(k)).collect();
            w.sort();
            w
        };
        let start = Instant::now();
        loop {
            if vips.iter().all(|v| self.next_hops(v) == want(v)) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                let have: Vec<String> =
                    vips.iter().map(|v| format!("{v}: {:?}", self.next_hops(v))).collect();
                return Err(format!(
                    "the router does not route {vips:?} over nodes {nodes:?} after {limit:?}: {}\n\
                     router's BIRD:\n{}\n{}",
                    have.join("; "),
                    self.birdc("rt", &["show", "protocols"]),
                    self.birdc("rt", &["show", "route"]),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The L2 VIPs node `k`'s table says it answers for (`sluice-control status`: `L2 VIP  active
    /// here`): what its gateway runs. Empty in BGP mode.
    fn active_vips(&self, k: usize) -> Vec<String> {
        let out = run(&[
            &bin("sluice-control").to_string_lossy(),
            "status",
            "--table",
            &self.table(k).to_string_lossy(),
        ])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let rest = l.trim().strip_prefix("L2 ")?;
                let (vip, role) = rest.split_once(char::is_whitespace)?;
                role.trim_start().starts_with("active here").then(|| vip.to_owned())
            })
            .collect()
    }

    /// Waits up to `limit` until each of `vips` is active on node `k` and on no other node that
    /// is up (L2 mode, by the nodes' tables); how long it took, or every node's view.
    pub fn wait_active(&self, vips: &[&str], k: usize, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let held: Vec<(usize, Vec<String>)> = (1..=self.nodes.len())
                .filter(|&j| self.state(j) != NodeState::Killed)
                .map(|j| (j, self.active_vips(j)))
                .collect();
            let ok = vips.iter().all(|v| held.iter().all(|(j, h)| h.iter().any(|x| x == v) == (*j == k)));
            if ok {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{vips:?} not active on node {k} alone after {limit:?}: the nodes' tables say {held:?}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `limit` until node `k`'s `gw1` holds `addr` (a VRRP address, IPv4 or IPv6);
    /// how long it took.
    pub fn wait_address(&self, k: usize, addr: &str, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let (family, needle) =
            if is_v6(addr) { ("-6", format!("inet6 {addr}/")) } else { ("-4", format!("inet {addr}/")) };
        loop {
            let out = self
                .exec(&format!("n{k}"), &["ip", family, "addr", "show", "gw1"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if out.contains(&needle) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "node {k} does not hold {addr} after {limit:?}:\n{out}\nits keepalived:\n{}",
                    self.log(&format!("n{k}-keepalived"))
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Node `k`'s control's metrics page. Panics, with control's log, when it cannot be read.
    pub fn metrics(&self, k: usize) -> String {
        let Some(url) = &self.nodes[k - 1].metrics else {
            panic!("control of node {k} named no metrics address:\n{}", self.log(&format!("n{k}-control")))
        };
        let out = self
            .exec(&format!("n{k}"), &["curl", "-sS", "--fail", "-m", "2", url])
            .unwrap_or_else(|e| panic!("curl {url}: {e}"));
        assert!(
            out.status.success(),
            "node {k}: curl {url}: {}\ncontrol's log:\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log(&format!("n{k}-control"))
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A gateway counter of node `k` summed over workers (`new_flows`, …), or None where the page
    /// has no sample of it.
    pub fn try_counter(&self, k: usize, name: &str) -> Option<u64> {
        let page = self.metrics(k);
        let prefix = format!("sluice_gateway_{name}_total");
        let samples: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with(&prefix) && l[prefix.len()..].starts_with(['{', ' ']))
            .map(crate::sample)
            .collect();
        (!samples.is_empty()).then(|| samples.iter().sum())
    }

    /// A gateway counter of node `k`; panics, with the page, when the page has none.
    pub fn counter(&self, k: usize, name: &str) -> u64 {
        self.try_counter(k, name).unwrap_or_else(|| {
            panic!("no gateway counter {name:?} on node {k}'s metrics:\n{}", self.metrics(k))
        })
    }

    /// Runs a command in a role's namespace.
    pub fn exec(&self, role: &str, args: &[&str]) -> io::Result<Output> {
        crate::exec_in(&self.ns(role), args)
    }

    /// Starts a long-running process in a role's namespace, its output in `NAME.log` of the
    /// cluster's directory; stopped when the cluster drops.
    pub fn spawn(&mut self, role: &str, name: &str, args: &[&str]) -> io::Result<u32> {
        let p = crate::spawn_logged(self.dir.path(), &self.ns(role), name, args)?;
        let pid = p.child.id();
        self.procs.push(p);
        Ok(pid)
    }

    /// The log of a process (`n1-gateway`, `rt-bird`, `nginx-web-1`, …).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Every node's gateway, control and keepalived logs, for a panic message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for k in 1..=self.nodes.len() {
            for what in ["gateway", "control", "keepalived"] {
                let log = self.log(&format!("n{k}-{what}"));
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                s.push_str(&format!("--- n{k}-{what} (last {} lines)\n", tail.len()));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// One HTTP GET from client address `src` ([`get_in`]).
    pub fn get(&self, src: &str, url: &str, timeout_ms: u64) -> Result<String, String> {
        get_in(&self.ns("cl"), src, url, timeout_ms, timeout_ms)
    }
}

/// Whether `addr` is an IPv6 address (written with colons).
fn is_v6(addr: &str) -> bool {
    addr.contains(':')
}

/// One HTTP GET in namespace `ns` from address `src` (curl binds it), with `connect_ms` to
/// connect (a lost SYN is sent again after 1 s: below that, a connection that needed it fails)
/// and `timeout_ms` in all: the body, or curl's complaint. Takes no cluster, so threads can run
/// it while the cluster changes.
pub fn get_in(ns: &str, src: &str, url: &str, connect_ms: u64, timeout_ms: u64) -> Result<String, String> {
    let (c, t) = (format!("{:.3}", connect_ms as f64 / 1000.0), format!("{:.3}", timeout_ms as f64 / 1000.0));
    let out = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-sS",
        "-g",
        "--fail",
        "--connect-timeout",
        &c,
        "-m",
        &t,
        "--interface",
        src,
        url,
    ])
    .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!("{src} → {url}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A download in namespace `ns` from address `src` (at most 20 s): the bytes received, or curl's
/// complaint (a transfer cut short is one: curl checks the length the server announced).
pub fn download_in(ns: &str, src: &str, url: &str) -> Result<usize, String> {
    let out = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-sS",
        "-g",
        "--fail",
        "-m",
        "20",
        "--interface",
        src,
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        url,
    ])
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{src} → {url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("{url}: {e}"))
}

/// What every BGP session of the sandbox says, the router's and the nodes' alike: BFD, a 9 s
/// hold time, and retries within a second (a session refused while the other BIRD starts).
const SESSION_TIMERS: &str = "\tbfd on;\n\thold time 9;\n\tconnect retry time 1;\n\terror wait time 1, 4;\n";

/// The router's BIRD: two BGP sessions with BFD to each planned node, one over IPv4 for the
/// IPv4 VIPs and one over IPv6 for the IPv6 VIPs, every route learnt, and the equal ones merged
/// into one multipath route in the kernel (a kernel protocol per family: a BIRD protocol has one
/// channel of each).
pub fn router_bird_conf(capacity: usize) -> String {
    let mut s = format!("router id {ROUTER};\nprotocol device {{ scan time 1; }}\n");
    for family in ["ipv4", "ipv6"] {
        s.push_str(&format!(
            "protocol kernel {{\n\t{family} {{ import none; export all; }};\n\tmerge paths on;\n}}\n"
        ));
    }
    s.push_str(
        "protocol bfd {\n\
         \tinterface \"r0\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n\
         }\n",
    );
    let template = |name: &str, local: &str, channel: &str| {
        format!("template bgp {name} {{\n\tlocal {local} as {ROUTER_ASN};\n{SESSION_TIMERS}\t{channel}\n}}\n")
    };
    s.push_str(&template("gw_node", ROUTER, "ipv4 { import all; export none; };"));
    // The node's global address as the kernel's next hop, not its link-local one (BIRD's
    // default on a direct session): the routes then name the node as the IPv4 ones do.
    s.push_str(&template("gw_node6", ROUTER6, "ipv6 { import all; export none; next hop prefer global; };"));
    for k in 1..=capacity {
        s.push_str(&format!(
            "protocol bgp n{k} from gw_node {{ neighbor {} as {NODE_ASN}; }}\n\
             protocol bgp n{k}v6 from gw_node6 {{ neighbor {} as {NODE_ASN}; }}\n",
            node_front(k),
            node_front6(k)
        ));
    }
    s
}

/// Node `k`'s BIRD: Sluice's include and two eBGP sessions with BFD to the router, one per
/// family, each exporting the static protocol control writes for its family (`sluice_vips`,
/// `sluice_vips6`).
pub fn node_bird_conf(k: usize, include: &Path) -> String {
    let me = node_front(k);
    let session = |name: &str, local: &str, neighbor: &str, channel: &str| {
        format!(
            "protocol bgp {name} {{\n\tlocal {local} as {NODE_ASN};\n\tneighbor {neighbor} as {ROUTER_ASN};\n\
             \tconnect delay time 0;\n{SESSION_TIMERS}\t{channel}\n}}\n"
        )
    };
    format!(
        "router id {me};\n\
         protocol device {{ scan time 1; }}\n\
         include \"{}\";\n\
         protocol bfd {{\n\
         \tinterface \"gw0\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n\
         }}\n{}{}",
        include.display(),
        session("router1", &me, ROUTER, "ipv4 { import none; export where proto = \"sluice_vips\"; };"),
        session(
            "router6",
            &node_front6(k),
            ROUTER6,
            "ipv6 { import none; export where proto = \"sluice_vips6\"; };"
        ),
    )
}

/// Node `k`'s keepalived: VRRPv3 on gw1, adverts every 100 ms. One instance for the backends'
/// router (the lowest-numbered live node holds it: priority 200 − k), one per planned node's
/// SNAT address (its own node at 250, the others below in a ring, so the next node takes it);
/// each twice, once per family: a VRRP instance carries addresses of one family (VRRPv3 over
/// IPv6 is a protocol of its own, RFC 5798 §5.1.2), and the IPv6 instances take their own
/// virtual router ids (20 up; the IPv4 ones 10 up) so that no id serves two instances on the
/// segment. An IPv6 instance's first address is a link-local one, as RFC 5798 §5.2.9 requires
/// (keepalived warns otherwise): `fe80::` and the last group of its global address.
pub fn keepalived_conf(k: usize, capacity: usize) -> String {
    let mut s = format!(
        "global_defs {{\n\
         \trouter_id sluice_n{k}\n\
         \tvrrp_version 3\n\
         \tvrrp_garp_master_delay 0\n\
         \tvrrp_garp_master_repeat 3\n\
         \tvrrp_garp_interval 0.01\n\
         \tvrrp_gna_interval 0.01\n\
         \tenable_script_security\n\
         }}\n"
    );
    let instance = |s: &mut String, name: &str, id: usize, priority: usize, vip: &str| {
        let addrs = match vip.rsplit_once("::") {
            Some((_, last)) => format!("\t\tfe80::{last}/64 dev gw1\n\t\t{vip}/64 dev gw1\n"),
            None => format!("\t\t{vip}/24 dev gw1\n"),
        };
        s.push_str(&format!(
            "vrrp_instance {name} {{\n\
             \tstate BACKUP\n\
             \tinterface gw1\n\
             \tvirtual_router_id {id}\n\
             \tpriority {priority}\n\
             \tadvert_int 0.1\n\
             \tvirtual_ipaddress {{\n{addrs}\t}}\n\
             }}\n"
        ));
    };
    instance(&mut s, "backends_router", 10, 200 - k, BACKENDS_ROUTER);
    instance(&mut s, "backends_router6", 20, 200 - k, BACKENDS_ROUTER6);
    for j in 1..=capacity {
        // Node j first, then j+1, j+2, … (wrapping): the next node takes a dead node's address.
        let rank = (k + capacity - j) % capacity;
        let priority = if j == k { 250 } else { 150 - rank };
        instance(&mut s, &format!("snat_{j}"), 10 + j, priority, &node_snat(j));
        instance(&mut s, &format!("snat6_{j}"), 20 + j, priority, &node_snat6(j));
    }
    s
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Gateways and controls first, then BIRD, keepalived and the servers.
        self.procs.sort_by_key(|p| {
            if p.name.ends_with("-gateway") {
                0
            } else if p.name.ends_with("-control") {
                1
            } else {
                2
            }
        });
        for p in &mut self.procs {
            crate::stop_child(&mut p.child, rustix::process::Signal::TERM);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        // Every node's table and flow journals.
        let stem = format!("sluice-{}-n", self.id);
        for e in fs::read_dir("/dev/shm").into_iter().flatten().flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&stem)) {
                let _ = fs::remove_file(e.path());
            }
        }
        if std::env::var_os("SLUICE_KEEP_LOGS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("cluster logs kept in {}", self.dir.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of a keepalived configuration that mean something: comments and blank lines out.
    fn meaning(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// deploy/keepalived/keepalived.conf is node 1 of 2 as the tests configure it: the operator's
    /// example is the tested configuration.
    #[test]
    fn the_deployed_keepalived_configuration_is_the_tested_one() {
        let deployed = std::fs::read_to_string(crate::repo_root().join("deploy/keepalived/keepalived.conf"))
            .expect("deploy/keepalived/keepalived.conf");
        assert_eq!(meaning(&deployed), meaning(&keepalived_conf(1, 2)));
    }

    /// L2 mode's manifest: the four Pods on nodes 1, 2, 3, 1 (each node a local endpoint for the
    /// DNAT Service), nothing else renamed, and the L2Advertisement of the pool.
    #[test]
    fn the_l2_manifest_spreads_the_pods_over_the_nodes_names() {
        let m = l2_manifest(MANIFEST, 3);
        let names: Vec<&str> = m
            .lines()
            .filter_map(|l| l.split("nodeName: ").nth(1))
            .map(|r| r.split(',').next().unwrap_or(""))
            .collect();
        assert_eq!(names, ["sluice-gw-1", "sluice-gw-2", "sluice-gw-3", "sluice-gw-1"]);
        assert!(m.ends_with(&format!("---{L2_ADVERTISEMENT}")), "{m}");
        assert_eq!(m.matches("kind: ").count(), MANIFEST.matches("kind: ").count() + 1);
        assert_eq!(node_name(Mode::L2, 2), "sluice-gw-2");
        assert_eq!(node_name(Mode::Bgp, 2), NODE_NAME);
    }

    /// No two VRRP instances share a virtual router id, at the most nodes planned; each IPv6
    /// instance names a link-local address first (RFC 5798 §5.2.9) and its IPv6 address second.
    #[test]
    fn every_vrrp_instance_has_its_own_id_and_ipv6_ones_a_link_local_address_first() {
        let conf = keepalived_conf(1, MAX_NODES);
        let ids: Vec<&str> =
            conf.lines().filter_map(|l| l.trim().strip_prefix("virtual_router_id ")).collect();
        let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
        assert_eq!((ids.len(), unique.len()), (2 * (MAX_NODES + 1), ids.len()), "{conf}");
        for (name, vip) in [("backends_router6", BACKENDS_ROUTER6.to_owned()), ("snat6_3", node_snat6(3))] {
            let inst = conf.split(&format!("vrrp_instance {name} {{")).nth(1).expect("instance");
            let addrs: Vec<&str> = inst
                .lines()
                .map(str::trim)
                .skip_while(|l| !l.starts_with("virtual_ipaddress"))
                .skip(1)
                .take_while(|l| *l != "}")
                .collect();
            assert_eq!(addrs.len(), 2, "{name}: {inst}");
            assert!(addrs[0].starts_with("fe80::"), "{name}: {inst}");
            assert_eq!(addrs[1], format!("{vip}/64 dev gw1"), "{name}");
        }
    }

    /// Each node is master of its own SNAT address, and the next node takes it over.
    #[test]
    fn each_snat_address_has_its_node_first_and_the_next_node_second() {
        let priority = |k: usize, j: usize| -> u32 {
            let conf = keepalived_conf(k, 3);
            let inst = conf.split(&format!("vrrp_instance snat_{j} {{")).nth(1).expect("instance");
            let line = inst.lines().find(|l| l.trim().starts_with("priority")).expect("priority");
            line.trim().trim_start_matches("priority").trim().parse().expect("a number")
        };
        for j in 1..=3 {
            let next = j % 3 + 1;
            let last = (j + 1) % 3 + 1;
            assert!(priority(j, j) > priority(next, j) && priority(next, j) > priority(last, j), "snat_{j}");
        }
    }
}
