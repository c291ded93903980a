//! Typed, path-aware reading of a YAML mapping held as a [`serde_json::Value`].
//!
//! Each getter knows its dotted key path and the file the value came from, expands `${VAR}` on
//! read (lazily: a key that is never read — an unused auth method, a disabled email block — never
//! needs its variables), converts the text forms an environment variable produces (`"10"`,
//! `"true"`), applies the default, and turns every problem into a [`ConfigError::Invalid`] naming
//! file, key and expectation. [`Section::finish`] warns about keys nobody read (ops files may carry
//! extra keys; they are not an error).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::tree::{interpolate, join_key, kind_of, Origins};
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

    /// Expands `${...}` in `text` found at `path`.
    pub(crate) fn expand(&self, path: &str, text: &str) -> Result<String, ConfigError> {
        interpolate(text, self.vars).map_err(|error| self.error(path, error.message()))
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
    pub(crate) fn new(
        ctx: &'a Ctx<'a>,
        path: &str,
        value: Option<&'a Value>,
    ) -> Result<Self, ConfigError> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(ctx.error(
                    path,
                    format!(
                        "expected a mapping (indented `key: value` lines), found {}",
                        kind_of(other)
                    ),
                ))
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
            other => Err(self.ctx.error(
                path,
                format!("expected {expectation}, found {}", kind_of(other)),
            )),
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
        self.text(key)?
            .ok_or_else(|| self.error(key, format!("expected {expectation}, found nothing")))
    }

    /// A secret: like [`Section::text`] but wrapped; errors never include the value.
    pub(crate) fn secret(&self, key: &str) -> Result<Option<Secret<String>>, ConfigError> {
        Ok(self.text(key)?.map(Secret::new))
    }

    /// A required secret. Errors: absent or empty.
    pub(crate) fn required_secret(
        &self,
        key: &str,
        expectation: &str,
    ) -> Result<Secret<String>, ConfigError> {
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
            Ok(number) => Err(self.error(key, format!("expected {expectation}, found {number}"))),
            Err(found) => Err(self.error(key, format!("expected {expectation}, found {found}"))),
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
            (Some(first), Some(second)) if first != second => Err(self.error(
                alias,
                format!(
                    "expected the same value as {} (both keys name one setting; give only one), found {second:?} here and {first:?} there",
                    self.path(key)
                ),
            )),
            (Some(first), _) => Ok(Some(first)),
            (None, second) => Ok(second),
        }
    }

    /// Like [`Section::u64_or`] for `u32`.
    pub(crate) fn u32_or(&self, key: &str, default: u32, min: u32) -> Result<u32, ConfigError> {
        let value = self.u64_or(key, u64::from(default), u64::from(min))?;
        u32::try_from(value).map_err(|_| {
            self.error(
                key,
                format!("expected a whole number <= {}, found {value}", u32::MAX),
            )
        })
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
            Ok(number) => Err(self.error(key, format!("expected a number > 0, found {number}"))),
            Err(found) => Err(self.error(key, format!("expected a number > 0, found {found}"))),
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
        options
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                self.error(
                    key,
                    format!("expected one of {}, found {text:?}", names.join(", ")),
                )
            })
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
                    _ => Err(self.error(
                        key,
                        format!("expected true or false, found {}", shown(text.trim())),
                    )),
                }
            }
            other => Err(self.error(
                key,
                format!("expected true or false, found {}", kind_of(other)),
            )),
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
                return Err(self.error(key, format!("expected a list, found {}", kind_of(other))))
            }
        };
        Ok(items
            .into_iter()
            .map(|item| item.trim().to_string())
            .filter(|item| !item.is_empty())
            .collect())
    }

    /// The items of a YAML list at `key` with their paths (absent = empty).
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
                Err(self.error(key, format!("expected a list, found {}", kind_of(other))))
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
                return Err(self.error(key, format!("expected {expectation}, found nothing")))
            }
        };
        check_url(&text).map_err(|()| {
            self.error(
                key,
                format!(
                    "expected a URL starting with http:// or https:// ({expectation}), found {}",
                    shown_url(&text)
                ),
            )
        })
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

impl Section<'_> {
    /// Warns (tracing) about every key of this section that no getter read.
    pub(crate) fn finish(self) {
        let Some(map) = self.map else {
            return;
        };
        let used = self.used.borrow();
        for key in map.keys() {
            if !used.contains(key) {
                let path = self.path(key);
                tracing::warn!(
                    file = %self.ctx.file_for(&path).display(),
                    key = %path,
                    "unknown configuration key, ignored"
                );
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

    fn ctx() -> Ctx<'static> {
        Ctx {
            vars: &vars,
            file: PathBuf::from("config/config.yaml"),
            origins: Origins::default(),
        }
    }

    #[test]
    fn numbers_from_yaml_and_env() {
        let ctx = ctx();
        let value =
            serde_json::json!({"a": 5, "b": "${N}", "c": "${RPS}", "d": -1, "e": 0, "f": [1]});
        let section = Section::new(&ctx, "box", Some(&value)).unwrap();
        assert_eq!(section.u64_or("a", 1, 1).unwrap(), 5);
        assert_eq!(section.u64_or("b", 1, 1).unwrap(), 12);
        assert_eq!(section.u64_or("missing", 7, 1).unwrap(), 7);
        assert_eq!(
            section.positive_f64_or("c", 10.0).unwrap_err().to_string(),
            "config/config.yaml: box.c: expected a number > 0, found \"ten\""
        );
        assert_eq!(
            section.u64_or("d", 1, 1).unwrap_err().to_string(),
            "config/config.yaml: box.d: expected a whole number > 0, found -1"
        );
        assert_eq!(
            section.positive_f64_or("e", 1.0).unwrap_err().to_string(),
            "config/config.yaml: box.e: expected a number > 0, found 0"
        );
        assert_eq!(
            section.u64_or("f", 1, 0).unwrap_err().to_string(),
            "config/config.yaml: box.f: expected a whole number >= 0, found a list"
        );
    }

    #[test]
    fn texts_lists_and_bools() {
        let ctx = ctx();
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
        assert!(section
            .bool_or("bad", false)
            .unwrap_err()
            .to_string()
            .ends_with("expected true or false, found \"maybe\""));
        assert_eq!(section.text("empty").unwrap(), None);
        assert_eq!(section.text("id").unwrap().as_deref(), Some("12345"));
        assert_eq!(
            section.text("map").unwrap_err().to_string(),
            "config/config.yaml: email.map: expected text, found a mapping"
        );
        assert_eq!(
            section
                .required("nothing", "a domain")
                .unwrap_err()
                .to_string(),
            "config/config.yaml: email.nothing: expected a domain, found nothing"
        );
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
