//! OTMM resource shapes: folders, assets, lookup-domain values and import jobs, read tolerantly from
//! OTMM's JSON (ids as strings or numbers, optional fields), and the request bodies the client sends.
//! Shapes follow `/work/shared/api-notes/otmm.md` and the examples in `/work/shared/fixtures/otmm/`.

use serde_json::{json, Value};

use super::DamError;
use crate::config::ValueShape;

/// A folder: GET `/folders/{id}` -> `folder_resource.folder`.
#[derive(Debug, Clone, PartialEq)]
pub struct DamFolder {
    /// `asset_id` (40 hex characters).
    pub id: String,
    /// `name`.
    pub name: String,
    /// The whole `folder` object (metadata under `metadata.metadata_element_list`).
    pub json: Value,
}

/// An asset or folder as listed/searched/read: the `asset` object and the fields the pipeline uses.
#[derive(Debug, Clone, PartialEq)]
pub struct DamAsset {
    /// `asset_id`.
    pub id: String,
    /// `name` (empty if absent).
    pub name: String,
    /// `data_type == "CONTAINER"` or a `container_type_id` is present.
    pub is_folder: bool,
    /// `mime_type` (else `master_content_info.mime_type`).
    pub mime_type: Option<String>,
    /// `content_size` in bytes (else `master_content_info.content_size`).
    pub content_size: Option<u64>,
    /// `deleted: true` (pyxecm's asset examples carry `deleted`; a folder listing can include
    /// deleted assets).
    pub deleted: bool,
    /// The whole `asset` object.
    pub json: Value,
}

/// One value of a lookup domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainValue {
    /// `field_value.value`: what is stored in a field.
    pub value: String,
    /// `display_value`, trimmed (OTMM data carries stray spaces).
    pub display: String,
}

/// What an import job shows (GET `/jobs/{id}/assets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// No asset yet (running, queued, or failed: the reply does not tell).
    InProgress,
    /// The job's assets (`assets_resource.asset_list[].asset_id`).
    Completed {
        /// Ids of the imported assets.
        asset_ids: Vec<String>,
    },
}

/// Text of a JSON string or number.
pub(super) fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

pub(super) fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            let float = number.as_f64()?;
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked to lie in [0, 1.8e19) first"
            )]
            let whole =
                (float.is_finite() && (0.0..1.8e19).contains(&float)).then(|| float.round() as u64);
            whole
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The non-empty `asset_id` of an `asset` or `folder` object (`what`).
fn required_id(object: &Value, what: &str) -> Result<String, DamError> {
    object
        .get("asset_id")
        .and_then(value_text)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| DamError::Decode(format!("{what} without asset_id")))
}

/// The member of a reply at `pointer` (`"/folder_resource/folder"`), else [`DamError::Decode`] naming
/// the request `label` and the member (`folder_resource.folder`).
pub(super) fn required<'a>(
    body: &'a Value,
    pointer: &str,
    label: &str,
) -> Result<&'a Value, DamError> {
    body.pointer(pointer).ok_or_else(|| {
        DamError::Decode(format!(
            "{label}: no {}",
            pointer.trim_start_matches('/').replace('/', ".")
        ))
    })
}

impl DamAsset {
    /// Reads an `asset` object (search results, folder children, GET /assets/{id}).
    pub fn from_json(asset: &Value) -> Result<Self, DamError> {
        let id = required_id(asset, "asset")?;
        let master = asset.get("master_content_info");
        let is_folder = asset.get("data_type").and_then(Value::as_str) == Some("CONTAINER")
            || asset
                .get("container_type_id")
                .and_then(Value::as_str)
                .is_some_and(|kind| !kind.is_empty());
        Ok(Self {
            id,
            name: asset.get("name").and_then(value_text).unwrap_or_default(),
            is_folder,
            mime_type: asset
                .get("mime_type")
                .and_then(Value::as_str)
                .or_else(|| {
                    master
                        .and_then(|master| master.get("mime_type"))
                        .and_then(Value::as_str)
                })
                .map(str::to_string),
            content_size: asset.get("content_size").and_then(value_u64).or_else(|| {
                master
                    .and_then(|master| master.get("content_size"))
                    .and_then(value_u64)
            }),
            deleted: asset.get("deleted").and_then(Value::as_bool) == Some(true),
            json: asset.clone(),
        })
    }
}

impl DamFolder {
    /// Reads a `folder` object.
    pub fn from_json(folder: &Value) -> Result<Self, DamError> {
        let id = required_id(folder, "folder")?;
        Ok(Self {
            id,
            name: folder.get("name").and_then(value_text).unwrap_or_default(),
            json: folder.clone(),
        })
    }
}

/// The body of `PATCH /folders/{id}` setting one field to `value`, in `shape`
/// (`dam.api.status_value_shape`): `{"edited_folder":{"data":{"metadata":[{"id":F,
/// "type":"com.artesia.metadata.MetadataField","value":{"value":V}}]}}}` where `V` is
/// `{"type":"string","value":…}` (plain: api-notes/otmm.md and the public `edited_asset`
/// example) or `{"type":"com.artesia.metadata.DomainValue","field_value":{"type":"string",
/// "value":…}}` (a lookup-domain value as OTMM returns it in replies).
pub fn folder_field_patch(field_id: &str, value: &str, shape: ValueShape) -> Value {
    let inner = match shape {
        ValueShape::Plain => json!({"type": "string", "value": value}),
        ValueShape::DomainValue => json!({
            "type": "com.artesia.metadata.DomainValue",
            "field_value": {"type": "string", "value": value}
        }),
    };
    json!({
        "edited_folder": {"data": {"metadata": [{
            "id": field_id,
            "type": "com.artesia.metadata.MetadataField",
            "value": {"value": inner}
        }]}}
    })
}

/// The `asset_filter_request` parameter that leaves deleted assets out of listings and
/// searches: `{"asset_filter_request_param":{"asset_filter_request":{"exclude_deleted_assets":true}}}`
/// (as a public OTMM folder-children client sends it; api-notes/otmm.md "Read against public
/// clients"; `/work/otmm-evidence.md` §2).
pub fn asset_filter_request() -> Value {
    json!({"asset_filter_request_param": {"asset_filter_request": {"exclude_deleted_assets": true}}})
}

/// The import `manifest` part: `{"upload_manifest":{"master_files":[{"file":{"file_name","file_type"}}]}}`.
pub fn import_manifest(file_name: &str, mime_type: &str) -> Value {
    json!({"upload_manifest": {"master_files": [{"file": {"file_name": file_name, "file_type": mime_type}}]}})
}

/// The `search_condition_list` of a scalar condition on one metadata field.
pub fn field_condition(field_id: &str, operator_id: &str, value: &str) -> Value {
    json!({"search_condition_list": {"search_condition": [{
        "type": "com.artesia.search.SearchScalarCondition",
        "metadata_field_id": field_id,
        "relational_operator_id": operator_id,
        "value": value
    }]}})
}

/// Reads a GET `/jobs/{id}/assets` reply (`assets_resource.asset_list[].asset_id`) into a
/// [`JobState`]: the assets listed, or in progress when none is.
pub fn parse_job(body: &Value) -> Result<JobState, DamError> {
    let list = body
        .pointer("/assets_resource/asset_list")
        .or_else(|| body.pointer("/assets_resource"))
        .ok_or_else(|| DamError::Decode("job assets reply without assets_resource".to_string()))?;
    let asset_ids: Vec<String> = list
        .as_array()
        .map(|assets| {
            assets
                .iter()
                .filter_map(|asset| asset.get("asset_id").and_then(value_text))
                .filter(|id| !id.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(if asset_ids.is_empty() {
        JobState::InProgress
    } else {
        JobState::Completed { asset_ids }
    })
}

/// Reads `lookup_domain_resource.lookup_domain.domainValues` (camelCase; snake_case accepted too).
pub fn parse_lookup_domain(body: &Value) -> Result<Vec<DomainValue>, DamError> {
    let domain = body
        .pointer("/lookup_domain_resource/lookup_domain")
        .ok_or_else(|| {
            DamError::Decode(
                "lookup domain reply without lookup_domain_resource.lookup_domain".to_string(),
            )
        })?;
    let values = domain
        .get("domainValues")
        .or_else(|| domain.get("domain_values"))
        .and_then(Value::as_array);
    Ok(values
        .map(|values| {
            values
                .iter()
                .filter_map(|entry| {
                    let value = entry.pointer("/field_value/value").and_then(value_text)?;
                    let display = entry
                        .get("display_value")
                        .and_then(value_text)
                        .map(|display| display.trim().to_string())
                        .filter(|display| !display.is_empty())
                        .unwrap_or_else(|| value.trim().to_string());
                    Some(DomainValue { value, display })
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::http::encode_query_value;

    /// An example OTMM reply from `/work/shared/fixtures/otmm/` (panics when it is missing).
    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/otmm")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("fixture {}: {error}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn folder_and_asset_from_fixtures() {
        let folder = fixture("campaign_folder.json");
        let folder =
            DamFolder::from_json(folder.pointer("/folder_resource/folder").unwrap()).unwrap();
        assert_eq!(folder.id, "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b");
        assert_eq!(folder.name, "C-2026-0142 Nutella Breakfast Moments");
        let as_asset = DamAsset::from_json(&folder.json).unwrap();
        assert!(as_asset.is_folder);

        let asset = fixture("master_asset.json");
        let asset = DamAsset::from_json(asset.pointer("/asset_resource/asset").unwrap()).unwrap();
        assert_eq!(asset.id, "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39");
        assert!(!asset.is_folder);
        assert_eq!(asset.mime_type.as_deref(), Some("video/mp4"));
        assert_eq!(asset.content_size, Some(1_055_736));

        let domain = parse_lookup_domain(&fixture("lookup_domain_asset_type.json")).unwrap();
        assert_eq!(domain.len(), 6);
        assert_eq!(
            domain[2],
            DomainValue {
                value: "banner".into(),
                display: "Banner".into()
            }
        );
    }

    #[test]
    fn lookup_domain_tolerates_snake_case_and_numbers() {
        let body = json!({"lookup_domain_resource": {"lookup_domain": {"domain_id": "X", "domain_values": [
            {"field_value": {"type": "string", "value": 213}, "display_value": " Active Access "},
            {"field_value": {"type": "string", "value": "EN"}},
            {"display_value": "broken"}
        ]}}});
        assert_eq!(
            parse_lookup_domain(&body).unwrap(),
            vec![
                DomainValue {
                    value: "213".into(),
                    display: "Active Access".into()
                },
                DomainValue {
                    value: "EN".into(),
                    display: "EN".into()
                }
            ]
        );
        assert!(parse_lookup_domain(&json!({})).is_err());
    }

    #[test]
    fn jobs() {
        let done =
            json!({"assets_resource": {"asset_list": [{"asset_id": "a1", "name": "x.mp4"}]}});
        assert_eq!(
            parse_job(&done).unwrap(),
            JobState::Completed {
                asset_ids: vec!["a1".into()]
            }
        );
        let running = json!({"assets_resource": {"asset_list": []}});
        assert_eq!(parse_job(&running).unwrap(), JobState::InProgress);
        assert!(parse_job(&json!({"nope": 1})).is_err());
    }

    #[test]
    fn request_bodies() {
        assert_eq!(
            folder_field_patch(
                "FERRERO.FIELD.CAMPAIGN STATUS",
                "A2",
                ValueShape::DomainValue
            ),
            json!({"edited_folder": {"data": {"metadata": [{"id": "FERRERO.FIELD.CAMPAIGN STATUS",
                "type": "com.artesia.metadata.MetadataField", "value": {"value": {"type": "com.artesia.metadata.DomainValue",
                "field_value": {"type": "string", "value": "A2"}}}}]}}})
        );
        assert_eq!(
            folder_field_patch("FERRERO.FIELD.CAMPAIGN STATUS", "A2", ValueShape::Plain),
            json!({"edited_folder": {"data": {"metadata": [{"id": "FERRERO.FIELD.CAMPAIGN STATUS",
                "type": "com.artesia.metadata.MetadataField", "value": {"value": {"type": "string", "value": "A2"}}}]}}})
        );
        assert_eq!(
            import_manifest("x.mp4", "video/mp4"),
            json!({"upload_manifest": {"master_files": [{"file": {"file_name": "x.mp4", "file_type": "video/mp4"}}]}})
        );
        let condition = field_condition("F", "ARTESIA.OPERATOR.CHAR.CONTAINS", "A1").to_string();
        let encoded = encode_query_value(&condition);
        assert!(
            encoded.starts_with("%7B%22search%5Fcondition%5Flist%22")
                && !encoded.contains(['{', '[', '"', ' ']),
            "{encoded}"
        );
    }

    #[test]
    fn assets_tolerate_shapes() {
        let asset = DamAsset::from_json(&json!({"asset_id": "x", "content_size": "12", "master_content_info": {"mime_type": "image/png"}})).unwrap();
        assert_eq!(
            (
                asset.name.as_str(),
                asset.content_size,
                asset.mime_type.as_deref()
            ),
            ("", Some(12), Some("image/png"))
        );
        assert!(DamAsset::from_json(&json!({"name": "no id"})).is_err());
        let folder = DamAsset::from_json(
            &json!({"asset_id": "f", "container_type_id": "ARTESIA.BASIC.FOLDER"}),
        )
        .unwrap();
        assert!(folder.is_folder);
    }
}
