//! `benches/run control`: the control side of the table at scale — 10,000 Services and 100,000
//! endpoints compiled into a table, encoded and published through the shared-memory file; one
//! endpoint changed and republished; a gateway reader's per-batch check and its adoption.
//!
//! `compile_publish_ms` starts from the Kubernetes objects in control's stores (10,000 Services
//! selecting 100,000 Pods): `compile()`, building the table, encoding and publishing it; one
//! change is one Pod's readiness flipping. Parsing the same objects from YAML is timed apart,
//! for information. Each figure is the median of several runs, with the range.
#![forbid(unsafe_code)]

use std::time::Instant;

use std::path::Path;

use sluice_control::compile::{Compiler, Config};
use sluice_control::load::{Loaded, load_str};
use sluice_control::store::Changes;
use sluice_model::service::*;
use sluice_model::{Addr, image};
use sluice_table::{Geometry, Publisher, Reader, Refresh};

const SERVICES: usize = 10_000;
const ENDPOINTS_PER_SERVICE: usize = 10;
const RUNS: usize = 5;

fn addr(base: u32, i: usize) -> Addr {
    Addr::from_v4((base + i as u32).to_be_bytes())
}

/// The objects as YAML: 10,000 ClusterIP Services (198.19.0.0/16) each selecting its 10 Pods
/// (198.18.0.0/15, past the gateway's own /24), Ready.
fn manifests() -> String {
    let mut y = String::with_capacity(64 << 20);
    for s in 0..SERVICES {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\n  namespace: ns-{}\nspec:\n  clusterIP: {}\n  selector:\n    app: svc-{s}\n  ports:\n    - port: 80\n      targetPort: 8080\n",
            s % 100,
            addr(0xc613_0000, s + 1).ip()
        ));
        for e in 0..ENDPOINTS_PER_SERVICE {
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: svc-{s}-{e}\n  namespace: ns-{}\n  labels:\n    app: svc-{s}\nspec:\n  containers:\n    - name: app\n      image: app\nstatus:\n  podIP: {}\n  conditions:\n    - type: Ready\n      status: \"True\"\n",
                s % 100,
                addr(0xc612_0100, s * ENDPOINTS_PER_SERVICE + e).ip()
            ));
        }
    }
    y
}

fn config() -> Config {
    Config {
        node_name: None,
        node_addrs: vec![[198, 18, 0, 1].into()],
        snat: vec![],
        load_balancer_class: None,
        external_ip_ranges: vec![],
        ingress_nginx_class: false,
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let path = std::env::temp_dir().join(format!("sluice-bench-control-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut publisher =
        Publisher::create(&path, Geometry { slots: 3, slot_bytes: 64 << 20 }).expect("table file");
    let mut reader = Reader::open(&path).expect("reader");
    // Load the objects (YAML → stores), for information.
    let yaml = manifests();
    let t0 = Instant::now();
    let mut loaded = Loaded::default();
    load_str(Path::new("bench.yaml"), &yaml, &mut loaded);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    drop(yaml);
    let mut store = loaded.store;
    assert_eq!((store.services.len(), store.pods.len()), (SERVICES, SERVICES * ENDPOINTS_PER_SERVICE));

    // compile() from the stores + build every Maglev table + encode + publish.
    let mut full = Vec::new();
    let mut image_bytes = 0;
    let mut table = None;
    let mut compiler = Compiler::new();
    for run in 0..RUNS as u64 {
        let t0 = Instant::now();
        let compiled = compiler.compile(&store, &config(), Generation(run + 1), &Changes::everything());
        let t = ServiceTable::build(&compiled.spec).expect("builds");
        let img = image::encode(&t);
        publisher.publish(&img).expect("publishes");
        full.push(t0.elapsed().as_secs_f64() * 1e3);
        image_bytes = img.len();
        assert_eq!(t.services().len(), SERVICES);
        table = Some(t);
        reader.refresh();
    }
    let mut previous = table.expect("built");

    // One Pod's readiness flips, as a watch event would bring it: the store takes the new Pod
    // and records the change; only the Services selecting it are compiled again; the table is
    // updated in place for the entries that changed (Maglev rebuilt for that Service alone);
    // encode; publish.
    let mut one = Vec::new();
    let mut stages = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut adopt = Vec::new();
    for run in 0..RUNS {
        let n_pods = store.pods.len();
        let mut pod = store.pods[run * 9_973 % n_pods].clone();
        pod.object.ready = !pod.object.ready;
        let t0 = Instant::now();
        let mut changes = Changes::default();
        store.put_pod(pod, &mut changes);
        let compiled = compiler.compile(&store, &config(), Generation(100 + run as u64), &changes);
        let t_compile = t0.elapsed();
        let t = &mut previous;
        let patched = match &compiled.changed {
            Some(changed) => t.update(&compiled.spec, changed).expect("valid"),
            None => false,
        };
        assert!(patched, "one Pod's readiness is a patch");
        let t_build = t0.elapsed();
        let img = image::encode(t);
        let t_encode = t0.elapsed();
        publisher.publish(&img).expect("publishes");
        let t_all = t0.elapsed();
        one.push(t_all.as_secs_f64() * 1e3);
        stages[0].push(t_compile.as_secs_f64() * 1e3);
        stages[1].push((t_build - t_compile).as_secs_f64() * 1e3);
        stages[2].push((t_encode - t_build).as_secs_f64() * 1e3);
        stages[3].push((t_all - t_encode).as_secs_f64() * 1e3);
        // A worker picking the new generation up: validate (checksum) and decode.
        let t1 = Instant::now();
        let Refresh::Adopted(_) = reader.refresh() else { panic!("adopted") };
        let decoded = image::decode(reader.payload().expect("payload")).expect("decodes");
        adopt.push(t1.elapsed().as_secs_f64() * 1e3);
        assert_eq!(decoded.services().len(), SERVICES);
        assert_eq!(decoded.services(), previous.services());
    }

    // A worker's per-batch check when nothing changed.
    let n = 20_000_000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(reader.refresh());
    }
    let refresh_ns = t0.elapsed().as_secs_f64() * 1e9 / f64::from(n);
    let _ = std::fs::remove_file(&path);

    let (full_ms, full_lo, full_hi) = median(full);
    let (one_ms, one_lo, one_hi) = median(one);
    let (adopt_ms, adopt_lo, adopt_hi) = median(adopt);
    let rss = peak_rss_mb();
    println!(
        "{SERVICES} Services, {} endpoints, image {:.1} MB",
        SERVICES * ENDPOINTS_PER_SERVICE,
        image_bytes as f64 / 1e6
    );
    println!("{:<44} {:>10} {:>20}", "step", "median", "range");
    println!("{:<44} {:>7.0} ms", "load the YAML (for information)", load_ms);
    println!(
        "{:<44} {:>7.1} ms {:>12.1} – {:.1} ms",
        "compile + build + encode + publish", full_ms, full_lo, full_hi
    );
    println!(
        "{:<44} {:>7.1} ms {:>12.1} – {:.1} ms",
        "one Pod's readiness flips → published", one_ms, one_lo, one_hi
    );
    for (name, v) in [
        "  compile the Services the Pod feeds",
        "  update the table (one Maglev rebuilt)",
        "  encode the image",
        "  publish (copy + checksum)",
    ]
    .iter()
    .zip(stages)
    {
        let (m, lo, hi) = median(v);
        println!("{name:<44} {m:>7.1} ms {lo:>12.1} – {hi:.1} ms");
    }
    println!(
        "{:<44} {:>7.1} ms {:>12.1} – {:.1} ms",
        "worker adopts it (checksum + decode)", adopt_ms, adopt_lo, adopt_hi
    );
    println!("{:<44} {:>7.1} ns", "worker's check per batch, nothing new", refresh_ns);
    println!("{:<44} {:>7.0} MB", "peak RSS of this process", rss.unwrap_or(f64::NAN));
    let result = serde_json::json!({
        "compile_publish_ms": full_ms,
        "one_change_ms": one_ms,
        "adopt_decode_ms": adopt_ms,
        "peak_rss_mb": rss,
        "reader_adopt_ns": refresh_ns,
        "image_mb": image_bytes as f64 / 1e6,
        "load_yaml_ms": load_ms,
    });
    println!("RESULT {result}");
}
