//! `incidents`: the open incident of a binary whose passes fail or cannot reach a dependency
//! (migration V7), for the critical alert (once per incident) and its recovery email.

use jiff::Timestamp;
use serde::Serialize;

use super::outbox::insert_notifications;
use super::{NewNotification, Store, StoreError};

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Binary whose passes fail.
    pub binary: String,
    /// `failed` (a pass failed as a whole) or `unreachable` (a dependency could not be reached).
    pub kind: String,
    /// First failing pass of the incident (UTC).
    pub started_at: Timestamp,
    /// Error of the latest failing pass.
    pub last_error: Option<String>,
    /// When the critical alert was queued; `None` while not (yet) due.
    pub alerted_at: Option<Timestamp>,
}

/// Columns [`incident_from_row`] reads.
const INCIDENT_COLUMNS: &str = "binary_name, kind, started_at, last_error, alerted_at";

fn incident_from_row(row: &postgres::Row) -> Incident {
    Incident {
        binary: row.get("binary_name"),
        kind: row.get("kind"),
        started_at: row.get("started_at"),
        last_error: row.get("last_error"),
        alerted_at: row.get("alerted_at"),
    }
}

/// The binaries with an open incident, as a sub-select for the probe statement.
pub(super) const OPEN_INCIDENTS_SQL: &str =
    "SELECT binary_name FROM incidents ORDER BY binary_name";

impl Store {
    /// Records a failing pass of `binary`: opens its incident (started now) or updates it
    /// (`failed` wins over `unreachable`; the latest error is kept). When the incident has no
    /// alert yet and is due (`failed`, or `unreachable` for at least `unreachable_minutes`),
    /// marks it alerted and queues `alert(incident)` in the same transaction, so overlapping
    /// passes queue one alert per incident. Returns the incident and whether this call
    /// alerted.
    ///
    /// # Errors
    /// Database errors.
    pub fn note_incident(
        &mut self,
        binary: &str,
        kind: &str,
        error: &str,
        unreachable_minutes: u64,
        alert: impl FnOnce(&Incident) -> Vec<NewNotification>,
    ) -> Result<(Incident, bool), StoreError> {
        let minutes = i64::try_from(unreachable_minutes).unwrap_or(i64::MAX);
        let mut transaction = self.client.transaction()?;
        let row = transaction.query_one(
            &format!(
                "INSERT INTO incidents (binary_name, kind, last_error) VALUES ($1, $2, $3)
                 ON CONFLICT (binary_name) DO UPDATE SET last_error = EXCLUDED.last_error,
                     kind = CASE WHEN incidents.kind = 'failed' OR EXCLUDED.kind = 'failed'
                                 THEN 'failed' ELSE 'unreachable' END
                 RETURNING {INCIDENT_COLUMNS},
                     (alerted_at IS NULL AND (kind = 'failed'
                      OR started_at <= now() - make_interval(mins => $4::bigint::int))) AS due"
            ),
            &[&binary, &kind, &error, &minutes],
        )?;
        let mut incident = incident_from_row(&row);
        let due: bool = row.get("due");
        if due {
            let alerted = transaction.query_opt(
                "UPDATE incidents SET alerted_at = now() WHERE binary_name = $1 AND alerted_at IS NULL
                 RETURNING alerted_at",
                &[&binary],
            )?;
            if let Some(alerted) = alerted {
                incident.alerted_at = Some(alerted.get(0));
                insert_notifications(&mut transaction, &alert(&incident))?;
                transaction.commit()?;
                return Ok((incident, true));
            }
        }
        transaction.commit()?;
        Ok((incident, false))
    }

    /// Every open incident, oldest first (for `reprocess status`).
    ///
    /// # Errors
    /// Database errors.
    pub fn open_incidents(&mut self) -> Result<Vec<Incident>, StoreError> {
        let rows = self.client.query(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY started_at, binary_name"),
            &[],
        )?;
        Ok(rows.iter().map(incident_from_row).collect())
    }

    /// Closes the open incident of `binary` (a pass succeeded): deletes it and, when it was
    /// alerted, queues `recovered(incident)` in the same transaction. Returns the closed
    /// incident, if there was one.
    ///
    /// # Errors
    /// Database errors.
    pub fn close_incident(
        &mut self,
        binary: &str,
        recovered: impl FnOnce(&Incident) -> Vec<NewNotification>,
    ) -> Result<Option<Incident>, StoreError> {
        let mut transaction = self.client.transaction()?;
        let row = transaction.query_opt(
            &format!("DELETE FROM incidents WHERE binary_name = $1 RETURNING {INCIDENT_COLUMNS}"),
            &[&binary],
        )?;
        let incident = row.as_ref().map(incident_from_row);
        if let Some(incident) = &incident {
            if incident.alerted_at.is_some() {
                insert_notifications(&mut transaction, &recovered(incident))?;
            }
        }
        transaction.commit()?;
        Ok(incident)
    }
}
