//! Media probing with `ffprobe`: duration, dimensions, frame rate and codecs of a delivered file.
//!
//! [`probe`] runs `ffprobe -v error -print_format json -show_format -show_streams <file>` as a child
//! process with a timeout and reads its JSON (see <https://ffmpeg.org/ffprobe.html>, sections
//! "Writers" (json) and "-show_format"/"-show_streams"). The parser ([`parse_ffprobe_json`]) tolerates
//! missing fields: ffprobe omits keys it cannot determine, and numbers such as `duration` come as
//! strings.
//!
//! The file is an agency's upload, so ffprobe is treated as a parser of hostile input:
//! - it runs with a cleared environment (only `PATH` and `LANG` are passed on): the process's
//!   secrets (`DAM_PASSWORD`, `MAILGUN_API_KEY`, ... loaded from `.env`) never reach it;
//! - `-protocol_whitelist file` and the input given as a `file:` URL: no network, no `concat:`,
//!   `subfile:` or `data:` protocol;
//! - the demuxer is forced from the file's extension ([`demuxer_for_extension`]: `.mp4` is read
//!   by the `mov` demuxer only), and files with other extensions may only be read by the
//!   demuxers in [`ALLOWED_DEMUXERS`]: an ffconcat or HLS playlist named `.mp4` is rejected as
//!   invalid data instead of making ffprobe open the files it lists (the Box token cache sits in
//!   the temp dir);
//! - ffprobe's error text has every path of this server removed before it becomes the rejection
//!   message that goes into the Box error note and the email.
//!
//! Kinds:
//! - **Video**: a video stream that is not attached cover art; duration, width, height, frame rate and
//!   the video (and audio, if any) codec.
//! - **Image** (png, jpg, jpeg, gif, webp, tif, tiff, bmp, or anything ffprobe reads with its `image2`
//!   / `*_pipe` demuxers): width and height; the image codec (`png`, `mjpeg`, ...) is reported as
//!   `video_codec` because ffprobe models a still image as a one-frame video stream. No duration and
//!   no frame rate (ffprobe's 25/1 for a still image is a placeholder).
//! - **Audio**: audio streams only; duration and audio codec.
//! - **Other**: extensions ffprobe cannot read (pdf, ai, eps, psd, indd, zip, ...) are not probed at all,
//!   and files with neither audio nor video streams.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use wait_timeout::ChildExt;

use crate::config::{MediaAttr, MediaConfig};

/// What kind of media a file is, as far as the DAM metadata is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Moving pictures (with or without sound).
    Video,
    /// Sound only.
    Audio,
    /// A still image.
    Image,
    /// Anything else (documents, layered design files, archives); nothing was probed.
    Other,
}

impl MediaKind {
    /// Lower-case name: `video`, `audio`, `image`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Image => "image",
            MediaKind::Other => "other",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Technical metadata of one file, as read by ffprobe. Every field is optional: ffprobe leaves out
/// what it cannot determine, and [`MediaKind::Other`] files are not probed at all.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// What the file is.
    pub kind: MediaKind,
    /// Length in seconds (ffprobe `format.duration`, else the longest stream `duration`). Video/audio only.
    pub duration_seconds: Option<f64>,
    /// Width in pixels of the first video stream (or the image).
    pub width: Option<u32>,
    /// Height in pixels of the first video stream (or the image).
    pub height: Option<u32>,
    /// Frames per second from `avg_frame_rate` (else `r_frame_rate`), e.g. 25.0 or 29.97 for
    /// `30000/1001`; `None` when ffprobe reports `0/0`. Video only.
    pub frame_rate: Option<f64>,
    /// ffprobe `codec_name` of the first video stream (`h264`, `prores`, ...; `png`, `mjpeg` for images).
    pub video_codec: Option<String>,
    /// ffprobe `codec_name` of the first audio stream (`aac`, `mp3`, `pcm_s16le`, ...).
    pub audio_codec: Option<String>,
    /// ffprobe `format.format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`, `png_pipe`, `image2`.
    pub format_name: Option<String>,
}

impl MediaInfo {
    /// An [`MediaKind::Other`] record with nothing known.
    pub fn other() -> Self {
        MediaInfo {
            kind: MediaKind::Other,
            duration_seconds: None,
            width: None,
            height: None,
            frame_rate: None,
            video_codec: None,
            audio_codec: None,
            format_name: None,
        }
    }

    /// One attribute as text, for field mappings (`source: media.<attr>`). Numbers are printed
    /// with at most 3 decimals and no trailing zeros (`5.312`, `25`, `29.97`). `None` when ffprobe
    /// did not tell.
    pub fn attr(&self, attr: MediaAttr) -> Option<String> {
        match attr {
            MediaAttr::DurationSeconds => self.duration_seconds.map(format_number),
            MediaAttr::Width => self.width.map(|w| w.to_string()),
            MediaAttr::Height => self.height.map(|h| h.to_string()),
            MediaAttr::FrameRate => self.frame_rate.map(format_number),
            MediaAttr::VideoCodec => self.video_codec.clone(),
            MediaAttr::AudioCodec => self.audio_codec.clone(),
            MediaAttr::FormatName => self.format_name.clone(),
        }
    }
}

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The ffprobe executable was not found (configuration/installation problem, not the file's fault).
    #[error("ffprobe not found at `{path}`: install ffmpeg (Debian/Ubuntu: `apt-get install ffmpeg`; RHEL/Rocky/Fedora: `dnf install ffmpeg`, CentOS 7: `yum install ffmpeg`, both from RPM Fusion; or a static build from johnvansickle.com/ffmpeg in /usr/local/bin) or set `media.ffprobe_path`")]
    FfprobeMissing {
        /// The configured `media.ffprobe_path`.
        path: String,
    },
    /// ffprobe could not read the file (corrupt, truncated, empty, or not a media file): permanent.
    #[error("file is not readable as media: {message}")]
    Unreadable {
        /// ffprobe's first error line (or a description of what was wrong with its output).
        message: String,
    },
    /// ffprobe did not finish within `media.timeout_secs`; it was killed. May be transient (load).
    #[error(
        "ffprobe did not finish within the configured timeout (media.timeout_secs) and was killed"
    )]
    Timeout,
    /// The file could not be opened, or ffprobe could not be started or read.
    #[error("media probe I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl MediaError {
    /// True when retrying the same file can never help (the file itself is bad).
    pub fn is_permanent(&self) -> bool {
        matches!(self, MediaError::Unreadable { .. })
    }
}

/// Extensions (lower case, without dot) that are not probed: [`probe`] returns [`MediaKind::Other`].
pub const UNPROBED_EXTENSIONS: &[&str] = &[
    "pdf", "ai", "eps", "psd", "psb", "indd", "idml", "svg", "zip", "doc", "docx", "ppt", "pptx",
    "xls", "xlsx", "txt",
];

/// Extensions (lower case, without dot) that are still images.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "tif", "tiff", "bmp", "heic", "avif",
];

/// The demuxer ffprobe must use for a file with this extension (lower case, no dot), by
/// ffprobe's demuxer names (`ffprobe -demuxers`); `None` for extensions without a fixed one
/// (the file may then only be read by one of [`ALLOWED_DEMUXERS`]).
pub fn demuxer_for_extension(extension: &str) -> Option<&'static str> {
    Some(match extension {
        // `mov` is the demuxer "mov,mp4,m4a,3gp,3g2,mj2".
        "mov" | "mp4" | "m4v" | "m4a" | "3gp" | "3g2" | "mj2" | "qt" => "mov",
        "mxf" => "mxf",
        "avi" => "avi",
        "mkv" | "mka" | "webm" => "matroska",
        "mpg" | "mpeg" | "vob" => "mpeg",
        "ts" | "mts" | "m2ts" => "mpegts",
        "flv" => "flv",
        "wmv" | "wma" | "asf" => "asf",
        "mp3" => "mp3",
        "wav" => "wav",
        "aif" | "aiff" => "aiff",
        "aac" => "aac",
        "flac" => "flac",
        "ogg" | "oga" | "ogv" | "opus" => "ogg",
        "png" => "png_pipe",
        "jpg" | "jpeg" => "jpeg_pipe",
        "gif" => "gif",
        "webp" => "webp_pipe",
        "tif" | "tiff" => "tiff_pipe",
        "bmp" => "bmp_pipe",
        _ => return None,
    })
}

/// The demuxers ffprobe may use for a file whose extension has no fixed demuxer
/// (`-format_whitelist`): containers of single media files. Playlist and indirection formats
/// (`concat`, `hls`, `dash`, `image2` sequences, ...) are not among them.
pub const ALLOWED_DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,mxf,avi,matroska,webm,mpeg,mpegts,flv,asf,mp3,wav,aiff,aac,flac,ogg,png_pipe,jpeg_pipe,gif,webp_pipe,tiff_pipe,bmp_pipe";

/// Environment variables ffprobe gets (all others are removed).
const FFPROBE_ENVIRONMENT: &[&str] = &["PATH", "LANG"];

/// The `ffprobe` command line for `path` with extension `extension` (lower case, no dot): see
/// the module docs for the hardening.
fn ffprobe_command(ffprobe: &str, path: &Path, extension: &str) -> Command {
    let mut command = Command::new(ffprobe);
    command.env_clear();
    for name in FFPROBE_ENVIRONMENT {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.args(["-hide_banner", "-v", "error", "-protocol_whitelist", "file"]);
    match demuxer_for_extension(extension) {
        Some(demuxer) => command.args(["-f", demuxer]),
        None => command.args(["-format_whitelist", ALLOWED_DEMUXERS]),
    };
    command.args(["-print_format", "json", "-show_format", "-show_streams"]);
    // A `file:` URL: a path can never be taken for another protocol (`concat:...`).
    let mut input = std::ffi::OsString::from("file:");
    input.push(path.as_os_str());
    command
        .arg(input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Probe `path` with ffprobe (`cfg.ffprobe_path`, killed after `cfg.timeout_secs` seconds).
///
/// `extension` is the file's extension (any case, with or without a leading dot); extensions in
/// [`UNPROBED_EXTENSIONS`] return `Ok(MediaInfo::other())` without running ffprobe. The
/// extension also chooses the demuxer ([`demuxer_for_extension`]): a file whose content does not
/// match its extension is unreadable.
///
/// Errors: [`MediaError::Io`] if `path` cannot be read or ffprobe cannot be run,
/// [`MediaError::FfprobeMissing`] if the executable does not exist, [`MediaError::Unreadable`] for
/// an empty file or when ffprobe rejects the file (its error lines, cleaned and without any path
/// of this server, e.g. `moov atom not found; Invalid data found when processing input`),
/// [`MediaError::Timeout`] when it hangs.
pub fn probe(path: &Path, extension: &str, cfg: &MediaConfig) -> Result<MediaInfo, MediaError> {
    let ext = extension.trim_start_matches('.').to_ascii_lowercase();
    if UNPROBED_EXTENSIONS.contains(&ext.as_str()) {
        return Ok(MediaInfo::other());
    }
    // Fail with the real I/O error (not found, permission denied) rather than ffprobe's wording.
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(MediaError::Unreadable {
            message: "the file is empty (0 bytes)".to_string(),
        });
    }
    drop(file);

    let mut child = match ffprobe_command(&cfg.ffprobe_path, path, &ext).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MediaError::FfprobeMissing {
                path: cfg.ffprobe_path.clone(),
            })
        }
        Err(e) => return Err(MediaError::Io(e)),
    };

    // Drain both pipes in threads so a large JSON output can never block ffprobe on a full pipe.
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(mut stdout) = child.stdout.take() {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let res = stdout.read_to_end(&mut buf).map(|_| buf);
            let _ = out_tx.send(res);
        });
    }
    if let Some(mut stderr) = child.stderr.take() {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let res = stderr.read_to_end(&mut buf).map(|_| buf);
            let _ = err_tx.send(res);
        });
    }

    let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
    let deadline = Instant::now() + timeout;
    let Some(status) = child.wait_timeout(timeout)? else {
        let _ = child.kill();
        let _ = child.wait();
        tracing::warn!(path = %path.display(), timeout_secs = cfg.timeout_secs, "ffprobe timed out, killed");
        return Err(MediaError::Timeout);
    };

    // The process has exited; its pipes close unless it left children behind holding them, so
    // wait for the readers only until the deadline (plus a little grace).
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let stdout = match out_rx.recv_timeout(remaining) {
        Ok(res) => res?,
        Err(_) => return Err(MediaError::Timeout),
    };
    let stderr = err_rx
        .recv_timeout(Duration::from_secs(1))
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();

    if !status.success() {
        let message = error_summary(&stderr, path)
            .unwrap_or_else(|| format!("ffprobe exited with {status} and printed no error"));
        return Err(MediaError::Unreadable { message });
    }
    let text = String::from_utf8_lossy(&stdout);
    parse_ffprobe_json(&text, &ext).map_err(|message| {
        // ffprobe may exit 0 yet print an error (e.g. a stream it could not decode).
        let message = error_summary(&stderr, path).unwrap_or(message);
        MediaError::Unreadable { message }
    })
}

/// What `ffprobe -print_format json -show_format -show_streams` prints (the fields read here).
#[derive(Debug, Default, Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    format: ProbeFormat,
}

/// One entry of `streams`.
#[derive(Debug, Default, Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<Number>,
    height: Option<Number>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<Number>,
    #[serde(default)]
    disposition: Disposition,
}

/// `streams[].disposition` (flags as 0/1).
#[derive(Debug, Default, Deserialize)]
struct Disposition {
    attached_pic: Option<Number>,
}

/// `format`.
#[derive(Debug, Default, Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<Number>,
}

/// A number as ffprobe prints it: a JSON number, or (most of them) a string holding one;
/// anything else is kept as unknown rather than failing the whole parse.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Float(f64),
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl Number {
    fn value(&self) -> Option<f64> {
        match self {
            Number::Float(value) => Some(*value),
            Number::Text(text) => text.trim().parse().ok(),
            Number::Other(_) => None,
        }
    }
}

fn number(value: Option<&Number>) -> Option<f64> {
    value.and_then(Number::value)
}

/// Parse the JSON printed by `ffprobe -print_format json -show_format -show_streams` into a
/// [`MediaInfo`]. `extension` (lower case, no dot) decides [`MediaKind::Image`] for still-image
/// extensions. Missing fields become `None`.
///
/// Errors (as a message): output that is not JSON, or that has no streams at all and no known
/// format (what ffprobe prints for a file it could not read).
pub fn parse_ffprobe_json(json: &str, extension: &str) -> Result<MediaInfo, String> {
    let root: ProbeOutput =
        serde_json::from_str(json).map_err(|e| format!("ffprobe printed invalid JSON: {e}"))?;
    let streams = &root.streams;
    let format = &root.format;
    let format_name = format.format_name.clone();
    if streams.is_empty() && format_name.is_none() {
        return Err("ffprobe found no streams in the file".to_string());
    }

    let is_cover_art =
        |s: &ProbeStream| number(s.disposition.attached_pic.as_ref()).is_some_and(|v| v != 0.0);
    let video = streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && !is_cover_art(s));
    let audio = streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));

    let ext = extension.trim_start_matches('.').to_ascii_lowercase();
    let image_format = format_name
        .as_deref()
        .is_some_and(|f| f == "image2" || f.ends_with("_pipe"));
    let kind = if video.is_some() && (IMAGE_EXTENSIONS.contains(&ext.as_str()) || image_format) {
        MediaKind::Image
    } else if video.is_some() {
        MediaKind::Video
    } else if audio.is_some() {
        MediaKind::Audio
    } else {
        MediaKind::Other
    };

    let codec = |s: Option<&ProbeStream>| {
        s.and_then(|s| s.codec_name.as_deref())
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    let dimension = |value: Option<&Number>| {
        number(value)
            .filter(|v| *v > 0.0 && *v <= f64::from(u32::MAX))
            .map(|v| {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "filtered to (0, u32::MAX]; a fraction is dropped"
                )]
                let pixels = v as u32;
                pixels
            })
    };

    let mut info = MediaInfo {
        kind,
        duration_seconds: None,
        width: dimension(video.and_then(|s| s.width.as_ref())),
        height: dimension(video.and_then(|s| s.height.as_ref())),
        frame_rate: None,
        video_codec: codec(video),
        audio_codec: codec(audio),
        format_name,
    };
    match kind {
        MediaKind::Video | MediaKind::Audio => {
            info.duration_seconds = number(format.duration.as_ref())
                .filter(|d| d.is_finite() && *d >= 0.0)
                .or_else(|| {
                    streams
                        .iter()
                        .filter_map(|s| number(s.duration.as_ref()))
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .reduce(f64::max)
                });
            info.frame_rate = video.and_then(|s| {
                [&s.avg_frame_rate, &s.r_frame_rate]
                    .into_iter()
                    .find_map(|rate| rate.as_deref().and_then(parse_rate))
            });
        }
        MediaKind::Image => {}
        MediaKind::Other => {
            info.video_codec = None;
            info.audio_codec = None;
        }
    }
    Ok(info)
}

/// Parse an ffprobe rational rate such as `25/1` or `30000/1001` (also a plain `25`); `None` for
/// `0/0`, zero, or garbage.
pub fn parse_rate(rate: &str) -> Option<f64> {
    let rate = rate.trim();
    let value = match rate.split_once('/') {
        Some((num, den)) => {
            let num: f64 = num.trim().parse().ok()?;
            let den: f64 = den.trim().parse().ok()?;
            if den == 0.0 {
                return None;
            }
            num / den
        }
        None => rate.parse().ok()?,
    };
    (value.is_finite() && value > 0.0).then_some(value)
}

/// At most 3 decimals, no trailing zeros: 5.312, 25, 29.97.
fn format_number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// ffprobe's error lines, cleaned for a person: the `[demuxer @ 0x55..] ` prefix and the
/// `{path}: ` prefix removed, duplicates dropped, at most 3 lines joined with `; `.
/// E.g. `moov atom not found; Invalid data found when processing input`.
///
/// The text becomes the rejection message in the Box error note and the email, so no path of
/// this server survives: the file's own path and its directory become `the file` / `the temp
/// dir`, and any other absolute path (a file a playlist names) becomes `<path>`.
fn error_summary(bytes: &[u8], path: &Path) -> Option<String> {
    static ABSOLUTE_PATH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(^|[\s'"(=])(?:file:)?/[^\s'"),;]*"#).expect("valid regex")
    });
    let text = String::from_utf8_lossy(bytes);
    let shown = path.display().to_string();
    let directory = path
        .parent()
        .map(|parent| parent.display().to_string())
        .filter(|parent| parent.len() > 1);
    let prefixes = [format!("file:{shown}: "), format!("{shown}: ")];
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut l = line;
        if l.starts_with('[') {
            if let Some(end) = l.find("] ") {
                l = &l[end + 2..];
            }
        }
        for prefix in &prefixes {
            l = l.strip_prefix(prefix.as_str()).unwrap_or(l);
        }
        let mut cleaned = l
            .trim()
            .replace(&format!("file:{shown}"), "the file")
            .replace(&shown, "the file");
        if let Some(directory) = &directory {
            cleaned = cleaned.replace(directory.as_str(), "the temp dir");
        }
        let cleaned = ABSOLUTE_PATH
            .replace_all(&cleaned, "${1}<path>")
            .into_owned();
        if !cleaned.is_empty() && !lines.contains(&cleaned) {
            lines.push(cleaned);
        }
        if lines.len() == 3 {
            break;
        }
    }
    (!lines.is_empty()).then(|| lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cfg() -> MediaConfig {
        MediaConfig {
            ffprobe_path: "ffprobe".to_string(),
            timeout_secs: 60,
        }
    }

    /// A media fixture of `shared/fixtures/media`; panics when it is absent (a missing fixture
    /// must not pass a test silently).
    fn fixture(name: &str) -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/media")
            .join(name);
        assert!(p.is_file(), "fixture {} is absent", p.display());
        p
    }

    /// Panics when ffprobe is not installed (scripts/test.sh installs it).
    fn require_ffprobe() {
        let ok = Command::new("ffprobe")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "ffprobe is not installed (scripts/test.sh installs it with ffmpeg)"
        );
    }

    #[test]
    fn probes_real_video() {
        let p = fixture("bigbuckbunny.mp4");
        require_ffprobe();
        let info = probe(&p, "mp4", &cfg()).unwrap();
        assert_eq!(info.kind, MediaKind::Video);
        assert_eq!(info.width, Some(1280));
        assert_eq!(info.height, Some(720));
        assert_eq!(info.frame_rate, Some(25.0));
        assert_eq!(info.duration_seconds, Some(5.312));
        assert_eq!(info.video_codec.as_deref(), Some("h264"));
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!(info.format_name.as_deref(), Some("mov,mp4,m4a,3gp,3g2,mj2"));
        assert_eq!(
            info.attr(MediaAttr::DurationSeconds).as_deref(),
            Some("5.312")
        );
        assert_eq!(info.attr(MediaAttr::FrameRate).as_deref(), Some("25"));
        assert_eq!(info.attr(MediaAttr::Width).as_deref(), Some("1280"));
        assert_eq!(info.kind.as_str(), "video");
    }

    #[test]
    fn probes_real_png() {
        let p = fixture("coffee.png");
        require_ffprobe();
        let info = probe(&p, "PNG", &cfg()).unwrap();
        assert_eq!(info.kind, MediaKind::Image);
        assert_eq!((info.width, info.height), (Some(600), Some(400)));
        assert_eq!(info.duration_seconds, None);
        assert_eq!(info.frame_rate, None);
        assert_eq!(info.video_codec.as_deref(), Some("png"));
        assert_eq!(info.format_name.as_deref(), Some("png_pipe"));
    }

    #[test]
    fn probes_real_jpeg() {
        let p = fixture("rocket.jpg");
        require_ffprobe();
        let info = probe(&p, ".jpg", &cfg()).unwrap();
        assert_eq!(info.kind, MediaKind::Image);
        assert_eq!((info.width, info.height), (Some(640), Some(427)));
        assert_eq!(info.duration_seconds, None);
        assert_eq!(info.video_codec.as_deref(), Some("mjpeg"));
        assert_eq!(info.attr(MediaAttr::Height).as_deref(), Some("427"));
    }

    #[test]
    fn corrupt_and_empty_files_are_unreadable() {
        require_ffprobe();
        let dir = tempfile::tempdir().unwrap();
        let corrupt = dir.path().join("broken.mp4");
        // Deterministic pseudo-random bytes (xorshift), no container signature.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x & 0xff) as u8
            })
            .collect();
        std::fs::write(&corrupt, bytes).unwrap();
        let err = probe(&corrupt, "mp4", &cfg()).unwrap_err();
        match &err {
            MediaError::Unreadable { message } => {
                // ffprobe: "[mov,mp4,... @ 0x55..] moov atom not found" + "<path>: Invalid data ..."
                assert!(message.contains("Invalid data"), "{message}");
                assert!(!message.contains(" @ 0x"), "{message}");
                assert!(!message.contains("broken.mp4"), "{message}");
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
        assert!(err.is_permanent());

        let empty = dir.path().join("empty.mov");
        std::fs::write(&empty, b"").unwrap();
        let err = probe(&empty, "mov", &cfg()).unwrap_err();
        match &err {
            MediaError::Unreadable { message } => assert!(message.contains("empty"), "{message}"),
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }

    #[test]
    fn missing_ffprobe_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.mp4");
        std::fs::write(&f, b"x").unwrap();
        let cfg = MediaConfig {
            ffprobe_path: "/nonexistent/bin/ffprobe".to_string(),
            timeout_secs: 5,
        };
        let err = probe(&f, "mp4", &cfg).unwrap_err();
        assert!(
            matches!(&err, MediaError::FfprobeMissing { path } if path == "/nonexistent/bin/ffprobe")
        );
        assert!(err.to_string().contains("install ffmpeg"));
    }

    #[test]
    fn missing_file_is_io() {
        let err = probe(Path::new("/nonexistent/x.mp4"), "mp4", &cfg()).unwrap_err();
        assert!(matches!(err, MediaError::Io(_)));
    }

    #[test]
    fn documents_are_not_probed() {
        // ffprobe path is bogus: proves it is never run for these.
        let cfg = MediaConfig {
            ffprobe_path: "/nonexistent/ffprobe".to_string(),
            timeout_secs: 5,
        };
        for ext in ["pdf", "AI", ".eps", "psd"] {
            let info = probe(Path::new("/nonexistent/file"), ext, &cfg).unwrap();
            assert_eq!(info, MediaInfo::other());
            assert_eq!(info.attr(MediaAttr::Width), None);
        }
    }

    #[cfg(unix)]
    #[test]
    fn hanging_ffprobe_is_killed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slowprobe");
        std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("a.mp4");
        std::fs::write(&f, b"x").unwrap();
        let cfg = MediaConfig {
            ffprobe_path: script.to_string_lossy().into_owned(),
            timeout_secs: 1,
        };
        let start = Instant::now();
        let err = probe(&f, "mp4", &cfg).unwrap_err();
        assert!(matches!(err, MediaError::Timeout), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// The path of the real ffprobe (for wrappers that must not find themselves on PATH).
    fn real_ffprobe() -> String {
        require_ffprobe();
        let output = Command::new("sh")
            .args(["-c", "command -v ffprobe"])
            .output()
            .expect("sh");
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(path.starts_with('/'), "ffprobe path: {path:?}");
        path
    }

    #[cfg(unix)]
    fn executable(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A FIFO at `path` and a thread that opens it for writing: the open returns only when a
    /// reader opens the FIFO. [`Tripwire::was_opened`] says whether anyone did.
    #[cfg(unix)]
    struct Tripwire {
        path: PathBuf,
        done: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<thread::JoinHandle<bool>>,
    }

    #[cfg(unix)]
    impl Tripwire {
        fn new(path: &Path) -> Tripwire {
            let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
            assert!(status.success(), "mkfifo {}", path.display());
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (fifo, flag) = (path.to_path_buf(), done.clone());
            let thread = thread::spawn(move || {
                let opened = std::fs::OpenOptions::new().write(true).open(&fifo).is_ok();
                opened && !flag.load(std::sync::atomic::Ordering::SeqCst)
            });
            Tripwire {
                path: path.to_path_buf(),
                done,
                thread: Some(thread),
            }
        }

        /// True when something opened the FIFO before this call.
        fn was_opened(mut self) -> bool {
            use std::os::unix::fs::OpenOptionsExt;
            // Give a reader that is just opening it a moment, then release the writer ourselves.
            thread::sleep(Duration::from_millis(200));
            self.done.store(true, std::sync::atomic::Ordering::SeqCst);
            let _reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_nonblock())
                .open(&self.path)
                .unwrap();
            self.thread.take().unwrap().join().unwrap()
        }
    }

    /// `O_NONBLOCK` on Linux and the BSDs/macOS.
    #[cfg(unix)]
    fn libc_nonblock() -> i32 {
        if cfg!(target_os = "linux") {
            0o4000
        } else {
            0x0004
        }
    }

    /// An ffconcat playlist (and an HLS one) delivered as `.mp4` names a file next to it. Run the
    /// way ffprobe is run by default, ffprobe opens that file (the control: proves the tripwire
    /// works); run by [`probe`], the file is rejected as invalid data and the named file is never
    /// opened; the rejection text holds no path of this server.
    #[cfg(unix)]
    #[test]
    fn playlists_named_as_video_are_rejected_without_opening_other_files() {
        require_ffprobe();
        let dir = tempfile::tempdir().unwrap();
        let playlists = [
            ("ffconcat", "ffconcat version 1.0\nfile 'box-token.json'\n"),
            (
                "hls",
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nbox-token.ts\n#EXT-X-ENDLIST\n",
            ),
        ];
        for (kind, text) in playlists {
            let named = if kind == "hls" {
                "box-token.ts"
            } else {
                "box-token.json"
            };
            let target = dir.path().join(named);
            let playlist = dir.path().join(format!("cs-{kind}.mp4"));
            std::fs::write(&playlist, text).unwrap();

            let control = Tripwire::new(&target);
            let _ = Command::new("ffprobe")
                .args(["-v", "error", "-show_format"])
                .arg(&playlist)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(
                control.was_opened(),
                "{kind}: control: a default ffprobe opens the file the playlist names"
            );
            std::fs::remove_file(&target).unwrap();

            let tripwire = Tripwire::new(&target);
            let error = probe(&playlist, "mp4", &cfg()).unwrap_err();
            assert!(!tripwire.was_opened(), "{kind}: probe opened {named}");
            let MediaError::Unreadable { message } = &error else {
                panic!("{kind}: expected Unreadable, got {error:?}");
            };
            assert!(message.contains("Invalid data"), "{kind}: {message}");
            let temp = dir.path().display().to_string();
            assert!(!message.contains(&temp), "{kind}: {message}");
            assert!(!message.contains("cs-"), "{kind}: {message}");
            std::fs::remove_file(&target).unwrap();

            // An unknown extension: the demuxer whitelist refuses the playlist formats.
            let tripwire = Tripwire::new(&target);
            let odd = dir.path().join(format!("cs-{kind}.xyz"));
            std::fs::copy(&playlist, &odd).unwrap();
            let error = probe(&odd, "xyz", &cfg()).unwrap_err();
            assert!(
                !tripwire.was_opened(),
                "{kind} as .xyz: probe opened {named}"
            );
            assert!(error.is_permanent(), "{kind} as .xyz: {error:?}");
            assert!(!error.to_string().contains(&temp), "{error}");
            std::fs::remove_file(&target).unwrap();
        }
    }

    /// ffprobe gets `PATH` and `LANG` only, and the hardening options: a wrapper script set as
    /// the ffprobe path records its environment and arguments, then runs the real ffprobe.
    #[cfg(unix)]
    #[test]
    fn ffprobe_runs_with_a_cleared_environment_and_only_the_file_protocol() {
        let real = real_ffprobe();
        let video = fixture("bigbuckbunny.mp4");
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("env.txt");
        let args = dir.path().join("args.txt");
        let wrapper = dir.path().join("ffprobe-wrapper");
        executable(
            &wrapper,
            &format!(
                "#!/bin/sh\n/usr/bin/env > '{}'\nprintf '%s\\n' \"$@\" > '{}'\nexec '{real}' \"$@\"\n",
                dump.display(),
                args.display()
            ),
        );
        // The test process has plenty of variables (HOME, CARGO_*): none may reach ffprobe.
        assert!(std::env::vars().count() > 3);
        let cfg = MediaConfig {
            ffprobe_path: wrapper.to_string_lossy().into_owned(),
            timeout_secs: 60,
        };
        let info = probe(&video, "mp4", &cfg).unwrap();
        assert_eq!(info.kind, MediaKind::Video);
        let environment = std::fs::read_to_string(&dump).unwrap();
        let names: Vec<&str> = environment
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        // `sh` itself adds PWD.
        for name in &names {
            assert!(
                ["PATH", "LANG", "PWD"].contains(name),
                "ffprobe got {name}: {environment}"
            );
        }
        let args = std::fs::read_to_string(&args).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert!(
            args.windows(2)
                .any(|pair| pair == ["-protocol_whitelist", "file"]),
            "{args:?}"
        );
        assert!(
            args.windows(2).any(|pair| pair == ["-f", "mov"]),
            "{args:?}"
        );
        assert!(
            args.last().is_some_and(|input| input.starts_with("file:/")),
            "{args:?}"
        );
    }

    #[test]
    fn demuxers_follow_the_extension() {
        assert_eq!(demuxer_for_extension("mp4"), Some("mov"));
        assert_eq!(demuxer_for_extension("mov"), Some("mov"));
        assert_eq!(demuxer_for_extension("png"), Some("png_pipe"));
        assert_eq!(demuxer_for_extension("mkv"), Some("matroska"));
        assert_eq!(demuxer_for_extension("m3u8"), None);
        for demuxer in ["concat", "hls", "dash", "image2", "ffmetadata"] {
            assert!(
                !ALLOWED_DEMUXERS.split(',').any(|name| name == demuxer),
                "{demuxer} must not be allowed"
            );
        }
    }

    #[test]
    fn error_text_loses_every_server_path() {
        let path = Path::new("/srv/cs/tmp/downloads/cs-AbC123");
        let stderr = b"[concat @ 0x55] Impossible to open '/srv/cs/tmp/box-token.json'\n\
file:/srv/cs/tmp/downloads/cs-AbC123: Invalid data found when processing input\n\
[x @ 0x1] opening /srv/cs/tmp/downloads/other failed\n";
        let summary = error_summary(stderr, path).unwrap();
        assert!(!summary.contains("/srv"), "{summary}");
        assert!(!summary.contains("cs-AbC123"), "{summary}");
        assert!(
            summary.contains("Invalid data found when processing input"),
            "{summary}"
        );
        assert!(summary.contains("Impossible to open '<path>'"), "{summary}");
    }

    #[test]
    fn parses_tolerantly() {
        let json = r#"{"streams":[{"codec_type":"video","codec_name":"prores","width":1920,
            "height":1080,"avg_frame_rate":"0/0","r_frame_rate":"30000/1001","duration":"10.5"}],
            "format":{}}"#;
        let info = parse_ffprobe_json(json, "mov").unwrap();
        assert_eq!(info.kind, MediaKind::Video);
        assert_eq!(info.duration_seconds, Some(10.5));
        assert_eq!(info.attr(MediaAttr::FrameRate).as_deref(), Some("29.97"));
        assert_eq!(info.format_name, None);

        let audio = r#"{"streams":[{"codec_type":"audio","codec_name":"mp3"},
            {"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}}],
            "format":{"format_name":"mp3","duration":"3.000000"}}"#;
        let info = parse_ffprobe_json(audio, "mp3").unwrap();
        assert_eq!(info.kind, MediaKind::Audio);
        assert_eq!(info.duration_seconds, Some(3.0));
        assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
        assert_eq!(info.video_codec, None);
        assert_eq!(info.width, None);

        assert!(parse_ffprobe_json("{}", "mp4").is_err());
        assert!(parse_ffprobe_json("not json", "mp4").is_err());
        assert_eq!(
            parse_ffprobe_json(r#"{"format":{"format_name":"data"}}"#, "bin")
                .unwrap()
                .kind,
            MediaKind::Other
        );
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("25/1"), Some(25.0));
        assert!((parse_rate("30000/1001").unwrap() - 29.97003).abs() < 1e-4);
        assert_eq!(parse_rate("0/0"), None);
        assert_eq!(parse_rate("0/1"), None);
        assert_eq!(parse_rate("24"), Some(24.0));
        assert_eq!(parse_rate("x/y"), None);
        assert_eq!(format_number(5.312), "5.312");
        assert_eq!(format_number(25.0), "25");
        assert_eq!(format_number(0.0), "0");
    }
}
