//! The DAM asset representation of a derivative, built from the master's metadata, the parsed file
//! name, the media probe and `config/field_mappings.yaml` (design §1 step 3).
//!
//! OTMM shapes follow `shared/api-notes/otmm.md` and `shared/fixtures/otmm/master_asset.json`:
//! a field is `{"type":"com.artesia.metadata.MetadataField","id":..,"value":{"value":<typed value>}}`
//! where the typed value is `{"type":"string"|"number"|"datetime","value":..}` or a lookup-domain
//! value `{"type":"com.artesia.metadata.DomainValue","field_value":{"type":"string","value":..},
//! "display_value":..}`; fields sit in categories (`metadata_element_list` nested twice). The import
//! body (`asset_representation`) is
//! `{"asset_resource":{"asset":{"metadata_model_id":..,"security_policy_list":[{"id":2}],"metadata":{"metadata_element_list":[fields]}}}}`.
//!
//! Media attributes come in through [`BuildInput::media_attr`], a closure `attr -> text` (e.g.
//! `|attr| media_info.attr(attr)`), rather than `&MediaInfo`: this module then depends on nothing
//! but the naming and config types, and tests need no probe.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

use crate::config::{
    DamConfig, Fallback, FieldMappings, FieldSource, FieldUpdate, MediaAttr, Transform,
};
use crate::naming::ParsedName;

/// OTMM type of a metadata field object.
pub const METADATA_FIELD_TYPE: &str = "com.artesia.metadata.MetadataField";
/// OTMM type of a lookup-domain value.
pub const DOMAIN_VALUE_TYPE: &str = "com.artesia.metadata.DomainValue";

/// Find a field anywhere in an OTMM metadata tree (asset JSON, `asset_resource` wrapper or its
/// `metadata` object): returns the field's plain value as text (string/number/datetime value, or a
/// DomainValue's `field_value.value`), trimmed; `None` when the field is absent or empty. Table
/// fields (`values: [...]`) give their first non-empty value.
pub fn field_text(asset_or_metadata: &Value, field_id: &str) -> Option<String> {
    find_field(asset_or_metadata, field_id).and_then(text_of_field)
}

/// Field JSON object in OTMM shape
/// `{"type":"com.artesia.metadata.MetadataField","id":..,"value":{"value":{"type":"string","value":..}}}`.
pub fn string_field(id: &str, value: &str) -> Value {
    json!({
        "type": METADATA_FIELD_TYPE,
        "id": id,
        "value": {"value": {"type": "string", "value": value}}
    })
}

/// Field JSON with a lookup-domain value:
/// `{"type":"com.artesia.metadata.MetadataField","id":..,"value":{"value":{"type":"com.artesia.metadata.DomainValue","field_value":{"type":"string","value":..}}}}`.
pub fn domain_field(id: &str, value: &str) -> Value {
    json!({
        "type": METADATA_FIELD_TYPE,
        "id": id,
        "value": {"value": {"type": DOMAIN_VALUE_TYPE, "field_value": {"type": "string", "value": value}}}
    })
}

/// Field JSON with a number value `{"type":"number","value":N}` (whole numbers as JSON integers).
#[expect(
    clippy::cast_possible_truncation,
    reason = "only whole numbers below 2^53 become integers"
)]
pub fn number_field(id: &str, value: f64) -> Value {
    let number = if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        json!(value as i64)
    } else {
        json!(value)
    };
    json!({
        "type": METADATA_FIELD_TYPE,
        "id": id,
        "value": {"value": {"type": "number", "value": number}}
    })
}

/// Source of the allowed values of OTMM lookup domains (GET /otmmapi/v6/lookupdomains/{id}).
pub trait DomainValues {
    /// The allowed `field_value`s of `domain_id` (any case, any surrounding spaces: comparison
    /// trims and ignores case).
    ///
    /// Errors: a sentence saying why the domain could not be read. [`build_representation`] turns it
    /// into a problem (strict mode) or a warning; an implementation that fails for a passing reason
    /// (DAM down) should remember that, so its caller can retry the file instead of rejecting it.
    fn values(&mut self, domain_id: &str) -> Result<Vec<String>, String>;
}

/// A fixed table of domains (tests, sandbox, dry runs). An unknown domain is an error.
impl DomainValues for BTreeMap<String, Vec<String>> {
    fn values(&mut self, domain_id: &str) -> Result<Vec<String>, String> {
        self.get(domain_id)
            .cloned()
            .ok_or_else(|| format!("unknown lookup domain {domain_id}"))
    }
}

/// Everything [`build_representation`] reads about one derivative.
#[derive(Clone)]
pub struct BuildInput<'a> {
    /// Master asset JSON (GET /assets/{id} `asset` object, or its `asset_resource` wrapper) as stored
    /// in `master_assets.full_metadata`.
    pub master: &'a Value,
    /// The derivative's parsed V2 name.
    pub parsed: &'a ParsedName,
    /// Media attribute lookup for `media.<attr>` sources -> text (e.g. `"15.015"`), `None` when
    /// unknown. Typically `&|attr| media_info.attr(attr)`.
    pub media_attr: &'a dyn Fn(MediaAttr) -> Option<String>,
    /// Value for `dam.tracking_field_id`: `{tracking_id}:{clean name}:v{version}`.
    pub tracking_marker: String,
}

impl fmt::Debug for BuildInput<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BuildInput")
            .field("parsed", &self.parsed)
            .field("tracking_marker", &self.tracking_marker)
            .finish_non_exhaustive()
    }
}

/// The result of [`build_representation`].
#[derive(Debug, Clone)]
pub struct Representation {
    /// `{"asset_resource":{"asset":{metadata_model_id, security_policy_list, metadata:{metadata_element_list:[fields]}}}}`.
    pub asset_representation: Value,
    /// Field ID -> final text value (for the DB and logs); fields without a value are left out.
    pub fields: BTreeMap<String, String>,
    /// Non-strict domain mismatches, unreadable domains in non-strict mode, etc.
    pub warnings: Vec<String>,
}

/// Builds the import body of a derivative.
///
/// Order: `mvp_fields` copied from the master (keeping the master's field JSON, e.g. DomainValue
/// shape; fields the master lacks are skipped), then `filename_field_updates` (source -> transform
/// -> fallback `master` -> default; an update that ends without a value removes the field, so a
/// master's value copied as an mvp field never stands for the derivative's unless `fallback: master`
/// says so), then `default_field_values` for fields still empty, then
/// `forced_field_values`; then the tracking marker in `dam.tracking_field_id`.
///
/// Value shapes: an update with `validate_domain`, or any value written into a field that is a
/// DomainValue on the master, gets the DomainValue shape; numeric media sources
/// (`media.duration_seconds`, `width`, `height`, `frame_rate`) and values written into number fields
/// get `{"type":"number","value":N}`; everything else is a string.
///
/// Domain validation (when `validate_domain_values.enabled` and the update names a domain): the
/// value is compared with the domain's values trimmed and ignoring case, and written in the
/// domain's own spelling; a mismatch is a problem in strict mode, else a warning (the value is
/// written as is).
///
/// Errors: every problem at once — a required field without a value, a strict-mode domain
/// mismatch, a domain that could not be read in strict mode.
pub fn build_representation(
    input: &BuildInput,
    mappings: &FieldMappings,
    dam: &DamConfig,
    domains: &mut dyn DomainValues,
) -> Result<Representation, Vec<String>> {
    let mut fields = FieldList::default();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut domain_cache: BTreeMap<String, Result<Vec<String>, String>> = BTreeMap::new();
    let validation = &mappings.validate_domain_values;

    for id in &mappings.mvp_fields {
        if let Some(field) = find_field(input.master, id) {
            fields.set(id, field.clone());
        } else {
            tracing::debug!(field = %id, "master has no such field; not copied");
        }
    }

    for update in &mappings.filename_field_updates {
        let id = update.field_id.as_str();
        let from_source = source_value(&update.source, input)
            .map(|value| Transform::apply_all(&update.transform, &value))
            .filter(|value| !value.trim().is_empty());
        let value = if let Some(value) = from_source {
            value
        } else {
            if update.fallback == Some(Fallback::Master) {
                if let Some(field) =
                    find_field(input.master, id).filter(|field| text_of_field(field).is_some())
                {
                    fields.set(id, field.clone());
                    continue;
                }
            }
            let fallback_value = match &update.fallback {
                Some(Fallback::Value(value)) => Some(value.clone()),
                _ => None,
            };
            if let Some(value) = fallback_value
                .or_else(|| update.default.clone())
                .filter(|value| !value.trim().is_empty())
            {
                value
            } else {
                if update.required {
                    problems.push(format!(
                        "field {id} is required but its source {} is empty{}",
                        update.source,
                        if update.fallback == Some(Fallback::Master) {
                            " and the master has no value"
                        } else {
                            ""
                        }
                    ));
                }
                // No value for this derivative: do not keep the master's (e.g. a master's
                // duration on an image). `fallback: master` is the way to keep it.
                fields.remove(id);
                continue;
            }
        };
        let value = match (&update.validate_domain, validation.enabled) {
            (Some(domain), true) => {
                let allowed = domain_cache
                    .entry(domain.clone())
                    .or_insert_with(|| domains.values(domain));
                match check_domain(&value, allowed, update, domain) {
                    DomainCheck::Valid(canonical) => canonical,
                    DomainCheck::Invalid(message) => {
                        if validation.strict_mode {
                            problems.push(message);
                        } else {
                            warnings.push(message);
                        }
                        value
                    }
                }
            }
            _ => value,
        };
        let shape = if update.validate_domain.is_some() {
            Shape::Domain
        } else if update.source.media().is_some_and(|attr| attr.is_numeric()) {
            Shape::Number
        } else {
            existing_shape(&fields, input.master, id)
        };
        fields.set(id, make_field(id, &value, shape));
    }

    for (id, value) in &mappings.default_field_values {
        if fields.text(id).is_none() && !value.trim().is_empty() {
            let shape = existing_shape(&fields, input.master, id);
            fields.set(id, make_field(id, value, shape));
        }
    }
    for (id, value) in &mappings.forced_field_values {
        let shape = existing_shape(&fields, input.master, id);
        fields.set(id, make_field(id, value, shape));
    }
    if !dam.tracking_field_id.trim().is_empty() {
        fields.set(
            &dam.tracking_field_id,
            string_field(&dam.tracking_field_id, &input.tracking_marker),
        );
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let texts: BTreeMap<String, String> = fields
        .entries
        .iter()
        .filter_map(|(id, field)| text_of_field(field).map(|text| (id.clone(), text)))
        .collect();
    let policies: Vec<Value> = dam
        .security_policy_ids
        .iter()
        .map(|id| json!({"id": id}))
        .collect();
    let elements: Vec<Value> = fields.entries.into_iter().map(|(_, field)| field).collect();
    Ok(Representation {
        asset_representation: json!({
            "asset_resource": {
                "asset": {
                    "metadata_model_id": dam.metadata_model_id,
                    "security_policy_list": policies,
                    "metadata": {"metadata_element_list": elements}
                }
            }
        }),
        fields: texts,
        warnings,
    })
}

/// Ordered field list keyed by ID (a later `set` replaces in place).
#[derive(Default)]
struct FieldList {
    entries: Vec<(String, Value)>,
}

impl FieldList {
    fn set(&mut self, id: &str, field: Value) {
        match self.entries.iter_mut().find(|(known, _)| known == id) {
            Some(entry) => entry.1 = field,
            None => self.entries.push((id.to_string(), field)),
        }
    }

    fn remove(&mut self, id: &str) {
        self.entries.retain(|(known, _)| known != id);
    }

    fn get(&self, id: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, field)| field)
    }

    fn text(&self, id: &str) -> Option<String> {
        self.get(id).and_then(text_of_field)
    }
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    String,
    Number,
    Domain,
}

fn make_field(id: &str, value: &str, shape: Shape) -> Value {
    match shape {
        Shape::Domain => domain_field(id, value),
        Shape::Number => match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => number_field(id, number),
            _ => string_field(id, value),
        },
        Shape::String => string_field(id, value),
    }
}

/// The shape of the field as already built, else as on the master, else string.
fn existing_shape(fields: &FieldList, master: &Value, id: &str) -> Shape {
    let field = fields.get(id).or_else(|| find_field(master, id));
    let typed = field
        .and_then(|field| field.get("value"))
        .and_then(|value| value.get("value"));
    match typed
        .and_then(|typed| typed.get("type"))
        .and_then(Value::as_str)
    {
        Some(DOMAIN_VALUE_TYPE) => Shape::Domain,
        Some("number") => Shape::Number,
        _ if typed.is_some_and(|typed| typed.get("field_value").is_some()) => Shape::Domain,
        _ => Shape::String,
    }
}

/// The raw value of a mapping source, trimmed; `None` when empty or unknown.
fn source_value(source: &FieldSource, input: &BuildInput) -> Option<String> {
    let parsed = input.parsed;
    let value = match source {
        FieldSource::CleanFilename => Some(parsed.clean_filename.clone()),
        FieldSource::OriginalFilename => Some(parsed.original.clone()),
        FieldSource::TrackingId => Some(parsed.tracking_id.clone()),
        FieldSource::Extension => Some(parsed.extension.clone()),
        FieldSource::Media(attr) => (input.media_attr)(*attr),
        FieldSource::Segment(name) => parsed.segments.get(name).cloned(),
    };
    value
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

enum DomainCheck {
    /// The domain's own spelling of the value.
    Valid(String),
    /// A sentence for the producer (problem or warning).
    Invalid(String),
}

fn check_domain(
    value: &str,
    allowed: &Result<Vec<String>, String>,
    update: &FieldUpdate,
    domain: &str,
) -> DomainCheck {
    let label = update.source.to_string().replace(['_', '.'], " ");
    match allowed {
        Err(error) => DomainCheck::Invalid(format!(
            "could not check {label} {value:?} against lookup domain {domain} (field {}): {error}",
            update.field_id
        )),
        Ok(values) => {
            let wanted = value.trim().to_lowercase();
            if let Some(found) = values
                .iter()
                .find(|candidate| candidate.trim().to_lowercase() == wanted)
            {
                DomainCheck::Valid(found.trim().to_string())
            } else {
                let mut listed: Vec<&str> = values
                    .iter()
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .collect();
                listed.sort_unstable();
                listed.dedup();
                let shown = if listed.len() > 40 {
                    format!("{}, ... ({} values)", listed[..40].join(", "), listed.len())
                } else {
                    listed.join(", ")
                };
                DomainCheck::Invalid(format!(
                    "{label} {value:?} is not an allowed value of lookup domain {domain} (field {}); allowed: {shown}",
                    update.field_id
                ))
            }
        }
    }
}

/// The first MetadataField object with this `id`, searching the whole tree.
fn find_field<'a>(tree: &'a Value, field_id: &str) -> Option<&'a Value> {
    match tree {
        Value::Object(map) => {
            let is_field = map.get("id").and_then(Value::as_str) == Some(field_id)
                && match map.get("type").and_then(Value::as_str) {
                    Some(kind) => kind == METADATA_FIELD_TYPE,
                    None => map.contains_key("value"),
                };
            if is_field {
                return Some(tree);
            }
            map.values().find_map(|child| find_field(child, field_id))
        }
        Value::Array(items) => items.iter().find_map(|item| find_field(item, field_id)),
        _ => None,
    }
}

/// The plain text of a field object (see [`field_text`]).
fn text_of_field(field: &Value) -> Option<String> {
    let value = field.get("value")?;
    if let Some(typed) = value.get("value") {
        if let Some(text) = typed_text(typed) {
            return Some(text);
        }
    }
    value
        .get("values")
        .and_then(Value::as_array)
        .and_then(|items| {
            items.iter().find_map(|item| {
                item.get("value")
                    .and_then(typed_text)
                    .or_else(|| typed_text(item))
            })
        })
}

/// Text of a typed value: DomainValue `field_value.value`, else `value`.
fn typed_text(typed: &Value) -> Option<String> {
    let scalar = match typed.get("field_value") {
        Some(field_value) => field_value.get("value").unwrap_or(field_value),
        None => typed.get("value")?,
    };
    let text = match scalar {
        Value::String(text) => text.trim().to_string(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CampaignModel, DamAuth, DomainValidation};
    use crate::naming::{classify, NameCheck, NamingConfig};
    use crate::secret::Secret;
    use std::path::PathBuf;

    /// The OTMM master asset fixture; panics when it is absent (a test must not pass by skipping).
    fn fixture() -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/otmm/master_asset.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("fixture {}: {error}", path.display()));
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    fn parsed(name: &str) -> ParsedName {
        match classify(name, &NamingConfig::default()) {
            NameCheck::Parsed(parsed) => parsed,
            other => panic!("{other:?}"),
        }
    }

    fn update(field_id: &str, source: &str) -> FieldUpdate {
        FieldUpdate {
            field_id: field_id.into(),
            source: FieldSource::parse(source, &NamingConfig::default().segment_names())
                .expect("a valid source"),
            transform: Vec::new(),
            required: false,
            fallback: None,
            default: None,
            validate_domain: None,
        }
    }

    fn mappings() -> FieldMappings {
        FieldMappings {
            mvp_fields: [
                "ARTESIA.FIELD.ASSET NAME",
                "ARTESIA.FIELD.ASSET DESCRIPTION",
                "FERRERO.FIELD.MKTG.ASSET TYPE",
                "FERRERO.FIELD.FISCAL YEAR",
                "MAIN_LANGUAGES",
                "FERRERO.FIELD.BRAND",
                "FERRERO.FIELD.ASSETCOMPLIANCE",
                "FERRERO.MARKETING.FIELD.DURATION_SECONDS",
                "FERRERO.MARKET.FIELD.RIGHTS_EXPIRY",
                "NOT.ON.MASTER",
            ]
            .map(String::from)
            .to_vec(),
            filename_field_updates: vec![
                FieldUpdate {
                    required: true,
                    ..update("ARTESIA.FIELD.ASSET NAME", "clean_filename")
                },
                FieldUpdate {
                    transform: vec![Transform::DashToSpace],
                    ..update("ARTESIA.FIELD.ASSET DESCRIPTION", "subject_title")
                },
                FieldUpdate {
                    transform: vec![Transform::Lower],
                    validate_domain: Some("FERRERO.DOMAIN.MKTG ASSET TYPE".into()),
                    ..update("FERRERO.FIELD.MKTG.ASSET TYPE", "asset_type")
                },
                FieldUpdate {
                    transform: vec![Transform::Upper],
                    validate_domain: Some("FERRERO.DOMAIN.LANGUAGES".into()),
                    ..update("MAIN_LANGUAGES", "language_code")
                },
                update(
                    "FERRERO.MARKETING.FIELD.DURATION_SECONDS",
                    "media.duration_seconds",
                ),
                update("FERRERO.MARKETING.FIELD.WIDTH", "media.width"),
            ],
            forced_field_values: BTreeMap::from([
                (
                    "FERRERO.FIELD.ASSET STATUS".to_string(),
                    "Final".to_string(),
                ),
                (
                    "FERRERO.FIELD.SOURCE SYSTEM".to_string(),
                    "content-scaling".to_string(),
                ),
            ]),
            default_field_values: BTreeMap::from([
                (
                    "FERRERO.FIELD.ASSETCOMPLIANCE".to_string(),
                    "should not replace".to_string(),
                ),
                (
                    "FERRERO.FIELD.USAGE RIGHTS".to_string(),
                    "Standard".to_string(),
                ),
            ]),
            validate_domain_values: DomainValidation {
                enabled: true,
                cache_ttl_hours: 24,
                cache_file: None,
                strict_mode: true,
            },
        }
    }

    fn dam() -> DamConfig {
        DamConfig {
            campaign: CampaignModel {
                status_field_id: "S".into(),
                number_field_id: "N".into(),
                name_field_id: "M".into(),
                ..CampaignModel::default()
            },
            connect_timeout_secs: 1,
            read_timeout_secs: 1,
            content_timeout_secs: 1,
            import_job_timeout_secs: 1,
            import_landing_secs: 2,
            max_retries: 0,
            max_requests_per_second: 1000.0,
            ..DamConfig::new(
                "http://dam".into(),
                DamAuth::Session {
                    username: "u".into(),
                    password: Secret::new("p".into()),
                },
            )
        }
    }

    fn domains() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            (
                "FERRERO.DOMAIN.MKTG ASSET TYPE".to_string(),
                ["video", "image", "banner ", "print", "audio", "social"]
                    .map(String::from)
                    .to_vec(),
            ),
            (
                "FERRERO.DOMAIN.LANGUAGES".to_string(),
                ["EN", "IT", "DE", "FR"].map(String::from).to_vec(),
            ),
        ])
    }

    fn media(attr: MediaAttr) -> Option<String> {
        match attr {
            MediaAttr::DurationSeconds => Some("15.015".into()),
            MediaAttr::Width => Some("1080".into()),
            _ => None,
        }
    }

    fn element<'a>(representation: &'a Representation, id: &str) -> &'a Value {
        representation.asset_representation["asset_resource"]["asset"]["metadata"]
            ["metadata_element_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|field| field["id"] == id)
            .unwrap_or_else(|| panic!("no field {id}"))
    }

    #[test]
    fn field_text_reads_every_value_kind() {
        let master = fixture();
        assert_eq!(
            field_text(&master, "ARTESIA.FIELD.ASSET NAME").as_deref(),
            Some("Nutella_Breakfast_Moments_Master_30s.mp4")
        );
        assert_eq!(field_text(&master, "MAIN_LANGUAGES").as_deref(), Some("EN"));
        assert_eq!(
            field_text(&master, "FERRERO.MARKETING.FIELD.DURATION_SECONDS").as_deref(),
            Some("30")
        );
        assert_eq!(
            field_text(&master, "FERRERO.MARKET.FIELD.RIGHTS_EXPIRY").as_deref(),
            Some("2027-06-30T00:00:00Z")
        );
        assert_eq!(
            field_text(
                &master["asset_resource"]["asset"]["metadata"],
                "FERRERO.FIELD.BRAND"
            )
            .as_deref(),
            Some("NUTELLA")
        );
        // Category and model IDs are not fields.
        assert_eq!(field_text(&master, "FERRERO.CATEGORY.ASSET INFO"), None);
        assert_eq!(field_text(&master, "NOPE"), None);
        let table = json!({"type": METADATA_FIELD_TYPE, "id": "T", "value": {"values": [{"value": {"type": "string", "value": " "}}, {"value": {"type": "string", "value": "x"}}]}});
        assert_eq!(field_text(&table, "T").as_deref(), Some("x"));
        assert_eq!(
            field_text(&string_field("A", "b"), "A").as_deref(),
            Some("b")
        );
        assert_eq!(
            field_text(&domain_field("A", "c"), "A").as_deref(),
            Some("c")
        );
        assert_eq!(
            field_text(&number_field("A", 2.5), "A").as_deref(),
            Some("2.5")
        );
    }

    #[test]
    fn builds_the_representation_from_the_fixture() {
        let master = fixture();
        let parsed = parsed("K7Q2XM_Breakfast-Moments_Video_it_9x16-15s_v01.mp4");
        let input = BuildInput {
            master: &master,
            parsed: &parsed,
            media_attr: &media,
            tracking_marker: "K7Q2XM:Breakfast-Moments_video_IT_9x16-15s.mp4:v1".into(),
        };
        let mut domains = domains();
        let representation =
            build_representation(&input, &mappings(), &dam(), &mut domains).unwrap();
        let fields = &representation.fields;
        assert_eq!(
            fields["ARTESIA.FIELD.ASSET NAME"],
            "Breakfast-Moments_video_IT_9x16-15s.mp4"
        );
        assert_eq!(
            fields["ARTESIA.FIELD.ASSET DESCRIPTION"],
            "Breakfast Moments"
        );
        assert_eq!(fields["FERRERO.FIELD.MKTG.ASSET TYPE"], "video");
        assert_eq!(fields["MAIN_LANGUAGES"], "IT");
        assert_eq!(fields["FERRERO.MARKETING.FIELD.DURATION_SECONDS"], "15.015");
        assert_eq!(fields["FERRERO.MARKETING.FIELD.WIDTH"], "1080");
        assert_eq!(fields["FERRERO.FIELD.FISCAL YEAR"], "2025/2026");
        assert_eq!(fields["FERRERO.FIELD.BRAND"], "NUTELLA");
        assert_eq!(fields["FERRERO.FIELD.ASSET STATUS"], "Final");
        assert_eq!(fields["FERRERO.FIELD.SOURCE SYSTEM"], "content-scaling");
        assert_eq!(
            fields["FERRERO.FIELD.ASSETCOMPLIANCE"], "-",
            "default must not replace the master's value"
        );
        assert_eq!(fields["FERRERO.FIELD.USAGE RIGHTS"], "Standard");
        assert_eq!(
            fields["FERRERO.FIELD.CS TRACKING"],
            "K7Q2XM:Breakfast-Moments_video_IT_9x16-15s.mp4:v1"
        );
        assert!(!fields.contains_key("NOT.ON.MASTER"));
        assert!(representation.warnings.is_empty());

        // Shapes: the master's DomainValue JSON is kept, validated fields are DomainValues, numbers are numbers.
        assert_eq!(
            element(&representation, "FERRERO.FIELD.BRAND")["value"]["value"]["display_value"],
            "Nutella"
        );
        assert_eq!(
            element(&representation, "MAIN_LANGUAGES")["value"]["value"],
            json!({"type": DOMAIN_VALUE_TYPE, "field_value": {"type": "string", "value": "IT"}})
        );
        assert_eq!(
            element(&representation, "FERRERO.MARKETING.FIELD.DURATION_SECONDS")["value"]["value"],
            json!({"type": "number", "value": 15.015})
        );
        assert_eq!(
            element(&representation, "FERRERO.MARKETING.FIELD.WIDTH")["value"]["value"],
            json!({"type": "number", "value": 1080})
        );
        assert_eq!(
            element(&representation, "ARTESIA.FIELD.ASSET NAME"),
            &string_field(
                "ARTESIA.FIELD.ASSET NAME",
                "Breakfast-Moments_video_IT_9x16-15s.mp4"
            )
        );
        let asset = &representation.asset_representation["asset_resource"]["asset"];
        assert_eq!(asset["metadata_model_id"], "FERRERO.MODEL.MARKETING ASSET");
        assert_eq!(asset["security_policy_list"], json!([{"id": 2}]));
        // The first fields keep the mvp order.
        assert_eq!(
            asset["metadata"]["metadata_element_list"][0]["id"],
            "ARTESIA.FIELD.ASSET NAME"
        );
    }

    #[test]
    fn domain_values_match_trimmed_and_case_insensitively() {
        let master = fixture();
        let parsed = parsed("K7Q2XM_Breakfast_BANNER_en_300x250_v01.jpg");
        let input = BuildInput {
            master: &master,
            parsed: &parsed,
            media_attr: &|_| None,
            tracking_marker: "m".into(),
        };
        let representation =
            build_representation(&input, &mappings(), &dam(), &mut domains()).unwrap();
        assert_eq!(
            representation.fields["FERRERO.FIELD.MKTG.ASSET TYPE"],
            "banner"
        );
        assert_eq!(representation.fields["MAIN_LANGUAGES"], "EN");
        // No duration for an image: the master's 30 s must not be copied.
        assert!(!representation
            .fields
            .contains_key("FERRERO.MARKETING.FIELD.DURATION_SECONDS"));
    }

    #[test]
    fn strict_domain_mismatch_is_a_problem_and_non_strict_a_warning() {
        let master = fixture();
        let parsed = parsed("K7Q2XM_Breakfast_vidoe_JA_9x16_v01.mp4");
        let input = BuildInput {
            master: &master,
            parsed: &parsed,
            media_attr: &media,
            tracking_marker: "m".into(),
        };
        let problems =
            build_representation(&input, &mappings(), &dam(), &mut domains()).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "asset type \"vidoe\" is not an allowed value of lookup domain FERRERO.DOMAIN.MKTG ASSET TYPE (field FERRERO.FIELD.MKTG.ASSET TYPE); allowed: audio, banner, image, print, social, video".to_string(),
                "language code \"JA\" is not an allowed value of lookup domain FERRERO.DOMAIN.LANGUAGES (field MAIN_LANGUAGES); allowed: DE, EN, FR, IT".to_string(),
            ]
        );
        let mut lenient = mappings();
        lenient.validate_domain_values.strict_mode = false;
        let representation =
            build_representation(&input, &lenient, &dam(), &mut domains()).unwrap();
        assert_eq!(representation.warnings.len(), 2);
        assert_eq!(representation.fields["MAIN_LANGUAGES"], "JA");
        let mut disabled = mappings();
        disabled.validate_domain_values.enabled = false;
        let representation =
            build_representation(&input, &disabled, &dam(), &mut domains()).unwrap();
        assert!(representation.warnings.is_empty());
        assert_eq!(
            representation.fields["FERRERO.FIELD.MKTG.ASSET TYPE"],
            "vidoe"
        );
    }

    #[test]
    fn unreadable_domain_depends_on_strictness() {
        let master = fixture();
        let parsed = parsed("K7Q2XM_Breakfast_video_IT_9x16_v01.mp4");
        let input = BuildInput {
            master: &master,
            parsed: &parsed,
            media_attr: &media,
            tracking_marker: "m".into(),
        };
        let mut empty: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let problems = build_representation(&input, &mappings(), &dam(), &mut empty).unwrap_err();
        assert!(problems[0].starts_with("could not check asset type \"video\" against lookup domain FERRERO.DOMAIN.MKTG ASSET TYPE"), "{problems:?}");
        let mut lenient = mappings();
        lenient.validate_domain_values.strict_mode = false;
        assert_eq!(
            build_representation(&input, &lenient, &dam(), &mut empty)
                .unwrap()
                .warnings
                .len(),
            2
        );
    }

    #[test]
    fn required_fields_fallbacks_and_defaults() {
        let master = fixture();
        let parsed = parsed("K7Q2XM_Breakfast_video_IT_9x16_v01.mp4");
        let input = BuildInput {
            master: &master,
            parsed: &parsed,
            media_attr: &|_| None,
            tracking_marker: "m".into(),
        };
        let mut mappings = mappings();
        mappings.filename_field_updates.push(FieldUpdate {
            required: true,
            ..update("X.CODEC", "media.video_codec")
        });
        mappings.filename_field_updates.push(FieldUpdate {
            required: true,
            ..update("X.FRAME", "media.frame_rate")
        });
        let problems = build_representation(&input, &mappings, &dam(), &mut domains()).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "field X.CODEC is required but its source media.video_codec is empty".to_string(),
                "field X.FRAME is required but its source media.frame_rate is empty".to_string(),
            ]
        );
        mappings.filename_field_updates.truncate(6);
        mappings.filename_field_updates.push(FieldUpdate {
            required: true,
            default: Some("h264".into()),
            ..update("X.CODEC", "media.video_codec")
        });
        mappings.filename_field_updates.push(FieldUpdate {
            required: true,
            fallback: Some(Fallback::Master),
            ..update("FERRERO.FIELD.BRAND", "media.format_name")
        });
        // The plan's `fallback: "<value>"`: the value when the source is empty, before `default`.
        mappings.filename_field_updates.push(FieldUpdate {
            fallback: Some(Fallback::Value("vp9".into())),
            default: Some("h265".into()),
            ..update("X.FALLBACK", "media.video_codec")
        });
        // `fallback: ""`: the field is left empty (not the master's value).
        mappings.filename_field_updates.push(FieldUpdate {
            fallback: Some(Fallback::Value(String::new())),
            ..update("FERRERO.FIELD.FISCAL YEAR", "media.video_codec")
        });
        let representation =
            build_representation(&input, &mappings, &dam(), &mut domains()).unwrap();
        assert_eq!(representation.fields["X.CODEC"], "h264");
        assert_eq!(representation.fields["X.FALLBACK"], "vp9");
        assert!(
            !representation
                .fields
                .contains_key("FERRERO.FIELD.FISCAL YEAR"),
            "copied from the master by mvp_fields, emptied by the fallback"
        );
        assert_eq!(
            element(&representation, "FERRERO.FIELD.BRAND")["value"]["value"]["display_value"],
            "Nutella"
        );
    }

    /// The steps of a `transform` text applied to `value`.
    fn apply_transform(value: &str, transform: Option<&str>) -> String {
        let steps = Transform::parse_steps(transform.unwrap_or("none")).expect("known steps");
        Transform::apply_all(&steps, value)
    }

    #[test]
    fn transforms() {
        assert_eq!(
            apply_transform("Breakfast-Moments", Some("dash_to_space")),
            "Breakfast Moments"
        );
        assert_eq!(apply_transform("a--b-", Some("dash_to_space")), "a b");
        assert_eq!(apply_transform("it", Some("upper")), "IT");
        assert_eq!(apply_transform("VIDEO", Some("lower")), "video");
        assert_eq!(
            apply_transform("breakfast-MOMENTS", Some("dash_to_space,title")),
            "Breakfast Moments"
        );
        assert_eq!(apply_transform("x", None), "x");
        assert_eq!(
            apply_transform("ünïcode wörds", Some("title")),
            "Ünïcode Wörds"
        );
    }
}
