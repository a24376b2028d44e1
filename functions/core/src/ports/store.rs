//! The stores, one trait per concern: [`JobStore`] (jobs, their counters
//! and item outcomes), [`ApiKeyStore`], [`RateLimiter`], [`WebhookSecrets`]
//! and [`PluginRegistry`]. An adapter usually implements all five over one
//! database or table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BackendError;
use crate::auth::ApiKey;
use crate::failure::FailureCategory;
use crate::model::{ItemOutcome, Job, JobCounters, JobId, JobStatus, Refused, TenantId};
use crate::plugin::Manifest;
use crate::quota::{Grant, Rate};
use crate::webhook::WebhookDelivery;

/// Errors of [`JobStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such job (or not visible to the caller).
    #[error("job {0} not found")]
    NotFound(String),
    /// A conditional write lost: the id exists, the job is not in an allowed
    /// status, or it is already finalized.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl StoreError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            StoreError::NotFound(_) => FailureCategory::Data,
            StoreError::Conflict(_) => FailureCategory::Permanent,
            StoreError::Backend(e) => e.category,
        }
    }
}

/// What one [`JobStore::record_outcomes`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordReceipt {
    /// Items recorded by this call.
    pub recorded: Vec<u32>,
    /// Items that already had an outcome (duplicate deliveries); unchanged.
    pub duplicates: Vec<u32>,
    /// The job's counters after the call.
    pub counters: JobCounters,
    /// The job's status after the call.
    pub status: JobStatus,
    /// True for exactly one call per job: the one that recorded the last
    /// pending item. That caller sends the finalize message.
    pub completed_job: bool,
}

/// Filters for [`JobStore::list_jobs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only jobs listed after this one (the cursor: pages go from newest to
    /// oldest by creation time, ties by id).
    pub before: Option<JobId>,
    /// At most this many (the adapter may cap it).
    pub limit: usize,
}

/// What [`JobStore::stats`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Jobs per status (every status, zeros included).
    pub jobs: Vec<(JobStatus, u64)>,
    /// Jobs per tenant and status (only those with jobs), by tenant.
    pub tenant_jobs: Vec<(TenantId, JobStatus, u64)>,
    /// Documents evaluated successfully, over all jobs.
    pub documents_succeeded: u64,
    /// Documents failed, over all jobs.
    pub documents_failed: u64,
    /// Documents skipped, over all jobs.
    pub documents_skipped: u64,
    /// Every job that started and was unfinished at the `active_since`
    /// the caller gave (running, or finished after it): what throughput is
    /// measured from.
    pub active: Vec<JobActivity>,
}

impl StoreStats {
    /// Empty figures: every status at zero.
    pub fn zero() -> Self {
        Self {
            jobs: JobStatus::ALL.iter().map(|s| (*s, 0)).collect(),
            ..Self::default()
        }
    }

    /// Counts one stored job of `tenant` in `status` (`jobs` of them).
    pub fn count_jobs(&mut self, tenant: &TenantId, status: JobStatus, jobs: u64) {
        if let Some(entry) = self.jobs.iter_mut().find(|(s, _)| *s == status) {
            entry.1 += jobs;
        }
        match self.tenant_jobs.binary_search_by(|(t, s, _)| {
            (t.as_str(), s.as_str()).cmp(&(tenant.as_str(), status.as_str()))
        }) {
            Ok(at) => self.tenant_jobs[at].2 += jobs,
            Err(at) => self.tenant_jobs.insert(at, (tenant.clone(), status, jobs)),
        }
    }

    /// The tenant's jobs per status (every status, zeros included).
    pub fn jobs_of(&self, tenant: &TenantId) -> Vec<(JobStatus, u64)> {
        JobStatus::ALL
            .iter()
            .map(|status| {
                let n = self
                    .tenant_jobs
                    .iter()
                    .find(|(t, s, _)| t == tenant && s == status)
                    .map_or(0, |(_, _, n)| *n);
                (*status, n)
            })
            .collect()
    }
}

/// A started job's documents done and the span they were done in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobActivity {
    /// The job.
    pub id: JobId,
    /// Its owner.
    pub tenant: TenantId,
    /// Its status.
    pub status: JobStatus,
    /// Its documents.
    pub documents_total: u64,
    /// Documents with every chunk recorded.
    pub documents_done: u64,
    /// When its first item was recorded.
    pub started_at: DateTime<Utc>,
    /// When it was finalized; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobActivity {
    /// The job's activity if it started, and finished at or after `since`
    /// or not at all.
    pub fn of(job: &Job, since: DateTime<Utc>) -> Option<Self> {
        let started_at = job.started_at?;
        if job.finished_at.is_some_and(|finished| finished < since) {
            return None;
        }
        Some(Self {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            status: job.status,
            documents_total: u64::from(job.counters.documents_total),
            documents_done: u64::from(job.counters.documents_done()),
            started_at,
            finished_at: job.finished_at,
        })
    }
}

impl From<Refused> for StoreError {
    fn from(refused: Refused) -> Self {
        StoreError::Conflict(refused.0)
    }
}

/// Jobs, their exact counters and item outcomes (DynamoDB semantics:
/// conditional writes and transactions). Every conditional change applies
/// the job's own state machine ([`Job::transition`], [`Job::finish`], …)
/// to the job it read, so both backends accept and refuse the same changes.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a job with this id exists;
    /// [`StoreError::Backend`].
    async fn create_job(&self, job: &Job) -> Result<(), StoreError>;

    /// Reads a job.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn job(&self, id: &JobId) -> Result<Job, StoreError>;

    /// The exactly-once step. In ONE atomic transaction: stores each outcome
    /// whose item has none yet, updates the job's item and document counters
    /// for those (a document is counted when its last chunk is recorded:
    /// failed if any chunk failed, else skipped if any was skipped, else
    /// succeeded), moves a `queued` job to `processing` (setting
    /// `started_at` to `now`), and reports whether this call recorded the
    /// job's last pending item. Outcomes of items already recorded change
    /// nothing and are listed as duplicates. Outcomes repeated within the
    /// call count once.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown job; [`StoreError::Backend`]
    /// (nothing was recorded).
    async fn record_outcomes(
        &self,
        job: &JobId,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> Result<RecordReceipt, StoreError>;

    /// A page of the job's recorded outcomes in item order: those after
    /// item `after` (from the first when `None`), at most `limit` (the
    /// adapter may return fewer; an empty page is the end). Items are
    /// numbered in document order, chunks of a document in chunk order, so
    /// reading pages to the end gives every document's chunks together.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn outcomes_page(
        &self,
        job: &JobId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<ItemOutcome>, StoreError>;

    /// Conditionally changes the status: only when the current status is in
    /// `from` and the job is not finalized. Returns the updated job.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the status is not in `from` or the job is
    /// finalized; [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn transition(
        &self,
        job: &JobId,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<Job, StoreError>;

    /// Adds a window of a batch being read in to a job whose intake is
    /// open ([`Job::extend`]): `documents` and `items` more; `close` closes
    /// the intake; `from` extends only a job with that many documents.
    /// Returns the updated job: when it was closed with every item recorded
    /// (`items_pending() == 0`) the caller sends the finalize message — no
    /// record call can have, while the intake was open.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the intake is closed, the job
    /// finalized or not at `from` documents; [`StoreError::NotFound`];
    /// [`StoreError::Backend`].
    async fn extend_job(
        &self,
        job: &JobId,
        documents: u32,
        items: u32,
        close: bool,
        from: Option<u32>,
    ) -> Result<Job, StoreError>;

    /// Sets the job's error (failing fast) if none is set yet. Returns
    /// whether this call set it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn halt_job(&self, job: &JobId, reason: &str) -> Result<bool, StoreError>;

    /// Finalizes the job: sets `status`, `error` and `finished_at`, only if
    /// it is not finalized yet and `status` is its current status or one it
    /// can become. Exactly one caller wins.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when already finalized or the status change
    /// is not allowed; [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn finish_job(
        &self,
        job: &JobId,
        status: JobStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError>;

    /// Records where the job's callback stands. A delivered callback stays
    /// delivered (a late duplicate attempt cannot undo it).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn set_webhook(&self, job: &JobId, delivery: &WebhookDelivery) -> Result<(), StoreError>;

    /// Deployment-wide figures for monitoring: jobs by status, the
    /// documents they counted, and the activity of jobs that ran at or
    /// after `active_since` ([`JobActivity::of`]).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn stats(&self, active_since: DateTime<Utc>) -> Result<StoreStats, StoreError>;

    /// The tenant's jobs, newest first (by creation time, then id).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError>;
}

/// API keys, by the hash of their token.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores an API key (its hash).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a key with this hash exists;
    /// [`StoreError::Backend`].
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// The key whose hash is `hash`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown hash; [`StoreError::Backend`].
    async fn api_key(&self, hash: &str) -> Result<ApiKey, StoreError>;
}

/// Token buckets of the rate limits, shared by every API instance.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from the rate-limit bucket `bucket` (a full one the
    /// first time), atomically: concurrent callers never share a token. See
    /// [`quota::take`](crate::quota::take).
    ///
    /// # Errors
    /// [`StoreError::Backend`] (no token was taken).
    async fn take_token(
        &self,
        bucket: &str,
        rate: Rate,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError>;
}

/// Each tenant's webhook signing secret.
#[async_trait]
pub trait WebhookSecrets: Send + Sync {
    /// The tenant's webhook signing secret; `candidate` is stored and
    /// returned when the tenant has none yet (of concurrent callers, one
    /// candidate wins and all get it).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn webhook_secret(
        &self,
        tenant: &TenantId,
        candidate: &str,
    ) -> Result<String, StoreError>;
}

/// The published plugins: manifests by name and version.
#[async_trait]
pub trait PluginRegistry: Send + Sync {
    /// Registers a published plugin version (its files are already in the
    /// blob store). Returns `false` when this exact version is registered
    /// with the same digest already (publishing again is a no-op).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `name@version` is registered with
    /// other bytes: a published version never changes.
    /// [`StoreError::Backend`].
    async fn register_plugin(&self, manifest: &Manifest) -> Result<bool, StoreError>;

    /// Published plugins, by name then version (oldest first); only those
    /// named `name` when given.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn plugins(&self, name: Option<&str>) -> Result<Vec<Manifest>, StoreError>;
}

/// The registration rule both stores apply: a new `name@version` is
/// stored, the same digest again is a no-op, other bytes are refused.
///
/// # Errors
/// [`StoreError::Conflict`] naming both digests.
pub fn check_republish(existing: &Manifest, new: &Manifest) -> Result<bool, StoreError> {
    if existing.sha256 != new.sha256 {
        return Err(StoreError::Conflict(format!(
            "{}@{} is published with {}; a published version never changes (these bytes are {}): publish a new version",
            new.name, new.version, existing.sha256, new.sha256
        )));
    }
    // The same bytes asked with other settings would change nothing
    // silently: say so.
    fn json(value: &impl serde::Serialize) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }
    let mut differ = Vec::new();
    if existing.language != new.language {
        differ.push(format!(
            "language {} (asked: {})",
            existing.language, new.language
        ));
    }
    if existing.limits != new.limits {
        differ.push(format!(
            "limits {} (asked: {})",
            json(&existing.limits),
            json(&new.limits)
        ));
    }
    if existing.config_schema != new.config_schema {
        differ.push(format!(
            "config schema {} (asked: {})",
            json(&existing.config_schema),
            json(&new.config_schema)
        ));
    }
    if differ.is_empty() {
        return Ok(false);
    }
    Err(StoreError::Conflict(format!(
        "{}@{} is published with these bytes and {}; a published version never changes: publish a new version",
        new.name,
        new.version,
        differ.join(", ")
    )))
}
