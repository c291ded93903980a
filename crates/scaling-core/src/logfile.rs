//! The log file of the plan's `logging.handlers.file` (`filename`, `max_bytes`, `backup_count`):
//! every log line also goes to a file that is rotated by size, the way Python's
//! `RotatingFileHandler` does it — `app.log` is renamed `app.log.1`, an older `app.log.1` becomes
//! `app.log.2`, ... and files past `backup_count` are deleted. The rotation itself is the
//! `file-rotate` crate's.
//!
//! [`LogFile`] is a `tracing_subscriber` writer; [`install`] makes one the process's log file,
//! which [`CurrentLogFile`] (the writer [`crate::entry`] gives its file layer from the start)
//! then writes to. Before [`install`], or without a file configured, [`CurrentLogFile`] writes
//! nothing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFileConfig;

/// Mode of a log directory this module creates: the owner writes, the group reads.
pub const LOG_DIR_MODE: u32 = 0o750;

/// Mode of a log file this module creates.
pub const LOG_FILE_MODE: u32 = 0o640;

/// A size-rotated log file, shared by clones (one lock; each log line is written whole).
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<FileRotate<AppendCount>>>,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LogFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LogFile {
    /// Opens (creates) `config.path` for appending, creating its directory with mode
    /// [`LOG_DIR_MODE`] when missing. Once the file has grown past `max_bytes` it is rotated
    /// before the next line (so a file may exceed `max_bytes` by one line); `backup_count`
    /// rotated files are kept; `backup_count: 0` never rotates (as in Python).
    ///
    /// Errors: the directory cannot be created or the file cannot be opened for writing (the
    /// [`io::Error`] of that step; the caller names the key).
    pub fn open(config: &LogFileConfig) -> io::Result<Self> {
        let path = config.path.clone();
        let file_name_ok = path.file_name().is_some();
        if !file_name_ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "expected a file name, found a directory path",
            ));
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_log_dir(dir)?;
        }
        // FileRotate drops lines silently when it cannot open its file: check first.
        let options = open_options();
        options.open(&path)?;
        let limit = match (config.backup_count, usize::try_from(config.max_bytes)) {
            (0, _) => ContentLimit::None,
            (_, Ok(bytes)) if bytes > 0 => ContentLimit::BytesSurpassed(bytes),
            _ => ContentLimit::None,
        };
        let keep = usize::try_from(config.backup_count).unwrap_or(usize::MAX);
        let file = FileRotate::new(
            &path,
            AppendCount::new(keep),
            limit,
            Compression::None,
            #[cfg(unix)]
            Some(options),
        );
        Ok(LogFile {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` (one or more whole lines), rotating first when the file is full.
    pub fn write_line(&self, bytes: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(bytes)?;
        file.flush()
    }
}

#[cfg(unix)]
fn open_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE);
    options
}

#[cfg(not(unix))]
fn open_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).create(true).append(true);
    options
}

/// Creates `dir` (and missing parents) with mode [`LOG_DIR_MODE`]; an existing directory is left
/// as it is.
fn create_log_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(LOG_DIR_MODE);
    }
    builder.create(dir)
}

/// One log event, buffered and written whole when the formatter is done with it.
pub struct LogFileLine {
    file: Option<LogFile>,
    buffer: Vec<u8>,
}

impl Write for LogFileLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.file.is_some() {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogFileLine {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            if !self.buffer.is_empty() {
                // A full disk must not stop the command: the line still went to stderr.
                let _ = file.write_line(&self.buffer);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileLine;

    fn make_writer(&'a self) -> LogFileLine {
        LogFileLine {
            file: Some(self.clone()),
            buffer: Vec::new(),
        }
    }
}

/// The process's log file, once [`install`]ed.
static INSTALLED: OnceLock<LogFile> = OnceLock::new();

/// Makes `file` the log file of this process (the first call wins; later calls return false).
pub fn install(file: LogFile) -> bool {
    INSTALLED.set(file).is_ok()
}

/// Whether a log file is installed (the file layer's filter: no formatting without a file).
pub fn installed() -> bool {
    INSTALLED.get().is_some()
}

/// Writes to the [`install`]ed log file, or nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct CurrentLogFile;

impl<'a> MakeWriter<'a> for CurrentLogFile {
    type Writer = LogFileLine;

    fn make_writer(&'a self) -> LogFileLine {
        LogFileLine {
            file: INSTALLED.get().cloned(),
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: PathBuf, max_bytes: u64, backup_count: u64) -> LogFileConfig {
        LogFileConfig {
            path,
            max_bytes,
            backup_count,
        }
    }

    #[test]
    fn lines_from_tracing_go_to_the_file_which_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/nested/app.log");
        let file = LogFile::open(&config(path.clone(), 300, 2)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, LOG_DIR_MODE, "{mode:o}");
        }
        let subscriber = tracing_subscriber::fmt()
            .with_writer(file.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for line in 0..40 {
                tracing::info!(line, "a log line long enough to fill the file quickly");
            }
        });
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("line=39"), "{current}");
        let first = std::fs::read_to_string(dir.path().join("logs/nested/app.log.1")).unwrap();
        let second = std::fs::read_to_string(dir.path().join("logs/nested/app.log.2")).unwrap();
        assert!(!first.is_empty() && !second.is_empty());
        assert!(
            !dir.path().join("logs/nested/app.log.3").exists(),
            "backup_count 2 keeps two rotated files"
        );
        for text in [&current, &first, &second] {
            // Each file holds whole lines, at most one line past max_bytes.
            assert!(text.ends_with('\n'), "{text}");
            assert!(text.len() < 300 + 200, "{}", text.len());
        }
        // The oldest lines were deleted with the third rotated file.
        let all = format!("{second}{first}{current}");
        assert!(!all.contains("line=0 "), "{all}");
    }

    #[test]
    fn backup_count_zero_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let file = LogFile::open(&config(path.clone(), 10, 0)).unwrap();
        for _ in 0..5 {
            file.write_line(b"0123456789abcdef\n").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 5 * 17);
        assert!(!dir.path().join("app.log.1").exists());
    }

    #[test]
    fn an_unwritable_place_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let error = LogFile::open(&config(blocker.join("app.log"), 100, 1)).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists | io::ErrorKind::Other
            ),
            "{error:?}"
        );
        let error = LogFile::open(&config(dir.path().to_path_buf(), 100, 1)).unwrap_err();
        assert!(
            error.to_string().contains("directory") || error.kind() == io::ErrorKind::IsADirectory,
            "{error}"
        );
    }
}
