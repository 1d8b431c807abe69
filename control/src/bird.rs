//! BGP through BIRD: control keeps the node's BIRD announcing exactly the VIPs this node serves,
//! and only while its gateway runs.
//!
//! Sluice speaks no BGP itself. The operator's BIRD (Debian `bird2`) holds the sessions with the
//! routers (ASNs, neighbours, BFD, filters: theirs); its configuration includes a file Sluice
//! owns (`--bird-include`), in which control writes two static protocols, `sluice_vips` (IPv4)
//! and `sluice_vips6` (IPv6), one `blackhole` route per VIP: the LoadBalancer addresses of the
//! Services and the addresses Ingresses are served on. The operator's BGP protocols export
//! `where proto = "sluice_vips"` (deploy/bird/ has an example). After each change control asks
//! BIRD to read its configuration again through BIRD's own control socket (`--bird-socket`,
//! the `configure` command birdc sends): BIRD then announces what appeared and withdraws what
//! went.
//!
//! **Only while the gateway serves.** A VIP is announced only while a gateway process is
//! registered on the table file, alive, and has adopted a table: control looks every
//! [`LIVENESS_EVERY`]. A gateway that dies (SIGKILL, a crash) has its routes withdrawn within
//! that plus BIRD's reconfiguration (measured in tests/tests/bgp.rs). A node that dies whole,
//! control and BIRD with it, is the routers' to notice: BFD where they speak it, else the BGP
//! hold timer.
//!
//! **Typed values only.** The file is written from `IpAddr`s alone; nothing a Service or an
//! Ingress says (names, annotations) reaches it, so no object can inject configuration.
//! Written to a temporary file and renamed over the include: BIRD never reads half a file.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

/// How often control checks the gateway and the VIPs against what BIRD was given.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(100);
/// How long one exchange with BIRD's control socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// The include file for `vips`: the two static protocols (present even when empty, so that the
/// operator's filters that name them stay valid).
pub fn render(vips: &BTreeSet<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by sluice-control (--bird-include): the VIPs this node serves while its gateway runs.\n\
         # Do not edit: it is rewritten on every change. Export them with `where proto = \"sluice_vips\"`\n\
         # (IPv4) and `where proto = \"sluice_vips6\"` (IPv6).\n",
    );
    for (name, v4) in [("sluice_vips", true), ("sluice_vips6", false)] {
        let _ = writeln!(out, "protocol static {name} {{\n\t{};", if v4 { "ipv4" } else { "ipv6" });
        for a in vips.iter().filter(|a| a.is_ipv4() == v4) {
            let _ = writeln!(out, "\troute {a}/{} blackhole;", if v4 { 32 } else { 128 });
        }
        out.push_str("}\n");
    }
    out
}

/// Asks BIRD, through its control socket, to read its configuration again (birdc's
/// `configure`). The protocol: BIRD greets with a `0001` line; each reply line is a four-digit
/// code, `-` when more lines follow or a space on the last; codes from 8000 up are errors.
pub fn configure(socket: &Path) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("BIRD's control socket {}: {e}", socket.display());
    let stream = UnixStream::connect(socket).map_err(fail)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(fail)?;
    let mut lines = BufReader::new(stream.try_clone().map_err(fail)?);
    let reply = |lines: &mut BufReader<UnixStream>| -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            // A reply is a few short lines: more than 64 KiB is not BIRD.
            if lines.read_line(&mut line).map_err(fail)? == 0 || text.len() > 65_536 {
                return Err(format!("BIRD's control socket {} closed mid-reply", socket.display()));
            }
            let line = line.trim_end();
            let (code, rest) = (line.get(..4).and_then(|c| c.parse::<u16>().ok()), line.get(4..));
            match (code, rest) {
                (Some(code), Some(rest)) if rest.starts_with(' ') || rest.is_empty() => {
                    text.push_str(rest.trim());
                    return Ok((code, text));
                }
                (Some(_), Some(rest)) if rest.starts_with('-') => {
                    text.push_str(&rest[1..]);
                    text.push('\n');
                }
                // A continuation line without a code (" text").
                _ => {
                    text.push_str(line.trim());
                    text.push('\n');
                }
            }
        }
    };
    let (code, hello) = reply(&mut lines)?;
    if code != 1 {
        return Err(format!("BIRD's control socket {}: greeted with {code} {hello}", socket.display()));
    }
    (&stream).write_all(b"configure\n").map_err(fail)?;
    let (code, text) = reply(&mut lines)?;
    if code >= 8000 {
        return Err(format!("BIRD refused its configuration: {text}"));
    }
    Ok(text)
}

/// Keeps BIRD's include in step with what should be announced.
#[derive(Debug)]
pub struct Announcer {
    include: PathBuf,
    socket: PathBuf,
    /// What BIRD last accepted; `None` until it accepted something (or after a failure: then
    /// the next call tries again).
    applied: Option<BTreeSet<IpAddr>>,
    /// The last failure logged (each distinct one is logged once).
    failure: Option<String>,
}

impl Announcer {
    /// For the include file `include` and BIRD's control socket `socket`.
    pub fn new(include: PathBuf, socket: PathBuf) -> Announcer {
        Announcer { include, socket, applied: None, failure: None }
    }

    /// Announces exactly `vips` (empty: withdraws them all), if that is not what BIRD has:
    /// rewrites the include and has BIRD reconfigure. Returns whether BIRD took a change.
    pub fn apply(&mut self, vips: &BTreeSet<IpAddr>) -> bool {
        if self.applied.as_ref() == Some(vips) {
            return false;
        }
        match self.write(vips).and_then(|()| configure(&self.socket)) {
            Ok(_) => {
                let (was, now) = (self.applied.as_ref().map_or(0, BTreeSet::len), vips.len());
                info!("BIRD: announcing {now} VIP(s) (was {was})");
                self.applied = Some(vips.clone());
                self.failure = None;
                true
            }
            Err(e) => {
                if self.failure.as_ref() != Some(&e) {
                    warn!("BIRD: {e}; trying again");
                    self.failure = Some(e);
                }
                self.applied = None;
                false
            }
        }
    }

    fn write(&self, vips: &BTreeSet<IpAddr>) -> Result<(), String> {
        let tmp = PathBuf::from(format!("{}.tmp", self.include.display()));
        let fail = |e: std::io::Error| format!("{}: {e}", self.include.display());
        std::fs::write(&tmp, render(vips)).map_err(fail)?;
        std::fs::rename(&tmp, &self.include).map_err(fail)
    }
}

/// Whether process `pid` runs (exists, and is not a zombie waiting for its parent).
pub fn process_alive(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the state follows the last parenthesis (comm may hold any).
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// Runs the announcer on a thread of its own: every [`LIVENESS_EVERY`], announces `wanted`
/// while `gateway_up()` says a gateway serves, nothing otherwise.
pub fn spawn(
    mut announcer: Announcer,
    wanted: std::sync::Arc<std::sync::Mutex<BTreeSet<IpAddr>>>,
    gateway_up: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("bird".into()).spawn(move || {
        let mut was_up = None;
        loop {
            let up = gateway_up();
            if was_up != Some(up) {
                info!(
                    "BIRD: the gateway is {}",
                    if up { "up: announcing its VIPs" } else { "not running: withdrawing every VIP" }
                );
                was_up = Some(up);
            }
            let vips = if up {
                wanted.lock().map(|w| w.clone()).unwrap_or_else(|p| p.into_inner().clone())
            } else {
                BTreeSet::new()
            };
            announcer.apply(&vips);
            std::thread::sleep(LIVENESS_EVERY);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::unix::net::UnixListener;

    fn vips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_process_is_alive_until_it_is_a_zombie() {
        assert!(process_alive(u64::from(std::process::id())));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = u64::from(child.id());
        // Exited, not yet waited for: a zombie.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }

    #[test]
    fn the_include_holds_one_blackhole_route_per_vip_in_two_static_protocols() {
        let text = render(&vips(&["198.18.100.10", "2001:db8:100::10", "198.18.100.11"]));
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "protocol static sluice_vips {",
                "\tipv4;",
                "\troute 198.18.100.10/32 blackhole;",
                "\troute 198.18.100.11/32 blackhole;",
                "}",
                "protocol static sluice_vips6 {",
                "\tipv6;",
                "\troute 2001:db8:100::10/128 blackhole;",
                "}",
            ]
        );
        // Nothing to announce: both protocols, empty.
        let empty = render(&BTreeSet::new());
        assert!(empty.contains("protocol static sluice_vips {\n\tipv4;\n}"), "{empty}");
        assert!(empty.contains("protocol static sluice_vips6 {\n\tipv6;\n}"), "{empty}");
    }

    /// A BIRD control socket that greets, reads one command and answers `answer`.
    fn fake_bird(dir: &Path, answer: &'static str) -> (PathBuf, std::thread::JoinHandle<String>) {
        let path = dir.join(format!("bird-{}.ctl", answer.len()));
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = [0u8; 10];
            s.read_exact(&mut cmd).unwrap();
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&cmd).into_owned()
        });
        (path, t)
    }

    #[test]
    fn configure_speaks_birdcs_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, t) =
            fake_bird(dir.path(), "0002-Reading configuration from /etc/bird.conf\n0003 Reconfigured\n");
        let said = configure(&sock).unwrap();
        assert_eq!(t.join().unwrap(), "configure\n");
        assert!(said.contains("Reconfigured"), "{said}");
        let (sock, _t) = fake_bird(
            dir.path(),
            "0002-Reading configuration from /etc/bird.conf\n8002 /etc/sluice.conf:3:9 syntax error\n",
        );
        let e = configure(&sock).unwrap_err();
        assert!(e.contains("refused") && e.contains("syntax error"), "{e}");
        assert!(configure(&dir.path().join("none.ctl")).unwrap_err().contains("none.ctl"));
    }

    #[test]
    fn an_announcer_writes_and_reconfigures_only_on_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let include = dir.path().join("sluice.conf");
        let (sock, t) = fake_bird(dir.path(), "0003 Reconfigured\n");
        let mut a = Announcer::new(include.clone(), sock);
        assert!(a.apply(&vips(&["198.18.100.10"])));
        t.join().unwrap();
        assert!(std::fs::read_to_string(&include).unwrap().contains("route 198.18.100.10/32 blackhole;"));
        // The same set again: no file written, no socket opened (the fake would not answer).
        assert!(!a.apply(&vips(&["198.18.100.10"])));
        // BIRD gone: not applied, and tried again next time.
        let mut b = Announcer::new(include, dir.path().join("gone.ctl"));
        assert!(!b.apply(&vips(&[])));
        assert!(b.applied.is_none());
    }
}
