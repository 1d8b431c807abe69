//! BGP through BIRD (issue 17, item 1, first part): control keeps the gateway node's BIRD
//! announcing exactly the VIPs the node serves, and only while its gateway runs.
//!
//! Two real BIRDs (Debian `bird2`): the node's, in the gateway's namespace, including the file
//! control writes (`--bird-include`) and exporting its static protocol over an eBGP session to
//! a router; the router's, in the client's namespace (the client's first hop), importing what
//! it is told. The test reads the router's view with `birdc show route`. Needs root; see the
//! crate docs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

/// The client's address: the router's side of the session.
const ROUTER: &str = "198.18.0.100";

/// The node's BIRD configuration: the router as an eBGP neighbour, exporting Sluice's VIPs.
fn node_conf(include: &Path) -> String {
    format!(
        "router id {GW_V4};\n\
         protocol device {{}}\n\
         include \"{}\";\n\
         protocol bgp upstream {{\n\
         \tlocal {GW_V4} as 64512;\n\
         \tneighbor {ROUTER} as 64513;\n\
         \thold time 9;\n\
         \tipv4 {{ import none; export where proto = \"sluice_vips\"; }};\n\
         }}\n",
        include.display()
    )
}

/// The router's: the node as a neighbour, importing everything (not into a kernel: the test
/// asks BIRD).
fn router_conf() -> String {
    format!(
        "router id {ROUTER};\n\
         protocol device {{}}\n\
         protocol bgp node1 {{\n\
         \tlocal {ROUTER} as 64513;\n\
         \tneighbor {GW_V4} as 64512;\n\
         \thold time 9;\n\
         \tipv4 {{ import all; export none; }};\n\
         }}\n"
    )
}

/// `birdc show route` on the router: the prefixes it has.
fn router_routes(sb: &Sandbox, socket: &Path) -> String {
    sb.exec("cl", &["birdc", "-s", &socket.to_string_lossy(), "show", "route"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Waits up to `limit` for `cond` on the router's routes; how long it took.
fn wait_routes(
    sb: &Sandbox,
    socket: &Path,
    limit: Duration,
    cond: impl Fn(&str) -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let r = router_routes(sb, socket);
        if cond(&r) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(r);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sandbox with both BIRDs running (the node's on `node_conf`), the include control writes
/// and the two control sockets.
struct Birds {
    sb: Sandbox,
    include: std::path::PathBuf,
    node: std::path::PathBuf,
    router: std::path::PathBuf,
}

fn birds(test: &str, node_conf: impl Fn(&Path) -> String) -> Option<Birds> {
    if !require_root(test) {
        return None;
    }
    if Command::new("bird").arg("--version").output().is_err() {
        panic!("bird2 is not installed: tests/packages.sh installs it");
    }
    let backends =
        [Backend::http("web-1", "198.18.1.11", &[8080]), Backend::http("web-2", "198.18.1.12", &[8080])];
    let mut sb = Sandbox::new(&backends).expect("sandbox");
    let dir = sb.dir().to_owned();
    let include = dir.join("sluice-bird.conf");
    std::fs::write(&include, "").expect("an empty include for BIRD's first start");
    let (node, router) = (dir.join("node-bird.ctl"), dir.join("router-bird.ctl"));
    std::fs::write(dir.join("node-bird.conf"), node_conf(&include)).expect("node conf");
    std::fs::write(dir.join("router-bird.conf"), router_conf()).expect("router conf");
    for (role, name, conf, sock) in
        [("gw", "bird-node", "node-bird.conf", &node), ("cl", "bird-router", "router-bird.conf", &router)]
    {
        let conf = dir.join(conf).to_string_lossy().into_owned();
        let sock = sock.to_string_lossy().into_owned();
        let pid = dir.join(format!("{name}.pid")).to_string_lossy().into_owned();
        sb.spawn(role, name, &["bird", "-f", "-c", &conf, "-s", &sock, "-P", &pid]).expect("bird");
    }
    Some(Birds { sb, include, node, router })
}

impl Birds {
    /// Control with --bird-include on the node's BIRD.
    fn start_control(&mut self) {
        let (inc, ns) =
            (self.include.to_string_lossy().into_owned(), self.node.to_string_lossy().into_owned());
        self.sb.start_control_with(&["--bird-include", &inc, "--bird-socket", &ns]).expect("control");
    }
}

#[test]
fn the_vips_are_announced_through_bird_while_the_gateway_serves() {
    let Some(mut b) = birds("bgp_through_bird", node_conf) else { return };
    b.sb.set_manifests(&[example("loadbalancer")], &[]).expect("manifests");
    b.start_control();
    let (sb, router_sock) = (&mut b.sb, &b.router);
    // No gateway yet: nothing announced, though the table has VIPs.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!router_routes(sb, router_sock).contains("198.18.100."), "{}", router_routes(sb, router_sock));
    sb.start_gateway(&[]).expect("gateway");
    // The session comes up (BIRD retries its connection every few seconds), then the routes.
    let has = |r: &str| r.contains("198.18.100.10/32") && r.contains("198.18.100.15/32");
    let took = wait_routes(sb, router_sock, Duration::from_secs(30), has)
        .unwrap_or_else(|r| panic!("not announced:\n{r}\ncontrol:\n{}", sb.log("control")));
    eprintln!("announced {} ms after the gateway started", took.as_millis());
    let r = router_routes(sb, router_sock);
    assert!(r.contains(&format!("via {GW_V4}")), "{r}");
    // The gateway killed: withdrawn, within about a second.
    sb.stop("gateway", rustix::process::Signal::KILL).expect("the gateway running");
    let gone = wait_routes(sb, router_sock, Duration::from_secs(5), |r| !r.contains("198.18.100."))
        .unwrap_or_else(|r| panic!("not withdrawn:\n{r}\ncontrol:\n{}", sb.log("control")));
    eprintln!("withdrawn {} ms after the gateway was killed", gone.as_millis());
    assert!(gone < Duration::from_secs(2), "{gone:?}");
    // Started again: announced again.
    sb.start_gateway(&[]).expect("the gateway again");
    wait_routes(sb, router_sock, Duration::from_secs(10), has)
        .unwrap_or_else(|r| panic!("not announced again:\n{r}\ncontrol:\n{}", sb.log("control")));
    // A restart is shorter than the withdrawal delay: the router keeps the routes throughout.
    let watching = std::sync::atomic::AtomicBool::new(true);
    let cl = sb.ns("cl");
    let router_has = || {
        Command::new("ip")
            .args(["netns", "exec", &cl, "birdc", "-s", &router_sock.to_string_lossy(), "show", "route"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("198.18.100.10/32"))
    };
    let lost = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut lost = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if !router_has() {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            lost
        });
        sb.stop("gateway", rustix::process::Signal::TERM).expect("the gateway running");
        sb.start_gateway(&[]).expect("the gateway restarted");
        std::thread::sleep(Duration::from_millis(1000));
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        w.join().expect("watcher")
    });
    assert_eq!(lost, 0, "the route went away during a restart:\n{}", sb.log("control"));
    // A Service's removal withdraws its VIP, and only its.
    let g = sb.generation().expect("generation");
    let text = std::fs::read_to_string(example("loadbalancer").join("services.yaml")).expect("example");
    let without: Vec<&str> = text.split("\n---\n").filter(|d| !d.contains("name: dns\n")).collect();
    assert_eq!(without.len() + 1, text.split("\n---\n").count(), "one document names the dns Service");
    sb.set_manifests(&[], &[("services.yaml", &without.join("\n---\n"))]).expect("manifests");
    sb.wait_generation(g + 1).expect("published");
    wait_routes(sb, router_sock, Duration::from_secs(5), |r| {
        r.contains("198.18.100.10/32") && !r.contains("198.18.100.15/32")
    })
    .unwrap_or_else(|r| panic!("the removed Service's VIP is still announced:\n{r}"));
    // A Service left without endpoints is not announced (its Pods gone; MetalLB announces an
    // externalTrafficPolicy: Local address only from nodes with a local endpoint, and a node with
    // no endpoint at all has nowhere to send a flow).
    let g = sb.generation().expect("generation");
    let no_web: Vec<&str> = without
        .iter()
        .copied()
        .filter(|d| !d.contains("name: web-1\n") && !d.contains("name: web-2\n"))
        .collect();
    assert_eq!(no_web.len() + 2, without.len(), "two documents are web's Pods");
    sb.set_manifests(&[], &[("services.yaml", &no_web.join("\n---\n"))]).expect("manifests");
    sb.wait_generation(g + 1).expect("published");
    wait_routes(sb, router_sock, Duration::from_secs(5), |r| !r.contains("198.18.100.10/32"))
        .unwrap_or_else(|r| panic!("a VIP without endpoints is still announced:\n{r}"));
}

/// MetalLB's objects, as a MetalLB user has them: the BGPPeer opens the session (the node's own
/// configuration has none), the BGPAdvertisement tags the routes with its community.
const METALLB_BGP: &str = "\
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.18.0.100
  holdTime: 9s
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: edge, namespace: metallb-system}
spec:
  ipAddressPools: [edge]
  communities: ['64512:100']
";

#[test]
fn metallbs_bgp_objects_open_the_session_and_tag_the_routes() {
    let bare = |include: &Path| {
        format!("router id {GW_V4};\nprotocol device {{}}\ninclude \"{}\";\n", include.display())
    };
    let Some(mut b) = birds("bgp_metallb_objects", bare) else { return };
    b.sb.set_manifests(&[example("loadbalancer")], &[("bgp.yaml", METALLB_BGP)]).expect("manifests");
    b.start_control();
    b.sb.start_gateway(&[]).expect("gateway");
    let (sb, router_sock) = (&b.sb, &b.router);
    wait_routes(sb, router_sock, Duration::from_secs(30), |r| r.contains("198.18.100.10/32")).unwrap_or_else(
        |r| {
            let node = sb
                .exec("gw", &["birdc", "-s", &b.node.to_string_lossy(), "show", "protocols", "all"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("not announced:\n{r}\nthe node's BIRD:\n{node}\ncontrol:\n{}", sb.log("control"))
        },
    );
    let all = sb
        .exec(
            "cl",
            &["birdc", "-s", &router_sock.to_string_lossy(), "show", "route", "all", "198.18.100.10/32"],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(all.contains("BGP.community: (64512,100)"), "{all}");
    assert!(sb.log("control").contains("1 MetalLB peer(s)"), "{}", sb.log("control"));
}
