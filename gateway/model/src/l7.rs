//! The L7 half of a table generation: what control compiles from Ingresses, IngressClasses,
//! Services, EndpointSlices and TLS Secrets, and what every gateway worker serves HTTP and HTTPS
//! from. It travels in the same generation as L4's services, so L4 and L7 never disagree.
//!
//! - [`L7Table::routes`]: the merged route table ([`crate::route::RouteTable`]).
//! - [`L7Table::upstreams`]: for every Service port a route names, its endpoints (the
//!   Service's target port resolved per endpoint, as kube-proxy does), with their conditions.
//! - [`L7Table::certificates`]: one entry per TLS Secret an Ingress of Sluice's class uses,
//!   with the hosts it serves (its Ingresses' `tls[].hosts`).
//! - [`L7Table::listeners`]: the addresses the gateway serves Ingresses on (ports 80 and 443):
//!   taken from the LoadBalancer pool for the IngressClass, or given to the gateway by flag.
//!
//! Private keys are in this table: whatever holds it on disk or in shared memory must be
//! readable by the gateway's user only, and nothing prints a [`Certificate`]'s key (its `Debug`
//! leaves it out).
//!
//! Not hot path: built once per generation by control, indexed once per generation by each
//! worker.

use std::fmt;
use std::net::SocketAddr;

use crate::addr::Addr;
use crate::route::{HostRule, IngressRef, RouteTable, ServiceBackend};

/// The L7 half of a generation. Empty when no Ingress of Sluice's class exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L7Table {
    /// Routes from every Ingress of Sluice's class, merged.
    pub routes: RouteTable,
    /// The endpoints of every Service port a route names, sorted by `service`, one entry each.
    /// A Service port with no endpoints has an entry with none (requests get 503).
    pub upstreams: Vec<Upstream>,
    /// Certificates by TLS Secret, sorted by `secret`.
    pub certificates: Vec<Certificate>,
    /// Where Ingresses are served.
    pub listeners: Vec<Listener>,
}

/// Where Ingresses are served: an address the gateway owns on the wire, ports 80 and 443 by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listener {
    /// The address (IPv4 or IPv6).
    pub addr: Addr,
    /// Plain HTTP port (80).
    pub http_port: u16,
    /// HTTPS port (443).
    pub https_port: u16,
}

/// A Service port's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The Service port, as routes name it (by number or by name).
    pub service: ServiceBackend,
    /// Its endpoints, sorted by address. For an ExternalName Service: none from control; the
    /// gateway fills them in from DNS.
    pub endpoints: Vec<Endpoint>,
    /// An ExternalName Service: the name to resolve and the port to send to.
    pub external: Option<ExternalName>,
}

/// Where an ExternalName Service's requests go: `spec.externalName` (resolved by the gateway,
/// off the hot path, again when its DNS answer's TTL runs out) and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalName {
    /// The DNS name (lowercase, no trailing dot).
    pub host: String,
    /// The port (the Service port's numeric targetPort, else the port the Ingress names).
    pub port: u16,
}

/// One endpoint of a Service port, with EndpointSlice conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address and target port.
    pub addr: SocketAddr,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
}

impl Upstream {
    /// The endpoints new requests may go to: the ready ones; when none is ready, the serving
    /// terminating ones (kube-proxy's fallback); else none.
    pub fn eligible(&self) -> impl Iterator<Item = &Endpoint> {
        let any_ready = self.endpoints.iter().any(|e| e.ready);
        self.endpoints.iter().filter(move |e| if any_ready { e.ready } else { e.serving && e.terminating })
    }
}

/// A TLS Secret's `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How a private key is encoded (what `tls.key` held, as DER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyFormat {
    /// `RSA PRIVATE KEY`.
    Pkcs1,
    /// `PRIVATE KEY`.
    Pkcs8,
    /// `EC PRIVATE KEY`.
    Sec1,
}

/// A certificate chain and its key, from one `kubernetes.io/tls` Secret, checked by control:
/// the chain parses, the key matches the leaf, the leaf has not expired.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The Secret.
    pub secret: SecretRef,
    /// The Ingresses that use it.
    pub ingresses: Vec<IngressRef>,
    /// The hosts it is chosen for by SNI (the Ingresses' `tls[].hosts`; wildcards allowed).
    pub hosts: Vec<HostRule>,
    /// The chain, leaf first, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// The key's encoding.
    pub key_format: KeyFormat,
    /// The key, DER. Never logged.
    pub key_der: Vec<u8>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after_unix_s: i64,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("secret", &self.secret)
            .field("ingresses", &self.ingresses)
            .field("hosts", &self.hosts)
            .field("chain_len", &self.chain_der.len())
            .field("key_format", &self.key_format)
            .field("key_der", &"<redacted>")
            .field("not_after_unix_s", &self.not_after_unix_s)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::ServicePort;

    fn ep(last: u8, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint { addr: SocketAddr::from(([198, 18, 0, last], 8080)), ready, serving, terminating }
    }

    fn upstream(endpoints: Vec<Endpoint>) -> Upstream {
        Upstream {
            external: None,
            service: ServiceBackend {
                namespace: "ns".into(),
                name: "svc".into(),
                port: ServicePort::Number(80),
            },
            endpoints,
        }
    }

    #[test]
    fn ready_endpoints_are_eligible_terminating_only_as_a_fallback() {
        let u =
            upstream(vec![ep(1, true, true, false), ep(2, false, true, true), ep(3, false, false, false)]);
        let got: Vec<SocketAddr> = u.eligible().map(|e| e.addr).collect();
        assert_eq!(got, vec![SocketAddr::from(([198, 18, 0, 1], 8080))]);
        let u =
            upstream(vec![ep(2, false, true, true), ep(3, false, false, true), ep(4, false, false, false)]);
        let got: Vec<SocketAddr> = u.eligible().map(|e| e.addr).collect();
        assert_eq!(got, vec![SocketAddr::from(([198, 18, 0, 2], 8080))]);
        assert_eq!(upstream(vec![]).eligible().count(), 0);
    }

    #[test]
    fn a_certificate_never_prints_its_key() {
        let c = Certificate {
            secret: SecretRef { namespace: "ns".into(), name: "tls".into() },
            ingresses: vec![],
            hosts: vec![],
            chain_der: vec![vec![1]],
            key_format: KeyFormat::Pkcs8,
            key_der: b"SECRET-KEY-BYTES".to_vec(),
            not_after_unix_s: 0,
        };
        let s = format!("{c:?}");
        assert!(!s.contains("SECRET") && !s.contains("83, 69"), "{s}");
    }
}
