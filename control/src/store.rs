//! The store: every checked object control knows, by kind, whichever source filled it (a
//! manifest directory, [`crate::load`], or a cluster's watches, [`crate::cluster`]). Compile reads
//! it; the [`Store`] methods that change Pods and EndpointSlices — the objects that change often
//! — record what they changed in [`Changes`], so that the next compile redoes only what they feed.
//!
//! Not hot path. No `unsafe`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::checked::{
    BfdProfile, BgpAdvertisement, BgpPeer, ConfigMap, EndpointSlice, Endpoints, Ingress, IngressClass,
    L2Advertisement, Named, Pod, Pool, Secret, Service,
};

/// An object and where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The object.
    pub object: T,
    /// Its file (`cluster` for an object of a cluster's).
    pub file: PathBuf,
    /// The line its document starts at (0 for an object of a cluster's).
    pub line: usize,
}

/// Every object control acts on, checked.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Services, defaults applied.
    pub services: Vec<Located<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Located<EndpointSlice>>,
    /// Pods.
    pub pods: Vec<Located<Pod>>,
    /// LoadBalancer address pools.
    pub pools: Vec<Located<Pool>>,
    /// v1 Endpoints (for selectorless Services without EndpointSlices).
    pub endpoints: Vec<Located<Endpoints>>,
    /// Ingresses (networking.k8s.io/v1), of every class (compile picks Sluice's).
    pub ingresses: Vec<Located<Ingress>>,
    /// IngressClasses.
    pub ingress_classes: Vec<Located<IngressClass>>,
    /// Secrets (TLS certificates, basic-auth files), data decoded.
    pub secrets: Vec<Located<Secret>>,
    /// ConfigMaps (the header fields of `custom-headers` and `proxy-set-headers`): every one of
    /// a manifest directory; in cluster mode, those an Ingress names ([`crate::cluster`]).
    pub config_maps: Vec<Located<ConfigMap>>,
    /// BGP sessions (MetalLB's BGPPeer): written into the node's BIRD include (docs/bgp.md).
    pub bgp_peers: Vec<Located<BgpPeer>>,
    /// What to announce to them (MetalLB's BGPAdvertisement).
    pub bgp_advertisements: Vec<Located<BgpAdvertisement>>,
    /// BFD timers the peers name (MetalLB's BFDProfile).
    pub bfd_profiles: Vec<Located<BfdProfile>>,
    /// Which VIPs are announced in L2 mode, from which nodes (MetalLB's L2Advertisement;
    /// docs/l2.md).
    pub l2_advertisements: Vec<Located<L2Advertisement>>,
    /// Objects of kinds Sluice does not act on (`Kind namespace/name`), skipped.
    pub skipped: Vec<String>,
}

/// A changed Pod's namespace and labels before the change.
pub(crate) type Before = (String, BTreeMap<String, String>);

/// What changed in a store since a [`crate::compile::Compiler`] last compiled it, as whoever
/// changed it knows: the [`Store`] methods that change Pods and EndpointSlices record it here.
/// Anything else (Services, pools, the configuration) is [`Changes::everything`].
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub(crate) everything: bool,
    /// Positions in `store.pods` whose Pod changed, arrived or was replaced by another, with
    /// the namespace and labels of the Pod that was there before (none when it is new).
    pub(crate) pods: Vec<(usize, Option<Before>)>,
    /// Positions in `store.endpoint_slices` whose slice changed or arrived.
    pub(crate) slices: Vec<usize>,
    /// Services (namespace, name) whose EndpointSlices changed.
    pub(crate) services: Vec<(String, String)>,
}

impl Changes {
    /// Anything may have changed: compile it all.
    pub fn everything() -> Changes {
        Changes { everything: true, ..Changes::default() }
    }

    /// Whether anything may have changed (a full compile follows).
    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.pods.is_empty() && self.slices.is_empty() && self.services.is_empty()
    }

    /// Adds `other`'s changes to these.
    pub fn merge(&mut self, other: Changes) {
        self.everything |= other.everything;
        self.pods.extend(other.pods);
        self.slices.extend(other.slices);
        self.services.extend(other.services);
    }
}

/// The Service an EndpointSlice feeds (namespace, name).
fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    Some((slice.namespace.clone(), slice.service.clone()?))
}

fn same<T: Named>(a: &T, namespace: &str, name: &str) -> bool {
    a.namespace() == namespace && a.name() == name
}

impl Store {
    /// Adds a Pod, or replaces the one of the same namespace and name; records it.
    pub fn put_pod(&mut self, pod: Located<Pod>, changes: &mut Changes) {
        let (ns, name) = (pod.object.namespace.clone(), pod.object.name.clone());
        match self.pods.iter().position(|p| same(&p.object, &ns, &name)) {
            Some(i) => {
                let old = std::mem::replace(&mut self.pods[i], pod);
                changes.pods.push((i, Some((old.object.namespace, old.object.labels))));
            }
            None => {
                changes.pods.push((self.pods.len(), None));
                self.pods.push(pod);
            }
        }
    }

    /// Removes the Pod `namespace/name`, if there is one; records it.
    pub fn remove_pod(&mut self, namespace: &str, name: &str, changes: &mut Changes) -> bool {
        let Some(i) = self.pods.iter().position(|p| same(&p.object, namespace, name)) else {
            return false;
        };
        let old = self.pods.swap_remove(i);
        changes.pods.push((i, Some((old.object.namespace, old.object.labels))));
        if let Some(moved) = self.pods.get(i) {
            // The last Pod moved into the gap: same Services, new position.
            let before = (moved.object.namespace.clone(), moved.object.labels.clone());
            changes.pods.push((i, Some(before)));
        }
        true
    }

    /// Adds an EndpointSlice, or replaces the one of the same namespace and name; records it.
    pub fn put_endpoint_slice(&mut self, slice: Located<EndpointSlice>, changes: &mut Changes) {
        let (ns, name) = (slice.object.namespace.clone(), slice.object.name.clone());
        changes.services.extend(slice_service(&slice.object));
        match self.endpoint_slices.iter().position(|s| same(&s.object, &ns, &name)) {
            Some(i) => {
                changes.services.extend(slice_service(&self.endpoint_slices[i].object));
                self.endpoint_slices[i] = slice;
                changes.slices.push(i);
            }
            None => {
                changes.slices.push(self.endpoint_slices.len());
                self.endpoint_slices.push(slice);
            }
        }
    }

    /// Removes the EndpointSlice `namespace/name`, if there is one; records it.
    pub fn remove_endpoint_slice(&mut self, namespace: &str, name: &str, changes: &mut Changes) -> bool {
        let Some(i) = self.endpoint_slices.iter().position(|s| same(&s.object, namespace, name)) else {
            return false;
        };
        let old = self.endpoint_slices.swap_remove(i);
        changes.services.extend(slice_service(&old.object));
        if let Some(moved) = self.endpoint_slices.get(i) {
            changes.services.extend(slice_service(&moved.object));
            changes.slices.push(i);
        }
        true
    }

    /// How many objects the store holds of the kinds the table is compiled from.
    pub fn l4_objects(&self) -> usize {
        self.services.len()
            + self.endpoint_slices.len()
            + self.pods.len()
            + self.pools.len()
            + self.endpoints.len()
    }
}
