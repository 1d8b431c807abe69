//! Cluster mode: kube watchers with reflector stores for Services, EndpointSlices, Ingresses,
//! IngressClasses, Secrets — `kubernetes.io/tls` ones for certificates, Opaque ones for
//! basic auth's htpasswd files (`docs/kubernetes.md` §7) — ConfigMaps, and MetalLB's
//! `IPAddressPool` where that CRD is installed. Each watcher lists, then watches; a lost
//! watch resumes or relists (a `410 Gone` starts a new list, and objects not listed again are
//! gone), with kube's default backoff on errors. Nothing is published before every store has
//! listed once — a half-listed cluster would drop Services. Every change wakes the control loop,
//! which brings its [`Store`] — the same store manifest mode builds, so everything downstream is
//! one code path — up to the watches with [`Cluster::sync`]: only the objects the watches replaced
//! since the last sync are converted, and EndpointSlice changes (the frequent ones: every Pod
//! becoming ready or going away) reach the compiler as [`Changes`], so that it recompiles only
//! the Services they feed.
//!
//! ConfigMaps are watched in every namespace, as ingress-nginx watches them, but only those an
//! Ingress names (`custom-headers`, `proxy-set-headers`) are converted into the store: which
//! those are changes with the Ingresses, and one watch of all of them is always up to date —
//! watches by name would have to start and stop with every Ingress change, and a ConfigMap
//! named by a new Ingress would be missing until its own watch listed. A change to a ConfigMap
//! no Ingress names (a leader-election record renewed every few seconds, say) compiles nothing.
//!
//! In a cluster, endpoints come from EndpointSlices (the endpoint controller's output), not Pods.
//! Every object is converted into control's serde type through its JSON form, then passes the
//! same checks as a manifest's ([`crate::checked`]) into the same typed values: the API server's
//! validation is not taken on trust (an older server, a webhook-free CRD such as MetalLB's pools,
//! or an annotation no API server reads, like `metallb.io/loadBalancerIPs`). One that does not
//! convert or pass is left out and reported once — `Kind namespace/name: field: message` — while
//! it stays so; every other object still counts.
//!
//! What the watches hold is bounded ([`Bounds`], see [`bounds`]): an object larger than
//! `--max-manifest-bytes` as JSON is left out and reported the same way, and more objects than
//! `--max-objects`, every kind together, are not held — the sync then says the stores are short
//! ([`Synced::shortfall`]) and nothing is to be published from them. Lists are paged.
//!
//! Leader election and the status writes are in [`crate::leader`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap as KConfigMap, Secret as KSecret, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice as KEndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress as KIngress, IngressClass as KIngressClass};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::reflector::{ObjectRef, Store as KStore};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tracing::warn;

use crate::checked::{self, Checked};
use crate::store::{Changes, Located, Store};

pub mod bounds;

pub use bounds::{Bounds, LIST_PAGE_SIZE, RELIST_AFTER, Shortfall};
use bounds::{Holder, Look, Tally, Watched};

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
    auth_secrets: Held<KSecret>,
    config_maps: Held<KConfigMap>,
    pools: Held<DynamicObject>,
    bgp_peers: Held<DynamicObject>,
    bgp_advertisements: Held<DynamicObject>,
    bfd_profiles: Held<DynamicObject>,
    l2_advertisements: Held<DynamicObject>,
    /// Objects left out (`Kind namespace/name` → what is wrong: `field: message` each), while
    /// they stay so.
    pub problems: BTreeMap<String, Vec<String>>,
    /// Whether the stores the last sync read missed objects (more than `--max-objects` are
    /// watched), and which kinds: nothing is to be published from them while it is `Some`.
    pub shortfall: Option<Shortfall>,
}

impl Synced {
    /// Records what is wrong with `object` now (nothing: `None`); adds to `new` the lines
    /// (`Kind namespace/name: field: message`) not reported already.
    fn record(&mut self, object: String, wrong: Option<Vec<String>>, new: &mut Vec<String>) {
        match wrong {
            Some(wrong) => {
                if self.problems.get(&object) != Some(&wrong) {
                    new.extend(wrong.iter().map(|w| format!("{object}: {w}")));
                }
                self.problems.insert(object, wrong);
            }
            None => {
                self.problems.remove(&object);
            }
        }
    }

    /// Records the objects of `kind` left out now (replacing the kind's problems); adds to `new`
    /// the lines not reported already.
    fn record_kind(&mut self, kind: &str, left_out: Vec<(String, Vec<String>)>, new: &mut Vec<String>) {
        let prefix = format!("{kind} ");
        let (before, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.problems).into_iter().partition(|(k, _)| k.starts_with(&prefix));
        self.problems = kept;
        for (object, wrong) in left_out {
            if before.get(&object) != Some(&wrong) {
                new.extend(wrong.iter().map(|w| format!("{object}: {w}")));
            }
            self.problems.insert(object, wrong);
        }
    }
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

/// One object through its JSON form into control's serde type, then through the checks every
/// object passes: its typed value, or what is wrong with it (`field: message` each; a stub's
/// says why the object is not held).
fn check_one<K: Resource + Serialize, Raw: DeserializeOwned, T>(
    o: &K,
    check: fn(Raw) -> Checked<T>,
) -> Result<T, Vec<String>> {
    if let Some(problem) = bounds::stub_problem(o.meta()) {
        return Err(vec![problem.to_owned()]);
    }
    let raw: Raw =
        serde_json::to_value(o).and_then(serde_json::from_value).map_err(|e| vec![e.to_string()])?;
    check(raw).map_err(|problems| problems.iter().map(ToString::to_string).collect())
}

/// `Kind namespace/name`: how problems name an object.
fn label<K: Resource>(kind: &str, o: &K) -> String {
    format!(
        "{kind} {}/{}",
        o.meta().namespace.as_deref().unwrap_or(""),
        o.meta().name.as_deref().unwrap_or("")
    )
}

/// The watched objects of a cluster.
pub struct Cluster {
    services: KStore<KService>,
    slices: KStore<KEndpointSlice>,
    ingresses: KStore<KIngress>,
    classes: KStore<KIngressClass>,
    secrets: KStore<KSecret>,
    /// Opaque Secrets: the htpasswd files of basic auth (`auth-secret`).
    auth_secrets: KStore<KSecret>,
    /// Every ConfigMap; the store takes those an Ingress names.
    config_maps: KStore<KConfigMap>,
    /// `metallb.io/v1beta1` IPAddressPools; `None` where the CRD is not served.
    pools: Option<KStore<DynamicObject>>,
    /// `metallb.io/v1beta2` BGPPeers and `v1beta1` BGPAdvertisements, with `--bird-include`;
    /// `None` where not asked for or not served.
    bgp_peers: Option<KStore<DynamicObject>>,
    bgp_advertisements: Option<KStore<DynamicObject>>,
    /// `metallb.io/v1beta1` BFDProfiles, with `--bird-include`; likewise.
    bfd_profiles: Option<KStore<DynamicObject>>,
    /// `metallb.io/v1beta1` L2Advertisements, with L2 mode on (docs/l2.md); likewise.
    l2_advertisements: Option<KStore<DynamicObject>>,
    changed: Arc<Notify>,
    /// What every store holds, against the bounds.
    tally: Arc<Tally>,
}

/// One of MetalLB's resources: (group version, kind, plural).
fn bgp_resource(version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("metallb.io", version, kind), plural)
}

/// MetalLB's address pool resource.
fn pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    )
}

/// Lists and watches one kind, paged, into a store of its own, within the tally's bounds, on
/// the current tokio runtime; every event wakes `changed`. A kind whose objects do not fit stops
/// watching, and lists again after [`Bounds::relist_after`].
fn reflect<K: Watched>(
    api: Api<K>,
    kind: &'static str,
    config: watcher::Config,
    tally: &Arc<Tally>,
    changed: Arc<Notify>,
) -> KStore<K>
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflect_with(api, kind, K::DynamicType::default(), config, tally, changed)
}

/// [`reflect`] for a kind known only at run time (a CRD's `DynamicObject`).
fn reflect_with<K: Watched>(
    api: Api<K>,
    kind: &'static str,
    dyntype: K::DynamicType,
    config: watcher::Config,
    tally: &Arc<Tally>,
    changed: Arc<Notify>,
) -> KStore<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let relist_after = tally.bounds.relist_after;
    let (mut holder, store) = Holder::new(kind, dyntype, tally.clone());
    let config = config.page_size(LIST_PAGE_SIZE);
    tokio::spawn(async move {
        loop {
            let fits = {
                let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()).default_backoff());
                let mut fits = true;
                while fits && let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => fits = holder.apply(event),
                        // The watcher backs off and retries: a warning, not a failure.
                        Err(e) => warn!("watch: {e}"),
                    }
                    changed.notify_one();
                }
                fits
                // The stream is dropped here, and its request with it: a list cut off at the
                // bound reads no further, and a watch stopped holds no connection while it waits.
            };
            if fits {
                // The stream ended: the watcher never ends its own.
                return;
            }
            tokio::time::sleep(relist_after).await;
        }
    });
    store
}

impl Cluster {
    /// Starts watching (on the current tokio runtime), within the default [`Bounds`].
    pub fn watch(client: Client) -> Cluster {
        Cluster::watch_within(client, Bounds::default())
    }

    /// [`Cluster::watch`] within `bounds`.
    pub fn watch_within(client: Client, bounds: Bounds) -> Cluster {
        let changed = Arc::new(Notify::new());
        let tally = Tally::new(bounds);
        let all = watcher::Config::default();
        let slices = watcher::Config::default().labels("kubernetes.io/service-name");
        let tls = watcher::Config::default().fields("type=kubernetes.io/tls");
        let opaque = watcher::Config::default().fields("type=Opaque");
        // Every ConfigMap: see the module's doc.
        let maps = watcher::Config::default();
        Cluster {
            services: reflect(Api::all(client.clone()), "Service", all.clone(), &tally, changed.clone()),
            slices: reflect(Api::all(client.clone()), "EndpointSlice", slices, &tally, changed.clone()),
            ingresses: reflect(Api::all(client.clone()), "Ingress", all.clone(), &tally, changed.clone()),
            classes: reflect(Api::all(client.clone()), "IngressClass", all, &tally, changed.clone()),
            secrets: reflect(Api::all(client.clone()), "Secret", tls, &tally, changed.clone()),
            auth_secrets: reflect(
                Api::all(client.clone()),
                "Secret (Opaque)",
                opaque,
                &tally,
                changed.clone(),
            ),
            config_maps: reflect(Api::all(client), "ConfigMap", maps, &tally, changed.clone()),
            pools: None,
            bgp_peers: None,
            bgp_advertisements: None,
            bfd_profiles: None,
            l2_advertisements: None,
            changed,
            tally,
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
        let config = watcher::Config::default();
        let pools = reflect_with(api, "IPAddressPool", resource, config, &self.tally, self.changed.clone());
        self.pools = Some(pools);
        Ok(true)
    }

    /// Also watches MetalLB's BGPPeers (metallb.io/v1beta2) and BGPAdvertisements (v1beta1),
    /// where the cluster serves them (docs/bgp.md): as [`Self::watch_pools`], each kind not
    /// served is not waited for. Returns whether each is watched.
    pub async fn watch_bgp(&mut self, client: Client) -> Result<(bool, bool), kube::Error> {
        let mut watched = [false, false];
        for (i, (version, kind, plural)) in
            [("v1beta2", "BGPPeer", "bgppeers"), ("v1beta1", "BGPAdvertisement", "bgpadvertisements")]
                .into_iter()
                .enumerate()
        {
            let resource = bgp_resource(version, kind, plural);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e),
            }
            let store = reflect_with(
                api,
                kind,
                resource,
                watcher::Config::default(),
                &self.tally,
                self.changed.clone(),
            );
            if i == 0 {
                self.bgp_peers = Some(store);
            } else {
                self.bgp_advertisements = Some(store);
            }
            watched[i] = true;
        }
        Ok((watched[0], watched[1]))
    }

    /// Watches one of MetalLB's kinds (metallb.io/`version`), if the cluster serves it: `None`
    /// where it answers 404 (the CRD is not installed).
    async fn watch_metallb(
        &self,
        client: Client,
        version: &str,
        kind: &'static str,
        plural: &str,
    ) -> Result<Option<KStore<DynamicObject>>, kube::Error> {
        let resource = bgp_resource(version, kind, plural);
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
        let config = watcher::Config::default();
        Ok(Some(reflect_with(api, kind, resource, config, &self.tally, self.changed.clone())))
    }

    /// Also watches MetalLB's BFDProfiles (metallb.io/v1beta1), where the cluster serves them,
    /// as [`Self::watch_bgp`]. Returns whether they are watched.
    pub async fn watch_bfd(&mut self, client: Client) -> Result<bool, kube::Error> {
        self.bfd_profiles = self.watch_metallb(client, "v1beta1", "BFDProfile", "bfdprofiles").await?;
        Ok(self.bfd_profiles.is_some())
    }

    /// Also watches MetalLB's L2Advertisements (metallb.io/v1beta1), where the cluster serves
    /// them (docs/l2.md), as [`Self::watch_pools`]. Returns whether they are watched.
    pub async fn watch_l2(&mut self, client: Client) -> Result<bool, kube::Error> {
        self.l2_advertisements =
            self.watch_metallb(client, "v1beta1", "L2Advertisement", "l2advertisements").await?;
        Ok(self.l2_advertisements.is_some())
    }

    /// Resolves once every store has listed once.
    pub async fn ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.slices.wait_until_ready().await;
        let _ = self.ingresses.wait_until_ready().await;
        let _ = self.classes.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.auth_secrets.wait_until_ready().await;
        let _ = self.config_maps.wait_until_ready().await;
        if let Some(pools) = &self.pools {
            let _ = pools.wait_until_ready().await;
        }
        for s in [&self.bgp_peers, &self.bgp_advertisements, &self.bfd_profiles, &self.l2_advertisements]
            .into_iter()
            .flatten()
        {
            let _ = s.wait_until_ready().await;
        }
    }

    /// Resolves at the next change of any store (a change since the last call counts).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Brings `store` up to the watches: EndpointSlices one by one, recorded in the returned
    /// [`Changes`]; any other kind, when one of its objects changed, converted again as a whole
    /// ([`Changes::everything`]). Objects that do not convert or pass their checks are left out
    /// and kept in `synced.problems`; the returned lines (`Kind namespace/name: field: message`)
    /// are the problems new since the last sync. When the stores read missed objects (past
    /// `--max-objects`), `synced.shortfall` says so, and `store` is not to be published.
    pub fn sync(&self, store: &mut Store, synced: &mut Synced) -> (Changes, Vec<String>) {
        let before = self.tally.look();
        let mut changes = Changes::default();
        let mut new = Vec::new();
        for ((ns, name), o) in replaced(&self.slices, &mut synced.slices) {
            let object = format!("EndpointSlice {ns}/{name}");
            match o.map(|o| check_one(&*o, checked::endpoint_slice)) {
                Some(Ok(slice)) => {
                    synced.record(object, None, &mut new);
                    store.put_endpoint_slice(
                        Located { object: slice, file: PathBuf::from(CLUSTER), line: 0 },
                        &mut changes,
                    );
                }
                wrong => {
                    synced.record(object, wrong.and_then(Result::err), &mut new);
                    store.remove_endpoint_slice(&ns, &name, &mut changes);
                }
            }
        }
        let mut whole = |changed: bool| {
            if changed {
                changes.merge(Changes::everything());
            }
            changed
        };
        if whole(!replaced(&self.services, &mut synced.services).is_empty()) {
            store.services.clear();
            let left_out = convert(&self.services, "Service", checked::service, &mut store.services);
            synced.record_kind("Service", left_out, &mut new);
        }
        let ingresses_changed = whole(!replaced(&self.ingresses, &mut synced.ingresses).is_empty());
        if ingresses_changed {
            store.ingresses.clear();
            let left_out = convert(&self.ingresses, "Ingress", checked::ingress, &mut store.ingresses);
            synced.record_kind("Ingress", left_out, &mut new);
        }
        // ConfigMaps: those the Ingresses name, taken again when one of them changed or the
        // Ingresses did (which may name others); a change to any other compiles nothing.
        let named = named_config_maps(store);
        let maps = replaced(&self.config_maps, &mut synced.config_maps);
        if ingresses_changed || whole(maps.iter().any(|(key, _)| named.contains(key))) {
            store.config_maps.clear();
            let left_out = convert_named(&self.config_maps, &named, &mut store.config_maps);
            synced.record_kind("ConfigMap", left_out, &mut new);
        }
        if whole(!replaced(&self.classes, &mut synced.classes).is_empty()) {
            store.ingress_classes.clear();
            let into = &mut store.ingress_classes;
            let left_out = convert(&self.classes, "IngressClass", checked::ingress_class, into);
            synced.record_kind("IngressClass", left_out, &mut new);
        }
        // Both kinds of Secret are one list: rebuilt when either changed.
        let tls_changed = !replaced(&self.secrets, &mut synced.secrets).is_empty();
        let auth_changed = !replaced(&self.auth_secrets, &mut synced.auth_secrets).is_empty();
        if whole(tls_changed || auth_changed) {
            store.secrets.clear();
            let mut left_out = convert(&self.secrets, "Secret", checked::secret, &mut store.secrets);
            left_out.extend(convert(&self.auth_secrets, "Secret", checked::secret, &mut store.secrets));
            synced.record_kind("Secret", left_out, &mut new);
        }
        if let Some(pools) = &self.pools
            && whole(!replaced(pools, &mut synced.pools).is_empty())
        {
            // Pools given on the command line stay.
            store.pools.retain(|p| p.file != std::path::Path::new(CLUSTER));
            let left_out = convert(pools, "IPAddressPool", checked::pool, &mut store.pools);
            synced.record_kind("IPAddressPool", left_out, &mut new);
        }
        // The BGP objects change what BIRD is told, not the table: no recompile for them.
        if let Some(peers) = &self.bgp_peers
            && !replaced(peers, &mut synced.bgp_peers).is_empty()
        {
            store.bgp_peers.clear();
            let left_out = convert(peers, "BGPPeer", checked::bgp_peer, &mut store.bgp_peers);
            synced.record_kind("BGPPeer", left_out, &mut new);
            changes.merge(Changes::everything());
        }
        if let Some(advs) = &self.bgp_advertisements
            && !replaced(advs, &mut synced.bgp_advertisements).is_empty()
        {
            store.bgp_advertisements.clear();
            let into = &mut store.bgp_advertisements;
            let left_out = convert(advs, "BGPAdvertisement", checked::bgp_advertisement, into);
            synced.record_kind("BGPAdvertisement", left_out, &mut new);
            changes.merge(Changes::everything());
        }
        if let Some(profiles) = &self.bfd_profiles
            && !replaced(profiles, &mut synced.bfd_profiles).is_empty()
        {
            store.bfd_profiles.clear();
            let left_out = convert(profiles, "BFDProfile", checked::bfd_profile, &mut store.bfd_profiles);
            synced.record_kind("BFDProfile", left_out, &mut new);
            changes.merge(Changes::everything());
        }
        // Which VIPs are in L2 mode is part of the table (each one's role): a recompile.
        if let Some(advs) = &self.l2_advertisements
            && !replaced(advs, &mut synced.l2_advertisements).is_empty()
        {
            store.l2_advertisements.clear();
            let into = &mut store.l2_advertisements;
            let left_out = convert(advs, "L2Advertisement", checked::l2_advertisement, into);
            synced.record_kind("L2Advertisement", left_out, &mut new);
            changes.merge(Changes::everything());
        }
        synced.shortfall = Look::shortfall(before, self.tally.look(), &self.tally.bounds);
        (changes, new)
    }

    /// The objects now, as control's store; and what is wrong with those left out
    /// (`Kind namespace/name: field: message`). Whether the stores are short is
    /// [`Cluster::sync`]'s to say.
    pub fn snapshot(&self) -> (Store, Vec<String>) {
        let mut store = Store::default();
        let mut left_out = convert(&self.services, "Service", checked::service, &mut store.services);
        let slices = &mut store.endpoint_slices;
        left_out.extend(convert(&self.slices, "EndpointSlice", checked::endpoint_slice, slices));
        left_out.extend(convert(&self.ingresses, "Ingress", checked::ingress, &mut store.ingresses));
        let classes = &mut store.ingress_classes;
        left_out.extend(convert(&self.classes, "IngressClass", checked::ingress_class, classes));
        left_out.extend(convert(&self.secrets, "Secret", checked::secret, &mut store.secrets));
        left_out.extend(convert(&self.auth_secrets, "Secret", checked::secret, &mut store.secrets));
        let named = named_config_maps(&store);
        left_out.extend(convert_named(&self.config_maps, &named, &mut store.config_maps));
        if let Some(pools) = &self.pools {
            left_out.extend(convert(pools, "IPAddressPool", checked::pool, &mut store.pools));
        }
        if let Some(peers) = &self.bgp_peers {
            left_out.extend(convert(peers, "BGPPeer", checked::bgp_peer, &mut store.bgp_peers));
        }
        if let Some(advs) = &self.bgp_advertisements {
            let into = &mut store.bgp_advertisements;
            left_out.extend(convert(advs, "BGPAdvertisement", checked::bgp_advertisement, into));
        }
        if let Some(profiles) = &self.bfd_profiles {
            let into = &mut store.bfd_profiles;
            left_out.extend(convert(profiles, "BFDProfile", checked::bfd_profile, into));
        }
        if let Some(advs) = &self.l2_advertisements {
            let into = &mut store.l2_advertisements;
            left_out.extend(convert(advs, "L2Advertisement", checked::l2_advertisement, into));
        }
        let lines =
            left_out.into_iter().flat_map(|(o, wrong)| wrong.into_iter().map(move |w| format!("{o}: {w}")));
        (store, lines.collect())
    }
}

/// The ConfigMaps the store's Ingresses name (namespace, name).
fn named_config_maps(store: &Store) -> BTreeSet<(String, String)> {
    let asks = store.ingresses.iter().flat_map(|l| &l.object.nginx.config_maps);
    asks.map(|a| (a.namespace.clone(), a.name.clone())).collect()
}

/// Converts and checks the ConfigMaps `named` that the watch holds into `into`; returns those
/// left out, as [`convert`] does. One a name names that the cluster does not have is not an
/// error here: compile says so, naming the Ingress.
fn convert_named(
    from: &KStore<KConfigMap>,
    named: &BTreeSet<(String, String)>,
    into: &mut Vec<Located<checked::ConfigMap>>,
) -> Vec<(String, Vec<String>)> {
    let mut left_out = Vec::new();
    for (ns, name) in named {
        let Some(o) = from.get(&ObjectRef::new(name).within(ns)) else { continue };
        match check_one(&*o, checked::config_map) {
            Ok(t) => into.push(Located { object: t, file: PathBuf::from(CLUSTER), line: 0 }),
            Err(wrong) => left_out.push((label("ConfigMap", &*o), wrong)),
        }
    }
    left_out
}

/// Where a cluster's objects are located (their [`Located::file`]).
const CLUSTER: &str = "cluster";

/// Converts and checks every object of one kind into `into`; returns those left out
/// (`Kind namespace/name`) and what is wrong with each.
fn convert<K, Raw, T>(
    from: &KStore<K>,
    kind: &str,
    check: fn(Raw) -> Checked<T>,
    into: &mut Vec<Located<T>>,
) -> Vec<(String, Vec<String>)>
where
    K: Resource + Clone + Serialize + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    Raw: DeserializeOwned,
{
    let mut left_out = Vec::new();
    for o in from.state() {
        match check_one(&*o, check) {
            Ok(t) => into.push(Located { object: t, file: PathBuf::from(CLUSTER), line: 0 }),
            Err(wrong) => left_out.push((label(kind, &*o), wrong)),
        }
    }
    left_out
}
