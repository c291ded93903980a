//! Critical alerts (the plan's `notifier.send_critical_error`): one email to
//! `notifications.recipients.critical` (else the error recipients) when a pass of a binary
//! fails as a whole (exit 1 or 2), or when its passes have not reached a dependency (exit 75)
//! for `critical_after_minutes` in a row; one "recovered" email when a pass of that binary
//! succeeds again. Both go through the outbox, queued in the transaction that opens or closes
//! the incident (`incidents`, migration V7), so each incident is told once whatever the number
//! of failing passes, and overlapping passes never tell it twice.
//!
//! An idle successful pass pays nothing: the probe statement at the start of the pass already
//! lists the binaries with an open incident.

use super::{PassError, Services};
use crate::entry::Exit;
use crate::notify_plan::{self, IncidentFacts};
use crate::store::{Incident, NewNotification, NotificationChannel};

/// Records the outcome of a pass of `binary` for the critical alerts (best effort: a database
/// error is logged, never fails the pass). `open_incident`: the probe found an open incident of
/// this binary (or was not asked).
pub(crate) fn record_outcome(
    services: &mut Services,
    binary: &str,
    result: &Result<(), PassError>,
    open_incident: bool,
) {
    let config = &services.config;
    let host = services.host.as_str();
    let recorded = match result {
        Ok(()) if !open_incident => return,
        Ok(()) => services
            .store
            .close_incident(binary, |incident| {
                alert_email(
                    &config.email,
                    "critical_recovered",
                    "recovered",
                    &facts_of(host, &config.environment, incident),
                )
            })
            .map(|closed| {
                if let Some(incident) = closed {
                    tracing::info!(binary, kind = %incident.kind, since = %incident.started_at, "incident closed: a pass succeeded again");
                }
            }),
        Err(error) => {
            let kind = if error.exit() == Exit::Unavailable {
                "unreachable"
            } else {
                "failed"
            };
            let text = error.to_string();
            services
                .store
                .note_incident(
                    binary,
                    kind,
                    &text,
                    config.email.critical_after_minutes,
                    |incident| {
                        alert_email(
                            &config.email,
                            "critical_error",
                            "critical",
                            &facts_of(host, &config.environment, incident),
                        )
                    },
                )
                .map(|(incident, alerted)| {
                    if alerted {
                        tracing::error!(binary, kind = %incident.kind, since = %incident.started_at, "critical alert queued");
                    }
                })
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, "could not record the pass outcome for critical alerts");
    }
}

/// The facts an alert email gives about `incident`.
fn facts_of(host: &str, environment: &str, incident: &Incident) -> serde_json::Value {
    let since = incident.started_at.to_string();
    notify_plan::incident(&IncidentFacts {
        binary: &incident.binary,
        host,
        environment,
        kind: &incident.kind,
        error: incident.last_error.as_deref().unwrap_or_default(),
        since: &since,
    })
}

/// The alert email with template `template` to the critical recipients (else the error
/// recipients), keyed per incident (`incident:{binary}:{start}:{suffix}`); none when email is
/// off or nobody would receive it.
fn alert_email(
    email: &crate::config::EmailConfig,
    template: &str,
    suffix: &str,
    context: &serde_json::Value,
) -> Vec<NewNotification> {
    let recipients = if email.critical_recipients.is_empty() {
        &email.error_recipients
    } else {
        &email.critical_recipients
    };
    if !email.enabled || recipients.is_empty() {
        return Vec::new();
    }
    let binary = context["binary"].as_str().unwrap_or_default();
    let since = context["since"].as_str().unwrap_or_default();
    vec![NewNotification {
        idempotency_key: format!("incident:{binary}:{since}:{suffix}"),
        channel: NotificationChannel::Email,
        target: template.to_string(),
        event: format!("incident.{suffix}"),
        payload: serde_json::json!({ "to": recipients, "context": context }),
    }]
}
