//! `cleanup` (design.md §1 step 5; cron, daily): keeps the temp dir and the tracking database
//! from growing without bound.
//!
//! 1. Temp files (ours only: `cs-*`, `.box-download-*`, `.dam-download-*`, `.box-token-*` in
//!    `temp.dir` and its `downloads/`; the Box token cache and anything else is left alone) older than
//!    `temp.cleanup_after_hours` are removed. A pass killed mid-download leaves such files.
//! 2. If ours still exceed `temp.max_size_mb`, the oldest go first, but never a file written
//!    in the last hour (a running pass may be using it): the cap is reported as not met then.
//! 3. Expired leases are released (`box_files`, `outbox`): the work they held is due at once.
//! 4. History older than `retention.history_days` is deleted: finished `runs`, delivered
//!    `outbox` rows, ledger rows in a final state.
//! 5. With `box.archive_retention_days` (off by default), `_PROCESSED/{YYYY-MM-DD}/` folders
//!    dated more than that many days ago (UTC) are moved to the Box trash with their files
//!    (`DELETE /2.0/folders/{id}?recursive=true`; restorable from the trash for the
//!    enterprise's trash retention). Today's folder, where box-poll moves files, is never due.
//!
//! With `dry_run` it prints what it would do (one line per item, or with `json` one JSON document:
//! the [`CleanupReport`] with its `would_remove` list) and changes nothing. Otherwise it records a `runs`
//! row for binary `cleanup` (so `reprocess status` sees a stopped cleanup cron) and logs one
//! line when it did something; nothing when there was nothing to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use std::process::ExitCode;

use super::operator::{plural, say};
use super::{PassError, Services};
use crate::boxapi::BoxItem;
use crate::entry::{self, CommonOptions, Exit};
use crate::store::admin::RowCounts;
use crate::store::RunOutcome;

/// Binary name in `runs`.
const BINARY: &str = "cleanup";

/// Name prefixes of the temp files this program creates (pass temp files, download temp files
/// of the Box and DAM clients, the token cache's write temp file).
pub const TEMP_PREFIXES: &[&str] = &["cs-", ".box-download-", ".dam-download-", ".box-token-"];

/// A temp file modified this recently may be in use by a running pass: the size cap never
/// removes it.
pub const IN_USE_SECS: u64 = 3600;

/// One of our files in the temp dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Seconds since its last modification.
    pub age_secs: u64,
}

/// Which temp files go, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TempPlan {
    /// Older than `temp.cleanup_after_hours`.
    pub expired: Vec<TempFile>,
    /// Removed, oldest first, to get under `temp.max_size_mb`.
    pub over_cap: Vec<TempFile>,
    /// Bytes of our files left afterwards.
    pub bytes_left: u64,
    /// The cap cannot be met without removing files in use.
    pub cap_not_met: bool,
}

/// Plans the removal of `files`: every file older than `max_age_secs`, then the oldest of the
/// rest not modified for [`IN_USE_SECS`] until at most `cap_bytes` remain.
pub fn plan_temp(mut files: Vec<TempFile>, max_age_secs: u64, cap_bytes: u64) -> TempPlan {
    files.sort_by(|a, b| b.age_secs.cmp(&a.age_secs).then(a.path.cmp(&b.path)));
    let (expired, mut kept): (Vec<TempFile>, Vec<TempFile>) = files
        .into_iter()
        .partition(|file| file.age_secs > max_age_secs);
    let mut bytes_left: u64 = kept.iter().map(|file| file.size).sum();
    let mut over_cap = Vec::new();
    while bytes_left > cap_bytes {
        match kept.first() {
            Some(oldest) if oldest.age_secs >= IN_USE_SECS => {
                let file = kept.remove(0);
                bytes_left = bytes_left.saturating_sub(file.size);
                over_cap.push(file);
            }
            _ => break,
        }
    }
    TempPlan {
        expired,
        over_cap,
        bytes_left,
        cap_not_met: bytes_left > cap_bytes,
    }
}

/// Our files directly in `dir` (not in subdirectories); an absent dir has none.
///
/// # Errors
/// The directory cannot be read.
pub fn scan_temp(dir: &Path) -> std::io::Result<Vec<TempFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let now = SystemTime::now();
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !TEMP_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue; // removed meanwhile
        };
        if !metadata.is_file() {
            continue;
        }
        let age = metadata
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or(Duration::ZERO);
        files.push(TempFile {
            path: entry.path(),
            size: metadata.len(),
            age_secs: age.as_secs(),
        });
    }
    Ok(files)
}

/// What one cleanup did (or, dry run, would do); stored in `runs.counts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Temp files removed.
    pub temp_files_removed: u64,
    /// Their bytes.
    pub temp_bytes_removed: u64,
    /// Bytes of our temp files left.
    pub temp_bytes_left: u64,
    /// The temp dir is still above `temp.max_size_mb` (the rest is in use).
    pub temp_cap_not_met: bool,
    /// Expired leases released.
    pub leases_released: RowCounts,
    /// History rows deleted.
    pub history_deleted: RowCounts,
    /// `_PROCESSED/{date}` folders older than `box.archive_retention_days` (`{watched}/{date}`),
    /// moved to the Box trash (listed only in a dry run).
    pub archive_folders_trashed: Vec<String>,
    /// Dry run only: each temp file that would be removed, and why (not stored in `runs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<TempRemoval>,
    /// Dry run only: each `_PROCESSED/{date}` folder that would go to the Box trash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_trash: Vec<ArchiveFolder>,
}

/// A temp file a dry run would remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TempRemoval {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Seconds since its last modification.
    pub age_secs: u64,
    /// The rule that removes it (`older than temp.cleanup_after_hours`, `temp dir above
    /// temp.max_size_mb`).
    pub reason: &'static str,
}

impl CleanupReport {
    fn is_idle(&self) -> bool {
        self.temp_files_removed == 0
            && !self.temp_cap_not_met
            && self.leases_released == RowCounts::default()
            && self.history_deleted == RowCounts::default()
            && self.archive_folders_trashed.is_empty()
    }
}

fn mib(bytes: u64) -> String {
    // Display only: the precision loss of huge values does not matter.
    #[expect(
        clippy::cast_precision_loss,
        reason = "a size shown in MB, rounded anyway"
    )]
    let value = bytes as f64 / 1_048_576.0;
    format!("{value:.1} MiB")
}

/// Runs `cleanup` (through [`crate::entry::run`]) and returns the exit code: 0 done (a dry run
/// too, with "nothing to do" when so), 1 failed, 2 configuration error, 75 the database or Box
/// unreachable. `json` (dry run only) prints the [`CleanupReport`] as one JSON document.
pub fn run(options: &CommonOptions, dry_run: bool, json: bool) -> ExitCode {
    entry::run(BINARY, options, |config| {
        let mut services = Services::connect(config)?;
        if dry_run {
            let report = clean(&mut services, true)?;
            if json {
                say(&serde_json::to_string_pretty(&report).unwrap_or_default());
            } else if report.is_idle() {
                say("dry run: nothing to do");
            } else {
                say("dry run: nothing will be changed");
                for file in &report.would_remove {
                    say(&format!(
                        "would remove {} ({}, modified {} ago): {}",
                        file.path.display(),
                        mib(file.bytes),
                        super::status::age_text(i64::try_from(file.age_secs).unwrap_or(i64::MAX)),
                        file.reason
                    ));
                }
                for folder in &report.would_trash {
                    say(&format!(
                        "would move {}/{}/{} (folder {}) and its files to the Box trash",
                        folder.watched,
                        services.config.box_api.processed_folder_name,
                        folder.date,
                        folder.id
                    ));
                }
                say(&summary(&report, true));
            }
            return Ok(Exit::Success);
        }
        let host = services.host.clone();
        let run_id = services.store.start_run(BINARY, &host)?;
        let result = clean(&mut services, false);
        let (outcome, counts, error_text) = match &result {
            Ok(report) => (
                RunOutcome::Completed,
                serde_json::to_value(report).unwrap_or_default(),
                None,
            ),
            Err(error) => (
                if error.exit() == Exit::Unavailable {
                    RunOutcome::DependencyUnreachable
                } else {
                    RunOutcome::Failed
                },
                serde_json::Value::Null,
                Some(error.to_string()),
            ),
        };
        let recorded = services
            .store
            .finish_run(run_id, outcome, &counts, error_text.as_deref());
        let report = result?;
        recorded?;
        if report.is_idle() {
            tracing::debug!("cleanup: nothing to do");
        } else {
            tracing::info!("cleanup: {}", summary(&report, false));
        }
        Ok(Exit::Success)
    })
}

fn summary(report: &CleanupReport, dry_run: bool) -> String {
    let leases = &report.leases_released;
    let history = &report.history_deleted;
    let mut text = format!(
        "{} {} ({}), {} of temp files left{}; {} {} ({} ledger, {} outbox); \
         {} {} older than the retention ({} runs, {} outbox, {} ledger)",
        if dry_run { "would remove" } else { "removed" },
        plural(report.temp_files_removed, "temp file", "temp files"),
        mib(report.temp_bytes_removed),
        mib(report.temp_bytes_left),
        if report.temp_cap_not_met {
            " (still above temp.max_size_mb: the rest is in use)"
        } else {
            ""
        },
        if dry_run { "would release" } else { "released" },
        plural(
            leases.ledger + leases.outbox,
            "expired lease",
            "expired leases"
        ),
        leases.ledger,
        leases.outbox,
        if dry_run { "would delete" } else { "deleted" },
        plural(
            history.runs + history.outbox + history.ledger,
            "history row",
            "history rows"
        ),
        history.runs,
        history.outbox,
        history.ledger,
    );
    if !report.archive_folders_trashed.is_empty() {
        text.push_str(&format!(
            "; {} {} older than box.archive_retention_days to the Box trash: {}",
            if dry_run { "would move" } else { "moved" },
            plural(
                u64::try_from(report.archive_folders_trashed.len()).unwrap_or(0),
                "_PROCESSED folder",
                "_PROCESSED folders"
            ),
            report.archive_folders_trashed.join(", ")
        ));
    }
    text
}

fn clean(services: &mut Services, dry_run: bool) -> Result<CleanupReport, PassError> {
    let mut report = CleanupReport::default();
    let temp = &services.config.temp;
    let mut files = Vec::new();
    // Downloads live in `downloads/`; the clients' write temp files (and those of older
    // versions) directly in the temp dir.
    for dir in [temp.dir.clone(), temp.downloads_dir()] {
        files.extend(
            scan_temp(&dir).map_err(|error| {
                PassError::setup(format!("temp dir {}: {error}", dir.display()))
            })?,
        );
    }
    let plan = plan_temp(
        files,
        temp.cleanup_after_hours.saturating_mul(3600),
        temp.max_size_mb.saturating_mul(1_048_576),
    );
    report.temp_bytes_left = plan.bytes_left;
    report.temp_cap_not_met = plan.cap_not_met;
    let reasons = plan
        .expired
        .iter()
        .map(|file| (file, "older than temp.cleanup_after_hours"))
        .chain(
            plan.over_cap
                .iter()
                .map(|file| (file, "temp dir above temp.max_size_mb")),
        );
    for (file, reason) in reasons {
        if dry_run {
            report.would_remove.push(TempRemoval {
                path: file.path.clone(),
                bytes: file.size,
                age_secs: file.age_secs,
                reason,
            });
        } else {
            match std::fs::remove_file(&file.path) {
                Ok(()) => {
                    tracing::debug!(file = %file.path.display(), size = file.size, reason, "temp file removed");
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    tracing::warn!(file = %file.path.display(), %error, "temp file could not be removed");
                    report.temp_bytes_left += file.size;
                    continue;
                }
            }
        }
        report.temp_files_removed += 1;
        report.temp_bytes_removed += file.size;
    }
    report.leases_released = services.store.expired_leases(!dry_run)?;
    report.history_deleted = services
        .store
        .old_history(services.config.retention.history_days, !dry_run)?;
    if let Some(days) = services.config.retention.box_archive_days {
        for folder in old_archive_folders(services, days)? {
            if dry_run {
                report.would_trash.push(folder.clone());
            } else {
                services
                    .box_client
                    .trash_folder(&folder.id)
                    .map_err(PassError::from_box)?;
                tracing::info!(watched = %folder.watched, date = %folder.date, folder_id = %folder.id,
                    "_PROCESSED folder moved to the Box trash");
            }
            report
                .archive_folders_trashed
                .push(format!("{}/{}", folder.watched, folder.date));
        }
    }
    Ok(report)
}

/// A `_PROCESSED/{YYYY-MM-DD}` folder due for the trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveFolder {
    /// Name of the watched folder it belongs to.
    pub watched: String,
    /// The folder's name (a date).
    pub date: String,
    /// Box folder ID.
    pub id: String,
}

/// Every `_PROCESSED/{YYYY-MM-DD}` folder dated more than `days` days ago (UTC), in the
/// watched folders' order. Reads only; folders whose names are not dates are never due.
fn old_archive_folders(services: &Services, days: u64) -> Result<Vec<ArchiveFolder>, PassError> {
    let cutoff = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_sub(jiff::Span::new().days(i64::try_from(days).unwrap_or(i64::MAX)))
        .map_err(|error| PassError::setup(format!("box.archive_retention_days: {error}")))?;
    let processed_name = &services.config.box_api.processed_folder_name;
    let mut due = Vec::new();
    for watched in &services.config.box_api.watched_folders {
        let items = services
            .box_client
            .list_folder(&watched.id)
            .map_err(PassError::from_box)?;
        let Some(processed) = items.iter().find_map(|item| match item {
            BoxItem::Folder(folder) if &folder.name == processed_name => Some(folder.id.clone()),
            _ => None,
        }) else {
            continue;
        };
        for item in services
            .box_client
            .list_folder(&processed)
            .map_err(PassError::from_box)?
        {
            if let BoxItem::Folder(folder) = item {
                if let Ok(date) = folder.name.parse::<jiff::civil::Date>() {
                    if date < cutoff {
                        due.push(ArchiveFolder {
                            watched: watched.name.clone(),
                            date: folder.name.clone(),
                            id: folder.id.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, age_secs: u64) -> TempFile {
        TempFile {
            path: PathBuf::from(name),
            size,
            age_secs,
        }
    }

    #[test]
    fn expired_files_go_then_the_oldest_until_under_the_cap() {
        let plan = plan_temp(
            vec![
                file("fresh", 50, 10),
                file("old", 10, 100_000),
                file("older-than-an-hour", 40, 7200),
                file("two-hours", 30, 3 * 3600),
            ],
            86_400,
            60,
        );
        assert_eq!(plan.expired, vec![file("old", 10, 100_000)]);
        assert_eq!(
            plan.over_cap,
            vec![
                file("two-hours", 30, 3 * 3600),
                file("older-than-an-hour", 40, 7200)
            ],
            "oldest first until at most 60 bytes remain"
        );
        assert_eq!(plan.bytes_left, 50);
        assert!(!plan.cap_not_met);
    }

    #[test]
    fn files_in_use_are_never_removed_for_the_cap() {
        let plan = plan_temp(vec![file("downloading", 500, 30)], 86_400, 100);
        assert!(plan.over_cap.is_empty());
        assert!(plan.cap_not_met);
        assert_eq!(plan.bytes_left, 500);
    }

    #[test]
    fn scan_finds_only_our_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["cs-abc", ".box-download-x", "box-token.json", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"12345").unwrap();
        }
        std::fs::create_dir(dir.path().join("cs-dir")).unwrap();
        let mut names: Vec<String> = scan_temp(dir.path())
            .unwrap()
            .into_iter()
            .map(|file| file.path.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [".box-download-x", "cs-abc"]);
        assert!(scan_temp(&dir.path().join("absent")).unwrap().is_empty());
    }
}
