//! The table image's layout, written once: every record's fields in order, with their types.
//! Offsets are not written anywhere: each is the field's place in a packed `#[repr(C)]` record
//! (`offset_of!`), so a field added, removed or resized moves the ones after it for [`encode`]
//! and [`decode`] alike, and [`fingerprint`] (pinned by a test beside [`IMAGE_VERSION`]) says
//! that the layout changed. [`describe`] prints the table for a person.
//!
//! [`encode`]: super::encode
//! [`decode`]: super::decode
//! [`IMAGE_VERSION`]: super::IMAGE_VERSION

use core::marker::PhantomData;

use crate::addr::Family;
use crate::l7::KeyFormat;
#[cfg(doc)]
use crate::route::HostRule;
use crate::route::{PathType, Unavailable};
use crate::service::{Conditions, L2Role, NatMode, Scheduler};

/// A value stored little-endian in a record.
pub trait Value: Sized + Copy {
    /// Its size in bytes.
    const SIZE: usize;
    /// Reads it from exactly [`Self::SIZE`] bytes.
    fn read(b: &[u8]) -> Self;
    /// Writes it into exactly [`Self::SIZE`] bytes.
    fn write(self, b: &mut [u8]);
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            #[inline]
            fn read(b: &[u8]) -> $t {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            #[inline]
            fn write(self, b: &mut [u8]) {
                b.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
int_value!(u8, u16, u32, u64);

impl<const N: usize> Value for [u8; N] {
    const SIZE: usize = N;
    fn read(b: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        a
    }
    fn write(self, b: &mut [u8]) {
        b.copy_from_slice(&self);
    }
}

/// A field of a record: where it sits and what it holds.
#[derive(Debug)]
pub struct Field<T> {
    /// Its offset in the record.
    pub at: usize,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}

impl<T: Value> Field<T> {
    /// The field at `at`.
    pub const fn at(at: usize) -> Field<T> {
        Field { at, _value: PhantomData }
    }

    /// Reads the field of `record` (a whole record's bytes: shorter panics, so callers check a
    /// region's bounds once before reading its records).
    #[inline]
    pub fn read(self, record: &[u8]) -> T {
        T::read(&record[self.at..self.at + T::SIZE])
    }

    /// Writes the field of `record`.
    #[inline]
    pub fn write(self, record: &mut [u8], v: T) {
        v.write(&mut record[self.at..self.at + T::SIZE]);
    }
}

/// One field as [`describe`] and [`fingerprint`] see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The field's name.
    pub name: &'static str,
    /// Its offset.
    pub at: usize,
    /// Its size.
    pub size: usize,
    /// What it holds.
    pub doc: &'static str,
}

macro_rules! record {
    ($(#[doc = $doc:literal])* $name:ident ($size:literal bytes) {
        $($(#[doc = $fdoc:literal])+ $field:ident: $ty:ty,)*
    }) => {
        $(#[doc = $doc])*
        #[allow(non_snake_case)]
        pub mod $name {
            use super::*;

            #[repr(C, packed)]
            #[allow(dead_code, non_snake_case)]
            struct Record { $($field: $ty,)* }

            $(
                $(#[doc = $fdoc])+
                pub const $field: Field<$ty> = Field::at(core::mem::offset_of!(Record, $field));
            )*

            /// The record's size in bytes.
            pub const SIZE: usize = $size;
            const _: () = assert!(core::mem::size_of::<Record>() == SIZE, "fields do not fill the record");

            /// Every field, in order.
            pub const FIELDS: &[FieldInfo] = &[$(FieldInfo {
                name: stringify!($field),
                at: core::mem::offset_of!(Record, $field),
                size: core::mem::size_of::<$ty>(),
                doc: record!(@first $($fdoc)+),
            },)*];
        }
    };
    (@first $first:literal $($rest:literal)*) => { $first };
}

record! {
    /// The header, at the start of the image: what the image is, and where each region lies
    /// (offsets from the image's start) and how many items it holds.
    header (192 bytes) {
        /// "SLUICEIM".
        MAGIC: [u8; 8],
        /// The layout's version (IMAGE_VERSION).
        VERSION: u32,
        /// No flag is defined: 0.
        FLAGS: u32,
        /// The table's generation.
        GENERATION: u64,
        /// Service records.
        SERVICES: u32,
        /// Backend records.
        BACKENDS: u32,
        /// Frontend records.
        FRONTENDS: u32,
        /// Node addresses.
        NODE_ADDRS: u32,
        /// Where the service records start.
        SERVICES_AT: u32,
        /// Where the backend records start.
        BACKENDS_AT: u32,
        /// Where the frontend records start.
        FRONTENDS_AT: u32,
        /// Where the node addresses start.
        NODE_ADDRS_AT: u32,
        /// Where the u16 pool starts (eligible offsets and Maglev entries, 2 bytes each).
        U16_POOL_AT: u32,
        /// Entries in the u16 pool.
        U16_POOL_LEN: u32,
        /// Where the address pool starts (SNAT addresses, 16 bytes each).
        ADDR_POOL_AT: u32,
        /// Entries in the address pool.
        ADDR_POOL_LEN: u32,
        /// Where the names start (UTF-8, one after another).
        NAMES_AT: u32,
        /// Bytes of names.
        NAMES_LEN: u32,
        /// L7 host entry records.
        L7_HOSTS: u32,
        /// Where they start.
        L7_HOSTS_AT: u32,
        /// L7 path records (each host entry's follow the previous entry's).
        L7_PATHS: u32,
        /// Where they start.
        L7_PATHS_AT: u32,
        /// L7 conflict records.
        L7_CONFLICTS: u32,
        /// Where they start.
        L7_CONFLICTS_AT: u32,
        /// Upstream records.
        L7_UPSTREAMS: u32,
        /// Where they start.
        L7_UPSTREAMS_AT: u32,
        /// Upstream endpoint records (each upstream's follow the previous upstream's).
        L7_ENDPOINTS: u32,
        /// Where they start.
        L7_ENDPOINTS_AT: u32,
        /// Certificate records.
        L7_CERTIFICATES: u32,
        /// Where they start.
        L7_CERTIFICATES_AT: u32,
        /// Certificate host records (each certificate's follow the previous one's).
        L7_CERT_HOSTS: u32,
        /// Where they start.
        L7_CERT_HOSTS_AT: u32,
        /// Chain entries: spans of DER certificates (each certificate's follow the previous one's).
        L7_CHAIN: u32,
        /// Where they start.
        L7_CHAIN_AT: u32,
        /// Certificate Ingress records (each certificate's follow the previous one's).
        L7_CERT_INGRESSES: u32,
        /// Where they start.
        L7_CERT_INGRESSES_AT: u32,
        /// Listener records.
        L7_LISTENERS: u32,
        /// Where they start.
        L7_LISTENERS_AT: u32,
        /// Bytes of the L7 byte pool (strings, DER), which every [`Span`] points into.
        L7_BYTES_LEN: u32,
        /// Where it starts.
        L7_BYTES_AT: u32,
        /// L7 policy records.
        L7_POLICIES: u32,
        /// Where they start.
        L7_POLICIES_AT: u32,
        /// L7 canary records.
        L7_CANARIES: u32,
        /// Where they start.
        L7_CANARIES_AT: u32,
        /// L2 address records (version 5).
        L2_ADDRS: u32,
        /// Where they start (after the L7 byte pool).
        L2_ADDRS_AT: u32,
    }
}

record! {
    /// A VIP in L2 mode and this node's role for it (version 5).
    l2_addr (20 bytes) {
        /// The address (IPv4-mapped for IPv4).
        ADDR: [u8; 16],
        /// [`L2_ROLE`] code.
        ROLE: u8,
        /// Zero.
        RESERVED: [u8; 3],
    }
}

record! {
    /// A service: its policy, and where its name, backends, frontends and arrays are.
    service (64 bytes) {
        /// Where its name starts in the names.
        NAME_AT: u32,
        /// Its name's length.
        NAME_LEN: u32,
        /// [`crate::hash::stable`] of the name.
        NAME_HASH: u64,
        /// [`FAMILY`] code.
        FAMILY: u8,
        /// Index in [`Scheduler::ALL`].
        SCHEDULER: u8,
        /// [`NAT`] code.
        NAT: u8,
        /// [`SERVICE_AFFINITY`] when it has session affinity.
        FLAGS: u8,
        /// The affinity's timeout in seconds (0 without affinity).
        AFFINITY_TIMEOUT_S: u32,
        /// Its first backend record (each service's follow the previous service's).
        BACKENDS_FIRST: u32,
        /// How many backend records are its.
        BACKENDS_COUNT: u32,
        /// Where its eligible backends' offsets start, in the u16 pool.
        ELIGIBLE_AT: u32,
        /// How many are eligible.
        ELIGIBLE_COUNT: u32,
        /// Where its Maglev table starts, in the u16 pool.
        MAGLEV_AT: u32,
        /// Its Maglev table's size (a prime, or 0).
        MAGLEV_COUNT: u32,
        /// Where its SNAT addresses start, in the address pool.
        SNAT_AT: u32,
        /// How many SNAT addresses.
        SNAT_COUNT: u32,
        /// Its first frontend record (each service's follow the previous service's).
        FRONTENDS_FIRST: u32,
        /// How many frontend records are its.
        FRONTENDS_COUNT: u32,
    }
}

record! {
    /// A backend.
    backend (24 bytes) {
        /// Its address (IPv4-mapped for IPv4).
        ADDR: [u8; 16],
        /// Its port.
        PORT: u16,
        /// Its weight.
        WEIGHT: u16,
        /// [`CONDITION_READY`], [`CONDITION_SERVING`], [`CONDITION_TERMINATING`],
        /// [`CONDITION_ELIGIBLE`].
        CONDITIONS: u8,
        /// Zero.
        RESERVED: [u8; 3],
    }
}

record! {
    /// A frontend: where a service is reached.
    frontend (24 bytes) {
        /// The address (zero for a NodePort).
        ADDR: [u8; 16],
        /// The port.
        PORT: u16,
        /// The IANA protocol number (TCP or UDP).
        PROTOCOL: u8,
        /// [`FRONTEND_KIND`] code.
        KIND: u8,
        /// The service it belongs to.
        SERVICE: u32,
    }
}

/// Where a string or a DER blob lies in the L7 byte pool: from `at` (relative to the pool's
/// start), `len` bytes. Stored as two u32, `at` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Span {
    /// Offset in the pool.
    pub at: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Value for Span {
    const SIZE: usize = 8;
    fn read(b: &[u8]) -> Span {
        Span { at: u32::read(&b[..4]), len: u32::read(&b[4..8]) }
    }
    fn write(self, b: &mut [u8]) {
        self.at.write(&mut b[..4]);
        self.len.write(&mut b[4..8]);
    }
}

record! {
    /// An L7 host entry: the host rule, its paths, its default backend (with the Ingress it
    /// comes from).
    l7_host (72 bytes) {
        /// [`HOST_KIND`] code.
        HOST_KIND: u8,
        /// [`BACKEND`] code of the default backend ([`BackendCode::None`] without one).
        DEFAULT_BACKEND: u8,
        /// [`PORT_KIND`] code of the default backend's Service port.
        DEFAULT_PORT_KIND: u8,
        /// How its paths are matched: 0 Kubernetes, 1 ingress-nginx's, 2 ingress-nginx's with
        /// every path a regex.
        DIALECT: u8,
        /// The default backend's Service port number (0 when named or not a Service).
        DEFAULT_PORT_NUMBER: u16,
        /// The default backend's metrics row (`route_stats`; below `route_stats::ROWS`).
        DEFAULT_METRIC: u16,
        /// The host (precise) or the suffix after `*.` (wildcard); empty for any host.
        HOST: Span,
        /// Its first path record.
        PATHS_FIRST: u32,
        /// How many path records are its.
        PATHS_COUNT: u32,
        /// The default backend's Service namespace.
        DEFAULT_SERVICE_NAMESPACE: Span,
        /// The default backend's Service name.
        DEFAULT_SERVICE_NAME: Span,
        /// The default backend's Service port name (empty when by number).
        DEFAULT_PORT_NAME: Span,
        /// The namespace of the Ingress whose default backend it is.
        DEFAULT_INGRESS_NAMESPACE: Span,
        /// Its name.
        DEFAULT_INGRESS_NAME: Span,
        /// The default backend's policy: an L7 policy record.
        DEFAULT_POLICY: u16,
        /// Zero.
        RESERVED_TAIL: [u8; 6],
    }
}

record! {
    /// An L7 path of a host entry.
    l7_path (64 bytes) {
        /// [`PATH_TYPE`] code (the matching kind follows from it).
        PATH_TYPE: u8,
        /// [`BACKEND`] code.
        BACKEND: u8,
        /// [`PORT_KIND`] code.
        PORT_KIND: u8,
        /// Zero.
        RESERVED: u8,
        /// The Service port number (0 when named or not a Service).
        PORT_NUMBER: u16,
        /// Its metrics row (`route_stats`; below `route_stats::ROWS`).
        METRIC: u16,
        /// The path, as declared.
        PATH: Span,
        /// The Service namespace.
        SERVICE_NAMESPACE: Span,
        /// The Service name.
        SERVICE_NAME: Span,
        /// The Service port name (empty when by number).
        PORT_NAME: Span,
        /// The namespace of the Ingress it comes from.
        INGRESS_NAMESPACE: Span,
        /// Its name.
        INGRESS_NAME: Span,
        /// Its policy: an L7 policy record.
        POLICY: u16,
        /// Zero.
        RESERVED_TAIL: [u8; 6],
    }
}

record! {
    /// An Ingress's policy (`sluice_model::policy::codec` bytes in the L7 byte pool). The first
    /// is the default policy.
    l7_policy (8 bytes) {
        /// The encoded policy.
        BYTES: Span,
    }
}

record! {
    /// The canary of a path (ingress-nginx's `canary: "true"` Ingress), in path order.
    l7_canary (64 bytes) {
        /// The path record it belongs to.
        PATH: u32,
        /// [`BACKEND`] code.
        BACKEND: u8,
        /// [`PORT_KIND`] code.
        PORT_KIND: u8,
        /// Zero.
        RESERVED: u16,
        /// The Service port number (0 when named or not a Service).
        PORT_NUMBER: u16,
        /// Its metrics row.
        METRIC: u16,
        /// Its policy: an L7 policy record.
        POLICY: u16,
        /// Zero.
        RESERVED2: u16,
        /// The Service namespace.
        SERVICE_NAMESPACE: Span,
        /// The Service name.
        SERVICE_NAME: Span,
        /// The Service port name (empty when by number).
        PORT_NAME: Span,
        /// The canary Ingress's namespace.
        INGRESS_NAMESPACE: Span,
        /// Its name.
        INGRESS_NAME: Span,
        /// The canary rule (`sluice_model::policy::codec` bytes).
        RULE: Span,
    }
}

record! {
    /// A route conflict settled by control (kept for `status` and logs).
    l7_conflict (52 bytes) {
        /// [`HOST_KIND`] code.
        HOST_KIND: u8,
        /// [`CLAIM`] code.
        CLAIM: u8,
        /// [`PATH_TYPE`] code of the claimed path (0 for a default backend).
        PATH_TYPE: u8,
        /// Zero.
        RESERVED: u8,
        /// The host, as in [`l7_host::HOST`].
        HOST: Span,
        /// The claimed path (empty for a default backend).
        PATH: Span,
        /// The winning Ingress's namespace.
        WINNER_NAMESPACE: Span,
        /// Its name.
        WINNER_NAME: Span,
        /// The losing Ingress's namespace.
        LOSER_NAMESPACE: Span,
        /// Its name.
        LOSER_NAME: Span,
    }
}

record! {
    /// An upstream: a Service port a route names, and where its endpoints are.
    l7_upstream (52 bytes) {
        /// [`PORT_KIND`] code.
        PORT_KIND: u8,
        /// Zero.
        RESERVED: u8,
        /// The port number (0 when named).
        PORT_NUMBER: u16,
        /// The Service namespace.
        SERVICE_NAMESPACE: Span,
        /// The Service name.
        SERVICE_NAME: Span,
        /// The port name (empty when by number).
        PORT_NAME: Span,
        /// Its first endpoint record.
        ENDPOINTS_FIRST: u32,
        /// How many endpoint records are its.
        ENDPOINTS_COUNT: u32,
        /// An ExternalName Service's name (empty otherwise).
        EXTERNAL_HOST: Span,
        /// Its port (0 when not an ExternalName Service).
        EXTERNAL_PORT: u16,
        /// Zero.
        RESERVED_TAIL: [u8; 6],
    }
}

record! {
    /// An upstream endpoint.
    l7_endpoint (20 bytes) {
        /// Its address (IPv4-mapped for IPv4).
        ADDR: [u8; 16],
        /// Its (target) port.
        PORT: u16,
        /// [`CONDITION_READY`], [`CONDITION_SERVING`], [`CONDITION_TERMINATING`].
        CONDITIONS: u8,
        /// Zero.
        RESERVED: u8,
    }
}

record! {
    /// A certificate: a TLS Secret's chain and key.
    l7_certificate (64 bytes) {
        /// [`KEY_FORMAT`] code.
        KEY_FORMAT: u8,
        /// Zero.
        RESERVED: [u8; 7],
        /// The leaf's notAfter, Unix seconds (two's complement).
        NOT_AFTER_UNIX_S: u64,
        /// The Secret's namespace.
        SECRET_NAMESPACE: Span,
        /// The Secret's name.
        SECRET_NAME: Span,
        /// The private key, DER.
        KEY: Span,
        /// Its first chain entry (leaf first).
        CHAIN_FIRST: u32,
        /// How many chain entries are its.
        CHAIN_COUNT: u32,
        /// Its first host record.
        HOSTS_FIRST: u32,
        /// How many host records are its.
        HOSTS_COUNT: u32,
        /// Its first Ingress record.
        INGRESSES_FIRST: u32,
        /// How many Ingress records are its.
        INGRESSES_COUNT: u32,
    }
}

record! {
    /// A host a certificate is chosen for.
    l7_cert_host (12 bytes) {
        /// [`HOST_KIND`] code.
        HOST_KIND: u8,
        /// Zero.
        RESERVED: [u8; 3],
        /// The host, as in [`l7_host::HOST`].
        HOST: Span,
    }
}

record! {
    /// One certificate of a chain.
    l7_chain (8 bytes) {
        /// Its DER.
        DER: Span,
    }
}

record! {
    /// An Ingress that uses a certificate.
    l7_cert_ingress (16 bytes) {
        /// Its namespace.
        NAMESPACE: Span,
        /// Its name.
        NAME: Span,
    }
}

record! {
    /// Where Ingresses are served.
    l7_listener (20 bytes) {
        /// The address (IPv4-mapped for IPv4).
        ADDR: [u8; 16],
        /// The HTTP port.
        HTTP_PORT: u16,
        /// The HTTPS port.
        HTTPS_PORT: u16,
    }
}

/// What [`l7_host::HOST_KIND`] says: a [`HostRule`] without its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// [`HostRule::Precise`].
    Precise,
    /// [`HostRule::Wildcard`].
    Wildcard,
    /// [`HostRule::Any`].
    Any,
}
/// Host kind codes.
pub const HOST_KIND: [(u8, HostKind); 3] =
    [(0, HostKind::Precise), (1, HostKind::Wildcard), (2, HostKind::Any)];

/// What a backend code says: none, a Service, or why it is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendCode {
    /// No backend (a host entry without default backend).
    None,
    /// A Service port.
    Service,
    /// Unavailable.
    Unavailable(Unavailable),
}
/// Backend codes.
pub const BACKEND: [(u8, BackendCode); 5] = [
    (0, BackendCode::None),
    (1, BackendCode::Service),
    (2, BackendCode::Unavailable(Unavailable::Resource)),
    (3, BackendCode::Unavailable(Unavailable::MissingService)),
    (4, BackendCode::Unavailable(Unavailable::MissingPort)),
];

/// What a port kind code says: a Service port by number or by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// `port.number`.
    Number,
    /// `port.name`.
    Name,
}
/// Port kind codes.
pub const PORT_KIND: [(u8, PortKind); 2] = [(0, PortKind::Number), (1, PortKind::Name)];
/// Path type codes.
pub const PATH_TYPE: [(u8, PathType); 3] =
    [(0, PathType::Exact), (1, PathType::Prefix), (2, PathType::ImplementationSpecific)];
/// Conflict claim codes: a path, or a host entry's default backend.
pub const CLAIM: [(u8, bool); 2] = [(0, true), (1, false)];
/// Key format codes.
pub const KEY_FORMAT: [(u8, KeyFormat); 3] =
    [(0, KeyFormat::Pkcs1), (1, KeyFormat::Pkcs8), (2, KeyFormat::Sec1)];

/// A node address, an address-pool entry: 16 bytes.
pub const ADDR_SIZE: usize = 16;
/// A u16-pool entry: 2 bytes.
pub const U16_SIZE: usize = 2;

/// Family codes of [`service::FAMILY`].
pub const FAMILY: [(u8, Family); 2] = [(0, Family::V4), (1, Family::V6)];
/// NAT codes of [`service::NAT`].
pub const NAT: [(u8, NatMode); 2] = [(0, NatMode::FullNat), (1, NatMode::Dnat)];
/// What [`frontend::KIND`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendKind {
    /// An address of its own (ClusterIP, VIP).
    Address,
    /// A NodePort on the node's addresses of a family.
    NodePort(Family),
}
/// Kind codes of [`frontend::KIND`].
pub const FRONTEND_KIND: [(u8, FrontendKind); 3] = [
    (0, FrontendKind::Address),
    (1, FrontendKind::NodePort(Family::V4)),
    (2, FrontendKind::NodePort(Family::V6)),
];
/// Role codes of [`l2_addr::ROLE`].
pub const L2_ROLE: [(u8, L2Role); 2] = [(0, L2Role::Active), (1, L2Role::Standby)];
/// [`service::FLAGS`]: the service has session affinity.
pub const SERVICE_AFFINITY: u8 = 1;
/// [`backend::CONDITIONS`]: ready.
pub const CONDITION_READY: u8 = 1;
/// [`backend::CONDITIONS`]: serving.
pub const CONDITION_SERVING: u8 = 2;
/// [`backend::CONDITIONS`]: terminating.
pub const CONDITION_TERMINATING: u8 = 4;
/// [`backend::CONDITIONS`]: eligible for new flows.
pub const CONDITION_ELIGIBLE: u8 = 8;

/// The code of `v` in a code table.
pub fn code<T: PartialEq + Copy>(table: &[(u8, T)], v: T) -> u8 {
    table.iter().find(|(_, x)| *x == v).map_or(0, |(c, _)| *c)
}

/// The value of code `c` in a code table.
pub fn decode_code<T: Copy>(table: &[(u8, T)], c: u8) -> Option<T> {
    table.iter().find(|(x, _)| *x == c).map(|(_, v)| *v)
}

/// A scheduler's code: its index in [`Scheduler::ALL`].
pub fn scheduler_code(s: Scheduler) -> u8 {
    Scheduler::ALL.iter().position(|(_, x)| *x == s).unwrap_or(0) as u8
}

/// A backend's conditions byte.
pub fn conditions_byte(c: &Conditions, eligible: bool) -> u8 {
    [
        (c.ready, CONDITION_READY),
        (c.serving, CONDITION_SERVING),
        (c.terminating, CONDITION_TERMINATING),
        (eligible, CONDITION_ELIGIBLE),
    ]
    .iter()
    .fold(0, |byte, &(set, bit)| if set { byte | bit } else { byte })
}

/// Every record, named, with its fields.
pub const RECORDS: [(&str, usize, &[FieldInfo]); 17] = [
    ("header", header::SIZE, header::FIELDS),
    ("service", service::SIZE, service::FIELDS),
    ("backend", backend::SIZE, backend::FIELDS),
    ("frontend", frontend::SIZE, frontend::FIELDS),
    ("l7_host", l7_host::SIZE, l7_host::FIELDS),
    ("l7_path", l7_path::SIZE, l7_path::FIELDS),
    ("l7_conflict", l7_conflict::SIZE, l7_conflict::FIELDS),
    ("l7_upstream", l7_upstream::SIZE, l7_upstream::FIELDS),
    ("l7_endpoint", l7_endpoint::SIZE, l7_endpoint::FIELDS),
    ("l7_certificate", l7_certificate::SIZE, l7_certificate::FIELDS),
    ("l7_cert_host", l7_cert_host::SIZE, l7_cert_host::FIELDS),
    ("l7_chain", l7_chain::SIZE, l7_chain::FIELDS),
    ("l7_cert_ingress", l7_cert_ingress::SIZE, l7_cert_ingress::FIELDS),
    ("l7_listener", l7_listener::SIZE, l7_listener::FIELDS),
    ("l7_policy", l7_policy::SIZE, l7_policy::FIELDS),
    ("l7_canary", l7_canary::SIZE, l7_canary::FIELDS),
    ("l2_addr", l2_addr::SIZE, l2_addr::FIELDS),
];

/// The L7 regions, in the order they follow the L4 regions: (name, record count field, start
/// field, record size). The byte pool comes last, after them.
pub const L7_REGIONS: [(&str, Field<u32>, Field<u32>, usize); 12] = [
    ("L7 host entries", header::L7_HOSTS, header::L7_HOSTS_AT, l7_host::SIZE),
    ("L7 paths", header::L7_PATHS, header::L7_PATHS_AT, l7_path::SIZE),
    ("L7 conflicts", header::L7_CONFLICTS, header::L7_CONFLICTS_AT, l7_conflict::SIZE),
    ("upstreams", header::L7_UPSTREAMS, header::L7_UPSTREAMS_AT, l7_upstream::SIZE),
    ("upstream endpoints", header::L7_ENDPOINTS, header::L7_ENDPOINTS_AT, l7_endpoint::SIZE),
    ("certificates", header::L7_CERTIFICATES, header::L7_CERTIFICATES_AT, l7_certificate::SIZE),
    ("certificate hosts", header::L7_CERT_HOSTS, header::L7_CERT_HOSTS_AT, l7_cert_host::SIZE),
    ("certificate chains", header::L7_CHAIN, header::L7_CHAIN_AT, l7_chain::SIZE),
    ("certificate Ingresses", header::L7_CERT_INGRESSES, header::L7_CERT_INGRESSES_AT, l7_cert_ingress::SIZE),
    ("listeners", header::L7_LISTENERS, header::L7_LISTENERS_AT, l7_listener::SIZE),
    ("L7 policies", header::L7_POLICIES, header::L7_POLICIES_AT, l7_policy::SIZE),
    ("L7 canaries", header::L7_CANARIES, header::L7_CANARIES_AT, l7_canary::SIZE),
];
/// Index of each L7 region in [`L7_REGIONS`].
pub mod l7_region {
    /// Host entries.
    pub const HOSTS: usize = 0;
    /// Paths.
    pub const PATHS: usize = 1;
    /// Conflicts.
    pub const CONFLICTS: usize = 2;
    /// Upstreams.
    pub const UPSTREAMS: usize = 3;
    /// Upstream endpoints.
    pub const ENDPOINTS: usize = 4;
    /// Certificates.
    pub const CERTIFICATES: usize = 5;
    /// Certificate hosts.
    pub const CERT_HOSTS: usize = 6;
    /// Chain entries.
    pub const CHAIN: usize = 7;
    /// Certificate Ingresses.
    pub const CERT_INGRESSES: usize = 8;
    /// Listeners.
    pub const LISTENERS: usize = 9;
    /// Policies.
    pub const POLICIES: usize = 10;
    /// Canaries.
    pub const CANARIES: usize = 11;
}

/// The layout as a table for a person: each record, then each field's offset, size and meaning.
pub fn describe() -> String {
    let mut out = String::new();
    for (name, size, fields) in RECORDS {
        out.push_str(&format!("{name} ({size} bytes)\n"));
        for f in fields {
            let doc = f.doc.trim().replace("[`", "").replace("`]", "");
            out.push_str(&format!("  {:>3} {:>2}  {:<18} {doc}\n", f.at, f.size, f.name));
        }
    }
    out
}

/// FNV-1a over every record's name and size and every field's name, offset and size, and the
/// code tables: changes exactly when the layout does.
pub fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, size, fields) in RECORDS {
        eat(name.as_bytes());
        eat(&(size as u64).to_le_bytes());
        for f in fields {
            eat(f.name.as_bytes());
            eat(&(f.at as u64).to_le_bytes());
            eat(&(f.size as u64).to_le_bytes());
        }
    }
    let codes = FAMILY
        .iter()
        .map(|x| x.0)
        .chain(NAT.iter().map(|x| x.0))
        .chain(FRONTEND_KIND.iter().map(|x| x.0))
        .chain(HOST_KIND.iter().map(|x| x.0))
        .chain(BACKEND.iter().map(|x| x.0))
        .chain(PORT_KIND.iter().map(|x| x.0))
        .chain(PATH_TYPE.iter().map(|x| x.0))
        .chain(CLAIM.iter().map(|x| x.0))
        .chain(KEY_FORMAT.iter().map(|x| x.0))
        .chain(L2_ROLE.iter().map(|x| x.0));
    for c in codes {
        eat(&[c]);
    }
    eat(&[SERVICE_AFFINITY, CONDITION_READY, CONDITION_SERVING, CONDITION_TERMINATING, CONDITION_ELIGIBLE]);
    for (n, _) in Scheduler::ALL {
        eat(n.as_bytes());
    }
    h
}
