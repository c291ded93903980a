//! `box-setup check-config` (issue 14): every configuration problem in one offline run, the
//! effective configuration with its secrets redacted, `doctor` naming the URL of a dependency
//! that is down without log lines in its report, and `install-dirs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{bin, copy_config_dir, stderr, stdout, World};

/// A closed port on the loopback: anything that tried to contact it would fail, and nothing
/// listens there to be reached.
const CLOSED: &str = "http://127.0.0.1:9";

/// Edits `file` of `config_dir`: `from` (which must be there) becomes `to`.
fn edit(config_dir: &Path, file: &str, from: &str, to: &str) {
    let path = config_dir.join(file);
    let text = std::fs::read_to_string(&path).expect("config file");
    assert!(text.contains(from), "{file} holds no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write config file");
}

/// A deployment root with a copy of the shipped config/ and a Box app config JSON (generated
/// like the sandbox's, read offline).
fn deployment() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().expect("deployment root");
    let config_dir = copy_config_dir(root.path());
    let app = sandbox::keys::load_or_create_box_app(root.path()).expect("box app config");
    (root, config_dir, app.config_path)
}

/// Runs `box-setup` with exactly `vars` (and PATH) as its environment: no DATABASE_URL, no
/// variable from the test's own environment.
fn run_clean(config_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin("box-setup"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CS_CONFIG_DIR", config_dir)
        .env("CS_ENVIRONMENT", "sandbox")
        .args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("run box-setup");
    eprintln!(
        "--- box-setup {args:?} exit {:?}\n{}\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    output
}

/// The sandbox overlay's variables, pointing every service at a closed port.
fn offline_vars<'a>(app_config: &'a str, temp: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("BOX_API_BASE_URL", CLOSED),
        ("BOX_UPLOAD_BASE_URL", CLOSED),
        ("BOX_OAUTH2_URL", CLOSED),
        ("BOX_CONFIG_FILE", app_config),
        ("BOX_ROOT_FOLDER_ID", "100"),
        ("BOX_WATCHED_FOLDER_ID", "200"),
        ("DAM_BASE_URL", CLOSED),
        ("DAM_USERNAME", "tsuper-user"),
        ("DAM_PASSWORD", "SECRET-dam-password-4f1c"),
        ("MAILGUN_BASE_URL", CLOSED),
        ("MAILGUN_DOMAIN", "mg.sandbox.test"),
        ("MAILGUN_API_KEY", "SECRET-mailgun-key-9d2e"),
        ("WEBHOOK_BASE_URL", "http://127.0.0.1:9/_sandbox/webhooks"),
        ("WEBHOOK_TOKEN", "SECRET-webhook-token-77ab"),
        ("WEBHOOK_SIGNING_SECRET", "SECRET-signing-secret-03cd"),
        (
            "DATABASE_URL",
            "postgresql://cs:SECRET-db-password-5e6f@127.0.0.1:9/cs_test",
        ),
        ("DAM_CLIENT_SECRET", "SECRET-dam-client-secret-1a2b"),
        ("DB_PASSWORD", "SECRET-db-password-file-8c9d"),
        ("CS_TEMP_DIR", temp),
    ]
}

#[test]
fn check_config_reports_every_problem_in_one_offline_run() {
    let (root, config_dir, app_config) = deployment();
    // A template typo, a mapping key typo, an event no pass emits, a word for a number in the
    // overlay, a recipient list with a bad address.
    edit(
        &config_dir,
        "email_templates.yaml",
        "{{ campaign.number }}",
        "{{ campaign.nubmer }}",
    );
    edit(
        &config_dir,
        "field_mappings.yaml",
        "transform: upper",
        "transfrom: upper",
    );
    edit(
        &config_dir,
        "webhooks.yaml",
        "events: [campaign.a2, campaign.a3]",
        "events: [campaign.A3]",
    );
    edit(
        &config_dir,
        "environments/sandbox.yaml",
        "max_requests_per_second: ${BOX_MAX_REQUESTS_PER_SECOND:-200}",
        "max_requests_per_second: ten",
    );
    edit(
        &config_dir,
        "environments/sandbox.yaml",
        "error_recipients: [dam-support@example.com]",
        "error_recipients: ${EMAIL_ERROR_RECIPIENTS}",
    );
    let app_config = app_config.display().to_string();
    let temp = root.path().join("tmp").display().to_string();
    // Several variables missing (the DAM login and the Mailgun key); every URL (the database's
    // too) at a closed port: nothing is contacted.
    let vars: Vec<(&str, &str)> = offline_vars(&app_config, &temp)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "DAM_USERNAME" | "DAM_PASSWORD" | "MAILGUN_API_KEY"))
        .chain([("EMAIL_ERROR_RECIPIENTS", "a@x.com;not-an-address")])
        .collect();

    let output = run_clean(&config_dir, &["check-config"], &vars);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    let expected: [(&str, &str, &str); 8] = [
        (
            "config/email_templates.yaml:",
            "a1_to_a2_complete",
            "nubmer",
        ),
        (
            "config/field_mappings.yaml:",
            "filename_field_updates.MAIN_LANGUAGES.transfrom",
            "unknown key transfrom",
        ),
        (
            "config/webhooks.yaml:",
            "endpoints[0].events[0]",
            "\"campaign.A3\"",
        ),
        (
            "config/environments/sandbox.yaml:",
            "box.max_requests_per_second",
            "found \"ten\"",
        ),
        (
            "config/environments/sandbox.yaml:",
            "email.error_recipients[1]",
            "\"not-an-address\"",
        ),
        (
            "config/environments/sandbox.yaml:",
            "dam.auth.username",
            "DAM_USERNAME",
        ),
        (
            "config/environments/sandbox.yaml:",
            "dam.auth.password",
            "DAM_PASSWORD",
        ),
        (
            "config/environments/sandbox.yaml:",
            "email.api_key",
            "MAILGUN_API_KEY",
        ),
    ];
    for (file, key, detail) in expected {
        let found = errors
            .iter()
            .find(|line| line.contains(file) && line.contains(&format!(": {key}")));
        let line = found.unwrap_or_else(|| panic!("no problem at {file} {key}: {text}"));
        assert!(line.contains(detail), "{line}");
        // file:line: the YAML reader's position of the key.
        let after = line.split(file).nth(1).unwrap_or_default();
        assert!(
            after
                .split(':')
                .next()
                .is_some_and(|number| number.parse::<u32>().is_ok()),
            "no line number: {line}"
        );
    }
    assert!(
        text.contains(
            "expected one of campaign.a2, campaign.a3, asset.imported, found \"campaign.A3\""
        ),
        "the event problem names the valid values: {text}"
    );
    assert!(text.contains("hint: did you mean transform?"), "{text}");
    assert!(text.contains("hint: did you mean campaign.a3?"), "{text}");
    // Every problem has its hint on the next line.
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with("error: ") || line.starts_with("warning: ") {
            assert!(
                lines
                    .get(index + 1)
                    .is_some_and(|next| next.starts_with("  hint: ")),
                "{line}"
            );
        }
    }
    assert!(text.contains("missing variables (3):"), "{text}");
    for name in ["DAM_USERNAME", "DAM_PASSWORD", "MAILGUN_API_KEY"] {
        assert!(
            text.contains(&format!("  {name}: used by ")),
            "{name}: {text}"
        );
    }
    assert!(text.contains("nothing was contacted"), "{text}");

    // --json: the same problems, each with file, line, key and hint.
    let output = run_clean(&config_dir, &["check-config", "--json"], &vars);
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("JSON");
    assert_eq!(json["ok"], false);
    let problems = json["problems"].as_array().expect("problems");
    let errors: Vec<&serde_json::Value> = problems
        .iter()
        .filter(|problem| problem["severity"] == "error")
        .collect();
    assert!(errors.len() >= expected.len(), "{json}");
    for problem in errors {
        assert!(problem["file"]
            .as_str()
            .is_some_and(|file| !file.is_empty()));
        assert!(problem["key"].as_str().is_some_and(|key| !key.is_empty()));
        assert!(problem["hint"]
            .as_str()
            .is_some_and(|hint| !hint.is_empty()));
        assert!(problem["line"].as_u64().is_some(), "{problem}");
    }
    let missing: Vec<&str> = json["missing_variables"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|entry| entry["variable"].as_str())
        .collect();
    assert_eq!(missing, ["DAM_PASSWORD", "DAM_USERNAME", "MAILGUN_API_KEY"]);
}

#[test]
fn check_config_show_redacts_every_secret() {
    let (root, config_dir, app_config) = deployment();
    let app_config = app_config.display().to_string();
    let temp = root.path().join("tmp").display().to_string();
    let vars = offline_vars(&app_config, &temp);
    let secrets: Vec<&str> = vars
        .iter()
        .map(|(_, value)| *value)
        .filter(|value| value.contains("SECRET-"))
        .map(|value| {
            value
                .split(['@', ':', '/'])
                .find(|part| part.starts_with("SECRET-"))
                .unwrap_or(value)
        })
        .collect();
    assert_eq!(secrets.len(), 7, "{secrets:?}");

    let output = run_clean(&config_dir, &["check-config"], &vars);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.starts_with("configuration ok ("), "{text}");

    for args in [
        vec!["check-config", "--show"],
        vec!["check-config", "--show", "--json"],
    ] {
        let output = run_clean(&config_dir, &args, &vars);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {text}");
        for secret in &secrets {
            assert!(!text.contains(secret), "{args:?} shows {secret}: {text}");
            assert!(!stderr(&output).contains(secret), "{args:?} logs {secret}");
        }
        if args.contains(&"--json") {
            let json: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
            let values = json["values"].as_array().expect("values");
            let find = |key: &str| {
                values
                    .iter()
                    .find(|value| value["key"] == key)
                    .unwrap_or_else(|| panic!("{key} not shown"))
            };
            assert_eq!(find("dam.auth.password")["redacted"], true);
            assert_eq!(find("dam.auth.password")["value"], "****");
            let user = find("dam.auth.username");
            assert_eq!(user["value"], "\"tsuper-user\"");
            assert_eq!(user["variables"], serde_json::json!(["DAM_USERNAME"]));
            assert_eq!(
                user["file"]
                    .as_str()
                    .map(|file| file.ends_with("environments/sandbox.yaml")),
                Some(true)
            );
            assert!(user["line"].as_u64().is_some());
        } else {
            // Non-secret values with their origin (file:line and the variable).
            let user_line = text
                .lines()
                .find(|line| line.starts_with("dam.auth.username = "))
                .unwrap_or_else(|| panic!("{text}"));
            assert!(user_line.contains("\"tsuper-user\""), "{user_line}");
            assert!(
                user_line.contains("environments/sandbox.yaml:")
                    && user_line.ends_with(" $DAM_USERNAME"),
                "{user_line}"
            );
            let retries = text
                .lines()
                .find(|line| line.starts_with("box.max_retries = 5"))
                .unwrap_or_else(|| panic!("{text}"));
            assert!(retries.contains("config/config.yaml:"), "{retries}");
            for key in [
                "dam.auth.password = ****",
                "email.api_key = ****",
                "database.url = ****",
            ] {
                assert!(text.contains(key), "{key}: {text}");
            }
        }
    }
}

#[test]
fn doctor_names_the_dam_url_once_and_keeps_log_lines_out_of_its_report() {
    let world = World::new(None);
    let output = world.run_with_env("box-setup", &["doctor"], &[("DAM_BASE_URL", CLOSED)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let dam_lines: Vec<&str> = text.lines().filter(|line| line.contains("DAM")).collect();
    assert_eq!(dam_lines.len(), 2, "one FAIL line and its fix: {text}");
    assert!(
        dam_lines[0].starts_with("FAIL DAM: ")
            && dam_lines[0].contains(&format!("({CLOSED}/otmmapi/v6)")),
        "{text}"
    );
    // The report is only report lines: no log line (WARN or other) inside it.
    for line in text.lines() {
        assert!(
            line.starts_with("ok   ")
                || line.starts_with("FAIL ")
                || line.starts_with("     fix: ")
                || line.starts_with("doctor: "),
            "not a report line: {line:?}\n{text}"
        );
    }
    assert!(!text.contains("WARN"), "{text}");
    assert!(text.contains("ok   config: "), "{text}");
    assert!(text.contains("ok   Box: "), "{text}");

    let output = world.run_with_env(
        "box-setup",
        &["doctor", "--json"],
        &[("DAM_BASE_URL", CLOSED)],
    );
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("JSON");
    assert_eq!(json["ok"], false);
    let dam = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|check| check["subject"] == "DAM")
        .expect("DAM check");
    assert_eq!(dam["ok"], false);
    assert_eq!(dam["url"], format!("{CLOSED}/otmmapi/v6"));

    // A configuration problem stops doctor before any network check, exit 2.
    let output = world.run_without("box-setup", &["doctor"], &[], &["DAM_PASSWORD"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("dam.auth.password"), "{text}");
    assert!(!text.contains("database:"), "{text}");
}

#[test]
fn install_dirs_creates_the_log_directory_once() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("root");
    let log_dir = root.path().join("var/log/content-scaling");
    let log_text = log_dir.display().to_string();
    let run = || {
        let output = Command::new(bin("box-setup"))
            .args(["install-dirs", "--log-dir", &log_text])
            .output()
            .expect("run box-setup");
        (output.status.code(), stdout(&output))
    };
    let (code, text) = run();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text, format!("created {log_text} (mode 750)\n"));
    let mode = std::fs::metadata(&log_dir)
        .expect("created")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750);
    let (code, text) = run();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text,
        format!("nothing to do: {log_text} exists (mode 750)\n")
    );
}
