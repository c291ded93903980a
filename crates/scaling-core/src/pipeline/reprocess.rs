//! `reprocess` (design.md §1 step 4): operators send work through the pipeline again, now.
//!
//! - `file <box-file-id>`: a file in `_errors/` (or left in a watched folder after a passing
//!   failure) is moved back to its watched folder, its ledger row is reopened and it is processed
//!   at once with the box-poll logic ([`box_poll::handle_file`]); a campaign it completes moves
//!   to A3. A file whose name is still invalid is left where it is, with the problems printed:
//!   rename it in Box first.
//! - `errors [--folder ID|NAME] [--since DATE]`: the same for every file whose latest ledger
//!   row is `rejected`.
//! - `campaign <number|dam-id>`: a campaign (by its number as tracked, `C-2026-0142`, or its
//!   40-hex DAM folder id) at A1 gets its A1 -> A2 work again (only the masters not in Box
//!   yet), one at A2 its A2 -> A3 check; one at A3 has nothing to do (exit 0, said so).
//! - `notifications`: every undelivered email and webhook is made due and delivered now.
//!
//! A file already delivered or a campaign already at A3 is "nothing to do": said so, exit 0.
//! With `--json` the items and the summary are printed as one JSON document (the plan, with
//! `--dry-run`).
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
use serde::Serialize;

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
        /// Only files of this watched folder: a `box.watched_folders` id or name.
        folder_id: Option<String>,
        /// Only files rejected at or after this time.
        since: Option<Timestamp>,
    },
    /// One campaign, by campaign number (`C-2026-0142`, as tracked) or DAM folder id (40 hex).
    Campaign {
        /// Campaign number or DAM folder id.
        campaign: String,
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

/// How `reprocess` prints: text lines, or (`--json`) one JSON document at the end with every
/// item and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReprocessOptions {
    /// Print exactly what would happen and change nothing.
    pub dry_run: bool,
    /// One JSON document on stdout instead of text lines.
    pub json: bool,
}

/// Runs `reprocess <command>` (through [`crate::entry::run`]) and returns the exit code: 0 done,
/// or nothing to do (said so: a delivered file, a campaign at A3); a file rejected again is a
/// result, not a failure; 1 the work failed or the one item asked for could not be reprocessed;
/// 2 configuration or usage error (an unknown `--folder`); 75 a dependency unreachable.
pub fn run(options: &CommonOptions, command: &Command, how: ReprocessOptions) -> ExitCode {
    let dry_run = how.dry_run;
    entry::run(BINARY, options, |config| {
        let mut command = command.clone();
        if let Command::Errors {
            folder_id: Some(folder),
            ..
        } = &mut command
        {
            *folder = resolve_folder(&config, folder)?;
        }
        let command = &command;
        let mut services = Services::connect(config)?;
        let mut tally = Tally {
            json: how.json,
            ..Tally::default()
        };
        let result = if dry_run {
            if !how.json {
                say("dry run: nothing will be changed");
            }
            let mut report = PassReport::default();
            execute(&mut services, &mut report, command, true, &mut tally).map(|()| report)
        } else {
            run_recorded(&mut services, BINARY, |services, report| {
                execute(services, report, command, false, &mut tally)
            })
        };
        match result {
            Ok(report) => {
                let summary = tally.summary(command, &report, dry_run);
                tally.finish(dry_run, &summary, None)?;
                // The one item asked for by name could not be done: say so in the exit code too.
                let named_item = matches!(command, Command::File { .. } | Command::Campaign { .. });
                Ok(Exit::success_if(!(named_item && tally.skipped > 0)))
            }
            Err(error) => {
                let summary = format!(
                    "summary: stopped after {} of {}: {error}",
                    tally.reprocessed + tally.skipped + tally.nothing_to_do,
                    plural(tally.selected, "item", "items")
                );
                tally.finish(dry_run, &summary, Some(&error))?;
                Err(error)
            }
        }
    })
}

/// The id of the watched folder `given` names: a `box.watched_folders` id, or a name (compared
/// without regard to case).
///
/// # Errors
/// [`PassError::Setup`] (exit 2) when it names none, with the folders there are.
pub fn resolve_folder(config: &crate::config::Config, given: &str) -> Result<String, PassError> {
    let folders = &config.box_api.watched_folders;
    if let Some(folder) = folders.iter().find(|folder| folder.id == given) {
        return Ok(folder.id.clone());
    }
    let named: Vec<&crate::config::WatchedFolder> = folders
        .iter()
        .filter(|folder| folder.name.eq_ignore_ascii_case(given.trim()))
        .collect();
    let known = || {
        folders
            .iter()
            .map(|folder| format!("{} ({})", folder.name, folder.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match named.as_slice() {
        [folder] => Ok(folder.id.clone()),
        [] => Err(PassError::setup_with_hint(
            format!("--folder {given} is not a watched folder (neither an id nor a name)"),
            format!("give a name or id of box.watched_folders: {}", known()),
        )),
        _ => Err(PassError::setup_with_hint(
            format!("--folder {given} names several watched folders"),
            format!("give the id instead: {}", known()),
        )),
    }
}

/// What `--json` prints about one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    /// `file`, `campaign` or `notification`.
    pub kind: &'static str,
    /// Box file id, DAM folder id or outbox row id.
    pub id: String,
    /// What happens (or would happen) to it.
    pub action: ItemAction,
    /// The same sentence the text output prints.
    pub detail: String,
}

/// What happens to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemAction {
    /// Sent through the pipeline (or, dry run, would be).
    Reprocess,
    /// Left alone: it cannot be done now (the detail says why and what to do).
    Skip,
    /// Already where it should be: nothing to do.
    NothingToDo,
    /// A detail line (a master of a campaign, a result).
    Info,
}

/// What happened to the items of one command (beyond the [`PassReport`]).
#[derive(Debug, Default)]
struct Tally {
    /// Items selected.
    selected: u64,
    /// Items sent through the pipeline (or, dry run, that would be).
    reprocessed: u64,
    /// Items left alone because they cannot be done (reason printed).
    skipped: u64,
    /// Items already done (a delivered file, a campaign at A3).
    nothing_to_do: u64,
    /// Files sent through the pipeline that another pass held at that moment.
    left_to_other_pass: u64,
    /// Notifications made due now.
    rescheduled: u64,
    /// `--json`: collect the items instead of printing lines.
    json: bool,
    /// The items, for `--json`.
    items: Vec<PlanItem>,
}

impl Tally {
    /// Prints `detail` (text) or keeps it for the JSON document.
    fn note(&mut self, kind: &'static str, id: &str, action: ItemAction, detail: String) {
        if !self.json {
            say(&detail);
        }
        self.items.push(PlanItem {
            kind,
            id: id.to_string(),
            action,
            detail,
        });
    }

    /// Prints the summary line, or the JSON document with the items and the summary.
    fn finish(
        &self,
        dry_run: bool,
        summary: &str,
        error: Option<&PassError>,
    ) -> Result<(), PassError> {
        if !self.json {
            say(summary);
            return Ok(());
        }
        let document = serde_json::json!({
            "dry_run": dry_run,
            "items": self.items,
            "selected": self.selected,
            "reprocessed": self.reprocessed,
            "skipped": self.skipped,
            "nothing_to_do": self.nothing_to_do,
            "summary": summary,
            "error": error.map(ToString::to_string),
        });
        let text = serde_json::to_string_pretty(&document)
            .map_err(|error| PassError::Failed(format!("cannot encode JSON: {error}")))?;
        say(&text);
        Ok(())
    }

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
                if self.nothing_to_do > 0 {
                    text.push_str(&format!(", {} with nothing to do", self.nothing_to_do));
                }
                if self.selected == self.nothing_to_do {
                    text.push_str(" (nothing to do)");
                    return text;
                }
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
            Command::Campaign { .. } if self.nothing_to_do > 0 => {
                format!("{prefix}: nothing to do")
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
                tally.note(
                    "file",
                    file_id,
                    ItemAction::Skip,
                    format!(
                        "file {file_id}: skipped: not in the tracking database (box-poll never saw it in a watched folder, \
                         or its history was deleted by cleanup): move it into the watched folder in Box instead"
                    ),
                );
                return Ok(());
            };
            reprocess_files(services, report, files, dry_run, tally)
        }
        Command::Errors { folder_id, since } => {
            let files = services
                .store
                .rejected_files(folder_id.as_deref(), *since)?;
            if files.is_empty() && !tally.json {
                say("no rejected files match: nothing to do");
            }
            reprocess_files(services, report, files, dry_run, tally)
        }
        Command::Campaign { campaign } => {
            reprocess_campaign(services, report, campaign, dry_run, tally)
        }
        Command::Notifications => reprocess_notifications(services, dry_run, tally),
    }
}

// ----- files -----

/// What to do with one file.
enum FilePlan {
    /// Leave it: it cannot be done ([`ItemAction::Skip`]: the reason says why and what to do
    /// instead) or is done already ([`ItemAction::NothingToDo`]: delivered).
    Leave {
        /// Skip or nothing to do.
        action: ItemAction,
        /// Why, and what to do instead.
        reason: String,
    },
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

impl FilePlan {
    fn skip(reason: String) -> FilePlan {
        FilePlan::Leave {
            action: ItemAction::Skip,
            reason,
        }
    }

    fn done(reason: String) -> FilePlan {
        FilePlan::Leave {
            action: ItemAction::NothingToDo,
            reason,
        }
    }
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
            FilePlan::Leave { action, reason } => {
                let word = if action == ItemAction::NothingToDo {
                    tally.nothing_to_do += 1;
                    "nothing to do"
                } else {
                    tally.skipped += 1;
                    "skipped"
                };
                tally.note(
                    "file",
                    &ledger.file_id,
                    action,
                    format!("{label}: {word}: {reason}"),
                );
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
                    tally.note(
                        "file",
                        &ledger.file_id,
                        ItemAction::Reprocess,
                        format!("{label}: would {}", steps.join(", ")),
                    );
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
                    tally.note(
                        "file",
                        &ledger.file_id,
                        ItemAction::Reprocess,
                        format!("{label}: {}", outcome.describe(services)),
                    );
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
            return Ok(FilePlan::done(format!(
                "it was delivered to the DAM already (archived under {}/); to replace the delivery, upload a higher version (_v02, ...)",
                services.config.box_api.processed_folder_name
            )))
        }
        LedgerState::Ignored => {
            return Ok(FilePlan::skip(
                "it is not a delivery (ignored by box-poll)".into(),
            ))
        }
        _ => {}
    }
    if let Some(owner) = &ledger.leased_by {
        return Ok(FilePlan::skip(format!(
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
        return Ok(FilePlan::skip(format!(
            "its watched folder {} is no longer in box.watched_folders",
            ledger.watched_folder_id
        )));
    }
    let Some(file) = services
        .box_client
        .file_if_present(&ledger.file_id)
        .map_err(PassError::from_box)?
    else {
        return Ok(FilePlan::skip(
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
        return Ok(FilePlan::skip(format!(
            "it is neither in {}/ nor in its watched folder {watched} (now in Box folder {parent}): move it into the watched folder by hand",
            services.config.box_api.errors_folder_name
        )));
    };
    let about = match naming::classify(
        box_poll::delivered_name(&file.id, &file.name),
        services.config.folder_settings(&watched).naming,
    ) {
        NameCheck::Ignored { reason } => {
            return Ok(FilePlan::skip(format!(
                "its name \"{}\" is not a delivery ({reason})",
                file.name
            )))
        }
        NameCheck::Invalid { problems } => {
            return Ok(FilePlan::skip(format!(
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

/// True for a DAM folder id: 40 hexadecimal digits.
fn is_dam_id(text: &str) -> bool {
    text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The DAM folder id of the campaign `given` names: a DAM id (40 hex) as is, else a campaign
/// number looked up in the tracking database. `Err(reason)` when it names none or several.
fn resolve_campaign(
    services: &mut Services,
    given: &str,
) -> Result<Result<String, String>, PassError> {
    let given = given.trim();
    if is_dam_id(given) {
        return Ok(Ok(given.to_string()));
    }
    let ids = services.store.campaign_ids_by_number(given)?;
    Ok(match ids.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(format!(
            "no campaign numbered {given} in the tracking database (a campaign is tracked once a1-to-a2 saw it at A1); give its DAM folder id (40 hex) instead"
        )),
        several => Err(format!(
            "several campaigns are numbered {given} (DAM folders {}); give the DAM folder id instead",
            several.join(", ")
        )),
    })
}

fn reprocess_campaign(
    services: &mut Services,
    report: &mut PassReport,
    given: &str,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), PassError> {
    tally.selected = 1;
    let dam_id = match resolve_campaign(services, given)? {
        Ok(id) => id,
        Err(reason) => {
            tally.skipped = 1;
            tally.note(
                "campaign",
                given,
                ItemAction::Skip,
                format!("campaign {given}: skipped: {reason}"),
            );
            return Ok(());
        }
    };
    let dam_id = dam_id.as_str();
    let model = services.config.dam.campaign.clone();
    let folder = match services.dam.get_folder(dam_id) {
        Ok(folder) => folder,
        Err(error) if error.status() == Some(404) => {
            tally.skipped = 1;
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Skip,
                format!(
                    "campaign {dam_id}: skipped: the DAM has no folder {dam_id} (or the DAM user may not see it)"
                ),
            );
            return Ok(());
        }
        Err(error) => return Err(PassError::from_dam(error)),
    };
    let status = field_text(&folder.json, &model.status_field_id).unwrap_or_default();
    let label = format!("campaign {dam_id} \"{}\" (status {status})", folder.name);
    let lock = format!("campaign:{dam_id}");
    if status == model.status_a1 {
        if dry_run {
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Reprocess,
                format!(
                    "{label}: would run its A1 -> A2 work: upload the masters not in Box yet, then move it to A2 when all are"
                ),
            );
            for master in services.store.masters_of_campaign(dam_id)? {
                let detail = match (master.status, &master.last_error) {
                    (MasterStatus::Uploaded, _) => "in Box, kept".to_string(),
                    (_, Some(error)) => {
                        format!("{}, would be retried (last error: {error})", master.status)
                    }
                    (status, None) => format!("{status}, would be retried"),
                };
                tally.note(
                    "master",
                    &master.tracking_id,
                    ItemAction::Info,
                    format!(
                        "  master \"{}\" ({}): {detail}",
                        master.original_filename, master.tracking_id
                    ),
                );
            }
            tally.reprocessed = 1;
            return Ok(());
        }
        if !services.store.try_lock(&lock)? {
            tally.skipped = 1;
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Skip,
                format!("{label}: skipped: an a1-to-a2 pass is working on it right now"),
            );
            return Ok(());
        }
        let result = a1_to_a2::process_campaign(services, report, dam_id);
        services.store.unlock(&lock)?;
        result?;
        tally.reprocessed = 1;
        let after = services.store.campaign(dam_id)?.map(|row| row.status);
        tally.note(
            "campaign",
            dam_id,
            ItemAction::Reprocess,
            format!(
                "{label}: A1 -> A2 work done; status now {}",
                after.unwrap_or(status)
            ),
        );
        return Ok(());
    }
    let pending_a3 = services
        .store
        .transition_state(dam_id, &model.status_a3)?
        .is_some_and(|state| state == crate::store::TransitionState::Pending);
    if status == model.status_a2 || pending_a3 {
        tally.reprocessed = 1;
        if services.store.campaign(dam_id)?.is_none() {
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Info,
                format!(
                    "{label}: nothing to check: the tracking database does not know this campaign (it never went through a1-to-a2 here)"
                ),
            );
            return Ok(());
        }
        let missing = services.store.masters_without_derivative(dam_id)?;
        if !missing.is_empty() {
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Reprocess,
                format!(
                    "{label}: {} at A2: {} without a delivered derivative yet ({})",
                    if dry_run { "would stay" } else { "stays" },
                    plural(
                        u64::try_from(missing.len()).unwrap_or(0),
                        "master",
                        "masters"
                    ),
                    missing.join(", ")
                ),
            );
            return Ok(());
        }
        if dry_run {
            tally.note(
                "campaign",
                dam_id,
                ItemAction::Reprocess,
                format!(
                    "{label}: would move it A2 -> A3: every master has a derivative in the DAM"
                ),
            );
            return Ok(());
        }
        let advanced_before = report.campaigns_advanced;
        box_poll::check_campaign_complete(services, report, dam_id)?;
        tally.note(
            "campaign",
            dam_id,
            ItemAction::Reprocess,
            format!(
                "{label}: {}",
                if report.campaigns_advanced > advanced_before {
                    "moved A2 -> A3"
                } else {
                    "complete, but another pass holds it; it moves to A3 with that pass"
                }
            ),
        );
        return Ok(());
    }
    if status == model.status_a3 {
        tally.nothing_to_do = 1;
        tally.note(
            "campaign",
            dam_id,
            ItemAction::NothingToDo,
            format!(
                "{label}: nothing to do: it is at {} already",
                model.status_a3
            ),
        );
    } else {
        tally.skipped = 1;
        tally.note(
            "campaign",
            dam_id,
            ItemAction::Skip,
            format!(
                "{label}: skipped: its status is neither {} nor {} nor {}",
                model.status_a1, model.status_a2, model.status_a3
            ),
        );
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
    if pending.is_empty() && !tally.json {
        say("no undelivered notifications: nothing to do");
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
        let action = if row.leased {
            ItemAction::Skip
        } else {
            ItemAction::Reprocess
        };
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
        tally.note("notification", &row.id.to_string(), action, line);
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
