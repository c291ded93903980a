//! `sandbox agency-upload`: puts a local file into a Box folder of a running sandbox the way an
//! agency would, through the control API (`POST {control_url}/agency-upload` with JSON
//! `{folder_id, name, source_path}`; the sandbox reads the file itself, it runs on the same host).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

/// Uploads `file` into Box folder `folder_id` (named `name`, default the file's name) and returns
/// the new Box file object as JSON text.
///
/// # Errors
/// An unreadable file, a connection failure, or a non-2xx reply (its body is included).
pub fn run(
    control_url: &str,
    folder_id: &str,
    file: &Path,
    name: Option<&str>,
) -> anyhow::Result<String> {
    let absolute =
        std::fs::canonicalize(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !absolute.is_file() {
        bail!("{} is not a file", file.display());
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => absolute
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the file has no name")?,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_mins(10)))
        .build()
        .into();
    let url = format!("{}/agency-upload", control_url.trim_end_matches('/'));
    let mut response = agent
        .post(&url)
        .send_json(json!({
            "folder_id": folder_id,
            "name": name,
            "source_path": absolute.display().to_string(),
        }))
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the reply of POST {url}"))?;
    if !status.is_success() {
        bail!("POST {url} failed with {status}: {body}");
    }
    Ok(body)
}
