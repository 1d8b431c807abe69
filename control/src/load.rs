//! Reading a directory of manifests into stores, with the checks the API server would make.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file, in name order; each YAML document of a file on its
//! own. A document with a problem is reported — file, line, object, field, and the fix where one
//! is evident — and left out; every other object still loads. Kinds Sluice does not act on are
//! skipped (workloads have their pod template checked first: a typo there is still a typo).
//!
//! Defaults are applied as the API server's `SetDefaults_Service` does (`KUBERNETES.md` §1.3):
//! `type: ClusterIP`, port `protocol: TCP`, `targetPort` = `port`, `sessionAffinity: None` and a
//! 10800 s timeout for `ClientIP`, `externalTrafficPolicy: Cluster` for externally reachable
//! Services.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::Value;

use crate::objects::*;

mod list;

/// One problem with one object (or document) of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based) the problem is at, or the document starts at.
    pub line: usize,
    /// `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// The field path (`spec.ports[0].nodePort`), when the problem is a field.
    pub field: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(o) = &self.object {
            write!(f, "{o}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// A loaded object and where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The object.
    pub object: T,
    /// Its file.
    pub file: PathBuf,
    /// The line its document starts at.
    pub line: usize,
}

/// Everything loaded from a directory.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Services, defaults applied.
    pub services: Vec<Located<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Located<EndpointSlice>>,
    /// Pods.
    pub pods: Vec<Located<Pod>>,
    /// LoadBalancer address pools.
    pub pools: Vec<Located<IpAddressPool>>,
    /// v1 Endpoints (for selectorless Services without EndpointSlices).
    pub endpoints: Vec<Located<Endpoints>>,
    /// Ingresses (networking.k8s.io/v1), validated, for the L7 stage.
    pub ingresses: Vec<Located<Ingress>>,
    /// IngressClasses.
    pub ingress_classes: Vec<Located<IngressClass>>,
    /// Secrets (TLS certificates, basic-auth files).
    pub secrets: Vec<Located<Secret>>,
    /// Objects of kinds Sluice does not act on (`Kind namespace/name`), skipped.
    pub skipped: Vec<String>,
}

/// A store and the problems met building it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// What loaded.
    pub store: Store,
    /// What did not, and why.
    pub errors: Vec<ManifestError>,
}

/// Loads every manifest file of `dir` (not recursive). Fails only if the directory itself
/// cannot be read; problems with files and objects are in [`Loaded::errors`].
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    let mut loaded = Loaded::default();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => load_str(&f, &text, &mut loaded),
            Err(e) => loaded.errors.push(ManifestError {
                file: f.clone(),
                line: 1,
                object: None,
                field: None,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    check_duplicates(&mut loaded);
    Ok(loaded)
}

/// Loads the documents of one file's text into `loaded`. A `kind: List` document (what
/// `kubectl get -o yaml` and `-o json` print) and a typed list (`ServiceList`, as the API serves
/// it) are read item by item, each item located by its own first line.
pub fn load_str(file: &Path, text: &str, loaded: &mut Loaded) {
    for (start, doc) in documents(text) {
        match list::items(&doc) {
            None => load_document(file, start, &doc, None, loaded),
            Some(Ok(list)) => {
                for item in list.items {
                    let implied = list.item_kind.as_ref().map(|k| (k.as_str(), list.api_version.as_str()));
                    load_document(file, start + item.line, &item.text, implied, loaded);
                }
            }
            Some(Err((line, message))) => loaded.errors.push(ManifestError {
                file: file.to_owned(),
                line: start + line,
                object: Some("List".into()),
                field: Some("items".into()),
                message,
            }),
        }
    }
}

/// Splits a YAML stream at its `---` lines; yields (first line, text) of each non-empty document.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let (mut start, mut cur) = (1usize, String::new());
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t.starts_with("---\t") {
            docs.push((start, std::mem::take(&mut cur)));
            start = i + 2;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    docs.push((start, cur));
    docs.into_iter()
        .filter(|(_, d)| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .collect()
}

#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<PeekMeta>,
}

#[derive(Deserialize)]
struct PeekMeta {
    name: Option<String>,
    namespace: Option<String>,
}

/// Loads one object's document. `implied` is the (kind, apiVersion) of a typed list's items,
/// which do not state their own.
fn load_document(file: &Path, start: usize, doc: &str, implied: Option<(&str, &str)>, loaded: &mut Loaded) {
    let err = |line: usize, object: Option<String>, field: Option<String>, message: String| ManifestError {
        file: file.to_owned(),
        line,
        object,
        field,
        message,
    };
    if let Some((i, _)) =
        doc.lines().enumerate().find(|(_, l)| l.chars().take_while(|c| c.is_whitespace()).any(|c| c == '\t'))
    {
        loaded.errors.push(err(
            start + i,
            None,
            None,
            "indented with a tab: YAML allows only spaces for indentation (replace each tab with spaces)"
                .into(),
        ));
        return;
    }
    let peek: Peek = match serde_norway::from_str(doc) {
        Ok(p) => p,
        Err(e) => {
            let line = e.location().map_or(start, |l| start + l.line() - 1);
            loaded.errors.push(err(
                line,
                None,
                None,
                format!("not valid YAML: {}", strip_location(&e.to_string())),
            ));
            return;
        }
    };
    let kind = peek.kind.or(implied.map(|(k, _)| k.to_owned())).unwrap_or_default();
    let api = peek.api_version.or(implied.map(|(_, a)| a.to_owned())).unwrap_or_default();
    if kind == "List" || (kind.ends_with("List") && implied.is_some()) {
        loaded.errors.push(err(
            start,
            Some(kind),
            Some("kind".into()),
            "a list inside a list is not read".into(),
        ));
        return;
    }
    let (ns, name) = peek.metadata.map_or((None, None), |m| (m.namespace, m.name));
    let object = Some(format!(
        "{} {}/{}",
        if kind.is_empty() { "object" } else { &kind },
        ns.as_deref().unwrap_or("default"),
        name.as_deref().unwrap_or("?")
    ));
    if kind.is_empty() || api.is_empty() {
        let missing = if kind.is_empty() { "kind" } else { "apiVersion" };
        loaded.errors.push(err(start, object, Some(missing.into()), "required field is missing".into()));
        return;
    }
    if name.as_deref().unwrap_or("").is_empty() {
        loaded.errors.push(err(
            start,
            object,
            Some("metadata.name".into()),
            "required field is missing".into(),
        ));
        return;
    }
    let want = match kind.as_str() {
        "Service" | "Pod" | "Endpoints" | "Secret" => Some("v1"),
        "Ingress" | "IngressClass" if api != "extensions/v1beta1" && api != "networking.k8s.io/v1beta1" => {
            Some("networking.k8s.io/v1")
        }
        "EndpointSlice" => Some("discovery.k8s.io/v1"),
        "IPAddressPool" => Some("metallb.io/v1beta1"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => Some("apps/v1"),
        "Ingress" if api == "extensions/v1beta1" || api == "networking.k8s.io/v1beta1" => {
            loaded.errors.push(err(
                start,
                object,
                Some("apiVersion".into()),
                format!(
                    "Ingress {api} was removed in Kubernetes 1.22; use networking.k8s.io/v1, where each path \
                     names a pathType and its backend is `service: {{name: NAME, port: {{number: PORT}}}}` \
                     instead of `serviceName`/`servicePort`"
                ),
            ));
            return;
        }
        _ => None,
    };
    if let Some(want) = want
        && api != want
    {
        let hint = if api.eq_ignore_ascii_case(want) { " (API versions are lowercase)" } else { "" };
        loaded.errors.push(err(
            line_of(doc, start, "apiVersion"),
            object,
            Some("apiVersion".into()),
            format!("{api:?} is not an API version of {kind}; use {want:?}{hint}"),
        ));
        return;
    }
    let label = object.clone().unwrap_or_default();
    let mut problems = Vec::new();
    match kind.as_str() {
        "Service" => {
            if let Some(mut s) = parse::<Service>(file, start, doc, &object, &mut loaded.errors) {
                validate_service(&mut s, &mut problems);
                push(loaded, problems, file, start, doc, &object, |st| &mut st.services, s);
            }
        }
        "EndpointSlice" => {
            if let Some(s) = parse::<EndpointSlice>(file, start, doc, &object, &mut loaded.errors) {
                validate_slice(&s, &mut problems);
                push(loaded, problems, file, start, doc, &object, |st| &mut st.endpoint_slices, s);
            }
        }
        "Pod" => {
            if let Some(p) = parse::<Pod>(file, start, doc, &object, &mut loaded.errors) {
                check_pod_spec("spec", &p.spec, &mut problems);
                push(loaded, problems, file, start, doc, &object, |st| &mut st.pods, p);
            }
        }
        "IPAddressPool" => {
            if let Some(p) = parse::<IpAddressPool>(file, start, doc, &object, &mut loaded.errors) {
                for (i, a) in p.spec.addresses.iter().enumerate() {
                    if crate::compile::parse_range(a).is_none() {
                        problems.push((
                            format!("spec.addresses[{i}]"),
                            format!("{a:?} is not an address, a CIDR (198.18.100.0/24) or a range (198.18.100.10-198.18.100.20)"),
                        ));
                    }
                }
                push(loaded, problems, file, start, doc, &object, |st| &mut st.pools, p);
            }
        }
        "Endpoints" => {
            if let Some(e) = parse::<Endpoints>(file, start, doc, &object, &mut loaded.errors) {
                for (i, sub) in e.subsets.iter().enumerate() {
                    for (field, list) in
                        [("addresses", &sub.addresses), ("notReadyAddresses", &sub.not_ready_addresses)]
                    {
                        for (j, a) in list.iter().enumerate() {
                            if a.ip.parse::<IpAddr>().is_err() {
                                problems.push((
                                    format!("subsets[{i}].{field}[{j}].ip"),
                                    format!("{:?} is not an IP address", a.ip),
                                ));
                            }
                        }
                    }
                }
                push(loaded, problems, file, start, doc, &object, |st| &mut st.endpoints, e);
            }
        }
        "Ingress" => {
            if let Some(i) = parse::<Ingress>(file, start, doc, &object, &mut loaded.errors) {
                validate_ingress(&i, &mut problems);
                push(loaded, problems, file, start, doc, &object, |st| &mut st.ingresses, i);
            }
        }
        "IngressClass" => {
            if let Some(c) = parse::<IngressClass>(file, start, doc, &object, &mut loaded.errors) {
                push(loaded, problems, file, start, doc, &object, |st| &mut st.ingress_classes, c);
            }
        }
        "Secret" => {
            if let Some(mut sec) = parse::<Secret>(file, start, doc, &object, &mut loaded.errors) {
                validate_secret(&mut sec, &mut problems);
                push(loaded, problems, file, start, doc, &object, |st| &mut st.secrets, sec);
            }
        }
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            // Not used by Sluice, but its pod template is a PodSpec: check it.
            if let Ok(v) = serde_norway::from_str::<Value>(doc)
                && let Some(Value::Mapping(spec)) =
                    v.get("spec").and_then(|s| s.get("template")).and_then(|t| t.get("spec"))
            {
                let spec: BTreeMap<String, Value> =
                    spec.iter().filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v.clone()))).collect();
                check_pod_spec("spec.template.spec", &spec, &mut problems);
            }
            report(&mut loaded.errors, problems.clone(), file, start, doc, &object);
            if problems.is_empty() {
                loaded.store.skipped.push(label);
            }
        }
        _ => loaded.store.skipped.push(label),
    }
}

#[allow(clippy::too_many_arguments)]
fn push<T>(
    loaded: &mut Loaded,
    problems: Vec<(String, String)>,
    file: &Path,
    start: usize,
    doc: &str,
    object: &Option<String>,
    list: impl Fn(&mut Store) -> &mut Vec<Located<T>>,
    value: T,
) {
    if problems.is_empty() {
        list(&mut loaded.store).push(Located { object: value, file: file.to_owned(), line: start });
    } else {
        report(&mut loaded.errors, problems, file, start, doc, object);
    }
}

fn report(
    errors: &mut Vec<ManifestError>,
    problems: Vec<(String, String)>,
    file: &Path,
    start: usize,
    doc: &str,
    object: &Option<String>,
) {
    for (field, message) in problems {
        errors.push(ManifestError {
            file: file.to_owned(),
            line: field_line(doc, start, &field),
            object: object.clone(),
            field: Some(field),
            message,
        });
    }
}

/// The line a field path points at: its own key's line (inside a list, `spec.ports[1].port`, the
/// key's occurrence in that item), or — for a missing field — the line of the nearest enclosing
/// key that is there.
fn field_line(doc: &str, start: usize, field: &str) -> usize {
    let segments: Vec<&str> = field.split('.').collect();
    for depth in (1..=segments.len()).rev() {
        let path = segments[..depth].join(".");
        let key = segments[depth - 1].split('[').next().unwrap_or("");
        let nth = path
            .rsplit_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .filter(|_| depth == segments.len())
            .unwrap_or(0);
        if has_key(doc, key) {
            return line_of_nth(doc, start, key, nth);
        }
    }
    start
}

fn has_key(doc: &str, key: &str) -> bool {
    !key.is_empty() && doc.lines().any(|l| states_key(l, key))
}

/// Whether a line states `key:` (YAML, also as a list item's first key) or `"key":` (JSON).
fn states_key(line: &str, key: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    let (t, quoted) = match t.strip_prefix('"') {
        Some(t) => (t, true),
        None => (t, false),
    };
    let Some(rest) = t.strip_prefix(key) else { return false };
    let rest = if quoted { rest.strip_prefix('"').unwrap_or("!") } else { rest };
    rest.trim_start().starts_with(':')
}

/// The line of the first `key:` in the document (for problems found after parsing).
fn line_of(doc: &str, start: usize, key: &str) -> usize {
    line_of_nth(doc, start, key, 0)
}

/// The line of the `nth` (0-based) `key:` in the document, else of the first, else the
/// document's start. Best effort for list items: right when every item states the key.
fn line_of_nth(doc: &str, start: usize, key: &str, nth: usize) -> usize {
    let lines: Vec<usize> =
        doc.lines().enumerate().filter(|(_, l)| states_key(l, key)).map(|(i, _)| start + i).collect();
    lines.get(nth).or(lines.first()).copied().unwrap_or(start)
}

fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Parses a document strictly, turning serde's error into a [`ManifestError`].
fn parse<T: DeserializeOwned>(
    file: &Path,
    start: usize,
    doc: &str,
    object: &Option<String>,
    errors: &mut Vec<ManifestError>,
) -> Option<T> {
    match serde_norway::from_str::<T>(doc) {
        Ok(v) => Some(v),
        Err(e) => {
            let line = e.location().map_or(start, |l| start + l.line() - 1);
            let msg = strip_location(&e.to_string());
            // "spec.ports[0]: invalid type…" or "spec: unknown field `x`, expected…"
            let (path, rest) = match msg.split_once(": ") {
                Some((p, r)) if !p.contains(' ') => (Some(p.to_owned()), r.to_owned()),
                _ => (None, msg.clone()),
            };
            let (field, message) = match unknown_field(&rest) {
                Some((name, expected)) => {
                    let field = match &path {
                        Some(p) => format!("{p}.{name}"),
                        None => name.clone(),
                    };
                    let hint = suggest(&name, expected.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    (Some(field), format!("unknown field{hint}"))
                }
                None => (path, rest),
            };
            errors.push(ManifestError {
                file: file.to_owned(),
                line,
                object: object.clone(),
                field,
                message,
            });
            None
        }
    }
}

/// Reads serde's "unknown field `x`, expected `a` or `b`" / "expected one of `a`, `b`".
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((name.to_owned(), expected))
}

/// The closest of `candidates` to a misspelt `name`, if any is close enough to be what was meant.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    // Close in spelling, or a prefix of the name (`serviceName` for `service`).
    candidates
        .map(|c| {
            let cl = c.to_ascii_lowercase();
            let d = if cl.len() >= 4 && lower.starts_with(&cl) { 1 } else { edit_distance(&lower, &cl) };
            (d, c)
        })
        .filter(|(d, c)| *d <= 2.max(c.len().min(name.len()) / 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown_names(
    at: &str,
    keys: impl Iterator<Item = String>,
    known: &[&str],
    problems: &mut Vec<(String, String)>,
) {
    for k in keys {
        if !known.contains(&k.as_str()) {
            let hint = suggest(&k, known.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            problems.push((format!("{at}.{k}"), format!("unknown field{hint}")));
        }
    }
}

/// Checks a PodSpec's field names, and its containers' and their ports'.
fn check_pod_spec(at: &str, spec: &BTreeMap<String, Value>, problems: &mut Vec<(String, String)>) {
    unknown_names(at, spec.keys().cloned(), POD_SPEC_FIELDS, problems);
    if let Some(Value::Sequence(cs)) = spec.get("containers") {
        for (i, c) in cs.iter().enumerate() {
            let Value::Mapping(c) = c else { continue };
            let keys = c.keys().filter_map(|k| k.as_str().map(str::to_owned));
            unknown_names(&format!("{at}.containers[{i}]"), keys, CONTAINER_FIELDS, problems);
            if let Some(Value::Sequence(ps)) = c.get("ports") {
                for (j, p) in ps.iter().enumerate() {
                    let Value::Mapping(p) = p else { continue };
                    let keys = p.keys().filter_map(|k| k.as_str().map(str::to_owned));
                    unknown_names(
                        &format!("{at}.containers[{i}].ports[{j}]"),
                        keys,
                        CONTAINER_PORT_FIELDS,
                        problems,
                    );
                }
            }
        }
    }
}

/// The NodePort range (`--service-node-port-range` default).
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30_000..=32_767;

fn one_of(at: &str, value: &str, allowed: &[&str], problems: &mut Vec<(String, String)>) {
    if !allowed.contains(&value) {
        let hint = suggest(value, allowed.iter().copied())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        problems.push((at.into(), format!("{value:?} is not one of {}{hint}", allowed.join(", "))));
    }
}

/// Validates a Service as the API server would and applies its defaults.
fn validate_service(s: &mut Service, problems: &mut Vec<(String, String)>) {
    let spec = &mut s.spec;
    let ty = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    one_of("spec.type", &ty, &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"], problems);
    if ty == "ExternalName" {
        return;
    }
    let external = ty == "NodePort" || ty == "LoadBalancer";
    if let Some(ip) = &spec.cluster_ip
        && !ip.is_empty()
        && ip != "None"
        && ip.parse::<IpAddr>().is_err()
    {
        problems.push((
            "spec.clusterIP".into(),
            format!("{ip:?} is not an IP address (or \"None\" for a headless Service)"),
        ));
    }
    for (i, ip) in spec.external_ips.iter().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            problems.push((format!("spec.externalIPs[{i}]"), format!("{ip:?} is not an IP address")));
        }
    }
    if let Some(ip) = &spec.load_balancer_ip
        && !ip.is_empty()
        && ip.parse::<IpAddr>().is_err()
    {
        problems.push(("spec.loadBalancerIP".into(), format!("{ip:?} is not an IP address")));
    }
    let affinity = spec.session_affinity.get_or_insert_with(|| "None".into()).clone();
    one_of("spec.sessionAffinity", &affinity, &["None", "ClientIP"], problems);
    if affinity == "ClientIP" {
        let t = spec
            .session_affinity_config
            .get_or_insert(SessionAffinityConfig { client_ip: None })
            .client_ip
            .get_or_insert(ClientIpConfig { timeout_seconds: None })
            .timeout_seconds
            .get_or_insert(10_800);
        if !(1..=86_400).contains(t) {
            problems.push((
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds".into(),
                format!("{t} is outside 1..=86400 seconds"),
            ));
        }
    } else {
        spec.session_affinity_config = None;
    }
    if external {
        let etp = spec.external_traffic_policy.get_or_insert_with(|| "Cluster".into()).clone();
        one_of("spec.externalTrafficPolicy", &etp, &["Cluster", "Local"], problems);
    } else if spec.external_traffic_policy.is_some() {
        problems.push((
            "spec.externalTrafficPolicy".into(),
            format!("applies only to NodePort and LoadBalancer Services, not {ty}"),
        ));
    }
    if let Some(v) = s.metadata.annotations.get(crate::compile::SCHEDULER_ANNOTATION) {
        let names: Vec<&str> = sluice_model::service::Scheduler::ALL.iter().map(|(n, _)| *n).collect();
        one_of(
            &format!("metadata.annotations[{}]", crate::compile::SCHEDULER_ANNOTATION),
            v,
            &names,
            problems,
        );
    }
    let multi = spec.ports.len() > 1;
    let mut seen: BTreeMap<(i64, String), usize> = BTreeMap::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in spec.ports.iter_mut().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let proto = p.protocol.get_or_insert_with(|| "TCP".into()).clone();
        one_of(&at("protocol"), &proto, &["TCP", "UDP", "SCTP"], problems);
        if !(1..=65_535).contains(&p.port) {
            problems.push((at("port"), format!("{} is not a port (1..=65535)", p.port)));
        }
        match p.target_port.get_or_insert(IntOrString::Int(p.port)) {
            IntOrString::Int(t) if !(1..=65_535).contains(t) => {
                problems.push((at("targetPort"), format!("{t} is not a port (1..=65535)")));
            }
            IntOrString::Str(n) if n.is_empty() => {
                problems.push((at("targetPort"), "an empty port name".into()))
            }
            _ => {}
        }
        if let Some(np) = p.node_port {
            if !external {
                problems.push((
                    at("nodePort"),
                    format!("a {ty} Service has no node ports; use type NodePort or LoadBalancer"),
                ));
            } else if !NODE_PORTS.contains(&np) {
                problems.push((at("nodePort"), format!("{np} is outside the node port range 30000-32767")));
            }
        }
        if let Some(j) = seen.insert((p.port, proto.clone()), i) {
            problems.push((at("port"), format!("duplicate port {}/{proto} (also spec.ports[{j}])", p.port)));
        }
        match &p.name {
            Some(n) => {
                if let Some(j) = names.insert(n.clone(), i) {
                    problems.push((at("name"), format!("duplicate port name {n:?} (also spec.ports[{j}])")));
                }
            }
            None if multi => {
                problems.push((at("name"), "required when a Service has more than one port".into()))
            }
            None => {}
        }
    }
    let mut node_ports: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if let (Some(np), Some(proto)) = (p.node_port, &p.protocol)
            && let Some(j) = node_ports.insert((np, proto.clone()), i)
        {
            problems.push((
                format!("spec.ports[{i}].nodePort"),
                format!("duplicate node port {np}/{proto} (also spec.ports[{j}])"),
            ));
        }
    }
}

/// Validates an Ingress as the API server would (networking/v1 validation).
fn validate_ingress(ing: &Ingress, problems: &mut Vec<(String, String)>) {
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        problems.push(("spec".into(), "an Ingress needs rules or a defaultBackend".into()));
    }
    let backend = |at: String, b: &IngressBackend, problems: &mut Vec<(String, String)>| match (
        &b.service,
        &b.resource,
    ) {
        (Some(svc), None) => {
            match &svc.port {
                Some(ServiceBackendPort { name: Some(_), number: Some(_) }) => problems
                    .push((format!("{at}.service.port"), "give a port name or a number, not both".into())),
                Some(ServiceBackendPort { name: None, number: None }) | None => problems
                    .push((format!("{at}.service.port"), "required: `number: 8080` or `name: http`".into())),
                Some(ServiceBackendPort { number: Some(n), .. }) if !(1..=65_535).contains(n) => problems
                    .push((format!("{at}.service.port.number"), format!("{n} is not a port (1..=65535)"))),
                _ => {}
            }
        }
        (None, Some(_)) => {}
        _ => problems.push((at, "exactly one of `service` and `resource` is required".into())),
    };
    if let Some(b) = &spec.default_backend {
        backend("spec.defaultBackend".into(), b, problems);
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        if let Some(h) = &rule.host {
            if h.parse::<IpAddr>().is_ok() {
                problems.push((
                    format!("spec.rules[{i}].host"),
                    format!("{h:?}: a host must be a DNS name, not an IP address"),
                ));
            } else if h.contains('*') && h.strip_prefix("*.").is_none_or(|rest| rest.contains('*')) {
                problems.push((
                    format!("spec.rules[{i}].host"),
                    format!("{h:?}: a wildcard may only be the whole first label (*.example.com)"),
                ));
            }
        }
        for (j, p) in rule.http.iter().flat_map(|h| &h.paths).enumerate() {
            let at = format!("spec.rules[{i}].http.paths[{j}]");
            match p.path_type.as_deref() {
                None => problems.push((
                    format!("{at}.pathType"),
                    "required: Exact, Prefix or ImplementationSpecific".into(),
                )),
                Some(t) => one_of(
                    &format!("{at}.pathType"),
                    t,
                    &["Exact", "Prefix", "ImplementationSpecific"],
                    problems,
                ),
            }
            if matches!(p.path_type.as_deref(), Some("Exact" | "Prefix"))
                && !p.path.as_deref().unwrap_or("").starts_with('/')
            {
                problems
                    .push((format!("{at}.path"), "must begin with '/' for pathType Exact and Prefix".into()));
            }
            backend(format!("{at}.backend"), &p.backend, problems);
        }
    }
}

/// Whether `s` is standard base64 (the encoding of Secret `data`).
fn is_base64(s: &str) -> bool {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

/// Validates a Secret and applies the API server's default `type: Opaque`.
fn validate_secret(sec: &mut Secret, problems: &mut Vec<(String, String)>) {
    let ty = sec.type_.get_or_insert_with(|| "Opaque".into()).clone();
    for (k, v) in &sec.data {
        if !is_base64(v) {
            problems
                .push((format!("data.{k}"), "not base64 (put plain text under stringData instead)".into()));
        }
    }
    if ty == "kubernetes.io/tls" {
        for k in ["tls.crt", "tls.key"] {
            if !sec.data.contains_key(k) && !sec.string_data.contains_key(k) {
                problems.push((
                    format!("data.{k}"),
                    format!("a kubernetes.io/tls Secret needs {k} (as `kubectl create secret tls` writes)"),
                ));
            }
        }
    }
}

fn validate_slice(s: &EndpointSlice, problems: &mut Vec<(String, String)>) {
    one_of("addressType", &s.address_type, &["IPv4", "IPv6", "FQDN"], problems);
    if s.address_type != "FQDN" {
        for (i, e) in s.endpoints.iter().enumerate() {
            for (j, a) in e.addresses.iter().enumerate() {
                if a.parse::<IpAddr>().is_err() {
                    problems.push((
                        format!("endpoints[{i}].addresses[{j}]"),
                        format!("{a:?} is not an IP address"),
                    ));
                }
            }
        }
    }
}

/// Reports the second of two objects of one kind, namespace and name.
fn check_duplicates(loaded: &mut Loaded) {
    fn dup<T>(
        items: &mut Vec<Located<T>>,
        kind: &str,
        meta: impl Fn(&T) -> &ObjectMeta,
        errors: &mut Vec<ManifestError>,
    ) {
        let mut first: BTreeMap<(String, String), (PathBuf, usize)> = BTreeMap::new();
        items.retain(|l| {
            let m = meta(&l.object);
            let key =
                (m.namespace.clone().unwrap_or_else(|| "default".into()), m.name.clone().unwrap_or_default());
            if let Some((f, line)) = first.get(&key) {
                errors.push(ManifestError {
                    file: l.file.clone(),
                    line: l.line,
                    object: Some(format!("{kind} {}/{}", key.0, key.1)),
                    field: None,
                    message: format!("defined twice (first at {}:{line}); this one is ignored", f.display()),
                });
                return false;
            }
            first.insert(key, (l.file.clone(), l.line));
            true
        });
    }
    let (store, errors) = (&mut loaded.store, &mut loaded.errors);
    dup(&mut store.services, "Service", |s| &s.metadata, errors);
    dup(&mut store.endpoint_slices, "EndpointSlice", |s| &s.metadata, errors);
    dup(&mut store.pods, "Pod", |s| &s.metadata, errors);
    dup(&mut store.pools, "IPAddressPool", |s| &s.metadata, errors);
    dup(&mut store.endpoints, "Endpoints", |s| &s.metadata, errors);
    dup(&mut store.ingresses, "Ingress", |s| &s.metadata, errors);
    dup(&mut store.ingress_classes, "IngressClass", |s| &s.metadata, errors);
    dup(&mut store.secrets, "Secret", |s| &s.metadata, errors);
}
