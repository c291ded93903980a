//! The temp dir (`temp.dir`): where the passes download agency files and the clients keep their
//! caches (the Box token cache, the DAM lookup-domain cache).
//!
//! It holds secrets (the cached Box access token) and files other people sent us, so it must be
//! private: owned by the user running the binaries and not writable by group or others (another
//! local user could otherwise plant or swap files, or read the token). [`prepare`] creates it with
//! mode 0700 when absent and refuses it otherwise (a configuration error: exit 2).
//!
//! Downloads go into its subdirectory [`DOWNLOADS_DIR`], never next to the caches: a file an
//! agency delivered is probed by ffprobe, and a media file that names other files (a playlist)
//! must not find the token cache beside it.

use std::path::{Path, PathBuf};

/// Subdirectory of `temp.dir` that receives downloaded files.
pub const DOWNLOADS_DIR: &str = "downloads";

/// `{temp_dir}/downloads`.
pub fn downloads_dir(temp_dir: &Path) -> PathBuf {
    temp_dir.join(DOWNLOADS_DIR)
}

/// Why the temp dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TempDirError {
    /// It does not exist and cannot be created, or cannot be inspected.
    #[error("temp dir {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path exists and is not a directory.
    #[error("temp dir {} is not a directory", dir.display())]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Another user owns it.
    #[error("temp dir {} is owned by uid {owner}, not by the user running this program (uid {user})", dir.display())]
    NotOwned {
        /// The directory.
        dir: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// Our effective uid.
        user: u32,
    },
    /// Group or others may write to it.
    #[error("temp dir {} is writable by group or others (mode {mode:o})", dir.display())]
    Shared {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl TempDirError {
    /// The fix, as one line for a `hint:` or a doctor `fix:`.
    pub fn hint(&self) -> String {
        match self {
            TempDirError::Io { dir, .. } | TempDirError::NotADirectory { dir } => format!(
                "create it, owned by the service user (mkdir -p {0} && chmod 700 {0}), or set temp.dir (CS_TEMP_DIR)",
                dir.display()
            ),
            TempDirError::NotOwned { dir, .. } => format!(
                "use a directory of the service user: chown USER {0} && chmod 700 {0}, or set temp.dir (CS_TEMP_DIR)",
                dir.display()
            ),
            TempDirError::Shared { dir, .. } => format!("chmod 700 {}", dir.display()),
        }
    }
}

/// Checks that `dir` is a directory owned by this process's effective user and not writable by
/// group or others.
///
/// # Errors
/// [`TempDirError`] saying which rule is broken.
pub fn check(dir: &Path) -> Result<(), TempDirError> {
    let metadata = std::fs::symlink_metadata(dir).map_err(|source| TempDirError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(TempDirError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    check_owner_and_mode(dir, &metadata)
}

#[cfg(unix)]
fn check_owner_and_mode(dir: &Path, metadata: &std::fs::Metadata) -> Result<(), TempDirError> {
    use std::os::unix::fs::MetadataExt;
    let user = rustix::process::geteuid().as_raw();
    if metadata.uid() != user {
        return Err(TempDirError::NotOwned {
            dir: dir.to_path_buf(),
            owner: metadata.uid(),
            user,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TempDirError::Shared {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_and_mode(_dir: &Path, _metadata: &std::fs::Metadata) -> Result<(), TempDirError> {
    Ok(())
}

/// Creates `path` (and missing parents) with mode 0700 when it does not exist.
fn create_private(path: &Path) -> Result<(), TempDirError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| TempDirError::Io {
        dir: path.to_path_buf(),
        source,
    })
}

/// Makes `temp_dir` and its [`DOWNLOADS_DIR`] ready: creates them (mode 0700) when absent, then
/// [`check`]s both. Returns the downloads directory.
///
/// # Errors
/// [`TempDirError`]: cannot be created, not a directory, another owner, group/world-writable.
pub fn prepare(temp_dir: &Path) -> Result<PathBuf, TempDirError> {
    if !temp_dir.exists() {
        create_private(temp_dir)?;
    }
    check(temp_dir)?;
    let downloads = downloads_dir(temp_dir);
    if !downloads.exists() {
        create_private(&downloads)?;
    }
    check(&downloads)?;
    Ok(downloads)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn prepare_creates_private_directories() {
        let parent = tempfile::tempdir().unwrap();
        let temp = parent.path().join("a/b/content-scaling");
        let downloads = prepare(&temp).unwrap();
        assert_eq!(downloads, temp.join("downloads"));
        assert_eq!(mode(&temp), 0o700);
        assert_eq!(mode(&downloads), 0o700);
        // Idempotent.
        prepare(&temp).unwrap();
    }

    #[test]
    fn shared_directories_are_refused() {
        let parent = tempfile::tempdir().unwrap();
        let temp = parent.path().join("shared");
        std::fs::create_dir(&temp).unwrap();
        for bad in [0o777, 0o770, 0o722] {
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(bad)).unwrap();
            let error = prepare(&temp).unwrap_err();
            assert!(
                matches!(error, TempDirError::Shared { mode, .. } if mode == bad),
                "{bad:o}: {error:?}"
            );
            assert!(error.to_string().contains(&format!("{bad:o}")), "{error}");
            assert_eq!(error.hint(), format!("chmod 700 {}", temp.display()));
        }
        // Readable by others is allowed (the files inside are 0600); writable is not.
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&temp).unwrap();
        // A shared downloads dir is refused too.
        std::fs::set_permissions(
            temp.join(DOWNLOADS_DIR),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        assert!(matches!(prepare(&temp), Err(TempDirError::Shared { .. })));
    }

    #[test]
    fn a_file_or_a_foreign_directory_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let file = parent.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            prepare(&file),
            Err(TempDirError::NotADirectory { .. })
        ));
        // A directory of another user: as root, make one (uid 65534, "nobody"); otherwise `/`.
        let foreign = if rustix::process::geteuid().is_root() {
            let dir = parent.path().join("foreign");
            std::fs::create_dir(&dir).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            dir
        } else {
            PathBuf::from("/")
        };
        let error = check(&foreign).unwrap_err();
        assert!(matches!(error, TempDirError::NotOwned { .. }), "{error:?}");
        assert!(error.hint().contains("chown"), "{}", error.hint());
    }
}
