//! The OTMM server variants the sandbox can play (`sandbox serve --otmm-dialect NAME`).
//!
//! OpenText's REST reference is not public; what public clients show is gathered in
//! `docs/otmm-evidence.md`. Every dialect behaves as that evidence says where it says anything,
//! and as strictly as is plausible where it does not — so a client that guesses wrong fails
//! here, not on the brand's server:
//! - GET `/folders/{id}` carries `metadata` only when asked for (`load_type=metadata`/`full`, or
//!   `load_type=custom` with a `data_load_request` whose `load_metadata` is true — except
//!   [`OtmmDialect::Locking`], which honours only `load_type=metadata`);
//! - folder children and search hits include deleted assets unless an `asset_filter_request`
//!   with `exclude_deleted_assets` is sent;
//! - the campaign status is inherited by the assets inside a campaign folder, so a search on it
//!   returns assets as well as folders;
//! - `ARTESIA.OPERATOR.CHAR.CONTAINS` matches whole words (a phrase of words), not substrings;
//! - only the identity holding a lock may unlock;
//! - asset contents are served by a redirect to another origin (the download port);
//! - OAuth2 uses the password grant at `/otmmapi/v6/sessions/oauth2/token`
//!   (`token_info.oauth_token`), as OpenText's own client does.
//!
//! The dialects differ where no public source settles the point:
//!
//! | | strict (default) | jobs | locking |
//! |---|---|---|---|
//! | GET `/jobs/{id}/assets` | absent (404) | present | absent |
//! | lock a folder | refused (403) | refused | allowed |
//! | PATCH `/folders/{id}` | no lock needed | no lock needed | the caller's lock needed (409) |
//! | PATCH value shape | plain `{"type":"string"}` | plain | `DomainValue` only |
//! | folder metadata by `load_type=custom` | yes | yes | no |

use serde::Serialize;

/// One server variant (see the module docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum OtmmDialect {
    /// No job resource, folders cannot be locked, plain values.
    #[default]
    Strict,
    /// As strict, plus GET `/jobs/{id}/assets`.
    Jobs,
    /// Folders must be locked by the caller before a PATCH; `DomainValue` values only; folder
    /// metadata only with `load_type=metadata`.
    Locking,
}

impl OtmmDialect {
    /// The `dam.api` settings, as the sandbox overlay's variables, that match this dialect:
    /// what an operator would set after `box-setup dam-check` on such a server.
    pub fn client_settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            OtmmDialect::Strict => &[],
            OtmmDialect::Jobs => &[("DAM_API_IMPORT_COMPLETION", "jobs")],
            OtmmDialect::Locking => &[
                ("DAM_API_LOCK_FOLDERS", "always"),
                ("DAM_API_STATUS_VALUE_SHAPE", "domain_value"),
                ("DAM_API_FOLDER_LOAD", "metadata"),
            ],
        }
    }

    /// Whether GET `/jobs/{id}/assets` exists.
    pub fn has_jobs(self) -> bool {
        self == OtmmDialect::Jobs
    }

    /// Whether a folder (container) can be locked.
    pub fn locks_folders(self) -> bool {
        self == OtmmDialect::Locking
    }

    /// Whether a folder PATCH needs the caller's lock.
    pub fn edit_needs_lock(self) -> bool {
        self == OtmmDialect::Locking
    }

    /// Whether the PATCH value must be a `com.artesia.metadata.DomainValue` (else plain
    /// `{"type":"string","value":…}`).
    pub fn wants_domain_values(self) -> bool {
        self == OtmmDialect::Locking
    }

    /// Whether a GET of a folder with these query pairs returns its metadata.
    pub fn folder_metadata_requested(self, pairs: &[(String, String)]) -> bool {
        let value = |key: &str| {
            pairs
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        };
        match value("load_type") {
            Some("metadata" | "full") => true,
            Some("custom") if self != OtmmDialect::Locking => value("data_load_request")
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                .is_some_and(|request| {
                    request.pointer("/data_load_request/load_metadata")
                        == Some(&serde_json::Value::Bool(true))
                }),
            _ => false,
        }
    }
}

/// Whether the query pairs carry OTMM's `asset_filter_request` excluding deleted assets (either
/// `{"asset_filter_request":{…}}` or wrapped in `asset_filter_request_param`).
pub fn excludes_deleted(pairs: &[(String, String)]) -> bool {
    pairs
        .iter()
        .filter(|(name, _)| name == "asset_filter_request")
        .filter_map(|(_, text)| serde_json::from_str::<serde_json::Value>(text).ok())
        .any(|filter| {
            let inner = filter
                .pointer("/asset_filter_request_param/asset_filter_request")
                .or_else(|| filter.get("asset_filter_request"));
            inner.and_then(|inner| inner.get("exclude_deleted_assets"))
                == Some(&serde_json::Value::Bool(true))
        })
}

/// `ARTESIA.OPERATOR.CHAR.CONTAINS` as a word match: the words of `wanted` (split at every
/// character that is not a letter or digit, case-insensitive) occur in `actual` one after the
/// other. An empty `wanted` matches nothing.
pub fn contains_words(actual: &str, wanted: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|character: char| !character.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let actual = words(actual);
    let wanted = words(wanted);
    !wanted.is_empty() && actual.windows(wanted.len()).any(|window| window == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_matches_words_not_substrings() {
        assert!(contains_words("A1", "a1"));
        assert!(contains_words("Ab12CD v01 box:7/8", "ab12cd V01 box:7/8"));
        assert!(!contains_words("A12", "A1"));
        assert!(!contains_words("Ab12CD v01 box:7/88", "Ab12CD v01 box:7/8"));
        assert!(!contains_words("anything", ""));
    }

    #[test]
    fn folder_metadata_only_when_asked() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(key, value)| ((*key).to_string(), (*value).to_string()))
                .collect()
        };
        let custom = pairs(&[
            ("load_type", "custom"),
            (
                "data_load_request",
                r#"{"data_load_request":{"load_metadata":true}}"#,
            ),
        ]);
        assert!(!OtmmDialect::Strict.folder_metadata_requested(&[]));
        assert!(OtmmDialect::Strict.folder_metadata_requested(&custom));
        assert!(!OtmmDialect::Locking.folder_metadata_requested(&custom));
        assert!(
            OtmmDialect::Locking.folder_metadata_requested(&pairs(&[("load_type", "metadata")]))
        );
        assert!(excludes_deleted(&pairs(&[(
            "asset_filter_request",
            r#"{"asset_filter_request_param":{"asset_filter_request":{"exclude_deleted_assets":true}}}"#
        )])));
        assert!(!excludes_deleted(&pairs(&[("load_type", "metadata")])));
    }
}
