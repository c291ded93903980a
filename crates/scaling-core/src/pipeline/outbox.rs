//! Delivery of the transactional outbox: emails (Mailgun) and outgoing webhooks.
//!
//! Rows are claimed with a lease (`FOR UPDATE SKIP LOCKED`), so overlapping passes never send
//! the same row at the same time; a row is marked sent after the receiver accepted it, so a
//! crash in between re-sends it with the same idempotency key (at-least-once delivery; the
//! receiver dedupes on the key: exactly once as seen by the receiver).

use super::{backoff_secs, PassReport, Services};
use crate::notify::{render_email, NotifyError};
use crate::store::OutboxRow;

/// Lease on a claimed outbox row, seconds.
const LEASE_SECS: i64 = 120;
/// At most this many deliveries per pass (the rest wait for the next pass).
const MAX_PER_PASS: u32 = 200;
/// Retry delay after a permanent failure (a fixed template or endpoint config will then go out).
const PERMANENT_RETRY_SECS: i64 = 6 * 3600;

/// Delivers due outbox rows, each at most once per call (a row that fails waits for a later
/// pass, whatever its backoff); failures are recorded on the row and retried with backoff.
/// Never fails the pass: a notification problem is reported, not fatal.
pub fn deliver(services: &mut Services, report: &mut PassReport) {
    let mut cursor = 0;
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
        let result = send(services, &row);
        let recorded = match &result {
            Ok(()) => {
                report.notifications_sent += 1;
                tracing::info!(channel = %row.channel, target = %row.target, event = %row.event, key = %row.idempotency_key, "notification sent");
                services.store.mark_notification_sent(row.id)
            }
            Err(error) => {
                report.notifications_failed += 1;
                let retry = match error {
                    NotifyError::Transient(_) => backoff_secs(
                        row.attempts + 1,
                        services.config.retry.backoff_base_secs,
                        services.config.retry.backoff_max_secs,
                    ),
                    _ => PERMANENT_RETRY_SECS,
                };
                tracing::warn!(channel = %row.channel, target = %row.target, key = %row.idempotency_key, %error, retry_in_secs = retry, "notification failed");
                services
                    .store
                    .mark_notification_failed(row.id, &error.to_string(), retry)
            }
        };
        crash_point!("outbox::after_notification");
        if let Err(error) = recorded {
            tracing::warn!(%error, "cannot record notification delivery");
            break;
        }
    }
}

fn send(services: &Services, row: &OutboxRow) -> Result<(), NotifyError> {
    match row.channel.as_str() {
        "email" => {
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
                return Err(NotifyError::Permanent("email has no recipients".into()));
            }
            let email = render_email(&services.config.email_templates, &row.target, &context)?;
            services
                .mailer
                .send(&recipients, &email, &row.idempotency_key)
                .map(|_| ())
        }
        "webhook" => {
            let endpoint = services
                .config
                .webhooks
                .endpoints
                .iter()
                .find(|endpoint| endpoint.name == row.target)
                .ok_or_else(|| {
                    NotifyError::Permanent(format!(
                        "webhook endpoint {:?} is no longer configured",
                        row.target
                    ))
                })?;
            services
                .webhooks
                .send(endpoint, &row.event, &row.payload, &row.idempotency_key)
        }
        other => Err(NotifyError::Permanent(format!(
            "unknown outbox channel {other:?}"
        ))),
    }
}
