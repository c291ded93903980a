//! What a pass has to do besides its folders and campaigns, asked in one round trip at its start
//! so that an idle pass (cron runs one every minute for years) costs a handful of round trips
//! however long the history: leases of dead local passes, transitions left pending, imports in
//! doubt whose file was rejected, unfinished Box moves, campaigns complete at a status, and
//! notifications due.
//!
//! The statement is sent with [`postgres::Client::query_typed`] (parameter types given, so no
//! separate prepare round trip); every part is answered from an index (migrations V3 and V5).

use postgres::types::Type;

use super::campaigns::PENDING_TRANSITIONS_SQL;
use super::derivatives::{CAMPAIGNS_COMPLETE_AT_SQL, ORPHANED_IMPORTS_FROM};
use super::incidents::OPEN_INCIDENTS_SQL;
use super::ledger::UNFINISHED_MOVES_WHERE;
use super::locks::{like_prefix, LEASE_OWNERS_LIKE_SQL};
use super::outbox::DUE_NOTIFICATIONS_WHERE;
use super::{Store, StoreError};

/// The answer of [`Store::probe_pass`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassProbe {
    /// Lease owners (Box files, outbox rows) whose name starts with the given prefix.
    pub lease_owners: Vec<String>,
    /// Campaigns whose transition to the given status is recorded but not done, oldest first.
    pub pending_transitions: Vec<String>,
    /// Some import in doubt has its Box file version rejected meanwhile.
    pub orphaned_imports: bool,
    /// Some decided Box move (rejecting, uploaded to the DAM) is not done and not leased.
    pub unfinished_moves: bool,
    /// Campaigns at the given status whose every master has an uploaded derivative.
    pub complete_campaigns: Vec<String>,
    /// Some notification is due and not leased.
    pub notifications_due: bool,
    /// Binaries with an open incident (migration V7): a successful pass of one of these closes
    /// it (and sends the recovery email).
    pub open_incidents: Vec<String>,
}

impl Store {
    /// One statement, one round trip: lease owners starting with `owner_prefix`, transitions
    /// pending to `pending_to`, whether imports in doubt or unfinished moves exist, campaigns
    /// complete at `complete_at`, whether notifications are due, and the binaries with an open
    /// incident.
    ///
    /// # Errors
    /// Database errors.
    pub fn probe_pass(
        &mut self,
        owner_prefix: &str,
        pending_to: &str,
        complete_at: &str,
    ) -> Result<PassProbe, StoreError> {
        let sql = format!(
            "SELECT ARRAY({LEASE_OWNERS_LIKE_SQL}),
                    ARRAY({pending}),
                    EXISTS (SELECT 1 {ORPHANED_IMPORTS_FROM}),
                    EXISTS (SELECT 1 FROM box_files WHERE {UNFINISHED_MOVES_WHERE}),
                    ARRAY({complete}),
                    EXISTS (SELECT 1 FROM outbox WHERE {DUE_NOTIFICATIONS_WHERE}),
                    ARRAY({OPEN_INCIDENTS_SQL})",
            pending = PENDING_TRANSITIONS_SQL.replace("$1", "$2"),
            complete = CAMPAIGNS_COMPLETE_AT_SQL.replace("$1", "$3"),
        );
        let pattern = like_prefix(owner_prefix);
        let row = self.client.query_typed_one(
            &sql,
            &[
                (&pattern, Type::TEXT),
                (&pending_to, Type::TEXT),
                (&complete_at, Type::TEXT),
            ],
        )?;
        Ok(PassProbe {
            lease_owners: row.get(0),
            pending_transitions: row.get(1),
            orphaned_imports: row.get(2),
            unfinished_moves: row.get(3),
            complete_campaigns: row.get(4),
            notifications_due: row.get(5),
            open_incidents: row.get(6),
        })
    }
}
