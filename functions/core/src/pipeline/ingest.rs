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

use super::submit::{WINDOW_ITEMS, referenced_item};
use super::{IntakeDocument, OpenIntake, Pipeline, PipelineError, Submission};
use crate::failure::{Failure, FailureCategory};
use crate::model::{
    DocumentBody, DocumentSpec, JobId, JobOptions, Priority, ReferencedDocument, RejectedDocument,
    TenantId,
};
use crate::ports::{BlobError, OutgoingMessage, QueueName, StoreError};
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
    /// Instead of documents: every file under this folder of the tenant's
    /// `files/<tenant>/`.
    #[serde(default)]
    prefix: Option<String>,
}

/// A message of the ingest queue that is not an S3 notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestMessage {
    /// The next page of a job's listing.
    Listing(ListingPage),
}

/// A page of the listing of a `*.batch.json`'s `prefix`: the keys after
/// `after`, added to the job as documents `documents_before`… (one item
/// each). Pages run one after another, each sending the next; a page
/// delivered twice is added once and re-sends what it sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListingPage {
    /// The job.
    pub job_id: JobId,
    /// The full key prefix listed.
    pub prefix: String,
    /// The last key of the previous page.
    pub after: Option<String>,
    /// The job's documents before this page.
    pub documents_before: u32,
}

/// Whether a manifest's `prefix` is a plain folder (no `.`/`..` segments,
/// no leading `/`).
fn listable(folder: &str) -> bool {
    let folder = folder.trim_end_matches('/');
    folder.is_empty() || crate::ports::check_blob_key(folder).is_ok()
}

impl Pipeline {
    /// Sends a listing page to the ingest queue.
    async fn send_listing(&self, page: &ListingPage) -> Result<(), PipelineError> {
        let message = IngestMessage::Listing(page.clone());
        self.queue
            .send(QueueName::Ingest, vec![OutgoingMessage::json(&message)])
            .await?;
        Ok(())
    }

    /// Adds a page of a listing to its job: the keys after the page's
    /// `after` become referenced documents (ids: their keys below the
    /// prefix), their items are sent, then the next page — or, on the last
    /// page, the intake is closed. A page delivered again (or after a
    /// crash) is not added twice: it re-sends its items and the next page
    /// if the next was not added yet; recording an item twice changes
    /// nothing.
    ///
    /// # Errors
    /// Port errors (the message is retried).
    pub async fn ingest_listing(&self, page: &ListingPage) -> Result<(), PipelineError> {
        let job = match self.jobs.job(&page.job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if job.finished_at.is_some() {
            return Ok(());
        }
        let listed = self
            .blobs
            .list_page(
                &page.prefix,
                page.after.as_deref(),
                self.settings.listing_page.clamp(1, WINDOW_ITEMS - 1),
            )
            .await?;
        let count = listed.objects.len() as u32;
        let next = listed.more.then(|| ListingPage {
            after: listed.objects.last().map(|(key, _)| key.clone()),
            documents_before: page.documents_before + count,
            ..page.clone()
        });
        let documents: Vec<ReferencedDocument> = listed
            .objects
            .into_iter()
            .map(|(key, bytes)| {
                let id = key.strip_prefix(&page.prefix).unwrap_or(&key).to_owned();
                ReferencedDocument {
                    title: id.clone(),
                    id,
                    name: key.rsplit('/').next().unwrap_or(&key).to_owned(),
                    key,
                    bytes,
                    metadata: serde_json::Value::Null,
                }
            })
            .collect();
        let before = page.documents_before;
        let total = job.counters.documents_total;
        let mut added = false;
        if total == before && job.counters.intake_open {
            // A listing job has one item a document.
            let mut intake = OpenIntake::resume(self, job.clone(), before, before);
            for document in documents.iter().cloned() {
                intake.add(IntakeDocument::Referenced(document)).await?;
            }
            added = intake.finish_part(next.is_none()).await?.is_some();
        }
        if !added {
            let now = self.jobs.job(&page.job_id).await?;
            if now.counters.documents_total != before + count {
                // Not this page's to repair: earlier, or a later page is in.
                return Ok(());
            }
            let items: Vec<OutgoingMessage> = documents
                .into_iter()
                .enumerate()
                .map(|(n, document)| {
                    let number = before + n as u32;
                    OutgoingMessage::work_item(
                        &job,
                        &referenced_item(&job.id, number, number, document),
                    )
                })
                .collect();
            if !items.is_empty() {
                self.queue
                    .send(QueueName::Work(job.options.priority), items)
                    .await?;
            }
            if next.is_none() && now.counters.intake_open {
                // The last page, counted by a reader that stopped before
                // it closed the intake (it closes once the page's items
                // are sent): closed here, finalized when all is recorded.
                let counted = before + count;
                OpenIntake::resume(self, now, counted, counted)
                    .finish_part(true)
                    .await?;
            }
        }
        if let Some(next) = next {
            self.send_listing(&next).await?;
        }
        Ok(())
    }

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
        let existed = match self.jobs.job(&job_id).await {
            // A listing job whose first page may not have been sent.
            Ok(job) if job.counters.intake_open && job.counters.documents_total == 0 => true,
            Ok(_) => {
                tracing::info!(%key, %job_id, "notification repeated; job exists");
                return Ok(Some(job_id));
            }
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
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
        let mut options = JobOptions::default();
        let mut spec = default_evaluator.to_owned();
        let mut prefix = None;
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
            prefix = manifest.prefix;
        }
        let resolved = self.evaluators.resolve(&spec).await;
        if let Some(folder) = prefix.as_deref().filter(|f| listable(f))
            && let Ok(evaluator) = &resolved
        {
            let page = ListingPage {
                job_id: job_id.clone(),
                prefix: format!("{files}{folder}"),
                after: None,
                documents_before: 0,
            };
            if !existed {
                let submission = Submission {
                    job_id: Some(job_id.clone()),
                    tenant,
                    evaluator: evaluator.clone(),
                    config: serde_json::json!({}),
                    options,
                    documents: Vec::new(),
                };
                match self.open_intake(submission).await {
                    Ok(_) | Err(PipelineError::Store(StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            self.send_listing(&page).await?;
            tracing::info!(%key, %job_id, prefix = %page.prefix, "inbox listing started");
            return Ok(Some(job_id));
        }
        if existed {
            return Ok(Some(job_id));
        }
        let mut documents = match &prefix {
            Some(folder) if !listable(folder) => vec![IntakeDocument::Rejected(RejectedDocument {
                id: name.clone(),
                title: name.clone(),
                failure: Failure::new(
                    FailureCategory::Data,
                    format!(
                        "prefix: {folder:?} is not a folder under {files} (no `..`, no leading `/`)"
                    ),
                ),
            })],
            // A listing whose evaluator is unknown: the manifest fails
            // with that reason below.
            Some(_) => vec![IntakeDocument::Rejected(RejectedDocument {
                id: name.clone(),
                title: name.clone(),
                failure: Failure::new(FailureCategory::Data, "not listed"),
            })],
            None => self.reader.read(key, &files, &name, name.clone(), &bytes),
        };
        let evaluator = match resolved {
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
