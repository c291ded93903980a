//! Text columns with a fixed set of values (most with a CHECK list in `migrations/`) as Rust
//! enums, parsed once when a row is read.
//!
//! [`db_enum!`] declares such an enum with its database spelling; [`read`] and [`read_opt`] take
//! a column of a row and answer [`StoreError::UnknownValue`] (naming the table, column and value)
//! for a spelling this build does not know, never a panic or a silent default.

use postgres::Row;

use super::StoreError;

/// An enum stored as text (see [`db_enum!`]).
pub(super) trait DbEnum: Sized + Copy + 'static {
    /// Parses the database spelling.
    fn from_db(text: &str) -> Option<Self>;
}

/// Declares a `Copy` enum stored as text: `as_str` (the database spelling), `parse`, `ALL`,
/// `Display` and `Serialize` (both the database spelling), and [`DbEnum`].
macro_rules! db_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order of the declaration.
            pub const ALL: &'static [$name] = &[$( $name::$variant ),+];

            /// The database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Parses the database spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl $crate::store::state::DbEnum for $name {
            fn from_db(text: &str) -> Option<Self> {
                Self::parse(text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use db_enum;

/// The value of text column `column` (of table `table`) of `row`, parsed.
///
/// # Errors
/// [`StoreError::UnknownValue`] for a spelling `T` does not know; [`StoreError::Query`] when the
/// column is missing or not text.
pub(super) fn read<T: DbEnum>(
    row: &Row,
    table: &'static str,
    column: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    parse(&text, table, column)
}

/// As [`read`], for a nullable column (`None` for NULL).
///
/// # Errors
/// As [`read`].
pub(super) fn read_opt<T: DbEnum>(
    row: &Row,
    table: &'static str,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| parse(&text, table, column)).transpose()
}

fn parse<T: DbEnum>(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<T, StoreError> {
    T::from_db(text).ok_or_else(|| StoreError::UnknownValue {
        table,
        column,
        value: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{
        LedgerState, MasterStatus, NotificationChannel, RunOutcome, TransitionState, UploadStatus,
    };
    use super::*;

    /// The CHECK lists of `migrations/`, as the latest migration leaves them.
    const CHECK_LISTS: &[(&str, &[&str])] = &[
        (
            "box_files.state",
            &[
                "seen",
                "claimed",
                "uploaded_to_dam",
                "archived",
                "failed_transient",
                "rejecting",
                "rejected",
                "ignored",
            ],
        ),
        (
            "derivative_assets.upload_status",
            &["pending", "importing", "uploaded", "failed"],
        ),
        ("master_assets.status", &["pending", "uploaded", "failed"]),
        ("outbox.channel", &["email", "webhook"]),
        ("campaign_transitions.state", &["pending", "done"]),
    ];

    fn spellings<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|value| as_str(*value)).collect()
    }

    #[test]
    fn enums_match_the_check_lists() {
        let enums: Vec<(&str, Vec<&str>)> = vec![
            (
                "box_files.state",
                spellings(LedgerState::ALL, LedgerState::as_str),
            ),
            (
                "derivative_assets.upload_status",
                spellings(UploadStatus::ALL, UploadStatus::as_str),
            ),
            (
                "master_assets.status",
                spellings(MasterStatus::ALL, MasterStatus::as_str),
            ),
            (
                "outbox.channel",
                spellings(NotificationChannel::ALL, NotificationChannel::as_str),
            ),
            (
                "campaign_transitions.state",
                spellings(TransitionState::ALL, TransitionState::as_str),
            ),
        ];
        for ((column, checked), (named, spelled)) in CHECK_LISTS.iter().zip(&enums) {
            assert_eq!(column, named);
            assert_eq!(*checked, spelled.as_slice(), "{column}");
        }
        // The migrations still say so (a new CHECK list must come with its enum).
        let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut text = String::new();
        for entry in std::fs::read_dir(&migrations).expect("migrations folder") {
            let path = entry.expect("entry").path();
            text.push_str(&std::fs::read_to_string(&path).expect("migration"));
        }
        for (column, values) in CHECK_LISTS {
            let list = values
                .iter()
                .map(|value| format!("'{value}'"))
                .collect::<Vec<_>>()
                .join(", ");
            assert!(
                text.contains(&list),
                "{column}: no CHECK list ({list}) in the migrations"
            );
        }
        assert_eq!(
            spellings(RunOutcome::ALL, RunOutcome::as_str),
            ["completed", "lock_held", "failed", "dependency_unreachable"]
        );
    }

    #[test]
    fn an_unknown_spelling_is_a_typed_error_naming_the_column() {
        let error = parse::<LedgerState>("shredded", "box_files", "state").unwrap_err();
        assert!(
            matches!(&error, StoreError::UnknownValue { table: "box_files", column: "state", value } if value == "shredded"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "box_files.state holds \"shredded\", which this build does not know"
        );
        assert_eq!(
            parse::<NotificationChannel>("webhook", "outbox", "channel").ok(),
            Some(NotificationChannel::Webhook)
        );
    }
}
