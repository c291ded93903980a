//! Typed, path-aware reading of a YAML mapping held as a [`serde_json::Value`].
//!
//! Each getter knows its dotted key path and the file the value came from, expands `${VAR}` on
//! read (lazily: a key that is never read — an unused auth method, a disabled email block — never
//! needs its variables), converts the text forms an environment variable produces (`"10"`,
//! `"true"`), applies the default, and records every problem as a [`ConfigError::Invalid`] naming
//! file, key and expectation in the load's [`Problems`], then goes on with the key's default (or
//! nothing), so that one load finds every problem. [`Section::finish`] records keys nobody read as
//! warnings (ops files may carry extra keys); [`Section::finish_strict`] as errors.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::problems::{closest, Problems};
use super::tree::{interpolate, join_key, kind_of, references, Origins};
use super::ConfigError;
use crate::secret::Secret;

/// What every reader of one file (or merged tree) shares: variables, the base file and provenance.
pub(crate) struct Ctx<'a> {
    /// Environment lookup used for `${VAR}`.
    pub(crate) vars: &'a dyn Fn(&str) -> Option<String>,
    /// File named in errors for keys without a recorded origin.
    pub(crate) file: PathBuf,
    /// Files of keys overridden by an overlay.
    pub(crate) origins: Origins,
    /// Where problems, variables and secret keys are recorded.
    pub(crate) problems: &'a Problems,
}

impl Ctx<'_> {
    /// The file that provided `path`.
    pub(crate) fn file_for(&self, path: &str) -> PathBuf {
        self.origins.file_for(path, &self.file).to_path_buf()
    }

    /// A [`ConfigError::Invalid`] for `path`.
    pub(crate) fn error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file_for(path),
            key: path.to_string(),
            message: message.into(),
        }
    }

    /// Records a problem at `path`.
    pub(crate) fn report(&self, path: &str, message: impl Into<String>) {
        self.problems.error(self.error(path, message));
    }

    /// Expands `${...}` in `text` found at `path`. Every unset `${VAR}` (without default) is
    /// recorded as a missing variable and expands to nothing; a malformed reference is recorded
    /// and the whole text is nothing. Never fails (the `Result` is for the callers' `?`).
    #[expect(
        clippy::unnecessary_wraps,
        reason = "fallible like every reader: callers chain the readers with `?`"
    )]
    pub(crate) fn expand(&self, path: &str, text: &str) -> Result<String, ConfigError> {
        let refs = match references(text) {
            Ok(refs) => refs,
            Err(error) => {
                self.report(path, error.message());
                return Ok(String::new());
            }
        };
        let file = self.file_for(path);
        for reference in &refs {
            let set = (self.vars)(&reference.name).is_some();
            self.problems
                .used_variable(&reference.name, &file, path, set);
            if !set && reference.default.is_none() {
                let error = super::tree::InterpolationError::Missing(reference.name.clone());
                self.problems
                    .missing_variable(self.error(path, error.message()), &reference.name);
            }
        }
        let lookup = |name: &str| Some((self.vars)(name).unwrap_or_default());
        Ok(interpolate(text, &lookup).unwrap_or_default())
    }

    /// A copy of `value` with `${...}` expanded in every string (keys untouched).
    pub(crate) fn expand_tree(&self, path: &str, value: &Value) -> Result<Value, ConfigError> {
        Ok(match value {
            Value::String(text) => Value::String(self.expand(path, text)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.expand_tree(&format!("{path}[{index}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, item) in map {
                    out.insert(key.clone(), self.expand_tree(&join_key(path, key), item)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// `"text"` for messages: quoted, control characters escaped, cut at 80 characters.
pub(crate) fn shown(text: &str) -> String {
    let mut cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// A URL for messages with user info and query removed (they may hold credentials).
pub(crate) fn shown_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or("");
    let redacted = match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(index) => (
                    rest.get(..index).unwrap_or(""),
                    rest.get(index..).unwrap_or(""),
                ),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://****@{host}{path}"),
                None => without_query.to_string(),
            }
        }
        None => without_query.to_string(),
    };
    shown(&redacted)
}

/// One mapping of the tree, at a key path.
pub(crate) struct Section<'a> {
    ctx: &'a Ctx<'a>,
    path: String,
    map: Option<&'a Map<String, Value>>,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Section<'a> {
    /// The section at `path` holding `value`: a mapping, or nothing (`None`/`null`: every key
    /// takes its default).
    ///
    /// Errors: the value is not a mapping.
    #[expect(
        clippy::unnecessary_wraps,
        reason = "fallible like every reader: callers chain the readers with `?`"
    )]
    pub(crate) fn new(
        ctx: &'a Ctx<'a>,
        path: &str,
        value: Option<&'a Value>,
    ) -> Result<Self, ConfigError> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                ctx.report(
                    path,
                    format!(
                        "expected a mapping (indented `key: value` lines), found {}",
                        kind_of(other)
                    ),
                );
                None
            }
        };
        Ok(Section {
            ctx,
            path: path.to_string(),
            map,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// The shared context.
    pub(crate) fn ctx(&self) -> &'a Ctx<'a> {
        self.ctx
    }

    /// Dotted path of this section itself.
    pub(crate) fn base_path(&self) -> &str {
        &self.path
    }

    /// Dotted path of `key` in this section.
    pub(crate) fn path(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    /// A [`ConfigError::Invalid`] for `key` of this section.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.ctx.error(&self.path(key), message)
    }

    /// Records a problem at `key` of this section.
    pub(crate) fn report(&self, key: &str, message: impl Into<String>) {
        self.ctx.report(&self.path(key), message);
    }

    /// Marks keys as known without reading them (e.g. the keys of a disabled block).
    pub(crate) fn mark_used(&self, keys: &[&str]) {
        let mut used = self.used.borrow_mut();
        for key in keys {
            used.insert((*key).to_string());
        }
    }

    /// The raw value of `key` (`null` = absent), marking the key as read.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().insert(key.to_string());
        self.map
            .and_then(|map| map.get(key))
            .filter(|value| !value.is_null())
    }

    /// Whether `key` is present with a non-null value (does not mark it read).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map
            .and_then(|map| map.get(key))
            .is_some_and(|value| !value.is_null())
    }

    /// The keys of this section, in file order (sorted).
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.map
            .map(|map| map.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The sub-section `key` (absent = empty section).
    pub(crate) fn section(&self, key: &str) -> Result<Section<'a>, ConfigError> {
        Section::new(self.ctx, &self.path(key), self.raw(key))
    }

    /// Text of a scalar `value` at `path`, `${...}` expanded, not trimmed.
    fn scalar_text(
        &self,
        path: &str,
        value: &Value,
        expectation: &str,
    ) -> Result<String, ConfigError> {
        match value {
            Value::String(text) => self.ctx.expand(path, text),
            Value::Number(number) => Ok(number.to_string()),
            Value::Bool(flag) => Ok(flag.to_string()),
            other => {
                self.ctx.report(
                    path,
                    format!("expected {expectation}, found {}", kind_of(other)),
                );
                Ok(String::new())
            }
        }
    }

    /// Text of `key`, `${...}` expanded and trimmed; `None` when absent or empty.
    pub(crate) fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        let text = self.scalar_text(&self.path(key), value, "text")?;
        let trimmed = text.trim();
        Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
    }

    /// Text of `key` exactly as written (expanded but not trimmed); `None` when absent.
    pub(crate) fn text_untrimmed(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(value) => self.scalar_text(&self.path(key), value, "text").map(Some),
        }
    }

    /// Text of `key`, or `default` when absent or empty.
    pub(crate) fn text_or(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.text(key)?.unwrap_or_else(|| default.to_string()))
    }

    /// Non-empty text of `key`. Errors: absent or empty (`expected {expectation}, found nothing`).
    pub(crate) fn required(&self, key: &str, expectation: &str) -> Result<String, ConfigError> {
        Ok(self.text(key)?.unwrap_or_else(|| {
            self.report(key, format!("expected {expectation}, found nothing"));
            String::new()
        }))
    }

    /// A secret: like [`Section::text`] but wrapped; errors never include the value. The key is
    /// remembered as a secret (`check-config --show` redacts it).
    pub(crate) fn secret(&self, key: &str) -> Result<Option<Secret<String>>, ConfigError> {
        self.ctx.problems.secret_key(&self.path(key));
        Ok(self.text(key)?.map(Secret::new))
    }

    /// A required secret. Errors: absent or empty.
    pub(crate) fn required_secret(
        &self,
        key: &str,
        expectation: &str,
    ) -> Result<Secret<String>, ConfigError> {
        self.ctx.problems.secret_key(&self.path(key));
        Ok(Secret::new(self.required(key, expectation)?))
    }

    /// A whole number `>= min` (a YAML number or text such as `"10"`), or `default`.
    pub(crate) fn u64_or(&self, key: &str, default: u64, min: u64) -> Result<u64, ConfigError> {
        Ok(self.u64(key, min)?.unwrap_or(default))
    }

    /// A whole number `>= min` (a YAML number or text such as `"10"`), or `None` when absent or
    /// empty.
    pub(crate) fn u64(&self, key: &str, min: u64) -> Result<Option<u64>, ConfigError> {
        let expectation = if min == 0 {
            "a whole number >= 0".to_string()
        } else if min == 1 {
            "a whole number > 0".to_string()
        } else {
            format!("a whole number >= {min}")
        };
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        let path = self.path(key);
        let parsed = match value {
            Value::Number(number) => number.as_u64().ok_or_else(|| number.to_string()),
            Value::String(_) => {
                let text = self.scalar_text(&path, value, &expectation)?;
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    return Ok(None);
                }
                trimmed
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|_| shown(trimmed))
            }
            other => Err(kind_of(other).to_string()),
        };
        match parsed {
            Ok(number) if number >= min => Ok(Some(number)),
            Ok(number) => {
                self.report(key, format!("expected {expectation}, found {number}"));
                Ok(None)
            }
            Err(found) => {
                self.report(key, format!("expected {expectation}, found {found}"));
                Ok(None)
            }
        }
    }

    /// One setting spelt two ways, `key` and `alias` (the plan's name and the project's), each
    /// read with `read`: the value of whichever is set. Both set to different values is an error
    /// at `alias` naming both keys (`expected the same value as {key} ...`); both set to the same
    /// value is fine. Not for secrets: the message shows both values.
    pub(crate) fn either<T: PartialEq + std::fmt::Debug>(
        &self,
        key: &str,
        alias: &str,
        read: impl Fn(&Self, &str) -> Result<Option<T>, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        let first = read(self, key)?;
        let second = read(self, alias)?;
        match (first, second) {
            (Some(first), Some(second)) if first != second => {
                self.report(
                    alias,
                    format!(
                        "expected the same value as {} (both keys name one setting; give only one), found {second:?} here and {first:?} there",
                        self.path(key)
                    ),
                );
                Ok(Some(first))
            }
            (Some(first), _) => Ok(Some(first)),
            (None, second) => Ok(second),
        }
    }

    /// Like [`Section::u64_or`] for `u32`.
    pub(crate) fn u32_or(&self, key: &str, default: u32, min: u32) -> Result<u32, ConfigError> {
        let value = self.u64_or(key, u64::from(default), u64::from(min))?;
        Ok(u32::try_from(value).unwrap_or_else(|_| {
            self.report(
                key,
                format!("expected a whole number <= {}, found {value}", u32::MAX),
            );
            default
        }))
    }

    /// A finite number `> 0`, or `default`.
    pub(crate) fn positive_f64_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        Ok(self.positive_f64(key)?.unwrap_or(default))
    }

    /// A finite number `> 0`, or `None` when absent or empty.
    pub(crate) fn positive_f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        let path = self.path(key);
        let parsed = match value {
            Value::Number(number) => number.as_f64().ok_or_else(|| number.to_string()),
            Value::String(_) => {
                let text = self.scalar_text(&path, value, "a number > 0")?;
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    return Ok(None);
                }
                trimmed.parse::<f64>().map_err(|_| shown(trimmed))
            }
            other => Err(kind_of(other).to_string()),
        };
        match parsed {
            Ok(number) if number.is_finite() && number > 0.0 => Ok(Some(number)),
            Ok(number) => {
                self.report(key, format!("expected a number > 0, found {number}"));
                Ok(None)
            }
            Err(found) => {
                self.report(key, format!("expected a number > 0, found {found}"));
                Ok(None)
            }
        }
    }

    /// One of the named `options` (case-insensitive), or `default` when absent or empty. Errors:
    /// any other text (`expected one of a, b, c, found "x"`).
    pub(crate) fn choice_or<T: Copy>(
        &self,
        key: &str,
        default: T,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(text) = self.text(key)? else {
            return Ok(default);
        };
        let wanted = text.trim().to_ascii_lowercase();
        Ok(options
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                self.report(
                    key,
                    format!("expected one of {}, found {text:?}", names.join(", ")),
                );
                default
            }))
    }

    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0` as text, any case), or `default`.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(default);
        };
        let path = self.path(key);
        match value {
            Value::Bool(flag) => Ok(*flag),
            Value::String(_) | Value::Number(_) => {
                let text = self.scalar_text(&path, value, "true or false")?;
                match text.trim().to_ascii_lowercase().as_str() {
                    "" => Ok(default),
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => {
                        self.report(
                            key,
                            format!("expected true or false, found {}", shown(text.trim())),
                        );
                        Ok(default)
                    }
                }
            }
            other => {
                self.report(
                    key,
                    format!("expected true or false, found {}", kind_of(other)),
                );
                Ok(default)
            }
        }
    }

    /// A list of texts: a YAML list of scalars, or one text with comma-separated items (handy
    /// for `${RECIPIENTS}`). Items are trimmed; empty items are dropped. Absent = empty list.
    pub(crate) fn text_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(Vec::new());
        };
        let path = self.path(key);
        let items: Vec<String> = match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    let item_path = format!("{path}[{index}]");
                    out.push(self.scalar_text(&item_path, item, "text")?);
                }
                out
            }
            Value::String(_) | Value::Number(_) => self
                .scalar_text(&path, value, "a list")?
                .split(',')
                .map(str::to_string)
                .collect(),
            other => {
                self.report(key, format!("expected a list, found {}", kind_of(other)));
                Vec::new()
            }
        };
        Ok(items
            .into_iter()
            .map(|item| item.trim().to_string())
            .filter(|item| !item.is_empty())
            .collect())
    }

    /// The items of a YAML list at `key` with their paths (absent = empty).
    #[expect(
        clippy::unnecessary_wraps,
        reason = "fallible like every reader: callers chain the readers with `?`"
    )]
    pub(crate) fn list(&self, key: &str) -> Result<Vec<(String, &'a Value)>, ConfigError> {
        let path = self.path(key);
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(index, item)| (format!("{path}[{index}]"), item))
                .collect()),
            Some(other) => {
                self.report(key, format!("expected a list, found {}", kind_of(other)));
                Ok(Vec::new())
            }
        }
    }

    /// A mapping of key -> text at `key` (values expanded and trimmed; numbers and booleans as
    /// text). Absent = empty.
    pub(crate) fn text_map(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let section = self.section(key)?;
        let mut out = Vec::new();
        for name in section.keys() {
            let value = section.raw(name);
            let text = match value {
                None => String::new(),
                Some(value) => section.scalar_text(&section.path(name), value, "text")?,
            };
            out.push((name.to_string(), text.trim().to_string()));
        }
        Ok(out)
    }

    /// An `http://` or `https://` URL at `key` (trailing `/` removed), or `default` when absent
    /// (`None` default = required).
    pub(crate) fn url(
        &self,
        key: &str,
        default: Option<&str>,
        expectation: &str,
    ) -> Result<String, ConfigError> {
        let text = match (self.text(key)?, default) {
            (Some(text), _) => text,
            (None, Some(default)) => default.to_string(),
            (None, None) => {
                self.report(key, format!("expected {expectation}, found nothing"));
                return Ok(UNSET_URL.to_string());
            }
        };
        Ok(check_url(&text).unwrap_or_else(|()| {
            self.report(
                key,
                format!(
                    "expected a URL starting with http:// or https:// ({expectation}), found {}",
                    shown_url(&text)
                ),
            );
            default.unwrap_or(UNSET_URL).to_string()
        }))
    }

    /// A path at `key`; relative paths are resolved against `base`.
    pub(crate) fn path_or(
        &self,
        key: &str,
        default: &str,
        base: &Path,
    ) -> Result<PathBuf, ConfigError> {
        Ok(resolve_path(base, self.text_or(key, default)?))
    }
}

/// `text` as a path, relative ones taken from `base` (the deployment root).
pub(crate) fn resolve_path(base: &Path, text: impl Into<PathBuf>) -> PathBuf {
    let path = text.into();
    if path.is_relative() {
        base.join(path)
    } else {
        path
    }
}

/// What a URL key holds after its problem was recorded (the load fails; the value only lets the
/// reading go on).
const UNSET_URL: &str = "https://unset.invalid";

impl Section<'_> {
    /// Records every key of this section that no getter read as a warning (ops files may carry
    /// extra keys; [`super::load`] logs warnings and goes on).
    pub(crate) fn finish(self) {
        self.unknown_keys(false, &[]);
    }

    /// Records every key of this section that no getter read as an error: where a misspelt key
    /// would silently change what is delivered (a field mapping's `transfrom: upper`).
    /// `known` are the keys the section may hold (for "did you mean").
    pub(crate) fn finish_strict(self, known: &[&str]) {
        self.unknown_keys(true, known);
    }

    fn unknown_keys(&self, strict: bool, known: &[&str]) {
        let Some(map) = self.map else {
            return;
        };
        let used = self.used.borrow();
        for key in map.keys() {
            if used.contains(key) {
                continue;
            }
            let path = self.path(key);
            let candidates = known.iter().copied().chain(used.iter().map(String::as_str));
            let hint = match closest(key, candidates) {
                Some(meant) => {
                    format!("did you mean {meant}? Correct the spelling, or remove the key")
                }
                None => {
                    "remove the key, or correct its spelling (the shipped files document every key)"
                        .to_string()
                }
            };
            let error = self.ctx.error(
                &path,
                if strict {
                    format!(
                        "expected one of {}, found the unknown key {key}",
                        known.join(", ")
                    )
                } else {
                    "unknown configuration key, ignored".to_string()
                },
            );
            if strict {
                self.ctx.problems.error_with_hint(error, hint);
            } else {
                self.ctx.problems.warning(error, hint);
            }
        }
    }
}

/// `url` without trailing `/` when it starts with `http://` or `https://` followed by a host.
pub(crate) fn check_url(url: &str) -> Result<String, ()> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or(())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err(());
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "RPS" => Some("ten".into()),
            "N" => Some("12".into()),
            "LIST" => Some("a@x.com, b@y.org,".into()),
            _ => None,
        }
    }

    fn ctx(problems: &Problems) -> Ctx<'_> {
        Ctx {
            vars: &vars,
            file: PathBuf::from("config/config.yaml"),
            origins: Origins::default(),
            problems,
        }
    }

    /// The problems recorded so far, as `Display` texts, and forgets them.
    fn taken(problems: &Problems) -> Vec<String> {
        problems
            .take()
            .into_iter()
            .map(|problem| problem.error.to_string())
            .collect()
    }

    #[test]
    fn numbers_from_yaml_and_env() {
        let problems = Problems::default();
        let ctx = ctx(&problems);
        let value =
            serde_json::json!({"a": 5, "b": "${N}", "c": "${RPS}", "d": -1, "e": 0, "f": [1]});
        let section = Section::new(&ctx, "box", Some(&value)).unwrap();
        assert_eq!(section.u64_or("a", 1, 1).unwrap(), 5);
        assert_eq!(section.u64_or("b", 1, 1).unwrap(), 12);
        assert_eq!(section.u64_or("missing", 7, 1).unwrap(), 7);
        assert!(taken(&problems).is_empty());
        // A bad value is recorded and the default used, so that reading goes on.
        assert!((section.positive_f64_or("c", 10.0).unwrap() - 10.0).abs() < f64::EPSILON);
        assert_eq!(section.u64_or("d", 1, 1).unwrap(), 1);
        assert!((section.positive_f64_or("e", 1.0).unwrap() - 1.0).abs() < f64::EPSILON);
        assert_eq!(section.u64_or("f", 1, 0).unwrap(), 1);
        assert_eq!(
            taken(&problems),
            [
                "config/config.yaml: box.c: expected a number > 0, found \"ten\"",
                "config/config.yaml: box.d: expected a whole number > 0, found -1",
                "config/config.yaml: box.e: expected a number > 0, found 0",
                "config/config.yaml: box.f: expected a whole number >= 0, found a list",
            ]
        );
    }

    #[test]
    fn texts_lists_and_bools() {
        let problems = Problems::default();
        let ctx = ctx(&problems);
        let value = serde_json::json!({
            "list": "${LIST}", "yaml_list": ["x", 1, null], "flag": "yes", "bad": "maybe",
            "empty": "${NOPE:-}", "id": 12345, "map": {"a": 1}
        });
        let section = Section::new(&ctx, "email", Some(&value)).unwrap();
        assert_eq!(
            section.text_list("list").unwrap(),
            vec!["a@x.com", "b@y.org"]
        );
        assert_eq!(section.text_list("yaml_list").unwrap(), vec!["x", "1"]);
        assert!(section.bool_or("flag", false).unwrap());
        assert!(!section.bool_or("bad", false).unwrap());
        assert_eq!(section.text("empty").unwrap(), None);
        assert_eq!(section.text("id").unwrap().as_deref(), Some("12345"));
        assert_eq!(section.text("map").unwrap(), None);
        assert_eq!(section.required("nothing", "a domain").unwrap(), "");
        assert_eq!(section.text("unset").unwrap(), None);
        assert_eq!(
            taken(&problems),
            [
                "config/config.yaml: email.bad: expected true or false, found \"maybe\"",
                "config/config.yaml: email.map: expected text, found a mapping",
                "config/config.yaml: email.nothing: expected a domain, found nothing",
            ]
        );
    }

    #[test]
    fn every_missing_variable_is_recorded_once_per_key() {
        let problems = Problems::default();
        let ctx = ctx(&problems);
        let value = serde_json::json!({"both": "${NOPE1}-${NOPE2}", "n": "${NOPE3}"});
        let section = Section::new(&ctx, "dam", Some(&value)).unwrap();
        assert_eq!(section.text("both").unwrap().as_deref(), Some("-"));
        assert_eq!(section.required("n", "a number").unwrap(), "");
        let collected = problems.into_collected();
        let missing: Vec<Option<&str>> = collected
            .problems
            .iter()
            .map(|problem| problem.variable.as_deref())
            .collect();
        assert_eq!(missing, [Some("NOPE1"), Some("NOPE2"), Some("NOPE3")]);
        assert_eq!(collected.uses.len(), 3);
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        assert_eq!(
            check_url("https://api.box.com/").unwrap(),
            "https://api.box.com"
        );
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("api.box.com").is_err());
        assert_eq!(
            shown_url("https://user:pw@host/x?token=1"),
            "\"https://****@host/x\""
        );
    }
}
