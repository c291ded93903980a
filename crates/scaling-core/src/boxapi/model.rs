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

/// An event type of Box's events stream (`Event.event_type`), as far as change detection needs
/// it; every other type is kept by name in [`EventType::Other`].
/// Source: OpenAPI `#/components/schemas/Event` (`event_type`),
/// <https://developer.box.com/guides/events/event-triggers/>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// `ITEM_UPLOAD`: a file was uploaded (a new file or a new version).
    ItemUpload,
    /// `ITEM_CREATE`: a file or folder was created.
    ItemCreate,
    /// `ITEM_MOVE`: an item was moved (the source is the item at its new place).
    ItemMove,
    /// `ITEM_RENAME`: an item was renamed.
    ItemRename,
    /// `ITEM_COPY`: an item was copied (the source is the copy).
    ItemCopy,
    /// `ITEM_TRASH`: an item was moved to the trash.
    ItemTrash,
    /// `ITEM_UNDELETE_VIA_TRASH`: an item was restored from the trash.
    ItemUndeleteViaTrash,
    /// `ITEM_MODIFY`: an item's content or information changed.
    ItemModify,
    /// Any other type, by its name.
    Other(String),
}

impl EventType {
    /// The type from Box's spelling.
    pub fn parse(text: &str) -> EventType {
        match text {
            "ITEM_UPLOAD" => EventType::ItemUpload,
            "ITEM_CREATE" => EventType::ItemCreate,
            "ITEM_MOVE" => EventType::ItemMove,
            "ITEM_RENAME" => EventType::ItemRename,
            "ITEM_COPY" => EventType::ItemCopy,
            "ITEM_TRASH" => EventType::ItemTrash,
            "ITEM_UNDELETE_VIA_TRASH" => EventType::ItemUndeleteViaTrash,
            "ITEM_MODIFY" => EventType::ItemModify,
            other => EventType::Other(other.to_string()),
        }
    }
}

/// The item an event is about (`Event.source` when it is a file or folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    /// `type`: `file`, `folder`, or another resource type (`user`, ...).
    pub kind: String,
    /// Item id.
    pub id: String,
    /// Id of the item's parent folder after the event (`parent.id`), when sent.
    pub parent_id: Option<String>,
    /// Ids of the item's ancestors, root first (`path_collection.entries[].id`), when sent.
    pub path_ids: Vec<String>,
}

/// One event of Box's events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxEvent {
    /// `event_id`: the same event may come twice (Box documents duplicates).
    pub event_id: Option<String>,
    /// `event_type`.
    pub event_type: EventType,
    /// `source`, when it is an item with an id.
    pub source: Option<EventSource>,
}

/// One page (chunk) of `GET /2.0/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// Events of this chunk, in Box's order (which may not be chronological).
    pub entries: Vec<BoxEvent>,
    /// `next_stream_position`, as text (Box sends a string or a number; opaque either way).
    pub next_stream_position: String,
}

/// `Events` as Box sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct RawEvents {
    #[serde(default)]
    pub entries: Vec<Value>,
    #[serde(default)]
    pub next_stream_position: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    source: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawSource {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    parent: Option<RawParent>,
    #[serde(default)]
    path_collection: Option<RawPathCollection>,
}

#[derive(Debug, Deserialize)]
struct RawPathCollection {
    #[serde(default)]
    entries: Vec<RawParent>,
}

impl RawEvents {
    /// The typed page; `Err` names what is wrong (no usable `next_stream_position`, an entry that
    /// is not an object). A source that is not an item with an id (a user, an app) is `None`.
    pub(crate) fn into_page(self) -> Result<EventPage, String> {
        let next_stream_position = match self.next_stream_position {
            Some(Value::String(text)) if !text.is_empty() => text,
            Some(Value::Number(number)) => number.to_string(),
            other => return Err(format!("next_stream_position is {other:?}")),
        };
        let mut entries = Vec::with_capacity(self.entries.len());
        for (index, entry) in self.entries.into_iter().enumerate() {
            let raw: RawEvent =
                serde_json::from_value(entry).map_err(|error| format!("entry {index}: {error}"))?;
            let source = raw
                .source
                .and_then(|value| serde_json::from_value::<RawSource>(value).ok())
                .and_then(|source| {
                    Some(EventSource {
                        kind: source.kind.unwrap_or_default(),
                        id: source.id?,
                        parent_id: source.parent.and_then(|parent| parent.id),
                        path_ids: source
                            .path_collection
                            .map(|paths| paths.entries.into_iter().filter_map(|e| e.id).collect())
                            .unwrap_or_default(),
                    })
                });
            entries.push(BoxEvent {
                event_id: raw.event_id,
                event_type: EventType::parse(raw.event_type.as_deref().unwrap_or_default()),
                source,
            });
        }
        Ok(EventPage {
            entries,
            next_stream_position,
        })
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
    fn events_pages_with_string_or_number_positions() {
        let raw: RawEvents = serde_json::from_value(json!({
            "chunk_size": 3, "next_stream_position": 1_152_922_976_252_290_886_u64,
            "entries": [
                {"type": "event", "event_id": "e1", "event_type": "ITEM_UPLOAD",
                 "source": {"type": "file", "id": "11", "name": "a.mp4",
                    "parent": {"type": "folder", "id": "77"},
                    "path_collection": {"total_count": 2, "entries": [{"type": "folder", "id": "0"}, {"type": "folder", "id": "77"}]}}},
                {"type": "event", "event_id": "e2", "event_type": "COLLABORATION_INVITE",
                 "source": {"type": "user", "id": 5}},
                {"type": "event", "event_type": "ITEM_MOVE", "source": null}
            ]
        }))
        .unwrap();
        let page = raw.into_page().unwrap();
        assert_eq!(page.next_stream_position, "1152922976252290886");
        assert_eq!(page.entries.len(), 3);
        let upload = &page.entries[0];
        assert_eq!(upload.event_type, EventType::ItemUpload);
        assert_eq!(upload.event_id.as_deref(), Some("e1"));
        let source = upload.source.as_ref().unwrap();
        assert_eq!(
            (
                source.kind.as_str(),
                source.id.as_str(),
                source.parent_id.as_deref()
            ),
            ("file", "11", Some("77"))
        );
        assert_eq!(source.path_ids, ["0", "77"]);
        assert_eq!(
            page.entries[1].event_type,
            EventType::Other("COLLABORATION_INVITE".into())
        );
        assert_eq!(page.entries[1].source.as_ref().unwrap().id, "5");
        assert_eq!(page.entries[2].source, None);
        let now: RawEvents = serde_json::from_value(
            json!({"chunk_size": 0, "next_stream_position": "42", "entries": []}),
        )
        .unwrap();
        assert_eq!(now.into_page().unwrap().next_stream_position, "42");
        let missing: RawEvents = serde_json::from_value(json!({"entries": []})).unwrap();
        assert!(missing.into_page().is_err());
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
