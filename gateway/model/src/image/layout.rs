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
use crate::service::{Conditions, NatMode, Scheduler};

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
    header (128 bytes) {
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
        /// Where the L7 routes start (reserved for the L7 stage: at the end, none).
        L7_ROUTES_AT: u32,
        /// Bytes of L7 routes (reserved: 0).
        L7_ROUTES_LEN: u32,
        /// Where the certificates start (reserved for the L7 stage: at the end, none).
        CERTIFICATES_AT: u32,
        /// Bytes of certificates (reserved: 0).
        CERTIFICATES_LEN: u32,
        /// Zero.
        RESERVED: [u8; 32],
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
pub const RECORDS: [(&str, usize, &[FieldInfo]); 4] = [
    ("header", header::SIZE, header::FIELDS),
    ("service", service::SIZE, service::FIELDS),
    ("backend", backend::SIZE, backend::FIELDS),
    ("frontend", frontend::SIZE, frontend::FIELDS),
];

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
    let codes =
        FAMILY.iter().map(|x| x.0).chain(NAT.iter().map(|x| x.0)).chain(FRONTEND_KIND.iter().map(|x| x.0));
    for c in codes {
        eat(&[c]);
    }
    eat(&[SERVICE_AFFINITY, CONDITION_READY, CONDITION_SERVING, CONDITION_TERMINATING, CONDITION_ELIGIBLE]);
    for (n, _) in Scheduler::ALL {
        eat(n.as_bytes());
    }
    h
}
