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
//! - `doctor`: configuration, `.env` permissions, database (reachable, migrated), Box token,
//!   DAM login, ffprobe, temp dir: one `ok`/`FAIL` line each, every `FAIL` with its fix.
//!
//! Results go to stdout. Exit codes: 0 everything ok, 1 a check failed, 2 configuration error,
//! 75 Box unreachable (`list-folder`, `check`, `ensure-folders`).

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
    Check,
    /// Create `_PROCESSED` and `_errors` in every watched folder.
    EnsureFolders {
        /// Only say which are missing.
        dry_run: bool,
    },
    /// Check the whole installation.
    Doctor,
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
    if *command == SetupCommand::Doctor {
        return entry::run_unconfigured(BINARY, options, |options| Ok(doctor(options)));
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
            SetupCommand::Check => check(&config, &client)?,
            SetupCommand::EnsureFolders { dry_run } => ensure_folders(&config, &client, *dry_run)?,
            SetupCommand::Doctor | SetupCommand::DamCheck { .. } => true,
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
fn check(config: &Config, client: &BoxClient) -> Result<bool, PassError> {
    let mut all_ok = true;
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

/// Runs every check; [`Exit::Configuration`] when the configuration cannot be loaded (the
/// remaining checks need it), else [`Exit::Failure`] when a check failed.
fn doctor(options: &CommonOptions) -> Exit {
    let mut all_ok = true;
    let mut check = |ok: bool, subject: &str, detail: &str, fix: Option<&str>| {
        all_ok &= ok;
        report(ok, subject, detail, fix);
    };

    let dotenv_files: Vec<PathBuf> = Some(config::dotenv_path(&options.config_dir))
        .into_iter()
        .filter(|candidate| candidate.is_file())
        .collect();
    if dotenv_files.is_empty() {
        check(
            true,
            ".env",
            "none (secrets come from the environment)",
            None,
        );
    }
    for candidate in dotenv_files {
        match shared_mode(&candidate) {
            Some(mode) => check(
                false,
                ".env",
                &format!(
                    "{} is readable by group or others (mode {mode:o}) but holds secrets",
                    candidate.display()
                ),
                Some(&format!("chmod 600 {}", candidate.display())),
            ),
            None => check(
                true,
                ".env",
                &format!("{} is private", candidate.display()),
                None,
            ),
        }
    }

    let config = match config::load(&options.config_dir, options.environment.as_deref()) {
        Ok(config) => {
            check(
                true,
                "config",
                &format!(
                    "{} is valid (environment {}); every variable it uses is set",
                    options.config_dir.display(),
                    config.environment
                ),
                None,
            );
            config
        }
        Err(error) => {
            let fix = if error.to_string().contains("variable") {
                "set the variable named above (in the environment or in .env), then run doctor again"
            } else {
                "correct the key named above (config/config.yaml documents every key), then run doctor again"
            };
            check(false, "config", &error.to_string(), Some(fix));
            say("(the remaining checks need a valid configuration)");
            return Exit::Configuration;
        }
    };

    match Store::connect_database(&config.database) {
        Ok(mut store) => {
            check(true, "database", "reachable", None);
            match store.migration_state() {
                Ok(state) if state.pending.is_empty() => check(
                    true,
                    "database",
                    &format!(
                        "migrated (schema version {})",
                        state.applied.last().copied().unwrap_or(0)
                    ),
                    None,
                ),
                Ok(state) => check(
                    false,
                    "database",
                    &format!("not migrated: missing {}", state.pending.join(", ")),
                    Some("run any pass once (a1-to-a2 or box-poll migrate the database when they start)"),
                ),
                Err(error) => check(
                    false,
                    "database",
                    &format!("cannot read the schema version: {error}"),
                    Some("check that the database user may read the database (GRANT ... TO the user of DATABASE_URL)"),
                ),
            }
        }
        Err(error) => check(
            false,
            "database",
            &error.to_string(),
            Some("check DATABASE_URL (or database.*) and that PostgreSQL runs and accepts this host (pg_hba.conf)"),
        ),
    }

    match box_client(&config) {
        Ok(client) => match client.list_folder(&config.box_api.root_folder_id) {
            Ok(_) => check(true, "Box", "token obtained; campaign root folder readable", None),
            Err(error @ BoxError::Auth { .. }) => check(
                false,
                "Box",
                &format!("no token: {error}"),
                Some("check BOX_CONFIG_FILE (the app's JSON from the Developer Console) and that the app is authorized in the Admin Console"),
            ),
            Err(error) if matches!(error.status(), Some(403 | 404)) => check(
                true,
                "Box",
                &format!("token obtained (the root folder answered {}: run `box-setup check`)", error.status().unwrap_or(0)),
                None,
            ),
            Err(error) => check(
                false,
                "Box",
                &error.to_string(),
                Some("check box.base_url / box.oauth2_url and that this host can reach Box (proxy, firewall)"),
            ),
        },
        Err(error) => check(
            false,
            "Box",
            &error.to_string(),
            Some("point BOX_CONFIG_FILE (box.app_config_file) at the app config JSON, readable by this user, with the key's passphrase"),
        ),
    }

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
        Ok(_) => check(true, "DAM", "login works; campaign search answers", None),
        Err(error) => {
            let fix = match &error {
                crate::dam::DamError::Auth(_) => "check DAM_USERNAME / DAM_PASSWORD (or the dam.auth OAuth2 keys)",
                error if error.is_transient() => "check dam.base_url and that this host can reach the DAM",
                _ => "check dam.campaign (status field and search operator) against the DAM's metadata model",
            };
            check(false, "DAM", &error.to_string(), Some(fix));
        }
    }

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
            check(true, "ffprobe", &version, None);
        }
        Ok(output) => check(
            false,
            "ffprobe",
            &format!("{} -version exited with {}", config.media.ffprobe_path, output.status),
            Some("reinstall ffmpeg, or set media.ffprobe_path (FFPROBE_PATH) to a working ffprobe"),
        ),
        Err(error) => check(
            false,
            "ffprobe",
            &format!("{} cannot be run: {error}", config.media.ffprobe_path),
            Some("install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; RHEL/Rocky/Fedora: dnf install ffmpeg, CentOS 7: yum install ffmpeg, both from RPM Fusion; or a static build from johnvansickle.com/ffmpeg), or set media.ffprobe_path (FFPROBE_PATH)"),
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
        Ok(()) => check(
            true,
            "temp dir",
            &format!("{} is private and writable", temp_dir.display()),
            None,
        ),
        Err((detail, fix)) => check(false, "temp dir", &detail, Some(&fix)),
    }

    if all_ok {
        say("doctor: everything ok");
    } else {
        say("doctor: some checks failed (see the fixes above)");
    }
    Exit::success_if(all_ok)
}
