//! `POST /api/v1/batch/upload`: validate a batch, say what is wrong and
//! where, and submit it.

use std::collections::HashMap;

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use docket_core::model::{Job, JobId, JobOptions, Priority, ReferencedDocument};
use docket_core::pipeline::{IntakeDocument, Submission, idempotent_job_id};
use docket_core::ports::check_blob_key;
use docket_core::upload::{Rules, Source, UploadOptions, UploadRequest, uploads_prefix};
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::{AppState, Caller};

/// Refuses a batch of `documents` documents that the deployment (413) or
/// the caller's tier (403) does not take.
pub(crate) fn check_documents(
    documents: usize,
    state: &AppState,
    caller: &Caller,
) -> Result<(), ApiError> {
    if documents > state.max_documents {
        return Err(ApiError::TooLarge(format!(
            "a batch of {documents} documents exceeds the limit of {}",
            state.max_documents
        )));
    }
    let allowed = caller.tier.limits().documents_per_batch;
    if documents > allowed {
        return Err(ApiError::Forbidden(format!(
            "the {} tier allows {allowed} documents per batch; this batch has {documents}",
            caller.tier.as_str(),
        )));
    }
    Ok(())
}

/// Refuses a batch holding more bytes of text than the caller's tier
/// takes (413).
fn check_text_bytes(text_bytes: usize, caller: &Caller) -> Result<(), ApiError> {
    let allowed_bytes = caller.tier.limits().batch_bytes;
    if text_bytes > allowed_bytes {
        return Err(ApiError::TooLarge(format!(
            "the {} tier allows {allowed_bytes} bytes of document text per batch; this batch has {text_bytes}",
            caller.tier.as_str()
        )));
    }
    Ok(())
}

/// Checks every field of a JSON body and collects every problem.
async fn validate(
    request: UploadRequest,
    state: &AppState,
    caller: &Caller,
) -> Result<Submission, ApiError> {
    let mut errors = Vec::new();
    if request.documents.is_empty() {
        errors.push(FieldError::new(
            "documents",
            "at least one document is required",
        ));
    }
    check_documents(request.documents.len(), state, caller)?;
    let mut batch_bytes = 0usize;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut documents = Vec::with_capacity(request.documents.len());
    let uploads = uploads_prefix(&caller.tenant);
    for (n, document) in request.documents.into_iter().enumerate() {
        let at = |field: &str| format!("documents[{n}].{field}");
        let id = match document.required_id() {
            Ok(id) => id,
            Err(problem) => {
                errors.push(FieldError::new(at(problem.field), problem.message));
                continue;
            }
        };
        if let Some(first) = seen.insert(id.clone(), n) {
            errors.push(FieldError::new(
                at("id"),
                format!("duplicate of documents[{first}].id {id:?}"),
            ));
        }
        let read = match document.source() {
            Err(problem) => Err(problem),
            Ok(Source::Content) => document.into_spec(id, Rules::Strict).map(|spec| {
                batch_bytes += spec.body.len();
                IntakeDocument::Accepted(spec)
            }),
            Ok(Source::Path(_)) => {
                errors.push(FieldError::new(
                    at("path"),
                    "files are read by path only from a manifest on disk (docket run); send the file itself as multipart/form-data",
                ));
                continue;
            }
            Ok(Source::Key(key)) => {
                if !key.starts_with(&uploads) || check_blob_key(key).is_err() {
                    errors.push(FieldError::new(
                        at("key"),
                        format!("must be a file uploaded for this tenant (a key under {uploads})"),
                    ));
                    continue;
                }
                let key = key.to_owned();
                document.metadata(Rules::Strict).map(|metadata| {
                    IntakeDocument::Referenced(ReferencedDocument {
                        title: document.title_or(&id),
                        id,
                        name: key.rsplit('/').next().unwrap_or(&key).to_owned(),
                        key,
                        bytes: 0,
                        metadata,
                    })
                })
            }
        };
        match read {
            Ok(document) => documents.push(document),
            Err(problem) => errors.push(FieldError::new(at(problem.field), problem.message)),
        }
    }
    check_text_bytes(batch_bytes, caller)?;
    submission_of(documents, request.options, errors, state, caller).await
}

/// The batch of `documents` run as `options` say, once both are checked:
/// every problem found (`errors` holds the documents') is a 422.
pub(crate) async fn submission_of(
    documents: Vec<IntakeDocument>,
    options: UploadOptions,
    mut errors: Vec<FieldError>,
    state: &AppState,
    caller: &Caller,
) -> Result<Submission, ApiError> {
    let priority = match options.priority.as_deref().map(str::parse::<Priority>) {
        None => Priority::Normal,
        Some(Ok(priority)) => priority,
        Some(Err(message)) => {
            errors.push(FieldError::new("options.priority", message));
            Priority::Normal
        }
    };
    let tolerated = options.tolerated_failure_percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&tolerated) {
        errors.push(FieldError::new(
            "options.tolerated_failure_percent",
            "must be between 0 and 100",
        ));
    }
    if let Some(url) = &options.webhook_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        errors.push(FieldError::new(
            "options.webhook_url",
            "must be an http(s) URL",
        ));
    }
    let mut config = match options.config {
        None => json!({}),
        Some(config @ Value::Object(_)) => config,
        Some(_) => {
            errors.push(FieldError::new("options.config", "must be a JSON object"));
            json!({})
        }
    };
    if let (Some(include), Some(object)) = (options.include_questionnaire, config.as_object_mut()) {
        object.insert("include_questionnaire".into(), Value::Bool(include));
    }
    let spec = options
        .evaluator
        .unwrap_or_else(|| state.default_evaluator.clone());
    let evaluator = match state.pipeline.resolve_evaluator(&spec).await {
        Ok(evaluator) => Some(evaluator),
        Err(failure) => {
            errors.push(FieldError::new("options.evaluator", failure.message));
            None
        }
    };
    match evaluator {
        Some(evaluator) if errors.is_empty() => Ok(Submission {
            job_id: None,
            tenant: caller.tenant.clone(),
            evaluator,
            config,
            options: JobOptions {
                priority,
                include_evidence: options.include_evidence.unwrap_or(true),
                tolerated_failure_percent: tolerated,
                chunking: options.chunking.unwrap_or_default(),
                webhook_url: options.webhook_url,
                // The caller's tier's, set when the batch is admitted.
                ..JobOptions::default()
            },
            documents,
        }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// A JSON body, or files as `multipart/form-data`
/// ([`crate::multipart`]).
pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    let idempotency_key = match request.headers().get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(key) if !key.is_empty() && key.len() <= 255 => Some(key.to_owned()),
            _ => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )]));
            }
        },
    };
    let job_id = idempotency_key
        .as_deref()
        .map(|key| idempotent_job_id(&caller.tenant, key));
    let mut submission = if crate::multipart::is_multipart(&request) {
        // A retried upload with the same key writes the same objects.
        let upload = job_id
            .as_ref()
            .map_or_else(|| JobId::generate().to_string(), ToString::to_string);
        crate::multipart::submission(&state, &caller, &upload, request).await?
    } else {
        let ApiJson(body) = ApiJson::<UploadRequest>::from_request(request, &state).await?;
        validate(body, &state, &caller).await?
    };
    if let Some(url) = &submission.options.webhook_url
        && let Err(refused) = state.pipeline.check_webhook_url(url).await
    {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "options.webhook_url",
            refused.to_string(),
        )]));
    }
    submission.job_id = job_id;
    let job = state.pipeline.submit_admitted(&caller, submission).await?;
    Ok(accepted(&job, json!({})))
}

/// The 202 answer to an accepted batch, with `extra` fields.
pub(crate) fn accepted(job: &Job, extra: Value) -> Response {
    let mut body = json!({
        "job_id": job.id,
        "status": job.status,
        "document_count": job.counters.documents_total,
        "status_url": format!("/api/v1/batch/status/{}", job.id),
        "results_url": format!("/api/v1/batch/results/{}", job.id),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
