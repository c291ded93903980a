//! `reprocess status` (design.md §6, issue 14): what the pipeline holds now, counted from the
//! state each thing is in (never from a step on the way), what needs attention, and the command
//! that acts on each file waiting for someone. Text, JSON (`--json`), one monitoring line
//! (`--check`) or a self-contained HTML page (`--html FILE`, [`super::status_page`]).
//!
//! It reads only the database and the configuration's plain settings: it runs on a monitoring
//! host without any Box, DAM or Mailgun secret ([`crate::config::load_database_only`]), and it
//! never changes the database — not even to migrate it: a database without the schema of this
//! build is reported as such. Ages are computed with the database clock.
//!
//! `--check` follows the monitoring-plugin convention (Nagios, Icinga, Zabbix, systemd
//! `OnFailure=`): one line `CONTENT-SCALING {OK|WARNING|CRITICAL|UNKNOWN} - ...` on stdout and
//! exit 0, 1, 2 or 3 ([`Verdict`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;
use serde::Serialize;

use super::operator::{plural, say};
use super::PassError;
use crate::config::{self, Config};
use crate::entry::{self, CommonOptions, Exit};
use crate::store::admin::{
    BinaryRuns, CampaignProgress, FileListKind, PassRecord, SchemaState, StatusFigures, StatusFile,
};
use crate::store::folders::FolderHealth;
use crate::store::{Incident, RunOutcome, Store, StoreError};

/// Files listed by `--files` (and on the page) at most.
const FILE_LIST_LIMIT: i64 = 500;
/// Campaigns shown at most (the unfinished ones first).
const CAMPAIGN_LIMIT: i64 = 50;
/// Hours of pass history on the page's timeline.
pub const HISTORY_HOURS: i32 = 24;
/// Passes on the timeline at most (the newest).
const HISTORY_LIMIT: i64 = 2000;

/// How bad things are, by the monitoring-plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// 0: all well.
    Ok,
    /// 1: something needs looking at soon (a folder Box refuses to list, stuck notifications, a
    /// schema older than this binary).
    Warning,
    /// 2: the pipeline is not working (a pass stale or never run after its first due time, a
    /// failing pass alerted as a critical incident).
    Critical,
    /// 3: the state cannot be judged (database unreachable, configuration unreadable).
    Unknown,
}

impl Verdict {
    /// The exit code of `--check`: 0, 1, 2 or 3.
    pub const fn code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Warning => 1,
            Verdict::Critical => 2,
            Verdict::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub const fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warning => "WARNING",
            Verdict::Critical => "CRITICAL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// Something that needs attention, one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// How bad.
    pub severity: Verdict,
    /// What and what to do.
    pub text: String,
}

/// One binary's passes, judged against its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassStatus {
    /// What `runs` says.
    #[serde(flatten)]
    pub runs: BinaryRuns,
    /// `status.max_pass_age_minutes` for it; `None` = not monitored.
    pub max_age_minutes: Option<u64>,
    /// The last successful pass is older than the threshold, or there was none and the
    /// first due time has passed.
    pub stale: bool,
    /// It never completed a pass, but the install is younger than its threshold: not due yet.
    pub not_due_yet: bool,
}

/// A file on the `--files` lists, with where it is and what acts on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// The ledger's view.
    #[serde(flatten)]
    pub file: StatusFile,
    /// Name of its watched folder (`box.watched_folders[].name`), when configured.
    pub watched_folder_name: Option<String>,
    /// Its last error on one line.
    pub error_line: String,
    /// The `reprocess` command that acts on it.
    pub command: String,
    /// What to do before running it, when something is.
    pub before: Option<String>,
}

/// A watched folder's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderEntry {
    /// Box folder id.
    pub folder_id: String,
    /// Name (configuration, else as last listed).
    pub name: String,
    /// In `box.watched_folders` now.
    pub configured: bool,
    /// `ok`, `error` or `never_listed`.
    pub health: &'static str,
    /// What box-poll recorded (`None`: never listed).
    pub record: Option<FolderHealth>,
}

impl FolderEntry {
    /// When it was last listed successfully: `12 min ago (2026-12-04 17:55 UTC)`.
    pub fn last_listed(&self) -> Option<String> {
        let record = self.record.as_ref()?;
        let (at, age) = (record.last_listed_at?, record.last_listed_age_secs?);
        Some(format!(
            "{} ago ({})",
            age_text(age),
            at.strftime("%Y-%m-%d %H:%M UTC")
        ))
    }
}

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The environment of the configuration.
    pub environment: String,
    /// When the report was made (UTC, this host's clock).
    pub generated_at: Timestamp,
    /// The overall verdict (the worst of `attention`).
    pub verdict: Verdict,
    /// Whether the database has the schema of this build.
    pub schema: SchemaState,
    /// Dashboard figures (`None` when the schema is not current).
    pub figures: Option<StatusFigures>,
    /// Files in `_errors/` and files waiting for a retry, newest first.
    pub files: Vec<FileEntry>,
    /// Watched folders: configured ones, then ones only the database remembers.
    pub folders: Vec<FolderEntry>,
    /// Campaigns with their progress, unfinished first.
    pub campaigns: Vec<CampaignProgress>,
    /// Open incidents (a binary whose passes fail).
    pub incidents: Vec<Incident>,
    /// Per binary, monitored ones first.
    pub passes: Vec<PassStatus>,
    /// The passes of the last [`HISTORY_HOURS`] hours, oldest first.
    pub history: Vec<PassRecord>,
    /// What needs attention, worst first (empty = all well).
    pub attention: Vec<Attention>,
}

/// What [`gather`] read, before it is judged.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// Dashboard figures.
    pub figures: StatusFigures,
    /// `--files` lists.
    pub files: Vec<StatusFile>,
    /// Folder health records.
    pub folders: Vec<FolderHealth>,
    /// Campaign progress.
    pub campaigns: Vec<CampaignProgress>,
    /// Open incidents.
    pub incidents: Vec<Incident>,
    /// Last passes per binary.
    pub runs: Vec<BinaryRuns>,
    /// Pass history.
    pub history: Vec<PassRecord>,
}

/// Reads everything (only reads) and judges it: see [`evaluate`]. A database without the
/// current schema gives a report with that alone.
///
/// # Errors
/// Database errors.
pub fn gather(store: &mut Store, config: &Config) -> Result<StatusReport, StoreError> {
    let schema = store.schema_state()?;
    if !matches!(schema, SchemaState::Current { .. }) {
        return Ok(evaluate(config, schema, None));
    }
    let gathered = Gathered {
        figures: store.status_figures()?,
        files: store.status_files(FILE_LIST_LIMIT)?,
        folders: store.folder_health()?,
        campaigns: store.campaign_progress(&config.dam.campaign.status_a3, CAMPAIGN_LIMIT)?,
        incidents: store.open_incidents()?,
        runs: store.binary_runs()?,
        history: store.pass_history(HISTORY_HOURS, HISTORY_LIMIT)?,
    };
    Ok(evaluate(config, schema, Some(gathered)))
}

/// Judges what was read:
/// - a monitored binary (threshold > 0) whose last successful pass is older than its threshold
///   is CRITICAL; one that never completed a pass too, once the install (the first migration)
///   is older than its threshold — before that it is not due yet (OK);
/// - an open incident is CRITICAL once alerted (or failed), WARNING before;
/// - a watched folder whose last listing failed is WARNING (with the fix);
/// - an undelivered notification older than `status.max_outbox_age_minutes` is WARNING;
/// - a database without this build's schema is WARNING (a pass or `cleanup` migrates it).
///
/// Files in `_errors/` and files waiting for a retry are listed, not judged: they are the
/// agencies' to fix (each was reported by email) or retried by box-poll.
pub fn evaluate(config: &Config, schema: SchemaState, gathered: Option<Gathered>) -> StatusReport {
    let mut attention = Vec::new();
    let mut report = StatusReport {
        environment: config.environment.clone(),
        generated_at: Timestamp::now(),
        verdict: Verdict::Ok,
        schema: schema.clone(),
        figures: None,
        files: Vec::new(),
        folders: Vec::new(),
        campaigns: Vec::new(),
        incidents: Vec::new(),
        passes: Vec::new(),
        history: Vec::new(),
        attention: Vec::new(),
    };
    let install_age = match &schema {
        SchemaState::Current { age_secs } => *age_secs,
        SchemaState::NotInitialised => {
            attention.push(Attention {
                severity: Verdict::Warning,
                text: "database not initialised: no pass ran against it yet; run a pass (or `cleanup`), which creates the schema (`reprocess status` never changes the database)".to_string(),
            });
            None
        }
        SchemaState::Older { pending } => {
            attention.push(Attention {
                severity: Verdict::Warning,
                text: format!(
                    "database schema older than this binary (missing {}): run a pass (or `cleanup`) of this version, which migrates it (`reprocess status` never changes the database)",
                    pending.join(", ")
                ),
            });
            None
        }
    };
    let Some(gathered) = gathered else {
        report.verdict = verdict_of(&attention);
        report.attention = attention;
        return report;
    };
    judge_passes(
        config,
        &gathered.runs,
        install_age,
        &mut report,
        &mut attention,
    );
    for incident in &gathered.incidents {
        let alerted = incident.alerted_at.is_some() || incident.kind == "failed";
        attention.push(Attention {
            severity: if alerted {
                Verdict::Critical
            } else {
                Verdict::Warning
            },
            text: format!(
                "{}: incident open since {} ({}){}",
                incident.binary,
                incident.started_at.strftime("%Y-%m-%d %H:%M UTC"),
                if incident.kind == "failed" {
                    "its passes fail"
                } else {
                    "its passes cannot reach a dependency"
                },
                incident
                    .last_error
                    .as_ref()
                    .map(|error| format!(": {}", one_line(error)))
                    .unwrap_or_default()
            ),
        });
    }
    report.folders = folder_entries(config, gathered.folders);
    for folder in &report.folders {
        if let Some(record) = folder.record.as_ref().filter(|_| folder.health == "error") {
            let mut text = format!(
                "watched folder {} ({}): its last listing failed: {}",
                folder.name,
                folder.folder_id,
                one_line(record.last_error.as_deref().unwrap_or(""))
            );
            if let Some(hint) = &record.last_error_hint {
                text.push_str(&format!("; fix: {hint}"));
            }
            attention.push(Attention {
                severity: Verdict::Warning,
                text,
            });
        }
    }
    let outbox_limit =
        i64::try_from(config.status.max_outbox_age_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    let figures = gathered.figures;
    if let Some(age) = figures.outbox_oldest_age_secs {
        if age > outbox_limit {
            attention.push(Attention {
                severity: Verdict::Warning,
                text: format!(
                    "outbox: {} undelivered, the oldest for {} (threshold {} min): see `reprocess notifications --dry-run`",
                    figures.outbox_backlog,
                    age_text(age),
                    config.status.max_outbox_age_minutes
                ),
            });
        }
    }
    report.files = gathered
        .files
        .into_iter()
        .map(|file| file_entry(config, &report.folders, file))
        .collect();
    report.figures = Some(figures);
    report.campaigns = gathered.campaigns;
    report.incidents = gathered.incidents;
    report.history = gathered.history;
    attention.sort_by_key(|item| std::cmp::Reverse(item.severity));
    report.verdict = verdict_of(&attention);
    report.attention = attention;
    report
}

fn verdict_of(attention: &[Attention]) -> Verdict {
    attention
        .iter()
        .map(|item| item.severity)
        .max()
        .unwrap_or(Verdict::Ok)
}

fn judge_passes(
    config: &Config,
    runs: &[BinaryRuns],
    install_age: Option<i64>,
    report: &mut StatusReport,
    attention: &mut Vec<Attention>,
) {
    let thresholds = &config.status.max_pass_age_minutes;
    for (binary, minutes) in thresholds.iter().filter(|(_, minutes)| **minutes > 0) {
        let found = runs
            .iter()
            .find(|run| &run.binary == binary)
            .cloned()
            .unwrap_or_else(|| BinaryRuns {
                binary: binary.clone(),
                last_success_at: None,
                last_success_age_secs: None,
                last_started_at: None,
                last_outcome: None,
                last_error: None,
            });
        let limit_secs = i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX);
        let not_due_yet = found.last_success_age_secs.is_none()
            && install_age.is_some_and(|age| age <= limit_secs);
        let stale = !not_due_yet
            && found
                .last_success_age_secs
                .is_none_or(|age| age > limit_secs);
        if stale {
            let when = match found.last_success_age_secs {
                Some(age) => format!("its last successful pass was {} ago", age_text(age)),
                None => "it never completed a pass".to_string(),
            };
            let mut sentence = format!(
                "{binary}: {when} (threshold {minutes} min): is its cron job or timer running?"
            );
            if let (Some(outcome), Some(error)) = (&found.last_outcome, &found.last_error) {
                sentence.push_str(&format!(
                    " Its last pass ended {outcome}: {}",
                    one_line(error)
                ));
            }
            attention.push(Attention {
                severity: Verdict::Critical,
                text: sentence,
            });
        }
        report.passes.push(PassStatus {
            runs: found,
            max_age_minutes: Some(*minutes),
            stale,
            not_due_yet,
        });
    }
    for run in runs {
        if !report
            .passes
            .iter()
            .any(|pass| pass.runs.binary == run.binary)
        {
            report.passes.push(PassStatus {
                runs: run.clone(),
                max_age_minutes: None,
                stale: false,
                not_due_yet: false,
            });
        }
    }
}

/// Configured watched folders first (in configuration order), then folders only the database
/// remembers. A configured id `0` (a variable not set on this host) is matched by name.
fn folder_entries(config: &Config, records: Vec<FolderHealth>) -> Vec<FolderEntry> {
    let mut records: BTreeMap<String, FolderHealth> = records
        .into_iter()
        .map(|record| (record.folder_id.clone(), record))
        .collect();
    let entry =
        |folder_id: String, name: String, configured: bool, record: Option<FolderHealth>| {
            let health = match &record {
                None => "never_listed",
                Some(record) if record.last_error.is_some() => "error",
                Some(_) => "ok",
            };
            FolderEntry {
                folder_id,
                name,
                configured,
                health,
                record,
            }
        };
    let mut entries = Vec::new();
    for folder in &config.box_api.watched_folders {
        if folder.id == "0" {
            // Its id is a variable not set on this host: the record of the same name is it.
            let id = records
                .values()
                .find(|record| record.folder_name == folder.name)
                .map(|record| record.folder_id.clone());
            if let Some(id) = id {
                let record = records.remove(&id);
                entries.push(entry(id, folder.name.clone(), true, record));
            }
            continue;
        }
        let record = records.remove(&folder.id);
        entries.push(entry(folder.id.clone(), folder.name.clone(), true, record));
    }
    for (id, record) in records {
        let name = record.folder_name.clone();
        entries.push(entry(id, name, false, Some(record)));
    }
    entries
}

fn file_entry(config: &Config, folders: &[FolderEntry], file: StatusFile) -> FileEntry {
    let watched_folder_name = folders
        .iter()
        .find(|folder| folder.folder_id == file.watched_folder_id)
        .map(|folder| folder.name.clone());
    let command = format!("reprocess file {}", file.file_id);
    let before = match file.list {
        FileListKind::InErrors => Some(format!(
            "rename it in Box (in {}/) to a valid name, or fix what the error names",
            config.box_api.errors_folder_name
        )),
        FileListKind::WaitingRetry => None,
    };
    let error_line = one_line(file.last_error.as_deref().unwrap_or("(no error recorded)"));
    FileEntry {
        file,
        watched_folder_name,
        error_line,
        command,
        before,
    }
}

/// `text` on one line: lines joined with `; `.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
pub fn age_text(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} d {} h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

/// The one line of `--check`: `CONTENT-SCALING OK - ...` with perfdata after `|`.
pub fn check_line(report: &StatusReport) -> String {
    let mut text = format!("CONTENT-SCALING {} - ", report.verdict.label());
    if report.attention.is_empty() {
        text.push_str("all passes on time");
        let not_due: Vec<&str> = report
            .passes
            .iter()
            .filter(|pass| pass.not_due_yet)
            .map(|pass| pass.runs.binary.as_str())
            .collect();
        if !not_due.is_empty() {
            text.push_str(&format!(
                " (fresh install: {} not due yet)",
                not_due.join(", ")
            ));
        }
    } else {
        text.push_str(
            &report
                .attention
                .iter()
                .map(|item| item.text.as_str())
                .collect::<Vec<_>>()
                .join(" / "),
        );
    }
    if let Some(figures) = &report.figures {
        text.push_str(&format!(
            "; {} delivered, {} in _errors, {} waiting for a retry, {} in progress | delivered={} in_errors={} waiting_retry={} in_progress={} outbox={}",
            figures.derivatives_delivered,
            figures.files_in_errors,
            figures.files_waiting_retry,
            figures.files_in_progress,
            figures.derivatives_delivered,
            figures.files_in_errors,
            figures.files_waiting_retry,
            figures.files_in_progress,
            figures.outbox_backlog
        ));
    }
    text
}

/// The report as text lines; with `files`, the `_errors/` and retry lists too.
pub fn render_text(report: &StatusReport, files: bool) -> Vec<String> {
    let mut lines = vec![format!(
        "content-scaling status (environment {}, {}): {}",
        report.environment,
        report.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        report.verdict.label()
    )];
    let Some(figures) = &report.figures else {
        lines.extend(report.attention.iter().map(|item| item.text.clone()));
        return lines;
    };
    let campaigns = if figures.campaigns_by_status.is_empty() {
        "none".to_string()
    } else {
        figures
            .campaigns_by_status
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    lines.extend([
        format!(
            "derivatives:  {} delivered to the DAM, {} superseded by a higher version{}",
            figures.derivatives_delivered,
            figures.deliveries_superseded,
            if figures.imports_unconfirmed > 0 {
                format!(", {} imports awaiting confirmation", figures.imports_unconfirmed)
            } else {
                String::new()
            }
        ),
        format!(
            "box files:    {} rejected (in _errors/), {} waiting for a retry, {} in progress (held by a live pass now), {} queued",
            figures.files_in_errors,
            figures.files_waiting_retry,
            figures.files_in_progress,
            figures.files_queued
        ),
        format!(
            "masters:      {} ({} in Box, {} failed)",
            figures.masters, figures.masters_uploaded, figures.masters_failed
        ),
        format!("campaigns:    {campaigns}"),
    ]);
    for campaign in &report.campaigns {
        lines.push(format!(
            "  {} \"{}\" ({}): masters in Box {} of {}, derivatives {} of {}",
            campaign.campaign_number,
            campaign.campaign_name,
            campaign.status,
            campaign.masters_in_box,
            campaign.masters_total,
            campaign.masters_with_derivative,
            campaign.masters_total
        ));
    }
    lines.push(format!(
        "last 24 h:    {} derivatives delivered to the DAM, {} masters uploaded to Box",
        figures.derivatives_last_24h, figures.masters_last_24h
    ));
    lines.push("folders:".to_string());
    if report.folders.is_empty() {
        lines.push("  none configured or listed".to_string());
    }
    for folder in &report.folders {
        let configured = if folder.configured {
            ""
        } else {
            " (no longer configured)"
        };
        let listed = folder.last_listed().map_or_else(
            || "never listed successfully".to_string(),
            |when| format!("last listed {when}"),
        );
        match folder.record.as_ref().filter(|_| folder.health == "error") {
            Some(record) => {
                lines.push(format!(
                    "  {} ({}){configured}: ERROR: {}; {listed}",
                    folder.name,
                    folder.folder_id,
                    one_line(record.last_error.as_deref().unwrap_or(""))
                ));
                if let Some(hint) = &record.last_error_hint {
                    lines.push(format!("    fix: {hint}"));
                }
            }
            None if folder.health == "never_listed" => lines.push(format!(
                "  {} ({}){configured}: not listed by box-poll yet",
                folder.name, folder.folder_id
            )),
            None => lines.push(format!(
                "  {} ({}){configured}: ok, {listed}",
                folder.name, folder.folder_id
            )),
        }
    }
    let files_hint = if files {
        "listed below"
    } else {
        "`reprocess status --files` lists them"
    };
    lines.extend([
        format!(
            "_errors:      {} ({files_hint})",
            plural(count(figures.files_in_errors), "file", "files")
        ),
        format!(
            "retry:        {} waiting for a retry ({files_hint})",
            plural(count(figures.files_waiting_retry), "file", "files")
        ),
        format!(
            "outbox:       {} undelivered ({} failing{})",
            figures.outbox_backlog,
            figures.outbox_failing,
            figures
                .outbox_oldest_age_secs
                .map(|age| format!(", oldest {}", age_text(age)))
                .unwrap_or_default()
        ),
        format!(
            "transitions:  {} pending status changes",
            figures.transitions_pending
        ),
    ]);
    if report.incidents.is_empty() {
        lines.push("incidents:    none open".to_string());
    } else {
        lines.push("incidents:".to_string());
        for incident in &report.incidents {
            lines.push(format!(
                "  {} {} since {}{}{}",
                incident.binary,
                incident.kind,
                incident.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                if incident.alerted_at.is_some() {
                    " (alerted)"
                } else {
                    ""
                },
                incident
                    .last_error
                    .as_ref()
                    .map(|error| format!(": {}", one_line(error)))
                    .unwrap_or_default()
            ));
        }
    }
    lines.push("passes:".to_string());
    for pass in &report.passes {
        let last = match (&pass.runs.last_success_at, pass.runs.last_success_age_secs) {
            (Some(at), Some(age)) => format!(
                "last success {} ago ({})",
                age_text(age),
                at.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => "never succeeded".to_string(),
        };
        let judgement = match (pass.max_age_minutes, pass.stale, pass.not_due_yet) {
            (Some(minutes), _, true) => {
                format!("not due yet (fresh install, threshold {minutes} min)")
            }
            (Some(minutes), true, _) => format!("STALE (threshold {minutes} min)"),
            (Some(minutes), false, _) => format!("ok (threshold {minutes} min)"),
            (None, _, _) => "not monitored".to_string(),
        };
        let mut line = format!("  {:<10} {last}; {judgement}", pass.runs.binary);
        if let Some(outcome) = pass
            .runs
            .last_outcome
            .filter(|outcome| *outcome != RunOutcome::Completed)
        {
            line.push_str(&format!("; last pass {outcome}"));
        }
        lines.push(line);
    }
    if report.attention.is_empty() {
        lines.push("attention:    none".to_string());
    } else {
        lines.push("attention:".to_string());
        lines.extend(
            report
                .attention
                .iter()
                .map(|item| format!("  - {}: {}", item.severity.label(), item.text)),
        );
    }
    if files {
        for (kind, title) in [
            (FileListKind::InErrors, "files in _errors/"),
            (FileListKind::WaitingRetry, "files waiting for a retry"),
        ] {
            let listed: Vec<&FileEntry> = report
                .files
                .iter()
                .filter(|entry| entry.file.list == kind)
                .collect();
            lines.push(format!("{title} ({}):", listed.len()));
            if listed.is_empty() {
                lines.push("  none".to_string());
            }
            for entry in listed {
                lines.push(format!(
                    "  {} \"{}\" in {} ({}): {}",
                    entry.file.file_id,
                    entry.file.name,
                    entry
                        .watched_folder_name
                        .as_deref()
                        .unwrap_or("an unconfigured folder"),
                    entry.file.watched_folder_id,
                    entry.error_line
                ));
                match &entry.before {
                    Some(before) => {
                        lines.push(format!("    {before}, then run: {}", entry.command));
                    }
                    None => lines.push(format!(
                        "    box-poll retries it{}; now: {}",
                        entry
                            .file
                            .next_attempt_at
                            .map(|at| format!(" after {}", at.strftime("%H:%M:%S UTC")))
                            .unwrap_or_default(),
                        entry.command
                    )),
                }
            }
        }
    }
    lines
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Options of `reprocess status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusOptions {
    /// JSON on stdout instead of text.
    pub json: bool,
    /// One monitoring line on stdout, exit 0/1/2/3 ([`Verdict`]).
    pub check: bool,
    /// List the files in `_errors/` and those waiting for a retry.
    pub files: bool,
    /// Write the status page to this file (atomically); the text report is then printed only
    /// with `files` (cron stays quiet).
    pub html: Option<PathBuf>,
}

/// Runs `status` and returns the exit code. Without `check`: 0, or the exit policy of
/// [`crate::entry`] for an error (2 configuration, 75 database unreachable, 1 otherwise). With
/// `check`: the [`Verdict`] code, 3 UNKNOWN for any error (the line says which).
pub fn run(options: &CommonOptions, status: &StatusOptions) -> ExitCode {
    entry::init_logging(options.log_format, options.verbosity);
    let result = report_and_print(options, status);
    match (result, status.check) {
        (Ok(verdict), true) => ExitCode::from(verdict.code()),
        (Ok(_), false) => Exit::Success.into(),
        (Err(error), true) => {
            say(&format!(
                "CONTENT-SCALING UNKNOWN - {}",
                one_line(&entry::error_chain(&error))
            ));
            ExitCode::from(Verdict::Unknown.code())
        }
        (Err(error), false) => entry::report_failure("reprocess status", options, &error),
    }
}

fn report_and_print(options: &CommonOptions, status: &StatusOptions) -> Result<Verdict, PassError> {
    let (config, unset) =
        config::load_database_only(&options.config_dir, options.environment.as_deref())?;
    entry::apply_logging(
        &config.logging,
        options.verbosity,
        &config.config_dir.join("config.yaml"),
    )?;
    if !unset.is_empty() {
        tracing::debug!(
            variables = %unset.join(", "),
            "reprocess status: variables not set here (not needed by status)"
        );
    }
    let mut store = Store::connect_database(&config.database)?;
    let report = gather(&mut store, &config)?;
    if let Some(path) = &status.html {
        super::status_page::write(path, &report)?;
    }
    if status.check {
        say(&check_line(&report));
    } else if status.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| PassError::Failed(format!("cannot encode JSON: {error}")))?;
        say(&text);
    } else if status.html.is_none() || status.files {
        for line in render_text(&report, status.files) {
            say(&line);
        }
    }
    if let Some(path) = &status.html {
        tracing::debug!(page = %path.display(), "status page written");
    }
    Ok(report.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let vars = |name: &str| {
            let value = match name {
                "BOX_API_BASE_URL" | "DAM_BASE_URL" | "MAILGUN_BASE_URL" => "http://127.0.0.1:1",
                "BOX_UPLOAD_BASE_URL" => "http://127.0.0.1:1/api",
                "BOX_OAUTH2_URL" => "http://127.0.0.1:1/oauth2/token",
                "WEBHOOK_BASE_URL" => "http://127.0.0.1:1/hooks",
                "BOX_CONFIG_FILE" => "/nonexistent/box.json",
                "BOX_ROOT_FOLDER_ID" | "BOX_WATCHED_FOLDER_ID" => "1",
                "DAM_USERNAME" | "DAM_PASSWORD" | "MAILGUN_API_KEY" => "x",
                "MAILGUN_DOMAIN" => "mg.example.com",
                "DATABASE_URL" => "postgres://u@127.0.0.1:1/db",
                _ => return None,
            };
            Some(value.to_string())
        };
        crate::config::load_with_vars(&dir, Some("sandbox"), &vars).expect("shipped config loads")
    }

    fn runs(binary: &str, age: Option<i64>) -> BinaryRuns {
        BinaryRuns {
            binary: binary.to_string(),
            last_success_at: age.map(|_| jiff::Timestamp::UNIX_EPOCH),
            last_success_age_secs: age,
            last_started_at: None,
            last_outcome: Some(RunOutcome::Failed),
            last_error: Some("Box unreachable".to_string()),
        }
    }

    fn judged(
        runs: Vec<BinaryRuns>,
        install_age: Option<i64>,
        figures: StatusFigures,
    ) -> StatusReport {
        evaluate(
            &config(),
            SchemaState::Current {
                age_secs: install_age,
            },
            Some(Gathered {
                figures,
                runs,
                ..Gathered::default()
            }),
        )
    }

    #[test]
    fn stale_and_missing_passes_are_critical() {
        let report = judged(
            vec![
                runs("a1-to-a2", Some(60)),
                runs("box-poll", Some(42 * 60)),
                runs("reprocess", Some(99_999)),
            ],
            Some(7 * 86_400),
            StatusFigures::default(),
        );
        let stale: Vec<&str> = report
            .passes
            .iter()
            .filter(|pass| pass.stale)
            .map(|pass| pass.runs.binary.as_str())
            .collect();
        assert_eq!(stale, ["box-poll", "cleanup"]);
        assert_eq!(report.verdict, Verdict::Critical);
        assert_eq!(report.attention.len(), 2, "{:?}", report.attention);
        assert!(
            report.attention[0]
                .text
                .contains("box-poll: its last successful pass was 42 min ago (threshold 5 min)"),
            "{:?}",
            report.attention
        );
        assert!(report.attention[0].text.contains("Box unreachable"));
        assert!(report.attention[1]
            .text
            .contains("cleanup: it never completed a pass"));
        let reprocess = report
            .passes
            .iter()
            .find(|pass| pass.runs.binary == "reprocess")
            .expect("unmonitored binaries are listed too");
        assert_eq!(reprocess.max_age_minutes, None);
        let text = render_text(&report, false).join("\n");
        assert!(text.contains("STALE (threshold 5 min)"), "{text}");
        assert!(text.contains("not monitored"), "{text}");
        assert!(check_line(&report).starts_with("CONTENT-SCALING CRITICAL - box-poll"));
    }

    #[test]
    fn a_fresh_install_is_ok_until_the_first_due_time() {
        // Installed 3 minutes ago, nothing ran: every threshold (5, 15, 1500 min) is ahead.
        let report = judged(Vec::new(), Some(180), StatusFigures::default());
        assert_eq!(report.verdict, Verdict::Ok, "{:?}", report.attention);
        assert!(report.passes.iter().all(|pass| pass.not_due_yet));
        assert!(check_line(&report)
            .starts_with("CONTENT-SCALING OK - all passes on time (fresh install"));
        // 6 minutes: box-poll (5 min) is due and never ran; the others are not due yet.
        let report = judged(Vec::new(), Some(360), StatusFigures::default());
        assert_eq!(report.verdict, Verdict::Critical);
        assert_eq!(report.attention.len(), 1, "{:?}", report.attention);
        assert!(report.attention[0]
            .text
            .starts_with("box-poll: it never completed a pass"));
    }

    #[test]
    fn old_outbox_is_a_warning() {
        let all_fresh = vec![
            runs("a1-to-a2", Some(1)),
            runs("box-poll", Some(1)),
            runs("cleanup", Some(1)),
        ];
        let figures = StatusFigures {
            outbox_backlog: 2,
            outbox_oldest_age_secs: Some(59 * 60),
            ..StatusFigures::default()
        };
        assert!(judged(all_fresh.clone(), None, figures.clone())
            .attention
            .is_empty());
        let figures = StatusFigures {
            outbox_oldest_age_secs: Some(61 * 60),
            ..figures
        };
        let report = judged(all_fresh, None, figures);
        assert_eq!(report.attention.len(), 1);
        assert_eq!(report.verdict, Verdict::Warning);
        assert!(report.attention[0]
            .text
            .starts_with("outbox: 2 undelivered, the oldest for 1 h 01 min"));
    }

    #[test]
    fn a_database_without_the_schema_is_a_warning_with_the_fix() {
        let report = evaluate(&config(), SchemaState::NotInitialised, None);
        assert_eq!(report.verdict, Verdict::Warning);
        let text = render_text(&report, true).join("\n");
        assert!(text.contains("database not initialised"), "{text}");
        assert!(text.contains("run a pass (or `cleanup`)"), "{text}");
    }

    #[test]
    fn the_page_escapes_what_comes_from_outside_and_needs_no_script() {
        let hostile = "<script>alert(1)</script>_v01.png";
        let gathered = Gathered {
            files: vec![StatusFile {
                list: FileListKind::InErrors,
                file_id: "42".to_string(),
                file_version_id: "1".to_string(),
                name: hostile.to_string(),
                watched_folder_id: "1".to_string(),
                last_error: Some("name: expected <v02>\nsecond problem".to_string()),
                attempts: 0,
                next_attempt_at: None,
                updated_at: Timestamp::UNIX_EPOCH,
            }],
            runs: vec![runs("box-poll", Some(30))],
            ..Gathered::default()
        };
        let report = evaluate(
            &config(),
            SchemaState::Current { age_secs: Some(60) },
            Some(gathered),
        );
        assert_eq!(
            report.files[0].error_line,
            "name: expected <v02>; second problem"
        );
        assert_eq!(report.files[0].command, "reprocess file 42");
        let page = crate::pipeline::status_page::render(&report).expect("page renders");
        assert!(!page.contains("<script"), "escaped: {page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;_v01.png"),
            "{page}"
        );
        assert!(
            page.contains("name: expected &lt;v02&gt;; second problem"),
            "{page}"
        );
        assert!(page.contains("reprocess file 42"), "{page}");
        assert!(page.contains("<svg id=\"timeline\""), "{page}");
    }

    #[test]
    fn verdict_codes_follow_the_plugin_convention() {
        assert_eq!(
            [
                Verdict::Ok,
                Verdict::Warning,
                Verdict::Critical,
                Verdict::Unknown
            ]
            .map(Verdict::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age_text(5), "5 s");
        assert_eq!(age_text(125), "2 min");
        assert_eq!(age_text(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(age_text(2 * 86_400 + 4 * 3600), "2 d 4 h");
        assert_eq!(age_text(-3), "0 s");
    }
}
