//! The ports: everything the core needs from the world, as traits.
//!
//! Two adapter sets implement them — `local` (SQLite + files) and `aws`
//! (SQS, S3, DynamoDB) — and one conformance suite checks both. The semantics
//! are SQS/S3/DynamoDB's: at-least-once delivery with visibility timeouts and
//! receive counts, byte-range reads of blobs, conditional writes. Adapters
//! translate their backend's errors into the errors below at the seam; no
//! backend type crosses a port.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::ApiKey;
use crate::evaluation::Evaluation;
use crate::failure::{Failure, FailureCategory};
use crate::model::{
    ChunkInfo, EvaluatorRef, ItemOutcome, Job, JobCounters, JobId, JobStatus, Priority, TenantId,
};
use crate::plugin::Manifest;
use crate::quota::{Grant, Rate};
use crate::webhook::WebhookDelivery;

/// A failure of the backend itself (network, throttling, disk), with the
/// category that decides whether the caller retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{category}: {message}")]
pub struct BackendError {
    /// Retry class: throttling is `RateLimit`, timeouts `Transient`, …
    pub category: FailureCategory,
    /// What the backend said.
    pub message: String,
}

impl BackendError {
    /// A backend error of `category`.
    pub fn new(category: FailureCategory, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// WorkQueue

/// The queues docket uses. Each has a dead-letter companion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// Work items, one queue per priority.
    Work(Priority),
    /// Jobs whose last item was recorded.
    Finalize,
    /// Webhook deliveries.
    Webhook,
    /// Notifications of files dropped in the inbox (S3 events, on AWS).
    Ingest,
}

impl QueueName {
    /// Every queue.
    pub const ALL: [QueueName; 6] = [
        QueueName::Work(Priority::High),
        QueueName::Work(Priority::Normal),
        QueueName::Work(Priority::Low),
        QueueName::Finalize,
        QueueName::Webhook,
        QueueName::Ingest,
    ];

    /// Stable short name, e.g. `work-high`, used by adapters to name
    /// resources.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Work(Priority::High) => "work-high",
            QueueName::Work(Priority::Normal) => "work-normal",
            QueueName::Work(Priority::Low) => "work-low",
            QueueName::Finalize => "finalize",
            QueueName::Webhook => "webhook",
            QueueName::Ingest => "ingest",
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// UTF-8 body (JSON in docket), at most [`MAX_MESSAGE_BYTES`].
    pub body: String,
    /// Invisible for this long after sending (SQS allows up to 15 minutes).
    pub delay: Duration,
}

impl OutgoingMessage {
    /// A message visible at once.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// Largest message body the queues accept (SQS's limit).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Proof of one receipt of a message; needed to ack it or change its
/// visibility. A later receipt of the same message invalidates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(pub String);

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable id of the message (the same on every delivery).
    pub message_id: String,
    /// This receipt.
    pub receipt: Receipt,
    /// The body as sent.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Ready to be received (delayed ones included).
    pub visible: u64,
    /// Received and not yet acked or visible again.
    pub in_flight: u64,
    /// In the dead-letter companion.
    pub dead: u64,
}

/// Checks every body against [`MAX_MESSAGE_BYTES`] before anything is
/// sent (what every adapter's `send` does first).
///
/// # Errors
/// [`QueueError::MessageTooLarge`] for the first body past the limit.
pub fn check_message_sizes(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    match messages.iter().find(|m| m.body.len() > MAX_MESSAGE_BYTES) {
        Some(large) => Err(QueueError::MessageTooLarge {
            size: large.body.len(),
            limit: MAX_MESSAGE_BYTES,
        }),
        None => Ok(()),
    }
}

/// Errors of [`WorkQueue`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A body larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {size} bytes is larger than the {limit}-byte limit")]
    MessageTooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl QueueError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            QueueError::MessageTooLarge { .. } => FailureCategory::Permanent,
            QueueError::Backend(e) => e.category,
        }
    }
}

/// At-least-once message queues with visibility timeouts (SQS semantics).
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends `messages`, batching calls as the backend allows (SQS: 10 per
    /// call). Either all are sent or an error is returned; after an error
    /// some may have been sent (senders are idempotent downstream).
    ///
    /// # Errors
    /// [`QueueError::MessageTooLarge`] before anything is sent when a body is
    /// too large; [`QueueError::Backend`] when the backend fails.
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError>;

    /// Receives up to `max` visible messages and hides them for `visibility`.
    /// Returns an empty list when none is visible (it may wait briefly).
    /// A message received more times than the queue's dead-letter threshold
    /// moves to the dead-letter companion instead of being returned.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes the messages of these receipts. A stale receipt (the message
    /// was received again since, or is gone) is ignored.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn ack(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` (backoff). A stale
    /// receipt is ignored.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn retry_after(
        &self,
        queue: QueueName,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Receives up to `max` messages from the dead-letter companion of
    /// `queue`, hidden for `visibility`; ack them with [`WorkQueue::ack_dead`].
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn receive_dead(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes dead-lettered messages of these receipts.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn ack_dead(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError>;

    /// How many messages the queue holds (approximate on SQS).
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError>;
}

// ---------------------------------------------------------------------------
// BlobStore

/// Errors of [`BlobStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// No blob under this key, or the range is past its end.
    #[error("no blob {0}")]
    NotFound(String),
    /// A key that is empty, absolute or climbs out of the store (`..`).
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl BlobError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            BlobError::NotFound(_) => FailureCategory::Data,
            BlobError::InvalidKey(_) => FailureCategory::Configuration,
            BlobError::Backend(e) => e.category,
        }
    }
}

/// Checks that `key` is a relative, `/`-separated path without `.`/`..`
/// segments — the keys every adapter accepts.
///
/// # Errors
/// [`BlobError::InvalidKey`] otherwise.
pub fn check_blob_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && !key.contains('\\')
        && !key.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_owned()))
    }
}

/// Immutable blobs by key (S3 semantics: whole-object puts, ranged gets).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`BlobError::InvalidKey`] for a bad key; [`BlobError::Backend`].
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError>;

    /// Reads the whole blob.
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError>;

    /// Reads `len` bytes from `offset`.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when the blob is missing or shorter than the
    /// range; [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError>;

    /// Keys under `prefix`, sorted.
    ///
    /// # Errors
    /// [`BlobError::Backend`].
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
}

// ---------------------------------------------------------------------------
// JobStore

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
    /// Documents evaluated successfully, over all jobs.
    pub documents_succeeded: u64,
    /// Documents failed, over all jobs.
    pub documents_failed: u64,
    /// Documents skipped, over all jobs.
    pub documents_skipped: u64,
}

/// The rules of the `JobStore`'s conditional changes, applied by every
/// adapter to the job it read (inside its transaction or optimistic write),
/// so both backends refuse and accept the same changes.
pub mod changes {
    use chrono::{DateTime, Utc};

    use super::StoreError;
    use crate::model::{Job, JobStatus};
    use crate::webhook::{WebhookDelivery, WebhookState};

    /// [`JobStore::transition`](super::JobStore::transition).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the status is not in `from` or the job
    /// is finalized.
    pub fn transition(job: &mut Job, from: &[JobStatus], to: JobStatus) -> Result<(), StoreError> {
        if job.finished_at.is_some() || !from.contains(&job.status) {
            return Err(StoreError::Conflict(format!(
                "job {} is {}{}",
                job.id,
                job.status,
                if job.finished_at.is_some() {
                    " and finalized"
                } else {
                    ""
                }
            )));
        }
        job.status = to;
        Ok(())
    }

    /// [`JobStore::halt_job`](super::JobStore::halt_job): whether this
    /// call set the reason.
    pub fn halt(job: &mut Job, reason: &str) -> bool {
        if job.error.is_some() {
            return false;
        }
        job.error = Some(reason.to_owned());
        true
    }

    /// [`JobStore::finish_job`](super::JobStore::finish_job).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when already finalized or the status
    /// change is not allowed.
    pub fn finish(
        job: &mut Job,
        status: JobStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if job.finished_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "job {} is already finalized",
                job.id
            )));
        }
        if status != job.status && !job.status.can_become(status) {
            return Err(StoreError::Conflict(format!(
                "job {} cannot go from {} to {status}",
                job.id, job.status
            )));
        }
        job.status = status;
        job.error = error.map(str::to_owned).or(job.error.take());
        job.finished_at = Some(now);
        Ok(())
    }

    /// [`JobStore::set_webhook`](super::JobStore::set_webhook): a delivered
    /// callback stays delivered.
    pub fn set_webhook(job: &mut Job, delivery: &WebhookDelivery) {
        let delivered = job
            .webhook
            .as_ref()
            .is_some_and(|w| w.state == WebhookState::Delivered);
        if !delivered {
            job.webhook = Some(delivery.clone());
        }
    }
}

/// Jobs, their exact counters and item outcomes (DynamoDB semantics:
/// conditional writes and transactions).
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

    /// Every recorded outcome of the job, by item index.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn outcomes(&self, job: &JobId) -> Result<Vec<ItemOutcome>, StoreError>;

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

    /// Records where the job's callback stands. A delivered callback stays
    /// delivered (a late duplicate attempt cannot undo it).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Backend`].
    async fn set_webhook(&self, job: &JobId, delivery: &WebhookDelivery) -> Result<(), StoreError>;

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

    /// Deployment-wide figures for monitoring: jobs by status and the
    /// documents they counted.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// The tenant's jobs, newest first (by creation time, then id).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError>;

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
    if existing.sha256 == new.sha256 {
        Ok(false)
    } else {
        Err(StoreError::Conflict(format!(
            "{}@{} is published with {}; a published version never changes (these bytes are {}): publish a new version",
            new.name, new.version, existing.sha256, new.sha256
        )))
    }
}

// ---------------------------------------------------------------------------
// Evaluators

/// What an evaluator sees of a document (or chunk).
#[derive(Debug, Clone, Copy)]
pub struct DocumentView<'a> {
    /// The document's id.
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// The chunk's text.
    pub content: &'a str,
    /// The document's metadata.
    pub metadata: &'a serde_json::Value,
    /// Where the chunk sits.
    pub chunk: &'a ChunkInfo,
}

/// One evaluation to run: owned, so a batch can move to a thread that may
/// block.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRequest {
    /// The pinned evaluator.
    pub evaluator: EvaluatorRef,
    /// The document's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The chunk's text.
    pub content: String,
    /// The document's metadata.
    pub metadata: serde_json::Value,
    /// Where the chunk sits.
    pub chunk: ChunkInfo,
    /// The job's evaluator configuration.
    pub config: Arc<serde_json::Value>,
}

impl EvaluationRequest {
    /// The document as the evaluator sees it.
    pub fn view(&self) -> DocumentView<'_> {
        DocumentView {
            id: &self.id,
            title: &self.title,
            content: &self.content,
            metadata: &self.metadata,
            chunk: &self.chunk,
        }
    }
}

/// What one evaluation cost, against the plugin's limits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed (roughly, WebAssembly instructions).
    pub fuel: u64,
    /// Largest linear memory reached, in bytes.
    pub peak_memory: u64,
    /// Input bytes handed to the plugin.
    pub input_bytes: u64,
    /// Output bytes returned.
    pub output_bytes: u64,
    /// Wall-clock time of the call, seconds.
    pub seconds: f64,
}

/// A successful evaluation and its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationReport {
    /// The result.
    pub evaluation: Evaluation,
    /// Its cost.
    pub usage: Usage,
}

/// Resolves and runs evaluators. Evaluation is CPU work under the plugin's
/// limits; implementations run a batch where blocking is allowed (a
/// blocking thread), so callers simply await it.
#[async_trait]
pub trait Evaluators: Send + Sync {
    /// Resolves `name`, `name@version` or `name@range` to one exact,
    /// pinned evaluator version and digest.
    ///
    /// # Errors
    /// A `Configuration` [`Failure`] naming the unknown evaluator or version;
    /// `Transient` when the registry could not be read.
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure>;

    /// Every evaluator version this runtime can run now, by name then
    /// version (for health checks; empty when it loads on demand).
    fn loaded(&self) -> Vec<EvaluatorRef> {
        Vec::new()
    }

    /// Evaluations from now on must end by `deadline` (a Lambda
    /// invocation's, less what recording needs): a call's wall-clock limit
    /// becomes the shorter of the plugin's and the time left, and a call
    /// stopped by the deadline is a `Transient` failure (retried by another
    /// invocation), not the plugin's fault. `None` lifts it.
    fn set_deadline(&self, _deadline: Option<std::time::Instant>) {}

    /// Evaluates a batch of documents or chunks, one result per request in
    /// order. Each request fails alone with a categorized [`Failure`]: the
    /// plugin's own errors (`Data` for an invalid document, `Configuration`
    /// for an invalid config) and host failures (trap, fuel, memory, time,
    /// oversized input or output: `Permanent`, naming the limit and its
    /// value).
    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
    ) -> Vec<Result<EvaluationReport, Failure>>;

    /// The plugin's own merge of a document's chunk evaluations (in order,
    /// spans already relative to the document), or `None` for the host's
    /// [`default_merge`](crate::evaluation::default_merge).
    ///
    /// # Errors
    /// A categorized [`Failure`], as for `evaluate`.
    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure>;

    /// The plugin's own summary of the job's document evaluations (JSON
    /// added to the batch summary), or `None`.
    ///
    /// # Errors
    /// A categorized [`Failure`], as for `evaluate`.
    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure>;
}

/// One callback to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Where (http or https).
    pub url: String,
    /// Headers, signature included.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

/// Why a callback was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL is malformed or points where docket must not send (loopback,
    /// private, link-local or metadata addresses unless allowed): never
    /// retried.
    #[error("webhook URL not allowed: {0}")]
    NotAllowed(String),
    /// The receiver answered non-2xx, or could not be reached: retried.
    #[error("{message}")]
    Failed {
        /// The receiver's HTTP status, when it answered.
        status: Option<u16>,
        /// What happened.
        message: String,
    },
}

/// Sends callbacks over HTTP, refusing addresses docket must not reach.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Whether `url` may receive callbacks (resolving its host).
    ///
    /// # Errors
    /// [`WebhookError::NotAllowed`] saying why not.
    async fn check(&self, url: &str) -> Result<(), WebhookError>;

    /// POSTs the request; returns the receiver's 2xx status.
    ///
    /// # Errors
    /// [`WebhookError::NotAllowed`]; [`WebhookError::Failed`] for a non-2xx
    /// answer, a timeout or a connection failure.
    async fn send(&self, request: WebhookRequest) -> Result<u16, WebhookError>;
}

/// A sender for deployments without callbacks: every URL is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWebhooks;

#[async_trait]
impl WebhookSender for NoWebhooks {
    async fn check(&self, _url: &str) -> Result<(), WebhookError> {
        Err(WebhookError::NotAllowed(
            "this deployment sends no webhooks".into(),
        ))
    }

    async fn send(&self, request: WebhookRequest) -> Result<u16, WebhookError> {
        self.check(&request.url).await.map(|()| 0)
    }
}

/// The time, as a port so tests control it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_stay_inside_the_store() {
        for good in ["a", "documents/job_1/pack-0", "results/j/results.json"] {
            assert_eq!(check_blob_key(good), Ok(()), "{good}");
        }
        for bad in ["", "/abs", "a//b", "a/../b", "..", "./a", "a/", "a\\b"] {
            assert!(check_blob_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_carry_their_retry_class() {
        let throttled = BackendError::new(FailureCategory::RateLimit, "slow down");
        assert_eq!(
            QueueError::from(throttled.clone()).category(),
            FailureCategory::RateLimit
        );
        assert_eq!(
            StoreError::from(throttled).category(),
            FailureCategory::RateLimit
        );
        assert_eq!(
            BlobError::NotFound("k".into()).category(),
            FailureCategory::Data
        );
        assert_eq!(
            StoreError::Conflict("finalized".into()).category(),
            FailureCategory::Permanent
        );
    }
}
