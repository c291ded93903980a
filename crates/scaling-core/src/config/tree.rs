//! YAML files as [`serde_json::Value`] trees: reading, deep merge with provenance, `${VAR}`
//! interpolation.
//!
//! Files are parsed with serde-saphyr (pure Rust; errors carry line and column) straight into a JSON
//! value tree, so merging, key paths and interpolation are plain tree walks. Typed sections are read
//! from the tree afterwards by [`super::reader`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ConfigError;

/// Reads `file` as one YAML document whose top level is a mapping, with the 1-based line of
/// every key path of the file (`a.b`, `a.list[0]`: the line of the key, or of the list item).
/// An empty file (or one holding only comments) is an empty mapping.
///
/// Errors: [`ConfigError::Io`] when the file cannot be read, [`ConfigError::Parse`] with line and
/// column for invalid YAML (duplicate keys included), [`ConfigError::Invalid`] when the top level is
/// not a mapping. Messages never quote the file's text beyond the parser's own description.
pub(crate) fn read_yaml_lines(file: &Path) -> Result<(Value, Lines), ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    parse_yaml_lines(file, &text)
}

/// Dotted key path ([`join_key`] spelling) -> 1-based line in one file.
pub(crate) type Lines = BTreeMap<String, u64>;

/// [`parse_yaml_lines`] without the lines.
#[cfg(test)]
pub(crate) fn parse_yaml(file: &Path, text: &str) -> Result<Value, ConfigError> {
    parse_yaml_lines(file, text).map(|(value, _)| value)
}

/// [`read_yaml_lines`] on text already read (`file` only names it in errors).
pub(crate) fn parse_yaml_lines(file: &Path, text: &str) -> Result<(Value, Lines), ConfigError> {
    let only_comments = text.lines().all(|line| {
        line.trim().is_empty() || line.trim_start().starts_with('#') || line.trim() == "---"
    });
    if only_comments {
        return Ok((Value::Object(Map::new()), Lines::new()));
    }
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // `no`, `on`, `yes` stay strings (the "Norway problem"); booleans are read by key.
    options.strict_booleans = true;
    let node: serde_saphyr::Spanned<Node> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|error| {
            let location = error.location();
            ConfigError::Parse {
                file: file.to_path_buf(),
                line: location.as_ref().map_or(0, |l| l.line()),
                column: location.as_ref().map_or(0, |l| l.column()),
                message: parse_message(&error),
            }
        })?;
    let mut lines = Lines::new();
    let value = node.value.into_value("", &mut lines);
    match value {
        Value::Object(_) => Ok((value, lines)),
        Value::Null => Ok((Value::Object(Map::new()), lines)),
        other => Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            key: TOP_LEVEL.to_string(),
            message: format!(
                "expected a mapping of `key: value` lines, found {}",
                kind_of(&other)
            ),
        }),
    }
}

/// The key path of a problem with a whole file (not one of its keys).
pub(crate) const TOP_LEVEL: &str = "(top level)";

/// A YAML node with the positions of its keys and items, as serde-saphyr reads it
/// ([`serde_saphyr::Spanned`]); turned into a [`Value`] and a [`Lines`] table at once.
enum Node {
    Null,
    Bool(bool),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
    List(Vec<serde_saphyr::Spanned<Node>>),
    Mapping(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Node>)>),
}

impl Node {
    /// The value of this node at `path`, recording the line of every key and item below it.
    fn into_value(self, path: &str, lines: &mut Lines) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(flag) => Value::Bool(flag),
            Node::Signed(number) => Value::from(number),
            Node::Unsigned(number) => Value::from(number),
            Node::Float(number) => {
                serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
            }
            Node::Text(text) => Value::String(text),
            Node::List(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        let child = format!("{path}[{index}]");
                        lines.insert(child.clone(), item.referenced.line());
                        item.value.into_value(&child, lines)
                    })
                    .collect(),
            ),
            Node::Mapping(entries) => {
                let mut map = Map::new();
                for (key, item) in entries {
                    let child = join_key(path, &key.value);
                    lines.insert(child.clone(), key.referenced.line());
                    let value = item.value.into_value(&child, lines);
                    map.insert(key.value, value);
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> serde::de::Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a YAML value")
            }

            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }

            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }

            fn visit_some<D: serde::Deserializer<'de>>(self, inner: D) -> Result<Node, D::Error> {
                serde::Deserialize::deserialize(inner)
            }

            fn visit_bool<E>(self, flag: bool) -> Result<Node, E> {
                Ok(Node::Bool(flag))
            }

            fn visit_i64<E>(self, number: i64) -> Result<Node, E> {
                Ok(Node::Signed(number))
            }

            fn visit_u64<E>(self, number: u64) -> Result<Node, E> {
                Ok(Node::Unsigned(number))
            }

            fn visit_f64<E>(self, number: f64) -> Result<Node, E> {
                Ok(Node::Float(number))
            }

            fn visit_str<E>(self, text: &str) -> Result<Node, E> {
                Ok(Node::Text(text.to_string()))
            }

            fn visit_string<E>(self, text: String) -> Result<Node, E> {
                Ok(Node::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Mapping(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// The parser's message without its own location suffix (the location is kept separately).
fn parse_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first_line = text.lines().next().unwrap_or("invalid YAML").trim();
    // Drop serde-saphyr's advice to API users ("set DuplicateKeyPolicy in Options ...").
    let first_line = first_line
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(first_line);
    // serde-saphyr appends " at line L, column C"; drop it, Display adds the location itself.
    match first_line.rfind(" at line ") {
        Some(index) if index > 0 => first_line.get(..index).unwrap_or(first_line).to_string(),
        _ => first_line.to_string(),
    }
}

/// A short description of a value's kind for "found ..." messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Where each overridden key came from: dotted key path -> file. Keys not listed come from the
/// base file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    by_path: BTreeMap<String, PathBuf>,
}

impl Origins {
    /// The file that provided `path`: the origin of `path` itself or of its closest recorded
    /// ancestor, else `default`.
    pub(crate) fn file_for<'a>(&'a self, path: &str, default: &'a Path) -> &'a Path {
        let mut candidate = path;
        loop {
            if let Some(file) = self.by_path.get(candidate) {
                return file;
            }
            match candidate.rfind(['.', '[']) {
                Some(index) => candidate = candidate.get(..index).unwrap_or(""),
                None => return default,
            }
        }
    }
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything else (scalars, lists,
/// `null`) replaces the base value. Every replaced path is recorded in `origins` as coming from
/// `file`. A `null` in the overlay therefore resets a key to its built-in default.
pub(crate) fn merge(
    base: &mut Value,
    overlay: Value,
    path: &str,
    file: &Path,
    origins: &mut Origins,
) {
    match (base, overlay) {
        (Value::Object(base_map), Value::Object(overlay_map)) => {
            for (key, value) in overlay_map {
                let child = join_key(path, &key);
                match base_map.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value, &child, file, origins);
                    }
                    _ => {
                        origins.by_path.insert(child, file.to_path_buf());
                        base_map.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => {
            origins.by_path.insert(path.to_string(), file.to_path_buf());
            *base = overlay;
        }
    }
}

/// `parent.key`, with the key in double quotes when it holds anything but letters, digits, `_`
/// and `-` (OTMM field IDs such as `"ARTESIA.FIELD.ASSET NAME"`).
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let shown = if plain {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        shown
    } else {
        format!("{parent}.{shown}")
    }
}

/// Why a `${...}` reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${NAME}` without default and `NAME` is not set.
    Missing(String),
    /// `${` without a closing `}`.
    Unterminated,
    /// `${...}` whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    BadName(String),
    /// `${A:-${B}}`: defaults cannot hold references.
    Nested(String),
}

impl InterpolationError {
    /// The message part of a [`ConfigError::Invalid`] (never holds a variable's value).
    pub(crate) fn message(&self) -> String {
        match self {
            InterpolationError::Missing(name) => format!(
                "expected environment variable {name} to be set (the value is ${{{name}}}); set it in the environment or in .env, or give a default with ${{{name}:-default}}"
            ),
            InterpolationError::Unterminated => {
                "expected ${NAME} or ${NAME:-default}, found \"${\" without a closing \"}\" (write $${ for a literal \"${\")".to_string()
            }
            InterpolationError::BadName(name) => format!(
                "expected ${{NAME}} or ${{NAME:-default}} with NAME made of letters, digits and \"_\", found ${{{name}}}"
            ),
            InterpolationError::Nested(name) => format!(
                "the default of ${{{name}:-...}} cannot contain another ${{...}}; set {name} or write a literal default"
            ),
        }
    }
}

/// Starts the value a lenient lookup ([`super::load_database_only`]) gives an unset variable:
/// `${VAR:-default}` then takes its default, `${VAR}` the placeholder after the mark.
pub(crate) const UNSET_MARK: char = '\u{1}';

/// Expands `${NAME}` and `${NAME:-default}` in `text` with `vars`.
///
/// `${NAME}` is the variable's value (an empty value is allowed) and an error when it is not set;
/// `${NAME:-default}` is the default when the variable is unset or empty (`${NAME:-}` = empty
/// text). `$${` is a literal `${`; any other `$` is kept as is. Values are not expanded again.
pub(crate) fn interpolate(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    walk_references(text, &mut |name, default| match default {
        Some(default) => Ok(match vars(name) {
            Some(value) if !value.is_empty() && !value.starts_with(UNSET_MARK) => value,
            _ => default.to_string(),
        }),
        None => match vars(name) {
            Some(value) => Ok(value
                .strip_prefix(UNSET_MARK)
                .map(str::to_string)
                .unwrap_or(value)),
            None => Err(InterpolationError::Missing(name.to_string())),
        },
    })
}

/// One `${NAME}` or `${NAME:-default}` of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The variable's name.
    pub(crate) name: String,
    /// The default after `:-`, when given.
    pub(crate) default: Option<String>,
}

/// The `${...}` references of `text`, in order (what [`interpolate`] would look up). Errors: as
/// [`interpolate`] for a malformed reference.
pub(crate) fn references(text: &str) -> Result<Vec<Reference>, InterpolationError> {
    let mut found = Vec::new();
    walk_references(text, &mut |name, default| {
        found.push(Reference {
            name: name.to_string(),
            default: default.map(str::to_string),
        });
        Ok(String::new())
    })?;
    Ok(found)
}

/// What [`walk_references`] calls for each reference: name and default -> replacement.
type Resolve<'r> = dyn FnMut(&str, Option<&str>) -> Result<String, InterpolationError> + 'r;

/// The one parser of `${...}`: copies `text`, replacing each reference with what `resolve`
/// gives for its name and default.
fn walk_references(text: &str, resolve: &mut Resolve<'_>) -> Result<String, InterpolationError> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(rest.get(..dollar).unwrap_or(""));
        let after = rest.get(dollar + 1..).unwrap_or("");
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
            continue;
        }
        let Some(body_and_rest) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_rest.find('}') else {
            return Err(InterpolationError::Unterminated);
        };
        let body = body_and_rest.get(..end).unwrap_or("");
        rest = body_and_rest.get(end + 1..).unwrap_or("");
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(InterpolationError::BadName(body.to_string()));
        }
        if default.is_some_and(|default| default.contains("${")) {
            return Err(InterpolationError::Nested(name.to_string()));
        }
        out.push_str(&resolve(name, default)?);
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.example.com".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("p${x}".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_forms() {
        assert_eq!(interpolate("plain", &vars).unwrap(), "plain");
        assert_eq!(interpolate("${HOST}", &vars).unwrap(), "db.example.com");
        assert_eq!(
            interpolate("https://${HOST}/x", &vars).unwrap(),
            "https://db.example.com/x"
        );
        assert_eq!(interpolate("${NOPE:-fallback}", &vars).unwrap(), "fallback");
        assert_eq!(
            interpolate("${EMPTY:-fallback}", &vars).unwrap(),
            "fallback"
        );
        assert_eq!(interpolate("${EMPTY}", &vars).unwrap(), "");
        assert_eq!(interpolate("${NOPE:-}", &vars).unwrap(), "");
        assert_eq!(
            interpolate("${HOST:-x}:${NOPE:-5432}", &vars).unwrap(),
            "db.example.com:5432"
        );
        assert_eq!(
            interpolate("cost $5 and $${HOST}", &vars).unwrap(),
            "cost $5 and ${HOST}"
        );
        assert_eq!(interpolate("${DOLLAR}", &vars).unwrap(), "p${x}");
        assert_eq!(
            interpolate("é${HOST}é$", &vars).unwrap(),
            "édb.example.comé$"
        );
        assert_eq!(interpolate("${NOPE:-a:-b}", &vars).unwrap(), "a:-b");
    }

    #[test]
    fn interpolation_errors() {
        assert_eq!(
            interpolate("${NOPE}", &vars),
            Err(InterpolationError::Missing("NOPE".into()))
        );
        assert_eq!(
            interpolate("${HOST", &vars),
            Err(InterpolationError::Unterminated)
        );
        assert_eq!(
            interpolate("${}", &vars),
            Err(InterpolationError::BadName(String::new()))
        );
        assert_eq!(
            interpolate("${1X}", &vars),
            Err(InterpolationError::BadName("1X".into()))
        );
        assert_eq!(
            interpolate("${A:-${B}}", &vars),
            Err(InterpolationError::Nested("A".into()))
        );
        assert!(InterpolationError::Missing("X".into())
            .message()
            .contains("${X:-default}"));
    }

    #[test]
    fn merge_records_origins() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        let overlay = serde_json::json!({"a": {"c": [3], "e": {"f": 1}}, "d": null});
        let mut origins = Origins::default();
        merge(&mut base, overlay, "", Path::new("env.yaml"), &mut origins);
        assert_eq!(
            base,
            serde_json::json!({"a": {"b": 1, "c": [3], "e": {"f": 1}}, "d": null})
        );
        let default = Path::new("base.yaml");
        assert_eq!(origins.file_for("a.b", default), default);
        assert_eq!(origins.file_for("a.c[0]", default), Path::new("env.yaml"));
        assert_eq!(origins.file_for("a.e.f", default), Path::new("env.yaml"));
        assert_eq!(origins.file_for("d", default), Path::new("env.yaml"));
    }

    #[test]
    fn keys_with_dots_are_quoted() {
        assert_eq!(join_key("", "box"), "box");
        assert_eq!(join_key("box", "base_url"), "box.base_url");
        assert_eq!(
            join_key("forced_field_values", "FERRERO.FIELD.ASSET STATUS"),
            "forced_field_values.\"FERRERO.FIELD.ASSET STATUS\""
        );
    }

    #[test]
    fn yaml_parse_errors_have_locations() {
        let error = parse_yaml(Path::new("c.yaml"), "a: 1\nb: [1, 2\n").unwrap_err();
        match error {
            ConfigError::Parse {
                line, ref message, ..
            } => assert!(line >= 2, "{line} {message}"),
            other => panic!("{other:?}"),
        }
        let error = parse_yaml(Path::new("c.yaml"), "a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "c.yaml: line 2, column 1: duplicate mapping key: a"
        );
        assert!(
            matches!(error, ConfigError::Parse { line: 2, .. }),
            "{error:?}"
        );
        assert!(parse_yaml(Path::new("c.yaml"), "# only\n\n")
            .unwrap()
            .as_object()
            .unwrap()
            .is_empty());
        let error = parse_yaml(Path::new("c.yaml"), "- 1\n- 2\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "c.yaml: (top level): expected a mapping of `key: value` lines, found a list"
        );
    }

    #[test]
    fn yaml_scalars_keep_norway() {
        let value = parse_yaml(
            Path::new("c.yaml"),
            "a: no\nb: true\nc: 10\nd: \"10\"\ne: 1.5\n",
        )
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "no", "b": true, "c": 10, "d": "10", "e": 1.5})
        );
    }
}
