//! The typed parts of a `filename_field_updates` entry: where its value comes from
//! ([`FieldSource`]) and how it is changed on the way ([`Transform`]).
//!
//! Both are parsed once, when the configuration is loaded (an unknown source or transform is a
//! configuration error naming the file and the key); the passes only match on the enums.

use std::fmt;

/// A media attribute a field mapping may read as `media.<attr>` (the names of
/// `crate::media::MediaInfo::attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaAttr {
    /// `duration_seconds`: duration in seconds, e.g. `15.015` (a number field).
    DurationSeconds,
    /// `width`: video or image width in pixels (a number field).
    Width,
    /// `height`: video or image height in pixels (a number field).
    Height,
    /// `frame_rate`: frames per second, e.g. `25` (a number field).
    FrameRate,
    /// `video_codec`: ffprobe's codec name, e.g. `h264`.
    VideoCodec,
    /// `audio_codec`: ffprobe's codec name, e.g. `aac`.
    AudioCodec,
    /// `format_name`: ffprobe's container name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    FormatName,
}

impl MediaAttr {
    /// Every attribute, in the order the configuration error lists them.
    pub const ALL: &'static [MediaAttr] = &[
        Self::DurationSeconds,
        Self::Width,
        Self::Height,
        Self::FrameRate,
        Self::VideoCodec,
        Self::AudioCodec,
        Self::FormatName,
    ];

    /// The attribute's name after `media.` in a mapping `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DurationSeconds => "duration_seconds",
            Self::Width => "width",
            Self::Height => "height",
            Self::FrameRate => "frame_rate",
            Self::VideoCodec => "video_codec",
            Self::AudioCodec => "audio_codec",
            Self::FormatName => "format_name",
        }
    }

    /// The attribute named `name` (without `media.`), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|attr| attr.as_str() == name)
    }

    /// Written into OTMM as a number (`{"type":"number","value":N}`) rather than a string.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::DurationSeconds | Self::Width | Self::Height | Self::FrameRate
        )
    }
}

/// Where a `filename_field_updates` entry takes its value from (YAML `source`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldSource {
    /// `clean_filename`: the delivered name without the tracking-ID prefix.
    CleanFilename,
    /// `original_filename`: the name as delivered.
    OriginalFilename,
    /// `tracking_id`: the master's tracking ID from the name.
    TrackingId,
    /// `extension`: the file extension, without the dot.
    Extension,
    /// A segment of the name by its `naming.segments` name (`subject_title`, `asset_type`,
    /// `language_code`, `spec`, `version`, ...).
    Segment(String),
    /// `media.<attr>`: a fact of the media probe.
    Media(MediaAttr),
}

impl FieldSource {
    /// The sources that do not name a segment, as the configuration spells them.
    const FIXED: [(&'static str, FieldSource); 4] = [
        ("extension", Self::Extension),
        ("clean_filename", Self::CleanFilename),
        ("original_filename", Self::OriginalFilename),
        ("tracking_id", Self::TrackingId),
    ];

    /// Parses a `source` value against the segment names of the naming rules.
    ///
    /// # Errors
    /// The expectation (what the value may be), naming every valid source, when `text` is none.
    pub fn parse(text: &str, segment_names: &[&str]) -> Result<Self, String> {
        if let Some((_, source)) = Self::FIXED.iter().find(|(name, _)| *name == text) {
            return Ok(source.clone());
        }
        if let Some(attr) = text.strip_prefix("media.").and_then(MediaAttr::parse) {
            return Ok(Self::Media(attr));
        }
        if segment_names.contains(&text) {
            return Ok(Self::Segment(text.to_string()));
        }
        let mut names: Vec<&str> = segment_names.to_vec();
        for (name, _) in &Self::FIXED {
            if !names.contains(name) {
                names.push(name);
            }
        }
        let attrs: Vec<&str> = MediaAttr::ALL.iter().map(|attr| attr.as_str()).collect();
        Err(format!(
            "expected one of {} or media.<attr> with attr one of {}",
            names.join(", "),
            attrs.join(", ")
        ))
    }

    /// The media attribute, for a `media.<attr>` source.
    pub fn media(&self) -> Option<MediaAttr> {
        match self {
            Self::Media(attr) => Some(*attr),
            _ => None,
        }
    }
}

impl fmt::Display for FieldSource {
    /// The configuration's spelling (`clean_filename`, `subject_title`, `media.duration_seconds`).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Segment(name) => formatter.write_str(name),
            Self::Media(attr) => write!(formatter, "media.{}", attr.as_str()),
            fixed => {
                let name = Self::FIXED
                    .iter()
                    .find(|(_, source)| source == fixed)
                    .map_or("", |(name, _)| name);
                formatter.write_str(name)
            }
        }
    }
}

/// One step of a field mapping's `transform` (YAML: one name, or several separated by `,`
/// applied in order; `none` is no step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// `upper`: upper case.
    Upper,
    /// `lower`: lower case.
    Lower,
    /// `title`: first letter of each word (split at whitespace, `-`, `_`) upper case, the rest
    /// lower case.
    Title,
    /// `dash_to_space`: `-` becomes a space, runs of spaces collapse, ends trimmed.
    DashToSpace,
}

impl Transform {
    /// The spellings a `transform` may use, `none` (no step) first.
    pub const NAMES: &'static [&'static str] =
        &["none", "upper", "lower", "title", "dash_to_space"];

    /// Parses a `transform` value: steps separated by `,`, `none` standing for no step;
    /// `uppercase` and `lowercase` (the plan's names) are `upper` and `lower`.
    ///
    /// # Errors
    /// `(step, expectation)` for the first step that is not a transform.
    pub fn parse_steps(text: &str) -> Result<Vec<Transform>, (String, String)> {
        let mut steps = Vec::new();
        for step in text.split(',').map(str::trim) {
            match step {
                "none" => {}
                // `uppercase` / `lowercase`: the plan's names.
                "upper" | "uppercase" => steps.push(Self::Upper),
                "lower" | "lowercase" => steps.push(Self::Lower),
                "title" => steps.push(Self::Title),
                "dash_to_space" => steps.push(Self::DashToSpace),
                other => {
                    return Err((
                        other.to_string(),
                        format!(
                            "expected one of {} (several separated by \",\")",
                            Self::NAMES.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(steps)
    }

    /// Applies this step to `value`.
    pub fn apply(self, value: &str) -> String {
        match self {
            Self::Upper => value.to_uppercase(),
            Self::Lower => value.to_lowercase(),
            Self::Title => title_case(value),
            Self::DashToSpace => value
                .replace('-', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Applies `steps` to `value` in order (no step: `value` as is).
    pub fn apply_all(steps: &[Transform], value: &str) -> String {
        steps
            .iter()
            .fold(value.to_string(), |out, step| step.apply(&out))
    }
}

/// First letter of each word (split at whitespace, `-`, `_`) upper case, the rest lower case.
fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start_of_word = true;
    for c in text.chars() {
        if c.is_whitespace() || c == '-' || c == '_' {
            start_of_word = true;
            out.push(c);
        } else if start_of_word {
            out.extend(c.to_uppercase());
            start_of_word = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_once_and_print_as_configured() {
        let segments = ["tracking_id", "subject_title", "version"];
        for text in [
            "clean_filename",
            "original_filename",
            "tracking_id",
            "extension",
            "subject_title",
            "media.duration_seconds",
            "media.format_name",
        ] {
            let source = FieldSource::parse(text, &segments).expect(text);
            assert_eq!(source.to_string(), text);
        }
        assert_eq!(
            FieldSource::parse("tracking_id", &segments),
            Ok(FieldSource::TrackingId),
            "the fixed source wins over a segment of the same name"
        );
        assert_eq!(
            FieldSource::parse("media.width", &segments)
                .ok()
                .and_then(|source| source.media())
                .map(MediaAttr::is_numeric),
            Some(true)
        );
        let error = FieldSource::parse("media.bitrate", &segments).unwrap_err();
        assert_eq!(
            error,
            "expected one of tracking_id, subject_title, version, extension, clean_filename, original_filename or media.<attr> with attr one of duration_seconds, width, height, frame_rate, video_codec, audio_codec, format_name"
        );
        assert!(FieldSource::parse("spec", &segments).is_err());
    }

    #[test]
    fn transforms_parse_into_steps() {
        assert_eq!(Transform::parse_steps("none"), Ok(vec![]));
        assert_eq!(
            Transform::parse_steps("uppercase"),
            Transform::parse_steps("upper")
        );
        assert_eq!(
            Transform::parse_steps("lowercase"),
            Ok(vec![Transform::Lower])
        );
        assert_eq!(
            Transform::parse_steps("dash_to_space, title"),
            Ok(vec![Transform::DashToSpace, Transform::Title])
        );
        let (step, expected) = Transform::parse_steps("upper,shout").unwrap_err();
        assert_eq!(step, "shout");
        assert!(
            expected.starts_with("expected one of none, upper"),
            "{expected}"
        );
    }
}
