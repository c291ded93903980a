//! Box chunked upload sessions (<https://developer.box.com/guides/uploads/chunked/>), on the
//! upload host (`{upload_url}/2.0/...`, behind bearer auth):
//!
//! - `POST /files/upload_sessions` `{folder_id, file_size, file_name}` and
//!   `POST /files/{id}/upload_sessions` `{file_size, file_name?}` (new version) -> 201
//!   `UploadSession` `{id, type:"upload_session", session_expires_at, part_size, total_parts,
//!   num_parts_processed, session_endpoints{upload_part, commit, abort, list_parts, status,
//!   log_event}}` with absolute URLs on the upload host. `file_size` below 20 000 000 -> 400
//!   `file_size_too_small`; missing fields -> 400 `missing_destination` / `missing_file_size` /
//!   `missing_file_name`; a name already used in the folder (case-insensitively) -> 409
//!   `item_name_in_use` with the conflicting item in `context_info.conflicts`; unknown folder or
//!   file -> 404; restricted folder -> 404 (as Box: not revealed). `part_size` comes from the run-time settings (default
//!   8 MiB).
//! - `PUT /files/upload_sessions/{id}` with `Content-Range: bytes lo-hi/total` and
//!   `Digest: sha=<base64 SHA-1 of the part>` -> 200 `{"part":{part_id, offset, size, sha1}}`.
//!   `lo` must be a multiple of `part_size`, every part exactly `part_size` long except the last
//!   (which ends at `total - 1`), `total` the session's `file_size`; otherwise 416
//!   `requested_range_not_satisfiable`. Digest mismatch -> 400 `digest_mismatch`; missing or
//!   malformed `Digest`/`Content-Range` -> 400 `bad_request`; a body shorter or longer than the
//!   range -> 400 `bad_request`. The same range uploaded again with the same SHA-1 -> 200 with the
//!   stored part (idempotent retry); with different content -> 409 `range_overlaps_existing_part`
//!   and `context_info.conflicting_part`. Parts are streamed to disk, never held in memory.
//! - `GET /files/upload_sessions/{id}/parts?offset&limit` -> 200 `{entries (by offset),
//!   total_count, offset, limit}`.
//! - `GET /files/upload_sessions/{id}` -> 200 `UploadSession` (`num_parts_processed` = parts
//!   stored).
//! - `POST /files/upload_sessions/{id}/commit` with `Digest: sha=<base64 SHA-1 of the file>` and
//!   `{"parts":[{part_id, offset, size, sha1?}...], "attributes"?:{content_created_at?,
//!   content_modified_at?}}`: the listed parts must be exactly the stored parts and cover the
//!   file, else 400 `parts_mismatch`; then the first `commit_accepted_responses` (default 1)
//!   valid commits answer 202 with `Retry-After: commit_retry_after_secs` (default 1) and an empty
//!   body; the next one assembles the parts on disk (streaming, hashing), checks the digest (400
//!   `digest_mismatch`), the name (409 `item_name_in_use`) and `If-Match` for new versions (412),
//!   and answers 201 `Files`. A committed or aborted session is gone: 404.
//! - `DELETE /files/upload_sessions/{id}` -> 204; the parts are deleted.
//!
//! Sessions expire after 7 days (410 `session_expired`). Error codes not in the OpenAPI
//! `ClientError` enum are the ones Box really sends (see `tests/e2e/openapi.rs` for the list
//! and sources); `requested_range_not_satisfiable` (416) is an assumption (unconfirmed).

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::box_api::{
    box_error, check_folder_access, check_if_match, commit_new_file, commit_new_version,
    conflict_json,
};
use crate::http_util::{
    box_time, drain_body, first, header_text, json_response, query_pairs, random_hex, BlobWriter,
    StoredBlob,
};
use crate::state::{validate_box_name, Actor, App, BoxItemRef};

/// Box's minimum `file_size` for a chunked upload session.
pub const MIN_CHUNKED_FILE_SIZE: u64 = 20_000_000;
/// How long a session lives.
const SESSION_LIFETIME: Duration = Duration::from_hours(168);

/// What a session creates when committed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionTarget {
    /// A new file `name` in folder `folder_id`.
    NewFile {
        /// Parent folder.
        folder_id: String,
        /// File name.
        name: String,
    },
    /// A new version of `file_id` (renamed to `name` when given).
    NewVersion {
        /// The file.
        file_id: String,
        /// New name, if any.
        name: Option<String>,
    },
}

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Accepting parts.
    Open,
    /// Committed into this file.
    Committed {
        /// The file created or updated.
        file_id: String,
    },
    /// Aborted by `DELETE`.
    Aborted,
}

/// A stored part.
#[derive(Debug, Clone)]
pub struct SessionPart {
    /// 8 upper-case hex characters.
    pub part_id: String,
    /// Byte offset in the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case SHA-1 hex of the part.
    pub sha1: String,
    /// The part's bytes on disk.
    pub path: PathBuf,
}

impl SessionPart {
    /// `UploadPart` JSON: `{part_id, offset, size, sha1}`.
    pub fn json(&self) -> Value {
        json!({"part_id": self.part_id, "offset": self.offset, "size": self.size, "sha1": self.sha1})
    }
}

/// A chunked upload session.
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// 32 upper-case hex characters.
    pub id: String,
    /// What the commit creates.
    pub target: SessionTarget,
    /// Announced file size.
    pub file_size: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// `ceil(file_size / part_size)`.
    pub total_parts: u64,
    /// Expiry.
    pub expires_at: jiff::Timestamp,
    /// Stored parts by offset.
    pub parts: BTreeMap<u64, SessionPart>,
    /// Directory holding the parts.
    pub dir: PathBuf,
    /// 202 replies still to give to valid commits.
    pub accepted_remaining: u32,
    /// A commit is assembling the file right now.
    pub committing: bool,
    /// Open, committed or aborted.
    pub status: SessionStatus,
}

impl UploadSession {
    /// The `UploadSession` JSON with endpoints under `upload_base` (`http://host:port/api`).
    pub fn json(&self, upload_base: &str) -> Value {
        let url = format!("{upload_base}/2.0/files/upload_sessions/{}", self.id);
        json!({
            "id": self.id,
            "type": "upload_session",
            "session_expires_at": box_time(self.expires_at),
            "part_size": self.part_size,
            "total_parts": self.total_parts,
            "num_parts_processed": self.parts.len(),
            "session_endpoints": {
                "upload_part": url,
                "commit": format!("{url}/commit"),
                "abort": url,
                "list_parts": format!("{url}/parts"),
                "status": url,
                "log_event": format!("{url}/log"),
            },
        })
    }

    /// A summary for `GET /_sandbox/state`.
    pub fn state_json(&self) -> Value {
        json!({
            "id": self.id,
            "target": self.target,
            "file_size": self.file_size,
            "part_size": self.part_size,
            "total_parts": self.total_parts,
            "parts_stored": self.parts.len(),
            "status": self.status,
        })
    }
}

fn upload_base(app: &App) -> String {
    format!("{}/api", app.config.main_base_url)
}

fn bad_request(message: &str) -> Response {
    box_error(StatusCode::BAD_REQUEST, "bad_request", message, None)
}

fn not_found() -> Response {
    box_error(StatusCode::NOT_FOUND, "not_found", "Not Found", None)
}

fn internal(error: &std::io::Error) -> Response {
    tracing::error!(%error, "upload session storage failed");
    box_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        "Internal Server Error",
        None,
    )
}

fn retry_after(status: StatusCode, seconds: u64) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The `file_size` of a create request: 400 with Box's code when missing, invalid or too small.
#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn file_size_of(request: &Value) -> Result<u64, Response> {
    let Some(value) = request.get("file_size") else {
        return Err(box_error(
            StatusCode::BAD_REQUEST,
            "missing_file_size",
            "file_size was not provided",
            None,
        ));
    };
    let size = value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| {
                    #[expect(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "filtered to whole, non-negative values"
                    )]
                    let whole = f as u64;
                    whole
                })
        })
        .ok_or_else(|| {
            box_error(
                StatusCode::BAD_REQUEST,
                "invalid_file_size",
                "file_size was not a valid number",
                None,
            )
        })?;
    if size < MIN_CHUNKED_FILE_SIZE {
        return Err(box_error(
            StatusCode::BAD_REQUEST,
            "file_size_too_small",
            &format!(
                "file_size is below minimum file size for uploads via this API ({MIN_CHUNKED_FILE_SIZE} bytes)"
            ),
            None,
        ));
    }
    Ok(size)
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn json_object(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| bad_request("Invalid JSON body"))
}

fn new_session(app: &App, target: SessionTarget, file_size: u64) -> Response {
    let id = random_hex(32).to_uppercase();
    let dir = app.config.blob_dir.join("sessions").join(&id);
    let mut world = app.world();
    let part_size = world.settings.part_size.max(1);
    let session = UploadSession {
        id: id.clone(),
        target,
        file_size,
        part_size,
        total_parts: file_size.div_ceil(part_size),
        expires_at: crate::http_util::now()
            .checked_add(SESSION_LIFETIME)
            .unwrap_or_else(|_| crate::http_util::now()),
        parts: BTreeMap::new(),
        dir,
        accepted_remaining: world.settings.commit_accepted_responses,
        committing: false,
        status: SessionStatus::Open,
    };
    let body = session.json(&upload_base(app));
    world.boxes.upload_sessions.insert(id, session);
    world.stats.upload_sessions_created += 1;
    json_response(StatusCode::CREATED, &body)
}

/// `POST {upload}/2.0/files/upload_sessions`.
pub async fn create_session(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request = match json_object(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let Some(folder_id) = request.get("folder_id").and_then(Value::as_str) else {
        return box_error(
            StatusCode::BAD_REQUEST,
            "missing_destination",
            "No folder_id was provided",
            None,
        );
    };
    let file_size = match file_size_of(&request) {
        Ok(size) => size,
        Err(response) => return response,
    };
    let Some(name) = request.get("file_name").and_then(Value::as_str) else {
        return box_error(
            StatusCode::BAD_REQUEST,
            "missing_file_name",
            "file_name was not provided",
            None,
        );
    };
    {
        let world = app.world();
        if let Err(response) = check_folder_access(&world.boxes, folder_id) {
            return response;
        }
        if let Err(message) = validate_box_name(name) {
            return box_error(StatusCode::BAD_REQUEST, "item_name_invalid", &message, None);
        }
        if let Some(existing) = world.boxes.child_named(folder_id, name) {
            return box_error(
                StatusCode::CONFLICT,
                "item_name_in_use",
                "Item with the same name already exists",
                Some(json!({"conflicts": conflict_json(&world.boxes, existing)})),
            );
        }
    }
    new_session(
        &app,
        SessionTarget::NewFile {
            folder_id: folder_id.to_owned(),
            name: name.to_owned(),
        },
        file_size,
    )
}

/// `POST {upload}/2.0/files/{id}/upload_sessions` (new version).
pub async fn create_version_session(
    State(app): State<Arc<App>>,
    Path(file_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request = match json_object(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let name = request
        .get("file_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    {
        let world = app.world();
        let Some(file) = world.boxes.file(&file_id) else {
            return not_found();
        };
        if let Err(response) = check_folder_access(&world.boxes, &file.parent_id) {
            return response;
        }
        if let Some(name) = name.as_deref().filter(|n| *n != file.name) {
            if let Err(message) = validate_box_name(name) {
                return box_error(StatusCode::BAD_REQUEST, "item_name_invalid", &message, None);
            }
            if let Some(existing) = world.boxes.child_named(&file.parent_id, name) {
                let is_self = matches!(existing, BoxItemRef::File(i) if world.boxes.files.get(i).is_some_and(|f| f.id == file_id));
                if !is_self {
                    return box_error(
                        StatusCode::CONFLICT,
                        "item_name_in_use",
                        "Item with the same name already exists",
                        Some(json!({"conflicts": conflict_json(&world.boxes, existing)})),
                    );
                }
            }
        }
    }
    let file_size = match file_size_of(&request) {
        Ok(size) => size,
        Err(response) => return response,
    };
    new_session(&app, SessionTarget::NewVersion { file_id, name }, file_size)
}

/// The open session `id`, or the 404 / 410 reply.
#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn open_session(app: &App, id: &str) -> Result<UploadSession, Response> {
    let world = app.world();
    match world.boxes.upload_sessions.get(id) {
        Some(session) if session.status == SessionStatus::Open => {
            if session.expires_at <= crate::http_util::now() {
                Err(box_error(
                    StatusCode::GONE,
                    "session_expired",
                    "The upload session has expired",
                    None,
                ))
            } else {
                Ok(session.clone())
            }
        }
        _ => Err(not_found()),
    }
}

/// `GET {upload}/2.0/files/upload_sessions/{id}`.
pub async fn get_session(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match open_session(&app, &id) {
        Ok(session) => json_response(StatusCode::OK, &session.json(&upload_base(&app))),
        Err(response) => response,
    }
}

/// `DELETE {upload}/2.0/files/upload_sessions/{id}` -> 204.
pub async fn abort_session(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let dir = {
        let mut world = app.world();
        match world.boxes.upload_sessions.get_mut(&id) {
            Some(session) if session.status == SessionStatus::Open => {
                session.status = SessionStatus::Aborted;
                session.parts.clear();
                let dir = session.dir.clone();
                world.stats.upload_sessions_aborted += 1;
                dir
            }
            _ => return not_found(),
        }
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET {upload}/2.0/files/upload_sessions/{id}/parts?offset&limit`.
pub async fn list_parts(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let session = match open_session(&app, &id) {
        Ok(session) => session,
        Err(response) => return response,
    };
    let pairs = query_pairs(&uri);
    let offset = match first(&pairs, "offset").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(offset)) if offset <= 10_000 => offset,
        Some(_) => return bad_request("Invalid value for 'offset'."),
    };
    let limit = match first(&pairs, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(limit)) => limit.clamp(1, 1000),
        Some(Err(_)) => return bad_request("Invalid value for 'limit'."),
    };
    let entries: Vec<Value> = session
        .parts
        .values()
        .skip(offset)
        .take(limit)
        .map(SessionPart::json)
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "entries": entries,
            "total_count": session.parts.len(),
            "offset": offset,
            "limit": limit,
        }),
    )
}

/// `Content-Range: bytes lo-hi/total` -> `(lo, hi, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let spec = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = spec.split_once('/')?;
    let (lo, hi) = range.trim().split_once('-')?;
    Some((
        lo.trim().parse().ok()?,
        hi.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `Digest: sha=<base64>` (RFC 3230; other algorithms in the list are ignored) -> SHA-1 hex.
pub fn parse_sha_digest(value: &str) -> Option<String> {
    value.split(',').find_map(|item| {
        let (algorithm, encoded) = item.trim().split_once('=')?;
        if !algorithm.trim().eq_ignore_ascii_case("sha") {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        (bytes.len() == 20).then(|| hex::encode(bytes))
    })
}

fn sha_digest_of(hex_sha1: &str) -> String {
    let bytes = hex::decode(hex_sha1).unwrap_or_default();
    format!(
        "sha={}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Streams a request body into `writer`; `Err` is a client-side read error.
async fn copy_body(body: Body, writer: &mut BlobWriter) -> Result<(), String> {
    use http_body::Body as _;
    let mut body = body;
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(()),
            Some(Err(error)) => return Err(format!("Upload interrupted: {error}")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    writer
                        .write(&data)
                        .await
                        .map_err(|e| format!("storage failed: {e}"))?;
                }
            }
        }
    }
}

/// `PUT {upload}/2.0/files/upload_sessions/{id}`: one part.
pub async fn upload_part(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let session = match open_session(&app, &id) {
        Ok(session) => session,
        Err(response) => {
            drain_body(body).await;
            return response;
        }
    };
    let Some((lo, hi, total)) =
        header_text(&headers, "content-range").and_then(parse_content_range)
    else {
        drain_body(body).await;
        return bad_request("Missing or invalid Content-Range header (expected bytes lo-hi/total)");
    };
    let range_error = if total != session.file_size {
        Some(format!(
            "The total size in Content-Range ({total}) does not match the session's file_size ({})",
            session.file_size
        ))
    } else if hi < lo || hi >= total {
        Some(format!(
            "Invalid range {lo}-{hi} for a file of {total} bytes"
        ))
    } else if lo % session.part_size != 0 {
        Some(format!(
            "The range must start at a multiple of the part size ({})",
            session.part_size
        ))
    } else {
        let size = hi - lo + 1;
        let last = hi == total - 1;
        if (!last && size != session.part_size) || (last && size > session.part_size) {
            Some(format!(
                "Each part must be exactly {} bytes long, except the last one",
                session.part_size
            ))
        } else {
            None
        }
    };
    if let Some(message) = range_error {
        drain_body(body).await;
        return box_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "requested_range_not_satisfiable",
            &message,
            None,
        );
    }
    let Some(expected_sha1) = header_text(&headers, "digest").and_then(parse_sha_digest) else {
        drain_body(body).await;
        return bad_request("Missing or invalid Digest header (expected sha=<base64 SHA-1>)");
    };
    let size = hi - lo + 1;
    let mut writer = match BlobWriter::create(&session.dir).await {
        Ok(writer) => writer,
        Err(error) => {
            drain_body(body).await;
            return internal(&error);
        }
    };
    if let Err(message) = copy_body(body, &mut writer).await {
        writer.discard().await;
        return bad_request(&message);
    }
    let blob = match writer.finish().await {
        Ok(blob) => blob,
        Err(error) => return internal(&error),
    };
    if blob.size != size {
        let received = blob.size;
        blob.discard().await;
        return bad_request(&format!(
            "Request body size ({received}) didn't match the Content-Range ({size} bytes)"
        ));
    }
    if blob.sha1 != expected_sha1 {
        let message = format!(
            "Part digest was incorrect. Actual: {} Expected: {}",
            sha_digest_of(&blob.sha1),
            sha_digest_of(&expected_sha1)
        );
        blob.discard().await;
        return box_error(StatusCode::BAD_REQUEST, "digest_mismatch", &message, None);
    }
    let part_id = random_hex(8).to_uppercase();
    let target = session.dir.join(format!("part-{part_id}"));
    let blob = match blob.persist(target).await {
        Ok(blob) => blob,
        Err(error) => return internal(&error),
    };
    let outcome = {
        let mut world = app.world();
        let stored = match world.boxes.upload_sessions.get_mut(&id) {
            Some(current) if current.status == SessionStatus::Open => {
                match current.parts.get(&lo) {
                    Some(existing) if existing.sha1 == blob.sha1 && existing.size == size => {
                        Err(Ok(existing.json()))
                    }
                    Some(existing) => Err(Err(box_error(
                        StatusCode::CONFLICT,
                        "range_overlaps_existing_part",
                        "Part overlaps with a previously uploaded part",
                        Some(json!({"conflicting_part": existing.json()})),
                    ))),
                    None => {
                        let part = SessionPart {
                            part_id,
                            offset: lo,
                            size,
                            sha1: blob.sha1.clone(),
                            path: blob.path.clone(),
                        };
                        let json = part.json();
                        current.parts.insert(lo, part);
                        Ok(json)
                    }
                }
            }
            _ => Err(Err(not_found())),
        };
        if stored.is_ok() {
            world.stats.upload_parts_stored += 1;
        }
        stored
    };
    match outcome {
        Ok(part) => json_response(StatusCode::OK, &json!({ "part": part })),
        Err(reply) => {
            blob.discard().await;
            match reply {
                Ok(existing) => json_response(StatusCode::OK, &json!({ "part": existing })),
                Err(response) => response,
            }
        }
    }
}

/// Whether the commit's part list is exactly the stored parts, covering the whole file.
fn parts_match(session: &UploadSession, listed: &[Value]) -> bool {
    if listed.len() != session.parts.len() || session.parts.len() as u64 != session.total_parts {
        return false;
    }
    let mut listed: Vec<&Value> = listed.iter().collect();
    listed.sort_by_key(|part| {
        part.get("offset")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX)
    });
    listed
        .iter()
        .zip(session.parts.values())
        .all(|(given, stored)| {
            given.get("part_id").and_then(Value::as_str) == Some(stored.part_id.as_str())
                && given.get("offset").and_then(Value::as_u64) == Some(stored.offset)
                && given.get("size").and_then(Value::as_u64) == Some(stored.size)
                && given
                    .get("sha1")
                    .and_then(Value::as_str)
                    .is_none_or(|sha1| sha1.eq_ignore_ascii_case(&stored.sha1))
        })
}

/// Concatenates the parts into one blob under `dir`, hashing on the way.
async fn assemble(parts: &[SessionPart], dir: &FsPath) -> std::io::Result<StoredBlob> {
    let mut writer = BlobWriter::create(dir).await?;
    let mut buffer = vec![0u8; 256 * 1024];
    for part in parts {
        let mut input = match tokio::fs::File::open(&part.path).await {
            Ok(input) => input,
            Err(error) => {
                writer.discard().await;
                return Err(error);
            }
        };
        loop {
            let read = match input.read(&mut buffer).await {
                Ok(read) => read,
                Err(error) => {
                    writer.discard().await;
                    return Err(error);
                }
            };
            if read == 0 {
                break;
            }
            let chunk = axum::body::Bytes::copy_from_slice(&buffer[..read]);
            if let Err(error) = writer.write(&chunk).await {
                writer.discard().await;
                return Err(error);
            }
        }
    }
    writer.finish().await
}

fn set_committing(app: &App, id: &str, committing: bool) {
    if let Some(session) = app.world().boxes.upload_sessions.get_mut(id) {
        session.committing = committing;
    }
}

fn parse_time(value: Option<&Value>) -> Option<jiff::Timestamp> {
    value
        .and_then(Value::as_str)
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
}

/// `POST {upload}/2.0/files/upload_sessions/{id}/commit`.
pub async fn commit_session(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = match json_object(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let Some(listed) = request.get("parts").and_then(Value::as_array) else {
        return bad_request("'parts' is required");
    };
    let Some(expected_sha1) = header_text(&headers, "digest").and_then(parse_sha_digest) else {
        return bad_request("Missing or invalid Digest header (expected sha=<base64 SHA-1>)");
    };
    // Validate and decide under the lock: parts, 202s, concurrent commits.
    let session = {
        let mut world = app.world();
        let retry_secs = world.settings.commit_retry_after_secs;
        let version_file = match world.boxes.upload_sessions.get(&id) {
            Some(session) if session.status == SessionStatus::Open => match &session.target {
                SessionTarget::NewVersion { file_id, .. } => Some(file_id.clone()),
                SessionTarget::NewFile { .. } => None,
            },
            _ => return not_found(),
        };
        if let Some(file_id) = version_file {
            match world.boxes.file(&file_id) {
                None => return not_found(),
                Some(file) => {
                    if let Err(response) = check_if_match(&headers, file) {
                        return response;
                    }
                }
            }
        }
        let Some(session) = world.boxes.upload_sessions.get_mut(&id) else {
            return not_found();
        };
        if !parts_match(session, listed) {
            return box_error(
                StatusCode::BAD_REQUEST,
                "parts_mismatch",
                "The parts in the request do not match the parts uploaded to the session",
                None,
            );
        }
        if session.committing {
            return retry_after(StatusCode::ACCEPTED, retry_secs);
        }
        if session.accepted_remaining > 0 {
            session.accepted_remaining -= 1;
            return retry_after(StatusCode::ACCEPTED, retry_secs);
        }
        session.committing = true;
        session.clone()
    };
    let parts: Vec<SessionPart> = session.parts.values().cloned().collect();
    let blob = match assemble(&parts, &app.config.blob_dir.join("box")).await {
        Ok(blob) => blob,
        Err(error) => {
            set_committing(&app, &id, false);
            return internal(&error);
        }
    };
    if blob.sha1 != expected_sha1 {
        let message = format!(
            "File digest was incorrect. Actual: {} Expected: {}",
            sha_digest_of(&blob.sha1),
            sha_digest_of(&expected_sha1)
        );
        blob.discard().await;
        set_committing(&app, &id, false);
        return box_error(StatusCode::BAD_REQUEST, "digest_mismatch", &message, None);
    }
    let attributes = request.get("attributes");
    let result = match &session.target {
        SessionTarget::NewFile { folder_id, name } => {
            commit_new_file(
                &app,
                folder_id,
                name,
                blob,
                Actor::Service,
                parse_time(attributes.and_then(|a| a.get("content_created_at"))),
                parse_time(attributes.and_then(|a| a.get("content_modified_at"))),
            )
            .await
        }
        SessionTarget::NewVersion { file_id, name } => {
            commit_new_version(&app, file_id, name.as_deref(), blob, Actor::Service).await
        }
    };
    match result {
        Ok(files) => {
            let file_id = files
                .pointer("/entries/0/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            {
                let mut world = app.world();
                if let Some(current) = world.boxes.upload_sessions.get_mut(&id) {
                    current.status = SessionStatus::Committed { file_id };
                    current.committing = false;
                    current.parts.clear();
                }
                world.stats.upload_sessions_committed += 1;
            }
            let _ = tokio::fs::remove_dir_all(&session.dir).await;
            json_response(StatusCode::CREATED, &files)
        }
        Err(response) => {
            set_committing(&app, &id, false);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_and_digest() {
        assert_eq!(
            parse_content_range("bytes 0-8388607/20000000"),
            Some((0, 8_388_607, 20_000_000))
        );
        assert_eq!(parse_content_range("bytes=0-1/2"), None);
        assert_eq!(parse_content_range("0-1/2"), None);
        // SHA-1 of "" is da39a3ee5e6b4b0d3255bfef95601890afd80709.
        assert_eq!(
            parse_sha_digest("sha=2jmj7l5rSw0yVb/vlWAYkK/YBwk=").as_deref(),
            Some("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        );
        assert_eq!(
            parse_sha_digest("md5=x, SHA=2jmj7l5rSw0yVb/vlWAYkK/YBwk=").as_deref(),
            Some("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        );
        assert_eq!(parse_sha_digest("sha=abc"), None);
        assert_eq!(
            sha_digest_of("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            "sha=2jmj7l5rSw0yVb/vlWAYkK/YBwk="
        );
    }
}
