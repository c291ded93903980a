//! Notifications: email templates (minijinja), email delivery through the Mailgun HTTP API, and
//! outgoing webhooks signed with HMAC-SHA256.
//!
//! Delivery is at-least-once: the outbox (in `store`) retries when [`NotifyError::is_transient`] and
//! gives up otherwise; every delivery carries the outbox row's idempotency key so the
//! receiver can drop duplicates (Mailgun custom header `X-Idempotency-Key`, webhook header
//! `Idempotency-Key` and body field `idempotency_key`).
//!
//! Emails also carry a stable `Message-Id` derived from the key ([`message_id_for`]); before an
//! email whose earlier send has an unknown outcome is sent again, the outbox asks Mailgun's events
//! API whether that Message-Id was accepted ([`Mailer::accepted`]).
//!
//! Error messages never contain the Mailgun API key, bearer tokens or signing secrets; text bound
//! for `outbox.last_error` or a log goes through [`outbox_error_text`] / [`redact_credentials`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use sha2::Sha256;

use ureq::http::{Method, Request, Response};
use ureq::{Body, SendBody};

pub use crate::http::redact_credentials;

use crate::config::{EmailConfig, EmailTemplates, SubjectFormat, WebhookEndpoint};
use crate::http::{
    self, CallOptions, HttpContext, RateLimit, Redirects, RetryPolicy, SendError, Timeouts,
};
use crate::secret::Secret;

/// Longest piece of a response body quoted in an error message (characters).
const BODY_SNIPPET_CHARS: usize = 300;
/// Timeout used for a webhook endpoint whose `timeout_secs` is 0.
const DEFAULT_WEBHOOK_TIMEOUT_SECS: u64 = 10;
/// `User-Agent` sent on every notification request.
const USER_AGENT: &str = concat!("content-scaling/", env!("CARGO_PKG_VERSION"));

/// Why a notification could not be rendered or delivered. Variants that wrap a lower-level error
/// keep it as their [`std::error::Error::source`] and repeat its text, so one line says what failed.
/// Texts quoted from a receiver's reply are redacted when the error is made; anything bound for a
/// log or `outbox.last_error` still goes through [`outbox_error_text`].
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `email_templates.yaml` has no template of that name (`known` lists the names it has).
    #[error("unknown email template `{template}` (email_templates.yaml defines: {known})")]
    UnknownTemplate {
        /// The template asked for.
        template: String,
        /// The names defined, comma-separated, or `none`.
        known: String,
    },
    /// A template part does not parse or uses a variable the context lacks (strict mode).
    /// Retrying will not help until the template or the context is fixed.
    #[error("email template error: template `{template}` ({part}): {source}")]
    Template {
        /// Template name.
        template: String,
        /// `subject`, `text` or `html`.
        part: &'static str,
        /// minijinja's error (it carries the line).
        #[source]
        source: minijinja::Error,
    },
    /// A `str.format` subject (the plan's templates) names a value the context lacks, or its
    /// braces do not balance. Retrying will not help until the template is fixed.
    #[error("email template error: template `{template}` (subject): {source}")]
    Format {
        /// Template name.
        template: String,
        /// What is wrong.
        #[source]
        source: crate::notify_plan::FormatError,
    },
    /// The notification cannot be sent as it stands: an email without recipients, a webhook
    /// endpoint no longer configured. Retrying will not help.
    #[error("notification rejected: {0}")]
    Unsendable(String),
    /// The request could not be built (bad URL or header value) or its body encoded.
    #[error("notification rejected: {what}: invalid request: {source}")]
    InvalidRequest {
        /// `Mailgun`, `Mailgun events`, ``webhook `name` ``.
        what: String,
        /// The builder's or encoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The receiver answered with a status other than 2xx; `detail` is an excerpt of its reply,
    /// redacted. 5xx: the request may still have taken effect; 408/429: retry; other 4xx: refused.
    #[error("{}: {what} answered HTTP {status}{}", status_prefix(*.status), detail_suffix(.detail))]
    Status {
        /// `Mailgun`, `Mailgun events`, ``webhook `name` ``.
        what: String,
        /// HTTP status.
        status: u16,
        /// Excerpt of the reply (Mailgun's `message` when there is one), credentials redacted.
        detail: String,
    },
    /// No HTTP reply ([`http::transport_class`] says whether the request may have arrived).
    #[error("{}: {what}: {source}", transport_prefix(http::transport_class(.source)))]
    Transport {
        /// `Mailgun`, `Mailgun events`, ``webhook `name` ``.
        what: String,
        /// The ureq error.
        #[source]
        source: ureq::Error,
    },
    /// A 2xx reply that is not the JSON expected (Mailgun's events API).
    #[error("notification failed (will retry): {what}: reply is not JSON: {source}")]
    Reply {
        /// `Mailgun events`.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// How a status error's text starts: what the outbox will do about it.
fn status_prefix(status: u16) -> &'static str {
    if status >= 500 {
        "notification outcome unknown (will check and retry)"
    } else if status == 408 || status == 429 {
        "notification failed (will retry)"
    } else {
        "notification rejected"
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// How a transport error's text starts: what the outbox will do about it.
fn transport_prefix(class: http::TransportClass) -> &'static str {
    match class {
        http::TransportClass::NotSent => "notification failed (will retry)",
        http::TransportClass::MaybeSent => "notification outcome unknown (will check and retry)",
        http::TransportClass::Invalid => "notification rejected",
    }
}

impl NotifyError {
    /// Retry later with backoff: 408, 429 and 5xx replies, the Mailgun events reply not JSON,
    /// and transport errors other than a request we built wrong ([`http::TransportClass`]).
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            NotifyError::Transport { source, .. } => http::transport_class(source).is_transient(),
            NotifyError::Reply { .. } => true,
            NotifyError::UnknownTemplate { .. }
            | NotifyError::Template { .. }
            | NotifyError::Format { .. }
            | NotifyError::Unsendable(_)
            | NotifyError::InvalidRequest { .. } => false,
        }
    }

    /// The receiver may have accepted the request: a 5xx reply ("500 after accept"), or no reply
    /// after the request may have left ([`http::TransportClass::MaybeSent`]). An email is then
    /// first looked up in Mailgun's events ([`Mailer::accepted`]) before it is sent again.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            NotifyError::Status { status, .. } => *status >= 500,
            NotifyError::Transport { source, .. } => {
                http::transport_class(source) == http::TransportClass::MaybeSent
            }
            _ => false,
        }
    }
}

/// Most events asked for in one look-up (Mailgun's documented maximum is 300, older docs 100).
const EVENTS_LIMIT: u32 = 100;
/// The look-up starts this many seconds before the doubtful send (clock skew between our
/// database and Mailgun).
const EVENTS_SKEW_SECS: i64 = 300;

/// The `Message-Id` of the email with outbox idempotency key `key`, sent from Mailgun domain
/// `domain`: `<{first 32 hex digits of SHA-256(key)}@{domain}>`. Stable across attempts and
/// passes, so every copy of one email carries the same Message-Id (mail systems that
/// de-duplicate by Message-ID show one), and Mailgun's events can be searched for it. The angle
/// brackets and the sending domain follow RFC 5322 and Mailgun's advice for custom ids.
pub fn message_id_for(key: &str, domain: &str) -> String {
    use sha2::Digest as _;
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("<{}@{}>", &digest[..32], domain.trim())
}

/// A rendered email, ready for [`Mailer::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line (newlines in the rendered subject are folded into spaces, ends trimmed).
    pub subject: String,
    /// Plain-text body (no escaping).
    pub text: String,
    /// HTML body (values HTML-escaped unless marked `|safe`), when the template has one.
    pub html: Option<String>,
}

/// Render the email template `template` of `templates` (`email_templates.yaml`) with `context`
/// (a JSON object whose keys become template variables). A [`SubjectFormat::StrFormat`]
/// subject is filled as Python's `str.format(**context)` ([`crate::notify_plan::format_braces`]);
/// an empty text template gives an empty text part (not sent).
///
/// Jinja2 syntax via minijinja (<https://docs.rs/minijinja>) with
/// [`UndefinedBehavior::Strict`]: using a variable the context lacks is an error, except in
/// `is defined` tests and `default` filters. The HTML body is auto-escaped; subject and text are not.
///
/// Errors: [`NotifyError::Template`] naming the template, the part (subject/text/html) and the
/// minijinja message (which carries the line).
pub fn render_email(
    templates: &EmailTemplates,
    template: &str,
    context: &serde_json::Value,
) -> Result<RenderedEmail, NotifyError> {
    let Some(tpl) = templates.templates.get(template) else {
        let known: Vec<&str> = templates.templates.keys().map(String::as_str).collect();
        return Err(NotifyError::UnknownTemplate {
            template: template.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let env = template_env();
    let ctx = to_template_value(context);
    let render = |part: &'static str, source: &str, ext: &str| -> Result<String, NotifyError> {
        let name = format!("{template}.{part}.{ext}");
        env.render_named_str(&name, source, ctx.clone())
            .map_err(|source| NotifyError::Template {
                template: template.to_string(),
                part,
                source,
            })
    };
    let subject = match tpl.subject_format {
        SubjectFormat::Jinja => render("subject", &tpl.subject, "txt")?,
        SubjectFormat::StrFormat => crate::notify_plan::format_braces(&tpl.subject, context)
            .map_err(|source| NotifyError::Format {
                template: template.to_string(),
                source,
            })?,
    };
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = if tpl.text.is_empty() {
        String::new()
    } else {
        render("text", &tpl.text, "txt")?
    };
    let html = match &tpl.html {
        Some(source) => Some(render("html", source, "html")?),
        None => None,
    };
    Ok(RenderedEmail {
        subject,
        text,
        html,
    })
}

/// minijinja environment: strict undefined, HTML escaping for `*.html` template names only, done
/// as Jinja2 does it (markupsafe: `&`, `<`, `>`, `"`, `'` only; minijinja would also write `/`
/// as `&#x2f;`, which leaves the plan's `href="{{ box_folder_url }}"` unreadable in the source).
fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() {
            if let Some(text) = value.as_str() {
                return out
                    .write_str(&markupsafe_escape(text))
                    .map_err(minijinja::Error::from);
            }
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.set_auto_escape_callback(|name| {
        let html = std::path::Path::new(name)
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("html"));
        if html {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// `text` escaped as Jinja2's markupsafe does: `&` `<` `>` `"` `'` become `&amp;` `&lt;` `&gt;`
/// `&#34;` `&#39;`.
fn markupsafe_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&#34;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The template context of a JSON value, through minijinja's `serde` support
/// (`Value::from(`[`minijinja::value::Serde`]`(..))`, minijinja 3's form of `Value::from_serialize`): objects become maps, arrays sequences; a non-object root
/// yields an empty context.
fn to_template_value(value: &serde_json::Value) -> minijinja::Value {
    if value.is_object() {
        minijinja::Value::from(minijinja::value::Serde(value))
    } else {
        minijinja::Value::from(BTreeMap::<String, minijinja::Value>::new())
    }
}

/// Sends email through the Mailgun Messages API
/// (<https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/>).
#[derive(Clone)]
pub struct Mailer {
    http: HttpContext,
    url: String,
    events_url: String,
    domain: String,
    api_key: Secret<String>,
    from: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `cfg.domain` at `cfg.mailgun_base_url` (e.g. `https://api.mailgun.net`, or
    /// `https://api.eu.mailgun.net` for EU domains), sending as `cfg.from`. `agent` carries the
    /// connect/read timeouts of the pass.
    pub fn new(cfg: &EmailConfig, agent: ureq::Agent) -> Self {
        let base = cfg.mailgun_base_url.trim_end_matches('/');
        Mailer {
            http: notify_context(agent),
            url: format!("{base}/v3/{}/messages", cfg.domain.trim()),
            events_url: format!("{base}/v3/{}/events", cfg.domain.trim()),
            domain: cfg.domain.trim().to_string(),
            api_key: cfg.api_key.clone(),
            from: cfg.from.clone(),
        }
    }

    /// The Message-Id this mailer gives the email with idempotency key `key` ([`message_id_for`]).
    pub fn message_id(&self, key: &str) -> String {
        message_id_for(key, &self.domain)
    }

    /// Every form in which this mailer's credential could be echoed back: the key, its
    /// percent-encoded form, and the base64 of `api:{key}` (the Basic credential) in the standard
    /// and URL-safe alphabets. For [`redact_credentials`].
    pub fn secret_forms(&self) -> Vec<String> {
        let key = self.api_key.expose();
        if key.is_empty() {
            return Vec::new();
        }
        let basic = format!("api:{key}");
        let mut forms = vec![
            key.clone(),
            percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            base64::engine::general_purpose::STANDARD.encode(&basic),
            base64::engine::general_purpose::URL_SAFE.encode(&basic),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&basic),
        ];
        forms.dedup();
        forms
    }

    fn basic_auth(&self) -> String {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("api:{}", self.api_key.expose()));
        format!("Basic {credentials}")
    }

    /// `builder` with Mailgun's Basic credential and our `User-Agent`.
    fn authorized(&self, builder: ureq::http::request::Builder) -> ureq::http::request::Builder {
        builder
            .header("Authorization", self.basic_auth())
            .header("User-Agent", USER_AGENT)
    }

    /// The error of a non-2xx reply to the call `what`, its detail redacted of
    /// [`Mailer::secret_forms`] (a Mailgun error may echo the request's headers).
    fn status_error(&self, what: &str, status: u16, detail: &str) -> NotifyError {
        let forms = self.secret_forms();
        let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
        status_error(what, status, detail, &forms)
    }

    /// Whether Mailgun accepted a message with Message-Id `message_id` since `since_unix`
    /// (Unix seconds): `GET {base}/v3/{domain}/events?event=accepted&message-id={id without
    /// angle brackets}&begin={since - 300}&ascending=yes&limit=100` with the same Basic auth as
    /// [`Mailer::send`]
    /// (<https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events>).
    ///
    /// Only an item whose `event` is `accepted` and whose `message.headers.message-id` equals the
    /// id exactly (brackets ignored) counts, so a loose filter match can never mark an email
    /// sent that was not. Answers `Ok(false)` when no such item is on the first page.
    ///
    /// Errors: as [`Mailer::send`] (a 401/403 here usually means a sending-only API key, which
    /// cannot read events).
    pub fn accepted(&self, message_id: &str, since_unix: i64) -> Result<bool, NotifyError> {
        let bare = bare_message_id(message_id);
        let begin = (since_unix - EVENTS_SKEW_SECS).max(0).to_string();
        let limit = EVENTS_LIMIT.to_string();
        let mut url =
            url::Url::parse(&self.events_url).map_err(|e| NotifyError::InvalidRequest {
                what: "Mailgun events".to_string(),
                source: Box::new(e),
            })?;
        url.query_pairs_mut()
            .append_pair("event", "accepted")
            .append_pair("message-id", bare)
            .append_pair("begin", &begin)
            .append_pair("ascending", "yes")
            .append_pair("limit", &limit);
        let url = String::from(url);
        let mut response = send_once(
            &self.http,
            &Method::GET,
            &url,
            NOTIFY_TIMEOUTS,
            &mut || http::empty_body(self.authorized(http::request(Method::GET, &url))),
            "Mailgun events",
        )?;
        let status = response.status().as_u16();
        let body = read_body(&mut response);
        if !(200..300).contains(&status) {
            return Err(self.status_error("Mailgun events", status, &body));
        }
        let reply: serde_json::Value =
            serde_json::from_str(&body).map_err(|source| NotifyError::Reply {
                what: "Mailgun events".to_string(),
                source,
            })?;
        Ok(events_contain_accepted(&reply, bare))
    }

    /// `POST {mailgun_base_url}/v3/{domain}/messages` as an `application/x-www-form-urlencoded` form
    /// (`from`, one `to` per recipient, `subject`, `text`, `html` if any, and
    /// `h:X-Idempotency-Key` = `idempotency_key` and `h:Message-Id` = [`Mailer::message_id`],
    /// Mailgun custom MIME headers), with HTTP basic auth `api:{api_key}`.
    ///
    /// Returns Mailgun's message id (JSON `id`, e.g. `<20261120.1@mg.example.com>`; empty when a 2xx
    /// answer carries none). Errors: [`NotifyError::Unsendable`] for no recipients,
    /// [`NotifyError::Status`] for a non-2xx reply (4xx: bad key 401/403, bad domain 404, bad
    /// parameters 400, not transient; 408/429 transient; 5xx outcome unknown),
    /// [`NotifyError::Transport`] when no reply came (transient; outcome unknown when the request
    /// may have left: read timeouts, connections lost mid-exchange).
    /// No credential form ([`Mailer::secret_forms`]) ever appears in an error.
    pub fn send(
        &self,
        to: &[String],
        email: &RenderedEmail,
        idempotency_key: &str,
    ) -> Result<String, NotifyError> {
        let to: Vec<&str> = to
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if to.is_empty() {
            return Err(NotifyError::Unsendable(
                "email has no recipients (check email.success_recipients / email.error_recipients)"
                    .to_string(),
            ));
        }
        let mut form: Vec<(&str, &str)> = vec![("from", self.from.as_str())];
        form.extend(to.iter().map(|t| ("to", *t)));
        form.push(("subject", email.subject.as_str()));
        if !email.text.is_empty() || email.html.is_none() {
            form.push(("text", email.text.as_str()));
        }
        if let Some(html) = &email.html {
            form.push(("html", html.as_str()));
        }
        form.push(("h:X-Idempotency-Key", idempotency_key));
        let message_id = self.message_id(idempotency_key);
        form.push(("h:Message-Id", message_id.as_str()));

        let mut response = send_once(
            &self.http,
            &Method::POST,
            &self.url,
            NOTIFY_TIMEOUTS,
            &mut || {
                http::form(
                    self.authorized(http::request(Method::POST, &self.url)),
                    &form,
                )
            },
            "Mailgun",
        )?;
        let status = response.status().as_u16();
        let body = read_body(&mut response);
        if (200..300).contains(&status) {
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .unwrap_or_default();
            if id.is_empty() {
                tracing::warn!(status, "Mailgun accepted the message but returned no id");
            } else if bare_message_id(&id) != bare_message_id(&message_id) {
                // Mailgun documents its events filter as matching "the id returned by the
                // messages API": when that is not our Message-Id, the events check cannot find
                // this email (set email.confirm_with_events: false to skip the look-up).
                tracing::warn!(mailgun_id = %id, message_id = %message_id, "Mailgun answered with an id other than our Message-Id");
            }
            return Ok(id);
        }
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(body);
        Err(self.status_error("Mailgun", status, &detail))
    }
}

/// `message_id` without surrounding whitespace and angle brackets (Mailgun stores and filters
/// `message.headers.message-id` without them).
fn bare_message_id(message_id: &str) -> &str {
    let trimmed = message_id.trim();
    trimmed
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(trimmed)
}

/// Whether an events reply (`{"items":[{"event":..,"message":{"headers":{"message-id":..}}}],
/// "paging":{..}}`) has an `accepted` item for exactly `bare_id`.
fn events_contain_accepted(reply: &serde_json::Value, bare_id: &str) -> bool {
    reply
        .get("items")
        .and_then(|items| items.as_array())
        .is_some_and(|items| {
            items.iter().any(|item| {
                item.get("event").and_then(|e| e.as_str()) == Some("accepted")
                    && item
                        .pointer("/message/headers/message-id")
                        .and_then(|id| id.as_str())
                        .is_some_and(|id| bare_message_id(id) == bare_id)
            })
        })
}

/// Sends outgoing webhooks (`webhooks.yaml` endpoints).
#[derive(Clone)]
pub struct WebhookSender {
    http: HttpContext,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

impl WebhookSender {
    /// A sender using `agent` (per-request timeout comes from each endpoint's `timeout_secs`).
    pub fn new(agent: ureq::Agent) -> Self {
        WebhookSender {
            http: notify_context(agent),
        }
    }

    /// POST `{"event":event,"idempotency_key":key,"occurred_at":<now, RFC 3339 UTC>,"data":payload}`
    /// to `endpoint.url`. See [`WebhookSender::send_at`].
    pub fn send(
        &self,
        endpoint: &WebhookEndpoint,
        event: &str,
        payload: &serde_json::Value,
        idempotency_key: &str,
    ) -> Result<(), NotifyError> {
        self.send_at(
            endpoint,
            event,
            payload,
            idempotency_key,
            jiff::Timestamp::now(),
        )
    }

    /// Send one webhook to `endpoint.url` with `endpoint.method` (default POST). The body is
    /// `payload` itself when the endpoint has a `payload_template` (the plan's form: `payload`
    /// is the template already filled when the notification was queued), else the JSON
    /// envelope `{"event","idempotency_key","occurred_at","data"}` (`occurred_at` =
    /// `occurred_at` in RFC 3339 UTC with millisecond precision, e.g.
    /// `2026-11-20T10:15:00.123Z`). Headers: `Content-Type: application/json`,
    /// `Idempotency-Key`, `X-CS-Event`, the endpoint's own `headers`, `Authorization: Bearer
    /// <token>` when `bearer_token` is set or `Basic <base64(user:password)>` for `basic_auth`,
    /// and `X-CS-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>` when
    /// `signing_secret` is set and non-empty (see [`signature`]). The request times out after
    /// `endpoint.timeout_secs` (10 s if 0).
    ///
    /// An endpoint whose `events` list is non-empty and lacks `event` is skipped: `Ok(())`
    /// without a request (see [`subscribes`]).
    ///
    /// Errors: [`NotifyError::Transport`] on connection errors and timeouts, [`NotifyError::Status`]
    /// on non-2xx answers (transient for 408, 429 and 5xx), [`NotifyError::InvalidRequest`] for
    /// invalid URLs, methods or header values.
    pub fn send_at(
        &self,
        endpoint: &WebhookEndpoint,
        event: &str,
        payload: &serde_json::Value,
        idempotency_key: &str,
        occurred_at: jiff::Timestamp,
    ) -> Result<(), NotifyError> {
        if !subscribes(endpoint, event) {
            tracing::debug!(endpoint = %endpoint.name, event, "webhook endpoint not subscribed to event, skipped");
            return Ok(());
        }
        let what = format!("webhook `{}`", endpoint.name);
        let body = if endpoint.payload_template.is_some() {
            serde_json::to_vec(payload).map_err(|e| NotifyError::InvalidRequest {
                what: what.clone(),
                source: Box::new(e),
            })?
        } else {
            webhook_body(event, payload, idempotency_key, occurred_at)?
        };
        let method = Method::from_bytes(endpoint.method.as_bytes()).map_err(|e| {
            NotifyError::InvalidRequest {
                what: what.clone(),
                source: Box::new(e),
            }
        })?;
        let timeout = Duration::from_secs(if endpoint.timeout_secs == 0 {
            DEFAULT_WEBHOOK_TIMEOUT_SECS
        } else {
            endpoint.timeout_secs
        });
        let secrets = endpoint.secrets();
        let timeouts = Timeouts {
            connect: timeout.min(NOTIFY_TIMEOUTS.connect),
            read: timeout.min(NOTIFY_TIMEOUTS.read),
            total: Some(timeout),
        };
        let mut make = || {
            let mut request = http::request(method.clone(), &endpoint.url)
                .header("User-Agent", USER_AGENT)
                .header("Idempotency-Key", idempotency_key)
                .header("X-CS-Event", event);
            for (name, value) in &endpoint.headers {
                request = request.header(name.as_str(), value.expose().as_str());
            }
            if let Some(token) = &endpoint.bearer_token {
                if !token.expose().is_empty() {
                    request = request.header("Authorization", format!("Bearer {}", token.expose()));
                }
            }
            if let Some((user, password)) = &endpoint.basic_auth {
                let credentials = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                request = request.header("Authorization", format!("Basic {credentials}"));
            }
            if let Some(secret) = &endpoint.signing_secret {
                if !secret.expose().is_empty() {
                    request = request.header(
                        "X-CS-Signature",
                        signature(secret.expose().as_bytes(), &body),
                    );
                }
            }
            http::bytes_body(request, "application/json", body.clone())
        };
        let mut response = send_once(
            &self.http,
            &method,
            &endpoint.url,
            timeouts,
            &mut make,
            &what,
        )?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let detail = read_body(&mut response);
        Err(status_error(&what, status, &detail, &secrets))
    }
}

/// Whether `endpoint` wants `event`: its `events` list is empty (all events) or contains `event`.
pub fn subscribes(endpoint: &WebhookEndpoint, event: &str) -> bool {
    endpoint.events.is_empty() || endpoint.events.iter().any(|e| e == event)
}

/// The exact webhook body bytes:
/// `{"event":..,"idempotency_key":..,"occurred_at":"<RFC 3339 UTC, ms>","data":payload}`.
pub fn webhook_body(
    event: &str,
    payload: &serde_json::Value,
    idempotency_key: &str,
    occurred_at: jiff::Timestamp,
) -> Result<Vec<u8>, NotifyError> {
    let occurred_at = occurred_at
        .round(jiff::Unit::Millisecond)
        .unwrap_or(occurred_at);
    let body = serde_json::json!({
        "event": event,
        "idempotency_key": idempotency_key,
        "occurred_at": format!("{occurred_at:.3}"),
        "data": payload,
    });
    serde_json::to_vec(&body).map_err(|e| NotifyError::InvalidRequest {
        what: format!("webhook event `{event}`"),
        source: Box::new(e),
    })
}

/// `X-CS-Signature` header value: `sha256=` + lower-case hex HMAC-SHA256 (RFC 2104) of `body`
/// keyed with `secret`. Receivers recompute it over the raw request body and compare in constant time.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so new_from_slice cannot fail; keep a total fallback anyway.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => "sha256=".to_string(),
    }
}

/// Timeouts of the notifier's requests: connect 10 s, each read 30 s, 40 s in all (a webhook
/// endpoint's `timeout_secs` bounds its own requests further).
const NOTIFY_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    read: Duration::from_secs(30),
    total: Some(Duration::from_secs(40)),
};

/// The notifier's transport: the caller's agent, no rate limit, no retry inside a pass (the outbox
/// retries later, with the idempotency key).
fn notify_context(agent: ureq::Agent) -> HttpContext {
    HttpContext {
        agent,
        limit: RateLimit::unlimited(),
        policy: RetryPolicy::new(0),
        outage: http::Outage::default(),
    }
}

/// Sends one notification request through [`http::execute`] (no retry, redirects followed without
/// `Authorization`, the given timeouts); any status is returned.
fn send_once(
    context: &HttpContext,
    method: &Method,
    url: &str,
    timeouts: Timeouts,
    make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, ureq::http::Error>,
    what: &str,
) -> Result<Response<Body>, NotifyError> {
    let label = http::request_label(method, url);
    let options = CallOptions {
        label: &label,
        retry: false,
        timeouts,
        redirects: Redirects::FollowWithoutAuth,
        retry_reply: None,
    };
    http::execute(context, &options, make).map_err(|error| match error {
        SendError::Build(e) => NotifyError::InvalidRequest {
            what: what.to_string(),
            source: Box::new(e),
        },
        SendError::Transport { error, .. } => NotifyError::Transport {
            what: what.to_string(),
            source: error,
        },
    })
}

/// A reply's body as text, at most [`http::MAX_JSON_BODY_BYTES`] (an events page of 100 items is
/// far below); empty when unreadable.
fn read_body(response: &mut Response<Body>) -> String {
    response
        .body_mut()
        .with_config()
        .limit(http::MAX_JSON_BODY_BYTES)
        .read_to_string()
        .unwrap_or_default()
}

/// Error for an HTTP status that is not 2xx: `detail` redacted of `secrets`
/// ([`redact_credentials`]), then shortened ([`snippet`]; in that order, so a cut can never leave
/// part of a secret behind).
fn status_error(what: &str, status: u16, detail: &str, secrets: &[&str]) -> NotifyError {
    NotifyError::Status {
        what: what.to_string(),
        status,
        detail: snippet(&redact_credentials(detail, secrets)),
    }
}

/// First [`BODY_SNIPPET_CHARS`] characters of a response body, whitespace folded.
fn snippet(s: &str) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() > BODY_SNIPPET_CHARS {
        let cut: String = folded.chars().take(BODY_SNIPPET_CHARS).collect();
        format!("{cut}...")
    } else {
        folded
    }
}

/// Text of `error` for `outbox.last_error` and the delivery log: the one place a notification
/// error becomes stored text. Every credential form is redacted ([`redact_credentials`] with
/// `secrets`, the literal secret values and their encodings, e.g. [`Mailer::secret_forms`]).
pub fn outbox_error_text(error: &NotifyError, secrets: &[&str]) -> String {
    redact_credentials(&error.to_string(), secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmailTemplate;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    fn templates() -> EmailTemplates {
        let mut t = BTreeMap::new();
        t.insert(
            "a1_to_a2_complete".to_string(),
            EmailTemplate {
                subject: "Campaign {{ campaign.number }}\n ready".to_string(),
                subject_format: SubjectFormat::Jinja,
                text: "{{ campaign.name }}: {{ masters | length }} masters{% for m in masters %}\n- {{ m }}{% endfor %}".to_string(),
                html: Some("<p>{{ campaign.name }}</p>".to_string()),
            },
        );
        t.insert(
            "strict".to_string(),
            EmailTemplate {
                subject: "{{ missing_var }}".to_string(),
                subject_format: SubjectFormat::Jinja,
                text: "x".to_string(),
                html: None,
            },
        );
        EmailTemplates { templates: t }
    }

    #[test]
    fn renders_with_escaping_only_in_html() {
        let ctx = serde_json::json!({
            "campaign": {"number": 42, "name": "Tom & Jerry <b>"},
            "masters": ["a.mp4", "b.png"],
        });
        let r = render_email(&templates(), "a1_to_a2_complete", &ctx).unwrap();
        assert_eq!(r.subject, "Campaign 42 ready");
        assert_eq!(r.text, "Tom & Jerry <b>: 2 masters\n- a.mp4\n- b.png");
        assert_eq!(r.html.as_deref(), Some("<p>Tom &amp; Jerry &lt;b&gt;</p>"));
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let err = render_email(&templates(), "strict", &serde_json::json!({})).unwrap_err();
        match &err {
            NotifyError::Template { template, part, .. } => {
                assert_eq!(template, "strict");
                assert_eq!(*part, "subject");
                let text = err.to_string();
                assert!(
                    text.contains("strict") && text.contains("subject"),
                    "{text}"
                );
                assert!(
                    std::error::Error::source(&err).is_some(),
                    "minijinja's error is kept as the source"
                );
            }
            other => panic!("expected Template, got {other:?}"),
        }
        // a missing attribute of a present object too
        let err = render_email(
            &templates(),
            "a1_to_a2_complete",
            &serde_json::json!({"campaign": {"number": 1}, "masters": []}),
        )
        .unwrap_err();
        assert!(matches!(err, NotifyError::Template { .. }), "{err:?}");
    }

    #[test]
    fn unknown_template_is_an_error() {
        let err = render_email(&templates(), "nope", &serde_json::json!({})).unwrap_err();
        assert!(
            matches!(&err, NotifyError::UnknownTemplate { known, .. } if known.contains("a1_to_a2_complete")),
            "{err:?}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn hmac_sha256_known_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_shape() {
        let ts: jiff::Timestamp = "2026-11-20T10:15:00.123456Z".parse().unwrap();
        let body = webhook_body("campaign.a2", &serde_json::json!({"x": 1}), "k1", ts).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event":"campaign.a2","idempotency_key":"k1",
                "occurred_at":"2026-11-20T10:15:00.123Z","data":{"x":1}})
        );
    }

    /// A captured HTTP request.
    struct Captured {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Captured {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Serve one request on a loopback port with `status` + `body`; returns the base URL and a
    /// receiver for the captured request.
    fn one_shot_server(status: u16, body: &'static str) -> (String, mpsc::Receiver<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body_in = vec![0; len];
            reader.read_exact(&mut body_in).unwrap();
            let mut out = stream;
            write!(
                out,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            out.flush().unwrap();
            tx.send(Captured {
                request_line: request_line.trim_end().to_string(),
                headers,
                body: body_in,
            })
            .unwrap();
        });
        (format!("http://{addr}"), rx)
    }

    fn email_cfg(base: &str) -> EmailConfig {
        EmailConfig {
            enabled: true,
            mailgun_base_url: format!("{base}/"),
            domain: "mg.example.com".to_string(),
            api_key: Secret::new("key-supersecret".to_string()),
            from: "CS <cs@mg.example.com>".to_string(),
            success_recipients: vec![],
            error_recipients: vec![],
            confirm_with_events: true,
            events_settle_secs: 0,
            critical_recipients: vec![],
            critical_after_minutes: 30,
            templates_path: None,
        }
    }

    fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
        // minimal application/x-www-form-urlencoded decoder for the test
        let s = String::from_utf8(body.to_vec()).unwrap();
        s.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let dec = |x: &str| {
                    percent_encoding::percent_decode_str(&x.replace('+', " "))
                        .decode_utf8()
                        .unwrap()
                        .into_owned()
                };
                (dec(k), dec(v))
            })
            .collect()
    }

    fn email() -> RenderedEmail {
        RenderedEmail {
            subject: "Hello & bye".to_string(),
            text: "line1\nline2".to_string(),
            html: Some("<p>hi</p>".to_string()),
        }
    }

    #[test]
    fn mailgun_send_posts_form_with_basic_auth() {
        let (base, rx) = one_shot_server(
            200,
            r#"{"id":"<20261120.1@mg.example.com>","message":"Queued. Thank you."}"#,
        );
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        let id = mailer
            .send(
                &["a@x.com".to_string(), "b@x.com".to_string()],
                &email(),
                "outbox-7",
            )
            .unwrap();
        assert_eq!(id, "<20261120.1@mg.example.com>");
        let req = rx.recv().unwrap();
        assert_eq!(
            req.request_line,
            "POST /v3/mg.example.com/messages HTTP/1.1"
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("api:key-supersecret")
        );
        assert_eq!(req.header("authorization"), Some(expected.as_str()));
        assert!(req
            .header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded"));
        let pairs = form_pairs(&req.body);
        let get = |k: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("from"), vec!["CS <cs@mg.example.com>"]);
        assert_eq!(get("to"), vec!["a@x.com", "b@x.com"]);
        assert_eq!(get("subject"), vec!["Hello & bye"]);
        assert_eq!(get("text"), vec!["line1\nline2"]);
        assert_eq!(get("html"), vec!["<p>hi</p>"]);
        assert_eq!(get("h:X-Idempotency-Key"), vec!["outbox-7"]);
        assert_eq!(
            get("h:Message-Id"),
            vec![message_id_for("outbox-7", "mg.example.com").as_str()]
        );
    }

    #[test]
    fn message_id_is_stable_per_key_and_well_formed() {
        let id = message_id_for("email:upload_failed:box-file-1:v1", "mg.example.com");
        // SHA-256("email:upload_failed:box-file-1:v1"), first 32 hex digits.
        use sha2::Digest as _;
        let digest = hex::encode(Sha256::digest(
            b"email:upload_failed:box-file-1:v1".as_slice(),
        ));
        assert_eq!(id, format!("<{}@mg.example.com>", &digest[..32]));
        assert_eq!(
            id,
            message_id_for("email:upload_failed:box-file-1:v1", " mg.example.com ")
        );
        assert_ne!(
            id,
            message_id_for("email:upload_failed:box-file-1:v2", "mg.example.com")
        );
        // RFC 5322 msg-id: "<" id-left "@" id-right ">", no spaces.
        assert!(id.starts_with('<') && id.ends_with('>') && !id.contains(' '));
        assert_eq!(id.matches('@').count(), 1);
        // A known vector, so a change of the derivation (which would re-send every pending
        // email under a new id) is a deliberate one.
        assert_eq!(
            message_id_for("k", "mg.example.com"),
            "<8254c329a92850f6d539dd376f4816ee@mg.example.com>"
        );
        assert_eq!(bare_message_id(&id).len(), 32 + 1 + "mg.example.com".len());
    }

    #[test]
    fn redaction_removes_every_credential_form() {
        let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
        let mailer = Mailer::new(
            &EmailConfig {
                api_key: Secret::new(key.to_string()),
                ..email_cfg("http://127.0.0.1:9")
            },
            ureq::Agent::new_with_defaults(),
        );
        let forms = mailer.secret_forms();
        let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
        let echoed = format!(
            "upstream said 500; request was POST /v3/mg.example.com/messages\r\n\
             Authorization: Basic {basic}\r\nUser-Agent: content-scaling\r\n\
             {{\"headers\":{{\"authorization\":\"Basic {basic}\",\"x-api-key\":\"{key}\"}}}} \
             auth=Basic {basic} bare {basic} decoded api:{key} \
             bearer: Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig \
             url https://api:{key}@api.mailgun.net/v3/x?access_token=tok123456&limit=1&api_key={key} \
             json {{\"password\": \"hunter22\", \"client_secret\":\"cs-1234\"}} \
             new-style 0123456789abcdef0123456789abcdef-01234567-89abcdef"
        );
        let out = redact_credentials(&echoed, &forms);
        for leaked in [
            key,
            basic.as_str(),
            "3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "eyJhbGciOiJSUzI1NiJ9",
            "tok123456",
            "hunter22",
            "cs-1234",
            "0123456789abcdef0123456789abcdef-01234567-89abcdef",
        ] {
            assert!(!out.contains(leaked), "{leaked} leaked in: {out}");
        }
        // What is not a credential survives (the operator still learns what happened).
        assert!(out.contains("upstream said 500"), "{out}");
        assert!(out.contains("User-Agent: content-scaling"), "{out}");
        assert!(out.contains("limit=1"), "{out}");
        assert!(out.contains("api.mailgun.net/v3/x"), "{out}");
        // Without the configured secrets, the generic patterns still catch the echoed forms.
        let out = redact_credentials(&echoed, &[]);
        for leaked in [key, "tok123456", "hunter22", "eyJhbGciOiJSUzI1NiJ9"] {
            assert!(
                !out.contains(leaked),
                "{leaked} leaked without known secrets: {out}"
            );
        }
        // A Message-Id (32 hex digits) is not mistaken for a key.
        let id = message_id_for("k", "mg.example.com");
        assert_eq!(redact_credentials(&id, &forms), id);
        // Short "secrets" are not used (they would shred ordinary text).
        assert_eq!(redact_credentials("a b c", &["a"]), "a b c");
    }

    #[test]
    fn outbox_error_text_redacts_a_mailgun_error_echoing_headers() {
        let key = "key-supersecret";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"));
        let body: &'static str = Box::leak(
            format!(
                r#"{{"message":"internal error; request headers: Authorization: Basic {basic}; key {key}"}}"#
            )
            .into_boxed_str(),
        );
        let (base, _rx) = one_shot_server(500, body);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        let err = mailer
            .send(&["a@x.com".to_string()], &email(), "k")
            .unwrap_err();
        assert!(err.outcome_unknown(), "500 may have been accepted: {err:?}");
        let forms = mailer.secret_forms();
        let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
        let text = outbox_error_text(&err, &forms);
        assert!(text.contains("500"), "{text}");
        for leaked in [key, "supersecret", basic.as_str()] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
            assert!(!err.to_string().contains(leaked), "{leaked} in {err}");
        }
    }

    #[test]
    fn error_classes_say_whether_the_outcome_is_unknown() {
        let status = |code| status_error("Mailgun", code, "", &[]);
        assert!(status(500).outcome_unknown());
        assert!(status(502).outcome_unknown());
        assert!(!status(429).outcome_unknown());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(status(400).to_string().starts_with("notification rejected"));
        let transport = |source| NotifyError::Transport {
            what: "Mailgun".to_string(),
            source,
        };
        assert!(transport(ureq::Error::ConnectionFailed).is_transient());
        assert!(!transport(ureq::Error::ConnectionFailed).outcome_unknown());
        assert!(transport(ureq::Error::Timeout(ureq::Timeout::RecvResponse)).outcome_unknown());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(transport(ureq::Error::Io(reset)).outcome_unknown());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!transport(ureq::Error::Io(refused)).outcome_unknown());
        assert!(!transport(ureq::Error::BadUri("x".into())).is_transient());
        let cut = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = transport(ureq::Error::Io(cut));
        assert!(
            std::error::Error::source(&error).is_some(),
            "the ureq error is kept as the source"
        );
    }

    #[test]
    fn a_secret_cut_by_the_excerpt_is_still_redacted() {
        let secret = "key-0123456789abcdef";
        // The secret straddles the excerpt's end: redacting after cutting would leave its prefix.
        let detail = format!("{}{secret}", "x".repeat(BODY_SNIPPET_CHARS - 6));
        let error = status_error("Mailgun", 400, &detail, &[secret]);
        assert!(!error.to_string().contains("key-01"), "{error}");
    }

    #[test]
    fn events_lookup_asks_for_accepted_by_bare_id_and_matches_exactly() {
        let ours = message_id_for("outbox-9", "mg.example.com");
        let bare = bare_message_id(&ours).to_string();
        let reply: &'static str = Box::leak(
            serde_json::json!({
                "items": [
                    {"event": "accepted", "message": {"headers": {"message-id": "other@mg.example.com"}}},
                    {"event": "delivered", "message": {"headers": {"message-id": bare}}},
                ],
                "paging": {}
            })
            .to_string()
            .into_boxed_str(),
        );
        let (base, rx) = one_shot_server(200, reply);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        // A loose filter match (another id) or another event type does not count.
        assert!(!mailer.accepted(&ours, 1_800_000_000).unwrap());
        let req = rx.recv().unwrap();
        assert!(
            req.request_line
                .starts_with("GET /v3/mg.example.com/events?"),
            "{}",
            req.request_line
        );
        let query = req
            .request_line
            .split(['?', ' '])
            .nth(2)
            .unwrap()
            .to_string();
        let pairs = form_pairs(query.as_bytes());
        let get = |k: &str| pairs.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
        assert_eq!(get("event").as_deref(), Some("accepted"));
        assert_eq!(get("message-id").as_deref(), Some(bare.as_str()));
        assert_eq!(get("begin").as_deref(), Some("1799999700"));
        assert_eq!(get("ascending").as_deref(), Some("yes"));
        assert_eq!(get("limit").as_deref(), Some("100"));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("api:key-supersecret")
        );
        assert_eq!(req.header("authorization"), Some(expected.as_str()));

        let reply: &'static str = Box::leak(
            serde_json::json!({"items": [{"event": "accepted", "message": {"headers": {"message-id": ours}}}], "paging": {}})
                .to_string()
                .into_boxed_str(),
        );
        let (base, _rx) = one_shot_server(200, reply);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        assert!(mailer.accepted(&ours, 0).unwrap(), "angle brackets ignored");

        let (base, _rx) = one_shot_server(503, r#"{"message":"try later"}"#);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        assert!(mailer.accepted(&ours, 0).unwrap_err().is_transient());
    }

    #[test]
    fn mailgun_errors_are_classified_and_never_leak_the_key() {
        let (base, _rx) = one_shot_server(401, r#"{"message":"Invalid key key-supersecret"}"#);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        let err = mailer
            .send(&["a@x.com".to_string()], &email(), "k")
            .unwrap_err();
        assert!(
            matches!(err, NotifyError::Status { status: 401, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(err.to_string().contains("401"));
        assert!(!err.to_string().contains("supersecret"), "{err}");
        assert!(!format!("{mailer:?}").contains("supersecret"));

        let (base, _rx) = one_shot_server(429, r#"{"message":"rate limited"}"#);
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        let err = mailer
            .send(&["a@x.com".to_string()], &email(), "k")
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");

        let (base, _rx) = one_shot_server(503, "");
        let mailer = Mailer::new(&email_cfg(&base), ureq::Agent::new_with_defaults());
        let err = mailer
            .send(&["a@x.com".to_string()], &email(), "k")
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");

        // nothing listens on this port any more: connection refused -> transient
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mailer = Mailer::new(
            &email_cfg(&format!("http://127.0.0.1:{port}")),
            ureq::Agent::new_with_defaults(),
        );
        let err = mailer
            .send(&["a@x.com".to_string()], &email(), "k")
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(!err.to_string().contains("supersecret"), "{err}");

        let err = mailer.send(&[], &email(), "k").unwrap_err();
        assert!(matches!(err, NotifyError::Unsendable(_)), "{err:?}");
        assert!(!err.is_transient());
    }

    /// Sends an empty `campaign.a2` webhook to `url` with key `k`.
    fn send_to(sender: &WebhookSender, url: &str) -> Result<(), NotifyError> {
        sender.send(
            &endpoint(url.to_string()),
            "campaign.a2",
            &serde_json::json!({}),
            "k",
        )
    }

    fn endpoint(url: String) -> WebhookEndpoint {
        WebhookEndpoint {
            name: "campaigns".to_string(),
            url,
            events: vec!["campaign.a2".to_string(), "campaign.a3".to_string()],
            bearer_token: Some(Secret::new("tok-123".to_string())),
            signing_secret: Some(Secret::new("s3cret".to_string())),
            timeout_secs: 5,
            method: "POST".to_string(),
            headers: Vec::new(),
            basic_auth: None,
            payload_template: None,
        }
    }

    #[test]
    fn webhook_send_signs_the_exact_body() {
        let (base, rx) = one_shot_server(200, "{}");
        let ep = endpoint(format!("{base}/hooks/campaigns"));
        let ts: jiff::Timestamp = "2026-11-20T10:15:00Z".parse().unwrap();
        let payload = serde_json::json!({"campaign": {"number": "C-1"}});
        WebhookSender::new(ureq::Agent::new_with_defaults())
            .send_at(&ep, "campaign.a2", &payload, "idem-1", ts)
            .unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.request_line, "POST /hooks/campaigns HTTP/1.1");
        assert_eq!(req.header("authorization"), Some("Bearer tok-123"));
        assert_eq!(req.header("idempotency-key"), Some("idem-1"));
        assert_eq!(req.header("x-cs-event"), Some("campaign.a2"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        let expected_sig = signature(b"s3cret", &req.body);
        assert_eq!(req.header("x-cs-signature"), Some(expected_sig.as_str()));
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["event"], "campaign.a2");
        assert_eq!(v["idempotency_key"], "idem-1");
        assert_eq!(v["occurred_at"], "2026-11-20T10:15:00.000Z");
        assert_eq!(v["data"], payload);
    }

    #[test]
    fn a_plan_webhook_sends_its_filled_template_as_the_body() {
        let (base, rx) = one_shot_server(200, "{}");
        let mut ep = endpoint(format!("{base}/api/campaign-status"));
        ep.bearer_token = None;
        ep.method = "PUT".to_string();
        ep.headers = vec![("X-Tenant".to_string(), Secret::new("ferrero".to_string()))];
        ep.basic_auth = Some(("user".to_string(), Secret::new("p4ss".to_string())));
        ep.payload_template = Some(serde_json::json!({"campaign_id": "{campaign_id}"}));
        let body = serde_json::json!({"campaign_id": "f1", "asset_count": 3});
        WebhookSender::new(ureq::Agent::new_with_defaults())
            .send(&ep, "campaign.a2", &body, "idem-2")
            .unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.request_line, "PUT /api/campaign-status HTTP/1.1");
        let received: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            received, body,
            "the body is the payload itself, no envelope"
        );
        assert_eq!(req.header("x-tenant"), Some("ferrero"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:p4ss");
        assert_eq!(
            req.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(req.header("idempotency-key"), Some("idem-2"));
        let expected_sig = signature(b"s3cret", &req.body);
        assert_eq!(req.header("x-cs-signature"), Some(expected_sig.as_str()));
    }

    #[test]
    fn a_str_format_subject_and_an_html_only_template() {
        let mut templates = BTreeMap::new();
        templates.insert(
            "plan".to_string(),
            EmailTemplate {
                subject: "Campaign {campaign_name} ({asset_count})".to_string(),
                subject_format: SubjectFormat::StrFormat,
                text: String::new(),
                html: Some("<p>{{ campaign_name }}</p>".to_string()),
            },
        );
        let templates = EmailTemplates { templates };
        let email = render_email(
            &templates,
            "plan",
            &serde_json::json!({"campaign_name": "Tom & Jerry", "asset_count": 3}),
        )
        .unwrap();
        assert_eq!(email.subject, "Campaign Tom & Jerry (3)");
        assert!(email.text.is_empty());
        assert_eq!(email.html.as_deref(), Some("<p>Tom &amp; Jerry</p>"));
        // Escaped as Jinja2 does: a URL stays a URL, markup and quotes do not pass.
        let mut link = BTreeMap::new();
        link.insert(
            "link".to_string(),
            EmailTemplate {
                subject: "s".to_string(),
                subject_format: SubjectFormat::StrFormat,
                text: String::new(),
                html: Some("<a href=\"{{ url }}\">{{ name }}</a>".to_string()),
            },
        );
        let email = render_email(
            &EmailTemplates { templates: link },
            "link",
            &serde_json::json!({"url": "https://app.box.com/folder/12", "name": "<b>\"Tom's\"</b>"}),
        )
        .unwrap();
        assert_eq!(
            email.html.as_deref(),
            Some("<a href=\"https://app.box.com/folder/12\">&lt;b&gt;&#34;Tom&#39;s&#34;&lt;/b&gt;</a>")
        );
        let error =
            render_email(&templates, "plan", &serde_json::json!({"asset_count": 3})).unwrap_err();
        assert!(
            matches!(&error, NotifyError::Format { template, .. } if template == "plan"),
            "{error:?}"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn webhook_without_secrets_and_error_classes() {
        let (base, rx) = one_shot_server(204, "");
        let mut ep = endpoint(format!("{base}/h"));
        ep.bearer_token = None;
        ep.signing_secret = Some(Secret::new(String::new()));
        ep.events = vec![];
        let sender = WebhookSender::new(ureq::Agent::new_with_defaults());
        sender
            .send(&ep, "campaign.a3", &serde_json::json!(null), "k")
            .unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.header("authorization"), None);
        assert_eq!(req.header("x-cs-signature"), None);

        let (base, _rx) = one_shot_server(400, r#"{"error":"bad tok-123"}"#);
        let err = send_to(&sender, &format!("{base}/h")).unwrap_err();
        assert!(
            matches!(err, NotifyError::Status { status: 400, .. }),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(!err.to_string().contains("tok-123"), "{err}");

        let (base, _rx) = one_shot_server(502, "bad gateway");
        let err = send_to(&sender, &format!("{base}/h")).unwrap_err();
        assert!(err.is_transient());

        let err = send_to(&sender, "not a url").unwrap_err();
        assert!(
            matches!(
                err,
                NotifyError::InvalidRequest { .. } | NotifyError::Transport { .. }
            ) && !err.is_transient(),
            "{err:?}"
        );
    }

    #[test]
    fn unsubscribed_event_is_skipped() {
        // Port 9 on loopback: nothing is sent, so no error even though nothing listens.
        let ep = endpoint("http://127.0.0.1:9/h".to_string());
        assert!(!subscribes(&ep, "campaign.a1"));
        WebhookSender::new(ureq::Agent::new_with_defaults())
            .send(&ep, "campaign.a1", &serde_json::json!({}), "k")
            .unwrap();
    }

    #[test]
    fn webhook_timeout_is_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            // accept and never answer, until the client gives up
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
        let mut ep = endpoint(format!("http://{addr}/h"));
        ep.timeout_secs = 1;
        let err = WebhookSender::new(ureq::Agent::new_with_defaults())
            .send(&ep, "campaign.a2", &serde_json::json!({}), "k")
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        drop(handle);
    }
}
