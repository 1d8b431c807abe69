//! The L7 half of an image: an [`L7Table`] as records and a byte pool, and back.
//!
//! Twelve regions of records follow the L4 regions ([`layout::L7_REGIONS`], in that order), then
//! the L7 byte pool, which holds every string and DER blob once, one after another. A record
//! names a string or blob by a [`Span`] (offset from the pool's start, length). Items that
//! belong to one record — a host entry's paths, an upstream's endpoints, a certificate's chain,
//! hosts and Ingresses — are contiguous and follow the previous owner's, as L4's backends do.
//!
//! Decoding checks every span, count and code, and keeps allocation bounded by the image's
//! length: each region's records were checked to lie in the image, every owner's range must
//! follow the previous one's (so each record is decoded once), and the spans together may claim
//! no more bytes than the pool holds (each string and blob is read from bytes of its own; an
//! encoder never shares them). Strings are checked as what they are — hosts by [`HostRule::new`],
//! paths by [`RulePath::new`] or, in an ingress-nginx entry, [`RulePath::nginx`] — so a decoded table holds nothing control could not have made.
//!
//! Not hot path.

use std::net::SocketAddr;

use super::ImageError;
use super::layout::{
    BACKEND, BackendCode, CLAIM, CONDITION_READY, CONDITION_SERVING, CONDITION_TERMINATING, Field, HOST_KIND,
    HostKind, KEY_FORMAT, L7_REGIONS, PATH_TYPE, PORT_KIND, PortKind, Span, code, decode_code, l7_canary,
    l7_cert_host, l7_cert_ingress, l7_certificate, l7_chain, l7_conflict, l7_endpoint, l7_host, l7_listener,
    l7_path, l7_policy, l7_region as reg, l7_upstream,
};
use crate::addr::Addr;
use crate::l7::{Certificate, Endpoint, ExternalName, L7Table, Listener, SecretRef, Upstream};
use crate::policy::{self, Policy};
use crate::route::{
    Backend, CanaryRoute, Claim, Conflict, DefaultRoute, Dialect, HostRoutes, HostRule, IngressRef,
    PathRoute, RouteTable, RulePath, ServiceBackend, ServicePort,
};

/// How many L7 regions of records there are.
pub(super) const REGIONS: usize = L7_REGIONS.len();

/// An L7 table as bytes: each region's records (bytes, count) and the byte pool.
pub(super) struct Encoded {
    pub(super) regions: [(Vec<u8>, usize); REGIONS],
    pub(super) pool: Vec<u8>,
}

/// A backend's fields, as [`l7_host`] (its default) and [`l7_path`] hold them.
struct BackendFields {
    code: u8,
    port_kind: u8,
    port_number: u16,
    namespace: Span,
    name: Span,
    port_name: Span,
}

/// Where a record keeps a backend's fields: code, port kind, port number, Service namespace,
/// Service name, port name.
type BackendFieldsAt = (Field<u8>, Field<u8>, Field<u16>, Field<Span>, Field<Span>, Field<Span>);

impl Encoded {
    fn span(&mut self, b: &[u8]) -> Span {
        let at = self.pool.len() as u32;
        self.pool.extend_from_slice(b);
        Span { at, len: b.len() as u32 }
    }

    /// A new zeroed record in `region`.
    fn record(&mut self, region: usize, size: usize) -> &mut [u8] {
        let (v, n) = &mut self.regions[region];
        let start = v.len();
        v.resize(start + size, 0);
        *n += 1;
        &mut v[start..]
    }

    fn host(&mut self, h: &HostRule) -> (u8, Span) {
        let (kind, name) = match h {
            HostRule::Precise(n) => (HostKind::Precise, n.as_str()),
            HostRule::Wildcard(n) => (HostKind::Wildcard, n.as_str()),
            HostRule::Any => (HostKind::Any, ""),
        };
        (code(&HOST_KIND, kind), self.span(name.as_bytes()))
    }

    fn service(&mut self, s: &ServiceBackend) -> (u8, u16, Span, Span, Span) {
        let namespace = self.span(s.namespace.as_bytes());
        let name = self.span(s.name.as_bytes());
        let (kind, number, port_name) = match &s.port {
            ServicePort::Number(n) => (PortKind::Number, *n, self.span(b"")),
            ServicePort::Name(p) => (PortKind::Name, 0, self.span(p.as_bytes())),
        };
        (code(&PORT_KIND, kind), number, namespace, name, port_name)
    }

    fn backend(&mut self, b: Option<&Backend>) -> BackendFields {
        let none = |code| BackendFields {
            code,
            port_kind: 0,
            port_number: 0,
            namespace: Span::default(),
            name: Span::default(),
            port_name: Span::default(),
        };
        match b {
            None => none(code(&BACKEND, BackendCode::None)),
            Some(Backend::Unavailable(u)) => none(code(&BACKEND, BackendCode::Unavailable(*u))),
            Some(Backend::Service(s)) => {
                let (port_kind, port_number, namespace, name, port_name) = self.service(s);
                let code = code(&BACKEND, BackendCode::Service);
                BackendFields { code, port_kind, port_number, namespace, name, port_name }
            }
        }
    }

    fn ingress(&mut self, i: &IngressRef) -> (Span, Span) {
        (self.span(i.namespace.as_bytes()), self.span(i.name.as_bytes()))
    }
}

/// Encodes an L7 table. Deterministic.
pub(super) fn encode(t: &L7Table) -> Encoded {
    let mut e = Encoded { regions: Default::default(), pool: Vec::new() };
    let mut next_path = 0u32;
    for h in t.routes.hosts() {
        let (kind, host) = e.host(&h.host);
        let d = e.backend(h.default_backend.as_ref().map(|d| &d.backend));
        let (ins, inn) = match &h.default_backend {
            Some(d) => e.ingress(&d.ingress),
            None => (Span::default(), Span::default()),
        };
        let rec = e.record(reg::HOSTS, l7_host::SIZE);
        l7_host::HOST_KIND.write(rec, kind);
        l7_host::DEFAULT_BACKEND.write(rec, d.code);
        l7_host::DEFAULT_PORT_KIND.write(rec, d.port_kind);
        l7_host::DIALECT.write(
            rec,
            match (h.dialect, h.regex) {
                (Dialect::Kubernetes, _) => 0,
                (Dialect::IngressNginx, false) => 1,
                (Dialect::IngressNginx, true) => 2,
            },
        );
        l7_host::DEFAULT_PORT_NUMBER.write(rec, d.port_number);
        l7_host::DEFAULT_METRIC.write(rec, h.default_backend.as_ref().map_or(0, |d| d.metric));
        l7_host::HOST.write(rec, host);
        l7_host::PATHS_FIRST.write(rec, next_path);
        l7_host::PATHS_COUNT.write(rec, h.paths.len() as u32);
        l7_host::DEFAULT_SERVICE_NAMESPACE.write(rec, d.namespace);
        l7_host::DEFAULT_SERVICE_NAME.write(rec, d.name);
        l7_host::DEFAULT_PORT_NAME.write(rec, d.port_name);
        l7_host::DEFAULT_INGRESS_NAMESPACE.write(rec, ins);
        l7_host::DEFAULT_INGRESS_NAME.write(rec, inn);
        l7_host::DEFAULT_POLICY.write(rec, h.default_backend.as_ref().map_or(0, |d| d.policy));
        next_path += h.paths.len() as u32;
    }
    for p in t.routes.hosts().iter().flat_map(|h| &h.paths) {
        let path = e.span(p.path.as_str().as_bytes());
        let b = e.backend(Some(&p.backend));
        let (ins, inn) = e.ingress(&p.ingress);
        let rec = e.record(reg::PATHS, l7_path::SIZE);
        l7_path::PATH_TYPE.write(rec, code(&PATH_TYPE, p.path_type));
        l7_path::BACKEND.write(rec, b.code);
        l7_path::PORT_KIND.write(rec, b.port_kind);
        l7_path::PORT_NUMBER.write(rec, b.port_number);
        l7_path::METRIC.write(rec, p.metric);
        l7_path::PATH.write(rec, path);
        l7_path::SERVICE_NAMESPACE.write(rec, b.namespace);
        l7_path::SERVICE_NAME.write(rec, b.name);
        l7_path::PORT_NAME.write(rec, b.port_name);
        l7_path::INGRESS_NAMESPACE.write(rec, ins);
        l7_path::INGRESS_NAME.write(rec, inn);
        l7_path::POLICY.write(rec, p.policy);
    }
    for (i, p) in t.routes.hosts().iter().flat_map(|h| &h.paths).enumerate() {
        let Some(c) = &p.canary else { continue };
        let b = e.backend(Some(&c.backend));
        let (ins, inn) = e.ingress(&c.ingress);
        let mut rule = Vec::new();
        policy::codec::encode_canary(&c.rule, &mut rule);
        let rule = e.span(&rule);
        let rec = e.record(reg::CANARIES, l7_canary::SIZE);
        l7_canary::PATH.write(rec, i as u32);
        l7_canary::BACKEND.write(rec, b.code);
        l7_canary::PORT_KIND.write(rec, b.port_kind);
        l7_canary::PORT_NUMBER.write(rec, b.port_number);
        l7_canary::METRIC.write(rec, c.metric);
        l7_canary::POLICY.write(rec, c.policy);
        l7_canary::SERVICE_NAMESPACE.write(rec, b.namespace);
        l7_canary::SERVICE_NAME.write(rec, b.name);
        l7_canary::PORT_NAME.write(rec, b.port_name);
        l7_canary::INGRESS_NAMESPACE.write(rec, ins);
        l7_canary::INGRESS_NAME.write(rec, inn);
        l7_canary::RULE.write(rec, rule);
    }
    for p in t.routes.policies() {
        let mut bytes = Vec::new();
        policy::codec::encode(p, &mut bytes);
        let span = e.span(&bytes);
        let rec = e.record(reg::POLICIES, l7_policy::SIZE);
        l7_policy::BYTES.write(rec, span);
    }
    for c in t.routes.conflicts() {
        let (kind, host) = e.host(&c.host);
        let (is_path, path_type, path) = match &c.claim {
            Claim::Path { path_type, path } => {
                (true, code(&PATH_TYPE, *path_type), e.span(path.as_str().as_bytes()))
            }
            Claim::DefaultBackend => (false, 0, Span::default()),
        };
        let (wns, wn) = e.ingress(&c.winner);
        let (lns, ln) = e.ingress(&c.loser);
        let rec = e.record(reg::CONFLICTS, l7_conflict::SIZE);
        l7_conflict::HOST_KIND.write(rec, kind);
        l7_conflict::CLAIM.write(rec, code(&CLAIM, is_path));
        l7_conflict::PATH_TYPE.write(rec, path_type);
        l7_conflict::HOST.write(rec, host);
        l7_conflict::PATH.write(rec, path);
        l7_conflict::WINNER_NAMESPACE.write(rec, wns);
        l7_conflict::WINNER_NAME.write(rec, wn);
        l7_conflict::LOSER_NAMESPACE.write(rec, lns);
        l7_conflict::LOSER_NAME.write(rec, ln);
    }
    let mut next_endpoint = 0u32;
    for u in &t.upstreams {
        let (port_kind, number, ns, name, port_name) = e.service(&u.service);
        let rec = e.record(reg::UPSTREAMS, l7_upstream::SIZE);
        l7_upstream::PORT_KIND.write(rec, port_kind);
        l7_upstream::PORT_NUMBER.write(rec, number);
        l7_upstream::SERVICE_NAMESPACE.write(rec, ns);
        l7_upstream::SERVICE_NAME.write(rec, name);
        l7_upstream::PORT_NAME.write(rec, port_name);
        l7_upstream::ENDPOINTS_FIRST.write(rec, next_endpoint);
        l7_upstream::ENDPOINTS_COUNT.write(rec, u.endpoints.len() as u32);
        if let Some(x) = &u.external {
            let host = e.span(x.host.as_bytes());
            let rec = &mut e.regions[reg::UPSTREAMS].0;
            let at = rec.len() - l7_upstream::SIZE;
            l7_upstream::EXTERNAL_HOST.write(&mut rec[at..], host);
            l7_upstream::EXTERNAL_PORT.write(&mut rec[at..], x.port);
        }
        next_endpoint += u.endpoints.len() as u32;
        for ep in &u.endpoints {
            let rec = e.record(reg::ENDPOINTS, l7_endpoint::SIZE);
            l7_endpoint::ADDR.write(rec, Addr::from(ep.addr.ip()).0);
            l7_endpoint::PORT.write(rec, ep.addr.port());
            let c = [
                (ep.ready, CONDITION_READY),
                (ep.serving, CONDITION_SERVING),
                (ep.terminating, CONDITION_TERMINATING),
            ]
            .iter()
            .fold(0, |byte, &(set, bit)| if set { byte | bit } else { byte });
            l7_endpoint::CONDITIONS.write(rec, c);
        }
    }
    let (mut next_chain, mut next_host, mut next_ingress) = (0u32, 0u32, 0u32);
    for c in &t.certificates {
        let ns = e.span(c.secret.namespace.as_bytes());
        let name = e.span(c.secret.name.as_bytes());
        let key = e.span(&c.key_der);
        let rec = e.record(reg::CERTIFICATES, l7_certificate::SIZE);
        l7_certificate::KEY_FORMAT.write(rec, code(&KEY_FORMAT, c.key_format));
        l7_certificate::NOT_AFTER_UNIX_S.write(rec, c.not_after_unix_s as u64);
        l7_certificate::SECRET_NAMESPACE.write(rec, ns);
        l7_certificate::SECRET_NAME.write(rec, name);
        l7_certificate::KEY.write(rec, key);
        l7_certificate::CHAIN_FIRST.write(rec, next_chain);
        l7_certificate::CHAIN_COUNT.write(rec, c.chain_der.len() as u32);
        l7_certificate::HOSTS_FIRST.write(rec, next_host);
        l7_certificate::HOSTS_COUNT.write(rec, c.hosts.len() as u32);
        l7_certificate::INGRESSES_FIRST.write(rec, next_ingress);
        l7_certificate::INGRESSES_COUNT.write(rec, c.ingresses.len() as u32);
        next_chain += c.chain_der.len() as u32;
        next_host += c.hosts.len() as u32;
        next_ingress += c.ingresses.len() as u32;
        for der in &c.chain_der {
            let s = e.span(der);
            l7_chain::DER.write(e.record(reg::CHAIN, l7_chain::SIZE), s);
        }
        for h in &c.hosts {
            let (kind, host) = e.host(h);
            let rec = e.record(reg::CERT_HOSTS, l7_cert_host::SIZE);
            l7_cert_host::HOST_KIND.write(rec, kind);
            l7_cert_host::HOST.write(rec, host);
        }
        for i in &c.ingresses {
            let (ns, name) = e.ingress(i);
            let rec = e.record(reg::CERT_INGRESSES, l7_cert_ingress::SIZE);
            l7_cert_ingress::NAMESPACE.write(rec, ns);
            l7_cert_ingress::NAME.write(rec, name);
        }
    }
    for l in &t.listeners {
        let rec = e.record(reg::LISTENERS, l7_listener::SIZE);
        l7_listener::ADDR.write(rec, l.addr.0);
        l7_listener::HTTP_PORT.write(rec, l.http_port);
        l7_listener::HTTPS_PORT.write(rec, l.https_port);
    }
    e
}

/// Reads the L7 regions of an image whose header and region bounds were checked.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Each region's (start, count).
    regions: [(usize, usize); REGIONS],
    /// The byte pool's (start, length).
    pool: (usize, usize),
    /// Pool bytes not yet claimed by a span.
    left: usize,
}

type Result<T> = std::result::Result<T, ImageError>;

fn bad(region: usize, index: usize, reason: &'static str) -> ImageError {
    ImageError::L7 { region: L7_REGIONS[region].0, index, reason }
}

/// A route's metrics row, checked to be one the workers publish.
fn metric_row(row: u16, region: usize, index: usize) -> Result<u16> {
    if usize::from(row) < crate::route_stats::ROWS {
        Ok(row)
    } else {
        Err(bad(region, index, "a metrics row past the last"))
    }
}

impl<'a> Reader<'a> {
    /// Record `i` of `region` (in bounds: the region was checked to lie in the image).
    fn rec(&self, region: usize, i: usize) -> &'a [u8] {
        let size = L7_REGIONS[region].3;
        let at = self.regions[region].0 + i * size;
        &self.bytes[at..at + size]
    }

    /// The bytes of a span, charged to the pool before anything is allocated for them.
    fn raw(&mut self, s: Span) -> Option<&'a [u8]> {
        let end = (s.at as usize).checked_add(s.len as usize)?;
        if end > self.pool.1 {
            return None;
        }
        self.left = self.left.checked_sub(s.len as usize)?;
        Some(&self.bytes[self.pool.0 + s.at as usize..self.pool.0 + end])
    }

    fn text(&mut self, s: Span, region: usize, i: usize) -> Result<String> {
        let raw =
            self.raw(s).ok_or(bad(region, i, "a string outside the L7 byte pool, or overlapping another"))?;
        core::str::from_utf8(raw).map(str::to_owned).map_err(|_| bad(region, i, "a string that is not UTF-8"))
    }

    /// A non-empty name (of a namespace, an Ingress, a Service, a Secret).
    fn name(&mut self, s: Span, region: usize, i: usize) -> Result<String> {
        let n = self.text(s, region, i)?;
        if n.is_empty() {
            return Err(bad(region, i, "an empty name"));
        }
        Ok(n)
    }

    fn ingress(&mut self, ns: Span, name: Span, region: usize, i: usize) -> Result<IngressRef> {
        Ok(IngressRef { namespace: self.name(ns, region, i)?, name: self.name(name, region, i)? })
    }

    fn host(&mut self, kind: u8, s: Span, region: usize, i: usize) -> Result<HostRule> {
        let kind = decode_code(&HOST_KIND, kind).ok_or(bad(region, i, "unknown host kind"))?;
        let name = self.text(s, region, i)?;
        // The same check a rule host passed in control: a host that decodes is one control made.
        let rule = match kind {
            HostKind::Precise => {
                HostRule::new(Some(&name)).ok().filter(|h| matches!(h, HostRule::Precise(_)))
            }
            HostKind::Wildcard => {
                HostRule::new(Some(&format!("*.{name}"))).ok().filter(|h| matches!(h, HostRule::Wildcard(_)))
            }
            HostKind::Any => name.is_empty().then_some(HostRule::Any),
        };
        rule.ok_or(bad(region, i, "a host that is not a DNS name of its kind"))
    }

    #[expect(clippy::too_many_arguments, reason = "a record's fields, read where the record is")]
    fn service(
        &mut self,
        port_kind: u8,
        number: u16,
        ns: Span,
        name: Span,
        port_name: Span,
        region: usize,
        i: usize,
    ) -> Result<ServiceBackend> {
        let namespace = self.name(ns, region, i)?;
        let name = self.name(name, region, i)?;
        let port = match decode_code(&PORT_KIND, port_kind).ok_or(bad(region, i, "unknown port kind"))? {
            PortKind::Number if number != 0 && port_name.len == 0 => ServicePort::Number(number),
            PortKind::Name if number == 0 => ServicePort::Name(self.name(port_name, region, i)?),
            _ => return Err(bad(region, i, "a Service port that is neither a number nor a name")),
        };
        Ok(ServiceBackend { namespace, name, port })
    }

    /// A backend from a record's fields (`None` for [`BackendCode::None`]).
    fn backend(
        &mut self,
        rec: &[u8],
        fields: BackendFieldsAt,
        region: usize,
        i: usize,
    ) -> Result<Option<Backend>> {
        let (code_f, kind_f, number_f, ns_f, name_f, port_name_f) = fields;
        match decode_code(&BACKEND, code_f.read(rec)).ok_or(bad(region, i, "unknown backend code"))? {
            BackendCode::None => Ok(None),
            BackendCode::Unavailable(u) => Ok(Some(Backend::Unavailable(u))),
            BackendCode::Service => {
                let s = self.service(
                    kind_f.read(rec),
                    number_f.read(rec),
                    ns_f.read(rec),
                    name_f.read(rec),
                    port_name_f.read(rec),
                    region,
                    i,
                )?;
                Ok(Some(Backend::Service(s)))
            }
        }
    }

    /// The range `first..first + count` of `region`'s records, which must start at `*next`
    /// (each owner's follow the previous owner's); advances `*next`.
    fn follow(
        &self,
        first: u32,
        count: u32,
        next: &mut usize,
        owned: usize,
        owner: usize,
        i: usize,
    ) -> Result<std::ops::Range<usize>> {
        let (first, count) = (first as usize, count as usize);
        match first.checked_add(count) {
            Some(end) if first == *next && end <= self.regions[owned].1 => {
                *next = end;
                Ok(first..end)
            }
            _ => Err(bad(owner, i, "its items do not follow the previous one's")),
        }
    }

    fn all_owned(&self, next: usize, owned: usize) -> Result<()> {
        if next == self.regions[owned].1 { Ok(()) } else { Err(bad(owned, next, "belongs to nothing")) }
    }

    /// A policy record's index, which must name one.
    fn policy_index(&self, index: u16, region: usize, i: usize) -> Result<u16> {
        if usize::from(index) < self.regions[reg::POLICIES].1
            || (index == 0 && self.regions[reg::POLICIES].1 == 0)
        {
            Ok(index)
        } else {
            Err(bad(region, i, "names a policy that is not in the table"))
        }
    }

    fn policies(&mut self) -> Result<Vec<Policy>> {
        let mut out = Vec::with_capacity(self.regions[reg::POLICIES].1);
        for i in 0..self.regions[reg::POLICIES].1 {
            let span = l7_policy::BYTES.read(self.rec(reg::POLICIES, i));
            let bytes = self.raw(span).ok_or(bad(reg::POLICIES, i, "bytes outside the pool"))?;
            out.push(policy::codec::decode(bytes).map_err(|e| bad(reg::POLICIES, i, e))?);
        }
        Ok(out)
    }

    /// The canaries, attached to their paths (`paths` in path-record order).
    fn canaries(&mut self, paths: &mut [&mut PathRoute]) -> Result<()> {
        let r = reg::CANARIES;
        let mut next = 0usize;
        for i in 0..self.regions[r].1 {
            let rec = self.rec(r, i);
            let at = l7_canary::PATH.read(rec) as usize;
            if at < next || at >= paths.len() {
                return Err(bad(r, i, "names no path, or not in path order"));
            }
            next = at + 1;
            let fields = (
                l7_canary::BACKEND,
                l7_canary::PORT_KIND,
                l7_canary::PORT_NUMBER,
                l7_canary::SERVICE_NAMESPACE,
                l7_canary::SERVICE_NAME,
                l7_canary::PORT_NAME,
            );
            let backend = self.backend(rec, fields, r, i)?.ok_or(bad(r, i, "a canary without backend"))?;
            let ingress = self.ingress(
                l7_canary::INGRESS_NAMESPACE.read(rec),
                l7_canary::INGRESS_NAME.read(rec),
                r,
                i,
            )?;
            let metric = metric_row(l7_canary::METRIC.read(rec), r, i)?;
            let policy = self.policy_index(l7_canary::POLICY.read(rec), r, i)?;
            let bytes = self.raw(l7_canary::RULE.read(rec)).ok_or(bad(r, i, "bytes outside the pool"))?;
            let rule = policy::codec::decode_canary(bytes).map_err(|e| bad(r, i, e))?;
            paths[at].canary = Some(Box::new(CanaryRoute { rule, backend, ingress, policy, metric }));
        }
        Ok(())
    }

    fn routes(&mut self) -> Result<RouteTable> {
        let policies = self.policies()?;
        let (mut hosts, mut next_path) = (Vec::with_capacity(self.regions[reg::HOSTS].1), 0usize);
        for i in 0..self.regions[reg::HOSTS].1 {
            let rec = self.rec(reg::HOSTS, i);
            let host = self.host(l7_host::HOST_KIND.read(rec), l7_host::HOST.read(rec), reg::HOSTS, i)?;
            let fields = (
                l7_host::DEFAULT_BACKEND,
                l7_host::DEFAULT_PORT_KIND,
                l7_host::DEFAULT_PORT_NUMBER,
                l7_host::DEFAULT_SERVICE_NAMESPACE,
                l7_host::DEFAULT_SERVICE_NAME,
                l7_host::DEFAULT_PORT_NAME,
            );
            let default_backend = match self.backend(rec, fields, reg::HOSTS, i)? {
                None => None,
                Some(backend) => {
                    let (ns, name) = (
                        l7_host::DEFAULT_INGRESS_NAMESPACE.read(rec),
                        l7_host::DEFAULT_INGRESS_NAME.read(rec),
                    );
                    let metric = metric_row(l7_host::DEFAULT_METRIC.read(rec), reg::HOSTS, i)?;
                    let policy = self.policy_index(l7_host::DEFAULT_POLICY.read(rec), reg::HOSTS, i)?;
                    let ingress = self.ingress(ns, name, reg::HOSTS, i)?;
                    Some(DefaultRoute { backend, ingress, metric, policy })
                }
            };
            let (dialect, regex) = match l7_host::DIALECT.read(rec) {
                0 => (Dialect::Kubernetes, false),
                1 => (Dialect::IngressNginx, false),
                2 => (Dialect::IngressNginx, true),
                _ => return Err(bad(reg::HOSTS, i, "unknown dialect")),
            };
            let (first, n) = (l7_host::PATHS_FIRST.read(rec), l7_host::PATHS_COUNT.read(rec));
            let range = self.follow(first, n, &mut next_path, reg::PATHS, reg::HOSTS, i)?;
            let mut paths = Vec::with_capacity(range.len());
            for j in range {
                paths.push(self.path(j, dialect)?);
            }
            hosts.push(HostRoutes { host, dialect, regex, paths, default_backend });
        }
        self.all_owned(next_path, reg::PATHS)?;
        let mut conflicts = Vec::with_capacity(self.regions[reg::CONFLICTS].1);
        for i in 0..self.regions[reg::CONFLICTS].1 {
            conflicts.push(self.conflict(i)?);
        }
        let mut paths: Vec<&mut PathRoute> =
            hosts.iter_mut().flat_map(|h: &mut HostRoutes| &mut h.paths).collect();
        self.canaries(&mut paths)?;
        Ok(RouteTable::from_parts(hosts, conflicts, policies))
    }

    fn path(&mut self, j: usize, dialect: Dialect) -> Result<PathRoute> {
        let rec = self.rec(reg::PATHS, j);
        let path_type = decode_code(&PATH_TYPE, l7_path::PATH_TYPE.read(rec)).ok_or(bad(
            reg::PATHS,
            j,
            "unknown path type",
        ))?;
        let text = self.text(l7_path::PATH.read(rec), reg::PATHS, j)?;
        let path = match dialect {
            Dialect::Kubernetes => RulePath::new(&text),
            Dialect::IngressNginx => RulePath::nginx(&text),
        }
        .map_err(|_| bad(reg::PATHS, j, "a path that is not a valid rule path"))?;
        let fields = (
            l7_path::BACKEND,
            l7_path::PORT_KIND,
            l7_path::PORT_NUMBER,
            l7_path::SERVICE_NAMESPACE,
            l7_path::SERVICE_NAME,
            l7_path::PORT_NAME,
        );
        let backend =
            self.backend(rec, fields, reg::PATHS, j)?.ok_or(bad(reg::PATHS, j, "a path without backend"))?;
        let ingress = self.ingress(
            l7_path::INGRESS_NAMESPACE.read(rec),
            l7_path::INGRESS_NAME.read(rec),
            reg::PATHS,
            j,
        )?;
        let metric = metric_row(l7_path::METRIC.read(rec), reg::PATHS, j)?;
        let policy = self.policy_index(l7_path::POLICY.read(rec), reg::PATHS, j)?;
        Ok(PathRoute {
            kind: path_type.kind(),
            path_type,
            path,
            backend,
            ingress,
            metric,
            policy,
            canary: None,
        })
    }

    fn conflict(&mut self, i: usize) -> Result<Conflict> {
        let r = reg::CONFLICTS;
        let rec = self.rec(r, i);
        let host = self.host(l7_conflict::HOST_KIND.read(rec), l7_conflict::HOST.read(rec), r, i)?;
        let claim =
            match decode_code(&CLAIM, l7_conflict::CLAIM.read(rec)).ok_or(bad(r, i, "unknown claim"))? {
                true => {
                    let path_type = decode_code(&PATH_TYPE, l7_conflict::PATH_TYPE.read(rec)).ok_or(bad(
                        r,
                        i,
                        "unknown path type",
                    ))?;
                    let text = self.text(l7_conflict::PATH.read(rec), r, i)?;
                    // Either dialect's: a conflict is reported, not routed.
                    let path = RulePath::new(&text)
                        .or_else(|_| RulePath::nginx(&text))
                        .map_err(|_| bad(r, i, "a path that is not a valid rule path"))?;
                    Claim::Path { path_type, path }
                }
                false => Claim::DefaultBackend,
            };
        let winner =
            self.ingress(l7_conflict::WINNER_NAMESPACE.read(rec), l7_conflict::WINNER_NAME.read(rec), r, i)?;
        let loser =
            self.ingress(l7_conflict::LOSER_NAMESPACE.read(rec), l7_conflict::LOSER_NAME.read(rec), r, i)?;
        Ok(Conflict { host, claim, winner, loser })
    }

    fn upstreams(&mut self) -> Result<Vec<Upstream>> {
        let r = reg::UPSTREAMS;
        let (mut out, mut next): (Vec<Upstream>, usize) = (Vec::with_capacity(self.regions[r].1), 0);
        for i in 0..self.regions[r].1 {
            let rec = self.rec(r, i);
            let service = self.service(
                l7_upstream::PORT_KIND.read(rec),
                l7_upstream::PORT_NUMBER.read(rec),
                l7_upstream::SERVICE_NAMESPACE.read(rec),
                l7_upstream::SERVICE_NAME.read(rec),
                l7_upstream::PORT_NAME.read(rec),
                r,
                i,
            )?;
            // Sorted, one each: the gateway may search them.
            if out.last().is_some_and(|prev| prev.service >= service) {
                return Err(bad(r, i, "upstreams out of order or repeated"));
            }
            let (first, n) = (l7_upstream::ENDPOINTS_FIRST.read(rec), l7_upstream::ENDPOINTS_COUNT.read(rec));
            let range = self.follow(first, n, &mut next, reg::ENDPOINTS, r, i)?;
            let mut endpoints = Vec::with_capacity(range.len());
            for j in range {
                let e = self.rec(reg::ENDPOINTS, j);
                let port = l7_endpoint::PORT.read(e);
                if port == 0 {
                    return Err(bad(reg::ENDPOINTS, j, "port 0"));
                }
                let c = l7_endpoint::CONDITIONS.read(e);
                endpoints.push(Endpoint {
                    addr: SocketAddr::new(Addr(l7_endpoint::ADDR.read(e)).ip(), port),
                    ready: c & CONDITION_READY != 0,
                    serving: c & CONDITION_SERVING != 0,
                    terminating: c & CONDITION_TERMINATING != 0,
                });
            }
            let (host, port) = (l7_upstream::EXTERNAL_HOST.read(rec), l7_upstream::EXTERNAL_PORT.read(rec));
            let external = if port == 0 && host.len == 0 {
                None
            } else {
                let name = self.text(host, r, i)?;
                match HostRule::new(Some(&name)) {
                    Ok(HostRule::Precise(_)) if port != 0 => Some(ExternalName { host: name, port }),
                    _ => return Err(bad(r, i, "an external name that is not a DNS name and a port")),
                }
            };
            out.push(Upstream { service, endpoints, external });
        }
        self.all_owned(next, reg::ENDPOINTS)?;
        Ok(out)
    }

    fn certificates(&mut self) -> Result<Vec<Certificate>> {
        let r = reg::CERTIFICATES;
        let mut out: Vec<Certificate> = Vec::with_capacity(self.regions[r].1);
        let (mut next_chain, mut next_host, mut next_ingress) = (0usize, 0usize, 0usize);
        for i in 0..self.regions[r].1 {
            let rec = self.rec(r, i);
            let key_format = decode_code(&KEY_FORMAT, l7_certificate::KEY_FORMAT.read(rec)).ok_or(bad(
                r,
                i,
                "unknown key format",
            ))?;
            let secret = SecretRef {
                namespace: self.name(l7_certificate::SECRET_NAMESPACE.read(rec), r, i)?,
                name: self.name(l7_certificate::SECRET_NAME.read(rec), r, i)?,
            };
            if out.last().is_some_and(|prev| prev.secret >= secret) {
                return Err(bad(r, i, "certificates out of order or repeated"));
            }
            let key_der = self
                .raw(l7_certificate::KEY.read(rec))
                .filter(|k| !k.is_empty())
                .ok_or(bad(r, i, "a key outside the L7 byte pool, overlapping another, or empty"))?
                .to_vec();
            let (first, n) = (l7_certificate::CHAIN_FIRST.read(rec), l7_certificate::CHAIN_COUNT.read(rec));
            let range = self.follow(first, n, &mut next_chain, reg::CHAIN, r, i)?;
            if range.is_empty() {
                return Err(bad(r, i, "no certificate in its chain"));
            }
            let mut chain_der = Vec::with_capacity(range.len());
            for j in range {
                let span = l7_chain::DER.read(self.rec(reg::CHAIN, j));
                let der = self.raw(span).filter(|d| !d.is_empty()).ok_or(bad(
                    reg::CHAIN,
                    j,
                    "DER outside the L7 byte pool, overlapping another, or empty",
                ))?;
                chain_der.push(der.to_vec());
            }
            let (first, n) = (l7_certificate::HOSTS_FIRST.read(rec), l7_certificate::HOSTS_COUNT.read(rec));
            let range = self.follow(first, n, &mut next_host, reg::CERT_HOSTS, r, i)?;
            let mut hosts = Vec::with_capacity(range.len());
            for j in range {
                let h = self.rec(reg::CERT_HOSTS, j);
                hosts.push(self.host(
                    l7_cert_host::HOST_KIND.read(h),
                    l7_cert_host::HOST.read(h),
                    reg::CERT_HOSTS,
                    j,
                )?);
            }
            let (first, n) =
                (l7_certificate::INGRESSES_FIRST.read(rec), l7_certificate::INGRESSES_COUNT.read(rec));
            let range = self.follow(first, n, &mut next_ingress, reg::CERT_INGRESSES, r, i)?;
            let mut ingresses = Vec::with_capacity(range.len());
            for j in range {
                let g = self.rec(reg::CERT_INGRESSES, j);
                let (ns, name) = (l7_cert_ingress::NAMESPACE.read(g), l7_cert_ingress::NAME.read(g));
                ingresses.push(self.ingress(ns, name, reg::CERT_INGRESSES, j)?);
            }
            out.push(Certificate {
                secret,
                ingresses,
                hosts,
                chain_der,
                key_format,
                key_der,
                not_after_unix_s: l7_certificate::NOT_AFTER_UNIX_S.read(rec) as i64,
            });
        }
        self.all_owned(next_chain, reg::CHAIN)?;
        self.all_owned(next_host, reg::CERT_HOSTS)?;
        self.all_owned(next_ingress, reg::CERT_INGRESSES)?;
        Ok(out)
    }

    fn listeners(&self) -> Result<Vec<Listener>> {
        let r = reg::LISTENERS;
        let mut out = Vec::with_capacity(self.regions[r].1);
        for i in 0..self.regions[r].1 {
            let rec = self.rec(r, i);
            let l = Listener {
                addr: Addr(l7_listener::ADDR.read(rec)),
                http_port: l7_listener::HTTP_PORT.read(rec),
                https_port: l7_listener::HTTPS_PORT.read(rec),
            };
            if l.http_port == 0 || l.https_port == 0 {
                return Err(bad(r, i, "port 0"));
            }
            out.push(l);
        }
        Ok(out)
    }
}

/// Decodes the L7 regions: `regions` each (start, count), checked to lie in `bytes` one after
/// another; `pool` the byte pool's (start, length), likewise.
pub(super) fn decode(
    bytes: &[u8],
    regions: [(usize, usize); REGIONS],
    pool: (usize, usize),
) -> Result<L7Table> {
    let mut rd = Reader { bytes, regions, pool, left: pool.1 };
    let routes = rd.routes()?;
    let upstreams = rd.upstreams()?;
    let certificates = rd.certificates()?;
    let listeners = rd.listeners()?;
    Ok(L7Table { routes, upstreams, certificates, listeners })
}
