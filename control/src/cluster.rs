//! Cluster mode: kube watchers with reflector stores for Services, EndpointSlices, Ingresses,
//! IngressClasses and Secrets (`KUBERNETES.md` §7.2), and MetalLB's `IPAddressPool` where that
//! CRD is installed. Each watcher lists, then watches; a lost
//! watch resumes or relists (a `410 Gone` starts a new list, and objects not listed again are
//! gone), with kube's default backoff on errors. Nothing is published before every store has
//! listed once — a half-listed cluster would drop Services. Every change wakes the control loop,
//! which brings its [`Store`] — the same store manifest mode builds, so everything downstream is
//! one code path — up to the watches with [`Cluster::sync`]: only the objects the watches replaced
//! since the last sync are converted, and EndpointSlice changes (the frequent ones: every Pod
//! becoming ready or going away) reach the compiler as [`Changes`], so that it recompiles only
//! the Services they feed.
//!
//! In a cluster, endpoints come from EndpointSlices (the endpoint controller's output), not Pods.
//! The objects have passed the API server's validation; they are converted into control's types
//! through their JSON form, and one that does not convert is reported, not fatal.
//!
//! Leader election and the status writes are in [`crate::leader`].

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret as KSecret, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice as KEndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress as KIngress, IngressClass as KIngressClass};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::reflector::{self, Store as KStore};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::compile::Changes;
use crate::load::{Located, Store};

/// The objects of one kind as the store last took them, by namespace/name. Holding the watch's
/// `Arc`s is what lets a sync tell a replaced object from an unchanged one by pointer.
type Held<K> = std::collections::HashMap<(String, String), Arc<K>>;

/// An object's namespace and name, and what it now is (`None`: gone).
type Replaced<K> = ((String, String), Option<Arc<K>>);

/// What a [`Store`] was last brought up to by [`Cluster::sync`].
#[derive(Default)]
pub struct Synced {
    services: Held<KService>,
    slices: Held<KEndpointSlice>,
    ingresses: Held<KIngress>,
    classes: Held<KIngressClass>,
    secrets: Held<KSecret>,
    pools: Held<DynamicObject>,
    /// Objects that could not be converted (`Kind namespace/name` → why), while they stay so.
    pub problems: std::collections::BTreeMap<String, String>,
}

fn object_key<K: Resource>(o: &K) -> (String, String) {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

/// The objects of `from` that differ from `held` (new or replaced: `Some`; gone: `None`), and
/// `held` brought up to `from`.
fn replaced<K>(from: &KStore<K>, held: &mut Held<K>) -> Vec<Replaced<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let now = from.state();
    let mut out = Vec::new();
    let mut present = std::collections::HashSet::with_capacity(now.len());
    for o in now {
        let key = object_key(&*o);
        present.insert(key.clone());
        if held.get(&key).is_none_or(|h| !Arc::ptr_eq(h, &o)) {
            held.insert(key.clone(), o.clone());
            out.push((key, Some(o)));
        }
    }
    if present.len() != held.len() {
        let gone: Vec<(String, String)> = held.keys().filter(|k| !present.contains(*k)).cloned().collect();
        for k in gone {
            held.remove(&k);
            out.push((k, None));
        }
    }
    out
}

/// One object through its JSON form into control's type.
fn convert_one<K: Serialize, T: DeserializeOwned>(o: &K) -> Result<T, String> {
    serde_json::to_value(o).and_then(serde_json::from_value::<T>).map_err(|e| e.to_string())
}

/// The watched objects of a cluster.
pub struct Cluster {
    services: KStore<KService>,
    slices: KStore<KEndpointSlice>,
    ingresses: KStore<KIngress>,
    classes: KStore<KIngressClass>,
    secrets: KStore<KSecret>,
    /// `metallb.io/v1beta1` IPAddressPools; `None` where the CRD is not served.
    pools: Option<KStore<DynamicObject>>,
    changed: Arc<Notify>,
}

/// MetalLB's address pool resource.
fn pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    )
}

/// Starts a reflector for one kind on the current tokio runtime; every event wakes `changed`.
fn reflect<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> KStore<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflect_with(api, K::DynamicType::default(), config, changed)
}

/// [`reflect`] for a kind known only at run time (a CRD's `DynamicObject`).
fn reflect_with<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    config: watcher::Config,
    changed: Arc<Notify>,
) -> KStore<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(|o: &mut K| {
            // Managed fields are large and of no use here.
            o.meta_mut().managed_fields = None;
        }),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                eprintln!("watch: {e}");
            }
            changed.notify_one();
        }
    });
    store
}

impl Cluster {
    /// Starts watching (on the current tokio runtime).
    pub fn watch(client: Client) -> Cluster {
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default();
        Cluster {
            services: reflect(Api::all(client.clone()), all.clone(), changed.clone()),
            slices: reflect(
                Api::all(client.clone()),
                watcher::Config::default().labels("kubernetes.io/service-name"),
                changed.clone(),
            ),
            ingresses: reflect(Api::all(client.clone()), all.clone(), changed.clone()),
            classes: reflect(Api::all(client.clone()), all.clone(), changed.clone()),
            secrets: reflect(
                Api::all(client),
                watcher::Config::default().fields("type=kubernetes.io/tls"),
                changed.clone(),
            ),
            pools: None,
            changed,
        }
    }

    /// Also watches MetalLB's IPAddressPools, if the cluster serves them: a cluster without the
    /// CRD answers 404, and is not waited for (pools then come from `--lb-pool` only). Returns
    /// whether the pools are watched.
    pub async fn watch_pools(&mut self, client: Client) -> Result<bool, kube::Error> {
        let resource = pool_resource();
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        }
        self.pools = Some(reflect_with(api, resource, watcher::Config::default(), self.changed.clone()));
        Ok(true)
    }

    /// Resolves once every store has listed once.
    pub async fn ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.slices.wait_until_ready().await;
        let _ = self.ingresses.wait_until_ready().await;
        let _ = self.classes.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        if let Some(pools) = &self.pools {
            let _ = pools.wait_until_ready().await;
        }
    }

    /// Resolves at the next change of any store (a change since the last call counts).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Brings `store` up to the watches: EndpointSlices one by one, recorded in the returned
    /// [`Changes`]; any other kind, when one of its objects changed, converted again as a whole
    /// ([`Changes::everything`]). Objects that do not convert are left out and kept in
    /// `synced.problems`; the returned list names the ones new since the last sync.
    pub fn sync(&self, store: &mut Store, synced: &mut Synced) -> (Changes, Vec<String>) {
        let mut changes = Changes::default();
        let mut new_problems = Vec::new();
        let mut problem = |synced: &mut Synced, name: String, why: Option<String>| match why {
            Some(why) => {
                if synced.problems.insert(name.clone(), why.clone()).as_ref() != Some(&why) {
                    new_problems.push(format!("{name}: {why}"));
                }
            }
            None => {
                synced.problems.remove(&name);
            }
        };
        for ((ns, name), o) in replaced(&self.slices, &mut synced.slices) {
            let label = format!("EndpointSlice {ns}/{name}");
            match o.map(|o| convert_one(&*o)) {
                Some(Ok(object)) => {
                    problem(synced, label, None);
                    store.put_endpoint_slice(
                        Located { object, file: PathBuf::from("cluster"), line: 0 },
                        &mut changes,
                    );
                }
                Some(Err(why)) => {
                    problem(synced, label, Some(why));
                    store.remove_endpoint_slice(&ns, &name, &mut changes);
                }
                None => {
                    problem(synced, label, None);
                    store.remove_endpoint_slice(&ns, &name, &mut changes);
                }
            }
        }
        let mut whole = |synced: &mut Synced, kind: &str, changed: bool| {
            if changed {
                changes.merge(Changes::everything());
                let prefix = format!("{kind} ");
                synced.problems.retain(|k, _| !k.starts_with(&prefix));
            }
            changed
        };
        let mut problems = Vec::new();
        let changed = !replaced(&self.services, &mut synced.services).is_empty();
        if whole(synced, "Service", changed) {
            store.services.clear();
            convert(&self.services, "Service", &mut store.services, &mut problems);
        }
        let changed = !replaced(&self.ingresses, &mut synced.ingresses).is_empty();
        if whole(synced, "Ingress", changed) {
            store.ingresses.clear();
            convert(&self.ingresses, "Ingress", &mut store.ingresses, &mut problems);
        }
        let changed = !replaced(&self.classes, &mut synced.classes).is_empty();
        if whole(synced, "IngressClass", changed) {
            store.ingress_classes.clear();
            convert(&self.classes, "IngressClass", &mut store.ingress_classes, &mut problems);
        }
        let changed = !replaced(&self.secrets, &mut synced.secrets).is_empty();
        if whole(synced, "Secret", changed) {
            store.secrets.clear();
            convert(&self.secrets, "Secret", &mut store.secrets, &mut problems);
        }
        if let Some(pools) = &self.pools
            && {
                let changed = !replaced(pools, &mut synced.pools).is_empty();
                whole(synced, "IPAddressPool", changed)
            }
        {
            store.pools.retain(|p| p.file != std::path::Path::new("cluster"));
            convert(pools, "IPAddressPool", &mut store.pools, &mut problems);
        }
        for p in problems {
            let (name, why) =
                p.split_once(": ").map_or((p.clone(), String::new()), |(n, w)| (n.to_owned(), w.to_owned()));
            problem(synced, name, Some(why));
        }
        (changes, new_problems)
    }

    /// The objects now, as control's store; and the objects that could not be converted.
    pub fn snapshot(&self) -> (Store, Vec<String>) {
        let mut problems = Vec::new();
        let mut store = Store::default();
        convert(&self.services, "Service", &mut store.services, &mut problems);
        convert(&self.slices, "EndpointSlice", &mut store.endpoint_slices, &mut problems);
        convert(&self.ingresses, "Ingress", &mut store.ingresses, &mut problems);
        convert(&self.classes, "IngressClass", &mut store.ingress_classes, &mut problems);
        convert(&self.secrets, "Secret", &mut store.secrets, &mut problems);
        if let Some(pools) = &self.pools {
            convert(pools, "IPAddressPool", &mut store.pools, &mut problems);
        }
        (store, problems)
    }
}

/// Converts one store's objects through their JSON form into control's types.
fn convert<K, T>(from: &KStore<K>, kind: &str, into: &mut Vec<Located<T>>, problems: &mut Vec<String>)
where
    K: Resource + Clone + Serialize + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    T: DeserializeOwned,
{
    for o in from.state() {
        let name = format!(
            "{kind} {}/{}",
            o.meta().namespace.as_deref().unwrap_or(""),
            o.meta().name.as_deref().unwrap_or("")
        );
        match serde_json::to_value(&*o).and_then(serde_json::from_value::<T>) {
            Ok(object) => into.push(Located { object, file: PathBuf::from("cluster"), line: 0 }),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
}
