//! Manifests to table: every example of `deploy/examples/` (one per L4 scenario of
//! docs/scenarios.md) loads without a problem and compiles to what the scenario means; the mistakes
//! the seed documents contain are each reported with file, line, object, field and the fix; a
//! compiled table builds, encodes and decodes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sluice_control::checked::{PathValue, ServiceType, TrafficPolicy};
use sluice_control::compile::{Compiled, Config, compile};
use sluice_control::load::{Loaded, load_dir};
use sluice_model::Addr;
use sluice_model::Family;
use sluice_model::route::PathType;
use sluice_model::service::*;

fn examples(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(name)
}

fn cfg() -> Config {
    Config {
        node_name: Some("gw-1".into()),
        node_addrs: vec!["198.18.0.1".parse().unwrap()],
        snat: vec![],
        load_balancer_class: None,
        external_ip_ranges: vec![],
        ingress_nginx_class: false,
    }
}

fn errors(l: &Loaded) -> Vec<String> {
    l.errors.iter().map(|e| e.to_string()).collect()
}

fn load_clean(name: &str) -> Loaded {
    let l = load_dir(&examples(name)).unwrap();
    assert!(l.errors.is_empty(), "{name}: {:#?}", errors(&l));
    l
}

/// Manifests given inline, as one file.
fn load_text(yaml: &str) -> Loaded {
    let mut loaded = Loaded::default();
    sluice_control::load::load_str(Path::new("inline.yaml"), yaml, &mut loaded);
    loaded
}

fn compiled(name: &str) -> Compiled {
    let c = compile(&load_clean(name).store, &cfg(), Generation(1));
    // Whatever compile produces must be a valid table, and survive the trip to the gateway.
    let t = ServiceTable::build(&c.spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = sluice_model::image::decode(&sluice_model::image::encode(&t)).unwrap();
    assert_eq!(back.services(), t.services());
    c
}

fn ip(s: &str) -> Addr {
    Addr::from(s.parse::<IpAddr>().unwrap())
}

fn backends(s: &ServiceSpec) -> Vec<(String, u16)> {
    let mut v: Vec<(String, u16)> = s.backends.iter().map(|b| (b.addr.to_string(), b.port)).collect();
    v.sort();
    v
}

fn one<'a>(c: &'a Compiled, name: &str) -> &'a ServiceSpec {
    let v: Vec<&ServiceSpec> = c.spec.services.iter().filter(|s| s.name == name).collect();
    assert_eq!(v.len(), 1, "{name} in {:?}", c.spec.services.iter().map(|s| &s.name).collect::<Vec<_>>());
    v[0]
}

#[test]
fn nodeport_petclinic() {
    let c = compiled("nodeport");
    let s = one(&c, "default/petclinic:http");
    assert_eq!(
        s.frontends,
        vec![ServiceKey { frontend: Frontend::NodePort(Family::V4), port: 31080, protocol: Protocol::Tcp }]
    );
    assert_eq!(backends(s), [1, 2, 3].map(|i| (format!("198.18.1.{i}"), 8080)).to_vec());
    assert_eq!((s.nat, s.scheduler, s.affinity), (NatMode::FullNat, Scheduler::Maglev, None));
    assert_eq!(s.snat, vec![ip("198.18.0.1")]);
}

#[test]
fn loadbalancer_addresses_from_the_pool() {
    let c = compiled("loadbalancer");
    assert_eq!(
        c.load_balancers["default/dns"],
        vec!["198.18.100.15".parse::<IpAddr>().unwrap()],
        "loadBalancerIP honoured"
    );
    assert_eq!(
        c.load_balancers["default/web"],
        vec!["198.18.100.10".parse::<IpAddr>().unwrap()],
        "first free address"
    );
    let web = one(&c, "default/web:80");
    assert_eq!(
        web.frontends[0],
        ServiceKey { frontend: Frontend::Address(ip("198.18.100.10")), port: 80, protocol: Protocol::Tcp }
    );
    assert_eq!(
        backends(web),
        vec![("198.18.1.11".into(), 8080), ("198.18.1.12".into(), 8080)],
        "named targetPort resolved"
    );
    let dns = one(&c, "default/dns:dns-udp");
    assert_eq!(
        dns.frontends[0],
        ServiceKey { frontend: Frontend::Address(ip("198.18.100.15")), port: 53, protocol: Protocol::Udp }
    );
    assert_eq!(backends(dns)[0].1, 5353);
}

#[test]
fn clusterip_mysql() {
    let c = compiled("clusterip");
    let s = one(&c, "default/mysql:tcp");
    assert_eq!(
        s.frontends,
        vec![ServiceKey {
            frontend: Frontend::Address(ip("198.19.0.33")),
            port: 3306,
            protocol: Protocol::Tcp
        }]
    );
    assert_eq!(backends(s), vec![("198.18.1.30".into(), 3306)]);
}

#[test]
fn blue_green_follows_the_selector() {
    let mut l = load_clean("blue-green");
    let c = compile(&l.store, &cfg(), Generation(1));
    assert_eq!(
        backends(one(&c, "default/petclinic:http")),
        vec![("198.18.1.41".into(), 8080), ("198.18.1.42".into(), 8080)]
    );
    // Switch the selector to the new version, as `kubectl apply` of the edited Service would.
    l.store.services[0].object.selector.insert("version".into(), "v1.0.1".into());
    let c = compile(&l.store, &cfg(), Generation(2));
    assert_eq!(
        backends(one(&c, "default/petclinic:http")),
        vec![("198.18.1.51".into(), 8080), ("198.18.1.52".into(), 8080)]
    );
}

#[test]
fn session_affinity_and_schedulers() {
    let c = compiled("session-affinity");
    assert_eq!(one(&c, "default/cart:80").affinity, Affinity::new(600));
    let c = compiled("schedulers");
    for (name, s) in Scheduler::ALL.iter().filter(|(n, _)| *n != "maglev") {
        assert_eq!(one(&c, &format!("default/app-{name}:80")).scheduler, *s);
    }
}

#[test]
fn headless_and_externalname_are_not_proxied() {
    let c = compiled("headless-externalname");
    assert!(c.spec.services.is_empty(), "{:?}", c.spec.services);
}

#[test]
fn endpointslices_carry_conditions() {
    let c = compiled("endpointslices");
    let s = one(&c, "default/legacy:http");
    let cond: Vec<(String, Conditions)> =
        s.backends.iter().map(|b| (b.addr.to_string(), b.conditions)).collect();
    assert!(cond.contains(&("198.18.1.91".into(), Conditions::READY)));
    assert!(cond.contains(&("198.18.1.92".into(), Conditions::DRAINING)));
    let t = ServiceTable::build(&c.spec).unwrap();
    assert_eq!(t.services()[0].eligible.len(), 1, "only the ready endpoint takes new connections");
}

#[test]
fn compile_is_deterministic() {
    for dir in ["nodeport", "loadbalancer", "schedulers", "blue-green"] {
        let l = load_clean(dir);
        assert_eq!(
            compile(&l.store, &cfg(), Generation(3)).spec,
            compile(&l.store, &cfg(), Generation(3)).spec
        );
    }
}

#[test]
fn external_traffic_policy_local_keeps_the_client_address_and_local_endpoints() {
    let mut l = load_clean("nodeport");
    let svc = &mut l.store.services[0].object;
    svc.external_traffic_policy = TrafficPolicy::Local;
    svc.cluster_ips = vec!["198.19.0.80".parse().unwrap()];
    // Only petclinic-2 runs on this gateway's node.
    for p in &mut l.store.pods {
        let node = if p.object.name == "petclinic-2" { "gw-1" } else { "worker-9" };
        p.object.node_name = Some(node.into());
    }
    let c = compile(&l.store, &cfg(), Generation(1));
    let ext = one(&c, "default/petclinic:http (external, local)");
    // Every endpoint is known (a flow another gateway node opened to one of them may move
    // here); only the local one takes new flows.
    let taking: Vec<(String, u16)> =
        ext.backends.iter().filter(|b| b.weight > 0).map(|b| (b.addr.to_string(), b.port)).collect();
    assert_eq!((ext.nat, taking), (NatMode::Dnat, vec![("198.18.1.2".into(), 8080)]));
    assert_eq!(backends(ext).len(), 3);
    let internal = one(&c, "default/petclinic:http");
    assert_eq!((internal.nat, backends(internal).len()), (NatMode::FullNat, 3));
}

#[test]
fn the_seeds_mistakes_are_each_reported_and_the_rest_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mistakes");
    let l = load_dir(&dir).unwrap();
    let got: Vec<String> =
        l.errors.iter().map(|e| e.to_string().replace(&format!("{}/", dir.display()), "")).collect();
    let want = [
        "apiversion.yaml:1: Service default/shouty: apiVersion: \"V1\" is not an API version of Service; use \"v1\" (API versions are lowercase)",
        "controllers.yaml:15: Deployment default/petclinic: spec.template.spec.controllers: unknown field (did you mean \"containers\"?)",
        "duplicate-ports.yaml:10: Service default/twice: spec.ports[1].port: duplicate port 8080/TCP (also spec.ports[0])",
        "ingress-v1-mistakes.yaml:9: Ingress default/no-path-type: spec.rules[0].http.paths[0].pathType: required: Exact, Prefix or ImplementationSpecific",
        "ingress-v1-mistakes.yaml:28: Ingress default/old-backend: spec.rules[0].http.paths[0].backend.serviceName: unknown field (did you mean \"service\"?)",
        // Hosts and paths are held to the rules the route table routes by (sluice_model::route).
        "ingress-v1-mistakes.yaml:37: Ingress default/bad-host-and-path: spec.rules[0].host: host \"Shop.Example.com\" must be a lowercase DNS name (a.example.com), optionally with a wildcard first label (*.example.com), and not an IP address",
        "ingress-v1-mistakes.yaml:40: Ingress default/bad-host-and-path: spec.rules[0].http.paths[0].path: path \"/api/../admin\" must not contain \"/../\"",
        "ingress-v1-mistakes.yaml:47: Ingress default/bad-host-and-path: spec.rules[1].host: host \"198.18.0.1\" must be a lowercase DNS name (a.example.com), optionally with a wildcard first label (*.example.com), and not an IP address",
        "ingress-v1beta1.yaml:1: Ingress default/petclinic: apiVersion: Ingress extensions/v1beta1 was removed in Kubernetes 1.22; use networking.k8s.io/v1, where each path names a pathType and its backend is `service: {name: NAME, port: {number: PORT}}` instead of `serviceName`/`servicePort`",
        "nodeport-range.yaml:9: Service default/low: spec.ports[0].nodePort: 8080 is outside the node port range 30000-32767",
        "secret-tls.yaml:6: Secret default/half-a-certificate: data.tls.key: a kubernetes.io/tls Secret needs tls.key (as `kubectl create secret tls` writes)",
        "selectors.yaml:6: Service default/web: spec.selectors: unknown field (did you mean \"selector\"?)",
        "seletor.yaml:7: Service default/mysql: spec.seletor: unknown field (did you mean \"selector\"?)",
        "tabs.yaml:4: indented with a tab: YAML allows only spaces for indentation (replace each tab with spaces)",
    ];
    assert_eq!(got, want);
    let names: Vec<&str> = l.store.services.iter().map(|s| s.object.name.as_str()).collect();
    assert_eq!(names, vec!["fine"], "the valid Service still loads");
}

#[test]
fn ingress_objects_are_validated_and_typed() {
    let l = load_clean("ingress");
    assert_eq!(l.store.ingress_classes.len(), 1);
    let ing = &l.store.ingresses[0].object;
    assert_eq!(ing.class_name.as_deref(), Some("sluice"));
    let paths: Vec<(String, PathType)> = ing.rules[0]
        .paths
        .iter()
        .map(|p| match &p.path {
            PathValue::Rule(r) => (r.to_string(), p.path_type),
            PathValue::Other(o) => panic!("{o}"),
        })
        .collect();
    let want = [("/", PathType::Prefix), ("/oups", PathType::Exact), ("/owners/find", PathType::Prefix)];
    assert_eq!(paths, want.map(|(p, t)| (p.to_owned(), t)).to_vec());
    assert_eq!(ing.tls[0].secret_name.as_deref(), Some("tls-secret"));
    // No L4 entry comes from an Ingress.
    assert!(compile(&l.store, &cfg(), Generation(1)).spec.services.is_empty());
}

#[test]
fn legacy_endpoints_feed_a_selectorless_service_without_slices() {
    let c = compiled("endpointslices");
    let s = one(&c, "default/legacy-v1:http");
    let cond: Vec<(String, bool)> =
        s.backends.iter().map(|b| (b.addr.to_string(), b.conditions.ready)).collect();
    assert_eq!(cond, vec![("198.18.1.95".into(), true), ("198.18.1.96".into(), false)]);
}

/// A Service that stops being ours — type changed, another class, or no longer assigned —
/// while its status still carries an address of our pool is listed for release; an address
/// outside our pools (another implementation's) is left alone, and an assigned one is kept.
#[test]
fn addresses_are_released_when_a_service_stops_being_ours() {
    let mut store = load_clean("loadbalancer").store;
    let status = |ip: &str| vec![ip.parse::<IpAddr>().unwrap()];
    for l in &mut store.services {
        let s = &mut l.object;
        match s.name.as_str() {
            // Was a LoadBalancer with .10, is a ClusterIP now.
            "web" => {
                s.service_type = ServiceType::ClusterIp;
                s.status_ips = status("198.18.100.10");
            }
            // Keeps its address: still ours.
            "dns" => s.status_ips = status("198.18.100.15"),
            _ => {}
        }
    }
    let mut other = store.services[0].clone();
    other.object.name = "elsewhere".into();
    other.object.service_type = ServiceType::LoadBalancer;
    other.object.load_balancer_class = Some("example.com/other".into());
    other.object.status_ips = status("198.18.200.1");
    store.services.push(other.clone());
    let mut moved = other;
    moved.object.name = "moved".into();
    moved.object.status_ips = status("198.18.100.12");
    store.services.push(moved);

    let c = compile(&store, &cfg(), Generation(1));
    assert_eq!(c.release, vec!["default/moved".to_string(), "default/web".to_string()]);
    assert_eq!(c.load_balancers["default/dns"], vec!["198.18.100.15".parse::<IpAddr>().unwrap()]);
    assert!(!c.load_balancers.contains_key("default/web"));
}

/// MetalLB's `avoidBuggyIPs`: no address ending in .0 or .255 is handed out or honoured.
#[test]
fn avoid_buggy_ips_skips_network_and_broadcast_addresses() {
    let yaml = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: metallb-system}
spec:
  addresses: [198.18.100.255-198.18.101.1]
  avoidBuggyIPs: true
status: {assignedIPv4: 0, availableIPv4: 3}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: asks}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.18.101.0
  ports: [{port: 80}]
"#;
    let loaded = load_text(yaml);
    assert!(errors(&loaded).is_empty(), "{:?}", errors(&loaded));
    let c = compile(&loaded.store, &cfg(), Generation(1));
    assert_eq!(c.load_balancers["default/web"], vec!["198.18.101.1".parse::<IpAddr>().unwrap()]);
    assert!(!c.load_balancers.contains_key("default/asks"), "{:?}", c.load_balancers);
    assert!(
        c.notes.iter().any(|n| n.contains("198.18.101.0") && n.contains("no IPAddressPool")),
        "{:?}",
        c.notes
    );
}

/// MetalLB's allocation rules: held addresses stay (whatever the name order), explicit asks by
/// annotation or `loadBalancerIP` (a changed ask moves the Service), a named pool — even one that
/// does not auto-assign — and a clear note for a pool that does not exist.
#[test]
fn metallb_allocation_rules() {
    let yaml = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: auto, namespace: metallb-system}
spec: {addresses: [198.18.100.1-198.18.100.9]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: reserved, namespace: metallb-system}
spec: {addresses: [198.18.101.0/30], autoAssign: false}
---
apiVersion: v1
kind: Service
metadata: {name: a-wants-held}
spec: {type: LoadBalancer, loadBalancerIP: 198.18.100.5, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: z-holds}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.18.100.5}]}}
---
apiVersion: v1
kind: Service
metadata: {name: moved}
spec: {type: LoadBalancer, loadBalancerIP: 198.18.100.7, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.18.100.6}]}}
---
apiVersion: v1
kind: Service
metadata:
  name: annotated
  annotations: {metallb.io/loadBalancerIPs: "198.18.100.8, 198.18.100.9"}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: from-reserved
  annotations: {metallb.io/address-pool: reserved}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: no-such-pool
  annotations: {metallb.io/address-pool: nowhere}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec: {type: LoadBalancer, ports: [{port: 80}]}
"#;
    let loaded = load_text(yaml);
    assert!(errors(&loaded).is_empty(), "{:?}", errors(&loaded));
    let c = compile(&loaded.store, &cfg(), Generation(1));
    let got = |name: &str| -> Option<Vec<String>> {
        c.load_balancers.get(&format!("default/{name}")).map(|v| v.iter().map(ToString::to_string).collect())
    };
    assert_eq!(got("z-holds"), Some(vec!["198.18.100.5".into()]), "held addresses stay");
    assert_eq!(got("a-wants-held"), None, "an ask that cannot be had gets nothing else");
    assert!(
        c.notes.iter().any(|n| n.contains("a-wants-held") && n.contains("already taken")),
        "{:?}",
        c.notes
    );
    assert_eq!(got("moved"), Some(vec!["198.18.100.7".into()]), "a changed ask moves the Service");
    assert_eq!(got("annotated"), Some(vec!["198.18.100.8".into(), "198.18.100.9".into()]));
    assert_eq!(
        got("from-reserved"),
        Some(vec!["198.18.101.0".into()]),
        "a named pool, even not auto-assigning"
    );
    assert_eq!(got("no-such-pool"), None);
    assert!(c.notes.iter().any(|n| n.contains("no IPAddressPool named \"nowhere\"")), "{:?}", c.notes);
    assert_eq!(got("plain"), Some(vec!["198.18.100.1".into()]), "the first free auto-assigned address");
    // .6, given up by `moved`, is free again and nothing of the reserved pool is auto-assigned.
    assert!(!c.load_balancers.values().flatten().any(|a| a.to_string() == "198.18.100.6"));
}

/// A bad address in v1 Endpoints is named by the list it is in.
#[test]
fn endpoints_errors_name_the_right_list() {
    let yaml = r#"
apiVersion: v1
kind: Endpoints
metadata: {name: legacy}
subsets:
  - addresses: [{ip: 198.18.1.1}]
    notReadyAddresses: [{ip: 198.18.1.2}, {ip: not-an-ip}]
    ports: [{port: 80}]
"#;
    let errors = errors(&load_text(yaml));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("subsets[0].notReadyAddresses[1].ip"), "{errors:?}");
}

/// What `kubectl get svc,pods -o yaml` (and `-o json`) print is a `kind: List`: its items load
/// like objects of their own, and compile to the same Service.
#[test]
fn kubectl_list_dumps_load_item_by_item_in_yaml_and_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl");
    for file in ["services.yaml", "services.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut l = Loaded::default();
        sluice_control::load::load_str(Path::new(file), &text, &mut l);
        assert!(l.errors.is_empty(), "{file}: {:#?}", errors(&l));
        assert_eq!((l.store.services.len(), l.store.pods.len()), (1, 1), "{file}");
        // Each item is located at its own first line, not the list's.
        let (svc, pod) = (&l.store.services[0], &l.store.pods[0]);
        let want = if file.ends_with("yaml") { (3, 34) } else { (4, 46) };
        assert_eq!((svc.line, pod.line), want, "{file}");
        let c = compile(&l.store, &cfg(), Generation(1));
        assert_eq!(backends(one(&c, "default/petclinic:80")), [("198.18.1.1".to_owned(), 8080)], "{file}");
    }
}

/// A mistake inside a List's item is reported at the item's line, with its object and field;
/// the other items still load.
#[test]
fn a_mistake_in_a_list_item_names_the_item_and_its_line() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: fine\n  spec:\n    ports:\n    - port: 80\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: mysql\n  spec:\n    seletor:\n      app: mysql\n    ports:\n    - port: 3306\n";
    let l = load_text(yaml);
    assert_eq!(
        errors(&l),
        ["inline.yaml:16: Service default/mysql: spec.seletor: unknown field (did you mean \"selector\"?)"]
    );
    assert_eq!(l.store.services.len(), 1);
    // JSON: the same mistake, on its own line.
    let json = r#"{
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fine"}, "spec": {"ports": [{"port": 80}]}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "mysql"},
            "spec": {
                "ports": [{"port": 3306}],
                "sessionAffinity": "Sticky"
            }
        }
    ]
}"#;
    let l = load_text(json);
    assert_eq!(
        errors(&l),
        [
            "inline.yaml:12: Service default/mysql: spec.sessionAffinity: \"Sticky\" is not one of None, ClientIP"
        ]
    );
    // A typed list, as the API serves it: its items state no kind.
    let l = load_text(
        "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata:\n    name: a\n  spec:\n    ports:\n    - port: 80\n",
    );
    assert!(l.errors.is_empty(), "{:#?}", errors(&l));
    assert_eq!(l.store.services.len(), 1);
    let l = load_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n");
    assert_eq!(errors(&l), ["inline.yaml:4: List: kind: a list inside a list is not read"]);
}

/// Issue 12 §3: a Service whose frontend another holds is refused alone, with an error naming
/// both and the frontend; the table still builds — before, the duplicate failed the whole table
/// and no change at all was published. The older Service keeps the frontend whatever the names.
#[test]
fn a_colliding_service_is_refused_alone() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: a-newer, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b-older, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c-other}
spec: {clusterIP: 198.19.0.11, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: d-nodeport}
spec: {type: NodePort, clusterIP: 198.19.0.12, ports: [{port: 80, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: e-nodeport}
spec: {type: NodePort, clusterIP: 198.19.0.13, ports: [{port: 81, nodePort: 30080}]}
"#;
    let loaded = load_text(yaml);
    assert!(errors(&loaded).is_empty(), "{:?}", errors(&loaded));
    let c = compile(&loaded.store, &cfg(), Generation(1));
    ServiceTable::build(&c.spec).unwrap_or_else(|e| panic!("the table must build: {e}"));
    let names: Vec<&str> = c.spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["default/b-older:80", "default/c-other:80", "default/d-nodeport:80"]);
    assert_eq!(
        c.errors,
        [
            "inline.yaml:1: Service default/a-newer: frontend 198.19.0.10:80/tcp is already Service \
             default/b-older's (inline.yaml:7: Service default/b-older; it keeps it: created earlier): \
             Service default/a-newer is refused, every other Service is published",
            "inline.yaml:22: Service default/e-nodeport: frontend <node-ipv4>:30080/tcp is already Service \
             default/d-nodeport's (inline.yaml:17: Service default/d-nodeport; it keeps it: first in \
             namespace/name order): Service default/e-nodeport is refused, every other Service is published",
        ]
    );
}

/// An endpoint change to a refused Service (an incremental compile) does not bring it back.
#[test]
fn a_refused_service_stays_refused_when_its_endpoints_change() {
    use sluice_control::compile::Compiler;
    use sluice_control::store::Changes;
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {clusterIP: 198.19.0.10, ports: [{port: 80}]}\n";
    let slice = |addr: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: b-1, labels: {{kubernetes.io/service-name: b}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints: [{{addresses: [{addr}]}}]\n"
        )
    };
    let mut store = load_text(yaml).store;
    let mut compiler = Compiler::new();
    compiler.compile(&store, &cfg(), Generation(1), &Changes::everything());
    let mut changes = Changes::default();
    let slice_store = load_text(&slice("198.18.1.9")).store;
    store.put_endpoint_slice(slice_store.endpoint_slices[0].clone(), &mut changes);
    let c = compiler.compile(&store, &cfg(), Generation(2), &changes);
    assert!(!changes.is_everything());
    let names: Vec<&str> = c.spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["default/a:80"]);
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    ServiceTable::build(&c.spec).unwrap();
}

/// Issue 12 §3: external IPs are served only from the ranges the operator allows (none by
/// default); node addresses serve NodePorts only — not as external, cluster or LoadBalancer
/// addresses, even from a pool that holds them. Each refusal names file, object and field, and
/// the rest of the Service is served.
#[test]
fn external_ips_only_from_allowed_ranges_and_node_addresses_only_for_node_ports() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  clusterIP: 198.19.0.20
  externalIPs: [203.0.113.5, 198.51.100.7, 198.18.0.1]
  ports: [{port: 80}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: metallb-system}
spec: {addresses: [198.18.0.1-198.18.0.2]}
---
apiVersion: v1
kind: Service
metadata: {name: asks-node}
spec: {type: LoadBalancer, loadBalancerIP: 198.18.0.1, clusterIP: 198.19.0.21, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: auto}
spec: {type: LoadBalancer, clusterIP: 198.19.0.22, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: on-node}
spec: {clusterIP: 198.18.0.1, ports: [{port: 443}]}
"#;
    let loaded = load_text(yaml);
    assert!(errors(&loaded).is_empty(), "{:?}", errors(&loaded));
    let frontends = |c: &Compiled, name: &str| -> Vec<String> {
        one(c, name).frontends.iter().map(ToString::to_string).collect()
    };
    // None allowed by default.
    let c = compile(&loaded.store, &cfg(), Generation(1));
    ServiceTable::build(&c.spec).unwrap();
    assert_eq!(frontends(&c, "default/ext:80"), ["198.19.0.20:80/tcp"]);
    assert!(
        c.errors.contains(
            &"inline.yaml:1: Service default/ext: spec.externalIPs[0]: 203.0.113.5 is outside the external \
              IP ranges allowed (--external-ip-ranges: none, by default): not served"
                .to_owned()
        ),
        "{:#?}",
        c.errors
    );
    let allowed = Config { external_ip_ranges: vec!["203.0.113.0/24".parse().unwrap()], ..cfg() };
    let c = compile(&loaded.store, &allowed, Generation(1));
    ServiceTable::build(&c.spec).unwrap();
    assert_eq!(frontends(&c, "default/ext:80"), ["198.19.0.20:80/tcp", "203.0.113.5:80/tcp"]);
    assert_eq!(
        c.errors,
        [
            "inline.yaml:15: Service default/asks-node: spec.loadBalancerIP: 198.18.0.1 is an address of this \
             node (--node-address), which serves NodePorts only: not assigned",
            "inline.yaml:1: Service default/ext: spec.externalIPs[1]: 198.51.100.7 is outside the external IP \
             ranges allowed (--external-ip-ranges: 203.0.113.0-203.0.113.255): not served",
            "inline.yaml:1: Service default/ext: spec.externalIPs[2]: 198.18.0.1 is an address of this node \
             (--node-address), which serves NodePorts only: not served",
            "inline.yaml:25: Service default/on-node: spec.clusterIPs: 198.18.0.1 is an address of this node \
             (--node-address), which serves NodePorts only: not served",
        ]
    );
    // The pool's other address goes to the Service that asked for none.
    assert_eq!(c.load_balancers["default/auto"], vec!["198.18.0.2".parse::<IpAddr>().unwrap()]);
    assert!(!c.load_balancers.contains_key("default/asks-node"));
}

/// A directory of manifests, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Ingress example: its class is Sluice's, so it is compiled into the L7 half, with its
/// Services' endpoints (one Pod each; `petclinic-errors` by port name, to a named target port);
/// its Secret is made at run time (not in the directory), so its TLS entry is left out with an
/// error naming the file, the Ingress and the field.
#[test]
fn the_ingress_example_compiles_to_routes_with_what_is_missing_said() {
    let l = load_clean("ingress");
    let c = compile(&l.store, &cfg(), Generation(1));
    let hosts = c.spec.l7.routes.hosts();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].paths.len(), 3);
    let upstreams: Vec<(String, Vec<String>)> = c
        .spec
        .l7
        .upstreams
        .iter()
        .map(|u| (u.service.name.clone(), u.endpoints.iter().map(|e| e.addr.to_string()).collect()))
        .collect();
    assert_eq!(
        upstreams,
        [
            ("owners".to_owned(), vec!["198.18.1.113:8080".to_owned()]),
            ("petclinic".to_owned(), vec!["198.18.1.111:8080".to_owned()]),
            ("petclinic-errors".to_owned(), vec!["198.18.1.112:8080".to_owned()]),
        ]
    );
    let e = c.errors.join("\n");
    assert!(!e.contains("does not exist\n") && !e.contains("Service default/"), "{e}");
    assert!(
        e.contains(
            "Ingress default/petclinic: spec.tls[0].secretName: Secret default/tls-secret: does not exist"
        ),
        "{e}"
    );
    assert!(c.spec.l7.listeners.is_empty(), "no IPAddressPool in the directory: no address");
}

/// A directory with a good and a bad TLS Secret (made now: no key is committed): the good one
/// becomes a certificate, the bad one an error naming its Secret and its Ingress, and the whole
/// generation goes through the image.
#[test]
fn a_directory_with_good_and_bad_tls_secrets_loads_the_good_ones() {
    let dir = Dir(std::env::temp_dir().join(format!("sluice-tls-manifests-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["shop.example.com".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let crt = params.self_signed(&key).unwrap().pem();
    let indent = |t: &str| t.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let secret = |name: &str, key: &rcgen::KeyPair| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(&crt),
            indent(&key.serialize_pem())
        )
    };
    let ingress = |name: &str, secret: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  ingressClassName: sluice
  tls: [{{hosts: [shop.example.com], secretName: {secret}}}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {{path: /{name}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"
        )
    };
    let files = [
        ("class.yaml", "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: sluice}\nspec: {controller: sluice.io/ingress}\n".to_owned()),
        ("pool.yaml", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: edge}\nspec: {addresses: [198.18.100.10/32]}\n".to_owned()),
        ("web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, targetPort: 8080}]}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets: [{addresses: [{ip: 198.18.1.5}], ports: [{port: 8080}]}]\n".to_owned()),
        ("good-secret.yaml", secret("good", &key)),
        ("bad-secret.yaml", secret("bad", &other)),
        ("good.yaml", ingress("good", "good")),
        ("bad.yaml", ingress("bad", "bad")),
    ];
    for (name, text) in &files {
        std::fs::write(dir.0.join(name), text).unwrap();
    }
    let l = load_dir(&dir.0).unwrap();
    assert!(l.errors.is_empty(), "{:#?}", errors(&l));
    let c = compile(&l.store, &cfg(), Generation(1));
    assert_eq!(c.errors.len(), 1, "{:#?}", c.errors);
    assert!(
        c.errors[0].contains("bad.yaml:1: Ingress default/bad: spec.tls[0].secretName: Secret default/bad: tls.key does not match"),
        "{}",
        c.errors[0]
    );
    let certs = &c.spec.l7.certificates;
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].secret.to_string(), "default/good");
    assert_eq!(certs[0].ingresses.iter().map(ToString::to_string).collect::<Vec<_>>(), ["default/good"]);
    assert_eq!(c.spec.l7.routes.hosts()[0].paths.len(), 2, "both Ingresses still route");
    assert_eq!(c.spec.l7.upstreams[0].endpoints[0].addr.to_string(), "198.18.1.5:8080");
    assert_eq!(c.spec.l7.listeners[0].addr.to_string(), "198.18.100.10");
    let t = ServiceTable::build(&c.spec).unwrap();
    let back = sluice_model::image::decode(&sluice_model::image::encode(&t)).unwrap();
    assert_eq!(back.l7(), &*c.spec.l7);
}

/// ConfigMaps load from documents and from a `kubectl get -o yaml` List alike; one the API
/// server would refuse is reported with file, line, object and field, and left out; one that
/// holds no header fields is not wrong (whether its entries are headers is said only where an
/// annotation names it).
#[test]
fn config_maps_load_and_their_mistakes_name_file_line_object_and_field() {
    let l = load_text(
        "apiVersion: v1
kind: ConfigMap
metadata: {name: hdrs, namespace: shop}
data:
  X-Frame-Options: DENY
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: shop}
  data:
    app.properties: |
      a=1
      b=2
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: bad-key, namespace: shop}
  data:
    ok: fine
    X Bad: nope
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: typo, namespace: shop}
  dat: {X-B: '2'}
- apiVersion: V1
  kind: ConfigMap
  metadata: {name: version, namespace: shop}
",
    );
    let mut names: Vec<&str> = l.store.config_maps.iter().map(|c| c.object.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["hdrs", "settings"]);
    let hdrs = l.store.config_maps.iter().find(|c| c.object.name == "hdrs").unwrap();
    assert_eq!((hdrs.line, hdrs.object.headers.len()), (1, 1));
    assert_eq!(hdrs.object.headers[0].as_ref().unwrap().value, "DENY");
    let settings = l.store.config_maps.iter().find(|c| c.object.name == "settings").unwrap();
    assert_eq!(settings.line, 10, "an item is located at its own first line");
    assert!(settings.object.headers[0].is_err(), "not a header, and not an error either");
    assert_eq!(
        errors(&l),
        [
            "inline.yaml:22: ConfigMap shop/bad-key: data.X Bad: not a ConfigMap key: letters, digits, '-', '_' \
             and '.' only (\"X-Frame-Options\")",
            "inline.yaml:26: ConfigMap shop/typo: dat: unknown field (did you mean \"data\"?)",
            "inline.yaml:27: ConfigMap shop/version: apiVersion: \"V1\" is not an API version of ConfigMap; use \
             \"v1\" (API versions are lowercase)",
        ]
    );
}
