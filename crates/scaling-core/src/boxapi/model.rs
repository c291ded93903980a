//! Box item shapes and their tolerant decoding.
//!
//! Box sends `id`s as JSON strings and `size` as an integer, but `size` may arrive as a float
//! (`1.0e+14`) and mini representations omit most fields: every field but `type` and `id` is optional
//! here, numbers are accepted for ids, and unknown fields are ignored.
//! Source: <https://developer.box.com/reference/resources/file--mini/>,
//! <https://developer.box.com/reference/get-folders-id-items/>.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A file as this project needs it, from a Box File (mini or full) object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFile {
    /// File id (a decimal string).
    pub id: String,
    /// File name, unique case-insensitively within its folder.
    pub name: String,
    /// SHA-1 of the current version's content, lowercase hex (from `sha1` or `file_version.sha1`).
    pub sha1: Option<String>,
    /// Id of the current version (`file_version.id`); changes with every new version.
    pub file_version_id: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Id of the parent folder (`parent.id`), when Box sent it.
    pub parent_id: Option<String>,
}

/// A folder: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFolder {
    /// Folder id (a decimal string; `"0"` is the root).
    pub id: String,
    /// Folder name.
    pub name: String,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoxItem {
    /// `type: "file"`.
    File(BoxFile),
    /// `type: "folder"`.
    Folder(BoxFolder),
    /// Anything else (`web_link`, future types): id and name only.
    Other {
        /// Item id.
        id: String,
        /// Item name.
        name: String,
    },
}

impl BoxItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            BoxItem::File(file) => &file.id,
            BoxItem::Folder(folder) => &folder.id,
            BoxItem::Other { id, .. } => id,
        }
    }

    /// The item's name.
    pub fn name(&self) -> &str {
        match self {
            BoxItem::File(file) => &file.name,
            BoxItem::Folder(folder) => &folder.name,
            BoxItem::Other { name, .. } => name,
        }
    }
}

/// Raw item as Box sends it (file, folder or other), decoded tolerantly.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawItem {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sha1: Option<String>,
    #[serde(default)]
    pub file_version: Option<RawVersion>,
    #[serde(default, deserialize_with = "lenient_size")]
    pub size: Option<u64>,
    #[serde(default)]
    pub parent: Option<RawParent>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawVersion {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
    #[serde(default)]
    pub sha1: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawParent {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub id: Option<String>,
}

/// A marker-paged listing page: `{entries, limit, next_marker, prev_marker}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawPage {
    #[serde(default)]
    pub entries: Vec<Value>,
    #[serde(default)]
    pub next_marker: Option<Value>,
}

/// Upload reply: `{total_count, entries: [File]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawFiles {
    #[serde(default)]
    pub entries: Vec<RawItem>,
}

impl RawItem {
    pub(super) fn into_file(self) -> BoxFile {
        let version_sha1 = self
            .file_version
            .as_ref()
            .and_then(|version| version.sha1.clone());
        BoxFile {
            id: self.id,
            name: self.name.unwrap_or_default(),
            sha1: self.sha1.or(version_sha1).filter(|sha1| !sha1.is_empty()),
            file_version_id: self.file_version.and_then(|version| version.id),
            size: self.size,
            parent_id: self.parent.and_then(|parent| parent.id),
        }
    }

    pub(super) fn into_item(self) -> BoxItem {
        match self.kind.as_deref() {
            Some("file") => BoxItem::File(self.into_file()),
            Some("folder") => BoxItem::Folder(BoxFolder {
                id: self.id,
                name: self.name.unwrap_or_default(),
            }),
            _ => BoxItem::Other {
                id: self.id,
                name: self.name.unwrap_or_default(),
            },
        }
    }
}

/// The marker of the next page: `None` when `next_marker` is null, absent or empty.
pub(crate) fn next_marker(value: Option<Value>) -> Option<String> {
    match value? {
        Value::String(marker) if !marker.is_empty() => Some(marker),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The first conflicting item of a 409 `item_name_in_use`: `context_info.conflicts` is one object for
/// files and an array for folders (both accepted).
pub(crate) fn first_conflict(context_info: Option<&Value>) -> Option<RawItem> {
    let conflicts = context_info?.get("conflicts")?;
    let first = match conflicts {
        Value::Array(items) => items.first()?,
        object @ Value::Object(_) => object,
        _ => return None,
    };
    serde_json::from_value(first.clone()).ok()
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => Some(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

/// Size in bytes from an integer, a float (`1.0e+14`) or a numeric string; anything else is "unknown".
fn lenient_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(lenient_u64(&Value::deserialize(deserializer)?))
}

/// A non-negative whole number from JSON number (integer or float) or numeric string.
pub(crate) fn lenient_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| float_to_u64(number.as_f64()?)),
        Value::String(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| float_to_u64(text.trim().parse().ok()?)),
        _ => None,
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "checked to lie in [0, 2^64) first"
)]
fn float_to_u64(value: f64) -> Option<u64> {
    // 2^64 as f64; `as` would saturate silently above it.
    if value.is_finite() && (0.0..18_446_744_073_709_551_616.0).contains(&value) {
        Some(value.round() as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_mini_with_float_size_and_unknown_fields() {
        let raw: RawItem = serde_json::from_value(json!({
            "type": "file", "id": "12345", "etag": "1", "sequence_id": "3", "name": "a.mp4",
            "sha1": "85136C79CBF9FE36BB9D05D0639C70C265C18D37",
            "file_version": {"type": "file_version", "id": "999", "sha1": "85136c79cbf9fe36bb9d05d0639c70c265c18d37"},
            "size": 1.0e14, "parent": {"type": "folder", "id": "77", "name": "incoming"},
            "modified_at": "2026-11-10T10:00:00-08:00", "brand_new_field": {"x": [1, 2]}
        }))
        .unwrap();
        let BoxItem::File(file) = raw.into_item() else {
            panic!("not a file")
        };
        assert_eq!(file.id, "12345");
        assert_eq!(file.size, Some(100_000_000_000_000));
        assert_eq!(file.file_version_id.as_deref(), Some("999"));
        assert_eq!(file.parent_id.as_deref(), Some("77"));
        assert_eq!(
            file.sha1.as_deref(),
            Some("85136C79CBF9FE36BB9D05D0639C70C265C18D37")
        );
    }

    #[test]
    fn minimal_entries_and_other_types() {
        let folder: RawItem =
            serde_json::from_value(json!({"type": "folder", "id": 5, "name": "_errors"})).unwrap();
        assert_eq!(
            folder.into_item(),
            BoxItem::Folder(BoxFolder {
                id: "5".into(),
                name: "_errors".into()
            })
        );
        let link: RawItem = serde_json::from_value(json!({"type": "web_link", "id": "9"})).unwrap();
        assert_eq!(
            link.into_item(),
            BoxItem::Other {
                id: "9".into(),
                name: String::new()
            }
        );
        let bare: RawItem =
            serde_json::from_value(json!({"type": "file", "id": "1", "name": "x", "size": null,
            "sha1": null, "file_version": null, "parent": null}))
            .unwrap();
        let file = bare.into_file();
        assert_eq!(
            (file.size, file.sha1, file.file_version_id, file.parent_id),
            (None, None, None, None)
        );
        // sha1 only inside file_version
        let versioned: RawItem = serde_json::from_value(
            json!({"type": "file", "id": "2", "file_version": {"id": "3", "sha1": "ab"}}),
        )
        .unwrap();
        assert_eq!(versioned.into_file().sha1.as_deref(), Some("ab"));
        assert!(serde_json::from_value::<RawItem>(json!({"type": "file"})).is_err());
    }

    #[test]
    fn lenient_sizes() {
        assert_eq!(lenient_u64(&json!(12)), Some(12));
        assert_eq!(lenient_u64(&json!(12.0)), Some(12));
        assert_eq!(lenient_u64(&json!("12")), Some(12));
        assert_eq!(lenient_u64(&json!("1.5e3")), Some(1500));
        assert_eq!(lenient_u64(&json!(-1)), None);
        assert_eq!(lenient_u64(&json!(1e300)), None);
        assert_eq!(lenient_u64(&json!(true)), None);
    }

    #[test]
    fn markers() {
        let page: RawPage =
            serde_json::from_value(json!({"entries": [], "limit": 1000, "next_marker": null}))
                .unwrap();
        assert_eq!(next_marker(page.next_marker), None);
        let page: RawPage = serde_json::from_value(json!({"entries": [], "limit": 1000})).unwrap();
        assert_eq!(next_marker(page.next_marker), None);
        assert_eq!(next_marker(Some(json!(""))), None);
        assert_eq!(
            next_marker(Some(json!(
                "JV9IRGZmieiBasejOG9yDCRNgd2ymoZIbjsxbJMjIs3kioVii"
            )))
            .as_deref(),
            Some("JV9IRGZmieiBasejOG9yDCRNgd2ymoZIbjsxbJMjIs3kioVii")
        );
    }

    #[test]
    fn conflicts_object_or_array() {
        let file_conflict = json!({"conflicts": {"type": "file", "id": "11", "name": "a.txt", "sha1": "aa",
            "file_version": {"type": "file_version", "id": "12", "sha1": "aa"}}});
        let conflict = first_conflict(Some(&file_conflict)).unwrap().into_file();
        assert_eq!(
            (conflict.id.as_str(), conflict.sha1.as_deref()),
            ("11", Some("aa"))
        );
        let folder_conflict =
            json!({"conflicts": [{"type": "folder", "id": "21", "name": "F", "etag": "0"}]});
        assert_eq!(first_conflict(Some(&folder_conflict)).unwrap().id, "21");
        assert!(first_conflict(Some(&json!({"conflicts": []}))).is_none());
        assert!(first_conflict(None).is_none());
    }
}
