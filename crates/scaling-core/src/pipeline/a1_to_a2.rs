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
            tracing::info!(campaign = %folder.name, "campaign is being handled by another pass; skipped");
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
                tracing::error!(campaign = %folder.name, %error, "campaign could not be processed");
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

pub(crate) fn process_campaign(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
) -> Result<(), PassError> {
    let model = services.config.dam.campaign.clone();
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
        tracing::debug!(campaign = %folder.name, %status, "not at A1 any more; skipped");
        return Ok(());
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
    let mut campaign = services.store.upsert_campaign(&CampaignRow {
        dam_folder_id: folder_id.to_string(),
        number: number.clone(),
        name: name.clone(),
        status: status.clone(),
        masters_folder_id: masters_folder.clone(),
        final_assets_folder_id: final_folder.clone(),
        box_folder_id: None,
        master_count: None,
        last_partial_failure: None,
    })?;
    let (Some(masters_folder), Some(final_folder)) = (masters_folder, final_folder) else {
        let reason = format!(
            "the campaign folder must contain the subfolders \"{}\" and \"{}\"",
            model.masters_folder_name, model.final_assets_folder_name
        );
        report_campaign_failure(services, &campaign, &reason)?;
        return Ok(());
    };

    let box_folder = services
        .box_client
        .create_folder(
            &services.config.box_api.root_folder_id,
            &naming::campaign_folder_name(&number, &name),
        )
        .map_err(PassError::from_box)?;
    let masters: Vec<DamAsset> = services
        .dam
        .list_children(&masters_folder)
        .map_err(PassError::from_dam)?
        .into_iter()
        .filter(|asset| !asset.is_folder)
        .collect();
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
            tracing::warn!(campaign = %campaign.number, master = %master.name, %reason, "master failed");
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
    tracing::info!(campaign = %campaign.number, master = %master.name, tracking_id = %row.tracking_id, box_file = %file.id, "master uploaded to Box");
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
        tracing::info!(campaign = %campaign.number, masters = masters.len(), "campaign moved A1 -> A2");
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
    tracing::error!(campaign = %campaign.number, %reason, "campaign cannot be processed");
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
