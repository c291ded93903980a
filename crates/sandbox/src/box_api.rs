//! Box API v2.0 emulation: token endpoint, folders, files, downloads (via the second port),
//! simple uploads, preflight and chunked upload sessions (see [`crate::chunked`]), with Box's JSON
//! shapes, status codes and error bodies, an optional per-token rate limit (429
//! `rate_limit_exceeded` + integer `Retry-After`, [`crate::state::Settings`]) and folders the
//! service account cannot access (403 `access_denied_insufficient_permissions`).
//!
//! Follows `api-notes/box.md` and Box's OpenAPI spec (`reference/box-openapi.json`, schemas
//! `File--Full`, `Folder--Full`, `Items`, `Files`, `ClientError`, `AccessToken`, `OAuth2Error`).
//! Error codes Box really returns but the spec's `ClientError.code` enum omits (for example
//! `item_name_in_use`, `bad_digest`, `metadata_after_file_contents`, `not_found`'s siblings) are
//! still used, because clients branch on them.
//!
//! `GET /2.0/events` serves the changes stream of the Box model ([`crate::state::EventLog`],
//! schema `Events`); its faults (lost, repeated, reordered events, expired positions) are set
//! with `events` in `/_sandbox/config`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::http_util::{
    box_time, first, header_text, json_response, query_pairs, random_alnum, random_hex, serve_file,
    BlobWriter, StoredBlob,
};
use crate::state::{
    sort_key, validate_box_name, Actor, App, AppConfig, BoxFile, BoxFolder, BoxItemRef, BoxStore,
    DownloadTicket, NewVersion,
};

/// The real Box token URL: the JWT `aud` Box requires. The sandbox also accepts its own token URL
/// (`oauth2_url` of the ready line): a client pointed at custom base URLs may put either there.
/// Box's official SDKs (box-sdk-gen) always send this constant, whatever `oauth2_url` they use.
pub const BOX_TOKEN_AUDIENCE: &str = "https://api.box.com/oauth2/token";
/// Box's `help_url` in error bodies.
const HELP_URL: &str = "http://developers.box.com/docs/#errors";
/// Default fields of a standard file object (`GET /files/{id}` without `fields`).
const FILE_STANDARD_FIELDS: &[&str] = &[
    "description",
    "size",
    "path_collection",
    "created_at",
    "modified_at",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "created_by",
    "modified_by",
    "owned_by",
    "shared_link",
    "parent",
    "item_status",
];
/// Default fields of a standard folder object (`GET /folders/{id}` without `fields`).
const FOLDER_STANDARD_FIELDS: &[&str] = &[
    "created_at",
    "modified_at",
    "description",
    "size",
    "path_collection",
    "created_by",
    "modified_by",
    "trashed_at",
    "purged_at",
    "content_created_at",
    "content_modified_at",
    "owned_by",
    "folder_upload_email",
    "parent",
    "item_status",
    "item_collection",
];
/// How long a download ticket stays valid.
const DOWNLOAD_TICKET_LIFETIME: Duration = Duration::from_mins(5);

/// Routes of the API host (`/2.0/...`) and upload host (`/api/2.0/...`), behind bearer auth.
pub fn api_routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/2.0/folders", post(create_folder))
        .route("/2.0/folders/{id}", get(get_folder).delete(delete_folder))
        .route("/2.0/folders/{id}/items", get(folder_items))
        .route("/2.0/events", get(events))
        .route("/2.0/files/{id}", get(get_file).put(update_file))
        .route("/2.0/files/{id}/content", get(download_file))
        .route("/2.0/files/content", axum::routing::options(preflight))
        .route("/api/2.0/files/content", post(upload_new_file))
        .route("/api/2.0/files/{id}/content", post(upload_new_version))
        .route(
            "/api/2.0/files/upload_sessions",
            post(crate::chunked::create_session),
        )
        .route(
            "/api/2.0/files/{id}/upload_sessions",
            post(crate::chunked::create_version_session),
        )
        .route(
            "/api/2.0/files/upload_sessions/{session_id}",
            get(crate::chunked::get_session)
                .put(crate::chunked::upload_part)
                .delete(crate::chunked::abort_session),
        )
        .route(
            "/api/2.0/files/upload_sessions/{session_id}/parts",
            get(crate::chunked::list_parts),
        )
        .route(
            "/api/2.0/files/upload_sessions/{session_id}/commit",
            post(crate::chunked::commit_session),
        )
        .route_layer(axum::middleware::from_fn_with_state(app, require_token))
}

/// The token endpoint (`POST /oauth2/token`).
pub fn token_routes() -> Router<Arc<App>> {
    Router::new().route("/oauth2/token", post(token))
}

/// Routes of the download host (second port): `GET /d/{token}`.
pub fn download_routes() -> Router<Arc<App>> {
    Router::new().route("/d/{token}", get(download_ticket))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A Box error reply: `{type:"error", status, code, message, context_info?, help_url, request_id}`.
pub fn box_error(
    status: StatusCode,
    code: &str,
    message: &str,
    context_info: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": "error",
        "status": status.as_u16(),
        "code": code,
        "message": message,
        "help_url": HELP_URL,
        "request_id": random_hex(16),
    });
    if let (Some(context), Some(object)) = (context_info, body.as_object_mut()) {
        object.insert("context_info".to_owned(), context);
    }
    json_response(status, &body)
}

/// The conventional Box error code for a status (used by injected faults).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        429 => "rate_limit_exceeded",
        500 => "internal_server_error",
        502 => "bad_gateway",
        503 => "unavailable",
        // Box documents no 504 body; the enum's "unavailable" is the closest (unconfirmed).
        504 => "unavailable",
        _ => "internal_server_error",
    }
}

/// 401 as Box sends it for a missing, unknown or expired token: empty body and
/// `WWW-Authenticate: Bearer realm="Service", error="invalid_token", error_description="..."`.
pub fn unauthorized(description: &str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    let value = format!(
        "Bearer realm=\"Service\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn not_found() -> Response {
    box_error(StatusCode::NOT_FOUND, "not_found", "Not Found", None)
}

/// 403 as Box sends it when the service account is not a collaborator on an item.
pub fn access_denied() -> Response {
    box_error(
        StatusCode::FORBIDDEN,
        "access_denied_insufficient_permissions",
        "Access denied - insufficient permission",
        None,
    )
}

/// The folder `id` if the service account may use it: 404 when unknown, and 404 too when it is
/// restricted (or below a restricted folder): Box answers 404 `not_found` for an item the user
/// is not a collaborator on, so as not to reveal that it exists (Box OpenAPI spec,
/// `GET /folders/{folder_id}`: "404 Returned if the folder is not found, or the user does not
/// have access to the folder").
#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
pub fn check_folder_access<'a>(store: &'a BoxStore, id: &str) -> Result<&'a BoxFolder, Response> {
    let Some(folder) = store.folder(id) else {
        return Err(not_found());
    };
    if folder.restricted || store.ancestors(id).iter().any(|f| f.restricted) {
        return Err(not_found());
    }
    Ok(folder)
}

/// 429 `rate_limit_exceeded` with `Retry-After` in whole seconds (at least 1).
pub fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = box_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "Request rate limit exceeded, please try again later",
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

fn bad_request(message: &str) -> Response {
    box_error(StatusCode::BAD_REQUEST, "bad_request", message, None)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = json_response(
        status,
        &json!({"error": error, "error_description": description}),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

/// Bearer-token middleware for `/2.0` and `/api/2.0`.
pub async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let token = header_text(request.headers(), "authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let Some(token) = token else {
        return unauthorized("The access token was not found.");
    };
    {
        let mut world = app.world();
        match world.auth.box_tokens.get(&token) {
            None => return unauthorized("The access token provided is invalid."),
            Some(expires) if *expires <= Instant::now() => {
                world.auth.box_tokens.remove(&token);
                return unauthorized("The access token provided has expired.");
            }
            Some(_) => {}
        }
        if let Some(limit) = world.settings.rate_limit {
            if let Err(wait) = world.rate.admit(&token, limit, Instant::now()) {
                world.stats.rate_limited += 1;
                return rate_limited(wait);
            }
        }
    }
    next.run(request).await
}

/// `POST /oauth2/token` with the JWT bearer grant
/// (<https://developer.box.com/guides/authentication/jwt/without-sdk/>).
async fn token(
    State(app): State<Arc<App>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request body",
        );
    };
    let keys = &app.config.keys;
    if first(&pairs, "grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type parameter or parameter missing",
        );
    }
    if first(&pairs, "client_id") != Some(keys.client_id.as_str())
        || first(&pairs, "client_secret") != Some(keys.client_secret.as_str())
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "The client credentials are invalid",
        );
    }
    let Some(assertion) = first(&pairs, "assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing assertion parameter",
        );
    };
    match verify_assertion(&app, assertion) {
        Ok(()) => {}
        Err(description) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &description)
        }
    }
    let access_token = random_alnum(32);
    let lifetime = app.config.token_lifetime;
    {
        let mut world = app.world();
        let now = Instant::now();
        world.auth.box_tokens.retain(|_, expires| *expires > now);
        world
            .auth
            .box_tokens
            .insert(access_token.clone(), now + lifetime);
        world.auth.tokens_issued += 1;
    }
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "expires_in": lifetime.as_secs(),
            "token_type": "bearer",
            "restricted_to": [],
        }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Checks the assertion's header, signature and claims; `Err` carries Box's `error_description`.
fn verify_assertion(app: &App, assertion: &str) -> Result<(), String> {
    use jsonwebtoken::Algorithm;
    let keys = &app.config.keys;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| "Invalid JWT: the assertion could not be decoded".to_owned())?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
    ) {
        return Err(
            "Please check the 'alg' header. Only RS256, RS384 and RS512 are supported.".to_owned(),
        );
    }
    if header.kid.as_deref() != Some(keys.public_key_id.as_str()) {
        return Err("Please check the 'kid' header. It must be the ID of a public key registered for the app.".to_owned());
    }
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = std::collections::HashSet::new();
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(assertion, &keys.decoding_key, &validation).map_err(|error| {
        match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "Signature verification error. The public key identified by \"kid\" must correspond to the private key used for signing.".to_owned(),
            _ => "Invalid JWT: the assertion could not be verified".to_owned(),
        }
    })?;
    let claims = data.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(keys.client_id.as_str()) {
        return Err("Please check the 'iss' claim. It must be the app's client ID.".to_owned());
    }
    if text("box_sub_type") != Some("enterprise") {
        return Err(
            "Please check the 'box_sub_type' claim. Expected 'enterprise' for the service account."
                .to_owned(),
        );
    }
    if text("sub") != Some(keys.enterprise_id.as_str()) {
        return Err("Please check the 'sub' claim. The 'sub' specified is invalid.".to_owned());
    }
    let own_audience = format!("{}/oauth2/token", app.config.main_base_url);
    let accepted = |aud: &str| aud == BOX_TOKEN_AUDIENCE || aud == own_audience;
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted(aud),
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).any(accepted),
        _ => false,
    };
    if !audience_ok {
        return Err(format!(
            "Please check the 'aud' claim. Should be {BOX_TOKEN_AUDIENCE}."
        ));
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err("Please check the 'exp' claim. Should be an integer.".to_owned());
    };
    let now = jiff::Timestamp::now().as_second();
    if exp <= now {
        return Err(
            "Current date/time MUST be before the expiration date/time listed in the 'exp' claim"
                .to_owned(),
        );
    }
    if exp > now + 60 {
        return Err("Please check the 'exp' claim. The 'exp' value exceeds the maximum value of 60 seconds beyond the issue time.".to_owned());
    }
    let Some(jti) = text("jti") else {
        return Err("Please check the 'jti' claim. A unique 'jti' value is required.".to_owned());
    };
    let length = jti.chars().count();
    if !(16..=128).contains(&length) {
        return Err("Please check the 'jti' claim. The 'jti' value must be between 16 and 128 characters long.".to_owned());
    }
    let mut world = app.world();
    if !world.auth.used_jti.insert(jti.to_owned()) {
        return Err("Please check the 'jti' claim. A unique 'jti' value is required.".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON shapes
// ---------------------------------------------------------------------------------------------

/// A user mini object (`User--Mini`) for an actor.
pub fn user_json(config: &AppConfig, actor: Actor) -> Value {
    match actor {
        Actor::Service => json!({
            "type": "user",
            "id": config.credentials.box_service_user_id,
            "name": "Content Scaling Service",
            "login": config.credentials.box_service_login,
        }),
        Actor::Agency => json!({
            "type": "user",
            "id": "21900000042",
            "name": "Agency Producer",
            "login": "producer@agency.example",
        }),
    }
}

/// `Folder--Mini`: `{type, id, sequence_id, etag, name}`; the root has null etag/sequence_id.
pub fn folder_mini(folder: &BoxFolder) -> Value {
    if folder.id == "0" {
        return json!({"type": "folder", "id": "0", "sequence_id": null, "etag": null, "name": folder.name});
    }
    json!({
        "type": "folder",
        "id": folder.id,
        "sequence_id": folder.etag.to_string(),
        "etag": folder.etag.to_string(),
        "name": folder.name,
    })
}

/// `File--Mini`: `{type, id, file_version{type,id,sha1}, sequence_id, etag, sha1, name}`.
pub fn file_mini(file: &BoxFile) -> Value {
    let (version_id, sha1) = file
        .current()
        .map(|v| (v.id.clone(), v.sha1.clone()))
        .unwrap_or_default();
    json!({
        "type": "file",
        "id": file.id,
        "file_version": {"type": "file_version", "id": version_id, "sha1": sha1},
        "sequence_id": file.etag.to_string(),
        "etag": file.etag.to_string(),
        "sha1": sha1,
        "name": file.name,
    })
}

/// `source` of an event about a file: `File--Mini` plus `parent` and `path_collection`.
pub fn event_source_file(store: &BoxStore, file: &BoxFile) -> Value {
    let mut source = file_mini(file);
    if let Some(parent) = store.folder(&file.parent_id) {
        source["parent"] = folder_mini(parent);
    }
    source["path_collection"] = path_collection(store, &file.parent_id, true);
    source
}

/// `source` of an event about a folder: `Folder--Mini` plus `parent` and `path_collection`.
pub fn event_source_folder(store: &BoxStore, folder: &BoxFolder) -> Value {
    let mut source = folder_mini(folder);
    let parent = folder.parent_id.as_deref().and_then(|id| store.folder(id));
    source["parent"] = parent.map_or(Value::Null, folder_mini);
    source["path_collection"] = path_collection(store, &folder.id, false);
    source
}

fn path_collection(store: &BoxStore, folder_id: &str, include_self: bool) -> Value {
    let mut entries: Vec<Value> = store
        .ancestors(folder_id)
        .into_iter()
        .map(folder_mini)
        .collect();
    if include_self {
        if let Some(folder) = store.folder(folder_id) {
            entries.push(folder_mini(folder));
        }
    }
    json!({"total_count": entries.len(), "entries": entries})
}

fn file_field(config: &AppConfig, store: &BoxStore, file: &BoxFile, name: &str) -> Option<Value> {
    let current = file.current();
    Some(match name {
        "description" => json!(""),
        "size" => json!(current.map_or(0, |v| v.size)),
        "path_collection" => path_collection(store, &file.parent_id, true),
        "created_at" => json!(box_time(file.created_at)),
        "modified_at" => json!(box_time(file.modified_at)),
        "content_created_at" => json!(box_time(file.content_created_at)),
        "content_modified_at" => json!(box_time(file.content_modified_at)),
        "trashed_at" | "purged_at" | "shared_link" | "expires_at" | "disposition_at" => Value::Null,
        "created_by" => user_json(config, file.created_by),
        "modified_by" => user_json(config, file.modified_by),
        "owned_by" => user_json(config, Actor::Service),
        "parent" => store
            .folder(&file.parent_id)
            .map_or(Value::Null, folder_mini),
        "item_status" => json!("active"),
        "version_number" => json!(file.versions.len().to_string()),
        "comment_count" => json!(0),
        "extension" => json!(file.name.rsplit_once('.').map(|(_, e)| e).unwrap_or("")),
        "is_package" | "has_collaborations" | "is_externally_owned" => json!(false),
        "uploader_display_name" => {
            let actor = current.map_or(Actor::Service, |v| v.uploaded_by);
            user_json(config, actor)
                .get("name")
                .cloned()
                .unwrap_or(Value::Null)
        }
        _ => return None,
    })
}

fn folder_field(
    config: &AppConfig,
    store: &BoxStore,
    folder: &BoxFolder,
    name: &str,
) -> Option<Value> {
    let root = folder.id == "0";
    let time = |ts: jiff::Timestamp| {
        if root {
            Value::Null
        } else {
            json!(box_time(ts))
        }
    };
    Some(match name {
        "created_at" | "content_created_at" => time(folder.created_at),
        "modified_at" | "content_modified_at" => time(folder.modified_at),
        "description" => json!(""),
        "size" => json!(store.folder_size(&folder.id)),
        "path_collection" => path_collection(store, &folder.id, false),
        "created_by" => user_json(config, folder.created_by),
        "modified_by" => user_json(config, Actor::Service),
        "owned_by" => user_json(config, Actor::Service),
        "trashed_at" | "purged_at" | "folder_upload_email" => Value::Null,
        "parent" => folder
            .parent_id
            .as_deref()
            .and_then(|id| store.folder(id))
            .map_or(Value::Null, folder_mini),
        "item_status" => json!("active"),
        "has_collaborations" | "is_externally_owned" => json!(false),
        "item_collection" => {
            let children = store.children(&folder.id);
            let entries: Vec<Value> = children
                .iter()
                .take(100)
                .map(|item| item_json(config, store, *item, None))
                .collect();
            json!({
                "total_count": children.len(),
                "entries": entries,
                "offset": 0,
                "limit": 100,
                "order": [{"by": "type", "direction": "ASC"}, {"by": "name", "direction": "ASC"}],
            })
        }
        _ => return None,
    })
}

/// A file object: the mini shape plus `fields` (or the standard field set when `None`).
pub fn file_json(
    config: &AppConfig,
    store: &BoxStore,
    file: &BoxFile,
    fields: Option<&[String]>,
) -> Value {
    let mut object = match file_mini(file) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    add_fields(&mut object, fields, FILE_STANDARD_FIELDS, |name| {
        file_field(config, store, file, name)
    });
    Value::Object(object)
}

/// A folder object: the mini shape plus `fields` (or the standard field set when `None`).
pub fn folder_json(
    config: &AppConfig,
    store: &BoxStore,
    folder: &BoxFolder,
    fields: Option<&[String]>,
) -> Value {
    let mut object = match folder_mini(folder) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    add_fields(&mut object, fields, FOLDER_STANDARD_FIELDS, |name| {
        folder_field(config, store, folder, name)
    });
    Value::Object(object)
}

fn add_fields(
    object: &mut Map<String, Value>,
    fields: Option<&[String]>,
    standard: &[&str],
    lookup: impl Fn(&str) -> Option<Value>,
) {
    match fields {
        Some(names) => {
            for name in names {
                if object.contains_key(name) {
                    continue;
                }
                if let Some(value) = lookup(name) {
                    object.insert(name.clone(), value);
                }
            }
        }
        None => {
            for name in standard {
                if let Some(value) = lookup(name) {
                    object.insert((*name).to_owned(), value);
                }
            }
        }
    }
}

/// An entry of a folder listing: mini shape plus requested `fields` (mini only when `None`).
fn item_json(
    config: &AppConfig,
    store: &BoxStore,
    item: BoxItemRef,
    fields: Option<&[String]>,
) -> Value {
    let fields = fields.unwrap_or(&[]);
    match item {
        BoxItemRef::Folder(i) => store
            .folders
            .get(i)
            .map_or(Value::Null, |f| folder_json(config, store, f, Some(fields))),
        BoxItemRef::File(i) => store
            .files
            .get(i)
            .map_or(Value::Null, |f| file_json(config, store, f, Some(fields))),
    }
}

/// The conflict object of a 409 for an existing item (file: mini with sha1 + file_version).
pub(crate) fn conflict_json(store: &BoxStore, item: BoxItemRef) -> Value {
    match item {
        BoxItemRef::Folder(i) => store.folders.get(i).map_or(Value::Null, folder_mini),
        BoxItemRef::File(i) => store.files.get(i).map_or(Value::Null, file_mini),
    }
}

fn fields_param(uri: &Uri) -> Option<Vec<String>> {
    let pairs = query_pairs(uri);
    first(&pairs, "fields").map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------------------------

/// `GET /2.0/folders/{id}`.
async fn get_folder(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let fields = fields_param(&uri);
    let world = app.world();
    match check_folder_access(&world.boxes, &id) {
        Ok(folder) => json_response(
            StatusCode::OK,
            &folder_json(&app.config, &world.boxes, folder, fields.as_deref()),
        ),
        Err(response) => response,
    }
}

/// `DELETE /2.0/folders/{id}[?recursive=true]`: moves the folder to the trash; 204 with no body.
/// A non-empty folder without `recursive=true` is 400 `folder_not_empty`; the root is 403; a
/// stale `If-Match` is 412 `precondition_failed`.
async fn delete_folder(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let pairs = query_pairs(&uri);
    let recursive = first(&pairs, "recursive") == Some("true");
    let mut world = app.world();
    let etag = match check_folder_access(&world.boxes, &id) {
        Ok(folder) => folder.etag,
        Err(response) => return response,
    };
    if id == "0" {
        return access_denied();
    }
    if let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if expected.trim_matches('"') != etag.to_string() {
            return box_error(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "The resource has been modified. Please retrieve the resource again and retry",
                None,
            );
        }
    }
    if !recursive && world.boxes.has_children(&id) {
        return box_error(
            StatusCode::BAD_REQUEST,
            "folder_not_empty",
            "Cannot delete – folder not empty",
            None,
        );
    }
    world.boxes.trash_folder(&id);
    StatusCode::NO_CONTENT.into_response()
}

fn encode_marker(kind: u8, name: &str, id: &str) -> String {
    let (lower, padded) = sort_key(name, id);
    let text = json!([kind, lower, padded]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_marker(marker: &str) -> Option<(u8, String, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()?;
    let (kind, name, id): (u8, String, String) = serde_json::from_slice(&bytes).ok()?;
    Some((kind, name, id))
}

fn item_key(store: &BoxStore, item: BoxItemRef) -> (u8, String, String) {
    match item {
        BoxItemRef::Folder(i) => {
            let f = &store.folders[i];
            let (a, b) = sort_key(&f.name, &f.id);
            (0, a, b)
        }
        BoxItemRef::File(i) => {
            let f = &store.files[i];
            let (a, b) = sort_key(&f.name, &f.id);
            (1, a, b)
        }
    }
}

/// `GET /2.0/folders/{id}/items`: offset paging by default, marker paging with `usemarker=true`.
async fn folder_items(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let fields = fields_param(&uri);
    let limit = match first(&pairs, "limit") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(value) => value.clamp(1, 1000),
            Err(_) => return bad_request("Invalid value for 'limit'."),
        },
    };
    let use_marker = first(&pairs, "usemarker").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let world = app.world();
    let store = &world.boxes;
    if let Err(response) = check_folder_access(store, &id) {
        return response;
    }
    let children = store.children(&id);
    if use_marker {
        let start = match first(&pairs, "marker").filter(|m| !m.is_empty()) {
            None => 0,
            Some(marker) => {
                let Some(after) = decode_marker(marker) else {
                    return bad_request("Invalid value for 'marker'.");
                };
                children
                    .iter()
                    .position(|item| item_key(store, *item) > after)
                    .unwrap_or(children.len())
            }
        };
        let end = (start + limit).min(children.len());
        let page = &children[start..end];
        let entries: Vec<Value> = page
            .iter()
            .map(|item| item_json(&app.config, store, *item, fields.as_deref()))
            .collect();
        let next_marker = if end < children.len() {
            page.last().map(|item| {
                let (kind, _, _) = item_key(store, *item);
                let (name, id) = match item {
                    BoxItemRef::Folder(i) => (&store.folders[*i].name, &store.folders[*i].id),
                    BoxItemRef::File(i) => (&store.files[*i].name, &store.files[*i].id),
                };
                encode_marker(kind, name, id)
            })
        } else {
            None
        };
        return json_response(
            StatusCode::OK,
            &json!({"entries": entries, "limit": limit, "next_marker": next_marker}),
        );
    }
    let offset = match first(&pairs, "offset") {
        None => 0,
        Some(text) => match text.parse::<usize>() {
            Ok(value) => value,
            Err(_) => return bad_request("Invalid value for 'offset'."),
        },
    };
    let entries: Vec<Value> = children
        .iter()
        .skip(offset)
        .take(limit)
        .map(|item| item_json(&app.config, store, *item, fields.as_deref()))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "total_count": children.len(),
            "entries": entries,
            "offset": offset,
            "limit": limit,
            "order": [{"by": "type", "direction": "ASC"}, {"by": "name", "direction": "ASC"}],
        }),
    )
}

/// `GET /2.0/events?stream_type=changes&stream_position=…&limit=…` (OpenAPI `get_events`):
/// `stream_position=now` answers no entries and the current position; a number answers the
/// events at or after it (absent or `0`: every event kept), at most `limit` (default 100, at most
/// 500), with `next_stream_position` (a JSON number, as Box sends it) after the last one served.
/// A position that is not a number, lies ahead of the stream, or is older than the events kept
/// (`events.keep_last`) is answered 400 `bad_request` (Box does not document this case).
async fn events(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let limit = match first(&pairs, "limit") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(value) => value.clamp(1, 500),
            Err(_) => return bad_request("Invalid value for 'limit'."),
        },
    };
    let world = app.world();
    let log = &world.boxes.events;
    let kept_from = match log.faults.keep_last {
        Some(keep) => {
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            let skip = log.entries.len().saturating_sub(keep);
            log.entries
                .get(skip)
                .map_or(log.next_position, |e| e.position)
        }
        None => crate::state::FIRST_EVENT_POSITION,
    };
    let from = match first(&pairs, "stream_position") {
        Some("now") => log.next_position,
        None | Some("0" | "") => kept_from,
        Some(text) => match text.parse::<u64>() {
            Ok(position) if (kept_from..=log.next_position).contains(&position) => position,
            _ => return bad_request("Invalid value for 'stream_position'."),
        },
    };
    let mut served: Vec<&crate::state::RecordedEvent> = log
        .entries
        .iter()
        .filter(|event| event.position >= from)
        .take(limit)
        .collect();
    let next = served.last().map_or(from, |event| event.position + 1);
    if log.faults.reorder {
        served.reverse();
    }
    let entries: Vec<Value> = served
        .into_iter()
        .map(|event| {
            json!({
                "type": "event",
                "event_id": event.event_id,
                "event_type": event.event_type,
                "created_at": box_time(event.created_at),
                "recorded_at": box_time(event.created_at),
                "created_by": user_json(&app.config, event.actor),
                "source": event.source,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"chunk_size": entries.len(), "next_stream_position": next, "entries": entries}),
    )
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn parse_json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| bad_request("Invalid JSON body"))
}

/// `POST /2.0/folders` `{name, parent:{id}}` -> 201 folder; 409 `item_name_in_use` with
/// `context_info.conflicts` as an ARRAY.
async fn create_folder(State(app): State<Arc<App>>, uri: Uri, body: axum::body::Bytes) -> Response {
    let fields = fields_param(&uri);
    let request = match parse_json_body(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let Some(name) = request.get("name").and_then(Value::as_str) else {
        return bad_request("'name' is required");
    };
    let Some(parent_id) = request.pointer("/parent/id").and_then(Value::as_str) else {
        return bad_request("'parent.id' is required");
    };
    let mut world = app.world();
    if let Err(response) = check_folder_access(&world.boxes, parent_id) {
        return response;
    }
    if let Err(message) = validate_box_name(name) {
        return box_error(StatusCode::BAD_REQUEST, "item_name_invalid", &message, None);
    }
    if let Some(existing) = world.boxes.child_named(parent_id, name) {
        let conflict = conflict_json(&world.boxes, existing);
        return box_error(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
            Some(json!({"conflicts": [conflict]})),
        );
    }
    let id = world.boxes.insert_folder(parent_id, name, Actor::Service);
    match world.boxes.folder(&id) {
        Some(folder) => json_response(
            StatusCode::CREATED,
            &folder_json(&app.config, &world.boxes, folder, fields.as_deref()),
        ),
        None => box_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "folder vanished",
            None,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// `GET /2.0/files/{id}`.
async fn get_file(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let fields = fields_param(&uri);
    let world = app.world();
    match world.boxes.file(&id) {
        Some(file) => match check_folder_access(&world.boxes, &file.parent_id) {
            Ok(_) => json_response(
                StatusCode::OK,
                &file_json(&app.config, &world.boxes, file, fields.as_deref()),
            ),
            Err(response) => response,
        },
        None => not_found(),
    }
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
pub(crate) fn check_if_match(headers: &HeaderMap, file: &BoxFile) -> Result<(), Response> {
    match header_text(headers, "if-match") {
        Some(expected) if expected.trim_matches('"') != file.etag.to_string() => Err(box_error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The resource has been modified. Please retrieve the resource again and retry",
            None,
        )),
        _ => Ok(()),
    }
}

/// `PUT /2.0/files/{id}` `{parent:{id}?, name?}`: move and/or rename; 409 `item_name_in_use`
/// with `context_info.conflicts` as ONE OBJECT.
async fn update_file(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fields = fields_param(&uri);
    let request = match parse_json_body(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let mut world = app.world();
    let Some(file) = world.boxes.file(&id) else {
        return not_found();
    };
    if let Err(response) = check_if_match(&headers, file) {
        return response;
    }
    let target_parent = request
        .pointer("/parent/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| file.parent_id.clone());
    let target_name = request
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| file.name.clone());
    if let Err(response) = check_folder_access(&world.boxes, &file.parent_id) {
        return response;
    }
    if let Err(response) = check_folder_access(&world.boxes, &target_parent) {
        return response;
    }
    if let Err(message) = validate_box_name(&target_name) {
        return box_error(StatusCode::BAD_REQUEST, "item_name_invalid", &message, None);
    }
    if let Some(existing) = world.boxes.child_named(&target_parent, &target_name) {
        let is_self = matches!(existing, BoxItemRef::File(i) if world.boxes.files.get(i).is_some_and(|f| f.id == id));
        if !is_self {
            let conflict = conflict_json(&world.boxes, existing);
            return box_error(
                StatusCode::CONFLICT,
                "item_name_in_use",
                "Item with the same name already exists",
                Some(json!({"conflicts": conflict})),
            );
        }
    }
    world
        .boxes
        .move_file(&id, &target_parent, &target_name, Actor::Service);
    match world.boxes.file(&id) {
        Some(file) => json_response(
            StatusCode::OK,
            &file_json(&app.config, &world.boxes, file, fields.as_deref()),
        ),
        None => not_found(),
    }
}

/// `GET /2.0/files/{id}/content[?version=ID]` -> 302 to a one-time URL on the download host.
async fn download_file(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let mut world = app.world();
    let Some(file) = world.boxes.file(&id) else {
        return not_found();
    };
    if let Err(response) = check_folder_access(&world.boxes, &file.parent_id) {
        return response;
    }
    let version = match first(&pairs, "version") {
        Some(version_id) => file.versions.iter().find(|v| v.id == version_id),
        None => file.current(),
    };
    let Some(version) = version else {
        return not_found();
    };
    let (file_id, version_id) = (file.id.clone(), version.id.clone());
    let location = issue_download_ticket(&app, &mut world.boxes, &file_id, &version_id);
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A one-time download URL on the download host for a file version (valid for 5 minutes).
pub(crate) fn issue_download_ticket(
    app: &App,
    boxes: &mut BoxStore,
    file_id: &str,
    version_id: &str,
) -> String {
    let ticket = DownloadTicket {
        file_id: file_id.to_owned(),
        version_id: version_id.to_owned(),
        expires: Instant::now() + DOWNLOAD_TICKET_LIFETIME,
    };
    let token = random_alnum(40);
    let now = Instant::now();
    boxes.downloads.retain(|_, t| t.expires > now);
    boxes.downloads.insert(token.clone(), ticket);
    format!("{}/d/{token}", app.config.download_base_url)
}

/// `GET /d/{token}` on the download host: no auth; a request carrying `Authorization` is refused
/// (400) so tests prove the client did not forward its Box token across the redirect.
async fn download_ticket(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.contains_key(header::AUTHORIZATION) {
        return bad_request(
            "The download host does not accept an Authorization header: the client forwarded its Box token across the redirect",
        );
    }
    let found = {
        let mut world = app.world();
        let ticket = world.boxes.downloads.remove(&token);
        ticket
            .filter(|t| t.expires > Instant::now())
            .and_then(|ticket| {
                let file = world.boxes.file(&ticket.file_id)?;
                let version = file.versions.iter().find(|v| v.id == ticket.version_id)?;
                Some((version.blob.clone(), version.size, file.name.clone()))
            })
    };
    let Some((blob, size, name)) = found else {
        return box_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The download URL is unknown, used or expired",
            None,
        );
    };
    let mime = crate::http_util::guess_mime(&name);
    serve_file(&blob, size, mime, &name, header_text(&headers, "range")).await
}

/// `OPTIONS /2.0/files/content` `{name, parent:{id}, size}`: upload preflight -> 200 `{upload_url,
/// upload_token}` or the 409 / 404 / 400 the upload would get.
async fn preflight(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request = match parse_json_body(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parent_id = request
        .pointer("/parent/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let world = app.world();
    if let Err(response) = check_folder_access(&world.boxes, parent_id) {
        return response;
    }
    if let Err(message) = validate_box_name(name) {
        return box_error(StatusCode::BAD_REQUEST, "item_name_invalid", &message, None);
    }
    if let Some(existing) = world.boxes.child_named(parent_id, name) {
        let conflict = conflict_json(&world.boxes, existing);
        return box_error(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
            Some(json!({"conflicts": conflict})),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "upload_url": format!("{}/api/2.0/files/content", app.config.main_base_url),
            "upload_token": random_alnum(32),
        }),
    )
}

/// A parsed multipart upload: the `attributes` JSON (if sent) and the stored file part.
struct ReceivedUpload {
    attributes: Option<Value>,
    blob: StoredBlob,
    part_file_name: Option<String>,
}

/// Reads a Box upload body: `attributes` must come before the file part (else 400
/// `metadata_after_file_contents`); the file part (any name, with a filename) is streamed to disk.
/// After an error the rest of the body is drained so the client reads the reply.
async fn receive_upload(
    app: &App,
    multipart: Result<Multipart, MultipartRejection>,
    headers: &HeaderMap,
) -> Result<ReceivedUpload, Response> {
    let mut multipart =
        multipart.map_err(|_| bad_request("Expected a multipart/form-data body"))?;
    let blob_dir = app.config.blob_dir.join("box");
    let mut attributes: Option<Value> = None;
    let mut stored: Option<(StoredBlob, Option<String>)> = None;
    let mut failure: Option<Response> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                if let Some((blob, _)) = stored.take() {
                    blob.discard().await;
                }
                return Err(bad_request(&format!("Malformed multipart body: {error}")));
            }
        };
        if failure.is_some() {
            while let Ok(Some(_)) = field.chunk().await {}
            continue;
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        if name == "attributes" && file_name.is_none() {
            if stored.is_some() {
                failure = Some(box_error(
                    StatusCode::BAD_REQUEST,
                    "metadata_after_file_contents",
                    "Metadata must be sent before file contents in a multipart upload",
                    None,
                ));
                while let Ok(Some(_)) = field.chunk().await {}
                continue;
            }
            match field.text().await {
                Ok(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(value) if value.is_object() => attributes = Some(value),
                    _ => failure = Some(bad_request("Invalid JSON in the 'attributes' part")),
                },
                Err(error) => {
                    failure = Some(bad_request(&format!(
                        "Unreadable 'attributes' part: {error}"
                    )));
                }
            }
            continue;
        }
        if file_name.is_none() {
            // A plain form field other than `attributes`: ignored, as Box does for unknown parts.
            while let Ok(Some(_)) = field.chunk().await {}
            continue;
        }
        if stored.is_some() {
            failure = Some(bad_request("Only one file may be uploaded per request"));
            while let Ok(Some(_)) = field.chunk().await {}
            continue;
        }
        let mut writer = BlobWriter::create(&blob_dir).await.map_err(|e| {
            box_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                &e.to_string(),
                None,
            )
        })?;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(error) = writer.write(&chunk).await {
                        writer.discard().await;
                        return Err(box_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal_server_error",
                            &error.to_string(),
                            None,
                        ));
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    writer.discard().await;
                    return Err(bad_request(&format!("Upload interrupted: {error}")));
                }
            }
        }
        let blob = writer.finish().await.map_err(|e| {
            box_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                &e.to_string(),
                None,
            )
        })?;
        stored = Some((blob, file_name));
    }
    if let Some(response) = failure {
        if let Some((blob, _)) = stored {
            blob.discard().await;
        }
        return Err(response);
    }
    let Some((blob, part_file_name)) = stored else {
        return Err(bad_request("API upload did not contain a file part"));
    };
    if let Some(digest) = header_text(headers, "content-md5") {
        if !digest.trim().eq_ignore_ascii_case(&blob.sha1) {
            blob.discard().await;
            return Err(box_error(
                StatusCode::BAD_REQUEST,
                "bad_digest",
                "The specified content-md5 did not match what we received",
                None,
            ));
        }
    }
    Ok(ReceivedUpload {
        attributes,
        blob,
        part_file_name,
    })
}

fn parse_time(value: Option<&Value>) -> Option<jiff::Timestamp> {
    value
        .and_then(Value::as_str)
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
}

/// Stores a new file version blob at its final place (`blobs/box/{version id}`).
async fn persist_version(app: &App, blob: StoredBlob) -> Result<NewVersion, Response> {
    let id = app.world().boxes.reserve_version_id();
    let target = app.config.blob_dir.join("box").join(&id);
    let stored = blob.persist(target).await.map_err(|e| {
        box_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            &e.to_string(),
            None,
        )
    })?;
    Ok(NewVersion {
        id,
        sha1: stored.sha1,
        size: stored.size,
        blob: stored.path,
    })
}

/// Records a new file in `parent_id` (validating parent, name and clashes under the lock) and
/// returns the `Files` reply body; on failure removes the blob and returns the Box error.
pub async fn commit_new_file(
    app: &App,
    parent_id: &str,
    name: &str,
    blob: StoredBlob,
    actor: Actor,
    content_created_at: Option<jiff::Timestamp>,
    content_modified_at: Option<jiff::Timestamp>,
) -> Result<Value, Response> {
    let version = persist_version(app, blob).await?;
    let blob_path = version.blob.clone();
    let outcome = {
        let mut world = app.world();
        let access = match actor {
            // Agencies (control API) are collaborators everywhere.
            Actor::Agency => world
                .boxes
                .folder(parent_id)
                .map(|_| ())
                .ok_or_else(not_found),
            Actor::Service => check_folder_access(&world.boxes, parent_id).map(|_| ()),
        };
        if let Err(response) = access {
            Err(response)
        } else if let Err(message) = validate_box_name(name) {
            Err(box_error(
                StatusCode::BAD_REQUEST,
                "item_name_invalid",
                &message,
                None,
            ))
        } else if let Some(existing) = world.boxes.child_named(parent_id, name) {
            let conflict = conflict_json(&world.boxes, existing);
            Err(box_error(
                StatusCode::CONFLICT,
                "item_name_in_use",
                "Item with the same name already exists",
                Some(json!({"conflicts": conflict})),
            ))
        } else {
            let id = world.boxes.insert_file(
                parent_id,
                name,
                version,
                actor,
                content_created_at,
                content_modified_at,
            );
            match world.boxes.file(&id) {
                Some(file) => {
                    let entry = file_json(&app.config, &world.boxes, file, None);
                    Ok(json!({"total_count": 1, "entries": [entry]}))
                }
                None => Err(not_found()),
            }
        }
    };
    if outcome.is_err() {
        let _ = tokio::fs::remove_file(&blob_path).await;
    }
    outcome
}

/// Records a new version of `file_id` (optionally renaming it) and returns the `Files` body.
pub async fn commit_new_version(
    app: &App,
    file_id: &str,
    new_name: Option<&str>,
    blob: StoredBlob,
    actor: Actor,
) -> Result<Value, Response> {
    let version = persist_version(app, blob).await?;
    let blob_path = version.blob.clone();
    let outcome = {
        let mut world = app.world();
        let failure = match world.boxes.file(file_id) {
            None => Some(not_found()),
            Some(file) => match new_name {
                Some(name) if name != file.name => {
                    if let Err(message) = validate_box_name(name) {
                        Some(box_error(
                            StatusCode::BAD_REQUEST,
                            "item_name_invalid",
                            &message,
                            None,
                        ))
                    } else {
                        match world.boxes.child_named(&file.parent_id, name) {
                            Some(existing) if !matches!(existing, BoxItemRef::File(i) if world.boxes.files.get(i).is_some_and(|f| f.id == file_id)) => {
                                Some(box_error(
                                    StatusCode::CONFLICT,
                                    "item_name_in_use",
                                    "Item with the same name already exists",
                                    Some(
                                        json!({"conflicts": conflict_json(&world.boxes, existing)}),
                                    ),
                                ))
                            }
                            _ => None,
                        }
                    }
                }
                _ => None,
            },
        };
        if let Some(response) = failure {
            Err(response)
        } else {
            world.boxes.add_version(file_id, version, actor);
            if let (Some(name), Some(file)) = (new_name, world.boxes.file_mut(file_id)) {
                file.name = name.to_owned();
            }
            match world.boxes.file(file_id) {
                Some(file) => {
                    let entry = file_json(&app.config, &world.boxes, file, None);
                    Ok(json!({"total_count": 1, "entries": [entry]}))
                }
                None => Err(not_found()),
            }
        }
    };
    if outcome.is_err() {
        let _ = tokio::fs::remove_file(&blob_path).await;
    }
    outcome
}

/// `POST /api/2.0/files/content`: simple upload -> 201 `Files`.
async fn upload_new_file(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let upload = match receive_upload(&app, multipart, &headers).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let Some(attributes) = upload.attributes else {
        upload.blob.discard().await;
        return bad_request("The multipart body must start with an 'attributes' part");
    };
    let name = attributes
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(upload.part_file_name);
    let parent_id = attributes.pointer("/parent/id").and_then(Value::as_str);
    let (Some(name), Some(parent_id)) = (name, parent_id) else {
        upload.blob.discard().await;
        return bad_request("'attributes' must contain 'name' and 'parent.id'");
    };
    match commit_new_file(
        &app,
        parent_id,
        &name,
        upload.blob,
        Actor::Service,
        parse_time(attributes.get("content_created_at")),
        parse_time(attributes.get("content_modified_at")),
    )
    .await
    {
        Ok(body) => json_response(StatusCode::CREATED, &body),
        Err(response) => response,
    }
}

/// `POST /api/2.0/files/{id}/content`: new version -> 200 `Files` (same ID, new version/sha1/etag).
async fn upload_new_version(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    {
        let world = app.world();
        match world.boxes.file(&id) {
            None => return not_found(),
            Some(file) => {
                if let Err(response) = check_if_match(&headers, file) {
                    return response;
                }
            }
        }
    }
    let upload = match receive_upload(&app, multipart, &headers).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let new_name = upload
        .attributes
        .as_ref()
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match commit_new_version(&app, &id, new_name.as_deref(), upload.blob, Actor::Service).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(response) => response,
    }
}
