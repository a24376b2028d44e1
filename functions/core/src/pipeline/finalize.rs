//! Finalizing a job whose items all have outcomes: chunks merged per
//! document, the batch summarized, results written, the job moved to its
//! final status by a conditional change only one caller wins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Disposition, FinalizeMessage, Pipeline, PipelineError, documents_key, results_key};
use crate::aggregate::{self, DocumentStatus, ResultsDocument, ResultsHeader};
use crate::evaluation::{Evaluation, Score, default_merge};
use crate::failure::Failure;
use crate::model::{Job, JobId};
use crate::ports::{Delivery, QueueName, StoreError};

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

impl Pipeline {
    /// Finalizes a job whose items all have outcomes: merges chunks per
    /// document, summarizes, writes `results.json` and `documents.jsonl`,
    /// then moves the job to its final status by a conditional change that
    /// only one caller wins; the winner enqueues the webhook.
    ///
    /// # Errors
    /// Port errors; the finalize message should then be retried.
    pub async fn finalize(&self, job_id: &JobId) -> Result<FinalizeOutcome, PipelineError> {
        let job = self.jobs.job(job_id).await?;
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
        let outcomes = self.jobs.outcomes(job_id).await?;
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
        let header = ResultsHeader {
            job_id: job.id.clone(),
            status,
            document_count: job.counters.documents_total,
            evaluator: job.evaluator.clone(),
            created_at: job.created_at,
            finished_at: now,
            error: error.clone(),
            summary,
        };
        let results = ResultsDocument { header, documents };
        let (json, jsonl) = results.to_json_and_jsonl();
        self.blobs
            .put(&documents_key(job_id), jsonl.into_bytes())
            .await?;
        self.blobs
            .put(&results_key(job_id), json.into_bytes())
            .await?;
        let finished = match self
            .jobs
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
}
