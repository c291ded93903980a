//! `box-setup check-config`: prints what [`crate::config::check`] found, offline.
//!
//! - text: one `error:` / `warning:` line per problem (`{file}:{line}: {key}: {message}`) with a
//!   `  hint:` line under it, then the missing variables with where each is used, then a
//!   summary; or `configuration ok (N files, M variables)`.
//! - `--json`: one object `{"ok", "files", "variables", "missing_variables", "problems"}`.
//! - `--show`: the effective merged configuration, one `key = value  # origin` line per value
//!   (origin: `file:line`, and `$VAR` for each variable it uses), secrets as `****`; with
//!   `--json` an object `{"values": [{key, value, redacted, file, line, variables}], ...}`.
//! - `--env-example`: the generated `.env.example` of the config directory.
//!
//! Exit codes: 0 no error (warnings allowed), 2 any error.

use std::path::Path;

use super::operator::say;
use crate::config::{self, CheckReport, Severity};
use crate::entry::Exit;

/// What `check-config` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckConfigOutput {
    /// Print the effective configuration too.
    pub show: bool,
    /// JSON instead of text.
    pub json: bool,
    /// Print the generated `.env.example` instead.
    pub env_example: bool,
}

/// Runs `check-config` for `config_dir` and `environment` (the deployment's `.env` loaded
/// first, as every binary does) and prints the result; the exit status (see the module docs).
pub fn run(config_dir: &Path, environment: Option<&str>, output: CheckConfigOutput) -> Exit {
    if output.env_example {
        return match config::env_example(config_dir) {
            Ok(text) => {
                say(text.trim_end());
                Exit::Success
            }
            Err(error) => {
                say(&format!("error: {error}"));
                Exit::Configuration
            }
        };
    }
    let report = config::check_deployment(config_dir, environment);
    if output.json {
        let mut json = report_json(&report);
        if output.show {
            json["values"] = report
                .shown
                .iter()
                .map(|value| {
                    serde_json::json!({
                        "key": value.key,
                        "value": value.value,
                        "redacted": value.redacted,
                        "file": value.file.display().to_string(),
                        "line": value.line,
                        "variables": value.variables,
                    })
                })
                .collect();
        }
        say(&json.to_string());
    } else {
        if output.show {
            print_values(&report);
        }
        print_report(&report);
    }
    if report.is_ok() {
        Exit::Success
    } else {
        Exit::Configuration
    }
}

/// The report as JSON (see the module docs).
pub fn report_json(report: &CheckReport) -> serde_json::Value {
    let missing: Vec<serde_json::Value> = report
        .missing_variables()
        .into_iter()
        .map(|(name, uses)| {
            serde_json::json!({
                "variable": name,
                "used_by": uses.iter().map(|problem| serde_json::json!({
                    "file": problem.error.file().display().to_string(),
                    "line": problem.line,
                    "key": problem.key(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "ok": report.is_ok(),
        "files": report.files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>(),
        "variables": report.variables.keys().collect::<Vec<_>>(),
        "missing_variables": missing,
        "problems": report.problems.iter().map(config::Problem::to_json).collect::<Vec<_>>(),
    })
}

/// Prints every problem with its hint, the missing variables, and a summary line (text).
pub fn print_report(report: &CheckReport) {
    for problem in &report.problems {
        let place = match problem.line {
            Some(line) => format!("{}:{line}", problem.error.file().display()),
            None => problem.error.file().display().to_string(),
        };
        say(&format!(
            "{}: {place}: {}: {}",
            problem.severity.as_str(),
            problem.key(),
            problem.message()
        ));
        say(&format!("  hint: {}", problem.hint));
    }
    let missing = report.missing_variables();
    if !missing.is_empty() {
        say(&format!("missing variables ({}):", missing.len()));
        for (name, uses) in &missing {
            let places: Vec<String> = uses
                .iter()
                .map(|problem| format!("{} {}", problem.error.file().display(), problem.key()))
                .collect();
            say(&format!("  {name}: used by {}", places.join("; ")));
        }
    }
    let errors = report.errors().count();
    let warnings = report
        .problems
        .iter()
        .filter(|problem| problem.severity == Severity::Warning)
        .count();
    if errors == 0 {
        let mut line = format!(
            "configuration ok ({} files, {} variables)",
            report.files.len(),
            report.variables.len()
        );
        if warnings > 0 {
            line.push_str(&format!(", {warnings} warnings"));
        }
        say(&line);
    } else {
        say(&format!(
            "check-config: {errors} problems{} in {} files; nothing was contacted",
            if warnings > 0 {
                format!(" and {warnings} warnings")
            } else {
                String::new()
            },
            report.files.len()
        ));
    }
}

/// `key = value  # origin` per effective value (text `--show`).
fn print_values(report: &CheckReport) {
    say(
        "# effective configuration (secrets as ****; keys not listed take their built-in defaults)",
    );
    for value in &report.shown {
        say(&format!(
            "{} = {}  # {}",
            value.key,
            value.value,
            value.origin()
        ));
    }
}
