//! The V2 filename convention: tracking IDs, derivative file names, clean file names and Box-safe names.
//!
//! Source: `shared/v2-naming.md`. A derivative is named
//! `{tracking_id}_{subject_title}_{asset_type}_{language_code}_{spec}_v{version}.{ext}`, e.g.
//! `K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4`. The grammar is data ([`NamingConfig`], read
//! from the `naming:` section of `config/field_mappings.yaml`), so a V3 convention is a config change;
//! [`NamingConfig::default`] is the V2 grammar of that page.
//!
//! [`classify`] never panics and reports every problem of a name at once, each as a sentence an agency
//! producer understands (the sentences go into the `{name}.error.txt` note in Box, the error email and
//! the database). It works on `char`s and `split`, never on byte offsets, so any input is safe.
//!
//! Names are compared and parsed in Unicode NFC, so a subject title typed on macOS (which may deliver
//! decomposed `e` + U+0301) reads the same as one typed on Windows.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The 32 characters of Crockford's base32 alphabet used in tracking IDs (no I, L, O, U).
pub const TRACKING_ID_ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of a tracking ID in characters.
pub const TRACKING_ID_LEN: usize = 6;

/// Longest name Box accepts for a file or folder, in characters.
pub const BOX_MAX_NAME_CHARS: usize = 255;

/// Case normalization applied to a segment's value before it is stored in [`ParsedName::segments`]
/// and used in the clean filename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Keep the value as typed.
    #[default]
    None,
    /// Upper-case (e.g. language codes: `it` -> `IT`).
    Upper,
    /// Lower-case (e.g. asset types: `Video` -> `video`).
    Lower,
}

/// A compiled, anchored regular expression for [`SegmentKind::Pattern`] segments.
///
/// Built from the YAML string with [`SegmentPattern::new`]; the pattern must match the whole segment
/// (it is wrapped in `^(?:...)$`).
#[derive(Clone)]
pub struct SegmentPattern {
    source: String,
    regex: regex::Regex,
}

impl SegmentPattern {
    /// Compiles `pattern` (Rust `regex` syntax) anchored at both ends.
    ///
    /// Errors: the regex parser's message when the pattern is invalid.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|regex| SegmentPattern {
                source: pattern.to_string(),
                regex,
            })
            .map_err(|error| format!("invalid regular expression {pattern:?}: {error}"))
    }

    /// The pattern as written in the configuration (without the added anchors).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl fmt::Debug for SegmentPattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SegmentPattern({:?})", self.source)
    }
}

/// What a segment may contain.
#[derive(Debug, Clone)]
pub enum SegmentKind {
    /// Six characters of Crockford base32; lower case and the look-alikes `O`->`0`, `I`/`L`->`1` are
    /// accepted and stored canonical (upper case). Exactly one segment must have this kind.
    TrackingId,
    /// Letters of any script, digits and `-` (which stands for a space), at least one letter or digit.
    Text,
    /// Letters only (any script); the value is checked against a lookup domain later, by
    /// [`crate::metadata`] (`validate_domain` in the field mappings).
    Lookup,
    /// Exactly two ASCII letters (ISO 639-1).
    LanguageCode,
    /// ASCII letters, digits and `-` (format, size, duration: `9x16-15s`, `1080x1080`, `A4`).
    Spec,
    /// `v` (any case) followed by 1 to 3 digits; stored as the digits (`"01"`) and as
    /// [`ParsedName::version`]. At most one segment may have this kind.
    Version,
    /// Any value matching the regular expression (whole segment).
    Pattern(SegmentPattern),
}

impl SegmentKind {
    /// The YAML name of the kind (`tracking_id`, `text`, `lookup`, `language_code`, `spec`,
    /// `version`, `pattern`).
    pub fn name(&self) -> &'static str {
        match self {
            SegmentKind::TrackingId => "tracking_id",
            SegmentKind::Text => "text",
            SegmentKind::Lookup => "lookup",
            SegmentKind::LanguageCode => "language_code",
            SegmentKind::Spec => "spec",
            SegmentKind::Version => "version",
            SegmentKind::Pattern(_) => "pattern",
        }
    }
}

/// One `_`-separated part of a derivative name (before the extension).
///
/// YAML (in `naming.segments`, all keys but `name` and `kind` optional; the defaults depend on the kind):
/// ```yaml
/// - name: language_code          # key in ParsedName::segments and a `source` for field mappings
///   kind: language_code          # tracking_id | text | lookup | language_code | spec | version | pattern
///   pattern: "[A-Z]{2,3}"        # only for kind: pattern
///   label: language code         # short noun for messages ("segment 4 (language code) is empty")
///   description: a two-letter language code (ISO 639-1)   # completes "segment 4 \"ITA\" is not ..."
///   example: IT                  # shown after "e.g."
///   normalize: upper             # none | upper | lower
///   in_clean_name: true          # false for the upload components (tracking ID, version)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawSegmentRule")]
pub struct SegmentRule {
    /// Segment name, e.g. `subject_title`.
    pub name: String,
    /// What the segment may contain.
    pub kind: SegmentKind,
    /// Short noun used in messages, e.g. `subject title`.
    pub label: String,
    /// Completes the sentence `segment N "value" is not ...`, e.g. `a two-letter language code (ISO 639-1)`.
    pub description: String,
    /// A valid value shown in messages, e.g. `IT`.
    pub example: String,
    /// Case normalization of the stored value.
    pub normalize: Normalize,
    /// Whether the segment stays in the clean filename (false for tracking ID and version: the
    /// "upload components" of v2-naming.md).
    pub in_clean_name: bool,
}

/// The YAML form of a [`SegmentRule`] before defaults are filled in and the pattern compiled.
#[derive(Debug, Clone, Deserialize)]
struct RawSegmentRule {
    name: String,
    kind: String,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    example: Option<String>,
    #[serde(default)]
    normalize: Option<Normalize>,
    #[serde(default)]
    in_clean_name: Option<bool>,
}

/// Segment kind names accepted in YAML.
pub const SEGMENT_KINDS: &[&str] = &[
    "tracking_id",
    "text",
    "lookup",
    "language_code",
    "spec",
    "version",
    "pattern",
];

impl TryFrom<RawSegmentRule> for SegmentRule {
    type Error = String;

    fn try_from(raw: RawSegmentRule) -> Result<Self, String> {
        SegmentRule::from_parts(
            &raw.name,
            &raw.kind,
            raw.pattern.as_deref(),
            raw.label,
            raw.description,
            raw.example,
            raw.normalize,
            raw.in_clean_name,
        )
    }
}

impl SegmentRule {
    /// Builds a rule from its YAML parts, filling the kind's defaults for every `None`.
    ///
    /// Errors (as a sentence): unknown kind, `pattern` missing or invalid for `kind: pattern`,
    /// `pattern` given for another kind, empty name.
    pub fn from_parts(
        name: &str,
        kind: &str,
        pattern: Option<&str>,
        label: Option<String>,
        description: Option<String>,
        example: Option<String>,
        normalize: Option<Normalize>,
        in_clean_name: Option<bool>,
    ) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("expected a segment name, e.g. \"subject_title\"".to_string());
        }
        let kind = match (kind, pattern) {
            ("pattern", Some(pattern)) => SegmentKind::Pattern(SegmentPattern::new(pattern)?),
            ("pattern", None) => {
                return Err(
                    "kind \"pattern\" needs a `pattern` key (a regular expression)".to_string(),
                )
            }
            (_, Some(_)) => {
                return Err(format!(
                    "`pattern` is only allowed with kind \"pattern\", not {kind:?}"
                ))
            }
            ("tracking_id", None) => SegmentKind::TrackingId,
            ("text", None) => SegmentKind::Text,
            ("lookup", None) => SegmentKind::Lookup,
            ("language_code", None) => SegmentKind::LanguageCode,
            ("spec", None) => SegmentKind::Spec,
            ("version", None) => SegmentKind::Version,
            (other, None) => {
                return Err(format!(
                    "expected a segment kind (one of {}), found {other:?}",
                    SEGMENT_KINDS.join(", ")
                ))
            }
        };
        let (default_label, default_description, default_example, default_normalize) =
            kind_defaults(&kind, name);
        let default_in_clean = !matches!(kind, SegmentKind::TrackingId | SegmentKind::Version);
        Ok(SegmentRule {
            name: name.trim().to_string(),
            label: label.unwrap_or(default_label),
            description: description.unwrap_or(default_description),
            example: example.unwrap_or(default_example),
            normalize: normalize.unwrap_or(default_normalize),
            in_clean_name: in_clean_name.unwrap_or(default_in_clean),
            kind,
        })
    }
}

/// Default (label, description, example, normalize) for a kind.
fn kind_defaults(kind: &SegmentKind, name: &str) -> (String, String, String, Normalize) {
    let human = name.replace('_', " ");
    match kind {
        SegmentKind::TrackingId => (
            "tracking ID".into(),
            format!("a tracking ID ({TRACKING_ID_LEN} characters)"),
            "K7Q2XM".into(),
            Normalize::Upper,
        ),
        SegmentKind::Text => (
            human,
            "a subject title (letters, digits and \"-\" for spaces)".into(),
            "Breakfast-Moments".into(),
            Normalize::None,
        ),
        SegmentKind::Lookup => (
            human.clone(),
            if name == "asset_type" {
                "an asset type (letters only: video, image, banner, print, audio, ...)".into()
            } else {
                format!("a {human} (letters only)")
            },
            "video".into(),
            Normalize::Lower,
        ),
        SegmentKind::LanguageCode => (
            "language code".into(),
            "a two-letter language code (ISO 639-1)".into(),
            "IT".into(),
            Normalize::Upper,
        ),
        SegmentKind::Spec => (
            human,
            "a spec (letters, digits and \"-\": format, size or duration such as 9x16-15s, 1080x1080 or A4)"
                .into(),
            "9x16-15s".into(),
            Normalize::None,
        ),
        SegmentKind::Version => (
            "version".into(),
            "a version (\"v\" followed by 1 to 3 digits)".into(),
            "v01".into(),
            Normalize::Lower,
        ),
        SegmentKind::Pattern(pattern) => (
            human.clone(),
            format!("a valid {human} (pattern {})", pattern.as_str()),
            String::new(),
            Normalize::None,
        ),
    }
}

/// Names that are not deliveries at all (Box/OS debris): ignored, never rejected.
///
/// YAML `naming.ignored_names: {exact: [...], prefixes: [...], suffixes: [...]}`. `exact` and
/// `suffixes` compare case-insensitively, `prefixes` exactly.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IgnoredNames {
    /// Whole names, e.g. `.DS_Store`, `Thumbs.db`, `desktop.ini`.
    pub exact: Vec<String>,
    /// Name beginnings, e.g. `~$` (Office lock files), `._` (macOS resource forks).
    pub prefixes: Vec<String>,
    /// Name endings, e.g. `.tmp`, `.part`, `.crdownload` (unfinished downloads/uploads).
    pub suffixes: Vec<String>,
}

impl Default for IgnoredNames {
    fn default() -> Self {
        IgnoredNames {
            exact: vec![".DS_Store".into(), "Thumbs.db".into(), "desktop.ini".into()],
            prefixes: vec!["~$".into(), "._".into()],
            suffixes: vec![".tmp".into(), ".part".into(), ".crdownload".into()],
        }
    }
}

/// The derivative naming grammar (the `naming:` section of `config/field_mappings.yaml`).
///
/// [`NamingConfig::default`] is the V2 grammar of `shared/v2-naming.md`:
/// `{tracking_id}_{subject_title}_{asset_type}_{language_code}_{spec}_v{version}.{ext}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NamingConfig {
    /// Character between segments (`_`).
    pub separator: char,
    /// Segments in order, before the extension.
    pub segments: Vec<SegmentRule>,
    /// Allowed extensions, lower case, without the dot; compared case-insensitively.
    pub allowed_extensions: Vec<String>,
    /// Debris names that are ignored rather than rejected.
    pub ignored_names: IgnoredNames,
    /// Longest accepted name in bytes (UTF-8); default 255 (the usual file-system limit).
    pub max_name_bytes: usize,
    /// Appended to tracking ID problems to tell the producer where to find the right one.
    pub tracking_id_hint: String,
}

/// The default allowed extensions of v2-naming.md.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "mp4", "mov", "mxf", "m4v", "jpg", "jpeg", "png", "tif", "tiff", "psd", "pdf", "ai", "eps",
    "gif", "webp", "wav", "mp3",
];

impl Default for NamingConfig {
    fn default() -> Self {
        let rule = |name: &str, kind: SegmentKind| {
            let (label, description, example, normalize) = kind_defaults(&kind, name);
            SegmentRule {
                name: name.to_string(),
                in_clean_name: !matches!(kind, SegmentKind::TrackingId | SegmentKind::Version),
                kind,
                label,
                description,
                example,
                normalize,
            }
        };
        NamingConfig {
            separator: '_',
            segments: vec![
                rule("tracking_id", SegmentKind::TrackingId),
                rule("subject_title", SegmentKind::Text),
                rule("asset_type", SegmentKind::Lookup),
                rule("language_code", SegmentKind::LanguageCode),
                rule("spec", SegmentKind::Spec),
                rule("version", SegmentKind::Version),
            ],
            allowed_extensions: DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
            ignored_names: IgnoredNames::default(),
            max_name_bytes: 255,
            tracking_id_hint: "(copy it from the master's file name in Box)".to_string(),
        }
    }
}

impl NamingConfig {
    /// Checks the grammar itself. Returns `(key, message)` pairs, keys relative to the `naming`
    /// section (e.g. `segments[2].name`); empty when the grammar is usable.
    ///
    /// Rules: at least one segment; exactly one `tracking_id` segment; at most one `version`
    /// segment; unique segment names made of `a-z`, `0-9`, `_`, not `extension` or
    /// `clean_filename`; a separator that is not `.`, `/`, `\`, a space or a control character;
    /// at least one allowed extension, each made of ASCII letters and digits; `max_name_bytes` > 0.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if matches!(self.separator, '.' | '/' | '\\')
            || self.separator.is_whitespace()
            || self.separator.is_control()
        {
            problems.push((
                "separator".to_string(),
                format!(
                    "expected one character other than \".\", \"/\", \"\\\" or a space, found {}",
                    quote(&self.separator.to_string())
                ),
            ));
        }
        if self.segments.is_empty() {
            problems.push((
                "segments".to_string(),
                "expected at least one segment".to_string(),
            ));
        }
        let tracking = self
            .segments
            .iter()
            .filter(|rule| matches!(rule.kind, SegmentKind::TrackingId))
            .count();
        if tracking != 1 {
            problems.push((
                "segments".to_string(),
                format!("expected exactly one segment of kind tracking_id, found {tracking}"),
            ));
        }
        let versions = self
            .segments
            .iter()
            .filter(|rule| matches!(rule.kind, SegmentKind::Version))
            .count();
        if versions > 1 {
            problems.push((
                "segments".to_string(),
                format!("expected at most one segment of kind version, found {versions}"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, rule) in self.segments.iter().enumerate() {
            let key = format!("segments[{index}].name");
            let valid_chars = !rule.name.is_empty()
                && rule
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_chars {
                problems.push((
                    key.clone(),
                    format!(
                        "expected a name made of a-z, 0-9 and \"_\", found {}",
                        quote(&rule.name)
                    ),
                ));
            }
            if matches!(
                rule.name.as_str(),
                "extension" | "clean_filename" | "original_filename"
            ) {
                problems.push((
                    key.clone(),
                    format!(
                        "{} is reserved; choose another segment name",
                        quote(&rule.name)
                    ),
                ));
            }
            if !seen.insert(rule.name.clone()) {
                problems.push((key, format!("duplicate segment name {}", quote(&rule.name))));
            }
        }
        if self.allowed_extensions.is_empty() {
            problems.push((
                "allowed_extensions".to_string(),
                "expected at least one extension, e.g. [mp4, mov, jpg]".to_string(),
            ));
        }
        for (index, extension) in self.allowed_extensions.iter().enumerate() {
            if extension.is_empty() || !extension.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push((
                    format!("allowed_extensions[{index}]"),
                    format!(
                        "expected an extension without the dot (letters and digits), e.g. \"mp4\", found {}",
                        quote(extension)
                    ),
                ));
            }
        }
        if self.max_name_bytes == 0 {
            problems.push((
                "max_name_bytes".to_string(),
                "expected a number > 0, found 0".to_string(),
            ));
        }
        problems
    }

    /// A complete valid name built from the segments' examples and the first allowed extension,
    /// e.g. `K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4`; used in messages.
    pub fn example_name(&self) -> String {
        let mut name = self
            .segments
            .iter()
            .map(|rule| rule.example.as_str())
            .collect::<Vec<_>>()
            .join(&self.separator.to_string());
        if let Some(extension) = self.allowed_extensions.first() {
            name.push('.');
            name.push_str(extension);
        }
        name
    }

    /// Names of the segments, in order (the sources field mappings may use besides `extension`).
    pub fn segment_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .map(|rule| rule.name.as_str())
            .collect()
    }

    fn is_allowed_extension(&self, extension: &str) -> bool {
        let lower = extension.to_lowercase();
        self.allowed_extensions
            .iter()
            .any(|allowed| allowed.to_lowercase() == lower)
    }
}

/// A derivative name that follows the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    /// The name exactly as received.
    pub original: String,
    /// Canonical upper-case Crockford tracking ID, e.g. `K7Q2XM`.
    pub tracking_id: String,
    /// The version number (`v01` -> 1); 0 when the grammar has no version segment.
    pub version: u32,
    /// Lower-case extension without the dot, e.g. `mp4`.
    pub extension: String,
    /// The name without its upload components (tracking ID and version), built from the normalized
    /// segments and the lower-case extension: `Breakfast-Moments_video_IT_9x16-15s.mp4`. This is the
    /// DAM asset name and, with the tracking ID, the identity of a derivative.
    pub clean_filename: String,
    /// Normalized values by segment name: `subject_title` (`Breakfast-Moments`), `asset_type`
    /// (`video`), `language_code` (`IT`), `spec`, `version` (`01`, digits only), `tracking_id`, and
    /// `extension` (`mp4`).
    pub segments: BTreeMap<String, String>,
}

/// The canonical identity of a derivative within its master, from its clean filename: NFC and
/// lower case (Box compares names case-insensitively, and the parser already normalises every
/// segment and drops the version). Two names with the same tracking ID and key are the same
/// derivative: only one delivery per version is ever imported.
pub fn derivative_key(clean_filename: &str) -> String {
    clean_filename.nfc().collect::<String>().to_lowercase()
}

/// The verdict on one file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameCheck {
    /// Not a delivery (OS/Box debris): leave it alone, do not report it.
    Ignored {
        /// Why, as a sentence.
        reason: String,
    },
    /// A valid delivery name.
    Parsed(ParsedName),
    /// A delivery with a bad name. `problems` holds at least one sentence, each naming the expected
    /// form and an example.
    Invalid {
        /// Every problem found, in the order of the name.
        problems: Vec<String>,
    },
}

/// Classifies a file name received in a watched folder: [`NameCheck::Ignored`] for debris,
/// [`NameCheck::Parsed`] for a valid V2 name, otherwise [`NameCheck::Invalid`] with every problem at
/// once. Never panics, whatever the input (empty, control characters, zero bytes, path separators,
/// any length, any script).
pub fn classify(name: &str, cfg: &NamingConfig) -> NameCheck {
    if let Some(reason) = ignored_reason(name, &cfg.ignored_names) {
        return NameCheck::Ignored { reason };
    }
    let example = cfg.example_name();
    if name.trim().is_empty() {
        return NameCheck::Invalid {
            problems: vec![format!(
                "the file name is empty; expected a name such as {example}"
            )],
        };
    }

    let mut problems = Vec::new();
    whole_name_problems(name, cfg, &mut problems);

    let normalized: String = name.nfc().collect();
    let (stem, extension) = match normalized.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, Some(extension)),
        _ => (normalized.as_str(), None),
    };
    match extension {
        None | Some("") => problems.push(format!(
            "the file name has no extension; it must end with one of {}, e.g. {example}",
            extension_list(cfg)
        )),
        Some(extension) if !cfg.is_allowed_extension(extension) => problems.push(format!(
            "extension {} is not allowed; use one of {}",
            quote(&format!(".{extension}")),
            extension_list(cfg)
        )),
        Some(_) => {}
    }

    let separator = cfg.separator.to_string();
    let parts: Vec<&str> = stem.split(cfg.separator).collect();
    let mut values: Vec<SegmentValue> = Vec::new();
    if parts.len() == cfg.segments.len() {
        for (index, (rule, part)) in cfg.segments.iter().zip(parts.iter()).enumerate() {
            match check_segment(index + 1, rule, part, cfg) {
                Ok(value) => values.push(value),
                Err(mut found) => problems.append(&mut found),
            }
        }
    } else {
        let listing = parts
            .iter()
            .map(|part| escape_controls(part))
            .collect::<Vec<_>>()
            .join(" / ");
        let mut message = format!(
            "expected {} parts separated by {} before the extension, found {}: {}",
            cfg.segments.len(),
            quote(&separator),
            parts.len(),
            listing
        );
        if parts.len() > cfg.segments.len() {
            message.push_str(&format!(
                " (inside a part, join words with \"-\", never with {} or spaces, e.g. {example})",
                quote(&separator)
            ));
        } else {
            message.push_str(&format!(", e.g. {example}"));
        }
        problems.push(message);
        // The first part is unambiguous (the tracking ID comes first in V2): check it too, so the
        // producer learns about a bad ID in the same note.
        if let (Some(rule), Some(part)) = (cfg.segments.first(), parts.first()) {
            if let Err(mut found) = check_segment(1, rule, part, cfg) {
                problems.append(&mut found);
            }
        }
    }

    if !problems.is_empty() {
        return NameCheck::Invalid { problems };
    }

    let extension = extension.unwrap_or_default().to_lowercase();
    let mut segments = BTreeMap::new();
    let mut tracking_id = String::new();
    let mut version = 0;
    let mut clean_parts = Vec::new();
    for (rule, value) in cfg.segments.iter().zip(values) {
        match rule.kind {
            SegmentKind::TrackingId => tracking_id = value.stored.clone(),
            SegmentKind::Version => version = value.version.unwrap_or(0),
            _ => {}
        }
        if rule.in_clean_name {
            clean_parts.push(value.display);
        }
        segments.insert(rule.name.clone(), value.stored);
    }
    segments.insert("extension".to_string(), extension.clone());
    let clean_filename = format!("{}.{}", clean_parts.join(&separator), extension);
    NameCheck::Parsed(ParsedName {
        original: name.to_string(),
        tracking_id,
        version,
        extension,
        clean_filename,
        segments,
    })
}

/// A checked segment: the stored (normalized) value, its form in the clean filename, and the
/// version number for version segments.
struct SegmentValue {
    stored: String,
    display: String,
    version: Option<u32>,
}

/// Problems that concern the whole name rather than one segment.
fn whole_name_problems(name: &str, cfg: &NamingConfig, problems: &mut Vec<String>) {
    if name.len() > cfg.max_name_bytes {
        problems.push(format!(
            "the file name is {} bytes long; the limit is {} bytes, shorten the subject title",
            name.len(),
            cfg.max_name_bytes
        ));
    }
    if name.contains('/') || name.contains('\\') {
        problems.push(
            "the file name contains a path separator (\"/\" or \"\\\"); a file name cannot contain folders"
                .to_string(),
        );
    }
    if name == "." || name == ".." || name.split(['/', '\\']).any(|part| part == "..") {
        problems.push("\"..\" is a reference to a parent folder, not a file name".to_string());
    }
    if name.contains('\0') {
        problems.push("the file name contains a zero byte; rename the file".to_string());
    }
    if name.chars().any(|c| c.is_control() && c != '\0') {
        problems.push(
            "the file name contains control characters (such as a line break or a tab); remove them"
                .to_string(),
        );
    }
    if name.starts_with(char::is_whitespace) {
        problems.push("the file name starts with a space; remove it".to_string());
    }
    if name.ends_with(char::is_whitespace) || name.ends_with('.') {
        problems.push("the file name ends with a space or a dot; remove it".to_string());
    }
}

/// Checks one segment (1-based `position`). Ok: its normalized value; Err: one or more sentences.
fn check_segment(
    position: usize,
    rule: &SegmentRule,
    part: &str,
    cfg: &NamingConfig,
) -> Result<SegmentValue, Vec<String>> {
    let shown = quote(part);
    let example = &rule.example;
    let not_a = |extra: &str| {
        format!(
            "segment {position} {shown} is not {}, e.g. {}{extra}",
            rule.description,
            quote(example)
        )
    };
    if part.is_empty() {
        return Err(vec![match rule.kind {
            SegmentKind::TrackingId => format!(
                "tracking ID is missing: the name must start with the {TRACKING_ID_LEN}-character tracking ID, e.g. {example} {}",
                cfg.tracking_id_hint
            ),
            _ => format!(
                "segment {position} ({}) is empty; expected {}, e.g. {}",
                rule.label,
                rule.description,
                quote(example)
            ),
        }]);
    }
    let simple = |value: String| {
        Ok(SegmentValue {
            display: value.clone(),
            stored: value,
            version: None,
        })
    };
    match &rule.kind {
        SegmentKind::TrackingId => check_tracking_id(part, example, &cfg.tracking_id_hint),
        SegmentKind::Text => {
            let bad = offending(part, |c| {
                c.is_alphanumeric() || c == '-' || is_combining_mark(c)
            });
            if !bad.is_empty() {
                return Err(vec![not_a(&not_allowed_note(&bad))]);
            }
            if !part.chars().any(char::is_alphanumeric) {
                return Err(vec![not_a(" (it needs at least one letter or digit)")]);
            }
            simple(normalize(part, rule.normalize))
        }
        SegmentKind::Lookup => {
            let bad = offending(part, |c| c.is_alphabetic() || is_combining_mark(c));
            if !bad.is_empty() {
                return Err(vec![not_a(&not_allowed_note(&bad))]);
            }
            simple(normalize(part, rule.normalize))
        }
        SegmentKind::LanguageCode => {
            let letters =
                part.chars().count() == 2 && part.chars().all(|c| c.is_ascii_alphabetic());
            if !letters {
                return Err(vec![not_a("")]);
            }
            simple(normalize(part, rule.normalize))
        }
        SegmentKind::Spec => {
            let bad = offending(part, |c| c.is_ascii_alphanumeric() || c == '-');
            if !bad.is_empty() {
                let mut note = not_allowed_note(&bad);
                if bad.contains(&'×') {
                    note.push_str("; write sizes with the letter \"x\", e.g. 9x16");
                }
                return Err(vec![not_a(&note)]);
            }
            if !part.chars().any(|c| c.is_ascii_alphanumeric()) {
                return Err(vec![not_a(" (it needs at least one letter or digit)")]);
            }
            simple(normalize(part, rule.normalize))
        }
        SegmentKind::Version => {
            let mut chars = part.chars();
            let starts_with_v = matches!(chars.next(), Some('v' | 'V'));
            let digits: String = chars.collect();
            let valid = starts_with_v
                && (1..=3).contains(&digits.chars().count())
                && digits.chars().all(|c| c.is_ascii_digit());
            match (valid, digits.parse::<u32>()) {
                (true, Ok(number)) => Ok(SegmentValue {
                    display: format!("v{digits}"),
                    stored: digits,
                    version: Some(number),
                }),
                _ => Err(vec![not_a("")]),
            }
        }
        SegmentKind::Pattern(pattern) => {
            if pattern.is_match(part) {
                simple(normalize(part, rule.normalize))
            } else {
                Err(vec![not_a("")])
            }
        }
    }
}

/// Tracking ID checks: length and alphabet (after look-alike mapping), each its own sentence.
fn check_tracking_id(part: &str, example: &str, hint: &str) -> Result<SegmentValue, Vec<String>> {
    let shown = quote(part);
    let mut problems = Vec::new();
    let length = part.chars().count();
    if length != TRACKING_ID_LEN {
        problems.push(format!(
            "tracking ID {shown} must be {TRACKING_ID_LEN} characters, e.g. {example} {hint}"
        ));
    }
    let bad = offending(part, |c| canonical_char(c).is_some());
    if !bad.is_empty() {
        let listed = bad
            .iter()
            .map(|c| describe_char(*c))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(format!(
            "tracking ID {shown} contains {listed}, which tracking IDs never use (only the digits 0-9 and the letters A-Z without I, L, O and U), e.g. {example} {hint}"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    match canonical_tracking_id(part) {
        Some(canonical) => Ok(SegmentValue {
            display: canonical.clone(),
            stored: canonical,
            version: None,
        }),
        None => Err(vec![format!(
            "tracking ID {shown} is not valid, e.g. {example} {hint}"
        )]),
    }
}

/// Whether `name` is debris; `Some(reason)` when it is.
fn ignored_reason(name: &str, ignored: &IgnoredNames) -> Option<String> {
    let lower = name.to_lowercase();
    let exact = ignored
        .exact
        .iter()
        .any(|exact| exact.to_lowercase() == lower);
    let prefix = ignored
        .prefixes
        .iter()
        .any(|prefix| !prefix.is_empty() && name.starts_with(prefix.as_str()));
    let suffix = ignored
        .suffixes
        .iter()
        .any(|suffix| !suffix.is_empty() && lower.ends_with(&suffix.to_lowercase()));
    (exact || prefix || suffix).then(|| {
        format!(
            "{} is a system or temporary file (operating-system debris or an unfinished transfer), not a delivery",
            quote(name)
        )
    })
}

/// Distinct characters of `text` that fail `allowed`, in order of appearance.
fn offending(text: &str, allowed: impl Fn(char) -> bool) -> Vec<char> {
    let mut bad: Vec<char> = Vec::new();
    for c in text.chars() {
        if !allowed(c) && !bad.contains(&c) {
            bad.push(c);
        }
    }
    bad
}

/// ` (not allowed: space, "!")`.
fn not_allowed_note(bad: &[char]) -> String {
    let listed = bad
        .iter()
        .map(|c| describe_char(*c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(" (not allowed: {listed})")
}

/// A character for a message: `space`, `"!"`, `"\u{0}"`.
fn describe_char(c: char) -> String {
    if c == ' ' {
        "space".to_string()
    } else {
        quote(&c.to_string())
    }
}

fn normalize(value: &str, normalize: Normalize) -> String {
    match normalize {
        Normalize::None => value.to_string(),
        Normalize::Upper => value.to_uppercase(),
        Normalize::Lower => value.to_lowercase(),
    }
}

fn extension_list(cfg: &NamingConfig) -> String {
    cfg.allowed_extensions.join(", ")
}

/// `text` in double quotes, with control characters and `"` escaped, for messages.
fn quote(text: &str) -> String {
    format!("\"{}\"", escape_controls(text).replace('"', "\\\""))
}

/// `text` with control characters escaped (`\n`, `\u{0}`), everything else as is.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Maps one input character to its canonical tracking-ID character: lower case accepted, `O` -> `0`,
/// `I`/`L` -> `1`; `None` for anything outside the alphabet (including `U`).
fn canonical_char(c: char) -> Option<char> {
    let upper = c.to_ascii_uppercase();
    let mapped = match upper {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    TRACKING_ID_ALPHABET.contains(mapped).then_some(mapped)
}

/// The canonical (upper-case Crockford) form of a tracking ID typed by a person: lower case and the
/// look-alikes `O`->`0`, `I`/`L`->`1` are accepted. `None` unless the input is exactly 6 characters
/// of the alphabet (no trimming).
pub fn canonical_tracking_id(input: &str) -> Option<String> {
    if input.chars().count() != TRACKING_ID_LEN {
        return None;
    }
    input.chars().map(canonical_char).collect()
}

/// A new random tracking ID: 6 characters of `0123456789ABCDEFGHJKMNPQRSTVWXYZ` (30 bits). Uniqueness
/// is the database's job (retry on collision).
pub fn generate_tracking_id<R: rand::Rng + ?Sized>(rng: &mut R) -> String {
    let alphabet: Vec<char> = TRACKING_ID_ALPHABET.chars().collect();
    (0..TRACKING_ID_LEN)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

/// The Box name of a master: `{tracking_id}_{original_name}`, e.g. `K7Q2XM_Nutella_Breakfast_Master.mov`,
/// made safe for Box (see [`sanitize_box_name`]). When the name is too long the original name is
/// shortened before its extension, so the tracking ID prefix and the extension survive.
pub fn master_box_name(tracking_id: &str, original_name: &str) -> String {
    sanitize_box_name(&format!("{tracking_id}_{original_name}"), "master")
}

/// The Box folder name of a campaign: `{number} {name}`, e.g. `C-2026-0142 Nutella Breakfast Moments`,
/// made safe for Box (see [`sanitize_box_name`]); just the number (or name) when the other is empty.
pub fn campaign_folder_name(number: &str, name: &str) -> String {
    let joined = match (number.trim().is_empty(), name.trim().is_empty()) {
        (false, false) => format!("{} {}", number.trim(), name.trim()),
        (false, true) => number.trim().to_string(),
        (true, false) => name.trim().to_string(),
        (true, true) => String::new(),
    };
    sanitize_box_name(&joined, "campaign")
}

/// Makes `name` acceptable to Box (<https://developer.box.com/reference/post-folders/>: names of at
/// most 255 characters, no `/` or `\`, no non-printable characters, no leading/trailing spaces, not `.`
/// or `..`): `/`, `\` and control characters become `-`; leading spaces and trailing spaces and dots are
/// removed; longer names are cut on a character boundary, keeping a short extension (up to 16
/// characters) when there is one; an empty result becomes `fallback`.
pub fn sanitize_box_name(name: &str, fallback: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    let trimmed = trim_box(&replaced);
    let shortened = if trimmed.chars().count() > BOX_MAX_NAME_CHARS {
        shorten_keeping_extension(trimmed, BOX_MAX_NAME_CHARS)
    } else {
        trimmed.to_string()
    };
    let result = trim_box(&shortened).to_string();
    if result.is_empty() || result == "." || result == ".." {
        fallback.to_string()
    } else {
        result
    }
}

fn trim_box(text: &str) -> &str {
    text.trim_start()
        .trim_end_matches(|c: char| c.is_whitespace() || c == '.')
}

fn shorten_keeping_extension(text: &str, max_chars: usize) -> String {
    let extension = match text.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty() && (1..=16).contains(&extension.chars().count()) =>
        {
            Some(extension)
        }
        _ => None,
    };
    match extension {
        Some(extension) => {
            let keep = max_chars.saturating_sub(extension.chars().count() + 1);
            let stem: String = text.chars().take(keep).collect();
            format!("{}.{extension}", trim_box(&stem))
        }
        None => text.chars().take(max_chars).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> NamingConfig {
        NamingConfig::default()
    }

    fn parsed(name: &str) -> ParsedName {
        match classify(name, &v2()) {
            NameCheck::Parsed(parsed) => parsed,
            other => panic!("expected {name:?} to parse, got {other:?}"),
        }
    }

    fn problems(name: &str) -> Vec<String> {
        match classify(name, &v2()) {
            NameCheck::Invalid { problems } => problems,
            other => panic!("expected {name:?} to be invalid, got {other:?}"),
        }
    }

    fn assert_problem(name: &str, expected: &str) {
        let found = problems(name);
        assert!(
            found.iter().any(|p| p == expected),
            "expected problem {expected:?} for {name:?}, got {found:#?}"
        );
    }

    fn assert_problem_starts(name: &str, prefix: &str) {
        let found = problems(name);
        assert!(
            found.iter().any(|p| p.starts_with(prefix)),
            "expected a problem starting {prefix:?} for {name:?}, got {found:#?}"
        );
    }

    #[test]
    fn the_example_of_the_doc_parses() {
        let name = parsed("K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4");
        assert_eq!(
            name.original,
            "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4"
        );
        assert_eq!(name.tracking_id, "K7Q2XM");
        assert_eq!(name.version, 1);
        assert_eq!(name.extension, "mp4");
        assert_eq!(
            name.clean_filename,
            "Breakfast-Moments_video_IT_9x16-15s.mp4"
        );
        assert_eq!(name.segments["subject_title"], "Breakfast-Moments");
        assert_eq!(name.segments["asset_type"], "video");
        assert_eq!(name.segments["language_code"], "IT");
        assert_eq!(name.segments["spec"], "9x16-15s");
        assert_eq!(name.segments["version"], "01");
        assert_eq!(name.segments["tracking_id"], "K7Q2XM");
        assert_eq!(name.segments["extension"], "mp4");
    }

    #[test]
    fn example_name_is_the_doc_example() {
        assert_eq!(
            v2().example_name(),
            "K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4"
        );
        assert!(v2().validate().is_empty());
    }

    // Rule: tracking ID, 6 characters of Crockford base32.
    #[test]
    fn tracking_id_must_be_six_characters() {
        assert_problem(
            "K7Q2X_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            "tracking ID \"K7Q2X\" must be 6 characters, e.g. K7Q2XM (copy it from the master's file name in Box)",
        );
        assert_problem_starts(
            "K7Q2XMM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            "tracking ID \"K7Q2XMM\" must be 6 characters",
        );
    }

    #[test]
    fn tracking_id_rejects_u_and_symbols() {
        assert_problem(
            "K7Q2XU_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            "tracking ID \"K7Q2XU\" contains \"U\", which tracking IDs never use (only the digits 0-9 and the letters A-Z without I, L, O and U), e.g. K7Q2XM (copy it from the master's file name in Box)",
        );
        assert_problem_starts(
            "K7Q2X!_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            "tracking ID \"K7Q2X!\" contains \"!\"",
        );
        assert_problem_starts(
            "_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
            "tracking ID is missing",
        );
    }

    // Rule: accept lower case and look-alikes, store canonical upper case.
    #[test]
    fn look_alike_tracking_ids_are_canonicalized() {
        assert_eq!(canonical_tracking_id("k7q2xm").as_deref(), Some("K7Q2XM"));
        assert_eq!(canonical_tracking_id("O1ILoi").as_deref(), Some("011101"));
        assert_eq!(canonical_tracking_id("K7Q2XU"), None);
        assert_eq!(canonical_tracking_id("K7Q2X"), None);
        assert_eq!(canonical_tracking_id(" K7Q2XM"), None);
        assert_eq!(canonical_tracking_id("K7Q2XÉ"), None);
        assert_eq!(canonical_tracking_id(""), None);
        let name = parsed("k7q2xo_Breakfast-Moments_video_IT_9x16-15s_v01.mp4");
        assert_eq!(name.tracking_id, "K7Q2X0");
        let name = parsed("LI0OAB_Breakfast-Moments_video_IT_9x16-15s_v01.mp4");
        assert_eq!(name.tracking_id, "1100AB");
    }

    #[test]
    fn generated_ids_are_canonical_and_use_the_alphabet() {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let id = generate_tracking_id(&mut rng);
            assert_eq!(id.chars().count(), 6);
            assert!(id.chars().all(|c| TRACKING_ID_ALPHABET.contains(c)), "{id}");
            assert_eq!(canonical_tracking_id(&id).as_deref(), Some(id.as_str()));
        }
    }

    // Rule: 6 parts separated by "_" before the extension.
    #[test]
    fn wrong_number_of_parts_lists_them() {
        assert_problem(
            "K7Q2XM_Breakfast_video_IT.mp4",
            "expected 6 parts separated by \"_\" before the extension, found 4: K7Q2XM / Breakfast / video / IT, e.g. K7Q2XM_Breakfast-Moments_video_IT_9x16-15s_v01.mp4",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_IT.mp4",
            "expected 6 parts separated by \"_\" before the extension, found 4: K7Q2XM / Breakfast / video / IT",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_Moments_video_IT_9x16-15s_v01.mp4",
            "expected 6 parts separated by \"_\" before the extension, found 7: K7Q2XM / Breakfast / Moments / video / IT / 9x16-15s / v01 (inside a part, join words with \"-\"",
        );
        // The tracking ID is still checked when the part count is wrong.
        let found = problems("K7Q2_Breakfast_video_IT.mp4");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[1].starts_with("tracking ID \"K7Q2\" must be 6 characters"));
    }

    // Rule: subject title, letters of any script, digits and "-".
    #[test]
    fn subject_title_rules() {
        assert_problem(
            "K7Q2XM_Breakfast Moments_video_IT_9x16-15s_v01.mp4",
            "segment 2 \"Breakfast Moments\" is not a subject title (letters, digits and \"-\" for spaces), e.g. \"Breakfast-Moments\" (not allowed: space)",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast&Moments!_video_IT_9x16-15s_v01.mp4",
            "segment 2 \"Breakfast&Moments!\" is not a subject title",
        );
        assert_problem_starts(
            "K7Q2XM_---_video_IT_9x16-15s_v01.mp4",
            "segment 2 \"---\" is not a subject title",
        );
        assert_problem(
            "K7Q2XM__video_IT_9x16-15s_v01.mp4",
            "segment 2 (subject title) is empty; expected a subject title (letters, digits and \"-\" for spaces), e.g. \"Breakfast-Moments\"",
        );
        assert_eq!(
            parsed("K7Q2XM_Spot-2026_video_IT_A4_v1.pdf").segments["subject_title"],
            "Spot-2026"
        );
    }

    #[test]
    fn unicode_subject_titles_are_letters() {
        for title in [
            "Colazione-Perfetta",
            "Café-Crème",
            "Frühstück",
            "Завтрак",
            "朝食の時間",
            "Πρωινό",
            "नमस्ते",
            "فطور",
        ] {
            let name = format!("K7Q2XM_{title}_video_IT_9x16_v01.mp4");
            let parsed = parsed(&name);
            assert_eq!(parsed.segments["subject_title"], title);
            assert_eq!(parsed.clean_filename, format!("{title}_video_IT_9x16.mp4"));
        }
    }

    #[test]
    fn decomposed_unicode_is_normalized() {
        // "Café" with a combining acute accent (as macOS may deliver it).
        let name = "K7Q2XM_Cafe\u{301}_video_IT_9x16_v01.mp4";
        let parsed = parsed(name);
        assert_eq!(parsed.original, name);
        assert_eq!(parsed.segments["subject_title"], "Café");
    }

    // Rule: asset type, letters, any case, lower-cased.
    #[test]
    fn asset_type_rules() {
        assert_eq!(
            parsed("K7Q2XM_Breakfast_VIDEO_IT_9x16_v01.mp4").segments["asset_type"],
            "video"
        );
        assert_problem(
            "K7Q2XM_Breakfast_vid3o_IT_9x16_v01.mp4",
            "segment 3 \"vid3o\" is not an asset type (letters only: video, image, banner, print, audio, ...), e.g. \"video\" (not allowed: \"3\")",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast__IT_9x16_v01.mp4",
            "segment 3 (asset type) is empty",
        );
    }

    // Rule: language code, ISO 639-1, two letters, any case, upper-cased.
    #[test]
    fn language_code_rules() {
        assert_problem(
            "K7Q2XM_Breakfast-Moments_video_ITA_9x16-15s_v01.mp4",
            "segment 4 \"ITA\" is not a two-letter language code (ISO 639-1), e.g. \"IT\"",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_I1_9x16_v01.mp4",
            "segment 4 \"I1\" is not a two-letter language code",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_ÉT_9x16_v01.mp4",
            "segment 4 \"ÉT\" is not a two-letter language code",
        );
        assert_eq!(
            parsed("K7Q2XM_Breakfast_video_it_9x16_v01.mp4").segments["language_code"],
            "IT"
        );
    }

    // Rule: spec, letters, digits, "-", "x".
    #[test]
    fn spec_rules() {
        for spec in ["9x16-15s", "1080x1080", "A4", "16x9"] {
            assert_eq!(
                parsed(&format!("K7Q2XM_Breakfast_video_IT_{spec}_v01.mp4")).segments["spec"],
                spec
            );
        }
        assert_problem(
            "K7Q2XM_Breakfast_video_IT_9×16_v01.mp4",
            "segment 5 \"9×16\" is not a spec (letters, digits and \"-\": format, size or duration such as 9x16-15s, 1080x1080 or A4), e.g. \"9x16-15s\" (not allowed: \"×\"); write sizes with the letter \"x\", e.g. 9x16",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_IT_9x16 15s_v01.mp4",
            "segment 5 \"9x16 15s\" is not a spec",
        );
    }

    // Rule: version, "v" + 1 to 3 digits.
    #[test]
    fn version_rules() {
        assert_eq!(parsed("K7Q2XM_Breakfast_video_IT_9x16_v1.mp4").version, 1);
        assert_eq!(parsed("K7Q2XM_Breakfast_video_IT_9x16_V007.mp4").version, 7);
        assert_eq!(
            parsed("K7Q2XM_Breakfast_video_IT_9x16_v999.mp4").version,
            999
        );
        let expected = "is not a version (\"v\" followed by 1 to 3 digits), e.g. \"v01\"";
        for bad in ["v1000", "v", "01", "version1", "v1a", "v٣"] {
            assert_problem(
                &format!("K7Q2XM_Breakfast_video_IT_9x16_{bad}.mp4"),
                &format!("segment 6 {} {expected}", quote(bad)),
            );
        }
    }

    // Rule: extension from the allowed list, any case, lower-cased.
    #[test]
    fn extension_rules() {
        let name = parsed("K7Q2XM_Breakfast_video_IT_9x16_v01.MOV");
        assert_eq!(name.extension, "mov");
        assert_eq!(name.clean_filename, "Breakfast_video_IT_9x16.mov");
        for extension in DEFAULT_EXTENSIONS {
            parsed(&format!("K7Q2XM_Breakfast_video_IT_9x16_v01.{extension}"));
        }
        assert_problem(
            "K7Q2XM_Breakfast_video_IT_9x16_v01.exe",
            "extension \".exe\" is not allowed; use one of mp4, mov, mxf, m4v, jpg, jpeg, png, tif, tiff, psd, pdf, ai, eps, gif, webp, wav, mp3",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_IT_9x16_v01",
            "the file name has no extension; it must end with one of mp4",
        );
    }

    // Rule: clean filename = name without tracking ID and version.
    #[test]
    fn clean_filename_drops_upload_components_and_normalizes() {
        let name = parsed("k7q2xm_Breakfast-Moments_Video_it_9x16-15s_v02.Mp4");
        assert_eq!(
            name.clean_filename,
            "Breakfast-Moments_video_IT_9x16-15s.mp4"
        );
        assert_eq!(name.version, 2);
    }

    // Rule: debris is ignored, not rejected.
    #[test]
    fn debris_is_ignored() {
        for debris in [
            ".DS_Store",
            ".ds_store",
            "Thumbs.db",
            "thumbs.DB",
            "desktop.ini",
            "~$Brief.docx",
            "._K7Q2XM_Breakfast_video_IT_9x16_v01.mp4",
            "upload.tmp",
            "K7Q2XM_Breakfast_video_IT_9x16_v01.mp4.part",
            "movie.mp4.CRDOWNLOAD",
        ] {
            assert!(
                matches!(classify(debris, &v2()), NameCheck::Ignored { .. }),
                "{debris} should be ignored"
            );
        }
        let NameCheck::Ignored { reason } = classify(".DS_Store", &v2()) else {
            panic!("not ignored");
        };
        assert!(reason.contains("not a delivery"), "{reason}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems("K7Q2X_Breakfast Moments_vid3o_ITA_9×16_version1.exe");
        let expected = vec![
            "extension \".exe\" is not allowed; use one of mp4, mov, mxf, m4v, jpg, jpeg, png, tif, tiff, psd, pdf, ai, eps, gif, webp, wav, mp3".to_string(),
            "tracking ID \"K7Q2X\" must be 6 characters, e.g. K7Q2XM (copy it from the master's file name in Box)".to_string(),
            "segment 2 \"Breakfast Moments\" is not a subject title (letters, digits and \"-\" for spaces), e.g. \"Breakfast-Moments\" (not allowed: space)".to_string(),
            "segment 3 \"vid3o\" is not an asset type (letters only: video, image, banner, print, audio, ...), e.g. \"video\" (not allowed: \"3\")".to_string(),
            "segment 4 \"ITA\" is not a two-letter language code (ISO 639-1), e.g. \"IT\"".to_string(),
            "segment 5 \"9×16\" is not a spec (letters, digits and \"-\": format, size or duration such as 9x16-15s, 1080x1080 or A4), e.g. \"9x16-15s\" (not allowed: \"×\"); write sizes with the letter \"x\", e.g. 9x16".to_string(),
            "segment 6 \"version1\" is not a version (\"v\" followed by 1 to 3 digits), e.g. \"v01\"".to_string(),
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn weird_inputs_are_invalid_not_panics() {
        assert_problem_starts("", "the file name is empty");
        assert_problem_starts("   ", "the file name is empty");
        assert_problem_starts("..", "\"..\" is a reference to a parent folder");
        assert_problem_starts(
            "../K7Q2XM_Breakfast_video_IT_9x16_v01.mp4",
            "the file name contains a path separator",
        );
        assert_problem_starts("a\\b.mp4", "the file name contains a path separator");
        assert_problem_starts(
            "K7Q2XM_Break\0fast_video_IT_9x16_v01.mp4",
            "the file name contains a zero byte",
        );
        assert_problem_starts(
            "K7Q2XM_Break\nfast_video_IT_9x16_v01.mp4",
            "the file name contains control characters",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_IT_9x16_v01.mp4.",
            "the file name ends with a space or a dot",
        );
        assert_problem_starts(
            "K7Q2XM_Breakfast_video_IT_9x16_v01.mp4 ",
            "the file name ends with a space or a dot",
        );
        assert_problem_starts(
            " K7Q2XM_Breakfast_video_IT_9x16_v01.mp4",
            "the file name starts with a space",
        );
        let long = format!("K7Q2XM_{}_video_IT_9x16_v01.mp4", "é".repeat(200));
        assert_problem_starts(
            &long,
            "the file name is 429 bytes long; the limit is 255 bytes",
        );
        assert_problem_starts("no-extension", "the file name has no extension");
        assert_problem_starts(".mp4", "the file name has no extension");
        // Control characters are escaped in messages.
        let found = problems("K7Q2XM_Break\nfast_video_IT_9x16_v01.mp4");
        assert!(
            found.iter().any(|p| p.contains("\"Break\\nfast\"")),
            "{found:#?}"
        );
        for weird in [
            "\u{202E}4pm.exe",
            "_",
            "__",
            "._",
            "...",
            "a.b.c",
            "\u{FEFF}",
            "😀😀😀_x.mp4",
            "\u{0301}",
        ] {
            let _ = classify(weird, &v2());
        }
    }

    #[test]
    fn configured_pattern_segments_work() {
        let mut cfg = v2();
        cfg.segments.insert(
            4,
            SegmentRule::from_parts(
                "market",
                "pattern",
                Some("[A-Z]{2,3}"),
                None,
                Some("a market code (2 or 3 capital letters)".into()),
                Some("ITA".into()),
                None,
                None,
            )
            .unwrap(),
        );
        assert!(cfg.validate().is_empty());
        let NameCheck::Parsed(parsed) =
            classify("K7Q2XM_Breakfast_video_IT_ITA_9x16_v01.mp4", &cfg)
        else {
            panic!("should parse");
        };
        assert_eq!(parsed.segments["market"], "ITA");
        assert_eq!(parsed.clean_filename, "Breakfast_video_IT_ITA_9x16.mp4");
        let NameCheck::Invalid { problems } =
            classify("K7Q2XM_Breakfast_video_IT_it_9x16_v01.mp4", &cfg)
        else {
            panic!("should be invalid");
        };
        assert_eq!(
            problems,
            vec![
                "segment 5 \"it\" is not a market code (2 or 3 capital letters), e.g. \"ITA\""
                    .to_string()
            ]
        );
        assert!(
            SegmentRule::from_parts("x", "pattern", Some("("), None, None, None, None, None)
                .is_err()
        );
        assert!(SegmentRule::from_parts("x", "bogus", None, None, None, None, None, None).is_err());
    }

    #[test]
    fn grammar_validation_catches_bad_configs() {
        let mut cfg = v2();
        cfg.segments.remove(0);
        cfg.segments.push(cfg.segments[0].clone());
        cfg.allowed_extensions.push(".mp4".into());
        let keys: Vec<String> = cfg.validate().into_iter().map(|(key, _)| key).collect();
        assert!(keys.contains(&"segments".to_string()), "{keys:?}");
        assert!(keys.contains(&"segments[5].name".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"allowed_extensions[17]".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn naming_config_deserializes_from_yaml_shapes() {
        let json = serde_json::json!({
            "separator": "_",
            "segments": [
                {"name": "tracking_id", "kind": "tracking_id"},
                {"name": "subject_title", "kind": "text", "example": "Spot"},
                {"name": "version", "kind": "version"}
            ],
            "allowed_extensions": ["mp4"]
        });
        let cfg: NamingConfig = serde_json::from_value(json).unwrap();
        assert_eq!(cfg.example_name(), "K7Q2XM_Spot_v01.mp4");
        assert_eq!(cfg.ignored_names.exact.len(), 3);
        assert!(matches!(
            classify("K7Q2XM_Spot_v2.mp4", &cfg),
            NameCheck::Parsed(_)
        ));
    }

    #[test]
    fn master_box_names() {
        assert_eq!(
            master_box_name("K7Q2XM", "Nutella_Breakfast_Master.mov"),
            "K7Q2XM_Nutella_Breakfast_Master.mov"
        );
        assert_eq!(
            master_box_name("K7Q2XM", "a/b\\c\u{0}d.mov "),
            "K7Q2XM_a-b-c-d.mov"
        );
        assert_eq!(master_box_name("K7Q2XM", "name..."), "K7Q2XM_name");
        let long = master_box_name("K7Q2XM", &format!("{}.mov", "é".repeat(300)));
        assert_eq!(long.chars().count(), 255);
        assert!(long.starts_with("K7Q2XM_é"));
        assert!(long.ends_with("é.mov"));
        let no_extension = master_box_name("K7Q2XM", &"x".repeat(300));
        assert_eq!(no_extension.chars().count(), 255);
    }

    #[test]
    fn campaign_folder_names() {
        assert_eq!(
            campaign_folder_name("C-2026-0142", "Nutella Breakfast Moments"),
            "C-2026-0142 Nutella Breakfast Moments"
        );
        assert_eq!(
            campaign_folder_name("C-1", "A/B: \"x\"  . "),
            "C-1 A-B: \"x\""
        );
        assert_eq!(campaign_folder_name("C-1", ""), "C-1");
        assert_eq!(campaign_folder_name("", ""), "campaign");
        assert_eq!(campaign_folder_name("", ".."), "campaign");
        assert_eq!(
            campaign_folder_name("C-1", &"名".repeat(400))
                .chars()
                .count(),
            255
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn classify_never_panics_and_invalid_has_problems(name in any::<String>()) {
                match classify(&name, &NamingConfig::default()) {
                    NameCheck::Invalid { problems } => prop_assert!(!problems.is_empty()),
                    NameCheck::Parsed(parsed) => {
                        prop_assert_eq!(parsed.tracking_id.chars().count(), 6);
                        let suffix = format!(".{}", parsed.extension);
                        prop_assert!(parsed.clean_filename.ends_with(&suffix));
                    }
                    NameCheck::Ignored { reason } => prop_assert!(!reason.is_empty()),
                }
            }

            #[test]
            fn near_valid_names_never_panic(
                id in "[0-9A-Za-z!]{0,8}",
                title in "\\PC{0,12}",
                kind in "[a-zA-Z0-9 ]{0,6}",
                language in "\\PC{0,3}",
                spec in "[0-9a-zA-Z×x-]{0,6}",
                version in "[vV]?[0-9]{0,4}",
                extension in "(mp4|MOV|exe|)",
            ) {
                let name = format!("{id}_{title}_{kind}_{language}_{spec}_{version}.{extension}");
                match classify(&name, &NamingConfig::default()) {
                    NameCheck::Invalid { problems } => prop_assert!(!problems.is_empty()),
                    NameCheck::Parsed(parsed) => prop_assert_eq!(canonical_tracking_id(&parsed.tracking_id), Some(parsed.tracking_id.clone())),
                    NameCheck::Ignored { .. } => {}
                }
            }

            #[test]
            fn box_names_are_always_safe(tracking in "\\PC{0,8}", name in any::<String>()) {
                let sanitized = master_box_name(&tracking, &name);
                prop_assert!(!sanitized.is_empty());
                prop_assert!(sanitized.chars().count() <= BOX_MAX_NAME_CHARS);
                prop_assert!(!sanitized.contains('/') && !sanitized.contains('\\'));
                prop_assert!(!sanitized.chars().any(char::is_control));
                prop_assert!(!sanitized.ends_with(' ') && !sanitized.ends_with('.'));
            }
        }
    }
}
