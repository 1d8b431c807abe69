//! The L7 stage, as the main thread prepares it for the workers: once per table generation that
//! changes it, the TLS configuration (certificates by SNI, from `sluice_l7::tls`) and the
//! listeners — every address Ingresses are served on (the table's listeners and `--l7-address`),
//! with its HTTP and HTTPS ports — handed to every worker as one [`L7Work`]. Each worker opens its
//! own `SO_REUSEPORT` listener on each, so the kernel spreads connections over the workers, and
//! serves them in its reactor (`sluice_proxy`).
//!
//! The session-ticket key and the default certificate are made once, at start, and kept across
//! generations: a client resumes on any worker, also after a certificate changes.
//!
//! Not hot path.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::ProducesTickets;
use sluice_l7::tls::{self, DefaultCert, TlsGeneration};
use sluice_log::{info, warn};
use sluice_model::Addr;
use sluice_model::l7::L7Table;

/// What every worker serves L7 from, for one generation.
#[derive(Debug)]
pub(crate) struct L7Work {
    /// Routes, upstreams, certificates.
    pub(crate) table: Arc<L7Table>,
    /// New TLS connections are accepted with this.
    pub(crate) tls: TlsGeneration,
    /// Where to listen: address and port, and whether TLS is spoken there.
    pub(crate) listeners: Vec<(SocketAddr, bool)>,
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
}

/// The main thread's L7 state.
pub(crate) struct L7Plan {
    settings: L7Settings,
    ticketer: Arc<dyn ProducesTickets>,
    default: DefaultCert,
    /// The L7 table last prepared (a generation that leaves it unchanged changes nothing).
    last: Option<Arc<L7Table>>,
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
        Ok(L7Plan { settings, ticketer, default, last: None })
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
        Some(Arc::new(L7Work { table: Arc::clone(table), tls, listeners: listeners.into_iter().collect() }))
    }
}

/// Seconds since the Unix epoch (the default certificate's validity starts now).
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
