//! The pipeline steps, written once against the ports: submit a batch,
//! process deliveries of work items, finalize a job, cancel it, and record
//! dead-lettered items. Lambda functions and the local runner only wire
//! these to their event sources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::aggregate::{self, DocumentStatus, ResultsDocument};
use crate::chunking;
use crate::evaluation::{Evaluation, Score, default_merge};
use crate::failure::{Failure, FailureCategory, RetryDecision, RetryPolicy};
use crate::model::{
    BodyRef, DocumentSpec, EvaluatorRef, ItemOutcome, ItemResult, Job, JobCounters, JobId,
    JobOptions, JobStatus, RejectedDocument, TenantId, WorkItem,
};
use crate::ports::{
    BlobError, BlobStore, Clock, Delivery, EvaluationRequest, Evaluators, JobStore,
    OutgoingMessage, QueueError, QueueName, StoreError, WebhookError, WebhookRequest,
    WebhookSender, WorkQueue,
};
use crate::webhook::{WebhookDelivery, WebhookState};

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
        }
    }
}

/// Errors of the pipeline steps.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The submission is not acceptable; nothing was stored.
    #[error("invalid submission: {0}")]
    Invalid(String),
    /// A queue operation failed.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// A blob operation failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// A job store operation failed.
    #[error("job store: {0}")]
    Store(#[from] StoreError),
}

impl PipelineError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            PipelineError::Invalid(_) => FailureCategory::Data,
            PipelineError::Queue(e) => e.category(),
            PipelineError::Blob(e) => e.category(),
            PipelineError::Store(e) => e.category(),
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
}

impl IntakeDocument {
    fn id(&self) -> &str {
        match self {
            IntakeDocument::Accepted(d) => &d.id,
            IntakeDocument::Rejected(d) => &d.id,
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

/// What a recovery job of a finished job's failed documents holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Failed documents whose text was read back.
    pub documents: Vec<DocumentSpec>,
    /// Failed documents that cannot be retried (no stored text), with why
    /// they failed.
    pub not_retried: Vec<(String, String)>,
}

/// What [`Pipeline::finalize`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FinalizeOutcome {
    /// This call finalized the job.
    Finalized(Box<Job>),
    /// Another call did already.
    AlreadyFinalized,
    /// Items are still pending; try again later.
    NotReady {
        /// How many.
        pending: u32,
    },
}

/// Key of a job's `results.json`.
pub fn results_key(job: &JobId) -> String {
    format!("results/{job}/results.json")
}

/// Key of a job's `documents.jsonl`.
pub fn documents_key(job: &JobId) -> String {
    format!("results/{job}/documents.jsonl")
}

fn pack_key(job: &JobId, n: usize) -> String {
    format!("documents/{job}/pack-{n:05}")
}

/// Deterministic jitter in `[0, 1)` from a message id and attempt: spreads
/// retries without a random source in the core.
fn jitter(message_id: &str, attempt: u32) -> f64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (message_id, attempt).hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pipeline over a set of ports.
#[derive(Clone)]
pub struct Pipeline {
    /// Work, finalize and webhook queues.
    pub queue: Arc<dyn WorkQueue>,
    /// Document bodies and results.
    pub blobs: Arc<dyn BlobStore>,
    /// Jobs and outcomes.
    pub store: Arc<dyn JobStore>,
    /// The evaluator runtime.
    pub evaluators: Arc<dyn Evaluators>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Tunables.
    pub settings: PipelineSettings,
    /// What this process's processors recorded.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Sends job-finished callbacks.
    pub webhooks: Arc<dyn WebhookSender>,
}

impl Pipeline {
    /// Accepts a batch: splits documents into work items, stores their text
    /// in packs, creates the job, records intake rejections as failed and
    /// enqueues one message per item (in batched sends).
    ///
    /// # Errors
    /// [`PipelineError::Invalid`] for an empty batch or duplicate document
    /// ids (nothing stored); port errors otherwise.
    pub async fn submit(&self, submission: Submission) -> Result<Job, PipelineError> {
        if submission.documents.is_empty() {
            return Err(PipelineError::Invalid("the batch has no documents".into()));
        }
        let mut seen = HashSet::new();
        for (n, document) in submission.documents.iter().enumerate() {
            if !seen.insert(document.id()) {
                return Err(PipelineError::Invalid(format!(
                    "documents[{n}].id: duplicate id {:?}",
                    document.id()
                )));
            }
        }
        let job_id = submission.job_id.clone().unwrap_or_else(JobId::generate);
        let mut packs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut items = Vec::new();
        let mut rejected = Vec::new();
        let mut next_item = 0u32;
        for (document_index, document) in submission.documents.iter().enumerate() {
            let document_index = document_index as u32;
            match document {
                IntakeDocument::Accepted(spec) => {
                    for chunk in chunking::plan(&spec.body, &submission.options.chunking) {
                        let current = packs.last_mut().expect("packs start non-empty");
                        if !current.is_empty()
                            && current.len() + chunk.text.len() > self.settings.pack_bytes
                        {
                            packs.push(Vec::new());
                        }
                        let pack_index = packs.len() - 1;
                        let pack = &mut packs[pack_index];
                        let body = BodyRef {
                            key: pack_key(&job_id, pack_index),
                            offset: pack.len() as u64,
                            len: chunk.text.len() as u64,
                        };
                        pack.extend_from_slice(chunk.text.as_bytes());
                        items.push(WorkItem {
                            job_id: job_id.clone(),
                            item: next_item,
                            document: document_index,
                            document_id: spec.id.clone(),
                            title: spec.title.clone(),
                            metadata: spec.metadata.clone(),
                            chunk: chunk.info,
                            body,
                        });
                        next_item += 1;
                    }
                }
                IntakeDocument::Rejected(doc) => {
                    rejected.push(ItemOutcome {
                        item: next_item,
                        document: document_index,
                        document_id: doc.id.clone(),
                        title: doc.title.clone(),
                        chunk: crate::model::ChunkInfo::WHOLE,
                        bytes: 0,
                        body: None,
                        metadata: serde_json::Value::Null,
                        result: ItemResult::Failed {
                            failure: doc.failure.clone(),
                            seconds: 0.0,
                        },
                    });
                    next_item += 1;
                }
            }
        }
        for (n, pack) in packs.into_iter().enumerate() {
            if !pack.is_empty() {
                self.blobs.put(&pack_key(&job_id, n), pack).await?;
            }
        }
        let now = self.clock.now();
        let job = Job {
            id: job_id.clone(),
            tenant: submission.tenant,
            status: JobStatus::Queued,
            evaluator: submission.evaluator,
            config: submission.config,
            options: submission.options,
            counters: JobCounters {
                documents_total: submission.documents.len() as u32,
                items_total: next_item,
                ..JobCounters::default()
            },
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            webhook: None,
        };
        self.store.create_job(&job).await?;
        let queue = QueueName::Work(job.options.priority);
        let messages = items
            .iter()
            .map(|item| OutgoingMessage::new(serde_json::to_string(item).unwrap_or_default()))
            .collect();
        if let Err(error) = self.queue.send(queue, messages).await {
            // Without its messages the job would wait forever: fail it now
            // (items already sent find it finalized and are skipped).
            let reason = format!("work items could not be queued: {error}");
            if let Err(e) = self
                .store
                .finish_job(&job_id, JobStatus::Failed, Some(&reason), now)
                .await
            {
                tracing::error!(%job_id, error = %e, "job left queued without its work items");
            }
            return Err(error.into());
        }
        if !rejected.is_empty() {
            let receipt = self.store.record_outcomes(&job_id, &rejected, now).await?;
            self.after_record(
                &job_id,
                &job.options,
                &receipt.counters,
                receipt.completed_job,
            )
            .await?;
        }
        Ok(self.store.job(&job_id).await?)
    }

    /// Processes a batch of work-item deliveries and says what to do with
    /// each (same order). Never fails the whole batch: a message that cannot
    /// be handled gets `Keep` or `RetryAfter` on its own, and its neighbours'
    /// outcomes are still recorded. Bodies are read first, the batch is
    /// evaluated in one call, and outcomes are recorded with one store call
    /// per job.
    pub async fn process(&self, deliveries: &[Delivery]) -> Vec<Disposition> {
        let mut dispositions = vec![Disposition::Keep; deliveries.len()];
        let mut jobs: HashMap<JobId, Option<(Job, Arc<serde_json::Value>)>> = HashMap::new();
        let mut decided: Vec<(usize, WorkItem, ItemResult)> = Vec::new();
        let mut evaluating: Vec<(usize, WorkItem, f64)> = Vec::new();
        let mut to_load: Vec<(usize, WorkItem, EvaluatorRef, Arc<serde_json::Value>)> = Vec::new();
        let mut requests = Vec::new();
        for (n, delivery) in deliveries.iter().enumerate() {
            let item: WorkItem = match serde_json::from_str(&delivery.body) {
                Ok(item) => item,
                Err(e) => {
                    tracing::error!(message_id = %delivery.message_id, error = %e, "malformed work message left for the dead-letter queue");
                    continue;
                }
            };
            if !jobs.contains_key(&item.job_id) {
                let job = match self.store.job(&item.job_id).await {
                    Ok(job) => {
                        let config = Arc::new(job.config.clone());
                        Some((job, config))
                    }
                    Err(StoreError::NotFound(_)) => None,
                    Err(e) => {
                        tracing::warn!(job_id = %item.job_id, error = %e, "job not readable; message kept");
                        continue;
                    }
                };
                jobs.insert(item.job_id.clone(), job);
            }
            let Some(Some((job, config))) = jobs.get(&item.job_id) else {
                tracing::warn!(job_id = %item.job_id, "work item of an unknown job dropped");
                dispositions[n] = Disposition::Done;
                continue;
            };
            if job.skips_items() {
                let reason = match (&job.error, job.status) {
                    (Some(error), _) => format!("job failing: {error}"),
                    (None, JobStatus::Cancelled) => "job cancelled".to_owned(),
                    _ => "job already finalized".to_owned(),
                };
                decided.push((n, item, ItemResult::Skipped { reason }));
                continue;
            }
            if delivery.receive_count > self.settings.retry.max_receives {
                let failure = Failure::new(
                    FailureCategory::Permanent,
                    format!(
                        "gave up after {} deliveries without a recorded outcome",
                        delivery.receive_count - 1
                    ),
                );
                decided.push((
                    n,
                    item,
                    ItemResult::Failed {
                        failure,
                        seconds: 0.0,
                    },
                ));
                continue;
            }
            to_load.push((n, item, job.evaluator.clone(), config.clone()));
        }
        let started = Instant::now();
        let bodies: Vec<&BodyRef> = to_load.iter().map(|(_, item, _, _)| &item.body).collect();
        let texts = self.load_texts(&bodies).await;
        let load_seconds = started.elapsed().as_secs_f64() / texts.len().max(1) as f64;
        for ((n, item, evaluator, config), text) in to_load.into_iter().zip(texts) {
            match text {
                Ok(content) => {
                    requests.push(EvaluationRequest {
                        evaluator,
                        id: item.document_id.clone(),
                        title: item.title.clone(),
                        content,
                        metadata: item.metadata.clone(),
                        chunk: item.chunk,
                        config,
                    });
                    evaluating.push((n, item, load_seconds));
                }
                Err(failure) => {
                    if let Some(result) = self.give_up_or_retry(
                        &deliveries[n],
                        &item,
                        failure,
                        load_seconds,
                        &mut dispositions[n],
                    ) {
                        decided.push((n, item, result));
                    }
                }
            }
        }
        let reports = self.evaluators.evaluate(requests).await;
        for ((n, item, load_seconds), report) in evaluating.into_iter().zip(reports) {
            match report {
                Ok(report) => {
                    let mut evaluation = report.evaluation;
                    evaluation.rebase(item.chunk.offset);
                    let seconds = load_seconds + report.usage.seconds;
                    decided.push((
                        n,
                        item,
                        ItemResult::Succeeded {
                            evaluation,
                            seconds,
                        },
                    ));
                }
                Err(failure) => {
                    if let Some(result) = self.give_up_or_retry(
                        &deliveries[n],
                        &item,
                        failure,
                        load_seconds,
                        &mut dispositions[n],
                    ) {
                        decided.push((n, item, result));
                    }
                }
            }
        }
        let mut by_job: BTreeMap<JobId, Vec<(usize, ItemOutcome)>> = BTreeMap::new();
        for (n, item, result) in decided {
            by_job
                .entry(item.job_id.clone())
                .or_default()
                .push((n, ItemOutcome::of(&item, result)));
        }
        for (job_id, entries) in by_job {
            let Some(Some((job, _))) = jobs.get(&job_id) else {
                continue;
            };
            let outcomes: Vec<ItemOutcome> = entries.iter().map(|(_, o)| o.clone()).collect();
            let settled = match self.record(job, &outcomes).await {
                Ok(Ok(())) => Disposition::Done,
                Ok(Err(e)) => {
                    // Outcomes are recorded; redelivery finds them recorded
                    // and sends the finalize message again.
                    tracing::warn!(%job_id, error = %e, "finalize message not sent; items kept for redelivery");
                    Disposition::Keep
                }
                Err(e) => {
                    tracing::warn!(%job_id, error = %e, "outcomes not recorded; items retried");
                    match self.settings.retry.decide(e.category(), 1, 0.5) {
                        RetryDecision::RetryAfter(delay) => Disposition::RetryAfter(delay),
                        RetryDecision::GiveUp => Disposition::Keep,
                    }
                }
            };
            for (n, _) in entries {
                dispositions[n] = settled;
            }
        }
        dispositions
    }

    /// Applies the retry policy to a failed delivery: sets a retry
    /// disposition and returns `None`, or returns the failed result to
    /// record.
    fn give_up_or_retry(
        &self,
        delivery: &Delivery,
        item: &WorkItem,
        failure: Failure,
        seconds: f64,
        disposition: &mut Disposition,
    ) -> Option<ItemResult> {
        let decision = self.settings.retry.decide(
            failure.category,
            delivery.receive_count,
            jitter(&delivery.message_id, delivery.receive_count),
        );
        match decision {
            RetryDecision::RetryAfter(delay) => {
                tracing::info!(job_id = %item.job_id, document_id = %item.document_id, item = item.item, %failure, ?delay, "retrying work item");
                *disposition = Disposition::RetryAfter(delay);
                None
            }
            RetryDecision::GiveUp => {
                tracing::info!(job_id = %item.job_id, document_id = %item.document_id, item = item.item, %failure, "work item failed");
                Some(ItemResult::Failed { failure, seconds })
            }
        }
    }

    /// Reads the texts of `bodies`, one ranged read per blob: items of a
    /// batch usually share a pack, so a batch costs a read or two, not one
    /// per item.
    async fn load_texts(&self, bodies: &[&BodyRef]) -> Vec<Result<String, Failure>> {
        let mut texts: Vec<Option<Result<String, Failure>>> = vec![None; bodies.len()];
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, body) in bodies.iter().enumerate() {
            by_key.entry(body.key.as_str()).or_default().push(n);
        }
        for (key, members) in by_key {
            let start = members.iter().map(|&n| bodies[n].offset).min().unwrap_or(0);
            let end = members
                .iter()
                .map(|&n| bodies[n].offset + bodies[n].len)
                .max()
                .unwrap_or(0);
            let read = self
                .blobs
                .get_range(key, start, end - start)
                .await
                .map_err(|e| {
                    Failure::new(e.category(), format!("reading the document's text: {e}"))
                });
            for n in members {
                texts[n] = Some(read.as_ref().map_err(Clone::clone).and_then(|bytes| {
                    let from = (bodies[n].offset - start) as usize;
                    let text = &bytes[from..from + bodies[n].len as usize];
                    String::from_utf8(text.to_vec()).map_err(|e| {
                        Failure::new(
                            FailureCategory::Data,
                            format!("document text is not UTF-8: {e}"),
                        )
                    })
                }));
            }
        }
        texts
            .into_iter()
            .map(|t| {
                t.unwrap_or_else(|| Err(Failure::new(FailureCategory::Permanent, "text not read")))
            })
            .collect()
    }

    /// Records `outcomes` of `job` in one store call, then sends the finalize
    /// message when this call recorded the job's last item — or recorded
    /// nothing new (a duplicate delivery) and found every item done but the
    /// job not finalized, which covers a finalize message lost after an
    /// earlier recording — and trips the failure threshold.
    ///
    /// # Errors
    /// The outer error: nothing was recorded. The inner one: the outcomes
    /// are recorded but the follow-up failed.
    async fn record(
        &self,
        job: &Job,
        outcomes: &[ItemOutcome],
    ) -> Result<Result<(), PipelineError>, StoreError> {
        let now = self.clock.now();
        let receipt = self.store.record_outcomes(&job.id, outcomes, now).await?;
        let recorded: HashSet<u32> = receipt.recorded.iter().copied().collect();
        self.metrics
            .record(outcomes.iter().filter(|o| recorded.contains(&o.item)), now);
        let unfinalized_and_done = receipt.recorded.is_empty()
            && receipt.counters.items_pending() == 0
            && job.finished_at.is_none();
        Ok(self
            .after_record(
                &job.id,
                &job.options,
                &receipt.counters,
                receipt.completed_job || unfinalized_and_done,
            )
            .await)
    }

    /// After outcomes are recorded: send the finalize message when asked and
    /// trip the failure threshold when it is passed.
    async fn after_record(
        &self,
        job_id: &JobId,
        options: &JobOptions,
        counters: &JobCounters,
        send_finalize: bool,
    ) -> Result<(), PipelineError> {
        if counters.exceeds_failure_threshold(options.tolerated_failure_percent) {
            let reason = format!(
                "failure threshold exceeded: {} of {} documents failed (tolerated {}%)",
                counters.documents_failed,
                counters.documents_total,
                options.tolerated_failure_percent
            );
            if self.store.halt_job(job_id, &reason).await? {
                tracing::warn!(%job_id, %reason, "job failing fast");
            }
        }
        if send_finalize {
            let message = FinalizeMessage {
                job_id: job_id.clone(),
            };
            self.queue
                .send(
                    QueueName::Finalize,
                    vec![OutgoingMessage::new(
                        serde_json::to_string(&message).unwrap_or_default(),
                    )],
                )
                .await?;
        }
        Ok(())
    }

    /// Finalizes a job whose items all have outcomes: merges chunks per
    /// document, summarizes, writes `results.json` and `documents.jsonl`,
    /// then moves the job to its final status by a conditional change that
    /// only one caller wins; the winner enqueues the webhook.
    ///
    /// # Errors
    /// Port errors; the finalize message should then be retried.
    pub async fn finalize(&self, job_id: &JobId) -> Result<FinalizeOutcome, PipelineError> {
        let job = self.store.job(job_id).await?;
        if job.finished_at.is_some() {
            // The finalizer that won may have stopped before queueing the
            // callback: queue it now (the receiver drops a duplicate by its
            // webhook-id).
            if job.options.webhook_url.is_some() && job.webhook.is_none() {
                self.enqueue_webhook(&job).await?;
            }
            return Ok(FinalizeOutcome::AlreadyFinalized);
        }
        let pending = job.counters.items_pending();
        if pending > 0 {
            return Ok(FinalizeOutcome::NotReady { pending });
        }
        let started = Instant::now();
        let outcomes = self.store.outcomes(job_id).await?;
        tracing::debug!(%job_id, seconds = started.elapsed().as_secs_f64(), "outcomes read");
        let mut merged: HashMap<u32, Result<Evaluation, Failure>> = HashMap::new();
        for (document, chunks) in aggregate::mergeable_documents(&outcomes) {
            let evaluations: Vec<Evaluation> =
                chunks.iter().map(|c| c.evaluation.clone()).collect();
            let result = self
                .evaluators
                .merge_chunks(&job.evaluator, evaluations)
                .await
                .map(|own| own.unwrap_or_else(|| default_merge(&chunks)));
            merged.insert(document, result);
        }
        let documents = aggregate::assemble_documents(outcomes, |document, chunks| {
            merged
                .remove(&document)
                .unwrap_or_else(|| Ok(default_merge(chunks)))
        });
        // The batch summary hook sees each completed document's scores and
        // labels: what a batch summary is made of, small for any job size.
        let evaluations: Vec<Evaluation> = documents
            .iter()
            .filter(|d| d.status == DocumentStatus::Completed)
            .map(|d| Evaluation {
                scores: d
                    .scores
                    .iter()
                    .map(|(name, s)| Score {
                        name: name.clone(),
                        value: s.total_score,
                        max: s.max_score,
                    })
                    .collect(),
                findings: Vec::new(),
                labels: d.labels.clone(),
                data: serde_json::Value::Null,
            })
            .collect();
        let evaluator_summary = match self.evaluators.summarize(&job.evaluator, evaluations).await {
            Ok(summary) => summary,
            Err(failure) => {
                tracing::warn!(%job_id, %failure, "evaluator summary failed; summary written without it");
                None
            }
        };
        let summary = aggregate::summarize(&documents, evaluator_summary);
        let (status, error) = aggregate::final_status(&job, &summary);
        let now = self.clock.now();
        let results = ResultsDocument {
            job_id: job.id.clone(),
            status,
            document_count: job.counters.documents_total,
            evaluator: job.evaluator.clone(),
            created_at: job.created_at,
            finished_at: now,
            error: error.clone(),
            summary,
            documents,
        };
        let (json, jsonl) = results.to_json_and_jsonl();
        self.blobs
            .put(&documents_key(job_id), jsonl.into_bytes())
            .await?;
        self.blobs
            .put(&results_key(job_id), json.into_bytes())
            .await?;
        let finished = match self
            .store
            .finish_job(job_id, status, error.as_deref(), now)
            .await
        {
            Ok(job) => job,
            Err(StoreError::Conflict(_)) => return Ok(FinalizeOutcome::AlreadyFinalized),
            Err(e) => return Err(e.into()),
        };
        if finished.options.webhook_url.is_some() {
            self.enqueue_webhook(&finished).await?;
        }
        tracing::info!(%job_id, status = %finished.status, seconds = started.elapsed().as_secs_f64(), "job finalized");
        Ok(FinalizeOutcome::Finalized(Box::new(finished)))
    }

    /// Cancels a job: its remaining items are skipped and the finalizer
    /// still writes the partial results.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (as [`PipelineError::Store`]) when the job is
    /// already finished or cancelled; [`StoreError::NotFound`].
    pub async fn cancel(&self, job_id: &JobId) -> Result<Job, PipelineError> {
        let job = self
            .store
            .transition(
                job_id,
                &JobStatus::sources_of(JobStatus::Cancelled),
                JobStatus::Cancelled,
            )
            .await?;
        if job.counters.items_pending() == 0 && job.finished_at.is_none() {
            self.after_record(job_id, &job.options, &job.counters, true)
                .await?;
        }
        Ok(job)
    }

    /// The failed documents of a finished job, read back from where their
    /// text was stored, ready to submit as a recovery job (same evaluator,
    /// configuration and options). Documents that never had a stored text
    /// (rejected at intake: empty, unreadable) cannot be retried and are
    /// listed apart with their reason.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (as [`PipelineError::Store`]) when the job
    /// is not finished; port errors.
    pub async fn recovery(&self, job: &Job) -> Result<Recovery, PipelineError> {
        if job.finished_at.is_none() {
            return Err(StoreError::Conflict(format!(
                "job {} is {}; only a finished job can be retried",
                job.id, job.status
            ))
            .into());
        }
        let outcomes = self.store.outcomes(&job.id).await?;
        let mut by_document: BTreeMap<u32, Vec<&ItemOutcome>> = BTreeMap::new();
        for outcome in &outcomes {
            by_document
                .entry(outcome.document)
                .or_default()
                .push(outcome);
        }
        by_document.retain(|_, chunks| {
            chunks
                .iter()
                .any(|c| matches!(c.result, ItemResult::Failed { .. }))
        });
        let mut packs: HashMap<&str, Vec<u8>> = HashMap::new();
        let mut recovery = Recovery::default();
        for chunks in by_document.values_mut() {
            chunks.sort_by_key(|c| c.chunk.index);
            let first = chunks[0];
            let stored =
                chunks.len() as u32 == first.chunk.count && chunks.iter().all(|c| c.body.is_some());
            if !stored {
                let reason = chunks
                    .iter()
                    .find_map(|c| match &c.result {
                        ItemResult::Failed { failure, .. } => Some(failure.to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                recovery
                    .not_retried
                    .push((first.document_id.clone(), reason));
                continue;
            }
            let mut pieces = Vec::with_capacity(chunks.len());
            for chunk in chunks.iter() {
                let Some(body) = &chunk.body else { continue };
                if !packs.contains_key(body.key.as_str()) {
                    packs.insert(&body.key, self.blobs.get(&body.key).await?);
                }
                let pack = &packs[body.key.as_str()];
                let range = body.offset as usize..(body.offset + body.len) as usize;
                let text = pack
                    .get(range)
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .ok_or_else(|| BlobError::NotFound(body.key.clone()))?;
                pieces.push((chunk.chunk, text));
            }
            recovery.documents.push(DocumentSpec {
                id: first.document_id.clone(),
                title: first.title.clone(),
                body: chunking::reassemble(&pieces),
                metadata: first.metadata.clone(),
            });
        }
        Ok(recovery)
    }

    /// Queues the finished job's callback and marks it pending.
    async fn enqueue_webhook(&self, job: &Job) -> Result<(), PipelineError> {
        let message = WebhookMessage {
            job_id: job.id.clone(),
        };
        self.queue
            .send(
                QueueName::Webhook,
                vec![OutgoingMessage::new(
                    serde_json::to_string(&message).unwrap_or_default(),
                )],
            )
            .await?;
        let pending = WebhookDelivery {
            state: WebhookState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            updated_at: self.clock.now(),
        };
        self.store.set_webhook(&job.id, &pending).await?;
        Ok(())
    }

    /// Delay before callback attempt `attempt + 1`: the backoff doubled per
    /// attempt, capped at 15 minutes, half of it jittered.
    fn webhook_delay(&self, message_id: &str, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .webhook_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(Duration::from_secs(15 * 60));
        ceiling.mul_f64(0.5 + 0.5 * jitter(message_id, attempt))
    }

    /// One attempt at a job's callback: signed with the tenant's secret,
    /// sent, and its outcome kept on the job.
    pub async fn deliver_webhook(&self, delivery: &Delivery) -> Result<Disposition, PipelineError> {
        let message: WebhookMessage = match serde_json::from_str(&delivery.body) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "malformed webhook message left for the dead-letter queue");
                return Ok(Disposition::Keep);
            }
        };
        let job = match self.store.job(&message.job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound(_)) => return Ok(Disposition::Done),
            Err(e) => return Err(e.into()),
        };
        let job_id = &job.id;
        let (Some(url), Some(_)) = (&job.options.webhook_url, job.finished_at) else {
            return Ok(Disposition::Done);
        };
        if let Some(done) = &job.webhook
            && done.state != WebhookState::Pending
        {
            // Delivered, or given up and waiting for the dead-letter queue.
            return Ok(if done.state == WebhookState::Delivered {
                Disposition::Done
            } else {
                Disposition::Keep
            });
        }
        let now = self.clock.now();
        let secret = self
            .store
            .webhook_secret(&job.tenant, &crate::webhook::generate_secret())
            .await?;
        let body = crate::webhook::event_body(&job, now);
        let id = crate::webhook::message_id(&job);
        let headers = match crate::webhook::signed_headers(&secret, &id, now.timestamp(), &body) {
            Ok(headers) => headers,
            Err(e) => {
                tracing::error!(%job_id, error = %e, "the tenant's webhook secret is unusable");
                return Ok(Disposition::Keep);
            }
        };
        let attempt = delivery.receive_count;
        let request = WebhookRequest {
            url: url.clone(),
            headers,
            body,
        };
        let (state, status, error, disposition) = match self.webhooks.send(request).await {
            Ok(status) => (
                WebhookState::Delivered,
                Some(status),
                None,
                Disposition::Done,
            ),
            Err(WebhookError::NotAllowed(reason)) => (
                WebhookState::Failed,
                None,
                Some(format!("webhook URL not allowed: {reason}")),
                Disposition::Done,
            ),
            Err(WebhookError::Failed { status, message }) => {
                if attempt >= self.settings.webhook_attempts {
                    (
                        WebhookState::Failed,
                        status,
                        Some(message),
                        Disposition::Keep,
                    )
                } else {
                    let delay = self.webhook_delay(&delivery.message_id, attempt);
                    (
                        WebhookState::Pending,
                        status,
                        Some(message),
                        Disposition::RetryAfter(delay),
                    )
                }
            }
        };
        match state {
            WebhookState::Delivered => tracing::info!(%job_id, attempt, "webhook delivered"),
            WebhookState::Pending => {
                tracing::warn!(%job_id, attempt, error = ?error, "webhook attempt failed; retried")
            }
            WebhookState::Failed => {
                tracing::warn!(%job_id, attempt, error = ?error, "webhook given up")
            }
        }
        let record = WebhookDelivery {
            state,
            attempts: attempt,
            last_status: status,
            last_error: error,
            updated_at: now,
        };
        self.store.set_webhook(job_id, &record).await?;
        Ok(disposition)
    }

    /// One round of a webhook sender: receives callbacks, delivers and
    /// settles them. Returns how many it handled.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn deliver_webhooks_once(&self) -> Result<usize, PipelineError> {
        let queue = QueueName::Webhook;
        let deliveries = self
            .queue
            .receive(queue, self.settings.receive_batch, self.settings.visibility)
            .await?;
        let mut dispositions = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            dispositions.push(match self.deliver_webhook(delivery).await {
                Ok(disposition) => disposition,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook not attempted; retried");
                    Disposition::Keep
                }
            });
        }
        self.settle(queue, &deliveries, &dispositions).await?;
        Ok(deliveries.len())
    }

    /// Marks the callbacks of dead-lettered webhook messages failed (unless
    /// one attempt got through).
    async fn drain_dead_webhooks(&self, deliveries: &[Delivery]) -> Result<(), PipelineError> {
        for delivery in deliveries {
            if let Ok(message) = serde_json::from_str::<WebhookMessage>(&delivery.body)
                && let Ok(job) = self.store.job(&message.job_id).await
            {
                let mut record = job.webhook.unwrap_or(WebhookDelivery {
                    state: WebhookState::Failed,
                    attempts: delivery.receive_count,
                    last_status: None,
                    last_error: None,
                    updated_at: self.clock.now(),
                });
                if record.state == WebhookState::Pending {
                    record.state = WebhookState::Failed;
                    record.last_error = Some(format!(
                        "dead-lettered after {} deliveries: {}",
                        delivery.receive_count,
                        record
                            .last_error
                            .as_deref()
                            .unwrap_or("no attempt was recorded")
                    ));
                    record.updated_at = self.clock.now();
                    self.store.set_webhook(&job.id, &record).await?;
                }
            }
        }
        Ok(())
    }

    /// Applies `dispositions` to `deliveries` of `queue`: acks the done ones
    /// in one call, sets the visibility of the retried ones.
    ///
    /// # Errors
    /// Queue errors (unsettled messages simply come back).
    pub async fn settle(
        &self,
        queue: QueueName,
        deliveries: &[Delivery],
        dispositions: &[Disposition],
    ) -> Result<(), QueueError> {
        let done: Vec<_> = deliveries
            .iter()
            .zip(dispositions)
            .filter(|(_, d)| **d == Disposition::Done)
            .map(|(delivery, _)| delivery.receipt.clone())
            .collect();
        if !done.is_empty() {
            self.queue.ack(queue, &done).await?;
        }
        for (delivery, disposition) in deliveries.iter().zip(dispositions) {
            if let Disposition::RetryAfter(delay) = disposition {
                self.queue
                    .retry_after(queue, &delivery.receipt, *delay)
                    .await?;
            }
        }
        Ok(())
    }

    /// One round of a processor: receives a batch from the highest-priority
    /// work queue that has messages, processes and settles it. Returns how
    /// many messages it handled (0 when every queue was empty).
    ///
    /// # Errors
    /// Queue errors.
    pub async fn work_once(&self) -> Result<usize, PipelineError> {
        for priority in crate::model::Priority::ALL {
            let queue = QueueName::Work(priority);
            let deliveries = self
                .queue
                .receive(queue, self.settings.receive_batch, self.settings.visibility)
                .await?;
            if deliveries.is_empty() {
                continue;
            }
            let dispositions = self.process(&deliveries).await;
            self.settle(queue, &deliveries, &dispositions).await?;
            return Ok(deliveries.len());
        }
        Ok(0)
    }

    /// Finalizes the job a finalize message names, and says what to do
    /// with the message.
    pub async fn finalize_delivery(&self, delivery: &Delivery) -> Disposition {
        match serde_json::from_str::<FinalizeMessage>(&delivery.body) {
            Err(e) => {
                tracing::error!(error = %e, "malformed finalize message left for the dead-letter queue");
                Disposition::Keep
            }
            Ok(message) => match self.finalize(&message.job_id).await {
                Ok(FinalizeOutcome::Finalized(_) | FinalizeOutcome::AlreadyFinalized) => {
                    Disposition::Done
                }
                Err(PipelineError::Store(StoreError::NotFound(_))) => Disposition::Done,
                Ok(FinalizeOutcome::NotReady { .. }) => {
                    Disposition::RetryAfter(Duration::from_secs(1))
                }
                Err(e) => {
                    tracing::warn!(job_id = %message.job_id, error = %e, "finalize failed; retried");
                    Disposition::Keep
                }
            },
        }
    }

    /// One round of a finalizer: receives finalize messages and finalizes
    /// their jobs. Returns how many messages it handled.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn finalize_once(&self) -> Result<usize, PipelineError> {
        let queue = QueueName::Finalize;
        let deliveries = self
            .queue
            .receive(queue, 10, self.settings.visibility)
            .await?;
        let mut dispositions = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            dispositions.push(self.finalize_delivery(delivery).await);
        }
        self.settle(queue, &deliveries, &dispositions).await?;
        Ok(deliveries.len())
    }

    /// Receives from `queue`'s dead-letter companion and handles what is
    /// there ([`Pipeline::dead_letters`]): dead-lettered work items are
    /// recorded failed (the queue gave them up after too many receives,
    /// e.g. a processor crashing on them), so their jobs still finish.
    /// Returns how many it handled.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn drain_dead_letters(&self, queue: QueueName) -> Result<usize, PipelineError> {
        let deliveries = self
            .queue
            .receive_dead(queue, self.settings.receive_batch, self.settings.visibility)
            .await?;
        let dispositions = self.dead_letters(queue, &deliveries).await?;
        let done: Vec<_> = deliveries
            .iter()
            .zip(&dispositions)
            .filter(|(_, d)| **d == Disposition::Done)
            .map(|(delivery, _)| delivery.receipt.clone())
            .collect();
        if !done.is_empty() {
            self.queue.ack_dead(queue, &done).await?;
        }
        Ok(deliveries.len())
    }

    /// Handles messages of `queue`'s dead-letter companion (received here,
    /// or handed over by a Lambda event source on the dead-letter queue):
    /// a work item is recorded failed (PERMANENT: the processor never
    /// recorded an outcome for it), a callback is marked failed. Every
    /// handled message is `Done`; a malformed one too (logged and dropped).
    ///
    /// # Errors
    /// Port errors: nothing should be deleted.
    pub async fn dead_letters(
        &self,
        queue: QueueName,
        deliveries: &[Delivery],
    ) -> Result<Vec<Disposition>, PipelineError> {
        if queue == QueueName::Webhook {
            self.drain_dead_webhooks(deliveries).await?;
            return Ok(vec![Disposition::Done; deliveries.len()]);
        }
        let mut by_job: BTreeMap<JobId, Vec<(usize, ItemOutcome)>> = BTreeMap::new();
        for (n, delivery) in deliveries.iter().enumerate() {
            match serde_json::from_str::<WorkItem>(&delivery.body) {
                Ok(item) => {
                    let failure = Failure::new(
                        FailureCategory::Permanent,
                        "dead-lettered: the processor never recorded an outcome for this item",
                    );
                    by_job.entry(item.job_id.clone()).or_default().push((
                        n,
                        ItemOutcome::of(
                            &item,
                            ItemResult::Failed {
                                failure,
                                seconds: 0.0,
                            },
                        ),
                    ));
                }
                Err(e) => {
                    tracing::error!(message_id = %delivery.message_id, error = %e, "malformed dead letter discarded");
                }
            }
        }
        for (job_id, entries) in by_job {
            let job = match self.store.job(&job_id).await {
                Ok(job) => job,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let outcomes: Vec<_> = entries.iter().map(|(_, o)| o.clone()).collect();
            self.record(&job, &outcomes).await??;
        }
        Ok(vec![Disposition::Done; deliveries.len()])
    }
}
