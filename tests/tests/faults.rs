//! Faults under traffic (issue 16, item 1): clients loop requests through the gateway — L4 to a
//! NodePort and L7 to an Ingress — while a part of the system fails, and every request must
//! still be answered.
//!
//! - Control is killed with SIGKILL and started again: the gateway keeps serving the last table
//!   it adopted (the table file outlives control), then adopts the new control's table without
//!   dropping a request.
//! - The gateway's interface goes down and up: forwarding resumes by itself.
//! - A backend's address is removed in the middle of a download: the gateway finds it no longer
//!   answers (its neighbour entry fails) and resets the client's connection, which would
//!   otherwise wait for data for ever.
//!
//! Needs root; see the crate docs. The request loops run `curl` in the client's namespace from
//! threads of their own, bounded in count and time.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_sandbox::tls::{certificate, tls_secret};
use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

/// A NodePort for the petclinic Pod of the Ingress example: the L4 path beside the L7 one.
const NODEPORT: &str = "\
apiVersion: v1
kind: Service
metadata: {name: petclinic-nodeport}
spec:
  type: NodePort
  selector: {app: petclinic}
  ports: [{name: http, port: 8080, targetPort: 8080, nodePort: 31080}]
";

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// The sandbox: the Ingress example served on [`L7`] and the NodePort, and the TLS Secret's
/// manifest; `None` when skipped.
fn up(test: &str, dir: &std::path::Path) -> Option<(Sandbox, String)> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    let (cert, key) = certificate(dir, "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    sb.set_manifests(&[example("ingress")], &[("tls-secret.yaml", &secret), ("nodeport.yaml", NODEPORT)])
        .expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&["--l7-address", L7]).expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    Some((sb, secret))
}

/// One GET from the client's namespace `ns`: the body, or curl's complaint.
fn get(ns: &str, extra: &[&str], url: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "-g", "-m", "5", "--fail"])
        .args(extra)
        .arg(url)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The requests a loop made and those that failed (or answered the wrong backend).
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    failed: Vec<String>,
}

/// Requests L4 and L7 in turn from `ns` until `stop` (at most 2,000, at most 60 s).
fn loop_requests(ns: &str, stop: &AtomicBool) -> Tally {
    let l4 = format!("http://{GW_V4}:31080/");
    let l7 = format!("http://{L7}/");
    let mut t = Tally::default();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && t.done < 2_000 && start.elapsed() < Duration::from_secs(60) {
        for (extra, url) in [(&[][..], &l4), (&["-H", "Host: foo.bar.com"][..], &l7)] {
            match get(ns, extra, url) {
                Ok(body) if body == "petclinic-web-1" => {}
                Ok(body) => t.failed.push(format!("{url}: answered by {body:?}")),
                Err(e) => t.failed.push(e),
            }
            t.done += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    t
}

#[test]
fn control_killed_and_restarted_under_traffic_fails_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut sb, secret)) = up("control_killed_and_restarted_under_traffic", dir.path()) else { return };
    let ns = sb.ns("cl");
    let stop = AtomicBool::new(false);
    let tally = std::thread::scope(|s| {
        let requests = s.spawn(|| loop_requests(&ns, &stop));
        std::thread::sleep(Duration::from_millis(500));
        let status = sb.stop("control", rustix::process::Signal::KILL).expect("control running");
        assert!(!status.success());
        // The gateway serves on without control.
        std::thread::sleep(Duration::from_secs(2));
        sb.start_control().expect("control again");
        // The new control's table is adopted (a new file: the workers switch to it).
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        requests.join().expect("requests")
    });
    assert!(tally.done >= 40, "{tally:?}");
    assert!(
        tally.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        tally.failed.len(),
        tally.done,
        tally.failed
    );
    // The restarted control is the one obeyed: a change it publishes reaches the gateway.
    let g = sb.generation().expect("generation");
    let manifest = std::fs::read_to_string(example("ingress").join("petclinic.yaml")).expect("example");
    let moved = manifest.replacen("path: /owners/find", "path: /owners/search", 1);
    assert_ne!(moved, manifest);
    let services = std::fs::read_to_string(example("ingress").join("backends.yaml")).expect("example");
    let files = [
        ("backends.yaml", services.as_str()),
        ("petclinic.yaml", &moved),
        ("tls-secret.yaml", &secret),
        ("nodeport.yaml", NODEPORT),
    ];
    sb.set_manifests(&[], &files).expect("change");
    sb.wait_generation(g + 1).expect("the change is published");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let search = get(&ns, &["-H", "Host: foo.bar.com"], &format!("http://{L7}/owners/search"));
        if search.as_deref() == Ok("owners-1") {
            break;
        }
        assert!(Instant::now() < deadline, "the new control's change was not adopted: {search:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_interface_taken_down_and_up_resumes_forwarding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((sb, _)) = up("an_interface_taken_down_and_up", dir.path()) else { return };
    let ns = sb.ns("cl");
    let l4 = format!("http://{GW_V4}:31080/");
    assert_eq!(get(&ns, &[], &l4).as_deref(), Ok("petclinic-web-1"));
    let gw = sb.ns("gw");
    let link = |state: &str| {
        let o = Command::new("ip").args(["-n", &gw, "link", "set", "gw0", state]).output().expect("ip");
        assert!(o.status.success(), "ip link set gw0 {state}: {}", String::from_utf8_lossy(&o.stderr));
    };
    link("down");
    std::thread::sleep(Duration::from_millis(500));
    link("up");
    let up_at = Instant::now();
    // Forwarding resumes by itself, L4 and L7: within 10 s (reported), with no restart.
    let l7 = format!("http://{L7}/");
    let mut last = (Err(String::new()), Err(String::new()));
    while up_at.elapsed() < Duration::from_secs(10) {
        last = (get(&ns, &["-m", "1"], &l4), get(&ns, &["-m", "1", "-H", "Host: foo.bar.com"], &l7));
        if last.0.as_deref() == Ok("petclinic-web-1") && last.1.as_deref() == Ok("petclinic-web-1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("forwarding resumed {} ms after the link came back up", up_at.elapsed().as_millis());
    assert_eq!(
        last.0.as_deref(),
        Ok("petclinic-web-1"),
        "L4 after the link came back:\n{}",
        sb.log("gateway")
    );
    assert_eq!(
        last.1.as_deref(),
        Ok("petclinic-web-1"),
        "L7 after the link came back:\n{}",
        sb.log("gateway")
    );
    assert!(sb.xdp_attached(), "the XDP program is still attached");
    // And it stays up: a run of requests all succeed.
    for i in 0..20 {
        assert_eq!(get(&ns, &[], &l4).as_deref(), Ok("petclinic-web-1"), "request {i} after recovery");
    }
}

/// An interface deleted and created again under the gateway took its XDP program and AF_XDP
/// sockets with it: the gateway says so and exits (for its supervisor to start it again), and
/// started again it serves on the new interface.
#[test]
fn an_interface_deleted_and_recreated_is_reported_and_served_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((mut sb, _)) = up("an_interface_deleted_and_recreated", dir.path()) else { return };
    let ns = sb.ns("cl");
    let l4 = format!("http://{GW_V4}:31080/");
    assert_eq!(get(&ns, &[], &l4).as_deref(), Ok("petclinic-web-1"));
    sb.replug_gateway().expect("gw0 deleted and created again");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sb.log("gateway").contains("was deleted") {
        assert!(Instant::now() < deadline, "not reported:\n{}", sb.log("gateway"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = sb.log("gateway");
    assert!(log.contains("gw0 was deleted and created again"), "{log}");
    let status = sb.stop("gateway", rustix::process::Signal::TERM).expect("the gateway process");
    assert!(!status.success(), "it exits with an error: {status:?}\n{log}");
    sb.start_gateway(&["--l7-address", L7]).expect("the gateway again");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&ns, &["-m", "1"], &l4);
        if r.as_deref() == Ok("petclinic-web-1") {
            break;
        }
        assert!(Instant::now() < deadline, "not served after the restart: {r:?}\n{}", sb.log("gateway"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A backend's address removed mid-download (its Pod gone without a word): the client does not
/// wait for ever. The gateway keeps the kernel probing its on-link backends; the entry fails, and
/// the worker ends the flow: it probes the client, whose answer gives the exact sequence number a
/// RST must carry (the flow was offloaded to the fast path: its positions moved on unseen), and
/// resets it there. The gateway's namespace gets short neighbour
/// timers (base reachable time 2 s, first probe after 1 s), the test's own, so that the bound —
/// reachable time + delay + 3 probes 1 s apart, about 30 + 5 + 3 s with the kernel's defaults —
/// is a few seconds here.
#[test]
fn a_backend_address_removed_mid_download_resets_the_client_within_a_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !require_root("a_backend_address_removed_mid_download") {
        return;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    // Before the gateway resolves any backend: an entry's first timer runs on the times it was
    // made with.
    let gw = sb.ns("gw");
    for (k, v) in [("base_reachable_time_ms", "2000"), ("delay_first_probe_time", "1")] {
        let o = Command::new("ip")
            .args(["netns", "exec", &gw, "sysctl", "-qw", &format!("net.ipv4.neigh.gw0.{k}={v}")])
            .output()
            .expect("sysctl");
        assert!(o.status.success(), "{k}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let _ = Command::new("ip").args(["-n", &gw, "neigh", "flush", "dev", "gw0"]).output();
    let (cert, key) = certificate(dir.path(), "foo.bar.com", "foo.bar.com").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    sb.set_manifests(&[example("ingress")], &[("tls-secret.yaml", &secret), ("nodeport.yaml", NODEPORT)])
        .expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&[]).expect("gateway");
    let ns = sb.ns("cl");
    let url = format!("http://{GW_V4}:31080/big");
    let (took, out) = std::thread::scope(|s| {
        let download = s.spawn(|| {
            Command::new("ip")
                .args(["netns", "exec", &ns, "curl", "-sS", "-m", "90", "-o", "/dev/null", &url])
                .output()
                .expect("curl")
        });
        std::thread::sleep(Duration::from_millis(1500));
        // petclinic-web-1, the NodePort's one endpoint, is backend 0.
        let b0 = sb.ns("b0");
        let o = Command::new("ip").args(["-n", &b0, "addr", "del", "198.18.1.111/24", "dev", "e0"]).output();
        assert!(o.expect("ip").status.success());
        let removed = Instant::now();
        let out = download.join().expect("download");
        (removed.elapsed(), out)
    });
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!("the client learnt {} ms after the address went: {}", took.as_millis(), said.trim());
    assert!(!out.status.success(), "the download cannot complete: {said}");
    assert!(said.contains("reset"), "reset, not timed out: {said}\n{}", sb.log("gateway"));
    // About 10-17 s measured (the kernel's probing, then the worker's probe and RST); the
    // bound leaves room for a loaded machine, and stays far from curl's 90 s.
    assert!(took < Duration::from_secs(45), "{took:?}");
    assert!(sb.log("gateway").contains("backend 198.18.1.111 does not answer"), "{}", sb.log("gateway"));
    assert_eq!(sb.wait_counter("flows_ended_backend_unreachable", 1), 1);
}
