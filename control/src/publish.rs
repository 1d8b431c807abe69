//! Publishing, both modes' last step: a store compiled after its changes, the table built (or
//! patched in place, when only some entries changed), published to the gateway through the table
//! file, and what happened logged — one line per publication, `generation N: <diff>`, and one per
//! LoadBalancer address — and counted in the [`Metrics`].
//!
//! A table that does not build is refused and the last good one stays live. Not hot path. No
//! `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sluice_model::image;
use sluice_model::service::{Generation, ServiceTable, TableError};
use sluice_table::{PublishError, Publisher};
use tracing::{error, info, warn};

use crate::compile::{Compiled, Compiler, Config};
use crate::metrics::Metrics;
use crate::store::{Changes, Store};

/// LoadBalancer addresses by `namespace/name`.
pub type Assignments = BTreeMap<String, Vec<IpAddr>>;

/// What the leader writes after a publication: the LoadBalancer addresses compiled, the
/// addresses each Ingress of Sluice's is served on, and the Services and Ingresses whose address
/// is to be released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusWork {
    /// Addresses by Service.
    pub assigned: Assignments,
    /// Services (`namespace/name`) whose address is to be released.
    pub release: Vec<String>,
    /// The addresses each Ingress of Sluice's is served on, by `namespace/name`: what the leader
    /// writes to its `status.loadBalancer.ingress` when the status says otherwise.
    pub ingresses: Assignments,
    /// Ingresses (`namespace/name`) no longer served whose address is to be released.
    pub ingress_release: Vec<String>,
}

/// What control last published, and what it needs to publish the next table from it.
#[derive(Default)]
pub struct Published {
    compiler: Compiler,
    table: Option<ServiceTable>,
    /// The notes already logged (each is logged once while it holds).
    notes: BTreeSet<String>,
    /// The errors already logged (likewise).
    errors: BTreeSet<String>,
    /// The Ingresses left alone already logged (likewise, at info level: they are another
    /// controller's).
    ignored: BTreeSet<String>,
    /// L2 mode: this node's settings, the election's result, and the VIPs the last table put
    /// in L2 mode (docs/l2.md). Each publication sets every L2 VIP's role from it.
    pub l2: crate::l2::L2State,
    /// The L2 errors already logged (likewise).
    l2_errors: BTreeSet<String>,
}

impl Published {
    /// Whether a table is live (one this process published).
    pub fn has_table(&self) -> bool {
        self.table.is_some()
    }

    /// The frontend addresses of the live table that have somewhere to send a new flow: a
    /// service at the address has an endpoint eligible for new flows. A LoadBalancer address
    /// with none — every endpoint gone, or `externalTrafficPolicy: Local` and none on this node
    /// — is not announced over BGP (docs/bgp.md), as MetalLB announces such an address only
    /// from nodes with a local endpoint.
    pub fn addresses_with_endpoints(&self) -> BTreeSet<IpAddr> {
        self.table.as_ref().map(with_endpoints).unwrap_or_default()
    }
}

/// The frontend addresses of `t` whose service has an endpoint eligible for new flows.
fn with_endpoints(t: &ServiceTable) -> BTreeSet<IpAddr> {
    t.services()
        .iter()
        .filter(|s| !s.eligible.is_empty())
        .flat_map(|s| s.frontends.iter())
        .filter_map(|k| match k.frontend {
            sluice_model::service::Frontend::Address(a) => Some(a.ip()),
            sluice_model::service::Frontend::NodePort(_) => None,
        })
        .collect()
}

/// Compiles a store after `changes` and publishes the table; returns the leader's status work.
/// When the compile changed some entries in place (an endpoint changed), the last table is
/// updated for those alone; otherwise it is built, reusing the Maglev tables of Services whose
/// members did not change. Fails only when the table file cannot be written.
pub fn publish_store(
    store: &Store,
    cfg: &Config,
    changes: &Changes,
    publisher: &Mutex<Publisher>,
    last: &mut Published,
    metrics: &Metrics,
) -> Result<StatusWork, String> {
    let generation = Generation(lock(publisher).generation() + 1);
    let compiled = last.compiler.compile(store, cfg, generation, changes);
    let notes: BTreeSet<String> = compiled.notes.iter().cloned().collect();
    for n in notes.difference(&last.notes) {
        warn!("{n}");
    }
    last.notes = notes;
    let errors: BTreeSet<String> = compiled.errors.iter().cloned().collect();
    for e in errors.difference(&last.errors) {
        error!("{e}");
    }
    last.errors = errors;
    let ignored: BTreeSet<String> = compiled.ignored.iter().cloned().collect();
    for i in ignored.difference(&last.ignored) {
        info!("{i}");
    }
    last.ignored = ignored;
    let refused = compiled.errors.len();
    let mut previous = last.table.take();
    let changed = compiled.changed.as_deref();
    let before = changed.zip(previous.as_ref()).map(|(c, t)| summary(t, Some(c)));
    let table = match build(compiled, &mut previous) {
        Ok(table) => table,
        Err(e) => {
            error!("{e}; the last good table stays live");
            last.table = previous;
            // The compiler holds the refused compile: start it over from the store next time.
            last.compiler = Compiler::new();
            return Ok(StatusWork::default());
        }
    };
    // Every route gets its metrics row (a table without routes frees the rows of the last).
    let mut table = table;
    metrics.number_routes(table.l7_mut());
    // L2 mode: which VIPs are in it, which this node contends for, and each one's role here.
    let mut l2 = crate::l2::l2_vips(
        store,
        last.l2.node.as_deref().or(cfg.node_name.as_deref()),
        last.l2.interface.as_deref(),
        compiled.load_balancers.values().flatten(),
        &with_endpoints(&table),
    );
    table.set_l2(crate::l2::roles(&mut l2, &last.l2));
    let l2_errors: BTreeSet<String> = l2.errors.iter().cloned().collect();
    for e in l2_errors.difference(&last.l2_errors) {
        error!("{e}");
    }
    last.l2_errors = l2_errors;
    last.l2.vips = l2;
    let replaced = previous;
    let line = match (&before, &replaced) {
        (Some(before), None) => diff(before, &summary(&table, changed), &table),
        (_, replaced) => diff(
            &replaced.as_ref().map(|t| summary(t, None)).unwrap_or_default(),
            &summary(&table, None),
            &table,
        ),
    };
    let g = publish_image(publisher, &image::encode(&table))?;
    info!("generation {g}: {line}");
    metrics.update(|f| {
        f.generation = g;
        f.services = table.services().len();
        f.backends = table.backends().len();
        f.refused = refused;
        f.publications += 1;
        f.published_at = Some(SystemTime::now());
    });
    let compiled = last.compiler.compiled().unwrap_or_else(|| unreachable!("compiled above"));
    if compiled.changed.is_none() {
        for (svc, ips) in &compiled.load_balancers {
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            info!("LoadBalancer {svc}: {}", ips.join(", "));
        }
    }
    if compiled.changed.is_none() {
        for l in table.l7().listeners.iter() {
            info!("Ingresses served on {}: ports {} and {}", l.addr, l.http_port, l.https_port);
        }
    }
    let work = StatusWork {
        assigned: compiled.load_balancers.clone(),
        release: compiled.release.clone(),
        ingresses: compiled.ingress_addresses.clone(),
        ingress_release: compiled.ingress_release.clone(),
    };
    last.table = Some(table);
    Ok(work)
}

fn lock(publisher: &Mutex<Publisher>) -> std::sync::MutexGuard<'_, Publisher> {
    publisher.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The table of `compiled`. `previous`, the table live, is patched in place when only some
/// entries changed, else lends its Maglev tables to a new one (for the Services whose members did
/// not change); afterwards it holds the table replaced — none when patched in place — or, on an
/// error, still the table live.
fn build(compiled: &Compiled, previous: &mut Option<ServiceTable>) -> Result<ServiceTable, TableError> {
    if let (Some(changed), Some(t)) = (compiled.changed.as_deref(), previous.as_mut())
        && t.update(&compiled.spec, changed)?
    {
        return Ok(previous.take().unwrap_or_else(|| unreachable!("patched above")));
    }
    ServiceTable::build_reusing(&compiled.spec, previous.as_ref())
}

/// Publishes `bytes` as the next generation, retrying for 10 s while a gateway reader still
/// holds the slot (the lock is taken per attempt, so a scrape is never kept waiting by a retry).
fn publish_image(publisher: &Mutex<Publisher>, bytes: &[u8]) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut p = lock(publisher);
        match p.publish(bytes) {
            Ok(g) => return Ok(g),
            Err(PublishError::Busy) if Instant::now() < deadline => {
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("{}: {e}", p.path().display())),
        }
    }
}

/// Services by name → their backends (`addr:port`, `(draining)` when not eligible).
pub type Summary = BTreeMap<String, Vec<String>>;

/// The services of `t` at `only` (all when `None`), summarised.
pub fn summary(t: &ServiceTable, only: Option<&[usize]>) -> Summary {
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
/// added, removed, changed; and the change in their backends.
pub fn diff(before: &Summary, after: &Summary, new: &ServiceTable) -> String {
    let added = after.keys().filter(|k| !before.contains_key(*k)).count();
    let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
    let changed = after.iter().filter(|(k, v)| before.get(*k).is_some_and(|o| o != *v)).count();
    let backends_before: usize = before.values().map(Vec::len).sum();
    let backends_after: usize = after.values().map(Vec::len).sum();
    format!(
        "{} services (+{added} -{removed} ~{changed}), {} backends ({:+})",
        new.services().len(),
        new.backends().len(),
        backends_after as i64 - backends_before as i64
    )
}

#[cfg(test)]
mod tests {
    use sluice_model::Addr;
    use sluice_model::service::{
        BackendSpec, Conditions, Frontend, NatMode, Protocol, Scheduler, ServiceKey, ServiceSpec, TableSpec,
    };

    use super::*;

    /// A table of services `(name, last octets of its backends, draining ones)`.
    fn table(services: &[(&str, &[u8], &[u8])]) -> ServiceTable {
        let spec = TableSpec {
            services: services
                .iter()
                .enumerate()
                .map(|(i, (name, ready, draining))| {
                    let backend = |last: &u8, conditions| BackendSpec {
                        addr: Addr::from_v4([198, 18, 1, *last]),
                        port: 8080,
                        weight: 1,
                        conditions,
                    };
                    ServiceSpec {
                        name: (*name).to_owned(),
                        frontends: vec![ServiceKey {
                            frontend: Frontend::Address(Addr::from_v4([198, 19, 0, i as u8 + 1])),
                            port: 80,
                            protocol: Protocol::Tcp,
                        }],
                        backends: ready
                            .iter()
                            .map(|l| backend(l, Conditions::READY))
                            .chain(draining.iter().map(|l| backend(l, Conditions::DRAINING)))
                            .collect(),
                        scheduler: Scheduler::default(),
                        affinity: None,
                        nat: NatMode::FullNat,
                        snat: vec![Addr::from_v4([198, 18, 0, 1])],
                    }
                })
                .collect(),
            ..TableSpec::default()
        };
        ServiceTable::build(&spec).unwrap()
    }

    #[test]
    fn a_first_table_is_all_added() {
        let t = table(&[("default/a:80", &[1, 2], &[]), ("default/b:80", &[3], &[])]);
        assert_eq!(diff(&Summary::new(), &summary(&t, None), &t), "2 services (+2 -0 ~0), 3 backends (+3)");
    }

    #[test]
    fn added_removed_and_changed_services_are_counted_apart() {
        let old = table(&[
            ("default/a:80", &[1, 2], &[]),
            ("default/b:80", &[3], &[]),
            ("default/c:80", &[4], &[]),
        ]);
        let new = table(&[
            ("default/a:80", &[1], &[2]),
            ("default/c:80", &[4], &[]),
            ("default/d:80", &[5, 6], &[]),
        ]);
        let s = summary(&new, None);
        assert_eq!(s["default/a:80"], ["198.18.1.1:8080", "198.18.1.2:8080(draining)"]);
        assert_eq!(diff(&summary(&old, None), &s, &new), "3 services (+1 -1 ~1), 5 backends (+1)");
    }

    #[test]
    fn a_patch_is_summarised_over_the_entries_it_touched() {
        let old = table(&[("default/a:80", &[1, 2], &[]), ("default/b:80", &[3], &[])]);
        let new = table(&[("default/a:80", &[1, 2], &[]), ("default/b:80", &[], &[])]);
        let only = [1];
        let line = diff(&summary(&old, Some(&only)), &summary(&new, Some(&only)), &new);
        assert_eq!(line, "2 services (+0 -0 ~1), 2 backends (-1)");
    }
}
