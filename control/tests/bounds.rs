//! Control's inputs are bounded: a file over its size limit, a directory over its object limit
//! and a document whose YAML aliases expand past its budget are each refused with an error naming
//! the file, the whole directory with them, in bounded memory and time; and fields Sluice never
//! reads are not built into values, however large.
//!
//! `allocation_counter` installs a counting global allocator in this test binary: the peaks below
//! are the bytes the load held at most, measured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_control::load::{Limits, Loaded, load_dir_within, load_str};

struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        let p = std::env::temp_dir().join(format!("sluice-bounds-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Temp(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let f = self.0.join(name);
        std::fs::write(&f, text).unwrap();
        f
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 198.19.0.10\n  ports: [{port: 80}]\n";

/// Loads `dir` within `limits`; returns what loaded, the peak bytes held and the time taken.
fn measured(dir: &Path, limits: &Limits) -> (Loaded, u64, Duration) {
    let started = Instant::now();
    let mut loaded = None;
    let info = allocation_counter::measure(|| loaded = Some(load_dir_within(dir, limits).unwrap()));
    (loaded.unwrap(), info.bytes_max, started.elapsed())
}

/// The one error about `file`, as printed.
fn error_about(l: &Loaded, file: &Path) -> String {
    let about: Vec<String> = l.errors.iter().filter(|e| e.file == file).map(ToString::to_string).collect();
    assert_eq!(about.len(), 1, "{:#?}", l.errors);
    about[0].clone()
}

/// One anchored list of `n` items aliased `n` times: `n`² nodes once expanded.
fn alias_bomb(n: usize) -> String {
    let items = vec!["x"; n].join(",");
    let aliases = vec!["*a"; n].join(",");
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bomb\n  ownerReferences: &a [{items}]\n  managedFields: [{aliases}]\nspec:\n  clusterIP: 198.19.0.9\n  ports: [{{port: 80}}]\n"
    )
}

/// 10,000 × 10,000 = 100 million nodes: before the bound, 53 s and 1.5 GB in a debug build, then
/// an abort when memory ran out.
#[test]
fn an_alias_bomb_is_refused_naming_the_file_in_bounded_memory_and_time() {
    let dir = Temp::new("bomb");
    dir.write("a-web.yaml", SERVICE);
    let bomb = dir.write("bomb.yaml", &alias_bomb(10_000));
    let (l, peak, took) = measured(&dir.0, &Limits::default());
    let e = error_about(&l, &bomb);
    assert!(
        e.starts_with(&format!("{}:1: the document's YAML aliases expand it past", bomb.display())),
        "{e}"
    );
    assert!(l.incomplete, "a refused document refuses the directory");
    assert!(l.store.services.is_empty(), "nothing of an incomplete directory is kept");
    assert!(peak < 16 << 20, "{peak} bytes held at the peak");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let dir = Temp::new("size");
    dir.write("a-web.yaml", SERVICE);
    let big = dir.write("big.yaml", &format!("{}# {}\n", SERVICE.replace("web", "big"), "x".repeat(4 << 20)));
    let limits = Limits { max_file_bytes: 1 << 20, ..Limits::default() };
    let (l, peak, _) = measured(&dir.0, &limits);
    let e = error_about(&l, &big);
    assert!(e.contains("bytes, more than 1048576 (--max-manifest-bytes): refused"), "{e}");
    assert!(l.incomplete);
    assert!(peak < 1 << 20, "{peak} bytes held: the file was read");
    // At the limit, it loads.
    let limits = Limits { max_file_bytes: std::fs::metadata(&big).unwrap().len(), ..limits };
    let (l, _, _) = measured(&dir.0, &limits);
    assert!(!l.incomplete && l.errors.is_empty(), "{:#?}", l.errors);
    assert_eq!(l.store.services.len(), 2);
}

#[test]
fn a_directory_over_its_limits_is_refused_naming_the_file() {
    let dir = Temp::new("objects");
    dir.write("a.yaml", SERVICE);
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p1}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p2}\n";
    let b = dir.write("b.yaml", list);
    let c = dir.write("c.yaml", &SERVICE.replace("web", "other"));
    // a: 1 object, b: 2 more (list items count one by one), c: 1 more.
    let (l, _, _) = measured(&dir.0, &Limits { max_objects: 3, ..Limits::default() });
    assert!(
        error_about(&l, &c).contains("more than 3 objects with this file (--max-objects)"),
        "{:?}",
        l.errors
    );
    assert!(l.incomplete);
    let (l, _, _) = measured(&dir.0, &Limits { max_objects: 4, ..Limits::default() });
    assert!(!l.incomplete && l.errors.is_empty(), "{:#?}", l.errors);
    // Files count too, before any is read.
    let (l, _, _) = measured(&dir.0, &Limits { max_objects: 2, ..Limits::default() });
    assert!(l.incomplete && l.errors[0].message.contains("more than 2 manifest files"), "{:?}", l.errors);
    // The directory's bytes, the file that passes them named.
    let two = (SERVICE.len() + list.len()) as u64;
    let (l, _, _) = measured(&dir.0, &Limits { max_directory_bytes: two, ..Limits::default() });
    assert!(error_about(&l, &c).contains("(--max-directory-bytes): refused"), "{:?}", l.errors);
    let _ = b;
    assert!(l.incomplete);
}

/// A blob Sluice does not read — managed fields, a workload's status, a list's items' managed
/// fields — is skipped as it is parsed. The YAML crate holds a document's events while it parses
/// it (some 60 bytes for each byte of this text): that is the floor, measured here by parsing the
/// text into nothing. Built into values, the blob's 60,000 small entries would take 60% more
/// again; skipped, the load holds no more than the floor and a quarter.
#[test]
fn fields_never_read_are_not_built() {
    let blob: String = (0..60_000).map(|i| format!("  - {{m: {}}}\n", i % 10)).collect();
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {{a: b}}\n  managedFields:\n{blob}spec:\n  clusterIP: 198.19.0.10\n  ports: [{{port: 80}}]\n"
    );
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  managedFields:\n{blob}spec:\n  template:\n    spec:\n      containers: [{{name: c}}]\nstatus:\n  conditions:\n{blob}"
    );
    let item = service.replace("\n", "\n  ").replace("  name: web", "  name: listed");
    let list = format!("apiVersion: v1\nkind: List\nitems:\n- {}\n", item.trim_end());
    for (what, text) in [("Service", &service), ("Deployment", &deployment), ("List", &list)] {
        let floor = allocation_counter::measure(|| {
            serde_norway::from_str::<serde::de::IgnoredAny>(text).unwrap();
        });
        let mut l = Loaded::default();
        let info = allocation_counter::measure(|| load_str(Path::new("blob.yaml"), text, &mut l));
        assert!(l.errors.is_empty(), "{what}: {:#?}", l.errors);
        assert!(
            info.bytes_max < floor.bytes_max / 4 * 5,
            "{what}: {} bytes held, reading its {} bytes of text takes {}",
            info.bytes_max,
            text.len(),
            floor.bytes_max
        );
    }
}
