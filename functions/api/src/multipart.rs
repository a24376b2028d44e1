//! `POST /api/v1/batch/upload` as `multipart/form-data`: files, as
//! `curl -F "file=@plan.pdf"` sends them.
//!
//! Parts, in any order but `metadata` after its file:
//! - `file` (repeated): one document each, its id and title the part's file
//!   name (`#2`, `#3`… for a repeated name). The file is streamed to the
//!   blob store as it is read and becomes a referenced document: its type
//!   is told from its content, and its text is extracted by the processor
//!   that evaluates it, so a broken file fails alone.
//! - `metadata` (optional, after a `file`): a JSON object for that file.
//! - `options` (optional): the JSON options of the JSON body.
//! - one option a part, as HTML forms and FastAPI's `Form(...)` clients send
//!   them (optional, each overriding `options`): `priority`, `evaluator`,
//!   `webhook_url`, `tolerated_failure_percent`, `config` (JSON) and the
//!   flags `include_evidence`, `include_questionnaire` (`true`, `True`,
//!   `1`, `yes`, `on` and their opposites).
//!
//! Reading stops with a 413 as soon as a file passes the deployment's file
//! limit or the body its body limit.

use std::collections::HashSet;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use docket_core::FailureCategory;
use docket_core::model::ReferencedDocument;
use docket_core::pipeline::{IntakeDocument, PipelineError, Submission};
use docket_core::ports::{BackendError, BlobError, ChunkSource};
use docket_core::upload::{UploadOptions, not_a_flag, parse_flag, uploaded_file_key};
use serde_json::Value;

use crate::error::{ApiError, FieldError};
use crate::extract::parse;
use crate::upload::check_documents;
use crate::{AppState, Caller};

/// Whether the request's body is `multipart/form-data`.
pub(crate) fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// A multipart request's error as the API answers it: 413 past a limit,
/// 400 for a body that is not well-formed multipart.
fn unreadable(error: &MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!(
            "the request body is too large: {}",
            error.body_text()
        ))
    } else {
        ApiError::Malformed(format!(
            "the multipart body is malformed: {}",
            error.body_text()
        ))
    }
}

/// One file part read into the blob store, counting its bytes and stopping
/// past `limit`.
struct FilePart<'a, 'b> {
    field: &'a mut Field<'b>,
    read: u64,
    limit: u64,
    /// Why reading stopped, when the request is to blame.
    refused: Option<ApiError>,
}

#[async_trait::async_trait]
impl ChunkSource for FilePart<'_, '_> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        let stop =
            |message: String| BlobError::Backend(BackendError::new(FailureCategory::Data, message));
        match self.field.chunk().await {
            Ok(Some(chunk)) => {
                self.read += chunk.len() as u64;
                if self.read > self.limit {
                    let name = self.field.file_name().unwrap_or_default().to_owned();
                    let message = format!(
                        "file {name:?} is over the limit of {} bytes per file",
                        self.limit
                    );
                    self.refused = Some(ApiError::TooLarge(message.clone()));
                    return Err(stop(message));
                }
                Ok(Some(chunk.to_vec()))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.refused = Some(unreadable(&e));
                Err(stop(e.body_text()))
            }
        }
    }
}

/// Reads a multipart upload: stores its files, checks its options, and
/// returns the batch to submit (`upload` names where its files go).
pub(crate) async fn submission(
    state: &AppState,
    caller: &Caller,
    upload: &str,
    request: Request,
) -> Result<Submission, ApiError> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::Malformed(e.body_text()))?;
    let limit = state.pipeline.settings().max_file_bytes;
    let mut documents: Vec<IntakeDocument> = Vec::new();
    let mut ids = HashSet::new();
    let mut options = UploadOptions::default();
    let mut errors = Vec::new();
    let mut part = 0usize;
    let mut form_options = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| unreadable(&e))? {
        let at = format!("parts[{part}]");
        part += 1;
        match field.name().unwrap_or_default() {
            "file" => {
                let Some(name) = field
                    .file_name()
                    .map(str::to_owned)
                    .filter(|n| !n.is_empty())
                else {
                    errors.push(FieldError::new(at, "a file part needs a filename"));
                    continue;
                };
                if documents.len() >= state.max_documents {
                    return Err(ApiError::TooLarge(format!(
                        "a batch of more than {} documents exceeds the limit",
                        state.max_documents
                    )));
                }
                let id = unique(&name, &mut ids);
                let key = uploaded_file_key(&caller.tenant, upload, documents.len(), &name);
                let mut source = FilePart {
                    field: &mut field,
                    read: 0,
                    limit,
                    refused: None,
                };
                let bytes = match state.pipeline.store_file(&key, &mut source).await {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        return Err(source.refused.take().unwrap_or_else(|| stored_not(&error)));
                    }
                };
                documents.push(IntakeDocument::Referenced(ReferencedDocument {
                    title: name.clone(),
                    id,
                    key,
                    name,
                    bytes,
                    metadata: Value::Null,
                }));
            }
            "metadata" => {
                let text = field.text().await.map_err(|e| unreadable(&e))?;
                let metadata = match serde_json::from_str::<Value>(&text) {
                    Ok(metadata @ Value::Object(_)) => metadata,
                    _ => {
                        errors.push(FieldError::new(at, "metadata must be a JSON object"));
                        continue;
                    }
                };
                match documents.last_mut() {
                    Some(IntakeDocument::Referenced(document)) => document.metadata = metadata,
                    _ => errors.push(FieldError::new(
                        at,
                        "a metadata part comes after the file it describes",
                    )),
                }
            }
            "options" => {
                let text = field.text().await.map_err(|e| unreadable(&e))?;
                match parse::<UploadOptions>(text.as_bytes()) {
                    Ok(parsed) => options = parsed,
                    Err(ApiError::Invalid(problems)) => {
                        errors.extend(problems.into_iter().map(|p| p.within("options")));
                    }
                    Err(_) => errors.push(FieldError::new("options", "must be a JSON object")),
                }
            }
            name if FORM_OPTIONS.contains(&name) => {
                let name = name.to_owned();
                let text = field.text().await.map_err(|e| unreadable(&e))?;
                form_options.push((name, text));
            }
            other => errors.push(FieldError::new(
                at,
                format!(
                    "unknown part {other:?} (expected file, metadata, options or one of {})",
                    FORM_OPTIONS.join(", ")
                ),
            )),
        }
    }
    for (name, text) in form_options {
        if let Err(message) = set_form_option(&mut options, &name, &text) {
            errors.push(FieldError::new(name, message));
        }
    }
    if documents.is_empty() {
        errors.push(FieldError::new("file", "at least one file is required"));
    }
    check_documents(documents.len(), state, caller)?;
    crate::upload::submission_of(documents, options, errors, state, caller).await
}

/// The options a part of their own may give.
const FORM_OPTIONS: [&str; 7] = [
    "priority",
    "evaluator",
    "webhook_url",
    "tolerated_failure_percent",
    "config",
    "include_evidence",
    "include_questionnaire",
];

/// Sets the option `name` (one of [`FORM_OPTIONS`]) from a form part's
/// text; checked further with the other options.
fn set_form_option(options: &mut UploadOptions, name: &str, text: &str) -> Result<(), String> {
    let flag = || parse_flag(text).ok_or_else(|| not_a_flag(text));
    match name {
        "priority" => options.priority = Some(text.trim().to_owned()),
        "evaluator" => options.evaluator = Some(text.trim().to_owned()),
        "webhook_url" => options.webhook_url = Some(text.trim().to_owned()),
        "tolerated_failure_percent" => {
            let percent = text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{text:?} is not a number"))?;
            options.tolerated_failure_percent = Some(percent);
        }
        "config" => {
            let config =
                serde_json::from_str::<Value>(text).map_err(|e| format!("not JSON: {e}"))?;
            options.config = Some(config);
        }
        "include_evidence" => options.include_evidence = Some(flag()?),
        "include_questionnaire" => options.include_questionnaire = Some(flag()?),
        other => return Err(format!("{other} is not an option")),
    }
    Ok(())
}

/// A file the blob store did not take: the store's failure, retryable or
/// not.
pub(crate) fn stored_not(error: &PipelineError) -> ApiError {
    if error.category().is_retryable() {
        ApiError::Unavailable(format!("the file could not be stored: {error}"))
    } else {
        ApiError::Internal(format!("the file could not be stored: {error}"))
    }
}

/// The file's name as a document id, made unique in the batch.
fn unique(name: &str, ids: &mut HashSet<String>) -> String {
    let mut id = name.to_owned();
    let mut n = 1;
    while !ids.insert(id.clone()) {
        n += 1;
        id = format!("{name}#{n}");
    }
    id
}
