//! What a manifest directory may hold, and the reads that keep to it.
//!
//! Control re-reads its whole directory at every change, so whatever is in it — a dump grown too
//! large, a file written by mistake, a hostile document — must not take control's memory or its
//! time with it. Four bounds, each refused with an error naming the file:
//!
//! - a file's size ([`Limits::max_file_bytes`]): taken from its metadata before it is read, and
//!   the read itself stops one byte past the limit (a file that grows while read is caught too);
//! - the directory's size, all its manifest files together ([`Limits::max_directory_bytes`]);
//! - its objects, documents and list items counted together ([`Limits::max_objects`]), and its
//!   manifest files (as many as objects at most: a file holds one or none);
//! - what a document's YAML aliases expand to ([`expansion_budget`]). serde's YAML crates limit
//!   how many times aliases are followed, relative to the document's events, but not what each
//!   follow costs: one anchored list of 10,000 items aliased 10,000 times passes their check and
//!   expands to 100 million nodes (measured before this bound: 53 s and 1.5 GB, then an abort, for
//!   a 50 KB file). A document whose aliases are used is walked once first, every node and
//!   every byte of text counted as it is replayed, and the walk stops as soon as the count passes
//!   the budget — so the walk's own cost is bounded by the budget.
//!
//! A directory over a bound is not published: the load is marked
//! [`incomplete`](super::Loaded::incomplete) and the last good table stays live, since what did
//! load is not what the directory says.
//!
//! Not hot path. No `unsafe`.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Default [`Limits::max_file_bytes`]: 4 MiB. The API server refuses a single object over 3 MiB,
/// so every object fits; a `kubectl get -o yaml` dump (one List document) of a few thousand
/// objects does too, and a larger one can be split by kind. Why not more: the YAML crate holds a
/// document's parse events while it reads it, some 60 bytes per byte of ordinary text and up to
/// about 100 for text made to be dense in nodes — 4 MiB costs at most some 400 MiB while it is
/// read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Default [`Limits::max_directory_bytes`]: 64 MiB, some 20,000 objects as `kubectl` dumps them
/// (managed fields and all), more as written by hand. What is kept of them is less than their
/// text for ordinary objects (managed fields and status are not kept).
pub const MAX_DIRECTORY_BYTES: u64 = 64 << 20;

/// Default [`Limits::max_objects`]: 100,000 (documents and list items).
pub const MAX_OBJECTS: usize = 100_000;

/// What a manifest directory may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest file, in bytes.
    pub max_file_bytes: u64,
    /// Largest sum of the manifest files' sizes, in bytes.
    pub max_directory_bytes: u64,
    /// Most objects (each document, each item of a list) in the directory.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_bytes: MAX_FILE_BYTES,
            max_directory_bytes: MAX_DIRECTORY_BYTES,
            max_objects: MAX_OBJECTS,
        }
    }
}

/// Why a file was not read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Larger than the limit (its size, or at least limit + 1 when it grew while read).
    TooLarge(u64),
    /// Not UTF-8 text.
    NotText,
    /// The file system said no.
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge(n) => write!(f, "{n} bytes"),
            ReadError::NotText => f.write_str("not UTF-8 text"),
            ReadError::Io(e) => write!(f, "cannot read the file: {e}"),
        }
    }
}

/// Reads `path` as text, at most `max` bytes of it: its size is checked before reading, and
/// the read stops one byte past `max`.
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > max {
        return Err(ReadError::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

/// What a document of `text_bytes` bytes may expand to, counted as nodes plus the bytes of their
/// scalars: twice its text, plus 64 Ki for the anchors a short hand-written document may use.
/// A document without aliases counts about its own size, or less.
pub(super) fn expansion_budget(text_bytes: usize) -> u64 {
    2 * text_bytes as u64 + 64 * 1024
}

/// Whether the document's aliases expand it past `budget`. A document whose text has no alias
/// indicator (`*`) cannot expand and is not walked; one that does not parse is left to the parse
/// that reports it.
pub(super) fn expands_past(text: &str, budget: u64) -> bool {
    if !text.contains('*') {
        return false;
    }
    let left = Cell::new(budget);
    let over = Cell::new(false);
    let counter = Count { left: &left, over: &over };
    let de = serde_norway::Deserializer::from_str(text);
    // Only the first document: the loader has split the stream already.
    if let Some(document) = de.into_iter().next() {
        // An error other than the budget's is the later parse's to report.
        let _ = counter.deserialize(document);
    }
    over.get()
}

/// A seed that walks any value, charging each node 1 and each scalar its length, and fails once
/// the budget is spent.
#[derive(Clone, Copy)]
struct Count<'a> {
    left: &'a Cell<u64>,
    over: &'a Cell<bool>,
}

impl Count<'_> {
    fn charge<E: de::Error>(self, n: usize) -> Result<(), E> {
        let n = n as u64 + 1;
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => {
                self.over.set(true);
                Err(E::custom("the document's aliases expand it past its budget"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.charge(0)?;
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.charge(0)?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged value (`!Tag value`): the tag, then the value.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.charge(0)?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anchor of `n` items aliased `n` times, in a document of its own.
    fn bomb(n: usize) -> String {
        let items = vec!["x"; n].join(",");
        let aliases = vec!["*a"; n].join(",");
        format!(
            "kind: Service\nmetadata:\n  name: b\n  ownerReferences: &a [{items}]\n  managedFields: [{aliases}]\n"
        )
    }

    #[test]
    fn an_alias_bomb_is_stopped_at_its_budget_and_quickly() {
        let text = bomb(10_000);
        let started = std::time::Instant::now();
        assert!(expands_past(&text, expansion_budget(text.len())));
        // 100 million nodes if expanded; the walk stops after some 160,000.
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn ordinary_aliases_and_documents_without_them_pass() {
        let small = "a: &p {port: 80, protocol: TCP}\nb: [*p, *p, *p]\nc: \"*.example.com\"\n";
        assert!(!expands_past(small, expansion_budget(small.len())));
        // Every alias is counted: a budget under what it expands to refuses it.
        assert!(expands_past(small, 20));
        assert!(!expands_past("no: aliases\n", 0), "not walked: nothing to expand");
        let tagged = "a: &t !Foo {x: 1}\nb: *t\n";
        assert!(!expands_past(tagged, expansion_budget(tagged.len())));
        assert!(expands_past(tagged, 3));
    }

    #[test]
    fn a_file_is_read_only_up_to_its_limit() {
        let dir = std::env::temp_dir().join(format!("sluice-bounds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.yaml");
        std::fs::write(&f, "x".repeat(100)).unwrap();
        assert_eq!(read_bounded(&f, 100).unwrap().len(), 100);
        assert!(matches!(read_bounded(&f, 99), Err(ReadError::TooLarge(100))));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_bounded(&f, 99), Err(ReadError::NotText)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
