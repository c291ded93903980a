//! `box-setup check-config`: the whole configuration checked offline (no network, no database),
//! every problem at once, and the effective merged configuration with secrets redacted.
//!
//! Both come from the one loader ([`super::load_collecting`]): the problems it records, the
//! files and lines it read, the variables each key used and the keys it read as secrets. The
//! `.env.example` of the shipped files is generated from the same files ([`env_example`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::problems::KeptTree;
use super::problems::{line_of, Collected, Problem, Severity, VariableUse};
use super::tree::{interpolate, join_key, read_yaml_lines, references, Lines};
use super::{deployment_root, Config, ConfigError};

/// What [`check`] found.
#[derive(Debug)]
pub struct CheckReport {
    /// Every problem, errors and warnings, in the order found.
    pub problems: Vec<Problem>,
    /// The files read (config, overlay or include, field mappings, webhooks, templates).
    pub files: Vec<PathBuf>,
    /// Every variable a key that applies refers to, with where it is used.
    pub variables: BTreeMap<String, BTreeSet<VariableUse>>,
    /// The effective values (see [`ShownValue`]), secrets redacted.
    pub shown: Vec<ShownValue>,
    /// The configuration, when it has no error.
    pub config: Option<Config>,
}

impl CheckReport {
    /// The problems that make the configuration unusable.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|problem| problem.severity == Severity::Error)
    }

    /// Whether the configuration can be used (no error; warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The unset variables (no default) and where each is used.
    pub fn missing_variables(&self) -> BTreeMap<&str, Vec<&Problem>> {
        let mut missing: BTreeMap<&str, Vec<&Problem>> = BTreeMap::new();
        for problem in &self.problems {
            if let Some(name) = &problem.variable {
                missing.entry(name).or_default().push(problem);
            }
        }
        missing
    }
}

/// One effective value of `--show`: a leaf of the merged configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownValue {
    /// The dotted key path (keys of `webhooks.yaml` and `field_mappings.yaml` after the file's
    /// name and `: `).
    pub key: String,
    /// The value after `${...}` expansion as JSON text (`"text"`, `10`, `true`), or `****`.
    pub value: String,
    /// Whether the value was redacted (a secret, or it holds one).
    pub redacted: bool,
    /// The file that gave the value.
    pub file: PathBuf,
    /// Its line there, when known.
    pub line: Option<u64>,
    /// The variables the value refers to (`$VAR`), set ones only.
    pub variables: Vec<String>,
}

impl ShownValue {
    /// `file:line` and ` $VAR` for each variable used.
    pub fn origin(&self) -> String {
        let mut origin = self.file.display().to_string();
        if let Some(line) = self.line {
            origin.push_str(&format!(":{line}"));
        }
        for name in &self.variables {
            origin.push_str(&format!(" ${name}"));
        }
        origin
    }
}

/// The text shown instead of a secret.
const REDACTED: &str = "****";

/// Loads and checks the configuration in `config_dir` for `environment` like [`super::load_with_vars`]
/// (no `.env` is read here: the caller loads it), without contacting anything: every file,
/// overlay and `include`, every `${VAR}` of the keys that apply, mapping sources and transforms
/// (unknown keys of a mapping are errors), the naming grammar, webhook events, recipients, every
/// email template rendered strictly with sample data, and the Box app's credentials file (read
/// and its key decrypted, offline). Never fails: every problem is in the report.
pub fn check(
    config_dir: &Path,
    environment: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> CheckReport {
    let (config, collected) = super::load_collecting(config_dir, environment, vars);
    let Collected {
        mut problems,
        lines,
        files,
        uses,
        secret_keys,
        trees,
    } = collected;
    if let Some(config) = &config {
        if let Err(error) = crate::boxapi::BoxAppConfig::load(&config.box_api.credentials) {
            let key = match &config.box_api.credentials {
                super::BoxCredentials::AppConfigFile(_) => "box.app_config_file",
                super::BoxCredentials::Keys(_) => "box.rsa_private_key_path",
            };
            let file = config_dir.join("config.yaml");
            problems.push(Problem {
                severity: Severity::Error,
                line: lines.get(&file).and_then(|lines| line_of(lines, key)),
                error: ConfigError::Invalid {
                    file,
                    key: key.to_string(),
                    message: format!(
                        "expected the Box app's credentials, readable by this user, found {}: {error}",
                        config.box_api.credentials.file().display()
                    ),
                },
                variable: None,
                hint: "download the app config JSON from the Box Developer Console (Configuration > Add and Manage Public Keys > Generate a Public/Private Keypair), point BOX_CONFIG_FILE at it and chmod 600 it".to_string(),
            });
        }
    }
    let shown = show(&trees, &lines, &secret_keys, vars);
    let variables = uses;
    let config = config.filter(|_| {
        !problems
            .iter()
            .any(|problem| problem.severity == Severity::Error)
    });
    CheckReport {
        problems,
        files,
        variables,
        shown,
        config,
    }
}

/// [`check`] as the binaries run it: `{deployment root}/.env` loaded first ([`super::load`]'s
/// rules; a malformed `.env` is one more problem), variables from the process environment.
pub fn check_deployment(config_dir: &Path, environment: Option<&str>) -> CheckReport {
    let dotenv = super::load_dotenv_files(config_dir);
    let vars = |name: &str| std::env::var(name).ok();
    let mut report = check(config_dir, environment, &vars);
    if let Err(error) = dotenv {
        report.config = None;
        report.problems.insert(
            0,
            Problem {
                severity: Severity::Error,
                line: match &error {
                    ConfigError::Parse { line, .. } => Some(*line).filter(|line| *line > 0),
                    _ => None,
                },
                error,
                variable: None,
                hint: "write one KEY=value per line; quote values holding spaces or #".to_string(),
            },
        );
    }
    report
}

/// Whether a key holds a credential by its name: `password`, `*secret*`, `api_key`,
/// `passphrase`, `token`, `*_token`, `database.url` (it may carry the password), any header value.
pub fn is_secret_key(path: &str) -> bool {
    let last = path
        .rsplit(['.', '['])
        .find(|part| !part.ends_with(']'))
        .unwrap_or(path)
        .trim_matches('"')
        .to_ascii_lowercase();
    last.contains("password")
        || last.contains("secret")
        || last.contains("passphrase")
        || last == "api_key"
        || last == "token"
        || last.ends_with("_token")
        || path == "database.url"
        || path.contains(".headers.")
}

/// The leaves of every merged tree, expanded, with origins; secrets redacted: keys read as
/// secrets, keys named like one ([`is_secret_key`]), any value using a variable a secret uses,
/// any value holding a secret's value, and the user info of URLs.
fn show(
    trees: &[KeptTree],
    lines: &BTreeMap<PathBuf, Lines>,
    secret_keys: &BTreeSet<String>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Vec<ShownValue> {
    struct Leaf {
        prefix_key: String,
        key: String,
        file: PathBuf,
        raw: Value,
    }
    let mut leaves = Vec::new();
    for (prefix, base_file, tree, origins) in trees {
        let mut flat = Vec::new();
        flatten(tree, "", &mut flat);
        for (key, raw) in flat {
            let file = origins.file_for(&key, base_file).to_path_buf();
            leaves.push(Leaf {
                prefix_key: format!("{prefix}{key}"),
                key,
                file,
                raw,
            });
        }
    }
    let lookup = |name: &str| Some(vars(name).unwrap_or_default());
    let expanded = |raw: &Value| -> Value {
        match raw {
            Value::String(text) => {
                Value::String(interpolate(text, &lookup).unwrap_or_else(|_| text.clone()))
            }
            other => other.clone(),
        }
    };
    let variables_of = |raw: &Value| -> Vec<String> {
        raw.as_str()
            .and_then(|text| references(text).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|reference| reference.name)
            .collect()
    };
    let secret_leaf = |leaf: &Leaf| secret_keys.contains(&leaf.key) || is_secret_key(&leaf.key);
    let mut secret_variables = BTreeSet::new();
    let mut secret_values = BTreeSet::new();
    for leaf in leaves.iter().filter(|leaf| secret_leaf(leaf)) {
        secret_variables.extend(variables_of(&leaf.raw));
        if let Value::String(value) = expanded(&leaf.raw) {
            if value.len() >= 4 {
                secret_values.insert(value);
            }
        }
    }
    for name in &secret_variables {
        if let Some(value) = vars(name).filter(|value| value.len() >= 4) {
            secret_values.insert(value);
        }
    }
    leaves
        .into_iter()
        .map(|leaf| {
            let names = variables_of(&leaf.raw);
            let value = expanded(&leaf.raw);
            let text = match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let redacted = secret_leaf(&leaf)
                || names.iter().any(|name| secret_variables.contains(name))
                || secret_values
                    .iter()
                    .any(|secret| text.contains(secret.as_str()))
                || has_user_info(&text);
            let line = lines
                .get(&leaf.file)
                .and_then(|lines| line_of(lines, &leaf.key));
            ShownValue {
                key: leaf.prefix_key,
                value: if redacted {
                    REDACTED.to_string()
                } else {
                    value.to_string()
                },
                redacted,
                file: leaf.file,
                line,
                variables: names
                    .into_iter()
                    .filter(|name| vars(name).is_some_and(|value| !value.is_empty()))
                    .collect(),
            }
        })
        .collect()
}

/// `scheme://user:password@host` (a credential in a URL).
fn has_user_info(text: &str) -> bool {
    text.split_once("://").is_some_and(|(_, rest)| {
        rest.split(['/', '?', '#'])
            .next()
            .is_some_and(|authority| authority.contains('@'))
    })
}

/// Every leaf of `value` (scalars, empty lists and mappings) with its key path.
fn flatten(value: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                flatten(item, &join_key(path, key), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                flatten(item, &format!("{path}[{index}]"), out);
            }
        }
        other => out.push((path.to_string(), other.clone())),
    }
}

/// One `${VAR}` use found in a file by [`env_example`].
struct Use {
    file_index: usize,
    file: PathBuf,
    key: String,
    line: u64,
    default: Option<String>,
    description: Vec<String>,
}

/// The `.env.example` of the configuration in `config_dir`: every variable its files refer to
/// (`config.yaml`, every `environments/*.yaml`, `field_mappings.yaml`, `webhooks.yaml`), grouped
/// by the file and section of its first use, each with the comment above that key, where it is
/// used, whether it is a secret ([`is_secret_key`]), and its default (commented out: the
/// default applies) or an empty assignment (no default: it must be set when its key applies).
/// Paths are shown relative to the deployment root.
///
/// Errors: a file cannot be read or parsed, or holds a malformed `${...}`.
pub fn env_example(config_dir: &Path) -> Result<String, ConfigError> {
    let root = deployment_root(config_dir);
    let mut files = vec![config_dir.join("config.yaml")];
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(config_dir.join("environments"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    overlays.sort();
    files.extend(overlays);
    files.push(config_dir.join("field_mappings.yaml"));
    files.push(config_dir.join("webhooks.yaml"));

    let mut uses: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    for (file_index, file) in files.iter().enumerate() {
        if !file.is_file() {
            continue;
        }
        let (tree, lines) = read_yaml_lines(file)?;
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let source_lines: Vec<&str> = text.lines().collect();
        let shown_file = file.strip_prefix(&root).unwrap_or(file).to_path_buf();
        let mut flat = Vec::new();
        flatten(&tree, "", &mut flat);
        for (key, value) in flat {
            let Value::String(raw) = value else { continue };
            let found = references(&raw).map_err(|error| ConfigError::Invalid {
                file: file.clone(),
                key: key.clone(),
                message: error.message(),
            })?;
            for reference in found {
                uses.entry(reference.name).or_default().push(Use {
                    file_index,
                    file: shown_file.clone(),
                    line: line_of(&lines, &key).unwrap_or(0),
                    description: comment_above(&source_lines, &lines, &key),
                    key: key.clone(),
                    default: reference.default,
                });
            }
        }
    }
    for list in uses.values_mut() {
        list.sort_by_key(|one| (one.file_index, one.line));
    }
    let mut order: Vec<(&String, &Vec<Use>)> = uses.iter().collect();
    order.sort_by_key(|(_, list)| list.first().map(|first| (first.file_index, first.line)));

    let mut out = String::from(ENV_EXAMPLE_HEADER);
    out.push_str("\n# ----- The programs -----\n\n");
    out.push_str("# Config directory when --config-dir is not given.\n# CS_CONFIG_DIR=config\n");
    out.push_str("# Environment overlay (config/environments/{name}.yaml) when --env is not given.\n# CS_ENVIRONMENT=production\n");
    let mut group = String::new();
    for (name, list) in order {
        let Some(first) = list.first() else { continue };
        let section = first.key.split(['.', '[']).next().unwrap_or("").to_string();
        let this_group = format!("{}: {section}", first.file.display());
        if this_group != group {
            out.push_str(&format!("\n# ----- {this_group} -----\n"));
            group = this_group;
        }
        out.push('\n');
        for line in &first.description {
            out.push_str(&format!("# {line}\n"));
        }
        let secret = list.iter().any(|one| is_secret_key(&one.key));
        // The first use decides: a default there = commented out (the default applies); a use
        // elsewhere without a default is marked, it needs the variable when it applies.
        let mut places: Vec<String> = list
            .iter()
            .map(|one| {
                let required = first.default.is_some() && one.default.is_none();
                format!(
                    "{} {}{}",
                    one.file.display(),
                    one.key,
                    if required { " (no default there)" } else { "" }
                )
            })
            .collect();
        places.dedup();
        out.push_str(&format!(
            "# Used by: {}{}\n",
            places.join("; "),
            if secret { " (secret)" } else { "" }
        ));
        match &first.default {
            Some(default) => out.push_str(&format!("# {name}={default}\n")),
            None => out.push_str(&format!("{name}=\n")),
        }
    }
    Ok(out)
}

/// The first lines of the comment block right above `key`, up to the end of the first
/// sentence, at most three lines. A key without one takes its parent's when the parent starts
/// on the same line or the line before (`- id: ${X}` under a commented `watched_folders:`).
fn comment_above(source: &[&str], lines: &Lines, key: &str) -> Vec<String> {
    let mut candidate = key;
    let mut previous_line: Option<u64> = None;
    loop {
        if let Some(line) = lines.get(candidate) {
            if previous_line.is_some_and(|previous| *line + 1 < previous) {
                return Vec::new();
            }
            previous_line = Some(*line);
            let mut block = Vec::new();
            let mut index = usize::try_from(*line).unwrap_or(0).saturating_sub(1);
            while index > 0 {
                index -= 1;
                let text = source.get(index).map_or("", |text| text.trim());
                match text.strip_prefix('#') {
                    Some(comment) => block.push(comment.trim().to_string()),
                    None => break,
                }
            }
            block.reverse();
            if !block.is_empty() {
                let mut out = Vec::new();
                for line in block.into_iter().take(3) {
                    let ends = line.ends_with('.');
                    out.push(line);
                    if ends {
                        break;
                    }
                }
                return out;
            }
        }
        match candidate.rfind(['.', '[']) {
            Some(index) => candidate = candidate.get(..index).unwrap_or(""),
            None => return Vec::new(),
        }
    }
}

const ENV_EXAMPLE_HEADER: &str =
    "# content-scaling: environment variables of the shipped configuration (config/*.yaml).
#
# GENERATED by `box-setup check-config --env-example` from the files in config/ (a test keeps this
# file equal to its output): regenerate it after changing a ${VAR} there.
#
# Copy to `.env` in the deployment root (next to config/), fill in, and `chmod 600 .env`: it holds
# secrets. Variables already set in the process win over this file. A line left commented out
# keeps its default (the `${VAR:-default}` of the file); a variable written `${VAR}` (no default)
# must be set when its key applies (`box-setup check-config` lists every one that is missing).
";
