//! The environment the `sandbox` overlay (`config/environments/sandbox.yaml`) reads, taken from a
//! ready line: the one mapping from the sandbox's URLs, IDs and credentials to the binaries'
//! variables. `sandbox serve --env-file FILE` writes it as `export` lines, `sandbox env` prints it
//! from a saved ready line, `scripts/demo.sh` sources it and the end-to-end tests set it, so a
//! newcomer can replay every step of the demo by hand with exactly what the scripts use.

use std::fmt::Write;

use serde_json::Value;

/// `(variable, ready-line key)`: string values of the ready line.
const FROM_READY: &[(&str, &str)] = &[
    ("BOX_API_BASE_URL", "base_url"),
    ("BOX_UPLOAD_BASE_URL", "upload_url"),
    ("BOX_OAUTH2_URL", "oauth2_url"),
    ("BOX_CONFIG_FILE", "box_app_config"),
    ("BOX_ROOT_FOLDER_ID", "box_root_folder_id"),
    ("DAM_BASE_URL", "dam_url"),
    ("DAM_USERNAME", "dam_username"),
    ("DAM_PASSWORD", "dam_password"),
    ("MAILGUN_BASE_URL", "mailgun_url"),
    ("MAILGUN_DOMAIN", "mailgun_domain"),
    ("MAILGUN_API_KEY", "mailgun_api_key"),
    ("WEBHOOK_BASE_URL", "webhook_url"),
];

/// The variables for the binaries, in a stable order: the [`FROM_READY`] values,
/// `BOX_WATCHED_FOLDER_ID` (the first watched folder) and the `dam.api` settings that match the
/// sandbox's OTMM dialect ([`crate::dialect::OtmmDialect::client_settings`]).
///
/// # Errors
/// The ready line lacks one of those keys (the text names it).
pub fn exports(ready: &Value) -> Result<Vec<(String, String)>, String> {
    let text = |key: &str| {
        ready[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the ready line has no string `{key}`"))
    };
    let mut variables = Vec::new();
    for (variable, key) in FROM_READY {
        variables.push(((*variable).to_string(), text(key)?));
    }
    let watched = ready["watched_folder_ids"][0]
        .as_str()
        .ok_or("the ready line has no `watched_folder_ids`")?;
    variables.push(("BOX_WATCHED_FOLDER_ID".to_string(), watched.to_string()));
    let dialect: crate::dialect::OtmmDialect =
        serde_json::from_value(ready["otmm_dialect"].clone()).unwrap_or_default();
    for (variable, value) in dialect.client_settings() {
        variables.push(((*variable).to_string(), (*value).to_string()));
    }
    Ok(variables)
}

/// `variables` as POSIX shell `export NAME='value'` lines (single quotes, a `'` inside written as
/// `'\''`), for `source` or `eval`.
pub fn export_lines(variables: &[(String, String)]) -> String {
    let mut lines = String::new();
    for (name, value) in variables {
        let quoted = value.replace('\'', r"'\''");
        let _ = writeln!(lines, "export {name}='{quoted}'");
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_follow_the_ready_line_and_quote_for_the_shell() {
        let mut ready =
            serde_json::json!({ "watched_folder_ids": ["42"], "otmm_dialect": "locking" });
        for (_, key) in FROM_READY {
            ready[*key] = Value::String(format!("v-{key}"));
        }
        ready["dam_password"] = Value::String("it's".into());
        let variables = exports(&ready).expect("exports");
        assert!(variables.contains(&("BOX_WATCHED_FOLDER_ID".into(), "42".into())));
        assert!(variables.contains(&("DAM_API_LOCK_FOLDERS".into(), "always".into())));
        assert!(variables.contains(&("DAM_BASE_URL".into(), "v-dam_url".into())));
        let lines = export_lines(&variables);
        assert!(
            lines.contains("export DAM_PASSWORD='it'\\''s'\n"),
            "{lines}"
        );
        let missing = exports(&serde_json::json!({})).expect_err("no keys");
        assert!(missing.contains("base_url"), "{missing}");
    }
}
