//! The Box access token kept across passes: a private JSON file (mode 0600, written atomically with a
//! temporary file + rename), default `{temp.dir}/box-token.json` (`box.token_cache_file`).
//!
//! Box JWT tokens live about an hour and cron starts a pass every minute: without this file every pass
//! would ask `POST /oauth2/token` for a new token. The file holds one token with the identity it belongs
//! to (client id, enterprise id, token URL), so a configuration change (another app, another enterprise,
//! another Box) never reuses a token of the old one. A token is reused until its `refresh_after` (60 s
//! before it expires); a token Box refuses (401) is removed from the file.
//!
//! The file is a cache: every problem with it (absent, unreadable, corrupt, another identity, readable by
//! group or others) means "no cached token", and a failed write is logged and ignored. Log lines and
//! errors never contain the token. Source of the token itself:
//! <https://developer.box.com/guides/authentication/jwt/without-sdk/>.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::http::{is_private, write_private_file};
use crate::secret::Secret;

/// File format version.
const FORMAT: u32 = 1;

/// Who a token belongs to: the cache is keyed by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenOwner {
    /// `boxAppSettings.clientID`.
    pub client_id: String,
    /// `enterpriseID`.
    pub enterprise_id: String,
    /// The token URL (`box.oauth2_url`).
    pub token_url: String,
}

/// A token read from (or written to) the file. Unix seconds.
pub(crate) struct StoredToken {
    /// The access token.
    pub value: Secret<String>,
    /// When to stop using it (a margin before `expires_at`).
    pub refresh_after: i64,
}

/// On-disk shape. No `Debug`: it holds the token in clear.
#[derive(Serialize, Deserialize)]
struct TokenFile {
    format: u32,
    client_id: String,
    enterprise_id: String,
    token_url: String,
    access_token: String,
    expires_at: i64,
    refresh_after: i64,
}

/// The token cache file of one client.
#[derive(Debug)]
pub(crate) struct TokenCache {
    path: PathBuf,
    owner: TokenOwner,
}

impl TokenCache {
    /// The cache at `path` for tokens of `owner`. Nothing is read or written yet.
    pub(super) fn new(path: PathBuf, owner: TokenOwner) -> Self {
        Self { path, owner }
    }

    /// The file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The cached token of this owner when it is still usable at `now` (Unix seconds).
    pub(super) fn load(&self, now: i64) -> Option<StoredToken> {
        let file = self.read()?;
        if file.format != FORMAT
            || file.client_id != self.owner.client_id
            || file.enterprise_id != self.owner.enterprise_id
            || file.token_url != self.owner.token_url
        {
            tracing::debug!(path = %self.path.display(), "Box token cache holds another app's token; not used");
            return None;
        }
        if file.access_token.is_empty() || now >= file.refresh_after {
            tracing::debug!(path = %self.path.display(), "cached Box token expired or about to; not used");
            return None;
        }
        Some(StoredToken {
            value: Secret::new(file.access_token),
            refresh_after: file.refresh_after,
        })
    }

    fn read(&self) -> Option<TokenFile> {
        let metadata = match fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the Box token cache; getting a new token");
                return None;
            }
        };
        if !is_private(&metadata) {
            tracing::warn!(path = %self.path.display(),
                "the Box token cache is readable by group or others; ignoring it (it is rewritten with mode 0600)");
            return None;
        }
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the Box token cache; getting a new token");
                return None;
            }
        };
        // The serde error would quote the text (the token): say only that it is unusable.
        if let Ok(file) = serde_json::from_str::<TokenFile>(&text) {
            Some(file)
        } else {
            tracing::warn!(path = %self.path.display(), "the Box token cache is not in the expected format; ignoring it");
            None
        }
    }

    /// Stores `token`, valid until `expires_at` and to be renewed from `refresh_after` (Unix seconds).
    /// Best effort: a failure is logged (without the token) and otherwise ignored.
    pub(super) fn store(&self, token: &Secret<String>, expires_at: i64, refresh_after: i64) {
        let file = TokenFile {
            format: FORMAT,
            client_id: self.owner.client_id.clone(),
            enterprise_id: self.owner.enterprise_id.clone(),
            token_url: self.owner.token_url.clone(),
            access_token: token.expose().clone(),
            expires_at,
            refresh_after,
        };
        if let Err(error) = self.write(&file) {
            tracing::warn!(path = %self.path.display(), %error, "cannot write the Box token cache; the next pass will get a new token");
        }
    }

    /// Removes the file if it holds `token` (Box refused it).
    pub(super) fn forget(&self, token: &Secret<String>) {
        let holds_it = self
            .read()
            .is_some_and(|file| &file.access_token == token.expose());
        if holds_it {
            if let Err(error) = fs::remove_file(&self.path) {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), %error, "cannot remove the refused token from the Box token cache");
                }
            }
        }
    }

    fn write(&self, file: &TokenFile) -> io::Result<()> {
        let text = serde_json::to_vec(file).map_err(io::Error::other)?;
        write_private_file(&self.path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> TokenOwner {
        TokenOwner {
            client_id: "client".into(),
            enterprise_id: "42".into(),
            token_url: "https://api.box.com/oauth2/token".into(),
        }
    }

    #[test]
    fn round_trip_private_file_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/box-token.json");
        let cache = TokenCache::new(path.clone(), owner());
        assert!(cache.load(1000).is_none());
        cache.store(&Secret::new("tok-1".into()), 4600, 4540);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let loaded = cache.load(1000).unwrap();
        assert_eq!(loaded.value.expose(), "tok-1");
        assert_eq!(loaded.refresh_after, 4540);
        assert!(cache.load(4540).is_none(), "not used from refresh_after on");
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn another_identity_or_a_corrupt_or_open_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box-token.json");
        TokenCache::new(path.clone(), owner()).store(&Secret::new("tok".into()), 9000, 8000);
        for other in [
            TokenOwner {
                client_id: "other".into(),
                ..owner()
            },
            TokenOwner {
                enterprise_id: "43".into(),
                ..owner()
            },
            TokenOwner {
                token_url: "http://127.0.0.1:9/oauth2/token".into(),
                ..owner()
            },
        ] {
            assert!(TokenCache::new(path.clone(), other).load(1).is_none());
        }
        let cache = TokenCache::new(path.clone(), owner());
        assert!(cache.load(1).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(cache.load(1).is_none(), "world-readable file ignored");
            cache.store(&Secret::new("tok2".into()), 9000, 8000);
            assert_eq!(cache.load(1).unwrap().value.expose(), "tok2");
        }
        fs::write(&path, "{not json").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(cache.load(1).is_none());
    }

    #[test]
    fn forget_removes_only_the_refused_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box-token.json");
        let cache = TokenCache::new(path.clone(), owner());
        cache.store(&Secret::new("current".into()), 9000, 8000);
        cache.forget(&Secret::new("older".into()));
        assert!(path.exists());
        cache.forget(&Secret::new("current".into()));
        assert!(!path.exists());
        cache.forget(&Secret::new("current".into()));
    }
}
