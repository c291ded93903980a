//! Scenario files: what the sandbox contains when it starts.
//!
//! A scenario is YAML (parsed with serde-saphyr); every key is optional:
//!
//! ```yaml
//! box:
//!   campaigns_folder: Campaigns      # Box folder (under "All Files") where campaign folders go
//!   watched_folders: [incoming]      # Box folders (under "All Files") agencies deliver into
//!   restricted_folders: [legal]      # Box folders the service account cannot access (404, as Box)
//! dam:
//!   campaigns_folder: Campaigns      # top-level DAM folder holding the campaign folders
//!   masters_folder: Master Assets    # subfolder of each campaign with the masters
//!   final_assets_folder: Final Assets
//!   campaign_model_id: FERRERO.MODEL.CAMPAIGN
//!   asset_model_id: FERRERO.MODEL.MARKETING ASSET
//!   status_field_id: FERRERO.FIELD.CAMPAIGN STATUS
//!   number_field_id: FERRERO.FIELD.CAMPAIGN NUMBER
//!   name_field_id: FERRERO.FIELD.CAMPAIGN NAME
//!   status_domain_id: FERRERO.DOMAIN.CAMPAIGN STATUS
//!   import_delay_ms: 300             # how long an import job stays IN_PROGRESS
//!   campaigns:
//!     - number: C-2026-0142
//!       name: Nutella Breakfast Moments
//!       status: A1
//!       masters:
//!         - name: Nutella_Breakfast_Moments_Master_30s.mp4   # DAM asset name
//!           file: ../media/bigbuckbunny.mp4                  # relative to the scenario file
//!           mime_type: video/mp4                             # optional, else from the extension
//!           fields:                                          # field id -> value
//!             ARTESIA.FIELD.ASSET DESCRIPTION: Breakfast Moments 30s master   # string
//!             FERRERO.FIELD.MKTG.ASSET TYPE: {value: video, display: Video}   # lookup-domain value
//!             FERRERO.MARKETING.FIELD.DURATION_SECONDS: {number: 30}          # number
//!             FERRERO.MARKET.FIELD.RIGHTS_EXPIRY: {datetime: "2027-06-30T00:00:00Z"}
//! lookup_domains:                    # merged over the defaults (same id = replaced)
//!   FERRERO.DOMAIN.MKTG ASSET TYPE:
//!     - {value: video, display: Video}
//! mailgun:
//!   domain: sandbox.mailgun.test
//! ```
//!
//! Fields are placed in categories like `fixtures/otmm/master_asset.json`: IDs starting with
//! `FERRERO.MARKETING.FIELD.` go to `FERRERO.CATEGORY.MARKETING`, `FERRERO.MARKET.FIELD.` to
//! `FERRERO.CATEGORY.MARKET`, everything else to `FERRERO.CATEGORY.ASSET INFO`. A master without an
//! `ARTESIA.FIELD.ASSET NAME` field gets one holding its name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

use crate::http_util::{guess_mime, hash_file_blocking, now};
use crate::otmm::{content_type_for, datetime_field, domain_field, number_field, string_field};
use crate::state::{
    new_dam_id, validate_box_name, Actor, CampaignModelIds, DamAsset, DamCategory, DamFolder,
    DomainEntry, World,
};

/// A whole scenario (see the module docs for the YAML form).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Box folders.
    #[serde(rename = "box")]
    pub box_section: BoxSection,
    /// DAM folders, campaigns and masters.
    pub dam: DamSection,
    /// Lookup domains (merged over [`default_domains`]).
    pub lookup_domains: BTreeMap<String, Vec<DomainEntry>>,
    /// Mailgun settings.
    pub mailgun: MailgunSection,
}

/// The `box:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxSection {
    /// Name of the Box folder (under "All Files") that receives campaign folders.
    pub campaigns_folder: String,
    /// Names of the watched folders (under "All Files").
    pub watched_folders: Vec<String>,
    /// Folders (under "All Files") the service account is not a collaborator on: every API call
    /// on them answers 403 `access_denied_insufficient_permissions`.
    pub restricted_folders: Vec<String>,
}

impl Default for BoxSection {
    fn default() -> Self {
        Self {
            campaigns_folder: "Campaigns".to_owned(),
            watched_folders: vec!["incoming".to_owned()],
            restricted_folders: Vec::new(),
        }
    }
}

/// The `dam:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DamSection {
    /// Top-level DAM folder holding campaign folders.
    pub campaigns_folder: String,
    /// Masters subfolder name.
    pub masters_folder: String,
    /// Final Assets subfolder name.
    pub final_assets_folder: String,
    /// Metadata model of campaign folders.
    pub campaign_model_id: String,
    /// Metadata model of masters.
    pub asset_model_id: String,
    /// Campaign status field.
    pub status_field_id: String,
    /// Campaign number field.
    pub number_field_id: String,
    /// Campaign name field.
    pub name_field_id: String,
    /// Lookup domain of campaign statuses.
    pub status_domain_id: String,
    /// Milliseconds an import job stays IN_PROGRESS (the CLI flag overrides it).
    pub import_delay_ms: Option<u64>,
    /// Campaigns.
    pub campaigns: Vec<CampaignSpec>,
}

impl Default for DamSection {
    fn default() -> Self {
        Self {
            campaigns_folder: "Campaigns".to_owned(),
            masters_folder: "Master Assets".to_owned(),
            final_assets_folder: "Final Assets".to_owned(),
            campaign_model_id: "FERRERO.MODEL.CAMPAIGN".to_owned(),
            asset_model_id: "FERRERO.MODEL.MARKETING ASSET".to_owned(),
            status_field_id: "FERRERO.FIELD.CAMPAIGN STATUS".to_owned(),
            number_field_id: "FERRERO.FIELD.CAMPAIGN NUMBER".to_owned(),
            name_field_id: "FERRERO.FIELD.CAMPAIGN NAME".to_owned(),
            status_domain_id: "FERRERO.DOMAIN.CAMPAIGN STATUS".to_owned(),
            import_delay_ms: None,
            campaigns: Vec::new(),
        }
    }
}

/// One campaign.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Campaign number (`C-2026-0142`).
    pub number: String,
    /// Campaign name.
    pub name: String,
    /// Status value (`A1`, `A2`, `A3`); default `A1`.
    #[serde(default = "default_status")]
    pub status: String,
    /// Master assets.
    #[serde(default)]
    pub masters: Vec<MasterSpec>,
}

fn default_status() -> String {
    "A1".to_owned()
}

/// One master asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterSpec {
    /// DAM asset name (also the content file name).
    pub name: String,
    /// Media file, relative to the scenario file (or absolute).
    pub file: PathBuf,
    /// MIME type; default guessed from `name`'s extension.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Field values by field ID.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// A deleted asset: still listed (`deleted: true`) unless a listing excludes deleted assets;
    /// not in the ready line's `master_asset_ids`.
    #[serde(default)]
    pub deleted: bool,
}

/// A field value in a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldSpec {
    /// `{value, display}`: a lookup-domain value (`com.artesia.metadata.DomainValue`).
    Domain(DomainSpec),
    /// `{number: 30}`: an OTMM number.
    Number(NumberSpec),
    /// `{datetime: "2027-06-30T00:00:00Z"}`: an OTMM datetime.
    Datetime(DatetimeSpec),
    /// A plain scalar: an OTMM string (numbers and booleans are written as text).
    Text(ScalarText),
}

/// Lookup-domain value of a field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Stored value.
    pub value: String,
    /// Display value (default: the value).
    #[serde(default)]
    pub display: Option<String>,
}

/// Number value of a field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    /// The number.
    pub number: f64,
}

/// Datetime value of a field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatetimeSpec {
    /// The datetime text (`YYYY-MM-DDTHH:MM:SSZ`).
    pub datetime: String,
}

/// A plain YAML scalar.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScalarText {
    /// Text.
    Text(String),
    /// Integer.
    Integer(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl ScalarText {
    fn text(&self) -> String {
        match self {
            ScalarText::Text(text) => text.clone(),
            ScalarText::Integer(value) => value.to_string(),
            ScalarText::Float(value) => value.to_string(),
            ScalarText::Bool(value) => value.to_string(),
        }
    }
}

/// The `mailgun:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailgunSection {
    /// Sending domain accepted at `/v3/{domain}/messages`.
    pub domain: String,
}

impl Default for MailgunSection {
    fn default() -> Self {
        Self {
            domain: "sandbox.mailgun.test".to_owned(),
        }
    }
}

/// A scenario with master paths resolved against the scenario file's directory.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The scenario.
    pub scenario: Scenario,
    /// Where it came from (`None` = built-in default).
    pub source: Option<PathBuf>,
}

/// Reads a scenario file, or returns the default scenario (one watched folder `incoming`, the
/// default lookup domains, no campaigns) when `path` is `None`. Master file paths are resolved
/// relative to the scenario file and must exist.
///
/// # Errors
/// Unreadable file, YAML errors (with line/column), a missing media file (named), invalid names.
pub fn load(path: Option<&Path>) -> anyhow::Result<LoadedScenario> {
    let Some(path) = path else {
        return Ok(LoadedScenario {
            scenario: Scenario::default(),
            source: None,
        });
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
    let mut scenario: Scenario = serde_saphyr::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for campaign in &mut scenario.dam.campaigns {
        for master in &mut campaign.masters {
            if master.file.is_relative() {
                master.file = base.join(&master.file);
            }
            if !master.file.is_file() {
                bail!(
                    "{}: campaign {} master {:?}: media file {} not found\nhint: the demo scenario reads ../shared/fixtures/media/ next to the repository; check that folder exists",
                    path.display(),
                    campaign.number,
                    master.name,
                    master.file.display()
                );
            }
        }
    }
    validate(&scenario).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    Ok(LoadedScenario {
        scenario,
        source: Some(path.to_path_buf()),
    })
}

fn validate(scenario: &Scenario) -> anyhow::Result<()> {
    validate_box_name(&scenario.box_section.campaigns_folder)
        .map_err(|e| anyhow::anyhow!("box.campaigns_folder: {e}"))?;
    if scenario.box_section.watched_folders.is_empty() {
        bail!("box.watched_folders: at least one watched folder is required");
    }
    let mut seen = Vec::new();
    for name in scenario
        .box_section
        .watched_folders
        .iter()
        .chain(&scenario.box_section.restricted_folders)
    {
        validate_box_name(name).map_err(|e| {
            anyhow::anyhow!("box.watched_folders / restricted_folders: {name:?}: {e}")
        })?;
        let lower = name.to_lowercase();
        if lower == scenario.box_section.campaigns_folder.to_lowercase() || seen.contains(&lower) {
            bail!("box.watched_folders / restricted_folders: {name:?} is used twice");
        }
        seen.push(lower);
    }
    let mut numbers = Vec::new();
    for campaign in &scenario.dam.campaigns {
        if numbers.contains(&campaign.number) {
            bail!(
                "dam.campaigns: campaign number {} appears twice",
                campaign.number
            );
        }
        numbers.push(campaign.number.clone());
    }
    Ok(())
}

/// Lookup domains present without a scenario: asset types (with `"Banner "` keeping its stray
/// trailing space, as in `fixtures/otmm/lookup_domain_asset_type.json`), languages (ISO 639-1
/// upper case) and campaign statuses.
pub fn default_domains() -> BTreeMap<String, Vec<DomainEntry>> {
    let entry = |value: &str, display: &str| DomainEntry {
        value: value.to_owned(),
        display: display.to_owned(),
    };
    let mut domains = BTreeMap::new();
    domains.insert(
        "FERRERO.DOMAIN.MKTG ASSET TYPE".to_owned(),
        vec![
            entry("video", "Video"),
            entry("image", "Image"),
            entry("banner", "Banner "),
            entry("print", "Print"),
            entry("audio", "Audio"),
            entry("social", "Social"),
        ],
    );
    domains.insert(
        "FERRERO.DOMAIN.LANGUAGES".to_owned(),
        [
            ("EN", "English"),
            ("IT", "Italian"),
            ("DE", "German"),
            ("FR", "French"),
            ("ES", "Spanish"),
            ("PT", "Portuguese"),
            ("NL", "Dutch"),
            ("PL", "Polish"),
            ("CS", "Czech"),
            ("DA", "Danish"),
            ("EL", "Greek"),
            ("FI", "Finnish"),
            ("HU", "Hungarian"),
            ("JA", "Japanese"),
            ("KO", "Korean"),
            ("RO", "Romanian"),
            ("RU", "Russian"),
            ("SV", "Swedish"),
            ("TR", "Turkish"),
            ("ZH", "Chinese"),
            ("AR", "Arabic"),
        ]
        .iter()
        .map(|(value, display)| entry(value, display))
        .collect(),
    );
    domains.insert(
        "FERRERO.DOMAIN.CAMPAIGN STATUS".to_owned(),
        vec![
            entry("A1", "A1 - Masters approved"),
            entry("A2", "A2 - Masters with agencies"),
            entry("A3", "A3 - Derivatives delivered"),
        ],
    );
    domains
}

/// IDs created while seeding, reported in the ready line.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Box folder receiving campaign folders.
    pub box_root_folder_id: String,
    /// Box watched folders (same order as the scenario).
    pub watched_folder_ids: Vec<String>,
    /// Names of the watched folders (same order).
    pub watched_folder_names: Vec<String>,
    /// DAM folder holding the campaign folders.
    pub dam_root_folder_id: String,
    /// Campaigns.
    pub campaigns: Vec<SeededCampaign>,
    /// Campaign model IDs.
    pub model: CampaignModelIds,
    /// Import delay from the scenario, if set.
    pub import_delay_ms: Option<u64>,
    /// Mailgun domain.
    pub mailgun_domain: String,
}

/// A seeded campaign.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededCampaign {
    /// DAM campaign folder ID.
    pub folder_id: String,
    /// Campaign number.
    pub number: String,
    /// Campaign name.
    pub name: String,
    /// Status value.
    pub status: String,
    /// Masters subfolder ID.
    pub masters_folder_id: String,
    /// Final Assets subfolder ID.
    pub final_assets_folder_id: String,
    /// Master asset IDs.
    pub master_asset_ids: Vec<String>,
}

/// Fills a fresh [`World`] from a scenario: the Box folders, the DAM tree with campaigns and
/// masters (content read in place from the media files, hashed once), and the lookup domains.
///
/// # Errors
/// Unreadable media files.
pub fn seed(world: &mut World, loaded: &LoadedScenario) -> anyhow::Result<Seeded> {
    let scenario = &loaded.scenario;
    let box_root_folder_id =
        world
            .boxes
            .insert_folder("0", &scenario.box_section.campaigns_folder, Actor::Service);
    let watched_folder_ids = scenario
        .box_section
        .watched_folders
        .iter()
        .map(|name| world.boxes.insert_folder("0", name, Actor::Service))
        .collect();
    for name in &scenario.box_section.restricted_folders {
        let id = world.boxes.insert_folder("0", name, Actor::Agency);
        if let Some(folder) = world.boxes.folder_mut(&id) {
            folder.restricted = true;
        }
    }

    let mut domains = default_domains();
    for (id, values) in &scenario.lookup_domains {
        domains.insert(id.clone(), values.clone());
    }
    world.dam.domains = domains;

    let dam = &scenario.dam;
    let model = CampaignModelIds {
        status_field_id: dam.status_field_id.clone(),
        number_field_id: dam.number_field_id.clone(),
        name_field_id: dam.name_field_id.clone(),
        status_domain_id: dam.status_domain_id.clone(),
    };
    let created = now();
    let plain_folder = |name: &str, parent: Option<&str>| DamFolder {
        id: new_dam_id(),
        name: name.to_owned(),
        parent_id: parent.map(str::to_owned),
        model_id: "ARTESIA.MODEL.FOLDER".to_owned(),
        model_name: "Folder".to_owned(),
        categories: Vec::new(),
        locked_by: None,
        created,
        updated: created,
    };
    let root = plain_folder(&dam.campaigns_folder, None);
    let dam_root_folder_id = root.id.clone();
    world.dam.insert_folder(root);

    let mut campaigns = Vec::new();
    for campaign in &dam.campaigns {
        let status_display = world
            .dam
            .domain_display(&dam.status_domain_id, &campaign.status)
            .unwrap_or_else(|| campaign.status.clone());
        let mut folder = plain_folder(
            &format!("{} {}", campaign.number, campaign.name),
            Some(&dam_root_folder_id),
        );
        folder.model_id = dam.campaign_model_id.clone();
        folder.model_name = "Ferrero Campaign".to_owned();
        folder.categories = vec![DamCategory {
            id: "FERRERO.CATEGORY.CAMPAIGN".to_owned(),
            name: "Campaign".to_owned(),
            fields: vec![
                string_field(&dam.number_field_id, &campaign.number),
                string_field(&dam.name_field_id, &campaign.name),
                domain_field(&dam.status_field_id, &campaign.status, &status_display),
            ],
        }];
        let folder_id = folder.id.clone();
        world.dam.insert_folder(folder);
        let masters_folder = plain_folder(&dam.masters_folder, Some(&folder_id));
        let masters_folder_id = masters_folder.id.clone();
        world.dam.insert_folder(masters_folder);
        let final_folder = plain_folder(&dam.final_assets_folder, Some(&folder_id));
        let final_assets_folder_id = final_folder.id.clone();
        world.dam.insert_folder(final_folder);

        let mut master_asset_ids = Vec::new();
        for master in &campaign.masters {
            let (sha1, size) = hash_file_blocking(&master.file)
                .with_context(|| format!("reading media file {}", master.file.display()))?;
            let mime = master
                .mime_type
                .clone()
                .unwrap_or_else(|| guess_mime(&master.name).to_owned());
            let asset = DamAsset {
                id: new_dam_id(),
                name: master.name.clone(),
                folder_id: masters_folder_id.clone(),
                content_type: content_type_for(&mime).to_owned(),
                mime_type: mime,
                content_size: size,
                sha1,
                blob: std::path::absolute(&master.file).unwrap_or_else(|_| master.file.clone()),
                file_name: master.name.clone(),
                model_id: dam.asset_model_id.clone(),
                model_name: "Ferrero Marketing Asset".to_owned(),
                categories: master_categories(master),
                security_policies: serde_json::json!([{"id": 2}]),
                imported: created,
                updated: created,
                locked_by: None,
                rendition_id: crate::http_util::random_hex(40),
                import_job_id: None,
                deleted: master.deleted,
            };
            if !master.deleted {
                master_asset_ids.push(asset.id.clone());
            }
            world.dam.insert_asset(asset);
        }
        campaigns.push(SeededCampaign {
            folder_id,
            number: campaign.number.clone(),
            name: campaign.name.clone(),
            status: campaign.status.clone(),
            masters_folder_id,
            final_assets_folder_id,
            master_asset_ids,
        });
    }
    Ok(Seeded {
        box_root_folder_id,
        watched_folder_ids,
        watched_folder_names: scenario.box_section.watched_folders.clone(),
        dam_root_folder_id,
        campaigns,
        model,
        import_delay_ms: dam.import_delay_ms,
        mailgun_domain: scenario.mailgun.domain.clone(),
    })
}

/// Category of a field ID (see the module docs).
fn category_of(field_id: &str) -> (&'static str, &'static str) {
    if field_id.starts_with("FERRERO.MARKETING.FIELD.") {
        ("FERRERO.CATEGORY.MARKETING", "Marketing")
    } else if field_id.starts_with("FERRERO.MARKET.FIELD.") {
        ("FERRERO.CATEGORY.MARKET", "Market")
    } else {
        ("FERRERO.CATEGORY.ASSET INFO", "Asset Info")
    }
}

fn master_categories(master: &MasterSpec) -> Vec<DamCategory> {
    let mut fields: Vec<(String, Value)> = Vec::new();
    if !master.fields.contains_key("ARTESIA.FIELD.ASSET NAME") {
        fields.push((
            "ARTESIA.FIELD.ASSET NAME".to_owned(),
            string_field("ARTESIA.FIELD.ASSET NAME", &master.name),
        ));
    }
    for (id, spec) in &master.fields {
        let field = match spec {
            FieldSpec::Domain(domain) => domain_field(
                id,
                &domain.value,
                domain.display.as_deref().unwrap_or(&domain.value),
            ),
            FieldSpec::Number(number) => number_field(id, number.number),
            FieldSpec::Datetime(datetime) => datetime_field(id, &datetime.datetime),
            FieldSpec::Text(text) => string_field(id, &text.text()),
        };
        fields.push((id.clone(), field));
    }
    let mut categories: Vec<DamCategory> = Vec::new();
    for (id, field) in fields {
        let (category_id, category_name) = category_of(&id);
        match categories.iter_mut().find(|c| c.id == category_id) {
            Some(category) => category.fields.push(field),
            None => categories.push(DamCategory {
                id: category_id.to_owned(),
                name: category_name.to_owned(),
                fields: vec![field],
            }),
        }
    }
    // Asset Info first, like the fixture.
    categories.sort_by_key(|c| match c.id.as_str() {
        "FERRERO.CATEGORY.ASSET INFO" => 0,
        "FERRERO.CATEGORY.MARKETING" => 1,
        _ => 2,
    });
    categories
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_field_kinds() {
        let yaml = r#"
dam:
  campaigns:
    - number: C-1
      name: Test
      masters:
        - name: a.mp4
          file: /dev/null
          fields:
            A: plain
            B: 2026
            C: {value: video, display: Video}
            D: {number: 30}
            E: {datetime: "2027-06-30T00:00:00Z"}
            F: {value: EN}
"#;
        let scenario: Scenario = serde_saphyr::from_str(yaml).expect("parse");
        let fields = &scenario.dam.campaigns[0].masters[0].fields;
        assert!(matches!(fields["A"], FieldSpec::Text(_)));
        assert!(matches!(
            fields["B"],
            FieldSpec::Text(ScalarText::Integer(2026))
        ));
        assert!(matches!(fields["C"], FieldSpec::Domain(_)));
        assert!(matches!(fields["D"], FieldSpec::Number(_)));
        assert!(matches!(fields["E"], FieldSpec::Datetime(_)));
        assert!(matches!(fields["F"], FieldSpec::Domain(_)));
        assert_eq!(scenario.dam.campaigns[0].status, "A1");
        assert_eq!(scenario.box_section.watched_folders, vec!["incoming"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let yaml = "box:\n  watched_folder: [x]\n";
        assert!(serde_saphyr::from_str::<Scenario>(yaml).is_err());
    }

    #[test]
    fn missing_media_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.yaml");
        std::fs::write(
            &path,
            "dam:\n  campaigns:\n    - number: C-1\n      name: T\n      masters:\n        - name: a.mp4\n          file: nowhere/a.mp4\n",
        )
        .expect("write");
        let error = format!("{:#}", load(Some(&path)).expect_err("must fail"));
        assert!(error.contains("nowhere/a.mp4"), "{error}");
    }
}
