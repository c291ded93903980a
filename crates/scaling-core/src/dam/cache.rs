//! The lookup-domain cache: values of OTMM lookup domains kept across passes in a private JSON
//! file under the temp dir, keyed by the DAM's URL (see [`DamClient::with_lookup_cache`]).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{DamError, DomainValue};
use crate::http::{is_private, write_private_file};

#[cfg(doc)]
use super::DamClient;

/// Name of the lookup-domain cache file in the directory given to [`DamClient::with_lookup_cache`].
pub const LOOKUP_CACHE_FILE: &str = "dam-lookup-domains.json";

/// Lookup-domain values kept across passes (see [`DamClient::with_lookup_cache`]).
#[derive(Debug)]
pub(super) struct LookupCache {
    /// The JSON file, or `None` for a cache in memory only.
    path: Option<PathBuf>,
    /// How long fetched values are used without asking OTMM again.
    ttl: Duration,
    /// What this process knows (loaded from the file on first use).
    memory: Mutex<Option<LookupFile>>,
}

/// The cache file: `{format, api_base, domains: {id: {fetched_at, values: [{value, display}]}}}`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct LookupFile {
    format: u32,
    api_base: String,
    domains: BTreeMap<String, CachedDomain>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedDomain {
    /// Unix seconds.
    fetched_at: i64,
    values: Vec<CachedValue>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedValue {
    value: String,
    display: String,
}

const LOOKUP_FORMAT: u32 = 1;

impl CachedDomain {
    fn to_values(&self) -> Vec<DomainValue> {
        self.values
            .iter()
            .map(|value| DomainValue {
                value: value.value.clone(),
                display: value.display.clone(),
            })
            .collect()
    }
}

impl LookupCache {
    /// A cache kept in `path`, whose values are used for `ttl`.
    pub(super) fn new(path: PathBuf, ttl: Duration) -> Self {
        Self {
            path: Some(path),
            ttl,
            memory: Mutex::new(None),
        }
    }

    /// The values of `domain_id` whatever their age.
    pub(super) fn cached(&self, api_base: &str, domain_id: &str) -> Option<Vec<DomainValue>> {
        self.entry(api_base, domain_id)
            .map(|entry| entry.to_values())
    }

    /// The values of `domain_id`: from the cache while fresh, else from `fetch` (recorded when the
    /// TTL is not zero; its error returned as it is).
    pub(super) fn lookup(
        &self,
        api_base: &str,
        domain_id: &str,
        fetch: impl FnOnce() -> Result<Vec<DomainValue>, DamError>,
    ) -> Result<Vec<DomainValue>, DamError> {
        let now = jiff::Timestamp::now().as_second();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        if let Some(entry) = self.entry(api_base, domain_id) {
            let age = now.saturating_sub(entry.fetched_at);
            if (0..ttl).contains(&age) {
                tracing::debug!(domain_id, age_secs = age, "lookup domain from the cache");
                return Ok(entry.to_values());
            }
        }
        let values = fetch()?;
        if ttl > 0 {
            let entry = CachedDomain {
                fetched_at: now,
                values: values
                    .iter()
                    .map(|value| CachedValue {
                        value: value.value.clone(),
                        display: value.display.clone(),
                    })
                    .collect(),
            };
            self.put(api_base, domain_id, entry);
        }
        Ok(values)
    }

    /// The cached entry of `domain_id` (fresh or not), loading the file on first use.
    fn entry(&self, api_base: &str, domain_id: &str) -> Option<CachedDomain> {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let file = memory.get_or_insert_with(|| self.read(api_base));
        file.domains.get(domain_id).cloned()
    }

    fn read(&self, api_base: &str) -> LookupFile {
        let empty = LookupFile {
            format: LOOKUP_FORMAT,
            api_base: api_base.to_string(),
            domains: BTreeMap::new(),
        };
        let Some(path) = &self.path else {
            return empty;
        };
        let Ok(metadata) = std::fs::metadata(path) else {
            return empty;
        };
        if !is_private(&metadata) {
            tracing::warn!(path = %path.display(), "the lookup-domain cache is readable by group or others; ignoring it");
            return empty;
        }
        match std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LookupFile>(&bytes).ok())
        {
            Some(file) if file.format == LOOKUP_FORMAT && file.api_base == api_base => file,
            Some(_) => {
                tracing::debug!(path = %path.display(), "lookup-domain cache of another DAM; not used");
                empty
            }
            None => {
                tracing::warn!(path = %path.display(), "the lookup-domain cache is unreadable; ignoring it");
                empty
            }
        }
    }

    /// Records fresh values: in memory, and in the file (re-read first so that entries another pass
    /// wrote meanwhile are kept). Best effort: a write failure is logged.
    fn put(&self, api_base: &str, domain_id: &str, entry: CachedDomain) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = self.read(api_base);
        if let Some(known) = memory.take() {
            for (id, domain) in known.domains {
                file.domains.entry(id).or_insert(domain);
            }
        }
        file.domains.insert(domain_id.to_string(), entry);
        if let Some(path) = &self.path {
            let written = serde_json::to_vec(&file)
                .map_err(io::Error::other)
                .and_then(|bytes| write_private_file(path, &bytes));
            if let Err(error) = written {
                tracing::warn!(path = %path.display(), %error, "cannot write the lookup-domain cache");
            }
        }
        *memory = Some(file);
    }
}
