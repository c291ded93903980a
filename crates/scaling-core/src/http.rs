//! Shared HTTP plumbing of the Box and OTMM clients: per-request ureq configuration, the retry policy
//! (exponential backoff with jitter, `Retry-After`), the request rate limit, streamed multipart bodies and
//! small encoding helpers.
//!
//! Both clients funnel every exchange through one chokepoint, `execute`, which applies the timeouts
//! (a total for metadata calls, idle limits only for content transfers), waits for the rate limiter,
//! sends, and retries transient failures of idempotent requests (429/5xx, connection errors, and replies
//! the client's `retry_reply` calls transient, e.g. Box's 409 `operation_blocked_temporary`), logging
//! each retry with `tracing` (method, path without query, status or error, attempt). Non-idempotent requests
//! (uploads, imports) are sent once by `execute`; their callers decide how to retry (the Box client first
//! checks whether the upload landed).
//!
//! Why our own multipart writer: ureq's `multipart` feature builds the form in memory, and both Box
//! (`attributes` part first) and OTMM (`asset_representation`, `parent_folder_id`, `manifest`, `files`)
//! need a streamed file part with a known `Content-Length`. [`Multipart`] computes the exact length up
//! front and sends a chained reader (preamble bytes, the file, epilogue bytes), re-opened for every
//! attempt.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use ureq::config::RedirectAuthHeaders;
use ureq::http::{self, HeaderMap, Request, Response};
use ureq::{Agent, Body, SendBody};

/// Largest JSON body the clients accept (bytes). A Box listing page of 1000 entries is well under 1 MB; OTMM
/// search pages with full metadata are bigger, but far below this.
pub const MAX_JSON_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Largest error body read to build an error message (bytes); the rest is ignored.
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Timeouts applied to one request.
///
/// `connect` bounds DNS + TCP + TLS setup; `read` bounds every single socket read and write (it restarts
/// for each one), so a stalled exchange fails after `read`. `total` bounds the whole exchange (connection,
/// request, response headers and body): metadata calls have one ([`Timeouts::from_secs`]: connect + read),
/// content transfers do not ([`Timeouts::for_content`]), so a large download or upload may take as long
/// as it needs while it keeps moving. Whatever the caller's agent was configured with, [`execute`]
/// applies exactly these limits (the agent's own body/response totals are cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connection setup limit.
    pub connect: Duration,
    /// Limit for each transport read or write (idle time, not total time).
    pub read: Duration,
    /// Limit of the whole exchange; `None` for content transfers.
    pub total: Option<Duration>,
}

impl Timeouts {
    /// Metadata-call timeouts from whole seconds, as configured (`*_timeout_secs`): connect, per-read and a
    /// total of connect + read. A zero value means "no limit".
    pub fn from_secs(connect_secs: u64, read_secs: u64) -> Self {
        let connect = Duration::from_secs(connect_secs);
        let read = Duration::from_secs(read_secs);
        Self {
            connect,
            read,
            total: (read_secs > 0).then(|| connect + read),
        }
    }

    /// The same connect and idle limits without a total: for content downloads and uploads, whose duration
    /// grows with the file size.
    #[must_use]
    pub fn for_content(self) -> Self {
        Self {
            total: None,
            ..self
        }
    }
}

/// When and how long to wait before retrying a transient failure.
///
/// Transient = HTTP 429, 500, 502, 503, 504 ([`is_retryable_status`]) or a connection/timeout error
/// ([`is_retryable_transport`]). The n-th retry (n = 1, 2, ...) waits the longer of the server's
/// `Retry-After` (capped at `max_retry_after`) and the exponential backoff `base_delay * 2^(n-1)`
/// capped at `max_delay`, with "equal jitter" (a random value between half and all of it). Box's SDK
/// uses the same scheme (5 attempts, base 1 s, jitter 0.5). The backoff is the `backon` crate's
/// [`backon::ExponentialBuilder`] ([`RetryPolicy::schedule`]); [`retry`] runs the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Delay before the first retry, before jitter. Production: [`RetryPolicy::DEFAULT_BASE_DELAY`];
    /// tests set a few milliseconds.
    pub base_delay: Duration,
    /// Upper bound of the exponential delay.
    pub max_delay: Duration,
    /// Upper bound applied to a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// HTTP statuses worth retrying (`retry.retryable_http_codes`); default
    /// [`StatusSet::DEFAULT_RETRYABLE`].
    pub retryable_statuses: StatusSet,
}

/// A set of HTTP error statuses (400..=599), e.g. those worth retrying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 4]);

impl StatusSet {
    /// 429 (rate limited), 500, 502, 503, 504: the statuses a retry may cure.
    pub const DEFAULT_RETRYABLE: StatusSet = StatusSet::of(&[429, 500, 502, 503, 504]);

    /// The set of `codes`; codes outside 400..=599 are left out (the configuration refuses them).
    pub const fn of(codes: &[u16]) -> StatusSet {
        let mut bits = [0u64; 4];
        let mut index = 0;
        while index < codes.len() {
            let code = codes[index];
            if code >= 400 && code <= 599 {
                let offset = (code - 400) as usize;
                bits[offset / 64] |= 1 << (offset % 64);
            }
            index += 1;
        }
        StatusSet(bits)
    }

    /// Whether `status` is in the set.
    pub fn contains(self, status: u16) -> bool {
        match status.checked_sub(400) {
            Some(offset) if offset < 200 => {
                let offset = usize::from(offset);
                self.0[offset / 64] & (1 << (offset % 64)) != 0
            }
            _ => false,
        }
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_set()
            .entries((400..600).filter(|status| self.contains(*status)))
            .finish()
    }
}

impl RetryPolicy {
    /// Production base delay: 500 ms.
    pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
    /// Production cap of the exponential delay: 30 s.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
    /// Production cap of `Retry-After`: 120 s.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_mins(2);

    /// The production policy with `max_retries` retries.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Self::DEFAULT_BASE_DELAY,
            max_delay: Self::DEFAULT_MAX_DELAY,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
            retryable_statuses: StatusSet::DEFAULT_RETRYABLE,
        }
    }

    /// This policy retrying the HTTP statuses `codes` (`retry.retryable_http_codes`) instead of
    /// [`StatusSet::DEFAULT_RETRYABLE`].
    #[must_use]
    pub fn with_retryable_statuses(self, codes: &[u16]) -> Self {
        Self {
            retryable_statuses: StatusSet::of(codes),
            ..self
        }
    }

    /// Whether a reply with `status` is worth another attempt under this policy.
    pub fn retries_status(&self, status: u16) -> bool {
        self.retryable_statuses.contains(status)
    }

    /// A policy with millisecond delays for tests (same retry count).
    pub fn fast(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(50),
            retryable_statuses: StatusSet::DEFAULT_RETRYABLE,
        }
    }

    /// The backoff schedule: `max_retries` delays, the n-th drawn from
    /// `[d, 2d)` with `d = base_delay/2 * 2^(n-1)` capped at `max_delay/2` (backon's jitter adds up to
    /// `d`), so every delay lies between half and all of `base_delay * 2^(n-1)` and below `max_delay`.
    pub fn schedule(&self) -> backon::ExponentialBuilder {
        let retries = usize::try_from(self.max_retries).unwrap_or(usize::MAX);
        backon::ExponentialBuilder::new()
            .with_min_delay(self.base_delay / 2)
            .with_max_delay(self.max_delay / 2)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(retries)
    }

    /// Exponential delay with jitter before retry number `retry` (1-based), from [`Self::schedule`].
    pub fn backoff(&self, retry: u32) -> Duration {
        let index = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
        backon::BackoffBuilder::build(self.schedule().without_max_times())
            .nth(index)
            .unwrap_or(self.max_delay)
    }

    /// The wait before a retry whose backoff is `backoff`: the longer of that and the server's
    /// `Retry-After` capped at `max_retry_after`.
    pub fn wait(&self, backoff: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_retry_after).max(backoff),
            None => backoff,
        }
    }

    /// Delay before retry number `retry` (1-based): [`Self::wait`] of [`Self::backoff`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.wait(self.backoff(retry), retry_after)
    }
}

/// How one attempt of a retried operation ([`retry`]) failed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Transient: worth another attempt, after the backoff or the server's `Retry-After`, whichever
    /// is longer.
    Retry {
        /// What failed (logged as the cause of the retry; returned when no retry is left).
        error: E,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Final: no further attempt.
    Stop(E),
}

impl<E> Attempt<E> {
    /// A transient failure without `Retry-After`.
    pub fn retry(error: E) -> Self {
        Attempt::Retry {
            error,
            retry_after: None,
        }
    }

    /// The failure.
    pub fn into_error(self) -> E {
        match self {
            Attempt::Retry { error, .. } | Attempt::Stop(error) => error,
        }
    }

    fn is_retry(&self) -> bool {
        matches!(self, Attempt::Retry { .. })
    }
}

/// Waits at least this long are logged at INFO (what is awaited and for how long); shorter ones
/// at DEBUG only, so a pass that rides out a blip stays quiet.
pub const LONG_WAIT: Duration = Duration::from_secs(2);

/// Runs `operation` with the attempt number (1, 2, ...) until it succeeds, fails with
/// [`Attempt::Stop`], or fails with [`Attempt::Retry`] after `policy.max_retries` retries; returns
/// the last error then. Between attempts it sleeps [`RetryPolicy::wait`] (backon's exponential
/// backoff with jitter, or a longer `Retry-After`). Each retry is logged at DEBUG: `request` (the
/// label, no host or query), `attempt` (the one that failed), `cause` (the error's text: HTTP
/// status, Box code or transport error kind), `retry_after_ms` and `wait_ms`; a wait of
/// [`LONG_WAIT`] or more is also logged at INFO, saying what it waits for (the server's
/// `Retry-After` or the backoff) and how long. The caller reports the final failure once.
///
/// The one retry loop of the clients: [`execute`] runs every request through it, and the Box
/// client's content transfers (download, upload, chunked parts and commit) use it for their own
/// retries around non-idempotent steps.
pub fn retry<T, E: fmt::Display>(
    policy: &RetryPolicy,
    label: &str,
    mut operation: impl FnMut(u32) -> Result<T, Attempt<E>>,
) -> Result<T, E> {
    use backon::BlockingRetryable as _;
    // backon's sleeper sees only the backoff; the wait decided in `notify` (which sees the error and
    // its Retry-After) is handed over through this cell.
    let decided = Rc::new(Cell::new(None::<Duration>));
    let planned = Rc::clone(&decided);
    let mut attempts: u32 = 0;
    let mut failed: u32 = 0;
    (|| {
        attempts += 1;
        operation(attempts)
    })
    .retry(policy.schedule())
    .when(Attempt::is_retry)
    .notify(|failure: &Attempt<E>, backoff: Duration| {
        failed += 1;
        let (cause, retry_after) = match failure {
            Attempt::Retry { error, retry_after } => (error, *retry_after),
            Attempt::Stop(error) => (error, None),
        };
        let wait = policy.wait(backoff, retry_after);
        planned.set(Some(wait));
        tracing::debug!(
            request = label,
            attempt = failed,
            cause = %cause,
            retry_after_ms = retry_after.map(millis),
            wait_ms = millis(wait),
            "transient failure, retrying"
        );
        log_long_wait(
            label,
            failed,
            &cause.to_string(),
            retry_after.is_some_and(|after| after >= backoff),
            wait,
        );
    })
    .sleep(move |backoff: Duration| thread::sleep(decided.take().unwrap_or(backoff)))
    .call()
    .map_err(Attempt::into_error)
}

/// The INFO line of a retry wait of [`LONG_WAIT`] or more: what is awaited (the server's
/// `Retry-After` when `honouring_retry_after`, else the backoff) and for how long.
fn log_long_wait(
    label: &str,
    attempt: u32,
    cause: &str,
    honouring_retry_after: bool,
    wait: Duration,
) {
    if wait < LONG_WAIT {
        return;
    }
    let why = if honouring_retry_after {
        "the server's Retry-After"
    } else {
        "retry backoff"
    };
    tracing::info!(
        request = label,
        attempt,
        cause,
        wait_secs = wait.as_secs_f64().round(),
        "waiting {:.0} s ({why}) before retrying {label}",
        wait.as_secs_f64()
    );
}

/// A duration in whole milliseconds, for logs.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whether an HTTP status is worth retrying by default: 429 (rate limited), 500, 502, 503, 504
/// ([`StatusSet::DEFAULT_RETRYABLE`]; a client's own policy may differ, see
/// [`RetryPolicy::retries_status`]).
pub fn is_retryable_status(status: u16) -> bool {
    StatusSet::DEFAULT_RETRYABLE.contains(status)
}

/// What a request that got no HTTP reply can have done: the one transience classification of a
/// ureq error, shared by the Box and OTMM clients and the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportClass {
    /// The request never left: the host was not found, the connection was refused or timed out,
    /// the TLS handshake failed. Safe to retry even when the call is not idempotent.
    NotSent,
    /// The request may have reached the server: a read timeout, a connection reset or closed
    /// mid-exchange, a garbled reply. A retry may repeat a write that took effect.
    MaybeSent,
    /// The request we built is wrong (URL, header, redirect or proxy settings, HTTPS required): a
    /// retry gives the same answer.
    Invalid,
}

impl TransportClass {
    /// Worth retrying later: [`TransportClass::NotSent`] or [`TransportClass::MaybeSent`].
    pub fn is_transient(self) -> bool {
        !matches!(self, TransportClass::Invalid)
    }
}

/// The [`TransportClass`] of a ureq error.
pub fn transport_class(error: &ureq::Error) -> TransportClass {
    use ureq::Timeout;
    match error {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => TransportClass::NotSent,
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            ) =>
        {
            TransportClass::NotSent
        }
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => {
            TransportClass::MaybeSent
        }
        _ => TransportClass::Invalid,
    }
}

/// Whether a ureq error is a network-level failure worth retrying (I/O, timeout, DNS, refused or
/// dropped connection, TLS handshake, garbled response) rather than a bad request we built (URL,
/// header, redirect): [`transport_class`] is not [`TransportClass::Invalid`].
pub fn is_retryable_transport(error: &ureq::Error) -> bool {
    transport_class(error).is_transient()
}

/// A short name of a ureq error's kind for logs and messages: `io`, `timeout`, `host not found`,
/// `connection failed`, `protocol`, or `request` for errors of a request we built.
pub fn transport_kind(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::Io(_) => "io",
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::HostNotFound => "host not found",
        ureq::Error::ConnectionFailed => "connection failed",
        ureq::Error::Protocol(_) => "protocol",
        _ => "request",
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"120"`, also `"1.5"`) or an HTTP-date (RFC 9110
/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now`. A date in the past gives zero.
/// Returns `None` for anything else.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Duration::try_from_secs_f64(seconds).ok();
        }
        return None;
    }
    let at = parse_http_date(value)?;
    let millis = at.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
}

/// Parses an HTTP-date (`Date`, `Retry-After`): RFC 9110 IMF-fixdate, which is RFC 2822 with `GMT`.
pub fn parse_http_date(value: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value.trim())
        .ok()
}

/// The `Retry-After` of a response as a delay from now, if present and valid.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, jiff::Timestamp::now())
}

/// The server's clock from a response's `Date` header, if present and valid.
pub fn server_date(headers: &HeaderMap) -> Option<jiff::Timestamp> {
    let value = headers.get(http::header::DATE)?.to_str().ok()?;
    parse_http_date(value)
}

/// A header value as text (`None` if absent or not visible ASCII).
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Percent-encodes a query parameter value completely (every byte but ASCII letters and digits), as
/// Tomcat requires for JSON in OTMM query strings.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Characters left as-is in a path segment: RFC 3986 unreserved.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (an item id), so that `/`, `?` or `#` in an id can never change the URL.
pub fn encode_path_segment(value: &str) -> String {
    utf8_percent_encode(value, PATH_SEGMENT).to_string()
}

/// Bytes left as-is by the `application/x-www-form-urlencoded` serializer (WHATWG URL standard): ASCII
/// alphanumerics and `*-._`.
const FORM_ENCODE: &AsciiSet = &PATH_SEGMENT.add(b'~').remove(b'*');

/// An `application/x-www-form-urlencoded` body from name/value pairs (everything but `*-._` and ASCII
/// alphanumerics percent-encoded; a space is `%20`).
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| utf8_percent_encode(text, FORM_ENCODE).to_string();
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What logs and error messages show for a request: method and URL path, never the user info, the
/// query string (which may hold markers, tokens or other opaque values) nor the host. The one
/// redaction of request URLs for the clients' logs and errors, with [`redacted_origin`].
pub fn request_label(method: &http::Method, url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!("{method} {}", parsed.path()),
        Err(_) => format!("{method} <invalid URL>"),
    }
}

/// `scheme://host[:port]` of a URL, for logs about a URL whose path or query is a credential (Box's
/// download URLs); user info, path and query are left out. `<invalid URL>` when it does not parse.
pub fn redacted_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// The absolute URL of a redirect `Location`: an absolute URL as is, a path-absolute one (`/d/1`)
/// joined to the request's URL `base` by the `url` crate; `None` for anything else (relative paths,
/// scheme-relative `//host/...`, unparsable values).
pub fn resolve_location(base: &str, location: &str) -> Option<String> {
    if let Ok(absolute) = url::Url::parse(location) {
        return Some(absolute.into());
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let base = url::Url::parse(base).ok()?;
    base.join(location).ok().map(String::from)
}

/// `text` with every credential replaced by `****`: the one redaction of text that may echo a
/// request (error bodies, transport errors) before it is logged, stored or mailed, for the Box
/// client and the notifier alike:
///
/// - each of `secrets` (values shorter than 4 characters are ignored), longest first;
/// - the token of an `Authorization`-style scheme: `Basic …`, `Bearer …`, `Digest …`;
/// - the values of credential headers echoed back (`Authorization:`, `Proxy-Authorization:`,
///   `X-Api-Key:`, `otmmauthtoken:`: scheme and token; `Cookie:`, `Set-Cookie:`: to the end of
///   the line);
/// - URL user-info (`https://user:password@host`) and credential query parameters
///   (`access_token`, `token`, `api_key`, `key`, `password`, `secret`, `signature`, `code`, …);
/// - `name=value` / `"name": "value"` pairs for those names, and `api:…` (a decoded Basic pair);
/// - Mailgun key shapes (`key-` + 32 letters/digits, and `32hex-8hex-8hex`) even when not
///   configured here.
pub fn redact_credentials(text: &str, secrets: &[&str]) -> String {
    use std::sync::LazyLock;
    static PATTERNS: LazyLock<Vec<(regex::Regex, &'static str)>> = LazyLock::new(|| {
        [
            (
                r#"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|otmmauthtoken)("?\s*[:=]\s*"?)(?:[a-z]+\s+)?[^\s"',;]+"#,
                "${1}${2}****",
            ),
            (
                r#"(?i)\b(cookie|set-cookie)("?\s*[:=]\s*"?)[^\r\n"]+"#,
                "${1}${2}****",
            ),
            (r"(?i)\b(basic|bearer|digest)(\s+)[A-Za-z0-9._~+/-]{6,}=*", "${1}${2}****"),
            (r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@", "${1}****@"),
            (
                r#"(?i)([?&;](?:access_token|refresh_token|id_token|token|api_key|apikey|key|password|passwd|pwd|secret|client_secret|signature|sig|code)=)[^&\s"'#]+"#,
                "${1}****",
            ),
            (
                r#"(?i)("?\b(?:access_token|refresh_token|id_token|api_key|apikey|password|passwd|client_secret|signing_secret|secret|token)"?\s*[:=]\s*"?)[^"\s,&}]+"#,
                "${1}****",
            ),
            (r#"\bapi:[^\s"',;]+"#, "api:****"),
            (r"(?i)\bkey-[0-9a-z]{32}\b", "****"),
            (r"(?i)\b[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}\b", "****"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| {
            (
                regex::Regex::new(pattern).expect("redaction pattern"),
                replacement,
            )
        })
        .collect()
    });
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|secret| secret.len() >= 4)
        .collect();
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret, "****");
    }
    for (pattern, replacement) in PATTERNS.iter() {
        out = pattern.replace_all(&out, *replacement).into_owned();
    }
    out
}

/// A request window as a service counts it: a bucket refilled at `per_minute` requests per minute
/// that holds `burst` requests (GCRA: one request every `60 s / per_minute`, up to `burst` at once
/// after a quiet spell; any 60 s then hold at most `per_minute + burst - 1` requests).
///
/// Box documents its limits per user and minute ("approximately 1000 API calls/minute", 240 uploads
/// per minute; <https://developer.box.com/guides/api-calls/permissions-and-errors/rate-limits/>) and
/// answers 429 `rate_limit_exceeded` with `Retry-After` beyond them. Configured as
/// `box.max_requests_per_minute` (or `box.max_requests_per_second` x 60) and `box.burst`; the
/// sandbox enforces the same bucket (`--rate-limit-per-minute`, `--rate-limit-burst`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestWindow {
    /// Sustained requests per minute (> 0).
    pub per_minute: f64,
    /// Requests that may go at once (>= 1).
    pub burst: u32,
}

impl RequestWindow {
    /// `per_second` requests per second, evenly spaced (burst 1).
    pub fn per_second(per_second: f64) -> Self {
        Self {
            per_minute: per_second * 60.0,
            burst: 1,
        }
    }

    /// The bucket as the server keeps it: one request every `60 s / per_minute`, `burst` at once.
    /// `None` when `per_minute` is not a positive finite number.
    pub fn quota(&self) -> Option<Quota> {
        self.quota_with_burst(self.burst)
    }

    /// The bucket the client keeps: the server's rate with one request of the burst held in
    /// reserve (burst - 1, at least 1). A client that used the whole burst would send its steady
    /// requests exactly at the server's limit, so a request that happens to travel faster than the
    /// one before it (scheduling, connection set-up, network) would find the server's bucket empty
    /// and draw a 429; the reserve absorbs up to one request interval of such jitter
    /// (`60 s / per_minute`, 100 ms at 600/min) and costs the sustained rate nothing.
    pub fn client_quota(&self) -> Option<Quota> {
        self.quota_with_burst(self.burst.saturating_sub(1).max(1))
    }

    fn quota_with_burst(&self, burst: u32) -> Option<Quota> {
        if !self.per_minute.is_finite() || self.per_minute <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(60.0 / self.per_minute).ok()?;
        Some(
            Quota::with_period(period)?
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)),
        )
    }
}

/// Request rate limit shared by every clone of a client and every thread using it.
///
/// A `governor` GCRA limiter with [`RequestWindow::client_quota`]: bursts up to the window's burst
/// less one, then one request every `60 s / per_minute`. [`RateLimit::wait`] blocks the calling
/// thread until a request may go.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl RateLimit {
    /// A limit of `per_second` requests per second, evenly spaced (no burst); a value that is not a
    /// positive finite number means no limit.
    pub fn per_second(per_second: f64) -> Self {
        Self::window(RequestWindow::per_second(per_second))
    }

    /// A limit keeping within `window` (see [`RequestWindow::client_quota`]); a window whose rate is
    /// not a positive finite number means no limit.
    pub fn window(window: RequestWindow) -> Self {
        Self {
            limiter: window
                .client_quota()
                .map(|quota| Arc::new(RateLimiter::direct(quota))),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self { limiter: None }
    }

    /// Blocks until the next request is allowed; a wait of [`LONG_WAIT`] or more is logged at
    /// INFO with the request (`label`) it holds back.
    pub fn wait(&self, label: &str) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let clock = DefaultClock::default();
        while let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(clock.now());
            if wait >= LONG_WAIT {
                tracing::info!(
                    request = label,
                    wait_secs = wait.as_secs_f64().round(),
                    "rate limit: waiting {:.0} s before sending {label}",
                    wait.as_secs_f64()
                );
            }
            thread::sleep(wait);
        }
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.limiter {
            Some(_) => formatter.write_str("RateLimit(limited)"),
            None => formatter.write_str("RateLimit(unlimited)"),
        }
    }
}

/// How a request treats redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Return 3xx responses as they are (the caller follows them itself).
    Manual,
    /// Follow up to 5 redirects; `Authorization` is never forwarded to the redirect target.
    FollowWithoutAuth,
}

/// Options of one logical call through [`execute`].
#[derive(Debug, Clone)]
pub struct CallOptions<'a> {
    /// `"GET /2.0/folders/123/items"`: see [`request_label`].
    pub label: &'a str,
    /// Retry transient failures (only for idempotent requests).
    pub retry: bool,
    /// Timeouts for each attempt.
    pub timeouts: Timeouts,
    /// Redirect handling.
    pub redirects: Redirects,
    /// With `retry`: a non-2xx reply that is not retryable by status alone (e.g. Box's 409
    /// `operation_blocked_temporary`) but whose status and error body (at most
    /// [`MAX_ERROR_BODY_BYTES`]) this function calls transient is retried too. The body of a reply it
    /// rejects is handed back to the caller intact.
    pub retry_reply: Option<fn(u16, &str) -> bool>,
}

/// Shared transport state of a client: the caller's agent, the rate limit, the retry policy and
/// the hosts found unreachable.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The one agent of the process (connection pool), passed in by the caller.
    pub agent: Agent,
    /// Applied before every attempt.
    pub limit: RateLimit,
    /// Retry policy of idempotent calls (and of the callers' own retry loops).
    pub policy: RetryPolicy,
    /// Hosts that gave no reply through a whole retry cycle (shared by the clones of a client).
    pub outage: Outage,
}

/// The hosts (`host:port`) that gave no reply through a whole retry cycle of [`execute`], with
/// what was tried: later requests of the same client to such a host are not sent (they fail at
/// once with a transport error that names the first failure), so an outage costs a pass one
/// retry cycle, not one per request. Shared by the clones of a client (its worker threads);
/// a new process starts with none.
#[derive(Debug, Clone, Default)]
pub struct Outage(Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>);

impl Outage {
    fn hosts(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the first request to `host` that got no reply was, if one did not.
    pub fn of(&self, host: &str) -> Option<String> {
        self.hosts().get(host).cloned()
    }

    /// Records that `host` gave no reply to `what` (first failure kept).
    pub fn note(&self, host: &str, what: String) {
        self.hosts().entry(host.to_string()).or_insert(what);
    }
}

/// `host[:port]` of a request, the key of [`Outage`].
fn request_host<B>(request: &Request<B>) -> String {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_string())
        .unwrap_or_default()
}

/// Why [`execute`] gave no response.
#[derive(Debug)]
pub enum SendError<E> {
    /// The caller's request factory failed (e.g. a body file could not be opened, a token could not be made).
    Build(E),
    /// The request could not be built or sent (after `attempts` attempts when retried).
    Transport {
        /// The last ureq error.
        error: ureq::Error,
        /// Attempts made.
        attempts: u32,
    },
}

/// What one attempt of [`execute`] ended with when it was not the answer to hand back.
enum Exchange<E> {
    /// The caller's factory failed.
    Build(E),
    /// A reply that is transient by status or by `retry_reply` (handed back when no retry is left).
    Reply(Response<Body>),
    /// No reply.
    Transport { error: ureq::Error, attempt: u32 },
}

impl<E> fmt::Display for Exchange<E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exchange::Build(_) => formatter.write_str("the request could not be built"),
            Exchange::Reply(response) => write!(formatter, "HTTP {}", response.status().as_u16()),
            Exchange::Transport { error, .. } => {
                write!(
                    formatter,
                    "transport error ({}): {error}",
                    transport_kind(error)
                )
            }
        }
    }
}

/// A request that got no reply after its attempts: what was asked (a [`request_label`], possibly
/// with where it stopped), how many attempts were made, and the last ureq error as the source. Its
/// text names the error kind ([`transport_kind`]) and repeats the source's text, so a message kept
/// as a string still says what failed.
#[derive(Debug, thiserror::Error)]
#[error("{label}: {} error after {attempts} attempt(s): {source}", transport_kind(.source))]
pub struct TransportError {
    /// `"GET /2.0/files/1/content"`, never a host or query.
    pub label: String,
    /// Attempts made (1 when the request was not retried).
    pub attempts: u32,
    /// The last error.
    #[source]
    pub source: ureq::Error,
}

/// Sends one logical request: for every attempt calls `make` (so bodies are re-opened and signatures
/// renewed), applies the per-request configuration (`http_status_as_error(false)`, timeouts, redirects),
/// waits for the rate limiter and sends. With `options.retry`, transient statuses and transport errors are
/// retried through [`retry`] per the context's policy (the longer of the backoff and `Retry-After`, each
/// retry logged with its cause and wait). Returns the last response whatever its status (the caller maps
/// non-2xx to its error type).
pub fn execute<E>(
    context: &HttpContext,
    options: &CallOptions<'_>,
    make: &mut dyn FnMut() -> Result<Request<SendBody<'static>>, E>,
) -> Result<Response<Body>, SendError<E>> {
    let retries = if options.retry {
        context.policy.max_retries
    } else {
        0
    };
    let policy = RetryPolicy {
        max_retries: retries,
        ..context.policy.clone()
    };
    let mut host = String::new();
    let outcome = retry(&policy, options.label, |attempt| {
        let request = make().map_err(|error| Attempt::Stop(Exchange::Build(error)))?;
        host = request_host(&request);
        if let Some(first) = context.outage.of(&host) {
            // Not sent: this host gave no reply through a whole retry cycle earlier.
            let error = ureq::Error::Io(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("not sent, the host did not answer earlier: {first}"),
            ));
            return Err(Attempt::Stop(Exchange::Transport { error, attempt: 0 }));
        }
        let request = configure(&context.agent, request, options);
        context.limit.wait(options.label);
        let may_retry = attempt <= retries;
        match context.agent.run(request) {
            Ok(response) => {
                let status = response.status();
                let (response, transient) = if !may_retry || status.is_success() {
                    (response, false)
                } else if policy.retries_status(status.as_u16()) {
                    (response, true)
                } else {
                    match options.retry_reply {
                        Some(judge) if !status.is_redirection() => {
                            let (response, text) = buffer_error_body(response);
                            (response, judge(status.as_u16(), &text))
                        }
                        _ => (response, false),
                    }
                };
                if transient {
                    let retry_after = retry_after(response.headers());
                    return Err(Attempt::Retry {
                        error: Exchange::Reply(response),
                        retry_after,
                    });
                }
                Ok(response)
            }
            Err(error) => {
                let retryable = may_retry && is_retryable_transport(&error);
                let failure = Exchange::Transport { error, attempt };
                Err(if retryable {
                    Attempt::retry(failure)
                } else {
                    Attempt::Stop(failure)
                })
            }
        }
    });
    match outcome {
        Ok(response) | Err(Exchange::Reply(response)) => Ok(response),
        Err(Exchange::Build(error)) => Err(SendError::Build(error)),
        Err(Exchange::Transport { error, attempt }) => {
            if retries > 0 && attempt > retries && is_retryable_transport(&error) {
                tracing::debug!(request = options.label, %host, attempts = attempt, "no reply through a whole retry cycle; later requests to this host are not sent");
                context.outage.note(
                    &host,
                    format!(
                        "{} got no reply after {attempt} attempts ({error})",
                        options.label
                    ),
                );
            }
            Err(SendError::Transport {
                error,
                attempts: attempt,
            })
        }
    }
}

/// Reads an error reply's body (at most [`MAX_ERROR_BODY_BYTES`]) and returns the reply with that body
/// put back, and the body as text.
fn buffer_error_body(response: Response<Body>) -> (Response<Body>, String) {
    let (parts, mut body) = response.into_parts();
    let mut buffer = Vec::new();
    let mut reader = body.with_config().limit(MAX_ERROR_BODY_BYTES).reader();
    if let Err(error) = (&mut reader)
        .take(MAX_ERROR_BODY_BYTES)
        .read_to_end(&mut buffer)
    {
        tracing::debug!(%error, "cannot read error body");
    }
    drop(reader);
    let text = String::from_utf8_lossy(&buffer).into_owned();
    let mut builder = Body::builder();
    if let Some(mime) = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    {
        builder = builder.mime_type(mime.split(';').next().unwrap_or(mime).trim());
    }
    (Response::from_parts(parts, builder.data(buffer)), text)
}

/// Applies the per-request configuration every client call needs, independent of how the caller's agent
/// was configured.
fn configure(
    agent: &Agent,
    request: Request<SendBody<'static>>,
    options: &CallOptions<'_>,
) -> Request<SendBody<'static>> {
    let non_zero = |duration: Duration| (!duration.is_zero()).then_some(duration);
    let builder = agent
        .configure_request(request)
        .http_status_as_error(false)
        .timeout_connect(non_zero(options.timeouts.connect))
        .timeout_per_read(non_zero(options.timeouts.read))
        .timeout_per_write(non_zero(options.timeouts.read))
        .timeout_per_call(options.timeouts.total.and_then(non_zero))
        .timeout_global(None)
        .timeout_send_request(None)
        .timeout_send_body(None)
        .timeout_recv_response(None)
        .timeout_recv_body(None)
        .redirect_auth_headers(RedirectAuthHeaders::Never);
    match options.redirects {
        Redirects::Manual => builder.max_redirects(0).build(),
        Redirects::FollowWithoutAuth => builder.max_redirects(5).build(),
    }
}

/// What [`execute_authenticated`] does with a 401 reply.
pub enum Unauthorized<E> {
    /// Get credentials again (the caller has forgotten the refused ones) and send once more.
    Renew,
    /// Hand the 401 reply back to the caller.
    Return(Response<Body>),
    /// Stop with this error.
    Fail(E),
}

/// What a client's authenticated call takes to finish a request it has started (method, URL,
/// credentials, `Accept`): the body, and any header of that call.
pub type Finish<'a, E> =
    &'a dyn Fn(ureq::http::request::Builder) -> Result<Request<SendBody<'static>>, E>;

/// The decision of an [`execute_authenticated`] caller on a 401: called with the credentials
/// used, the reply, and whether the credentials were already renewed once.
pub type OnUnauthorized<'a, C, E> = &'a dyn Fn(&C, Response<Body>, bool) -> Unauthorized<E>;

/// Sends one logical request carrying credentials (a Box access token, an OTMM session or OAuth2
/// token) through [`execute`]: `credentials` is asked before each send, `make` builds the request
/// with them, `send_failure` turns a request that got no reply into the caller's error. A 401 reply
/// goes to `refused` with the credentials used and whether they were already renewed once; it
/// decides between a renewal, handing the reply back and an error. Any other reply is returned.
pub fn execute_authenticated<C, E>(
    context: &HttpContext,
    options: &CallOptions<'_>,
    credentials: &dyn Fn() -> Result<C, E>,
    make: &dyn Fn(&C) -> Result<Request<SendBody<'static>>, E>,
    send_failure: &dyn Fn(SendError<E>) -> E,
    refused: OnUnauthorized<'_, C, E>,
) -> Result<Response<Body>, E> {
    let mut renewed = false;
    loop {
        let current = credentials()?;
        let response = execute(context, options, &mut || make(&current)).map_err(send_failure)?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        match refused(&current, response, renewed) {
            Unauthorized::Renew => renewed = true,
            Unauthorized::Return(response) => return Ok(response),
            Unauthorized::Fail(error) => return Err(error),
        }
    }
}

/// Starts a request builder with the method and URL.
pub fn request(method: http::Method, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

/// Finishes a request without a body.
pub fn empty_body(
    builder: http::request::Builder,
) -> Result<Request<SendBody<'static>>, http::Error> {
    builder.body(SendBody::none())
}

/// Finishes a request with an in-memory body of the given content type (`Content-Length` set).
pub fn bytes_body(
    builder: http::request::Builder,
    content_type: &str,
    data: Vec<u8>,
) -> Result<Request<SendBody<'static>>, http::Error> {
    let length = data.len();
    builder
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, length)
        .body(SendBody::from_owned_reader(io::Cursor::new(data)))
}

/// Finishes a request with a JSON body.
pub fn json_body(
    builder: http::request::Builder,
    value: &serde_json::Value,
) -> Result<Request<SendBody<'static>>, http::Error> {
    bytes_body(builder, "application/json", value.to_string().into_bytes())
}

/// Finishes a request with an `application/x-www-form-urlencoded` body.
pub fn form(
    builder: http::request::Builder,
    pairs: &[(&str, &str)],
) -> Result<Request<SendBody<'static>>, http::Error> {
    bytes_body(
        builder,
        "application/x-www-form-urlencoded",
        form_body(pairs).into_bytes(),
    )
}

/// Reads a (success) body as JSON, at most [`MAX_JSON_BODY_BYTES`]. The error text says what failed.
pub fn read_json<T: serde::de::DeserializeOwned>(
    response: &mut Response<Body>,
) -> Result<T, ReadJsonError> {
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_JSON_BODY_BYTES)
        .read_to_vec()
        .map_err(ReadJsonError::Body)?;
    serde_json::from_slice(&bytes).map_err(ReadJsonError::Json)
}

/// Why [`read_json`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadJsonError {
    /// The body could not be read: cut off, timed out, or larger than [`MAX_JSON_BODY_BYTES`]
    /// ([`transport_class`] of the source tells which).
    #[error("cannot read the response body: {0}")]
    Body(#[source] ureq::Error),
    /// The body is not the JSON expected.
    #[error("unexpected JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Reads an (error) body as text, at most [`MAX_ERROR_BODY_BYTES`], lossily; empty if unreadable.
pub fn read_error_text(response: &mut Response<Body>) -> String {
    let mut buffer = Vec::new();
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(MAX_ERROR_BODY_BYTES)
        .reader();
    if let Err(error) = (&mut reader)
        .take(MAX_ERROR_BODY_BYTES)
        .read_to_end(&mut buffer)
    {
        tracing::debug!(%error, "cannot read error body");
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// A short single-line excerpt of a body for error messages.
pub fn excerpt(text: &str) -> String {
    const LIMIT: usize = 300;
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() > LIMIT {
        let cut: String = flat.chars().take(LIMIT).collect();
        format!("{cut}...")
    } else {
        flat.to_string()
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same directory, synced, renamed over
/// `path`) with mode 0600 on Unix; creates the directory when missing. For the clients' small caches
/// (Box token, OTMM lookup domains): a concurrent reader sees the old or the new file, never half of one.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(directory)?;
    let prefix = format!(
        ".{}-",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    // tempfile creates the file with mode 0600 on Unix; set it again in case of an unusual umask setup.
    let mut temporary = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(directory)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    temporary.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Whether a file is private to its owner (no group/other permission bits; always true off Unix).
pub fn is_private(metadata: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode().trailing_zeros() >= 6
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        true
    }
}

/// Why [`copy_hashing`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// Reading failed after `copied` bytes (for a response body: the transfer broke).
    Read {
        /// The read error.
        error: io::Error,
        /// Bytes read and written before it.
        copied: u64,
    },
    /// Writing failed (a local file).
    Write(io::Error),
}

/// Copies `reader` to `writer` in 128 KiB blocks while hashing: the SHA-1 (lowercase hex) and the
/// length in bytes of what was copied. The one streamed hash of the clients: file hashes
/// ([`sha1_file`]) and downloads streamed to a temporary file.
pub fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn io::Write,
) -> Result<(String, u64), CopyError> {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    let mut buffer = vec![0u8; 128 * 1024];
    let mut copied: u64 = 0;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyError::Read { error, copied }),
        };
        hasher.update(&buffer[..read]);
        writer
            .write_all(&buffer[..read])
            .map_err(CopyError::Write)?;
        copied += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), copied))
}

/// SHA-1 (lowercase hex) and length in bytes of a file, streamed ([`copy_hashing`]).
pub fn sha1_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    copy_hashing(&mut file, &mut io::sink()).map_err(|error| match error {
        CopyError::Read { error, .. } | CopyError::Write(error) => error,
    })
}

/// SHA-1 (lowercase hex) of bytes in memory.
pub fn sha1_bytes(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

/// A `multipart/form-data` body (RFC 7578) whose file parts are streamed from disk.
///
/// Parts are sent in the order they were added. [`Multipart::content_length`] is exact, so the request
/// carries `Content-Length` (not chunked encoding). [`Multipart::reader`] opens the files afresh, so the
/// same value serves every retry. A file that shrinks while being sent fails the request with
/// `UnexpectedEof`; one that grows is cut at its size when added (Box's `Content-MD5` catches both).
///
/// File names in `Content-Disposition` follow RFC 7578 §4.2 and the HTML form encoding
/// (WHATWG HTML, "multipart/form-data encoding algorithm"): the name is sent raw (UTF-8) in
/// `filename="..."`, with `"` as `%22` and CR and LF as `%0D` / `%0A`; `filename*` is not sent
/// (RFC 7578 §4.2: "NOT be used" in `multipart/form-data`).
#[derive(Debug, Clone)]
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Part {
    head: Vec<u8>,
    body: PartBody,
}

#[derive(Debug, Clone)]
enum PartBody {
    Bytes(Vec<u8>),
    File { path: PathBuf, length: u64 },
}

impl PartBody {
    fn length(&self) -> u64 {
        match self {
            PartBody::Bytes(bytes) => bytes.len() as u64,
            PartBody::File { length, .. } => *length,
        }
    }
}

/// Quotes a `Content-Disposition` parameter value: `"` -> `%22`, CR -> `%0D`, LF -> `%0A`.
fn quote_parameter(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for character in value.chars() {
        match character {
            '"' => quoted.push_str("%22"),
            '\r' => quoted.push_str("%0D"),
            '\n' => quoted.push_str("%0A"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// `Content-Disposition` value of a form-data part.
pub fn content_disposition(name: &str, filename: Option<&str>) -> String {
    let mut value = format!("form-data; name={}", quote_parameter(name));
    if let Some(filename) = filename {
        value.push_str("; filename=");
        value.push_str(&quote_parameter(filename));
    }
    value
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    /// An empty body with a random boundary (`content-scaling-` + 32 hex digits).
    pub fn new() -> Self {
        let random: u128 = rand::thread_rng().gen();
        Self::with_boundary(&format!("content-scaling-{random:032x}"))
    }

    /// An empty body with a fixed boundary (tests).
    pub fn with_boundary(boundary: &str) -> Self {
        Self {
            boundary: boundary.to_string(),
            parts: Vec::new(),
        }
    }

    fn push(
        mut self,
        name: &str,
        filename: Option<&str>,
        content_type: Option<&str>,
        body: PartBody,
    ) -> Self {
        let mut head = format!(
            "--{}\r\nContent-Disposition: {}\r\n",
            self.boundary,
            content_disposition(name, filename)
        );
        if let Some(content_type) = content_type {
            head.push_str("Content-Type: ");
            head.push_str(&content_type.replace(['\r', '\n'], " "));
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.parts.push(Part {
            head: head.into_bytes(),
            body,
        });
        self
    }

    /// Adds a plain text field (no content type, as browsers send form fields).
    #[must_use]
    pub fn text(self, name: &str, value: &str) -> Self {
        self.push(name, None, None, PartBody::Bytes(value.as_bytes().to_vec()))
    }

    /// Adds a JSON field with `Content-Type: application/json`.
    #[must_use]
    pub fn json(self, name: &str, value: &serde_json::Value) -> Self {
        self.push(
            name,
            None,
            Some("application/json"),
            PartBody::Bytes(value.to_string().into_bytes()),
        )
    }

    /// Adds in-memory bytes as a file part.
    #[must_use]
    pub fn bytes(self, name: &str, filename: &str, content_type: &str, data: Vec<u8>) -> Self {
        self.push(
            name,
            Some(filename),
            Some(content_type),
            PartBody::Bytes(data),
        )
    }

    /// Adds a file part streamed from `path`; its size is taken now.
    pub fn file(
        self,
        name: &str,
        filename: &str,
        content_type: &str,
        path: &Path,
    ) -> io::Result<Self> {
        let length = std::fs::metadata(path)?.len();
        Ok(self.push(
            name,
            Some(filename),
            Some(content_type),
            PartBody::File {
                path: path.to_path_buf(),
                length,
            },
        ))
    }

    /// `multipart/form-data; boundary=...`
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn epilogue(&self) -> Vec<u8> {
        format!("--{}--\r\n", self.boundary).into_bytes()
    }

    /// Exact body length in bytes.
    pub fn content_length(&self) -> u64 {
        let parts: u64 = self
            .parts
            .iter()
            .map(|part| part.head.len() as u64 + part.body.length() + 2)
            .sum();
        parts + self.epilogue().len() as u64
    }

    /// A reader producing the whole body; opens the files now.
    pub fn reader(&self) -> io::Result<MultipartReader> {
        let mut segments = VecDeque::new();
        for part in &self.parts {
            segments.push_back(Segment::Bytes(io::Cursor::new(part.head.clone())));
            match &part.body {
                PartBody::Bytes(bytes) => {
                    segments.push_back(Segment::Bytes(io::Cursor::new(bytes.clone())));
                }
                PartBody::File { path, length } => {
                    let file = File::open(path)?;
                    segments.push_back(Segment::File {
                        reader: file.take(*length),
                        remaining: *length,
                    });
                }
            }
            segments.push_back(Segment::Bytes(io::Cursor::new(b"\r\n".to_vec())));
        }
        segments.push_back(Segment::Bytes(io::Cursor::new(self.epilogue())));
        Ok(MultipartReader { segments })
    }

    /// The whole body in memory (tests, small bodies).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.reader()?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Finishes a request with this body: `Content-Type` with the boundary, exact `Content-Length`, streamed.
    pub fn into_request(
        &self,
        builder: http::request::Builder,
    ) -> io::Result<Request<SendBody<'static>>> {
        let reader = self.reader()?;
        builder
            .header(http::header::CONTENT_TYPE, self.content_type())
            .header(http::header::CONTENT_LENGTH, self.content_length())
            .body(SendBody::from_owned_reader(reader))
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))
    }
}

/// Reader over a [`Multipart`] body (preamble bytes, files, epilogue in order).
pub struct MultipartReader {
    segments: VecDeque<Segment>,
}

enum Segment {
    Bytes(io::Cursor<Vec<u8>>),
    File {
        reader: io::Take<File>,
        remaining: u64,
    },
}

impl Read for MultipartReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        while let Some(segment) = self.segments.front_mut() {
            let read = match segment {
                Segment::Bytes(cursor) => cursor.read(buffer)?,
                Segment::File { reader, remaining } => {
                    let read = reader.read(buffer)?;
                    if read == 0 && *remaining > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("file shrank while being uploaded ({remaining} bytes missing)"),
                        ));
                    }
                    *remaining -= read as u64;
                    read
                }
            };
            if read > 0 {
                return Ok(read);
            }
            self.segments.pop_front();
        }
        Ok(0)
    }
}

#[cfg(test)]
mod sandbox_tests;

#[cfg(test)]
pub(crate) mod test_server;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-11-10T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_mins(2)));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Tue, 10 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 10 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn http_date_parses() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(date.to_string(), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let policy = RetryPolicy::new(5);
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(
                first >= Duration::from_millis(250) && first <= Duration::from_millis(500),
                "{first:?}"
            );
            let third = policy.backoff(3);
            assert!(
                third >= Duration::from_secs(1) && third <= Duration::from_secs(2),
                "{third:?}"
            );
            assert!(policy.backoff(40) <= RetryPolicy::DEFAULT_MAX_DELAY);
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_hours(2))),
            RetryPolicy::DEFAULT_MAX_RETRY_AFTER
        );
    }

    /// What `run` logs (DEBUG and above), as text.
    fn logs_of(run: impl FnOnce()) -> String {
        use std::io::{Seek as _, SeekFrom};
        let file = Arc::new(tempfile::tempfile().unwrap());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Arc::clone(&file))
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let mut file = &*file;
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn retry_stops_on_stop_and_after_the_last_retry() {
        let mut calls = 0;
        let result: Result<(), &str> = retry(&RetryPolicy::fast(5), "GET /x", |_| {
            calls += 1;
            Err(Attempt::Stop("refused"))
        });
        assert_eq!((result, calls), (Err("refused"), 1));

        let mut seen = Vec::new();
        let result: Result<u32, String> = retry(&RetryPolicy::fast(2), "GET /x", |attempt| {
            seen.push(attempt);
            Err(Attempt::retry(format!("HTTP 503 #{attempt}")))
        });
        assert_eq!(result, Err("HTTP 503 #3".to_string()));
        assert_eq!(seen, [1, 2, 3]);

        let result = retry(&RetryPolicy::fast(2), "GET /x", |attempt| {
            if attempt < 3 {
                Err(Attempt::retry("HTTP 500"))
            } else {
                Ok(attempt)
            }
        });
        assert_eq!(result, Ok(3));
        let result: Result<(), &str> = retry(&RetryPolicy::fast(0), "GET /x", |_| {
            Err(Attempt::retry("HTTP 500"))
        });
        assert_eq!(result, Err("HTTP 500"));
    }

    #[test]
    fn execute_waits_out_retry_after_and_logs_each_retry_with_its_cause() {
        let server = test_server::TestServer::start(|_, earlier| match earlier.len() {
            0 => test_server::Reply::empty(429).header("retry-after", "0.4"),
            1 => test_server::Reply::drop_connection(),
            _ => test_server::Reply::bytes(200, b"ok"),
        });
        let context = HttpContext {
            agent: Agent::new_with_defaults(),
            limit: RateLimit::unlimited(),
            outage: Outage::default(),
            policy: RetryPolicy {
                max_retries: 3,
                base_delay: Duration::from_millis(2),
                max_delay: Duration::from_millis(4),
                max_retry_after: Duration::from_secs(5),
                retryable_statuses: StatusSet::DEFAULT_RETRYABLE,
            },
        };
        let url = format!("{}/2.0/files/1?marker=secret", server.url);
        let label = request_label(&http::Method::GET, &url);
        let options = CallOptions {
            label: &label,
            retry: true,
            timeouts: Timeouts::from_secs(5, 5),
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let started = std::time::Instant::now();
        let mut status = 0;
        let logs = logs_of(|| {
            let mut make = || empty_body(request(http::Method::GET, &url));
            status = execute(&context, &options, &mut make)
                .unwrap()
                .status()
                .as_u16();
        });
        assert_eq!(status, 200);
        assert_eq!(server.requests().len(), 3);
        // The longer of Retry-After (400 ms) and the backoff (a few ms).
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        let retries: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains("transient failure, retrying"))
            .collect();
        assert_eq!(retries.len(), 2, "{logs}");
        assert!(
            retries[0].contains("DEBUG")
                && retries[0].contains("request=\"GET /2.0/files/1\"")
                && retries[0].contains("attempt=1")
                && retries[0].contains("cause=HTTP 429")
                && retries[0].contains("retry_after_ms=400")
                && retries[0].contains("wait_ms=400"),
            "{}",
            retries[0]
        );
        assert!(
            retries[1].contains("attempt=2") && retries[1].contains("cause=transport error ("),
            "{}",
            retries[1]
        );
        assert!(!logs.contains("secret"), "{logs}");
    }

    #[test]
    fn a_host_silent_through_a_whole_retry_cycle_is_not_asked_again() {
        let silent = test_server::TestServer::start(|_, _| test_server::Reply::drop_connection());
        let answering =
            test_server::TestServer::start(|_, _| test_server::Reply::bytes(200, b"ok"));
        let context = HttpContext {
            agent: Agent::new_with_defaults(),
            limit: RateLimit::unlimited(),
            policy: RetryPolicy::fast(2),
            outage: Outage::default(),
        };
        let options = CallOptions {
            label: "GET /x",
            retry: true,
            timeouts: Timeouts::from_secs(5, 5),
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let silent_url = format!("{}/x", silent.url);
        let mut make = || empty_body(request(http::Method::GET, &silent_url));
        let first = execute(&context, &options, &mut make).unwrap_err();
        assert!(matches!(first, SendError::Transport { attempts: 3, .. }));
        assert_eq!(silent.requests().len(), 3, "one retry cycle");
        // A clone (another worker of the pass) shares what was learnt: not sent again.
        let worker = context.clone();
        let SendError::Transport { error, attempts } =
            execute(&worker, &options, &mut make).unwrap_err()
        else {
            panic!("a transport error");
        };
        assert_eq!(attempts, 0);
        assert!(is_retryable_transport(&error), "still an outage: {error}");
        assert!(
            error
                .to_string()
                .contains("GET /x got no reply after 3 attempts"),
            "{error}"
        );
        assert_eq!(silent.requests().len(), 3, "nothing sent");
        // Another host of the same client is asked as usual.
        let answering_url = format!("{}/y", answering.url);
        let mut make = || empty_body(request(http::Method::GET, &answering_url));
        let response = execute(&context, &options, &mut make).unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    #[test]
    fn execute_hands_back_the_last_transient_reply_and_sends_once_without_retry() {
        let server = test_server::TestServer::start(|_, _| test_server::Reply::empty(503));
        let context = HttpContext {
            agent: Agent::new_with_defaults(),
            limit: RateLimit::unlimited(),
            policy: RetryPolicy::fast(2),
            outage: Outage::default(),
        };
        let url = format!("{}/x", server.url);
        let mut options = CallOptions {
            label: "GET /x",
            retry: true,
            timeouts: Timeouts::from_secs(5, 5),
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let mut make = || empty_body(request(http::Method::GET, &url));
        let response = execute(&context, &options, &mut make).unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(server.requests().len(), 3);
        options.retry = false;
        let response = execute(&context, &options, &mut make).unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(server.requests().len(), 4);
    }

    #[test]
    fn retryable_statuses() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status));
        }
        for status in [200, 400, 401, 403, 404, 409, 501] {
            assert!(!is_retryable_status(status));
        }
        let configured = StatusSet::of(&[429, 418, 599, 600, 200]);
        assert!(configured.contains(418) && configured.contains(599) && configured.contains(429));
        assert!(
            !configured.contains(500) && !configured.contains(600) && !configured.contains(200)
        );
        assert_eq!(format!("{configured:?}"), "{418, 429, 599}");
    }

    #[test]
    fn execute_retries_the_configured_statuses_only() {
        let server = test_server::TestServer::start(|_, _| test_server::Reply::empty(503));
        let mut context = HttpContext {
            agent: Agent::new_with_defaults(),
            limit: RateLimit::unlimited(),
            policy: RetryPolicy::fast(2).with_retryable_statuses(&[429, 500]),
            outage: Outage::default(),
        };
        let url = format!("{}/x", server.url);
        let options = CallOptions {
            label: "GET /x",
            retry: true,
            timeouts: Timeouts::from_secs(5, 5),
            redirects: Redirects::Manual,
            retry_reply: None,
        };
        let mut make = || empty_body(request(http::Method::GET, &url));
        let response = execute(&context, &options, &mut make).unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            server.requests().len(),
            1,
            "503 is not in the list: no retry"
        );
        context.policy = RetryPolicy::fast(2).with_retryable_statuses(&[503]);
        execute(&context, &options, &mut make).unwrap();
        assert_eq!(server.requests().len(), 4, "503 in the list: two retries");
    }

    #[test]
    fn labels_drop_host_and_query() {
        assert_eq!(
            request_label(
                &http::Method::GET,
                "https://api.box.com/2.0/folders/1/items?marker=secret"
            ),
            "GET /2.0/folders/1/items"
        );
        assert_eq!(
            request_label(&http::Method::POST, "http://127.0.0.1:9/oauth2/token"),
            "POST /oauth2/token"
        );
        assert_eq!(request_label(&http::Method::GET, "http://host"), "GET /");
        assert_eq!(
            request_label(&http::Method::GET, "https://user:pw@host/a%2Fb?token=x#f"),
            "GET /a%2Fb"
        );
        assert_eq!(
            redacted_origin("https://user:pw@dl.boxcloud.com:8443/d/1/secret/download?t=s"),
            "https://dl.boxcloud.com:8443"
        );
        assert_eq!(redacted_origin("not a url"), "<invalid URL>");
    }

    #[test]
    fn encodings() {
        assert_eq!(
            encode_query_value(r#"{"a":[1]}"#),
            "%7B%22a%22%3A%5B1%5D%7D"
        );
        assert_eq!(encode_path_segment("a/b c-d.e"), "a%2Fb%20c-d.e");
        assert_eq!(
            form_body(&[("user_name", "a b.c"), ("password", "p&=+")]),
            "user_name=a%20b.c&password=p%26%3D%2B"
        );
    }

    #[test]
    fn multipart_body_bytes_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, b"0123456789").unwrap();
        let body = Multipart::with_boundary("XyZ")
            .json(
                "attributes",
                &serde_json::json!({"name": "clip.mp4", "parent": {"id": "0"}}),
            )
            .text("parent_folder_id", "abc")
            .file("file", "clip.mp4", "video/mp4", &path)
            .unwrap();
        let bytes = body.to_bytes().unwrap();
        let expected = concat!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"attributes\"\r\nContent-Type: application/json\r\n\r\n",
            "{\"name\":\"clip.mp4\",\"parent\":{\"id\":\"0\"}}\r\n",
            "--XyZ\r\nContent-Disposition: form-data; name=\"parent_folder_id\"\r\n\r\nabc\r\n",
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n",
            "0123456789\r\n",
            "--XyZ--\r\n"
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(body.content_length(), bytes.len() as u64);
        assert_eq!(body.content_type(), "multipart/form-data; boundary=XyZ");
        // A second reader gives the same bytes (retries).
        assert_eq!(body.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn multipart_detects_a_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 100]).unwrap();
        let body = Multipart::new()
            .file("file", "f.bin", "application/octet-stream", &path)
            .unwrap();
        std::fs::write(&path, vec![7u8; 10]).unwrap();
        let error = body.to_bytes().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn content_disposition_escapes() {
        assert_eq!(
            content_disposition("file", Some("a\"b\r\nc.txt")),
            "form-data; name=\"file\"; filename=\"a%22b%0D%0Ac.txt\""
        );
        assert_eq!(
            content_disposition("file", Some("Café 1.mp4")),
            "form-data; name=\"file\"; filename=\"Café 1.mp4\""
        );
        assert_eq!(content_disposition("x", None), "form-data; name=\"x\"");
    }

    #[test]
    fn sha1_helpers_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let (digest, length) = sha1_file(&path).unwrap();
        assert_eq!(digest, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(length, 3);
        assert_eq!(sha1_bytes(b"abc"), digest);
    }

    #[test]
    fn the_client_bucket_lets_a_burst_through_then_spaces_requests() {
        use governor::clock::FakeRelativeClock;
        let window = RequestWindow {
            per_minute: 600.0,
            burst: 5,
        };
        let clock = FakeRelativeClock::default();
        let client = RateLimiter::direct_with_clock(window.client_quota().unwrap(), clock.clone());
        // Four at once (the burst less the reserve), then none until 100 ms have passed.
        for _ in 0..4 {
            assert!(client.check().is_ok());
        }
        let refused = client.check().unwrap_err();
        assert_eq!(
            refused.wait_time_from(clock.now()),
            Duration::from_millis(100)
        );
        clock.advance(Duration::from_millis(99));
        assert!(client.check().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(client.check().is_ok());
        assert!(client.check().is_err());
        // Steady: one every 100 ms, i.e. 600 per minute.
        let mut sent = 0;
        for _ in 0..600 {
            clock.advance(Duration::from_millis(100));
            if client.check().is_ok() {
                sent += 1;
            }
            assert!(client.check().is_err());
        }
        assert_eq!(sent, 600);
        // After a quiet spell the burst is back.
        clock.advance(Duration::from_secs(10));
        assert_eq!((0..10).filter(|_| client.check().is_ok()).count(), 4);

        // The server keeps the same window: it admits everything the client sends although the
        // requests take 60 ms to arrive except every seventh, which takes none (60 ms of jitter);
        // a client spending the whole burst would draw refusals from that jitter.
        let refused = |client_quota: Quota| {
            let client = RateLimiter::direct_with_clock(client_quota, FakeRelativeClock::default());
            let mut arrivals = Vec::new();
            for millis in 0..20_000u64 {
                while client.check().is_ok() {
                    let delay = if arrivals.len() % 7 == 6 { 0 } else { 60 };
                    arrivals.push(millis + delay);
                }
                client.clock().advance(Duration::from_millis(1));
            }
            arrivals.sort_unstable();
            let server_clock = FakeRelativeClock::default();
            let server =
                RateLimiter::direct_with_clock(window.quota().unwrap(), server_clock.clone());
            let mut now = 0;
            let mut refused = 0;
            for arrival in arrivals {
                server_clock.advance(Duration::from_millis(arrival - now));
                now = arrival;
                refused += usize::from(server.check().is_err());
            }
            refused
        };
        assert_eq!(refused(window.client_quota().unwrap()), 0);
        assert!(refused(window.quota().unwrap()) > 0);

        // Evenly spaced without a burst; no limit without a positive rate.
        let even = RequestWindow::per_second(10.0);
        assert_eq!(
            even,
            RequestWindow {
                per_minute: 600.0,
                burst: 1
            }
        );
        let limiter = RateLimiter::direct_with_clock(
            even.client_quota().unwrap(),
            FakeRelativeClock::default(),
        );
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        assert!(RequestWindow::per_second(0.0).quota().is_none());
        assert!(RequestWindow::per_second(f64::NAN).client_quota().is_none());
        assert!(format!("{:?}", RateLimit::window(window)).contains("limited"));
        RateLimit::per_second(0.0).wait("GET /x");
    }
}
