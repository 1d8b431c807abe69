//! The incremental compiler against the full one: after any sequence of Pod and EndpointSlice
//! changes made through the store's methods, `Compiler::compile` with the recorded changes gives
//! exactly what `compile` gives from scratch, and the entries it says changed are exactly those
//! that differ from the previous table.

use std::path::Path;

use proptest::prelude::*;
use sluice_control::checked::{EndpointSlice, Pod};
use sluice_control::compile::{Compiler, Config, compile};
use sluice_control::load::{Loaded, load_str};
use sluice_control::store::{Changes, Located, Store};
use sluice_model::service::Generation;

fn load(yaml: &str) -> Loaded {
    let mut loaded = Loaded::default();
    load_str(Path::new("inline.yaml"), yaml, &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded
}

/// Services in two namespaces: selectors of one and two labels, a named target port, a
/// dual-stack one, `externalTrafficPolicy: Local`, and a selectorless one fed by EndpointSlices.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec: {clusterIP: 198.19.0.1, selector: {app: a0}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-front, namespace: a}
spec: {clusterIP: 198.19.0.2, selector: {app: a0, tier: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: a}
spec:
  clusterIP: 198.19.0.3
  clusterIPs: [198.19.0.3, "2001:db8:19::3"]
  ipFamilyPolicy: PreferDualStack
  selector: {app: a1}
  ports: [{port: 5432, protocol: TCP, name: pg}, {port: 53, protocol: UDP, name: dns}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  clusterIP: 198.19.0.4
  selector: {app: a0}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: sliced, namespace: a}
spec: {clusterIP: 198.19.0.5, ports: [{port: 80, name: http}]}
"#;

fn cfg() -> Config {
    Config {
        node_name: Some("gw".into()),
        node_addrs: vec!["198.18.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        snat: vec![],
        load_balancer_class: None,
        external_ip_ranges: vec![],
        ingress_nginx_class: false,
    }
}

#[derive(Debug, Clone)]
enum Op {
    PutPod { name: u8, ns: bool, app: u8, tier: u8, ready: bool, node: bool, v6: bool },
    RemovePod { name: u8, ns: bool },
    PutSlice { name: u8, ends: Vec<(u8, bool)> },
    RemoveSlice { name: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, any::<bool>(), 0u8..3, 0u8..3, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(name, ns, app, tier, ready, node, v6)| Op::PutPod { name, ns, app, tier, ready, node, v6 }
        ),
        2 => (0u8..10, any::<bool>()).prop_map(|(name, ns)| Op::RemovePod { name, ns }),
        1 => (0u8..3, proptest::collection::vec((1u8..20, any::<bool>()), 0..4))
            .prop_map(|(name, ends)| Op::PutSlice { name, ends }),
        1 => (0u8..3).prop_map(|name| Op::RemoveSlice { name }),
    ]
}

fn pod(name: u8, ns: bool, app: u8, tier: u8, ready: bool, node: bool, v6: bool) -> Located<Pod> {
    let ns = if ns { "b" } else { "a" };
    let tier = ["web", "db", "none"][tier as usize];
    let ip = format!("198.18.1.{}", name + 10);
    let ips = if v6 {
        format!("[{{ip: \"{ip}\"}}, {{ip: \"2001:db8:1::{}\"}}]", name + 10)
    } else {
        format!("[{{ip: \"{ip}\"}}]")
    };
    let node = if node { "gw" } else { "other" };
    let status = if ready { "True" } else { "False" };
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{name}, namespace: {ns}, labels: {{app: a{app}, tier: {tier}}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: i, ports: [{{name: http, containerPort: 8081}}]}}]\nstatus:\n  podIP: \"{ip}\"\n  podIPs: {ips}\n  conditions: [{{type: Ready, status: \"{status}\"}}]\n"
    );
    load(&yaml).store.pods.remove(0)
}

fn slice(name: u8, ends: &[(u8, bool)]) -> Located<EndpointSlice> {
    let mut yaml = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: sliced-{name}, namespace: a, labels: {{kubernetes.io/service-name: sliced}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n"
    );
    if ends.is_empty() {
        yaml = yaml.replace("endpoints:\n", "endpoints: []\n");
    }
    for (last, ready) in ends {
        yaml.push_str(&format!("  - addresses: [\"198.18.2.{last}\"]\n    conditions: {{ready: {ready}}}\n"));
    }
    load(&yaml).store.endpoint_slices.remove(0)
}

fn apply(store: &mut Store, op: &Op, changes: &mut Changes) {
    match op {
        &Op::PutPod { name, ns, app, tier, ready, node, v6 } => {
            store.put_pod(pod(name, ns, app, tier, ready, node, v6), changes)
        }
        &Op::RemovePod { name, ns } => {
            store.remove_pod(if ns { "b" } else { "a" }, &format!("p{name}"), changes);
        }
        Op::PutSlice { name, ends } => store.put_endpoint_slice(slice(*name, ends), changes),
        Op::RemoveSlice { name } => {
            store.remove_endpoint_slice("a", &format!("sliced-{name}"), changes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn incremental_compiles_equal_full_ones(
        initial in proptest::collection::vec(op(), 0..12),
        steps in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..12),
    ) {
        let mut store = load(SERVICES).store;
        let mut ignored = Changes::default();
        for o in &initial {
            apply(&mut store, o, &mut ignored);
        }
        let mut compiler = Compiler::new();
        let first = compiler.compile(&store, &cfg(), Generation(1), &Changes::everything()).clone();
        prop_assert_eq!(&first.spec, &compile(&store, &cfg(), Generation(1)).spec);
        let mut previous = first.spec;
        for (g, step) in steps.iter().enumerate() {
            let generation = Generation(g as u64 + 2);
            let mut changes = Changes::default();
            for o in step {
                apply(&mut store, o, &mut changes);
            }
            let full = compile(&store, &cfg(), generation);
            let inc = compiler.compile(&store, &cfg(), generation, &changes);
            prop_assert_eq!(&inc.spec, &full.spec);
            prop_assert_eq!(&inc.notes, &full.notes);
            if let Some(changed) = &inc.changed {
                let differ: Vec<usize> = (0..full.spec.services.len())
                    .filter(|&i| previous.services.get(i) != Some(&full.spec.services[i]))
                    .collect();
                let mut said = changed.clone();
                said.sort_unstable();
                prop_assert_eq!(said, differ);
            }
            previous = full.spec;
        }
    }
}
