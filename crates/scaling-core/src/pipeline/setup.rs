//! `box-setup` (design.md §1 step 6): the onboarding runbook as commands, for admins.
//!
//! - `list-folder <id>`: `Folder <id> contains N items:` then one line per item (type, id, name).
//! - `check`: for `box.root_folder_id` and every watched folder, the service account can read it
//!   and create subfolders (the Editor role). In a watched folder that is proven by creating
//!   (and keeping) `_PROCESSED` and `_errors`; in the root folder, where nothing is created,
//!   by asking Box to create a folder named like an existing subfolder: 409 (the name is taken)
//!   means the create was allowed, 403 that it was not. Each failure comes with its fix: 403 ->
//!   invite the service account as Editor; 404 (Box's answer both for a wrong ID and for a
//!   folder the service account is not a collaborator on) -> check the ID in the named config
//!   key, or invite the service account.
//! - `ensure-folders`: `_PROCESSED` and `_errors` in every watched folder (idempotent).
//! - `check-config`: the configuration checked offline, every problem at once
//!   ([`super::check_config`]).
//! - `doctor`: `.env` permissions, then `check-config` (stops there, exit 2, on a configuration
//!   error), then database (reachable, migrated), Box token, DAM login, Mailgun (when email is
//!   enabled), ffprobe, temp dir: one `ok`/`FAIL` line each naming the URL it tried, every `FAIL`
//!   with its fix. Each network check is one attempt (no retries) with a 3 s connect and 5 s read
//!   timeout; log lines are held back until the report is printed.
//! - `install-dirs`: the log directory the crontab writes to (default
//!   `/var/log/content-scaling`), mode 0750 (idempotent).
//!
//! Results go to stdout (`--json` on `check` and `doctor`: one JSON document). Exit codes: 0
//! everything ok, 1 a check failed (for `doctor` also an unreachable dependency), 2
//! configuration error, 75 Box unreachable (`list-folder`, `check`, `ensure-folders`).

use std::path::{Path, PathBuf};

use std::process::ExitCode;

use super::operator::say;
use super::{agent, box_client, PassError};
use crate::boxapi::{BoxAppConfig, BoxClient, BoxError, BoxItem};
use crate::config::{self, Config};
use crate::dam::DamClient;
use crate::entry::{self, CommonOptions, Exit};
use crate::store::Store;

/// A `box-setup` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupCommand {
    /// List a Box folder.
    ListFolder {
        /// Box folder id.
        folder_id: String,
    },
    /// Check access to every configured folder.
    Check {
        /// One JSON document instead of lines.
        json: bool,
    },
    /// Create `_PROCESSED` and `_errors` in every watched folder.
    EnsureFolders {
        /// Only say which are missing.
        dry_run: bool,
    },
    /// Check the whole installation.
    Doctor {
        /// One JSON document instead of lines.
        json: bool,
    },
    /// Check the configuration offline (see [`super::check_config`]).
    CheckConfig(super::check_config::CheckConfigOutput),
    /// Create the log directory (mode 0750) when missing.
    InstallDirs {
        /// The directory (the crontab's, default `/var/log/content-scaling`).
        log_dir: PathBuf,
        /// The service user who must write it (run as root): the directory is given to this
        /// user and its primary group.
        owner: Option<String>,
    },
    /// Check the DAM's `dam.api` assumptions against the real server (see
    /// [`super::dam_check`]).
    DamCheck {
        /// A scratch folder to write to (status field, a small test import); `None`: read-only.
        write_test_folder: Option<String>,
    },
}

/// Runs a `box-setup` command (through [`crate::entry::run`]; `doctor` through
/// [`crate::entry::run_unconfigured`]) and returns the exit code (see the module docs).
pub fn run(options: &CommonOptions, command: &SetupCommand) -> ExitCode {
    match command {
        SetupCommand::Doctor { json } => {
            return entry::run_unconfigured(BINARY, options, |options| Ok(doctor(options, *json)));
        }
        SetupCommand::CheckConfig(output) => {
            return entry::run_unconfigured(BINARY, options, |options| {
                Ok(super::check_config::run(
                    &options.config_dir,
                    options.environment.as_deref(),
                    *output,
                ))
            });
        }
        SetupCommand::InstallDirs { log_dir, owner } => {
            return entry::run_unconfigured(BINARY, options, |_| {
                Ok(install_dirs(log_dir, owner.as_deref()))
            });
        }
        _ => {}
    }
    if let SetupCommand::DamCheck { write_test_folder } = command {
        return entry::run(BINARY, options, |config| {
            let dam_agent = agent(
                config.dam.connect_timeout_secs,
                config.dam.read_timeout_secs,
            );
            let dam = DamClient::new(&config.dam, dam_agent);
            let all_ok = super::dam_check::run(&config, &dam, write_test_folder.as_deref());
            dam.logout();
            Ok(Exit::success_if(all_ok?))
        });
    }
    entry::run(BINARY, options, |config| {
        let client = box_client(&config)?;
        let all_ok = match command {
            SetupCommand::ListFolder { folder_id } => list_folder(&client, folder_id)?,
            SetupCommand::Check { json } => {
                let mut checks = Checks::new(*json);
                let all_ok = check(&config, &client, &mut checks)?;
                checks.print_json(serde_json::json!({}));
                all_ok
            }
            SetupCommand::EnsureFolders { dry_run } => ensure_folders(&config, &client, *dry_run)?,
            SetupCommand::Doctor { .. }
            | SetupCommand::DamCheck { .. }
            | SetupCommand::CheckConfig(_)
            | SetupCommand::InstallDirs { .. } => true,
        };
        Ok(Exit::success_if(all_ok))
    })
}

/// Binary name in error lines.
const BINARY: &str = "box-setup";

/// True when a Box error stops the command (exit 75 or 2) instead of failing one check: Box
/// unreachable, or the app's credentials refused.
fn stops_the_command(error: &BoxError) -> bool {
    error.is_transient() || matches!(error, BoxError::Auth { .. })
}

fn list_folder(client: &BoxClient, folder_id: &str) -> Result<bool, PassError> {
    let items = client.list_folder(folder_id).map_err(PassError::from_box)?;
    say(&format!(
        "Folder {folder_id} contains {} items:",
        items.len()
    ));
    for item in &items {
        let kind = match item {
            BoxItem::File(_) => "file",
            BoxItem::Folder(_) => "folder",
            BoxItem::Other { .. } => "other",
        };
        say(&format!("  {kind:<6} {:<14} {}", item.id(), item.name()));
    }
    Ok(true)
}

/// `ok` / `FAIL` line with an optional fix on the next line.
fn report(ok: bool, subject: &str, detail: &str, fix: Option<&str>) {
    say(&format!(
        "{} {subject}: {detail}",
        if ok { "ok  " } else { "FAIL" }
    ));
    if let Some(fix) = fix {
        say(&format!("     fix: {fix}"));
    }
}

/// Check results: printed as they come ([`report`] lines), or kept for one JSON document.
struct Checks {
    json: bool,
    results: Vec<serde_json::Value>,
    all_ok: bool,
}

impl Checks {
    fn new(json: bool) -> Self {
        Checks {
            json,
            results: Vec::new(),
            all_ok: true,
        }
    }

    /// One check: `subject` (`database`, `Box`, a folder), `detail`, the URL tried (shown as
    /// `(URL)` after the detail), the fix of a failure.
    fn add(&mut self, ok: bool, subject: &str, detail: &str, url: Option<&str>, fix: Option<&str>) {
        self.all_ok &= ok;
        if self.json {
            self.results.push(serde_json::json!({
                "subject": subject,
                "ok": ok,
                "detail": detail,
                "url": url,
                "fix": fix,
            }));
        } else {
            let detail = match url {
                Some(url) => format!("{detail} ({url})"),
                None => detail.to_string(),
            };
            report(ok, subject, &detail, fix);
        }
    }

    /// With `--json`: `{"ok", "checks": [{subject, ok, detail, url, fix}], ...extra}`.
    fn print_json(&self, extra: serde_json::Value) {
        if !self.json {
            return;
        }
        let mut document = serde_json::json!({ "ok": self.all_ok, "checks": self.results });
        if let (Some(document), Some(extra)) = (document.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                document.insert(key.clone(), value.clone());
            }
        }
        say(&document.to_string());
    }
}

/// A configured folder: its id and the config key that names it.
struct ConfiguredFolder {
    id: String,
    key: String,
    label: String,
    watched: bool,
}

fn configured_folders(config: &Config) -> Vec<ConfiguredFolder> {
    let mut folders = vec![ConfiguredFolder {
        id: config.box_api.root_folder_id.clone(),
        key: "box.root_folder_id".to_string(),
        label: format!(
            "folder {} (box.root_folder_id, campaign root)",
            config.box_api.root_folder_id
        ),
        watched: false,
    }];
    for (index, folder) in config.box_api.watched_folders.iter().enumerate() {
        folders.push(ConfiguredFolder {
            id: folder.id.clone(),
            key: format!("box.watched_folders[{index}].id"),
            label: format!("folder {} (watched folder {})", folder.id, folder.name),
            watched: true,
        });
    }
    folders
}

/// The fix for a Box error on a configured folder, by status; `None` for other errors.
fn access_fix(config: &Config, error: &BoxError, folder: &ConfiguredFolder) -> Option<String> {
    match error.status() {
        Some(403) => Some(format!(
            "invite the service account of the Box app {} (its login, AutomationUser_…@boxdevedition.com, is shown in the Box Admin Console under Apps) as Editor on folder {}",
            app_client_id(config).unwrap_or_else(|| "(see box.app_config_file)".to_string()),
            folder.id
        )),
        // Box answers 404 both for an ID that does not exist and for a folder the service
        // account is not a collaborator on (it does not reveal the folder; Box OpenAPI spec,
        // GET /folders/{folder_id}): say both.
        Some(404) => Some(format!(
            "Box does not show folder {id} to the service account: either {id} in {key} is a wrong folder ID (copy the number at the end of the folder's Box URL), or the service account of the Box app {app} (its login, AutomationUser_…@boxdevedition.com, is shown in the Box Admin Console under Apps) is not a collaborator on it: invite it as Editor",
            id = folder.id,
            key = folder.key,
            app = app_client_id(config).unwrap_or_else(|| "(see box.app_config_file)".to_string()),
        )),
        _ => None,
    }
}

fn app_client_id(config: &Config) -> Option<String> {
    BoxAppConfig::load(&config.box_api.credentials)
        .ok()
        .map(|app| app.client_id)
}

/// Returns whether every check passed; `Err` only when Box is unreachable.
fn check(config: &Config, client: &BoxClient, checks: &mut Checks) -> Result<bool, PassError> {
    let mut all_ok = true;
    let mut report = |ok: bool, subject: &str, detail: &str, fix: Option<&str>| {
        checks.add(ok, subject, detail, None, fix);
    };
    for folder in configured_folders(config) {
        let items = match client.list_folder(&folder.id) {
            Ok(items) => items,
            Err(error) if stops_the_command(&error) => return Err(PassError::from_box(error)),
            Err(error) => {
                all_ok = false;
                let what = match error.status() {
                    Some(403) => "the service account cannot read it (403 Forbidden)".to_string(),
                    Some(404) => "not found (404)".to_string(),
                    _ => format!("cannot be read: {error}"),
                };
                report(
                    false,
                    &folder.label,
                    &what,
                    access_fix(config, &error, &folder).as_deref(),
                );
                continue;
            }
        };
        report(
            true,
            &folder.label,
            &format!("readable ({} items)", items.len()),
            None,
        );
        let created = if folder.watched {
            ensure_subfolders(config, client, &folder.id).map(|ids| {
                format!(
                    "can create subfolders ({} {}, {} {})",
                    config.box_api.processed_folder_name,
                    ids.0,
                    config.box_api.errors_folder_name,
                    ids.1
                )
            })
        } else {
            probe_create(client, &folder.id, &items)
        };
        match created {
            Ok(detail) => report(true, &folder.label, &detail, None),
            Err(error) if stops_the_command(&error) => return Err(PassError::from_box(error)),
            Err(error) => {
                all_ok = false;
                let what = match error.status() {
                    Some(403) => {
                        "the service account cannot create subfolders (403): it is not an Editor"
                            .to_string()
                    }
                    _ => format!("creating a subfolder failed: {error}"),
                };
                report(
                    false,
                    &folder.label,
                    &what,
                    access_fix(config, &error, &folder).as_deref(),
                );
            }
        }
    }
    Ok(all_ok)
}

/// Proves the right to create a folder in `folder_id` without creating one: asks for a folder
/// named like an existing subfolder, which Box answers with 409 (taken: the create was allowed;
/// the client returns the existing folder) or 403.
fn probe_create(
    client: &BoxClient,
    folder_id: &str,
    items: &[BoxItem],
) -> Result<String, BoxError> {
    let Some(existing) = items.iter().find_map(|item| match item {
        BoxItem::Folder(folder) => Some(folder),
        _ => None,
    }) else {
        return Ok(
            "create not checked: the folder has no subfolder to test with (a1-to-a2 creates the first campaign folder; a 403 then means: invite the service account as Editor)"
                .to_string(),
        );
    };
    let answer = client.create_folder(folder_id, &existing.name)?;
    Ok(if answer.id == existing.id {
        format!(
            "can create subfolders (checked with the existing name \"{}\", nothing created)",
            existing.name
        )
    } else {
        format!("can create subfolders (Box created \"{}\")", answer.name)
    })
}

/// `_PROCESSED` and `_errors` in `folder_id`, created when missing; their ids.
fn ensure_subfolders(
    config: &Config,
    client: &BoxClient,
    folder_id: &str,
) -> Result<(String, String), BoxError> {
    let processed = client.create_folder(folder_id, &config.box_api.processed_folder_name)?;
    let errors = client.create_folder(folder_id, &config.box_api.errors_folder_name)?;
    Ok((processed.id, errors.id))
}

fn ensure_folders(config: &Config, client: &BoxClient, dry_run: bool) -> Result<bool, PassError> {
    if dry_run {
        say("dry run: nothing will be changed");
    }
    let mut all_ok = true;
    for folder in configured_folders(config)
        .into_iter()
        .filter(|folder| folder.watched)
    {
        let result = if dry_run {
            client.list_folder(&folder.id).map(|items| {
                let missing: Vec<&String> = [
                    &config.box_api.processed_folder_name,
                    &config.box_api.errors_folder_name,
                ]
                .into_iter()
                .filter(|name| {
                    !items.iter().any(
                        |item| matches!(item, BoxItem::Folder(existing) if &existing.name == *name),
                    )
                })
                .collect();
                if missing.is_empty() {
                    "both subfolders exist".to_string()
                } else {
                    format!(
                        "would create {}",
                        missing
                            .iter()
                            .map(|name| name.as_str())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                }
            })
        } else {
            ensure_subfolders(config, client, &folder.id).map(|(processed, errors)| {
                format!(
                    "{} {processed}, {} {errors}",
                    config.box_api.processed_folder_name, config.box_api.errors_folder_name
                )
            })
        };
        match result {
            Ok(detail) => report(true, &folder.label, &detail, None),
            Err(error) if stops_the_command(&error) => return Err(PassError::from_box(error)),
            Err(error) => {
                all_ok = false;
                report(
                    false,
                    &folder.label,
                    &error.to_string(),
                    access_fix(config, &error, &folder).as_deref(),
                );
            }
        }
    }
    Ok(all_ok)
}

// ----- doctor -----

#[cfg(unix)]
fn shared_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn shared_mode(_path: &Path) -> Option<u32> {
    None
}

/// Seconds a doctor network check may take to connect: a doctor run reports a dependency that is
/// down at once instead of waiting through the passes' timeouts.
const DOCTOR_CONNECT_SECS: u64 = 3;
/// Seconds a doctor network check may wait for a reply.
const DOCTOR_READ_SECS: u64 = 5;

/// The configuration of the doctor's network checks: one attempt each (no retries: a retry
/// cycle is what a pass does, a doctor names the dependency at once), short timeouts, and a
/// database connect timeout.
fn doctor_config(config: &Config) -> Config {
    let mut quick = config.clone();
    quick.box_api.connect_timeout_secs = DOCTOR_CONNECT_SECS;
    quick.box_api.read_timeout_secs = DOCTOR_READ_SECS;
    quick.box_api.max_retries = 0;
    quick.dam.connect_timeout_secs = DOCTOR_CONNECT_SECS;
    quick.dam.read_timeout_secs = DOCTOR_READ_SECS;
    quick.dam.max_retries = 0;
    let url = config.database.url.expose();
    if url.contains("://") && !url.contains("connect_timeout=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        quick.database.url = crate::secret::Secret::new(format!(
            "{url}{separator}connect_timeout={DOCTOR_CONNECT_SECS}"
        ));
    }
    quick
}

/// The database URL without user info and parameters (`postgresql://host:5432/name`), for
/// messages; a key=value connection string is not shown.
fn shown_database_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => format!(
            "{}://{}{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default(),
            parsed.path()
        ),
        _ => "the database of DATABASE_URL / database.*".to_string(),
    }
}

/// Runs every check (see the module docs); [`Exit::Configuration`] when the configuration has
/// an error (the remaining checks need it), else [`Exit::Failure`] when a check failed.
fn doctor(options: &CommonOptions, json: bool) -> Exit {
    let mut checks = Checks::new(json);

    let dotenv = config::dotenv_path(&options.config_dir);
    if dotenv.is_file() {
        match shared_mode(&dotenv) {
            Some(mode) => checks.add(
                false,
                ".env",
                &format!(
                    "{} is readable by group or others (mode {mode:o}) but holds secrets",
                    dotenv.display()
                ),
                None,
                Some(&format!("chmod 600 {}", dotenv.display())),
            ),
            None => checks.add(
                true,
                ".env",
                &format!("{} is private", dotenv.display()),
                None,
                None,
            ),
        }
    } else {
        checks.add(
            true,
            ".env",
            "none (secrets come from the environment)",
            None,
            None,
        );
    }

    let mut report = config::check_deployment(&options.config_dir, options.environment.as_deref());
    let config = match report.config.take() {
        Some(config) if report.is_ok() => config,
        _ => {
            let errors = report.errors().count();
            checks.add(
                false,
                "config",
                &format!(
                    "{errors} problems in {} (box-setup check-config lists the same)",
                    options.config_dir.display()
                ),
                None,
                Some("correct every problem listed, then run doctor again"),
            );
            if json {
                checks.print_json(serde_json::json!({
                    "config": super::check_config::report_json(&report),
                }));
            } else {
                super::check_config::print_report(&report);
                say("(the remaining checks need a valid configuration)");
            }
            return Exit::Configuration;
        }
    };
    let warnings = report.problems.len();
    checks.add(
        true,
        "config",
        &format!(
            "{} is valid (environment {}); every variable it uses is set ({} files, {} variables{})",
            options.config_dir.display(),
            config.environment,
            report.files.len(),
            report.variables.len(),
            if warnings > 0 {
                format!("; {warnings} warnings: run box-setup check-config")
            } else {
                String::new()
            }
        ),
        None,
        None,
    );

    // The network checks: their log lines wait until the report is printed.
    super::operator::hold_logs();
    network_checks(&doctor_config(&config), &mut checks);
    local_checks(&config, &mut checks);

    if json {
        checks.print_json(serde_json::json!({}));
    } else if checks.all_ok {
        say("doctor: everything ok");
    } else {
        say("doctor: some checks failed (see the fixes above)");
    }
    super::operator::release_logs();
    Exit::success_if(checks.all_ok)
}

/// Database, Box, DAM and Mailgun, one attempt each with `config`'s (short) timeouts.
fn network_checks(config: &Config, checks: &mut Checks) {
    let database_url = shown_database_url(config.database.url.expose());
    match Store::connect_database(&config.database) {
        Ok(mut store) => {
            checks.add(true, "database", "reachable", Some(&database_url), None);
            match store.migration_state() {
                Ok(state) if state.pending.is_empty() => checks.add(
                    true,
                    "database",
                    &format!(
                        "migrated (schema version {})",
                        state.applied.last().copied().unwrap_or(0)
                    ),
                    None,
                    None,
                ),
                Ok(state) => checks.add(
                    false,
                    "database",
                    &format!("not migrated: missing {}", state.pending.join(", ")),
                    None,
                    Some("run any pass once (a1-to-a2 or box-poll migrate the database when they start)"),
                ),
                Err(error) => checks.add(
                    false,
                    "database",
                    &format!("cannot read the schema version: {error}"),
                    None,
                    Some("check that the database user may read the database (GRANT ... TO the user of DATABASE_URL)"),
                ),
            }
        }
        Err(error) => checks.add(
            false,
            "database",
            &error.to_string(),
            Some(&database_url),
            Some("check DATABASE_URL (or database.*) and that PostgreSQL runs and accepts this host (pg_hba.conf)"),
        ),
    }

    let folder_url = format!(
        "{}/2.0/folders/{}",
        config.box_api.base_url, config.box_api.root_folder_id
    );
    match box_client(config) {
        Ok(client) => match client.list_folder(&config.box_api.root_folder_id) {
            Ok(_) => checks.add(true, "Box", "token obtained; campaign root folder readable", Some(&folder_url), None),
            Err(error @ BoxError::Auth { .. }) => checks.add(
                false,
                "Box",
                &format!("no token: {error}"),
                Some(&config.box_api.oauth2_url),
                Some("check BOX_CONFIG_FILE (the app's JSON from the Developer Console) and that the app is authorized in the Admin Console"),
            ),
            Err(error) if matches!(error.status(), Some(403 | 404)) => checks.add(
                true,
                "Box",
                &format!("token obtained (the root folder answered {}: run `box-setup check`)", error.status().unwrap_or(0)),
                Some(&folder_url),
                None,
            ),
            Err(error) => checks.add(
                false,
                "Box",
                &error.to_string(),
                Some(&folder_url),
                Some("check box.base_url / box.oauth2_url and that this host can reach Box (proxy, firewall)"),
            ),
        },
        Err(error) => checks.add(
            false,
            "Box",
            &error.to_string(),
            None,
            Some("point BOX_CONFIG_FILE (box.app_config_file) at the app config JSON, readable by this user, with the key's passphrase"),
        ),
    }

    let dam_url = format!("{}{}", config.dam.base_url, crate::dam::API_PATH);
    let dam_agent = agent(
        config.dam.connect_timeout_secs,
        config.dam.read_timeout_secs,
    );
    let dam = DamClient::new(&config.dam, dam_agent);
    let model = &config.dam.campaign;
    match dam.search_folders_by_field(
        &model.status_field_id,
        &model.search_operator_id,
        &model.status_a1,
        1,
    ) {
        Ok(_) => checks.add(
            true,
            "DAM",
            "login works; campaign search answers",
            Some(&dam_url),
            None,
        ),
        Err(error) => {
            let fix = match &error {
                crate::dam::DamError::Auth(_) => "check DAM_USERNAME / DAM_PASSWORD (or the dam.auth OAuth2 keys)",
                error if error.is_transient() => "check dam.base_url and that this host can reach the DAM (the passes wait for it and retry)",
                _ => "check dam.campaign (status field and search operator) against the DAM's metadata model",
            };
            let detail = if error.is_transient() {
                "unreachable (one attempt, no retries)".to_string()
            } else {
                error.to_string()
            };
            checks.add(false, "DAM", &detail, Some(&dam_url), Some(fix));
        }
    }

    if config.email.enabled {
        let mailer =
            crate::notify::Mailer::new(&config.email, agent(DOCTOR_CONNECT_SECS, DOCTOR_READ_SECS));
        let events_url = format!(
            "{}/v3/{}/events",
            config.email.mailgun_base_url.trim_end_matches('/'),
            config.email.domain
        );
        let probe = mailer.message_id("box-setup-doctor");
        match mailer.accepted(&probe, jiff::Timestamp::now().as_second()) {
            Ok(_) => checks.add(true, "Mailgun", "the API accepts the key", Some(&events_url), None),
            Err(error) => checks.add(
                false,
                "Mailgun",
                &error.to_string(),
                Some(&events_url),
                Some("check MAILGUN_API_KEY / MAILGUN_DOMAIN (email.mailgun_base_url: https://api.eu.mailgun.net for EU domains) and that this host can reach Mailgun"),
            ),
        }
    }
}

/// The ffprobe install hint: the target is CentOS 7 (yum), newer RHEL-likes use dnf.
const FFPROBE_HINT: &str = "install ffmpeg (CentOS/RHEL: yum install ffmpeg, or dnf install ffmpeg, from RPM Fusion; or a static build from johnvansickle.com/ffmpeg copied to /usr/local/bin; Debian/Ubuntu: apt-get install ffmpeg), or set media.ffprobe_path (FFPROBE_PATH); cron's PATH must include its directory";

/// ffprobe and the temp dir.
fn local_checks(config: &Config, checks: &mut Checks) {
    match std::process::Command::new(&config.media.ffprobe_path)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            checks.add(true, "ffprobe", &version, None, None);
        }
        Ok(output) => checks.add(
            false,
            "ffprobe",
            &format!(
                "{} -version exited with {}",
                config.media.ffprobe_path, output.status
            ),
            None,
            Some(FFPROBE_HINT),
        ),
        Err(error) => checks.add(
            false,
            "ffprobe",
            &format!("{} cannot be run: {error}", config.media.ffprobe_path),
            None,
            Some(FFPROBE_HINT),
        ),
    }

    let temp_dir = &config.temp.dir;
    let writable = crate::tempdir::prepare(temp_dir)
        .map_err(|error| (error.to_string(), error.hint()))
        .and_then(|downloads| {
            tempfile::Builder::new()
                .prefix("cs-doctor-")
                .tempfile_in(&downloads)
                .map(drop)
                .map_err(|error| {
                    (
                        format!("{}: {error}", downloads.display()),
                        "free space or fix the permissions, or set temp.dir (CS_TEMP_DIR)"
                            .to_string(),
                    )
                })
        });
    match writable {
        Ok(()) => checks.add(
            true,
            "temp dir",
            &format!("{} is private and writable", temp_dir.display()),
            None,
            None,
        ),
        Err((detail, fix)) => checks.add(false, "temp dir", &detail, None, Some(&fix)),
    }
}

/// The log directory's mode: the service user writes, its group (admins, logrotate) reads.
const LOG_DIR_MODE: u32 = 0o750;

/// `install-dirs`: creates `log_dir` (and its parents) with mode 0750 when missing and, with
/// `owner` (a user name, looked up through NSS), gives it to that user and its primary group;
/// "nothing to do" when it is a directory with that owner already. [`Exit::Failure`] when it
/// cannot be created or given away, is a file, or the user does not exist.
fn install_dirs(log_dir: &Path, owner: Option<&str>) -> Exit {
    let fail = |what: String, hint: &str| {
        report(false, "log dir", &what, Some(hint));
        Exit::Failure
    };
    let owner = match owner.map(owner_ids).transpose() {
        Ok(owner) => owner,
        Err(problem) => {
            return fail(
                problem,
                "create the service user first (useradd --system content-scaling), or name an existing one",
            )
        }
    };
    let created = if log_dir.is_dir() {
        false
    } else if log_dir.exists() {
        return fail(
            format!("{} exists but is not a directory", log_dir.display()),
            "remove or rename it, or give another --log-dir (and the same path in the crontab)",
        );
    } else {
        if let Err(error) = create_private_dir(log_dir) {
            return fail(
                format!("cannot create {}: {error}", log_dir.display()),
                &format!(
                    "run it as root (sudo box-setup install-dirs --owner SERVICE_USER), or: sudo install -d -m 0750 -o SERVICE_USER {}",
                    log_dir.display()
                ),
            );
        }
        true
    };
    let mut changed_owner = None;
    if let Some((name, uid, gid)) = &owner {
        if current_owner(log_dir) != Some((*uid, *gid)) {
            if let Err(error) = std::os::unix::fs::chown(log_dir, Some(*uid), Some(*gid)) {
                return fail(
                    format!("cannot give {} to {name}: {error}", log_dir.display()),
                    "run it as root (sudo box-setup install-dirs --owner ...)",
                );
            }
            changed_owner = Some(name.clone());
        }
    }
    let mode = current_mode(log_dir)
        .map(|mode| format!(" (mode {mode:o})"))
        .unwrap_or_default();
    match (created, changed_owner) {
        (true, Some(name)) => say(&format!(
            "created {}{mode}, owned by {name}",
            log_dir.display()
        )),
        (true, None) => say(&format!("created {}{mode}", log_dir.display())),
        (false, Some(name)) => say(&format!(
            "{} exists{mode}; now owned by {name}",
            log_dir.display()
        )),
        (false, None) => say(&format!(
            "nothing to do: {} exists{mode}",
            log_dir.display()
        )),
    }
    Exit::Success
}

/// `(name, uid, primary gid)` of the user `name`, or why not.
fn owner_ids(name: &str) -> Result<(String, u32, u32), String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok((name.to_string(), user.uid.as_raw(), user.gid.as_raw())),
        Ok(None) => Err(format!("no user named {name} on this host")),
        Err(error) => Err(format!("cannot look up the user {name}: {error}")),
    }
}

/// The directory's `(uid, gid)`.
fn current_owner(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.uid(), metadata.gid()))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(LOG_DIR_MODE)
        .create(dir)?;
    // The umask may have taken bits away: the mode is set exactly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(LOG_DIR_MODE))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn current_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(std::fs::metadata(path).ok()?.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn current_mode(_path: &Path) -> Option<u32> {
    None
}
