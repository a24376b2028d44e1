//! The pipeline as one service: it owns the ports and offers the use cases
//! — submit a batch ([`submit`](Pipeline::submit)), process deliveries of
//! work items ([`process`](Pipeline::process)), finalize a job, deliver its
//! callback, run a worker round ([`run_round`](Pipeline::run_round)), ingest
//! a dropped file, and the tenant's views (job, status, results, list,
//! cancel, retry, health, metrics). The API, the Lambda functions and the
//! `docket` command call only these; no one else touches a port.
//!
//! One module per step: `submit`, `process`, `finalize`, `webhooks`,
//! `rounds` (the one worker loop), `tenant` (what a tenant may see and do),
//! `admission` (keys and quotas), `ingest` (files dropped in the inbox) and
//! `ops` (health and metrics).

mod admission;
mod finalize;
mod ingest;
mod ops;
mod process;
mod rounds;
mod submit;
mod summary;
mod tenant;
mod webhooks;

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::failure::{Failure, FailureCategory, RetryPolicy};
use crate::metrics::Metrics;
use crate::model::{
    DocumentSpec, EvaluatorRef, JobId, JobOptions, ReferencedDocument, RejectedDocument, TenantId,
};
use crate::ports::{
    ApiKeyStore, BlobError, BlobStore, Clock, Evaluators, JobStore, QueueError, RateLimiter,
    StoreError, WebhookSecrets, WebhookSender, WorkQueue,
};

pub use admission::Refusal;
pub use finalize::FinalizeOutcome;
pub use ingest::{
    CreatedObject, DocumentReader, INBOX_PREFIX, IngestMessage, ListingPage, PlainText,
    tenant_files,
};
pub use ops::{Health, HealthFigures, Overview, QueueHealth};
pub use rounds::Round;
pub use submit::OpenIntake;
pub use tenant::{Recovery, RetryOutcome, idempotent_job_id};

/// Tunables of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    /// Retry policy for failed evaluations.
    pub retry: RetryPolicy,
    /// How long a received work item stays hidden from other processors.
    pub visibility: Duration,
    /// Target size of a body pack: small documents share one blob up to this
    /// many bytes (one PUT for many documents).
    pub pack_bytes: usize,
    /// Messages claimed per receive.
    pub receive_batch: usize,
    /// Attempts to deliver a job's callback before it is given up (and its
    /// message dead-lettered). The webhook queue's dead-letter threshold
    /// must be above it.
    pub webhook_attempts: u32,
    /// Delay after the first failed callback; doubled after each next one
    /// (with jitter), up to 15 minutes.
    pub webhook_backoff: Duration,
    /// New batches are refused while this many work items wait (none: no
    /// limit).
    pub max_queue_depth: Option<u64>,
    /// Outcomes read per page when a job is finalized.
    pub outcomes_page: usize,
    /// Target size of a part of a job's stored documents (parts are what
    /// finalizing and reading results hold at a time).
    pub results_part_bytes: usize,
    /// Most input the evaluator's summary hook is given in one call (the
    /// plugin host's input limit).
    pub summary_input_bytes: usize,
    /// Jobs whose stored documents are past this many bytes are also
    /// stored as one whole file per format, for readers that take one
    /// object (AWS: past Lambda's 6 MB response limit the results route
    /// answers with a presigned URL to it). `None` (the embedded backend,
    /// which streams any size): never.
    pub whole_files_past: Option<u64>,
    /// Largest file a referenced document may be: a processor reads a
    /// file whole to extract its text, so a bigger one fails alone (DATA)
    /// unread.
    pub max_file_bytes: u64,
    /// Keys listed per page of a `*.batch.json`'s prefix: a page is one
    /// message and one window of the job's intake (at most 999).
    pub listing_page: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            visibility: Duration::from_secs(60),
            pack_bytes: 1024 * 1024,
            receive_batch: 10,
            webhook_attempts: 5,
            webhook_backoff: Duration::from_secs(5),
            max_queue_depth: None,
            outcomes_page: 1000,
            results_part_bytes: 4 * 1024 * 1024,
            summary_input_bytes: 4 * 1024 * 1024,
            whole_files_past: None,
            max_file_bytes: 100 * 1024 * 1024,
            listing_page: 500,
        }
    }
}

/// Errors of the pipeline's use cases.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The submission is not acceptable; nothing was stored.
    #[error("invalid submission: {0}")]
    Invalid(String),
    /// A quota or the deployment's load refuses a new batch for now.
    #[error("{0}")]
    Refused(Refusal),
    /// A queue operation failed.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// A blob operation failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// A job store operation failed.
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    /// An evaluator call failed for a reason that passes (a component not
    /// loaded yet, a busy host): the step is retried, not recorded.
    #[error("evaluator: {0}")]
    Evaluator(Failure),
}

impl PipelineError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            PipelineError::Invalid(_) => FailureCategory::Data,
            PipelineError::Refused(_) => FailureCategory::RateLimit,
            PipelineError::Queue(e) => e.category(),
            PipelineError::Blob(e) => e.category(),
            PipelineError::Store(e) => e.category(),
            PipelineError::Evaluator(failure) => failure.category,
        }
    }
}

/// A document as it arrives: readable, or already known to be unusable.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeDocument {
    /// Read; will be evaluated.
    Accepted(DocumentSpec),
    /// Could not be read (empty, unreadable): recorded failed at once.
    Rejected(RejectedDocument),
    /// A stored file whose text the processor extracts.
    Referenced(ReferencedDocument),
}

impl IntakeDocument {
    /// The document's id.
    pub fn id(&self) -> &str {
        match self {
            IntakeDocument::Accepted(d) => &d.id,
            IntakeDocument::Rejected(d) => &d.id,
            IntakeDocument::Referenced(d) => &d.id,
        }
    }

    /// The document's id, to change it.
    pub fn id_mut(&mut self) -> &mut String {
        match self {
            IntakeDocument::Accepted(d) => &mut d.id,
            IntakeDocument::Rejected(d) => &mut d.id,
            IntakeDocument::Referenced(d) => &mut d.id,
        }
    }

    /// The document's title.
    pub fn title(&self) -> &str {
        match self {
            IntakeDocument::Accepted(d) => &d.title,
            IntakeDocument::Rejected(d) => &d.title,
            IntakeDocument::Referenced(d) => &d.title,
        }
    }
}

/// A batch to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Use this id (idempotent retries); a new one when `None`.
    pub job_id: Option<JobId>,
    /// The owner.
    pub tenant: TenantId,
    /// The pinned evaluator.
    pub evaluator: EvaluatorRef,
    /// Its configuration.
    pub config: serde_json::Value,
    /// Options.
    pub options: JobOptions,
    /// The documents, in order.
    pub documents: Vec<IntakeDocument>,
}

/// What to do with a delivery after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Its outcome is recorded (or it needs no work): delete it.
    Done,
    /// Retry it after this delay (change its visibility).
    RetryAfter(Duration),
    /// Leave it: it becomes visible again when its visibility expires, and
    /// the queue dead-letters it after too many receives.
    Keep,
}

/// The message on the finalize queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeMessage {
    /// The job to finalize.
    pub job_id: JobId,
}

/// The message on the webhook queue: which job's callback to deliver (the
/// body is made from the job at each attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    /// The finished job.
    pub job_id: JobId,
}

/// Deterministic jitter in `[0, 1)` from a message id and attempt: spreads
/// retries without a random source in the core.
fn jitter(message_id: &str, attempt: u32) -> f64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (message_id, attempt).hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Everything the pipeline needs from the world, handed over once at
/// start-up ([`Pipeline::new`]). The stores are separate ports by concern;
/// one adapter usually backs several ([`Ports::with_store`]).
#[derive(Clone)]
pub struct Ports {
    /// Work, finalize, webhook and ingest queues.
    pub queue: Arc<dyn WorkQueue>,
    /// Document bodies and results.
    pub blobs: Arc<dyn BlobStore>,
    /// Jobs and outcomes.
    pub jobs: Arc<dyn JobStore>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Rate-limit buckets.
    pub rate_limits: Arc<dyn RateLimiter>,
    /// Tenants' webhook secrets.
    pub secrets: Arc<dyn WebhookSecrets>,
    /// The evaluator runtime.
    pub evaluators: Arc<dyn Evaluators>,
    /// Sends job-finished callbacks.
    pub webhooks: Arc<dyn WebhookSender>,
    /// Reads files dropped in the inbox into documents, and referenced
    /// files into text.
    pub reader: Arc<dyn DocumentReader>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// The ports with one adapter behind every store concern.
    pub fn with_store<S>(
        queue: Arc<dyn WorkQueue>,
        blobs: Arc<dyn BlobStore>,
        store: Arc<S>,
        evaluators: Arc<dyn Evaluators>,
        webhooks: Arc<dyn WebhookSender>,
        reader: Arc<dyn DocumentReader>,
        clock: Arc<dyn Clock>,
    ) -> Self
    where
        S: JobStore + ApiKeyStore + RateLimiter + WebhookSecrets + 'static,
    {
        Self {
            queue,
            blobs,
            jobs: store.clone(),
            keys: store.clone(),
            rate_limits: store.clone(),
            secrets: store,
            evaluators,
            webhooks,
            reader,
            clock,
        }
    }
}

/// A figure this process measured and when, reused while it is recent:
/// what admissions and the health route read from the ports is not read
/// per request.
#[derive(Debug, Default)]
struct Recent<T>(Mutex<Option<(Instant, T)>>);

impl<T: Clone> Recent<T> {
    /// The figure, if it was measured less than `ttl` ago.
    fn within(&self, ttl: Duration) -> Option<T> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value`, measured now.
    fn keep(&self, value: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), value));
    }
}

/// The pipeline over a set of ports. Clones share everything (ports,
/// metrics, the measured queue depth); see [`Pipeline::with_settings`].
#[derive(Clone)]
pub struct Pipeline {
    queue: Arc<dyn WorkQueue>,
    blobs: Arc<dyn BlobStore>,
    jobs: Arc<dyn JobStore>,
    keys: Arc<dyn ApiKeyStore>,
    rate_limits: Arc<dyn RateLimiter>,
    secrets: Arc<dyn WebhookSecrets>,
    evaluators: Arc<dyn Evaluators>,
    webhooks: Arc<dyn WebhookSender>,
    reader: Arc<dyn DocumentReader>,
    clock: Arc<dyn Clock>,
    settings: PipelineSettings,
    metrics: Arc<Metrics>,
    /// The last measured work-queue depth.
    queue_depth: Arc<Recent<u64>>,
    /// The last store figures the health route read.
    store_stats: Arc<Recent<crate::ports::StoreStats>>,
    /// When this process's workers last took other work than work items
    /// while work items waited.
    other_work_at: Arc<Mutex<Option<Instant>>>,
}

impl Pipeline {
    /// The pipeline over `ports`.
    pub fn new(ports: Ports, settings: PipelineSettings) -> Self {
        Self {
            queue: ports.queue,
            blobs: ports.blobs,
            jobs: ports.jobs,
            keys: ports.keys,
            rate_limits: ports.rate_limits,
            secrets: ports.secrets,
            evaluators: ports.evaluators,
            webhooks: ports.webhooks,
            reader: ports.reader,
            clock: ports.clock,
            settings,
            metrics: Arc::default(),
            queue_depth: Arc::default(),
            store_stats: Arc::default(),
            other_work_at: Arc::default(),
        }
    }

    /// The same pipeline (ports and metrics shared) with other tunables,
    /// as a new instance: it measures the queue depth afresh.
    pub fn with_settings(&self, settings: PipelineSettings) -> Self {
        Self {
            settings,
            queue_depth: Arc::default(),
            ..self.clone()
        }
    }

    /// Its tunables.
    pub fn settings(&self) -> &PipelineSettings {
        &self.settings
    }

    /// Now, by the pipeline's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// What this process's processors recorded so far.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.metrics.snapshot(self.clock.now())
    }

    /// The last queue, store or blob operation of this process's worker
    /// rounds that failed and was left to be retried, if any did. A
    /// server goes on retrying; `docket run` stops on one that will not
    /// pass by itself (a full disk) and leaves its job to resume.
    pub fn last_backend_error(&self) -> Option<crate::ports::BackendError> {
        self.metrics.last_backend_error()
    }

    /// Notes a port operation of a worker round that failed and is left
    /// to be retried (see [`Pipeline::last_backend_error`]).
    fn left_to_retry(&self, category: FailureCategory, error: &dyn std::fmt::Display) {
        self.metrics
            .backend_error(crate::ports::BackendError::new(category, error.to_string()));
    }
}
