//! Lists of objects in one document: `kind: List` (what `kubectl get -o yaml` and `-o json`
//! print) and typed lists such as `ServiceList` (what the API server serves, whose items state
//! neither `kind` nor `apiVersion`).
//!
//! Each item is cut out of the document's own text, so that everything said about it (a strict
//! parse's error, a field's line) points at the file's real lines: in YAML, the block sequence
//! under a top-level `items:` key, dedented; in JSON, the objects of the top-level `"items"`
//! array, found by a small scanner that knows strings and nesting. A list written some other way
//! (a flow sequence in YAML, say) is still read, item by item, from its parsed value, with every
//! problem of an item located at the list's first line.

use serde::Deserialize;
use serde_norway::Value;

/// The items of a list document.
#[derive(Debug)]
pub(super) struct List {
    /// For a typed list (`ServiceList`), the kind of its items (`Service`); `None` for `List`,
    /// whose items state their own.
    pub(super) item_kind: Option<String>,
    /// The list's `apiVersion` (its items' too, for a typed list).
    pub(super) api_version: String,
    /// The items, in order.
    pub(super) items: Vec<Item>,
}

/// One item's text and where it starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Item {
    /// Lines from the document's first line to the item's (0-based).
    pub(super) line: usize,
    /// The item alone, as a document of its own (same line breaks as in the file).
    pub(super) text: String,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    items: Option<Shape>,
}

/// What `items` is, read without building it: the items are cut out of the text and parsed one
/// by one, so the list is never held as a value tree (a dump's items carry their managed fields).
enum Shape {
    Null,
    /// A sequence of this many items.
    Sequence(usize),
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of objects")
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_none<E>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Shape::Sequence(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Shape, A::Error> {
                use serde::de::VariantAccess;
                let (serde::de::IgnoredAny, v) = data.variant()?;
                v.newtype_variant::<serde::de::IgnoredAny>()?;
                Ok(Shape::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `None` if `doc` is not a list (or not parseable: the object loader reports that); else its
/// items, or the (line offset, message) of why they cannot be read.
pub(super) fn items(doc: &str) -> Option<Result<List, (usize, String)>> {
    if !may_be_list(doc) {
        return None;
    }
    let head: Head = serde_norway::from_str(doc).ok()?;
    let kind = head.kind?;
    let item_kind = match kind.as_str() {
        "List" => None,
        k => Some(k.strip_suffix("List").filter(|k| !k.is_empty() && head.items.is_some())?.to_owned()),
    };
    let api_version = head.api_version.unwrap_or_default();
    if item_kind.is_none() && api_version != "v1" {
        return Some(Err((0, format!("a List has apiVersion \"v1\", not {api_version:?}"))));
    }
    let count = match head.items {
        None | Some(Shape::Null) => 0,
        Some(Shape::Sequence(n)) => n,
        Some(Shape::Other) => return Some(Err((line_of_items(doc), "must be a list of objects".into()))),
    };
    let cut = if doc.trim_start().starts_with('{') { json_items(doc) } else { yaml_items(doc) };
    let items = match cut {
        Some(items) if items.len() == count => items,
        _ if count == 0 => Vec::new(),
        // Written in a way the cutters do not follow: the parsed values, located at the list.
        _ => {
            #[derive(Deserialize)]
            struct Values {
                items: Vec<Value>,
            }
            let values = serde_norway::from_str::<Values>(doc).map(|v| v.items).unwrap_or_default();
            values
                .iter()
                .map(|v| Item { line: 0, text: serde_norway::to_string(v).unwrap_or_default() })
                .collect()
        }
    };
    Some(Ok(List { item_kind, api_version, items }))
}

/// Whether `doc` can be a list at all, read cheaply off its text: a top-level `kind:` (YAML) or
/// a `"kind"` (JSON) whose value ends in `List`, or a document in flow style (`{…}`), which is
/// parsed to tell. Saves parsing every document twice.
fn may_be_list(doc: &str) -> bool {
    doc.trim_start().starts_with('{')
        || doc.lines().any(|l| {
            let value = l
                .strip_prefix("kind:")
                .or_else(|| l.trim_start().strip_prefix("\"kind\"")?.trim_start().strip_prefix(':'));
            value.is_some_and(|v| v.trim().trim_end_matches(',').trim_matches(['"', '\'']).ends_with("List"))
        })
}

/// The line offset of the `items` key (for an error about it), else 0.
fn line_of_items(doc: &str) -> usize {
    doc.lines().position(|l| l.starts_with("items:") || l.trim_start().starts_with("\"items\"")).unwrap_or(0)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The items of a block sequence under a top-level `items:` key, dedented to documents of their
/// own. `None` if the document has no such sequence.
fn yaml_items(doc: &str) -> Option<Vec<Item>> {
    let lines: Vec<&str> = doc.lines().collect();
    let key = lines.iter().position(|l| l.trim_end() == "items:")?;
    // The sequence's dash column: the first line after the key that says something.
    let Some(first) = (key + 1..lines.len()).find(|&i| !is_blank(lines[i])) else {
        return Some(Vec::new());
    };
    let col = indent(lines[first]);
    let is_dash = |l: &str| indent(l) == col && (l[col..].starts_with("- ") || l[col..].trim_end() == "-");
    if !is_dash(lines[first]) {
        return Some(Vec::new()); // `items:` with nothing under it: null
    }
    let mut items: Vec<Item> = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(first) {
        if is_dash(line) {
            // The dash becomes indentation; the item's keys then all sit at column col + 2.
            let mut text = String::new();
            text.push_str(line.get(col + 2..).unwrap_or(""));
            text.push('\n');
            items.push(Item { line: i, text });
        } else if is_blank(line) || indent(line) > col {
            let item = items.last_mut()?;
            item.text.push_str(
                line.get(col + 2..).filter(|_| indent(line) >= col + 2).unwrap_or(line.trim_start()),
            );
            item.text.push('\n');
        } else {
            break; // the next top-level key (`kind: List`, `metadata:`)
        }
    }
    Some(items)
}

/// The objects of the top-level `"items"` array of a JSON document, each as its own text (it
/// starts mid-line, so its first line is the line of its `{`). `None` if there is no such array.
fn json_items(doc: &str) -> Option<Vec<Item>> {
    let b = doc.as_bytes();
    let (mut depth, mut line, mut i) = (0usize, 0usize, 0usize);
    let mut in_items = false;
    let mut found = false;
    let mut items = Vec::new();
    // The string that ended last at depth 1 (a key, when a ':' follows it).
    let mut last_key: Option<&str> = None;
    let mut start: Option<(usize, usize)> = None;
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'"' => {
                let from = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 {
                    last_key = doc.get(from..i.min(b.len()));
                }
            }
            b'[' | b'{' => {
                if depth == 1 && b[i] == b'[' && last_key == Some("items") {
                    in_items = true;
                    found = true;
                }
                if in_items && depth == 2 && b[i] == b'{' {
                    start = Some((i, line));
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if in_items && depth == 2 && b[i] == b'}' {
                    let (from, at) = start.take()?;
                    items.push(Item { line: at, text: doc[from..=i].to_owned() });
                }
                if in_items && depth == 1 {
                    in_items = false;
                }
            }
            b',' if depth == 1 => last_key = None,
            _ => {}
        }
        i += 1;
    }
    found.then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_items_are_cut_and_dedented_keeping_their_lines() {
        let doc = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: a\n\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: b\nkind: List\nmetadata:\n  resourceVersion: \"\"\n";
        let l = items(doc).unwrap().unwrap();
        assert_eq!(l.item_kind, None);
        assert_eq!(l.items.len(), 2);
        assert_eq!(
            l.items[0],
            Item { line: 2, text: "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n\n".into() }
        );
        assert_eq!(l.items[1].line, 7);
        assert!(l.items[1].text.starts_with("apiVersion: v1\nkind: Pod\n"));
    }

    #[test]
    fn an_indented_sequence_is_cut_too() {
        let doc = "kind: List\napiVersion: v1\nitems:\n  - kind: Service\n    apiVersion: v1\n    metadata: {name: a}\n";
        let l = items(doc).unwrap().unwrap();
        assert_eq!(
            l.items,
            [Item { line: 3, text: "kind: Service\napiVersion: v1\nmetadata: {name: a}\n".into() }]
        );
    }

    #[test]
    fn json_items_are_cut_at_their_braces() {
        let doc = "{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n    {\n      \"kind\": \"Service\",\n      \"x\": \"}{]\\\"\"\n    },\n    {\"kind\": \"Pod\"}\n  ],\n  \"kind\": \"List\"\n}\n";
        let l = items(doc).unwrap().unwrap();
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.items[0].line, 3);
        assert!(l.items[0].text.starts_with("{\n      \"kind\": \"Service\""), "{:?}", l.items[0].text);
        assert_eq!(l.items[1], Item { line: 7, text: "{\"kind\": \"Pod\"}".into() });
    }

    #[test]
    fn a_typed_list_names_its_items_kind() {
        let doc = "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata:\n    name: a\n";
        let l = items(doc).unwrap().unwrap();
        assert_eq!((l.item_kind.as_deref(), l.api_version.as_str()), (Some("Service"), "v1"));
        assert_eq!(l.items, [Item { line: 3, text: "metadata:\n  name: a\n".into() }]);
    }

    #[test]
    fn a_list_is_recognised_from_its_text_before_it_is_parsed() {
        assert!(may_be_list("apiVersion: v1\nkind: List\n"));
        assert!(may_be_list("kind: \"ServiceList\"\n"));
        assert!(may_be_list("{\n  \"kind\": \"List\",\n  \"items\": []\n}"));
        assert!(!may_be_list("apiVersion: v1\nkind: Service\nmetadata: {name: List}\n"));
        assert!(!may_be_list("spec:\n  kind: List\n"), "not top-level");
    }

    #[test]
    fn what_is_not_a_list_is_left_alone_and_a_bad_list_is_refused() {
        assert!(items("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n").is_none());
        assert!(items("kind: List\napiVersion: v2\nitems: []\n").unwrap().is_err());
        assert!(items("kind: List\napiVersion: v1\nitems: 3\n").unwrap().is_err());
        assert!(items("kind: List\napiVersion: v1\nitems: []\n").unwrap().unwrap().items.is_empty());
        // A flow sequence: read from the parsed values, located at the list.
        let l = items("kind: List\napiVersion: v1\nitems: [{kind: Pod, metadata: {name: a}}]\n")
            .unwrap()
            .unwrap();
        assert_eq!(l.items.len(), 1);
        assert_eq!(l.items[0].line, 0);
    }
}
