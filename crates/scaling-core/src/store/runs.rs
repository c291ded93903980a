//! `runs`: one row per pass of a binary, with its outcome, counts and error.

use postgres::types::Type;
use serde_json::Value;

use jiff::Timestamp;
use serde::Serialize;

use super::state::{self, db_enum};
use super::{Store, StoreError};

db_enum! {
    /// `runs.outcome` of a finished pass (NULL while it runs, or when it was killed).
    pub enum RunOutcome {
        /// The pass did its work.
        Completed = "completed",
        /// Another pass held the lock (written by earlier versions; kept readable).
        LockHeld = "lock_held",
        /// The pass failed.
        Failed = "failed",
        /// A dependency (Box, the DAM, the database) could not be reached; retried by the next.
        DependencyUnreachable = "dependency_unreachable",
    }
}

/// The passes of one binary, from `runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinaryRuns {
    /// Binary name (`a1-to-a2`, `box-poll`, `cleanup`, `reprocess`).
    pub binary: String,
    /// End of the last completed pass (UTC).
    pub last_success_at: Option<Timestamp>,
    /// Its age in seconds (database clock, so a skewed host clock does not matter).
    pub last_success_age_secs: Option<i64>,
    /// Start of the most recent pass, whatever its outcome.
    pub last_started_at: Option<Timestamp>,
    /// Outcome of the most recent pass (`completed`, `failed`, `dependency_unreachable`, or
    /// `None` while it runs or when it was killed).
    pub last_outcome: Option<RunOutcome>,
    /// Error of the most recent pass.
    pub last_error: Option<String>,
}

impl Store {
    /// Inserts a `runs` row for a pass of `binary_name` starting now; returns its id.
    ///
    /// # Errors
    /// Database errors.
    pub fn start_run(&mut self, binary_name: &str, host: &str) -> Result<i64, StoreError> {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        // Typed parameters: one round trip (no prepare), as for every statement of an idle pass.
        let row = self.client.query_typed_one(
            "INSERT INTO runs (binary_name, host, pid) VALUES ($1, $2, $3) RETURNING id",
            &[
                (&binary_name, Type::TEXT),
                (&host, Type::TEXT),
                (&pid, Type::INT4),
            ],
        )?;
        Ok(row.get(0))
    }

    /// Completes a `runs` row with its outcome, counts and error text.
    ///
    /// # Errors
    /// Database errors.
    pub fn finish_run(
        &mut self,
        id: i64,
        outcome: RunOutcome,
        counts: &Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.client.query_typed(
            "UPDATE runs SET finished_at = now(), outcome = $2, counts = $3, error = $4 WHERE id = $1",
            &[
                (&id, Type::INT8),
                (&outcome.as_str(), Type::TEXT),
                (counts, Type::JSONB),
                (&error, Type::TEXT),
            ],
        )?;
        Ok(())
    }

    /// The last successful and the most recent pass of every binary that ever ran, by name.
    ///
    /// # Errors
    /// Database errors; [`StoreError::UnknownValue`] for a state this build does not know.
    pub fn binary_runs(&mut self) -> Result<Vec<BinaryRuns>, StoreError> {
        let rows = self.client.query(
            "SELECT b.binary_name, success.finished_at AS last_success_at,
                    EXTRACT(EPOCH FROM now() - success.finished_at)::bigint AS last_success_age_secs,
                    last.started_at AS last_started_at, last.outcome AS outcome, last.error AS last_error
             FROM (SELECT DISTINCT binary_name FROM runs) b
             LEFT JOIN LATERAL (SELECT finished_at FROM runs r
                                WHERE r.binary_name = b.binary_name AND r.outcome = 'completed'
                                ORDER BY finished_at DESC LIMIT 1) success ON true
             LEFT JOIN LATERAL (SELECT started_at, outcome, error FROM runs r
                                WHERE r.binary_name = b.binary_name
                                ORDER BY started_at DESC, id DESC LIMIT 1) last ON true
             ORDER BY b.binary_name",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(BinaryRuns {
                    binary: row.get("binary_name"),
                    last_success_at: row.get("last_success_at"),
                    last_success_age_secs: row.get("last_success_age_secs"),
                    last_started_at: row.get("last_started_at"),
                    last_outcome: state::read_opt(row, "runs", "outcome")?,
                    last_error: row.get("last_error"),
                })
            })
            .collect()
    }
}
