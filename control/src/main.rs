//! `sluice-control`: compile Kubernetes manifests into the service table and publish it to the
//! gateway through shared memory; or show what the gateway is running.
//!
//! ```text
//! sluice-control run --manifests deploy/examples/nodeport --node-address 198.18.0.1 \
//!     [--table /dev/shm/sluice-table] [--node-name gw-1] [--once] \
//!     [--external-ip-ranges 203.0.113.0/24] [--max-manifest-bytes N] [--max-objects N]
//! sluice-control status [--table /dev/shm/sluice-table]
//! ```
//!
//! `run` re-reads the directory as soon as a file in it is written, renamed or removed (inotify),
//! on SIGHUP, and, as a backstop, when a poll every `--interval-ms` sees a change;
//! with `--kubeconfig FILE` or `--in-cluster` it watches a cluster instead. It logs through
//! `sluice-log` (standard error; `SLUICE_LOG` or `RUST_LOG` filter it): a line per publication,
//! warnings for objects left out. `status` writes its report to standard output.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand};
use sluice_control::checked::{AddressRange, Pool};
use sluice_control::cluster::{self, Cluster, Synced};
use sluice_control::compile::Config;
use sluice_control::leader::{
    LeaderLease, clear_ingress_status, clear_load_balancer_status, write_ingress_status,
    write_load_balancer_status,
};
use sluice_control::load::{self, load_dir_within};
use sluice_control::metrics::Metrics;
use sluice_control::metrics::server::{self, Limits};
use sluice_control::publish::{Published, StatusWork, publish_store};
use sluice_control::store::{Changes, Located, Store};
use sluice_model::image;
use sluice_model::route_stats::Row;
use sluice_model::service::{Frontend, Protocol};
use sluice_table::{Geometry, Publisher, Reader, Refresh};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "sluice-control",
    version,
    about = "Sluice's control process: Kubernetes objects to the gateway's service table"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Parse the command line (required flags, values, conflicts), then exit 0 without doing
    /// anything: how the tests check the systemd unit's command line. Hidden: not for users.
    #[arg(long, global = true, hide = true)]
    check_args: bool,
}

#[derive(Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start-up")]
enum Command {
    /// Compile and publish the table from a directory of manifests or from a cluster; republish
    /// when it changes.
    Run(RunArgs),
    /// The migration report: how Sluice would serve the Ingresses of a directory of manifests
    /// or a `kubectl get ingress,service,secret,configmap -A -o yaml` dump — per annotation of
    /// ingress-nginx's, served as is, served differently, ignored or refused. Exits 1 when
    /// something is refused.
    Check {
        /// A directory of manifests, or one file.
        #[arg(long)]
        manifests: PathBuf,
    },
    /// Show the table the gateway is running.
    Status {
        /// The shared-memory table file.
        #[arg(long, default_value = sluice_table::DEFAULT_PATH)]
        table: PathBuf,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["manifests", "kubeconfig", "in_cluster"])))]
struct RunArgs {
    /// Directory of YAML/JSON manifests (Service, EndpointSlice, Endpoints, Pod, Ingress,
    /// IngressClass, Secret, IPAddressPool). Read within --max-manifest-bytes,
    /// --max-directory-bytes and --max-objects, YAML aliases expanding a document to at most
    /// twice its size (plus 64 Ki); past a bound the directory is refused and the last good
    /// table stays live. Reading a file then takes at most about 70 × --max-manifest-bytes
    /// (the YAML parser's events) on top of the objects kept, which are less than their text
    /// (docs/kubernetes.md §8: 125 MiB measured for 64 MiB of kubectl dumps).
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Largest manifest file, in bytes. In cluster mode, the largest object held, as JSON
    /// without its managed fields: a larger one is left out and reported, `Kind ns/name: …`.
    #[arg(long, default_value_t = load::MAX_FILE_BYTES, value_name = "BYTES")]
    max_manifest_bytes: u64,
    /// Largest sum of the manifest files' sizes, in bytes.
    #[arg(long, default_value_t = load::MAX_DIRECTORY_BYTES, value_name = "BYTES")]
    max_directory_bytes: u64,
    /// Most objects in the manifest directory (each document, each item of a List). In cluster
    /// mode, the most objects held of the kinds watched, all kinds together: past it, no table
    /// is published (the last good one stays live), the error is logged once, and the kinds
    /// that did not fit are listed again until they do (docs/kubernetes.md §8).
    #[arg(long, default_value_t = load::MAX_OBJECTS, value_name = "N")]
    max_objects: usize,
    /// Watch the cluster of this kubeconfig instead.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch the cluster this process runs in (service account) instead.
    #[arg(long)]
    in_cluster: bool,
    /// The shared-memory table file the gateway reads (created with mode 0600).
    #[arg(long, default_value = sluice_table::DEFAULT_PATH)]
    table: PathBuf,
    /// This node's address (where NodePorts answer); repeat for more.
    #[arg(long = "node-address", required = true)]
    node_addrs: Vec<IpAddr>,
    /// This node's name (externalTrafficPolicy: Local keeps endpoints of this node).
    #[arg(long)]
    node_name: Option<String>,
    /// Source address for FullNAT; repeat for more (default: the node addresses).
    #[arg(long = "snat-address")]
    snat: Vec<IpAddr>,
    /// The loadBalancerClass implemented (default: Services without a class).
    #[arg(long)]
    load_balancer_class: Option<String>,
    /// LoadBalancer addresses to allocate from in cluster mode (an address, a CIDR or a range
    /// a-b; repeat for more), besides the cluster's MetalLB IPAddressPools. A manifest
    /// directory gives them as IPAddressPool objects.
    #[arg(long = "lb-pool")]
    lb_pools: Vec<AddressRange>,
    /// Where `spec.externalIPs` may be served from: addresses, CIDRs or ranges a-b, separated by
    /// commas or the flag repeated. None by default: every external IP is refused, since whoever
    /// may create a Service could otherwise take any address (the hole Kubernetes closes with
    /// admission control, CVE-2020-8554). Node addresses are refused anyway: they serve
    /// NodePorts only.
    #[arg(long = "external-ip-ranges", value_delimiter = ',', value_name = "RANGE")]
    external_ip_ranges: Vec<AddressRange>,
    /// Namespace of the leader-election Lease (cluster mode).
    #[arg(long, default_value = "default")]
    lease_namespace: String,
    /// This process's identity in the Lease (default: host name and process id).
    #[arg(long)]
    identity: Option<String>,
    /// Publish once and exit.
    #[arg(long)]
    once: bool,
    /// How often to look for changes, in milliseconds (a backstop: inotify and SIGHUP reload
    /// at once).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    interval_ms: u64,
    /// Also serve the Ingresses of ingress-nginx's IngressClasses (controller
    /// `k8s.io/ingress-nginx`, usually the class `nginx`), with ingress-nginx's path matching
    /// and annotations: point their DNS at Sluice and nothing else changes (docs/l7.md,
    /// "ingress-nginx's dialect"). Off by default: those Ingresses are another controller's.
    #[arg(long)]
    ingress_nginx_class: bool,
    /// Where to serve Prometheus metrics (loopback by default; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9477")]
    metrics_address: SocketAddr,
    /// BGP through BIRD: the file, included by this node's BIRD configuration, in which control
    /// writes the VIPs this node serves (static protocols `sluice_vips` and `sluice_vips6`)
    /// while its gateway runs, and none while it does not; BIRD is asked to reconfigure after
    /// each change (docs/bgp.md).
    #[arg(long, value_name = "PATH")]
    bird_include: Option<PathBuf>,
    /// BIRD's control socket (with --bird-include).
    #[arg(long, value_name = "PATH", default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// Draining this node (with --bird-include): while this file exists, no VIP is announced
    /// from here (the routers move the flows to the other nodes, which carry them through
    /// flow sync) and the gateway keeps serving what still arrives. `touch` it to drain,
    /// remove it to announce again (docs/several-nodes.md). In L2 mode likewise: the node
    /// holds no VIP, and the others take its VIPs over at once (docs/l2.md).
    #[arg(long, value_name = "PATH", default_value = "/run/sluice/drain")]
    drain_file: PathBuf,
    /// L2 mode (docs/l2.md), manifest mode: where this node's election listens, on its link
    /// to the other gateway nodes (ADDR:PORT; 7947 is the usual port). Needs --l2-key and
    /// --node-name. Without it, L2Advertisements are an error and their VIPs are answered
    /// for as without L2 mode.
    #[arg(long, value_name = "ADDR:PORT", requires_all = ["l2_key", "node_name"])]
    l2_listen: Option<SocketAddr>,
    /// Another gateway node's election (ADDR:PORT); repeat for each.
    #[arg(long = "l2-peer", value_name = "ADDR:PORT", requires = "l2_listen")]
    l2_peers: Vec<SocketAddr>,
    /// The election's shared key: a file of at least 16 bytes, the same on every node
    /// (`head -c 32 /dev/urandom | base64 > FILE`).
    #[arg(long, value_name = "FILE")]
    l2_key: Option<PathBuf>,
    /// How often each node's election says hello, in milliseconds; a node silent for 10/3 of
    /// it is dead (1 s for 300 ms).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    l2_interval_ms: u64,
    /// The gateway's client-facing interface (its --iface): an L2Advertisement's `interfaces`
    /// must list it for this node to announce its VIPs.
    #[arg(long, value_name = "NAME")]
    l2_interface: Option<String>,
    /// L2 mode, cluster mode: each VIP's Lease duration, in seconds (renewed every quarter of
    /// it; taken over this long after its holder's last renewal).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=300))]
    l2_lease_duration_s: i32,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.check_args {
        return std::process::ExitCode::SUCCESS;
    }
    sluice_log::init("info");
    // Two rustls crypto providers are compiled in (ring, through kube, and aws-lc-rs, which
    // checks TLS Secrets): rustls then picks no process default, and kube's client would panic
    // building its TLS configuration. Name one. (Err: one is installed already; fine.)
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let r = match cli.command {
        Command::Run(args) => run(args),
        Command::Status { table } => status(&table),
        Command::Check { manifests } => check(&manifests),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> Result<(), String> {
    let loaded = if path.is_dir() {
        load::load_dir(path).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut loaded = load::Loaded::default();
        load::load_str(path, &text, &mut loaded);
        loaded
    };
    let report = sluice_control::check::report(loaded);
    for line in &report.lines {
        println!("{line}");
    }
    let refused = report.lines.iter().filter(|l| l.contains(": refused: ")).count();
    println!(
        "{} Ingresses checked; {} lines; {refused} annotations refused",
        report.ingresses,
        report.lines.len()
    );
    if report.refused { Err("something is refused (see above)".into()) } else { Ok(()) }
}

fn run(args: RunArgs) -> Result<(), String> {
    let cfg = Config {
        node_name: args.node_name.clone(),
        node_addrs: args.node_addrs.clone(),
        snat: args.snat.clone(),
        load_balancer_class: args.load_balancer_class.clone(),
        external_ip_ranges: args.external_ip_ranges.clone(),
        ingress_nginx_class: args.ingress_nginx_class,
    };
    match &args.manifests {
        Some(dir) => run_manifests(dir, &args, &cfg),
        None => run_cluster(&args, &cfg),
    }
}

/// The table file, and the metrics that read its workers' counters.
type Table = (Arc<Mutex<Publisher>>, Arc<Metrics>);

fn open_table(path: &Path) -> Result<Table, String> {
    let publisher = Publisher::create(path, Geometry::default()).map_err(|e| e.to_string())?;
    let publisher = Arc::new(Mutex::new(publisher));
    let (stats, rows) = (publisher.clone(), publisher.clone());
    let metrics = Metrics::with_routes(
        move || stats.lock().map(|p| p.reader_stats()).unwrap_or_default(),
        move |row| {
            let values = rows.lock().map(|p| p.route_row(usize::from(row))).unwrap_or_default();
            values.into_iter().map(|(record, pid, v)| (record, pid, Row::from(&v[..]))).collect()
        },
    );
    Ok((publisher, Arc::new(metrics)))
}

/// Binds the metrics endpoint (unless `--once`) and says where it is.
fn metrics_endpoint(args: &RunArgs) -> Result<Option<server::Endpoint>, String> {
    if args.once {
        return Ok(None);
    }
    let addr = args.metrics_address;
    let endpoint = server::bind(addr).map_err(|e| format!("metrics on {addr}: {e}"))?;
    info!("metrics: http://{}/metrics", endpoint.local_addr());
    Ok(Some(endpoint))
}

/// Names, sizes and modification times of the manifest files: what "changed" means. At most
/// `max_entries` of them: a directory with more is refused by the load anyway, and inotify still
/// sees every change in it.
fn fingerprint(dir: &Path, max_entries: usize) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.take(max_entries)
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m.len(), m.modified().ok())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Manifest mode: publish the directory, then again whenever it changes.
fn run_manifests(dir: &Path, args: &RunArgs, cfg: &Config) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory of manifests", dir.display()));
    }
    let (publisher, metrics) = open_table(&args.table)?;
    if let Some(endpoint) = metrics_endpoint(args)? {
        endpoint.spawn_thread(metrics.clone(), Limits::default()).map_err(|e| format!("metrics: {e}"))?;
    }
    let vips = start_bird(args, &publisher)?;
    let watch = DirWatch::new(dir, args.once)?;
    let election = start_l2_election(args, &publisher, watch.poke.clone())?;
    let interval = Duration::from_millis(args.interval_ms);
    let limits = load::Limits {
        max_file_bytes: args.max_manifest_bytes,
        max_directory_bytes: args.max_directory_bytes,
        max_objects: args.max_objects,
    };
    let mut last = Published::default();
    last.l2.node = args.node_name.clone();
    last.l2.interface = args.l2_interface.clone();
    last.l2.elected = election.is_some();
    let mut seen = None;
    // A change only the poll saw: read once the directory looks the same at the next poll. A
    // file rewritten in place is empty or half-written for a moment, and reading it then would
    // publish a table without its objects; inotify's events come when the writer closes the
    // file, so what they announce is read at once.
    let mut settling = None;
    let mut first = true;
    loop {
        let asked = watch.reload_asked();
        let now = fingerprint(dir, limits.max_objects.saturating_add(1));
        let read = if asked || first {
            true
        } else if seen.as_ref() == Some(&now) {
            settling = None;
            false
        } else if settling.as_ref() == Some(&now) {
            true
        } else {
            settling = Some(now.clone());
            false
        };
        if read {
            first = false;
            settling = None;
            seen = Some(now);
            if let Some(e) = &election {
                last.l2.active = lock(e).held.clone();
            }
            if let Some((work, store)) = publish_dir(dir, &limits, cfg, &publisher, &mut last, &metrics)? {
                set_vips(&vips, &work, &store, cfg, &last);
                if let Some(e) = &election {
                    lock(e).candidates = last.l2.vips.candidates.clone();
                }
            }
        }
        if args.once {
            return match last.has_table() {
                true => Ok(()),
                false => Err(format!("{}: nothing published", dir.display())),
            };
        }
        watch.sleep(interval);
    }
}

/// What wakes manifest mode before its poll: SIGHUP (re-read now, changed or not) and inotify (a
/// written, renamed or removed file). When the directory itself goes (renamed away, removed),
/// the watch is `lost`, and re-armed once the directory is back.
struct DirWatch<'a> {
    dir: &'a Path,
    hup: Arc<AtomicBool>,
    poke: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
}

impl DirWatch<'_> {
    fn new(dir: &Path, once: bool) -> Result<DirWatch<'_>, String> {
        let watch = DirWatch {
            dir,
            hup: Arc::new(AtomicBool::new(false)),
            poke: Arc::new(AtomicBool::new(false)),
            lost: Arc::new(AtomicBool::new(false)),
        };
        signal_hook::flag::register(signal_hook::consts::SIGHUP, watch.hup.clone())
            .map_err(|e| format!("SIGHUP handler: {e}"))?;
        if !once && let Err(e) = watch_directory(dir, watch.poke.clone(), watch.lost.clone()) {
            warn!("inotify on {}: {e}; polling instead", dir.display());
        }
        Ok(watch)
    }

    /// Whether the directory is to be read again now, changed or not.
    fn reload_asked(&self) -> bool {
        let mut asked = false;
        if self.lost.load(Relaxed) && self.dir.is_dir() {
            self.lost.store(false, Relaxed);
            match watch_directory(self.dir, self.poke.clone(), self.lost.clone()) {
                Ok(()) => info!("{} is back: watching it again", self.dir.display()),
                Err(e) => warn!("inotify on {}: {e}; polling instead", self.dir.display()),
            }
            asked = true;
        }
        if self.poke.swap(false, Relaxed) {
            // Let a burst of writes (an editor's save, `kubectl` writing several files) land
            // before reading, then read once.
            std::thread::sleep(Duration::from_millis(5));
            self.poke.store(false, Relaxed);
            asked = true;
        }
        if self.hup.swap(false, Relaxed) {
            info!("SIGHUP: reloading {}", self.dir.display());
            asked = true;
        }
        asked
    }

    /// Sleeps `interval`, in short steps so that a SIGHUP or an inotify event is acted on
    /// promptly.
    fn sleep(&self, interval: Duration) {
        let until = Instant::now() + interval;
        while Instant::now() < until
            && !self.hup.load(Relaxed)
            && !self.poke.load(Relaxed)
            && (!self.lost.load(Relaxed) || !self.dir.is_dir())
        {
            std::thread::sleep(interval.min(Duration::from_millis(2)));
        }
    }
}

/// Watches `dir` on a thread of its own and raises `poke` whenever a file in it is finished
/// (closed after writing), moved in or out, or deleted. Partial writes are not events: the reload
/// sees whole files (the backstop poll reads a change only once it has held for one interval).
fn watch_directory(dir: &Path, poke: Arc<AtomicBool>, lost: Arc<AtomicBool>) -> std::io::Result<()> {
    use inotify::{EventMask, Inotify, WatchMask};
    let mut inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF,
    )?;
    std::thread::Builder::new().name("sluice-inotify".into()).spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match inotify.read_events_blocking(&mut buffer) {
                Ok(events) => {
                    let gone = EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED;
                    let (mut any, mut dir_gone) = (false, false);
                    for event in events {
                        any = true;
                        dir_gone |= event.mask.intersects(gone);
                    }
                    if dir_gone {
                        // This watch follows the old inode; the run loop arms a new one.
                        lost.store(true, Relaxed);
                    }
                    if any {
                        poke.store(true, Relaxed);
                    }
                    if dir_gone {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("inotify stopped ({e}); polling continues");
                    return;
                }
            }
        }
    })?;
    Ok(())
}

/// Loads the directory and publishes what is valid in it; with nothing valid in it, or past one
/// of its limits, the last good table stays.
fn publish_dir(
    dir: &Path,
    limits: &load::Limits,
    cfg: &Config,
    publisher: &Mutex<Publisher>,
    last: &mut Published,
    metrics: &Metrics,
) -> Result<Option<(StatusWork, Store)>, String> {
    let loaded = match load_dir_within(dir, limits) {
        Ok(loaded) => loaded,
        // The directory went away (being replaced, unmounted): keep serving what runs.
        Err(e) if last.has_table() => {
            error!("{}: {e}; the last good table stays live", dir.display());
            return Ok(None);
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    metrics.update(|f| f.manifest_errors = loaded.errors.len());
    for e in &loaded.errors {
        warn!("{e}");
    }
    if loaded.incomplete {
        // What loaded is not what the directory says: publishing it would drop what was not read.
        if last.has_table() {
            error!("{}: past a limit (above); the last good table stays live", dir.display());
        } else {
            error!("{}: past a limit (above); nothing published until it is fixed", dir.display());
        }
        return Ok(None);
    }
    if loaded.store.l4_objects() == 0 && !loaded.errors.is_empty() && last.has_table() {
        warn!("nothing valid in {}: the last good table stays live", dir.display());
        return Ok(None);
    }
    // A directory is read whole: compiled whole (each Service's Maglev table still reused when
    // its members did not change).
    let work = publish_store(&loaded.store, cfg, &Changes::everything(), publisher, last, metrics)?;
    Ok(Some((work, loaded.store)))
}

/// What to announce, shared with the BIRD thread.
type Vips = Option<Arc<Mutex<sluice_control::bird::Plan>>>;

/// With --bird-include: starts the thread that keeps BIRD announcing the VIPs while a gateway
/// serves the table (docs/bgp.md).
fn start_bird(args: &RunArgs, publisher: &Arc<Mutex<Publisher>>) -> Result<Vips, String> {
    let Some(include) = &args.bird_include else { return Ok(None) };
    if args.once {
        return Ok(None);
    }
    let wanted = Arc::new(Mutex::new(sluice_control::bird::Plan::default()));
    let serving = gateway_serving(publisher);
    let drained = drain_watch(args);
    let gateway = move || {
        use sluice_control::bird::Gateway;
        if drained() {
            return Gateway::Draining;
        }
        if serving() { Gateway::Serving } else { Gateway::Gone }
    };
    let announcer = sluice_control::bird::Announcer::new(include.clone(), args.bird_socket.clone());
    sluice_control::bird::spawn(announcer, Arc::clone(&wanted), gateway)
        .map_err(|e| format!("the BIRD thread: {e}"))?;
    info!(
        "BGP through BIRD: VIPs in {}, reconfigured through {}",
        include.display(),
        args.bird_socket.display()
    );
    Ok(Some(wanted))
}

/// Whether a gateway serves the table (`sluice_control::bird::gateway_serving`: per gateway
/// process, its table taken, its workers' counters published, none still taking in its
/// flow-sync peers' flows). What BGP announces on, and what the L2 election contends on.
fn gateway_serving(publisher: &Arc<Mutex<Publisher>>) -> impl Fn() -> bool + Send + 'static {
    let publisher = Arc::clone(publisher);
    move || {
        let Ok(p) = publisher.lock() else { return false };
        let (readers, stats) = (p.readers(), p.reader_stats());
        // Two reads of the same records, in the same order; a gateway registering between
        // them makes them differ, and this look says "not serving" (the next one, 100 ms on,
        // sees both alike).
        if readers.len() != stats.len() || readers.iter().zip(&stats).any(|(r, s)| r.0 != s.0) {
            return false;
        }
        let records: Vec<sluice_control::bird::Record> =
            readers.into_iter().zip(stats).map(|((pid, seen), (_, values))| (pid, seen, values)).collect();
        sluice_control::bird::gateway_serving(&records, sluice_control::bird::process_alive)
    }
}

/// Whether this node contends in L2 mode: its gateway serves and it is not drained (the drain
/// file hands its VIPs to the other nodes, docs/l2.md).
fn l2_serving(args: &RunArgs, publisher: &Arc<Mutex<Publisher>>) -> impl Fn() -> bool + Send + 'static {
    let serving = gateway_serving(publisher);
    let drained = drain_watch(args);
    move || !drained() && serving()
}

/// Whether the node is drained (`--drain-file` exists), saying so in the log when that changes.
fn drain_watch(args: &RunArgs) -> impl Fn() -> bool + Send + 'static {
    let drain = args.drain_file.clone();
    let draining = std::sync::atomic::AtomicBool::new(false);
    move || {
        let now = drain.exists();
        if draining.swap(now, std::sync::atomic::Ordering::Relaxed) != now {
            if now {
                info!("{} exists: draining, no VIP served from this node", drain.display());
            } else {
                info!("{} removed: serving again", drain.display());
            }
        }
        now
    }
}

/// The L2 election's state, shared with its thread.
type Election = Arc<Mutex<sluice_control::l2::peers::Shared>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// With --l2-listen: starts the election between the gateway nodes (docs/l2.md); a change in
/// what this node holds raises `poke` (the directory is read again and the table republished).
fn start_l2_election(
    args: &RunArgs,
    publisher: &Arc<Mutex<Publisher>>,
    poke: Arc<AtomicBool>,
) -> Result<Option<Election>, String> {
    let (Some(listen), Some(key), Some(node)) = (args.l2_listen, &args.l2_key, &args.node_name) else {
        return Ok(None);
    };
    if args.once {
        return Ok(None);
    }
    let interval = Duration::from_millis(args.l2_interval_ms);
    let settings = sluice_control::l2::peers::Settings {
        node: node.clone(),
        listen,
        peers: args.l2_peers.clone(),
        key: sluice_control::l2::peers::read_key(key)?,
        interval,
        dead_after: interval * 10 / 3,
    };
    let shared = Election::default();
    sluice_control::l2::peers::spawn(settings, Arc::clone(&shared), l2_serving(args, publisher), move || {
        poke.store(true, Relaxed)
    })
    .map_err(|e| format!("the L2 election on {listen}: {e}"))?;
    info!("L2 mode: election on {listen} with {} peer(s) as {node}", args.l2_peers.len());
    Ok(Some(shared))
}

/// What a publication makes the announcements: every LoadBalancer address with an endpoint for
/// new flows on this node, and every address Ingresses are served on, each with the pool it is
/// from; and MetalLB's peers and advertisements that apply to this node (no node selector, or
/// one naming `--node-name`).
fn set_vips(vips: &Vips, work: &StatusWork, store: &Store, cfg: &Config, last: &Published) {
    let Some(vips) = vips else { return };
    // A LoadBalancer address without an endpoint for new flows here is not announced; the
    // addresses Ingresses are served on are the L7 stage's, and always are.
    let served = last.addresses_with_endpoints();
    let balanced = work.assigned.values().flatten().filter(|a| served.contains(a));
    let pool_of = |a: IpAddr| {
        store
            .pools
            .iter()
            .find(|p| p.object.ranges.iter().any(|r| r.contains(a)))
            .map(|p| p.object.name.clone())
    };
    let here = |nodes: &Option<Vec<String>>| {
        nodes.as_ref().is_none_or(|n| cfg.node_name.as_ref().is_some_and(|me| n.contains(me)))
    };
    let peers: Vec<_> = store.bgp_peers.iter().map(|p| p.object.clone()).filter(|p| here(&p.nodes)).collect();
    let bfd_profiles: Vec<_> = store.bfd_profiles.iter().map(|b| b.object.clone()).collect();
    // A peer naming a missing BFD profile is not opened (the include leaves it out): said here.
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let missing: BTreeSet<String> = sluice_control::checked::missing_bfd_profiles(&peers, &bfd_profiles)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut said = lock(&SAID);
    for e in missing.difference(&said) {
        error!("{e}");
    }
    *said = missing;
    drop(said);
    let plan = sluice_control::bird::Plan {
        vips: balanced.chain(work.ingresses.values().flatten()).map(|&a| (a, pool_of(a))).collect(),
        peers,
        bfd_profiles,
        advertisements: store
            .bgp_advertisements
            .iter()
            .map(|a| a.object.clone())
            .filter(|a| here(&a.nodes))
            .collect(),
    };
    if let Ok(mut v) = vips.lock() {
        *v = plan;
    }
}

fn status(table: &Path) -> Result<(), String> {
    let mut reader = Reader::open(table).map_err(|e| e.to_string())?;
    if let Refresh::Refused(g, why) = reader.refresh() {
        return Err(format!("generation {g} is refused: {why}"));
    }
    let Some(payload) = reader.payload() else {
        println!("{}: nothing published yet", table.display());
        return Ok(());
    };
    let t = image::decode(payload).map_err(|e| e.to_string())?;
    println!(
        "generation {}: {} services, {} backends",
        t.generation().0,
        t.services().len(),
        t.backends().len()
    );
    for s in t.services() {
        let fronts: Vec<String> = s
            .frontends
            .iter()
            .map(|k| match k.frontend {
                Frontend::NodePort(_) => {
                    let proto = if k.protocol == Protocol::Udp { "udp" } else { "tcp" };
                    format!("node:{}/{proto}", k.port)
                }
                Frontend::Address(_) => format!("{k}"),
            })
            .collect();
        let affinity = s.affinity.map(|a| format!(" affinity {}s", a.timeout_s())).unwrap_or_default();
        println!("  {}  [{}]  {} {:?}{affinity}", s.name, fronts.join(", "), s.scheduler.name(), s.nat);
        for b in &t.backends()[s.backends.start as usize..s.backends.end as usize] {
            let state = if b.eligible {
                "takes new flows"
            } else if b.conditions.terminating {
                "draining"
            } else {
                "not ready"
            };
            println!("      {}:{}  {state}", b.addr, b.port);
        }
    }
    // L2 mode (docs/l2.md): each VIP's role on this node.
    for (vip, role) in t.l2() {
        let role = match role {
            sluice_model::service::L2Role::Active => "active here: answers ARP / NDP",
            sluice_model::service::L2Role::Standby => "standby: another node answers",
        };
        println!("  L2 {}  {role}", vip.ip());
    }
    print_l7(t.l7());
    Ok(())
}

/// The L7 half: listeners, routes, upstreams, certificates (never a key), conflicts.
fn print_l7(l7: &sluice_model::l7::L7Table) {
    let paths: usize = l7.routes.hosts().iter().map(|h| h.paths.len()).sum();
    println!(
        "L7: {} listeners, {} hosts, {paths} paths, {} upstreams, {} certificates",
        l7.listeners.len(),
        l7.routes.hosts().len(),
        l7.upstreams.len(),
        l7.certificates.len()
    );
    for l in &l7.listeners {
        println!("  listener {}  http {}  https {}", l.addr, l.http_port, l.https_port);
    }
    for h in l7.routes.hosts() {
        println!("  host {}", h.host);
        for p in &h.paths {
            println!("      {} {}  → {}  (Ingress {})", p.path_type.name(), p.path, p.backend, p.ingress);
        }
        if let Some(d) = &h.default_backend {
            println!("      default  → {}  (Ingress {})", d.backend, d.ingress);
        }
    }
    for u in &l7.upstreams {
        let s = &u.service;
        let port = match &s.port {
            sluice_model::route::ServicePort::Number(n) => n.to_string(),
            sluice_model::route::ServicePort::Name(n) => n.clone(),
        };
        let eligible = u.eligible().count();
        println!(
            "  upstream {}/{}:{port}  {} endpoints, {eligible} take requests",
            s.namespace,
            s.name,
            u.endpoints.len()
        );
        for e in &u.endpoints {
            let state = if e.ready {
                "ready"
            } else if e.serving && e.terminating {
                "draining"
            } else {
                "not ready"
            };
            println!("      {}  {state}", e.addr);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for c in &l7.certificates {
        let hosts: Vec<String> = c.hosts.iter().map(ToString::to_string).collect();
        let ingresses: Vec<String> = c.ingresses.iter().map(ToString::to_string).collect();
        println!(
            "  certificate Secret {}  hosts [{}]  notAfter {} ({} days left)  Ingresses [{}]",
            c.secret,
            hosts.join(", "),
            sluice_control::compile::rfc3339(c.not_after_unix_s),
            (c.not_after_unix_s - now).div_euclid(86_400),
            ingresses.join(", ")
        );
    }
    for c in l7.routes.conflicts() {
        println!("  conflict: {c}");
    }
}

/// Cluster mode: watch, wait until every store has listed, then publish at every change (a burst
/// of changes coalesced over 5 ms). `--kubeconfig` absent means in-cluster configuration.
fn run_cluster(args: &RunArgs, cfg: &Config) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(follow_cluster(args, cfg))
}

async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc =
                kube::config::Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("kubernetes client: {e}"))
}

async fn follow_cluster(args: &RunArgs, cfg: &Config) -> Result<(), String> {
    let client = connect(args.kubeconfig.as_deref()).await?;
    let (publisher, metrics) = open_table(&args.table)?;
    if let Some(endpoint) = metrics_endpoint(args)? {
        endpoint.spawn(metrics.clone(), Limits::default()).map_err(|e| format!("metrics: {e}"))?;
    }
    let vips = start_bird(args, &publisher)?;
    let bounds = cluster::Bounds {
        max_objects: args.max_objects,
        max_object_bytes: args.max_manifest_bytes,
        relist_after: cluster::RELIST_AFTER,
    };
    let mut cluster = Cluster::watch_within(client.clone(), bounds);
    match cluster.watch_pools(client.clone()).await {
        Ok(true) => info!("watching IPAddressPools (metallb.io/v1beta1)"),
        Ok(false) => info!("no IPAddressPool resource in this cluster: pools from --lb-pool only"),
        Err(e) => warn!("IPAddressPools not watched ({e}); pools from --lb-pool only"),
    }
    if args.bird_include.is_some() {
        match cluster.watch_bgp(client.clone()).await {
            Ok((peers, advs)) => info!(
                "MetalLB BGP objects: BGPPeers {}, BGPAdvertisements {}",
                if peers { "watched" } else { "not served by this cluster" },
                if advs { "watched" } else { "not served by this cluster" }
            ),
            Err(e) => warn!("MetalLB BGP objects not watched ({e}): BIRD's own sessions only"),
        }
        match cluster.watch_bfd(client.clone()).await {
            Ok(true) => info!("watching BFDProfiles (metallb.io/v1beta1)"),
            Ok(false) => info!("no BFDProfile resource in this cluster: a peer naming one is not opened"),
            Err(e) => warn!("BFDProfiles not watched ({e}): a peer naming one is not opened"),
        }
    }
    match cluster.watch_l2(client.clone()).await {
        Ok(true) => info!("watching L2Advertisements (metallb.io/v1beta1): L2 mode by Leases"),
        Ok(false) => info!("no L2Advertisement resource in this cluster: no VIP in L2 mode"),
        Err(e) => warn!("L2Advertisements not watched ({e}): no VIP in L2 mode"),
    }
    let l2_node = args.node_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned()
    });
    let mut leases = sluice_control::l2::lease::Leases::new(
        client.clone(),
        &args.lease_namespace,
        &l2_node,
        args.l2_lease_duration_s,
    );
    let serving = l2_serving(args, &publisher);
    let mut leader = Leader::new(client, args);
    info!("waiting for every watch to list once");
    cluster.ready().await;
    let (mut store, mut synced, mut last) = (Store::default(), Synced::default(), Published::default());
    last.l2.node = Some(l2_node.clone());
    last.l2.interface = args.l2_interface.clone();
    last.l2.elected = true;
    store.pools.extend(pool_objects(&args.lb_pools));
    let (mut pending, mut dirty) = (Changes::default(), true);
    // Whether the stores' shortfall has been reported: once while it lasts.
    let mut short_reported = false;
    loop {
        dirty |= leader.renew().await;
        // L2 mode: this node's Leases, contended for while its gateway serves.
        let candidates = if serving() { last.l2.vips.candidates.clone() } else { BTreeSet::new() };
        let held = leases.step(&candidates).await;
        if held != last.l2.active {
            info!("L2: announcing {held:?} from this node");
            last.l2.active = held;
            dirty = true;
        }
        if dirty {
            let (changes, problems) = cluster.sync(&mut store, &mut synced);
            pending.merge(changes);
            for p in &problems {
                warn!("{p}");
            }
            let wrong = synced.problems.values().map(Vec::len).sum();
            metrics.update(|f| f.manifest_errors = wrong);
            if let Some(short) = &synced.shortfall {
                // What the stores hold is not the cluster: publishing it would drop what they miss.
                if !std::mem::replace(&mut short_reported, true) {
                    match last.has_table() {
                        true => error!("{short}; the last good table stays live"),
                        false => error!("{short}; nothing published until it is fixed"),
                    }
                }
            } else if store.l4_objects() == 0 && wrong > 0 && last.has_table() {
                // As with a directory of manifests that holds nothing valid.
                warn!("nothing valid in the cluster: the last good table stays live");
            } else {
                if std::mem::take(&mut short_reported) {
                    info!("every watched object is held again (--max-objects): publishing");
                }
                let changes = std::mem::take(&mut pending);
                let work = publish_store(&store, cfg, &changes, &publisher, &mut last, &metrics)?;
                set_vips(&vips, &work, &store, cfg, &last);
                leader.write_statuses(&store, &work).await;
            }
            dirty = false;
        }
        if args.once {
            return match last.has_table() {
                true => Ok(()),
                false => Err("the cluster: nothing published".into()),
            };
        }
        tokio::select! {
            _ = cluster.changed() => {
                // Let a burst of events (a rollout's slices) land, then compile once.
                tokio::time::sleep(Duration::from_millis(5)).await;
                dirty = true;
            }
            _ = tokio::time::sleep(Duration::from_millis(args.interval_ms).min(leases.look_every())) => {}
        }
    }
}

/// `--lb-pool` values as one pool, as a manifest's IPAddressPool would give it.
fn pool_objects(ranges: &[AddressRange]) -> Vec<Located<Pool>> {
    if ranges.is_empty() {
        return Vec::new();
    }
    let pool = Pool {
        namespace: String::new(),
        name: "command-line".into(),
        ranges: ranges.to_vec(),
        auto_assign: true,
        avoid_buggy_ips: false,
    };
    vec![Located { object: pool, file: PathBuf::from("--lb-pool"), line: 0 }]
}

/// The leader's side of cluster mode: the Lease, and the status writes.
struct Leader {
    client: kube::Client,
    lease: LeaderLease,
    leading: bool,
    renewed_at: Option<Instant>,
    /// Services whose address this process has released: each release is tried once per
    /// appearance (an address another manager wrote into our pool's range is not ours to clear,
    /// and must not be retried forever).
    released: BTreeSet<String>,
    /// Ingresses whose address this process has released, likewise.
    released_ingresses: BTreeSet<String>,
    /// Status written and not yet seen back through the watch: not written again meanwhile
    /// (another event may compile before the watch brings the object back), for 10 s. Keyed
    /// `namespace/name` for Services, `Ingress namespace/name` for Ingresses.
    in_flight: BTreeMap<String, (Vec<IpAddr>, Instant)>,
}

impl Leader {
    fn new(client: kube::Client, args: &RunArgs) -> Leader {
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let lease = LeaderLease::new(client.clone(), &args.lease_namespace, "sluice-control", &identity, 15);
        Leader {
            client,
            lease,
            leading: false,
            renewed_at: None,
            released: BTreeSet::new(),
            released_ingresses: BTreeSet::new(),
            in_flight: BTreeMap::new(),
        }
    }

    /// Renews (or contends for) the Lease every 2 s (its duration is 15 s). True when this
    /// process has just become the leader: a new leader checks every Service's status.
    async fn renew(&mut self) -> bool {
        if self.renewed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
            return false;
        }
        let leading = self.lease.try_lead().await.unwrap_or_else(|e| {
            warn!("lease: {e}");
            false
        });
        let changed = leading != self.leading;
        if changed {
            info!("{} the leader", if leading { "now" } else { "no longer" });
            self.released.clear();
            self.released_ingresses.clear();
            self.in_flight.clear();
        }
        self.leading = leading;
        self.renewed_at = Some(Instant::now());
        changed && leading
    }

    /// Whether `ips` was written to `key`'s status less than 10 s ago and not seen back yet.
    fn in_flight(&self, key: &str, ips: &[IpAddr]) -> bool {
        self.in_flight.get(key).is_some_and(|(w, at)| w == ips && at.elapsed() < Duration::from_secs(10))
    }

    /// Writes the LoadBalancer addresses of `work` to the Services' status and the addresses
    /// Ingresses are served on to theirs, and releases the addresses it names — when this
    /// process leads.
    async fn write_statuses(&mut self, store: &Store, work: &StatusWork) {
        self.released.retain(|k| work.release.contains(k));
        self.released_ingresses.retain(|k| work.ingress_release.contains(k));
        if !self.leading {
            return;
        }
        for l in &store.services {
            let key = l.object.key();
            if let Some(ips) = work.assigned.get(&key) {
                if self.in_flight(&key, ips) {
                    continue;
                }
                match write_load_balancer_status(self.client.clone(), &l.object, ips).await {
                    Ok(true) => {
                        info!("status written: {key}");
                        self.in_flight.insert(key, (ips.clone(), Instant::now()));
                    }
                    Ok(false) => {
                        self.in_flight.remove(&key);
                    }
                    Err(e) => error!("status of {key}: {e}"),
                }
            } else if work.release.contains(&key) && self.released.insert(key.clone()) {
                match clear_load_balancer_status(self.client.clone(), &l.object).await {
                    Ok(()) => info!("LoadBalancer address released: {key}"),
                    Err(e) => error!("status of {key}: {e}"),
                }
            }
        }
        for l in &store.ingresses {
            let key = l.object.key();
            if let Some(ips) = work.ingresses.get(&key) {
                let flight = format!("Ingress {key}");
                if self.in_flight(&flight, ips) {
                    continue;
                }
                match write_ingress_status(self.client.clone(), &l.object, ips).await {
                    Ok(true) => {
                        info!("status written: Ingress {key}");
                        self.in_flight.insert(flight, (ips.clone(), Instant::now()));
                    }
                    Ok(false) => {
                        self.in_flight.remove(&flight);
                    }
                    Err(e) => error!("status of Ingress {key}: {e}"),
                }
            } else if work.ingress_release.contains(&key) && self.released_ingresses.insert(key.clone()) {
                match clear_ingress_status(self.client.clone(), &l.object).await {
                    Ok(()) => info!("address released: Ingress {key}"),
                    Err(e) => error!("status of Ingress {key}: {e}"),
                }
            }
        }
    }
}
