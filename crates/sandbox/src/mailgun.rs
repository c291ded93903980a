//! Mailgun messages API emulation: `POST /v3/{domain}/messages`
//! (<https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages>).
//!
//! Basic auth user `api` with the generated API key (else 401 with body `Forbidden`, as Mailgun
//! replies); the domain must be the configured one (else 404). The body may be
//! `application/x-www-form-urlencoded` or `multipart/form-data`. Every accepted message is recorded
//! with all its form fields, `h:` custom headers, `v:` variables and `o:` options.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::http_util::{header_text, json_response, otmm_time, random_hex};
use crate::state::App;

/// `POST /v3/{domain}/messages`.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v3/{domain}/messages", post(send_message))
}

fn authorized(app: &App, request: &Request) -> bool {
    let Some(encoded) = header_text(request.headers(), "authorization").and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Some(decoded) = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return false;
    };
    decoded.split_once(':') == Some(("api", app.config.credentials.mailgun_api_key.as_str()))
}

async fn read_fields(app: &Arc<App>, request: Request) -> Result<Vec<(String, String)>, String> {
    let is_multipart = header_text(request.headers(), "content-type")
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if is_multipart {
        let mut multipart = Multipart::from_request(request, app)
            .await
            .map_err(|e| e.body_text())?;
        let mut fields = Vec::new();
        while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_owned();
            if field.file_name().is_some() {
                // Attachments are recorded by name only.
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let _ = field.bytes().await.map_err(|e| e.to_string())?;
                fields.push((name, format!("<attachment {file_name}>")));
            } else {
                let text = field.text().await.map_err(|e| e.to_string())?;
                fields.push((name, text));
            }
        }
        Ok(fields)
    } else {
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(request, app)
            .await
            .map_err(|e| e.body_text())?;
        Ok(fields)
    }
}

fn mailgun_message(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"message": message}))
}

fn split_addresses(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Records the message and replies `{"id":"<...@domain>","message":"Queued. Thank you."}`.
async fn send_message(
    State(app): State<Arc<App>>,
    Path(domain): Path<String>,
    request: Request,
) -> Response {
    if !authorized(&app, &request) {
        let mut response = (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"MG API\""),
        );
        return response;
    }
    if domain != app.config.mailgun_domain {
        return mailgun_message(
            StatusCode::NOT_FOUND,
            &format!("Domain not found: {domain}"),
        );
    }
    let fields = match read_fields(&app, request).await {
        Ok(fields) => fields,
        Err(message) => return mailgun_message(StatusCode::BAD_REQUEST, &message),
    };
    let all = |key: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let one = |key: &str| all(key).first().map(|v| (*v).to_owned());
    let Some(from) = one("from") else {
        return mailgun_message(StatusCode::BAD_REQUEST, "from parameter is missing");
    };
    let to = split_addresses(&all("to"));
    if to.is_empty() {
        return mailgun_message(StatusCode::BAD_REQUEST, "to parameter is missing");
    }
    let text = one("text");
    let html = one("html");
    if text.is_none() && html.is_none() && one("template").is_none() {
        return mailgun_message(
            StatusCode::BAD_REQUEST,
            "Need at least one of 'text', 'html' or 'template' parameters specified",
        );
    }
    let prefixed = |prefix: &str| -> BTreeMap<String, String> {
        fields
            .iter()
            .filter_map(|(name, value)| {
                name.strip_prefix(prefix)
                    .map(|k| (k.to_owned(), value.clone()))
            })
            .collect()
    };
    let now = crate::http_util::now();
    let id = format!(
        "<{}.{}@{}>",
        now.strftime("%Y%m%d%H%M%S"),
        random_hex(16),
        domain
    );
    let record = json!({
        "id": id,
        "domain": domain,
        "from": from,
        "to": to,
        "cc": split_addresses(&all("cc")),
        "bcc": split_addresses(&all("bcc")),
        "subject": one("subject"),
        "text": text,
        "html": html,
        "headers": prefixed("h:"),
        "variables": prefixed("v:"),
        "options": prefixed("o:"),
        "fields": fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<Value>>(),
        "received_at": otmm_time(now),
    });
    app.world().emails.push(record);
    json_response(
        StatusCode::OK,
        &json!({"id": id, "message": "Queued. Thank you."}),
    )
}
