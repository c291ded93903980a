//! OTMM login and the credentials every call carries: a session (`otmmauthtoken` + cookies,
//! `X-Requested-By: <session id>`) or an OAuth2 bearer token (`X-Requested-By: <client id>`).
//! Source: api-notes/otmm.md "Auth".
//!
//! Cookies (`JSESSIONID`, load-balancer cookies) are kept by ureq's own cookie store (the `cookies`
//! feature: RFC 6265 domain, path and expiry rules), which lives in the [`ureq::Agent`] given to
//! [`DamClient::new`]: that agent must be the DAM's own (the passes and `box-setup doctor` build one
//! per client), as the store records every `Set-Cookie` it sees and a session login empties it, so
//! that a refused session's cookies are never sent again. The store is not wrapped like the
//! token: ureq never logs cookie values (its debug output redacts `Cookie`/`Set-Cookie`), and nothing
//! here formats the agent (`Debug` of an [`ureq::Agent`] would print the store).

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{header, Method, Response};
use ureq::Body;

use super::error::{login_failure, read_json};
use super::model::{value_text, value_u64};
use super::{invalid_request, DamClient, DamError};
use crate::config::{DamAuth, OAuthGrant};
use crate::http::{self as transport, request, request_label};
use crate::secret::Secret;

/// Value of `X-Requested-By` on the login request itself (no session id exists yet).
const LOGIN_REQUESTED_BY: &str = "content-scaling";

/// What authenticates our calls (held in an `Arc`: a refused one is recognised by identity).
pub(super) enum Credentials {
    /// Session login: `otmmauthtoken` (+ the cookies in the agent's store); `X-Requested-By: <session id>`.
    Session {
        session_id: String,
        token: Secret<String>,
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
            Credentials::Session { session_id, token } => {
                if !token.expose().is_empty() {
                    builder = builder.header("otmmauthtoken", token.expose().as_str());
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
    /// The current credentials, logging in when there are none or an OAuth2 token is due for renewal.
    pub(super) fn credentials(&self) -> Result<Arc<Credentials>, DamError> {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(credentials) = cached.as_ref() {
            if credentials.still_valid() {
                return Ok(Arc::clone(credentials));
            }
        }
        *cached = None;
        let fresh = Arc::new(self.login()?);
        *cached = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Forgets `used` (refused by OTMM) unless another thread already replaced it.
    pub(super) fn forget_credentials(&self, used: &Arc<Credentials>) {
        let mut cached = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cached
            .as_ref()
            .is_some_and(|credentials| Arc::ptr_eq(credentials, used))
        {
            *cached = None;
        }
    }

    /// Ends the session this client opened, if any: DELETE `/sessions` (204), so that a pass a
    /// minute does not leave a session a minute open on the server until it times out. A bearer
    /// token (OAuth2) is left to expire: OpenText's client never revokes one. Best effort: a
    /// failure is logged at DEBUG and forgotten (the server's session timeout still applies).
    /// Source: api-notes/otmm.md "Auth" (check: GET `/sessions`; logout: DELETE `/sessions`).
    pub fn logout(&self) {
        let taken = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(credentials) = taken else {
            return;
        };
        if !matches!(*credentials, Credentials::Session { .. }) {
            return;
        }
        let url = format!("{}/sessions", self.api_base);
        let label = request_label(&Method::DELETE, &url);
        let options = super::call_options(&label, false, self.timeouts);
        let result = self.send(&options, &mut || {
            transport::empty_body(credentials.apply(
                request(Method::DELETE, &url).header(header::ACCEPT, "application/json"),
                true,
            ))
            .map_err(|error| invalid_request(&label, error))
        });
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::debug!("logged out of OTMM");
            }
            Ok(response) => {
                tracing::debug!(status = response.status().as_u16(), "OTMM logout refused");
            }
            Err(error) => tracing::debug!(%error, "OTMM logout failed"),
        }
        self.http.agent.cookie_jar_lock().clear();
    }

    /// Session: POST `/sessions` form `username`, `password`, reply `session_resource.session.{id,message_digest}`
    /// and cookies. OAuth2: POST `auth_url` form `grant_type=password` with `username`, `password`
    /// (or `grant_type=client_credentials`), `client_id`, `client_secret`; reply
    /// `token_info.oauth_token.{accessToken, expiresIn}` (OpenText's own client,
    /// `opentext/pyxecm` `packages/pyxecm/src/pyxecm/otmm.py` `authenticate`), or the OAuth2
    /// standard `{access_token, expires_in}` (RFC 6749 §5.1) of an OTDS-style token URL.
    fn login(&self) -> Result<Credentials, DamError> {
        match &*self.auth {
            DamAuth::Session { username, password } => {
                let url = format!("{}/sessions", self.api_base);
                let label = request_label(&Method::POST, &url);
                // A new session starts without the cookies of the one it replaces.
                self.http.agent.cookie_jar_lock().clear();
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
                // ureq's cookie store has recorded them.
                let has_cookie = response.headers().contains_key(header::SET_COOKIE);
                let body = read_json(&label, &mut response)?;
                let session = body.pointer("/session_resource/session");
                let session_id = session
                    .and_then(|session| session.get("id"))
                    .and_then(value_text)
                    .unwrap_or_default();
                let token = session
                    .and_then(|session| session.get("message_digest"))
                    .and_then(value_text)
                    .unwrap_or_default();
                if token.is_empty() && !has_cookie {
                    return Err(DamError::Auth(format!(
                        "{label}: the reply has neither session_resource.session.message_digest nor a cookie"
                    )));
                }
                tracing::debug!(session_id = %session_id, "logged in to OTMM");
                Ok(Credentials::Session {
                    session_id,
                    token: Secret::new(token),
                })
            }
            DamAuth::OAuth2 {
                auth_url,
                client_id,
                client_secret,
                grant,
            } => {
                let label = request_label(&Method::POST, auth_url);
                let mut form: Vec<(&str, &str)> = Vec::new();
                match grant {
                    OAuthGrant::Password { username, password } => {
                        form.push(("grant_type", "password"));
                        form.push(("username", username.as_str()));
                        form.push(("password", password.expose().as_str()));
                    }
                    OAuthGrant::ClientCredentials => {
                        form.push(("grant_type", "client_credentials"));
                    }
                }
                form.push(("client_id", client_id.as_str()));
                form.push(("client_secret", client_secret.expose().as_str()));
                let mut response = self.send_form(auth_url, &label, &form)?;
                if !response.status().is_success() {
                    return Err(login_failure(
                        &label,
                        &format!("for client {client_id}"),
                        response,
                    ));
                }
                let body = read_json(&label, &mut response)?;
                let (token, lifetime) = oauth_token(&body);
                let token = token.ok_or_else(|| {
                    DamError::Auth(format!(
                        "{label}: the reply has neither token_info.oauth_token.accessToken nor access_token"
                    ))
                })?;
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
        let options = super::call_options(label, true, self.timeouts);
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

/// The token and its lifetime in seconds from an OAuth2 token reply: OTMM's
/// `token_info.oauth_token.{accessToken, expiresIn}` (camelCase like `accessToken`; `expires_in`
/// also read), else RFC 6749's `{access_token, expires_in}`.
fn oauth_token(body: &Value) -> (Option<String>, Option<u64>) {
    let otmm = body.pointer("/token_info/oauth_token");
    let token = otmm
        .and_then(|token| token.get("accessToken"))
        .or_else(|| body.get("access_token"))
        .and_then(value_text)
        .filter(|token| !token.is_empty());
    let lifetime = otmm
        .and_then(|token| token.get("expiresIn").or_else(|| token.get("expires_in")))
        .or_else(|| body.get("expires_in"))
        .and_then(value_u64);
    (token, lifetime)
}
