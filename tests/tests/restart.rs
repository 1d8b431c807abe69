//! A gateway restart keeps every established connection (issue 16, item 1): long downloads
//! through a FullNAT NodePort and a DNAT LoadBalancer (`externalTrafficPolicy: Local`) are open
//! while the gateway is stopped — with SIGTERM, and with SIGKILL — and started again; every one
//! completes, whole. What makes it work (docs/restarts.md): each worker's flow journal in shared
//! memory, carried over by the next gateway, and the XDP program, which outlives the process and
//! holds the service traffic (drops it, rather than let the kernel answer it with RSTs) until the
//! next gateway replaces it.
//!
//! Needs root; see the crate docs. Downloads are bounded by curl's own time limit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

/// The LoadBalancer VIP of the local-traffic example (DNAT to the node's own Pods).
const DNAT_VIP: &str = "198.18.100.30";

fn backends() -> Vec<Backend> {
    [
        ("petclinic-1", "198.18.1.1"),
        ("petclinic-2", "198.18.1.2"),
        ("petclinic-3", "198.18.1.3"),
        ("web-local-1", "198.18.1.101"),
        ("web-local-2", "198.18.1.102"),
        ("web-remote", "198.18.1.103"),
    ]
    .iter()
    .map(|(n, a)| Backend::http(n, a, &[8080]))
    .collect()
}

fn up(test: &str) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    let examples: [PathBuf; 2] = [example("nodeport"), example("local-traffic")];
    sb.set_manifests(&examples, &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&[]).expect("gateway");
    Some(sb)
}

/// A 2 MiB download at 256 KiB/s (about 8 s): the bytes received, or curl's complaint.
fn download(ns: &str, url: &str) -> Result<usize, String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "-g", "-m", "40", "--fail", "-o", "/dev/null"])
        .args(["-w", "%{size_download}", url])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("{url}: {e}"))
}

/// Four downloads through each of `urls` in threads of `s`: each gives its URL and its result.
fn downloads<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    ns: &'s str,
    urls: [&'s String; 2],
) -> Vec<std::thread::ScopedJoinHandle<'s, (String, Result<usize, String>)>> {
    urls.into_iter()
        .flat_map(|u| std::iter::repeat_n(u, 4))
        .map(|u| s.spawn(move || (u.clone(), download(ns, u))))
        .collect()
}

/// Opens four downloads through each path, restarts the gateway with `sig` in their middle, and
/// checks every one completes whole and that the new gateway carried their flows over.
fn restart_keeps_every_download(test: &str, sig: rustix::process::Signal) {
    let Some(mut sb) = up(test) else { return };
    let ns = sb.ns("cl");
    let fullnat = format!("http://{GW_V4}:31080/big");
    let dnat = format!("http://{DNAT_VIP}/big");
    // Both paths answer before anything else is tried.
    for url in [&fullnat, &dnat] {
        assert_eq!(download(&ns, &url.replace("/big", "/")).map(|n| n > 0), Ok(true), "{url}");
    }
    let (results, gap) = std::thread::scope(|s| {
        let downloads = downloads(s, &ns, [&fullnat, &dnat]);
        // Mid-transfer: connected, a few hundred KiB in.
        std::thread::sleep(Duration::from_millis(1500));
        let old = sb.log("gateway");
        let t0 = Instant::now();
        sb.stop("gateway", sig).expect("the gateway running");
        sb.start_gateway(&[]).expect("the gateway again");
        let gap = t0.elapsed();
        assert!(old.contains("XDP program attached"), "{old}");
        (downloads.into_iter().map(|d| d.join().expect("download thread")).collect::<Vec<_>>(), gap)
    });
    let log = sb.log("gateway");
    eprintln!("{test}: the gateway was back {} ms after the stop began", gap.as_millis());
    for (url, r) in &results {
        assert_eq!(r.as_ref().ok(), Some(&(2 << 20)), "{url}: {r:?}\n{log}");
    }
    assert!(log.contains("replacing the previous gateway's"), "{log}");
    assert!(log.contains("carrying over"), "{log}");
    assert!(sb.wait_counter("flows_carried_over", 8) >= 8, "{log}");
}

#[test]
fn a_gateway_stopped_and_started_again_keeps_every_connection() {
    restart_keeps_every_download("restart_sigterm", rustix::process::Signal::TERM);
}

#[test]
fn a_gateway_killed_and_started_again_keeps_every_connection() {
    restart_keeps_every_download("restart_sigkill", rustix::process::Signal::KILL);
}

/// An upgrade (a new gateway taking over from a running one through the handover socket,
/// docs/upgrades.md) keeps every L4 connection too: the old gateway lets go of its queues and
/// flow journals when asked, the new one carries the flows over.
#[test]
fn an_upgrade_keeps_every_connection() {
    let Some(mut sb) = up("upgrade_keeps_l4") else { return };
    let handover = sb.dir().join("handover.sock").to_string_lossy().into_owned();
    sb.stop("gateway", rustix::process::Signal::TERM).expect("the first gateway");
    sb.start_gateway(&["--handover-socket", &handover]).expect("a gateway with a handover socket");
    let ns = sb.ns("cl");
    let fullnat = format!("http://{GW_V4}:31080/big");
    let dnat = format!("http://{DNAT_VIP}/big");
    let results = std::thread::scope(|s| {
        let downloads = downloads(s, &ns, [&fullnat, &dnat]);
        std::thread::sleep(Duration::from_millis(1500));
        // The next gateway, as the first is started, beside it.
        let g = sluice_sandbox::bin("sluice-gateway").to_string_lossy().into_owned();
        let t = sb.table().to_string_lossy().into_owned();
        let journal = format!("{t}-flows");
        let args = [
            g.as_str(),
            "--iface",
            "gw0",
            "--table",
            &t,
            "--flows",
            "65536",
            "--flow-journal",
            &journal,
            "--handover-socket",
            &handover,
        ];
        sb.spawn("gw", "gateway-next", &args).expect("the next gateway");
        downloads.into_iter().map(|d| d.join().expect("download thread")).collect::<Vec<_>>()
    });
    let (old, new) = (sb.log("gateway"), sb.log("gateway-next"));
    for (url, r) in &results {
        assert_eq!(r.as_ref().ok(), Some(&(2 << 20)), "{url}: {r:?}\nold:\n{old}\nnew:\n{new}");
    }
    assert!(new.contains("replacing the previous gateway's") && new.contains("carrying over"), "{new}");
}

/// FullNAT ports a previous gateway's flows still hold are not where the new gateway looks for
/// free ones: its SNAT cursors resume after them. (They restarted where the old ones started,
/// and each new flow's candidates were all taken by carried-over TIME_WAIT flows.)
#[test]
fn after_a_restart_new_flows_find_free_snat_ports_at_once() {
    let Some(mut sb) = up("restart_snat_ports") else { return };
    let url = format!("http://{GW_V4}:31080/");
    // 150 connections over three backends, each closed by the backend first (it then holds
    // TIME_WAIT on the tuple, which a new SYN may not take without the old sequence numbers,
    // which a restart loses): about 50 taken tuples per backend, more than the 32 candidates
    // one new flow tries.
    for i in 0..150 {
        assert!(sb.get_from("cl", &url, &["-H", "Connection: close"]).is_ok(), "request {i}");
    }
    sb.stop("gateway", rustix::process::Signal::TERM).expect("the gateway running");
    sb.start_gateway(&[]).expect("the gateway again");
    assert!(sb.wait_counter("flows_carried_over", 150) >= 150);
    for i in 0..30 {
        assert!(sb.get(&url).is_ok(), "request {i} after the restart");
    }
    assert_eq!(sb.gateway_drops("snat_exhausted"), 0, "{}", sb.log("gateway"));
}

/// A journal someone else wrote into is read record by record: damaged records are counted and
/// left behind, the gateway starts, and it serves.
#[test]
fn a_damaged_journal_is_counted_and_the_gateway_starts() {
    let Some(mut sb) = up("restart_damaged_journal") else { return };
    let url = format!("http://{GW_V4}:31080/");
    assert!(sb.get(&url).is_ok());
    sb.stop("gateway", rustix::process::Signal::TERM).expect("the gateway running");
    let journal = PathBuf::from(format!("{}-flows-gw0-0", sb.table().display()));
    let mut bytes = std::fs::read(&journal).expect("the journal");
    // Every live record (the first byte 0xa5) gets a flipped byte in its keys.
    let mut damaged = 0;
    for rec in bytes[128..].chunks_mut(128) {
        if rec[0] == 0xa5 {
            rec[20] ^= 0x40;
            damaged += 1;
        }
    }
    assert!(damaged > 0, "the requests left flows in the journal");
    std::fs::write(&journal, &bytes).expect("write");
    sb.start_gateway(&[]).expect("the gateway again");
    assert!(sb.get(&url).is_ok());
    assert_eq!(sb.wait_counter("flows_not_carried_over", damaged), damaged);
    // Garbage for a header: said, and the gateway starts all the same.
    sb.stop("gateway", rustix::process::Signal::TERM).expect("the gateway running");
    std::fs::write(&journal, vec![b'x'; 4096]).expect("write");
    sb.start_gateway(&[]).expect("the gateway again");
    let log = sb.log("gateway");
    assert!(log.contains("not a flow journal") && log.contains("its flows are not carried over"), "{log}");
    assert!(sb.get(&url).is_ok());
}
