//! The automation plan's notification contracts: the data each email template gets, the values
//! a webhook's `payload_template` is filled with, and the Python `str.format` subset the plan's
//! subjects and payload templates use.
//!
//! Every notification context is built here, by one function per template or webhook event, so
//! the pass that queues a notification and the configuration check that renders every template
//! with sample data (at load time, in strict mode: a template using a variable its context
//! lacks is refused before any campaign reaches A2) see exactly the same keys.
//!
//! Email contexts hold the project's own keys (`campaign`, `masters`, `failures`,
//! `derivatives`, `file`, `problems`, `error`; see `config/email_templates.yaml`) and the plan's
//! (`plan-contracts.md`, "config/email_templates.yaml"):
//!
//! | template | plan keys |
//! |---|---|
//! | `a1_to_a2_complete` | `campaign_name`, `campaign_id`, `campaign_number`, `asset_count`, `assets`, `box_folder_url` |
//! | `a1_to_a2_partial` | `campaign_name`, `campaign_id`, `total_assets`, `successful`, `failed`, `processed_assets`, `failed_assets` |
//! | `a2_to_a3_complete` | `campaign_id`, `campaign_name`, `asset_count` |
//! | `upload_failed` | `filename`, `tracking_id`, `error` |
//! | `campaign_processing_failed` | `campaign`, `error` |
//!
//! `campaign_id` is always the DAM campaign folder id; an asset is
//! `{asset_id, asset_name, tracking_id, box_file_id}` (the plan's code).

use serde_json::{json, Map, Value};

/// What a notification says about a campaign.
#[derive(Debug, Clone, Copy)]
pub struct CampaignFacts<'a> {
    /// DAM campaign folder id (the plan's `campaign_id`).
    pub dam_id: &'a str,
    /// Campaign number, e.g. `C-2026-0142`.
    pub number: &'a str,
    /// Campaign name.
    pub name: &'a str,
    /// Box folder of its masters, once created.
    pub box_folder_id: Option<&'a str>,
}

/// A master asset (A1 -> A2) or a delivered derivative (A2 -> A3) as the plan lists it.
#[derive(Debug, Clone, Copy)]
pub struct AssetFacts<'a> {
    /// DAM asset id (the plan's `asset_id`; empty when not known).
    pub dam_asset_id: &'a str,
    /// File name (the master's DAM file name; the derivative's name as delivered in Box).
    pub name: &'a str,
    /// Name in the DAM (derivatives: the clean name; masters: as `name`).
    pub clean_name: &'a str,
    /// Tracking ID of the master.
    pub tracking_id: &'a str,
    /// Box file id, when in Box.
    pub box_file_id: Option<&'a str>,
}

/// A master that failed in a pass.
#[derive(Debug, Clone, Copy)]
pub struct FailureFacts<'a> {
    /// DAM asset id of the master.
    pub dam_asset_id: &'a str,
    /// The master's DAM file name.
    pub name: &'a str,
    /// Why it failed (one sentence).
    pub reason: &'a str,
}

/// A rejected Box upload.
#[derive(Debug, Clone, Copy)]
pub struct RejectedFacts<'a> {
    /// The file name as uploaded.
    pub name: &'a str,
    /// Box file id.
    pub box_file_id: &'a str,
    /// Name of the folder it was moved to.
    pub folder: &'a str,
    /// The tracking ID its name starts with (its first 6 characters; may be wrong: that can be
    /// why it was rejected).
    pub tracking_id: &'a str,
    /// Every problem found, each a full sentence.
    pub problems: &'a [String],
}

/// A pass that failed as a whole, or a dependency unreachable for too long.
#[derive(Debug, Clone, Copy)]
pub struct IncidentFacts<'a> {
    /// Binary whose passes fail (`a1-to-a2`, `box-poll`, ...).
    pub binary: &'a str,
    /// Host the pass ran on.
    pub host: &'a str,
    /// Environment name.
    pub environment: &'a str,
    /// `failed` (a pass failed, exit 1) or `unreachable` (exit 75 for too long).
    pub kind: &'a str,
    /// The error of the pass (redacted).
    pub error: &'a str,
    /// When the incident started (RFC 3339 UTC).
    pub since: &'a str,
}

/// The Box web address of folder `id`.
pub fn box_folder_url(id: &str) -> String {
    format!("https://app.box.com/folder/{id}")
}

/// The project's `campaign` object: `{dam_id, number, name, box_folder_id, box_folder_url}`
/// (`box_folder_*` null while there is no Box folder).
pub fn campaign_object(campaign: &CampaignFacts<'_>) -> Value {
    json!({
        "dam_id": campaign.dam_id,
        "number": campaign.number,
        "name": campaign.name,
        "box_folder_id": campaign.box_folder_id,
        "box_folder_url": campaign.box_folder_id.map(box_folder_url),
    })
}

/// The plan's asset object `{asset_id, asset_name, tracking_id, box_file_id}`.
fn plan_asset(asset: &AssetFacts<'_>) -> Value {
    json!({
        "asset_id": asset.dam_asset_id,
        "asset_name": asset.clean_name,
        "tracking_id": asset.tracking_id,
        "box_file_id": asset.box_file_id,
    })
}

/// `a1_to_a2_complete`: the project's `campaign`, `masters` (`[{name, tracking_id,
/// box_file_id}]`) and the plan's keys.
pub fn a1_to_a2_complete(campaign: &CampaignFacts<'_>, masters: &[AssetFacts<'_>]) -> Value {
    json!({
        "campaign": campaign_object(campaign),
        "masters": masters.iter().map(|master| json!({"name": master.name, "tracking_id": master.tracking_id, "box_file_id": master.box_file_id})).collect::<Vec<_>>(),
        "campaign_name": campaign.name,
        "campaign_id": campaign.dam_id,
        "campaign_number": campaign.number,
        "asset_count": masters.len(),
        "assets": masters.iter().map(plan_asset).collect::<Vec<_>>(),
        "box_folder_url": campaign.box_folder_id.map(box_folder_url).unwrap_or_default(),
    })
}

/// `a1_to_a2_partial`: the project's `campaign`, `masters` (those in Box), `failures`
/// (`[{name, reason}]`), `total_masters`, `failed_count`, and the plan's keys.
pub fn a1_to_a2_partial(
    campaign: &CampaignFacts<'_>,
    total: usize,
    succeeded: &[AssetFacts<'_>],
    failures: &[FailureFacts<'_>],
) -> Value {
    json!({
        "campaign": campaign_object(campaign),
        "masters": succeeded.iter().map(|master| json!({"name": master.name, "tracking_id": master.tracking_id, "box_file_id": master.box_file_id})).collect::<Vec<_>>(),
        "failures": failures.iter().map(|failure| json!({"name": failure.name, "reason": failure.reason})).collect::<Vec<_>>(),
        "total_masters": total,
        "failed_count": failures.len(),
        "campaign_name": campaign.name,
        "campaign_id": campaign.dam_id,
        "total_assets": total,
        "successful": succeeded.len(),
        "failed": failures.len(),
        "processed_assets": succeeded.iter().map(plan_asset).collect::<Vec<_>>(),
        "failed_assets": failures.iter().map(|failure| json!({"asset_id": failure.dam_asset_id, "asset_name": failure.name, "error": failure.reason})).collect::<Vec<_>>(),
    })
}

/// `a2_to_a3_complete`: the project's `campaign`, `derivatives` (`[{name, clean_name,
/// tracking_id, dam_asset_id}]`) and the plan's `campaign_id`, `campaign_name`, `asset_count`
/// (derivatives delivered).
pub fn a2_to_a3_complete(campaign: &CampaignFacts<'_>, derivatives: &[AssetFacts<'_>]) -> Value {
    json!({
        "campaign": campaign_object(campaign),
        "derivatives": derivatives.iter().map(|derivative| json!({"name": derivative.name, "clean_name": derivative.clean_name, "tracking_id": derivative.tracking_id, "dam_asset_id": derivative.dam_asset_id})).collect::<Vec<_>>(),
        "campaign_id": campaign.dam_id,
        "campaign_name": campaign.name,
        "asset_count": derivatives.len(),
    })
}

/// `upload_failed`: the project's `file` (`{name, box_file_id, folder}`), `problems`, and the
/// plan's `filename`, `tracking_id`, `error` (the problems joined with `; `).
pub fn upload_failed(file: &RejectedFacts<'_>) -> Value {
    json!({
        "file": {"name": file.name, "box_file_id": file.box_file_id, "folder": file.folder},
        "problems": file.problems,
        "filename": file.name,
        "tracking_id": file.tracking_id,
        "error": file.problems.join("; "),
    })
}

/// `campaign_processing_failed`: `campaign` (the project's object, which the plan's key
/// shares) and `error`.
pub fn campaign_processing_failed(campaign: &CampaignFacts<'_>, error: &str) -> Value {
    json!({ "campaign": campaign_object(campaign), "error": error })
}

/// `critical_error` / `critical_recovered`: `binary`, `host`, `environment`, `kind`, `error`
/// (the plan's `send_critical_error(error=...)`), `since`.
pub fn incident(facts: &IncidentFacts<'_>) -> Value {
    json!({
        "binary": facts.binary,
        "host": facts.host,
        "environment": facts.environment,
        "kind": facts.kind,
        "error": facts.error,
        "since": facts.since,
    })
}

/// Values of the `campaign.a2` / `campaign.a3` webhooks (the plan's `campaign_status_update`):
/// `campaign_id` (DAM folder id), `campaign_number`, `campaign_name`, `old_status`,
/// `new_status`, `asset_count` (number), `timestamp` (Unix seconds, number),
/// `processed_assets` (`[{asset_id, asset_name, tracking_id, box_file_id}]`), and `event`.
pub fn campaign_status_values(
    event: &str,
    campaign: &CampaignFacts<'_>,
    old_status: &str,
    new_status: &str,
    assets: &[AssetFacts<'_>],
    timestamp: i64,
) -> Value {
    json!({
        "event": event,
        "campaign_id": campaign.dam_id,
        "campaign_number": campaign.number,
        "campaign_name": campaign.name,
        "old_status": old_status,
        "new_status": new_status,
        "asset_count": assets.len(),
        "timestamp": timestamp,
        "processed_assets": assets.iter().map(plan_asset).collect::<Vec<_>>(),
    })
}

/// Values of the `asset.imported` webhook (the plan's `asset_upload_complete`): `tracking_id`,
/// `dam_asset_id`, `filename` (the name in the DAM), `timestamp` (Unix seconds, number),
/// `box_file_id`, and `event`.
pub fn asset_imported_values(asset: &AssetFacts<'_>, timestamp: i64) -> Value {
    json!({
        "event": "asset.imported",
        "tracking_id": asset.tracking_id,
        "dam_asset_id": asset.dam_asset_id,
        "filename": asset.clean_name,
        "box_file_id": asset.box_file_id,
        "timestamp": timestamp,
    })
}

// ----- samples for the load-time check -----

const SAMPLE_CAMPAIGN: CampaignFacts<'static> = CampaignFacts {
    dam_id: "0123456789abcdef0123456789abcdef01234567",
    number: "C-2026-0142",
    name: "Breakfast Moments",
    box_folder_id: Some("348304357505"),
};

const SAMPLE_ASSETS: &[AssetFacts<'static>] = &[
    AssetFacts {
        dam_asset_id: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        name: "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
        clean_name: "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s.mp4",
        tracking_id: "K7Q2XM",
        box_file_id: Some("1400000000001"),
    },
    AssetFacts {
        dam_asset_id: "b1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        name: "master-hero.mov",
        clean_name: "master-hero.mov",
        tracking_id: "P3R8ZD",
        box_file_id: None,
    },
];

/// Sample contexts of template `name` (several, covering the branches a template may take:
/// with and without a Box folder), or none for a name no pass uses.
pub fn sample_contexts(name: &str) -> Vec<Value> {
    let without_box = CampaignFacts {
        box_folder_id: None,
        ..SAMPLE_CAMPAIGN
    };
    let failures = [FailureFacts {
        dam_asset_id: "c1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        name: "master-cutdown.mov",
        reason: "Box answered 503 Service Unavailable",
    }];
    let problems = [
        "The name does not start with a known tracking ID.".to_string(),
        "The language code XX is not in the DAM's list.".to_string(),
    ];
    let rejected = RejectedFacts {
        name: "XXXXXX_Breakfast_video_XX_v01.mp4",
        box_file_id: "1400000000009",
        folder: "incoming",
        tracking_id: "XXXXXX",
        problems: &problems,
    };
    let incident_facts = |kind| IncidentFacts {
        binary: "box-poll",
        host: "scaling-01",
        environment: "production",
        kind,
        error: "cannot reach the DAM: connection refused",
        since: "2026-11-20T10:00:00Z",
    };
    match name {
        "a1_to_a2_complete" => vec![
            a1_to_a2_complete(&SAMPLE_CAMPAIGN, SAMPLE_ASSETS),
            a1_to_a2_complete(&without_box, SAMPLE_ASSETS),
        ],
        "a1_to_a2_partial" => vec![
            a1_to_a2_partial(&SAMPLE_CAMPAIGN, 3, SAMPLE_ASSETS, &failures),
            a1_to_a2_partial(&without_box, 3, SAMPLE_ASSETS, &failures),
        ],
        "a2_to_a3_complete" => vec![
            a2_to_a3_complete(&SAMPLE_CAMPAIGN, SAMPLE_ASSETS),
            a2_to_a3_complete(&without_box, SAMPLE_ASSETS),
        ],
        "upload_failed" => vec![upload_failed(&rejected)],
        "campaign_processing_failed" => vec![
            campaign_processing_failed(&SAMPLE_CAMPAIGN, "the status field is missing"),
            campaign_processing_failed(&without_box, "the status field is missing"),
        ],
        "critical_error" | "critical_recovered" => vec![
            incident(&incident_facts("failed")),
            incident(&incident_facts("unreachable")),
        ],
        _ => Vec::new(),
    }
}

/// Sample values of webhook event `event` (for checking a `payload_template` at load time).
pub fn sample_webhook_values(event: &str) -> Value {
    match event {
        "asset.imported" => asset_imported_values(&SAMPLE_ASSETS[0], 1),
        _ => campaign_status_values(event, &SAMPLE_CAMPAIGN, "A1", "A2", SAMPLE_ASSETS, 1),
    }
}

// ----- str.format -----

/// Why a `str.format` text could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `{name}` names a value the data lacks (Python's `KeyError`).
    #[error("unknown placeholder {{{0}}} (known: {1})")]
    Unknown(String, String),
    /// A `{` without its `}`, or a lone `}` (write `{{` / `}}` for a literal brace).
    #[error("unbalanced brace at character {0} (write {{{{ or }}}} for a literal brace)")]
    Unbalanced(usize),
    /// A conversion (`!r`) or format spec (`:>10`), which this subset does not support.
    #[error("placeholder {{{0}}}: conversions and format specs are not supported")]
    Unsupported(String),
}

/// The value at a `str.format` field name: `name`, `name.attr`, `name[index]`, `name[key]`.
fn lookup<'v>(data: &'v Value, field: &str) -> Option<&'v Value> {
    let mut rest = field;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let mut current = data.get(&rest[..end])?;
    rest = &rest[end..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            current = current.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let key = &after[..close];
            current = match key.parse::<usize>() {
                Ok(index) if current.is_array() => current.get(index)?,
                _ => current.get(key)?,
            };
            rest = &after[close + 1..];
        } else {
            return None;
        }
    }
    Some(current)
}

/// How Python prints a value in `str.format`: text as is, `True`/`False`, `None`, numbers as
/// written, lists and objects as JSON.
fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

fn known_keys(data: &Value) -> String {
    data.as_object()
        .map(|map| {
            map.keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Python's `text.format(**data)` for the subset the plan uses: `{name}`, `{name.attr}`,
/// `{name[0]}`, `{{` and `}}` for literal braces. Values print as Python would (see
/// [`display`]).
///
/// Errors: [`FormatError`] for an unknown name (Python's `KeyError`), an unbalanced brace, or
/// a conversion/format spec.
pub fn format_braces(text: &str, data: &Value) -> Result<String, FormatError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, next)| *next) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|(_, next)| *next) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(FormatError::Unbalanced(index)),
            '{' => {
                let start = index + 1;
                let Some(close) = text[start..].find('}').map(|offset| start + offset) else {
                    return Err(FormatError::Unbalanced(index));
                };
                let field = &text[start..close];
                if field.contains('{') {
                    return Err(FormatError::Unbalanced(index));
                }
                if field.contains(['!', ':']) {
                    return Err(FormatError::Unsupported(field.to_string()));
                }
                let value = lookup(data, field.trim())
                    .ok_or_else(|| FormatError::Unknown(field.to_string(), known_keys(data)))?;
                out.push_str(&display(value));
                while chars.peek().is_some_and(|(next, _)| *next <= close) {
                    chars.next();
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Fills the plan's `payload_template` with `values`: a text that is exactly one placeholder
/// (`"{asset_count}"`) becomes that value with its JSON type (numbers stay numbers,
/// `processed_assets` an array); any other text is filled as [`format_braces`]; mappings and
/// lists are filled item by item; other values are kept.
///
/// Errors: as [`format_braces`].
pub fn fill_payload_template(template: &Value, values: &Value) -> Result<Value, FormatError> {
    Ok(match template {
        Value::String(text) => {
            let whole = text
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|field| !field.contains(['{', '}', '!', ':']));
            match whole {
                Some(field) => lookup(values, field.trim())
                    .cloned()
                    .ok_or_else(|| FormatError::Unknown(field.to_string(), known_keys(values)))?,
                None => Value::String(format_braces(text, values)?),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| fill_payload_template(item, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut filled = Map::new();
            for (key, value) in map {
                filled.insert(key.clone(), fill_payload_template(value, values)?);
            }
            Value::Object(filled)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_format_fills_names_attributes_indexes_and_literal_braces() {
        let data = json!({"campaign_name": "Breakfast", "n": 3, "ok": true, "none": null,
            "campaign": {"number": "C-1"}, "assets": [{"asset_name": "a.mp4"}]});
        assert_eq!(
            format_braces(
                "{campaign_name} {n} {ok} {none} {campaign.number} {assets[0].asset_name} {{x}}",
                &data
            )
            .unwrap(),
            "Breakfast 3 True None C-1 a.mp4 {x}"
        );
        assert_eq!(
            format_braces("Campaign {campaign_name}: done", &data).unwrap(),
            "Campaign Breakfast: done"
        );
        assert!(matches!(
            format_braces("{missing}", &data),
            Err(FormatError::Unknown(name, _)) if name == "missing"
        ));
        assert_eq!(format_braces("{n", &data), Err(FormatError::Unbalanced(0)));
        assert_eq!(format_braces("n}", &data), Err(FormatError::Unbalanced(1)));
        assert!(matches!(
            format_braces("{n:>4}", &data),
            Err(FormatError::Unsupported(_))
        ));
        // A Jinja expression is not str.format: `{{` is a literal brace, so this stays text.
        assert_eq!(
            format_braces("{{ campaign_name }}", &data).unwrap(),
            "{ campaign_name }"
        );
    }

    #[test]
    fn payload_template_keeps_the_json_type_of_a_whole_placeholder() {
        let template = json!({
            "campaign_id": "{campaign_id}",
            "asset_count": "{asset_count}",
            "timestamp": "{timestamp}",
            "processed_assets": "{processed_assets}",
            "label": "{campaign_number} {campaign_name}",
            "fixed": 7,
            "nested": {"status": ["{old_status}", "{new_status}"]},
        });
        let values = campaign_status_values(
            "campaign.a2",
            &SAMPLE_CAMPAIGN,
            "A1",
            "A2",
            SAMPLE_ASSETS,
            1_790_000_000,
        );
        let body = fill_payload_template(&template, &values).unwrap();
        assert_eq!(
            body,
            json!({
                "campaign_id": SAMPLE_CAMPAIGN.dam_id,
                "asset_count": 2,
                "timestamp": 1_790_000_000,
                "processed_assets": [
                    {"asset_id": SAMPLE_ASSETS[0].dam_asset_id, "asset_name": SAMPLE_ASSETS[0].clean_name, "tracking_id": "K7Q2XM", "box_file_id": "1400000000001"},
                    {"asset_id": SAMPLE_ASSETS[1].dam_asset_id, "asset_name": "master-hero.mov", "tracking_id": "P3R8ZD", "box_file_id": null},
                ],
                "label": "C-2026-0142 Breakfast Moments",
                "fixed": 7,
                "nested": {"status": ["A1", "A2"]},
            })
        );
        assert!(body["asset_count"].is_u64());
        assert!(body["timestamp"].is_i64());
        let unknown = fill_payload_template(&json!({"x": "{campain_id}"}), &values).unwrap_err();
        assert!(unknown.to_string().contains("campain_id"), "{unknown}");
    }

    #[test]
    fn every_used_template_has_plan_and_project_samples() {
        for name in crate::config::REQUIRED_TEMPLATES
            .iter()
            .chain(crate::config::ALERT_TEMPLATES)
        {
            assert!(!sample_contexts(name).is_empty(), "{name}");
        }
        let complete = &sample_contexts("a1_to_a2_complete")[0];
        for key in [
            "campaign_name",
            "campaign_id",
            "campaign_number",
            "asset_count",
            "assets",
            "box_folder_url",
            "campaign",
            "masters",
        ] {
            assert!(complete.get(key).is_some(), "{key}");
        }
        let partial = &sample_contexts("a1_to_a2_partial")[0];
        assert_eq!(
            partial["failed_assets"][0]["error"],
            "Box answered 503 Service Unavailable"
        );
        assert_eq!(partial["successful"], 2);
    }
}
