//! Control API under `/_sandbox`, for tests, the demo and outside tools (not part of any emulated
//! service):
//!
//! - `GET /_sandbox/state`: the whole state as JSON (Box tree, DAM tree with fields and statuses,
//!   status history, jobs, emails, webhooks, token counts).
//! - `GET /_sandbox/dam-credentials`: the live OTMM session digests, `JSESSIONID`s and OAuth2
//!   tokens (leak tests search for them).
//! - `GET /_sandbox/stats`: request counts per route template and status, totals per API, and
//!   the most Box and DAM requests handled at once (`box_peak_in_flight`, `dam_peak_in_flight`).
//! - `POST /_sandbox/agency-upload`: put a file into Box as an agency collaborator would
//!   (multipart `folder_id`, optional `name`, `file`; or JSON `{folder_id, name?, source_path}`).
//!   A file with the same name in the folder gets a new version (as the Box web app does). JSON
//!   `file_id` (instead of a name match) uploads a new version of that file wherever it is ("Upload
//!   new version" in the Box web app, e.g. on a file in `_errors/`).
//! - `POST /_sandbox/agency-move` `{file_id, parent_id?, name?}`: an agency user moves and/or
//!   renames a file in the Box web app (200 with the file object; 409 `item_name_in_use`, 404).
//! - `POST /_sandbox/faults`: add fault rules (see [`crate::faults`] for the rule fields): one rule
//!   object `{method?, path_prefix, kind?, status?, retry_after?, delay_ms?, truncate_after?,
//!   count?, probability?, after?}`, or `{seed?, replace?, rules?: [rule...]}` (`seed` restarts
//!   the generator, `replace` drops the existing rules first) -> 201 `{seed, rules}` (the rules
//!   with their `id`s). `GET` -> `{seed, rules, injected}`; `DELETE` clears all rules
//!   (`{"cleared":n}`); `DELETE /_sandbox/faults/{id}` removes one (204, or 404).
//! - `GET /_sandbox/config` -> the run-time settings; `POST /_sandbox/config` with any of
//!   `{rate_limit_per_minute: n|null, rate_limit_burst: n, rate_limit_per_second: n|null,
//!   part_size, commit_accepted_responses,
//!   commit_retry_after_secs, mailgun_events: "match"|"no_custom_ids"|"unavailable",
//!   import_delay_ms: n|null, events: {drop_next?, duplicate?, reorder?, keep_last?}}` changes them and returns the result (see
//!   [`crate::state::Settings`]; `import_delay_ms` is how long DAM import jobs started from now
//!   on run, null = the start-up value). The Box rate limit is a bucket per access token
//!   ([`crate::state::RateLimit`]: `rate_limit_per_minute` sustained, `rate_limit_burst` at once,
//!   default 1; `rate_limit_per_second: n` = `n * 60` per minute with a burst of `n`), shown as
//!   `rate_limit: {per_minute, burst}|null`; 0 or null turns it off. New `part_size` values apply
//!   to new upload sessions.
//! - `POST /_sandbox/webhooks/{name}`: a webhook receiver recording headers and body.
//! - `POST /_sandbox/agency-folder` `{parent_id, name}`: a folder made by an agency user or an
//!   operator in the Box web app (201 `{id}`, or 200 with the existing one).
//! - `POST /_sandbox/download-url` `{file_id}` -> `{url}`: a one-time download URL (benchmarks).
//! - `POST /_sandbox/sink`: reads and discards the body -> `{bytes}` (benchmarks).
//! - `GET /_sandbox/health`: `{"ok":true}`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::box_api::{box_error, commit_new_file, commit_new_version, file_json};
use crate::http_util::{
    copy_into_blob, header_text, json_response, otmm_time, BlobWriter, StoredBlob,
};
use crate::otmm::field_map;
use crate::state::{categories_field_text, Actor, App, BoxItemRef, DamStore, RateLimit};

/// The control routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/_sandbox/health",
            get(|| async { json_response(StatusCode::OK, &json!({"ok": true})) }),
        )
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/dam-credentials", get(dam_credentials))
        .route("/_sandbox/agency-upload", post(agency_upload))
        .route("/_sandbox/agency-folder", post(agency_folder))
        .route("/_sandbox/agency-move", post(agency_move))
        .route("/_sandbox/download-url", post(download_url))
        .route("/_sandbox/sink", post(sink))
        .route(
            "/_sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sandbox/faults/{id}", axum::routing::delete(remove_fault))
        .route("/_sandbox/config", get(get_config).post(set_config))
        .route("/_sandbox/webhooks/{name}", post(webhook))
}

fn dam_path(dam: &DamStore, folder_id: &str) -> String {
    let mut names = Vec::new();
    let mut current = Some(folder_id.to_owned());
    let mut guard = 0;
    while let Some(id) = current {
        guard += 1;
        if guard > 10_000 {
            break;
        }
        match dam.folder(&id) {
            Some(folder) => {
                names.push(folder.name.clone());
                current = folder.parent_id.clone();
            }
            None => break,
        }
    }
    names.reverse();
    format!("/{}", names.join("/"))
}

/// `GET /_sandbox/dam-credentials`: the live OTMM sessions (`{digest, jsessionid}`) and OAuth2
/// tokens, so tests can check that none of them leaks. Apart from `/_sandbox/state`, whose
/// snapshots must not change when a client merely logs in.
async fn dam_credentials(State(app): State<Arc<App>>) -> Response {
    let world = app.world();
    json_response(
        StatusCode::OK,
        &json!({
            "sessions": world.auth.dam_sessions.values().map(|s| json!({"digest": s.digest, "jsessionid": s.jsessionid})).collect::<Vec<_>>(),
            "tokens": world.auth.dam_tokens.keys().collect::<Vec<_>>(),
        }),
    )
}

/// `GET /_sandbox/state`.
async fn state(State(app): State<Arc<App>>) -> Response {
    let world = app.world();
    let boxes = &world.boxes;
    let box_folders: Vec<Value> = boxes
        .folders
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "parent_id": f.parent_id,
                "path": boxes.folder_path(&f.id),
            })
        })
        .collect();
    let box_files: Vec<Value> = boxes
        .files
        .iter()
        .map(|f| {
            let current = f.current();
            json!({
                "id": f.id,
                "name": f.name,
                "parent_id": f.parent_id,
                "path": boxes.file_path(f),
                "sha1": current.map(|v| v.sha1.clone()),
                "size": current.map(|v| v.size),
                "file_version_id": current.map(|v| v.id.clone()),
                "version_count": f.versions.len(),
                // Where the current content is on disk (tests read notes and check bytes).
                "content_path": current.map(|v| v.blob.display().to_string()),
                "created_by": match f.created_by { Actor::Service => "service", Actor::Agency => "agency" },
                "versions": f.versions.iter().map(|v| json!({"id": v.id, "sha1": v.sha1, "size": v.size})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let box_trash: Vec<Value> = boxes
        .trash
        .iter()
        .map(|t| json!({"type": t.kind, "id": t.id, "name": t.name, "path": t.path}))
        .collect();
    let dam = &world.dam;
    let status_field = &app.config.campaign_model.status_field_id;
    let dam_folders: Vec<Value> = dam
        .folders
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "parent_id": f.parent_id,
                "path": dam_path(dam, &f.id),
                "fields": field_map(&f.categories),
                "status": categories_field_text(&f.categories, status_field),
                "locked": f.locked_by.is_some(),
            })
        })
        .collect();
    let dam_assets: Vec<Value> = dam
        .assets
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "folder_id": a.folder_id,
                "path": format!("{}/{}", dam_path(dam, &a.folder_id), a.name),
                "mime_type": a.mime_type,
                "content_type": a.content_type,
                "content_size": a.content_size,
                "sha1": a.sha1,
                "file_name": a.file_name,
                "metadata_model_id": a.model_id,
                "fields": field_map(&a.categories),
                "import_job_id": a.import_job_id,
            })
        })
        .collect();
    let jobs: Vec<Value> = dam.jobs.values().map(|j| json!(j)).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "box": {"folders": box_folders, "files": box_files, "trash": box_trash},
            "dam": {
                "folders": dam_folders,
                "assets": dam_assets,
                "status_changes": dam.status_changes,
                "jobs": jobs,
            },
            "emails": world.emails,
            "webhooks": world.webhooks,
            "upload_sessions": boxes.upload_sessions.values().map(super::chunked::UploadSession::state_json).collect::<Vec<_>>(),
            "tokens_issued": world.auth.tokens_issued,
            "dam_logins": world.auth.dam_logins,
        }),
    )
}

/// `GET /_sandbox/stats`: `{"routes":{"GET /2.0/folders/{id}/items 200":n,...}, "box_requests",
/// "box_download_requests", "dam_requests", "mailgun_requests", "webhook_requests"}`. Control
/// requests (other than webhook deliveries) are not counted.
async fn stats(State(app): State<Arc<App>>) -> Response {
    let world = app.world();
    json_response(StatusCode::OK, &json!(world.stats))
}

fn control_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

/// `POST /_sandbox/faults`.
async fn add_fault(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request = match crate::faults::parse_request(&body) {
        Ok(request) => request,
        Err(error) => return control_error(StatusCode::BAD_REQUEST, &error),
    };
    let mut world = app.world();
    let faults = &mut world.faults;
    if request.replace {
        faults.clear();
    }
    if let Some(seed) = request.seed {
        faults.reseed(seed);
    }
    let mut added = Vec::new();
    for rule in request.rules {
        let id = faults.add(rule);
        if let Some(rule) = faults.rules.iter().find(|r| r.id == id) {
            added.push(json!(rule));
        }
    }
    json_response(
        StatusCode::CREATED,
        &json!({"seed": faults.seed, "rules": added}),
    )
}

/// `GET /_sandbox/faults`.
async fn list_faults(State(app): State<Arc<App>>) -> Response {
    let world = app.world();
    json_response(
        StatusCode::OK,
        &json!({
            "seed": world.faults.seed,
            "rules": world.faults.rules,
            "injected": world.stats.faults_injected,
        }),
    )
}

/// `DELETE /_sandbox/faults`.
async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    let cleared = app.world().faults.clear();
    json_response(StatusCode::OK, &json!({"cleared": cleared}))
}

/// `DELETE /_sandbox/faults/{id}`.
async fn remove_fault(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    if app.world().faults.remove(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        control_error(StatusCode::NOT_FOUND, &format!("no fault rule {id}"))
    }
}

/// `GET /_sandbox/config`.
async fn get_config(State(app): State<Arc<App>>) -> Response {
    let world = app.world();
    config_json(&world)
}

/// The settings, with the events stream's faults as `events`.
fn config_json(world: &crate::state::World) -> Response {
    let mut body = json!(world.settings);
    body["events"] = json!(world.boxes.events.faults);
    json_response(StatusCode::OK, &body)
}

/// `POST /_sandbox/config`: a partial update of the settings.
async fn set_config(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(Value::Object(update)) = serde_json::from_slice::<Value>(&body) else {
        return control_error(StatusCode::BAD_REQUEST, "expected a JSON object");
    };
    let mut world = app.world();
    let mut settings = world.settings.clone();
    // Applied after the rate itself, whatever the order of the keys.
    let mut burst = None;
    let mut events = None;
    for (key, value) in update {
        let number = value.as_u64();
        match key.as_str() {
            "rate_limit_per_second" | "rate_limit_per_minute" | "rate_limit_burst" => {
                let n = match (&value, number) {
                    (Value::Null, _) => 0,
                    (_, Some(n)) => match u32::try_from(n) {
                        Ok(n) => n,
                        Err(_) => return control_error(StatusCode::BAD_REQUEST, &format!("{key} is too large")),
                    },
                    _ => {
                        return control_error(
                            StatusCode::BAD_REQUEST,
                            &format!("{key} must be a non-negative integer or null"),
                        )
                    }
                };
                match key.as_str() {
                    "rate_limit_burst" => burst = Some(n.max(1)),
                    _ if n == 0 => settings.rate_limit = None,
                    "rate_limit_per_second" => settings.rate_limit = Some(RateLimit::per_second(n)),
                    _ => {
                        let burst = settings.rate_limit.map_or(1, |limit| limit.burst);
                        settings.rate_limit = Some(RateLimit { per_minute: n, burst });
                    }
                }
            }
            "part_size" => match number {
                Some(n) if n > 0 => settings.part_size = n,
                _ => return control_error(StatusCode::BAD_REQUEST, "part_size must be a positive integer"),
            },
            "commit_accepted_responses" => match number.and_then(|n| u32::try_from(n).ok()) {
                Some(n) => settings.commit_accepted_responses = n,
                None => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "commit_accepted_responses must be a non-negative integer",
                    )
                }
            },
            "import_delay_ms" => match (&value, number) {
                (Value::Null, _) => settings.import_delay_ms = None,
                (_, Some(n)) if n <= 600_000 => settings.import_delay_ms = Some(n),
                _ => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "import_delay_ms must be a non-negative integer (at most 600000) or null",
                    )
                }
            },
            "commit_retry_after_secs" => match number {
                Some(n) => settings.commit_retry_after_secs = n,
                None => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "commit_retry_after_secs must be a non-negative integer",
                    )
                }
            },
            "mailgun_events" => match serde_json::from_value(value.clone()) {
                Ok(mode) => settings.mailgun_events = mode,
                Err(_) => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "mailgun_events must be \"match\", \"no_custom_ids\" or \"unavailable\"",
                    )
                }
            },
            "events" => match serde_json::from_value(value.clone()) {
                Ok(faults) => events = Some(faults),
                Err(_) => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "events must be {drop_next?, duplicate?, reorder?, keep_last?}",
                    )
                }
            },
            other => {
                return control_error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown setting {other:?} (rate_limit_per_second, rate_limit_per_minute, rate_limit_burst, part_size, commit_accepted_responses, commit_retry_after_secs, mailgun_events, import_delay_ms, events)"),
                )
            }
        }
    }
    if let Some(burst) = burst {
        match &mut settings.rate_limit {
            Some(limit) => limit.burst = burst,
            None => {
                return control_error(
                    StatusCode::BAD_REQUEST,
                    "rate_limit_burst needs a rate limit (rate_limit_per_minute, in the same update or before)",
                )
            }
        }
    }
    world.settings = settings;
    if let Some(faults) = events {
        world.boxes.events.faults = faults;
    }
    config_json(&world)
}

/// `POST /_sandbox/webhooks/{name}`: records `{name, method, headers, body, received_at}`; the body
/// is kept as JSON when it parses, else as text.
async fn webhook(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header_map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let parsed = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let record = json!({
        "name": name,
        "headers": header_map,
        "body": parsed,
        "received_at": otmm_time(crate::http_util::now()),
    });
    app.world().webhooks.push(record);
    json_response(StatusCode::OK, &json!({"received": true}))
}

/// An agency upload request after parsing.
struct AgencyUpload {
    /// New version of this file (JSON `file_id`), instead of a name match in `folder_id`.
    file_id: Option<String>,
    folder_id: String,
    name: String,
    blob: StoredBlob,
}

async fn read_agency_upload(app: &Arc<App>, request: Request) -> Result<AgencyUpload, Response> {
    let is_json = header_text(request.headers(), "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    let blob_dir = app.config.blob_dir.join("box");
    if is_json {
        let body = axum::body::Bytes::from_request(request, app)
            .await
            .map_err(|e| control_error(StatusCode::BAD_REQUEST, &e.to_string()))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| control_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")))?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let file_id = text("file_id");
        let folder_id = match (text("folder_id"), &file_id) {
            (Some(folder_id), _) => folder_id,
            (None, Some(file_id)) => app
                .world()
                .boxes
                .file(file_id)
                .map(|file| file.parent_id.clone())
                .ok_or_else(|| control_error(StatusCode::NOT_FOUND, "no such file"))?,
            (None, None) => {
                return Err(control_error(
                    StatusCode::BAD_REQUEST,
                    "folder_id is required",
                ))
            }
        };
        let source = text("source_path")
            .ok_or_else(|| control_error(StatusCode::BAD_REQUEST, "source_path is required"))?;
        let source = PathBuf::from(source);
        let name = text("name")
            .or_else(|| source.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| control_error(StatusCode::BAD_REQUEST, "name is required"))?;
        let blob = copy_into_blob(&source, &blob_dir).await.map_err(|e| {
            control_error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read {}: {e}", source.display()),
            )
        })?;
        return Ok(AgencyUpload {
            file_id,
            folder_id,
            name,
            blob,
        });
    }
    let mut multipart = Multipart::from_request(request, app).await.map_err(|e| {
        control_error(
            StatusCode::BAD_REQUEST,
            &format!("expected multipart or JSON: {}", e.body_text()),
        )
    })?;
    let mut folder_id = None;
    let mut name = None;
    let mut stored: Option<(StoredBlob, Option<String>)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                if let Some((blob, _)) = stored {
                    blob.discard().await;
                }
                return Err(control_error(StatusCode::BAD_REQUEST, &error.to_string()));
            }
        };
        let field_name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() && stored.is_none() {
            let file_name = field.file_name().map(str::to_owned);
            let mut writer = BlobWriter::create(&blob_dir)
                .await
                .map_err(|e| control_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if let Err(error) = writer.write(&chunk).await {
                            writer.discard().await;
                            return Err(control_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &error.to_string(),
                            ));
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        writer.discard().await;
                        return Err(control_error(StatusCode::BAD_REQUEST, &error.to_string()));
                    }
                }
            }
            let blob = writer
                .finish()
                .await
                .map_err(|e| control_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
            stored = Some((blob, file_name));
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| control_error(StatusCode::BAD_REQUEST, &e.to_string()))?;
        match field_name.as_str() {
            "folder_id" => folder_id = Some(text.trim().to_owned()),
            "name" => name = Some(text),
            _ => {}
        }
    }
    let Some((blob, file_name)) = stored else {
        return Err(control_error(
            StatusCode::BAD_REQUEST,
            "a file part is required",
        ));
    };
    let (Some(folder_id), Some(name)) = (folder_id, name.or(file_name)) else {
        blob.discard().await;
        return Err(control_error(
            StatusCode::BAD_REQUEST,
            "folder_id and a file name are required",
        ));
    };
    Ok(AgencyUpload {
        file_id: None,
        folder_id,
        name,
        blob,
    })
}

/// `POST /_sandbox/download-url` `{"file_id"}` -> `{"url"}`: a one-time URL on the download
/// host for the file's current version, as `GET /2.0/files/{id}/content` redirects to (for
/// benchmarks comparing against `curl`).
async fn download_url(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(file_id) = value.get("file_id").and_then(Value::as_str) else {
        return control_error(StatusCode::BAD_REQUEST, "file_id is required");
    };
    let mut world = app.world();
    let Some(version_id) = world
        .boxes
        .file(file_id)
        .and_then(|file| file.current())
        .map(|version| version.id.clone())
    else {
        return control_error(StatusCode::NOT_FOUND, "no such file");
    };
    let url = crate::box_api::issue_download_ticket(&app, &mut world.boxes, file_id, &version_id);
    json_response(StatusCode::OK, &json!({"url": url}))
}

/// `POST /_sandbox/sink` -> `{"bytes": n}`: reads the whole body and throws it away (a plain
/// upload endpoint for benchmarks comparing against `curl`).
async fn sink(request: Request) -> Response {
    use http_body::Body as _;
    let mut body = request.into_body();
    let mut total: u64 = 0;
    loop {
        match std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                }
            }
            Some(Err(error)) => {
                return control_error(StatusCode::BAD_REQUEST, &format!("body: {error}"))
            }
            None => break,
        }
    }
    json_response(StatusCode::OK, &json!({"bytes": total}))
}

/// `POST /_sandbox/agency-folder` `{"parent_id","name"}` -> 201 `{"id"}`: a folder created by
/// an agency user (or an operator in the Box web app), e.g. an archive folder of an earlier date.
/// An existing folder of that name is returned with 200.
async fn agency_folder(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let (Some(parent_id), Some(name)) = (
        value.get("parent_id").and_then(Value::as_str),
        value.get("name").and_then(Value::as_str),
    ) else {
        return control_error(StatusCode::BAD_REQUEST, "parent_id and name are required");
    };
    let mut world = app.world();
    if world.boxes.folder(parent_id).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such parent folder");
    }
    if let Err(message) = crate::state::validate_box_name(name) {
        return control_error(StatusCode::BAD_REQUEST, &message);
    }
    match world.boxes.child_named(parent_id, name) {
        Some(BoxItemRef::Folder(i)) => {
            let id = world.boxes.folders[i].id.clone();
            json_response(StatusCode::OK, &json!({"id": id}))
        }
        Some(BoxItemRef::File(_)) => {
            control_error(StatusCode::CONFLICT, "a file with that name exists")
        }
        None => {
            let id = world.boxes.insert_folder(parent_id, name, Actor::Agency);
            json_response(StatusCode::CREATED, &json!({"id": id}))
        }
    }
}

/// `POST /_sandbox/agency-upload` -> 201 with the new Box file object (standard fields), or 200
/// with the file object when a same-named file got a new version.
async fn agency_upload(State(app): State<Arc<App>>, request: Request) -> Response {
    let upload = match read_agency_upload(&app, request).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let existing = {
        let world = app.world();
        if let Some(file_id) = &upload.file_id {
            Some(Ok(file_id.clone()))
        } else {
            match world.boxes.child_named(&upload.folder_id, &upload.name) {
                Some(BoxItemRef::File(i)) => world.boxes.files.get(i).map(|f| Ok(f.id.clone())),
                Some(BoxItemRef::Folder(_)) => Some(Err(())),
                None => None,
            }
        }
    };
    let result = match existing {
        Some(Err(())) => {
            upload.blob.discard().await;
            return box_error(
                StatusCode::CONFLICT,
                "item_name_in_use",
                "A folder with the same name already exists",
                None,
            );
        }
        Some(Ok(file_id)) => commit_new_version(&app, &file_id, None, upload.blob, Actor::Agency)
            .await
            .map(|body| (StatusCode::OK, body)),
        None => commit_new_file(
            &app,
            &upload.folder_id,
            &upload.name,
            upload.blob,
            Actor::Agency,
            None,
            None,
        )
        .await
        .map(|body| (StatusCode::CREATED, body)),
    };
    match result {
        Ok((status, body)) => {
            let entry = body.pointer("/entries/0").cloned().unwrap_or(Value::Null);
            let id = entry
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let world = app.world();
            let file = world
                .boxes
                .file(&id)
                .map(|f| file_json(&app.config, &world.boxes, f, None))
                .unwrap_or(entry);
            json_response(status, &file)
        }
        Err(response) => response,
    }
}

/// `POST /_sandbox/agency-move` `{"file_id", "parent_id"?, "name"?}` -> 200 with the file object:
/// an agency user moves and/or renames a file in the Box web app (e.g. a fixed file out of
/// `_errors/` back into the watched folder). 404 unknown file or folder, 400 invalid name, 409
/// `item_name_in_use` when the target folder has an item of that name.
async fn agency_move(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let Some(file_id) = value.get("file_id").and_then(Value::as_str) else {
        return control_error(StatusCode::BAD_REQUEST, "file_id is required");
    };
    let mut world = app.world();
    let Some(file) = world.boxes.file(file_id) else {
        return control_error(StatusCode::NOT_FOUND, "no such file");
    };
    let parent_id = value
        .get("parent_id")
        .and_then(Value::as_str)
        .map_or_else(|| file.parent_id.clone(), str::to_owned);
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| file.name.clone(), str::to_owned);
    if world.boxes.folder(&parent_id).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such folder");
    }
    if let Err(message) = crate::state::validate_box_name(&name) {
        return control_error(StatusCode::BAD_REQUEST, &message);
    }
    if let Some(existing) = world.boxes.child_named(&parent_id, &name) {
        let is_self = matches!(existing, BoxItemRef::File(i) if world.boxes.files.get(i).is_some_and(|f| f.id == file_id));
        if !is_self {
            return box_error(
                StatusCode::CONFLICT,
                "item_name_in_use",
                "Item with the same name already exists",
                None,
            );
        }
    }
    world
        .boxes
        .move_file(file_id, &parent_id, &name, Actor::Agency);
    match world.boxes.file(file_id) {
        Some(file) => json_response(
            StatusCode::OK,
            &file_json(&app.config, &world.boxes, file, None),
        ),
        None => control_error(StatusCode::NOT_FOUND, "no such file"),
    }
}
