//! Restarts that keep every connection: the flow journals.
//!
//! Each worker records its flows in a journal (`sluice_lb::journal`) kept in a file in shared
//! memory, `PREFIX-IFACE-QUEUE` (`--flow-journal PREFIX`; by default per network namespace,
//! [`default_prefix`]),
//! which outlives the process — a SIGKILL included. At start, before any worker runs, the gateway
//! reads every journal a previous gateway on the same interface left ([`read_previous`]) and each
//! worker carries over the flows it owns now (the same sharing out as frames: by client address,
//! so a different worker count still finds each flow its owner). A worker writes its own journal
//! to `PATH.new` while it carries flows over, and renames it over `PATH` when done: a gateway
//! killed half-way through its start leaves the old journal whole for the next one.
//!
//! The other half is the XDP program, which outlives the process too (`Steering::attach_kept`):
//! between two gateways it drops the service frames rather than hand them to the kernel, and the
//! next gateway replaces it once its own program is ready. See docs/restarts.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_lb::flow::{Flow, Timeouts};
use sluice_lb::journal::{self, Recovered};
use sluice_log::{info, warn};
use sluice_table::state::{self, PreviousFile, StateFile};

/// How long to wait for a gateway still holding its journals to let go of them.
const PREVIOUS_WAIT: Duration = Duration::from_secs(5);
/// Records read from a journal at a time.
const CHUNK_RECORDS: usize = 8192;

/// The flows a previous gateway left, for every worker to take its own from.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    /// Flows to carry over.
    pub(crate) flows: Vec<Flow>,
    /// Records that were not (damaged, or in a SYN-cookie handshake).
    pub(crate) not_carried: usize,
}

/// The default journal prefix: `/dev/shm/sluice-flows-netN`, N the inode of this process's
/// network namespace, so that gateways in different namespaces (whose interfaces may share
/// names) never share journals.
pub(crate) fn default_prefix() -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let ns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    PathBuf::from(format!("/dev/shm/sluice-flows-net{ns}"))
}

/// The journal of queue `queue` on `iface`.
pub(crate) fn journal_path(prefix: &Path, iface: &str, queue: usize) -> PathBuf {
    PathBuf::from(format!("{}-{iface}-{queue}", prefix.display()))
}

/// The journals at `prefix` for `iface`: (queue, path), in queue order.
fn journals(prefix: &Path, iface: &str) -> Vec<(usize, PathBuf)> {
    let dir = prefix.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(base) = prefix.file_name().and_then(|b| b.to_str()) else { return Vec::new() };
    let stem = format!("{base}-{iface}-");
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let q = name.strip_prefix(&stem)?;
            (!q.is_empty() && q.len() <= 4 && q.bytes().all(|b| b.is_ascii_digit()))
                .then(|| q.parse().ok())
                .flatten()
                .map(|q| (q, dir.join(&name)))
        })
        .collect();
    out.sort();
    out
}

/// Reads every journal a previous gateway on `iface` left at `prefix`, once no process holds
/// them (waiting a little for one that is stopping), and removes those of queues beyond
/// `queues` (their flows are carried over by the workers that own them now). A journal that
/// cannot be read is logged and skipped: its flows are lost, the gateway starts.
pub(crate) fn read_previous(
    prefix: &Path,
    iface: &str,
    queues: usize,
    timeouts: &Timeouts,
) -> Result<Carried, String> {
    let now = sluice_sys::monotonic_ns();
    let mut all = Recovered::default();
    for (q, path) in journals(prefix, iface) {
        let file = match state::previous(&path, PREVIOUS_WAIT) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e @ sluice_table::OpenError::WriterBusy { .. }) => {
                return Err(format!(
                    "flow journal {e}: another gateway on {iface} still runs (stop it first, or give this one \
                     another --flow-journal)"
                ));
            }
            Err(e) => {
                warn!("flow journal {}: {e}; its flows are not carried over", path.display());
                continue;
            }
        };
        if let Err(e) = read_one(&file, now, timeouts, &mut all) {
            warn!("flow journal {}: {e}; its flows are not carried over", path.display());
        }
        if q >= queues {
            drop(file);
            let _ = std::fs::remove_file(&path);
        }
    }
    let not_carried = all.damaged + all.skipped;
    if !all.flows.is_empty() || not_carried > 0 {
        info!(
            "carrying over {} flow(s) from the previous gateway's journals ({} damaged record(s), {} in a SYN-cookie \
             handshake, left behind)",
            all.flows.len(),
            all.damaged,
            all.skipped
        );
    }
    Ok(Carried { flows: all.flows, not_carried })
}

fn read_one(file: &PreviousFile, now: u64, timeouts: &Timeouts, out: &mut Recovered) -> Result<(), String> {
    let mut head = [0u8; journal::HEADER];
    let n = file.read_at(&mut head, 0).map_err(|e| e.to_string())?;
    let capacity = journal::header(&head[..n]).map_err(|e| e.to_string())?;
    let len = file.len();
    let need = journal::bytes_for(capacity) as u64;
    if len < need {
        return Err(format!("{len} bytes, shorter than the {need} its header calls for"));
    }
    let mut buf = vec![0u8; CHUNK_RECORDS * journal::RECORD];
    let mut at = journal::HEADER as u64;
    while at < need {
        let want = ((need - at) as usize).min(buf.len());
        let got = file.read_at(&mut buf[..want], at).map_err(|e| e.to_string())?;
        if got < want {
            // Shrunk while read: what was read counts, the rest is lost.
            out.add(&buf[..got - got % journal::RECORD], now, timeouts);
            return Err("it shrank while it was read".into());
        }
        out.add(&buf[..got], now, timeouts);
        at += got as u64;
    }
    Ok(())
}

/// The SYN cookie key a previous gateway on `iface` used, if it left one at
/// `PREFIX-IFACE-cookie` (a state file like the journals, checked when read; read even while its
/// gateway runs, since the key never changes), else `fresh`; either way written there for the next gateway, whose program then
/// checks the cookies this one's answered, so that a client's handshake across a restart
/// completes. Returns the key and the file (held, locked, while this gateway runs).
pub(crate) fn cookie_key(prefix: &Path, iface: &str, fresh: [u64; 2]) -> ([u64; 2], Option<StateFile>) {
    const MAGIC: &[u8; 8] = b"SLUICECK";
    let path = PathBuf::from(format!("{}-{iface}-cookie", prefix.display()));
    let mut key = fresh;
    // Not locked: a gateway still running (an upgrade's old one) shares its key.
    match state::read_only(&path) {
        Ok(Some(f)) => {
            let mut b = [0u8; 24];
            match f.read_at(&mut b, 0) {
                Ok(24) if &b[..8] == MAGIC => {
                    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
                    key = [word(8), word(16)];
                    info!("SYN cookies: the previous gateway's key, so that its cookies still check");
                }
                _ => warn!("{}: not a SYN cookie key; a new one", path.display()),
            }
        }
        Ok(None) => {}
        Err(e) => warn!("SYN cookie key {e}; a new one"),
    }
    let tmp = PathBuf::from(format!("{}.new", path.display()));
    let file = match StateFile::create(&tmp, 4096) {
        Ok(mut f) => {
            let b = f.as_mut();
            b[..8].copy_from_slice(MAGIC);
            b[8..16].copy_from_slice(&key[0].to_le_bytes());
            b[16..24].copy_from_slice(&key[1].to_le_bytes());
            match std::fs::rename(&tmp, &path) {
                Ok(()) => Some(f),
                Err(e) => {
                    warn!("SYN cookie key: renaming {}: {e}", tmp.display());
                    None
                }
            }
        }
        Err(e) => {
            warn!("SYN cookie key {e}: the next gateway will not check this one's cookies");
            None
        }
    };
    (key, file)
}

/// One worker's journal: where it goes, and the flows to carry over.
#[derive(Debug, Clone)]
pub(crate) struct JournalSetup {
    pub(crate) path: PathBuf,
    pub(crate) carried: Arc<Carried>,
}

impl JournalSetup {
    /// Starts the worker's journal and carries its flows over (those `mine` accepts): writes to
    /// `PATH.new`, then renames it over `PATH`. Without a journal file (it cannot be created)
    /// the flows are still carried over, and the next restart will not keep them.
    pub(crate) fn start(
        &self,
        l4: &mut sluice_lb::L4,
        capacity: usize,
        queue: u32,
        mine: impl FnMut(&Flow) -> bool,
    ) {
        let tmp = PathBuf::from(format!("{}.new", self.path.display()));
        let journaled = StateFile::create(&tmp, journal::bytes_for(capacity))
            .map_err(|e| e.to_string())
            .and_then(|f| l4.set_journal(Box::new(f)).map_err(|e| e.to_string()));
        if let Err(e) = &journaled {
            warn!(queue, "flow journal {}: {e}; a restart will not keep this worker's flows", tmp.display());
        }
        let journaled = journaled.is_ok();
        let c = &self.carried;
        let n = l4.carry_over(
            &c.flows,
            if queue == 0 { c.not_carried } else { 0 },
            sluice_sys::monotonic_ns(),
            mine,
        );
        if n > 0 {
            info!(queue, "carried over {n} flow(s)");
        }
        if journaled && let Err(e) = std::fs::rename(&tmp, &self.path) {
            warn!(queue, "flow journal: renaming {} to {}: {e}", tmp.display(), self.path.display());
        }
    }
}

/// `--release`: takes the XDP program a stopped gateway left off each interface and removes its
/// journals (their flows are forgotten): the interfaces' traffic is the kernel's again.
pub(crate) fn release(ifaces: &[String], prefix: Option<&Path>) -> Result<(), String> {
    for iface in ifaces {
        match sluice_xsk::Steering::release(iface) {
            Ok(true) => info!("took the gateway's XDP program off {iface}"),
            Ok(false) => info!("no XDP program on {iface}"),
            Err(e) => return Err(e.to_string()),
        }
        if let Some(prefix) = prefix {
            let _ = std::fs::remove_file(format!("{}-{iface}-cookie", prefix.display()));
            for (_, path) in journals(prefix, iface) {
                match state::previous(&path, PREVIOUS_WAIT) {
                    Ok(_) => {
                        let _ = std::fs::remove_file(&path);
                        info!("removed flow journal {}", path.display());
                    }
                    Err(e) => return Err(format!("flow journal {e}")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_key_outlives_its_gateway() {
        let d = std::env::temp_dir().join(format!("sluice-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let prefix = d.join("fl");
        let (first, held) = cookie_key(&prefix, "eth0", [1, 2]);
        assert_eq!(first, [1, 2], "none before: the fresh one");
        drop(held); // the gateway ends
        let (second, held) = cookie_key(&prefix, "eth0", [3, 4]);
        assert_eq!(second, [1, 2], "the previous gateway's");
        drop(held);
        // A file that passes the open checks (ours, 0600) but holds no key: a new one.
        let path = d.join("fl-eth0-cookie");
        std::fs::write(&path, [b'x'; 24]).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cookie_key(&prefix, "eth0", [5, 6]).0, [5, 6], "a damaged file: a new key");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn journals_are_found_by_interface_and_queue() {
        let d = std::env::temp_dir().join(format!("sluice-journals-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in
            ["fl-eth0-0", "fl-eth0-1", "fl-eth0-1.new", "fl-eth0-x", "fl-eth1-0", "fl-eth0-", "fl-eth0-12"]
        {
            std::fs::write(d.join(n), b"").unwrap();
        }
        let got: Vec<usize> = journals(&d.join("fl"), "eth0").into_iter().map(|(q, _)| q).collect();
        assert_eq!(got, [0, 1, 12]);
        assert_eq!(journal_path(&d.join("fl"), "eth0", 3), d.join("fl-eth0-3"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
