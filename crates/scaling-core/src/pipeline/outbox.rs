//! Delivery of the transactional outbox: emails (Mailgun) and outgoing webhooks.
//!
//! Rows are claimed with a lease (`FOR UPDATE SKIP LOCKED`), so overlapping passes never send
//! the same row at the same time; a row is marked sent after the receiver accepted it, so a
//! crash in between re-sends it with the same idempotency key (at-least-once delivery).
//! Webhook receivers dedupe on the key. Mailgun does not: the claim marks the row "outcome
//! unknown" before the request leaves, a reply that leaves the outcome open (timeout, dropped
//! connection, 5xx) keeps the mark, and before re-sending a marked email the delivery asks
//! Mailgun's events API whether its Message-Id was accepted (`email.confirm_with_events`); if so
//! the row is marked sent without a second copy (README "Exactly once").

use super::{backoff_secs, PassReport, Services};
use crate::notify::{outbox_error_text, redact_credentials, render_email, NotifyError};
use crate::store::{NotificationChannel, OutboxRow};

/// Lease on a claimed outbox row, seconds.
const LEASE_SECS: i64 = 120;
/// At most this many deliveries per pass (the rest wait for the next pass).
const MAX_PER_PASS: u32 = 200;
/// Retry delay after a permanent failure (a fixed template or endpoint config will then go out).
const PERMANENT_RETRY_SECS: i64 = 6 * 3600;

/// What one delivery came to.
enum Delivery {
    /// The receiver accepted it now.
    Sent,
    /// An earlier attempt had an unknown outcome and Mailgun's events show it was accepted:
    /// nothing was sent again.
    AlreadyAccepted,
    /// An earlier attempt had an unknown outcome, Mailgun shows no accepted event yet and its
    /// events may still be on their way: wait `retry_in_secs` without sending.
    Waiting { note: String, retry_in_secs: i64 },
    /// Failed (the row keeps or drops its "outcome unknown" mark as the error says).
    Failed(NotifyError),
}

/// Delivers due outbox rows, each at most once per call (a row that fails waits for a later
/// pass, whatever its backoff); failures are recorded on the row and retried with backoff.
/// Never fails the pass: a notification problem is reported, not fatal.
pub fn deliver(services: &mut Services, report: &mut PassReport) {
    let mut cursor = 0;
    // Every credential form the senders could see echoed back, for the redaction of stored
    // and logged error text.
    let mut secret_forms = services.mailer.secret_forms();
    for endpoint in &services.config.webhooks.endpoints {
        secret_forms.extend(endpoint.secrets().into_iter().map(str::to_string));
    }
    let secrets: Vec<&str> = secret_forms.iter().map(String::as_str).collect();
    for _ in 0..MAX_PER_PASS {
        let row = match services
            .store
            .claim_notification(&services.owner, LEASE_SECS, cursor)
        {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox; notifications wait for the next pass");
                break;
            }
        };
        cursor = row.id;
        let recorded = match deliver_one(services, &row) {
            Delivery::Sent => {
                report.notifications_sent += 1;
                tracing::info!(channel = %row.channel, target = %row.target, event = %row.event, key = %row.idempotency_key, "notification sent");
                services.store.mark_notification_sent(row.id)
            }
            Delivery::AlreadyAccepted => {
                report.notifications_sent += 1;
                tracing::info!(channel = %row.channel, target = %row.target, event = %row.event, key = %row.idempotency_key,
                    "notification already accepted by Mailgun on an earlier attempt whose reply was lost: not sent again");
                services.store.mark_notification_sent(row.id)
            }
            Delivery::Waiting {
                note,
                retry_in_secs,
            } => {
                let note = redact_credentials(&note, &secrets);
                tracing::info!(channel = %row.channel, target = %row.target, key = %row.idempotency_key, retry_in_secs, "{note}");
                services
                    .store
                    .defer_notification(row.id, &note, retry_in_secs)
            }
            Delivery::Failed(error) => {
                report.notifications_failed += 1;
                let retry = if error.is_transient() {
                    backoff_secs(
                        row.attempts + 1,
                        services.config.retry.backoff_base_secs,
                        services.config.retry.backoff_max_secs,
                    )
                } else {
                    PERMANENT_RETRY_SECS
                };
                // The one place a delivery error becomes text (stored and logged): redacted.
                let text = outbox_error_text(&error, &secrets);
                tracing::warn!(channel = %row.channel, target = %row.target, key = %row.idempotency_key, error = %text, retry_in_secs = retry, "notification failed");
                // Once an attempt's outcome is unknown it stays so until the row is sent: a
                // later refusal says nothing about the earlier request.
                if error.outcome_unknown() || row.outcome_unknown_since.is_some() {
                    services
                        .store
                        .mark_notification_unknown(row.id, &text, retry)
                } else {
                    services
                        .store
                        .mark_notification_failed(row.id, &text, retry)
                }
            }
        };
        crash_point!("outbox::after_notification");
        if let Err(error) = recorded {
            tracing::warn!(%error, "cannot record notification delivery");
            break;
        }
    }
}

/// Delivers `row`, first checking Mailgun's events for an email whose earlier attempt has an
/// unknown outcome.
fn deliver_one(services: &Services, row: &OutboxRow) -> Delivery {
    let email = &services.config.email;
    if let (Some(since), NotificationChannel::Email, true) = (
        row.outcome_unknown_since,
        row.channel,
        email.confirm_with_events,
    ) {
        let message_id = services.mailer.message_id(&row.idempotency_key);
        let age = jiff::Timestamp::now().as_second() - since;
        let settle = i64::try_from(email.events_settle_secs).unwrap_or(i64::MAX);
        let lookup = services.mailer.accepted(&message_id, since);
        if let Ok(true) = lookup {
            return Delivery::AlreadyAccepted;
        }
        let why = match &lookup {
            Ok(_) => "Mailgun shows no accepted event for it yet".to_string(),
            // The look-up failed (events API down, or a sending-only key without events
            // access). Already redacted by the mailer.
            Err(error) => format!("Mailgun's events cannot be read ({error})"),
        };
        if age < settle {
            return Delivery::Waiting {
                note: format!(
                    "an earlier send of {message_id} has an unknown outcome and {why}; \
                     it is sent again only after email.events_settle_secs ({settle} s) without an accepted event"
                ),
                retry_in_secs: (settle - age).max(1),
            };
        }
        // At-least-once wins: the email goes out again with the same Message-Id.
        tracing::warn!(key = %row.idempotency_key, %message_id, "an earlier send has an unknown outcome and {why}: sending again (if it was accepted after all, the reader sees two copies with one Message-Id)");
    }
    match send(services, row) {
        Ok(()) => Delivery::Sent,
        Err(error) => Delivery::Failed(error),
    }
}

fn send(services: &Services, row: &OutboxRow) -> Result<(), NotifyError> {
    match row.channel {
        NotificationChannel::Email => {
            let context = row.payload.get("context").cloned().unwrap_or_default();
            let recipients: Vec<String> = row
                .payload
                .get("to")
                .and_then(|to| to.as_array())
                .map(|to| {
                    to.iter()
                        .filter_map(|address| address.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if recipients.is_empty() {
                return Err(NotifyError::Unsendable("email has no recipients".into()));
            }
            let email = render_email(&services.config.email_templates, &row.target, &context)?;
            services
                .mailer
                .send(&recipients, &email, &row.idempotency_key)
                .map(|_| ())
        }
        NotificationChannel::Webhook => {
            let endpoint = services
                .config
                .webhooks
                .endpoints
                .iter()
                .find(|endpoint| endpoint.name == row.target)
                .ok_or_else(|| {
                    NotifyError::Unsendable(format!(
                        "webhook endpoint {:?} is no longer configured",
                        row.target
                    ))
                })?;
            services
                .webhooks
                .send(endpoint, &row.event, &row.payload, &row.idempotency_key)
        }
    }
}
