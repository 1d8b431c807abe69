//! The L7 stage, as the main thread prepares it for the workers: once per table generation that
//! changes it, the TLS configuration (certificates by SNI, from `sluice_l7::tls`) and the
//! listeners — every address Ingresses are served on (the table's listeners and `--l7-address`),
//! with its HTTP and HTTPS ports — handed to every worker as one [`L7Work`].
//!
//! The main thread owns the listening sockets: one per worker (a *slot*) per address and port,
//! all members of one `SO_REUSEPORT` group, so the kernel spreads connections over the workers.
//! Slot `i` is served by worker `i mod W` (each worker gets a duplicate of its slots' sockets
//! and serves them in its reactor, `sluice_proxy`). Owning them here is what lets an upgrade
//! hand them to the next gateway (`crate::handover`): the listeners taken over from an old
//! gateway become slots as they are — a gateway with fewer workers than the old one serves
//! the surplus slots too (closing one would reset what waits in its accept queue), one with
//! more binds the missing slots into the same group.
//!
//! The session-ticket key and the default certificate are made once, at start, and kept across
//! generations: a client resumes on any worker, also after a certificate changes.
//!
//! Not hot path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::ProducesTickets;
use sluice_l7::tls::{self, DefaultCert, TlsGeneration};
use sluice_log::{info, warn};
use sluice_model::Addr;
use sluice_model::l7::L7Table;

use crate::handover::{Described, OfferCell};

/// The sockets of one listening address and port.
#[derive(Debug)]
pub(crate) struct ListenerSet {
    pub(crate) addr: SocketAddr,
    /// TLS is spoken there.
    pub(crate) tls: bool,
    /// By slot: worker `w` of `W` serves slots `w`, `w + W`, …
    pub(crate) sockets: Vec<Arc<TcpListener>>,
}

/// What every worker serves L7 from, for one generation.
#[derive(Debug)]
pub(crate) struct L7Work {
    /// Routes, upstreams, certificates.
    pub(crate) table: Arc<L7Table>,
    /// New TLS connections are accepted with this.
    pub(crate) tls: TlsGeneration,
    /// Where to listen, with the sockets.
    pub(crate) listeners: Vec<ListenerSet>,
    /// The gateway's workers (how slots are shared out).
    pub(crate) workers: usize,
    /// Counts the works prepared, from 1: a worker says which it has taken.
    pub(crate) serial: u64,
}

/// The L7 settings of the command line.
#[derive(Debug, Clone)]
pub(crate) struct L7Settings {
    /// `--l7-address`.
    pub(crate) addresses: Vec<std::net::IpAddr>,
    /// `--http-port`.
    pub(crate) http_port: u16,
    /// `--https-port`.
    pub(crate) https_port: u16,
    /// `--default-cert` and `--default-key`.
    pub(crate) default_cert: Option<(PathBuf, PathBuf)>,
    /// The gateway's workers: a listening socket each per address and port.
    pub(crate) workers: usize,
}

/// The main thread's L7 state.
pub(crate) struct L7Plan {
    settings: L7Settings,
    ticketer: Arc<dyn ProducesTickets>,
    default: DefaultCert,
    /// The L7 table last prepared (a generation that leaves it unchanged changes nothing).
    last: Option<Arc<L7Table>>,
    /// The listening sockets by (address, TLS), by slot.
    sockets: BTreeMap<(SocketAddr, bool), Vec<Arc<TcpListener>>>,
    serial: u64,
    /// What a next gateway would be handed.
    offer: OfferCell,
}

impl std::fmt::Debug for L7Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L7Plan").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl L7Plan {
    /// Makes the ticket key and loads (or generates) the default certificate.
    pub(crate) fn new(settings: L7Settings) -> Result<L7Plan, String> {
        let ticketer = tls::new_ticketer().map_err(|e| e.to_string())?;
        let default = match &settings.default_cert {
            Some((chain, key)) => DefaultCert::from_pem_files(chain, key).map_err(|e| e.to_string())?,
            None => DefaultCert::generate(unix_now()).map_err(|e| e.to_string())?,
        };
        Ok(L7Plan {
            settings,
            ticketer,
            default,
            last: None,
            sockets: BTreeMap::new(),
            serial: 0,
            offer: OfferCell::default(),
        })
    }

    /// Takes the listening sockets an old gateway handed over as slots (they are served from
    /// the first table prepared on; those it does not want are closed then).
    pub(crate) fn inherit(&mut self, listeners: Vec<(Described, TcpListener)>) {
        let mut listeners = listeners;
        listeners.sort_by(|a, b| a.0.cmp(&b.0));
        for (d, l) in listeners {
            self.sockets.entry((d.addr, d.tls)).or_default().push(Arc::new(l));
        }
    }

    /// The serial of the last work prepared (0: none yet).
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// What a next gateway would be handed (shared with the handover server).
    pub(crate) fn offer(&self) -> OfferCell {
        Arc::clone(&self.offer)
    }

    /// The L7 addresses this gateway put on the interface, for the offer.
    pub(crate) fn offer_addresses(&self, addresses: Vec<std::net::IpAddr>) {
        self.offer.lock().unwrap_or_else(|e| e.into_inner()).addresses = addresses;
    }

    /// Brings the sockets to `wanted`: those no longer wanted closed, a socket per worker at
    /// least for each wanted one (bound here; one that cannot be is logged, and its address
    /// served by the slots there are). Then the offer.
    fn sync_sockets(&mut self, wanted: &BTreeSet<(SocketAddr, bool)>) {
        self.sockets.retain(|key, _| wanted.contains(key));
        let backlog = sluice_proxy::ProxyConfig::default().backlog;
        for &(addr, tls) in wanted {
            let slots = self.sockets.entry((addr, tls)).or_default();
            while slots.len() < self.settings.workers {
                match sluice_proxy::bind_listener(addr, backlog) {
                    Ok(l) => slots.push(Arc::new(l)),
                    Err(e) => {
                        warn!("L7: cannot listen on {addr}: {e}");
                        break;
                    }
                }
            }
        }
        self.sockets.retain(|_, slots| !slots.is_empty());
        let listeners = self
            .sockets
            .iter()
            .flat_map(|(&(addr, tls), slots)| {
                slots.iter().enumerate().map(move |(slot, l)| (Described { addr, tls, slot }, Arc::clone(l)))
            })
            .collect();
        self.offer.lock().unwrap_or_else(|e| e.into_inner()).listeners = listeners;
    }

    /// The addresses Ingresses are served on for `table`.
    pub(crate) fn addresses(&self, table: &L7Table) -> BTreeSet<Addr> {
        self.settings
            .addresses
            .iter()
            .map(|&ip| Addr::from(ip))
            .chain(table.listeners.iter().map(|l| l.addr))
            .collect()
    }

    /// The work for the workers when `table` differs from the last one prepared, else `None`.
    pub(crate) fn prepare(&mut self, table: &Arc<L7Table>) -> Option<Arc<L7Work>> {
        if self.last.as_ref().is_some_and(|l| Arc::ptr_eq(l, table) || **l == **table) {
            return None;
        }
        self.last = Some(Arc::clone(table));
        let (tls, problems) = tls::build(&table.certificates, &self.default, &self.ticketer);
        for p in &problems {
            warn!("L7 TLS: {p}");
        }
        let mut listeners = BTreeSet::new();
        for ip in &self.settings.addresses {
            listeners.insert((SocketAddr::new(*ip, self.settings.http_port), false));
            listeners.insert((SocketAddr::new(*ip, self.settings.https_port), true));
        }
        for l in &table.listeners {
            listeners.insert((SocketAddr::new(l.addr.ip(), l.http_port), false));
            listeners.insert((SocketAddr::new(l.addr.ip(), l.https_port), true));
        }
        info!(
            "L7: {} host(s), {} upstream(s), {} certificate(s), listening on {}",
            table.routes.hosts().len(),
            table.upstreams.len(),
            tls.store.inventory().len(),
            listeners
                .iter()
                .map(|(a, t)| format!("{a}{}", if *t { " (TLS)" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.sync_sockets(&listeners);
        self.serial += 1;
        let listeners = self
            .sockets
            .iter()
            .map(|(&(addr, tls), slots)| ListenerSet { addr, tls, sockets: slots.clone() })
            .collect();
        Some(Arc::new(L7Work {
            table: Arc::clone(table),
            tls,
            listeners,
            workers: self.settings.workers,
            serial: self.serial,
        }))
    }
}

/// Seconds since the Unix epoch (the default certificate's validity starts now).
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
