//! `reprocess status` (design.md §6): the dashboard figures and, per binary, the last successful
//! pass and its age, flagged when older than `status.max_pass_age_minutes` (a stopped cron must
//! be visible). Text or JSON on stdout; with `check` the exit code says whether something needs
//! attention (for monitoring: Nagios/Zabbix/systemd `OnFailure=`).
//!
//! Needs only the configuration and the database (no Box, no DAM), so it still answers when
//! those are down. Ages are computed with the database clock.

use serde::Serialize;

use std::process::ExitCode;

use super::operator::say;
use super::PassError;
use crate::config::Config;
use crate::entry::{self, CommonOptions, Exit};
use crate::store::admin::{BinaryRuns, StatusFigures};
use crate::store::{RunOutcome, Store, StoreError};

/// One binary's passes, judged against its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassStatus {
    /// What `runs` says.
    #[serde(flatten)]
    pub runs: BinaryRuns,
    /// `status.max_pass_age_minutes` for it; `None` = not monitored.
    pub max_age_minutes: Option<u64>,
    /// The last successful pass is older than the threshold, or there was none.
    pub stale: bool,
}

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The environment of the configuration.
    pub environment: String,
    /// Dashboard figures.
    pub figures: StatusFigures,
    /// Per binary, monitored ones first.
    pub passes: Vec<PassStatus>,
    /// What needs attention, one sentence each (empty = all well).
    pub attention: Vec<String>,
}

/// Reads the figures and judges them: see [`evaluate`].
///
/// # Errors
/// Database errors.
pub fn gather(store: &mut Store, config: &Config) -> Result<StatusReport, StoreError> {
    let figures = store.status_figures()?;
    let runs = store.binary_runs()?;
    Ok(evaluate(config, figures, runs))
}

/// Judges the figures: a monitored binary (threshold > 0) with no successful pass, or one older
/// than its threshold, is stale; an undelivered notification older than
/// `status.max_outbox_age_minutes` needs attention. Files in `_errors/` do not (they are the
/// agencies' to fix, and each was reported by email).
pub fn evaluate(config: &Config, figures: StatusFigures, runs: Vec<BinaryRuns>) -> StatusReport {
    let mut attention = Vec::new();
    let mut passes = Vec::new();
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
        let stale = found
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
                sentence.push_str(&format!(" Its last pass ended {outcome}: {error}"));
            }
            attention.push(sentence);
        }
        passes.push(PassStatus {
            runs: found,
            max_age_minutes: Some(*minutes),
            stale,
        });
    }
    for run in runs {
        if !passes.iter().any(|pass| pass.runs.binary == run.binary) {
            passes.push(PassStatus {
                runs: run,
                max_age_minutes: None,
                stale: false,
            });
        }
    }
    let outbox_limit =
        i64::try_from(config.status.max_outbox_age_minutes.saturating_mul(60)).unwrap_or(i64::MAX);
    if let Some(age) = figures.outbox_oldest_age_secs {
        if age > outbox_limit {
            attention.push(format!(
                "outbox: {} undelivered, the oldest for {} (threshold {} min): see `reprocess notifications --dry-run`",
                figures.outbox_backlog,
                age_text(age),
                config.status.max_outbox_age_minutes
            ));
        }
    }
    StatusReport {
        environment: config.environment.clone(),
        figures,
        passes,
        attention,
    }
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

/// The report as text lines.
pub fn render_text(report: &StatusReport) -> Vec<String> {
    let figures = &report.figures;
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
    let mut lines = vec![
        format!(
            "content-scaling status (environment {})",
            report.environment
        ),
        format!(
            "masters:      {} ({} in Box, {} failed)",
            figures.masters, figures.masters_uploaded, figures.masters_failed
        ),
        format!(
            "derivatives:  {} delivered, {} in progress",
            figures.derivatives_delivered, figures.derivatives_in_progress
        ),
        format!("campaigns:    {campaigns}"),
        format!(
            "last 24 h:    {} derivatives delivered to the DAM, {} masters uploaded to Box",
            figures.derivatives_last_24h, figures.masters_last_24h
        ),
        format!(
            "_errors:      {} files (`reprocess errors --dry-run` lists them)",
            figures.files_in_errors
        ),
        format!(
            "retry:        {} files waiting for a retry",
            figures.files_waiting_retry
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
        "passes:".to_string(),
    ];
    for pass in &report.passes {
        let last = match (&pass.runs.last_success_at, pass.runs.last_success_age_secs) {
            (Some(at), Some(age)) => format!(
                "last success {} ago ({})",
                age_text(age),
                at.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => "never succeeded".to_string(),
        };
        let judgement = match (pass.max_age_minutes, pass.stale) {
            (Some(minutes), true) => format!("STALE (threshold {minutes} min)"),
            (Some(minutes), false) => format!("ok (threshold {minutes} min)"),
            (None, _) => "not monitored".to_string(),
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
        lines.extend(report.attention.iter().map(|item| format!("  - {item}")));
    }
    lines
}

/// Options of `reprocess status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOptions {
    /// JSON on stdout instead of text.
    pub json: bool,
    /// Exit 1 when something needs attention.
    pub check: bool,
}

/// Runs `status` (through [`crate::entry::run`]) and returns the exit code: 0 (with `check`:
/// and nothing needs attention), 1 something needs attention (`check`) or the figures cannot be
/// read, 2 configuration error, 75 database unreachable.
pub fn run(options: &CommonOptions, status: StatusOptions) -> ExitCode {
    entry::run("reprocess status", options, |config| {
        let mut store = Store::connect_database(&config.database)?;
        store.migrate()?;
        let report = gather(&mut store, &config)?;
        if status.json {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|error| PassError::Failed(format!("cannot encode JSON: {error}")))?;
            say(&text);
        } else {
            for line in render_text(&report) {
                say(&line);
            }
        }
        Ok(Exit::success_if(
            !status.check || report.attention.is_empty(),
        ))
    })
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

    #[test]
    fn stale_and_missing_passes_need_attention() {
        let config = config();
        let report = evaluate(
            &config,
            StatusFigures::default(),
            vec![
                runs("a1-to-a2", Some(60)),
                runs("box-poll", Some(42 * 60)),
                runs("reprocess", Some(99_999)),
            ],
        );
        let stale: Vec<&str> = report
            .passes
            .iter()
            .filter(|pass| pass.stale)
            .map(|pass| pass.runs.binary.as_str())
            .collect();
        assert_eq!(stale, ["box-poll", "cleanup"]);
        assert_eq!(report.attention.len(), 2, "{:?}", report.attention);
        assert!(
            report.attention[0]
                .contains("box-poll: its last successful pass was 42 min ago (threshold 5 min)"),
            "{:?}",
            report.attention
        );
        assert!(report.attention[0].contains("Box unreachable"));
        assert!(report.attention[1].contains("cleanup: it never completed a pass"));
        let reprocess = report
            .passes
            .iter()
            .find(|pass| pass.runs.binary == "reprocess")
            .expect("unmonitored binaries are listed too");
        assert_eq!(reprocess.max_age_minutes, None);
        let text = render_text(&report).join("\n");
        assert!(text.contains("STALE (threshold 5 min)"), "{text}");
        assert!(text.contains("not monitored"), "{text}");
    }

    #[test]
    fn old_outbox_needs_attention() {
        let config = config();
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
        assert!(evaluate(&config, figures.clone(), all_fresh.clone())
            .attention
            .is_empty());
        let figures = StatusFigures {
            outbox_oldest_age_secs: Some(61 * 60),
            ..figures
        };
        let report = evaluate(&config, figures, all_fresh);
        assert_eq!(report.attention.len(), 1);
        assert!(report.attention[0].starts_with("outbox: 2 undelivered, the oldest for 1 h 01 min"));
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
