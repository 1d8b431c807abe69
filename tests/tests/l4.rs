//! Namespace tests of the L4 data plane: real clients, a real gateway on AF_XDP, real servers.
//! Each starts control on manifests from `deploy/examples/` (needs root; see the crate docs).

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_sandbox::{Backend, GW_V4, Sandbox, example, require_root};

/// A sandbox with `backends`, control on `examples`, and the gateway; `None` when skipped.
fn up(test: &str, backends: &[Backend], examples: &[PathBuf]) -> Option<Sandbox> {
    if !require_root(test) {
        return None;
    }
    let mut sb = Sandbox::new(backends).expect("sandbox");
    sb.set_manifests(examples, &[]).expect("manifests");
    sb.start_control().expect("control");
    sb.start_gateway(&[]).expect("gateway");
    Some(sb)
}

/// Who answered `n` GETs of `url`; panics on any failure.
fn spread(sb: &Sandbox, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let body = sb.get(url).unwrap_or_else(|e| panic!("request {i}: {e}\ngateway log:\n{}", sb.log("gateway")));
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

fn petclinic() -> Vec<Backend> {
    (1..=3).map(|i| Backend::http(&format!("petclinic-{i}"), &format!("198.18.1.{i}"), &[8080])).collect()
}

#[test]
fn nodeport_spreads_tcp_over_every_backend() {
    let Some(sb) = up("nodeport_spreads_tcp_over_every_backend", &petclinic(), &[example("nodeport")]) else {
        return;
    };
    let seen = spread(&sb, &format!("http://{GW_V4}:31080/"), 30);
    assert_eq!(seen.len(), 3, "every backend answers: {seen:?}");
    assert!(sb.wait_counter("new_flows", 30) >= 30, "{}", sb.metrics());
}
