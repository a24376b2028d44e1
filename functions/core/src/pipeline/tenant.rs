//! What a tenant may see and do with its jobs: read one (another tenant's
//! job is not found), its status report, its results, the list of its
//! jobs, cancel one, retry a finished job's failed documents.

use super::{IntakeDocument, Pipeline, PipelineError, Submission};
use crate::aggregate::{DocumentResult, ResultsDocument, ResultsHeader};
use crate::auth::Caller;
use crate::chunking;
use crate::model::{
    DocumentSpec, ItemOutcome, ItemResult, Job, JobId, JobStatus, ReferencedDocument, TenantId,
};
use crate::ports::{BlobError, JobFilter, StoreError};
use crate::progress::StatusReport;
use crate::results::{self, ResultsFormat, ResultsIndex, ResultsStream, ResultsView};

/// How long a presigned URL of a job's whole results file reads.
pub const WHOLE_FILE_URL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What a recovery job of a finished job's failed documents holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Failed documents whose text was read back (or, referenced, their
    /// files named again).
    pub documents: Vec<IntakeDocument>,
    /// Failed documents that cannot be retried (no stored text), with why
    /// they failed.
    pub not_retried: Vec<(String, String)>,
}

/// What [`Pipeline::retry`] submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOutcome {
    /// The recovery job (the same one every time the same job is retried).
    pub job: Job,
    /// Failed documents that could not be retried (rejected at intake),
    /// with why they failed.
    pub not_retried: Vec<(String, String)>,
}

/// The job id an idempotency key stands for: the same key from the same
/// tenant always names the same job.
pub fn idempotent_job_id(tenant: &TenantId, key: &str) -> JobId {
    let digest = crate::auth::hash_token(&format!("{tenant}\n{key}"));
    let hex = digest.trim_start_matches("sha256:");
    JobId::parse(&format!("job_idem_{}", &hex[..32])).unwrap_or_else(|_| JobId::generate())
}

impl Pipeline {
    /// The tenant's job.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (as [`PipelineError::Store`]) for an
    /// unknown job and for another tenant's; port errors.
    pub async fn tenant_job(&self, tenant: &TenantId, id: &JobId) -> Result<Job, PipelineError> {
        match self.jobs.job(id).await {
            Ok(job) if &job.tenant == tenant => Ok(job),
            Ok(_) => Err(StoreError::NotFound(id.to_string()).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// A job the caller may see: its tenant's, or any for an operator key
    /// ([`Caller::may_see`]).
    ///
    /// # Errors
    /// As [`Pipeline::tenant_job`].
    pub async fn caller_job(&self, caller: &Caller, id: &JobId) -> Result<Job, PipelineError> {
        match self.jobs.job(id).await {
            Ok(job) if caller.may_see(&job.tenant) => Ok(job),
            Ok(_) => Err(StoreError::NotFound(id.to_string()).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// A job by id, whoever owns it (the embedded backend's own commands
    /// and the tests).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; port errors.
    pub async fn job(&self, id: &JobId) -> Result<Job, PipelineError> {
        Ok(self.jobs.job(id).await?)
    }

    /// The job's status report now.
    pub fn status_report(&self, job: &Job) -> StatusReport {
        StatusReport::of(job, self.clock.now())
    }

    /// A finished job's results index: the header with the summary, and
    /// how its documents are stored.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] (as [`PipelineError::Blob`]) before the job
    /// is finalized; port errors.
    pub async fn results_index(&self, job: &JobId) -> Result<ResultsIndex, PipelineError> {
        Ok(results::read_index(&*self.blobs, job).await?)
    }

    /// A finished job's results in `view`, read a part at a time.
    ///
    /// # Errors
    /// As [`Pipeline::results_index`].
    pub async fn results_stream(
        &self,
        job: &JobId,
        view: ResultsView,
    ) -> Result<ResultsStream, PipelineError> {
        Ok(ResultsStream::open(self.blobs.clone(), job, view).await?)
    }

    /// Where a reader that takes one object gets `view` of a finished
    /// job's results: a presigned URL of its whole file, when the job has
    /// whole files ([`ResultsIndex::whole_files`]),
    /// the view is a whole file with the job's own evidence choice, and
    /// the store presigns (S3; the embedded store streams instead).
    ///
    /// # Errors
    /// Blob errors.
    pub async fn whole_file_url(
        &self,
        job: &Job,
        view: &ResultsView,
        index: &ResultsIndex,
    ) -> Result<Option<String>, PipelineError> {
        let held = ResultsView::whole_file(view.format, job.options.include_evidence);
        if !(index.whole_files && *view == held) {
            return Ok(None);
        }
        let key = results::whole_file_key(&job.id, view.format);
        Ok(self.blobs.presigned_get(&key, WHOLE_FILE_URL_TTL).await?)
    }

    /// A finished job's whole results, parsed: for tests and small jobs
    /// (a large job's results are read with [`Pipeline::results_stream`]).
    ///
    /// # Errors
    /// As [`Pipeline::results_index`]; stored results that do not parse
    /// are a `Permanent` blob error.
    pub async fn results(&self, job: &JobId) -> Result<ResultsDocument, PipelineError> {
        let bytes = self
            .results_stream(job, ResultsView::whole(ResultsFormat::Json))
            .await?
            .collect()
            .await?;
        // The header and the documents are read apart: `ResultsDocument`
        // flattens its header, and serde reads a flattened struct from a
        // buffered copy that cannot keep each document's `data` as text.
        #[derive(serde::Deserialize)]
        struct Documents {
            documents: Vec<DocumentResult>,
        }
        let parsed = serde_json::from_slice::<ResultsHeader>(&bytes).and_then(|header| {
            let Documents { documents } = serde_json::from_slice(&bytes)?;
            Ok(ResultsDocument { header, documents })
        });
        parsed.map_err(|e| {
            PipelineError::Blob(BlobError::Backend(crate::ports::BackendError::new(
                crate::FailureCategory::Permanent,
                format!("results of {job} do not parse: {e}"),
            )))
        })
    }

    /// The tenant's jobs, newest first.
    ///
    /// # Errors
    /// Port errors.
    pub async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, PipelineError> {
        Ok(self.jobs.list_jobs(tenant, filter).await?)
    }

    /// Cancels a job: its remaining items are skipped and the finalizer
    /// still writes the partial results.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (as [`PipelineError::Store`]) when the job is
    /// already finished or cancelled; [`StoreError::NotFound`].
    pub async fn cancel(&self, job_id: &JobId) -> Result<Job, PipelineError> {
        let job = self
            .jobs
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
        let mut recovery = Recovery::default();
        let mut documents = self.documents_of(&job.id, None);
        while let Some(chunks) = documents.next().await? {
            self.recover_document(chunks, &mut recovery).await?;
        }
        Ok(recovery)
    }

    /// Adds a failed document (its chunks in order) to `recovery`: its text
    /// read back from where it was stored, or why it cannot be retried.
    async fn recover_document(
        &self,
        chunks: Vec<ItemOutcome>,
        recovery: &mut Recovery,
    ) -> Result<(), PipelineError> {
        if !chunks
            .iter()
            .any(|c| matches!(c.result, ItemResult::Failed { .. }))
        {
            return Ok(());
        }
        let first = &chunks[0];
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
            return Ok(());
        }
        if let [only] = chunks.as_slice()
            && let Some(body) = &only.body
            && let Some(name) = &body.file
        {
            // A referenced document is retried from its file.
            recovery
                .documents
                .push(IntakeDocument::Referenced(ReferencedDocument {
                    id: only.document_id.clone(),
                    title: only.title.clone(),
                    key: body.key.clone(),
                    name: name.clone(),
                    bytes: body.len,
                    metadata: only.metadata.clone(),
                }));
            return Ok(());
        }
        let mut pieces = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let Some(body) = &chunk.body else { continue };
            let bytes = self
                .blobs
                .get_range(&body.key, body.offset, body.len)
                .await?;
            pieces.push((chunk.chunk, String::from_utf8_lossy(&bytes).into_owned()));
        }
        recovery
            .documents
            .push(IntakeDocument::Accepted(DocumentSpec {
                id: first.document_id.clone(),
                title: first.title.clone(),
                body: chunking::reassemble(&pieces),
                metadata: first.metadata.clone(),
            }));
        Ok(())
    }

    /// Submits a recovery job of a finished job's failed documents, read
    /// back from where their text was stored: same evaluator (pinned
    /// version), configuration and options, admitted like any batch of
    /// `caller`'s. Retrying the same job again answers with the same
    /// recovery job.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (as [`PipelineError::Store`]) when the job
    /// is not finished, has no failed documents, or none of them can be
    /// retried; [`PipelineError::Refused`]; port errors.
    pub async fn retry(&self, caller: &Caller, job: &Job) -> Result<RetryOutcome, PipelineError> {
        let recovery = self.recovery(job).await?;
        if recovery.documents.is_empty() {
            let message = if recovery.not_retried.is_empty() {
                format!("job {} has no failed documents", job.id)
            } else {
                format!(
                    "none of the {} failed documents of job {} can be retried: they were rejected at intake",
                    recovery.not_retried.len(),
                    job.id
                )
            };
            return Err(StoreError::Conflict(message).into());
        }
        let submission = Submission {
            job_id: Some(idempotent_job_id(
                &caller.tenant,
                &format!("retry:{}", job.id),
            )),
            tenant: caller.tenant.clone(),
            evaluator: job.evaluator.clone(),
            config: job.config.clone(),
            options: job.options.clone(),
            documents: recovery.documents,
        };
        let job = self.submit_admitted(caller, submission).await?;
        Ok(RetryOutcome {
            job,
            not_retried: recovery.not_retried,
        })
    }
}
