//! Fault injection, controlled at run time through `POST /_sandbox/faults`.
//!
//! A [`FaultRule`] matches requests by method and path prefix (on the main port: Box API `/2.0/`,
//! uploads `/api/2.0/`, token `/oauth2/token`, OTMM `/otmmapi/`, Mailgun `/v3/`, webhook receivers
//! `/_sandbox/webhooks/`; on the download port: `/d/`; `/` matches everything but the control
//! API) and fires either `count` times, with a `probability` per matching request, or both
//! (each matching request fires with the probability until the count is used up); with neither
//! it fires on every matching request. Rules are tried in order; the first that fires decides.
//!
//! Kinds ([`FaultKind`]):
//! - `status`: reply `status` (429, 500, 502, 503, 504, ... or any 1xx-5xx) with the emulated
//!   API's error shape (Box `ClientError`, OAuth2 error, OTMM `exception_body`, Mailgun message)
//!   and `Retry-After: retry_after` when given (429 and 202 default to 1 second, as Box always
//!   sends it there). The request body is read and discarded first, so the client sees the reply
//!   rather than a reset while it is still sending.
//! - `not_ready`: 202 with an empty body and `Retry-After` (default 1): Box's "download not ready
//!   yet" (`GET /2.0/files/{id}/content`); `status: 202` means the same.
//! - `drop`: the connection is closed (TCP reset) without any response.
//! - `delay`: the request is handled normally after `delay_ms` milliseconds.
//! - `truncate`: the response is sent normally but the connection is cut after `truncate_after`
//!   body bytes (default 0), with the full `Content-Length` announced: for download bodies.
//!
//! `after: true` (kinds `status`, `not_ready`, `drop`) lets the request take effect first and then
//! replaces the reply: "a 503 write may still have happened", "a part stored despite a 500", "the
//! upload landed but the reply was lost". With kind `delay`, `after: true` handles the request
//! first and then holds its reply for `delay_ms` ("the write took effect, the reply is late": a
//! client killed meanwhile never learns it). A `drop` rule with `delay_ms` holds the request that
//! long before closing the connection (without `after`, the request never takes effect: "the
//! request never reached the server, and the client waited").
//!
//! Probabilities are drawn from one [`StdRng`] seeded with `seed` (`POST /_sandbox/faults
//! {"seed":42}` or `sandbox serve --fault-seed 42`; otherwise a random seed, reported by `GET
//! /_sandbox/faults`): the same sequence of requests gets the same faults. Only rules with a
//! `probability` draw numbers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Reply with an error status in the API's error shape.
    Status,
    /// 202 + `Retry-After`, empty body (download not ready).
    NotReady,
    /// Close the connection without a reply.
    Drop,
    /// Handle the request after a delay.
    Delay,
    /// Cut the response body after some bytes.
    Truncate,
}

impl FaultKind {
    /// The snake_case name (`status`, `not_ready`, `drop`, `delay`, `truncate`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::NotReady => "not_ready",
            Self::Drop => "drop",
            Self::Delay => "delay",
            Self::Truncate => "truncate",
        }
    }
}

/// One fault rule, as posted to and listed by `/_sandbox/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Assigned by the sandbox (used by `DELETE /_sandbox/faults/{id}`); ignored on input.
    #[serde(default)]
    pub id: u64,
    /// HTTP method to match (case-insensitive); absent matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match (path without the query string); default `/`.
    #[serde(default = "root_prefix")]
    pub path_prefix: String,
    /// What to do; default `status` when `status` is given.
    #[serde(default)]
    pub kind: Option<FaultKind>,
    /// Status of a `status` fault.
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds sent with a `status` or `not_ready` fault.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay of a `delay` fault (or hold before a `drop`), in milliseconds.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Body bytes sent before a `truncate` fault cuts the connection.
    #[serde(default)]
    pub truncate_after: Option<u64>,
    /// How many more times the rule fires; absent = no limit. Reaching 0 removes the rule.
    #[serde(default)]
    pub count: Option<u64>,
    /// Chance (0..=1) that a matching request gets the fault; absent = always.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Let the request take effect, then replace its reply (`status`, `not_ready`, `drop`), or
    /// hold it (`delay`).
    #[serde(default)]
    pub after: bool,
    /// Faults injected so far by this rule (output only).
    #[serde(default)]
    pub hits: u64,
}

fn root_prefix() -> String {
    "/".to_owned()
}

/// Longest accepted `delay_ms` (10 minutes).
const MAX_DELAY_MS: u64 = 600_000;

impl FaultRule {
    /// Checks the rule and fills defaults (kind from `status`, `Retry-After` for 429 / 202,
    /// upper-case method); `Err` says what is wrong.
    pub fn normalize(mut self) -> Result<Self, String> {
        if !self.path_prefix.starts_with('/') {
            return Err("path_prefix must start with '/'".to_owned());
        }
        self.method = self.method.map(|m| m.trim().to_uppercase());
        let kind = match (self.kind, self.status) {
            (Some(kind), _) => kind,
            (None, Some(202)) => FaultKind::NotReady,
            (None, Some(_)) => FaultKind::Status,
            (None, None) => return Err(
                "a rule needs \"kind\" (status, not_ready, drop, delay, truncate) or \"status\""
                    .to_owned(),
            ),
        };
        self.kind = Some(kind);
        match kind {
            FaultKind::Status => {
                let Some(status) = self.status else {
                    return Err("kind \"status\" needs \"status\"".to_owned());
                };
                if !(100..=599).contains(&status) {
                    return Err("status must be an HTTP status code (100-599)".to_owned());
                }
                if status == 202 {
                    self.kind = Some(FaultKind::NotReady);
                }
                if (status == 429 || status == 202) && self.retry_after.is_none() {
                    self.retry_after = Some(1);
                }
            }
            FaultKind::NotReady => {
                self.status = Some(202);
                if self.retry_after.is_none() {
                    self.retry_after = Some(1);
                }
            }
            FaultKind::Drop => {}
            FaultKind::Delay => match self.delay_ms {
                None => return Err("kind \"delay\" needs \"delay_ms\"".to_owned()),
                Some(ms) if ms > MAX_DELAY_MS => {
                    return Err(format!("delay_ms must be at most {MAX_DELAY_MS}"))
                }
                Some(_) => {}
            },
            FaultKind::Truncate => {
                if self.truncate_after.is_none() {
                    self.truncate_after = Some(0);
                }
            }
        }
        if self.after && kind == FaultKind::Truncate {
            return Err("\"after\" applies to kinds status, not_ready, drop and delay".to_owned());
        }
        if self.delay_ms.is_some_and(|ms| ms > MAX_DELAY_MS) {
            return Err(format!("delay_ms must be at most {MAX_DELAY_MS}"));
        }
        if self.count == Some(0) {
            return Err("count must be at least 1 (or absent for no limit)".to_owned());
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Err("probability must be between 0 and 1".to_owned());
            }
        }
        self.hits = 0;
        Ok(self)
    }

    /// The rule's kind (rules are normalized when added, so this is always set).
    pub fn kind(&self) -> FaultKind {
        self.kind.unwrap_or(FaultKind::Status)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// The fault rules, the seeded generator and counters.
#[derive(Debug)]
pub struct FaultState {
    /// Rules in matching order.
    pub rules: Vec<FaultRule>,
    /// Seed of [`Self::rng`] (reported by `GET /_sandbox/faults`).
    pub seed: u64,
    rng: StdRng,
    next_id: u64,
}

impl Default for FaultState {
    fn default() -> Self {
        Self::with_seed(rand::random())
    }
}

impl FaultState {
    /// No rules, generator seeded with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            seed,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
        }
    }

    /// Restarts the generator from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Appends a normalized rule and returns its ID.
    pub fn add(&mut self, mut rule: FaultRule) -> u64 {
        rule.id = self.next_id;
        self.next_id += 1;
        let id = rule.id;
        self.rules.push(rule);
        id
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let cleared = self.rules.len();
        self.rules.clear();
        cleared
    }

    /// Removes one rule by ID; `false` if unknown.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|rule| rule.id != id);
        self.rules.len() != before
    }

    /// The fault for this request, if a rule fires (counting it and consuming its count).
    pub fn pick(&mut self, method: &str, path: &str) -> Option<FaultRule> {
        let mut fired = None;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            if !rule.matches(method, path) {
                continue;
            }
            if let Some(p) = rule.probability {
                let roll: f64 = self.rng.gen();
                if roll >= p {
                    continue;
                }
            }
            rule.hits += 1;
            if let Some(count) = rule.count.as_mut() {
                *count = count.saturating_sub(1);
            }
            fired = Some((index, rule.clone()));
            break;
        }
        let (index, rule) = fired?;
        if rule.count == Some(0) {
            self.rules.remove(index);
        }
        Some(rule)
    }
}

/// A parsed `POST /_sandbox/faults` body.
#[derive(Debug)]
pub struct FaultRequest {
    /// New seed (restarts the generator).
    pub seed: Option<u64>,
    /// Rules to add (normalized).
    pub rules: Vec<FaultRule>,
    /// Remove existing rules first.
    pub replace: bool,
}

/// Parses a `POST /_sandbox/faults` body: one rule object (`{"method","path_prefix","status",
/// "count",...}`), or `{"seed"?, "replace"?, "rules"?: [rule, ...]}`.
pub fn parse_request(body: &[u8]) -> Result<FaultRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("expected a JSON object".to_owned());
    };
    let is_batch = object.contains_key("rules")
        || ((object.contains_key("seed") || object.contains_key("replace"))
            && !object.contains_key("path_prefix")
            && !object.contains_key("kind")
            && !object.contains_key("status"));
    if !is_batch {
        let rule: FaultRule = serde_json::from_value(Value::Object(object))
            .map_err(|e| format!("invalid rule: {e}"))?;
        return Ok(FaultRequest {
            seed: None,
            rules: vec![rule.normalize()?],
            replace: false,
        });
    }
    let mut seed = None;
    let mut replace = false;
    let mut rules = Vec::new();
    for (key, value) in object {
        match key.as_str() {
            "seed" => {
                seed = Some(
                    value
                        .as_u64()
                        .ok_or_else(|| "seed must be a non-negative integer".to_owned())?,
                );
            }
            "replace" => {
                replace = value
                    .as_bool()
                    .ok_or_else(|| "replace must be true or false".to_owned())?;
            }
            "rules" => {
                let list: Vec<FaultRule> =
                    serde_json::from_value(value).map_err(|e| format!("invalid rules: {e}"))?;
                for (index, rule) in list.into_iter().enumerate() {
                    rules.push(
                        rule.normalize()
                            .map_err(|e| format!("rules[{index}]: {e}"))?,
                    );
                }
            }
            other => {
                return Err(format!(
                    "unknown key {other:?} (expected seed, replace, rules)"
                ))
            }
        }
    }
    Ok(FaultRequest {
        seed,
        rules,
        replace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        match parse_request(json.as_bytes()) {
            Ok(mut request) if request.rules.len() == 1 => request.rules.remove(0),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn legacy_rule_shape_is_a_status_fault() {
        let r = rule(r#"{"method":"get","path_prefix":"/2.0/","status":503,"count":2}"#);
        assert_eq!(r.kind(), FaultKind::Status);
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.retry_after, None);
        let r = rule(r#"{"path_prefix":"/2.0/","status":429}"#);
        assert_eq!(r.retry_after, Some(1));
        let r = rule(r#"{"path_prefix":"/2.0/files/","status":202}"#);
        assert_eq!(r.kind(), FaultKind::NotReady);
    }

    #[test]
    fn invalid_rules_are_refused() {
        for body in [
            r#"{"path_prefix":"2.0"}"#,
            r#"{"path_prefix":"/","kind":"delay"}"#,
            r#"{"path_prefix":"/","kind":"status"}"#,
            r#"{"path_prefix":"/","status":500,"probability":1.5}"#,
            r#"{"path_prefix":"/","status":500,"count":0}"#,
            r#"{"path_prefix":"/","kind":"truncate","after":true}"#,
            r#"{"path_prefix":"/","status":500,"colour":"red"}"#,
            r#"{"seed":-1}"#,
        ] {
            assert!(parse_request(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn held_replies_and_held_drops() {
        let r =
            rule(r#"{"path_prefix":"/2.0/files/1","kind":"delay","delay_ms":500,"after":true}"#);
        assert_eq!(
            (r.kind(), r.after, r.delay_ms),
            (FaultKind::Delay, true, Some(500))
        );
        let r = rule(r#"{"path_prefix":"/otmmapi/v6/assets","kind":"drop","delay_ms":500}"#);
        assert_eq!(
            (r.kind(), r.after, r.delay_ms),
            (FaultKind::Drop, false, Some(500))
        );
        assert!(parse_request(br#"{"path_prefix":"/","kind":"drop","delay_ms":600001}"#).is_err());
    }

    #[test]
    fn count_and_order() {
        let mut state = FaultState::with_seed(1);
        state.add(rule(
            r#"{"method":"GET","path_prefix":"/2.0/folders","status":500,"count":2}"#,
        ));
        state.add(rule(r#"{"path_prefix":"/2.0/","kind":"drop"}"#));
        let first = state.pick("GET", "/2.0/folders/1/items");
        assert_eq!(first.map(|r| r.status), Some(Some(500)));
        assert!(state.pick("GET", "/2.0/folders/1/items").is_some());
        assert_eq!(state.rules.len(), 1, "the count-limited rule is used up");
        let next = state.pick("GET", "/2.0/folders/1/items");
        assert_eq!(next.map(|r| r.kind()), Some(FaultKind::Drop));
        assert!(state.pick("GET", "/otmmapi/v6/assets").is_none());
    }

    #[test]
    fn probabilities_are_deterministic_with_a_seed() {
        let run = |seed| {
            let mut state = FaultState::with_seed(seed);
            state.add(rule(
                r#"{"path_prefix":"/","status":500,"probability":0.3}"#,
            ));
            (0..200)
                .map(|_| state.pick("GET", "/2.0/files/1").is_some())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let fired = a.iter().filter(|f| **f).count();
        assert!((30..=90).contains(&fired), "{fired} of 200 at p=0.3");
    }
}
