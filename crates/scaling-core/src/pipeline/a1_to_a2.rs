//! The `a1-to-a2` pass (design.md §1 step 1).
//!
//! For each DAM campaign folder whose status field is A1 (at most
//! `polling.max_campaigns_per_run`): find its masters subfolder and Final Assets subfolder,
//! create (or find) the campaign's Box folder under `box.root_folder_id`, and for every master
//! asset not yet done: allocate a tracking ID (committed before anything is uploaded), download
//! the master from the DAM, upload it to Box as `{tracking_id}_{name}` and record it with its full
//! DAM metadata. When every master is recorded, the campaign moves to A2 (once) with a success
//! email and webhook; otherwise it stays at A1 and one partial-failure email names each failed
//! master and why (sent again only when the set of failures changes). A later pass retries only
//! the failed masters.

use rand::rngs::OsRng;
use serde_json::json;

use super::transition::{self, campaign_facts, Transition};
use super::{run_workers, PassError, PassReport, Services};
use crate::boxapi::BoxError;
use crate::dam::{DamAsset, DamError};
use crate::metadata::field_text;
use crate::naming;
use crate::notify_plan::{self, AssetFacts, FailureFacts};
use crate::store::{CampaignRow, MasterRow, MasterStatus, NewNotification, NotificationChannel};

/// Runs one `a1-to-a2` pass.
///
/// # Errors
/// [`PassError::Unreachable`] when the DAM, Box or the database cannot be reached at the start
/// (nothing was changed); per-master failures are recorded and reported, not returned. Does
/// nothing when the configuration says `polling.enabled: false`.
pub fn run(services: &mut Services, report: &mut PassReport) -> Result<(), PassError> {
    if !services.config.polling.enabled {
        tracing::info!("a1-to-a2: polling.enabled is false in the configuration; nothing done");
        return Ok(());
    }
    resume_pending_transitions(services, report)?;
    let model = services.config.dam.campaign.clone();
    let limit =
        usize::try_from(services.config.polling.max_campaigns_per_run).unwrap_or(usize::MAX);
    let found = services
        .dam
        .search_folders_by_field(
            &model.status_field_id,
            &model.search_operator_id,
            &model.status_a1,
            limit,
        )
        .map_err(PassError::from_dam)?;
    for folder in found {
        report.campaigns_seen += 1;
        let lock = format!("campaign:{}", folder.id);
        if !services.store.try_lock(&lock)? {
            report.campaigns_locked += 1;
            tracing::info!(campaign = %folder.name, dam_folder = %folder.id, "campaign is being handled by another pass; skipped");
            continue;
        }
        let result = process_campaign(services, report, &folder.id);
        services.store.unlock(&lock)?;
        match result {
            Ok(()) => {}
            // Unreachable (75) and configuration that does not match the server (2) hold for
            // every campaign: stop, say so once.
            Err(error @ (PassError::Unreachable { .. } | PassError::Setup { .. })) => {
                return Err(error)
            }
            Err(error) => {
                tracing::error!(campaign = %folder.name, dam_folder = %folder.id, %error, "campaign could not be processed");
            }
        }
    }
    Ok(())
}

/// Completes A1 -> A2 transitions an earlier, interrupted pass recorded but did not finish.
fn resume_pending_transitions(
    services: &mut Services,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let a2 = services.config.dam.campaign.status_a2.clone();
    for campaign_id in services.store.pending_transitions(&a2)? {
        let lock = format!("campaign:{campaign_id}");
        if !services.store.try_lock(&lock)? {
            continue;
        }
        let result = match services.store.campaign(&campaign_id)? {
            Some(campaign) => complete_campaign(services, report, &campaign),
            None => Ok(()),
        };
        services.store.unlock(&lock)?;
        result?;
    }
    Ok(())
}

/// What the DAM says about one campaign folder, read before anything is written (shared by the
/// pass and its dry run).
struct Inspection {
    /// Campaign number (the number field, else the folder name).
    number: String,
    /// Campaign name (the name field, else the folder name).
    name: String,
    /// Status field value.
    status: String,
    /// The masters subfolder, when there.
    masters_folder: Option<String>,
    /// The Final Assets subfolder, when there.
    final_folder: Option<String>,
    /// The masters (files of the masters subfolder), when both subfolders are there.
    masters: Vec<DamAsset>,
}

impl Inspection {
    /// Why the campaign cannot be processed as it is, if it cannot.
    fn problem(&self, model: &crate::config::CampaignModel) -> Option<String> {
        if self.masters_folder.is_none() || self.final_folder.is_none() {
            Some(format!(
                "the campaign folder must contain the subfolders \"{}\" and \"{}\"",
                model.masters_folder_name, model.final_assets_folder_name
            ))
        } else if self.masters.is_empty() {
            Some("the masters folder is empty".to_string())
        } else {
            None
        }
    }
}

/// Reads campaign folder `folder_id` under the lock: `None` when it is no longer at A1.
/// Read-only.
///
/// # Errors
/// [`PassError::Unreachable`] when the DAM is down; [`PassError::Setup`] when the folder is read
/// without its status field.
fn inspect_campaign(services: &Services, folder_id: &str) -> Result<Option<Inspection>, PassError> {
    let model = &services.config.dam.campaign;
    // Re-read under the lock: another pass may have advanced it since the search.
    let folder = services
        .dam
        .get_folder(folder_id)
        .map_err(PassError::from_dam)?;
    // A reply without the status field is never "not at A1": the folder was read without its
    // metadata (the load parameters this server wants) or the field id is wrong.
    let Some(status) = field_text(&folder.json, &model.status_field_id) else {
        return Err(PassError::setup_with_hint(
            format!(
                "DAM: the campaign folder {} ({folder_id}) was found by its status but read without the field {:?}",
                folder.name, model.status_field_id
            ),
            "set dam.api.folder_load to the load parameters this server needs (custom or metadata), or correct dam.campaign.status_field_id; `box-setup dam-check` tells which",
        ));
    };
    if status != model.status_a1 {
        tracing::debug!(campaign = %folder.name, dam_folder = folder_id, %status, "not at A1 any more; skipped");
        return Ok(None);
    }
    let number =
        field_text(&folder.json, &model.number_field_id).unwrap_or_else(|| folder.name.clone());
    let name =
        field_text(&folder.json, &model.name_field_id).unwrap_or_else(|| folder.name.clone());
    let children = services
        .dam
        .list_children(folder_id)
        .map_err(PassError::from_dam)?;
    let find = |wanted: &str| {
        children
            .iter()
            .find(|child| child.is_folder && child.name.trim().eq_ignore_ascii_case(wanted.trim()))
            .map(|child| child.id.clone())
    };
    let masters_folder = find(&model.masters_folder_name);
    let final_folder = find(&model.final_assets_folder_name);
    let masters = match (&masters_folder, &final_folder) {
        (Some(masters_folder), Some(_)) => services
            .dam
            .list_children(masters_folder)
            .map_err(PassError::from_dam)?
            .into_iter()
            .filter(|asset| !asset.is_folder)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Some(Inspection {
        number,
        name,
        status,
        masters_folder,
        final_folder,
        masters,
    }))
}

pub(crate) fn process_campaign(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
) -> Result<(), PassError> {
    let model = services.config.dam.campaign.clone();
    let Some(inspection) = inspect_campaign(services, folder_id)? else {
        return Ok(());
    };
    let mut campaign = services.store.upsert_campaign(&CampaignRow {
        dam_folder_id: folder_id.to_string(),
        number: inspection.number.clone(),
        name: inspection.name.clone(),
        status: inspection.status.clone(),
        masters_folder_id: inspection.masters_folder.clone(),
        final_assets_folder_id: inspection.final_folder.clone(),
        box_folder_id: None,
        master_count: None,
        last_partial_failure: None,
    })?;
    let (Some(_), Some(final_folder)) = (&inspection.masters_folder, &inspection.final_folder)
    else {
        let reason = inspection.problem(&model).unwrap_or_default();
        report_campaign_failure(services, &campaign, &reason)?;
        return Ok(());
    };
    let final_folder = final_folder.clone();

    let box_folder = services
        .box_client
        .create_folder(
            &services.config.box_api.root_folder_id,
            &naming::campaign_folder_name(&inspection.number, &inspection.name),
        )
        .map_err(PassError::from_box)?;
    let masters = inspection.masters;
    campaign = services.store.upsert_campaign(&CampaignRow {
        box_folder_id: Some(box_folder.id.clone()),
        master_count: Some(i32::try_from(masters.len()).unwrap_or(i32::MAX)),
        ..campaign
    })?;
    if masters.is_empty() {
        report_campaign_failure(services, &campaign, "the masters folder is empty")?;
        return Ok(());
    }

    // `polling.workers` masters at a time; the campaign lock stays with this connection.
    let outcomes =
        run_workers(
            services,
            report,
            &masters,
            |worker, report, master| match process_master(
                worker,
                report,
                &campaign,
                &box_folder.id,
                &final_folder,
                master,
            ) {
                Ok(()) => Ok(None),
                Err(MasterFailure::Pass(error)) => Err(error),
                Err(MasterFailure::Asset {
                    row_id,
                    reason,
                    class,
                }) => Ok(Some((row_id, reason, class))),
            },
        )?;
    let mut failures: Vec<MasterFailureReport> = Vec::new();
    for (master, outcome) in masters.iter().zip(outcomes) {
        if let Some(Some((row_id, reason, class))) = outcome {
            report.masters_failed += 1;
            tracing::warn!(campaign = %campaign.number, dam_folder = %campaign.dam_folder_id, master = %master.name, dam_asset = %master.id, %reason, "master failed");
            if let Some(row_id) = row_id {
                services.store.mark_master_failed(row_id, &reason)?;
            }
            failures.push(MasterFailureReport {
                dam_asset_id: master.id.clone(),
                name: master.name.clone(),
                reason,
                class,
            });
        }
    }

    if failures.is_empty() {
        complete_campaign(services, report, &campaign)
    } else {
        report_partial_failure(services, &campaign, &masters, &failures)
    }
}

enum MasterFailure {
    /// The master failed (reported; retried next pass).
    Asset {
        row_id: Option<i64>,
        reason: String,
        /// Stable class of the error (step and HTTP status, never the text, which carries
        /// per-request ids): what the partial-failure signature is built from.
        class: String,
    },
    /// The pass cannot go on (database down).
    Pass(PassError),
}

impl From<crate::store::StoreError> for MasterFailure {
    fn from(error: crate::store::StoreError) -> Self {
        MasterFailure::Pass(error.into())
    }
}

fn process_master(
    services: &mut Services,
    report: &mut PassReport,
    campaign: &CampaignRow,
    box_folder_id: &str,
    final_folder_id: &str,
    master: &DamAsset,
) -> Result<(), MasterFailure> {
    let mut rng = OsRng;
    let row = services.store.ensure_master(
        &master.id,
        &campaign.dam_folder_id,
        &master.name,
        Some(final_folder_id),
        &mut || naming::generate_tracking_id(&mut rng),
    )?;
    if row.status == MasterStatus::Uploaded {
        return Ok(());
    }
    // A transport failure (after the client's retries) means the service is down: stop the pass
    // (exit 75) instead of recording a failure of this master.
    let fail_dam = |what: &str, error: DamError| match error {
        error if error.stops_pass() => MasterFailure::Pass(PassError::from_dam(error)),
        error => MasterFailure::Asset {
            row_id: Some(row.id),
            class: error_class(what, error.status()),
            reason: format!("{what} failed: {error}"),
        },
    };
    let fail_box = |what: &str, error: BoxError| match error {
        BoxError::Transport(_) => MasterFailure::Pass(PassError::from_box(error)),
        error => MasterFailure::Asset {
            row_id: Some(row.id),
            class: error_class(what, error.status()),
            reason: format!("{what} failed: {error}"),
        },
    };
    let asset = services
        .dam
        .get_asset(&master.id)
        .map_err(|error| fail_dam("reading it from the DAM", error))?;
    let temp = services.temp_file().map_err(MasterFailure::Pass)?;
    services
        .dam
        .download_to(&master.id, temp.path())
        .map_err(|error| fail_dam("downloading it from the DAM", error))?;
    crash_point!("a1_to_a2::after_download");
    let box_name = naming::master_box_name(&row.tracking_id, &master.name);
    let file = services
        .box_client
        .upload(box_folder_id, &box_name, temp.path())
        .map_err(|error| fail_box("uploading it to Box", error))?;
    crash_point!("a1_to_a2::after_box_upload");
    services.store.mark_master_uploaded(
        row.id,
        &file.id,
        &format!("https://app.box.com/file/{}", file.id),
        file.sha1.as_deref().unwrap_or_default(),
        box_folder_id,
        &asset.json,
    )?;
    crash_point!("a1_to_a2::after_db_record");
    report.masters_uploaded += 1;
    tracing::info!(campaign = %campaign.number, master = %master.name, dam_asset = %master.id, tracking_id = %row.tracking_id, box_file = %file.id, "master uploaded to Box");
    Ok(())
}

/// Moves the campaign to A2 when every master it had at the last pass is uploaded.
fn complete_campaign(
    services: &mut Services,
    report: &mut PassReport,
    campaign: &CampaignRow,
) -> Result<(), PassError> {
    let masters = services
        .store
        .masters_of_campaign(&campaign.dam_folder_id)?;
    let expected = usize::try_from(campaign.master_count.unwrap_or(0)).unwrap_or(0);
    if masters.is_empty()
        || masters.len() < expected
        || masters
            .iter()
            .any(|master| master.status != MasterStatus::Uploaded)
    {
        return Ok(());
    }
    let assets: Vec<AssetFacts<'_>> = masters.iter().map(master_facts).collect();
    let context = notify_plan::a1_to_a2_complete(&campaign_facts(campaign), &assets);
    let model = services.config.dam.campaign.clone();
    let advanced = transition::advance(
        services,
        campaign,
        &Transition {
            from: &model.status_a1,
            to: &model.status_a2,
            event: "campaign.a2",
            template: "a1_to_a2_complete",
        },
        context,
        &assets,
    )?;
    if advanced {
        report.campaigns_advanced += 1;
        tracing::info!(campaign = %campaign.number, dam_folder = %campaign.dam_folder_id, masters = masters.len(), "campaign moved A1 -> A2");
    }
    Ok(())
}

/// What the notifications say about a master in the tracking database.
fn master_facts(master: &MasterRow) -> AssetFacts<'_> {
    AssetFacts {
        dam_asset_id: &master.opentext_id,
        name: &master.original_filename,
        clean_name: &master.original_filename,
        tracking_id: &master.tracking_id,
        box_file_id: master.box_file_id.as_deref(),
    }
}

/// One master that failed in this pass.
struct MasterFailureReport {
    dam_asset_id: String,
    name: String,
    reason: String,
    class: String,
}

/// `{step}:{status}` (e.g. `uploading it to Box:503`), or `{step}:other` without a status.
fn error_class(step: &str, status: Option<u16>) -> String {
    status.map_or_else(
        || format!("{step}:other"),
        |status| format!("{step}:{status}"),
    )
}

/// The signature of a failure set: the failed masters and the class of each failure, so a
/// persisting failure is reported once, and a new master failing, or a master failing
/// differently, is reported again.
fn failure_signature(failures: &[MasterFailureReport]) -> String {
    let mut parts: Vec<String> = failures
        .iter()
        .map(|failure| format!("{}\u{1f}{}", failure.name, failure.class))
        .collect();
    parts.sort();
    hex::encode(<sha1::Sha1 as sha1::Digest>::digest(
        parts.join("\u{1e}").as_bytes(),
    ))
}

fn report_partial_failure(
    services: &mut Services,
    campaign: &CampaignRow,
    masters: &[DamAsset],
    failures: &[MasterFailureReport],
) -> Result<(), PassError> {
    let signature = failure_signature(failures);
    let email = &services.config.email;
    let mut notifications = Vec::new();
    if email.enabled && !email.error_recipients.is_empty() {
        let to = email.error_recipients.clone();
        let rows = services
            .store
            .masters_of_campaign(&campaign.dam_folder_id)?;
        let succeeded: Vec<AssetFacts<'_>> = rows
            .iter()
            .filter(|master| master.status == MasterStatus::Uploaded)
            .map(master_facts)
            .collect();
        let failed: Vec<FailureFacts<'_>> = failures
            .iter()
            .map(|failure| FailureFacts {
                dam_asset_id: &failure.dam_asset_id,
                name: &failure.name,
                reason: &failure.reason,
            })
            .collect();
        let context = notify_plan::a1_to_a2_partial(
            &campaign_facts(campaign),
            masters.len(),
            &succeeded,
            &failed,
        );
        notifications.push(NewNotification {
            idempotency_key: format!("campaign.partial:{}:{signature}", campaign.dam_folder_id),
            channel: NotificationChannel::Email,
            target: "a1_to_a2_partial".into(),
            event: "campaign.partial".into(),
            payload: json!({ "to": to, "context": context }),
        });
    }
    // The signature and its email in one transaction: a crash between them can neither lose
    // the email nor send it twice.
    services
        .store
        .note_partial_failure(&campaign.dam_folder_id, &signature, &notifications)?;
    Ok(())
}

fn report_campaign_failure(
    services: &mut Services,
    campaign: &CampaignRow,
    reason: &str,
) -> Result<(), PassError> {
    tracing::error!(campaign = %campaign.number, dam_folder = %campaign.dam_folder_id, %reason, "campaign cannot be processed");
    let signature = format!("campaign:{reason}");
    let email = &services.config.email;
    let mut notifications = Vec::new();
    if email.enabled && !email.error_recipients.is_empty() {
        let key_hash = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(signature.as_bytes()));
        notifications.push(NewNotification {
            idempotency_key: format!("campaign.failed:{}:{key_hash}", campaign.dam_folder_id),
            channel: NotificationChannel::Email,
            target: "campaign_processing_failed".into(),
            event: "campaign.failed".into(),
            payload: json!({ "to": email.error_recipients, "context": notify_plan::campaign_processing_failed(&campaign_facts(campaign), reason) }),
        });
    }
    services
        .store
        .note_partial_failure(&campaign.dam_folder_id, &signature, &notifications)?;
    Ok(())
}

// ----- dry run (`a1-to-a2 --dry-run`) -----

/// What `a1-to-a2 --dry-run` found: the campaigns at A1 and, per master, what the pass would
/// upload where. Nothing is written anywhere (Box, DAM, database).
#[derive(Debug, Clone, serde::Serialize)]
pub struct A1Plan {
    /// Campaigns whose interrupted move to A2 the pass would finish (numbers).
    pub transitions_to_finish: Vec<String>,
    /// The campaigns at A1 the search found (at most `polling.max_campaigns_per_run`).
    pub campaigns: Vec<CampaignPlan>,
}

/// One campaign of an [`A1Plan`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignPlan {
    /// DAM folder id of the campaign (what `reprocess campaign` takes).
    pub dam_folder: String,
    /// Campaign number.
    pub campaign: String,
    /// Campaign name.
    pub name: String,
    /// What the pass would do with it.
    pub action: CampaignAction,
    /// Why it would fail or be skipped.
    pub reason: Option<String>,
    /// The campaign's Box folder (name under `box.root_folder_id`).
    pub box_folder: Option<String>,
    /// Its Box folder id when it exists already (else the pass creates it).
    pub box_folder_id: Option<String>,
    /// The masters.
    pub masters: Vec<MasterPlan>,
    /// Whether the campaign would move A1 -> A2 (every master uploaded after this pass).
    pub to_a2: bool,
}

/// The action of a [`CampaignPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    /// Upload its masters, then move it to A2.
    Process,
    /// It cannot be processed as it is (`reason`): the pass reports it by email.
    Fail,
    /// No longer at A1.
    Skip,
}

/// The action of a [`MasterPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterAction {
    /// Upload it to Box (a new master gets its tracking ID first).
    Upload,
    /// Done by an earlier pass.
    Uploaded,
}

/// One master of a [`CampaignPlan`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct MasterPlan {
    /// DAM asset id.
    pub dam_asset: String,
    /// File name in the DAM.
    pub name: String,
    /// What the pass would do with it.
    pub action: MasterAction,
    /// Its tracking ID, when one was allocated (a new master gets one at upload).
    pub tracking_id: Option<String>,
    /// The name in Box (`{tracking_id}_{name}`), when the tracking ID is known.
    pub box_name: Option<String>,
    /// The Box file id of an uploaded master.
    pub box_file: Option<String>,
}

/// Plans an `a1-to-a2` pass without changing anything: the pass's own search, campaign reads and
/// checks, the Box folder looked up (not created), and each master's state in the tracking
/// database.
///
/// # Errors
/// [`PassError::Unreachable`] when the DAM, Box or the database cannot be reached.
pub fn plan(services: &mut Services) -> Result<A1Plan, PassError> {
    let model = services.config.dam.campaign.clone();
    let mut transitions_to_finish = Vec::new();
    for campaign_id in services.store.pending_transitions(&model.status_a2)? {
        if let Some(campaign) = services.store.campaign(&campaign_id)? {
            transitions_to_finish.push(campaign.number);
        }
    }
    let mut campaigns = Vec::new();
    if !services.config.polling.enabled {
        return Ok(A1Plan {
            transitions_to_finish,
            campaigns,
        });
    }
    let limit =
        usize::try_from(services.config.polling.max_campaigns_per_run).unwrap_or(usize::MAX);
    let found = services
        .dam
        .search_folders_by_field(
            &model.status_field_id,
            &model.search_operator_id,
            &model.status_a1,
            limit,
        )
        .map_err(PassError::from_dam)?;
    let root = services.config.box_api.root_folder_id.clone();
    let mut root_folders: Option<Vec<(String, String)>> = None;
    for folder in found {
        let mut plan = CampaignPlan {
            dam_folder: folder.id.clone(),
            campaign: folder.name.clone(),
            name: folder.name.clone(),
            action: CampaignAction::Skip,
            reason: None,
            box_folder: None,
            box_folder_id: None,
            masters: Vec::new(),
            to_a2: false,
        };
        let Some(inspection) = inspect_campaign(services, &folder.id)? else {
            plan.reason = Some("no longer at A1".into());
            campaigns.push(plan);
            continue;
        };
        plan.campaign.clone_from(&inspection.number);
        plan.name.clone_from(&inspection.name);
        if let Some(problem) = inspection.problem(&model) {
            plan.action = CampaignAction::Fail;
            plan.reason = Some(problem);
            campaigns.push(plan);
            continue;
        }
        plan.action = CampaignAction::Process;
        let box_name = naming::campaign_folder_name(&inspection.number, &inspection.name);
        let recorded = services
            .store
            .campaign(&folder.id)?
            .and_then(|campaign| campaign.box_folder_id);
        if recorded.is_none() && root_folders.is_none() {
            let items = services
                .box_client
                .list_folder(&root)
                .map_err(PassError::from_box)?;
            root_folders = Some(
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        crate::boxapi::BoxItem::Folder(folder) => Some((folder.name, folder.id)),
                        _ => None,
                    })
                    .collect(),
            );
        }
        plan.box_folder_id = recorded.or_else(|| {
            root_folders
                .iter()
                .flatten()
                .find_map(|(name, id)| name.eq_ignore_ascii_case(&box_name).then(|| id.clone()))
        });
        plan.box_folder = Some(box_name);
        let rows = services.store.masters_of_campaign(&folder.id)?;
        for master in &inspection.masters {
            let row = rows.iter().find(|row| row.opentext_id == master.id);
            let uploaded = row.is_some_and(|row| row.status == MasterStatus::Uploaded);
            let tracking_id = row.map(|row| row.tracking_id.clone());
            plan.masters.push(MasterPlan {
                dam_asset: master.id.clone(),
                name: master.name.clone(),
                action: if uploaded {
                    MasterAction::Uploaded
                } else {
                    MasterAction::Upload
                },
                box_name: tracking_id
                    .as_deref()
                    .map(|tracking_id| naming::master_box_name(tracking_id, &master.name)),
                tracking_id,
                box_file: row.and_then(|row| row.box_file_id.clone()),
            });
        }
        plan.to_a2 = true;
        campaigns.push(plan);
    }
    Ok(A1Plan {
        transitions_to_finish,
        campaigns,
    })
}

impl A1Plan {
    /// The plan as lines for a person: one per campaign and per master.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec!["a1-to-a2 dry run: nothing was changed; the pass would:".to_string()];
        for number in &self.transitions_to_finish {
            lines.push(format!(
                "campaign {number}: finish its interrupted move to A2"
            ));
        }
        let mut uploads = 0;
        for campaign in &self.campaigns {
            let mut line = format!(
                "campaign {} \"{}\" (dam_folder={}): {}",
                campaign.campaign,
                campaign.name,
                campaign.dam_folder,
                match campaign.action {
                    CampaignAction::Process => "process",
                    CampaignAction::Fail => "cannot be processed",
                    CampaignAction::Skip => "skip",
                }
            );
            if let Some(reason) = &campaign.reason {
                line.push_str(&format!(": {reason}"));
            }
            if let Some(box_folder) = &campaign.box_folder {
                match &campaign.box_folder_id {
                    Some(id) => {
                        line.push_str(&format!("; Box folder \"{box_folder}\" ({id}) exists"));
                    }
                    None => line.push_str(&format!("; create Box folder \"{box_folder}\"")),
                }
            }
            lines.push(line);
            for master in &campaign.masters {
                let line = if let (MasterAction::Uploaded, Some(box_file)) =
                    (master.action, &master.box_file)
                {
                    format!(
                        "  uploaded \"{}\" (dam_asset={}) as box_file={box_file}",
                        master.name, master.dam_asset
                    )
                } else {
                    uploads += 1;
                    format!(
                        "  upload \"{}\" (dam_asset={}) as \"{}\"",
                        master.name,
                        master.dam_asset,
                        master
                            .box_name
                            .clone()
                            .unwrap_or_else(|| format!("{{new tracking ID}}_{}", master.name))
                    )
                };
                lines.push(line);
            }
            if campaign.to_a2 {
                lines.push(format!(
                    "  then move campaign {} A1 -> A2",
                    campaign.campaign
                ));
            }
        }
        lines.push(
            if self.campaigns.is_empty() && self.transitions_to_finish.is_empty() {
                "nothing to do: no campaign at A1".to_string()
            } else {
                format!(
                    "{}, {}",
                    super::operator::plural(
                        self.campaigns.len() as u64,
                        "campaign at A1",
                        "campaigns at A1"
                    ),
                    super::operator::plural(uploads, "master to upload", "masters to upload")
                )
            },
        );
        lines
    }
}
