//! `sluice-control`: compile Kubernetes manifests into the service table and publish it to the
//! gateway through shared memory; or show what the gateway is running.
//!
//! ```text
//! sluice-control run --manifests deploy/examples/nodeport --node-address 198.18.0.1 \
//!     [--table /dev/shm/sluice-table] [--node-name gw-1] [--once]
//! sluice-control status [--table /dev/shm/sluice-table]
//! ```
//!
//! `run` re-reads the directory as soon as a file in it is written, renamed or removed (inotify),
//! on SIGHUP, and, as a backstop, when a poll every `--interval-ms` sees a change;
//! with `--kubeconfig FILE` or `--in-cluster` it watches a cluster instead.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use sluice_control::checked::{AddressRange, Pool};
use sluice_control::cluster::Cluster;
use sluice_control::compile::{Compiler, Config};
use sluice_control::leader::{LeaderLease, clear_load_balancer_status, write_load_balancer_status};
use sluice_control::load::load_dir;
use sluice_control::metrics::{self, ControlFigures};
use sluice_control::store::{Changes, Located, Store};
use sluice_model::image;
use sluice_model::service::{Frontend, Generation, ServiceTable};
use sluice_table::{Geometry, PublishError, Publisher, Reader, Refresh};

/// Where the table lives by default: tmpfs, as shared memory does.

#[derive(Parser)]
#[command(
    name = "sluice-control",
    version,
    about = "Sluice's control process: Kubernetes objects to the gateway's service table"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start-up")]
enum Command {
    /// Compile and publish the table from a directory of manifests or from a cluster; republish
    /// when it changes.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["manifests", "kubeconfig", "in_cluster"])))]
    Run {
        /// Directory of YAML/JSON manifests (Service, EndpointSlice, Endpoints, Pod, Ingress,
        /// IngressClass, Secret, IPAddressPool).
        #[arg(long)]
        manifests: Option<PathBuf>,
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
        /// Where to serve Prometheus metrics (loopback by default; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:9477")]
        metrics_address: SocketAddr,
    },
    /// Show the table the gateway is running.
    Status {
        /// The shared-memory table file.
        #[arg(long, default_value = sluice_table::DEFAULT_PATH)]
        table: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run {
            manifests,
            kubeconfig,
            in_cluster,
            lb_pools,
            lease_namespace,
            identity,
            table,
            node_addrs,
            node_name,
            snat,
            load_balancer_class,
            once,
            interval_ms,
            metrics_address,
        } => {
            let cfg = Config { node_name, node_addrs, snat, load_balancer_class };
            let metrics = (!once).then_some(metrics_address);
            let interval = Duration::from_millis(interval_ms);
            match (manifests, kubeconfig, in_cluster) {
                (Some(dir), _, _) => run(&dir, &table, &cfg, once, interval, metrics),
                (None, kubeconfig, _) => {
                    let identity = identity.unwrap_or_else(|| {
                        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                        format!("{}-{}", host.trim(), std::process::id())
                    });
                    let leader = LeaderConfig { namespace: lease_namespace, identity, pools: lb_pools };
                    run_cluster(kubeconfig, &table, &cfg, &leader, once, interval, metrics)
                }
            }
        }
        Command::Status { table } => status(&table),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-control: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Names, sizes and modification times of the manifest files: what "changed" means.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m.len(), m.modified().ok())))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run(
    dir: &Path,
    table: &Path,
    cfg: &Config,
    once: bool,
    interval: Duration,
    metrics_address: Option<SocketAddr>,
) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory of manifests", dir.display()));
    }
    let mut publisher = Publisher::create(table, Geometry::default()).map_err(|e| e.to_string())?;
    let page = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = metrics_address {
        let bound = metrics::serve(addr, page.clone()).map_err(|e| format!("metrics on {addr}: {e}"))?;
        println!("metrics: http://{bound}/metrics");
    }
    // SIGHUP: re-read the directory now, changed or not.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| format!("SIGHUP handler: {e}"))?;
    // inotify: a written, renamed or removed file wakes the loop at once. When the directory
    // itself goes (renamed away, removed), the watch is `lost` and re-armed once it is back.
    let poke = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    if !once && let Err(e) = watch_directory(dir, poke.clone(), lost.clone()) {
        eprintln!("warning: inotify on {}: {e}; polling every {interval:?} instead", dir.display());
    }
    let mut last = Published::default();
    let mut figures = ControlFigures::default();
    let mut seen = None;
    loop {
        if lost.load(Relaxed) && dir.is_dir() {
            lost.store(false, Relaxed);
            match watch_directory(dir, poke.clone(), lost.clone()) {
                Ok(()) => println!("{} is back: watching it again", dir.display()),
                Err(e) => eprintln!("warning: inotify on {}: {e}; polling instead", dir.display()),
            }
            seen = None;
        }
        if poke.swap(false, Relaxed) {
            // Let a burst of writes (an editor's save, `kubectl` writing several files) land
            // before reading, then read once.
            std::thread::sleep(Duration::from_millis(5));
            poke.store(false, Relaxed);
            seen = None;
        }
        if hup.swap(false, Relaxed) {
            println!("SIGHUP: reloading {}", dir.display());
            seen = None;
        }
        let now = fingerprint(dir);
        if seen.as_ref() != Some(&now) {
            seen = Some(now);
            publish_once(dir, cfg, &mut publisher, &mut last, &mut figures)?;
        }
        if let Ok(mut p) = page.lock() {
            *p = metrics::render(&figures, &publisher.reader_stats());
        }
        if once {
            return Ok(());
        }
        // Sleep in short steps so that a SIGHUP or an inotify event is acted on promptly.
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until
            && !hup.load(Relaxed)
            && !poke.load(Relaxed)
            && (!lost.load(Relaxed) || !dir.is_dir())
        {
            std::thread::sleep(interval.min(Duration::from_millis(2)));
        }
    }
}

/// Watches `dir` on a thread of its own and raises `poke` whenever a file in it is finished
/// (closed after writing), moved in or out, or deleted. Partial writes are not events: the reload
/// sees whole files (a file rewritten in place may still be read mid-write by the backstop poll;
/// its errors are reported and the next event re-reads it).
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
                    let mut any = false;
                    let mut dir_gone = false;
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
                    eprintln!("warning: inotify stopped ({e}); polling continues");
                    return;
                }
            }
        }
    })?;
    Ok(())
}

fn publish_once(
    dir: &Path,
    cfg: &Config,
    publisher: &mut Publisher,
    last: &mut Published,
    figures: &mut ControlFigures,
) -> Result<(), String> {
    let loaded = match load_dir(dir) {
        Ok(loaded) => loaded,
        // The directory went away (being replaced, unmounted): keep serving what runs.
        Err(e) if last.table.is_some() => {
            eprintln!("error: {}: {e}; the last good table stays live", dir.display());
            return Ok(());
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    figures.manifest_errors = loaded.errors.len();
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    let store = &loaded.store;
    if store.l4_objects() == 0 && !loaded.errors.is_empty() && last.table.is_some() {
        eprintln!("nothing valid in {}: the last good table stays live", dir.display());
        return Ok(());
    }
    // A directory is read whole: compiled whole (each Service's Maglev table still reused when
    // its members did not change).
    publish_store(store, cfg, &Changes::everything(), publisher, last, figures).map(|_| ())
}

/// LoadBalancer addresses by `namespace/name`.
type Assignments = std::collections::BTreeMap<String, Vec<IpAddr>>;

/// What the leader writes after a publication: the LoadBalancer addresses compiled, and the
/// Services whose address is to be released.
#[derive(Default)]
struct StatusWork {
    assigned: Assignments,
    release: Vec<String>,
}

/// What control last published, and what it needs to publish the next table from it.
#[derive(Default)]
struct Published {
    compiler: Compiler,
    table: Option<ServiceTable>,
    /// The notes already logged (each is logged once while it holds).
    notes: std::collections::BTreeSet<String>,
}

/// Compiles a store after `changes` and publishes the table (both modes); returns the leader's
/// status work. When the compile changed some entries in place (an endpoint changed), the last
/// table is updated for those alone; otherwise it is built, reusing the Maglev tables of Services
/// whose members did not change.
fn publish_store(
    store: &Store,
    cfg: &Config,
    changes: &Changes,
    publisher: &mut Publisher,
    last: &mut Published,
    figures: &mut ControlFigures,
) -> Result<StatusWork, String> {
    let generation = Generation(publisher.generation() + 1);
    let compiled = last.compiler.compile(store, cfg, generation, changes);
    let notes: std::collections::BTreeSet<String> = compiled.notes.iter().cloned().collect();
    for n in notes.difference(&last.notes) {
        eprintln!("note: {n}");
    }
    last.notes = notes;
    let previous = last.table.take();
    let changed = compiled.changed.as_deref();
    let before = changed.zip(previous.as_ref()).map(|(c, t)| summary(t, Some(c)));
    type Built = Result<
        (ServiceTable, Option<ServiceTable>),
        (sluice_model::service::TableError, Option<ServiceTable>),
    >;
    let built: Built = match (changed, previous) {
        (Some(c), Some(mut t)) => match t.update(&compiled.spec, c) {
            Ok(true) => Ok((t, None)),
            Ok(false) => match ServiceTable::build_reusing(&compiled.spec, Some(&t)) {
                Ok(n) => Ok((n, Some(t))),
                Err(e) => Err((e, Some(t))),
            },
            Err(e) => Err((e, Some(t))),
        },
        (_, previous) => match ServiceTable::build_reusing(&compiled.spec, previous.as_ref()) {
            Ok(t) => Ok((t, previous)),
            Err(e) => Err((e, previous)),
        },
    };
    let (table, replaced) = match built {
        Ok(t) => t,
        Err((e, previous)) => {
            eprintln!("error: {e}; the last good table stays live");
            last.table = previous;
            // The compiler holds the refused compile: start it over from the store next time.
            last.compiler = Compiler::new();
            return Ok(StatusWork::default());
        }
    };
    let line = match (&before, &replaced) {
        (Some(before), None) => diff(before, &summary(&table, changed), &table),
        (_, replaced) => diff(
            &replaced.as_ref().map(|t| summary(t, None)).unwrap_or_default(),
            &summary(&table, None),
            &table,
        ),
    };
    let bytes = image::encode(&table);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match publisher.publish(&bytes) {
            Ok(g) => {
                println!("generation {g}: {line}");
                *figures = ControlFigures {
                    generation: g,
                    services: table.services().len(),
                    backends: table.backends().len(),
                    manifest_errors: figures.manifest_errors,
                    publications: figures.publications + 1,
                };
                if compiled.changed.is_none() {
                    for (svc, ips) in &compiled.load_balancers {
                        let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                        println!("  LoadBalancer {svc}: {}", ips.join(", "));
                    }
                }
                let work = StatusWork {
                    assigned: compiled.load_balancers.clone(),
                    release: compiled.release.clone(),
                };
                last.table = Some(table);
                return Ok(work);
            }
            Err(PublishError::Busy) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("{}: {e}", publisher.path().display())),
        }
    }
}

/// Services by name → their backends (`addr:port`, `(draining)` when not eligible), for the
/// services at `only` (all when `None`).
type Summary = std::collections::BTreeMap<String, Vec<String>>;

fn summary(t: &ServiceTable, only: Option<&[usize]>) -> Summary {
    let one = |s: &sluice_model::service::Service| {
        let mut b: Vec<String> = t.backends()[s.backends.start as usize..s.backends.end as usize]
            .iter()
            .map(|b| format!("{}:{}{}", b.addr, b.port, if b.eligible { "" } else { "(draining)" }))
            .collect();
        b.sort();
        (s.name.clone(), b)
    };
    match only {
        Some(only) => only.iter().filter_map(|&i| t.services().get(i)).map(one).collect(),
        None => t.services().iter().map(one).collect(),
    }
}

/// One line: the new table's services and backends, and of the services summarised, those
/// added, removed, changed.
fn diff(a: &Summary, b: &Summary, new: &ServiceTable) -> String {
    let added = b.keys().filter(|k| !a.contains_key(*k)).count();
    let removed = a.keys().filter(|k| !b.contains_key(*k)).count();
    let changed = b.iter().filter(|(k, v)| a.get(*k).is_some_and(|o| o != *v)).count();
    let backends_old: usize = a.values().map(Vec::len).sum();
    let backends_new: usize = b.values().map(Vec::len).sum();
    format!(
        "{} services (+{added} -{removed} ~{changed}), {} backends ({:+})",
        new.services().len(),
        new.backends().len(),
        backends_new as i64 - backends_old as i64
    )
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
                    let proto =
                        if k.protocol == sluice_model::service::Protocol::Udp { "udp" } else { "tcp" };
                    format!("node:{}/{proto}", k.port)
                }
                Frontend::Address(_) => format!("{k}"),
            })
            .collect();
        println!(
            "  {}  [{}]  {} {:?}{}",
            s.name,
            fronts.join(", "),
            s.scheduler.name(),
            s.nat,
            s.affinity.map(|a| format!(" affinity {}s", a.timeout_s())).unwrap_or_default()
        );
        for b in &t.backends()[s.backends.start as usize..s.backends.end as usize] {
            let c = b.conditions;
            let state = if b.eligible {
                "takes new flows"
            } else if c.terminating {
                "draining"
            } else {
                "not ready"
            };
            println!("      {}:{}  {state}", b.addr, b.port);
        }
    }
    Ok(())
}

/// Cluster mode: watch, wait until every store has listed, then publish at every change (a burst
/// of changes coalesced over 100 ms). `kubeconfig: None` means in-cluster configuration.
/// The leader's settings in cluster mode.
struct LeaderConfig {
    namespace: String,
    identity: String,
    pools: Vec<AddressRange>,
}

#[allow(clippy::too_many_arguments)]
fn run_cluster(
    kubeconfig: Option<PathBuf>,
    table: &Path,
    cfg: &Config,
    leader_cfg: &LeaderConfig,
    once: bool,
    interval: Duration,
    metrics_address: Option<SocketAddr>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let config = match &kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => kube::Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?,
        };
        let client = kube::Client::try_from(config).map_err(|e| format!("kubernetes client: {e}"))?;
        let mut publisher = Publisher::create(table, Geometry::default()).map_err(|e| e.to_string())?;
        let page = Arc::new(Mutex::new(String::new()));
        if let Some(addr) = metrics_address {
            let bound = metrics::serve(addr, page.clone()).map_err(|e| format!("metrics on {addr}: {e}"))?;
            println!("metrics: http://{bound}/metrics");
        }
        let mut cluster = Cluster::watch(client.clone());
        match cluster.watch_pools(client.clone()).await {
            Ok(true) => println!("watching IPAddressPools (metallb.io/v1beta1)"),
            Ok(false) => println!("no IPAddressPool resource in this cluster: pools from --lb-pool only"),
            Err(e) => eprintln!("warning: IPAddressPools not watched ({e}); pools from --lb-pool only"),
        }
        let lease = LeaderLease::new(
            client.clone(),
            &leader_cfg.namespace,
            "sluice-control",
            &leader_cfg.identity,
            15,
        );
        let pools = pool_objects(&leader_cfg.pools);
        println!("waiting for every watch to list once");
        cluster.ready().await;
        let (mut last, mut figures, mut dirty) = (Published::default(), ControlFigures::default(), true);
        let (mut store, mut synced) = (Store::default(), sluice_control::cluster::Synced::default());
        store.pools.extend(pools.iter().cloned());
        // Services whose address this process has released (see below).
        let mut released = std::collections::BTreeSet::<String>::new();
        // Status written and not yet seen back through the watch: not written again meanwhile
        // (another event may compile before the watch brings the Service back), for 10 s.
        let mut in_flight = std::collections::BTreeMap::<String, (Vec<IpAddr>, std::time::Instant)>::new();
        let (mut leading, mut renewed_at) = (false, None::<std::time::Instant>);
        loop {
            // Renew (or contend for) the Lease every 2 s; its duration is 15 s.
            if renewed_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                let now_leading = lease.try_lead().await.unwrap_or_else(|e| {
                    eprintln!("lease: {e}");
                    false
                });
                if now_leading != leading {
                    println!("{} the leader", if now_leading { "now" } else { "no longer" });
                    // A new leader checks every Service's status.
                    dirty |= now_leading;
                    released.clear();
                    in_flight.clear();
                }
                leading = now_leading;
                renewed_at = Some(std::time::Instant::now());
            }
            if dirty {
                let (changes, problems) = cluster.sync(&mut store, &mut synced);
                for p in &problems {
                    eprintln!("error: {p}");
                }
                figures.manifest_errors = synced.problems.len();
                let work = publish_store(&store, cfg, &changes, &mut publisher, &mut last, &mut figures)?;
                // Each release is tried once per appearance: an address another manager wrote
                // into our pool's range is not ours to clear, and must not be retried forever.
                released.retain(|k| work.release.contains(k));
                if leading {
                    for l in &store.services {
                        let key = l.object.key();
                        if let Some(ips) = work.assigned.get(&key) {
                            if in_flight
                                .get(&key)
                                .is_some_and(|(w, at)| w == ips && at.elapsed() < Duration::from_secs(10))
                            {
                                continue;
                            }
                            match write_load_balancer_status(client.clone(), &l.object, ips).await {
                                Ok(true) => {
                                    println!("  status written: {key}");
                                    in_flight.insert(key, (ips.clone(), std::time::Instant::now()));
                                }
                                Ok(false) => {
                                    in_flight.remove(&key);
                                }
                                Err(e) => eprintln!("status of {key}: {e}"),
                            }
                        } else if work.release.contains(&key) && released.insert(key.clone()) {
                            match clear_load_balancer_status(client.clone(), &l.object).await {
                                Ok(()) => println!("  LoadBalancer address released: {key}"),
                                Err(e) => eprintln!("status of {key}: {e}"),
                            }
                        }
                    }
                }
                dirty = false;
            }
            if let Ok(mut p) = page.lock() {
                *p = metrics::render(&figures, &publisher.reader_stats());
            }
            if once {
                return Ok(());
            }
            tokio::select! {
                _ = cluster.changed() => {
                    // Let a burst of events (a rollout's slices) land, then compile once.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    dirty = true;
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
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
