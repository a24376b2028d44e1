//! Who may submit what: API keys (issued, checked), the admission of a new
//! batch (the caller's concurrent jobs, the deployment's queue depth, then
//! the key's upload bucket — in that order, so a refused batch costs no
//! token when it could not run anyway), and what a submission names (its
//! evaluator, its webhook URL).

use std::time::Duration;

use super::{IntakeDocument, OpenIntake, Pipeline, PipelineError, Submission};
use crate::auth::{Caller, IssuedKey, Tier, hash_token};
use crate::failure::Failure;
use crate::model::{EvaluatorRef, Job, JobStatus, TenantId};
use crate::ports::{JobFilter, QueueName, StoreError, WebhookError};
use crate::quota::Grant;

/// How long a client shed for queue depth or concurrent jobs should wait.
const BUSY_RETRY: Duration = Duration::from_secs(30);

/// How long a measured queue depth stands for the next admissions: the
/// depth is one scan (SQLite) or three calls (SQS) — not per upload.
const DEPTH_TTL: Duration = Duration::from_secs(1);

/// Why a new batch is refused for now; each says when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The tenant has as many jobs queued or processing as its tier allows.
    #[error("{message}")]
    TooManyJobs {
        /// What to tell the client.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The key's upload bucket is empty.
    #[error("{message}")]
    RateLimited {
        /// What to tell the client.
        message: String,
        /// When a token is back.
        retry_after: Duration,
    },
    /// The work queues hold more than the deployment accepts.
    #[error("{message}")]
    Overloaded {
        /// What to tell the client.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
}

impl Pipeline {
    /// The caller a bearer token stands for, or `None` for an unknown key.
    ///
    /// # Errors
    /// Port errors.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, PipelineError> {
        match self.keys.api_key(&hash_token(token)).await {
            Ok(key) => Ok(Some(Caller {
                tenant: key.tenant,
                tier: key.tier,
                key_hash: key.hash,
            })),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an API key for `tenant` of `tier`.
    ///
    /// # Errors
    /// Port errors.
    pub async fn issue_api_key(
        &self,
        tenant: &TenantId,
        tier: Tier,
    ) -> Result<IssuedKey, PipelineError> {
        Ok(crate::auth::issue_api_key(
            self.keys.as_ref(),
            self.secrets.as_ref(),
            tenant,
            tier,
            self.clock.now(),
        )
        .await?)
    }

    /// The tenant's webhook signing secret (made now when it has none).
    ///
    /// # Errors
    /// Port errors.
    pub async fn webhook_secret(&self, tenant: &TenantId) -> Result<String, PipelineError> {
        Ok(self
            .secrets
            .webhook_secret(tenant, &crate::webhook::generate_secret())
            .await?)
    }

    /// Resolves an evaluator spec (`name`, `name@version`, `name@range`) to
    /// the exact version a job pins.
    ///
    /// # Errors
    /// A `Configuration` failure naming what is unknown.
    pub async fn resolve_evaluator(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.evaluators.resolve(spec).await
    }

    /// Whether callbacks may go to `url`.
    ///
    /// # Errors
    /// [`WebhookError::NotAllowed`] saying why not.
    pub async fn check_webhook_url(&self, url: &str) -> Result<(), WebhookError> {
        self.webhooks.check(url).await
    }

    /// Work items waiting in every work queue, measured at most once per
    /// [`DEPTH_TTL`] per process.
    async fn waiting_items(&self) -> Result<u64, PipelineError> {
        if let Some(depth) = self.queue_depth.within(DEPTH_TTL) {
            return Ok(depth);
        }
        let mut depth = 0;
        for priority in crate::model::Priority::ALL {
            depth += self.queue.depth(QueueName::Work(priority)).await?.visible;
        }
        self.queue_depth.keep(depth);
        Ok(depth)
    }

    /// Admits one new batch of `caller`, or says which limit stops it.
    ///
    /// # Errors
    /// [`PipelineError::Refused`]; port errors.
    async fn admit(&self, caller: &Caller) -> Result<(), PipelineError> {
        let limits = caller.tier.limits();
        let mut active = 0;
        for status in [JobStatus::Queued, JobStatus::Processing] {
            let filter = JobFilter {
                status: Some(status),
                limit: limits.concurrent_jobs,
                ..JobFilter::default()
            };
            active += self.jobs.list_jobs(&caller.tenant, &filter).await?.len();
        }
        if active >= limits.concurrent_jobs {
            return Err(PipelineError::Refused(Refusal::TooManyJobs {
                message: format!(
                    "the {} tier allows {} jobs queued or processing at once; wait for one to finish",
                    caller.tier.as_str(),
                    limits.concurrent_jobs
                ),
                retry_after: BUSY_RETRY,
            }));
        }
        if let Some(max) = self.settings.max_queue_depth {
            let depth = self.waiting_items().await?;
            if depth >= max {
                return Err(PipelineError::Refused(Refusal::Overloaded {
                    message: format!(
                        "{depth} work items are waiting (the limit is {max}); new batches are refused until the queues drain"
                    ),
                    retry_after: BUSY_RETRY,
                }));
            }
        }
        let bucket = format!("uploads:{}", caller.key_hash);
        match self
            .rate_limits
            .take_token(&bucket, limits.uploads, self.clock.now())
            .await?
        {
            Grant::Granted { .. } => Ok(()),
            Grant::Denied { retry_after } => Err(PipelineError::Refused(Refusal::RateLimited {
                message: format!(
                    "the {} tier allows {} batches a minute (bursts of {}); retry after the delay",
                    caller.tier.as_str(),
                    limits.uploads.per_minute,
                    limits.uploads.burst
                ),
                retry_after,
            })),
        }
    }

    /// Admits and submits a batch of `caller`'s. Under a fixed job id it
    /// does so once: a repeated call finds the job, spends no quota, and
    /// of two concurrent calls one creates it. A job found with its
    /// intake open — its first upload died while reading it in (a server
    /// killed mid-request) or is still reading — is read in again from
    /// the repeated call's documents ([`OpenIntake::reopen`]), so the
    /// retry completes it: windows counted already are passed over, and
    /// when the first upload is still reading, whichever of the two is
    /// behind stops at its next window (it returns the job).
    ///
    /// # Errors
    /// [`PipelineError::Refused`]; as [`Pipeline::submit`];
    /// [`PipelineError::Invalid`] when a repeated call's documents are not
    /// those the job counted.
    pub async fn submit_admitted(
        &self,
        caller: &Caller,
        mut submission: Submission,
    ) -> Result<Job, PipelineError> {
        submission.options.fair_share = caller.tier.fair_share();
        if let Some(id) = &submission.job_id {
            match self.jobs.job(id).await {
                Ok(existing) if existing.counters.intake_open => {
                    return self.read_again(existing, submission.documents).await;
                }
                Ok(existing) => return Ok(existing),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.admit(caller).await?;
        let id = submission.job_id.clone();
        match (self.submit(submission).await, id) {
            (Ok(job), _) => Ok(job),
            (Err(PipelineError::Store(StoreError::Conflict(_))), Some(id)) => {
                Ok(self.jobs.job(&id).await?)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The open intake of `job` read in again from `documents` and closed
    /// (see [`Pipeline::submit_admitted`]); another reader ahead of this
    /// one leaves the job to it.
    async fn read_again(
        &self,
        job: Job,
        documents: Vec<IntakeDocument>,
    ) -> Result<Job, PipelineError> {
        // The first upload was checked; its repeat must be too, or the
        // windows it reads in past the counted ones could repeat an id.
        super::submit::check_batch(&documents)?;
        let id = job.id.clone();
        tracing::info!(job_id = %id, documents = job.counters.documents_total, "an upload repeated while its job's intake is open: read in again");
        match OpenIntake::reopen(self, job).read_in(documents).await {
            Err(PipelineError::Store(StoreError::Conflict(_))) => Ok(self.jobs.job(&id).await?),
            result => result,
        }
    }
}
