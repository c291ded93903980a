//! Errors of the OTMM client and the decoding of OTMM's error replies (`exception_body`).

use std::io;

use serde_json::Value;
use ureq::http::Response;
use ureq::Body;

use super::model::value_text;
use crate::http::{self as transport, read_error_text};

/// Errors of the OTMM client. Messages never contain the password, client secret, session token or
/// cookies. Variants that wrap a lower-level error keep it as their [`std::error::Error::source`]; their
/// message repeats its text so that one line says what failed.
#[derive(Debug, thiserror::Error)]
pub enum DamError {
    /// OTMM answered with an error status; `message` from `exception_body.message` (or a body excerpt),
    /// `endpoint` is `"METHOD /otmmapi/v6/..."` without the query. 404 also means "no permission".
    #[error("OTMM API {status} on {endpoint}: {message}")]
    Api {
        /// HTTP status (or `exception_body.http_response_code`).
        status: u16,
        /// Error message.
        message: String,
        /// `"GET /otmmapi/v6/folders/abc"`.
        endpoint: String,
    },
    /// Login refused (bad credentials, OAuth2 client refused), or still 401 after a new login.
    #[error("OTMM authentication failed: {0}")]
    Auth(String),
    /// Connection, timeout or protocol error, after the HTTP core's retries for idempotent calls
    /// (`attempts` requests were sent or tried).
    #[error("OTMM transport error on {request} (after {attempts} attempt(s)): {source}")]
    Transport {
        /// `"GET /otmmapi/v6/folders/abc"`.
        request: String,
        /// Attempts made.
        attempts: u32,
        /// The last ureq error.
        #[source]
        source: ureq::Error,
    },
    /// A reply body broke off mid-transfer (connection reset, idle timeout) after `bytes` bytes.
    #[error(
        "OTMM transport error on {request}: the body was interrupted after {bytes} bytes: {source}"
    )]
    Interrupted {
        /// `"GET /otmmapi/v6/assets/abc/contents"`.
        request: String,
        /// Bytes received before the interruption.
        bytes: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A request that cannot be built (invalid base URL or header), or a reply body that cannot be
    /// read for a reason no retry fixes (e.g. larger than [`crate::http::MAX_JSON_BODY_BYTES`]).
    #[error("OTMM request {request} failed: {source}")]
    Request {
        /// `"GET /otmmapi/v6/folders/abc"`.
        request: String,
        /// The ureq error.
        #[source]
        source: ureq::Error,
    },
    /// A 2xx reply whose body is not the JSON expected.
    #[error("unexpected OTMM response to {request}: {source}")]
    Json {
        /// `"GET /otmmapi/v6/folders/abc"`.
        request: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A 2xx JSON reply without a field we need (e.g. no `folder_resource.folder`).
    #[error("unexpected OTMM response: {0}")]
    Decode(String),
    /// The server does not behave as the `dam.api` settings say (e.g. it refuses to lock a folder
    /// with `lock_folders: always`, has no jobs endpoint with `import_completion: jobs`): no retry
    /// fixes it; `fix` names the setting to change.
    #[error("{message}")]
    Dialect {
        /// What the server did.
        message: String,
        /// The setting to change, e.g. `set dam.api.lock_folders: when_allowed`.
        fix: String,
    },
    /// Local file error (import source, download destination); `context` says which file and what.
    #[error("{context}: {source}")]
    Io {
        /// `"cannot write /tmp/x.mp4"`.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl DamError {
    /// Worth retrying later: HTTP 429 or 5xx (OTMM search failures are 500s), or the DAM could not be
    /// reached ([`DamError::is_unreachable`]).
    pub fn is_transient(&self) -> bool {
        match self {
            DamError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => self.is_unreachable(),
        }
    }

    /// The DAM could not be reached (connection, timeout, a body cut off): the passes stop and exit
    /// 75 instead of counting a failure against the item.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DamError::Transport { .. } | DamError::Interrupted { .. }
        )
    }

    /// A pass cannot go on: the DAM is unreachable ([`DamError::is_unreachable`], exit 75) or
    /// does not behave as the `dam.api` settings say ([`DamError::Dialect`], exit 2). Per-item
    /// handling must hand these up rather than count them against one file or campaign.
    pub fn stops_pass(&self) -> bool {
        self.is_unreachable() || matches!(self, DamError::Dialect { .. })
    }

    /// The HTTP status of an [`DamError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DamError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Decodes an OTMM error reply `{"exception_body":{"http_response_code","error_code","message","debug_message"}}`.
pub(super) fn parse_failure(status: u16, endpoint: &str, text: &str) -> DamError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let exception = body.get("exception_body");
    let message = exception
        .and_then(|exception| exception.get("message"))
        .and_then(value_text)
        .filter(|message| !message.is_empty())
        .or_else(|| Some(transport::excerpt(text)).filter(|excerpt| !excerpt.is_empty()))
        .unwrap_or_else(|| {
            ureq::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("HTTP error")
                .to_string()
        });
    DamError::Api {
        status,
        message,
        endpoint: endpoint.to_string(),
    }
}

pub(super) fn failure(endpoint: &str, mut response: Response<Body>) -> DamError {
    let status = response.status().as_u16();
    let text = read_error_text(&mut response);
    parse_failure(status, endpoint, &text)
}

/// A request `label` that could not be built.
pub(super) fn invalid_request(label: &str, error: ureq::http::Error) -> DamError {
    DamError::Request {
        request: label.to_string(),
        source: ureq::Error::Http(error),
    }
}

/// A ureq error of `label` after `attempts` attempts: [`DamError::Transport`] when a network failure,
/// else [`DamError::Request`].
pub(super) fn send_failure(label: &str, error: ureq::Error, attempts: u32) -> DamError {
    if transport::is_retryable_transport(&error) {
        DamError::Transport {
            request: label.to_string(),
            attempts,
            source: error,
        }
    } else {
        DamError::Request {
            request: label.to_string(),
            source: error,
        }
    }
}

/// The [`DamError`] of a request `label` that got no reply: the factory's own error, or
/// [`send_failure`] of the transport error.
pub(super) fn send_error(label: &str, error: transport::SendError<DamError>) -> DamError {
    match error {
        transport::SendError::Build(error) => error,
        transport::SendError::Transport { error, attempts } => send_failure(label, error, attempts),
    }
}

/// Reads a 2xx reply's body (at most [`crate::http::MAX_JSON_BODY_BYTES`]) as JSON.
pub(super) fn read_json(label: &str, response: &mut Response<Body>) -> Result<Value, DamError> {
    transport::read_json(response).map_err(|error| match error {
        transport::ReadJsonError::Body(error) => send_failure(label, error, 1),
        transport::ReadJsonError::Json(source) => DamError::Json {
            request: label.to_string(),
            source,
        },
    })
}

pub(super) fn login_failure(label: &str, who: &str, response: Response<Body>) -> DamError {
    let status = response.status().as_u16();
    let error = failure(label, response);
    if status == 429 || status >= 500 {
        return error;
    }
    DamError::Auth(format!("login {who} refused: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_body_becomes_api_error() {
        let body = r#"{"exception_body":{"http_response_code":404,"error_code":"ASSET_NOT_FOUND",
            "message":"The asset could not be found.","debug_message":"com.artesia..."}}"#;
        let error = parse_failure(404, "GET /otmmapi/v6/assets/abc", body);
        assert_eq!(
            error.to_string(),
            "OTMM API 404 on GET /otmmapi/v6/assets/abc: The asset could not be found."
        );
        assert!(!error.is_transient());
        let error = parse_failure(500, "GET /otmmapi/v6/search/text", "");
        assert_eq!(
            error.to_string(),
            "OTMM API 500 on GET /otmmapi/v6/search/text: Internal Server Error"
        );
        assert!(error.is_transient());
        let reset = DamError::Transport {
            request: "GET /otmmapi/v6/folders/f".into(),
            attempts: 3,
            source: ureq::Error::ConnectionFailed,
        };
        assert!(reset.is_transient() && reset.is_unreachable());
        assert!(std::error::Error::source(&reset).is_some());
        assert!(!error.is_unreachable());
        assert!(!DamError::Auth("no".into()).is_transient());
    }
}
