//! The `sluice-control` binary: publish the examples, read them back with `status`, refuse bad
//! flags, and follow a directory as it changes — including into nothing valid, where the last
//! good table stays.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-control");

struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        let p = std::env::temp_dir().join(format!("sluice-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        Temp(p)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

fn examples(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(name)
}

/// `status`, or None while the table is not there yet (control creates the file, then sizes it
/// and writes its header: a reader in between is refused, as it should be).
fn try_status(table: &Path) -> Option<String> {
    let out = Command::new(BIN).args(["status", "--table"]).arg(table).output().unwrap();
    out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
}

fn status(table: &Path) -> String {
    let out = Command::new(BIN).args(["status", "--table"]).arg(table).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn publish_once_then_status() {
    let table = Temp::new("table");
    let out = Command::new(BIN)
        .args(["run", "--once", "--node-address", "198.18.0.1", "--manifests"])
        .arg(examples("loadbalancer"))
        .arg("--table")
        .arg(&table.0)
        .output()
        .unwrap();
    // The log (standard error): one line per publication and per LoadBalancer address.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let line =
        |fact: &str| log.lines().find(|l| l.contains(fact)).unwrap_or_else(|| panic!("{fact:?} in {log}"));
    assert!(line("generation 1: 2 services (+2 -0 ~0), 4 backends (+4)").contains(" INFO "), "{log}");
    line("LoadBalancer default/web: 198.18.100.10");
    assert!(out.stdout.is_empty(), "run writes its log to standard error only");
    let s = status(&table.0);
    assert!(s.starts_with("generation 1: 2 services, 4 backends"), "{s}");
    assert!(s.contains("default/web:80  [198.18.100.10:80/tcp]  maglev FullNat"), "{s}");
    assert!(s.contains("198.18.1.11:8080  takes new flows"), "{s}");
}

#[test]
fn bad_flags_are_refused_clearly() {
    let out = Command::new(BIN)
        .args(["run", "--manifests", ".", "--table", "/tmp/x", "--node-address", "not-an-ip"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value 'not-an-ip' for '--node-address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = Temp::new("nodir");
    let out = Command::new(BIN)
        .args(["run", "--once", "--node-address", "198.18.0.1", "--manifests", "/nonexistent/dir", "--table"])
        .arg(&table.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir: not a directory of manifests"));
    let out = Command::new(BIN).args(["status", "--table", "/nonexistent/table"]).output().unwrap();
    assert!(!out.status.success());
    // A source is required, and only one.
    let out = Command::new(BIN).args(["run", "--node-address", "198.18.0.1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--manifests <MANIFESTS>|--kubeconfig <KUBECONFIG>|--in-cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args([
            "run",
            "--once",
            "--node-address",
            "198.18.0.1",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--table",
        ])
        .arg(&table.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kubeconfig"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// L2 mode's election flags (docs/l2.md): --l2-listen needs a key and the node's name, and a
/// key shorter than 16 bytes is refused naming the file; without an election, an
/// L2Advertisement is an error that says what to give.
#[test]
fn the_l2_election_flags_are_checked() {
    let table = Temp::new("l2");
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["run", "--once", "--node-address", "198.18.0.1", "--table"])
            .arg(&table.0)
            .arg("--manifests")
            .arg(examples("l2"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--l2-listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--l2-key <FILE>") && err.contains("--node-name <NODE_NAME>"), "{err}");
    // Not --once (which runs no election): a short key is refused at start.
    let key = Temp::new("l2-key");
    std::fs::write(&key.0, "short").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--node-address", "198.18.0.1", "--node-name", "gw-1", "--l2-listen", "127.0.0.1:0"])
        .arg("--l2-key")
        .arg(&key.0)
        .arg("--table")
        .arg(&table.0)
        .arg("--manifests")
        .arg(examples("l2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--l2-key") && err.contains("5 bytes; at least 16"), "{err}");
    // No election: the table is published (as a single gateway) and the error says why.
    let out = run(&["--node-name", "gw-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR") && err.contains("in L2 mode but no election: give --l2-listen"), "{err}");
}

/// A running `sluice-control run`, killed however the test ends.
struct Control(std::process::Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sluice-control run` on `manifests`, polling every `interval_ms` (the tests that prove
/// a prompt reload poll once a minute, so that only inotify or the signal can explain it).
/// `log` is where its standard error goes.
fn run_control(manifests: &Path, table: &Path, interval_ms: u64, log: std::process::Stdio) -> Control {
    let child = Command::new(BIN)
        .args(["run", "--interval-ms", &interval_ms.to_string(), "--metrics-address", "127.0.0.1:0"])
        .args(["--node-address", "198.18.0.1", "--manifests"])
        .arg(manifests)
        .arg("--table")
        .arg(table)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Control(child)
}

/// A directory holding the blue/green example, selecting blue: (directory, manifest, its text).
fn blue_green_dir(tag: &str) -> (Temp, PathBuf, String) {
    let dir = Temp::new(tag);
    std::fs::create_dir_all(&dir.0).unwrap();
    let manifest = dir.0.join("petclinic.yaml");
    let blue = std::fs::read_to_string(examples("blue-green").join("petclinic.yaml")).unwrap();
    std::fs::write(&manifest, &blue).unwrap();
    (dir, manifest, blue)
}

/// The blue/green manifest with the selector switched to green.
fn green(blue: &str) -> String {
    let green = blue.replace("version: v1.0.0\n  ports", "version: v1.0.1\n  ports");
    assert_ne!(green, blue);
    green
}

const BLUE: &str = "198.18.1.41:8080";
const GREEN: &str = "198.18.1.51:8080";

/// Waits (10 s at most) until `status` starts with `generation` and returns it.
fn wait_for(table: &Path, generation: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = try_status(table)
            && s.starts_with(generation)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {generation:?}: {:?}", try_status(table));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn follows_the_directory_and_keeps_the_last_good_table() {
    let (dir, manifest, blue) = blue_green_dir("dir");
    let table = Temp::new("follow");
    let _control = run_control(&dir.0, &table.0, 50, std::process::Stdio::null());
    let s = wait_for(&table.0, "generation 1:");
    assert!(s.contains(BLUE) && !s.contains(GREEN), "blue: {s}");
    // The selector switches to the green version.
    std::fs::write(&manifest, green(&blue)).unwrap();
    let s = wait_for(&table.0, "generation 2:");
    assert!(s.contains(GREEN) && !s.contains(BLUE), "green: {s}");
    // The directory becomes entirely invalid: the last good table stays.
    std::fs::write(&manifest, "apiVersion: v1\nkind: Service\nmetadata:\n\tname: broken\n").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let s = status(&table.0);
    assert!(s.starts_with("generation 2:") && s.contains(GREEN), "last good table: {s}");
}

/// A directory past one of its limits (here: a YAML alias bomb next to the manifest) is refused
/// as a whole — a change made with it is not published either — and the last good table stays
/// live until the directory is back within bounds.
#[test]
fn a_directory_past_a_limit_keeps_the_last_good_table() {
    let (dir, manifest, blue) = blue_green_dir("limit-dir");
    let table = Temp::new("limit");
    let _control = run_control(&dir.0, &table.0, 50, std::process::Stdio::null());
    assert!(wait_for(&table.0, "generation 1:").contains(BLUE));
    let items = vec!["x"; 2000].join(",");
    let aliases = vec!["*a"; 2000].join(",");
    let bomb = dir.0.join("bomb.yaml");
    std::fs::write(&bomb, format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  finalizers: &a [{items}]\n  ownerReferences: [{aliases}]\n")).unwrap();
    std::fs::write(&manifest, green(&blue)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let s = status(&table.0);
    assert!(s.starts_with("generation 1:") && s.contains(BLUE), "last good table: {s}");
    std::fs::remove_file(&bomb).unwrap();
    assert!(wait_for(&table.0, "generation 2:").contains(GREEN));
}

#[test]
fn serves_metrics_with_the_gateway_workers_counters() {
    use std::io::{BufRead, BufReader, Read, Write};
    let table = Temp::new("metrics");
    let mut control = run_control(&examples("nodeport"), &table.0, 50, std::process::Stdio::piped());
    // The log's first line says where the metrics are.
    let mut lines = BufReader::new(control.0.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split_once("metrics: http://")
        .and_then(|(_, a)| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("not the metrics address: {first:?}"))
        .to_owned();
    // A gateway worker registers on the table and publishes its counters.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reader = sluice_table::Reader::open(&table.0).unwrap();
    let mut counters = sluice_model::Counters::default();
    counters[sluice_model::Counter::RxFrames] = 1234;
    reader.publish_stats(&counters.export());
    let scrape = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let body = loop {
        let b = scrape();
        // The counters are read at each scrape, the figures set at each publication: two
        // moments, so wait for both.
        if b.contains("sluice_gateway_rx_frames_total{worker=") && b.contains("sluice_control_generation 1\n")
        {
            break b;
        }
        assert!(Instant::now() < deadline, "no worker counters or no publication in: {b}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("sluice_control_generation 1\n"), "{body}");
    assert!(body.contains("\nsluice_control_table_age_seconds "), "{body}");
    assert!(body.contains("sluice_control_gateway_workers 1\n"), "{body}");
    assert!(
        body.contains(&format!(
            "sluice_gateway_rx_frames_total{{worker=\"{}/0\"}} 1234\n",
            std::process::id()
        )),
        "{body}"
    );
}

#[test]
fn sighup_reloads_at_once() {
    let (dir, _, _) = blue_green_dir("hup-dir");
    let table = Temp::new("hup");
    let control = run_control(&dir.0, &table.0, 60_000, std::process::Stdio::null());
    wait_for(&table.0, "generation 1:");
    // Nothing changed on disk, so neither inotify nor the poll would republish: only the signal.
    let ok = Command::new("kill").args(["-HUP", &control.0.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let s = wait_for(&table.0, "generation 2:");
    assert!(s.contains(BLUE), "{s}");
}

/// A file written in place, and a file swapped in by rename (how editors and config-map volumes
/// replace files), are each picked up at once — the backstop poll is a minute away.
#[test]
fn inotify_reloads_at_once() {
    let (dir, manifest, blue) = blue_green_dir("inotify-dir");
    let table = Temp::new("inotify");
    let staging = Temp::new("inotify-staging");
    let _control = run_control(&dir.0, &table.0, 60_000, std::process::Stdio::null());
    assert!(wait_for(&table.0, "generation 1:").contains(BLUE));
    // In place: the selector flips to green.
    std::fs::write(&manifest, green(&blue)).unwrap();
    assert!(wait_for(&table.0, "generation 2:").contains(GREEN));
    // By rename: back to blue.
    std::fs::create_dir_all(&staging.0).unwrap();
    let staged = staging.0.join("petclinic.yaml");
    std::fs::write(&staged, &blue).unwrap();
    std::fs::rename(&staged, &manifest).unwrap();
    assert!(wait_for(&table.0, "generation 3:").contains(BLUE));
}

/// The directory disappearing (replaced, unmounted) is not a reason to stop: control keeps the
/// table live, and when the directory is back it watches it again — the poll is a minute away,
/// so only a re-armed inotify watch explains the prompt reload.
#[test]
fn a_vanished_directory_keeps_control_and_the_table() {
    let (dir, manifest, blue) = blue_green_dir("vanish-dir");
    let away = Temp::new("vanish-away");
    let table = Temp::new("vanish");
    let mut control = run_control(&dir.0, &table.0, 60_000, std::process::Stdio::null());
    wait_for(&table.0, "generation 1:");
    std::fs::rename(&dir.0, &away.0).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(control.0.try_wait().unwrap().is_none(), "control exited when its directory went away");
    assert!(status(&table.0).starts_with("generation 1:"));
    std::fs::rename(&away.0, &dir.0).unwrap();
    // The return is read at once (generation 2, still blue) ...
    let back = wait_for(&table.0, "generation 2:");
    assert!(back.contains(BLUE) && !back.contains(GREEN), "{back}");
    // ... and only then is the directory changed: had the manifest been written before that
    // read, the read alone would show it, re-armed watch or not. Now only the new watch can
    // announce it within the poll's minute.
    std::fs::write(&manifest, green(&blue)).unwrap();
    let next = wait_for(&table.0, "generation 3:");
    assert!(next.contains(GREEN) && !next.contains(BLUE), "the re-armed watch saw the change: {next}");
}
