//! OTMM login and the credentials every call carries: a session (`otmmauthtoken` + cookies,
//! `X-Requested-By: <session id>`) or an OAuth2 bearer token (`X-Requested-By: <client id>`).
//! Source: api-notes/otmm.md "Auth".

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{header, Method, Response};
use ureq::Body;

use super::error::login_failure;
use super::model::{value_text, value_u64};
use super::{invalid_request, DamClient, DamError};
use crate::config::DamAuth;
use crate::http::{self as transport, read_json, request, request_label, CallOptions, Redirects};
use crate::secret::Secret;

/// Value of `X-Requested-By` on the login request itself (no session id exists yet).
const LOGIN_REQUESTED_BY: &str = "content-scaling";

/// `name=value` pairs of `Set-Cookie` headers, joined for a `Cookie` header (a later cookie of the same
/// name replaces an earlier one).
fn cookie_header<'a>(set_cookies: impl Iterator<Item = &'a str>) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for set_cookie in set_cookies {
        let Some(pair) = set_cookie.split(';').next() else {
            continue;
        };
        let Some((name, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        pairs.retain(|(existing, _)| existing != name);
        pairs.push((name.to_string(), value.trim().to_string()));
    }
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What authenticates our calls.
#[derive(Clone)]
pub(super) enum Credentials {
    /// Session login: `otmmauthtoken` + cookies; `X-Requested-By: <session id>`.
    Session {
        session_id: String,
        token: Secret<String>,
        cookies: Secret<String>,
    },
    /// OAuth2: `Authorization: Bearer`; `X-Requested-By: <client id>`.
    Bearer {
        token: Secret<String>,
        requested_by: String,
        refresh_after: Option<Instant>,
    },
}

impl Credentials {
    pub(super) fn apply(
        &self,
        mut builder: ureq::http::request::Builder,
        mutating: bool,
    ) -> ureq::http::request::Builder {
        match self {
            Credentials::Session {
                session_id,
                token,
                cookies,
            } => {
                if !token.expose().is_empty() {
                    builder = builder.header("otmmauthtoken", token.expose().as_str());
                }
                if !cookies.expose().is_empty() {
                    builder = builder.header(header::COOKIE, cookies.expose().as_str());
                }
                if mutating {
                    builder = builder.header("X-Requested-By", session_id.as_str());
                }
            }
            Credentials::Bearer {
                token,
                requested_by,
                ..
            } => {
                builder =
                    builder.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
                if mutating {
                    builder = builder.header("X-Requested-By", requested_by.as_str());
                }
            }
        }
        builder
    }

    fn secret(&self) -> &str {
        match self {
            Credentials::Session { token, cookies, .. } => {
                if token.expose().is_empty() {
                    cookies.expose()
                } else {
                    token.expose()
                }
            }
            Credentials::Bearer { token, .. } => token.expose(),
        }
    }

    fn still_valid(&self) -> bool {
        match self {
            Credentials::Session { .. } => true,
            Credentials::Bearer { refresh_after, .. } => {
                refresh_after.is_none_or(|at| Instant::now() < at)
            }
        }
    }
}

impl DamClient {
    pub(super) fn credentials(&self) -> Result<Credentials, DamError> {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(credentials) = cached.as_ref() {
            if credentials.still_valid() {
                return Ok(credentials.clone());
            }
        }
        *cached = None;
        let fresh = self.login()?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    pub(super) fn forget_credentials(&self, used: &Credentials) {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|credentials| credentials.secret() == used.secret())
        {
            *cached = None;
        }
    }

    /// Session: POST `/sessions` form `username`, `password`, reply `session_resource.session.{id,message_digest}`
    /// and cookies. OAuth2: POST `auth_url` form `grant_type=client_credentials`, `client_id`, `client_secret`,
    /// reply `{access_token, expires_in}`. Source: api-notes/otmm.md "Auth".
    fn login(&self) -> Result<Credentials, DamError> {
        match &*self.auth {
            DamAuth::Session { username, password } => {
                let url = format!("{}/sessions", self.api_base);
                let label = request_label(&Method::POST, &url);
                let mut response = self.send_form(
                    &url,
                    &label,
                    &[
                        ("username", username.as_str()),
                        ("password", password.expose().as_str()),
                    ],
                )?;
                if !response.status().is_success() {
                    return Err(login_failure(&label, &format!("as {username}"), response));
                }
                let cookies = cookie_header(
                    response
                        .headers()
                        .get_all(header::SET_COOKIE)
                        .iter()
                        .filter_map(|value| value.to_str().ok()),
                );
                let body: Value = read_json(&mut response)
                    .map_err(|message| DamError::Decode(format!("{label}: {message}")))?;
                let session = body.pointer("/session_resource/session");
                let session_id = session
                    .and_then(|session| session.get("id"))
                    .and_then(value_text)
                    .unwrap_or_default();
                let token = session
                    .and_then(|session| session.get("message_digest"))
                    .and_then(value_text)
                    .unwrap_or_default();
                if token.is_empty() && cookies.is_empty() {
                    return Err(DamError::Auth(format!(
                        "{label}: the reply has neither session_resource.session.message_digest nor a cookie"
                    )));
                }
                tracing::debug!(session_id = %session_id, "logged in to OTMM");
                Ok(Credentials::Session {
                    session_id,
                    token: Secret::new(token),
                    cookies: Secret::new(cookies),
                })
            }
            DamAuth::OAuth2 {
                auth_url,
                client_id,
                client_secret,
            } => {
                let label = request_label(&Method::POST, auth_url);
                let mut response = self.send_form(
                    auth_url,
                    &label,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", client_secret.expose().as_str()),
                    ],
                )?;
                if !response.status().is_success() {
                    return Err(login_failure(
                        &label,
                        &format!("for client {client_id}"),
                        response,
                    ));
                }
                let body: Value = read_json(&mut response)
                    .map_err(|message| DamError::Decode(format!("{label}: {message}")))?;
                let token = body
                    .get("access_token")
                    .or_else(|| body.pointer("/token_info/oauth_token/accessToken"))
                    .and_then(value_text)
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        DamError::Auth(format!("{label}: the reply has no access_token"))
                    })?;
                let lifetime = body
                    .get("expires_in")
                    .or_else(|| body.pointer("/token_info/oauth_token/expires_in"))
                    .and_then(value_u64);
                let refresh_after = lifetime.map(|lifetime| {
                    Instant::now() + Duration::from_secs(lifetime - 60.min(lifetime / 2))
                });
                tracing::debug!(expires_in_secs = ?lifetime, "obtained an OTMM OAuth2 token");
                Ok(Credentials::Bearer {
                    token: Secret::new(token),
                    requested_by: client_id.clone(),
                    refresh_after,
                })
            }
        }
    }

    /// An unauthenticated form POST (login), retried on transient failures.
    fn send_form(
        &self,
        url: &str,
        label: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Response<Body>, DamError> {
        let options = CallOptions {
            label,
            retry: true,
            timeouts: self.timeouts,
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let mut make = || {
            transport::form(
                request(Method::POST, url)
                    .header(header::ACCEPT, "application/json")
                    .header("X-Requested-By", LOGIN_REQUESTED_BY),
                pairs,
            )
            .map_err(|error| invalid_request(label, error))
        };
        self.send(&options, &mut make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_collected() {
        let header = cookie_header(
            [
                "JSESSIONID=ABC123; Path=/otmmapi; HttpOnly",
                "LB=node2; Path=/",
                "JSESSIONID=DEF456; Path=/",
                "junk",
            ]
            .into_iter(),
        );
        assert_eq!(header, "LB=node2; JSESSIONID=DEF456");
    }
}
