//! `reprocess` (design.md §1 step 4): operators send work through the pipeline again, now.
//!
//! - `file <box-file-id>`: a file in `_errors/` (or left in a watched folder after a passing
//!   failure) is moved back to its watched folder, its ledger row is reopened and it is processed
//!   at once with the box-poll logic ([`box_poll::handle_file`]); a campaign it completes moves
//!   to A3. A file whose name is still invalid is left where it is, with the problems printed:
//!   rename it in Box first.
//! - `errors [--folder ID] [--since DATE]`: the same for every file whose latest ledger row is
//!   `rejected`.
//! - `campaign <dam-id>`: a campaign at A1 gets its A1 -> A2 work again (only the masters not
//!   in Box yet), one at A2 its A2 -> A3 check.
//! - `notifications`: every undelivered email and webhook is made due and delivered now.
//!
//! With `dry_run` every command reads (database, Box, DAM) and prints what it would do, and
//! changes nothing: no Box move, no database write (not even a `runs` row), no notification.
//! Without it the work runs as a recorded pass of binary `reprocess` ([`run_recorded`]): a
//! `runs` row, and the outbox delivered at the end (a rejection email, an A3 email).

/// The time type of `--since` (re-exported so the binary needs no date crate).
use std::process::ExitCode;

pub use jiff::Timestamp;

use super::box_poll::{self, PollState};
use super::operator::{plural, say, Progress};
use super::{a1_to_a2, run_recorded, PassError, PassReport, Services};
use crate::boxapi::BoxFile;
use crate::entry::{self, CommonOptions, Exit};
use crate::metadata::field_text;
use crate::naming::{self, NameCheck};
use crate::store::{BoxFileRow, LedgerState, MasterStatus};

/// Binary name in `runs`.
const BINARY: &str = "reprocess";

/// What to reprocess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One Box file, by id.
    File {
        /// Box file id.
        file_id: String,
    },
    /// Every rejected file (in `_errors/`), optionally of one watched folder and rejected since
    /// a time.
    Errors {
        /// Only files of this watched folder (a `box.watched_folders` id).
        folder_id: Option<String>,
        /// Only files rejected at or after this time.
        since: Option<Timestamp>,
    },
    /// One campaign, by DAM folder id.
    Campaign {
        /// DAM folder id of the campaign folder.
        dam_id: String,
    },
    /// Every undelivered notification.
    Notifications,
}

/// Parses `--since`: a date `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time
/// (`2026-11-20T08:00:00Z`).
///
/// # Errors
/// A message saying what was expected.
pub fn parse_since(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        if let Ok(zoned) = date.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(zoned.timestamp());
        }
    }
    text.parse::<Timestamp>().map_err(|_| {
        format!(
            "expected a date (2026-11-20, midnight UTC) or a time (2026-11-20T08:00:00Z), found {text:?}"
        )
    })
}

/// Runs `reprocess <command>` (with `--dry-run` when `dry_run`, through [`crate::entry::run`])
/// and returns the exit code: 0 done (a file rejected again is a result, not a failure), 1 the
/// work failed or the one file asked for could not be reprocessed, 2 configuration or usage
/// error, 75 a dependency unreachable.
pub fn run(options: &CommonOptions, command: &Command, dry_run: bool) -> ExitCode {
    entry::run(BINARY, options, |config| {
        if let Command::Errors {
            folder_id: Some(folder_id),
            ..
        } = command
        {
            if !config
                .box_api
                .watched_folders
                .iter()
                .any(|folder| &folder.id == folder_id)
            {
                let known: Vec<&str> = config
                    .box_api
                    .watched_folders
                    .iter()
                    .map(|folder| folder.id.as_str())
                    .collect();
                return Err(PassError::setup_with_hint(
                    format!("--folder {folder_id} is not a watched folder"),
                    format!("give one of box.watched_folders: {}", known.join(", ")),
                ));
            }
        }
        let mut services = Services::connect(config)?;
        let mut tally = Tally::default();
        let result = if dry_run {
            say("dry run: nothing will be changed");
            let mut report = PassReport::default();
            execute(&mut services, &mut report, command, true, &mut tally).map(|()| report)
        } else {
            run_recorded(&mut services, BINARY, |services, report| {
                execute(services, report, command, false, &mut tally)
            })
        };
        match result {
            Ok(report) => {
                say(&tally.summary(command, &report, dry_run));
                // The one item asked for by name could not be done: say so in the exit code too.
                let named_item = matches!(command, Command::File { .. } | Command::Campaign { .. });
                Ok(Exit::success_if(!(named_item && tally.skipped > 0)))
            }
            Err(error) => {
                say(&format!(
                    "summary: stopped after {} of {}: {error}",
                    tally.reprocessed + tally.skipped,
                    plural(tally.selected, "item", "items")
                ));
                Err(error)
            }
        }
    })
}

/// What happened to the items of one command (beyond the [`PassReport`]).
#[derive(Debug, Default)]
struct Tally {
    /// Items selected.
    selected: u64,
    /// Items sent through the pipeline (or, dry run, that would be).
    reprocessed: u64,
    /// Items left alone (reason printed).
    skipped: u64,
    /// Files sent through the pipeline that another pass held at that moment.
    left_to_other_pass: u64,
    /// Notifications made due now.
    rescheduled: u64,
}

impl Tally {
    fn summary(&self, command: &Command, report: &PassReport, dry_run: bool) -> String {
        let prefix = if dry_run {
            "summary (dry run)"
        } else {
            "summary"
        };
        let would = if dry_run { "would be " } else { "" };
        match command {
            Command::File { .. } | Command::Errors { .. } => {
                let mut text = format!(
                    "{prefix}: {} selected, {} {would}reprocessed, {} skipped",
                    plural(self.selected, "file", "files"),
                    self.reprocessed,
                    self.skipped
                );
                if !dry_run {
                    text.push_str(&format!(
                        "; {} delivered, {} rejected again, {} waiting for a retry",
                        report.derivatives_delivered,
                        report.files_rejected,
                        report.files_retry_later
                    ));
                    if self.left_to_other_pass > 0 {
                        text.push_str(&format!(
                            ", {} being handled by another pass",
                            self.left_to_other_pass
                        ));
                    }
                    text.push_str(&format!(
                        "; {} advanced; {}",
                        plural(
                            u64::from(report.campaigns_advanced),
                            "campaign",
                            "campaigns"
                        ),
                        notification_counts(report)
                    ));
                }
                text
            }
            Command::Campaign { .. } => {
                if dry_run {
                    format!("{prefix}: see above")
                } else {
                    format!(
                        "{prefix}: {} uploaded, {} failed, {} advanced; {}",
                        plural(u64::from(report.masters_uploaded), "master", "masters"),
                        report.masters_failed,
                        plural(
                            u64::from(report.campaigns_advanced),
                            "campaign",
                            "campaigns"
                        ),
                        notification_counts(report)
                    )
                }
            }
            Command::Notifications => {
                if dry_run {
                    format!(
                        "{prefix}: {} {would}delivered",
                        plural(self.reprocessed, "notification", "notifications")
                    )
                } else {
                    format!(
                        "{prefix}: {} made due now; {}",
                        self.rescheduled,
                        notification_counts(report)
                    )
                }
            }
        }
    }
}

fn notification_counts(report: &PassReport) -> String {
    format!(
        "{} sent, {} failed (retried later)",
        plural(
            u64::from(report.notifications_sent),
            "notification",
            "notifications"
        ),
        report.notifications_failed
    )
}

fn execute(
    services: &mut Services,
    report: &mut PassReport,
    command: &Command,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), PassError> {
    match command {
        Command::File { file_id } => {
            let files = if let Some(file) = services.store.ledger_file(file_id)? {
                vec![file]
            } else {
                tally.selected = 1;
                tally.skipped = 1;
                say(&format!(
                    "file {file_id}: skipped: not in the tracking database (box-poll never saw it in a watched folder, \
                     or its history was deleted by cleanup): move it into the watched folder in Box instead"
                ));
                return Ok(());
            };
            reprocess_files(services, report, files, dry_run, tally)
        }
        Command::Errors { folder_id, since } => {
            let files = services
                .store
                .rejected_files(folder_id.as_deref(), *since)?;
            if files.is_empty() {
                say("no rejected files match");
            }
            reprocess_files(services, report, files, dry_run, tally)
        }
        Command::Campaign { dam_id } => {
            reprocess_campaign(services, report, dam_id, dry_run, tally)
        }
        Command::Notifications => reprocess_notifications(services, dry_run, tally),
    }
}

// ----- files -----

/// What to do with one file.
enum FilePlan {
    /// Leave it; the reason says why and what to do instead.
    Skip(String),
    /// Send it through the pipeline.
    Go {
        /// The file as Box has it now.
        file: BoxFile,
        /// Its watched folder.
        watched_folder_id: String,
        /// It must be moved back from this folder first (`None`: already in the watched folder).
        move_from: Option<String>,
        /// What the name says (for the plan).
        about: String,
    },
}

fn reprocess_files(
    services: &mut Services,
    report: &mut PassReport,
    files: Vec<BoxFileRow>,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), PassError> {
    tally.selected = u64::try_from(files.len()).unwrap_or(u64::MAX);
    let progress = Progress::start(tally.selected);
    let state = PollState::default();
    for ledger in files {
        progress.working_on(&ledger.name);
        let label = format!("file {} \"{}\"", ledger.file_id, ledger.name);
        match plan_file(services, &ledger)? {
            FilePlan::Skip(reason) => {
                tally.skipped += 1;
                say(&format!("{label}: skipped: {reason}"));
            }
            FilePlan::Go {
                file,
                watched_folder_id,
                move_from,
                about,
            } => {
                tally.reprocessed += 1;
                let folder_name = watched_folder_name(services, &watched_folder_id);
                if dry_run {
                    let mut steps = Vec::new();
                    if let Some(from) = &move_from {
                        steps.push(format!(
                            "move it from {}/ (Box folder {from}) back to watched folder {folder_name} ({watched_folder_id})",
                            services.config.box_api.errors_folder_name
                        ));
                    }
                    steps.push("reopen its ledger row".to_string());
                    steps.push(format!("process it now ({about})"));
                    say(&format!("{label}: would {}", steps.join(", ")));
                } else {
                    let outcome = reprocess_file(
                        services,
                        report,
                        file,
                        &watched_folder_id,
                        move_from.as_deref(),
                        &state,
                    )?;
                    if outcome == FileOutcome::LeftToOtherPass {
                        tally.left_to_other_pass += 1;
                    }
                    say(&format!("{label}: {}", outcome.describe(services)));
                }
            }
        }
        progress.done_one();
    }
    drop(progress);
    if !dry_run {
        box_poll::complete_campaigns(services, report, state)?;
    }
    Ok(())
}

fn watched_folder_name(services: &Services, folder_id: &str) -> String {
    services
        .config
        .box_api
        .watched_folders
        .iter()
        .find(|folder| folder.id == folder_id)
        .map_or_else(|| folder_id.to_string(), |folder| folder.name.clone())
}

/// Decides from the ledger, Box and the name whether a file can be reprocessed. Reads only.
fn plan_file(services: &mut Services, ledger: &BoxFileRow) -> Result<FilePlan, PassError> {
    match ledger.state {
        LedgerState::Archived | LedgerState::UploadedToDam => {
            return Ok(FilePlan::Skip(format!(
                "it was delivered to the DAM already (archived under {}/); to replace the delivery, upload a higher version (_v02, ...)",
                services.config.box_api.processed_folder_name
            )))
        }
        LedgerState::Ignored => {
            return Ok(FilePlan::Skip(
                "it is not a delivery (ignored by box-poll)".into(),
            ))
        }
        _ => {}
    }
    if let Some(owner) = &ledger.leased_by {
        return Ok(FilePlan::Skip(format!(
            "a pass is working on it right now ({owner}); try again in a few minutes"
        )));
    }
    if !services
        .config
        .box_api
        .watched_folders
        .iter()
        .any(|folder| folder.id == ledger.watched_folder_id)
    {
        return Ok(FilePlan::Skip(format!(
            "its watched folder {} is no longer in box.watched_folders",
            ledger.watched_folder_id
        )));
    }
    let Some(file) = services
        .box_client
        .file_if_present(&ledger.file_id)
        .map_err(PassError::from_box)?
    else {
        return Ok(FilePlan::Skip(
            "Box has no such file any more (deleted or in the trash)".into(),
        ));
    };
    let watched = ledger.watched_folder_id.clone();
    let parent = file.parent_id.clone().unwrap_or_default();
    let move_from = if parent == watched {
        None
    } else if ledger.state == LedgerState::Rejected
        && ledger.archived_folder_id.as_deref() == Some(&parent)
    {
        Some(parent)
    } else {
        return Ok(FilePlan::Skip(format!(
            "it is neither in {}/ nor in its watched folder {watched} (now in Box folder {parent}): move it into the watched folder by hand",
            services.config.box_api.errors_folder_name
        )));
    };
    let about = match naming::classify(
        box_poll::delivered_name(&file.id, &file.name),
        services.config.folder_settings(&watched).naming,
    ) {
        NameCheck::Ignored { reason } => {
            return Ok(FilePlan::Skip(format!(
                "its name \"{}\" is not a delivery ({reason})",
                file.name
            )))
        }
        NameCheck::Invalid { problems } => {
            return Ok(FilePlan::Skip(format!(
                "its name \"{}\" is still invalid: {}; rename it in Box to a valid V2 name first",
                file.name,
                problems.join("; ")
            )))
        }
        NameCheck::Parsed(parsed) => {
            match services.store.master_by_tracking_id(&parsed.tracking_id)? {
                Some(master) => {
                    let problems = box_poll::name_problems(
                        services,
                        &watched,
                        &parsed,
                        &master.full_metadata,
                    )?;
                    if problems.is_empty() {
                        format!(
                            "\"{}\": tracking ID {} = master \"{}\"",
                            file.name, parsed.tracking_id, master.original_filename
                        )
                    } else {
                        format!(
                            "\"{}\": tracking ID {} = master \"{}\", but it will be rejected again: {}",
                            file.name,
                            parsed.tracking_id,
                            master.original_filename,
                            problems.join("; ")
                        )
                    }
                }
                None => format!(
                    "\"{}\": tracking ID {} matches no master yet, so it will be rejected again",
                    file.name, parsed.tracking_id
                ),
            }
        }
    };
    Ok(FilePlan::Go {
        file,
        watched_folder_id: watched,
        move_from,
        about,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOutcome {
    Delivered,
    Rejected,
    RetryLater,
    LeftToOtherPass,
}

impl FileOutcome {
    fn describe(self, services: &Services) -> String {
        match self {
            FileOutcome::Delivered => format!(
                "delivered to the DAM and archived under {}/",
                services.config.box_api.processed_folder_name
            ),
            FileOutcome::Rejected => format!(
                "rejected again: moved to {}/ with a new note",
                services.config.box_api.errors_folder_name
            ),
            FileOutcome::RetryLater => {
                "failed for a passing reason; it stays in the watched folder and box-poll retries it"
                    .to_string()
            }
            FileOutcome::LeftToOtherPass => {
                "back in the watched folder; a box-poll pass running at the same time took it"
                    .to_string()
            }
        }
    }
}

/// Moves the file back (when `move_from`), reopens its ledger row and processes it.
fn reprocess_file(
    services: &mut Services,
    report: &mut PassReport,
    mut file: BoxFile,
    watched_folder_id: &str,
    move_from: Option<&str>,
    state: &PollState,
) -> Result<FileOutcome, PassError> {
    if move_from.is_some() {
        // Box first, then the ledger: until the row is reopened it still says "rejected", which
        // is where a crash here leaves the file; `reprocess file` again picks it up from the
        // watched folder.
        // Back under the name it was delivered with (without the `{file_id}_` prefix a name
        // clash in _errors/ may have added).
        let name = box_poll::delivered_name(&file.id, &file.name).to_string();
        file = box_poll::move_under_free_name(
            &services.box_client,
            &file.id,
            watched_folder_id,
            &name,
        )
        .map_err(PassError::from_box)?;
        tracing::info!(file = %file.name, box_file = %file.id, "moved back into the watched folder");
    }
    let version_id = file
        .file_version_id
        .clone()
        .unwrap_or_else(|| "0".to_string());
    services
        .store
        .reopen_box_file(&file.id, &version_id, watched_folder_id, &file.name)?;
    let before = report.clone();
    box_poll::handle_file(services, report, watched_folder_id, &file, state)?;
    Ok(
        if report.derivatives_delivered > before.derivatives_delivered {
            FileOutcome::Delivered
        } else if report.files_rejected > before.files_rejected {
            FileOutcome::Rejected
        } else if report.files_retry_later > before.files_retry_later {
            FileOutcome::RetryLater
        } else {
            FileOutcome::LeftToOtherPass
        },
    )
}

// ----- campaigns -----

fn reprocess_campaign(
    services: &mut Services,
    report: &mut PassReport,
    dam_id: &str,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), PassError> {
    tally.selected = 1;
    let model = services.config.dam.campaign.clone();
    let folder = match services.dam.get_folder(dam_id) {
        Ok(folder) => folder,
        Err(error) if error.status() == Some(404) => {
            tally.skipped = 1;
            say(&format!(
                "campaign {dam_id}: skipped: the DAM has no folder {dam_id} (or the DAM user may not see it)"
            ));
            return Ok(());
        }
        Err(error) => return Err(PassError::from_dam(error)),
    };
    let status = field_text(&folder.json, &model.status_field_id).unwrap_or_default();
    let label = format!("campaign {dam_id} \"{}\" (status {status})", folder.name);
    let lock = format!("campaign:{dam_id}");
    if status == model.status_a1 {
        if dry_run {
            say(&format!(
                "{label}: would run its A1 -> A2 work: upload the masters not in Box yet, then move it to A2 when all are"
            ));
            for master in services.store.masters_of_campaign(dam_id)? {
                let detail = match (master.status, &master.last_error) {
                    (MasterStatus::Uploaded, _) => "in Box, kept".to_string(),
                    (_, Some(error)) => {
                        format!("{}, would be retried (last error: {error})", master.status)
                    }
                    (status, None) => format!("{status}, would be retried"),
                };
                say(&format!(
                    "  master \"{}\" ({}): {detail}",
                    master.original_filename, master.tracking_id
                ));
            }
            tally.reprocessed = 1;
            return Ok(());
        }
        if !services.store.try_lock(&lock)? {
            tally.skipped = 1;
            say(&format!(
                "{label}: skipped: an a1-to-a2 pass is working on it right now"
            ));
            return Ok(());
        }
        let result = a1_to_a2::process_campaign(services, report, dam_id);
        services.store.unlock(&lock)?;
        result?;
        tally.reprocessed = 1;
        let after = services.store.campaign(dam_id)?.map(|row| row.status);
        say(&format!(
            "{label}: A1 -> A2 work done; status now {}",
            after.unwrap_or(status)
        ));
        return Ok(());
    }
    let pending_a3 = services
        .store
        .transition_state(dam_id, &model.status_a3)?
        .is_some_and(|state| state == crate::store::TransitionState::Pending);
    if status == model.status_a2 || pending_a3 {
        tally.reprocessed = 1;
        if services.store.campaign(dam_id)?.is_none() {
            say(&format!(
                "{label}: nothing to check: the tracking database does not know this campaign (it never went through a1-to-a2 here)"
            ));
            return Ok(());
        }
        let missing = services.store.masters_without_derivative(dam_id)?;
        if !missing.is_empty() {
            say(&format!(
                "{label}: {} at A2: {} without a delivered derivative yet ({})",
                if dry_run { "would stay" } else { "stays" },
                plural(
                    u64::try_from(missing.len()).unwrap_or(0),
                    "master",
                    "masters"
                ),
                missing.join(", ")
            ));
            return Ok(());
        }
        if dry_run {
            say(&format!(
                "{label}: would move it A2 -> A3: every master has a derivative in the DAM"
            ));
            return Ok(());
        }
        let advanced_before = report.campaigns_advanced;
        box_poll::check_campaign_complete(services, report, dam_id)?;
        say(&format!(
            "{label}: {}",
            if report.campaigns_advanced > advanced_before {
                "moved A2 -> A3"
            } else {
                "complete, but another pass holds it; it moves to A3 with that pass"
            }
        ));
        return Ok(());
    }
    tally.skipped = 1;
    if status == model.status_a3 {
        say(&format!(
            "{label}: skipped: it is at A3 already; nothing to do"
        ));
    } else {
        say(&format!(
            "{label}: skipped: its status is neither {} nor {} nor {}",
            model.status_a1, model.status_a2, model.status_a3
        ));
    }
    Ok(())
}

// ----- notifications -----

fn reprocess_notifications(
    services: &mut Services,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), PassError> {
    let pending = services.store.pending_notifications()?;
    tally.selected = u64::try_from(pending.len()).unwrap_or(u64::MAX);
    if pending.is_empty() {
        say("no undelivered notifications");
    }
    for row in &pending {
        let mut line = format!(
            "notification {} ({} {} {}, key {}, queued {}, {})",
            row.id,
            row.channel,
            row.target,
            row.event,
            row.idempotency_key,
            row.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            plural(
                u64::try_from(row.attempts).unwrap_or(0),
                "attempt",
                "attempts"
            )
        );
        if let Some(error) = &row.last_error {
            line.push_str(&format!(", last error: {error}"));
        }
        if row.leased {
            tally.skipped += 1;
            line.push_str(": skipped: a pass is delivering it right now");
        } else {
            tally.reprocessed += 1;
            line.push_str(if dry_run {
                ": would be delivered now"
            } else {
                ": delivering now"
            });
        }
        say(&line);
    }
    if !dry_run {
        // `run_recorded` delivers every due row right after this.
        tally.rescheduled = services.store.make_notifications_due()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(
            parse_since("2026-11-20").map(|time| time.to_string()),
            Ok("2026-11-20T00:00:00Z".to_string())
        );
        assert_eq!(
            parse_since("2026-11-20T08:30:00Z").map(|time| time.to_string()),
            Ok("2026-11-20T08:30:00Z".to_string())
        );
        let error = parse_since("yesterday").unwrap_err();
        assert!(error.contains("2026-11-20"), "{error}");
    }
}
