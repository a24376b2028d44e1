//! Files dropped in the inbox (`inbox/<tenant>/<file>`, or `inbox/<file>`
//! for the `inbox` tenant) become jobs: a file is one document, a manifest
//! many, a `*.batch.json` manifest may name `options.evaluator` and
//! `options.priority`, and its entries may name files under the tenant's
//! `files/<tenant>/` by `path` or `key` (one job over many files, their
//! text extracted by the processors). Nothing is dropped silently: an unreadable file or a
//! malformed manifest makes a job whose document failed with the reason,
//! and an unknown evaluator fails every document with it. A notification
//! delivered twice makes one job (the job id is derived from the object's
//! key and ETag).

use super::{IntakeDocument, Pipeline, PipelineError, Submission};
use crate::failure::{Failure, FailureCategory};
use crate::model::{
    DocumentBody, DocumentSpec, JobId, JobOptions, Priority, RejectedDocument, TenantId,
};
use crate::ports::{BlobError, StoreError};
use crate::upload::UploadOptions;

/// Where dropped files land in the blob store.
pub const INBOX_PREFIX: &str = "inbox/";

/// Where a tenant keeps the files its inbox manifests reference (by
/// `path` relative to it, or by `key`): `files/<tenant>/`, outside the
/// inbox, so storing them makes no job of their own.
pub fn tenant_files(tenant: &TenantId) -> String {
    format!("files/{tenant}/")
}

/// An object the blob store says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// Its key (decoded).
    pub key: String,
    /// Its ETag: another version of the same key is another job.
    pub etag: String,
}

/// Reads the bytes of a dropped file into documents: text, PDF pages,
/// manifests. A file that cannot be used becomes a rejected document with
/// the reason.
#[async_trait::async_trait]
pub trait DocumentReader: Send + Sync {
    /// The documents in `bytes`, read from the file named `path` (its
    /// content and extension say how), the first with `id` and `title`. A
    /// manifest's entries may reference files under `files` only.
    fn read(
        &self,
        path: &str,
        files: &str,
        id: &str,
        title: String,
        bytes: &[u8],
    ) -> Vec<IntakeDocument>;

    /// The text of a referenced document's file named `name` (PDF pages,
    /// DOCX, HTML or text: told by the content first, the name's extension
    /// second).
    ///
    /// # Errors
    /// A [`FailureCategory::Data`] failure with the reason when the file
    /// has no usable text (broken, encrypted, empty, not text).
    async fn extract(&self, name: &str, bytes: Vec<u8>) -> Result<DocumentBody, Failure>;
}

/// A reader of UTF-8 text only: one document a file (for pipelines that
/// ingest no files of other kinds, e.g. in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainText;

impl PlainText {
    fn text(bytes: Vec<u8>) -> Result<DocumentBody, Failure> {
        String::from_utf8(bytes)
            .map(DocumentBody::Text)
            .map_err(|e| Failure::new(FailureCategory::Data, format!("not UTF-8 text: {e}")))
    }
}

#[async_trait::async_trait]
impl DocumentReader for PlainText {
    fn read(
        &self,
        _path: &str,
        _files: &str,
        id: &str,
        title: String,
        bytes: &[u8],
    ) -> Vec<IntakeDocument> {
        let document = match Self::text(bytes.to_vec()) {
            Ok(body) => IntakeDocument::Accepted(DocumentSpec {
                id: id.to_owned(),
                title,
                body,
                metadata: serde_json::Value::Null,
            }),
            Err(failure) => IntakeDocument::Rejected(RejectedDocument {
                id: id.to_owned(),
                title,
                failure,
            }),
        };
        vec![document]
    }

    async fn extract(&self, _name: &str, bytes: Vec<u8>) -> Result<DocumentBody, Failure> {
        Self::text(bytes)
    }
}

/// The options a `*.batch.json` manifest may carry (read leniently: a
/// manifest whose options do not parse runs with the defaults).
#[derive(serde::Deserialize)]
struct BatchManifest {
    #[serde(default)]
    options: UploadOptions,
}

impl Pipeline {
    /// Turns each created object under the inbox into a job (objects
    /// elsewhere are ignored); `default_evaluator` runs files that name
    /// none. Returns the jobs, in order.
    ///
    /// # Errors
    /// Port errors (the notification should be retried: repeating it makes
    /// no second job).
    pub async fn ingest(
        &self,
        objects: &[CreatedObject],
        default_evaluator: &str,
    ) -> Result<Vec<JobId>, PipelineError> {
        let mut jobs = Vec::new();
        for object in objects {
            if let Some(job) = self.ingest_object(object, default_evaluator).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    async fn ingest_object(
        &self,
        object: &CreatedObject,
        default_evaluator: &str,
    ) -> Result<Option<JobId>, PipelineError> {
        let key = &object.key;
        let Some(path) = key.strip_prefix(INBOX_PREFIX) else {
            tracing::info!(%key, "object outside the inbox ignored");
            return Ok(None);
        };
        let (tenant, file) = match path.split_once('/') {
            Some((tenant, file)) if TenantId::parse(tenant).is_ok() => (tenant, file),
            _ => ("inbox", path),
        };
        let invalid = |e: crate::model::InvalidName| PipelineError::Invalid(e.to_string());
        let tenant = TenantId::parse(tenant).map_err(invalid)?;
        let digest = crate::auth::hash_token(&format!("ingest\n{key}\n{}", object.etag));
        let job_id = JobId::parse(&format!(
            "job_ingest_{}",
            &digest.trim_start_matches("sha256:")[..32]
        ))
        .map_err(invalid)?;
        match self.jobs.job(&job_id).await {
            Ok(_) => {
                tracing::info!(%key, %job_id, "notification repeated; job exists");
                return Ok(Some(job_id));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let bytes = match self.blobs.get(key).await {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound(_)) => {
                tracing::warn!(%key, "object gone before it was read");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let name = file.rsplit('/').next().unwrap_or(file).to_owned();
        let files = tenant_files(&tenant);
        let mut documents = self.reader.read(key, &files, &name, name.clone(), &bytes);
        let mut options = JobOptions::default();
        let mut spec = default_evaluator.to_owned();
        if name.ends_with(".batch.json")
            && let Ok(manifest) = serde_json::from_slice::<BatchManifest>(&bytes)
        {
            if let Some(evaluator) = manifest.options.evaluator {
                spec = evaluator;
            }
            if let Some(priority) = manifest
                .options
                .priority
                .and_then(|p| p.parse::<Priority>().ok())
            {
                options.priority = priority;
            }
        }
        let evaluator = match self.evaluators.resolve(&spec).await {
            Ok(evaluator) => evaluator,
            Err(failure) => {
                documents = documents
                    .into_iter()
                    .map(|d| {
                        IntakeDocument::Rejected(RejectedDocument {
                            id: d.id().to_owned(),
                            title: d.title().to_owned(),
                            failure: failure.clone(),
                        })
                    })
                    .collect();
                self.evaluators
                    .resolve(default_evaluator)
                    .await
                    .map_err(|f| PipelineError::Invalid(f.message))?
            }
        };
        let submission = Submission {
            job_id: Some(job_id.clone()),
            tenant,
            evaluator,
            config: serde_json::json!({}),
            options,
            documents,
        };
        match self.submit(submission).await {
            Ok(job) => {
                tracing::info!(%key, job_id = %job.id, documents = job.counters.documents_total, "inbox file submitted")
            }
            Err(PipelineError::Store(StoreError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
        Ok(Some(job_id))
    }
}
