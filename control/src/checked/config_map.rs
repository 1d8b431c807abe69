//! ConfigMaps: checked as the API server would, and their `data` read as HTTP header fields —
//! what ingress-nginx's `custom-headers` and `proxy-set-headers` annotations take from them.
//!
//! A ConfigMap's keys must be ConfigMap keys (`[-._a-zA-Z0-9]+`, at most 253 bytes, not `.`,
//! `..` or `..`-prefixed), none both in `data` and `binaryData`, and its `data` at most 1 MiB
//! (`ValidateConfigMap`): a ConfigMap that fails that is refused, as `kubectl apply` would be.
//! Whether its entries are header fields is another matter: most ConfigMaps are not headers
//! (application settings, files), and are not wrong for it. Each `data` entry is read once into
//! a [`Header`] or the [`Problem`] that stops it being one (a name that is not a token, a value
//! with a line break, a NUL or control characters, …), and those are reported only where an
//! annotation names the ConfigMap (compile). `binaryData` is never a header: its keys are
//! checked, its values skipped unread.
//!
//! Not hot path. No `unsafe`.

use sluice_model::policy::{self, Header};

use super::{Checked, Named, Problem, namespace_of, verdict};
use crate::objects;

/// The most a ConfigMap's data may hold (the API server's `MaxSecretSize`, which bounds
/// ConfigMaps too).
const MAX_DATA_BYTES: usize = 1 << 20;

/// The longest ConfigMap key (a DNS subdomain's length).
const MAX_KEY_BYTES: usize = 253;

/// A ConfigMap, checked: its `data` read as header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMap {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Each `data` entry, in key order: the header field it is, or why it cannot be one (the
    /// problem names the field, `data.KEY`). Values are not kept otherwise.
    pub headers: Vec<Result<Header, Problem>>,
}

impl Named for ConfigMap {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a ConfigMap as the API server does (`ValidateConfigMap`), and reads its `data` as
/// header fields.
pub fn config_map(cm: objects::ConfigMap) -> Checked<ConfigMap> {
    let mut problems = Vec::new();
    for (bag, key) in
        cm.data.keys().map(|k| ("data", k)).chain(cm.binary_data.keys().map(|k| ("binaryData", k)))
    {
        if let Some(why) = not_a_key(key) {
            problems.push(Problem::new(format!("{bag}.{key}"), why));
        }
    }
    for key in cm.data.keys().filter(|k| cm.binary_data.contains_key(*k)) {
        problems.push(Problem::new(
            format!("data.{key}"),
            "also a key of binaryData: a key is in one or the other",
        ));
    }
    let size: usize = cm.data.values().map(String::len).sum();
    if size > MAX_DATA_BYTES {
        problems.push(Problem::new(
            "data",
            format!("{size} bytes, more than the {MAX_DATA_BYTES} a ConfigMap may hold (the API server refuses it)"),
        ));
    }
    let mut headers: Vec<Result<Header, Problem>> = Vec::with_capacity(cm.data.len());
    for (key, value) in &cm.data {
        let at = format!("data.{key}");
        // Field names are case-insensitive (RFC 9110 §5.1): two keys that differ only in case
        // would set one field twice.
        let first = headers.iter().flatten().find(|h| h.name.eq_ignore_ascii_case(key));
        let header = match (first, header_problem(key, value)) {
            (_, Some(why)) => Err(Problem::new(at, why)),
            (Some(first), None) => Err(Problem::new(
                at,
                format!(
                    "the same field as {} (field names are case-insensitive): that one is set",
                    first.name
                ),
            )),
            (None, None) => Header::new(key, value).map_err(|e| Problem::new(at, e)),
        };
        headers.push(header);
    }
    let checked = ConfigMap {
        namespace: namespace_of(&cm.metadata).to_owned(),
        name: cm.metadata.name.clone().unwrap_or_default(),
        headers,
    };
    verdict(checked, problems)
}

/// Why `key` is not a ConfigMap key (`IsConfigMapKey`), if it is not.
fn not_a_key(key: &str) -> Option<String> {
    if key.len() > MAX_KEY_BYTES {
        return Some(format!("a key is at most {MAX_KEY_BYTES} bytes"));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Some(
            "not a ConfigMap key: letters, digits, '-', '_' and '.' only (\"X-Frame-Options\")".into(),
        );
    }
    if key == "." || key.starts_with("..") {
        return Some("a key may not be '.' or begin with '..'".into());
    }
    None
}

/// Why a `data` entry is not a header field, if it is not. The value is described, never
/// quoted: it may be a file of megabytes.
fn header_problem(name: &str, value: &str) -> Option<String> {
    if !policy::is_token(name) {
        return Some(format!("{name:?} is not a header name (a token: letters, digits and !#$%&'*+-.^_`|~)"));
    }
    let why = if value.is_empty() {
        "empty: a field without a value is not set"
    } else if value.len() > policy::MAX_VALUE_BYTES {
        return Some(format!(
            "a value of {} bytes, more than a header value may hold ({})",
            value.len(),
            policy::MAX_VALUE_BYTES
        ));
    } else if value.contains(['\r', '\n']) {
        "the value holds a line break (CR or LF): a header value is one line (a YAML `|` block ends \
         with one: write the value as a quoted string)"
    } else if value.contains('\0') {
        "the value holds a NUL"
    } else if !policy::is_field_value(value) {
        if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
            "the value begins or ends with white space"
        } else {
            "the value holds a control character or a byte that is not ASCII"
        }
    } else {
        return None;
    };
    Some(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Checked<ConfigMap> {
        config_map(serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn data_is_read_as_header_fields_one_by_one() {
        let cm = check(
            "metadata: {name: hdrs, namespace: shop}
data:
  X-Frame-Options: DENY
  Content-Security-Policy: \"default-src 'self'; img-src *\"
  X-Multi: |
    one
    two
  X-Trail: |
    line
  x-frame-options: SAMEORIGIN
  X-Nul: \"a\\0b\"
  X-Ctl: \"a\\x01b\"
  X-Latin: \"caf\u{e9}\"
  X-Space: \" padded \"
  X-Empty: \"\"
binaryData: {logo.png: iVBORw0KGgo=}
",
        )
        .unwrap();
        assert_eq!((cm.namespace.as_str(), cm.name.as_str()), ("shop", "hdrs"));
        let good: Vec<(&str, &str)> =
            cm.headers.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        assert_eq!(
            good,
            [("Content-Security-Policy", "default-src 'self'; img-src *"), ("X-Frame-Options", "DENY")]
        );
        let bad: Vec<(&str, &str)> = cm
            .headers
            .iter()
            .filter_map(|h| h.as_ref().err())
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect();
        let line_break = "the value holds a line break (CR or LF): a header value is one line (a YAML `|` \
                          block ends with one: write the value as a quoted string)";
        assert_eq!(
            bad,
            [
                ("data.X-Ctl", "the value holds a control character or a byte that is not ASCII"),
                ("data.X-Empty", "empty: a field without a value is not set"),
                ("data.X-Latin", "the value holds a control character or a byte that is not ASCII"),
                ("data.X-Multi", line_break),
                ("data.X-Nul", "the value holds a NUL"),
                ("data.X-Space", "the value begins or ends with white space"),
                ("data.X-Trail", line_break),
                (
                    "data.x-frame-options",
                    "the same field as X-Frame-Options (field names are case-insensitive): that one is set"
                ),
            ]
        );
    }

    #[test]
    fn a_crlf_value_is_never_a_header() {
        // Header injection: a value that would end the field and start another.
        let cm =
            check("metadata: {name: hdrs}\ndata: {X-A: \"ok\\r\\nSet-Cookie: session=stolen\"}\n").unwrap();
        let p = cm.headers[0].as_ref().unwrap_err();
        assert_eq!(p.field, "data.X-A");
        assert!(p.message.starts_with("the value holds a line break"), "{p}");
        assert!(!p.message.contains("stolen"), "the value is never quoted: {p}");
        assert_eq!(cm.namespace, "default");
    }

    #[test]
    fn keys_are_checked_as_the_api_server_does() {
        let e = check(
            "metadata: {name: hdrs}
data: {X Bad: a, ..hidden: b, ok.key: c, both: d}
binaryData: {both: ZA==, 'bin/x': ZA==}
",
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["data...hidden", "data.X Bad", "binaryData.bin/x", "data.both"], "{e:?}");
        assert_eq!(e[0].message, "a key may not be '.' or begin with '..'");
        assert!(e[1].message.starts_with("not a ConfigMap key"), "{e:?}");
        assert_eq!(e[3].message, "also a key of binaryData: a key is in one or the other");
        let big = "x".repeat(MAX_DATA_BYTES + 1);
        let e = check(&format!("metadata: {{name: big}}\ndata: {{a: {big}}}\n")).unwrap_err();
        assert_eq!(e[0].field, "data");
        // A header value past 4 KiB is not a header, but the ConfigMap is fine.
        let long = "v".repeat(policy::MAX_VALUE_BYTES + 1);
        let cm = check(&format!("metadata: {{name: long}}\ndata: {{X-Long: {long}}}\n")).unwrap();
        let p = cm.headers[0].as_ref().unwrap_err();
        assert_eq!(p.message, "a value of 4097 bytes, more than a header value may hold (4096)");
    }
}
