//! The status page of `reprocess status --html FILE`: one self-contained HTML file (inline CSS,
//! inline SVG, no script, no external asset) for a web root, refreshed every minute by cron or a
//! systemd timer. Rendered with minijinja (HTML auto-escaping: every value from the database or
//! Box is escaped) from a view of the [`StatusReport`], and written atomically (a temporary file
//! in the same directory, renamed over the page) so a browser never reads half a page.
//!
//! Accessibility: landmarks and headings, tables with headers, `<progress>` elements with their
//! value in text too, the timeline as an SVG with a title and a text table beside it, colours
//! never the only carrier of meaning (every state is also a word).

use std::io::Write;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::status::{age_text, FileEntry, StatusReport, Verdict, HISTORY_HOURS};
use super::PassError;
use crate::store::admin::FileListKind;

/// The page template (`status_page.html`, next to this file).
const TEMPLATE: &str = include_str!("status_page.html");

/// Width of the timeline's drawing area and of its label column, SVG user units.
const TIMELINE_WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 100.0;
const ROW_HEIGHT: f64 = 26.0;

#[derive(Debug, Serialize)]
struct View<'a> {
    report: &'a StatusReport,
    generated_at: String,
    verdict: &'static str,
    verdict_class: &'static str,
    schema_message: Option<String>,
    campaigns: Vec<CampaignView>,
    folders: Vec<FolderView>,
    errors: Vec<FileView>,
    retries: Vec<FileView>,
    passes: Vec<PassView>,
    timeline: Timeline,
}

#[derive(Debug, Serialize)]
struct CampaignView {
    number: String,
    name: String,
    status: String,
    masters_total: i64,
    masters_in_box: i64,
    with_derivative: i64,
}

#[derive(Debug, Serialize)]
struct FolderView {
    name: String,
    id: String,
    health: &'static str,
    state: &'static str,
    listed: String,
    error: Option<String>,
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
struct FileView {
    id: String,
    name: String,
    folder: String,
    error: String,
    command: String,
    before: Option<String>,
    when: String,
}

#[derive(Debug, Serialize)]
struct PassView {
    binary: String,
    last_success: String,
    judgement: String,
    class: &'static str,
    completed: usize,
    failed: usize,
}

#[derive(Debug, Serialize)]
struct Timeline {
    width: f64,
    height: f64,
    label_width: f64,
    rows: Vec<TimelineRow>,
    ticks: Vec<Tick>,
    description: String,
}

#[derive(Debug, Serialize)]
struct TimelineRow {
    label: String,
    y: f64,
    bars: Vec<Bar>,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    width: f64,
    class: &'static str,
    title: String,
}

#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    label: String,
}

/// Renders the page.
///
/// # Errors
/// [`PassError::Failed`] when the template fails to render (a bug).
pub fn render(report: &StatusReport) -> Result<String, PassError> {
    let mut environment = minijinja::Environment::new();
    // Every value is escaped for HTML (file names, errors and folder names come from outside).
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    environment
        .add_template("status.html", TEMPLATE)
        .map_err(|error| PassError::Failed(format!("status page template: {error}")))?;
    let template = environment
        .get_template("status.html")
        .map_err(|error| PassError::Failed(format!("status page template: {error}")))?;
    template
        .render(minijinja::Value::from(minijinja::value::Serde(view(
            report,
        ))))
        .map_err(|error| PassError::Failed(format!("status page: {error}")))
}

/// Renders the page and writes it to `path` atomically (a temporary file in the same directory,
/// mode 0644 so a web server can read it, renamed over `path`).
///
/// # Errors
/// [`PassError::Setup`] when the directory is missing or not writable (with the path).
pub fn write(path: &Path, report: &StatusReport) -> Result<(), PassError> {
    let page = render(report)?;
    let dir = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let failed = |error: std::io::Error| {
        PassError::setup_with_hint(
            format!("cannot write the status page {}: {error}", path.display()),
            format!(
                "create {} and let this user write it (the page is replaced atomically there)",
                dir.display()
            ),
        )
    };
    let mut file = tempfile::Builder::new()
        .prefix(".status-page.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(failed)?;
    file.write_all(page.as_bytes()).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(failed)?;
    }
    file.persist(path).map_err(|error| failed(error.error))?;
    Ok(())
}

fn view(report: &StatusReport) -> View<'_> {
    let verdict_class = match report.verdict {
        Verdict::Ok => "ok",
        Verdict::Warning => "warning",
        Verdict::Critical => "critical",
        Verdict::Unknown => "unknown",
    };
    let schema_message = report.figures.is_none().then(|| {
        report
            .attention
            .first()
            .map(|item| item.text.clone())
            .unwrap_or_default()
    });
    let files = |kind: FileListKind| -> Vec<FileView> {
        report
            .files
            .iter()
            .filter(|entry| entry.file.list == kind)
            .map(file_view)
            .collect()
    };
    View {
        report,
        generated_at: report
            .generated_at
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        verdict: report.verdict.label(),
        verdict_class,
        schema_message,
        campaigns: report
            .campaigns
            .iter()
            .map(|campaign| CampaignView {
                number: campaign.campaign_number.clone(),
                name: campaign.campaign_name.clone(),
                status: campaign.status.clone(),
                masters_total: campaign.masters_total,
                masters_in_box: campaign.masters_in_box,
                with_derivative: campaign.masters_with_derivative,
            })
            .collect(),
        folders: report
            .folders
            .iter()
            .map(|folder| {
                let record = folder.record.as_ref();
                FolderView {
                    name: folder.name.clone(),
                    id: folder.folder_id.clone(),
                    health: folder.health,
                    state: match folder.health {
                        "ok" => "OK",
                        "error" => "Error",
                        _ => "Not listed yet",
                    },
                    listed: folder.last_listed().unwrap_or_else(|| "never".to_string()),
                    error: record
                        .filter(|_| folder.health == "error")
                        .and_then(|record| record.last_error.clone()),
                    hint: record
                        .filter(|_| folder.health == "error")
                        .and_then(|record| record.last_error_hint.clone()),
                }
            })
            .collect(),
        errors: files(FileListKind::InErrors),
        retries: files(FileListKind::WaitingRetry),
        passes: report
            .passes
            .iter()
            .map(|pass| {
                let runs = report
                    .history
                    .iter()
                    .filter(|record| record.binary == pass.runs.binary);
                let (completed, failed) = runs.fold((0, 0), |(ok, bad), record| {
                    match record.outcome.as_deref() {
                        Some("completed") => (ok + 1, bad),
                        Some(_) => (ok, bad + 1),
                        None => (ok, bad),
                    }
                });
                PassView {
                    binary: pass.runs.binary.clone(),
                    last_success: match pass.runs.last_success_age_secs {
                        Some(age) => format!("{} ago", age_text(age)),
                        None => "never".to_string(),
                    },
                    judgement: match (pass.max_age_minutes, pass.stale, pass.not_due_yet) {
                        (Some(_), _, true) => "Not due yet".to_string(),
                        (Some(minutes), true, _) => format!("Stale (threshold {minutes} min)"),
                        (Some(minutes), false, _) => format!("On time (threshold {minutes} min)"),
                        (None, _, _) => "Not monitored".to_string(),
                    },
                    class: if pass.stale { "critical" } else { "ok" },
                    completed,
                    failed,
                }
            })
            .collect(),
        timeline: timeline(report),
    }
}

fn file_view(entry: &FileEntry) -> FileView {
    FileView {
        id: entry.file.file_id.clone(),
        name: entry.file.name.clone(),
        folder: entry
            .watched_folder_name
            .clone()
            .unwrap_or_else(|| entry.file.watched_folder_id.clone()),
        error: entry.error_line.clone(),
        command: entry.command.clone(),
        before: entry.before.clone(),
        when: entry
            .file
            .updated_at
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string(),
    }
}

/// A row count as a coordinate factor (a handful of binaries; saturates absurd counts).
fn small_f64(count: usize) -> f64 {
    f64::from(u32::try_from(count).unwrap_or(u32::MAX))
}

/// The passes of the last [`HISTORY_HOURS`] hours as bars on one row per binary.
fn timeline(report: &StatusReport) -> Timeline {
    let end = report.generated_at;
    let window_secs = f64::from(HISTORY_HOURS) * 3600.0;
    let start = end
        .checked_sub(SignedDuration::from_hours(i64::from(HISTORY_HOURS)))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let x_of = |at: Timestamp| -> f64 {
        let secs = at
            .duration_since(start)
            .as_secs_f64()
            .clamp(0.0, window_secs);
        LABEL_WIDTH + secs / window_secs * TIMELINE_WIDTH
    };
    let mut binaries: Vec<String> = report
        .passes
        .iter()
        .map(|pass| pass.runs.binary.clone())
        .collect();
    for record in &report.history {
        if !binaries.contains(&record.binary) {
            binaries.push(record.binary.clone());
        }
    }
    let rows: Vec<TimelineRow> = binaries
        .iter()
        .enumerate()
        .map(|(index, binary)| {
            let y = 10.0 + ROW_HEIGHT * small_f64(index);
            let bars = report
                .history
                .iter()
                .filter(|record| &record.binary == binary)
                .map(|record| {
                    let x = x_of(record.started_at);
                    let until = record.finished_at.unwrap_or(end);
                    let width = (x_of(until) - x).max(2.0);
                    let (class, word) = match record.outcome.as_deref() {
                        Some("completed") => ("ok", "completed"),
                        Some("dependency_unreachable") => ("warning", "dependency unreachable"),
                        Some("lock_held") => ("ok", "lock held"),
                        Some(_) => ("critical", "failed"),
                        None if record.finished_at.is_none() => ("running", "running or killed"),
                        None => ("warning", "unknown"),
                    };
                    Bar {
                        x,
                        width,
                        class,
                        title: format!(
                            "{binary} {} UTC: {word}",
                            record.started_at.strftime("%Y-%m-%d %H:%M:%S")
                        ),
                    }
                })
                .collect();
            TimelineRow {
                label: binary.clone(),
                y,
                bars,
            }
        })
        .collect();
    let height = 10.0 + ROW_HEIGHT * small_f64(rows.len().max(1)) + 24.0;
    let ticks = (0..=4)
        .map(|step| {
            let hours_ago = HISTORY_HOURS - step * HISTORY_HOURS / 4;
            Tick {
                x: LABEL_WIDTH + f64::from(step) / 4.0 * TIMELINE_WIDTH,
                label: if hours_ago == 0 {
                    "now".to_string()
                } else {
                    format!("-{hours_ago} h")
                },
            }
        })
        .collect();
    Timeline {
        width: LABEL_WIDTH + TIMELINE_WIDTH + 10.0,
        height,
        label_width: LABEL_WIDTH,
        description: format!(
            "{} passes in the last {HISTORY_HOURS} hours, one row per program; green completed, red failed, amber a dependency unreachable, grey running",
            report.history.len()
        ),
        rows,
        ticks,
    }
}
