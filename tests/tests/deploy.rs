//! The BIRD examples of `deploy/bird` parse (`bird -p`). The systemd units of `deploy/systemd`: with the example environment file, each unit's command
//! line is accepted by its binary's argument parser (the hidden `--check-args` flag: the whole
//! parse, required flags and conflicts included, then exit), and `systemd-analyze verify` passes
//! the unit (pointed at the binaries this build made: it checks that `ExecStart` is executable).
//! Neither needs root; systemd does not run on this machine, so the units are not started here —
//! the namespace tests run the same binaries with the same flags. `tests/packages.sh` installs
//! systemd-analyze; without it the verification is a loud skip, a failure under
//! `SLUICE_REQUIRE_ROOT=1` (CI).

use std::path::Path;
use std::process::Command;

use sluice_sandbox::{bin, repo_root};

fn deploy(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("deploy/systemd").join(file)).expect("deploy/systemd file")
}

/// `KEY=VALUE` lines of an environment file, as systemd reads them (no quotes used here).
fn environment(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The unit's `ExecStart` as systemd expands it: `${X}` one word, `$X` split on white space.
fn command_line(unit: &str, env: &[(String, String)]) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let value = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut words = Vec::new();
    for w in line.split_whitespace() {
        if let Some(k) = w.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            words.push(value(k));
        } else if let Some(k) = w.strip_prefix('$') {
            words.extend(value(k).split_whitespace().map(str::to_owned));
        } else {
            words.push(w.to_owned());
        }
    }
    words
}

#[test]
fn the_units_command_lines_parse_and_the_units_verify() {
    let env = environment(&deploy("sluice.env"));
    assert!(env.iter().any(|(k, _)| k == "SLUICE_IFACE"), "{env:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let analyze = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !analyze {
        assert_ne!(
            std::env::var("SLUICE_REQUIRE_ROOT").as_deref(),
            Ok("1"),
            "systemd-analyze is not installed (tests/packages.sh installs it) and SLUICE_REQUIRE_ROOT=1 \
             forbids skipping the units' verification"
        );
        eprintln!(
            "\n!!! systemd-analyze is not installed: the units' syntax is NOT verified (only their command lines)\n"
        );
    }
    for (unit, binary) in
        [("sluice-control.service", "sluice-control"), ("sluice-gateway.service", "sluice-gateway")]
    {
        let text = deploy(unit);
        let words = command_line(&text, &env);
        assert_eq!(words[0], format!("/usr/local/bin/{binary}"), "{unit}");
        let check = |words: &[String]| {
            Command::new(bin(binary)).args(words).arg("--check-args").output().expect(binary)
        };
        let out = check(&words[1..]);
        assert!(
            out.status.success(),
            "{unit}: {words:?} is refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The check is the parser's, required flags included: without the unit's first flag
        // and its value (--iface, --node-address: both required) the line is refused.
        let first = words.iter().position(|w| w.starts_with("--")).expect("a flag");
        let mut without = words[1..].to_vec();
        without.drain(first - 1..first + 1);
        let out = check(&without);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(&words[first]),
            "{unit}: {without:?} is accepted: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if analyze {
            let local = text
                .replace(
                    "/usr/local/bin/",
                    &format!("{}/", bin(binary).parent().unwrap_or(Path::new(".")).display()),
                )
                .replace(
                    "EnvironmentFile=/etc/sluice/sluice.env",
                    &format!("EnvironmentFile={}", repo_root().join("deploy/systemd/sluice.env").display()),
                );
            let path = dir.path().join(unit);
            std::fs::write(&path, local).expect("write unit");
            let out =
                Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
            let err = String::from_utf8_lossy(&out.stderr);
            // Units it pulls in (network-online.target, the other Sluice unit) are not installed
            // here; anything said about this unit itself is a failure.
            let about_it: Vec<&str> = err.lines().filter(|l| l.contains(unit)).collect();
            assert!(out.status.success() && about_it.is_empty(), "{unit}:\n{err}");
        }
    }
}

/// Every metric the Grafana dashboard (`deploy/grafana/sluice.json`) queries is one that
/// `sluice-control` serves, with a gateway worker publishing: a renamed counter, gauge or label
/// would leave a panel empty without a word.
#[test]
fn the_dashboard_queries_only_metrics_control_serves() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/grafana/sluice.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    let wanted: std::collections::BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(wanted.len() > 15, "the dashboard's queries name its metrics: {wanted:?}");

    // Control on an example, a gateway worker's counters published on its table.
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("table");
    let mut control = Command::new(bin("sluice-control"))
        .args(["run", "--metrics-address", "127.0.0.1:0", "--node-address", "198.18.0.1", "--manifests"])
        .arg(repo_root().join("deploy/examples/nodeport"))
        .arg("--table")
        .arg(&table)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice-control");
    let mut lines = BufReader::new(control.stderr.take().expect("stderr")).lines();
    let addr = lines
        .by_ref()
        .take(50)
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("metrics: http://").map(|(_, a)| a.trim_end_matches("/metrics").to_owned())
        })
        .expect("control says where its metrics are");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !table.exists() {
        assert!(std::time::Instant::now() < deadline, "control did not create its table");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let reader = sluice_table::Reader::open(&table).expect("the table");
    reader.publish_stats(&sluice_model::Counters::default().export());
    let mut page = String::new();
    let mut no_route = sluice_model::route_stats::Row::default();
    for _ in 0..100 {
        // A request no route took, counted again each time: control reports what comes after
        // it numbered the rows, and the first count may come before.
        no_route.record(404, 9, 50_000, None);
        reader.publish_route_row(0, &no_route.0);
        let mut s = std::net::TcpStream::connect(&addr).expect("connect to the metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
        page.clear();
        s.read_to_string(&mut page).expect("page");
        // The worker's counters, and the table's age (served once control has published).
        if page.contains("sluice_gateway_rx_frames_total{")
            && page.contains("sluice_control_table_age_seconds ")
            && page.contains("sluice_l7_requests_total{")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = control.kill();
    let _ = control.wait();
    let served: std::collections::BTreeSet<&str> =
        page.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let missing: Vec<&String> = wanted.iter().filter(|m| !served.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics control does not serve: {missing:?}\n{page}");
    for label in ["worker=", "reason="] {
        assert!(page.contains(label), "{label} is a label the dashboard filters on");
    }
}

/// Every PromQL query in the dashboard (panel targets, variables, annotations).
fn collect_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// The `sluice_…` metric names a query mentions.
fn metric_names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find("sluice_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

/// The BIRD examples are configurations BIRD accepts (`bird -p`: parse only), the node's with the
/// include control writes, as it writes it.
#[test]
fn the_bird_examples_parse() {
    if std::process::Command::new("bird").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_ROOT").is_none(),
            "bird2 is not installed: tests/packages.sh installs it"
        );
        eprintln!("SKIPPED: bird2 is not installed (tests/packages.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let include = dir.path().join("bird-sluice.conf");
    let vips = ["198.18.100.10", "2001:db8:100::10"].iter().map(|a| a.parse().unwrap()).collect();
    std::fs::write(&include, sluice_control::bird::render(&vips)).expect("include");
    let bird =
        |f: &str| std::fs::read_to_string(repo_root().join("deploy/bird").join(f)).expect("deploy/bird file");
    let node = bird("bird.conf").replace("/run/sluice/bird-sluice.conf", &include.to_string_lossy());
    for (name, text) in [("node.conf", node), ("router.conf", bird("router-bird.conf"))] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("conf");
        let out = std::process::Command::new("bird").args(["-p", "-c"]).arg(&path).output().expect("bird");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// MetalLB's BGP example (`deploy/examples/bgp`: a BGPPeer with a BFDProfile, a BGPAdvertisement)
/// loads without a problem, and the include control renders from it — the session with the
/// profile's BFD timers — is one BIRD accepts (`bird -p`), included by the node's example
/// configuration.
#[test]
fn the_bgp_example_renders_an_include_bird_accepts() {
    let loaded = sluice_control::load::load_dir(&repo_root().join("deploy/examples/bgp")).expect("load");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let store = &loaded.store;
    let plan = sluice_control::bird::Plan {
        vips: [("198.18.100.10".parse().unwrap(), Some("edge".to_owned()))].into_iter().collect(),
        peers: store.bgp_peers.iter().map(|p| p.object.clone()).collect(),
        advertisements: store.bgp_advertisements.iter().map(|a| a.object.clone()).collect(),
        bfd_profiles: store.bfd_profiles.iter().map(|b| b.object.clone()).collect(),
    };
    let text = sluice_control::bird::render_plan(&plan);
    assert!(
        text.contains("\tbfd { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };"),
        "{text}"
    );
    assert!(text.contains("route 198.18.100.10/32 blackhole { bgp_community.add((64512,100)); };"), "{text}");
    if std::process::Command::new("bird").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_ROOT").is_none(),
            "bird2 is not installed: tests/packages.sh installs it"
        );
        eprintln!("SKIPPED: bird2 is not installed (tests/packages.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let include = dir.path().join("bird-sluice.conf");
    std::fs::write(&include, &text).expect("include");
    let node = std::fs::read_to_string(repo_root().join("deploy/bird/bird.conf"))
        .expect("deploy/bird/bird.conf")
        .replace("/run/sluice/bird-sluice.conf", &include.to_string_lossy());
    let path = dir.path().join("node.conf");
    std::fs::write(&path, node).expect("conf");
    let out = std::process::Command::new("bird").args(["-p", "-c"]).arg(&path).output().expect("bird");
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
}

/// The L2 example (`deploy/examples/l2`) loads without a problem: its L2Advertisement selects
/// the pool, two nodes and one interface.
#[test]
fn the_l2_example_loads() {
    let loaded = sluice_control::load::load_dir(&repo_root().join("deploy/examples/l2")).expect("load");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let l2 = &loaded.store.l2_advertisements[0].object;
    assert_eq!(
        (&l2.pools[..], l2.nodes.as_ref().map(Vec::len), &l2.interfaces[..]),
        (&["edge".to_owned()][..], Some(2), &["eth1".to_owned()][..])
    );
}
