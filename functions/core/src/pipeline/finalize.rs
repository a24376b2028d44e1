//! Finalizing a job whose items all have outcomes: chunks merged per
//! document, the batch summarized, results written, the job moved to its
//! final status by a conditional change only one caller wins.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::summary::SummaryFold;
use super::{Disposition, FinalizeMessage, Pipeline, PipelineError};
use crate::aggregate::{
    self, DocumentGroups, DocumentResult, ResultsHeader, Summary, SummaryBuilder,
};
use crate::evaluation::default_merge;
use crate::model::{ItemOutcome, Job, JobId};
use crate::ports::{BlobError, Delivery, QueueName, StoreError};
use crate::results::{
    PartWriter, ResultsFormat, ResultsIndex, ResultsStream, ResultsView, checkpoint_key, index_key,
    whole_file_key,
};

/// A job's recorded outcomes read a page at a time in item order, handed
/// out a document (its chunks, in order) at a time.
pub(super) struct DocumentOutcomes<'a> {
    jobs: &'a dyn crate::ports::JobStore,
    job: &'a JobId,
    page: usize,
    after: Option<u32>,
    groups: DocumentGroups,
    ready: std::collections::VecDeque<Vec<ItemOutcome>>,
    read_all: bool,
}

impl DocumentOutcomes<'_> {
    /// The next document's outcomes; `None` after the last.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<ItemOutcome>>, StoreError> {
        while self.ready.is_empty() && !self.read_all {
            let page = self
                .jobs
                .outcomes_page(self.job, self.after, self.page)
                .await?;
            match page.last() {
                Some(last) => self.after = Some(last.item),
                None => self.read_all = true,
            }
            for outcome in page {
                self.ready.extend(self.groups.push(outcome));
            }
            if self.read_all {
                self.ready.extend(self.groups.finish());
            }
        }
        Ok(self.ready.pop_front())
    }
}

impl Pipeline {
    /// The job's outcomes after item `after` (all when `None`), a document
    /// at a time.
    pub(super) fn documents_of<'a>(
        &'a self,
        job: &'a JobId,
        after: Option<u32>,
    ) -> DocumentOutcomes<'a> {
        DocumentOutcomes {
            jobs: &*self.jobs,
            job,
            page: self.settings.outcomes_page,
            after,
            groups: DocumentGroups::default(),
            ready: std::collections::VecDeque::new(),
            read_all: false,
        }
    }
}

/// A job's documents as finalizing stored them.
struct WrittenDocuments {
    summary: Summary,
    score_names: Vec<String>,
    /// Documents per part.
    parts: Vec<u32>,
}

/// Where an interrupted finalize goes on: the documents written so far
/// (whole parts, up to and including item `after`) and the summaries
/// folded over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FinalizeCheckpoint {
    after: u32,
    parts: Vec<u32>,
    summary: SummaryBuilder,
    evaluator_summary: SummaryFold,
}

/// How far [`Pipeline::write_documents`] got.
enum Written {
    All(WrittenDocuments),
    /// Stopped at the deadline, after storing a checkpoint.
    Checkpointed {
        documents: u64,
    },
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
    /// The deadline came first: the documents written so far and the
    /// summaries folded over them are checkpointed, and the next call
    /// goes on from there.
    Checkpointed {
        /// Documents written so far.
        documents: u64,
    },
}

impl Pipeline {
    /// Finalizes a job whose items all have outcomes: merges chunks per
    /// document, summarizes, writes the documents in parts and the results
    /// index ([`crate::results`]), then moves the job to its final status by a conditional change that
    /// only one caller wins; the winner enqueues the webhook.
    ///
    /// # Errors
    /// Port errors; the finalize message should then be retried.
    pub async fn finalize(&self, job_id: &JobId) -> Result<FinalizeOutcome, PipelineError> {
        self.finalize_within(job_id, None).await
    }

    /// [`finalize`](Self::finalize) within a deadline (a Lambda
    /// invocation's, less what storing a part and a checkpoint needs): a
    /// job not written by then stops after a part, checkpoints, and is
    /// [`Checkpointed`](FinalizeOutcome::Checkpointed); the next call goes
    /// on from the checkpoint. Parts end where their size says, so calls
    /// that overlap write the same bytes.
    ///
    /// # Errors
    /// As [`finalize`](Self::finalize).
    pub async fn finalize_within(
        &self,
        job_id: &JobId,
        deadline: Option<Instant>,
    ) -> Result<FinalizeOutcome, PipelineError> {
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
        let written = match self.write_documents(&job, deadline).await? {
            Written::All(written) => written,
            Written::Checkpointed { documents } => {
                tracing::info!(%job_id, documents, seconds = started.elapsed().as_secs_f64(), "finalize checkpointed at the deadline");
                return Ok(FinalizeOutcome::Checkpointed { documents });
            }
        };
        let (status, error) = aggregate::final_status(&job, &written.summary);
        let now = self.clock.now();
        let index = ResultsIndex {
            header: ResultsHeader {
                job_id: job.id.clone(),
                status,
                document_count: job.counters.documents_total,
                evaluator: job.evaluator.clone(),
                created_at: job.created_at,
                finished_at: now,
                error: error.clone(),
                summary: written.summary,
            },
            whole_files: self.settings.whole_files && written.parts.len() > 1,
            parts: written.parts,
            score_names: written.score_names,
        };
        if index.whole_files {
            self.write_whole_files(&job, &index).await?;
        }
        // The index last: results exist once it does.
        let index_bytes = serde_json::to_vec(&index).unwrap_or_default();
        self.blobs.put(&index_key(job_id), index_bytes).await?;
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

    /// Reads the job's outcomes a page at a time in item order, assembles
    /// each document as its last chunk arrives (merging split documents),
    /// writes the documents into parts and folds the summaries: only one
    /// page, one document, one part and one summary group are held at a
    /// time. Goes on from the job's checkpoint when there is one; past the
    /// deadline, checkpoints after the next part.
    async fn write_documents(
        &self,
        job: &Job,
        deadline: Option<Instant>,
    ) -> Result<Written, PipelineError> {
        let checkpoint = self.checkpoint(&job.id).await?;
        let checkpointed = checkpoint.as_ref().map(|c| c.after);
        let (after, mut parts, mut summary, mut evaluator_summary) = match checkpoint {
            Some(c) => (
                Some(c.after),
                PartWriter::resume(
                    &*self.blobs,
                    &job.id,
                    self.settings.results_part_bytes,
                    c.parts,
                ),
                c.summary,
                c.evaluator_summary,
            ),
            None => (
                None,
                PartWriter::new(&*self.blobs, &job.id, self.settings.results_part_bytes),
                SummaryBuilder::default(),
                self.summary_fold(job).await,
            ),
        };
        let mut documents = self.documents_of(&job.id, after);
        let mut last = after;
        while let Some(chunks) = documents.next().await? {
            last = chunks.last().map(|c| c.item).or(last);
            let document = self.assemble(job, chunks).await;
            summary.add(&document);
            evaluator_summary
                .add(&*self.evaluators, &job.evaluator, &document)
                .await;
            let stored = parts.push(&document).await?;
            if stored && deadline.is_some_and(|d| Instant::now() >= d) {
                let checkpoint = FinalizeCheckpoint {
                    after: last.unwrap_or(0),
                    parts: parts.parts().to_vec(),
                    summary,
                    evaluator_summary,
                };
                return self.store_checkpoint(&job.id, &checkpoint).await;
            }
        }
        let parts = parts.finish().await?;
        // Whole files take time of their own: past the deadline, they are
        // left to the next call, which finds every document written.
        let whole_files = self.settings.whole_files && parts.len() > 1;
        if whole_files
            && deadline.is_some_and(|d| Instant::now() >= d)
            && let Some(after) = last
            && Some(after) != checkpointed
        {
            let checkpoint = FinalizeCheckpoint {
                after,
                parts,
                summary,
                evaluator_summary,
            };
            return self.store_checkpoint(&job.id, &checkpoint).await;
        }
        let evaluator_summary = evaluator_summary
            .finish(&*self.evaluators, &job.evaluator)
            .await;
        if let Err(failure) = &evaluator_summary {
            tracing::warn!(job_id = %job.id, %failure, "evaluator summary missing; the results say why");
        }
        Ok(Written::All(WrittenDocuments {
            score_names: summary.score_names().map(str::to_owned).collect(),
            summary: summary.finish(evaluator_summary),
            parts,
        }))
    }

    /// The job's results as one whole file per format, each streamed from
    /// the parts into the store (S3: a multipart upload), with the job's
    /// own evidence choice.
    async fn write_whole_files(&self, job: &Job, index: &ResultsIndex) -> Result<(), BlobError> {
        for format in [
            ResultsFormat::Json,
            ResultsFormat::Jsonl,
            ResultsFormat::Csv,
        ] {
            let view = ResultsView {
                evidence: job.options.include_evidence,
                ..ResultsView::whole(format)
            };
            let mut stream =
                ResultsStream::new(self.blobs.clone(), job.id.clone(), index.clone(), view);
            let bytes = self
                .blobs
                .put_chunks(&whole_file_key(&job.id, format), &mut stream)
                .await?;
            tracing::info!(job_id = %job.id, ?format, bytes, "whole results file written");
        }
        Ok(())
    }

    /// Stores the checkpoint a next call goes on from.
    async fn store_checkpoint(
        &self,
        job: &JobId,
        checkpoint: &FinalizeCheckpoint,
    ) -> Result<Written, PipelineError> {
        let documents = checkpoint.parts.iter().map(|&n| u64::from(n)).sum();
        let bytes = serde_json::to_vec(checkpoint).unwrap_or_default();
        self.blobs.put(&checkpoint_key(job), bytes).await?;
        Ok(Written::Checkpointed { documents })
    }

    /// The checkpoint of the job's interrupted finalize, if any.
    async fn checkpoint(&self, job: &JobId) -> Result<Option<FinalizeCheckpoint>, PipelineError> {
        match self.blobs.get(&checkpoint_key(job)).await {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(BlobError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The evaluator's summary fold for the job, as its contract allows.
    async fn summary_fold(&self, job: &Job) -> SummaryFold {
        let limit = self.settings.summary_input_bytes;
        match self.evaluators.folds_summaries(&job.evaluator).await {
            Ok(folds) => SummaryFold::new(folds, limit),
            Err(failure) => SummaryFold::failed(failure, limit),
        }
    }

    /// One document from its chunks, merged by the evaluator's own merge
    /// when it has one.
    async fn assemble(&self, job: &Job, group: Vec<ItemOutcome>) -> DocumentResult {
        let merged = match aggregate::chunks_to_merge(&group) {
            None => None,
            Some(chunks) => {
                let evaluations = chunks.iter().map(|c| c.evaluation.clone()).collect();
                Some(
                    self.evaluators
                        .merge_chunks(&job.evaluator, evaluations)
                        .await
                        .map(|own| own.unwrap_or_else(|| default_merge(&chunks))),
                )
            }
        };
        aggregate::assemble_document(group, merged)
    }

    /// Finalizes the job a finalize message names (within `deadline`), and
    /// says what to do with the message. A checkpointed job is named by a
    /// new message, so a job that takes many invocations never reaches the
    /// queue's dead-letter threshold.
    pub async fn finalize_delivery(
        &self,
        delivery: &Delivery,
        deadline: Option<Instant>,
    ) -> Disposition {
        match serde_json::from_str::<FinalizeMessage>(&delivery.body) {
            Err(e) => {
                tracing::error!(error = %e, "malformed finalize message left for the dead-letter queue");
                Disposition::Keep
            }
            Ok(message) => match self.finalize_within(&message.job_id, deadline).await {
                Ok(FinalizeOutcome::Checkpointed { .. }) => {
                    match self.enqueue_finalize(&message.job_id).await {
                        Ok(()) => Disposition::Done,
                        Err(e) => {
                            tracing::warn!(job_id = %message.job_id, error = %e, "finalize checkpointed; its message is retried");
                            Disposition::RetryAfter(Duration::ZERO)
                        }
                    }
                }
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
            dispositions.push(self.finalize_delivery(delivery, None).await);
        }
        self.settle(queue, &deliveries, &dispositions).await?;
        Ok(deliveries.len())
    }
}
