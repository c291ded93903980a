//! Mailgun messages API emulation: `POST /v3/{domain}/messages`
//! (<https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages>), and
//! the events API's `accepted` events: `GET /v3/{domain}/events`
//! (<https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events>).
//!
//! Basic auth user `api` with the generated API key (else 401 with body `Forbidden`, as Mailgun
//! replies); the domain must be the configured one (else 404). The body may be
//! `application/x-www-form-urlencoded` or `multipart/form-data`. Every accepted message is recorded
//! with all its form fields, `h:` custom headers, `v:` variables and `o:` options. Its
//! `Message-Id` is the `h:Message-Id` it was sent with (else a generated
//! `<{time}.{hex}@{domain}>`), recorded as `headers["Message-Id"]` and `message_id`.
//!
//! Events: one `accepted` event per recipient of every recorded message, shaped like Mailgun's
//! (`{"items":[{"id","event":"accepted","timestamp","recipient","message":{"headers":
//! {"message-id": <id without angle brackets>,"from","to","subject"},"recipients","size"},...}],
//! "paging":{"first","last","next","previous"}}`). Filters: `event`, `message-id` (the id with
//! or without angle brackets, matched exactly), `recipient`, `begin` / `end` (epoch seconds),
//! `ascending` (`yes`/`no`), `limit` (1-300, default 300); any other filter is refused with 400
//! rather than ignored. `/_sandbox/config` `mailgun_events` chooses how a custom Message-Id is
//! indexed (see [`MailgunEvents`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::http_util::{first, header_text, json_response, otmm_time, query_pairs, random_hex};
use crate::state::{App, MailgunEvents};

/// `POST /v3/{domain}/messages`, `GET /v3/{domain}/events`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v3/{domain}/messages", post(send_message))
        .route("/v3/{domain}/events", get(events))
}

fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"MG API\""),
    );
    response
}

/// A Message-Id without surrounding whitespace and angle brackets.
fn bare_id(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id)
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
        return unauthorized();
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
    let generated = format!(
        "<{}.{}@{}>",
        now.strftime("%Y%m%d%H%M%S"),
        random_hex(16),
        domain
    );
    let mut headers = prefixed("h:");
    // A custom Message-Id (any case of the header name) is kept as the message's Message-Id.
    let custom = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("message-id"))
        .map(|(name, value)| (name.clone(), value.trim().to_owned()));
    let message_id = match custom {
        Some((name, value)) => {
            if bare_id(&value).is_empty() || !bare_id(&value).contains('@') {
                return mailgun_message(
                    StatusCode::BAD_REQUEST,
                    &format!("Message-Id header is not a valid message id: {value:?}"),
                );
            }
            headers.remove(&name);
            format!("<{}>", bare_id(&value))
        }
        None => generated.clone(),
    };
    headers.insert("Message-Id".to_owned(), message_id.clone());
    let mode = app.world().settings.mailgun_events;
    // The id the send returns and the events index.
    let id = if mode == MailgunEvents::NoCustomIds {
        generated
    } else {
        message_id.clone()
    };
    let size = fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let record = json!({
        "id": id,
        "message_id": message_id,
        // Seconds with milliseconds, as Mailgun's events carry them.
        "timestamp": timestamp_secs(now),
        "size": size,
        "domain": domain,
        "from": from,
        "to": to,
        "cc": split_addresses(&all("cc")),
        "bcc": split_addresses(&all("bcc")),
        "subject": one("subject"),
        "text": text,
        "html": html,
        "headers": headers,
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

/// Filters of `GET /v3/{domain}/events` the sandbox implements.
const EVENT_FILTERS: &[&str] = &[
    "event",
    "message-id",
    "recipient",
    "begin",
    "end",
    "ascending",
    "limit",
    "pretty",
    "page",
];

/// `GET /v3/{domain}/events`: the `accepted` events of the recorded messages.
async fn events(
    State(app): State<Arc<App>>,
    Path(domain): Path<String>,
    request: Request,
) -> Response {
    if !authorized(&app, &request) {
        return unauthorized();
    }
    if domain != app.config.mailgun_domain {
        return mailgun_message(
            StatusCode::NOT_FOUND,
            &format!("Domain not found: {domain}"),
        );
    }
    let pairs = query_pairs(request.uri());
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, _)| !EVENT_FILTERS.contains(&name.as_str()))
    {
        return mailgun_message(
            StatusCode::BAD_REQUEST,
            &format!("the sandbox does not implement the events filter {name:?}"),
        );
    }
    let seconds = |key: &str| -> Result<Option<f64>, Response> {
        match first(&pairs, key) {
            None => Ok(None),
            Some(text) => text.trim().parse::<f64>().map(Some).map_err(|_| {
                mailgun_message(
                    StatusCode::BAD_REQUEST,
                    &format!("{key}: expected epoch seconds, found {text:?}"),
                )
            }),
        }
    };
    let (begin, end) = match (seconds("begin"), seconds("end")) {
        (Ok(begin), Ok(end)) => (begin, end),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let ascending = match first(&pairs, "ascending") {
        None => match (begin, end) {
            (Some(b), Some(e)) => e >= b,
            _ => false,
        },
        Some("yes") => true,
        Some("no") => false,
        Some(other) => {
            return mailgun_message(
                StatusCode::BAD_REQUEST,
                &format!("ascending: expected yes or no, found {other:?}"),
            )
        }
    };
    let limit = match first(&pairs, "limit").map(str::parse::<usize>) {
        None => 300,
        Some(Ok(n)) if (1..=300).contains(&n) => n,
        Some(_) => return mailgun_message(StatusCode::BAD_REQUEST, "limit: expected 1 to 300"),
    };
    let offset = first(&pairs, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0);
    let event = first(&pairs, "event").map(str::to_owned);
    let wanted_id = first(&pairs, "message-id").map(|id| bare_id(id).to_owned());
    let recipient = first(&pairs, "recipient").map(str::to_ascii_lowercase);

    let world = app.world();
    if world.settings.mailgun_events == MailgunEvents::Unavailable {
        return mailgun_message(
            StatusCode::SERVICE_UNAVAILABLE,
            "events are temporarily unavailable (sandbox setting mailgun_events)",
        );
    }
    let mut items: Vec<Value> = Vec::new();
    for email in &world.emails {
        let timestamp = email["timestamp"].as_f64().unwrap_or(0.0);
        let in_range = match (begin, end) {
            (Some(b), Some(e)) => timestamp >= b.min(e) && timestamp <= b.max(e),
            // `begin` alone: forward from it when ascending, else back from it.
            (Some(b), None) => {
                if ascending {
                    timestamp >= b
                } else {
                    timestamp <= b
                }
            }
            (None, Some(e)) => timestamp <= e,
            (None, None) => true,
        };
        if !in_range {
            continue;
        }
        if event.as_deref().is_some_and(|e| e != "accepted") {
            continue;
        }
        let indexed = bare_id(email["id"].as_str().unwrap_or_default()).to_owned();
        if wanted_id.as_deref().is_some_and(|w| w != indexed) {
            continue;
        }
        let all_recipients: Vec<String> = ["to", "cc", "bcc"]
            .iter()
            .flat_map(|key| email[*key].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        for (index, to) in all_recipients.iter().enumerate() {
            if recipient
                .as_deref()
                .is_some_and(|r| !to.to_ascii_lowercase().contains(r))
            {
                continue;
            }
            items.push(json!({
                "id": format!("{}-{index}", indexed),
                "event": "accepted",
                "timestamp": timestamp,
                "log-level": "info",
                "method": "HTTP",
                "recipient": to,
                "recipient-domain": to.rsplit('@').next().unwrap_or_default().trim_end_matches('>'),
                "envelope": {"sender": email["from"], "targets": to, "transport": ""},
                "flags": {"is-authenticated": true, "is-test-mode": false},
                "tags": [],
                "user-variables": email["variables"],
                "message": {
                    "headers": {
                        "message-id": indexed,
                        "from": email["from"],
                        "to": email["to"].as_array().map(|to| to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")),
                        "subject": email["subject"],
                    },
                    "attachments": [],
                    "recipients": all_recipients,
                    "size": email["size"],
                },
            }));
        }
    }
    drop(world);
    if !ascending {
        items.reverse();
    }
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let base = format!(
        "{}/v3/{domain}/events",
        app.config.main_base_url.trim_end_matches('/')
    );
    let query_without_page: String = pairs
        .iter()
        .filter(|(name, _)| name != "page")
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = |page_offset: usize| format!("{base}?{query_without_page}&page={page_offset}");
    json_response(
        StatusCode::OK,
        &json!({
            "items": page,
            "paging": {
                "first": url(0),
                "last": url(items.len().saturating_sub(1) / limit * limit),
                "next": url(offset + limit),
                "previous": url(offset.saturating_sub(limit)),
            },
        }),
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// `now` in seconds with milliseconds, the float Mailgun's events carry (exact: milliseconds since
/// 1970 stay far below 2^52 for any date to come).
#[expect(
    clippy::cast_precision_loss,
    reason = "milliseconds since 1970 are far below 2^52"
)]
fn timestamp_secs(now: jiff::Timestamp) -> f64 {
    now.as_millisecond() as f64 / 1000.0
}
