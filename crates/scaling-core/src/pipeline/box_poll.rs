//! The `box-poll` pass (design.md §1 step 3).
//!
//! For each watched Box folder: list it; for each file not yet handled (identity = Box file id
//! and file version id, recorded in the `box_files` ledger and claimed with a lease): parse its V2
//! name, find the master by tracking ID, download it (SHA1-checked), probe it, build the DAM asset
//! representation from the field mappings, import it into the master's Final Assets folder under
//! its clean filename, record it, and move the Box file to `_PROCESSED/{YYYY-MM-DD}/`. A file that
//! can never succeed goes to `_errors/` with a `{name}.error.txt` note; a passing failure leaves it
//! in place, retried on later passes with backoff, until `retry.max_attempts`. Campaigns whose
//! every master has a derivative move A2 -> A3 (once), with email and webhook.
//!
//! Nothing is ever deleted in Box: files are only moved.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;

use super::transition::{self, campaign_context, Transition};
use super::{backoff_secs, run_workers, PassError, PassReport, Services};
use crate::boxapi::{BoxError, BoxFile, BoxItem};
use crate::dam::{DamError, JobState};
use crate::media::{self, MediaError};
use crate::metadata::{self, field_text, BuildInput, DomainValues};
use crate::naming::{self, NameCheck, ParsedName};
use crate::store::{BoxFileRow, DerivativeRow, NewNotification};

/// Lease on a claimed file, seconds: longer than one file's processing, short enough that a
/// crashed pass's files are picked up again soon.
const FILE_LEASE_SECS: i64 = 900;

/// How one file ended in this pass.
enum Outcome {
    /// Imported into the DAM (now or by an earlier pass): archive to `_PROCESSED/`.
    Delivered,
    /// Can never succeed as it is: `_errors/` with these problems.
    Rejected(Vec<String>),
    /// A passing failure: leave in place, retry later.
    RetryLater(String),
}

/// Runs one `box-poll` pass.
///
/// # Errors
/// [`PassError::Unreachable`] when Box, the DAM, ffprobe or the database is unreachable (files
/// not yet handled stay where they are); per-file problems are handled, not returned.
pub fn run(services: &mut Services, report: &mut PassReport) -> Result<(), PassError> {
    resume_pending_transitions(services, report)?;
    let watched = services.config.box_api.watched_folders.clone();
    let state = PollState::default();
    let mut first_error = None;
    for folder in &watched {
        if let Err(error) = poll_folder(services, report, &folder.id, &state) {
            tracing::error!(folder = %folder.name, %error, "watched folder could not be polled");
            first_error.get_or_insert(error);
        }
    }
    complete_campaigns(services, report, state)?;
    first_error.map_or(Ok(()), Err)
}

/// What the files of one pass share, across its worker threads: Box folder ids found or
/// created, lookup-domain values, and the campaigns whose completion must be checked at the end.
#[derive(Default)]
pub struct PollState {
    folders: FolderCache,
    domains: DomainCache,
    touched: Mutex<BTreeSet<String>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Moves to A3 every campaign touched in this pass, and every campaign at A2 the database
/// shows complete (a pass that crashed after its last delivery but before this check), when
/// complete (see [`check_campaign_complete`]).
///
/// # Errors
/// Database, DAM errors of the transition.
pub fn complete_campaigns(
    services: &mut Services,
    report: &mut PassReport,
    state: PollState,
) -> Result<(), PassError> {
    let a2 = services.config.dam.campaign.status_a2.clone();
    let mut campaigns = state
        .touched
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    campaigns.extend(services.store.campaigns_complete_at(&a2)?);
    for campaign_id in campaigns {
        check_campaign_complete(services, report, &campaign_id)?;
    }
    Ok(())
}

fn resume_pending_transitions(
    services: &mut Services,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let a3 = services.config.dam.campaign.status_a3.clone();
    for campaign_id in services.store.pending_transitions(&a3)? {
        check_campaign_complete(services, report, &campaign_id)?;
    }
    Ok(())
}

/// Box folder ids of `_PROCESSED`, `_PROCESSED/{date}` and `_errors` per watched folder: taken
/// from the watched folder's listing when there, else found or created once per pass (by one
/// worker while the others wait for it).
#[derive(Default)]
struct FolderCache {
    ids: Mutex<HashMap<(String, String), String>>,
}

impl FolderCache {
    fn child(&self, services: &Services, parent: &str, name: &str) -> Result<String, BoxError> {
        let key = (parent.to_string(), name.to_string());
        let mut ids = locked(&self.ids);
        if let Some(id) = ids.get(&key) {
            return Ok(id.clone());
        }
        let folder = services.box_client.create_folder(parent, name)?;
        ids.insert(key, folder.id.clone());
        Ok(folder.id)
    }

    /// Records a subfolder seen in a listing (Box compares names case-insensitively, but our
    /// folders are created with the configured spelling, so exact names are enough).
    fn seen(&self, parent: &str, name: &str, id: &str) {
        locked(&self.ids).insert((parent.to_string(), name.to_string()), id.to_string());
    }
}

/// Lookup-domain values fetched once per pass (the DAM client also keeps them across passes,
/// for `validate_domain_values.cache_ttl_hours`).
#[derive(Default)]
struct DomainCache {
    values: Mutex<HashMap<String, Vec<String>>>,
}

struct DamDomains<'a> {
    services: &'a Services,
    cache: &'a DomainCache,
    /// Set when a lookup failed for a passing reason: the file is retried, not rejected. The flag
    /// says the DAM was unreachable (transport error after retries): the pass then stops.
    transient_error: Option<(String, bool)>,
}

impl DomainValues for DamDomains<'_> {
    fn values(&mut self, domain_id: &str) -> Result<Vec<String>, String> {
        // Held during the fetch: the other workers wait for this one instead of fetching too.
        let mut cache = locked(&self.cache.values);
        if let Some(values) = cache.get(domain_id) {
            return Ok(values.clone());
        }
        let values: Vec<String> = self
            .services
            .dam
            .lookup_domain(domain_id)
            .map_err(|error| {
                let message = format!("lookup domain {domain_id} could not be read: {error}");
                if error.is_transient() {
                    let unreachable = matches!(error, DamError::Transport(_));
                    self.transient_error = Some((message.clone(), unreachable));
                }
                message
            })?
            .into_iter()
            .map(|value| value.value)
            .collect();
        cache.insert(domain_id.to_string(), values.clone());
        Ok(values)
    }
}

/// Lists one watched folder and handles the files in it (at most `polling.max_files_per_run`),
/// `polling.workers` at a time. Several passes may poll the same folder at once: each file is
/// claimed with a lease, so they share the backlog without ever working on the same file.
fn poll_folder(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    state: &PollState,
) -> Result<(), PassError> {
    let items = services
        .box_client
        .list_folder(folder_id)
        .map_err(PassError::from_box)?;
    let max_files =
        usize::try_from(services.config.polling.max_files_per_run).unwrap_or(usize::MAX);
    let box_config = &services.config.box_api;
    let mut files: Vec<BoxFile> = Vec::new();
    for item in items {
        match item {
            BoxItem::File(file) if files.len() < max_files => files.push(file),
            BoxItem::Folder(folder)
                if folder.name == box_config.processed_folder_name
                    || folder.name == box_config.errors_folder_name =>
            {
                state.folders.seen(folder_id, &folder.name, &folder.id);
            }
            _ => {}
        }
    }
    run_workers(services, report, &files, |worker, report, file| {
        handle_file(worker, report, folder_id, file, state)
    })?;
    Ok(())
}

/// Handles one file of watched folder `folder_id` (found in its listing): ignores debris,
/// records it in the ledger, claims it, processes it and archives or rejects it. Returns
/// without doing anything when another pass holds the file or it is already done.
///
/// # Errors
/// [`PassError::Unreachable`] when a dependency is down: the file is released untouched (the
/// failed attempt is not counted against `retry.max_attempts`) and the pass should stop.
pub fn handle_file(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    file: &BoxFile,
    state: &PollState,
) -> Result<(), PassError> {
    report.files_seen += 1;
    let parsed = match naming::classify(&file.name, &services.config.naming) {
        NameCheck::Ignored { reason } => {
            tracing::debug!(file = %file.name, %reason, "not a delivery; ignored");
            return Ok(());
        }
        other => other,
    };
    let version_id = file
        .file_version_id
        .clone()
        .unwrap_or_else(|| "0".to_string());
    let size = file.size.and_then(|size| i64::try_from(size).ok());
    services.store.observe_box_file(
        &file.id,
        &version_id,
        folder_id,
        &file.name,
        file.sha1.as_deref(),
        size,
    )?;
    let Some(row) =
        services
            .store
            .claim_box_file(&file.id, &version_id, &services.owner, FILE_LEASE_SECS)?
    else {
        return Ok(());
    };
    let outcome = match parsed {
        NameCheck::Invalid { problems } => Outcome::Rejected(problems),
        NameCheck::Parsed(parsed) => {
            match process_file(services, file, &version_id, &row, &parsed, &state.domains) {
                Ok(outcome) => {
                    if let Some(master) =
                        services.store.master_by_tracking_id(&parsed.tracking_id)?
                    {
                        locked(&state.touched).insert(master.campaign_id);
                    }
                    outcome
                }
                Err(error) => {
                    services
                        .store
                        .release_box_file(&file.id, &version_id, &error.to_string())?;
                    return Err(error);
                }
            }
        }
        NameCheck::Ignored { .. } => return Ok(()),
    };
    finish_file(
        services,
        report,
        folder_id,
        file,
        &version_id,
        &row,
        outcome,
        &state.folders,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish_file(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    file: &BoxFile,
    version_id: &str,
    row: &BoxFileRow,
    outcome: Outcome,
    folders: &FolderCache,
) -> Result<(), PassError> {
    match outcome {
        Outcome::Delivered => {
            let processed = services.config.box_api.processed_folder_name.clone();
            let date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
            let target = folders
                .child(services, folder_id, &processed)
                .and_then(|processed_id| folders.child(services, &processed_id, &date))
                .map_err(PassError::from_box)?;
            move_file(services, file, &target)?;
            crash_point!("box_poll::after_box_move");
            services
                .store
                .archive_box_file(&file.id, version_id, &target, false, None)?;
            report.derivatives_delivered += 1;
            tracing::info!(file = %file.name, to = format!("{processed}/{date}"), "derivative delivered and archived");
        }
        Outcome::Rejected(problems) => {
            reject(services, folder_id, file, version_id, &problems, folders)?;
            report.files_rejected += 1;
        }
        Outcome::RetryLater(reason) => {
            let attempts = row.attempts;
            let max = i32::try_from(services.config.retry.max_attempts).unwrap_or(i32::MAX);
            if attempts >= max {
                let problems = vec![format!(
                    "the file could not be processed after {attempts} attempts; last error: {reason}. \
                     It was moved here so it does not block the queue: move it back to the watched folder (or run `reprocess file {}`) once the cause is fixed.",
                    file.id
                )];
                reject(services, folder_id, file, version_id, &problems, folders)?;
                report.files_rejected += 1;
            } else {
                let retry = backoff_secs(
                    attempts,
                    services.config.retry.backoff_base_secs,
                    services.config.retry.backoff_max_secs,
                );
                services.store.set_box_file_state(
                    &file.id,
                    version_id,
                    "failed_transient",
                    Some(&reason),
                    Some(retry),
                )?;
                report.files_retry_later += 1;
                tracing::warn!(file = %file.name, attempt = attempts, retry_in_secs = retry, %reason, "passing failure; will retry");
            }
        }
    }
    Ok(())
}

/// Moves `file` into `target`, keeping its name (the Box client adds a unique prefix on a
/// clash). A 404 after an earlier attempt means it already moved: checked by reading the file.
fn move_file(services: &Services, file: &BoxFile, target: &str) -> Result<(), PassError> {
    match services.box_client.move_file(&file.id, target, &file.name) {
        Ok(_) => Ok(()),
        Err(error) => match services.box_client.get_file(&file.id) {
            Ok(current) if current.parent_id.as_deref() == Some(target) => Ok(()),
            _ => Err(PassError::from_box(error)),
        },
    }
}

/// Uploads the `{name}.error.txt` note into `_errors/`, moves the file there, records it as
/// rejected and queues the error email.
fn reject(
    services: &mut Services,
    folder_id: &str,
    file: &BoxFile,
    version_id: &str,
    problems: &[String],
    folders: &FolderCache,
) -> Result<(), PassError> {
    let errors_name = services.config.box_api.errors_folder_name.clone();
    let errors_folder = folders
        .child(services, folder_id, &errors_name)
        .map_err(PassError::from_box)?;
    let note = error_note(&file.name, problems);
    services
        .box_client
        .upload_text(&errors_folder, &note_name(&file.name), &note)
        .map_err(PassError::from_box)?;
    crash_point!("box_poll::after_error_note");
    move_file(services, file, &errors_folder)?;
    let text = problems.join("\n");
    services
        .store
        .archive_box_file(&file.id, version_id, &errors_folder, true, Some(&text))?;
    tracing::warn!(file = %file.name, problems = %problems.join(" | "), "file rejected; moved to {errors_name}/ with a note");
    let email = &services.config.email;
    if email.enabled && !email.error_recipients.is_empty() {
        services.store.enqueue(&[NewNotification {
            idempotency_key: format!("file.rejected:{}:{version_id}", file.id),
            channel: "email",
            target: "upload_failed".into(),
            event: "file.rejected".into(),
            payload: json!({
                "to": email.error_recipients,
                "context": {
                    "file": { "name": file.name, "box_file_id": file.id, "folder": errors_name },
                    "problems": problems,
                },
            }),
        }])?;
    }
    Ok(())
}

/// Name of the note next to a rejected file: `{name}.error.txt`, shortened (on a character
/// boundary) so it stays within Box's 255-character limit.
pub fn note_name(name: &str) -> String {
    const SUFFIX: &str = ".error.txt";
    const MAX_CHARS: usize = 255;
    let keep = MAX_CHARS - SUFFIX.chars().count();
    let base: String = name.chars().take(keep).collect();
    format!("{}{SUFFIX}", base.trim_end_matches([' ', '.']))
}

/// The text of a `{name}.error.txt` note: what was wrong, and how to fix it.
pub fn error_note(name: &str, problems: &[String]) -> String {
    let mut note =
        format!("The file \"{name}\" could not be delivered to the DAM.\n\nWhat is wrong:\n");
    for problem in problems {
        note.push_str(&format!("  - {problem}\n"));
    }
    note.push_str(
        "\nHow to fix it: correct the file (or its name) and upload it again into the watched folder.\n\
         Derivative names follow the V2 convention:\n\
         {tracking_id}_{subject_title}_{asset_type}_{language_code}_{spec}_v{version}.{ext}\n\
         e.g. K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4\n",
    );
    note
}

fn is_transient_box(error: &BoxError) -> bool {
    error.is_transient() || matches!(error, BoxError::Integrity { .. })
}

/// Processes one claimed, well-named file up to (not including) the Box move.
fn process_file(
    services: &mut Services,
    file: &BoxFile,
    version_id: &str,
    row: &BoxFileRow,
    parsed: &ParsedName,
    domains: &DomainCache,
) -> Result<Outcome, PassError> {
    let Some(master) = services.store.master_by_tracking_id(&parsed.tracking_id)? else {
        return Ok(Outcome::Rejected(vec![format!(
            "tracking ID {} matches no master asset (copy the first six characters of the master's file name in Box)",
            parsed.tracking_id
        )]));
    };
    let Some(final_folder) = master.final_assets_folder_id.clone() else {
        return Ok(Outcome::Rejected(vec![format!(
            "the campaign of master {} has no \"{}\" folder in the DAM",
            master.original_filename, services.config.dam.campaign.final_assets_folder_name
        )]));
    };
    let version = i32::try_from(parsed.version).unwrap_or(i32::MAX);
    if let Some(existing) = services
        .store
        .derivative(&parsed.tracking_id, &parsed.clean_filename)?
    {
        let same_delivery =
            existing.box_file_id == file.id && existing.box_file_version_id == version_id;
        if !same_delivery && existing.version >= version && existing.upload_status != "failed" {
            return Ok(Outcome::Rejected(vec![format!(
                "duplicate delivery: \"{}\" was already delivered as version v{:02} (Box file {}); upload it with a higher version (e.g. _v{:02}) to replace it",
                parsed.clean_filename,
                existing.version,
                existing.box_file_id,
                existing.version + 1
            )]));
        }
    }
    let derivative = services.store.upsert_derivative(
        &parsed.tracking_id,
        &parsed.clean_filename,
        version,
        &file.id,
        version_id,
        file.sha1.as_deref(),
        &final_folder,
    )?;
    let marker = tracking_marker(parsed, &file.id, version_id);
    if derivative.upload_status == "uploaded" {
        return Ok(Outcome::Delivered);
    }
    if derivative.import_requested_at.is_some() {
        // An earlier attempt may have landed: never import twice.
        match find_landed_import(services, &derivative, &marker)? {
            Some(asset_id) => {
                services.store.mark_derivative_uploaded(
                    derivative.id,
                    &asset_id,
                    &file.id,
                    version_id,
                )?;
                tracing::info!(file = %file.name, dam_asset = %asset_id, "found the asset an interrupted pass imported");
                return Ok(Outcome::Delivered);
            }
            None if derivative.dam_job_id.is_some() => {
                return Ok(Outcome::RetryLater(
                    "the DAM import job has not completed yet".into(),
                ));
            }
            None => {}
        }
    }

    let temp = services.temp_file()?;
    if let Err(error) = services
        .box_client
        .download_to(&file.id, file.sha1.as_deref(), temp.path())
    {
        if matches!(error, BoxError::Transport(_)) {
            // Box unreachable even after the client's retries: stop the pass (exit 75).
            return Err(PassError::from_box(error));
        }
        if is_transient_box(&error) {
            return Ok(Outcome::RetryLater(format!(
                "download from Box failed: {error}"
            )));
        }
        return Err(PassError::from_box(error));
    }
    crash_point!("box_poll::after_download");
    let size = std::fs::metadata(temp.path())
        .map(|meta| meta.len())
        .unwrap_or(0);
    if size == 0 {
        return Ok(Outcome::Rejected(vec![
            "the file is empty (0 bytes): upload the finished file again".into(),
        ]));
    }
    let media_info = match media::probe(temp.path(), &parsed.extension, &services.config.media) {
        Ok(info) => info,
        Err(MediaError::Unreadable { message }) => {
            return Ok(Outcome::Rejected(vec![format!(
                "the file cannot be read as .{} media ({message}): export it again and re-upload",
                parsed.extension
            )]))
        }
        Err(error @ MediaError::FfprobeMissing { .. }) => {
            return Err(PassError::Unreachable {
                what: "ffprobe",
                message: error.to_string(),
            })
        }
        Err(error) => {
            return Ok(Outcome::RetryLater(format!(
                "probing the file failed: {error}"
            )))
        }
    };
    let media_attr = |name: &str| media_info.attr(name);
    let input = BuildInput {
        master: &master.full_metadata,
        parsed,
        media_attr: &media_attr,
        tracking_marker: marker.clone(),
    };
    let (representation, transient_error) = {
        let mut lookup = DamDomains {
            services,
            cache: domains,
            transient_error: None,
        };
        let built = metadata::build_representation(
            &input,
            &services.config.field_mappings,
            &services.config.dam,
            &mut lookup,
        );
        (built, lookup.transient_error)
    };
    let representation = match (representation, transient_error) {
        (Ok(representation), _) => representation,
        (Err(_), Some((message, true))) => {
            return Err(PassError::Unreachable {
                what: "DAM",
                message,
            })
        }
        (Err(_), Some((message, false))) => return Ok(Outcome::RetryLater(message)),
        (Err(problems), None) => return Ok(Outcome::Rejected(problems)),
    };
    for warning in &representation.warnings {
        tracing::warn!(file = %file.name, %warning, "metadata warning");
    }
    let fields = serde_json::to_value(&representation.fields).unwrap_or_default();
    let media_json = json!({
        "kind": format!("{:?}", media_info.kind),
        "duration_seconds": media_info.duration_seconds,
        "width": media_info.width,
        "height": media_info.height,
        "frame_rate": media_info.frame_rate,
        "video_codec": media_info.video_codec,
        "audio_codec": media_info.audio_codec,
        "size_bytes": size,
    });
    services
        .store
        .mark_import_requested(derivative.id, &fields, &media_json)?;
    let mime = mime_type(&parsed.extension);
    let job_id = match services.dam.import_asset(
        &final_folder,
        temp.path(),
        &parsed.clean_filename,
        mime,
        &representation.asset_representation,
    ) {
        Ok(job_id) => job_id,
        Err(error @ DamError::Transport(_)) => return Err(PassError::from_dam(error)),
        Err(error) if error.is_transient() => {
            return Ok(Outcome::RetryLater(format!("DAM import failed: {error}")))
        }
        Err(error) => {
            services
                .store
                .reset_import(derivative.id, &error.to_string())?;
            return Ok(Outcome::RetryLater(format!("DAM import refused: {error}")));
        }
    };
    crash_point!("box_poll::after_dam_import_request");
    services.store.set_import_job(derivative.id, &job_id)?;
    let derivative = DerivativeRow {
        dam_job_id: Some(job_id),
        ..derivative
    };
    let Some(asset_id) = find_landed_import(services, &derivative, &marker)? else {
        return Ok(Outcome::RetryLater(
            "the DAM import job has not completed yet".into(),
        ));
    };
    crash_point!("box_poll::after_dam_job_complete");
    services
        .store
        .mark_derivative_uploaded(derivative.id, &asset_id, &file.id, version_id)?;
    crash_point!("box_poll::after_db_record");
    tracing::info!(file = %file.name, clean_name = %parsed.clean_filename, dam_asset = %asset_id, attempt = row.attempts, "derivative imported into the DAM");
    Ok(Outcome::Delivered)
}

/// The value written into `dam.tracking_field_id` of every imported derivative: identifies the
/// exact Box file version it came from, so an interrupted import is recognised.
fn tracking_marker(parsed: &ParsedName, file_id: &str, version_id: &str) -> String {
    format!(
        "{} v{:02} box:{file_id}/{version_id}",
        parsed.tracking_id, parsed.version
    )
}

/// Follows the recorded import job (bounded by `dam.import_job_timeout_secs`) and returns the new
/// asset id; without a job id (crash right after the request), looks for an asset in the folder
/// with the clean name and our tracking marker.
fn find_landed_import(
    services: &Services,
    derivative: &DerivativeRow,
    marker: &str,
) -> Result<Option<String>, PassError> {
    let deadline =
        Instant::now() + Duration::from_secs(services.config.dam.import_job_timeout_secs);
    let mut delay = Duration::from_millis(100);
    loop {
        // While the recorded job runs, ask only the job; look in the folder when there is no
        // job id (crash right after the request), its state is unreadable, or time is up.
        let job_running = match &derivative.dam_job_id {
            Some(job_id) => match services.dam.job_state(job_id) {
                Ok(JobState::Completed { asset_ids }) if !asset_ids.is_empty() => {
                    return Ok(asset_ids.into_iter().next());
                }
                Ok(JobState::Failed { message }) => {
                    tracing::warn!(job = %job_id, %message, "DAM import job failed");
                    return Ok(None);
                }
                Ok(JobState::InProgress) => true,
                Ok(JobState::Completed { .. }) => false,
                Err(error) => {
                    tracing::debug!(%error, "job state unavailable; looking in the folder");
                    false
                }
            },
            None => false,
        };
        let timed_out = Instant::now() >= deadline;
        if job_running && !timed_out {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
            continue;
        }
        let children = services
            .dam
            .list_children(&derivative.dam_folder_id)
            .map_err(PassError::from_dam)?;
        let tracking_field = &services.config.dam.tracking_field_id;
        if let Some(asset) = children.iter().find(|asset| {
            !asset.is_folder
                && asset.name == derivative.derivative_filename
                && field_text(&asset.json, tracking_field).as_deref() == Some(marker)
        }) {
            return Ok(Some(asset.id.clone()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// MIME type for an allowed extension (what the DAM import manifest declares).
pub fn mime_type(extension: &str) -> &'static str {
    match extension.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mxf" => "application/mxf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "tif" | "tiff" => "image/tiff",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "psd" => "image/vnd.adobe.photoshop",
        "pdf" | "ai" => "application/pdf",
        "eps" => "application/postscript",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Moves a campaign A2 -> A3 when every master has at least one delivered derivative.
pub(crate) fn check_campaign_complete(
    services: &mut Services,
    report: &mut PassReport,
    campaign_id: &str,
) -> Result<(), PassError> {
    let Some(campaign) = services.store.campaign(campaign_id)? else {
        return Ok(());
    };
    let model = services.config.dam.campaign.clone();
    let pending = services
        .store
        .transition_state(campaign_id, &model.status_a3)?
        .is_some();
    if campaign.status != model.status_a2 && !pending {
        return Ok(());
    }
    if !services
        .store
        .masters_without_derivative(campaign_id)?
        .is_empty()
    {
        return Ok(());
    }
    let lock = format!("campaign:{campaign_id}");
    if !services.store.try_lock(&lock)? {
        return Ok(());
    }
    let derivatives = services.store.derivatives_of_campaign(campaign_id);
    let result = derivatives.map_err(PassError::from).and_then(|derivatives| {
        let mut context = json!({ "campaign": campaign_context(&campaign) });
        context["derivatives"] = serde_json::Value::Array(
            derivatives
                .iter()
                .map(|derivative| json!({ "name": derivative.derivative_filename, "clean_name": derivative.derivative_filename, "tracking_id": derivative.tracking_id, "dam_asset_id": derivative.dam_asset_id }))
                .collect(),
        );
        transition::advance(
            services,
            &campaign,
            &Transition { from: &model.status_a2, to: &model.status_a3, event: "campaign.a3", template: "a2_to_a3_complete" },
            context,
        )
    });
    services.store.unlock(&lock)?;
    if result? {
        report.campaigns_advanced += 1;
        tracing::info!(campaign = %campaign.number, "campaign moved A2 -> A3");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_note_lists_every_problem_and_the_convention() {
        let note = error_note(
            "bad.mp4",
            &["first problem".into(), "second problem".into()],
        );
        assert!(note.contains("\"bad.mp4\""));
        assert!(note.contains("  - first problem\n  - second problem\n"));
        assert!(note.contains("K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4"));
    }

    #[test]
    fn note_names_fit_box_limits() {
        assert_eq!(note_name("a.mp4"), "a.mp4.error.txt");
        let long = "é".repeat(300);
        let note = note_name(&long);
        assert_eq!(note.chars().count(), 255);
        assert!(note.ends_with(".error.txt"));
        assert_eq!(note_name("trailing. "), "trailing.error.txt");
    }

    #[test]
    fn mime_types_cover_the_default_extensions() {
        for extension in [
            "mp4", "mov", "mxf", "m4v", "jpg", "jpeg", "png", "tif", "tiff", "psd", "pdf", "ai",
            "eps", "gif", "webp", "wav", "mp3",
        ] {
            assert_ne!(
                mime_type(extension),
                "application/octet-stream",
                "{extension}"
            );
        }
        assert_eq!(mime_type("MP4"), "video/mp4");
        assert_eq!(mime_type("exe"), "application/octet-stream");
    }
}
