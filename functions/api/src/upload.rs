//! `POST /api/v1/batch/upload`: validate a batch, say what is wrong and
//! where, and submit it.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use docket_core::model::{Job, JobOptions, Priority};
use docket_core::pipeline::{IntakeDocument, Submission, idempotent_job_id};
use docket_core::upload::{Rules, UploadRequest};
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::{AppState, Caller};

/// Checks every field and collects every problem.
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
    if request.documents.len() > state.max_documents {
        return Err(ApiError::TooLarge(format!(
            "a batch of {} documents exceeds the limit of {}",
            request.documents.len(),
            state.max_documents
        )));
    }
    let allowed = caller.tier.limits().documents_per_batch;
    if request.documents.len() > allowed {
        return Err(ApiError::Forbidden(format!(
            "the {} tier allows {allowed} documents per batch; this batch has {}",
            caller.tier.as_str(),
            request.documents.len()
        )));
    }
    let mut batch_bytes = 0usize;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut documents = Vec::with_capacity(request.documents.len());
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
        match document.into_spec(id, Rules::Strict) {
            Ok(spec) => {
                batch_bytes += spec.body.len();
                documents.push(IntakeDocument::Accepted(spec));
            }
            Err(problem) => errors.push(FieldError::new(at(problem.field), problem.message)),
        }
    }
    let allowed_bytes = caller.tier.limits().batch_bytes;
    if batch_bytes > allowed_bytes {
        return Err(ApiError::TooLarge(format!(
            "the {} tier allows {allowed_bytes} bytes of document text per batch; this batch has {batch_bytes}",
            caller.tier.as_str()
        )));
    }
    let options = request.options;
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
            },
            documents,
        }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UploadRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
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
    let mut submission = validate(request, &state, &caller).await?;
    if let Some(url) = &submission.options.webhook_url
        && let Err(refused) = state.pipeline.check_webhook_url(url).await
    {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "options.webhook_url",
            refused.to_string(),
        )]));
    }
    if let Some(key) = idempotency_key {
        submission.job_id = Some(idempotent_job_id(&caller.tenant, &key));
    }
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
