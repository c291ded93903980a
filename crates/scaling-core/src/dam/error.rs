//! Errors of the OTMM client and the decoding of OTMM's error replies (`exception_body`).

use std::fmt;
use std::io;

use serde_json::Value;
use ureq::http::Response;
use ureq::Body;

use super::model::value_text;
use crate::http::{self as transport, read_error_text};

/// Errors of the OTMM client. Messages never contain the password, client secret, session token or cookies.
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
    /// Connection, timeout or protocol error (after retries for idempotent calls).
    #[error("OTMM transport error: {0}")]
    Transport(String),
    /// Local file error (import source, download destination).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// 2xx reply we cannot understand, or a request that cannot be built (invalid base URL).
    #[error("unexpected OTMM response: {0}")]
    Decode(String),
}

impl DamError {
    /// Worth retrying later: HTTP 429 or 5xx (OTMM search failures are 500s), or a transport error.
    pub fn is_transient(&self) -> bool {
        match self {
            DamError::Api { status, .. } => *status == 429 || *status >= 500,
            DamError::Transport(_) => true,
            _ => false,
        }
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

pub(super) fn invalid_request(label: &str, error: impl fmt::Display) -> DamError {
    DamError::Decode(format!("cannot build request {label}: {error}"))
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
        assert!(DamError::Transport("reset".into()).is_transient());
        assert!(!DamError::Auth("no".into()).is_transient());
    }
}
