//! Cluster mode against a fake API server. No real kube-apiserver can run here (none is
//! packaged for this system and nothing can be downloaded), so this is an in-process fake that
//! speaks the real wire protocol to the real kube client: LIST answers with a `…List` object and
//! its resourceVersion, WATCH with a streamed body of newline-delimited events (`ADDED`,
//! `MODIFIED`, `DELETED`, `BOOKMARK`, and `ERROR` with a 410 Status when the watch expires);
//! Lease writes with resourceVersion conflicts; status patches that update the object and come
//! back through the watch. The real `watcher` and `reflector` run over it in process, and the
//! `sluice-control` binary talks to it over HTTP on loopback.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use sluice_control::cluster::{Bounds, Cluster, LIST_PAGE_SIZE};
use sluice_control::compile::{Config, compile};
use sluice_model::service::Generation;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct State {
    lists: HashMap<&'static str, (u64, Vec<Value>)>,
    /// Open watches by kind, each with its field selector (`type=...` for Secrets).
    watchers: HashMap<&'static str, Vec<Watch>>,
    /// Leases by name.
    leases: HashMap<String, Value>,
    /// Status patches received: (path, body).
    patches: Vec<(String, Value)>,
    /// Every request served over HTTP: (method, path and query).
    requests: Vec<(String, http::Uri)>,
    /// Objects served by list requests, by kind.
    listed: HashMap<&'static str, usize>,
}

/// One open watch: its field selector and where its events go.
type Watch = (Option<String>, mpsc::UnboundedSender<Bytes>);

fn json_response(code: u16, v: Value) -> Response<Body> {
    Response::builder().status(code).body(Full::new(Bytes::from(v.to_string())).boxed()).unwrap()
}

fn status_response(code: u16, reason: &str) -> Response<Body> {
    json_response(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code}),
    )
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

/// The kinds of CRDs (MetalLB's): served only once set, as a cluster serves a CRD only where it
/// is installed.
const CRDS: [&str; 5] =
    ["ipaddresspools", "bgppeers", "bgpadvertisements", "l2advertisements", "bfdprofiles"];

fn resource(path: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match path {
        "/api/v1/services" => ("services", "v1", "ServiceList"),
        "/api/v1/secrets" => ("secrets", "v1", "SecretList"),
        "/api/v1/configmaps" => ("configmaps", "v1", "ConfigMapList"),
        "/apis/discovery.k8s.io/v1/endpointslices" => {
            ("endpointslices", "discovery.k8s.io/v1", "EndpointSliceList")
        }
        "/apis/networking.k8s.io/v1/ingresses" => ("ingresses", "networking.k8s.io/v1", "IngressList"),
        "/apis/networking.k8s.io/v1/ingressclasses" => {
            ("ingressclasses", "networking.k8s.io/v1", "IngressClassList")
        }
        "/apis/metallb.io/v1beta1/ipaddresspools" => {
            ("ipaddresspools", "metallb.io/v1beta1", "IPAddressPoolList")
        }
        "/apis/metallb.io/v1beta2/bgppeers" => ("bgppeers", "metallb.io/v1beta2", "BGPPeerList"),
        "/apis/metallb.io/v1beta1/bgpadvertisements" => {
            ("bgpadvertisements", "metallb.io/v1beta1", "BGPAdvertisementList")
        }
        "/apis/metallb.io/v1beta1/l2advertisements" => {
            ("l2advertisements", "metallb.io/v1beta1", "L2AdvertisementList")
        }
        "/apis/metallb.io/v1beta1/bfdprofiles" => ("bfdprofiles", "metallb.io/v1beta1", "BFDProfileList"),
        _ => return None,
    })
}

impl Fake {
    fn set(&self, key: &'static str, items: Vec<Value>) {
        let mut s = self.0.lock().unwrap();
        let e = s.lists.entry(key).or_default();
        e.0 += 1;
        e.1 = items;
    }

    fn watching(&self, key: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .watchers
            .get(key)
            .map_or(0, |w| w.iter().filter(|(_, t)| !t.is_closed()).count())
    }

    /// Sends one watch event to every open watch of `key`.
    fn event(&self, key: &'static str, kind: &str, object: Value) {
        let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": object})));
        for (selector, tx) in self.0.lock().unwrap().watchers.entry(key).or_default() {
            if !selects(selector.as_deref(), &object) {
                continue;
            }
            let _ = tx.send(line.clone());
        }
    }

    /// Expires every watch of `key`: an ERROR event with a 410 Status, then the end of the stream.
    fn expire(&self, key: &'static str) {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "too old resource version", "reason": "Expired", "code": 410});
        self.event(key, "ERROR", status);
        self.0.lock().unwrap().watchers.remove(key);
    }

    /// Leases (coordination.k8s.io/v1) with optimistic concurrency, and Service status patches.
    async fn handle_write(&self, req: Request<kube::client::Body>) -> Option<Response<Body>> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
        if let Some(rest) = path.strip_prefix(LEASES) {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            return Some(self.lease(method.as_str(), rest.trim_start_matches('/'), &body));
        }
        if method == "PATCH" && path.ends_with("/status") {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            return Some(self.patch_status(&path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
        None
    }

    /// A Lease request: GET, POST (create), PUT (replace, with the resourceVersion read).
    fn lease(&self, method: &str, name: &str, body: &[u8]) -> Response<Body> {
        let mut st = self.0.lock().unwrap();
        match method {
            "GET" => match st.leases.get(name) {
                Some(l) => json_response(200, l.clone()),
                None => status_response(404, "NotFound"),
            },
            "POST" => {
                let mut l: Value = serde_json::from_slice(body).unwrap();
                let name = l["metadata"]["name"].as_str().unwrap().to_owned();
                match st.leases.entry(name) {
                    std::collections::hash_map::Entry::Occupied(_) => status_response(409, "AlreadyExists"),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        l["metadata"]["resourceVersion"] = json!("1");
                        slot.insert(l.clone());
                        json_response(201, l)
                    }
                }
            }
            "PUT" => {
                let mut l: Value = serde_json::from_slice(body).unwrap();
                let stored = st.leases.get(name).cloned().unwrap_or(Value::Null);
                if stored["metadata"]["resourceVersion"] != l["metadata"]["resourceVersion"] {
                    return status_response(409, "Conflict");
                }
                let rv: u64 = stored["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
                l["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
                st.leases.insert(name.to_owned(), l.clone());
                json_response(200, l)
            }
            _ => status_response(405, "MethodNotAllowed"),
        }
    }

    /// A status patch, as the API server applies it: the listed Service or Ingress takes the
    /// applied status (all of it is ours here), gets a new resourceVersion, and every watch sees
    /// it MODIFIED.
    fn patch_status(&self, path: &str, v: Value) -> Response<Body> {
        let mut updated = None;
        let mut key = "services";
        {
            let mut st = self.0.lock().unwrap();
            st.patches.push((path.to_owned(), v.clone()));
            let parts: Vec<&str> = path.split('/').collect();
            if let [.., "namespaces", ns, kind, name, "status"] = parts.as_slice()
                && let Some(k) = ["services", "ingresses"].into_iter().find(|k| k == kind)
                && let Some((rv, items)) = st.lists.get_mut(k)
            {
                key = k;
                *rv += 1;
                for item in items.iter_mut() {
                    if item["metadata"]["namespace"] == *ns && item["metadata"]["name"] == *name {
                        item["status"] = v["status"].clone();
                        item["metadata"]["resourceVersion"] = json!(rv.to_string());
                        updated = Some(item.clone());
                    }
                }
            }
        }
        // An object the lists do not hold: the applied object, as the server would answer it.
        let answer = updated.clone().unwrap_or_else(|| {
            let mut v = v.clone();
            v["metadata"] = json!({"name": "web", "namespace": "default"});
            v
        });
        if let Some(object) = updated {
            self.event(key, "MODIFIED", object);
        }
        json_response(200, answer)
    }

    fn handle(&self, req: Request<kube::client::Body>) -> Response<Body> {
        let Some((key, api, list_kind)) = resource(req.uri().path()) else {
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
            return Response::builder()
                .status(404)
                .body(Full::new(Bytes::from(body.to_string())).boxed())
                .unwrap();
        };
        let watch =
            req.uri().query().unwrap_or("").split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
        if watch {
            let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
            let selector = field_selector(req.uri());
            self.0.lock().unwrap().watchers.entry(key).or_default().push((selector, tx));
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            return Response::new(StreamBody::new(stream).boxed());
        }
        let mut s = self.0.lock().unwrap();
        // The built-in kinds are always served (empty until set); a CRD's kind only once set.
        let Some((rv, mut items)) =
            s.lists.get(key).cloned().or_else(|| (!CRDS.contains(&key)).then(Default::default))
        else {
            // A kind this fake cluster does not serve (a CRD not installed).
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
            return Response::builder()
                .status(404)
                .body(Full::new(Bytes::from(body.to_string())).boxed())
                .unwrap();
        };
        // Pages as the API server gives them: `limit` objects from where `continue` says, and a
        // `continue` token while more remain.
        let param = |name: &str| {
            req.uri().query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let from: usize = param("continue").map_or(0, |c| c.parse().expect("a token this fake gave"));
        let limit: usize = param("limit").map_or(usize::MAX, |l| l.parse().unwrap());
        // The API server's field selector (Secrets by type: control watches two kinds of them).
        let selector = field_selector(req.uri());
        items.retain(|o| selects(selector.as_deref(), o));
        let rest = items.split_off(from.min(items.len()));
        let more = rest.len() > limit;
        let page: Vec<Value> = rest.into_iter().take(limit).collect();
        *s.listed.entry(key).or_default() += page.len();
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if more {
            metadata["continue"] = json!((from + limit).to_string());
        }
        let body = json!({"apiVersion": api, "kind": list_kind, "metadata": metadata, "items": page});
        Response::new(Full::new(Bytes::from(body.to_string())).boxed())
    }
}

/// The request's `fieldSelector`, decoded.
fn field_selector(uri: &http::Uri) -> Option<String> {
    let raw = uri.query()?.split('&').find_map(|kv| kv.strip_prefix("fieldSelector="))?;
    Some(raw.replace("%3D", "=").replace("%3d", "=").replace("%2F", "/").replace("%2f", "/"))
}

/// Whether `object` passes a field selector: only `type=X` is known (Secrets; a Secret without
/// a type is Opaque, as the API server defaults it).
fn selects(selector: Option<&str>, object: &Value) -> bool {
    match selector.and_then(|s| s.strip_prefix("type=")) {
        Some(want) => object.get("type").and_then(Value::as_str).unwrap_or("Opaque") == want,
        None => true,
    }
}

/// A kube client whose every request the fake answers.
fn client(fake: &Fake) -> kube::Client {
    let server = fake.clone();
    let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
        let f = server.clone();
        async move {
            if req.method() != "GET" || req.uri().path().contains("/leases") {
                if let Some(r) = f.handle_write(req).await {
                    return Ok::<_, Infallible>(r);
                }
                unreachable!("unexpected write");
            }
            Ok(f.handle(req))
        }
    });
    kube::Client::new(svc, "default")
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "mysql", "namespace": "default", "uid": "s1", "resourceVersion": "1"},
           "spec": {"type": "ClusterIP", "clusterIP": "198.19.0.33", "selector": {"app": "mysql"},
                    "sessionAffinity": "None",
                    "ports": [{"name": "tcp", "port": 3306, "protocol": "TCP", "targetPort": 3306}]}})
}

fn slice(addrs: &[&str], rv: u64) -> Value {
    let endpoints: Vec<Value> =
        addrs.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "mysql-x1", "namespace": "default", "uid": "e1", "resourceVersion": rv.to_string(),
                        "labels": {"kubernetes.io/service-name": "mysql"}},
           "addressType": "IPv4", "ports": [{"name": "tcp", "port": 3306, "protocol": "TCP"}], "endpoints": endpoints})
}

/// What control compiles with the sandbox's node address.
fn config() -> Config {
    Config { node_addrs: vec!["198.18.0.1".parse().unwrap()], ..Config::default() }
}

/// Checks that the store holds only the valid Service, `mysql`, and that it compiles with its
/// one backend.
fn only_mysql(store: &sluice_control::store::Store) {
    let names: Vec<&str> = store.services.iter().map(|s| s.object.name.as_str()).collect();
    assert_eq!(names, ["mysql"], "only the valid Service is in the store");
    let spec = compile(store, &config(), Generation(1)).spec;
    let compiled: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(compiled, ["default/mysql:tcp"]);
    assert_eq!(spec.services[0].backends.len(), 1);
}

fn backends(cluster: &Cluster) -> Vec<String> {
    let (store, problems) = cluster.snapshot();
    assert!(problems.is_empty(), "{problems:?}");
    let spec = compile(&store, &config(), Generation(1)).spec;
    let mut v: Vec<String> = spec
        .services
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| format!("{}:{}", b.addr, b.port)))
        .collect();
    v.sort();
    v
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "current_thread")]
async fn lists_watches_and_relists_after_410() {
    let fake = Fake::default();
    fake.set("services", vec![service()]);
    fake.set("endpointslices", vec![slice(&["198.18.1.30"], 1)]);
    let cluster = Cluster::watch(client(&fake));
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    assert_eq!(backends(&cluster), vec!["198.18.1.30:3306"]);

    // A change arrives on the watch.
    eventually("the slice watch", || fake.watching("endpointslices") > 0).await;
    fake.event("endpointslices", "MODIFIED", slice(&["198.18.1.30", "198.18.1.31"], 2));
    eventually("the MODIFIED event", || backends(&cluster) == ["198.18.1.30:3306", "198.18.1.31:3306"]).await;

    // A bookmark changes nothing.
    fake.event("endpointslices", "BOOKMARK", json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"resourceVersion": "3"}}));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(backends(&cluster).len(), 2);

    // The watch expires (410 Gone) while the cluster changed: the watcher relists, and what the
    // new list does not hold is gone.
    fake.set("endpointslices", vec![slice(&["198.18.1.32"], 4)]);
    fake.expire("endpointslices");
    eventually("the relist after 410", || backends(&cluster) == ["198.18.1.32:3306"]).await;

    // The Service is deleted.
    eventually("the service watch", || fake.watching("services") > 0).await;
    fake.event("services", "DELETED", service());
    eventually("the DELETED event", || backends(&cluster).is_empty()).await;
}

/// `Cluster::sync` keeps one store up to the watches: a slice event reaches the compiler as a
/// change to that Service alone (compiled incrementally, equal to a full compile of a fresh
/// snapshot); a Service event as a change to everything.
#[tokio::test(flavor = "current_thread")]
async fn sync_brings_a_store_up_to_the_watches_one_slice_at_a_time() {
    use sluice_control::cluster::Synced;
    use sluice_control::compile::Compiler;
    use sluice_control::store::{Changes, Store};
    let fake = Fake::default();
    let mut other = service();
    other["metadata"]["name"] = json!("other");
    other["spec"]["clusterIP"] = json!("198.19.0.34");
    fake.set("services", vec![service(), other]);
    fake.set("endpointslices", vec![slice(&["198.18.1.30"], 1)]);
    let cluster = Cluster::watch(client(&fake));
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let cfg = config();
    let (mut store, mut synced, mut compiler) = (Store::default(), Synced::default(), Compiler::new());
    let mut generation = 0;
    let mut step = |store: &mut Store, synced: &mut Synced, compiler: &mut Compiler| -> Changes {
        let (changes, problems) = cluster.sync(store, synced);
        assert!(problems.is_empty(), "{problems:?}");
        generation += 1;
        let inc = compiler.compile(store, &cfg, Generation(generation), &changes).clone();
        let (fresh, _) = cluster.snapshot();
        assert_eq!(inc.spec, compile(&fresh, &cfg, Generation(generation)).spec);
        changes
    };
    assert!(step(&mut store, &mut synced, &mut compiler).is_everything());
    assert!(step(&mut store, &mut synced, &mut compiler).is_empty(), "nothing new: nothing changed");

    eventually("the slice watch", || fake.watching("endpointslices") > 0).await;
    fake.event("endpointslices", "MODIFIED", slice(&["198.18.1.30", "198.18.1.31"], 2));
    eventually("the MODIFIED event", || cluster.snapshot().0.endpoint_slices[0].object.endpoints.len() == 2)
        .await;
    let changes = step(&mut store, &mut synced, &mut compiler);
    assert!(!changes.is_empty() && !changes.is_everything(), "{changes:?}");
    // Only mysql's entry changed, in place.
    let changed = compiler.compiled().unwrap().changed.clone().expect("in place");
    assert_eq!(changed.len(), 1);
    assert_eq!(compiler.compiled().unwrap().spec.services[changed[0]].name, "default/mysql:tcp");

    fake.event("endpointslices", "DELETED", slice(&[], 3));
    eventually("the DELETED slice", || cluster.snapshot().0.endpoint_slices.is_empty()).await;
    let changes = step(&mut store, &mut synced, &mut compiler);
    assert!(!changes.is_everything());
    assert!(store.endpoint_slices.is_empty());

    eventually("the service watch", || fake.watching("services") > 0).await;
    fake.event("services", "DELETED", service());
    eventually("the DELETED service", || cluster.snapshot().0.services.len() == 1).await;
    assert!(step(&mut store, &mut synced, &mut compiler).is_everything());
}

/// Both kinds of Secret control reads are watched — `kubernetes.io/tls` for certificates, Opaque
/// for basic auth's htpasswd files — each through its own field selector, and others not at
/// all; an Opaque Secret that arrives later joins the store.
#[tokio::test(flavor = "current_thread")]
async fn tls_and_opaque_secrets_are_watched_and_no_others() {
    use sluice_control::cluster::Synced;
    use sluice_control::store::Store;
    let fake = Fake::default();
    let secret = |name: &str, ty: Option<&str>| {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("s-{name}"), "resourceVersion": "1"},
            "data": {"auth": "Zm9vOntTSEF9eHl6"}});
        if let Some(t) = ty {
            s["type"] = json!(t);
        }
        s
    };
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "cert", "namespace": "shop", "uid": "s-cert", "resourceVersion": "1"},
        "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}});
    fake.set(
        "secrets",
        vec![tls, secret("htpasswd", None), secret("token", Some("kubernetes.io/service-account-token"))],
    );
    let cluster = Cluster::watch(client(&fake));
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let (mut store, mut synced) = (Store::default(), Synced::default());
    let _ = cluster.sync(&mut store, &mut synced);
    let names = |store: &Store| {
        let mut n: Vec<String> = store.secrets.iter().map(|l| l.object.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&store), ["cert", "htpasswd"]);
    eventually("both Secret watches", || fake.watching("secrets") == 2).await;
    fake.event("secrets", "ADDED", secret("more", Some("Opaque")));
    fake.event("secrets", "ADDED", secret("helm", Some("helm.sh/release.v1")));
    eventually("the Opaque Secret", || cluster.snapshot().0.secrets.len() == 3).await;
    let _ = cluster.sync(&mut store, &mut synced);
    assert_eq!(names(&store), ["cert", "htpasswd", "more"]);
}

/// A cluster's objects pass the same checks as a manifest's: one that fails them is left out and
/// reported once — `Kind namespace/name: field: message` — while the valid ones still compile;
/// fixed, it joins.
#[tokio::test(flavor = "current_thread")]
async fn an_invalid_object_from_the_cluster_is_left_out_and_reported() {
    use sluice_control::cluster::Synced;
    use sluice_control::store::Store;
    let fake = Fake::default();
    let mut sticky = service();
    sticky["metadata"]["name"] = json!("sticky");
    sticky["spec"]["clusterIP"] = json!("198.19.0.35");
    sticky["spec"]["sessionAffinity"] = json!("ClientIP");
    sticky["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 0}});
    let mut asks = service();
    asks["metadata"]["name"] = json!("asks");
    asks["metadata"]["annotations"] = json!({"metallb.io/loadBalancerIPs": "198.18.100.300"});
    asks["spec"]["type"] = json!("LoadBalancer");
    asks["spec"]["clusterIP"] = json!("198.19.0.36");
    fake.set("services", vec![service(), sticky.clone(), asks]);
    fake.set("endpointslices", vec![slice(&["198.18.1.30"], 1)]);
    let cluster = Cluster::watch(client(&fake));
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let (mut store, mut synced) = (Store::default(), Synced::default());
    let (_, mut problems) = cluster.sync(&mut store, &mut synced);
    problems.sort();
    assert_eq!(
        problems,
        [
            "Service default/asks: metadata.annotations[metallb.io/loadBalancerIPs]: \"198.18.100.300\" is not an \
             IP address (give addresses separated by commas: \"198.18.100.10, 2001:db8::10\")",
            "Service default/sticky: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is outside 1..=86400 \
             seconds",
        ]
    );
    only_mysql(&store);
    // Reported once: a sync that brings nothing new says nothing, and the problems stay known.
    assert!(cluster.sync(&mut store, &mut synced).1.is_empty());
    assert_eq!(synced.problems.len(), 2);
    // Fixed through the watch, the Service joins and its problem goes; the other one's is not
    // reported again.
    eventually("the service watch", || fake.watching("services") > 0).await;
    sticky["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
    sticky["metadata"]["resourceVersion"] = json!("2");
    fake.event("services", "MODIFIED", sticky);
    eventually("the fixed Service", || cluster.snapshot().0.services.len() == 2).await;
    let (changes, problems) = cluster.sync(&mut store, &mut synced);
    assert!(changes.is_everything());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(synced.problems.keys().collect::<Vec<_>>(), ["Service default/asks"]);
    let sticky = store.services.iter().find(|s| s.object.name == "sticky").expect("sticky joined");
    assert_eq!(sticky.object.affinity, sluice_model::service::Affinity::new(60));
}

/// Service `default/svc-N`, with a ClusterIP of its own.
fn numbered_service(n: usize) -> Value {
    let mut s = service();
    s["metadata"]["name"] = json!(format!("svc-{n}"));
    s["metadata"]["uid"] = json!(format!("n{n}"));
    s["spec"]["clusterIP"] = json!(format!("198.19.{}.{}", 1 + n / 250, 1 + n % 250));
    s
}

/// A cluster with more objects than `--max-objects`: the list is read in pages and cut off past
/// the bound (the rest is not read), the store is ready anyway, and the sync says the stores
/// are short, naming the kind, so that nothing is published from them.
#[tokio::test(flavor = "current_thread")]
async fn a_list_past_max_objects_is_cut_off_and_the_stores_are_short() {
    use sluice_control::cluster::Synced;
    use sluice_control::store::Store;
    let fake = Fake::default();
    fake.set("services", (0..1200).map(numbered_service).collect());
    // Not relisted during the test: what the first list read is what the fake counts.
    let bounds = Bounds { max_objects: 100, relist_after: Duration::from_secs(3600), ..Bounds::default() };
    let cluster = Cluster::watch_within(client(&fake), bounds);
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready though short");
    let (mut store, mut synced) = (Store::default(), Synced::default());
    let (_, problems) = cluster.sync(&mut store, &mut synced);
    assert!(problems.is_empty(), "{problems:?}");
    let short = synced.shortfall.clone().expect("the stores are short");
    assert_eq!(short.kinds, ["Service"]);
    let message = short.to_string();
    assert!(
        message.starts_with(
            "the cluster has more than 100 objects of the kinds control watches, all kinds together \
             (--max-objects): not every Service is held, so no table is published from them"
        ),
        "{message}"
    );
    assert_eq!(store.services.len(), 100, "the list up to the bound is held");
    // One page read of the three: the list stopped at the bound.
    assert_eq!(fake.0.lock().unwrap().listed.get("services"), Some(&(LIST_PAGE_SIZE as usize)));
    // Still short at the next sync: no store became whole meanwhile.
    cluster.sync(&mut store, &mut synced);
    assert_eq!(synced.shortfall, Some(short));
}

/// Past `--max-objects` through the watch: the new object is not held and the stores are short;
/// once the cluster fits again, the kind lists again (after `relist_after`) and the stores are
/// whole, the new list's objects in them.
#[tokio::test(flavor = "current_thread")]
async fn an_object_past_max_objects_makes_the_stores_short_until_the_cluster_fits() {
    use sluice_control::cluster::Synced;
    use sluice_control::store::Store;
    let fake = Fake::default();
    fake.set("services", vec![numbered_service(0), numbered_service(1)]);
    fake.set("endpointslices", vec![slice(&["198.18.1.30"], 1)]);
    let bounds = Bounds { max_objects: 3, relist_after: Duration::from_millis(200), ..Bounds::default() };
    let cluster = Cluster::watch_within(client(&fake), bounds);
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let (mut store, mut synced) = (Store::default(), Synced::default());
    cluster.sync(&mut store, &mut synced);
    assert_eq!(synced.shortfall, None, "three objects fit");
    eventually("the service watch", || fake.watching("services") > 0).await;
    fake.event("services", "ADDED", numbered_service(2));
    eventually("the shortfall", || {
        cluster.sync(&mut store, &mut synced);
        synced.shortfall.is_some()
    })
    .await;
    assert_eq!(synced.shortfall.as_ref().unwrap().kinds, ["Service"]);
    let mut names: Vec<&str> = store.services.iter().map(|s| s.object.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["svc-0", "svc-1"], "the object past the bound is not held");
    // svc-0 goes, svc-2 stays: three objects again, and the next list holds them all.
    fake.set("services", vec![numbered_service(1), numbered_service(2)]);
    eventually("the stores whole again", || {
        cluster.sync(&mut store, &mut synced);
        synced.shortfall.is_none()
    })
    .await;
    let mut names: Vec<&str> = store.services.iter().map(|s| s.object.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["svc-1", "svc-2"]);
}

/// An object larger than `--max-manifest-bytes` as JSON — a Secret with a large data field, a
/// Service with a large annotation — is not held: it is left out and reported once, `Kind
/// namespace/name: …`, while every other object is published; shrunk, it joins.
#[tokio::test(flavor = "current_thread")]
async fn an_object_too_large_is_left_out_and_reported_and_the_others_publish() {
    use sluice_control::cluster::Synced;
    use sluice_control::store::Store;
    let fake = Fake::default();
    let mut huge = numbered_service(1);
    huge["metadata"]["name"] = json!("huge");
    huge["metadata"]["annotations"] = json!({"note": "x".repeat(5000)});
    let big = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "big", "namespace": "default", "resourceVersion": "1"},
        "data": {"tls.crt": "QUFB".repeat(2000), "tls.key": "QUFB"}});
    fake.set("services", vec![service(), huge.clone()]);
    fake.set("endpointslices", vec![slice(&["198.18.1.30"], 1)]);
    fake.set("secrets", vec![big]);
    let bounds = Bounds { max_object_bytes: 4096, ..Bounds::default() };
    let cluster = Cluster::watch_within(client(&fake), bounds);
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let (mut store, mut synced) = (Store::default(), Synced::default());
    let (_, mut problems) = cluster.sync(&mut store, &mut synced);
    problems.sort();
    let why = "larger than 4096 bytes as JSON (--max-manifest-bytes): left out, not held; shrink it, or raise \
               the limit";
    assert_eq!(problems, [format!("Secret default/big: {why}"), format!("Service default/huge: {why}")]);
    assert_eq!(synced.shortfall, None, "a stub is an object like any other");
    only_mysql(&store);
    assert!(store.secrets.is_empty());
    // Reported once.
    assert!(cluster.sync(&mut store, &mut synced).1.is_empty());
    assert_eq!(synced.problems.len(), 2);
    // Shrunk through the watch, the Service joins.
    eventually("the service watch", || fake.watching("services") > 0).await;
    huge["metadata"]["annotations"] = json!({"note": "short"});
    huge["metadata"]["resourceVersion"] = json!("2");
    fake.event("services", "MODIFIED", huge);
    eventually("the shrunk Service", || {
        cluster.sync(&mut store, &mut synced);
        store.services.len() == 2
    })
    .await;
    assert_eq!(synced.problems.keys().collect::<Vec<_>>(), ["Secret default/big"]);
}

#[tokio::test(flavor = "current_thread")]
async fn the_leader_holds_a_lease_and_writes_status_only_when_it_changes() {
    use sluice_control::leader::{LeaderLease, write_load_balancer_status};
    let fake = Fake::default();
    let a = LeaderLease::new(client(&fake), "default", "sluice", "gw-a", 15);
    let b = LeaderLease::new(client(&fake), "default", "sluice", "gw-b", 15);
    assert!(a.try_lead().await.unwrap(), "the first takes the absent Lease");
    assert!(!b.try_lead().await.unwrap(), "a fresh Lease held by another is not taken");
    assert!(a.try_lead().await.unwrap(), "the holder renews");
    // The holder stops renewing: after leaseDurationSeconds another takes over.
    {
        let mut st = fake.0.lock().unwrap();
        st.leases.get_mut("sluice").unwrap()["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
    }
    assert!(b.try_lead().await.unwrap(), "an expired Lease is taken over");
    assert!(!a.try_lead().await.unwrap(), "and the old holder is no longer the leader");
    {
        let st = fake.0.lock().unwrap();
        let spec = &st.leases["sluice"]["spec"];
        assert_eq!(
            (spec["holderIdentity"].as_str(), spec["leaseTransitions"].as_i64()),
            (Some("gw-b"), Some(1))
        );
    }

    // Status: written once by server-side apply, not again once the Service says it.
    let web: sluice_control::objects::Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
    .unwrap();
    let mut web = sluice_control::checked::service(web).unwrap();
    let ip: std::net::IpAddr = "198.18.100.10".parse().unwrap();
    assert!(write_load_balancer_status(client(&fake), &web, &[ip]).await.unwrap());
    {
        let st = fake.0.lock().unwrap();
        assert_eq!(st.patches.len(), 1);
        let (path, body) = &st.patches[0];
        assert_eq!(path, "/api/v1/namespaces/default/services/web/status");
        assert_eq!(
            body["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "198.18.100.10", "ipMode": "VIP"}])
        );
    }
    // The status the watch brings back.
    web.status_ips = vec![ip];
    assert!(!write_load_balancer_status(client(&fake), &web, &[ip]).await.unwrap(), "no write storm");
    assert_eq!(fake.0.lock().unwrap().patches.len(), 1);
}

/// An Ingress's status: written by server-side apply of an IngressLoadBalancerIngress (`ip`
/// alone: no `ipMode`, which is a Service's), not again once the Ingress says it, written over
/// when it also names a host, and released by applying an empty `status.loadBalancer`.
#[tokio::test(flavor = "current_thread")]
async fn the_leader_writes_an_ingress_status_only_when_it_changes() {
    use sluice_control::leader::{clear_ingress_status, write_ingress_status};
    let fake = Fake::default();
    let web: sluice_control::objects::Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}))
    .unwrap();
    let mut web = sluice_control::checked::ingress(web).unwrap();
    let path = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status";
    let patches = || fake.0.lock().unwrap().patches.clone();
    let ip: std::net::IpAddr = "198.18.100.10".parse().unwrap();
    assert!(write_ingress_status(client(&fake), &web, &[ip]).await.unwrap());
    assert_eq!(
        patches(),
        [(
            path.to_owned(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.18.100.10"}]}}})
        )]
    );
    // The status the watch brings back.
    web.status_ips = vec![ip];
    assert!(!write_ingress_status(client(&fake), &web, &[ip]).await.unwrap(), "no write storm");
    assert_eq!(patches().len(), 1);
    // The same address with a host name (another writer's): not what Sluice writes.
    web.status_hostnames = vec!["lb.example.com".into()];
    assert!(write_ingress_status(client(&fake), &web, &[ip]).await.unwrap());
    web.status_hostnames.clear();
    // Another address.
    let other: std::net::IpAddr = "198.18.100.11".parse().unwrap();
    assert!(write_ingress_status(client(&fake), &web, &[other]).await.unwrap());
    assert_eq!(patches()[2].1["status"]["loadBalancer"]["ingress"], json!([{"ip": "198.18.100.11"}]));
    clear_ingress_status(client(&fake), &web).await.unwrap();
    let p = patches();
    assert_eq!(p.len(), 4);
    assert_eq!(
        p[3],
        (
            path.to_owned(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "status": {"loadBalancer": {}}})
        )
    );
}

/// IngressClass `name` of controller `controller`, with `annotations`.
fn ingress_class(name: &str, controller: &str, annotations: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": name, "uid": format!("c-{name}"), "resourceVersion": "1", "annotations": annotations},
           "spec": {"controller": controller}})
}

/// The Ingress test's cluster: a pool, Sluice's IngressClass `sluice` served on 198.18.100.2
/// (its `sluice.io/ingress-address`), another controller's class `nginx`, and Ingress shop/web
/// of class `sluice` in front of Service shop/web.
fn ingress_cluster(fake: &Fake) {
    fake.set(
        "ipaddresspools",
        vec![json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": "edge", "namespace": "metallb-system", "resourceVersion": "1"},
                    "spec": {"addresses": ["198.18.100.1-198.18.100.3"], "autoAssign": true}})],
    );
    fake.set(
        "ingressclasses",
        vec![
            ingress_class(
                "sluice",
                "sluice.io/ingress",
                json!({"sluice.io/ingress-address": "198.18.100.2"}),
            ),
            ingress_class("nginx", "k8s.io/ingress-nginx", json!({})),
        ],
    );
    fake.set(
        "services",
        vec![json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "w1", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": "198.19.0.60", "selector": {"app": "web"},
                     "sessionAffinity": "None",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})],
    );
    fake.set(
        "endpointslices",
        vec![json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x1", "namespace": "shop", "uid": "e1", "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["198.18.1.71"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})],
    );
    fake.set(
        "ingresses",
        vec![json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop", "uid": "i1", "resourceVersion": "1"},
            "spec": {"ingressClassName": "sluice",
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})],
    );
    fake.set("secrets", vec![]);
}

/// The binary in cluster mode writes an Ingress's `status.loadBalancer.ingress` — once, by
/// server-side apply as its field manager; not again when the watch brings it back (past the
/// 10 s a write is held in flight, so that only the status comparison stands between control
/// and a write storm); once more when the class's address changes; and releases it, once, when
/// the Ingress moves to another controller's class.
#[tokio::test(flavor = "current_thread")]
async fn the_binary_writes_an_ingress_status_when_it_changes_and_releases_it() {
    let fake = Fake::default();
    ingress_cluster(&fake);
    let addr = serve(fake.clone()).await;
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-cluster-ingress-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let _child = start_binary(addr, &dir.0, &[]);
    let path = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status";
    let writes = || -> Vec<Value> {
        let st = fake.0.lock().unwrap();
        st.patches.iter().filter(|(p, _)| p == path).map(|(_, b)| b["status"].clone()).collect()
    };
    let log = || std::fs::read_to_string(dir.0.join("control.log")).unwrap();
    let table = dir.0.join("table");
    let status = || {
        let bin = env!("CARGO_BIN_EXE_sluice-control");
        let out = std::process::Command::new(bin).args(["status", "--table"]).arg(&table).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let served_on = |ip: &str| json!({"loadBalancer": {"ingress": [{"ip": ip}]}});

    eventually("the Ingress's status", || !writes().is_empty()).await;
    assert_eq!(writes(), [served_on("198.18.100.2")]);
    {
        let st = fake.0.lock().unwrap();
        let (_, uri) = st.requests.iter().find(|(m, u)| m == "PATCH" && u.path() == path).unwrap();
        let query = uri.query().unwrap_or("");
        assert!(query.contains("fieldManager=sluice.io") && query.contains("force=true"), "{uri}");
    }
    // The write came back through the watch. Past the in-flight hold, an endpoint change makes
    // control compile and look at every status again: the Ingress's says it, so no write.
    eventually("the watches", || fake.watching("endpointslices") > 0 && fake.watching("ingresses") > 0).await;
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let two = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "namespace": "shop", "uid": "e1", "resourceVersion": "2",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.18.1.71"], "conditions": {"ready": true}},
                      {"addresses": ["198.18.1.72"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
    fake.set("endpointslices", vec![two.clone()]);
    fake.event("endpointslices", "MODIFIED", two);
    eventually("the new endpoint published", || status().is_some_and(|s| s.contains("198.18.1.72"))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writes().len(), 1, "no second write once the status says it");

    // The class's address changes: one new write.
    eventually("the class watch", || fake.watching("ingressclasses") > 0).await;
    let mut moved =
        ingress_class("sluice", "sluice.io/ingress", json!({"sluice.io/ingress-address": "198.18.100.3"}));
    moved["metadata"]["resourceVersion"] = json!("2");
    let nginx = fake.0.lock().unwrap().lists["ingressclasses"].1[1].clone();
    fake.set("ingressclasses", vec![moved.clone(), nginx]);
    fake.event("ingressclasses", "MODIFIED", moved);
    eventually("the new address written", || writes().len() == 2).await;
    assert_eq!(writes()[1], served_on("198.18.100.3"));

    // The Ingress moves to another controller's class: what Sluice wrote is released, once.
    let mut ing = fake.0.lock().unwrap().lists["ingresses"].1[0].clone();
    assert_eq!(ing["status"], served_on("198.18.100.3"), "the fake holds the status written");
    ing["spec"]["ingressClassName"] = json!("nginx");
    let rv: u64 = ing["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    ing["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    fake.set("ingresses", vec![ing.clone()]);
    fake.event("ingresses", "MODIFIED", ing);
    eventually("the release", || writes().len() == 3).await;
    assert_eq!(writes()[2], json!({"loadBalancer": {}}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writes().len(), 3, "released once");
    let log = log();
    assert_eq!(log.matches("status written: Ingress shop/web").count(), 2, "{log}");
    assert_eq!(log.matches("address released: Ingress shop/web").count(), 1, "{log}");
    assert_every_request_granted(&fake);
}

/// ConfigMap `namespace/name` with `data`, at resourceVersion `rv`.
fn config_map(namespace: &str, name: &str, data: Value, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace, "uid": format!("cm-{namespace}-{name}"),
                        "resourceVersion": rv.to_string()},
           "data": data})
}

/// The header fields of Ingress shop/web's policy in a compiled table: (response, request).
fn web_headers(spec: &sluice_model::service::TableSpec) -> (Vec<String>, Vec<String>) {
    let routes = &spec.l7.routes;
    let d =
        routes.hosts().iter().find_map(|h| h.default_backend.as_ref()).expect("shop/web's default backend");
    let p = routes.policy(d.policy).unwrap();
    let show =
        |hs: &[sluice_model::policy::Header]| hs.iter().map(|h| format!("{}: {}", h.name, h.value)).collect();
    (show(&p.response_headers), show(&p.request_headers))
}

/// ConfigMaps are watched in every namespace, and those an Ingress names (`custom-headers`,
/// `proxy-set-headers`) reach the store: one added after start, changed or deleted changes the
/// table's headers at the next sync, which recompiles; a change to a ConfigMap no Ingress names
/// (a leader-election record, say) compiles nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_config_map_an_ingress_names_changes_the_table_when_it_changes() {
    use sluice_control::cluster::Synced;
    use sluice_control::compile::{Compiled, Compiler};
    use sluice_control::store::{Changes, Store};
    let fake = Fake::default();
    ingress_cluster(&fake);
    let mut ing = fake.0.lock().unwrap().lists["ingresses"].1[0].clone();
    ing["metadata"]["annotations"] = json!({"nginx.ingress.kubernetes.io/custom-headers": "hdrs",
                                            "nginx.ingress.kubernetes.io/proxy-set-headers": "shop/up"});
    fake.set("ingresses", vec![ing]);
    let leader = |holder: &str, rv| config_map("default", "leader", json!({"holder": holder}), rv);
    fake.set("configmaps", vec![leader("a", 1)]);
    let mut cluster = Cluster::watch(client(&fake));
    assert!(cluster.watch_pools(client(&fake)).await.unwrap());
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("every store lists");
    let cfg = config();
    let (mut store, mut synced, mut compiler) = (Store::default(), Synced::default(), Compiler::new());
    let mut generation = 0;
    let mut step = |store: &mut Store, synced: &mut Synced, compiler: &mut Compiler| -> (Changes, Compiled) {
        let (changes, problems) = cluster.sync(store, synced);
        assert!(problems.is_empty(), "{problems:?}");
        generation += 1;
        let inc = compiler.compile(store, &cfg, Generation(generation), &changes).clone();
        let (fresh, _) = cluster.snapshot();
        assert_eq!(inc.spec, compile(&fresh, &cfg, Generation(generation)).spec);
        (changes, inc)
    };
    let none = (vec![], vec![]);
    let (changes, c) = step(&mut store, &mut synced, &mut compiler);
    assert!(changes.is_everything());
    assert_eq!(web_headers(&c.spec), none);
    assert!(store.config_maps.is_empty(), "the leader record is named by no Ingress: not converted");
    let missing = "Ingress shop/web: nginx.ingress.kubernetes.io/custom-headers: ignored: ConfigMap shop/hdrs does not exist";
    assert!(c.notes.iter().any(|n| n.starts_with(missing)), "{:#?}", c.notes);

    // Added after start: its fields are the table's.
    eventually("the ConfigMap watch", || fake.watching("configmaps") > 0).await;
    fake.event("configmaps", "ADDED", config_map("shop", "hdrs", json!({"X-Frame-Options": "DENY"}), 2));
    eventually("the ConfigMap", || cluster.snapshot().0.config_maps.len() == 1).await;
    let (changes, c) = step(&mut store, &mut synced, &mut compiler);
    assert!(changes.is_everything());
    assert_eq!(web_headers(&c.spec), (vec!["X-Frame-Options: DENY".to_owned()], vec![]));
    assert!(!c.notes.iter().any(|n| n.contains("custom-headers")), "{:#?}", c.notes);

    // Changed: the new value.
    fake.event(
        "configmaps",
        "MODIFIED",
        config_map("shop", "hdrs", json!({"X-Frame-Options": "SAMEORIGIN"}), 3),
    );
    fake.event("configmaps", "ADDED", config_map("shop", "up", json!({"X-Team": "payments"}), 4));
    let headers = || web_headers(&compile(&cluster.snapshot().0, &config(), Generation(1)).spec);
    let both = (vec!["X-Frame-Options: SAMEORIGIN".to_owned()], vec!["X-Team: payments".to_owned()]);
    eventually("both changes", || headers() == both).await;
    let (changes, c) = step(&mut store, &mut synced, &mut compiler);
    assert!(changes.is_everything());
    assert_eq!(web_headers(&c.spec), both);

    // A ConfigMap no Ingress names changes: the watch wakes control, and nothing is compiled.
    while tokio::time::timeout(Duration::from_millis(50), cluster.changed()).await.is_ok() {}
    fake.event("configmaps", "MODIFIED", leader("b", 5));
    tokio::time::timeout(Duration::from_secs(5), cluster.changed()).await.expect("the watch event");
    let (changes, c) = step(&mut store, &mut synced, &mut compiler);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(web_headers(&c.spec), both);

    // Deleted: the headers go, and the note says why.
    fake.event(
        "configmaps",
        "DELETED",
        config_map("shop", "hdrs", json!({"X-Frame-Options": "SAMEORIGIN"}), 6),
    );
    eventually("the deletion", || cluster.snapshot().0.config_maps.len() == 1).await;
    let (changes, c) = step(&mut store, &mut synced, &mut compiler);
    assert!(changes.is_everything());
    assert_eq!(web_headers(&c.spec), (vec![], vec!["X-Team: payments".to_owned()]));
    assert!(c.notes.iter().any(|n| n.starts_with(missing)), "{:#?}", c.notes);
}

/// Serves the fake over real HTTP on loopback, for a `sluice-control` process to talk to.
async fn serve(fake: Fake) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = fake.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let f = fake.clone();
                async move {
                    f.0.lock().unwrap().requests.push((req.method().to_string(), req.uri().clone()));
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let req = Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
                    if req.method() != "GET" || req.uri().path().contains("/leases") {
                        let not_found = Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"{}")).boxed())
                            .unwrap();
                        return Ok::<_, Infallible>(f.handle_write(req).await.unwrap_or(not_found));
                    }
                    Ok(f.handle(req))
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    addr
}

/// Kills the control process however the test ends.
struct Child(std::process::Child);

/// Removes the test's directory however the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The EndpointSlice of the binary test's `web` Service.
fn web_slice(addrs: &[&str], rv: u64) -> Value {
    let endpoints: Vec<Value> =
        addrs.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "web-x1", "namespace": "default", "uid": "e2", "resourceVersion": rv.to_string(),
                        "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
}

/// The binary test's cluster: a LoadBalancer Service `web` with a slice, a Service `old` whose
/// status still holds an address of the pool, an invalid Service `bad`, and a MetalLB pool.
fn binary_cluster(fake: &Fake) {
    let web = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "w1", "resourceVersion": "1"},
        "spec": {"type": "LoadBalancer", "clusterIP": "198.19.0.40", "selector": {"app": "web"},
                 "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31000}]}});
    let old = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "old", "namespace": "default", "uid": "o1", "resourceVersion": "2"},
        "spec": {"type": "ClusterIP", "clusterIP": "198.19.0.41", "sessionAffinity": "None",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.100.3", "ipMode": "VIP"}]}}});
    // Left out of the table, and reported in the log.
    let bad = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "bad", "namespace": "default", "uid": "b1", "resourceVersion": "3"},
        "spec": {"type": "ClusterIP", "clusterIP": "198.19.0.42", "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}});
    fake.set("services", vec![web, old, bad]);
    fake.set(
        "ipaddresspools",
        vec![json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": "edge", "namespace": "metallb-system", "resourceVersion": "1"},
                    "spec": {"addresses": ["198.18.100.1-198.18.100.3"], "autoAssign": true},
                    "status": {"assignedIPv4": 0, "availableIPv4": 3}})],
    );
    fake.set("endpointslices", vec![web_slice(&["198.18.1.61"], 3)]);
    for key in ["secrets", "ingresses", "ingressclasses"] {
        fake.set(key, vec![]);
    }
}

/// Starts `sluice-control run` against the API server at `addr`, with its kubeconfig, table and
/// log (standard error) in `dir`, and `extra` arguments.
fn start_binary(addr: std::net::SocketAddr, dir: &std::path::Path, extra: &[&str]) -> Child {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\n\
             \x20   namespace: default\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice-control"))
            .args(["run", "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("--table")
            .arg(dir.join("table"))
            .args(["--node-address", "198.18.0.1", "--identity", "gw-test"])
            .args(["--metrics-address", "127.0.0.1:0", "--interval-ms", "100"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("control.log")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The `sluice-control` binary in cluster mode, end to end: it lists and watches the fake over
/// HTTP, publishes the table, takes the Lease, writes the LoadBalancer Service's status, releases
/// the address of a Service that stopped being a LoadBalancer, follows a watch event, and
/// reports an invalid Service in its log, once, leaving it out.
#[tokio::test(flavor = "current_thread")]
async fn the_binary_runs_against_the_fake_cluster() {
    let fake = Fake::default();
    binary_cluster(&fake);
    let addr = serve(fake.clone()).await;
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-cluster-bin-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let _child = start_binary(addr, &dir.0, &[]);
    let table = dir.0.join("table");
    let status = || {
        let bin = env!("CARGO_BIN_EXE_sluice-control");
        let out = std::process::Command::new(bin).args(["status", "--table"]).arg(&table).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let patched = |path: &str| -> Option<Value> {
        let st = fake.0.lock().unwrap();
        st.patches.iter().find(|(p, _)| p == path).map(|(_, b)| b.clone())
    };
    eventually("the table from the cluster", || {
        status().is_some_and(|s| s.contains("198.18.1.61:8080") && s.contains("198.18.100.1"))
    })
    .await;
    eventually("the Lease", || {
        let st = fake.0.lock().unwrap();
        st.leases.get("sluice-control").is_some_and(|l| l["spec"]["holderIdentity"] == "gw-test")
    })
    .await;
    eventually("web's status", || patched("/api/v1/namespaces/default/services/web/status").is_some()).await;
    let body = patched("/api/v1/namespaces/default/services/web/status").unwrap();
    assert_eq!(body["status"]["loadBalancer"]["ingress"], json!([{"ip": "198.18.100.1", "ipMode": "VIP"}]));
    eventually("old's release", || patched("/api/v1/namespaces/default/services/old/status").is_some()).await;
    let body = patched("/api/v1/namespaces/default/services/old/status").unwrap();
    assert_eq!(body["status"], json!({"loadBalancer": {}}));
    // A watch event: web gains an endpoint.
    eventually("the slice watch", || fake.watching("endpointslices") > 0).await;
    fake.event("endpointslices", "MODIFIED", web_slice(&["198.18.1.61", "198.18.1.62"], 4));
    eventually("the new endpoint published", || status().is_some_and(|s| s.contains("198.18.1.62:8080")))
        .await;
    // The invalid Service: reported once, as a warning naming its field; not in the table.
    let log = std::fs::read_to_string(dir.0.join("control.log")).unwrap();
    let reported: Vec<&str> = log.lines().filter(|l| l.contains("Service default/bad: ")).collect();
    assert_eq!(reported.len(), 1, "{log}");
    assert!(reported[0].contains(" WARN "), "{log}");
    let why = "Service default/bad: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is outside 1..=86400 seconds";
    assert!(reported[0].ends_with(why), "{log}");
    assert!(!status().unwrap().contains("default/bad"));
    assert_every_request_granted(&fake);
    // Our own status writes came back through the watch: nothing was written twice.
    let mut writes: Vec<String> = fake.0.lock().unwrap().patches.iter().map(|(p, _)| p.clone()).collect();
    writes.sort();
    assert_eq!(
        writes,
        ["/api/v1/namespaces/default/services/old/status", "/api/v1/namespaces/default/services/web/status"]
    );
}

/// The binary past `--max-objects`: a Service more than the bound arrives through the watch;
/// control says so once, as an error, and publishes nothing more — neither that Service nor a
/// later endpoint change — keeping the table it had live.
#[tokio::test(flavor = "current_thread")]
async fn the_binary_keeps_its_last_table_past_max_objects_and_says_so_once() {
    let fake = Fake::default();
    // Three Services, a pool and a slice: five objects.
    binary_cluster(&fake);
    let addr = serve(fake.clone()).await;
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-cluster-max-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let _child = start_binary(addr, &dir.0, &["--max-objects", "5"]);
    let table = dir.0.join("table");
    let status = || {
        let bin = env!("CARGO_BIN_EXE_sluice-control");
        let out = std::process::Command::new(bin).args(["status", "--table"]).arg(&table).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let log = || std::fs::read_to_string(dir.0.join("control.log")).unwrap();
    eventually("the table from the cluster", || status().is_some_and(|s| s.contains("198.18.1.61:8080")))
        .await;
    eventually("the watches", || fake.watching("services") > 0 && fake.watching("endpointslices") > 0).await;
    // The first publication, then web's status coming back through the watch: let it settle.
    eventually("web's status", || fake.0.lock().unwrap().patches.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = status().unwrap();
    let mut extra = numbered_service(7);
    extra["metadata"]["name"] = json!("extra");
    fake.event("services", "ADDED", extra);
    eventually("the error", || log().contains("--max-objects")).await;
    // The Service watch stopped: it holds no connection while it waits to list again.
    eventually("the Service watch to stop", || fake.watching("services") == 0).await;
    // Still past the bound: an endpoint change is not published either, and not reported again.
    fake.event("endpointslices", "MODIFIED", web_slice(&["198.18.1.61", "198.18.1.62"], 4));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status().unwrap(), before, "the last good table stays live, unchanged");
    let log = log();
    let reported: Vec<&str> = log.lines().filter(|l| l.contains("--max-objects")).collect();
    assert_eq!(reported.len(), 1, "{log}");
    assert!(reported[0].contains(" ERROR "), "{log}");
    assert!(reported[0].contains("more than 5 objects"), "{log}");
    assert!(reported[0].contains("not every Service is held"), "{log}");
    assert!(reported[0].ends_with("; the last good table stays live"), "{log}");
}

/// Every request the fake served is one deploy/kubernetes grants.
fn assert_every_request_granted(fake: &Fake) {
    let allowed = rbac_rules();
    let requests = fake.0.lock().unwrap().requests.clone();
    assert!(requests.len() > 5, "{requests:?}");
    for (method, uri) in &requests {
        let need = rbac_need(method, uri);
        assert!(
            allowed.contains(&need),
            "{method} {uri} needs {need:?}, which deploy/kubernetes does not grant"
        );
    }
}

/// (apiGroup, resource, verb) granted by the ClusterRole and Role of deploy/kubernetes.
fn rbac_rules() -> std::collections::BTreeSet<(String, String, String)> {
    use serde::Deserialize;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/sluice-control.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).unwrap();
        if !matches!(v["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in v["rules"].as_array().unwrap() {
            let list = |k: &str| -> Vec<String> {
                rule[k].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for verb in list("verbs") {
                        out.insert((g.clone(), r.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

/// The (apiGroup, resource, verb) an API request needs, as the API server's RBAC sees it.
fn rbac_need(method: &str, uri: &http::Uri) -> (String, String, String) {
    let segs: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => panic!("not an API path: {uri}"),
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() >= 3 { &rest[2..] } else { rest };
    let resource = match rest {
        [r, _, sub] => format!("{r}/{sub}"),
        [r, ..] => (*r).to_owned(),
        [] => panic!("no resource: {uri}"),
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if rest.len() >= 2 => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        m => panic!("method {m}"),
    };
    (group.to_owned(), resource, verb.to_owned())
}

/// MetalLB's IPAddressPools are watched where the CRD is served, and a cluster without it is not
/// waited for.
#[tokio::test(flavor = "current_thread")]
async fn pools_are_watched_where_served_and_not_waited_for_elsewhere() {
    let fake = Fake::default();
    for key in ["services", "endpointslices", "secrets", "ingresses", "ingressclasses"] {
        fake.set(key, vec![]);
    }
    let mut cluster = Cluster::watch(client(&fake));
    assert!(!cluster.watch_pools(client(&fake)).await.unwrap(), "no CRD: not watched");
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready without pools");

    let pool = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "edge", "namespace": "metallb-system", "resourceVersion": "1"},
        "spec": {"addresses": ["198.18.100.8/30"], "avoidBuggyIPs": true}});
    fake.set("ipaddresspools", vec![pool]);
    let mut cluster = Cluster::watch(client(&fake));
    assert!(cluster.watch_pools(client(&fake)).await.unwrap());
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready with pools");
    let (store, problems) = cluster.snapshot();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(store.pools.len(), 1);
    assert_eq!(store.pools[0].object.ranges, ["198.18.100.8/30".parse().unwrap()]);
    assert!(store.pools[0].object.avoid_buggy_ips);
}

/// MetalLB's BGP objects are watched where served and checked as a manifest's are: a valid peer
/// and advertisement reach the store; one a check refuses is reported by field.
#[tokio::test(flavor = "current_thread")]
async fn bgp_objects_are_watched_where_served_and_checked() {
    let fake = Fake::default();
    for key in ["services", "endpointslices", "secrets", "ingresses", "ingressclasses"] {
        fake.set(key, vec![]);
    }
    let mut cluster = Cluster::watch(client(&fake));
    assert_eq!(cluster.watch_bgp(client(&fake)).await.unwrap(), (false, false), "no CRDs: not watched");
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready without them");

    let peer = |name: &str, asn: i64| {
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": name, "namespace": "metallb-system", "resourceVersion": "1"},
            "spec": {"myASN": 64512, "peerASN": asn, "peerAddress": "192.0.2.1"}})
    };
    fake.set("bgppeers", vec![peer("router", 64513), peer("broken", 0)]);
    fake.set(
        "bgpadvertisements",
        vec![json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": "edge", "namespace": "metallb-system", "resourceVersion": "1"},
            "spec": {"ipAddressPools": ["edge"], "communities": ["64512:100"]}})],
    );
    let mut cluster = Cluster::watch(client(&fake));
    assert_eq!(cluster.watch_bgp(client(&fake)).await.unwrap(), (true, true));
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready with them");
    let (store, problems) = cluster.snapshot();
    assert_eq!(
        problems,
        ["BGPPeer metallb-system/broken: spec.peerASN: 0 is not an AS number (1 to 4294967295)"]
    );
    assert_eq!(store.bgp_peers.len(), 1);
    assert_eq!(
        (store.bgp_peers[0].object.name.as_str(), store.bgp_peers[0].object.peer_asn),
        ("router", 64513)
    );
    assert_eq!(store.bgp_advertisements[0].object.pools, ["edge"]);
}

/// MetalLB's L2Advertisements and BFDProfiles are watched where served and checked as a
/// manifest's are.
#[tokio::test(flavor = "current_thread")]
async fn l2_advertisements_and_bfd_profiles_are_watched_where_served_and_checked() {
    let fake = Fake::default();
    for key in ["services", "endpointslices", "secrets", "ingresses", "ingressclasses"] {
        fake.set(key, vec![]);
    }
    let mut cluster = Cluster::watch(client(&fake));
    assert!(!cluster.watch_l2(client(&fake)).await.unwrap(), "no CRD: not watched");
    assert!(!cluster.watch_bfd(client(&fake)).await.unwrap(), "no CRD: not watched");
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready without them");

    let meta = |name: &str| json!({"name": name, "namespace": "metallb-system", "resourceVersion": "1"});
    fake.set(
        "l2advertisements",
        vec![
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": meta("edge"),
                "spec": {"ipAddressPools": ["edge"], "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "gw-a"}}]}}),
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": meta("picky"),
                "spec": {"ipAddressPoolSelectors": [{"matchLabels": {"tier": "edge"}}]}}),
        ],
    );
    fake.set(
        "bfdprofiles",
        vec![
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": meta("fast"),
                "spec": {"receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3}}),
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": meta("echo"),
                "spec": {"echoMode": true}}),
        ],
    );
    let mut cluster = Cluster::watch(client(&fake));
    assert!(cluster.watch_l2(client(&fake)).await.unwrap());
    assert!(cluster.watch_bfd(client(&fake)).await.unwrap());
    tokio::time::timeout(Duration::from_secs(10), cluster.ready()).await.expect("ready with them");
    let (store, mut problems) = cluster.snapshot();
    problems.sort();
    assert_eq!(
        problems,
        [
            "BFDProfile metallb-system/echo: spec.echoMode: not supported: BIRD's BFD has no echo mode; remove it (BFD control packets still run)",
            "L2Advertisement metallb-system/picky: spec.ipAddressPoolSelectors: not supported yet: name the pools in spec.ipAddressPools",
        ]
    );
    let l2 = &store.l2_advertisements[0].object;
    assert_eq!(
        (l2.name.as_str(), &l2.pools[..], l2.nodes.as_deref()),
        ("edge", &["edge".to_owned()][..], Some(&["gw-a".to_owned()][..]))
    );
    let fast = &store.bfd_profiles[0].object;
    assert_eq!((fast.name.as_str(), fast.receive_ms, fast.multiplier), ("fast", Some(100), Some(3)));
}

/// L2 mode in cluster mode (docs/l2.md): one Lease per VIP. The first candidate takes it; the
/// other does not while it is renewed; when the holder stops renewing (its node died), the other
/// takes it over after the Lease's duration — and the old holder has stopped counting itself
/// the holder before that, so that there is never a moment with two. A release hands it over at
/// once.
#[tokio::test(flavor = "current_thread")]
async fn an_l2_vip_has_one_lease_holder_and_a_dead_holder_is_replaced_within_its_duration() {
    use sluice_control::l2::lease::{Leases, lease_name};
    let fake = Fake::default();
    let vip: std::net::IpAddr = "198.18.100.10".parse().unwrap();
    let vips: std::collections::BTreeSet<std::net::IpAddr> = [vip].into();
    let mut a = Leases::new(client(&fake), "default", "gw-a", 2);
    let mut b = Leases::new(client(&fake), "default", "gw-b", 2);
    assert_eq!(a.step(&vips).await, vips, "the absent Lease is taken");
    assert!(b.step(&vips).await.is_empty(), "a Lease renewed by another is not taken");
    let holder = |fake: &Fake| {
        fake.0.lock().unwrap().leases[&lease_name(vip)]["spec"]["holderIdentity"].as_str().map(str::to_owned)
    };
    assert_eq!(holder(&fake).as_deref(), Some("gw-a"));
    assert_eq!(lease_name(vip), "sluice-l2-198-18-100-10");
    // Both look for 2 s: a renews, b never takes it.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(a.step(&vips).await, vips);
        assert!(b.step(&vips).await.is_empty(), "taken from a live holder");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // gw-a dies (stops renewing). gw-b takes over after the duration, and never while gw-a
    // still counts itself the holder. Measured from gw-a's last renewal (its renewTime).
    let renewed: k8s_openapi::jiff::Timestamp = {
        let st = fake.0.lock().unwrap();
        st.leases[&lease_name(vip)]["spec"]["renewTime"].as_str().unwrap().parse().unwrap()
    };
    let since_renewal = k8s_openapi::jiff::Timestamp::now().duration_since(renewed).unsigned_abs();
    let died = std::time::Instant::now() - since_renewal;
    let took = loop {
        let held_b = b.step(&vips).await;
        assert!(held_b.is_empty() || a.held().is_empty(), "two holders at {:?}", died.elapsed());
        if !held_b.is_empty() {
            break died.elapsed();
        }
        assert!(died.elapsed() < Duration::from_secs(5), "not taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("L2 Lease taken over {} ms after its holder's last renewal", took.as_millis());
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(holder(&fake).as_deref(), Some("gw-b"));
    // gw-a comes back: the Lease is gw-b's, renewed. gw-b's gateway stops: it releases at once,
    // and gw-a takes it at its next look.
    let mut a = Leases::new(client(&fake), "default", "gw-a", 2);
    assert!(a.step(&vips).await.is_empty());
    tokio::time::sleep(a.look_every()).await;
    assert!(b.step(&Default::default()).await.is_empty());
    assert_eq!(holder(&fake), None, "released");
    assert_eq!(a.step(&vips).await, vips, "a released Lease is taken at once");
}

/// The binary in cluster mode with an L2Advertisement (docs/l2.md): while a gateway serves the
/// table (here the test, registered on the table file as a gateway is), control takes the
/// VIP's Lease as its node and publishes the VIP active; once the gateway is gone, it releases
/// the Lease and publishes the VIP on standby.
#[tokio::test(flavor = "current_thread")]
async fn the_binary_holds_an_l2_vips_lease_while_its_gateway_serves() {
    let fake = Fake::default();
    binary_cluster(&fake);
    fake.set(
        "l2advertisements",
        vec![json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "edge-l2", "namespace": "metallb-system", "resourceVersion": "1"},
            "spec": {"ipAddressPools": ["edge"]}})],
    );
    let addr = serve(fake.clone()).await;
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-cluster-l2-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let _child = start_binary(addr, &dir.0, &["--node-name", "gw-test"]);
    let table = dir.0.join("table");
    let log = || std::fs::read_to_string(dir.0.join("control.log")).unwrap_or_default();
    let vip: std::net::IpAddr = "198.18.100.1".parse().unwrap();
    let lease = sluice_control::l2::lease::lease_name(vip);
    let holder = |fake: &Fake| {
        let st = fake.0.lock().unwrap();
        st.leases.get(&lease).map(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    };
    // The role the table says, read as the gateway reads it.
    let role = |reader: &mut sluice_table::Reader| {
        reader.refresh();
        let t = sluice_model::image::decode(reader.payload()?).ok()?;
        t.l2().get(&sluice_model::Addr::from(vip)).copied()
    };
    // Opened as the gateway opens it: again while control is still creating it.
    eventually("the table file", || sluice_table::Reader::open(&table).is_ok()).await;
    let mut gateway = sluice_table::Reader::open(&table).unwrap();
    // Its main thread has taken the table, its workers have not published yet: not serving,
    // so nothing is contended for, and the table has the VIP on standby.
    let mut first = None;
    for _ in 0..500 {
        first = role(&mut gateway);
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(first, Some(sluice_model::service::L2Role::Standby), "{}", log());
    // Three of control's looks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(role(&mut gateway), Some(sluice_model::service::L2Role::Standby), "no worker yet: {}", log());
    // Its worker publishes its counters, as a gateway's workers do at start.
    let worker = sluice_table::Reader::open_stats_only(&table).unwrap();
    worker.publish_stats(&sluice_model::Counters::default().export());
    // Serving now (a table adopted): the Lease is taken as the node, and the VIP made active.
    for _ in 0..500 {
        let r = role(&mut gateway);
        if r == Some(sluice_model::service::L2Role::Active) && holder(&fake) == Some(Some("gw-test".into())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(role(&mut gateway), Some(sluice_model::service::L2Role::Active), "{}", log());
    assert_eq!(holder(&fake), Some(Some("gw-test".into())), "{}", log());
    // The gateway goes: the Lease is released (another node would take it at once) and the VIP
    // published on standby.
    drop(gateway);
    eventually("the release", || holder(&fake) == Some(None)).await;
    eventually("the VIP published on standby", || log().contains("L2: announcing {} from this node")).await;
    assert!(log().contains("L2 Lease sluice-l2-198-18-100-1: released"), "{}", log());
    assert_every_request_granted(&fake);
}
