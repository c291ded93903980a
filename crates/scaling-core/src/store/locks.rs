//! Advisory locks (one pass per watched folder or campaign at a time) and the leases of dead
//! passes.
//!
//! Advisory locks are session-level: a killed process never leaves one behind.

use super::{Store, StoreError};

pub(super) fn advisory_key(name: &str) -> i64 {
    // FNV-1a 64: stable across builds and platforms (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Lease owners (of Box files and outbox rows) matching the `LIKE` pattern `$1`.
pub(super) const LEASE_OWNERS_LIKE_SQL: &str =
    "SELECT lease_owner FROM box_files WHERE lease_owner IS NOT NULL AND lease_owner LIKE $1
     UNION SELECT lease_owner FROM outbox WHERE lease_owner IS NOT NULL AND lease_owner LIKE $1";

/// A `LIKE` pattern matching every text that starts with `prefix` (its `\\`, `%` and `_`
/// escaped).
pub(super) fn like_prefix(prefix: &str) -> String {
    format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

impl Store {
    /// Takes the session-level advisory lock named `name` without waiting.
    ///
    /// Returns `false` when another session holds it. The lock is released by [`Store::unlock`]
    /// or when the connection ends (so a killed process never leaves it behind).
    ///
    /// # Errors
    /// Database errors.
    pub fn try_lock(&mut self, name: &str) -> Result<bool, StoreError> {
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&advisory_key(name)])?;
        Ok(row.get(0))
    }

    /// Releases an advisory lock taken with [`Store::try_lock`].
    ///
    /// # Errors
    /// Database errors.
    pub fn unlock(&mut self, name: &str) -> Result<(), StoreError> {
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&advisory_key(name)])?;
        Ok(())
    }

    /// Releases every lease held by `owner` (a pass known to be dead); returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_leases_of(&mut self, owner: &str) -> Result<u64, StoreError> {
        let files = self.client.execute(
            "UPDATE box_files SET lease_owner = NULL, lease_expires_at = NULL, updated_at = now() WHERE lease_owner = $1",
            &[&owner],
        )?;
        let notifications = self.client.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1",
            &[&owner],
        )?;
        Ok(files + notifications)
    }
}

#[cfg(test)]
mod tests {
    use super::advisory_key;

    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        // Stable across builds: a changed hash would let an old and a new binary run the same
        // watched folder at once during an upgrade.
        assert_eq!(
            advisory_key("box-poll:folder:123"),
            advisory_key("box-poll:folder:123")
        );
        assert_ne!(
            advisory_key("box-poll:folder:123"),
            advisory_key("box-poll:folder:124")
        );
        assert_eq!(
            advisory_key(""),
            i64::from_ne_bytes(0xcbf2_9ce4_8422_2325_u64.to_ne_bytes())
        );
    }
}
