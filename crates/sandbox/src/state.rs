//! In-memory state of the emulated services, behind one [`std::sync::Mutex`] in [`App`].
//!
//! File contents live on disk under `{state_dir}/blobs/`; everything else (the Box tree, the DAM
//! tree, tokens, sessions, jobs, recorded emails and webhooks, request statistics, injected faults)
//! lives here and is lost when the process exits. Handlers take the lock briefly and never hold it
//! across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::keys::{BoxAppKeys, Credentials};

/// The shared application: configuration fixed at start plus the mutable [`World`].
pub struct App {
    /// Everything that changes while serving.
    pub world: Mutex<World>,
    /// Fixed settings and generated credentials.
    pub config: AppConfig,
}

impl App {
    /// Locks the world. A poisoned lock (a handler panicked while holding it) is recovered: the
    /// sandbox keeps serving with whatever state the panicking handler left.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Settings fixed when the server starts.
pub struct AppConfig {
    /// The generated Box app (JWT) credentials.
    pub keys: BoxAppKeys,
    /// Generated DAM / Mailgun credentials.
    pub credentials: Credentials,
    /// Lifetime of Box access tokens, DAM bearer tokens and DAM sessions.
    pub token_lifetime: Duration,
    /// Delay before an accepted DAM import becomes visible (its job completes).
    pub import_delay: Duration,
    /// `http://127.0.0.1:P2`: root of the download host (second port), without a trailing slash.
    pub download_base_url: String,
    /// `http://127.0.0.1:P`: root of the main port, without a trailing slash.
    pub main_base_url: String,
    /// `{state_dir}/blobs`: where uploaded contents are stored.
    pub blob_dir: PathBuf,
    /// Field IDs of the campaign model (status field used for the status history).
    pub campaign_model: CampaignModelIds,
    /// The Mailgun sending domain accepted at `/v3/{domain}/messages`.
    pub mailgun_domain: String,
    /// The OTMM server variant played.
    pub otmm_dialect: crate::dialect::OtmmDialect,
}

/// Field and domain IDs of the DAM campaign model (defaults follow `fixtures/otmm/`).
#[derive(Debug, Clone, Serialize)]
pub struct CampaignModelIds {
    /// `FERRERO.FIELD.CAMPAIGN STATUS`.
    pub status_field_id: String,
    /// `FERRERO.FIELD.CAMPAIGN NUMBER`.
    pub number_field_id: String,
    /// `FERRERO.FIELD.CAMPAIGN NAME`.
    pub name_field_id: String,
    /// Lookup domain of the status values (`FERRERO.DOMAIN.CAMPAIGN STATUS`).
    pub status_domain_id: String,
}

/// Everything mutable.
#[derive(Default)]
pub struct World {
    /// The Box tree.
    pub boxes: BoxStore,
    /// The DAM tree, jobs, domains and status history.
    pub dam: DamStore,
    /// Mailgun messages received, in order (JSON records, see `mailgun.rs`).
    pub emails: Vec<Value>,
    /// Webhook deliveries received, in order (`{name, headers, body, received_at}`).
    pub webhooks: Vec<Value>,
    /// Tokens, sessions, used JWT IDs.
    pub auth: AuthStore,
    /// Request counters.
    pub stats: Stats,
    /// Injected fault rules and their seeded generator.
    pub faults: crate::faults::FaultState,
    /// Run-time settings (rate limit, chunked upload behaviour).
    pub settings: Settings,
    /// Per-token request windows of the rate limit.
    pub rate: RateWindows,
}

// ---------------------------------------------------------------------------------------------
// Box
// ---------------------------------------------------------------------------------------------

/// Who performed a Box action: the app's service account or an agency collaborator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The JWT service account (API calls).
    Service,
    /// An agency user (control API `agency-upload`).
    Agency,
}

/// A Box folder. The root is `"0"` ("All Files") with no parent.
#[derive(Debug, Clone)]
pub struct BoxFolder {
    /// Numeric string ID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parent folder ID (`None` for the root).
    pub parent_id: Option<String>,
    /// Creation time.
    pub created_at: jiff::Timestamp,
    /// Last change of the folder itself.
    pub modified_at: jiff::Timestamp,
    /// Incremented on every change; rendered as the `etag` and `sequence_id` strings.
    pub etag: u64,
    /// Creator.
    pub created_by: Actor,
    /// The service account is not a collaborator: every API call on it gets 403
    /// `access_denied_insufficient_permissions` (scenario `box.restricted_folders`).
    pub restricted: bool,
}

/// One version of a Box file.
#[derive(Debug, Clone)]
pub struct BoxFileVersion {
    /// Numeric string ID (`file_version.id`).
    pub id: String,
    /// Lowercase SHA-1 hex of the content.
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
    /// Content on disk.
    pub blob: PathBuf,
    /// Upload time.
    pub created_at: jiff::Timestamp,
    /// Uploader.
    pub uploaded_by: Actor,
}

/// A Box file with its versions (last = current).
#[derive(Debug, Clone)]
pub struct BoxFile {
    /// Numeric string ID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parent folder ID.
    pub parent_id: String,
    /// Versions, oldest first; never empty.
    pub versions: Vec<BoxFileVersion>,
    /// Creation time of the file.
    pub created_at: jiff::Timestamp,
    /// Last change (new version, move, rename).
    pub modified_at: jiff::Timestamp,
    /// Client-supplied content creation time (upload `attributes.content_created_at`), else upload time.
    pub content_created_at: jiff::Timestamp,
    /// Client-supplied content modification time, else upload time.
    pub content_modified_at: jiff::Timestamp,
    /// Incremented on every change; rendered as `etag` / `sequence_id`.
    pub etag: u64,
    /// Creator.
    pub created_by: Actor,
    /// Last modifier.
    pub modified_by: Actor,
}

impl BoxFile {
    /// The current version. Every file has at least one version by construction; an empty list
    /// would be a bug, reported as `None`.
    pub fn current(&self) -> Option<&BoxFileVersion> {
        self.versions.last()
    }
}

/// Content of a new file version, already stored at its final place on disk.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Reserved version ID (see [`BoxStore::reserve_version_id`]).
    pub id: String,
    /// Lowercase SHA-1 hex.
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
    /// Location of the content.
    pub blob: PathBuf,
}

/// An item found in a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxItemRef {
    /// Index into [`BoxStore::folders`].
    Folder(usize),
    /// Index into [`BoxStore::files`].
    File(usize),
}

/// A one-time download ticket (the `Location` of `GET /2.0/files/{id}/content`).
#[derive(Debug, Clone)]
pub struct DownloadTicket {
    /// File ID.
    pub file_id: String,
    /// Version served.
    pub version_id: String,
    /// When the ticket stops working.
    pub expires: Instant,
}

/// The Box tree and its download tickets.
#[derive(Debug)]
pub struct BoxStore {
    /// All folders, in creation order (root first).
    pub folders: Vec<BoxFolder>,
    folder_index: HashMap<String, usize>,
    /// All files, in creation order.
    pub files: Vec<BoxFile>,
    file_index: HashMap<String, usize>,
    next_item_id: u64,
    next_version_id: u64,
    /// Outstanding one-time download tickets by token.
    pub downloads: HashMap<String, DownloadTicket>,
    /// Chunked upload sessions by ID (open, committed and aborted ones).
    pub upload_sessions: BTreeMap<String, crate::chunked::UploadSession>,
    /// Items moved to the trash (`DELETE /2.0/folders/{id}`), in the order they were trashed.
    pub trash: Vec<TrashedItem>,
    /// The changes stream served by `GET /2.0/events`.
    pub events: EventLog,
}

/// First position of the events stream (Box's positions are large opaque numbers).
pub const FIRST_EVENT_POSITION: u64 = 1_152_922_976_252_290_000;

/// The changes stream of the Box model: every upload, new version, folder creation, move,
/// rename and trash, with its stream position, oldest first. Served by `GET /2.0/events`.
#[derive(Debug)]
pub struct EventLog {
    /// Recorded events, oldest first (positions increase; duplicates share an `event_id`).
    pub entries: Vec<RecordedEvent>,
    /// Position the next recorded event gets (also what `stream_position=now` answers).
    pub next_position: u64,
    next_event_id: u64,
    /// Faults of the stream (set through `POST /_sandbox/config` `events`).
    pub faults: EventFaults,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            next_position: FIRST_EVENT_POSITION,
            next_event_id: 1,
            faults: EventFaults::default(),
        }
    }
}

/// One event as recorded: the item as it was right after the change.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Stream position of the event.
    pub position: u64,
    /// `event_id` (a duplicate repeats it).
    pub event_id: String,
    /// `event_type` (`ITEM_UPLOAD`, `ITEM_CREATE`, `ITEM_MOVE`, `ITEM_RENAME`, `ITEM_TRASH`).
    pub event_type: &'static str,
    /// Who made the change (`created_by`).
    pub actor: Actor,
    /// `source`: the file or folder object (mini fields, `parent`, `path_collection`).
    pub source: Value,
    /// When it happened.
    pub created_at: jiff::Timestamp,
}

/// Faults of the events stream, for tests (`events` in `/_sandbox/config`). Box documents that
/// the stream may repeat events and deliver them out of order; how it answers an expired position
/// is not documented, so the sandbox answers 400 `bad_request` (see `box_api::events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EventFaults {
    /// The next this many changes record no event (lost events).
    pub drop_next: u32,
    /// Every change records its event twice (same `event_id`, consecutive positions).
    pub duplicate: bool,
    /// Every page is served newest first.
    pub reorder: bool,
    /// Only the last this many events are kept: an older position is expired (`None` = all kept).
    pub keep_last: Option<u64>,
}

/// A folder or file in the Box trash, with the path it had when it was trashed.
#[derive(Debug, Clone)]
pub struct TrashedItem {
    /// `"folder"` or `"file"`.
    pub kind: &'static str,
    /// Item ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Path before trashing (`/All Files/.../name`).
    pub path: String,
    /// When it was trashed.
    pub trashed_at: jiff::Timestamp,
}

impl Default for BoxStore {
    fn default() -> Self {
        let now = crate::http_util::now();
        let root = BoxFolder {
            id: "0".to_owned(),
            name: "All Files".to_owned(),
            parent_id: None,
            created_at: now,
            modified_at: now,
            etag: 0,
            created_by: Actor::Service,
            restricted: false,
        };
        let mut folder_index = HashMap::new();
        folder_index.insert("0".to_owned(), 0);
        Self {
            folders: vec![root],
            folder_index,
            files: Vec::new(),
            file_index: HashMap::new(),
            next_item_id: 165_000_000_001,
            next_version_id: 1_870_000_000_001,
            downloads: HashMap::new(),
            upload_sessions: BTreeMap::new(),
            trash: Vec::new(),
            events: EventLog::default(),
        }
    }
}

/// Why a Box name is not acceptable (Box's `item_name_invalid` rules).
pub fn validate_box_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Item name cannot be empty".to_owned());
    }
    if name.chars().count() > 255 {
        return Err("Item name is too long (more than 255 characters)".to_owned());
    }
    if name.contains('/') || name.contains('\\') {
        return Err("Item name cannot contain '/' or '\\'".to_owned());
    }
    if name == "." || name == ".." {
        return Err("Item name cannot be '.' or '..'".to_owned());
    }
    if name.ends_with(' ') || name.starts_with(' ') {
        return Err("Item name cannot begin or end with a space".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err("Item name cannot contain non-printable characters".to_owned());
    }
    Ok(())
}

impl BoxStore {
    /// Records a change of file or folder `id` in the events stream (unless a `drop_next` fault
    /// swallows it), with the item as it is now as the source.
    fn record_event(&mut self, event_type: &'static str, id: &str, actor: Actor) {
        if self.events.faults.drop_next > 0 {
            self.events.faults.drop_next -= 1;
            return;
        }
        let source = if let Some(file) = self.file(id) {
            crate::box_api::event_source_file(self, file)
        } else if let Some(folder) = self.folder(id) {
            crate::box_api::event_source_folder(self, folder)
        } else {
            return;
        };
        let copies = if self.events.faults.duplicate { 2 } else { 1 };
        let event_id = format!("{:040x}", self.events.next_event_id);
        self.events.next_event_id += 1;
        for _ in 0..copies {
            let position = self.events.next_position;
            self.events.next_position += 1;
            self.events.entries.push(RecordedEvent {
                position,
                event_id: event_id.clone(),
                event_type,
                actor,
                source: source.clone(),
                created_at: crate::http_util::now(),
            });
        }
    }

    /// Folder by ID.
    pub fn folder(&self, id: &str) -> Option<&BoxFolder> {
        self.folder_index.get(id).and_then(|&i| self.folders.get(i))
    }

    /// File by ID.
    pub fn file(&self, id: &str) -> Option<&BoxFile> {
        self.file_index.get(id).and_then(|&i| self.files.get(i))
    }

    /// Mutable file by ID.
    pub fn file_mut(&mut self, id: &str) -> Option<&mut BoxFile> {
        match self.file_index.get(id) {
            Some(&i) => self.files.get_mut(i),
            None => None,
        }
    }

    /// Mutable folder by ID.
    pub fn folder_mut(&mut self, id: &str) -> Option<&mut BoxFolder> {
        match self.folder_index.get(id) {
            Some(&i) => self.folders.get_mut(i),
            None => None,
        }
    }

    fn next_id(&mut self) -> String {
        let id = self.next_item_id;
        self.next_item_id += 1;
        id.to_string()
    }

    fn next_version(&mut self) -> String {
        let id = self.next_version_id;
        self.next_version_id += 1;
        id.to_string()
    }

    /// The item named `name` (case-insensitive, as Box compares names) in `parent_id`, if any.
    pub fn child_named(&self, parent_id: &str, name: &str) -> Option<BoxItemRef> {
        let wanted = name.to_lowercase();
        if let Some(i) = self.folders.iter().position(|f| {
            f.parent_id.as_deref() == Some(parent_id) && f.name.to_lowercase() == wanted
        }) {
            return Some(BoxItemRef::Folder(i));
        }
        self.files
            .iter()
            .position(|f| f.parent_id == parent_id && f.name.to_lowercase() == wanted)
            .map(BoxItemRef::File)
    }

    /// Items of a folder: folders first, then files, each by lowercase name then ID.
    pub fn children(&self, parent_id: &str) -> Vec<BoxItemRef> {
        let mut folders: Vec<usize> = (0..self.folders.len())
            .filter(|&i| self.folders[i].parent_id.as_deref() == Some(parent_id))
            .collect();
        folders.sort_by(|&a, &b| {
            sort_key(&self.folders[a].name, &self.folders[a].id)
                .cmp(&sort_key(&self.folders[b].name, &self.folders[b].id))
        });
        let mut files: Vec<usize> = (0..self.files.len())
            .filter(|&i| self.files[i].parent_id == parent_id)
            .collect();
        files.sort_by(|&a, &b| {
            sort_key(&self.files[a].name, &self.files[a].id)
                .cmp(&sort_key(&self.files[b].name, &self.files[b].id))
        });
        folders
            .into_iter()
            .map(BoxItemRef::Folder)
            .chain(files.into_iter().map(BoxItemRef::File))
            .collect()
    }

    /// Ancestors of a folder from the root down to the folder's parent (Box's `path_collection`).
    pub fn ancestors(&self, folder_id: &str) -> Vec<&BoxFolder> {
        let mut chain = Vec::new();
        let mut current = self.folder(folder_id).and_then(|f| f.parent_id.clone());
        let mut guard = 0;
        while let Some(id) = current {
            guard += 1;
            if guard > 10_000 {
                break;
            }
            match self.folder(&id) {
                Some(folder) => {
                    chain.push(folder);
                    current = folder.parent_id.clone();
                }
                None => break,
            }
        }
        chain.reverse();
        chain
    }

    /// Path of a folder for humans: `/` for the root, `/Campaigns/C-2026-0142 ...` below it.
    pub fn folder_path(&self, folder_id: &str) -> String {
        if folder_id == "0" {
            return "/".to_owned();
        }
        let mut parts: Vec<&str> = self
            .ancestors(folder_id)
            .into_iter()
            .filter(|f| f.id != "0")
            .map(|f| f.name.as_str())
            .collect();
        if let Some(folder) = self.folder(folder_id) {
            parts.push(&folder.name);
        }
        format!("/{}", parts.join("/"))
    }

    /// Path of a file: its folder's path plus its name.
    pub fn file_path(&self, file: &BoxFile) -> String {
        let parent = self.folder_path(&file.parent_id);
        if parent == "/" {
            format!("/{}", file.name)
        } else {
            format!("{parent}/{}", file.name)
        }
    }

    /// Total size in bytes of the current versions of all files below a folder.
    pub fn folder_size(&self, folder_id: &str) -> u64 {
        let mut size = 0;
        for file in &self.files {
            if file.parent_id == folder_id || self.is_below(&file.parent_id, folder_id) {
                size += file.current().map_or(0, |v| v.size);
            }
        }
        size
    }

    fn is_below(&self, folder_id: &str, ancestor_id: &str) -> bool {
        self.ancestors(folder_id)
            .iter()
            .any(|f| f.id == ancestor_id)
    }

    /// Creates a folder (caller validated the name, the parent and the absence of a clash).
    pub fn insert_folder(&mut self, parent_id: &str, name: &str, actor: Actor) -> String {
        let id = self.next_id();
        let now = crate::http_util::now();
        self.folders.push(BoxFolder {
            id: id.clone(),
            name: name.to_owned(),
            parent_id: Some(parent_id.to_owned()),
            created_at: now,
            modified_at: now,
            etag: 0,
            created_by: actor,
            restricted: false,
        });
        self.folder_index.insert(id.clone(), self.folders.len() - 1);
        self.touch_folder(parent_id);
        self.record_event("ITEM_CREATE", &id, actor);
        id
    }

    fn touch_folder(&mut self, folder_id: &str) {
        if let Some(folder) = self.folder_mut(folder_id) {
            folder.modified_at = crate::http_util::now();
        }
    }

    /// Creates a file with one version (caller validated name, parent, clash) and returns its ID.
    /// The version's blob must already be at its final place.
    pub fn insert_file(
        &mut self,
        parent_id: &str,
        name: &str,
        version: NewVersion,
        actor: Actor,
        content_created_at: Option<jiff::Timestamp>,
        content_modified_at: Option<jiff::Timestamp>,
    ) -> String {
        let id = self.next_id();
        let now = crate::http_util::now();
        self.files.push(BoxFile {
            id: id.clone(),
            name: name.to_owned(),
            parent_id: parent_id.to_owned(),
            versions: vec![BoxFileVersion {
                id: version.id,
                sha1: version.sha1,
                size: version.size,
                blob: version.blob,
                created_at: now,
                uploaded_by: actor,
            }],
            created_at: now,
            modified_at: now,
            content_created_at: content_created_at.unwrap_or(now),
            content_modified_at: content_modified_at.unwrap_or(now),
            etag: 0,
            created_by: actor,
            modified_by: actor,
        });
        self.file_index.insert(id.clone(), self.files.len() - 1);
        self.touch_folder(parent_id);
        self.record_event("ITEM_UPLOAD", &id, actor);
        id
    }

    /// Reserves a new file version ID (used to name the blob before the version is recorded).
    pub fn reserve_version_id(&mut self) -> String {
        self.next_version()
    }

    /// Appends a version to a file (new sha1 / etag); returns `false` if the file is unknown.
    pub fn add_version(&mut self, file_id: &str, version: NewVersion, actor: Actor) -> bool {
        let now = crate::http_util::now();
        let Some(file) = self.file_mut(file_id) else {
            return false;
        };
        file.versions.push(BoxFileVersion {
            id: version.id,
            sha1: version.sha1,
            size: version.size,
            blob: version.blob,
            created_at: now,
            uploaded_by: actor,
        });
        file.etag += 1;
        file.modified_at = now;
        file.content_modified_at = now;
        file.modified_by = actor;
        self.record_event("ITEM_UPLOAD", file_id, actor);
        true
    }

    /// Whether a folder has any items (folders or files).
    pub fn has_children(&self, folder_id: &str) -> bool {
        self.folders
            .iter()
            .any(|f| f.parent_id.as_deref() == Some(folder_id))
            || self.files.iter().any(|f| f.parent_id == folder_id)
    }

    /// Moves a folder and everything below it to the trash: they disappear from listings and
    /// lookups (404 from then on) and are recorded in [`BoxStore::trash`]. The caller checked
    /// access and that the folder is not the root. Returns the number of items trashed.
    pub fn trash_folder(&mut self, folder_id: &str) -> usize {
        self.record_event("ITEM_TRASH", folder_id, Actor::Service);
        let now = crate::http_util::now();
        let parent = self.folder(folder_id).and_then(|f| f.parent_id.clone());
        let doomed_folders: std::collections::HashSet<String> = self
            .folders
            .iter()
            .filter(|f| f.id == folder_id || self.is_below(&f.id, folder_id))
            .map(|f| f.id.clone())
            .collect();
        let mut trashed = Vec::new();
        for folder in self
            .folders
            .iter()
            .filter(|f| doomed_folders.contains(&f.id))
        {
            trashed.push(TrashedItem {
                kind: "folder",
                id: folder.id.clone(),
                name: folder.name.clone(),
                path: self.folder_path(&folder.id),
                trashed_at: now,
            });
        }
        for file in self
            .files
            .iter()
            .filter(|f| doomed_folders.contains(&f.parent_id))
        {
            trashed.push(TrashedItem {
                kind: "file",
                id: file.id.clone(),
                name: file.name.clone(),
                path: self.file_path(file),
                trashed_at: now,
            });
        }
        self.folders.retain(|f| !doomed_folders.contains(&f.id));
        self.files
            .retain(|f| !doomed_folders.contains(&f.parent_id));
        self.folder_index = self
            .folders
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.clone(), i))
            .collect();
        self.file_index = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.clone(), i))
            .collect();
        let count = trashed.len();
        self.trash.extend(trashed);
        if let Some(parent) = parent {
            self.touch_folder(&parent);
        }
        count
    }

    /// Moves and/or renames a file (caller validated everything), by `actor`; records
    /// `ITEM_MOVE` and/or `ITEM_RENAME`.
    pub fn move_file(&mut self, file_id: &str, parent_id: &str, name: &str, actor: Actor) {
        let now = crate::http_util::now();
        let mut old_parent = None;
        let mut renamed = false;
        if let Some(file) = self.file_mut(file_id) {
            if file.parent_id != parent_id {
                old_parent = Some(file.parent_id.clone());
            }
            renamed = file.name != name;
            file.parent_id = parent_id.to_owned();
            file.name = name.to_owned();
            file.etag += 1;
            file.modified_at = now;
            file.modified_by = actor;
        }
        let moved = old_parent.is_some();
        if let Some(old) = old_parent {
            self.touch_folder(&old);
        }
        self.touch_folder(parent_id);
        if moved {
            self.record_event("ITEM_MOVE", file_id, actor);
        }
        if renamed {
            self.record_event("ITEM_RENAME", file_id, actor);
        }
    }
}

/// Sort key of Box listings: lowercase name, then ID.
pub fn sort_key(name: &str, id: &str) -> (String, String) {
    (name.to_lowercase(), format!("{id:0>20}"))
}

// ---------------------------------------------------------------------------------------------
// DAM (OTMM)
// ---------------------------------------------------------------------------------------------

/// A metadata category of an OTMM folder or asset, holding field JSON objects in OTMM shape.
#[derive(Debug, Clone)]
pub struct DamCategory {
    /// Category ID (`FERRERO.CATEGORY.ASSET INFO`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Field objects (`{"type":"com.artesia.metadata.MetadataField","id",...,"value":{...}}`).
    pub fields: Vec<Value>,
}

/// An OTMM folder (container).
#[derive(Debug, Clone)]
pub struct DamFolder {
    /// 40 lowercase hex characters.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parent folder (`None` for top-level folders).
    pub parent_id: Option<String>,
    /// `metadata_model_id`.
    pub model_id: String,
    /// Model display name.
    pub model_name: String,
    /// Metadata categories.
    pub categories: Vec<DamCategory>,
    /// Identity (session / token owner) holding the lock, if locked.
    pub locked_by: Option<String>,
    /// Creation time.
    pub created: jiff::Timestamp,
    /// Last update.
    pub updated: jiff::Timestamp,
}

/// An OTMM asset.
#[derive(Debug, Clone)]
pub struct DamAsset {
    /// 40 lowercase hex characters.
    pub id: String,
    /// Asset name (from `ARTESIA.FIELD.ASSET NAME` or the file name).
    pub name: String,
    /// Parent folder ID.
    pub folder_id: String,
    /// MIME type of the master content.
    pub mime_type: String,
    /// OTMM content type (`VIDEO`, `BITMAP`, `AUDIO`, `ACROBAT`, `OTHER`).
    pub content_type: String,
    /// Size in bytes of the master content.
    pub content_size: u64,
    /// Lowercase SHA-1 hex of the master content.
    pub sha1: String,
    /// Master content on disk.
    pub blob: PathBuf,
    /// File name of the master content.
    pub file_name: String,
    /// `metadata_model_id`.
    pub model_id: String,
    /// Model display name.
    pub model_name: String,
    /// Metadata categories.
    pub categories: Vec<DamCategory>,
    /// `security_policy_list` as given.
    pub security_policies: Value,
    /// Import time.
    pub imported: jiff::Timestamp,
    /// Last update.
    pub updated: jiff::Timestamp,
    /// Identity holding the lock, if locked.
    pub locked_by: Option<String>,
    /// ID of the master rendition (`master_content_info.id`).
    pub rendition_id: String,
    /// Import job that created the asset, if imported through `POST /assets`.
    pub import_job_id: Option<String>,
    /// Deleted (still listed unless a listing excludes deleted assets).
    pub deleted: bool,
}

/// State of an import job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Accepted, asset not yet visible.
    InProgress,
    /// Asset created.
    Completed,
    /// Import failed (`message` says why).
    Failed,
}

/// An import job (`GET /otmmapi/v6/jobs/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct DamJob {
    /// Numeric string ID.
    pub job_id: String,
    /// Status.
    pub status: JobStatus,
    /// Assets created by the job.
    pub asset_id_list: Vec<String>,
    /// Failure text (empty otherwise).
    pub message: String,
    /// Target folder.
    pub folder_id: String,
    /// Name of the asset being imported.
    pub asset_name: String,
}

/// One recorded change of a campaign's status field.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    /// Campaign folder ID.
    pub folder_id: String,
    /// Campaign folder name.
    pub folder_name: String,
    /// Previous status value (`None` if the field was empty).
    pub from: Option<String>,
    /// New status value.
    pub to: String,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Identity that made the change (session user or OAuth client).
    pub by: String,
}

/// One value of a lookup domain.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DomainEntry {
    /// Stored value (`field_value.value`).
    pub value: String,
    /// Display value (kept verbatim, stray spaces included).
    pub display: String,
}

/// The DAM tree, jobs, lookup domains and the status history.
#[derive(Debug, Default)]
pub struct DamStore {
    /// All folders in creation order.
    pub folders: Vec<DamFolder>,
    folder_index: HashMap<String, usize>,
    /// All assets in creation order.
    pub assets: Vec<DamAsset>,
    asset_index: HashMap<String, usize>,
    /// Import jobs by ID.
    pub jobs: BTreeMap<u64, DamJob>,
    next_job_id: u64,
    /// Status changes of campaign folders, in order.
    pub status_changes: Vec<StatusChange>,
    /// Lookup domains by ID.
    pub domains: BTreeMap<String, Vec<DomainEntry>>,
    /// Content redirect tickets (`/dam-cdn/{ticket}` on the download port): asset ID and expiry.
    pub cdn_tickets: HashMap<String, (String, Instant)>,
}

/// A 40-character lowercase hex ID as OTMM uses for assets and folders.
pub fn new_dam_id() -> String {
    crate::http_util::random_hex(40)
}

impl DamStore {
    /// Folder by ID.
    pub fn folder(&self, id: &str) -> Option<&DamFolder> {
        self.folder_index.get(id).and_then(|&i| self.folders.get(i))
    }

    /// Mutable folder by ID.
    pub fn folder_mut(&mut self, id: &str) -> Option<&mut DamFolder> {
        match self.folder_index.get(id) {
            Some(&i) => self.folders.get_mut(i),
            None => None,
        }
    }

    /// Asset by ID.
    pub fn asset(&self, id: &str) -> Option<&DamAsset> {
        self.asset_index.get(id).and_then(|&i| self.assets.get(i))
    }

    /// Mutable asset by ID.
    pub fn asset_mut(&mut self, id: &str) -> Option<&mut DamAsset> {
        match self.asset_index.get(id) {
            Some(&i) => self.assets.get_mut(i),
            None => None,
        }
    }

    /// Adds a folder.
    pub fn insert_folder(&mut self, folder: DamFolder) {
        self.folder_index
            .insert(folder.id.clone(), self.folders.len());
        self.folders.push(folder);
    }

    /// Adds an asset.
    pub fn insert_asset(&mut self, asset: DamAsset) {
        self.asset_index.insert(asset.id.clone(), self.assets.len());
        self.assets.push(asset);
    }

    /// Subfolders of a folder, in creation order.
    pub fn subfolders(&self, folder_id: &str) -> Vec<&DamFolder> {
        self.folders
            .iter()
            .filter(|f| f.parent_id.as_deref() == Some(folder_id))
            .collect()
    }

    /// Assets of a folder, in creation order.
    pub fn folder_assets(&self, folder_id: &str) -> Vec<&DamAsset> {
        self.assets
            .iter()
            .filter(|a| a.folder_id == folder_id)
            .collect()
    }

    /// Whether `folder_id` is `ancestor_id` or below it.
    pub fn folder_within(&self, folder_id: &str, ancestor_id: &str) -> bool {
        let mut current = Some(folder_id.to_owned());
        let mut guard = 0;
        while let Some(id) = current {
            if id == ancestor_id {
                return true;
            }
            guard += 1;
            if guard > 10_000 {
                return false;
            }
            current = self.folder(&id).and_then(|f| f.parent_id.clone());
        }
        false
    }

    /// Creates an import job in progress and returns its ID.
    pub fn new_job(&mut self, folder_id: &str, asset_name: &str) -> String {
        if self.next_job_id == 0 {
            self.next_job_id = 1125;
        }
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.jobs.insert(
            id,
            DamJob {
                job_id: id.to_string(),
                status: JobStatus::InProgress,
                asset_id_list: Vec::new(),
                message: String::new(),
                folder_id: folder_id.to_owned(),
                asset_name: asset_name.to_owned(),
            },
        );
        id.to_string()
    }

    /// Display value of a domain value, if the domain and value are known.
    pub fn domain_display(&self, domain_id: &str, value: &str) -> Option<String> {
        self.domains
            .get(domain_id)?
            .iter()
            .find(|entry| entry.value == value)
            .map(|entry| entry.display.clone())
    }
}

/// The plain text of an OTMM field object: a string/number/datetime `value.value.value`, or a
/// DomainValue's `value.value.field_value.value`; `None` when empty or of another shape.
pub fn field_value_text(field: &Value) -> Option<String> {
    let inner = field.get("value")?.get("value")?;
    let raw =
        if inner.get("type").and_then(Value::as_str) == Some("com.artesia.metadata.DomainValue") {
            inner.get("field_value")?.get("value")?
        } else {
            inner.get("value")?
        };
    match raw {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Looks a field up by ID across categories and returns its text (see [`field_value_text`]).
pub fn categories_field_text(categories: &[DamCategory], field_id: &str) -> Option<String> {
    categories
        .iter()
        .flat_map(|c| c.fields.iter())
        .find(|f| f.get("id").and_then(Value::as_str) == Some(field_id))
        .and_then(field_value_text)
}

/// All fields of the categories as `field id -> text` (fields without a text value are skipped).
pub fn categories_field_map(categories: &[DamCategory]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for field in categories.iter().flat_map(|c| c.fields.iter()) {
        if let (Some(id), Some(text)) = (
            field.get("id").and_then(Value::as_str),
            field_value_text(field),
        ) {
            map.insert(id.to_owned(), text);
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// Auth, stats, faults
// ---------------------------------------------------------------------------------------------

/// An OTMM session (`POST /otmmapi/v6/sessions`).
#[derive(Debug, Clone)]
pub struct DamSession {
    /// Numeric session ID (`session.id`).
    pub id: i64,
    /// `message_digest`: 40 hex characters, accepted in the `otmmauthtoken` header.
    pub digest: String,
    /// Cookie value `JSESSIONID`.
    pub jsessionid: String,
    /// Login name.
    pub login: String,
    /// Expiry.
    pub expires: Instant,
}

/// Tokens and sessions of every emulated API.
#[derive(Debug, Default)]
pub struct AuthStore {
    /// Box access tokens and their expiry.
    pub box_tokens: HashMap<String, Instant>,
    /// Every JWT `jti` seen (never reusable).
    pub used_jti: HashSet<String>,
    /// Box access tokens issued so far.
    pub tokens_issued: u64,
    /// OTMM sessions by JSESSIONID.
    pub dam_sessions: HashMap<String, DamSession>,
    /// OTMM OAuth2 bearer tokens and their expiry.
    pub dam_tokens: HashMap<String, Instant>,
    /// Successful OTMM logins (sessions + client-credential tokens).
    pub dam_logins: u64,
}

/// Request counters, see `GET /_sandbox/stats`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// `"{METHOD} {route template} {status}"` -> count.
    pub routes: BTreeMap<String, u64>,
    /// Requests to the Box API, upload API, token endpoint and download host.
    pub box_requests: u64,
    /// Of which to the download host (second port).
    pub box_download_requests: u64,
    /// Requests to `/otmmapi/...`.
    pub dam_requests: u64,
    /// Requests to `/v3/...` (Mailgun).
    pub mailgun_requests: u64,
    /// Requests to `/_sandbox/webhooks/...`.
    pub webhook_requests: u64,
    /// Faults injected (all kinds).
    pub faults_injected: u64,
    /// Faults injected per kind (`status`, `not_ready`, `drop`, `delay`, `truncate`).
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Requests refused with 429 by the rate limit.
    pub rate_limited: u64,
    /// Chunked upload sessions created.
    pub upload_sessions_created: u64,
    /// Parts stored in upload sessions (identical re-uploads not counted).
    pub upload_parts_stored: u64,
    /// Upload sessions committed into a file or version.
    pub upload_sessions_committed: u64,
    /// Upload sessions aborted.
    pub upload_sessions_aborted: u64,
    /// Box requests (API, upload, download host) being handled right now.
    pub box_in_flight: u64,
    /// Most Box requests ever handled at the same time (a client's concurrency, as seen here).
    pub box_peak_in_flight: u64,
    /// DAM requests being handled right now.
    pub dam_in_flight: u64,
    /// Most DAM requests ever handled at the same time.
    pub dam_peak_in_flight: u64,
}

impl Stats {
    /// A request to `api` starts (`true`) or ends (`false`): keeps the in-flight counts and peaks.
    pub fn in_flight(&mut self, box_api: bool, starts: bool) {
        let (current, peak) = if box_api {
            (&mut self.box_in_flight, &mut self.box_peak_in_flight)
        } else {
            (&mut self.dam_in_flight, &mut self.dam_peak_in_flight)
        };
        if starts {
            *current += 1;
            *peak = (*peak).max(*current);
        } else {
            *current = current.saturating_sub(1);
        }
    }
}

/// Settings that can change while serving (`GET`/`POST /_sandbox/config`; some also from the
/// command line).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Settings {
    /// Box API request bucket per access token (`None` = no limit); a request beyond it gets 429
    /// `rate_limit_exceeded` with an integer `Retry-After`.
    pub rate_limit: Option<RateLimit>,
    /// `part_size` of new chunked upload sessions (Box: 8 MiB for most sizes).
    pub part_size: u64,
    /// How many times a valid commit of an upload session is first answered 202 + `Retry-After`
    /// ("parts still processing") before it is committed.
    pub commit_accepted_responses: u32,
    /// `Retry-After` seconds of those 202 replies.
    pub commit_retry_after_secs: u64,
    /// How `GET /v3/{domain}/events` treats a message sent with a custom `h:Message-Id`.
    pub mailgun_events: MailgunEvents,
    /// How long a DAM import job runs before it completes, milliseconds, overriding the
    /// scenario's / command line's `import_delay_ms` for imports started from now on (`None` =
    /// that start-up value).
    #[serde(default)]
    pub import_delay_ms: Option<u64>,
}

/// Behaviour of the Mailgun events API emulation (`mailgun_events` in `/_sandbox/config`).
/// Mailgun documents its `message-id` filter as matching "the id returned by the messages API"
/// without saying whether that is a custom `h:Message-Id`; the sandbox can answer either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailgunEvents {
    /// A custom `h:Message-Id` is the message's id: returned by the send, stored in the event's
    /// `message.headers.message-id`, matched by the `message-id` filter (default).
    Match,
    /// The custom `Message-Id` header is kept on the message, but the send returns and the events
    /// index a Mailgun-generated id: a look-up by the custom id finds nothing.
    NoCustomIds,
    /// The events API answers 503.
    Unavailable,
}

/// Box's usual part size (8 MiB).
pub const DEFAULT_PART_SIZE: u64 = 8_388_608;

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate_limit: None,
            part_size: DEFAULT_PART_SIZE,
            commit_accepted_responses: 1,
            commit_retry_after_secs: 1,
            mailgun_events: MailgunEvents::Match,
            import_delay_ms: None,
        }
    }
}

/// A Box request bucket as Box documents its limits (per user and minute, e.g. "approximately
/// 1000 API calls/minute", <https://developer.box.com/guides/api-calls/permissions-and-errors/rate-limits/>)
/// with a burst: GCRA, one request every `60 s / per_minute`, up to `burst` at once after a quiet
/// spell. The same parameters as the client's `box.max_requests_per_minute` and `box.burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RateLimit {
    /// Sustained requests per minute (> 0).
    pub per_minute: u32,
    /// Requests admitted at once (>= 1).
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` requests per second with a burst of as many (about what a 1-second window
    /// allows).
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_minute: per_second.saturating_mul(60),
            burst: per_second.max(1),
        }
    }

    /// Time between two requests at the sustained rate.
    fn interval(self) -> Duration {
        Duration::from_mins(1) / self.per_minute.max(1)
    }
}

/// Theoretical arrival time of the next request per Box access token (GCRA state for
/// [`Settings::rate_limit`]).
#[derive(Debug, Default)]
pub struct RateWindows {
    next: HashMap<String, Instant>,
}

impl RateWindows {
    /// Admits a request of `token` at `now` if `limit`'s bucket has room; otherwise returns how
    /// long until it has.
    pub fn admit(&mut self, token: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        if self.next.len() > 10_000 {
            self.next.retain(|_, next| *next > now);
        }
        let interval = limit.interval();
        let tolerance = interval * limit.burst.max(1).saturating_sub(1);
        let next = self.next.get(token).copied().unwrap_or(now).max(now);
        let ahead = next.duration_since(now);
        if ahead > tolerance {
            return Err(ahead.saturating_sub(tolerance));
        }
        self.next.insert(token.to_owned(), next + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_bucket_admits_a_burst_then_one_request_per_interval() {
        let limit = RateLimit {
            per_minute: 600,
            burst: 3,
        };
        let mut windows = RateWindows::default();
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        for _ in 0..3 {
            assert_eq!(windows.admit("t", limit, at(0)), Ok(()));
        }
        assert_eq!(
            windows.admit("t", limit, at(0)),
            Err(Duration::from_millis(100))
        );
        assert_eq!(
            windows.admit("t", limit, at(60)),
            Err(Duration::from_millis(40))
        );
        assert_eq!(windows.admit("t", limit, at(100)), Ok(()));
        assert!(windows.admit("t", limit, at(150)).is_err());
        assert_eq!(windows.admit("t", limit, at(200)), Ok(()));
        // Another token has its own bucket; a quiet spell refills the burst.
        assert_eq!(windows.admit("u", limit, at(200)), Ok(()));
        for _ in 0..3 {
            assert_eq!(windows.admit("t", limit, at(2_000)), Ok(()));
        }
        assert!(windows.admit("t", limit, at(2_000)).is_err());
        assert_eq!(
            RateLimit::per_second(10),
            RateLimit {
                per_minute: 600,
                burst: 10
            }
        );
    }
}
