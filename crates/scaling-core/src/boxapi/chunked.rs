//! Chunked upload sessions: how files of `chunked_upload_threshold_bytes` or more (default 50 MB; Box
//! accepts sessions from 20 MB and requires them above 50 MB) reach Box.
//!
//! Source: <https://developer.box.com/guides/uploads/chunked/> and the reference pages linked on each
//! step. The flow:
//!
//! 1. **Create** the session: POST `{upload_url}/2.0/files/upload_sessions` `{folder_id, file_size,
//!    file_name}` for a new file, POST `{upload_url}/2.0/files/{id}/upload_sessions` `{file_size,
//!    file_name}` for a new version -> 201 `{id, part_size, total_parts, session_endpoints}`. A 409
//!    `item_name_in_use` whose conflicting file has the file's SHA-1 means an earlier attempt landed:
//!    success (the SHA-1 is computed only in that case). A 400 `file_size_too_small` falls back to a
//!    simple upload.
//! 2. **Parts** of the server's `part_size` (only the last one shorter), up to
//!    `box.upload_parallel_parts` at once (Box: "parts can be uploaded in parallel"; the commit lists
//!    them by offset whatever order they landed in): PUT `upload_part` with `Content-Range: bytes
//!    lo-hi/total`, `Digest: sha=<base64 SHA-1 of the part>`, `Content-Type: application/octet-stream`
//!    and an explicit `Content-Length`; the body is streamed from the file (`File::take`), never
//!    buffered. The calling thread reads the file once, in order, hashing each part and the whole file
//!    in the same read (a part's digest must be known before its body is sent, the whole file's before
//!    the commit), and hands each part to a bounded queue of `upload_parallel_parts` slots; each
//!    uploader thread (`std::thread::scope`) opens the file at its part's offset and streams it. So
//!    every byte is read twice (hash, send), as with one part at a time, memory stays constant (one
//!    256 KiB hash buffer and each connection's own buffers, whatever the file size), and hashing
//!    runs at most one queue ahead of the network. Every part request goes through the client's rate
//!    limiter. After a 5xx, a dropped connection, a 409 or a 416, the session's parts are listed (GET
//!    `list_parts`): a part stored despite the error is not sent again. 429 and 5xx are retried with
//!    backoff and jitter, honouring `Retry-After`, each part on its own; the first part that fails
//!    for good stops the others (parts not yet started are not sent) and the session is aborted.
//! 3. **Commit**: POST `commit` with `Digest: sha=<base64 SHA-1 of the whole file>` and `{"parts":[...]}`
//!    -> 201 `{entries:[File]}`. 202 + `Retry-After` (parts still being processed) is waited out, at most
//!    [`MAX_COMMIT_POLLS`] times; a 400 `parts_mismatch` (the last part not yet visible) is transient.
//!    Before re-committing after a 5xx or a dropped connection, the target is checked: a file with the
//!    same SHA-1 means the first commit landed.
//! 4. **Abort** (DELETE `abort`) when the upload fails for good, unless a commit may have landed.
//!
//! The session's endpoints are used as Box returns them when they are on the configured upload host;
//! otherwise (or when absent) the documented paths under `upload_url` are used, so the token never goes
//! to another host.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha1::Digest as _;
use ureq::http::{header, Method};
use ureq::SendBody;

use super::model::{first_conflict, lenient_u64, RawItem};
use super::{
    api_failure, conflict_error, first_entry, invalid_request, io_error, json_error, same_sha1,
    with_parent, ApiFailure, BoxClient, BoxError, BoxFile, UploadSource,
};
use crate::http::{
    self as transport, encode_path_segment, read_json, request_label, Attempt, Redirects,
    RetryPolicy,
};

/// Most 202 "still processing" replies waited out on commit (rclone uses 100).
pub(super) const MAX_COMMIT_POLLS: u32 = 100;

/// Wait before re-committing after a 202 without `Retry-After`.
const DEFAULT_COMMIT_WAIT: Duration = Duration::from_secs(1);

/// Page size of GET `list_parts`.
const PARTS_PAGE_LIMIT: u64 = 1000;

/// Box's simple-upload limit: a session refused as too small falls back to a simple upload below it.
const SIMPLE_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

/// Read buffer of the hashing pass.
const HASH_BUFFER: usize = 256 * 1024;

/// What a session creates.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    /// A new file in this folder.
    NewFile { folder_id: &'a str },
    /// A new version of this file.
    NewVersion { file_id: &'a str },
}

/// An open upload session.
#[derive(Debug)]
struct Session {
    id: String,
    part_size: u64,
    upload_part: String,
    commit: String,
    abort: String,
    list_parts: String,
}

/// A part Box stored: the object as Box returned it (sent back on commit) and what we compare.
#[derive(Debug, Clone)]
struct StoredPart {
    json: Value,
    offset: u64,
    size: u64,
    sha1: Option<String>,
}

/// One part for an uploader thread: its range and the SHA-1 of its bytes.
struct PartJob {
    offset: u64,
    length: u64,
    digest: [u8; 20],
}

/// Why the upload stopped after the session was created, and whether to abort the session.
struct Failure {
    error: BoxError,
    abort: bool,
}

impl Failure {
    fn permanent(error: BoxError) -> Self {
        Self { error, abort: true }
    }
}

/// Why no session was created.
enum Refused {
    /// 409 `item_name_in_use`.
    Conflict(Box<ApiFailure>),
    /// 400 `file_size_too_small`.
    TooSmall(Box<ApiFailure>),
    Other(BoxError),
}

impl From<BoxError> for Refused {
    fn from(error: BoxError) -> Self {
        Refused::Other(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(formatter)
    }
}

/// The commit's error once Box answered 202 more than [`MAX_COMMIT_POLLS`] times (the session is
/// kept: the commit may still complete).
fn still_processing(label: &str) -> Failure {
    Failure {
        error: BoxError::Api {
            status: 202,
            code: "commit_still_processing".into(),
            message: format!("Box was still processing the parts after {MAX_COMMIT_POLLS} commits"),
            request_id: None,
            endpoint: label.to_string(),
        },
        abort: false,
    }
}

/// A part object (`{part_id, offset, size, sha1}`) of a part upload reply or a parts listing.
fn parse_part(value: &Value) -> Option<StoredPart> {
    value.get("part_id")?;
    Some(StoredPart {
        offset: lenient_u64(value.get("offset")?)?,
        size: lenient_u64(value.get("size")?)?,
        sha1: value
            .get("sha1")
            .and_then(Value::as_str)
            .map(str::to_string),
        json: value.clone(),
    })
}

/// Reads exactly `length` bytes of `file` (from its current position), feeding `whole`; returns the
/// SHA-1 of those bytes. A file shorter than announced is an `UnexpectedEof` error.
fn hash_part(
    file: &mut File,
    length: u64,
    whole: &mut sha1::Sha1,
    buffer: &mut [u8],
) -> io::Result<[u8; 20]> {
    let mut part = sha1::Sha1::new();
    let mut remaining = length;
    while remaining > 0 {
        let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let read = match file.read(&mut buffer[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file shrank while being uploaded ({remaining} bytes missing)"),
                ))
            }
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        part.update(&buffer[..read]);
        whole.update(&buffer[..read]);
        remaining -= read as u64;
    }
    Ok(part.finalize().into())
}

/// `sha=<base64>` for a `Digest` header (RFC 3230, SHA-1 only, as Box requires).
fn digest_header(sha1: &[u8; 20]) -> String {
    format!(
        "sha={}",
        base64::engine::general_purpose::STANDARD.encode(sha1)
    )
}

impl BoxClient {
    /// Uploads `path` (`size` bytes) through a chunked upload session (module docs) and returns the file.
    ///
    /// Errors: the session creation's error; a part or commit error after the retries (the session is
    /// aborted first when nothing may have landed); [`BoxError::Io`] when the file cannot be read or
    /// shrinks.
    pub(super) fn upload_chunked(
        &self,
        target: Target<'_>,
        name: &str,
        path: &Path,
        size: u64,
    ) -> Result<BoxFile, BoxError> {
        let session = match self.create_session(target, name, size) {
            Ok(session) => session,
            Err(Refused::Conflict(failure)) => {
                return Self::session_conflict(target, path, *failure)
            }
            Err(Refused::TooSmall(failure)) if size < SIMPLE_UPLOAD_LIMIT => {
                tracing::warn!(name, size, error = %BoxError::from(*failure),
                    "Box refused an upload session for this size; using a simple upload");
                let (sha1, _) = transport::sha1_file(path)
                    .map_err(|error| io_error("cannot read upload source", path, error))?;
                return match target {
                    Target::NewFile { folder_id } => {
                        self.upload_simple(folder_id, name, path, &sha1)
                    }
                    Target::NewVersion { file_id } => {
                        self.upload_version(file_id, name, UploadSource::File(path), &sha1)
                    }
                };
            }
            Err(Refused::TooSmall(failure)) => return Err((*failure).into()),
            Err(Refused::Other(error)) => return Err(error),
        };
        let parts = size.div_ceil(session.part_size);
        tracing::info!(name, size, session_id = %session.id, part_size = session.part_size, parts,
            "chunked upload session created");
        match self.send_parts_and_commit(&session, target, name, path, size) {
            Ok(file) => {
                tracing::info!(name, box_file = %file.id, session_id = %session.id, "chunked upload committed");
                Ok(file)
            }
            Err(failure) => {
                if failure.abort {
                    self.abort_session(&session);
                }
                Err(failure.error)
            }
        }
    }

    /// POST `{upload_url}/2.0/files/upload_sessions` (new file) or
    /// `{upload_url}/2.0/files/{id}/upload_sessions` (new version); retried on transient errors (a
    /// session created by an attempt whose reply was lost is simply never used and expires).
    /// Source: <https://developer.box.com/reference/post-files-upload-sessions/>,
    /// <https://developer.box.com/reference/post-files-id-upload-sessions/>.
    fn create_session(
        &self,
        target: Target<'_>,
        name: &str,
        size: u64,
    ) -> Result<Session, Refused> {
        let (url, body) = match target {
            Target::NewFile { folder_id } => (
                format!("{}/2.0/files/upload_sessions", self.upload_base),
                json!({"folder_id": folder_id, "file_size": size, "file_name": name}),
            ),
            Target::NewVersion { file_id } => (
                format!(
                    "{}/2.0/files/{}/upload_sessions",
                    self.upload_base,
                    encode_path_segment(file_id)
                ),
                json!({"file_size": size, "file_name": name}),
            ),
        };
        let label = request_label(&Method::POST, &url);
        let mut response = self.send_json(&Method::POST, &url, &body, true)?;
        if response.status().is_success() {
            let reply: Value =
                read_json(&mut response).map_err(|error| json_error(&label, error))?;
            return Ok(self.parse_session(&reply, &label)?);
        }
        let failure = api_failure(&label, response);
        Err(match (failure.status, failure.code.as_str()) {
            (409, "item_name_in_use") => Refused::Conflict(Box::new(failure)),
            (400, "file_size_too_small") => Refused::TooSmall(Box::new(failure)),
            _ => Refused::Other(failure.into()),
        })
    }

    /// Reads an upload session object; see the module docs for which endpoint URLs are used.
    /// Source: <https://developer.box.com/reference/resources/upload-session/>.
    fn parse_session(&self, reply: &Value, label: &str) -> Result<Session, BoxError> {
        let id = match reply.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err(BoxError::Decode(format!("{label}: session without id"))),
        };
        let part_size = reply
            .get("part_size")
            .and_then(lenient_u64)
            .filter(|size| *size > 0)
            .ok_or_else(|| BoxError::Decode(format!("{label}: session without part_size")))?;
        let base = format!(
            "{}/2.0/files/upload_sessions/{}",
            self.upload_base,
            encode_path_segment(&id)
        );
        let upload_host = transport::redacted_origin(&self.upload_base).to_ascii_lowercase();
        let endpoint = |key: &str, default: String| -> String {
            match reply
                .pointer(&format!("/session_endpoints/{key}"))
                .and_then(Value::as_str)
            {
                Some(url)
                    if transport::redacted_origin(url).to_ascii_lowercase() == upload_host =>
                {
                    url.to_string()
                }
                Some(url) => {
                    tracing::warn!(endpoint = key, host = %transport::redacted_origin(url),
                        "upload session endpoint on another host than box.upload_url; using the documented path");
                    default
                }
                None => default,
            }
        };
        Ok(Session {
            upload_part: endpoint("upload_part", base.clone()),
            commit: endpoint("commit", format!("{base}/commit")),
            abort: endpoint("abort", base.clone()),
            list_parts: endpoint("list_parts", format!("{base}/parts")),
            id,
            part_size,
        })
    }

    /// A 409 `item_name_in_use` on session creation: success when the conflicting file has this file's
    /// SHA-1 (computed now by streaming the file), else the conflict error.
    fn session_conflict(
        target: Target<'_>,
        path: &Path,
        failure: ApiFailure,
    ) -> Result<BoxFile, BoxError> {
        let Some(existing) = first_conflict(failure.context_info.as_ref()).map(RawItem::into_file)
        else {
            return Err(failure.into());
        };
        let (sha1, _) = transport::sha1_file(path)
            .map_err(|error| io_error("cannot read upload source", path, error))?;
        if !same_sha1(existing.sha1.as_deref(), &sha1) {
            return Err(conflict_error(failure, &existing));
        }
        tracing::info!(box_file = %existing.id, "file already in Box with the same sha1; treating the upload as done");
        Ok(match target {
            Target::NewFile { folder_id } => with_parent(existing, folder_id),
            Target::NewVersion { .. } => existing,
        })
    }

    /// Hashes the parts in order on this thread and hands each (with its digest) to at most
    /// `upload_parallel_parts` uploader threads (see the module docs), then commits.
    fn send_parts_and_commit(
        &self,
        session: &Session,
        target: Target<'_>,
        name: &str,
        path: &Path,
        size: u64,
    ) -> Result<BoxFile, Failure> {
        let read_error = |error: io::Error| {
            Failure::permanent(io_error("cannot read upload source", path, error))
        };
        let mut file = File::open(path).map_err(read_error)?;
        let total_parts = size.div_ceil(session.part_size);
        let uploaders = usize::try_from(total_parts)
            .unwrap_or(usize::MAX)
            .clamp(1, self.upload_parallel_parts.max(1));
        let (jobs, queue) = mpsc::sync_channel::<PartJob>(uploaders);
        let queue = Mutex::new(queue);
        let first_failure: Mutex<Option<Failure>> = Mutex::new(None);
        let failed = AtomicBool::new(false);
        let fail = |failure: Failure| {
            failed.store(true, Ordering::SeqCst);
            let mut first = first_failure.lock().unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert(failure);
        };
        let (mut parts, whole) = thread::scope(|scope| {
            let workers: Vec<_> = (0..uploaders)
                .map(|_| {
                    scope.spawn(|| {
                        self.upload_queued_parts(session, path, size, &queue, &failed, &fail)
                    })
                })
                .collect();
            let mut whole = sha1::Sha1::new();
            let mut buffer = vec![0u8; HASH_BUFFER];
            let mut offset: u64 = 0;
            while offset < size && !failed.load(Ordering::SeqCst) {
                let length = session.part_size.min(size - offset);
                match hash_part(&mut file, length, &mut whole, &mut buffer) {
                    Ok(digest) => {
                        if jobs
                            .send(PartJob {
                                offset,
                                length,
                                digest,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(error) => fail(read_error(error)),
                }
                offset += length;
            }
            drop(jobs);
            let mut parts = Vec::new();
            for worker in workers {
                match worker.join() {
                    Ok(stored) => parts.extend(stored),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (parts, whole)
        });
        if let Some(failure) = first_failure
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(failure);
        }
        let whole: [u8; 20] = whole.finalize().into();
        self.commit(session, target, name, &mut parts, &whole)
    }

    /// One uploader thread of [`Self::send_parts_and_commit`]: uploads the parts of `queue` until it
    /// closes and returns those Box stored. Once `failed` is set (by any thread) the remaining parts
    /// are taken and dropped unsent, so the hashing thread never blocks on a full queue.
    fn upload_queued_parts(
        &self,
        session: &Session,
        path: &Path,
        size: u64,
        queue: &Mutex<mpsc::Receiver<PartJob>>,
        failed: &AtomicBool,
        fail: &(dyn Fn(Failure) + Sync),
    ) -> Vec<StoredPart> {
        let mut stored = Vec::new();
        loop {
            // The lock is held only while waiting for the next part.
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
            let Ok(job) = job else { return stored };
            if failed.load(Ordering::SeqCst) {
                continue;
            }
            match self.upload_part(session, path, job.offset, job.length, size, &job.digest) {
                Ok(part) => {
                    tracing::debug!(session_id = %session.id, offset = job.offset, "part uploaded");
                    stored.push(part);
                }
                Err(failure) => fail(failure),
            }
        }
    }

    /// PUT one part (see the module docs); returns the part as Box stored it.
    /// Source: <https://developer.box.com/reference/put-files-upload-sessions-id/>.
    fn upload_part(
        &self,
        session: &Session,
        path: &Path,
        offset: u64,
        length: u64,
        total: u64,
        digest: &[u8; 20],
    ) -> Result<StoredPart, Failure> {
        let sha1 = hex::encode(digest);
        let digest = digest_header(digest);
        let range = format!("bytes {offset}-{}/{total}", offset + length - 1);
        let url = session.upload_part.as_str();
        let label = request_label(&Method::PUT, url);
        transport::retry(&self.http.policy, &label, |attempt| {
            let outcome = self.send_content(&Method::PUT, url, &|builder| {
                let mut file = File::open(path)
                    .map_err(|error| io_error("cannot read upload source", path, error))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|error| io_error("cannot read upload source", path, error))?;
                builder
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, length)
                    .header(header::CONTENT_RANGE, range.as_str())
                    .header("digest", digest.as_str())
                    .body(SendBody::from_owned_reader(file.take(length)))
                    .map_err(|error| invalid_request(&label, error))
            });
            let stop = |error: BoxError| Attempt::Stop(Failure::permanent(error));
            let (error, retry_after, list_first) = match outcome {
                Ok(mut response) if response.status().is_success() => {
                    let reply: Value = read_json(&mut response)
                        .map_err(|error| stop(json_error(&label, error)))?;
                    return parse_part(reply.get("part").unwrap_or(&reply)).ok_or_else(|| {
                        stop(BoxError::Decode(format!(
                            "{label}: reply without part {{part_id, offset, size}}"
                        )))
                    });
                }
                Ok(response) => {
                    let failure = api_failure(&label, response);
                    let retry_after = failure.retry_after;
                    match (failure.status, failure.code.as_str()) {
                        (429, _) => (BoxError::from(failure), retry_after, false),
                        (409, "operation_blocked_temporary") => {
                            (BoxError::from(failure), retry_after, true)
                        }
                        // Overlap or range mismatch: an earlier attempt may have stored this part.
                        (409 | 416, _) => {
                            if let Some(part) = self.find_part(session, offset, length, &sha1) {
                                return Ok(part);
                            }
                            return Err(stop(failure.into()));
                        }
                        (status, _) if self.http.policy.retries_status(status) => {
                            (BoxError::from(failure), retry_after, true)
                        }
                        _ => return Err(stop(failure.into())),
                    }
                }
                Err(error) if error.is_transient() => (error, None, true),
                Err(error) => return Err(stop(error)),
            };
            if list_first {
                if let Some(part) = self.find_part(session, offset, length, &sha1) {
                    tracing::info!(request = %label, offset, attempt, error = %error,
                        "part upload failed but Box stored the part; not sending it again");
                    return Ok(part);
                }
            }
            Err(Attempt::Retry {
                error: Failure { error, abort: true },
                retry_after,
            })
        })
    }

    /// The part at `offset` with this size and SHA-1 among the session's stored parts, if any. A listing
    /// that fails counts as "not stored" (the part is then sent again).
    fn find_part(
        &self,
        session: &Session,
        offset: u64,
        length: u64,
        sha1: &str,
    ) -> Option<StoredPart> {
        match self.list_parts(session) {
            Ok(parts) => parts.into_iter().find(|part| {
                part.offset == offset
                    && part.size == length
                    && part
                        .sha1
                        .as_deref()
                        .is_none_or(|stored| stored.eq_ignore_ascii_case(sha1))
            }),
            Err(error) => {
                tracing::warn!(session_id = %session.id, error = %error, "cannot list the session's parts");
                None
            }
        }
    }

    /// Every part stored in the session: GET `list_parts?offset=N&limit=1000`, paged by `total_count`.
    /// Source: <https://developer.box.com/reference/get-files-upload-sessions-id-parts/>.
    fn list_parts(&self, session: &Session) -> Result<Vec<StoredPart>, BoxError> {
        let base = url::Url::parse(&session.list_parts)
            .map_err(|error| invalid_request("GET list_parts", error))?;
        let mut parts = Vec::new();
        let mut offset: u64 = 0;
        loop {
            let mut page_url = base.clone();
            page_url
                .query_pairs_mut()
                .append_pair("offset", &offset.to_string())
                .append_pair("limit", &PARTS_PAGE_LIMIT.to_string());
            let url = String::from(page_url);
            let page: Value = self.get_json(&url)?;
            let entries = page
                .get("entries")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            parts.extend(entries.iter().filter_map(parse_part));
            offset += entries.len() as u64;
            let total = page.get("total_count").and_then(lenient_u64);
            if entries.is_empty() || total.is_none_or(|total| offset >= total) {
                return Ok(parts);
            }
        }
    }

    /// POST `commit` (see the module docs).
    /// Source: <https://developer.box.com/reference/post-files-upload-sessions-id-commit/>.
    fn commit(
        &self,
        session: &Session,
        target: Target<'_>,
        name: &str,
        parts: &mut [StoredPart],
        whole: &[u8; 20],
    ) -> Result<BoxFile, Failure> {
        parts.sort_by_key(|part| part.offset);
        let sha1 = hex::encode(whole);
        let digest = digest_header(whole);
        let body = json!({"parts": parts.iter().map(|part| part.json.clone()).collect::<Vec<_>>()});
        let url = session.commit.as_str();
        let label = request_label(&Method::POST, url);
        let policy = &self.http.policy;
        let mut polls: u32 = 0;
        let mut may_have_landed = false;
        transport::retry(policy, &label, |_| {
            // 202: Box is still processing the parts; commit again after its Retry-After, at most
            // MAX_COMMIT_POLLS times over the whole commit.
            let polling = RetryPolicy {
                max_retries: MAX_COMMIT_POLLS.saturating_sub(polls),
                base_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                max_retry_after: policy.max_retry_after,
                retryable_statuses: policy.retryable_statuses,
            };
            let outcome = transport::retry(&polling, &label, |_| {
                let outcome = self.send_content(&Method::POST, url, &|builder| {
                    transport::json_body(builder.header("digest", digest.as_str()), &body)
                        .map_err(|error| invalid_request(&label, error))
                });
                match outcome {
                    Ok(response) if response.status().as_u16() == 202 => {
                        polls += 1;
                        Err(Attempt::Retry {
                            error: still_processing(&label),
                            retry_after: Some(
                                transport::retry_after(response.headers())
                                    .unwrap_or(DEFAULT_COMMIT_WAIT),
                            ),
                        })
                    }
                    other => Ok(other),
                }
            })
            .map_err(Attempt::Stop)?;
            let stop = |error: BoxError| Attempt::Stop(Failure::permanent(error));
            let (error, retry_after, check_landed) = match outcome {
                Ok(response) if response.status().is_success() => {
                    let file = first_entry(response, &label).map_err(stop)?;
                    return Ok(match target {
                        Target::NewFile { folder_id } => with_parent(file, folder_id),
                        Target::NewVersion { .. } => file,
                    });
                }
                Ok(response) => {
                    let failure = api_failure(&label, response);
                    let retry_after = failure.retry_after;
                    match (failure.status, failure.code.as_str()) {
                        // Right after the last part Box may not list it yet.
                        (400, "parts_mismatch") => (BoxError::from(failure), retry_after, false),
                        (409, "item_name_in_use") => {
                            let existing = first_conflict(failure.context_info.as_ref())
                                .map(RawItem::into_file);
                            return match existing {
                                Some(existing) if same_sha1(existing.sha1.as_deref(), &sha1) => {
                                    tracing::info!(request = %label, box_file = %existing.id,
                                        "commit met a file with the same sha1; treating the upload as done");
                                    Ok(match target {
                                        Target::NewFile { folder_id } => {
                                            with_parent(existing, folder_id)
                                        }
                                        Target::NewVersion { .. } => existing,
                                    })
                                }
                                Some(existing) => Err(stop(conflict_error(failure, &existing))),
                                None => Err(stop(failure.into())),
                            };
                        }
                        (409, "operation_blocked_temporary" | "name_temporarily_reserved") => {
                            (BoxError::from(failure), retry_after, true)
                        }
                        // A session already committed by an attempt whose reply was lost is gone.
                        (404, _) if may_have_landed => {
                            if let Some(file) = self.commit_landed(target, name, &sha1) {
                                return Ok(file);
                            }
                            return Err(Attempt::Stop(Failure {
                                error: failure.into(),
                                abort: false,
                            }));
                        }
                        (429, _) => (BoxError::from(failure), retry_after, false),
                        (status, _) if self.http.policy.retries_status(status) => {
                            (BoxError::from(failure), retry_after, true)
                        }
                        _ => return Err(stop(failure.into())),
                    }
                }
                Err(error) if error.is_transient() => (error, None, true),
                Err(error) => return Err(stop(error)),
            };
            if check_landed {
                may_have_landed = true;
                if let Some(file) = self.commit_landed(target, name, &sha1) {
                    tracing::info!(request = %label, box_file = %file.id, error = %error,
                        "commit failed but the file arrived with the same sha1; done");
                    return Ok(file);
                }
            }
            Err(Attempt::Retry {
                error: Failure {
                    error,
                    abort: !may_have_landed,
                },
                retry_after,
            })
        })
    }

    /// Whether a commit landed although its reply was lost: the target folder holds `name` with this
    /// SHA-1 (GET `/2.0/folders/{id}/items`), or the file's current version has it (GET `/2.0/files/{id}`).
    /// A failed check counts as "not landed".
    fn commit_landed(&self, target: Target<'_>, name: &str, sha1: &str) -> Option<BoxFile> {
        let found = match target {
            Target::NewFile { folder_id } => self
                .find_file(folder_id, name)
                .map(|file| file.map(|file| with_parent(file, folder_id))),
            Target::NewVersion { file_id } => self.get_file(file_id).map(Some),
        };
        match found {
            Ok(file) => file.filter(|file| same_sha1(file.sha1.as_deref(), sha1)),
            Err(error) => {
                tracing::warn!(error = %error, "cannot check whether the commit landed");
                None
            }
        }
    }

    /// DELETE `abort` (best effort: a failure is logged; the session expires anyway after 7 days).
    /// Source: <https://developer.box.com/reference/delete-files-upload-sessions-id/>.
    fn abort_session(&self, session: &Session) {
        let label = request_label(&Method::DELETE, &session.abort);
        let outcome = self.call(
            &Method::DELETE,
            &session.abort,
            true,
            Redirects::Manual,
            &|builder| Self::empty(builder, &label),
        );
        match outcome {
            Ok(response) if response.status().is_success() || response.status().as_u16() == 404 => {
                tracing::info!(session_id = %session.id, "upload session aborted");
            }
            Ok(response) => {
                let error = BoxError::from(api_failure(&label, response));
                tracing::warn!(session_id = %session.id, error = %error, "cannot abort the upload session");
            }
            Err(error) => {
                tracing::warn!(session_id = %session.id, error = %error, "cannot abort the upload session");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_parts() {
        // sha1("abc")
        let digest: [u8; 20] = hex::decode("a9993e364706816aba3e25717850c26c9cd0d89d")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(digest_header(&digest), "sha=qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        let part = parse_part(
            &json!({"part_id": "6F2D3486", "offset": 16777216.0, "size": "3222784", "sha1": "ab", "x": 1}),
        )
        .unwrap();
        assert_eq!((part.offset, part.size), (16_777_216, 3_222_784));
        assert_eq!(part.json["x"], 1);
        assert!(parse_part(&json!({"offset": 0, "size": 1})).is_none());
    }

    #[test]
    fn hashing_a_part_feeds_the_whole_file_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abcdef").unwrap();
        let mut file = File::open(&path).unwrap();
        let mut whole = sha1::Sha1::new();
        let mut buffer = vec![0u8; 4];
        let first = hash_part(&mut file, 3, &mut whole, &mut buffer).unwrap();
        assert_eq!(hex::encode(first), crate::http::sha1_bytes(b"abc"));
        let second = hash_part(&mut file, 3, &mut whole, &mut buffer).unwrap();
        assert_eq!(hex::encode(second), crate::http::sha1_bytes(b"def"));
        assert_eq!(
            hex::encode(whole.finalize()),
            crate::http::sha1_bytes(b"abcdef")
        );
        let error = hash_part(&mut file, 1, &mut sha1::Sha1::new(), &mut buffer).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
