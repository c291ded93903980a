//! What the operators' commands (`reprocess`, `cleanup`, `box-setup`) share around their work:
//! a log writer that does not tear a progress bar apart (used by the one logger of
//! [`crate::entry::init_logging`]), a progress bar shown only on a terminal, and result lines on
//! stdout.
//!
//! Output rules: results (plans, per-item lines, summaries, check lines) go to stdout, one line
//! each; log lines go to stderr. The progress bar is drawn on stderr only when stderr is a
//! terminal, so cron mail and pipes see plain lines and no control characters.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// The progress bar on screen, if any: log lines are written around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active_bar() -> Option<ProgressBar> {
    ACTIVE_BAR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Runs `write` with the progress bar (if one is shown) taken off the screen.
fn around_bar(write: impl FnOnce()) {
    match active_bar() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// One log event, buffered and written to stderr in one piece when dropped.
pub struct StderrEvent {
    buffer: Vec<u8>,
}

impl Write for StderrEvent {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines held back while a report prints ([`hold_logs`]); `None` = written at once.
static HELD_LOGS: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// Holds log lines back (in memory) until [`release_logs`], so that a report printed on the
/// same terminal (`box-setup doctor`) is not torn apart by them.
pub fn hold_logs() {
    let mut held = HELD_LOGS.lock().unwrap_or_else(PoisonError::into_inner);
    held.get_or_insert_with(Vec::new);
}

/// Writes the log lines held since [`hold_logs`] to stderr, in one piece, and writes the next
/// ones at once again.
pub fn release_logs() {
    let held = HELD_LOGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(buffer) = held.filter(|buffer| !buffer.is_empty()) {
        // A closed stderr is nothing the command can report anywhere.
        let _ = std::io::stderr().lock().write_all(&buffer);
    }
}

impl Drop for StderrEvent {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        {
            let mut held = HELD_LOGS.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = held.as_mut() {
                held.extend_from_slice(&buffer);
                return;
            }
        }
        around_bar(|| {
            // A closed stderr is nothing the command can report anywhere.
            let _ = std::io::stderr().lock().write_all(&buffer);
        });
    }
}

/// `MakeWriter` for stderr that keeps log lines and the progress bar apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgressAwareStderr;

impl<'a> MakeWriter<'a> for ProgressAwareStderr {
    type Writer = StderrEvent;

    fn make_writer(&'a self) -> StderrEvent {
        StderrEvent { buffer: Vec::new() }
    }
}

/// Prints one result line on stdout (around the progress bar). A closed stdout (`| head`) is
/// not an error.
pub fn say(line: &str) {
    around_bar(|| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    });
}

/// A progress bar over `total` items, drawn on stderr only when stderr is a terminal (hidden
/// otherwise: the per-item result lines are the progress then). Removed from the screen when
/// dropped.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Starts a bar for `total` items.
    pub fn start(total: u64) -> Progress {
        let bar = if std::io::stderr().is_terminal() && total > 0 {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        *ACTIVE_BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Progress { bar }
    }

    /// Names the item being worked on.
    pub fn working_on(&self, item: &str) {
        self.bar.set_message(item.to_string());
    }

    /// Counts one item done.
    pub fn done_one(&self) {
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        *ACTIVE_BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// `n thing` or `n things`.
pub fn plural(count: u64, singular: &str, plural: &str) -> String {
    if count == 1 {
        format!("{count} {singular}")
    } else {
        format!("{count} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_picks_the_form() {
        assert_eq!(plural(0, "file", "files"), "0 files");
        assert_eq!(plural(1, "file", "files"), "1 file");
        assert_eq!(plural(2, "file", "files"), "2 files");
    }

    #[test]
    fn hidden_progress_never_draws_and_unregisters() {
        // Tests run without a terminal on stderr: the bar is hidden.
        {
            let progress = Progress::start(3);
            assert!(progress.bar.is_hidden());
            progress.working_on("x");
            progress.done_one();
            assert!(active_bar().is_some());
        }
        assert!(active_bar().is_none());
    }
}
