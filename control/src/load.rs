//! Reading a directory of manifests into a [`Store`], with the checks the API server would make.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file, in name order; each YAML document of a file on its
//! own. This module reads the text: it splits documents and lists, finds each one's kind and API
//! version, parses it strictly (an unknown field is an error naming it, with the name probably
//! meant) and locates every problem at its line. What an object's values must be is checked by
//! [`crate::checked`], the same checks a cluster's objects pass, which also types them and
//! applies the API server's defaults. A document with a problem is reported — file, line,
//! object, field, and the fix where one is evident — and left out; every other object still
//! loads. Kinds Sluice does not act on are skipped (workloads have their pod template checked
//! first: a typo there is still a typo).
//!
//! What a directory may hold is bounded ([`Limits`]: a file's size, the directory's, its objects,
//! what YAML aliases expand to; see [`bounds`]). A directory past a bound is refused as a whole
//! ([`Loaded::incomplete`]): the last good table stays live. Fields Sluice never reads
//! (`managedFields`, owner references, most of `status`) are skipped as they are parsed, never
//! built into values ([`crate::objects`]).
//!
//! Not hot path. No `unsafe`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::Value;

use crate::checked::{self, Checked, Named, Problem, suggest};
use crate::store::{Located, Store};

mod bounds;
mod list;

pub use bounds::{Limits, MAX_DIRECTORY_BYTES, MAX_FILE_BYTES, MAX_OBJECTS};

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

/// A store and the problems met building it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// What loaded.
    pub store: Store,
    /// What did not, and why.
    pub errors: Vec<ManifestError>,
    /// Objects read (documents and list items, whether they loaded or not).
    pub objects: usize,
    /// A bound of [`Limits`] was passed: what loaded is not the whole directory, and is not to
    /// be published (the errors say which file, and why).
    pub incomplete: bool,
}

/// Loads every manifest file of `dir` (not recursive), within the default [`Limits`]. Fails
/// only if the directory itself cannot be read; problems with files and objects are in
/// [`Loaded::errors`].
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    load_dir_within(dir, &Limits::default())
}

/// [`load_dir`] within `limits`: the first bound passed stops the read, with an error naming the
/// file, and marks the load [`Loaded::incomplete`].
pub fn load_dir_within(dir: &Path, limits: &Limits) -> std::io::Result<Loaded> {
    let mut loaded = Loaded::default();
    let refuse = |loaded: &mut Loaded, file: &Path, message: String| {
        loaded.incomplete = true;
        loaded.errors.push(ManifestError {
            file: file.to_owned(),
            line: 1,
            object: None,
            field: None,
            message,
        });
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let p = entry.path();
        if p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            if files.len() == limits.max_objects {
                let message = format!(
                    "more than {} manifest files in the directory (--max-objects): refused, the last good \
                     table stays live",
                    limits.max_objects
                );
                refuse(&mut loaded, &p, message);
                return Ok(loaded);
            }
            files.push(p);
        }
    }
    files.sort();
    let mut directory_bytes = 0u64;
    for f in files {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        directory_bytes = directory_bytes.saturating_add(size);
        if directory_bytes > limits.max_directory_bytes {
            let message = format!(
                "the manifest files up to this one hold {directory_bytes} bytes, more than {} \
                 (--max-directory-bytes): refused, the last good table stays live",
                limits.max_directory_bytes
            );
            refuse(&mut loaded, &f, message);
            break;
        }
        match bounds::read_bounded(&f, limits.max_file_bytes) {
            Ok(text) => load_str(&f, &text, &mut loaded),
            Err(bounds::ReadError::TooLarge(n)) => {
                let message = format!(
                    "{n} bytes, more than {} (--max-manifest-bytes): refused, the last good table stays \
                     live; split the file, or raise the limit",
                    limits.max_file_bytes
                );
                refuse(&mut loaded, &f, message);
                break;
            }
            Err(e) => loaded.errors.push(ManifestError {
                file: f.clone(),
                line: 1,
                object: None,
                field: None,
                message: e.to_string(),
            }),
        }
        if loaded.objects > limits.max_objects {
            let message = format!(
                "the directory holds more than {} objects with this file (--max-objects): refused, the \
                 last good table stays live",
                limits.max_objects
            );
            refuse(&mut loaded, &f, message);
            break;
        }
    }
    if loaded.incomplete {
        // Nothing of it is published: keep no partial store around.
        loaded.store = Store::default();
    } else {
        check_duplicates(&mut loaded);
    }
    Ok(loaded)
}

/// Loads the documents of one file's text into `loaded`. A `kind: List` document (what
/// `kubectl get -o yaml` and `-o json` print) and a typed list (`ServiceList`, as the API serves
/// it) are read item by item, each item located by its own first line.
pub fn load_str(file: &Path, text: &str, loaded: &mut Loaded) {
    for (start, doc) in documents(text) {
        if bounds::expands_past(&doc, bounds::expansion_budget(doc.len())) {
            loaded.objects += 1;
            loaded.incomplete = true;
            loaded.errors.push(ManifestError {
                file: file.to_owned(),
                line: start,
                object: None,
                field: None,
                message: format!(
                    "the document's YAML aliases expand it past {} nodes and bytes (twice its {} bytes \
                     of text, plus 64 Ki): refused, the last good table stays live; write out what \
                     is repeated",
                    bounds::expansion_budget(doc.len()),
                    doc.len()
                ),
            });
            continue;
        }
        match list::items(&doc) {
            None => {
                loaded.objects += 1;
                load_document(file, start, &doc, None, loaded)
            }
            Some(Ok(list)) => {
                loaded.objects += list.items.len();
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

/// One document being loaded: where it is, its text, and the object it declares
/// (`Kind namespace/name`, once known).
struct Doc<'a> {
    file: &'a Path,
    start: usize,
    text: &'a str,
    object: Option<String>,
}

impl Doc<'_> {
    fn error(&self, line: usize, field: Option<&str>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.to_owned(),
            line,
            object: self.object.clone(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Each problem, at the line of its field.
    fn report(&self, problems: Vec<Problem>, errors: &mut Vec<ManifestError>) {
        for p in problems {
            errors.push(self.error(field_line(self.text, self.start, &p.field), Some(&p.field), p.message));
        }
    }

    /// Parses the document strictly, turning serde's error into a [`ManifestError`].
    fn parse<T: DeserializeOwned>(&self, errors: &mut Vec<ManifestError>) -> Option<T> {
        let e = match serde_norway::from_str::<T>(self.text) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let line = e.location().map_or(self.start, |l| self.start + l.line() - 1);
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
        errors.push(self.error(line, field.as_deref(), message));
        None
    }
}

/// What a document declares: its kind and API version (a typed list's items state neither), and
/// how to name it.
struct Head {
    kind: String,
    api: String,
    /// `Kind namespace/name`.
    object: String,
}

/// Loads one object's document. `implied` is the (kind, apiVersion) of a typed list's items,
/// which do not state their own.
fn load_document(file: &Path, start: usize, text: &str, implied: Option<(&str, &str)>, loaded: &mut Loaded) {
    let mut doc = Doc { file, start, text, object: None };
    if let Some(i) = text.lines().position(|l| l.chars().take_while(|c| c.is_whitespace()).any(|c| c == '\t'))
    {
        let message =
            "indented with a tab: YAML allows only spaces for indentation (replace each tab with spaces)";
        loaded.errors.push(doc.error(start + i, None, message));
        return;
    }
    let head = match head(&doc, implied) {
        Ok(head) => head,
        Err(e) => return loaded.errors.push(e),
    };
    doc.object = Some(head.object.clone());
    if let Some((line, message)) = api_version_error(&doc, &head) {
        loaded.errors.push(doc.error(line, Some("apiVersion"), message));
        return;
    }
    load_kind(&doc, &head, loaded);
}

/// Reads what the document declares; an error when it is not YAML, is a list inside a list, or
/// lacks its kind, API version or name.
fn head(doc: &Doc<'_>, implied: Option<(&str, &str)>) -> Result<Head, ManifestError> {
    let peek: Peek = serde_norway::from_str(doc.text).map_err(|e| {
        let line = e.location().map_or(doc.start, |l| doc.start + l.line() - 1);
        doc.error(line, None, format!("not valid YAML: {}", strip_location(&e.to_string())))
    })?;
    let kind = peek.kind.or(implied.map(|(k, _)| k.to_owned())).unwrap_or_default();
    let api = peek.api_version.or(implied.map(|(_, a)| a.to_owned())).unwrap_or_default();
    let (ns, name) = peek.metadata.map_or((None, None), |m| (m.namespace, m.name));
    let object = format!(
        "{} {}/{}",
        if kind.is_empty() { "object" } else { &kind },
        ns.as_deref().unwrap_or("default"),
        name.as_deref().unwrap_or("?")
    );
    let named = Doc { object: Some(object.clone()), ..*doc };
    if kind == "List" || (kind.ends_with("List") && implied.is_some()) {
        let list = Doc { object: Some(kind.clone()), ..*doc };
        return Err(list.error(doc.start, Some("kind"), "a list inside a list is not read"));
    }
    if kind.is_empty() || api.is_empty() {
        let missing = if kind.is_empty() { "kind" } else { "apiVersion" };
        return Err(named.error(doc.start, Some(missing), "required field is missing"));
    }
    if name.as_deref().unwrap_or("").is_empty() {
        return Err(named.error(doc.start, Some("metadata.name"), "required field is missing"));
    }
    Ok(Head { kind, api, object })
}

/// Why the document's API version is not its kind's, if it is not: (line, message).
fn api_version_error(doc: &Doc<'_>, head: &Head) -> Option<(usize, String)> {
    let (kind, api) = (head.kind.as_str(), head.api.as_str());
    let beta = api == "extensions/v1beta1" || api == "networking.k8s.io/v1beta1";
    let want = match kind {
        "Service" | "Pod" | "Endpoints" | "Secret" | "ConfigMap" => "v1",
        "Ingress" if beta => {
            return Some((
                doc.start,
                format!(
                    "Ingress {api} was removed in Kubernetes 1.22; use networking.k8s.io/v1, where each path \
                     names a pathType and its backend is `service: {{name: NAME, port: {{number: PORT}}}}` \
                     instead of `serviceName`/`servicePort`"
                ),
            ));
        }
        "Ingress" | "IngressClass" if !beta => "networking.k8s.io/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "IPAddressPool" | "BGPAdvertisement" | "L2Advertisement" | "BFDProfile" => "metallb.io/v1beta1",
        "BGPPeer" => "metallb.io/v1beta2",
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        _ => return None,
    };
    if api == want {
        return None;
    }
    let hint = if api.eq_ignore_ascii_case(want) { " (API versions are lowercase)" } else { "" };
    let message = format!("{api:?} is not an API version of {kind}; use {want:?}{hint}");
    Some((line_of(doc.text, doc.start, "apiVersion"), message))
}

/// Loads the object of a kind Sluice acts on, checked; skips the others.
fn load_kind(doc: &Doc<'_>, head: &Head, loaded: &mut Loaded) {
    match head.kind.as_str() {
        "Service" => load_object(doc, loaded, checked::service, |s| &mut s.services),
        "EndpointSlice" => load_object(doc, loaded, checked::endpoint_slice, |s| &mut s.endpoint_slices),
        "Pod" => load_object(doc, loaded, checked::pod, |s| &mut s.pods),
        "IPAddressPool" => load_object(doc, loaded, checked::pool, |s| &mut s.pools),
        "BGPPeer" => load_object(doc, loaded, checked::bgp_peer, |s| &mut s.bgp_peers),
        "BGPAdvertisement" => {
            load_object(doc, loaded, checked::bgp_advertisement, |s| &mut s.bgp_advertisements)
        }
        "L2Advertisement" => {
            load_object(doc, loaded, checked::l2_advertisement, |s| &mut s.l2_advertisements)
        }
        "BFDProfile" => load_object(doc, loaded, checked::bfd_profile, |s| &mut s.bfd_profiles),
        "Endpoints" => load_object(doc, loaded, checked::endpoints, |s| &mut s.endpoints),
        "Ingress" => {
            let before = loaded.store.ingresses.len();
            load_object(doc, loaded, checked::ingress, |s| &mut s.ingresses);
            // Each annotation's finding at the line it is written on (the migration report's).
            if let Some(l) = loaded.store.ingresses.get_mut(before) {
                for f in &mut l.object.nginx.findings {
                    f.line = line_of(doc.text, doc.start, &f.annotation);
                }
            }
        }
        "IngressClass" => load_object(doc, loaded, checked::ingress_class, |s| &mut s.ingress_classes),
        "Secret" => load_object(doc, loaded, checked::secret, |s| &mut s.secrets),
        "ConfigMap" => load_object(doc, loaded, checked::config_map, |s| &mut s.config_maps),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            // Not used by Sluice, but its pod template is a PodSpec: check it.
            let problems = workload_problems(doc.text);
            if problems.is_empty() {
                loaded.store.skipped.push(head.object.clone());
            }
            doc.report(problems, &mut loaded.errors);
        }
        _ => loaded.store.skipped.push(head.object.clone()),
    }
}

/// Parses the document as `Raw`, checks it into a `T` and keeps it in the store's `list`, or
/// reports why not.
fn load_object<Raw: DeserializeOwned, T>(
    doc: &Doc<'_>,
    loaded: &mut Loaded,
    check: fn(Raw) -> Checked<T>,
    list: fn(&mut Store) -> &mut Vec<Located<T>>,
) {
    let Some(raw) = doc.parse::<Raw>(&mut loaded.errors) else { return };
    match check(raw) {
        Ok(object) => {
            list(&mut loaded.store).push(Located { object, file: doc.file.to_owned(), line: doc.start })
        }
        Err(problems) => doc.report(problems, &mut loaded.errors),
    }
}

/// The problems of a workload's pod template (`spec.template.spec`). Only that is built into a
/// value: the rest of the workload (its status, its managed fields) is skipped unbuilt.
fn workload_problems(text: &str) -> Vec<Problem> {
    #[derive(Deserialize)]
    struct Workload {
        spec: Option<WorkloadSpec>,
    }
    #[derive(Deserialize)]
    struct WorkloadSpec {
        template: Option<Template>,
    }
    #[derive(Deserialize)]
    struct Template {
        spec: Option<BTreeMap<String, Value>>,
    }
    let Ok(w) = serde_norway::from_str::<Workload>(text) else { return Vec::new() };
    let Some(spec) = w.spec.and_then(|s| s.template).and_then(|t| t.spec) else { return Vec::new() };
    checked::pod_spec_fields("spec.template.spec", &spec)
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

/// Reads serde's "unknown field `x`, expected `a` or `b`" / "expected one of `a`, `b`".
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((name.to_owned(), expected))
}

/// Reports the second of two objects of one kind, namespace and name.
fn check_duplicates(loaded: &mut Loaded) {
    fn dup<T: Named>(items: &mut Vec<Located<T>>, kind: &str, errors: &mut Vec<ManifestError>) {
        let mut first: BTreeMap<(String, String), (PathBuf, usize)> = BTreeMap::new();
        items.retain(|l| {
            let key = (l.object.namespace().to_owned(), l.object.name().to_owned());
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
    dup(&mut store.services, "Service", errors);
    dup(&mut store.endpoint_slices, "EndpointSlice", errors);
    dup(&mut store.pods, "Pod", errors);
    dup(&mut store.pools, "IPAddressPool", errors);
    dup(&mut store.bgp_peers, "BGPPeer", errors);
    dup(&mut store.bgp_advertisements, "BGPAdvertisement", errors);
    dup(&mut store.l2_advertisements, "L2Advertisement", errors);
    dup(&mut store.bfd_profiles, "BFDProfile", errors);
    dup(&mut store.endpoints, "Endpoints", errors);
    dup(&mut store.ingresses, "Ingress", errors);
    dup(&mut store.ingress_classes, "IngressClass", errors);
    dup(&mut store.secrets, "Secret", errors);
    dup(&mut store.config_maps, "ConfigMap", errors);
}
