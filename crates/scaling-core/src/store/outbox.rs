//! `outbox`: notifications (emails, webhooks) queued in the transaction of the state change they
//! report, delivered by every pass under a lease, each at most once per idempotency key.

use jiff::Timestamp;
use postgres::Row;
use serde::Serialize;
use serde_json::Value;

use super::state::{self, db_enum};
use super::{Store, StoreError};

db_enum! {
    /// `outbox.channel` (the database's CHECK list, `migrations/V1__initial.sql`).
    pub enum NotificationChannel {
        /// An email through Mailgun; `target` names the template.
        Email = "email",
        /// A signed webhook POST; `target` names the endpoint.
        Webhook = "webhook",
    }
}

/// A notification to write into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique key; the receiver dedupes on it. Re-inserting the same key is a no-op.
    pub idempotency_key: String,
    /// How it is delivered.
    pub channel: NotificationChannel,
    /// Email template name, or webhook endpoint name.
    pub target: String,
    /// Event name, e.g. `campaign.a2`.
    pub event: String,
    /// Template context (email) or webhook `data` (webhook).
    pub payload: Value,
}

/// An `outbox` row not delivered yet: claimed for delivery, or listed for an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key (sent to the receiver).
    pub idempotency_key: String,
    /// How it is delivered.
    pub channel: NotificationChannel,
    /// Template or endpoint name.
    pub target: String,
    /// Event name.
    pub event: String,
    /// Payload.
    pub payload: Value,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (UTC).
    pub next_attempt_at: Timestamp,
    /// When the notification was queued (UTC).
    pub created_at: Timestamp,
    /// A pass is delivering it right now (live lease, database clock); true after a claim.
    pub leased: bool,
    /// When the row was claimed before, its earlier delivery's outcome is unknown (timeout,
    /// dropped connection, 5xx, or the pass died in flight): Unix seconds of the first such
    /// attempt. `None` when every earlier attempt is known not to have been accepted (or there
    /// was none). Emails ask Mailgun's events API before re-sending such a row. For a claimed row,
    /// the mark as it was before the claim (the claim itself sets it).
    pub outcome_unknown_since: Option<i64>,
}

/// The columns [`outbox_from_row`] reads besides `outcome_unknown_since` (whose meaning depends
/// on the query).
const OUTBOX_COLUMNS: &str = "outbox.id, outbox.idempotency_key, outbox.channel, outbox.target, \
    outbox.event, outbox.payload, outbox.attempts, outbox.last_error, outbox.next_attempt_at, \
    outbox.created_at, COALESCE(outbox.lease_expires_at > now(), false) AS leased";

fn outbox_from_row(row: &Row) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: row.get("id"),
        idempotency_key: row.get("idempotency_key"),
        channel: state::read(row, "outbox", "channel")?,
        target: row.get("target"),
        event: row.get("event"),
        payload: row.get("payload"),
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        next_attempt_at: row.get("next_attempt_at"),
        created_at: row.get("created_at"),
        leased: row.get("leased"),
        outcome_unknown_since: row.get("outcome_unknown_since"),
    })
}

/// Notifications due for delivery that no live pass holds.
pub(super) const DUE_NOTIFICATIONS_WHERE: &str = "sent_at IS NULL AND next_attempt_at <= now()
    AND (lease_expires_at IS NULL OR lease_expires_at < now())";

impl Store {
    /// Queues notifications in their own transaction (keys already present are skipped).
    ///
    /// # Errors
    /// Database errors.
    pub fn enqueue(&mut self, notifications: &[NewNotification]) -> Result<(), StoreError> {
        let mut transaction = self.client.transaction()?;
        insert_notifications(&mut transaction, notifications)?;
        transaction.commit()?;
        Ok(())
    }

    /// Claims the next due, unsent outbox row with an id above `after_id` for `owner` for
    /// `lease_secs` seconds (the cursor lets one delivery round try each row at most once).
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn claim_notification(
        &mut self,
        owner: &str,
        lease_secs: i64,
        after_id: i64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        // The claim marks the delivery "outcome unknown" before any request leaves (a pass killed
        // in flight leaves it so) and returns the mark as it was before this claim.
        let row = self.client.query_opt(
            &format!("UPDATE outbox SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::bigint::float8),
                    outcome_unknown_since = COALESCE(outbox.outcome_unknown_since, now())
             FROM (SELECT id, outcome_unknown_since AS previous FROM outbox
                   WHERE {DUE_NOTIFICATIONS_WHERE} AND id > $3
                   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AS due
             WHERE outbox.id = due.id
             RETURNING {OUTBOX_COLUMNS},
                       floor(extract(epoch FROM due.previous))::bigint AS outcome_unknown_since"),
            &[&owner, &lease_secs, &after_id],
        )?;
        row.as_ref().map(outbox_from_row).transpose()
    }

    /// Marks an outbox row delivered.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_sent(&mut self, id: i64) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL, lease_owner = NULL,
                    lease_expires_at = NULL WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    /// Records a failed delivery that the receiver did not accept (it refused the request, or
    /// the request never left): the row becomes due again after `retry_after_secs` and loses its
    /// "outcome unknown" mark. `error` is stored as given: the caller redacts it
    /// (`notify::outbox_error_text`).
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.record_notification_failure(id, error, retry_after_secs, false)
    }

    /// Records a failed delivery whose request may still have been accepted (timeout, dropped
    /// connection, 5xx): like [`Store::mark_notification_failed`], but the row keeps the
    /// "outcome unknown" mark its claim set, so the next delivery checks before re-sending.
    ///
    /// # Errors
    /// Database errors.
    pub fn mark_notification_unknown(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.record_notification_failure(id, error, retry_after_secs, true)
    }

    fn record_notification_failure(
        &mut self,
        id: i64,
        error: &str,
        retry_after_secs: i64,
        outcome_unknown: bool,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, lease_owner = NULL, lease_expires_at = NULL,
                    next_attempt_at = now() + make_interval(secs => $3::bigint::float8),
                    outcome_unknown_since = CASE WHEN $4 THEN outcome_unknown_since END
              WHERE id = $1",
            &[&id, &error, &retry_after_secs, &outcome_unknown],
        )?;
        Ok(())
    }

    /// Puts a claimed row back without counting an attempt: due again after `retry_after_secs`,
    /// its "outcome unknown" mark kept (an email waiting for Mailgun's events to settle).
    ///
    /// # Errors
    /// Database errors.
    pub fn defer_notification(
        &mut self,
        id: i64,
        note: &str,
        retry_after_secs: i64,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE outbox SET last_error = $2, lease_owner = NULL, lease_expires_at = NULL,
                    next_attempt_at = now() + make_interval(secs => $3::bigint::float8)
              WHERE id = $1",
            &[&id, &note, &retry_after_secs],
        )?;
        Ok(())
    }

    // ----- operators -----

    /// Notifications not delivered yet, oldest first.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn pending_notifications(&mut self) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT {OUTBOX_COLUMNS},
                        floor(extract(epoch FROM outbox.outcome_unknown_since))::bigint AS outcome_unknown_since
                 FROM outbox WHERE sent_at IS NULL ORDER BY id"
            ),
            &[],
        )?;
        rows.iter().map(outbox_from_row).collect()
    }

    /// Makes every undelivered notification that waits for a retry due now (rows a pass is
    /// delivering are left to it). Returns how many were rescheduled.
    ///
    /// # Errors
    /// Database errors.
    pub fn make_notifications_due(&mut self) -> Result<u64, StoreError> {
        Ok(self.client.execute(
            "UPDATE outbox SET next_attempt_at = now()
             WHERE sent_at IS NULL AND next_attempt_at > now()
               AND (lease_expires_at IS NULL OR lease_expires_at < now())",
            &[],
        )?)
    }
}

/// Notifications this process has written to the outbox (see [`queued_by_this_process`]).
static QUEUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many notifications this process has written to the outbox so far, on any connection
/// (a transaction that was rolled back included: the count may be higher, never lower). A pass
/// whose count did not change and whose probe found nothing due has nothing to deliver.
pub fn queued_by_this_process() -> u64 {
    QUEUED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Inserts `notifications` into the outbox inside `transaction` (keys already present are
/// skipped).
pub(super) fn insert_notifications(
    transaction: &mut postgres::Transaction<'_>,
    notifications: &[NewNotification],
) -> Result<(), StoreError> {
    let count = u64::try_from(notifications.len()).unwrap_or(u64::MAX);
    QUEUED.fetch_add(count, std::sync::atomic::Ordering::SeqCst);
    for notification in notifications {
        transaction.execute(
            "INSERT INTO outbox (idempotency_key, channel, target, event, payload) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (idempotency_key) DO NOTHING",
            &[
                &notification.idempotency_key,
                &notification.channel.as_str(),
                &notification.target,
                &notification.event,
                &notification.payload,
            ],
        )?;
    }
    Ok(())
}
