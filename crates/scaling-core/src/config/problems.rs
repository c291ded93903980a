//! Every problem one configuration load finds, collected instead of stopping at the first.
//!
//! The readers ([`super::reader`]) record a problem here and carry on with the key's default, so
//! one load reports every missing variable, every bad value and every unknown key at once. The
//! same accumulator remembers what `box-setup check-config` shows besides: the files read (with
//! the line of every key), the variables each key used, and the keys read as secrets.
//! [`super::load`] turns the errors into a [`ConfigError`]; [`super::check`] returns them all.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::tree::{read_yaml_lines, Lines};
use super::ConfigError;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be used (`check-config` exits 2, a pass refuses to start).
    Error,
    /// Worth a look, nothing breaks (an unknown key in an ops file, which is ignored).
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One configuration problem: where (file, line, key), what (the error's message: what was
/// expected and what was found) and what to do (`hint`).
#[derive(Debug)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The problem as an error (its `Display` is `{file}: {key}: {message}`).
    pub error: ConfigError,
    /// 1-based line of the key in [`ConfigError::file`] when known.
    pub line: Option<u64>,
    /// The unset environment variable, for a `${VAR}` that cannot be expanded.
    pub variable: Option<String>,
    /// What to do about it (one line).
    pub hint: String,
}

impl Problem {
    /// The message without file and key: what was expected and what was found.
    pub fn message(&self) -> String {
        match &self.error {
            ConfigError::Invalid { message, .. } | ConfigError::Parse { message, .. } => {
                message.clone()
            }
            ConfigError::Io { source, .. } => format!("cannot read the file: {source}"),
            ConfigError::Several(_) => self.error.to_string(),
        }
    }

    /// The key path, or `(top level)` for a problem with a whole file.
    pub fn key(&self) -> &str {
        self.error.key().unwrap_or(super::tree::TOP_LEVEL)
    }

    /// The problem as one JSON object: `severity`, `file`, `line` (null when unknown), `key`,
    /// `message`, `hint`, `variable` (null unless a variable is missing).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "severity": self.severity.as_str(),
            "file": self.error.file().display().to_string(),
            "line": self.line,
            "key": self.key(),
            "message": self.message(),
            "hint": self.hint,
            "variable": self.variable,
        })
    }
}

/// Where a `${VAR}` was used: the file and key that hold it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VariableUse {
    /// The file.
    pub file: PathBuf,
    /// The dotted key path.
    pub key: String,
    /// Whether the variable was set (a `${VAR:-default}` may be unset without a problem).
    pub set: bool,
}

/// The accumulator one load passes through its readers (interior mutability: the readers
/// share it by reference).
#[derive(Debug, Default)]
pub(crate) struct Problems {
    inner: RefCell<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    found: Vec<Problem>,
    lines: BTreeMap<PathBuf, Lines>,
    files: Vec<PathBuf>,
    uses: BTreeMap<String, BTreeSet<VariableUse>>,
    secret_keys: BTreeSet<String>,
    trees: Vec<KeptTree>,
}

/// A merged tree kept for `check-config --show`: the label shown before its keys (empty for
/// `config.yaml`), the file of keys without another origin, the tree, the overlay origins.
pub(crate) type KeptTree = (String, PathBuf, Value, super::tree::Origins);

/// What one load collected besides the configuration itself.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) problems: Vec<Problem>,
    pub(crate) lines: BTreeMap<PathBuf, Lines>,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) uses: BTreeMap<String, BTreeSet<VariableUse>>,
    pub(crate) secret_keys: BTreeSet<String>,
    pub(crate) trees: Vec<KeptTree>,
}

impl Problems {
    /// Keeps a merged tree for `check-config --show`.
    pub(crate) fn keep_tree(&self, tree: KeptTree) {
        self.inner.borrow_mut().trees.push(tree);
    }

    /// Reads `file` as YAML ([`read_yaml_lines`]), remembering it and the lines of its keys.
    pub(crate) fn read(&self, file: &Path) -> Result<Value, ConfigError> {
        let (value, lines) = read_yaml_lines(file)?;
        let mut inner = self.inner.borrow_mut();
        if !inner.files.iter().any(|known| known == file) {
            inner.files.push(file.to_path_buf());
        }
        inner.lines.insert(file.to_path_buf(), lines);
        Ok(value)
    }

    /// Records `error` as an error with the hint its message suggests.
    pub(crate) fn error(&self, error: ConfigError) {
        self.record(Severity::Error, error, None, None);
    }

    /// Records `error` as an error with `hint`.
    pub(crate) fn error_with_hint(&self, error: ConfigError, hint: impl Into<String>) {
        self.record(Severity::Error, error, None, Some(hint.into()));
    }

    /// Records `error` as a warning with `hint`.
    pub(crate) fn warning(&self, error: ConfigError, hint: impl Into<String>) {
        self.record(Severity::Warning, error, None, Some(hint.into()));
    }

    /// Records that `${name}` (no default) at `key` of `file` is unset.
    pub(crate) fn missing_variable(&self, error: ConfigError, name: &str) {
        let hint = format!(
            "set {name} in the environment or in .env next to the config directory (.env.example lists every variable), or give the key a default: ${{{name}:-value}}"
        );
        self.record(Severity::Error, error, Some(name.to_string()), Some(hint));
    }

    /// Remembers that `key` of `file` used `${name}` (`set`: whether it was set).
    pub(crate) fn used_variable(&self, name: &str, file: &Path, key: &str, set: bool) {
        self.inner
            .borrow_mut()
            .uses
            .entry(name.to_string())
            .or_default()
            .insert(VariableUse {
                file: file.to_path_buf(),
                key: key.to_string(),
                set,
            });
    }

    /// Remembers that `key` (a dotted path of the merged tree) was read as a secret.
    pub(crate) fn secret_key(&self, key: &str) {
        self.inner.borrow_mut().secret_keys.insert(key.to_string());
    }

    /// The problems recorded so far, taken out (tests).
    #[cfg(test)]
    pub(crate) fn take(&self) -> Vec<Problem> {
        std::mem::take(&mut self.inner.borrow_mut().found)
    }

    /// Whether an error has been recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.inner
            .borrow()
            .found
            .iter()
            .any(|problem| problem.severity == Severity::Error)
    }

    /// One problem per file and key: a later problem at a key that already has one (the "found
    /// nothing" that follows an unset variable) is left out.
    fn record(
        &self,
        severity: Severity,
        error: ConfigError,
        variable: Option<String>,
        hint: Option<String>,
    ) {
        let mut inner = self.inner.borrow_mut();
        if let (ConfigError::Invalid { file, key, .. }, None) = (&error, &variable) {
            let known = inner.found.iter().any(|problem| {
                problem.error.key() == Some(key.as_str()) && problem.error.file() == file
            });
            if known {
                return;
            }
        }
        let line = match &error {
            ConfigError::Parse { line, .. } => Some(*line).filter(|line| *line > 0),
            ConfigError::Invalid { file, key, .. } => {
                inner.lines.get(file).and_then(|lines| line_of(lines, key))
            }
            _ => None,
        };
        let hint = hint.unwrap_or_else(|| hint_for(&error));
        inner.found.push(Problem {
            severity,
            error,
            line,
            variable,
            hint,
        });
    }

    /// Everything recorded.
    pub(crate) fn into_collected(self) -> Collected {
        let inner = self.inner.into_inner();
        Collected {
            problems: inner.found,
            lines: inner.lines,
            files: inner.files,
            uses: inner.uses,
            secret_keys: inner.secret_keys,
            trees: inner.trees,
        }
    }
}

/// The line of `key`, else of its closest ancestor in `lines`.
pub(crate) fn line_of(lines: &Lines, key: &str) -> Option<u64> {
    let mut candidate = key;
    loop {
        if let Some(line) = lines.get(candidate) {
            return Some(*line);
        }
        let index = candidate.rfind(['.', '['])?;
        candidate = candidate.get(..index)?;
    }
}

/// The hint for an error whose call site gave none, from what it expected.
fn hint_for(error: &ConfigError) -> String {
    match error {
        ConfigError::Io { .. } => {
            "check that the file exists and that this user may read it".to_string()
        }
        ConfigError::Parse { .. } => {
            "fix the YAML at this line: indentation with spaces, `key: value`, quotes around values holding `: ` or `#`".to_string()
        }
        ConfigError::Several(_) => String::new(),
        ConfigError::Invalid { message, .. } => {
            let hint = if message.starts_with("expected a number")
                || message.starts_with("expected a whole number")
            {
                "write the number in digits (e.g. 10), without words or units"
            } else if message.starts_with("expected true or false") {
                "write true or false"
            } else if message.starts_with("expected one of") {
                "use one of the values listed (spelling and case matter)"
            } else if message.starts_with("expected a URL") {
                "write the whole URL, starting with https:// (or http://)"
            } else if message.starts_with("expected an email address") {
                "write each address as name@example.com; separate addresses with \",\" or \";\""
            } else if message.contains("found nothing") {
                "give the key a value (in the file, or through the ${VAR} it names)"
            } else {
                "the comment above the key in the shipped config/config.yaml documents its values"
            };
            hint.to_string()
        }
    }
}

/// The known name closest to `unknown` (at most two edits away), for "did you mean".
pub(crate) fn closest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance (a swap of two neighbours counts once: `transfrom`).
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let width = right.len() + 1;
    let mut table = vec![0usize; (left.len() + 1) * width];
    for i in 0..=left.len() {
        table[i * width] = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=left.len() {
        for j in 1..=right.len() {
            let cost = usize::from(left[i - 1] != right[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && left[i - 1] == right[j - 2] && left[i - 2] == right[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[left.len() * width + right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let keys = ["source", "transform", "required", "fallback", "default"];
        assert_eq!(closest("transfrom", keys), Some("transform"));
        assert_eq!(closest("sourse", keys), Some("source"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn one_problem_per_key_with_its_line() {
        let problems = Problems::default();
        let file = PathBuf::from("c.yaml");
        problems.inner.borrow_mut().lines.insert(
            file.clone(),
            [("a".to_string(), 3), ("a.b".to_string(), 4)]
                .into_iter()
                .collect(),
        );
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            message: message.to_string(),
        };
        problems.missing_variable(invalid("a.b", "expected X to be set"), "X");
        problems.error(invalid("a.b", "expected something, found nothing"));
        problems.error(invalid("a.c", "expected a number > 0, found \"ten\""));
        let collected = problems.into_collected();
        assert_eq!(collected.problems.len(), 2);
        assert_eq!(collected.problems[0].line, Some(4));
        assert_eq!(collected.problems[0].variable.as_deref(), Some("X"));
        assert_eq!(collected.problems[1].line, Some(3), "the parent's line");
        assert!(collected.problems[1].hint.contains("digits"));
    }
}
