//! The `box-poll` pass (design.md §1 step 3).
//!
//! For each watched Box folder: list it; for each file not yet handled (identity = Box file id
//! and file version id, recorded in the `box_files` ledger and claimed with a renewed, fenced
//! lease): parse its V2 name, find the master by tracking ID, download it (SHA1-checked), probe
//! it, build the DAM asset representation from the field mappings, claim the **delivery**
//! (tracking ID + derivative key + version) atomically, import it into the master's Final Assets
//! folder under its clean filename, record it, and move the Box file to
//! `_PROCESSED/{YYYY-MM-DD}/`. A file that can never succeed goes to `_errors/` with a note; a
//! passing failure leaves it in place, retried on later passes with backoff, until
//! `retry.max_attempts` failed attempts. Campaigns whose every master has a derivative move
//! A2 -> A3 (once), with email and webhook.
//!
//! Exactly once, by construction (README "Exactly once"):
//! - a delivery row is written only after the content checks passed, by one transaction that
//!   decides new / re-delivery / duplicate under an advisory lock on the derivative key and is
//!   fenced by the ledger claim generation, so equivalent names never both import and a pass
//!   whose lease lapsed never imports;
//! - an import whose reply is in doubt (no reply, any error reply, 401) is never re-sent before
//!   the DAM was asked, by job and by the tracking marker, whether it landed; `importing` rows are
//!   reconciled on later passes until the DAM answers, and a late job is adopted;
//! - a decision and its notifications are one transaction (`rejecting` + email), and a decision
//!   whose Box move did not happen is finished from the ledger by a later pass;
//! - attempts count replies that the file failed, never claims or waits.
//!
//! Nothing is ever deleted in Box: files are only moved.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;

use super::transition::{self, campaign_facts, Transition};
use super::{backoff_secs, run_workers, PassError, PassReport, Services};
use crate::boxapi::{BoxClient, BoxError, BoxFile, BoxItem, EVENTS_PAGE_LIMIT};
use crate::config::WatchedFolder;
use crate::dam::{DamError, DomainValue, ImportProbe};
use crate::media::{self, MediaError};
use crate::metadata::{self, BuildInput, DomainValues};
use crate::naming::{self, NameCheck, ParsedName};
use crate::notify_plan::{self, AssetFacts, RejectedFacts};
use crate::store::folders::FolderListing;
use crate::store::{
    BoxFileRow, Claim, DeliveryClaim, DerivativeRow, EventsCursor, LedgerState, MasterRow,
    NewDelivery, NewNotification, NotificationChannel, UploadStatus,
};

/// Unfinished moves and orphaned imports handled per pass, at most.
const SWEEP_LIMIT: i64 = 50;

/// How one file ended in this pass.
#[derive(Debug)]
enum Outcome {
    /// Imported into the DAM (now or by an earlier pass): archive to `_PROCESSED/`.
    Delivered,
    /// Can never succeed as it is: `_errors/` with these problems.
    Rejected(Vec<String>),
    /// Not done yet: leave in place, try again later. `counted`: a reply said the file failed
    /// (counts against `retry.max_attempts`); otherwise a wait (an import job still running).
    Retry { reason: String, counted: bool },
    /// Box no longer has the file: nothing to do.
    Gone(String),
    /// Another pass took the file over (this pass's lease lapsed): it must not write.
    LostClaim,
}

/// Runs one `box-poll` pass.
///
/// # Errors
/// [`PassError::Unreachable`] when Box, the DAM, ffprobe or the database is unreachable (files
/// not yet handled stay where they are); per-file problems are handled, not returned.
pub fn run(services: &mut Services, report: &mut PassReport) -> Result<(), PassError> {
    resume_pending_transitions(services, report)?;
    let state = PollState::default();
    finish_interrupted(services, report, &state)?;
    let watched = services.config.box_api.watched_folders.clone();
    let watched_ids: Vec<String> = watched.iter().map(|folder| folder.id.clone()).collect();
    let plan = if services.config.polling.events_stream {
        Some(plan_listings(services, &watched_ids)?)
    } else {
        None
    };
    let mut first_error = None;
    let mut pending = Vec::new();
    let mut listings = Vec::new();
    for folder in &watched {
        if plan.as_ref().is_some_and(|plan| !plan.lists(&folder.id)) {
            continue;
        }
        report.folders_listed += 1;
        match poll_folder(services, report, folder, &state, &mut listings) {
            Ok(false) => {}
            Ok(true) => pending.push(folder.id.clone()),
            // A dependency is down: every other folder would meet it too. The pass ends here
            // with one summary line (the caller's); the cursor is not saved, so the next pass
            // lists these folders again.
            Err(error @ PassError::Unreachable { .. }) => return Err(error),
            Err(error) => {
                tracing::error!(folder = %folder.name, %error, "watched folder could not be polled");
                pending.push(folder.id.clone());
                first_error.get_or_insert(error);
            }
        }
    }
    // Folder health for `reprocess status` (one statement; none when nothing was listed).
    services.store.record_folder_listings(&listings)?;
    if let Some(plan) = plan {
        // Only now: a pass that dies before this reads the same events again. An idle pass (no
        // event, no full listing, nothing pending, same folders) has nothing new to save.
        let saved = &plan.saved;
        let unchanged = !plan.full
            && plan.stream_position == saved.stream_position
            && pending == saved.pending_folder_ids
            && watched_ids == saved.watched_folder_ids;
        if !unchanged {
            services.store.save_events_cursor(
                plan.stream_position.as_deref(),
                plan.full,
                &pending,
                &watched_ids,
            )?;
        }
    }
    complete_campaigns(services, report, state)?;
    first_error.map_or(Ok(()), Err)
}

/// Which watched folders a pass with the events stream lists, and the cursor it saves after.
#[derive(Debug)]
struct ListingPlan {
    /// Every watched folder (no position, stream error or expiry, or the full-listing cadence).
    full: bool,
    /// Otherwise these (touched by an event, pending from the last pass, newly configured).
    folders: BTreeSet<String>,
    /// Position to save after the listings (`None`: unknown, the next pass starts over).
    stream_position: Option<String>,
    /// The cursor as it was saved before this pass.
    saved: EventsCursor,
}

impl ListingPlan {
    fn lists(&self, folder_id: &str) -> bool {
        self.full || self.folders.contains(folder_id)
    }
}

/// Pages of events read per pass at most; a longer backlog of events means a full listing.
const MAX_EVENT_PAGES: usize = 20;

/// Reads the events stream from the saved position (README "Configuration", change detection).
/// A stream that errs (an expired position among the causes) or a position never saved means a
/// full listing, from the current position (`stream_position=now`, taken before the listings so
/// nothing that changes during them is missed).
///
/// # Errors
/// Database errors only; Box errors fall back to full listings.
fn plan_listings(services: &mut Services, watched: &[String]) -> Result<ListingPlan, PassError> {
    let cursor = services.store.events_cursor()?;
    let interval =
        i64::try_from(services.config.polling.full_listing_interval_secs).unwrap_or(i64::MAX);
    let mut full = cursor
        .full_listing_age_secs
        .is_none_or(|age| age >= interval);
    let watched_set: BTreeSet<&str> = watched.iter().map(String::as_str).collect();
    let mut folders: BTreeSet<String> = cursor
        .pending_folder_ids
        .iter()
        .filter(|id| watched_set.contains(id.as_str()))
        .cloned()
        .collect();
    folders.extend(
        watched
            .iter()
            .filter(|id| !cursor.watched_folder_ids.contains(id))
            .cloned(),
    );
    let client = &services.box_client;
    let read = match cursor.stream_position.clone() {
        Some(position) => read_events(client, position, &watched_set, &mut folders)
            .map_err(|error| {
                tracing::warn!(%error, "events stream failed; listing every watched folder");
            })
            .ok(),
        None => None,
    };
    let stream_position = if let Some((position, complete)) = read {
        full |= !complete;
        Some(position)
    } else {
        full = true;
        client
            .events_position_now()
            .map_err(|error| {
                tracing::warn!(%error, "events stream position unavailable");
            })
            .ok()
    };
    tracing::debug!(full, folders = folders.len(), "listing plan");
    Ok(ListingPlan {
        full,
        folders,
        stream_position,
        saved: cursor,
    })
}

/// Reads the events after `position`, page by page while a page fills the limit (at most
/// [`MAX_EVENT_PAGES`]), and adds to `folders` every watched folder an event touched: the parent
/// of the item after the event (a new file, a new version, a move in, a rename), or the watched
/// folder itself. Returns the next position and whether the stream was read to its end.
fn read_events(
    client: &BoxClient,
    mut position: String,
    watched: &BTreeSet<&str>,
    folders: &mut BTreeSet<String>,
) -> Result<(String, bool), BoxError> {
    for _ in 0..MAX_EVENT_PAGES {
        let page = client.events(&position, EVENTS_PAGE_LIMIT)?;
        let filled = page.entries.len() >= EVENTS_PAGE_LIMIT as usize;
        for event in page.entries {
            let Some(source) = event.source else { continue };
            if source.kind == "folder" && watched.contains(source.id.as_str()) {
                folders.insert(source.id.clone());
            }
            if let Some(parent) = source.parent_id.filter(|id| watched.contains(id.as_str())) {
                folders.insert(parent);
            }
        }
        position = page.next_stream_position;
        if !filled {
            return Ok((position, true));
        }
    }
    Ok((position, false))
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
    let mut campaigns = state
        .touched
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    campaigns.extend(services.probe()?.complete_campaigns.iter().cloned());
    for campaign_id in campaigns {
        check_campaign_complete(services, report, &campaign_id)?;
    }
    Ok(())
}

fn resume_pending_transitions(
    services: &mut Services,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let pending = services.probe()?.pending_transitions.clone();
    for campaign_id in pending {
        check_campaign_complete(services, report, &campaign_id)?;
    }
    Ok(())
}

/// Finishes what earlier passes decided but could not complete, whatever the watched folders'
/// listings show now: imports in doubt whose file went to `_errors/` are asked about until the
/// DAM answers (a late import is adopted, its file moves on to `_PROCESSED/`), and decisions
/// whose Box move did not happen (`rejecting`, `uploaded_to_dam`) are carried out.
fn finish_interrupted(
    services: &mut Services,
    report: &mut PassReport,
    state: &PollState,
) -> Result<(), PassError> {
    let orphaned = if services.probe()?.orphaned_imports {
        services.store.orphaned_imports(SWEEP_LIMIT)?
    } else {
        Vec::new()
    };
    for derivative in orphaned {
        match reconcile(services, &derivative, false) {
            Ok(Landing::Landed(asset_id)) => {
                adopt(services, &derivative, &asset_id)?;
                if let Some(master) = services
                    .store
                    .master_by_tracking_id(&derivative.tracking_id)?
                {
                    locked(&state.touched).insert(master.campaign_id);
                }
            }
            Ok(Landing::NotLanded(reason)) => {
                services
                    .store
                    .mark_delivery_failed(derivative.id, &reason)?;
            }
            Ok(Landing::Waiting(_)) => {}
            Err(error) if error.stops_pass() => return Err(PassError::from_dam(error)),
            Err(error) => {
                tracing::warn!(box_file = %derivative.box_file_id, dam_folder = %derivative.dam_folder_id, file = %derivative.derivative_filename, %error, "could not ask the DAM about an import in doubt; asking again next pass");
            }
        }
    }
    let lease = lease_secs(services);
    let owner = services.owner.clone();
    let unfinished = if services.probe()?.unfinished_moves {
        services
            .store
            .claim_unfinished_moves(&owner, lease, SWEEP_LIMIT)?
    } else {
        Vec::new()
    };
    for row in unfinished {
        let claim = row.claim(&owner);
        let result = match row.state {
            LedgerState::Rejecting => {
                let problems = recorded_problems(&row);
                reject(
                    services,
                    report,
                    &row.watched_folder_id,
                    &row.name,
                    &claim,
                    &problems,
                    state,
                    true,
                )
            }
            _ => archive(
                services,
                report,
                &row.watched_folder_id,
                &row.name,
                &claim,
                state,
            ),
        };
        if let Err(error) = result {
            services.store.release_box_file(
                &row.file_id,
                &row.file_version_id,
                &error.to_string(),
            )?;
            return Err(error);
        }
    }
    Ok(())
}

/// The problems recorded with a rejection decision (one per line).
fn recorded_problems(row: &BoxFileRow) -> Vec<String> {
    row.last_error
        .as_deref()
        .unwrap_or("rejected")
        .lines()
        .map(str::to_string)
        .collect()
}

fn lease_secs(services: &Services) -> i64 {
    i64::try_from(services.config.polling.lease_secs).unwrap_or(i64::MAX)
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
        if let Some((message, _)) = &self.transient_error {
            // The DAM already failed this file's lookups for a passing reason: not asked again.
            return Err(message.clone());
        }
        // Held during the fetch: the other workers wait for this one instead of fetching too.
        let mut cache = locked(&self.cache.values);
        if let Some(values) = cache.get(domain_id) {
            return Ok(values.clone());
        }
        let dam = &self.services.dam;
        let strict = self
            .services
            .config
            .field_mappings
            .validate_domain_values
            .strict_mode;
        let values: Vec<String> =
            domain_values_or_expired(domain_id, dam.lookup_domain(domain_id), strict, || {
                dam.expired_lookup_domain(domain_id)
            })
            .map_err(|error| {
                let message = format!("lookup domain {domain_id} could not be read: {error}");
                if error.is_transient() {
                    self.transient_error = Some((message.clone(), error.is_unreachable()));
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

/// The lookup-domain policy of `validate_domain_values.strict_mode`: when OTMM cannot be asked for
/// a passing reason and strict mode is off, the values cached earlier are used even when their TTL
/// has passed (a stale list can at worst turn a value into a warning then), with a warning; in
/// strict mode the error stands (the file is retried later rather than rejected against a stale
/// list).
fn domain_values_or_expired(
    domain_id: &str,
    fetched: Result<Vec<DomainValue>, DamError>,
    strict: bool,
    expired: impl FnOnce() -> Option<Vec<DomainValue>>,
) -> Result<Vec<DomainValue>, DamError> {
    match fetched {
        Err(error) if error.is_transient() && !strict => match expired() {
            Some(values) => {
                tracing::warn!(domain_id, %error,
                    "lookup domain could not be refreshed; using the expired cached values (strict_mode is off)");
                Ok(values)
            }
            None => Err(error),
        },
        fetched => fetched,
    }
}

/// What a derivative's name and master alone already condemn, before any download: the field
/// mappings whose source is not a `media.*` attribute, checked as a pass would check them
/// (required values, lookup domains). `reprocess --dry-run` uses it so it never promises to
/// process a file the pass will reject again. Empty when nothing is wrong as far as the name
/// tells.
///
/// # Errors
/// [`PassError::Unreachable`] when the DAM cannot be reached for a lookup domain.
pub fn name_problems(
    services: &Services,
    folder_id: &str,
    parsed: &ParsedName,
    master: &serde_json::Value,
) -> Result<Vec<String>, PassError> {
    let mut mappings = services
        .config
        .folder_settings(folder_id)
        .field_mappings
        .clone();
    mappings
        .filename_field_updates
        .retain(|update| update.source.media().is_none());
    let no_media = |_: crate::config::MediaAttr| None;
    let input = BuildInput {
        master,
        parsed,
        media_attr: &no_media,
        tracking_marker: String::new(),
    };
    let cache = DomainCache::default();
    let mut lookup = DamDomains {
        services,
        cache: &cache,
        transient_error: None,
    };
    let built =
        metadata::build_representation(&input, &mappings, &services.config.dam, &mut lookup);
    match (built, lookup.transient_error) {
        (Ok(_), _) => Ok(Vec::new()),
        (Err(_), Some((message, _))) => Err(PassError::Unreachable {
            what: "DAM",
            message,
        }),
        (Err(problems), None) => Ok(problems),
    }
}

/// Lists one watched folder and handles the files in it (at most `polling.max_files_per_run`),
/// `polling.workers` at a time. Several passes may poll the same folder at once: each file is
/// claimed with a lease, so they share the backlog without ever working on the same file.
/// Returns whether the listing held files to handle (not ignored by the naming rules): such a
/// folder is listed again next pass, whatever the events stream says, until it has none.
fn poll_folder(
    services: &mut Services,
    report: &mut PassReport,
    folder: &WatchedFolder,
    state: &PollState,
    listings: &mut Vec<FolderListing>,
) -> Result<bool, PassError> {
    let folder_id = folder.id.as_str();
    let listed = services.box_client.list_folder(folder_id);
    listings.push(FolderListing {
        folder_id: folder.id.clone(),
        folder_name: folder.name.clone(),
        error: listed.as_ref().err().map(|error| {
            (
                format!("Box: {error}"),
                listing_hint(error.status()).map(str::to_string),
            )
        }),
    });
    let items = listed.map_err(PassError::from_box)?;
    let max_files =
        usize::try_from(services.config.polling.max_files_per_run).unwrap_or(usize::MAX);
    let box_config = &services.config.box_api;
    let mut files: Vec<BoxFile> = Vec::new();
    let mut truncated = false;
    for item in items {
        match item {
            BoxItem::File(file) if files.len() < max_files => files.push(file),
            BoxItem::File(_) => truncated = true,
            BoxItem::Folder(folder)
                if folder.name == box_config.processed_folder_name
                    || folder.name == box_config.errors_folder_name =>
            {
                state.folders.seen(folder_id, &folder.name, &folder.id);
            }
            _ => {}
        }
    }
    let naming = services.config.folder_settings(folder_id).naming;
    let candidates = truncated
        || files.iter().any(|file| {
            !matches!(
                naming::classify(delivered_name(&file.id, &file.name), naming),
                NameCheck::Ignored { .. }
            )
        });
    run_workers(services, report, &files, |worker, report, file| {
        handle_file(worker, report, folder_id, file, state)
    })?;
    Ok(candidates)
}

/// The fix for a watched folder Box refuses to list, by HTTP status.
fn listing_hint(status: Option<u16>) -> Option<&'static str> {
    match status? {
        403 => Some("invite the service account (the Box app's automation user) as Editor of this folder in Box; `box-setup doctor` names it"),
        404 => Some("check box.watched_folders[].id: Box has no such folder, or the service account cannot see it (invite it as Editor)"),
        401 => Some("Box refused the app's credentials: check BOX_CONFIG_FILE and that the app is authorized in the Box Admin Console"),
        _ => None,
    }
}

/// The name a file was delivered under: without the `{file_id}_` prefix this project adds when
/// a move meets a name clash (so a file moved back from `_errors/` parses as delivered).
pub fn delivered_name<'a>(file_id: &str, name: &'a str) -> &'a str {
    name.strip_prefix(file_id)
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(name)
}

/// The name a file is moved under when its own is taken in the target folder: `{file_id}_{name}`
/// (unique, as Box file ids are; [`delivered_name`] strips it again).
pub fn clash_free_name(file_id: &str, name: &str) -> String {
    format!("{file_id}_{name}")
}

/// Moves Box file `file_id` into `parent_id` under `name`; when the name is taken there (409
/// `item_name_in_use`), once more under [`clash_free_name`]. Errors: the Box client's, the second
/// clash's included.
pub fn move_under_free_name(
    client: &BoxClient,
    file_id: &str,
    parent_id: &str,
    name: &str,
) -> Result<BoxFile, BoxError> {
    match client.move_file(file_id, parent_id, name) {
        Err(error) if error.is_name_in_use() => {
            let unique = clash_free_name(file_id, name);
            tracing::info!(box_file = file_id, parent_id, name, new_name = %unique, "name taken in the target folder; moving under a unique name");
            client.move_file(file_id, parent_id, &unique)
        }
        other => other,
    }
}

/// The folder Box file `file_id` is in now (GET /files/{id}, one request), `None` when Box no
/// longer has it (404: deleted or in the trash).
fn current_parent(services: &Services, file_id: &str) -> Result<Option<String>, BoxError> {
    Ok(services
        .box_client
        .file_if_present(file_id)?
        .and_then(|current| current.parent_id))
}

/// Whether Box file `file_id` is in folder `folder_id` now (asked only for a file the ledger has
/// recorded as moved out). A file gone from Box is not.
fn back_in_watched_folder(
    services: &Services,
    file_id: &str,
    folder_id: &str,
) -> Result<bool, PassError> {
    let parent = current_parent(services, file_id).map_err(PassError::from_box)?;
    Ok(parent.as_deref() == Some(folder_id))
}

/// Handles one file of watched folder `folder_id`, found in its listing:
/// ignores debris, records it in the ledger, claims it, processes it and archives or rejects
/// it. Returns without doing anything when another pass holds the file or it is already done.
/// A file recorded as archived or rejected that Box confirms is in the watched folder again was
/// moved back by a person: it is taken up again (a fix, or a retry).
///
/// # Errors
/// [`PassError::Unreachable`] when a dependency is down: the file is released untouched (no
/// attempt counted) and the pass should stop.
pub fn handle_file(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    file: &BoxFile,
    state: &PollState,
) -> Result<(), PassError> {
    report.files_seen += 1;
    let name = delivered_name(&file.id, &file.name);
    let check = match naming::classify(name, services.config.folder_settings(folder_id).naming) {
        NameCheck::Ignored { reason } => {
            tracing::debug!(box_file = %file.id, file = %file.name, %reason, "not a delivery; ignored");
            return Ok(());
        }
        other => other,
    };
    let version_id = file
        .file_version_id
        .clone()
        .unwrap_or_else(|| "0".to_string());
    let size = file.size.and_then(|size| i64::try_from(size).ok());
    let seen = services.store.observe_box_file(
        &file.id,
        &version_id,
        folder_id,
        &file.name,
        file.sha1.as_deref(),
        size,
    )?;
    let reopen_generation = if matches!(seen.state, LedgerState::Archived | LedgerState::Rejected) {
        // Listed in the watched folder, recorded as moved out: the listing predates the move
        // (another pass's), or a person moved the file back. Only Box knows which.
        if !back_in_watched_folder(services, &file.id, folder_id)? {
            return Ok(());
        }
        tracing::info!(box_file = %file.id, file = %file.name, state = seen.state.as_str(), "moved back into the watched folder; taking it up again");
        Some(seen.claim_generation)
    } else {
        None
    };
    let Some(row) = services.store.claim_box_file(
        &file.id,
        &version_id,
        &services.owner,
        lease_secs(services),
        reopen_generation,
    )?
    else {
        return Ok(());
    };
    let claim = row.claim(&services.owner);
    let outcome = if row.state == LedgerState::Rejecting {
        // Decided (and its email queued) by a pass that died before the move: finish it.
        Outcome::Rejected(recorded_problems(&row))
    } else {
        match check {
            NameCheck::Parsed(parsed) => {
                match process_file(services, folder_id, file, &claim, &parsed, state) {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        services.store.release_box_file(
                            &file.id,
                            &version_id,
                            &error.to_string(),
                        )?;
                        return Err(error);
                    }
                }
            }
            NameCheck::Invalid { problems } => Outcome::Rejected(problems),
            NameCheck::Ignored { .. } => return Ok(()),
        }
    };
    let decided = row.state == LedgerState::Rejecting;
    finish_file(
        services, report, folder_id, file, &row, &claim, outcome, decided, state,
    )
}

fn finish_file(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    file: &BoxFile,
    row: &BoxFileRow,
    claim: &Claim,
    outcome: Outcome,
    decided: bool,
    state: &PollState,
) -> Result<(), PassError> {
    match outcome {
        Outcome::Delivered => archive(services, report, folder_id, &file.name, claim, state),
        Outcome::Rejected(problems) => reject(
            services, report, folder_id, &file.name, claim, &problems, state, decided,
        ),
        Outcome::Retry { reason, counted } => {
            let attempts = row.attempts + i32::from(counted);
            if gives_up(services, row.attempts, counted) {
                let problems = vec![format!(
                    "the file could not be processed after {attempts} attempts; last error: {reason}. \
                     It was moved here so it does not block the queue: move it back to the watched folder (or run `reprocess file {}`) once the cause is fixed.",
                    file.id
                )];
                return reject(
                    services, report, folder_id, &file.name, claim, &problems, state, false,
                );
            }
            let retry = if counted {
                backoff_secs(
                    attempts,
                    services.config.retry.backoff_base_secs,
                    services.config.retry.backoff_max_secs,
                )
            } else {
                0
            };
            services
                .store
                .record_retry(claim, &reason, counted, retry)?;
            report.files_retry_later += 1;
            if counted {
                tracing::warn!(box_file = %file.id, file = %file.name, attempt = attempts, retry_in_secs = retry, %reason, "passing failure; will retry");
            } else {
                tracing::info!(box_file = %file.id, file = %file.name, %reason, "not finished yet; the next pass looks again");
            }
            Ok(())
        }
        Outcome::Gone(reason) => {
            services
                .store
                .ignore_box_file(&claim.file_id, &claim.file_version_id, &reason)?;
            tracing::info!(box_file = %file.id, file = %file.name, %reason, "file gone from Box; ignored");
            Ok(())
        }
        Outcome::LostClaim => {
            tracing::warn!(box_file = %file.id, file = %file.name, "another pass took this file over (this pass's lease lapsed); leaving it to that pass");
            Ok(())
        }
    }
}

/// Moves a delivered file (and every note we wrote for it) to `_PROCESSED/{date}/` and records
/// it `archived`.
fn archive(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    name: &str,
    claim: &Claim,
    state: &PollState,
) -> Result<(), PassError> {
    let processed = services.config.box_api.processed_folder_name.clone();
    let date = processed_subfolder();
    let target = state
        .folders
        .child(services, folder_id, &processed)
        .and_then(|processed_id| state.folders.child(services, &processed_id, &date))
        .map_err(PassError::from_box)?;
    let moved = move_file(services, &claim.file_id, name, &target)?;
    crash_point!("box_poll::after_box_move");
    for (version_id, note_id) in services.store.notes_of_file(&claim.file_id)? {
        let note_name = format!("{}.error.txt", delivered_name(&claim.file_id, name));
        move_file(services, &note_id, &note_name, &target)?;
        services.store.clear_note(&claim.file_id, &version_id)?;
    }
    services.store.archive_box_file(
        &claim.file_id,
        &claim.file_version_id,
        &target,
        false,
        None,
    )?;
    if moved {
        report.derivatives_delivered += 1;
        tracing::info!(box_file = %claim.file_id, file = %name, to = format!("{processed}/{date}"), "derivative delivered and archived");
    } else {
        tracing::warn!(box_file = %claim.file_id, file = %name, "delivered, but the file is no longer in Box to archive");
    }
    Ok(())
}

/// Moves a file into `target`, keeping its name ([`move_under_free_name`]: a unique prefix on a
/// clash). Returns false when Box no longer has the file (deleted or trashed by a person). A
/// failure after an earlier attempt may mean it already moved: checked by reading the file.
fn move_file(
    services: &Services,
    file_id: &str,
    name: &str,
    target: &str,
) -> Result<bool, PassError> {
    match move_under_free_name(&services.box_client, file_id, target, name) {
        Ok(_) => Ok(true),
        Err(error) => match current_parent(services, file_id) {
            Ok(Some(parent)) if parent == target => Ok(true),
            Ok(None) => Ok(false),
            _ => Err(PassError::from_box(error)),
        },
    }
}

/// Rejects a file: records the decision with its email in one transaction (unless `decided`:
/// an earlier pass did), uploads its note into `_errors/`, moves the file there and records it
/// `rejected`. Every step after the decision is repeatable: a pass that dies between two of them
/// is finished by a later one.
fn reject(
    services: &mut Services,
    report: &mut PassReport,
    folder_id: &str,
    name: &str,
    claim: &Claim,
    problems: &[String],
    state: &PollState,
    decided: bool,
) -> Result<(), PassError> {
    let errors_name = services.config.box_api.errors_folder_name.clone();
    if !decided {
        // The ID the name starts with, as the plan's `upload_failed` data gives it (it may be
        // the very thing that is wrong).
        let tracking_id = name.get(..6).unwrap_or_default().to_ascii_uppercase();
        let email = &services.config.email;
        let recipients = services.config.folder_settings(folder_id).error_recipients;
        let mut notifications = Vec::new();
        if email.enabled && !recipients.is_empty() {
            notifications.push(NewNotification {
                idempotency_key: format!(
                    "file.rejected:{}:{}:{}",
                    claim.file_id, claim.file_version_id, claim.generation
                ),
                channel: NotificationChannel::Email,
                target: "upload_failed".into(),
                event: "file.rejected".into(),
                payload: json!({
                    "to": recipients,
                    "context": notify_plan::upload_failed(&RejectedFacts {
                        name,
                        box_file_id: &claim.file_id,
                        folder: &errors_name,
                        tracking_id: &tracking_id,
                        problems,
                    }),
                }),
            });
        }
        if !services
            .store
            .begin_reject(claim, &problems.join("\n"), &notifications)?
        {
            tracing::warn!(box_file = %claim.file_id, file = %name, "another pass took this file over; not rejecting it here");
            return Ok(());
        }
        crash_point!("box_poll::after_reject_decided");
    }
    let errors_folder = state
        .folders
        .child(services, folder_id, &errors_name)
        .map_err(PassError::from_box)?;
    let note = error_note(
        delivered_name(&claim.file_id, name),
        &claim.file_id,
        &claim.file_version_id,
        problems,
    );
    let note_file = upload_note(services, &errors_folder, name, claim, &note)?;
    services
        .store
        .set_note(&claim.file_id, &claim.file_version_id, &note_file)?;
    crash_point!("box_poll::after_error_note");
    let moved = move_file(services, &claim.file_id, name, &errors_folder)?;
    crash_point!("box_poll::after_reject_move");
    services.store.archive_box_file(
        &claim.file_id,
        &claim.file_version_id,
        &errors_folder,
        true,
        None,
    )?;
    if moved {
        report.files_rejected += 1;
        tracing::warn!(box_file = %claim.file_id, file = %name, problems = %problems.join(" | "), "file rejected; moved to {errors_name}/ with a note");
    }
    Ok(())
}

/// Uploads the note of a rejected file version into `errors_folder`: `{name}.error.txt`, or,
/// when that name holds another file (an agency's, or the note of another file or version),
/// `{name}.{file_id}-{version_id}.error.txt`. Never a new version of a file we did not create:
/// a name taken by the same text is our own earlier upload. Returns the note's file id.
fn upload_note(
    services: &Services,
    errors_folder: &str,
    name: &str,
    claim: &Claim,
    note: &str,
) -> Result<String, PassError> {
    let base = delivered_name(&claim.file_id, name);
    let tag = format!("{}-{}", claim.file_id, claim.file_version_id);
    for candidate in [note_name(base), note_name_tagged(base, &tag)] {
        if let Some(file) = services
            .box_client
            .upload_text(errors_folder, &candidate, note)
            .map_err(PassError::from_box)?
        {
            return Ok(file.id);
        }
    }
    Err(PassError::Failed(format!(
        "no free name for the note of Box file {} in folder {errors_folder}",
        claim.file_id
    )))
}

/// Name of the note next to a rejected file: `{name}.error.txt`, shortened (on a character
/// boundary) so it stays within Box's 255-character limit.
pub fn note_name(name: &str) -> String {
    note_name_tagged(name, "")
}

/// Like [`note_name`] with `.{tag}` before `.error.txt`; the tag is never cut.
fn note_name_tagged(name: &str, tag: &str) -> String {
    const SUFFIX: &str = ".error.txt";
    const MAX_CHARS: usize = 255;
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!(".{tag}")
    };
    let keep = MAX_CHARS.saturating_sub(SUFFIX.chars().count() + tag.chars().count());
    let base: String = name.chars().take(keep).collect();
    format!("{}{tag}{SUFFIX}", base.trim_end_matches([' ', '.']))
}

/// The text of a `{name}.error.txt` note: what was wrong, and how to fix it. It names the Box
/// file and version it is about (the id `reprocess file` takes), so the notes of two files with
/// the same name never have the same content (a note is recognised as our own earlier upload by
/// its SHA-1).
pub fn error_note(name: &str, file_id: &str, file_version_id: &str, problems: &[String]) -> String {
    let mut note = format!(
        "The file \"{name}\" (Box file {file_id}, version {file_version_id}) could not be delivered to the DAM.\n\nWhat is wrong:\n"
    );
    for problem in problems {
        note.push_str(&format!("  - {problem}\n"));
    }
    note.push_str(
        "\nHow to fix it: correct the file here (rename it, or upload a new version) and move it back \
         into the watched folder, or upload the corrected file into the watched folder again.\n\
         Derivative names follow the V2 convention:\n\
         {tracking_id}_{subject_title}_{asset_type}_{language_code}_{spec}_v{version}.{ext}\n\
         e.g. K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4\n",
    );
    note
}

fn duplicate_problem(parsed: &ParsedName, existing: &DerivativeRow) -> String {
    let verb = if existing.upload_status == UploadStatus::Uploaded {
        "was already delivered"
    } else {
        "is being delivered"
    };
    format!(
        "duplicate delivery: \"{}\" {verb} as version v{:02} (Box file {}); upload it with a higher version (e.g. _v{:02}) to replace it",
        parsed.clean_filename,
        existing.version,
        existing.box_file_id,
        existing.version + 1
    )
}

/// Processes one claimed, well-named file up to (not including) the Box move.
fn process_file(
    services: &mut Services,
    folder_id: &str,
    file: &BoxFile,
    claim: &Claim,
    parsed: &ParsedName,
    state: &PollState,
) -> Result<Outcome, PassError> {
    let (master, final_folder) = match match_master(services, parsed)? {
        Ok(found) => found,
        Err(problems) => return Ok(Outcome::Rejected(problems)),
    };
    let version = i32::try_from(parsed.version).unwrap_or(i32::MAX);
    let key = naming::derivative_key(&parsed.clean_filename);
    let version_id = claim.file_version_id.clone();

    // An earlier attempt on this very Box file version: never import before the DAM was asked.
    let resend = match earlier_delivery(services, file, &version_id, parsed)? {
        Earlier::New => None,
        Earlier::Resend(existing, reason) => {
            tracing::info!(box_file = %file.id, file = %file.name, %reason, "the earlier import did not land; importing again");
            Some(existing)
        }
        Earlier::Imported(landed) => {
            if let Some((existing, asset_id)) = landed {
                adopt(services, &existing, &asset_id)?;
            }
            locked(&state.touched).insert(master.campaign_id.clone());
            return Ok(Outcome::Delivered);
        }
        Earlier::Decided(outcome) => return Ok(outcome),
    };
    let checked = match check_content(
        services,
        folder_id,
        file,
        &version_id,
        parsed,
        &master,
        &state.domains,
    )? {
        ContentCheck::Passed(checked) => *checked,
        ContentCheck::Failed(outcome) => return Ok(outcome),
    };
    let Checked {
        temp,
        representation,
        fields,
        media_json,
        marker,
    } = checked;
    for warning in &representation.warnings {
        tracing::warn!(box_file = %file.id, file = %file.name, %warning, "metadata warning");
    }
    // The decision and the record of the request, in one fenced transaction, before anything
    // is sent.
    let derivative = match resend {
        Some(existing) => {
            if !services.store.resend_import(existing.id, claim)? {
                return Ok(Outcome::LostClaim);
            }
            existing
        }
        None => match services.store.claim_delivery(
            claim,
            &NewDelivery {
                tracking_id: &parsed.tracking_id,
                derivative_filename: &parsed.clean_filename,
                derivative_key: &key,
                version,
                box_sha1: file.sha1.as_deref(),
                dam_folder_id: &final_folder,
                marker: &marker,
                metadata: &fields,
                media: &media_json,
            },
        )? {
            DeliveryClaim::Send(row) => row,
            DeliveryClaim::Existing(_) => {
                return Ok(Outcome::Retry {
                    reason: "an earlier import of this file version is being reconciled".into(),
                    counted: false,
                })
            }
            DeliveryClaim::Duplicate(existing) => {
                return Ok(Outcome::Rejected(vec![duplicate_problem(
                    parsed, &existing,
                )]))
            }
            DeliveryClaim::LostClaim => return Ok(Outcome::LostClaim),
        },
    };
    crash_point!("box_poll::after_delivery_claimed");
    let mime = mime_type(&parsed.extension);
    let job_id = match services.dam.import_asset(
        &final_folder,
        temp.path(),
        &parsed.clean_filename,
        mime,
        &representation.asset_representation,
    ) {
        Ok(job_id) => job_id,
        Err(error) => {
            // Whatever the reply, the import may have landed (an error after the write, a lost
            // reply): keep it `importing`; the next attempt asks the DAM before sending again.
            services
                .store
                .note_import_doubt(derivative.id, &error.to_string())?;
            return dam_failure(error, "DAM import");
        }
    };
    crash_point!("box_poll::after_dam_import_request");
    services.store.set_import_job(derivative.id, &job_id)?;
    let derivative = DerivativeRow {
        dam_job_id: Some(job_id),
        ..derivative
    };
    match reconcile(services, &derivative, true) {
        Ok(Landing::Landed(asset_id)) => {
            crash_point!("box_poll::after_dam_job_complete");
            adopt(services, &derivative, &asset_id)?;
            crash_point!("box_poll::after_db_record");
            locked(&state.touched).insert(master.campaign_id.clone());
            tracing::info!(box_file = %file.id, clean_name = %parsed.clean_filename, dam_asset = %asset_id, "derivative imported into the DAM");
            Ok(Outcome::Delivered)
        }
        Ok(Landing::Waiting(reason)) => Ok(Outcome::Retry {
            reason,
            counted: false,
        }),
        Ok(Landing::NotLanded(reason)) => {
            services
                .store
                .mark_delivery_failed(derivative.id, &reason)?;
            Ok(Outcome::Retry {
                reason,
                counted: true,
            })
        }
        Err(error) => dam_failure(error, "following the DAM import job"),
    }
}

/// What the deliveries recorded so far say about a file version ([`earlier_delivery`]).
enum Earlier {
    /// Nothing recorded blocks a new import.
    New,
    /// An earlier import of this very version did not land (why): import again, on this row.
    Resend(DerivativeRow, String),
    /// Imported already: by an earlier pass (`None`), or its import in doubt landed as this
    /// asset (to adopt).
    Imported(Option<(DerivativeRow, String)>),
    /// The file's outcome now: wait for an import in doubt, retry, or reject as a duplicate.
    Decided(Outcome),
}

/// Looks up the deliveries recorded for Box file `file` version `version_id` and its derivative
/// key, asking the DAM (once, without waiting) about an import in doubt. Reads only (shared by
/// the pass and its dry run).
///
/// # Errors
/// Database errors; [`PassError::Unreachable`] when the DAM cannot be reached.
fn earlier_delivery(
    services: &mut Services,
    file: &BoxFile,
    version_id: &str,
    parsed: &ParsedName,
) -> Result<Earlier, PassError> {
    if let Some(existing) = services
        .store
        .delivery_of_box_version(&file.id, version_id)?
    {
        match existing.upload_status {
            UploadStatus::Uploaded => return Ok(Earlier::Imported(None)),
            UploadStatus::Importing => {
                return Ok(match reconcile(services, &existing, false) {
                    Ok(Landing::Landed(asset_id)) => Earlier::Imported(Some((existing, asset_id))),
                    Ok(Landing::Waiting(reason)) => Earlier::Decided(Outcome::Retry {
                        reason,
                        counted: false,
                    }),
                    Ok(Landing::NotLanded(reason)) => Earlier::Resend(existing, reason),
                    Err(error) => Earlier::Decided(dam_failure(
                        error,
                        "asking the DAM about an earlier import",
                    )?),
                })
            }
            UploadStatus::Pending | UploadStatus::Failed => {}
        }
    }
    let key = naming::derivative_key(&parsed.clean_filename);
    let version = i32::try_from(parsed.version).unwrap_or(i32::MAX);
    Ok(
        match services.store.blocking_delivery(
            &parsed.tracking_id,
            &key,
            version,
            &file.id,
            version_id,
        )? {
            Some(existing) => Earlier::Decided(Outcome::Rejected(vec![duplicate_problem(
                parsed, &existing,
            )])),
            None => Earlier::New,
        },
    )
}

/// A derivative that passed every content check ([`check_content`]).
struct Checked {
    /// The downloaded file (removed when dropped).
    temp: tempfile::NamedTempFile,
    /// The DAM import body, its field values and warnings.
    representation: metadata::Representation,
    /// The field values as JSON (for the delivery row).
    fields: serde_json::Value,
    /// What ffprobe found, as JSON (for the delivery row).
    media_json: serde_json::Value,
    /// The tracking marker the import will carry.
    marker: String,
}

/// What the content checks of one file found.
enum ContentCheck {
    /// Every check passed.
    Passed(Box<Checked>),
    /// The file cannot go on now: rejected, retried later or gone.
    Failed(Outcome),
}

/// The content checks of a well-named file whose master is known, all read-only (shared by the
/// pass and its dry run): download from Box (SHA1-checked), not empty, readable by ffprobe, and
/// the DAM representation built from the field mappings (lookup domains asked through
/// `domains`).
///
/// # Errors
/// [`PassError::Unreachable`] when Box, the DAM or ffprobe cannot be used now.
fn check_content(
    services: &Services,
    folder_id: &str,
    file: &BoxFile,
    version_id: &str,
    parsed: &ParsedName,
    master: &MasterRow,
    domains: &DomainCache,
) -> Result<ContentCheck, PassError> {
    let failed = |outcome| Ok(ContentCheck::Failed(outcome));
    let temp = services.temp_file()?;
    if let Err(error) = services
        .box_client
        .download_to(&file.id, file.sha1.as_deref(), temp.path())
    {
        if matches!(error, BoxError::Transport(_)) {
            // Box unreachable even after the client's retries: stop the pass (exit 75).
            return Err(PassError::from_box(error));
        }
        if error.status() == Some(404) {
            return failed(Outcome::Gone(format!(
                "Box answered 404 for its content: {error}"
            )));
        }
        // A reply that this file cannot be downloaded now (5xx, 429, 403, a checksum
        // mismatch): an attempt; after `retry.max_attempts` it goes to _errors, and the rest
        // of the folder goes on meanwhile.
        return failed(Outcome::Retry {
            reason: format!("download from Box failed: {error}"),
            counted: true,
        });
    }
    crash_point!("box_poll::after_download");
    let size = std::fs::metadata(temp.path())
        .map(|meta| meta.len())
        .unwrap_or(0);
    if size == 0 {
        return failed(Outcome::Rejected(vec![
            "the file is empty (0 bytes): upload the finished file again".into(),
        ]));
    }
    let media_info = match media::probe(temp.path(), &parsed.extension, &services.config.media) {
        Ok(info) => info,
        Err(MediaError::Unreadable { message }) => {
            return failed(Outcome::Rejected(vec![format!(
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
            return failed(Outcome::Retry {
                reason: format!("probing the file failed: {error}"),
                counted: true,
            })
        }
    };
    let marker = tracking_marker(parsed, &file.id, version_id);
    let media_attr = |attr| media_info.attr(attr);
    let input = BuildInput {
        master: &master.full_metadata,
        parsed,
        media_attr: &media_attr,
        tracking_marker: marker.clone(),
    };
    let mut lookup = DamDomains {
        services,
        cache: domains,
        transient_error: None,
    };
    let built = metadata::build_representation(
        &input,
        services.config.folder_settings(folder_id).field_mappings,
        &services.config.dam,
        &mut lookup,
    );
    let representation = match (built, lookup.transient_error) {
        (Ok(representation), _) => representation,
        (Err(_), Some((message, true))) => {
            return Err(PassError::Unreachable {
                what: "DAM",
                message,
            })
        }
        (Err(_), Some((message, false))) => {
            return failed(Outcome::Retry {
                reason: message,
                counted: true,
            })
        }
        (Err(problems), None) => return failed(Outcome::Rejected(problems)),
    };
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
    Ok(ContentCheck::Passed(Box::new(Checked {
        temp,
        representation,
        fields,
        media_json,
        marker,
    })))
}

/// The master a parsed name points to and the DAM folder its derivatives are imported into, or
/// why the file is rejected. Reads only (shared by the pass and its dry run).
///
/// # Errors
/// Database errors.
fn match_master(
    services: &mut Services,
    parsed: &ParsedName,
) -> Result<Result<(MasterRow, String), Vec<String>>, PassError> {
    let Some(master) = services.store.master_by_tracking_id(&parsed.tracking_id)? else {
        return Ok(Err(vec![format!(
            "tracking ID {} matches no master asset (copy the first six characters of the master's file name in Box)",
            parsed.tracking_id
        )]));
    };
    let Some(final_folder) = master.final_assets_folder_id.clone() else {
        return Ok(Err(vec![format!(
            "the campaign of master {} has no \"{}\" folder in the DAM",
            master.original_filename, services.config.dam.campaign.final_assets_folder_name
        )]));
    };
    Ok(Ok((master, final_folder)))
}

/// A DAM error for this file: unreachable (transport) stops the pass; any other reply counts an
/// attempt.
fn dam_failure(error: DamError, what: &str) -> Result<Outcome, PassError> {
    if error.stops_pass() {
        return Err(PassError::from_dam(error));
    }
    Ok(Outcome::Retry {
        reason: format!("{what} failed: {error}"),
        counted: true,
    })
}

/// What the notifications say about a delivered derivative (`name` and `clean_name`: its name
/// in the DAM).
fn derivative_facts(derivative: &DerivativeRow) -> AssetFacts<'_> {
    AssetFacts {
        dam_asset_id: derivative.dam_asset_id.as_deref().unwrap_or_default(),
        name: &derivative.derivative_filename,
        clean_name: &derivative.derivative_filename,
        tracking_id: &derivative.tracking_id,
        box_file_id: Some(&derivative.box_file_id),
    }
}

/// Records a landed import: the delivery `uploaded`, its ledger row `uploaded_to_dam`, and the
/// `asset.imported` webhooks (the plan's `asset_upload_complete`), once per derivative, in
/// the same transaction.
fn adopt(
    services: &mut Services,
    derivative: &DerivativeRow,
    asset_id: &str,
) -> Result<(), PassError> {
    let facts = AssetFacts {
        dam_asset_id: asset_id,
        ..derivative_facts(derivative)
    };
    let values = notify_plan::asset_imported_values(&facts, jiff::Timestamp::now().as_second());
    let notifications = transition::webhook_notifications(
        services,
        "asset.imported",
        &format!("asset.imported:{}", derivative.id),
        &values,
        &values,
    );
    services
        .store
        .mark_derivative_uploaded(derivative.id, asset_id, &notifications)?;
    tracing::info!(box_file = %derivative.box_file_id, clean_name = %derivative.derivative_filename, dam_asset = %asset_id, "import confirmed by the DAM");
    Ok(())
}

/// What the DAM says about an import request.
#[derive(Debug)]
enum Landing {
    /// The asset exists (its id).
    Landed(String),
    /// Not known yet: the job is running, or the request is recent enough that its asset may
    /// not be visible yet. No attempt is counted.
    Waiting(String),
    /// It did not land: the job failed, or no asset carries the marker long after the request.
    NotLanded(String),
}

/// Asks the DAM whether the import of `derivative` landed
/// ([`crate::dam::DamClient::wait_for_import`], the way `dam.api.import_completion` says: with
/// `follow` up to `dam.import_job_timeout_secs`, without it once): the asset carrying our
/// tracking marker with the clean name, else "waiting" within `dam.import_landing_secs` of the
/// request and "did not land" after it.
fn reconcile(
    services: &Services,
    derivative: &DerivativeRow,
    follow: bool,
) -> Result<Landing, DamError> {
    let dam = &services.config.dam;
    let timeout = if follow {
        Duration::from_secs(dam.import_job_timeout_secs)
    } else {
        Duration::ZERO
    };
    let probe = ImportProbe {
        job_id: derivative.dam_job_id.as_deref(),
        folder_id: &derivative.dam_folder_id,
        name: &derivative.derivative_filename,
        field_id: &dam.tracking_field_id,
        marker: &derivative.marker,
    };
    if let Some(asset_id) = services.dam.wait_for_import(&probe, Some(timeout))? {
        return Ok(Landing::Landed(asset_id));
    }
    let age = derivative
        .import_requested_at
        .map_or(SignedDuration::MAX, |at| {
            Timestamp::now().duration_since(at)
        });
    let landing =
        SignedDuration::from_secs(i64::try_from(dam.import_landing_secs).unwrap_or(i64::MAX));
    Ok(if age < landing {
        Landing::Waiting(format!(
            "the import sent {}s ago is not visible in the DAM yet",
            age.as_secs()
        ))
    } else {
        Landing::NotLanded(format!(
            "no asset in the DAM carries the marker \"{}\" {}s after the import request",
            derivative.marker,
            age.as_secs()
        ))
    })
}

/// The value written into `dam.tracking_field_id` of every imported derivative: identifies the
/// exact Box file version it came from, so an interrupted import is recognised.
fn tracking_marker(parsed: &ParsedName, file_id: &str, version_id: &str) -> String {
    format!(
        "{} v{:02} box:{file_id}/{version_id}",
        parsed.tracking_id, parsed.version
    )
}

/// MIME type for an extension (what the DAM import manifest declares), from `mime_guess`'s
/// table; `application/octet-stream` when it has none. `mime_guess` lacks Photoshop's IANA type
/// (`image/vnd.adobe.photoshop`, registered 2006), which V2 deliveries use.
pub fn mime_type(extension: &str) -> &'static str {
    if extension.eq_ignore_ascii_case("psd") {
        return "image/vnd.adobe.photoshop";
    }
    mime_guess::from_ext(extension)
        .first_raw()
        .unwrap_or("application/octet-stream")
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
    let result = derivatives
        .map_err(PassError::from)
        .and_then(|derivatives| {
            let assets: Vec<AssetFacts<'_>> = derivatives.iter().map(derivative_facts).collect();
            let context = notify_plan::a2_to_a3_complete(&campaign_facts(&campaign), &assets);
            transition::advance(
                services,
                &campaign,
                &Transition {
                    from: &model.status_a2,
                    to: &model.status_a3,
                    event: "campaign.a3",
                    template: "a2_to_a3_complete",
                },
                context,
                &assets,
            )
        });
    services.store.unlock(&lock)?;
    if result? {
        report.campaigns_advanced += 1;
        tracing::info!(campaign = %campaign.number, dam_folder = %campaign.dam_folder_id, "campaign moved A2 -> A3");
    }
    Ok(())
}

// ----- dry run (`box-poll --dry-run`) -----

/// What `box-poll --dry-run` found: per watched folder, what the pass would do with each file.
/// Nothing is written anywhere (Box, DAM, database); every check ran read-only.
#[derive(Debug, Clone, Serialize)]
pub struct PollPlan {
    /// The watched folders, in configuration order (every one: a dry run lists them all).
    pub folders: Vec<FolderPlan>,
    /// Campaigns (numbers) that would move A2 -> A3 once the planned imports landed.
    pub campaigns_to_a3: Vec<String>,
}

/// One watched folder of a [`PollPlan`].
#[derive(Debug, Clone, Serialize)]
pub struct FolderPlan {
    /// Box folder id.
    pub folder: String,
    /// Its configured name.
    pub name: String,
    /// Its files, in listing order.
    pub files: Vec<FilePlan>,
}

/// What the pass would do with one Box file.
#[derive(Debug, Clone, Serialize)]
pub struct FilePlan {
    /// Box file id (what `reprocess file` takes).
    pub box_file: String,
    /// Box file version id.
    pub file_version: String,
    /// The name in Box.
    pub name: String,
    /// What the pass would do.
    pub action: FileAction,
    /// Whether the name parses as a V2 derivative name.
    pub name_parses: bool,
    /// The tracking ID the name starts with (when it parses).
    pub tracking_id: Option<String>,
    /// The master it matches (its file name).
    pub master: Option<String>,
    /// The campaign of that master (its number).
    pub campaign: Option<String>,
    /// DAM folder id the derivative would be imported into.
    pub import_into: Option<String>,
    /// The name it would have in the DAM.
    pub import_as: Option<String>,
    /// Where the Box file would move: `_PROCESSED/{YYYY-MM-DD}` or `_errors`.
    pub move_to: Option<String>,
    /// Why: the problems of a rejection, the reason of a wait or skip.
    pub reasons: Vec<String>,
    /// Metadata warnings of a file that would be imported.
    pub warnings: Vec<String>,
}

/// The action of a [`FilePlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Import into the DAM, then archive.
    Import,
    /// Already imported: only the move to `_PROCESSED/` is left.
    Archive,
    /// Move to `_errors/` with a note (and the `upload_failed` email).
    Reject,
    /// A passing failure: left in place, an attempt counted, retried later.
    Retry,
    /// Not due or not finished yet: left in place, nothing counted.
    Wait,
    /// Nothing to do (done already, another pass holds it, gone from Box).
    Skip,
    /// Not a delivery (naming rules): left alone.
    Ignore,
}

impl FileAction {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Import => "import",
            FileAction::Archive => "archive",
            FileAction::Reject => "reject",
            FileAction::Retry => "retry",
            FileAction::Wait => "wait",
            FileAction::Skip => "skip",
            FileAction::Ignore => "ignore",
        }
    }
}

/// The `_PROCESSED/` subfolder a file delivered today goes to (`YYYY-MM-DD`, UTC).
fn processed_subfolder() -> String {
    Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// Whether a failure that counts (`counted`) after `attempts` earlier failed attempts is the
/// last one `retry.max_attempts` allows: the file then goes to `_errors/`.
fn gives_up(services: &Services, attempts: i32, counted: bool) -> bool {
    let max = i32::try_from(services.config.retry.max_attempts).unwrap_or(i32::MAX);
    counted && attempts + 1 >= max
}

/// Plans a `box-poll` pass without changing anything: lists every watched folder and decides
/// for each file what the pass would do, with the pass's own decision code (naming rules,
/// ledger, master match, duplicate check, download, ffprobe, field mappings and lookup domains),
/// all read-only. Files are downloaded into the temp dir for the content checks and removed.
///
/// # Errors
/// [`PassError::Unreachable`] when Box, the DAM, ffprobe or the database cannot be reached.
pub fn plan(services: &mut Services) -> Result<PollPlan, PassError> {
    let watched = services.config.box_api.watched_folders.clone();
    let domains = DomainCache::default();
    let mut folders = Vec::new();
    let mut imports_by_campaign: HashMap<String, BTreeSet<String>> = HashMap::new();
    let max_files =
        usize::try_from(services.config.polling.max_files_per_run).unwrap_or(usize::MAX);
    for folder in &watched {
        let items = services
            .box_client
            .list_folder(&folder.id)
            .map_err(PassError::from_box)?;
        let mut files = Vec::new();
        for item in items {
            let BoxItem::File(file) = item else { continue };
            if files.len() >= max_files {
                break;
            }
            let planned = plan_file(services, &folder.id, &file, &domains)?;
            if let (FileAction::Import | FileAction::Archive, Some((campaign, master))) =
                (planned.0.action, planned.1)
            {
                imports_by_campaign
                    .entry(campaign)
                    .or_default()
                    .insert(master);
            }
            files.push(planned.0);
        }
        folders.push(FolderPlan {
            folder: folder.id.clone(),
            name: folder.name.clone(),
            files,
        });
    }
    let model = services.config.dam.campaign.clone();
    let mut campaigns_to_a3 = Vec::new();
    let mut campaign_ids: Vec<&String> = imports_by_campaign.keys().collect();
    campaign_ids.sort();
    for campaign_id in campaign_ids {
        let Some(campaign) = services.store.campaign(campaign_id)? else {
            continue;
        };
        if campaign.status != model.status_a2 {
            continue;
        }
        let delivered = &imports_by_campaign[campaign_id];
        let missing = services.store.masters_without_derivative(campaign_id)?;
        if missing.iter().all(|master| delivered.contains(master)) {
            campaigns_to_a3.push(campaign.number);
        }
    }
    Ok(PollPlan {
        folders,
        campaigns_to_a3,
    })
}

/// Decides what the pass would do with one listed file; with the campaign id and master
/// (DAM asset id) of a file that would be imported or archived.
fn plan_file(
    services: &mut Services,
    folder_id: &str,
    file: &BoxFile,
    domains: &DomainCache,
) -> Result<(FilePlan, Option<(String, String)>), PassError> {
    let version_id = file
        .file_version_id
        .clone()
        .unwrap_or_else(|| "0".to_string());
    let errors_name = services.config.box_api.errors_folder_name.clone();
    let processed = format!(
        "{}/{}",
        services.config.box_api.processed_folder_name,
        processed_subfolder()
    );
    let mut plan = FilePlan {
        box_file: file.id.clone(),
        file_version: version_id.clone(),
        name: file.name.clone(),
        action: FileAction::Skip,
        name_parses: false,
        tracking_id: None,
        master: None,
        campaign: None,
        import_into: None,
        import_as: None,
        move_to: None,
        reasons: Vec::new(),
        warnings: Vec::new(),
    };
    let decide = |mut plan: FilePlan, action: FileAction, reasons: Vec<String>| {
        plan.move_to = match action {
            FileAction::Import | FileAction::Archive => Some(processed.clone()),
            FileAction::Reject => Some(errors_name.clone()),
            _ => None,
        };
        plan.action = action;
        plan.reasons.extend(reasons);
        plan
    };
    let name = delivered_name(&file.id, &file.name);
    let check = naming::classify(name, services.config.folder_settings(folder_id).naming);
    if let NameCheck::Ignored { reason } = &check {
        return Ok((decide(plan, FileAction::Ignore, vec![reason.clone()]), None));
    }
    // The ledger, as the claim would judge it.
    let row = services
        .store
        .ledger_file(&file.id)?
        .filter(|row| row.file_version_id == version_id);
    let mut attempts = 0;
    if let Some(row) = &row {
        attempts = row.attempts;
        let moved_out = matches!(row.state, LedgerState::Archived | LedgerState::Rejected);
        if moved_out && back_in_watched_folder(services, &file.id, folder_id)? {
            // A person moved it back: the pass takes it up again, attempts start over.
            attempts = 0;
            plan.reasons
                .push(format!("moved back after it was {}", row.state.as_str()));
        }
        let reason = match row.state {
            _ if !plan.reasons.is_empty() => None,
            LedgerState::Archived | LedgerState::Rejected | LedgerState::Ignored => Some(format!(
                "already {}; the listing predates its move",
                row.state.as_str()
            )),
            _ => row
                .leased_by
                .as_ref()
                .map(|owner| format!("another pass holds it ({owner})")),
        };
        if let Some(reason) = reason {
            return Ok((decide(plan, FileAction::Skip, vec![reason]), None));
        }
        if let Some(at) = row.next_attempt_at.filter(|at| *at > Timestamp::now()) {
            let mut reasons = vec![format!("next attempt not before {at}")];
            reasons.extend(row.last_error.clone());
            return Ok((decide(plan, FileAction::Wait, reasons), None));
        }
        if row.state == LedgerState::Rejecting {
            return Ok((
                decide(plan, FileAction::Reject, recorded_problems(row)),
                None,
            ));
        }
    }
    let parsed = match check {
        NameCheck::Parsed(parsed) => parsed,
        NameCheck::Invalid { problems } => {
            return Ok((decide(plan, FileAction::Reject, problems), None));
        }
        NameCheck::Ignored { .. } => return Ok((plan, None)),
    };
    plan.name_parses = true;
    plan.tracking_id = Some(parsed.tracking_id.clone());
    plan.import_as = Some(parsed.clean_filename.clone());
    let (master, final_folder) = match match_master(services, &parsed)? {
        Ok(found) => found,
        Err(problems) => return Ok((decide(plan, FileAction::Reject, problems), None)),
    };
    plan.master = Some(master.original_filename.clone());
    plan.campaign = Some(
        services
            .store
            .campaign(&master.campaign_id)?
            .map_or_else(|| master.campaign_id.clone(), |campaign| campaign.number),
    );
    plan.import_into = Some(final_folder.clone());
    let delivered = Some((master.campaign_id.clone(), master.opentext_id.clone()));
    let outcome = match earlier_delivery(services, file, &version_id, &parsed)? {
        Earlier::New | Earlier::Resend(..) => None,
        Earlier::Imported(landed) => {
            let reason = match landed {
                Some((_, asset_id)) => format!("the earlier import landed as DAM asset {asset_id}"),
                None => "imported by an earlier pass".to_string(),
            };
            return Ok((decide(plan, FileAction::Archive, vec![reason]), delivered));
        }
        Earlier::Decided(outcome) => Some(outcome),
    };
    let checked = match outcome {
        Some(outcome) => ContentCheck::Failed(outcome),
        None => check_content(
            services,
            folder_id,
            file,
            &version_id,
            &parsed,
            &master,
            domains,
        )?,
    };

    Ok(match checked {
        ContentCheck::Passed(checked) => {
            plan.warnings.clone_from(&checked.representation.warnings);
            (decide(plan, FileAction::Import, Vec::new()), delivered)
        }
        ContentCheck::Failed(Outcome::Rejected(problems)) => {
            (decide(plan, FileAction::Reject, problems), None)
        }
        ContentCheck::Failed(Outcome::Retry { reason, counted }) => {
            if gives_up(services, attempts, counted) {
                (
                    decide(
                        plan,
                        FileAction::Reject,
                        vec![format!("the last attempt allowed failed: {reason}")],
                    ),
                    None,
                )
            } else {
                let action = if counted {
                    FileAction::Retry
                } else {
                    FileAction::Wait
                };
                (decide(plan, action, vec![reason]), None)
            }
        }
        ContentCheck::Failed(Outcome::Gone(reason)) => {
            (decide(plan, FileAction::Skip, vec![reason]), None)
        }
        ContentCheck::Failed(Outcome::Delivered | Outcome::LostClaim) => (plan, None),
    })
}

impl PollPlan {
    /// The plan as lines for a person: one per folder and per file, then the campaigns.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec!["box-poll dry run: nothing was changed; the pass would:".to_string()];
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for folder in &self.folders {
            lines.push(format!(
                "folder {} ({}): {}",
                folder.name,
                folder.folder,
                super::operator::plural(folder.files.len() as u64, "file", "files")
            ));
            for file in &folder.files {
                *counts.entry(file.action.as_str()).or_insert(0) += 1;
                let mut line = format!(
                    "  {} box_file={} \"{}\"",
                    file.action.as_str(),
                    file.box_file,
                    file.name
                );
                if file.name_parses {
                    line.push_str(&format!(
                        " (tracking ID {}, master {}, campaign {})",
                        file.tracking_id.as_deref().unwrap_or("-"),
                        file.master.as_deref().unwrap_or("none"),
                        file.campaign.as_deref().unwrap_or("none"),
                    ));
                }
                if let (FileAction::Import, Some(into)) = (file.action, &file.import_into) {
                    line.push_str(&format!(
                        ": import into DAM folder {into} as \"{}\"",
                        file.import_as.as_deref().unwrap_or_default()
                    ));
                }
                if let Some(to) = &file.move_to {
                    line.push_str(&format!(", move to {to}/"));
                }
                if !file.reasons.is_empty() {
                    line.push_str(&format!(": {}", file.reasons.join("; ")));
                }
                lines.push(line);
                for warning in &file.warnings {
                    lines.push(format!("    warning: {warning}"));
                }
            }
        }
        for number in &self.campaigns_to_a3 {
            lines.push(format!("campaign {number}: move A2 -> A3"));
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(action, count)| format!("{count} {action}"))
            .collect();
        lines.push(if summary.is_empty() {
            "nothing to do".to_string()
        } else {
            format!("files: {}", summary.join(", "))
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_lookup_values_only_outside_strict_mode() {
        let cached = || {
            Some(vec![DomainValue {
                value: "IT".into(),
                display: "Italian".into(),
            }])
        };
        let down = || {
            Err(DamError::Api {
                status: 503,
                message: "down".into(),
                endpoint: "GET /otmmapi/v6/lookupdomains/L".into(),
            })
        };
        let lenient = domain_values_or_expired("L", down(), false, cached).unwrap();
        assert_eq!(lenient[0].value, "IT");
        let strict = domain_values_or_expired("L", down(), true, cached).unwrap_err();
        assert_eq!(strict.status(), Some(503));
        assert!(domain_values_or_expired("L", down(), false, || None).is_err());
        let refused = Err(DamError::Api {
            status: 404,
            message: "no such domain".into(),
            endpoint: "GET /otmmapi/v6/lookupdomains/L".into(),
        });
        assert!(
            domain_values_or_expired("L", refused, false, cached).is_err(),
            "only a passing failure falls back to expired values"
        );
        let fresh = domain_values_or_expired("L", Ok(Vec::new()), false, cached).unwrap();
        assert!(fresh.is_empty(), "fresh values win over cached ones");
    }

    #[test]
    fn error_note_lists_every_problem_and_the_convention() {
        let note = error_note(
            "bad.mp4",
            "123",
            "456",
            &["first problem".into(), "second problem".into()],
        );
        assert!(note.contains("\"bad.mp4\" (Box file 123, version 456)"));
        assert_ne!(
            note,
            error_note(
                "bad.mp4",
                "124",
                "456",
                &["first problem".into(), "second problem".into()]
            ),
            "two files of one name get notes of different content"
        );
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
