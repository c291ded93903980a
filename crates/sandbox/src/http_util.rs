//! Small helpers shared by every emulated API: JSON replies, time formats, random identifiers, query
//! parsing, streaming file bodies (with `Range`) and streaming uploads to disk while hashing.
//!
//! Nothing here knows about Box or OTMM shapes; each API module builds its own bodies.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A JSON reply with the given status and `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Current time as a [`jiff::Timestamp`] (UTC).
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Box's time format: RFC 3339 with a numeric offset and no fractional seconds
/// (`2026-11-20T15:13:00-08:00`). The sandbox reports times in a fixed UTC-08:00 offset, as Box
/// (Pacific time) does, so clients that assume `Z` are caught.
pub fn box_time(ts: jiff::Timestamp) -> String {
    let zone = jiff::tz::TimeZone::fixed(jiff::tz::offset(-8));
    ts.to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// OTMM's time format: UTC with a `Z` suffix and no fractional seconds (`2026-10-05T16:41:00Z`).
pub fn otmm_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `n` random lowercase hexadecimal characters.
pub fn random_hex(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdef";
    random_from(ALPHABET, n)
}

/// `n` random characters from `[a-z0-9]`.
pub fn random_lower_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_from(ALPHABET, n)
}

/// `n` random characters from `[A-Za-z0-9]`.
pub fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_from(ALPHABET, n)
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            let index = rng.gen_range(0..alphabet.len());
            char::from(alphabet[index])
        })
        .collect()
}

/// Decoded query-string pairs of a URI, in order (repeated keys kept). Malformed encodings yield
/// an empty list rather than an error: every caller treats missing parameters with defaults.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|query| query.0)
        .unwrap_or_default()
}

/// The first value of `key` among decoded pairs.
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A header's value as text, if present and valid UTF-8.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A byte range resolved against a file size: `start..=end` (inclusive, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive).
    pub end: u64,
}

/// Outcome of parsing a `Range` header against a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: serve the whole body with 200. Multi-range requests land here too.
    Full,
    /// One satisfiable range: serve 206.
    Partial(ByteRange),
    /// The range cannot be satisfied: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2).
pub fn parse_range(header_value: Option<&str>, size: u64) -> RangeRequest {
    let Some(raw) = header_value else {
        return RangeRequest::Full;
    };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first_text, last_text)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first_text, last_text) = (first_text.trim(), last_text.trim());
    if first_text.is_empty() {
        // Suffix range: the last n bytes.
        let Ok(suffix) = last_text.parse::<u64>() else {
            return RangeRequest::Full;
        };
        if suffix == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        let start = size.saturating_sub(suffix);
        return RangeRequest::Partial(ByteRange {
            start,
            end: size - 1,
        });
    }
    let Ok(start) = first_text.parse::<u64>() else {
        return RangeRequest::Full;
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    let end = if last_text.is_empty() {
        size - 1
    } else {
        match last_text.parse::<u64>() {
            Ok(end) if end >= start => end.min(size - 1),
            Ok(_) => return RangeRequest::Unsatisfiable,
            Err(_) => return RangeRequest::Full,
        }
    };
    RangeRequest::Partial(ByteRange { start, end })
}

/// Streams a file from disk as the reply body, honouring a single `Range` (206 / 416), with
/// `Content-Length`, `Accept-Ranges: bytes`, the given content type and an attachment disposition.
/// Memory use does not grow with the file size.
pub async fn serve_file(
    path: &Path,
    size: u64,
    content_type: &str,
    file_name: &str,
    range_header: Option<&str>,
) -> Response {
    let range = parse_range(range_header, size);
    if range == RangeRequest::Unsatisfiable {
        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        return response;
    }
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "stored content is missing");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored content is missing",
            )
                .into_response();
        }
    };
    let (status, start, length) = match range {
        RangeRequest::Partial(ByteRange { start, end }) => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        _ => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        if let Err(error) = file.seek(SeekFrom::Start(start)).await {
            tracing::error!(%error, "seek failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let stream = tokio_util::io::ReaderStream::new(file.take(length));
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let safe_name: String = file_name
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() || !c.is_ascii() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + length - 1;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// Reads a request body to its end and throws it away (so the client, still sending, reads the
/// reply instead of a reset); read errors end it quietly. Memory use does not grow with the size.
pub async fn drain_body(body: Body) {
    use http_body::Body as _;
    let mut body = body;
    while let Some(Ok(_)) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {}
}

/// Writes an incoming body to a temporary file under the blob directory while computing its SHA-1
/// and size; [`BlobWriter::finish`] returns the result, [`StoredBlob::persist`] moves it into place.
pub struct BlobWriter {
    file: tokio::fs::File,
    path: PathBuf,
    hasher: Sha1,
    size: u64,
}

/// A finished upload on disk: temporary path, lowercase SHA-1 hex and size in bytes.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    /// Where the bytes are now (a temporary name until persisted).
    pub path: PathBuf,
    /// Lowercase SHA-1 hex of the content.
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
}

impl BlobWriter {
    /// Creates `dir/tmp-<random>`.
    ///
    /// # Errors
    /// I/O errors creating the file.
    pub async fn create(dir: &Path) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("tmp-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Self {
            file,
            path,
            hasher: Sha1::new(),
            size: 0,
        })
    }

    /// Appends a chunk.
    ///
    /// # Errors
    /// I/O errors writing.
    pub async fn write(&mut self, chunk: &Bytes) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Flushes and closes the file.
    ///
    /// # Errors
    /// I/O errors flushing.
    pub async fn finish(mut self) -> std::io::Result<StoredBlob> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(StoredBlob {
            path: self.path,
            sha1: hex::encode(self.hasher.finalize()),
            size: self.size,
        })
    }

    /// Removes the partial file (best effort).
    pub async fn discard(self) {
        let path = self.path.clone();
        drop(self.file);
        let _ = tokio::fs::remove_file(path).await;
    }
}

impl StoredBlob {
    /// Renames the blob to `target` and returns the new location.
    ///
    /// # Errors
    /// I/O errors renaming.
    pub async fn persist(self, target: PathBuf) -> std::io::Result<StoredBlob> {
        tokio::fs::rename(&self.path, &target).await?;
        Ok(StoredBlob {
            path: target,
            sha1: self.sha1,
            size: self.size,
        })
    }

    /// Deletes the blob (best effort).
    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// Copies a local file into the blob directory (streaming, hashing on the way).
///
/// # Errors
/// I/O errors reading the source or writing the copy.
pub async fn copy_into_blob(source: &Path, dir: &Path) -> std::io::Result<StoredBlob> {
    let mut input = tokio::fs::File::open(source).await?;
    let mut writer = BlobWriter::create(dir).await?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match input.read(&mut buffer).await {
            Ok(read) => read,
            Err(error) => {
                writer.discard().await;
                return Err(error);
            }
        };
        if read == 0 {
            break;
        }
        let chunk = Bytes::copy_from_slice(&buffer[..read]);
        if let Err(error) = writer.write(&chunk).await {
            writer.discard().await;
            return Err(error);
        }
    }
    writer.finish().await
}

/// SHA-1 (lowercase hex) and size in bytes of a local file, read in blocks (blocking I/O).
///
/// # Errors
/// I/O errors reading the file.
pub fn hash_file_blocking(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha1::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// MIME type guessed from a file name's extension (`mime_guess`'s table, the one the client
/// uses too); `application/octet-stream` otherwise.
pub fn guess_mime(file_name: &str) -> &'static str {
    mime_guess::from_path(file_name)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=0-3"), 10),
            RangeRequest::Partial(ByteRange { start: 0, end: 3 })
        );
        assert_eq!(
            parse_range(Some("bytes=5-"), 10),
            RangeRequest::Partial(ByteRange { start: 5, end: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=-4"), 10),
            RangeRequest::Partial(ByteRange { start: 6, end: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=8-100"), 10),
            RangeRequest::Partial(ByteRange { start: 8, end: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeRequest::Full);
    }

    #[test]
    fn times() {
        let ts: jiff::Timestamp = "2026-11-20T23:13:00Z".parse().unwrap_or_else(|_| now());
        assert_eq!(box_time(ts), "2026-11-20T15:13:00-08:00");
        assert_eq!(otmm_time(ts), "2026-11-20T23:13:00Z");
    }
}
