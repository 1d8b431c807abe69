//! What a cluster's watches may hold, and the store writer that keeps to it.
//!
//! Manifest mode reads a directory within [`crate::load::Limits`]. Cluster mode holds whatever
//! its watches bring, and a cluster can bring millions of Services, or one Secret or annotation
//! of megabytes; without a bound control's memory would follow. Two bounds, with the manifest
//! mode's flags and defaults:
//!
//! - **An object's size** ([`Bounds::max_object_bytes`], `--max-manifest-bytes`): an object
//!   whose JSON form (managed fields aside) is larger is not held. A stub stands for it — its
//!   kind, namespace, name, uid and resourceVersion, and what is wrong with it — so the sync
//!   leaves it out and reports it like an object that fails its checks
//!   (`Kind namespace/name: larger than … bytes as JSON`), and every other object still counts.
//!   The measure is taken by writing the JSON form to a counter that stops one byte past the
//!   bound: a large object is not written out whole to be measured.
//! - **Objects held, every watched kind together** ([`Bounds::max_objects`], `--max-objects`;
//!   a stub counts as one): an event that would hold one more is not applied. The kind is then
//!   *short* — its store is not all of its objects: a list keeps what it read up to the bound
//!   (so the store is still ready at start), a watch event is dropped — and its watch stops
//!   and lists again every [`Bounds::relist_after`] until its objects fit. A list that does not
//!   fit is cut off at the bound, so each attempt reads at most one page past it. While any kind
//!   is short, [`Cluster::sync`](super::Cluster::sync) says so ([`Shortfall`]): a table compiled
//!   from stores that miss objects would drop Services without a word, so none is to be
//!   published, and the last good one stays live.
//!
//! Lists are paged, [`LIST_PAGE_SIZE`] objects a request.
//!
//! Known limits. What is *held* is bounded, not what passes through: kube's client reads a list
//! page, or a watch event, whole before anything can measure its objects. A real API server
//! refuses objects over 3 MiB, and etcd stores none over 1.5 MiB by default, so a page is at
//! most some hundreds of megabytes while it is read, and ordinarily a few. While a kind lists
//! again its old objects stay held beside the new list's, so for that moment the kind holds up
//! to twice its share. And there is no bound on the bytes held in total: the two bounds allow
//! up to `--max-objects` × `--max-manifest-bytes`, some 400 GiB with the defaults for a cluster
//! of objects of 4 MiB each (150 GiB at etcd's 1.5 MiB). Where whoever creates objects in the
//! cluster is not trusted with control's memory, lower both.
//!
//! Not hot path. No `unsafe`.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap as KConfigMap, Secret as KSecret, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice as KEndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress as KIngress, IngressClass as KIngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::DynamicObject;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{Lookup, Store as KStore};
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::load;

/// Objects a list request asks for at once (its `limit`), kube's default and client-go's:
/// a cluster of 100,000 objects lists in 200 requests, and a page is what is read whole.
pub const LIST_PAGE_SIZE: u32 = 500;

/// Default [`Bounds::relist_after`]: 30 s, kube's longest back-off. Each attempt reads up to
/// `--max-objects` objects again, so not much more often than that.
pub const RELIST_AFTER: Duration = Duration::from_secs(30);

/// What a cluster's watches may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most objects held, every watched kind together (`--max-objects`).
    pub max_objects: usize,
    /// Largest object held, as JSON without its managed fields, in bytes
    /// (`--max-manifest-bytes`).
    pub max_object_bytes: u64,
    /// How long a kind whose objects did not fit waits before it lists again.
    pub relist_after: Duration,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_objects: load::MAX_OBJECTS,
            max_object_bytes: load::MAX_FILE_BYTES,
            relist_after: RELIST_AFTER,
        }
    }
}

/// The objects every kind's store holds, against [`Bounds::max_objects`], and the kinds that are
/// short. Shared by the watches of one [`Cluster`](super::Cluster).
#[derive(Debug)]
pub(super) struct Tally {
    pub(super) bounds: Bounds,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Objects counted, every kind together.
    held: usize,
    /// Kinds whose store is not all of their objects.
    short: BTreeSet<&'static str>,
    /// How many times a kind fell short, ever; and the last one that did.
    falls: u64,
    last_fallen: Option<&'static str>,
}

impl Tally {
    pub(super) fn new(bounds: Bounds) -> Arc<Tally> {
        Arc::new(Tally { bounds, counts: Mutex::default() })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Counts are only added and subtracted under the lock: a panic elsewhere leaves them
        // whole.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kinds short now, and how many falls there have been.
    pub(super) fn look(&self) -> Look {
        let c = self.counts();
        Look { short: c.short.clone(), falls: c.falls, last_fallen: c.last_fallen }
    }
}

/// What [`Tally::look`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Look {
    short: BTreeSet<&'static str>,
    falls: u64,
    last_fallen: Option<&'static str>,
}

impl Look {
    /// What two looks, one before and one after the stores were read, say of what was read:
    /// whole (`None`) only when no kind was short at either look and none fell short between —
    /// a kind is marked short before its store misses anything, and unmarked only once its store
    /// is whole again.
    pub(super) fn shortfall(before: Look, after: Look, bounds: &Bounds) -> Option<Shortfall> {
        if before.falls == after.falls && before.short.is_empty() && after.short.is_empty() {
            return None;
        }
        let mut kinds = before.short;
        kinds.extend(after.short);
        if before.falls != after.falls {
            kinds.extend(after.last_fallen);
        }
        Some(Shortfall {
            kinds: kinds.into_iter().collect(),
            max_objects: bounds.max_objects,
            relist_after: bounds.relist_after,
        })
    }
}

/// The stores a sync read were not all of the cluster's objects: more objects than
/// `--max-objects` are watched. Nothing is to be published from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The kinds not all held (`Service`, `Secret`, …).
    pub kinds: Vec<&'static str>,
    /// The bound.
    pub max_objects: usize,
    /// How often a short kind lists again.
    pub relist_after: Duration,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the cluster has more than {} objects of the kinds control watches, all kinds together \
             (--max-objects): not every {} is held, so no table is published from them; raise \
             --max-objects, or remove objects (control lists again every {:?} until they fit)",
            self.max_objects,
            self.kinds.join(" or "),
            self.relist_after,
        )
    }
}

/// A watched kind: what stands for one of its objects that is too large to hold.
pub(super) trait Watched:
    Resource + Clone + Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static
{
    /// An object of this kind with `metadata` and nothing else.
    fn stub(&self, metadata: ObjectMeta) -> Self;
}

macro_rules! watched {
    ($($kind:ty),*) => {$(
        impl Watched for $kind {
            fn stub(&self, metadata: ObjectMeta) -> Self {
                Self { metadata, ..Self::default() }
            }
        }
    )*};
}
watched!(KService, KEndpointSlice, KIngress, KIngressClass, KSecret, KConfigMap);

impl Watched for DynamicObject {
    fn stub(&self, metadata: ObjectMeta) -> Self {
        DynamicObject {
            types: self.types.clone(),
            metadata,
            data: serde_json::Value::Object(Default::default()),
        }
    }
}

/// The annotation a stub carries: what is wrong with the object it stands for. The key is not
/// a valid annotation key (it holds a space), so no object an API server serves carries it.
const STUB: &str = "sluice/left out";

/// What is wrong with the object `meta` is of, if it is a stub.
pub(super) fn stub_problem(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations.as_ref()?.get(STUB).map(String::as_str)
}

/// Whether `o`'s JSON form is at most `max_bytes` long. The form is written to a counter that
/// fails the write past `max_bytes`, which stops serde there.
fn json_fits<T: Serialize>(o: &T, max_bytes: u64) -> bool {
    struct Counter {
        left: u64,
    }
    impl io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.left = self.left.checked_sub(b.len() as u64).ok_or(io::ErrorKind::FileTooLarge)?;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    match serde_json::to_writer(Counter { left: max_bytes }, o) {
        Ok(()) => true,
        // An error other than the counter's is the conversion's to report, not a size.
        Err(e) => !e.is_io(),
    }
}

/// One kind's reflector store, kept within the shared [`Bounds`]: watcher events go through
/// [`Holder::apply`] into it.
pub(super) struct Holder<K: Watched>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    kind: &'static str,
    writer: Writer<K>,
    reader: KStore<K>,
    dyntype: K::DynamicType,
    /// What this kind counts in the tally: its store's objects, or, while it lists, the list's so
    /// far.
    counted: usize,
    tally: Arc<Tally>,
}

impl<K: Watched> Holder<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    /// A holder for `kind` (`Service`: how problems name it) and the store it fills.
    pub(super) fn new(
        kind: &'static str,
        dyntype: K::DynamicType,
        tally: Arc<Tally>,
    ) -> (Holder<K>, KStore<K>) {
        let writer = Writer::new(dyntype.clone());
        let reader = writer.as_reader();
        let holder = Holder { kind, writer, reader: reader.clone(), dyntype, counted: 0, tally };
        (holder, reader)
    }

    /// Applies one watcher event within the bounds: an object too large is held as its stub; an
    /// object that would pass `--max-objects` is not held. False when the kind's objects do not
    /// all fit: the kind is short (a list's objects so far are held, as a whole list's would
    /// be), and its watch is to stop, and list again after [`Bounds::relist_after`].
    pub(super) fn apply(&mut self, mut event: Event<K>) -> bool {
        if let Event::Apply(o) | Event::InitApply(o) = &mut event {
            self.bound_size(o);
        }
        let max = self.tally.bounds.max_objects;
        let mut counts = self.tally.counts();
        // The lock is held while the store changes: a kind is marked short before its store
        // misses anything, and unmarked only once its store is whole (see `Look::shortfall`).
        let fall = |counts: &mut Counts, kind| {
            counts.short.insert(kind);
            counts.falls += 1;
            counts.last_fallen = Some(kind);
        };
        match &event {
            Event::Init => {
                // The old store stays until the list is done, but is not what this kind will
                // hold: the list is counted instead.
                counts.held = counts.held.saturating_sub(self.counted);
                self.counted = 0;
            }
            Event::InitApply(_) if counts.held >= max => {
                fall(&mut counts, self.kind);
                // What was listed up to the bound becomes the store, so that a store is ready
                // after its first list whether its objects fit or not.
                self.writer.apply_watcher_event(&Event::InitDone);
                return false;
            }
            Event::InitApply(_) => {
                counts.held += 1;
                self.counted += 1;
            }
            Event::InitDone => {
                self.writer.apply_watcher_event(&event);
                counts.short.remove(self.kind);
                return true;
            }
            Event::Apply(o) => {
                if self.reader.get(&o.to_object_ref(self.dyntype.clone())).is_none() {
                    if counts.held >= max {
                        fall(&mut counts, self.kind);
                        return false;
                    }
                    counts.held += 1;
                    self.counted += 1;
                }
            }
            Event::Delete(o) => {
                if self.reader.get(&o.to_object_ref(self.dyntype.clone())).is_some() {
                    counts.held = counts.held.saturating_sub(1);
                    self.counted = self.counted.saturating_sub(1);
                }
            }
        }
        self.writer.apply_watcher_event(&event);
        true
    }

    /// Strips what is never read, and replaces an object too large to hold by its stub.
    fn bound_size(&self, o: &mut K) {
        // Managed fields are large and of no use here.
        o.meta_mut().managed_fields = None;
        let max = self.tally.bounds.max_object_bytes;
        if json_fits(o, max) {
            return;
        }
        let meta = o.meta();
        let problem = format!(
            "larger than {max} bytes as JSON (--max-manifest-bytes): left out, not held; shrink it, or \
             raise the limit"
        );
        let stub = ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            annotations: Some([(STUB.to_owned(), problem)].into()),
            ..ObjectMeta::default()
        };
        *o = o.stub(stub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, annotation_bytes: usize) -> KService {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "1",
                         "annotations": {"a": "x".repeat(annotation_bytes)},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"clusterIP": "198.19.0.33", "ports": [{"port": 80}]}}))
        .unwrap()
    }

    fn holder(max_objects: usize, max_object_bytes: u64) -> (Holder<KService>, KStore<KService>, Arc<Tally>) {
        let bounds = Bounds { max_objects, max_object_bytes, relist_after: Duration::ZERO };
        let tally = Tally::new(bounds);
        let (h, store) = Holder::new("Service", (), tally.clone());
        (h, store, tally)
    }

    fn names(store: &KStore<KService>) -> Vec<String> {
        let mut v: Vec<String> = store.state().iter().map(|s| s.metadata.name.clone().unwrap()).collect();
        v.sort();
        v
    }

    fn short(tally: &Tally) -> Vec<&'static str> {
        tally.look().short.into_iter().collect()
    }

    #[test]
    fn json_is_measured_up_to_one_byte_past_the_bound() {
        let s = service("a", 10);
        let len = serde_json::to_vec(&s).unwrap().len() as u64;
        assert!(json_fits(&s, len));
        assert!(!json_fits(&s, len - 1));
    }

    #[test]
    fn an_object_too_large_is_held_as_its_stub_and_counted() {
        let (mut h, store, tally) = holder(10, 1024);
        for e in [Event::Init, Event::InitApply(service("small", 10)), Event::InitApply(service("big", 2000))]
        {
            assert!(h.apply(e));
        }
        assert!(h.apply(Event::InitDone));
        assert_eq!(names(&store), ["big", "small"]);
        let big = store.find(|s| s.metadata.name.as_deref() == Some("big")).unwrap();
        assert_eq!(
            stub_problem(&big.metadata),
            Some(
                "larger than 1024 bytes as JSON (--max-manifest-bytes): left out, not held; shrink it, or raise \
                 the limit"
            )
        );
        assert!(big.spec.is_none(), "nothing of the object is held");
        assert_eq!(big.metadata.resource_version.as_deref(), Some("1"));
        assert!(serde_json::to_vec(&*big).unwrap().len() < 300);
        let small = store.find(|s| s.metadata.name.as_deref() == Some("small")).unwrap();
        assert_eq!(stub_problem(&small.metadata), None);
        assert!(small.metadata.managed_fields.is_none(), "managed fields are not kept");
        assert_eq!(tally.counts().held, 2, "a stub is an object");
        // Shrunk through the watch, it is held whole again.
        assert!(h.apply(Event::Apply(service("big", 10))));
        let big = store.find(|s| s.metadata.name.as_deref() == Some("big")).unwrap();
        assert!(stub_problem(&big.metadata).is_none() && big.spec.is_some());
        assert_eq!(tally.counts().held, 2);
    }

    #[test]
    fn a_list_past_the_bound_is_cut_off_there_and_the_kind_is_short() {
        let (mut h, store, tally) = holder(2, 1 << 20);
        assert!(h.apply(Event::Init));
        assert!(h.apply(Event::InitApply(service("a", 1))));
        assert!(h.apply(Event::InitApply(service("b", 1))));
        assert!(!h.apply(Event::InitApply(service("c", 1))), "the third does not fit");
        assert_eq!(names(&store), ["a", "b"], "what was listed up to the bound is held");
        assert_eq!(short(&tally), ["Service"]);
        let falls = tally.look().falls;
        // The next list fits (one was deleted meanwhile): whole again.
        assert!(h.apply(Event::Init));
        assert_eq!(tally.counts().held, 0);
        assert!(h.apply(Event::InitApply(service("a", 1))));
        assert!(h.apply(Event::InitApply(service("c", 1))));
        assert!(h.apply(Event::InitDone));
        assert_eq!(names(&store), ["a", "c"]);
        assert!(short(&tally).is_empty());
        assert_eq!(tally.look().falls, falls);
    }

    #[test]
    fn a_new_object_past_the_bound_is_not_held_and_a_deletion_makes_room() {
        let (mut h, store, tally) = holder(2, 1 << 20);
        for e in [
            Event::Init,
            Event::InitApply(service("a", 1)),
            Event::InitApply(service("b", 1)),
            Event::InitDone,
        ] {
            assert!(h.apply(e));
        }
        // A change to an object held is no new object.
        assert!(h.apply(Event::Apply(service("a", 2))));
        assert!(short(&tally).is_empty());
        assert!(!h.apply(Event::Apply(service("c", 1))));
        assert_eq!(names(&store), ["a", "b"]);
        assert_eq!(short(&tally), ["Service"]);
        // The kind stays short until it has listed again: a deletion alone does not say whether
        // the cluster's objects fit now.
        assert!(h.apply(Event::Delete(service("b", 1))));
        assert!(h.apply(Event::Delete(service("gone", 1))), "an object not held frees nothing");
        assert_eq!(tally.counts().held, 1);
        assert!(h.apply(Event::Apply(service("c", 1))));
        assert_eq!(names(&store), ["a", "c"]);
        assert_eq!(short(&tally), ["Service"]);
    }

    #[test]
    fn kinds_share_the_bound() {
        let tally = Tally::new(Bounds { max_objects: 3, ..Bounds::default() });
        let (mut services, _) = Holder::<KService>::new("Service", (), tally.clone());
        let (mut secrets, _) = Holder::<KSecret>::new("Secret", (), tally.clone());
        let secret = |name: &str| -> KSecret {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}})).unwrap()
        };
        for e in [
            Event::Init,
            Event::InitApply(service("a", 1)),
            Event::InitApply(service("b", 1)),
            Event::InitDone,
        ] {
            assert!(services.apply(e));
        }
        assert!(secrets.apply(Event::Init));
        assert!(secrets.apply(Event::InitApply(secret("s"))));
        assert!(!secrets.apply(Event::InitApply(secret("t"))));
        assert_eq!(short(&tally), ["Secret"]);
    }

    /// The sync reads the stores between two looks: what it read is whole only when no kind was
    /// short at either and none fell short in between.
    #[test]
    fn a_fall_between_two_looks_is_seen_even_when_it_is_over() {
        let (mut h, _, tally) = holder(1, 1 << 20);
        let bounds = tally.bounds;
        for e in [Event::Init, Event::InitApply(service("a", 1)), Event::InitDone] {
            assert!(h.apply(e));
        }
        let whole = tally.look();
        assert_eq!(Look::shortfall(whole.clone(), tally.look(), &bounds), None);
        assert!(!h.apply(Event::Apply(service("b", 1))));
        let fallen = tally.look();
        let seen = Look::shortfall(whole.clone(), fallen.clone(), &bounds).unwrap();
        assert_eq!(seen.kinds, ["Service"]);
        assert!(Look::shortfall(fallen.clone(), fallen, &bounds).is_some(), "short at both looks");
        for e in [Event::Init, Event::InitApply(service("b", 1)), Event::InitDone] {
            assert!(h.apply(e));
        }
        let again = tally.look();
        assert!(again.short.is_empty());
        assert_eq!(Look::shortfall(whole, again.clone(), &bounds).unwrap().kinds, ["Service"]);
        assert_eq!(Look::shortfall(again.clone(), again, &bounds), None);
        let message = seen.to_string();
        assert!(message.starts_with("the cluster has more than 1 objects"), "{message}");
        assert!(message.contains("not every Service is held"), "{message}");
    }
}
