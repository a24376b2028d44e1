//! Finalizing a job whose items all have outcomes: chunks merged per
//! document, the batch summarized, results written, the job moved to its
//! final status by a conditional change only one caller wins.

use std::time::{Duration, Instant};

use super::{Disposition, FinalizeMessage, Pipeline, PipelineError};
use crate::aggregate::{
    self, DocumentGroups, DocumentResult, DocumentStatus, ResultsHeader, Summary, SummaryBuilder,
};
use crate::evaluation::{Evaluation, default_merge};
use crate::failure::{Failure, FailureCategory};
use crate::model::{ItemOutcome, Job, JobId};
use crate::ports::{Delivery, QueueName, StoreError};
use crate::results::{PartWriter, ResultsIndex, index_key};

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
    /// The job's outcomes, a document at a time.
    pub(super) fn documents_of<'a>(&'a self, job: &'a JobId) -> DocumentOutcomes<'a> {
        DocumentOutcomes {
            jobs: &*self.jobs,
            job,
            page: self.settings.outcomes_page,
            after: None,
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

/// What the evaluator's summary hook is given: each completed document's
/// scores and labels, while they fit in one call.
struct SummaryInput {
    /// `None` once past the limit.
    evaluations: Option<Vec<Evaluation>>,
    bytes: usize,
    limit: usize,
    documents: u64,
}

impl SummaryInput {
    fn new(limit: usize) -> Self {
        Self {
            evaluations: Some(Vec::new()),
            bytes: 0,
            limit,
            documents: 0,
        }
    }

    fn add(&mut self, document: &DocumentResult) {
        if document.status != DocumentStatus::Completed {
            return;
        }
        self.documents += 1;
        let Some(evaluations) = &mut self.evaluations else {
            return;
        };
        let evaluation = document.summary_input();
        // What the call's input costs, as the host counts it: names,
        // labels and a few fixed bytes per score.
        self.bytes += 16
            + evaluation
                .scores
                .iter()
                .map(|s| s.name.len() + 24)
                .sum::<usize>()
            + evaluation.labels.iter().map(|l| l.len() + 8).sum::<usize>();
        if self.bytes > self.limit {
            self.evaluations = None;
        } else {
            evaluations.push(evaluation);
        }
    }
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

impl Pipeline {
    /// Finalizes a job whose items all have outcomes: merges chunks per
    /// document, summarizes, writes the documents in parts and the results
    /// index ([`crate::results`]), then moves the job to its final status by a conditional change that
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
        let written = self.write_documents(&job).await?;
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
            parts: written.parts,
            score_names: written.score_names,
        };
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
    /// writes the documents into parts and folds the summary: only one
    /// page, one document and one part are held at a time.
    async fn write_documents(&self, job: &Job) -> Result<WrittenDocuments, PipelineError> {
        let mut documents = self.documents_of(&job.id);
        let mut parts = PartWriter::new(&*self.blobs, &job.id, self.settings.results_part_bytes);
        let mut summary = SummaryBuilder::default();
        let mut summary_input = SummaryInput::new(self.settings.summary_input_bytes);
        while let Some(chunks) = documents.next().await? {
            let document = self.assemble(job, chunks).await;
            summary.add(&document);
            summary_input.add(&document);
            parts.push(&document).await?;
        }
        let parts = parts.finish().await?;
        let evaluator_summary = self.evaluator_summary(job, summary_input).await;
        Ok(WrittenDocuments {
            score_names: summary.score_names().map(str::to_owned).collect(),
            summary: summary.finish(evaluator_summary),
            parts,
        })
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

    /// The evaluator's own summary of the completed documents' scores and
    /// labels, or why there is none: its hook failed, or the batch is past
    /// what one call may take (the 0.1.0 contract has no way to summarize
    /// in groups) — recorded in the results, never only logged.
    async fn evaluator_summary(
        &self,
        job: &Job,
        input: SummaryInput,
    ) -> Result<Option<serde_json::Value>, Failure> {
        let result = match input.evaluations {
            Some(evaluations) => self.evaluators.summarize(&job.evaluator, evaluations).await,
            None => {
                // Too many to hand over: an evaluator without a summary hook
                // answers an empty call with none, and then nothing is missing.
                match self.evaluators.summarize(&job.evaluator, Vec::new()).await {
                    Ok(None) => Ok(None),
                    _ => Err(Failure::new(
                        FailureCategory::Permanent,
                        format!(
                            "the evaluator's summary was not computed: the scores and labels of {} completed documents are past the {} bytes one summarize call may take",
                            input.documents, input.limit
                        ),
                    )),
                }
            }
        };
        if let Err(failure) = &result {
            tracing::warn!(job_id = %job.id, %failure, "evaluator summary missing; the results say why");
        }
        result
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
