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
use crate::model::{ItemOutcome, Job, JobId, required};
use crate::ports::{BlobError, Delivery, QueueName, StoreError};
use crate::results::{
    PartWriter, ResultsFormat, ResultsIndex, ResultsStream, ResultsView, checkpoint_key,
    documents_in, index_key, whole_file_key,
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
    /// Bytes of all parts.
    bytes: u64,
    /// This call wrote documents (it did not only find them written).
    progressed: bool,
}

/// Where an interrupted finalize goes on. Stored tagged by `phase`, read
/// through [`StoredCheckpoint`] (the documents' `data` in a summary group
/// must be read from the text itself, which serde's reading of a tagged
/// enum does not give).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "phase",
    rename_all = "snake_case",
    try_from = "StoredCheckpoint"
)]
enum FinalizeCheckpoint {
    /// Writing documents: those up to and including item `after` are in
    /// `parts` (of `bytes`), the summaries folded over them.
    Documents {
        after: u32,
        parts: Vec<u32>,
        bytes: u64,
        summary: SummaryBuilder,
        evaluator_summary: SummaryFold,
    },
    /// Every document written and the index made (stored last, once the
    /// whole files are): `files` of [`ResultsFormat::ALL`] written.
    WholeFiles { index: ResultsIndex, files: usize },
}

/// A [`FinalizeCheckpoint`] as stored: every phase's fields, each optional.
#[derive(Deserialize)]
struct StoredCheckpoint {
    phase: CheckpointPhase,
    after: Option<u32>,
    parts: Option<Vec<u32>>,
    bytes: Option<u64>,
    summary: Option<SummaryBuilder>,
    evaluator_summary: Option<SummaryFold>,
    index: Option<ResultsIndex>,
    files: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CheckpointPhase {
    Documents,
    WholeFiles,
}

impl TryFrom<StoredCheckpoint> for FinalizeCheckpoint {
    type Error = String;

    fn try_from(stored: StoredCheckpoint) -> Result<Self, String> {
        Ok(match stored.phase {
            CheckpointPhase::Documents => FinalizeCheckpoint::Documents {
                after: required(stored.after, "after")?,
                parts: required(stored.parts, "parts")?,
                bytes: required(stored.bytes, "bytes")?,
                summary: required(stored.summary, "summary")?,
                evaluator_summary: required(stored.evaluator_summary, "evaluator_summary")?,
            },
            CheckpointPhase::WholeFiles => FinalizeCheckpoint::WholeFiles {
                index: required(stored.index, "index")?,
                files: required(stored.files, "files")?,
            },
        })
    }
}

/// How far [`Pipeline::write_documents`] got.
enum Written {
    All(Box<WrittenDocuments>),
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
        let checkpointed = |documents: u64| {
            tracing::info!(%job_id, documents, seconds = started.elapsed().as_secs_f64(), "finalize checkpointed at the deadline");
            Ok(FinalizeOutcome::Checkpointed { documents })
        };
        let (index, files, mut progressed) = match self.checkpoint(job_id).await? {
            Some(FinalizeCheckpoint::WholeFiles { index, files }) => (index, files, false),
            documents => match self.write_documents(&job, documents, deadline).await? {
                Written::Checkpointed { documents } => return checkpointed(documents),
                Written::All(written) => {
                    let progressed = written.progressed;
                    (self.index_of(&job, *written), 0, progressed)
                }
            },
        };
        if index.whole_files {
            // A file takes time of its own: past the deadline, a call that
            // has done something leaves the next file to the next call.
            for (n, format) in ResultsFormat::ALL.into_iter().enumerate().skip(files) {
                if progressed && deadline.is_some_and(|d| Instant::now() >= d) {
                    let documents = index.documents();
                    let checkpoint = FinalizeCheckpoint::WholeFiles { index, files: n };
                    self.store_checkpoint(job_id, &checkpoint).await?;
                    return checkpointed(documents);
                }
                self.write_whole_file(&job, &index, format).await?;
                progressed = true;
            }
        }
        let (status, error, now) = (
            index.header.status,
            index.header.error.clone(),
            index.header.finished_at,
        );
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

    /// The results index of a job whose documents are all written.
    fn index_of(&self, job: &Job, written: WrittenDocuments) -> ResultsIndex {
        let (status, error) = aggregate::final_status(job, &written.summary);
        ResultsIndex {
            header: ResultsHeader {
                job_id: job.id.clone(),
                status,
                document_count: job.counters.documents_total,
                evaluator: job.evaluator.clone(),
                created_at: job.created_at,
                finished_at: self.clock.now(),
                error,
                summary: written.summary,
            },
            whole_files: self
                .settings
                .whole_files_past
                .is_some_and(|past| written.bytes > past),
            parts: written.parts,
            score_names: written.score_names,
        }
    }

    /// Reads the job's outcomes a page at a time in item order, assembles
    /// each document as its last chunk arrives (merging split documents),
    /// writes the documents into parts and folds the summaries: only one
    /// page, one document, one part and one summary group are held at a
    /// time. Goes on from `checkpoint` when there is one; past the
    /// deadline, checkpoints after the next part.
    async fn write_documents(
        &self,
        job: &Job,
        checkpoint: Option<FinalizeCheckpoint>,
        deadline: Option<Instant>,
    ) -> Result<Written, PipelineError> {
        let part_bytes = self.settings.results_part_bytes;
        let (after, mut parts, mut summary, mut evaluator_summary) = match checkpoint {
            Some(FinalizeCheckpoint::Documents {
                after,
                parts,
                bytes,
                summary,
                evaluator_summary,
            }) => (
                Some(after),
                PartWriter::resume(&*self.blobs, &job.id, part_bytes, parts, bytes),
                summary,
                evaluator_summary,
            ),
            _ => (
                None,
                PartWriter::new(&*self.blobs, &job.id, part_bytes),
                SummaryBuilder::default(),
                self.summary_fold(job).await,
            ),
        };
        let mut documents = self.documents_of(&job.id, after);
        let mut last = after;
        while let Some(chunks) = documents.next().await? {
            last = chunks.last().map(|c| c.item).or(last);
            let document = self.assemble(job, chunks).await?;
            summary.add(&document);
            evaluator_summary
                .add(&*self.evaluators, &job.evaluator, &document)
                .await;
            let stored = parts.push(&document).await?;
            if stored && deadline.is_some_and(|d| Instant::now() >= d) {
                let (stored, bytes) = parts.stored();
                let checkpoint = FinalizeCheckpoint::Documents {
                    after: last.unwrap_or(0),
                    parts: stored.to_vec(),
                    bytes,
                    summary,
                    evaluator_summary,
                };
                let documents = documents_in(stored);
                self.store_checkpoint(&job.id, &checkpoint).await?;
                return Ok(Written::Checkpointed { documents });
            }
        }
        let (parts, bytes) = parts.finish().await?;
        let evaluator_summary = evaluator_summary
            .finish(&*self.evaluators, &job.evaluator)
            .await;
        if let Err(failure) = &evaluator_summary {
            tracing::warn!(job_id = %job.id, %failure, "evaluator summary missing; the results say why");
        }
        Ok(Written::All(Box::new(WrittenDocuments {
            score_names: summary.score_names().map(str::to_owned).collect(),
            summary: summary.finish(evaluator_summary),
            parts,
            bytes,
            progressed: last != after,
        })))
    }

    /// The job's results as one whole file in `format`, streamed from the
    /// parts into the store (S3: a multipart upload).
    async fn write_whole_file(
        &self,
        job: &Job,
        index: &ResultsIndex,
        format: ResultsFormat,
    ) -> Result<(), BlobError> {
        let view = ResultsView::whole_file(format, job.options.include_evidence);
        let mut stream =
            ResultsStream::new(self.blobs.clone(), job.id.clone(), index.clone(), view);
        let bytes = self
            .blobs
            .put_chunks(&whole_file_key(&job.id, format), &mut stream)
            .await?;
        tracing::info!(job_id = %job.id, ?format, bytes, "whole results file written");
        Ok(())
    }

    /// Stores the checkpoint a next call goes on from.
    async fn store_checkpoint(
        &self,
        job: &JobId,
        checkpoint: &FinalizeCheckpoint,
    ) -> Result<(), BlobError> {
        let bytes = serde_json::to_vec(checkpoint).unwrap_or_default();
        self.blobs.put(&checkpoint_key(job), bytes).await
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
    /// when it has one. A merge that fails for a reason that passes (the
    /// component not loaded yet) fails the finalize, which is retried: a
    /// document's result never depends on such a moment, so finalizers
    /// that overlap write the same parts.
    async fn assemble(
        &self,
        job: &Job,
        group: Vec<ItemOutcome>,
    ) -> Result<DocumentResult, PipelineError> {
        let merged = match aggregate::chunks_to_merge(&group) {
            None => None,
            Some(chunks) => match self.merge_chunks(&job.evaluator, &chunks).await {
                Err(failure) if failure.category.is_retryable() => {
                    return Err(PipelineError::Evaluator(failure));
                }
                merged => Some(merged),
            },
        };
        Ok(aggregate::assemble_document(group, merged))
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
                Ok(FinalizeOutcome::Checkpointed { .. }) => self.named_again(&message.job_id).await,
                Ok(FinalizeOutcome::Finalized(_) | FinalizeOutcome::AlreadyFinalized) => {
                    Disposition::Done
                }
                Err(PipelineError::Store(StoreError::NotFound(_))) => Disposition::Done,
                Ok(FinalizeOutcome::NotReady { .. }) => {
                    Disposition::RetryAfter(Duration::from_secs(1))
                }
                Err(e) => {
                    tracing::warn!(job_id = %message.job_id, error = %e, "finalize failed; retried");
                    self.left_to_retry(e.category(), &e);
                    Disposition::Keep
                }
            },
        }
    }

    /// Hands a finalize message back for later without a receive counted
    /// against it (the queue dead-letters a message received too often):
    /// its job is named by a new message. An invocation out of time does
    /// this with the messages it has no time for.
    pub async fn defer_finalize(&self, delivery: &Delivery) -> Disposition {
        match serde_json::from_str::<FinalizeMessage>(&delivery.body) {
            Err(_) => Disposition::Keep,
            Ok(message) => self.named_again(&message.job_id).await,
        }
    }

    /// The job named by a new finalize message, this one done; when it
    /// cannot be sent, this one comes back at once.
    async fn named_again(&self, job_id: &JobId) -> Disposition {
        match self.enqueue_finalize(job_id).await {
            Ok(()) => Disposition::Done,
            Err(e) => {
                tracing::warn!(%job_id, error = %e, "finalize message not sent again; this one is retried");
                self.left_to_retry(e.category(), &e);
                Disposition::RetryAfter(Duration::ZERO)
            }
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
