//! `box-setup dam-check`: what the real OTMM server does, for each `dam.api` assumption
//! ([`crate::config::DamApi`]), before the first pass runs against it.
//!
//! Read-only by default: it logs in, searches the campaign status field, reads one campaign
//! folder (with the configured `folder_load`, and the alternative when that fails), lists its
//! masters folder, reads the lookup domains the field mappings name, and searches the tracking
//! field (the import-completion path). With `--write-test-folder ID` it also writes to that
//! scratch folder, which the operator names and nothing else uses: the campaign status field is
//! set to its current value (A3 when it has none) with each lock / value-shape variant until one
//! is accepted, and a 16-byte text file is imported and looked for the configured way (the
//! test asset stays in the folder).
//!
//! One line per point on stdout: `confirmed  <what>`, `refuted    <what> -> set dam.api.X: Y`,
//! or `unknown    <what> (needs --write-test-folder ID)`. Exit codes: 0 nothing refuted, 1
//! something refuted, 2 configuration or login problem, 75 DAM unreachable.

use std::time::{Duration, Instant};

use serde_json::json;

use super::operator::say;
use super::PassError;
use crate::config::{Config, DamApi, FolderLoad, FolderLocking, ImportCompletion, ValueShape};
use crate::dam::{DamClient, DamError, ImportProbe};
use crate::metadata::field_text;

/// What dam-check found about one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server behaves as configured.
    Confirmed(String),
    /// It does not; `fix` is the setting to change.
    Refuted {
        /// What the server did.
        what: String,
        /// `set dam.api.X: Y`.
        fix: String,
    },
    /// Not knowable read-only, or nothing to look at.
    Unknown(String),
}

impl Verdict {
    /// The report line.
    pub fn line(&self) -> String {
        match self {
            Verdict::Confirmed(what) => format!("confirmed  {what}"),
            Verdict::Refuted { what, fix } => format!("refuted    {what} -> {fix}"),
            Verdict::Unknown(what) => format!("unknown    {what}"),
        }
    }
}

/// Runs the checks against the configured DAM and prints one line per verdict as it goes.
/// Returns whether nothing was refuted.
///
/// # Errors
/// [`PassError`] when the DAM cannot be reached (exit 75) or refuses the login (exit 2).
pub fn run(
    config: &Config,
    dam: &DamClient,
    write_test_folder: Option<&str>,
) -> Result<bool, PassError> {
    let mut refuted = false;
    let mut tell = |verdict: Verdict| {
        refuted |= matches!(verdict, Verdict::Refuted { .. });
        say(&verdict.line());
    };
    say(&format!("dam-check: {}", config.dam.base_url));
    let model = &config.dam.campaign;

    // Login and the status search.
    let mut campaign = None;
    for status in [&model.status_a1, &model.status_a2, &model.status_a3] {
        let found = dam
            .search_folders_by_field(&model.status_field_id, &model.search_operator_id, status, 5)
            .map_err(stop)?;
        if campaign.is_none() {
            campaign = found.first().map(|folder| folder.id.clone());
        }
        tell(Verdict::Confirmed(format!(
            "login and search: {} \"{status}\" on {} finds {} campaign folder(s) (hits that are not folders are left out)",
            model.search_operator_id,
            model.status_field_id,
            found.len()
        )));
        if campaign.is_some() {
            break;
        }
    }

    // One campaign folder, read the configured way.
    match &campaign {
        Some(id) => {
            tell(folder_load(config, dam, id)?);
            for verdict in masters(config, dam, id)? {
                tell(verdict);
            }
        }
        None => tell(Verdict::Unknown(format!(
            "dam.api.folder_load: no campaign folder at {}, {} or {} to read",
            model.status_a1, model.status_a2, model.status_a3
        ))),
    }

    // Lookup domains the mappings name.
    let mut domains: Vec<&str> = config
        .field_mappings
        .filename_field_updates
        .iter()
        .filter_map(|update| update.validate_domain.as_deref())
        .collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        tell(match dam.lookup_domain(domain) {
            Ok(values) => {
                Verdict::Confirmed(format!("lookup domain {domain}: {} values", values.len()))
            }
            Err(error) if error.stops_pass() => return Err(stop(error)),
            Err(error) => Verdict::Refuted {
                what: format!("lookup domain {domain}: {error}"),
                fix: "correct the validate_domain of that field in field_mappings.yaml".into(),
            },
        });
    }

    // The import-completion path, read-only: can the tracking field be searched?
    tell(tracking_search(config, dam)?);

    match write_test_folder {
        None => {
            for what in [
                format!(
                    "dam.api.lock_folders: {}",
                    locking_name(dam.api().lock_folders)
                ),
                format!(
                    "dam.api.status_value_shape: {}",
                    shape_name(dam.api().status_value_shape)
                ),
                format!(
                    "dam.api.import_completion: {} (an import)",
                    completion_name(dam.api().import_completion)
                ),
            ] {
                tell(Verdict::Unknown(format!(
                    "{what} (needs --write-test-folder ID)"
                )));
            }
        }
        Some(folder) => {
            tell(status_write(config, dam, folder)?);
            for verdict in test_import(config, dam, folder)? {
                tell(verdict);
            }
        }
    }
    Ok(!refuted)
}

/// Unreachable and refused-login errors end the command; everything else is a verdict.
fn stop(error: DamError) -> PassError {
    PassError::from_dam(error)
}

fn load_name(load: FolderLoad) -> &'static str {
    match load {
        FolderLoad::Metadata => "metadata",
        FolderLoad::Custom => "custom",
    }
}

fn folder_load(config: &Config, dam: &DamClient, id: &str) -> Result<Verdict, PassError> {
    let field = &config.dam.campaign.status_field_id;
    let configured = dam.api().folder_load;
    let has_status = |client: &DamClient| -> Result<bool, PassError> {
        match client.get_folder(id) {
            Ok(folder) => Ok(field_text(&folder.json, field).is_some()),
            Err(error) if error.stops_pass() => Err(stop(error)),
            Err(_) => Ok(false),
        }
    };
    if has_status(dam)? {
        return Ok(Verdict::Confirmed(format!(
            "dam.api.folder_load: {} (GET /folders/{id} returns {field})",
            load_name(configured)
        )));
    }
    let other = match configured {
        FolderLoad::Metadata => FolderLoad::Custom,
        FolderLoad::Custom => FolderLoad::Metadata,
    };
    let alternative = dam.with_api(DamApi {
        folder_load: other,
        ..dam.api().clone()
    });
    Ok(if has_status(&alternative)? {
        Verdict::Refuted {
            what: format!(
                "dam.api.folder_load: {} (GET /folders/{id} comes back without {field})",
                load_name(configured)
            ),
            fix: format!("set dam.api.folder_load: {}", load_name(other)),
        }
    } else {
        Verdict::Refuted {
            what: format!("campaign folder {id} has no field {field} however it is read"),
            fix: "correct dam.campaign.status_field_id".into(),
        }
    })
}

/// The masters folder of campaign `id`, and which mapped fields one master carries (the
/// metadata model itself has no resource in any public client, so the fields are checked on a
/// real asset; the tracking field is checked by the search and the test import).
fn masters(config: &Config, dam: &DamClient, id: &str) -> Result<Vec<Verdict>, PassError> {
    let model = &config.dam.campaign;
    let children = dam.list_children(id).map_err(stop)?;
    let Some(masters) = children.iter().find(|child| {
        child.is_folder
            && child
                .name
                .trim()
                .eq_ignore_ascii_case(model.masters_folder_name.trim())
    }) else {
        return Ok(vec![Verdict::Refuted {
            what: format!(
                "campaign folder {id} has no subfolder \"{}\"",
                model.masters_folder_name
            ),
            fix: "correct dam.campaign.masters_folder_name".into(),
        }]);
    };
    let listed: Vec<_> = dam
        .list_children(&masters.id)
        .map_err(stop)?
        .into_iter()
        .filter(|asset| !asset.is_folder)
        .collect();
    let mut verdicts = vec![Verdict::Confirmed(format!(
        "masters: \"{}\" lists {} master asset(s) (deleted assets left out)",
        model.masters_folder_name,
        listed.len()
    ))];
    if let Some(first) = listed.first() {
        let asset = dam.get_asset(&first.id).map_err(stop)?;
        let mappings = &config.field_mappings;
        let mut fields: Vec<&str> = mappings
            .filename_field_updates
            .iter()
            .map(|update| update.field_id.as_str())
            .chain(mappings.forced_field_values.keys().map(String::as_str))
            .chain(mappings.default_field_values.keys().map(String::as_str))
            .chain(mappings.mvp_fields.iter().map(String::as_str))
            .collect();
        fields.sort_unstable();
        fields.dedup();
        let missing: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|field| field_text(&asset.json, field).is_none())
            .collect();
        verdicts.push(if missing.is_empty() {
            Verdict::Confirmed(format!(
                "metadata fields: all {} mapped fields are on master {}",
                fields.len(),
                first.name
            ))
        } else {
            Verdict::Unknown(format!(
                "metadata fields: {} of {} mapped fields are on master {}; not on it: {} (a master need not carry every field; a typo in field_mappings.yaml would look the same)",
                fields.len() - missing.len(),
                fields.len(),
                first.name,
                missing.join(", ")
            ))
        });
    }
    Ok(verdicts)
}

fn tracking_search(config: &Config, dam: &DamClient) -> Result<Verdict, PassError> {
    let field = &config.dam.tracking_field_id;
    let searching = dam.with_api(DamApi {
        import_completion: ImportCompletion::Search,
        ..dam.api().clone()
    });
    Ok(match searching.find_imported("", "", field, "dam-check probe") {
        Ok(_) => match dam.api().import_completion {
            ImportCompletion::FolderListing => Verdict::Confirmed(format!(
                "dam.api.import_completion: folder_listing (a search on {field} also answers: search would work too)"
            )),
            _ => Verdict::Confirmed(format!(
                "dam.api.import_completion: search (/search/text answers a condition on {field})"
            )),
        },
        Err(error) if error.is_unreachable() => return Err(stop(error)),
        Err(error) => match dam.api().import_completion {
            ImportCompletion::FolderListing => Verdict::Confirmed(format!(
                "dam.api.import_completion: folder_listing (a search on {field} fails: {error})"
            )),
            _ => Verdict::Refuted {
                what: format!("a search on the tracking field {field} fails: {error}"),
                fix: "set dam.api.import_completion: folder_listing (or correct dam.tracking_field_id)".into(),
            },
        },
    })
}

fn locking_name(locking: FolderLocking) -> &'static str {
    match locking {
        FolderLocking::WhenAllowed => "when_allowed",
        FolderLocking::Always => "always",
        FolderLocking::Never => "never",
    }
}

fn completion_name(completion: ImportCompletion) -> &'static str {
    match completion {
        ImportCompletion::Search => "search",
        ImportCompletion::Jobs => "jobs",
        ImportCompletion::FolderListing => "folder_listing",
    }
}

fn shape_name(shape: ValueShape) -> &'static str {
    match shape {
        ValueShape::Plain => "plain",
        ValueShape::DomainValue => "domain_value",
    }
}

/// Writes the scratch folder's status field with the configured settings, then, when refused,
/// with each alternative, and says which works.
fn status_write(config: &Config, dam: &DamClient, folder: &str) -> Result<Verdict, PassError> {
    let field = &config.dam.campaign.status_field_id;
    let current = match dam.get_folder(folder) {
        Ok(read) => field_text(&read.json, field),
        Err(error) if error.stops_pass() => return Err(stop(error)),
        Err(error) => {
            return Ok(Verdict::Refuted {
                what: format!("the write-test folder {folder} cannot be read: {error}"),
                fix: "name an existing scratch folder with --write-test-folder".into(),
            })
        }
    };
    let value = current.unwrap_or_else(|| config.dam.campaign.status_a3.clone());
    let api = dam.api().clone();
    let attempt = |lock: FolderLocking, shape: ValueShape| -> Result<Option<String>, PassError> {
        let client = dam.with_api(DamApi {
            lock_folders: lock,
            status_value_shape: shape,
            ..api.clone()
        });
        match client.set_folder_field(folder, field, &value) {
            Ok(()) => Ok(None),
            Err(error) if error.is_unreachable() => Err(stop(error)),
            Err(error) => Ok(Some(error.to_string())),
        }
    };
    let configured = format!(
        "dam.api.lock_folders: {}, status_value_shape: {}",
        locking_name(api.lock_folders),
        shape_name(api.status_value_shape)
    );
    let Some(refusal) = attempt(api.lock_folders, api.status_value_shape)? else {
        return Ok(Verdict::Confirmed(format!(
            "{configured} (folder {folder}: {field} written as \"{value}\")"
        )));
    };
    for lock in [
        FolderLocking::WhenAllowed,
        FolderLocking::Always,
        FolderLocking::Never,
    ] {
        for shape in [ValueShape::Plain, ValueShape::DomainValue] {
            if (lock, shape) == (api.lock_folders, api.status_value_shape) {
                continue;
            }
            if attempt(lock, shape)?.is_none() {
                return Ok(Verdict::Refuted {
                    what: format!("{configured} ({refusal})"),
                    fix: format!(
                        "set dam.api.lock_folders: {}, dam.api.status_value_shape: {}",
                        locking_name(lock),
                        shape_name(shape)
                    ),
                });
            }
        }
    }
    Ok(Verdict::Refuted {
        what: format!("no lock / value shape writes {field} on folder {folder}: {refusal}"),
        fix: "check the service account's permission to edit that folder's metadata".into(),
    })
}

/// Imports a small text file into the scratch folder and looks for it the configured way (and
/// through the job resource, to say whether `jobs` would work).
fn test_import(config: &Config, dam: &DamClient, folder: &str) -> Result<Vec<Verdict>, PassError> {
    let mut verdicts = Vec::new();
    let stamp = crate::naming::generate_tracking_id(&mut rand::thread_rng());
    let name = format!("dam-check-{stamp}.txt");
    let marker = format!("dam-check {stamp}");
    let dir = tempfile::tempdir().map_err(|error| {
        PassError::Failed(format!("cannot create a temporary directory: {error}"))
    })?;
    let path = dir.path().join(&name);
    std::fs::write(&path, b"dam-check probe\n")
        .map_err(|error| PassError::Failed(format!("cannot write {}: {error}", path.display())))?;
    let field = |id: &str, value: &str| {
        json!({"type": "com.artesia.metadata.MetadataField", "id": id,
            "value": {"value": {"type": "string", "value": value}}})
    };
    let representation = json!({"asset_resource": {"asset": {
    "metadata_model_id": config.dam.metadata_model_id,
    "security_policy_list": config.dam.security_policy_ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
    "metadata": {"metadata_element_list": [
        field("ARTESIA.FIELD.ASSET NAME", &name),
        field(&config.dam.tracking_field_id, &marker),
    ]}}}});
    let job = match dam.import_asset(folder, &path, &name, "text/plain", &representation) {
        Ok(job) => job,
        Err(error) if error.is_unreachable() => return Err(stop(error)),
        Err(error) => {
            verdicts.push(Verdict::Refuted {
                what: format!("a test import into folder {folder} is refused: {error}"),
                fix:
                    "check dam.metadata_model_id, dam.security_policy_ids and dam.tracking_field_id"
                        .into(),
            });
            return Ok(verdicts);
        }
    };
    let probe = ImportProbe {
        job_id: Some(&job),
        folder_id: folder,
        name: &name,
        field_id: &config.dam.tracking_field_id,
        marker: &marker,
    };
    let started = Instant::now();
    let configured = dam.api().import_completion;
    let wait = Duration::from_secs(config.dam.import_job_timeout_secs.max(1));
    let found = match dam.wait_for_import(&probe, Some(wait)) {
        Ok(found) => found,
        Err(DamError::Dialect { message, fix }) => {
            verdicts.push(Verdict::Refuted { what: message, fix });
            dam.with_api(DamApi {
                import_completion: ImportCompletion::Search,
                ..dam.api().clone()
            })
            .wait_for_import(&probe, Some(wait))
            .map_err(stop)?
        }
        Err(error) => return Err(stop(error)),
    };
    match found {
        Some(asset) => verdicts.push(Verdict::Confirmed(format!(
            "import: {name} imported into folder {folder} (asset {asset}, left there) and found in {:.1} s",
            started.elapsed().as_secs_f64()
        ))),
        None => verdicts.push(Verdict::Refuted {
            what: format!(
                "dam.api.import_completion: {}: the test import {name} was not found within {} s",
                completion_name(configured),
                wait.as_secs()
            ),
            fix: "set dam.api.import_completion: folder_listing, or a longer dam.import_job_timeout_secs if the DAM indexes slowly".into(),
        }),
    }
    let jobs = match dam.job_state(&job) {
        Ok(_) => "present: dam.api.import_completion: jobs would work too".to_string(),
        Err(DamError::Dialect { .. }) => {
            "absent (404): keep import_completion search or folder_listing".to_string()
        }
        Err(error) if error.is_unreachable() => return Err(stop(error)),
        Err(error) => format!("unclear ({error})"),
    };
    if configured != ImportCompletion::Jobs {
        verdicts.push(Verdict::Confirmed(format!(
            "the job resource GET /jobs/{{id}}/assets is {jobs}"
        )));
    }
    Ok(verdicts)
}
