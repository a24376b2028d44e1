//! Submitting a batch: documents split into work items, their text stored
//! in packs, one message per item enqueued — a window at a time, so a
//! batch of any size is read in with bounded memory and its first items
//! are processed while the rest is still being read.

use std::collections::HashSet;

use super::{IntakeDocument, Pipeline, PipelineError, Submission};
use crate::chunking;
use crate::failure::FailureCategory;
use crate::model::{
    BodyRef, ChunkInfo, ItemOutcome, ItemResult, Job, JobCounters, JobId, JobStatus,
    ReferencedDocument, WorkItem,
};
use crate::ports::{ChunkSource, OutgoingMessage, PresignedPut, QueueName, StoreError};

fn pack_key(job: &JobId, n: usize) -> String {
    format!("documents/{job}/pack-{n:05}")
}

/// Most work items a window holds before it is stored and enqueued.
pub(super) const WINDOW_ITEMS: usize = 1000;

/// A batch being submitted: its job exists with its intake open, and
/// documents are added one at a time. Every full window (a pack of text, or
/// [`WINDOW_ITEMS`] items) is stored, counted on the job and enqueued, so
/// only one window is held; [`OpenIntake::close`] closes the intake, after
/// which the job can complete. A job whose intake is never closed (the
/// submitter died) never completes.
pub struct OpenIntake {
    pipeline: Pipeline,
    job: Job,
    next_document: u32,
    next_item: u32,
    pack: Vec<u8>,
    packs_stored: usize,
    items: Vec<WorkItem>,
    rejected: Vec<ItemOutcome>,
    window_documents: u32,
    /// A part of an intake that may be delivered twice
    /// ([`OpenIntake::resume`]): found added already, it is a duplicate.
    part: bool,
    /// Documents of the windows stored (or replayed) so far. Each window
    /// is added only if the job has exactly these: two readers of one
    /// intake (a retried upload while the first is still reading) never
    /// both add a window; the one behind stops.
    documents_counted: u32,
    /// The intake is being read again from its start after its submitter
    /// stopped: windows the job counted already are not stored again.
    replay: Option<Counted>,
    /// A window that cannot be stored or enqueued fails the job (its
    /// submitter is gone when the request ends), unless the submitter
    /// reads the intake again later ([`OpenIntake::left_open_on_error`]).
    fail_job_on_error: bool,
}

/// Documents and items of an intake: what its job had counted when its
/// submitter stopped, or where numbering starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counted {
    documents: u32,
    items: u32,
}

/// The work item of a referenced document: its whole file, one item.
pub(super) fn referenced_item(
    job_id: &JobId,
    item: u32,
    document: u32,
    doc: ReferencedDocument,
) -> WorkItem {
    WorkItem {
        job_id: job_id.clone(),
        item,
        document,
        document_id: doc.id,
        title: doc.title,
        metadata: doc.metadata,
        chunk: ChunkInfo::WHOLE,
        body: BodyRef {
            key: doc.key,
            offset: 0,
            len: doc.bytes,
            file: Some(doc.name),
        },
    }
}

/// A whole batch's own check: not empty, ids unique.
///
/// # Errors
/// [`PipelineError::Invalid`] naming the first duplicate.
pub(crate) fn check_batch(documents: &[IntakeDocument]) -> Result<(), PipelineError> {
    if documents.is_empty() {
        return Err(PipelineError::Invalid("the batch has no documents".into()));
    }
    let mut seen = HashSet::new();
    for (n, document) in documents.iter().enumerate() {
        if !seen.insert(document.id()) {
            return Err(PipelineError::Invalid(format!(
                "documents[{n}].id: duplicate id {:?}",
                document.id()
            )));
        }
    }
    Ok(())
}

impl Pipeline {
    /// Accepts a whole batch: checks it (not empty, ids unique), then
    /// submits it as [`Pipeline::open_intake`] does and closes the intake.
    ///
    /// # Errors
    /// [`PipelineError::Invalid`] for an empty batch or duplicate document
    /// ids (nothing stored); port errors otherwise.
    pub async fn submit(&self, submission: Submission) -> Result<Job, PipelineError> {
        check_batch(&submission.documents)?;
        self.open_intake(submission).await?.close().await
    }

    /// Stores a file a batch will reference (streamed from `source`, e.g.
    /// an upload being read) under `key`; returns its size.
    ///
    /// # Errors
    /// The source's errors and the blob store's (nothing is stored then).
    pub async fn store_file(
        &self,
        key: &str,
        source: &mut dyn ChunkSource,
    ) -> Result<u64, PipelineError> {
        Ok(self.blobs.put_chunks(key, source).await?)
    }

    /// A request that lets a client store a file of `bytes` bytes under
    /// `key` itself for `ttl` (S3: a presigned PUT), or `None` when the
    /// store has none and the file must come through
    /// [`Pipeline::store_file`].
    ///
    /// # Errors
    /// The blob store's.
    pub async fn presigned_put(
        &self,
        key: &str,
        bytes: u64,
        ttl: std::time::Duration,
    ) -> Result<Option<PresignedPut>, PipelineError> {
        Ok(self.blobs.presigned_put(key, bytes, ttl).await?)
    }

    /// Creates the job of a batch with its intake open and adds the
    /// documents `submission` holds; add the rest with
    /// [`OpenIntake::add`], then [`OpenIntake::close`]. Document ids
    /// should be unique (the caller's to ensure; [`Pipeline::submit`]
    /// checks a whole batch).
    ///
    /// # Errors
    /// [`StoreError::Conflict`](crate::ports::StoreError::Conflict) when a
    /// job with the submission's id exists (nothing stored); port errors.
    pub async fn open_intake(&self, submission: Submission) -> Result<OpenIntake, PipelineError> {
        match self
            .evaluators
            .check_config(&submission.evaluator, &submission.config)
            .await
        {
            Err(refused) if refused.category == FailureCategory::Configuration => {
                return Err(PipelineError::Invalid(refused.message));
            }
            Err(failure) => return Err(PipelineError::Evaluator(failure)),
            Ok(()) => {}
        }
        let job = Job {
            id: submission.job_id.clone().unwrap_or_else(JobId::generate),
            tenant: submission.tenant,
            status: JobStatus::Queued,
            evaluator: submission.evaluator,
            config: submission.config,
            options: submission.options,
            counters: JobCounters {
                intake_open: true,
                ..JobCounters::default()
            },
            created_at: self.clock.now(),
            started_at: None,
            finished_at: None,
            error: None,
            webhook: None,
            failures: Vec::new(),
        };
        self.jobs.create_job(&job).await?;
        let mut intake = OpenIntake::at(self, job, Counted::default(), false, None);
        for document in submission.documents {
            intake.add(document).await?;
        }
        Ok(intake)
    }
}

impl OpenIntake {
    /// The intake of `job` (open), continued with a part of it that may be
    /// delivered twice: its documents are numbered from the job's
    /// `documents` and `items` so far, and added only if the job still has
    /// that many documents ([`OpenIntake::finish_part`]). The part must fit
    /// one window (fewer than 1,000 items).
    pub fn resume(pipeline: &Pipeline, job: Job, documents: u32, items: u32) -> Self {
        let next = Counted { documents, items };
        Self::at(pipeline, job, next, true, None)
    }

    /// The open intake of `job`, whose submitter stopped before closing
    /// it, to be read again from its first document with the same
    /// documents in the same order. The windows the job counted already
    /// come out of the same documents the same way; they are not stored
    /// or counted again, and the last of them is enqueued again (its
    /// submitter may have stopped between counting and enqueueing it: a
    /// message delivered twice is recorded once). The windows after it
    /// are stored as usual.
    pub fn reopen(pipeline: &Pipeline, job: Job) -> Self {
        let counted = Counted {
            documents: job.counters.documents_total,
            items: job.counters.items_total,
        };
        let replay = (counted.items > 0).then_some(counted);
        Self::at(pipeline, job, Counted::default(), false, replay)
    }

    /// The intake of `job` with its next document and item numbered from
    /// `next`.
    fn at(
        pipeline: &Pipeline,
        job: Job,
        next: Counted,
        part: bool,
        replay: Option<Counted>,
    ) -> Self {
        Self {
            pipeline: pipeline.clone(),
            job,
            next_document: next.documents,
            next_item: next.items,
            pack: Vec::new(),
            packs_stored: 0,
            items: Vec::new(),
            rejected: Vec::new(),
            window_documents: 0,
            part,
            documents_counted: next.documents,
            replay,
            fail_job_on_error: true,
        }
    }

    /// The same intake, whose job is left open when a window cannot be
    /// stored or enqueued (a full disk): its submitter reads the same
    /// documents again later ([`OpenIntake::reopen`]), as `docket run`
    /// does when it is run again.
    pub fn left_open_on_error(mut self) -> Self {
        self.fail_job_on_error = false;
        self
    }

    /// Adds the resumed part to its job, closing the intake when it is the
    /// `last`. Returns the job, or `None` when the part was added already
    /// (a duplicate delivery: nothing is stored or sent again).
    ///
    /// # Errors
    /// Port errors (the job is then failed, unless it is left open on
    /// error).
    pub async fn finish_part(mut self, last: bool) -> Result<Option<Job>, PipelineError> {
        let part = self.part;
        let job = match self.store_window(last).await {
            Err(PipelineError::Store(StoreError::Conflict(_))) if part => {
                return Ok(None);
            }
            result => self.fail_on_error(result).await?,
        };
        if last && job.counters.items_pending() == 0 {
            self.pipeline
                .after_record(&job.id, &job.options, &job.counters, true)
                .await?;
        }
        Ok(Some(job))
    }

    /// The job being submitted.
    pub fn job_id(&self) -> &JobId {
        &self.job.id
    }

    /// Whether the intake is still passing over windows its job counted
    /// before ([`OpenIntake::reopen`]).
    pub fn replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// Documents added so far.
    pub fn documents(&self) -> u32 {
        self.next_document
    }

    /// Adds the next document: split into work items whose text goes into
    /// the current pack, one item pointing at its file when it is
    /// referenced (the processor extracts and splits it), or recorded
    /// failed when intake rejected it.
    ///
    /// # Errors
    /// Port errors storing or enqueueing a full window (the job is then
    /// failed: see [`OpenIntake::close`]).
    pub async fn add(&mut self, document: IntakeDocument) -> Result<(), PipelineError> {
        let document_index = self.next_document;
        self.next_document += 1;
        match document {
            IntakeDocument::Accepted(spec) => {
                for chunk in chunking::plan(&spec.body, &self.job.options.chunking) {
                    let pack_bytes = self.pipeline.settings.pack_bytes;
                    if !self.pack.is_empty() && self.pack.len() + chunk.text.len() > pack_bytes {
                        self.flush().await?;
                    }
                    let body = BodyRef {
                        key: pack_key(&self.job.id, self.packs_stored),
                        offset: self.pack.len() as u64,
                        len: chunk.text.len() as u64,
                        file: None,
                    };
                    self.pack.extend_from_slice(chunk.text.as_bytes());
                    self.items.push(WorkItem {
                        job_id: self.job.id.clone(),
                        item: self.next_item,
                        document: document_index,
                        document_id: spec.id.clone(),
                        title: spec.title.clone(),
                        metadata: spec.metadata.clone(),
                        chunk: chunk.info,
                        body,
                    });
                    self.next_item += 1;
                }
            }
            IntakeDocument::Referenced(doc) => {
                let item = referenced_item(&self.job.id, self.next_item, document_index, doc);
                self.items.push(item);
                self.next_item += 1;
            }
            IntakeDocument::Rejected(doc) => {
                self.rejected.push(ItemOutcome {
                    item: self.next_item,
                    document: document_index,
                    document_id: doc.id,
                    title: doc.title,
                    chunk: ChunkInfo::WHOLE,
                    bytes: 0,
                    body: None,
                    metadata: serde_json::Value::Null,
                    result: ItemResult::Failed {
                        failure: doc.failure,
                        seconds: 0.0,
                    },
                });
                self.next_item += 1;
            }
        }
        // A document counts in the window of its last item.
        self.window_documents += 1;
        if self.items.len() + self.rejected.len() >= WINDOW_ITEMS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Stores, counts and enqueues the window: the pack first (the items
    /// point into it), then the job's totals (before any item can be
    /// recorded), then the messages and the rejections.
    async fn flush(&mut self) -> Result<(), PipelineError> {
        let result = self.store_window(false).await;
        self.fail_on_error(result).await.map(|_| ())
    }

    async fn store_window(&mut self, close: bool) -> Result<Job, PipelineError> {
        if let Some(counted) = self.replay {
            return self.replay_window(counted, close).await;
        }
        let pipeline = &self.pipeline;
        let job_id = &self.job.id;
        if !self.pack.is_empty() {
            let pack = std::mem::take(&mut self.pack);
            pipeline
                .blobs
                .put(&pack_key(job_id, self.packs_stored), pack)
                .await?;
            self.packs_stored += 1;
        }
        let items = std::mem::take(&mut self.items);
        let rejected = std::mem::take(&mut self.rejected);
        let documents = std::mem::take(&mut self.window_documents);
        let added = (items.len() + rejected.len()) as u32;
        // The intake closes only once its last window is enqueued: a job
        // closed without its items (its submitter killed in between) would
        // wait for them forever, since a reading again — a repeated upload
        // under the same key, `docket run` run again — passes over closed
        // intakes.
        let job = pipeline
            .jobs
            .extend_job(
                job_id,
                documents,
                added,
                false,
                Some(self.documents_counted),
            )
            .await?;
        self.documents_counted += documents;
        self.send_window(items, rejected).await?;
        if close {
            return Ok(self
                .pipeline
                .jobs
                .extend_job(&self.job.id, 0, 0, true, None)
                .await?);
        }
        Ok(job)
    }

    /// A window of a replayed intake: one the job counted already is only
    /// passed over (its pack numbered, not stored) — the last of them
    /// enqueued again — and past those the windows are stored as usual.
    async fn replay_window(&mut self, counted: Counted, close: bool) -> Result<Job, PipelineError> {
        let documents = self.documents_counted + self.window_documents;
        let items = self.next_item;
        if documents > counted.documents || items > counted.items {
            return Err(PipelineError::Invalid(format!(
                "the inputs are not those of the interrupted intake of job {}: it had counted {} documents in {} items, and reading them again gives {documents} documents in {items} items at the same point",
                self.job.id, counted.documents, counted.items
            )));
        }
        if !self.pack.is_empty() {
            self.pack.clear();
            self.packs_stored += 1;
        }
        self.documents_counted = documents;
        self.window_documents = 0;
        let window = std::mem::take(&mut self.items);
        let rejected = std::mem::take(&mut self.rejected);
        let last = Counted { documents, items } == counted;
        if last {
            self.replay = None;
            self.send_window(window, rejected).await?;
            if close {
                return Ok(self
                    .pipeline
                    .jobs
                    .extend_job(&self.job.id, 0, 0, true, None)
                    .await?);
            }
        } else if close {
            return Err(PipelineError::Invalid(format!(
                "the inputs are not those of the interrupted intake of job {}: it had counted {} documents in {} items, and reading them again gives only {documents} documents in {items} items",
                self.job.id, counted.documents, counted.items
            )));
        }
        Ok(self.pipeline.jobs.job(&self.job.id).await?)
    }

    /// Enqueues a counted window's items and records its rejections.
    async fn send_window(
        &mut self,
        items: Vec<WorkItem>,
        rejected: Vec<ItemOutcome>,
    ) -> Result<(), PipelineError> {
        let pipeline = &self.pipeline;
        let job_id = &self.job.id;
        if !items.is_empty() {
            let messages = items
                .iter()
                .map(|item| OutgoingMessage::work_item(&self.job, item))
                .collect();
            pipeline
                .queue
                .send(QueueName::Work(self.job.options.priority), messages)
                .await?;
        }
        if !rejected.is_empty() {
            let now = pipeline.clock.now();
            let receipt = pipeline
                .jobs
                .record_outcomes(job_id, &rejected, now)
                .await?;
            pipeline
                .after_record(
                    job_id,
                    &self.job.options,
                    &receipt.counters,
                    receipt.completed_job,
                )
                .await?;
        }
        Ok(())
    }

    /// A window that could not be stored or enqueued fails the job now:
    /// without its items it would wait forever (items already sent find it
    /// finalized and are skipped) — unless the intake is to be read again
    /// ([`OpenIntake::left_open_on_error`]).
    async fn fail_on_error(
        &self,
        result: Result<Job, PipelineError>,
    ) -> Result<Job, PipelineError> {
        let error = match result {
            Ok(job) => return Ok(job),
            // Inputs that do not replay the job's intake, and another
            // reader of it ahead of this one (or a job finished meanwhile),
            // leave it as it is.
            Err(
                error @ (PipelineError::Invalid(_) | PipelineError::Store(StoreError::Conflict(_))),
            ) => {
                return Err(error);
            }
            Err(error) if !self.fail_job_on_error => return Err(error),
            Err(error) => error,
        };
        let reason = format!("work items could not be queued: {error}");
        let now = self.pipeline.clock.now();
        if let Err(e) = self
            .pipeline
            .jobs
            .finish_job(&self.job.id, JobStatus::Failed, Some(&reason), now)
            .await
        {
            tracing::error!(job_id = %self.job.id, error = %e, "job left open without its work items");
        }
        Err(error)
    }

    /// Adds `documents` and closes the intake ([`OpenIntake::close`]).
    ///
    /// # Errors
    /// As [`OpenIntake::add`] and [`OpenIntake::close`].
    pub async fn read_in(mut self, documents: Vec<IntakeDocument>) -> Result<Job, PipelineError> {
        for document in documents {
            self.add(document).await?;
        }
        self.close().await
    }

    /// Stores the last window and closes the intake; when every item was
    /// already recorded (a batch of rejections, or fast processors) the
    /// finalize message is sent here. Returns the job.
    ///
    /// # Errors
    /// Port errors (the job is then failed, unless it is left open on
    /// error).
    pub async fn close(mut self) -> Result<Job, PipelineError> {
        let result = self.store_window(true).await;
        let job = self.fail_on_error(result).await?;
        if job.counters.items_pending() == 0 {
            self.pipeline
                .after_record(&job.id, &job.options, &job.counters, true)
                .await?;
        }
        Ok(self.pipeline.jobs.job(&job.id).await?)
    }
}
