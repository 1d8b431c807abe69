//! TLS termination, its configuration half: turns a generation's certificates
//! ([`sluice_model::l7::Certificate`]) into the rustls [`ServerConfig`] every worker serves HTTPS
//! with. The connections themselves (`rustls::ServerConnection`, bytes in, bytes out) belong to
//! the reactor; nothing here opens a socket.
//!
//! - [`build`] makes one generation's configuration: a [`CertStore`] (the SNI resolver) and the
//!   `ServerConfig` around it, plus the problems it met ([`TlsError`]). A certificate rustls
//!   cannot load is left out and reported; the others load.
//! - [`CertStore::pick`] chooses a certificate by the client's server name: the precise host,
//!   then the wildcard one label up, else the default certificate. Two hash probes, no
//!   allocation (only the `Arc` count rustls makes us return).
//! - [`DefaultCert`]: what a client gets without SNI or for a name no Secret covers: generated
//!   at start (self-signed ECDSA P-256) or loaded from PEM files.
//! - [`new_ticketer`]: the session-ticket key, made once per gateway process and shared by every
//!   worker and every generation, so resumption survives both.
//!
//! # Policy (see `docs/l7.md`, "TLS")
//! - Versions: TLS 1.3 and 1.2 ([`VERSIONS`]), as ingress-nginx. Older ones are refused.
//! - Suites ([`CIPHER_SUITES`]): AEAD only (AES-GCM, ChaCha20-Poly1305), ECDHE only (rustls
//!   implements neither CBC, RC4, 3DES nor static-RSA key exchange). The client's order is
//!   honoured, so clients without AES instructions may pick ChaCha20.
//! - Key exchange: rustls' aws-lc-rs defaults: X25519, P-256, P-384, and X25519MLKEM768
//!   (post-quantum hybrid) for clients that offer it.
//! - ALPN: `h2`, then `http/1.1` ([`ALPN_PROTOCOLS`]; rustls picks the first of ours the client
//!   offers, so HTTP/2 when the client can). A client that offers ALPN with neither is refused
//!   with `no_application_protocol`, which is what RFC 7301 §3.2 asks; a client without ALPN
//!   gets HTTP/1.1. What a connection speaks is decided by its first bytes (the HTTP/2 preface
//!   or not), so the driver needs no ALPN result.
//! - Resumption: stateless tickets only ([`TLS13_TICKETS`] per TLS 1.3 handshake; TLS 1.2
//!   clients that ask for a ticket get one). The TLS 1.2 session-ID cache is off
//!   ([`NoServerSessionStorage`]): rustls' cache is one mutex shared by every worker, which is a
//!   lock on the handshake path, and its contents would be lost at every rebuild anyway; TLS 1.2
//!   clients without ticket support (rare today) do full handshakes. No 0-RTT (replayable).
//!
//! # A certificate change
//! Rebuilding gives a new `Arc<ServerConfig>`. New handshakes use it; a connection keeps the
//! `Arc` it was accepted with, so open connections are not touched. The ticketer is the same
//! object in every generation, so a ticket issued under the old configuration resumes under the
//! new one.
//!
//! # Known limits
//! - One certificate per host: no RSA + ECDSA pair chosen by what the client supports.
//! - Tickets are valid for up to 12 hours (keys rotate every 6): a session resumed within that
//!   time does not see a certificate change, including a removed Secret (resumption does not
//!   present a certificate again). Tickets do not survive a gateway restart and are not shared
//!   between gateway nodes.
//! - No OCSP stapling, no client certificates (`auth-tls-*`), no certificate compression.
//! - Key material copied out of [`Certificate::key_der`] and out of PEM files is not zeroed by
//!   this module (rustls zeroes what it parses).
//!
//! Hot path: [`CertStore::pick`] (through `ResolvesServerCert::resolve`), once per handshake.
//! Everything else runs once per generation or at start. No `unsafe`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::server::{ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use sluice_model::l7::{Certificate, KeyFormat, SecretRef};
use sluice_model::route::{HostRule, IngressRef, wildcard_suffix};
use sluice_model::service::IndexHasher;

use crate::route::{MAX_HOST_BYTES, RequestHost, request_host};

/// The protocol versions served: TLS 1.3 and 1.2 (INGRESS.md §2.4; ingress-nginx's default).
pub static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The cipher suites served. Every one is an AEAD; every TLS 1.2 one has an ECDHE key exchange
/// (forward secrecy). It is rustls' aws-lc-rs default list, written out so that a rustls update
/// cannot widen it unnoticed. AES-256 before AES-128 is rustls' order, and it is the order
/// served: the server's, not the client's (`ignore_client_order`). Every suite is one we accept,
/// so the client's order could only pick among good ones; but a server without an order of its
/// own is what scanners flag (testssl.sh rates it HIGH), and it lets the client, not the
/// operator, decide what a connection gets. A ChaCha20-first client without AES hardware pays
/// with a slower cipher (rustls has no "prefer ChaCha20 when the client does" switch).
pub static CIPHER_SUITES: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The ALPN protocols offered, in preference order: HTTP/2 ([`crate::proxy::H2Conn`]) first.
pub const ALPN_PROTOCOLS: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Tickets sent after a full TLS 1.3 handshake. Clients use a ticket once (RFC 8446 §C.4), and
/// browsers open a few connections at once: two lets a second parallel connection resume too,
/// for one more ticket encryption per handshake (small beside the handshake's signature).
pub const TLS13_TICKETS: usize = 2;

/// The crypto provider: aws-lc-rs (INGRESS.md §5: the faster handshakes) restricted to
/// [`CIPHER_SUITES`].
pub fn provider() -> CryptoProvider {
    CryptoProvider { cipher_suites: CIPHER_SUITES.to_vec(), ..aws_lc_rs::default_provider() }
}

/// The session-ticket encrypter. Make it **once** per gateway process and pass the same `Arc`
/// to every [`build`]: workers and generations then share the ticket keys, so a client resumes
/// on whichever worker takes its next connection, and after a certificate change.
///
/// It is rustls' aws-lc-rs ticketer: keys rotate every 6 hours and are accepted for 12; the
/// rotation happens inside an encrypt or decrypt call (one read lock per ticket operation, a
/// write lock once per rotation).
pub fn new_ticketer() -> Result<Arc<dyn ProducesTickets>, StartError> {
    aws_lc_rs::Ticketer::new().map_err(|e| StartError::Ticketer { reason: e.to_string() })
}

/// One generation's TLS configuration.
#[derive(Debug, Clone)]
pub struct TlsGeneration {
    /// What workers accept new connections with (`ServerConnection::new(config.clone())`).
    pub config: Arc<ServerConfig>,
    /// The certificates behind it, for `status` and metrics ([`CertStore::inventory`]).
    pub store: Arc<CertStore>,
}

/// Builds one generation's TLS configuration from its certificates, with the default
/// certificate and the process's ticketer (from [`new_ticketer`], the same every time).
///
/// Certificates that cannot be loaded, and hosts claimed by two Secrets, come back as
/// [`TlsError`]s for control to report; what remains is served.
///
/// ```
/// use sluice_l7::tls::{self, DefaultCert};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Once, at gateway start:
/// let ticketer = tls::new_ticketer()?;
/// let default = DefaultCert::generate(1_790_000_000)?; // or DefaultCert::from_pem_files(..)
/// // Every generation (here one without Ingress certificates):
/// let (generation, problems) = tls::build(&[], &default, &ticketer);
/// assert!(problems.is_empty());
/// // Every accepted connection, on any worker:
/// let conn = rustls::ServerConnection::new(generation.config.clone())?;
/// # drop(conn);
/// # Ok(())
/// # }
/// ```
pub fn build(
    certs: &[Certificate],
    default: &DefaultCert,
    ticketer: &Arc<dyn ProducesTickets>,
) -> (TlsGeneration, Vec<TlsError>) {
    let provider = Arc::new(provider());
    let (store, errors) = CertStore::new(certs, default, &provider);
    let store = Arc::new(store);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .expect("CIPHER_SUITES has suites for both VERSIONS (tested)")
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    config.ticketer = ticketer.clone();
    config.send_tls13_tickets = TLS13_TICKETS;
    // TLS 1.2 session IDs: off; see the module documentation.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    // 0-RTT data can be replayed; HTTP requests through a proxy are not all idempotent.
    config.max_early_data_size = 0;
    config.ignore_client_order = true;
    (TlsGeneration { config: Arc::new(config), store }, errors)
}

/// Keys come from control (validated hosts); SNI-derived keys only probe.
type Index = HashMap<Box<str>, u32, BuildHasherDefault<IndexHasher>>;

/// The SNI resolver of one generation: every loaded certificate indexed by the hosts it serves,
/// and the default one.
pub struct CertStore {
    precise: Index,
    wildcard: Index,
    keys: Vec<Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    inventory: Vec<CertStatus>,
    default_status: DefaultStatus,
}

/// One Secret's certificate as served, for `status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertStatus {
    /// The Secret.
    pub secret: SecretRef,
    /// The Ingresses that use it.
    pub ingresses: Vec<IngressRef>,
    /// The hosts it claims (its Ingresses' `tls[].hosts`).
    pub hosts: Vec<HostRule>,
    /// The hosts it is chosen for: the claimed ones, less those another Secret won (and none
    /// when it was not loaded).
    pub serving: Vec<HostRule>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after_unix_s: i64,
    /// Whether rustls loaded it (see the [`TlsError`] otherwise).
    pub loaded: bool,
}

/// The default certificate as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultStatus {
    /// Where it came from.
    pub origin: DefaultOrigin,
    /// The leaf's `notAfter`, Unix seconds, when its DER could be read.
    pub not_after_unix_s: Option<i64>,
}

impl CertStore {
    /// Indexes `certs` (loading each key with `provider`) around `default`. Reports certificates
    /// left out and hosts claimed twice; the result does not depend on the order of `certs`.
    pub fn new(
        certs: &[Certificate],
        default: &DefaultCert,
        provider: &CryptoProvider,
    ) -> (CertStore, Vec<TlsError>) {
        let mut errors = Vec::new();
        // Conflicts are settled by Secret (namespace, then name): the contract gives no Ingress
        // ages for certificates, and the Secret order is stable across generations.
        let mut order: Vec<&Certificate> = certs.iter().collect();
        order.sort_by(|a, b| a.secret.cmp(&b.secret));

        let mut store = CertStore {
            precise: Index::default(),
            wildcard: Index::default(),
            keys: Vec::new(),
            default: default.key.clone(),
            inventory: Vec::with_capacity(order.len()),
            default_status: DefaultStatus {
                origin: default.origin.clone(),
                not_after_unix_s: default.not_after_unix_s,
            },
        };
        // Which Secret owns each host so far: index into `store.inventory`.
        let mut owner: HashMap<HostRule, usize> = HashMap::new();
        for cert in order {
            let mut status = CertStatus {
                secret: cert.secret.clone(),
                ingresses: cert.ingresses.clone(),
                hosts: cert.hosts.clone(),
                serving: Vec::new(),
                not_after_unix_s: cert.not_after_unix_s,
                loaded: false,
            };
            let key = match load(cert, provider) {
                Ok(key) => key,
                Err(reason) => {
                    errors.push(TlsError::Rejected {
                        secret: cert.secret.clone(),
                        ingresses: cert.ingresses.clone(),
                        reason,
                    });
                    store.inventory.push(status);
                    continue;
                }
            };
            status.loaded = true;
            let slot = u32::try_from(store.keys.len()).expect("fewer than 2^32 certificates");
            store.keys.push(Arc::new(key));
            let me = store.inventory.len();
            for host in &cert.hosts {
                let host = match host {
                    HostRule::Precise(h) => HostRule::Precise(h.to_ascii_lowercase()),
                    HostRule::Wildcard(s) => HostRule::Wildcard(s.to_ascii_lowercase()),
                    HostRule::Any => {
                        errors.push(TlsError::AnyHost {
                            secret: cert.secret.clone(),
                            ingresses: cert.ingresses.clone(),
                        });
                        continue;
                    }
                };
                match owner.entry(host.clone()) {
                    Entry::Occupied(o) if *o.get() == me => {} // listed twice by one Secret
                    Entry::Occupied(o) => errors.push(TlsError::HostTaken {
                        host,
                        secret: cert.secret.clone(),
                        ingresses: cert.ingresses.clone(),
                        kept: store.inventory[*o.get()].secret.clone(),
                    }),
                    Entry::Vacant(v) => {
                        v.insert(me);
                        match &host {
                            HostRule::Precise(h) => store.precise.insert(h.as_str().into(), slot),
                            HostRule::Wildcard(s) => store.wildcard.insert(s.as_str().into(), slot),
                            HostRule::Any => unreachable!("skipped above"),
                        };
                        status.serving.push(host);
                    }
                }
            }
            store.inventory.push(status);
        }
        (store, errors)
    }

    /// The certificate for a client's server name (SNI): the precise host's, else the wildcard
    /// one label up (`*.foo.com` for `bar.foo.com`, never for `foo.com` or `a.b.foo.com`), else
    /// the default. Case-insensitive, one trailing dot ignored, the same host normalisation as
    /// routing ([`request_host`]). No SNI, or an IP literal: the default.
    ///
    /// Hot path: lowercases into a stack buffer, at most two hash probes, no allocation.
    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let mut buf = [0u8; MAX_HOST_BYTES];
        let Some(name) = server_name else { return &self.default };
        let RequestHost::Name(host) = request_host(name, &mut buf) else { return &self.default };
        let slot =
            self.precise.get(host).or_else(|| wildcard_suffix(host).and_then(|s| self.wildcard.get(s)));
        match slot {
            Some(&i) => &self.keys[i as usize],
            None => &self.default,
        }
    }

    /// Every Secret's certificate of the generation, loaded or not, sorted by Secret.
    pub fn inventory(&self) -> &[CertStatus] {
        &self.inventory
    }

    /// The default certificate's status.
    pub fn default_status(&self) -> &DefaultStatus {
        &self.default_status
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Always an answer: a handshake without a matching certificate gets the default one
        // (as ingress-nginx does), never a handshake failure.
        Some(self.pick(client_hello.server_name()).clone())
    }
}

impl fmt::Debug for CertStore {
    // Only names and counts: a `CertifiedKey`'s own `Debug` is rustls' business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("precise_hosts", &self.precise.len())
            .field("wildcard_hosts", &self.wildcard.len())
            .field("inventory", &self.inventory)
            .field("default", &self.default_status)
            .finish()
    }
}

/// Loads one Secret's chain and key, checking that the key matches the leaf.
/// The error is the reason, for [`TlsError::Rejected`].
fn load(cert: &Certificate, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    if cert.chain_der.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let chain = cert.chain_der.iter().map(|c| CertificateDer::from(c.clone())).collect();
    let key = match cert.key_format {
        KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(cert.key_der.clone())),
        KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        KeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(cert.key_der.clone())),
    };
    // rustls' errors name the problem, never the key's bytes (tested below).
    CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("tls.key: {e}"))
}

/// A default certificate, served without SNI and for names no Secret covers.
#[derive(Clone)]
pub struct DefaultCert {
    key: Arc<CertifiedKey>,
    origin: DefaultOrigin,
    not_after_unix_s: Option<i64>,
}

/// Where the default certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultOrigin {
    /// Generated at start: self-signed, ECDSA P-256.
    Generated,
    /// Loaded from PEM files.
    Files {
        /// The chain, leaf first.
        chain: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// Loaded from PEM text the caller read.
    Pem,
}

/// The subject (CN) and only name of a generated default certificate. `.invalid` (RFC 2606)
/// cannot be anyone's real name, so no client can take it for a real site's certificate.
pub const GENERATED_NAME: &str = "sluice-default.invalid";

/// How long a generated default certificate is valid. Nobody can trust a self-signed
/// certificate, so a short life buys no safety; ten years means it never expires under a
/// running gateway. Valid from a day before `now` for clients whose clocks run late.
const GENERATED_VALID_DAYS: i64 = 3650;

impl DefaultCert {
    /// Generates a self-signed ECDSA P-256 certificate for [`GENERATED_NAME`], valid from a day
    /// before `now_unix_s` for ten years (in whole days, UTC).
    pub fn generate(now_unix_s: i64) -> Result<DefaultCert, StartError> {
        let fail = |e: rcgen::Error| StartError::Generate { reason: e.to_string() };
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
        let mut params = rcgen::CertificateParams::new(vec![GENERATED_NAME.to_string()]).map_err(fail)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, GENERATED_NAME);
        let today = now_unix_s.div_euclid(86_400);
        let (y, m, d) = civil_from_days(today - 1);
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = civil_from_days(today + GENERATED_VALID_DAYS);
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let cert = params.self_signed(&key_pair).map_err(fail)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let certified = CertifiedKey::from_der(vec![cert.der().clone()], key, &provider())
            .map_err(|e| StartError::Generate { reason: e.to_string() })?;
        Ok(DefaultCert {
            key: Arc::new(certified),
            origin: DefaultOrigin::Generated,
            not_after_unix_s: Some((today + GENERATED_VALID_DAYS) * 86_400),
        })
    }

    /// Loads a default certificate from PEM files: `chain` holds the certificates, leaf first;
    /// `key` the private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<DefaultCert, StartError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| StartError::DefaultFile { path: path.to_owned(), reason: e.to_string() })
        };
        let (chain_pem, key_pem) = (read(chain)?, read(key)?);
        let origin = DefaultOrigin::Files { chain: chain.to_owned(), key: key.to_owned() };
        let (chain_path, key_path) = (chain.to_owned(), key.to_owned());
        Self::load_pem(&chain_pem, &key_pem, origin, chain_path, key_path)
    }

    /// Like [`DefaultCert::from_pem_files`], from PEM text already read.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<DefaultCert, StartError> {
        let path = PathBuf::from("(PEM text)");
        Self::load_pem(chain_pem, key_pem, DefaultOrigin::Pem, path.clone(), path)
    }

    fn load_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        origin: DefaultOrigin,
        chain_path: PathBuf,
        key_path: PathBuf,
    ) -> Result<DefaultCert, StartError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StartError::DefaultFile { path: chain_path.clone(), reason: pem_reason(&e) })?;
        if chain.is_empty() {
            let reason = "no CERTIFICATE section".into();
            return Err(StartError::DefaultFile { path: chain_path, reason });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| StartError::DefaultFile { path: key_path.clone(), reason: pem_reason(&e) })?;
        let not_after_unix_s = not_after_unix_s(&chain[0]);
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| StartError::DefaultFile { path: key_path, reason: e.to_string() })?;
        Ok(DefaultCert { key: Arc::new(certified), origin, not_after_unix_s })
    }

    /// The leaf, DER (what clients see).
    pub fn leaf_der(&self) -> &[u8] {
        self.key.cert[0].as_ref()
    }

    /// Where it came from.
    pub fn origin(&self) -> &DefaultOrigin {
        &self.origin
    }
}

impl fmt::Debug for DefaultCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultCert")
            .field("origin", &self.origin)
            .field("not_after_unix_s", &self.not_after_unix_s)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A PEM error without the file's content: pki-types' own messages may quote a line of it.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        pem::Error::NoItemsFound => "no section of the expected kind".into(),
        pem::Error::Io(io) => io.to_string(),
        _ => "unreadable PEM".into(),
    }
}

/// The UTC calendar date of a day counted from the Unix epoch (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

/// Days from the Unix epoch to a UTC calendar date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A DER element: tag, contents, what follows. Definite lengths up to 4 bytes (X.509 is DER).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A leaf's `notAfter` (RFC 5280 §4.1.2.5), Unix seconds, read straight from its DER: the
/// default certificate's files carry no separate expiry, and `status` reports one.
fn not_after_unix_s(cert_der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = der_element(cert_der)? else { return None };
    let (0x30, tbs, _) = der_element(cert)? else { return None };
    let mut rest = tbs;
    // version [0] EXPLICIT, optional.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = der_element(rest)?.2;
    }
    let (0x30, validity, _) = der_element(rest)? else { return None };
    let not_before_rest = der_element(validity)?.2;
    let (tag, time, _) = der_element(not_before_rest)?;
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
    };
    // UTCTime YYMMDDHHMMSSZ (YY < 50 is 20YY), GeneralizedTime YYYYMMDDHHMMSSZ.
    let (year, rest) = match (tag, time.len()) {
        (0x17, 13) => {
            let yy = digits(&time[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &time[2..])
        }
        (0x18, 15) => (digits(&time[..4])?, &time[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// A problem with one generation's certificates, for control to report: the generation is
/// served without what it names. None of them carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// A Secret's certificate could not be loaded (no chain, a key rustls cannot parse, a key
    /// that does not match the leaf, a chain that does not parse). It is left out: its hosts
    /// get the default certificate.
    Rejected {
        /// The Secret.
        secret: SecretRef,
        /// The Ingresses using it.
        ingresses: Vec<IngressRef>,
        /// What rustls said.
        reason: String,
    },
    /// A host claimed by two Secrets: the one with the smaller (namespace, name) keeps it.
    HostTaken {
        /// The host.
        host: HostRule,
        /// The Secret that lost it.
        secret: SecretRef,
        /// The Ingresses using the losing Secret.
        ingresses: Vec<IngressRef>,
        /// The Secret that keeps it.
        kept: SecretRef,
    },
    /// A certificate listed for "any host": SNI cannot choose it for that entry.
    AnyHost {
        /// The Secret.
        secret: SecretRef,
        /// The Ingresses using it.
        ingresses: Vec<IngressRef>,
    },
}

/// What stops the gateway from serving HTTPS at all: the default certificate or the ticket key.
/// (Problems of one generation's certificates are [`TlsError`]s and never stop anything.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The default certificate's files could not be used.
    DefaultFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The default certificate could not be generated.
    Generate {
        /// Why.
        reason: String,
    },
    /// The session-ticket key could not be made.
    Ticketer {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::DefaultFile { path, reason } => {
                write!(f, "default certificate: {}: {reason}", path.display())
            }
            StartError::Generate { reason } => {
                write!(f, "default certificate: cannot generate one: {reason}")
            }
            StartError::Ticketer { reason } => {
                write!(f, "TLS session tickets: cannot make the ticket key: {reason}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// `ns/a, ns/b` for messages.
struct Names<'a>(&'a [IngressRef]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no Ingress");
        }
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Rejected { secret, ingresses, reason } => write!(
                f,
                "Secret {secret} (used by Ingress {}): {reason}; the certificate is not served, \
                 its hosts get the default certificate until the Secret is fixed",
                Names(ingresses)
            ),
            TlsError::HostTaken { host, secret, ingresses, kept } => write!(
                f,
                "Secret {secret} (used by Ingress {}): host {host} is already served by Secret \
                 {kept}, which keeps it (first by namespace/name); remove the host from one of \
                 the Ingresses' tls[].hosts",
                Names(ingresses)
            ),
            TlsError::AnyHost { secret, ingresses } => write!(
                f,
                "Secret {secret} (used by Ingress {}): listed without a host, which SNI cannot \
                 choose; list the hosts in tls[].hosts",
                Names(ingresses)
            ),
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_717), (2026, 9, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for day in -800_000..800_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(i64::from(y), i64::from(m), i64::from(d)), day);
        }
    }

    /// rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
    #[test]
    fn not_after_reads_both_time_encodings() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        for ((y, m, d), unix_s) in [((2049, 12, 31), 2_524_521_600), ((2060, 3, 1), 2_845_324_800)] {
            let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
            params.not_after = rcgen::date_time_ymd(y, m, d);
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(not_after_unix_s(cert.der()), Some(unix_s), "{y}");
        }
        assert_eq!(not_after_unix_s(&[0x30, 0x03, 0x30, 0x01]), None);
        assert_eq!(not_after_unix_s(b""), None);
    }
}
