//! OpenText Media Management (OTMM) REST emulation under `/otmmapi/v6`, plus an OTDS-style
//! OAuth2 client-credentials token endpoint at `/otmmapi/otds/token`.
//!
//! Shapes follow `api-notes/otmm.md` and `fixtures/otmm/*.json`. What the notes mark unconfirmed
//! (job polling at `GET /jobs/{id}`, the reply of lock/unlock and PATCH, the `folder_children`
//! wrapper, default page sizes, `error_code` values) is decided here and documented per handler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Form, Router};
use serde_json::{json, Value};

use crate::http_util::{
    first, guess_mime, header_text, json_response, otmm_time, query_pairs, random_alnum,
    random_hex, serve_file, BlobWriter, StoredBlob,
};
use crate::state::{
    categories_field_text, field_value_text, new_dam_id, App, DamAsset, DamCategory, DamFolder,
    DamSession, DamStore, JobStatus, StatusChange,
};

/// Default page size of searches and folder listings when `limit` is absent (unconfirmed in OTMM).
const DEFAULT_PAGE_SIZE: usize = 25;
/// Field holding an asset's name.
const ASSET_NAME_FIELD: &str = "ARTESIA.FIELD.ASSET NAME";

/// Who is calling (set by [`require_session`]): used as lock owner and in the status history.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Login name (session) or OAuth client ID.
    pub identity: String,
}

/// Routes under `/otmmapi/v6`; all need a session or token except `POST /sessions` (login).
pub fn api_routes(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route(
            "/otmmapi/v6/sessions",
            get(get_session).delete(delete_session).post(create_session),
        )
        .route("/otmmapi/v6/search/text", get(search_get).post(search_post))
        .route(
            "/otmmapi/v6/folders/{id}",
            get(get_folder).patch(patch_folder),
        )
        .route("/otmmapi/v6/folders/{id}/children", get(folder_children))
        .route("/otmmapi/v6/folders/{id}/assets", get(folder_assets))
        .route("/otmmapi/v6/folders/{id}/folders", get(folder_folders))
        .route("/otmmapi/v6/assets", post(import_asset))
        .route("/otmmapi/v6/assets/{id}", get(get_asset).patch(patch_asset))
        .route("/otmmapi/v6/assets/{id}/contents", get(asset_contents))
        .route("/otmmapi/v6/assets/{id}/state", put(asset_state))
        .route("/otmmapi/v6/renditions/{id}", get(rendition_contents))
        .route("/otmmapi/v6/jobs/{id}/assets", get(job_assets))
        .route("/otmmapi/v6/lookupdomains/{id}", get(lookup_domain))
        .route_layer(axum::middleware::from_fn_with_state(app, require_session))
}

/// The token endpoints (no auth): the password grant at `/otmmapi/v6/sessions/oauth2/token`
/// (OpenText's own client, pyxecm `otmm.py`) and a client-credentials endpoint standing for an
/// OTDS-style token URL at `/otmmapi/otds/token` (the real OTDS path is the operator's setting).
pub fn public_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/otmmapi/otds/token", post(oauth_token))
        .route(
            "/otmmapi/v6/sessions/oauth2/token",
            post(oauth_password_token),
        )
}

/// The download-port route serving DAM contents after the redirect of
/// `GET /otmmapi/v6/assets/{id}/contents` (another origin, like a CDN).
pub fn cdn_routes() -> Router<Arc<App>> {
    Router::new().route("/dam-cdn/{ticket}", get(cdn_contents))
}

// ---------------------------------------------------------------------------------------------
// Errors and field helpers
// ---------------------------------------------------------------------------------------------

/// An OTMM error: `{"exception_body":{"http_response_code","error_code","message","debug_message"}}`.
pub fn otmm_error(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        429 => "TOO_MANY_REQUESTS",
        503 => "SERVICE_UNAVAILABLE",
        _ => "INTERNAL_SERVER_ERROR",
    };
    json_response(
        status,
        &json!({"exception_body": {
            "http_response_code": status.as_u16(),
            "error_code": code,
            "message": message,
            "debug_message": format!("sandbox: {message}"),
        }}),
    )
}

/// Display name derived from a field ID: the part after `FIELD.`, `_`/`.` as spaces, title case
/// (`FERRERO.FIELD.MKTG.ASSET TYPE` -> `Mktg Asset Type`).
pub fn field_display_name(id: &str) -> String {
    let tail = id.rsplit_once("FIELD.").map_or(id, |(_, tail)| tail);
    tail.split([' ', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|word| {
            let lower = word.to_lowercase();
            let mut chars = lower.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn field_object(id: &str, domain: bool, value: Value) -> Value {
    json!({
        "type": "com.artesia.metadata.MetadataField",
        "id": id,
        "name": field_display_name(id),
        "value": {
            "domain_value": domain,
            "cascading_domain_value": false,
            "is_locked": false,
            "value": value,
        },
    })
}

/// A string field in OTMM shape.
pub fn string_field(id: &str, value: &str) -> Value {
    field_object(id, false, json!({"type": "string", "value": value}))
}

/// A lookup-domain field (`com.artesia.metadata.DomainValue`).
pub fn domain_field(id: &str, value: &str, display: &str) -> Value {
    field_object(
        id,
        true,
        json!({
            "type": "com.artesia.metadata.DomainValue",
            "field_value": {"type": "string", "value": value},
            "display_value": display,
        }),
    )
}

/// A number field (integral values are written without a fraction).
#[expect(
    clippy::cast_possible_truncation,
    reason = "only whole numbers below 2^53 become integers"
)]
pub fn number_field(id: &str, number: f64) -> Value {
    let value = if number.fract() == 0.0 && number.abs() < 9.0e15 {
        json!(number as i64)
    } else {
        json!(number)
    };
    field_object(id, false, json!({"type": "number", "value": value}))
}

/// A datetime field (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn datetime_field(id: &str, text: &str) -> Value {
    field_object(id, false, json!({"type": "datetime", "value": text}))
}

/// OTMM `content_type` for a MIME type: VIDEO, BITMAP, AUDIO, ACROBAT or OTHER.
pub fn content_type_for(mime: &str) -> &'static str {
    if mime.starts_with("video/") || mime == "application/mxf" {
        "VIDEO"
    } else if mime.starts_with("image/") {
        "BITMAP"
    } else if mime.starts_with("audio/") {
        "AUDIO"
    } else if mime == "application/pdf" {
        "ACROBAT"
    } else {
        "OTHER"
    }
}

fn categories_json(categories: &[DamCategory]) -> Vec<Value> {
    categories
        .iter()
        .map(|c| {
            json!({
                "type": "com.artesia.metadata.MetadataCategory",
                "id": c.id,
                "name": c.name,
                "metadata_element_list": c.fields,
            })
        })
        .collect()
}

/// A folder object in the shape of `fixtures/otmm/campaign_folder.json` (`folder_resource.folder`).
/// A folder object; `metadata` only when `with_metadata` (see [`crate::dialect`]).
pub fn folder_json(dam: &DamStore, folder: &DamFolder, with_metadata: bool) -> Value {
    let containers = dam.subfolders(&folder.id).len();
    let assets = dam.folder_assets(&folder.id).len();
    let mut value = json!({
        "asset_id": folder.id,
        "name": folder.name,
        "container_type_id": "ARTESIA.BASIC.FOLDER",
        "data_type": "CONTAINER",
        "metadata_model_id": folder.model_id,
        "locked": folder.locked_by.is_some(),
        "date_last_updated": otmm_time(folder.updated),
        "container_child_counts": {
            "asset_count": assets,
            "container_count": containers,
            "total_child_count": assets + containers,
        },
    });
    if with_metadata {
        insert_metadata(
            &mut value,
            &folder.model_id,
            &folder.model_name,
            &folder.categories,
        );
    }
    value
}

/// Adds `metadata` (the model and its categories) to an asset or folder object.
fn insert_metadata(
    value: &mut Value,
    model_id: &str,
    model_name: &str,
    categories: &[DamCategory],
) {
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "metadata".to_owned(),
            json!({
                "type": "com.artesia.metadata.MetadataModel",
                "id": model_id,
                "name": model_name,
                "has_multilingual_fields": false,
                "metadata_element_list": categories_json(categories),
            }),
        );
    }
}

/// An asset object in the shape of `fixtures/otmm/master_asset.json` (`asset_resource.asset`);
/// `metadata` only when `with_metadata`.
pub fn asset_json(asset: &DamAsset, with_metadata: bool) -> Value {
    let mut value = json!({
        "asset_id": asset.id,
        "name": asset.name,
        "mime_type": asset.mime_type,
        "content_type": asset.content_type,
        "content_size": asset.content_size,
        "asset_state": "NORMAL",
        "locked": asset.locked_by.is_some(),
        "checked_out": false,
        "deleted": asset.deleted,
        "expired": false,
        "latest_version": true,
        "version": 1,
        "original_asset_id": asset.id,
        "date_imported": otmm_time(asset.imported),
        "date_last_updated": otmm_time(asset.updated),
        "metadata_model_id": asset.model_id,
        "security_policy_list": asset.security_policies,
        "master_content_info": {
            "content_checksum": asset.sha1,
            "content_kind": "MASTER",
            "content_size": asset.content_size,
            "id": asset.rendition_id,
            "mime_type": asset.mime_type,
            "name": asset.file_name,
            "unit_of_size": "BYTES",
            "url": format!("/otmmapi/v6/renditions/{}", asset.rendition_id),
        },
    });
    if with_metadata {
        insert_metadata(
            &mut value,
            &asset.model_id,
            &asset.model_name,
            &asset.categories,
        );
    }
    value
}

fn wants_metadata(pairs: &[(String, String)]) -> bool {
    matches!(
        first(pairs, "load_type"),
        Some("metadata" | "full" | "custom")
    )
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn paging(pairs: &[(String, String)]) -> Result<(usize, usize), Response> {
    let parse = |key: &str, default: usize| match first(pairs, key) {
        None | Some("") => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| {
            otmm_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid value for '{key}': {text}"),
            )
        }),
    };
    Ok((
        parse("after", 0)?,
        parse("limit", DEFAULT_PAGE_SIZE)?.max(1),
    ))
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

/// Authenticates by `Authorization: Bearer`, the `otmmauthtoken` header or the `JSESSIONID`
/// cookie (401 `exception_body` otherwise); mutating methods also need a non-empty
/// `X-Requested-By` header (400 otherwise, as OTMM's CSRF filter does).
pub async fn require_session(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST
        && matches!(
            request.uri().path(),
            "/otmmapi/v6/sessions" | "/otmmapi/v6/sessions/oauth2/token"
        )
    {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = header_text(headers, "authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let digest = header_text(headers, "otmmauthtoken").map(str::to_owned);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "JSESSIONID")
        .map(|(_, value)| value.to_owned());
    let caller = {
        let mut world = app.world();
        let now = Instant::now();
        world.auth.dam_sessions.retain(|_, s| s.expires > now);
        world.auth.dam_tokens.retain(|_, expires| *expires > now);
        let auth = &world.auth;
        if let Some(token) = bearer.as_ref().filter(|t| auth.dam_tokens.contains_key(*t)) {
            let _ = token;
            Some(Caller {
                identity: app.config.credentials.dam_client_id.clone(),
            })
        } else if let Some(session) = digest
            .as_ref()
            .and_then(|d| auth.dam_sessions.values().find(|s| &s.digest == d))
        {
            Some(Caller {
                identity: session.login.clone(),
            })
        } else {
            cookie
                .as_ref()
                .and_then(|c| auth.dam_sessions.get(c))
                .map(|s| Caller {
                    identity: s.login.clone(),
                })
        }
    };
    let Some(caller) = caller else {
        return otmm_error(
            StatusCode::UNAUTHORIZED,
            "Session is not valid or has expired; log in again (POST /otmmapi/v6/sessions)",
        );
    };
    let mutating = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if mutating
        && header_text(request.headers(), "x-requested-by").is_none_or(|v| v.trim().is_empty())
    {
        return otmm_error(
            StatusCode::BAD_REQUEST,
            "Missing X-Requested-By header (required on POST/PUT/PATCH/DELETE)",
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// `POST /otmmapi/v6/sessions` form `username`, `password` -> `session_resource.session` and a
/// `JSESSIONID` cookie; 401 for wrong credentials.
async fn create_session(
    State(app): State<Arc<App>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return otmm_error(
            StatusCode::BAD_REQUEST,
            "expected a form body with username and password",
        );
    };
    let credentials = &app.config.credentials;
    if first(&pairs, "username") != Some(credentials.dam_username.as_str())
        || first(&pairs, "password") != Some(credentials.dam_password.as_str())
    {
        return otmm_error(StatusCode::UNAUTHORIZED, "Invalid username or password");
    }
    let session = DamSession {
        id: 400_000_000 + i64::from(rand::random::<u32>() % 99_999_999),
        digest: random_hex(40),
        jsessionid: random_hex(32).to_uppercase(),
        login: credentials.dam_username.clone(),
        expires: Instant::now() + app.config.token_lifetime,
    };
    let body = session_json(&session);
    let cookie = format!("JSESSIONID={}; Path=/otmmapi; HttpOnly", session.jsessionid);
    {
        let mut world = app.world();
        world.auth.dam_logins += 1;
        world
            .auth
            .dam_sessions
            .insert(session.jsessionid.clone(), session);
    }
    let mut response = json_response(StatusCode::OK, &body);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn session_json(session: &DamSession) -> Value {
    json!({"session_resource": {"session": {
        "id": session.id,
        "login_name": session.login,
        "message_digest": session.digest,
        "user_id": "1001",
        "user_full_name": "Content Scaling Integration",
        "role_name": "Integration",
        "domain_name": "OTMM",
    }}})
}

/// `GET /otmmapi/v6/sessions`: the caller's session (for bearer tokens a synthetic one).
async fn get_session(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let world = app.world();
    let digest = header_text(&headers, "otmmauthtoken");
    let session = world
        .auth
        .dam_sessions
        .values()
        .find(|s| Some(s.digest.as_str()) == digest || s.login == caller.identity);
    match session {
        Some(session) => json_response(StatusCode::OK, &session_json(session)),
        None => json_response(
            StatusCode::OK,
            &json!({"session_resource": {"session": {"login_name": caller.identity, "role_name": "Integration"}}}),
        ),
    }
}

/// `DELETE /otmmapi/v6/sessions`: logout -> 204 (the session named by header or cookie ends).
async fn delete_session(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let digest = header_text(&headers, "otmmauthtoken").map(str::to_owned);
    let mut world = app.world();
    world
        .auth
        .dam_sessions
        .retain(|_, s| Some(&s.digest) != digest.as_ref());
    StatusCode::NO_CONTENT.into_response()
}

/// A new DAM bearer token (counted as a login) and its lifetime.
fn issue_dam_token(app: &App) -> (String, std::time::Duration) {
    let token = random_alnum(48);
    let lifetime = app.config.token_lifetime;
    let mut world = app.world();
    world.auth.dam_logins += 1;
    world
        .auth
        .dam_tokens
        .insert(token.clone(), Instant::now() + lifetime);
    (token, lifetime)
}

/// `POST /otmmapi/otds/token` form `grant_type=client_credentials`, `client_id`, `client_secret`
/// (or HTTP Basic client authentication) -> `{access_token, expires_in, token_type:"Bearer"}`.
/// The path is the sandbox's choice (OTDS's real path is unconfirmed); clients take it from config.
async fn oauth_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = form.map(|f| f.0).unwrap_or_default();
    let oauth = |status: StatusCode, error: &str, description: &str| {
        json_response(
            status,
            &json!({"error": error, "error_description": description}),
        )
    };
    if first(&pairs, "grant_type") != Some("client_credentials") {
        return oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let mut client_id = first(&pairs, "client_id").map(str::to_owned);
    let mut client_secret = first(&pairs, "client_secret").map(str::to_owned);
    if let Some(basic) =
        header_text(&headers, "authorization").and_then(|v| v.strip_prefix("Basic "))
    {
        use base64::Engine;
        if let Some((id, secret)) = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
            })
        {
            client_id = Some(id);
            client_secret = Some(secret);
        }
    }
    let credentials = &app.config.credentials;
    if client_id.as_deref() != Some(credentials.dam_client_id.as_str())
        || client_secret.as_deref() != Some(credentials.dam_client_secret.as_str())
    {
        return oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let (token, lifetime) = issue_dam_token(&app);
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
    )
}

/// `POST /otmmapi/v6/sessions/oauth2/token` form `grant_type=password`, `username`, `password`,
/// `client_id`, `client_secret` -> `{"token_info":{"oauth_token":{"accessToken","expiresIn",
/// "tokenType":"Bearer"}}}` (OpenText's pyxecm `otmm.py` `authenticate` reads
/// `token_info.oauth_token.accessToken`; `expiresIn` is the sandbox's camelCase guess, as no
/// public source names it). Any other grant: 400.
async fn oauth_password_token(
    State(app): State<Arc<App>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = form.map(|f| f.0).unwrap_or_default();
    if first(&pairs, "grant_type") != Some("password") {
        return otmm_error(StatusCode::BAD_REQUEST, "grant_type must be password");
    }
    let credentials = &app.config.credentials;
    let expected = [
        ("username", credentials.dam_username.as_str()),
        ("password", credentials.dam_password.as_str()),
        ("client_id", credentials.dam_client_id.as_str()),
        ("client_secret", credentials.dam_client_secret.as_str()),
    ];
    if !expected
        .iter()
        .all(|(key, value)| first(&pairs, key) == Some(*value))
    {
        return otmm_error(
            StatusCode::UNAUTHORIZED,
            "Invalid user or client credentials",
        );
    }
    let (token, lifetime) = issue_dam_token(&app);
    json_response(
        StatusCode::OK,
        &json!({"token_info": {"oauth_token": {
            "accessToken": token, "expiresIn": lifetime.as_secs(), "tokenType": "Bearer"}}}),
    )
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Condition {
    field_id: String,
    operator: String,
    value: String,
    or_with_previous: bool,
}

fn parse_conditions(text: &str) -> Result<Vec<Condition>, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("search_condition_list is not JSON: {e}"))?;
    let list = value
        .get("search_condition_list")
        .unwrap_or(&value)
        .get("search_condition")
        .cloned()
        .or_else(|| value.as_array().map(|a| Value::Array(a.clone())))
        .unwrap_or(Value::Array(Vec::new()));
    let items = match list {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err("search_condition must be a list".to_owned()),
    };
    let mut conditions = Vec::new();
    for item in items {
        let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
        let field_id =
            text("metadata_field_id").ok_or("a search condition lacks metadata_field_id")?;
        let operator = text("relational_operator_id")
            .ok_or("a search condition lacks relational_operator_id")?;
        let value = match item.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(format!("search condition on {field_id} lacks a value")),
        };
        if !matches!(
            operator.as_str(),
            "ARTESIA.OPERATOR.CHAR.CONTAINS"
                | "ARTESIA.OPERATOR.CHAR.IS"
                | "ARTESIA.OPERATOR.CHAR.STARTS_WITH"
        ) {
            return Err(format!("unsupported relational_operator_id {operator}"));
        }
        let or_with_previous = item
            .get("relational_operator")
            .and_then(Value::as_str)
            .is_some_and(|op| op.eq_ignore_ascii_case("or"));
        conditions.push(Condition {
            field_id,
            operator,
            value,
            or_with_previous,
        });
    }
    Ok(conditions)
}

fn condition_matches(condition: &Condition, categories: &[DamCategory]) -> bool {
    let Some(actual) = categories_field_text(categories, &condition.field_id) else {
        return false;
    };
    let actual = actual.to_lowercase();
    let wanted = condition.value.to_lowercase();
    match condition.operator.as_str() {
        "ARTESIA.OPERATOR.CHAR.CONTAINS" => crate::dialect::contains_words(&actual, &wanted),
        "ARTESIA.OPERATOR.CHAR.STARTS_WITH" => actual.starts_with(&wanted),
        _ => actual == wanted,
    }
}

fn all_conditions_match(conditions: &[Condition], categories: &[DamCategory]) -> bool {
    let mut result: Option<bool> = None;
    for condition in conditions {
        let matched = condition_matches(condition, categories);
        result = Some(match result {
            None => matched,
            Some(previous) if condition.or_with_previous => previous || matched,
            Some(previous) => previous && matched,
        });
    }
    result.unwrap_or(true)
}

fn keyword_matches(keywords: &[String], name: &str, categories: &[DamCategory]) -> bool {
    if keywords.is_empty() {
        return true;
    }
    let mut haystack = name.to_lowercase();
    for (_, text) in crate::state::categories_field_map(categories) {
        haystack.push('\n');
        haystack.push_str(&text.to_lowercase());
    }
    keywords.iter().all(|k| haystack.contains(k))
}

/// `GET /otmmapi/v6/search/text`.
async fn search_get(State(app): State<Arc<App>>, uri: Uri) -> Response {
    search(&app, &query_pairs(&uri))
}

/// `POST /otmmapi/v6/search/text` with the same parameters as a form (query parameters too).
async fn search_post(
    State(app): State<Arc<App>>,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let mut pairs = query_pairs(&uri);
    if let Ok(Form(more)) = form {
        pairs.extend(more);
    }
    search(&app, &pairs)
}

/// Runs a text search over folders and assets: `keyword_query` (`*` = everything; otherwise every
/// word must occur in the name or a field value), `search_condition_list` (scalar conditions with
/// CONTAINS / IS / STARTS_WITH, chained with `relational_operator` and/or), `folder_filter` (items
/// below that folder), `after`/`limit` paging (default limit 25), `load_type=metadata` for asset
/// metadata, `return_type=ids` for ids only. Folders come first, then assets, in creation order.
fn search(app: &App, pairs: &[(String, String)]) -> Response {
    let conditions = match first(pairs, "search_condition_list").filter(|t| !t.trim().is_empty()) {
        Some(text) => match parse_conditions(text) {
            Ok(conditions) => conditions,
            Err(message) => return otmm_error(StatusCode::BAD_REQUEST, &message),
        },
        None => Vec::new(),
    };
    let keywords: Vec<String> = first(pairs, "keyword_query")
        .unwrap_or("*")
        .split_whitespace()
        .map(|w| w.trim_matches('*').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let (after, limit) = match paging(pairs) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let with_metadata = wants_metadata(pairs);
    let ids_only = first(pairs, "return_type") == Some("ids");
    let folder_filter = first(pairs, "folder_filter").filter(|f| !f.is_empty());
    let without_deleted = crate::dialect::excludes_deleted(pairs);
    let world = app.world();
    let dam = &world.dam;
    let mut hits: Vec<(String, String, Value)> = Vec::new();
    for folder in &dam.folders {
        if folder_filter.is_some_and(|f| folder.id == f || !dam.folder_within(&folder.id, f)) {
            continue;
        }
        if all_conditions_match(&conditions, &folder.categories)
            && keyword_matches(&keywords, &folder.name, &folder.categories)
        {
            hits.push((
                folder.id.clone(),
                folder.name.clone(),
                folder_json(dam, folder, with_metadata),
            ));
        }
    }
    for asset in &dam.assets {
        if folder_filter.is_some_and(|f| !dam.folder_within(&asset.folder_id, f)) {
            continue;
        }
        if asset.deleted && without_deleted {
            continue;
        }
        // Metadata inherited from the folders above: a condition on a field the asset lacks
        // is matched against the nearest folder that has it (a campaign's status reaches the
        // masters inside it).
        let inherited = conditions.iter().all(|condition| {
            if categories_field_text(&asset.categories, &condition.field_id).is_some() {
                return condition_matches(condition, &asset.categories);
            }
            let mut parent = dam.folder(&asset.folder_id);
            while let Some(folder) = parent {
                if categories_field_text(&folder.categories, &condition.field_id).is_some() {
                    return condition_matches(condition, &folder.categories);
                }
                parent = folder.parent_id.as_deref().and_then(|id| dam.folder(id));
            }
            false
        });
        let matched = if conditions.iter().any(|c| c.or_with_previous) {
            all_conditions_match(&conditions, &asset.categories)
        } else {
            inherited
        };
        if matched && keyword_matches(&keywords, &asset.name, &asset.categories) {
            hits.push((
                asset.id.clone(),
                asset.name.clone(),
                asset_json(asset, with_metadata),
            ));
        }
    }
    // `sort=<asc|desc>_<field>`: by asset ID or name (the sandbox's two sortable fields);
    // otherwise folders first, then assets, in creation order.
    if let Some(sort) = first(pairs, "sort").filter(|sort| !sort.is_empty()) {
        let (descending, field) = match sort.split_once('_') {
            Some(("desc", field)) => (true, field),
            Some((_, field)) => (false, field),
            None => (false, sort),
        };
        match field.to_ascii_uppercase().as_str() {
            "ARTESIA.FIELD.ASSET ID" | "ASSET_ID" | "ID" => hits.sort_by(|a, b| a.0.cmp(&b.0)),
            "NAME" | "ARTESIA.FIELD.ASSET NAME" => hits.sort_by(|a, b| a.1.cmp(&b.1)),
            _ => {}
        }
        if descending {
            hits.reverse();
        }
    }
    let hits: Vec<(String, Value)> = hits.into_iter().map(|(id, _, value)| (id, value)).collect();
    let total = hits.len();
    let page: Vec<(String, Value)> = hits.into_iter().skip(after).take(limit).collect();
    let ids: Vec<&String> = page.iter().map(|(id, _)| id).collect();
    let mut result = json!({"search_result_resource": {
        "search_result": {
            "asset_id_list": ids,
            "hit_count": page.len(),
            "total_hit_count": total,
            "offset": after,
        },
    }});
    if !ids_only {
        let list: Vec<&Value> = page.iter().map(|(_, v)| v).collect();
        if let Some(resource) = result
            .get_mut("search_result_resource")
            .and_then(Value::as_object_mut)
        {
            resource.insert("asset_list".to_owned(), json!(list));
        }
    }
    json_response(StatusCode::OK, &result)
}

// ---------------------------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------------------------

/// `GET /otmmapi/v6/folders/{id}` -> `folder_resource.folder`, with `metadata` only when the
/// load parameters ask for it as the dialect understands them (a bare GET carries none).
async fn get_folder(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let with_metadata = app.config.otmm_dialect.folder_metadata_requested(&pairs);
    let world = app.world();
    match world.dam.folder(&id) {
        Some(folder) => json_response(
            StatusCode::OK,
            &json!({"folder_resource": {"folder": folder_json(&world.dam, folder, with_metadata)}}),
        ),
        None => otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found")),
    }
}

/// `GET /otmmapi/v6/folders/{id}/children?after&limit&load_type` -> `folder_children` with
/// `asset_list` (subfolders first, `data_type:"CONTAINER"`, then assets), `total_number_of_items`
/// and `collection_summary`. Default limit 25.
async fn folder_children(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(&uri);
    let (after, limit) = match paging(&pairs) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let with_metadata = wants_metadata(&pairs);
    let without_deleted = crate::dialect::excludes_deleted(&pairs);
    let world = app.world();
    let dam = &world.dam;
    if dam.folder(&id).is_none() {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found"));
    }
    let mut items: Vec<Value> = dam
        .subfolders(&id)
        .into_iter()
        .map(|f| folder_json(dam, f, with_metadata))
        .collect();
    items.extend(
        dam.folder_assets(&id)
            .into_iter()
            .filter(|a| !(a.deleted && without_deleted))
            .map(|a| asset_json(a, with_metadata)),
    );
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(after).take(limit).collect();
    json_response(
        StatusCode::OK,
        &json!({"folder_children": {
            "asset_list": page,
            "total_number_of_items": total,
            "collection_summary": {
                "total_number_of_items": total,
                "actual_count_of_items": page.len(),
            },
        }}),
    )
}

/// `GET /otmmapi/v6/folders/{id}/assets` -> `assets_resource{collection_summary, asset_list}`.
async fn folder_assets(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let (after, limit) = match paging(&pairs) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let with_metadata = wants_metadata(&pairs);
    let world = app.world();
    let dam = &world.dam;
    if dam.folder(&id).is_none() {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found"));
    }
    let assets = dam.folder_assets(&id);
    let total = assets.len();
    let page: Vec<Value> = assets
        .into_iter()
        .skip(after)
        .take(limit)
        .map(|a| asset_json(a, with_metadata))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"assets_resource": {
            "collection_summary": {"total_number_of_items": total, "actual_count_of_items": page.len()},
            "asset_list": page,
        }}),
    )
}

/// `GET /otmmapi/v6/folders/{id}/folders` -> `folders_resource{collection_summary, folder_list}`.
async fn folder_folders(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let (after, limit) = match paging(&pairs) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let world = app.world();
    let dam = &world.dam;
    if dam.folder(&id).is_none() {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found"));
    }
    let folders = dam.subfolders(&id);
    let total = folders.len();
    let page: Vec<Value> = folders
        .into_iter()
        .skip(after)
        .take(limit)
        .map(|f| folder_json(dam, f, wants_metadata(&pairs)))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"folders_resource": {
            "collection_summary": {"total_number_of_items": total, "actual_count_of_items": page.len()},
            "folder_list": page,
        }}),
    )
}

/// Applies `[{id, type, value:{value:{...}}}]` updates to categories. A field holding a
/// DomainValue keeps that shape (its `field_value.value` and `display_value` change); other
/// fields take the new `value.value` as given; unknown fields are added to the first category.
/// Returns `(field id, old text, new text)` per changed field.
fn apply_field_updates(
    categories: &mut Vec<DamCategory>,
    updates: &[Value],
    display_for: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Vec<(String, Option<String>, String)>, String> {
    let mut changes = Vec::new();
    for update in updates {
        let id = update
            .get("id")
            .and_then(Value::as_str)
            .ok_or("every metadata element needs an 'id'")?
            .to_owned();
        let new_inner = update
            .pointer("/value/value")
            .filter(|v| v.is_object())
            .ok_or_else(|| format!("field {id}: expected value.value to be an object"))?
            .clone();
        let probe = json!({"value": {"value": new_inner.clone()}});
        let new_text = field_value_text(&probe).unwrap_or_default();
        let existing = categories
            .iter_mut()
            .flat_map(|c| c.fields.iter_mut())
            .find(|f| f.get("id").and_then(Value::as_str) == Some(id.as_str()));
        if let Some(field) = existing {
            let old_text = field_value_text(field);
            let is_domain = field.pointer("/value/value/type").and_then(Value::as_str)
                == Some("com.artesia.metadata.DomainValue");
            if is_domain {
                let display = new_inner
                    .get("display_value")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| display_for(&id, &new_text))
                    .unwrap_or_else(|| new_text.clone());
                if let Some(inner) = field
                    .pointer_mut("/value/value")
                    .and_then(Value::as_object_mut)
                {
                    inner.insert(
                        "field_value".to_owned(),
                        json!({"type": "string", "value": new_text}),
                    );
                    inner.insert("display_value".to_owned(), json!(display));
                }
            } else if let Some(value) = field.get_mut("value").and_then(Value::as_object_mut) {
                value.insert("value".to_owned(), new_inner);
            }
            if old_text.as_deref() != Some(new_text.as_str()) {
                changes.push((id, old_text, new_text));
            }
        } else {
            let domain = new_inner.get("type").and_then(Value::as_str)
                == Some("com.artesia.metadata.DomainValue");
            let field = field_object(&id, domain, new_inner);
            match categories.first_mut() {
                Some(category) => category.fields.push(field),
                None => categories.push(DamCategory {
                    id: "ARTESIA.CATEGORY.DEFAULT".to_owned(),
                    name: "Default".to_owned(),
                    fields: vec![field],
                }),
            }
            changes.push((id, None, new_text));
        }
    }
    Ok(changes)
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn parse_edit_body(body: &[u8], wrapper: &str) -> Result<Vec<Value>, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        otmm_error(
            StatusCode::BAD_REQUEST,
            &format!("request body is not JSON: {e}"),
        )
    })?;
    value
        .get(wrapper)
        .and_then(|w| w.pointer("/data/metadata"))
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| {
            otmm_error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"{wrapper}\":{{\"data\":{{\"metadata\":[...]}}}}}}"),
            )
        })
}

/// `PATCH /otmmapi/v6/folders/{id}` `{"edited_folder":{"data":{"metadata":[fields]}}}`: the
/// folder must be locked (400 otherwise); 200 with `folder_resource`. Changes of the campaign
/// status field are recorded in the status history.
async fn patch_folder(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let updates = match parse_edit_body(&body, "edited_folder") {
        Ok(updates) => updates,
        Err(response) => return response,
    };
    let dialect = app.config.otmm_dialect;
    let wanted_type = if dialect.wants_domain_values() {
        "com.artesia.metadata.DomainValue"
    } else {
        "string"
    };
    if let Some(other) = updates.iter().find_map(|update| {
        let kind = update.pointer("/value/value/type").and_then(Value::as_str);
        (kind != Some(wanted_type)).then(|| kind.unwrap_or("none").to_owned())
    }) {
        return otmm_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid metadata value type {other}: this server expects {wanted_type} values in edited_folder"),
        );
    }
    let mut guard = app.world();
    let world = &mut *guard;
    let model = &app.config.campaign_model;
    let domains = world.dam.domains.clone();
    let display_for = |field_id: &str, value: &str| -> Option<String> {
        if field_id == model.status_field_id {
            domains
                .get(&model.status_domain_id)
                .and_then(|values| values.iter().find(|e| e.value == value))
                .map(|e| e.display.clone())
        } else {
            None
        }
    };
    let Some(folder) = world.dam.folder_mut(&id) else {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found"));
    };
    if dialect.edit_needs_lock() && folder.locked_by.as_deref() != Some(caller.identity.as_str()) {
        return otmm_error(
            StatusCode::CONFLICT,
            "the folder must be locked by the caller before its metadata is edited (PUT /assets/{id}/state action=lock)",
        );
    }
    let changes = match apply_field_updates(&mut folder.categories, &updates, &display_for) {
        Ok(changes) => changes,
        Err(message) => return otmm_error(StatusCode::BAD_REQUEST, &message),
    };
    folder.updated = crate::http_util::now();
    let folder_name = folder.name.clone();
    for (field_id, from, to) in changes {
        if field_id == model.status_field_id {
            world.dam.status_changes.push(StatusChange {
                folder_id: id.clone(),
                folder_name: folder_name.clone(),
                from,
                to,
                at: otmm_time(crate::http_util::now()),
                by: caller.identity.clone(),
            });
        }
    }
    match world.dam.folder(&id) {
        Some(folder) => json_response(
            StatusCode::OK,
            &json!({"folder_resource": {"folder": folder_json(&world.dam, folder, true)}}),
        ),
        None => otmm_error(StatusCode::NOT_FOUND, &format!("Folder {id} not found")),
    }
}

// ---------------------------------------------------------------------------------------------
// Assets
// ---------------------------------------------------------------------------------------------

/// `GET /otmmapi/v6/assets/{id}[?load_type=metadata&level_of_detail=full]` -> `asset_resource.asset`
/// (metadata only with load_type metadata/full/custom).
async fn get_asset(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let pairs = query_pairs(&uri);
    let world = app.world();
    match world.dam.asset(&id) {
        Some(asset) => json_response(
            StatusCode::OK,
            &json!({"asset_resource": {"asset": asset_json(asset, wants_metadata(&pairs))}}),
        ),
        None => otmm_error(StatusCode::NOT_FOUND, &format!("Asset {id} not found")),
    }
}

/// `PATCH /otmmapi/v6/assets/{id}` `{"edited_asset":{"data":{"metadata":[fields]}}}`: the asset
/// must be locked; 200 with `asset_resource` (with metadata).
async fn patch_asset(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let updates = match parse_edit_body(&body, "edited_asset") {
        Ok(updates) => updates,
        Err(response) => return response,
    };
    let mut world = app.world();
    let Some(asset) = world.dam.asset_mut(&id) else {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Asset {id} not found"));
    };
    if asset.locked_by.is_none() {
        return otmm_error(
            StatusCode::BAD_REQUEST,
            "asset must be locked before its metadata is edited",
        );
    }
    if let Err(message) = apply_field_updates(&mut asset.categories, &updates, &|_, _| None) {
        return otmm_error(StatusCode::BAD_REQUEST, &message);
    }
    asset.updated = crate::http_util::now();
    if let Some(name) = categories_field_text(&asset.categories, ASSET_NAME_FIELD) {
        asset.name = name;
    }
    json_response(
        StatusCode::OK,
        &json!({"asset_resource": {"asset": asset_json(asset, true)}}),
    )
}

/// `GET /otmmapi/v6/assets/{id}/contents`: streams the master content (Range supported).
async fn asset_contents(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = {
        let world = app.world();
        world.dam.asset(&id).map(stored_content)
    };
    if found.is_none() {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Asset {id} not found"));
    }
    let _ = headers;
    // Contents come from another origin (as from a CDN): a 302 to the download port.
    let ticket = random_alnum(40);
    {
        let mut world = app.world();
        let now = Instant::now();
        world
            .dam
            .cdn_tickets
            .retain(|_, (_, expires)| *expires > now);
        world.dam.cdn_tickets.insert(
            ticket.clone(),
            (id.clone(), now + std::time::Duration::from_mins(5)),
        );
    }
    let location = format!("{}/dam-cdn/{ticket}", app.config.download_base_url);
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `GET /dam-cdn/{ticket}` on the download port: the contents a redirect of
/// `/otmmapi/v6/assets/{id}/contents` points at (valid 5 minutes, reusable). A request that
/// carries the DAM's credentials (`otmmauthtoken`, `Authorization`, a `JSESSIONID` cookie) is
/// refused with 400: the client forwarded them to another host.
async fn cdn_contents(
    State(app): State<Arc<App>>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
) -> Response {
    let leaked = headers.contains_key("otmmauthtoken")
        || headers.contains_key(header::AUTHORIZATION)
        || headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("JSESSIONID"));
    if leaked {
        return otmm_error(
            StatusCode::BAD_REQUEST,
            "the content host does not accept the DAM's credentials: the client forwarded them across a redirect to another host",
        );
    }
    let found = {
        let world = app.world();
        world
            .dam
            .cdn_tickets
            .get(&ticket)
            .filter(|(_, expires)| *expires > Instant::now())
            .and_then(|(asset_id, _)| world.dam.asset(asset_id))
            .map(stored_content)
    };
    let Some((blob, size, mime, name)) = found else {
        return otmm_error(StatusCode::NOT_FOUND, "unknown or expired content URL");
    };
    serve_file(&blob, size, &mime, &name, header_text(&headers, "range")).await
}

/// Where an asset's master content is stored: path, size, MIME type, file name.
fn stored_content(asset: &DamAsset) -> (std::path::PathBuf, u64, String, String) {
    (
        asset.blob.clone(),
        asset.content_size,
        asset.mime_type.clone(),
        asset.file_name.clone(),
    )
}

/// `GET /otmmapi/v6/renditions/{id}`: the master rendition named in `master_content_info.url`.
async fn rendition_contents(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = {
        let world = app.world();
        world
            .dam
            .assets
            .iter()
            .find(|a| a.rendition_id == id)
            .map(stored_content)
    };
    let Some((blob, size, mime, name)) = found else {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Rendition {id} not found"));
    };
    serve_file(&blob, size, &mime, &name, header_text(&headers, "range")).await
}

/// `PUT /otmmapi/v6/assets/{id}/state` form `action=lock|unlock` for an asset or a folder ID.
/// Locking an already locked item succeeds (the lock passes to the caller: a crashed client can
/// recover); unlocking an unlocked item succeeds. Replies 200 with the item's resource
/// (`asset_resource` or `folder_resource`; unconfirmed in OTMM).
async fn asset_state(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let pairs = form.map(|f| f.0).unwrap_or_default();
    let lock = match first(&pairs, "action") {
        Some("lock") => true,
        Some("unlock") => false,
        Some(other) => {
            return otmm_error(
                StatusCode::BAD_REQUEST,
                &format!("unsupported action {other:?} (the sandbox supports lock and unlock)"),
            )
        }
        None => return otmm_error(StatusCode::BAD_REQUEST, "missing form field 'action'"),
    };
    let owner = lock.then(|| caller.identity.clone());
    let dialect = app.config.otmm_dialect;
    let mut world = app.world();
    // Only the identity holding a lock may take it over or release it.
    let holder = world
        .dam
        .folder(&id)
        .map(|folder| folder.locked_by.clone())
        .or_else(|| world.dam.asset(&id).map(|asset| asset.locked_by.clone()))
        .flatten();
    if holder
        .as_ref()
        .is_some_and(|holder| *holder != caller.identity)
    {
        return otmm_error(
            StatusCode::CONFLICT,
            &format!("{id} is locked by another user"),
        );
    }
    if let Some(folder) = world.dam.folder_mut(&id) {
        if lock && !dialect.locks_folders() {
            return otmm_error(
                StatusCode::FORBIDDEN,
                "Containers cannot be locked; only assets support lock and unlock",
            );
        }
        folder.locked_by = owner;
        let folder = folder.clone();
        return json_response(
            StatusCode::OK,
            &json!({"folder_resource": {"folder": folder_json(&world.dam, &folder, false)}}),
        );
    }
    if let Some(asset) = world.dam.asset_mut(&id) {
        asset.locked_by = owner;
        return json_response(
            StatusCode::OK,
            &json!({"asset_resource": {"asset": asset_json(asset, false)}}),
        );
    }
    otmm_error(StatusCode::NOT_FOUND, &format!("Asset {id} not found"))
}

// ---------------------------------------------------------------------------------------------
// Import and jobs
// ---------------------------------------------------------------------------------------------

/// Metadata categories from an asset representation's `metadata.metadata_element_list`: loose
/// fields are gathered into one category (`FERRERO.CATEGORY.ASSET INFO`), categories are kept.
fn representation_categories(elements: &[Value]) -> Vec<DamCategory> {
    let mut categories: Vec<DamCategory> = Vec::new();
    let mut loose: Vec<Value> = Vec::new();
    for element in elements {
        let kind = element
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "com.artesia.metadata.MetadataCategory" {
            categories.push(DamCategory {
                id: element
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("ARTESIA.CATEGORY.DEFAULT")
                    .to_owned(),
                name: element
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("Category")
                    .to_owned(),
                fields: element
                    .get("metadata_element_list")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(normalize_field)
                    .collect(),
            });
        } else {
            loose.push(normalize_field(element.clone()));
        }
    }
    if !loose.is_empty() {
        categories.insert(
            0,
            DamCategory {
                id: "FERRERO.CATEGORY.ASSET INFO".to_owned(),
                name: "Asset Info".to_owned(),
                fields: loose,
            },
        );
    }
    categories
}

/// Fills `type` and `name` of a field object when the client left them out.
fn normalize_field(mut field: Value) -> Value {
    if let Some(object) = field.as_object_mut() {
        object
            .entry("type")
            .or_insert_with(|| json!("com.artesia.metadata.MetadataField"));
        if !object.contains_key("name") {
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            object.insert("name".to_owned(), json!(field_display_name(&id)));
        }
    }
    field
}

/// The parts of `POST /assets` read so far.
#[derive(Default)]
struct ImportParts {
    representation: Option<String>,
    parent_folder_id: Option<String>,
    manifest: Option<String>,
    file: Option<(StoredBlob, Option<String>, Option<String>)>,
}

async fn read_import_parts(
    app: &App,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<ImportParts, Response> {
    let mut multipart = multipart.map_err(|_| {
        otmm_error(
            StatusCode::BAD_REQUEST,
            "expected a multipart/form-data body",
        )
    })?;
    let mut parts = ImportParts::default();
    let blob_dir = app.config.blob_dir.join("dam");
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                if let Some((blob, _, _)) = parts.file.take() {
                    blob.discard().await;
                }
                return Err(otmm_error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed multipart body: {error}"),
                ));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "asset_representation" | "parent_folder_id" | "manifest" | "import_template_id" => {
                let text = field.text().await.map_err(|e| {
                    otmm_error(
                        StatusCode::BAD_REQUEST,
                        &format!("unreadable part {name}: {e}"),
                    )
                })?;
                match name.as_str() {
                    "asset_representation" => parts.representation = Some(text),
                    "parent_folder_id" => parts.parent_folder_id = Some(text.trim().to_owned()),
                    "manifest" => parts.manifest = Some(text),
                    _ => {}
                }
            }
            "files" if parts.file.is_none() => {
                let file_name = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                let mut writer = BlobWriter::create(&blob_dir)
                    .await
                    .map_err(|e| otmm_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if let Err(error) = writer.write(&chunk).await {
                                writer.discard().await;
                                return Err(otmm_error(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    &error.to_string(),
                                ));
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            writer.discard().await;
                            return Err(otmm_error(
                                StatusCode::BAD_REQUEST,
                                &format!("upload interrupted: {error}"),
                            ));
                        }
                    }
                }
                let blob = writer
                    .finish()
                    .await
                    .map_err(|e| otmm_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
                parts.file = Some((blob, file_name, content_type));
            }
            _ => while let Ok(Some(_)) = field.chunk().await {},
        }
    }
    Ok(parts)
}

/// `POST /otmmapi/v6/assets` (multipart `asset_representation`, `parent_folder_id`, `manifest`,
/// `files`) -> 202 `{"job_handle":{"job_id":"<n>"}}`. The asset appears in the folder when the job
/// completes, after the configured import delay. 404 for an unknown parent folder, 400 for an
/// unparsable representation or a missing file part.
async fn import_asset(
    State(app): State<Arc<App>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let parts = match read_import_parts(&app, multipart).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    match prepare_import(&app, &parts) {
        Ok(prepared) => {
            let Some((blob, _, _)) = parts.file else {
                return otmm_error(StatusCode::BAD_REQUEST, "missing 'files' part");
            };
            start_import(app, prepared, blob).await
        }
        Err(response) => {
            if let Some((blob, _, _)) = parts.file {
                blob.discard().await;
            }
            response
        }
    }
}

/// What an import will create, validated before the job starts.
struct PreparedImport {
    folder_id: String,
    name: String,
    file_name: String,
    mime_type: String,
    model_id: String,
    categories: Vec<DamCategory>,
    security_policies: Value,
}

#[expect(
    clippy::result_large_err,
    reason = "handlers return ready error Responses; they are built once per request"
)]
fn prepare_import(app: &App, parts: &ImportParts) -> Result<PreparedImport, Response> {
    let Some(folder_id) = parts.parent_folder_id.clone().filter(|f| !f.is_empty()) else {
        return Err(otmm_error(
            StatusCode::BAD_REQUEST,
            "missing 'parent_folder_id' part",
        ));
    };
    if app.world().dam.folder(&folder_id).is_none() {
        return Err(otmm_error(
            StatusCode::NOT_FOUND,
            &format!("Folder {folder_id} not found"),
        ));
    }
    let Some(representation) = parts.representation.as_deref() else {
        return Err(otmm_error(
            StatusCode::BAD_REQUEST,
            "missing 'asset_representation' part",
        ));
    };
    let representation: Value = serde_json::from_str(representation).map_err(|e| {
        otmm_error(
            StatusCode::BAD_REQUEST,
            &format!("asset_representation is not valid JSON: {e}"),
        )
    })?;
    let Some(asset) = representation
        .pointer("/asset_resource/asset")
        .filter(|a| a.is_object())
    else {
        return Err(otmm_error(
            StatusCode::BAD_REQUEST,
            "asset_representation must be {\"asset_resource\":{\"asset\":{...}}}",
        ));
    };
    let elements = match asset.pointer("/metadata/metadata_element_list") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(otmm_error(
                StatusCode::BAD_REQUEST,
                "metadata.metadata_element_list must be a list",
            ))
        }
    };
    let manifest: Option<Value> = match parts.manifest.as_deref() {
        Some(text) if !text.trim().is_empty() => Some(serde_json::from_str(text).map_err(|e| {
            otmm_error(
                StatusCode::BAD_REQUEST,
                &format!("manifest is not valid JSON: {e}"),
            )
        })?),
        _ => None,
    };
    let manifest_file = manifest
        .as_ref()
        .and_then(|m| m.pointer("/upload_manifest/master_files/0/file"))
        .cloned();
    let Some((_, part_name, part_type)) = parts.file.as_ref() else {
        return Err(otmm_error(StatusCode::BAD_REQUEST, "missing 'files' part"));
    };
    let file_name = part_name
        .clone()
        .or_else(|| {
            manifest_file
                .as_ref()
                .and_then(|f| f.get("file_name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unnamed".to_owned());
    let mime_type = manifest_file
        .as_ref()
        .and_then(|f| f.get("file_type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            part_type
                .clone()
                .filter(|t| t != "application/octet-stream")
        })
        .unwrap_or_else(|| guess_mime(&file_name).to_owned());
    let categories = representation_categories(&elements);
    let name = categories_field_text(&categories, ASSET_NAME_FIELD)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| file_name.clone());
    Ok(PreparedImport {
        folder_id,
        name,
        file_name,
        mime_type,
        model_id: asset
            .get("metadata_model_id")
            .and_then(Value::as_str)
            .unwrap_or("FERRERO.MODEL.MARKETING ASSET")
            .to_owned(),
        categories,
        security_policies: asset
            .get("security_policy_list")
            .cloned()
            .unwrap_or_else(|| json!([])),
    })
}

async fn start_import(app: Arc<App>, prepared: PreparedImport, blob: StoredBlob) -> Response {
    let asset_id = new_dam_id();
    let target = app.config.blob_dir.join("dam").join(&asset_id);
    let stored = match blob.persist(target).await {
        Ok(stored) => stored,
        Err(error) => return otmm_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let job_id = app.world().dam.new_job(&prepared.folder_id, &prepared.name);
    let now = crate::http_util::now();
    let asset = DamAsset {
        id: asset_id,
        name: prepared.name,
        folder_id: prepared.folder_id,
        content_type: content_type_for(&prepared.mime_type).to_owned(),
        mime_type: prepared.mime_type,
        content_size: stored.size,
        sha1: stored.sha1,
        blob: stored.path,
        file_name: prepared.file_name,
        model_id: prepared.model_id,
        model_name: "Ferrero Marketing Asset".to_owned(),
        categories: prepared.categories,
        security_policies: prepared.security_policies,
        imported: now,
        updated: now,
        locked_by: None,
        rendition_id: random_hex(40),
        import_job_id: Some(job_id.clone()),
        deleted: false,
    };
    let delay = app
        .world()
        .settings
        .import_delay_ms
        .map_or(app.config.import_delay, std::time::Duration::from_millis);
    if delay.is_zero() {
        complete_import(&app, &job_id, asset);
    } else {
        let app = Arc::clone(&app);
        let job = job_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            complete_import(&app, &job, asset);
        });
    }
    json_response(
        StatusCode::ACCEPTED,
        &json!({"job_handle": {"job_id": job_id}}),
    )
}

fn complete_import(app: &App, job_id: &str, asset: DamAsset) {
    let mut world = app.world();
    let Ok(number) = job_id.parse::<u64>() else {
        return;
    };
    if world.dam.folder(&asset.folder_id).is_none() {
        if let Some(job) = world.dam.jobs.get_mut(&number) {
            job.status = JobStatus::Failed;
            job.message = "target folder no longer exists".to_owned();
        }
        return;
    }
    let asset_id = asset.id.clone();
    world.dam.insert_asset(asset);
    if let Some(job) = world.dam.jobs.get_mut(&number) {
        job.status = JobStatus::Completed;
        job.asset_id_list = vec![asset_id];
    }
}

/// `GET /otmmapi/v6/jobs/{id}/assets` -> `{"assets_resource":{"asset_list":[...]}}`: the assets an
/// import job created (empty while it runs or when it failed), as `bpra9266/sysco-otmm-publisher`
/// reads it. Only in the `jobs` dialect; 404 in the others (no public source shows the resource
/// on every server).
async fn job_assets(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if !app.config.otmm_dialect.has_jobs() {
        return otmm_error(StatusCode::NOT_FOUND, "Resource not found");
    }
    let world = app.world();
    let Some(job) = id.parse::<u64>().ok().and_then(|n| world.dam.jobs.get(&n)) else {
        return otmm_error(StatusCode::NOT_FOUND, &format!("Job {id} not found"));
    };
    let assets: Vec<Value> = job
        .asset_id_list
        .iter()
        .filter_map(|asset_id| world.dam.asset(asset_id))
        .map(|asset| asset_json(asset, false))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"assets_resource": {
            "collection_summary": {"total_number_of_items": assets.len(), "actual_count_of_items": assets.len()},
            "asset_list": assets}}),
    )
}

/// `GET /otmmapi/v6/lookupdomains/{domain_id}` in the shape of
/// `fixtures/otmm/lookup_domain_asset_type.json` (camelCase `domainId` / `domainValues`; display
/// values verbatim, stray spaces included).
async fn lookup_domain(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let world = app.world();
    let Some(values) = world.dam.domains.get(&id) else {
        return otmm_error(
            StatusCode::NOT_FOUND,
            &format!("Lookup domain {id} not found"),
        );
    };
    let values: Vec<Value> = values
        .iter()
        .map(|entry| {
            json!({
                "active_from": "",
                "active_to": "",
                "description": entry.display.trim(),
                "display_value": entry.display,
                "expired_value": false,
                "field_value": {"type": "string", "value": entry.value},
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"lookup_domain_resource": {"lookup_domain": {
            "cacheable": true,
            "datatype": "CHAR",
            "domainId": id,
            "domainValues": values,
        }}}),
    )
}

/// All fields of a folder or asset as `field id -> text`, for `/_sandbox/state`.
pub fn field_map(categories: &[DamCategory]) -> BTreeMap<String, String> {
    crate::state::categories_field_map(categories)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(
            field_display_name("FERRERO.FIELD.MKTG.ASSET TYPE"),
            "Mktg Asset Type"
        );
        assert_eq!(field_display_name("MAIN_LANGUAGES"), "Main Languages");
        assert_eq!(field_display_name("ARTESIA.FIELD.ASSET NAME"), "Asset Name");
    }

    #[test]
    fn domain_updates_keep_shape() {
        let mut categories = vec![DamCategory {
            id: "C".into(),
            name: "C".into(),
            fields: vec![
                domain_field("S", "A1", "A1 - Masters approved"),
                string_field("N", "x"),
            ],
        }];
        let updates = vec![
            json!({"id": "S", "type": "com.artesia.metadata.MetadataField", "value": {"value": {"type": "string", "value": "A2"}}}),
            json!({"id": "N", "value": {"value": {"type": "string", "value": "y"}}}),
        ];
        let changes = apply_field_updates(&mut categories, &updates, &|_, v| Some(format!("{v}!")))
            .expect("apply");
        assert_eq!(changes.len(), 2);
        let status = &categories[0].fields[0];
        assert_eq!(
            status.pointer("/value/value/type").and_then(Value::as_str),
            Some("com.artesia.metadata.DomainValue")
        );
        assert_eq!(
            status
                .pointer("/value/value/field_value/value")
                .and_then(Value::as_str),
            Some("A2")
        );
        assert_eq!(
            status
                .pointer("/value/value/display_value")
                .and_then(Value::as_str),
            Some("A2!")
        );
        assert_eq!(
            field_value_text(&categories[0].fields[1]).as_deref(),
            Some("y")
        );
    }

    #[test]
    fn conditions_parse_and_match() {
        let text = r#"{"search_condition_list":{"search_condition":[{"type":"com.artesia.search.SearchScalarCondition","metadata_field_id":"S","relational_operator_id":"ARTESIA.OPERATOR.CHAR.CONTAINS","value":"A1"}]}}"#;
        let conditions = parse_conditions(text).expect("parse");
        let categories = vec![DamCategory {
            id: "C".into(),
            name: "C".into(),
            fields: vec![domain_field("S", "A1", "x")],
        }];
        assert!(all_conditions_match(&conditions, &categories));
        let other = vec![DamCategory {
            id: "C".into(),
            name: "C".into(),
            fields: vec![domain_field("S", "A2", "x")],
        }];
        assert!(!all_conditions_match(&conditions, &other));
    }
}
